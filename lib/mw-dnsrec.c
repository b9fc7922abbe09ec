/* mw-dnsrec.c - the records, MTA-STS policy and client settings a mail domain publishes,
 * and the check of what DNS actually holds.
 *
 * Everything comes from [mailhost] (what cannot be derived: MX host, outbound addresses,
 * DMARC policy, MTA-STS mode) and the store's DKIM keys (read with the existing key
 * operations; every active key's record). The MTA-STS policy id is the start of the
 * policy's SHA-256 in hex, so it changes exactly when the policy does (RFC 8461 3.1).
 * The check asks the configured resolver ([milter] dns_servers) for each name and type and
 * compares what it finds: TXT records by their tags or terms (order and blanks do not
 * matter, the difference names the missing and unexpected ones), MX and SRV by value.
 * A resolver that cannot answer gives "error", never "ok".
 *
 * Public: mw_dnsrec_domain, mw_dnsrec_domain_served, mw_dnsrec_services,
 * mw_dnsrec_mta_sts_policy, mw_dnsrec_build, mw_dnsrec_set_free, mw_dnsrec_check,
 * mw_dnsrec_resolver, mw_dnsrec_zone_line, mw_dnsrec_json, mw_dnsrec_status_str.
 *
 * Diagnostics: through error_r (configuration and store failures); check results are data.
 */
#include "mw-build.h"
#include "mw-dnsrec.h"
#include "mw-dkim-sign.h"
#include "mw-net.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 32 /* items of one blank/comma separated configuration list */

/* split_list - a blank/comma separated list into at most max items (copies into buf) */
static size_t split_list(const char *in, char *buf, size_t bufsize, char **items, size_t max)
{
	size_t n = 0;
	char *p, *save = NULL;
	if (mw_strlcpy(buf, in, bufsize) < 0)
		return 0;
	for (p = strtok_r(buf, " \t,", &save); p != NULL && n < max;
	     p = strtok_r(NULL, " \t,", &save))
		items[n++] = p;
	return n;
}

/* host_ok - a host name we may publish: LDH labels, no trailing dot */
static bool host_ok(const char *h, bool pattern)
{
	size_t i, n = strlen(h), label = 0;
	if (n == 0 || n > MW_DNS_NAME_MAX || h[0] == '.' || h[n - 1] == '.')
		return false;
	if (pattern && h[0] == '*' && h[1] == '.')
		h += 2, n -= 2;
	for (i = 0; i < n; i++) {
		char c = h[i];
		if (c == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c == '-' && label > 0)) ||
		    ++label > 63)
			return false;
	}
	return label > 0 && h[n - 1] != '-';
}

/* mw_dnsrec_domain - normalise a domain the way DKIM keys are stored */
int mw_dnsrec_domain(const char *domain_in, char *out, size_t outsize, mw_error *error_r)
{
	if (mw_dkim_domain_normalize(domain_in, out, outsize, error_r) < 0)
		return -1;
	if (!host_ok(out, false)) {
		mw_error_set(error_r, "not a domain name");
		return -1;
	}
	return 0;
}

/* mw_dnsrec_domain_served - is DOMAIN one of [milter] local_domains? */
bool mw_dnsrec_domain_served(const mw_config *cfg, const char *domain)
{
	char buf[4096], *items[LIST_MAX], norm[MW_DNS_NAME_MAX + 1];
	size_t n = split_list(mw_config_str(cfg, MWK_MILTER_LOCAL_DOMAINS), buf, sizeof(buf), items,
	                      LIST_MAX),
	       i;
	for (i = 0; i < n; i++)
		if (mw_dnsrec_domain(items[i], norm, sizeof(norm), NULL) == 0 &&
		    strcmp(norm, domain) == 0)
			return true;
	return false;
}

/* mx_host - [mailhost] mx_host, checked */
static int mx_host(const mw_config *cfg, const char **host_r, mw_error *error_r)
{
	const char *h = mw_config_str(cfg, MWK_MAILHOST_MX_HOST);
	if (h[0] == '\0') {
		mw_error_set(error_r, "[mailhost] mx_host is not set: nothing to publish");
		return -1;
	}
	if (!host_ok(h, false)) {
		mw_error_set(error_r, "[mailhost] mx_host is not a host name");
		return -1;
	}
	*host_r = h;
	return 0;
}

