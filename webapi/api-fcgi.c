/* api-fcgi.c - the API's own FastCGI responder loop (FastCGI 1.0, responder role only).
 *
 * Why not libfcgi's FCGX_Accept_r: it blocks reading the connection of the request it
 * served last. With nginx keeping connections open (fastcgi_keep_conn, an upstream
 * keepalive pool) a worker would sit on an idle kept connection while a new connection
 * waits in the backlog for a worker that never comes. Here each worker polls the listening
 * socket and every connection it holds (up to API_FCGI_CONNS), answers whichever request
 * completes, and keeps a connection only when nginx asked (FCGI_KEEP_CONN).
 *
 * A kept connection belongs to no worker for good. When a worker starts on a request it
 * first hands every other connection it holds idle (nothing of a request read yet) to the
 * pool's hand-off socket (an AF_UNIX datagram pair the master made, SCM_RIGHTS); any worker
 * waiting in poll() takes it from there. So a request nginx sends on a kept connection never
 * waits behind a slow request (an argon2 check) its last worker is busy with: it waits only
 * when every worker is busy. A worker holding one connection hands off nothing, so the
 * steady state costs no system call; nor does a worker hand off while no other worker
 * waits (idle_workers, a counter the workers share; a worker stopped while it waits takes
 * itself off it; one killed by SIGKILL there leaves it one too high, which only brings back
 * a hand-off that moves a wait). A hand-off the socket cannot take (its
 * queue full) leaves the connection where it is.
 *
 * Records are parsed from a per-connection buffer; nothing is trusted: a record for a
 * request that is not active is ignored, a second BEGIN_REQUEST on a busy connection is
 * answered FCGI_CANT_MPX_CONN, another role FCGI_UNKNOWN_ROLE, management records
 * FCGI_GET_VALUES (others FCGI_UNKNOWN_TYPE), a wrong version closes the connection.
 * Parameters are bounded (API_FCGI_PARAMS_MAX bytes, API_FCGI_NPARAMS pairs, no NUL in a
 * name or value: "bad", answered 400), the body by max_body (beyond it only a flag is kept,
 * the rest read and dropped, so nginx can finish sending). A silent connection is closed
 * after API_FCGI_IDLE_S; an answer that cannot be written within API_FCGI_WRITE_S closes
 * its connection.
 *
 * Public: api_fcgi_serve, api_fcgi_param, api_fcgi_feed, api_fcgi_feed_end.
 */
#define _GNU_SOURCE /* ppoll */
#include "mw-build.h"
#include "api-fcgi.h"
#include "mw-daemon.h"
#include "mw-log.h"
#include "mw-service.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
	FCGI_VERSION = 1,
	FCGI_BEGIN_REQUEST = 1,
	FCGI_ABORT_REQUEST = 2,
	FCGI_END_REQUEST = 3,
	FCGI_PARAMS = 4,
	FCGI_STDIN = 5,
	FCGI_STDOUT = 6,
	FCGI_GET_VALUES = 9,
	FCGI_GET_VALUES_RESULT = 10,
	FCGI_UNKNOWN_TYPE = 11,
	FCGI_RESPONDER = 1,
	FCGI_KEEP_CONN = 1,
	FCGI_REQUEST_COMPLETE = 0,
	FCGI_CANT_MPX_CONN = 1,
	FCGI_UNKNOWN_ROLE = 3,
	HEADER = 8,
	CHUNK = 32768, /* STDOUT record size written */
	READ = 16384,
	REPLY_KEEP = 65536, /* a kept answer buffer's largest size */
};

struct api_fcgi_conn {
	int fd;
	bool refused; /* an inet peer outside inet_peers: every request gets 403 */
	int64_t last_ms;
	unsigned char *in; /* received, not yet parsed: in_len bytes of in_cap */
	size_t in_len, in_cap;
	bool active, keep, params_done, stdin_done, params_too_large, body_too_large;
	unsigned id;
	mw_str params, body;
	/* the handler's answer; its buffer is kept (wiped) for the next one. It, params and
	   body are mw_str_init_wiped: a block given up when one grows is wiped, not left as is */
	mw_str reply;
};

