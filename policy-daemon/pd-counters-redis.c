/*
 * pd-counters-redis.c - rate-limit counters in Redis, shared by several policyd hosts.
 *
 * Public: pd_counters_redis_new (the store's apply/reset/free are its ops table).
 *
 * URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?pool=N&prefix=STR]
 *   pool    connections kept open (1..16, default 2); batches go round-robin over them
 *   prefix  prepended to every counter key (default "mw:rl:"), so one Redis can be shared
 * A host name is resolved once, at start-up; requests never wait for DNS.
 *
 * A batch is one EVALSHA of pd-counters-redis.lua (embedded at build time, loaded with
 * SCRIPT LOAD on every new connection; NOSCRIPT after a Redis restart or SCRIPT FLUSH is
 * answered by resending the same call as EVAL). The script decides and charges the whole
 * batch atomically and returns the TATs it found; usage and times are then derived with
 * pd_gcra(), so the memory and Redis stores report the same numbers. Time comes from the
 * caller (now_us), never from Redis TIME: tests fix the clock, and hosts sharing one Redis
 * must keep their clocks synchronised (NTP); a skew of S makes a host see limits S early
 * or late. Keys expire (PX, by Redis's clock) one grace second after their TAT is reached,
 * so Redis memory stays bounded; the grace absorbs small skews.
 *
 * Everything is asynchronous on the caller's libevent base (hiredis async API): connecting
 * included. Each call is bounded by timeout_ms (a libevent timer); on timeout, error or
 * disconnect the batch is answered by the fallback store (a memory store, owned by this
 * store and freed with it) with degraded set, the connection is dropped, and it is
 * reconnected with exponential backoff (100 ms doubling to 10 s). reset(prefix) is SCAN +
 * DEL in batches, each step bounded by timeout_ms; it also clears the fallback's keys.
 *
 * Diagnostics: "counters=redis degraded: REASON" (warning) once when Redis stops answering,
 * "counters=redis recovered: ..." (info) once when it answers again; URL errors from
 * pd_counters_redis_new through error_r.
 */
#include "mw-build.h"
#include "pd-counters.h"
#include "mw-log.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/evp.h>

#include "policy-daemon/pd-counters-redis-lua.h"

#define REDIS_POOL_DEFAULT   2
#define REDIS_POOL_MAX       16
#define REDIS_PREFIX_DEFAULT "mw:rl:"
#define REDIS_PREFIX_MAX     64
#define REDIS_HOST_MAX       255
#define REDIS_SECRET_MAX     256
#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 10000
#define REDIS_SETUP_MIN_MS   1000 /* connect + SCRIPT LOAD: at least this, else 4 x timeout_ms */
#define REDIS_SCAN_COUNT     "500"
/* EVALSHA sha numkeys, then n keys, now, commit, and 3 numbers per key */
#define REDIS_APPLY_ARGC (3 + PD_BATCH_MAX + 2 + 3 * PD_BATCH_MAX)
#define REDIS_NUM_MAX    24

enum redis_conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

struct redis_store;

struct redis_conn {
	struct redis_store *store;
	redisAsyncContext *ac;
	enum redis_conn_state state;
	unsigned backoff_ms;
	struct event retry;
	struct event setup_timer; /* bounds connect + set-up, even with no call waiting */
};

struct redis_store {
	struct pd_counters c; /* first: the public handle */
	struct event_base *base;
	struct pd_counters *fallback;
	char host[REDIS_HOST_MAX + 1];
	char addr[64]; /* numeric address of host */
	int port;
	int db;
	char user[REDIS_SECRET_MAX + 1];
	char password[REDIS_SECRET_MAX + 1];
	char prefix[REDIS_PREFIX_MAX + 1];
	unsigned timeout_ms;
	unsigned pool_size;
	unsigned next;
	struct redis_conn *conns;
	char sha[41];
	bool ever_up;
	bool degraded;
	bool closing;
};

enum redis_op_kind { OP_APPLY, OP_RESET };

/* One apply or reset in flight. It is freed once it has been answered and hiredis no longer
   holds it (every sent command gets its callback: a reply, or NULL when the link goes). */
struct redis_op {
	struct redis_store *store;
	struct redis_conn *conn;
	enum redis_op_kind kind;
	struct event timer;
	bool answered;
	bool in_hiredis;
	bool sent_eval;
	pd_counters_cb *cb;
	void *ctx;
	int64_t now_us;
	/* apply */
	bool commit;
	size_t n;
	struct pd_limit_req *reqs;
	/* reset */
	char *match;
	char *cursor;
	size_t cleared;
	size_t fallback_cleared;
};

