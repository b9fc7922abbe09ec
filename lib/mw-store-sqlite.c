/* mw-store-sqlite.c - the SQLite backend of the store.
 *
 * One sqlite3 connection per mw_store, opened without SQLite's full mutex: a store is not
 * shared between threads (each thread opens its own). The connection runs in WAL mode
 * with foreign_keys=ON (deleting a user cascades), synchronous=NORMAL, trusted_schema=OFF
 * and the caller's busy timeout. Every value reaches SQL through a bound parameter of a
 * prepared statement (sqlite3_prepare_v3); the statements are cached per store.
 *
 * Migrations are the numbered files lib/sql/sqlite/NNN_name.sql, embedded by
 * scripts/embed-sql as mw_sqlite_migrations[]. Each pending one runs inside
 * BEGIN IMMEDIATE ... COMMIT together with the schema_version update, so two processes
 * migrating at once are serialised and a failed migration leaves nothing behind.
 *
 * The database file is not created by open: mw_store_migrate creates it with mode 0640
 * (existing files keep their mode). Its directory must exist.
 *
 * Public: mw_store_backend_sqlite (through mw-store-private.h only).
 *
 * Diagnostics: through error_r; the caller names the store (only file-level messages
 * name the path). A lock held past the busy
 * timeout is MW_STORE_ERROR "... is busy ..."; a UNIQUE or PRIMARY KEY violation is
 * MW_STORE_EXISTS; other SQLite errors are MW_STORE_ERROR with SQLite's message (which
 * names columns, never values).
 */
#include "mw-build.h"
#include "mw-store-private.h"
#include "mw-audit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_USER_ADD,
	ST_USER_GET,
	ST_USER_GET_ID,
	ST_USER_LIST,
	ST_USER_ID,
	ST_USER_TOUCH,
	ST_USER_SET_PASSWORD,
	ST_USER_SET_STATUS,
	ST_USER_SET_ROLE,
	ST_USER_SET_DESCRIPTION,
	ST_USER_DELETE,
	ST_AF_ADD,
	ST_AF_DEL,
	ST_AF_LIST,
	ST_AUDIT_ADD,
	/* mailwarden-api (issue 5) */
	ST_SESSION_ADD,
	ST_SESSION_GET,
	ST_SESSION_TOUCH,
	ST_SESSION_REVOKE,
	ST_SESSION_REVOKE_ID,
	ST_SESSION_REVOKE_USER,
	ST_SESSION_LIST,
	ST_USER_SET_LOGIN,
	ST_AUDIT_LIST,
	ST_AUDIT_LIST_DESC,
	/* Dovecot plugin (issue 6) */
	ST_TAG_COUNT,
	ST_TAG_ADD,
	ST_TAG_LIST,
	ST_TAG_DEL,
	ST_TRAIN_ADD,
	ST_TRAIN_LIST,
	/* mailwarden-policyd (issue 4) */
	ST_RATE_ADD,
	ST_RATE_LIST,
	ST_RATE_DEL,
	/* DKIM signing keys (issue 3) */
	ST_DKIM_ADD,
	ST_DKIM_DEACTIVATE,
	ST_DKIM_ACTIVATE,
	ST_DKIM_LIST,
	ST_DKIM_GET,
	ST_DKIM_GET_ACTIVE,
	ST_DKIM_DELETE,
	/* TOTP state and app passwords (mailwarden-api 2FA, issue 5) */
	ST_TOTP_GET,
	ST_TOTP_SET,
	ST_MAINPROTO_GET,
	ST_MAINPROTO_SET,
	ST_APPPW_COUNT,
	ST_APPPW_ADD,
	ST_APPPW_LIST,
	ST_APPPW_DEL,
	ST_APPPW_USED,
	/* failed authentications (mailwarden-api lockouts, issue 9) */
	ST_AUTHFAIL_ADD,
	ST_AUTHFAIL_GET,
	ST_AUTHFAIL_CLEAR,
	ST_AUTHFAIL_SUM,
	ST_AUTHFAIL_PRUNE,
	ST_APPPW_REVOKE_ALL,
	/* statistical spam classifier (issue 10) */
	ST_SPAM_META_GET,
	ST_SPAM_META_BUMP,
	ST_SPAM_TOKENS_LOAD,
	ST_SPAM_TOKEN_UPSERT,
	ST_SPAM_TOKEN_GET,
	ST_SPAM_LEARNED_GET,
	ST_SPAM_LEARNED_SET,
	ST_COUNT
};

#define SESSION_COLUMNS                                                                            \
	"token_hash, user_id, created_at, last_seen_at, idle_timeout, expires_at, client_ip, "     \
	"user_agent, coalesce(revoked_at, 0)"

#define USER_COLUMNS                                                                               \
	"id, username, password, status, role, description, created_at, updated_at, "              \
	"password_changed_at, coalesce(substr(totp_secret, 1, 3) = 'v1:', 0), failed_logins, "     \
	"locked_until"

