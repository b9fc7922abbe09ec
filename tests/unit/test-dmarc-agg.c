/* test-dmarc-agg.c - unit tests for DMARC aggregate reports, the sending side
 * (lib/mw-dmarc-agg.c, lib/store/dmarc-agg.c): an evaluation from a message's results, the
 * XML report (escaping, grouping, counts), gzip, rua destinations and their !size, the
 * external destination check over a table of TXT records, the report mail, and the store's
 * operations on both backends (the claim that makes sending idempotent).
 */
#include "mw-build.h"
#include "mw-dmarc-agg.h"
#include "mw-test-db.h"
#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- evaluations ---- */

/* results - a failing message of example.com (p=reject) from 192.0.2.1 */
static void results(struct mw_auth_results *r)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->from_domain, "Example.COM");
	strcpy(r->dmarc_record_domain, "example.com");
	strcpy(r->dmarc_org_domain, "example.com");
	strcpy(r->dmarc_record, "v=DMARC1; p=reject; sp=quarantine; adkim=s; "
	                        "rua=mailto:agg@example.com,mailto:x@other.example!10m; pct=50");
	r->dmarc = MW_AUTH_FAIL;
	r->policy = MW_DMARC_POLICY_REJECT;
	r->spf = MW_AUTH_SOFTFAIL;
	strcpy(r->spf_domain, "bounce.example.net");
	r->dkim_count = 2;
	r->dkim[0].result = MW_AUTH_PASS;
	strcpy(r->dkim[0].domain, "example.net");
	strcpy(r->dkim[0].selector, "s1");
	r->dkim[1].result = MW_AUTH_FAIL;
	strcpy(r->dkim[1].domain, "example.com");
	strcpy(r->dkim[1].selector, "bad sel");
}

/* One string field of an evaluation and the value it must have */
struct eval_field {
	const char *name, *got, *want;
};

/* expect_fields - every field has its value; names each one that has not, then fails */
static void expect_fields(const struct eval_field *f, size_t n)
{
	size_t i, wrong = 0;
	for (i = 0; i < n; i++)
		if (strcmp(f[i].got, f[i].want) != 0) {
			print_error("%s: [%s], want [%s]\n", f[i].name, f[i].got, f[i].want);
			wrong++;
		}
	if (wrong > 0)
		fail_msg("%zu field(s) wrong", wrong);
}

/* evaluate - the evaluation of R from 192.0.2.1 at 1700000000 under a verdict of ACTION,
   with DMARC policy enforced or not: mw_dmarc_eval_from_results's return */
static int evaluate(const struct mw_auth_results *r, enum mw_verdict_action action, bool enforce,
                    struct mw_dmarc_eval *e)
{
	struct mw_verdict v;
	struct mw_dmarc_eval_context c = {"192.0.2.1", 1700000000, &v, enforce};
	memset(&v, 0, sizeof(v));
	v.action = action;
	memset(e, 0, sizeof(*e));
	return mw_dmarc_eval_from_results(r, &c, e);
}

/* test_eval_from_results - a failing message's evaluation, field by field */
static void test_eval_from_results(void **state)
{
	struct mw_auth_results r;
	struct mw_dmarc_eval e;
	(void)state;

	results(&r);
	assert_int_equal(evaluate(&r, MW_VERDICT_REJECT, true, &e), 0);
	{
		const struct eval_field fields[] = {
		    {"header_from", e.header_from, "example.com"},
		    {"policy_domain", e.policy_domain, "example.com"},
		    {"p", e.p, "reject"},
		    {"sp", e.sp, "quarantine"},
		    {"np", e.np, ""},
		    {"adkim", e.adkim, "s"},
		    {"aspf", e.aspf, "r"},
		    {"rua", e.rua, "mailto:agg@example.com,mailto:x@other.example!10m"},
		    {"envelope_from", e.envelope_from, "bounce.example.net"},
		    {"spf_result", e.spf_result, "softfail"},
		    {"spf_scope", e.spf_scope, "mfrom"},
		    /* a blank inside a value never becomes a separator */
		    {"dkim", e.dkim, "example.net s1 pass\nexample.com bad?sel fail\n"},
		    {"dmarc_result", e.dmarc_result, "fail"},
		    {"disposition", e.disposition, "reject"},
		    {"override", e.override, ""},
		};
		expect_fields(fields, MW_N_ELEMENTS(fields));
	}
	assert_int_equal(e.pct, 50);
	assert_int_equal(e.evaluated_at, 1700000000);
}

