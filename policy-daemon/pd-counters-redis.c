/*
 * pd-counters-redis.c - rate-limit counters in Redis, shared by several policyd hosts.
 *
 * Public: pd_counters_redis_new (the store's apply/reset/free are its ops table),
 * pd_counters_redis_lease (lease batches for pd-counters-lease.c: a return and a grant per
 * key, grouped into the same script calls as the exact batches; a reply is checked against
 * what was asked and never trusted beyond it).
 *
 * URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?pool=N&prefix=STR]
 *   pool    connections kept open (1..16, default 2); batches go round-robin over them
 *   prefix  prepended to every counter key (default "mw:rl:"), so one Redis can be shared
 * A host name is resolved once, at start-up; requests never wait for DNS.
 *
 * Batches go to Redis through pd-counters-redis.lua (embedded at build time, loaded with
 * SCRIPT LOAD on every new connection; NOSCRIPT after a Redis restart or SCRIPT FLUSH is
 * answered by resending the same call as EVAL). The batches handed to apply during one loop
 * iteration (the policy requests that arrived together) are queued on one connection and
 * sent as a single EVALSHA by an event that runs later in the same iteration: no waiting,
 * one command instead of one per request. The script runs them in order, each exactly as a
 * call of its own would (atomic, all or nothing), and a batch it refuses (a key that is not
 * a counter) is answered from memory without touching the others. For each batch it
 * returns the TATs it found; usage and times are then derived with
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
 * Diagnostics: "event=degraded component=policyd_counters reason=WORD detail=..." (warning,
 * lib/mw-degraded.c) once when Redis stops answering, "event=recovered
 * component=policyd_counters ..." (info) once when it answers again; the state is the
 * mailwarden_degraded gauge and the control socket's health reply. URL errors from
 * pd_counters_redis_new through error_r.
 */
#include "mw-build.h"
#include "pd-counters.h"
#include "mw-degraded.h"
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
#define REDIS_NUM_MAX        24
#define REDIS_GROUP_MAX      64 /* batches sent in one script call */

enum redis_conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

struct redis_store;

struct redis_op;

struct redis_conn {
	struct redis_store *store;
	redisAsyncContext *ac;
	enum redis_conn_state state;
	unsigned backoff_ms;
	struct event retry;
	struct event setup_timer; /* bounds connect + set-up, even with no call waiting */
	/* batches waiting for the send event (later this loop iteration): sent as one call */
	struct redis_op *queue_head, *queue_tail;
	struct event send_ev;
	bool send_queued;
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
	mw_str cmd; /* the next command in the wire format, built in place (reused) */
	bool ever_up;
	bool degraded;
	bool closing;
};

enum redis_op_kind { OP_APPLY, OP_RESET, OP_LEASE };

/* One apply or reset in flight. It is freed once it has been answered and hiredis no longer
   holds it (every sent command gets its callback: a reply, or NULL when the link goes). */
struct redis_op {
	struct redis_store *store;
	struct redis_conn *conn;
	enum redis_op_kind kind;
	struct event timer;
	bool answered;
	bool in_hiredis;
	bool in_queue;
	struct redis_op *queue_next;
	pd_counters_cb *cb;
	void *ctx;
	int64_t now_us;
	/* apply, lease (reqs holds the lease's keys, windows and limits) */
	bool commit;
	size_t n;
	struct pd_limit_req *reqs;
	struct pd_lease_req *lreqs;
	pd_lease_cb *lcb;
	/* reset */
	char *match;
	char *cursor;
	size_t cleared;
	size_t fallback_cleared;
};

/* The batches of one script call, in order (hiredis's privdata for the call). */
struct redis_group {
	struct redis_conn *conn;
	bool sent_eval; /* NOSCRIPT was answered: sent again as EVAL */
	size_t n;
	struct redis_op *ops[REDIS_GROUP_MAX];
};

static void redis_send_group(struct redis_group *g);
static void redis_conn_connect(struct redis_conn *conn);
static void redis_queue_fallback(struct redis_conn *conn);
static void redis_op_enqueue(struct redis_store *s, struct redis_op *op);

