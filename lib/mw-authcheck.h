/* mw-authcheck.h - inbound message authentication: SPF, DKIM, DMARC, Authentication-Results.
 *
 * Libraries: libspf2 (SPF), libopendkim (DKIM verification), libopendmarc (DMARC policy
 * and alignment), libpsl (organisational domain), all resolving through mw-dns.
 *
 * Use (the milter, per message; the tests/tools/mw-authcheck-tool driver does the same):
 *
 *   once:          lib = mw_authcheck_lib_new(&settings, &err);
 *   per message:   ac = mw_authcheck_new(lib);
 *                  mw_authcheck_connect(ac, client_ip, helo, &err);
 *                  mw_authcheck_mail_from(ac, "<user@example.com>", &err);
 *                  mw_authcheck_header(ac, name, value, len, &err);   (each header, in order)
 *                  mw_authcheck_eoh(ac);
 *                  mw_authcheck_body(ac, chunk, len);                 (any number of chunks)
 *                  res = mw_authcheck_eom(ac);   (runs SPF, DKIM, DMARC; never fails)
 *                  mw_authcheck_format_ar(authserv_id, res, &str);    header value to add
 *                  mw_authcheck_verdict(res, &policy, &verdict);      what to do
 *                  mw_authcheck_free(&ac);
 *   at exit:       mw_authcheck_lib_free(&lib);
 *
 * Header values are the bytes after the colon exactly as received (the milter negotiates
 * SMFIP_HDR_LEADSPC so the leading space is kept; without it, pass " " + value). Folded
 * lines may use LF or CRLF; bare LFs are turned into CRLF for DKIM. Body chunks must use
 * CRLF line ends (what Postfix sends a milter).
 *
 * A DNS failure (timeout, SERVFAIL, server down) makes the affected result "temperror",
 * never "pass" and never "none". The verdict helper turns a temperror that would decide
 * acceptance into a 451 4.7.1 temporary failure (unless configured otherwise).
 */
#ifndef MW_AUTHCHECK_H
#define MW_AUTHCHECK_H

#include "mw-dmarc.h"
#include "mw-dns.h"
#include "mw-headers.h"
#include "mw-util.h"

#define MW_AUTH_MAX_SIGS          8    /* more DKIM signatures than this are not evaluated */
#define MW_AUTH_MAX_HEADERS       1000 /* more header fields than this: mw_authcheck_header fails */
#define MW_AUTH_MAX_HEADER_LEN    65536 /* one header field (name + value) */
#define MW_AUTH_MAX_HEADERS_TOTAL (1024 * 1024)

/* RFC 8601 result words: enum mw_auth_result and mw_auth_result_str, in mw-headers.h. */

enum mw_dmarc_policy {
	MW_DMARC_POLICY_ABSENT, /* no DMARC record (or none could be fetched) */
	MW_DMARC_POLICY_NONE,
	MW_DMARC_POLICY_QUARANTINE,
	MW_DMARC_POLICY_REJECT,
};

struct mw_auth_dkim {
	enum mw_auth_result result;
	char domain[MW_DNS_NAME_MAX + 1]; /* d= (lower case) */
	char selector[64];                /* s= */
	char reason[96];                  /* a short why for fail/permerror/temperror */
};

struct mw_auth_results {
	/* SPF of MAIL FROM (or of postmaster@HELO for the null sender) and of HELO */
	enum mw_auth_result spf;
	enum mw_auth_result spf_helo;
	char spf_mailfrom[MW_DNS_NAME_MAX + 72]; /* smtp.mailfrom: the address checked */
	char spf_domain[MW_DNS_NAME_MAX + 1];    /* its domain */
	char helo[MW_DNS_NAME_MAX + 1];

	size_t dkim_count; /* signatures evaluated (at most MW_AUTH_MAX_SIGS) */
	struct mw_auth_dkim dkim[MW_AUTH_MAX_SIGS];

