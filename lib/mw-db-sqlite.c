/* mw-db-sqlite.c - the SQLite driver of the SQL layer (mw-db.h).
 *
 * One sqlite3 connection per mw_db, opened without SQLite's full mutex: a connection is not
 * shared between threads (each thread opens its own). The connection runs in WAL mode with
 * foreign_keys=ON (deleting a user cascades), synchronous=NORMAL, trusted_schema=OFF and
 * the caller's busy timeout (a lock is waited for in steps of 50 us to 2 ms: busy_wait). Statements
 * are prepared with SQLITE_PREPARE_PERSISTENT (mw-db.c caches them per query object); every value
 * reaches SQL through a bound parameter. Transactions start with BEGIN IMMEDIATE, so a writer waits
 * for the lock (up to the busy timeout) at the start instead of failing half-way.
 *
 * The database file is not created by open: mw_db_migrate creates it (migrate_prepare,
 * mode 0640 whatever the umask; an existing file keeps its mode). Its directory must
 * exist. Until the file exists every query fails with a hint to run 'mailwardenctl init';
 * a query on a file without the schema says "schema missing".
 *
 * Migrations are lib/sql/NNN_name.sql, rendered into SQLite's dialect and embedded by
 * scripts/embed-sql as mw_sqlite_migrations[].
 *
 * Public: mw_db_driver_sqlite (through mw-db-private.h only).
 *
 * Diagnostics: through error_r, naming the query's `what` (only file-level messages name
 * the path). A lock held past the busy timeout is MW_STORE_ERROR "... is busy ..."; a
 * UNIQUE or PRIMARY KEY violation is MW_STORE_EXISTS; other SQLite errors are
 * MW_STORE_ERROR with SQLite's message (which names columns, never values).
 */
#include "mw-build.h"
#include "mw-db-private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sqlite_conn {
	sqlite3 *db; /* NULL until the file exists (mw_db_migrate creates it) */
	char *path;
	unsigned busy_timeout_ms;
	int64_t busy_since_us; /* busy_wait: when the lock was first found taken */
	sqlite3_stmt *begin, *commit, *rollback, *data_version;
};

/* conn_of - the driver state of a connection */
static struct sqlite_conn *conn_of(mw_db *db)
{
	return db->ctx;
}

/* db_fail - turn an SQLite result code into a store status and a message */
static int db_fail(struct sqlite_conn *c, int rc, const char *what, mw_error *error_r)
{
	int primary = rc & 0xff;
	if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
		mw_error_set(error_r,
		             "the store is busy: still locked by another process after "
		             "%u ms (%s)",
		             c->busy_timeout_ms, what);
		return MW_STORE_ERROR;
	}
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		mw_error_set(error_r, "%s: already exists", what);
		return MW_STORE_EXISTS;
	}
	mw_error_set(error_r, "%s: %s", what,
	             c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	return MW_STORE_ERROR;
}

/* busy_wait - SQLite's busy handler: wait for a lock another connection holds in steps of
   50 us doubling to 2 ms, until busy_timeout_ms have passed since the first refusal (0 gives
   up). SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15 ... ms: the API's workers
   touching one session in the same second met at the write lock, held ~0.1 ms by the first,
   and the others slept 1-11 ms (bench/README.md, apip99 of session 9). */
static int busy_wait(void *arg, int count)
{
	struct sqlite_conn *c = arg;
	int64_t now = mw_mono_us(), left, step;
	if (count == 0)
		c->busy_since_us = now;
	left = (int64_t)c->busy_timeout_ms * 1000 - (now - c->busy_since_us);
	if (left <= 0)
		return 0;
	step = count < 6 ? (int64_t)50 << count : 2000;
	if (step > left)
		step = left;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000};
	(void)nanosleep(&ts, NULL);
	return 1;
}