/* mw_dnsrec_services - the client services and their hosts */
int mw_dnsrec_services(const mw_config *cfg, struct mw_dnsrec_service out[MW_DNSREC_SERVICES],
                       mw_error *error_r)
{
	static const struct mw_dnsrec_service base[MW_DNSREC_SERVICES] = {
	    {"imaps", "imap", 993, true, false, ""},
	    {"imap", "imap", 143, false, false, ""},
	    {"submissions", "smtp", 465, true, false, ""},
	    {"submission", "smtp", 587, false, false, ""},
	};
	char buf[512], *items[LIST_MAX];
	const char *mx, *imap = mw_config_str(cfg, MWK_MAILHOST_IMAP_HOST),
	                *sub = mw_config_str(cfg, MWK_MAILHOST_SUBMISSION_HOST);
	size_t n, i, k;
	if (mx_host(cfg, &mx, error_r) < 0)
		return -1;
	if ((imap[0] != '\0' && !host_ok(imap, false)) ||
	    (sub[0] != '\0' && !host_ok(sub, false))) {
		mw_error_set(error_r, "[mailhost] imap_host or submission_host is not a host name");
		return -1;
	}
	memcpy(out, base, sizeof(base));
	n = split_list(mw_config_str(cfg, MWK_MAILHOST_CLIENT_SERVICES), buf, sizeof(buf), items,
	               LIST_MAX);
	for (i = 0; i < n; i++) {
		for (k = 0; k < MW_DNSREC_SERVICES; k++)
			if (strcmp(items[i], out[k].name) == 0)
				break;
		if (k == MW_DNSREC_SERVICES) {
			mw_error_set(error_r,
			             "[mailhost] client_services: unknown service (imaps imap "
			             "submissions submission)");
			return -1;
		}
		out[k].offered = true;
	}
	for (k = 0; k < MW_DNSREC_SERVICES; k++) {
		const char *h = strcmp(out[k].protocol, "imap") == 0 ? imap : sub;
		(void)mw_strlcpy(out[k].host, h[0] != '\0' ? h : mx, sizeof(out[k].host));
		mw_ascii_lower(out[k].host);
	}
	return 0;
}

/* mw_dnsrec_mta_sts_policy - RFC 8461 policy text and id */
int mw_dnsrec_mta_sts_policy(const mw_config *cfg, mw_str *policy_r, char id[24], mw_error *error_r)
{
	char buf[4096], *items[LIST_MAX];
	unsigned char hash[crypto_hash_sha256_BYTES];
	const char *mx, *list = mw_config_str(cfg, MWK_MAILHOST_MTA_STS_MX);
	size_t n, i;
	if (mx_host(cfg, &mx, error_r) < 0)
		return -1;
	(void)mw_str_appendf(policy_r, "version: STSv1\r\nmode: %s\r\n",
	                     mw_config_str(cfg, MWK_MAILHOST_MTA_STS_MODE));
	n = split_list(list[0] != '\0' ? list : mx, buf, sizeof(buf), items, LIST_MAX);
	for (i = 0; i < n; i++) {
		if (!host_ok(items[i], true)) {
			mw_error_set(error_r,
			             "[mailhost] mta_sts_mx: not a host name or *.pattern");
			return -1;
		}
		mw_ascii_lower(items[i]);
		(void)mw_str_appendf(policy_r, "mx: %s\r\n", items[i]);
	}
	(void)mw_str_appendf(policy_r, "max_age: %lld\r\n",
	                     mw_config_int(cfg, MWK_MAILHOST_MTA_STS_MAX_AGE));
	crypto_hash_sha256(hash, (const unsigned char *)mw_str_c(policy_r), policy_r->len);
	for (i = 0; i < 8; i++)
		(void)snprintf(id + 2 * i, 3, "%02x", hash[i]);
	return 0;
}

