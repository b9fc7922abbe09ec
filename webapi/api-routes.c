/* api-routes.c - mailwarden-api route table and request dispatch.
 *
 * The table is the single list of what the API serves: method, path pattern, the role a
 * caller needs, handler. `mailwarden-api --routes` prints it, and a test compares it with
 * docs/api/openapi.yaml. Dispatch order: path and query decoding (400), CORS preflight,
 * route lookup (404/405), the web page's cookie (CSRF token and origin, 403; api-cookie.c),
 * session (401), role (403), body (415, 400, 422), handler, then the cookie's Set-Cookie. The
 * 413 for an over-long body is answered before the body is read (api-main.c).
 *
 * Public: api_routes, api_routes_count, api_role_name, api_dispatch.
 */
#include "mw-build.h"
#include "api-common.h"

#include <string.h>

const struct api_route api_routes[] = {
    {"GET", API_PREFIX "/healthz", API_ROLE_NONE, api_healthz},
    {"POST", API_PREFIX "/sessions", API_ROLE_NONE, api_session_create},
    {"GET", API_PREFIX "/sessions", API_ROLE_USER, api_session_list},
    {"POST", API_PREFIX "/sessions/refresh", API_ROLE_USER, api_session_refresh},
    /* the web page's cookie session (api-cookie.c) */
    {"POST", API_PREFIX "/sessions/cookie", API_ROLE_NONE, api_cookie_login},
    {"GET", API_PREFIX "/sessions/current", API_ROLE_USER, api_session_current},
    {"DELETE", API_PREFIX "/sessions/current", API_ROLE_USER, api_session_delete_current},
    {"DELETE", API_PREFIX "/sessions/{id}", API_ROLE_USER, api_session_delete},
    {"GET", API_PREFIX "/users", API_ROLE_ADMIN, api_user_list},
    {"POST", API_PREFIX "/users", API_ROLE_ADMIN, api_user_create},
    {"GET", API_PREFIX "/users/{username}", API_ROLE_SELF, api_user_get},
    {"PATCH", API_PREFIX "/users/{username}", API_ROLE_ADMIN, api_user_update},
    {"DELETE", API_PREFIX "/users/{username}", API_ROLE_ADMIN, api_user_delete},
    {"POST", API_PREFIX "/users/{username}/password", API_ROLE_SELF, api_user_password},
    {"DELETE", API_PREFIX "/users/{username}/sessions", API_ROLE_ADMIN, api_user_sessions_delete},
    {"GET", API_PREFIX "/users/{username}/allowed-from", API_ROLE_SELF, api_af_get},
    {"PUT", API_PREFIX "/users/{username}/allowed-from", API_ROLE_ADMIN, api_af_replace},
    {"POST", API_PREFIX "/users/{username}/allowed-from", API_ROLE_ADMIN, api_af_add},
    {"DELETE", API_PREFIX "/users/{username}/allowed-from/{pattern}", API_ROLE_ADMIN,
     api_af_delete},
    {"GET", API_PREFIX "/audit", API_ROLE_ADMIN, api_audit_list},
    /* two-factor login and app passwords (api-totp.c, api-apppw.c) */
    {"POST", API_PREFIX "/users/{username}/totp", API_ROLE_SELF, api_totp_enrol},
    {"POST", API_PREFIX "/users/{username}/totp/confirm", API_ROLE_SELF, api_totp_confirm},
    {"DELETE", API_PREFIX "/users/{username}/totp", API_ROLE_SELF, api_totp_delete},
    {"GET", API_PREFIX "/users/{username}/app-passwords", API_ROLE_SELF, api_apppw_list},
    {"POST", API_PREFIX "/users/{username}/app-passwords", API_ROLE_SELF, api_apppw_create},
    {"DELETE", API_PREFIX "/users/{username}/app-passwords/{id}", API_ROLE_SELF, api_apppw_delete},
    /* rate limits, tag rules, DKIM keys (api-policies.c, api-tagrules.c, api-dkim.c) */
    {"GET", API_PREFIX "/ratelimit/policies", API_ROLE_ADMIN, api_rl_policy_list},
    {"POST", API_PREFIX "/ratelimit/policies", API_ROLE_ADMIN, api_rl_policy_create},
    {"DELETE", API_PREFIX "/ratelimit/policies/{id}", API_ROLE_ADMIN, api_rl_policy_delete},
    {"GET", API_PREFIX "/users/{username}/ratelimit", API_ROLE_SELF, api_user_ratelimit_get},
    {"DELETE", API_PREFIX "/users/{username}/ratelimit", API_ROLE_ADMIN, api_user_ratelimit_reset},
    {"GET", API_PREFIX "/users/{username}/tag-rules", API_ROLE_SELF, api_tag_rule_list},
    {"POST", API_PREFIX "/users/{username}/tag-rules", API_ROLE_SELF, api_tag_rule_create},
    {"DELETE", API_PREFIX "/users/{username}/tag-rules/{id}", API_ROLE_SELF, api_tag_rule_delete},
    {"GET", API_PREFIX "/dkim/keys", API_ROLE_ADMIN, api_dkim_list},
    {"POST", API_PREFIX "/dkim/keys", API_ROLE_ADMIN, api_dkim_generate},
    {"POST", API_PREFIX "/dkim/keys/{domain}/{selector}/activate", API_ROLE_ADMIN,
     api_dkim_activate},
    {"DELETE", API_PREFIX "/dkim/keys/{domain}/{selector}", API_ROLE_ADMIN, api_dkim_delete},
    {"POST", API_PREFIX "/dkim/rotate", API_ROLE_ADMIN, api_dkim_rotate},
    /* DNS records, MTA-STS, client autoconfig (api-dns.c, api-discovery.c); nginx maps the
       public paths (/.well-known/mta-sts.txt, /mail/config-v1.1.xml,
       /autodiscover/autodiscover.xml) onto these */
    {"GET", API_PREFIX "/domains/{domain}/dns", API_ROLE_ADMIN, api_domain_dns},
    {"GET", API_PREFIX "/well-known/mta-sts.txt", API_ROLE_NONE, api_mta_sts},
    {"GET", API_PREFIX "/autoconfig/mail/config-v1.1.xml", API_ROLE_NONE, api_autoconfig},
    {"POST", API_PREFIX "/autodiscover/autodiscover.xml", API_ROLE_NONE, api_autodiscover},
    {"POST", API_PREFIX "/users/{username}/mobileconfig", API_ROLE_SELF, api_mobileconfig},
    /* DMARC aggregate reports received for our domains (api-dmarc-reports.c) */
    {"GET", API_PREFIX "/dmarc/reports", API_ROLE_ADMIN, api_dmarc_reports},
    {"GET", API_PREFIX "/dmarc/summary", API_ROLE_ADMIN, api_dmarc_summary},
    /* public contact forms (api-forms.c) */
    {"GET", API_PREFIX "/forms/{form}/token", API_ROLE_NONE, api_form_token},
    {"POST", API_PREFIX "/forms/{form}", API_ROLE_NONE, api_form_submit},
    {"OPTIONS", API_PREFIX "/forms/{form}", API_ROLE_NONE, api_form_preflight},
    /* Dovecot's auth policy reports: the handler checks the shared secret (api-authpolicy.c) */
    {"POST", API_PREFIX "/internal/auth-policy", API_ROLE_NONE, api_auth_policy},
    /* Prometheus scrapes the workers' counters (loopback only, as every internal route) */
    {"GET", API_PREFIX "/internal/metrics", API_ROLE_NONE, api_metrics},
};
const size_t api_routes_count = MW_N_ELEMENTS(api_routes);

