/*
 * mw-spam.c - the rule-based spam score: named tests, each with a weight from [spam].
 *
 * Public: mw_spam_test_name, mw_spam_parse_points, mw_spam_settings_from_config,
 * mw_spam_score, mw_spam_from_spamd, mw_spam_unscored, mw_spam_header.
 *
 * The tests (weights in hundredths, from the score_* keys):
 *   SPF_FAIL, SPF_SOFTFAIL, DKIM_INVALID, DMARC_FAIL, DMARC_PASS: from mw_auth_results;
 *   RCVD_IN_DNSBL: the client IP (reversed octets / nibbles) under each dnsbl_zones zone;
 *   RHSBL_SENDER: the envelope sender and From domains under each rhsbl_zones zone;
 *   URIBL: the registrable domains (libpsl) of body URLs under each uribl_zones zone;
 *   MISSING_DATE, MISSING_MID, HELO_IP_LITERAL, HELO_LOCAL_FORGED, FROM_DISPLAY_ADDR,
 *   FROM_LOOKALIKE, HTML_HIDDEN, ATTACH_EXECUTABLE, ATTACH_DOUBLE_EXT, FREEMAIL_REPLYTO:
 *   header and structure heuristics over mw-mime's view of the message;
 *   BAYES_00/20/50/67/80/95/99: the classifier's probability band, [0, 0.01), [0.01, 0.20),
 *   [0.50, 0.67), [0.67, 0.80), [0.80, 0.95), [0.95, 0.99), [0.99, 1]; none from 0.20 to
 *   0.50 (the classifier leans to ham but is unsure: neutral). The 0.67 edge is where the
 *   classifier alone meets issue 10's target on the bench folds (bench/README.md); with
 *   the default weights BAYES_67 and above reach spam_score on their own.
 * List answers count only inside 127.0.0.0/8 and outside 127.255.255.0/24 (the code lists
 * use for "query refused"); anything else is a failure, which never scores.
 * With spam_backend = spamd:... none of these run: lib/mw-spamd asks spamd, and
 * mw_spam_from_spamd turns its verdict into the same result (score, tests).
 *
 * Diagnostics: none logged here; the result carries counts and reasons for the caller.
 */
#include "mw-build.h"
#include "mw-spam.h"
#include "mw-addr.h"
#include "mw-mime.h"
#include "mw-tokenize.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_def {
	const char *name;
	enum mw_config_key_id key;
};

static const struct test_def tests[MW_SPAM_TEST_COUNT] = {
    [MW_SPAM_SPF_FAIL] = {"SPF_FAIL", MWK_SPAM_SCORE_SPF_FAIL},
    [MW_SPAM_SPF_SOFTFAIL] = {"SPF_SOFTFAIL", MWK_SPAM_SCORE_SPF_SOFTFAIL},
    [MW_SPAM_DKIM_INVALID] = {"DKIM_INVALID", MWK_SPAM_SCORE_DKIM_INVALID},
    [MW_SPAM_DMARC_FAIL] = {"DMARC_FAIL", MWK_SPAM_SCORE_DMARC_FAIL},
    [MW_SPAM_DMARC_PASS] = {"DMARC_PASS", MWK_SPAM_SCORE_DMARC_PASS},
    [MW_SPAM_RCVD_IN_DNSBL] = {"RCVD_IN_DNSBL", MWK_SPAM_SCORE_RCVD_IN_DNSBL},
    [MW_SPAM_RHSBL_SENDER] = {"RHSBL_SENDER", MWK_SPAM_SCORE_RHSBL_SENDER},
    [MW_SPAM_URIBL] = {"URIBL", MWK_SPAM_SCORE_URIBL},
    [MW_SPAM_MISSING_DATE] = {"MISSING_DATE", MWK_SPAM_SCORE_MISSING_DATE},
    [MW_SPAM_MISSING_MID] = {"MISSING_MID", MWK_SPAM_SCORE_MISSING_MID},
    [MW_SPAM_HELO_IP_LITERAL] = {"HELO_IP_LITERAL", MWK_SPAM_SCORE_HELO_IP_LITERAL},
    [MW_SPAM_HELO_LOCAL_FORGED] = {"HELO_LOCAL_FORGED", MWK_SPAM_SCORE_HELO_LOCAL_FORGED},
    [MW_SPAM_FROM_DISPLAY_ADDR] = {"FROM_DISPLAY_ADDR", MWK_SPAM_SCORE_FROM_DISPLAY_ADDR},
    [MW_SPAM_FROM_LOOKALIKE] = {"FROM_LOOKALIKE", MWK_SPAM_SCORE_FROM_LOOKALIKE},
    [MW_SPAM_HTML_HIDDEN] = {"HTML_HIDDEN", MWK_SPAM_SCORE_HTML_HIDDEN},
    [MW_SPAM_ATTACH_EXECUTABLE] = {"ATTACH_EXECUTABLE", MWK_SPAM_SCORE_ATTACH_EXECUTABLE},
    [MW_SPAM_ATTACH_DOUBLE_EXT] = {"ATTACH_DOUBLE_EXT", MWK_SPAM_SCORE_ATTACH_DOUBLE_EXT},
    [MW_SPAM_FREEMAIL_REPLYTO] = {"FREEMAIL_REPLYTO", MWK_SPAM_SCORE_FREEMAIL_REPLYTO},
    [MW_SPAM_BAYES_00] = {"BAYES_00", MWK_SPAM_SCORE_BAYES_00},
    [MW_SPAM_BAYES_20] = {"BAYES_20", MWK_SPAM_SCORE_BAYES_20},
    [MW_SPAM_BAYES_50] = {"BAYES_50", MWK_SPAM_SCORE_BAYES_50},
    [MW_SPAM_BAYES_67] = {"BAYES_67", MWK_SPAM_SCORE_BAYES_67},
    [MW_SPAM_BAYES_80] = {"BAYES_80", MWK_SPAM_SCORE_BAYES_80},
    [MW_SPAM_BAYES_95] = {"BAYES_95", MWK_SPAM_SCORE_BAYES_95},
    [MW_SPAM_BAYES_99] = {"BAYES_99", MWK_SPAM_SCORE_BAYES_99},
};

