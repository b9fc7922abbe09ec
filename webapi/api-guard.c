/* api-guard.c - mailwarden-api: the one place that checks a password or code and counts a
 * failure (issue 9).
 *
 * Every credential the API checks goes through api_verify: the login (POST /sessions),
 * re-authentication with current_password (password change, TOTP enrolment and removal,
 * app password creation), TOTP codes and recovery codes. The internal routes' shared
 * secret goes through api_guard_secret_*, and Dovecot's auth policy reports of IMAP/SMTP
 * logins through api_guard_mail_*. So no path can guess faster than another.
 *
 * What is counted, in the store (table auth_failures, so every API process shares it):
 *   - (account, client network): key "acct:" + 32 hex digits of SHA-256 of the login name
 *     as given after normalising (a name that is no account gets a row too, so a delay
 *     never tells whether an account exists). After login_max_failures failures in a row
 *     the pair must wait login_delay, doubled with each further failure up to
 *     login_delay_max (429 with Retry-After, nothing verified). Only that pair waits: the
 *     owner on another network is not slowed, and an attacker cannot lock the owner out.
 *     A right password from that network forgets the pair's failures; a pair silent for
 *     login_failure_window starts again.
 *   - (client network) alone, key "client": ip_max_failures failures within
 *     login_lock_time (any names) refuse that network for login_lock_time.
 *   - the account from every network: when the failures of all its pairs within
 *     login_failure_window reach login_account_ceiling, mw_alert names the account (never
 *     a password) and, with login_account_lock = yes, users.locked_until is set for
 *     login_lock_time (then the owner is refused too: the operator chose that).
 *     users.failed_logins shows that total.
 * A client network is the address with login_ipv4_prefix / login_ipv6_prefix bits kept
 * (IPv4-mapped IPv6 counts as IPv4): one IPv6 client owns a whole /64, so counting its
 * addresses one by one would give it 2^64 fresh starts. A missing or unparsable
 * REMOTE_ADDR is the network "unknown", shared by all such clients.
 *
 * A missing TOTP code is not a guess and is not counted; a wrong one is, like a wrong
 * password. A login to an account that may not log in (disabled, or locked at the
 * ceiling) is counted even with the right password, so the delays cannot tell a guesser
 * that a guess was right. A store error while counting refuses (503): a guard that cannot count
 * must not let the guess through uncounted.
 *
 * Public: api_verify, api_reauth, api_guard_secret_blocked, api_guard_secret_failed,
 * api_guard_mail_wait, api_guard_mail_report.
 * Diagnostics: failures are logged at info (name escaped, client address), blocks at
 * warning, the ceiling with mw_alert; passwords, codes and secrets never are.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-audit.h"
#include "mw-log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define GUARD_KEY_MAX   MW_AUTH_FAIL_KEY_MAX
#define GUARD_NET_MAX   MW_AUTH_FAIL_NET_MAX
#define GUARD_CLIENT    "client"
#define GUARD_INTERNAL  "internal"
#define GUARD_SHIFT_MAX 40 /* 2^40 s is past any login_delay_max */

/* request_net - the client network of the request */
static void request_net(struct api_ctx *ctx, const char *ip, char out[GUARD_NET_MAX + 1])
{
	api_client_net(ip, (int)mw_config_int(ctx->cfg, MWK_API_LOGIN_IPV4_PREFIX),
	               (int)mw_config_int(ctx->cfg, MWK_API_LOGIN_IPV6_PREFIX), out,
	               GUARD_NET_MAX + 1);
}

/* account_key - "acct:" and 32 hex digits of SHA-256 of the login name */
static void account_key(const char *name, char out[GUARD_KEY_MAX + 1])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	char hex[crypto_hash_sha256_BYTES * 2 + 1];
	crypto_hash_sha256(d, (const unsigned char *)name, strlen(name));
	(void)sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	(void)snprintf(out, GUARD_KEY_MAX + 1, "acct:%.32s", hex);
}

/* pair_delay - the wait owed after failures in a row by an (account, network) pair */
static int64_t pair_delay(struct api_ctx *ctx, int64_t failures)
{
	int64_t free_n = mw_config_int(ctx->cfg, MWK_API_LOGIN_MAX_FAILURES);
	int64_t base = mw_config_int(ctx->cfg, MWK_API_LOGIN_DELAY);
	int64_t max = mw_config_int(ctx->cfg, MWK_API_LOGIN_DELAY_MAX);
	int64_t shift = failures - free_n;
	if (failures < free_n)
		return 0;
	if (shift > GUARD_SHIFT_MAX)
		shift = GUARD_SHIFT_MAX;
	return base > (max >> shift) ? max : base << shift;
}