/* test_eval_decisions - the disposition and why it differs from the policy, and when there
   is nothing to record: each case the failing message of results() changed as it says */
static void test_eval_decisions(void **state)
{
	static const struct {
		const char *name;
		enum mw_verdict_action action;
		bool forwarded, testing, enforce; /* dmarc_override, dmarc_testing, dmarc_enforce */
		enum mw_auth_result dmarc;
		bool no_record;
		int ret; /* then NULL: not looked at */
		const char *disposition, *override, *dmarc_result;
	} cases[] = {
	    /* accepted in spite of p=reject: why */
	    {"trusted forwarder", MW_VERDICT_ACCEPT, true, false, true, MW_AUTH_FAIL, false, 0,
	     "none", "trusted_forwarder", NULL},
	    {"test mode", MW_VERDICT_ACCEPT, false, true, true, MW_AUTH_FAIL, false, 0, NULL,
	     "policy_test_mode", NULL},
	    {"not enforced", MW_VERDICT_ACCEPT, false, false, false, MW_AUTH_FAIL, false, 0, NULL,
	     "local_policy", NULL},
	    {"quarantined", MW_VERDICT_QUARANTINE, false, false, true, MW_AUTH_FAIL, false, 0,
	     "quarantine", "", NULL},
	    /* refused although DMARC passed: a local decision */
	    {"refused, DMARC passed", MW_VERDICT_REJECT, false, false, true, MW_AUTH_PASS, false, 0,
	     NULL, "local_policy", "pass"},
	    /* nothing to record */
	    {"tempfail", MW_VERDICT_TEMPFAIL, false, false, true, MW_AUTH_PASS, false, 1, NULL,
	     NULL, NULL},
	    {"DMARC temperror", MW_VERDICT_ACCEPT, false, false, true, MW_AUTH_TEMPERROR, false, 1,
	     NULL, NULL, NULL},
	    {"no record", MW_VERDICT_ACCEPT, false, false, true, MW_AUTH_PASS, true, 1, NULL, NULL,
	     NULL},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct mw_auth_results r;
		struct mw_dmarc_eval e;
		int ret;
		results(&r);
		r.dmarc_override = cases[i].forwarded;
		r.dmarc_testing = cases[i].testing;
		r.dmarc = cases[i].dmarc;
		if (cases[i].no_record)
			r.dmarc_record[0] = '\0';
		ret = evaluate(&r, cases[i].action, cases[i].enforce, &e);
		if (ret != cases[i].ret ||
		    (cases[i].disposition != NULL &&
		     strcmp(e.disposition, cases[i].disposition) != 0) ||
		    (cases[i].override != NULL && strcmp(e.override, cases[i].override) != 0) ||
		    (cases[i].dmarc_result != NULL &&
		     strcmp(e.dmarc_result, cases[i].dmarc_result) != 0))
			fail_msg("case \"%s\": %d, disposition \"%s\" override \"%s\" dmarc \"%s\"",
			         cases[i].name, ret, e.disposition, e.override, e.dmarc_result);
	}
}

/* test_eval_null_sender - the null sender: SPF of HELO; no p=: none */
static void test_eval_null_sender(void **state)
{
	struct mw_auth_results r;
	struct mw_dmarc_eval e;
	(void)state;
	results(&r);
	strcpy(r.dmarc_record, "v=DMARC1");
	r.spf_scope_helo = true;
	r.dkim_count = 0;
	assert_int_equal(evaluate(&r, MW_VERDICT_ACCEPT, true, &e), 0);
	{
		const struct eval_field fields[] = {
		    {"p", e.p, "none"},
		    {"spf_scope", e.spf_scope, "helo"},
		    {"dkim", e.dkim, ""},
		    {"rua", e.rua, ""},
		};
		expect_fields(fields, MW_N_ELEMENTS(fields));
	}
	assert_int_equal(e.pct, -1);
}