#define DKIM_COLUMNS "id, domain, selector, private_key, public_key, created_at, active"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_USER_ADD] = "INSERT INTO users (username, password, status, role, description, "
                    "created_at, updated_at, password_changed_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
    [ST_USER_GET] = "SELECT " USER_COLUMNS " FROM users WHERE username = ?1",
    [ST_USER_GET_ID] = "SELECT " USER_COLUMNS " FROM users WHERE id = ?1",
    [ST_USER_LIST] = "SELECT " USER_COLUMNS " FROM users WHERE id > ?1 "
                     "AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR role = ?3) "
                     "ORDER BY id LIMIT ?4",
    [ST_USER_ID] = "SELECT id FROM users WHERE username = ?1",
    [ST_USER_TOUCH] = "UPDATE users SET updated_at = ?2 WHERE id = ?1",
    [ST_USER_SET_PASSWORD] = "UPDATE users SET password = ?2, password_changed_at = ?3, "
                             "updated_at = ?3 WHERE username = ?1",
    [ST_USER_SET_STATUS] = "UPDATE users SET status = ?2, updated_at = ?3 "
                           "WHERE username = ?1",
    [ST_USER_SET_ROLE] = "UPDATE users SET role = ?2, updated_at = ?3 WHERE username = ?1",
    [ST_USER_SET_DESCRIPTION] = "UPDATE users SET description = ?2, updated_at = ?3 "
                                "WHERE username = ?1",
    [ST_USER_DELETE] = "DELETE FROM users WHERE username = ?1",
    [ST_AF_ADD] = "INSERT INTO allowed_from (user_id, pattern) VALUES (?1, ?2)",
    [ST_AF_DEL] = "DELETE FROM allowed_from WHERE user_id = ?1 AND pattern = ?2",
    [ST_AF_LIST] = "SELECT a.pattern FROM users u "
                   "LEFT JOIN allowed_from a ON a.user_id = u.id "
                   "WHERE u.username = ?1 ORDER BY a.pattern",
    [ST_AUDIT_ADD] = "INSERT INTO audit_log (at, actor, action, target, client, details) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* mailwarden-api (issue 5) */
    [ST_SESSION_ADD] = "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, "
                       "idle_timeout, expires_at, client_ip, user_agent) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_SESSION_GET] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE token_hash = ?1",
    [ST_SESSION_TOUCH] = "UPDATE sessions SET last_seen_at = ?2 "
                         "WHERE token_hash = ?1 AND revoked_at IS NULL",
    [ST_SESSION_REVOKE] = "UPDATE sessions SET revoked_at = ?2 "
                          "WHERE token_hash = ?1 AND revoked_at IS NULL",
    [ST_SESSION_REVOKE_ID] = "UPDATE sessions SET revoked_at = ?3 WHERE user_id = ?1 "
                             "AND substr(token_hash, 1, 16) = ?2 AND revoked_at IS NULL",
    [ST_SESSION_REVOKE_USER] = "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 "
                               "AND revoked_at IS NULL AND (?3 IS NULL OR token_hash <> ?3)",
    [ST_SESSION_LIST] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE user_id = ?1 "
                        "AND revoked_at IS NULL AND expires_at > ?2 "
                        "AND last_seen_at + idle_timeout > ?2 "
                        "ORDER BY created_at DESC, token_hash",
    [ST_USER_SET_LOGIN] = "UPDATE users SET failed_logins = ?2, locked_until = ?3 "
                          "WHERE username = ?1",
    [ST_AUDIT_LIST] =
        "SELECT id, at, actor, action, target, client, details FROM audit_log "
        "WHERE id > ?1 AND (?2 IS NULL OR actor = ?2) "
        "AND (?3 IS NULL OR mw_audit_action(action) = ?3) AND (?4 IS NULL OR target = ?4) "
        "AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at <= ?6) "
        "ORDER BY id LIMIT ?7",
    [ST_AUDIT_LIST_DESC] = "SELECT id, at, actor, action, target, client, details FROM audit_log "
                           "WHERE (?1 = 0 OR id < ?1) AND (?2 IS NULL OR actor = ?2) "
                           "AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR target = ?4) "
                           "AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at <= ?6) "
                           "ORDER BY id DESC LIMIT ?7",
    [ST_TAG_COUNT] = "SELECT count(*), coalesce(max(position), 0) FROM tag_rules "
                     "WHERE user_id = ?1",
    [ST_TAG_ADD] = "INSERT INTO tag_rules (user_id, position, field, match_type, value, keyword, "
                   "mailbox, enabled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_TAG_LIST] = "SELECT t.id, t.position, t.field, t.match_type, t.value, t.keyword, "
                    "t.mailbox, t.enabled FROM users u "
                    "LEFT JOIN tag_rules t ON t.user_id = u.id "
                    "WHERE u.username = ?1 ORDER BY t.position, t.id",
    [ST_TAG_DEL] = "DELETE FROM tag_rules WHERE id = ?2 "
                   "AND user_id = (SELECT id FROM users WHERE username = ?1)",
    [ST_TRAIN_ADD] = "INSERT INTO training_events (user_id, message_id, verdict, created_at) "
                     "SELECT id, ?2, ?3, ?4 FROM users WHERE username = ?1",
    [ST_TRAIN_LIST] = "SELECT e.id, u.username, e.message_id, e.verdict, e.created_at, "
                      "e.consumed_at FROM training_events e JOIN users u ON u.id = e.user_id "
                      "WHERE e.id > ?1 AND (?2 = 0 OR e.consumed_at IS NULL) "
                      "ORDER BY e.id LIMIT ?3",
    [ST_RATE_ADD] = "INSERT INTO rate_policies (scope, match, metric, limit_count, "
                    "window_seconds, action, user_id, created_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_RATE_LIST] = "SELECT r.id, r.scope, r.match, r.metric, r.limit_count, r.window_seconds, "
                     "r.action, COALESCE(u.username, ''), r.created_at FROM rate_policies r "
                     "LEFT JOIN users u ON u.id = r.user_id ORDER BY r.id",
    [ST_RATE_DEL] = "DELETE FROM rate_policies WHERE id = ?1",
    [ST_DKIM_ADD] = "INSERT INTO dkim_keys (domain, selector, private_key, public_key, "
                    "created_at, active) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_DKIM_DEACTIVATE] = "UPDATE dkim_keys SET active = 0 "
                           "WHERE domain = ?1 AND selector <> ?2 AND active <> 0",
    [ST_DKIM_ACTIVATE] = "UPDATE dkim_keys SET active = 1 WHERE domain = ?1 AND selector = ?2",
    [ST_DKIM_LIST] = "SELECT " DKIM_COLUMNS " FROM dkim_keys WHERE (?1 IS NULL OR domain = ?1) "
                     "ORDER BY domain, created_at, id",
    [ST_DKIM_GET] = "SELECT " DKIM_COLUMNS " FROM dkim_keys WHERE domain = ?1 AND selector = ?2",
    [ST_DKIM_GET_ACTIVE] = "SELECT " DKIM_COLUMNS " FROM dkim_keys WHERE domain = ?1 "
                           "AND active = 1 ORDER BY created_at DESC, id DESC LIMIT 1",
    [ST_DKIM_DELETE] = "DELETE FROM dkim_keys WHERE domain = ?1 AND selector = ?2",
    [ST_TOTP_GET] = "SELECT totp_secret FROM users WHERE username = ?1",
    [ST_TOTP_SET] = "UPDATE users SET totp_secret = ?3 WHERE username = ?1 "
                    "AND totp_secret IS ?2",
    [ST_MAINPROTO_GET] = "SELECT main_password_protocols FROM users WHERE username = ?1",
    [ST_MAINPROTO_SET] = "UPDATE users SET main_password_protocols = ?2, updated_at = ?3 "
                         "WHERE username = ?1",
    [ST_APPPW_COUNT] = "SELECT u.id, count(a.id) FROM users u "
                       "LEFT JOIN app_passwords a ON a.user_id = u.id "
                       "WHERE u.username = ?1 GROUP BY u.id",
    [ST_APPPW_ADD] = "INSERT INTO app_passwords (user_id, name, protocols, hash, created_at, "
                     "expires_at, allow_nets) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_APPPW_LIST] = "SELECT a.id, a.name, a.protocols, a.hash, a.created_at, "
                      "coalesce(a.expires_at, 0), coalesce(a.allow_nets, ''), "
                      "coalesce(a.last_used_at, 0), coalesce(a.last_ip, '') FROM users u "
                      "LEFT JOIN app_passwords a ON a.user_id = u.id "
                      "WHERE u.username = ?1 ORDER BY a.id",
    [ST_APPPW_DEL] = "DELETE FROM app_passwords WHERE id = ?2 "
                     "AND user_id = (SELECT id FROM users WHERE username = ?1)",
    /* one statement, so two API processes counting at once never lose a failure */
    [ST_AUTHFAIL_ADD] = "INSERT INTO auth_failures (key, net, failures, first_at, last_at) "
                        "VALUES (?1, ?2, 1, ?3, ?3) ON CONFLICT (key, net) DO UPDATE SET "
                        "failures = CASE WHEN last_at < ?4 THEN 1 ELSE failures + 1 END, "
                        "first_at = CASE WHEN last_at < ?4 THEN ?3 ELSE first_at END, "
                        "last_at = max(last_at, ?3) RETURNING failures, first_at, last_at",
    [ST_AUTHFAIL_GET] = "SELECT failures, first_at, last_at FROM auth_failures "
                        "WHERE key = ?1 AND net = ?2",
    [ST_AUTHFAIL_CLEAR] = "DELETE FROM auth_failures WHERE key = ?1 AND (?2 IS NULL OR net = ?2)",
    [ST_AUTHFAIL_SUM] = "SELECT coalesce(sum(failures), 0), count(*) FROM auth_failures "
                        "WHERE key = ?1 AND last_at >= ?2",
    [ST_AUTHFAIL_PRUNE] = "DELETE FROM auth_failures WHERE last_at < ?1",
    [ST_APPPW_REVOKE_ALL] = "DELETE FROM app_passwords "
                            "WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
    [ST_APPPW_USED] = "UPDATE app_passwords SET last_used_at = ?3, last_ip = nullif(?4, '') "
                      "WHERE id = ?2 AND user_id = (SELECT id FROM users WHERE username = ?1)",
    [ST_SPAM_META_GET] = "SELECT nspam, nham, generation FROM spam_meta WHERE scope = ?1",
    [ST_SPAM_META_BUMP] = "INSERT INTO spam_meta (scope, nspam, nham, generation) "
                          "VALUES (?1, max(?2, 0), max(?3, 0), 1) ON CONFLICT (scope) DO UPDATE "
                          "SET nspam = max(nspam + ?2, 0), nham = max(nham + ?3, 0), "
                          "generation = generation + 1",
    [ST_SPAM_TOKENS_LOAD] = "SELECT hash, nspam, nham, weight FROM spam_tokens "
                            "WHERE scope = ?1 AND gen > ?2",
    [ST_SPAM_TOKEN_UPSERT] = "INSERT INTO spam_tokens (scope, hash, nspam, nham, weight, gen) "
                             "VALUES (?1, ?2, max(?3, 0), max(?4, 0), ?5, ?6) "
                             "ON CONFLICT (scope, hash) DO UPDATE SET "
                             "nspam = max(nspam + ?3, 0), nham = max(nham + ?4, 0), "
                             "weight = weight + ?5, gen = ?6",
    [ST_SPAM_TOKEN_GET] = "SELECT hash, nspam, nham, weight FROM spam_tokens "
                          "WHERE scope = ?1 AND hash = ?2",
    [ST_SPAM_LEARNED_GET] = "SELECT spam FROM spam_learned WHERE scope = ?1 AND digest = ?2",
    [ST_SPAM_LEARNED_SET] = "INSERT INTO spam_learned (scope, digest, spam, learned_at) "
                            "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (scope, digest) DO UPDATE "
                            "SET spam = excluded.spam, learned_at = excluded.learned_at",
};

struct sqlite_store {
	sqlite3 *db; /* NULL until the file exists (mw_store_migrate creates it) */
	char *path;
	unsigned busy_timeout_ms;
	sqlite3_stmt *stmts[ST_COUNT];
	bool spam_batch; /* inside mw_store_spam_batch_begin/end */
};

/* ctx_of - the backend state of a store */
static struct sqlite_store *ctx_of(mw_store *store)
{
	return store->ctx;
}

/* db_fail - turn an SQLite result code into a store status and a message */
static int db_fail(struct sqlite_store *s, int rc, const char *what, mw_error *error_r)
{
	int primary = rc & 0xff;
	if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
		mw_error_set(error_r,
		             "the store is busy: still locked by another process after "
		             "%u ms (%s)",
		             s->busy_timeout_ms, what);
		return MW_STORE_ERROR;
	}
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		mw_error_set(error_r, "%s: already exists", what);
		return MW_STORE_EXISTS;
	}
	mw_error_set(error_r, "%s: %s", what,
	             s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	return MW_STORE_ERROR;
}

/* set_pragmas - connection settings every store needs */
static int set_pragmas(struct sqlite_store *s, mw_error *error_r)
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
	(void)sqlite3_extended_result_codes(s->db, 1);
	rc = sqlite3_busy_timeout(s->db,
	                          s->busy_timeout_ms > INT_MAX ? INT_MAX : (int)s->busy_timeout_ms);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "setting the busy timeout", error_r);
	/* journal_mode answers with the mode now in force: insist it is WAL */
	rc = sqlite3_prepare_v3(s->db, "PRAGMA journal_mode = WAL", -1, 0, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_fail(s, rc, "switching to WAL", error_r);
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
		rc = sqlite3_exec(s->db, pragmas[i], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return db_fail(s, rc, pragmas[i], error_r);
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

/* sql_audit_action - SQL mw_audit_action(ACTION): the current name of a stored action
   (lib/mw-audit.def), so that a filter on user.delete also finds an older user.del */
static void sql_audit_action(sqlite3_context *c, int argc, sqlite3_value **argv)
{
	const char *stored = (const char *)sqlite3_value_text(argv[0]);
	(void)argc;
	if (stored == NULL)
		sqlite3_result_null(c);
	else
		sqlite3_result_text(c, mw_audit_canonical(stored), -1, SQLITE_TRANSIENT);
}

/* connect_db - open the connection if the file exists (or create it when create is set) */
static int connect_db(struct sqlite_store *s, bool create, mw_error *error_r)
{
	int rc, exists;
	if (s->db != NULL)
		return 0;
	exists = file_exists(s->path, error_r);
	if (exists < 0)
		return MW_STORE_ERROR;
	if (exists == 0) {
		if (!create) {
			mw_error_set(error_r,
			             "database file %s does not exist yet: run "
			             "'mailwardenctl init' to create it",
			             s->path);
			return MW_STORE_ERROR;
		}
		if (create_file(s->path, error_r) < 0)
			return MW_STORE_ERROR;
	}
	rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int ret = db_fail(s, rc, "open", error_r);
		sqlite3_close_v2(s->db);
		s->db = NULL;
		return ret;
	}
	if (set_pragmas(s, error_r) != 0 ||
	    sqlite3_create_function_v2(s->db, "mw_audit_action", 1,
	                               SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_audit_action,
	                               NULL, NULL, NULL) != SQLITE_OK) {
		if (s->db != NULL && error_r != NULL && error_r->msg[0] == '\0')
			mw_error_set(error_r, "%s: registering mw_audit_action: %s", s->path,
			             sqlite3_errmsg(s->db));
		sqlite3_close_v2(s->db);
		s->db = NULL;
		return MW_STORE_ERROR;
	}
	return 0;
}

/* stmt_get - the cached prepared statement id, preparing it on first use */
static int stmt_get(struct sqlite_store *s, enum stmt_id id, sqlite3_stmt **st_r, mw_error *error_r)
{
	int rc;
	if (connect_db(s, false, error_r) != 0)
		return MW_STORE_ERROR;
	if (s->stmts[id] == NULL) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			int ret = db_fail(s, rc, "preparing a statement", error_r);
			if (strstr(sqlite3_errmsg(s->db), "no such table") != NULL)
				mw_error_prefix(error_r, "schema missing (run 'mailwardenctl "
				                         "init')");
			return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
		}
	}
	*st_r = s->stmts[id];
	return MW_STORE_OK;
}

