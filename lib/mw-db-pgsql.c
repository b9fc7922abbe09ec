/* mw-db-pgsql.c - the PostgreSQL driver of mw_db, over libpq.
 *
 * One PGconn per mw_db (one thread at a time, as every mw_db). Queries arrive in the shared
 * dialect with parameters ?1..?N; prepare rewrites them to $1..$N (outside quotes and
 * comments) and PQprepares them under a per-connection name ("mw1", "mw2", ...), letting the
 * server infer every parameter's type from the query (a query where it cannot carries a
 * sql_pgsql text with a cast). Binds: integers and text as text, blobs in binary format,
 * NULLs as NULL. Results come back in text format; a bytea column is decoded from its hex
 * form when read as a blob.
 *
 * Connection loss: a statement that fails because the connection broke (libpq reports
 * CONNECTION_BAD, or the server says SQLSTATE class 08 or 57P01-57P03) drops the connection
 * and every cached statement (mw_db_cache_clear) and returns MW_STORE_ERROR "... store
 * unavailable ...". The next call reconnects, at most once per backoff interval (doubling
 * from 100 ms up to 5 s), so a daemon survives PostgreSQL restarts without reopening. A
 * connection lost inside a transaction is not replaced until that transaction ends
 * (mw_db_end), so no statement of it ever runs outside it.
 *
 * Statement failures inside a transaction: PostgreSQL aborts the whole transaction on any
 * error, SQLite only the statement. To keep SQLite's semantics (an operation may catch
 * MW_STORE_EXISTS and go on), each statement inside a transaction runs under a savepoint
 * that is rolled back when it fails.
 *
 * Timeouts: busy_timeout_ms becomes the session's statement_timeout and lock_timeout;
 * hitting either is MW_STORE_ERROR with "busy" in the message, like SQLite's busy timeout.
 * Migrations run without statement_timeout and serialise on a transaction-scoped advisory
 * lock.
 *
 * Public: mw_db_driver_pgsql (through mw-db-private.h only).
 *
 * Diagnostics: through error_r, naming the query's `what` and PostgreSQL's primary message
 * and SQLSTATE; never a bound value (data exceptions, class 22, whose messages quote input,
 * are reported by SQLSTATE alone) and never the connection URL (it may hold a password).
 * SQLSTATE 23505 is MW_STORE_EXISTS. Server notices are discarded.
 */
#include "mw-build.h"
#include "mw-db-private.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_BYTEA_OID        17
#define PG_BOOL_OID         16
#define PG_BACKOFF_FIRST_MS 100
#define PG_BACKOFF_MAX_MS   5000
/* pg_advisory_xact_lock key of mw_db_migrate: "mailwarden migrate", any fixed number */
#define PG_MIGRATE_LOCK_KEY "7237089302540365933"

struct pg_conn {
	PGconn *conn;   /* NULL while disconnected */
	char *location; /* the URL: kept for reconnecting, never printed (password) */
	unsigned busy_timeout_ms;
	uint64_t next_name;
	unsigned generation;      /* counts connections; a statement belongs to one */
	int64_t retry_at_ms;      /* no connect attempt before this (mw_mono_ms) */
	unsigned backoff_ms;      /* current interval; 0 after a good connection */
	bool lost_in_tx;          /* the connection broke inside the open transaction */
	char last_reason[200];    /* why the last connect failed (libpq's message, one line) */
	unsigned savepoint_depth; /* a statement's savepoint is open */
};

struct pg_stmt {
	char name[32];
	char *sql; /* the $N text, for preparing again on a new connection */
	unsigned nparams;
	unsigned generation; /* the connection it was prepared on */
	bool prepared;
};

/* The row state handed to the accessors: the whole result, one row of it. */
struct pg_row {
	PGresult *res;
	int row;
	unsigned char **blobs; /* decoded bytea per column, freed after the callback */
	size_t *blob_lens;
	int nfields;
};

/* pg_of - the driver state of a connection */
static struct pg_conn *pg_of(mw_db *db)
{
	return db->ctx;
}

