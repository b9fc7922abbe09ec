/* pd-proto.c - the Postfix policy delegation protocol parser of mailwarden-policyd.
 *
 * A request is name=value lines ended by a blank line. The parser is fed whatever bytes
 * the socket delivered and keeps at most one request (max_request bytes); every rule is
 * checked as the bytes arrive, so a hostile client is refused as soon as it breaks one and
 * never makes the buffer grow past the limit.
 *
 * Public: pd_proto_init, pd_proto_free, pd_proto_feed, pd_proto_request, pd_proto_reset,
 * pd_proto_pending, pd_request_get.
 * Diagnostics: pd_proto_feed's error_r names the broken rule (never echoing input).
 */
#include "mw-build.h"
#include "pd-proto.h"

#include <stdlib.h>
#include <string.h>

/* pd_proto_init - an empty parser with the given limits */
void pd_proto_init(struct pd_proto *p, const struct pd_proto_limits *limits)
{
	memset(p, 0, sizeof(*p));
	p->limits = *limits;
	if (p->limits.max_attrs > PD_ATTRS_MAX)
		p->limits.max_attrs = PD_ATTRS_MAX;
	p->buf = mw_malloc(p->limits.max_request + 1);
}

/* pd_proto_free - release the buffer */
void pd_proto_free(struct pd_proto *p)
{
	free(p->buf);
	p->buf = NULL;
}

/* name_char - a byte allowed in an attribute name */
static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* end_line - check the line buf[line_start..len) (its LF not stored) and record it */
static int end_line(struct pd_proto *p, mw_error *error_r)
{
	char *line = p->buf + p->line_start;
	size_t n = p->len - p->line_start, i;
	char *eq;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	if (n == 0) {
		if (p->nattrs == 0) {
			mw_error_set(error_r, "empty request (blank line without attributes)");
			return -1;
		}
		p->done = true;
		return 1;
	}
	eq = memchr(line, '=', n);
	if (eq == NULL) {
		mw_error_set(error_r, "attribute line without '='");
		return -1;
	}
	if (eq == line) {
		mw_error_set(error_r, "attribute with an empty name");
		return -1;
	}
	for (i = 0; line + i < eq; i++)
		if (!name_char(line[i])) {
			mw_error_set(error_r, "attribute name with a forbidden character");
			return -1;
		}
	if (p->nattrs >= p->limits.max_attrs) {
		mw_error_set(error_r, "more than %u attributes", p->limits.max_attrs);
		return -1;
	}
	line[n] = '\0';
	*eq = '\0';
	for (i = 0; i < p->nattrs; i++)
		if (strcmp(p->buf + p->offs[i], line) == 0) {
			mw_error_set(error_r, "attribute %s given twice", line);
			return -1;
		}
	p->offs[p->nattrs++] = p->line_start;
	p->len = p->line_start + n + 1; /* keep the NUL that ends the value */
	p->line_start = p->len;
	return 0;
}

/* pd_proto_feed - consume bytes until a request is complete or the input breaks a rule */
int pd_proto_feed(struct pd_proto *p, const char *data, size_t len, size_t *used_r,
                  mw_error *error_r)
{
	size_t i;
	*used_r = 0;
	if (p->done) {
		mw_error_set(error_r, "pd_proto_feed: previous request not reset");
		return -1;
	}
	for (i = 0; i < len; i++) {
		char c = data[i];
		int r;
		if (c == '\0') {
			mw_error_set(error_r, "NUL byte in request");
			return -1;
		}
		if (c != '\n') {
			if (p->len - p->line_start >= p->limits.max_line + 1) { /* +1: a CR */
				mw_error_set(error_r, "line longer than %zu bytes",
				             p->limits.max_line);
				return -1;
			}
			if (p->len >= p->limits.max_request) {
				mw_error_set(error_r, "request larger than %zu bytes",
				             p->limits.max_request);
				return -1;
			}
			p->buf[p->len++] = c;
			continue;
		}
		if (p->len - p->line_start > p->limits.max_line && p->buf[p->len - 1] != '\r') {
			mw_error_set(error_r, "line longer than %zu bytes", p->limits.max_line);
			return -1;
		}
		r = end_line(p, error_r);
		if (r < 0)
			return -1;
		if (r > 0) {
			*used_r = i + 1;
			return 1;
		}
	}
	*used_r = len;
	return 0;
}

/* pd_proto_request - the complete request's attributes */
void pd_proto_request(struct pd_proto *p, struct pd_request *req_r)
{
	unsigned i;
	req_r->count = p->nattrs;
	for (i = 0; i < p->nattrs; i++) {
		req_r->attrs[i].name = p->buf + p->offs[i];
		req_r->attrs[i].value = req_r->attrs[i].name + strlen(req_r->attrs[i].name) + 1;
	}
}

/* pd_proto_reset - ready for the next request */
void pd_proto_reset(struct pd_proto *p)
{
	p->len = 0;
	p->line_start = 0;
	p->nattrs = 0;
	p->done = false;
}

/* pd_proto_pending - part of a request has arrived */
bool pd_proto_pending(const struct pd_proto *p)
{
	return p->len > 0 || p->nattrs > 0;
}

/* pd_request_get - an attribute's value, "" when absent */
const char *pd_request_get(const struct pd_request *req, const char *name)
{
	unsigned i;
	for (i = 0; i < req->count; i++)
		if (strcmp(req->attrs[i].name, name) == 0)
			return req->attrs[i].value;
	return "";
}
