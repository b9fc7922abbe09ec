/* test-headers.c - lib/mw-headers: the one printer and parser of Authentication-Results,
   X-Mailwarden-Spam and X-Mailwarden-Virus shared by the milter and the Dovecot plugin.
   Round trips for every verdict combination; a hostile-input table for the authserv-id
   (what the milter deletes and what the plugin believes must be the same question, answered
   by the same code); which of several headers the plugin believes; limits, NUL and 8-bit. */
#include "mw-build.h"
#include "mw-headers.h"

#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OURS "mail.example.org"

/* ---- X-Mailwarden-Spam ---------------------------------------------------------------- */

static const struct {
	const char *in;
	int ret;
	bool spam;
	long score, required;
	const char *tests;
} spam_cases[] = {
    {"yes; score=7.5; required=5.0; tests=BAYES_99,FROM_LOOKALIKE", 0, true, 750, 500,
     "BAYES_99,FROM_LOOKALIKE"},
    {"no; score=0.1; required=5.0; tests=", 0, false, 10, 500, ""},
    {"YES", 0, true, 0, 0, ""},
    {" no ;score=1", 0, false, 100, 0, ""},
    {"yes; tests=A;", 0, true, 0, 0, "A"},
    {"yes;\r\n\ttests=A_1,B-2", 0, true, 0, 0, "A_1,B-2"},
    {"no; score=-12.25; required=5", 0, false, -1225, 500, ""},
    {"yes; future=whatever; tests=X", 0, true, 0, 0, "X"},
    {"maybe; score=3", -1, false, 0, 0, ""},
    {"", -1, false, 0, 0, ""},
    {"yesno", -1, false, 0, 0, ""},
    {"yes; tests=A,\r\n\tB,\n\tC", 0, true, 0, 0, "A,B,C"},
    {"yes; tests=A B", -1, false, 0, 0, ""},
    {"yes; tests=A\r\n\t,B", -1, false, 0, 0, ""},
    {"yes; tests=A;B", -1, false, 0, 0, ""},
    {"yes; tests=<script>", -1, false, 0, 0, ""},
    {"yes; tests=A,,B", -1, false, 0, 0, ""},
    {"yes; tests=A; tests=B", -1, false, 0, 0, ""},
    {"yes; score=1; score=2", -1, false, 0, 0, ""},
    {"yes; score=1.234", -1, false, 0, 0, ""},
    {"yes; score=1e9", -1, false, 0, 0, ""},
    {"yes; score=99999999", -1, false, 0, 0, ""},
    {"yes; score=.5", -1, false, 0, 0, ""},
    {"yes; score=5.", -1, false, 0, 0, ""},
    {"yes; tests=A\xc3\xa9", -1, false, 0, 0, ""},
};

/* test_spam - the spam verdict header */
static void test_spam(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(spam_cases); i++) {
		struct mw_hdr_spam v;
		mw_error err = {""};
		int ret = mw_hdr_spam_parse(spam_cases[i].in, strlen(spam_cases[i].in), &v, &err);
		if (ret != spam_cases[i].ret)
			fail_msg("spam case %zu: ret %d (%s)", i, ret, err.msg);
		if (ret == 0) {
			assert_int_equal(v.spam, spam_cases[i].spam);
			assert_int_equal(v.score, spam_cases[i].score);
			assert_int_equal(v.required, spam_cases[i].required);
			assert_string_equal(v.tests, spam_cases[i].tests);
		} else {
			assert_true(err.msg[0] != '\0');
			assert_false(v.spam);
		}
	}
}

/* test_spam_limits - over-long headers and test lists are refused, not cut; NUL refused */
static void test_spam_limits(void **state)
{
	static char big[MW_HDR_VALUE_MAX + 64];
	struct mw_hdr_spam v;
	size_t n;
	(void)state;
	n = (size_t)snprintf(big, sizeof(big), "yes; tests=");
	memset(big + n, 'A', MW_HDR_TESTS_MAX + 1);
	big[n + MW_HDR_TESTS_MAX + 1] = '\0';
	assert_int_equal(mw_hdr_spam_parse(big, strlen(big), &v, NULL), -1);
	big[n + MW_HDR_TESTS_MAX] = '\0';
	assert_int_equal(mw_hdr_spam_parse(big, strlen(big), &v, NULL), 0);
	assert_int_equal(strlen(v.tests), MW_HDR_TESTS_MAX);
	memset(big, ' ', sizeof(big) - 1);
	memcpy(big, "yes", 3);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(mw_hdr_spam_parse(big, strlen(big), &v, NULL), -1);
	assert_int_equal(mw_hdr_spam_parse(NULL, 0, &v, NULL), -1);
	/* a NUL inside: what follows it must not be read past, nor the header believed */
	assert_int_equal(mw_hdr_spam_parse("no\0; tests=X", 12, &v, NULL), -1);
	assert_int_equal(mw_hdr_spam_parse("yes; tests=A\x7f", 13, &v, NULL), -1);
}

/* test_spam_folded - a long tests list is printed in lines of at most MW_HDR_FOLD_AT
   columns (unfolded, the longest allowed list made a line longer than RFC 5322's 998
   octets), and parses back to the same list */
