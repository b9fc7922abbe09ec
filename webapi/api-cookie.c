/* api-cookie.c - mailwarden-api: the web page's session cookie and its CSRF protection.
 *
 * The web page (web/) must not hold the session token where a script could read it, so it
 * logs in with POST /api/v1/sessions/cookie: the same login as POST /sessions, but the token
 * goes into a cookie
 *     __Host-mw_session=TOKEN; Path=/; Secure; HttpOnly; SameSite=Strict
 * (no Max-Age: it ends with the browser, or earlier with the session on the server) and the
 * answer carries a CSRF token instead of the session token. The CSRF token is derived from
 * the session token (HMAC-SHA256 keyed with it), so nothing new is stored, it changes with
 * every session and refresh, and knowing it does not reveal the session token. The page
 * reads it again after a reload from GET /api/v1/sessions/current (a GET: another origin
 * cannot read the answer).
 *
 * A request that carries an Authorization header is a bearer request and the cookie is
 * ignored. A request authenticated by the cookie that changes anything (every method but
 * GET and HEAD) needs, or is refused with 403:
 *   - X-CSRF-Token equal to the session's CSRF token (csrf_missing / csrf_invalid);
 *   - no sign of another origin: Sec-Fetch-Site, when sent, "same-origin"; Origin, when
 *     sent, naming the request's own scheme (HTTPS), host (HTTP_HOST) and port
 *     (SERVER_PORT) (cross_origin).
 * The cookie login itself checks the origin the same way (login CSRF); that it needs an
 * application/json body already keeps HTML forms of other sites out. Two cookies of our
 * name in one request, or a malformed one, cannot be decided between and get a 401.
 * A cookie request answered 401 clears the cookie; so does logging out (DELETE
 * /sessions/current) and a refresh through the cookie sets the new one.
 *
 * Public: api_cookie_prepare, api_cookie_finish, api_cookie_login, api_session_current,
 * api_cookie_csrf.
 */
#include "mw-build.h"
#include "api-common.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define COOKIE_ATTRS "; Path=/; Secure; HttpOnly; SameSite=Strict"
#define TOKEN_MAX    64

/* api_cookie_csrf - the CSRF token of a session token (43 base64url characters) */
void api_cookie_csrf(const char *token, char out[API_CSRF_CHARS + 1])
{
	static const char label[] = "mailwarden csrf v1";
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	(void)crypto_auth_hmacsha256_init(&st, (const unsigned char *)token, strlen(token));
	(void)crypto_auth_hmacsha256_update(&st, (const unsigned char *)label, sizeof(label) - 1);
	(void)crypto_auth_hmacsha256_final(&st, mac);
	(void)sodium_bin2base64(out, API_CSRF_CHARS + 1, mac, sizeof(mac),
	                        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(&st, sizeof(st));
}

/* cookie_token - our cookie's value from the Cookie header: 1 found, 0 none, -1 two of
   them or one that is not a plausible token */
static int cookie_token(const char *header, char *out, size_t outsize)
{
	const char *p = header, *end, *v;
	size_t nlen = strlen(API_COOKIE_NAME), len;
	int found = 0;
	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		end = strchr(p, ';');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > nlen && memcmp(p, API_COOKIE_NAME, nlen) == 0 && p[nlen] == '=') {
			v = p + nlen + 1;
			if (found || (size_t)(p + len - v) >= outsize || p + len == v)
				return -1;
			memcpy(out, v, (size_t)(p + len - v));
			out[p + len - v] = '\0';
			for (size_t i = 0; out[i] != '\0'; i++)
				if (!((out[i] >= 'A' && out[i] <= 'Z') ||
				      (out[i] >= 'a' && out[i] <= 'z') ||
				      (out[i] >= '0' && out[i] <= '9') || out[i] == '-' ||
				      out[i] == '_'))
					return -1;
			found = 1;
		}
		p = end;
	}
	return found;
}

/* origin_matches - does the Origin header name this request's scheme, host and port? The
   host is compared with HTTP_HOST and the port with SERVER_PORT, since nginx's Debian
   fastcgi_params pass HTTP_HOST as $host, without the port. */
static bool origin_matches(const struct api_request *req)
{
	bool tls = req->https != NULL && strcmp(req->https, "on") == 0;
	const char *o = req->origin, *host, *end, *port;
	size_t hlen;
	if (req->host == NULL || req->host[0] == '\0' || req->server_port == NULL)
		return false;
	if (strncmp(o, tls ? "https://" : "http://", tls ? 8 : 7) != 0)
		return false;
	host = o + (tls ? 8 : 7);
	end = host[0] == '[' ? strchr(host, ']') : host;
	if (end == NULL)
		return false;
	port = strchr(end, ':');
	hlen = port != NULL ? (size_t)(port - host) : strlen(host);
	if (hlen == 0 || hlen != strlen(req->host) ||
	    mw_ascii_strncasecmp(host, req->host, hlen) != 0)
		return false;
	if (port == NULL)
		return strcmp(req->server_port, tls ? "443" : "80") == 0;
	port++;
	return port[0] != '\0' && strspn(port, "0123456789") == strlen(port) && port[0] != '0' &&
	       strcmp(port, req->server_port) == 0;
}

