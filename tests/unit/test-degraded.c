/* test-degraded.c - lib/mw-degraded.c: one log line per change of state (never one per call),
 * the gauges rendered and read back by the one parser (round trip), the parser's refusals, and
 * doctor's words.
 */
#include "mw-build.h"
#include "mw-test.h"
#include "mw-degraded.h"
#include "mw-log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* count - occurrences of needle in the file at path */
static int count(const char *path, const char *needle)
{
	char buf[16384];
	FILE *f = fopen(path, "r");
	size_t n;
	int c = 0;
	const char *p;
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	(void)fclose(f);
	for (p = buf; (p = strstr(p, needle)) != NULL; p++)
		c++;
	return c;
}

/* render - the gauges as text (owned by the caller) */
static char *render(void)
{
	mw_str s;
	mw_str_init(&s, 0);
	mw_degraded_render(&s);
	return mw_str_steal(&s);
}

/* test_transitions - many failures, one line; many successes, one line */
static void test_transitions(void **state)
{
	char path[] = "/tmp/mw-degraded-XXXXXX", *t;
	int fd = mkstemp(path), saved = dup(2), i;
	struct mw_degraded_state s;
	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	setenv("MW_FAKE_NOW", "1796644800", 1); /* 2026-12-07 12:00:00 UTC */

	t = render();
	assert_null(strstr(t, "component=\"milter_store\""));
	free(t);
	mw_degraded_watch(MW_DEGRADED_MILTER_STORE);
	t = render();
	assert_non_null(strstr(t, "# TYPE mailwarden_degraded gauge\n"));
	assert_non_null(strstr(t, "mailwarden_degraded{component=\"milter_store\"} 0\n"));
	assert_null(strstr(t, "mailwarden_degraded_since_seconds{"));
	free(t);

	assert_false(mw_degraded_leave(MW_DEGRADED_MILTER_STORE, "fine")); /* healthy already */
	assert_true(mw_degraded_enter(MW_DEGRADED_MILTER_STORE, "store_error", "no such table"));
	for (i = 0; i < 50; i++)
		assert_false(mw_degraded_enter(MW_DEGRADED_MILTER_STORE, "store_error", "again"));
	mw_degraded_get(MW_DEGRADED_MILTER_STORE, &s);
	assert_true(s.degraded);
	assert_string_equal(s.reason, "store_error");
	assert_in_range(s.since, 1796644800, 1796644800 + 60); /* the fake clock runs on */
	t = render();
	assert_non_null(strstr(t, "mailwarden_degraded{component=\"milter_store\"} 1\n"));
	assert_non_null(strstr(t, "mailwarden_degraded_since_seconds{component=\"milter_store\","
	                          "reason=\"store_error\"} 17966448"));
	free(t);
	for (i = 0; i < 3; i++)
		assert_int_equal(mw_degraded_leave(MW_DEGRADED_MILTER_STORE, "lookup answered"),
		                 i == 0);
	/* a reason that is not a word of the code is not echoed */
	assert_true(mw_degraded_enter(MW_DEGRADED_POLICYD_STORE, "Bad reason\n", "x\ny"));
	mw_degraded_get(MW_DEGRADED_POLICYD_STORE, &s);
	assert_string_equal(s.reason, "unknown");
	assert_true(mw_degraded_leave(MW_DEGRADED_POLICYD_STORE, NULL));

	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	assert_int_equal(count(path, "event=degraded component=milter_store reason=store_error "),
	                 1);
	assert_int_equal(count(path, "detail=\"no such table\""), 1);
	assert_int_equal(count(path, "event=recovered component=milter_store after_secs="), 1);
	assert_int_equal(count(path, "event=degraded "), 2);
	assert_int_equal(count(path, "event=recovered "), 2);
	assert_int_equal(count(path, "x\ny"), 0); /* the detail is escaped */
	(void)close(fd);
	(void)close(saved);
	(void)unlink(path);
}

