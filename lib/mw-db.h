/* mw-db.h - one small SQL interface, one driver per database (SQLite, PostgreSQL).
 *
 * The store's operations (the files of lib/store/) are written once over this interface; only the
 * drivers (mw-db-sqlite.c, mw-db-pgsql.c) speak to a database library. The model is
 * Dovecot's lib-sql: prepared statements cached per connection, typed binds, rows handed
 * to a callback, transactions, and one mapping of database errors to store statuses.
 *
 * Queries are static objects (struct mw_db_query), written with numbered parameters
 * ?1..?N in the SQL both dialects share; sql_pgsql carries the PostgreSQL text only where
 * the dialects differ (the PostgreSQL driver rewrites ?N to $N itself). A connection
 * caches the prepared form of each query object it has run, keyed by the object's address.
 *
 * Threads: an mw_db is one connection; one thread at a time.
 *
 * Return values are enum mw_store_status (mw-store.h): MW_STORE_OK, MW_STORE_NOTFOUND
 * (only from the _one/_change helpers), MW_STORE_EXISTS (a unique or primary key
 * violation), MW_STORE_ERROR (everything else; error_r says what, naming the query's
 * `what`, never a bound value). A lost PostgreSQL connection is MW_STORE_ERROR with
 * "unavailable" in the message; the next call reconnects (with backoff), so no caller
 * ever needs to reopen.
 */
#ifndef MW_DB_H
#define MW_DB_H

#include "mw-util.h"

typedef struct mw_db mw_db;
typedef struct mw_db_row mw_db_row;

enum mw_db_dialect { MW_DB_SQLITE, MW_DB_PGSQL };

struct mw_db_query {
	const char *what;      /* names the operation in messages: "adding a user" */
	const char *sql;       /* both dialects, parameters ?1..?N */
	const char *sql_pgsql; /* PostgreSQL text where it differs; NULL = sql */
};

enum mw_db_type { MW_DB_NULL, MW_DB_INT, MW_DB_TEXT, MW_DB_BLOB, MW_DB_DOUBLE };

struct mw_db_arg {
	enum mw_db_type type;
	int64_t i;     /* MW_DB_INT */
	const void *p; /* MW_DB_TEXT (NUL-terminated), MW_DB_BLOB */
	size_t len;    /* MW_DB_BLOB */
	double d;      /* MW_DB_DOUBLE (a REAL / double precision column) */
};

/* Argument constructors. MW_DB_TEXT_OR_NULL(NULL) binds SQL NULL. The pointed-to data must
   stay valid until the call returns. */
#define MW_DB_I(v)      ((struct mw_db_arg){.type = MW_DB_INT, .i = (int64_t)(v)})
#define MW_DB_T(s)      ((struct mw_db_arg){.type = (s) != NULL ? MW_DB_TEXT : MW_DB_NULL, .p = (s)})
#define MW_DB_B(ptr, n) ((struct mw_db_arg){.type = MW_DB_BLOB, .p = (ptr), .len = (n)})
#define MW_DB_NUL       ((struct mw_db_arg){.type = MW_DB_NULL})
#define MW_DB_D(v)      ((struct mw_db_arg){.type = MW_DB_DOUBLE, .d = (double)(v)})
/* MW_DB_ARGS(a, b, c) expands to the two parameters args, nargs */
#define MW_DB_ARGS(...)                                                                            \
	(const struct mw_db_arg[]){__VA_ARGS__},                                                   \
	    (sizeof((const struct mw_db_arg[]){__VA_ARGS__}) / sizeof(struct mw_db_arg))
#define MW_DB_NOARGS NULL, 0

/* Row access, valid only inside the row callback. Columns count from 0. A NULL column
   reads as 0, NULL (text) or NULL/0 (blob). */
bool mw_db_is_null(const mw_db_row *row, unsigned col);
int64_t mw_db_int(const mw_db_row *row, unsigned col);
const char *mw_db_text(const mw_db_row *row, unsigned col);
const void *mw_db_blob(const mw_db_row *row, unsigned col, size_t *len_r);
double mw_db_double(const mw_db_row *row, unsigned col);
/* mw_db_text_dup - an owned copy of a text column ("" for NULL) */
char *mw_db_text_dup(const mw_db_row *row, unsigned col);

/* Called once per result row. Return 0 to go on, anything else to stop: mw_db_run then
   returns that value. A callback must not run queries on the same connection. */
