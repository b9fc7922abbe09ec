/*
 * ctl-api.c - mailwardenctl --api URL: the commands with API routes, over mailwarden-api:
 * user, allow-from, tag-rule, dkim (but import: the private key stays where the store is),
 * ratelimit status|reset (users only) and ratelimit policy. init, config, training list and
 * dkim import have no route and are refused (exit 2) with a message naming the command.
 *
 * Instead of opening the store, each command becomes one or a few HTTP requests to the API
 * (through the nginx in front of it), with the same arguments, output, messages and exit
 * codes as the store mode; the API checks the caller's role and writes the audit log (actor
 * "api:USER" of the token's session). URL: http://HOST[:PORT][/PREFIX] or unix:/PATH (HTTP
 * over a unix socket, e.g. an nginx listening on one); HTTPS is not spoken here: use the API
 * over loopback or a unix socket. The session token comes from the environment variable
 * MAILWARDEN_TOKEN or from --token-file FILE (its first line; the file must not be readable
 * by others), never from the command line.
 *
 * The HTTP/1.1 client is deliberately small: one request per connection (Connection: close),
 * Content-Length, chunked or read-to-close bodies, and strict limits: CTL_API_HEAD_MAX bytes
 * of status line and headers, CTL_API_BODY_MAX bytes of body, CTL_API_TIMEOUT_MS for the
 * whole exchange; anything over a limit or malformed is an error, never truncated.
 *
 * Differences from the store mode: `user list --json` and `user show --json` carry no "id"
 * (the API does not expose row ids); `user passwd` of the token's own user needs the current
 * password, which this client does not send (the API answers 422). `tag-rule list` shows
 * only the rules the plugin applies (the API does not list invalid ones). `dkim del` of a
 * domain's active key is refused by the API (exit 1). `ratelimit status|reset` take a user
 * known to the store (an IP address: exit 2; an unknown user: exit 3) and need the API to
 * run as mailwarden-policyd's user; the output is rebuilt from the API's JSON in the
 * daemon's words. `dkim generate` asks for "activate": the new key is active, as in the
 * store mode; the TXT records are made here from the public keys, as the store mode does.
 *
 * Public: ctl_api_run.
 * Diagnostics: "mailwardenctl: ..." on stderr; "api: ..." for what the API answered.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-dkim-sign.h"
#include "mw-password.h"
#include "mw-pattern.h"
#include "mw-tagrule.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_API_URL_MAX    1024
#define CTL_API_TOKEN_MAX  512
#define CTL_API_HEAD_MAX   (16 * 1024)
#define CTL_API_BODY_MAX   (8 * 1024 * 1024)
#define CTL_API_TIMEOUT_MS 30000
#define CTL_API_PAGE       1000

struct api_target {
	bool unix_socket;
	char host[256];   /* host name or address (no brackets) */
	char port[8];     /* decimal */
	char path[108];   /* unix socket path */
	char prefix[512]; /* path before /api/v1, no trailing '/' */
	char token[CTL_API_TOKEN_MAX + 1];
};

struct api_answer {
	int status;
	json_t *json; /* the body when it is JSON, else NULL */
};

/* ---- the HTTP client ------------------------------------------------------------------ */

/* mono_ms - a monotonic clock in milliseconds */
static int64_t mono_ms(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* parse_url - http://HOST[:PORT][/PREFIX] or unix:/PATH into t */
static int parse_url(const char *url, struct api_target *t)
{
	const char *p, *end, *colon;
	size_t len;
	if (strlen(url) > CTL_API_URL_MAX) {
		ctl_err("--api: the URL is longer than %d bytes", CTL_API_URL_MAX);
		return -1;
	}
	if (strncmp(url, "unix:", 5) == 0) {
		t->unix_socket = true;
		if (url[5] != '/' || mw_strlcpy(t->path, url + 5, sizeof(t->path)) < 0) {
			ctl_err("--api %s: expected unix:/absolute/path (at most %zu bytes)", url,
			        sizeof(t->path) - 1);
			return -1;
		}
		(void)mw_strlcpy(t->host, "localhost", sizeof(t->host));
		return 0;
	}
	if (strncmp(url, "https://", 8) == 0) {
		ctl_err("--api %s: https is not spoken by mailwardenctl; use the API over loopback "
		        "(http://127.0.0.1:PORT) or a unix socket (unix:/PATH)",
		        url);
		return -1;
	}
	if (strncmp(url, "http://", 7) != 0) {
		ctl_err("--api %s: expected http://HOST[:PORT][/PREFIX] or unix:/PATH", url);
		return -1;
	}
	p = url + 7;
	end = p + strcspn(p, "/?#");
	if (*end == '?' || *end == '#' || strchr(p, '@') != NULL) {
		ctl_err("--api %s: no user info, query or fragment in the URL", url);
		return -1;
	}
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL) {
			ctl_err("--api %s: unclosed [", url);
			return -1;
		}
		len = (size_t)(rb - p - 1);
		colon = rb[1] == ':' ? rb + 1 : NULL;
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		len = (size_t)((colon != NULL ? colon : end) - p);
	}
	if (len == 0 || len >= sizeof(t->host)) {
		ctl_err("--api %s: no host (or too long)", url);
		return -1;
	}
	memcpy(t->host, p, len);
	t->host[len] = '\0';
	if (colon != NULL) {
		size_t plen = (size_t)(end - colon - 1), i;
		if (plen == 0 || plen > 5) {
			ctl_err("--api %s: bad port", url);
			return -1;
		}
		for (i = 0; i < plen; i++)
			if (colon[1 + i] < '0' || colon[1 + i] > '9') {
				ctl_err("--api %s: bad port", url);
				return -1;
			}
		memcpy(t->port, colon + 1, plen);
		t->port[plen] = '\0';
		if (atoi(t->port) < 1 || atoi(t->port) > 65535) {
			ctl_err("--api %s: bad port", url);
			return -1;
		}
	} else
		(void)mw_strlcpy(t->port, "80", sizeof(t->port));
	len = strlen(end);
	while (len > 0 && end[len - 1] == '/')
		len--;
	if (len >= sizeof(t->prefix)) {
		ctl_err("--api %s: path too long", url);
		return -1;
	}
	memcpy(t->prefix, end, len);
	t->prefix[len] = '\0';
	for (p = t->prefix; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			ctl_err("--api %s: the path must be printable ASCII", url);
			return -1;
		}
	return 0;
}

