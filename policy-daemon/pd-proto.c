/* pd-proto.c - the Postfix policy delegation protocol parser of mailwarden-policyd.
 *
 * A request is name=value lines ended by a blank line. The parser is fed whatever bytes
 * the socket delivered and keeps at most one request (max_request bytes); every rule is
 * checked as the bytes arrive, so a hostile client is refused as soon as it breaks one and
 * never makes the buffer grow past the limit.
 *
 * Input is taken a line segment at a time (memchr for the LF, one memchr for a NUL, the
 * limits checked once per segment, one memcpy), and each name goes into a small
 * open-addressing table keyed by its hash, so the duplicate check costs one probe per line
 * instead of a comparison with every earlier name. The names the daemon reads are indexed
 * as their lines end, so a lookup by pd_request_known is one array access.
 *
 * Public: pd_proto_init, pd_proto_free, pd_proto_feed, pd_proto_request, pd_proto_reset,
 * pd_proto_pending, pd_request_get, pd_request_index, pd_request_known, pd_name_hash,
 * pd_known_attr_find.
 * Diagnostics: pd_proto_feed's error_r names the broken rule (never echoing input).
 */
#include "mw-build.h"
#include "pd-proto.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	size_t len;
} known_names[PD_A_COUNT] = {
    [PD_A_REQUEST] = {"request", 7},
    [PD_A_PROTOCOL_STATE] = {"protocol_state", 14},
    [PD_A_CLIENT_ADDRESS] = {"client_address", 14},
    [PD_A_SASL_USERNAME] = {"sasl_username", 13},
    [PD_A_SENDER] = {"sender", 6},
    [PD_A_RECIPIENT] = {"recipient", 9},
    [PD_A_INSTANCE] = {"instance", 8},
    [PD_A_RECIPIENT_COUNT] = {"recipient_count", 15},
    [PD_A_SIZE] = {"size", 4},
    [PD_A_POLICY_CONTEXT] = {"policy_context", 14},
};

/* pd_proto_init - an empty parser with the given limits */
void pd_proto_init(struct pd_proto *p, const struct pd_proto_limits *limits)
{
	size_t i;
	memset(p, 0, sizeof(*p));
	p->limits = *limits;
	if (p->limits.max_attrs > PD_ATTRS_MAX)
		p->limits.max_attrs = PD_ATTRS_MAX;
	if (p->limits.max_request > UINT32_MAX - 1)
		p->limits.max_request = UINT32_MAX - 1;
	if (p->limits.max_line > UINT32_MAX - 1)
		p->limits.max_line = UINT32_MAX - 1;
	for (i = 0; i < PD_A_COUNT; i++)
		p->known[i] = -1;
	p->buf = mw_malloc(p->limits.max_request + 1);
}

/* pd_proto_free - release the buffer */
void pd_proto_free(struct pd_proto *p)
{
	free(p->buf);
	p->buf = NULL;
}

/* pd_name_hash - the duplicate table's key of a name: eight bytes at a time, the tail with
   two overlapping fixed-size loads (no per-byte loop, no memcpy call: this runs for every
   line of every request) */
uint32_t pd_name_hash(const char *name, size_t len)
{
	uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15ULL, w;
	size_t n = len;
	while (n > 8) {
		memcpy(&w, name, 8);
		h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
		h ^= h >> 32;
		name += 8;
		n -= 8;
	}
	if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, name, 4);
		memcpy(&b, name + n - 4, 4);
		w = a | (uint64_t)b << 32;
	} else if (n > 0) {
		w = (unsigned char)name[0] | (uint64_t)(unsigned char)name[n / 2] << 8 |
		    (uint64_t)(unsigned char)name[n - 1] << 16;
	} else {
		w = 0;
	}
	h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
	h ^= h >> 29;
	return (uint32_t)h ^ (uint32_t)(h >> 32);
}

/* known_is - name[0..len) is known attribute a */
static int known_is(const char *name, size_t len, enum pd_known_attr a)
{
	if (known_names[a].len != len || memcmp(known_names[a].name, name, len) != 0)
		return -1;
	return (int)a;
}

/* pd_known_attr_find - the known attribute called name[0..len), or -1 (by length first: it
   runs for every line of every request) */
