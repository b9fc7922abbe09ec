/* mw-dmarc-agg.h - DMARC aggregate reports, the sending side (RFC 7489 section 7.2, the
 * DMARCbis reporting draft): what one DMARC evaluation records, and from the evaluations of
 * one day, the XML report, its gzip, its mail and who may receive it.
 *
 * The milter turns each evaluation into a struct mw_dmarc_eval (mw_dmarc_eval_from_results)
 * and the store keeps it (mw_store_dmarc_eval_add); mailwardenctl dmarc send-reports reads
 * a day's rows grouped (mw_store_dmarc_rows), builds the report (mw_dmarc_agg_xml), checks
 * each rua destination (mw_dmarc_agg_parse_rua, mw_dmarc_agg_dest_check) and submits the
 * mail (mw_dmarc_agg_mail) through sendmail, recording the period as sent first
 * (mw_store_dmarc_report_claim) so it is never sent twice.
 *
 * DNS: mw_dmarc_agg_dest_check takes a TXT lookup callback (mw_dmarc_agg_txt_fn): the
 * caller's resolver (mw-dns, through mw_dmarc_agg_dns_txt) or a table in the unit tests.
 */
#ifndef MW_DMARC_AGG_H
#define MW_DMARC_AGG_H

#include "mw-authcheck.h"
#include "mw-dmarc.h"
#include "mw-dns.h"
#include "mw-store.h"
#include "mw-util.h"

#define MW_DMARC_AGG_RUA_MAX  512 /* the rua= value recorded (longer: cut at the last URI) */
#define MW_DMARC_AGG_DKIM_MAX (MW_AUTH_MAX_SIGS * (MW_DNS_NAME_MAX + 64 + 16))
#define MW_DMARC_AGG_DEST_MAX 4 /* rua destinations used per domain (RFC 7489: at least 2) */

/* One DMARC evaluation, as recorded. Text fields are NUL-terminated, "" when absent. */
struct mw_dmarc_eval {
	int64_t evaluated_at;
	char source_ip[46];
	char header_from[MW_DNS_NAME_MAX + 1];
	char policy_domain[MW_DNS_NAME_MAX + 1];
	char org_domain[MW_DNS_NAME_MAX + 1];
	char p[12], sp[12], np[12]; /* none|quarantine|reject; sp, np "" when absent */
	char adkim[2], aspf[2];     /* "r" or "s" */
	bool testing;               /* t=y */
	int pct;                    /* -1: no pct= */
	char rua[MW_DMARC_AGG_RUA_MAX + 1];
	char envelope_from[MW_DNS_NAME_MAX + 1]; /* the SPF domain */
	char spf_result[12];
	char spf_scope[6];                    /* mfrom | helo */
	char dkim[MW_DMARC_AGG_DKIM_MAX + 1]; /* "DOMAIN SELECTOR RESULT\n" per signature */
	bool dkim_aligned, spf_aligned;
	char dmarc_result[8]; /* pass | fail */
	char disposition[12]; /* none | quarantine | reject */
	char override[24];    /* "", trusted_forwarder, local_policy, sampled_out,
	                         policy_test_mode */
};

/* What the milter decided: the verdict's action and why, and whether policy was enforced. */
struct mw_dmarc_eval_context {
	const char *source_ip;
	int64_t now;
	const struct mw_verdict *verdict;
	bool dmarc_enforce;
};

/* Fills EVAL from a message's results and verdict: 0, or 1 when there is nothing to record
   (no DMARC record for the From domain, a result other than pass/fail, a temporary failure
   verdict: the sender retries and would be counted twice). The published record is
   res->dmarc_record (parsed again here). */
int mw_dmarc_eval_from_results(const struct mw_auth_results *res,
                               const struct mw_dmarc_eval_context *c, struct mw_dmarc_eval *eval_r);

/* ---- the store (lib/store/dmarc-agg.c) ---- */

int mw_store_dmarc_eval_add(mw_store *store, const struct mw_dmarc_eval *e, mw_error *error_r);

/* One group of identical evaluations of a period (source IP, identifiers, results,
   disposition), with its count. */
struct mw_dmarc_agg_row {
	char source_ip[46];
	char header_from[MW_DNS_NAME_MAX + 1];
	char envelope_from[MW_DNS_NAME_MAX + 1];
	char spf_result[12];
	char spf_scope[6];
	char dkim[MW_DMARC_AGG_DKIM_MAX + 1];
	bool dkim_aligned, spf_aligned;
	char disposition[12];
	char override[24];
	uint64_t count;
};

/* The policy domains with evaluations in [begin, end), in name order (free with
   mw_store_strv_free). */
int mw_store_dmarc_domains(mw_store *store, int64_t begin, int64_t end, char ***domains_r,
                           size_t *n_r, mw_error *error_r);
/* The record DOMAIN published as last seen in [begin, end) (the newest evaluation's):
   p, sp, np, adkim, aspf, testing, pct, rua and org_domain of *eval_r are set. NOTFOUND
   when the period has none. */
int mw_store_dmarc_policy(mw_store *store, const char *domain, int64_t begin, int64_t end,
                          struct mw_dmarc_eval *eval_r, mw_error *error_r);
/* DOMAIN's evaluations of [begin, end) grouped (free *rows_r with free()). */
int mw_store_dmarc_rows(mw_store *store, const char *domain, int64_t begin, int64_t end,
                        struct mw_dmarc_agg_row **rows_r, size_t *n_r, mw_error *error_r);