/* read_token - MAILWARDEN_TOKEN, or the first line of token_file */
static int read_token(const char *token_file, struct api_target *t)
{
	const char *env = getenv("MAILWARDEN_TOKEN");
	char buf[CTL_API_TOKEN_MAX + 2];
	size_t i, len;
	if (token_file != NULL) {
		struct stat st;
		ssize_t n;
		int fd = open(token_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) < 0) {
			ctl_err("--token-file %s: %s", token_file, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (!S_ISREG(st.st_mode) || (st.st_mode & 0007) != 0) {
			close(fd);
			ctl_err("--token-file %s: must be a regular file not readable by others "
			        "(chmod o-rwx)",
			        token_file);
			return -1;
		}
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n < 0) {
			ctl_err("--token-file %s: %s", token_file, strerror(errno));
			return -1;
		}
		buf[n] = '\0';
		len = strcspn(buf, "\r\n");
		if (len > CTL_API_TOKEN_MAX) {
			ctl_err("--token-file %s: the token is longer than %d bytes", token_file,
			        CTL_API_TOKEN_MAX);
			return -1;
		}
		buf[len] = '\0';
	} else if (env != NULL) {
		if (mw_strlcpy(buf, env, sizeof(buf)) < 0 || strlen(env) > CTL_API_TOKEN_MAX) {
			ctl_err("MAILWARDEN_TOKEN is longer than %d bytes", CTL_API_TOKEN_MAX);
			return -1;
		}
	} else {
		ctl_err(
		    "--api needs a session token: set MAILWARDEN_TOKEN or give --token-file FILE "
		    "(from POST /api/v1/sessions)");
		return -1;
	}
	len = strlen(buf);
	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
			break;
	if (len == 0 || i < len) {
		mw_memzero(buf, sizeof(buf));
		ctl_err("the session token is empty or not printable ASCII");
		return -1;
	}
	(void)mw_strlcpy(t->token, buf, sizeof(t->token));
	mw_memzero(buf, sizeof(buf));
	return 0;
}

/* connect_target - a connected, non-blocking socket to t (-1 after a message) */
static int connect_target(const struct api_target *t, int64_t deadline)
{
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, rc, saved = 0;
	if (t->unix_socket) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		(void)mw_strlcpy(sun.sun_path, t->path, sizeof(sun.sun_path));
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			ctl_err("api unix:%s: %s", t->path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		return fd;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(t->host, t->port, &hints, &res);
	if (rc != 0) {
		ctl_err("api %s: %s", t->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pfd;
		int err = 0;
		socklen_t elen = sizeof(err);
		int64_t left = deadline - mono_ms();
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS && left > 0) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, (int)left) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
				break;
			saved = err != 0 ? err : ETIMEDOUT;
		} else
			saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		ctl_err("api %s port %s: %s", t->host, t->port, strerror(saved));
	return fd;
}

/* send_all - write all of buf before the deadline */
static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		struct pollfd pfd = {fd, POLLOUT, 0};
		int64_t left = deadline - mono_ms();
		ssize_t n;
		if (left <= 0 || poll(&pfd, 1, (int)left) != 1)
			return -1;
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* recv_all - read until the peer closes (bounded by max and the deadline) */
static int recv_all(int fd, mw_str *out, int64_t deadline)
{
	for (;;) {
		char buf[16384];
		struct pollfd pfd = {fd, POLLIN, 0};
		int64_t left = deadline - mono_ms();
		ssize_t n;
		if (left <= 0 || poll(&pfd, 1, (int)left) != 1) {
			ctl_err("api: no complete answer within %d s", CTL_API_TIMEOUT_MS / 1000);
			return -1;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			ctl_err("api: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		if (mw_str_append(out, buf, (size_t)n) < 0) {
			ctl_err("api: the answer is larger than %d bytes",
			        CTL_API_HEAD_MAX + CTL_API_BODY_MAX);
			return -1;
		}
	}
}

/* header_value - the value of header name in head (lines after the status line), or NULL;
   sets *len_r */
static const char *header_value(const char *head, size_t headlen, const char *name, size_t *len_r)
{
	const char *p = memchr(head, '\n', headlen), *end = head + headlen;
	size_t nlen = strlen(name);
	while (p != NULL && p + 1 < end) {
		const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
		    mw_ascii_strncasecmp(line, name, nlen) == 0) {
			const char *v = line + nlen + 1, *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*len_r = (size_t)(ve - v);
			return v;
		}
		p = eol < end ? eol : NULL;
	}
	return NULL;
}

/* dechunk - decode a chunked body in place; -1 when malformed */
static int dechunk(char *body, size_t len, size_t *len_r)
{
	size_t in = 0, out = 0;
	for (;;) {
		size_t size = 0, digits = 0;
		while (in < len && body[in] != '\r' && body[in] != ';') {
			char c = body[in++];
			int v = c >= '0' && c <= '9'   ? c - '0'
			        : c >= 'a' && c <= 'f' ? c - 'a' + 10
			        : c >= 'A' && c <= 'F' ? c - 'A' + 10
			                               : -1;
			if (v < 0 || ++digits > 7)
				return -1;
			size = size * 16 + (size_t)v;
		}
		while (in < len && body[in] != '\n')
			in++;
		if (digits == 0 || in >= len)
			return -1;
		in++;
		if (size == 0)
			break;
		if (size > len - in || len - in - size < 2 || body[in + size] != '\r' ||
		    body[in + size + 1] != '\n')
			return -1;
		memmove(body + out, body + in, size);
		out += size;
		in += size + 2;
	}
	*len_r = out;
	return 0;
}

/* url_escape - append s percent-encoded as one path segment */
static void url_escape(mw_str *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || c == '@')
			(void)mw_str_appendc(out, (char)c);
		else {
			(void)mw_str_appendc(out, '%');
			(void)mw_str_appendc(out, hex[c >> 4]);
			(void)mw_str_appendc(out, hex[c & 15]);
		}
	}
}

/* api_request - one exchange: METHOD PATH (below PREFIX) with an optional JSON body (freed
   here); fills a; -1 (after a message) when no HTTP answer was had */
