/* test-db.c - the mw_db driver contract, one suite run against both drivers.
 *
 * Every test is listed once per backend (MW_TEST_DB_BOTH, mw-test-db.h): SQLite in a fresh
 * directory, PostgreSQL in a fresh database on the server scripts/test starts
 * (MW_TEST_PGSQL_URL; without it the PostgreSQL half fails). Binds and NULLs, blobs, unique
 * violations, transactions, the _one/_change helpers, migrations (twice, and from two
 * processes at once), and for PostgreSQL a connection killed under an open mw_db. One test
 * compares the two dialects' schemas column by column; one compares each dialect's rendering
 * of the shipped migrations with tests/data/migrations (needs top_srcdir, as make check sets).
 */
#include "mw-build.h"
#include "mw-db-private.h"
#include "mw-db.h"
#include "mw-store-private.h"
#include "mw-store.h"
#include "mw-test-db.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	struct mw_test_db *tdb;
	mw_db *db;
};

/* setup - a fresh database of the test's backend, opened and migrated, with table t */
static int setup(void **state)
{
	static const struct mw_db_query create = {
	    "creating the test table",
	    "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, s TEXT UNIQUE, b BLOB)",
	    "CREATE TABLE t (id BIGINT PRIMARY KEY, i BIGINT, s TEXT UNIQUE, b BYTEA)"};
	struct fixture *f = mw_calloc(1, sizeof(*f));
	mw_error err = {""};

	f->tdb = mw_test_db_create(*state);
	*state = f;
	f->db = mw_db_open(f->tdb->url, 5000, &err);
	if (f->db == NULL)
		fail_msg("open: %s", err.msg);
	if (mw_db_migrate(f->db, &err) != MW_STORE_OK)
		fail_msg("migrate: %s", err.msg);
	if (mw_db_run(f->db, &create, MW_DB_NOARGS, NULL, NULL, NULL, &err) != MW_STORE_OK)
		fail_msg("create: %s", err.msg);
	return 0;
}

/* teardown - close and drop the database */
static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f == NULL)
		return 0;
	mw_db_close(&f->db);
	mw_test_db_drop(&f->tdb);
	free(f);
	return 0;
}

static const struct mw_db_query q_insert = {
    "adding a test row", "INSERT INTO t (id, i, s, b) VALUES (?1, ?2, ?3, ?4)", NULL};
static const struct mw_db_query q_get = {"reading a test row",
                                         "SELECT i, s, b, id FROM t WHERE id = ?1", NULL};
static const struct mw_db_query q_count = {"counting test rows", "SELECT count(*) FROM t", NULL};
static const struct mw_db_query q_all = {"listing test rows", "SELECT id FROM t ORDER BY id", NULL};
static const struct mw_db_query q_upd = {"changing a test row", "UPDATE t SET i = ?2 WHERE id = ?1",
                                         NULL};
static const struct mw_db_query q_bad = {"a query that cannot work", "SELECT no_such_column FROM t",
                                         NULL};
static const struct mw_db_query q_check = {
    "adding a user with a bad status",
    "INSERT INTO users (username, password, status, role, created_at, updated_at, "
    "password_changed_at) VALUES (?1, 'x', ?2, 'user', 0, 0, 0)",
    NULL};
static const struct mw_db_query q_ret = {
    "adding a user",
    "INSERT INTO users (username, password, status, role, created_at, "
    "updated_at, password_changed_at) VALUES (?1, 'x', 'active', 'user', "
    "?2, ?2, ?2) RETURNING id",
    NULL};

struct row_copy {
	bool i_null, s_null, b_null;
	int64_t i;
	char s[256];
	unsigned char b[256];
	size_t blen;
	bool b_ptr_null;
	int64_t id;
};

/* copy_row - keep the columns of q_get */
static int copy_row(const mw_db_row *row, void *ctx)
{
	struct row_copy *c = ctx;
	const char *s = mw_db_text(row, 1);
	const void *b = mw_db_blob(row, 2, &c->blen);
	c->i_null = mw_db_is_null(row, 0);
	c->s_null = mw_db_is_null(row, 1);
	c->b_null = mw_db_is_null(row, 2);
	c->i = mw_db_int(row, 0);
	c->id = mw_db_int(row, 3);
	c->s[0] = '\0';
	if (s != NULL)
		snprintf(c->s, sizeof(c->s), "%s", s);
	c->b_ptr_null = b == NULL;
	assert_true(c->blen <= sizeof(c->b));
	if (b != NULL && c->blen > 0)
		memcpy(c->b, b, c->blen);
	return 0;
}

/* get - read row id into c; asserts it exists */
static void get(struct fixture *f, int64_t id, struct row_copy *c)
{
	mw_error err = {""};
	int ret = mw_db_one(f->db, &q_get, MW_DB_ARGS(MW_DB_I(id)), copy_row, c, &err);
	if (ret != MW_STORE_OK)
		fail_msg("get %" PRId64 ": %d %s", id, ret, err.msg);
}

/* insert - add a row; returns the status */
static int insert(struct fixture *f, int64_t id, struct mw_db_arg i, struct mw_db_arg s,
                  struct mw_db_arg b, mw_error *err)
{
	return mw_db_run(f->db, &q_insert, MW_DB_ARGS(MW_DB_I(id), i, s, b), NULL, NULL, NULL, err);
}

/* count - rows in t */
static int64_t count(struct fixture *f)
{
	int64_t n = -1;
	mw_error err = {""};
	if (mw_db_int_one(f->db, &q_count, MW_DB_NOARGS, &n, &err) != MW_STORE_OK)
		fail_msg("count: %s", err.msg);
	return n;
}

