/* mw-db.c - the generic half of the SQL layer: URL dispatch, the statement cache, the
 * _one/_change helpers, transactions' bookkeeping and the migration runner.
 *
 * A connection (struct mw_db, mw-db-private.h) holds its driver, the driver's state and a
 * cache of prepared statements: an open-addressing table keyed by the address of the
 * static struct mw_db_query, so each query is prepared once per connection and found again
 * without hashing its text. Everything a database library does is behind the driver
 * (mw-db-sqlite.c, mw-db-pgsql.c).
 *
 * URLs: "sqlite:/abs/path.db", "sqlite:///abs/path.db" or a bare absolute path go to the
 * SQLite driver; "postgresql://..." and "postgres://..." to the PostgreSQL driver when it
 * is built in (MW_HAVE_PGSQL_DRIVER), else they are refused ("PostgreSQL driver not
 * built"). A URL is never echoed in a message: a PostgreSQL URL may hold a password.
 *
 * Migrations: the driver's numbered list (mw_sqlite_migrations, mw_pgsql_migrations), each
 * applied in its own transaction together with the schema_version row; a store whose
 * version is newer than the code is refused, untouched.
 *
 * Public: mw_db_open, mw_db_close, mw_db_dialect, mw_db_driver_name, mw_db_run, mw_db_one,
 * mw_db_change, mw_db_int_one, mw_db_begin, mw_db_end, mw_db_in_transaction, mw_db_migrate,
 * mw_db_schema_version, mw_db_latest_schema_version, mw_db_data_version(_local), the row
 * accessors mw_db_is_null/_int/_text/_blob/_double/_text_dup, mw_db_decltype;
 * mw_db_cache_clear (drivers only).
 *
 * Diagnostics: through error_r, naming the query's `what`; never a bound value.
 */
#include "mw-build.h"
#include "mw-db-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DB_URL_MAX 4096

/* ---- URL dispatch ---- */

/* path_check - an absolute path of valid UTF-8 without control characters */
static int path_check(const char *path, mw_error *error_r)
{
	size_t len = strlen(path), i, n;
	uint32_t cp;
	if (path[0] != '/') {
		mw_error_set(error_r, "store path must be absolute: sqlite:/path/file.db");
		return -1;
	}
	for (i = 0; i < len; i += n) {
		n = mw_utf8_decode(path + i, len - i, &cp);
		if (n == 0) {
			mw_error_set(error_r, "store path is not valid UTF-8");
			return -1;
		}
		if (mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "store path contains a control character");
			return -1;
		}
	}
	return 0;
}

/* pick_driver - the driver a URL names and the location it is given */
static const struct mw_db_driver *pick_driver(const char *url, const char **location_r,
                                              mw_error *error_r)
{
	const char *location;
	if (mw_ascii_strncasecmp(url, "postgresql://", 13) == 0 ||
	    mw_ascii_strncasecmp(url, "postgres://", 11) == 0) {
#ifdef MW_HAVE_PGSQL_DRIVER
		*location_r = url;
		return &mw_db_driver_pgsql;
#else
		mw_error_set(error_r, "PostgreSQL driver not built");
		return NULL;
#endif
	}
	if (mw_ascii_strncasecmp(url, "sqlite:", 7) == 0) {
		location = url + 7;
		/* "sqlite:///p" is "/p"; "sqlite://host/p" would silently drop a host */
		if (strncmp(location, "//", 2) == 0 && location[2] != '/') {
			mw_error_set(error_r, "store URL takes a path: sqlite:/path/file.db");
			return NULL;
		}
		if (strncmp(location, "///", 3) == 0)
			location += 2;
	} else if (url[0] == '/') {
		location = url;
	} else {
		mw_error_set(error_r, "store URL must be sqlite:/path/file.db, an absolute path, "
		                      "or postgresql://...");
		return NULL;
	}
	if (path_check(location, error_r) < 0)
		return NULL;
	*location_r = location;
	return &mw_db_driver_sqlite;
}

/* mw_db_open - pick the driver named by url and open a connection */
mw_db *mw_db_open(const char *url, unsigned busy_timeout_ms, mw_error *error_r)
{
	const struct mw_db_driver *driver;
	const char *location = NULL;
	mw_db *db;
	if (url == NULL || *url == '\0') {
		mw_error_set(error_r, "store URL is empty");
		return NULL;
	}
	if (strnlen(url, DB_URL_MAX + 1) > DB_URL_MAX) {
		mw_error_set(error_r, "store URL is longer than %d bytes", DB_URL_MAX);
		return NULL;
	}
	driver = pick_driver(url, &location, error_r);
	if (driver == NULL)
		return NULL;
	db = mw_calloc(1, sizeof(*db));
	db->driver = driver;
	if (driver->open(db, location, busy_timeout_ms, error_r) < 0) {
		free(db);
		return NULL;
	}
	return db;
}

