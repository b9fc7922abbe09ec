/* test-dnsrec.c - lib/mw-dnsrec.c: the records of a domain from [mailhost], the zone-file
 * lines (TXT split into 255-byte strings, quotes escaped), the MTA-STS policy and its id,
 * the client services, configurations that cannot give records, and a check whose resolver
 * does not answer (error, never ok). What NSD actually serves is compared in
 * tests/integration/test_discovery.py.
 */
#include "mw-build.h"
#include "mw-test.h"
#include "mw-dnsrec.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* load - a configuration from text */
static mw_config *load(const char *text)
{
	mw_error err = {""};
	mw_config *cfg = mw_config_load_string(text, strlen(text), "t.conf", &err);
	if (cfg == NULL)
		fail_msg("config: %s", err.msg);
	return cfg;
}

#define BASE_NO_MX "[milter]\nlocal_domains = example.org, Example.NET\n[mailhost]\n"
static const char base[] = BASE_NO_MX "mx_host = mx.example.org\n";

/* find - the record of purpose and name in set */
static const struct mw_dnsrec *find(const struct mw_dnsrec_set *set, const char *purpose,
                                    const char *name)
{
	size_t i;
	for (i = 0; i < set->count; i++)
		if (strcmp(set->rec[i].purpose, purpose) == 0 &&
		    strcmp(set->rec[i].name, name) == 0)
			return &set->rec[i];
	fail_msg("no %s record %s", purpose, name);
	return NULL;
}

/* test_defaults - what a minimal configuration publishes */
static void test_defaults(void **state)
{
	mw_config *cfg = load(base);
	struct mw_dnsrec_set set;
	mw_error err = {""};
	(void)state;
	assert_int_equal(mw_dnsrec_build(cfg, NULL, "example.org", &set, &err), 0);
	assert_int_equal(set.count, 9); /* MX SPF DMARC MTA-STS TLS-RPT + 4 SRV, no DKIM */
	assert_string_equal(find(&set, "mx", "example.org.")->value, "10 mx.example.org.");
	assert_string_equal(find(&set, "spf", "example.org.")->value, "v=spf1 mx -all");
	assert_string_equal(find(&set, "dmarc", "_dmarc.example.org.")->value,
	                    "v=DMARC1; p=none; rua=mailto:postmaster@example.org");
	assert_string_equal(find(&set, "tls-rpt", "_smtp._tls.example.org.")->value,
	                    "v=TLSRPTv1; rua=mailto:postmaster@example.org");
	assert_string_equal(find(&set, "srv", "_imaps._tcp.example.org.")->value,
	                    "0 1 993 mx.example.org.");
	assert_string_equal(find(&set, "srv", "_imap._tcp.example.org.")->value, "0 0 0 .");
	assert_string_equal(find(&set, "srv", "_submissions._tcp.example.org.")->value,
	                    "0 1 465 mx.example.org.");
	assert_string_equal(find(&set, "srv", "_submission._tcp.example.org.")->value,
	                    "0 1 587 mx.example.org.");
	assert_string_equal(set.mta_sts_policy, "version: STSv1\r\nmode: testing\r\n"
	                                        "mx: mx.example.org\r\nmax_age: 604800\r\n");
	mw_dnsrec_set_free(&set);
	mw_config_unref(&cfg);
}

/* test_policy_id - the _mta-sts id is the policy's SHA-256 prefix: it moves with the policy */
static void test_policy_id(void **state)
{
	char text[512], id1[24], id2[24], hex[65];
	unsigned char h[crypto_hash_sha256_BYTES];
	mw_config *cfg = load(base);
	mw_str p;
	mw_error err = {""};
	(void)state;
	mw_str_init(&p, 0);
	assert_int_equal(mw_dnsrec_mta_sts_policy(cfg, &p, id1, &err), 0);
	crypto_hash_sha256(h, (const unsigned char *)p.buf, p.len);
	(void)sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	hex[16] = '\0';
	assert_string_equal(id1, hex);
	mw_str_free(&p);
	mw_config_unref(&cfg);
	(void)snprintf(
	    text, sizeof(text),
	    "%smta_sts_mode = enforce\nmta_sts_mx = MX1.example.org *.backup.example.net\n", base);
	cfg = load(text);
	mw_str_init(&p, 0);
	assert_int_equal(mw_dnsrec_mta_sts_policy(cfg, &p, id2, &err), 0);
	assert_string_equal(p.buf, "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\n"
	                           "mx: *.backup.example.net\r\nmax_age: 604800\r\n");
	assert_string_not_equal(id1, id2);
	mw_str_free(&p);
	mw_config_unref(&cfg);
}