/* test_binds - integers at the int64 limits, text with quotes and ?N inside, NULLs */
static void test_binds(void **state)
{
	struct fixture *f = *state;
	struct row_copy c;
	mw_error err = {""};
	uint64_t rows = 99;
	static const struct mw_db_query q_literal = {
	    "a query with ?N inside quotes and comments",
	    "SELECT '?1 '' ?2', \"s\" /* ?3 */ FROM t -- ?4\n WHERE id = ?1", NULL};

	assert_int_equal(
	    insert(f, 1, MW_DB_I(INT64_MAX), MW_DB_T("it's \"?2\" \\ ü"), MW_DB_NUL, &err),
	    MW_STORE_OK);
	assert_int_equal(insert(f, 2, MW_DB_I(INT64_MIN), MW_DB_T(NULL), MW_DB_NUL, &err),
	                 MW_STORE_OK);
	assert_int_equal(insert(f, 3, MW_DB_NUL, MW_DB_T(""), MW_DB_NUL, &err), MW_STORE_OK);

	get(f, 1, &c);
	assert_false(c.i_null);
	assert_true(c.i == INT64_MAX);
	assert_string_equal(c.s, "it's \"?2\" \\ ü");
	assert_true(c.b_null);
	assert_true(c.b_ptr_null);
	assert_int_equal(c.blen, 0);
	assert_int_equal(c.id, 1);
	get(f, 2, &c);
	assert_true(c.i == INT64_MIN);
	assert_true(c.s_null);
	get(f, 3, &c);
	assert_true(c.i_null);
	assert_int_equal(c.i, 0);
	assert_false(c.s_null);
	assert_string_equal(c.s, "");

	/* rows_r: rows returned by a SELECT */
	assert_int_equal(
	    mw_db_run(f->db, &q_literal, MW_DB_ARGS(MW_DB_I(1)), NULL, NULL, &rows, &err),
	    MW_STORE_OK);
	assert_int_equal(rows, 1);
	assert_int_equal(count(f), 3);
}

/* text_dup - mw_db_text_dup of column 0 */
static int text_dup(const mw_db_row *row, void *ctx)
{
	*(char **)ctx = mw_db_text_dup(row, 0);
	return 0;
}

/* test_blobs - bytes with NUL and 0xff round-trip; empty is not NULL; a NULL is NULL */
static void test_blobs(void **state)
{
	struct fixture *f = *state;
	static const unsigned char bytes[] = {0, 1, 0xff, 0x5c, 'x', 0, 0x27, 0x80};
	static const struct mw_db_query q_null_text = {"reading a NULL as text",
	                                               "SELECT s FROM t WHERE id = ?1", NULL};
	unsigned char big[200];
	struct row_copy c;
	mw_error err = {""};
	char *dup = NULL;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	assert_int_equal(
	    insert(f, 1, MW_DB_NUL, MW_DB_T(NULL), MW_DB_B(bytes, sizeof(bytes)), &err),
	    MW_STORE_OK);
	assert_int_equal(insert(f, 2, MW_DB_NUL, MW_DB_T(NULL), MW_DB_B("", 0), &err), MW_STORE_OK);
	assert_int_equal(insert(f, 3, MW_DB_NUL, MW_DB_T(NULL), MW_DB_B(big, sizeof(big)), &err),
	                 MW_STORE_OK);
	get(f, 1, &c);
	assert_false(c.b_null);
	assert_int_equal(c.blen, sizeof(bytes));
	assert_memory_equal(c.b, bytes, sizeof(bytes));
	get(f, 2, &c);
	assert_false(c.b_null);
	assert_int_equal(c.blen, 0);
	get(f, 3, &c);
	assert_int_equal(c.blen, sizeof(big));
	assert_memory_equal(c.b, big, sizeof(big));

	/* a NULL text column duplicates to "" */
	assert_int_equal(
	    mw_db_one(f->db, &q_null_text, MW_DB_ARGS(MW_DB_I(1)), text_dup, &dup, &err),
	    MW_STORE_OK);
	assert_string_equal(dup, "");
	free(dup);
}

/* test_unique - a unique violation is EXISTS, naming the query and not the value */
static void test_unique(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	assert_int_equal(insert(f, 1, MW_DB_I(1), MW_DB_T("secret-value-1"), MW_DB_NUL, &err),
	                 MW_STORE_OK);
	assert_int_equal(insert(f, 2, MW_DB_I(1), MW_DB_T("secret-value-1"), MW_DB_NUL, &err),
	                 MW_STORE_EXISTS);
	assert_non_null(strstr(err.msg, "adding a test row"));
	assert_null(strstr(err.msg, "secret-value-1"));
	/* the primary key as well */
	assert_int_equal(insert(f, 1, MW_DB_I(1), MW_DB_T("other"), MW_DB_NUL, &err),
	                 MW_STORE_EXISTS);
	assert_int_equal(count(f), 1);
}

/* test_errors - a bad value or a bad query is ERROR without the value in the message */
static void test_errors(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};

	assert_int_equal(mw_db_run(f->db, &q_bad, MW_DB_NOARGS, NULL, NULL, NULL, &err),
	                 MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "a query that cannot work"));
	assert_int_equal(mw_db_run(f->db, &q_check,
	                           MW_DB_ARGS(MW_DB_T("x@example.com"), MW_DB_T("hidden-status")),
	                           NULL, NULL, NULL, &err),
	                 MW_STORE_ERROR);
	assert_null(strstr(err.msg, "hidden-status"));
	assert_null(strstr(err.msg, "x@example.com"));
	/* the wrong number of arguments is an error, never a crash */
	assert_int_equal(
	    mw_db_run(f->db, &q_insert, MW_DB_ARGS(MW_DB_I(1)), NULL, NULL, NULL, &err),
	    MW_STORE_ERROR);
	/* the connection still works */
	assert_int_equal(count(f), 0);
}

/* test_transactions - rollback undoes, commit keeps; a failed statement inside a
   transaction fails alone (as in SQLite), the transaction goes on */