static void test_spam_folded(void **state)
{
	static const size_t sizes[] = {1, 7, 40};
	size_t k;
	(void)state;
	for (k = 0; k < MW_N_ELEMENTS(sizes); k++) {
		struct mw_hdr_spam v, back;
		mw_error err = {""};
		mw_str out;
		size_t i, col, n = 0;
		memset(&v, 0, sizeof(v));
		v.spam = true;
		v.score = MW_HDR_SCORE_MAX;
		/* names of sizes[k] letters, as many as the longest allowed list holds */
		for (i = 0; n + sizes[k] + 1 <= MW_HDR_TESTS_MAX; i++) {
			if (n > 0)
				v.tests[n++] = ',';
			memset(v.tests + n, 'A' + (int)(i % 26), sizes[k]);
			n += sizes[k];
		}
		v.tests[n] = '\0';
		mw_str_init(&out, 0);
		assert_int_equal(mw_hdr_spam_print(&v, &out, &err), 0);
		col = sizeof("X-Mailwarden-Spam: ") - 1;
		for (i = 0; i < out.len; i++) {
			if (out.buf[i] == '\n') {
				if (out.buf[i + 1] != '\t')
					fail_msg("fold without a tab at %zu", i);
				col = 0;
				continue;
			}
			col++;
			if (col > MW_HDR_FOLD_AT)
				fail_msg("size %zu: line passes column %d: %s", sizes[k],
				         MW_HDR_FOLD_AT, out.buf);
		}
		assert_non_null(strchr(out.buf, '\n'));
		if (mw_hdr_spam_parse(out.buf, out.len, &back, &err) != 0 ||
		    !mw_hdr_spam_equal(&v, &back))
			fail_msg("size %zu: folded list does not parse back (%s)", sizes[k],
			         err.msg);
		mw_str_free(&out);
	}
}

/* test_spam_round_trip - print -> parse -> equal for every verdict, sign and tests list */
static void test_spam_round_trip(void **state)
{
	static const long scores[] = {
	    0, 1, -1, 99, 100, 750, -1225, MW_HDR_SCORE_MAX, -MW_HDR_SCORE_MAX};
	static const char *const tests[] = {"", "A", "BAYES_99,FROM_LOOKALIKE", "a.b-c_d,E"};
	size_t s, r, t;
	int spam;
	(void)state;
	for (spam = 0; spam < 2; spam++)
		for (s = 0; s < MW_N_ELEMENTS(scores); s++)
			for (r = 0; r < MW_N_ELEMENTS(scores); r++)
				for (t = 0; t < MW_N_ELEMENTS(tests); t++) {
					struct mw_hdr_spam v, back;
					mw_error err = {""};
					mw_str out;
					memset(&v, 0, sizeof(v));
					v.spam = spam != 0;
					v.score = scores[s];
					v.required = scores[r];
					(void)mw_strlcpy(v.tests, tests[t], sizeof(v.tests));
					mw_str_init(&out, 0);
					assert_int_equal(mw_hdr_spam_print(&v, &out, &err), 0);
					if (mw_hdr_spam_parse(out.buf, out.len, &back, &err) != 0 ||
					    !mw_hdr_spam_equal(&v, &back))
						fail_msg("spam round trip: %s (%s)", out.buf,
						         err.msg);
					mw_str_free(&out);
				}
	{
		struct mw_hdr_spam v;
		mw_str out;
		memset(&v, 0, sizeof(v));
		mw_str_init(&out, 0);
		assert_int_equal(mw_hdr_spam_print(&v, &out, NULL), 0);
		assert_string_equal(out.buf, "no; score=0.00; required=0.00; tests=");
		mw_str_reset(&out);
		v.spam = true;
		v.score = -750;
		v.required = 500;
		(void)mw_strlcpy(v.tests, "A,B", sizeof(v.tests));
		assert_int_equal(mw_hdr_spam_print(&v, &out, NULL), 0);
		assert_string_equal(out.buf, "yes; score=-7.50; required=5.00; tests=A,B");
		/* what the parser would refuse is not printed */
		mw_str_reset(&out);
		(void)mw_strlcpy(v.tests, "A B", sizeof(v.tests));
		assert_int_equal(mw_hdr_spam_print(&v, &out, NULL), -1);
		(void)mw_strlcpy(v.tests, "A", sizeof(v.tests));
		v.score = MW_HDR_SCORE_MAX + 1;
		assert_int_equal(mw_hdr_spam_print(&v, &out, NULL), -1);
		assert_int_equal(out.len, 0);
		mw_str_free(&out);
	}
}

/* test_has_test - names in a tests list */
static void test_has_test(void **state)
{
	(void)state;
	assert_true(mw_hdr_tests_has("BAYES_99,PHISH_URL", "PHISH_URL"));
	assert_true(mw_hdr_tests_has("BAYES_99,phish_url", "PHISH_URL, OTHER"));
	assert_false(mw_hdr_tests_has("BAYES_99,PHISH_URLX", "PHISH_URL"));
	assert_false(mw_hdr_tests_has("", "PHISH_URL"));
	assert_false(mw_hdr_tests_has(NULL, "PHISH_URL"));
}

/* ---- X-Mailwarden-Virus ---------------------------------------------------------------- */

/* test_virus - the virus verdict header */
static void test_virus(void **state)
{
	static const char *const bad[] = {
	    "infected (unclosed",
	    "infectedX",
	    "dirty",
	    "",
	    "infected ()",
	    "infected (a b)",
	    "infected (a) trailing",
	    "clean (x)",
	    "infected (a(b))",
	    "infected (\xc3\xa9)",
	    "infected(a)",
	};
	struct mw_hdr_virus v;
	size_t i;
	(void)state;
	assert_int_equal(mw_hdr_virus_parse("clean", 5, &v, NULL), 0);
	assert_false(v.infected);
	assert_int_equal(mw_hdr_virus_parse(" infected (Test.Sig.UNOFFICIAL) ", 32, &v, NULL), 0);
	assert_true(v.infected);
	assert_string_equal(v.signature, "Test.Sig.UNOFFICIAL");
	assert_int_equal(mw_hdr_virus_parse("INFECTED", 8, &v, NULL), 0);
	assert_true(v.infected);
	assert_string_equal(v.signature, "");
	for (i = 0; i < MW_N_ELEMENTS(bad); i++)
		if (mw_hdr_virus_parse(bad[i], strlen(bad[i]), &v, NULL) != -1 || v.infected)
			fail_msg("virus case %zu accepted: %s", i, bad[i]);
	assert_int_equal(mw_hdr_virus_parse("clean\0infected", 14, &v, NULL), -1);
}