/* stmt_done - make a cached statement ready for its next use (releases its locks) */
static void stmt_done(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

/* bind_text - bind a string that outlives the statement's current use */
static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* exec_cached - run a cached statement that returns no rows (BEGIN, COMMIT...) */
static int exec_cached(struct sqlite_store *s, enum stmt_id id, const char *what, mw_error *error_r)
{
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, id, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_step(st);
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, what, error_r);
	return MW_STORE_OK;
}

/* tx_begin - start a write transaction (waits for the lock up to the busy timeout) */
static int tx_begin(struct sqlite_store *s, mw_error *error_r)
{
	return exec_cached(s, ST_BEGIN, "begin transaction", error_r);
}

/* tx_end - commit when ret is MW_STORE_OK, roll back otherwise; returns the outcome */
static int tx_end(struct sqlite_store *s, int ret, mw_error *error_r)
{
	if (ret == MW_STORE_OK) {
		ret = exec_cached(s, ST_COMMIT, "commit", error_r);
		if (ret == MW_STORE_OK)
			return ret;
	}
	if (!sqlite3_get_autocommit(s->db))
		(void)exec_cached(s, ST_ROLLBACK, "rollback", NULL);
	return ret;
}

/* run_update - step a bound statement that changes rows; MW_STORE_NOTFOUND when it
   matched none */
static int run_update(struct sqlite_store *s, sqlite3_stmt *st, int rc, const char *what,
                      mw_error *error_r)
{
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, what, error_r);
	if (sqlite3_changes(s->db) == 0) {
		mw_error_set(error_r, "%s: no such row", what);
		return MW_STORE_NOTFOUND;
	}
	return MW_STORE_OK;
}

/* sqlite_open - remember the path and connect if the database already exists */
static int sqlite_open(mw_store *store, const char *location, unsigned busy_timeout_ms,
                       mw_error *error_r)
{
	struct sqlite_store *s;
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
	s = mw_calloc(1, sizeof(*s));
	s->path = mw_strdup(location);
	s->busy_timeout_ms = busy_timeout_ms;
	store->ctx = s;
	exists = file_exists(s->path, error_r);
	if (exists < 0 || (exists > 0 && connect_db(s, false, error_r) != 0)) {
		free(s->path);
		free(s);
		store->ctx = NULL;
		return -1;
	}
	return 0;
}

/* sqlite_close - finalise the cached statements and close the connection */
static void sqlite_close(mw_store *store)
{
	struct sqlite_store *s = ctx_of(store);
	size_t i;
	if (s == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
	store->ctx = NULL;
}

/* read_version - the recorded schema version, 0 when there is no schema_version table */
static int read_version(struct sqlite_store *s, int *version_r, mw_error *error_r)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 v = 0;
	int rc;
	*version_r = 0;
	rc = sqlite3_prepare_v3(s->db,
	                        "SELECT count(*) FROM sqlite_master "
	                        "WHERE type = 'table' AND name = 'schema_version'",
	                        -1, 0, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_fail(s, rc, "reading the schema version", error_r);
	}
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (v == 0)
		return 0;
	rc = sqlite3_prepare_v3(s->db, "SELECT max(version) FROM schema_version", -1, 0, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_fail(s, rc, "reading the schema version", error_r);
	}
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (v < 0 || v > INT_MAX) {
		mw_error_set(error_r, "schema version %lld is invalid", (long long)v);
		return MW_STORE_ERROR;
	}
	*version_r = (int)v;
	return 0;
}

/* sqlite_latest - the newest embedded migration */
static int sqlite_latest(void)
{
	return (int)mw_sqlite_migrations_count;
}

/* sqlite_schema_version - 0 for a store whose file does not exist yet */
static int sqlite_schema_version(mw_store *store, int *version_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	int exists;
	*version_r = 0;
	if (s->db == NULL) {
		exists = file_exists(s->path, error_r);
		if (exists <= 0)
			return exists;
		if (connect_db(s, false, error_r) != 0)
			return MW_STORE_ERROR;
	}
	return read_version(s, version_r, error_r);
}

/* record_version - replace the schema_version row (inside the migration's transaction) */
static int record_version(struct sqlite_store *s, unsigned version, mw_error *error_r)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_exec(s->db, "DELETE FROM schema_version", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, "INSERT INTO schema_version (version) VALUES (?1)",
		                        -1, 0, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return db_fail(s, rc, "recording the schema version", error_r);
	return 0;
}

/* apply_one - run migration m if the store has not got it yet, in one transaction */
static int apply_one(struct sqlite_store *s, const struct mw_migration *m, mw_error *error_r)
{
	int version, ret, rc, latest = sqlite_latest();
	char *errmsg = NULL;
	if ((ret = tx_begin(s, error_r)) != MW_STORE_OK)
		return ret;
	ret = read_version(s, &version, error_r);
	if (ret == 0 && version > latest) {
		mw_error_set(error_r,
		             "schema version %d is newer than this mailwarden "
		             "knows (%d): upgrade mailwarden instead",
		             version, latest);
		ret = MW_STORE_ERROR;
	}
	if (ret != 0 || version >= (int)m->version)
		return tx_end(s, ret == 0 ? MW_STORE_OK : ret, error_r);
	if ((unsigned)version != m->version - 1) {
		mw_error_set(error_r, "schema version %d cannot take migration %s", version,
		             m->name);
		return tx_end(s, MW_STORE_ERROR, error_r);
	}
	rc = sqlite3_exec(s->db, m->sql, NULL, NULL, &errmsg);
	if (rc != SQLITE_OK) {
		mw_error_set(error_r, "migration %s failed: %s", m->name,
		             errmsg != NULL ? errmsg : sqlite3_errstr(rc));
		sqlite3_free(errmsg);
		return tx_end(s,
		              (rc & 0xff) == SQLITE_BUSY ? db_fail(s, rc, m->name, error_r)
		                                         : MW_STORE_ERROR,
		              error_r);
	}
	if (sqlite3_get_autocommit(s->db)) {
		/* the migration ended our transaction itself: a bug in the .sql file */
		mw_error_set(error_r, "migration %s must not contain BEGIN/COMMIT", m->name);
		return MW_STORE_ERROR;
	}
	if (record_version(s, m->version, error_r) != 0)
		return tx_end(s, MW_STORE_ERROR, error_r);
	ret = tx_end(s, MW_STORE_OK, error_r);
	if (ret != MW_STORE_OK)
		mw_error_prefix(error_r, "migration %s", m->name);
	return ret;
}

/* sqlite_migrate - create the file if needed and apply every pending migration */
static int sqlite_migrate(mw_store *store, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	unsigned i;
	int ret;
	if (connect_db(s, true, error_r) != 0)
		return MW_STORE_ERROR;
	for (i = 0; i < mw_sqlite_migrations_count; i++) {
		if (mw_sqlite_migrations[i].version != i + 1) {
			mw_error_set(error_r, "embedded migration %s is out of order",
			             mw_sqlite_migrations[i].name);
			return MW_STORE_ERROR;
		}
		ret = apply_one(s, &mw_sqlite_migrations[i], error_r);
		if (ret != MW_STORE_OK)
			return MW_STORE_ERROR;
	}
	return MW_STORE_OK;
}

/* column_dup - an owned copy of a text column; NULL stays NULL */
static char *column_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	return v != NULL ? mw_strdup((const char *)v) : NULL;
}

/* read_user - fill user_r from the current row of a USER_COLUMNS query */
static int read_user(struct sqlite_store *s, sqlite3_stmt *st, struct mw_user *user_r,
                     mw_error *error_r)
{
	const unsigned char *name = sqlite3_column_text(st, 1);
	const unsigned char *status = sqlite3_column_text(st, 3);
	const unsigned char *role = sqlite3_column_text(st, 4);
	sqlite3_int64 failed;
	memset(user_r, 0, sizeof(*user_r));
	user_r->id = sqlite3_column_int64(st, 0);
	if (name == NULL || status == NULL || role == NULL ||
	    mw_strlcpy(user_r->username, (const char *)name, sizeof(user_r->username)) < 0 ||
	    mw_user_status_parse((const char *)status, &user_r->status) < 0 ||
	    mw_user_role_parse((const char *)role, &user_r->role) < 0) {
		mw_error_set(error_r, "user row %lld is malformed", (long long)user_r->id);
		return MW_STORE_ERROR;
	}
	user_r->password = column_dup(st, 2);
	user_r->description = column_dup(st, 5);
	if (user_r->password == NULL)
		user_r->password = mw_strdup("");
	if (user_r->description == NULL)
		user_r->description = mw_strdup("");
	user_r->created_at = sqlite3_column_int64(st, 6);
	user_r->updated_at = sqlite3_column_int64(st, 7);
	user_r->password_changed_at = sqlite3_column_int64(st, 8);
	user_r->has_totp = sqlite3_column_int(st, 9) != 0;
	failed = sqlite3_column_int64(st, 10);
	user_r->failed_logins = failed < 0 ? 0 : failed > INT_MAX ? INT_MAX : (int)failed;
	user_r->locked_until = sqlite3_column_int64(st, 11);
	return MW_STORE_OK;
}

/* get_one_user - run a bound single-user query */
static int get_one_user(struct sqlite_store *s, sqlite3_stmt *st, int rc, struct mw_user *user_r,
                        mw_error *error_r)
{
	int ret;
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		stmt_done(st);
		mw_error_set(error_r, "no such user");
		return MW_STORE_NOTFOUND;
	}
	if (rc != SQLITE_ROW) {
		stmt_done(st);
		return db_fail(s, rc, "reading a user", error_r);
	}
	ret = read_user(s, st, user_r, error_r);
	stmt_done(st);
	if (ret != MW_STORE_OK)
		mw_user_clear(user_r);
	return ret;
}

