/*
 * pd-counters-driver.c - drives policyd counter stores (memory, Redis) from stdin for tests.
 *
 * tests/integration/test_policyd_redis.py runs it against a real redis-server. One command
 * per line on stdin, one answer line on stdout (flushed); stores are named by the test:
 *   open NAME memory                      -> ok
 *   open NAME redis URL TIMEOUT_MS        -> ok | error MESSAGE
 *   open NAME lease URL TIMEOUT_MS LEASE_MS MAX_PCT
 *                                         -> ok | error MESSAGE  (leases over Redis, no timer)
 *   sweep NAME NOW_US                     -> swept COUNT  (leases due given back; waits for
 *                                            Redis to take them)
 *   units NAME                            -> units COUNT  (leased, not spent)
 *   apply NAME check|commit NOW_US N KEY W LIMIT COST ... (N times)
 *       -> res ALLOWED DEGRADED ELAPSED_US ALLOWED,USAGE,RETRY_US,RESET_US ... (N times)
 *   group NAME ; check|commit NOW_US N KEY W LIMIT COST... ; ...   (up to 16 batches)
 *       -> group RES | RES ...  every batch handed to the store before any answer is
 *          awaited (as the daemon does with requests that arrive together); each RES is
 *          ALLOWED DEGRADED ELAPSED_US and the limits, as for apply
 *   reset NAME PREFIX NOW_US              -> reset COUNT DEGRADED ALLOWED ELAPSED_US
 *   sleep MS                              -> ok   (runs the event loop: reconnects happen)
 *   close NAME                            -> ok
 * The event loop runs only while a command waits for its answer (or during sleep), as in
 * the daemon, where it never stops. Logs (degraded/recovered) go to stderr.
 *
 * Diagnostics: a malformed command line answers "error ..." and the driver goes on.
 */
#include "mw-build.h"
#include "mw-log.h"
#include "pd-counters.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define DRIVER_STORES   8
#define DRIVER_LINE_MAX 65536

struct driver_store {
	char name[32];
	struct pd_counters *c;
};

struct driver_wait {
	bool done;
	struct pd_batch_res res;
};

static struct event_base *driver_base;
static struct driver_store driver_stores[DRIVER_STORES];

/* driver_now_us - monotonic clock for elapsed times */
static int64_t driver_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* driver_find - the store named name, or NULL */
static struct driver_store *driver_find(const char *name)
{
	size_t i;
	for (i = 0; i < DRIVER_STORES; i++)
		if (driver_stores[i].c != NULL && strcmp(driver_stores[i].name, name) == 0)
			return &driver_stores[i];
	return NULL;
}

/* driver_cb - a store's answer */
static void driver_cb(const struct pd_batch_res *res, void *ctx)
{
	struct driver_wait *w = ctx;
	if (w->done) {
		printf("error answered twice\n");
		fflush(stdout);
		abort();
	}
	w->done = true;
	w->res = *res;
}

/* driver_wait_for - run the loop until the store has answered */
static void driver_wait_for(struct driver_wait *w)
{
	while (!w->done)
		event_base_loop(driver_base, EVLOOP_ONCE);
}

/* driver_parse_i64 - a decimal integer token */
static int driver_parse_i64(const char *tok, int64_t *v_r)
{
	char *end;
	long long v;
	if (tok == NULL)
		return -1;
	v = strtoll(tok, &end, 10);
	if (*end != '\0' || end == tok)
		return -1;
	*v_r = v;
	return 0;
}

