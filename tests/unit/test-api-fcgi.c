/* test-api-fcgi.c - the API's FastCGI record parser (webapi/api-fcgi.c) on well-formed,
   split, multiplexed and hostile record streams. */
#define _GNU_SOURCE /* memmem */
#include "mw-build.h"
#include "api-fcgi.h"
#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifdef ASAN
#include <sanitizer/asan_interface.h>
#endif

static unsigned calls;
static struct {
	char method[64], uri[256];
	const char *bad;
	size_t body_len, nparams;
	bool too_large;
	char body[256];
} seen;
static size_t reply_size; /* 0: a short answer */
#define MARKER "TOTPSECRET-JBSWY3DPEHPK3PXP"
static bool reply_secret; /* the answer starts with MARKER; the blocks it grew out of: */
static struct {
	char *p;
	size_t cap;
} given_up[32];
static size_t ngiven_up;

/* handler - record what the loop passed and answer */
static void handler(void *ctx, const struct api_fcgi_request *r, mw_str *out)
{
	const char *m = api_fcgi_param(r, "REQUEST_METHOD"), *u = api_fcgi_param(r, "REQUEST_URI");
	(void)ctx;
	calls++;
	assert_int_equal(out->len, 0); /* every answer starts empty, kept buffer or not */
	(void)mw_strlcpy(seen.method, m != NULL ? m : "-", sizeof(seen.method));
	(void)mw_strlcpy(seen.uri, u != NULL ? u : "-", sizeof(seen.uri));
	seen.bad = r->bad;
	seen.nparams = r->nparams;
	seen.body_len = r->body_len;
	seen.too_large = r->body_too_large;
	(void)mw_strlcpy(seen.body, (const char *)r->body, sizeof(seen.body));
	(void)mw_str_appends(out, "Status: 200 OK\r\n\r\n");
	if (reply_secret) {
		(void)mw_str_appends(out, MARKER);
		while (out->len < reply_size) {
			char *was = out->buf;
			size_t cap = out->cap;
			(void)mw_str_appendc(out, 'x');
			if (out->buf != was && ngiven_up < MW_N_ELEMENTS(given_up)) {
				given_up[ngiven_up].p = was;
				given_up[ngiven_up++].cap = cap;
			}
		}
	} else if (reply_size == 0) {
		(void)mw_str_appends(out, "hello");
	} else {
		size_t i;
		for (i = 0; i < reply_size; i++)
			(void)mw_str_appendc(out, (char)('a' + i % 26));
	}
}

static const struct api_fcgi_conf conf = {.max_body = 100, .handler = handler};

/* rec - append a record */
static void rec(mw_str *s, unsigned type, unsigned id, const void *p, size_t len)
{
	char h[8] = {1, (char)type, (char)(id >> 8), (char)id, (char)(len >> 8), (char)len, 0, 0};
	(void)mw_str_append(s, h, 8);
	(void)mw_str_append(s, p, len);
}

/* pair - append a name-value pair with 1-byte lengths */
static void pair(mw_str *s, const char *n, const char *v)
{
	(void)mw_str_appendc(s, (char)strlen(n));
	(void)mw_str_appendc(s, (char)strlen(v));
	(void)mw_str_appends(s, n);
	(void)mw_str_appends(s, v);
}

/* request - a complete request: BEGIN (keep?), PARAMS, STDIN body */
static void request(mw_str *s, unsigned id, bool keep, const char *uri, const char *body)
{
	char begin[8] = {0, 1, keep ? 1 : 0, 0, 0, 0, 0, 0};
	mw_str p;
	mw_str_init(&p, 0);
	pair(&p, "REQUEST_METHOD", "POST");
	pair(&p, "REQUEST_URI", uri);
	rec(s, 1, id, begin, 8);
	rec(s, 4, id, p.buf, p.len);
	rec(s, 4, id, NULL, 0);
	if (body[0] != '\0')
		rec(s, 5, id, body, strlen(body));
	rec(s, 5, id, NULL, 0);
	mw_str_free(&p);
}

