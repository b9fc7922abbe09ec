/* mw-test-db.h - fresh, empty databases of every store backend for the unit tests.
 *
 * A suite that runs against both backends lists its tests once per backend with
 * MW_TEST_DB_BOTH(test, setup, teardown), passing the backend as the test's initial state;
 * mw_test_db_create makes an empty database for it and returns its URL, mw_test_db_drop
 * removes it.
 *
 * SQLite: a file in a fresh mkdtemp directory (not created: mw_db_migrate creates it).
 * PostgreSQL: a new database on the server named by MW_TEST_PGSQL_URL (scripts/test starts
 * a throwaway one and sets it). Without that variable every PostgreSQL test FAILS, naming
 * the variable: a backend that could not be tested is never counted as passed.
 *
 * mw_test_store_open: a store on such a database, opened and migrated.
 *
 * mw_test_raw_*: a plain connection of the database's own library (sqlite3, libpq), as
 * Dovecot has, to look at or change what the interface cannot show.
 */
#ifndef MW_TEST_DB_H
#define MW_TEST_DB_H

#include "mw-db.h"
#include "mw-store.h"
#include "mw-test.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mw_test_backend {
	const char *name;
	enum mw_db_dialect dialect;
};

static const struct mw_test_backend mw_test_sqlite = {"sqlite", MW_DB_SQLITE};
static const struct mw_test_backend mw_test_pgsql = {"postgresql", MW_DB_PGSQL};

/* One database made by mw_test_db_create. */
struct mw_test_db {
	enum mw_db_dialect dialect;
	char url[512];
	char dir[64];     /* SQLite: the directory */
	char dbname[64];  /* PostgreSQL: the database */
	char admin[1024]; /* PostgreSQL: MW_TEST_PGSQL_URL */
};

/* the test named for each backend: "test_x [sqlite]" */
#define MW_TEST_DB_BOTH(f, setup, teardown)                                                        \
	{#f " [sqlite]", f, setup, teardown, (void *)&mw_test_sqlite},                             \
	{                                                                                          \
#f " [postgresql]", f, setup, teardown, (void *)&mw_test_pgsql                     \
	}

/* mw_test_pg_admin - a connection to MW_TEST_PGSQL_URL; fails the test without it */
static PGconn *mw_test_pg_admin(const char *url)
{
	PGconn *c;
	if (url == NULL || *url == '\0')
		fail_msg("MW_TEST_PGSQL_URL is not set: the PostgreSQL tests need a server "
		         "(scripts/test starts one)");
	c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("MW_TEST_PGSQL_URL: cannot connect: %s", PQerrorMessage(c));
	return c;
}

/* mw_test_pg_exec - run an SQL command on an admin connection; fails the test on error */
static void mw_test_pg_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

/* mw_test_db_create - a fresh empty database of the backend */
static struct mw_test_db *mw_test_db_create(const struct mw_test_backend *b)
{
	struct mw_test_db *t = calloc(1, sizeof(*t));
	static unsigned counter;
	assert_non_null(t);
	t->dialect = b->dialect;
	if (b->dialect == MW_DB_SQLITE) {
		strcpy(t->dir, "/tmp/mw-test-db.XXXXXX");
		assert_non_null(mkdtemp(t->dir));
		snprintf(t->url, sizeof(t->url), "sqlite:%s/mw.db", t->dir);
	} else {
		const char *admin = getenv("MW_TEST_PGSQL_URL");
		char sql[128];
		PGconn *c = mw_test_pg_admin(admin);
		snprintf(t->admin, sizeof(t->admin), "%s", admin);
		snprintf(t->dbname, sizeof(t->dbname), "mwt_%ld_%u", (long)getpid(), ++counter);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->dbname);
		mw_test_pg_exec(c, sql);
		snprintf(t->url, sizeof(t->url), "postgresql:///%s?host=%s&port=%s&user=%s",
		         t->dbname, PQhost(c), PQport(c), PQuser(c));
		PQfinish(c);
	}
	return t;
}

/* mw_test_db_drop - remove the database (SQLite: its files and directory) */
static void mw_test_db_drop(struct mw_test_db **tp)
{
	struct mw_test_db *t = *tp;
	if (t == NULL)
		return;
	if (t->dialect == MW_DB_SQLITE) {
		static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
		char p[128];
		for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
			snprintf(p, sizeof(p), "%s/mw.db%s", t->dir, suffixes[i]);
			(void)unlink(p);
		}
		(void)rmdir(t->dir);
	} else {
		char sql[128];
		PGconn *c = mw_test_pg_admin(t->admin);
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->dbname);
		mw_test_pg_exec(c, sql);
		PQfinish(c);
	}
	free(t);
	*tp = NULL;
}

