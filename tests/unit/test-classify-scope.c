/* test-classify-scope.c - lib/mw-classify's per-user models and token expiry, on both store
 * backends (MW_TEST_DB_BOTH): scopes kept apart (counts, dedupe per scope and user), the
 * mixing of a user's model into the global one and the fallback while the user has taught
 * too little, expiry by age (counted back from the newest learn, with a clock the test
 * sets), by size (hapaxes first, bounded per run), dry runs, the claim of the automatic
 * run, and an in-memory reader that reloads after an expiry.
 */
#include "mw-build.h"
#include "mw-classify.h"
#include "mw-db-private.h"
#include "mw-test-db.h"
#include "mw-test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY 86400

struct fixture {
	struct mw_test_db *tdb;
	mw_store *store;
	mw_classifier *learner;
	struct mw_classifier_settings set;
};

static int64_t fake_now;

/* fake_clock - the time the test sets */
static int64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	mw_error err = {""};
	f->tdb = mw_test_db_create(*state);
	*state = f;
	f->store = mw_test_store_open(f->tdb->url);
	assert_int_equal(mw_classifier_open_learner(f->store, &f->learner, &err), 0);
	mw_classifier_settings_default(&f->set);
	f->set.min_spam = f->set.min_ham = 10;
	f->set.user_min_spam = f->set.user_min_ham = 10;
	f->set.refresh_ms = 0;
	f->set.clock = fake_clock;
	mw_classifier_configure(f->learner, &f->set);
	fake_now = 1700000000;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mw_classifier_close(&f->learner);
	mw_store_close(&f->store);
	mw_test_db_drop(&f->tdb);
	free(f);
	return 0;
}

/* msg_of - a message whose body is WORDS (id makes its Message-ID) */
static char *msg_of(unsigned id, const char *words)
{
	mw_str s;
	mw_str_init(&s, 0);
	(void)mw_str_appendf(&s, "Subject: test\r\nMessage-ID: <%u@scope.test>\r\n\r\n%s\r\n", id,
	                     words);
	return mw_str_steal(&s);
}

/* learn_in - learn a message as WHO into SCOPE through the learner: its return value */
static int learn_in(struct fixture *f, int64_t scope, const char *who, const char *m, bool spam)
{
	unsigned char dg[MW_SPAM_DIGEST_LEN];
	struct mw_tokens t;
	mw_error err = {""};
	int ret;
	mw_tokens_init(&t, false);
	assert_int_equal(mw_classifier_prepare(f->set.token_flags, m, strlen(m), who, &t, dg, &err),
	                 0);
	ret = mw_classifier_learn_tokens_in(f->learner, scope, t.hash, t.count, dg, spam, &err);
	if (ret < 0)
		fail_msg("learn: %s", err.msg);
	mw_tokens_free(&t);
	return ret;
}

/* meta_of - a scope's learned counts */
static struct mw_spam_meta meta_of(struct fixture *f, int64_t scope)
{
	struct mw_spam_meta m;
	mw_error err = {""};
	assert_int_equal(mw_store_spam_meta_get(f->store, scope, &m, &err), MW_STORE_OK);
	return m;
}

static void count_cb(void *ctx, const struct mw_spam_token *t)
{
	(void)t;
	(*(size_t *)ctx)++;
}

/* has_token - whether WORD (a body word) has a row in scope */
static bool has_token(struct fixture *f, int64_t scope, const char *word)
{
	uint64_t h = mw_token_hash(word, strlen(word));
	size_t n = 0;
	mw_error err = {""};
	assert_int_equal(mw_store_spam_tokens_get(f->store, scope, &h, 1, count_cb, &n, &err),
	                 MW_STORE_OK);
	return n > 0;
}

/* rows_of - the token rows of a scope */
static size_t rows_of(struct fixture *f, int64_t scope)
{
	size_t n = 0;
	mw_error err = {""};
	assert_int_equal(mw_store_spam_tokens_load(f->store, scope, 0, count_cb, &n, &err),
	                 MW_STORE_OK);
	return n;
}

/* Each scope counts its own learns; one user's judgement is deduped per scope; another
   user's judgement of the same message is a learn of its own. */
