/* api-misc.c - mailwarden-api health check and audit log listing.
 *
 * Public: api_healthz (GET /healthz, no session: 200 when the store answers with the schema
 * this build expects, 503 otherwise), api_audit_list (GET /audit, admin: filters actor,
 * action, target, since, until (unix seconds, inclusive), paging with after and limit,
 * oldest first; order=desc: newest first, paging with before instead of after),
 * api_metrics (GET /internal/metrics: lib/mw-metrics.c's counters, shared by the workers).
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-degraded.h"
#include "mw-log.h"
#include "mw-metrics.h"

#include <string.h>

/* api_healthz - is the store reachable and current? */
void api_healthz(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	mw_error err = {{0}};
	if (api_query_check(req, res, params) < 0)
		return;
	if (mw_store_check_schema(ctx->store, &err) < 0) {
		mw_error_log("health check: %s", err.msg);
		(void)mw_degraded_enter(MW_DEGRADED_API_STORE, "store_error", err.msg);
		api_error(res, 503, "store_unavailable", "the store is unavailable");
		return;
	}
	api_store_answered();
	api_ok(res, 200,
	       json_pack("{s:s,s:s}", "status", "ok", "store", mw_store_backend_name(ctx->store)));
}

/* api_metrics - GET /internal/metrics: the counters of every worker (Prometheus text format;
   nginx lets only loopback reach /api/v1/internal/) */
void api_metrics(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	mw_str text;
	(void)ctx;
	if (api_query_check(req, res, params) < 0)
		return;
	mw_str_init(&text, 0);
	mw_metrics_render(&text);
	api_raw(res, 200, "text/plain; version=0.0.4; charset=utf-8", &text);
	mw_str_free(&text);
}

/* text_param - a text filter: NULL when absent, 422 when empty or too long */
static int text_param(struct api_request *req, struct api_response *res, const char *name,
                      const char **value_r)
{
	*value_r = api_query_get(req, name);
	if (*value_r != NULL && ((*value_r)[0] == '\0' || strlen(*value_r) > MW_AUDIT_FIELD_MAX)) {
		api_error(res, 422, "invalid_parameter", "query parameter %s must not be empty",
		          name);
		return -1;
	}
	return 0;
}

/* api_audit_list - GET /audit?actor=&action=&target=&since=&until=&after=&limit= */
void api_audit_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {"actor", "action", "target", "since",  "until",
	                                     "after", "limit",  "order",  "before", NULL};
	struct mw_audit_filter f;
	struct mw_audit_entry *v = NULL;
	long long since, until, after, limit, before;
	const char *order = api_query_get(req, "order");
	size_t n = 0, i;
	json_t *arr;
	mw_error err = {{0}};
	memset(&f, 0, sizeof(f));
	if (api_query_check(req, res, params) < 0 || text_param(req, res, "actor", &f.actor) < 0 ||
	    text_param(req, res, "action", &f.action) < 0 ||
	    text_param(req, res, "target", &f.target) < 0 ||
	    api_query_int(req, res, "since", 0, 0, INT64_MAX, &since) < 0 ||
	    api_query_int(req, res, "until", 0, 0, INT64_MAX, &until) < 0 ||
	    api_query_int(req, res, "after", 0, 0, INT64_MAX, &after) < 0 ||
	    api_query_int(req, res, "limit", API_PAGE_DEFAULT, 1, API_PAGE_MAX, &limit) < 0 ||
	    api_query_int(req, res, "before", 0, 1, INT64_MAX, &before) < 0)
		return;
	if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
		api_error(res, 422, "invalid_parameter",
		          "query parameter order must be asc or desc");
		return;
	}
	f.newest_first = order != NULL && strcmp(order, "desc") == 0;
	if ((f.newest_first && api_query_get(req, "after") != NULL) ||
	    (!f.newest_first && api_query_get(req, "before") != NULL)) {
		api_error(res, 422, "invalid_parameter",
		          "query parameter %s does not page in this order (order=desc pages with "
		          "before, asc with after)",
		          f.newest_first ? "after" : "before");
		return;
	}
	f.before_id = before;
	f.since = since;
	f.until = until;
	f.after_id = after;
	f.limit = (unsigned)limit;
	if (mw_store_audit_list(ctx->store, &f, &v, &n, &err) != MW_STORE_OK) {
		api_store_error(res, "listing the audit log", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s}", "id",
		                                     (json_int_t)v[i].id, "at", (json_int_t)v[i].at,
		                                     "actor", v[i].actor, "action", v[i].action,
		                                     "target", v[i].target, "client", v[i].client,
		                                     "details", v[i].details));
	api_ok(res, 200,
	       json_pack("{s:o,s:o}", "entries", arr, f.newest_first ? "next_before" : "next_after",
	                 n == (size_t)limit && n > 0 ? json_integer(v[n - 1].id) : json_null()));
	mw_audit_entries_free(v, n);
}
