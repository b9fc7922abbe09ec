/*
 * mw-spamd.c - SpamAssassin's spamd as the spam scorer (SPAMC/SPAMD protocol, SYMBOLS).
 *
 * Public: mw_spamd_parse_backend, mw_spamd_user_ok, mw_spamd_request_print,
 * mw_spamd_reply_parse, mw_spamd_cut, mw_spamd_check.
 *
 * One connection per message, as spamc makes: the request head, the message, a half-close,
 * then the reply, read until it is complete (Content-length) or the connection ends. The
 * whole exchange has one deadline (settings timeout_ms), not one per step: a spamd that
 * dribbles a byte at a time cannot stretch a check past it. The socket is non-blocking and
 * every wait is a poll bounded by what is left of the deadline.
 *
 * The reply parser is strict (see mw-spamd.h): it refuses rather than guesses, because a
 * reply it cannot read is no verdict, and the caller's failure policy (tempfail by default)
 * decides what happens to the message. spamd's score is taken as a decimal (spamd prints
 * one place; up to six are read, rounded to hundredths).
 *
 * Diagnostics: errors through error_r; nothing is logged here.
 */
#include "mw-build.h"
#include "mw-spamd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* the longest reply: status, every header line, the blank line, the body */
#define REPLY_MAX (MW_SPAMD_LINE_MAX * (MW_SPAMD_HEADERS_MAX + 2) + MW_SPAMD_BODY_MAX)

/* mw_spamd_parse_backend - "spamd:HOST:PORT" or "spamd:unix:/path" into an address */
int mw_spamd_parse_backend(const char *spec, struct mw_spamd_settings *s, mw_error *error_r)
{
	const char *rest, *colon, *p;
	char host[64];
	size_t hlen;
	long port = 0;

	memset(&s->addr, 0, sizeof(s->addr));
	s->addrlen = 0;
	if (mw_strlcpy(s->spec, spec, sizeof(s->spec)) < 0 || strncmp(spec, "spamd:", 6) != 0)
		goto bad;
	rest = spec + 6;
	if (strncmp(rest, "unix:", 5) == 0) {
		struct sockaddr_un *su = (struct sockaddr_un *)&s->addr;
		if (rest[5] != '/' || mw_strlcpy(su->sun_path, rest + 5, sizeof(su->sun_path)) < 0)
			goto bad;
		su->sun_family = AF_UNIX;
		s->addrlen = sizeof(*su);
		return 0;
	}
	colon = strrchr(rest, ':');
	if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) > 5)
		goto bad;
	for (p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		port = port * 10 + (*p - '0');
	}
	if (port < 1 || port > 65535)
		goto bad;
	hlen = (size_t)(colon - rest);
	if (hlen >= 2 && rest[0] == '[' && rest[hlen - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&s->addr;
		if (hlen - 2 >= sizeof(host))
			goto bad;
		memcpy(host, rest + 1, hlen - 2);
		host[hlen - 2] = '\0';
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s->addrlen = sizeof(*s6);
		return 0;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, rest, hlen);
	host[hlen] = '\0';
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)&s->addr;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s->addrlen = sizeof(*s4);
	}
	return 0;
bad:
	mw_error_set(error_r,
	             "expected builtin, spamd:IPv4:PORT, spamd:[IPv6]:PORT or "
	             "spamd:unix:/absolute/path (at most %d bytes)",
	             MW_SPAMD_SPEC_MAX);
	return -1;
}

