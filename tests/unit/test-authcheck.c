/* test-authcheck.c - mw-authcheck without DNS: Authentication-Results formatting, the
   verdict table, domain and network lists, DNS server lists, and hostile header input. */
#include "mw-build.h"
#include "mw-authcheck.h"

#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* results - a results struct with the common fields set */
static struct mw_auth_results results(enum mw_auth_result spf, enum mw_auth_result dkim,
                                      enum mw_auth_result dmarc, enum mw_dmarc_policy policy,
                                      const char *from_domain, const char *mailfrom)
{
	struct mw_auth_results r;

	memset(&r, 0, sizeof(r));
	r.spf = spf;
	r.spf_helo = MW_AUTH_NONE;
	if (mailfrom != NULL) {
		snprintf(r.spf_mailfrom, sizeof(r.spf_mailfrom), "%s", mailfrom);
		snprintf(r.spf_domain, sizeof(r.spf_domain), "%s", strchr(mailfrom, '@') + 1);
	}
	if (dkim != MW_AUTH_NONE) {
		r.dkim_count = 1;
		r.dkim[0].result = dkim;
		snprintf(r.dkim[0].domain, sizeof(r.dkim[0].domain), "%s", from_domain);
		snprintf(r.dkim[0].selector, sizeof(r.dkim[0].selector), "sel");
	}
	r.dmarc = dmarc;
	r.policy = policy;
	snprintf(r.from_domain, sizeof(r.from_domain), "%s", from_domain);
	r.temperror =
	    spf == MW_AUTH_TEMPERROR || dkim == MW_AUTH_TEMPERROR || dmarc == MW_AUTH_TEMPERROR;
	return r;
}

/* unfolded - the printed value with its folds ("\n\t", lib/mw-headers) made blanks again */
static const char *unfolded(const mw_str *s)
{
	static char buf[4096];
	size_t i, o = 0;
	for (i = 0; i < s->len && o + 1 < sizeof(buf); i++) {
		if (s->buf[i] == '\n' && i + 1 < s->len && s->buf[i + 1] == '\t') {
			buf[o++] = ' ';
			i++;
		} else {
			buf[o++] = s->buf[i];
		}
	}
	buf[o] = '\0';
	return buf;
}

/* test_format_ar - the header value for typical results */
static void test_format_ar(void **state)
{
	struct mw_auth_results r =
	    results(MW_AUTH_PASS, MW_AUTH_PASS, MW_AUTH_PASS, MW_DMARC_POLICY_REJECT, "example.com",
	            "bob@example.com");
	mw_str s;
	mw_error err;

	(void)state;
	snprintf(r.helo, sizeof(r.helo), "mail.example.com");
	mw_str_init(&s, 0);
	assert_int_equal(mw_authcheck_format_ar("mx.example.net", &r, &s, &err), 0);
	assert_string_equal(unfolded(&s),
	                    "mx.example.net; spf=pass smtp.mailfrom=bob@example.com "
	                    "smtp.helo=mail.example.com; dkim=pass header.d=example.com "
	                    "header.s=sel; dmarc=pass (p=reject) header.from=example.com");
	mw_str_free(&s);

	r = results(MW_AUTH_TEMPERROR, MW_AUTH_NONE, MW_AUTH_NONE, MW_DMARC_POLICY_ABSENT, "",
	            NULL);
	mw_str_init(&s, 0);
	assert_int_equal(mw_authcheck_format_ar("mx", &r, &s, &err), 0);
	assert_string_equal(unfolded(&s), "mx; spf=temperror; dkim=none; dmarc=none");
	mw_str_free(&s);

	/* two signatures, one failing with a reason comment */
	r = results(MW_AUTH_FAIL, MW_AUTH_PASS, MW_AUTH_FAIL, MW_DMARC_POLICY_QUARANTINE,
	            "example.org", "x@other.example");
	r.dkim_count = 2;
	r.dkim[1].result = MW_AUTH_FAIL;
	snprintf(r.dkim[1].domain, sizeof(r.dkim[1].domain), "other.example");
	snprintf(r.dkim[1].selector, sizeof(r.dkim[1].selector), "s2");
	snprintf(r.dkim[1].reason, sizeof(r.dkim[1].reason), "body hash (mismatch)\x01");
	mw_str_init(&s, 0);
	assert_int_equal(mw_authcheck_format_ar("mx", &r, &s, &err), 0);
	assert_string_equal(unfolded(&s),
	                    "mx; spf=fail smtp.mailfrom=x@other.example; dkim=pass "
	                    "header.d=example.org header.s=sel; dkim=fail (body hash mismatch) "
	                    "header.d=other.example header.s=s2; dmarc=fail (p=quarantine) "
	                    "header.from=example.org");
	mw_str_free(&s);
}