/* redis_store_of - the store behind the public handle */
static struct redis_store *redis_store_of(struct pd_counters *c)
{
	return (struct redis_store *)c;
}

/* redis_degraded - note a failure; logs only when the store was healthy until now (reason:
   a word for the gauge, fmt: the detail for the log) */
static MW_PRINTF(3, 4) void redis_degraded(struct redis_store *s, const char *reason,
                                           const char *fmt, ...)
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
	(void)mw_degraded_enter(MW_DEGRADED_POLICYD_COUNTERS, reason, mw_str_c(&msg));
	mw_str_free(&msg);
}

/* redis_recovered - note that Redis answers again; logs once after a failure */
static void redis_recovered(struct redis_store *s, const char *how)
{
	if (!s->degraded)
		return;
	char detail[300];
	s->degraded = false;
	(void)snprintf(detail, sizeof(detail), "%s %s:%d", how, s->host, s->port);
	(void)mw_degraded_leave(MW_DEGRADED_POLICYD_COUNTERS, detail);
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

/* ---- the hiredis event adapter ------------------------------------------------------ */

/* hiredis's own libevent adapter uses one-shot events: every reply and every command costs an
   epoll_ctl pair. This one keeps the read event added (persistent) and, once connected, does
   not wait for writability to send: a command queued during this loop iteration is written by
   one deferred flush (an active event, no system call) together with every other command
   queued meanwhile; only when the socket does not take everything is the write event
   added. */
struct redis_ev {
	redisAsyncContext *ac;
	struct event *rev, *wev, *flush;
	bool reading, writing, flush_queued, in_flush, dead;
};

/* redis_ev_read - the socket is readable */
static void redis_ev_read(evutil_socket_t fd, short what, void *arg)
{
	struct redis_ev *e = arg;
	(void)fd;
	(void)what;
	redisAsyncHandleRead(e->ac); /* may free e (through redis_ev_cleanup) */
}

/* redis_ev_write - the socket is writable (connecting, or it did not take everything) */
static void redis_ev_write(evutil_socket_t fd, short what, void *arg)
{
	struct redis_ev *e = arg;
	(void)fd;
	(void)what;
	redisAsyncHandleWrite(e->ac); /* may free e */
}

/* redis_ev_flush - write what this loop iteration queued */
static void redis_ev_flush(evutil_socket_t fd, short what, void *arg)
{
	struct redis_ev *e = arg;
	(void)fd;
	(void)what;
	e->flush_queued = false;
	e->in_flush = true;
	redisAsyncHandleWrite(e->ac);
	if (e->dead) /* cleaned up meanwhile: the events are gone, the struct is ours */
		free(e);
	else
		e->in_flush = false;
}

/* redis_ev_add_read - hiredis wants replies */
static void redis_ev_add_read(void *privdata)
{
	struct redis_ev *e = privdata;
	if (!e->reading)
		event_add(e->rev, NULL);
	e->reading = true;
}

/* redis_ev_del_read - hiredis wants no more replies */
static void redis_ev_del_read(void *privdata)
{
	struct redis_ev *e = privdata;
	if (e->reading)
		event_del(e->rev);
	e->reading = false;
}

/* redis_ev_add_write - hiredis has output: flush it soon, or wait for writability when the
   socket is not connected yet or has just refused part of it */
static void redis_ev_add_write(void *privdata)
{
	struct redis_ev *e = privdata;
	if ((e->ac->c.flags & REDIS_CONNECTED) && !e->in_flush) {
		if (!e->flush_queued && !e->writing) {
			event_active(e->flush, EV_TIMEOUT, 1);
			e->flush_queued = true;
		}
		return;
	}
	if (!e->writing)
		event_add(e->wev, NULL);
	e->writing = true;
}

/* redis_ev_del_write - all output written */
static void redis_ev_del_write(void *privdata)
{
	struct redis_ev *e = privdata;
	if (e->writing)
		event_del(e->wev);
	e->writing = false;
}

/* redis_ev_cleanup - hiredis frees the context */
static void redis_ev_cleanup(void *privdata)
{
	struct redis_ev *e = privdata;
	event_free(e->rev);
	event_free(e->wev);
	event_free(e->flush);
	if (e->in_flush)
		e->dead = true; /* redis_ev_flush frees it when hiredis returns */
	else
		free(e);
}

/* redis_ev_attach - our adapter on the context */
static void redis_ev_attach(redisAsyncContext *ac, struct event_base *base)
{
	struct redis_ev *e = mw_calloc(1, sizeof(*e));
	e->ac = ac;
	e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, redis_ev_read, e);
	e->wev = event_new(base, ac->c.fd, EV_WRITE | EV_PERSIST, redis_ev_write, e);
	e->flush = event_new(base, -1, 0, redis_ev_flush, e);
	if (e->rev == NULL || e->wev == NULL || e->flush == NULL)
		mw_panic("redis: libevent allocation failed");
	ac->ev.addRead = redis_ev_add_read;
	ac->ev.delRead = redis_ev_del_read;
	ac->ev.addWrite = redis_ev_add_write;
	ac->ev.delWrite = redis_ev_del_write;
	ac->ev.cleanup = redis_ev_cleanup;
	ac->ev.data = e;
	/* as hiredis's adapter: watch both ways until the non-blocking connect completes */
	redis_ev_add_read(e);
	redis_ev_add_write(e);
}