/* add - one record into the set */
static struct mw_dnsrec *add(struct mw_dnsrec_set *set, const char *purpose, const char *prefix,
                             const char *type, const char *fmt, ...) MW_PRINTF(5, 6);
static struct mw_dnsrec *add(struct mw_dnsrec_set *set, const char *purpose, const char *prefix,
                             const char *type, const char *fmt, ...)
{
	struct mw_dnsrec *r;
	mw_str v, name;
	va_list ap;
	mw_str_init(&name, MW_DNS_NAME_MAX + 1);
	if (set->count >= MW_DNSREC_MAX ||
	    mw_str_appendf(&name, "%s%s%s.", prefix, prefix[0] ? "." : "", set->domain) < 0) {
		mw_str_free(&name);
		return NULL;
	}
	r = &set->rec[set->count++];
	memset(r, 0, sizeof(*r));
	r->purpose = purpose;
	r->type = type;
	(void)mw_strlcpy(r->name, mw_str_c(&name), sizeof(r->name));
	mw_str_free(&name);
	mw_str_init(&v, 0);
	va_start(ap, fmt);
	(void)mw_str_vappendf(&v, fmt, ap);
	va_end(ap);
	r->value = mw_str_steal(&v);
	return r;
}

/* spf_text - v=spf1 with the outbound terms */
static int spf_text(const mw_config *cfg, mw_str *out, mw_error *error_r)
{
	char buf[4096], *items[LIST_MAX], addr[64];
	unsigned char bin[16];
	size_t n = split_list(mw_config_str(cfg, MWK_MAILHOST_OUTBOUND), buf, sizeof(buf), items,
	                      LIST_MAX),
	       i;
	(void)mw_str_appends(out, "v=spf1");
	if (n == 0)
		(void)mw_str_appends(out, " mx");
	for (i = 0; i < n; i++) {
		char *slash = strchr(items[i], '/');
		bool net_ok = slash == NULL || mw_cidr_valid(items[i]);
		(void)mw_strlcpy(addr, items[i], sizeof(addr));
		if (slash != NULL && (size_t)(slash - items[i]) < sizeof(addr))
			addr[slash - items[i]] = '\0';
		if (net_ok && inet_pton(AF_INET, addr, bin) == 1)
			(void)mw_str_appendf(out, " ip4:%s", items[i]);
		else if (net_ok && inet_pton(AF_INET6, addr, bin) == 1)
			(void)mw_str_appendf(out, " ip6:%s", items[i]);
		else if (slash == NULL && host_ok(items[i], false))
			(void)mw_str_appendf(out, " a:%s", items[i]);
		else {
			mw_error_set(error_r,
			             "[mailhost] outbound: not an address, network or host");
			return -1;
		}
	}
	(void)mw_str_appends(out, strcmp(mw_config_str(cfg, MWK_MAILHOST_SPF_ALL), "softfail") == 0
	                              ? " ~all"
	                              : " -all");
	return 0;
}

/* mw_dnsrec_build - every record of a domain */
int mw_dnsrec_build(const mw_config *cfg, mw_store *store, const char *domain,
                    struct mw_dnsrec_set *set_r, mw_error *error_r)
{
	struct mw_dnsrec_service svc[MW_DNSREC_SERVICES];
	struct mw_dkim_key_row *rows = NULL;
	const char *mx, *mbox = mw_config_str(cfg, MWK_MAILHOST_REPORT_MAILBOX);
	mw_str spf, policy;
	size_t n = 0, i;
	int ret = -1;

