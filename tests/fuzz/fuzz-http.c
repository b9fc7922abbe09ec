/* FUZZ_SOURCES: webapi/api-http.c webapi/api-routes.c webapi/api-support.c webapi/api-sessions.c
 * webapi/api-users.c webapi/api-misc.c webapi/api-totp-state.c webapi/api-totp.c webapi/api-apppw.c
 * webapi/api-policies.c webapi/api-tagrules.c webapi/api-dkim.c webapi/api-authpolicy.c
 * webapi/api-guard.c webapi/api-net.c webapi/api-cookie.c webapi/api-qr.c webapi/api-dns.c
 * webapi/api-discovery.c webapi/api-dmarc-reports.c
 * webapi/api-forms.c webapi/api-authcache.c */
/* FUZZ_PKGS: jansson liboath libqrencode */
/*
 * fuzz-http.c - fuzz target for mailwarden-api's request line: path and query decoding,
 * route matching, Content-Type and the response head (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * Input: "METHOD URI[ HTTP/x]" on the first line (the request line nginx hands over as
 * REQUEST_METHOD and REQUEST_URI), optionally a Content-Type value on the second. The URI
 * goes through api_path_split (and so api_query_parse); what it accepts must be what
 * api-http.c promises: at most API_MAX_SEGMENTS segments and API_QUERY_PARAMS_MAX
 * parameters, every decoded segment and parameter valid UTF-8 without NUL or control
 * characters, no segment "." or ".." or holding '/'. Encoding the decoded parts again and
 * splitting that gives the same parts (the decoder is a function). Route matching over
 * the real table (api_routes) must agree with the pattern: a match has the method, one
 * non-empty parameter per {name}, each one of the segments; 405 names allowed methods,
 * 404 none. The CGI head rendered for the answer has CRLF line ends, no header line
 * without a colon and ends at its first empty line (no header injection).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "api-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-http: invariant broken: %s [%s]\n", what, detail);
	abort();
}

/* check_text - decoded text: valid UTF-8, no NUL or control character */
static void check_text(const char *s, const char *what)
{
	size_t len = strlen(s), k, n;
	uint32_t cp;
	for (k = 0; k < len; k += n) {
		n = mw_utf8_decode(s + k, len - k, &cp);
		if (n == 0 || cp == 0 || mw_unichar_is_control(cp))
			broken(what, s);
	}
}

/* encode - percent-encode everything but unreserved characters */
static void encode(mw_str *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || c == '@')
			(void)mw_str_appendc(out, (char)c);
		else
			(void)mw_str_appendf(out, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
}

/* reencode - split the URI built from req's decoded parts; it must give the same parts */
static void reencode(const struct api_request *req)
{
	struct api_request again;
	mw_error err = {{0}};
	mw_str uri;
	size_t i;
	mw_str_init(&uri, 0);
	for (i = 0; i < req->nsegments; i++) {
		(void)mw_str_appendc(&uri, '/');
		encode(&uri, req->segments[i]);
	}
	for (i = 0; i < req->nquery; i++) {
		(void)mw_str_appendc(&uri, i == 0 ? '?' : '&');
		encode(&uri, req->query[i].name);
		(void)mw_str_appendc(&uri, '=');
		encode(&uri, req->query[i].value);
	}
	memset(&again, 0, sizeof(again));
	/* an empty parameter name or an over-long encoding cannot come back the same */
	for (i = 0; i < req->nquery; i++)
		if (req->query[i].name[0] == '\0')
			goto out;
	if (uri.len > API_URI_MAX)
		goto out;
	for (i = 0; i < req->nquery; i++)
		if (strlen(req->query[i].name) * 3 + strlen(req->query[i].value) * 3 + 1 >
		    API_QUERY_VALUE_MAX)
			goto out;
	if (api_path_split(mw_str_c(&uri), &again, &err) < 0)
		broken("re-encoded URI refused", err.msg);
	if (again.nsegments != req->nsegments || again.nquery != req->nquery)
		broken("re-encoded URI splits differently", mw_str_c(&uri));
	for (i = 0; i < req->nsegments; i++)
		if (strcmp(again.segments[i], req->segments[i]) != 0)
			broken("re-encoded segment differs", mw_str_c(&uri));
	for (i = 0; i < req->nquery; i++)
		if (strcmp(again.query[i].name, req->query[i].name) != 0 ||
		    strcmp(again.query[i].value, req->query[i].value) != 0)
			broken("re-encoded parameter differs", mw_str_c(&uri));
out:
	api_request_free(&again);
	mw_str_free(&uri);
}