/* api_fcgi_param - the value of parameter name, NULL when absent */
const char *api_fcgi_param(const struct api_fcgi_request *r, const char *name)
{
	size_t i;
	for (i = 0; i < r->nparams; i++)
		if (strcmp(r->names[i], name) == 0)
			return r->values[i];
	return NULL;
}

/* put_record - append one record of type for request id */
static void put_record(mw_str *out, unsigned type, unsigned id, const void *p, size_t len)
{
	char h[HEADER] = {FCGI_VERSION,
	                  (char)type,
	                  (char)(id >> 8),
	                  (char)(id & 0xff),
	                  (char)(len >> 8),
	                  (char)(len & 0xff),
	                  0,
	                  0};
	(void)mw_str_append(out, h, sizeof(h));
	if (len > 0)
		(void)mw_str_append(out, p, len);
}

/* put_end - FCGI_END_REQUEST with the protocol status */
static void put_end(mw_str *out, unsigned id, unsigned status)
{
	char b[8] = {0, 0, 0, 0, (char)status, 0, 0, 0};
	put_record(out, FCGI_END_REQUEST, id, b, sizeof(b));
}

/* request_reset - forget the active request (the connection stays); its parameters (the
   bearer token) and body (passwords) are wiped, not only emptied */
static void request_reset(struct api_fcgi_conn *c)
{
	c->active = c->keep = c->params_done = c->stdin_done = false;
	c->params_too_large = c->body_too_large = false;
	if (c->params.buf != NULL)
		mw_memzero(c->params.buf, c->params.len);
	if (c->body.buf != NULL)
		mw_memzero(c->body.buf, c->body.len);
	mw_str_reset(&c->params);
	mw_str_reset(&c->body);
}

/* read_length - a name-value pair length (1 or 4 bytes); false past the end */
static bool read_length(const unsigned char *p, size_t len, size_t *pos, size_t *n_r)
{
	if (*pos >= len)
		return false;
	if (p[*pos] < 0x80) {
		*n_r = p[(*pos)++];
		return true;
	}
	if (len - *pos < 4)
		return false;
	*n_r = ((size_t)(p[*pos] & 0x7f) << 24) | ((size_t)p[*pos + 1] << 16) |
	       ((size_t)p[*pos + 2] << 8) | p[*pos + 3];
	*pos += 4;
	return true;
}

/* parse_params - the parameter stream into NUL-terminated names and values, all copied into
   one allocation (*text_r, freed by the caller): a pair takes at least two length bytes
   besides its name and value, so len bytes hold every name and value with its NUL; sets
   r->bad */
static void parse_params(const mw_str *params, struct api_fcgi_request *r, char **text_r)
{
	const unsigned char *p = (const unsigned char *)params->buf;
	size_t len = params->len, pos = 0, nlen, vlen, o = 0;
	char *text = *text_r = mw_malloc(len + 1);
	while (pos < len) {
		if (r->nparams == API_FCGI_NPARAMS) {
			r->bad = "too many request parameters";
			return;
		}
		if (!read_length(p, len, &pos, &nlen) || !read_length(p, len, &pos, &vlen) ||
		    nlen > len - pos || vlen > len - pos - nlen) {
			r->bad = "malformed request parameters";
			return;
		}
		if (memchr(p + pos, '\0', nlen + vlen) != NULL) {
			r->bad = "a request parameter holds a NUL byte";
			return;
		}
		r->names[r->nparams] = memcpy(text + o, p + pos, nlen);
		text[o + nlen] = '\0';
		o += nlen + 1;
		r->values[r->nparams] = memcpy(text + o, p + pos + nlen, vlen);
		text[o + vlen] = '\0';
		o += vlen + 1;
		r->nparams++;
		pos += nlen + vlen;
	}
}