/* test_virus_round_trip - print -> parse -> equal */
static void test_virus_round_trip(void **state)
{
	static const char *const sigs[] = {"", "Win.Test.EICAR_HDB-1", "Test.Sig.UNOFFICIAL",
	                                   "a:b/c{d}=e"};
	size_t i;
	int inf;
	(void)state;
	for (inf = 0; inf < 2; inf++)
		for (i = 0; i < MW_N_ELEMENTS(sigs); i++) {
			struct mw_hdr_virus v, back;
			mw_str out;
			memset(&v, 0, sizeof(v));
			v.infected = inf != 0;
			(void)mw_strlcpy(v.signature, sigs[i], sizeof(v.signature));
			mw_str_init(&out, 0);
			if (!v.infected && sigs[i][0] != '\0') {
				assert_int_equal(mw_hdr_virus_print(&v, &out, NULL), -1);
			} else {
				assert_int_equal(mw_hdr_virus_print(&v, &out, NULL), 0);
				assert_int_equal(mw_hdr_virus_parse(out.buf, out.len, &back, NULL),
				                 0);
				assert_true(mw_hdr_virus_equal(&v, &back));
			}
			mw_str_free(&out);
		}
	{
		struct mw_hdr_virus v = {true, "bad name"};
		mw_str out;
		mw_str_init(&out, 0);
		assert_int_equal(mw_hdr_virus_print(&v, &out, NULL), -1);
		(void)mw_strlcpy(v.signature, "X.Y", sizeof(v.signature));
		assert_int_equal(mw_hdr_virus_print(&v, &out, NULL), 0);
		assert_string_equal(out.buf, "infected (X.Y)");
		mw_str_free(&out);
	}
}

/* ---- Authentication-Results: the authserv-id ------------------------------------------- */

#define U MW_HDR_ID_UNKNOWN
#define O MW_HDR_ID_OURS
#define F MW_HDR_ID_FOREIGN

/* Every form of the authserv-id: the milter deletes all but F, the plugin believes only O. */
static const struct {
	const char *value;
	enum mw_hdr_id_class want;
} id_cases[] = {
    /* issue 9 item 3: these passed the milter and the plugin took them as ours */
    {"mail.\"example.org\"; dkim=pass", U},
    {"\"\"mail.example.org; dmarc=fail", U},
    {"\"mail\".example.org; spf=fail", U},
    {"mail.exa\"mple.org\"; dkim=pass", U},
    /* ours, every normalisation */
    {"mail.example.org; spf=pass smtp.mailfrom=x.org", O},
    {" mail.example.org;\r\n\tdkim=pass", O},
    {"MAIL.Example.ORG; none", O},
    {"mail.example.org 1; spf=pass", O},
    {"mail.example.org\t1 ; spf=pass", O},
    {"(forged) mail.example.org; spf=pass", O},
    {"\r\n (a (b) c)\r\n mail.example.org; x=y", O},
    {"\"mail.example.org\"; spf=pass", O},
    {"\"MAIL.EXAMPLE.ORG\" ; spf=pass", O},
    {"\"mail\\.example\\.org\"; spf=pass", O},
    {"\"\\m\\a\\i\\l.example.org\"; spf=pass", O},
    {"mail.example.org(comment); spf=pass", O},
    {"mail.example.org (c\\)omment) ; spf=pass", O},
    {"mail.example.org.; dkim=pass", O},
    {"mail.example.org..; dkim=pass", O},
    {"\"mail.example.org.\"; dkim=pass", O},
    {"\n mail.example.org; dkim=pass", O},
    {"mail.example.org\n ; dkim=pass", O},
    {"mail.example.org;", O},
    /* someone else's, provably */
    {"other.example.org; spf=pass", F},
    {"mail.example.org.evil; spf=pass", F},
    {"example.org; spf=pass", F},
    {"xmail.example.org; spf=pass", F},
    {"mx.google.com; dkim=pass header.i=@gmail.com header.s=20230601 header.b=Ab/+=", F},
    {"\"other.example\"; dkim=pass", F},
    {"mail-example.org; dkim=pass", F},
    {"mail.example.org1; dkim=pass", F},
    {"mail_example.org; dkim=pass", F},
    /* cannot tell: deleted by the milter, never believed */
    {"", U},
    {" ", U},
    {"mail.example.org", U},
    {"mail.example.org dkim=pass", U},
    {"mail.example.org, dkim=pass", U},
    {"(unclosed mail.example.org; spf=pass", U},
    {"\"mail.example.org; spf=pass", U},
    {";mail.example.org", U},
    {"; dmarc=fail", U},
    {"\"mail.example.org \"; dkim=pass", U},
    {"\" mail.example.org\"; dkim=pass", U},
    {"\"mail.example.org\"x; dkim=pass", U},
    {"\"mail.example\r\n .org\"; dkim=pass", U},
    {"mail.example.org\r\nX-Injected: 1; dkim=pass", U},
    {"mail.example.org\r; dkim=pass", U},
    {"mail.example.org\n; dkim=pass", U},
    {"mail.example.org 1 2; dkim=pass", U},
    {"mail.example.org 1x; dkim=pass", U},
    {"\"mail.example.org\"1; dkim=pass", U},
    {"=?utf-8?q?mail.example.org?=; dkim=pass", U},
    {"\"=?utf-8?q?mail.example.org?=\"; dkim=pass", U},
    {"\"=?us-ascii?B?bWFpbC5leGFtcGxlLm9yZw==?=\"; dkim=pass", U},
    {"mail%2Eexample.org; dkim=pass", U},
    {"mail.example.org\xc2\xa0; dkim=pass", U},
    {"m\xc3\xa0il.example.org; dkim=pass", U},
    {"\"m\xc3\xa0il.example.org\"; dkim=pass", U},
    {"mail.\xef\xbd\x85xample.org; dkim=pass", U},
    {"mail..example.org; dkim=pass", U},
    {".mail.example.org; dkim=pass", U},
    {"\".mail.example.org\"; dkim=pass", U},
    {"mail.example.org\x01; dkim=pass", U},
    {"mail.example.org\x7f; dkim=pass", U},
    {"(mail.example.org) ; dkim=pass", U},
    {"mail/example.org; dkim=pass", U},
    {"<mail.example.org>; dkim=pass", U},
    {"[mail.example.org]; dkim=pass", U},
    {"spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.org; dkim=pass", U},
    {"\\mail.example.org; dkim=pass", U},
    {"mail.example.org\\; dkim=pass", U},
};

