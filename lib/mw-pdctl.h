/* mw-pdctl.h - mailwarden-policyd's control protocol: the one encoder, decoder and client of
   the records the daemon, the API and mailwardenctl exchange over the control socket. */
#ifndef MW_PDCTL_H
#define MW_PDCTL_H

#include "mw-util.h"

#define MW_PDCTL_TEXT_MAX     512          /* bytes of a text value */
#define MW_PDCTL_LINE_MAX     600          /* bytes of one name=value line, without its LF */
#define MW_PDCTL_REQUEST_MAX  1024         /* bytes of a whole request record */
#define MW_PDCTL_REPLY_MAX    (256 * 1024) /* bytes of a whole reply */
#define MW_PDCTL_LIMITS_MAX   64           /* limit records in one reply */
#define MW_PDCTL_INT_MAX      INT64_MAX    /* integers are 0..MW_PDCTL_INT_MAX, decimal */
#define MW_PDCTL_DEGRADED_MAX 16           /* degraded records in one reply */

/* status/reset: one subject's limits; health: the daemon's degraded components (its subject
   is not looked at: "daemon"); charge: one submission of the contact form named by subject
   from client, counted against its per-IP and per-form limits (the API's [forms] limit
   lines) atomically: both allow and both are charged, or neither */
enum mw_pdctl_command { MW_PDCTL_STATUS, MW_PDCTL_RESET, MW_PDCTL_HEALTH, MW_PDCTL_CHARGE };

struct mw_pdctl_request {
	enum mw_pdctl_command command;
	char subject[MW_PDCTL_TEXT_MAX + 1]; /* a user name or an IP address; charge: a form */
	/* charge only */
	char client[MW_PDCTL_TEXT_MAX + 1]; /* the submitter's IP address */
	int64_t ip_count, ip_window;        /* per client network: count per window seconds;
	                                       count 0 = no such limit */
	int64_t form_count, form_window;    /* per form */
};

/* A component of the daemon serving from its fallback (lib/mw-degraded.h). */
struct mw_pdctl_degraded {
	char component[MW_PDCTL_TEXT_MAX + 1]; /* a name of lib/mw-degraded.def */
	char reason[MW_PDCTL_TEXT_MAX + 1];    /* the reason word */
	int64_t since;                         /* Unix time it entered the state */
};

/* The usage of one limit. */
struct mw_pdctl_limit {
	char limit[MW_PDCTL_TEXT_MAX + 1];  /* the limit in config syntax */
	char origin[MW_PDCTL_TEXT_MAX + 1]; /* "file:line" or "store #ID" */
	int64_t used, count;                /* units in use of count */
	int64_t reset_after;                /* whole seconds (rounded up) until the counter is
	                                       empty again; 0 = idle */
	bool degraded;                      /* counted in memory while Redis is unreachable */
};

struct mw_pdctl_reply {
	bool ok;                             /* false: the daemon refused, reason in error */
	char subject[MW_PDCTL_TEXT_MAX + 1]; /* what the daemon looked at: "SCOPE VALUE" */
	char error[MW_PDCTL_TEXT_MAX + 1];
	int64_t cleared; /* reset: counters cleared; -1 = no such record */
	size_t nlimits;
	struct mw_pdctl_limit limits[MW_PDCTL_LIMITS_MAX];
	size_t ndegraded;    /* health: the degraded components (none: all healthy) */
	bool verdict;        /* charge: a verdict record came (allowed, retry_after) */
	bool allowed;        /* charge: every limit allowed, all were charged */
	int64_t retry_after; /* charge refused: whole seconds until it would pass */
	struct mw_pdctl_degraded degraded[MW_PDCTL_DEGRADED_MAX];
};

/* Encoders: append one record to out. -1 (out unchanged) when a value does not fit the
   format: a text with a control byte or longer than MW_PDCTL_TEXT_MAX, a negative number,
   or out's bound. */
int mw_pdctl_encode_request(mw_str *out, const struct mw_pdctl_request *req, mw_error *error_r);
int mw_pdctl_encode_limit(mw_str *out, const struct mw_pdctl_limit *l, mw_error *error_r);
int mw_pdctl_encode_degraded(mw_str *out, const struct mw_pdctl_degraded *dg, mw_error *error_r);
int mw_pdctl_encode_cleared(mw_str *out, int64_t count, mw_error *error_r);
int mw_pdctl_encode_verdict(mw_str *out, bool allowed, int64_t retry_after, mw_error *error_r);
int mw_pdctl_encode_ok(mw_str *out, const char *subject, mw_error *error_r);
int mw_pdctl_encode_error(mw_str *out, const char *reason, mw_error *error_r);
/* A whole reply (limit records, degraded records, the cleared record when cleared >= 0, the
 * verdict record when verdict is set, then ok or error). */
int mw_pdctl_encode_reply(mw_str *out, const struct mw_pdctl_reply *reply, mw_error *error_r);

/* mw_pdctl_frame: the first record of buf[0..len) ends at *len_r (its blank line included):
   1; 0 when it has not ended yet; -1 when it would be longer than max bytes. */
int mw_pdctl_frame(const char *buf, size_t len, size_t max, size_t *len_r);
/* Decoders: the whole of buf[0..len) must be exactly one request (request), or a complete
   reply (reply); anything else is -1 with the reason in error_r: an unknown record or field,
   a field twice or missing, a value that is not of its type or out of its range, a line or
   text too long, a control byte, bytes after the end. mw_pdctl_decode_reply returns 0 when
   buf is a correct beginning of a reply that has not ended yet (read more). */
int mw_pdctl_decode_request(const char *buf, size_t len, struct mw_pdctl_request *req_r,
                            mw_error *error_r);
int mw_pdctl_decode_reply(const char *buf, size_t len, struct mw_pdctl_reply *reply_r,
                          mw_error *error_r);

/* The client: connects to the control socket at path, sends req, reads and decodes the whole
   reply within timeout_ms. 0 with *reply_r (whose ok may be false: the daemon's refusal);
   -1 with error_r when the daemon cannot be reached or its answer is not a reply. */
int mw_pdctl_call(const char *path, const struct mw_pdctl_request *req, int timeout_ms,
                  struct mw_pdctl_reply *reply_r, mw_error *error_r);

/* The human form of one limit's usage, as mailwardenctl prints it:
   "LIMIT  used U/C  resets in 1h30m  (ORIGIN[, degraded])" or "...  idle  (...)". */
void mw_pdctl_format_limit(const struct mw_pdctl_limit *l, char *buf, size_t size);

#endif
