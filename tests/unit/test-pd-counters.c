/* test-pd-counters.c - the GCRA arithmetic at window boundaries (fixed clock) and the memory
   store: atomic batches, check-only, reset by prefix, expiry and the max_keys bound. */
#include "mw-build.h"
#include "pd-counters.h"

#include "mw-test.h"

#include <stdio.h>
#include <string.h>

#define S 1000000LL /* one second in microseconds */

/* req - a request for key with N per W seconds */
static struct pd_limit_req req(const char *key, int64_t n, int64_t w_s, int64_t cost)
{
	struct pd_limit_req r;
	memset(&r, 0, sizeof(r));
	snprintf(r.key, sizeof(r.key), "%s", key);
	r.limit = n;
	r.window_us = w_s * S;
	r.cost = cost;
	return r;
}

/* One step of a GCRA sequence on one TAT: at time t (us) with cost, commit; expect. */
static const struct {
	int64_t t, cost;
	bool allowed;
	int64_t usage, retry_us, reset_us;
} seq[] = {
    /* 3 per 3 s: T = 1 s. A burst of 3 at t=0, the 4th is denied until t=1 s. */
    {0, 1, true, 1, 0, 1 * S},
    {0, 1, true, 2, 0, 2 * S},
    {0, 1, true, 3, 0, 3 * S},
    {0, 1, false, 3, 1 * S, 3 * S},
    {S - 1, 1, false, 3, 1, 3 * S - (S - 1)}, /* one microsecond short of the boundary */
    {S, 1, true, 3, 0, 3 * S},                /* exactly at the boundary: allowed */
    {S, 0, true, 3, 0, 3 * S},                /* cost 0: usage only */
    {4 * S, 1, true, 1, 0, 1 * S},            /* after the window: empty again */
    {4 * S, 3, false, 1, 1 * S, 1 * S},       /* would need 4 units */
    {4 * S, 2, true, 3, 0, 3 * S},
    {100 * S, 4, false, 0, 1 * S, 0}, /* more than the limit at once: never */
};

static void test_gcra_sequence(void **state)
{
	int64_t tat = 0;
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(seq); i++) {
		struct pd_limit_req r = req("k", 3, 3, seq[i].cost);
		struct pd_limit_res res;
		pd_gcra(&tat, &r, seq[i].t, true, &res);
		if (res.allowed != seq[i].allowed || res.usage != seq[i].usage ||
		    res.retry_after_us != seq[i].retry_us || res.reset_after_us != seq[i].reset_us)
			fail_msg("step %zu: allowed %d usage %lld retry %lld reset %lld", i,
			         res.allowed, (long long)res.usage, (long long)res.retry_after_us,
			         (long long)res.reset_after_us);
	}
}

/* test_gcra_burst_not_dividing - N units fit at once even when N does not divide W */
static void test_gcra_burst_not_dividing(void **state)
{
	static const int64_t limits[] = {3, 7, 9, 1000003};
	size_t i;
	int64_t k;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(limits); i++) {
		int64_t tat = 0;
		struct pd_limit_req r = req("k", limits[i], 1, 1);
		struct pd_limit_res res;
		for (k = 0; k < limits[i]; k++) {
			pd_gcra(&tat, &r, 0, true, &res);
			if (!res.allowed)
				fail_msg("limit %lld: unit %lld of the burst denied",
				         (long long)limits[i], (long long)k + 1);
		}
		pd_gcra(&tat, &r, 0, true, &res);
		assert_false(res.allowed);
		assert_int_equal(res.usage, limits[i]);
	}
}

static void test_gcra_check_only_does_not_charge(void **state)
{
	int64_t tat = 0;
	struct pd_limit_req r = req("k", 1, 60, 1);
	struct pd_limit_res res;
	int i;
	(void)state;
	for (i = 0; i < 5; i++) {
		pd_gcra(&tat, &r, 10 * S, false, &res);
		assert_true(res.allowed);
	}
	assert_int_equal(tat, 0);
	pd_gcra(&tat, &r, 10 * S, true, &res);
	assert_true(res.allowed);
	pd_gcra(&tat, &r, 10 * S, false, &res);
	assert_false(res.allowed);
	assert_int_equal(res.retry_after_us, 60 * S);
}