/* answer - run the handler for the completed request; appends STDOUT and END_REQUEST */
static void answer(struct api_fcgi_conn *c, const struct api_fcgi_conf *conf, mw_str *out)
{
	char *names[API_FCGI_NPARAMS], *values[API_FCGI_NPARAMS];
	struct api_fcgi_request r = {.names = names, .values = values};
	char *text = NULL;
	mw_str *reply = &c->reply;
	size_t i, n;
	mw_str_reset(reply);
	if (c->refused) {
		(void)mw_str_appends(reply, "Status: 403 Forbidden\r\n"
		                            "Content-Type: text/plain\r\n\r\n");
	} else {
		if (c->params_too_large)
			r.bad = "the request parameters are larger than allowed";
		else
			parse_params(&c->params, &r, &text);
		r.body = (unsigned char *)(c->body.buf != NULL ? c->body.buf : "");
		r.body_len = c->body.len;
		r.body_too_large = c->body_too_large;
		conf->handler(conf->ctx, &r, reply);
		if (text != NULL) /* the parameters carry the bearer token and the cookie */
			mw_memzero(text, c->params.len);
		free(text);
	}
	for (i = 0; i < reply->len; i += n) {
		n = reply->len - i < CHUNK ? reply->len - i : CHUNK;
		put_record(out, FCGI_STDOUT, c->id, reply->buf + i, n);
	}
	put_record(out, FCGI_STDOUT, c->id, NULL, 0);
	put_end(out, c->id, FCGI_REQUEST_COMPLETE);
	/* answers may carry tokens: wiped. The buffer serves the connection's next answer (no
	   growth from 64 bytes each time), unless a large answer made it large */
	if (reply->cap > REPLY_KEEP) {
		mw_str_free(reply); /* wipes it */
	} else {
		if (reply->buf != NULL)
			mw_memzero(reply->buf, reply->len);
		mw_str_reset(reply);
	}
}

/* management - a record for request id 0 */
static void management(unsigned type, const unsigned char *p, size_t len, mw_str *out)
{
	static const struct {
		const char *name, *value;
	} values[] = {{"FCGI_MAX_CONNS", "64"}, {"FCGI_MAX_REQS", "64"}, {"FCGI_MPXS_CONNS", "0"}};
	mw_str res;
	size_t pos = 0, nlen, vlen, i;
	if (type != FCGI_GET_VALUES) {
		char b[8] = {(char)type, 0, 0, 0, 0, 0, 0, 0};
		put_record(out, FCGI_UNKNOWN_TYPE, 0, b, sizeof(b));
		return;
	}
	mw_str_init(&res, 0);
	while (pos < len && read_length(p, len, &pos, &nlen) && read_length(p, len, &pos, &vlen) &&
	       nlen <= len - pos && vlen <= len - pos - nlen) {
		for (i = 0; i < MW_N_ELEMENTS(values); i++) {
			size_t k = strlen(values[i].name), v = strlen(values[i].value);
			if (nlen == k && memcmp(p + pos, values[i].name, k) == 0) {
				(void)mw_str_appendc(&res, (char)k);
				(void)mw_str_appendc(&res, (char)v);
				(void)mw_str_append(&res, values[i].name, k);
				(void)mw_str_append(&res, values[i].value, v);
			}
		}
		pos += nlen + vlen;
	}
	put_record(out, FCGI_GET_VALUES_RESULT, 0, res.buf, res.len);
	mw_str_free(&res);
}

