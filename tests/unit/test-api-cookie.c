/* test-api-cookie.c - the web page's session cookie: parsing, CSRF token, origin checks. */
#include "mw-build.h"
#include "api-common.h"
#include "mw-test.h"

#include <sodium.h>
#include <string.h>

#define TOKEN "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" /* 43 base64url characters */

/* api_session_create - not reached here (api_cookie_login is tested through nginx) */
void api_session_create(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	(void)ctx;
	(void)req;
	api_error(res, 500, "internal", "not in this test");
}

/* request - a cookie request as nginx passes it: same origin unless a test changes it */
static void request(struct api_request *req, const char *method, const char *cookie)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->cookie = cookie;
	req->host = "mail.example.org";
	req->server_port = "443";
	req->https = "on";
	req->origin = "https://mail.example.org";
	req->sec_fetch_site = "same-origin";
}

/* prepare - api_cookie_prepare's result: 0, or the status and error code it answered */
static int prepare(struct api_request *req, char *code, size_t codesize)
{
	struct api_response res;
	json_t *e;
	int rc;
	memset(&res, 0, sizeof(res));
	code[0] = '\0';
	rc = api_cookie_prepare(NULL, req, &res);
	if (rc == 0) {
		assert_int_equal(res.status, 0);
		return 0;
	}
	e = json_object_get(json_object_get(res.body, "error"), "code");
	(void)mw_strlcpy(code, json_string_value(e), codesize);
	json_decref(res.body);
	return res.status;
}

/* test_csrf_token - derived from the token, stable, unlike it and unlike another's */
static void test_csrf_token(void **state)
{
	char a[API_CSRF_CHARS + 1], b[API_CSRF_CHARS + 1], c[API_CSRF_CHARS + 1];
	(void)state;
	api_cookie_csrf(TOKEN, a);
	api_cookie_csrf(TOKEN, b);
	api_cookie_csrf("BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", c);
	assert_int_equal(strlen(a), API_CSRF_CHARS);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(a, TOKEN);
}

/* test_cookie_parsing - our cookie among others; two of them or a bad value refused */
static void test_cookie_parsing(void **state)
{
	static const struct {
		const char *cookie;
		int status;  /* 0: accepted (found or not) */
		bool bearer; /* authorization set from the cookie */
	} cases[] = {
	    {"__Host-mw_session=" TOKEN, 0, true},
	    {"theme=dark; __Host-mw_session=" TOKEN "; lang=en", 0, true},
	    {"theme=dark", 0, false},
	    {"", 0, false},
	    {"x__Host-mw_session=" TOKEN, 0, false},
	    {"__Host-mw_session2=" TOKEN, 0, false},
	    {"__Host-mw_session=" TOKEN "; __Host-mw_session=" TOKEN, 401, false},
	    {"__Host-mw_session=", 401, false},
	    {"__Host-mw_session=" TOKEN "!", 401, false},
	    {"__Host-mw_session=" TOKEN " ", 401, false},
	    {"__Host-mw_session=" TOKEN TOKEN TOKEN, 401, false},
	};
	struct api_request req;
	char code[64];
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		request(&req, "GET", cases[i].cookie);
		assert_int_equal(prepare(&req, code, sizeof(code)), cases[i].status);
		if (cases[i].bearer)
			assert_string_equal(req.authorization, "Bearer " TOKEN);
		else
			assert_null(req.authorization);
	}
	/* a bearer request ignores the cookie, even a broken one */
	request(&req, "POST", "__Host-mw_session=!!");
	req.authorization = "Bearer x";
	assert_int_equal(prepare(&req, code, sizeof(code)), 0);
	assert_string_equal(req.authorization, "Bearer x");
}

/* test_csrf_required - a change through the cookie needs the right token */
static void test_csrf_required(void **state)
{
	char csrf[API_CSRF_CHARS + 1], other[API_CSRF_CHARS + 1], wrong[API_CSRF_CHARS + 1],
	    code[64];
	struct api_request req;
	const char *methods[] = {"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get"};
	size_t i;
	(void)state;
	api_cookie_csrf(TOKEN, csrf);
	api_cookie_csrf("BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", other);
	memcpy(wrong, csrf, sizeof(wrong));
	wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
	for (i = 0; i < MW_N_ELEMENTS(methods); i++) {
		request(&req, methods[i], "__Host-mw_session=" TOKEN);
		assert_int_equal(prepare(&req, code, sizeof(code)), 403);
		assert_string_equal(code, "csrf_missing");
		request(&req, methods[i], "__Host-mw_session=" TOKEN);
		req.csrf_header = "";
		assert_int_equal(prepare(&req, code, sizeof(code)), 403);
		assert_string_equal(code, "csrf_missing");
		request(&req, methods[i], "__Host-mw_session=" TOKEN);
		req.csrf_header = other;
		assert_int_equal(prepare(&req, code, sizeof(code)), 403);
		assert_string_equal(code, "csrf_invalid");
		request(&req, methods[i], "__Host-mw_session=" TOKEN);
		req.csrf_header = wrong;
		assert_int_equal(prepare(&req, code, sizeof(code)), 403);
		assert_string_equal(code, "csrf_invalid");
		request(&req, methods[i], "__Host-mw_session=" TOKEN);
		req.csrf_header = TOKEN; /* the session token itself is not the CSRF token */
		assert_int_equal(prepare(&req, code, sizeof(code)), 403);
		request(&req, methods[i], "__Host-mw_session=" TOKEN);
		req.csrf_header = csrf;
		assert_int_equal(prepare(&req, code, sizeof(code)), 0);
		assert_string_equal(req.authorization, "Bearer " TOKEN);
	}
	/* GET and HEAD change nothing and need no token */
	request(&req, "HEAD", "__Host-mw_session=" TOKEN);
	assert_int_equal(prepare(&req, code, sizeof(code)), 0);
}

