/* api-policies.c - mailwarden-api rate-limit policies and each user's current usage.
 *
 * Policies are rows of the store's rate_policies (mailwarden-policyd reads them every
 * store_refresh and on SIGHUP): an admin lists, adds and deletes them; a policy with a
 * username overrides the general limits of its scope and metric for that user only.
 * Usage and reset go to mailwarden-policyd's control socket ([policyd] control_socket, the
 * key mailwardenctl ratelimit uses too) through the one client of its record format
 * (lib/mw-pdctl.c): reset times arrive as whole seconds, not as text for people. The daemon accepts
 * only root and its own user, so the API must run as the policy daemon's user for these two routes.
 * When the daemon cannot be reached (no socket, refused, no answer within API_PD_TIMEOUT_MS) the
 * answer is 503 policyd_unavailable; nothing is retried. A user may read their own usage (the
 * route is self-or-admin); only an admin is told the socket and the reason, which go to the log
 * for everyone. Reset is admin-only.
 *
 * Every change (policy add and delete, a reset) is audited.
 *
 * Public: api_rl_policy_list, api_rl_policy_create, api_rl_policy_delete,
 * api_user_ratelimit_get, api_user_ratelimit_reset.
 *
 * Diagnostics: control socket failures are logged with the path and the reason.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-ratescope.h"
#include "mw-audit.h"
#include "mw-log.h"
#include "mw-net.h"
#include "mw-pdctl.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define API_PD_TIMEOUT_MS 5000

/* policy_json - the public view of a rate policy (the stored scope word split into scope and
   direction) */
static json_t *policy_json(const struct mw_rate_policy *p)
{
	struct mw_rate_scope sc;
	char scope[MW_RATE_SCOPE_TEXT_MAX + 1];
	const char *dir = "outbound", *colon;
	if (mw_rate_scope_parse(p->scope, strlen(p->scope), &sc, NULL) == 0)
		dir = mw_rate_dir_name(sc.dir);
	colon = strchr(p->scope, ':');
	(void)mw_strlcpy(scope, colon != NULL ? colon + 1 : p->scope, sizeof(scope));
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:o,s:I}", "id", (json_int_t)p->id,
	                 "scope", scope, "direction", dir, "match", p->match, "metric", p->metric,
	                 "count", (json_int_t)p->limit_count, "window_seconds",
	                 (json_int_t)p->window_seconds, "action", p->action, "username",
	                 p->username[0] != '\0' ? json_string(p->username) : json_null(),
	                 "created_at", (json_int_t)p->created_at);
}

/* api_rl_policy_list - GET /ratelimit/policies */
void api_rl_policy_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	struct mw_rate_policy *v = NULL;
	size_t n = 0, i;
	mw_error err = {{0}};
	json_t *arr;
	if (api_query_check(req, res, params) < 0)
		return;
	if (mw_store_rate_policy_list(ctx->store, &v, &n, &err) != MW_STORE_OK) {
		api_store_error(res, "listing rate policies", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, policy_json(&v[i]));
	free(v);
	api_ok(res, 200, json_pack("{s:o}", "policies", arr));
}