/* pg_notice_drop - libpq notice processor that drops server notices */
static void pg_notice_drop(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* pg_one_line - copy libpq's message into buf as one line without trailing newline */
static void pg_one_line(char *buf, size_t size, const char *msg)
{
	size_t n = 0;
	if (size == 0)
		return;
	for (; msg != NULL && *msg != '\0' && n + 1 < size; msg++)
		buf[n++] = (*msg == '\n' || *msg == '\r' || *msg == '\t') ? ' ' : *msg;
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
}

/* pg_connect - make a new connection with the session settings; -1 and the reason */
static int pg_connect(struct pg_conn *pg, mw_error *error_r)
{
	/* connect_timeout comes before dbname so that a value in the URL overrides it */
	const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *values[] = {"5", "mailwarden", pg->location, NULL};
	char set[160];
	PGresult *res;

	pg->conn = PQconnectdbParams(keys, values, 1);
	if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK) {
		pg_one_line(pg->last_reason, sizeof(pg->last_reason),
		            pg->conn != NULL ? PQerrorMessage(pg->conn) : "out of memory");
		mw_error_set(error_r, "PostgreSQL store unavailable: %s", pg->last_reason);
		PQfinish(pg->conn);
		pg->conn = NULL;
		return -1;
	}
	PQsetNoticeProcessor(pg->conn, pg_notice_drop, NULL);
	snprintf(set, sizeof(set), "SET statement_timeout = %u; SET lock_timeout = %u",
	         pg->busy_timeout_ms, pg->busy_timeout_ms);
	res = PQexec(pg->conn, set);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_one_line(pg->last_reason, sizeof(pg->last_reason), PQerrorMessage(pg->conn));
		mw_error_set(error_r, "PostgreSQL store unavailable: %s", pg->last_reason);
		PQclear(res);
		PQfinish(pg->conn);
		pg->conn = NULL;
		return -1;
	}
	PQclear(res);
	pg->generation++;
	pg->backoff_ms = 0;
	pg->retry_at_ms = 0;
	return 0;
}

/* pg_ensure - a live connection, reconnecting if the backoff allows; -1 with "unavailable" */
static int pg_ensure(mw_db *db, const char *what, mw_error *error_r)
{
	struct pg_conn *pg = pg_of(db);
	int64_t now;

	if (pg->conn != NULL)
		return 0;
	if (pg->lost_in_tx) {
		mw_error_set(error_r,
		             "%s: PostgreSQL store unavailable: the connection was lost inside "
		             "this transaction",
		             what);
		return -1;
	}
	now = mw_mono_ms();
	if (now < pg->retry_at_ms) {
		mw_error_set(error_r,
		             "%s: PostgreSQL store unavailable (next attempt in %" PRId64
		             " ms): %s",
		             what, pg->retry_at_ms - now, pg->last_reason);
		return -1;
	}
	if (pg_connect(pg, error_r) < 0) {
		pg->backoff_ms = pg->backoff_ms == 0 ? PG_BACKOFF_FIRST_MS : pg->backoff_ms * 2;
		if (pg->backoff_ms > PG_BACKOFF_MAX_MS)
			pg->backoff_ms = PG_BACKOFF_MAX_MS;
		pg->retry_at_ms = now + pg->backoff_ms;
		mw_error_prefix(error_r, "%s", what);
		return -1;
	}
	return 0;
}

