/* api-dmarc-reports.c - the DMARC aggregate reports received for our domains (issue 14):
 * GET /dmarc/reports (the stored reports, newest first) and GET /dmarc/summary (who sends
 * as our domains, passing or failing: lib/mw-dmarc-report.h's mw_dmarc_summary_json, what
 * `mailwardenctl dmarc report` prints). Admin only (the route table says so).
 *
 * Query parameters of both: domain (the policy domain or a header_from), since, until
 * (unix seconds: reports whose date range ends at or after since and begins before
 * until), limit.
 *
 * Public: api_dmarc_reports, api_dmarc_summary.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-dmarc-report.h"
#include "mw-dnsrec.h"

#include <stdlib.h>
#include <string.h>

#define SUMMARY_LIMIT_DEFAULT 1000
#define SUMMARY_LIMIT_MAX     100000

/* filter_params - the filter from the query (-1 after the error answer) */
static int filter_params(struct api_request *req, struct api_response *res,
                         struct mw_dmarc_filter *f, char *domain, size_t dsize,
                         long long limit_default, long long limit_max)
{
	static const char *const params[] = {"domain", "since", "until", "limit", NULL};
	const char *dom_in = api_query_get(req, "domain");
	long long since, until, limit;
	mw_error err = {{0}};
	memset(f, 0, sizeof(*f));
	if (api_query_check(req, res, params) < 0 ||
	    api_query_int(req, res, "since", 0, 0, INT64_MAX, &since) < 0 ||
	    api_query_int(req, res, "until", 0, 0, INT64_MAX, &until) < 0 ||
	    api_query_int(req, res, "limit", limit_default, 1, limit_max, &limit) < 0)
		return -1;
	if (dom_in != NULL) {
		if (mw_dnsrec_domain(dom_in, domain, dsize, &err) < 0) {
			api_error(res, 422, "invalid_parameter", "query parameter domain: %s",
			          err.msg);
			return -1;
		}
		f->domain = domain;
	}
	f->since = since;
	f->until = until;
	f->limit = (unsigned)limit;
	return 0;
}

/* api_dmarc_reports - GET /dmarc/reports?domain=&since=&until=&limit= */
void api_dmarc_reports(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	struct mw_dmarc_filter f;
	struct mw_dmarc_rpt_info *v = NULL;
	char domain[MW_DMARC_RPT_DOMAIN_MAX + 1];
	size_t n = 0, i;
	mw_error err = {{0}};
	json_t *arr;
	if (filter_params(req, res, &f, domain, sizeof(domain), API_PAGE_DEFAULT, API_PAGE_MAX) < 0)
		return;
	if (mw_store_dmarc_report_list(ctx->store, &f, &v, &n, &err) != MW_STORE_OK) {
		api_store_error(res, "listing DMARC reports", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, mw_dmarc_rpt_info_json(&v[i]));
	free(v);
	api_ok(res, 200, json_pack("{s:o}", "reports", arr));
}

/* api_dmarc_summary - GET /dmarc/summary?domain=&since=&until=&limit= */
void api_dmarc_summary(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	struct mw_dmarc_filter f;
	struct mw_dmarc_sum_row *rows = NULL;
	char domain[MW_DMARC_RPT_DOMAIN_MAX + 1];
	size_t n = 0;
	mw_error err = {{0}};
	if (filter_params(req, res, &f, domain, sizeof(domain), SUMMARY_LIMIT_DEFAULT,
	                  SUMMARY_LIMIT_MAX) < 0)
		return;
	if (mw_store_dmarc_summary(ctx->store, &f, &rows, &n, &err) != MW_STORE_OK) {
		api_store_error(res, "summarising DMARC reports", &err);
		return;
	}
	api_ok(res, 200, mw_dmarc_summary_json(rows, n));
	free(rows);
}
