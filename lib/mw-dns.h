/* mw-dns.h - DNS lookups through libunbound with our own servers and a per-query timeout.
 *
 * One mw_dns per process (or per configuration snapshot), shared by every thread: queries
 * run on libunbound's own resolver thread and each caller waits for its answer at most
 * timeout_ms. The result distinguishes a name that does not exist (NXDOMAIN), a name
 * without records of that type (NODATA), and a temporary failure (timeout, SERVFAIL,
 * REFUSED, the server unreachable): callers must treat the last as "temperror", never as
 * an absence of records.
 */
#ifndef MW_DNS_H
#define MW_DNS_H

#include "mw-util.h"

#define MW_DNS_SERVERS_MAX 8
#define MW_DNS_NAME_MAX    253 /* presentation form, without the trailing dot */
#define MW_DNS_MAX_RECORDS 64  /* an answer with more records is a permanent failure */

/* RR types we ask for (values as on the wire). */
enum {
	MW_DNS_A = 1,
	MW_DNS_PTR = 12,
	MW_DNS_MX = 15,
	MW_DNS_TXT = 16,
	MW_DNS_AAAA = 28,
	MW_DNS_SRV = 33,
};

enum mw_dns_status {
	MW_DNS_OK,       /* at least one record of the type */
	MW_DNS_NXDOMAIN, /* the name does not exist */
	MW_DNS_NODATA,   /* the name exists, no record of the type */
	MW_DNS_TEMPFAIL, /* timeout, SERVFAIL, unreachable server: try again later */
	MW_DNS_PERMFAIL, /* refused query (bad name), FORMERR, oversized or corrupt answer */
};

/* One answer. For TXT each record is the concatenation of its character-strings
   (NUL-terminated; len excludes the NUL; embedded NULs are kept in len). For A (4 bytes)
   and AAAA (16 bytes) records the raw address; for MX and PTR the target host name in
   presentation form without the trailing dot (MX preference in pref[]); for SRV
   "PRIORITY WEIGHT PORT TARGET" (TARGET without the trailing dot, "." for the root). */
struct mw_dns_answer {
	enum mw_dns_status status;
	size_t count;
	char *rec[MW_DNS_MAX_RECORDS];
	size_t len[MW_DNS_MAX_RECORDS];
	unsigned pref[MW_DNS_MAX_RECORDS];
	unsigned ttl;
};

typedef struct mw_dns mw_dns;

/* servers: "" for the system's /etc/resolv.conf, else a list of IPv4/IPv6 addresses
   separated by blanks or commas, each with an optional port as "ADDR@PORT"
   ("127.0.0.1@5353, ::1"). timeout_ms: how long one query may take (1..600000).
   Returns NULL with a reason in error_r on a bad server list or a libunbound error. */
mw_dns *mw_dns_new(const char *servers, unsigned timeout_ms, mw_error *error_r);
void mw_dns_free(mw_dns **dns);

/* Looks up NAME (presentation form, trailing dot optional) of TYPE (one of the enum above).
   Always fills ans_r (free it with mw_dns_answer_free) and returns its status; a name that
   is not a valid host name is MW_DNS_PERMFAIL without a query. error_r says why a
   TEMPFAIL or PERMFAIL happened. Thread-safe. */
enum mw_dns_status mw_dns_query(mw_dns *dns, const char *name, int type,
                                struct mw_dns_answer *ans_r, mw_error *error_r);
void mw_dns_answer_free(struct mw_dns_answer *ans);

const char *mw_dns_status_str(enum mw_dns_status status);

/* The part of mw_dns_query after the lookup: turns libunbound's result for QNAME (used in
   messages only) and TYPE into ans_r (always filled; free it with mw_dns_answer_free) and
   returns its status. An rdata that does not fit the type (A/AAAA length, TXT strings,
   MX/PTR names) or more than MW_DNS_MAX_RECORDS records make the whole answer
   MW_DNS_PERMFAIL. Exposed for the fuzz target (tests/fuzz/fuzz-dns.c). */
struct ub_result;
enum mw_dns_status mw_dns_answer_from_result(const struct ub_result *r, const char *qname, int type,
                                             struct mw_dns_answer *ans_r, mw_error *error_r);

/* Parses a server list as mw_dns_new() does, writing each entry in libunbound's
   "ADDR@PORT" form to out[] (at most MW_DNS_SERVERS_MAX). Returns the count or -1. */
int mw_dns_parse_servers(const char *servers, char out[][64], size_t max, mw_error *error_r);
/* A daemon's resolver health as mw-degraded.def component ID (e.g. MW_DEGRADED_MILTER_DNS):
   degraded after several queries in a row got no answer (timeout, unreachable, SERVFAIL),
   recovered at the next answered one. Call before the first query; -1: off (the default). */
void mw_dns_watch(mw_dns *dns, int id);

#endif