	/* DMARC for the header From domain */
	enum mw_auth_result dmarc;   /* none, pass, fail, temperror, permerror */
	enum mw_dmarc_policy policy; /* the published policy that applies (p= or sp=) */
	bool dmarc_spf_aligned;
	bool dmarc_dkim_aligned;
	char from_domain[MW_DNS_NAME_MAX + 1]; /* "" when From is missing or unparseable */
	size_t from_count;                     /* addresses in From (DMARC needs exactly one) */
	char from_problem[64]; /* why from_domain is "" ("2 From header fields", ...) */
	/* the envelope sender did not parse: its domain (after the last '@', normalised) or ""
	   when even that is not a host name */
	bool envelope_invalid;
	char envelope_domain[MW_DNS_NAME_MAX + 1];
	/* Sender: (readers show it as "on behalf of"): sender_problem is why it is unusable
	   (repeated, unparseable, not one address; "" when absent or fine); sender_domain is
	   its one address's domain, sender_authenticated whether a passing DKIM signature or a
	   passing SPF identity is that domain or a parent of it */
	char sender_problem[64];
	char sender_domain[MW_DNS_NAME_MAX + 1];
	bool sender_authenticated;
	char reason[160]; /* why dmarc is temperror/permerror, for the log */
	/* DMARCbis (dmarc_mode = dmarcbis): the record's t=y (the policy is not applied), the
	   name the governing record was found at, and which of its tags applied ("p", "sp",
	   "np"); DNS names asked for the DMARC records of this message (the walk's cost) */
	bool dmarc_testing;
	char dmarc_record_domain[MW_DNS_NAME_MAX + 1];
	char dmarc_policy_tag[3];
	unsigned dmarc_lookups;
	/* for aggregate reports (lib/mw-dmarc-agg): the governing record's text (both modes;
	   "" without one), the SPF identity's scope (the null sender's is HELO), and the From
	   domain's organisational domain (RFC 7489: public suffix list; DMARCbis: the tree walk,
	   computed only with settings.want_org_domain, its lookups not in dmarc_lookups) */
	char dmarc_record[MW_DMARC_RECORD_MAX];
	bool spf_scope_helo;
	char dmarc_org_domain[MW_DNS_NAME_MAX + 1];

	/* ARC (RFC 8617): the chain's result (none when the message has no ARC header field),
	   its sets, the sealer of the newest set; dmarc_override: DMARC failed but the chain
	   passes, its newest seal is a trusted forwarder's and that forwarder's
	   ARC-Authentication-Results shows DMARC, or an aligned DKIM/SPF, passing: the
	   verdict does not apply the DMARC policy (the A-R header says so) */
	enum mw_auth_result arc;
	unsigned arc_sets;
	char arc_seal_domain[MW_DNS_NAME_MAX + 1];
	char arc_reason[96];
	bool dmarc_override;
	char client_ip[46]; /* for smtp.remote-ip */

	bool temperror; /* some check met a temporary DNS failure */
};

/* Process-wide state: the resolver and libopendkim's library handle. */
struct mw_authcheck_settings {
	const char *dns_servers; /* mw_dns_new() form; "" = /etc/resolv.conf */
	unsigned dns_timeout_ms;
	const char *psl_file;    /* public suffix list (Mozilla format) for libopendmarc's
	                            alignment; NULL = the Debian default
	                            /usr/share/publicsuffix/public_suffix_list.dat */
	bool dmarc_rfc7489;      /* RFC 7489 (libopendmarc, public suffix list) instead of RFC 9989
	                            (DNS tree walk, psd=, np=, t=; mw-dmarc) */
	const char *arc_trusted; /* ARC sealing domains (d= of ARC-Seal) trusted to vouch for
	                            mail whose DMARC fails after forwarding; blank/comma list */
	bool want_org_domain;    /* DMARCbis: also find the From domain's organisational
	                            domain when it has a policy (more lookups: reports) */
};

typedef struct mw_authcheck_lib mw_authcheck_lib;
typedef struct mw_authcheck mw_authcheck;

mw_authcheck_lib *mw_authcheck_lib_new(const struct mw_authcheck_settings *settings,
                                       mw_error *error_r);
void mw_authcheck_lib_free(mw_authcheck_lib **lib);
/* The resolver, for other lookups by the caller (DNSBL...). */
mw_dns *mw_authcheck_lib_dns(mw_authcheck_lib *lib);
/* The process-wide cache of parsed DKIM public keys (keyed by the key's bytes, so a
   rotated or revoked key is never answered from it; see mw-authcheck.c): lookups answered
   from it, lookups that parsed, keys held. For tests and benchmarks. */
void mw_authcheck_key_cache_stats(unsigned long *hits_r, unsigned long *misses_r,
                                  size_t *entries_r);