/* set_pragmas - connection settings every store needs */
static int set_pragmas(struct sqlite_conn *c, mw_error *error_r)
{
	static const char *const pragmas[] = {
	    "PRAGMA foreign_keys = ON",
	    "PRAGMA synchronous = NORMAL",
	    "PRAGMA trusted_schema = OFF",
	};
	sqlite3_stmt *st = NULL;
	const unsigned char *mode;
	size_t i;
	int rc;
	(void)sqlite3_extended_result_codes(c->db, 1);
	rc = sqlite3_busy_handler(c->db, busy_wait, c);
	if (rc != SQLITE_OK)
		return db_fail(c, rc, "setting the busy timeout", error_r);
	/* journal_mode answers with the mode now in force: insist it is WAL. While several
	   processes open a new file at once, the switch can answer BUSY without waiting in the
	   busy handler (a deadlock SQLite breaks by refusing): try again until the timeout */
	rc = sqlite3_prepare_v3(c->db, "PRAGMA journal_mode = WAL", -1, 0, &st, NULL);
	if (rc == SQLITE_OK) {
		int64_t deadline = mw_mono_ms() + (int64_t)c->busy_timeout_ms;
		while ((rc = sqlite3_step(st)) != SQLITE_ROW &&
		       ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) &&
		       mw_mono_ms() < deadline) {
			(void)sqlite3_reset(st);
			(void)poll(NULL, 0, 10);
		}
	}
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_fail(c, rc, "switching to WAL", error_r);
	}
	mode = sqlite3_column_text(st, 0);
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		mw_error_set(error_r, "cannot switch to WAL journal mode (got %s)",
		             mode != NULL ? (const char *)mode : "nothing");
		sqlite3_finalize(st);
		return MW_STORE_ERROR;
	}
	sqlite3_finalize(st);
	for (i = 0; i < MW_N_ELEMENTS(pragmas); i++) {
		rc = sqlite3_exec(c->db, pragmas[i], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return db_fail(c, rc, pragmas[i], error_r);
	}
	return 0;
}

/* file_exists - 1 when path names something, 0 when not, -1 on another error */
static int file_exists(const char *path, mw_error *error_r)
{
	struct stat st;
	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			mw_error_set(error_r, "%s is not a regular file", path);
			return -1;
		}
		return 1;
	}
	if (errno == ENOENT)
		return 0;
	mw_error_set(error_r, "%s: %s", path, strerror(errno));
	return -1;
}

/* create_file - create the database file with mode 0640 whatever the umask; an existing
   file (another process won the race) is left as it is */
