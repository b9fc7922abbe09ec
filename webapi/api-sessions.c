/* api-sessions.c - mailwarden-api sessions: login, bearer tokens, throttling, audit.
 *
 * A token is 32 random bytes (libsodium) in unpadded base64url (43 characters), handed to
 * the client once; the store keeps only the hex SHA-256 of that text (sessions.token_hash).
 * Every authenticated request checks, at mw_now(): not revoked, before expires_at (the
 * absolute lifetime, [api] session_lifetime), and less than idle_timeout since last use
 * ([api] session_idle_timeout); the user must still be active. Refresh issues a new token
 * with the same absolute end and revokes the old one.
 *
 * Two-factor login: a user with active TOTP must also send totp (a 6-digit code or a
 * recovery code, api-totp.c). A missing or wrong one gets the same 401 as a wrong password;
 * only when the password was right does the error carry "totp_required": true. Trade-off:
 * that tells someone who has the password that it is right, but IMAP/SMTP AUTH tell them
 * as much for users without TOTP, and it lets clients ask for the code only when needed.
 *
 * Login throttling is api-guard.c's (api_verify, shared with every other check of a
 * password or code): growing delays per (account, client network), a per-network
 * throttle (429 with Retry-After) and a per-account ceiling that alerts. A login naming no
 * usable account verifies the password against a dummy hash and is counted the same way,
 * so the answer, its timing and the delays do not tell whether the account exists. An
 * account locked at the ceiling (login_account_lock = yes) gets the wrong-password answer.
 *
 * A worker keeps the rows it read for a session (api-authcache.c) and uses them again only
 * while the store's data version has not moved: the checks above still run on every request.
 *
 * Public: api_authenticate, api_session_create,
 * api_session_refresh, api_session_delete_current, api_session_list, api_session_delete,
 * api_user_sessions_delete.
 *
 * Diagnostics: failed logins are logged (username escaped with mw_log_value, client IP);
 * tokens and passwords never are.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-audit.h"
#include "mw-log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_BYTES 32
#define TOKEN_CHARS 43 /* unpadded base64url of 32 bytes */

/* token_hash_hex - the hex SHA-256 of the token text */
static void token_hash_hex(const char *token, char out[MW_TOKEN_HASH_HEX + 1])
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
	(void)sodium_bin2hex(out, MW_TOKEN_HASH_HEX + 1, digest, sizeof(digest));
}