	memset(set_r, 0, sizeof(*set_r));
	mw_str_init(&spf, 0);
	mw_str_init(&policy, 0);
	if (mw_strlcpy(set_r->domain, domain, sizeof(set_r->domain)) < 0 ||
	    !host_ok(domain, false)) {
		mw_error_set(error_r, "not a domain name");
		goto out;
	}
	if (mx_host(cfg, &mx, error_r) < 0 || mw_dnsrec_services(cfg, svc, error_r) < 0 ||
	    spf_text(cfg, &spf, error_r) < 0 ||
	    mw_dnsrec_mta_sts_policy(cfg, &policy, set_r->mta_sts_id, error_r) < 0)
		goto out;
	if (mbox[0] == '\0' || strpbrk(mbox, "@;, \t\"\\!") != NULL) {
		mw_error_set(error_r, "[mailhost] report_mailbox must be a plain local part");
		goto out;
	}
	if (store != NULL &&
	    mw_store_dkim_key_list(store, domain, &rows, &n, error_r) != MW_STORE_OK)
		goto out;
	(void)add(set_r, "mx", "", "MX", "%lld %s.", mw_config_int(cfg, MWK_MAILHOST_MX_PRIORITY),
	          mx);
	(void)add(set_r, "spf", "", "TXT", "%s", mw_str_c(&spf));
	/* the keys that sign, and a rotation's pending key (it needs its record first) */
	for (i = 0; i < n; i++)
		if (rows[i].active || strcmp(rows[i].state, "pending") == 0) {
			char prefix[MW_DKIM_SELECTOR_MAX + 16];
			(void)snprintf(prefix, sizeof(prefix), "%s._domainkey", rows[i].selector);
			if (add(set_r, "dkim", prefix, "TXT", "v=DKIM1; k=%s; p=%s",
			        rows[i].key_type, rows[i].public_key) == NULL) {
				mw_error_set(error_r,
				             "DKIM selector %s: the record name is too long",
				             rows[i].selector);
				goto out;
			}
		}
	(void)add(set_r, "dmarc", "_dmarc", "TXT", "v=DMARC1; p=%s; rua=mailto:%s@%s",
	          mw_config_str(cfg, MWK_MAILHOST_DMARC_POLICY), mbox, domain);
	(void)add(set_r, "mta-sts", "_mta-sts", "TXT", "v=STSv1; id=%s", set_r->mta_sts_id);
	(void)add(set_r, "tls-rpt", "_smtp._tls", "TXT", "v=TLSRPTv1; rua=mailto:%s@%s", mbox,
	          domain);
	for (i = 0; i < MW_DNSREC_SERVICES; i++) {
		char prefix[32];
		(void)snprintf(prefix, sizeof(prefix), "_%s._tcp", svc[i].name);
		if (svc[i].offered)
			(void)add(set_r, "srv", prefix, "SRV", "0 1 %u %s.", svc[i].port,
			          svc[i].host);
		else
			(void)add(set_r, "srv", prefix, "SRV", "0 0 0 .");
	}
	set_r->mta_sts_policy = mw_str_steal(&policy);
	ret = 0;
out:
	mw_dkim_key_rows_free(rows, n);
	mw_str_free(&spf);
	mw_str_free(&policy);
	if (ret < 0)
		mw_dnsrec_set_free(set_r);
	return ret;
}

/* mw_dnsrec_dkim_set - a set of one record: a DKIM key's TXT (the rotation's check) */
int mw_dnsrec_dkim_set(const char *domain, const char *selector, const char *key_type,
                       const char *pub_b64, struct mw_dnsrec_set *set_r, mw_error *error_r)
{
	char prefix[MW_DKIM_SELECTOR_MAX + 16];
	memset(set_r, 0, sizeof(*set_r));
	if (mw_strlcpy(set_r->domain, domain, sizeof(set_r->domain)) < 0 ||
	    !host_ok(domain, false)) {
		mw_error_set(error_r, "not a domain name");
		return -1;
	}
	(void)snprintf(prefix, sizeof(prefix), "%s._domainkey", selector);
	if (add(set_r, "dkim", prefix, "TXT", "v=DKIM1; k=%s; p=%s", key_type, pub_b64) == NULL) {
		mw_error_set(error_r, "DKIM selector %s: the record name is too long", selector);
		mw_dnsrec_set_free(set_r);
		return -1;
	}
	return 0;
}

/* mw_dnsrec_set_free - free what the set owns */
void mw_dnsrec_set_free(struct mw_dnsrec_set *set)
{
	size_t i;
	for (i = 0; i < set->count; i++) {
		free(set->rec[i].value);
		free(set->rec[i].published);
		free(set->rec[i].difference);
	}
	free(set->mta_sts_policy);
	memset(set, 0, sizeof(*set));
}