/* pg_is_conn_error - whether a failed result means the connection is gone */
static bool pg_is_conn_error(PGconn *conn, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (PQstatus(conn) == CONNECTION_BAD)
		return true;
	if (state == NULL)
		return res == NULL || PQresultStatus(res) == PGRES_FATAL_ERROR;
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	       strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* pg_lost - drop a broken connection and every cached statement; call last: it frees the
   statement being run */
static void pg_lost(mw_db *db)
{
	struct pg_conn *pg = pg_of(db);
	PQfinish(pg->conn);
	pg->conn = NULL;
	pg->savepoint_depth = 0;
	if (db->in_tx)
		pg->lost_in_tx = true;
	/* reconnecting at once is allowed (the server may be back already); backoff only
	   grows when that fails */
	pg->backoff_ms = 0;
	pg->retry_at_ms = 0;
	mw_db_cache_clear(db);
}

/* pg_fail - a failed result as a store status and a message without bound values. Sets
 *lost when the connection broke (the caller then calls pg_lost). */
static int pg_fail(mw_db *db, const char *what, PGresult *res, bool *lost, mw_error *error_r)
{
	struct pg_conn *pg = pg_of(db);
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char line[300];

	*lost = false;
	if (pg_is_conn_error(pg->conn, res)) {
		pg_one_line(line, sizeof(line),
		            primary != NULL ? primary : PQerrorMessage(pg->conn));
		mw_error_set(error_r, "%s: PostgreSQL store unavailable: connection lost (%s)",
		             what, line);
		*lost = true;
		return MW_STORE_ERROR;
	}
	if (state != NULL && strcmp(state, "23505") == 0) {
		mw_error_set(error_r, "%s: already exists", what);
		return MW_STORE_EXISTS;
	}
	if (state != NULL && (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0 ||
	                      strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
		mw_error_set(error_r,
		             "the store is busy: waited %u ms for a lock or the statement (%s, "
		             "SQLSTATE %s)",
		             pg->busy_timeout_ms, what, state);
		return MW_STORE_ERROR;
	}
	if (state != NULL && strncmp(state, "22", 2) == 0) {
		/* data exceptions quote the offending input: never print it */
		mw_error_set(error_r, "%s: invalid value for a column (SQLSTATE %s)", what, state);
		return MW_STORE_ERROR;
	}
	pg_one_line(line, sizeof(line), primary != NULL ? primary : PQerrorMessage(pg->conn));
	mw_error_set(error_r, "%s: %s (SQLSTATE %s)", what, line, state != NULL ? state : "?");
	return MW_STORE_ERROR;
}

/* pg_simple - run a parameterless command; status as pg_fail. Handles a lost connection
   (drop it and the cache). */
static int pg_simple(mw_db *db, const char *what, const char *sql, mw_error *error_r)
{
	struct pg_conn *pg = pg_of(db);
	PGresult *res;
	ExecStatusType st;
	bool lost;
	int ret;

	if (pg_ensure(db, what, error_r) < 0)
		return MW_STORE_ERROR;
	res = PQexec(pg->conn, sql);
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		PQclear(res);
		return MW_STORE_OK;
	}
	ret = pg_fail(db, what, res, &lost, error_r);
	PQclear(res);
	if (lost)
		pg_lost(db);
	return ret;
}

/* pg_rewrite - ?N -> $N outside quotes and comments; *max_r the highest N. -1 on a bare
   "?" or a number over 65535 (PostgreSQL's limit). */
static int pg_rewrite(const char *what, const char *sql, char **out_r, unsigned *max_r,
                      mw_error *error_r)
{
	size_t len = strlen(sql);
	char *out = mw_malloc(len + 1);
	size_t o = 0, i = 0;
	unsigned max = 0;

	while (i < len) {
		char c = sql[i];
		if (c == '\'' || c == '"') {
			/* a quoted literal or identifier; a doubled quote stays inside */
			out[o++] = sql[i++];
			while (i < len) {
				out[o++] = sql[i];
				if (sql[i++] == c) {
					if (i < len && sql[i] == c) {
						out[o++] = sql[i++];
						continue;
					}
					break;
				}
			}
		} else if (c == '-' && i + 1 < len && sql[i + 1] == '-') {
			while (i < len && sql[i] != '\n')
				out[o++] = sql[i++];
		} else if (c == '/' && i + 1 < len && sql[i + 1] == '*') {
			const char *end = strstr(sql + i + 2, "*/");
			size_t stop = end != NULL ? (size_t)(end - sql) + 2 : len;
			while (i < stop)
				out[o++] = sql[i++];
		} else if (c == '?') {
			unsigned long n = 0;
			size_t j = i + 1;
			while (j < len && sql[j] >= '0' && sql[j] <= '9' && n <= 65535)
				n = n * 10 + (unsigned long)(sql[j++] - '0');
			if (j == i + 1 || n == 0 || n > 65535) {
				mw_error_set(error_r,
				             "%s: parameter without a number 1..65535 in the "
				             "query",
				             what);
				free(out);
				return -1;
			}
			out[o++] = '$';
			i++;
			while (i < j)
				out[o++] = sql[i++];
			if (n > max)
				max = (unsigned)n;
		} else {
			out[o++] = sql[i++];
		}
	}
	out[o] = '\0';
	*out_r = out;
	*max_r = max;
	return 0;
}

/* pg_prepare_on_server - PQprepare a statement on the current connection */
static int pg_prepare_on_server(mw_db *db, struct pg_stmt *st, const char *what, bool *lost,
                                mw_error *error_r)
{
	struct pg_conn *pg = pg_of(db);
	PGresult *res;
	int ret;

	*lost = false;
	snprintf(st->name, sizeof(st->name), "mw%" PRIu64, ++pg->next_name);
	res = PQprepare(pg->conn, st->name, st->sql, 0, NULL);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		st->generation = pg->generation;
		st->prepared = true;
		return MW_STORE_OK;
	}
	ret = pg_fail(db, what, res, lost, error_r);
	PQclear(res);
	return ret;
}

