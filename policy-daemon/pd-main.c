/* pd-main.c - mailwarden-policyd: the daemon (libevent loop, sockets, control socket, reload).
 *
 * One process, one libevent loop, any number of persistent connections. Each connection
 * owns a bounded protocol parser (pd-proto.c); a connection that breaks a protocol rule, stays
 * idle past idle_timeout, takes longer than request_timeout to finish a request, or has not
 * completed its first request within first_request_timeout is closed and logged; the others
 * are not affected. Slots are shared so that one local client cannot stop mail: a peer (a unix
 * socket peer's uid, an inet peer's address) holds at most max_connections_per_peer, and a
 * newcomer that finds its peer's share or all max_connections taken replaces the longest idle
 * connection (one that never sent a byte first, then one idle between requests, then one
 * still sending its first request); only when every candidate is busy is it closed at once. A
 * request is decided by pd-policy.c and, when limits apply, by one atomic batch on the counter
 * store (memory, or Redis through pd-counters-redis.c, by default answered from leased slices
 * of each budget by pd-counters-lease.c); the answer goes back on the same
 * connection, which stays open for the next request. The hot path is kept short: one read() per
 * request into a per-connection buffer, the request parsed and indexed once, the answer sent with
 * one send() (the write event only when the socket does not take it), no allocation and no event
 * change per request.
 *
 * SIGHUP re-reads the configuration and the store's rate_policies: new limits apply to the
 * next request of every connection, no connection is dropped; a configuration that does not
 * load is logged and the old one kept. socket, control_socket, counters and user only change
 * on restart. SIGTERM/SIGINT stop the loop. Options, --help, the pid file, detaching and the
 * signals (a signalfd in the loop) are the daemon skeleton's (lib/mw-service.c).
 *
 * Sockets, the pid file and privileges come from lib/mw-daemon.c: the policy socket is a unix
 * socket 0660 group postfix in a private directory; inet only with allow_inet and inet_peers,
 * and a peer outside inet_peers is disconnected in accept_cb.
 *
 * The control socket (unix, mode 0600, peer uid 0 or the daemon's own) speaks the typed
 * records of lib/mw-pdctl.c (the one encoder and decoder, shared with the API and
 * mailwardenctl): "status USER|IP" (usage of each limit, reset times in whole seconds) and
 * "reset USER|IP" (counters cleared; for an IP, of every network its client_address limits
 * group it by, inbound ones too); every reply ends with an ok or an error record.
 *
 * The store is read every store_refresh; when it cannot be read the last good rate_policies
 * (and always the config limits) stay in force: the component policyd_store is degraded
 * (lib/mw-degraded.c: one event=degraded line when the first read fails, one event=recovered
 * when a read works again; the failures in between are debug lines). "health" on the control
 * socket answers with the degraded components (mailwardenctl doctor asks it).
 *
 * Public: main.
 * Diagnostics: start-up problems are fatal (exit 1); at run time everything is logged with
 * the connection's peer, never ending the process.
 */
#define _GNU_SOURCE /* struct ucred, SO_PEERCRED */
#include "mw-build.h"
#include "mw-config.h"
#include "mw-daemon.h"
#include "mw-log.h"
#include "mw-metrics.h"
#include "mw-pdctl.h"
#include "mw-degraded.h"
#include "mw-service.h"
#include "mw-store.h"
#include "pd-counters.h"
#include "pd-policy.h"
#include "pd-proto.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define PD_OUT_MAX       (64 * 1024) /* unread answers before we stop reading a client */
#define PD_IN_MAX        (16 * 1024) /* bytes read ahead of the parser (pipelined requests) */
#define PD_WRITE_TIMEOUT 30          /* seconds a client may leave its answers unread */
#define PD_PROG          "mailwarden-policyd"

struct pd_runtime {
	int refcount;
	mw_config *cfg;
	struct pd_policy *policy;
};

struct pd_conn;

#define PD_PEER_BUCKETS 1024

/* A peer (a unix socket peer's uid, an inet peer's address) and the policy connections it
   holds: max_connections_per_peer and the eviction order count them. */
struct pd_peer {
	char key[64];
	unsigned conns;
	struct pd_peer *next;
};

struct pd_daemon {
	struct event_base *base;
	const struct mw_service *svc; /* the command line (config path) */
	struct pd_runtime *rt;
	struct pd_limit *store_limits;
	size_t store_count;
	mw_store *store;
	struct pd_counters *counters;
	struct evconnlistener *listener, *ctl_listener;
	struct pd_conn *conns;
	unsigned nconns;
	struct pd_peer *peers[PD_PEER_BUCKETS];
	struct event *refresh_timer;
	struct event *metrics_timer; /* [policyd] metrics_file every metrics_interval */
	bool metrics_warned;
	uint64_t next_id;
	int64_t warn_second; /* the slot warnings' rate limit: the current second ... */
	unsigned warn_count; /* ... the warnings logged in it, and those left out */
	unsigned warn_dropped;
};

struct pd_pending;

/* A policy client does its own socket I/O on two events (read with the idle timeout, write
   only while answers wait): the answer of a request usually goes out with one send(), and a
   request costs one read() - no FIONREAD ioctl, no buffer chains, no event changes. A control
   client (a few lines a day) uses a bufferevent. */
struct pd_conn {
	struct pd_daemon *d;
	struct bufferevent *bev; /* control clients */
	evutil_socket_t fd;      /* policy clients */
	struct event *rev, *wev;
	struct evbuffer *out; /* answers the socket did not take at once */
	char *in;             /* PD_IN_MAX bytes read, in[in_off..in_len) not yet parsed */
	size_t in_off, in_len;
	struct timeval idle;
	bool reading; /* rev is added */
	bool control;
	bool in_loop, closing;
	struct pd_proto proto;
	struct event *req_timer;
	unsigned request_timeout;
	struct pd_msg_state msg;
	struct pd_request req;      /* the complete request, built once when it ends */
	struct pd_pending *pending; /* the request being decided */
	struct pd_pending *spare;   /* a decided request's record, reused for the next one */
	char peer[96];
	struct pd_peer *owner;     /* who max_connections_per_peer counts (policy clients) */
	uint64_t requests;         /* requests completed on this connection */
	int64_t last_active_us;    /* accepted or last read (monotonic): the eviction order */
	int64_t first_deadline_us; /* the first request must be complete by then (monotonic) */
	bool request_started;      /* req_timer runs for a started request (request_timeout) */
	uint64_t id;
	struct pd_conn *prev, *next;
};

struct pd_pending {
	struct pd_conn *conn; /* NULL once the connection is gone */
	struct pd_runtime *rt;
	struct pd_eval ev;
	char label[PD_VALUE_MAX + 64]; /* control: what was asked */
	size_t reset_next;             /* control reset of an IP: next network in ev.value_of */
	int64_t cleared;               /* control reset: keys cleared so far */
};

static void conn_process(struct pd_conn *c);
static void ctl_process(struct pd_conn *c);