static void test_gcra_huge_cost_no_overflow(void **state)
{
	int64_t tat = 0;
	struct pd_limit_req r = req("k", 1, 366 * 86400, INT64_MAX / 2);
	struct pd_limit_res res;
	(void)state;
	pd_gcra(&tat, &r, 0, true, &res);
	assert_false(res.allowed);
	assert_int_equal(tat, 0);
}

/* The bounds of the arithmetic (issue 9): at the largest count and window, and the smallest,
   a full burst fits, the next unit is denied and every number is consistent (UBSan watches
   every sum and product); one past any bound is refused (-1, denied, nothing charged), never
   computed with an overflow. */
static void test_gcra_bounds(void **state)
{
	static const int64_t counts[] = {1, 7, MW_RATE_COUNT_MAX - 1, MW_RATE_COUNT_MAX};
	static const int64_t windows[] = {1, S, 86399 * S + 1, PD_GCRA_WINDOW_US_MAX};
	static const int64_t nows[] = {0, 1800000000LL * S, PD_GCRA_NOW_MAX - PD_GCRA_SPAN_MAX};
	size_t ci, wi, ni;
	(void)state;
	for (ci = 0; ci < MW_N_ELEMENTS(counts); ci++)
		for (wi = 0; wi < MW_N_ELEMENTS(windows); wi++)
			for (ni = 0; ni < MW_N_ELEMENTS(nows); ni++) {
				int64_t n = counts[ci], w = windows[wi], now = nows[ni], tat = 0;
				int64_t t = (w + n - 1) / n;
				struct pd_limit_req r = req("k", n, 1, n);
				struct pd_limit_res res;
				r.window_us = w;
				assert_int_equal(pd_gcra(&tat, &r, now, true, &res), 0);
				assert_true(res.allowed);
				assert_true(res.usage == n);
				assert_true(res.reset_after_us == n * t);
				assert_true(res.reset_after_us <= w + n - 1 &&
				            res.reset_after_us >= w);
				r.cost = 1;
				assert_int_equal(pd_gcra(&tat, &r, now, true, &res), 0);
				assert_false(res.allowed);
				assert_true(res.usage == n);
				assert_true(res.retry_after_us == t);
				r.cost = 0;
				assert_int_equal(pd_gcra(&tat, &r, now + n * t, false, &res), 0);
				assert_true(res.allowed && res.usage == 0);
				r.cost = INT64_MAX; /* any cost: denied, never an overflow */
				assert_int_equal(pd_gcra(&tat, &r, now, true, &res), 0);
				assert_false(res.allowed);
			}
}

static void test_gcra_refuses_out_of_range(void **state)
{
	static const struct {
		int64_t limit, window_us, cost, now, tat;
	} bad[] = {
	    {MW_RATE_COUNT_MAX + 1, S, 1, 0, 0},
	    {INT64_MAX, S, 1, 0, 0},
	    {0, S, 1, 0, 0},
	    {-1, S, 1, 0, 0},
	    {1, 0, 1, 0, 0},
	    {1, -S, 1, 0, 0},
	    {1, PD_GCRA_WINDOW_US_MAX + 1, 1, 0, 0},
	    {1, INT64_MAX, 1, 0, 0},
	    {1, S, -1, 0, 0},
	    {1, S, 1, -1, 0},
	    {1, S, 1, PD_GCRA_NOW_MAX + 1, 0},
	    {1, S, 1, INT64_MAX, 0},
	    {1, S, 1, 0, -1},
	    {1, S, 1, 0, PD_GCRA_SPAN_MAX + 1},
	    {1, S, 1, 5, INT64_MAX},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(bad); i++) {
		struct pd_limit_req r = req("k", 1, 1, bad[i].cost);
		struct pd_limit_res res;
		int64_t tat = bad[i].tat;
		r.limit = bad[i].limit;
		r.window_us = bad[i].window_us;
		res.allowed = true;
		if (pd_gcra(&tat, &r, bad[i].now, true, &res) != -1 || res.allowed ||
		    tat != bad[i].tat)
			fail_msg("case %zu: not refused (allowed %d)", i, res.allowed);
	}
	/* the edges themselves are computed */
	{
		struct pd_limit_req r = req("k", MW_RATE_COUNT_MAX, 1, 1);
		struct pd_limit_res res;
		int64_t tat = PD_GCRA_SPAN_MAX;
		r.window_us = PD_GCRA_WINDOW_US_MAX;
		assert_int_equal(pd_gcra(&tat, &r, 0, true, &res), 0);
		assert_false(res.allowed);
	}
}