int pd_known_attr_find(const char *name, size_t len)
{
	switch (len) {
	case 4:
		return known_is(name, len, PD_A_SIZE);
	case 6:
		return known_is(name, len, PD_A_SENDER);
	case 7:
		return known_is(name, len, PD_A_REQUEST);
	case 8:
		return known_is(name, len, PD_A_INSTANCE);
	case 9:
		return known_is(name, len, PD_A_RECIPIENT);
	case 13:
		return known_is(name, len, PD_A_SASL_USERNAME);
	case 14:
		if (name[0] == 'c')
			return known_is(name, len, PD_A_CLIENT_ADDRESS);
		if (name[1] == 'r')
			return known_is(name, len, PD_A_PROTOCOL_STATE);
		return known_is(name, len, PD_A_POLICY_CONTEXT);
	case 15:
		return known_is(name, len, PD_A_RECIPIENT_COUNT);
	default:
		return -1;
	}
}

/* The bytes allowed in an attribute name: [A-Za-z0-9_-] (a table: one load per byte). */
static const bool name_chars[256] = {
    ['-'] = true, ['_'] = true, ['0' ... '9'] = true, ['A' ... 'Z'] = true, ['a' ... 'z'] = true,
};

/* name_char - a byte allowed in an attribute name */
static bool name_char(char c)
{
	return name_chars[(unsigned char)c];
}

/* add_name - enter name[0..nlen) as attribute p->nattrs; -1 when it is already there */
static int add_name(struct pd_proto *p, const char *name, size_t nlen)
{
	uint32_t slot = pd_name_hash(name, nlen) & (PD_NAME_SLOTS - 1);
	for (;; slot = (slot + 1) & (PD_NAME_SLOTS - 1)) {
		unsigned other = p->names[slot];
		const char *oname;
		if (other == 0)
			break;
		oname = p->buf + p->offs[other - 1];
		/* the earlier name ends where its value starts, minus the '=' */
		if (p->voffs[other - 1] - p->offs[other - 1] - 1 == nlen &&
		    memcmp(oname, name, nlen) == 0)
			return -1;
	}
	p->names[slot] = (uint16_t)(p->nattrs + 1);
	p->slot_of[p->nattrs] = (uint16_t)slot;
	return 0;
}

/* end_line - check the line buf[line_start..len) (its LF not stored) and record it */
static int end_line(struct pd_proto *p, mw_error *error_r)
{
	char *line = p->buf + p->line_start;
	size_t n = p->len - p->line_start, i, nlen;
	char *eq;
	int k;
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
	/* the name and its '=' in one pass; the rarer errors are told apart afterwards */
	for (i = 0; i < n && name_char(line[i]); i++)
		;
	if (i == n || line[i] != '=' || i == 0) {
		eq = memchr(line, '=', n);
		if (eq == NULL)
			mw_error_set(error_r, "attribute line without '='");
		else if (eq == line)
			mw_error_set(error_r, "attribute with an empty name");
		else
			mw_error_set(error_r, "attribute name with a forbidden character");
		return -1;
	}
	eq = line + i;
	nlen = i;
	if (p->nattrs >= p->limits.max_attrs) {
		mw_error_set(error_r, "more than %u attributes", p->limits.max_attrs);
		return -1;
	}
	line[n] = '\0';
	*eq = '\0';
	p->offs[p->nattrs] = (uint32_t)p->line_start;
	p->voffs[p->nattrs] = (uint32_t)(p->line_start + nlen + 1);
	if (add_name(p, line, nlen) < 0) {
		mw_error_set(error_r, "attribute %s given twice", line);
		return -1;
	}
	k = pd_known_attr_find(line, nlen);
	if (k >= 0)
		p->known[k] = (int16_t)p->nattrs;
	p->nattrs++;
	p->len = p->line_start + n + 1; /* keep the NUL that ends the value */
	p->line_start = p->len;
	return 0;
}

/* find_lf_or_nul - offset of the first LF or NUL in s[0..n), or n: eight bytes at a time
   (lines are short: a libc call per line and per byte class cost more than the scan) */
static size_t find_lf_or_nul(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	const uint64_t lfs = ones * '\n';
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w, x;
		memcpy(&w, s + i, 8);
		x = w ^ lfs;
		/* a byte of w is 0, or a byte of x is 0 (an LF in w) */
		if ((((w - ones) & ~w) | ((x - ones) & ~x)) & highs)
			break;
	}
	for (; i < n; i++)
		if (s[i] == '\n' || s[i] == '\0')
			return i;
	return n;
}