static int api_request(const struct api_target *t, const char *method, const char *path,
                       json_t *body, struct api_answer *a)
{
	int64_t deadline = mono_ms() + CTL_API_TIMEOUT_MS;
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *sep, *v;
	mw_str req, resp;
	size_t headlen, blen, vlen;
	int fd, ret = -1;
	json_decref(body);
	a->status = 0;
	a->json = NULL;
	mw_str_init(&req, 0);
	mw_str_init(&resp, CTL_API_HEAD_MAX + CTL_API_BODY_MAX);
	(void)mw_str_appendf(&req, "%s %s%s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n", method, t->prefix,
	                     path, strchr(t->host, ':') != NULL ? "[" : "", t->host,
	                     strchr(t->host, ':') != NULL ? "]" : "",
	                     t->unix_socket || strcmp(t->port, "80") == 0 ? "" : ":",
	                     t->unix_socket || strcmp(t->port, "80") == 0 ? "" : t->port);
	(void)mw_str_appendf(&req,
	                     "Authorization: Bearer %s\r\nUser-Agent: mailwardenctl/%s\r\n"
	                     "Accept: application/json\r\nConnection: close\r\n",
	                     t->token, PACKAGE_VERSION);
	if (text != NULL)
		(void)mw_str_appendf(&req,
		                     "Content-Type: application/json\r\nContent-Length: %zu"
		                     "\r\n\r\n%s",
		                     strlen(text), text);
	else
		(void)mw_str_appends(&req, "\r\n");
	if (text != NULL) {
		mw_memzero(text, strlen(text)); /* may hold a password */
		free(text);
	}
	fd = connect_target(t, deadline);
	if (fd < 0)
		goto out;
	if (send_all(fd, req.buf, req.len, deadline) < 0) {
		ctl_err("api: cannot send the request");
		goto out;
	}
	if (recv_all(fd, &resp, deadline) < 0)
		goto out;
	sep = resp.len > 0 ? strstr(resp.buf, "\r\n\r\n") : NULL;
	if (sep == NULL || (headlen = (size_t)(sep - resp.buf)) > CTL_API_HEAD_MAX ||
	    strncmp(resp.buf, "HTTP/1.", 7) != 0 || resp.len < 12 || resp.buf[8] != ' ' ||
	    resp.buf[9] < '1' || resp.buf[9] > '5' || resp.buf[10] < '0' || resp.buf[10] > '9' ||
	    resp.buf[11] < '0' || resp.buf[11] > '9') {
		ctl_err("api: the answer is not HTTP (or its head is over %d bytes)",
		        CTL_API_HEAD_MAX);
		goto out;
	}
	a->status = (resp.buf[9] - '0') * 100 + (resp.buf[10] - '0') * 10 + (resp.buf[11] - '0');
	blen = resp.len - headlen - 4;
	if (blen > CTL_API_BODY_MAX) {
		ctl_err("api: the body is over %d bytes", CTL_API_BODY_MAX);
		goto out;
	}
	v = header_value(resp.buf, headlen, "Transfer-Encoding", &vlen);
	if (v != NULL) {
		if (vlen != 7 || mw_ascii_strncasecmp(v, "chunked", 7) != 0 ||
		    dechunk(resp.buf + headlen + 4, blen, &blen) < 0) {
			ctl_err("api: a malformed chunked body");
			goto out;
		}
	} else if ((v = header_value(resp.buf, headlen, "Content-Length", &vlen)) != NULL) {
		char num[24];
		char *end;
		unsigned long long cl;
		if (vlen == 0 || vlen >= sizeof(num))
			goto badlen;
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		errno = 0;
		cl = strtoull(num, &end, 10);
		if (errno != 0 || *end != '\0' || num[0] < '0' || num[0] > '9' || cl > blen) {
		badlen:
			ctl_err("api: a bad Content-Length or a body cut short");
			goto out;
		}
		blen = (size_t)cl;
	}
	if (blen > 0) {
		json_error_t jerr;
		a->json = json_loadb(resp.buf + headlen + 4, blen, JSON_REJECT_DUPLICATES, &jerr);
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (req.buf != NULL)
		mw_memzero(req.buf, req.cap);
	if (resp.buf != NULL)
		mw_memzero(resp.buf, resp.cap);
	mw_str_free(&req);
	mw_str_free(&resp);
	return ret;
}

/* ---- answers as exit codes --------------------------------------------------------------- */

/* answer_message - error.message of an error answer ("" when none) */
static const char *answer_message(const struct api_answer *a)
{
	const char *m =
	    json_string_value(json_object_get(json_object_get(a->json, "error"), "message"));
	return m != NULL ? m : "";
}

/* answer_exit - the exit code of a failed answer, with the store mode's message for 404
   and 409 (what names the object) */
static int answer_exit(const struct api_answer *a, const char *what)
{
	switch (a->status) {
	case 404:
		ctl_err("%s: not found", what);
		return EXIT_NOTFOUND;
	case 409:
		ctl_err("%s: already exists", what);
		return EXIT_EXISTS;
	case 400:
	case 413:
	case 415:
	case 422:
		ctl_err("api: %s", answer_message(a));
		return EXIT_USAGE;
	case 401:
		ctl_err("api: not authenticated (%s): the token is missing, expired or revoked",
		        answer_message(a));
		return EXIT_ERROR;
	case 403:
		ctl_err("api: refused (%s)", answer_message(a));
		return EXIT_ERROR;
	default:
		ctl_err("api: HTTP %d%s%s", a->status, a->json != NULL ? ": " : "",
		        answer_message(a));
		return EXIT_ERROR;
	}
}

/* call - one request; EXIT_OK when the status is want, else the mapped exit code */
static int call(const struct api_target *t, const char *method, const char *path, json_t *body,
                int want, const char *what, struct api_answer *a)
{
	if (api_request(t, method, path, body, a) < 0)
		return EXIT_ERROR;
	if (a->status == want)
		return EXIT_OK;
	return answer_exit(a, what);
}

/* user_path - "/api/v1/users/USER" + tail into out */
static void user_path(mw_str *out, const char *username, const char *tail)
{
	mw_str_init(out, 0);
	(void)mw_str_appends(out, "/api/v1/users/");
	url_escape(out, username);
	(void)mw_str_appends(out, tail);
}

/* ---- users ------------------------------------------------------------------------------ */

/* jstr - a string member ("" when absent) */
static const char *jstr(json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s != NULL ? s : "";
}

/* jtime - a unix-seconds member formatted as ctl_time does */
static const char *jtime(json_t *o, const char *name, char *buf, size_t size)
{
	return ctl_time((int64_t)json_integer_value(json_object_get(o, name)), buf, size);
}

/* user_json - the API's user as the store mode prints it in JSON (no id) */
static json_t *user_json(json_t *u)
{
	char t1[32], t2[32], t3[32], t4[32];
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "username",
	                      jstr(u, "username"), "status", jstr(u, "status"), "role",
	                      jstr(u, "role"), "description", jstr(u, "description"), "created_at",
	                      jtime(u, "created_at", t1, sizeof(t1)), "updated_at",
	                      jtime(u, "updated_at", t2, sizeof(t2)), "password_changed_at",
	                      jtime(u, "password_changed_at", t3, sizeof(t3)), "failed_logins",
	                      (int)json_integer_value(json_object_get(u, "failed_logins")),
	                      "locked_until", jtime(u, "locked_until", t4, sizeof(t4)));
	if (json_is_boolean(json_object_get(u, "totp")))
		json_object_set(o, "totp", json_object_get(u, "totp"));
	return o;
}

/* api_user_add - user add */
static int api_user_add(struct mw_ctl *ctl, const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	struct api_answer a;
	enum mw_user_role role = MW_ROLE_USER;
	enum mw_user_status status = MW_USER_ACTIVE;
	json_t *body;
	int first, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_ROLE, OPT_STATUS, OPT_DESCRIPTION,
	         OPT_PASSWORD_STDIN, OPT_GENERATE);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	if (o.role != NULL && mw_user_role_parse(o.role, &role) < 0) {
		ctl_err("--role: expected admin or user, not \"%s\"", o.role);
		return EXIT_USAGE;
	}
	if (o.status != NULL && mw_user_status_parse(o.status, &status) < 0) {
		ctl_err("--status: expected active, pending or disabled, not \"%s\"", o.status);
		return EXIT_USAGE;
	}
	if (o.description != NULL && strlen(o.description) > MW_DESCRIPTION_MAX) {
		ctl_err("--description: longer than %d bytes", MW_DESCRIPTION_MAX);
		return EXIT_USAGE;
	}
	body = json_pack("{s:s,s:s,s:s,s:s,s:[]}", "username", username, "role",
	                 mw_user_role_name(role), "status", mw_user_status_name(status),
	                 "description", o.description != NULL ? o.description : "", "allowed_from");
	if (o.pw != PW_GENERATE) {
		ret = ctl_get_password(ctl, o.pw, password, sizeof(password));
		if (ret != EXIT_OK) {
			mw_memzero(password, sizeof(password));
			json_decref(body);
			return ret;
		}
		json_object_set_new(body, "password", json_string(password));
		mw_memzero(password, sizeof(password));
	}
	ret = call(t, "POST", "/api/v1/users", body, 201, username, &a);
	if (ret == EXIT_OK) {
		if (o.pw == PW_GENERATE)
			printf("%s\n", jstr(a.json, "password"));
		fprintf(stderr, "user %s added (%s, %s)\n", username, mw_user_role_name(role),
		        mw_user_status_name(status));
	}
	json_decref(a.json);
	return ret;
}