/* ---- the XML report ---- */

/* row - a group */
static struct mw_dmarc_agg_row row(const char *ip, const char *dkim, const char *disp,
                                   uint64_t count)
{
	struct mw_dmarc_agg_row r;
	memset(&r, 0, sizeof(r));
	strcpy(r.source_ip, ip);
	strcpy(r.header_from, "example.com");
	strcpy(r.envelope_from, "example.com");
	strcpy(r.spf_result, "pass");
	strcpy(r.spf_scope, "mfrom");
	strcpy(r.dkim, dkim);
	r.spf_aligned = true;
	strcpy(r.disposition, disp);
	r.count = count;
	return r;
}

/* policy - example.com's record */
static void policy(struct mw_dmarc_eval *p)
{
	memset(p, 0, sizeof(*p));
	strcpy(p->policy_domain, "example.com");
	strcpy(p->p, "reject");
	strcpy(p->adkim, "r");
	strcpy(p->aspf, "s");
	p->pct = -1;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_xml(void **state)
{
	struct mw_dmarc_agg_row rows[5];
	struct mw_dmarc_eval pol;
	struct mw_dmarc_agg_meta meta = {"A & B <Mail> \"Co\" \x01\xc3\xa9", "dmarc@mx.example.net",
	                                 "20231114.abc", 1699920000, 1700006399};
	mw_str out;
	mw_error err = {""};
	const char *x;
	(void)state;

	policy(&pol);
	rows[0] = row("192.0.2.2", "example.com s1 pass\n", "none", 2);
	rows[1] = row("192.0.2.1", "", "none", 1);
	rows[2] = row("192.0.2.2", "example.com s1 pass\n", "none", 3); /* same group as [0] */
	rows[3] = row("192.0.2.2", "example.com s1 pass\n", "quarantine", 1);
	rows[4] = row("2001:db8::1", "evil<x>.example - fail\n", "reject", 7);
	strcpy(rows[4].override, "policy_test_mode");
	rows[4].spf_aligned = false;
	strcpy(rows[4].spf_result, "fail");
	mw_str_init(&out, 0);
	assert_int_equal(mw_dmarc_agg_xml(&meta, &pol, rows, 5, &out, &err), 0);
	x = mw_str_c(&out);
	/* escaping; bytes outside printable ASCII never reach the document */
	assert_non_null(
	    strstr(x, "<org_name>A &amp; B &lt;Mail&gt; &quot;Co&quot; \?\?\?</org_name>"));
	assert_non_null(strstr(x, "<domain>evil&lt;x&gt;.example</domain>"));
	assert_null(strstr(x, "evil<x>"));
	/* grouping and counts: four records, the merged one counts 5 */
	assert_int_equal(count_of(x, "<record>"), 4);
	assert_non_null(strstr(x, "<source_ip>192.0.2.2</source_ip>\n      <count>5</count>"));
	assert_non_null(strstr(x, "<source_ip>2001:db8::1</source_ip>\n      <count>7</count>"));
	/* records sorted: 192.0.2.1 first */
	assert_true(strstr(x, "192.0.2.1<") < strstr(x, "192.0.2.2<"));
	/* policy_published: sp defaults to p, pct to 100 */
	assert_non_null(strstr(x, "<domain>example.com</domain>\n    <adkim>r</adkim>\n    "
	                          "<aspf>s</aspf>\n    <p>reject</p>\n    <sp>reject</sp>\n    "
	                          "<pct>100</pct>"));
	assert_non_null(strstr(x, "<begin>1699920000</begin>"));
	assert_non_null(strstr(x, "<end>1700006399</end>"));
	/* t=y: the override "other" with its comment; no selector when there was none */
	assert_non_null(strstr(x, "<type>other</type>\n          <comment>policy_test_mode"));
	assert_int_equal(count_of(x, "<selector>"), 2);
	assert_int_equal(count_of(x, "<spf>pass</spf>"), 3);
	assert_non_null(strstr(x, "<spf>fail</spf>"));
	mw_str_free(&out);

	/* values outside the schema are refused, not written */
	rows[1] = row("192.0.2.1", "", "deliver", 1);
	mw_str_init(&out, 0);
	assert_int_equal(mw_dmarc_agg_xml(&meta, &pol, rows, 2, &out, &err), -1);
	mw_str_free(&out);
	rows[1] = row("192.0.2.1", "example.com s1 maybe\n", "none", 1);
	mw_str_init(&out, 0);
	assert_int_equal(mw_dmarc_agg_xml(&meta, &pol, rows, 2, &out, &err), -1);
	mw_str_free(&out);
	rows[1] = row("192.0.2.1", "", "none", 0);
	mw_str_init(&out, 0);
	assert_int_equal(mw_dmarc_agg_xml(&meta, &pol, rows + 1, 1, &out, &err), -1);
	mw_str_free(&out);
	mw_str_init(&out, 0);
	assert_int_equal(mw_dmarc_agg_xml(&meta, &pol, rows, 0, &out, &err), -1);
	mw_str_free(&out);
}

/* gunzip - inflate a gzip file */
static void gunzip(const mw_str *gz, mw_str *out)
{
	z_stream z;
	unsigned char buf[4096];
	int r;
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)gz->buf;
	z.avail_in = (uInt)gz->len;
	do {
		z.next_out = buf;
		z.avail_out = sizeof(buf);
		r = inflate(&z, Z_NO_FLUSH);
		assert_true(r == Z_OK || r == Z_STREAM_END);
		assert_int_equal(mw_str_append(out, (char *)buf, sizeof(buf) - z.avail_out), 0);
	} while (r != Z_STREAM_END);
	inflateEnd(&z);
}

