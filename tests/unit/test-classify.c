/* test-classify.c - lib/mw-classify on a synthetic labelled set written by the test: both
   methods separate held-out messages; too little training; dedupe; label flip; batches;
   the store round trip and another process's learning seen through refresh. */
#include "mw-build.h"
#include "mw-classify.h"
#include "mw-test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fixture {
	char dir[64];
	char url[128];
	mw_store *store;
	mw_classifier *c;
};

static uint64_t rng;

/* rnd - deterministic xorshift */
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static const char *const spam_words[] = {
    "viagra",  "winner",    "prize",       "casino",     "unsubscribe", "offer",
    "cheap",   "pills",     "bitcoin",     "investment", "guaranteed",  "limited",
    "click",   "exclusive", "bonus",       "loan",       "credit",      "diploma",
    "replica", "weight",    "inheritance", "lottery",    "claim",       "urgent"};
static const char *const ham_words[] = {
    "meeting",  "agenda", "patch",   "review",    "kernel",     "lunch",   "minutes",    "project",
    "deadline", "draft",  "report",  "commit",    "branch",     "release", "thanks",     "regards",
    "schedule", "budget", "invoice", "colleague", "conference", "slides",  "repository", "build"};
static const char *const common_words[] = {
    "the",         "and",   "you",     "this",   "that",  "with", "for",   "have",
    "from",        "your",  "will",    "about",  "more",  "time", "today", "please",
    "information", "email", "message", "here",   "there", "what", "when",  "which",
    "their",       "would", "could",   "should", "other", "into"};

/* make_msg - a synthetic message of the class (id makes it unique) */
static char *make_msg(bool spam, unsigned id)
{
	mw_str s;
	unsigned i;
	const char *const *cls = spam ? spam_words : ham_words;
	mw_str_init(&s, 0);
	mw_str_appendf(&s, "From: %s <sender%u@%s>\r\n", spam ? "Deals" : "Colleague", id % 7,
	               spam ? (id % 3 ? "promo.example.biz" : "mail.example.com")
	                    : (id % 3 ? "corp.example.org" : "mail.example.com"));
	mw_str_appendf(&s, "Subject: %s %s %s\r\n", cls[rnd(24)], common_words[rnd(30)],
	               cls[rnd(24)]);
	mw_str_appendf(&s, "Message-ID: <%u.%s@example.net>\r\n\r\n", id, spam ? "s" : "h");
	for (i = 0; i < 40; i++) {
		/* 25 % class words, 5 % words of the other class, the rest common */
		unsigned r = rnd(100);
		const char *w = r < 25   ? cls[rnd(24)]
		                : r < 30 ? (spam ? ham_words : spam_words)[rnd(24)]
		                         : common_words[rnd(30)];
		mw_str_appendf(&s, "%s%s", w, i % 10 == 9 ? "\r\n" : " ");
	}
	return mw_str_steal(&s);
}