static void redis_send_apply(struct redis_op *op);
static void redis_conn_connect(struct redis_conn *conn);

/* redis_store_of - the store behind the public handle */
static struct redis_store *redis_store_of(struct pd_counters *c)
{
	return (struct redis_store *)c;
}

/* redis_degraded - note a failure; logs only when the store was healthy until now */
static MW_PRINTF(2, 3) void redis_degraded(struct redis_store *s, const char *fmt, ...)
{
	mw_str msg;
	va_list ap;
	if (s->degraded || s->closing)
		return;
	mw_str_init(&msg, 0);
	va_start(ap, fmt);
	(void)mw_str_vappendf(&msg, fmt, ap); /* unbounded: cannot fail */
	va_end(ap);
	s->degraded = true;
	mw_warn("counters=redis degraded: %s (answering from memory counters)", mw_str_c(&msg));
	mw_str_free(&msg);
}

/* redis_recovered - note that Redis answers again; logs once after a failure */
static void redis_recovered(struct redis_store *s, const char *how)
{
	if (!s->degraded)
		return;
	s->degraded = false;
	mw_info("counters=redis recovered: %s %s:%d", how, s->host, s->port);
}

/* redis_reply_error - a short, log-safe text of an error reply */
static const char *redis_reply_error(char *dst, size_t dstsize, const redisReply *r)
{
	return mw_log_value(dst, dstsize, r->str != NULL ? r->str : "",
	                    r->str != NULL ? r->len : 0);
}

/* redis_fmt_i64 - a decimal number into buf (REDIS_NUM_MAX always holds an int64_t) */
static const char *redis_fmt_i64(char *buf, size_t size, int64_t v)
{
	int len = snprintf(buf, size, "%lld", (long long)v);
	if (len < 0 || (size_t)len >= size)
		mw_panic("redis_fmt_i64: buffer of %zu bytes too small", size);
	return buf;
}

/* ---- connections ------------------------------------------------------------------- */

/* redis_conn_retry_later - schedule the next connection attempt with exponential backoff */
static void redis_conn_retry_later(struct redis_conn *conn)
{
	struct timeval tv;
	if (conn->store->closing)
		return;
	tv.tv_sec = conn->backoff_ms / 1000;
	tv.tv_usec = (conn->backoff_ms % 1000) * 1000;
	evtimer_add(&conn->retry, &tv);
	conn->backoff_ms *= 2;
	if (conn->backoff_ms > REDIS_BACKOFF_MAX_MS)
		conn->backoff_ms = REDIS_BACKOFF_MAX_MS;
}

/* redis_conn_lost - forget a context hiredis is freeing (or has freed) and retry later */
static void redis_conn_lost(struct redis_conn *conn, const redisAsyncContext *ac)
{
	if (conn->ac != ac)
		return;
	conn->ac = NULL;
	conn->state = CONN_DOWN;
	evtimer_del(&conn->setup_timer);
	redis_conn_retry_later(conn);
}

/* redis_conn_drop - close a connection we no longer trust (timeout, bad reply) */
static void redis_conn_drop(struct redis_conn *conn)
{
	redisAsyncContext *ac = conn->ac;
	if (ac == NULL)
		return;
	/* pending callbacks run now with a NULL reply and answer their batches from memory;
	   inside a hiredis callback the free is deferred until it returns */
	redis_conn_lost(conn, ac);
	redisAsyncFree(ac);
}

/* redis_on_connect - hiredis: the TCP connection is up or has failed */
static void redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *conn = ac->data;
	if (status == REDIS_OK)
		return; /* ready once SCRIPT LOAD answers */
	redis_degraded(conn->store, "cannot connect to %s:%d: %s", conn->store->host,
	               conn->store->port, ac->errstr);
	/* hiredis frees the context after this callback */
	redis_conn_lost(conn, ac);
}

/* redis_on_disconnect - hiredis: an established connection has gone */
static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *conn = ac->data;
	if (conn->ac != ac)
		return; /* dropped by us */
	redis_degraded(conn->store, "connection to %s:%d lost: %s", conn->store->host,
	               conn->store->port, status == REDIS_OK ? "closed" : ac->errstr);
	redis_conn_lost(conn, ac);
}

/* redis_on_setup_reply - AUTH / SELECT answered: an error makes the connection useless */
static void redis_on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_conn *conn = privdata;
	redisReply *r = reply;
	char buf[200];
	if (r == NULL || conn->ac != ac)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		redis_degraded(conn->store, "setting up connection to %s:%d: %s", conn->store->host,
		               conn->store->port, redis_reply_error(buf, sizeof(buf), r));
		redis_conn_drop(conn);
	}
}

