/* test-store.c - unit tests for the store, one suite run against both backends.
 *
 * The store's operations are listed once per backend (MW_TEST_DB_BOTH, mw-test-db.h): each
 * test gets a fresh SQLite file or a fresh PostgreSQL database (MW_TEST_PGSQL_URL, started
 * by scripts/test; without it the PostgreSQL half fails). Plain connections of the
 * database's own library (mw_test_raw_*) check what the interface cannot show: triggers,
 * cascades, locks and the exact query Dovecot's passdb sql runs. The tests of SQLite's file
 * (URLs, creation, modes, WAL) run on SQLite only.
 */
#include "mw-build.h"
#include "mw-db-private.h"
#include "mw-store.h"
#include "mw-test-db.h"
#include "mw-test.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH  "{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaA"
#define HASH2 "{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$b3RoZXJzYWx0$b3RoZXI"

struct fixture {
	char dir[64];
	char path[128];
	char url[512];
	mw_store *store;
	struct mw_test_db *tdb; /* the tests of both backends: their database */
};

/* fx_path - a file name inside the fixture directory */
static void fx_path(const struct fixture *f, const char *name, char *out, size_t outsize)
{
	int n = snprintf(out, outsize, "%s/%s", f->dir, name);
	assert_true(n > 0 && (size_t)n < outsize);
}

/* setup - fresh directory, database path and URL; no store opened yet */
static int setup(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	int n;
	assert_int_equal(mw_strlcpy(f->dir, "/tmp/mw-test-store.XXXXXX", sizeof(f->dir)), 0);
	assert_non_null(mkdtemp(f->dir));
	fx_path(f, "mw.db", f->path, sizeof(f->path));
	n = snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
	assert_true(n > 0 && (size_t)n < (int)sizeof(f->url));
	*state = f;
	return 0;
}

/* setup_migrated - as setup, plus an open, migrated store */
static int setup_migrated(void **state)
{
	struct fixture *f;
	setup(state);
	f = *state;
	f->store = mw_test_store_open(f->url);
	return 0;
}

/* setup_both - a fresh database of the test's backend (the initial state), its store
   opened and migrated */
static int setup_both(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	f->tdb = mw_test_db_create(*state);
	*state = f;
	assert_int_equal(mw_strlcpy(f->url, f->tdb->url, sizeof(f->url)), 0);
	f->store = mw_test_store_open(f->url);
	return 0;
}

/* teardown - close the store and remove the database and its WAL files */
static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->tdb != NULL) {
		mw_store_close(&f->store);
		mw_test_db_drop(&f->tdb);
		free(f);
		return 0;
	}
	static const char *const names[] = {"mw.db",  "mw.db-wal",  "mw.db-shm", "mw.db-journal",
	                                    "old.db", "old.db-wal", "old.db-shm"};
	char p[192];
	size_t i;
	mw_store_close(&f->store);
	for (i = 0; i < MW_N_ELEMENTS(names); i++) {
		fx_path(f, names[i], p, sizeof(p));
		(void)unlink(p);
	}
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

typedef struct mw_test_raw raw_db;

/* raw_open - a plain connection to the fixture's database, as Dovecot has */
static raw_db *raw_open(const struct fixture *f)
{
	raw_db *r;
	if (f->tdb != NULL)
		return mw_test_raw_open(f->tdb);
	r = mw_calloc(1, sizeof(*r));
	assert_int_equal(sqlite3_open_v2(f->path, &r->lite, SQLITE_OPEN_READWRITE, NULL),
	                 SQLITE_OK);
	return r;
}

/* pg - whether the fixture's database is PostgreSQL */
static bool pg(const struct fixture *f)
{
	return f->tdb != NULL && f->tdb->dialect == MW_DB_PGSQL;
}

#define raw_int(db, sql)  mw_test_raw_int(db, sql)
#define raw_exec(db, sql) mw_test_raw_exec(db, sql)
#define raw_close(db)     mw_test_raw_close(&(db))

/* add_user - add a user or fail the test */
static int64_t add_user(mw_store *store, const char *name, enum mw_user_status status,
                        enum mw_user_role role)
{
	mw_error err = {""};
	int64_t id = 0;
	if (mw_store_user_add(store, name, HASH, status, role, "", &id, &err) != MW_STORE_OK)
		fail_msg("add %s: %s", name, err.msg);
	assert_true(id > 0);
	return id;
}

/* test_username_normalize - folding, keeping non-ASCII, refusals */
static void test_username_normalize(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL = refused */
		const char *msg;
	} cases[] = {
	    {"alice@example.com", "alice@example.com", NULL},
	    {"Alice@Example.COM", "alice@example.com", NULL},
	    {"ALICE", "alice", NULL},
	    {"\xc3\x84LICE@X.org", "\xc3\x84lice@x.org", NULL}, /* Ä kept, ASCII folded */
	    {"x);DELETE/**/FROM/**/users;--@example.com",
	     "x);delete/**/from/**/users;--@example.com", NULL},
	    {"a_b*c@x", "a_b*c@x", NULL},
	    {"", NULL, "empty"},
	    {" alice", NULL, "blank"},
	    {"alice ", NULL, "blank"},
	    {"al ice", NULL, "blank"},
	    {"al\xc2\xa0ice", NULL, "blank"},     /* no-break space */
	    {"al\xe2\x80\x8bice", NULL, "blank"}, /* zero-width space */
	    {"al\tice", NULL, "control"},
	    {"al\nice", NULL, "control"},
	    {"al\rice", NULL, "control"},
	    {"al\x7fice", NULL, "control"},
	    {"al\xc2\x85ice", NULL, "control"}, /* NEL */
	    {"al%ice", NULL, "'%'"},
	    {"%u", NULL, "'%'"},
	    {"al'ice", NULL, "'''"},
	    {"al\"ice", NULL, "'\"'"},
	    {"al\\ice", NULL, "'\\'"},
	    {"al\xffice", NULL, "UTF-8"},
	    {"al\xc0\xafice", NULL, "UTF-8"},
	    {"al\xed\xa0\x80ice", NULL, "UTF-8"},
	    {"al\xc3", NULL, "UTF-8"},
	};
	char out[MW_USERNAME_MAX + 1], small[4], longname[MW_USERNAME_MAX + 2];
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		mw_error err = {""};
		int r = mw_store_username_normalize(cases[i].in, out, sizeof(out), &err);
		if (cases[i].out != NULL) {
			if (r != 0 || strcmp(out, cases[i].out) != 0)
				fail_msg("case %zu: %d '%s' %s", i, r, out, err.msg);
		} else if (r != -1 || strstr(err.msg, cases[i].msg) == NULL) {
			fail_msg("case %zu: %d '%s', want '%s'", i, r, err.msg, cases[i].msg);
		}
	}
	assert_int_equal(mw_store_username_normalize(NULL, out, sizeof(out), NULL), -1);
	assert_int_equal(mw_store_username_normalize("abcd", small, sizeof(small), NULL), -1);
	assert_int_equal(mw_store_username_normalize("abc", small, sizeof(small), NULL), 0);
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(mw_store_username_normalize(longname, out, sizeof(out), NULL), -1);
	longname[MW_USERNAME_MAX] = '\0';
	assert_int_equal(mw_store_username_normalize(longname, out, sizeof(out), NULL), 0);
	assert_int_equal(strlen(out), MW_USERNAME_MAX);
	assert_int_equal(out[0], 'a');
}

