/* test-plugin-verdict.c - the Dovecot plugin's header parsing (dovecot-plugin/mw-verdict.c):
   X-Mailwarden-Spam, X-Mailwarden-Virus, Authentication-Results of our authserv-id only,
   malformed and over-long values refused. */
#include "mw-build.h"
#include "mw-verdict.h"

#include "mw-test.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *in;
	int ret;
	bool spam;
	const char *tests;
} spam_cases[] = {
    {"yes; score=7.5; required=5.0; tests=BAYES_99,FROM_LOOKALIKE", 0, true,
     "BAYES_99,FROM_LOOKALIKE"},
    {"no; score=0.1; required=5.0; tests=", 0, false, ""},
    {"YES", 0, true, ""},
    {" no ;score=1", 0, false, ""},
    {"yes; tests=A;", 0, true, "A"},
    {"yes;\r\n\ttests=A_1,B-2", 0, true, "A_1,B-2"},
    {"maybe; score=3", -1, false, ""},
    {"", -1, false, ""},
    {"yesno", -1, false, ""},
    {"yes; tests=A B", -1, false, ""},
    {"yes; tests=A;B", 0, true, "A"},
    {"yes; tests=<script>", -1, false, ""},
};

/* test_spam - the spam verdict header */
static void test_spam(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(spam_cases); i++) {
		struct mw_spam_verdict v;
		mw_error err = {""};
		int ret = mw_verdict_parse_spam(spam_cases[i].in, &v, &err);
		if (ret != spam_cases[i].ret)
			fail_msg("spam case %zu: ret %d (%s)", i, ret, err.msg);
		if (ret == 0) {
			assert_int_equal(v.spam, spam_cases[i].spam);
			assert_string_equal(v.tests, spam_cases[i].tests);
		}
	}
}

/* test_spam_limits - over-long headers and test lists are refused, not cut */
static void test_spam_limits(void **state)
{
	static char big[MW_VERDICT_HEADER_MAX + 64];
	struct mw_spam_verdict v;
	size_t n;
	(void)state;
	n = (size_t)snprintf(big, sizeof(big), "yes; tests=");
	memset(big + n, 'A', MW_VERDICT_TESTS_MAX + 1);
	big[n + MW_VERDICT_TESTS_MAX + 1] = '\0';
	assert_int_equal(mw_verdict_parse_spam(big, &v, NULL), -1);
	big[n + MW_VERDICT_TESTS_MAX] = '\0';
	assert_int_equal(mw_verdict_parse_spam(big, &v, NULL), 0);
	assert_int_equal(strlen(v.tests), MW_VERDICT_TESTS_MAX);
	memset(big, ' ', sizeof(big) - 1);
	memcpy(big, "yes", 3);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(mw_verdict_parse_spam(big, &v, NULL), -1);
	assert_int_equal(mw_verdict_parse_spam(NULL, &v, NULL), -1);
}

/* test_virus - the virus verdict header */
static void test_virus(void **state)
{
	struct mw_virus_verdict v;
	(void)state;
	assert_int_equal(mw_verdict_parse_virus("clean", &v, NULL), 0);
	assert_false(v.infected);
	assert_int_equal(mw_verdict_parse_virus(" infected (Test.Sig.UNOFFICIAL) ", &v, NULL), 0);
	assert_true(v.infected);
	assert_string_equal(v.signature, "Test.Sig.UNOFFICIAL");
	assert_int_equal(mw_verdict_parse_virus("INFECTED", &v, NULL), 0);
	assert_true(v.infected);
	assert_string_equal(v.signature, "");
	assert_int_equal(mw_verdict_parse_virus("infected (unclosed", &v, NULL), -1);
	assert_int_equal(mw_verdict_parse_virus("infectedX", &v, NULL), -1);
	assert_int_equal(mw_verdict_parse_virus("dirty", &v, NULL), -1);
	assert_int_equal(mw_verdict_parse_virus("", &v, NULL), -1);
}

struct ar_case {
	const char *in;
	int ret;
	bool dkim_pass, dkim_fail, dmarc_fail, spf_fail;
};