/* sqlite_user_add - insert a user row */
static int sqlite_user_add(mw_store *store, const char *username, const char *password_hash,
                           enum mw_user_status status, enum mw_user_role role,
                           const char *description, int64_t *id_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_USER_ADD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, password_hash);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, mw_user_status_name(status));
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, mw_user_role_name(role));
	if (rc == SQLITE_OK)
		rc = bind_text(st, 5, description);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, mw_now());
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		ret = db_fail(s, rc, "adding a user", error_r);
		if (ret == MW_STORE_EXISTS)
			mw_error_set(error_r, "user %s already exists", username);
		return ret;
	}
	*id_r = sqlite3_last_insert_rowid(s->db);
	return MW_STORE_OK;
}

/* sqlite_user_get - a user by username */
static int sqlite_user_get(mw_store *store, const char *username, struct mw_user *user_r,
                           mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int ret = stmt_get(s, ST_USER_GET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	return get_one_user(s, st, bind_text(st, 1, username), user_r, error_r);
}

/* sqlite_user_get_by_id - a user by id */
static int sqlite_user_get_by_id(mw_store *store, int64_t id, struct mw_user *user_r,
                                 mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int ret = stmt_get(s, ST_USER_GET_ID, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	return get_one_user(s, st, sqlite3_bind_int64(st, 1, id), user_r, error_r);
}

/* sqlite_user_list - one page of users in id order */
static int sqlite_user_list(mw_store *store, const struct mw_user_filter *filter,
                            struct mw_user **users_r, size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_user *users = NULL;
	size_t count = 0, cap = 0, i;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_USER_LIST, &st, error_r);
	*users_r = NULL;
	*count_r = 0;
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, filter->after_id);
	if (rc == SQLITE_OK)
		rc = filter->status < 0
		         ? sqlite3_bind_null(st, 2)
		         : bind_text(st, 2,
		                     mw_user_status_name((enum mw_user_status)filter->status));
	if (rc == SQLITE_OK)
		rc = filter->role < 0
		         ? sqlite3_bind_null(st, 3)
		         : bind_text(st, 3, mw_user_role_name((enum mw_user_role)filter->role));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, filter->limit == 0 ? -1 : (int64_t)filter->limit);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			users = mw_realloc(users, cap * sizeof(*users));
		}
		if ((ret = read_user(s, st, &users[count], error_r)) != MW_STORE_OK)
			break;
		count++;
	}
	stmt_done(st);
	if (ret == MW_STORE_OK && rc != SQLITE_DONE)
		ret = db_fail(s, rc, "listing users", error_r);
	if (ret != MW_STORE_OK) {
		for (i = 0; i < count; i++)
			mw_user_clear(&users[i]);
		free(users);
		return ret;
	}
	*users_r = users;
	*count_r = count;
	return MW_STORE_OK;
}

/* set_column - the shared body of the user_set_* operations: ?1 username, ?2 value,
   ?3 now */
static int set_column(struct sqlite_store *s, enum stmt_id id, const char *username,
                      const char *value, const char *what, mw_error *error_r)
{
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, id, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, value);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, mw_now());
	ret = run_update(s, st, rc, what, error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	return ret;
}

/* sqlite_user_set_password - new hash; also stamps password_changed_at */
static int sqlite_user_set_password(mw_store *store, const char *username,
                                    const char *password_hash, mw_error *error_r)
{
	return set_column(ctx_of(store), ST_USER_SET_PASSWORD, username, password_hash,
	                  "setting a password", error_r);
}

/* sqlite_user_set_status - new status */
static int sqlite_user_set_status(mw_store *store, const char *username, enum mw_user_status status,
                                  mw_error *error_r)
{
	return set_column(ctx_of(store), ST_USER_SET_STATUS, username, mw_user_status_name(status),
	                  "setting a status", error_r);
}

/* sqlite_user_set_role - new role */
static int sqlite_user_set_role(mw_store *store, const char *username, enum mw_user_role role,
                                mw_error *error_r)
{
	return set_column(ctx_of(store), ST_USER_SET_ROLE, username, mw_user_role_name(role),
	                  "setting a role", error_r);
}

/* sqlite_user_set_description - new description */
static int sqlite_user_set_description(mw_store *store, const char *username,
                                       const char *description, mw_error *error_r)
{
	return set_column(ctx_of(store), ST_USER_SET_DESCRIPTION, username, description,
	                  "setting a description", error_r);
}

/* sqlite_user_delete - delete the user; foreign keys cascade to what they own */
static int sqlite_user_delete(mw_store *store, const char *username, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int ret = stmt_get(s, ST_USER_DELETE, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = run_update(s, st, bind_text(st, 1, username), "deleting a user", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	return ret;
}

/* row_by_user - run statement ID with ?1 = username and hand the row to read(st, out);
   no row is MW_STORE_NOTFOUND ("no such user"); what names the work in a failure */
static int row_by_user(struct sqlite_store *s, enum stmt_id id, const char *username,
                       const char *what, void (*read)(sqlite3_stmt *st, void *out), void *out,
                       mw_error *error_r)
{
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, id, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read(st, out);
	stmt_done(st);
	if (rc == SQLITE_DONE) {
		mw_error_set(error_r, "no such user");
		return MW_STORE_NOTFOUND;
	}
	if (rc != SQLITE_ROW)
		return db_fail(s, rc, what, error_r);
	return MW_STORE_OK;
}

/* read_int64 - column 0 as an int64_t */
static void read_int64(sqlite3_stmt *st, void *out)
{
	*(int64_t *)out = sqlite3_column_int64(st, 0);
}

/* read_text_dup - column 0 as a new string (NULL for SQL NULL) */
static void read_text_dup(sqlite3_stmt *st, void *out)
{
	*(char **)out = column_dup(st, 0);
}

/* read_protocols - column 0 into a MW_PROTOCOLS_MAX buffer ("" when it does not fit) */
static void read_protocols(sqlite3_stmt *st, void *out)
{
	const unsigned char *v = sqlite3_column_text(st, 0);
	if (mw_strlcpy(out, v != NULL ? (const char *)v : "", MW_PROTOCOLS_MAX + 1) < 0)
		((char *)out)[0] = '\0';
}

/* user_id - a user's id, inside the caller's transaction */
static int user_id(struct sqlite_store *s, const char *username, int64_t *id_r, mw_error *error_r)
{
	return row_by_user(s, ST_USER_ID, username, "looking up a user", read_int64, id_r, error_r);
}

/* touch_user - stamp updated_at on a user whose belongings changed */
static int touch_user(struct sqlite_store *s, int64_t id, mw_error *error_r)
{
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_USER_TOUCH, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, mw_now());
	return run_update(s, st, rc, "updating a user", error_r);
}

/* pattern_change - add (add=true) or delete one pattern of a user, in a transaction */
static int pattern_change(mw_store *store, const char *username, const char *pattern, bool add,
                          mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int64_t id = 0;
	int rc, ret = tx_begin(s, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = user_id(s, username, &id, error_r);
	if (ret == MW_STORE_OK)
		ret = stmt_get(s, add ? ST_AF_ADD : ST_AF_DEL, &st, error_r);
	if (ret == MW_STORE_OK) {
		rc = sqlite3_bind_int64(st, 1, id);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 2, pattern);
		ret =
		    run_update(s, st, rc, add ? "adding a pattern" : "deleting a pattern", error_r);
		if (ret == MW_STORE_EXISTS)
			mw_error_set(error_r, "pattern %s is already allowed for %s", pattern,
			             username);
		else if (ret == MW_STORE_NOTFOUND)
			mw_error_set(error_r, "pattern %s is not allowed for %s", pattern,
			             username);
	}
	if (ret == MW_STORE_OK)
		ret = touch_user(s, id, error_r);
	return tx_end(s, ret, error_r);
}

/* sqlite_allowed_from_add - allow a pattern */
static int sqlite_allowed_from_add(mw_store *store, const char *username, const char *pattern,
                                   mw_error *error_r)
{
	return pattern_change(store, username, pattern, true, error_r);
}

/* sqlite_allowed_from_del - remove a pattern */
static int sqlite_allowed_from_del(mw_store *store, const char *username, const char *pattern,
                                   mw_error *error_r)
{
	return pattern_change(store, username, pattern, false, error_r);
}

/* sqlite_allowed_from_list - a user's patterns in one read (an unknown user has no row) */
static int sqlite_allowed_from_list(mw_store *store, const char *username, char ***patterns_r,
                                    size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	char **v = mw_calloc(1, sizeof(*v));
	size_t count = 0;
	bool seen_user = false;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_AF_LIST, &st, error_r);
	if (ret != MW_STORE_OK) {
		free(v);
		return ret;
	}
	rc = bind_text(st, 1, username);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		const unsigned char *p;
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		seen_user = true;
		p = sqlite3_column_text(st, 0);
		if (p == NULL)
			continue; /* the user has no patterns */
		v = mw_realloc(v, (count + 2) * sizeof(*v));
		v[count++] = mw_strdup((const char *)p);
		v[count] = NULL;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE || !seen_user) {
		mw_store_strv_free(v);
		if (rc != SQLITE_DONE)
			return db_fail(s, rc, "listing patterns", error_r);
		mw_error_set(error_r, "no such user");
		return MW_STORE_NOTFOUND;
	}
	*patterns_r = v;
	*count_r = count;
	return MW_STORE_OK;
}

/* sqlite_audit_append - insert one audit row */
static int sqlite_audit_append(mw_store *store, const char *actor, const char *action,
                               const char *target, const char *client, const char *details,
                               mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_AUDIT_ADD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, mw_now());
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, actor);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, action);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, target);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 5, client);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 6, details);
	ret = run_update(s, st, rc, "appending to the audit log", error_r);
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* ---- API sessions and audit listing (mailwarden-api, issue 5) ---- */