/* pgsql_prepare - rewrite the parameters; the server prepares it on first use (in exec,
   under the statement's savepoint, so a bad query cannot abort a transaction by itself) */
static int pgsql_prepare(mw_db *db, const char *what, const char *sql, void **stmt_r,
                         mw_error *error_r)
{
	struct pg_stmt *st;

	(void)db;
	st = mw_calloc(1, sizeof(*st));
	if (pg_rewrite(what, sql, &st->sql, &st->nparams, error_r) < 0) {
		free(st);
		return MW_STORE_ERROR;
	}
	*stmt_r = st;
	return MW_STORE_OK;
}

/* pgsql_finalize - forget a statement. The cache finalizes only when the connection closes
   or was lost, when the server forgets it anyway: no DEALLOCATE round trip. */
static void pgsql_finalize(mw_db *db, void *stmt)
{
	struct pg_stmt *st = stmt;

	(void)db;
	if (st == NULL)
		return;
	free(st->sql);
	free(st);
}

/* pg_row_release - free the decoded blobs of the current row */
static void pg_row_release(struct pg_row *r)
{
	for (int c = 0; c < r->nfields; c++) {
		if (r->blobs[c] != NULL) {
			PQfreemem(r->blobs[c]);
			r->blobs[c] = NULL;
		}
	}
}

/* pg_savepoint - open (cmd "SAVEPOINT"), release or roll back the statement savepoint */
static int pg_savepoint(mw_db *db, const char *cmd, mw_error *error_r)
{
	return pg_simple(db, "a statement savepoint", cmd, error_r);
}