/* redis_on_script_loaded - SCRIPT LOAD answered: the connection is ready for batches */
static void redis_on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_conn *conn = privdata;
	struct redis_store *s = conn->store;
	redisReply *r = reply;
	char buf[200];
	if (r == NULL || conn->ac != ac)
		return;
	if (r->type != REDIS_REPLY_STRING || r->len != 40 || memcmp(r->str, s->sha, 40) != 0) {
		redis_degraded(s, "SCRIPT LOAD on %s:%d: %s", s->host, s->port,
		               r->type == REDIS_REPLY_ERROR ? redis_reply_error(buf, sizeof(buf), r)
		                                            : "unexpected reply");
		redis_conn_drop(conn);
		return;
	}
	conn->state = CONN_UP;
	conn->backoff_ms = REDIS_BACKOFF_MIN_MS;
	evtimer_del(&conn->setup_timer);
	s->ever_up = true;
	redis_recovered(s, "connected to");
}

/* redis_on_setup_timeout - connect or SCRIPT LOAD hangs (a black hole, a stopped server) */
static void redis_on_setup_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct redis_conn *conn = arg;
	if (conn->state != CONN_CONNECTING)
		return;
	redis_degraded(conn->store, "connecting to %s:%d timed out", conn->store->host,
	               conn->store->port);
	redis_conn_drop(conn);
}

/* redis_conn_connect - start a non-blocking connection and queue its set-up commands */
static void redis_conn_connect(struct redis_conn *conn)
{
	struct redis_store *s = conn->store;
	redisAsyncContext *ac;
	char db[REDIS_NUM_MAX];
	if (s->closing || conn->ac != NULL)
		return;
	ac = redisAsyncConnect(s->addr, s->port);
	if (ac == NULL || ac->err != 0) {
		redis_degraded(s, "cannot connect to %s:%d: %s", s->host, s->port,
		               ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		conn->state = CONN_DOWN;
		redis_conn_retry_later(conn);
		return;
	}
	ac->data = conn;
	conn->ac = ac;
	conn->state = CONN_CONNECTING;
	{
		unsigned ms =
		    s->timeout_ms * 4 > REDIS_SETUP_MIN_MS ? s->timeout_ms * 4 : REDIS_SETUP_MIN_MS;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
		evtimer_add(&conn->setup_timer, &tv);
	}
	redisLibeventAttach(ac, s->base);
	redisAsyncSetConnectCallback(ac, redis_on_connect);
	redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
	/* hiredis buffers these until the socket is connected */
	if (s->password[0] != '\0') {
		if (s->user[0] != '\0') {
			const char *argv[] = {"AUTH", s->user, s->password};
			redisAsyncCommandArgv(ac, redis_on_setup_reply, conn, 3, argv, NULL);
		} else {
			const char *argv[] = {"AUTH", s->password};
			redisAsyncCommandArgv(ac, redis_on_setup_reply, conn, 2, argv, NULL);
		}
	}
	if (s->db != 0) {
		const char *argv[] = {"SELECT", redis_fmt_i64(db, sizeof(db), s->db)};
		redisAsyncCommandArgv(ac, redis_on_setup_reply, conn, 2, argv, NULL);
	}
	{
		const char *argv[] = {"SCRIPT", "LOAD", pd_redis_script};
		redisAsyncCommandArgv(ac, redis_on_script_loaded, conn, 3, argv, NULL);
	}
}

/* redis_on_retry - backoff timer: try connecting again */
static void redis_on_retry(evutil_socket_t fd, short what, void *arg)
{
	redis_conn_connect(arg);
}

/* redis_pick_conn - a connection for the next call, or NULL to answer from memory */
static struct redis_conn *redis_pick_conn(struct redis_store *s)
{
	unsigned i;
	for (i = 0; i < s->pool_size; i++) {
		struct redis_conn *conn = &s->conns[(s->next + i) % s->pool_size];
		if (conn->state == CONN_UP) {
			s->next = (s->next + i + 1) % s->pool_size;
			return conn;
		}
	}
	/* at start-up, queue behind the first connection instead of degrading at once */
	if (!s->ever_up && !s->degraded) {
		for (i = 0; i < s->pool_size; i++)
			if (s->conns[i].state == CONN_CONNECTING)
				return &s->conns[i];
	}
	return NULL;
}

/* ---- operations -------------------------------------------------------------------- */

/* redis_op_maybe_free - free an op once it is answered and hiredis has let go of it */
static void redis_op_maybe_free(struct redis_op *op)
{
	if (!op->answered || op->in_hiredis)
		return;
	evtimer_del(&op->timer);
	free(op->reqs);
	free(op->match);
	free(op->cursor);
	free(op);
}

/* redis_fallback_cb - the memory store's answer, passed on marked degraded */
static void redis_fallback_cb(const struct pd_batch_res *res, void *ctx)
{
	struct redis_op *op = ctx;
	struct pd_batch_res copy = *res;
	copy.degraded = true;
	op->cb(&copy, op->ctx);
}

/* redis_op_fallback - answer an unanswered op from the fallback store */
static void redis_op_fallback(struct redis_op *op)
{
	struct redis_store *s = op->store;
	if (op->answered)
		return;
	op->answered = true;
	evtimer_del(&op->timer);
	if (op->kind == OP_APPLY) {
		s->fallback->ops->apply(s->fallback, op->reqs, op->n, op->commit, op->now_us,
		                        redis_fallback_cb, op);
	} else {
		struct pd_batch_res res;
		memset(&res, 0, sizeof(res));
		res.degraded = true;
		res.count = op->cleared + op->fallback_cleared;
		op->cb(&res, op->ctx);
	}
}

/* redis_on_timeout - a call took longer than timeout_ms: answer from memory and drop every
   connection (a server that hangs on one hangs on all; each is retried with backoff) */
static void redis_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct redis_op *op = arg;
	struct redis_store *s = op->store;
	unsigned i;
	redis_degraded(s, "no answer from %s:%d within %u ms", s->host, s->port, s->timeout_ms);
	redis_op_fallback(op);
	/* frees op through its NULL-reply callback: do not touch op after this */
	for (i = 0; i < s->pool_size; i++)
		redis_conn_drop(&s->conns[i]);
}