/* test_format_ar_arc - arc=, the trusted-forwarder override and t=y: printed, read back by
   the one parser (the Dovecot plugin's), and the verdict skips the DMARC policy for both */
static void test_format_ar_arc(void **state)
{
	struct mw_auth_results r =
	    results(MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_FAIL, MW_DMARC_POLICY_REJECT,
	            "orig.example.com", "b@list.example.org");
	struct mw_hdr_authres *ar = calloc(1, sizeof(*ar));
	struct mw_hdr_auth_summary sum;
	struct mw_verdict_policy pol = {true, true, true, "", false, false};
	struct mw_verdict v;
	mw_str s;
	mw_error err;

	(void)state;
	r.arc = MW_AUTH_PASS;
	r.arc_sets = 2;
	snprintf(r.arc_seal_domain, sizeof(r.arc_seal_domain), "list.example.org");
	snprintf(r.client_ip, sizeof(r.client_ip), "2001:db8::5");
	mw_authcheck_verdict(&r, &pol, &v);
	assert_int_equal(v.action, MW_VERDICT_REJECT);
	r.dmarc_override = true;
	mw_authcheck_verdict(&r, &pol, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
	mw_str_init(&s, 0);
	assert_int_equal(mw_authcheck_format_ar("mx.example.net", &r, &s, &err), 0);
	assert_string_equal(unfolded(&s),
	                    "mx.example.net; spf=fail smtp.mailfrom=b@list.example.org; dkim=none; "
	                    "dmarc=fail (p=reject; override: trusted ARC forwarder) "
	                    "header.from=orig.example.com; arc=pass (trusted forwarder "
	                    "list.example.org) smtp.remote-ip=2001:db8::5");
	assert_int_equal(mw_hdr_authres_parse(s.buf, s.len, ar, &err), 0);
	assert_int_equal(ar->count, 4);
	assert_string_equal(ar->results[3].method, "arc");
	assert_int_equal(ar->results[3].result, MW_AUTH_PASS);
	assert_string_equal(ar->results[3].props[0].value, "2001:db8::5");
	mw_hdr_authres_summary(ar, &sum);
	assert_true(sum.dmarc_fail);
	mw_str_free(&s);

	/* t=y: recorded, not applied */
	r.dmarc_override = false;
	r.arc = MW_AUTH_NONE;
	r.arc_sets = 0;
	r.dmarc_testing = true;
	mw_authcheck_verdict(&r, &pol, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
	mw_str_init(&s, 0);
	assert_int_equal(mw_authcheck_format_ar("mx", &r, &s, &err), 0);
	assert_string_equal(unfolded(&s), "mx; spf=fail smtp.mailfrom=b@list.example.org; "
	                                  "dkim=none; dmarc=fail (p=reject t=y) "
	                                  "header.from=orig.example.com");
	assert_int_equal(mw_hdr_authres_parse(s.buf, s.len, ar, &err), 0);
	mw_str_free(&s);
	free(ar);
}

/* test_format_ar_hostile - unsafe ids refused, odd local parts quoted, controls refused */
static void test_format_ar_hostile(void **state)
{
	static const char *const bad_ids[] = {"",           "mx example", "mx;dkim=pass",
	                                      "mx\r\nX: y", "m\xc3\xa9x", "mx(comment)"};
	struct mw_auth_results r =
	    results(MW_AUTH_PASS, MW_AUTH_NONE, MW_AUTH_NONE, MW_DMARC_POLICY_ABSENT, "", NULL);
	size_t i;
	mw_str s;
	mw_error err;

	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(bad_ids); i++) {
		mw_str_init(&s, 0);
		assert_int_equal(mw_authcheck_format_ar(bad_ids[i], &r, &s, &err), -1);
		mw_str_free(&s);
	}
	/* a quoted local part with a blank and a semicolon stays one quoted value */
	snprintf(r.spf_mailfrom, sizeof(r.spf_mailfrom), "\"a b;dkim=pass\"@example.com");
	mw_str_init(&s, 0);
	assert_int_equal(mw_authcheck_format_ar("mx", &r, &s, &err), 0);
	assert_string_equal(unfolded(&s), "mx; spf=pass "
	                                  "smtp.mailfrom=\"\\\"a b;dkim=pass\\\"@example.com\"; "
	                                  "dkim=none; dmarc=none");
	mw_str_free(&s);
	/* control characters can never reach the header */
	snprintf(r.spf_mailfrom, sizeof(r.spf_mailfrom), "a\r\nX-Evil: 1@example.com");
	mw_str_init(&s, 0);
	assert_int_equal(mw_authcheck_format_ar("mx", &r, &s, &err), -1);
	mw_str_free(&s);
}

/* verdict cases */
static const struct {
	const char *name;
	enum mw_auth_result spf, dkim, dmarc;
	enum mw_dmarc_policy policy;
	const char *from, *mailfrom;
	bool enforce, hold, tempfail, trusted, authenticated;
	const char *local;
	enum mw_verdict_action want;
	const char *code, *xcode;
} verdicts[] = {
    {"dmarc pass", MW_AUTH_PASS, MW_AUTH_PASS, MW_AUTH_PASS, MW_DMARC_POLICY_REJECT, "example.com",
     "a@example.com", true, true, true, false, false, "", MW_VERDICT_ACCEPT, "", ""},
    {"dmarc fail reject", MW_AUTH_FAIL, MW_AUTH_FAIL, MW_AUTH_FAIL, MW_DMARC_POLICY_REJECT,
     "example.com", "a@evil.example", true, true, true, false, false, "", MW_VERDICT_REJECT, "550",
     "5.7.26"},
    {"dmarc fail reject, not enforced", MW_AUTH_FAIL, MW_AUTH_FAIL, MW_AUTH_FAIL,
     MW_DMARC_POLICY_REJECT, "example.com", "a@evil.example", false, true, true, false, false, "",
     MW_VERDICT_ACCEPT, "", ""},
    {"dmarc fail quarantine hold", MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_FAIL,
     MW_DMARC_POLICY_QUARANTINE, "example.com", "a@evil.example", true, true, true, false, false,
     "", MW_VERDICT_QUARANTINE, "", ""},
    {"dmarc fail none", MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_FAIL, MW_DMARC_POLICY_NONE,
     "example.com", "a@evil.example", true, true, true, false, false, "", MW_VERDICT_ACCEPT, "",
     ""},
    {"dmarc temperror", MW_AUTH_NONE, MW_AUTH_NONE, MW_AUTH_TEMPERROR, MW_DMARC_POLICY_ABSENT,
     "example.com", "a@example.com", true, true, true, false, false, "", MW_VERDICT_TEMPFAIL, "451",
     "4.7.1"},
    {"dmarc temperror, accept configured", MW_AUTH_NONE, MW_AUTH_NONE, MW_AUTH_TEMPERROR,
     MW_DMARC_POLICY_ABSENT, "example.com", "a@example.com", true, true, false, false, false, "",
     MW_VERDICT_ACCEPT, "", ""},
    {"dkim temperror under p=none", MW_AUTH_FAIL, MW_AUTH_TEMPERROR, MW_AUTH_TEMPERROR,
     MW_DMARC_POLICY_NONE, "example.com", "a@evil.example", true, true, true, false, false, "",
     MW_VERDICT_ACCEPT, "", ""},
    {"spf temperror under p=reject", MW_AUTH_TEMPERROR, MW_AUTH_NONE, MW_AUTH_TEMPERROR,
     MW_DMARC_POLICY_REJECT, "example.com", "a@example.com", true, true, true, false, false, "",
     MW_VERDICT_TEMPFAIL, "451", "4.7.1"},
    {"no dmarc record", MW_AUTH_SOFTFAIL, MW_AUTH_NONE, MW_AUTH_NONE, MW_DMARC_POLICY_ABSENT,
     "example.com", "a@example.com", true, true, true, false, false, "", MW_VERDICT_ACCEPT, "", ""},
    {"local From spoof", MW_AUTH_PASS, MW_AUTH_NONE, MW_AUTH_NONE, MW_DMARC_POLICY_ABSENT,
     "ours.example", "a@evil.example", true, true, true, false, false, "x.org, ours.example",
     MW_VERDICT_REJECT, "550", "5.7.1"},
    {"local From spoof, case", MW_AUTH_PASS, MW_AUTH_NONE, MW_AUTH_FAIL, MW_DMARC_POLICY_NONE,
     "ours.example", "a@evil.example", false, true, true, false, false, "OURS.Example",
     MW_VERDICT_REJECT, "550", "5.7.1"},
    {"local envelope spoof", MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_NONE, MW_DMARC_POLICY_ABSENT,
     "evil.example", "a@ours.example", true, true, true, false, false, "ours.example",
     MW_VERDICT_REJECT, "550", "5.7.1"},
    {"local envelope, spf temperror", MW_AUTH_TEMPERROR, MW_AUTH_NONE, MW_AUTH_NONE,
     MW_DMARC_POLICY_ABSENT, "evil.example", "a@ours.example", true, true, true, false, false,
     "ours.example", MW_VERDICT_TEMPFAIL, "451", "4.7.1"},
    {"local From, dmarc temperror", MW_AUTH_NONE, MW_AUTH_NONE, MW_AUTH_TEMPERROR,
     MW_DMARC_POLICY_ABSENT, "ours.example", "a@x.example", true, true, true, false, false,
     "ours.example", MW_VERDICT_TEMPFAIL, "451", "4.7.1"},
    {"local From, dmarc pass", MW_AUTH_PASS, MW_AUTH_PASS, MW_AUTH_PASS, MW_DMARC_POLICY_REJECT,
     "ours.example", "a@ours.example", true, true, true, false, false, "ours.example",
     MW_VERDICT_ACCEPT, "", ""},
    {"local subdomain is not local", MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_NONE,
     MW_DMARC_POLICY_ABSENT, "sub.ours.example", "a@evil.example", true, true, true, false, false,
     "ours.example", MW_VERDICT_ACCEPT, "", ""},
    {"spoof from trusted client", MW_AUTH_FAIL, MW_AUTH_FAIL, MW_AUTH_FAIL, MW_DMARC_POLICY_REJECT,
     "ours.example", "a@ours.example", true, true, true, true, false, "ours.example",
     MW_VERDICT_ACCEPT, "", ""},
    {"authenticated", MW_AUTH_FAIL, MW_AUTH_FAIL, MW_AUTH_FAIL, MW_DMARC_POLICY_REJECT,
     "example.com", "a@example.com", true, true, true, false, true, "", MW_VERDICT_ACCEPT, "", ""},
    /* no single From domain: refused whether or not DMARC is enforced (issue 9) */
    {"dmarc permerror, no From domain", MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_PERMERROR,
     MW_DMARC_POLICY_ABSENT, "", "a@example.com", true, true, true, false, false, "",
     MW_VERDICT_REJECT, "550", "5.7.1"},
    {"no From domain, not enforced", MW_AUTH_PASS, MW_AUTH_PASS, MW_AUTH_PERMERROR,
     MW_DMARC_POLICY_ABSENT, "", "a@example.com", false, true, true, false, false, "ours.example",
     MW_VERDICT_REJECT, "550", "5.7.1"},
    {"no From domain, trusted", MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_PERMERROR,
     MW_DMARC_POLICY_ABSENT, "", "a@example.com", true, true, true, true, false, "",
     MW_VERDICT_ACCEPT, "", ""},
    {"no From domain, authenticated", MW_AUTH_FAIL, MW_AUTH_NONE, MW_AUTH_PERMERROR,
     MW_DMARC_POLICY_ABSENT, "", "a@example.com", true, true, true, false, true, "",
     MW_VERDICT_ACCEPT, "", ""},
};

/* test_verdict_table - the decision for each combination */
static void test_verdict_table(void **state)
{
	size_t i, failures = 0;

	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(verdicts); i++) {
		struct mw_auth_results r =
		    results(verdicts[i].spf, verdicts[i].dkim, verdicts[i].dmarc,
		            verdicts[i].policy, verdicts[i].from, verdicts[i].mailfrom);
		struct mw_verdict_policy p = {verdicts[i].enforce,  verdicts[i].hold,
		                              verdicts[i].tempfail, verdicts[i].local,
		                              verdicts[i].trusted,  verdicts[i].authenticated};
		struct mw_verdict v;

		mw_authcheck_verdict(&r, &p, &v);
		if (v.action != verdicts[i].want || strcmp(v.smtp_code, verdicts[i].code) != 0 ||
		    strcmp(v.xcode, verdicts[i].xcode) != 0) {
			printf("# %s: action %d code %s %s (%s)\n", verdicts[i].name, v.action,
			       v.smtp_code, v.xcode, v.reason);
			failures++;
		}
		if (v.action == MW_VERDICT_QUARANTINE)
			assert_true(v.hold == verdicts[i].hold && v.tag == !verdicts[i].hold);
	}
	assert_int_equal(failures, 0);
}