/* api_user_passwd - user passwd */
static int api_user_passwd(struct mw_ctl *ctl, const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	struct api_answer a;
	json_t *body = json_object();
	mw_str path;
	int first, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_PASSWORD_STDIN, OPT_GENERATE);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK) {
		json_decref(body);
		return EXIT_USAGE;
	}
	/* fail on an unknown user before asking for a password */
	user_path(&path, username, "");
	ret = call(t, "GET", mw_str_c(&path), NULL, 200, username, &a);
	json_decref(a.json);
	if (ret == EXIT_OK && o.pw != PW_GENERATE) {
		ret = ctl_get_password(ctl, o.pw, password, sizeof(password));
		if (ret == EXIT_OK)
			json_object_set_new(body, "password", json_string(password));
		mw_memzero(password, sizeof(password));
	}
	if (ret != EXIT_OK) {
		json_decref(body);
		mw_str_free(&path);
		return ret;
	}
	(void)mw_str_appends(&path, "/password");
	ret = call(t, "POST", mw_str_c(&path), body, 200, username, &a);
	if (ret == EXIT_OK) {
		json_t *sv = json_object_get(a.json, "sessions_revoked");
		json_t *av = json_object_get(a.json, "app_passwords_revoked");
		if (o.pw == PW_GENERATE)
			printf("%s\n", jstr(a.json, "password"));
		fprintf(stderr, "user %s: password changed (%lld sessions ended, %lld app passwords "
		        "deleted)\n", username, (long long)json_integer_value(sv),
		        (long long)json_integer_value(av));
	}
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* api_user_status - user enable / disable */
static int api_user_status(const struct api_target *t, int argc, char **argv,
                           enum mw_user_status status)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	struct api_answer a;
	mw_str path;
	int first, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	user_path(&path, username, "");
	ret = call(t, "PATCH", mw_str_c(&path),
	           json_pack("{s:s}", "status", mw_user_status_name(status)), 200, username, &a);
	if (ret == EXIT_OK)
		fprintf(stderr, "user %s: %s\n", username, mw_user_status_name(status));
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* api_user_del - user del --yes */
static int api_user_del(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	struct api_answer a;
	mw_str path;
	int first, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_YES);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (!o.yes) {
		ctl_err("user del deletes the user, their patterns and sessions: add --yes");
		return EXIT_USAGE;
	}
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	user_path(&path, username, "");
	ret = call(t, "DELETE", mw_str_c(&path), NULL, 204, username, &a);
	if (ret == EXIT_OK)
		fprintf(stderr, "user %s deleted\n", username);
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* api_user_list - user list, page by page */
static int api_user_list(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	enum mw_user_role r;
	enum mw_user_status s;
	json_t *out = NULL;
	long long after, left;
	int first, ret = EXIT_OK;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON, OPT_ROLE, OPT_STATUS, OPT_LIMIT,
	         OPT_AFTER);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;
	if (o.role != NULL && mw_user_role_parse(o.role, &r) < 0) {
		ctl_err("--role: expected admin or user, not \"%s\"", o.role);
		return EXIT_USAGE;
	}
	if (o.status != NULL && mw_user_status_parse(o.status, &s) < 0) {
		ctl_err("--status: expected active, pending or disabled, not \"%s\"", o.status);
		return EXIT_USAGE;
	}
	after = o.after;
	left = o.limit; /* 0: all */
	if (o.json)
		out = json_array();
	else
		printf("%-40s %-9s %-6s %s\n", "USERNAME", "STATUS", "ROLE", "CREATED");
	for (;;) {
		long long page = left > 0 && left < CTL_API_PAGE ? left : CTL_API_PAGE;
		struct api_answer a;
		mw_str path;
		json_t *users, *u, *next;
		size_t i;
		mw_str_init(&path, 0);
		(void)mw_str_appendf(&path, "/api/v1/users?after=%lld&limit=%lld%s%s%s%s", after,
		                     page, o.role != NULL ? "&role=" : "",
		                     o.role != NULL ? mw_user_role_name(r) : "",
		                     o.status != NULL ? "&status=" : "",
		                     o.status != NULL ? mw_user_status_name(s) : "");
		ret = call(t, "GET", mw_str_c(&path), NULL, 200, "user list", &a);
		mw_str_free(&path);
		users = json_object_get(a.json, "users");
		if (ret == EXIT_OK && !json_is_array(users)) {
			ctl_err("api: the answer has no user list");
			ret = EXIT_ERROR;
		}
		if (ret != EXIT_OK) {
			json_decref(a.json);
			break;
		}
		json_array_foreach(users, i, u)
		{
			char tb[32];
			if (out != NULL)
				json_array_append_new(out, user_json(u));
			else
				printf("%-40s %-9s %-6s %s\n", jstr(u, "username"),
				       jstr(u, "status"), jstr(u, "role"),
				       jtime(u, "created_at", tb, sizeof(tb)));
		}
		if (left > 0)
			left -= (long long)json_array_size(users);
		next = json_object_get(a.json, "next_after");
		after = json_is_integer(next) ? (long long)json_integer_value(next) : -1;
		json_decref(a.json);
		if (after < 0 || (o.limit > 0 && left <= 0))
			break;
	}
	if (out != NULL) {
		if (ret == EXIT_OK)
			ctl_json_print(out);
		else
			json_decref(out);
	}
	return ret;
}

/* api_user_show - user show */
static int api_user_show(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1], tb[32];
	struct api_answer a;
	json_t *u, *pats, *p, *totp;
	mw_str path;
	size_t i, n;
	int first, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	user_path(&path, username, "");
	ret = call(t, "GET", mw_str_c(&path), NULL, 200, username, &a);
	mw_str_free(&path);
	if (ret != EXIT_OK) {
		json_decref(a.json);
		return ret;
	}
	u = a.json;
	pats = json_object_get(u, "allowed_from");
	n = json_array_size(pats);
	if (o.json) {
		json_t *obj = user_json(u), *arr = json_array();
		json_array_foreach(pats, i, p) json_array_append(arr, p);
		json_object_set_new(obj, "allowed_from", arr);
		ctl_json_print(obj);
		json_decref(a.json);
		return EXIT_OK;
	}
	totp = json_object_get(u, "totp");
	printf("username:            %s\n", jstr(u, "username"));
	printf("status:              %s\n", jstr(u, "status"));
	printf("role:                %s\n", jstr(u, "role"));
	printf("description:         %s\n", jstr(u, "description"));
	printf("created:             %s\n", jtime(u, "created_at", tb, sizeof(tb)));
	printf("updated:             %s\n", jtime(u, "updated_at", tb, sizeof(tb)));
	printf("password changed:    %s\n", jtime(u, "password_changed_at", tb, sizeof(tb)));
	printf("two-factor (TOTP):   %s\n", !json_is_boolean(totp) ? "(not reported by the API)"
	                                    : json_is_true(totp)   ? "enabled"
	                                                           : "off");
	printf("failed logins:       %d\n",
	       (int)json_integer_value(json_object_get(u, "failed_logins")));
	printf("locked until:        %s\n", jtime(u, "locked_until", tb, sizeof(tb)));
	printf("allowed from:        %s\n",
	       n == 0 ? "(none: may not send)" : json_string_value(json_array_get(pats, 0)));
	for (i = 1; i < n; i++)
		printf("                     %s\n", json_string_value(json_array_get(pats, i)));
	json_decref(a.json);
	return EXIT_OK;
}