/* Executable extensions (Windows and script hosts). */
static const char *const exe_ext[] = {
    "exe", "scr", "com", "pif", "bat", "cmd", "vbs", "vbe", "js",  "jse", "wsf", "wsh",
    "hta", "cpl", "msi", "msp", "jar", "ps1", "lnk", "reg", "iso", "img", "dll", "apk",
};
/* Extensions a victim believes harmless (the first half of a double extension). */
static const char *const doc_ext[] = {
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "jpg", "jpeg",
    "png", "gif", "zip",  "rtf", "csv",  "htm", "html", "mp3", "mp4", "odt",
};

/* mw_spam_test_name - a test's name */
const char *mw_spam_test_name(enum mw_spam_test t)
{
	return (unsigned)t < MW_SPAM_TEST_COUNT ? tests[t].name : "?";
}

/* mw_spam_parse_points - "-1.25" into -125 */
int mw_spam_parse_points(const char *s, long *hundredths_r)
{
	bool neg = false;
	long whole = 0, frac = 0;
	int digits = 0, fdigits = 0;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (whole > 99999)
			return -1;
		whole = whole * 10 + (*s - '0');
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, fdigits++) {
			if (fdigits == 2)
				return -1;
			frac = frac * 10 + (*s - '0');
		}
		if (fdigits == 0)
			return -1;
		if (fdigits == 1)
			frac *= 10;
	}
	if (*s != '\0' || digits == 0 || whole * 100 + frac > MW_HDR_SCORE_MAX)
		return -1;
	*hundredths_r = (neg ? -1 : 1) * (whole * 100 + frac);
	return 0;
}

/* copy_list - a list key into a bounded field */
static int copy_list(char *dst, size_t size, const char *v, const char *key, mw_error *error_r)
{
	if (mw_strlcpy(dst, v, size) < 0) {
		mw_error_set(error_r, "%s: longer than %zu bytes", key, size - 1);
		return -1;
	}
	return 0;
}