static void test_gzip(void **state)
{
	mw_str in, gz, back;
	(void)state;
	mw_str_init(&in, 0);
	mw_str_init(&gz, 0);
	mw_str_init(&back, 0);
	for (int i = 0; i < 5000; i++)
		(void)mw_str_appendf(&in, "<record>%d</record>\n", i % 17);
	assert_int_equal(mw_dmarc_agg_gzip(in.buf, in.len, &gz, NULL), 0);
	assert_true(gz.len > 18 && gz.len < in.len / 10);
	assert_int_equal((unsigned char)gz.buf[0], 0x1f);
	assert_int_equal((unsigned char)gz.buf[1], 0x8b);
	gunzip(&gz, &back);
	assert_int_equal(back.len, in.len);
	assert_memory_equal(back.buf, in.buf, in.len);
	mw_str_free(&in);
	mw_str_free(&gz);
	mw_str_free(&back);
}

/* ---- rua ---- */

static void test_parse_rua(void **state)
{
	struct mw_dmarc_agg_dest d[4];
	mw_str skipped;
	size_t n;
	(void)state;

	mw_str_init(&skipped, 0);
	n = mw_dmarc_agg_parse_rua(" mailto:agg@Example.COM , https://x.example/r,"
	                           "mailto:a%2Cb@other.example!10m,mailto:bad,mailto:c@x!0,"
	                           "mailto:q@y.example?subject=x!2k",
	                           d, 4, &skipped);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].addr, "agg@Example.COM");
	assert_string_equal(d[0].domain, "example.com");
	assert_int_equal(d[0].max_size, 0);
	/* percent-decoded: but a comma is not a plain address, refused */
	assert_string_equal(d[1].addr, "q@y.example");
	assert_int_equal(d[1].max_size, 2048);
	assert_non_null(strstr(mw_str_c(&skipped), "https://x.example/r: not a mailto: URI"));
	assert_int_equal(count_of(mw_str_c(&skipped), "malformed mailto: URI"), 3);
	mw_str_free(&skipped);

	n = mw_dmarc_agg_parse_rua("mailto:a@b.example!10m,mailto:%61@c.example!1g", d, 4, NULL);
	assert_int_equal(n, 2);
	assert_int_equal(d[0].max_size, 10ULL * 1024 * 1024);
	assert_string_equal(d[1].addr, "a@c.example");
	assert_int_equal(d[1].max_size, 1024ULL * 1024 * 1024);
	/* at most MAX destinations */
	n = mw_dmarc_agg_parse_rua("mailto:a@a.example,mailto:b@b.example,mailto:c@c.example", d, 2,
	                           NULL);
	assert_int_equal(n, 2);
	assert_int_equal(mw_dmarc_agg_parse_rua("", d, 4, NULL), 0);
}