/* mw_db_close - finalize the cached statements, close, clear the caller's pointer */
void mw_db_close(mw_db **db)
{
	if (db == NULL || *db == NULL)
		return;
	if ((*db)->in_tx)
		(*db)->driver->rollback(*db);
	mw_db_cache_clear(*db);
	free((*db)->cache);
	(*db)->driver->close(*db);
	free(*db);
	*db = NULL;
}

/* mw_db_dialect - which SQL the connection speaks */
enum mw_db_dialect mw_db_dialect(const mw_db *db)
{
	return db->driver->dialect;
}

/* mw_db_driver_name - "sqlite" or "postgresql" */
const char *mw_db_driver_name(const mw_db *db)
{
	return db->driver->name;
}

/* ---- the statement cache ---- */

/* cache_slot - where q is, or the empty slot where it goes (size is a power of two) */
static size_t cache_slot(const struct mw_db_cache_entry *cache, size_t size,
                         const struct mw_db_query *q)
{
	size_t i = (size_t)(((uintptr_t)q >> 3) * 0x9e3779b97f4a7c15ULL) & (size - 1);
	while (cache[i].query != NULL && cache[i].query != q)
		i = (i + 1) & (size - 1);
	return i;
}

/* cache_grow - double the table (or make the first one) */
static void cache_grow(mw_db *db)
{
	size_t size = db->cache_size == 0 ? 64 : db->cache_size * 2, i;
	struct mw_db_cache_entry *cache = mw_calloc(size, sizeof(*cache));
	for (i = 0; i < db->cache_size; i++)
		if (db->cache[i].query != NULL)
			cache[cache_slot(cache, size, db->cache[i].query)] = db->cache[i];
	free(db->cache);
	db->cache = cache;
	db->cache_size = size;
}

/* mw_db_cache_clear - finalize every cached statement */
void mw_db_cache_clear(mw_db *db)
{
	size_t i;
	for (i = 0; i < db->cache_size; i++) {
		if (db->cache[i].query != NULL)
			db->driver->finalize(db, db->cache[i].stmt);
		db->cache[i].query = NULL;
		db->cache[i].stmt = NULL;
	}
	db->cache_used = 0;
}

/* stmt_get - the prepared statement of q, preparing and caching it on first use */
static int stmt_get(mw_db *db, const struct mw_db_query *q, void **stmt_r, mw_error *error_r)
{
	const char *sql = q->sql;
	size_t i;
	int ret;
	if (db->cache_size == 0 || (db->cache_used + 1) * 2 > db->cache_size)
		cache_grow(db);
	i = cache_slot(db->cache, db->cache_size, q);
	if (db->cache[i].query == NULL) {
		if (db->driver->dialect == MW_DB_PGSQL && q->sql_pgsql != NULL)
			sql = q->sql_pgsql;
		ret = db->driver->prepare(db, q->what, sql, stmt_r, error_r);
		if (ret != MW_STORE_OK)
			return ret;
		db->cache[i].query = q;
		db->cache[i].stmt = *stmt_r;
		db->cache_used++;
	}
	*stmt_r = db->cache[i].stmt;
	return MW_STORE_OK;
}

/* ---- running queries ---- */

/* mw_db_run - run q with args, rows to cb */
int mw_db_run(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args, size_t nargs,
              mw_db_row_cb *cb, void *ctx, uint64_t *rows_r, mw_error *error_r)
{
	void *stmt;
	uint64_t rows = 0;
	int ret = stmt_get(db, q, &stmt, error_r);
	if (ret == MW_STORE_OK)
		ret = db->driver->exec(db, stmt, q->what, args, nargs, cb, ctx, &rows, error_r);
	if (rows_r != NULL)
		*rows_r = ret == MW_STORE_OK ? rows : 0;
	return ret;
}

/* mw_db_one - run q; no row is MW_STORE_NOTFOUND */
int mw_db_one(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args, size_t nargs,
              mw_db_row_cb *cb, void *ctx, mw_error *error_r)
{
	uint64_t rows = 0;
	int ret = mw_db_run(db, q, args, nargs, cb, ctx, &rows, error_r);
	if (ret == MW_STORE_OK && rows == 0) {
		mw_error_set(error_r, "%s: no such row", q->what);
		return MW_STORE_NOTFOUND;
	}
	return ret;
}

/* mw_db_change - run q; changing no row is MW_STORE_NOTFOUND */
int mw_db_change(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args, size_t nargs,
                 mw_error *error_r)
{
	return mw_db_one(db, q, args, nargs, NULL, NULL, error_r);
}

/* read_int0 - column 0 of the row as an integer */
static int read_int0(const mw_db_row *row, void *ctx)
{
	*(int64_t *)ctx = mw_db_int(row, 0);
	return 0;
}