/* test_verdict_envelope - an envelope sender that did not parse */
static void test_verdict_envelope(void **state)
{
	struct mw_auth_results r = results(MW_AUTH_NONE, MW_AUTH_NONE, MW_AUTH_NONE,
	                                   MW_DMARC_POLICY_ABSENT, "example.org", NULL);
	struct mw_verdict_policy p = {true, true, true, "ours.example", false, false};
	struct mw_verdict v;

	(void)state;
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
	/* its domain is local: the spoofing refusal SPF would have given */
	r.envelope_invalid = true;
	snprintf(r.envelope_domain, sizeof(r.envelope_domain), "ours.example");
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_REJECT);
	assert_string_equal(v.xcode, "5.7.1");
	assert_string_equal(v.why, "local_domain_spoof");
	/* a domain that is not local: no SPF identity, decided by DMARC as usual */
	snprintf(r.envelope_domain, sizeof(r.envelope_domain), "elsewhere.example");
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
	/* no host name at all: cannot decide, refused */
	r.envelope_domain[0] = '\0';
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_REJECT);
	assert_string_equal(v.why, "envelope_invalid");
	p.trusted_client = true;
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
}

/* test_verdict_sender - Sender: claiming a local domain, or unusable */
static void test_verdict_sender(void **state)
{
	struct mw_auth_results r = results(MW_AUTH_PASS, MW_AUTH_PASS, MW_AUTH_PASS,
	                                   MW_DMARC_POLICY_REJECT, "example.org", "a@example.org");
	struct mw_verdict_policy p = {true, true, true, "ours.example", false, false};
	struct mw_verdict v;

	(void)state;
	snprintf(r.sender_domain, sizeof(r.sender_domain), "ours.example");
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_REJECT);
	assert_string_equal(v.xcode, "5.7.1");
	assert_string_equal(v.why, "local_domain_spoof");
	/* vouched for by DKIM or SPF (run_sender decides): fine */
	r.sender_authenticated = true;
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
	/* not local: fine */
	r.sender_authenticated = false;
	snprintf(r.sender_domain, sizeof(r.sender_domain), "lists.example");
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
	/* a DNS failure might have vouched for it: temporary */
	snprintf(r.sender_domain, sizeof(r.sender_domain), "ours.example");
	r.temperror = true;
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_TEMPFAIL);
	r.temperror = false;
	/* unusable Sender: refused */
	r.sender_domain[0] = '\0';
	snprintf(r.sender_problem, sizeof(r.sender_problem), "2 Sender header fields");
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_REJECT);
	assert_string_equal(v.why, "sender_invalid");
	p.authenticated = true;
	mw_authcheck_verdict(&r, &p, &v);
	assert_int_equal(v.action, MW_VERDICT_ACCEPT);
}