/* now_us - wall-clock microseconds (shared Redis counters need hosts to agree) */
static int64_t now_us(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* rt_ref - take a reference on a runtime */
static struct pd_runtime *rt_ref(struct pd_runtime *rt)
{
	rt->refcount++;
	return rt;
}

/* rt_unref - drop a reference */
static void rt_unref(struct pd_runtime *rt)
{
	if (rt == NULL || --rt->refcount > 0)
		return;
	mw_config_unref(&rt->cfg);
	pd_policy_free(rt->policy);
	free(rt);
}

/* rt_new - a runtime from a config and the store limits; NULL with error_r */
static struct pd_runtime *rt_new(mw_config *cfg, const struct pd_daemon *d, mw_error *error_r)
{
	struct pd_policy *p = pd_policy_new(cfg, d->store_limits, d->store_count, error_r);
	struct pd_runtime *rt;
	if (p == NULL)
		return NULL;
	rt = mw_calloc(1, sizeof(*rt));
	rt->refcount = 1;
	rt->cfg = mw_config_ref(cfg);
	rt->policy = p;
	return rt;
}

/* rt_swap - make rt current */
static void rt_swap(struct pd_daemon *d, struct pd_runtime *rt)
{
	rt_unref(d->rt);
	d->rt = rt;
}

/* safe - untrusted text for the log */
static const char *safe(char *buf, size_t size, const char *s)
{
	return mw_log_value(buf, size, s, strlen(s));
}

/* peer_hash - bucket of a peer key */
static size_t peer_hash(const char *key)
{
	uint32_t h = 2166136261u;
	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % PD_PEER_BUCKETS;
}

/* peer_find - the peer of key, or NULL */
static struct pd_peer *peer_find(struct pd_daemon *d, const char *key)
{
	struct pd_peer *p;
	for (p = d->peers[peer_hash(key)]; p != NULL; p = p->next)
		if (strcmp(p->key, key) == 0)
			return p;
	return NULL;
}

/* peer_ref - the peer of key with one more connection */
static struct pd_peer *peer_ref(struct pd_daemon *d, const char *key)
{
	struct pd_peer *p = peer_find(d, key);
	if (p == NULL) {
		size_t b = peer_hash(key);
		p = mw_calloc(1, sizeof(*p));
		(void)mw_strlcpy(p->key, key, sizeof(p->key));
		p->next = d->peers[b];
		d->peers[b] = p;
	}
	p->conns++;
	return p;
}

/* peer_unref - one connection of p less; forgotten at none */
static void peer_unref(struct pd_daemon *d, struct pd_peer *p)
{
	struct pd_peer **pp;
	if (p == NULL || --p->conns > 0)
		return;
	for (pp = &d->peers[peer_hash(p->key)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p);
}

/* conn_free - close a connection (its pending operation, if any, is orphaned) */
static void conn_free(struct pd_conn *c)
{
	struct pd_daemon *d = c->d;
	if (c->pending != NULL)
		c->pending->conn = NULL;
	free(c->spare);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (!c->control)
		d->nconns--;
	peer_unref(d, c->owner);
	if (c->req_timer != NULL)
		event_free(c->req_timer);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->out != NULL)
		evbuffer_free(c->out);
	if (!c->control)
		evutil_closesocket(c->fd);
	free(c->in);
	pd_proto_free(&c->proto);
	free(c);
}

/* conn_close - close now, or at the end of the processing loop when inside it */
static void conn_close(struct pd_conn *c)
{
	if (c->in_loop)
		c->closing = true;
	else
		conn_free(c);
}

/* conn_drop - close a misbehaving connection and log why */
static void conn_drop(struct pd_conn *c, const char *why)
{
	mw_warn("policyd: closing connection #%" PRIu64 " from %s: %s", c->id, c->peer, why);
	conn_close(c);
}

/* slot_warn - a warning about connection slots, at most 5 a second (a hostile client can
   cause one per connection); the number left out is told with the next one logged */
static void MW_PRINTF(2, 3) slot_warn(struct pd_daemon *d, const char *fmt, ...)
{
	int64_t second = mw_mono_us() / 1000000;
	char msg[512];
	va_list ap;
	if (second != d->warn_second) {
		d->warn_second = second;
		d->warn_count = 0;
	}
	if (d->warn_count >= 5) {
		d->warn_dropped++;
		return;
	}
	d->warn_count++;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->warn_dropped > 0)
		mw_warn("%s (and %u similar messages not logged)", msg, d->warn_dropped);
	else
		mw_warn("%s", msg);
	d->warn_dropped = 0;
}

/* req_timeout_cb - the first request, or a started one, did not end in time */
static void req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pd_conn *c = arg;
	(void)fd;
	(void)what;
	if (c->requests == 0 && mw_mono_us() >= c->first_deadline_us) {
		slot_warn(c->d,
		          "policyd: closing connection #%" PRIu64
		          " from %s: no request within first_request_timeout (%lds)",
		          c->id, c->peer,
		          (long)mw_config_int(c->d->rt->cfg, MWK_PD_FIRST_REQUEST_TIMEOUT));
		conn_close(c);
		return;
	}
	mw_warn("policyd: closing connection #%" PRIu64
	        " from %s: request not completed within %us",
	        c->id, c->peer, c->request_timeout);
	conn_close(c);
}

/* pending_new - the connection's record for a request being decided (reused, not zeroed:
   pd_policy_eval and pd_policy_status set what they fill) */
static struct pd_pending *pending_new(struct pd_conn *c)
{
	struct pd_pending *pp = c->spare != NULL ? c->spare : mw_malloc(sizeof(*pp));
	c->spare = NULL;
	pp->conn = c;
	pp->rt = rt_ref(c->d->rt);
	pp->label[0] = '\0';
	c->pending = pp;
	return pp;
}

/* conn_answer - "action=ACTION" and a blank line: straight to the socket when nothing is
   queued before it (no write event per request), else (or for what does not fit at once)
   through the bufferevent, which also reports a broken connection */
static void conn_answer(struct pd_conn *c, const char *action)
{
	struct evbuffer *out = c->out;
	struct timeval wr = {PD_WRITE_TIMEOUT, 0};
	char buf[600];
	size_t alen = strlen(action), len = 7 + alen + 2;
	ssize_t n = 0;
	if (len > sizeof(buf)) {
		evbuffer_add(out, "action=", 7);
		evbuffer_add(out, action, alen);
		evbuffer_add(out, "\n\n", 2);
		event_add(c->wev, &wr);
		return;
	}
	memcpy(buf, "action=", 7);
	memcpy(buf + 7, action, alen);
	memcpy(buf + 7 + alen, "\n\n", 2);
	if (evbuffer_get_length(out) == 0) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			n = 0; /* EAGAIN: queue it; an error: the write event reports it */
		if ((size_t)n == len)
			return;
	}
	evbuffer_add(out, buf + n, len - (size_t)n);
	event_add(c->wev, &wr);
}

/* conn_reading - start or stop watching a policy client for input */
static void conn_reading(struct pd_conn *c, bool on)
{
	if (on && !c->reading)
		event_add(c->rev, &c->idle);
	else if (!on && c->reading)
		event_del(c->rev);
	c->reading = on;
}

/* verdict_label - the first word of an answer as a metrics label (a bounded set) */
static const char *verdict_label(const char *action)
{
	static const char *const words[] = {"DUNNO",   "OK",   "DEFER_IF_PERMIT", "DEFER", "REJECT",
	                                    "PREPEND", "HOLD", "DISCARD"};
	size_t i, n;
	if (action[0] == '4' || action[0] == '5')
		return action[0] == '4' ? "tempfail" : "reject";
	for (i = 0; i < MW_N_ELEMENTS(words); i++) {
		n = strlen(words[i]);
		if (strncmp(action, words[i], n) == 0 && (action[n] == '\0' || action[n] == ' '))
			return words[i];
	}
	return "other";
}

/* pending_done - answer a request and go on with the connection's input */
static void pending_done(struct pd_pending *pp, const char *action, bool passed)
{
	struct pd_conn *c = pp->conn;
	if (c != NULL) {
		c->pending = NULL;
		if (!c->control) {
			mw_metrics_inc(MWM_POLICYD_DECISIONS,
			               pp->ev.stage == PD_STAGE_RCPT  ? "rcpt"
			               : pp->ev.stage == PD_STAGE_EOM ? "end_of_message"
			                                              : "other",
			               verdict_label(action));
			if (passed)
				pd_policy_note_rcpt(pp->rt->policy, &c->req, &c->msg);
			if (pp->ev.stage == PD_STAGE_EOM)
				pd_msg_reset(&c->msg);
			conn_answer(c, action);
			pd_proto_reset(&c->proto);
		}
	}
	rt_unref(pp->rt);
	if (c != NULL && c->spare == NULL)
		c->spare = pp;
	else
		free(pp);
	if (c != NULL && !c->in_loop) {
		if (c->control) {
			bufferevent_enable(c->bev, EV_READ);
			ctl_process(c);
		} else {
			conn_process(c);
		}
	}
}

