/*
 * ctl-local.c - mailwardenctl's operations without --api (ctl_local_ops): the store opened
 * by mailwardenctl.c, and mailwarden-policyd's control socket for ratelimit status|reset.
 *
 * Every change is appended to the store's audit log here (actor "cli:LOGIN", client
 * "local"), with the action names and JSON details of lib/mw-audit.def, the same the API
 * writes for the same change. Failures are printed in the words ctl-remote.c reproduces.
 *
 * Public: ctl_local_ops.
 * Diagnostics: "mailwardenctl: ..." on stderr.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-dnsrec.h"
#include "mw-dmarc-report.h"
#include "mw-dkim-rotate.h"
#include "mw-dkim-sign.h"
#include "mw-password.h"
#include "mw-pattern.h"
#include "mw-secret.h"
#include "mw-tagrule.h"

#include <stdlib.h>
#include <string.h>

#define RL_TIMEOUT_MS 10000

/* ---- users ------------------------------------------------------------------------------ */

/* local_hash - the password (generated into generated when NULL) hashed */
static int local_hash(struct mw_ctl *ctl, const char *password, char *generated, size_t gsize,
                      char *hash, size_t hsize)
{
	int ret = EXIT_OK;
	if (password == NULL) {
		ret = ctl_get_password(ctl, PW_GENERATE, generated, gsize);
		password = generated;
	}
	if (ret == EXIT_OK)
		ret = ctl_hash_password(ctl, password, hash, hsize);
	return ret;
}

/* local_user_add - add a user with a password hashed here */
static int local_user_add(struct mw_ctl *ctl, const char *username, const char *password,
                          enum mw_user_role role, enum mw_user_status status,
                          const char *description, char *generated, size_t gsize)
{
	mw_error err = {""};
	char hash[MW_PASSWORD_HASH_MAX];
	int64_t id;
	int ret = local_hash(ctl, password, generated, gsize, hash, sizeof(hash));
	if (ret != EXIT_OK)
		return ret;
	ret = mw_store_user_add(ctl->store, username, hash, status, role, description, &id, &err);
	mw_memzero(hash, sizeof(hash));
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	return ctl_audit(ctl, MW_AUDIT_USER_ADD, username,
	                 json_pack("{s:s,s:s,s:b}", "status", mw_user_status_name(status), "role",
	                           mw_user_role_name(role), "generated_password",
	                           password == NULL));
}