/* test_enum_names - status and role names both ways */
static void test_enum_names(void **state)
{
	enum mw_user_status s;
	enum mw_user_role r;
	(void)state;
	assert_string_equal(mw_user_status_name(MW_USER_PENDING), "pending");
	assert_string_equal(mw_user_status_name(MW_USER_ACTIVE), "active");
	assert_string_equal(mw_user_status_name(MW_USER_DISABLED), "disabled");
	assert_null(mw_user_status_name((enum mw_user_status)3));
	assert_null(mw_user_status_name((enum mw_user_status) - 1));
	assert_string_equal(mw_user_role_name(MW_ROLE_USER), "user");
	assert_string_equal(mw_user_role_name(MW_ROLE_ADMIN), "admin");
	assert_null(mw_user_role_name((enum mw_user_role)2));
	assert_int_equal(mw_user_status_parse("active", &s), 0);
	assert_int_equal(s, MW_USER_ACTIVE);
	assert_int_equal(mw_user_status_parse("Disabled", &s), 0);
	assert_int_equal(s, MW_USER_DISABLED);
	assert_int_equal(mw_user_status_parse("activ", &s), -1);
	assert_int_equal(mw_user_status_parse("", &s), -1);
	assert_int_equal(mw_user_status_parse(NULL, &s), -1);
	assert_int_equal(mw_user_role_parse("admin", &r), 0);
	assert_int_equal(r, MW_ROLE_ADMIN);
	assert_int_equal(mw_user_role_parse("user", &r), 0);
	assert_int_equal(r, MW_ROLE_USER);
	assert_int_equal(mw_user_role_parse("root", &r), -1);
}

/* test_url - which URLs open and what the refusals say */
static void test_url(void **state)
{
	struct fixture *f = *state;
	char url[300], longurl[MW_STORE_URL_MAX + 16];
	mw_error err = {""};
	mw_store *s;
	static const struct {
		const char *url, *msg;
	} bad[] = {
	    /* the PostgreSQL driver: no server behind these sockets */
	    {"postgresql://mw@/mailwarden?host=/nonexistent-mw-dir", "unavailable"},
	    {"postgres:///mw?host=/nonexistent-mw-dir", "unavailable"},
	    {"POSTGRESQL:///x?host=/nonexistent-mw-dir", "unavailable"},
	    {"postgresql://u:pw@/x?nosuchoption=1", "bad PostgreSQL URL"},
	    {"sqlite:relative.db", "absolute"},
	    {"sqlite:", "absolute"},
	    {"relative.db", "must be sqlite:"},
	    {":memory:", "must be sqlite:"},
	    {"mysql://x", "must be sqlite:"},
	    {"", "empty"},
	    {"sqlite://host/x.db", "takes a path"},
	    {"sqlite:/nonexistent-mw-dir/x.db", "directory /nonexistent-mw-dir does not exist"},
	    {"/nonexistent-mw-dir/x.db", "does not exist"},
	    {"sqlite:/tmp/x\n.db", "control character"},
	};
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(bad); i++) {
		s = mw_store_open(bad[i].url, 100, &err);
		if (s != NULL || strstr(err.msg, bad[i].msg) == NULL)
			fail_msg("url case %zu: '%s'", i, err.msg);
	}
	assert_null(mw_store_open(NULL, 100, &err));
	/* a directory, not a file */
	assert_true(snprintf(url, sizeof(url), "sqlite:%s/", f->dir) < (int)sizeof(url));
	assert_null(mw_store_open(url, 100, &err));
	assert_non_null(strstr(err.msg, "names a directory"));
	assert_null(mw_store_open(f->dir, 100, &err));
	assert_non_null(strstr(err.msg, "not a regular file"));
	/* over-long */
	memset(longurl, 'a', sizeof(longurl) - 1);
	memcpy(longurl, "sqlite:/", 8);
	longurl[sizeof(longurl) - 1] = '\0';
	assert_null(mw_store_open(longurl, 100, &err));
	assert_non_null(strstr(err.msg, "longer than"));

	/* the accepted forms, all naming the same file */
	s = mw_store_open(f->url, 100, &err);
	assert_non_null(s);
	assert_string_equal(mw_store_backend_name(s), "sqlite");
	assert_int_equal(mw_store_migrate(s, &err), MW_STORE_OK);
	add_user(s, "one@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	mw_store_close(&s);
	assert_null(s);
	mw_store_close(&s); /* twice is harmless */
	{
		const char *forms[3];
		struct mw_user u;
		char slashes[300], upper[300];
		assert_true(snprintf(slashes, sizeof(slashes), "sqlite://%s", f->path) <
		            (int)sizeof(slashes));
		assert_true(snprintf(upper, sizeof(upper), "SQLite:%s", f->path) <
		            (int)sizeof(upper));
		forms[0] = f->path;
		forms[1] = slashes;
		forms[2] = upper;
		for (i = 0; i < 3; i++) {
			s = mw_store_open(forms[i], 100, &err);
			if (s == NULL)
				fail_msg("form %s: %s", forms[i], err.msg);
			assert_int_equal(mw_store_user_get(s, "one@example.com", &u, &err),
			                 MW_STORE_OK);
			mw_user_clear(&u);
			mw_store_close(&s);
		}
	}
}

/* test_create_lazily - open does not create; migrate does, with mode 0640 */
static void test_create_lazily(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	struct mw_user u;
	struct stat st;
	int version = -1;
	mode_t old;
	f->store = mw_store_open(f->url, 100, &err);
	assert_non_null(f->store);
	assert_int_equal(stat(f->path, &st), -1); /* not created by open */
	assert_int_equal(mw_store_schema_version(f->store, &version, &err), 0);
	assert_int_equal(version, 0);
	assert_int_equal(stat(f->path, &st), -1); /* nor by asking the version */
	assert_int_equal(mw_store_check_schema(f->store, &err), -1);
	assert_non_null(strstr(err.msg, "mailwardenctl init"));
	assert_int_equal(mw_store_user_get(f->store, "a@b", &u, &err), MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "does not exist yet"));
	assert_int_equal(
	    mw_store_user_add(f->store, "a@b", HASH, MW_USER_ACTIVE, MW_ROLE_USER, "", NULL, &err),
	    MW_STORE_ERROR);
	assert_int_equal(stat(f->path, &st), -1);

	old = umask(077); /* 0640 even under a strict umask */
	assert_int_equal(mw_store_migrate(f->store, &err), MW_STORE_OK);
	(void)umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(mw_store_schema_version(f->store, &version, &err), 0);
	assert_int_equal(version, mw_store_latest_schema_version());
	assert_int_equal(mw_store_check_schema(f->store, &err), 0);
	add_user(f->store, "a@b", MW_USER_ACTIVE, MW_ROLE_USER);
}

/* test_existing_mode_kept - migrating an existing (empty) file does not chmod it */
static void test_existing_mode_kept(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	struct stat st;
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(f->path, 0600), 0);
	f->store = mw_store_open(f->url, 100, &err);
	assert_non_null(f->store);
	assert_int_equal(mw_store_migrate(f->store, &err), MW_STORE_OK);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