/* token_valid_form - 43 base64url characters */
static bool token_valid_form(const char *t)
{
	size_t i;
	for (i = 0; t[i] != '\0'; i++) {
		char c = t[i];
		if (i >= TOKEN_CHARS || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		                          (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return i == TOKEN_CHARS;
}

/* session_json - the public view of a session */
static json_t *session_json(const struct mw_session *se, bool current)
{
	char id[MW_SESSION_ID_LEN + 1];
	(void)mw_strlcpy(id, "", sizeof(id));
	memcpy(id, se->token_hash, MW_SESSION_ID_LEN);
	id[MW_SESSION_ID_LEN] = '\0';
	return json_pack("{s:s,s:I,s:I,s:I,s:I,s:s,s:s,s:b}", "id", id, "created_at",
	                 (json_int_t)se->created_at, "last_seen_at", (json_int_t)se->last_seen_at,
	                 "expires_at", (json_int_t)se->expires_at, "idle_timeout",
	                 (json_int_t)se->idle_timeout, "client_ip", se->client_ip, "user_agent",
	                 se->user_agent, "current", current);
}

/* api_authenticate - check the bearer token and load its session and user */
int api_authenticate(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	const char *auth = req->authorization, *token;
	char hash[MW_TOKEN_HASH_HEX + 1];
	int64_t now = mw_now();
	mw_error err = {{0}};
	bool hit;
	int ret;
	if (auth == NULL || mw_ascii_strncasecmp(auth, "Bearer ", 7) != 0) {
		api_error(res, 401, "unauthenticated",
		          "a session token is required "
		          "(Authorization: Bearer TOKEN)");
		return -1;
	}
	token = auth + 7;
	if (!token_valid_form(token)) {
		api_error(res, 401, "invalid_session", "the session token is not valid");
		return -1;
	}
	token_hash_hex(token, hash);
	/* the worker's cache (api-authcache.c) serves the rows only at the data version they
	   were read at; a store that cannot tell is read every time */
	req->version_known = mw_store_data_version(ctx->store, &req->version, NULL) == MW_STORE_OK;
	hit = req->version_known &&
	      api_authcache_get(ctx->authcache, req->version, hash, &req->session, &req->user);
	if (!hit) {
		ret = mw_store_session_get(ctx->store, hash, &req->session, &err);
		if (ret == MW_STORE_ERROR) {
			api_store_error(res, "reading a session", &err);
			return -1;
		}
		if (ret != MW_STORE_OK) {
			api_error(res, 401, "invalid_session", "the session token is not valid");
			return -1;
		}
	}
	if (req->session.revoked_at != 0) {
		api_error(res, 401, "invalid_session", "the session token is not valid");
		return -1;
	}
	if (now >= req->session.expires_at ||
	    now - req->session.last_seen_at >= req->session.idle_timeout) {
		api_error(res, 401, "session_expired", "the session has expired");
		return -1;
	}
	ret = MW_STORE_OK;
	if (!hit) {
		ret = mw_store_user_get_by_id(ctx->store, req->session.user_id, &req->user, &err);
		if (ret == MW_STORE_ERROR) {
			api_store_error(res, "reading a user", &err);
			return -1;
		}
		if (ret == MW_STORE_OK && req->user.status == MW_USER_ACTIVE && req->version_known)
			api_authcache_put(ctx->authcache, req->version, &req->session, &req->user);
	}
	if (ret != MW_STORE_OK || req->user.status != MW_USER_ACTIVE) {
		(void)mw_store_session_revoke(ctx->store, hash, NULL);
		api_error(res, 401, "invalid_session", "the session token is not valid");
		return -1;
	}
	if (now > req->session.last_seen_at &&
	    mw_store_session_touch(ctx->store, hash, now, &err) == MW_STORE_ERROR) {
		api_store_error(res, "touching a session", &err);
		return -1;
	}
	req->session.last_seen_at = now;
	req->authed = true;
	api_store_answered();
	(void)snprintf(req->actor, sizeof(req->actor), "api:%s", req->user.username);
	return 0;
}

/* new_session - create a session for user (expires_at: 0 = now + lifetime); answers
   201 with the token */
static void new_session(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                        const struct mw_user *user, int64_t expires_at, const char *action)
{
	unsigned char raw[TOKEN_BYTES];
	char token[TOKEN_CHARS + 2], id[MW_SESSION_ID_LEN + 1];
	struct mw_session se;
	int64_t now = mw_now();
	mw_error err = {{0}};
	memset(&se, 0, sizeof(se));
	randombytes_buf(raw, sizeof(raw));
	(void)sodium_bin2base64(token, sizeof(token), raw, sizeof(raw),
	                        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	mw_memzero(raw, sizeof(raw));
	token_hash_hex(token, se.token_hash);
	se.user_id = user->id;
	se.created_at = se.last_seen_at = now;
	se.idle_timeout = mw_config_int(ctx->cfg, MWK_API_SESSION_IDLE_TIMEOUT);
	se.expires_at =
	    expires_at != 0 ? expires_at : now + mw_config_int(ctx->cfg, MWK_API_SESSION_LIFETIME);
	(void)mw_strlcpy(se.client_ip, req->remote_addr != NULL ? req->remote_addr : "",
	                 sizeof(se.client_ip));
	/* a user agent that does not fit or is not printable UTF-8 is simply not recorded */
	if (req->user_agent != NULL &&
	    mw_strlcpy(se.user_agent, req->user_agent, sizeof(se.user_agent)) < 0)
		se.user_agent[0] = '\0';
	if (!mw_utf8_valid(se.user_agent, strlen(se.user_agent), NULL))
		se.user_agent[0] = '\0';
	for (size_t i = 0; se.user_agent[i] != '\0'; i++)
		if ((unsigned char)se.user_agent[i] < 0x20 || se.user_agent[i] == 0x7f)
			se.user_agent[0] = '\0';
	if (mw_store_session_add(ctx->store, &se, &err) != MW_STORE_OK) {
		mw_memzero(token, sizeof(token));
		api_store_error(res, "adding a session", &err);
		return;
	}
	memcpy(id, se.token_hash, MW_SESSION_ID_LEN);
	id[MW_SESSION_ID_LEN] = '\0';
	api_ok(res, 201,
	       json_pack("{s:s,s:s,s:I,s:I,s:s}", "token", token, "id", id, "expires_at",
	                 (json_int_t)se.expires_at, "idle_timeout", (json_int_t)se.idle_timeout,
	                 "username", user->username));
	mw_memzero(token, sizeof(token));
	api_audit(ctx, req, action, user->username, json_pack("{s:s}", "session", id));
}

/* login_failed - the one answer to every failed login */
static void login_failed(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                         const char *username)
{
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_SESSION_LOGIN_FAILED),
	          username[0] != '\0' ? username : NULL, NULL);
	api_error(res, 401, "invalid_credentials", "invalid username or password");
}

/* totp_required - mark a failed login's answer: the password was right, a second factor
   (totp: a 6-digit code or a recovery code) is what is missing or wrong */
static void totp_required(struct api_response *res)
{
	json_t *e = json_object_get(res->body, "error");
	if (e != NULL)
		json_object_set_new(e, "totp_required", json_true());
}

/* api_session_create - POST /sessions {username, password, totp?}: log in */
void api_session_create(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"username", "password", "totp", NULL};
	const char *username, *password, *totp = NULL;
	char name[MW_USERNAME_MAX + 1], safe[MW_USERNAME_MAX * 4 + 8];
	struct mw_user user;
	struct mw_session *live = NULL;
	size_t nlive = 0;
	int64_t now = mw_now();
	mw_error err = {{0}};
	bool usable;
	int ret, v;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "username", true, MW_USERNAME_MAX * 4, &username) < 0 ||
	    api_field_string(req, res, "password", true, MW_PASSWORD_MAX, &password) < 0 ||
	    api_field_string(req, res, "totp", false, 64, &totp) < 0)
		return;
	memset(&user, 0, sizeof(user));
	if (mw_store_username_normalize(username, name, sizeof(name), NULL) == 0) {
		ret = mw_store_user_get(ctx->store, name, &user, &err);
	} else {
		/* no account can have this name; it still gets its own (escaped) failure key */
		(void)mw_log_value(safe, sizeof(safe), username, strlen(username));
		(void)mw_strlcpy(name, safe, sizeof(name));
		ret = MW_STORE_NOTFOUND;
	}
	if (ret == MW_STORE_ERROR) {
		api_store_error(res, "reading a user", &err);
		return;
	}
	usable = ret == MW_STORE_OK && user.status == MW_USER_ACTIVE && user.locked_until <= now;
	v = api_verify(ctx, req, res, name, ret == MW_STORE_OK ? &user : NULL, usable, password,
	               totp, true, "login");
	if (v == API_VERIFY_BLOCKED || v == API_VERIFY_ERROR) {
		mw_user_clear(&user);
		return;
	}
	if (v != API_VERIFY_OK) {
		if (usable && (v == API_VERIFY_TOTP_MISSING || v == API_VERIFY_WRONG))
			mw_debug("login refused for %s: %s", user.username,
			         v == API_VERIFY_TOTP_MISSING ? "second factor missing" : "wrong");
		login_failed(ctx, req, res, ret == MW_STORE_OK ? name : "");
		if (v == API_VERIFY_TOTP_MISSING || v == API_VERIFY_WRONG_CODE)
			totp_required(res);
		mw_user_clear(&user);
		return;
	}
	if (mw_store_session_list(ctx->store, user.id, now, &live, &nlive, &err) != MW_STORE_OK) {
		api_store_error(res, "counting sessions", &err);
		mw_user_clear(&user);
		return;
	}
	free(live);
	if ((long long)nlive >= mw_config_int(ctx->cfg, MWK_API_MAX_SESSIONS)) {
		api_error(res, 409, "too_many_sessions",
		          "this account already has the most sessions allowed; log out of one");
		mw_user_clear(&user);
		return;
	}
	(void)snprintf(req->actor, sizeof(req->actor), "api:%s", user.username);
	new_session(ctx, req, res, &user, 0, mw_audit_name(MW_AUDIT_SESSION_CREATE));
	mw_user_clear(&user);
}