/* pgsql_exec - bind, run, hand each row to cb */
static int pgsql_exec(mw_db *db, void *stmt, const char *what, const struct mw_db_arg *args,
                      size_t nargs, mw_db_row_cb *cb, void *ctx, uint64_t *rows_r,
                      mw_error *error_r)
{
	struct pg_conn *pg = pg_of(db);
	struct pg_stmt *st = stmt;
	const char **values = NULL;
	int *lengths = NULL, *formats = NULL;
	char(*ints)[32] = NULL; /* integers and doubles as text */
	PGresult *res = NULL;
	ExecStatusType status;
	bool lost = false, savepoint = false;
	int ret = MW_STORE_OK;

	if (rows_r != NULL)
		*rows_r = 0;
	if (nargs != st->nparams) {
		mw_error_set(error_r, "%s: the query takes %u parameters, %zu given", what,
		             st->nparams, nargs);
		return MW_STORE_ERROR;
	}
	if (pg_ensure(db, what, error_r) < 0)
		return MW_STORE_ERROR;
	if (db->in_tx) {
		ret = pg_savepoint(db, "SAVEPOINT mw_stmt", error_r);
		if (ret != MW_STORE_OK)
			return ret; /* the connection may be gone: st may be freed */
		savepoint = true;
	}
	if (!st->prepared || st->generation != pg->generation) {
		ret = pg_prepare_on_server(db, st, what, &lost, error_r);
		if (ret != MW_STORE_OK)
			goto failed;
	}
	if (nargs > 0) {
		values = mw_calloc(nargs, sizeof(*values));
		lengths = mw_calloc(nargs, sizeof(*lengths));
		formats = mw_calloc(nargs, sizeof(*formats));
		ints = mw_calloc(nargs, sizeof(*ints));
	}
	for (size_t i = 0; i < nargs; i++) {
		switch (args[i].type) {
		case MW_DB_NULL:
			values[i] = NULL;
			break;
		case MW_DB_INT:
			snprintf(ints[i], sizeof(ints[i]), "%" PRId64, args[i].i);
			values[i] = ints[i];
			break;
		case MW_DB_DOUBLE:
			/* 17 significant digits: the same double comes back */
			snprintf(ints[i], sizeof(ints[i]), "%.17g", args[i].d);
			values[i] = ints[i];
			break;
		case MW_DB_TEXT:
			values[i] = args[i].p;
			break;
		case MW_DB_BLOB:
			if (args[i].len > INT32_MAX) {
				mw_error_set(error_r, "%s: parameter %zu is too long", what, i + 1);
				ret = MW_STORE_ERROR;
				goto failed;
			}
			/* an empty blob must not read as NULL */
			values[i] = args[i].p != NULL ? args[i].p : "";
			lengths[i] = (int)args[i].len;
			formats[i] = 1;
			break;
		}
	}
	res = PQexecPrepared(pg->conn, st->name, (int)nargs, values, lengths, formats, 0);
	status = PQresultStatus(res);
	if (status == PGRES_COMMAND_OK) {
		if (rows_r != NULL)
			*rows_r = strtoull(PQcmdTuples(res), NULL, 10);
	} else if (status == PGRES_TUPLES_OK) {
		int n = PQntuples(res);
		if (rows_r != NULL)
			*rows_r = (uint64_t)n;
		if (cb != NULL) {
			struct pg_row r = {.res = res, .nfields = PQnfields(res)};
			mw_db_row row = {.driver = &mw_db_driver_pgsql, .impl = &r};
			r.blobs = mw_calloc((size_t)r.nfields + 1, sizeof(*r.blobs));
			r.blob_lens = mw_calloc((size_t)r.nfields + 1, sizeof(*r.blob_lens));
			for (r.row = 0; r.row < n && ret == MW_STORE_OK; r.row++) {
				ret = cb(&row, ctx);
				pg_row_release(&r);
			}
			free(r.blobs);
			free(r.blob_lens);
		}
	} else {
		ret = pg_fail(db, what, res, &lost, error_r);
	}
	PQclear(res);
failed:
	free(values);
	free(lengths);
	free(formats);
	free(ints);
	if (lost) {
		pg_lost(db);
		return MW_STORE_ERROR;
	}
	if (savepoint) {
		/* a callback's own nonzero return is not a failure of the statement */
		bool failed_stmt = ret == MW_STORE_ERROR || ret == MW_STORE_EXISTS;
		mw_error sp_err;
		if (failed_stmt &&
		    pg_savepoint(db, "ROLLBACK TO SAVEPOINT mw_stmt", &sp_err) != MW_STORE_OK)
			return ret;
		if (pg_savepoint(db, "RELEASE SAVEPOINT mw_stmt",
		                 failed_stmt ? &sp_err : error_r) != MW_STORE_OK)
			return failed_stmt ? ret : MW_STORE_ERROR;
	}
	return ret;
}

/* pgsql_exec_script - several statements without parameters (migrations) */
static int pgsql_exec_script(mw_db *db, const char *what, const char *sql, mw_error *error_r)
{
	return pg_simple(db, what, sql, error_r);
}

/* pgsql_begin - BEGIN (PostgreSQL takes row locks as it goes; see the file comment) */
static int pgsql_begin(mw_db *db, mw_error *error_r)
{
	pg_of(db)->lost_in_tx = false;
	return pg_simple(db, "starting a transaction", "BEGIN", error_r);
}

/* pgsql_commit - COMMIT; a transaction PostgreSQL already aborted reports ROLLBACK */
static int pgsql_commit(mw_db *db, mw_error *error_r)
{
	struct pg_conn *pg = pg_of(db);
	PGresult *res;
	bool lost;
	int ret = MW_STORE_OK;

	if (pg->lost_in_tx || pg->conn == NULL) {
		pg->lost_in_tx = false;
		mw_error_set(error_r, "committing: PostgreSQL store unavailable: the connection "
		                      "was lost inside the transaction");
		return MW_STORE_ERROR;
	}
	res = PQexec(pg->conn, "COMMIT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		ret = pg_fail(db, "committing", res, &lost, error_r);
		PQclear(res);
		if (lost)
			pg_lost(db);
		pg->lost_in_tx = false;
		return ret;
	}
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		mw_error_set(error_r, "committing: the transaction was rolled back by an error");
		ret = MW_STORE_ERROR;
	}
	PQclear(res);
	return ret;
}

