/* test-api-http.c - mailwarden-api request parsing, routing and response headers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "mw-build.h"
#include "api-common.h"
#include "mw-test.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* Handlers are never called here: the routing tests only look at which route matched. */
static void h_dummy(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	(void)ctx;
	(void)req;
	(void)res;
}

static const struct api_route routes[] = {
    {"GET", "/api/v1/users", API_ROLE_ADMIN, h_dummy},
    {"POST", "/api/v1/users", API_ROLE_ADMIN, h_dummy},
    {"GET", "/api/v1/users/{username}", API_ROLE_SELF, h_dummy},
    {"DELETE", "/api/v1/sessions/current", API_ROLE_USER, h_dummy},
    {"DELETE", "/api/v1/sessions/{id}", API_ROLE_USER, h_dummy},
    {"DELETE", "/api/v1/users/{username}/allowed-from/{pattern}", API_ROLE_ADMIN, h_dummy},
};

/* test_path_split - good paths decode, hostile ones are refused */
static void test_path_split(void **state)
{
	static const struct {
		const char *uri;
		int ok;
		size_t nseg;
		const char *last;
	} cases[] = {
	    {"/api/v1/users", 0, 3, "users"},
	    {"/api/v1/users/a%40b.example", 0, 4, "a@b.example"},
	    {"/api/v1/users/x?limit=5", 0, 4, "x"},
	    {"/api/v1/users/", 0, 4, ""},
	    {"/api/v1/users/..%2Fetc", -1, 0, NULL},
	    {"/api/v1/users/%2e%2e", -1, 0, NULL},
	    {"/api/v1/users/..", -1, 0, NULL},
	    {"/api/v1/users/.", -1, 0, NULL},
	    {"/api/v1/users/a%00b", -1, 0, NULL},
	    {"/api/v1/users/a%0Ab", -1, 0, NULL},
	    {"/api/v1/users/a%zz", -1, 0, NULL},
	    {"/api/v1/users/a%4", -1, 0, NULL},
	    {"/api/v1/users/a%", -1, 0, NULL},
	    {"/api/v1/users/%ff%fe", -1, 0, NULL},
	    {"/api/v1/users/%C3%A9", 0, 4, "\xc3\xa9"},
	    {"api/v1", -1, 0, NULL},
	    {"/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", -1, 0, NULL},
	    {"/api/v1/users?x=%00", -1, 0, NULL},
	    {"/api/v1/users?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13&n=14&o=15&"
	     "p=16&q=17",
	     -1, 0, NULL},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct api_request req;
		mw_error err = {{0}};
		int rc;
		memset(&req, 0, sizeof(req));
		rc = api_path_split(cases[i].uri, &req, &err);
		if (rc != cases[i].ok)
			fail_msg("%s: rc %d, expected %d (%s)", cases[i].uri, rc, cases[i].ok,
			         err.msg);
		if (rc == 0) {
			assert_int_equal(req.nsegments, cases[i].nseg);
			assert_string_equal(req.segments[req.nsegments - 1], cases[i].last);
		} else {
			assert_true(err.msg[0] != '\0');
		}
		api_request_free(&req);
	}
}

/* test_query - decoding, '+' as blank, lookup */
static void test_query(void **state)
{
	struct api_request req;
	mw_error err = {{0}};
	(void)state;
	memset(&req, 0, sizeof(req));
	assert_int_equal(api_path_split("/x?actor=api%3Aal+ice&&limit=5&flag", &req, &err), 0);
	assert_string_equal(api_query_get(&req, "actor"), "api:al ice");
	assert_string_equal(api_query_get(&req, "limit"), "5");
	assert_string_equal(api_query_get(&req, "flag"), "");
	assert_null(api_query_get(&req, "none"));
	api_request_free(&req);
}

