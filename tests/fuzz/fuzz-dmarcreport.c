/* FUZZ_PKGS: jansson */
/*
 * fuzz-dmarcreport.c - fuzz target for DMARC aggregate reports received (lib/mw-dmarc-report:
 * the mail, gzip and zip unpacking, the XML; libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The first byte picks the layer the rest goes to: 'm' a mail message, 'g' a gzip
 * attachment, 'z' a zip attachment (each unpacked, then parsed as XML), anything else the
 * XML parser directly. An accepted report must hold what the parser promises: 1 to
 * MW_DMARC_RPT_ROWS_MAX rows, counts within MW_DMARC_RPT_COUNT_MAX summing to messages, a
 * date range in order, every text valid UTF-8 within its limit, source IPs that parse, each
 * header_from the policy domain or under it, auth_results valid JSON. A refusal comes with
 * a message and no result; unpacked data never exceeds MW_DMARC_RPT_XML_MAX.
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-dmarc-report.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check - abort with a message when an invariant is broken */
static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-dmarcreport: %s\n", what);
		abort();
	}
}

/* text - valid UTF-8 without control characters, at most max bytes */
static void text(const char *s, size_t max, bool nonempty, const char *what)
{
	size_t len = strlen(s), i, l;
	uint32_t cp = 0;
	check(len <= max && (!nonempty || len > 0), what);
	check(mw_utf8_valid(s, len, NULL), what);
	for (i = 0; i < len; i += l) {
		l = mw_utf8_decode(s + i, len - i, &cp);
		check(l > 0 && !mw_unichar_is_control(cp), what);
	}
}

/* verify - the promises of an accepted report */
static void verify(const struct mw_dmarc_rpt *r)
{
	size_t i, dl = strlen(r->domain);
	int64_t sum = 0;
	check(r->nrows >= 1 && r->nrows <= MW_DMARC_RPT_ROWS_MAX, "row count");
	check(r->date_begin <= r->date_end, "date range");
	text(r->org_name, MW_DMARC_RPT_TEXT_MAX, true, "org_name");
	text(r->email, MW_DMARC_RPT_TEXT_MAX, true, "email");
	text(r->report_id, MW_DMARC_RPT_TEXT_MAX, true, "report_id");
	text(r->domain, MW_DMARC_RPT_DOMAIN_MAX, true, "domain");
	check(r->pct >= -1 && r->pct <= 100, "pct");
	for (i = 0; i < r->nrows; i++) {
		const struct mw_dmarc_rpt_row *w = &r->rows[i];
		unsigned char a[16];
		size_t hl = strlen(w->header_from);
		json_error_t je;
		json_t *j;
		check(w->count >= 0 && w->count <= MW_DMARC_RPT_COUNT_MAX, "count");
		sum += w->count;
		check(inet_pton(AF_INET, w->source_ip, a) == 1 ||
		          inet_pton(AF_INET6, w->source_ip, a) == 1,
		      "source_ip");
		check(strcmp(w->header_from, r->domain) == 0 ||
		          (hl > dl && w->header_from[hl - dl - 1] == '.' &&
		           strcmp(w->header_from + hl - dl, r->domain) == 0),
		      "header_from outside the policy domain");
		text(w->envelope_from, MW_DMARC_RPT_DOMAIN_MAX, false, "envelope_from");
		text(w->envelope_to, MW_DMARC_RPT_DOMAIN_MAX, false, "envelope_to");
		check(w->auth_results != NULL, "auth_results");
		j = json_loads(w->auth_results, 0, &je);
		check(j != NULL && json_is_array(json_object_get(j, "dkim")) &&
		          json_is_array(json_object_get(j, "spf")),
		      "auth_results JSON");
		json_decref(j);
	}
	check(sum == r->messages, "messages is not the sum of the counts");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_dmarc_rpt *r = NULL;
	mw_error err = {""};
	const char *in = (const char *)data + 1;
	size_t len = size > 0 ? size - 1 : 0;
	int ret;
	if (size == 0)
		return 0;
	if (data[0] == 'm') {
		ret = mw_dmarc_rpt_parse_message(in, len, &r, &err);
	} else if (data[0] == 'g' || data[0] == 'z') {
		mw_str xml;
		mw_str_init(&xml, 0);
		ret = mw_dmarc_rpt_unpack(in, len, data[0] == 'z', &xml, &err);
		check(xml.len <= MW_DMARC_RPT_XML_MAX, "unpacked over the limit");
		if (ret == 0)
			ret = mw_dmarc_rpt_parse_xml(xml.buf != NULL ? xml.buf : "", xml.len,
			                             "f.xml", &r, &err);
		mw_str_free(&xml);
	} else {
		ret = mw_dmarc_rpt_parse_xml(in, len, "f.xml", &r, &err);
	}
	if (ret == 0) {
		check(r != NULL, "accepted without a result");
		verify(r);
		mw_dmarc_rpt_free(&r);
		check(r == NULL, "free left the pointer");
	} else {
		check(r == NULL, "refused with a result");
		check(err.msg[0] != '\0', "refused without a message");
	}
	return 0;
}
