/* api-authpolicy.c - mailwarden-api: Dovecot's auth policy hook: app password last use and
 * mail-login failures counted with the API's lockouts.
 *
 * Dovecot's passdb sql only reads the store, so it cannot stamp app_passwords.last_used_at and
 * last_ip itself. Its auth policy hook can tell us: with auth_policy_report_after_auth = yes
 * Dovecot POSTs a JSON object to auth_policy_server_url?command=report after every
 * authentication (IMAP logins and Postfix's SASL alike), built from
 * auth_policy_request_attributes and carrying "success". The app password passdb returns
 * the matching row's id as the extra field mailwarden_app_password_id, which the attributes
 * copy into the report (app_password_id=%{passdb:mailwarden_app_password_id}); a login with
 * the main password leaves it empty. So the report names the exact credential used and no
 * password (nor a hash of one) travels to the API.
 *
 * Route: POST /api/v1/internal/auth-policy?command=allow|report (no session). The caller
 * must send Authorization: Bearer SECRET with [api] auth_policy_secret (Dovecot's
 * auth_policy_server_api_header); both are hashed and compared in constant time. Empty
 * secret: 403 (hook off); a secret under 16 characters is refused as configured (403 and a
 * warning). A missing or wrong secret is a 401 counted per client network (api-guard.c):
 * after ip_max_failures within login_lock_time that network gets 429 before the secret is
 * even compared. The route is for Dovecot on this host only: the sample nginx config
 * allows only loopback to /api/v1/internal/.
 *
 * Lockouts shared with mail logins: every report (success or not) is counted in the same
 * (account, client network) state as API logins (api_guard_mail_report): a failed IMAP or
 * SMTP login slows that pair's next API and mail logins, a success with the main password
 * forgets the pair's failures (one with an app password does not: it proves nothing about
 * the main password). With auth_policy_check_before_auth = yes, Dovecot asks
 * command=allow before checking a password, and the answer is {"status":-1} (refuse) for
 * an account that must still wait from that client network, {"status":0} otherwise; a
 * store error, an unknown name or an unparsable address is accepted, so the hook can
 * slow an attacker's network but never lock the owner out of mail. Keep
 * auth_policy_reject_on_fail = no (the API being down must not stop mail) and
 * auth_policy_check_after_auth = no.
 *
 * Report fields used: success (boolean, required), user (the login, at most
 * MW_USERNAME_MAX bytes), app_password_id (decimal id as a string or number; "" or absent:
 * not an app password), remote (client address; anything inet_pton refuses is recorded as
 * unknown). Other members (protocol, tls, policy_reject, ...) are ignored. Only a
 * successful login with an app password id changes the store; the answer's "recorded"
 * says whether it did.
 *
 * Public: api_auth_policy.
 * Diagnostics: a wrong secret is a 401 (logged at info with the client address); a store
 * error while recording is logged and still answered with status 0. The secret is never
 * logged.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_POLICY_SECRET_MIN 16
#define AUTH_POLICY_REMOTE_MAX 1024 /* longer than any address: refused as a field */

/* secret_check - is the request's bearer the configured secret? 0 yes; 1 a missing or
   wrong secret (401: counted as a guess); -1 the hook is off or misconfigured (403) */
static int secret_check(const char *secret, const struct api_request *req, struct api_response *res)
{
	unsigned char want[crypto_hash_sha256_BYTES], got[crypto_hash_sha256_BYTES];
	const char *auth = req->authorization;
	size_t len = strlen(secret);
	int diff;
	if (len == 0) {
		api_error(res, 403, "forbidden",
		          "the auth policy hook is off ([api] auth_policy_secret is empty)");
		return -1;
	}
	if (len < AUTH_POLICY_SECRET_MIN) {
		mw_warn("[api] auth_policy_secret is shorter than %d characters: the auth policy "
		        "hook is refused until it is longer",
		        AUTH_POLICY_SECRET_MIN);
		api_error(res, 403, "forbidden", "the auth policy hook is misconfigured");
		return -1;
	}
	if (auth == NULL || mw_ascii_strncasecmp(auth, "Bearer ", 7) != 0) {
		api_error(res, 401, "unauthenticated",
		          "the auth policy secret is required (Authorization: Bearer SECRET)");
		return 1;
	}
	/* equal-length digests: the comparison time says nothing about the secret */
	crypto_hash_sha256(want, (const unsigned char *)secret, len);
	crypto_hash_sha256(got, (const unsigned char *)auth + 7, strlen(auth + 7));
	diff = sodium_memcmp(want, got, sizeof(want));
	sodium_memzero(want, sizeof(want));
	if (diff != 0) {
		api_error(res, 401, "invalid_secret", "the auth policy secret is not valid");
		return 1;
	}
	return 0;
}

/* parse_id - app_password_id: 1 and *id_r for an id, 0 when absent or "", -1 (a 422) */
static int parse_id(struct api_request *req, struct api_response *res, int64_t *id_r)
{
	json_t *v = json_object_get(req->json, "app_password_id");
	const char *s;
	char *end;
	long long n;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		*id_r = (int64_t)json_integer_value(v);
		return 1;
	}
	s = json_string_value(v);
	if (s != NULL && s[0] == '\0')
		return 0;
	if (s != NULL && s[0] >= '1' && s[0] <= '9' && strlen(s) == json_string_length(v) &&
	    strlen(s) <= 19) {
		errno = 0;
		n = strtoll(s, &end, 10);
		if (*end == '\0' && errno == 0) {
			*id_r = (int64_t)n;
			return 1;
		}
	}
	api_error(res, 422, "invalid_field",
	          "field app_password_id must be a positive decimal id, \"\" or absent");
	return -1;
}