static void test_scope_separation(void **state)
{
	struct fixture *f = *state;
	char *m = msg_of(1, "cheap pills offer");
	struct mw_spam_meta a, b, g;
	mw_classifier *ca;
	mw_error err = {""};
	int64_t ns, nh;

	assert_int_equal(learn_in(f, 7, "alice@example.com", m, true), 0);
	assert_int_equal(learn_in(f, 0, "alice@example.com", m, true), 0);
	/* again: known in both scopes */
	assert_int_equal(learn_in(f, 7, "alice@example.com", m, true), 1);
	assert_int_equal(learn_in(f, 0, "alice@example.com", m, true), 1);
	/* bob's model never saw it; his own judgement (ham) is his */
	assert_int_equal(learn_in(f, 8, "bob@example.com", m, false), 0);
	a = meta_of(f, 7);
	b = meta_of(f, 8);
	g = meta_of(f, 0);
	assert_int_equal(a.nspam, 1);
	assert_int_equal(a.nham, 0);
	assert_int_equal(b.nspam, 0);
	assert_int_equal(b.nham, 1);
	assert_int_equal(g.nspam, 1);
	assert_int_equal(g.nham, 0);
	assert_true(has_token(f, 7, "pills"));
	assert_true(has_token(f, 0, "pills"));
	assert_true(has_token(f, 8, "pills"));
	assert_false(has_token(f, 9, "pills"));
	/* alice flips in her scope only: her model moves, the global one does not */
	assert_int_equal(learn_in(f, 7, "alice@example.com", m, false), 0);
	a = meta_of(f, 7);
	g = meta_of(f, 0);
	assert_int_equal(a.nspam, 0);
	assert_int_equal(a.nham, 1);
	assert_int_equal(g.nspam, 1);
	/* a loaded model of scope 7 sees scope 7 only; it learns only into its own scope */
	assert_int_equal(mw_classifier_open_scope(f->store, 7, &ca, &err), 0);
	assert_int_equal(mw_classifier_scope(ca), 7);
	mw_classifier_counts(ca, &ns, &nh);
	assert_int_equal(ns, 0);
	assert_int_equal(nh, 1);
	{
		uint64_t h = 1;
		unsigned char dg[MW_SPAM_DIGEST_LEN] = {0};
		assert_int_equal(mw_classifier_learn_tokens_in(ca, 0, &h, 1, dg, true, &err), -1);
	}
	mw_classifier_close(&ca);
	{
		/* stats and the list of per-user models */
		struct mw_spam_stats st;
		assert_int_equal(mw_store_spam_stats(f->store, 7, &st, &err), MW_STORE_OK);
		assert_int_equal(st.meta.nham, 1);
		assert_true(st.tokens >= 3);
		assert_int_equal(st.newest, fake_now);
	}
	free(m);
}

static const char *const spamish = "casino bonus winner lottery prize jackpot";
static const char *const hammish = "meeting agenda minutes review patch build";

/* train_inverted - the global model learns spamish as spam and hammish as ham; the user's
   model (scope 7) learns the opposite (this user wants the meeting mail filtered) */
static void train_inverted(struct fixture *f, unsigned n_user)
{
	unsigned i;
	char words[200];
	for (i = 0; i < 12; i++) {
		char *s, *h;
		(void)snprintf(words, sizeof(words), "%s g%u", spamish, i);
		s = msg_of(100 + i, words);
		(void)snprintf(words, sizeof(words), "%s g%u", hammish, i);
		h = msg_of(200 + i, words);
		assert_int_equal(learn_in(f, 0, NULL, s, true), 0);
		assert_int_equal(learn_in(f, 0, NULL, h, false), 0);
		if (i < n_user) {
			assert_int_equal(learn_in(f, 7, "u@example.com", s, false), 0);
			assert_int_equal(learn_in(f, 7, "u@example.com", h, true), 0);
		}
		free(s);
		free(h);
	}
}

