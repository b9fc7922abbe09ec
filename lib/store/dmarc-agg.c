/* dmarc-agg.c - the store's DMARC evaluations and the aggregate reports sent from them
 * (issue 14, the sending side; tables of lib/sql/005_dmarc_aggregate.sql).
 *
 * The milter adds one row per evaluation (one prepared INSERT, cached per connection);
 * mailwardenctl dmarc send-reports lists a period's policy domains, reads each domain's
 * latest published record and its rows grouped by SQL, claims the period in
 * dmarc_reports_sent (its primary key makes a second claim MW_STORE_EXISTS: a report is
 * never sent twice, also by two hosts at once) and prunes old rows.
 *
 * Public: mw_store_dmarc_eval_add, mw_store_dmarc_domains, mw_store_dmarc_policy,
 * mw_store_dmarc_rows, mw_store_dmarc_report_claim, mw_store_dmarc_report_unclaim,
 * mw_store_dmarc_prune (declared in lib/mw-dmarc-agg.h).
 *
 * Diagnostics: through error_r. Every text is checked before it is bound: printable ASCII
 * within the field's size (the DKIM lines may hold line ends), enumerations as the tables'
 * CHECK constraints have them.
 */
#include "mw-build.h"
#include "mw-store-private.h"
#include "mw-dmarc-agg.h"

#include <stdlib.h>
#include <string.h>

static const struct mw_db_query q_eval_add = {
    "recording a DMARC evaluation",
    "INSERT INTO dmarc_evaluations (evaluated_at, source_ip, header_from, policy_domain, "
    "org_domain, p, sp, np, adkim, aspf, testing, pct, rua, envelope_from, spf_result, "
    "spf_scope, dkim, dkim_aligned, spf_aligned, dmarc_result, disposition, override) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
    "?19, ?20, ?21, ?22)",
    NULL};
static const struct mw_db_query q_domains = {
    "listing DMARC policy domains",
    "SELECT DISTINCT policy_domain FROM dmarc_evaluations "
    "WHERE evaluated_at >= ?1 AND evaluated_at < ?2 ORDER BY policy_domain",
    NULL};
static const struct mw_db_query q_policy = {
    "reading a published DMARC policy",
    "SELECT p, sp, np, adkim, aspf, testing, pct, rua, org_domain FROM dmarc_evaluations "
    "WHERE policy_domain = ?1 AND evaluated_at >= ?2 AND evaluated_at < ?3 "
    "ORDER BY evaluated_at DESC, id DESC LIMIT 1",
    NULL};
static const struct mw_db_query q_rows = {
    "reading DMARC evaluations",
    "SELECT source_ip, header_from, envelope_from, spf_result, spf_scope, dkim, dkim_aligned, "
    "spf_aligned, disposition, override, COUNT(*) FROM dmarc_evaluations "
    "WHERE policy_domain = ?1 AND evaluated_at >= ?2 AND evaluated_at < ?3 "
    "GROUP BY source_ip, header_from, envelope_from, spf_result, spf_scope, dkim, "
    "dkim_aligned, spf_aligned, disposition, override "
    "ORDER BY source_ip, header_from, envelope_from, spf_result, spf_scope, dkim, "
    "dkim_aligned, spf_aligned, disposition, override",
    NULL};
