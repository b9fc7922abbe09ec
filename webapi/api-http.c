/* api-http.c - mailwarden-api request parsing and response rendering (no FastCGI here).
 *
 * The path is taken from REQUEST_URI as the client sent it (nginx's decoded $uri would
 * hide an encoded '/'), split at '/', and each segment percent-decoded on its own. A
 * segment that decodes to something a name can never hold is refused outright: an
 * invalid escape, NUL or another control character, '/', "." or "..", invalid UTF-8.
 * Query parameters are decoded the same way ('+' is a blank) and bounded in number and
 * length. Nothing over a limit is truncated: it is refused.
 *
 * Public: api_path_split, api_query_parse, api_query_get, api_content_type_is_json,
 * api_route_match, api_status_text, api_render_head, api_json_render, api_json_wipe_init,
 * api_request_free, api_error, api_ok,
 * api_fields_check, api_field_string, api_query_int, api_query_check, api_path_id.
 *
 * Diagnostics: parse failures come back through error_r (the caller answers 400); the
 * field helpers answer 422 themselves, naming the field.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-log.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* pct_decode - decode p[0..len) (plus_blank: '+' means ' '); refuses bad escapes, control
   characters and invalid UTF-8; returns an owned string or NULL */
static char *pct_decode(const char *p, size_t len, bool plus_blank, const char *what,
                        mw_error *error_r)
{
	char *out = mw_malloc(len + 1);
	size_t i, o = 0, k, n;
	uint32_t cp;
	for (i = 0; i < len; i++) {
		if (p[i] == '%') {
			int hi = i + 2 < len ? mw_hexval((unsigned char)p[i + 1]) : -1;
			int lo = i + 2 < len ? mw_hexval((unsigned char)p[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				mw_error_set(error_r, "%s holds an invalid %%-escape", what);
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (plus_blank && p[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = p[i];
		}
	}
	out[o] = '\0';
	for (k = 0; k < o; k += n) {
		n = mw_utf8_decode(out + k, o - k, &cp);
		if (n == 0 || cp == 0 || mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "%s holds %s", what,
			             n == 0 ? "invalid UTF-8" : "a control character or NUL");
			free(out);
			return NULL;
		}
	}
	return out;
}

/* api_path_split - split and decode the path of uri into req->segments; the query
   string (after '?') is parsed into req->query */
int api_path_split(const char *uri, struct api_request *req, mw_error *error_r)
{
	const char *p, *end, *q, *slash;
	char *seg;
	if (uri == NULL || uri[0] != '/') {
		mw_error_set(error_r, "the request path must start with /");
		return -1;
	}
	if (strnlen(uri, API_URI_MAX + 1) > API_URI_MAX) {
		mw_error_set(error_r, "the request URI is longer than %d bytes", API_URI_MAX);
		return -1;
	}
	q = strchr(uri, '?');
	end = q != NULL ? q : uri + strlen(uri);
	for (p = uri + 1; p <= end; p = slash + 1) {
		slash = memchr(p, '/', (size_t)(end - p));
		if (slash == NULL)
			slash = end;
		if (req->nsegments == API_MAX_SEGMENTS) {
			mw_error_set(error_r, "the request path has more than %d segments",
			             API_MAX_SEGMENTS);
			return -1;
		}
		seg = pct_decode(p, (size_t)(slash - p), false, "a path segment", error_r);
		if (seg == NULL)
			return -1;
		req->segments[req->nsegments++] = seg;
		if (strchr(seg, '/') != NULL || strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0) {
			mw_error_set(error_r, "a path segment may not be \".\", \"..\" or hold /");
			return -1;
		}
		if (slash == end)
			break;
	}
	return q != NULL ? api_query_parse(q + 1, req, error_r) : 0;
}

/* api_query_parse - decode name=value pairs separated by '&' */
int api_query_parse(const char *query, struct api_request *req, mw_error *error_r)
{
	const char *p = query, *amp, *eq;
	struct api_query_param *qp;
	size_t len;
	while (*p != '\0') {
		amp = strchr(p, '&');
		len = amp != NULL ? (size_t)(amp - p) : strlen(p);
		if (len > 0) {
			if (req->nquery == API_QUERY_PARAMS_MAX) {
				mw_error_set(error_r, "more than %d query parameters",
				             API_QUERY_PARAMS_MAX);
				return -1;
			}
			if (len > API_QUERY_VALUE_MAX) {
				mw_error_set(error_r, "a query parameter is longer than %d bytes",
				             API_QUERY_VALUE_MAX);
				return -1;
			}
			eq = memchr(p, '=', len);
			qp = &req->query[req->nquery];
			qp->name = pct_decode(p, eq != NULL ? (size_t)(eq - p) : len, true,
			                      "a query parameter name", error_r);
			if (qp->name == NULL)
				return -1;
			qp->value = eq != NULL ? pct_decode(eq + 1, len - (size_t)(eq + 1 - p),
			                                    true, "a query parameter", error_r)
			                       : mw_strdup("");
			req->nquery++;
			if (qp->value == NULL)
				return -1;
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return 0;
}

/* api_query_get - the value of query parameter name, NULL when absent */
const char *api_query_get(const struct api_request *req, const char *name)
{
	size_t i;
	for (i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].name, name) == 0)
			return req->query[i].value;
	return NULL;
}

/* api_content_type_is_json - application/json, optionally with a charset=utf-8 parameter */
bool api_content_type_is_json(const char *ct)
{
	static const char json[] = "application/json";
	const char *p;
	if (ct == NULL || mw_ascii_strncasecmp(ct, json, sizeof(json) - 1) != 0)
		return false;
	p = ct + sizeof(json) - 1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return true;
	if (*p++ != ';')
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	return mw_ascii_strcasecmp(p, "charset=utf-8") == 0 ||
	       mw_ascii_strcasecmp(p, "charset=\"utf-8\"") == 0;
}

/* match_pattern - does the route pattern match the request's segments? fills params */
static bool match_pattern(const char *pattern, struct api_request *req)
{
	const char *p = pattern + 1, *slash;
	size_t i = 0, len;
	req->nparams = 0;
	for (;;) {
		slash = strchr(p, '/');
		len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (i == req->nsegments)
			return false;
		if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
			if (req->segments[i][0] == '\0' || req->nparams == API_MAX_PARAMS)
				return false;
			req->params[req->nparams++] = req->segments[i];
		} else if (strlen(req->segments[i]) != len ||
		           memcmp(req->segments[i], p, len) != 0) {
			return false;
		}
		i++;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return i == req->nsegments;
}

/* api_route_match - the first route whose method and pattern match */
int api_route_match(const struct api_route *routes, size_t n, struct api_request *req,
                    const struct api_route **route_r, char *allow, size_t allowsize)
{
	mw_str methods;
	size_t i;
	bool path_seen = false;
	*route_r = NULL;
	/* the first route of this method and path: the method compared first (most routes are
	   of another method); only when none matches, the scan below for 405 or 404 */
	for (i = 0; i < n; i++)
		if (strcmp(routes[i].method, req->method) == 0 &&
		    match_pattern(routes[i].pattern, req)) {
			*route_r = &routes[i];
			return 0;
		}
	mw_str_init(&methods, allowsize > 0 ? allowsize - 1 : 1);
	for (i = 0; i < n; i++) {
		if (!match_pattern(routes[i].pattern, req))
			continue;
		if (strcmp(routes[i].method, req->method) == 0) {
			*route_r = &routes[i];
			mw_str_free(&methods);
			return 0;
		}
		path_seen = true;
		if (strstr(mw_str_c(&methods), routes[i].method) == NULL)
			(void)mw_str_appendf(&methods, "%s%s", methods.len > 0 ? ", " : "",
			                     routes[i].method);
	}
	req->nparams = 0;
	if (allowsize > 0)
		(void)mw_strlcpy(allow, mw_str_c(&methods), allowsize);
	mw_str_free(&methods);
	return path_seen ? 405 : 404;
}

/* api_status_text - the reason phrase of the statuses the API uses */
const char *api_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* JSON_BYTE - per byte: 1 when a JSON string escapes it ('"', '\\', control characters), 2 when
   it is not ASCII (the string's UTF-8 is then checked) */
static const unsigned char JSON_BYTE[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* json_string_out - a JSON string as jansson writes it (JSON_COMPACT, no ensure-ASCII, no
   escaped '/'): '"', '\\' and control characters escaped, the rest as is; -1 for invalid
   UTF-8 (jansson refuses to dump it too) */
static int json_string_out(mw_str *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, from = 0;
	unsigned kinds = 0;
	bool plain, ascii;
	int ret = 0;
	/* one table look-up a byte, no branch (this scan was a third of an answer's rendering) */
	for (i = 0; i < len; i++)
		kinds |= JSON_BYTE[(unsigned char)s[i]];
	plain = (kinds & 1) == 0;
	ascii = (kinds & 2) == 0;
	if (!ascii && !mw_utf8_valid(s, len, NULL))
		return -1;
	ret |= mw_str_appendc(out, '"');
	for (i = plain ? len : 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
		size_t n = 2;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
		}
		ret |= mw_str_append(out, s + from, i - from);
		ret |= mw_str_append(out, esc, n);
		from = i + 1;
	}
	ret |= mw_str_append(out, s + from, len - from);
	ret |= mw_str_appendc(out, '"');
	return ret < 0 ? -1 : 0;
}

/* json_value_out - one value, recursively (depth-bounded like jansson's dump) */
static int json_value_out(mw_str *out, const json_t *v, unsigned depth)
{
	char digits[24], *p = digits + sizeof(digits);
	void *iter;
	json_t *item;
	size_t i;
	int ret = 0;
	bool first = true;
	if (depth > 2048)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		ret |= mw_str_appendc(out, '{');
		for (iter = json_object_iter((json_t *)v); iter != NULL;
		     iter = json_object_iter_next((json_t *)v, iter)) {
			item = json_object_iter_value(iter);
			if (!first)
				ret |= mw_str_appendc(out, ',');
			first = false;
			if (json_string_out(out, json_object_iter_key(iter),
			                    json_object_iter_key_len(iter)) < 0 ||
			    mw_str_appendc(out, ':') < 0 ||
			    json_value_out(out, item, depth + 1) < 0)
				return -1;
		}
		ret |= mw_str_appendc(out, '}');
		break;
	case JSON_ARRAY:
		ret |= mw_str_appendc(out, '[');
		json_array_foreach(v, i, item)
		{
			if ((i > 0 && mw_str_appendc(out, ',') < 0) ||
			    json_value_out(out, item, depth + 1) < 0)
				return -1;
		}
		ret |= mw_str_appendc(out, ']');
		break;
	case JSON_STRING:
		return json_string_out(out, json_string_value(v), json_string_length(v));
	case JSON_INTEGER: {
		json_int_t n = json_integer_value(v);
		unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
		do {
			*--p = (char)('0' + u % 10);
			u /= 10;
		} while (u != 0);
		if (n < 0)
			*--p = '-';
		return mw_str_append(out, p, (size_t)(digits + sizeof(digits) - p));
	}
	case JSON_TRUE:
		return mw_str_appends(out, "true");
	case JSON_FALSE:
		return mw_str_appends(out, "false");
	case JSON_NULL:
		return mw_str_appends(out, "null");
	default: { /* a real: jansson's own formatting */
		char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text == NULL)
			return -1;
		ret = mw_str_appends(out, text);
		free(text);
	}
	}
	return ret < 0 ? -1 : 0;
}

/* api_json_render - append v as compact JSON, byte for byte what json_dumps(v,
   JSON_COMPACT) gives, without its per-container loop check (an answer is a tree built by
   the handler) and its intermediate copies; on failure out is left as it was and -1 */
int api_json_render(mw_str *out, const json_t *v)
{
	size_t mark = out->len;
	if (json_value_out(out, v, 0) < 0) {
		if (out->buf != NULL) {
			mw_memzero(out->buf + mark, out->len - mark);
			out->len = mark;
		}
		return -1;
	}
	return 0;
}

/* api_render_head - the CGI head: status, security headers, optional CORS */
void api_render_head(mw_str *out, const struct api_response *res, const char *cors_origin,
                     const char *req_origin)
{
	(void)mw_str_appendf(out, "Status: %d %s\r\n", res->status, api_status_text(res->status));
	if (res->raw != NULL)
		(void)mw_str_appendf(out, "Content-Type: %s\r\n", res->content_type);
	else if (res->body != NULL)
		(void)mw_str_appends(out, "Content-Type: application/json\r\n");
	if (res->disposition[0] != '\0')
		(void)mw_str_appendf(out, "Content-Disposition: %s\r\n", res->disposition);
	(void)mw_str_appends(out, "Cache-Control: no-store\r\n"
	                          "X-Content-Type-Options: nosniff\r\n"
	                          "Content-Security-Policy: default-src 'none'; "
	                          "frame-ancestors 'none'\r\n"
	                          "Referrer-Policy: no-referrer\r\n"
	                          "X-Frame-Options: DENY\r\n");
	if (res->retry_after[0] != '\0')
		(void)mw_str_appendf(out, "Retry-After: %s\r\n", res->retry_after);
	if (res->allow[0] != '\0')
		(void)mw_str_appendf(out, "Allow: %s\r\n", res->allow);
	if (res->set_cookie[0] != '\0')
		(void)mw_str_appendf(out, "Set-Cookie: %s\r\n", res->set_cookie);
	if (cors_origin != NULL && cors_origin[0] != '\0') {
		(void)mw_str_appends(out, "Vary: Origin\r\n");
		if (req_origin != NULL && strcmp(cors_origin, req_origin) == 0)
			(void)mw_str_appendf(out, "Access-Control-Allow-Origin: %s\r\n",
			                     cors_origin);
		if (res->cors_preflight)
			(void)mw_str_appends(out, "Access-Control-Allow-Methods: GET, POST, PUT, "
			                          "PATCH, DELETE\r\n"
			                          "Access-Control-Allow-Headers: Authorization, "
			                          "Content-Type\r\n"
			                          "Access-Control-Max-Age: 600\r\n");
	}
	(void)mw_str_appends(out, "\r\n");
}

/* what frees a block jansson gave back, once wiped (api_json_wipe_init) */
static void (*json_release)(void *) = free;

/* json_wipe_free - jansson's free: the whole block wiped first. Every string jansson copies
   out of a request body (a password, a TOTP secret or code, a recovery code) and every
   buffer its parser and dumper grow is freed through here. */
static void json_wipe_free(void *p)
{
	if (p == NULL)
		return;
	/* a memset the compiler keeps; sodium_memzero's byte loop costs more per block */
	explicit_bzero(p, malloc_usable_size(p));
	json_release(p);
}

/* api_json_wipe_init - make jansson wipe what it frees, for the whole process (once at
   start, before the workers fork); release frees the wiped block (NULL: free; tests pass
   a probe) */
void api_json_wipe_init(void (*release)(void *))
{
	json_release = release != NULL ? release : free;
	json_set_alloc_funcs(malloc, json_wipe_free);
}

/* api_request_free - free what a request owns and wipe its body */
void api_request_free(struct api_request *req)
{
	size_t i;
	for (i = 0; i < req->nsegments; i++)
		free(req->segments[i]);
	for (i = 0; i < req->nquery; i++) {
		free(req->query[i].name);
		free(req->query[i].value);
	}
	if (req->body != NULL) {
		mw_memzero(req->body, req->body_len);
		free(req->body);
	}
	if (req->json != NULL)
		json_decref(req->json);
	mw_user_clear(&req->user);
	memset(req, 0, sizeof(*req));
}

/* api_error - answer {"error":{"code":CODE,"message":...}} with status */
void api_error(struct api_response *res, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap); /* a cut message is still a message */
	va_end(ap);
	if (res->body != NULL)
		json_decref(res->body);
	free(res->raw);
	res->raw = NULL;
	res->disposition[0] = '\0';
	res->status = status;
	res->body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

/* api_raw - answer status with a body that is not JSON */
void api_raw(struct api_response *res, int status, const char *content_type, mw_str *body)
{
	if (res->body != NULL)
		json_decref(res->body);
	res->body = NULL;
	free(res->raw);
	res->status = status;
	res->raw_len = body->len;
	res->raw = mw_str_steal(body);
	res->content_type = content_type;
}

/* api_ok - answer status with body (owned; NULL = none) */
void api_ok(struct api_response *res, int status, json_t *body)
{
	free(res->raw);
	res->raw = NULL;
	if (res->body != NULL)
		json_decref(res->body);
	res->status = status;
	res->body = body;
}

/* api_fields_check - refuse members the route does not know */
int api_fields_check(struct api_request *req, struct api_response *res, const char *const *names)
{
	const char *key;
	json_t *value;
	size_t i;
	json_object_foreach(req->json, key, value)
	{
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(names[i], key) == 0)
				break;
		if (names[i] == NULL) {
			char safe[80];
			api_error(res, 422, "unknown_field", "unknown field %s",
			          mw_log_value(safe, sizeof(safe), key, strlen(key)));
			return -1;
		}
	}
	return 0;
}

/* api_field_string - a string member of the body */
int api_field_string(struct api_request *req, struct api_response *res, const char *name,
                     bool required, size_t max, const char **value_r)
{
	json_t *v = json_object_get(req->json, name);
	*value_r = NULL;
	if (v == NULL) {
		if (!required)
			return 0;
		api_error(res, 422, "missing_field", "field %s is required", name);
		return -1;
	}
	if (!json_is_string(v)) {
		api_error(res, 422, "invalid_field", "field %s must be a string", name);
		return -1;
	}
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v)) {
		api_error(res, 422, "invalid_field",
		          "field %s is longer than %zu bytes or holds NUL", name, max);
		return -1;
	}
	*value_r = json_string_value(v);
	return 1;
}