/* wait_of - seconds key/net must still wait (0: may try, -1: store error in err) */
static int64_t wait_of(struct api_ctx *ctx, const char *key, const char *net, int64_t now,
                       mw_error *err)
{
	struct mw_auth_fail row;
	int64_t until;
	int ret = mw_store_auth_fail_get(ctx->store, key, net, &row, err);
	if (ret == MW_STORE_NOTFOUND)
		return 0;
	if (ret != MW_STORE_OK)
		return -1;
	if (strncmp(key, "acct:", 5) == 0) {
		if (now - row.last_at >= mw_config_int(ctx->cfg, MWK_API_LOGIN_FAILURE_WINDOW))
			return 0;
		until = row.last_at + pair_delay(ctx, row.failures);
	} else {
		int64_t window = mw_config_int(ctx->cfg, MWK_API_LOGIN_LOCK_TIME);
		if (row.failures < mw_config_int(ctx->cfg, MWK_API_IP_MAX_FAILURES) ||
		    now - row.last_at >= window)
			return 0;
		until = row.last_at + window;
	}
	return until > now ? until - now : 0;
}

/* too_many - answer 429 with Retry-After */
static void too_many(struct api_response *res, int64_t wait, const char *msg)
{
	(void)snprintf(res->retry_after, sizeof(res->retry_after), "%lld", (long long)wait);
	api_error(res, 429, "too_many_attempts", "%s; try again in %lld s", msg, (long long)wait);
}

/* count_network - one failure of key ("client" or "internal") from net */
static int count_network(struct api_ctx *ctx, const char *key, const char *net, int64_t now,
                         mw_error *err)
{
	int64_t window = mw_config_int(ctx->cfg, MWK_API_LOGIN_LOCK_TIME);
	struct mw_auth_fail row;
	if (mw_store_auth_fail_add(ctx->store, key, net, now, now - window, &row, err) !=
	    MW_STORE_OK)
		return -1;
	if (row.failures == mw_config_int(ctx->cfg, MWK_API_IP_MAX_FAILURES))
		mw_warn("client network %s refused for %llds after %lld failures (%s)", net,
		        (long long)window, (long long)row.failures, key);
	return 0;
}

/* count_account - one failure of the account named name (user: its row, NULL when no
   such account) from net: the pair's delay, the account's total and ceiling */
static int count_account(struct api_ctx *ctx, const char *name, const struct mw_user *user,
                         const char *net, int64_t now, mw_error *err)
{
	int64_t window = mw_config_int(ctx->cfg, MWK_API_LOGIN_FAILURE_WINDOW);
	int64_t ceiling = mw_config_int(ctx->cfg, MWK_API_LOGIN_ACCOUNT_CEILING);
	int64_t lock = mw_config_int(ctx->cfg, MWK_API_LOGIN_LOCK_TIME), total = 0, nets = 0;
	int64_t until = user != NULL ? user->locked_until : 0, delay;
	char key[GUARD_KEY_MAX + 1], safe[MW_USERNAME_MAX * 4 + 8];
	struct mw_auth_fail row;
	account_key(name, key);
	if (mw_store_auth_fail_add(ctx->store, key, net, now, now - window, &row, err) !=
	    MW_STORE_OK)
		return -1;
	if (row.failures == 1) /* a new pair: a good moment to drop the stale ones */
		(void)mw_store_auth_fail_prune(ctx->store, now - (window > lock ? window : lock),
		                               NULL);
	delay = pair_delay(ctx, row.failures);
	if (delay > 0)
		mw_warn("logins for %s from %s delayed %llds after %lld failures in a row",
		        mw_log_value(safe, sizeof(safe), name, strlen(name)), net, (long long)delay,
		        (long long)row.failures);
	if (user == NULL)
		return 0;
	if (mw_store_auth_fail_sum(ctx->store, key, now - window, &total, &nets, err) !=
	    MW_STORE_OK)
		return -1;
	if (total >= ceiling && user->failed_logins >= ceiling &&
	    mw_config_bool(ctx->cfg, MWK_API_LOGIN_ACCOUNT_LOCK) && until <= now) {
		/* still over the ceiling when the lock ran out: lock again (alerted already) */
		until = now + lock;
		mw_warn("account %s locked again: %lld failed logins within %llds",
		        mw_log_value(safe, sizeof(safe), name, strlen(name)), (long long)total,
		        (long long)window);
	}
	if (total >= ceiling && user->failed_logins < ceiling) {
		bool do_lock = mw_config_bool(ctx->cfg, MWK_API_LOGIN_ACCOUNT_LOCK);
		if (do_lock)
			until = now + lock;
		mw_alert("account %s: %lld failed logins from %lld client networks within %llds "
		         "(login_account_ceiling %lld)%s",
		         mw_log_value(safe, sizeof(safe), name, strlen(name)), (long long)total,
		         (long long)nets, (long long)window, (long long)ceiling,
		         do_lock ? "; account locked" : "; not locked (login_account_lock = no)");
	}
	if (mw_store_user_set_login_state(ctx->store, user->username,
	                                  total > INT32_MAX ? INT32_MAX : (int)total, until,
	                                  err) == MW_STORE_ERROR)
		return -1;
	return 0;
}

