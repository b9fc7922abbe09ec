/* pdload.c - load generator for Postfix policy servers (bench/policyd, not part of the build).
 *
 * Opens N persistent connections (one thread, epoll) and keeps one request outstanding on
 * each, like N smtpd processes. Every connection sends what Postfix sends for a submitted
 * message: one RCPT request per recipient (1..max_rcpt recipients) and, if at least one
 * recipient was accepted, an END-OF-MESSAGE request with recipient_count and size, all with
 * the same instance. Requests carry the full Postfix 3.7 attribute set. Senders come from a
 * pool of users, each with its own client address.
 *
 * Timed mode (default): warm up, then count answers for a fixed duration; prints one line
 *   RESULT label=L conns=N seconds=S requests=R rps=X p50_us=A p99_us=B p999_us=C
 *          dunno=D refused=F
 * Distinct mode (-k N): sends N END-OF-MESSAGE requests, each from a new sasl_username (or
 * client_address with -K ip), as fast as the connections allow, then prints the same line.
 *
 * Public: main. Diagnostics: errors on stderr, exit 1; a closed connection is an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX   4096
#define ANS_MAX   4096
#define HIST_US   200000 /* 1 µs buckets up to 200 ms, then one overflow bucket */
#define CONNS_MAX 1024

struct conn {
	int fd;
	char req[REQ_MAX];
	size_t req_len, req_off;
	char ans[ANS_MAX];
	size_t ans_len;
	int64_t sent_ns;
	/* the message in progress */
	unsigned user, nrcpt, rcpt_done, accepted;
	uint64_t instance;
	bool eom;
};

static struct {
	const char *addr, *label;
	unsigned conns, users, max_rcpt;
	double seconds, warmup;
	uint64_t distinct;
	bool distinct_ip;
} opt = {"127.0.0.1:10040", "run", 8, 20000, 4, 10.0, 1.0, 0, false};

static uint64_t hist[HIST_US + 1];
static uint64_t n_req, n_dunno, n_refused, n_issued;
static bool measuring;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

/* die - print a message and exit 1 */
static void die(const char *what)
{
	fprintf(stderr, "pdload: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(1);
}

/* now_ns - monotonic nanoseconds */
static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* rnd - xorshift64* */
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

/* build_request - the Postfix request for the connection's current step */
static void build_request(struct conn *c)
{
	unsigned u = c->user;
	char ip[32], user[64], rcpt[96];
	int n;
	if (opt.distinct_ip)
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (u >> 16) & 255, (u >> 8) & 255, u & 255);
	else
		snprintf(ip, sizeof(ip), "192.0.%u.%u", (u / 250) % 256, 1 + u % 250);
	if (opt.distinct_ip)
		snprintf(user, sizeof(user), "%s", "");
	else
		snprintf(user, sizeof(user), "user%u@bench.example", u);
	snprintf(rcpt, sizeof(rcpt), "rcpt%u@dest%u.example", (unsigned)(rnd() % 100000),
	         (unsigned)(rnd() % 1000));
	n = snprintf(
	    c->req, sizeof(c->req),
	    "request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
	    "client_address=%s\nclient_name=host-%u.clients.example\nclient_port=%u\n"
	    "reverse_client_name=host-%u.clients.example\nserver_address=127.0.0.1\n"
	    "server_port=587\nhelo_name=[%s]\nsender=%s\nrecipient=%s\nrecipient_count=%u\n"
	    "queue_id=\ninstance=%" PRIx64 ".67a1c3e2.8f21a.0\nsize=%u\netrn_domain=\nstress=\n"
	    "sasl_method=%s\nsasl_username=%s\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
	    "ccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\n"
	    "encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\n"
	    "policy_context=%s\ncompatibility_level=3.6\nmail_version=3.7.11\n\n",
	    c->eom ? "END-OF-MESSAGE" : "RCPT", ip, u, 1024 + u % 60000, u, ip,
	    opt.distinct_ip ? "bounce@clients.example" : user, c->eom ? "" : rcpt,
	    c->eom ? c->accepted : 0, c->instance, c->eom ? 4000 + (unsigned)(rnd() % 60000) : 0,
	    opt.distinct_ip ? "" : "PLAIN", user, opt.distinct_ip ? "originating" : "");
	if (n < 0 || (size_t)n >= sizeof(c->req))
		die("request too long");
	c->req_len = (size_t)n;
	c->req_off = 0;
}