/* ---- the external destination check ---- */

struct txt_row {
	const char *name, *txt; /* txt NULL: the lookup fails */
};
static const struct txt_row txt_table[] = {
    {"_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:x@reports.example.net"},
    {"_dmarc.example.net", "v=DMARC1; p=none"},
    {"example.com._report._dmarc.reports.example.net", "v=DMARC1"},
    {"example.com._report._dmarc.other.example", "v=spf1 -all"},
    {"_dmarc.broken.example", NULL},
    {NULL, NULL},
};
static unsigned txt_lookups;

/* txt_stub - TXT records from txt_table */
static int txt_stub(void *ctx, const char *name, struct mw_dmarc_agg_txt *t)
{
	(void)ctx;
	txt_lookups++;
	t->n = 0;
	for (const struct txt_row *r = txt_table; r->name != NULL; r++)
		if (strcmp(r->name, name) == 0) {
			if (r->txt == NULL)
				return -1;
			strcpy(t->rec[t->n++], r->txt);
		}
	return 0;
}

/* test_dest_check - the same organisation, an authorised external destination, and the
   ones that are not (or cannot be told) */
static void test_dest_check(void **state)
{
	static const struct {
		const char *domain, *dest;
		int want;
		const char *why; /* in the reason; NULL: not looked at */
	} cases[] = {
	    {"example.com", "EXAMPLE.com", MW_DMARC_AGG_DEST_OK, NULL},
	    /* a subdomain of the same organisation needs no authorisation */
	    {"example.com", "reports.example.com", MW_DMARC_AGG_DEST_OK,
	     "same organisational domain example.com"},
	    /* external, authorised */
	    {"example.com", "reports.example.net", MW_DMARC_AGG_DEST_OK,
	     "authorised by example.com._report._dmarc.reports.example.net"},
	    /* external: a TXT record that is not v=DMARC1 authorises nothing, nor does none */
	    {"example.com", "other.example", MW_DMARC_AGG_DEST_UNAUTHORISED, NULL},
	    {"example.net", "example.com", MW_DMARC_AGG_DEST_UNAUTHORISED,
	     "no v=DMARC1 record at example.net._report._dmarc.example.com"},
	    /* a failed lookup decides nothing */
	    {"example.com", "x.broken.example", MW_DMARC_AGG_DEST_TEMPFAIL, NULL},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		char why[256] = "";
		int got = mw_dmarc_agg_dest_check(txt_stub, NULL, cases[i].domain, cases[i].dest,
		                                  why, sizeof(why));
		if (got != cases[i].want ||
		    (cases[i].why != NULL && strstr(why, cases[i].why) == NULL))
			fail_msg("case %zu: %s for %s: %d \"%s\", want %d \"%s\"", i, cases[i].dest,
			         cases[i].domain, got, why, cases[i].want,
			         cases[i].why != NULL ? cases[i].why : "");
	}
}

/* ---- the mail ---- */