/* ---- the wire format ------------------------------------------------------------------- */

/* resp_len - "$LEN\r\n" or "*COUNT\r\n" */
static void resp_len(mw_str *b, char kind, size_t n)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	tmp[--i] = '\n';
	tmp[--i] = '\r';
	do {
		tmp[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	tmp[--i] = kind;
	(void)mw_str_append(b, tmp + i, sizeof(tmp) - i); /* unbounded: cannot fail */
}

/* resp_arg - one bulk string argument made of two parts (the second may be empty) */
static void resp_arg(mw_str *b, const char *p1, size_t n1, const char *p2, size_t n2)
{
	resp_len(b, '$', n1 + n2);
	(void)mw_str_append(b, p1, n1);
	(void)mw_str_append(b, p2, n2);
	(void)mw_str_append(b, "\r\n", 2);
}

/* resp_num - a decimal number as a bulk string */
static void resp_num(mw_str *b, int64_t v)
{
	char tmp[MW_I64_DIGITS];
	size_t n;
	const char *d = mw_i64_digits(tmp, v, &n);
	resp_arg(b, d, n, "", 0);
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
	redis_queue_fallback(conn);
}

/* redis_on_connect - hiredis: the TCP connection is up or has failed */
static void redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *conn = ac->data;
	if (status == REDIS_OK)
		return; /* ready once SCRIPT LOAD answers */
	redis_degraded(conn->store, "connect_failed", "cannot connect to %s:%d: %s",
	               conn->store->host, conn->store->port, ac->errstr);
	/* hiredis frees the context after this callback */
	redis_conn_lost(conn, ac);
}

/* redis_on_disconnect - hiredis: an established connection has gone */
static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *conn = ac->data;
	if (conn->ac != ac)
		return; /* dropped by us */
	redis_degraded(conn->store, "connection_lost", "connection to %s:%d lost: %s",
	               conn->store->host, conn->store->port,
	               status == REDIS_OK ? "closed" : ac->errstr);
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
		redis_degraded(conn->store, "connect_failed", "setting up connection to %s:%d: %s",
		               conn->store->host, conn->store->port,
		               redis_reply_error(buf, sizeof(buf), r));
		redis_conn_drop(conn);
	}
}