/* mw_spamd_user_ok - a User: value we may send */
bool mw_spamd_user_ok(const char *user)
{
	size_t n = strlen(user);
	if (n > MW_SPAMD_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = user[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '@' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

/* mw_spamd_request_print - the SYMBOLS request head */
int mw_spamd_request_print(const char *user, size_t len, mw_str *out, mw_error *error_r)
{
	if (!mw_spamd_user_ok(user)) {
		mw_error_set(error_r,
		             "spamd user holds a byte outside [A-Za-z0-9._@+-] or is "
		             "longer than %d bytes",
		             MW_SPAMD_USER_MAX);
		return -1;
	}
	if (mw_str_appendf(out, "SYMBOLS SPAMC/1.5\r\nContent-length: %zu\r\n", len) < 0 ||
	    (user[0] != '\0' && mw_str_appendf(out, "User: %s\r\n", user) < 0) ||
	    mw_str_appends(out, "\r\n") < 0) {
		mw_error_set(error_r, "spamd request too long");
		return -1;
	}
	return 0;
}

/* next_line - the line at *pos (without CRLF): 0 found, 1 not complete yet, -1 malformed.
   A line is at most MW_SPAMD_LINE_MAX bytes with its CRLF. */
static int next_line(const char *buf, size_t len, size_t *pos, mw_slice *line_r, mw_error *error_r)
{
	for (size_t i = *pos; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (i - *pos + 2 > MW_SPAMD_LINE_MAX) {
			mw_error_set(error_r, "spamd: reply line longer than %d bytes",
			             MW_SPAMD_LINE_MAX);
			return -1;
		}
		if (c == '\r' && i + 1 == len)
			return 1;
		if (c == '\r' && buf[i + 1] == '\n') {
			line_r->ptr = buf + *pos;
			line_r->len = i - *pos;
			*pos = i + 2;
			return 0;
		}
		if (c < 0x20 || c > 0x7e) {
			mw_error_set(error_r, "spamd: reply line holds a control or non-ASCII byte "
			                      "(or a line end other than CRLF)");
			return -1;
		}
	}
	return 1;
}

/* digits - the run of decimal digits at p (at most MAX), its length */
static size_t digits(const char *p, const char *end, size_t max)
{
	size_t n = 0;
	while (p + n < end && n <= max && p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

/* parse_status - "SPAMD/1.1 0 EX_OK": -1 unless the code is 0 */
static int parse_status(mw_slice l, mw_error *error_r)
{
	const char *p = l.ptr, *end = l.ptr + l.len;
	size_t n;
	long code = 0;
	if (l.len < 6 || memcmp(p, "SPAMD/", 6) != 0)
		goto bad;
	p += 6;
	if ((n = digits(p, end, 3)) == 0 || n > 3)
		goto bad;
	p += n;
	if (p >= end || *p++ != '.' || (n = digits(p, end, 3)) == 0 || n > 3)
		goto bad;
	p += n;
	if (p >= end || *p++ != ' ' || (n = digits(p, end, 3)) == 0 || n > 3)
		goto bad;
	for (size_t i = 0; i < n; i++)
		code = code * 10 + (p[i] - '0');
	p += n;
	if (p < end && *p != ' ')
		goto bad;
	if (code != 0) {
		/* spamd's own words, printable (next_line checked) and short */
		const char *m = p < end ? p + 1 : end;
		int mlen = (int)(end - m > 60 ? 60 : end - m);
		mw_error_set(error_r, "spamd refused the request: status %ld %.*s", code, mlen, m);
		return -1;
	}
	return 0;
bad:
	mw_error_set(error_r, "spamd: not a SPAMD status line");
	return -1;
}

/* skip_blanks - past spaces and tabs */
static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* parse_score - "-12.345" at *pp into hundredths (rounded, clamped); -1 when not a decimal */
static int parse_score(const char **pp, const char *end, long *r)
{
	const char *p = *pp;
	bool neg = false;
	long whole = 0, frac = 0;
	size_t n, i;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	n = digits(p, end, 7);
	if (n == 0 || n > 7)
		return -1;
	for (i = 0; i < n; i++)
		whole = whole * 10 + (p[i] - '0');
	p += n;
	if (p < end && *p == '.') {
		p++;
		n = digits(p, end, 6);
		if (n == 0 || n > 6)
			return -1;
		/* hundredths, the third place rounds */
		for (i = 0; i < 3; i++)
			frac = frac * 10 + (i < n ? p[i] - '0' : 0);
		frac = (frac + 5) / 10;
		p += n;
	}
	whole = whole * 100 + frac;
	if (whole > MW_HDR_SCORE_MAX)
		whole = MW_HDR_SCORE_MAX;
	*r = neg ? -whole : whole;
	*pp = p;
	return 0;
}

/* parse_spam - "True ; 23.3 / 5.0" */
static int parse_spam(const char *p, const char *end, struct mw_spamd_result *r, mw_error *error_r)
{
	static const char *const words[] = {"True", "False", "Yes", "No"};
	size_t i, n = 0;
	while (p + n < end && p[n] != ' ' && p[n] != '\t' && p[n] != ';')
		n++;
	for (i = 0; i < MW_N_ELEMENTS(words); i++)
		if (strlen(words[i]) == n && mw_ascii_strncasecmp(p, words[i], n) == 0)
			break;
	if (i == MW_N_ELEMENTS(words))
		goto bad;
	r->spam = i == 0 || i == 2;
	p = skip_blanks(p + n, end);
	if (p >= end || *p++ != ';')
		goto bad;
	p = skip_blanks(p, end);
	if (parse_score(&p, end, &r->score) < 0)
		goto bad;
	p = skip_blanks(p, end);
	if (p >= end || *p++ != '/')
		goto bad;
	p = skip_blanks(p, end);
	if (parse_score(&p, end, &r->required) < 0)
		goto bad;
	if (skip_blanks(p, end) != end)
		goto bad;
	return 0;
bad:
	mw_error_set(error_r, "spamd: Spam header is not \"True|False ; SCORE / REQUIRED\"");
	return -1;
}

/* parse_tests - the SYMBOLS body: NAME,NAME... (a final CRLF allowed) */
static int parse_tests(const char *p, size_t len, struct mw_spamd_result *r, mw_error *error_r)
{
	size_t used = 0, i = 0;
	if (len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n')
		len -= 2;
	while (i < len) {
		size_t start = i;
		for (; i < len && p[i] != ','; i++) {
			char c = p[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '_')) {
				mw_error_set(error_r, "spamd: a test name holds a byte outside "
				                      "[A-Za-z0-9_]");
				return -1;
			}
		}
		if (i == start || i - start > MW_SPAMD_NAME_MAX || (i < len && i + 1 == len)) {
			mw_error_set(error_r, "spamd: empty test name or one longer than %d bytes",
			             MW_SPAMD_NAME_MAX);
			return -1;
		}
		r->ntests++;
		if (!r->tests_cut && used + (used > 0) + (i - start) <= MW_HDR_TESTS_MAX) {
			if (used > 0)
				r->tests[used++] = ',';
			memcpy(r->tests + used, p + start, i - start);
			used += i - start;
			r->tests[used] = '\0';
		} else
			r->tests_cut = true;
		if (i < len)
			i++; /* the comma */
	}
	return 0;
}

/* mw_spamd_reply_parse - a whole SYMBOLS reply, strictly */
int mw_spamd_reply_parse(const char *buf, size_t len, bool eof, struct mw_spamd_result *r,
                         mw_error *error_r)
{
	size_t pos = 0, nhdr = 0, clen = 0;
	bool seen_clen = false, seen_spam = false;
	mw_slice l;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = next_line(buf, len, &pos, &l, error_r)) != 0)
		goto notyet;
	if (parse_status(l, error_r) < 0)
		return -1;
	for (;;) {
		const char *p, *end, *colon;
		if ((rc = next_line(buf, len, &pos, &l, error_r)) != 0)
			goto notyet;
		if (l.len == 0)
			break;
		if (++nhdr > MW_SPAMD_HEADERS_MAX) {
			mw_error_set(error_r, "spamd: more than %d header lines",
			             MW_SPAMD_HEADERS_MAX);
			return -1;
		}
		end = l.ptr + l.len;
		colon = memchr(l.ptr, ':', l.len);
		if (colon == NULL || colon == l.ptr) {
			mw_error_set(error_r, "spamd: malformed header line");
			return -1;
		}
		for (p = l.ptr; p < colon; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '-')) {
				mw_error_set(error_r, "spamd: malformed header name");
				return -1;
			}
		p = skip_blanks(colon + 1, end);
		if (colon - l.ptr == 14 && mw_ascii_strncasecmp(l.ptr, "Content-length", 14) == 0) {
			size_t n = digits(p, end, 6);
			if (seen_clen || n == 0 || n > 6 || skip_blanks(p + n, end) != end) {
				mw_error_set(error_r,
				             "spamd: Content-length repeated or not a number");
				return -1;
			}
			for (size_t i = 0; i < n; i++)
				clen = clen * 10 + (size_t)(p[i] - '0');
			if (clen > MW_SPAMD_BODY_MAX) {
				mw_error_set(error_r, "spamd: reply body over %d bytes",
				             MW_SPAMD_BODY_MAX);
				return -1;
			}
			seen_clen = true;
		} else if (colon - l.ptr == 4 && mw_ascii_strncasecmp(l.ptr, "Spam", 4) == 0) {
			if (seen_spam) {
				mw_error_set(error_r, "spamd: Spam header repeated");
				return -1;
			}
			if (parse_spam(p, end, r, error_r) < 0)
				return -1;
			seen_spam = true;
		}
		/* other header lines are counted and otherwise ignored */
	}
	if (!seen_spam || !seen_clen) {
		mw_error_set(error_r, "spamd: reply without %s",
		             !seen_spam ? "a Spam header (not a SYMBOLS reply)" : "Content-length");
		return -1;
	}
	if (len - pos < clen) {
		rc = 1;
		goto notyet;
	}
	if (len - pos > clen) {
		mw_error_set(error_r, "spamd: data after the reply body");
		return -1;
	}
	return parse_tests(buf + pos, clen, r, error_r);
notyet:
	if (rc < 0)
		return -1;
	if (eof) {
		mw_error_set(error_r, "spamd: connection closed before the reply was complete");
		return -1;
	}
	return 1;
}

/* mw_spamd_cut - the length of MSG cut to at most MAX bytes at a line end */
size_t mw_spamd_cut(const char *msg, size_t len, size_t max)
{
	size_t i;
	if (len <= max)
		return len;
	for (i = max; i > 0; i--)
		if (msg[i - 1] == '\n')
			return i;
	return max;
}

/* wait_fd - poll FD for EVENTS until DEADLINE: 0 ready, -1 timed out or failed */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		long long left = deadline - (long long)mw_mono_ms();
		int r;
		if (left <= 0)
			return -1;
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* send_all - LEN bytes before DEADLINE; -1 on an error (errno) or a timeout (ETIMEDOUT) */
static int send_all(int fd, const char *p, size_t len, long long deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT, deadline) < 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			continue;
		}
		return -1;
	}
	return 0;
}