static int create_file(const char *path, mw_error *error_r)
{
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		mw_error_set(error_r, "%s: cannot create: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0640) < 0) {
		mw_error_set(error_r, "%s: fchmod: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		mw_error_set(error_r, "%s: close: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* connect_db - open the connection if the file exists (or create it when create is set) */
static int connect_db(struct sqlite_conn *c, bool create, mw_error *error_r)
{
	int rc, exists;
	if (c->db != NULL)
		return 0;
	exists = file_exists(c->path, error_r);
	if (exists < 0)
		return MW_STORE_ERROR;
	if (exists == 0) {
		if (!create) {
			mw_error_set(error_r,
			             "database file %s does not exist yet: run "
			             "'mailwardenctl init' to create it",
			             c->path);
			return MW_STORE_ERROR;
		}
		if (create_file(c->path, error_r) < 0)
			return MW_STORE_ERROR;
	}
	rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = set_pragmas(c, error_r);
	else
		rc = db_fail(c, rc, "open", error_r);
	if (rc != 0) {
		sqlite3_close_v2(c->db);
		c->db = NULL;
		return MW_STORE_ERROR;
	}
	return 0;
}

/* sq_open - remember the path and connect if the database already exists */
static int sq_open(mw_db *db, const char *location, unsigned busy_timeout_ms, mw_error *error_r)
{
	struct sqlite_conn *c;
	const char *slash = strrchr(location, '/');
	char *dir;
	struct stat st;
	int exists;
	dir = mw_strndup(location, slash == location ? 1 : (size_t)(slash - location));
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		mw_error_set(error_r, "directory %s does not exist", dir);
		free(dir);
		return -1;
	}
	free(dir);
	if (slash[1] == '\0') {
		mw_error_set(error_r, "%s names a directory, not a file", location);
		return -1;
	}
	c = mw_calloc(1, sizeof(*c));
	c->path = mw_strdup(location);
	c->busy_timeout_ms = busy_timeout_ms;
	db->ctx = c;
	exists = file_exists(c->path, error_r);
	if (exists < 0 || (exists > 0 && connect_db(c, false, error_r) != 0)) {
		free(c->path);
		free(c);
		db->ctx = NULL;
		return -1;
	}
	return 0;
}

/* sq_close - close the connection (mw-db.c has finalized the cached statements) */
static void sq_close(mw_db *db)
{
	struct sqlite_conn *c = conn_of(db);
	if (c == NULL)
		return;
	sqlite3_finalize(c->begin);
	sqlite3_finalize(c->commit);
	sqlite3_finalize(c->rollback);
	sqlite3_finalize(c->data_version);
	sqlite3_close_v2(c->db);
	free(c->path);
	free(c);
	db->ctx = NULL;
}

/* sq_prepare - prepare sql on the connection, connecting first */
static int sq_prepare(mw_db *db, const char *what, const char *sql, void **stmt_r,
                      mw_error *error_r)
{
	struct sqlite_conn *c = conn_of(db);
	sqlite3_stmt *st = NULL;
	int rc, ret;
	*stmt_r = NULL;
	if (connect_db(c, false, error_r) != 0)
		return MW_STORE_ERROR;
	rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		ret = db_fail(c, rc, what, error_r);
		if (strstr(sqlite3_errmsg(c->db), "no such table") != NULL)
			mw_error_prefix(error_r, "schema missing (run 'mailwardenctl init')");
		return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
	}
	*stmt_r = st;
	return MW_STORE_OK;
}

/* sq_finalize - free a prepared statement */
static void sq_finalize(mw_db *db, void *stmt)
{
	(void)db;
	sqlite3_finalize(stmt);
}

/* bind_args - bind args to ?1..?N; the count must match the statement's */
static int bind_args(sqlite3_stmt *st, const struct mw_db_arg *args, size_t nargs)
{
	size_t i;
	int rc = SQLITE_OK;
	if ((size_t)sqlite3_bind_parameter_count(st) != nargs)
		return SQLITE_RANGE;
	for (i = 0; i < nargs && rc == SQLITE_OK; i++) {
		const struct mw_db_arg *a = &args[i];
		int n = (int)i + 1;
		switch (a->type) {
		case MW_DB_INT:
			rc = sqlite3_bind_int64(st, n, a->i);
			break;
		case MW_DB_TEXT:
			rc = sqlite3_bind_text(st, n, a->p, -1, SQLITE_STATIC);
			break;
		case MW_DB_BLOB:
			rc = a->len > INT_MAX
			         ? SQLITE_TOOBIG
			         : sqlite3_bind_blob(st, n, a->p, (int)a->len, SQLITE_STATIC);
			break;
		case MW_DB_DOUBLE:
			rc = sqlite3_bind_double(st, n, a->d);
			break;
		case MW_DB_NULL:
		default:
			rc = sqlite3_bind_null(st, n);
			break;
		}
	}
	return rc;
}

/* sq_exec - bind, step through the rows (each to cb), and make the statement reusable */
static int sq_exec(mw_db *db, void *stmt, const char *what, const struct mw_db_arg *args,
                   size_t nargs, mw_db_row_cb *cb, void *ctx, uint64_t *rows_r, mw_error *error_r)
{
	struct sqlite_conn *c = conn_of(db);
	sqlite3_stmt *st = stmt;
	struct mw_db_row row = {&mw_db_driver_sqlite, st};
	uint64_t rows = 0;
	int rc = bind_args(st, args, nargs), ret = MW_STORE_OK;
	if (!sqlite3_stmt_readonly(st))
		db->changes++; /* mw_db_data_version: our own change, seen before it is made */
	if (rc == SQLITE_RANGE) {
		mw_error_set(error_r, "%s: %zu arguments for %d parameters", what, nargs,
		             sqlite3_bind_parameter_count(st));
		ret = MW_STORE_ERROR;
	}
	while (ret == MW_STORE_OK && rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		rows++;
		rc = SQLITE_OK;
		if (cb != NULL)
			ret = cb(&row, ctx);
	}
	if (ret == MW_STORE_OK && rc != SQLITE_DONE)
		ret = db_fail(c, rc, what, error_r);
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	if (ret == MW_STORE_OK && sqlite3_column_count(st) == 0)
		rows = (uint64_t)sqlite3_changes(c->db);
	*rows_r = rows;
	return ret;
}

/* sq_exec_script - run SQL text of several statements inside the open transaction */
static int sq_exec_script(mw_db *db, const char *what, const char *sql, mw_error *error_r)
{
	struct sqlite_conn *c = conn_of(db);
	char *errmsg = NULL;
	int rc;
	if (connect_db(c, false, error_r) != 0)
		return MW_STORE_ERROR;
	db->changes++; /* a script can change anything (mw_db_data_version) */
	rc = sqlite3_exec(c->db, sql, NULL, NULL, &errmsg);
	if (rc != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_BUSY) {
			sqlite3_free(errmsg);
			return db_fail(c, rc, what, error_r);
		}
		mw_error_set(error_r, "%s failed: %s", what,
		             errmsg != NULL ? errmsg : sqlite3_errstr(rc));
		sqlite3_free(errmsg);
		return MW_STORE_ERROR;
	}
	if (mw_db_in_transaction(db) && sqlite3_get_autocommit(c->db)) {
		/* the script ended our transaction itself: a bug in the .sql file */
		mw_error_set(error_r, "%s must not contain BEGIN/COMMIT", what);
		return MW_STORE_ERROR;
	}
	return MW_STORE_OK;
}

/* step_own - run one of the driver's own statements (BEGIN, COMMIT, ROLLBACK) */
static int step_own(struct sqlite_conn *c, sqlite3_stmt **st, const char *sql, const char *what,
                    mw_error *error_r)
{
	int rc;
	if (connect_db(c, false, error_r) != 0)
		return MW_STORE_ERROR;
	if (*st == NULL) {
		rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
		if (rc != SQLITE_OK)
			return db_fail(c, rc, what, error_r);
	}
	rc = sqlite3_step(*st);
	(void)sqlite3_reset(*st);
	if (rc != SQLITE_DONE)
		return db_fail(c, rc, what, error_r);
	return MW_STORE_OK;
}

