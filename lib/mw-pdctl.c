/*
 * mw-pdctl.c - mailwarden-policyd's control protocol, its one owner: the daemon encodes its
 * replies and decodes requests here, the API and mailwardenctl encode requests and decode
 * replies here (through mw_pdctl_call), so no side re-parses text meant for people.
 *
 * The model is Postfix's attr_print/attr_scan: typed name=value records. A record is lines
 * "name=value" ended by a blank line; its first line is "record=TYPE", and TYPE fixes which
 * fields follow, each exactly once, in any order. Values are text (printable bytes, no
 * control byte, at most MW_PDCTL_TEXT_MAX), integers (decimal 0..INT64_MAX, no sign, no
 * leading zero) or booleans (0 or 1). Times are whole seconds.
 *   request:  record=status|reset|health, subject=USER|IP (health: not looked at);
 *             record=charge, subject=FORM, client=IP, ip_count, ip_window, form_count,
 *             form_window (a contact form submission, counted by the daemon)
 *   reply:    any number of record=limit (limit, origin, used, count, reset_after,
 *             degraded) and record=degraded (component, reason, since: a component
 *             serving from its fallback, lib/mw-degraded.h), then for a reset one
 *             record=cleared (count), for a charge one record=verdict (allowed,
 *             retry_after), then record=ok
 *             (subject) or record=error (reason); nothing after it.
 * The decoders refuse whatever is not exactly that (unknown record or field, a field twice
 * or missing, a value out of its type or range, an over-long line, trailing bytes).
 *
 * Public: mw_pdctl_encode_request, mw_pdctl_encode_limit, mw_pdctl_encode_degraded,
 * mw_pdctl_encode_cleared,
 * mw_pdctl_encode_ok, mw_pdctl_encode_error, mw_pdctl_encode_reply, mw_pdctl_frame,
 * mw_pdctl_decode_request, mw_pdctl_decode_reply, mw_pdctl_call, mw_pdctl_format_limit.
 * Diagnostics: every failure comes back in error_r, naming the record and field; the client
 * names the socket path. Input is never echoed.
 */
#include "mw-build.h"
#include "mw-pdctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum field_type { F_TEXT, F_INT, F_BOOL };

struct field {
	const char *name;
	enum field_type type;
	size_t off;  /* in the record's struct */
	size_t size; /* F_TEXT: the buffer's size */
};

#define TEXT(st, m)                                                                                \
	{                                                                                          \
#m, F_TEXT, offsetof(st, m), sizeof(((st *)0)->m)                                  \
	}
#define INT(st, m)                                                                                 \
	{                                                                                          \
#m, F_INT, offsetof(st, m), 0                                                      \
	}
#define BOOL(st, m)                                                                                \
	{                                                                                          \
#m, F_BOOL, offsetof(st, m), 0                                                     \
	}

/* The fields of the records that are not a struct of the header: cleared, ok, error. */
struct rec_cleared {
	int64_t count;
};
struct rec_ok {
	char subject[MW_PDCTL_TEXT_MAX + 1];
};
struct rec_error {
	char reason[MW_PDCTL_TEXT_MAX + 1];
};
struct rec_verdict {
	bool allowed;
	int64_t retry_after;
};

static const struct field request_fields[] = {TEXT(struct mw_pdctl_request, subject)};
static const struct field charge_fields[] = {
    TEXT(struct mw_pdctl_request, subject),   TEXT(struct mw_pdctl_request, client),
    INT(struct mw_pdctl_request, ip_count),   INT(struct mw_pdctl_request, ip_window),
    INT(struct mw_pdctl_request, form_count), INT(struct mw_pdctl_request, form_window),
};
static const struct field verdict_fields[] = {BOOL(struct rec_verdict, allowed),
                                              INT(struct rec_verdict, retry_after)};
static const struct field limit_fields[] = {
    TEXT(struct mw_pdctl_limit, limit),      TEXT(struct mw_pdctl_limit, origin),
    INT(struct mw_pdctl_limit, used),        INT(struct mw_pdctl_limit, count),
    INT(struct mw_pdctl_limit, reset_after), BOOL(struct mw_pdctl_limit, degraded),
};
static const struct field degraded_fields[] = {
    TEXT(struct mw_pdctl_degraded, component),
    TEXT(struct mw_pdctl_degraded, reason),
    INT(struct mw_pdctl_degraded, since),
};
static const struct field cleared_fields[] = {INT(struct rec_cleared, count)};
static const struct field ok_fields[] = {TEXT(struct rec_ok, subject)};
static const struct field error_fields[] = {TEXT(struct rec_error, reason)};