/* driver_open - open NAME memory | open NAME redis URL TIMEOUT_MS */
static void driver_open(char **save)
{
	const char *name = strtok_r(NULL, " ", save), *kind = strtok_r(NULL, " ", save);
	struct driver_store *slot = NULL;
	mw_error err = {""};
	bool lease = false;
	size_t i;
	if (name == NULL || kind == NULL || driver_find(name) != NULL) {
		printf("error open NAME KIND (name unused)\n");
		return;
	}
	for (i = 0; i < DRIVER_STORES && slot == NULL; i++)
		if (driver_stores[i].c == NULL)
			slot = &driver_stores[i];
	if (slot == NULL || mw_strlcpy(slot->name, name, sizeof(slot->name)) < 0) {
		printf("error no free store slot\n");
		return;
	}
	if (strcmp(kind, "memory") == 0) {
		slot->c = pd_counters_memory_new(100000);
	} else if (strcmp(kind, "redis") == 0 || (lease = strcmp(kind, "lease") == 0)) {
		const char *url = strtok_r(NULL, " ", save);
		int64_t timeout, lease_ms = 0, pct = 0;
		struct pd_counters *fallback;
		if (url == NULL || driver_parse_i64(strtok_r(NULL, " ", save), &timeout) < 0 ||
		    timeout < 0 || timeout > 100000 ||
		    (lease && (driver_parse_i64(strtok_r(NULL, " ", save), &lease_ms) < 0 ||
		               driver_parse_i64(strtok_r(NULL, " ", save), &pct) < 0 ||
		               lease_ms < 1 || lease_ms > 3600000 || pct < 1 || pct > 100))) {
			printf("error open NAME redis|lease URL TIMEOUT_MS [LEASE_MS MAX_PCT]\n");
			return;
		}
		fallback = pd_counters_memory_new(100000);
		slot->c =
		    pd_counters_redis_new(url, driver_base, fallback, (unsigned)timeout, &err);
		if (slot->c == NULL) {
			fallback->ops->free(fallback);
			printf("error %s\n", err.msg);
			return;
		}
		if (lease)
			slot->c = pd_counters_lease_new(slot->c, NULL, (unsigned)lease_ms,
			                                (unsigned)pct, 100000);
	} else {
		printf("error unknown store kind\n");
		return;
	}
	printf("ok\n");
}

/* driver_apply - apply NAME check|commit NOW_US N (KEY W LIMIT COST)... */
static void driver_apply(char **save)
{
	struct driver_store *st = driver_find(strtok_r(NULL, " ", save) ?: "");
	const char *mode = strtok_r(NULL, " ", save);
	struct pd_limit_req reqs[PD_BATCH_MAX + 1];
	struct driver_wait w;
	int64_t now, n, t0, i;
	memset(reqs, 0, sizeof(reqs));
	memset(&w, 0, sizeof(w));
	if (st == NULL || mode == NULL || driver_parse_i64(strtok_r(NULL, " ", save), &now) < 0 ||
	    driver_parse_i64(strtok_r(NULL, " ", save), &n) < 0 || n < 0 || n > PD_BATCH_MAX + 1) {
		printf("error apply NAME check|commit NOW_US N KEY W LIMIT COST...\n");
		return;
	}
	for (i = 0; i < n; i++) {
		const char *key = strtok_r(NULL, " ", save);
		if (key == NULL || mw_strlcpy(reqs[i].key, key, sizeof(reqs[i].key)) < 0 ||
		    driver_parse_i64(strtok_r(NULL, " ", save), &reqs[i].window_us) < 0 ||
		    driver_parse_i64(strtok_r(NULL, " ", save), &reqs[i].limit) < 0 ||
		    driver_parse_i64(strtok_r(NULL, " ", save), &reqs[i].cost) < 0) {
			printf("error bad limit %" PRId64 "\n", i);
			return;
		}
	}
	t0 = driver_now_us();
	st->c->ops->apply(st->c, reqs, (size_t)n, strcmp(mode, "commit") == 0, now, driver_cb, &w);
	driver_wait_for(&w);
	printf("res %d %d %" PRId64, w.res.allowed, w.res.degraded, driver_now_us() - t0);
	for (i = 0; i < (int64_t)w.res.count && i < PD_BATCH_MAX; i++)
		printf(" %d,%" PRId64 ",%" PRId64 ",%" PRId64, w.res.res[i].allowed,
		       w.res.res[i].usage, w.res.res[i].retry_after_us,
		       w.res.res[i].reset_after_us);
	printf("\n");
}