/* pgsql_rollback - ROLLBACK (nothing to do on a lost connection: the server did it) */
static void pgsql_rollback(mw_db *db)
{
	struct pg_conn *pg = pg_of(db);
	PGresult *res;

	pg->lost_in_tx = false;
	if (pg->conn == NULL)
		return;
	res = PQexec(pg->conn, "ROLLBACK");
	if (PQresultStatus(res) != PGRES_COMMAND_OK && pg_is_conn_error(pg->conn, res)) {
		PQclear(res);
		pg_lost(db);
		pg->lost_in_tx = false;
		return;
	}
	PQclear(res);
}

/* pgsql_migrate_prepare - inside each migration's transaction: no statement timeout, and
   the advisory lock that serialises migrating processes (held until commit or rollback).
   Called once outside a transaction too: nothing to create there. */
static int pgsql_migrate_prepare(mw_db *db, mw_error *error_r)
{
	if (!db->in_tx)
		return MW_STORE_OK;
	return pg_simple(db, "taking the migration lock",
	                 "SET LOCAL statement_timeout = 0; "
	                 "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK_KEY ")",
	                 error_r);
}

/* pgsql_open - parse the URL and connect */
static int pgsql_open(mw_db *db, const char *location, unsigned busy_timeout_ms, mw_error *error_r)
{
	struct pg_conn *pg;
	PQconninfoOption *opts;
	char *err = NULL, *url = mw_strdup(location), *p;

	/* mw-db.c takes the scheme in any case, libpq only in lower case */
	for (p = url; *p != '\0' && *p != ':'; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	opts = PQconninfoParse(url, &err);
	if (opts == NULL) {
		/* libpq's parse errors quote the bad part, which may be in the password: show
		   them only for a URL without one */
		char line[200], shown[512];
		pg_one_line(line, sizeof(line), err != NULL ? err : "out of memory");
		mw_db_url_redact(url, shown, sizeof(shown));
		if (strcmp(shown, url) == 0)
			mw_error_set(error_r, "bad PostgreSQL URL: %s", line);
		else
			mw_error_set(error_r, "bad PostgreSQL URL (libpq cannot parse it; its "
			                      "message is not shown: it may quote the password)");
		PQfreemem(err);
		mw_memzero(url, strlen(url));
		free(url);
		return MW_STORE_ERROR;
	}
	PQconninfoFree(opts);
	pg = mw_calloc(1, sizeof(*pg));
	pg->location = url;
	pg->busy_timeout_ms = busy_timeout_ms;
	db->ctx = pg;
	if (pg_connect(pg, error_r) < 0) {
		mw_memzero(pg->location, strlen(pg->location));
		free(pg->location);
		free(pg);
		db->ctx = NULL;
		return MW_STORE_ERROR;
	}
	return MW_STORE_OK;
}

/* pgsql_close - disconnect and forget the URL */
static void pgsql_close(mw_db *db)
{
	struct pg_conn *pg = pg_of(db);
	if (pg == NULL)
		return;
	PQfinish(pg->conn);
	mw_memzero(pg->location, strlen(pg->location));
	free(pg->location);
	free(pg);
	db->ctx = NULL;
}

/* pgsql_is_null - whether a column is NULL */
static bool pgsql_is_null(const mw_db_row *row, unsigned col)
{
	const struct pg_row *r = row->impl;
	if ((int)col >= r->nfields)
		return true;
	return PQgetisnull(r->res, r->row, (int)col) != 0;
}

/* pgsql_get_int - a column as an integer (booleans as 0/1, NULL as 0) */
static int64_t pgsql_get_int(const mw_db_row *row, unsigned col)
{
	const struct pg_row *r = row->impl;
	const char *v;
	if (pgsql_is_null(row, col))
		return 0;
	v = PQgetvalue(r->res, r->row, (int)col);
	if (PQftype(r->res, (int)col) == PG_BOOL_OID)
		return v[0] == 't' ? 1 : 0;
	return strtoll(v, NULL, 10);
}

/* pgsql_get_double - a column as a double (NULL as 0) */
static double pgsql_get_double(const mw_db_row *row, unsigned col)
{
	const struct pg_row *r = row->impl;
	if (pgsql_is_null(row, col))
		return 0;
	return strtod(PQgetvalue(r->res, r->row, (int)col), NULL);
}

/* pgsql_get_text - a column as text (NULL for NULL) */
static const char *pgsql_get_text(const mw_db_row *row, unsigned col)
{
	const struct pg_row *r = row->impl;
	if (pgsql_is_null(row, col))
		return NULL;
	return PQgetvalue(r->res, r->row, (int)col);
}

/* pgsql_get_blob - a column as bytes: bytea decoded from its text form, others as text */
static const void *pgsql_get_blob(const mw_db_row *row, unsigned col, size_t *len_r)
{
	struct pg_row *r = row->impl;
	*len_r = 0;
	if (pgsql_is_null(row, col))
		return NULL;
	if (PQftype(r->res, (int)col) != PG_BYTEA_OID) {
		*len_r = (size_t)PQgetlength(r->res, r->row, (int)col);
		return PQgetvalue(r->res, r->row, (int)col);
	}
	if (r->blobs[col] == NULL) {
		r->blobs[col] =
		    PQunescapeBytea((const unsigned char *)PQgetvalue(r->res, r->row, (int)col),
		                    &r->blob_lens[col]);
		if (r->blobs[col] == NULL)
			abort(); /* out of memory, as mw_malloc */
	}
	*len_r = r->blob_lens[col];
	return r->blobs[col];
}

/* mw_db_url_redact - the URL with its password replaced by "***" (for messages) */
void mw_db_url_redact(const char *url, char *buf, size_t size)
{
	const char *p, *auth, *end, *at = NULL, *colon = NULL;
	mw_str s;

	if (size == 0)
		return;
	if (mw_ascii_strncasecmp(url, "postgresql://", 13) != 0 &&
	    mw_ascii_strncasecmp(url, "postgres://", 11) != 0) {
		(void)mw_strlcpy(buf, url, size);
		return;
	}
	mw_str_init(&s, 0);
	auth = strstr(url, "://") + 3;
	end = auth + strcspn(auth, "/?");
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	for (p = auth; at != NULL && p < at; p++) {
		if (*p == ':') {
			colon = p;
			break;
		}
	}
	if (colon != NULL) {
		(void)mw_str_append(&s, url, (size_t)(colon + 1 - url));
		(void)mw_str_appends(&s, "***");
		(void)mw_str_append(&s, at, (size_t)(end - at));
	} else {
		(void)mw_str_append(&s, url, (size_t)(end - url));
	}
	/* the path and the parameters; password=VALUE up to the next & */
	for (p = end; *p != '\0';) {
		size_t n = strcspn(p + 1, "?&") + 1;
		if ((*p == '?' || *p == '&') && mw_ascii_strncasecmp(p + 1, "password=", 9) == 0) {
			(void)mw_str_append(&s, p, 10);
			(void)mw_str_appends(&s, "***");
		} else {
			(void)mw_str_append(&s, p, n);
		}
		p += n;
	}
	(void)mw_strlcpy(buf, mw_str_c(&s), size);
	mw_str_free(&s);
}

const struct mw_db_driver mw_db_driver_pgsql = {
    .name = "postgresql",
    .dialect = MW_DB_PGSQL,
    .open = pgsql_open,
    .close = pgsql_close,
    .prepare = pgsql_prepare,
    .finalize = pgsql_finalize,
    .exec = pgsql_exec,
    .exec_script = pgsql_exec_script,
    .begin = pgsql_begin,
    .commit = pgsql_commit,
    .rollback = pgsql_rollback,
    .migrate_prepare = pgsql_migrate_prepare,
    .is_null = pgsql_is_null,
    .get_int = pgsql_get_int,
    .get_text = pgsql_get_text,
    .get_blob = pgsql_get_blob,
    .migrations = mw_pgsql_migrations,
    .migrations_count = &mw_pgsql_migrations_count,
    .get_double = pgsql_get_double,
    .absent = NULL,
};