/* sqlite_session_add - insert a session row */
static int sqlite_session_add(mw_store *store, const struct mw_session *se, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SESSION_ADD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, se->token_hash);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, se->user_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, se->created_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, se->last_seen_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, se->idle_timeout);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, se->expires_at);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 7, se->client_ip);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 8, se->user_agent);
	ret = run_update(s, st, rc, "adding a session", error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* read_session - fill se from the current row of a SESSION_COLUMNS query */
static void read_session(sqlite3_stmt *st, struct mw_session *se)
{
	const unsigned char *v;
	memset(se, 0, sizeof(*se));
	v = sqlite3_column_text(st, 0);
	(void)mw_strlcpy(se->token_hash, v != NULL ? (const char *)v : "", sizeof(se->token_hash));
	se->user_id = sqlite3_column_int64(st, 1);
	se->created_at = sqlite3_column_int64(st, 2);
	se->last_seen_at = sqlite3_column_int64(st, 3);
	se->idle_timeout = sqlite3_column_int64(st, 4);
	se->expires_at = sqlite3_column_int64(st, 5);
	v = sqlite3_column_text(st, 6);
	(void)mw_strlcpy(se->client_ip, v != NULL ? (const char *)v : "", sizeof(se->client_ip));
	v = sqlite3_column_text(st, 7);
	(void)mw_strlcpy(se->user_agent, v != NULL ? (const char *)v : "", sizeof(se->user_agent));
	se->revoked_at = sqlite3_column_int64(st, 8);
}

/* sqlite_session_get - a session by token hash */
static int sqlite_session_get(mw_store *store, const char *token_hash, struct mw_session *se,
                              mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SESSION_GET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, token_hash);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_session(st, se);
	stmt_done(st);
	if (rc == SQLITE_DONE) {
		mw_error_set(error_r, "no such session");
		return MW_STORE_NOTFOUND;
	}
	if (rc != SQLITE_ROW)
		return db_fail(s, rc, "reading a session", error_r);
	return MW_STORE_OK;
}

/* session_update - the shared body of touch and revoke: ?1 token hash, ?2 time */
static int session_update(mw_store *store, enum stmt_id id, const char *token_hash, int64_t t,
                          const char *what, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, id, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, token_hash);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, t);
	ret = run_update(s, st, rc, what, error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such live session");
	return ret;
}

/* sqlite_session_touch - stamp last_seen_at */
static int sqlite_session_touch(mw_store *store, const char *token_hash, int64_t now,
                                mw_error *error_r)
{
	return session_update(store, ST_SESSION_TOUCH, token_hash, now, "touching a session",
	                      error_r);
}

/* sqlite_session_revoke - stamp revoked_at on a live session */
static int sqlite_session_revoke(mw_store *store, const char *token_hash, mw_error *error_r)
{
	return session_update(store, ST_SESSION_REVOKE, token_hash, mw_now(), "revoking a session",
	                      error_r);
}

/* sqlite_session_revoke_id - revoke a user's live session by public id */
static int sqlite_session_revoke_id(mw_store *store, int64_t user_id, const char *id,
                                    mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SESSION_REVOKE_ID, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, user_id);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, mw_now());
	ret = run_update(s, st, rc, "revoking a session", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such live session");
	return ret;
}

/* sqlite_session_revoke_user - revoke all of a user's live sessions but one */
static int sqlite_session_revoke_user(mw_store *store, int64_t user_id, const char *except_hash,
                                      unsigned *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SESSION_REVOKE_USER, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, user_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, mw_now());
	if (rc == SQLITE_OK)
		rc = except_hash != NULL ? bind_text(st, 3, except_hash) : sqlite3_bind_null(st, 3);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "revoking sessions", error_r);
	*count_r = (unsigned)sqlite3_changes(s->db);
	return MW_STORE_OK;
}

/* sqlite_session_list - a user's live sessions */
static int sqlite_session_list(mw_store *store, int64_t user_id, int64_t now,
                               struct mw_session **sessions_r, size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_session *v = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SESSION_LIST, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, user_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, now);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			v = mw_realloc(v, cap * sizeof(*v));
		}
		read_session(st, &v[count++]);
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return db_fail(s, rc, "listing sessions", error_r);
	}
	*sessions_r = v;
	*count_r = count;
	return MW_STORE_OK;
}

/* sqlite_user_set_login_state - failed_logins and locked_until, without updated_at */
static int sqlite_user_set_login_state(mw_store *store, const char *username, int failed_logins,
                                       int64_t locked_until, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_USER_SET_LOGIN, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, failed_logins);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, locked_until);
	ret = run_update(s, st, rc, "recording a login", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	return ret;
}

/* bind_opt_text - bind a string, or NULL when v is NULL */
static int bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
	return v != NULL ? bind_text(st, i, v) : sqlite3_bind_null(st, i);
}

/* bind_opt_time - bind a time, or NULL when t is 0 */
static int bind_opt_time(sqlite3_stmt *st, int i, int64_t t)
{
	return t != 0 ? sqlite3_bind_int64(st, i, t) : sqlite3_bind_null(st, i);
}

/* sqlite_audit_list - one page of audit entries in id order (or newest first) */
static int sqlite_audit_list(mw_store *store, const struct mw_audit_filter *f,
                             struct mw_audit_entry **entries_r, size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_audit_entry *v = NULL, *e;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st;
	int rc,
	    ret = stmt_get(s, f->newest_first ? ST_AUDIT_LIST_DESC : ST_AUDIT_LIST, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, f->newest_first ? f->before_id : f->after_id);
	if (rc == SQLITE_OK)
		rc = bind_opt_text(st, 2, f->actor);
	if (rc == SQLITE_OK)
		rc = bind_opt_text(st, 3, f->action);
	if (rc == SQLITE_OK)
		rc = bind_opt_text(st, 4, f->target);
	if (rc == SQLITE_OK)
		rc = bind_opt_time(st, 5, f->since);
	if (rc == SQLITE_OK)
		rc = bind_opt_time(st, 6, f->until);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 7, f->limit == 0 ? -1 : (int64_t)f->limit);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			v = mw_realloc(v, cap * sizeof(*v));
		}
		e = &v[count++];
		e->id = sqlite3_column_int64(st, 0);
		e->at = sqlite3_column_int64(st, 1);
		e->actor = column_dup(st, 2);
		e->action = column_dup(st, 3);
		e->target = column_dup(st, 4);
		e->client = column_dup(st, 5);
		e->details = column_dup(st, 6);
		if (e->actor == NULL)
			e->actor = mw_strdup("");
		if (e->action == NULL)
			e->action = mw_strdup("");
		if (e->target == NULL)
			e->target = mw_strdup("");
		if (e->client == NULL)
			e->client = mw_strdup("");
		if (e->details == NULL)
			e->details = mw_strdup("");
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		mw_audit_entries_free(v, count);
		return db_fail(s, rc, "listing the audit log", error_r);
	}
	*entries_r = v;
	*count_r = count;
	return MW_STORE_OK;
}

/* ---- tag rules and training events (Dovecot plugin, issue 6) ---- */

/* bind_text_or_null - bind a string, NULL as SQL NULL */
static int bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
	return v != NULL ? bind_text(st, i, v) : sqlite3_bind_null(st, i);
}

/* sqlite_tag_rule_add - append a rule after the user's last one, in a transaction */
static int sqlite_tag_rule_add(mw_store *store, const char *username,
                               const struct mw_tag_rule *rule, int64_t *id_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int64_t uid = 0, count = 0, last = 0;
	int rc, ret = tx_begin(s, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = user_id(s, username, &uid, error_r);
	if (ret == MW_STORE_OK)
		ret = stmt_get(s, ST_TAG_COUNT, &st, error_r);
	if (ret == MW_STORE_OK) {
		rc = sqlite3_bind_int64(st, 1, uid);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			count = sqlite3_column_int64(st, 0);
			last = sqlite3_column_int64(st, 1);
		}
		stmt_done(st);
		if (rc != SQLITE_ROW)
			ret = db_fail(s, rc, "counting tag rules", error_r);
		else if (count >= MW_TAGRULE_MAX_PER_USER) {
			mw_error_set(error_r, "%s already has %d tag rules, the most allowed",
			             username, MW_TAGRULE_MAX_PER_USER);
			ret = MW_STORE_ERROR;
		}
	}
	if (ret == MW_STORE_OK)
		ret = stmt_get(s, ST_TAG_ADD, &st, error_r);
	if (ret == MW_STORE_OK) {
		rc = sqlite3_bind_int64(st, 1, uid);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 2, last + 1);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 3, rule->field);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 4, mw_tagrule_match_name(rule->match));
		if (rc == SQLITE_OK)
			rc = bind_text(st, 5, rule->value);
		if (rc == SQLITE_OK)
			rc = bind_text_or_null(st, 6, rule->keyword);
		if (rc == SQLITE_OK)
			rc = bind_text_or_null(st, 7, rule->mailbox);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int(st, 8, rule->enabled ? 1 : 0);
		ret = run_update(s, st, rc, "adding a tag rule", error_r);
		if (ret == MW_STORE_OK)
			*id_r = sqlite3_last_insert_rowid(s->db);
		else if (ret != MW_STORE_ERROR)
			ret = MW_STORE_ERROR;
	}
	if (ret == MW_STORE_OK)
		ret = touch_user(s, uid, error_r);
	return tx_end(s, ret, error_r);
}

/* sqlite_tag_rule_list - a user's rules in one read (an unknown user has no row) */
static int sqlite_tag_rule_list(mw_store *store, const char *username, struct mw_tag_rule **rules_r,
                                size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_tag_rule *v = NULL;
	size_t count = 0, cap = 0;
	bool seen_user = false;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_TAG_LIST, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		struct mw_tag_rule *r;
		const unsigned char *m;
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		seen_user = true;
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			continue; /* the user has no rules */
		if (count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			v = mw_realloc(v, cap * sizeof(*v));
		}
		r = &v[count++];
		memset(r, 0, sizeof(*r));
		r->id = sqlite3_column_int64(st, 0);
		r->position = sqlite3_column_int64(st, 1);
		r->field = column_dup(st, 2);
		m = sqlite3_column_text(st, 3);
		/* an unknown match type is kept as an invalid value: the caller skips it */
		if (m == NULL || mw_tagrule_match_parse((const char *)m, &r->match) < 0)
			r->match = (enum mw_tagrule_match) - 1;
		r->value = column_dup(st, 4);
		r->keyword = column_dup(st, 5);
		r->mailbox = column_dup(st, 6);
		r->enabled = sqlite3_column_int(st, 7) != 0;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE || !seen_user) {
		mw_tag_rules_free(v, count);
		if (rc != SQLITE_DONE)
			return db_fail(s, rc, "listing tag rules", error_r);
		mw_error_set(error_r, "no such user");
		return MW_STORE_NOTFOUND;
	}
	*rules_r = v;
	*count_r = count;
	return MW_STORE_OK;
}