/* log_refusal - one line per refused request */
static void log_refusal(struct pd_conn *c, const char *action)
{
	const struct pd_request *req = &c->req;
	char state[40], client[64], user[128], sender[128], rcpt[128], inst[64];
	mw_info("policyd: refused state=%s client=%s sasl_username=%s sender=%s recipient=%s "
	        "instance=%s: %s",
	        safe(state, sizeof(state), pd_request_known(req, PD_A_PROTOCOL_STATE)),
	        safe(client, sizeof(client), pd_request_known(req, PD_A_CLIENT_ADDRESS)),
	        safe(user, sizeof(user), pd_request_known(req, PD_A_SASL_USERNAME)),
	        safe(sender, sizeof(sender), pd_request_known(req, PD_A_SENDER)),
	        safe(rcpt, sizeof(rcpt), pd_request_known(req, PD_A_RECIPIENT)),
	        safe(inst, sizeof(inst), pd_request_known(req, PD_A_INSTANCE)), action);
}

/* counters_cb - the counter store's answer to a policy request */
static void counters_cb(const struct pd_batch_res *res, void *ctx)
{
	struct pd_pending *pp = ctx;
	char action[512];
	if (pp->conn == NULL) {
		pending_done(pp, "", false);
		return;
	}
	if (res->allowed) {
		pending_done(pp, "DUNNO", true);
		return;
	}
	pd_policy_action(&pp->ev, res, action, sizeof(action));
	log_refusal(pp->conn, action);
	pending_done(pp, action, false);
}

/* error_action - the on_error answer */
static const char *error_action(const struct pd_runtime *rt, enum pd_stage stage)
{
	if (strcmp(mw_config_str(rt->cfg, MWK_PD_ON_ERROR), "dunno") == 0)
		return "DUNNO";
	return stage == PD_STAGE_EOM
	           ? "451 4.3.0 policy service error, try again later"
	           : "DEFER_IF_PERMIT 4.3.0 policy service error, try again later";
}

/* handle_request - decide one complete policy request */
static void handle_request(struct pd_conn *c)
{
	struct pd_daemon *d = c->d;
	struct pd_pending *pp = pending_new(c);
	char action[512];
	switch (pd_policy_eval(pp->rt->policy, &c->req, &c->msg, &pp->ev)) {
	case PD_DUNNO:
		pending_done(pp, "DUNNO", true);
		return;
	case PD_BLOCK:
		log_refusal(c, "blocked client");
		pending_done(pp, "550 5.7.1 client address blocked by local policy", false);
		return;
	case PD_CAP:
		pd_policy_action(&pp->ev, NULL, action, sizeof(action));
		log_refusal(c, action);
		pending_done(pp, action, false);
		return;
	case PD_ERROR:
		mw_warn("policyd: connection #%" PRIu64 " from %s: %s", c->id, c->peer,
		        pp->ev.error);
		pending_done(pp, error_action(pp->rt, pp->ev.stage), false);
		return;
	case PD_COUNTERS:
		d->counters->ops->apply(d->counters, pp->ev.reqs, pp->ev.n, pp->ev.commit, now_us(),
		                        counters_cb, pp);
		return;
	}
}

/* conn_process - feed buffered input to the parser and answer complete requests; then watch
   for input again unless a request is being decided or the client does not read its answers */
static void conn_process(struct pd_conn *c)
{
	mw_error err;
	bool full = false;
	c->in_loop = true;
	while (c->pending == NULL && !c->closing) {
		size_t used = 0;
		int r;
		if (evbuffer_get_length(c->out) > PD_OUT_MAX) {
			full = true; /* the write event resumes */
			break;
		}
		if (c->in_off == c->in_len)
			break;
		r = pd_proto_feed(&c->proto, c->in + c->in_off, c->in_len - c->in_off, &used, &err);
		c->in_off += used;
		if (r < 0) {
			conn_drop(c, err.msg);
			break;
		}
		if (r == 1) {
			evtimer_del(c->req_timer);
			c->request_started = false;
			c->requests++;
			pd_proto_request(&c->proto, &c->req);
			handle_request(c);
		}
	}
	if (c->in_off == c->in_len) {
		c->in_off = 0;
		c->in_len = 0;
	}
	if (!c->closing) {
		/* keep what was read ahead (pipelined, or while a request is decided) */
		if (c->in_off > 0) {
			memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		conn_reading(c, !full && c->in_len < PD_IN_MAX);
	}
	if (!c->closing && c->pending == NULL && pd_proto_pending(&c->proto) &&
	    !c->request_started) {
		/* request_timeout from the first byte, never past the first request's deadline */
		int64_t us = (int64_t)c->request_timeout * 1000000;
		struct timeval tv;
		if (c->requests == 0 && c->first_deadline_us - mw_mono_us() < us)
			us = c->first_deadline_us - mw_mono_us() > 0
			         ? c->first_deadline_us - mw_mono_us()
			         : 0;
		tv.tv_sec = (time_t)(us / 1000000);
		tv.tv_usec = (suseconds_t)(us % 1000000);
		evtimer_add(c->req_timer, &tv);
		c->request_started = true;
	}
	c->in_loop = false;
	if (c->closing)
		conn_free(c);
}

/* conn_timeout - a policy client's idle or write timeout */
static void conn_timeout(struct pd_conn *c)
{
	if (pd_proto_pending(&c->proto)) {
		conn_drop(c, "timeout in the middle of a request");
	} else {
		mw_debug("policyd: connection #%" PRIu64 " idle, closed", c->id);
		conn_close(c);
	}
}

/* conn_read_cb - input, EOF, an error or the idle timeout on a policy client */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pd_conn *c = arg;
	ssize_t n;
	if (what & EV_TIMEOUT) {
		conn_timeout(c);
		return;
	}
	if (c->in_len >= PD_IN_MAX) { /* never with reading on; a read of 0 bytes would be EOF */
		conn_reading(c, false);
		return;
	}
	n = read(fd, c->in + c->in_len, PD_IN_MAX - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		if (n < 0)
			mw_info("policyd: connection #%" PRIu64 " from %s: %s", c->id, c->peer,
			        strerror(errno));
		else if (pd_proto_pending(&c->proto) || c->in_len > c->in_off)
			mw_info("policyd: connection #%" PRIu64
			        " from %s closed in the middle of a request",
			        c->id, c->peer);
		conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	c->last_active_us = mw_mono_us();
	if (c->pending != NULL) {
		if (c->in_len >= PD_IN_MAX)
			conn_reading(c, false); /* conn_process resumes */
		return;
	}
	conn_process(c);
}

/* conn_write_cb - the socket takes more of the queued answers (or the write timeout) */
static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pd_conn *c = arg;
	if (what & EV_TIMEOUT) {
		conn_timeout(c);
		return;
	}
	if (evbuffer_write(c->out, fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR) {
		mw_info("policyd: connection #%" PRIu64 " from %s: %s", c->id, c->peer,
		        strerror(errno));
		conn_close(c);
		return;
	}
	if (evbuffer_get_length(c->out) > 0)
		return;
	event_del(c->wev);
	if (c->pending == NULL && !c->reading && !c->in_loop)
		conn_process(c); /* resume a client paused for not reading */
}

/* ctl_send - a reply's records to a control client (one encoder: lib/mw-pdctl.c); a reply
   the format cannot carry becomes an error record */
static void ctl_send(struct pd_conn *c, const struct mw_pdctl_reply *reply)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	mw_str s;
	mw_error err;
	mw_str_init(&s, MW_PDCTL_REPLY_MAX);
	if (mw_pdctl_encode_reply(&s, reply, &err) < 0) {
		mw_error_log("policyd: control reply not sent: %s", err.msg);
		mw_str_reset(&s);
		(void)mw_pdctl_encode_error(&s, "internal error: reply not encodable", NULL);
	}
	evbuffer_add(out, s.buf, s.len);
	mw_str_free(&s);
}