/* The mixing rule, and a user's model counting only once it is trained enough. */
static void test_combine_and_min_count(void **state)
{
	struct fixture *f = *state;
	mw_classifier *g, *u;
	struct mw_classifier_settings us;
	mw_error err = {""};
	char *m = msg_of(999, "meeting agenda minutes review patch build");
	double pg, p;
	bool used;

	assert_true(fabs(mw_classifier_combine(0.2, -1.0, 0.5) - 0.2) < 1e-12);
	assert_true(fabs(mw_classifier_combine(-1.0, 0.8, 0.5) - 0.8) < 1e-12);
	assert_true(fabs(mw_classifier_combine(0.2, 0.8, 0.25) - 0.35) < 1e-12);

	train_inverted(f, 12);
	assert_int_equal(mw_classifier_open(f->store, &g, &err), 0);
	mw_classifier_configure(g, &f->set);
	assert_int_equal(mw_classifier_open_scope(f->store, 7, &u, &err), 0);
	mw_classifier_user_settings(&f->set, &us);
	mw_classifier_configure(u, &us);

	assert_int_equal(mw_classifier_score(g, m, strlen(m), &pg, &err), 0);
	assert_true(pg < 0.2);
	/* without a user model: the global verdict exactly */
	assert_int_equal(mw_classifier_score_user(g, NULL, m, strlen(m), &p, &used, &err), 0);
	assert_false(used);
	assert_true(fabs(p - pg) < 1e-9);
	/* the user's model alone (weight 100 %): this user calls it spam */
	f->set.user_weight = 1.0;
	mw_classifier_configure(g, &f->set);
	assert_int_equal(mw_classifier_score_user(g, u, m, strlen(m), &p, &used, &err), 0);
	assert_true(used);
	assert_true(p > 0.8);
	/* half and half: between the two, the mean of both */
	{
		double pu = p;
		f->set.user_weight = 0.5;
		mw_classifier_configure(g, &f->set);
		assert_int_equal(mw_classifier_score_user(g, u, m, strlen(m), &p, &used, &err), 0);
		assert_true(fabs(p - (pg + pu) / 2.0) < 1e-9);
	}
	/* the user has taught fewer than user_min_*: the global verdict, untouched */
	us.min_spam = us.min_ham = 13;
	mw_classifier_configure(u, &us);
	assert_int_equal(mw_classifier_score_user(g, u, m, strlen(m), &p, &used, &err), 0);
	assert_false(used);
	assert_true(fabs(p - pg) < 1e-9);
	mw_classifier_close(&u);
	mw_classifier_close(&g);
	free(m);
}

/* has_clue - whether the clues name TEXT */
static bool has_clue(const struct mw_classifier_clue *c, size_t n, const char *text)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(c[i].text, text) == 0)
			return true;
	return false;
}

/* Expiry by age counts back from the newest learn: tokens not learned in expire_age
   before it go, tokens learned since stay, the bias stays; a dry run deletes nothing; a
   reader that loaded the model before reloads it whole. */
static void test_expire_by_age(void **state)
{
	struct fixture *f = *state;
	struct mw_spam_expire_result x, dry;
	mw_classifier *g;
	mw_error err = {""};
	struct mw_classifier_clue clues[32];
	size_t n, before;
	char *old = msg_of(1, "oldword sharedword");
	char *recent = msg_of(2, "newword sharedword");
	char *probe = msg_of(3, "oldword");
	double p;

	assert_int_equal(learn_in(f, 0, NULL, old, true), 0);
	fake_now += 100 * DAY;
	assert_int_equal(learn_in(f, 0, NULL, recent, false), 0);
	assert_int_equal(mw_classifier_open(f->store, &g, &err), 0);
	mw_classifier_configure(g, &f->set);
	assert_int_equal(mw_classifier_explain(g, probe, strlen(probe), clues, 32, &n, &err), 0);
	assert_true(has_clue(clues, n, "oldword"));
	before = rows_of(f, 0);

	f->set.expire_age = 30 * DAY;
	/* a year later, with nothing learned since: counted from the newest learn, the
	   recent tokens stay */
	fake_now += 365 * DAY;
	assert_int_equal(mw_classifier_expire(f->store, 0, &f->set, true, 0, &dry, &err), 0);
	assert_int_equal(rows_of(f, 0), before); /* dry run: nothing deleted */
	assert_int_equal(mw_classifier_expire(f->store, 0, &f->set, false, 0, &x, &err), 0);
	assert_int_equal(x.by_age, dry.by_age);
	assert_true(x.by_age >= 1);
	assert_int_equal(x.by_size, 0);
	assert_int_equal(x.tokens_before, (int64_t)before);
	assert_int_equal(x.digests, 1); /* the old message's record */
	assert_int_equal(rows_of(f, 0), before - (size_t)x.by_age);
	assert_false(has_token(f, 0, "oldword"));
	assert_true(has_token(f, 0, "sharedword"));
	assert_true(has_token(f, 0, "newword"));
	assert_true(has_token(f, 0, "\001bias"));
	/* the reader notices at its next refresh and drops the expired rows */
	(void)mw_classifier_score(g, probe, strlen(probe), &p, &err);
	assert_int_equal(mw_classifier_explain(g, probe, strlen(probe), clues, 32, &n, &err), 0);
	assert_false(has_clue(clues, n, "oldword"));
	assert_true(n >= 1); /* the header tokens both messages had */
	/* again: nothing more to expire */
	assert_int_equal(mw_classifier_expire(f->store, 0, &f->set, false, 0, &x, &err), 0);
	assert_int_equal(x.by_age, 0);
	mw_classifier_close(&g);
	free(old);
	free(recent);
	free(probe);
}