/* sqlite_tag_rule_del - delete a rule of this user */
static int sqlite_tag_rule_del(mw_store *store, const char *username, int64_t id, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_TAG_DEL, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, id);
	ret = run_update(s, st, rc, "deleting a tag rule", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "%s has no tag rule %lld", username, (long long)id);
	return ret;
}

/* sqlite_training_add - one event row for the user (none when the user is unknown) */
static int sqlite_training_add(mw_store *store, const char *username, const char *message_id,
                               enum mw_training_verdict verdict, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_TRAIN_ADD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, message_id);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, mw_training_verdict_name(verdict));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, mw_now());
	ret = run_update(s, st, rc, "recording a training event", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* sqlite_training_list - one page of events in id order */
static int sqlite_training_list(mw_store *store, int64_t after_id, unsigned limit,
                                bool pending_only, struct mw_training_event **events_r,
                                size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_training_event *v = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_TRAIN_LIST, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, after_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 2, pending_only ? 1 : 0);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, limit == 0 ? -1 : (int64_t)limit);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		struct mw_training_event *e;
		const unsigned char *name, *verdict;
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			v = mw_realloc(v, cap * sizeof(*v));
		}
		e = &v[count];
		memset(e, 0, sizeof(*e));
		e->id = sqlite3_column_int64(st, 0);
		name = sqlite3_column_text(st, 1);
		verdict = sqlite3_column_text(st, 3);
		if (name == NULL || verdict == NULL ||
		    mw_strlcpy(e->username, (const char *)name, sizeof(e->username)) < 0 ||
		    (strcmp((const char *)verdict, "spam") != 0 &&
		     strcmp((const char *)verdict, "ham") != 0)) {
			mw_error_set(error_r, "training event %lld is malformed", (long long)e->id);
			ret = MW_STORE_ERROR;
			break;
		}
		e->verdict =
		    strcmp((const char *)verdict, "spam") == 0 ? MW_TRAINING_SPAM : MW_TRAINING_HAM;
		e->message_id = column_dup(st, 2);
		if (e->message_id == NULL)
			e->message_id = mw_strdup("");
		e->created_at = sqlite3_column_int64(st, 4);
		e->consumed_at = sqlite3_column_int64(st, 5);
		count++;
	}
	stmt_done(st);
	if (ret == MW_STORE_OK && rc != SQLITE_DONE)
		ret = db_fail(s, rc, "listing training events", error_r);
	if (ret != MW_STORE_OK) {
		mw_training_events_free(v, count);
		return ret;
	}
	*events_r = v;
	*count_r = count;
	return MW_STORE_OK;
}

/* sqlite_rate_policy_add - insert one rate policy (user_id looked up by name) */
static int sqlite_rate_policy_add(mw_store *store, const struct mw_rate_policy *p, int64_t *id_r,
                                  mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int64_t uid = 0;
	int rc, ret = MW_STORE_OK;
	if (p->username[0] != '\0')
		ret = user_id(s, p->username, &uid, error_r);
	if (ret == MW_STORE_OK)
		ret = stmt_get(s, ST_RATE_ADD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, p->scope);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, p->match);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, p->metric);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, p->limit_count);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, p->window_seconds);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 6, p->action);
	if (rc == SQLITE_OK)
		rc = uid != 0 ? sqlite3_bind_int64(st, 7, uid) : sqlite3_bind_null(st, 7);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, mw_now());
	ret = run_update(s, st, rc, "adding a rate policy", error_r);
	if (ret == MW_STORE_OK && id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(s->db);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* copy_col - a text column into a fixed buffer (an over-long value is cut: the front end
   refuses such values on add, so only a hand-edited row can have one) */
static void copy_col(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t != NULL ? strlen((const char *)t) : 0;
	if (n >= size)
		n = size - 1;
	if (n > 0)
		memcpy(buf, t, n);
	buf[n] = '\0';
}

/* sqlite_rate_policy_list - every rate policy in id order */
static int sqlite_rate_policy_list(mw_store *store, struct mw_rate_policy **policies_r,
                                   size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_rate_policy *v = NULL;
	size_t count = 0;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_RATE_LIST, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mw_rate_policy *p;
		v = mw_realloc(v, (count + 1) * sizeof(*v));
		p = &v[count++];
		memset(p, 0, sizeof(*p));
		p->id = sqlite3_column_int64(st, 0);
		copy_col(st, 1, p->scope, sizeof(p->scope));
		copy_col(st, 2, p->match, sizeof(p->match));
		copy_col(st, 3, p->metric, sizeof(p->metric));
		p->limit_count = sqlite3_column_int64(st, 4);
		p->window_seconds = sqlite3_column_int64(st, 5);
		copy_col(st, 6, p->action, sizeof(p->action));
		copy_col(st, 7, p->username, sizeof(p->username));
		p->created_at = sqlite3_column_int64(st, 8);
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return db_fail(s, rc, "listing rate policies", error_r);
	}
	*policies_r = v;
	*count_r = count;
	return MW_STORE_OK;
}

/* sqlite_rate_policy_del - delete one rate policy */
static int sqlite_rate_policy_del(mw_store *store, int64_t id, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int ret = stmt_get(s, ST_RATE_DEL, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = run_update(s, st, sqlite3_bind_int64(st, 1, id), "deleting a rate policy", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no rate policy with id %lld", (long long)id);
	return ret;
}

/* ---- DKIM signing keys (issue 3) ---- */

/* read_dkim_row - fill row_r from the current row of a DKIM_COLUMNS query */
static int read_dkim_row(sqlite3_stmt *st, struct mw_dkim_key_row *row_r, mw_error *error_r)
{
	const unsigned char *domain = sqlite3_column_text(st, 1);
	const unsigned char *selector = sqlite3_column_text(st, 2);
	memset(row_r, 0, sizeof(*row_r));
	row_r->id = sqlite3_column_int64(st, 0);
	if (domain == NULL || selector == NULL ||
	    mw_strlcpy(row_r->domain, (const char *)domain, sizeof(row_r->domain)) < 0 ||
	    mw_strlcpy(row_r->selector, (const char *)selector, sizeof(row_r->selector)) < 0) {
		mw_error_set(error_r, "DKIM key row %lld is malformed", (long long)row_r->id);
		return MW_STORE_ERROR;
	}
	row_r->private_key = column_dup(st, 3);
	row_r->public_key = column_dup(st, 4);
	if (row_r->private_key == NULL)
		row_r->private_key = mw_strdup("");
	if (row_r->public_key == NULL)
		row_r->public_key = mw_strdup("");
	row_r->created_at = sqlite3_column_int64(st, 5);
	row_r->active = sqlite3_column_int(st, 6) != 0;
	return MW_STORE_OK;
}

/* dkim_pair_update - run a statement taking ?1 domain, ?2 selector */
static int dkim_pair_update(struct sqlite_store *s, enum stmt_id id, const char *domain,
                            const char *selector, const char *what, mw_error *error_r)
{
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, id, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, domain);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, selector);
	return run_update(s, st, rc, what, error_r);
}

/* dkim_deactivate_others - every other key of domain inactive (none to change is fine) */
static int dkim_deactivate_others(struct sqlite_store *s, const char *domain, const char *selector,
                                  mw_error *error_r)
{
	int ret = dkim_pair_update(s, ST_DKIM_DEACTIVATE, domain, selector,
	                           "deactivating DKIM keys", error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_OK : ret;
}

/* sqlite_dkim_key_add - insert a key; an active one deactivates the domain's others */
static int sqlite_dkim_key_add(mw_store *store, const char *domain, const char *selector,
                               const char *private_key, const char *public_key, bool active,
                               mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = tx_begin(s, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = stmt_get(s, ST_DKIM_ADD, &st, error_r);
	if (ret == MW_STORE_OK) {
		rc = bind_text(st, 1, domain);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 2, selector);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 3, private_key);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 4, public_key);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 5, mw_now());
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int(st, 6, active ? 1 : 0);
		ret = run_update(s, st, rc, "adding a DKIM key", error_r);
		if (ret == MW_STORE_EXISTS)
			mw_error_set(error_r, "DKIM key %s for %s already exists", selector,
			             domain);
	}
	if (ret == MW_STORE_OK && active)
		ret = dkim_deactivate_others(s, domain, selector, error_r);
	return tx_end(s, ret, error_r);
}

/* sqlite_dkim_key_list - every key or a domain's, by domain then age */
static int sqlite_dkim_key_list(mw_store *store, const char *domain,
                                struct mw_dkim_key_row **rows_r, size_t *count_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_dkim_key_row *rows = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_DKIM_LIST, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = domain == NULL ? sqlite3_bind_null(st, 1) : bind_text(st, 1, domain);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			rows = mw_realloc(rows, cap * sizeof(*rows));
		}
		if ((ret = read_dkim_row(st, &rows[count], error_r)) != MW_STORE_OK)
			break;
		count++;
	}
	stmt_done(st);
	if (ret == MW_STORE_OK && rc != SQLITE_DONE)
		ret = db_fail(s, rc, "listing DKIM keys", error_r);
	if (ret != MW_STORE_OK) {
		mw_dkim_key_rows_free(rows, count);
		return ret;
	}
	*rows_r = rows;
	*count_r = count;
	return MW_STORE_OK;
}

/* sqlite_dkim_key_get - one key by selector, or the domain's active one */
static int sqlite_dkim_key_get(mw_store *store, const char *domain, const char *selector,
                               bool active_only, struct mw_dkim_key_row *row_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, active_only ? ST_DKIM_GET_ACTIVE : ST_DKIM_GET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, domain);
	if (rc == SQLITE_OK && !active_only)
		rc = bind_text(st, 2, selector);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret = read_dkim_row(st, row_r, error_r);
		stmt_done(st);
		if (ret != MW_STORE_OK)
			mw_dkim_key_row_clear(row_r);
		return ret;
	}
	stmt_done(st);
	if (rc == SQLITE_DONE) {
		if (active_only)
			mw_error_set(error_r, "no active DKIM key for %s", domain);
		else
			mw_error_set(error_r, "no DKIM key %s for %s", selector, domain);
		return MW_STORE_NOTFOUND;
	}
	return db_fail(s, rc, "reading a DKIM key", error_r);
}

