/* mw-metrics.c - counters shared by the threads (or the forked workers) of one daemon, and
 * their Prometheus text form.
 *
 * The table is a fixed array of series (metric id, rendered labels, value). A series is
 * added under a robust mutex (process-shared when the table is): its slot is written whole
 * before the count n is published (release), so a series already there is found without
 * the lock (n read with acquire; slots below it never change again), and the value is
 * incremented with an atomic add. The steady state takes no lock: the API's workers counted
 * every request under the one process-shared mutex, a worker descheduled while holding it
 * stalled the others' requests. Rendering needs the lock only to walk the table. Label
 * values are escaped as the format wants (backslash, double quote, newline).
 *
 * Public: mw_metrics_init, mw_metrics_inc, mw_metrics_render, mw_metrics_write_file.
 * Diagnostics: through error_r (mmap, writing the file).
 */
#include "mw-build.h"
#include "mw-metrics.h"
#include "mw-degraded.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct series {
	int id; /* enum mw_metric_id, -1 = free */
	char labels[MW_METRICS_LABELS_MAX];
	uint64_t value;
};

struct table {
	pthread_mutex_t lock;
	size_t n;
	uint64_t dropped;
	struct series s[MW_METRICS_SERIES_MAX];
};

static const struct {
	const char *name, *help, *labels;
} metrics[] = {
#define MW_METRIC(id, name, help, labels) {name, help, labels},
#include "mw-metrics.def"
#undef MW_METRIC
};

/* The process's table: set once at start-up, before threads or workers exist. */
static struct table *table;

/* mw_metrics_init - the table, private or in shared memory */
int mw_metrics_init(bool shared, mw_error *error_r)
{
	pthread_mutexattr_t a;
	struct table *t;
	if (table != NULL)
		return 0;
	if (shared) {
		t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		         0);
		if (t == MAP_FAILED) {
			mw_error_set(error_r, "metrics: mmap: %s", strerror(errno));
			return -1;
		}
		memset(t, 0, sizeof(*t));
	} else {
		t = mw_calloc(1, sizeof(*t));
	}
	(void)pthread_mutexattr_init(&a);
	if (shared)
		(void)pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	(void)pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	(void)pthread_mutex_init(&t->lock, &a);
	(void)pthread_mutexattr_destroy(&a);
	table = t;
	return 0;
}

/* lock - take the table's mutex; a holder that died leaves it consistent (each change is
   one slot written before n moves) */
static void lock(void)
{
	if (pthread_mutex_lock(&table->lock) == EOWNERDEAD)
		(void)pthread_mutex_consistent(&table->lock);
}

/* escape - a label value as the text format writes it (in one piece when nothing needs
   escaping and it fits: the API counts every request) */
static void escape(mw_str *out, const char *v)
{
	size_t plain = strcspn(v, "\\\"\n");
	if (v[plain] == '\0' && (out->max == 0 || out->len + plain <= out->max)) {
		(void)mw_str_append(out, v, plain);
		return;
	}
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			(void)mw_str_appendc(out, '\\');
		if (*v == '\n') {
			(void)mw_str_appends(out, "\\n");
			continue;
		}
		(void)mw_str_appendc(out, *v);
	}
}

/* find - the series of id with labels among those published; NULL when not there */
static struct series *find(enum mw_metric_id id, const char *labels)
{
	size_t i, n = __atomic_load_n(&table->n, __ATOMIC_ACQUIRE);
	for (i = 0; i < n; i++)
		if (table->s[i].id == (int)id && strcmp(table->s[i].labels, labels) == 0)
			return &table->s[i];
	return NULL;
}