struct reply {
	unsigned type, id;
	size_t len;
	const unsigned char *p;
};

/* records - split out into records; returns how many (at most max) */
static size_t records(const mw_str *out, struct reply *r, size_t max)
{
	const unsigned char *p = (const unsigned char *)out->buf;
	size_t pos = 0, n = 0;
	while (out->len - pos >= 8 && n < max) {
		assert_int_equal(p[pos], 1);
		r[n].type = p[pos + 1];
		r[n].id = ((unsigned)p[pos + 2] << 8) | p[pos + 3];
		r[n].len = ((size_t)p[pos + 4] << 8) | p[pos + 5];
		r[n].p = p + pos + 8;
		pos += 8 + r[n].len + p[pos + 6];
		n++;
	}
	assert_int_equal(pos, out->len);
	return n;
}

/* Each test's connection: the parser state, the stream fed in, the records written out */
struct io {
	struct api_fcgi_conn *c;
	mw_str in, out;
};

/* setup - a new connection, nothing fed, no call seen, short answers */
static int setup(void **state)
{
	struct io *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	mw_str_init(&t->in, 0);
	mw_str_init(&t->out, 0);
	calls = 0;
	reply_size = 0;
	reply_secret = false;
	ngiven_up = 0;
	*state = t;
	return 0;
}

/* teardown - end the connection and free the streams */
static int teardown(void **state)
{
	struct io *t = *state;
	api_fcgi_feed_end(&t->c);
	mw_str_free(&t->in);
	mw_str_free(&t->out);
	free(t);
	return 0;
}

/* feed - everything fed in at once */
static int feed(struct io *t)
{
	return api_fcgi_feed(&t->c, &conf, t->in.buf, t->in.len, &t->out);
}

/* test_one_request - answered with STDOUT, an empty STDOUT and END_REQUEST; not kept */
static void test_one_request(void **state)
{
	struct io *t = *state;
	struct reply r[8];
	request(&t->in, 7, false, "/api/v1/x", "{\"a\":1}");
	assert_int_equal(feed(t), -1); /* done, not kept: close */
	assert_int_equal(calls, 1);
	assert_string_equal(seen.method, "POST");
	assert_string_equal(seen.uri, "/api/v1/x");
	assert_null(seen.bad);
	assert_string_equal(seen.body, "{\"a\":1}");
	assert_int_equal(records(&t->out, r, 8), 3);
	assert_int_equal(r[0].type, 6);
	assert_int_equal(r[0].id, 7);
	assert_memory_equal(r[0].p, "Status: 200 OK\r\n\r\nhello", r[0].len);
	assert_int_equal(r[1].type, 6);
	assert_int_equal(r[1].len, 0);
	assert_int_equal(r[2].type, 3);
	assert_int_equal(r[2].len, 8);
	assert_int_equal(r[2].p[4], 0); /* FCGI_REQUEST_COMPLETE */
}

/* test_kept_and_split - two requests on a kept connection, fed one byte at a time */
static void test_kept_and_split(void **state)
{
	struct io *t = *state;
	size_t i;
	request(&t->in, 1, true, "/first", "");
	request(&t->in, 2, true, "/second", "body");
	for (i = 0; i < t->in.len; i++)
		assert_int_equal(api_fcgi_feed(&t->c, &conf, t->in.buf + i, 1, &t->out), 0);
	assert_int_equal(calls, 2);
	assert_string_equal(seen.uri, "/second");
	assert_string_equal(seen.body, "body");
}

/* test_protocol_errors - wrong version closes; other ids ignored; a second BEGIN is
   refused (no multiplexing); another role is refused; ABORT ends the request */