/* sq_begin - BEGIN IMMEDIATE: take the write lock now (waits up to the busy timeout) */
static int sq_begin(mw_db *db, mw_error *error_r)
{
	struct sqlite_conn *c = conn_of(db);
	return step_own(c, &c->begin, "BEGIN IMMEDIATE", "begin transaction", error_r);
}

/* sq_commit - COMMIT */
static int sq_commit(mw_db *db, mw_error *error_r)
{
	struct sqlite_conn *c = conn_of(db);
	return step_own(c, &c->commit, "COMMIT", "commit", error_r);
}

/* sq_rollback - ROLLBACK, if a transaction is still open */
static void sq_rollback(mw_db *db)
{
	struct sqlite_conn *c = conn_of(db);
	if (c->db != NULL && !sqlite3_get_autocommit(c->db))
		(void)step_own(c, &c->rollback, "ROLLBACK", "rollback", NULL);
}

/* sq_data_version - PRAGMA data_version: moves when another connection committed */
static int sq_data_version(mw_db *db, int64_t *raw_r, mw_error *error_r)
{
	struct sqlite_conn *c = conn_of(db);
	int rc;
	*raw_r = 0;
	if (connect_db(c, false, error_r) != 0)
		return MW_STORE_ERROR;
	if (c->data_version == NULL) {
		rc = sqlite3_prepare_v3(c->db, "PRAGMA data_version", -1, SQLITE_PREPARE_PERSISTENT,
		                        &c->data_version, NULL);
		if (rc != SQLITE_OK)
			return db_fail(c, rc, "reading the data version", error_r);
	}
	rc = sqlite3_step(c->data_version);
	if (rc == SQLITE_ROW)
		*raw_r = sqlite3_column_int64(c->data_version, 0);
	(void)sqlite3_reset(c->data_version);
	if (rc != SQLITE_ROW)
		return db_fail(c, rc, "reading the data version", error_r);
	return MW_STORE_OK;
}

/* sq_migrate_prepare - before the first migration: create the file and connect (the
   write lock of BEGIN IMMEDIATE serialises migrating processes: nothing to do inside) */
static int sq_migrate_prepare(mw_db *db, mw_error *error_r)
{
	if (mw_db_in_transaction(db))
		return MW_STORE_OK;
	return connect_db(conn_of(db), true, error_r) == 0 ? MW_STORE_OK : MW_STORE_ERROR;
}

/* sq_absent - the database file does not exist yet */
static bool sq_absent(mw_db *db)
{
	struct sqlite_conn *c = conn_of(db);
	return c->db == NULL && file_exists(c->path, NULL) == 0;
}

/* sq_is_null - the column is NULL */
static bool sq_is_null(const mw_db_row *row, unsigned col)
{
	return sqlite3_column_type(row->impl, (int)col) == SQLITE_NULL;
}

/* sq_get_int - an integer column */
static int64_t sq_get_int(const mw_db_row *row, unsigned col)
{
	return sqlite3_column_int64(row->impl, (int)col);
}

/* sq_get_text - a text column, NULL for NULL */
static const char *sq_get_text(const mw_db_row *row, unsigned col)
{
	return (const char *)sqlite3_column_text(row->impl, (int)col);
}

/* sq_get_blob - a blob column, NULL/0 for NULL */
static const void *sq_get_blob(const mw_db_row *row, unsigned col, size_t *len_r)
{
	const void *p = sqlite3_column_blob(row->impl, (int)col);
	int n = sqlite3_column_bytes(row->impl, (int)col);
	*len_r = p != NULL && n > 0 ? (size_t)n : 0;
	return p;
}

/* sq_get_double - a floating-point column */
static double sq_get_double(const mw_db_row *row, unsigned col)
{
	return sqlite3_column_double(row->impl, (int)col);
}

const struct mw_db_driver mw_db_driver_sqlite = {
    .name = "sqlite",
    .dialect = MW_DB_SQLITE,
    .open = sq_open,
    .close = sq_close,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .exec = sq_exec,
    .exec_script = sq_exec_script,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .migrate_prepare = sq_migrate_prepare,
    .is_null = sq_is_null,
    .get_int = sq_get_int,
    .get_text = sq_get_text,
    .get_blob = sq_get_blob,
    .migrations = mw_sqlite_migrations,
    .migrations_count = &mw_sqlite_migrations_count,
    .get_double = sq_get_double,
    .absent = sq_absent,
    .data_version = sq_data_version,
};