/* api_session_refresh - POST /sessions/refresh: new token, same end; the old one dies */
void api_session_refresh(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {NULL};
	mw_error err = {{0}};
	if (api_fields_check(req, res, fields) < 0)
		return;
	if (mw_store_session_revoke(ctx->store, req->session.token_hash, &err) != MW_STORE_OK) {
		api_store_error(res, "revoking a session", &err);
		return;
	}
	new_session(ctx, req, res, &req->user, req->session.expires_at,
	            mw_audit_name(MW_AUDIT_SESSION_REFRESH));
}

/* api_session_delete_current - DELETE /sessions/current: log out */
void api_session_delete_current(struct api_ctx *ctx, struct api_request *req,
                                struct api_response *res)
{
	mw_error err = {{0}};
	if (mw_store_session_revoke(ctx->store, req->session.token_hash, &err) != MW_STORE_OK) {
		api_store_error(res, "revoking a session", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_SESSION_DELETE), req->user.username, NULL);
	api_ok(res, 204, NULL);
}

/* api_session_list - GET /sessions: the caller's live sessions */
void api_session_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	struct mw_session *v = NULL;
	size_t n = 0, i;
	json_t *arr;
	mw_error err = {{0}};
	if (api_query_check(req, res, params) < 0)
		return;
	if (mw_store_session_list(ctx->store, req->user.id, mw_now(), &v, &n, &err) !=
	    MW_STORE_OK) {
		api_store_error(res, "listing sessions", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(
		    arr,
		    session_json(&v[i], strcmp(v[i].token_hash, req->session.token_hash) == 0));
	free(v);
	api_ok(res, 200, json_pack("{s:o}", "sessions", arr));
}

/* api_session_delete - DELETE /sessions/{id}: end one of the caller's sessions */
void api_session_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	mw_error err = {{0}};
	int ret = mw_store_session_revoke_id(ctx->store, req->user.id, req->params[0], &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such session");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "revoking a session", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_SESSION_DELETE), req->user.username,
	          json_pack("{s:s}", "session", req->params[0]));
	api_ok(res, 204, NULL);
}

/* api_user_sessions_delete - DELETE /users/{username}/sessions: end all of them (admin) */
void api_user_sessions_delete(struct api_ctx *ctx, struct api_request *req,
                              struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	struct mw_user user;
	unsigned count = 0;
	mw_error err = {{0}};
	int ret = MW_STORE_NOTFOUND;
	if (mw_store_username_normalize(req->params[0], name, sizeof(name), NULL) == 0)
		ret = mw_store_user_get(ctx->store, name, &user, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "reading a user", &err);
		return;
	}
	ret = mw_store_session_revoke_user(ctx->store, user.id, NULL, &count, &err);
	mw_user_clear(&user);
	if (ret != MW_STORE_OK) {
		api_store_error(res, "revoking sessions", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_SESSION_REVOKE_ALL), name,
	          json_pack("{s:i}", "revoked", (int)count));
	api_ok(res, 200, json_pack("{s:i}", "revoked", (int)count));
}