static struct pd_batch_res last;
static int calls;

static void save_cb(const struct pd_batch_res *res, void *ctx)
{
	(void)ctx;
	last = *res;
	calls++;
}

static void test_memory_batch_is_atomic(void **state)
{
	struct pd_counters *c = pd_counters_memory_new(1000);
	struct pd_limit_req reqs[2] = {req("user:a:messages", 5, 60, 1),
	                               req("user:a:small", 1, 60, 1)};
	(void)state;
	c->ops->apply(c, reqs, 2, true, 0, save_cb, NULL);
	assert_int_equal(calls, 1); /* synchronous */
	assert_true(last.allowed);
	c->ops->apply(c, reqs, 2, true, 0, save_cb, NULL);
	assert_false(last.allowed);
	assert_true(last.res[0].allowed);
	assert_false(last.res[1].allowed);
	/* nothing was charged by the refused batch: the first limit still shows 1 */
	reqs[0].cost = 0;
	c->ops->apply(c, reqs, 1, false, 0, save_cb, NULL);
	assert_int_equal(last.res[0].usage, 1);
	c->ops->free(c);
}

static void test_memory_reset_by_prefix(void **state)
{
	struct pd_counters *c = pd_counters_memory_new(1000);
	struct pd_limit_req reqs[3] = {req("sasl_username:a@x:messages:60:5", 5, 60, 1),
	                               req("sasl_username:a@x:size:60:5", 5, 60, 1),
	                               req("sasl_username:a@xy:messages:60:5", 5, 60, 1)};
	(void)state;
	c->ops->apply(c, reqs, 3, true, 0, save_cb, NULL);
	c->ops->reset(c, "sasl_username:a@x:", 0, save_cb, NULL);
	assert_int_equal(last.count, 2);
	assert_int_equal(pd_counters_memory_count(c), 1);
	c->ops->free(c);
}

static void test_memory_bounded(void **state)
{
	struct pd_counters *c = pd_counters_memory_new(100);
	char key[32];
	int i;
	(void)state;
	for (i = 0; i < 5000; i++) {
		struct pd_limit_req r;
		snprintf(key, sizeof(key), "k%d", i);
		r = req(key, 10, 3600, 1);
		c->ops->apply(c, &r, 1, true, (int64_t)i, save_cb, NULL);
		assert_true(pd_counters_memory_count(c) <= 100);
	}
	/* expired keys go away by themselves */
	for (i = 0; i < 2000; i++) {
		struct pd_limit_req r = req("probe", 10, 3600, 0);
		c->ops->apply(c, &r, 1, true, 10000 * S, save_cb, NULL);
	}
	assert_int_equal(pd_counters_memory_count(c), 0);
	c->ops->free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gcra_sequence),
	    cmocka_unit_test(test_gcra_bounds),
	    cmocka_unit_test(test_gcra_refuses_out_of_range),
	    cmocka_unit_test(test_gcra_burst_not_dividing),
	    cmocka_unit_test(test_gcra_check_only_does_not_charge),
	    cmocka_unit_test(test_gcra_huge_cost_no_overflow),
	    cmocka_unit_test(test_memory_batch_is_atomic),
	    cmocka_unit_test(test_memory_reset_by_prefix),
	    cmocka_unit_test(test_memory_bounded),
	};
	MW_RUN_TESTS(tests);
}