#define DRIVER_GROUP_MAX 16

/* driver_group - group NAME ; BATCH ; BATCH ...: all applied before waiting for answers */
static void driver_group(char **save)
{
	static struct pd_limit_req reqs[DRIVER_GROUP_MAX][PD_BATCH_MAX];
	static struct driver_wait w[DRIVER_GROUP_MAX];
	struct driver_store *st = driver_find(strtok_r(NULL, " ", save) ?: "");
	bool commit[DRIVER_GROUP_MAX];
	int64_t now[DRIVER_GROUP_MAX], n[DRIVER_GROUP_MAX], t0, i, k, count = 0;
	const char *tok = strtok_r(NULL, " ", save);
	memset(reqs, 0, sizeof(reqs));
	memset(w, 0, sizeof(w));
	if (st == NULL) {
		printf("error group NAME ; check|commit NOW_US N KEY W LIMIT COST... ; ...\n");
		return;
	}
	while (tok != NULL && strcmp(tok, ";") == 0) {
		const char *mode = strtok_r(NULL, " ", save);
		if (count == DRIVER_GROUP_MAX || mode == NULL ||
		    driver_parse_i64(strtok_r(NULL, " ", save), &now[count]) < 0 ||
		    driver_parse_i64(strtok_r(NULL, " ", save), &n[count]) < 0 || n[count] < 1 ||
		    n[count] > PD_BATCH_MAX) {
			printf("error group: bad batch %" PRId64 "\n", count);
			return;
		}
		commit[count] = strcmp(mode, "commit") == 0;
		for (i = 0; i < n[count]; i++) {
			struct pd_limit_req *r = &reqs[count][i];
			const char *key = strtok_r(NULL, " ", save);
			if (key == NULL || mw_strlcpy(r->key, key, sizeof(r->key)) < 0 ||
			    driver_parse_i64(strtok_r(NULL, " ", save), &r->window_us) < 0 ||
			    driver_parse_i64(strtok_r(NULL, " ", save), &r->limit) < 0 ||
			    driver_parse_i64(strtok_r(NULL, " ", save), &r->cost) < 0) {
				printf("error group: bad limit %" PRId64 " of batch %" PRId64 "\n",
				       i, count);
				return;
			}
		}
		count++;
		tok = strtok_r(NULL, " ", save);
	}
	if (tok != NULL || count == 0) {
		printf("error group: expected ; BATCH ...\n");
		return;
	}
	t0 = driver_now_us();
	for (k = 0; k < count; k++)
		st->c->ops->apply(st->c, reqs[k], (size_t)n[k], commit[k], now[k], driver_cb,
		                  &w[k]);
	for (k = 0; k < count; k++)
		driver_wait_for(&w[k]);
	printf("group");
	for (k = 0; k < count; k++) {
		printf("%s %d %d %" PRId64, k > 0 ? " |" : "", w[k].res.allowed, w[k].res.degraded,
		       driver_now_us() - t0);
		for (i = 0; i < (int64_t)w[k].res.count && i < PD_BATCH_MAX; i++)
			printf(" %d,%" PRId64 ",%" PRId64 ",%" PRId64, w[k].res.res[i].allowed,
			       w[k].res.res[i].usage, w[k].res.res[i].retry_after_us,
			       w[k].res.res[i].reset_after_us);
	}
	printf("\n");
}

/* driver_sweep - sweep NAME NOW_US: give back the leases due, wait until Redis has them */
static void driver_sweep(char **save)
{
	struct driver_store *st = driver_find(strtok_r(NULL, " ", save) ?: "");
	int64_t now, t0 = driver_now_us();
	size_t n;
	if (st == NULL || strncmp(st->c->ops->name, "redis (leases)", 14) != 0 ||
	    driver_parse_i64(strtok_r(NULL, " ", save), &now) < 0) {
		printf("error sweep NAME NOW_US (a lease store)\n");
		return;
	}
	n = pd_counters_lease_sweep(st->c, now);
	while (pd_counters_lease_returns_out(st->c) > 0 && driver_now_us() - t0 < 30000000)
		event_base_loop(driver_base, EVLOOP_ONCE);
	printf("swept %zu\n", n);
}

