/* pd-proto.h - the Postfix policy delegation protocol: an incremental, bounded request parser. */
#ifndef PD_PROTO_H
#define PD_PROTO_H

#include "mw-util.h"

#define PD_ATTRS_MAX 256 /* hard ceiling of max_attributes */

struct pd_proto_limits {
	size_t max_line;    /* bytes of one name=value line, without its LF */
	size_t max_request; /* bytes of a whole request, line ends included */
	unsigned max_attrs; /* name=value lines per request (<= PD_ATTRS_MAX) */
};

struct pd_attr {
	const char *name, *value;
};

/* A complete request: pointers into the parser's buffer, valid until the next feed/reset. */
struct pd_request {
	unsigned count;
	struct pd_attr attrs[PD_ATTRS_MAX];
};

struct pd_proto {
	struct pd_proto_limits limits;
	char *buf; /* the request so far (max_request + 1 bytes) */
	size_t len;
	size_t line_start;
	unsigned nattrs;
	size_t offs[PD_ATTRS_MAX]; /* start of each complete line */
	bool done;                 /* a complete request waits in buf */
};

void pd_proto_init(struct pd_proto *p, const struct pd_proto_limits *limits);
void pd_proto_free(struct pd_proto *p);
/* Consumes bytes of data until a request is complete (1, *used_r = bytes consumed), all
   of data is consumed without completing one (0), or the input breaks a rule (-1 with the
   reason in error_r; the connection must be closed). Rules: LF-terminated lines (an
   optional CR before the LF is dropped), no NUL byte, each line at most max_line bytes
   and of the form name=value with a non-empty name of [A-Za-z0-9_-], no name twice, at most
   max_attrs lines and max_request bytes, and at least one attribute before the blank line. */
int pd_proto_feed(struct pd_proto *p, const char *data, size_t len, size_t *used_r,
                  mw_error *error_r);
/* The complete request (after feed returned 1). */
void pd_proto_request(struct pd_proto *p, struct pd_request *req_r);
/* Forgets the request (call after answering it). */
void pd_proto_reset(struct pd_proto *p);
/* Part of a request has arrived (the slow-client timer runs). */
bool pd_proto_pending(const struct pd_proto *p);
/* The value of NAME, or "" when absent. */
const char *pd_request_get(const struct pd_request *req, const char *name);

#endif