/* test_origins - Origin must name the request's scheme, host and port */
static void test_origins(void **state)
{
	static const struct {
		const char *origin, *sfs, *https, *host, *port;
		int status;
	} cases[] = {
	    {"https://mail.example.org", "same-origin", "on", "mail.example.org", "443", 0},
	    {"https://mail.example.org:443", NULL, "on", "mail.example.org", "443", 0},
	    {"https://MAIL.example.org", NULL, "on", "mail.example.org", "443", 0},
	    {NULL, NULL, "on", "mail.example.org", "443", 0},
	    {"http://127.0.0.1:8080", NULL, NULL, "127.0.0.1", "8080", 0},
	    {"http://[::1]:8080", NULL, NULL, "[::1]", "8080", 0},
	    {"http://mail.example.org", NULL, "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org", NULL, NULL, "mail.example.org", "443", 403},
	    {"https://mail.example.org:8443", NULL, "on", "mail.example.org", "443", 403},
	    {"https://evil.example", NULL, "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org.evil.example", NULL, "on", "mail.example.org", "443", 403},
	    {"https://mail.example.or", NULL, "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org/", NULL, "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org:443@evil.example", NULL, "on", "mail.example.org", "443",
	     403},
	    {"https://mail.example.org:0443", NULL, "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org:", NULL, "on", "mail.example.org", "443", 403},
	    {"http://127.0.0.1:8081", NULL, NULL, "127.0.0.1", "8080", 403},
	    {"http://127.0.0.1", NULL, NULL, "127.0.0.1", "8080", 403},
	    {"http://[::1", NULL, NULL, "[::1]", "8080", 403},
	    {"null", NULL, "on", "mail.example.org", "443", 403},
	    {"", NULL, "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org", NULL, "on", NULL, "443", 403},
	    {"https://mail.example.org", NULL, "on", "", "443", 403},
	    {"https://mail.example.org", NULL, "on", "mail.example.org", NULL, 403},
	    {"https://mail.example.org", "cross-site", "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org", "same-site", "on", "mail.example.org", "443", 403},
	    {"https://mail.example.org", "none", "on", "mail.example.org", "443", 403},
	    {NULL, "cross-site", "on", "mail.example.org", "443", 403},
	    {NULL, "", "on", "mail.example.org", "443", 403},
	};
	char csrf[API_CSRF_CHARS + 1], code[64];
	struct api_request req;
	size_t i;
	(void)state;
	api_cookie_csrf(TOKEN, csrf);
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		request(&req, "POST", "__Host-mw_session=" TOKEN);
		req.csrf_header = csrf;
		req.origin = cases[i].origin;
		req.sec_fetch_site = cases[i].sfs;
		req.https = cases[i].https;
		req.host = cases[i].host;
		req.server_port = cases[i].port;
		if (prepare(&req, code, sizeof(code)) != cases[i].status)
			fail_msg("case %zu (%s): expected %d", i,
			         cases[i].origin != NULL ? cases[i].origin : "(no origin)",
			         cases[i].status);
		if (cases[i].status == 403)
			assert_string_equal(code, "cross_origin");
	}
}

/* test_finish - the token of a cookie login moves into the cookie; logout clears it */
static void test_finish(void **state)
{
	struct api_request req;
	struct api_response res;
	char csrf[API_CSRF_CHARS + 1];
	(void)state;
	api_cookie_csrf(TOKEN, csrf);
	request(&req, "POST", NULL);
	req.cookie_login = true;
	memset(&res, 0, sizeof(res));
	api_ok(&res, 201, json_pack("{s:s,s:s}", "token", TOKEN, "id", "abc"));
	api_cookie_finish(NULL, &req, &res);
	assert_string_equal(res.set_cookie, "__Host-mw_session=" TOKEN
	                                    "; Path=/; Secure; HttpOnly; SameSite=Strict");
	assert_null(json_object_get(res.body, "token"));
	assert_string_equal(json_string_value(json_object_get(res.body, "csrf_token")), csrf);
	json_decref(res.body);
	/* a bearer login is left alone */
	request(&req, "POST", NULL);
	memset(&res, 0, sizeof(res));
	api_ok(&res, 201, json_pack("{s:s}", "token", TOKEN));
	api_cookie_finish(NULL, &req, &res);
	assert_string_equal(res.set_cookie, "");
	assert_non_null(json_object_get(res.body, "token"));
	json_decref(res.body);
	/* a cookie request answered 401 clears the cookie */
	request(&req, "GET", "__Host-mw_session=" TOKEN);
	req.via_cookie = true;
	memset(&res, 0, sizeof(res));
	api_error(&res, 401, "invalid_session", "x");
	api_cookie_finish(NULL, &req, &res);
	assert_non_null(strstr(res.set_cookie, "__Host-mw_session=; Max-Age=0"));
	json_decref(res.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csrf_token),    cmocka_unit_test(test_cookie_parsing),
	    cmocka_unit_test(test_csrf_required), cmocka_unit_test(test_origins),
	    cmocka_unit_test(test_finish),
	};
	if (sodium_init() < 0)
		return 1;
	MW_RUN_TESTS(tests);
}