/* driver_units - units NAME: leased units not spent */
static void driver_units(char **save)
{
	struct driver_store *st = driver_find(strtok_r(NULL, " ", save) ?: "");
	if (st == NULL || strncmp(st->c->ops->name, "redis (leases)", 14) != 0) {
		printf("error units NAME (a lease store)\n");
		return;
	}
	printf("units %" PRId64 "\n", pd_counters_lease_units(st->c));
}

/* driver_reset - reset NAME PREFIX NOW_US */
static void driver_reset(char **save)
{
	struct driver_store *st = driver_find(strtok_r(NULL, " ", save) ?: "");
	const char *prefix = strtok_r(NULL, " ", save);
	struct driver_wait w;
	int64_t now, t0;
	memset(&w, 0, sizeof(w));
	if (st == NULL || prefix == NULL || driver_parse_i64(strtok_r(NULL, " ", save), &now) < 0) {
		printf("error reset NAME PREFIX NOW_US\n");
		return;
	}
	if (strcmp(prefix, "-") == 0)
		prefix = "";
	t0 = driver_now_us();
	st->c->ops->reset(st->c, prefix, now, driver_cb, &w);
	driver_wait_for(&w);
	printf("reset %zu %d %d %" PRId64 "\n", w.res.count, w.res.degraded, w.res.allowed,
	       driver_now_us() - t0);
}

/* driver_sleep - sleep MS with the event loop running */
static void driver_sleep(char **save)
{
	int64_t ms;
	struct timeval tv;
	if (driver_parse_i64(strtok_r(NULL, " ", save), &ms) < 0 || ms < 0 || ms > 600000) {
		printf("error sleep MS\n");
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_base_loopexit(driver_base, &tv);
	event_base_dispatch(driver_base);
	printf("ok\n");
}

/* driver_close - close NAME */
static void driver_close(char **save)
{
	struct driver_store *st = driver_find(strtok_r(NULL, " ", save) ?: "");
	if (st == NULL) {
		printf("error close NAME\n");
		return;
	}
	st->c->ops->free(st->c);
	st->c = NULL;
	printf("ok\n");
}

/* main - read commands until end of input */
int main(void)
{
	static char line[DRIVER_LINE_MAX];
	mw_error err = {""};
	size_t i;
	if (mw_log_init("pd-counters-driver", MW_LOG_TARGET_STDERR, "mail", MW_LOG_DEBUG, &err) <
	    0) {
		fprintf(stderr, "pd-counters-driver: %s\n", err.msg);
		return 1;
	}
	driver_base = event_base_new();
	if (driver_base == NULL) {
		fprintf(stderr, "pd-counters-driver: event_base_new failed\n");
		return 1;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char *save = NULL, *cmd;
		line[strcspn(line, "\r\n")] = '\0';
		cmd = strtok_r(line, " ", &save);
		if (cmd == NULL)
			continue;
		if (strcmp(cmd, "open") == 0)
			driver_open(&save);
		else if (strcmp(cmd, "apply") == 0)
			driver_apply(&save);
		else if (strcmp(cmd, "reset") == 0)
			driver_reset(&save);
		else if (strcmp(cmd, "sweep") == 0)
			driver_sweep(&save);
		else if (strcmp(cmd, "units") == 0)
			driver_units(&save);
		else if (strcmp(cmd, "group") == 0)
			driver_group(&save);
		else if (strcmp(cmd, "sleep") == 0)
			driver_sleep(&save);
		else if (strcmp(cmd, "close") == 0)
			driver_close(&save);
		else
			printf("error unknown command\n");
		fflush(stdout);
	}
	for (i = 0; i < DRIVER_STORES; i++)
		if (driver_stores[i].c != NULL)
			driver_stores[i].c->ops->free(driver_stores[i].c);
	event_base_free(driver_base);
	return 0;
}