/* forget_account - a right password for name from net: the pair starts again */
static int forget_account(struct api_ctx *ctx, const char *name, const struct mw_user *user,
                          const char *net, int64_t now, mw_error *err)
{
	char key[GUARD_KEY_MAX + 1];
	int64_t total = 0, nets = 0;
	account_key(name, key);
	if (mw_store_auth_fail_clear(ctx->store, key, net, err) != MW_STORE_OK)
		return -1;
	if (user == NULL || user->failed_logins == 0)
		return 0;
	if (mw_store_auth_fail_sum(ctx->store, key,
	                           now - mw_config_int(ctx->cfg, MWK_API_LOGIN_FAILURE_WINDOW),
	                           &total, &nets, err) != MW_STORE_OK)
		return -1;
	return mw_store_user_set_login_state(ctx->store, user->username,
	                                     total > INT32_MAX ? INT32_MAX : (int)total,
	                                     user->locked_until, err) == MW_STORE_ERROR
	           ? -1
	           : 0;
}

/* api_verify - check password (and, when the user has TOTP on and need_code, code: a
   6-digit code or a recovery code, consumed when right) for the account named name (user
   NULL: no such account; usable false: the account may not log in now, so the answer is
   WRONG, and counted, whatever was given). what names the check in the log ("login",
   "password change"...). BLOCKED and ERROR set res. */
int api_verify(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
               const char *name, const struct mw_user *user, bool usable, const char *password,
               const char *code, bool need_code, const char *what)
{
	const char *ip = req->remote_addr != NULL ? req->remote_addr : "";
	char net[GUARD_NET_MAX + 1], key[GUARD_KEY_MAX + 1], safe[MW_USERNAME_MAX * 4 + 8];
	int64_t now = mw_now(), wait;
	mw_error err = {{0}};
	int ok, second = API_TOTP_OK;
	request_net(ctx, req->remote_addr, net);
	account_key(name, key);
	if ((wait = wait_of(ctx, GUARD_CLIENT, net, now, &err)) > 0) {
		too_many(res, wait, "too many failed logins from this network");
		return API_VERIFY_BLOCKED;
	}
	if (wait == 0 && (wait = wait_of(ctx, key, net, now, &err)) > 0) {
		too_many(res, wait, "too many failed attempts for this account from this network");
		return API_VERIFY_BLOCKED;
	}
	if (wait < 0) {
		api_store_error(res, "reading failed logins", &err);
		return API_VERIFY_ERROR;
	}
	/* always one verification of about the same cost, account or not */
	ok = mw_password_verify(user != NULL ? user->password : ctx->dummy_hash,
	                        password != NULL ? password : "", NULL);
	if (ok == 1 && user == NULL)
		ok = 0;
	if (ok == 1 && usable && need_code && user->has_totp) {
		second = api_totp_login(ctx, res, user, code);
		if (second == API_TOTP_ERROR)
			return API_VERIFY_ERROR;
		if (second == API_TOTP_MISSING)
			return API_VERIFY_TOTP_MISSING; /* not a guess: not counted */
		if (second == API_TOTP_WRONG)
			ok = 0;
	}
	if (ok == 1 && usable) {
		if (forget_account(ctx, name, user, net, now, &err) < 0)
			mw_error_log("forgetting failed logins: %s", err.msg);
		return API_VERIFY_OK;
	}
	/* an account that may not log in (disabled, locked) is counted whatever was given:
	   were a right password not counted, the delays would tell a guesser it was right */
	mw_info("%s failed for %s from %s: %s", what,
	        mw_log_value(safe, sizeof(safe), name, strlen(name)), ip,
	        user == NULL               ? "no such user"
	        : !usable                  ? "account not usable (disabled or locked)"
	        : second == API_TOTP_WRONG ? "wrong second factor"
	                                   : "wrong password");
	if (count_network(ctx, GUARD_CLIENT, net, now, &err) < 0 ||
	    count_account(ctx, name, user, net, now, &err) < 0) {
		api_store_error(res, "counting a failed login", &err);
		return API_VERIFY_ERROR;
	}
	return second == API_TOTP_WRONG ? API_VERIFY_WRONG_CODE : API_VERIFY_WRONG;
}

