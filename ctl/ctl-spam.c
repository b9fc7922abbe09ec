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
 *
 * learn --user U learns as the Dovecot plugin does for U: under U's digest of the message,
 * into U's own model ([classifier] per_user) and, with user_learn_global, into the global
 * one, through a learner (lib/mw-classify: no model loaded). After a learn run the
 * automatic expiry of each model it taught runs when due (expire_interval).
 *
 * spam stats [--user U] shows learned counts, token rows and their learn times; spam
 * expire [--dry-run] [--user U] expires tokens now (every model, or U's only).
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
	/* --user: U's digest, U's model (scope), the global one too (learn_global) */
	const char *who;
	int64_t user_scope;
	bool user_model, global_model;
	unsigned token_flags;
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

/* learn_user - one message as user r->who taught it: 0 learned into some model, 1 every
   model knew it, -1 error */
static int learn_user(struct learn_run *r, const char *msg, size_t len, mw_error *err)
{
	unsigned char dg[MW_SPAM_DIGEST_LEN];
	struct mw_tokens t;
	int ret = 1, rr;
	mw_tokens_init(&t, false);
	if (mw_classifier_prepare(r->token_flags, msg, len, r->who, &t, dg, err) < 0) {
		mw_tokens_free(&t);
		return -1;
	}
	if (r->user_model) {
		rr = mw_classifier_learn_tokens_in(r->c, r->user_scope, t.hash, t.count, dg,
		                                   r->spam, err);
		ret = rr < 0 ? -1 : rr == 0 ? 0 : ret;
	}
	if (ret >= 0 && r->global_model) {
		rr = mw_classifier_learn_tokens_in(r->c, 0, t.hash, t.count, dg, r->spam, err);
		ret = rr < 0 ? -1 : rr == 0 ? 0 : ret;
	}
	mw_tokens_free(&t);
	return ret;
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
	} else if (r->who == NULL) {
		ret = mw_classifier_learn(r->c, msg, len, r->spam, NULL, &err);
	} else {
		ret = learn_user(r, msg, len, &err);
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

/* learn_trouble - what could not be read is a failed message */
static void learn_trouble(void *ctx, enum ctl_mail_trouble kind, const char *where,
                          unsigned long number, const char *why)
{
	struct learn_run *r = ctx;
	(void)kind;
	r->failed++;
	if (number > 0)
		ctl_err("%s: message %lu: %s", where, number, why);
	else
		ctl_err("%s: %s", where, why);
}

/* learn_message - ctl_mail_read_path's message callback */
static int learn_message(void *ctx, const char *msg, size_t len, const char *where,
                         unsigned long number, bool *done_r)
{
	*done_r = false;
	return learn_one(ctx, msg, len, where, number);
}

/* open_classifier - the global model (LEARNER: a learner, which loads no model) with the
   [classifier] settings */
static int open_classifier(struct mw_ctl *ctl, bool learner, mw_classifier **c_r)
{
	struct mw_classifier_settings set;
	mw_error err = {""};
	int ret = learner ? mw_classifier_open_learner(ctl->store, c_r, &err)
	                  : mw_classifier_open(ctl->store, c_r, &err);
	if (ret < 0) {
		ctl_err("%s", err.msg);
		return EXIT_ERROR;
	}
	mw_classifier_settings_from_config(ctl->cfg, &set);
	mw_classifier_configure(*c_r, &set);
	return EXIT_OK;
}

/* What a command with [--user U] works on. */
struct spam_target {
	struct mw_classifier_settings set; /* the [classifier] settings */
	char name[MW_USERNAME_MAX + 1];    /* U normalised; "" without --user */
	int64_t scope;                     /* U's model (U's users.id); 0, the global one */
};

/* spam_target - the target of --user (in o): EXIT_OK, or an exit status */
static int spam_target(struct mw_ctl *ctl, const struct ctl_opts *o, struct spam_target *t)
{
	struct mw_user u;
	mw_error err = {""};
	int ret;
	mw_classifier_settings_from_config(ctl->cfg, &t->set);
	t->name[0] = '\0';
	t->scope = 0;
	if (o->user == NULL)
		return EXIT_OK;
	if (ctl_username(o->user, t->name, sizeof(t->name)) < 0)
		return EXIT_USAGE;
	ret = mw_store_user_get(ctl->store, t->name, &u, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, t->name);
	t->scope = u.id;
	mw_user_clear(&u);
	return EXIT_OK;
}

/* print_expiry - one line for an expiry run that deleted something */
static void print_expiry(const char *model, const struct mw_spam_expire_result *x, bool dry)
{
	printf("%s: %s %lld of %lld token rows (%lld by age, %lld over the size bound), %lld "
	       "learned-message records\n",
	       model, dry ? "would expire" : "expired", (long long)(x->by_age + x->by_size),
	       (long long)x->tokens_before, (long long)x->by_age, (long long)x->by_size,
	       (long long)x->digests);
}

/* auto_expire - the automatic expiry of one model after a learn run (when due) */
static int auto_expire(struct mw_ctl *ctl, int64_t scope, const char *model)
{
	struct mw_classifier_settings set;
	struct mw_spam_expire_result x;
	mw_error err = {""};
	int ret;
	mw_classifier_settings_from_config(ctl->cfg, &set);
	ret = mw_classifier_expire_auto(ctl->store, scope, &set, &x, &err);
	if (ret < 0) {
		ctl_err("expiry of %s: %s", model, err.msg);
		return -1;
	}
	if (ret > 0 && x.by_age + x.by_size + x.digests > 0)
		print_expiry(model, &x, false);
	return 0;
}

/* cmd_learn - learn spam|ham [--user U] PATH... */
int cmd_learn(struct mw_ctl *ctl, int argc, char **argv)
{
	struct learn_run r;
	struct ctl_opts o;
	struct spam_target t;
	mw_error err = {""};
	int first, i, ret = 0;
	int64_t ns, nh;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 1, 1000000, OPT_USER);
	memset(&r, 0, sizeof(r));
	r.spam = strcmp(ctl_current->name, "spam") == 0;
	r.tty = isatty(STDERR_FILENO) == 1;
	ret = spam_target(ctl, &o, &t);
	if (ret != EXIT_OK)
		return ret;
	r.token_flags = t.set.token_flags;
	r.global_model = true;
	if (o.user != NULL) {
		r.who = t.name;
		r.user_scope = t.scope;
		r.user_model = t.set.per_user;
		r.global_model = !t.set.per_user || t.set.learn_global;
	}
	if (open_classifier(ctl, o.user != NULL, &r.c) != EXIT_OK)
		return EXIT_ERROR;
	r.start_us = mw_mono_us();
	if (mw_classifier_batch_begin(r.c, &err) < 0) {
		ctl_err("%s", err.msg);
		mw_classifier_close(&r.c);
		return EXIT_ERROR;
	}
	struct ctl_mail_reader rd = {
	    .max = MESSAGE_MAX, .ctx = &r, .message = learn_message, .trouble = learn_trouble};
	for (i = first; i < argc && ret == 0; i++)
		ret = ctl_mail_read_path(&rd, argv[i]);
	if (mw_classifier_batch_end(r.c, ret == 0, &err) < 0) {
		ctl_err("%s", err.msg);
		ret = -1;
	}
	progress(&r, true);
	if (r.who == NULL) {
		mw_classifier_counts(r.c, &ns, &nh);
		printf("%s: %lu learned, %lu already known, %lu failed in %.1f s; the model now "
		       "holds %lld spam and %lld ham\n",
		       r.spam ? "spam" : "ham", r.learned, r.known, r.failed, elapsed(r.start_us),
		       (long long)ns, (long long)nh);
	} else {
		struct mw_spam_meta m;
		memset(&m, 0, sizeof(m));
		if (r.user_model)
			(void)mw_store_spam_meta_get(ctl->store, r.user_scope, &m, &err);
		printf("%s for %s: %lu learned, %lu already known, %lu failed in %.1f s; %s\n",
		       r.spam ? "spam" : "ham", r.who, r.learned, r.known, r.failed,
		       elapsed(r.start_us),
		       r.user_model ? "into the user's model and the global one"
		                    : "into the global model (per_user is off)");
		if (r.user_model)
			printf("%s's model now holds %lld spam and %lld ham\n", r.who,
			       (long long)m.nspam, (long long)m.nham);
		if (r.user_model && !r.global_model)
			printf("(user_learn_global = no: the global model was not taught)\n");
	}
	mw_classifier_close(&r.c);
	if (ret == 0 && r.learned > 0) {
		if (r.global_model && auto_expire(ctl, 0, "global model") < 0)
			ret = -1;
		if (r.user_model && auto_expire(ctl, r.user_scope, r.who) < 0)
			ret = -1;
	}
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
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 1, 1, -1);
	if (ctl_mail_map(argv[first], &data, &len) < 0) {
		ctl_err("%s: %s", argv[first],
		        errno == EINVAL ? "not a regular file" : strerror(errno));
		return EXIT_ERROR;
	}
	if (open_classifier(ctl, false, &c) != EXIT_OK) {
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

/* print_stats - one model's counts */
static void print_stats(const char *model, const struct mw_spam_stats *st)
{
	char a[40], b[40], c[40];
	printf("%s: %lld spam, %lld ham learned; %lld token rows, learned %s .. %s; last "
	       "expiry %s\n",
	       model, (long long)st->meta.nspam, (long long)st->meta.nham, (long long)st->tokens,
	       ctl_time(st->oldest, a, sizeof(a)), ctl_time(st->newest, b, sizeof(b)),
	       ctl_time(st->meta.expired_at, c, sizeof(c)));
}

/* scope_line - one per-user model of spam stats */
static void scope_line(void *ctx, int64_t scope, const char *username, int64_t nspam, int64_t nham)
{
	unsigned *n = ctx;
	(*n)++;
	printf("  %-40s %8lld spam %8lld ham\n", username[0] != '\0' ? username : "(deleted user)",
	       (long long)nspam, (long long)nham);
	(void)scope;
}

/* cmd_spam_stats - spam stats [--user U] */
int cmd_spam_stats(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct mw_spam_stats st;
	struct spam_target t;
	mw_error err = {""};
	int first, ret;
	unsigned n = 0;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_USER);
	ret = spam_target(ctl, &o, &t);
	if (ret != EXIT_OK)
		return ret;
	ret = mw_store_spam_stats(ctl->store, t.scope, &st, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "spam statistics");
	if (o.user != NULL) {
		print_stats(t.name, &st);
		printf("per_user %s; the model counts from %u spam and %u ham on\n",
		       t.set.per_user ? "on" : "off", t.set.user_min_spam, t.set.user_min_ham);
		return EXIT_OK;
	}
	print_stats("global model", &st);
	printf("per-user models (per_user %s):\n", t.set.per_user ? "on" : "off");
	ret = mw_store_spam_scopes(ctl->store, scope_line, &n, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "spam statistics");
	if (n == 0)
		printf("  none\n");
	return EXIT_OK;
}

struct expire_all {
	struct mw_ctl *ctl;
	const struct mw_classifier_settings *set;
	bool dry_run;
	int64_t scope[1024];
	char name[1024][MW_USERNAME_MAX + 1];
	unsigned n;
};

/* collect_scope - remember one per-user model to expire (expiry runs after the listing) */
static void collect_scope(void *ctx, int64_t scope, const char *username, int64_t nspam,
                          int64_t nham)
{
	struct expire_all *ea = ctx;
	(void)nspam;
	(void)nham;
	if (ea->n >= MW_N_ELEMENTS(ea->scope))
		return;
	ea->scope[ea->n] = scope;
	(void)mw_strlcpy(ea->name[ea->n], username[0] != '\0' ? username : "(deleted user)",
	                 sizeof(ea->name[0]));
	ea->n++;
}

/* expire_one - spam expire of one model */
static int expire_one(struct mw_ctl *ctl, const struct mw_classifier_settings *set, int64_t scope,
                      const char *model, bool dry_run)
{
	struct mw_spam_expire_result x;
	mw_error err = {""};
	if (mw_classifier_expire(ctl->store, scope, set, dry_run, 0, &x, &err) < 0) {
		ctl_err("%s: %s", model, err.msg);
		return -1;
	}
	print_expiry(model, &x, dry_run);
	return 0;
}

/* cmd_spam_expire - spam expire [--dry-run] [--user U] */
int cmd_spam_expire(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct spam_target t;
	struct expire_all *ea;
	mw_error err = {""};
	int first, ret = 0;
	unsigned i;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_USER, OPT_DRY_RUN);
	ret = spam_target(ctl, &o, &t);
	if (ret != EXIT_OK)
		return ret;
	if (o.user != NULL)
		return expire_one(ctl, &t.set, t.scope, t.name, o.dry_run) < 0 ? EXIT_ERROR
		                                                               : EXIT_OK;
	if (expire_one(ctl, &t.set, 0, "global model", o.dry_run) < 0)
		return EXIT_ERROR;
	ea = mw_calloc(1, sizeof(*ea));
	if (mw_store_spam_scopes(ctl->store, collect_scope, ea, &err) != MW_STORE_OK) {
		ctl_err("%s", err.msg);
		free(ea);
		return EXIT_ERROR;
	}
	for (i = 0; i < ea->n; i++)
		if (expire_one(ctl, &t.set, ea->scope[i], ea->name[i], o.dry_run) < 0)
			ret = -1;
	if (ea->n == MW_N_ELEMENTS(ea->scope))
		printf("(the first %u per-user models only: run again for the rest)\n", ea->n);
	free(ea);
	return ret == 0 ? EXIT_OK : EXIT_ERROR;
}
