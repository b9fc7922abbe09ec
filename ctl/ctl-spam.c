/*
 * ctl-spam.c - mailwardenctl learn spam|ham and classify: the statistical classifier
 * (lib/mw-classify) from the command line, on the store (no --api mode).
 *
 * learn reads each PATH as one message file, a directory of message files (a maildir's
 * cur/ and new/ when it has them) or an mbox (a file whose first line starts "From ";
 * messages split at "From " lines, mboxrd ">From " unescaped). Learning runs in batches of
 * LEARN_BATCH messages per store transaction; a message already learned with the same
 * label is counted and skipped. Errors name the file (and the message number in an
 * mbox) and do not stop the run; the exit status is 1 when any message failed.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-classify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LEARN_BATCH 500
#define MESSAGE_MAX (64u * 1024 * 1024)

struct learn_run {
	mw_classifier *c;
	bool spam;
	unsigned long learned, known, failed, in_batch;
	int64_t start_us, last_progress_us; /* mw_mono_us */
	bool tty;
};

/* elapsed - seconds since SINCE_US (mw_mono_us) */
static double elapsed(int64_t since_us)
{
	return (double)(mw_mono_us() - since_us) / 1e6;
}

/* progress - one status line on a terminal, at most five times a second */
static void progress(struct learn_run *r, bool final)
{
	double secs = elapsed(r->start_us);
	unsigned long n = r->learned + r->known + r->failed;
	if (!r->tty || (!final && elapsed(r->last_progress_us) < 0.2))
		return;
	r->last_progress_us = mw_mono_us();
	fprintf(stderr, "\r%lu messages (%lu learned, %lu already known, %lu failed), %.0f/s ", n,
	        r->learned, r->known, r->failed, secs > 0 ? (double)n / secs : 0.0);
	if (final)
		fputc('\n', stderr);
}

/* learn_one - one message; errors name where it came from */
static int learn_one(struct learn_run *r, const char *msg, size_t len, const char *where,
                     unsigned long number)
{
	mw_error err = {""};
	int ret;
	if (len > MESSAGE_MAX) {
		ret = -1;
		mw_error_set(&err, "message too large (%zu bytes)", len);
	} else {
		ret = mw_classifier_learn(r->c, msg, len, r->spam, NULL, &err);
	}
	if (ret < 0) {
		r->failed++;
		if (r->tty)
			fputc('\n', stderr);
		if (number > 0)
			ctl_err("%s: message %lu: %s", where, number, err.msg);
		else
			ctl_err("%s: %s", where, err.msg);
		if (strstr(err.msg, "store") == err.msg)
			return -1; /* the store failed: the batch is gone, stop */
	} else if (ret == 1) {
		r->known++;
	} else {
		r->learned++;
	}
	if (++r->in_batch >= LEARN_BATCH) {
		r->in_batch = 0;
		if (mw_classifier_batch_end(r->c, true, &err) < 0 ||
		    mw_classifier_batch_begin(r->c, &err) < 0) {
			ctl_err("%s", err.msg);
			return -1;
		}
	}
	progress(r, false);
	return 0;
}

/* map_file - the whole file, read-only (NULL and *len_r = 0 for an empty file) */
static int map_file(const char *path, const char **data_r, size_t *len_r)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	void *p;
	*data_r = NULL;
	*len_r = 0;
	if (fd < 0) {
		ctl_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ctl_err("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size == 0) {
		close(fd);
		return 0;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		ctl_err("%s: %s", path, strerror(errno));
		return -1;
	}
	*data_r = p;
	*len_r = (size_t)st.st_size;
	return 0;
}

/* is_from_line - an mbox separator "From " at s */
static bool is_from_line(const char *s, size_t len)
{
	return len >= 5 && memcmp(s, "From ", 5) == 0;
}