/* ctl_refuse - an error reply */
static void ctl_refuse(struct pd_conn *c, const char *reason)
{
	struct mw_pdctl_reply *reply = mw_calloc(1, sizeof(*reply));
	reply->cleared = -1;
	(void)mw_strlcpy(reply->error, reason, sizeof(reply->error));
	ctl_send(c, reply);
	free(reply);
}

/* ctl_health - the degraded components of this daemon, answered at once */
static void ctl_health(struct pd_conn *c)
{
	struct mw_pdctl_reply *reply = mw_calloc(1, sizeof(*reply));
	struct mw_degraded_state st;
	int id;
	reply->ok = true;
	reply->cleared = -1;
	(void)mw_strlcpy(reply->subject, "daemon", sizeof(reply->subject));
	for (id = 0; id < MW_DEGRADED_COUNT_ && reply->ndegraded < MW_PDCTL_DEGRADED_MAX; id++) {
		struct mw_pdctl_degraded *dg;
		mw_degraded_get((enum mw_degraded_id)id, &st);
		if (!st.degraded)
			continue;
		dg = &reply->degraded[reply->ndegraded++];
		(void)mw_strlcpy(dg->component, st.component, sizeof(dg->component));
		(void)mw_strlcpy(dg->reason, st.reason, sizeof(dg->reason));
		dg->since = st.since > 0 ? st.since : 0;
	}
	ctl_send(c, reply);
	free(reply);
}

/* ctl_answer_new - the reply to a request whose batch answered: ok, about pp's subject;
   NULL (and the request done) when its connection went away meanwhile */
static struct mw_pdctl_reply *ctl_answer_new(struct pd_pending *pp)
{
	struct mw_pdctl_reply *reply;
	if (pp->conn == NULL) {
		pending_done(pp, "", false);
		return NULL;
	}
	reply = mw_calloc(1, sizeof(*reply));
	reply->ok = true;
	reply->cleared = -1;
	(void)mw_strlcpy(reply->subject, pp->label, sizeof(reply->subject));
	return reply;
}

/* ctl_status_cb - the usage of each limit, in whole seconds */
static void ctl_status_cb(const struct pd_batch_res *res, void *ctx)
{
	struct pd_pending *pp = ctx;
	struct mw_pdctl_reply *reply = ctl_answer_new(pp);
	size_t i;
	if (reply == NULL)
		return;
	for (i = 0; i < res->count && i < pp->ev.n && i < MW_PDCTL_LIMITS_MAX; i++) {
		const struct pd_limit_res *r = &res->res[i];
		struct mw_pdctl_limit *l = &reply->limits[reply->nlimits++];
		pd_limit_format(pp->ev.limit_of[i], l->limit, sizeof(l->limit));
		(void)mw_strlcpy(l->origin, pp->ev.limit_of[i]->origin, sizeof(l->origin));
		l->used = r->usage;
		l->count = pp->ev.limit_of[i]->count;
		l->reset_after = r->reset_after_us > 0 ? r->reset_after_us / 1000000 +
		                                             (r->reset_after_us % 1000000 != 0)
		                                       : 0;
		l->degraded = res->degraded;
	}
	ctl_send(pp->conn, reply);
	free(reply);
	pending_done(pp, "", false);
}

/* ctl_reset_next - clear the keys of the next network of an IP reset; false when none is left */
static bool ctl_reset_next(struct pd_pending *pp);

/* ctl_reset_cb - report how many keys were cleared (after the last network of an IP) */
static void ctl_reset_cb(const struct pd_batch_res *res, void *ctx)
{
	struct pd_pending *pp = ctx;
	pp->cleared += (int64_t)res->count;
	if (pp->conn != NULL && ctl_reset_next(pp))
		return;
	if (pp->conn != NULL) {
		struct mw_pdctl_reply *reply = mw_calloc(1, sizeof(*reply));
		reply->ok = true;
		reply->cleared = pp->cleared;
		(void)mw_strlcpy(reply->subject, pp->label, sizeof(reply->subject));
		ctl_send(pp->conn, reply);
		free(reply);
		mw_info("policyd: control: reset %s (%" PRId64 " counters)", pp->label,
		        pp->cleared);
	}
	pending_done(pp, "", false);
}

/* ctl_reset_next - one reset per network an IP is counted under (each client_address limit
   may group it its own way: /32, /24, ...) */
static bool ctl_reset_next(struct pd_pending *pp)
{
	char prefix[PD_COUNTER_KEY_MAX];
	while (pp->reset_next < pp->ev.n) {
		const char *v = pp->ev.value_of[pp->reset_next++];
		if (pd_key_prefix(PD_SCOPE_CLIENT_ADDRESS, v, prefix, sizeof(prefix)) < 0)
			continue;
		pp->conn->d->counters->ops->reset(pp->conn->d->counters, prefix, now_us(),
		                                  ctl_reset_cb, pp);
		return true;
	}
	return false;
}

/* ctl_subject - "USER" or "IP" of a control command as scope and value */
static int ctl_subject(const struct pd_policy *p, const char *arg, enum pd_scope *scope_r,
                       char *value, size_t size)
{
	size_t i;
	if (pd_addr_group(arg, p->v4_prefix, p->v6_prefix, value, size, NULL) == 0) {
		*scope_r = PD_SCOPE_CLIENT_ADDRESS;
		return 0;
	}
	if (*arg == '\0' || mw_strlcpy(value, arg, size) < 0 || strlen(arg) > MW_USERNAME_MAX)
		return -1;
	for (i = 0; value[i] != '\0'; i++)
		if ((unsigned char)value[i] <= 0x20 || value[i] == 0x7f || value[i] == ':')
			return -1;
	mw_ascii_lower(value);
	*scope_r = PD_SCOPE_SASL_USERNAME;
	return 0;
}

/* ctl_charge_cb - a form submission's verdict: limit records, then allowed and retry_after */
static void ctl_charge_cb(const struct pd_batch_res *res, void *ctx)
{
	struct pd_pending *pp = ctx;
	struct mw_pdctl_reply *reply = ctl_answer_new(pp);
	int64_t wait_us = 0;
	size_t i;
	if (reply == NULL)
		return;
	reply->verdict = true;
	reply->allowed = res->allowed && res->count == pp->ev.n;
	for (i = 0; i < res->count && i < pp->ev.n && i < MW_PDCTL_LIMITS_MAX; i++) {
		const struct pd_limit_res *r = &res->res[i];
		struct mw_pdctl_limit *l = &reply->limits[reply->nlimits++];
		(void)mw_strlcpy(l->limit, pp->ev.value_of[i], sizeof(l->limit));
		(void)mw_strlcpy(l->origin, "api forms", sizeof(l->origin));
		l->used = r->usage;
		l->count = pp->ev.reqs[i].limit;
		l->reset_after = r->reset_after_us > 0 ? r->reset_after_us / 1000000 +
		                                             (r->reset_after_us % 1000000 != 0)
		                                       : 0;
		l->degraded = res->degraded;
		if (!r->allowed && r->retry_after_us > wait_us)
			wait_us = r->retry_after_us;
	}
	if (!reply->allowed)
		reply->retry_after = wait_us / 1000000 + 1;
	ctl_send(pp->conn, reply);
	free(reply);
	pending_done(pp, "", false);
}