/* check_route - the match agrees with the route's pattern */
static void check_route(struct api_request *req, const struct api_route *route, int rc,
                        const char *allow)
{
	size_t i, j, braces = 0;
	const char *p;
	if (rc == 404 || rc == 405) {
		if (route != NULL || req->nparams != 0)
			broken("no match with a route or parameters", req->method);
		if ((rc == 405) != (allow[0] != '\0'))
			broken("Allow list and 405 disagree", allow);
		return;
	}
	if (rc != 0 || route == NULL)
		broken("route match result", req->method);
	if (strcmp(route->method, req->method) != 0)
		broken("matched a route of another method", route->pattern);
	for (p = route->pattern; *p != '\0'; p++)
		braces += *p == '{';
	if (req->nparams != braces)
		broken("parameter count differs from the pattern", route->pattern);
	for (i = 0; i < req->nparams; i++) {
		bool found = false;
		if (req->params[i][0] == '\0')
			broken("empty route parameter", route->pattern);
		for (j = 0; j < req->nsegments; j++)
			found |= req->params[i] == req->segments[j];
		if (!found)
			broken("parameter is not a segment", route->pattern);
	}
}

/* check_head - CRLF lines, each a header with a colon, ending at the first empty line */
static void check_head(const mw_str *head)
{
	const char *p = head->buf, *end = head->buf + head->len;
	bool first = true;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || nl == p || nl[-1] != '\r')
			broken("head line without CRLF", "");
		if (nl == p + 1) {
			if (nl + 1 != end)
				broken("text after the end of the head", "");
			return;
		}
		if (memchr(p, ':', (size_t)(nl - p)) == NULL ||
		    memchr(p, '\r', (size_t)(nl - 1 - p)))
			broken("head line is not a header", "");
		if (first && strncmp(p, "Status: ", 8) != 0)
			broken("head does not start with Status", "");
		first = false;
		p = nl + 1;
	}
	broken("head without an empty line", "");
}

/* LLVMFuzzerTestOneInput - one request line through the parsers */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request req;
	struct api_response res;
	const struct api_route *route = NULL;
	char *line, *sp, *ct = NULL, *nl;
	mw_error err = {{0}};
	mw_str head;
	size_t i;
	int rc;

	line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';
	nl = strchr(line, '\n');
	if (nl != NULL) {
		*nl = '\0';
		ct = nl + 1;
		ct[strcspn(ct, "\r\n")] = '\0';
		if (nl > line && nl[-1] == '\r')
			nl[-1] = '\0';
	}
	sp = strchr(line, ' ');
	if (sp == NULL) {
		free(line);
		return 0;
	}
	*sp = '\0';
	{
		char *ver = strchr(sp + 1, ' ');
		if (ver != NULL)
			*ver = '\0';
	}
	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	req.method = line;
	req.request_uri = sp + 1;
	req.content_type = ct;

	if (api_content_type_is_json(ct) && mw_ascii_strncasecmp(ct, "application/json", 16) != 0)
		broken("JSON content type that does not start application/json", ct);

	if (api_path_split(req.request_uri, &req, &err) < 0) {
		if (err.msg[0] == '\0')
			broken("URI refused without a reason", req.request_uri);
		api_error(&res, 400, "bad_request", "%s", err.msg);
	} else {
		if (req.nsegments == 0 || req.nsegments > API_MAX_SEGMENTS ||
		    req.nquery > API_QUERY_PARAMS_MAX)
			broken("segment or parameter count", req.request_uri);
		for (i = 0; i < req.nsegments; i++) {
			check_text(req.segments[i],
			           "segment with invalid UTF-8 or a control character");
			if (strchr(req.segments[i], '/') != NULL ||
			    strcmp(req.segments[i], ".") == 0 || strcmp(req.segments[i], "..") == 0)
				broken("segment '.', '..' or with '/'", req.segments[i]);
		}
		for (i = 0; i < req.nquery; i++) {
			check_text(req.query[i].name, "parameter name with invalid text");
			check_text(req.query[i].value, "parameter value with invalid text");
			if (strlen(req.query[i].value) > API_QUERY_VALUE_MAX)
				broken("parameter over the limit", req.query[i].name);
			if (api_query_get(&req, req.query[i].name) == NULL)
				broken("parameter not found by name", req.query[i].name);
		}
		reencode(&req);
		rc = api_route_match(api_routes, api_routes_count, &req, &route, res.allow,
		                     sizeof(res.allow));
		check_route(&req, route, rc, res.allow);
		if (rc == 0) {
			static const char *const known[] = {"limit", "after", "status", "role",
			                                    NULL};
			long long v;
			if (api_query_check(&req, &res, known) == 0 &&
			    api_query_int(&req, &res, "limit", 100, 1, 1000, &v) == 0 &&
			    (v < 1 || v > 1000))
				broken("query integer out of its bounds", "limit");
			if (res.status == 0)
				api_ok(&res, 200, json_object());
		} else {
			api_error(&res, rc, "x", "no route");
		}
	}
	mw_str_init(&head, 0);
	api_render_head(&head, &res, "https://admin.example", req.content_type);
	check_head(&head);
	mw_str_free(&head);
	json_decref(res.body);
	api_request_free(&req);
	free(line);
	return 0;
}