/* test_domain_listed - exact, case-insensitive matches only */
static void test_domain_listed(void **state)
{
	static const struct {
		const char *list, *domain;
		bool listed;
	} cases[] = {
	    {"a.example, b.example", "b.example", true},
	    {"a.example\tB.EXAMPLE.", "b.example", true},
	    {"a.example", "xa.example", false},
	    {"a.example", "a.example.evil", false},
	    {"", "a.example", false},
	    {"a.example", "", false},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++)
		if (mw_authcheck_domain_listed(cases[i].list, cases[i].domain) != cases[i].listed)
			fail_msg("case %zu: [%s] in [%s]: want %s", i, cases[i].domain,
			         cases[i].list, cases[i].listed ? "listed" : "not listed");
}

/* test_networks - CIDR matching and malformed lists */
static void test_networks(void **state)
{
	static const struct {
		const char *nets, *ip;
		int want;
	} cases[] = {
	    {"192.0.2.0/24", "192.0.2.77", 1},
	    {"192.0.2.0/24", "192.0.3.1", 0},
	    {"10.0.0.0/8, 192.0.2.7", "192.0.2.7", 1},
	    {"192.0.2.128/25", "192.0.2.127", 0},
	    {"192.0.2.128/25", "192.0.2.200", 1},
	    {"0.0.0.0/0", "203.0.113.5", 1},
	    {"2001:db8::/32", "2001:db8:1::5", 1},
	    {"2001:db8::/32", "2001:db9::5", 0},
	    {"::1", "::1", 1},
	    {"192.0.2.0/24", "2001:db8::1", 0},
	    {"", "192.0.2.1", 0},
	    {"192.0.2.0/33", "192.0.2.1", -1},
	    {"192.0.2.0/", "192.0.2.1", -1},
	    /* one parser with the API's: a prefix of 1..3 digits, nothing after it */
	    {"192.0.2.0/0024", "192.0.2.1", -1},
	    {"192.0.2.0/24x", "192.0.2.1", -1},
	    {"::ffff:1.2.3.4/129", "192.0.2.1", -1},
	    {"example.com", "192.0.2.1", -1},
	    {"192.0.2.0/24", "not-an-ip", -1},
	};
	size_t i;

	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		int got = mw_authcheck_ip_in_networks(cases[i].nets, cases[i].ip, NULL);

		if (got != cases[i].want)
			printf("# %s in %s: %d\n", cases[i].ip, cases[i].nets, got);
		assert_int_equal(got, cases[i].want);
	}
}