/* peer_gone - the server has closed fd (its end is waiting behind what we read) */
static bool peer_gone(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
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
		redis_degraded(s, "script_error", "SCRIPT LOAD on %s:%d: %s", s->host, s->port,
		               r->type == REDIS_REPLY_ERROR ? redis_reply_error(buf, sizeof(buf), r)
		                                            : "unexpected reply");
		redis_conn_drop(conn);
		return;
	}
	/* an answer read from the buffer of a server that has died since (killed after it
	   replied, before we read) is no recovery: hiredis reads the end next and
	   redis_on_disconnect handles it (a "recovered" here made the state flap) */
	if (peer_gone(ac->c.fd))
		return;
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
	redis_degraded(conn->store, "connect_failed", "connecting to %s:%d timed out",
	               conn->store->host, conn->store->port);
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
		redis_degraded(s, "connect_failed", "cannot connect to %s:%d: %s", s->host, s->port,
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
	redis_ev_attach(ac, s->base);
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
	if (!op->answered || op->in_hiredis || op->in_queue)
		return;
	evtimer_del(&op->timer);
	free(op->reqs);
	free(op->lreqs);
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
	} else if (op->kind == OP_LEASE) {
		op->lcb(NULL, op->n, false, op->ctx);
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
	redis_degraded(s, "timeout", "no answer from %s:%d within %u ms", s->host, s->port,
	               s->timeout_ms);
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

/* redis_parse_refused - the start of one batch's part of the script's reply, at element *at:
   0 when it is a batch's answer; -2 with the message in err (and *at past it) when the script
   refused the batch ({-1, message}); -1 when malformed */
static int redis_parse_refused(const redisReply *r, size_t *at, char *err, size_t errsize)
{
	size_t base = *at;
	const redisReply *m;
	if (base + 2 > r->elements || r->element[base]->type != REDIS_REPLY_INTEGER)
		return -1;
	if (r->element[base]->integer != -1)
		return 0;
	m = r->element[base + 1];
	if (m->type != REDIS_REPLY_STRING)
		return -1;
	(void)mw_log_value(err, errsize, m->str, m->len);
	*at = base + 2;
	return -2;
}

/* redis_parse_apply - one batch's part of the script's reply, from element *at on: fill the
   batch result (0), or -1 for a malformed reply; *at moves past the batch. A batch the script
   refused ({-1, message}) is -2 with the message in err. */
static int redis_parse_apply(struct redis_op *op, const redisReply *r, size_t *at,
                             struct pd_batch_res *res, char *err, size_t errsize)
{
	size_t i, base = *at;
	bool all = true, committed;
	int ret = redis_parse_refused(r, at, err, errsize);
	if (ret != 0)
		return ret;
	if (base + 2 + 2 * op->n > r->elements)
		return -1;
	for (i = base; i < base + 2 + 2 * op->n; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER)
			return -1;
	*at = base + 2 + 2 * op->n;
	committed = r->element[base + 1]->integer == 1;
	res->degraded = false;
	res->count = op->n;
	for (i = 0; i < op->n; i++) {
		bool script_allowed = r->element[base + 2 + 2 * i]->integer == 1;
		int64_t tat = r->element[base + 3 + 2 * i]->integer;
		if (pd_gcra(&tat, &op->reqs[i], op->now_us, committed, &res->res[i]) < 0)
			return -1; /* outside what both compute exactly: never trust it */
		if (res->res[i].allowed != script_allowed)
			return -1; /* the script and pd_gcra disagree: a bug, never trust it */
		if (!res->res[i].allowed)
			all = false;
	}
	if (all != (r->element[base]->integer == 1) || (committed && (!all || !op->commit)))
		return -1;
	res->allowed = all;
	return 0;
}

/* redis_parse_lease - one lease batch's part of the script's reply (as redis_parse_apply):
   {1, 1, granted, base, tat per key}; a grant outside what was asked is never trusted */
static int redis_parse_lease(struct redis_op *op, const redisReply *r, size_t *at,
                             struct pd_lease_res *res, char *err, size_t errsize)
{
	size_t i, base = *at;
	int ret = redis_parse_refused(r, at, err, errsize);
	if (ret != 0)
		return ret;
	if (base + 2 + 3 * op->n > r->elements || r->element[base]->integer != 1)
		return -1;
	for (i = base + 1; i < base + 2 + 3 * op->n; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER)
			return -1;
	*at = base + 2 + 3 * op->n;
	for (i = 0; i < op->n; i++) {
		const struct pd_lease_req *q = &op->lreqs[i];
		res[i].granted = r->element[base + 2 + 3 * i]->integer;
		res[i].base_us = r->element[base + 3 + 3 * i]->integer;
		res[i].tat_us = r->element[base + 4 + 3 * i]->integer;
		if (res[i].granted < 0 || res[i].granted > q->want_max ||
		    (res[i].granted > 0 && res[i].granted < q->want_min) ||
		    res[i].base_us < op->now_us || res[i].tat_us < res[i].base_us)
			return -1;
	}
	return 0;
}

/* redis_group_fallback - answer the group's unanswered batches from memory and let go */
static void redis_group_fallback(struct redis_group *g, size_t from)
{
	size_t i;
	for (i = from; i < g->n; i++) {
		redis_op_fallback(g->ops[i]);
		redis_op_maybe_free(g->ops[i]);
	}
	free(g);
}

/* redis_on_group_reply - hiredis: the script's answer to a group (NULL when the link went) */
static void redis_on_group_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_group *g = privdata;
	struct redis_store *s = g->conn->store;
	redisReply *r = reply;
	size_t i, at = 0;
	char buf[200];
	(void)ac;
	for (i = 0; i < g->n; i++)
		g->ops[i]->in_hiredis = false;
	if (r == NULL) {
		redis_degraded(s, "connection_lost", "connection to %s:%d lost", s->host, s->port);
		redis_group_fallback(g, 0);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR && !g->sent_eval && strncmp(r->str, "NOSCRIPT", 8) == 0) {
		/* Redis restarted or flushed its scripts: EVAL caches it again */
		g->sent_eval = true;
		redis_send_group(g);
		if (g->ops[0]->in_hiredis)
			return;
		redis_group_fallback(g, 0);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		redis_degraded(s, "script_error", "script error from %s:%d: %s", s->host, s->port,
		               redis_reply_error(buf, sizeof(buf), r));
		redis_group_fallback(g, 0);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		redis_degraded(s, "bad_reply", "unexpected script reply from %s:%d", s->host,
		               s->port);
		redis_group_fallback(g, 0);
		return;
	}
	for (i = 0; i < g->n; i++) {
		struct redis_op *op = g->ops[i];
		struct pd_batch_res res;
		struct pd_lease_res lres[PD_BATCH_MAX];
		int rc = op->kind == OP_LEASE
		             ? redis_parse_lease(op, r, &at, lres, buf, sizeof(buf))
		             : redis_parse_apply(op, r, &at, &res, buf, sizeof(buf));
		if (rc == -1) {
			redis_degraded(s, "bad_reply", "unexpected script reply from %s:%d",
			               s->host, s->port);
			redis_group_fallback(g, i);
			return;
		}
		if (rc == -2) {
			redis_degraded(s, "script_error", "script error from %s:%d: %s", s->host,
			               s->port, buf);
			redis_op_fallback(op);
		} else if (!op->answered) {
			op->answered = true;
			evtimer_del(&op->timer);
			redis_recovered(s, "answering again from");
			if (op->kind == OP_LEASE)
				op->lcb(lres, op->n, true, op->ctx);
			else
				op->cb(&res, op->ctx);
		}
		redis_op_maybe_free(op);
	}
	if (at != r->elements)
		redis_degraded(s, "bad_reply", "unexpected script reply from %s:%d", s->host,
		               s->port);
	free(g);
}