/* sqlite_dkim_key_set_active - make one key the domain's only active key */
static int sqlite_dkim_key_set_active(mw_store *store, const char *domain, const char *selector,
                                      mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	int ret = tx_begin(s, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = dkim_pair_update(s, ST_DKIM_ACTIVATE, domain, selector, "activating a DKIM key",
	                       error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no DKIM key %s for %s", selector, domain);
	if (ret == MW_STORE_OK)
		ret = dkim_deactivate_others(s, domain, selector, error_r);
	return tx_end(s, ret, error_r);
}

/* sqlite_dkim_key_delete - delete one key */
static int sqlite_dkim_key_delete(mw_store *store, const char *domain, const char *selector,
                                  mw_error *error_r)
{
	int ret = dkim_pair_update(ctx_of(store), ST_DKIM_DELETE, domain, selector,
	                           "deleting a DKIM key", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no DKIM key %s for %s", selector, domain);
	return ret;
}

/* ---- TOTP state and app passwords (mailwarden-api 2FA, issue 5) ---- */

/* sqlite_user_totp_get - the TOTP state text of a user (NULL = none) */
static int sqlite_user_totp_get(mw_store *store, const char *username, char **text_r,
                                mw_error *error_r)
{
	return row_by_user(ctx_of(store), ST_TOTP_GET, username, "reading TOTP state",
	                   read_text_dup, text_r, error_r);
}

/* sqlite_user_totp_set - replace the TOTP state only if it is still old_text */
static int sqlite_user_totp_set(mw_store *store, const char *username, const char *old_text,
                                const char *new_text, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_TOTP_SET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = old_text != NULL ? bind_text(st, 2, old_text) : sqlite3_bind_null(st, 2);
	if (rc == SQLITE_OK)
		rc = new_text != NULL ? bind_text(st, 3, new_text) : sqlite3_bind_null(st, 3);
	ret = run_update(s, st, rc, "changing TOTP state", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user, or its TOTP state changed meanwhile");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* sqlite_user_main_protocols_get - users.main_password_protocols */
static int sqlite_user_main_protocols_get(mw_store *store, const char *username,
                                          char out[MW_PROTOCOLS_MAX + 1], mw_error *error_r)
{
	return row_by_user(ctx_of(store), ST_MAINPROTO_GET, username,
	                   "reading main password protocols", read_protocols, out, error_r);
}

/* sqlite_user_main_protocols_set - set users.main_password_protocols, stamp updated_at */
static int sqlite_user_main_protocols_set(mw_store *store, const char *username,
                                          const char *protocols, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_MAINPROTO_SET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, protocols);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, mw_now());
	ret = run_update(s, st, rc, "setting main password protocols", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* app_password_insert - count the user's app passwords and insert one (in a transaction) */
static int app_password_insert(struct sqlite_store *s, const char *username,
                               const struct mw_app_password *ap, int64_t *id_r, mw_error *error_r)
{
	sqlite3_stmt *st;
	int64_t uid = 0, count = 0;
	int rc, ret = stmt_get(s, ST_APPPW_COUNT, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		uid = sqlite3_column_int64(st, 0);
		count = sqlite3_column_int64(st, 1);
	}
	stmt_done(st);
	if (rc == SQLITE_DONE) {
		mw_error_set(error_r, "no such user");
		return MW_STORE_NOTFOUND;
	}
	if (rc != SQLITE_ROW)
		return db_fail(s, rc, "counting app passwords", error_r);
	if (count >= MW_APP_PW_PER_USER_MAX) {
		mw_error_set(error_r, "a user may have at most %d app passwords",
		             MW_APP_PW_PER_USER_MAX);
		return MW_STORE_ERROR;
	}
	ret = stmt_get(s, ST_APPPW_ADD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, uid);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, ap->name);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, ap->protocols);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, ap->hash);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, mw_now());
	/* NULL, not 0 or '': Dovecot's passdb sql skips NULL fields */
	if (rc == SQLITE_OK)
		rc = ap->expires_at != 0 ? sqlite3_bind_int64(st, 6, ap->expires_at)
		                         : sqlite3_bind_null(st, 6);
	if (rc == SQLITE_OK)
		rc = ap->allow_nets[0] != '\0' ? bind_text(st, 7, ap->allow_nets)
		                               : sqlite3_bind_null(st, 7);
	ret = run_update(s, st, rc, "adding an app password", error_r);
	if (ret == MW_STORE_OK)
		*id_r = sqlite3_last_insert_rowid(s->db);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* sqlite_app_password_add - add an app password, refusing more than the per-user limit */
static int sqlite_app_password_add(mw_store *store, const char *username,
                                   const struct mw_app_password *ap, int64_t *id_r,
                                   mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	int ret = tx_begin(s, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = app_password_insert(s, username, ap, id_r, error_r);
	return tx_end(s, ret, error_r);
}

/* read_app_password - fill ap from the current row of ST_APPPW_LIST */
static void read_app_password(sqlite3_stmt *st, struct mw_app_password *ap)
{
	const unsigned char *v;
	memset(ap, 0, sizeof(*ap));
	ap->id = sqlite3_column_int64(st, 0);
	v = sqlite3_column_text(st, 1);
	(void)mw_strlcpy(ap->name, v != NULL ? (const char *)v : "", sizeof(ap->name));
	v = sqlite3_column_text(st, 2);
	(void)mw_strlcpy(ap->protocols, v != NULL ? (const char *)v : "", sizeof(ap->protocols));
	v = sqlite3_column_text(st, 3);
	(void)mw_strlcpy(ap->hash, v != NULL ? (const char *)v : "", sizeof(ap->hash));
	ap->created_at = sqlite3_column_int64(st, 4);
	ap->expires_at = sqlite3_column_int64(st, 5);
	v = sqlite3_column_text(st, 6);
	(void)mw_strlcpy(ap->allow_nets, v != NULL ? (const char *)v : "", sizeof(ap->allow_nets));
	ap->last_used_at = sqlite3_column_int64(st, 7);
	v = sqlite3_column_text(st, 8);
	(void)mw_strlcpy(ap->last_ip, v != NULL ? (const char *)v : "", sizeof(ap->last_ip));
}

/* sqlite_app_password_list - a user's app passwords (an unknown user has no row) */
static int sqlite_app_password_list(mw_store *store, const char *username,
                                    struct mw_app_password **list_r, size_t *count_r,
                                    mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_app_password *v = NULL;
	size_t count = 0, cap = 0;
	bool seen_user = false;
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_APPPW_LIST, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		seen_user = true;
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			continue; /* the user has none */
		if (count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			v = mw_realloc(v, cap * sizeof(*v));
		}
		read_app_password(st, &v[count++]);
	}
	stmt_done(st);
	if (rc != SQLITE_DONE || !seen_user) {
		free(v);
		if (rc != SQLITE_DONE)
			return db_fail(s, rc, "listing app passwords", error_r);
		mw_error_set(error_r, "no such user");
		return MW_STORE_NOTFOUND;
	}
	*list_r = v;
	*count_r = count;
	return MW_STORE_OK;
}

/* sqlite_app_password_del - delete one of a user's app passwords */
static int sqlite_app_password_del(mw_store *store, const char *username, int64_t id,
                                   mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_APPPW_DEL, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, id);
	ret = run_update(s, st, rc, "deleting an app password", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such app password");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* sqlite_app_password_used - stamp the last use of one of a user's app passwords */
static int sqlite_app_password_used(mw_store *store, const char *username, int64_t id, int64_t at,
                                    const char *ip, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_APPPW_USED, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, at);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, ip);
	ret = run_update(s, st, rc, "recording an app password's use", error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such app password");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* authfail_row - step st and read (failures, first_at, last_at) from its row */
static int authfail_row(struct sqlite_store *s, sqlite3_stmt *st, int rc, const char *what,
                        struct mw_auth_fail *row_r, mw_error *error_r)
{
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_r->failures = sqlite3_column_int64(st, 0);
		row_r->first_at = sqlite3_column_int64(st, 1);
		row_r->last_at = sqlite3_column_int64(st, 2);
		rc = sqlite3_step(st);
		stmt_done(st);
		if (rc != SQLITE_DONE)
			return db_fail(s, rc, what, error_r);
		return MW_STORE_OK;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, what, error_r);
	mw_error_set(error_r, "%s: no such row", what);
	return MW_STORE_NOTFOUND;
}

/* sqlite_auth_fail_add - count one failure of (key, net) */
static int sqlite_auth_fail_add(mw_store *store, const char *key, const char *net, int64_t now,
                                int64_t since, struct mw_auth_fail *row_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_AUTHFAIL_ADD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, key);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, net);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, now);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, since);
	ret = authfail_row(s, st, rc, "counting a failed authentication", row_r, error_r);
	return ret == MW_STORE_OK ? ret : MW_STORE_ERROR;
}

/* sqlite_auth_fail_get - the row of (key, net) */
static int sqlite_auth_fail_get(mw_store *store, const char *key, const char *net,
                                struct mw_auth_fail *row_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_AUTHFAIL_GET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, key);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, net);
	ret = authfail_row(s, st, rc, "reading failed authentications", row_r, error_r);
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* sqlite_auth_fail_clear - delete (key, net)'s row, or all of key's */
static int sqlite_auth_fail_clear(mw_store *store, const char *key, const char *net,
                                  mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_AUTHFAIL_CLEAR, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, key);
	if (rc == SQLITE_OK)
		rc = net != NULL ? bind_text(st, 2, net) : sqlite3_bind_null(st, 2);
	ret = run_update(s, st, rc, "clearing failed authentications", error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_OK
	       : ret == MW_STORE_EXISTS ? MW_STORE_ERROR
	                                : ret;
}

/* sqlite_auth_fail_sum - failures and networks of key since a time */
static int sqlite_auth_fail_sum(mw_store *store, const char *key, int64_t since,
                                int64_t *failures_r, int64_t *nets_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	struct mw_auth_fail row = {0, 0, 0};
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_AUTHFAIL_SUM, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, key);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, since);
	/* the aggregate has one row whatever matches: read it as (sum, count, -) */
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row.failures = sqlite3_column_int64(st, 0);
		row.first_at = sqlite3_column_int64(st, 1);
		rc = SQLITE_DONE;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "summing failed authentications", error_r);
	*failures_r = row.failures;
	*nets_r = row.first_at;
	return MW_STORE_OK;
}

