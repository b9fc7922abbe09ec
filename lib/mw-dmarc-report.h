/* mw-dmarc-report.h - DMARC aggregate reports received for our own domains (issue 14, the
 * receiving side): parsing a report mail, storing it, summarising who sends as us.
 *
 * A report arrives as a mail (RFC 5322, MIME) whose report is an attachment or the body:
 * application/gzip (.xml.gz), application/zip (one .xml), or text/xml, holding the XML of
 * RFC 7489 Appendix C (and DMARCbis, which keeps the shape). Everything in it is hostile
 * input: sizes are bounded before and after decompression, the XML parser never loads or
 * expands entities (a document with a DOCTYPE is refused), and every field is validated; a
 * report that fails any check is refused whole, with a message naming what and where.
 *
 * Store operations (lib/store/dmarcreports.c) are written once over mw_db: a report
 * already stored (same org_name and report_id) is MW_STORE_EXISTS and counted nothing.
 */
#ifndef MW_DMARC_REPORT_H
#define MW_DMARC_REPORT_H

#include "mw-config.h"
#include "mw-store.h"
#include "mw-util.h"

#include <jansson.h>

/* Limits at the input boundary. */
#define MW_DMARC_RPT_MESSAGE_MAX    (32u * 1024 * 1024) /* a report mail */
#define MW_DMARC_RPT_COMPRESSED_MAX (10u * 1024 * 1024) /* the attachment, transfer-decoded */
#define MW_DMARC_RPT_XML_MAX        (16u * 1024 * 1024) /* the XML after decompression */
#define MW_DMARC_RPT_ROWS_MAX       50000               /* <record> elements of one report */
#define MW_DMARC_RPT_COUNT_MAX      4294967295LL        /* one row's message count */
#define MW_DMARC_RPT_AUTH_MAX       32                  /* auth_results entries of one row */
#define MW_DMARC_RPT_TEXT_MAX       256                 /* org_name, report_id, ... */
#define MW_DMARC_RPT_DOMAIN_MAX     253
#define MW_DMARC_RPT_IP_MAX         45
#define MW_DMARC_RPT_MAX_SPAN       (31 * 86400) /* date_range end - begin */
#define MW_DMARC_RPT_MIME_MAX       200          /* Content-Type lines of a report mail */

enum mw_dmarc_disposition { MW_DMARC_DISP_NONE, MW_DMARC_DISP_QUARANTINE, MW_DMARC_DISP_REJECT };

struct mw_dmarc_rpt_row {
	char source_ip[MW_DMARC_RPT_IP_MAX + 1]; /* normalised (inet_ntop) */
	int64_t count;
	enum mw_dmarc_disposition disposition;
	bool dkim_pass, spf_pass; /* policy_evaluated: the aligned results */
	char header_from[MW_DMARC_RPT_DOMAIN_MAX + 1];
	char envelope_from[MW_DMARC_RPT_DOMAIN_MAX + 1]; /* "" when absent */
	char envelope_to[MW_DMARC_RPT_DOMAIN_MAX + 1];
	char reasons[128];  /* reason types, comma separated, "" none */
	char *auth_results; /* JSON
	                       {"dkim":[{domain,selector,result}],"spf":[{domain,scope,result}]} */
};

struct mw_dmarc_rpt {
	char org_name[MW_DMARC_RPT_TEXT_MAX + 1];
	char email[MW_DMARC_RPT_TEXT_MAX + 1];
	char report_id[MW_DMARC_RPT_TEXT_MAX + 1];
	int64_t date_begin, date_end;             /* unix seconds */
	char domain[MW_DMARC_RPT_DOMAIN_MAX + 1]; /* policy_published/domain, normalised */
	char adkim[2], aspf[2];                   /* "r", "s" or "" */
	char p[11], sp[11], np[11];               /* none|quarantine|reject, sp/np may be "" */
	int pct;                                  /* -1: absent */
	struct mw_dmarc_rpt_row *rows;
	size_t nrows;
	int64_t messages; /* sum of the rows' counts */
};

const char *mw_dmarc_disposition_name(enum mw_dmarc_disposition d);

/* The report in an XML document; name (e.g. the attachment's file name) prefixes messages.
   0 with *rpt_r (free with mw_dmarc_rpt_free), -1 with error_r. */