/* next_message - start a new message on the connection */
static void next_message(struct conn *c)
{
	static uint64_t instance_seq;
	if (opt.distinct) {
		c->user = (unsigned)n_issued;
		c->nrcpt = 1;
		c->accepted = 1;
		c->eom = true;
	} else {
		c->user = (unsigned)(rnd() % opt.users);
		c->nrcpt = 1 + (unsigned)(rnd() % opt.max_rcpt);
		c->accepted = 0;
		c->eom = false;
	}
	c->rcpt_done = 0;
	c->instance = ++instance_seq;
}

/* send_some - write what is left of the request */
static int send_some(struct conn *c)
{
	while (c->req_off < c->req_len) {
		ssize_t w = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w <= 0)
			return -1;
		c->req_off += (size_t)w;
	}
	return 0;
}

/* issue - build and send the connection's next request */
static int issue(struct conn *c)
{
	build_request(c);
	n_issued++;
	c->sent_ns = now_ns();
	return send_some(c);
}

/* answered - one complete answer: record it and move the message on */
static void answered(struct conn *c, const char *ans)
{
	int64_t us = (now_ns() - c->sent_ns) / 1000;
	bool ok =
	    strncmp(ans, "action=DUNNO\n", 13) == 0 || strncmp(ans, "action=dunno\n", 13) == 0;
	if (measuring) {
		hist[us < HIST_US ? us : HIST_US]++;
		n_req++;
		if (ok)
			n_dunno++;
		else
			n_refused++;
	}
	if (c->eom) {
		next_message(c);
		return;
	}
	if (ok)
		c->accepted++;
	if (++c->rcpt_done < c->nrcpt)
		return;
	if (c->accepted > 0)
		c->eom = true;
	else
		next_message(c);
}

/* read_answers - read; true when an answer completed (then a new request is due) */
static int read_answers(struct conn *c, bool *done_r)
{
	*done_r = false;
	for (;;) {
		ssize_t r = read(c->fd, c->ans + c->ans_len, sizeof(c->ans) - 1 - c->ans_len);
		char *end;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			return -1;
		}
		c->ans_len += (size_t)r;
		c->ans[c->ans_len] = '\0';
		end = strstr(c->ans, "\n\n");
		if (end != NULL) {
			if ((size_t)(end + 2 - c->ans) != c->ans_len) {
				errno = EPROTO; /* one request outstanding: nothing may follow */
				return -1;
			}
			answered(c, c->ans);
			c->ans_len = 0;
			*done_r = true;
			return 0;
		}
		if (c->ans_len >= sizeof(c->ans) - 1) {
			errno = EMSGSIZE;
			return -1;
		}
	}
}

/* fcntl_nonblock - make FD non-blocking */
static int fcntl_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* connect_to - a non-blocking connection to host:port or unix:PATH */
static int connect_to(const char *addr)
{
	int fd, one = 1;
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		if (strlen(addr + 5) >= sizeof(sun.sun_path))
			die("unix path too long");
		memcpy(sun.sun_path, addr + 5, strlen(addr + 5) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			die(addr);
	} else {
		struct sockaddr_in sin = {.sin_family = AF_INET};
		char host[64];
		const char *colon = strrchr(addr, ':');
		if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
			die("address must be HOST:PORT or unix:PATH");
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
		sin.sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
			die("host must be an IPv4 address");
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			die(addr);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (fcntl_nonblock(fd) < 0)
		die("fcntl");
	return fd;
}

/* percentile - the bucket (µs) below which a fraction p of the samples lie */
static unsigned percentile(double p)
{
	uint64_t want = (uint64_t)(p * (double)n_req), seen = 0;
	unsigned i;
	for (i = 0; i <= HIST_US; i++) {
		seen += hist[i];
		if (seen > want)
			return i;
	}
	return HIST_US;
}

/* usage - the help text */
static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: pdload [-a ADDR] [-c CONNS] [-d SECONDS] [-w SECONDS] [-u USERS] [-r MAX]\n"
	    "              [-k N [-K ip]] [-l LABEL]\n\n"
	    "Drives a Postfix policy server with CONNS persistent connections (default 8), each\n"
	    "sending RCPT requests (1..MAX recipients, default 4) and an END-OF-MESSAGE request\n"
	    "per message for USERS senders (default 20000), one request outstanding per\n"
	    "connection. Prints a RESULT line: requests/s and p50/p99/p99.9 latency in µs.\n\n"
	    "  -a ADDR    HOST:PORT or unix:PATH (default 127.0.0.1:10040)\n"
	    "  -d, -w     measured seconds (default 10) after a warm-up (default 1)\n"
	    "  -k N       instead: N END-OF-MESSAGE requests, each from a new sasl_username\n"
	    "  -K ip      with -k: a new client_address each (no sasl_username)\n"
	    "  -l LABEL   name printed in the RESULT line\n");
}

