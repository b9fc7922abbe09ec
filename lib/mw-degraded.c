/*
 * mw-degraded.c - the degraded state of a daemon's components, its log lines, gauges and the
 * reader of the gauges (one printer and one parser of the format, rule 12 of STYLE.md).
 *
 * A process keeps one small table indexed by the components of mw-degraded.def, guarded by a
 * mutex (the milter's threads change it; a leave that finds the component watched and
 * healthy returns without it); a prefork pool (the API) moves it into shared
 * memory with mw_degraded_share before forking, so its workers share one state and one
 * change is logged once, by the worker that saw it. A change of state is decided under the lock and
 * logged after it, so a component failing on every request logs once when it fails and once
 * when it works again, never per request. The detail text goes to the log only; the gauges
 * carry the component, the reason word and the time the state began, so the number of series
 * stays bounded.
 *
 * Public: mw_degraded_share, mw_degraded_watch, mw_degraded_enter, mw_degraded_leave,
 * mw_degraded_get, mw_degraded_name, mw_degraded_lookup, mw_degraded_render, mw_degraded_parse,
 * mw_degraded_describe.
 * Diagnostics: event=degraded (warning) and event=recovered (info) lines; the parser's
 * errors through error_r.
 */
#include "mw-build.h"
#include "mw-degraded.h"
#include "mw-log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static const struct {
	const char *name, *fallback, *missing, *fix;
} components[] = {
#define MW_DEGRADED(id, name, fallback, missing, fix) {name, fallback, missing, fix},
#include "mw-degraded.def"
#undef MW_DEGRADED
};

struct state {
	bool watched, degraded;
	int64_t since;
	char reason[MW_DEGRADED_REASON_MAX + 1];
};

struct dtable {
	pthread_mutex_t lock;
	struct state s[MW_DEGRADED_COUNT_];
};

/* The process's table; mw_degraded_share moves it into shared memory (before forking). */
static struct dtable private_table = {PTHREAD_MUTEX_INITIALIZER, {{0}}};
static struct dtable *dt = &private_table;

#define GAUGE "mailwarden_degraded"
#define SINCE "mailwarden_degraded_since_seconds"

/* word_ok - a reason or component word: [a-z0-9_], 1..max bytes */
static bool word_ok(const char *s, size_t n, size_t max)
{
	size_t i;
	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* dlock - take the table's mutex; a worker that died holding it left it consistent (each
   change is a few fields of one slot) */
static void dlock(void)
{
	if (pthread_mutex_lock(&dt->lock) == EOWNERDEAD)
		(void)pthread_mutex_consistent(&dt->lock);
}

/* mw_degraded_share - the table in shared memory, for the processes forked after this */
int mw_degraded_share(mw_error *error_r)
{
	pthread_mutexattr_t a;
	struct dtable *t;
	if (dt != &private_table)
		return 0;
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED) {
		mw_error_set(error_r, "degraded states: mmap: %s", strerror(errno));
		return -1;
	}
	(void)pthread_mutexattr_init(&a);
	(void)pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	(void)pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	(void)pthread_mutex_init(&t->lock, &a);
	(void)pthread_mutexattr_destroy(&a);
	(void)pthread_mutex_lock(&private_table.lock);
	memcpy(t->s, private_table.s, sizeof(t->s));
	(void)pthread_mutex_unlock(&private_table.lock);
	dt = t;
	return 0;
}

/* mw_degraded_name - the component label of id */
const char *mw_degraded_name(enum mw_degraded_id id)
{
	return (int)id >= 0 && id < MW_DEGRADED_COUNT_ ? components[id].name : "unknown";
}