/* ctl_charge_add - one limit of a charge: its key, label and counts; -1 when out of range */
static int ctl_charge_add(struct pd_pending *pp, const char *key, const char *label, int64_t count,
                          int64_t window)
{
	struct pd_limit_req *r = &pp->ev.reqs[pp->ev.n];
	if (count < 1 || count > MW_RATE_COUNT_MAX || window < 1 || window > MW_RATE_WINDOW_MAX ||
	    mw_strlcpy(r->key, key, sizeof(r->key)) < 0)
		return -1;
	r->window_us = window * 1000000;
	r->limit = count;
	r->cost = 1;
	pp->ev.limit_of[pp->ev.n] = NULL;
	(void)mw_strlcpy(pp->ev.value_of[pp->ev.n], label, sizeof(pp->ev.value_of[0]));
	pp->ev.n++;
	return 0;
}

/* ctl_charge - a contact form submission (mailwarden-api): per client network and per form,
   charged together or not at all. Keys "form:NAME:..." and "form_ip:NAME:NET:..." live beside
   the mail limits' keys (which start with a scope name) in the same counter store. */
static void ctl_charge(struct pd_conn *c, const struct mw_pdctl_request *req)
{
	struct pd_daemon *d = c->d;
	const struct pd_policy *p = d->rt->policy;
	char net[PD_VALUE_MAX + 1], key[PD_COUNTER_KEY_MAX], label[PD_VALUE_MAX + 64];
	struct pd_pending *pp;
	size_t i;
	bool bad = req->subject[0] == '\0' || strlen(req->subject) > 64;
	for (i = 0; req->subject[i] != '\0'; i++)
		if ((unsigned char)req->subject[i] <= 0x20 || req->subject[i] == ':')
			bad = true;
	if (bad ||
	    pd_addr_group(req->client, p->v4_prefix, p->v6_prefix, net, sizeof(net), NULL) < 0) {
		ctl_refuse(c, "charge: not a form name and IP address");
		return;
	}
	pp = pending_new(c);
	pp->ev.n = 0;
	(void)snprintf(pp->label, sizeof(pp->label), "form %s client %s", req->subject, net);
	if (req->ip_count > 0) {
		(void)snprintf(key, sizeof(key), "form_ip:%s:%s:%" PRId64 ":%" PRId64, req->subject,
		               net, req->ip_window, req->ip_count);
		(void)snprintf(label, sizeof(label), "form %s per_ip %s %" PRId64 "/%" PRId64 "s",
		               req->subject, net, req->ip_count, req->ip_window);
		if (ctl_charge_add(pp, key, label, req->ip_count, req->ip_window) < 0)
			goto bad;
	}
	if (req->form_count > 0) {
		(void)snprintf(key, sizeof(key), "form:%s:%" PRId64 ":%" PRId64, req->subject,
		               req->form_window, req->form_count);
		(void)snprintf(label, sizeof(label), "form %s per_form %" PRId64 "/%" PRId64 "s",
		               req->subject, req->form_count, req->form_window);
		if (ctl_charge_add(pp, key, label, req->form_count, req->form_window) < 0)
			goto bad;
	}
	d->counters->ops->apply(d->counters, pp->ev.reqs, pp->ev.n, true, now_us(), ctl_charge_cb,
	                        pp);
	return;
bad:
	ctl_refuse(c, "charge: a count or window out of range");
	pending_done(pp, "", false);
}

/* ctl_command - run one decoded control request */
static void ctl_command(struct pd_conn *c, const struct mw_pdctl_request *req)
{
	struct pd_daemon *d = c->d;
	char value[PD_VALUE_MAX + 1], prefix[PD_COUNTER_KEY_MAX];
	enum pd_scope scope;
	struct pd_pending *pp;
	if (req->command == MW_PDCTL_HEALTH) {
		ctl_health(c);
		return;
	}
	if (req->command == MW_PDCTL_CHARGE) {
		ctl_charge(c, req);
		return;
	}
	if (ctl_subject(d->rt->policy, req->subject, &scope, value, sizeof(value)) < 0) {
		ctl_refuse(c, "not a user name or IP address");
		return;
	}
	pp = pending_new(c);
	pp->cleared = 0;
	pp->reset_next = 0;
	pp->ev.n = 0;
	(void)snprintf(pp->label, sizeof(pp->label), "%s %s", pd_scope_name(scope), value);
	if (req->command == MW_PDCTL_STATUS) {
		pd_policy_status(pp->rt->policy, scope,
		                 scope == PD_SCOPE_CLIENT_ADDRESS ? req->subject : value, &pp->ev);
		d->counters->ops->apply(d->counters, pp->ev.reqs, pp->ev.n, false, now_us(),
		                        ctl_status_cb, pp);
		return;
	}
	if (scope == PD_SCOPE_CLIENT_ADDRESS) {
		pd_policy_client_groups(pp->rt->policy, req->subject, &pp->ev);
		if (!ctl_reset_next(pp)) {
			ctl_refuse(c, "not an IP address");
			pending_done(pp, "", false);
		}
		return;
	}
	if (pd_key_prefix(scope, value, prefix, sizeof(prefix)) < 0) {
		ctl_refuse(c, "name too long");
		pending_done(pp, "", false);
		return;
	}
	d->counters->ops->reset(d->counters, prefix, now_us(), ctl_reset_cb, pp);
}

/* ctl_process - one request record at a time (lib/mw-pdctl.c decodes it whole); a record
   longer than MW_PDCTL_REQUEST_MAX closes the connection, a malformed one is refused */
static void ctl_process(struct pd_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	c->in_loop = true;
	while (c->pending == NULL && !c->closing) {
		size_t avail = evbuffer_get_length(in), look, n = 0;
		const char *buf;
		struct mw_pdctl_request req;
		mw_error err;
		int r;
		if (avail == 0)
			break;
		look = avail < MW_PDCTL_REQUEST_MAX ? avail : MW_PDCTL_REQUEST_MAX;
		buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
		r = mw_pdctl_frame(buf, look, MW_PDCTL_REQUEST_MAX, &n);
		if (r < 0) {
			conn_drop(c, "control request too long");
			break;
		}
		if (r == 0)
			break;
		if (mw_pdctl_decode_request(buf, n, &req, &err) < 0) {
			char reason[600];
			(void)snprintf(reason, sizeof(reason), "bad request: %s", err.msg);
			ctl_refuse(c, reason);
		} else {
			ctl_command(c, &req);
		}
		evbuffer_drain(in, n);
	}
	c->in_loop = false;
	if (c->closing)
		conn_free(c);
}

/* read_cb - input arrived */
static void read_cb(struct bufferevent *bev, void *arg)
{
	struct pd_conn *c = arg;
	(void)bev;
	if (c->pending != NULL)
		return;
	ctl_process(c);
}

/* event_cb - EOF, error or timeout on a control connection */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pd_conn *c = arg;
	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		if (pd_proto_pending(&c->proto))
			conn_drop(c, "timeout in the middle of a request");
		else {
			mw_debug("policyd: connection #%" PRIu64 " idle, closed", c->id);
			conn_close(c);
		}
		return;
	}
	if (what & BEV_EVENT_ERROR)
		mw_info("policyd: connection #%" PRIu64 " from %s: %s", c->id, c->peer,
		        strerror(EVUTIL_SOCKET_ERROR()));
	else if (pd_proto_pending(&c->proto))
		mw_info("policyd: connection #%" PRIu64
		        " from %s closed in the middle of a request",
		        c->id, c->peer);
	conn_close(c);
}