/* redis_op_new - an op for one call */
static struct redis_op *redis_op_new(struct redis_store *s, enum redis_op_kind kind, int64_t now_us,
                                     pd_counters_cb *cb, void *ctx)
{
	struct redis_op *op = mw_calloc(1, sizeof(*op));
	op->store = s;
	op->kind = kind;
	op->now_us = now_us;
	op->cb = cb;
	op->ctx = ctx;
	evtimer_assign(&op->timer, s->base, redis_on_timeout, op);
	return op;
}

/* redis_op_arm - (re)start the timer bounding the op's next round trip */
static void redis_op_arm(struct redis_op *op)
{
	struct timeval tv;
	tv.tv_sec = op->store->timeout_ms / 1000;
	tv.tv_usec = (op->store->timeout_ms % 1000) * 1000;
	evtimer_add(&op->timer, &tv);
}

/* redis_parse_apply - check the script's reply and fill the batch result */
static int redis_parse_apply(struct redis_op *op, const redisReply *r, struct pd_batch_res *res)
{
	size_t i;
	bool all = true, committed;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 + 2 * op->n)
		return -1;
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER)
			return -1;
	committed = r->element[1]->integer == 1;
	memset(res, 0, sizeof(*res));
	res->count = op->n;
	for (i = 0; i < op->n; i++) {
		bool script_allowed = r->element[2 + 2 * i]->integer == 1;
		int64_t tat = r->element[3 + 2 * i]->integer;
		pd_gcra(&tat, &op->reqs[i], op->now_us, committed, &res->res[i]);
		if (res->res[i].allowed != script_allowed)
			return -1; /* the script and pd_gcra disagree: a bug, never trust it */
		if (!res->res[i].allowed)
			all = false;
	}
	if (all != (r->element[0]->integer == 1) || (committed && (!all || !op->commit)))
		return -1;
	res->allowed = all;
	return 0;
}

/* redis_on_apply_reply - hiredis: the script's answer (NULL when the link went) */
static void redis_on_apply_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_op *op = privdata;
	struct redis_store *s = op->store;
	redisReply *r = reply;
	struct pd_batch_res res;
	char buf[200];
	op->in_hiredis = false;
	if (op->answered) {
		redis_op_maybe_free(op);
		return;
	}
	if (r == NULL) {
		redis_degraded(s, "connection to %s:%d lost", s->host, s->port);
		redis_op_fallback(op);
	} else if (r->type == REDIS_REPLY_ERROR && !op->sent_eval &&
	           strncmp(r->str, "NOSCRIPT", 8) == 0) {
		/* Redis restarted or flushed its scripts: EVAL caches it again */
		op->sent_eval = true;
		redis_send_apply(op);
		if (op->in_hiredis)
			return;
		redis_op_fallback(op);
	} else if (r->type == REDIS_REPLY_ERROR) {
		redis_degraded(s, "script error from %s:%d: %s", s->host, s->port,
		               redis_reply_error(buf, sizeof(buf), r));
		redis_op_fallback(op);
	} else if (redis_parse_apply(op, r, &res) < 0) {
		redis_degraded(s, "unexpected script reply from %s:%d", s->host, s->port);
		redis_op_fallback(op);
	} else {
		op->answered = true;
		evtimer_del(&op->timer);
		redis_recovered(s, "answering again from");
		op->cb(&res, op->ctx);
	}
	redis_op_maybe_free(op);
}