/* test_not_a_database - a file that is not SQLite is refused at open */
static void test_not_a_database(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	assert_true(fputs("this is not an SQLite database, just some text long enough to "
	                  "fill a header of one hundred bytes...................\n",
	                  fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	assert_null(mw_store_open(f->url, 100, &err));
	assert_non_null(strstr(err.msg, "not a database"));
}

/* test_migrate - idempotent, records the version, creates the schema, WAL, pragmas */
static void test_migrate(void **state)
{
	struct fixture *f = *state;
	char sql[200];
	mw_error err = {""};
	mw_store *second;
	int version = 0;
	raw_db *db;
	size_t i;
	assert_int_equal(mw_store_latest_schema_version(), 7);
	assert_int_equal(mw_store_migrate(f->store, &err), MW_STORE_OK); /* again */
	second = mw_store_open(f->path, 100, &err);
	assert_non_null(second);
	assert_int_equal(mw_store_migrate(second, &err), MW_STORE_OK); /* from another store */
	assert_int_equal(mw_store_schema_version(second, &version, &err), 0);
	assert_int_equal(version, 7);
	assert_int_equal(mw_store_check_schema(second, &err), 0);
	mw_store_close(&second);

	db = raw_open(f);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(raw_int(db, "SELECT version FROM schema_version"), 7);
	for (i = 0; i < MW_STORE_TABLES_COUNT; i++) {
		assert_true(snprintf(sql, sizeof(sql),
		                     "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
		                     "AND name = '%s'",
		                     mw_store_tables[i]) < (int)sizeof(sql));
		if (raw_int(db, sql) != 1)
			fail_msg("table %s missing", mw_store_tables[i]);
	}
	/* and no other table: the list is what store copy moves */
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
	                             "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"),
	                 MW_STORE_TABLES_COUNT + 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
	                             "AND tbl_name = 'audit_log'"),
	                 2);
	/* WAL is persistent in the file */
	{
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db->lite, "PRAGMA journal_mode", -1, &st, NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
	}
	raw_close(db);
}

/* test_newer_refused - a store from a future mailwarden is refused, not touched */
static void test_newer_refused(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	int version = 0;
	raw_db *db;
	mw_store_close(&f->store);
	db = raw_open(f);
	raw_exec(db, "UPDATE schema_version SET version = 99");
	raw_close(db);
	f->store = mw_store_open(f->url, 100, &err);
	assert_non_null(f->store);
	assert_int_equal(mw_store_schema_version(f->store, &version, &err), 0);
	assert_int_equal(version, 99);
	assert_int_equal(mw_store_check_schema(f->store, &err), -1);
	assert_non_null(strstr(err.msg, "newer"));
	assert_int_equal(mw_store_migrate(f->store, &err), MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "schema version 99 is newer than this mailwarden"));
	db = raw_open(f);
	assert_int_equal(raw_int(db, "SELECT version FROM schema_version"), 99);
	raw_close(db);
}