int main(int argc, char **argv)
{
	struct conn *conns;
	struct epoll_event ev, evs[64];
	int ep, o;
	unsigned i;
	int64_t start, stop, t0;
	while ((o = getopt(argc, argv, "a:c:d:w:u:r:k:K:l:h")) != -1) {
		switch (o) {
		case 'a':
			opt.addr = optarg;
			break;
		case 'c':
			opt.conns = (unsigned)atoi(optarg);
			break;
		case 'd':
			opt.seconds = atof(optarg);
			break;
		case 'w':
			opt.warmup = atof(optarg);
			break;
		case 'u':
			opt.users = (unsigned)atoi(optarg);
			break;
		case 'r':
			opt.max_rcpt = (unsigned)atoi(optarg);
			break;
		case 'k':
			opt.distinct = strtoull(optarg, NULL, 10);
			break;
		case 'K':
			opt.distinct_ip = strcmp(optarg, "ip") == 0;
			break;
		case 'l':
			opt.label = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (opt.conns < 1 || opt.conns > CONNS_MAX || opt.users < 1 || opt.max_rcpt < 1 ||
	    opt.seconds <= 0 || opt.warmup < 0) {
		usage(stderr);
		return 2;
	}
	conns = calloc(opt.conns, sizeof(*conns));
	ep = epoll_create1(0);
	if (conns == NULL || ep < 0)
		die("setup");
	t0 = now_ns();
	for (i = 0; i < opt.conns; i++) {
		conns[i].fd = connect_to(opt.addr);
		ev.events = EPOLLIN;
		ev.data.ptr = &conns[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
			die("epoll_ctl");
	}
	measuring = opt.distinct > 0;
	start = opt.distinct ? now_ns() : now_ns() + (int64_t)(opt.warmup * 1e9);
	stop = opt.distinct ? INT64_MAX : start + (int64_t)(opt.seconds * 1e9);
	for (i = 0; i < opt.conns; i++) {
		next_message(&conns[i]);
		if (opt.distinct && n_issued >= opt.distinct)
			break;
		if (issue(&conns[i]) < 0)
			die("write");
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 64, 1000), k;
		int64_t now = now_ns();
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		if (!measuring && !opt.distinct && now >= start)
			measuring = true;
		if (now >= stop)
			break;
		if (opt.distinct && n_req >= opt.distinct)
			break;
		if (n == 0 && now - t0 > (int64_t)60e9 && n_req == 0)
			die("no answer within 60 s");
		for (k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			bool done;
			if (read_answers(c, &done) < 0)
				die("connection to the policy server");
			if (!done)
				continue;
			if (opt.distinct && n_issued >= opt.distinct)
				continue;
			if (issue(c) < 0)
				die("write");
		}
	}
	{
		double secs = (double)((opt.distinct ? now_ns() : stop) - start) / 1e9;
		printf("RESULT label=%s conns=%u seconds=%.2f requests=%" PRIu64
		       " rps=%.0f p50_us=%u p99_us=%u p999_us=%u dunno=%" PRIu64 " refused=%" PRIu64
		       "\n",
		       opt.label, opt.conns, secs, n_req, (double)n_req / secs, percentile(0.50),
		       percentile(0.99), percentile(0.999), n_dunno, n_refused);
	}
	for (i = 0; i < opt.conns; i++)
		close(conns[i].fd);
	free(conns);
	return 0;
}