/* test_authres_id - the id classification over the hostile table */
static void test_authres_id(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(id_cases); i++) {
		enum mw_hdr_id_class c =
		    mw_hdr_authres_id(id_cases[i].value, strlen(id_cases[i].value), OURS);
		if (c != id_cases[i].want)
			fail_msg("id case %zu [%s]: got %d want %d", i, id_cases[i].value, (int)c,
			         (int)id_cases[i].want);
	}
	/* no configured id: nothing can be proved foreign */
	assert_int_equal(mw_hdr_authres_id("other.example; x=y", 18, ""), U);
	assert_int_equal(mw_hdr_authres_id("other.example; x=y", 18, NULL), U);
	assert_int_equal(mw_hdr_authres_id(NULL, 0, OURS), U);
}

/* test_authres_id_nul_and_length - NUL bytes and over-long values cannot be proved foreign */
static void test_authres_id_nul_and_length(void **state)
{
	static char big[MW_HDR_VALUE_MAX + 2];
	size_t n;
	(void)state;
	/* a C-string reader would stop at the NUL and see only someone else's id */
	assert_int_equal(mw_hdr_authres_id("other.example\0; x=y", 19, OURS), U);
	assert_int_equal(
	    mw_hdr_authres_id("other.example; x=y\0mail.example.org; dkim=pass", 46, OURS), U);
	assert_int_equal(mw_hdr_authres_id("\0mail.example.org; dkim=pass", 28, OURS), U);
	/* over the limit: refused whatever the id; exactly at the limit: read */
	n = (size_t)snprintf(big, sizeof(big), "other.example; dkim=pass header.b=");
	memset(big + n, 'a', sizeof(big) - 1 - n);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(strlen(big), MW_HDR_VALUE_MAX + 1);
	assert_int_equal(mw_hdr_authres_id(big, strlen(big), OURS), U);
	assert_int_equal(mw_hdr_authres_id(big, MW_HDR_VALUE_MAX, OURS), F);
	/* an id longer than any host name */
	memset(big, 'a', 300);
	memcpy(big + 300, "; x=y", 6);
	assert_int_equal(mw_hdr_authres_id(big, strlen(big), OURS), U);
}

/* test_header_names - which header names the milter and the plugin treat as ours */
static void test_header_names(void **state)
{
	(void)state;
	assert_true(mw_hdr_name_is_ours("X-Mailwarden-Spam"));
	assert_true(mw_hdr_name_is_ours("x-mailwarden-virus"));
	assert_true(mw_hdr_name_is_ours("X-MAILWARDEN-Anything"));
	assert_true(mw_hdr_name_is_ours("X-Mailwarden-Spam "));
	assert_false(mw_hdr_name_is_ours("X-Mailwarden"));
	assert_false(mw_hdr_name_is_ours("X-Mailwardens-Spam"));
	assert_false(mw_hdr_name_is_ours("Subject"));
	assert_true(mw_hdr_name_is_authres("Authentication-Results"));
	assert_true(mw_hdr_name_is_authres("authentication-results"));
	assert_true(mw_hdr_name_is_authres("AUTHENTICATION-RESULTS \t"));
	assert_false(mw_hdr_name_is_authres("Authentication-Results-X"));
	assert_false(mw_hdr_name_is_authres("ARC-Authentication-Results"));
	assert_false(mw_hdr_name_is_authres(NULL));
}

/* ---- Authentication-Results: the whole header ------------------------------------------ */

struct ar_case {
	const char *in;
	int ret; /* of mw_hdr_authres_parse */
	bool dkim_pass, dkim_fail, dmarc_fail, spf_fail;
};