/* api_role_name - the role as --routes and the docs spell it */
const char *api_role_name(enum api_role role)
{
	switch (role) {
	case API_ROLE_NONE:
		return "none";
	case API_ROLE_USER:
		return "user";
	case API_ROLE_SELF:
		return "self";
	case API_ROLE_ADMIN:
		return "admin";
	}
	return "?";
}

/* check_role - may the authenticated caller use this route? */
static bool check_role(const struct api_route *route, struct api_request *req)
{
	char name[MW_USERNAME_MAX + 1];
	if (req->user.role == MW_ROLE_ADMIN)
		return true;
	switch (route->role) {
	case API_ROLE_NONE:
	case API_ROLE_USER:
		return true;
	case API_ROLE_SELF:
		return req->nparams > 0 &&
		       mw_store_username_normalize(req->params[0], name, sizeof(name), NULL) == 0 &&
		       strcmp(name, req->user.username) == 0;
	case API_ROLE_ADMIN:
		return false;
	}
	return false;
}

/* parse_body - the body as a JSON object; {} when there is none */
static int parse_body(struct api_request *req, struct api_response *res)
{
	json_error_t jerr;
	if (req->body_len == 0) {
		req->json = json_object();
		return 0;
	}
	if (!api_content_type_is_json(req->content_type)) {
		api_error(res, 415, "unsupported_media_type",
		          "the request body must be application/json");
		return -1;
	}
	req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (req->json == NULL) {
		api_error(res, 400, "malformed_json",
		          "the body is not valid JSON (line %d, column "
		          "%d): %s",
		          jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(req->json)) {
		api_error(res, 422, "invalid_body", "the body must be a JSON object");
		return -1;
	}
	return 0;
}

/* api_dispatch - run one request through the table */
void api_dispatch(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	const char *cors = mw_config_str(ctx->cfg, MWK_API_CORS_ORIGIN);
	const struct api_route *route;
	mw_error err = {{0}};
	int rc;
	(void)mw_strlcpy(req->actor, "api:-", sizeof(req->actor));
	if (req->method == NULL || api_path_split(req->request_uri, req, &err) < 0) {
		api_error(res, 400, "bad_request", "%s", err.msg[0] ? err.msg : "no method");
		return;
	}
	if (strcmp(req->method, "OPTIONS") == 0 && cors[0] != '\0' && req->origin != NULL &&
	    strcmp(req->origin, cors) == 0) {
		res->cors_preflight = true;
		api_ok(res, 204, NULL);
		return;
	}
	rc = api_route_match(api_routes, api_routes_count, req, &route, res->allow,
	                     sizeof(res->allow));
	if (rc == 404) {
		api_error(res, 404, "not_found", "no such resource");
		return;
	}
	if (rc == 405) {
		api_error(res, 405, "method_not_allowed", "allowed: %s", res->allow);
		return;
	}
	req->route = route->pattern;
	if (route->role != API_ROLE_NONE) {
		if (api_cookie_prepare(ctx, req, res) < 0 || api_authenticate(ctx, req, res) < 0) {
			api_cookie_finish(ctx, req, res);
			return;
		}
		if (!check_role(route, req)) {
			api_error(res, 403, "forbidden", "this needs the %s role",
			          route->role == API_ROLE_SELF ? "admin (or to be that user)"
			                                       : api_role_name(route->role));
			return;
		}
	}
	/* Outlook's autodiscover request is XML: its handler reads the body itself */
	if (route->fn != api_autodiscover && parse_body(req, res) < 0)
		return;
	route->fn(ctx, req, res);
	api_cookie_finish(ctx, req, res);
}
