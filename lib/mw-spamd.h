/* mw-spamd.h - SpamAssassin's spamd as the spam scorer: the SPAMC/SPAMD protocol's SYMBOLS
 * request (our printer) and reply (our parser), and one check over a socket with a deadline.
 *
 * Request:  "SYMBOLS SPAMC/1.5" CRLF "Content-length: N" CRLF ["User: U" CRLF] CRLF message
 * Reply:    "SPAMD/1.1 0 EX_OK" CRLF "Content-length: N" CRLF "Spam: True ; 23.3 / 5.0" CRLF
 *           CRLF "NAME1,NAME2" CRLF     (the body: the names of the tests that fired)
 *
 * The reply is read strictly and within bounds: CRLF line ends, each line at most
 * MW_SPAMD_LINE_MAX bytes, at most MW_SPAMD_HEADERS_MAX header lines, Spam exactly once,
 * Content-length exactly once and at most MW_SPAMD_BODY_MAX, each test name 1 to
 * MW_SPAMD_NAME_MAX bytes of [A-Za-z0-9_], nothing after the body. Anything else, a
 * non-zero status, or a reply not complete within the deadline is an error: no verdict.
 */
#ifndef MW_SPAMD_H
#define MW_SPAMD_H

#include "mw-headers.h"
#include "mw-util.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define MW_SPAMD_LINE_MAX    1024  /* a status or header line of the reply, CRLF included */
#define MW_SPAMD_HEADERS_MAX 16    /* header lines in a reply */
#define MW_SPAMD_BODY_MAX    16384 /* the SYMBOLS body: the test names */
#define MW_SPAMD_NAME_MAX    128   /* one test name */
#define MW_SPAMD_USER_MAX    64    /* the User: value */
#define MW_SPAMD_SPEC_MAX    200   /* a backend value "spamd:..." */

struct mw_spamd_settings {
	char spec[MW_SPAMD_SPEC_MAX + 1]; /* as configured, for logs */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char user[MW_SPAMD_USER_MAX + 1]; /* "" = no User: line */
	unsigned timeout_ms;              /* the whole check: connect, send, reply */
};

struct mw_spamd_result {
	long score;    /* spamd's score, hundredths (clamped to +-MW_HDR_SCORE_MAX) */
	long required; /* spamd's own threshold, hundredths (logged, not used) */
	bool spam;     /* spamd's own verdict (logged, not used) */
	char tests[MW_HDR_TESTS_MAX + 1]; /* "NAME1,NAME2": the whole names that fit, in order */
	unsigned ntests;                  /* names spamd reported */
	bool tests_cut;                   /* some did not fit into tests */
};

/* "spamd:HOST:PORT" (HOST an IPv4 literal or [IPv6]) or "spamd:unix:/absolute/path" into
   s->addr (and s->spec). -1 with error_r for anything else. */
int mw_spamd_parse_backend(const char *spec, struct mw_spamd_settings *s, mw_error *error_r);
/* Whether USER may go into a User: line: 1 to MW_SPAMD_USER_MAX bytes of
   [A-Za-z0-9._@+-] (or "" for none). */
bool mw_spamd_user_ok(const char *user);

/* The request head for a message of LEN bytes (the message follows it). -1 with error_r
   for a user that mw_spamd_user_ok refuses. */
int mw_spamd_request_print(const char *user, size_t len, mw_str *out, mw_error *error_r);
/* Parses the reply read so far (BUF, LEN). 0 complete (r filled), 1 incomplete (more
   bytes needed; with EOF set it is an error), -1 malformed or refused (error_r; spamd's
   text is never echoed raw). */
int mw_spamd_reply_parse(const char *buf, size_t len, bool eof, struct mw_spamd_result *r,
                         mw_error *error_r);

/* Where to cut a message of LEN bytes that is over MAX: after the last line end at or
   before MAX (MAX itself when there is none). */
size_t mw_spamd_cut(const char *msg, size_t len, size_t max);

/* One check of MSG (LEN bytes) by spamd within s->timeout_ms. 0 with r filled; -1 with
   error_r (spamd down, slow, refusing or answering garbage). Thread-safe. */
int mw_spamd_check(const struct mw_spamd_settings *s, const char *msg, size_t len,
                   struct mw_spamd_result *r, mw_error *error_r);

#endif