/* same_origin - no sign that the request comes from another origin (see the header) */
static bool same_origin(const struct api_request *req)
{
	if (req->sec_fetch_site != NULL && strcmp(req->sec_fetch_site, "same-origin") != 0)
		return false;
	return req->origin == NULL || origin_matches(req);
}

/* method_is_safe - GET and HEAD change nothing */
static bool method_is_safe(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* api_cookie_prepare - before authentication: a request without Authorization but with
   our cookie becomes a bearer request once its CSRF token and origin pass; -1 with res
   set when they do not */
int api_cookie_prepare(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char token[TOKEN_MAX], csrf[API_CSRF_CHARS + 1];
	int found;
	(void)ctx;
	if (req->authorization != NULL || req->cookie == NULL)
		return 0;
	found = cookie_token(req->cookie, token, sizeof(token));
	if (found == 0)
		return 0;
	req->via_cookie = true;
	if (found < 0) {
		api_error(res, 401, "invalid_session", "the session cookie is not valid");
		return -1;
	}
	if (!method_is_safe(req->method)) {
		if (!same_origin(req)) {
			api_error(res, 403, "cross_origin",
			          "a request from another origin cannot use the session cookie");
			sodium_memzero(token, sizeof(token));
			return -1;
		}
		if (req->csrf_header == NULL || req->csrf_header[0] == '\0') {
			api_error(
			    res, 403, "csrf_missing",
			    "a change through the session cookie needs the X-CSRF-Token header");
			sodium_memzero(token, sizeof(token));
			return -1;
		}
		api_cookie_csrf(token, csrf);
		if (strlen(req->csrf_header) != API_CSRF_CHARS ||
		    sodium_memcmp(req->csrf_header, csrf, API_CSRF_CHARS) != 0) {
			api_error(res, 403, "csrf_invalid", "the X-CSRF-Token header is not valid");
			sodium_memzero(token, sizeof(token));
			return -1;
		}
	}
	(void)snprintf(req->cookie_auth, sizeof(req->cookie_auth), "Bearer %s", token);
	req->authorization = req->cookie_auth;
	sodium_memzero(token, sizeof(token));
	return 0;
}

/* set_cookie - put the token into res's cookie, the CSRF token into its body */
static void set_cookie(struct api_response *res, const char *token)
{
	char csrf[API_CSRF_CHARS + 1];
	api_cookie_csrf(token, csrf);
	(void)snprintf(res->set_cookie, sizeof(res->set_cookie), "%s=%s" COOKIE_ATTRS,
	               API_COOKIE_NAME, token);
	json_object_set_new(res->body, "csrf_token", json_string(csrf));
	json_object_del(res->body, "token");
}

/* api_cookie_finish - after the handler: a new session token of a cookie login or
   cookie refresh goes into the cookie; logout and a refused cookie clear it */
void api_cookie_finish(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	json_t *tok;
	(void)ctx;
	if (!req->via_cookie && !req->cookie_login)
		return;
	tok = res->body != NULL ? json_object_get(res->body, "token") : NULL;
	if (res->status == 201 && json_is_string(tok)) {
		char token[TOKEN_MAX];
		if (mw_strlcpy(token, json_string_value(tok), sizeof(token)) == 0) {
			set_cookie(res, token);
		} else {
			json_decref(res->body);
			res->body = NULL;
			api_error(res, 500, "internal", "the session token does not fit a cookie");
		}
		sodium_memzero(token, sizeof(token));
		return;
	}
	if (req->via_cookie && (res->status == 401 ||
	                        (res->status == 204 && strcmp(req->method, "DELETE") == 0 &&
	                         req->nsegments == 4 && strcmp(req->segments[2], "sessions") == 0 &&
	                         strcmp(req->segments[3], "current") == 0)))
		(void)snprintf(res->set_cookie, sizeof(res->set_cookie),
		               "%s=; Max-Age=0" COOKIE_ATTRS, API_COOKIE_NAME);
}

/* api_cookie_login - POST /sessions/cookie: log in as POST /sessions, token in a cookie */
void api_cookie_login(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	if (!same_origin(req)) {
		api_error(res, 403, "cross_origin", "a login from another origin is refused");
		return;
	}
	req->cookie_login = true;
	api_session_create(ctx, req, res);
}

/* api_session_current - GET /sessions/current: who is logged in (with two-factor login
   on or not), and the CSRF token when through the cookie */
void api_session_current(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	char token[TOKEN_MAX], csrf[API_CSRF_CHARS + 1];
	json_t *o;
	(void)ctx;
	if (api_query_check(req, res, params) < 0)
		return;
	o = json_pack("{s:s,s:s,s:I,s:I,s:b,s:b}", "username", req->user.username, "role",
	              req->user.role == MW_ROLE_ADMIN ? "admin" : "user", "expires_at",
	              (json_int_t)req->session.expires_at, "idle_timeout",
	              (json_int_t)req->session.idle_timeout, "cookie", req->via_cookie, "totp",
	              req->user.has_totp);
	if (req->via_cookie && mw_strlcpy(token, req->authorization + 7, sizeof(token)) == 0) {
		api_cookie_csrf(token, csrf);
		json_object_set_new(o, "csrf_token", json_string(csrf));
		sodium_memzero(token, sizeof(token));
	}
	api_ok(res, 200, o);
}