/* mw_dnsrec_resolver - the configured resolver */
mw_dns *mw_dnsrec_resolver(const mw_config *cfg, mw_error *error_r)
{
	return mw_dns_new(mw_config_str(cfg, MWK_MILTER_DNS_SERVERS),
	                  (unsigned)mw_config_int(cfg, MWK_MILTER_DNS_TIMEOUT) * 1000, error_r);
}

/* tokens - a TXT record's terms: tag-lists split at ';', SPF at blanks; trimmed, empty
   ones dropped, lower-cased except DKIM's p= value (base64 is case-sensitive) */
static size_t tokens(const char *text, char *buf, size_t bufsize, char **out, size_t max)
{
	bool taglist = strchr(text, ';') != NULL;
	size_t n = 0;
	char *p, *save = NULL;
	if (mw_strlcpy(buf, text, bufsize) < 0)
		return 0;
	for (p = strtok_r(buf, taglist ? ";" : " \t", &save); p != NULL && n < max;
	     p = strtok_r(NULL, taglist ? ";" : " \t", &save)) {
		mw_slice s = mw_slice_trim(mw_slice_from(p));
		char *t = (char *)s.ptr, *eq, *w;
		if (s.len == 0)
			continue;
		t[s.len] = '\0';
		/* "k = v" is "k=v"; blanks inside a base64 value are not part of it */
		for (w = t, eq = t; *eq != '\0'; eq++)
			if (*eq != ' ' && *eq != '\t')
				*w++ = *eq;
		*w = '\0';
		if (strncmp(t, "p=", 2) != 0)
			mw_ascii_lower(t);
		out[n++] = t;
	}
	return n;
}

/* in_list - is s one of v[0..n) */
static bool in_list(char **v, size_t n, const char *s)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* txt_difference - "missing: a, b; unexpected: c" between expected and published terms
   (nothing appended when they agree) */
static void txt_difference(const char *want, const char *have, mw_str *out)
{
	size_t bsize = strlen(want) + strlen(have) + 2;
	char *wb = mw_malloc(bsize), *hb = mw_malloc(bsize), *wv[64], *hv[64];
	size_t wn = tokens(want, wb, bsize, wv, 64), hn = tokens(have, hb, bsize, hv, 64), i;
	mw_str missing, extra;
	mw_str_init(&missing, 0);
	mw_str_init(&extra, 0);
	for (i = 0; i < wn; i++)
		if (!in_list(hv, hn, wv[i]))
			(void)mw_str_appendf(&missing, "%s%s", missing.len ? ", " : "", wv[i]);
	for (i = 0; i < hn; i++)
		if (!in_list(wv, wn, hv[i]))
			(void)mw_str_appendf(&extra, "%s%s", extra.len ? ", " : "", hv[i]);
	if (missing.len > 0)
		(void)mw_str_appendf(out, "missing: %s", mw_str_c(&missing));
	if (extra.len > 0)
		(void)mw_str_appendf(out, "%sunexpected: %s", missing.len ? "; " : "",
		                     mw_str_c(&extra));
	mw_str_free(&missing);
	mw_str_free(&extra);
	free(wb);
	free(hb);
}

/* append_safe - published text as printable ASCII (anything else as \xHH) */
static void append_safe(mw_str *out, const char *p, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c > 0x7e || c == '\\')
			(void)mw_str_appendf(out, "\\x%02x", c);
		else
			(void)mw_str_appendc(out, (char)c);
	}
}

/* txt_tag - the record's version tag ("v=spf1") that picks ours out of a name's TXT set */
static const char *txt_tag(const struct mw_dnsrec *r)
{
	if (strcmp(r->purpose, "spf") == 0)
		return "v=spf1";
	if (strcmp(r->purpose, "dmarc") == 0)
		return "v=DMARC1";
	if (strcmp(r->purpose, "mta-sts") == 0)
		return "v=STSv1";
	if (strcmp(r->purpose, "tls-rpt") == 0)
		return "v=TLSRPTv1";
	return ""; /* DKIM: every TXT record at the selector's name counts */
}