/* test_dns_servers - the server list grammar */
static void test_dns_servers(void **state)
{
	char out[MW_DNS_SERVERS_MAX][64];
	mw_error err;

	(void)state;
	assert_int_equal(mw_dns_parse_servers("127.0.0.1@5353, ::1", out, 8, &err), 2);
	assert_string_equal(out[0], "127.0.0.1@5353");
	assert_string_equal(out[1], "::1");
	assert_int_equal(mw_dns_parse_servers("", out, 8, &err), 0);
	assert_int_equal(mw_dns_parse_servers("dns.example.com", out, 8, &err), -1);
	assert_int_equal(mw_dns_parse_servers("127.0.0.1@0", out, 8, &err), -1);
	assert_int_equal(mw_dns_parse_servers("127.0.0.1@65536", out, 8, &err), -1);
	assert_int_equal(mw_dns_parse_servers("127.0.0.1@x", out, 8, &err), -1);
	assert_int_equal(mw_dns_parse_servers("127.0.0.1@", out, 8, &err), -1);
	assert_int_equal(mw_dns_parse_servers("1.1.1.1 1.1.1.2 1.1.1.3", out, 2, &err), -1);
	assert_null(mw_dns_new("127.0.0.1@5353", 0, &err));
}

/* test_hostile_headers - limits on header input, DMARC with odd From fields */
static void test_hostile_headers(void **state)
{
	struct mw_authcheck_settings s = {"127.0.0.1@9", 200, NULL, false, "", false};
	mw_authcheck_lib *lib;
	mw_authcheck *ac;
	mw_error err;
	char *big;
	size_t i;
	const struct mw_auth_results *res;

	(void)state;
	lib = mw_authcheck_lib_new(&s, &err);
	assert_non_null(lib);

	/* one huge field is refused */
	ac = mw_authcheck_new(lib);
	big = mw_malloc(MW_AUTH_MAX_HEADER_LEN + 10);
	memset(big, 'a', MW_AUTH_MAX_HEADER_LEN + 9);
	big[MW_AUTH_MAX_HEADER_LEN + 9] = '\0';
	assert_int_equal(mw_authcheck_header(ac, "Subject", big, strlen(big), &err), -1);
	assert_non_null(strstr(err.msg, "too long"));
	free(big);
	/* too many fields */
	for (i = 0; i < MW_AUTH_MAX_HEADERS; i++)
		assert_int_equal(mw_authcheck_header(ac, "X-A", " b", 2, &err), 0);
	assert_int_equal(mw_authcheck_header(ac, "X-A", " b", 2, &err), -1);
	assert_int_equal(mw_authcheck_header(ac, "", " b", 2, &err), -1);
	mw_authcheck_free(&ac);

	/* two From fields: DMARC permerror, no DNS needed (no client -> no SPF) */
	ac = mw_authcheck_new(lib);
	assert_int_equal(mw_authcheck_header(ac, "From", " a@example.com", 14, &err), 0);
	assert_int_equal(mw_authcheck_header(ac, "from", " b@example.org", 14, &err), 0);
	mw_authcheck_eoh(ac);
	mw_authcheck_body(ac, "hi\r\n", 4);
	res = mw_authcheck_eom(ac);
	assert_int_equal(res->dmarc, MW_AUTH_PERMERROR);
	assert_int_equal(res->spf, MW_AUTH_NONE);
	assert_int_equal(res->dkim_count, 0);
	assert_string_equal(res->from_domain, "");
	assert_string_equal(res->from_problem, "2 From header fields");
	{
		struct mw_verdict_policy p = {true, true, true, "", false, false};
		struct mw_verdict v;

		mw_authcheck_verdict(res, &p, &v);
		assert_int_equal(v.action, MW_VERDICT_REJECT);
		assert_string_equal(v.xcode, "5.7.1");
		assert_string_equal(v.why, "from_invalid");
	}
	mw_authcheck_free(&ac);

	/* "From :" (blanks before the colon) is a From field to a mail reader: counted */
	ac = mw_authcheck_new(lib);
	assert_int_equal(mw_authcheck_header(ac, "From ", " a@example.com", 14, &err), 0);
	assert_int_equal(mw_authcheck_header(ac, "FROM\t", " b@example.org", 14, &err), 0);
	mw_authcheck_eoh(ac);
	res = mw_authcheck_eom(ac);
	assert_string_equal(res->from_problem, "2 From header fields");
	mw_authcheck_free(&ac);
	/* Sender fields: counted (also "Sender :"), parsed, one address */
	{
		static const struct {
			const char *v1, *v2, *problem, *domain;
		} senders[] = {
		    {" a@Ours.Example", NULL, "", "ours.example"},
		    {" a@ours.example", " b@ours.example", "2 Sender header fields", ""},
		    {" a@ours.example, b@x.example", NULL, "2 addresses in Sender", ""},
		    {" undisclosed:;", NULL, "0 addresses in Sender", ""},
		    {" a@ours.example <b@x.example>", NULL, "unparseable Sender", ""},
		    {" a@[192.0.2.1]", NULL, "unusable Sender address", ""},
		};

		for (i = 0; i < MW_N_ELEMENTS(senders); i++) {
			ac = mw_authcheck_new(lib);
			assert_int_equal(
			    mw_authcheck_header(ac, "From", " a@example.com", 14, &err), 0);
			assert_int_equal(mw_authcheck_header(ac, "Sender", senders[i].v1,
			                                     strlen(senders[i].v1), &err),
			                 0);
			if (senders[i].v2 != NULL)
				assert_int_equal(mw_authcheck_header(ac, "sender ", senders[i].v2,
				                                     strlen(senders[i].v2), &err),
				                 0);
			mw_authcheck_eoh(ac);
			res = mw_authcheck_eom(ac);
			assert_string_equal(res->sender_problem, senders[i].problem);
			assert_string_equal(res->sender_domain, senders[i].domain);
			assert_false(res->sender_authenticated);
			mw_authcheck_free(&ac);
		}
	}
	/* no From at all */
	ac = mw_authcheck_new(lib);
	assert_int_equal(mw_authcheck_header(ac, "Fromage", " a@example.com", 14, &err), 0);
	mw_authcheck_eoh(ac);
	res = mw_authcheck_eom(ac);
	assert_string_equal(res->from_problem, "0 From header fields");
	mw_authcheck_free(&ac);

	/* a From with two addresses, a group, garbage, a domain literal: all permerror */
	{
		static const char *const froms[] = {" a@example.com, b@example.com",
		                                    " g: a@example.com, b@example.org;",
		                                    " <<<>>>",
		                                    " a@[192.0.2.1]",
		                                    " \"x@example.com\" <@>",
		                                    ""};

		for (i = 0; i < MW_N_ELEMENTS(froms); i++) {
			ac = mw_authcheck_new(lib);
			assert_int_equal(
			    mw_authcheck_header(ac, "From", froms[i], strlen(froms[i]), &err), 0);
			mw_authcheck_eoh(ac);
			res = mw_authcheck_eom(ac);
			assert_int_equal(res->dmarc, MW_AUTH_PERMERROR);
			assert_string_equal(res->from_domain, "");
			assert_true(res->from_problem[0] != '\0');
			mw_authcheck_free(&ac);
		}
	}

	/* bad client address and envelope */
	ac = mw_authcheck_new(lib);
	assert_int_equal(mw_authcheck_connect(ac, "192.0.2.300", "h", &err), -1);
	assert_int_equal(mw_authcheck_connect(ac, "x", "h", &err), -1);
	assert_int_equal(mw_authcheck_mail_from(ac, "<a@b@c>", &err), -1);
	assert_int_equal(mw_authcheck_mail_from(ac, "<a@example.com> SIZE=1", &err), -1);
	mw_authcheck_free(&ac);
	/* an envelope that does not parse keeps its domain for the verdict */
	{
		static const struct {
			const char *env, *domain;
		} envs[] = {{"<a..b@Ours.Example>", "ours.example"},
		            {"<.a@ours.example.>", "ours.example"},
		            {"<a@b@c>", "c"},
		            {"<nodomain>", ""},
		            {"<a b@x_y.example>", ""},
		            {"a..b@ours.example", "ours.example"}};

		for (i = 0; i < MW_N_ELEMENTS(envs); i++) {
			ac = mw_authcheck_new(lib);
			assert_int_equal(mw_authcheck_mail_from(ac, envs[i].env, &err), -1);
			assert_int_equal(
			    mw_authcheck_header(ac, "From", " a@example.com", 14, &err), 0);
			mw_authcheck_eoh(ac);
			res = mw_authcheck_eom(ac);
			assert_true(res->envelope_invalid);
			assert_string_equal(res->envelope_domain, envs[i].domain);
			mw_authcheck_free(&ac);
		}
		ac = mw_authcheck_new(lib);
		assert_int_equal(mw_authcheck_mail_from(ac, "<a@b@c>", &err), -1);
		assert_int_equal(mw_authcheck_mail_from(ac, "<a@example.com>", &err), 0);
		mw_authcheck_eoh(ac);
		res = mw_authcheck_eom(ac);
		assert_false(res->envelope_invalid);
		mw_authcheck_free(&ac);
	}

	mw_authcheck_lib_free(&lib);
}