enum rec_type {
	REC_STATUS,
	REC_RESET,
	REC_LIMIT,
	REC_CLEARED,
	REC_OK,
	REC_ERROR,
	REC_HEALTH,
	REC_DEGRADED,
	REC_CHARGE,
	REC_VERDICT
};

static const struct {
	const char *name;
	const struct field *fields;
	size_t n;
} records[] = {
    [REC_STATUS] = {"status", request_fields, MW_N_ELEMENTS(request_fields)},
    [REC_RESET] = {"reset", request_fields, MW_N_ELEMENTS(request_fields)},
    [REC_LIMIT] = {"limit", limit_fields, MW_N_ELEMENTS(limit_fields)},
    [REC_CLEARED] = {"cleared", cleared_fields, MW_N_ELEMENTS(cleared_fields)},
    [REC_OK] = {"ok", ok_fields, MW_N_ELEMENTS(ok_fields)},
    [REC_ERROR] = {"error", error_fields, MW_N_ELEMENTS(error_fields)},
    [REC_HEALTH] = {"health", request_fields, MW_N_ELEMENTS(request_fields)},
    [REC_DEGRADED] = {"degraded", degraded_fields, MW_N_ELEMENTS(degraded_fields)},
    [REC_CHARGE] = {"charge", charge_fields, MW_N_ELEMENTS(charge_fields)},
    [REC_VERDICT] = {"verdict", verdict_fields, MW_N_ELEMENTS(verdict_fields)},
};

/* ---- encoding ---------------------------------------------------------------------- */

/* text_ok - a text value the format can carry */
static bool text_ok(const char *s)
{
	size_t i;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return i <= MW_PDCTL_TEXT_MAX;
}

/* encode - append record type with the fields of base; out unchanged on failure */
static int encode(mw_str *out, enum rec_type type, const void *base, mw_error *error_r)
{
	size_t saved = out->len, i;
	int rc = mw_str_appendf(out, "record=%s\n", records[type].name);
	for (i = 0; i < records[type].n && rc == 0; i++) {
		const struct field *f = &records[type].fields[i];
		const char *p = (const char *)base + f->off;
		switch (f->type) {
		case F_TEXT:
			if (memchr(p, '\0', f->size) == NULL || !text_ok(p)) {
				mw_error_set(error_r,
				             "%s record: %s is not a text the format carries",
				             records[type].name, f->name);
				rc = -1;
				break;
			}
			rc = mw_str_appendf(out, "%s=%s\n", f->name, p);
			break;
		case F_INT: {
			int64_t v;
			memcpy(&v, p, sizeof(v));
			if (v < 0) {
				mw_error_set(error_r, "%s record: %s is negative",
				             records[type].name, f->name);
				rc = -1;
				break;
			}
			rc = mw_str_appendf(out, "%s=%" PRId64 "\n", f->name, v);
			break;
		}
		case F_BOOL: {
			bool v;
			memcpy(&v, p, sizeof(v));
			rc = mw_str_appendf(out, "%s=%d\n", f->name, v ? 1 : 0);
			break;
		}
		}
	}
	if (rc == 0)
		rc = mw_str_appendc(out, '\n');
	if (rc < 0) {
		if (out->len != saved)
			mw_error_set(error_r, "%s record: does not fit", records[type].name);
		out->len = saved;
		if (out->buf != NULL)
			out->buf[saved] = '\0';
		return -1;
	}
	return 0;
}

/* mw_pdctl_encode_request - a status or reset request */
int mw_pdctl_encode_request(mw_str *out, const struct mw_pdctl_request *req, mw_error *error_r)
{
	enum rec_type t = req->command == MW_PDCTL_RESET    ? REC_RESET
	                  : req->command == MW_PDCTL_HEALTH ? REC_HEALTH
	                  : req->command == MW_PDCTL_CHARGE ? REC_CHARGE
	                                                    : REC_STATUS;
	return encode(out, t, req, error_r);
}