/* local_user_id - the user's row id, or an exit code after a message */
static int local_user_id(struct mw_ctl *ctl, const char *username, int64_t *id_r)
{
	mw_error err = {""};
	struct mw_user u;
	int ret = mw_store_user_get(ctl->store, username, &u, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	*id_r = u.id;
	mw_user_clear(&u);
	return EXIT_OK;
}

/* local_user_exists - EXIT_OK when the user is in the store */
static int local_user_exists(struct mw_ctl *ctl, const char *username)
{
	int64_t id;
	return local_user_id(ctl, username, &id);
}

/* local_user_passwd - a new password; like the API, a reset follows a leak: the user's
   sessions end and their app passwords (which whoever caused the leak may have made) go */
static int local_user_passwd(struct mw_ctl *ctl, const char *username, const char *password,
                             char *generated, size_t gsize, unsigned *sessions_r,
                             unsigned *apppws_r)
{
	mw_error err = {""};
	char hash[MW_PASSWORD_HASH_MAX];
	int64_t uid;
	int ret = local_user_id(ctl, username, &uid);
	if (ret == EXIT_OK)
		ret = local_hash(ctl, password, generated, gsize, hash, sizeof(hash));
	if (ret != EXIT_OK)
		return ret;
	ret = mw_store_user_set_password(ctl->store, username, hash, &err);
	mw_memzero(hash, sizeof(hash));
	if (ret == MW_STORE_OK)
		ret = mw_store_session_revoke_user(ctl->store, uid, NULL, sessions_r, &err);
	if (ret == MW_STORE_OK)
		ret = mw_store_app_password_revoke_all(ctl->store, username, apppws_r, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	return ctl_audit(ctl, MW_AUDIT_USER_PASSWORD, username,
	                 json_pack("{s:b,s:i,s:i}", "generated", password == NULL,
	                           "sessions_revoked", (int)*sessions_r, "app_passwords_revoked",
	                           (int)*apppws_r));
}

/* local_user_set_status - enable or disable: the API's PATCH {"status": ...}, the same
   record */
static int local_user_set_status(struct mw_ctl *ctl, const char *username,
                                 enum mw_user_status status)
{
	mw_error err = {""};
	int ret = mw_store_user_set_status(ctl->store, username, status, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	return ctl_audit(ctl, MW_AUDIT_USER_UPDATE, username,
	                 json_pack("{s:s}", "status", mw_user_status_name(status)));
}

/* local_user_delete - delete a user and what belongs to them */
static int local_user_delete(struct mw_ctl *ctl, const char *username)
{
	mw_error err = {""};
	int ret = mw_store_user_delete(ctl->store, username, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	return ctl_audit(ctl, MW_AUDIT_USER_DELETE, username, NULL);
}

/* local_user_copy - a store user as ctl_user */
static void local_user_copy(const struct mw_user *s, struct ctl_user *u)
{
	memset(u, 0, sizeof(*u));
	u->id = s->id;
	(void)mw_strlcpy(u->username, s->username, sizeof(u->username));
	u->status = s->status;
	u->role = s->role;
	(void)mw_strlcpy(u->description, s->description != NULL ? s->description : "",
	                 sizeof(u->description));
	u->created_at = s->created_at;
	u->updated_at = s->updated_at;
	u->password_changed_at = s->password_changed_at;
	u->locked_until = s->locked_until;
	u->failed_logins = s->failed_logins;
	u->totp = s->has_totp ? 1 : 0;
}

/* local_user_get - a user and their patterns */
static int local_user_get(struct mw_ctl *ctl, const char *username, struct ctl_user *u,
                          char ***patterns_r, size_t *n_r)
{
	mw_error err = {""};
	struct mw_user s;
	int ret = mw_store_user_get(ctl->store, username, &s, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	local_user_copy(&s, u);
	mw_user_clear(&s);
	ret = mw_store_allowed_from_list(ctl->store, username, patterns_r, n_r, &err);
	return ctl_store_exit(ret, &err, username);
}

struct local_list {
	int (*each)(const struct ctl_user *u, void *arg);
	void *arg;
};

/* local_list_one - one store user to the command's callback */
static int local_list_one(const struct mw_user *s, void *arg)
{
	struct local_list *l = arg;
	struct ctl_user u;
	local_user_copy(s, &u);
	return l->each(&u, l->arg);
}

/* local_user_list - the users in id order */
static int local_user_list(struct mw_ctl *ctl, int role, int status, long long after,
                           long long limit, int (*each)(const struct ctl_user *u, void *arg),
                           void *arg)
{
	mw_error err = {""};
	struct mw_user_filter filter = {-1, -1, 0, 0};
	struct local_list l = {each, arg};
	filter.role = role;
	filter.status = status;
	filter.after_id = after;
	filter.limit = (unsigned)limit;
	if (mw_store_user_list(ctl->store, &filter, local_list_one, &l, &err) < 0)
		return ctl_store_exit(MW_STORE_ERROR, &err, "user list");
	return EXIT_OK;
}

/* ---- allowed-From patterns --------------------------------------------------------------- */

/* local_allowed_from_change - add or delete one (normalised) pattern */
static int local_allowed_from_change(struct mw_ctl *ctl, const char *username, const char *canon,
                                     bool add)
{
	mw_error err = {""};
	char what[MW_USERNAME_MAX + MW_PATTERN_MAX + 32];
	int ret = add ? mw_store_allowed_from_add(ctl->store, username, canon, &err)
	              : mw_store_allowed_from_del(ctl->store, username, canon, &err);
	(void)snprintf(what, sizeof(what), "%s: pattern %s", username, canon);
	if (ret == MW_STORE_NOTFOUND) {
		struct mw_user u;
		mw_error err2 = {""};
		int r2 = mw_store_user_get(ctl->store, username, &u, &err2);
		if (r2 == MW_STORE_OK)
			mw_user_clear(&u);
		if (r2 == MW_STORE_NOTFOUND)
			(void)snprintf(what, sizeof(what), "user %s", username);
	}
	ret = ctl_store_exit(ret, &err, what);
	if (ret != EXIT_OK)
		return ret;
	return ctl_audit(ctl, add ? MW_AUDIT_ALLOWED_FROM_ADD : MW_AUDIT_ALLOWED_FROM_DELETE,
	                 username, json_pack("{s:s}", "pattern", canon));
}

/* local_allowed_from_list - a known user's patterns */
static int local_allowed_from_list(struct mw_ctl *ctl, const char *username, char ***patterns_r,
                                   size_t *n_r)
{
	mw_error err = {""};
	int ret = local_user_exists(ctl, username);
	if (ret != EXIT_OK)
		return ret;
	return ctl_store_exit(
	    mw_store_allowed_from_list(ctl->store, username, patterns_r, n_r, &err), &err,
	    username);
}

/* ---- tag rules --------------------------------------------------------------------------- */

/* local_tag_rule_add - store a checked rule */
static int local_tag_rule_add(struct mw_ctl *ctl, const char *username,
                              const struct mw_tag_rule *rule, int64_t *id_r)
{
	mw_error err = {""};
	int ret = mw_store_tag_rule_add(ctl->store, username, rule, id_r, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, ret == MW_STORE_NOTFOUND ? username : "tag rule");
	/* the API's record of the same change */
	return ctl_audit(ctl, MW_AUDIT_TAG_RULE_ADD, username,
	                 json_pack("{s:I,s:s,s:s,s:s,s:s?,s:s?,s:b}", "id", (json_int_t)*id_r,
	                           "field", rule->field, "match",
	                           mw_tagrule_match_name(rule->match), "value", rule->value,
	                           "keyword", rule->keyword, "mailbox", rule->mailbox, "enabled",
	                           rule->enabled));
}

/* local_tag_rule_list - every rule of the user, invalid ones included */
static int local_tag_rule_list(struct mw_ctl *ctl, const char *username,
                               struct mw_tag_rule **rules_r, size_t *n_r)
{
	mw_error err = {""};
	int ret = mw_store_tag_rule_list(ctl->store, username, rules_r, n_r, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, ret == MW_STORE_NOTFOUND ? username : "tag rules");
	return EXIT_OK;
}

/* local_tag_rule_del - delete a rule of a known user */
static int local_tag_rule_del(struct mw_ctl *ctl, const char *username, int64_t id)
{
	mw_error err = {""};
	char what[MW_USERNAME_MAX + 48];
	int ret = local_user_exists(ctl, username);
	if (ret != EXIT_OK)
		return ret;
	ret = mw_store_tag_rule_del(ctl->store, username, id, &err);
	(void)snprintf(what, sizeof(what), "%s: tag rule %lld", username, (long long)id);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, what);
	return ctl_audit(ctl, MW_AUDIT_TAG_RULE_DELETE, username,
	                 json_pack("{s:I}", "id", (json_int_t)id));
}

/* ---- DKIM keys --------------------------------------------------------------------------- */

/* local_dkim_generate - a new RSA key, encrypted with the master key, the domain's active
   key */
static int local_dkim_generate(struct mw_ctl *ctl, const char *domain, const char *selector,
                               unsigned bits, struct mw_dkim_key_row *key_r)
{
	mw_error err = {""};
	mw_str pem, pub;
	int ret;
	memset(key_r, 0, sizeof(*key_r));
	mw_str_init(&pem, 0);
	mw_str_init(&pub, 0);
	if (mw_dkim_generate_rsa(bits, &pem, &pub, &err) < 0) {
		ctl_err("%s", err.msg);
		ret = EXIT_ERROR;
	} else
		ret = ctl_dkim_store_key(ctl, MW_AUDIT_DKIM_GENERATE, domain, selector, &pem,
		                         json_pack("{s:i,s:b}", "bits", (int)bits, "active", true),
		                         key_r);
	if (pem.buf != NULL)
		mw_memzero(pem.buf, pem.cap);
	mw_str_free(&pem);
	mw_str_free(&pub);
	return ret;
}

/* local_dkim_list - the keys (of one domain when domain is not NULL) */
static int local_dkim_list(struct mw_ctl *ctl, const char *domain, struct mw_dkim_key_row **rows_r,
                           size_t *n_r)
{
	mw_error err = {""};
	size_t i;
	int ret = mw_store_dkim_key_list(ctl->store, domain, rows_r, n_r, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "dkim list");
	for (i = 0; i < *n_r; i++) /* never leaves here */
		if ((*rows_r)[i].private_key != NULL) {
			mw_memzero((*rows_r)[i].private_key, strlen((*rows_r)[i].private_key));
			free((*rows_r)[i].private_key);
			(*rows_r)[i].private_key = NULL;
		}
	return EXIT_OK;
}

/* local_dkim_rotate - a rotation run on the store */
static int local_dkim_rotate(struct mw_ctl *ctl, const char *domain, unsigned bits,
                             json_t **events_r)
{
	mw_error err = {""};
	*events_r = json_array();
	if (mw_dkim_rotate_run(ctl->cfg, ctl->store, domain, bits, ctl->actor, "local", *events_r,
	                       &err) < 0) {
		ctl_err("dkim rotate: %s", err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* local_dkim_change - one change of the key DOMAIN/SELECTOR in the store, audited as action */
static int local_dkim_change(struct mw_ctl *ctl, const char *domain, const char *selector,
                             int (*change)(mw_store *store, const char *domain,
                                           const char *selector, mw_error *error_r),
                             enum mw_audit_action action)
{
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 4];
	mw_error err = {""};
	int ret;
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	ret = ctl_store_exit(change(ctl->store, domain, selector, &err), &err, target);
	if (ret == EXIT_OK)
		ret = ctl_audit(ctl, action, target, NULL);
	return ret;
}

/* local_dkim_activate - sign with this key from now on */
static int local_dkim_activate(struct mw_ctl *ctl, const char *domain, const char *selector)
{
	return local_dkim_change(ctl, domain, selector, mw_store_dkim_key_set_active,
	                         MW_AUDIT_DKIM_ACTIVATE);
}

/* local_dkim_delete - delete a key */
static int local_dkim_delete(struct mw_ctl *ctl, const char *domain, const char *selector)
{
	return local_dkim_change(ctl, domain, selector, mw_store_dkim_key_delete,
	                         MW_AUDIT_DKIM_DELETE);
}

/* ---- rate limits ------------------------------------------------------------------------- */

/* local_rl_ask - one request to mailwarden-policyd's control socket (the one client of its
   record format, lib/mw-pdctl.c); the daemon answers only root and its own user */
static int local_rl_ask(struct mw_ctl *ctl, const char *subject, bool reset,
                        struct mw_pdctl_reply *reply)
{
	struct mw_pdctl_request req;
	mw_error err;
	size_t i;
	for (i = 0; subject[i] != '\0'; i++)
		if ((unsigned char)subject[i] <= 0x20 || subject[i] == 0x7f) {
			ctl_err("%s: not a user name or IP address", subject);
			return EXIT_USAGE;
		}
	memset(&req, 0, sizeof(req));
	req.command = reset ? MW_PDCTL_RESET : MW_PDCTL_STATUS;
	if (mw_strlcpy(req.subject, subject, sizeof(req.subject)) < 0) {
		ctl_err("%s: not a user name or IP address", subject);
		return EXIT_USAGE;
	}
	if (mw_pdctl_call(mw_config_str(ctl->cfg, MWK_PD_CONTROL_SOCKET), &req, RL_TIMEOUT_MS,
	                  reply, &err) < 0) {
		ctl_err("policyd %s", err.msg);
		return EXIT_ERROR;
	}
	if (!reply->ok) {
		ctl_err("policyd: %s", reply->error);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* local_rl_policy_add - a new rate policy */
static int local_rl_policy_add(struct mw_ctl *ctl, const struct mw_rate_policy *p, int64_t *id_r)
{
	mw_error err = {""};
	int ret = mw_store_rate_policy_add(ctl->store, p, id_r, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "adding a rate policy");
	return ctl_audit(
	    ctl, MW_AUDIT_RATELIMIT_POLICY_ADD, p->username[0] != '\0' ? p->username : "*",
	    json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s}", "id", (json_int_t)*id_r, "scope", p->scope,
	              "match", p->match, "metric", p->metric, "count", (json_int_t)p->limit_count,
	              "window_seconds", (json_int_t)p->window_seconds, "action", p->action));
}

/* local_rl_policy_list - every rate policy */
static int local_rl_policy_list(struct mw_ctl *ctl, struct mw_rate_policy **v_r, size_t *n_r)
{
	mw_error err = {""};
	return ctl_store_exit(mw_store_rate_policy_list(ctl->store, v_r, n_r, &err), &err,
	                      "listing rate policies");
}

/* local_rl_policy_del - delete a rate policy */
static int local_rl_policy_del(struct mw_ctl *ctl, int64_t id)
{
	mw_error err = {""};
	char target[24];
	int ret = mw_store_rate_policy_del(ctl->store, id, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "deleting a rate policy");
	(void)snprintf(target, sizeof(target), "%lld", (long long)id);
	return ctl_audit(ctl, MW_AUDIT_RATELIMIT_POLICY_DELETE, target, NULL);
}

/* local_dns_records - the records from the configuration and the store's DKIM keys,
   resolved through [milter] dns_servers when check */
static int local_dns_records(struct mw_ctl *ctl, const char *domain, bool check, json_t **set_r)
{
	struct mw_dnsrec_set set;
	mw_error err = {""};
	mw_dns *dns;
	if (mw_dnsrec_build(ctl->cfg, ctl->store, domain, &set, &err) < 0) {
		ctl_err("dns %s: %s", domain, err.msg);
		return EXIT_ERROR;
	}
	if (check) {
		dns = mw_dnsrec_resolver(ctl->cfg, &err);
		if (dns == NULL) {
			ctl_err("dns %s: the resolver cannot be used: %s", domain, err.msg);
			mw_dnsrec_set_free(&set);
			return EXIT_ERROR;
		}
		(void)mw_dnsrec_check(&set, dns, &err);
		mw_dns_free(&dns);
	}
	*set_r = mw_dnsrec_json(&set);
	mw_dnsrec_set_free(&set);
	return EXIT_OK;
}

/* local_dmarc_summary - the received DMARC reports summarised from the store */
static int local_dmarc_summary(struct mw_ctl *ctl, const struct mw_dmarc_filter *f,
                               json_t **summary_r)
{
	struct mw_dmarc_sum_row *rows = NULL;
	size_t n = 0;
	mw_error err = {""};
	int ret = mw_store_dmarc_summary(ctl->store, f, &rows, &n, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "dmarc report");
	*summary_r = mw_dmarc_summary_json(rows, n);
	free(rows);
	return EXIT_OK;
}

const struct ctl_ops ctl_local_ops = {
    .name = "local",
    .user_add = local_user_add,
    .user_exists = local_user_exists,
    .user_passwd = local_user_passwd,
    .user_set_status = local_user_set_status,
    .user_delete = local_user_delete,
    .user_get = local_user_get,
    .user_list = local_user_list,
    .allowed_from_change = local_allowed_from_change,
    .allowed_from_list = local_allowed_from_list,
    .tag_rule_add = local_tag_rule_add,
    .tag_rule_list = local_tag_rule_list,
    .tag_rule_del = local_tag_rule_del,
    .dkim_generate = local_dkim_generate,
    .dkim_list = local_dkim_list,
    .dkim_activate = local_dkim_activate,
    .dkim_delete = local_dkim_delete,
    .dkim_rotate = local_dkim_rotate,
    .rl_ask = local_rl_ask,
    .rl_policy_add = local_rl_policy_add,
    .rl_policy_list = local_rl_policy_list,
    .rl_policy_del = local_rl_policy_del,
    .dns_records = local_dns_records,
    .dmarc_summary = local_dmarc_summary,
};