/* mw_metrics_inc - one more in a series */
void mw_metrics_inc(enum mw_metric_id id, ...)
{
	char names[128], *name, *save = NULL;
	struct series *hit = NULL;
	mw_str labels;
	va_list ap;
	if (table == NULL || (int)id < 0 || id >= MWM_COUNT_)
		return;
	mw_str_init(&labels, MW_METRICS_LABELS_MAX - 1);
	(void)mw_strlcpy(names, metrics[id].labels, sizeof(names));
	va_start(ap, id);
	for (name = strtok_r(names, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
		const char *v = va_arg(ap, const char *);
		char piece[sizeof(names) + 3];
		size_t n = strlen(name), at = labels.len ? 1 : 0;
		/* ",NAME=\"" in one piece (appended whole or not at all, as before) */
		piece[0] = ',';
		memcpy(piece + at, name, n);
		memcpy(piece + at + n, "=\"", 2);
		(void)mw_str_append(&labels, piece, at + n + 2);
		escape(&labels, v != NULL ? v : "");
		(void)mw_str_appendc(&labels, '"');
	}
	va_end(ap);
	hit = find(id, mw_str_c(&labels));
	if (hit == NULL) {
		lock();
		hit = find(id, mw_str_c(&labels)); /* another may have added it meanwhile */
		if (hit == NULL && table->n < MW_METRICS_SERIES_MAX) {
			hit = &table->s[table->n];
			hit->id = (int)id;
			(void)mw_strlcpy(hit->labels, mw_str_c(&labels), sizeof(hit->labels));
			hit->value = 0;
			__atomic_store_n(&table->n, table->n + 1, __ATOMIC_RELEASE);
		}
		(void)pthread_mutex_unlock(&table->lock);
	}
	if (hit != NULL)
		__atomic_fetch_add(&hit->value, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&table->dropped, 1, __ATOMIC_RELAXED);
	mw_str_free(&labels);
}

/* mw_metrics_render - every metric with HELP and TYPE, then its series */
void mw_metrics_render(mw_str *out)
{
	size_t m, i, n;
	if (table == NULL)
		return;
	lock();
	n = table->n;
	(void)pthread_mutex_unlock(&table->lock);
	for (m = 0; m < MW_N_ELEMENTS(metrics); m++) {
		(void)mw_str_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", metrics[m].name,
		                     metrics[m].help, metrics[m].name);
		for (i = 0; i < n; i++)
			if (table->s[i].id == (int)m)
				(void)mw_str_appendf(out, "%s{%s} %llu\n", metrics[m].name,
				                     table->s[i].labels,
				                     (unsigned long long)__atomic_load_n(
				                         &table->s[i].value, __ATOMIC_RELAXED));
	}
	(void)mw_str_appendf(
	    out,
	    "# HELP mailwarden_metrics_dropped_total Increments not counted: "
	    "the series table was full.\n# TYPE mailwarden_metrics_dropped_total "
	    "counter\nmailwarden_metrics_dropped_total %llu\n",
	    (unsigned long long)__atomic_load_n(&table->dropped, __ATOMIC_RELAXED));
	mw_degraded_render(out); /* the gauges of lib/mw-degraded.c */
}

/* mw_metrics_write_file - the text format into path, atomically */
int mw_metrics_write_file(const char *path, mw_error *error_r)
{
	char tmp[4096];
	mw_str text;
	ssize_t w;
	int fd, ret = -1;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		mw_error_set(error_r, "metrics file %s: name too long", path);
		return -1;
	}
	mw_str_init(&text, 0);
	mw_metrics_render(&text);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		mw_error_set(error_r, "metrics file %s: %s", tmp, strerror(errno));
		goto out;
	}
	w = write(fd, text.buf != NULL ? text.buf : "", text.len);
	if (w < 0 || (size_t)w != text.len || fchmod(fd, 0644) < 0) {
		mw_error_set(error_r, "metrics file %s: write failed", tmp);
		(void)close(fd);
		(void)unlink(tmp);
		goto out;
	}
	(void)close(fd);
	if (rename(tmp, path) < 0) {
		mw_error_set(error_r, "metrics file %s: %s", path, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	ret = 0;
out:
	mw_str_free(&text);
	return ret;
}