/* strip_dot - a name or SRV value without its trailing dot ("." stays) */
static void strip_dot(char *s)
{
	size_t n = strlen(s);
	if (n > 1 && s[n - 1] == '.')
		s[n - 1] = '\0';
	mw_ascii_lower(s);
}

/* check_one - resolve one record and compare */
static void check_one(struct mw_dnsrec *r, mw_dns *dns)
{
	int type = strcmp(r->type, "MX") == 0    ? MW_DNS_MX
	           : strcmp(r->type, "SRV") == 0 ? MW_DNS_SRV
	                                         : MW_DNS_TXT;
	const char *tag = txt_tag(r);
	struct mw_dns_answer ans;
	mw_error err = {{0}};
	mw_str pub, diff;
	size_t i, matching = 0, ours = 0;
	enum mw_dns_status st = mw_dns_query(dns, r->name, type, &ans, &err);
	char want[MW_DNS_NAME_MAX + 32];

	mw_str_init(&pub, 0);
	mw_str_init(&diff, 0);
	if (st == MW_DNS_TEMPFAIL || st == MW_DNS_PERMFAIL) {
		r->status = MW_DNSREC_ERROR;
		(void)mw_str_appendf(&diff, "%s", err.msg[0] ? err.msg : mw_dns_status_str(st));
		goto out;
	}
	for (i = 0; i < ans.count; i++) {
		char one[MW_DNS_NAME_MAX + 32];
		if (type == MW_DNS_TXT) {
			if (tag[0] != '\0' &&
			    (ans.len[i] < strlen(tag) ||
			     mw_ascii_strncasecmp(ans.rec[i], tag, strlen(tag)) != 0))
				continue;
			(void)mw_str_appendf(&pub, "%s\"", matching ? " | " : "");
			append_safe(&pub, ans.rec[i], ans.len[i]);
			(void)mw_str_appendc(&pub, '"');
		} else if (type == MW_DNS_MX) {
			(void)snprintf(one, sizeof(one), "%u %s.", ans.pref[i], ans.rec[i]);
			(void)mw_str_appendf(&pub, "%s%s", matching ? " | " : "", one);
			strip_dot(one);
			(void)mw_strlcpy(want, r->value, sizeof(want));
			strip_dot(want);
			ours += strcmp(one, want) == 0;
		} else {
			(void)mw_str_appendf(&pub, "%s%s%s", matching ? " | " : "", ans.rec[i],
			                     strcmp(ans.rec[i], ".") != 0 ? "." : "");
			(void)mw_strlcpy(one, ans.rec[i], sizeof(one));
			strip_dot(one);
			(void)mw_strlcpy(want, r->value, sizeof(want));
			strip_dot(want);
			ours += strcmp(one, want) == 0;
		}
		matching++;
	}
	if (matching == 0) {
		r->status = MW_DNSREC_MISSING;
		goto out;
	}
	r->published = mw_strdup(mw_str_c(&pub));
	if (type != MW_DNS_TXT) {
		r->status = ours > 0 ? MW_DNSREC_OK : MW_DNSREC_DIFFERENT;
		if (ours == 0)
			(void)mw_str_appendf(&diff, "expected %s, published %s", r->value,
			                     mw_str_c(&pub));
		goto out;
	}
	if (matching > 1) {
		r->status = MW_DNSREC_DIFFERENT;
		(void)mw_str_appendf(&diff, "%zu records where there must be one", matching);
		goto out;
	}
	for (i = 0; i < ans.count; i++)
		if (tag[0] == '\0' || (ans.len[i] >= strlen(tag) &&
		                       mw_ascii_strncasecmp(ans.rec[i], tag, strlen(tag)) == 0)) {
			mw_str safe;
			mw_str_init(&safe, 0);
			append_safe(&safe, ans.rec[i], ans.len[i]);
			txt_difference(r->value, mw_str_c(&safe), &diff);
			mw_str_free(&safe);
		}
	r->status = diff.len == 0 ? MW_DNSREC_OK : MW_DNSREC_DIFFERENT;
out:
	if (diff.len > 0)
		r->difference = mw_strdup(mw_str_c(&diff));
	mw_str_free(&pub);
	mw_str_free(&diff);
	mw_dns_answer_free(&ans);
}