static const struct ar_case ar_cases[] = {
    {"mail.example.org; dkim=fail header.d=bank.example; dmarc=fail (p=reject) "
     "header.from=bank.example; spf=pass smtp.mailfrom=x@y.example",
     0, false, true, true, false},
    {"MAIL.Example.ORG 1; dkim=pass header.d=a.example; dkim=fail header.d=b.example", 0, true,
     true, false, false},
    {"mail.example.org; none", 0, false, false, false, false},
    {"mail.example.org; spf=fail smtp.mailfrom=a@b.example", 0, false, false, false, true},
    {"mail.example.org; spf=softfail smtp.mailfrom=a@b.example", 0, false, false, false, false},
    {"mail.example.org; dkim=permerror (bad sig)", 0, false, true, false, false},
    {"mail.example.org; dkim/1=fail", 0, false, true, false, false},
    {"mail.example.org; dkim = fail reason=\"bad key\" header.d=x", 0, false, true, false, false},
    {"mail.example.org;\r\n\tdkim=fail\r\n header.d=x", 0, false, true, false, false},
    /* comments and quotes hide what looks like results */
    {"mail.example.org; dkim=pass (dmarc=fail; spf=fail) header.d=x", 0, true, false, false, false},
    {"mail.example.org; dkim=pass header.b=\"dmarc=fail;x\"", 0, true, false, false, false},
    {"mail.example.org (nested (comment)); dmarc=fail", 0, false, false, true, false},
    /* malformed */
    {"mail.example.org; dmarc=fail (unclosed", -1, false, false, false, false},
    {"mail.example.org; \"unclosed", -1, false, false, false, false},
    {"mail.example.org; garbage", -1, false, false, false, false},
    {"mail.example.org; dkim=maybe", -1, false, false, false, false},
    {"mail.example.org; dkim=pass;", -1, false, false, false, false},
    {"mail.example.org; dkim=pass header=x", -1, false, false, false, false},
    {"mail.example.org; dkim=pass header.d=\"a\"b", -1, false, false, false, false},
    {"mail.example.org; dkim=pass header.d=x\xc3\xa9", -1, false, false, false, false},
    {"mail.example.org; dkim=passed", -1, false, false, false, false},
    {"mail.example.org; none; dkim=pass", -1, false, false, false, false},
    {"; dmarc=fail", -1, false, false, false, false},
    {"\"mail example\"; dmarc=fail", -1, false, false, false, false},
};

/* test_authres_parse - results read from a well-formed header, malformed ones refused */
static void test_authres_parse(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(ar_cases); i++) {
		struct mw_hdr_authres ar;
		struct mw_hdr_auth_summary s;
		mw_error err = {""};
		int ret = mw_hdr_authres_parse(ar_cases[i].in, strlen(ar_cases[i].in), &ar, &err);
		if (ret != ar_cases[i].ret)
			fail_msg("ar case %zu: ret %d (%s)", i, ret, err.msg);
		if (ret < 0) {
			assert_true(err.msg[0] != '\0');
			continue;
		}
		mw_hdr_authres_summary(&ar, &s);
		if (s.dkim_pass != ar_cases[i].dkim_pass || s.dkim_fail != ar_cases[i].dkim_fail ||
		    s.dmarc_fail != ar_cases[i].dmarc_fail || s.spf_fail != ar_cases[i].spf_fail)
			fail_msg("ar case %zu: wrong summary", i);
	}
}

/* test_authres_round_trip - print -> parse -> equal: every method with every result, with
   and without a comment and properties (quoted and plain values), several results */
static void test_authres_round_trip(void **state)
{
	static const char *const methods[] = {"spf", "dkim", "dmarc", "iprev"};
	static const char *const comments[] = {"", "p=reject", "body hash mismatch", " x "};
	static const char *const values[] = {"a@b.example", "\"a b;dkim=pass\"@example.com",
	                                     "example.com", "x\\y",
	                                     "a(b)c",       "with space"};
	struct mw_hdr_authres *ar = mw_calloc(1, sizeof(*ar));
	struct mw_hdr_authres *back = mw_calloc(1, sizeof(*back));
	size_t m, c, v, n = 0;
	int r;
	mw_str out;
	mw_error err = {""};
	(void)state;

	for (m = 0; m < MW_N_ELEMENTS(methods); m++)
		for (r = MW_AUTH_NONE; r <= MW_AUTH_PERMERROR; r++)
			for (c = 0; c < MW_N_ELEMENTS(comments); c++)
				for (v = 0; v <= MW_N_ELEMENTS(values); v++) {
					struct mw_hdr_ar_result *res;
					memset(ar, 0, sizeof(*ar));
					(void)mw_strlcpy(ar->authserv_id, OURS,
					                 sizeof(ar->authserv_id));
					ar->count = 1;
					res = &ar->results[0];
					(void)mw_strlcpy(res->method, methods[m],
					                 sizeof(res->method));
					res->result = (enum mw_auth_result)r;
					(void)mw_strlcpy(res->comment, comments[c],
					                 sizeof(res->comment));
					if (v < MW_N_ELEMENTS(values)) {
						res->nprops = 2;
						(void)mw_strlcpy(res->props[0].name,
						                 "smtp.mailfrom",
						                 sizeof(res->props[0].name));
						(void)mw_strlcpy(res->props[0].value, values[v],
						                 sizeof(res->props[0].value));
						(void)mw_strlcpy(res->props[1].name, "header.d",
						                 sizeof(res->props[1].name));
						(void)mw_strlcpy(res->props[1].value, "d.example",
						                 sizeof(res->props[1].value));
					}
					/* a second result after it */
					ar->count = 2;
					ar->results[1] = *res;
					ar->results[1].result = (enum mw_auth_result)(
					    (r + 3) % (MW_AUTH_PERMERROR + 1));
					mw_str_init(&out, 0);
					if (mw_hdr_authres_print(ar, &out, &err) != 0)
						fail_msg("print refused (%s)", err.msg);
					if (mw_hdr_authres_parse(out.buf, out.len, back, &err) !=
					        0 ||
					    !mw_hdr_authres_equal(ar, back))
						fail_msg("round trip: %s (%s)", out.buf, err.msg);
					if (mw_hdr_authres_id(out.buf, out.len, OURS) != O)
						fail_msg("printed header is not ours: %s", out.buf);
					mw_str_free(&out);
					n++;
				}
	assert_true(n > 500);

	/* "none", and the most results and properties the format holds */
	memset(ar, 0, sizeof(*ar));
	(void)mw_strlcpy(ar->authserv_id, OURS, sizeof(ar->authserv_id));
	mw_str_init(&out, 0);
	assert_int_equal(mw_hdr_authres_print(ar, &out, &err), 0);
	assert_string_equal(out.buf, OURS "; none");
	assert_int_equal(mw_hdr_authres_parse(out.buf, out.len, back, &err), 0);
	assert_true(mw_hdr_authres_equal(ar, back));
	mw_str_reset(&out);
	ar->count = MW_HDR_AR_RESULTS;
	for (m = 0; m < MW_HDR_AR_RESULTS; m++) {
		struct mw_hdr_ar_result *res = &ar->results[m];
		(void)mw_strlcpy(res->method, "dkim", sizeof(res->method));
		res->result = MW_AUTH_FAIL;
		res->nprops = MW_HDR_AR_PROPS;
		for (v = 0; v < MW_HDR_AR_PROPS; v++) {
			(void)mw_strlcpy(res->props[v].name, "header.d",
			                 sizeof(res->props[v].name));
			(void)mw_strlcpy(res->props[v].value, "x.example",
			                 sizeof(res->props[v].value));
		}
	}
	assert_int_equal(mw_hdr_authres_print(ar, &out, &err), 0);
	assert_int_equal(mw_hdr_authres_parse(out.buf, out.len, back, &err), 0);
	assert_true(mw_hdr_authres_equal(ar, back));
	mw_str_free(&out);
	free(ar);
	free(back);
}