/* test_content_type - only JSON (UTF-8) is accepted */
static void test_content_type(void **state)
{
	(void)state;
	assert_true(api_content_type_is_json("application/json"));
	assert_true(api_content_type_is_json("Application/JSON; charset=UTF-8"));
	assert_true(api_content_type_is_json("application/json;charset=utf-8"));
	assert_false(api_content_type_is_json(NULL));
	assert_false(api_content_type_is_json(""));
	assert_false(api_content_type_is_json("text/plain"));
	assert_false(api_content_type_is_json("application/jsonx"));
	assert_false(api_content_type_is_json("application/json; charset=latin1"));
	assert_false(api_content_type_is_json("application/x-www-form-urlencoded"));
}

/* test_routes - match, parameters, 404 and 405 with Allow */
static void test_routes(void **state)
{
	static const struct {
		const char *method, *uri;
		int rc;
		int index;
		const char *param0, *allow;
	} cases[] = {
	    {"GET", "/api/v1/users", 0, 0, NULL, NULL},
	    {"POST", "/api/v1/users", 0, 1, NULL, NULL},
	    {"PUT", "/api/v1/users", 405, -1, NULL, "GET, POST"},
	    {"GET", "/api/v1/users/bob%40x.org", 0, 2, "bob@x.org", NULL},
	    {"GET", "/api/v1/users/", 404, -1, NULL, NULL},
	    {"GET", "/api/v1/users/a/b", 404, -1, NULL, NULL},
	    {"DELETE", "/api/v1/sessions/current", 0, 3, NULL, NULL},
	    {"DELETE", "/api/v1/sessions/abc", 0, 4, "abc", NULL},
	    {"GET", "/api/v1/sessions/abc", 405, -1, NULL, "DELETE"},
	    {"DELETE", "/api/v1/users/u/allowed-from/*%40x.org", 0, 5, "u", NULL},
	    {"GET", "/api/v2/users", 404, -1, NULL, NULL},
	    {"GET", "/", 404, -1, NULL, NULL},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		const struct api_route *route;
		struct api_request req;
		char allow[128] = "";
		mw_error err = {{0}};
		int rc;
		memset(&req, 0, sizeof(req));
		req.method = cases[i].method;
		assert_int_equal(api_path_split(cases[i].uri, &req, &err), 0);
		rc = api_route_match(routes, MW_N_ELEMENTS(routes), &req, &route, allow,
		                     sizeof(allow));
		if (rc != cases[i].rc)
			fail_msg("%s %s: %d, expected %d", cases[i].method, cases[i].uri, rc,
			         cases[i].rc);
		if (rc == 0) {
			assert_ptr_equal(route, &routes[cases[i].index]);
			if (cases[i].param0 != NULL)
				assert_string_equal(req.params[0], cases[i].param0);
		}
		if (cases[i].allow != NULL)
			assert_string_equal(allow, cases[i].allow);
		api_request_free(&req);
	}
}

/* test_head - security headers always; CORS only for the configured origin */
static void test_head(void **state)
{
	struct api_response res;
	mw_str out;
	(void)state;
	memset(&res, 0, sizeof(res));
	api_error(&res, 404, "not_found", "no such %s", "thing");
	mw_str_init(&out, 0);
	api_render_head(&out, &res, "", "https://evil.example");
	assert_non_null(strstr(out.buf, "Status: 404 Not Found\r\n"));
	assert_non_null(strstr(out.buf, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(out.buf, "Cache-Control: no-store\r\n"));
	assert_non_null(strstr(out.buf, "X-Content-Type-Options: nosniff\r\n"));
	assert_non_null(strstr(out.buf, "Content-Security-Policy: default-src 'none'"));
	assert_non_null(strstr(out.buf, "Referrer-Policy: no-referrer\r\n"));
	assert_non_null(strstr(out.buf, "X-Frame-Options: DENY\r\n"));
	assert_null(strstr(out.buf, "Access-Control"));
	assert_int_equal(strcmp(out.buf + out.len - 4, "\r\n\r\n"), 0);
	mw_str_reset(&out);
	api_render_head(&out, &res, "https://admin.example", "https://evil.example");
	assert_null(strstr(out.buf, "Access-Control-Allow-Origin"));
	mw_str_reset(&out);
	api_render_head(&out, &res, "https://admin.example", "https://admin.example");
	assert_non_null(strstr(out.buf, "Access-Control-Allow-Origin: https://admin.example\r\n"));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(res.body, "error"), "code")),
	    "not_found");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(res.body, "error"), "message")),
	    "no such thing");
	json_decref(res.body);
	mw_str_free(&out);
}

