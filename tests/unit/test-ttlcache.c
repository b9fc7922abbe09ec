/* test-ttlcache.c - lib/mw-ttlcache.c: the expiring hash table behind the milter's user and
   DKIM-key caches and the DNS answer cache. */
#include "mw-build.h"
#include "mw-ttlcache.h"

#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int freed;

/* count_free - a value free function that counts */
static void count_free(void *p)
{
	freed++;
	free(p);
}

/* test_get_put - hits, misses, expiry, NULL values remembered, replacement frees the old */
static void test_get_put(void **state)
{
	mw_ttlcache *c = mw_ttlcache_new(8, 100, count_free);
	bool hit;
	(void)state;
	freed = 0;
	assert_null(mw_ttlcache_get(c, "a", 0, &hit));
	assert_false(hit);
	mw_ttlcache_put(c, "a", mw_strdup("one"), 0, 10);
	assert_string_equal(mw_ttlcache_get(c, "a", 9, &hit), "one");
	assert_true(hit);
	assert_null(mw_ttlcache_get(c, "A", 9, &hit)); /* keys are exact */
	assert_false(hit);
	mw_ttlcache_put(c, "a", mw_strdup("two"), 1, 20);
	assert_int_equal(freed, 1);
	assert_string_equal(mw_ttlcache_get(c, "a", 19, &hit), "two");
	assert_int_equal(mw_ttlcache_count(c), 1);
	/* expired at exactly its time: dropped on the next get */
	assert_null(mw_ttlcache_get(c, "a", 20, &hit));
	assert_false(hit);
	assert_int_equal(freed, 2);
	assert_int_equal(mw_ttlcache_count(c), 0);
	/* a remembered "none" */
	mw_ttlcache_put(c, "none", NULL, 0, 5);
	assert_null(mw_ttlcache_get(c, "none", 1, &hit));
	assert_true(hit);
	assert_string_equal(mw_ttlcache_put(c, "", mw_strdup("empty key"), 0, 5), "empty key");
	assert_string_equal(mw_ttlcache_get(c, "", 1, &hit), "empty key");
	mw_ttlcache_free(&c);
	assert_null(c);
	assert_int_equal(freed, 3);
	mw_ttlcache_free(&c); /* twice is harmless */
}

/* test_bound - a full cache drops the expired first, everything when none had expired */
static void test_bound(void **state)
{
	mw_ttlcache *c = mw_ttlcache_new(4, 10, count_free);
	char key[32];
	bool hit;
	int i;
	(void)state;
	freed = 0;
	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		mw_ttlcache_put(c, key, mw_strdup(key), 0, i < 5 ? 5 : 100);
	}
	assert_int_equal(mw_ttlcache_count(c), 10);
	mw_ttlcache_put(c, "new", mw_strdup("new"), 50, 100); /* k0..k4 have expired */
	assert_int_equal(mw_ttlcache_count(c), 6);
	assert_int_equal(freed, 5);
	assert_non_null(mw_ttlcache_get(c, "k9", 50, &hit));
	for (i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "m%d", i);
		mw_ttlcache_put(c, key, mw_strdup(key), 50, 100);
	}
	assert_int_equal(mw_ttlcache_count(c), 10);
	mw_ttlcache_put(c, "last", mw_strdup("last"), 50, 100); /* none expired: all go */
	assert_int_equal(mw_ttlcache_count(c), 1);
	assert_string_equal(mw_ttlcache_get(c, "last", 50, &hit), "last");
	assert_null(mw_ttlcache_get(c, "k9", 50, &hit));
	assert_false(hit);
	/* many keys never exceed the bound */
	for (i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "x%d", i);
		mw_ttlcache_put(c, key, mw_strdup(key), 60, 1000);
		assert_true(mw_ttlcache_count(c) <= 10);
	}
	mw_ttlcache_clear(c);
	assert_int_equal(mw_ttlcache_count(c), 0);
	mw_ttlcache_free(&c);
	/* degenerate sizes are made usable, values not freed without a function */
	c = mw_ttlcache_new(0, 0, NULL);
	mw_ttlcache_put(c, "a", (void *)"static", 0, 10);
	mw_ttlcache_put(c, "b", (void *)"static", 0, 10);
	assert_int_equal(mw_ttlcache_count(c), 1);
	mw_ttlcache_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_put),
	    cmocka_unit_test(test_bound),
	};
	MW_RUN_TESTS(tests);
}