/* peer_name - "ADDR:PORT" or "unix uid N" for the log, and the key max_connections_per_peer
   counts: "uid N" (a unix peer whose credentials cannot be read is "uid ?", one shared
   share) or the address */
static void peer_name(evutil_socket_t fd, const struct sockaddr *sa, char *buf, size_t size,
                      char *key, size_t key_size)
{
	char host[64], serv[16];
	if (sa->sa_family != AF_UNIX &&
	    getnameinfo(sa,
	                sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                          : sizeof(struct sockaddr_in),
	                host, sizeof(host), serv, sizeof(serv),
	                NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
		(void)snprintf(buf, size, "%s:%s", host, serv);
		(void)mw_strlcpy(key, host, key_size);
		return;
	}
	if (sa->sa_family == AF_UNIX) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		    len == sizeof(cred)) {
			(void)snprintf(buf, size, "unix uid %ld", (long)cred.uid);
			(void)snprintf(key, key_size, "uid %ld", (long)cred.uid);
			return;
		}
	}
	(void)mw_strlcpy(buf, "unix", size);
	(void)mw_strlcpy(key, "uid ?", key_size);
}

/* conn_new - set up an accepted connection */
static struct pd_conn *conn_new(struct pd_daemon *d, evutil_socket_t fd, bool control)
{
	const mw_config *cfg = d->rt->cfg;
	struct pd_conn *c = mw_calloc(1, sizeof(*c));
	struct pd_proto_limits lim;
	struct timeval idle = {(time_t)mw_config_int(cfg, MWK_PD_IDLE_TIMEOUT), 0};
	struct timeval wr = {PD_WRITE_TIMEOUT, 0};
	c->d = d;
	c->fd = fd;
	c->idle = idle;
	c->control = control;
	c->id = ++d->next_id;
	c->request_timeout = (unsigned)mw_config_int(cfg, MWK_PD_REQUEST_TIMEOUT);
	c->last_active_us = mw_mono_us();
	lim.max_line = (size_t)mw_config_int(cfg, MWK_PD_MAX_LINE);
	lim.max_request = (size_t)mw_config_int(cfg, MWK_PD_MAX_REQUEST);
	lim.max_attrs = (unsigned)mw_config_int(cfg, MWK_PD_MAX_ATTRIBUTES);
	pd_proto_init(&c->proto, &lim);
	c->req_timer = evtimer_new(d->base, req_timeout_cb, c);
	if (control) {
		c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL || c->req_timer == NULL)
			mw_panic("policyd: libevent allocation failed");
		bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
		bufferevent_setwatermark(c->bev, EV_READ, 0, lim.max_request + 4096);
		bufferevent_set_timeouts(c->bev, &idle, &wr);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	} else {
		c->in = mw_malloc(PD_IN_MAX);
		c->out = evbuffer_new();
		c->rev = event_new(d->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
		c->wev = event_new(d->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
		if (c->out == NULL || c->rev == NULL || c->wev == NULL || c->req_timer == NULL)
			mw_panic("policyd: libevent allocation failed");
		conn_reading(c, true);
		/* the first request must be complete within first_request_timeout, silent or
		   not (request_timeout starts only once a request has started) */
		{
			struct timeval first = {
			    (time_t)mw_config_int(cfg, MWK_PD_FIRST_REQUEST_TIMEOUT), 0};
			c->first_deadline_us = c->last_active_us + (int64_t)first.tv_sec * 1000000;
			evtimer_add(c->req_timer, &first);
		}
	}
	c->next = d->conns;
	if (d->conns != NULL)
		d->conns->prev = c;
	d->conns = c;
	if (!control)
		d->nconns++;
	return c;
}

/* conn_evict_class - how readily a policy connection gives up its slot to a newcomer: 0 it
   never sent a byte, 1 it is idle between requests (Postfix reconnects when it needs it),
   2 it is still sending its first request; -1 busy (a request being decided or half sent
   after earlier ones, answers not yet taken): never evicted */
static int conn_evict_class(const struct pd_conn *c)
{
	bool partial = pd_proto_pending(&c->proto) || c->in_len > c->in_off;
	if (c->control || c->closing || c->in_loop || c->pending != NULL ||
	    evbuffer_get_length(c->out) > 0)
		return -1;
	if (c->requests == 0)
		return partial ? 2 : 0;
	return partial ? -1 : 1;
}

/* conn_victim - the connection a newcomer replaces: the lowest class first, then the peer
   holding the most connections (a flood from one peer never pushes out the others), then the
   longest idle; among p's connections only (or all when p is NULL); NULL when all are busy */
static struct pd_conn *conn_victim(struct pd_daemon *d, const struct pd_peer *p)
{
	struct pd_conn *c, *best = NULL;
	int best_class = 3;
	for (c = d->conns; c != NULL; c = c->next) {
		int k;
		if (c->control || c->owner == NULL || (p != NULL && c->owner != p))
			continue;
		k = conn_evict_class(c);
		if (k < 0)
			continue;
		if (best == NULL || k < best_class ||
		    (k == best_class && (c->owner->conns > best->owner->conns ||
		                         (c->owner->conns == best->owner->conns &&
		                          c->last_active_us < best->last_active_us)))) {
			best = c;
			best_class = k;
		}
	}
	return best;
}

/* make_room - free a slot for a connection of peer key: 0 when it may be accepted */
static int make_room(struct pd_daemon *d, const char *key, const char *peer)
{
	const mw_config *cfg = d->rt->cfg;
	unsigned per_peer = (unsigned)mw_config_int(cfg, MWK_PD_MAX_CONNECTIONS_PER_PEER);
	unsigned max = (unsigned)mw_config_int(cfg, MWK_PD_MAX_CONNECTIONS);
	const char *which;
	struct pd_conn *v;
	struct pd_peer *p = peer_find(d, key);
	if (p != NULL && p->conns >= per_peer) {
		which = "max_connections_per_peer";
		v = conn_victim(d, p);
	} else if (d->nconns >= max) {
		which = "max_connections";
		v = conn_victim(d, NULL);
	} else {
		return 0;
	}
	if (v == NULL) {
		slot_warn(d,
		          "policyd: refusing connection from %s: %s reached and every connection "
		          "is busy",
		          peer, which);
		return -1;
	}
	slot_warn(d,
	          "policyd: %s reached: closing %s connection #%" PRIu64 " from %s for one from %s",
	          which, v->requests == 0 ? "silent" : "idle", v->id, v->peer, peer);
	conn_close(v);
	return 0;
}

/* accept_cb - a Postfix (or other) client connected */
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct pd_daemon *d = arg;
	struct pd_conn *c;
	char peer[96], key[64];
	(void)l;
	(void)salen;
	/* an inet socket: only the networks [policyd] inet_peers names (unix: the mode decides) */
	if (!mw_daemon_peer_allowed(fd, mw_config_str(d->rt->cfg, MWK_PD_INET_PEERS), peer,
	                            sizeof(peer))) {
		mw_warn("policyd: refusing connection from %s: not in inet_peers", peer);
		evutil_closesocket(fd);
		return;
	}
	peer_name(fd, sa, peer, sizeof(peer), key, sizeof(key));
	if (make_room(d, key, peer) < 0) {
		evutil_closesocket(fd);
		return;
	}
	c = conn_new(d, fd, false);
	(void)mw_strlcpy(c->peer, peer, sizeof(c->peer));
	c->owner = peer_ref(d, key);
	mw_debug("policyd: connection #%" PRIu64 " from %s", c->id, c->peer);
}