/* test_configured - outbound, policies, hosts and services as configured */
static void test_configured(void **state)
{
	char text[1024];
	struct mw_dnsrec_service svc[MW_DNSREC_SERVICES];
	mw_config *cfg;
	struct mw_dnsrec_set set;
	mw_error err = {""};
	(void)state;
	(void)snprintf(text, sizeof(text),
	               "%soutbound = 192.0.2.1, 198.51.100.0/24 2001:db8::1 out.example.net\n"
	               "spf_all = softfail\ndmarc_policy = reject\nreport_mailbox = dmarc\n"
	               "imap_host = IMAP.example.org\nclient_services = imap submission\n"
	               "mx_priority = 5\n",
	               base);
	cfg = load(text);
	assert_int_equal(mw_dnsrec_build(cfg, NULL, "example.net", &set, &err), 0);
	assert_string_equal(find(&set, "mx", "example.net.")->value, "5 mx.example.org.");
	assert_string_equal(find(&set, "spf", "example.net.")->value,
	                    "v=spf1 ip4:192.0.2.1 ip4:198.51.100.0/24 ip6:2001:db8::1 "
	                    "a:out.example.net ~all");
	assert_string_equal(find(&set, "dmarc", "_dmarc.example.net.")->value,
	                    "v=DMARC1; p=reject; rua=mailto:dmarc@example.net");
	assert_string_equal(find(&set, "srv", "_imaps._tcp.example.net.")->value, "0 0 0 .");
	assert_string_equal(find(&set, "srv", "_imap._tcp.example.net.")->value,
	                    "0 1 143 imap.example.org.");
	assert_string_equal(find(&set, "srv", "_submissions._tcp.example.net.")->value, "0 0 0 .");
	mw_dnsrec_set_free(&set);
	assert_int_equal(mw_dnsrec_services(cfg, svc, &err), 0);
	assert_true(svc[1].offered && !svc[1].implicit_tls && svc[1].port == 143);
	assert_false(svc[0].offered);
	assert_true(mw_dnsrec_domain_served(cfg, "example.net"));
	assert_false(mw_dnsrec_domain_served(cfg, "example.com"));
	assert_false(mw_dnsrec_domain_served(cfg, "org"));
	mw_config_unref(&cfg);
}

/* test_refused - configurations that cannot give records say which key is wrong */
static void test_refused(void **state)
{
	static const struct {
		const char *extra, *msg;
	} bad[] = {
	    {"mx_host = \"\"\n", "[mailhost] mx_host is not set"},
	    {"mx_host = \"mx example\"\n", "[mailhost] mx_host is not a host name"},
	    {"outbound = 192.0.2.1/33x\n", "[mailhost] outbound"},
	    {"outbound = -bad-.example\n", "[mailhost] outbound"},
	    {"client_services = pop3\n", "[mailhost] client_services"},
	    {"report_mailbox = a@b\n", "[mailhost] report_mailbox"},
	    {"report_mailbox = \"a; ruf=mailto:x@evil\"\n", "[mailhost] report_mailbox"},
	    {"mta_sts_mx = \"*evil\"\n", "[mailhost] mta_sts_mx"},
	    {"imap_host = \"a b\"\n", "[mailhost] imap_host"},
	};
	char text[512];
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(bad); i++) {
		struct mw_dnsrec_set set;
		mw_error err = {""};
		mw_config *cfg;
		(void)snprintf(text, sizeof(text), "%s%s",
		               strstr(bad[i].extra, "mx_host") != NULL ? BASE_NO_MX : base,
		               bad[i].extra);
		cfg = load(text);
		if (mw_dnsrec_build(cfg, NULL, "example.org", &set, &err) != -1)
			fail_msg("accepted: %s", bad[i].extra);
		if (strstr(err.msg, bad[i].msg) == NULL)
			fail_msg("%s: %s", bad[i].extra, err.msg);
		assert_int_equal(set.count, 0);
		mw_config_unref(&cfg);
	}
}

/* test_zone_lines - TXT quoted, split into strings of at most 255 bytes */
static void test_zone_lines(void **state)
{
	struct mw_dnsrec r;
	char value[700];
	mw_str out;
	(void)state;
	memset(&r, 0, sizeof(r));
	(void)mw_strlcpy(r.name, "s._domainkey.example.org.", sizeof(r.name));
	r.type = "TXT";
	r.purpose = "dkim";
	memset(value, 'A', 600);
	value[0] = '"';
	value[1] = '\\';
	value[600] = '\0';
	r.value = value;
	mw_str_init(&out, 0);
	mw_dnsrec_zone_line(&r, &out);
	assert_int_equal(strncmp(out.buf, "s._domainkey.example.org. IN TXT ( \"\\\"\\\\AAA", 43),
	                 0);
	/* 255 + 255 + 90 bytes of text, two escapes: three strings */
	assert_int_equal(out.len,
	                 strlen("s._domainkey.example.org. IN TXT ( ") + 600 + 2 + 6 + 2 + 2);
	assert_string_equal(out.buf + out.len - 2, " )");
	mw_str_free(&out);
	r.type = "SRV";
	r.value = (char *)"0 0 0 .";
	mw_str_init(&out, 0);
	mw_dnsrec_zone_line(&r, &out);
	assert_string_equal(out.buf, "s._domainkey.example.org. IN SRV 0 0 0 .");
	mw_str_free(&out);
}

/* test_check_without_answer - a resolver that does not answer: every record is "error" */
static void test_check_without_answer(void **state)
{
	mw_config *cfg = load(base);
	struct mw_dnsrec_set set;
	mw_error err = {""};
	mw_dns *dns = mw_dns_new("127.0.0.1@9", 300, &err);
	json_t *j;
	size_t i;
	(void)state;
	assert_non_null(dns);
	assert_int_equal(mw_dnsrec_build(cfg, NULL, "example.org", &set, &err), 0);
	assert_int_equal(mw_dnsrec_check(&set, dns, &err), 0);
	for (i = 0; i < set.count; i++) {
		assert_int_equal(set.rec[i].status, MW_DNSREC_ERROR);
		assert_non_null(set.rec[i].difference);
	}
	j = mw_dnsrec_json(&set);
	assert_true(json_is_false(json_object_get(j, "ok")));
	assert_string_equal(json_string_value(json_object_get(
	                        json_array_get(json_object_get(j, "records"), 0), "status")),
	                    "error");
	json_decref(j);
	mw_dnsrec_set_free(&set);
	mw_dns_free(&dns);
	mw_config_unref(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),   cmocka_unit_test(test_policy_id),
	    cmocka_unit_test(test_configured), cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_zone_lines), cmocka_unit_test(test_check_without_answer),
	};
	MW_RUN_TESTS(tests);
}