static void test_protocol_errors(void **state)
{
	static const char begin_keep[8] = {0, 1, 1, 0, 0, 0, 0, 0};
	static const char authorizer[8] = {0, 2, 0, 0, 0, 0, 0, 0};
	struct io *t = *state;
	struct reply r[8];
	(void)mw_str_append(&t->in, "\x02\x01\x00\x01\x00\x08\x00\x00", 8);
	assert_int_equal(feed(t), -1);
	api_fcgi_feed_end(&t->c);

	calls = 0;
	mw_str_reset(&t->in);
	mw_str_reset(&t->out);
	rec(&t->in, 1, 1, begin_keep, 8);
	rec(&t->in, 1, 2, begin_keep, 8); /* multiplexing: refused */
	rec(&t->in, 5, 3, "zzz", 3);      /* another id: ignored */
	rec(&t->in, 2, 1, NULL, 0);       /* abort the active request */
	rec(&t->in, 1, 4, authorizer, 8); /* not a responder, not kept: close */
	assert_int_equal(feed(t), -1);
	assert_int_equal(calls, 0);
	assert_int_equal(records(&t->out, r, 8), 3);
	assert_int_equal(r[0].type, 3);
	assert_int_equal(r[0].id, 2);
	assert_int_equal(r[0].p[4], 1); /* FCGI_CANT_MPX_CONN */
	assert_int_equal(r[1].id, 1);
	assert_int_equal(r[1].p[4], 0);
	assert_int_equal(r[2].id, 4);
	assert_int_equal(r[2].p[4], 3); /* FCGI_UNKNOWN_ROLE */
}

/* test_bad_params - lengths past the stream, NUL bytes, too many pairs, too many bytes:
   the handler is told (it answers 400), nothing is read past the stream */
static void test_bad_params(void **state)
{
	static const char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
	struct io *t = *state;
	const char *why[4];
	size_t k, i;
	for (k = 0; k < 4; k++) {
		mw_str p;
		mw_str_init(&p, 0);
		mw_str_reset(&t->in);
		mw_str_reset(&t->out);
		rec(&t->in, 1, 1, begin, 8);
		if (k == 0) {
			(void)mw_str_append(&p,
			                    "\x85\x00\x00\x00\x01"
			                    "AB",
			                    7); /* 4-byte length */
			rec(&t->in, 4, 1, p.buf, p.len);
		} else if (k == 1) {
			(void)mw_str_append(&p,
			                    "\x01\x03"
			                    "Aa\0b",
			                    6);
			rec(&t->in, 4, 1, p.buf, p.len);
		} else if (k == 2) {
			for (i = 0; i <= API_FCGI_NPARAMS; i++)
				pair(&p, "N", "v");
			rec(&t->in, 4, 1, p.buf, p.len);
		} else {
			static char big[60000];
			memset(big, 'x', sizeof(big));
			rec(&t->in, 4, 1, big, sizeof(big));
			rec(&t->in, 4, 1, big, sizeof(big));
		}
		rec(&t->in, 4, 1, NULL, 0);
		rec(&t->in, 5, 1, NULL, 0);
		calls = 0;
		assert_int_equal(feed(t), -1);
		assert_int_equal(calls, 1);
		assert_non_null(seen.bad);
		why[k] = seen.bad;
		api_fcgi_feed_end(&t->c);
		mw_str_free(&p);
	}
	assert_string_equal(why[0], "malformed request parameters");
	assert_string_equal(why[1], "a request parameter holds a NUL byte");
	assert_string_equal(why[2], "too many request parameters");
	assert_string_equal(why[3], "the request parameters are larger than allowed");
}