/* mw_degraded_lookup - the id of a component label, -1 when unknown */
int mw_degraded_lookup(const char *name)
{
	for (size_t i = 0; i < MW_N_ELEMENTS(components); i++)
		if (strcmp(components[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* mw_degraded_watch - the component shows in the gauge from now on */
void mw_degraded_watch(enum mw_degraded_id id)
{
	if ((int)id < 0 || id >= MW_DEGRADED_COUNT_)
		return;
	dlock();
	__atomic_store_n(&dt->s[id].watched, true, __ATOMIC_RELEASE);
	(void)pthread_mutex_unlock(&dt->lock);
}

/* mw_degraded_enter - healthy to degraded: logged once */
bool mw_degraded_enter(enum mw_degraded_id id, const char *reason, const char *detail)
{
	char d[MW_DEGRADED_DETAIL_MAX + 8], f[160];
	bool changed = false;
	if ((int)id < 0 || id >= MW_DEGRADED_COUNT_)
		return false;
	if (reason == NULL || !word_ok(reason, strlen(reason), MW_DEGRADED_REASON_MAX))
		reason = "unknown";
	dlock();
	__atomic_store_n(&dt->s[id].watched, true, __ATOMIC_RELEASE);
	if (!dt->s[id].degraded) {
		__atomic_store_n(&dt->s[id].degraded, true, __ATOMIC_RELEASE);
		dt->s[id].since = mw_now();
		(void)mw_strlcpy(dt->s[id].reason, reason, sizeof(dt->s[id].reason));
		changed = true;
	}
	(void)pthread_mutex_unlock(&dt->lock);
	if (changed) {
		if (detail == NULL)
			detail = "";
		mw_warn("event=degraded component=%s reason=%s fallback=%s detail=%s",
		        components[id].name, reason,
		        mw_log_value(f, sizeof(f), components[id].fallback,
		                     strlen(components[id].fallback)),
		        mw_log_value(d, sizeof(d), detail, strlen(detail)));
	}
	return changed;
}

/* mw_degraded_leave - degraded to healthy: logged once */
bool mw_degraded_leave(enum mw_degraded_id id, const char *detail)
{
	char d[MW_DEGRADED_DETAIL_MAX + 8];
	int64_t since = 0;
	bool changed = false;
	if ((int)id < 0 || id >= MW_DEGRADED_COUNT_)
		return false;
	/* watched and healthy, the common case, without the lock: the API's workers come here
	   on every request, and one descheduled while it held the shared lock kept the others
	   waiting (watched and degraded change only under the lock, stored atomically) */
	if (__atomic_load_n(&dt->s[id].watched, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&dt->s[id].degraded, __ATOMIC_ACQUIRE))
		return false;
	dlock();
	__atomic_store_n(&dt->s[id].watched, true, __ATOMIC_RELEASE);
	if (dt->s[id].degraded) {
		since = dt->s[id].since;
		__atomic_store_n(&dt->s[id].degraded, false, __ATOMIC_RELEASE);
		dt->s[id].since = 0;
		dt->s[id].reason[0] = '\0';
		changed = true;
	}
	(void)pthread_mutex_unlock(&dt->lock);
	if (changed) {
		int64_t after = mw_now() - since;
		if (detail == NULL)
			detail = "";
		mw_info("event=recovered component=%s after_secs=%" PRId64 " detail=%s",
		        components[id].name, after < 0 ? 0 : after,
		        mw_log_value(d, sizeof(d), detail, strlen(detail)));
	}
	return changed;
}

/* mw_degraded_get - one component's state */
void mw_degraded_get(enum mw_degraded_id id, struct mw_degraded_state *state_r)
{
	memset(state_r, 0, sizeof(*state_r));
	if ((int)id < 0 || id >= MW_DEGRADED_COUNT_)
		return;
	(void)mw_strlcpy(state_r->component, components[id].name, sizeof(state_r->component));
	dlock();
	state_r->degraded = dt->s[id].degraded;
	state_r->since = dt->s[id].since;
	(void)mw_strlcpy(state_r->reason, dt->s[id].reason, sizeof(state_r->reason));
	(void)pthread_mutex_unlock(&dt->lock);
}

/* mw_degraded_render - the gauges of the watched components */
void mw_degraded_render(mw_str *out)
{
	struct state copy[MW_DEGRADED_COUNT_];
	size_t i;
	dlock();
	memcpy(copy, dt->s, sizeof(copy));
	(void)pthread_mutex_unlock(&dt->lock);
	(void)mw_str_appends(out, "# HELP " GAUGE " 1 while the component serves from a fallback "
	                          "(logged as event=degraded), else 0.\n# TYPE " GAUGE " gauge\n");
	for (i = 0; i < MW_N_ELEMENTS(copy); i++)
		if (copy[i].watched)
			(void)mw_str_appendf(out, GAUGE "{component=\"%s\"} %d\n",
			                     components[i].name, copy[i].degraded ? 1 : 0);
	(void)mw_str_appends(out, "# HELP " SINCE " When the degraded component entered the state "
	                          "(Unix time), with the reason word.\n# TYPE " SINCE " gauge\n");
	for (i = 0; i < MW_N_ELEMENTS(copy); i++)
		if (copy[i].watched && copy[i].degraded)
			(void)mw_str_appendf(out,
			                     SINCE "{component=\"%s\",reason=\"%s\"} %" PRId64 "\n",
			                     components[i].name, copy[i].reason, copy[i].since);
}

/* label - the value of NAME="..." at *p (a word: no escapes in what we print); advances *p */
static int label(const char **p, const char *end, const char *name, char *out, size_t size,
                 size_t max)
{
	size_t n = strlen(name);
	const char *q;
	if ((size_t)(end - *p) < n + 2 || memcmp(*p, name, n) != 0 || (*p)[n] != '=' ||
	    (*p)[n + 1] != '"')
		return -1;
	*p += n + 2;
	q = memchr(*p, '"', (size_t)(end - *p));
	if (q == NULL || !word_ok(*p, (size_t)(q - *p), max) || (size_t)(q - *p) >= size)
		return -1;
	memcpy(out, *p, (size_t)(q - *p));
	out[q - *p] = '\0';
	*p = q + 1;
	return 0;
}

/* parse_line - one mailwarden_degraded or _since_seconds line into states */
static int parse_line(const char *p, const char *end, struct mw_degraded_state *states, size_t max,
                      size_t *n, mw_error *error_r)
{
	bool since = false;
	char comp[32], reason[MW_DEGRADED_REASON_MAX + 1] = "";
	int64_t v = 0;
	size_t i;
	if ((size_t)(end - p) > strlen(SINCE) && memcmp(p, SINCE "{", strlen(SINCE) + 1) == 0) {
		since = true;
		p += strlen(SINCE) + 1;
	} else if ((size_t)(end - p) > strlen(GAUGE) &&
	           memcmp(p, GAUGE "{", strlen(GAUGE) + 1) == 0) {
		p += strlen(GAUGE) + 1;
	} else {
		return 0; /* another metric */
	}
	if (label(&p, end, "component", comp, sizeof(comp), sizeof(comp) - 1) < 0 ||
	    mw_degraded_lookup(comp) < 0) {
		mw_error_set(error_r, "degraded gauge: not a known component");
		return -1;
	}
	if (since &&
	    (p >= end || *p++ != ',' ||
	     label(&p, end, "reason", reason, sizeof(reason), MW_DEGRADED_REASON_MAX) < 0)) {
		mw_error_set(error_r, "degraded gauge %s: no reason", comp);
		return -1;
	}
	if (end - p < 3 || p[0] != '}' || p[1] != ' ') {
		mw_error_set(error_r, "degraded gauge %s: malformed", comp);
		return -1;
	}
	p += 2;
	if (p == end || (end - p > 1 && p[0] == '0'))
		goto bad;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
			goto bad;
		v = v * 10 + (*p - '0');
	}
	for (i = 0; i < *n; i++)
		if (strcmp(states[i].component, comp) == 0)
			break;
	if (since) {
		if (i == *n || !states[i].degraded || states[i].since != 0) {
			mw_error_set(error_r, "degraded gauge %s: since without a degraded state",
			             comp);
			return -1;
		}
		states[i].since = v;
		(void)mw_strlcpy(states[i].reason, reason, sizeof(states[i].reason));
		return 0;
	}
	if (i < *n || v > 1) {
		mw_error_set(error_r, "degraded gauge %s: twice, or not 0/1", comp);
		return -1;
	}
	if (*n == max) {
		mw_error_set(error_r, "degraded gauge: more than %zu components", max);
		return -1;
	}
	memset(&states[*n], 0, sizeof(states[*n]));
	(void)mw_strlcpy(states[*n].component, comp, sizeof(states[*n].component));
	states[*n].degraded = v == 1;
	(*n)++;
	return 0;
bad:
	mw_error_set(error_r, "degraded gauge %s: value is not a whole number", comp);
	return -1;
}

/* mw_degraded_parse - the degraded states in a metrics text */
int mw_degraded_parse(const char *text, size_t len, struct mw_degraded_state *states, size_t max,
                      size_t *n_r, mw_error *error_r)
{
	const char *p = text, *end = text + len;
	*n_r = 0;
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *le = lf != NULL ? lf : end;
		if (parse_line(p, le, states, max, n_r, error_r) < 0)
			return -1;
		p = lf != NULL ? lf + 1 : end;
	}
	for (size_t i = 0; i < *n_r; i++)
		if (states[i].degraded && states[i].since == 0) {
			mw_error_set(error_r, "degraded gauge %s: degraded without its since line",
			             states[i].component);
			return -1;
		}
	return 0;
}

/* mw_degraded_describe - doctor's words for a degraded component */
void mw_degraded_describe(const struct mw_degraded_state *s, char *buf, size_t size)
{
	int id = mw_degraded_lookup(s->component);
	char when[64] = "an unknown time";
	time_t t = (time_t)s->since;
	struct tm tm;
	if (s->since > 0 && gmtime_r(&t, &tm) != NULL)
		(void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (id < 0) {
		(void)snprintf(buf, size, "%s degraded since %s (reason %s)", s->component, when,
		               s->reason);
		return;
	}
	(void)snprintf(buf, size, "%s: %s unreachable since %s (reason %s) (fix: %s)",
	               components[id].fallback, components[id].missing, when,
	               s->reason[0] != '\0' ? s->reason : "unknown", components[id].fix);
}
