/* test-metrics.c - lib/mw-metrics.c: series by label values, escaping of label values, one
 * table shared by forked workers, the series cap counted as dropped (never silently lost),
 * and the file written atomically. The format is parsed by the Prometheus project's own parser
 * in tests/integration/test_metrics.py.
 */
#include "mw-build.h"
#include "mw-test.h"
#include "mw-metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* render - the table as text (owned by the caller) */
static char *render(void)
{
	mw_str s;
	mw_str_init(&s, 0);
	mw_metrics_render(&s);
	return mw_str_steal(&s);
}

/* test_all - one table per process: the tests run in order in it */
static void test_all(void **state)
{
	mw_error err = {""};
	char *t, path[] = "/tmp/mw-metrics-XXXXXX", file[64];
	pid_t pid;
	int st, i;
	struct stat sb;
	(void)state;
	mw_metrics_inc(MWM_API_REQUESTS, "GET", "/x", "200"); /* before init: nothing */
	assert_int_equal(mw_metrics_init(true, &err), 0);
	t = render();
	assert_non_null(strstr(t, "# TYPE mailwarden_api_requests_total counter\n"));
	assert_null(strstr(t, "route=\"/x\""));
	free(t);

	/* series per label set; escaping of \ " and newline */
	mw_metrics_inc(MWM_API_REQUESTS, "GET", "/a", "200");
	mw_metrics_inc(MWM_API_REQUESTS, "GET", "/a", "200");
	mw_metrics_inc(MWM_API_REQUESTS, "GET", "/a", "404");
	mw_metrics_inc(MWM_MILTER_SCANS, "virus", "a\"b\\c\nd");
	t = render();
	assert_non_null(strstr(t, "mailwarden_api_requests_total{method=\"GET\",route=\"/a\","
	                          "status=\"200\"} 2\n"));
	assert_non_null(strstr(t, "mailwarden_api_requests_total{method=\"GET\",route=\"/a\","
	                          "status=\"404\"} 1\n"));
	assert_non_null(strstr(
	    t, "mailwarden_milter_scans_total{scanner=\"virus\",verdict=\"a\\\"b\\\\c\\nd\"} 1\n"));
	free(t);

	/* workers forked after init count into the same table */
	for (i = 0; i < 3; i++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int k;
			for (k = 0; k < 1000; k++)
				mw_metrics_inc(MWM_API_REQUESTS, "POST", "/w", "201");
			_exit(0);
		}
	}
	for (i = 0; i < 3; i++) {
		assert_true(wait(&st) > 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	t = render();
	assert_non_null(strstr(t, "route=\"/w\",status=\"201\"} 3000\n"));
	free(t);

	/* workers adding the same new series at once (found without the lock, added under
	   it): each series exactly once, every increment in it */
	for (i = 0; i < 4; i++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int k;
			for (k = 0; k < 20 * 50; k++) {
				char route[16];
				(void)snprintf(route, sizeof(route), "/c%d", (k + i * 7) % 20);
				mw_metrics_inc(MWM_API_REQUESTS, "PUT", route, "200");
			}
			_exit(0);
		}
	}
	for (i = 0; i < 4; i++) {
		assert_true(wait(&st) > 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	t = render();
	for (i = 0; i < 20; i++) {
		char series[96];
		const char *at;
		(void)snprintf(series, sizeof(series),
		               "{method=\"PUT\",route=\"/c%d\",status=\"200\"} ", i);
		at = strstr(t, series);
		assert_non_null(at);
		assert_null(strstr(at + 1, series)); /* once */
		assert_int_equal(atoi(at + strlen(series)), 200);
	}
	free(t);

	/* the file: written whole, 0644 */
	assert_non_null(mkdtemp(path));
	(void)snprintf(file, sizeof(file), "%s/m.prom", path);
	assert_int_equal(mw_metrics_write_file(file, &err), 0);
	assert_int_equal(stat(file, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	assert_true(sb.st_size > 100);
	(void)unlink(file);
	(void)rmdir(path);

	/* past the cap: counted as dropped */
	for (i = 0; i < MW_METRICS_SERIES_MAX + 10; i++) {
		char route[32];
		(void)snprintf(route, sizeof(route), "/r%d", i);
		mw_metrics_inc(MWM_API_REQUESTS, "GET", route, "200");
	}
	t = render();
	assert_null(strstr(t, "mailwarden_metrics_dropped_total 0\n"));
	assert_non_null(strstr(t, "mailwarden_metrics_dropped_total "));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_all),
	};
	MW_RUN_TESTS(tests);
}