/* mw_dnsrec_check - check every record of the set */
int mw_dnsrec_check(struct mw_dnsrec_set *set, mw_dns *dns, mw_error *error_r)
{
	size_t i;
	if (dns == NULL) {
		mw_error_set(error_r, "no resolver");
		return -1;
	}
	for (i = 0; i < set->count; i++)
		check_one(&set->rec[i], dns);
	set->checked = true;
	return 0;
}

/* mw_dnsrec_zone_line - "NAME IN TYPE RDATA"; TXT text quoted in strings of <= 255 bytes */
void mw_dnsrec_zone_line(const struct mw_dnsrec *rec, mw_str *out)
{
	size_t off, n, len = strlen(rec->value);
	(void)mw_str_appendf(out, "%s IN %s ", rec->name, rec->type);
	if (strcmp(rec->type, "TXT") != 0) {
		(void)mw_str_appends(out, rec->value);
		return;
	}
	if (len > 255)
		(void)mw_str_appends(out, "( ");
	for (off = 0; off < len || off == 0; off += n) {
		const char *p = rec->value + off;
		size_t k;
		n = len - off > 255 ? 255 : len - off;
		(void)mw_str_appends(out, off > 0 ? " \"" : "\"");
		for (k = 0; k < n; k++) {
			if (p[k] == '"' || p[k] == '\\')
				(void)mw_str_appendc(out, '\\');
			(void)mw_str_appendc(out, p[k]);
		}
		(void)mw_str_appendc(out, '"');
		if (len == 0)
			break;
	}
	if (len > 255)
		(void)mw_str_appends(out, " )");
}

/* mw_dnsrec_status_str - the status as the output spells it */
const char *mw_dnsrec_status_str(enum mw_dnsrec_status status)
{
	switch (status) {
	case MW_DNSREC_UNCHECKED:
		return "unchecked";
	case MW_DNSREC_OK:
		return "ok";
	case MW_DNSREC_MISSING:
		return "missing";
	case MW_DNSREC_DIFFERENT:
		return "different";
	case MW_DNSREC_ERROR:
		return "error";
	}
	return "?";
}

/* mw_dnsrec_json - the set as JSON */
json_t *mw_dnsrec_json(const struct mw_dnsrec_set *set)
{
	json_t *o = json_object(), *arr = json_array();
	bool all_ok = true;
	size_t i;
	json_object_set_new(o, "domain", json_string(set->domain));
	for (i = 0; i < set->count; i++) {
		const struct mw_dnsrec *r = &set->rec[i];
		json_t *j = json_object();
		mw_str zone;
		mw_str_init(&zone, 0);
		mw_dnsrec_zone_line(r, &zone);
		json_object_set_new(j, "purpose", json_string(r->purpose));
		json_object_set_new(j, "name", json_string(r->name));
		json_object_set_new(j, "type", json_string(r->type));
		json_object_set_new(j, "value", json_string(r->value));
		json_object_set_new(j, "zone", json_string(mw_str_c(&zone)));
		if (set->checked) {
			json_object_set_new(j, "status",
			                    json_string(mw_dnsrec_status_str(r->status)));
			json_object_set_new(j, "published",
			                    r->published ? json_string(r->published) : json_null());
			json_object_set_new(j, "difference",
			                    r->difference ? json_string(r->difference)
			                                  : json_null());
			all_ok = all_ok && r->status == MW_DNSREC_OK;
		}
		json_array_append_new(arr, j);
		mw_str_free(&zone);
	}
	json_object_set_new(o, "records", arr);
	json_object_set_new(o, "mta_sts_id", json_string(set->mta_sts_id));
	json_object_set_new(o, "mta_sts_policy",
	                    json_string(set->mta_sts_policy ? set->mta_sts_policy : ""));
	if (set->checked)
		json_object_set_new(o, "ok", json_boolean(all_ok));
	return o;
}
