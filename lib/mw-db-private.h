/* mw-db-private.h - what mw-db.c and its drivers share; nothing else includes this.
 *
 * mw-db.c owns the generic part (URL dispatch, the statement cache keyed by query object,
 * the _one/_change helpers, transactions' bookkeeping, the migration runner). A driver
 * fills struct mw_db_driver; its per-connection state lives behind db->ctx and its
 * prepared statements behind the opaque pointers the cache stores.
 */
#ifndef MW_DB_PRIVATE_H
#define MW_DB_PRIVATE_H

#include "mw-db.h"
#include "mw-store.h"

struct mw_migration {
	unsigned version;
	const char *name;
	const char *sql;
};

extern const struct mw_migration mw_sqlite_migrations[];
extern const unsigned mw_sqlite_migrations_count;
extern const struct mw_migration mw_pgsql_migrations[];
extern const unsigned mw_pgsql_migrations_count;

/* A row as the driver presents it to mw_db_int/_text/_blob/_is_null. */
struct mw_db_row {
	const struct mw_db_driver *driver;
	void *impl; /* driver's row state (sqlite3_stmt *, or PGresult + row number) */
};

struct mw_db_driver {
	const char *name; /* "sqlite", "postgresql" */
	enum mw_db_dialect dialect;
	/* location: the URL after "sqlite:" (an absolute path) or the whole postgresql URL */
	int (*open)(mw_db *db, const char *location, unsigned busy_timeout_ms, mw_error *error_r);
	void (*close)(mw_db *db);
	/* prepare sql (already the dialect's text); *stmt_r is cached by mw-db.c and given back
	   to exec and finalize. what names the query in messages. */
	int (*prepare)(mw_db *db, const char *what, const char *sql, void **stmt_r,
	               mw_error *error_r);
	void (*finalize)(mw_db *db, void *stmt);
	/* run a prepared statement; rows to cb (a nonzero return stops and is returned) */
	int (*exec)(mw_db *db, void *stmt, const char *what, const struct mw_db_arg *args,
	            size_t nargs, mw_db_row_cb *cb, void *ctx, uint64_t *rows_r, mw_error *error_r);
	/* run unprepared SQL text without parameters (migrations: several statements) */
	int (*exec_script)(mw_db *db, const char *what, const char *sql, mw_error *error_r);
	int (*begin)(mw_db *db, mw_error *error_r);
	int (*commit)(mw_db *db, mw_error *error_r);
	void (*rollback)(mw_db *db);
	/* called by mw_db_migrate before the first migration: create the SQLite file; take the
	   PostgreSQL advisory lock inside the transaction. mw-db.c calls it once outside any
	   transaction before the first migration (SQLite creates and opens the file here) and
	   again right after each migration's begin (PostgreSQL: pg_advisory_xact_lock);
	   mw_db_in_transaction(db) tells the two calls apart. */
	int (*migrate_prepare)(mw_db *db, mw_error *error_r);
	/* row accessors */
	bool (*is_null)(const mw_db_row *row, unsigned col);
	int64_t (*get_int)(const mw_db_row *row, unsigned col);
	const char *(*get_text)(const mw_db_row *row, unsigned col);
	const void *(*get_blob)(const mw_db_row *row, unsigned col, size_t *len_r);
	const struct mw_migration *migrations;
	const unsigned *migrations_count;
	/* added for the store (may be NULL): a double column (NULL: strtod of get_text) */
	double (*get_double)(const mw_db_row *row, unsigned col);
	/* may be NULL: true when the database does not exist yet (a SQLite file that
	   mw_db_migrate will create), so mw_db_schema_version reports 0 without creating it */
	bool (*absent)(mw_db *db);
	/* may be NULL (the driver cannot tell): a number that differs between two calls when
	   another connection committed a change in between (SQLite: PRAGMA data_version). The
	   driver adds its own connection's changes to db->changes itself (mw_db_data_version). */
	int (*data_version)(mw_db *db, int64_t *raw_r, mw_error *error_r);
};

struct mw_db_cache_entry {
	const struct mw_db_query *query;
	void *stmt;
};

struct mw_db {
	const struct mw_db_driver *driver;
	void *ctx; /* the driver's connection state */
	bool in_tx;
	struct mw_db_cache_entry *cache; /* open addressing on the query's address */
	size_t cache_size, cache_used;
	/* mw_db_data_version: changes seen (the driver adds one per statement of its own that
	   can write); the driver's last data_version value */
	uint64_t changes;
	int64_t data_version_raw;
	bool data_version_known;
};

extern const struct mw_db_driver mw_db_driver_sqlite;
extern const struct mw_db_driver mw_db_driver_pgsql;

/* mw_db_cache_clear - finalize every cached statement (a driver that lost its connection
   calls this before reconnecting) */
void mw_db_cache_clear(mw_db *db);

#endif