/* mw_pdctl_encode_degraded - one degraded component */
int mw_pdctl_encode_degraded(mw_str *out, const struct mw_pdctl_degraded *dg, mw_error *error_r)
{
	return encode(out, REC_DEGRADED, dg, error_r);
}

/* mw_pdctl_encode_limit - one limit's usage */
int mw_pdctl_encode_limit(mw_str *out, const struct mw_pdctl_limit *l, mw_error *error_r)
{
	return encode(out, REC_LIMIT, l, error_r);
}

/* mw_pdctl_encode_cleared - how many counters a reset cleared */
int mw_pdctl_encode_cleared(mw_str *out, int64_t count, mw_error *error_r)
{
	struct rec_cleared r = {count};
	return encode(out, REC_CLEARED, &r, error_r);
}

/* mw_pdctl_encode_verdict - a charge's outcome */
int mw_pdctl_encode_verdict(mw_str *out, bool allowed, int64_t retry_after, mw_error *error_r)
{
	struct rec_verdict r = {allowed, retry_after};
	return encode(out, REC_VERDICT, &r, error_r);
}

/* mw_pdctl_encode_ok - the end of a successful reply */
int mw_pdctl_encode_ok(mw_str *out, const char *subject, mw_error *error_r)
{
	struct rec_ok r;
	if (mw_strlcpy(r.subject, subject, sizeof(r.subject)) < 0) {
		mw_error_set(error_r, "ok record: subject too long");
		return -1;
	}
	return encode(out, REC_OK, &r, error_r);
}

/* mw_pdctl_encode_error - the end of a refused request */
int mw_pdctl_encode_error(mw_str *out, const char *reason, mw_error *error_r)
{
	struct rec_error r;
	if (mw_strlcpy(r.reason, reason, sizeof(r.reason)) < 0) {
		mw_error_set(error_r, "error record: reason too long");
		return -1;
	}
	return encode(out, REC_ERROR, &r, error_r);
}

/* mw_pdctl_encode_reply - a whole reply; out unchanged on failure */
int mw_pdctl_encode_reply(mw_str *out, const struct mw_pdctl_reply *reply, mw_error *error_r)
{
	size_t saved = out->len, i;
	int rc = 0;
	if (reply->nlimits > MW_PDCTL_LIMITS_MAX) {
		mw_error_set(error_r, "more than %d limit records", MW_PDCTL_LIMITS_MAX);
		return -1;
	}
	if (reply->ndegraded > MW_PDCTL_DEGRADED_MAX) {
		mw_error_set(error_r, "more than %d degraded records", MW_PDCTL_DEGRADED_MAX);
		return -1;
	}
	for (i = 0; i < reply->nlimits && rc == 0; i++)
		rc = mw_pdctl_encode_limit(out, &reply->limits[i], error_r);
	for (i = 0; i < reply->ndegraded && rc == 0; i++)
		rc = mw_pdctl_encode_degraded(out, &reply->degraded[i], error_r);
	if (rc == 0 && reply->cleared >= 0)
		rc = mw_pdctl_encode_cleared(out, reply->cleared, error_r);
	if (rc == 0 && reply->verdict)
		rc = mw_pdctl_encode_verdict(out, reply->allowed, reply->retry_after, error_r);
	if (rc == 0)
		rc = reply->ok ? mw_pdctl_encode_ok(out, reply->subject, error_r)
		               : mw_pdctl_encode_error(out, reply->error, error_r);
	if (rc < 0) {
		out->len = saved;
		if (out->buf != NULL)
			out->buf[saved] = '\0';
	}
	return rc;
}

/* ---- decoding ---------------------------------------------------------------------- */

/* mw_pdctl_frame - where the first record of buf ends */
int mw_pdctl_frame(const char *buf, size_t len, size_t max, size_t *len_r)
{
	size_t i, n = len < max ? len : max;
	for (i = 0; i < n; i++)
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] == '\n')) {
			*len_r = i + 1;
			return 1;
		}
	return len >= max ? -1 : 0;
}