/* learn_mbox - every message of an mbox (mboxrd unescaping of >From lines) */
static int learn_mbox(struct learn_run *r, const char *path, const char *data, size_t len)
{
	size_t pos = 0;
	unsigned long number = 0;
	mw_str msg;
	int ret = 0;
	mw_str_init(&msg, MESSAGE_MAX);
	while (pos < len && ret == 0) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end, line_end = nl != NULL ? (size_t)(nl - data) + 1 : len;
		bool over = false;
		/* pos is at a "From " line: the message runs to the next one */
		pos = line_end;
		mw_str_reset(&msg);
		number++;
		while (pos < len) {
			const char *l = data + pos;
			nl = memchr(l, '\n', len - pos);
			end = nl != NULL ? (size_t)(nl - data) + 1 : len;
			if (is_from_line(l, end - pos))
				break;
			if (l[0] == '>') { /* ">From " and ">>From ": one level less */
				size_t k = 0;
				while (pos + k < end && l[k] == '>')
					k++;
				if (is_from_line(l + k, end - pos - k))
					l++, pos++;
			}
			if (!over && mw_str_append(&msg, l, end - pos) < 0)
				over = true;
			pos = end;
		}
		if (over) {
			r->failed++;
			ctl_err("%s: message %lu: larger than %u bytes", path, number, MESSAGE_MAX);
			continue;
		}
		/* the empty line before the next "From " belongs to the separator */
		if (msg.len >= 2 && msg.buf[msg.len - 1] == '\n' && msg.buf[msg.len - 2] == '\n')
			msg.buf[--msg.len] = '\0';
		ret = learn_one(r, msg.buf != NULL ? msg.buf : "", msg.len, path, number);
	}
	mw_str_free(&msg);
	return ret;
}

/* learn_file - one message file or an mbox */
static int learn_file(struct learn_run *r, const char *path)
{
	const char *data;
	size_t len;
	int ret;
	if (map_file(path, &data, &len) < 0) {
		r->failed++;
		return 0;
	}
	if (len == 0) {
		r->failed++;
		ctl_err("%s: empty file", path);
		return 0;
	}
	if (is_from_line(data, len))
		ret = learn_mbox(r, path, data, len);
	else
		ret = learn_one(r, data, len, path, 0);
	munmap((void *)data, len);
	return ret;
}

/* cmp_str - qsort of names */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* learn_dir - every regular file in a directory (not recursive, dot files skipped) */
static int learn_dir(struct learn_run *r, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int ret = 0;
	if (d == NULL) {
		r->failed++;
		ctl_err("%s: %s", dir, strerror(errno));
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			names = mw_realloc(names, cap * sizeof(*names));
		}
		names[n++] = mw_strdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		mw_str p;
		struct stat st;
		mw_str_init(&p, 0);
		(void)mw_str_appendf(&p, "%s/%s", dir, names[i]);
		if (ret == 0 && lstat(p.buf, &st) == 0 && S_ISREG(st.st_mode))
			ret = learn_file(r, p.buf);
		mw_str_free(&p);
		free(names[i]);
	}
	free(names);
	return ret;
}

/* learn_path - a file, an mbox, a directory or a maildir */
static int learn_path(struct learn_run *r, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		r->failed++;
		ctl_err("%s: %s", path, strerror(errno));
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		mw_str cur, nw;
		struct stat cs, ns;
		int ret = 0;
		mw_str_init(&cur, 0);
		mw_str_init(&nw, 0);
		(void)mw_str_appendf(&cur, "%s/cur", path);
		(void)mw_str_appendf(&nw, "%s/new", path);
		if ((stat(cur.buf, &cs) == 0 && S_ISDIR(cs.st_mode)) ||
		    (stat(nw.buf, &ns) == 0 && S_ISDIR(ns.st_mode))) {
			if (stat(cur.buf, &cs) == 0 && S_ISDIR(cs.st_mode))
				ret = learn_dir(r, cur.buf);
			if (ret == 0 && stat(nw.buf, &ns) == 0 && S_ISDIR(ns.st_mode))
				ret = learn_dir(r, nw.buf);
		} else {
			ret = learn_dir(r, path);
		}
		mw_str_free(&cur);
		mw_str_free(&nw);
		return ret;
	}
	return learn_file(r, path);
}

/* open_classifier - the global model with the [classifier] settings */
static int open_classifier(struct mw_ctl *ctl, mw_classifier **c_r)
{
	struct mw_classifier_settings set;
	mw_error err = {""};
	if (mw_classifier_open(ctl->store, c_r, &err) < 0) {
		ctl_err("%s", err.msg);
		return EXIT_ERROR;
	}
	mw_classifier_settings_from_config(ctl->cfg, &set);
	mw_classifier_configure(*c_r, &set);
	return EXIT_OK;
}