/* record - act on one record; -1 closes the connection (after out is written) */
static int record(struct api_fcgi_conn *c, const struct api_fcgi_conf *conf, unsigned type,
                  unsigned id, const unsigned char *p, size_t len, mw_str *out)
{
	if (id == 0) {
		management(type, p, len, out);
		return 0;
	}
	if (type == FCGI_BEGIN_REQUEST) {
		unsigned role;
		if (len < 8)
			return -1;
		role = ((unsigned)p[0] << 8) | p[1];
		if (c->active) {
			put_end(out, id, FCGI_CANT_MPX_CONN);
			return 0;
		}
		if (role != FCGI_RESPONDER) {
			put_end(out, id, FCGI_UNKNOWN_ROLE);
			return (p[2] & FCGI_KEEP_CONN) != 0 ? 0 : -1;
		}
		request_reset(c);
		c->active = true;
		c->id = id;
		c->keep = (p[2] & FCGI_KEEP_CONN) != 0;
		return 0;
	}
	if (!c->active || id != c->id)
		return 0; /* not the active request: ignored, as the specification says */
	switch (type) {
	case FCGI_ABORT_REQUEST:
		put_end(out, id, FCGI_REQUEST_COMPLETE);
		if (!c->keep)
			return -1;
		request_reset(c);
		return 0;
	case FCGI_PARAMS:
		if (len == 0)
			c->params_done = true;
		else if (!c->params_done && !c->params_too_large &&
		         mw_str_append(&c->params, (const char *)p, len) < 0)
			c->params_too_large = true;
		break;
	case FCGI_STDIN:
		if (len == 0)
			c->stdin_done = true;
		else if (!c->stdin_done && !c->body_too_large &&
		         mw_str_append(&c->body, (const char *)p, len) < 0) {
			c->body_too_large = true;
			mw_str_free(&c->body);
			mw_str_init_wiped(&c->body, conf->max_body);
		}
		break;
	default:
		break; /* FCGI_DATA and the like: not for a responder */
	}
	if (c->params_done && c->stdin_done) {
		bool keep = c->keep;
		answer(c, conf, out);
		request_reset(c);
		return keep ? 0 : -1;
	}
	return 0;
}

/* conn_parse - every complete record in c->in; -1 closes the connection */
static int conn_parse(struct api_fcgi_conn *c, const struct api_fcgi_conf *conf, mw_str *out)
{
	const unsigned char *p = c->in;
	size_t pos = 0, clen, plen;
	int ret = 0;
	while (ret == 0 && c->in_len - pos >= HEADER) {
		if (p[pos] != FCGI_VERSION) {
			ret = -1;
			break;
		}
		clen = ((size_t)p[pos + 4] << 8) | p[pos + 5];
		plen = p[pos + 6];
		if (c->in_len - pos < HEADER + clen + plen)
			break;
		ret = record(c, conf, p[pos + 1], ((unsigned)p[pos + 2] << 8) | p[pos + 3],
		             p + pos + HEADER, clen, out);
		pos += HEADER + clen + plen;
	}
	if (pos > 0) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
		mw_memzero(c->in + c->in_len, pos); /* consumed records held the token */
	}
	return ret;
}

/* conn_new - the state of one connection */
static struct api_fcgi_conn *conn_new(int fd, const struct api_fcgi_conf *conf)
{
	struct api_fcgi_conn *c = mw_calloc(1, sizeof(*c));
	c->fd = fd;
	mw_str_init_wiped(&c->params, API_FCGI_PARAMS_MAX);
	mw_str_init_wiped(&c->body, conf->max_body);
	mw_str_init_wiped(&c->reply, 0);
	return c;
}

/* conn_free - close and forget a connection */
static void conn_free(struct api_fcgi_conn *c)
{
	if (c->fd >= 0)
		(void)close(c->fd);
	request_reset(c); /* wipes what an unfinished request left */
	if (c->in != NULL)
		mw_memzero(c->in, c->in_cap);
	free(c->in);
	mw_str_free(&c->params);
	mw_str_free(&c->body);
	mw_str_free(&c->reply); /* wiped after each answer */
	free(c);
}

/* in_room - make room for n more received bytes (the buffer holds at most one incomplete
   record besides them: conn_parse consumes every complete one) */
static void in_room(struct api_fcgi_conn *c, size_t n)
{
	if (c->in_cap - c->in_len >= n)
		return;
	unsigned char *in = mw_malloc(c->in_len + n);
	if (c->in_len > 0)
		memcpy(in, c->in, c->in_len);
	if (c->in != NULL) /* not realloc: the old block may hold a token */
		mw_memzero(c->in, c->in_cap);
	free(c->in);
	c->in = in;
	c->in_cap = c->in_len + n;
}