/* test_user_ops - add, get, set_*, delete and their error codes */
static void test_user_ops(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	struct mw_user u;
	char longdesc[MW_DESCRIPTION_MAX + 2];
	int64_t id = 0, id2 = 0;
	raw_db *db;
	mw_store *s = f->store;

	assert_int_equal(mw_store_user_add(s, "alice@example.com", HASH, MW_USER_PENDING,
	                                   MW_ROLE_ADMIN, "Alice A.", &id, &err),
	                 MW_STORE_OK);
	assert_true(id > 0);
	assert_int_equal(mw_store_user_add(s, "alice@example.com", HASH2, MW_USER_ACTIVE,
	                                   MW_ROLE_USER, "", &id2, &err),
	                 MW_STORE_EXISTS);
	assert_non_null(strstr(err.msg, "already exists"));
	assert_null(strstr(err.msg, "argon2id")); /* no hash in messages */
	/* not normalised / invalid */
	assert_int_equal(mw_store_user_add(s, "Bob@example.com", HASH, MW_USER_ACTIVE, MW_ROLE_USER,
	                                   "", NULL, &err),
	                 MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "not normalised"));
	assert_int_equal(mw_store_user_add(s, "b ob@example.com", HASH, MW_USER_ACTIVE,
	                                   MW_ROLE_USER, "", NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_user_add(s, "bob@example.com", "", MW_USER_ACTIVE, MW_ROLE_USER,
	                                   "", NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_user_add(s, "bob@example.com", NULL, MW_USER_ACTIVE, MW_ROLE_USER,
	                                   "", NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_user_add(s, "bob@example.com", HASH, (enum mw_user_status)7,
	                                   MW_ROLE_USER, "", NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_user_add(s, "bob@example.com", HASH, MW_USER_ACTIVE,
	                                   (enum mw_user_role)7, "", NULL, &err),
	                 MW_STORE_ERROR);
	memset(longdesc, 'd', sizeof(longdesc) - 1);
	longdesc[sizeof(longdesc) - 1] = '\0';
	assert_int_equal(mw_store_user_add(s, "bob@example.com", HASH, MW_USER_ACTIVE, MW_ROLE_USER,
	                                   longdesc, NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_user_add(s, "bob@example.com", HASH, MW_USER_ACTIVE, MW_ROLE_USER,
	                                   "line\nbreak", NULL, &err),
	                 MW_STORE_ERROR);
	longdesc[MW_DESCRIPTION_MAX] = '\0';
	assert_int_equal(mw_store_user_add(s, "bob@example.com", HASH, MW_USER_ACTIVE, MW_ROLE_USER,
	                                   longdesc, &id2, &err),
	                 MW_STORE_OK);
	assert_true(id2 > id);

	assert_int_equal(mw_store_user_get(s, "alice@example.com", &u, &err), MW_STORE_OK);
	assert_int_equal(u.id, id);
	assert_string_equal(u.username, "alice@example.com");
	assert_string_equal(u.password, HASH);
	assert_int_equal(u.status, MW_USER_PENDING);
	assert_int_equal(u.role, MW_ROLE_ADMIN);
	assert_string_equal(u.description, "Alice A.");
	assert_true(u.created_at >= 1700000000 && u.created_at < 1700000000 + 600);
	assert_int_equal(u.updated_at, u.created_at);
	assert_int_equal(u.password_changed_at, u.created_at);
	assert_false(u.has_totp);
	assert_int_equal(u.failed_logins, 0);
	assert_int_equal(u.locked_until, 0);
	mw_user_clear(&u);
	assert_null(u.password);

	assert_int_equal(mw_store_user_get_by_id(s, id2, &u, &err), MW_STORE_OK);
	assert_string_equal(u.username, "bob@example.com");
	assert_int_equal(strlen(u.description), MW_DESCRIPTION_MAX);
	mw_user_clear(&u);
	assert_int_equal(mw_store_user_get_by_id(s, id2 + 100, &u, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_get_by_id(s, 0, &u, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_get_by_id(s, -1, &u, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_get(s, "carol@example.com", &u, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_get(s, "Alice@example.com", &u, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_get(s, "", &u, &err), MW_STORE_NOTFOUND);

	/* each change stamps updated_at: zero the stamps first to see it */
	db = raw_open(f);
	raw_exec(db, "UPDATE users SET updated_at = 0, password_changed_at = 0");
	assert_int_equal(mw_store_user_set_status(s, "alice@example.com", MW_USER_ACTIVE, &err),
	                 MW_STORE_OK);
	assert_true(raw_int(db, "SELECT updated_at FROM users WHERE username = "
	                        "'alice@example.com'") >= 1700000000);
	assert_int_equal(raw_int(db, "SELECT password_changed_at FROM users WHERE username = "
	                             "'alice@example.com'"),
	                 0);
	raw_exec(db, "UPDATE users SET updated_at = 0");
	assert_int_equal(mw_store_user_set_role(s, "alice@example.com", MW_ROLE_USER, &err),
	                 MW_STORE_OK);
	assert_true(raw_int(db, "SELECT updated_at FROM users WHERE id = 1") >= 1700000000);
	raw_exec(db, "UPDATE users SET updated_at = 0");
	assert_int_equal(mw_store_user_set_description(s, "alice@example.com", "new", &err),
	                 MW_STORE_OK);
	assert_true(raw_int(db, "SELECT updated_at FROM users WHERE id = 1") >= 1700000000);
	raw_exec(db, "UPDATE users SET updated_at = 0");
	assert_int_equal(mw_store_user_set_password(s, "alice@example.com", HASH2, &err),
	                 MW_STORE_OK);
	assert_true(raw_int(db, "SELECT updated_at FROM users WHERE id = 1") >= 1700000000);
	assert_true(raw_int(db, "SELECT password_changed_at FROM users WHERE id = 1") >=
	            1700000000);
	/* bob untouched */
	assert_int_equal(raw_int(db, "SELECT updated_at FROM users WHERE username = "
	                             "'bob@example.com'"),
	                 0);
	raw_close(db);

	assert_int_equal(mw_store_user_get(s, "alice@example.com", &u, &err), MW_STORE_OK);
	assert_int_equal(u.status, MW_USER_ACTIVE);
	assert_int_equal(u.role, MW_ROLE_USER);
	assert_string_equal(u.description, "new");
	assert_string_equal(u.password, HASH2);
	mw_user_clear(&u);
	assert_int_equal(mw_store_user_set_description(s, "alice@example.com", NULL, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_user_get(s, "alice@example.com", &u, &err), MW_STORE_OK);
	assert_string_equal(u.description, "");
	mw_user_clear(&u);

	/* unknown users and bad values */
	assert_int_equal(mw_store_user_set_status(s, "nobody@x", MW_USER_ACTIVE, &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_set_role(s, "nobody@x", MW_ROLE_ADMIN, &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_set_description(s, "nobody@x", "d", &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_set_password(s, "nobody@x", HASH, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_delete(s, "nobody@x", &err), MW_STORE_NOTFOUND);
	assert_int_equal(
	    mw_store_user_set_status(s, "alice@example.com", (enum mw_user_status)9, &err),
	    MW_STORE_ERROR);
	assert_int_equal(mw_store_user_set_role(s, "alice@example.com", (enum mw_user_role)9, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_user_set_password(s, "alice@example.com", "", &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_user_set_password(s, "alice@example.com", "x\ny", &err),
	                 MW_STORE_ERROR);

	/* delete, and a new user never reuses the id */
	assert_int_equal(mw_store_user_delete(s, "bob@example.com", &err), MW_STORE_OK);
	assert_int_equal(mw_store_user_get(s, "bob@example.com", &u, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_delete(s, "bob@example.com", &err), MW_STORE_NOTFOUND);
	assert_true(add_user(s, "bob@example.com", MW_USER_ACTIVE, MW_ROLE_USER) > id2);
}

struct list_ctx {
	mw_store *store;
	int64_t ids[64];
	size_t n;
	size_t stop_after; /* 0 = never */
};

/* collect - list callback: remember ids in order, use the store, maybe stop */
static int collect(const struct mw_user *user, void *ctx)
{
	struct list_ctx *c = ctx;
	struct mw_user again;
	assert_true(c->n < MW_N_ELEMENTS(c->ids));
	c->ids[c->n++] = user->id;
	/* the callback may use the store while listing */
	assert_int_equal(mw_store_user_get(c->store, user->username, &again, NULL), MW_STORE_OK);
	assert_int_equal(again.id, user->id);
	mw_user_clear(&again);
	if (c->stop_after != 0 && c->n == c->stop_after)
		return 42;
	return 0;
}

/* test_user_list - filters, id order, paging, early stop */
static void test_user_list(void **state)
{
	struct fixture *f = *state;
	struct mw_user_filter flt = {.status = -1, .role = -1, .after_id = 0, .limit = 0};
	struct list_ctx c = {.store = f->store};
	mw_error err = {""};
	char name[32];
	int64_t last = 0;
	size_t i, pages = 0, total = 0;
	for (i = 0; i < 25; i++) {
		assert_true(snprintf(name, sizeof(name), "u%02zu@example.com", i) <
		            (int)sizeof(name));
		add_user(f->store, name, (enum mw_user_status)(i % 3),
		         i % 5 == 0 ? MW_ROLE_ADMIN : MW_ROLE_USER);
	}
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), 0);
	assert_int_equal(c.n, 25);
	for (i = 1; i < c.n; i++)
		assert_true(c.ids[i] > c.ids[i - 1]);
	c.n = 0;
	assert_int_equal(mw_store_user_list(f->store, NULL, collect, &c, &err), 0);
	assert_int_equal(c.n, 25);

	c.n = 0;
	flt.status = MW_USER_ACTIVE; /* i % 3 == 1: 1,4,...,22 */
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), 0);
	assert_int_equal(c.n, 8);
	c.n = 0;
	flt.status = -1;
	flt.role = MW_ROLE_ADMIN; /* 0,5,10,15,20 */
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), 0);
	assert_int_equal(c.n, 5);
	c.n = 0;
	flt.status = MW_USER_PENDING; /* i%3==0 and i%5==0: 0, 15 */
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), 0);
	assert_int_equal(c.n, 2);

	/* pages of 10 */
	flt.status = -1;
	flt.role = -1;
	flt.limit = 10;
	do {
		c.n = 0;
		flt.after_id = last;
		assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), 0);
		if (c.n > 0) {
			assert_true(c.ids[0] > last);
			last = c.ids[c.n - 1];
		}
		assert_true(c.n <= 10);
		total += c.n;
		pages++;
	} while (c.n == 10);
	assert_int_equal(total, 25);
	assert_int_equal(pages, 3);

	/* early stop returns the callback's value */
	c.n = 0;
	c.stop_after = 3;
	flt.limit = 0;
	flt.after_id = 0;
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), 42);
	assert_int_equal(c.n, 3);

	flt.status = 5;
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), MW_STORE_ERROR);
	flt.status = -2;
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), MW_STORE_ERROR);
	flt.status = -1;
	flt.role = 2;
	assert_int_equal(mw_store_user_list(f->store, &flt, collect, &c, &err), MW_STORE_ERROR);
}

/* test_allowed_from - add, list, delete and their error codes */
static void test_allowed_from(void **state)
{
	struct fixture *f = *state;
	mw_store *s = f->store;
	mw_error err = {""};
	char **v = NULL;
	size_t n = 99;
	raw_db *db;
	add_user(s, "alice@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	add_user(s, "bob@example.com", MW_USER_ACTIVE, MW_ROLE_USER);

	assert_int_equal(mw_store_allowed_from_list(s, "alice@example.com", &v, &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 0);
	assert_non_null(v);
	assert_null(v[0]);
	mw_store_strv_free(v);

	db = raw_open(f);
	raw_exec(db, "UPDATE users SET updated_at = 0");
	assert_int_equal(mw_store_allowed_from_add(s, "alice@example.com", "*@example.com", &err),
	                 MW_STORE_OK);
	assert_true(raw_int(db, "SELECT updated_at FROM users WHERE username = "
	                        "'alice@example.com'") >= 1700000000);
	assert_int_equal(
	    mw_store_allowed_from_add(s, "alice@example.com", "alice@example.com", &err),
	    MW_STORE_OK);
	assert_int_equal(mw_store_allowed_from_add(s, "alice@example.com", "*@*.example.org", &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_allowed_from_add(s, "alice@example.com", "*@example.com", &err),
	                 MW_STORE_EXISTS);
	assert_non_null(strstr(err.msg, "already allowed"));
	/* the same pattern for another user is fine */
	assert_int_equal(mw_store_allowed_from_add(s, "bob@example.com", "*@example.com", &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_allowed_from_add(s, "nobody@example.com", "*@example.com", &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_allowed_from_add(s, "alice@example.com", "", &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_allowed_from_add(s, "alice@example.com", "a b@x", &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_allowed_from_add(s, "alice@example.com", NULL, &err),
	                 MW_STORE_ERROR);

	assert_int_equal(mw_store_allowed_from_list(s, "alice@example.com", &v, &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "*@*.example.org"); /* sorted */
	assert_string_equal(v[1], "*@example.com");
	assert_string_equal(v[2], "alice@example.com");
	assert_null(v[3]);
	mw_store_strv_free(v);
	v = NULL;
	assert_int_equal(mw_store_allowed_from_list(s, "nobody@example.com", &v, &n, &err),
	                 MW_STORE_NOTFOUND);
	assert_null(v);

	raw_exec(db, "UPDATE users SET updated_at = 0");
	assert_int_equal(mw_store_allowed_from_del(s, "alice@example.com", "*@example.com", &err),
	                 MW_STORE_OK);
	assert_true(raw_int(db, "SELECT updated_at FROM users WHERE username = "
	                        "'alice@example.com'") >= 1700000000);
	assert_int_equal(mw_store_allowed_from_del(s, "alice@example.com", "*@example.com", &err),
	                 MW_STORE_NOTFOUND);
	assert_non_null(strstr(err.msg, "not allowed"));
	assert_int_equal(mw_store_allowed_from_del(s, "nobody@example.com", "*@example.com", &err),
	                 MW_STORE_NOTFOUND);
	assert_non_null(strstr(err.msg, "no such user"));
	/* bob's copy is still there; a failed change leaves no transaction open */
	assert_int_equal(mw_store_allowed_from_list(s, "bob@example.com", &v, &n, NULL),
	                 MW_STORE_OK);
	assert_int_equal(n, 1);
	mw_store_strv_free(v);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM allowed_from"), 3);
	raw_close(db);
	assert_int_equal(mw_store_allowed_from_list(s, "alice@example.com", &v, NULL, &err),
	                 MW_STORE_OK);
	assert_string_equal(v[0], "*@*.example.org");
	assert_string_equal(v[1], "alice@example.com");
	assert_null(v[2]);
	mw_store_strv_free(v);
}

/* test_cascade - deleting a user removes everything that belongs to them */
static void test_cascade(void **state)
{
	struct fixture *f = *state;
	static const char *const tables[] = {"allowed_from",  "sessions",  "app_passwords",
	                                     "rate_policies", "tag_rules", "training_events"};
	char sql[1200];
	mw_error err = {""};
	int64_t ids[2];
	raw_db *db;
	size_t i, u;
	ids[0] = add_user(f->store, "gone@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	ids[1] = add_user(f->store, "kept@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	db = raw_open(f);
	for (u = 0; u < 2; u++) {
		char token[80];
		/* a 64-character token hash: printf in SQLite, lpad in PostgreSQL */
		(void)snprintf(token, sizeof(token),
		               pg(f) ? "lpad('%lld', 64, '0')" : "printf('%%064d', %lld)",
		               (long long)ids[u]);
		assert_int_equal(mw_store_allowed_from_add(
		                     f->store, u == 0 ? "gone@example.com" : "kept@example.com",
		                     "*@example.com", &err),
		                 MW_STORE_OK);
		assert_true(snprintf(sql, sizeof(sql),
		                     "INSERT INTO sessions (token_hash, user_id, created_at, "
		                     "last_seen_at, idle_timeout, expires_at) VALUES "
		                     "(%s, %lld, 1, 1, 900, 99);"
		                     "INSERT INTO app_passwords (user_id, name, hash, created_at) "
		                     "VALUES (%lld, 'phone', 'h%lld', 1);"
		                     "INSERT INTO rate_policies (scope, metric, limit_count, "
		                     "window_seconds, action, user_id, created_at) VALUES "
		                     "('user', 'messages', 100, 3600, 'defer', %lld, 1);"
		                     "INSERT INTO tag_rules (user_id, position, field, match_type, "
		                     "value, keyword) VALUES (%lld, 1, 'subject', 'contains', 'x', "
		                     "'$x');"
		                     "INSERT INTO training_events (user_id, message_id, verdict, "
		                     "created_at) VALUES (%lld, '<m@x>', 'spam', 1);",
		                     token, (long long)ids[u], (long long)ids[u], (long long)ids[u],
		                     (long long)ids[u], (long long)ids[u],
		                     (long long)ids[u]) < (int)sizeof(sql));
		raw_exec(db, sql);
	}
	assert_int_equal(mw_store_user_delete(f->store, "gone@example.com", &err), MW_STORE_OK);
	for (i = 0; i < MW_N_ELEMENTS(tables); i++) {
		for (u = 0; u < 2; u++) {
			assert_true(snprintf(sql, sizeof(sql),
			                     "SELECT count(*) FROM %s WHERE user_id = %lld",
			                     tables[i], (long long)ids[u]) < (int)sizeof(sql));
			if (raw_int(db, sql) != (u == 0 ? 0 : 1))
				fail_msg("%s: user %zu has %lld rows", tables[i], u,
				         (long long)raw_int(db, sql));
		}
	}
	/* foreign keys refuse rows for users that do not exist */
	assert_true(snprintf(sql, sizeof(sql),
	                     "%sINSERT INTO allowed_from (user_id, pattern) VALUES (%lld, 'x')",
	                     pg(f) ? "" : "PRAGMA foreign_keys = ON; ",
	                     (long long)ids[0]) < (int)sizeof(sql));
	assert_int_equal(mw_test_raw_try(db, sql, NULL, 0), -1);
	raw_close(db);
}

/* key_state - the state and active flag of one DKIM key */
static void key_state(mw_store *st, const char *sel, const char *state, bool active)
{
	struct mw_dkim_key_row row;
	mw_error err = {""};
	if (mw_store_dkim_key_get(st, "example.org", sel, &row, &err) != MW_STORE_OK)
		fail_msg("get %s: %s", sel, err.msg);
	assert_string_equal(row.state, state);
	assert_int_equal(row.active, active);
	mw_dkim_key_row_clear(&row);
}

/* test_dkim_rotation - the rotation's store steps (migration 004): one pending key per
   domain, promote and retire are conditional (a second run of a step is NOTFOUND), both
   keys sign during the overlap */
static void test_dkim_rotation(void **state)
{
	struct fixture *f = *state;
	struct mw_dkim_key_row row;
	mw_error err = {""};
	assert_int_equal(
	    mw_store_dkim_key_add(f->store, "example.org", "s1", "rsa", "v1:x", "AAAA", true, &err),
	    MW_STORE_OK);
	key_state(f->store, "s1", "active", true);
	assert_int_equal(mw_store_dkim_key_add_pending(f->store, "example.org", "p1", "rsa", "v1:y",
	                                               "BBBB", &err),
	                 MW_STORE_OK);
	key_state(f->store, "p1", "pending", false);
	/* a second pending key of the domain is refused: two hosts cannot both start one */
	assert_int_equal(mw_store_dkim_key_add_pending(f->store, "example.org", "p2", "rsa", "v1:z",
	                                               "CCCC", &err),
	                 MW_STORE_EXISTS);
	assert_int_equal(mw_store_dkim_key_add_pending(f->store, "example.net", "p2", "rsa", "v1:z",
	                                               "CCCC", &err),
	                 MW_STORE_OK);
	/* the pending key never signs */
	assert_int_equal(mw_store_dkim_key_get_active(f->store, "example.org", &row, &err),
	                 MW_STORE_OK);
	assert_string_equal(row.selector, "s1");
	mw_dkim_key_row_clear(&row);
	assert_int_equal(mw_store_dkim_key_retire(f->store, "example.org", "s1", 5000, &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_dkim_key_promote(f->store, "example.org", "p1", 1000, 2000, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_dkim_key_promote(f->store, "example.org", "p1", 1000, 2000, &err),
	                 MW_STORE_NOTFOUND);
	key_state(f->store, "p1", "active", true);
	key_state(f->store, "s1", "retiring", true);
	assert_int_equal(mw_store_dkim_key_get(f->store, "example.org", "p1", &row, &err),
	                 MW_STORE_OK);
	assert_int_equal(row.activated_at, 1000);
	mw_dkim_key_row_clear(&row);
	assert_int_equal(mw_store_dkim_key_get_active(f->store, "example.org", &row, &err),
	                 MW_STORE_OK);
	assert_string_equal(row.selector, "p1");
	mw_dkim_key_row_clear(&row);
	/* not before retire_at; then once */
	assert_int_equal(mw_store_dkim_key_retire(f->store, "example.org", "s1", 1999, &err),
	                 MW_STORE_NOTFOUND);
	key_state(f->store, "s1", "retiring", true);
	assert_int_equal(mw_store_dkim_key_retire(f->store, "example.org", "s1", 2000, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_dkim_key_retire(f->store, "example.org", "s1", 2000, &err),
	                 MW_STORE_NOTFOUND);
	key_state(f->store, "s1", "retired", false);
	assert_int_equal(mw_store_dkim_key_get(f->store, "example.org", "s1", &row, &err),
	                 MW_STORE_OK);
	assert_int_equal(row.retire_at, 2000);
	mw_dkim_key_row_clear(&row);
	/* a new pending key may start once the last one is promoted */
	assert_int_equal(mw_store_dkim_key_add_pending(f->store, "example.org", "p3", "rsa", "v1:w",
	                                               "DDDD", &err),
	                 MW_STORE_OK);
	/* activating by hand ends the rotation's states: one active key */
	assert_int_equal(mw_store_dkim_key_set_active(f->store, "example.org", "s1", &err),
	                 MW_STORE_OK);
	key_state(f->store, "s1", "active", true);
	key_state(f->store, "p1", "inactive", false);
}

/* setup_fresh - a fresh database of the test's backend, not migrated, no store open */
static int setup_fresh(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	f->tdb = mw_test_db_create(*state);
	*state = f;
	assert_int_equal(mw_strlcpy(f->url, f->tdb->url, sizeof(f->url)), 0);
	return 0;
}

/* test_dkim_migration_004 - a store of schema 3 with an active and an inactive key: after
   migration 004 they are in state active (activated when created) and inactive */
static void test_dkim_migration_004(void **state)
{
	struct fixture *f = *state;
	const struct mw_migration *m = pg(f) ? mw_pgsql_migrations : mw_sqlite_migrations;
	mw_error err = {""};
	raw_db *db;
	unsigned i;
	if (!pg(f)) { /* the file, as the store would create it */
		sqlite3 *lite = NULL;
		char path[160];
		(void)snprintf(path, sizeof(path), "%s/mw.db", f->tdb->dir);
		assert_int_equal(sqlite3_open(path, &lite), SQLITE_OK);
		sqlite3_close(lite);
	}
	db = raw_open(f);
	for (i = 0; i < 3; i++)
		mw_test_raw_exec(db, m[i].sql);
	mw_test_raw_exec(db, "INSERT INTO schema_version (version) VALUES (3)");
	mw_test_raw_exec(db, "INSERT INTO dkim_keys (domain, selector, private_key, public_key, "
	                     "created_at, active) VALUES ('example.org', 'on', 'v1:x', 'k=rsa; "
	                     "p=AAAA', 100, 1), ('example.org', 'off', 'v1:y', 'k=rsa; p=BBBB', "
	                     "50, 0)");
	mw_test_raw_close(&db);
	f->store = mw_store_open(f->url, 2000, &err);
	if (f->store == NULL || mw_store_migrate(f->store, &err) != MW_STORE_OK)
		fail_msg("migrate: %s", err.msg);
	key_state(f->store, "on", "active", true);
	key_state(f->store, "off", "inactive", false);
	db = raw_open(f);
	assert_int_equal(raw_int(db, "SELECT activated_at FROM dkim_keys WHERE selector = 'on'"),
	                 100);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM dkim_keys WHERE activated_at IS NULL"),
	                 1);
	mw_test_raw_close(&db);
}

/* test_audit - append, and the table refuses UPDATE and DELETE */
static void test_audit(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	char msg[512];
	char big[MW_AUDIT_DETAILS_MAX + 2];
	raw_db *db;
	assert_int_equal(mw_store_audit_append(f->store, "cli:root", "user.add", "alice@x", "local",
	                                       "{\"role\":\"admin\",\n\"x\":1}", &err),
	                 MW_STORE_OK);
	assert_int_equal(
	    mw_store_audit_append(f->store, "api:alice", "user.delete", NULL, NULL, NULL, &err),
	    MW_STORE_OK);
	assert_int_equal(mw_store_audit_append(f->store, "", "x", NULL, NULL, NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_audit_append(f->store, "a", NULL, NULL, NULL, NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_audit_append(f->store, "a", "b", "t\x01", NULL, NULL, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_audit_append(f->store, "a", "b", NULL, NULL, "\xff", &err),
	                 MW_STORE_ERROR);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(mw_store_audit_append(f->store, "a", "b", NULL, NULL, big, &err),
	                 MW_STORE_ERROR);

	db = raw_open(f);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log"), 2);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log WHERE actor = 'cli:root' "
	                             "AND action = 'user.add' AND target = 'alice@x' AND "
	                             "client = 'local' AND details LIKE '%\"role\"%'"),
	                 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log WHERE actor = 'api:alice' "
	                             "AND target = '' AND client = '' AND details = ''"),
	                 1);
	assert_true(raw_int(db, "SELECT min(at) FROM audit_log") >= 1700000000);
	assert_int_equal(mw_test_raw_try(db, "UPDATE audit_log SET actor = 'x'", msg, sizeof(msg)),
	                 -1);
	assert_non_null(strstr(msg, "audit_log is append-only"));
	assert_int_equal(mw_test_raw_try(db, "DELETE FROM audit_log", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "audit_log is append-only"));
	assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log WHERE actor = 'x'"), 0);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log"), 2);
	raw_close(db);
}

/* test_metacharacters - SQL metacharacters are stored verbatim (bound, never formatted) */
static void test_metacharacters(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {
	    "x);delete/**/from/**/users;--@example.com",
	    "a_b@example.com",
	    "*@example.com",
	    "?1@example.com",
	    "--@example.com",
	    ";@example.com",
	};
	static const char *const descs[] = {
	    "Robert'); DROP TABLE users; --",
	    "\"quoted\" %s %n \\ ' '' ?1 :name @x $1",
	    "50% off_ * [a-z] {x}",
	    "\xe2\x80\x9cunicode\xe2\x80\x9d \xf0\x9f\x93\xa7",
	};
	static const char *const patterns[] = {
	    "o'hara@example.com",
	    "%@example.com",
	    "_@example.com",
	    "';--@example.com",
	};
	mw_error err = {""};
	struct mw_user u;
	char **v;
	size_t i, n;
	for (i = 0; i < MW_N_ELEMENTS(names); i++)
		add_user(f->store, names[i], MW_USER_ACTIVE, MW_ROLE_USER);
	for (i = 0; i < MW_N_ELEMENTS(names); i++) {
		assert_int_equal(mw_store_user_get(f->store, names[i], &u, &err), MW_STORE_OK);
		assert_string_equal(u.username, names[i]);
		mw_user_clear(&u);
	}
	/* '_' and '%' are not wildcards: exact match only */
	assert_int_equal(mw_store_user_get(f->store, "axb@example.com", &u, &err),
	                 MW_STORE_NOTFOUND);
	for (i = 0; i < MW_N_ELEMENTS(descs); i++) {
		assert_int_equal(mw_store_user_set_description(f->store, names[0], descs[i], &err),
		                 MW_STORE_OK);
		assert_int_equal(mw_store_user_get(f->store, names[0], &u, &err), MW_STORE_OK);
		assert_string_equal(u.description, descs[i]);
		mw_user_clear(&u);
	}
	for (i = 0; i < MW_N_ELEMENTS(patterns); i++)
		assert_int_equal(mw_store_allowed_from_add(f->store, names[1], patterns[i], &err),
		                 MW_STORE_OK);
	assert_int_equal(mw_store_allowed_from_list(f->store, names[1], &v, &n, &err), MW_STORE_OK);
	assert_int_equal(n, MW_N_ELEMENTS(patterns));
	for (i = 0; i < MW_N_ELEMENTS(patterns); i++) {
		size_t j;
		bool found = false;
		for (j = 0; j < n; j++)
			found = found || strcmp(v[j], patterns[i]) == 0;
		assert_true(found);
	}
	mw_store_strv_free(v);
	assert_int_equal(mw_store_allowed_from_del(f->store, names[1], "%@example.com", &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_allowed_from_del(f->store, names[1], "%", &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_audit_append(f->store, "api:'; DROP TABLE audit_log; --", "x",
	                                       names[0], "::1", descs[1], &err),
	                 MW_STORE_OK);
	/* everything is still there */
	{
		raw_db *db = raw_open(f);
		assert_int_equal(raw_int(db, "SELECT count(*) FROM users"),
		                 (int64_t)MW_N_ELEMENTS(names));
		assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log WHERE actor = "
		                             "'api:''; DROP TABLE audit_log; --'"),
		                 1);
		raw_close(db);
	}
}

/* dovecot_rows - run Dovecot's passdb password_query for user, as Dovecot would (plain
   connection, %u substituted); returns the row count and the password of the last row */
static int dovecot_rows(const struct fixture *f, const char *user, char *pw, size_t pwsize)
{
	static const char query[] = "SELECT username AS user, password FROM users "
	                            "WHERE username = '%u' AND status = 'active'";
	char sql[512];
	const char *u = strstr(query, "%u");
	raw_db *db = raw_open(f);
	int n, rows = 0;
	/* test names hold no quote, so substitution is what Dovecot's escaping yields */
	assert_null(strchr(user, '\''));
	n = snprintf(sql, sizeof(sql), "%.*s%s%s", (int)(u - query), query, user, u + 2);
	assert_true(n > 0 && (size_t)n < sizeof(sql));
	if (db->lite != NULL) {
		sqlite3_stmt *st;
		int rc;
		assert_int_equal(sqlite3_prepare_v2(db->lite, sql, -1, &st, NULL), SQLITE_OK);
		assert_string_equal(sqlite3_column_name(st, 0), "user");
		assert_string_equal(sqlite3_column_name(st, 1), "password");
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			rows++;
			assert_string_equal((const char *)sqlite3_column_text(st, 0), user);
			assert_int_equal(
			    mw_strlcpy(pw, (const char *)sqlite3_column_text(st, 1), pwsize), 0);
		}
		assert_int_equal(rc, SQLITE_DONE);
		sqlite3_finalize(st);
	} else {
		PGresult *res = PQexec(db->pg, sql);
		assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
		assert_string_equal(PQfname(res, 0), "user");
		assert_string_equal(PQfname(res, 1), "password");
		for (rows = 0; rows < PQntuples(res); rows++) {
			assert_string_equal(PQgetvalue(res, rows, 0), user);
			assert_int_equal(mw_strlcpy(pw, PQgetvalue(res, rows, 1), pwsize), 0);
		}
		PQclear(res);
	}
	raw_close(db);
	return rows;
}

/* test_dovecot_query - the passdb sql query finds active users only, by exact name */
static void test_dovecot_query(void **state)
{
	struct fixture *f = *state;
	char pw[MW_STORE_HASH_MAX + 1] = "";
	mw_error err = {""};
	add_user(f->store, "active@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	add_user(f->store, "pending@example.com", MW_USER_PENDING, MW_ROLE_USER);
	add_user(f->store, "disabled@example.com", MW_USER_DISABLED, MW_ROLE_USER);
	assert_int_equal(dovecot_rows(f, "active@example.com", pw, sizeof(pw)), 1);
	assert_string_equal(pw, HASH);
	assert_int_equal(dovecot_rows(f, "pending@example.com", pw, sizeof(pw)), 0);
	assert_int_equal(dovecot_rows(f, "disabled@example.com", pw, sizeof(pw)), 0);
	assert_int_equal(dovecot_rows(f, "nobody@example.com", pw, sizeof(pw)), 0);
	/* names are stored folded: Dovecot must pass %Lu (lower-cased) */
	assert_int_equal(dovecot_rows(f, "Active@example.com", pw, sizeof(pw)), 0);
	/* status changes take effect at once */
	assert_int_equal(
	    mw_store_user_set_status(f->store, "active@example.com", MW_USER_DISABLED, &err),
	    MW_STORE_OK);
	assert_int_equal(dovecot_rows(f, "active@example.com", pw, sizeof(pw)), 0);
	assert_int_equal(
	    mw_store_user_set_status(f->store, "pending@example.com", MW_USER_ACTIVE, &err),
	    MW_STORE_OK);
	assert_int_equal(mw_store_user_set_password(f->store, "pending@example.com", HASH2, &err),
	                 MW_STORE_OK);
	assert_int_equal(dovecot_rows(f, "pending@example.com", pw, sizeof(pw)), 1);
	assert_string_equal(pw, HASH2);
}

/* test_auth_fail - failures per (key, network): counted atomically, restarted after the
   window, summed per key, cleared, pruned; hostile keys refused (issue 9) */
static void test_auth_fail(void **state)
{
	struct fixture *f = *state;
	struct mw_auth_fail row;
	int64_t total = 0, nets = 0;
	unsigned n = 0;
	mw_error err = {""};
	int i;
	for (i = 1; i <= 3; i++) {
		assert_int_equal(mw_store_auth_fail_add(f->store, "acct:a", "192.0.2.1/32", 100 + i,
		                                        50, &row, &err),
		                 MW_STORE_OK);
		assert_int_equal(row.failures, i);
		assert_int_equal(row.first_at, 101);
		assert_int_equal(row.last_at, 100 + i);
	}
	assert_int_equal(
	    mw_store_auth_fail_add(f->store, "acct:a", "2001:db8::/64", 110, 50, &row, &err),
	    MW_STORE_OK);
	assert_int_equal(row.failures, 1);
	assert_int_equal(
	    mw_store_auth_fail_add(f->store, "client", "192.0.2.1/32", 110, 50, &row, &err),
	    MW_STORE_OK);
	assert_int_equal(mw_store_auth_fail_sum(f->store, "acct:a", 0, &total, &nets, &err),
	                 MW_STORE_OK);
	assert_int_equal(total, 4);
	assert_int_equal(nets, 2);
	assert_int_equal(mw_store_auth_fail_sum(f->store, "acct:a", 105, &total, &nets, &err),
	                 MW_STORE_OK);
	assert_int_equal(total, 1); /* only the IPv6 row failed at or after 105 */
	assert_int_equal(nets, 1);
	assert_int_equal(mw_store_auth_fail_sum(f->store, "acct:none", 0, &total, &nets, &err),
	                 MW_STORE_OK);
	assert_int_equal(total + nets, 0);
	/* a row silent since before the window starts again at 1 */
	assert_int_equal(
	    mw_store_auth_fail_add(f->store, "acct:a", "192.0.2.1/32", 500, 400, &row, &err),
	    MW_STORE_OK);
	assert_int_equal(row.failures, 1);
	assert_int_equal(row.first_at, 500);
	assert_int_equal(mw_store_auth_fail_get(f->store, "acct:a", "192.0.2.1/32", &row, &err),
	                 MW_STORE_OK);
	assert_int_equal(row.last_at, 500);
	assert_int_equal(mw_store_auth_fail_get(f->store, "acct:a", "198.51.100.0/24", &row, &err),
	                 MW_STORE_NOTFOUND);
	/* clear one network, then prune what is old */
	assert_int_equal(mw_store_auth_fail_clear(f->store, "acct:a", "192.0.2.1/32", &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_auth_fail_clear(f->store, "acct:a", "192.0.2.1/32", &err),
	                 MW_STORE_OK); /* none left: still fine */
	assert_int_equal(mw_store_auth_fail_get(f->store, "acct:a", "192.0.2.1/32", &row, &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_auth_fail_prune(f->store, 111, &err), MW_STORE_OK);
	assert_int_equal(mw_store_auth_fail_get(f->store, "client", "192.0.2.1/32", &row, &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_auth_fail_clear(f->store, "acct:a", NULL, &err), MW_STORE_OK);
	assert_int_equal(mw_store_auth_fail_sum(f->store, "acct:a", 0, &total, &nets, &err),
	                 MW_STORE_OK);
	assert_int_equal(total, 0);
	/* hostile keys and networks never reach SQL */
	assert_int_equal(mw_store_auth_fail_add(f->store, "", "x", 1, 0, &row, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_auth_fail_add(f->store, "a b", "x", 1, 0, &row, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_auth_fail_add(f->store, "k", "x\n", 1, 0, &row, &err),
	                 MW_STORE_ERROR);
	assert_int_equal(mw_store_auth_fail_add(f->store, "k", "x", 1, 5, &row, &err),
	                 MW_STORE_ERROR); /* since after now */
	assert_int_equal(mw_store_auth_fail_add(
	                     f->store,
	                     "k1234567890123456789012345678901234567890123456789012345678901234",
	                     "x", 1, 0, &row, &err),
	                 MW_STORE_ERROR); /* 65 bytes */
	/* a password reset deletes every app password of the user, and only theirs */
	(void)add_user(f->store, "reset@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	(void)add_user(f->store, "keep@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	for (i = 0; i < 3; i++) {
		struct mw_app_password ap;
		memset(&ap, 0, sizeof(ap));
		(void)snprintf(ap.name, sizeof(ap.name), "dev%d", i);
		(void)snprintf(ap.protocols, sizeof(ap.protocols), "imap");
		(void)snprintf(ap.hash, sizeof(ap.hash), "%064d", i);
		assert_int_equal(mw_store_app_password_add(
		                     f->store, i < 2 ? "reset@example.com" : "keep@example.com",
		                     &ap, NULL, &err),
		                 MW_STORE_OK);
	}
	assert_int_equal(mw_store_app_password_revoke_all(f->store, "reset@example.com", &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(mw_store_app_password_revoke_all(f->store, "reset@example.com", &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(mw_store_app_password_revoke_all(f->store, "keep@example.com", &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(mw_store_app_password_revoke_all(f->store, "nobody@example.com", &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 0);
}

/* test_busy - a lock held past the busy timeout is an error that says "busy" */
static void test_busy(void **state)
{
	struct fixture *f = *state;
	mw_error err = {""};
	mw_store *impatient;
	struct mw_user u;
	raw_db *db;
	add_user(f->store, "alice@example.com", MW_USER_ACTIVE, MW_ROLE_USER);
	impatient = mw_store_open(f->url, 50, &err);
	assert_non_null(impatient);
	db = raw_open(f);
	/* SQLite: the file's write lock; PostgreSQL: writers of both tables wait (readers not) */
	raw_exec(db, pg(f) ? "BEGIN; LOCK TABLE users, allowed_from IN EXCLUSIVE MODE"
	                   : "BEGIN IMMEDIATE");
	assert_int_equal(mw_store_user_add(impatient, "bob@example.com", HASH, MW_USER_ACTIVE,
	                                   MW_ROLE_USER, "", NULL, &err),
	                 MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "busy"));
	assert_int_equal(mw_store_allowed_from_add(impatient, "alice@example.com", "*@x.org", &err),
	                 MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "busy"));
	/* readers are not blocked by a writer (WAL mode; PostgreSQL's MVCC) */
	assert_int_equal(mw_store_user_get(impatient, "alice@example.com", &u, &err), MW_STORE_OK);
	mw_user_clear(&u);
	raw_exec(db, "COMMIT");
	raw_close(db);
	assert_int_equal(mw_store_user_add(impatient, "bob@example.com", HASH, MW_USER_ACTIVE,
	                                   MW_ROLE_USER, "", NULL, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_allowed_from_add(impatient, "alice@example.com", "*@x.org", &err),
	                 MW_STORE_OK);
	mw_store_close(&impatient);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_username_normalize),
	    cmocka_unit_test(test_enum_names),
	    cmocka_unit_test_setup_teardown(test_url, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_lazily, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_existing_mode_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate, setup_migrated, teardown),
	    MW_TEST_DB_BOTH(test_newer_refused, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_user_ops, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_user_list, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_allowed_from, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_cascade, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_audit, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_dkim_rotation, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_dkim_migration_004, setup_fresh, teardown),
	    MW_TEST_DB_BOTH(test_metacharacters, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_dovecot_query, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_busy, setup_both, teardown),
	    MW_TEST_DB_BOTH(test_auth_fail, setup_both, teardown),
	};
	/* fixed clock: every timestamp is checked against it */
	if (setenv("MW_FAKE_NOW", "1700000000", 1) != 0)
		return 1;
	MW_RUN_TESTS(tests);
}