/* ---- allow-from ------------------------------------------------------------------------- */

/* api_af_change - allow-from add / del: every pattern checked first, then one request each */
static int api_af_change(const struct api_target *t, int argc, char **argv, bool add)
{
	struct ctl_opts o;
	mw_error err = {""};
	char username[MW_USERNAME_MAX + 1], canon[MW_PATTERN_MAX + 1];
	char what[MW_USERNAME_MAX + MW_PATTERN_MAX + 32];
	int first, i, ret, worst = EXIT_OK;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 2, -1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	for (i = first + 1; i < argc; i++)
		if (mw_pattern_normalize(argv[i], canon, sizeof(canon), &err) < 0) {
			ctl_err("invalid pattern \"%s\": %s", argv[i], err.msg);
			return EXIT_USAGE;
		}
	for (i = first + 1; i < argc; i++) {
		struct api_answer a;
		mw_str path;
		(void)mw_pattern_normalize(argv[i], canon, sizeof(canon), NULL);
		user_path(&path, username, "/allowed-from");
		if (!add) {
			(void)mw_str_appendc(&path, '/');
			url_escape(&path, canon);
		}
		if (api_request(t, add ? "POST" : "DELETE", mw_str_c(&path),
		                add ? json_pack("{s:s}", "pattern", canon) : NULL, &a) < 0)
			ret = EXIT_ERROR;
		else if (a.status == (add ? 201 : 204))
			ret = EXIT_OK;
		else {
			(void)snprintf(what, sizeof(what), "%s: pattern %s", username, canon);
			if (a.status == 404 && strncmp(answer_message(&a), "no such user", 12) == 0)
				(void)snprintf(what, sizeof(what), "user %s", username);
			ret = answer_exit(&a, what);
		}
		json_decref(a.json);
		mw_str_free(&path);
		if (ret != EXIT_OK) {
			if (ret == EXIT_ERROR || worst == EXIT_OK)
				worst = ret;
			continue;
		}
		fprintf(stderr, "%s: %s %s\n", username, add ? "added" : "removed", canon);
	}
	return worst;
}

/* api_af_list - allow-from list */
static int api_af_list(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	struct api_answer a;
	json_t *pats, *p;
	mw_str path;
	size_t i;
	int first, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	user_path(&path, username, "/allowed-from");
	ret = call(t, "GET", mw_str_c(&path), NULL, 200, username, &a);
	mw_str_free(&path);
	if (ret != EXIT_OK) {
		json_decref(a.json);
		return ret;
	}
	pats = json_object_get(a.json, "patterns");
	if (o.json) {
		json_t *arr = json_array();
		json_array_foreach(pats, i, p) json_array_append(arr, p);
		ctl_json_print(arr);
	} else
		json_array_foreach(pats, i, p) printf("%s\n", json_string_value(p));
	json_decref(a.json);
	return EXIT_OK;
}

/* ---- tag rules -------------------------------------------------------------------------- */