/* Per message (one thread at a time). */
mw_authcheck *mw_authcheck_new(mw_authcheck_lib *lib);
void mw_authcheck_free(mw_authcheck **ac);
/* client_ip: textual IPv4/IPv6 (Postfix {client_addr}); helo: as given (may be NULL or ""). */
int mw_authcheck_connect(mw_authcheck *ac, const char *client_ip, const char *helo,
                         mw_error *error_r);
/* addr: the envelope sender as Postfix passes it ("<a@b>", "<>") or bare. */
int mw_authcheck_mail_from(mw_authcheck *ac, const char *addr, mw_error *error_r);
/* A field named "From" in any case, with blanks before the colon too (obs-optional), counts
   as a From field. Fails (-1) past the limits above; the caller then treats the message as it sees
   fit (the milter: tempfail or reject it; it must not deliver it unchecked as "pass"). */
int mw_authcheck_header(mw_authcheck *ac, const char *name, const char *value, size_t len,
                        mw_error *error_r);
void mw_authcheck_eoh(mw_authcheck *ac);
void mw_authcheck_body(mw_authcheck *ac, const char *chunk, size_t len);
/* Runs the checks; the results live as long as ac. */
const struct mw_auth_results *mw_authcheck_eom(mw_authcheck *ac);

/* ---- pure functions (no DNS) ---- */

const char *mw_dmarc_policy_str(enum mw_dmarc_policy p);

/* The Authentication-Results value (without "Authentication-Results:"), RFC 8601:
   "ID; spf=pass smtp.mailfrom=a@b smtp.helo=h; dkim=pass header.d=d header.s=s;
   dmarc=pass (p=reject) header.from=d", printed by mw_hdr_authres_print (lib/mw-headers):
   values that are not plain words are quoted; anything unsafe in them (control characters,
   non-ASCII, an id that is not a host name) is refused: -1. */
int mw_authcheck_format_ar(const char *authserv_id, const struct mw_auth_results *res, mw_str *out,
                           mw_error *error_r);
/* The ARC verifier that saw this message (for a seal: mw_arc_seal), valid after eom. */
struct mw_arc_verify *mw_authcheck_arc(mw_authcheck *ac);
/* Whether an ARC-Authentication-Results text (after "i=N;") shows DMARC passing for
   FROM_DOMAIN, or DKIM (header.d) or SPF (smtp.mailfrom) passing for it or a parent of it. */
bool mw_authcheck_aar_vouches(const char *aar, const char *from_domain);

enum mw_verdict_action {
	MW_VERDICT_ACCEPT,
	MW_VERDICT_QUARANTINE, /* accept, but hold (or tag: policy->quarantine_hold false) */
	MW_VERDICT_REJECT,     /* smtp_code + xcode + reason */
	MW_VERDICT_TEMPFAIL,
};

struct mw_verdict_policy {
	bool dmarc_enforce;         /* act on p=reject / p=quarantine */
	bool quarantine_hold;       /* quarantine: true = Postfix hold, false = tag only */
	bool tempfail_on_dns_error; /* a temperror that decides acceptance: 451 4.7.1 */
	const char *local_domains;  /* blank/comma separated list, "" = none */
	bool trusted_client;        /* client in trusted networks: never refused here */
	bool authenticated;         /* SASL-authenticated: inbound checks do not apply */
};

struct mw_verdict {
	enum mw_verdict_action action;
	bool hold;             /* QUARANTINE with hold */
	bool tag;              /* QUARANTINE with tag */
	const char *smtp_code; /* "550", "451", "" for accept */
	const char *xcode;     /* "5.7.26", "5.7.1", "4.7.1", "" */
	const char *why;       /* a short key for the log: "dmarc_reject", "from_invalid",
	                          "envelope_invalid", "local_domain_spoof", "auth_tempfail",
	                          "dmarc_quarantine", "" for accept */
	char reason[400];      /* the SMTP reply text / log reason */
};

/* Decides what to do with a message from its results (see the table in mw-authcheck.c). */
void mw_authcheck_verdict(const struct mw_auth_results *res, const struct mw_verdict_policy *policy,
                          struct mw_verdict *v_r);

/* True when DOMAIN (case-insensitive, exact match) is in the blank/comma separated LIST. */
bool mw_authcheck_domain_listed(const char *list, const char *domain);
/* True when IP is inside one of the blank/comma separated networks ("10.0.0.0/8 ::1/128
   192.0.2.7"); -1 when the list or the address is malformed. */
int mw_authcheck_ip_in_networks(const char *networks, const char *ip, mw_error *error_r);

#endif