/* mw_spam_settings_from_config - weights, thresholds and lists of a snapshot */
int mw_spam_settings_from_config(const mw_config *cfg, struct mw_spam_settings *s,
                                 mw_error *error_r)
{
	size_t i;
	memset(s, 0, sizeof(*s));
	for (i = 0; i < MW_SPAM_TEST_COUNT; i++)
		if (mw_spam_parse_points(mw_config_str(cfg, tests[i].key), &s->weight[i]) < 0) {
			char lower[32];
			size_t j;
			for (j = 0; tests[i].name[j] != '\0' && j + 1 < sizeof(lower); j++)
				lower[j] = (char)(tests[i].name[j] | 0x20);
			lower[j] = '\0';
			mw_error_set(error_r,
			             "[spam] score_%s: not a decimal with at most two places",
			             lower);
			return -1;
		}
	if (mw_spam_parse_points(mw_config_str(cfg, MWK_SPAM_SPAM_SCORE), &s->required) < 0) {
		mw_error_set(error_r, "[spam] spam_score: not a decimal with at most two places");
		return -1;
	}
	if (mw_spam_parse_points(mw_config_str(cfg, MWK_SPAM_REJECT_SCORE), &s->reject) < 0) {
		mw_error_set(error_r, "[spam] reject_score: not a decimal with at most two places");
		return -1;
	}
	{
		const struct {
			char *dst;
			size_t size;
			enum mw_config_key_id key;
			const char *name;
		} lists[] = {
		    {s->dnsbl_zones, sizeof(s->dnsbl_zones), MWK_SPAM_DNSBL_ZONES,
		     "[spam] dnsbl_zones"},
		    {s->rhsbl_zones, sizeof(s->rhsbl_zones), MWK_SPAM_RHSBL_ZONES,
		     "[spam] rhsbl_zones"},
		    {s->uribl_zones, sizeof(s->uribl_zones), MWK_SPAM_URIBL_ZONES,
		     "[spam] uribl_zones"},
		    {s->freemail_domains, sizeof(s->freemail_domains), MWK_SPAM_FREEMAIL_DOMAINS,
		     "[spam] freemail_domains"},
		    {s->local_domains, sizeof(s->local_domains), MWK_MILTER_LOCAL_DOMAINS,
		     "[milter] local_domains"},
		};
		for (i = 0; i < MW_N_ELEMENTS(lists); i++)
			if (copy_list(lists[i].dst, lists[i].size, mw_config_str(cfg, lists[i].key),
			              lists[i].name, error_r) < 0)
				return -1;
	}
	s->max_lookups = (unsigned)mw_config_int(cfg, MWK_SPAM_MAX_LOOKUPS);
	{
		const char *be = mw_config_str(cfg, MWK_SPAM_SPAM_BACKEND);
		const char *user = mw_config_str(cfg, MWK_SPAM_SPAMD_USER);
		mw_error e;
		s->backend = MW_SPAM_BACKEND_BUILTIN;
		if (strcmp(be, "builtin") != 0) {
			if (mw_spamd_parse_backend(be, &s->spamd, &e) < 0) {
				mw_error_set(error_r, "[spam] spam_backend: %s", e.msg);
				return -1;
			}
			s->backend = MW_SPAM_BACKEND_SPAMD;
		}
		if (!mw_spamd_user_ok(user) ||
		    mw_strlcpy(s->spamd.user, user, sizeof(s->spamd.user)) < 0) {
			mw_error_set(error_r,
			             "[spam] spamd_user: at most %d bytes of "
			             "[A-Za-z0-9._@+-]",
			             MW_SPAMD_USER_MAX);
			return -1;
		}
		s->spamd.timeout_ms = (unsigned)mw_config_int(cfg, MWK_SPAM_SPAMD_TIMEOUT) * 1000u;
	}
	return 0;
}