/* api_tr_add - tag-rule add: the store mode's checks, then POST .../tag-rules */
static int api_tr_add(const struct api_target *t, int argc, char **argv)
{
	struct mw_tag_rule rule;
	char username[MW_USERNAME_MAX + 1], what[MW_USERNAME_MAX + 16];
	struct api_answer a;
	json_t *body;
	mw_str path;
	int ret;

	ret = ctl_tagrule_parse_add(argc, argv, username, sizeof(username), &rule);
	if (ret != EXIT_OK)
		return ret < 0 ? EXIT_OK : ret;
	body = json_pack("{s:s,s:s,s:s,s:b}", "field", rule.field, "match",
	                 mw_tagrule_match_name(rule.match), "value", rule.value, "enabled",
	                 rule.enabled);
	if (rule.keyword != NULL)
		json_object_set_new(body, "keyword", json_string(rule.keyword));
	if (rule.mailbox != NULL)
		json_object_set_new(body, "mailbox", json_string(rule.mailbox));
	user_path(&path, username, "/tag-rules");
	if (api_request(t, "POST", mw_str_c(&path), body, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 201) {
		printf("%lld\n", (long long)json_integer_value(json_object_get(a.json, "id")));
		ret = EXIT_OK;
	} else if (a.status == 409) {
		/* the store's "at most N rules" refusal, as the store mode words it */
		ctl_err("tag rule: %s", answer_message(&a));
		ret = EXIT_ERROR;
	} else {
		(void)snprintf(what, sizeof(what), "%s", username);
		ret = answer_exit(&a, what);
	}
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* jstr_or - a string member, or dflt when absent or null */
static const char *jstr_or(json_t *o, const char *name, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s != NULL ? s : dflt;
}

/* api_tr_list - tag-rule list (the API lists the rules the plugin applies: all valid) */
static int api_tr_list(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	struct api_answer a;
	json_t *rules, *r, *arr = NULL;
	mw_str path;
	size_t i;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	user_path(&path, username, "/tag-rules");
	ret = call(t, "GET", mw_str_c(&path), NULL, 200, username, &a);
	mw_str_free(&path);
	rules = json_object_get(a.json, "rules");
	if (ret == EXIT_OK && !json_is_array(rules)) {
		ctl_err("api: the answer has no rule list");
		ret = EXIT_ERROR;
	}
	if (ret != EXIT_OK) {
		json_decref(a.json);
		return ret;
	}
	if (o.json)
		arr = json_array();
	json_array_foreach(rules, i, r)
	{
		json_int_t id = json_integer_value(json_object_get(r, "id"));
		bool enabled = json_is_true(json_object_get(r, "enabled"));
		if (arr != NULL) {
			json_array_append_new(
			    arr, json_pack("{s:I, s:I, s:s?, s:s?, s:s?, s:s?, s:s?, s:b, s:b}",
			                   "id", id, "position",
			                   json_integer_value(json_object_get(r, "position")),
			                   "field", jstr_or(r, "field", NULL), "match",
			                   jstr_or(r, "match", NULL), "value",
			                   jstr_or(r, "value", NULL), "keyword",
			                   jstr_or(r, "keyword", NULL), "mailbox",
			                   jstr_or(r, "mailbox", NULL), "enabled", enabled, "valid",
			                   true));
			continue;
		}
		printf("%lld\t%s\t%s\t%s\tkeyword=%s\tmailbox=%s%s\n", (long long)id,
		       jstr_or(r, "field", "?"), jstr_or(r, "match", "?"), jstr_or(r, "value", "?"),
		       jstr_or(r, "keyword", "-"), jstr_or(r, "mailbox", "-"),
		       enabled ? "" : "\tdisabled");
	}
	if (arr != NULL)
		ctl_json_print(arr);
	json_decref(a.json);
	return EXIT_OK;
}

/* api_tr_del - tag-rule del USER ID */
static int api_tr_del(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1], what[MW_USERNAME_MAX + 48];
	struct api_answer a;
	long long id;
	char *end;
	mw_str path;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 2, 2) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	errno = 0;
	id = strtoll(argv[first + 1], &end, 10);
	if (errno != 0 || *end != '\0' || end == argv[first + 1] || id <= 0) {
		ctl_err("tag-rule del: not a rule id: %s", argv[first + 1]);
		return EXIT_USAGE;
	}
	/* as the store mode: an unknown user first (the API's DELETE answers only "no such
	   tag rule" for both) */
	user_path(&path, username, "/tag-rules");
	ret = call(t, "GET", mw_str_c(&path), NULL, 200, username, &a);
	json_decref(a.json);
	if (ret != EXIT_OK) {
		mw_str_free(&path);
		return ret;
	}
	(void)mw_str_appendf(&path, "/%lld", id);
	if (api_request(t, "DELETE", mw_str_c(&path), NULL, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 204)
		ret = EXIT_OK;
	else {
		if (a.status == 404 && strncmp(answer_message(&a), "no such user", 12) == 0)
			(void)snprintf(what, sizeof(what), "%s", username);
		else
			(void)snprintf(what, sizeof(what), "%s: tag rule %lld", username, id);
		ret = answer_exit(&a, what);
	}
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* ---- DKIM keys -------------------------------------------------------------------------- */

/* dk_print_txt - the DNS record of the key k (an API key object), made here as the store
   mode makes it */
static int dk_print_txt(json_t *k)
{
	mw_error err = {""};
	mw_str out;
	int ret = EXIT_OK;
	mw_str_init(&out, 0);
	if (mw_dkim_txt_record(jstr(k, "domain"), jstr(k, "selector"),
	                       strcmp(jstr(k, "type"), "ed25519") == 0 ? MW_DKIM_KEY_ED25519
	                                                               : MW_DKIM_KEY_RSA,
	                       jstr(k, "public_key"), &out, &err) < 0) {
		ctl_err("%s", err.msg);
		ret = EXIT_ERROR;
	} else
		printf("%s\n", mw_str_c(&out));
	mw_str_free(&out);
	return ret;
}

/* dk_path - "/api/v1/dkim/keys/DOMAIN/SELECTOR" + tail */
static void dk_path(mw_str *out, const char *domain, const char *selector, const char *tail)
{
	mw_str_init(out, 0);
	(void)mw_str_appends(out, "/api/v1/dkim/keys/");
	url_escape(out, domain);
	(void)mw_str_appendc(out, '/');
	url_escape(out, selector);
	(void)mw_str_appends(out, tail);
}

/* api_dk_generate - dkim generate: POST /dkim/keys with activate (the store mode's key is
   always the domain's active key) */
static int api_dk_generate(const struct api_target *t, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 4];
	unsigned bits;
	struct api_answer a;
	int ret;

	ret = ctl_dkim_parse_generate(argc, argv, domain, sizeof(domain), selector, sizeof(selector),
	                              &bits);
	if (ret != EXIT_OK)
		return ret < 0 ? EXIT_OK : ret;
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	ret = call(t, "POST", "/api/v1/dkim/keys",
	           json_pack("{s:s,s:s,s:i,s:b}", "domain", domain, "selector", selector, "bits",
	                     (int)bits, "activate", true),
	           201, target, &a);
	if (ret == EXIT_OK) {
		fprintf(stderr, "DKIM key %s is now the active signing key of %s. Publish:\n",
		        selector, domain);
		ret = dk_print_txt(a.json);
	}
	json_decref(a.json);
	return ret;
}

/* dk_list - GET /dkim/keys[?domain=D] into *keys_r (a new reference) */
static int dk_list(const struct api_target *t, const char *domain, json_t **keys_r)
{
	struct api_answer a;
	mw_str path;
	int ret;
	mw_str_init(&path, 0);
	(void)mw_str_appends(&path, "/api/v1/dkim/keys");
	if (domain != NULL) {
		(void)mw_str_appends(&path, "?domain=");
		url_escape(&path, domain);
	}
	ret = call(t, "GET", mw_str_c(&path), NULL, 200, "dkim list", &a);
	mw_str_free(&path);
	if (ret == EXIT_OK && !json_is_array(json_object_get(a.json, "keys"))) {
		ctl_err("api: the answer has no key list");
		ret = EXIT_ERROR;
	}
	*keys_r = ret == EXIT_OK ? json_incref(json_object_get(a.json, "keys")) : NULL;
	json_decref(a.json);
	return ret;
}

/* api_dk_list - dkim list */
static int api_dk_list(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	json_t *keys, *k, *arr;
	size_t i;
	char tb[32];
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;
	ret = dk_list(t, NULL, &keys);
	if (ret != EXIT_OK)
		return ret;
	if (o.json) {
		arr = json_array();
		json_array_foreach(keys, i, k)
		    json_array_append_new(
			arr, json_pack("{s:s, s:s, s:s, s:b, s:I, s:s}", "domain",
			               jstr(k, "domain"), "selector", jstr(k, "selector"), "type",
			               jstr(k, "type"),
			               "active", json_is_true(json_object_get(k, "active")),
			               "created_at",
			               json_integer_value(json_object_get(k, "created_at")),
			               "public_key", jstr(k, "public_key")));
		ctl_json_print(arr);
	} else {
		printf("%-40s %-20s %-8s %-7s %s\n", "DOMAIN", "SELECTOR", "TYPE", "ACTIVE",
		       "CREATED");
		json_array_foreach(keys, i, k)
		    printf("%-40s %-20s %-8s %-7s %s\n", jstr(k, "domain"), jstr(k, "selector"),
		           jstr(k, "type"),
		           json_is_true(json_object_get(k, "active")) ? "yes" : "no",
		           jtime(k, "created_at", tb, sizeof(tb)));
	}
	json_decref(keys);
	return EXIT_OK;
}

/* api_dk_txt - dkim txt DOMAIN [SELECTOR]: the domain's keys, then the record made here */
static int api_dk_txt(const struct api_target *t, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	struct ctl_opts o;
	json_t *keys, *k, *found = NULL;
	bool by_sel;
	size_t i;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 2) != EXIT_OK)
		return EXIT_USAGE;
	by_sel = argc - first == 2;
	ret = ctl_dkim_names(argv[first], by_sel ? argv[first + 1] : NULL, domain, sizeof(domain),
	               selector, sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	ret = dk_list(t, domain, &keys);
	if (ret != EXIT_OK)
		return ret;
	json_array_foreach(keys, i, k)
	{
		if (strcmp(jstr(k, "domain"), domain) != 0)
			continue;
		if (by_sel ? strcmp(jstr(k, "selector"), selector) == 0
		           : json_is_true(json_object_get(k, "active"))) {
			found = k;
			break;
		}
	}
	if (found == NULL) {
		/* the store's words */
		if (by_sel)
			ctl_err("no DKIM key %s for %s", selector, domain);
		else
			ctl_err("no active DKIM key for %s", domain);
		ret = EXIT_NOTFOUND;
	} else
		ret = dk_print_txt(found);
	json_decref(keys);
	return ret;
}