/* A plain sqlite3 or libpq connection to a test database. */
struct mw_test_raw {
	sqlite3 *lite;
	PGconn *pg;
};

/* mw_test_raw_open - a plain connection to t */
static inline struct mw_test_raw *mw_test_raw_open(const struct mw_test_db *t)
{
	struct mw_test_raw *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	if (t->dialect == MW_DB_SQLITE) {
		char path[128];
		snprintf(path, sizeof(path), "%s/mw.db", t->dir);
		assert_int_equal(sqlite3_open_v2(path, &r->lite, SQLITE_OPEN_READWRITE, NULL),
		                 SQLITE_OK);
		sqlite3_busy_timeout(r->lite, 5000);
	} else {
		r->pg = PQconnectdb(t->url);
		if (PQstatus(r->pg) != CONNECTION_OK)
			fail_msg("raw connection: %s", PQerrorMessage(r->pg));
	}
	return r;
}

/* mw_test_raw_close - close and free */
static inline void mw_test_raw_close(struct mw_test_raw **rp)
{
	struct mw_test_raw *r = *rp;
	if (r == NULL)
		return;
	if (r->lite != NULL)
		sqlite3_close(r->lite);
	PQfinish(r->pg);
	free(r);
	*rp = NULL;
}

/* mw_test_raw_try - run sql (several statements allowed); 0, or -1 with the database's
   message in msg */
static inline int mw_test_raw_try(struct mw_test_raw *r, const char *sql, char *msg, size_t size)
{
	if (msg != NULL && size > 0)
		msg[0] = '\0';
	if (r->lite != NULL) {
		char *m = NULL;
		if (sqlite3_exec(r->lite, sql, NULL, NULL, &m) == SQLITE_OK)
			return 0;
		if (msg != NULL)
			snprintf(msg, size, "%s", m != NULL ? m : "?");
		sqlite3_free(m);
		return -1;
	} else {
		PGresult *res = PQexec(r->pg, sql);
		ExecStatusType st = PQresultStatus(res);
		int ret = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
		if (ret < 0 && msg != NULL)
			snprintf(msg, size, "%s", PQerrorMessage(r->pg));
		PQclear(res);
		return ret;
	}
}

/* mw_test_raw_exec - run sql; fails the test if it fails */
static inline void mw_test_raw_exec(struct mw_test_raw *r, const char *sql)
{
	char msg[512];
	if (mw_test_raw_try(r, sql, msg, sizeof(msg)) < 0)
		fail_msg("exec %s: %s", sql, msg);
}

/* mw_test_raw_int - the first column of the first row of sql (a NULL reads as 0) */
static inline int64_t mw_test_raw_int(struct mw_test_raw *r, const char *sql)
{
	int64_t v = 0;
	if (r->lite != NULL) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(r->lite, sql, -1, &st, NULL) != SQLITE_OK)
			fail_msg("prepare %s: %s", sql, sqlite3_errmsg(r->lite));
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	} else {
		PGresult *res = PQexec(r->pg, sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
			fail_msg("query %s: %s", sql, PQerrorMessage(r->pg));
		v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	return v;
}

/* mw_test_store_open - a store on URL, opened and migrated (else the test fails) */
static inline mw_store *mw_test_store_open(const char *url)
{
	mw_error err = {""};
	mw_store *store = mw_store_open(url, 2000, &err);
	if (store == NULL)
		fail_msg("open: %s", err.msg);
	if (mw_store_migrate(store, &err) != MW_STORE_OK)
		fail_msg("migrate: %s", err.msg);
	return store;
}

/* A suite's store on a fresh database of the test's backend: MW_TEST_DB_BOTH(test,
   mw_test_store_setup, mw_test_store_teardown); the test's state is the fixture. */
struct mw_test_store_fx {
	struct mw_test_db *tdb;
	mw_store *store;
};

/* mw_test_store_setup - a fresh database of the backend in *state, its store migrated */
static inline int mw_test_store_setup(void **state)
{
	struct mw_test_store_fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->tdb = mw_test_db_create(*state);
	*state = f;
	f->store = mw_test_store_open(f->tdb->url);
	return 0;
}

/* mw_test_store_teardown - close the store, drop its database */
static inline int mw_test_store_teardown(void **state)
{
	struct mw_test_store_fx *f = *state;
	mw_store_close(&f->store);
	mw_test_db_drop(&f->tdb);
	free(f);
	return 0;
}

#endif