/* sqlite_auth_fail_prune - delete rows whose last failure is older than before */
static int sqlite_auth_fail_prune(mw_store *store, int64_t before, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_AUTHFAIL_PRUNE, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, before);
	ret = run_update(s, st, rc, "pruning failed authentications", error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_OK
	       : ret == MW_STORE_EXISTS ? MW_STORE_ERROR
	                                : ret;
}

/* sqlite_app_password_revoke_all - delete every app password of a user */
static int sqlite_app_password_revoke_all(mw_store *store, const char *username, unsigned *count_r,
                                          mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_APPPW_REVOKE_ALL, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = bind_text(st, 1, username);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "revoking app passwords", error_r);
	*count_r = (unsigned)sqlite3_changes(s->db);
	return MW_STORE_OK;
}

/* ---- statistical spam classifier (issue 10) ---- */

/* spam_meta_read - counts and generation of a model (zeros when never learned) */
static int spam_meta_read(struct sqlite_store *s, int64_t scope, struct mw_spam_meta *meta_r,
                          mw_error *error_r)
{
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SPAM_META_GET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, scope);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		meta_r->nspam = sqlite3_column_int64(st, 0);
		meta_r->nham = sqlite3_column_int64(st, 1);
		meta_r->generation = sqlite3_column_int64(st, 2);
		rc = SQLITE_DONE;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "reading the spam model", error_r);
	return MW_STORE_OK;
}

/* sqlite_spam_meta_get - counts and generation of a model */
static int sqlite_spam_meta_get(mw_store *store, int64_t scope, struct mw_spam_meta *meta_r,
                                mw_error *error_r)
{
	return spam_meta_read(ctx_of(store), scope, meta_r, error_r);
}

/* sqlite_spam_tokens_load - rows changed after since_gen, one callback each */
static int sqlite_spam_tokens_load(mw_store *store, int64_t scope, int64_t since_gen,
                                   mw_spam_token_cb *cb, void *ctx, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SPAM_TOKENS_LOAD, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, scope);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, since_gen);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		struct mw_spam_token t;
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		t.hash = (uint64_t)sqlite3_column_int64(st, 0);
		t.nspam = sqlite3_column_int64(st, 1);
		t.nham = sqlite3_column_int64(st, 2);
		t.weight = sqlite3_column_double(st, 3);
		cb(ctx, &t);
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "reading spam tokens", error_r);
	return MW_STORE_OK;
}

/* sqlite_spam_tokens_get - the rows of count given tokens, one callback each */
static int sqlite_spam_tokens_get(mw_store *store, int64_t scope, const uint64_t *hash,
                                  size_t count, mw_spam_token_cb *cb, void *ctx, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	size_t i;
	int rc = SQLITE_DONE, ret = stmt_get(s, ST_SPAM_TOKEN_GET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	for (i = 0; i < count && rc == SQLITE_DONE; i++) {
		struct mw_spam_token t;
		sqlite3_reset(st);
		rc = sqlite3_bind_int64(st, 1, scope);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 2, (int64_t)hash[i]);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			t.hash = (uint64_t)sqlite3_column_int64(st, 0);
			t.nspam = sqlite3_column_int64(st, 1);
			t.nham = sqlite3_column_int64(st, 2);
			t.weight = sqlite3_column_double(st, 3);
			cb(ctx, &t);
			rc = SQLITE_DONE;
		}
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "reading spam tokens", error_r);
	return MW_STORE_OK;
}

/* sqlite_spam_learned_get - the label a digest was learned with */
static int sqlite_spam_learned_get(mw_store *store, int64_t scope, const unsigned char *digest,
                                   bool *spam_r, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	sqlite3_stmt *st;
	int rc, ret = stmt_get(s, ST_SPAM_LEARNED_GET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, scope);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 2, digest, MW_SPAM_DIGEST_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	ret = MW_STORE_NOTFOUND;
	if (rc == SQLITE_ROW) {
		*spam_r = sqlite3_column_int(st, 0) != 0;
		ret = MW_STORE_OK;
		rc = SQLITE_DONE;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "reading learned messages", error_r);
	return ret;
}

/* spam_learn_rows - the statements of one learned message (inside a transaction) */
static int spam_learn_rows(struct sqlite_store *s, const struct mw_spam_learn *l, mw_error *error_r)
{
	struct mw_spam_meta meta;
	sqlite3_stmt *st;
	size_t i;
	int rc, ret = stmt_get(s, ST_SPAM_META_BUMP, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, l->scope);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, l->dspam);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, l->dham);
	ret = run_update(s, st, rc, "updating the spam model", error_r);
	if (ret != MW_STORE_OK)
		return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
	memset(&meta, 0, sizeof(meta));
	ret = spam_meta_read(s, l->scope, &meta, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = stmt_get(s, ST_SPAM_TOKEN_UPSERT, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	for (i = 0; i < l->count; i++) {
		const struct mw_spam_token *t = &l->tokens[i];
		rc = sqlite3_bind_int64(st, 1, l->scope);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 2, (int64_t)t->hash);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 3, t->nspam);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 4, t->nham);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_double(st, 5, t->weight);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 6, meta.generation);
		ret = run_update(s, st, rc, "updating spam tokens", error_r);
		if (ret != MW_STORE_OK)
			return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
	}
	ret = stmt_get(s, ST_SPAM_LEARNED_SET, &st, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	rc = sqlite3_bind_int64(st, 1, l->scope);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 2, l->digest, MW_SPAM_DIGEST_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 3, l->spam ? 1 : 0);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, mw_now());
	ret = run_update(s, st, rc, "recording a learned message", error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* sqlite_spam_learn - one learned message: its own transaction unless in a batch */
static int sqlite_spam_learn(mw_store *store, const struct mw_spam_learn *learn, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	int ret;
	if (s->spam_batch)
		return spam_learn_rows(s, learn, error_r);
	ret = tx_begin(s, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	return tx_end(s, spam_learn_rows(s, learn, error_r), error_r);
}

/* sqlite_spam_batch - begin (0), commit (1) or roll back (2) a learn batch */
static int sqlite_spam_batch(mw_store *store, int what, mw_error *error_r)
{
	struct sqlite_store *s = ctx_of(store);
	int ret;
	if (what == 0) {
		if (s->spam_batch) {
			mw_error_set(error_r, "spam learn batch already open");
			return MW_STORE_ERROR;
		}
		ret = tx_begin(s, error_r);
		if (ret == MW_STORE_OK)
			s->spam_batch = true;
		return ret;
	}
	if (!s->spam_batch) {
		mw_error_set(error_r, "no spam learn batch open");
		return MW_STORE_ERROR;
	}
	s->spam_batch = false;
	if (what == 1)
		return tx_end(s, MW_STORE_OK, error_r);
	(void)tx_end(s, MW_STORE_ERROR, NULL);
	return MW_STORE_OK;
}

const struct mw_store_backend mw_store_backend_sqlite = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .migrate = sqlite_migrate,
    .schema_version = sqlite_schema_version,
    .latest_schema_version = sqlite_latest,
    .user_add = sqlite_user_add,
    .user_get = sqlite_user_get,
    .user_get_by_id = sqlite_user_get_by_id,
    .user_list = sqlite_user_list,
    .user_set_password = sqlite_user_set_password,
    .user_set_status = sqlite_user_set_status,
    .user_set_role = sqlite_user_set_role,
    .user_set_description = sqlite_user_set_description,
    .user_delete = sqlite_user_delete,
    .allowed_from_add = sqlite_allowed_from_add,
    .allowed_from_del = sqlite_allowed_from_del,
    .allowed_from_list = sqlite_allowed_from_list,
    .audit_append = sqlite_audit_append,
    .session_add = sqlite_session_add,
    .session_get = sqlite_session_get,
    .session_touch = sqlite_session_touch,
    .session_revoke = sqlite_session_revoke,
    .session_revoke_id = sqlite_session_revoke_id,
    .session_revoke_user = sqlite_session_revoke_user,
    .session_list = sqlite_session_list,
    .user_set_login_state = sqlite_user_set_login_state,
    .audit_list = sqlite_audit_list,
    .rate_policy_add = sqlite_rate_policy_add,
    .rate_policy_list = sqlite_rate_policy_list,
    .rate_policy_del = sqlite_rate_policy_del,
    .tag_rule_add = sqlite_tag_rule_add,
    .tag_rule_list = sqlite_tag_rule_list,
    .tag_rule_del = sqlite_tag_rule_del,
    .training_add = sqlite_training_add,
    .training_list = sqlite_training_list,
    .dkim_key_add = sqlite_dkim_key_add,
    .dkim_key_list = sqlite_dkim_key_list,
    .dkim_key_get = sqlite_dkim_key_get,
    .dkim_key_set_active = sqlite_dkim_key_set_active,
    .dkim_key_delete = sqlite_dkim_key_delete,
    .user_totp_get = sqlite_user_totp_get,
    .user_totp_set = sqlite_user_totp_set,
    .user_main_protocols_get = sqlite_user_main_protocols_get,
    .user_main_protocols_set = sqlite_user_main_protocols_set,
    .app_password_add = sqlite_app_password_add,
    .app_password_list = sqlite_app_password_list,
    .app_password_del = sqlite_app_password_del,
    .app_password_used = sqlite_app_password_used,
    .auth_fail_add = sqlite_auth_fail_add,
    .auth_fail_get = sqlite_auth_fail_get,
    .auth_fail_clear = sqlite_auth_fail_clear,
    .auth_fail_sum = sqlite_auth_fail_sum,
    .auth_fail_prune = sqlite_auth_fail_prune,
    .app_password_revoke_all = sqlite_app_password_revoke_all,
    .spam_meta_get = sqlite_spam_meta_get,
    .spam_tokens_load = sqlite_spam_tokens_load,
    .spam_tokens_get = sqlite_spam_tokens_get,
    .spam_learned_get = sqlite_spam_learned_get,
    .spam_learn = sqlite_spam_learn,
    .spam_batch = sqlite_spam_batch,
};