/* test_round_trip - what render writes, parse reads back (inside other metrics) */
static void test_round_trip(void **state)
{
	struct mw_degraded_state st[4];
	mw_str s;
	size_t n;
	mw_error err = {""};
	char line[512];
	(void)state;
	(void)mw_degraded_enter(MW_DEGRADED_POLICYD_COUNTERS, "connect_failed", "refused");
	mw_str_init(&s, 0);
	(void)mw_str_appends(&s, "# TYPE x_total counter\nx_total{a=\"b\"} 3\n");
	mw_degraded_render(&s);
	assert_int_equal(mw_degraded_parse(s.buf, s.len, st, 4, &n, &err), 0);
	assert_int_equal(n, 3); /* milter_store, policyd_store (watched above), policyd_counters */
	for (size_t i = 0; i < n; i++) {
		bool want = strcmp(st[i].component, "policyd_counters") == 0;
		assert_int_equal(st[i].degraded, want);
		if (want) {
			assert_string_equal(st[i].reason, "connect_failed");
			assert_in_range(st[i].since, 1796644800, 1796644800 + 60);
			st[i].since = 1796644800;
			mw_degraded_describe(&st[i], line, sizeof(line));
			assert_string_equal(
			    line, "policyd counts rate limits in memory (per host, not "
			          "shared): Redis unreachable since 2026-12-07 "
			          "12:00:00 UTC (reason connect_failed) (fix: start Redis or "
			          "check [policyd] counters; the daemon reconnects by "
			          "itself)");
		}
	}
	assert_int_equal(mw_degraded_parse(s.buf, s.len, st, 2, &n, &err), -1); /* over max */
	mw_str_free(&s);
	(void)mw_degraded_leave(MW_DEGRADED_POLICYD_COUNTERS, "");
}

/* test_parse_refuses - a line it cannot read is an error, never a healthy component */
static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
	    "mailwarden_degraded{component=\"nosuch\"} 0\n",
	    "mailwarden_degraded{component=\"milter_store\"} 2\n",
	    "mailwarden_degraded{component=\"milter_store\"} \n",
	    "mailwarden_degraded{component=\"milter_store\"} 01\n",
	    "mailwarden_degraded{component=\"milter_store\"} 0\n"
	    "mailwarden_degraded{component=\"milter_store\"} 0\n",
	    "mailwarden_degraded{component=\"milter_store\"} 1\n", /* no since line */
	    "mailwarden_degraded_since_seconds{component=\"milter_store\",reason=\"x\"} 5\n",
	    "mailwarden_degraded{component=\"milter_store\"} 1\n"
	    "mailwarden_degraded_since_seconds{component=\"milter_store\"} 5\n",
	    "mailwarden_degraded{component=\"milter_store\"} 1\n"
	    "mailwarden_degraded_since_seconds{component=\"milter_store\",reason=\"A B\"} 5\n",
	    "mailwarden_degraded{component=\"milter_store\",x=\"y\"} 0\n",
	};
	struct mw_degraded_state st[4];
	size_t n;
	mw_error err = {""};
	(void)state;
	for (size_t i = 0; i < MW_N_ELEMENTS(bad); i++)
		assert_int_equal(mw_degraded_parse(bad[i], strlen(bad[i]), st, 4, &n, &err), -1);
	assert_int_equal(mw_degraded_parse("", 0, st, 4, &n, &err), 0);
	assert_int_equal(n, 0);
}

/* test_shared - forked workers share one state: one line in all, seen by the parent */
static void test_shared(void **state)
{
	char path[] = "/tmp/mw-degraded-XXXXXX";
	int fd = mkstemp(path), saved = dup(2), i, st;
	struct mw_degraded_state s;
	mw_error err = {""};
	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	(void)mw_degraded_enter(MW_DEGRADED_POLICYD_STORE, "kept", "");
	assert_int_equal(mw_degraded_share(&err), 0);
	mw_degraded_get(MW_DEGRADED_POLICYD_STORE, &s); /* what the table held is kept */
	assert_true(s.degraded);
	assert_string_equal(s.reason, "kept");
	assert_int_equal(dup2(fd, 2), 2);
	for (i = 0; i < 3; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			for (int k = 0; k < 200; k++)
				(void)mw_degraded_enter(MW_DEGRADED_API_STORE, "store_error",
				                        "down");
			_exit(0);
		}
	}
	for (i = 0; i < 3; i++) {
		assert_true(wait(&st) > 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	mw_degraded_get(MW_DEGRADED_API_STORE, &s);
	assert_true(s.degraded);
	assert_true(mw_degraded_leave(MW_DEGRADED_API_STORE, "back"));
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	assert_int_equal(count(path, "event=degraded component=api_store "), 1);
	assert_int_equal(count(path, "event=recovered component=api_store "), 1);
	(void)close(fd);
	(void)close(saved);
	(void)unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_transitions),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_parse_refuses),
	    cmocka_unit_test(test_shared),
	};
	MW_RUN_TESTS(tests);
}