/* redis_send_group - the group's batches as one EVALSHA (or EVAL after NOSCRIPT), written
   straight in the wire format (no argv, no per-number snprintf); sets each op's in_hiredis
   when hiredis took it */
static void redis_send_group(struct redis_group *g)
{
	struct redis_store *s = g->conn->store;
	mw_str *b = &s->cmd;
	const char *body = g->sent_eval ? pd_redis_script : s->sha;
	size_t plen = strlen(s->prefix), nkeys = 0, nargs = 0, i, j;
	if (g->conn->ac == NULL)
		return;
	for (i = 0; i < g->n; i++) {
		nkeys += g->ops[i]->n;
		nargs += 3 + (g->ops[i]->kind == OP_LEASE ? 6 : 3) * g->ops[i]->n;
	}
	mw_str_reset(b);
	/* EVALSHA sha numkeys, the keys; per batch: now, mode, n and 3 (lease: 6) numbers per
	   key */
	resp_len(b, '*', 3 + nkeys + nargs);
	if (g->sent_eval)
		resp_arg(b, "EVAL", 4, "", 0);
	else
		resp_arg(b, "EVALSHA", 7, "", 0);
	resp_arg(b, body, strlen(body), "", 0);
	resp_num(b, (int64_t)nkeys);
	for (i = 0; i < g->n; i++)
		for (j = 0; j < g->ops[i]->n; j++)
			resp_arg(b, s->prefix, plen, g->ops[i]->reqs[j].key,
			         strlen(g->ops[i]->reqs[j].key));
	for (i = 0; i < g->n; i++) {
		const struct redis_op *op = g->ops[i];
		resp_num(b, op->now_us);
		if (op->kind == OP_LEASE) {
			resp_arg(b, "L", 1, "", 0);
			resp_num(b, (int64_t)op->n);
			for (j = 0; j < op->n; j++) {
				const struct pd_lease_req *q = &op->lreqs[j];
				resp_num(b, q->lim.window_us);
				resp_num(b, q->lim.limit);
				resp_num(b, q->want_min);
				resp_num(b, q->want_max);
				resp_num(b, q->ret);
				resp_num(b, q->ret_end_us);
			}
			continue;
		}
		resp_arg(b, op->commit ? "1" : "0", 1, "", 0);
		resp_num(b, (int64_t)op->n);
		for (j = 0; j < op->n; j++) {
			resp_num(b, op->reqs[j].window_us);
			resp_num(b, op->reqs[j].limit);
			resp_num(b, op->reqs[j].cost);
		}
	}
	if (redisAsyncFormattedCommand(g->conn->ac, redis_on_group_reply, g, b->buf, b->len) !=
	    REDIS_OK)
		return;
	for (i = 0; i < g->n; i++)
		g->ops[i]->in_hiredis = true;
}