typedef int mw_db_row_cb(const mw_db_row *row, void *ctx);

/* url: "sqlite:/abs/path.db" or a bare absolute path; "postgresql://..." or
   "postgres://..." (libpq URI). busy_timeout_ms: how long SQLite waits for a lock, and
   PostgreSQL's statement_timeout/lock_timeout. Does not create the SQLite file (see
   mw_db_migrate). */
mw_db *mw_db_open(const char *url, unsigned busy_timeout_ms, mw_error *error_r);
void mw_db_close(mw_db **db);
enum mw_db_dialect mw_db_dialect(const mw_db *db);
/* mw_db_url_redact - url as messages may show it: a postgresql URL's password (user:PW@
   and a password= parameter) becomes "***"; other URLs are unchanged. Truncated to size. */
void mw_db_url_redact(const char *url, char *buf, size_t size);
/* mw_db_decltype - the storage class of a declared column type by SQLite's affinity rules,
   which also cover PostgreSQL's type names ("bigint", "character varying", "bytea",
   "double precision"): MW_DB_INT, _TEXT, _BLOB or _DOUBLE; -1 for any other type. */
int mw_db_decltype(const char *type, enum mw_db_type *type_r);
const char *mw_db_driver_name(const mw_db *db); /* "sqlite", "postgresql" */

/* mw_db_run - run q with args, calling cb (may be NULL) for each row. *rows_r (may be NULL):
   rows changed by INSERT/UPDATE/DELETE without RETURNING, else rows returned. */
int mw_db_run(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args, size_t nargs,
              mw_db_row_cb *cb, void *ctx, uint64_t *rows_r, mw_error *error_r);
/* mw_db_one - like mw_db_run, MW_STORE_NOTFOUND ("WHAT: no such row") when no row came back */
int mw_db_one(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args, size_t nargs,
              mw_db_row_cb *cb, void *ctx, mw_error *error_r);
/* mw_db_change - a statement that changes rows; MW_STORE_NOTFOUND when it changed none */
int mw_db_change(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args, size_t nargs,
                 mw_error *error_r);
/* mw_db_int_one - the first column of the single row as an integer (e.g. RETURNING id) */
int mw_db_int_one(mw_db *db, const struct mw_db_query *q, const struct mw_db_arg *args,
                  size_t nargs, int64_t *value_r, mw_error *error_r);

/* Transactions. mw_db_begin takes the write lock at once (SQLite BEGIN IMMEDIATE, waiting up
   to the busy timeout). mw_db_end commits when ret is MW_STORE_OK and rolls back otherwise,
   returning the outcome (ret, or the commit's error). Not nested: begin inside a transaction
   is an error; mw_db_in_transaction tells an operation whether its caller opened one. */
int mw_db_begin(mw_db *db, mw_error *error_r);
int mw_db_end(mw_db *db, int ret, mw_error *error_r);
bool mw_db_in_transaction(const mw_db *db);

/* mw_db_data_version - a counter of the changes this connection has seen: it moves when
   another connection (of any process) committed a change since the previous call, and with
   every statement of this connection that can change the database (counted before it runs,
   whether it succeeds or not). Two calls giving the same value mean nothing in the database
   changed in between, so what was read after the first is still what the store holds at the
   second: the freshness check of a per-process cache. SQLite: PRAGMA data_version (a read
   of the WAL index, no table read). MW_STORE_NOTFOUND when the driver cannot tell
   (PostgreSQL): the caller then reads the store. */
int mw_db_data_version(mw_db *db, uint64_t *version_r, mw_error *error_r);
/* mw_db_data_version_local - the counter as of the last mw_db_data_version plus this
   connection's own changes since, without asking the database (a later read within the same
   request) */
uint64_t mw_db_data_version_local(const mw_db *db);

/* Numbered migrations (lib/sql/NNN_name.sql) in the connection's dialect, each
   applied in its own transaction together with the schema_version row, serialised between
   processes (SQLite's write lock, a PostgreSQL advisory lock). Creates the SQLite file
   (mode 0640) if needed. Refuses a database newer than the code. */
int mw_db_migrate(mw_db *db, mw_error *error_r);
int mw_db_schema_version(mw_db *db, int *version_r, mw_error *error_r);
int mw_db_latest_schema_version(void); /* the same for every dialect */

#endif