/* A reader that learned itself (its generation still that of its empty start) also drops
   expired rows at its next refresh (mailwardenctl, bench/spam-eval). */
static void test_expire_reader_that_learned(void **state)
{
	struct fixture *f = *state;
	struct mw_spam_expire_result x;
	struct mw_classifier_clue clues[32];
	mw_classifier *g;
	mw_error err = {""};
	char *old = msg_of(1, "oldword sharedword");
	char *recent = msg_of(2, "newword sharedword");
	char *probe = msg_of(3, "oldword");
	size_t n;
	double p;

	assert_int_equal(mw_classifier_open(f->store, &g, &err), 0);
	mw_classifier_configure(g, &f->set);
	assert_int_equal(mw_classifier_learn(g, old, strlen(old), true, NULL, &err), 0);
	fake_now += 100 * DAY;
	assert_int_equal(mw_classifier_learn(g, recent, strlen(recent), false, NULL, &err), 0);
	f->set.expire_age = 30 * DAY;
	assert_int_equal(mw_classifier_expire(f->store, 0, &f->set, false, 0, &x, &err), 0);
	assert_true(x.by_age >= 1);
	(void)mw_classifier_score(g, probe, strlen(probe), &p, &err);
	assert_int_equal(mw_classifier_explain(g, probe, strlen(probe), clues, 32, &n, &err), 0);
	assert_false(has_clue(clues, n, "oldword"));
	mw_classifier_close(&g);
	free(old);
	free(recent);
	free(probe);
}

/* Expiry by size: beyond max_tokens the hapaxes (one learned message) go first, oldest
   first, at most limit per run; a user's model has its own bound. */
static void test_expire_by_size(void **state)
{
	struct fixture *f = *state;
	struct mw_spam_expire_result x;
	mw_error err = {""};
	unsigned i;
	size_t rows;

	for (i = 0; i < 6; i++) {
		char words[100];
		char *m;
		(void)snprintf(words, sizeof(words), "keepword hapax%u", i);
		m = msg_of(10 + i, words);
		assert_int_equal(learn_in(f, 7, "u@example.com", m, i % 2 == 0), 0);
		free(m);
		fake_now += DAY;
	}
	rows = rows_of(f, 7);
	f->set.user_max_tokens = (int64_t)rows - 4;
	f->set.max_tokens = 1; /* the global model's bound: not this scope's */
	assert_int_equal(mw_classifier_expire(f->store, 7, &f->set, false, 3, &x, &err), 0);
	assert_int_equal(x.by_size, 3); /* bounded by the limit */
	assert_int_equal(rows_of(f, 7), rows - 3);
	assert_false(has_token(f, 7, "hapax0"));
	assert_true(has_token(f, 7, "hapax5"));
	assert_int_equal(mw_classifier_expire(f->store, 7, &f->set, false, 0, &x, &err), 0);
	assert_int_equal(x.by_size, 1);
	assert_int_equal(rows_of(f, 7), rows - 4);
	assert_true(has_token(f, 7, "keepword")); /* in six messages: the most useful */
	assert_true(has_token(f, 7, "\001bias"));
	assert_true(has_token(f, 7, "hapax5")); /* the newest hapax */
}