/* api_dk_change - dkim activate DOMAIN SELECTOR / dkim del DOMAIN SELECTOR --yes */
static int api_dk_change(const struct api_target *t, int argc, char **argv, bool del)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 4];
	struct ctl_opts o;
	struct api_answer a;
	mw_str path;
	int first, ret;

	if (del)
		CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_YES);
	else
		CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 2, 2) != EXIT_OK)
		return EXIT_USAGE;
	if (del && !o.yes) {
		ctl_err("dkim del: add --yes to delete the key for good");
		return EXIT_USAGE;
	}
	ret = ctl_dkim_names(argv[first], argv[first + 1], domain, sizeof(domain), selector,
	               sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	dk_path(&path, domain, selector, del ? "" : "/activate");
	if (api_request(t, del ? "DELETE" : "POST", mw_str_c(&path), del ? NULL : json_object(),
	                &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == (del ? 204 : 200))
		ret = EXIT_OK;
	else if (a.status == 409) {
		/* the API keeps a domain's active key: activate another first */
		ctl_err("%s: %s", target, answer_message(&a));
		ret = EXIT_ERROR;
	} else
		ret = answer_exit(&a, target);
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* ---- rate limits ------------------------------------------------------------------------ */

/* rl_subject - the USER of ratelimit status|reset (the API reports users, not addresses) */
static int rl_subject(const char *in, char *username, size_t size)
{
	unsigned char buf[sizeof(struct in6_addr)];
	char addr[INET6_ADDRSTRLEN + 1];
	size_t i, len = strcspn(in, "/");
	for (i = 0; in[i] != '\0'; i++)
		if ((unsigned char)in[i] <= 0x20 || in[i] == 0x7f) {
			ctl_err("%s: not a user name or IP address", in);
			return EXIT_USAGE;
		}
	if (len < sizeof(addr)) {
		memcpy(addr, in, len);
		addr[len] = '\0';
		if (inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1) {
			ctl_err("ratelimit %s IP is not available with --api (the API reports "
			        "users only): run it where mailwarden-policyd runs",
			        ctl_current->name);
			return EXIT_USAGE;
		}
	}
	if (ctl_username(in, username, size) < 0)
		return EXIT_USAGE;
	return EXIT_OK;
}

/* api_rl_ask - ratelimit status|reset USER through /users/USER/ratelimit; prints what
   mailwarden-policyd printed in the store mode */
static int api_rl_ask(const struct api_target *t, int argc, char **argv, bool reset)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	struct api_answer a;
	struct mw_pdctl_reply *reply;
	json_t *limits, *l;
	mw_str path;
	size_t i;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	ret = rl_subject(argv[first], username, sizeof(username));
	if (ret != EXIT_OK)
		return ret;
	user_path(&path, username, "/ratelimit");
	if (api_request(t, reset ? "DELETE" : "GET", mw_str_c(&path), NULL, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 200)
		ret = EXIT_OK;
	else if (a.status == 502 && strncmp(answer_message(&a), "mailwarden-policyd refused: ",
	                                    28) == 0) {
		ctl_err("policyd: %s", answer_message(&a) + 28);
		ret = EXIT_ERROR;
	} else
		ret = answer_exit(&a, username);
	mw_str_free(&path);
	if (ret != EXIT_OK) {
		json_decref(a.json);
		return ret;
	}
	reply = mw_calloc(1, sizeof(*reply));
	reply->ok = true;
	reply->cleared =
	    reset ? (int64_t)json_integer_value(json_object_get(a.json, "cleared")) : -1;
	(void)snprintf(reply->subject, sizeof(reply->subject), "sasl_username %s",
	               jstr_or(a.json, "username", username));
	limits = json_object_get(a.json, "limits");
	json_array_foreach(limits, i, l)
	{
		struct mw_pdctl_limit *pl;
		json_t *after = json_object_get(l, "reset_after_seconds");
		if (reply->nlimits == MW_PDCTL_LIMITS_MAX)
			break;
		pl = &reply->limits[reply->nlimits++];
		(void)mw_strlcpy(pl->limit, jstr(l, "limit"), sizeof(pl->limit));
		(void)mw_strlcpy(pl->origin, jstr(l, "origin"), sizeof(pl->origin));
		pl->used = (int64_t)json_integer_value(json_object_get(l, "used"));
		pl->count = (int64_t)json_integer_value(json_object_get(l, "count"));
		pl->reset_after = json_is_integer(after) ? (int64_t)json_integer_value(after) : 0;
		pl->degraded = json_is_true(json_object_get(l, "degraded"));
	}
	ctl_rl_print(reply, reset);
	free(reply);
	json_decref(a.json);
	return EXIT_OK;
}

/* rl_word - value is one of the '|'-separated words */
static bool rl_word(const char *value, const char *words)
{
	size_t n = strlen(value);
	const char *p = words;
	for (;;) {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (n > 0 && len == n && memcmp(p, value, n) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

/* api_rl_policy_add - ratelimit policy add: the store's checks first (its words), then POST */
static int api_rl_policy_add(const struct api_target *t, char **argv, int n)
{
	static const char what[] = "adding a rate policy";
	struct mw_rate_policy p;
	struct api_answer a;
	json_t *body;
	int ret;
	if (ctl_rl_parse_policy(argv, &p) < 0)
		return EXIT_USAGE;
	if (n == 6 && ctl_username(argv[4], p.username, sizeof(p.username)) != 0)
		return EXIT_USAGE;
	if (!rl_word(p.scope, "sasl_username|client_address|sender|sender_domain|recipient|"
	                      "recipient_domain")) {
		ctl_err("%s: unknown rate policy scope", what);
		return EXIT_ERROR;
	}
	if (!rl_word(p.metric, "messages|recipients|size")) {
		ctl_err("%s: unknown rate policy metric (messages, recipients or size)", what);
		return EXIT_ERROR;
	}
	if (!rl_word(p.action, "defer|reject")) {
		ctl_err("%s: unknown rate policy action (defer or reject)", what);
		return EXIT_ERROR;
	}
	if (p.window_seconds < 1 || p.window_seconds > MW_RATE_WINDOW_MAX) {
		ctl_err("%s: rate policy count must be >= 1 and window 1s..366d", what);
		return EXIT_ERROR;
	}
	body = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "scope", p.scope, "match", p.match,
	                 "metric", p.metric, "count", (json_int_t)p.limit_count, "window_seconds",
	                 (json_int_t)p.window_seconds, "action", p.action);
	if (p.username[0] != '\0')
		json_object_set_new(body, "username", json_string(p.username));
	if (api_request(t, "POST", "/api/v1/ratelimit/policies", body, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 201) {
		printf("%lld\n", (long long)json_integer_value(json_object_get(a.json, "id")));
		ret = EXIT_OK;
	} else if (a.status == 422 &&
	           strcmp(answer_message(&a), "field username: no such user") == 0) {
		ctl_err("%s: not found", what);
		ret = EXIT_NOTFOUND;
	} else
		ret = answer_exit(&a, what);
	json_decref(a.json);
	return ret;
}

/* api_rl_policy - ratelimit policy add|list|del */
static int api_rl_policy(const struct api_target *t, int argc, char **argv)
{
	struct ctl_opts o;
	struct api_answer a;
	int first, n, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	n = argc - first;
	if (n == 1 && strcmp(argv[first], "list") == 0) {
		json_t *pols, *p, *arr = o.json ? json_array() : NULL;
		size_t i;
		ret = call(t, "GET", "/api/v1/ratelimit/policies", NULL, 200,
		           "listing rate policies", &a);
		pols = json_object_get(a.json, "policies");
		if (ret == EXIT_OK && !json_is_array(pols)) {
			ctl_err("api: the answer has no policy list");
			ret = EXIT_ERROR;
		}
		if (ret != EXIT_OK) {
			json_decref(arr);
			json_decref(a.json);
			return ret;
		}
		json_array_foreach(pols, i, p)
		{
			const char *match = jstr(p, "match"), *user = jstr(p, "username");
			json_int_t id = json_integer_value(json_object_get(p, "id"));
			json_int_t count = json_integer_value(json_object_get(p, "count"));
			json_int_t win = json_integer_value(json_object_get(p, "window_seconds"));
			if (arr != NULL) {
				json_array_append_new(
				    arr, json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s,s:s}", "id", id,
				                   "scope", jstr(p, "scope"), "match", match,
				                   "metric", jstr(p, "metric"), "count", count,
				                   "window_seconds", win, "action",
				                   jstr(p, "action"), "user", user));
				continue;
			}
			printf("%lld\t%s%s%s %s %lld/%llds %s\t%s\n", (long long)id,
			       jstr(p, "scope"), match[0] != '\0' ? "=" : "", match,
			       jstr(p, "metric"),
			       (long long)count, (long long)win, jstr(p, "action"),
			       user[0] != '\0' ? user : "(everyone)");
		}
		if (arr != NULL)
			ctl_json_print(arr);
		json_decref(a.json);
		return EXIT_OK;
	}
	if (n >= 5 && n <= 6 && strcmp(argv[first], "add") == 0)
		return api_rl_policy_add(t, argv + first + 1, n);
	if (n == 2 && strcmp(argv[first], "del") == 0) {
		char *end;
		long long id;
		mw_str path;
		errno = 0;
		id = strtoll(argv[first + 1], &end, 10);
		if (errno != 0 || *end != '\0' || id <= 0) {
			ctl_err("expected a policy id: %s", argv[first + 1]);
			return EXIT_USAGE;
		}
		mw_str_init(&path, 0);
		(void)mw_str_appendf(&path, "/api/v1/ratelimit/policies/%lld", id);
		ret = call(t, "DELETE", mw_str_c(&path), NULL, 204, "deleting a rate policy", &a);
		json_decref(a.json);
		mw_str_free(&path);
		return ret;
	}
	(void)ctl_want_args(ctl_current, -1, 0, 0);
	return EXIT_USAGE;
}

/* the commands --api runs, as "GROUP NAME" */
static const char *const ctl_api_commands[] = {
    "user add",          "user list",     "user show",        "user passwd",
    "user enable",       "user disable",  "user del",         "allow-from add",
    "allow-from del",    "allow-from list", "tag-rule add",   "tag-rule list",
    "tag-rule del",      "dkim generate", "dkim list",        "dkim txt",
    "dkim activate",     "dkim del",      "ratelimit status", "ratelimit reset",
    "ratelimit policy",
};

/* ctl_api_supported - the command GROUP NAME has API routes */
static bool ctl_api_supported(const char *group, const char *name)
{
	size_t i, glen = strlen(group);
	for (i = 0; i < MW_N_ELEMENTS(ctl_api_commands); i++) {
		const char *c = ctl_api_commands[i];
		if (strncmp(c, group, glen) == 0 && c[glen] == ' ' &&
		    strcmp(c + glen + 1, name) == 0)
			return true;
	}
	return false;
}

/* ctl_api_run - run cmd against the API at ctl->api_url */
int ctl_api_run(struct mw_ctl *ctl, const struct mw_ctl_command *cmd, int argc, char **argv)
{
	struct api_target t;
	const char *g = cmd->group, *n = cmd->name;
	bool help = false;
	int i, ret;
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			help = true;
	if (!ctl_api_supported(g, n)) {
		ctl_err("%s%s%s is not available with --api: the API has no route for it; run it "
		        "where the store is, without --api",
		        g, *g != '\0' ? " " : "", n);
		return EXIT_USAGE;
	}
	memset(&t, 0, sizeof(t));
	if (!help && (parse_url(ctl->api_url, &t) < 0 || read_token(ctl->token_file, &t) < 0))
		return EXIT_ERROR;
	if (strcmp(g, "user") == 0) {
		if (strcmp(n, "add") == 0)
			ret = api_user_add(ctl, &t, argc, argv);
		else if (strcmp(n, "passwd") == 0)
			ret = api_user_passwd(ctl, &t, argc, argv);
		else if (strcmp(n, "enable") == 0)
			ret = api_user_status(&t, argc, argv, MW_USER_ACTIVE);
		else if (strcmp(n, "disable") == 0)
			ret = api_user_status(&t, argc, argv, MW_USER_DISABLED);
		else if (strcmp(n, "del") == 0)
			ret = api_user_del(&t, argc, argv);
		else if (strcmp(n, "list") == 0)
			ret = api_user_list(&t, argc, argv);
		else
			ret = api_user_show(&t, argc, argv);
	} else if (strcmp(g, "allow-from") == 0) {
		if (strcmp(n, "list") == 0)
			ret = api_af_list(&t, argc, argv);
		else
			ret = api_af_change(&t, argc, argv, strcmp(n, "add") == 0);
	} else if (strcmp(g, "tag-rule") == 0) {
		if (strcmp(n, "add") == 0)
			ret = api_tr_add(&t, argc, argv);
		else if (strcmp(n, "list") == 0)
			ret = api_tr_list(&t, argc, argv);
		else
			ret = api_tr_del(&t, argc, argv);
	} else if (strcmp(g, "dkim") == 0) {
		if (strcmp(n, "generate") == 0)
			ret = api_dk_generate(&t, argc, argv);
		else if (strcmp(n, "list") == 0)
			ret = api_dk_list(&t, argc, argv);
		else if (strcmp(n, "txt") == 0)
			ret = api_dk_txt(&t, argc, argv);
		else
			ret = api_dk_change(&t, argc, argv, strcmp(n, "del") == 0);
	} else if (strcmp(n, "policy") == 0)
		ret = api_rl_policy(&t, argc, argv);
	else
		ret = api_rl_ask(&t, argc, argv, strcmp(n, "reset") == 0);
	mw_memzero(t.token, sizeof(t.token));
	return ret;
}