/* redis_send_apply - send the batch as EVALSHA (or EVAL after NOSCRIPT) on op->conn */
static void redis_send_apply(struct redis_op *op)
{
	struct redis_store *s = op->store;
	const char *argv[REDIS_APPLY_ARGC];
	size_t lens[REDIS_APPLY_ARGC];
	char keys[PD_BATCH_MAX][REDIS_PREFIX_MAX + PD_COUNTER_KEY_MAX];
	char nums[2 + 3 * PD_BATCH_MAX][REDIS_NUM_MAX];
	size_t argc = 0, k = 0, i;
	op->in_hiredis = false;
	if (op->conn->ac == NULL)
		return;
	argv[argc++] = op->sent_eval ? "EVAL" : "EVALSHA";
	argv[argc++] = op->sent_eval ? pd_redis_script : s->sha;
	argv[argc++] = redis_fmt_i64(nums[k], sizeof(nums[k]), (int64_t)op->n);
	k++;
	for (i = 0; i < op->n; i++) {
		/* both parts were checked for length: prefix <= 64, key < 512 */
		int len = snprintf(keys[i], sizeof(keys[i]), "%s%s", s->prefix, op->reqs[i].key);
		if (len < 0 || (size_t)len >= sizeof(keys[i]))
			mw_panic("redis_send_apply: key longer than checked");
		argv[argc++] = keys[i];
	}
	argv[argc++] = redis_fmt_i64(nums[k], sizeof(nums[k]), op->now_us);
	k++;
	argv[argc++] = op->commit ? "1" : "0";
	for (i = 0; i < op->n; i++) {
		argv[argc++] = redis_fmt_i64(nums[k], sizeof(nums[k]), op->reqs[i].window_us);
		k++;
		argv[argc++] = redis_fmt_i64(nums[k], sizeof(nums[k]), op->reqs[i].limit);
		k++;
		argv[argc++] = redis_fmt_i64(nums[k], sizeof(nums[k]), op->reqs[i].cost);
		k++;
	}
	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if (redisAsyncCommandArgv(op->conn->ac, redis_on_apply_reply, op, (int)argc, argv, lens) ==
	    REDIS_OK)
		op->in_hiredis = true;
}

/* redis_apply - ops->apply: one atomic batch through the script, or from memory */
static void redis_apply(struct pd_counters *c, const struct pd_limit_req *reqs, size_t n,
                        bool commit, int64_t now_us, pd_counters_cb *cb, void *ctx)
{
	struct redis_store *s = redis_store_of(c);
	struct redis_op *op;
	size_t i;
	bool valid = n > 0 && n <= PD_BATCH_MAX;
	for (i = 0; valid && i < n; i++)
		if (memchr(reqs[i].key, '\0', sizeof(reqs[i].key)) == NULL ||
		    reqs[i].window_us <= 0 || reqs[i].limit <= 0 || reqs[i].cost < 0)
			valid = false;
	if (!valid) {
		/* not a Redis matter: the memory store applies its own checks to the same input */
		s->fallback->ops->apply(s->fallback, reqs, n, commit, now_us, cb, ctx);
		return;
	}
	op = redis_op_new(s, OP_APPLY, now_us, cb, ctx);
	op->commit = commit;
	op->n = n;
	op->reqs = mw_calloc(n, sizeof(*reqs));
	memcpy(op->reqs, reqs, n * sizeof(*reqs));
	op->conn = redis_pick_conn(s);
	if (op->conn != NULL) {
		redis_send_apply(op);
		if (op->in_hiredis) {
			redis_op_arm(op);
			return;
		}
		redis_degraded(s, "cannot send to %s:%d", s->host, s->port);
	} else {
		redis_degraded(s, "no connection to %s:%d", s->host, s->port);
	}
	redis_op_fallback(op);
	redis_op_maybe_free(op);
}

/* ---- reset ------------------------------------------------------------------------- */

