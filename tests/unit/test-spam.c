/* test-spam.c - lib/mw-spam: a table of messages with the tests each must fire and the score,
   list lookups through a fake resolver (listed, not listed, failing), the lookup cap, the
   classifier bands and its absence, the weights from the config table. */
#include "mw-build.h"
#include "mw-spam.h"
#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fake block lists: names listed (127.0.0.2), names that fail, everything else absent. */
static const char *const listed[] = {
    "2.2.0.192.bl.test",           /* client 192.0.2.2 */
    "spammer.example.bl-dom.test", /* envelope domain */
    "badlinks.example.uri.test",   /* URL registrable domain */
};
static const char *const failing[] = {"3.2.0.192.bl.test"};
static const char *const weird[] = {"4.2.0.192.bl.test"}; /* answers 127.255.255.254 */
static unsigned queries;

/* fake_dns - the lists above */
static int fake_dns(void *ctx, const char *name, unsigned char a_r[4], mw_error *error_r)
{
	(void)ctx;
	queries++;
	for (size_t i = 0; i < MW_N_ELEMENTS(failing); i++)
		if (strcmp(name, failing[i]) == 0) {
			mw_error_set(error_r, "SERVFAIL");
			return -1;
		}
	for (size_t i = 0; i < MW_N_ELEMENTS(weird); i++)
		if (strcmp(name, weird[i]) == 0) {
			memcpy(a_r, "\x7f\xff\xff\xfe", 4);
			return 1;
		}
	for (size_t i = 0; i < MW_N_ELEMENTS(listed); i++)
		if (strcmp(name, listed[i]) == 0) {
			memcpy(a_r, "\x7f\x00\x00\x02", 4);
			return 1;
		}
	return 0;
}

static double fake_p = -1;
static int fake_rc = 1;

/* fake_classify - a fixed answer */
static int fake_classify(void *ctx, const char *msg, size_t len, double *p_r, mw_error *error_r)
{
	(void)ctx, (void)msg, (void)len;
	*p_r = fake_p;
	if (fake_rc < 0)
		mw_error_set(error_r, "store down");
	return fake_rc;
}

/* settings - the defaults of the key table plus the test lists */
static void settings(struct mw_spam_settings *s)
{
	static const char conf[] = "[milter]\nlocal_domains = mailwarden.test example.org\n"
	                           "[spam]\ndnsbl_zones = bl.test\nrhsbl_zones = bl-dom.test\n"
	                           "uribl_zones = uri.test\n";
	mw_error err = {""};
	mw_config *cfg = mw_config_load_string(conf, strlen(conf), "test.conf", &err);
	assert_non_null(cfg);
	assert_int_equal(mw_spam_settings_from_config(cfg, s, &err), 0);
	mw_config_unref(&cfg);
	s->dns = fake_dns;
	s->classify = fake_classify;
}

#define HDRS_OK "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"

struct spam_case {
	const char *name;
	const char *msg;
	const char *client_ip, *helo, *envfrom;
	const char *tests; /* exactly these, in this order */
	long score;        /* hundredths */
};