static void test_mail(void **state)
{
	struct mw_dmarc_agg_meta meta = {"Mail, \"Inc\"", "dmarc@mx.example.net", "20231114.abc",
	                                 1699920000, 1700006399};
	struct mw_dmarc_agg_dest d[2];
	unsigned char gz[100];
	char fname[600];
	mw_str m;
	(void)state;
	for (size_t i = 0; i < sizeof(gz); i++)
		gz[i] = (unsigned char)(i * 7);
	memset(d, 0, sizeof(d));
	strcpy(d[0].addr, "agg@example.com");
	strcpy(d[1].addr, "r@reports.example.net");
	mw_str_init(&m, 0);
	assert_int_equal(mw_dmarc_agg_mail(&meta, "example.com", "mx.example.net", d, 2, gz,
	                                   sizeof(gz), 1700010000, &m, fname, NULL),
	                 0);
	assert_string_equal(fname, "mx.example.net!example.com!1699920000!1700006399.xml.gz");
	/* the organisation's name is one quoted display name, whatever it holds */
	assert_non_null(
	    strstr(mw_str_c(&m), "From: \"Mail, \\\"Inc\\\"\" <dmarc@mx.example.net>\r\n"));
	assert_non_null(strstr(mw_str_c(&m), "\r\nSubject: Report Domain: example.com Submitter: "
	                                     "mx.example.net Report-ID: <20231114.abc>\r\n"));
	assert_non_null(
	    strstr(mw_str_c(&m), "To: <agg@example.com>,\r\n <r@reports.example.net>\r\n"));
	assert_non_null(strstr(mw_str_c(&m), "Date: Wed, 15 Nov 2023 01:00:00 +0000\r\n"));
	assert_non_null(strstr(mw_str_c(&m), "Content-Type: application/gzip"));
	assert_non_null(strstr(mw_str_c(&m), "filename=\""
	                                     "mx.example.net!example.com!1699920000!"
	                                     "1700006399.xml.gz\""));
	/* base64 of the first bytes 00 07 0e */
	assert_non_null(strstr(mw_str_c(&m), "\r\n\r\nAAcO"));
	mw_str_free(&m);
	/* a header value with a line end is refused */
	meta.org_name = "x\r\nBcc: y@z";
	mw_str_init(&m, 0);
	assert_int_equal(mw_dmarc_agg_mail(&meta, "example.com", "mx.example.net", d, 2, gz,
	                                   sizeof(gz), 1700010000, &m, fname, NULL),
	                 -1);
	mw_str_free(&m);
}

/* ---- the store, both backends ---- */

/* eval - an evaluation of DOMAIN at T from IP */
static void eval(struct mw_dmarc_eval *e, const char *domain, int64_t t, const char *ip)
{
	memset(e, 0, sizeof(*e));
	e->evaluated_at = t;
	strcpy(e->source_ip, ip);
	strcpy(e->header_from, domain);
	strcpy(e->policy_domain, domain);
	strcpy(e->org_domain, domain);
	strcpy(e->p, "none");
	strcpy(e->adkim, "r");
	strcpy(e->aspf, "r");
	e->pct = -1;
	snprintf(e->rua, sizeof(e->rua), "mailto:agg@%s", domain);
	strcpy(e->envelope_from, domain);
	strcpy(e->spf_result, "pass");
	strcpy(e->spf_scope, "mfrom");
	snprintf(e->dkim, sizeof(e->dkim), "%s s1 pass\n", domain);
	e->dkim_aligned = e->spf_aligned = true;
	strcpy(e->dmarc_result, "pass");
	strcpy(e->disposition, "none");
}

#define DAY 1699920000 /* 2023-11-14 00:00:00 UTC */

