/*
 * test-pd-redis.c - pd_counters_redis_new: the counters URL on hostile input, and a store
 * with no Redis behind it answering from memory (degraded) without blocking.
 *
 * The script's arithmetic, sharing between hosts and outages are tested against a real
 * redis-server in tests/integration/test_policyd_redis.py.
 */
#include "mw-build.h"
#include "mw-test.h"
#include "pd-counters.h"

#include <string.h>
#include <time.h>

#include <event2/event.h>

struct url_case {
	const char *url;
	bool ok;
	const char *error_part; /* a part of the error message */
};

static const struct url_case url_cases[] = {
    {"redis://127.0.0.1:6379/0", true, NULL},
    {"redis://127.0.0.1", true, NULL},
    {"redis://localhost:1/15?pool=16&prefix=mw:x:", true, NULL},
    {"redis://:s3cret@127.0.0.1:6379/0?pool=1", true, NULL},
    {"redis://user:s3cret@127.0.0.1/2", true, NULL},
    {"redis://[::1]:6379/0", false, "port"},
    {"http://127.0.0.1:6379", false, "redis://"},
    {"redis://", false, "host"},
    {"redis://:6379", false, "host"},
    {"redis://127.0.0.1:0", false, "port"},
    {"redis://127.0.0.1:65536", false, "port"},
    {"redis://127.0.0.1:63a9", false, "port"},
    {"redis://127.0.0.1:", false, "port"},
    {"redis://127.0.0.1:99999999999999999999", false, "port"},
    {"redis://127.0.0.1/1001", false, "database"},
    {"redis://127.0.0.1/-1", false, "database"},
    {"redis://127.0.0.1/0?pool=0", false, "pool"},
    {"redis://127.0.0.1/0?pool=17", false, "pool"},
    {"redis://127.0.0.1/0?pool=", false, "pool"},
    {"redis://127.0.0.1/0?pool", false, "'='"},
    {"redis://127.0.0.1/0?prefix=a b", false, "prefix"},
    {"redis://127.0.0.1/0?prefix=\x01", false, "prefix"},
    {"redis://127.0.0.1/0?prefix=0123456789012345678901234567890123456789012345678901234567890"
     "1234",
     false, "prefix"},
    {"redis://127.0.0.1/0?timeout=5", false, "unknown"},
    {"redis://nopassword@127.0.0.1/0", false, "credentials"},
    {"redis://user:@127.0.0.1/0", false, "credentials"},
};

/* record_cb - keep the answer (count + 1000 marks it answered) */
static void record_cb(const struct pd_batch_res *res, void *ctx)
{
	struct pd_batch_res *out = ctx;
	*out = *res;
	out->count += 1000;
}

/* test_urls - every URL case is accepted or refused as the table says */
static void test_urls(void **state)
{
	struct event_base *base = event_base_new();
	size_t i;
	assert_non_null(base);
	for (i = 0; i < MW_N_ELEMENTS(url_cases); i++) {
		const struct url_case *tc = &url_cases[i];
		struct pd_counters *fb = pd_counters_memory_new(10);
		mw_error err = {""};
		struct pd_counters *c = pd_counters_redis_new(tc->url, base, fb, 100, &err);
		if (tc->ok) {
			if (c == NULL)
				fail_msg("%s: refused: %s", tc->url, err.msg);
			assert_string_equal(c->ops->name, "redis");
			c->ops->free(c); /* frees fb */
		} else {
			if (c != NULL)
				fail_msg("%s: accepted", tc->url);
			if (strstr(err.msg, tc->error_part) == NULL)
				fail_msg("%s: error \"%s\" lacks \"%s\"", tc->url, err.msg,
				         tc->error_part);
			/* the password never shows in an error */
			assert_null(strstr(err.msg, "s3cret"));
			fb->ops->free(fb);
		}
	}
	event_base_free(base);
}

/* test_bad_arguments - timeout and missing base/fallback are refused */
static void test_bad_arguments(void **state)
{
	struct event_base *base = event_base_new();
	struct pd_counters *fb = pd_counters_memory_new(10);
	mw_error err = {""};
	assert_null(pd_counters_redis_new("redis://127.0.0.1", base, fb, 0, &err));
	assert_non_null(strstr(err.msg, "timeout"));
	assert_null(pd_counters_redis_new("redis://127.0.0.1", base, fb, 60001, &err));
	assert_null(pd_counters_redis_new("redis://127.0.0.1", NULL, fb, 100, &err));
	assert_null(pd_counters_redis_new("redis://127.0.0.1", base, NULL, 100, &err));
	fb->ops->free(fb);
	event_base_free(base);
}

/* test_no_server_degrades - nothing listens: batches come from memory, marked degraded,
   within the timeout, and the memory counters enforce the limit */
static void test_no_server_degrades(void **state)
{
	struct event_base *base = event_base_new();
	struct pd_counters *fb = pd_counters_memory_new(10);
	mw_error err = {""};
	/* port 1 on loopback: connection refused at once */
	struct pd_counters *c = pd_counters_redis_new("redis://127.0.0.1:1/0", base, fb, 200, &err);
	struct pd_limit_req req;
	struct timespec t0, t1;
	int i;
	assert_non_null(c);
	memset(&req, 0, sizeof(req));
	mw_strlcpy(req.key, "sasl_username:a@example.org", sizeof(req.key));
	req.window_us = 3600000000LL;
	req.limit = 2;
	req.cost = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 3; i++) {
		struct pd_batch_res res;
		memset(&res, 0, sizeof(res));
		c->ops->apply(c, &req, 1, true, 1700000000000000LL, record_cb, &res);
		while (res.count < 1000)
			event_base_loop(base, EVLOOP_ONCE);
		assert_int_equal(res.count, 1001);
		assert_true(res.degraded);
		assert_int_equal(res.allowed, i < 2);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* the first waits at most for the refused connect; none waits for the timeout twice */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 400);
	c->ops->free(c);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_urls),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_no_server_degrades),
	};
	MW_RUN_TESTS(tests);
}