/* parse_int - a decimal 0..INT64_MAX without sign or leading zero */
static int parse_int(const char *v, size_t n, int64_t *r)
{
	int64_t x = 0;
	size_t i;
	if (n == 0 || (n > 1 && v[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (INT64_MAX - (v[i] - '0')) / 10)
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*r = x;
	return 0;
}

/* set_field - store the value v[0..n) of f at base */
static int set_field(const char *rec, const struct field *f, void *base, const char *v, size_t n,
                     mw_error *error_r)
{
	char *p = (char *)base + f->off;
	size_t i;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			mw_error_set(error_r, "%s record: control byte in %s", rec, f->name);
			return -1;
		}
	switch (f->type) {
	case F_TEXT:
		if (n > MW_PDCTL_TEXT_MAX || n >= f->size) {
			mw_error_set(error_r, "%s record: %s longer than %d bytes", rec, f->name,
			             MW_PDCTL_TEXT_MAX);
			return -1;
		}
		memcpy(p, v, n);
		p[n] = '\0';
		return 0;
	case F_INT: {
		int64_t x;
		if (parse_int(v, n, &x) < 0) {
			mw_error_set(error_r, "%s record: %s is not a number 0..%" PRId64, rec,
			             f->name, (int64_t)MW_PDCTL_INT_MAX);
			return -1;
		}
		memcpy(p, &x, sizeof(x));
		return 0;
	}
	case F_BOOL: {
		bool b = n == 1 && v[0] == '1';
		if (n != 1 || (v[0] != '0' && v[0] != '1')) {
			mw_error_set(error_r, "%s record: %s is not 0 or 1", rec, f->name);
			return -1;
		}
		memcpy(p, &b, sizeof(b));
		return 0;
	}
	}
	return -1;
}

/* next_line - the line at buf[*pos..len) without its LF: 1 (and *pos after the LF), 0 when
   its LF has not arrived (and it is not too long yet), -1 when it is too long */
static int next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *n,
                     mw_error *error_r)
{
	size_t left = len - *pos,
	       look = left < MW_PDCTL_LINE_MAX + 1 ? left : MW_PDCTL_LINE_MAX + 1;
	const char *lf = memchr(buf + *pos, '\n', look);
	if (lf == NULL) {
		if (left > MW_PDCTL_LINE_MAX) {
			mw_error_set(error_r, "line longer than %d bytes", MW_PDCTL_LINE_MAX);
			return -1;
		}
		return 0;
	}
	*line = buf + *pos;
	*n = (size_t)(lf - *line);
	*pos += *n + 1;
	return 1;
}

/* decode_record - one record of a type in allowed (a bitmask of rec_type) from buf[*pos..):
   1 with its type (fields stored through bases[type]), 0 when it has not ended, -1 */
static int decode_record(const char *buf, size_t len, size_t *pos, unsigned allowed,
                         void *const *bases, enum rec_type *type_r, mw_error *error_r)
{
	const char *line;
	size_t n, i;
	unsigned seen = 0;
	int r = next_line(buf, len, pos, &line, &n, error_r);
	enum rec_type t;
	if (r <= 0)
		return r;
	if (n < 7 || memcmp(line, "record=", 7) != 0) {
		mw_error_set(error_r, "a record must start with record=TYPE");
		return -1;
	}
	for (t = 0; t < MW_N_ELEMENTS(records); t++)
		if (strlen(records[t].name) == n - 7 &&
		    memcmp(records[t].name, line + 7, n - 7) == 0)
			break;
	if (t == MW_N_ELEMENTS(records) || !(allowed & (1u << t))) {
		mw_error_set(error_r, "unknown or unexpected record type");
		return -1;
	}
	for (;;) {
		const char *eq;
		r = next_line(buf, len, pos, &line, &n, error_r);
		if (r <= 0)
			return r;
		if (n == 0)
			break;
		eq = memchr(line, '=', n);
		if (eq == NULL) {
			mw_error_set(error_r, "%s record: a line without '='", records[t].name);
			return -1;
		}
		for (i = 0; i < records[t].n; i++)
			if (strlen(records[t].fields[i].name) == (size_t)(eq - line) &&
			    memcmp(records[t].fields[i].name, line, (size_t)(eq - line)) == 0)
				break;
		if (i == records[t].n) {
			mw_error_set(error_r, "%s record: unknown field", records[t].name);
			return -1;
		}
		if (seen & (1u << i)) {
			mw_error_set(error_r, "%s record: %s given twice", records[t].name,
			             records[t].fields[i].name);
			return -1;
		}
		seen |= 1u << i;
		if (set_field(records[t].name, &records[t].fields[i], bases[t], eq + 1,
		              n - (size_t)(eq - line) - 1, error_r) < 0)
			return -1;
	}
	for (i = 0; i < records[t].n; i++)
		if (!(seen & (1u << i))) {
			mw_error_set(error_r, "%s record: %s missing", records[t].name,
			             records[t].fields[i].name);
			return -1;
		}
	*type_r = t;
	return 1;
}