/* api_fcgi_feed - the parser alone (tests, fuzzing) */
int api_fcgi_feed(struct api_fcgi_conn **state, const struct api_fcgi_conf *conf, const void *data,
                  size_t len, mw_str *out)
{
	struct api_fcgi_conn *c;
	if (*state == NULL)
		*state = conn_new(-1, conf);
	c = *state;
	if (len > 0) {
		in_room(c, len);
		memcpy(c->in + c->in_len, data, len);
		c->in_len += len;
	}
	return conn_parse(c, conf, out);
}

/* api_fcgi_feed_end - free the parser state */
void api_fcgi_feed_end(struct api_fcgi_conn **state)
{
	if (*state != NULL)
		conn_free(*state);
	*state = NULL;
}

/* api_fcgi_feed_retains - needle anywhere in the connection's buffers */
bool api_fcgi_feed_retains(const struct api_fcgi_conn *c, const void *needle, size_t n)
{
	return (c->in != NULL && memmem(c->in, c->in_cap, needle, n) != NULL) ||
	       (c->params.buf != NULL && memmem(c->params.buf, c->params.cap, needle, n) != NULL) ||
	       (c->body.buf != NULL && memmem(c->body.buf, c->body.cap, needle, n) != NULL) ||
	       (c->reply.buf != NULL && memmem(c->reply.buf, c->reply.cap, needle, n) != NULL);
}

/* write_all - write out to a non-blocking socket, waiting up to API_FCGI_WRITE_S */
static int write_all(int fd, const mw_str *out)
{
	size_t done = 0;
	int64_t deadline = mw_mono_ms() + API_FCGI_WRITE_S * 1000;
	while (done < out->len) {
		ssize_t n = send(fd, out->buf + done, out->len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (n < 0 && errno != EINTR) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int64_t left = deadline - mw_mono_ms();
			if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
				return -1;
		}
	}
	return 0;
}

/* conn_readable - read what arrived, answer what completed; -1: close the connection */
static int conn_readable(struct api_fcgi_conn *c, const struct api_fcgi_conf *conf, mw_str *out)
{
	ssize_t n;
	int ret;
	in_room(c, READ);
	n = recv(c->fd, c->in + c->in_len, READ, 0);
	if (n == 0)
		return -1;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	c->in_len += (size_t)n;
	c->last_ms = mw_mono_ms();
	mw_str_reset(out);
	ret = conn_parse(c, conf, out);
	if (out->len > 0 && write_all(c->fd, out) < 0)
		ret = -1;
	if (out->buf != NULL) /* the records copy the answer (a token, a TOTP secret) */
		mw_memzero(out->buf, out->len);
	if (conf->answered != NULL)
		conf->answered(conf->ctx);
	return ret;
}

/* accept_one - take a new connection if one waits; NULL when none */
static struct api_fcgi_conn *accept_one(const struct api_fcgi_conf *conf)
{
	struct api_fcgi_conn *c;
	char peer[64];
	int fd = accept(conf->listen_fd, NULL, NULL);
	if (fd >= 0 && (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
	                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)) {
		mw_warn("FastCGI connection: %s", strerror(errno));
		(void)close(fd);
		return NULL;
	}
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			mw_warn("accept on the FastCGI socket: %s", strerror(errno));
		return NULL;
	}
	c = conn_new(fd, conf);
	c->last_ms = mw_mono_ms();
	if (conf->inet_peers != NULL &&
	    !mw_daemon_peer_allowed(fd, conf->inet_peers, peer, sizeof(peer))) {
		mw_warn("FastCGI connection from %s refused: not in [api] inet_peers", peer);
		c->refused = true;
	}
	return c;
}

/* A one-byte datagram carrying (at most) one descriptor: the hand-off message. */
struct fd_msg {
	char byte;
	struct iovec iov;
	struct msghdr msg;
	struct {
		/* >= CMSG_SPACE(sizeof(int)); aligned as a struct cmsghdr (not a member: glibc's
		   ends in a flexible array, which clang refuses inside another struct) */
		_Alignas(size_t) char buf[64];
	} cm;
};