/* ctl_accept_cb - mailwardenctl connected: check who it is */
static void ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
	struct pd_daemon *d = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct pd_conn *c;
	(void)l;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != getuid())) {
		mw_warn("policyd: control connection from uid %ld refused",
		        len == sizeof(cred) ? (long)cred.uid : -1L);
		evutil_closesocket(fd);
		return;
	}
	c = conn_new(d, fd, true);
	(void)snprintf(c->peer, sizeof(c->peer), "control uid %ld", (long)cred.uid);
}

/* open_listeners - the policy socket (lib/mw-daemon.c: unix in a private directory, mode
   and group from the config; inet only with allow_inet and inet_peers) and the control
   socket (0600, owned by the daemon's user so mailwardenctl run as that user may connect) */
static void open_listeners(const mw_config *cfg, int *fd_r, int *cfd_r)
{
	const char *control_path = mw_config_str(cfg, MWK_PD_CONTROL_SOCKET);
	const struct passwd *pw = getpwnam(mw_config_str(cfg, MWK_USER));
	char control_spec[128];
	struct mw_listen l = {
	    .what = "[policyd] socket",
	    .spec = mw_config_str(cfg, MWK_PD_SOCKET),
	    .mode = mw_config_str(cfg, MWK_PD_SOCKET_MODE),
	    .group = mw_config_str(cfg, MWK_PD_SOCKET_GROUP),
	    .gid = getegid(),
	    .uid = (uid_t)-1,
	    .allow_inet = mw_config_bool(cfg, MWK_PD_ALLOW_INET),
	    .inet_peers = mw_config_str(cfg, MWK_PD_INET_PEERS),
	    .allow_key = "[policyd] allow_inet",
	    .peers_key = "[policyd] inet_peers",
	};
	mw_error err;

	if (geteuid() == 0 && pw == NULL)
		mw_fatal("policyd: user %s does not exist (key user)",
		         mw_config_str(cfg, MWK_USER));
	if (pw != NULL)
		l.gid = pw->pw_gid;
	if (mw_daemon_listen(&l, 128, fd_r, &err) < 0)
		mw_fatal("policyd: %s", err.msg);
	*cfd_r = -1;
	if (control_path[0] == '\0')
		return;
	if ((size_t)snprintf(control_spec, sizeof(control_spec), "unix:%s", control_path) >=
	    sizeof(control_spec))
		mw_fatal("policyd: control_socket %s: path too long", control_path);
	l.what = "[policyd] control_socket";
	l.spec = control_spec;
	l.mode = "0600";
	l.group = "";
	l.uid = pw != NULL ? pw->pw_uid : (uid_t)-1;
	if (mw_daemon_listen(&l, 16, cfd_r, &err) < 0)
		mw_fatal("policyd: %s", err.msg);
}

/* store_failed - the store could not be read: degraded (logged once), then debug lines */
static void store_failed(struct pd_daemon *d, const char *reason, const mw_error *err)
{
	char detail[sizeof(err->msg) + 64];
	(void)snprintf(detail, sizeof(detail), "%s; keeping %zu store limits", err->msg,
	               d->store_count);
	if (!mw_degraded_enter(MW_DEGRADED_POLICYD_STORE, reason, detail))
		mw_debug("policyd: store still unreadable: %s", detail);
}

/* load_store_limits - re-read rate_policies; false when the store could not be read */
static bool load_store_limits(struct pd_daemon *d)
{
	const mw_config *cfg = d->rt->cfg;
	struct mw_rate_policy *v = NULL;
	struct pd_limit *limits;
	size_t count = 0, i, n = 0;
	mw_error err;
	if (d->store == NULL) {
		d->store = mw_store_open(
		    mw_config_str(cfg, MWK_STORE),
		    (unsigned)mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT) * 1000, &err);
		if (d->store == NULL) {
			store_failed(d, "connect_failed", &err);
			return false;
		}
	}
	if (mw_store_rate_policy_list(d->store, &v, &count, &err) != MW_STORE_OK) {
		store_failed(d, "read_failed", &err);
		mw_store_close(&d->store);
		return false;
	}
	(void)mw_degraded_leave(MW_DEGRADED_POLICYD_STORE, "rate_policies read again");
	limits = mw_calloc(count + 1, sizeof(*limits));
	for (i = 0; i < count; i++) {
		if (pd_limit_from_store(&v[i], &limits[n], &err) < 0) {
			mw_warn("policyd: %s: ignored", err.msg);
			continue;
		}
		n++;
	}
	free(v);
	free(d->store_limits);
	d->store_limits = limits;
	d->store_count = n;
	return true;
}

/* rebuild - a new runtime from cfg and the current store limits */
static int rebuild(struct pd_daemon *d, mw_config *cfg, mw_error *error_r)
{
	struct pd_runtime *rt = rt_new(cfg, d, error_r);
	if (rt == NULL)
		return -1;
	rt_swap(d, rt);
	return 0;
}

/* refresh_cb - periodic re-read of the store's rate_policies */
static void refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pd_daemon *d = arg;
	mw_error err;
	(void)fd;
	(void)what;
	if (load_store_limits(d) && rebuild(d, d->rt->cfg, &err) < 0)
		mw_warn("policyd: store limits not applied: %s", err.msg);
}

/* metrics_cb - write the counters to [policyd] metrics_file, then wait metrics_interval */
static void metrics_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pd_daemon *d = arg;
	const char *path = mw_config_str(d->rt->cfg, MWK_PD_METRICS_FILE);
	struct timeval tv = {(time_t)mw_config_int(d->rt->cfg, MWK_PD_METRICS_INTERVAL), 0};
	mw_error err = {{0}};
	(void)fd;
	(void)what;
	if (path[0] != '\0' && mw_metrics_write_file(path, &err) < 0 && !d->metrics_warned) {
		mw_warn("policyd: %s", err.msg);
		d->metrics_warned = true; /* once: the directory is the admin's to fix */
	}
	event_add(d->metrics_timer, &tv);
}

/* arm_refresh - (re)start the refresh timer with the configured period */
static void arm_refresh(struct pd_daemon *d)
{
	struct timeval tv = {(time_t)mw_config_int(d->rt->cfg, MWK_PD_STORE_REFRESH), 0};
	event_del(d->refresh_timer);
	event_add(d->refresh_timer, &tv);
}

/* restart_only - warn about keys that a reload cannot change */
static void restart_only(const mw_config *old, const mw_config *cfg)
{
	static const enum mw_config_key_id keys[] = {
	    MWK_PD_SOCKET,
	    MWK_PD_CONTROL_SOCKET,
	    MWK_PD_COUNTERS,
	    MWK_USER,
	    MWK_STORE,
	    MWK_PD_MAX_KEYS,
	    MWK_PD_SOCKET_MODE,
	    MWK_PD_SOCKET_GROUP,
	    MWK_PD_COUNTERS_LEASE_MS,
	    MWK_PD_COUNTERS_LEASE_MAX,
	};
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(keys); i++)
		if ((mw_config_keys[keys[i]].type != MW_CFG_INT &&
		     strcmp(mw_config_str(old, keys[i]), mw_config_str(cfg, keys[i])) != 0) ||
		    (mw_config_keys[keys[i]].type == MW_CFG_INT &&
		     mw_config_int(old, keys[i]) != mw_config_int(cfg, keys[i])))
			mw_warn("policyd: reload: %s changed; it takes effect on restart",
			        mw_config_keys[keys[i]].name);
}

/* reload - SIGHUP: the configuration and the store limits again, keeping every connection */
static void reload(struct pd_daemon *d)
{
	mw_config *cfg;
	mw_error err;
	cfg = mw_service_config(d->svc, &err);
	if (cfg == NULL) {
		mw_error_log("policyd: reload failed, keeping the old configuration: %s", err.msg);
		return;
	}
	restart_only(d->rt->cfg, cfg);
	(void)load_store_limits(d);
	if (rebuild(d, cfg, &err) < 0)
		mw_error_log("policyd: reload failed, keeping the old configuration: %s", err.msg);
	else
		mw_info(
		    "policyd: reloaded %s: %zu limits (%zu from the store), %u connections kept",
		    d->svc->config_path, d->rt->policy->count, d->store_count, d->nconns);
	mw_config_unref(&cfg);
	arm_refresh(d);
}