static void test_transactions(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};

	assert_false(mw_db_in_transaction(f->db));
	assert_int_equal(mw_db_begin(f->db, &err), MW_STORE_OK);
	assert_true(mw_db_in_transaction(f->db));
	assert_int_equal(mw_db_begin(f->db, &err), MW_STORE_ERROR); /* not nested */
	assert_int_equal(insert(f, 1, MW_DB_I(1), MW_DB_T("a"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(mw_db_end(f->db, MW_STORE_ERROR, &err), MW_STORE_ERROR);
	assert_false(mw_db_in_transaction(f->db));
	assert_int_equal(count(f), 0);

	assert_int_equal(mw_db_begin(f->db, &err), MW_STORE_OK);
	assert_int_equal(insert(f, 1, MW_DB_I(1), MW_DB_T("a"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(insert(f, 2, MW_DB_I(2), MW_DB_T("a"), MW_DB_NUL, &err), MW_STORE_EXISTS);
	assert_int_equal(insert(f, 3, MW_DB_I(3), MW_DB_T("c"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(mw_db_end(f->db, MW_STORE_OK, &err), MW_STORE_OK);
	assert_int_equal(count(f), 2);

	/* NOTFOUND passed to end rolls back and comes back */
	assert_int_equal(mw_db_begin(f->db, &err), MW_STORE_OK);
	assert_int_equal(insert(f, 4, MW_DB_I(4), MW_DB_T("d"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(mw_db_end(f->db, MW_STORE_NOTFOUND, &err), MW_STORE_NOTFOUND);
	assert_int_equal(count(f), 2);
}

/* test_one_change - NOTFOUND from _one and _change, values from _int_one, rows_r */
static void test_one_change(void **state)
{
	struct fixture *f = *state;
	struct row_copy c;
	mw_error err = {""};
	int64_t id1 = 0, id2 = 0;
	uint64_t rows = 0;

	assert_int_equal(mw_db_one(f->db, &q_get, MW_DB_ARGS(MW_DB_I(7)), copy_row, &c, &err),
	                 MW_STORE_NOTFOUND);
	assert_non_null(strstr(err.msg, "reading a test row"));
	assert_int_equal(mw_db_change(f->db, &q_upd, MW_DB_ARGS(MW_DB_I(7), MW_DB_I(1)), &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(insert(f, 7, MW_DB_I(1), MW_DB_T("a"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(insert(f, 8, MW_DB_I(1), MW_DB_T("b"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(mw_db_change(f->db, &q_upd, MW_DB_ARGS(MW_DB_I(7), MW_DB_I(42)), &err),
	                 MW_STORE_OK);
	get(f, 7, &c);
	assert_int_equal(c.i, 42);
	assert_int_equal(mw_db_run(f->db, &q_all, MW_DB_NOARGS, NULL, NULL, &rows, &err),
	                 MW_STORE_OK);
	assert_int_equal(rows, 2);

	assert_int_equal(mw_db_int_one(f->db, &q_ret,
	                               MW_DB_ARGS(MW_DB_T("a@example.com"), MW_DB_I(5)), &id1,
	                               &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_db_int_one(f->db, &q_ret,
	                               MW_DB_ARGS(MW_DB_T("b@example.com"), MW_DB_I(5)), &id2,
	                               &err),
	                 MW_STORE_OK);
	assert_true(id1 > 0);
	assert_true(id2 > id1);
}

struct stop_ctx {
	int seen;
};

/* stop_at_two - a row callback that stops after two rows */
static int stop_at_two(const mw_db_row *row, void *ctx)
{
	struct stop_ctx *s = ctx;
	(void)row;
	return ++s->seen == 2 ? 17 : 0;
}

/* test_callback_stop - a callback's nonzero return stops the rows and is returned */
static void test_callback_stop(void **state)
{
	struct fixture *f = *state;
	struct stop_ctx s = {0};
	mw_error err = {""};
	for (int i = 1; i <= 5; i++)
		assert_int_equal(insert(f, i, MW_DB_I(i), MW_DB_T(NULL), MW_DB_NUL, &err),
		                 MW_STORE_OK);
	assert_int_equal(mw_db_run(f->db, &q_all, MW_DB_NOARGS, stop_at_two, &s, NULL, &err), 17);
	assert_int_equal(s.seen, 2);
	/* inside a transaction too, and the transaction still commits */
	s.seen = 0;
	assert_int_equal(mw_db_begin(f->db, &err), MW_STORE_OK);
	assert_int_equal(mw_db_run(f->db, &q_all, MW_DB_NOARGS, stop_at_two, &s, NULL, &err), 17);
	assert_int_equal(insert(f, 6, MW_DB_I(6), MW_DB_T(NULL), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(mw_db_end(f->db, MW_STORE_OK, &err), MW_STORE_OK);
	assert_int_equal(count(f), 6);
}

/* An element of the row-reader test: one field of each column type. */
struct rr_elem {
	int64_t id;
	char key[4];
	char *dup, *opt;
	bool flag;
	char lax[4];
	char text[5];
	int finished;
};
/* rr_finish - the reader's finish: counts its calls, fails on demand */
static int rr_finish(const mw_db_row *row, void *elem)
{
	struct rr_elem *e = elem;
	(void)row;
	e->finished++;
	return e->id == 13 ? -1 : 0;
}
#define RR(type, field) MW_STORE_COL(struct rr_elem, type, field)
static const struct mw_store_col rr_cols[] = {
    RR(INT, id),    RR(KEY, key),      RR(DUP, dup),         RR(OPT, opt),
    RR(BOOL, flag), RR(TEXT_LAX, lax), MW_STORE_COL_SKIPPED, RR(TEXT, text)};
static const struct mw_store_reader rr_reader =
    MW_STORE_READER(rr_cols, "test row", true, rr_finish);
struct rr_ctx {
	struct rr_elem e;
	int ret;
	mw_error err;
};
/* rr_read - the row callback: mw_store_read_row into a zeroed element */
static int rr_read(const mw_db_row *row, void *ctx)
{
	struct rr_ctx *c = ctx;
	memset(&c->e, 0, sizeof(c->e));
	c->ret = mw_store_read_row(row, &c->e, &rr_reader, &c->err);
	return 0;
}

/* test_row_reader - mw_store_read_row copies each column as its type says, and a row that
   fails (a NULL or too long KEY, a too long TEXT, a failed finish) keeps nothing and says
   "WHAT ID is malformed" */
static void test_row_reader(void **state)
{
	struct fixture *f = *state;
	/* static queries: the driver keeps a prepared statement per query object */
	static const struct {
		struct mw_db_query q;
		int ret;
	} cases[] = {
	    {{"reading a test row",
	      "SELECT 7, 'abc', CAST(NULL AS TEXT), 'o', 2, 'longer', 'skip', 'four'", NULL},
	     MW_STORE_OK},
	    {{"reading a test row",
	      "SELECT 8, CAST(NULL AS TEXT), 'd', 'o', 0, 'x', 'skip', 'four'", NULL},
	     MW_STORE_ERROR},
	    {{"reading a test row", "SELECT 9, 'abcd', 'd', 'o', 0, 'x', 'skip', 'four'", NULL},
	     MW_STORE_ERROR},
	    {{"reading a test row", "SELECT 10, 'abc', 'd', 'o', 0, 'x', 'skip', 'fives'", NULL},
	     MW_STORE_ERROR},
	    {{"reading a test row", "SELECT 13, 'abc', 'd', 'o', 0, 'x', 'skip', 'four'", NULL},
	     MW_STORE_ERROR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rr_ctx c = {.ret = 99};
		mw_error err = {""};
		char want[64];
		assert_int_equal(
		    mw_db_run(f->db, &cases[i].q, MW_DB_NOARGS, rr_read, &c, NULL, &err),
		    MW_STORE_OK);
		if (c.ret != cases[i].ret)
			fail_msg("%s: %d, not %d", cases[i].q.sql, c.ret, cases[i].ret);
		if (cases[i].ret == MW_STORE_OK) {
			assert_int_equal(c.e.id, 7);
			assert_string_equal(c.e.key, "abc");
			assert_string_equal(c.e.dup, ""); /* DUP: "" for NULL */
			assert_string_equal(c.e.opt, "o");
			assert_true(c.e.flag);
			assert_string_equal(c.e.lax, ""); /* TEXT_LAX: too long reads as "" */
			assert_string_equal(c.e.text, "four");
			assert_int_equal(c.e.finished, 1);
			free(c.e.dup);
			free(c.e.opt);
			continue;
		}
		/* nothing kept (ASan's leak check sees a DUP or OPT not freed) */
		assert_null(c.e.dup);
		assert_null(c.e.opt);
		(void)snprintf(want, sizeof(want), "test row %lld is malformed", (long long)c.e.id);
		assert_string_equal(c.err.msg, want);
		/* finish runs only after the copies succeeded */
		assert_int_equal(c.e.finished, c.e.id == 13 ? 1 : 0);
	}
}

/* test_data_version - the counter moves with another connection's commit and with this
   connection's own changes, and only then; PostgreSQL cannot tell and says so */
static void test_data_version(void **state)
{
	struct fixture *f = *state;
	static const struct mw_db_query q_upd_none = {"changing a test row",
	                                              "UPDATE t SET i = 0 WHERE id = ?1", NULL};
	mw_error err = {""};
	uint64_t v1 = 0, v2 = 0, v3 = 0;
	mw_db *other;

	if (mw_db_dialect(f->db) == MW_DB_PGSQL) {
		assert_int_equal(mw_db_data_version(f->db, &v1, &err), MW_STORE_NOTFOUND);
		assert_non_null(strstr(err.msg, "cannot tell"));
		return;
	}
	other = mw_db_open(f->tdb->url, 5000, &err);
	assert_non_null(other);
	assert_int_equal(mw_db_data_version(f->db, &v1, &err), MW_STORE_OK);
	/* reads (ours and the other connection's) change nothing */
	assert_int_equal(mw_db_run(f->db, &q_all, MW_DB_NOARGS, NULL, NULL, NULL, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_db_run(other, &q_all, MW_DB_NOARGS, NULL, NULL, NULL, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_db_data_version(f->db, &v2, &err), MW_STORE_OK);
	assert_int_equal(v1, v2);
	assert_int_equal(mw_db_data_version_local(f->db), v2);
	/* another connection's commit (another process's, in the API) */
	assert_int_equal(mw_db_run(other, &q_insert,
	                           MW_DB_ARGS(MW_DB_I(1), MW_DB_I(1), MW_DB_T("a"), MW_DB_NUL),
	                           NULL, NULL, NULL, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_db_data_version(f->db, &v3, &err), MW_STORE_OK);
	assert_true(v3 != v2);
	assert_int_equal(mw_db_data_version(f->db, &v2, &err), MW_STORE_OK);
	assert_int_equal(v3, v2);
	/* our own change moves it at once, even without asking the database */
	assert_int_equal(insert(f, 2, MW_DB_I(2), MW_DB_T("b"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_true(mw_db_data_version_local(f->db) != v2);
	assert_int_equal(mw_db_data_version(f->db, &v3, &err), MW_STORE_OK);
	assert_true(v3 != v2);
	/* an UPDATE that matched no row still counts (the check is before it runs) */
	assert_int_equal(mw_db_data_version(f->db, &v1, &err), MW_STORE_OK);
	assert_int_equal(mw_db_change(other, &q_upd_none, MW_DB_ARGS(MW_DB_I(99)), &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_db_change(f->db, &q_upd_none, MW_DB_ARGS(MW_DB_I(99)), &err),
	                 MW_STORE_NOTFOUND);
	assert_true(mw_db_data_version_local(f->db) != v1);
	mw_db_close(&other);
}

/* the lock holder of test_busy_wait: takes the write lock when told ('L'), says it holds it
   ('H'), and when told the other side is about to wait ('T') keeps it 400 us more, commits
   and sends the monotonic time (us) after the commit; stops at end of input */
struct holder {
	mw_db *db;
	int in, out;
};

static void *hold_lock(void *arg)
{
	struct holder *h = arg;
	mw_error err = {""};
	char c;
	int64_t id = 1000;
	while (read(h->in, &c, 1) == 1 && c == 'L') {
		int64_t t;
		if (mw_db_begin(h->db, &err) != MW_STORE_OK ||
		    mw_db_run(h->db, &q_insert,
		              MW_DB_ARGS(MW_DB_I(id++), MW_DB_I(0), MW_DB_NUL, MW_DB_NUL), NULL,
		              NULL, NULL, &err) != MW_STORE_OK)
			break;
		if (write(h->out, "H", 1) != 1 || read(h->in, &c, 1) != 1)
			break;
		usleep(400);
		if (mw_db_end(h->db, MW_STORE_OK, &err) != MW_STORE_OK)
			break;
		t = mw_mono_us();
		if (write(h->out, &t, sizeof(t)) != (ssize_t)sizeof(t))
			break;
	}
	return NULL;
}

/* test_busy_wait - a writer waiting for a lock another connection holds for well under a
   millisecond gets it soon after it is released: SQLite's own busy handler sleeps 1 ms
   first (then 2, 5 ...), so with it every such wait lasts at least 1 ms (a sleep is never
   shorter), and the API's workers touching one session in the same second waited 1-11 ms
   (bench/README.md). Trials where the other side's wait began too early or too late are
   not counted; one counted trial under 950 us passes, none in 40 fails. */
static void test_busy_wait(void **state)
{
	struct fixture *f = *state;
	int to_holder[2], from_holder[2], counted = 0, fast = 0, trial;
	struct holder h;
	pthread_t thread;
	mw_error err = {""};
	int64_t best = -1;

	if (mw_db_dialect(f->db) == MW_DB_PGSQL)
		return; /* PostgreSQL waits in the server (lock_timeout), not in a busy handler */
	assert_int_equal(pipe(to_holder), 0);
	assert_int_equal(pipe(from_holder), 0);
	h.db = mw_db_open(f->tdb->url, 5000, &err);
	assert_non_null(h.db);
	h.in = to_holder[0];
	h.out = from_holder[1];
	assert_int_equal(pthread_create(&thread, NULL, hold_lock, &h), 0);
	for (trial = 0; trial < 40 && fast == 0; trial++) {
		int64_t t0, t1, released;
		char c;
		assert_int_equal(write(to_holder[1], "L", 1), 1);
		assert_int_equal(read(from_holder[0], &c, 1), 1);
		assert_int_equal(write(to_holder[1], "T", 1), 1);
		t0 = mw_mono_us();
		if (mw_db_change(f->db, &q_upd, MW_DB_ARGS(MW_DB_I(1000), MW_DB_I(trial)), &err) !=
		    MW_STORE_OK)
			fail_msg("waiting writer: %s", err.msg);
		t1 = mw_mono_us();
		assert_int_equal(read(from_holder[0], &released, sizeof(released)),
		                 (ssize_t)sizeof(released));
		/* counted: the lock was still held 200-800 us after we began to wait */
		if (released - t0 < 200 || released - t0 > 800)
			continue;
		counted++;
		if (best < 0 || t1 - t0 < best)
			best = t1 - t0;
		if (t1 - t0 < 950)
			fast++;
	}
	(void)close(to_holder[1]);
	assert_int_equal(pthread_join(thread, NULL), 0);
	(void)close(to_holder[0]);
	(void)close(from_holder[0]);
	(void)close(from_holder[1]);
	mw_db_close(&h.db);
	if (fast == 0)
		fail_msg("no wait under 950 us in %d counted trials of %d (shortest %" PRId64
		         " us)",
		         counted, trial, best);
}

/* test_migrate_twice - migrating again changes nothing; the version is the latest */
static void test_migrate_twice(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	int v = -1;
	assert_int_equal(mw_db_schema_version(f->db, &v, &err), MW_STORE_OK);
	assert_int_equal(v, mw_db_latest_schema_version());
	assert_true(v >= 3);
	assert_int_equal(mw_db_migrate(f->db, &err), MW_STORE_OK);
	assert_int_equal(mw_db_migrate(f->db, &err), MW_STORE_OK);
	assert_int_equal(mw_db_schema_version(f->db, &v, &err), MW_STORE_OK);
	assert_int_equal(v, mw_db_latest_schema_version());
	assert_int_equal(count(f), 0); /* our table survived */
}

/* test_migrate_concurrently - two processes migrating one empty database at once both
   succeed and leave one schema */
static void test_migrate_concurrently(void **state)
{
	const struct mw_test_backend *b = *state;
	struct mw_test_db *tdb = mw_test_db_create(b);
	static const struct mw_db_query q_versions = {"counting versions",
	                                              "SELECT count(*) FROM schema_version", NULL};
	pid_t pids[4];
	mw_error err = {""};
	mw_db *db;
	int64_t n = 0;
	int v = 0;

	for (size_t i = 0; i < MW_N_ELEMENTS(pids); i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			mw_db *child = mw_db_open(tdb->url, 20000, &err);
			int ret = child != NULL ? mw_db_migrate(child, &err) : MW_STORE_ERROR;
			if (ret != MW_STORE_OK)
				fprintf(stderr, "child %zu: %s\n", i, err.msg);
			mw_db_close(&child);
			_exit(ret == MW_STORE_OK ? 0 : 1);
		}
	}
	for (size_t i = 0; i < MW_N_ELEMENTS(pids); i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	db = mw_db_open(tdb->url, 5000, &err);
	if (db == NULL)
		fail_msg("open: %s", err.msg);
	assert_int_equal(mw_db_schema_version(db, &v, &err), MW_STORE_OK);
	assert_int_equal(v, mw_db_latest_schema_version());
	assert_int_equal(mw_db_int_one(db, &q_versions, MW_DB_NOARGS, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 1);
	mw_db_close(&db);
	mw_test_db_drop(&tdb);
}

/* pg_kill_backends - terminate every other server process of a database (what a restart
   does to its clients) */
static void pg_kill_backends(struct fixture *f)
{
	char sql[256];
	PGconn *c = mw_test_pg_admin(f->tdb->admin);
	snprintf(sql, sizeof(sql),
	         "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' "
	         "AND pid <> pg_backend_pid()",
	         f->tdb->dbname);
	mw_test_pg_exec(c, sql);
	PQfinish(c);
}

/* pg_allow_connections - open or close a database to new connections */
static void pg_allow_connections(struct fixture *f, bool allow)
{
	char sql[256];
	PGconn *c = mw_test_pg_admin(f->tdb->admin);
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS %s", f->tdb->dbname,
	         allow ? "true" : "false");
	mw_test_pg_exec(c, sql);
	PQfinish(c);
}

/* test_connection_loss - the server drops an open connection: one call fails
   "unavailable", the next succeeds on the same mw_db; while the server refuses new
   connections, calls fail quickly (backoff) and the first after it is back succeeds */
static void test_connection_loss(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	int ret = MW_STORE_OK;

	assert_int_equal(insert(f, 1, MW_DB_I(1), MW_DB_T("a"), MW_DB_NUL, &err), MW_STORE_OK);
	pg_kill_backends(f);
	assert_int_equal(insert(f, 2, MW_DB_I(2), MW_DB_T("b"), MW_DB_NUL, &err), MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "unavailable"));
	assert_int_equal(insert(f, 2, MW_DB_I(2), MW_DB_T("b"), MW_DB_NUL, &err), MW_STORE_OK);
	assert_int_equal(count(f), 2);

	/* lost inside a transaction: the rest of it fails, no statement runs outside it */
	assert_int_equal(mw_db_begin(f->db, &err), MW_STORE_OK);
	assert_int_equal(insert(f, 3, MW_DB_I(3), MW_DB_T("c"), MW_DB_NUL, &err), MW_STORE_OK);
	pg_kill_backends(f);
	assert_int_equal(insert(f, 4, MW_DB_I(4), MW_DB_T("d"), MW_DB_NUL, &err), MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "unavailable"));
	assert_int_equal(insert(f, 5, MW_DB_I(5), MW_DB_T("e"), MW_DB_NUL, &err), MW_STORE_ERROR);
	assert_int_equal(mw_db_end(f->db, MW_STORE_OK, &err), MW_STORE_ERROR);
	assert_int_equal(count(f), 2);

	/* down for a while: failures are quick and say so, then it comes back by itself */
	pg_allow_connections(f, false);
	pg_kill_backends(f);
	assert_int_equal(mw_db_run(f->db, &q_count, MW_DB_NOARGS, NULL, NULL, NULL, &err),
	                 MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "unavailable"));
	assert_int_equal(mw_db_run(f->db, &q_count, MW_DB_NOARGS, NULL, NULL, NULL, &err),
	                 MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "unavailable"));
	assert_null(strstr(err.msg, "password"));
	pg_allow_connections(f, true);
	for (int i = 0; i < 100; i++) { /* the backoff is capped at a few seconds */
		ret = mw_db_run(f->db, &q_count, MW_DB_NOARGS, NULL, NULL, NULL, &err);
		if (ret == MW_STORE_OK)
			break;
		assert_non_null(strstr(err.msg, "unavailable"));
		usleep(100 * 1000);
	}
	assert_int_equal(ret, MW_STORE_OK);
	assert_int_equal(count(f), 2);
}

/* test_open_unavailable - a server that is not there: open fails "unavailable", and a bad
   URL's password never appears in the message */
static void test_open_unavailable(void **state)
{
	mw_error err = {""};
	mw_db *db;
	(void)state;
	db = mw_db_open("postgresql://u:sekrit-pw@/x?host=/nonexistent-dir&port=1", 1000, &err);
	assert_null(db);
	assert_non_null(strstr(err.msg, "unavailable"));
	assert_null(strstr(err.msg, "sekrit-pw"));
	db = mw_db_open("postgresql://u:sekrit-pw@/x?nosuchoption=1", 1000, &err);
	assert_null(db);
	assert_null(strstr(err.msg, "sekrit-pw"));
	/* a malformed password: libpq's message would quote it */
	db = mw_db_open("postgresql://u:sek%zzrit@/x", 1000, &err);
	assert_null(db);
	assert_non_null(strstr(err.msg, "bad PostgreSQL URL"));
	assert_null(strstr(err.msg, "sek"));
}

/* test_same_migrations - both dialects have the same numbered migrations, by name */
static void test_same_migrations(void **state)
{
	(void)state;
	assert_int_equal(mw_sqlite_migrations_count, mw_pgsql_migrations_count);
	assert_int_equal(mw_db_latest_schema_version(), (int)mw_pgsql_migrations_count);
	for (unsigned i = 0; i < mw_sqlite_migrations_count; i++) {
		assert_int_equal(mw_sqlite_migrations[i].version, mw_pgsql_migrations[i].version);
		assert_string_equal(mw_sqlite_migrations[i].name, mw_pgsql_migrations[i].name);
	}
}

/* Migrations 001-007 shipped before each migration had one source (lib/sql/NNN_name.sql
   rendered by scripts/embed-sql): their frozen renderings must all exist. */
#define FROZEN_MIGRATIONS 7

/* read_frozen - tests/data/migrations/DIALECT/NAME.sql.frozen, NULL when there is none */
static char *read_frozen(const char *dialect, const char *name)
{
	char rel[256];
	if (snprintf(rel, sizeof(rel), "tests/data/migrations/%s/%s.sql.frozen", dialect, name) >=
	    (int)sizeof(rel))
		fail_msg("%s: name too long", name);
	return mw_test_srcdir_file(rel, NULL);
}

/* sql_statements - sql without "--" comments (outside '...' and $$...$$), trailing blanks
   and blank lines: the text PostgreSQL keeps of a migration (function bodies verbatim) */
static char *sql_statements(const char *sql)
{
	size_t n = strlen(sql), len = 0, line = 0;
	char *out = mw_malloc(n + 1);
	bool quote = false, dollar = false, comment = false;

	for (size_t i = 0; i < n; i++) {
		char c = sql[i];
		if (c == '\n') {
			while (len > line && (out[len - 1] == ' ' || out[len - 1] == '\t'))
				len--;
			if (len > line)
				out[len++] = '\n';
			line = len;
			comment = false;
			continue;
		}
		if (comment)
			continue;
		if (!quote && !dollar && c == '-' && sql[i + 1] == '-') {
			comment = true;
			continue;
		}
		if (!dollar && c == '\'')
			quote = !quote;
		else if (!quote && c == '$' && sql[i + 1] == '$') {
			dollar = !dollar;
			out[len++] = sql[i++];
		}
		out[len++] = c;
	}
	out[len] = '\0';
	return out;
}

/* test_frozen_migrations - a shipped migration renders as it did when it shipped: SQLite's
   text byte for byte (sqlite_master keeps each CREATE statement as written, comments and
   all), PostgreSQL's statement for statement (it keeps no comments) */
static void test_frozen_migrations(void **state)
{
	static const struct {
		const char *dialect;
		const struct mw_migration *list;
		const unsigned *count;
		bool exact;
	} dialects[] = {
	    {"sqlite", mw_sqlite_migrations, &mw_sqlite_migrations_count, true},
	    {"pgsql", mw_pgsql_migrations, &mw_pgsql_migrations_count, false},
	};
	(void)state;
	for (size_t d = 0; d < sizeof(dialects) / sizeof(dialects[0]); d++) {
		unsigned checked = 0;
		for (unsigned i = 0; i < *dialects[d].count; i++) {
			const struct mw_migration *m = &dialects[d].list[i];
			char *frozen = read_frozen(dialects[d].dialect, m->name);
			if (frozen == NULL) {
				if (m->version <= FROZEN_MIGRATIONS)
					fail_msg("%s %s: no frozen text in tests/data/migrations",
					         dialects[d].dialect, m->name);
				continue;
			}
			/* everything is freed before a failure is reported: fail_msg does not
			   come back, and a leak would hide the failure under ASan */
			if (dialects[d].exact) {
				bool same = strcmp(m->sql, frozen) == 0;
				free(frozen);
				if (!same)
					fail_msg(
					    "%s %s: the rendering differs from its frozen text",
					    dialects[d].dialect, m->name);
			} else {
				char *got = sql_statements(m->sql), *want = sql_statements(frozen);
				bool same = strcmp(got, want) == 0;
				if (!same)
					print_error("%s %s: the rendering's statements:\n%s\n---- "
					            "frozen:\n%s\n",
					            dialects[d].dialect, m->name, got, want);
				free(got);
				free(want);
				free(frozen);
				if (!same)
					fail_msg("%s %s: the rendering's statements differ from "
					         "the frozen text's",
					         dialects[d].dialect, m->name);
			}
			checked++;
		}
		assert_true(checked >= FROZEN_MIGRATIONS);
	}
}

/* test_url_redact - a URL in a message never shows its password */
static void test_url_redact(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"postgresql://u:pw@db.example/mw", "postgresql://u:***@db.example/mw"},
	    {"postgres://u:p%40w@h:5432/mw?sslmode=require",
	     "postgres://u:***@h:5432/mw?sslmode=require"},
	    {"postgresql://u@/mw?host=/run/pg&password=sekrit&port=5",
	     "postgresql://u@/mw?host=/run/pg&password=***&port=5"},
	    {"postgresql:///mw?password=sekrit", "postgresql:///mw?password=***"},
	    {"postgresql://h/mw?passfile=/etc/pgpass", "postgresql://h/mw?passfile=/etc/pgpass"},
	    {"POSTGRESQL://u:x@h", "POSTGRESQL://u:***@h"},
	    {"postgresql://u:a@b@h/x", "postgresql://u:***@h/x"},
	    {"sqlite:/var/lib/mailwarden/mailwarden.db",
	     "sqlite:/var/lib/mailwarden/mailwarden.db"},
	};
	char buf[256], small[12];
	(void)state;
	for (size_t i = 0; i < MW_N_ELEMENTS(cases); i++) {
		mw_db_url_redact(cases[i].in, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
	mw_db_url_redact("postgresql://u:sekrit@h/x", small, sizeof(small));
	assert_null(strstr(small, "sekrit"));
}

/* One column of one table, as both catalogs describe it. */
struct column {
	char table[64], name[64], kind[16];
	int notnull;
};

struct columns {
	struct column c[256];
	size_t n;
};

/* type_kind - the storage class of a declared type (mw_db_decltype): integer, text, blob,
   real; other or none */
static const char *type_kind(const char *type)
{
	static const char *const names[] = {[MW_DB_INT] = "integer",
	                                    [MW_DB_TEXT] = "text",
	                                    [MW_DB_BLOB] = "blob",
	                                    [MW_DB_DOUBLE] = "real"};
	enum mw_db_type t;
	if (mw_db_decltype(type, &t) < 0)
		return type[0] != '\0' ? "other" : "none";
	return names[t];
}

/* next_column - the next entry of CS with the table and column name of a catalog row */
static struct column *next_column(struct columns *cs, const mw_db_row *row)
{
	struct column *c;
	assert_true(cs->n < MW_N_ELEMENTS(cs->c));
	c = &cs->c[cs->n++];
	snprintf(c->table, sizeof(c->table), "%s", mw_db_text(row, 0));
	snprintf(c->name, sizeof(c->name), "%s", mw_db_text(row, 1));
	return c;
}

/* add_column - a catalog row (table, column, type, notnull) */
static int add_column(const mw_db_row *row, void *ctx)
{
	struct column *c = next_column(ctx, row);
	snprintf(c->kind, sizeof(c->kind), "%s", type_kind(mw_db_text(row, 2)));
	c->notnull = (int)mw_db_int(row, 3);
	return 0;
}

/* add_name - a catalog row of names, joined into one "a.b.c" entry */
static int add_name(const mw_db_row *row, void *ctx)
{
	struct column *c = next_column(ctx, row);
	snprintf(c->kind, sizeof(c->kind), "%s", mw_db_is_null(row, 2) ? "" : mw_db_text(row, 2));
	return 0;
}

/* catalog - run a catalog query (the dialect's text) into cs */
static void catalog(mw_db *db, const struct mw_db_query *q, mw_db_row_cb *cb, struct columns *cs)
{
	mw_error err = {""};
	cs->n = 0;
	if (mw_db_run(db, q, MW_DB_NOARGS, cb, cs, NULL, &err) != MW_STORE_OK)
		fail_msg("%s: %s", q->what, err.msg);
}

/* compare - two catalogs' rows, reporting the first difference */
static void compare(const char *what, const struct columns *a, const struct columns *b,
                    bool with_notnull)
{
	for (size_t i = 0; i < a->n || i < b->n; i++) {
		const struct column *x = i < a->n ? &a->c[i] : NULL;
		const struct column *y = i < b->n ? &b->c[i] : NULL;
		if (x == NULL || y == NULL || strcmp(x->table, y->table) != 0 ||
		    strcmp(x->name, y->name) != 0 || strcmp(x->kind, y->kind) != 0 ||
		    (with_notnull && x->notnull != y->notnull))
			fail_msg("%s differ at %zu: sqlite %s.%s %s%s, postgresql %s.%s %s%s", what,
			         i, x ? x->table : "-", x ? x->name : "-", x ? x->kind : "",
			         x && x->notnull ? " not null" : "", y ? y->table : "-",
			         y ? y->name : "-", y ? y->kind : "",
			         y && y->notnull ? " not null" : "");
	}
}

/* test_same_schema - after all migrations both dialects have the same tables, columns
   (order, storage class, NOT NULL), indexes and foreign keys with their ON DELETE */
static void test_same_schema(void **state)
{
	static const struct mw_db_query q_cols = {
	    "listing columns",
	    "SELECT m.name, p.name, p.type, p.\"notnull\" OR p.pk > 0 FROM sqlite_master m, "
	    "pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' "
	    "ORDER BY m.name, p.cid",
	    "SELECT table_name::text, column_name::text, data_type::text, "
	    "CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END FROM information_schema.columns "
	    "WHERE table_schema = 'public' ORDER BY table_name COLLATE \"C\", ordinal_position"};
	static const struct mw_db_query q_idx = {
	    "listing indexes",
	    "SELECT tbl_name, name, NULL FROM sqlite_master WHERE type = 'index' AND name NOT "
	    "LIKE 'sqlite_autoindex_%' ORDER BY tbl_name, name",
	    "SELECT tablename::text, indexname::text, NULL FROM pg_indexes WHERE schemaname = "
	    "'public' AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key' "
	    "ORDER BY tablename COLLATE \"C\", indexname COLLATE \"C\""};
	static const struct mw_db_query q_fk = {
	    "listing foreign keys",
	    "SELECT m.name, f.\"from\" || '>' || f.\"table\" || '.' || f.\"to\", f.on_delete "
	    "FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table' "
	    "ORDER BY m.name, f.\"from\"",
	    "SELECT cl.relname::text, a.attname || '>' || rf.relname || '.' || ra.attname, "
	    "CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'r' THEN "
	    "'RESTRICT' ELSE 'NO ACTION' END FROM pg_constraint c "
	    "JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_class rf ON rf.oid = c.confrelid "
	    "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
	    "JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] "
	    "JOIN pg_namespace n ON n.oid = cl.relnamespace "
	    "WHERE c.contype = 'f' AND n.nspname = 'public' ORDER BY cl.relname::text COLLATE "
	    "\"C\", a.attname::text "
	    "COLLATE \"C\""};
	struct mw_test_db *ts = mw_test_db_create(&mw_test_sqlite);
	struct mw_test_db *tp = mw_test_db_create(&mw_test_pgsql);
	static struct columns a, b;
	mw_error err = {""};
	mw_db *ds, *dp;

	(void)state;
	ds = mw_db_open(ts->url, 5000, &err);
	if (ds == NULL || mw_db_migrate(ds, &err) != MW_STORE_OK)
		fail_msg("sqlite: %s", err.msg);
	dp = mw_db_open(tp->url, 5000, &err);
	if (dp == NULL || mw_db_migrate(dp, &err) != MW_STORE_OK)
		fail_msg("postgresql: %s", err.msg);

	catalog(ds, &q_cols, add_column, &a);
	catalog(dp, &q_cols, add_column, &b);
	assert_true(a.n > 40);
	compare("columns", &a, &b, true);
	catalog(ds, &q_idx, add_name, &a);
	catalog(dp, &q_idx, add_name, &b);
	assert_true(a.n >= 10);
	compare("indexes", &a, &b, false);
	catalog(ds, &q_fk, add_name, &a);
	catalog(dp, &q_fk, add_name, &b);
	assert_true(a.n >= 6);
	compare("foreign keys", &a, &b, false);

	mw_db_close(&ds);
	mw_db_close(&dp);
	mw_test_db_drop(&ts);
	mw_test_db_drop(&tp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    MW_TEST_DB_BOTH(test_binds, setup, teardown),
	    MW_TEST_DB_BOTH(test_blobs, setup, teardown),
	    MW_TEST_DB_BOTH(test_unique, setup, teardown),
	    MW_TEST_DB_BOTH(test_errors, setup, teardown),
	    MW_TEST_DB_BOTH(test_transactions, setup, teardown),
	    MW_TEST_DB_BOTH(test_one_change, setup, teardown),
	    MW_TEST_DB_BOTH(test_callback_stop, setup, teardown),
	    MW_TEST_DB_BOTH(test_data_version, setup, teardown),
	    MW_TEST_DB_BOTH(test_busy_wait, setup, teardown),
	    MW_TEST_DB_BOTH(test_row_reader, setup, teardown),
	    MW_TEST_DB_BOTH(test_migrate_twice, setup, teardown),
	    MW_TEST_DB_BOTH(test_migrate_concurrently, NULL, NULL),
	    {"test_connection_loss [postgresql]", test_connection_loss, setup, teardown,
	     (void *)&mw_test_pgsql},
	    cmocka_unit_test(test_open_unavailable),
	    cmocka_unit_test(test_url_redact),
	    cmocka_unit_test(test_same_migrations),
	    cmocka_unit_test(test_frozen_migrations),
	    cmocka_unit_test(test_same_schema),
	};
	MW_RUN_TESTS(tests);
}