/* one_of - value is one of the '|'-separated words */
static bool one_of(const char *value, const char *words)
{
	size_t n = strlen(value);
	const char *p = words;
	while (n > 0) {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == n && memcmp(p, value, n) == 0)
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

/* field_int - a whole-number member of the body in [min, max]; 422 naming it otherwise */
static int field_int(struct api_request *req, struct api_response *res, const char *name,
                     long long min, long long max, long long *value_r)
{
	json_t *v = json_object_get(req->json, name);
	if (v == NULL) {
		api_error(res, 422, "missing_field", "field %s is required", name);
		return -1;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		api_error(res, 422, "invalid_field",
		          "field %s must be a whole number in %lld..%lld", name, min, max);
		return -1;
	}
	*value_r = json_integer_value(v);
	return 0;
}

/* api_rl_policy_create - POST /ratelimit/policies {scope, match?, metric, count,
   window_seconds, action, username?} */
void api_rl_policy_create(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"scope",    "match",          "metric",
	                                     "count",    "window_seconds", "action",
	                                     "username", "direction",      NULL};
	const char *scope, *match, *metric, *action, *username, *direction;
	struct mw_rate_scope sc;
	struct mw_rate_policy p, *v = NULL;
	long long count, window;
	mw_error err = {{0}};
	int64_t id = 0;
	size_t n = 0, i;
	json_t *out = NULL;
	int ret;
	memset(&p, 0, sizeof(p));
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "scope", true, sizeof(p.scope) - 1, &scope) < 0 ||
	    api_field_string(req, res, "match", false, MW_RATE_MATCH_MAX, &match) < 0 ||
	    api_field_string(req, res, "metric", true, sizeof(p.metric) - 1, &metric) < 0 ||
	    field_int(req, res, "count", LLONG_MIN, LLONG_MAX, &count) < 0 ||
	    field_int(req, res, "window_seconds", LLONG_MIN, LLONG_MAX, &window) < 0 ||
	    api_field_string(req, res, "action", true, sizeof(p.action) - 1, &action) < 0 ||
	    api_field_string(req, res, "username", false, MW_USERNAME_MAX * 4, &username) < 0 ||
	    api_field_string(req, res, "direction", false, 16, &direction) < 0)
		return;
	/* the bounds are those of the counters' arithmetic: one check for every entry point */
	if (mw_rate_limit_check(count, window, false, &err) < 0) {
		api_error(res, 422, "invalid_field", "field %s: %s",
		          strncmp(err.msg, "count", 5) == 0 ? "count" : "window_seconds", err.msg);
		return;
	}
	/* the scope word's one parser (lib/mw-ratescope.c); the direction is its own field */
	if (strchr(scope, ':') != NULL ||
	    mw_rate_scope_parse(scope, strlen(scope), &sc, &err) < 0) {
		api_error(res, 422, "invalid_field", "field scope: %s",
		          strchr(scope, ':') != NULL ? "give the direction in field direction"
		                                     : err.msg);
		return;
	}
	if (direction != NULL &&
	    mw_rate_dir_parse(direction, strlen(direction), &sc.dir, &err) < 0) {
		api_error(res, 422, "invalid_field", "field direction: %s", err.msg);
		return;
	}
	if (sc.dir != MW_RATE_OUTBOUND &&
	    (sc.name == 0 || (username != NULL && username[0] != '\0'))) {
		api_error(res, 422, "invalid_field",
		          "field direction: %s counts outbound mail only",
		          sc.name == 0 ? "sasl_username" : "a per-user policy");
		return;
	}
	if (!one_of(metric, "messages|recipients|size")) {
		api_error(res, 422, "invalid_field",
		          "field metric must be messages, recipients or size");
		return;
	}
	if (!one_of(action, "defer|reject")) {
		api_error(res, 422, "invalid_field", "field action must be defer or reject");
		return;
	}
	if (match != NULL && match[0] != '\0' && sc.name == 1 /* client_address */ &&
	    !mw_cidr_valid(match)) {
		api_error(res, 422, "invalid_field",
		          "field match must be an IP address or network (CIDR) for client_address");
		return;
	}
	(void)mw_rate_scope_format(&sc, p.scope, sizeof(p.scope));
	(void)mw_strlcpy(p.metric, metric, sizeof(p.metric));
	(void)mw_strlcpy(p.action, action, sizeof(p.action));
	(void)mw_strlcpy(p.match, match != NULL ? match : "", sizeof(p.match));
	p.limit_count = count;
	p.window_seconds = window;
	if (username != NULL &&
	    mw_store_username_normalize(username, p.username, sizeof(p.username), &err) < 0) {
		api_error(res, 422, "invalid_field", "field username: %s", err.msg);
		return;
	}
	ret = mw_store_rate_policy_add(ctx->store, &p, &id, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 422, "invalid_field", "field username: no such user");
		return;
	}
	if (ret == MW_STORE_ERROR && strstr(err.msg, "match") != NULL) {
		api_error(res, 422, "invalid_field", "field match: %s", err.msg);
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "adding a rate policy", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_RATELIMIT_POLICY_ADD),
	          p.username[0] != '\0' ? p.username : "*",
	          json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s}", "id", (json_int_t)id, "scope", p.scope,
	                    "match", p.match, "metric", p.metric, "count",
	                    (json_int_t)p.limit_count, "window_seconds",
	                    (json_int_t)p.window_seconds, "action", p.action));
	if (mw_store_rate_policy_list(ctx->store, &v, &n, &err) == MW_STORE_OK)
		for (i = 0; i < n && out == NULL; i++)
			if (v[i].id == id)
				out = policy_json(&v[i]);
	free(v);
	if (out == NULL) {
		p.id = id;
		out = policy_json(&p);
	}
	api_ok(res, 201, out);
}

/* api_rl_policy_delete - DELETE /ratelimit/policies/{id} */
void api_rl_policy_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	const char *s = req->params[0];
	long long id;
	mw_error err = {{0}};
	int ret;
	if (!api_path_id(s, &id)) {
		api_error(res, 404, "not_found", "no such rate policy");
		return;
	}
	ret = mw_store_rate_policy_del(ctx->store, id, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such rate policy");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "deleting a rate policy", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_RATELIMIT_POLICY_DELETE), s, NULL);
	api_ok(res, 204, NULL);
}

/* ---- usage through mailwarden-policyd ------------------------------------------------ */

/* pd_ask - one request to mailwarden-policyd's control socket through the one client
   (lib/mw-pdctl.c): 0 with the reply, 1 when the daemon refused (its reason in error_r), -1
   with error_r when it cannot be reached or does not answer with a reply */