/* test_fields - unknown fields and wrong types are 422 naming the field */
static void test_fields(void **state)
{
	static const char *const names[] = {"username", "password", NULL};
	static const struct {
		const char *body;
		int rc;
		const char *needle;
	} cases[] = {
	    {"{\"username\":\"a\",\"password\":\"b\"}", 1, NULL},
	    {"{\"username\":5}", -1, "username"},
	    {"{\"username\":null}", -1, "username"},
	    {"{\"password\":\"b\"}", -1, "username"},
	    {"{\"username\":\"a\",\"evil\":1}", -1, "evil"},
	    {"{\"username\":\"a\\u0000b\"}", -1, "username"},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct api_request req;
		struct api_response res;
		const char *v;
		int rc;
		memset(&req, 0, sizeof(req));
		memset(&res, 0, sizeof(res));
		req.json = json_loads(cases[i].body, JSON_ALLOW_NUL, NULL);
		assert_non_null(req.json);
		rc = api_fields_check(&req, &res, names);
		if (rc == 0)
			rc = api_field_string(&req, &res, "username", true, 100, &v);
		assert_int_equal(rc, cases[i].rc);
		if (rc < 0) {
			const char *msg = json_string_value(
			    json_object_get(json_object_get(res.body, "error"), "message"));
			assert_int_equal(res.status, 422);
			assert_non_null(strstr(msg, cases[i].needle));
		}
		if (res.body != NULL)
			json_decref(res.body);
		api_request_free(&req);
	}
}

/* test_client_net - lockouts count IPv4 per configured prefix, IPv6 per /64 (issue 9) */
static void test_client_net(void **state)
{
	static const struct {
		const char *ip;
		int v4, v6;
		const char *net;
	} cases[] = {
	    {"192.0.2.7", 32, 64, "192.0.2.7/32"},
	    {"192.0.2.7", 24, 64, "192.0.2.0/24"},
	    {"192.0.2.255", 8, 64, "192.0.0.0/8"},
	    {"2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"},
	    {"2001:db8:1:2:ffff:ffff:ffff:ffff", 32, 64, "2001:db8:1:2::/64"},
	    {"2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6/128"},
	    {"2001:db8:1:2:3:4:5:6", 32, 56, "2001:db8:1::/56"},
	    {"::ffff:198.51.100.9", 24, 64, "198.51.100.0/24"},
	    {"::1", 32, 64, "::/64"},
	    {"", 32, 64, "unknown"},
	    {"not-an-address", 32, 64, "unknown"},
	    {"192.0.2.7/24", 32, 64, "unknown"},
	    {NULL, 32, 64, "unknown"},
	};
	char out[64];
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		api_client_net(cases[i].ip, cases[i].v4, cases[i].v6, out, sizeof(out));
		if (strcmp(out, cases[i].net) != 0)
			fail_msg("case %zu (%s): %s, expected %s", i,
			         cases[i].ip != NULL ? cases[i].ip : "NULL", out, cases[i].net);
	}
}

/* test_json_render - api_json_render writes what json_dumps(JSON_COMPACT) writes, byte for
   byte, for what answers hold (and more); what jansson will not dump, it refuses too */