/* The automatic run: claimed once per interval; nothing configured, nothing runs. */
static void test_expire_auto_claim(void **state)
{
	struct fixture *f = *state;
	struct mw_spam_expire_result x;
	mw_error err = {""};
	char *m = msg_of(1, "claimword");

	assert_int_equal(learn_in(f, 0, NULL, m, true), 0);
	f->set.max_tokens = 0;
	f->set.expire_age = 0;
	assert_int_equal(mw_classifier_expire_auto(f->store, 0, &f->set, &x, &err), 0);
	f->set.expire_age = 30 * DAY;
	f->set.expire_interval = 3600;
	if (mw_classifier_expire_auto(f->store, 0, &f->set, &x, &err) != 1)
		fail_msg("expire_auto: %s", err.msg);
	fake_now += 1800;
	assert_int_equal(mw_classifier_expire_auto(f->store, 0, &f->set, &x, &err), 0);
	fake_now += 1800;
	assert_int_equal(mw_classifier_expire_auto(f->store, 0, &f->set, &x, &err), 1);
	/* a scope nothing was learned into has no model to expire */
	assert_int_equal(mw_classifier_expire_auto(f->store, 42, &f->set, &x, &err), 0);
	free(m);
}

/* Migration 007 on a store of schema 6 with a learned token: the row counts as seen when
   the migration ran, the model is not marked reset or expired, and learning goes on. */
static void test_migration_007(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	const struct mw_migration *m;
	struct mw_test_raw *db;
	mw_error err = {""};
	int64_t seen, now = (int64_t)time(NULL);
	unsigned i;
	f->tdb = mw_test_db_create(*state);
	*state = f;
	m = f->tdb->dialect == MW_DB_PGSQL ? mw_pgsql_migrations : mw_sqlite_migrations;
	if (f->tdb->dialect == MW_DB_SQLITE) { /* the file, as the store would create it */
		sqlite3 *lite = NULL;
		char path[160];
		(void)snprintf(path, sizeof(path), "%s/mw.db", f->tdb->dir);
		assert_int_equal(sqlite3_open(path, &lite), SQLITE_OK);
		sqlite3_close(lite);
	}
	db = mw_test_raw_open(f->tdb);
	for (i = 0; i < 6; i++)
		mw_test_raw_exec(db, m[i].sql);
	mw_test_raw_exec(db, "INSERT INTO schema_version (version) VALUES (6)");
	mw_test_raw_exec(db, "INSERT INTO spam_meta (scope, nspam, nham, generation) "
	                     "VALUES (0, 1, 0, 1)");
	mw_test_raw_exec(db, "INSERT INTO spam_tokens (scope, hash, nspam, nham, weight, gen) "
	                     "VALUES (0, 12345, 1, 0, 0.5, 1)");
	mw_test_raw_close(&db);
	f->store = mw_store_open(f->tdb->url, 2000, &err);
	if (f->store == NULL || mw_store_migrate(f->store, &err) != MW_STORE_OK)
		fail_msg("migrate: %s", err.msg);
	db = mw_test_raw_open(f->tdb);
	seen = mw_test_raw_int(db, "SELECT last_seen FROM spam_tokens WHERE hash = 12345");
	assert_true(seen >= now - 60 && seen <= now + 60);
	assert_int_equal(mw_test_raw_int(db, "SELECT reset_gen + expired_at FROM spam_meta"), 0);
	mw_test_raw_close(&db);
	assert_int_equal(mw_classifier_open_learner(f->store, &f->learner, &err), 0);
	mw_classifier_settings_default(&f->set);
	f->set.clock = fake_clock;
	mw_classifier_configure(f->learner, &f->set);
	fake_now = now + 1000;
	{
		char *msg = msg_of(1, "afterword");
		assert_int_equal(learn_in(f, 0, NULL, msg, true), 0);
		free(msg);
	}
	assert_int_equal(meta_of(f, 0).nspam, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    MW_TEST_DB_BOTH(test_scope_separation, setup, teardown),
	    MW_TEST_DB_BOTH(test_combine_and_min_count, setup, teardown),
	    MW_TEST_DB_BOTH(test_expire_by_age, setup, teardown),
	    MW_TEST_DB_BOTH(test_expire_reader_that_learned, setup, teardown),
	    MW_TEST_DB_BOTH(test_expire_by_size, setup, teardown),
	    MW_TEST_DB_BOTH(test_expire_auto_claim, setup, teardown),
	    MW_TEST_DB_BOTH(test_migration_007, NULL, teardown),
	};
	MW_RUN_TESTS(tests);
}