/* mw_db_int_one - the first column of the single row as an integer */
int mw_db_int_one(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args,
                  size_t nargs, int64_t *value_r, mw_error *error_r)
{
	*value_r = 0;
	return mw_db_one(db, q, args, nargs, read_int0, value_r, error_r);
}

/* mw_db_data_version - the changes seen, asking the driver whether others committed */
int mw_db_data_version(mw_db *db, uint64_t *version_r, mw_error *error_r)
{
	int64_t raw = 0;
	int ret;
	*version_r = 0;
	if (db->driver->data_version == NULL) {
		mw_error_set(error_r, "the %s driver cannot tell whether the database changed",
		             db->driver->name);
		return MW_STORE_NOTFOUND;
	}
	ret = db->driver->data_version(db, &raw, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	if (!db->data_version_known || raw != db->data_version_raw)
		db->changes++;
	db->data_version_known = true;
	db->data_version_raw = raw;
	*version_r = db->changes;
	return MW_STORE_OK;
}

/* mw_db_data_version_local - the changes seen, without asking the database */
uint64_t mw_db_data_version_local(const mw_db *db)
{
	return db->changes;
}

/* ---- rows ---- */

/* mw_db_is_null - the column is SQL NULL */
bool mw_db_is_null(const mw_db_row *row, unsigned col)
{
	return row->driver->is_null(row, col);
}

/* mw_db_int - an integer column (0 for NULL) */
int64_t mw_db_int(const mw_db_row *row, unsigned col)
{
	return row->driver->get_int(row, col);
}

/* mw_db_text - a text column (NULL for NULL), valid until the callback returns */
const char *mw_db_text(const mw_db_row *row, unsigned col)
{
	return row->driver->get_text(row, col);
}

/* mw_db_blob - a blob column (NULL/0 for NULL) */
const void *mw_db_blob(const mw_db_row *row, unsigned col, size_t *len_r)
{
	return row->driver->get_blob(row, col, len_r);
}

/* mw_db_double - a floating-point column (0 for NULL) */
double mw_db_double(const mw_db_row *row, unsigned col)
{
	const char *t;
	if (row->driver->get_double != NULL)
		return row->driver->get_double(row, col);
	t = row->driver->get_text(row, col);
	return t != NULL ? strtod(t, NULL) : 0;
}

/* mw_db_text_dup - an owned copy of a text column ("" for NULL) */
char *mw_db_text_dup(const mw_db_row *row, unsigned col)
{
	const char *t = mw_db_text(row, col);
	return mw_strdup(t != NULL ? t : "");
}

/* ---- transactions ---- */

/* mw_db_begin - start a write transaction */
int mw_db_begin(mw_db *db, mw_error *error_r)
{
	int ret;
	if (db->in_tx) {
		mw_error_set(error_r, "a transaction is already open");
		return MW_STORE_ERROR;
	}
	ret = db->driver->begin(db, error_r);
	if (ret == MW_STORE_OK)
		db->in_tx = true;
	return ret == MW_STORE_EXISTS || ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* mw_db_end - commit when ret is MW_STORE_OK, else roll back; the outcome */
int mw_db_end(mw_db *db, int ret, mw_error *error_r)
{
	if (!db->in_tx) {
		if (ret == MW_STORE_OK)
			mw_error_set(error_r, "no transaction is open");
		return ret == MW_STORE_OK ? MW_STORE_ERROR : ret;
	}
	if (ret == MW_STORE_OK) {
		ret = db->driver->commit(db, error_r);
		if (ret == MW_STORE_OK) {
			db->in_tx = false;
			return ret;
		}
		if (ret != MW_STORE_ERROR)
			ret = MW_STORE_ERROR;
	}
	db->driver->rollback(db);
	db->in_tx = false;
	return ret;
}

/* mw_db_in_transaction - whether a transaction is open */
bool mw_db_in_transaction(const mw_db *db)
{
	return db->in_tx;
}

/* ---- migrations ---- */

static const struct mw_db_query q_version_table = {
    "reading the schema version",
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
    "SELECT count(*) FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_name = 'schema_version'",
};
static const struct mw_db_query q_version_get = {"reading the schema version",
                                                 "SELECT max(version) FROM schema_version", NULL};
static const struct mw_db_query q_version_clear = {"recording the schema version",
                                                   "DELETE FROM schema_version", NULL};
static const struct mw_db_query q_version_set = {
    "recording the schema version", "INSERT INTO schema_version (version) VALUES (?1)", NULL};

/* mw_db_latest_schema_version - the newest migration (every dialect has the same numbers) */
int mw_db_latest_schema_version(void)
{
	return (int)mw_sqlite_migrations_count;
}

/* read_version - the recorded version, 0 when there is no schema_version table */
static int read_version(mw_db *db, int *version_r, mw_error *error_r)
{
	int64_t v = 0;
	int ret;
	*version_r = 0;
	ret = mw_db_int_one(db, &q_version_table, MW_DB_NOARGS, &v, error_r);
	if (ret != MW_STORE_OK || v == 0)
		return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
	ret = mw_db_int_one(db, &q_version_get, MW_DB_NOARGS, &v, error_r);
	if (ret != MW_STORE_OK)
		return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
	if (v < 0 || v > INT32_MAX) {
		mw_error_set(error_r, "schema version %lld is invalid", (long long)v);
		return MW_STORE_ERROR;
	}
	*version_r = (int)v;
	return MW_STORE_OK;
}

/* mw_db_schema_version - the recorded version (0 for a database not created yet) */
int mw_db_schema_version(mw_db *db, int *version_r, mw_error *error_r)
{
	*version_r = 0;
	if (db->driver->absent != NULL && db->driver->absent(db))
		return MW_STORE_OK;
	return read_version(db, version_r, error_r);
}

/* apply_one - run migration m unless the database has it, in one transaction */
static int apply_one(mw_db *db, const struct mw_migration *m, mw_error *error_r)
{
	int version = 0, latest = mw_db_latest_schema_version();
	char what[128];
	int ret = mw_db_begin(db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = db->driver->migrate_prepare(db, error_r);
	if (ret == MW_STORE_OK)
		ret = read_version(db, &version, error_r);
	if (ret == MW_STORE_OK && version > latest) {
		mw_error_set(error_r,
		             "schema version %d is newer than this mailwarden "
		             "knows (%d): upgrade mailwarden instead",
		             version, latest);
		ret = MW_STORE_ERROR;
	}
	if (ret != MW_STORE_OK || version >= (int)m->version)
		return mw_db_end(db, ret, error_r);
	if ((unsigned)version != m->version - 1) {
		mw_error_set(error_r, "schema version %d cannot take migration %s", version,
		             m->name);
		return mw_db_end(db, MW_STORE_ERROR, error_r);
	}
	(void)snprintf(what, sizeof(what), "migration %s", m->name);
	ret = db->driver->exec_script(db, what, m->sql, error_r);
	if (ret != MW_STORE_OK)
		return mw_db_end(db, ret, error_r);
	ret = mw_db_run(db, &q_version_clear, MW_DB_NOARGS, NULL, NULL, NULL, error_r);
	if (ret == MW_STORE_OK)
		ret = mw_db_change(db, &q_version_set, MW_DB_ARGS(MW_DB_I(m->version)), error_r);
	ret = mw_db_end(db, ret, error_r);
	if (ret != MW_STORE_OK)
		mw_error_prefix(error_r, "migration %s", m->name);
	return ret;
}

/* mw_db_migrate - create the database if needed and apply every pending migration */
int mw_db_migrate(mw_db *db, mw_error *error_r)
{
	const struct mw_migration *list = db->driver->migrations;
	unsigned i, count = *db->driver->migrations_count;
	if (db->in_tx) {
		mw_error_set(error_r, "cannot migrate inside a transaction");
		return MW_STORE_ERROR;
	}
	if (db->driver->migrate_prepare(db, error_r) != MW_STORE_OK)
		return MW_STORE_ERROR;
	if (count != (unsigned)mw_db_latest_schema_version()) {
		mw_error_set(error_r, "the %s migrations stop at %u, not %d", db->driver->name,
		             count, mw_db_latest_schema_version());
		return MW_STORE_ERROR;
	}
	for (i = 0; i < count; i++) {
		if (list[i].version != i + 1) {
			mw_error_set(error_r, "embedded migration %s is out of order",
			             list[i].name);
			return MW_STORE_ERROR;
		}
		if (apply_one(db, &list[i], error_r) != MW_STORE_OK)
			return MW_STORE_ERROR;
	}
	return MW_STORE_OK;
}

/* mw_db_decltype - the storage class of a declared column type */
int mw_db_decltype(const char *type, enum mw_db_type *type_r)
{
	char t[64];
	size_t i;
	for (i = 0; type[i] != '\0' && i + 1 < sizeof(t); i++)
		t[i] = (char)(type[i] >= 'a' && type[i] <= 'z' ? type[i] - 32 : type[i]);
	t[i] = '\0';
	if (strstr(t, "INT") != NULL)
		*type_r = MW_DB_INT;
	else if (strstr(t, "TEXT") != NULL || strstr(t, "CHAR") != NULL)
		*type_r = MW_DB_TEXT;
	else if (strstr(t, "BLOB") != NULL || strstr(t, "BYTEA") != NULL)
		*type_r = MW_DB_BLOB;
	else if (strstr(t, "REAL") != NULL || strstr(t, "DOUBLE") != NULL)
		*type_r = MW_DB_DOUBLE;
	else
		return -1;
	return 0;
}