/* api_query_int - a whole-number query parameter */
int api_query_int(struct api_request *req, struct api_response *res, const char *name,
                  long long def, long long min, long long max, long long *value_r)
{
	const char *v = api_query_get(req, name);
	char *end;
	long long n;
	*value_r = def;
	if (v == NULL)
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < min || n > max) {
		api_error(res, 422, "invalid_parameter",
		          "query parameter %s must be a whole number in %lld..%lld", name, min,
		          max);
		return -1;
	}
	*value_r = n;
	return 0;
}

/* api_path_id - a route's {id} */
bool api_path_id(const char *s, long long *id_r)
{
	char *end;
	long long n;
	if (s[0] < '1' || s[0] > '9')
		return false;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (*end != '\0' || errno != 0)
		return false;
	*id_r = n;
	return true;
}

/* api_query_check - refuse query parameters the route does not know */
int api_query_check(struct api_request *req, struct api_response *res, const char *const *names)
{
	size_t i, k;
	for (i = 0; i < req->nquery; i++) {
		for (k = 0; names[k] != NULL; k++)
			if (strcmp(names[k], req->query[i].name) == 0)
				break;
		if (names[k] == NULL) {
			char safe[80];
			api_error(res, 422, "invalid_parameter", "unknown query parameter %s",
			          mw_log_value(safe, sizeof(safe), req->query[i].name,
			                       strlen(req->query[i].name)));
			return -1;
		}
	}
	return 0;
}