/* mw_pdctl_decode_request - exactly one request record */
int mw_pdctl_decode_request(const char *buf, size_t len, struct mw_pdctl_request *req_r,
                            mw_error *error_r)
{
	void *bases[MW_N_ELEMENTS(records)] = {
	    [REC_STATUS] = req_r, [REC_RESET] = req_r, [REC_HEALTH] = req_r, [REC_CHARGE] = req_r};
	enum rec_type t;
	size_t pos = 0;
	int r;
	memset(req_r, 0, sizeof(*req_r));
	if (len > MW_PDCTL_REQUEST_MAX) {
		mw_error_set(error_r, "request longer than %d bytes", MW_PDCTL_REQUEST_MAX);
		return -1;
	}
	r = decode_record(buf, len, &pos,
	                  1u << REC_STATUS | 1u << REC_RESET | 1u << REC_HEALTH | 1u << REC_CHARGE,
	                  bases, &t, error_r);
	if (r == 0)
		mw_error_set(error_r, "request cut short");
	if (r <= 0)
		return -1;
	if (pos != len) {
		mw_error_set(error_r, "bytes after the request");
		return -1;
	}
	req_r->command = t == REC_RESET    ? MW_PDCTL_RESET
	                 : t == REC_HEALTH ? MW_PDCTL_HEALTH
	                 : t == REC_CHARGE ? MW_PDCTL_CHARGE
	                                   : MW_PDCTL_STATUS;
	return 0;
}

/* mw_pdctl_decode_reply - a whole reply (0: a correct beginning) */
int mw_pdctl_decode_reply(const char *buf, size_t len, struct mw_pdctl_reply *reply_r,
                          mw_error *error_r)
{
	struct mw_pdctl_limit lim;
	struct mw_pdctl_degraded dg;
	struct rec_cleared cleared;
	struct rec_ok ok;
	struct rec_error err;
	struct rec_verdict verdict;
	void *bases[MW_N_ELEMENTS(records)] = {
	    [REC_VERDICT] = &verdict, [REC_LIMIT] = &lim, [REC_CLEARED] = &cleared,
	    [REC_OK] = &ok,           [REC_ERROR] = &err, [REC_DEGRADED] = &dg};
	unsigned allowed = 1u << REC_LIMIT | 1u << REC_DEGRADED | 1u << REC_CLEARED | 1u << REC_OK |
	                   1u << REC_ERROR | 1u << REC_VERDICT;
	size_t pos = 0;
	memset(reply_r, 0, sizeof(*reply_r));
	reply_r->cleared = -1;
	if (len > MW_PDCTL_REPLY_MAX) {
		mw_error_set(error_r, "reply longer than %d bytes", MW_PDCTL_REPLY_MAX);
		return -1;
	}
	for (;;) {
		enum rec_type t;
		int r = decode_record(buf, len, &pos, allowed, bases, &t, error_r);
		if (r <= 0)
			return r;
		switch (t) {
		case REC_LIMIT:
			if (reply_r->nlimits == MW_PDCTL_LIMITS_MAX) {
				mw_error_set(error_r, "more than %d limit records",
				             MW_PDCTL_LIMITS_MAX);
				return -1;
			}
			reply_r->limits[reply_r->nlimits++] = lim;
			memset(&lim, 0, sizeof(lim));
			break;
		case REC_DEGRADED:
			if (reply_r->ndegraded == MW_PDCTL_DEGRADED_MAX) {
				mw_error_set(error_r, "more than %d degraded records",
				             MW_PDCTL_DEGRADED_MAX);
				return -1;
			}
			reply_r->degraded[reply_r->ndegraded++] = dg;
			memset(&dg, 0, sizeof(dg));
			break;
		case REC_CLEARED:
			reply_r->cleared = cleared.count;
			allowed =
			    1u << REC_OK | 1u << REC_ERROR; /* at most one, after the limits */
			break;
		case REC_VERDICT:
			reply_r->verdict = true;
			reply_r->allowed = verdict.allowed;
			reply_r->retry_after = verdict.retry_after;
			allowed = 1u << REC_OK | 1u << REC_ERROR;
			break;
		case REC_OK:
		case REC_ERROR:
			if (t == REC_OK) {
				reply_r->ok = true;
				memcpy(reply_r->subject, ok.subject, sizeof(ok.subject));
			} else {
				memcpy(reply_r->error, err.reason, sizeof(err.reason));
			}
			if (pos != len) {
				mw_error_set(error_r, "bytes after the end of the reply");
				return -1;
			}
			return 1;
		default:
			mw_error_set(error_r, "unexpected record");
			return -1;
		}
	}
}

