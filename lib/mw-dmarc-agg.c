/* mw-dmarc-agg.c - DMARC aggregate reports, the sending side: an evaluation as recorded, the
 * XML report (RFC 7489 section 7.2 and appendix C), gzip, the rua destinations with their
 * !size limits and the external destination check (RFC 7489 7.1), the report mail.
 *
 * Public: mw_dmarc_eval_from_results, mw_dmarc_agg_xml, mw_dmarc_agg_gzip,
 * mw_dmarc_agg_parse_rua, mw_dmarc_agg_dns_txt, mw_dmarc_agg_dest_check, mw_dmarc_agg_mail,
 * mw_dmarc_agg_filename.
 *
 * The report is the RFC 7489 format (no XML namespace, what receivers parse today); a
 * DMARCbis t=y is reported as the override "other" with the comment policy_test_mode, np=
 * is left out (RFC 7489's schema has no place for it).
 *
 * Diagnostics: none logged; errors through error_r, the destination check's findings
 * through why_r.
 */
#include "mw-build.h"
#include "mw-dmarc-agg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

/* ---- an evaluation ------------------------------------------------------------------ */

/* copy - bounded copy that never fails (an over-long value becomes "") */
static void copy(char *dst, size_t size, const char *src)
{
	(void)mw_strlcpy(dst, src != NULL ? src : "", size);
}

