/* dmarcreports.c - the store's DMARC aggregate reports received for our domains (issue 14,
 * migration 006): adding a parsed report with its rows, the summary of who sends as us, the
 * list of reports.
 *
 * A report is one transaction (its row, then one row per record): a report already stored
 * under the same org_name and report_id is refused by the unique key (MW_STORE_EXISTS) and
 * nothing of it is counted again. The report's values were checked by the parser
 * (lib/mw-dmarc-report.c); the store checks the text limits once more (a caller could build
 * a report by hand).
 *
 * Public: mw_store_dmarc_report_add, mw_store_dmarc_summary, mw_store_dmarc_report_list.
 *
 * Diagnostics: through error_r.
 */
#include "mw-build.h"
#include "mw-dmarc-report.h"
#include "mw-store-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mw_db_query q_report_add = {
    "adding a DMARC report",
    "INSERT INTO dmarc_received_reports (org_name, email, report_id, date_begin, date_end, "
    "domain, adkim, aspf, p, sp, np, pct, messages, imported_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) RETURNING id",
    NULL};
static const struct mw_db_query q_row_add = {
    "adding a DMARC report row",
    "INSERT INTO dmarc_received_rows (report, source_ip, count, disposition, dkim, spf, "
    "header_from, envelope_from, envelope_to, reasons, auth_results) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    NULL};
/* ?1 domain ('' = all), ?2 since, ?3 until (exclusive), ?4 limit */
static const struct mw_db_query q_summary = {
    "summarising DMARC reports",
    "SELECT w.header_from, w.source_ip, r.org_name, CAST(SUM(w.count) AS BIGINT), "
    "CAST(SUM(CASE WHEN w.dkim = 'pass' THEN w.count ELSE 0 END) AS BIGINT), "
    "CAST(SUM(CASE WHEN w.spf = 'pass' THEN w.count ELSE 0 END) AS BIGINT), "
    "CAST(SUM(CASE WHEN w.dkim = 'pass' OR w.spf = 'pass' THEN w.count ELSE 0 END) AS BIGINT), "
    "CAST(SUM(CASE WHEN w.disposition = 'quarantine' THEN w.count ELSE 0 END) AS BIGINT), "
    "CAST(SUM(CASE WHEN w.disposition = 'reject' THEN w.count ELSE 0 END) AS BIGINT), "
    "COUNT(DISTINCT r.id) "
    "FROM dmarc_received_rows w JOIN dmarc_received_reports r ON r.id = w.report "
    "WHERE (?1 = '' OR r.domain = ?1 OR w.header_from = ?1) AND r.date_end >= ?2 "
    "AND r.date_begin < ?3 "
    "GROUP BY w.header_from, w.source_ip, r.org_name "
    "ORDER BY 4 DESC, 1, 2, 3 LIMIT ?4",
    NULL};
static const struct mw_db_query q_list = {
    "listing DMARC reports",
    "SELECT r.id, r.org_name, r.email, r.report_id, r.domain, r.p, r.sp, r.adkim, r.aspf, "
    "r.pct, r.date_begin, r.date_end, r.imported_at, r.messages, "
    "(SELECT CAST(COALESCE(SUM(w.count), 0) AS BIGINT) FROM dmarc_received_rows w "
    "WHERE w.report = r.id AND w.dkim = 'fail' AND w.spf = 'fail'), "
    "(SELECT COUNT(*) FROM dmarc_received_rows w WHERE w.report = r.id) "
    "FROM dmarc_received_reports r "
    "WHERE (?1 = '' OR r.domain = ?1 OR EXISTS (SELECT 1 FROM dmarc_received_rows w "
    "WHERE w.report = r.id AND w.header_from = ?1)) AND r.date_end >= ?2 "
    "AND r.date_begin < ?3 ORDER BY r.date_begin DESC, r.id DESC LIMIT ?4",
    NULL};

/* check_report - the text fields within their limits (a report built by hand) */
static int check_report(const struct mw_dmarc_rpt *rpt, mw_error *error_r)
{
	size_t i;
	if (mw_store_check_text("org_name", rpt->org_name, MW_DMARC_RPT_TEXT_MAX, false, error_r) <
	        0 ||
	    mw_store_check_text("email", rpt->email, MW_DMARC_RPT_TEXT_MAX, false, error_r) < 0 ||
	    mw_store_check_text("report_id", rpt->report_id, MW_DMARC_RPT_TEXT_MAX, false,
	                        error_r) < 0 ||
	    mw_store_check_text("domain", rpt->domain, MW_DMARC_RPT_DOMAIN_MAX, false, error_r) < 0)
		return -1;
	if (rpt->nrows == 0 || rpt->nrows > MW_DMARC_RPT_ROWS_MAX) {
		mw_error_set(error_r, "a report has 1 to %d rows", MW_DMARC_RPT_ROWS_MAX);
		return -1;
	}
	for (i = 0; i < rpt->nrows; i++) {
		const struct mw_dmarc_rpt_row *w = &rpt->rows[i];
		if (w->count < 0 || w->count > MW_DMARC_RPT_COUNT_MAX ||
		    (unsigned)w->disposition > MW_DMARC_DISP_REJECT || w->auth_results == NULL) {
			mw_error_set(error_r, "row %zu is invalid", i + 1);
			return -1;
		}
	}
	return 0;
}

/* mw_store_dmarc_report_add - a report and its rows, once */
int mw_store_dmarc_report_add(mw_store *store, const struct mw_dmarc_rpt *rpt, int64_t *id_r,
                              mw_error *error_r)
{
	int64_t id = 0;
	size_t i;
	int ret;
	if (check_report(rpt, error_r) < 0)
		return MW_STORE_ERROR;
	ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = mw_db_int_one(
	    store->db, &q_report_add,
	    MW_DB_ARGS(MW_DB_T(rpt->org_name), MW_DB_T(rpt->email), MW_DB_T(rpt->report_id),
	               MW_DB_I(rpt->date_begin), MW_DB_I(rpt->date_end), MW_DB_T(rpt->domain),
	               MW_DB_T(rpt->adkim), MW_DB_T(rpt->aspf), MW_DB_T(rpt->p), MW_DB_T(rpt->sp),
	               MW_DB_T(rpt->np), rpt->pct >= 0 ? MW_DB_I(rpt->pct) : MW_DB_NUL,
	               MW_DB_I(rpt->messages), MW_DB_I(mw_now())),
	    &id, error_r);
	for (i = 0; ret == MW_STORE_OK && i < rpt->nrows; i++) {
		const struct mw_dmarc_rpt_row *w = &rpt->rows[i];
		ret = mw_db_run(store->db, &q_row_add,
		                MW_DB_ARGS(MW_DB_I(id), MW_DB_T(w->source_ip), MW_DB_I(w->count),
		                           MW_DB_T(mw_dmarc_disposition_name(w->disposition)),
		                           MW_DB_T(w->dkim_pass ? "pass" : "fail"),
		                           MW_DB_T(w->spf_pass ? "pass" : "fail"),
		                           MW_DB_T(w->header_from), MW_DB_T(w->envelope_from),
		                           MW_DB_T(w->envelope_to), MW_DB_T(w->reasons),
		                           MW_DB_T(w->auth_results)),
		                NULL, NULL, NULL, error_r);
	}
	ret = mw_db_end(store->db, ret, error_r);
	if (ret == MW_STORE_EXISTS)
		mw_error_set(error_r, "report %s of %s is already stored", rpt->report_id,
		             rpt->org_name);
	else if (ret == MW_STORE_OK && id_r != NULL)
		*id_r = id;
	return ret;
}

/* filter_args - the common arguments ?1..?4 of a filter */
static void filter_args(const struct mw_dmarc_filter *f, struct mw_db_arg a[4])
{
	a[0] = MW_DB_T(f->domain != NULL ? f->domain : "");
	a[1] = MW_DB_I(f->since > 0 ? f->since : 0);
	a[2] = MW_DB_I(f->until > 0 ? f->until : INT64_MAX);
	a[3] = MW_DB_I(f->limit > 0 ? (int64_t)f->limit : INT64_MAX);
}

/* the columns of q_summary */
#define SUM(type, field) MW_STORE_COL(struct mw_dmarc_sum_row, type, field)
static const struct mw_store_col sum_cols[] = {
    SUM(TEXT, domain),   SUM(TEXT, source_ip), SUM(TEXT, org_name),  SUM(INT, messages),
    SUM(INT, dkim_pass), SUM(INT, spf_pass),   SUM(INT, dmarc_pass), SUM(INT, quarantined),
    SUM(INT, rejected),  SUM(INT, reports)};
static const struct mw_store_reader sum_reader =
    MW_STORE_READER(sum_cols, "a DMARC report row", false, NULL);

/* list_filtered - the rows of q (summary or list) under the filter */
static int list_filtered(mw_store *store, const struct mw_db_query *q,
                         const struct mw_dmarc_filter *f, struct mw_store_rows *rows)
{
	struct mw_db_arg a[4];
	filter_args(f, a);
	return mw_store_list(store, q, a, 4, rows, NULL, false);
}

/* mw_store_dmarc_summary - messages per header_from, source IP and reporter */
int mw_store_dmarc_summary(mw_store *store, const struct mw_dmarc_filter *f,
                           struct mw_dmarc_sum_row **rows_r, size_t *n_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_dmarc_sum_row, &sum_reader, false, error_r);
	int ret = list_filtered(store, &q_summary, f, &rows);
	*rows_r = rows.v;
	*n_r = rows.count;
	return ret;
}