/* ---- the client -------------------------------------------------------------------- */

/* mw_pdctl_call - one request to the daemon and its decoded reply */
int mw_pdctl_call(const char *path, const struct mw_pdctl_request *req, int timeout_ms,
                  struct mw_pdctl_reply *reply_r, mw_error *error_r)
{
	struct sockaddr_un sun;
	mw_str out, in;
	int64_t deadline = mw_mono_ms() + timeout_ms;
	int fd, ret = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || mw_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		mw_error_set(error_r, "[policyd] control_socket is not set (or too long)");
		return -1;
	}
	mw_str_init(&out, MW_PDCTL_REQUEST_MAX);
	if (mw_pdctl_encode_request(&out, req, error_r) < 0) {
		mw_error_prefix(error_r, "control socket %s: ", path);
		mw_str_free(&out);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		mw_error_set(error_r, "control socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		mw_str_free(&out);
		return -1;
	}
	mw_str_init(&in, MW_PDCTL_REPLY_MAX);
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
	    send(fd, out.buf, out.len, MSG_NOSIGNAL) != (ssize_t)out.len) {
		mw_error_set(error_r, "control socket %s: cannot send the request", path);
		goto done;
	}
	for (;;) {
		char buf[4096];
		struct pollfd pfd = {fd, POLLIN, 0};
		int64_t left = deadline - mw_mono_ms();
		ssize_t n;
		int r;
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			mw_error_set(error_r, "control socket %s: no answer within %d ms", path,
			             timeout_ms);
			goto done;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (n <= 0) {
			mw_error_set(error_r, "control socket %s: answer cut short", path);
			goto done;
		}
		if (mw_str_append(&in, buf, (size_t)n) < 0) {
			mw_error_set(error_r, "control socket %s: answer longer than %d bytes",
			             path, MW_PDCTL_REPLY_MAX);
			goto done;
		}
		if (in.len < 2 || in.buf[in.len - 1] != '\n' || in.buf[in.len - 2] != '\n')
			continue; /* no record ends here: decoding now would find nothing new */
		r = mw_pdctl_decode_reply(in.buf, in.len, reply_r, error_r);
		if (r < 0) {
			mw_error_prefix(error_r, "control socket %s: bad answer: ", path);
			goto done;
		}
		if (r > 0) {
			ret = 0;
			break;
		}
	}
done:
	close(fd);
	mw_str_free(&out);
	mw_str_free(&in);
	return ret;
}

/* mw_pdctl_format_limit - the line mailwardenctl prints for one limit */
void mw_pdctl_format_limit(const struct mw_pdctl_limit *l, char *buf, size_t size)
{
	char reset[32] = "";
	if (l->reset_after > 0)
		mw_fmt_duration(l->reset_after, reset, sizeof(reset));
	(void)snprintf(buf, size, "%s  used %" PRId64 "/%" PRId64 "  %s%s  (%s%s)", l->limit,
	               l->used, l->count, l->reset_after > 0 ? "resets in " : "idle", reset,
	               l->origin, l->degraded ? ", degraded" : "");
}