static void test_store(void **state)
{
	struct mw_test_store_fx *f = *state;
	struct mw_dmarc_eval e, pol;
	struct mw_dmarc_agg_row *rows;
	char **domains;
	size_t n;
	uint64_t pruned;
	mw_error err = {""};

	/* example.com: 3 messages from .1 (one before the day), 1 failing from .2 */
	eval(&e, "example.com", DAY - 1, "192.0.2.1");
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_OK);
	eval(&e, "example.com", DAY, "192.0.2.1");
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_OK);
	eval(&e, "example.com", DAY + 3600, "192.0.2.1");
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_OK);
	eval(&e, "example.com", DAY + 7200, "192.0.2.2");
	strcpy(e.dmarc_result, "fail");
	strcpy(e.disposition, "reject");
	strcpy(e.p, "reject");
	strcpy(e.sp, "quarantine");
	e.dkim_aligned = e.spf_aligned = false;
	strcpy(e.dkim, "");
	strcpy(e.spf_result, "fail");
	e.pct = 100;
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_OK);
	eval(&e, "b.example", DAY + 86399, "2001:db8::1");
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_OK);
	eval(&e, "c.example", DAY + 86400, "192.0.2.9"); /* the next day */
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_OK);
	/* refused before the database */
	eval(&e, "example.com", DAY, "192.0.2.1");
	strcpy(e.override, "because");
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_ERROR);
	assert_non_null(strstr(err.msg, "override"));
	eval(&e, "example.com", DAY, "192.0.2.1\n");
	assert_int_equal(mw_store_dmarc_eval_add(f->store, &e, &err), MW_STORE_ERROR);

	assert_int_equal(mw_store_dmarc_domains(f->store, DAY, DAY + 86400, &domains, &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(domains[0], "b.example");
	assert_string_equal(domains[1], "example.com");
	assert_null(domains[2]);
	mw_store_strv_free(domains);

	/* the record as last seen that day */
	assert_int_equal(
	    mw_store_dmarc_policy(f->store, "example.com", DAY, DAY + 86400, &pol, &err),
	    MW_STORE_OK);
	assert_string_equal(pol.policy_domain, "example.com");
	assert_string_equal(pol.p, "reject");
	assert_string_equal(pol.sp, "quarantine");
	assert_int_equal(pol.pct, 100);
	assert_string_equal(pol.rua, "mailto:agg@example.com");
	assert_int_equal(mw_store_dmarc_policy(f->store, "c.example", DAY, DAY + 86400, &pol, &err),
	                 MW_STORE_NOTFOUND);

	/* grouped: two groups, counts 2 and 1 */
	assert_int_equal(
	    mw_store_dmarc_rows(f->store, "example.com", DAY, DAY + 86400, &rows, &n, &err),
	    MW_STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].source_ip, "192.0.2.1");
	assert_int_equal(rows[0].count, 2);
	assert_true(rows[0].dkim_aligned);
	assert_string_equal(rows[0].dkim, "example.com s1 pass\n");
	assert_string_equal(rows[1].source_ip, "192.0.2.2");
	assert_int_equal(rows[1].count, 1);
	assert_string_equal(rows[1].disposition, "reject");
	assert_false(rows[1].spf_aligned);
	free(rows);

	/* the claim: once per domain and day */
	assert_int_equal(mw_store_dmarc_report_claim(f->store, "example.com", DAY, DAY + 86399,
	                                             "20231114.1", "agg@example.com", 3,
	                                             DAY + 90000, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_dmarc_report_claim(f->store, "example.com", DAY, DAY + 86399,
	                                             "20231114.2", "agg@example.com", 3,
	                                             DAY + 90001, &err),
	                 MW_STORE_EXISTS);
	assert_int_equal(mw_store_dmarc_report_claim(f->store, "b.example", DAY, DAY + 86399,
	                                             "20231114.3", "agg@b.example", 1, DAY + 90001,
	                                             &err),
	                 MW_STORE_OK);
	/* given back (sendmail failed): the next run may claim it */
	assert_int_equal(mw_store_dmarc_report_unclaim(f->store, "b.example", DAY, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_store_dmarc_report_claim(f->store, "b.example", DAY, DAY + 86399,
	                                             "20231114.4", "agg@b.example", 1, DAY + 90002,
	                                             &err),
	                 MW_STORE_OK);

	/* retention: everything before the day goes, the claims of older days too */
	assert_int_equal(mw_store_dmarc_prune(f->store, DAY, &pruned, &err), MW_STORE_OK);
	assert_int_equal(pruned, 1);
	assert_int_equal(mw_store_dmarc_prune(f->store, DAY + 86401, &pruned, &err), MW_STORE_OK);
	assert_int_equal(pruned, 5);
	assert_int_equal(mw_store_dmarc_domains(f->store, 0, DAY + 200000, &domains, &n, &err),
	                 MW_STORE_OK);
	assert_int_equal(n, 0);
	mw_store_strv_free(domains);
	assert_int_equal(mw_store_dmarc_report_claim(f->store, "example.com", DAY, DAY + 86399,
	                                             "20231114.5", "agg@example.com", 3,
	                                             DAY + 90000, &err),
	                 MW_STORE_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_eval_from_results),
	    cmocka_unit_test(test_eval_decisions),
	    cmocka_unit_test(test_eval_null_sender),
	    cmocka_unit_test(test_xml),
	    cmocka_unit_test(test_gzip),
	    cmocka_unit_test(test_parse_rua),
	    cmocka_unit_test(test_dest_check),
	    cmocka_unit_test(test_mail),
	    MW_TEST_DB_BOTH(test_store, mw_test_store_setup, mw_test_store_teardown),
	};
	MW_RUN_TESTS(tests);
}