/* cmd_learn - learn spam|ham PATH... */
int cmd_learn(struct mw_ctl *ctl, int argc, char **argv)
{
	struct learn_run r;
	struct ctl_opts o;
	mw_error err = {""};
	int first, i, ret = 0;
	int64_t ns, nh;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 1000000) != EXIT_OK)
		return EXIT_USAGE;
	memset(&r, 0, sizeof(r));
	r.spam = strcmp(ctl_current->name, "spam") == 0;
	r.tty = isatty(STDERR_FILENO) == 1;
	if (open_classifier(ctl, &r.c) != EXIT_OK)
		return EXIT_ERROR;
	r.start_us = mw_mono_us();
	if (mw_classifier_batch_begin(r.c, &err) < 0) {
		ctl_err("%s", err.msg);
		mw_classifier_close(&r.c);
		return EXIT_ERROR;
	}
	for (i = first; i < argc && ret == 0; i++)
		ret = learn_path(&r, argv[i]);
	if (mw_classifier_batch_end(r.c, ret == 0, &err) < 0) {
		ctl_err("%s", err.msg);
		ret = -1;
	}
	progress(&r, true);
	mw_classifier_counts(r.c, &ns, &nh);
	printf("%s: %lu learned, %lu already known, %lu failed in %.1f s; the model now holds "
	       "%lld spam and %lld ham\n",
	       r.spam ? "spam" : "ham", r.learned, r.known, r.failed, elapsed(r.start_us),
	       (long long)ns, (long long)nh);
	mw_classifier_close(&r.c);
	if (r.learned > 0) {
		if (ctl_audit(ctl, MW_AUDIT_CLASSIFIER_LEARN, "classifier",
		              json_pack("{s:s,s:I}", "class", r.spam ? "spam" : "ham", "messages",
		                        (json_int_t)r.learned)) != EXIT_OK)
			ret = -1;
	}
	return ret == 0 && r.failed == 0 ? EXIT_OK : EXIT_ERROR;
}

/* cmd_classify - classify FILE: probability by both methods and the strongest tokens */
int cmd_classify(struct mw_ctl *ctl, int argc, char **argv)
{
	struct mw_classifier_clue clues[20];
	struct ctl_opts o;
	mw_classifier *c;
	mw_error err = {""};
	const char *data;
	size_t len, n, i;
	int first, ret = EXIT_OK, m;
	int64_t ns, nh;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (map_file(argv[first], &data, &len) < 0)
		return EXIT_ERROR;
	if (open_classifier(ctl, &c) != EXIT_OK) {
		if (data != NULL)
			munmap((void *)data, len);
		return EXIT_ERROR;
	}
	mw_classifier_counts(c, &ns, &nh);
	printf("model: %lld spam, %lld ham learned\n", (long long)ns, (long long)nh);
	for (m = 0; m < 3 && ret == EXIT_OK; m++) {
		enum mw_classifier_method meth = m == 0   ? MW_CLASSIFIER_COMBINED
		                                 : m == 1 ? MW_CLASSIFIER_LOGISTIC
		                                          : MW_CLASSIFIER_ROBINSON;
		double p;
		int r = mw_classifier_score_with(c, meth, data != NULL ? data : "", len, &p, &err);
		if (r < 0) {
			ctl_err("%s: %s", argv[first], err.msg);
			ret = EXIT_ERROR;
		} else if (r == 1) {
			printf("%s: too little training to judge\n",
			       mw_classifier_method_name(meth));
		} else {
			printf("%s: %.4f\n", mw_classifier_method_name(meth), p);
		}
	}
	if (ret == EXIT_OK && mw_classifier_explain(c, data != NULL ? data : "", len, clues,
	                                            MW_N_ELEMENTS(clues), &n, &err) == 0) {
		printf("%-40s %9s %7s %8s %8s\n", "token", "weight", "f(w)", "spam", "ham");
		for (i = 0; i < n; i++)
			printf("%-40s %9.4f %7.4f %8lld %8lld\n", clues[i].text, clues[i].weight,
			       clues[i].prob, (long long)clues[i].nspam, (long long)clues[i].nham);
	}
	mw_classifier_close(&c);
	if (data != NULL)
		munmap((void *)data, len);
	return ret;
}