static const struct mw_db_query q_claim = {
    "recording a sent DMARC report",
    "INSERT INTO dmarc_reports_sent (policy_domain, begin_at, end_at, report_id, recipients, "
    "messages, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    NULL};
static const struct mw_db_query q_unclaim = {
    "forgetting an unsent DMARC report",
    "DELETE FROM dmarc_reports_sent WHERE policy_domain = ?1 AND begin_at = ?2", NULL};
static const struct mw_db_query q_prune_evals = {
    "deleting old DMARC evaluations", "DELETE FROM dmarc_evaluations WHERE evaluated_at < ?1",
    NULL};
static const struct mw_db_query q_prune_sent = {
    "deleting old DMARC report records", "DELETE FROM dmarc_reports_sent WHERE begin_at < ?1",
    NULL};

/* ascii_ok - S is printable ASCII ('\n' too when lines) shorter than SIZE */
static bool ascii_ok(const char *s, size_t size, bool lines)
{
	size_t i;
	for (i = 0; s[i] != '\0'; i++)
		if ((s[i] < 0x20 || s[i] >= 0x7f) && !(lines && s[i] == '\n'))
			return false;
	return i < size;
}

/* one_of - S is a word of LIST ('|' separated) */
static bool one_of(const char *s, const char *list)
{
	size_t n = strlen(s);
	const char *p = list;
	for (;;) {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, s, n) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

/* eval_check - an evaluation fit for the table */
static int eval_check(const struct mw_dmarc_eval *e, mw_error *error_r)
{
	const char *bad = NULL;
#define TXT(f, lines)                                                                              \
	if (bad == NULL && !ascii_ok(e->f, sizeof(e->f), lines))                                   \
	bad = #f
	TXT(source_ip, false);
	TXT(header_from, false);
	TXT(policy_domain, false);
	TXT(org_domain, false);
	TXT(rua, false);
	TXT(envelope_from, false);
	TXT(dkim, true);
#undef TXT
	if (bad == NULL && (e->source_ip[0] == '\0' || e->header_from[0] == '\0'))
		bad = "source_ip or header_from";
	if (bad == NULL && e->policy_domain[0] == '\0')
		bad = "policy_domain";
	if (bad == NULL && !one_of(e->p, "none|quarantine|reject"))
		bad = "p";
	if (bad == NULL && !one_of(e->sp, "|none|quarantine|reject"))
		bad = "sp";
	if (bad == NULL && !one_of(e->np, "|none|quarantine|reject"))
		bad = "np";
	if (bad == NULL && (!one_of(e->adkim, "r|s") || !one_of(e->aspf, "r|s")))
		bad = "adkim or aspf";
	if (bad == NULL && !one_of(e->spf_result, "none|neutral|pass|fail|softfail|temperror|"
	                                          "permerror|policy"))
		bad = "spf_result";
	if (bad == NULL && !one_of(e->spf_scope, "mfrom|helo"))
		bad = "spf_scope";
	if (bad == NULL && !one_of(e->dmarc_result, "pass|fail"))
		bad = "dmarc_result";
	if (bad == NULL && !one_of(e->disposition, "none|quarantine|reject"))
		bad = "disposition";
	if (bad == NULL && !one_of(e->override, "|trusted_forwarder|local_policy|sampled_out|"
	                                        "policy_test_mode"))
		bad = "override";
	if (bad == NULL && (e->pct < -1 || e->pct > 100))
		bad = "pct";
	if (bad != NULL) {
		mw_error_set(error_r, "DMARC evaluation: invalid %s", bad);
		return -1;
	}
	return 0;
}

/* mw_store_dmarc_eval_add - record one evaluation */
int mw_store_dmarc_eval_add(mw_store *store, const struct mw_dmarc_eval *e, mw_error *error_r)
{
	if (eval_check(e, error_r) < 0)
		return MW_STORE_ERROR;
	return mw_db_run(
	    store->db, &q_eval_add,
	    MW_DB_ARGS(MW_DB_I(e->evaluated_at), MW_DB_T(e->source_ip), MW_DB_T(e->header_from),
	               MW_DB_T(e->policy_domain), MW_DB_T(e->org_domain), MW_DB_T(e->p),
	               MW_DB_T(e->sp), MW_DB_T(e->np), MW_DB_T(e->adkim), MW_DB_T(e->aspf),
	               MW_DB_I(e->testing ? 1 : 0), MW_DB_I(e->pct), MW_DB_T(e->rua),
	               MW_DB_T(e->envelope_from), MW_DB_T(e->spf_result), MW_DB_T(e->spf_scope),
	               MW_DB_T(e->dkim), MW_DB_I(e->dkim_aligned ? 1 : 0),
	               MW_DB_I(e->spf_aligned ? 1 : 0), MW_DB_T(e->dmarc_result),
	               MW_DB_T(e->disposition), MW_DB_T(e->override)),
	    NULL, NULL, NULL, error_r);
}

struct strv {
	char **v;
	size_t n, cap;
};

/* read_domain - one policy domain */
static int read_domain(const mw_db_row *row, void *ctx)
{
	struct strv *s = ctx;
	if (s->n + 2 > s->cap) {
		s->cap = s->cap == 0 ? 16 : s->cap * 2;
		s->v = mw_realloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = mw_db_text_dup(row, 0);
	s->v[s->n] = NULL;
	return 0;
}

/* mw_store_dmarc_domains - the policy domains of a period */
int mw_store_dmarc_domains(mw_store *store, int64_t begin, int64_t end, char ***domains_r,
                           size_t *n_r, mw_error *error_r)
{
	struct strv s = {NULL, 0, 0};
	int ret = mw_db_run(store->db, &q_domains, MW_DB_ARGS(MW_DB_I(begin), MW_DB_I(end)),
	                    read_domain, &s, NULL, error_r);
	if (ret != MW_STORE_OK) {
		mw_store_strv_free(s.v);
		return ret;
	}
	if (s.v == NULL)
		s.v = mw_calloc(1, sizeof(*s.v));
	*domains_r = s.v;
	*n_r = s.n;
	return MW_STORE_OK;
}

/* read_policy - the record columns of q_policy */
static int read_policy(const mw_db_row *row, void *ctx)
{
	struct mw_dmarc_eval *e = ctx;
	(void)mw_store_text_copy(row, 0, e->p, sizeof(e->p));
	(void)mw_store_text_copy(row, 1, e->sp, sizeof(e->sp));
	(void)mw_store_text_copy(row, 2, e->np, sizeof(e->np));
	(void)mw_store_text_copy(row, 3, e->adkim, sizeof(e->adkim));
	(void)mw_store_text_copy(row, 4, e->aspf, sizeof(e->aspf));
	e->testing = mw_db_int(row, 5) != 0;
	e->pct = (int)mw_db_int(row, 6);
	(void)mw_store_text_copy(row, 7, e->rua, sizeof(e->rua));
	(void)mw_store_text_copy(row, 8, e->org_domain, sizeof(e->org_domain));
	return 0;
}

/* mw_store_dmarc_policy - DOMAIN's record as last seen in the period */
int mw_store_dmarc_policy(mw_store *store, const char *domain, int64_t begin, int64_t end,
                          struct mw_dmarc_eval *eval_r, mw_error *error_r)
{
	memset(eval_r, 0, sizeof(*eval_r));
	if (mw_strlcpy(eval_r->policy_domain, domain, sizeof(eval_r->policy_domain)) < 0) {
		mw_error_set(error_r, "policy domain too long");
		return MW_STORE_NOTFOUND;
	}
	return mw_db_one(store->db, &q_policy,
	                 MW_DB_ARGS(MW_DB_T(domain), MW_DB_I(begin), MW_DB_I(end)), read_policy,
	                 eval_r, error_r);
}

/* the columns of q_rows (count: uint64_t, read as INT) */
#define AGG(type, field) MW_STORE_COL(struct mw_dmarc_agg_row, type, field)
static const struct mw_store_col agg_cols[] = {AGG(TEXT_LAX, source_ip),
                                               AGG(TEXT_LAX, header_from),
                                               AGG(TEXT_LAX, envelope_from),
                                               AGG(TEXT_LAX, spf_result),
                                               AGG(TEXT_LAX, spf_scope),
                                               AGG(TEXT_LAX, dkim),
                                               AGG(BOOL, dkim_aligned),
                                               AGG(BOOL, spf_aligned),
                                               AGG(TEXT_LAX, disposition),
                                               AGG(TEXT_LAX, override),
                                               AGG(INT, count)};
static const struct mw_store_reader agg_reader =
    MW_STORE_READER(agg_cols, "a DMARC evaluation group", false, NULL);

/* mw_store_dmarc_rows - DOMAIN's evaluations of the period, grouped */
int mw_store_dmarc_rows(mw_store *store, const char *domain, int64_t begin, int64_t end,
                        struct mw_dmarc_agg_row **rows_r, size_t *n_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_dmarc_agg_row, &agg_reader, false, error_r);
	int ret =
	    mw_store_list(store, &q_rows, MW_DB_ARGS(MW_DB_T(domain), MW_DB_I(begin), MW_DB_I(end)),
	                  &rows, NULL, false);
	*rows_r = rows.v;
	*n_r = rows.count;
	return ret;
}

/* mw_store_dmarc_report_claim - the period's report is ours to send */
int mw_store_dmarc_report_claim(mw_store *store, const char *domain, int64_t begin, int64_t end,
                                const char *report_id, const char *recipients, uint64_t messages,
                                int64_t now, mw_error *error_r)
{
	int ret;
	if (!ascii_ok(domain, MW_DNS_NAME_MAX + 1, false) || !ascii_ok(report_id, 256, false) ||
	    !ascii_ok(recipients, 4096, false)) {
		mw_error_set(error_r, "DMARC report record: invalid text");
		return MW_STORE_ERROR;
	}
	ret =
	    mw_db_run(store->db, &q_claim,
	              MW_DB_ARGS(MW_DB_T(domain), MW_DB_I(begin), MW_DB_I(end), MW_DB_T(report_id),
	                         MW_DB_T(recipients), MW_DB_I(messages), MW_DB_I(now)),
	              NULL, NULL, NULL, error_r);
	if (ret == MW_STORE_EXISTS)
		mw_error_set(error_r, "the report of %s for this period was sent already", domain);
	return ret;
}

/* mw_store_dmarc_report_unclaim - give a claim back */
int mw_store_dmarc_report_unclaim(mw_store *store, const char *domain, int64_t begin,
                                  mw_error *error_r)
{
	return mw_db_run(store->db, &q_unclaim, MW_DB_ARGS(MW_DB_T(domain), MW_DB_I(begin)), NULL,
	                 NULL, NULL, error_r);
}

/* mw_store_dmarc_prune - drop what is older than BEFORE */
int mw_store_dmarc_prune(mw_store *store, int64_t before, uint64_t *rows_r, mw_error *error_r)
{
	uint64_t n = 0;
	int ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = mw_db_run(store->db, &q_prune_evals, MW_DB_ARGS(MW_DB_I(before)), NULL, NULL, &n,
	                error_r);
	if (ret == MW_STORE_OK)
		ret = mw_db_run(store->db, &q_prune_sent, MW_DB_ARGS(MW_DB_I(before)), NULL, NULL,
		                NULL, error_r);
	ret = mw_db_end(store->db, ret, error_r);
	if (rows_r != NULL)
		*rows_r = ret == MW_STORE_OK ? n : 0;
	return ret;
}
