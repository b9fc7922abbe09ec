/* api-totp.c - mailwarden-api two-factor login with TOTP (RFC 6238, liboath).
 *
 * Enrolment is self-service: POST /users/{u}/totp {current_password} makes a 160-bit
 * secret and ten recovery codes, answers the otpauth:// URI (issuer mailwarden, account =
 * username) and the codes once, and keeps the enrolment pending until POST
 * /users/{u}/totp/confirm proves the authenticator works. The password is asked again
 * (api_reauth, counted like a login) because whoever enrols holds the second factor: a
 * stolen session must not be able to plant its own. DELETE /users/{u}/totp removes it:
 * the user themself with their password and a current code (or a recovery code), an
 * admin for anyone else with nothing (the admin's own session is the authority there,
 * and removing a lost authenticator is what an admin is asked for).
 *
 * Confirming turns the main password off for every mail service (the passdb query
 * refuses it for a user with confirmed TOTP: app passwords only); the confirm answer
 * says so with main_password_protocols [].
 *
 * State at rest: the whole TOTP state of a user is one JSON object {"k": hex secret,
 * "l": last used time step, "r": [hex SHA-256 of each unused recovery code]}, encrypted
 * with the master key (mw_secret, associated data "totp:USERID", so it cannot be moved to
 * another row) into users.totp_secret; a pending enrolment is stored as "pending:" plus
 * the same text, so has_totp (the store's "starts with v1:") is true only once confirmed.
 * The schema has no columns for the last step or the recovery codes: keeping them inside
 * the encrypted state needs none, and every change goes through mw_store_user_totp_set,
 * a compare-and-swap, so a code or recovery code is accepted once even when two API
 * processes race.
 *
 * Codes: 6 digits, 30 s steps, one step either side accepted; a step at or below the last
 * used one is refused (no replay). Recovery codes are "xxxxx-xxxxx" (about 49 random bits
 * from a 31-character alphabet), compared by hash in constant time and consumed.
 *
 * The state at rest and the check of a code are api-totp-state.c's (the login path in
 * api-guard.c uses them too); this file holds the routes.
 *
 * Public: api_totp_enrol, api_totp_confirm, api_totp_delete.
 * Diagnostics: store and key failures are logged (503); codes, secrets and recovery codes
 * never are.
 */
#include "mw-build.h"
#include "api-totp.h"
#include "mw-audit.h"
#include "mw-log.h"

#include <liboath/oath.h>
#include <sodium.h>
#include <string.h>

/* uri_escape - percent-encode everything but RFC 3986 unreserved characters */
static void uri_escape(mw_str *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			(void)mw_str_appendc(out, (char)c);
		else
			(void)mw_str_appendf(out, "%%%02X", c);
	}
}

/* self_totp - the route's user, who must be the caller, and their TOTP state text (NULL:
   none); on -1 answered (404, 403, 503) and nothing is left to free */
static int self_totp(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                     char *name, struct mw_user *user, char **text_r)
{
	mw_error err = {{0}};
	*text_r = NULL;
	if (api_target_user(ctx, req, res, name, user, true) < 0)
		return -1;
	if (mw_store_user_totp_get(ctx->store, name, text_r, &err) != MW_STORE_OK) {
		mw_user_clear(user);
		api_store_error(res, "reading TOTP state", &err);
		return -1;
	}
	return 0;
}

/* api_totp_enrol - POST /users/{username}/totp {current_password}: a new pending
   enrolment (self only) */