static void test_json_render(void **state)
{
	static const char *const texts[] = {
	    "{}",
	    "[]",
	    "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
	    "{\"username\":\"b\u00e9nch@example.org\",\"n\":-9223372036854775808,"
	    "\"m\":9223372036854775807,\"z\":0,\"r\":1.5,\"e\":1e300,\"f\":-0.0}",
	    "[\"quote \\\" back \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"]",
	    "[\"\\u0001\\u001f\\u007f\\u0000 nul\", \"\u20ac \\ud83d\\ude00 \u00ff\", \"\"]",
	    "{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}",
	    "[[[[[[1]]]]],{\"\":\"\"}]",
	    "\"a bare string\"",
	    "42",
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(texts); i++) {
		json_error_t jerr;
		json_t *v = json_loads(texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		char *want;
		mw_str out;
		if (v == NULL)
			fail_msg("case %zu: %s", i, jerr.text);
		want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		assert_non_null(want);
		mw_str_init(&out, 0);
		(void)mw_str_appends(&out, "head ");
		assert_int_equal(api_json_render(&out, v), 0);
		if (strcmp(mw_str_c(&out) + 5, want) != 0)
			fail_msg("case %zu: %s, json_dumps %s", i, mw_str_c(&out) + 5, want);
		free(want);
		mw_str_free(&out);
		json_decref(v);
	}
	/* a key with a NUL in it */
	{
		json_t *o = json_object();
		char *want;
		mw_str out;
		json_object_setn_new(o, "k\0ey", 4, json_string("v"));
		want = json_dumps(o, JSON_COMPACT);
		mw_str_init(&out, 0);
		assert_int_equal(api_json_render(&out, o), 0);
		assert_non_null(want);
		assert_int_equal(out.len, strlen(want));
		assert_memory_equal(out.buf, want, out.len);
		free(want);
		mw_str_free(&out);
		json_decref(o);
	}
	/* invalid UTF-8 (only through _nocheck): jansson dumps nothing, neither does the
	   renderer, and out keeps what it had */
	{
		json_t *o = json_pack("{s:o}", "a", json_stringn_nocheck("\xff\xfe", 2));
		mw_str out;
		assert_null(json_dumps(o, JSON_COMPACT));
		mw_str_init(&out, 0);
		(void)mw_str_appends(&out, "head");
		assert_int_equal(api_json_render(&out, o), -1);
		assert_string_equal(mw_str_c(&out), "head");
		mw_str_free(&out);
		json_decref(o);
	}
}

#define SECRET "hunter2-SECRET-pw"

static size_t released, released_holding;

/* probe_release - the last look at a block jansson frees: does it still hold SECRET? */
static void probe_release(void *p)
{
	released++;
	if (memmem(p, malloc_usable_size(p), SECRET, strlen(SECRET)) != NULL)
		released_holding++;
	free(p);
}

/* parse_and_answer - what a request with a password does with jansson: parse the body
   (each string copied out of it), build an answer holding the value, render and dump it */
static void parse_and_answer(void)
{
	static const char body[] = "{\"username\":\"u@example.org\",\"password\":\"" SECRET
	                           "\",\"padding\":\"" SECRET SECRET SECRET SECRET "\"}";
	json_error_t jerr;
	json_t *o = json_loadb(body, strlen(body), JSON_REJECT_DUPLICATES, &jerr), *a;
	char *text;
	mw_str out;
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "password")), SECRET);
	a = json_pack("{s:O}", "password", json_object_get(o, "password"));
	mw_str_init(&out, 0);
	assert_int_equal(api_json_render(&out, a), 0);
	mw_memzero(out.buf, out.len);
	mw_str_free(&out);
	text = json_dumps(a, JSON_COMPACT);
	assert_non_null(text);
	mw_memzero(text, strlen(text));
	free(text);
	json_decref(a);
	json_decref(o);
}

/* test_json_wiped - with the API's allocation functions no block jansson frees still holds
   a password from a request body: the copies json_loadb makes (values, its lexer's
   buffer) and json_dumps' growing buffer are wiped first */
static void test_json_wiped(void **state)
{
	(void)state;
	/* the probe first: jansson left to itself gives blocks back with the password in */
	json_set_alloc_funcs(malloc, probe_release);
	released = released_holding = 0;
	parse_and_answer();
	assert_true(released_holding > 0);
	/* the API's way: every block wiped before it is freed */
	api_json_wipe_init(probe_release);
	released = released_holding = 0;
	parse_and_answer();
	assert_true(released > 5);
	assert_int_equal(released_holding, 0);
	api_json_wipe_init(NULL);
	json_set_alloc_funcs(malloc, free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_split),   cmocka_unit_test(test_query),
	    cmocka_unit_test(test_content_type), cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_head),         cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_client_net),   cmocka_unit_test(test_json_render),
	    cmocka_unit_test(test_json_wiped),
	};
	MW_RUN_TESTS(tests);
}
