/* pd-proto.h - the Postfix policy delegation protocol: an incremental, bounded request parser. */
#ifndef PD_PROTO_H
#define PD_PROTO_H

#include "mw-util.h"

#include <stdint.h>

#define PD_ATTRS_MAX  256 /* hard ceiling of max_attributes */
#define PD_NAME_SLOTS 512 /* duplicate-name table: a power of two >= 2 * PD_ATTRS_MAX */

/* The attributes the daemon reads, indexed once per request (pd_request_known). */
enum pd_known_attr {
	PD_A_REQUEST,
	PD_A_PROTOCOL_STATE,
	PD_A_CLIENT_ADDRESS,
	PD_A_SASL_USERNAME,
	PD_A_SENDER,
	PD_A_RECIPIENT,
	PD_A_INSTANCE,
	PD_A_RECIPIENT_COUNT,
	PD_A_SIZE,
	PD_A_POLICY_CONTEXT,
	PD_A_COUNT
};

struct pd_proto_limits {
	size_t max_line;    /* bytes of one name=value line, without its LF */
	size_t max_request; /* bytes of a whole request, line ends included */
	unsigned max_attrs; /* name=value lines per request (<= PD_ATTRS_MAX) */
};

struct pd_attr {
	const char *name, *value;
};

/* A complete request: pointers into the parser's buffer, valid until the next feed/reset.
   known[] (when indexed) holds the value of each pd_known_attr, NULL when absent. */
struct pd_request {
	unsigned count;
	bool indexed;
	const char *known[PD_A_COUNT];
	struct pd_attr attrs[PD_ATTRS_MAX];
};

struct pd_proto {
	struct pd_proto_limits limits;
	char *buf;  /* the request so far (max_request + 1 bytes) */
	size_t len; /* bytes stored in buf (each line's LF, and a CR before it, as one NUL) */
	size_t line_start; /* where the current line starts in buf */
	size_t received;   /* bytes of the request taken from the input, line ends included:
	                      len <= received <= max_request, so buf never overflows */
	unsigned nattrs;
	uint32_t offs[PD_ATTRS_MAX];    /* start of each complete line (its name) */
	uint32_t voffs[PD_ATTRS_MAX];   /* start of each value */
	uint16_t slot_of[PD_ATTRS_MAX]; /* each name's slot in names[] */
	uint16_t names[PD_NAME_SLOTS];  /* open addressing by name hash: attribute index + 1 */
	int16_t known[PD_A_COUNT];      /* attribute index of each known name, -1 = absent */
	bool done;                      /* a complete request waits in buf */
};

void pd_proto_init(struct pd_proto *p, const struct pd_proto_limits *limits);
void pd_proto_free(struct pd_proto *p);
/* Consumes bytes of data until a request is complete (1, *used_r = bytes consumed), all
   of data is consumed without completing one (0), or the input breaks a rule (-1 with the
   reason in error_r; the connection must be closed). Rules: LF-terminated lines (an
   optional CR before the LF is dropped), no NUL byte, each line at most max_line bytes
   and of the form name=value with a non-empty name of [A-Za-z0-9_-], no name twice, at most
   max_attrs lines and max_request bytes (every byte counts: each LF, a CR before it and the
   final blank line), and at least one attribute before the blank line. The outcome does
   not depend on how the bytes are split between calls. */
int pd_proto_feed(struct pd_proto *p, const char *data, size_t len, size_t *used_r,
                  mw_error *error_r);
/* The complete request (after feed returned 1), indexed. */
void pd_proto_request(struct pd_proto *p, struct pd_request *req_r);
/* Forgets the request (call after answering it). */
void pd_proto_reset(struct pd_proto *p);
/* Part of a request has arrived (the slow-client timer runs). */
bool pd_proto_pending(const struct pd_proto *p);
/* The value of NAME, or "" when absent. */
const char *pd_request_get(const struct pd_request *req, const char *name);
/* Builds req->known from req->attrs (for requests not made by pd_proto_request). */
void pd_request_index(struct pd_request *req);
/* The value of a known attribute, or "" when absent. */
const char *pd_request_known(const struct pd_request *req, enum pd_known_attr a);
/* The hash the duplicate check uses for a name (exposed for tests). */
uint32_t pd_name_hash(const char *name, size_t len);
/* The known attribute called name[0..len), or -1. */
int pd_known_attr_find(const char *name, size_t len);

#endif