/* next_item - the next blank/comma separated item of LIST after *pos into buf; false at end */
static bool next_item(const char *list, size_t *pos, char *buf, size_t size)
{
	size_t i = *pos, n = 0;
	while (list[i] == ' ' || list[i] == ',' || list[i] == '\t')
		i++;
	if (list[i] == '\0') {
		*pos = i;
		return false;
	}
	while (list[i] != '\0' && list[i] != ' ' && list[i] != ',' && list[i] != '\t') {
		if (n + 1 < size)
			buf[n++] =
			    list[i] >= 'A' && list[i] <= 'Z' ? (char)(list[i] + 32) : list[i];
		i++;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[n - 1] = '\0';
	*pos = i;
	return true;
}

/* in_list - DOMAIN is an item of LIST or a subdomain of one */
static bool in_list(const char *list, const char *domain)
{
	char item[MW_DNS_NAME_MAX + 2];
	size_t pos = 0, dl = strlen(domain), il;
	while (next_item(list, &pos, item, sizeof(item))) {
		il = strlen(item);
		if (il == 0 || il > dl)
			continue;
		if (mw_ascii_strcasecmp(domain + dl - il, item) == 0 &&
		    (il == dl || domain[dl - il - 1] == '.'))
			return true;
	}
	return false;
}

/* fire - note test T */
static void fire(const struct mw_spam_settings *s, struct mw_spam_result *r, enum mw_spam_test t)
{
	size_t len = strlen(r->tests), n = strlen(tests[t].name);
	if (r->fired[t])
		return;
	r->fired[t] = true;
	r->score += s->weight[t];
	if (len + n + 2 < sizeof(r->tests))
		(void)snprintf(r->tests + len, sizeof(r->tests) - len, "%s%s", len > 0 ? "," : "",
		               tests[t].name);
}

/* dns_failed - keep the first failure's reason */
static void dns_failed(struct mw_spam_result *r, const char *zone, const char *why)
{
	r->dns_failures++;
	/* a long reason is cut: this text only goes to the log */
	if (r->dns_error[0] == '\0' &&
	    snprintf(r->dns_error, sizeof(r->dns_error), "%s: %s", zone, why) < 0)
		r->dns_error[0] = '\0';
}

/* list_query - one lookup of NAME.ZONE within the cap: true when listed */
static bool list_query(const struct mw_spam_settings *s, struct mw_spam_result *r, const char *name,
                       const char *zone)
{
	char q[MW_DNS_NAME_MAX + 2];
	unsigned char a[4] = {0, 0, 0, 0};
	mw_error err;
	int rc;

	if (s->dns == NULL)
		return false;
	if (r->lookups >= s->max_lookups) {
		r->lookups_capped = true;
		return false;
	}
	if ((size_t)snprintf(q, sizeof(q), "%s.%s", name, zone) >= sizeof(q))
		return false; /* too long to be listed anywhere */
	r->lookups++;
	err.msg[0] = '\0';
	rc = s->dns(s->dns_ctx, q, a, &err);
	if (rc < 0) {
		dns_failed(r, zone, err.msg[0] != '\0' ? err.msg : "lookup failed");
		return false;
	}
	if (rc == 0)
		return false;
	if (a[0] != 127 || (a[1] == 255 && a[2] == 255)) {
		char why[64];
		(void)snprintf(why, sizeof(why), "answer %u.%u.%u.%u is not a listing", a[0], a[1],
		               a[2], a[3]);
		dns_failed(r, zone, why);
		return false;
	}
	return true;
}

/* zones_query - NAME under every zone of LIST: true when any lists it */
static bool zones_query(const struct mw_spam_settings *s, struct mw_spam_result *r,
                        const char *list, const char *name)
{
	char zone[MW_DNS_NAME_MAX + 2];
	size_t pos = 0;
	while (next_item(list, &pos, zone, sizeof(zone)))
		if (zone[0] != '\0' && list_query(s, r, name, zone))
			return true;
	return false;
}

/* ip_reversed - the DNSBL form of an IP (octets or nibbles reversed); -1 when not an IP */
static int ip_reversed(const char *ip, char *out, size_t size)
{
	unsigned char b[16];
	if (inet_pton(AF_INET, ip, b) == 1) {
		(void)snprintf(out, size, "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, b) == 1 && size >= 64) {
		static const char hex[] = "0123456789abcdef";
		size_t n = 0;
		for (int i = 15; i >= 0; i--) {
			out[n++] = hex[b[i] & 15];
			out[n++] = '.';
			out[n++] = hex[b[i] >> 4];
			out[n++] = i > 0 ? '.' : '\0';
		}
		return 0;
	}
	return -1;
}

/* is_ip_literal - "1.2.3.4", "[1.2.3.4]", "[IPv6:...]" or a bare IPv6 address */
static bool is_ip_literal(const char *h)
{
	unsigned char b[16];
	char tmp[64];
	size_t n = strlen(h);
	if (n > 0 && h[0] == '[')
		return true;
	if (n >= sizeof(tmp))
		return false;
	memcpy(tmp, h, n + 1);
	return inet_pton(AF_INET, tmp, b) == 1 || inet_pton(AF_INET6, tmp, b) == 1;
}

/* skeleton - a domain with confusable characters folded (0→o, 1/i→l, rn→m, vv→w) */
static void skeleton(const char *d, char *out, size_t size)
{
	size_t n = 0;
	for (; *d != '\0' && n + 1 < size; d++) {
		char c = *d >= 'A' && *d <= 'Z' ? (char)(*d + 32) : *d;
		if (c == 'r' && d[1] == 'n') {
			c = 'm';
			d++;
		} else if (c == 'v' && d[1] == 'v') {
			c = 'w';
			d++;
		} else if (c == '0')
			c = 'o';
		else if (c == '1' || c == 'i')
			c = 'l';
		else if (c == '-' || c == '_')
			continue;
		out[n++] = c;
	}
	out[n] = '\0';
}

/* near - the edit distance of a and b is at most 1 */
static bool near(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i = 0;
	if (la < lb)
		return near(b, a);
	if (la - lb > 1)
		return false;
	while (i < lb && a[i] == b[i])
		i++;
	if (la == lb) /* one substitution: the rest equal */
		return i == la || strcmp(a + i + 1, b + i + 1) == 0;
	return strcmp(a + i + 1, b + i) == 0; /* one deletion from a */
}

/* lookalike - DOMAIN is not LOCAL (nor under it) but looks like it */
static bool lookalike(const char *domain, const char *local)
{
	char sd[MW_DNS_NAME_MAX + 2], sl[MW_DNS_NAME_MAX + 2];
	size_t dl = strlen(domain), ll = strlen(local);
	if (ll == 0 || dl == 0)
		return false;
	if (mw_ascii_strcasecmp(domain, local) == 0 ||
	    (dl > ll && domain[dl - ll - 1] == '.' &&
	     mw_ascii_strcasecmp(domain + dl - ll, local) == 0))
		return false;
	/* "local.example.evil.net": our name at the front of someone else's */
	if (dl > ll && mw_ascii_strncasecmp(domain, local, ll) == 0 &&
	    (domain[ll] == '.' || domain[ll] == '-'))
		return true;
	skeleton(domain, sd, sizeof(sd));
	skeleton(local, sl, sizeof(sl));
	return strcmp(sd, sl) == 0 || (ll >= 6 && near(domain, local));
}

/* local_lookalike - DOMAIN looks like one of the local domains */
static bool local_lookalike(const char *locals, const char *domain)
{
	char item[MW_DNS_NAME_MAX + 2];
	size_t pos = 0;
	while (next_item(locals, &pos, item, sizeof(item)))
		if (lookalike(domain, item))
			return true;
	return false;
}

/* ext_in - the extension (without '.') is one of LIST */
static bool ext_in(const char *ext, size_t len, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && mw_ascii_strncasecmp(ext, list[i], len) == 0)
			return true;
	return false;
}

/* attachment_tests - executable and double-extension names */
static void attachment_tests(const struct mw_spam_settings *s, struct mw_spam_result *r,
                             const char *name)
{
	const char *dot = strrchr(name, '.'), *prev;
	size_t n;
	if (dot == NULL)
		return;
	n = strlen(dot + 1);
	while (n > 0 && (dot[n] == ' ' || dot[n] == '.'))
		n--;
	if (!ext_in(dot + 1, n, exe_ext, MW_N_ELEMENTS(exe_ext)))
		return;
	fire(s, r, MW_SPAM_ATTACH_EXECUTABLE);
	for (prev = dot - 1; prev >= name && *prev != '.'; prev--)
		;
	if (prev >= name &&
	    ext_in(prev + 1, (size_t)(dot - prev - 1), doc_ext, MW_N_ELEMENTS(doc_ext)))
		fire(s, r, MW_SPAM_ATTACH_DOUBLE_EXT);
}

/* one_addr - the single address of an address header value; false otherwise */
static bool one_addr(const char *v, struct mw_addr *a_r, struct mw_addr_list *list_r)
{
	memset(list_r, 0, sizeof(*list_r));
	if (v == NULL || mw_addr_parse_header(v, strlen(v), list_r, NULL) < 0)
		return false;
	if (list_r->count != 1) {
		mw_addr_list_free(list_r);
		return false;
	}
	*a_r = list_r->addrs[0];
	return true;
}

/* What other_org judges against: the From address and the settings (freemail_domains). */
struct display_from {
	const struct mw_spam_settings *s;
	const struct mw_addr *fa;
};

/* other_org - mw_addr_display_fn for FROM_DISPLAY_ADDR: the shown address is a real one
   (its domain, up to the first byte that cannot be in a host name, normalises and has a
   registrable domain, so "name@host" and "a@localhost" are not) of another organisation
   than the From address: another registrable domain, or the same free-mail domain (where
   the domain says nothing about who writes). Another address of the sender's own
   organisation ("news@lists.example.com" <bounce@example.com>) is not impersonation. */
static bool other_org(const char *local, size_t llen, const char *domain, size_t dlen, void *ctx)
{
	const struct display_from *d = ctx;
	char dom[MW_ADDR_DOMAIN_MAX + 1];
	const char *reg, *freg;
	size_t n;

	(void)local, (void)llen;
	for (n = 0; n < dlen; n++) {
		unsigned char c = (unsigned char)domain[n];
		if (!(c >= 0x80 || c == '.' || c == '-' || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			break;
	}
	if (mw_addr_domain_normalize(domain, n, dom, sizeof(dom), NULL) < 0 ||
	    strchr(dom, '.') == NULL || (reg = mw_tokenize_registrable_domain(dom)) == NULL)
		return false;
	freg = mw_tokenize_registrable_domain(d->fa->domain);
	if (freg == NULL)
		freg = d->fa->domain;
	if (strcmp(reg, freg) != 0)
		return true;
	return in_list(d->s->freemail_domains, dom);
}

/* display_tests - From's display name: another address, a local domain look-alike */
static void display_tests(const struct mw_spam_settings *s, struct mw_spam_result *r,
                          const char *from, const struct mw_addr *fa, const struct mw_addr_list *fl)
{
	const char *lt = strchr(from, '<');
	char word[MW_DNS_NAME_MAX + 2];
	size_t i, n, end = lt != NULL ? (size_t)(lt - from) : 0;
	struct display_from df = {s, fa};

	if (mw_addr_display_scan(from, strlen(from), fl, other_org, &df, NULL) == 1)
		fire(s, r, MW_SPAM_FROM_DISPLAY_ADDR);
	if (s->local_domains[0] == '\0')
		return;
	if (!in_list(s->local_domains, fa->domain) && local_lookalike(s->local_domains, fa->domain))
		fire(s, r, MW_SPAM_FROM_LOOKALIKE);
	/* domain-like words of the display name: a local domain (or look-alike) named while
	   the address is elsewhere */
	for (i = 0; i < end;) {
		while (i < end &&
		       !(from[i] == '.' || from[i] == '-' || (from[i] >= 'a' && from[i] <= 'z') ||
		         (from[i] >= 'A' && from[i] <= 'Z') || (from[i] >= '0' && from[i] <= '9')))
			i++;
		for (n = 0;
		     i < end && n + 1 < sizeof(word) &&
		     (from[i] == '.' || from[i] == '-' || (from[i] >= 'a' && from[i] <= 'z') ||
		      (from[i] >= 'A' && from[i] <= 'Z') || (from[i] >= '0' && from[i] <= '9'));
		     i++)
			word[n++] = from[i];
		word[n] = '\0';
		while (n > 0 && word[n - 1] == '.')
			word[--n] = '\0';
		if (n == 0 || strchr(word, '.') == NULL)
			continue;
		if (!in_list(s->local_domains, fa->domain) &&
		    (in_list(s->local_domains, word) || local_lookalike(s->local_domains, word)))
			fire(s, r, MW_SPAM_FROM_LOOKALIKE);
	}
}

/* url_host - the lower-case host of a URL ("http://h/...", "www.h"); false when none */
static bool url_host(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://"), *e;
	size_t n;
	p = p != NULL ? p + 3 : url;
	e = p + strcspn(p, "/?#:\\ ");
	for (const char *at = p; at < e; at++)
		if (*at == '@')
			p = at + 1; /* userinfo */
	n = (size_t)(e - p);
	if (n == 0 || n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] + 32) : p[i];
	out[n] = '\0';
	while (n > 0 && out[n - 1] == '.')
		out[--n] = '\0';
	return n > 0 && strchr(out, '.') != NULL && !is_ip_literal(out);
}

/* uribl_tests - registrable domains of the body's URLs, each queried once */
static void uribl_tests(const struct mw_spam_settings *s, struct mw_spam_result *r,
                        const struct mw_mime_msg *m)
{
	char seen[32][MW_DNS_NAME_MAX + 1], host[MW_DNS_NAME_MAX + 1];
	size_t nseen = 0, i, j;
	for (i = 0; i < m->nurls && !r->fired[MW_SPAM_URIBL]; i++) {
		const char *reg;
		if (!url_host(m->urls[i], host, sizeof(host)))
			continue;
		reg = mw_tokenize_registrable_domain(host);
		if (reg == NULL)
			reg = host;
		for (j = 0; j < nseen && strcmp(seen[j], reg) != 0; j++)
			;
		if (j < nseen)
			continue;
		if (nseen < MW_N_ELEMENTS(seen) &&
		    mw_strlcpy(seen[nseen], reg, sizeof(seen[0])) == 0)
			nseen++;
		if (zones_query(s, r, s->uribl_zones, reg))
			fire(s, r, MW_SPAM_URIBL);
		if (r->lookups_capped)
			break;
	}
}

/* auth_tests - SPF, DKIM and DMARC outcomes */
static void auth_tests(const struct mw_spam_settings *s, struct mw_spam_result *r,
                       const struct mw_auth_results *a)
{
	bool dkim_pass = false, dkim_fail = false;
	if (a->spf == MW_AUTH_FAIL)
		fire(s, r, MW_SPAM_SPF_FAIL);
	else if (a->spf == MW_AUTH_SOFTFAIL)
		fire(s, r, MW_SPAM_SPF_SOFTFAIL);
	for (size_t i = 0; i < a->dkim_count; i++) {
		if (a->dkim[i].result == MW_AUTH_PASS)
			dkim_pass = true;
		else if (a->dkim[i].result == MW_AUTH_FAIL ||
		         a->dkim[i].result == MW_AUTH_PERMERROR)
			dkim_fail = true;
	}
	if (dkim_fail && !dkim_pass)
		fire(s, r, MW_SPAM_DKIM_INVALID);
	if (a->dmarc == MW_AUTH_FAIL)
		fire(s, r, MW_SPAM_DMARC_FAIL);
	else if (a->dmarc == MW_AUTH_PASS)
		fire(s, r, MW_SPAM_DMARC_PASS);
}

/* bayes_tests - the classifier's band */
static void bayes_tests(const struct mw_spam_settings *s, const struct mw_spam_input *in,
                        struct mw_spam_result *r)
{
	mw_error err;
	double p = -1;
	int rc;
	r->bayes = -1;
	if (s->classify == NULL)
		return;
	err.msg[0] = '\0';
	rc = s->classify(s->classify_ctx, in->msg, in->len, &p, &err);
	if (rc != 0 || p < 0 || p > 1) {
		r->classifier_skipped = true;
		if (rc < 0 && snprintf(r->classifier_error, sizeof(r->classifier_error), "%s",
		                       err.msg[0] != '\0' ? err.msg : "classifier error") < 0)
			r->classifier_error[0] = '\0';
		return;
	}
	r->bayes = p;
	if (p < 0.01)
		fire(s, r, MW_SPAM_BAYES_00);
	else if (p < 0.20)
		fire(s, r, MW_SPAM_BAYES_20);
	else if (p >= 0.99)
		fire(s, r, MW_SPAM_BAYES_99);
	else if (p >= 0.95)
		fire(s, r, MW_SPAM_BAYES_95);
	else if (p >= 0.80)
		fire(s, r, MW_SPAM_BAYES_80);
	else if (p >= 0.67)
		fire(s, r, MW_SPAM_BAYES_67);
	else if (p >= 0.50)
		fire(s, r, MW_SPAM_BAYES_50);
}

/* envelope_domain - the domain of "<a@b>" (lower case), "" for "<>" or nonsense */
static void envelope_domain(const char *envfrom, char *out, size_t size)
{
	struct mw_addr a;
	out[0] = '\0';
	if (envfrom != NULL &&
	    mw_addr_parse_envelope(envfrom, strlen(envfrom), true, &a, NULL) == 0 && !a.null_path &&
	    a.domain[0] != '[')
		(void)mw_strlcpy(out, a.domain, size);
}

/* header_tests - the heuristics over mw-mime's view */
static void header_tests(const struct mw_spam_settings *s, struct mw_spam_result *r,
                         const struct mw_mime_msg *m, char *from_domain, size_t fdsize)
{
	const char *from = mw_mime_header(m, "From"), *rt = mw_mime_header(m, "Reply-To");
	struct mw_addr fa, ra;
	struct mw_addr_list fl, rl;
	size_t i;

	if (mw_mime_header(m, "Date") == NULL)
		fire(s, r, MW_SPAM_MISSING_DATE);
	if (mw_mime_header(m, "Message-ID") == NULL)
		fire(s, r, MW_SPAM_MISSING_MID);
	if ((m->flags & MW_MIME_HTML_ONLY) && (m->flags & MW_MIME_HIDDEN_TEXT))
		fire(s, r, MW_SPAM_HTML_HIDDEN);
	for (i = 0; i < m->nattachments; i++)
		attachment_tests(s, r, m->attachments[i].filename);
	if (!one_addr(from, &fa, &fl))
		return;
	(void)mw_strlcpy(from_domain, fa.domain, fdsize);
	display_tests(s, r, from, &fa, &fl);
	if (one_addr(rt, &ra, &rl)) {
		if (mw_ascii_strcasecmp(ra.addr, fa.addr) != 0 &&
		    mw_ascii_strcasecmp(ra.domain, fa.domain) != 0 &&
		    in_list(s->freemail_domains, ra.domain))
			fire(s, r, MW_SPAM_FREEMAIL_REPLYTO);
		mw_addr_list_free(&rl);
	}
	mw_addr_list_free(&fl);
}

/* mw_spam_score - every test over one message */
void mw_spam_score(const struct mw_spam_settings *s, const struct mw_spam_input *in,
                   struct mw_spam_result *r)
{
	struct mw_mime_msg *m = NULL;
	char rev[80], envdom[MW_ADDR_DOMAIN_MAX + 1], fromdom[MW_ADDR_DOMAIN_MAX + 1] = "";

	memset(r, 0, sizeof(*r));
	r->bayes = -1;
	if (in->auth != NULL)
		auth_tests(s, r, in->auth);
	if (in->helo != NULL && in->helo[0] != '\0') {
		if (is_ip_literal(in->helo))
			fire(s, r, MW_SPAM_HELO_IP_LITERAL);
		else if (in_list(s->local_domains, in->helo))
			fire(s, r, MW_SPAM_HELO_LOCAL_FORGED);
	}
	if (mw_mime_parse(in->msg != NULL ? in->msg : "", in->len, NULL, &m, NULL) < 0)
		r->mime_refused = true;
	else
		header_tests(s, r, m, fromdom, sizeof(fromdom));
	/* lists, cheapest first: the client, the sender domains, then URLs */
	if (in->client_ip != NULL && in->client_ip[0] != '\0' && s->dnsbl_zones[0] != '\0' &&
	    ip_reversed(in->client_ip, rev, sizeof(rev)) == 0 &&
	    zones_query(s, r, s->dnsbl_zones, rev))
		fire(s, r, MW_SPAM_RCVD_IN_DNSBL);
	envelope_domain(in->envfrom, envdom, sizeof(envdom));
	if (s->rhsbl_zones[0] != '\0') {
		if (envdom[0] != '\0' && zones_query(s, r, s->rhsbl_zones, envdom))
			fire(s, r, MW_SPAM_RHSBL_SENDER);
		if (!r->fired[MW_SPAM_RHSBL_SENDER] && fromdom[0] != '\0' && fromdom[0] != '[' &&
		    strcmp(fromdom, envdom) != 0 && zones_query(s, r, s->rhsbl_zones, fromdom))
			fire(s, r, MW_SPAM_RHSBL_SENDER);
	}
	if (m != NULL && s->uribl_zones[0] != '\0')
		uribl_tests(s, r, m);
	mw_mime_free(&m);
	bayes_tests(s, in, r);
	if (r->score > MW_HDR_SCORE_MAX)
		r->score = MW_HDR_SCORE_MAX;
	if (r->score < -MW_HDR_SCORE_MAX)
		r->score = -MW_HDR_SCORE_MAX;
	r->spam = r->score >= s->required;
}

/* mw_spam_from_spamd - spamd's verdict as a result */
void mw_spam_from_spamd(const struct mw_spam_settings *s, const struct mw_spamd_result *sr,
                        struct mw_spam_result *r)
{
	memset(r, 0, sizeof(*r));
	r->bayes = -1;
	r->score = sr->score;
	if (r->score > MW_HDR_SCORE_MAX)
		r->score = MW_HDR_SCORE_MAX;
	if (r->score < -MW_HDR_SCORE_MAX)
		r->score = -MW_HDR_SCORE_MAX;
	r->spam = r->score >= s->required;
	(void)mw_strlcpy(r->tests, sr->tests, sizeof(r->tests));
}

/* mw_spam_unscored - the result of a message accepted without a score */
void mw_spam_unscored(const char *name, struct mw_spam_result *r)
{
	memset(r, 0, sizeof(*r));
	r->bayes = -1;
	(void)mw_strlcpy(r->tests, name, sizeof(r->tests));
}

/* mw_spam_header - the X-Mailwarden-Spam value */
int mw_spam_header(const struct mw_spam_settings *s, const struct mw_spam_result *r, mw_str *out,
                   mw_error *error_r)
{
	struct mw_hdr_spam h;
	memset(&h, 0, sizeof(h));
	h.spam = r->spam;
	h.score = r->score;
	h.required = s->required;
	(void)mw_strlcpy(h.tests, r->tests, sizeof(h.tests));
	return mw_hdr_spam_print(&h, out, error_r);
}