static const struct ar_case ar_cases[] = {
    {"mx.example.org; dkim=fail header.d=bank.example; dmarc=fail (p=reject) "
     "header.from=bank.example; spf=pass smtp.mailfrom=x@y.example",
     1, false, true, true, false},
    {"MX.Example.ORG 1; dkim=pass header.d=a.example; dkim=fail header.d=b.example", 1, true, true,
     false, false},
    {"mx.example.org; none", 1, false, false, false, false},
    {"mx.example.org; spf=fail smtp.mailfrom=a@b.example", 1, false, false, false, true},
    {"mx.example.org; spf=softfail smtp.mailfrom=a@b.example", 1, false, false, false, false},
    {"mx.example.org; dkim=permerror (bad sig)", 1, false, true, false, false},
    {"mx.example.org; dkim/1=fail", 1, false, true, false, false},
    /* comments and quotes hide what looks like results */
    {"mx.example.org; dkim=pass (dmarc=fail; spf=fail) header.d=x", 1, true, false, false, false},
    {"mx.example.org; dkim=pass header.b=\"dmarc=fail;x\"", 1, true, false, false, false},
    {"mx.example.org (nested (comment)); dmarc=fail", 1, false, false, true, false},
    /* someone else's header is not ours */
    {"other.example; dkim=fail; dmarc=fail", 0, false, false, false, false},
    {"mx.example.org.evil; dmarc=fail", 0, false, false, false, false},
    /* malformed */
    {"mx.example.org; dmarc=fail (unclosed", -1, false, false, false, false},
    {"mx.example.org; \"unclosed", -1, false, false, false, false},
    {"mx.example.org; garbage", -1, false, false, false, false},
    {"; dmarc=fail", -1, false, false, false, false},
};

/* test_authres - only our authserv-id counts; comments and quotes are honoured */
static void test_authres(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(ar_cases); i++) {
		struct mw_auth_verdict v;
		mw_error err = {""};
		int ret;
		memset(&v, 0, sizeof(v));
		ret = mw_verdict_parse_authres(ar_cases[i].in, "mx.example.org", &v, &err);
		if (ret != ar_cases[i].ret)
			fail_msg("A-R case %zu: ret %d (%s)", i, ret, err.msg);
		if (v.dkim_pass != ar_cases[i].dkim_pass || v.dkim_fail != ar_cases[i].dkim_fail ||
		    v.dmarc_fail != ar_cases[i].dmarc_fail || v.spf_fail != ar_cases[i].spf_fail)
			fail_msg("A-R case %zu: wrong results", i);
	}
}

/* test_authres_no_id - without a configured authserv-id nothing is trusted */
static void test_authres_no_id(void **state)
{
	struct mw_auth_verdict v;
	(void)state;
	memset(&v, 0, sizeof(v));
	assert_int_equal(mw_verdict_parse_authres("mx.example.org; dmarc=fail", "", &v, NULL), 0);
	assert_int_equal(mw_verdict_parse_authres("mx.example.org; dmarc=fail", NULL, &v, NULL), 0);
	assert_false(v.dmarc_fail);
}

/* test_has_test - test-name lists */
static void test_has_test(void **state)
{
	(void)state;
	assert_true(mw_verdict_has_test("BAYES_99,FROM_LOOKALIKE", "FROM_LOOKALIKE,PHISHING"));
	assert_true(mw_verdict_has_test("phishing", "FROM_LOOKALIKE PHISHING"));
	assert_false(mw_verdict_has_test("FROM_LOOKALIKE_NOT", "FROM_LOOKALIKE"));
	assert_false(mw_verdict_has_test("XFROM_LOOKALIKE", "FROM_LOOKALIKE"));
	assert_false(mw_verdict_has_test("", "FROM_LOOKALIKE"));
	assert_false(mw_verdict_has_test("A,B", ""));
	assert_false(mw_verdict_has_test(NULL, "A"));
	assert_true(mw_verdict_has_test("A,,B", "B"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spam),          cmocka_unit_test(test_spam_limits),
	    cmocka_unit_test(test_virus),         cmocka_unit_test(test_authres),
	    cmocka_unit_test(test_authres_no_id), cmocka_unit_test(test_has_test),
	};
	MW_RUN_TESTS(tests);
}
