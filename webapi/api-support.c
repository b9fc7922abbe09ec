/*
 * api-support.c - mailwarden-api: what every handler module uses and nothing else owns:
 * the audit entry of a change, the answer to a store error, the master key, the route's
 * {username} user, the mail protocols field of users and app passwords.
 *
 * Every api-*.c module may call these; this file calls none of them (it depends only on
 * lib/ and api-http.c's api_error), so the handler modules depend on it in one direction.
 *
 * Public: api_store_error, api_store_answered, api_audit, api_master_key, api_target_user,
 * api_target_reauth, api_protocols_parse, api_protocols_json.
 * Diagnostics: a store error and a master key that cannot be read are logged with the
 * reason and answered 503 (store_unavailable, master_key_unavailable) without it; a failed
 * audit append is logged. A store error also makes the component api_store degraded
 * (lib/mw-degraded.c: event=degraded once, shared by the workers); api_store_answered,
 * called where every authenticated request has read the store, ends it (event=recovered).
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-degraded.h"
#include "mw-log.h"

#include <stdlib.h>
#include <string.h>

/* api_store_error - answer 503 for a store that failed, logging why */
void api_store_error(struct api_response *res, const char *what, const mw_error *err)
{
	mw_error_log("store error while %s: %s", what, err->msg);
	(void)mw_degraded_enter(MW_DEGRADED_API_STORE, "store_error", err->msg);
	api_error(res, 503, "store_unavailable", "the store is unavailable, try again later");
}

/* api_store_answered - the store answered a request: api_store is not degraded (any more) */
void api_store_answered(void)
{
	(void)mw_degraded_leave(MW_DEGRADED_API_STORE, "the store answered a request");
}

/* api_audit - append an audit entry for a change (actor api:USER, client IP). The details
   are stored text, not an answer: keys sorted (JSON_SORT_KEYS), byte for byte what
   mailwardenctl (ctl_audit) and the DKIM rotation (lib/mw-dkim-rotate.c) store for the same
   change, which api_json_render (insertion order) would not give. */
void api_audit(struct api_ctx *ctx, struct api_request *req, const char *action, const char *target,
               json_t *details)
{
	char *text = details != NULL ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	mw_error err = {{0}};
	if (mw_store_audit_append(ctx->store, req->actor, action, target,
	                          req->remote_addr != NULL ? req->remote_addr : "", text,
	                          &err) != MW_STORE_OK)
		mw_error_log("audit append failed (%s %s): %s", req->actor, action, err.msg);
	free(text);
	if (details != NULL)
		json_decref(details);
}

/* api_target_user - the route's {username} normalised into name and loaded into user (404
   unknown; with self_only, 403 unless it is the caller). When it names the caller, the row
   api_authenticate read in this same request is copied instead of read again. */
int api_target_user(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                    char *name, struct mw_user *user, bool self_only)
{
	mw_error err = {{0}};
	int ret = MW_STORE_NOTFOUND;
	bool named =
	    mw_store_username_normalize(req->params[0], name, MW_USERNAME_MAX + 1, NULL) == 0;
	memset(user, 0, sizeof(*user));
	if (named && req->authed && strcmp(name, req->user.username) == 0) {
		*user = req->user;
		user->password = req->user.password != NULL ? mw_strdup(req->user.password) : NULL;
		user->description =
		    req->user.description != NULL ? mw_strdup(req->user.description) : NULL;
		ret = MW_STORE_OK;
	} else if (named) {
		ret = mw_store_user_get(ctx->store, name, user, &err);
	}
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return -1;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "reading a user", &err);
		return -1;
	}
	if (self_only && user->id != req->user.id) {
		mw_user_clear(user);
		api_error(res, 403, "forbidden", "only the user themself can do this");
		return -1;
	}
	return 0;
}

/* api_target_reauth - the target user and, when it is the caller, the password and code to
   check again (a stolen session alone must not do what needs them) */
int api_target_reauth(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                      char *name, struct mw_user *user, const char *const *self_fields,
                      const char *const *admin_fields, const char *pw_field, size_t code_max,
                      const char **password_r, const char **code_r, bool *self_r)
{
	if (api_target_user(ctx, req, res, name, user, false) < 0)
		return -1;
	*self_r = user->id == req->user.id;
	if (api_fields_check(req, res, *self_r ? self_fields : admin_fields) < 0 ||
	    (*self_r &&
	     (api_field_string(req, res, pw_field, true, MW_PASSWORD_MAX, password_r) < 0 ||
	      api_field_string(req, res, "code", false, code_max, code_r) < 0))) {
		mw_user_clear(user);
		return -1;
	}
	return 0;
}

/* api_master_key - load the master key (config key master_key); 503 when it cannot be */
int api_master_key(struct api_ctx *ctx, struct api_response *res, mw_master_key *key_r)
{
	mw_error err = {{0}};
	if (mw_secret_key_load(mw_config_str(ctx->cfg, MWK_MASTER_KEY), key_r, &err) < 0) {
		mw_error_log("master key: %s", err.msg);
		api_error(res, 503, "master_key_unavailable",
		          "the master key cannot be read by the API (see the log)");
		return -1;
	}
	return 0;
}

/* api_protocols_parse - a JSON array of protocol names in the store's canonical form */
int api_protocols_parse(struct api_response *res, json_t *arr, const char *field, bool allow_empty,
                        char out[MW_PROTOCOLS_MAX + 1])
{
	bool imap = false, smtp = false;
	size_t i;
	json_t *item;
	if (!json_is_array(arr) || json_array_size(arr) > 2) {
		api_error(res, 422, "invalid_field",
		          "field %s must be an array of \"imap\" and/or \"smtp\"", field);
		return -1;
	}
	json_array_foreach(arr, i, item)
	{
		const char *p = json_string_value(item);
		bool *seen = p == NULL                ? NULL
		             : strcmp(p, "imap") == 0 ? &imap
		             : strcmp(p, "smtp") == 0 ? &smtp
		                                      : NULL;
		if (seen == NULL || *seen || strlen(p) != json_string_length(item)) {
			api_error(res, 422, "invalid_field",
			          "field %s[%zu] must be \"imap\" or \"smtp\", each at most once",
			          field, i);
			return -1;
		}
		*seen = true;
	}
	if (!imap && !smtp && !allow_empty) {
		api_error(res, 422, "invalid_field", "field %s must name at least one protocol",
		          field);
		return -1;
	}
	(void)mw_strlcpy(out,
	                 imap && smtp ? "imap,smtp"
	                 : imap       ? "imap"
	                 : smtp       ? "smtp"
	                              : "",
	                 MW_PROTOCOLS_MAX + 1);
	return 0;
}

/* api_protocols_json - "imap,smtp" as ["imap","smtp"] */
json_t *api_protocols_json(const char *protocols)
{
	json_t *arr = json_array();
	if (strstr(protocols, "imap") != NULL)
		json_array_append_new(arr, json_string("imap"));
	if (strstr(protocols, "smtp") != NULL)
		json_array_append_new(arr, json_string("smtp"));
	return arr;
}