/* fd_msg_init - point m's header at its own byte and control buffer */
static void fd_msg_init(struct fd_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->byte = 'c';
	m->iov = (struct iovec){.iov_base = &m->byte, .iov_len = 1};
	m->msg.msg_iov = &m->iov;
	m->msg.msg_iovlen = 1;
	m->msg.msg_control = m->cm.buf;
	m->msg.msg_controllen = CMSG_SPACE(sizeof(int));
}

/* handoff - pass c's descriptor to the hand-off socket (sock: the pair's sending end);
   true when it went (c is freed) */
static bool handoff(struct api_fcgi_conn *c, int sock)
{
	struct fd_msg m;
	struct cmsghdr *h;
	fd_msg_init(&m);
	h = CMSG_FIRSTHDR(&m.msg);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &c->fd, sizeof(int));
	if (sendmsg(sock, &m.msg, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
		return false; /* the queue is full (or the pair is gone): keep serving it here */
	conn_free(c);         /* closes our copy; the descriptor in flight keeps the socket */
	return true;
}

/* adopt - take a connection another worker handed off; NULL when none waits */
static struct api_fcgi_conn *adopt(const struct api_fcgi_conf *conf)
{
	struct fd_msg m;
	struct cmsghdr *h;
	struct api_fcgi_conn *c;
	int fd = -1;
	fd_msg_init(&m);
	if (recvmsg(conf->handoff_fd, &m.msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
		return NULL; /* another worker was quicker */
	for (h = CMSG_FIRSTHDR(&m.msg); h != NULL; h = CMSG_NXTHDR(&m.msg, h)) {
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
		    h->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(h), sizeof(int));
	}
	if (fd < 0 || (m.msg.msg_flags & MSG_CTRUNC) != 0) {
		if (fd >= 0)
			(void)close(fd);
		return NULL;
	}
	c = conn_new(fd, conf); /* still non-blocking: the flag is the connection's */
	c->last_ms = mw_mono_ms();
	return c;
}

/* handoff_idle - before serving conns[keep]: every other connection that holds no part of
   a request goes to the hand-off socket; returns the new index of conns[keep] */
static size_t handoff_idle(const struct api_fcgi_conf *conf, struct api_fcgi_conn **conns,
                           size_t *nconns, size_t keep, struct api_fcgi_conn **ready,
                           size_t *nready)
{
	struct api_fcgi_conn *mine = conns[keep];
	size_t i, j, n = 0;
	for (i = 0; i < *nconns; i++) {
		struct api_fcgi_conn *c = conns[i];
		if (c == mine || c->refused || c->active || c->in_len > 0) {
			conns[n++] = c;
			continue;
		}
		bool was_ready;
		for (j = 0; j < *nready && ready[j] != c; j++)
			;
		was_ready = j < *nready;
		if (was_ready) /* it leaves the list of those to serve before it is freed */
			ready[j] = ready[--*nready];
		if (!handoff(c, conf->handoff_out)) {
			conns[n++] = c;
			if (was_ready)
				ready[(*nready)++] = c;
		}
	}
	*nconns = n;
	for (i = 0; i < n; i++)
		if (conns[i] == mine)
			return i;
	return keep; /* not reached: mine is never handed off */
}

/* the shared waiting-worker counter of this worker, for term_waiting */
static unsigned *waiting_counter;

/* term_waiting - SIGTERM, which ppoll lets in only while we wait (counted in
   idle_workers): uncount ourselves, then end (nothing is in hand) */
static void term_waiting(int sig)
{
	(void)sig;
	if (waiting_counter != NULL)
		(void)__atomic_sub_fetch(waiting_counter, 1, __ATOMIC_RELAXED);
	_exit(0);
}

/* api_fcgi_serve - the worker's loop */
int api_fcgi_serve(const struct api_fcgi_conf *conf, mw_error *error_r)
{
	struct api_fcgi_conn *conns[API_FCGI_CONNS];
	struct pollfd pfd[API_FCGI_CONNS + 1];
	size_t nconns = 0, i;
	const struct timespec wait = {.tv_sec = 10};
	sigset_t waiting;
	mw_str out;
	int flags = fcntl(conf->listen_fd, F_GETFL);
	if (flags < 0 || fcntl(conf->listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		mw_error_set(error_r, "FastCGI socket: %s", strerror(errno));
		return -1;
	}
	/* SIGTERM stays blocked while we serve, so a stop never cuts an answer; ppoll lets it in
	   only while we wait, when nothing is in hand (its handler exits). One mask for the
	   wait instead of a sigprocmask pair around every request. */
	mw_service_worker_idle(false);
	if (sigprocmask(SIG_BLOCK, NULL, &waiting) < 0 || sigdelset(&waiting, SIGTERM) < 0) {
		mw_error_set(error_r, "signal mask: %s", strerror(errno));
		return -1;
	}
	if (conf->idle_workers != NULL) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = term_waiting;
		(void)sigemptyset(&sa.sa_mask);
		waiting_counter = conf->idle_workers;
		(void)sigaction(SIGTERM, &sa, NULL);
	}
	mw_str_init_wiped(&out, 0);
	for (;;) {
		struct api_fcgi_conn *ready[API_FCGI_CONNS];
		size_t np = 0, nready = 0, at_listen = SIZE_MAX, at_handoff = SIZE_MAX;
		int64_t now;
		for (i = 0; i < nconns; i++)
			pfd[np++] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
		if (nconns < API_FCGI_CONNS) {
			at_listen = np;
			pfd[np++] = (struct pollfd){.fd = conf->listen_fd, .events = POLLIN};
			if (conf->handoff_fd >= 0) {
				at_handoff = np;
				pfd[np++] =
				    (struct pollfd){.fd = conf->handoff_fd, .events = POLLIN};
			}
		}
		if (conf->idle_workers != NULL)
			(void)__atomic_add_fetch(conf->idle_workers, 1, __ATOMIC_RELAXED);
		if (ppoll(pfd, np, &wait, &waiting) < 0 && errno != EINTR) {
			mw_error_set(error_r, "ppoll: %s", strerror(errno));
			break;
		}
		if (conf->idle_workers != NULL)
			(void)__atomic_sub_fetch(conf->idle_workers, 1, __ATOMIC_RELAXED);
		now = mw_mono_ms();
		/* which connections spoke, which were silent too long */
		for (i = nconns; i-- > 0;) {
			if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
				ready[nready++] = conns[i];
			} else if (now - conns[i]->last_ms > API_FCGI_IDLE_S * 1000) {
				conn_free(conns[i]);
				conns[i] = conns[--nconns];
			}
		}
		/* serve them one at a time; each time, what else is idle goes to a free worker
		   (a ready one too: another worker reads it sooner than we would) */
		while (nready > 0) {
			struct api_fcgi_conn *c = ready[--nready];
			size_t at;
			for (at = 0; at < nconns && conns[at] != c; at++)
				;
			/* only while another worker waits: with every worker busy a hand-off would
			   only move the wait (and cost two system calls a connection) */
			if (conf->handoff_fd >= 0 && nconns > 1 &&
			    (conf->idle_workers == NULL ||
			     __atomic_load_n(conf->idle_workers, __ATOMIC_RELAXED) > 0))
				at = handoff_idle(conf, conns, &nconns, at, ready, &nready);
			if (conn_readable(c, conf, &out) < 0) {
				conn_free(c);
				conns[at] = conns[--nconns];
			}
		}
		/* one new connection per wake-up: the other waiting workers take the rest */
		if (at_listen != SIZE_MAX && (pfd[at_listen].revents & POLLIN) != 0 &&
		    nconns < API_FCGI_CONNS) {
			struct api_fcgi_conn *c = accept_one(conf);
			if (c != NULL)
				conns[nconns++] = c;
		}
		if (at_handoff != SIZE_MAX && (pfd[at_handoff].revents & POLLIN) != 0 &&
		    nconns < API_FCGI_CONNS) {
			struct api_fcgi_conn *c = adopt(conf);
			if (c != NULL)
				conns[nconns++] = c;
		}
	}
	for (i = 0; i < nconns; i++)
		conn_free(conns[i]);
	mw_str_free(&out);
	return -1;
}