/* pubkey_der - the DER SubjectPublicKeyInfo of a fresh P-256 key into buf; its length */
static int pubkey_der(unsigned char *buf, size_t size)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	unsigned char *p = buf;
	int n;

	assert_non_null(k);
	n = i2d_PUBKEY(k, NULL);
	assert_true(n > 0 && (size_t)n <= size);
	assert_int_equal(i2d_PUBKEY(k, &p), n);
	EVP_PKEY_free(k);
	return n;
}

/* parse - d2i_PUBKEY_bio on a memory BIO holding DER (as libopendkim calls it); how many
   bytes were left unread in *left_r */
static EVP_PKEY *parse(const unsigned char *der, int len, int *left_r)
{
	BIO *b = BIO_new_mem_buf(der, len);
	EVP_PKEY *k;

	assert_non_null(b);
	k = d2i_PUBKEY_bio(b, NULL);
	*left_r = (int)BIO_pending(b);
	BIO_free(b);
	return k;
}

/* test_key_cache - parsed public keys are shared only for exactly the same bytes */
static void test_key_cache(void **state)
{
	struct mw_authcheck_settings s = {"127.0.0.1@1", 100, NULL, false, "", false};
	unsigned char a[256], b[256], junk[300];
	unsigned long hits0, misses0, hits, misses;
	EVP_PKEY *k1, *k2, *k3, *k4;
	mw_authcheck_lib *lib;
	size_t entries;
	mw_error err;
	int alen, blen, left;

	(void)state;
	alen = pubkey_der(a, sizeof(a));
	blen = pubkey_der(b, sizeof(b));
	memcpy(junk, a, (size_t)alen);
	memcpy(junk + alen, "trailing", 8);

	/* no live mw_authcheck_lib: nothing is cached */
	mw_authcheck_key_cache_stats(&hits0, &misses0, &entries);
	k1 = parse(a, alen, &left);
	k2 = parse(a, alen, &left);
	assert_non_null(k1);
	assert_non_null(k2);
	assert_ptr_not_equal(k1, k2);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	mw_authcheck_key_cache_stats(&hits, &misses, &entries);
	assert_int_equal(hits, hits0);
	assert_int_equal(misses, misses0);

	lib = mw_authcheck_lib_new(&s, &err);
	assert_non_null(lib);
	k1 = parse(a, alen, &left);
	assert_int_equal(left, 0);
	k2 = parse(a, alen, &left);
	assert_int_equal(left, 0);
	assert_ptr_equal(k1, k2); /* the same bytes: the same parsed key */
	k3 = parse(b, blen, &left);
	assert_non_null(k3);
	assert_ptr_not_equal(k3, k1);
	assert_int_equal(EVP_PKEY_eq(k3, k1), 0);
	/* the same key followed by other bytes is other input: parsed on its own, and the BIO
	   is left where OpenSSL leaves it, also when answered from the cache */
	k4 = parse(junk, alen + 8, &left);
	assert_non_null(k4);
	assert_ptr_not_equal(k4, k1);
	assert_int_equal(EVP_PKEY_eq(k4, k1), 1);
	EVP_PKEY_free(k4);
	k4 = parse(junk, alen + 8, &left);
	assert_int_equal(left, 8);
	EVP_PKEY_free(k4);
	/* what does not parse is never cached and never answered */
	junk[0] ^= 0xff;
	assert_null(parse(junk, alen, &left));
	assert_null(parse(junk, alen, &left));
	mw_authcheck_key_cache_stats(&hits, &misses, &entries);
	assert_int_equal(hits - hits0, 2);
	assert_int_equal(misses - misses0, 5);
	assert_int_equal(entries, 3);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	mw_authcheck_lib_free(&lib);
	mw_authcheck_key_cache_stats(&hits, &misses, &entries);
	assert_int_equal(entries, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_ar),         cmocka_unit_test(test_format_ar_arc),
	    cmocka_unit_test(test_format_ar_hostile), cmocka_unit_test(test_verdict_table),
	    cmocka_unit_test(test_verdict_envelope),  cmocka_unit_test(test_verdict_sender),
	    cmocka_unit_test(test_domain_listed),     cmocka_unit_test(test_networks),
	    cmocka_unit_test(test_dns_servers),       cmocka_unit_test(test_hostile_headers),
	    cmocka_unit_test(test_key_cache),
	};

	MW_RUN_TESTS(tests);
}