/* redis_queue_pop - the next queued op of conn, or NULL */
static struct redis_op *redis_queue_pop(struct redis_conn *conn)
{
	struct redis_op *op = conn->queue_head;
	if (op == NULL)
		return NULL;
	conn->queue_head = op->queue_next;
	if (conn->queue_head == NULL)
		conn->queue_tail = NULL;
	op->queue_next = NULL;
	op->in_queue = false;
	return op;
}

/* redis_queue_fallback - answer every queued op of conn from memory (its link is gone) */
static void redis_queue_fallback(struct redis_conn *conn)
{
	struct redis_op *op;
	while ((op = redis_queue_pop(conn)) != NULL) {
		redis_op_fallback(op);
		redis_op_maybe_free(op);
	}
}

/* redis_on_send - the send event: the batches queued on a connection go out as groups */
static void redis_on_send(evutil_socket_t fd, short what, void *arg)
{
	struct redis_conn *conn = arg;
	struct redis_store *s = conn->store;
	(void)fd;
	(void)what;
	conn->send_queued = false;
	while (conn->queue_head != NULL) {
		struct redis_group *g;
		struct redis_op *op;
		if (conn->ac == NULL) {
			redis_degraded(s, "connection_lost", "connection to %s:%d lost", s->host,
			               s->port);
			redis_queue_fallback(conn);
			return;
		}
		g = mw_malloc(sizeof(*g));
		g->conn = conn;
		g->sent_eval = false;
		g->n = 0;
		while (g->n < REDIS_GROUP_MAX && (op = redis_queue_pop(conn)) != NULL) {
			if (op->answered) { /* timed out while queued */
				redis_op_maybe_free(op);
				continue;
			}
			g->ops[g->n++] = op;
		}
		if (g->n == 0) {
			free(g);
			continue;
		}
		redis_send_group(g);
		if (!g->ops[0]->in_hiredis) {
			redis_degraded(s, "send_failed", "cannot send to %s:%d", s->host, s->port);
			redis_group_fallback(g, 0);
		}
	}
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
	redis_op_enqueue(s, op);
}

