/* sessions.c - the store's API sessions (mailwarden-api, issue 5).
 *
 * A session is keyed by the SHA-256 of its token (64 lower-case hex digits); its public id
 * is the first MW_SESSION_ID_LEN of them. Revoking stamps revoked_at; nothing is deleted
 * here (a user's sessions go with the user).
 *
 * Public: mw_store_session_add/_get/_touch/_revoke/_revoke_id/_revoke_user/_list.
 *
 * Diagnostics: through error_r; "no such live session" for a change that found none.
 */
#include "mw-build.h"
#include "mw-store-private.h"

#include <stdlib.h>
#include <string.h>

#define SESSION_COLUMNS                                                                            \
	"token_hash, user_id, created_at, last_seen_at, idle_timeout, expires_at, client_ip, "     \
	"user_agent, coalesce(revoked_at, 0)"

static const struct mw_db_query q_session_add = {
    "adding a session",
    "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, idle_timeout, "
    "expires_at, client_ip, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    NULL};
static const struct mw_db_query q_session_get = {
    "reading a session", "SELECT " SESSION_COLUMNS " FROM sessions WHERE token_hash = ?1", NULL};
static const struct mw_db_query q_session_touch = {
    "touching a session",
    "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL", NULL};
static const struct mw_db_query q_session_revoke = {
    "revoking a session",
    "UPDATE sessions SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL", NULL};
static const struct mw_db_query q_session_revoke_id = {
    "revoking a session",
    "UPDATE sessions SET revoked_at = ?3 WHERE user_id = ?1 "
    "AND substr(token_hash, 1, 16) = ?2 AND revoked_at IS NULL",
    NULL};
static const struct mw_db_query q_session_revoke_user = {
    "revoking sessions",
    "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL "
    "AND (CAST(?3 AS TEXT) IS NULL OR token_hash <> ?3)",
    NULL};
static const struct mw_db_query q_session_list = {
    "listing sessions",
    "SELECT " SESSION_COLUMNS " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL "
    "AND expires_at > ?2 AND last_seen_at + idle_timeout > ?2 "
    "ORDER BY created_at DESC, token_hash",
    NULL};

/* token_hash_check - a session key: 64 lower-case hex digits */
static int token_hash_check(const char *hash, mw_error *error_r)
{
	if (!mw_store_hex_check(hash, MW_TOKEN_HASH_HEX)) {
		mw_error_set(error_r, "a session token hash is 64 lower-case hex digits");
		return -1;
	}
	return 0;
}

/* no_live_session - a change that found no live session says so */
static int no_live_session(int ret, mw_error *error_r)
{
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such live session");
	return ret;
}

/* mw_store_session_add - record a new session */
int mw_store_session_add(mw_store *store, const struct mw_session *se, mw_error *error_r)
{
	int ret;
	if (token_hash_check(se->token_hash, error_r) < 0 ||
	    mw_store_check_text("client IP", se->client_ip, MW_CLIENT_IP_MAX, true, error_r) < 0 ||
	    mw_store_check_text("user agent", se->user_agent, MW_USER_AGENT_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	if (se->user_id <= 0 || se->idle_timeout <= 0 || se->expires_at <= se->created_at) {
		mw_error_set(error_r, "invalid session times or user");
		return MW_STORE_ERROR;
	}
	ret = mw_db_change(store->db, &q_session_add,
	                   MW_DB_ARGS(MW_DB_T(se->token_hash), MW_DB_I(se->user_id),
	                              MW_DB_I(se->created_at), MW_DB_I(se->last_seen_at),
	                              MW_DB_I(se->idle_timeout), MW_DB_I(se->expires_at),
	                              MW_DB_T(se->client_ip), MW_DB_T(se->user_agent)),
	                   error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* the SESSION_COLUMNS (a reader that cannot fail: every text is TEXT_LAX) */
#define SESSION(type, field) MW_STORE_COL(struct mw_session, type, field)
static const struct mw_store_col session_cols[] = {
    SESSION(TEXT_LAX, token_hash), SESSION(INT, user_id),         SESSION(INT, created_at),
    SESSION(INT, last_seen_at),    SESSION(INT, idle_timeout),    SESSION(INT, expires_at),
    SESSION(TEXT_LAX, client_ip),  SESSION(TEXT_LAX, user_agent), SESSION(INT, revoked_at)};
static const struct mw_store_reader session_reader =
    MW_STORE_READER(session_cols, "session", false, NULL);

/* read_session_cb - the session reader as the callback of a single-row query */
static int read_session_cb(const mw_db_row *row, void *ctx)
{
	memset(ctx, 0, sizeof(struct mw_session));
	return mw_store_read_row(row, ctx, &session_reader, NULL);
}

/* mw_store_session_get - a session by token hash, whatever its state */
int mw_store_session_get(mw_store *store, const char *token_hash, struct mw_session *session_r,
                         mw_error *error_r)
{
	int ret;
	memset(session_r, 0, sizeof(*session_r));
	if (token_hash_check(token_hash, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_one(store->db, &q_session_get, MW_DB_ARGS(MW_DB_T(token_hash)), read_session_cb,
	                session_r, error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such session");
	return ret;
}

/* mw_store_session_touch - note that a session was used at now */
int mw_store_session_touch(mw_store *store, const char *token_hash, int64_t now, mw_error *error_r)
{
	if (token_hash_check(token_hash, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return no_live_session(mw_db_change(store->db, &q_session_touch,
	                                    MW_DB_ARGS(MW_DB_T(token_hash), MW_DB_I(now)), error_r),
	                       error_r);
}

/* mw_store_session_revoke - end one live session */
int mw_store_session_revoke(mw_store *store, const char *token_hash, mw_error *error_r)
{
	if (token_hash_check(token_hash, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return no_live_session(mw_db_change(store->db, &q_session_revoke,
	                                    MW_DB_ARGS(MW_DB_T(token_hash), MW_DB_I(mw_now())),
	                                    error_r),
	                       error_r);
}

/* mw_store_session_revoke_id - end one live session of a user, named by its public id */
int mw_store_session_revoke_id(mw_store *store, int64_t user_id, const char *id, mw_error *error_r)
{
	if (!mw_store_hex_check(id, MW_SESSION_ID_LEN)) {
		mw_error_set(error_r, "a session id is %d lower-case hex digits",
		             MW_SESSION_ID_LEN);
		return MW_STORE_NOTFOUND;
	}
	return no_live_session(
	    mw_db_change(store->db, &q_session_revoke_id,
	                 MW_DB_ARGS(MW_DB_I(user_id), MW_DB_T(id), MW_DB_I(mw_now())), error_r),
	    error_r);
}

/* mw_store_session_revoke_user - end every live session of a user but one, counting them */
int mw_store_session_revoke_user(mw_store *store, int64_t user_id, const char *except_hash,
                                 unsigned *count_r, mw_error *error_r)
{
	unsigned count;
	uint64_t n = 0;
	int ret;
	if (count_r == NULL)
		count_r = &count;
	*count_r = 0;
	if (except_hash != NULL && token_hash_check(except_hash, error_r) < 0)
		return MW_STORE_ERROR;
	ret = mw_db_run(store->db, &q_session_revoke_user,
	                MW_DB_ARGS(MW_DB_I(user_id), MW_DB_I(mw_now()), MW_DB_T(except_hash)), NULL,
	                NULL, &n, error_r);
	if (ret == MW_STORE_OK)
		*count_r = (unsigned)n;
	return ret;
}

/* mw_store_session_list - a user's sessions live at now, newest first */
int mw_store_session_list(mw_store *store, int64_t user_id, int64_t now,
                          struct mw_session **sessions_r, size_t *count_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_session, &session_reader, false, error_r);
	int ret = mw_store_list(store, &q_session_list, MW_DB_ARGS(MW_DB_I(user_id), MW_DB_I(now)),
	                        &rows, NULL, false);
	*sessions_r = rows.v;
	*count_r = rows.count;
	return ret;
}