/* spamd_connect - a non-blocking socket connected to spamd before DEADLINE */
static int spamd_connect(const struct mw_spamd_settings *s, long long deadline, mw_error *error_r)
{
	int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
	socklen_t elen = sizeof(err);
	if (fd < 0) {
		mw_error_set(error_r, "spamd: socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&s->addr, s->addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		mw_error_set(error_r, "spamd %s: connect: %s", s->spec, strerror(errno));
		goto fail;
	}
	if (wait_fd(fd, POLLOUT, deadline) < 0) {
		mw_error_set(error_r, "spamd %s: connect timed out", s->spec);
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
		mw_error_set(error_r, "spamd %s: connect: %s", s->spec,
		             strerror(err != 0 ? err : errno));
		goto fail;
	}
	return fd;
fail:
	(void)close(fd);
	return -1;
}

/* mw_spamd_check - one message through spamd's SYMBOLS */
int mw_spamd_check(const struct mw_spamd_settings *s, const char *msg, size_t len,
                   struct mw_spamd_result *r, mw_error *error_r)
{
	long long deadline = (long long)mw_mono_ms() + (s->timeout_ms > 0 ? s->timeout_ms : 30000);
	char *buf = NULL;
	size_t got = 0;
	mw_str head;
	int fd, rc = -1, sent_errno = 0;

	memset(r, 0, sizeof(*r));
	mw_str_init(&head, 0);
	if (mw_spamd_request_print(s->user, len, &head, error_r) < 0) {
		mw_str_free(&head);
		return -1;
	}
	fd = spamd_connect(s, deadline, error_r);
	if (fd < 0) {
		mw_str_free(&head);
		return -1;
	}
	/* spamd may answer (refuse) and close while we still send: read the reply anyway */
	if (send_all(fd, head.buf, head.len, deadline) < 0 ||
	    send_all(fd, msg != NULL ? msg : "", len, deadline) < 0)
		sent_errno = errno;
	else
		(void)shutdown(fd, SHUT_WR);
	mw_str_free(&head);
	if (sent_errno == ETIMEDOUT) {
		mw_error_set(error_r, "spamd %s: not reading the message in time", s->spec);
		goto out;
	}
	buf = mw_malloc(REPLY_MAX);
	for (;;) {
		ssize_t n;
		int prc;
		if (got == REPLY_MAX) {
			mw_error_set(error_r, "spamd: reply longer than %d bytes", REPLY_MAX);
			goto out;
		}
		n = recv(fd, buf + got, REPLY_MAX - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLIN, deadline) < 0) {
				mw_error_set(error_r, "spamd %s: no complete reply in time",
				             s->spec);
				goto out;
			}
			continue;
		}
		if (n < 0) {
			mw_error_set(error_r, "spamd %s: %s", s->spec, strerror(errno));
			goto out;
		}
		got += (size_t)n;
		if (n == 0 && got == 0) {
			mw_error_set(error_r, "spamd %s: connection closed without a reply%s%s",
			             s->spec, sent_errno != 0 ? " while sending: " : "",
			             sent_errno != 0 ? strerror(sent_errno) : "");
			goto out;
		}
		prc = mw_spamd_reply_parse(buf, got, n == 0, r, error_r);
		if (prc < 0)
			goto out;
		if (prc == 0)
			break;
	}
	if (sent_errno != 0) {
		/* a complete reply to a message spamd did not read whole is not its verdict */
		mw_error_set(error_r, "spamd %s: sending the message failed: %s", s->spec,
		             strerror(sent_errno));
		goto out;
	}
	rc = 0;
out:
	free(buf);
	(void)close(fd);
	if (rc < 0)
		memset(r, 0, sizeof(*r));
	return rc;
}