int mw_dmarc_rpt_parse_xml(const char *xml, size_t len, const char *name,
                           struct mw_dmarc_rpt **rpt_r, mw_error *error_r);
/* The XML of a gzip (zip false) or zip (zip true) attachment into xml_r (an mw_str the
   caller initialised and frees): bounded by MW_DMARC_RPT_XML_MAX; a zip must hold exactly
   one file, named *.xml with no directory part. -1 with error_r. */
int mw_dmarc_rpt_unpack(const char *data, size_t len, bool zip, mw_str *xml_r, mw_error *error_r);
/* The report in a mail message (its one report attachment, or the body). -1 with error_r
   naming the part. */
int mw_dmarc_rpt_parse_message(const char *msg, size_t len, struct mw_dmarc_rpt **rpt_r,
                               mw_error *error_r);
void mw_dmarc_rpt_free(struct mw_dmarc_rpt **rpt);
/* Is the report about one of our domains ([milter] local_domains, or a subdomain of one)? */
bool mw_dmarc_rpt_ours(const mw_config *cfg, const struct mw_dmarc_rpt *rpt);

/* ---- store (lib/store/dmarcreports.c) ---- */

/* What the summary and the list cover. */
struct mw_dmarc_filter {
	const char *domain; /* NULL: all; else the policy domain or a row's header_from */
	int64_t since;      /* reports whose date range ends at or after since (0: any) */
	int64_t until;      /* reports whose date range begins before until (0: any) */
	unsigned limit;     /* rows of the answer, 0: no limit */
};

/* One (header_from, source IP, reporting org) of the summary. */
struct mw_dmarc_sum_row {
	char domain[MW_DMARC_RPT_DOMAIN_MAX + 1];
	char source_ip[MW_DMARC_RPT_IP_MAX + 1];
	char org_name[MW_DMARC_RPT_TEXT_MAX + 1];
	int64_t messages, dkim_pass, spf_pass, dmarc_pass, quarantined, rejected, reports;
};

/* One stored report, without its rows. */
struct mw_dmarc_rpt_info {
	int64_t id;
	char org_name[MW_DMARC_RPT_TEXT_MAX + 1];
	char email[MW_DMARC_RPT_TEXT_MAX + 1];
	char report_id[MW_DMARC_RPT_TEXT_MAX + 1];
	char domain[MW_DMARC_RPT_DOMAIN_MAX + 1];
	char policy[64]; /* "p=reject sp=none adkim=r aspf=r pct=100" */
	int64_t date_begin, date_end, imported_at, messages, dmarc_fail, rows;
};

/* Store a parsed report with its rows in one transaction: MW_STORE_OK (*id_r), or
   MW_STORE_EXISTS when the same org_name and report_id is already stored. */
int mw_store_dmarc_report_add(mw_store *store, const struct mw_dmarc_rpt *rpt, int64_t *id_r,
                              mw_error *error_r);
/* The summary, most messages first (free *rows_r with free()). */
int mw_store_dmarc_summary(mw_store *store, const struct mw_dmarc_filter *f,
                           struct mw_dmarc_sum_row **rows_r, size_t *n_r, mw_error *error_r);
/* The reports, newest date range first (free *v_r with free()). */
int mw_store_dmarc_report_list(mw_store *store, const struct mw_dmarc_filter *f,
                               struct mw_dmarc_rpt_info **v_r, size_t *n_r, mw_error *error_r);

/* The summary as JSON (what GET /api/v1/dmarc/summary answers and `dmarc report` prints):
   {"domains":[{"domain","messages","dmarc_pass","dmarc_fail","fail_share","sources":[
   {"source_ip","org_name","messages","dkim_pass","dkim_fail","spf_pass","spf_fail",
   "dmarc_pass","dmarc_fail","disposition":{"none","quarantine","reject"},"reports"}]}],
   "totals":{"messages","dmarc_pass","dmarc_fail","fail_share","sources"}};
   domains by volume. */
json_t *mw_dmarc_summary_json(const struct mw_dmarc_sum_row *rows, size_t n);
json_t *mw_dmarc_rpt_info_json(const struct mw_dmarc_rpt_info *r);

#endif