/* test_authres_print_folds - many results, long values: every line of the printed header
   stays short (Postfix splits a line past its line_length_limit, and RFC 5322 caps a line at
   998 octets), and the folded value reads back the same */
static void test_authres_print_folds(void **state)
{
	struct mw_hdr_authres *ar = calloc(2, sizeof(*ar)), *back;
	const char *line;
	mw_error err;
	mw_str out;
	size_t m, first = sizeof("Authentication-Results: ") - 1, lines = 0;
	(void)state;
	assert_non_null(ar);
	back = ar + 1;
	(void)mw_strlcpy(ar->authserv_id, OURS, sizeof(ar->authserv_id));
	ar->count = MW_HDR_AR_RESULTS;
	for (m = 0; m < MW_HDR_AR_RESULTS; m++) {
		struct mw_hdr_ar_result *res = &ar->results[m];
		(void)mw_strlcpy(res->method, "dkim", sizeof(res->method));
		res->result = MW_AUTH_PASS;
		(void)mw_strlcpy(res->comment, "a comment about the key", sizeof(res->comment));
		res->nprops = 2;
		(void)mw_strlcpy(res->props[0].name, "header.d", sizeof(res->props[0].name));
		memset(res->props[0].value, 'd', 200);
		memcpy(res->props[0].value + 196, ".org", 5);
		(void)mw_strlcpy(res->props[1].name, "header.s", sizeof(res->props[1].name));
		(void)mw_strlcpy(res->props[1].value, "sel", sizeof(res->props[1].value));
	}
	mw_str_init(&out, 0);
	assert_int_equal(mw_hdr_authres_print(ar, &out, &err), 0);
	/* was one line of about 4000 octets */
	for (line = out.buf; line != NULL; lines++) {
		const char *nl = strchr(line, '\n');
		size_t len = (nl != NULL ? (size_t)(nl - line) : strlen(line)) + first;
		assert_true(len <= 998);
		if (nl != NULL)
			assert_int_equal(nl[1], '\t');
		line = nl != NULL ? nl + 1 : NULL;
		first = 0;
	}
	assert_true(lines >= 2 * MW_HDR_AR_RESULTS);
	assert_int_equal(mw_hdr_authres_parse(out.buf, out.len, back, &err), 0);
	assert_true(mw_hdr_authres_equal(ar, back));
	assert_int_equal(mw_hdr_authres_id(out.buf, out.len, OURS), MW_HDR_ID_OURS);

	/* a short one stays on one line */
	ar->count = 1;
	ar->results[0].comment[0] = '\0';
	ar->results[0].nprops = 1;
	(void)mw_strlcpy(ar->results[0].props[0].value, "example.org", 64);
	mw_str_reset(&out);
	assert_int_equal(mw_hdr_authres_print(ar, &out, &err), 0);
	assert_string_equal(out.buf, OURS "; dkim=pass header.d=example.org");
	mw_str_free(&out);
	free(ar);
}

/* test_authres_print_refuses - what the parser would not read back is never printed */
static void test_authres_print_refuses(void **state)
{
	static const char *const bad_ids[] = {"",           "mx example", "mx;dkim=pass",
	                                      "mx\r\nX: y", "m\xc3\xa9x", "mx(comment)",
	                                      ".mx",        "a..b"};
	struct mw_hdr_authres ar;
	mw_str out;
	size_t i;
	(void)state;
	mw_str_init(&out, 0);
	for (i = 0; i < MW_N_ELEMENTS(bad_ids); i++) {
		memset(&ar, 0, sizeof(ar));
		(void)mw_strlcpy(ar.authserv_id, bad_ids[i], sizeof(ar.authserv_id));
		assert_int_equal(mw_hdr_authres_print(&ar, &out, NULL), -1);
		assert_int_equal(out.len, 0);
	}
	memset(&ar, 0, sizeof(ar));
	(void)mw_strlcpy(ar.authserv_id, "mx", sizeof(ar.authserv_id));
	ar.count = 1;
	(void)mw_strlcpy(ar.results[0].method, "dkim", sizeof(ar.results[0].method));
	(void)mw_strlcpy(ar.results[0].comment, "a) dmarc=fail (", sizeof(ar.results[0].comment));
	assert_int_equal(mw_hdr_authres_print(&ar, &out, NULL), -1);
	ar.results[0].comment[0] = '\0';
	ar.results[0].nprops = 1;
	(void)mw_strlcpy(ar.results[0].props[0].name, "header.d", 32);
	(void)mw_strlcpy(ar.results[0].props[0].value, "a\r\nX-Evil: 1", 32);
	assert_int_equal(mw_hdr_authres_print(&ar, &out, NULL), -1);
	(void)mw_strlcpy(ar.results[0].props[0].name, "headerd", 32);
	(void)mw_strlcpy(ar.results[0].props[0].value, "x", 32);
	assert_int_equal(mw_hdr_authres_print(&ar, &out, NULL), -1);
	(void)mw_strlcpy(ar.results[0].method, "dk im", 32);
	(void)mw_strlcpy(ar.results[0].props[0].name, "header.d", 32);
	assert_int_equal(mw_hdr_authres_print(&ar, &out, NULL), -1);
	assert_int_equal(out.len, 0);
	mw_str_free(&out);
}

