/* pdnull.c - a do-nothing Postfix policy server: action=DUNNO to every request.
 *
 * The baseline of bench/policyd: one thread, epoll, persistent connections; it reads
 * requests (lines up to an empty line) and answers each with "action=DUNNO" and an empty
 * line. It parses nothing else, so what pdload measures against it is the cost of the
 * protocol itself (sockets, wake-ups, the generator) on this machine.
 *
 * Usage: pdnull HOST:PORT (IPv4, e.g. 127.0.0.1:10041). Runs until SIGTERM/SIGINT.
 * Public: main. Diagnostics: start-up errors on stderr, exit 1; a broken client is closed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_MAX (64 * 1024)

struct client {
	int fd;
	char last; /* last byte of the previous read (an LF split across reads) */
	char buf[BUF_MAX];
};

static const char answer[] = "action=DUNNO\n\n";

/* die - print a message and exit 1 */
static void die(const char *what)
{
	fprintf(stderr, "pdnull: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* drop - close a client */
static void drop(struct client *c)
{
	close(c->fd);
	free(c);
}

/* serve - read what is there; answer every complete request. -1: close the client */
static int serve(struct client *c)
{
	for (;;) {
		ssize_t r = read(c->fd, c->buf, sizeof(c->buf));
		char out[sizeof(answer) * 64];
		size_t nout = 0, i;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r <= 0)
			return -1;
		for (i = 0; i < (size_t)r; i++) {
			char prev = i > 0 ? c->buf[i - 1] : c->last;
			if (c->buf[i] == '\n' && prev == '\n') {
				if (nout + sizeof(answer) > sizeof(out))
					return -1; /* more than 64 pipelined requests: not Postfix
					            */
				memcpy(out + nout, answer, sizeof(answer) - 1);
				nout += sizeof(answer) - 1;
				c->buf[i] = '\0'; /* the next LF starts over */
			}
		}
		c->last = c->buf[r - 1];
		if (nout > 0 && write(c->fd, out, nout) != (ssize_t)nout)
			return -1;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct epoll_event ev, evs[64];
	char host[64];
	const char *colon;
	int lfd, ep, one = 1;
	if (argc != 2 || (colon = strrchr(argv[1], ':')) == NULL ||
	    (size_t)(colon - argv[1]) >= sizeof(host)) {
		fprintf(stderr, "usage: pdnull HOST:PORT\n");
		return 2;
	}
	memcpy(host, argv[1], (size_t)(colon - argv[1]));
	host[colon - argv[1]] = '\0';
	sin.sin_port = htons((unsigned short)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "pdnull: %s: not an IPv4 address\n", host);
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 128) < 0)
		die(argv[1]);
	ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl");
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1), k;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (k = 0; k < n; k++) {
			struct client *c = evs[k].data.ptr;
			if (c == NULL) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
				if (fd < 0)
					continue;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				c = calloc(1, sizeof(*c));
				if (c == NULL)
					die("calloc");
				c->fd = fd;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
					drop(c);
					continue;
				}
			} else if (serve(c) < 0) {
				drop(c); /* close() removes it from the epoll set */
			}
		}
	}
}