/* word_copy - SRC with every byte outside printable ASCII, and every blank, as '?' */
static void word_copy(char *dst, size_t size, const char *src)
{
	size_t i;
	for (i = 0; src[i] != '\0' && i + 1 < size; i++)
		dst[i] = src[i] > 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

/* rua_of - the rua= value of a DMARC record into OUT ("" when absent); a value longer than
   OUT keeps its first URIs only */
static void rua_of(const char *rec, char *out, size_t size)
{
	const char *p = rec;
	out[0] = '\0';
	while (*p != '\0') {
		const char *semi = strchr(p, ';'), *e = semi != NULL ? semi : p + strlen(p);
		const char *n = p, *eq;
		while (n < e && (*n == ' ' || *n == '\t'))
			n++;
		eq = memchr(n, '=', (size_t)(e - n));
		if (eq != NULL) {
			const char *ne = eq;
			while (ne > n && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			if (ne - n == 3 && mw_ascii_strncasecmp(n, "rua", 3) == 0) {
				const char *v = eq + 1, *ve = e;
				size_t len;
				while (v < ve && (*v == ' ' || *v == '\t'))
					v++;
				while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
					ve--;
				len = (size_t)(ve - v);
				while (len >= size) { /* cut at the last comma that fits */
					const char *c = v + size - 1;
					while (c > v && *c != ',')
						c--;
					len = (size_t)(c - v);
				}
				memcpy(out, v, len);
				out[len] = '\0';
				return;
			}
		}
		p = semi != NULL ? semi + 1 : e;
	}
}

/* mw_dmarc_eval_from_results - what one evaluation records */
int mw_dmarc_eval_from_results(const struct mw_auth_results *res,
                               const struct mw_dmarc_eval_context *c, struct mw_dmarc_eval *e)
{
	struct mw_dmarc_record rec;
	const struct mw_verdict *v = c->verdict;
	size_t i, len = 0;

	memset(e, 0, sizeof(*e));
	if (res->dmarc_record[0] == '\0' || res->dmarc_record_domain[0] == '\0' ||
	    (res->dmarc != MW_AUTH_PASS && res->dmarc != MW_AUTH_FAIL) ||
	    v->action == MW_VERDICT_TEMPFAIL ||
	    mw_dmarc_record_parse(res->dmarc_record, &rec, NULL) < 0)
		return 1;
	e->evaluated_at = c->now;
	copy(e->source_ip, sizeof(e->source_ip), c->source_ip);
	copy(e->header_from, sizeof(e->header_from), res->from_domain);
	copy(e->policy_domain, sizeof(e->policy_domain), res->dmarc_record_domain);
	mw_ascii_lower(e->header_from);
	mw_ascii_lower(e->policy_domain);
	copy(e->org_domain, sizeof(e->org_domain), res->dmarc_org_domain);
	mw_ascii_lower(e->org_domain);
	/* RFC 9989: a record without p= is read as p=none */
	copy(e->p, sizeof(e->p), rec.p == MW_DMARC_P_UNSET ? "none" : mw_dmarc_p_str(rec.p));
	copy(e->sp, sizeof(e->sp), rec.sp == MW_DMARC_P_UNSET ? "" : mw_dmarc_p_str(rec.sp));
	copy(e->np, sizeof(e->np), rec.np == MW_DMARC_P_UNSET ? "" : mw_dmarc_p_str(rec.np));
	copy(e->adkim, sizeof(e->adkim), rec.strict_dkim ? "s" : "r");
	copy(e->aspf, sizeof(e->aspf), rec.strict_spf ? "s" : "r");
	e->testing = rec.testing;
	e->pct = rec.has_pct ? (int)rec.pct : -1;
	rua_of(res->dmarc_record, e->rua, sizeof(e->rua));
	copy(e->envelope_from, sizeof(e->envelope_from), res->spf_domain);
	mw_ascii_lower(e->envelope_from);
	copy(e->spf_result, sizeof(e->spf_result), mw_auth_result_str(res->spf));
	copy(e->spf_scope, sizeof(e->spf_scope), res->spf_scope_helo ? "helo" : "mfrom");
	for (i = 0; i < res->dkim_count; i++) {
		const struct mw_auth_dkim *d = &res->dkim[i];
		char dom[sizeof(d->domain)], sel[sizeof(d->selector)];
		int n;
		if (d->domain[0] == '\0')
			continue;
		/* blanks and line ends are our separators: never inside a value */
		word_copy(dom, sizeof(dom), d->domain);
		word_copy(sel, sizeof(sel), d->selector[0] != '\0' ? d->selector : "-");
		n = snprintf(e->dkim + len, sizeof(e->dkim) - len, "%s %s %s\n", dom, sel,
		             mw_auth_result_str(d->result));
		if (n < 0 || (size_t)n >= sizeof(e->dkim) - len) {
			e->dkim[len] = '\0';
			break;
		}
		len += (size_t)n;
	}
	e->dkim_aligned = res->dmarc_dkim_aligned;
	e->spf_aligned = res->dmarc_spf_aligned;
	copy(e->dmarc_result, sizeof(e->dmarc_result),
	     res->dmarc == MW_AUTH_PASS ? "pass" : "fail");

	switch (v->action) {
	case MW_VERDICT_REJECT:
		copy(e->disposition, sizeof(e->disposition), "reject");
		/* refused for another reason than the domain's p=reject */
		if (res->dmarc != MW_AUTH_FAIL || res->policy != MW_DMARC_POLICY_REJECT)
			copy(e->override, sizeof(e->override), "local_policy");
		break;
	case MW_VERDICT_QUARANTINE:
		copy(e->disposition, sizeof(e->disposition), "quarantine");
		break;
	default:
		copy(e->disposition, sizeof(e->disposition), "none");
		if (res->dmarc != MW_AUTH_FAIL || res->policy == MW_DMARC_POLICY_NONE ||
		    res->policy == MW_DMARC_POLICY_ABSENT)
			break;
		if (res->dmarc_override)
			copy(e->override, sizeof(e->override), "trusted_forwarder");
		else if (res->dmarc_testing)
			copy(e->override, sizeof(e->override), "policy_test_mode");
		else if (!c->dmarc_enforce)
			copy(e->override, sizeof(e->override), "local_policy");
		else if (rec.has_pct && rec.pct < 100)
			copy(e->override, sizeof(e->override), "sampled_out");
		else
			copy(e->override, sizeof(e->override), "local_policy");
		break;
	}
	return 0;
}

/* ---- the XML report ----------------------------------------------------------------- */

/* elem - <NAME>TEXT</NAME> on its own line, indented */
static void elem(mw_str *out, int indent, const char *name, const char *text)
{
	(void)mw_str_appendf(out, "%*s<%s>", indent, "", name);
	(void)mw_str_append_markup(out, text, MW_MARKUP_XML | MW_MARKUP_ASCII);
	(void)mw_str_appendf(out, "</%s>\n", name);
}

/* num - V in decimal (NUL-terminated) in BUF */
static const char *num(char buf[MW_I64_DIGITS], int64_t v)
{
	(void)snprintf(buf, MW_I64_DIGITS, "%lld", (long long)v);
	return buf;
}

/* in_list - WORD is one of the '|' separated LIST */
static bool in_list(const char *word, const char *list)
{
	size_t n = strlen(word);
	const char *p = list;
	if (n == 0)
		return false;
	while ((p = strstr(p, word)) != NULL) {
		if ((p == list || p[-1] == '|') && (p[n] == '|' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

#define DISPOSITIONS "none|quarantine|reject"
#define SPF_RESULTS  "none|neutral|pass|fail|softfail|temperror|permerror"
#define DKIM_RESULTS "none|pass|fail|policy|neutral|temperror|permerror"
#define OVERRIDES                                                                                  \
	"trusted_forwarder|local_policy|sampled_out|policy_test_mode|forwarded|mailing_list|other"

/* row_cmp - the order of records in a report (and what makes two rows one group) */
static int row_cmp(const void *a, const void *b)
{
	const struct mw_dmarc_agg_row *x = a, *y = b;
	int c;
	if ((c = strcmp(x->source_ip, y->source_ip)) != 0 ||
	    (c = strcmp(x->header_from, y->header_from)) != 0 ||
	    (c = strcmp(x->envelope_from, y->envelope_from)) != 0 ||
	    (c = strcmp(x->spf_result, y->spf_result)) != 0 ||
	    (c = strcmp(x->spf_scope, y->spf_scope)) != 0 || (c = strcmp(x->dkim, y->dkim)) != 0 ||
	    (c = strcmp(x->disposition, y->disposition)) != 0 ||
	    (c = strcmp(x->override, y->override)) != 0)
		return c;
	if (x->dkim_aligned != y->dkim_aligned)
		return x->dkim_aligned ? 1 : -1;
	if (x->spf_aligned != y->spf_aligned)
		return x->spf_aligned ? 1 : -1;
	return 0;
}

/* dkim_results - the <dkim> elements of a row's "DOMAIN SELECTOR RESULT\n" lines; -1 when a
   line does not have that shape or its result is not in the schema */
static int dkim_results(mw_str *out, const char *dkim, mw_error *error_r)
{
	const char *p = dkim;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n'), *e = nl != NULL ? nl : p + strlen(p);
		char line[MW_DNS_NAME_MAX + 96], *s1, *s2;
		size_t len = (size_t)(e - p);
		if (len >= sizeof(line)) {
			mw_error_set(error_r, "DKIM result line too long");
			return -1;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		s1 = strchr(line, ' ');
		s2 = s1 != NULL ? strchr(s1 + 1, ' ') : NULL;
		if (s1 == NULL || s2 == NULL || s1 == line || strchr(s2 + 1, ' ') != NULL ||
		    !in_list(s2 + 1, DKIM_RESULTS)) {
			mw_error_set(error_r, "malformed DKIM result line");
			return -1;
		}
		*s1 = *s2 = '\0';
		(void)mw_str_appends(out, "      <dkim>\n");
		elem(out, 8, "domain", line);
		if (strcmp(s1 + 1, "-") != 0)
			elem(out, 8, "selector", s1 + 1);
		elem(out, 8, "result", s2 + 1);
		(void)mw_str_appends(out, "      </dkim>\n");
		p = nl != NULL ? nl + 1 : e;
	}
	return 0;
}

/* record - one <record> */
static int record(mw_str *out, const struct mw_dmarc_agg_row *r, mw_error *error_r)
{
	char count[MW_I64_DIGITS];

	if (!in_list(r->disposition, DISPOSITIONS) || !in_list(r->spf_result, SPF_RESULTS) ||
	    (strcmp(r->spf_scope, "mfrom") != 0 && strcmp(r->spf_scope, "helo") != 0) ||
	    (r->override[0] != '\0' && !in_list(r->override, OVERRIDES)) || r->count == 0 ||
	    r->source_ip[0] == '\0' || r->header_from[0] == '\0') {
		mw_error_set(error_r,
		             "evaluation from %.64s with a value outside the report schema",
		             r->source_ip);
		return -1;
	}
	(void)mw_str_appends(out, "  <record>\n    <row>\n");
	elem(out, 6, "source_ip", r->source_ip);
	elem(out, 6, "count", num(count, (int64_t)r->count));
	(void)mw_str_appends(out, "      <policy_evaluated>\n");
	elem(out, 8, "disposition", r->disposition);
	elem(out, 8, "dkim", r->dkim_aligned ? "pass" : "fail");
	elem(out, 8, "spf", r->spf_aligned ? "pass" : "fail");
	if (r->override[0] != '\0') {
		bool test = strcmp(r->override, "policy_test_mode") == 0;
		(void)mw_str_appends(out, "        <reason>\n");
		elem(out, 10, "type", test ? "other" : r->override);
		if (test)
			elem(out, 10, "comment", "policy_test_mode (t=y)");
		(void)mw_str_appends(out, "        </reason>\n");
	}
	(void)mw_str_appends(out, "      </policy_evaluated>\n    </row>\n    <identifiers>\n");
	elem(out, 6, "header_from", r->header_from);
	(void)mw_str_appends(out, "    </identifiers>\n    <auth_results>\n");
	if (dkim_results(out, r->dkim, error_r) < 0)
		return -1;
	(void)mw_str_appends(out, "      <spf>\n");
	/* the schema wants a domain: the null sender with no HELO has none to name */
	elem(out, 8, "domain", r->envelope_from[0] != '\0' ? r->envelope_from : ".");
	elem(out, 8, "scope", r->spf_scope);
	elem(out, 8, "result", r->spf_result);
	(void)mw_str_appends(out, "      </spf>\n    </auth_results>\n  </record>\n");
	return 0;
}

/* mw_dmarc_agg_xml - the aggregate report of one domain */
int mw_dmarc_agg_xml(const struct mw_dmarc_agg_meta *meta, const struct mw_dmarc_eval *pol,
                     const struct mw_dmarc_agg_row *rows, size_t nrows, mw_str *out,
                     mw_error *error_r)
{
	struct mw_dmarc_agg_row *v;
	char nb[MW_I64_DIGITS];
	size_t i, n = 0;
	int ret = 0;

	if (nrows == 0) {
		mw_error_set(error_r, "no evaluations to report");
		return -1;
	}
	if (!in_list(pol->p, DISPOSITIONS) ||
	    (pol->sp[0] != '\0' && !in_list(pol->sp, DISPOSITIONS))) {
		mw_error_set(error_r, "policy of %.100s outside the report schema",
		             pol->policy_domain);
		return -1;
	}
	v = mw_malloc(nrows * sizeof(*v));
	memcpy(v, rows, nrows * sizeof(*v));
	qsort(v, nrows, sizeof(*v), row_cmp);
	for (i = 0; i < nrows; i++) { /* merge the groups */
		if (n > 0 && row_cmp(&v[n - 1], &v[i]) == 0) {
			v[n - 1].count += v[i].count;
			if (v[i].count == 0)
				v[n - 1].count = 0; /* refused below */
		} else {
			if (n != i)
				v[n] = v[i];
			n++;
		}
	}
	(void)mw_str_appends(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n");
	(void)mw_str_appends(out, "  <report_metadata>\n");
	elem(out, 4, "org_name", meta->org_name);
	elem(out, 4, "email", meta->email);
	elem(out, 4, "report_id", meta->report_id);
	(void)mw_str_appends(out, "    <date_range>\n");
	elem(out, 6, "begin", num(nb, meta->begin));
	elem(out, 6, "end", num(nb, meta->end));
	(void)mw_str_appends(out,
	                     "    </date_range>\n  </report_metadata>\n  <policy_published>\n");
	elem(out, 4, "domain", pol->policy_domain);
	elem(out, 4, "adkim", pol->adkim[0] == 's' ? "s" : "r");
	elem(out, 4, "aspf", pol->aspf[0] == 's' ? "s" : "r");
	elem(out, 4, "p", pol->p);
	/* sp= defaults to p= (RFC 7489 6.3) */
	elem(out, 4, "sp", pol->sp[0] != '\0' ? pol->sp : pol->p);
	elem(out, 4, "pct", num(nb, pol->pct >= 0 ? pol->pct : 100));
	(void)mw_str_appends(out, "  </policy_published>\n");
	for (i = 0; i < n && ret == 0; i++)
		ret = record(out, &v[i], error_r);
	(void)mw_str_appends(out, "</feedback>\n");
	free(v);
	return ret;
}

/* ---- gzip ----------------------------------------------------------------------------- */

/* mw_dmarc_agg_gzip - DATA as a gzip file */
int mw_dmarc_agg_gzip(const void *data, size_t len, mw_str *out, mw_error *error_r)
{
	z_stream z;
	unsigned char buf[16384];
	int zr;

	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip header and trailer around the deflate stream */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		mw_error_set(error_r, "deflateInit2 failed");
		return -1;
	}
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	if ((size_t)z.avail_in != len) {
		(void)deflateEnd(&z);
		mw_error_set(error_r, "report too large to compress");
		return -1;
	}
	do {
		z.next_out = buf;
		z.avail_out = sizeof(buf);
		zr = deflate(&z, Z_FINISH);
		if (zr == Z_STREAM_ERROR ||
		    mw_str_append(out, (const char *)buf, sizeof(buf) - z.avail_out) < 0) {
			(void)deflateEnd(&z);
			mw_error_set(error_r, "compressing the report failed");
			return -1;
		}
	} while (zr != Z_STREAM_END);
	(void)deflateEnd(&z);
	return 0;
}

/* ---- rua ------------------------------------------------------------------------------ */

/* parse_size - "10", "10k", "10m", "10g", "10t" (RFC 7489 6.4: k, m, g, t units) */
static int parse_size(const char *s, size_t len, uint64_t *size_r)
{
	uint64_t v = 0, mult = 1;
	size_t i;
	if (len > 0) {
		switch (s[len - 1] | 0x20) {
		case 'k':
			mult = 1024;
			len--;
			break;
		case 'm':
			mult = 1024 * 1024;
			len--;
			break;
		case 'g':
			mult = 1024ULL * 1024 * 1024;
			len--;
			break;
		case 't':
			mult = 1024ULL * 1024 * 1024 * 1024;
			len--;
			break;
		}
	}
	if (len == 0 || len > 12)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*size_r = v * mult;
	return v == 0 ? -1 : 0;
}

/* addr_ok - a plain local@domain: printable ASCII without blanks, <>, quotes, commas */
static bool addr_ok(const char *a, const char **at_r)
{
	const char *at = strrchr(a, '@'), *p;
	if (at == NULL || at == a || at[1] == '\0' || strlen(at + 1) > MW_DNS_NAME_MAX)
		return false;
	for (p = a; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("<>\"(),;:\\[]", *p) != NULL)
			return false;
	for (p = at + 1; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	*at_r = at;
	return true;
}

/* mw_dmarc_agg_parse_rua - the mailto: destinations of a rua= value */
size_t mw_dmarc_agg_parse_rua(const char *rua, struct mw_dmarc_agg_dest *dests, size_t max,
                              mw_str *skipped_r)
{
	const char *p = rua;
	size_t n = 0;

	while (*p != '\0') {
		const char *comma = strchr(p, ','), *e = comma != NULL ? comma : p + strlen(p);
		const char *s = p, *bang, *addr_end, *at;
		char addr[sizeof(dests[0].addr)];
		size_t alen = 0;
		uint64_t size = 0;
		bool bad = false;

		p = comma != NULL ? comma + 1 : e;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (s == e)
			continue;
		if (e - s < 7 || mw_ascii_strncasecmp(s, "mailto:", 7) != 0) {
			if (skipped_r != NULL)
				(void)mw_str_appendf(skipped_r, "%s%.*s: not a mailto: URI",
				                     skipped_r->len > 0 ? "; " : "",
				                     (int)(e - s > 100 ? 100 : e - s), s);
			continue;
		}
		s += 7;
		bang = memchr(s, '!', (size_t)(e - s));
		addr_end = bang != NULL ? bang : e;
		if (bang != NULL && parse_size(bang + 1, (size_t)(e - bang - 1), &size) < 0)
			bad = true;
		/* percent-decoding; a query (?...) is ignored */
		for (; s < addr_end && *s != '?' && !bad; s++) {
			char c = *s;
			if (c == '%') {
				int h1 = s + 2 < addr_end ? mw_hexval((unsigned char)s[1]) : -1;
				int h2 = h1 >= 0 ? mw_hexval((unsigned char)s[2]) : -1;
				if (h2 < 0) {
					bad = true;
					break;
				}
				c = (char)(h1 * 16 + h2);
				s += 2;
			}
			if (alen + 1 >= sizeof(addr)) {
				bad = true;
				break;
			}
			addr[alen++] = c;
		}
		addr[alen] = '\0';
		if (bad || !addr_ok(addr, &at)) {
			if (skipped_r != NULL)
				(void)mw_str_appendf(skipped_r, "%smalformed mailto: URI",
				                     skipped_r->len > 0 ? "; " : "");
			continue;
		}
		if (n >= max) {
			if (skipped_r != NULL)
				(void)mw_str_appendf(skipped_r, "%smore than %zu destinations",
				                     skipped_r->len > 0 ? "; " : "", max);
			break;
		}
		(void)mw_strlcpy(dests[n].addr, addr, sizeof(dests[n].addr));
		(void)mw_strlcpy(dests[n].domain, at + 1, sizeof(dests[n].domain));
		mw_ascii_lower(dests[n].domain);
		dests[n].max_size = size;
		n++;
	}
	return n;
}

/* ---- the external destination check ------------------------------------------------- */

/* mw_dmarc_agg_dns_txt - the TXT records of NAME through an mw_dns resolver */
int mw_dmarc_agg_dns_txt(void *ctx, const char *name, struct mw_dmarc_agg_txt *txt_r)
{
	struct mw_dns_answer ans;
	enum mw_dns_status st = mw_dns_query(ctx, name, MW_DNS_TXT, &ans, NULL);
	size_t i;

	txt_r->n = 0;
	if (st == MW_DNS_NXDOMAIN || st == MW_DNS_NODATA) {
		mw_dns_answer_free(&ans);
		return 0;
	}
	if (st != MW_DNS_OK) {
		mw_dns_answer_free(&ans);
		return -1;
	}
	for (i = 0; i < ans.count && txt_r->n < MW_DMARC_AGG_TXT_MAX; i++) {
		if (memchr(ans.rec[i], '\0', ans.len[i]) != NULL ||
		    mw_strlcpy(txt_r->rec[txt_r->n], ans.rec[i], sizeof(txt_r->rec[0])) < 0)
			continue;
		txt_r->n++;
	}
	mw_dns_answer_free(&ans);
	return 0;
}

struct walk_ctx {
	mw_dmarc_agg_txt_fn *fn;
	void *ctx;
	struct mw_dmarc_agg_txt txt; /* scratch */
};

/* walk_fetch - mw-dmarc's fetch over the caller's TXT lookup */
static enum mw_dmarc_fetch walk_fetch(void *ctx, const char *domain, char *rec, size_t recsize)
{
	struct walk_ctx *w = ctx;
	char name[MW_DNS_NAME_MAX + 16];
	size_t i, found = 0, idx = 0;

	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", domain) >= sizeof(name))
		return MW_DMARC_FETCH_NONE;
	if (w->fn(w->ctx, name, &w->txt) < 0)
		return MW_DMARC_FETCH_TEMPFAIL;
	for (i = 0; i < w->txt.n; i++)
		if (mw_dmarc_is_record(w->txt.rec[i], strlen(w->txt.rec[i]))) {
			found++;
			idx = i;
		}
	if (found == 0)
		return MW_DMARC_FETCH_NONE;
	if (found > 1)
		return MW_DMARC_FETCH_MULTIPLE;
	(void)mw_strlcpy(rec, w->txt.rec[idx], recsize);
	return MW_DMARC_FETCH_ONE;
}

/* mw_dmarc_agg_dest_check - RFC 7489 7.1 for one destination domain */
enum mw_dmarc_agg_dest_status mw_dmarc_agg_dest_check(mw_dmarc_agg_txt_fn *fn, void *ctx,
                                                      const char *policy_domain,
                                                      const char *dest_domain, char *why_r,
                                                      size_t why_size)
{
	struct walk_ctx *wc = mw_calloc(1, sizeof(*wc));
	struct mw_dmarc_walk *w = mw_malloc(sizeof(*w));
	char po[MW_DNS_NAME_MAX + 1], dorg[MW_DNS_NAME_MAX + 1], name[MW_DNS_NAME_MAX * 2 + 32];
	enum mw_dmarc_agg_dest_status ret = MW_DMARC_AGG_DEST_UNAUTHORISED;
	size_t i;

	wc->fn = fn;
	wc->ctx = ctx;
	mw_dmarc_walk_init(w, walk_fetch, wc);
	if (mw_ascii_strcasecmp(policy_domain, dest_domain) == 0) {
		snprintf(why_r, why_size, "same domain");
		ret = MW_DMARC_AGG_DEST_OK;
		goto out;
	}
	if (mw_dmarc_org_domain(w, policy_domain, po) != MW_DMARC_WALK_FOUND ||
	    mw_dmarc_org_domain(w, dest_domain, dorg) != MW_DMARC_WALK_FOUND) {
		snprintf(why_r, why_size, "organisational domain lookup failed");
		ret = MW_DMARC_AGG_DEST_TEMPFAIL;
		goto out;
	}
	if (mw_ascii_strcasecmp(po, dorg) == 0) {
		snprintf(why_r, why_size, "same organisational domain %s", po);
		ret = MW_DMARC_AGG_DEST_OK;
		goto out;
	}
	if ((size_t)snprintf(name, sizeof(name), "%s._report._dmarc.%s", policy_domain,
	                     dest_domain) >= sizeof(name) ||
	    strlen(name) > MW_DNS_NAME_MAX) {
		snprintf(why_r, why_size, "authorisation name too long");
		goto out;
	}
	if (fn(ctx, name, &wc->txt) < 0) {
		snprintf(why_r, why_size, "lookup of %s failed", name);
		ret = MW_DMARC_AGG_DEST_TEMPFAIL;
		goto out;
	}
	for (i = 0; i < wc->txt.n; i++)
		if (mw_dmarc_is_record(wc->txt.rec[i], strlen(wc->txt.rec[i]))) {
			snprintf(why_r, why_size, "authorised by %s", name);
			ret = MW_DMARC_AGG_DEST_OK;
			goto out;
		}
	snprintf(why_r, why_size, "no v=DMARC1 record at %s", name);
out:
	free(w);
	free(wc);
	return ret;
}

/* ---- the mail ------------------------------------------------------------------------- */

/* mw_dmarc_agg_filename - SUBMITTER!DOMAIN!BEGIN!END.xml.gz */
void mw_dmarc_agg_filename(const char *submitter, const char *policy_domain, int64_t begin,
                           int64_t end, char *buf, size_t size)
{
	if ((size_t)snprintf(buf, size, "%s!%s!%lld!%lld.xml.gz", submitter, policy_domain,
	                     (long long)begin, (long long)end) >= size)
		buf[0] = '\0';
}

/* base64 - DATA in lines of 76 characters */
static void base64(mw_str *out, const unsigned char *d, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, col = 0;
	for (i = 0; i < len; i += 3) {
		unsigned v = (unsigned)d[i] << 16;
		char q[4];
		if (i + 1 < len)
			v |= (unsigned)d[i + 1] << 8;
		if (i + 2 < len)
			v |= d[i + 2];
		q[0] = tab[(v >> 18) & 63];
		q[1] = tab[(v >> 12) & 63];
		q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? tab[v & 63] : '=';
		(void)mw_str_append(out, q, 4);
		col += 4;
		if (col >= 76) {
			(void)mw_str_appends(out, "\r\n");
			col = 0;
		}
	}
	if (col > 0)
		(void)mw_str_appends(out, "\r\n");
}

/* header_safe - printable ASCII without blanks at the ends (we put it in a header) */
static bool header_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s >= 0x7f)
			return false;
	return true;
}

/* mw_dmarc_agg_mail - the report as a MIME message */
int mw_dmarc_agg_mail(const struct mw_dmarc_agg_meta *meta, const char *policy_domain,
                      const char *submitter, const struct mw_dmarc_agg_dest *dests, size_t ndests,
                      const void *gz, size_t gzlen, int64_t now, mw_str *out, char *filename_r,
                      mw_error *error_r)
{
	char date[64], b1[32], b2[32], boundary[64];
	struct tm tm;
	time_t t = (time_t)now, tb = (time_t)meta->begin, te = (time_t)meta->end;
	size_t i;

	mw_dmarc_agg_filename(submitter, policy_domain, meta->begin, meta->end, filename_r, 600);
	if (filename_r[0] == '\0' || ndests == 0 || !header_safe(meta->email) ||
	    !header_safe(meta->org_name) || !header_safe(meta->report_id) ||
	    !header_safe(policy_domain) || !header_safe(submitter) ||
	    strchr(filename_r, '"') != NULL) {
		mw_error_set(error_r, "report of %.100s: a value unfit for the mail header",
		             policy_domain);
		return -1;
	}
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	gmtime_r(&tb, &tm);
	strftime(b1, sizeof(b1), "%Y-%m-%d %H:%M:%S", &tm);
	gmtime_r(&te, &tm);
	strftime(b2, sizeof(b2), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(boundary, sizeof(boundary), "=_mw_dmarc_%lld_%zu", (long long)now, gzlen);
	/* the organisation's name as a quoted-string: a comma in it is no second address */
	(void)mw_str_appends(out, "From: \"");
	for (i = 0; meta->org_name[i] != '\0'; i++) {
		if (meta->org_name[i] == '"' || meta->org_name[i] == '\\')
			(void)mw_str_appendc(out, '\\');
		(void)mw_str_appendc(out, meta->org_name[i]);
	}
	(void)mw_str_appendf(out, "\" <%s>\r\nTo: ", meta->email);
	for (i = 0; i < ndests; i++)
		(void)mw_str_appendf(out, "%s<%s>", i > 0 ? ",\r\n " : "", dests[i].addr);
	(void)mw_str_appendf(out,
	                     "\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n"
	                     "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n"
	                     "MIME-Version: 1.0\r\n"
	                     "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
	                     "This is a MIME-formatted message.\r\n\r\n--%s\r\n"
	                     "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	                     "This is a DMARC aggregate report for %s from %s (%s),\r\n"
	                     "covering %s to %s UTC. The report is attached (gzip, XML).\r\n\r\n"
	                     "--%s\r\n"
	                     "Content-Type: application/gzip; name=\"%s\"\r\n"
	                     "Content-Transfer-Encoding: base64\r\n"
	                     "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n",
	                     date, meta->report_id, submitter, policy_domain, submitter,
	                     meta->report_id, boundary, boundary, policy_domain, meta->org_name,
	                     submitter, b1, b2, boundary, filename_r, filename_r);
	base64(out, gz, gzlen);
	(void)mw_str_appendf(out, "\r\n--%s--\r\n", boundary);
	return 0;
}