static void redis_on_reset_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* redis_reset_send - the next SCAN (cursor) or DEL (keys) of a reset */
static void redis_reset_send(struct redis_op *op, int argc, const char **argv, const size_t *lens)
{
	op->in_hiredis = false;
	if (op->conn->ac == NULL)
		return;
	if (redisAsyncCommandArgv(op->conn->ac, redis_on_reset_reply, op, argc, argv, lens) ==
	    REDIS_OK) {
		op->in_hiredis = true;
		redis_op_arm(op);
	}
}

/* redis_reset_scan - SCAN from cursor for keys matching the reset's pattern */
static void redis_reset_scan(struct redis_op *op, const char *cursor)
{
	const char *argv[] = {"SCAN", cursor, "MATCH", op->match, "COUNT", REDIS_SCAN_COUNT};
	redis_reset_send(op, (int)MW_N_ELEMENTS(argv), argv, NULL);
}

/* redis_reset_done - answer a finished reset */
static void redis_reset_done(struct redis_op *op)
{
	struct pd_batch_res res;
	memset(&res, 0, sizeof(res));
	res.allowed = true;
	res.count = op->cleared;
	op->answered = true;
	evtimer_del(&op->timer);
	op->cb(&res, op->ctx);
}

/* redis_on_reset_reply - SCAN answered (DEL what it found) or DEL answered (SCAN on) */
static void redis_on_reset_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_op *op = privdata;
	struct redis_store *s = op->store;
	redisReply *r = reply;
	char buf[200];
	op->in_hiredis = false;
	if (op->answered) {
		redis_op_maybe_free(op);
		return;
	}
	if (r == NULL) {
		redis_degraded(s, "connection to %s:%d lost", s->host, s->port);
	} else if (r->type == REDIS_REPLY_ERROR) {
		redis_degraded(s, "reset on %s:%d: %s", s->host, s->port,
		               redis_reply_error(buf, sizeof(buf), r));
	} else if (r->type == REDIS_REPLY_INTEGER) {
		/* DEL done: go on from the cursor of the last SCAN */
		op->cleared += (size_t)r->integer;
		if (strcmp(op->cursor, "0") == 0)
			redis_reset_done(op);
		else
			redis_reset_scan(op, op->cursor);
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	           r->element[0]->type == REDIS_REPLY_STRING &&
	           r->element[1]->type == REDIS_REPLY_ARRAY) {
		const redisReply *keys = r->element[1];
		size_t i;
		free(op->cursor);
		op->cursor = mw_strndup(r->element[0]->str, r->element[0]->len);
		if (keys->elements == 0) {
			if (strcmp(op->cursor, "0") == 0)
				redis_reset_done(op);
			else
				redis_reset_scan(op, op->cursor);
		} else {
			const char **argv = mw_calloc(keys->elements + 1, sizeof(*argv));
			size_t *lens = mw_calloc(keys->elements + 1, sizeof(*lens));
			argv[0] = "DEL";
			lens[0] = 3;
			for (i = 0; i < keys->elements; i++) {
				argv[i + 1] =
				    keys->element[i]->str != NULL ? keys->element[i]->str : "";
				lens[i + 1] = keys->element[i]->len;
			}
			redis_reset_send(op, (int)keys->elements + 1, argv, lens);
			free(argv);
			free(lens);
		}
	} else {
		redis_degraded(s, "unexpected reply to SCAN/DEL from %s:%d", s->host, s->port);
	}
	if (!op->answered && !op->in_hiredis)
		redis_op_fallback(op);
	redis_op_maybe_free(op);
}

/* redis_reset_fallback_cb - count what the fallback store cleared */
static void redis_reset_fallback_cb(const struct pd_batch_res *res, void *ctx)
{
	struct redis_op *op = ctx;
	op->fallback_cleared = res->count;
}

/* redis_glob_escape - prefix as a SCAN MATCH pattern that matches it literally, then '*' */
static char *redis_glob_escape(const char *store_prefix, const char *prefix)
{
	mw_str m;
	const char *p;
	mw_str_init(&m, 0);
	for (p = store_prefix; *p != '\0'; p++) {
		if (strchr("*?[]\\", *p) != NULL)
			mw_str_appendc(&m, '\\');
		mw_str_appendc(&m, *p);
	}
	for (p = prefix; *p != '\0'; p++) {
		if (strchr("*?[]\\", *p) != NULL)
			mw_str_appendc(&m, '\\');
		mw_str_appendc(&m, *p);
	}
	mw_str_appendc(&m, '*');
	return mw_str_steal(&m);
}