/* ---- which header the plugin believes --------------------------------------------------- */

#define MINE OURS "; spf=pass smtp.mailfrom=a@x.example; dkim=fail header.d=x.example; dmarc=pass"

/* pick - mw_hdr_authres_pick over a NULL-terminated list */
static int pick(const char *const *values, struct mw_hdr_authres *ar)
{
	size_t n = 0;
	while (values[n] != NULL)
		n++;
	return mw_hdr_authres_pick(values, n, OURS, ar, NULL);
}

/* test_pick - only the milter's header, alone of its kind and first, is believed */
static void test_pick(void **state)
{
	struct mw_hdr_authres ar;
	struct mw_hdr_auth_summary s;
	size_t i;
	(void)state;
	{
		const char *v[] = {MINE, "other.example; dkim=pass", NULL};
		assert_int_equal(pick(v, &ar), 1);
		mw_hdr_authres_summary(&ar, &s);
		assert_true(s.dkim_fail);
		assert_false(s.dkim_pass);
	}
	{
		const char *v[] = {"other.example; dkim=fail", "x.example; none", NULL};
		assert_int_equal(pick(v, &ar), 0);
	}
	{
		const char *v[] = {NULL};
		assert_int_equal(pick(v, &ar), 0);
	}
	/* two claimants: ours above a forged one, and below one */
	{
		const char *v[] = {MINE, OURS "; dkim=pass", NULL};
		assert_int_equal(pick(v, &ar), -1);
	}
	{
		const char *v[] = {OURS "; dkim=pass", MINE, NULL};
		assert_int_equal(pick(v, &ar), -1);
	}
	/* one claimant but not first: not what the milter writes */
	{
		const char *v[] = {"other.example; dkim=pass", OURS "; dmarc=fail", NULL};
		assert_int_equal(pick(v, &ar), -1);
	}
	/* ours malformed: believed in no part */
	{
		const char *v[] = {OURS "; dmarc=fail; garbage", NULL};
		assert_int_equal(pick(v, &ar), -1);
		assert_int_equal(ar.count, 0);
	}
	/* issue 9 item 3 inputs, on their own, above ours and below ours */
	for (i = 0; i < 4; i++) {
		const char *forged = id_cases[i].value;
		const char *alone[] = {forged, NULL};
		const char *above[] = {forged, MINE, NULL};
		const char *below[] = {MINE, forged, NULL};
		assert_int_not_equal(pick(alone, &ar), 1);
		assert_int_equal(pick(above, &ar), -1);
		assert_int_equal(pick(below, &ar), -1);
	}
	/* no configured id: nothing believed */
	{
		const char *v[] = {MINE, NULL};
		assert_int_equal(mw_hdr_authres_pick(v, 1, "", &ar, NULL), 0);
		assert_int_equal(mw_hdr_authres_pick(v, 1, NULL, &ar, NULL), 0);
	}
}

/* test_issue9_forged_ids - the four reported inputs: the milter deletes each (the id is not
   provably foreign) and the plugin believes none of them, whatever surrounds them */
static void test_issue9_forged_ids(void **state)
{
	static const char *const forged[] = {
	    "mail.\"example.org\"; dkim=pass",
	    "\"\"mail.example.org; dkim=pass",
	    "\"mail\".example.org; dmarc=fail",
	    "mail.exa\"mple.org\"; spf=fail",
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(forged); i++) {
		struct mw_hdr_authres ar;
		const char *v[] = {forged[i], NULL};
		/* the milter's question: deleted unless provably foreign */
		assert_int_not_equal(mw_hdr_authres_id(forged[i], strlen(forged[i]), OURS),
		                     MW_HDR_ID_FOREIGN);
		/* the plugin's question: believed only when parsed as ours */
		assert_int_equal(mw_hdr_authres_parse(forged[i], strlen(forged[i]), &ar, NULL), -1);
		assert_int_not_equal(mw_hdr_authres_pick(v, 1, OURS, &ar, NULL), 1);
	}
}

/* summary_agrees - mw_hdr_authres_pick_summary gives what mw_hdr_authres_pick then
   mw_hdr_authres_summary give: the same return, the same summary (all false unless 1) */
static void summary_agrees(const char *const *values, size_t n)
{
	struct mw_hdr_authres ar;
	struct mw_hdr_auth_summary want, got;
	int r1, r2;
	memset(&want, 0, sizeof(want));
	r1 = mw_hdr_authres_pick(values, n, OURS, &ar, NULL);
	if (r1 == 1)
		mw_hdr_authres_summary(&ar, &want);
	memset(&got, 0xff, sizeof(got));
	r2 = mw_hdr_authres_pick_summary(values, n, OURS, &got, NULL);
	if (r1 != r2 || memcmp(&want, &got, sizeof(want)) != 0)
		fail_msg("pick %d, pick_summary %d (summary %s) for \"%.120s\"", r1, r2,
		         memcmp(&want, &got, sizeof(want)) == 0 ? "same" : "differs",
		         n > 0 && values[0] != NULL ? values[0] : "(null)");
}