static int setup(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	mw_error err = {""};
	struct mw_classifier_settings set;
	snprintf(f->dir, sizeof(f->dir), "/tmp/mw-test-classify.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->url, sizeof(f->url), "sqlite:%s/s.db", f->dir);
	f->store = mw_store_open(f->url, 2000, &err);
	assert_non_null(f->store);
	assert_int_equal(mw_store_migrate(f->store, &err), MW_STORE_OK);
	assert_int_equal(mw_classifier_open(f->store, &f->c, &err), 0);
	mw_classifier_settings_default(&set);
	set.min_spam = set.min_ham = 20;
	mw_classifier_configure(f->c, &set);
	rng = 0x1234567;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	mw_classifier_close(&f->c);
	mw_store_close(&f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* learn - learn a synthetic message, asserting the outcome */
static void learn(struct fixture *f, bool spam, unsigned id, int want)
{
	mw_error err = {""};
	char *m = make_msg(spam, id);
	int ret = mw_classifier_learn(f->c, m, strlen(m), spam, NULL, &err);
	if (ret != want)
		fprintf(stderr, "learn: %d %s\n", ret, err.msg);
	assert_int_equal(ret, want);
	free(m);
}

/* train - n spam and n ham */
static void train(struct fixture *f, unsigned n)
{
	unsigned i;
	for (i = 0; i < n; i++) {
		learn(f, true, i, 0);
		learn(f, false, i, 0);
	}
}

static void test_too_little_training(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	char *m = make_msg(true, 9999);
	double p = 0.5;
	train(f, 10);
	assert_int_equal(mw_classifier_score(f->c, m, strlen(m), &p, &err), 1);
	assert_true(p == -1.0);
	free(m);
}

static void test_separates(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	unsigned i, meth, right[2] = {0, 0};
	train(f, 150);
	for (meth = 0; meth < 2; meth++) {
		rng = 0xfeedbeef; /* the same held-out set for both methods */
		for (i = 0; i < 100; i++) {
			bool spam = i % 2 == 0;
			char *m = make_msg(spam, 100000 + i);
			double p;
			assert_int_equal(
			    mw_classifier_score_with(
			        f->c, meth == 0 ? MW_CLASSIFIER_LOGISTIC : MW_CLASSIFIER_ROBINSON,
			        m, strlen(m), &p, &err),
			    0);
			assert_true(p >= 0.0 && p <= 1.0);
			if ((p >= 0.5) == spam)
				right[meth]++;
			free(m);
		}
	}
	assert_true(right[0] >= 97);
	assert_true(right[1] >= 97);
}

/* combined is the mean of the two methods sharpened onto the bands' scale,
   m^2 / (m^2 + (1-m)^2) (bench/README.md: the plain mean put the 0.2 % FPR point at ~0.59,
   below the whole scorer's BAYES_67 edge) */
static void test_combined_is_sharpened_mean(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	unsigned i, differs = 0;
	train(f, 40);
	rng = 0xabcdef12;
	for (i = 0; i < 60; i++) {
		char *m = make_msg(i % 2 == 0, 200000 + i);
		double pr, pl, pc, mean, want;
		assert_int_equal(
		    mw_classifier_score_with(f->c, MW_CLASSIFIER_ROBINSON, m, strlen(m), &pr, &err),
		    0);
		assert_int_equal(
		    mw_classifier_score_with(f->c, MW_CLASSIFIER_LOGISTIC, m, strlen(m), &pl, &err),
		    0);
		assert_int_equal(
		    mw_classifier_score_with(f->c, MW_CLASSIFIER_COMBINED, m, strlen(m), &pc, &err),
		    0);
		mean = (pr + pl) / 2.0;
		want = mean * mean / (mean * mean + (1.0 - mean) * (1.0 - mean));
		assert_true(fabs(pc - want) < 1e-9);
		if (fabs(want - mean) > 1e-3)
			differs++;
		free(m);
	}
	assert_true(differs >= 10); /* not only messages where the two coincide (0, 0.5, 1) */
}

/* clue_weight - the logistic weight of the message's token text (must be known) */
static double clue_weight(struct fixture *f, const char *msg, const char *text)
{
	struct mw_classifier_clue clues[16];
	mw_error err = {""};
	size_t n = 0, i;
	assert_int_equal(mw_classifier_explain(f->c, msg, strlen(msg), clues, 16, &n, &err), 0);
	for (i = 0; i < n; i++)
		if (strcmp(clues[i].text, text) == 0)
			return clues[i].weight;
	fail_msg("no clue %s", text);
	return 0.0;
}

/* ham learns at 1.5 times the rate of spam (a false positive costs more): one gradient step
   from an empty model moves a ham token's weight by 0.03 * p, a spam token's by 0.02 * (1-p) */
static void test_ham_learns_faster(void **state)
{
	struct fixture *f = *state;
	static const char spam[] = "Subject: one\r\nMessage-ID: <1@x>\r\n\r\nzorkspam\r\n";
	static const char ham[] = "Subject: two\r\nMessage-ID: <2@x>\r\n\r\nzorkham\r\n";
	struct mw_classifier_settings set;
	mw_error err = {""};
	double ws, wh;
	mw_classifier_settings_default(&set);
	set.max_steps = 1;
	mw_classifier_configure(f->c, &set);
	assert_int_equal(mw_classifier_learn(f->c, spam, strlen(spam), true, NULL, &err), 0);
	assert_int_equal(mw_classifier_learn(f->c, ham, strlen(ham), false, NULL, &err), 0);
	ws = clue_weight(f, spam, "zorkspam");
	wh = clue_weight(f, ham, "zorkham");
	assert_true(fabs(ws - 0.01) < 1e-6); /* 0.02 * (1 - 0.5) */
	assert_true(wh < 0.0);
	/* 0.03 * sigmoid(z) with z > 0 from the bias and shared header tokens: over 0.015 */
	assert_true(-wh > 1.45 * ws);
}

/* with_field - FIELD (a header line) in front of a synthetic message */
static char *with_field(const char *field, bool spam, unsigned id)
{
	char *m = make_msg(spam, id);
	mw_str s;
	mw_str_init(&s, 0);
	mw_str_appends(&s, field);
	mw_str_appends(&s, m);
	free(m);
	return mw_str_steal(&s);
}

/* The stored copies users train on carry our own verdict (X-Mailwarden-Spam) and the mail
   store's fields; the milter scores the message as received, where a sender can write
   them. Learned from stored copies, they must not move a score. */
static void test_forged_verdict_header(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	unsigned i;
	double plain, forged;
	char *m;
	for (i = 0; i < 60; i++) {
		m = with_field("X-Mailwarden-Spam: yes; score=7.00; tests=BAYES_99\r\n"
		               "X-Keywords: $Junk\r\nDelivered-To: bob@example.net\r\n",
		               true, i);
		assert_int_equal(mw_classifier_learn(f->c, m, strlen(m), true, NULL, &err), 0);
		free(m);
		m = with_field("X-Mailwarden-Spam: no; score=-1.50; tests=BAYES_00\r\n"
		               "X-Keywords: NonJunk\r\nDelivered-To: alice@example.net\r\n",
		               false, i);
		assert_int_equal(mw_classifier_learn(f->c, m, strlen(m), false, NULL, &err), 0);
		free(m);
	}
	rng = 0xfeedbeef;
	m = make_msg(true, 5000);
	assert_int_equal(mw_classifier_score(f->c, m, strlen(m), &plain, &err), 0);
	free(m);
	rng = 0xfeedbeef; /* the same message, with a forged verdict and store fields */
	m = with_field("X-Mailwarden-Spam: no; score=-1.50; tests=BAYES_00\r\n"
	               "X-Keywords: NonJunk\r\nDelivered-To: alice@example.net\r\n",
	               true, 5000);
	assert_int_equal(mw_classifier_score(f->c, m, strlen(m), &forged, &err), 0);
	free(m);
	assert_true(plain > 0.5);
	assert_true(fabs(forged - plain) < 1e-9);
}

static void test_dedupe_and_flip(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	int64_t ns, nh;
	char *m, *crlf;
	size_t i, k = 0;
	train(f, 30);
	mw_classifier_counts(f->c, &ns, &nh);
	assert_int_equal(ns, 30);
	assert_int_equal(nh, 30);
	/* the same message again: nothing learned */
	rng = 0x1234567;
	learn(f, true, 0, 1);
	/* the same content with LF line ends is the same message */
	m = make_msg(true, 424242);
	assert_int_equal(mw_classifier_learn(f->c, m, strlen(m), true, NULL, &err), 0);
	crlf = mw_malloc(strlen(m) + 1);
	for (i = 0; m[i] != '\0'; i++)
		if (m[i] != '\r')
			crlf[k++] = m[i];
	crlf[k] = '\0';
	assert_int_equal(mw_classifier_learn(f->c, crlf, k, true, NULL, &err), 1);
	mw_classifier_counts(f->c, &ns, &nh);
	assert_int_equal(ns, 31);
	/* the label flips: unlearned as spam, learned as ham */
	assert_int_equal(mw_classifier_learn(f->c, crlf, k, false, NULL, &err), 0);
	mw_classifier_counts(f->c, &ns, &nh);
	assert_int_equal(ns, 30);
	assert_int_equal(nh, 31);
	assert_int_equal(mw_classifier_learn(f->c, m, strlen(m), false, NULL, &err), 1);
	/* an explicit Message-ID dedupes messages whose headers differ */
	assert_int_equal(
	    mw_classifier_learn(f->c, "Subject: a\r\n\r\nsame body\r\n", 26, true, "<x@y>", &err),
	    0);
	assert_int_equal(
	    mw_classifier_learn(f->c, "Subject: b\r\n\r\nsame body\r\n", 26, true, "<x@y>", &err),
	    1);
	free(m);
	free(crlf);
}

static void test_round_trip_and_refresh(void **state)
{
	struct fixture *f = *state;
	struct mw_classifier_settings set;
	mw_error err = {""};
	mw_store *store2;
	mw_classifier *other;
	char *m;
	double p1, p2, r1, r2, p;
	int64_t ns, nh;
	/* a second process, opened before the learning */
	store2 = mw_store_open(f->url, 2000, &err);
	assert_non_null(store2);
	assert_int_equal(mw_classifier_open(store2, &other, &err), 0);
	mw_classifier_settings_default(&set);
	set.min_spam = set.min_ham = 20;
	set.refresh_ms = 0;
	mw_classifier_configure(other, &set);
	train(f, 60);
	m = make_msg(true, 777777);
	assert_int_equal(
	    mw_classifier_score_with(f->c, MW_CLASSIFIER_LOGISTIC, m, strlen(m), &p1, &err), 0);
	assert_int_equal(
	    mw_classifier_score_with(f->c, MW_CLASSIFIER_ROBINSON, m, strlen(m), &r1, &err), 0);
	/* the other one sees it after its refresh (its default method: combined, the mean
	   sharpened) */
	assert_int_equal(mw_classifier_score(other, m, strlen(m), &p2, &err), 0);
	p = (p1 + r1) / 2;
	assert_true(fabs(p * p / (p * p + (1 - p) * (1 - p)) - p2) < 1e-3);
	mw_classifier_counts(other, &ns, &nh);
	assert_int_equal(ns, 60);
	assert_int_equal(nh, 60);
	mw_classifier_close(&other);
	/* reopened from the store: the same scores */
	mw_classifier_close(&f->c);
	assert_int_equal(mw_classifier_open(f->store, &f->c, &err), 0);
	set.refresh_ms = 1000;
	mw_classifier_configure(f->c, &set);
	assert_int_equal(
	    mw_classifier_score_with(f->c, MW_CLASSIFIER_LOGISTIC, m, strlen(m), &p2, &err), 0);
	assert_int_equal(
	    mw_classifier_score_with(f->c, MW_CLASSIFIER_ROBINSON, m, strlen(m), &r2, &err), 0);
	assert_true(fabs(p1 - p2) < 1e-3);
	assert_true(fabs(r1 - r2) < 1e-9);
	mw_store_close(&store2);
	free(m);
}

static void test_batch(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	int64_t ns, nh;
	train(f, 25);
	assert_int_equal(mw_classifier_batch_begin(f->c, &err), 0);
	learn(f, true, 5000, 0);
	assert_int_equal(
	    mw_classifier_learn(f->c, "Subject: a\r\n\r\nbody\r\n", 21, true, "<b@c>", &err), 0);
	/* dedupe sees the batch's own uncommitted rows */
	assert_int_equal(
	    mw_classifier_learn(f->c, "Subject: a\r\n\r\nbody\r\n", 21, true, "<b@c>", &err), 1);
	assert_int_equal(mw_classifier_batch_end(f->c, false, &err), 0); /* rolled back */
	mw_classifier_counts(f->c, &ns, &nh);
	assert_int_equal(ns, 25);
	assert_int_equal(mw_classifier_batch_begin(f->c, &err), 0);
	learn(f, true, 5000, 0);
	assert_int_equal(mw_classifier_batch_end(f->c, true, &err), 0);
	mw_classifier_counts(f->c, &ns, &nh);
	assert_int_equal(ns, 26);
}

static void test_refused_message(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	mw_str s;
	double p;
	unsigned i;
	mw_str_init(&s, 0);
	for (i = 0; i < 1000; i++)
		mw_str_appends(&s, "Content-Type: multipart/mixed; boundary=a\r\n");
	assert_int_equal(mw_classifier_score(f->c, s.buf, s.len, &p, &err), -1);
	assert_non_null(strstr(err.msg, "parsing the message"));
	assert_int_equal(mw_classifier_learn(f->c, s.buf, s.len, true, NULL, &err), -1);
	mw_str_free(&s);
}

/* tokens_cb - collect every token row */
struct rows {
	struct mw_spam_token v[4096];
	size_t n;
};
static void rows_cb(void *ctx, const struct mw_spam_token *t)
{
	struct rows *r = ctx;
	if (r->n < 4096)
		r->v[r->n++] = *t;
}

/* row_of - the row of hash in r, or NULL */
static const struct mw_spam_token *row_of(const struct rows *r, uint64_t hash)
{
	size_t i;
	for (i = 0; i < r->n; i++)
		if (r->v[i].hash == hash)
			return &r->v[i];
	return NULL;
}

/* learner_learn - prepare and learn a message through a learner (the plugin's path) */
static int learner_learn(mw_classifier *c, const char *m, const char *who, bool spam)
{
	struct mw_classifier_settings set;
	unsigned char dg[MW_SPAM_DIGEST_LEN];
	struct mw_tokens t;
	mw_error err = {""};
	int ret;
	mw_classifier_settings_default(&set);
	mw_tokens_init(&t, false);
	assert_int_equal(mw_classifier_prepare(set.token_flags, m, strlen(m), who, &t, dg, &err),
	                 0);
	ret = mw_classifier_learn_tokens(c, t.hash, t.count, dg, spam, &err);
	if (ret < 0)
		fprintf(stderr, "learner: %s\n", err.msg);
	mw_tokens_free(&t);
	return ret;
}

/* A learner (no model in memory) writes the same rows as a loaded classifier would, per
   user digests count each user's judgement once, and a flip moves the counts. */
static void test_learner_matches_and_dedupes_per_user(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	char url[160];
	mw_store *s2;
	mw_classifier *learner, *check;
	struct rows *a = mw_calloc(1, sizeof(*a)), *b = mw_calloc(1, sizeof(*b));
	struct mw_spam_meta meta;
	unsigned i;
	size_t k;

	snprintf(url, sizeof(url), "sqlite:%s/learner.db", f->dir);
	s2 = mw_store_open(url, 2000, &err);
	assert_non_null(s2);
	assert_int_equal(mw_store_migrate(s2, &err), MW_STORE_OK);
	assert_int_equal(mw_classifier_open_learner(s2, &learner, &err), 0);
	/* the same sequence through both paths: identical token rows */
	for (i = 0; i < 30; i++) {
		char *m = make_msg(i % 2 == 0, i);
		assert_int_equal(mw_classifier_learn(f->c, m, strlen(m), i % 2 == 0, NULL, &err),
		                 0);
		assert_int_equal(learner_learn(learner, m, NULL, i % 2 == 0), 0);
		free(m);
	}
	assert_int_equal(mw_store_spam_tokens_load(f->store, 0, 0, rows_cb, a, &err), MW_STORE_OK);
	assert_int_equal(mw_store_spam_tokens_load(s2, 0, 0, rows_cb, b, &err), MW_STORE_OK);
	assert_true(a->n > 50);
	assert_int_equal(a->n, b->n);
	for (k = 0; k < a->n; k++) {
		const struct mw_spam_token *o = row_of(b, a->v[k].hash);
		assert_non_null(o);
		assert_int_equal(o->nspam, a->v[k].nspam);
		assert_int_equal(o->nham, a->v[k].nham);
		assert_true(fabs(o->weight - a->v[k].weight) < 1e-3);
	}

	/* per user: alice's judgement counts once however often; bob's is his own vote */
	{
		char *m = make_msg(true, 1000);
		assert_int_equal(learner_learn(learner, m, "alice@example.com", true), 0);
		assert_int_equal(learner_learn(learner, m, "alice@example.com", true), 1);
		assert_int_equal(learner_learn(learner, m, "bob@example.com", true), 0);
		assert_int_equal(mw_store_spam_meta_get(s2, 0, &meta, &err), MW_STORE_OK);
		assert_int_equal(meta.nspam, 15 + 2);
		assert_int_equal(meta.nham, 15);
		/* alice moves it out of Junk: her spam is unlearned, ham learned */
		assert_int_equal(learner_learn(learner, m, "alice@example.com", false), 0);
		assert_int_equal(learner_learn(learner, m, "alice@example.com", false), 1);
		assert_int_equal(mw_store_spam_meta_get(s2, 0, &meta, &err), MW_STORE_OK);
		assert_int_equal(meta.nspam, 15 + 1);
		assert_int_equal(meta.nham, 15 + 1);
		/* a loaded classifier on that store sees the learner's work */
		assert_int_equal(mw_classifier_open(s2, &check, &err), 0);
		{
			int64_t ns, nh;
			mw_classifier_counts(check, &ns, &nh);
			assert_int_equal(ns, 16);
			assert_int_equal(nh, 16);
		}
		mw_classifier_close(&check);
		free(m);
	}
	mw_classifier_close(&learner);
	mw_store_close(&s2);
	free(a);
	free(b);
}

/* A learner whose store is locked by another writer fails (the plugin spools then) and
   leaves nothing half-learned: the retry learns it once. */
static void test_learner_store_busy(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	mw_store *s2, *s3;
	mw_classifier *learner;
	struct mw_spam_meta meta;
	char *m = make_msg(true, 7);

	s2 = mw_store_open(f->url, 100, &err);
	assert_non_null(s2);
	s3 = mw_store_open(f->url, 100, &err);
	assert_non_null(s3);
	assert_int_equal(mw_classifier_open_learner(s2, &learner, &err), 0);
	assert_int_equal(mw_store_spam_batch_begin(s3, &err), MW_STORE_OK); /* holds the lock */
	assert_int_equal(learner_learn(learner, m, "carol@example.com", true), -1);
	assert_int_equal(mw_store_spam_batch_end(s3, false, &err), MW_STORE_OK);
	assert_int_equal(mw_store_spam_meta_get(s2, 0, &meta, &err), MW_STORE_OK);
	assert_int_equal(meta.nspam, 0);
	assert_int_equal(learner_learn(learner, m, "carol@example.com", true), 0);
	assert_int_equal(learner_learn(learner, m, "carol@example.com", true), 1);
	assert_int_equal(mw_store_spam_meta_get(s2, 0, &meta, &err), MW_STORE_OK);
	assert_int_equal(meta.nspam, 1);
	mw_classifier_close(&learner);
	mw_store_close(&s2);
	mw_store_close(&s3);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_too_little_training, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_separates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_combined_is_sharpened_mean, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forged_verdict_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ham_learns_faster, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedupe_and_flip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_and_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_learner_matches_and_dedupes_per_user, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_learner_store_busy, setup, teardown),
	};
	MW_RUN_TESTS(tests);
}