/* redis_reset - ops->reset: SCAN + DEL every key under prefix (and clear the fallback's) */
static void redis_reset(struct pd_counters *c, const char *prefix, int64_t now_us,
                        pd_counters_cb *cb, void *ctx)
{
	struct redis_store *s = redis_store_of(c);
	struct redis_op *op = redis_op_new(s, OP_RESET, now_us, cb, ctx);
	/* degraded-mode counts live in the fallback: they must go too */
	s->fallback->ops->reset(s->fallback, prefix, now_us, redis_reset_fallback_cb, op);
	op->match = redis_glob_escape(s->prefix, prefix);
	op->cursor = mw_strdup("0");
	op->conn = redis_pick_conn(s);
	if (op->conn != NULL)
		redis_reset_scan(op, "0");
	if (!op->in_hiredis) {
		redis_degraded(s, "no connection to %s:%d", s->host, s->port);
		redis_op_fallback(op);
	}
	redis_op_maybe_free(op);
}

/* redis_free - ops->free: close every connection (answering what is in flight from memory),
   then free the fallback store */
static void redis_free(struct pd_counters *c)
{
	struct redis_store *s = redis_store_of(c);
	unsigned i;
	s->closing = true;
	for (i = 0; i < s->pool_size; i++) {
		struct redis_conn *conn = &s->conns[i];
		evtimer_del(&conn->retry);
		evtimer_del(&conn->setup_timer);
		redis_conn_drop(conn);
	}
	s->fallback->ops->free(s->fallback);
	mw_memzero(s->password, sizeof(s->password));
	free(s->conns);
	free(s);
}

static const struct pd_counters_ops redis_ops = {
    .name = "redis",
    .apply = redis_apply,
    .reset = redis_reset,
    .free = redis_free,
};

/* ---- set-up ------------------------------------------------------------------------ */

/* redis_parse_uint - a decimal number in [min, max] from s[0..len) */
static int redis_parse_uint(const char *s, size_t len, long min, long max, long *value_r)
{
	long v = 0;
	size_t i;
	if (len == 0 || len > 9)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*value_r = v;
	return 0;
}

/* redis_copy - copy s[0..len) into dst (size dstsize); refuses what does not fit */
static int redis_copy(char *dst, size_t dstsize, const char *s, size_t len)
{
	if (len >= dstsize)
		return -1;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

/* redis_parse_query - pool=N and prefix=STR, '&'-separated */
static int redis_parse_query(struct redis_store *s, const char *q, mw_error *error_r)
{
	while (*q != '\0') {
		const char *amp = strchr(q, '&'), *eq;
		size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
		long v;
		eq = memchr(q, '=', len);
		if (eq == NULL) {
			mw_error_set(error_r, "redis URL: query parameter without '='");
			return -1;
		}
		if ((size_t)(eq - q) == 4 && strncmp(q, "pool", 4) == 0) {
			if (redis_parse_uint(eq + 1, len - 5, 1, REDIS_POOL_MAX, &v) < 0) {
				mw_error_set(error_r, "redis URL: pool must be 1..%d",
				             REDIS_POOL_MAX);
				return -1;
			}
			s->pool_size = (unsigned)v;
		} else if ((size_t)(eq - q) == 6 && strncmp(q, "prefix", 6) == 0) {
			size_t i, plen = len - 7;
			for (i = 0; i < plen; i++)
				if (eq[1 + i] <= ' ' || eq[1 + i] > '~')
					break;
			if (i < plen ||
			    redis_copy(s->prefix, sizeof(s->prefix), eq + 1, plen) < 0) {
				mw_error_set(error_r,
				             "redis URL: prefix must be at most %d printable "
				             "characters",
				             REDIS_PREFIX_MAX);
				return -1;
			}
		} else {
			mw_error_set(error_r, "redis URL: unknown parameter (known: pool, prefix)");
			return -1;
		}
		q += len;
		if (*q == '&')
			q++;
	}
	return 0;
}

/* redis_parse_url - redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?QUERY] into s */
static int redis_parse_url(struct redis_store *s, const char *url, mw_error *error_r)
{
	const char *p, *at, *end, *colon;
	long v;
	if (strncmp(url, "redis://", 8) != 0) {
		mw_error_set(error_r, "counters URL must start with redis://");
		return -1;
	}
	if (strlen(url) > 1024) {
		mw_error_set(error_r, "redis URL longer than 1024 characters");
		return -1;
	}
	p = url + 8;
	end = p + strcspn(p, "/?");
	at = memchr(p, '@', (size_t)(end - p));
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon == NULL ||
		    redis_copy(s->user, sizeof(s->user), p, (size_t)(colon - p)) < 0 ||
		    redis_copy(s->password, sizeof(s->password), colon + 1,
		               (size_t)(at - colon - 1)) < 0 ||
		    s->password[0] == '\0') {
			/* never echo the URL: it holds the password */
			mw_error_set(error_r,
			             "redis URL: credentials must be [USER]:PASSWORD@ "
			             "(at most %d characters each)",
			             REDIS_SECRET_MAX);
			return -1;
		}
		p = at + 1;
	}
	colon = memchr(p, ':', (size_t)(end - p));
	if (colon != NULL) {
		if (redis_parse_uint(colon + 1, (size_t)(end - colon - 1), 1, 65535, &v) < 0) {
			mw_error_set(error_r, "redis URL: port must be 1..65535");
			return -1;
		}
		s->port = (int)v;
	} else {
		colon = end;
	}
	if (colon == p || redis_copy(s->host, sizeof(s->host), p, (size_t)(colon - p)) < 0) {
		mw_error_set(error_r, "redis URL: missing or over-long host name");
		return -1;
	}
	p = end;
	if (*p == '/') {
		size_t len = strcspn(p + 1, "?");
		if (len > 0) {
			if (redis_parse_uint(p + 1, len, 0, 1000, &v) < 0) {
				mw_error_set(error_r, "redis URL: database must be 0..1000");
				return -1;
			}
			s->db = (int)v;
		}
		p += 1 + len;
	}
	if (*p == '?')
		return redis_parse_query(s, p + 1, error_r);
	return 0;
}