/* api_guard_secret_blocked - 429 when the client network sent too many wrong internal
   secrets (or 503 when the store cannot say); 0 when it may try */
int api_guard_secret_blocked(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char net[GUARD_NET_MAX + 1];
	mw_error err = {{0}};
	int64_t wait;
	request_net(ctx, req->remote_addr, net);
	wait = wait_of(ctx, GUARD_INTERNAL, net, mw_now(), &err);
	if (wait < 0) {
		api_store_error(res, "reading failed secrets", &err);
		return -1;
	}
	if (wait > 0) {
		too_many(res, wait, "too many wrong secrets from this network");
		return -1;
	}
	return 0;
}

/* api_guard_secret_failed - count a wrong internal secret from the request's network */
void api_guard_secret_failed(struct api_ctx *ctx, struct api_request *req)
{
	char net[GUARD_NET_MAX + 1];
	mw_error err = {{0}};
	request_net(ctx, req->remote_addr, net);
	mw_info("wrong internal secret from %s", req->remote_addr != NULL ? req->remote_addr : "");
	if (count_network(ctx, GUARD_INTERNAL, net, mw_now(), &err) < 0)
		mw_error_log("counting a wrong internal secret: %s", err.msg);
}

/* api_guard_mail_wait - seconds the account name must still wait from ip (a mail login
   about to be checked by Dovecot); -1 on a store error */
int64_t api_guard_mail_wait(struct api_ctx *ctx, const char *name, const char *ip)
{
	char net[GUARD_NET_MAX + 1], key[GUARD_KEY_MAX + 1];
	mw_error err = {{0}};
	int64_t wait;
	request_net(ctx, ip, net);
	account_key(name, key);
	wait = wait_of(ctx, key, net, mw_now(), &err);
	if (wait < 0)
		mw_error_log("reading failed logins: %s", err.msg);
	return wait;
}

/* api_guard_mail_report - Dovecot's report of a mail login of name from ip: a failure is
   counted like an API one (the pair and the account, not the per-network throttle of API
   logins); a success with the main password (main: no app password id) forgets the pair */
void api_guard_mail_report(struct api_ctx *ctx, const char *name, const char *ip, bool success,
                           bool main)
{
	char net[GUARD_NET_MAX + 1], safe[MW_USERNAME_MAX * 4 + 8];
	struct mw_user user;
	mw_error err = {{0}};
	int64_t now = mw_now();
	int ret;
	if (success && !main)
		return; /* an app password says nothing about guesses of the main one */
	request_net(ctx, ip, net);
	memset(&user, 0, sizeof(user));
	ret = mw_store_user_get(ctx->store, name, &user, &err);
	if (ret == MW_STORE_ERROR) {
		mw_error_log("reading a user: %s", err.msg);
		return;
	}
	if (!success)
		mw_info("mail login failed for %s from %s",
		        mw_log_value(safe, sizeof(safe), name, strlen(name)), ip);
	if ((success
	         ? forget_account(ctx, name, ret == MW_STORE_OK ? &user : NULL, net, now, &err)
	         : count_account(ctx, name, ret == MW_STORE_OK ? &user : NULL, net, now, &err)) < 0)
		mw_error_log("recording a mail login: %s", err.msg);
	mw_user_clear(&user);
}

/* api_reauth - the caller proves again who they are before a change a stolen session
   must not make: current_password, and code when TOTP is on, checked and counted by
   api_verify. 0 when right; -1 with res set (403 wrong, 429 blocked, 503). */
int api_reauth(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
               const char *password, const char *code, const char *what)
{
	int v = api_verify(ctx, req, res, req->user.username, &req->user, true, password, code,
	                   true, what);
	if (v == API_VERIFY_OK)
		return 0;
	if (v == API_VERIFY_BLOCKED || v == API_VERIFY_ERROR)
		return -1;
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_USER_REAUTH_FAILED), req->user.username,
	          json_pack("{s:s}", "for", what));
	if (v == API_VERIFY_TOTP_MISSING) {
		api_error(res, 403, "totp_required",
		          "two-factor login is on: give code (a 6-digit "
		          "code or a recovery code) with current_password");
		return -1;
	}
	if (req->user.has_totp)
		api_error(res, 403, "wrong_credentials", "the password or the code is wrong");
	else
		api_error(res, 403, "wrong_password", "the current password is wrong");
	return -1;
}