void api_totp_enrol(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"current_password", NULL};
	const char *current = NULL;
	char name[MW_USERNAME_MAX + 1], *text = NULL, *b32 = NULL;
	char codes[TOTP_RECOVERY_N][TOTP_RECOVERY_LEN + 2];
	struct api_totp_state st;
	struct mw_user user;
	mw_master_key mk;
	mw_str out, uri;
	size_t b32len = 0, i, k;
	mw_error err = {{0}};
	json_t *arr;
	int ret;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "current_password", true, MW_PASSWORD_MAX, &current) < 0 ||
	    self_totp(ctx, req, res, name, &user, &text) < 0)
		return;
	/* on already: 409 below, before any password is checked (nothing to guess there) */
	if ((text == NULL || strncmp(text, "v1:", 3) != 0) &&
	    api_reauth(ctx, req, res, current, NULL, "TOTP enrolment") < 0) {
		free(text);
		mw_user_clear(&user);
		return;
	}
	if (text != NULL && strncmp(text, "v1:", 3) == 0) {
		free(text);
		mw_user_clear(&user);
		api_error(res, 409, "totp_active",
		          "two-factor login is already on; turn it off "
		          "first to enrol a new authenticator");
		return;
	}
	if (api_master_key(ctx, res, &mk) < 0) {
		free(text);
		mw_user_clear(&user);
		return;
	}
	memset(&st, 0, sizeof(st));
	randombytes_buf(st.key, sizeof(st.key));
	for (i = 0; i < TOTP_RECOVERY_N; i++) {
		char norm[TOTP_RECOVERY_LEN + 1];
		for (k = 0; k < TOTP_RECOVERY_LEN; k++)
			norm[k] = api_totp_recovery_alphabet[randombytes_uniform(
			    sizeof(api_totp_recovery_alphabet) - 1)];
		norm[k] = '\0';
		api_totp_recovery_hash(norm, st.recovery[i]);
		memcpy(codes[i], norm, 5);
		codes[i][5] = '-';
		memcpy(codes[i] + 6, norm + 5, 5);
		codes[i][11] = '\0';
		mw_memzero(norm, sizeof(norm));
	}
	st.nrecovery = TOTP_RECOVERY_N;
	mw_str_init(&out, 0);
	ret = api_totp_state_encode(&mk, user.id, &st, true, &out, &err) < 0
	          ? MW_STORE_ERROR
	          : mw_store_user_totp_set(ctx->store, name, text, out.buf, &err);
	mw_secret_key_wipe(&mk);
	mw_str_free(&out);
	free(text);
	if (ret != MW_STORE_OK || api_totp_oath_ready() < 0 ||
	    oath_base32_encode((const char *)st.key, sizeof(st.key), &b32, &b32len) != OATH_OK) {
		api_totp_state_clear(&st);
		mw_memzero(codes, sizeof(codes));
		mw_user_clear(&user);
		if (ret == MW_STORE_NOTFOUND)
			api_error(res, 409, "conflict",
			          "the enrolment changed meanwhile; try again");
		else if (ret != MW_STORE_OK)
			api_store_error(res, "storing TOTP state", &err);
		else
			api_error(res, 503, "internal", "cannot encode the secret");
		return;
	}
	api_totp_state_clear(&st);
	while (b32len > 0 && b32[b32len - 1] == '=')
		b32[--b32len] = '\0';
	mw_str_init(&uri, 0);
	(void)mw_str_appends(&uri, "otpauth://totp/" TOTP_ISSUER ":");
	uri_escape(&uri, name);
	(void)mw_str_appendf(&uri,
	                     "?secret=%s&issuer=" TOTP_ISSUER "&algorithm=SHA1&digits=%d&period=%d",
	                     b32, TOTP_DIGITS, TOTP_STEP);
	arr = json_array();
	for (i = 0; i < TOTP_RECOVERY_N; i++)
		json_array_append_new(arr, json_string(codes[i]));
	api_ok(res, 201,
	       json_pack("{s:s,s:s,s:s,s:o}", "status", "pending", "otpauth_uri", uri.buf, "secret",
	                 b32, "recovery_codes", arr));
	json_object_set_new(res->body, "otpauth_qr_svg", api_qr_svg(uri.buf)); /* api-qr.c */
	mw_memzero(codes, sizeof(codes));
	mw_memzero(b32, b32len);
	free(b32);
	mw_memzero(uri.buf, uri.len);
	mw_str_free(&uri);
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_TOTP_ENROL), name, NULL);
	mw_user_clear(&user);
}