static int pd_ask(struct api_ctx *ctx, enum mw_pdctl_command command, const char *subject,
                  struct mw_pdctl_reply *reply_r, mw_error *error_r)
{
	struct mw_pdctl_request req;
	memset(&req, 0, sizeof(req));
	req.command = command;
	if (mw_strlcpy(req.subject, subject, sizeof(req.subject)) < 0) {
		mw_error_set(error_r, "subject too long");
		return 1;
	}
	if (mw_pdctl_call(mw_config_str(ctx->cfg, MWK_PD_CONTROL_SOCKET), &req, API_PD_TIMEOUT_MS,
	                  reply_r, error_r) < 0)
		return -1;
	if (!reply_r->ok) {
		mw_error_set(error_r, "%s", reply_r->error);
		return 1;
	}
	return 0;
}

/* limit_json - one limit's usage as the API shows it (reset times in whole seconds) */
static json_t *limit_json(const struct mw_pdctl_limit *l)
{
	return json_pack("{s:s,s:I,s:I,s:o,s:o,s:s,s:b}", "limit", l->limit, "used",
	                 (json_int_t)l->used, "count", (json_int_t)l->count, "reset_after_seconds",
	                 l->reset_after > 0 ? json_integer((json_int_t)l->reset_after)
	                                    : json_null(),
	                 "resets_at",
	                 l->reset_after > 0 ? json_integer((json_int_t)(mw_now() + l->reset_after))
	                                    : json_null(),
	                 "origin", l->origin, "degraded", l->degraded);
}

/* rl_target - the route's user, normalised and known to the store (404 otherwise) */
static int rl_target(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                     char *name)
{
	struct mw_user user;
	mw_error err = {{0}};
	int ret = MW_STORE_NOTFOUND;
	if (mw_store_username_normalize(req->params[0], name, MW_USERNAME_MAX + 1, NULL) == 0)
		ret = mw_store_user_get(ctx->store, name, &user, &err);
	if (ret == MW_STORE_OK) {
		mw_user_clear(&user);
		return 0;
	}
	if (ret == MW_STORE_NOTFOUND)
		api_error(res, 404, "not_found", "no such user");
	else
		api_store_error(res, "reading a user", &err);
	return -1;
}

/* pd_failed - answer for a control socket failure (rc -1: unreachable, 1: refused); the
   socket and the reason only to an admin (a user asking for their own usage gets the code) */
static void pd_failed(const struct api_request *req, struct api_response *res, int rc,
                      const mw_error *err)
{
	bool admin = req->user.role == MW_ROLE_ADMIN;
	if (rc < 0) {
		mw_error_log("policyd: %s", err->msg);
		if (!admin)
			api_error(
			    res, 503, "policyd_unavailable",
			    "mailwarden-policyd cannot be reached; the administrator can find "
			    "out why in the API's log");
		else
			api_error(res, 503, "policyd_unavailable",
			          "mailwarden-policyd cannot be reached through its control socket "
			          "([policyd] control_socket): %s",
			          err->msg);
		return;
	}
	mw_error_log("policyd refused: %s", err->msg);
	if (!admin)
		api_error(res, 502, "policyd_error", "mailwarden-policyd refused the request");
	else
		api_error(res, 502, "policyd_error", "mailwarden-policyd refused: %s", err->msg);
}

/* api_user_ratelimit_get - GET /users/{username}/ratelimit: usage of each limit */
void api_user_ratelimit_get(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	char name[MW_USERNAME_MAX + 1];
	mw_error err = {{0}};
	struct mw_pdctl_reply *reply;
	json_t *arr;
	size_t i;
	int rc;
	if (api_query_check(req, res, params) < 0 || rl_target(ctx, req, res, name) < 0)
		return;
	reply = mw_calloc(1, sizeof(*reply));
	rc = pd_ask(ctx, MW_PDCTL_STATUS, name, reply, &err);
	if (rc != 0) {
		free(reply);
		pd_failed(req, res, rc, &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < reply->nlimits; i++)
		json_array_append_new(arr, limit_json(&reply->limits[i]));
	free(reply);
	api_ok(res, 200, json_pack("{s:s,s:o}", "username", name, "limits", arr));
}

/* api_user_ratelimit_reset - DELETE /users/{username}/ratelimit: clear the counters */
void api_user_ratelimit_reset(struct api_ctx *ctx, struct api_request *req,
                              struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	mw_error err = {{0}};
	struct mw_pdctl_reply *reply;
	int64_t cleared;
	int rc;
	if (rl_target(ctx, req, res, name) < 0)
		return;
	reply = mw_calloc(1, sizeof(*reply));
	rc = pd_ask(ctx, MW_PDCTL_RESET, name, reply, &err);
	if (rc == 0 && reply->cleared < 0) {
		rc = -1;
		mw_error_set(&err, "the reply to a reset has no cleared record");
	}
	cleared = reply->cleared;
	free(reply);
	if (rc != 0) {
		pd_failed(req, res, rc, &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_RATELIMIT_RESET), name,
	          json_pack("{s:I}", "cleared", (json_int_t)cleared));
	api_ok(res, 200, json_pack("{s:s,s:I}", "username", name, "cleared", (json_int_t)cleared));
}