/* pd_proto_feed - consume bytes until a request is complete or the input breaks a rule */
int pd_proto_feed(struct pd_proto *p, const char *data, size_t len, size_t *used_r,
                  mw_error *error_r)
{
	size_t i = 0;
	*used_r = 0;
	if (p->done) {
		mw_error_set(error_r, "pd_proto_feed: previous request not reset");
		return -1;
	}
	while (i < len) {
		size_t seg = find_lf_or_nul(data + i, len - i);
		bool nul = seg < len - i && data[i + seg] == '\0';
		bool lf = seg < len - i && !nul;
		/* the invariants that keep every write inside buf: the current line holds at
		   most max_line + 1 bytes (a CR may follow the last allowed byte), and
		   len <= received <= max_request (a stored line never outgrows its input) */
		size_t line_used = p->len - p->line_start;
		size_t line_room = p->limits.max_line + 1 - line_used;
		size_t req_room = p->limits.max_request - p->received;
		int r;
		if (line_used > p->limits.max_line + 1 || p->len > p->received ||
		    p->received > p->limits.max_request) {
			mw_error_set(error_r, "pd_proto_feed: parser state corrupt");
			return -1;
		}
		/* the first offending byte decides: the segment's bytes (line, then request
		   limit), then the byte that ends it (a NUL; an LF beyond the request limit) */
		if (line_room < seg || req_room < seg) {
			if (line_room <= req_room) {
				mw_error_set(error_r, "line longer than %zu bytes",
				             p->limits.max_line);
				return -1;
			}
			mw_error_set(error_r, "request larger than %zu bytes",
			             p->limits.max_request);
			return -1;
		}
		if (nul) {
			mw_error_set(error_r, "NUL byte in request");
			return -1;
		}
		if (lf && req_room == seg) {
			mw_error_set(error_r, "request larger than %zu bytes",
			             p->limits.max_request);
			return -1;
		}
		memcpy(p->buf + p->len, data + i, seg);
		p->len += seg;
		p->received += seg;
		i += seg;
		if (!lf)
			break;
		i++; /* the LF */
		p->received++;
		if (p->len - p->line_start > p->limits.max_line && p->buf[p->len - 1] != '\r') {
			mw_error_set(error_r, "line longer than %zu bytes", p->limits.max_line);
			return -1;
		}
		r = end_line(p, error_r);
		if (r < 0)
			return -1;
		if (r > 0) {
			*used_r = i;
			return 1;
		}
	}
	*used_r = len;
	return 0;
}

/* pd_proto_request - the complete request's attributes, indexed */
void pd_proto_request(struct pd_proto *p, struct pd_request *req_r)
{
	unsigned i;
	req_r->count = p->nattrs;
	for (i = 0; i < p->nattrs; i++) {
		req_r->attrs[i].name = p->buf + p->offs[i];
		req_r->attrs[i].value = p->buf + p->voffs[i];
	}
	for (i = 0; i < PD_A_COUNT; i++)
		req_r->known[i] = p->known[i] >= 0 ? req_r->attrs[p->known[i]].value : NULL;
	req_r->indexed = true;
}

/* pd_proto_reset - ready for the next request */
void pd_proto_reset(struct pd_proto *p)
{
	unsigned i;
	for (i = 0; i < p->nattrs; i++)
		p->names[p->slot_of[i]] = 0;
	for (i = 0; i < PD_A_COUNT; i++)
		p->known[i] = -1;
	p->len = 0;
	p->line_start = 0;
	p->received = 0;
	p->nattrs = 0;
	p->done = false;
}

/* pd_proto_pending - part of a request has arrived */
bool pd_proto_pending(const struct pd_proto *p)
{
	return p->received > 0;
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

/* pd_request_index - fill req->known from req->attrs (the first of a name wins) */
void pd_request_index(struct pd_request *req)
{
	unsigned i;
	for (i = 0; i < PD_A_COUNT; i++)
		req->known[i] = NULL;
	for (i = 0; i < req->count; i++) {
		int k = pd_known_attr_find(req->attrs[i].name, strlen(req->attrs[i].name));
		if (k >= 0 && req->known[k] == NULL)
			req->known[k] = req->attrs[i].value;
	}
	req->indexed = true;
}

/* pd_request_known - a known attribute's value, "" when absent */
const char *pd_request_known(const struct pd_request *req, enum pd_known_attr a)
{
	if (!req->indexed)
		return pd_request_get(req, known_names[a].name);
	return req->known[a] != NULL ? req->known[a] : "";
}