/* api_totp_confirm - POST /users/{username}/totp/confirm {code}: activate (self only) */
void api_totp_confirm(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"code", NULL};
	char name[MW_USERNAME_MAX + 1], *text = NULL;
	const char *code;
	struct api_totp_state st;
	struct mw_user user;
	mw_master_key mk;
	mw_str out;
	mw_error err = {{0}};
	bool pending;
	int ret;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "code", true, TOTP_CODE_MAX, &code) < 0 ||
	    self_totp(ctx, req, res, name, &user, &text) < 0)
		return;
	if (text == NULL || strncmp(text, TOTP_PENDING, strlen(TOTP_PENDING)) != 0) {
		free(text);
		mw_user_clear(&user);
		api_error(res, 409, "no_pending_enrolment", "there is no enrolment to confirm");
		return;
	}
	if (api_master_key(ctx, res, &mk) < 0) {
		free(text);
		mw_user_clear(&user);
		return;
	}
	if (api_totp_state_decode(&mk, user.id, text, &st, &pending, &err) < 0) {
		mw_error_log("TOTP state of %s: %s", name, err.msg);
		api_error(res, 503, "internal", "the two-factor state cannot be read");
		goto out;
	}
	if (api_totp_code_use(&st, code, false) < 0) {
		api_error(res, 422, "invalid_code",
		          "the code is not valid (check the "
		          "authenticator's clock)");
		goto out;
	}
	mw_str_init(&out, 0);
	ret = api_totp_state_encode(&mk, user.id, &st, false, &out, &err) < 0
	          ? MW_STORE_ERROR
	          : mw_store_user_totp_set(ctx->store, name, text, out.buf, &err);
	mw_str_free(&out);
	if (ret == MW_STORE_NOTFOUND)
		api_error(res, 409, "conflict", "the enrolment changed meanwhile; try again");
	else if (ret != MW_STORE_OK)
		api_store_error(res, "storing TOTP state", &err);
	else {
		char protocols[MW_PROTOCOLS_MAX + 1] = "";
		api_audit(ctx, req, mw_audit_name(MW_AUDIT_TOTP_CONFIRM), name, NULL);
		if (mw_store_user_main_protocols_get(ctx->store, name, protocols, &err) !=
		    MW_STORE_OK)
			mw_error_log("reading main password protocols of %s: %s", name, err.msg);
		/* from now on the passdb query refuses the main password for every mail
		   service: say so, and what applies again once TOTP is off */
		api_ok(res, 200,
		       json_pack("{s:s,s:s,s:o,s:o,s:s}", "username", name, "status", "active",
		                 "main_password_protocols", json_array(),
		                 "main_password_protocols_without_totp",
		                 api_protocols_json(protocols), "mail_login",
		                 "app passwords only: the main password no longer works for IMAP, "
		                 "POP3, SMTP or any other mail service while TOTP is on"));
	}
out:
	api_totp_state_clear(&st);
	mw_secret_key_wipe(&mk);
	free(text);
	mw_user_clear(&user);
}

/* api_totp_delete - DELETE /users/{username}/totp: self {password, code} (code: only
   when TOTP is active, a pending enrolment needs the password alone), admin {} */
void api_totp_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const self_fields[] = {"password", "code", NULL};
	static const char *const admin_fields[] = {NULL};
	char name[MW_USERNAME_MAX + 1], *text = NULL;
	const char *password = NULL, *code = NULL;
	struct mw_user user;
	mw_error err = {{0}};
	bool self;
	int ret;
	if (api_target_reauth(ctx, req, res, name, &user, self_fields, admin_fields, "password",
	                      TOTP_CODE_MAX, &password, &code, &self) < 0)
		return;
	ret = mw_store_user_totp_get(ctx->store, name, &text, &err);
	if (ret != MW_STORE_OK) {
		api_store_error(res, "reading TOTP state", &err);
		goto out;
	}
	if (text == NULL) {
		api_error(res, 404, "not_found", "two-factor login is not enrolled");
		goto out;
	}
	if (self) {
		/* the password and (TOTP active) a code, consumed: checked and counted like a
		   login (api-guard.c) */
		if (api_reauth(ctx, req, res, password, code, "TOTP removal") < 0) {
			api_audit(ctx, req, mw_audit_name(MW_AUDIT_TOTP_DISABLE_FAILED), name,
			          NULL);
			goto out;
		}
		free(text);
		text = NULL;
		/* the code was consumed: remove whatever state is there now */
		if (mw_store_user_totp_get(ctx->store, name, &text, &err) != MW_STORE_OK) {
			api_store_error(res, "reading TOTP state", &err);
			goto out;
		}
	}
	ret =
	    text == NULL ? MW_STORE_OK : mw_store_user_totp_set(ctx->store, name, text, NULL, &err);
	if (ret == MW_STORE_NOTFOUND)
		api_error(res, 409, "conflict",
		          "the two-factor state changed meanwhile; try again");
	else if (ret != MW_STORE_OK)
		api_store_error(res, "removing TOTP state", &err);
	else {
		api_audit(ctx, req, mw_audit_name(MW_AUDIT_TOTP_DISABLE), name,
		          json_pack("{s:b}", "by_admin", !self));
		api_ok(res, 204, NULL);
	}
out:
	free(text);
	mw_user_clear(&user);
}