/* test_body_limit - a body over max_body is flagged and dropped, the stream read to its end */
static void test_body_limit(void **state)
{
	struct io *t = *state;
	char body[300];
	memset(body, 'b', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	request(&t->in, 1, true, "/big", body);
	request(&t->in, 2, true, "/small", "ok");
	calls = 0;
	assert_int_equal(api_fcgi_feed(&t->c, &conf, t->in.buf, t->in.len / 2, &t->out), 0);
	assert_int_equal(api_fcgi_feed(&t->c, &conf, t->in.buf + t->in.len / 2,
	                               t->in.len - t->in.len / 2, &t->out),
	                 0);
	assert_int_equal(calls, 2);
	assert_false(seen.too_large); /* the second one */
	assert_string_equal(seen.body, "ok");
	api_fcgi_feed_end(&t->c);
	mw_str_reset(&t->in);
	request(&t->in, 1, false, "/big", body);
	assert_int_equal(feed(t), -1);
	assert_true(seen.too_large);
	assert_int_equal(seen.body_len, 0);
}

/* test_big_answer - an answer longer than one record comes in several, in order */
static void test_big_answer(void **state)
{
	struct io *t = *state;
	struct reply r[16];
	mw_str back;
	size_t n, i;
	mw_str_init(&back, 0);
	reply_size = 100000;
	request(&t->in, 9, false, "/", "");
	assert_int_equal(feed(t), -1);
	reply_size = 0;
	n = records(&t->out, r, 16);
	assert_true(n >= 5);
	for (i = 0; i + 2 < n; i++) {
		assert_int_equal(r[i].type, 6);
		assert_true(r[i].len > 0 && r[i].len <= 65535);
		(void)mw_str_append(&back, (const char *)r[i].p, r[i].len);
	}
	assert_int_equal(back.len, strlen("Status: 200 OK\r\n\r\n") + 100000);
	assert_int_equal(back.buf[back.len - 1], 'a' + (100000 - 1) % 26);
	mw_str_free(&back);
}

/* one_answer - feed one kept request of an answer of size bytes (0: "hello") and return
   its STDOUT text, which must be the whole answer */
static void one_answer(struct io *t, unsigned id, size_t size, mw_str *back)
{
	struct reply r[16];
	size_t n, i;
	mw_str_reset(&t->in);
	mw_str_reset(&t->out);
	mw_str_reset(back);
	reply_size = size;
	request(&t->in, id, true, "/kept", "");
	assert_int_equal(feed(t), 0);
	reply_size = 0;
	n = records(&t->out, r, 16);
	assert_true(n >= 3);
	for (i = 0; i + 2 < n; i++)
		(void)mw_str_append(back, (const char *)r[i].p, r[i].len);
	assert_int_equal(r[n - 1].type, 3);
}

/* test_secrets_wiped - once a kept connection's request is answered, neither its bearer
   token (a parameter) nor its body (a password) is left in any of the connection's buffers,
   also when the request arrived a byte at a time (the received-bytes buffer grew) */
static void test_secrets_wiped(void **state)
{
	static const char token[] = "Bearer 0123456789abcdefTOKENSECRET";
	static const char body[] = "{\"password\":\"hunter2-SECRET\"}";
	char begin[8] = {0, 1, 1, 0, 0, 0, 0, 0};
	struct io *t = *state;
	mw_str p;
	size_t i;
	mw_str_init(&p, 0);
	pair(&p, "REQUEST_METHOD", "POST");
	pair(&p, "REQUEST_URI", "/api/v1/x");
	pair(&p, "HTTP_AUTHORIZATION", token);
	rec(&t->in, 1, 3, begin, 8);
	rec(&t->in, 4, 3, p.buf, p.len);
	rec(&t->in, 4, 3, NULL, 0);
	rec(&t->in, 5, 3, body, strlen(body));
	rec(&t->in, 5, 3, NULL, 0);
	for (i = 0; i < t->in.len; i++)
		assert_int_equal(api_fcgi_feed(&t->c, &conf, t->in.buf + i, 1, &t->out), 0);
	assert_int_equal(calls, 1);
	assert_string_equal(seen.body, body);
	assert_false(api_fcgi_feed_retains(t->c, "TOKENSECRET", 11));
	assert_false(api_fcgi_feed_retains(t->c, "hunter2-SECRET", 14));
	/* and the probe itself finds what is still there: a next request but for its last
	   record (the empty STDIN that ends it) */
	assert_int_equal(api_fcgi_feed(&t->c, &conf, t->in.buf, t->in.len - 8, &t->out), 0);
	assert_true(api_fcgi_feed_retains(t->c, "TOKENSECRET", 11));
	mw_str_free(&p);
}

/* test_answer_secret_wiped - an answer carrying a secret (a TOTP enrolment secret, a new
   app password, a session cookie) grows the connection's answer buffer from empty: no block
   it grew out of, nor the kept buffer once the answer is written, holds the secret */
static void test_answer_secret_wiped(void **state)
{
	struct io *t = *state;
	struct reply r[8];
	size_t i, n;
	reply_secret = true;
	reply_size = 3000; /* 64 bytes doubled six times */
	request(&t->in, 1, true, "/api/v1/totp", "");
	assert_int_equal(feed(t), 0);
	assert_int_equal(calls, 1);
	n = records(&t->out, r, 8);
	assert_true(n >= 3);
	assert_int_equal(r[0].type, 6); /* the answer went out whole, marker included */
	assert_memory_equal(r[0].p + strlen("Status: 200 OK\r\n\r\n"), MARKER, strlen(MARKER));
	assert_false(api_fcgi_feed_retains(t->c, MARKER, strlen(MARKER)));
	assert_true(ngiven_up >= 5);
#ifdef ASAN
	/* the blocks given up sit in ASan's quarantine, not reused: read them as they were left
	   (past their first 16 bytes, which ASan's free bookkeeping may overwrite) */
	for (i = 0; i < ngiven_up; i++) {
		__asan_unpoison_memory_region(given_up[i].p, given_up[i].cap);
		bool found = memmem(given_up[i].p + 16, given_up[i].cap - 16, MARKER,
		                    strlen(MARKER)) != NULL;
		__asan_poison_memory_region(given_up[i].p, given_up[i].cap);
		if (found)
			fail_msg("block %zu of %zu (%zu bytes) given up unwiped", i + 1, ngiven_up,
			         given_up[i].cap);
	}
#else
	(void)i;
	skip(); /* freed blocks can be read safely only from ASan's quarantine */
#endif
}

/* test_kept_answer_buffer - the connection keeps its answer buffer between requests: a short
   answer after a long one (kept buffer) and after a very long one (buffer let go) is exactly
   itself */
static void test_kept_answer_buffer(void **state)
{
	struct io *t = *state;
	mw_str back;
	mw_str_init(&back, 0);
	one_answer(t, 1, 0, &back);
	assert_int_equal(back.len, strlen("Status: 200 OK\r\n\r\nhello"));
	one_answer(t, 2, 5000, &back);
	assert_int_equal(back.len, strlen("Status: 200 OK\r\n\r\n") + 5000);
	one_answer(t, 3, 0, &back);
	assert_string_equal(back.buf, "Status: 200 OK\r\n\r\nhello");
	one_answer(t, 4, 200000, &back);
	assert_int_equal(back.len, strlen("Status: 200 OK\r\n\r\n") + 200000);
	one_answer(t, 5, 0, &back);
	assert_string_equal(back.buf, "Status: 200 OK\r\n\r\nhello");
	assert_int_equal(calls, 5);
	mw_str_free(&back);
}

/* test_management - FCGI_GET_VALUES is answered (no multiplexing); other types unknown */
static void test_management(void **state)
{
	struct io *t = *state;
	struct reply r[4];
	mw_str p;
	mw_str_init(&p, 0);
	pair(&p, "FCGI_MPXS_CONNS", "");
	pair(&p, "SOMETHING_ELSE", "");
	rec(&t->in, 9, 0, p.buf, p.len);
	rec(&t->in, 42, 0, NULL, 0);
	assert_int_equal(feed(t), 0);
	assert_int_equal(records(&t->out, r, 4), 2);
	assert_int_equal(r[0].type, 10);
	assert_int_equal(r[0].len, 2 + 15 + 1);
	assert_memory_equal(r[0].p + 2, "FCGI_MPXS_CONNS0", 16);
	assert_int_equal(r[1].type, 11);
	assert_int_equal(r[1].p[0], 42);
	mw_str_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_one_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kept_and_split, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_big_answer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_management, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kept_answer_buffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secrets_wiped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_answer_secret_wiped, setup, teardown),
	};
	MW_RUN_TESTS(tests);
}