/* test_pick_summary_hostile - the plugin's cheap reader of our header (summary only, no
   30 KB struct) believes exactly what the full reader believes, on hostile input: several
   headers, ours forged further down, huge ones, broken quoting, a verdict that parses
   before the part that does not (the summary must not keep it) */
static void test_pick_summary_hostile(void **state)
{
	char *huge = malloc(MW_HDR_VALUE_MAX + 64), *many = malloc(4096);
	struct mw_hdr_auth_summary s;
	size_t i, len;
	(void)state;
	assert_non_null(huge);
	assert_non_null(many);
	for (i = 0; i < MW_N_ELEMENTS(ar_cases); i++) {
		const char *v[] = {ar_cases[i].in};
		summary_agrees(v, 1);
	}
	for (i = 0; i < MW_N_ELEMENTS(id_cases); i++) {
		const char *alone[] = {id_cases[i].value};
		const char *above[] = {id_cases[i].value, MINE};
		const char *below[] = {MINE, id_cases[i].value};
		summary_agrees(alone, 1);
		summary_agrees(above, 2);
		summary_agrees(below, 2);
	}
	{
		/* ours first, a forged one of ours further down: nothing believed */
		const char *v[] = {MINE, "other.example; dkim=pass", "x.example; spf=pass",
		                   OURS "; dkim=pass; dmarc=pass"};
		summary_agrees(v, 4);
		memset(&s, 0xff, sizeof(s));
		assert_int_equal(mw_hdr_authres_pick_summary(v, 4, OURS, &s, NULL), -1);
		assert_false(s.dkim_fail || s.dkim_pass || s.dmarc_pass || s.spf_pass);
	}
	{
		/* fails after verdicts that parsed: the summary keeps none of them */
		static const char *const broken[] = {
		    OURS "; dkim=fail; dmarc=fail; spf=fail; garbage",
		    OURS "; dkim=fail reason=\"unclosed; dmarc=fail",
		    OURS "; dkim=fail header.d=\"a\"b.example",
		    OURS "; dkim=fail (unbalanced comment; dmarc=fail",
		    OURS "; dkim=fail header.d=x\\y.example",
		    OURS "; dmarc=fail; spf=fail\r\nx=1",
		    OURS "; dkim=fail; dmarc=fail\x01",
		    "\"" OURS "; dkim=fail",
		};
		for (i = 0; i < MW_N_ELEMENTS(broken); i++) {
			const char *v[] = {broken[i]};
			summary_agrees(v, 1);
			memset(&s, 0xff, sizeof(s));
			assert_int_equal(mw_hdr_authres_pick_summary(v, 1, OURS, &s, NULL), -1);
			assert_false(s.dkim_fail || s.dmarc_fail || s.spf_fail);
		}
	}
	/* huge: longer than MW_HDR_VALUE_MAX (refused), and just within it */
	len = (size_t)snprintf(huge, 64, "%s; dkim=fail header.d=", OURS);
	memset(huge + len, 'a', MW_HDR_VALUE_MAX + 10 - len);
	huge[MW_HDR_VALUE_MAX + 10] = '\0';
	{
		const char *v[] = {huge};
		summary_agrees(v, 1);
		assert_int_equal(mw_hdr_authres_pick_summary(v, 1, OURS, &s, NULL), -1);
		assert_false(s.dkim_fail);
		huge[MW_HDR_VALUE_MAX - 20] = '\0';
		summary_agrees(v, 1);
	}
	/* as many results as allowed, and one more: the extra refuses the whole header even
	   though every result before it counted */
	len = (size_t)snprintf(many, 4096, "%s", OURS);
	for (i = 0; i < MW_HDR_AR_RESULTS; i++)
		len += (size_t)snprintf(many + len, 4096 - len, "; dkim=fail");
	{
		const char *v[] = {many};
		summary_agrees(v, 1);
		assert_int_equal(mw_hdr_authres_pick_summary(v, 1, OURS, &s, NULL), 1);
		assert_true(s.dkim_fail);
		(void)snprintf(many + len, 4096 - len, "; dmarc=fail");
		summary_agrees(v, 1);
		assert_int_equal(mw_hdr_authres_pick_summary(v, 1, OURS, &s, NULL), -1);
		assert_false(s.dkim_fail || s.dmarc_fail);
	}
	{
		const char *v[] = {NULL, MINE};
		summary_agrees(v, 2);
		assert_int_equal(mw_hdr_authres_pick_summary(v, 1, "", &s, NULL), 0);
		assert_int_equal(mw_hdr_authres_pick_summary(v, 0, OURS, &s, NULL), 0);
	}
	free(huge);
	free(many);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spam),
	    cmocka_unit_test(test_spam_limits),
	    cmocka_unit_test(test_spam_round_trip),
	    cmocka_unit_test(test_spam_folded),
	    cmocka_unit_test(test_has_test),
	    cmocka_unit_test(test_virus),
	    cmocka_unit_test(test_virus_round_trip),
	    cmocka_unit_test(test_authres_id),
	    cmocka_unit_test(test_authres_id_nul_and_length),
	    cmocka_unit_test(test_header_names),
	    cmocka_unit_test(test_authres_parse),
	    cmocka_unit_test(test_authres_round_trip),
	    cmocka_unit_test(test_authres_print_folds),
	    cmocka_unit_test(test_authres_print_refuses),
	    cmocka_unit_test(test_pick),
	    cmocka_unit_test(test_issue9_forged_ids),
	    cmocka_unit_test(test_pick_summary_hostile),
	};
	MW_RUN_TESTS(tests);
}