/* remote_address - the report's client address if it is one, "" otherwise */
static int remote_address(struct api_request *req, struct api_response *res,
                          char out[MW_CLIENT_IP_MAX + 1])
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *s;
	out[0] = '\0';
	if (api_field_string(req, res, "remote", false, AUTH_POLICY_REMOTE_MAX, &s) < 0)
		return -1;
	if (s != NULL && strlen(s) <= MW_CLIENT_IP_MAX &&
	    (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1))
		(void)mw_strlcpy(out, s, MW_CLIENT_IP_MAX + 1);
	return 0;
}

/* answer - Dovecot's "accept" (status 0); reports also say whether something was stored */
static void answer(struct api_response *res, int recorded)
{
	json_t *body = json_pack("{s:i,s:s}", "status", 0, "msg", "");
	if (recorded >= 0)
		json_object_set_new(body, "recorded", json_boolean(recorded));
	api_ok(res, 200, body);
}

/* allow - Dovecot's check before authentication: refuse (status -1) a login of an account
   from a client network that must still wait after failed logins (api-guard.c); accept
   everything else, including what cannot be judged (no user, an unparsable address: the
   network "unknown"), since this hook must never lock owners out of their mail */
static void allow(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1], ip[MW_CLIENT_IP_MAX + 1];
	const char *user = NULL;
	int64_t wait;
	json_t *body;
	if (api_field_string(req, res, "user", false, MW_USERNAME_MAX, &user) < 0 ||
	    remote_address(req, res, ip) < 0)
		return;
	if (user == NULL || mw_store_username_normalize(user, name, sizeof(name), NULL) < 0) {
		answer(res, -1);
		return;
	}
	wait = api_guard_mail_wait(ctx, name, ip);
	if (wait <= 0) {
		answer(res, -1);
		return;
	}
	body = json_pack("{s:i,s:s,s:I}", "status", -1, "msg",
	                 "too many failed logins from this network, try again later", "wait",
	                 (json_int_t)wait);
	api_ok(res, 200, body);
}

/* api_auth_policy - POST /internal/auth-policy?command=allow|report (Dovecot's policy hook) */
void api_auth_policy(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {"command", NULL};
	char name[MW_USERNAME_MAX + 1], ip[MW_CLIENT_IP_MAX + 1], safe[128];
	const char *command, *user;
	json_t *success;
	mw_error err = {{0}};
	int64_t id = 0;
	int ret;
	/* a network that sent too many wrong secrets is refused before the secret is even
	   compared: the secret cannot be guessed faster than login_lock_time allows */
	if (api_guard_secret_blocked(ctx, req, res) < 0)
		return;
	ret = secret_check(mw_config_str(ctx->cfg, MWK_API_AUTH_POLICY_SECRET), req, res);
	if (ret == 1)
		api_guard_secret_failed(ctx, req);
	if (ret != 0 || api_query_check(req, res, params) < 0)
		return;
	(void)mw_strlcpy(req->actor, "api:dovecot-auth-policy", sizeof(req->actor));
	command = api_query_get(req, "command");
	if (command == NULL || strcmp(command, "allow") == 0) {
		allow(ctx, req, res);
		return;
	}
	if (strcmp(command, "report") != 0) {
		api_error(res, 422, "invalid_parameter",
		          "query parameter command must be allow or report");
		return;
	}
	success = json_object_get(req->json, "success");
	if (!json_is_boolean(success)) {
		api_error(res, 422, "invalid_field", "field success must be true or false");
		return;
	}
	if ((ret = parse_id(req, res, &id)) < 0)
		return;
	if (api_field_string(req, res, "user", false, MW_USERNAME_MAX, &user) < 0 ||
	    remote_address(req, res, ip) < 0)
		return;
	if (user == NULL || mw_store_username_normalize(user, name, sizeof(name), NULL) < 0) {
		if (json_is_true(success) && ret != 0) {
			api_error(res, 422, "missing_field", "field user is required");
			return;
		}
		answer(res, 0);
		return;
	}
	/* every mail login counts in the same (account, network) state as API logins:
	   failures slow that pair, a main-password success forgets its failures */
	api_guard_mail_report(ctx, name, ip, json_is_true(success), ret == 0);
	if (!json_is_true(success) || ret == 0) {
		answer(res, 0); /* a failed login, or the main password: nothing to stamp */
		return;
	}
	ret = mw_store_app_password_used(ctx->store, name, id, mw_now(), ip, &err);
	if (ret == MW_STORE_ERROR)
		mw_error_log("recording the use of app password %lld of %s: %s", (long long)id,
		             mw_log_value(safe, sizeof(safe), name, strlen(name)), err.msg);
	else if (ret == MW_STORE_NOTFOUND)
		mw_debug("auth policy report: %s has no app password %lld (deleted since?)",
		         mw_log_value(safe, sizeof(safe), name, strlen(name)), (long long)id);
	answer(res, ret == MW_STORE_OK);
}