/* redis_resolve - the host's numeric address, looked up once at start-up */
static int redis_resolve(struct redis_store *s, mw_error *error_r)
{
	struct addrinfo hints, *res = NULL;
	int rc;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(s->host, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		mw_error_set(error_r, "redis host %s: %s", s->host, gai_strerror(rc));
		return -1;
	}
	rc = getnameinfo(res->ai_addr, res->ai_addrlen, s->addr, sizeof(s->addr), NULL, 0,
	                 NI_NUMERICHOST);
	freeaddrinfo(res);
	if (rc != 0) {
		mw_error_set(error_r, "redis host %s: %s", s->host, gai_strerror(rc));
		return -1;
	}
	return 0;
}

/* redis_script_sha - SHA-1 of the script in hex, as Redis names it */
static int redis_script_sha(char sha_r[41], mw_error *error_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	static const char hex[] = "0123456789abcdef";
	if (EVP_Digest(pd_redis_script, strlen(pd_redis_script), md, &mdlen, EVP_sha1(), NULL) !=
	        1 ||
	    mdlen != 20) {
		mw_error_set(error_r, "cannot compute the SHA-1 of the Redis script");
		return -1;
	}
	for (i = 0; i < 20; i++) {
		sha_r[2 * i] = hex[md[i] >> 4];
		sha_r[2 * i + 1] = hex[md[i] & 15];
	}
	sha_r[40] = '\0';
	return 0;
}

/* pd_counters_redis_new - a Redis store on base; takes ownership of fallback (on failure
   the caller keeps it) */
struct pd_counters *pd_counters_redis_new(const char *url, struct event_base *base,
                                          struct pd_counters *fallback, unsigned timeout_ms,
                                          mw_error *error_r)
{
	struct redis_store *s = mw_calloc(1, sizeof(*s));
	unsigned i;
	s->c.ops = &redis_ops;
	s->base = base;
	s->fallback = fallback;
	s->port = 6379;
	s->pool_size = REDIS_POOL_DEFAULT;
	s->timeout_ms = timeout_ms;
	mw_strlcpy(s->prefix, REDIS_PREFIX_DEFAULT, sizeof(s->prefix));
	if (timeout_ms == 0 || timeout_ms > 60000) {
		mw_error_set(error_r, "redis timeout must be 1..60000 ms");
		goto fail;
	}
	if (base == NULL || fallback == NULL) {
		mw_error_set(error_r, "redis counters need an event base and a fallback store");
		goto fail;
	}
	if (redis_parse_url(s, url, error_r) < 0 || redis_resolve(s, error_r) < 0 ||
	    redis_script_sha(s->sha, error_r) < 0)
		goto fail;
	s->conns = mw_calloc(s->pool_size, sizeof(*s->conns));
	for (i = 0; i < s->pool_size; i++) {
		struct redis_conn *conn = &s->conns[i];
		conn->store = s;
		conn->backoff_ms = REDIS_BACKOFF_MIN_MS;
		evtimer_assign(&conn->retry, base, redis_on_retry, conn);
		evtimer_assign(&conn->setup_timer, base, redis_on_setup_timeout, conn);
		redis_conn_connect(conn);
	}
	return &s->c;
fail:
	mw_memzero(s->password, sizeof(s->password));
	free(s);
	return NULL;
}