/* info_policy - the policy columns (5-9) of a q_list row as one text */
static int info_policy(const mw_db_row *row, void *elem)
{
	struct mw_dmarc_rpt_info *r = elem;
	const char *p = mw_db_text(row, 5), *sp = mw_db_text(row, 6), *adkim = mw_db_text(row, 7),
	           *aspf = mw_db_text(row, 8);
	mw_str pol;
	mw_str_init(&pol, sizeof(r->policy) - 1);
	(void)mw_str_appendf(&pol, "p=%s", p != NULL ? p : "?");
	if (sp != NULL && sp[0] != '\0')
		(void)mw_str_appendf(&pol, " sp=%s", sp);
	if (adkim != NULL && adkim[0] != '\0')
		(void)mw_str_appendf(&pol, " adkim=%s", adkim);
	if (aspf != NULL && aspf[0] != '\0')
		(void)mw_str_appendf(&pol, " aspf=%s", aspf);
	if (!mw_db_is_null(row, 9))
		(void)mw_str_appendf(&pol, " pct=%lld", (long long)mw_db_int(row, 9));
	(void)mw_strlcpy(r->policy, mw_str_c(&pol), sizeof(r->policy));
	mw_str_free(&pol);
	return 0;
}

/* the columns of q_list */
#define INFO(type, field) MW_STORE_COL(struct mw_dmarc_rpt_info, type, field)
static const struct mw_store_col info_cols[] = {
    INFO(INT, id),          INFO(TEXT, org_name), INFO(TEXT, email),     INFO(TEXT, report_id),
    INFO(TEXT, domain),     MW_STORE_COL_SKIPPED, MW_STORE_COL_SKIPPED,  MW_STORE_COL_SKIPPED,
    MW_STORE_COL_SKIPPED,   MW_STORE_COL_SKIPPED, INFO(INT, date_begin), INFO(INT, date_end),
    INFO(INT, imported_at), INFO(INT, messages),  INFO(INT, dmarc_fail), INFO(INT, rows)};
static const struct mw_store_reader info_reader =
    MW_STORE_READER(info_cols, "DMARC report", true, info_policy);

/* mw_store_dmarc_report_list - the reports, newest first */
int mw_store_dmarc_report_list(mw_store *store, const struct mw_dmarc_filter *f,
                               struct mw_dmarc_rpt_info **v_r, size_t *n_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_dmarc_rpt_info, &info_reader, false, error_r);
	int ret = list_filtered(store, &q_list, f, &rows);
	*v_r = rows.v;
	*n_r = rows.count;
	return ret;
}
