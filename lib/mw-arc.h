/* mw-arc.h - ARC (RFC 8617): verify the chain of an inbound message; seal a message.
 *
 * Debian 12 has no ARC library: this is built on OpenSSL and DKIM's canonicalisations
 * (RFC 6376 3.4), with key records fetched through mw-dns.
 *
 * Verification, per message:
 *   v = mw_arc_verify_new();
 *   mw_arc_verify_header(v, name, value, len)  every header field in order, value as received
 *                                              after the colon (leading blank kept)
 *   mw_arc_verify_eoh(v);  mw_arc_verify_body(v, chunk, len) (CRLF line ends)
 *   mw_arc_verify_eom(v, dns, &res);  mw_arc_verify_free(&v);
 * The chain passes only when every structural rule holds (instances 1..N, one ARC-Seal,
 * ARC-Message-Signature and ARC-Authentication-Results each, N <= 50, cv=none on the first
 * seal and cv=pass on every later one), the newest ARC-Message-Signature verifies and every
 * ARC-Seal verifies. A key that could not be fetched for a temporary reason makes the result
 * temperror, never pass. No ARC header field at all: none.
 *
 * Sealing (a message this host passes on): mw_arc_seal computes the next set (instance N+1)
 * for a message whose chain verified as CV, with this host's Authentication-Results text as
 * the new ARC-Authentication-Results.
 */
#ifndef MW_ARC_H
#define MW_ARC_H

#include "mw-dns.h"
#include "mw-headers.h"
#include "mw-util.h"

#define MW_ARC_MAX_SETS 50

struct mw_dkim_key;

struct mw_arc_result {
	enum mw_auth_result result;            /* none, pass, fail, temperror */
	unsigned sets;                         /* N: the highest instance (0 = no ARC header) */
	char reason[96];                       /* why fail/temperror */
	char seal_domain[MW_DNS_NAME_MAX + 1]; /* d= of ARC-Seal N (pass only) */
	char *aar; /* ARC-Authentication-Results N after "i=N;" (pass only) */
};

typedef struct mw_arc_verify mw_arc_verify;

mw_arc_verify *mw_arc_verify_new(void);
void mw_arc_verify_free(mw_arc_verify **v);
/* -1 when the header is more than the verifier keeps (the caller's limits come first) */
int mw_arc_verify_header(mw_arc_verify *v, const char *name, const char *value, size_t len);
void mw_arc_verify_eoh(mw_arc_verify *v);
void mw_arc_verify_body(mw_arc_verify *v, const char *chunk, size_t len);
/* Fills res (free res->aar with free()). */
void mw_arc_verify_eom(mw_arc_verify *v, mw_dns *dns, struct mw_arc_result *res_r);
/* The seal of this host for the message the verifier saw: the values (no leading blank,
   folded with "\n\t") of ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results of
   instance N+1, to insert at the top in that order (ARC-Seal first). AR is the value of our
   Authentication-Results (authserv-id first). CV is the chain's result as verified: pass,
   none or fail (anything else: fail). sign_subject false leaves Subject out of the
   ARC-Message-Signature (for a caller that changes it afterwards, e.g. a spam prefix).
   Refused (-1) when the chain already has 50 sets. Call after mw_arc_verify_eom. */
int mw_arc_seal(mw_arc_verify *v, const struct mw_dkim_key *key, const char *ar,
                enum mw_auth_result cv, bool sign_subject, unsigned long now, mw_str *seal_r,
                mw_str *ams_r, mw_str *aar_r, mw_error *error_r);

#endif