/* Claims the report of DOMAIN for the period starting at BEGIN: MW_STORE_OK (now ours: send
   it), MW_STORE_EXISTS (already sent, or being sent by another run). */
int mw_store_dmarc_report_claim(mw_store *store, const char *domain, int64_t begin, int64_t end,
                                const char *report_id, const char *recipients, uint64_t messages,
                                int64_t now, mw_error *error_r);
/* Gives a claim back (the report could not be sent: a later run tries again). */
int mw_store_dmarc_report_unclaim(mw_store *store, const char *domain, int64_t begin,
                                  mw_error *error_r);
/* Deletes evaluations and sent-report records older than BEFORE; *rows_r: evaluations
   deleted (may be NULL). */
int mw_store_dmarc_prune(mw_store *store, int64_t before, uint64_t *rows_r, mw_error *error_r);

/* ---- the report ---- */

struct mw_dmarc_agg_meta {
	const char *org_name;  /* the reporting organisation */
	const char *email;     /* its contact address (the report sender) */
	const char *report_id; /* unique per report */
	int64_t begin, end;    /* the period, unix seconds (end: the last second covered) */
};

/* The XML aggregate report of POLICY (its record as published: p, sp, adkim, aspf, pct,
   np, testing of a struct mw_dmarc_eval whose policy_domain names the domain) over ROWS,
   into OUT. Rows that are the same group are merged (their counts added); records come
   out in a stable order (source IP, then the other fields). Every text is XML-escaped;
   bytes outside printable ASCII become '?'. -1 when a row has a value outside the
   schema's enumerations or a count of 0. */
int mw_dmarc_agg_xml(const struct mw_dmarc_agg_meta *meta, const struct mw_dmarc_eval *policy,
                     const struct mw_dmarc_agg_row *rows, size_t nrows, mw_str *out,
                     mw_error *error_r);

/* gzip (RFC 1952) of DATA into OUT. */
int mw_dmarc_agg_gzip(const void *data, size_t len, mw_str *out, mw_error *error_r);

/* One rua destination. */
struct mw_dmarc_agg_dest {
	char addr[MW_DNS_NAME_MAX + 72]; /* local@domain (percent-decoded) */
	char domain[MW_DNS_NAME_MAX + 1];
	uint64_t max_size; /* the !size limit in bytes; 0 = none */
};

/* The mailto: destinations of a rua= value (at most MW_DMARC_AGG_DEST_MAX, in order);
   other schemes and malformed URIs are skipped, each with a line in skipped_r
   (may be NULL). */
size_t mw_dmarc_agg_parse_rua(const char *rua, struct mw_dmarc_agg_dest *dests, size_t max,
                              mw_str *skipped_r);

/* The TXT records of one name (each record's strings joined). */
#define MW_DMARC_AGG_TXT_MAX 8
struct mw_dmarc_agg_txt {
	size_t n;
	char rec[MW_DMARC_AGG_TXT_MAX][MW_DMARC_RECORD_MAX];
};
/* A TXT lookup: 0 with txt_r filled (n = 0 for NXDOMAIN/NODATA; records longer than
   MW_DMARC_RECORD_MAX - 1 and those past MW_DMARC_AGG_TXT_MAX are left out), -1 when the
   lookup failed (temporarily or not). */
typedef int mw_dmarc_agg_txt_fn(void *ctx, const char *name, struct mw_dmarc_agg_txt *txt_r);
/* mw_dmarc_agg_txt_fn over an mw_dns resolver (ctx: the mw_dns). */
int mw_dmarc_agg_dns_txt(void *ctx, const char *name, struct mw_dmarc_agg_txt *txt_r);

enum mw_dmarc_agg_dest_status {
	MW_DMARC_AGG_DEST_OK,           /* same organisational domain, or authorised */
	MW_DMARC_AGG_DEST_UNAUTHORISED, /* external and no v=DMARC1 at the _report._dmarc name */
	MW_DMARC_AGG_DEST_TEMPFAIL,     /* a lookup failed: do not send now */
};
/* RFC 7489 7.1: may reports for POLICY_DOMAIN go to an address in DEST_DOMAIN? When the two
   organisational domains (found by the DMARCbis tree walk over _dmarc TXT records) differ,
   DEST_DOMAIN must publish a TXT record starting with v=DMARC1 at
   POLICY_DOMAIN._report._dmarc.DEST_DOMAIN. why_r (size MW_ERROR_MAX) says what was found. */
enum mw_dmarc_agg_dest_status mw_dmarc_agg_dest_check(mw_dmarc_agg_txt_fn *fn, void *ctx,
                                                      const char *policy_domain,
                                                      const char *dest_domain, char *why_r,
                                                      size_t why_size);

/* The report mail: From SENDER, To every address of DESTS, Subject "Report Domain: D
   Submitter: S Report-ID: <ID>", a short text part and the gzip as attachment
   SUBMITTER!DOMAIN!BEGIN!END.xml.gz (base64). FILENAME_R gets that name (size 600). */
int mw_dmarc_agg_mail(const struct mw_dmarc_agg_meta *meta, const char *policy_domain,
                      const char *submitter, const struct mw_dmarc_agg_dest *dests, size_t ndests,
                      const void *gz, size_t gzlen, int64_t now, mw_str *out, char *filename_r,
                      mw_error *error_r);
/* The attachment name alone: SUBMITTER!DOMAIN!BEGIN!END.xml.gz. */
void mw_dmarc_agg_filename(const char *submitter, const char *policy_domain, int64_t begin,
                           int64_t end, char *buf, size_t size);

#endif