static const struct spam_case cases[] = {
    {"clean",
     "From: Alice <alice@example.com>\r\nTo: b@example.org\r\n" HDRS_OK
     "Subject: lunch\r\n\r\nSee you at noon.\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "", 0},
    {"missing date and message-id", "From: alice@example.com\r\nSubject: x\r\n\r\nhi\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "MISSING_DATE,MISSING_MID", 200},
    {"client on the dnsbl", "From: alice@example.com\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.2",
     "mail.example.com", "<alice@example.com>", "RCVD_IN_DNSBL", 400},
    {"dnsbl failure adds nothing", "From: alice@example.com\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.3",
     "mail.example.com", "<alice@example.com>", "", 0},
    {"dnsbl error code adds nothing", "From: alice@example.com\r\n" HDRS_OK "\r\nhi\r\n",
     "192.0.2.4", "mail.example.com", "<alice@example.com>", "", 0},
    {"envelope domain on the rhsbl", "From: bob@spammer.example\r\n" HDRS_OK "\r\nhi\r\n",
     "192.0.2.1", "mail.example.com", "<bob@spammer.example>", "RHSBL_SENDER", 300},
    {"From domain on the rhsbl", "From: bob@spammer.example\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.example.com", "<bounce@other.example>", "RHSBL_SENDER", 300},
    {"URL domain on the uribl",
     "From: alice@example.com\r\n" HDRS_OK "\r\nclick https://www.BadLinks.example/win?x=1 now\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "URIBL", 400},
    {"HELO IP literal", "From: alice@example.com\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "[192.0.2.1]", "<alice@example.com>", "HELO_IP_LITERAL", 150},
    {"HELO bare IP", "From: alice@example.com\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1", "192.0.2.1",
     "<alice@example.com>", "HELO_IP_LITERAL", 150},
    {"HELO claims a local domain", "From: alice@example.com\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mx.mailwarden.test", "<alice@example.com>", "HELO_LOCAL_FORGED", 300},
    {"display name holds another address",
     "From: \"ceo@mailwarden.test\" <x@evil.example>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.evil.example", "<x@evil.example>", "FROM_DISPLAY_ADDR,FROM_LOOKALIKE", 500},
    /* FROM_DISPLAY_ADDR: only an address of another organisation with a real domain */
    {"display name shows another address of the sender's domain",
     "From: \"David&Tom@fool.example.com\"<Subscriber@fool.example.com>\r\n" HDRS_OK "\r\nhi\r\n",
     "192.0.2.1", "mail.example.com", "<x@example.com>", "", 0},
    {"display name shows an address of the sender's organisation",
     "From: \"'news@lists.example.com'\" <bounce@mail.example.com>\r\n" HDRS_OK "\r\nhi\r\n",
     "192.0.2.1", "mail.example.com", "<x@example.com>", "", 0},
    {"display name shows a feed's name@host",
     "From: \"hyatt@mozilla\" <rssfeeds@example.com>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.example.com", "<x@example.com>", "", 0},
    {"display name shows another organisation in punctuation",
     "From: \"'ceo@bank.example.net'\" <x@example.com>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.example.com", "<x@example.com>", "FROM_DISPLAY_ADDR", 200},
    {"display name shows an own address, then another organisation's",
     "From: \"x@mail.example.com for ceo@bank.example.net\" <x@example.com>\r\n" HDRS_OK
     "\r\nhi\r\n",
     "192.0.2.1", "mail.example.com", "<x@example.com>", "FROM_DISPLAY_ADDR", 200},
    {"display name shows another user of the same free-mail domain",
     "From: \"boss@gmail.com\" <x@gmail.com>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.example.com", "<x@gmail.com>", "FROM_DISPLAY_ADDR", 200},
    {"From look-alike of a local domain",
     "From: Support <help@rnailwarden.test>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.evil.example", "<help@rnailwarden.test>", "FROM_LOOKALIKE", 300},
    {"From edit distance one", "From: Support <help@examp1e.org>\r\n" HDRS_OK "\r\nhi\r\n",
     "192.0.2.1", "mail.evil.example", "<help@examp1e.org>", "FROM_LOOKALIKE", 300},
    {"local domain in front of a foreign one",
     "From: IT <it@example.org.evil.example>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.evil.example", "<it@example.org.evil.example>", "FROM_LOOKALIKE", 300},
    {"subdomain of a local domain is not a look-alike",
     "From: IT <it@lists.example.org>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1", "mail.example.com",
     "<it@lists.example.org>", "", 0},
    {"display name names a local domain",
     "From: \"Mailwarden.test Helpdesk\" <x@evil.example>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.evil.example", "<x@evil.example>", "FROM_LOOKALIKE", 300},
    {"HTML only with hidden text",
     "From: alice@example.com\r\n" HDRS_OK "MIME-Version: 1.0\r\n"
     "Content-Type: text/html\r\n\r\n<p>Buy</p><div style=\"display:none\">ham words</div>\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "HTML_HIDDEN", 200},
    {"HTML only without hidden text",
     "From: alice@example.com\r\n" HDRS_OK "MIME-Version: 1.0\r\n"
     "Content-Type: text/html\r\n\r\n<p>Hello</p>\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "", 0},
    {"executable with a double extension",
     "From: alice@example.com\r\n" HDRS_OK "MIME-Version: 1.0\r\n"
     "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
     "invoice\r\n--b\r\nContent-Type: application/octet-stream\r\n"
     "Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\r\nMZ\r\n--b--\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "ATTACH_EXECUTABLE,ATTACH_DOUBLE_EXT",
     700},
    {"plain executable",
     "From: alice@example.com\r\n" HDRS_OK "MIME-Version: 1.0\r\n"
     "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
     "tool\r\n--b\r\nContent-Type: application/octet-stream\r\n"
     "Content-Disposition: attachment; filename=\"setup.SCR\"\r\n\r\nMZ\r\n--b--\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "ATTACH_EXECUTABLE", 400},
    {"a pdf is no executable",
     "From: alice@example.com\r\n" HDRS_OK "MIME-Version: 1.0\r\n"
     "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
     "doc\r\n--b\r\nContent-Type: application/pdf\r\n"
     "Content-Disposition: attachment; filename=\"report.exe.pdf\"\r\n\r\n%PDF\r\n--b--\r\n",
     "192.0.2.1", "mail.example.com", "<alice@example.com>", "", 0},
    {"Reply-To on a free-mail domain",
     "From: CEO <ceo@example.com>\r\nReply-To: ceo.private@gmail.com\r\n" HDRS_OK "\r\nhi\r\n",
     "192.0.2.1", "mail.example.com", "<ceo@example.com>", "FREEMAIL_REPLYTO", 200},
    {"Reply-To the same free-mail address",
     "From: x@gmail.com\r\nReply-To: X <x@gmail.com>\r\n" HDRS_OK "\r\nhi\r\n", "192.0.2.1",
     "mail.example.com", "<x@gmail.com>", "", 0},
    {"everything at once", "From: \"ceo@mailwarden.test\" <x@spammer.example>\r\n\r\nhi\r\n",
     "192.0.2.2", "[192.0.2.2]", "<x@spammer.example>",
     "HELO_IP_LITERAL,MISSING_DATE,MISSING_MID,FROM_DISPLAY_ADDR,FROM_LOOKALIKE,RCVD_IN_DNSBL,"
     "RHSBL_SENDER",
     150 + 100 + 100 + 200 + 300 + 400 + 300},
};

static void test_table(void **state)
{
	struct mw_spam_settings s;
	struct mw_spam_result r;
	(void)state;
	settings(&s);
	fake_rc = 1;
	for (size_t i = 0; i < MW_N_ELEMENTS(cases); i++) {
		const struct spam_case *c = &cases[i];
		struct mw_spam_input in = {c->msg,       strlen(c->msg), NULL,
		                           c->client_ip, c->helo,        c->envfrom};
		mw_spam_score(&s, &in, &r);
		if (strcmp(r.tests, c->tests) != 0 || r.score != c->score)
			fprintf(stderr,
			        "case \"%s\": tests=%s score=%ld, want tests=%s score=%ld\n",
			        c->name, r.tests, r.score, c->tests, c->score);
		assert_string_equal(r.tests, c->tests);
		assert_int_equal(r.score, c->score);
		assert_int_equal(r.spam, c->score >= 500);
	}
}

static void test_dns_failure_counted(void **state)
{
	struct mw_spam_settings s;
	struct mw_spam_result r;
	static const char msg[] = "From: a@example.com\r\n" HDRS_OK "\r\nhi\r\n";
	struct mw_spam_input in = {msg,         strlen(msg),     NULL,
	                           "192.0.2.3", "h.example.com", "<a@example.com>"};
	(void)state;
	settings(&s);
	mw_spam_score(&s, &in, &r);
	assert_int_equal(r.score, 0);
	assert_int_equal(r.dns_failures, 1);
	assert_non_null(strstr(r.dns_error, "bl.test: SERVFAIL"));
	in.client_ip = "192.0.2.4";
	mw_spam_score(&s, &in, &r);
	assert_int_equal(r.score, 0);
	assert_int_equal(r.dns_failures, 1);
	assert_non_null(strstr(r.dns_error, "127.255.255.254"));
}

static void test_lookup_cap(void **state)
{
	struct mw_spam_settings s;
	struct mw_spam_result r;
	mw_str msg;
	(void)state;
	settings(&s);
	s.max_lookups = 5;
	mw_str_init(&msg, 0);
	(void)mw_str_appends(&msg, "From: a@example.com\r\n" HDRS_OK "\r\n");
	for (int i = 0; i < 50; i++)
		(void)mw_str_appendf(&msg, "http://d%d.example/ ", i);
	(void)mw_str_appends(&msg, "https://badlinks.example/\r\n");
	struct mw_spam_input in = {msg.buf,     msg.len,         NULL,
	                           "192.0.2.1", "h.example.com", "<a@example.com>"};
	queries = 0;
	mw_spam_score(&s, &in, &r);
	assert_int_equal(queries, 5);
	assert_int_equal(r.lookups, 5);
	assert_true(r.lookups_capped);
	assert_false(r.fired[MW_SPAM_URIBL]); /* the listed URL was past the cap */
	mw_str_free(&msg);
}

static void test_auth_results(void **state)
{
	struct mw_spam_settings s;
	struct mw_spam_result r;
	struct mw_auth_results a;
	static const char msg[] = "From: a@example.com\r\n" HDRS_OK "\r\nhi\r\n";
	struct mw_spam_input in = {msg,         strlen(msg),     &a,
	                           "192.0.2.1", "h.example.com", "<a@example.com>"};
	(void)state;
	settings(&s);
	memset(&a, 0, sizeof(a));
	a.spf = MW_AUTH_FAIL;
	a.dmarc = MW_AUTH_FAIL;
	a.dkim_count = 1;
	a.dkim[0].result = MW_AUTH_FAIL;
	mw_spam_score(&s, &in, &r);
	assert_string_equal(r.tests, "SPF_FAIL,DKIM_INVALID,DMARC_FAIL");
	assert_int_equal(r.score, 600);
	assert_true(r.spam);
	a.spf = MW_AUTH_SOFTFAIL;
	a.dmarc = MW_AUTH_PASS;
	a.dkim_count = 2;
	a.dkim[1].result = MW_AUTH_PASS; /* one good signature: the bad one does not count */
	mw_spam_score(&s, &in, &r);
	assert_string_equal(r.tests, "SPF_SOFTFAIL,DMARC_PASS");
	assert_int_equal(r.score, 0);
	a.spf = MW_AUTH_TEMPERROR;
	a.dmarc = MW_AUTH_TEMPERROR;
	mw_spam_score(&s, &in, &r);
	assert_string_equal(r.tests, "");
}

static void test_bayes_bands(void **state)
{
	static const struct {
		double p;
		const char *tests;
		long score;
	} bands[] = {
	    {0.0, "BAYES_00", -150},
	    {0.0099, "BAYES_00", -150},
	    {0.01, "BAYES_20", -50},
	    {0.05, "BAYES_20", -50},
	    {0.2, "", 0},
	    {0.4999, "", 0},
	    {0.5, "BAYES_50", 150},
	    {0.6699, "BAYES_50", 150},
	    {0.67, "BAYES_67", 500},
	    {0.7999, "BAYES_67", 500},
	    {0.8, "BAYES_80", 550},
	    {0.85, "BAYES_80", 550},
	    {0.97, "BAYES_95", 600},
	    {0.999, "BAYES_99", 700},
	    {1.0, "BAYES_99", 700},
	};
	struct mw_spam_settings s;
	struct mw_spam_result r;
	static const char msg[] = "From: a@example.com\r\n" HDRS_OK "\r\nhi\r\n";
	struct mw_spam_input in = {msg, strlen(msg), NULL, "", "", NULL};
	(void)state;
	settings(&s);
	fake_rc = 0;
	for (size_t i = 0; i < MW_N_ELEMENTS(bands); i++) {
		fake_p = bands[i].p;
		mw_spam_score(&s, &in, &r);
		assert_string_equal(r.tests, bands[i].tests);
		assert_int_equal(r.score, bands[i].score);
		assert_false(r.classifier_skipped);
		/* with the default weights the classifier alone tags from 0.67 up (issue 10:
		   recall >= 97 % at FPR <= 0.2 % on the bench folds), and only from there */
		assert_int_equal(r.spam, bands[i].p >= 0.67);
	}
	fake_rc = 1; /* untrained */
	fake_p = -1;
	mw_spam_score(&s, &in, &r);
	assert_string_equal(r.tests, "");
	assert_true(r.classifier_skipped);
	assert_string_equal(r.classifier_error, "");
	fake_rc = -1; /* store down */
	mw_spam_score(&s, &in, &r);
	assert_string_equal(r.tests, "");
	assert_true(r.classifier_skipped);
	assert_string_equal(r.classifier_error, "store down");
	fake_rc = 1;
}

static void test_settings_and_header(void **state)
{
	static const char bad[] = "[spam]\nscore_uribl = 1.234\n";
	static const char mine[] = "[spam]\nscore_uribl = -0.5\nspam_score = 7\nreject_score = 0\n";
	struct mw_spam_settings s;
	struct mw_spam_result r;
	struct mw_hdr_spam h;
	mw_error err = {""};
	mw_config *cfg;
	mw_str out;
	long v;
	(void)state;
	cfg = mw_config_load_string(bad, strlen(bad), "t.conf", &err);
	assert_non_null(cfg);
	assert_int_equal(mw_spam_settings_from_config(cfg, &s, &err), -1);
	assert_non_null(strstr(err.msg, "score_uribl"));
	mw_config_unref(&cfg);
	cfg = mw_config_load_string(mine, strlen(mine), "t.conf", &err);
	assert_int_equal(mw_spam_settings_from_config(cfg, &s, &err), 0);
	mw_config_unref(&cfg);
	assert_int_equal(s.weight[MW_SPAM_URIBL], -50);
	assert_int_equal(s.required, 700);
	assert_int_equal(s.reject, 0);
	assert_int_equal(mw_spam_parse_points("3", &v), 0);
	assert_int_equal(v, 300);
	assert_int_equal(mw_spam_parse_points("-0.05", &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(mw_spam_parse_points("", &v), -1);
	assert_int_equal(mw_spam_parse_points("1.", &v), -1);
	assert_int_equal(mw_spam_parse_points("1e3", &v), -1);
	assert_int_equal(mw_spam_parse_points("9999999", &v), -1);
	/* the header round-trips through the shared parser */
	memset(&r, 0, sizeof(r));
	r.score = 812;
	r.spam = true;
	(void)mw_strlcpy(r.tests, "RCVD_IN_DNSBL,MISSING_MID", sizeof(r.tests));
	mw_str_init(&out, 0);
	assert_int_equal(mw_spam_header(&s, &r, &out, &err), 0);
	assert_int_equal(mw_hdr_spam_parse(out.buf, out.len, &h, &err), 0);
	assert_true(h.spam);
	assert_int_equal(h.score, 812);
	assert_int_equal(h.required, 700);
	assert_string_equal(h.tests, "RCVD_IN_DNSBL,MISSING_MID");
	mw_str_free(&out);
}

/* test_spamd_backend - spam_backend and spamd_user from the config; spamd's verdict and an
   unscored acceptance as results, their headers through the shared parser */
static void test_spamd_backend(void **state)
{
	static const char *const bad[] = {
	    "[spam]\nspam_backend = spamd\n",
	    "[spam]\nspam_backend = spamd:localhost:783\n",
	    "[spam]\nspam_backend = spamassassin\n",
	    "[spam]\nspamd_user = \"a b\"\n",
	    "[spam]\nspamd_user = a;b\n",
	};
	static const char good[] =
	    "[spam]\nspam_backend = spamd:127.0.0.1:783\nspamd_user = filter\n"
	    "spamd_timeout = 7s\nspam_score = 6\n";
	struct mw_spam_settings s;
	struct mw_spamd_result sr;
	struct mw_spam_result r;
	struct mw_hdr_spam h;
	mw_error err = {""};
	mw_config *cfg;
	mw_str out;
	(void)state;
	for (size_t i = 0; i < MW_N_ELEMENTS(bad); i++) {
		cfg = mw_config_load_string(bad[i], strlen(bad[i]), "t.conf", &err);
		assert_non_null(cfg);
		if (mw_spam_settings_from_config(cfg, &s, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(err.msg, "[spam] spam"));
		mw_config_unref(&cfg);
	}
	cfg = mw_config_load_string(good, strlen(good), "t.conf", &err);
	assert_non_null(cfg);
	assert_int_equal(mw_spam_settings_from_config(cfg, &s, &err), 0);
	mw_config_unref(&cfg);
	assert_int_equal(s.backend, MW_SPAM_BACKEND_SPAMD);
	assert_string_equal(s.spamd.user, "filter");
	assert_int_equal(s.spamd.timeout_ms, 7000);
	/* spamd's own verdict and threshold do not count: ours do */
	memset(&sr, 0, sizeof(sr));
	sr.score = 550;
	sr.required = 500;
	sr.spam = true;
	(void)mw_strlcpy(sr.tests, "MW_TEST_SPAMWORD,MISSING_MID", sizeof(sr.tests));
	mw_spam_from_spamd(&s, &sr, &r);
	assert_false(r.spam);
	assert_int_equal(r.score, 550);
	sr.score = 600;
	mw_spam_from_spamd(&s, &sr, &r);
	assert_true(r.spam);
	mw_str_init(&out, 0);
	assert_int_equal(mw_spam_header(&s, &r, &out, &err), 0);
	assert_int_equal(mw_hdr_spam_parse(out.buf, out.len, &h, &err), 0);
	assert_true(h.spam);
	assert_int_equal(h.score, 600);
	assert_int_equal(h.required, 600);
	assert_string_equal(h.tests, "MW_TEST_SPAMWORD,MISSING_MID");
	mw_spam_unscored("SPAMD_UNAVAILABLE", &r);
	mw_str_reset(&out);
	assert_int_equal(mw_spam_header(&s, &r, &out, &err), 0);
	assert_string_equal(out.buf, "no; score=0.00; required=6.00; tests=SPAMD_UNAVAILABLE");
	mw_str_free(&out);
	/* the default stays the built-in scorer */
	cfg = mw_config_load_string("", 0, "t.conf", &err);
	assert_int_equal(mw_spam_settings_from_config(cfg, &s, &err), 0);
	mw_config_unref(&cfg);
	assert_int_equal(s.backend, MW_SPAM_BACKEND_BUILTIN);
}

int main(void)
{
	const struct CMUnitTest t[] = {
	    cmocka_unit_test(test_table),         cmocka_unit_test(test_dns_failure_counted),
	    cmocka_unit_test(test_lookup_cap),    cmocka_unit_test(test_auth_results),
	    cmocka_unit_test(test_bayes_bands),   cmocka_unit_test(test_settings_and_header),
	    cmocka_unit_test(test_spamd_backend),
	};
	MW_RUN_TESTS(t);
}