/* redis_op_enqueue - queue an apply or lease op for this iteration's call, or answer it from
   memory when no connection is up */
static void redis_op_enqueue(struct redis_store *s, struct redis_op *op)
{
	size_t i;
	op->conn = NULL;
	for (i = 0; i < s->pool_size && op->conn == NULL; i++)
		if (s->conns[i].queue_head != NULL && s->conns[i].state == CONN_UP)
			op->conn = &s->conns[i]; /* join the call being gathered */
	if (op->conn == NULL)
		op->conn = redis_pick_conn(s);
	if (op->conn != NULL) {
		/* sent later in this loop iteration, with the batches of the other requests that
		   arrived together */
		struct redis_conn *conn = op->conn;
		op->in_queue = true;
		if (conn->queue_tail != NULL)
			conn->queue_tail->queue_next = op;
		else
			conn->queue_head = op;
		conn->queue_tail = op;
		if (!conn->send_queued) {
			event_active(&conn->send_ev, EV_TIMEOUT, 1);
			conn->send_queued = true;
		}
		redis_op_arm(op);
		return;
	}
	redis_degraded(s, "no_connection", "no connection to %s:%d", s->host, s->port);
	redis_op_fallback(op);
	redis_op_maybe_free(op);
}

/* pd_counters_redis_lease - one lease batch through the script (pd-counters.h) */
void pd_counters_redis_lease(struct pd_counters *c, const struct pd_lease_req *reqs, size_t n,
                             int64_t now_us, pd_lease_cb *cb, void *ctx)
{
	struct redis_store *s = redis_store_of(c);
	struct redis_op *op;
	size_t i;
	if (n == 0 || n > PD_BATCH_MAX) {
		cb(NULL, n, false, ctx);
		return;
	}
	op = redis_op_new(s, OP_LEASE, now_us, NULL, ctx);
	op->lcb = cb;
	op->n = n;
	op->reqs = mw_calloc(n, sizeof(*op->reqs));
	op->lreqs = mw_calloc(n, sizeof(*op->lreqs));
	memcpy(op->lreqs, reqs, n * sizeof(*reqs));
	for (i = 0; i < n; i++)
		op->reqs[i] = reqs[i].lim;
	redis_op_enqueue(s, op);
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
		redis_degraded(s, "connection_lost", "connection to %s:%d lost", s->host, s->port);
	} else if (r->type == REDIS_REPLY_ERROR) {
		redis_degraded(s, "reset_failed", "reset on %s:%d: %s", s->host, s->port,
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
		redis_degraded(s, "bad_reply", "unexpected reply to SCAN/DEL from %s:%d", s->host,
		               s->port);
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
		redis_degraded(s, "no_connection", "no connection to %s:%d", s->host, s->port);
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
		redis_queue_fallback(conn);
		event_del(&conn->send_ev);
	}
	s->fallback->ops->free(s->fallback);
	mw_memzero(s->password, sizeof(s->password));
	mw_str_free(&s->cmd);
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
	mw_str_init(&s->cmd, 0);
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
		event_assign(&conn->send_ev, base, -1, 0, redis_on_send, conn);
		redis_conn_connect(conn);
	}
	mw_degraded_watch(MW_DEGRADED_POLICYD_COUNTERS); /* the gauge shows 0 until it fails */
	return &s->c;
fail:
	mw_memzero(s->password, sizeof(s->password));
	mw_str_free(&s->cmd);
	free(s);
	return NULL;
}