/* signal_cb - the skeleton's signals (lib/mw-service.c): HUP reload, TERM/INT stop */
static void signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pd_daemon *d = arg;
	enum mw_service_event ev;
	(void)what;
	while ((ev = mw_service_signal_read(fd)) != MW_SERVICE_NONE) {
		if (ev == MW_SERVICE_RELOAD) {
			reload(d);
		} else if (ev == MW_SERVICE_STOP) {
			mw_info("policyd: stopping");
			event_base_loopbreak(d->base);
		}
	}
}

static const char pd_summary[] =
    "Rate limits for Postfix over the policy delegation protocol (check_policy_service at\n"
    "RCPT and END-OF-DATA). Limits come from [policyd] limit lines and the store's\n"
    "rate_policies; counters live in memory or in Redis. SIGHUP also re-reads\n"
    "rate_policies, keeping every connection.\n";

static const char pd_more_help[] =
    "ANSWERS\n"
    "  DUNNO; DEFER_IF_PERMIT 4.7.1 (RCPT) or 450 4.7.1 (END-OF-MESSAGE) for a deferring\n"
    "  limit; 550 5.7.1 for a rejecting limit or a blocked client; on_error decides what a\n"
    "  request that cannot be evaluated gets. See mailwarden-policyd(8).\n"
    "\n"
    "EXIT STATUS\n"
    "  0 stopped by a signal or after -t/-h/-V, 1 start-up error, 2 usage error.\n";

static const char *const pd_sections[] = {"main", "store", "policyd", NULL};

/* open_counters - the counter store named by `counters` */
static struct pd_counters *open_counters(struct pd_daemon *d, const mw_config *cfg)
{
	const char *url = mw_config_str(cfg, MWK_PD_COUNTERS);
	size_t max_keys = (size_t)mw_config_int(cfg, MWK_PD_MAX_KEYS);
	struct pd_counters *c;
	mw_error err;
	if (strcmp(url, "memory") == 0)
		return pd_counters_memory_new(max_keys);
	if (strncmp(url, "redis://", 8) != 0)
		mw_fatal("policyd: counters: expected memory or redis://host:port/db");
	c = pd_counters_redis_new(url, d->base, pd_counters_memory_new(max_keys),
	                          (unsigned)mw_config_int(cfg, MWK_PD_COUNTERS_TIMEOUT_MS), &err);
	if (c == NULL)
		mw_fatal("policyd: counters: %s", err.msg);
	if (mw_config_int(cfg, MWK_PD_COUNTERS_LEASE_MS) > 0) /* slices of each budget */
		c = pd_counters_lease_new(
		    c, d->base, (unsigned)mw_config_int(cfg, MWK_PD_COUNTERS_LEASE_MS),
		    (unsigned)mw_config_int(cfg, MWK_PD_COUNTERS_LEASE_MAX), max_keys);
	return c;
}

/* main - parse options, bind, drop privileges, run the loop */
int main(int argc, char **argv)
{
	static const struct mw_service_info info = {
	    .name = PD_PROG,
	    .summary = pd_summary,
	    .sections = pd_sections,
	    .more_help = pd_more_help,
	};
	struct mw_service svc;
	struct pd_daemon d;
	struct event *sigev;
	bool not_root;
	mw_config *cfg;
	mw_error err;
	int fd, cfd = -1, sigfd;
	memset(&d, 0, sizeof(d));
	mw_service_args(&svc, &info, argc, argv);
	d.svc = &svc;
	cfg = mw_service_config(&svc, &err);
	if (cfg == NULL)
		mw_fatal("%s", err.msg);
	d.rt = rt_new(cfg, &d, &err);
	if (d.rt == NULL)
		mw_fatal("%s", err.msg);
	mw_config_unref(&cfg);
	if (mw_service_reload_check(&svc, mw_config_str(d.rt->cfg, MWK_USER), &err) < 0)
		mw_fatal("policyd: %s", err.msg);
	if (svc.check) {
		printf("%s: configuration OK (%zu limits)\n", svc.config_path, d.rt->policy->count);
		rt_unref(d.rt);
		return 0;
	}
	open_listeners(d.rt->cfg, &fd, &cfd);
	if (mw_service_pidfile_open(&svc, &err) < 0 ||
	    mw_service_detach(&svc, d.rt->cfg, NULL, &err) < 0)
		mw_fatal("policyd: %s", err.msg);
	if (mw_daemon_drop_privileges(mw_config_str(d.rt->cfg, MWK_USER), &not_root, &err) < 0)
		mw_fatal("policyd: %s", err.msg);
	if (not_root)
		mw_info("policyd: not started as root, running as uid %ld", (long)geteuid());

	d.base = event_base_new();
	if (d.base == NULL)
		mw_fatal("policyd: event_base_new failed");
	evutil_make_socket_nonblocking(fd);
	d.listener = evconnlistener_new(d.base, accept_cb, &d, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (d.listener == NULL)
		mw_fatal("policyd: listener setup failed");
	if (cfd >= 0) {
		evutil_make_socket_nonblocking(cfd);
		d.ctl_listener =
		    evconnlistener_new(d.base, ctl_accept_cb, &d, LEV_OPT_CLOSE_ON_FREE, -1, cfd);
		if (d.ctl_listener == NULL)
			mw_fatal("policyd: control listener setup failed");
	}
	d.counters = open_counters(&d, d.rt->cfg);
	d.refresh_timer = event_new(d.base, -1, EV_PERSIST, refresh_cb, &d);
	mw_degraded_watch(MW_DEGRADED_POLICYD_STORE);
	if (load_store_limits(&d) && rebuild(&d, d.rt->cfg, &err) < 0)
		mw_warn("policyd: store limits not applied: %s", err.msg);
	arm_refresh(&d);
	if (mw_metrics_init(false, &err) < 0)
		mw_fatal("policyd: %s", err.msg);
	d.metrics_timer = evtimer_new(d.base, metrics_cb, &d);
	metrics_cb(-1, 0, &d);
	sigfd = mw_service_signal_fd(&err);
	if (sigfd < 0)
		mw_fatal("policyd: %s", err.msg);
	sigev = event_new(d.base, sigfd, EV_READ | EV_PERSIST, signal_cb, &d);
	if (sigev == NULL || event_add(sigev, NULL) < 0)
		mw_fatal("policyd: signal setup failed");
	mw_info("policyd: ready on %s, counters %s, %zu limits (%zu from the store)",
	        mw_config_str(d.rt->cfg, MWK_PD_SOCKET), d.counters->ops->name, d.rt->policy->count,
	        d.store_count);

	event_base_dispatch(d.base);

	while (d.conns != NULL)
		conn_free(d.conns);
	evconnlistener_free(d.listener);
	if (d.ctl_listener != NULL)
		evconnlistener_free(d.ctl_listener);
	event_free(sigev);
	(void)close(sigfd);
	event_free(d.refresh_timer);
	if (mw_config_str(d.rt->cfg, MWK_PD_METRICS_FILE)[0] != '\0')
		(void)mw_metrics_write_file(mw_config_str(d.rt->cfg, MWK_PD_METRICS_FILE), &err);
	event_free(d.metrics_timer);
	d.counters->ops->free(d.counters);
	event_base_free(d.base);
	mw_store_close(&d.store);
	free(d.store_limits);
	rt_unref(d.rt);
	mw_service_end(&svc);
	return 0;
}
