/* test-milter-from.c - the milter's From enforcement on a table of tricky headers, the
   envelope sender check and reply escaping (which headers are stripped: test-headers.c).
   Every case runs through the functions the daemon calls (milter/milter-from.c). */
#include "mw-build.h"
#include "milter.h"

#include "mw-test.h"

#include <stdio.h>
#include <string.h>

#define U "john@example.com"

/* One message: its From: values (NULL-terminated, up to 3), Sender: value (or NULL), the
   user's patterns (NULL-terminated), and the expected outcome: xcode NULL = accepted, else
   the enhanced code and a substring of the reply text. */
static const struct {
	const char *from[4];
	const char *sender;
	const char *patterns[4];
	const char *xcode;
	const char *text;
} from_cases[] = {
    /* plain */
    {{"john@example.com"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"<john@example.com>"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"John Smith <john@example.com>"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"mallory@example.com"},
     NULL,
     {"john@example.com"},
     "5.7.1",
     "<mallory@example.com>: not allowed for john@example.com"},
    /* display-name tricks: only the addr-spec counts */
    {{"\"ceo@bank.com\" <evil@x.org>"}, NULL, {"*@bank.com"}, "5.7.1", "<evil@x.org>"},
    {{"\"john@example.com\" <evil@x.org>"}, NULL, {"john@example.com"}, "5.7.1", "<evil@x.org>"},
    {{"john@example.com <evil@x.org>"}, NULL, {"john@example.com"}, "5.6.0", "does not parse"},
    {{"=?utf-8?q?john=40example.com?= <evil@x.org>"},
     NULL,
     {"john@example.com"},
     "5.7.1",
     "<evil@x.org>"},
    {{"=?utf-8?q?J=C3=B6hn?= <john@example.com>"}, NULL, {"john@example.com"}, NULL, NULL},
    /* comments */
    {{"john@example.com (evil@x.org)"}, NULL, {"john@example.com"}, "5.7.1", "display name"},
    {{"(john@example.com) evil@x.org"}, NULL, {"john@example.com"}, "5.7.1", "<evil@x.org>"},
    {{"john(comment)@example.com"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"Joe (x (nested) y) <john@example.com>"}, NULL, {"john@example.com"}, NULL, NULL},
    /* quoted local parts: "john"@ is john@, a real quoted local part needs "*" */
    {{"\"john\"@example.com"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"\"john doe\"@example.com"}, NULL, {"john@example.com"}, "5.7.1", "not allowed"},
    {{"\"john doe\"@example.com"}, NULL, {"*@example.com"}, NULL, NULL},
    {{"\"john@example.com\"@x.org"}, NULL, {"john@example.com"}, "5.7.1", "@x.org>"},
    /* groups */
    {{"friends: john@example.com, john@example.com;"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"friends: john@example.com, evil@x.org;"},
     NULL,
     {"john@example.com"},
     "5.7.1",
     "<evil@x.org>"},
    {{"undisclosed-recipients:;"}, NULL, {"john@example.com"}, "5.6.0", "has no address"},
    /* several addresses: every one must match */
    {{"john@example.com, evil@x.org"}, NULL, {"john@example.com"}, "5.7.1", "<evil@x.org>"},
    {{"evil@x.org, john@example.com"}, NULL, {"john@example.com"}, "5.7.1", "<evil@x.org>"},
    {{"john@example.com, sales@example.com"},
     NULL,
     {"john@example.com", "sales@example.com"},
     NULL,
     NULL},
    /* folded lines */
    {{"John\r\n Smith\r\n\t<john@example.com>"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"John\n <john@example.com>,\n evil@x.org"},
     NULL,
     {"john@example.com"},
     "5.7.1",
     "<evil@x.org>"},
    {{"John\r\n<john@example.com>"}, NULL, {"john@example.com"}, "5.6.0", "does not parse"},
    /* case and IDN variants */
    {{"JOHN@EXAMPLE.COM"}, NULL, {"john@example.com"}, NULL, NULL},
    {{"John@Example.Com"}, NULL, {"*@example.com"}, NULL, NULL},
    {{"jo@bücher.example"}, NULL, {"*@xn--bcher-kva.example"}, NULL, NULL},
    {{"jo@XN--BCHER-KVA.example"}, NULL, {"*@xn--bcher-kva.example"}, NULL, NULL},
    {{"jo@bucher.example"}, NULL, {"*@xn--bcher-kva.example"}, "5.7.1", "<jo@bucher.example>"},
    {{"jo@sub.example.com"}, NULL, {"*@example.com"}, "5.7.1", "not allowed"},
    {{"jo@sub.example.com"}, NULL, {"*@*.example.com"}, NULL, NULL},
    /* sub-address patterns */
    {{"john+news@example.com"}, NULL, {"john+*@example.com"}, NULL, NULL},
    {{"john@example.com"}, NULL, {"john+*@example.com"}, "5.7.1", "not allowed"},
    {{"johnny+x@example.com"}, NULL, {"john+*@example.com"}, "5.7.1", "not allowed"},
    {{"john+news@example.com"}, NULL, {"john@example.com"}, "5.7.1", "not allowed"},
    /* missing, repeated, empty, unparseable */
    {{NULL}, NULL, {"john@example.com"}, "5.6.0", "message has no From: header"},
    {{"john@example.com", "john@example.com"},
     NULL,
     {"john@example.com"},
     "5.6.0",
     "message has 2 From: headers"},
    {{""}, NULL, {"john@example.com"}, "5.6.0", "has no address"},
    {{"   "}, NULL, {"john@example.com"}, "5.6.0", "has no address"},
    {{"<>"}, NULL, {"john@example.com"}, "5.6.0", "does not parse"},
    {{"john@example.com>"}, NULL, {"john@example.com"}, "5.6.0", "does not parse"},
    {{"john@localhost"}, NULL, {"*@example.com"}, "5.6.0", "does not parse"},
    {{"john@example.com\x01"}, NULL, {"john@example.com"}, "5.6.0", "does not parse"},
    {{"\"\xff\"@example.com"}, NULL, {"*@example.com"}, "5.6.0", "does not parse"},
/* issue 9: a display name (or group name, or comment) that shows another address is
   refused in every form a reader decodes; the same address, or none, is fine */
#define J "<john@example.com>"
#define P                                                                                          \
	{                                                                                          \
		"john@example.com"                                                                 \
	}
#define SHOWS "5.7.1", "From: display name shows an address other than the sender's"
#define UNDEC "5.7.1", "From: display name cannot be decoded"
    {{"\"ceo@bank.com\" " J}, NULL, P, SHOWS},
    {{"\"ceo\\@bank.com\" " J}, NULL, P, SHOWS},
    {{"\"ceo @ bank.com\" " J}, NULL, P, SHOWS},
    {{"\"ceo@\r\n bank.com\" " J}, NULL, P, SHOWS},
    {{"\"CEO <ceo@bank.com>\" " J}, NULL, P, SHOWS},
    {{"\"mailto:ceo@bank.com\" " J}, NULL, P, SHOWS},
    {{"\"ceo\xef\xbc\xa0"
      "bank.com\" " J},
     NULL,
     P,
     SHOWS},
    {{"\"ceo\xef\xb9\xab"
      "bank.com\" " J},
     NULL,
     P,
     SHOWS},
    {{"Mr. ceo@bank.com. " J}, NULL, P, "5.6.0", "does not parse"},
    {{"=?utf-8?q?ceo=40bank.com?= " J}, NULL, P, SHOWS},
    {{"=?UTF-8?Q?ceo=40bank=2Ecom?= " J}, NULL, P, SHOWS},
    {{"=?utf-8?b?Y2VvQGJhbmsuY29t?= " J}, NULL, P, SHOWS},
    {{"=?iso-8859-1?q?ceo=40bank.com?= " J}, NULL, P, SHOWS},
    {{"=?windows-1252?B?Y2VvQGJhbmsuY29t?= " J}, NULL, P, SHOWS},
    {{"=?utf-16?b?//5jAGUAbwBAAGIAYQBuAGsALgBjAG8AbQA=?= " J}, NULL, P, SHOWS},
    {{"=?UTF-16BE?B?AGMAZQBvAEAAYgBhAG4AawAuAGMAbwBt?= " J}, NULL, P, SHOWS},
    {{"=?utf-16be?b?AGMAZQBv/yAAYgBhAG4AawAuAGMAbwBt?= " J}, NULL, P, SHOWS},
    {{"=?utf-7?q?ceo+AEA-bank.com?= " J}, NULL, P, SHOWS},
    {{"=?utf-8*en?q?ceo=40bank.com?= " J}, NULL, P, SHOWS},
    {{"=?utf-8?q?ceo?= =?utf-8?q?=40bank.com?= " J}, NULL, P, SHOWS},
    {{"=?utf-8?q?ceo?=\r\n =?utf-8?q?=40bank.com?= " J}, NULL, P, SHOWS},
    {{"Boss=?utf-8?q?=3Cceo=40bank.com=3E?= " J}, NULL, P, SHOWS},
    {{"\"=?utf-8?q?ceo=40bank.com?=\" " J}, NULL, P, SHOWS},
    {{"John (ceo@bank.com) " J}, NULL, P, SHOWS},
    {{"John (x (ceo@bank.com) y) " J}, NULL, P, SHOWS},
    {{"John (=?utf-8?q?ceo=40bank.com?=) " J}, NULL, P, SHOWS},
    {{"John (ceo\\@bank.com) " J}, NULL, P, SHOWS},
    {{"john@example.com (=?utf-8?b?Y2VvQGJhbmsuY29t?=)"}, NULL, P, SHOWS},
    {{"<john(ceo@bank.com)@example.com>"}, NULL, P, SHOWS},
    {{"ceo@bank.com: john@example.com;"}, NULL, P, "5.6.0", "does not parse"},
    {{"\"ceo@bank.com\": john@example.com;"}, NULL, P, SHOWS},
    {{"\"billing@example.com\" " J}, NULL, P, SHOWS},
    {{"\"john@example.com.evil.org\" " J}, NULL, P, SHOWS},
    {{"\"john@ex\xc2\xa0"
      "ample.com\" " J},
     NULL,
     P,
     SHOWS},
    {{"=?x-no-such-charset?q?John?= " J}, NULL, P, UNDEC},
    {{"=?utf-8?b?Y2VvQGJhbmsuY29?= " J}, NULL, P, UNDEC},
    {{"=?utf-8?b?!!!!?= " J}, NULL, P, UNDEC},
    {{"=?utf-8?q?J=C3?= " J}, NULL, P, UNDEC},
    {{"=?utf-8?q?J=ZZ?= " J}, NULL, P, UNDEC},
    {{"=?utf-8?x?John?= " J}, NULL, P, UNDEC},
    {{"=?utf-8?q?John " J}, NULL, P, UNDEC},
    {{"=??q?John?= " J}, NULL, P, UNDEC},
    {{"=?us-ascii?q?J=FFohn?= " J}, NULL, P, UNDEC},
    {{"John (=?utf-8?q?=E2=82?=) " J}, NULL, P, UNDEC},
    {{"John", "x"}, NULL, P, "5.6.0", "2 From"},
    /* accepted: no address, or the sender's own in any case or form */
    {{"\"John Smith\" " J}, NULL, P, NULL, NULL},
    {{"\"Smith, John\" " J}, NULL, P, NULL, NULL},
    {{"\"john@example.com\" " J}, NULL, P, NULL, NULL},
    {{"\"JOHN@Example.COM.\" " J}, NULL, P, NULL, NULL},
    {{"\"John <john@example.com>\" " J}, NULL, P, NULL, NULL},
    {{"=?utf-8?q?john=40example.com?= " J}, NULL, P, NULL, NULL},
    {{"John (john@example.com) " J}, NULL, P, NULL, NULL},
    {{"john@example.com (John Smith)"}, NULL, P, NULL, NULL},
    {{"\"John at example dot com\" " J}, NULL, P, NULL, NULL},
    {{"=?iso-2022-jp?b?GyRCJCIbKEI=?= " J}, NULL, P, NULL, NULL},
    {{"=?utf-8?q?J=C3=B6hn_Sm=C3=AFth?= =?utf-8?b?IA==?= " J}, NULL, P, NULL, NULL},
    {{"\"@\" " J}, NULL, P, NULL, NULL},
    {{"\"o'brien@example.com\" <o'brien@example.com>"}, NULL, {"o'brien@example.com"}, NULL, NULL},
    {{"\"'ceo@bank.com'\" " J}, NULL, P, SHOWS},
    {{"\"`ceo@bank.com`\" " J}, NULL, P, SHOWS},
    {{"\"a=b?c\" " J}, NULL, P, NULL, NULL},
    {{"\"jo@b\xc3\xbc"
      "cher.example\" <jo@xn--bcher-kva.example>"},
     NULL,
     {"*@xn--bcher-kva.example"},
     NULL,
     NULL},
    {{"\"john@example.com\" <sales@example.com>, john@example.com"},
     NULL,
     {"john@example.com", "sales@example.com"},
     NULL,
     NULL},
    /* another address of the sender's own domain, or one without a dot, is still another
       address here (the spam test FROM_DISPLAY_ADDR lets these pass; this check must not) */
    {{"\"jane@example.com\" " J}, NULL, P, SHOWS},
    {{"\"John <john@sub.example.com>\" " J}, NULL, P, SHOWS},
    {{"\"john@example\" " J}, NULL, P, SHOWS},
    {{"\"'john@example.com'\" " J}, NULL, P, SHOWS},
    /* the same for Sender: */
    {{"john@example.com"}, "\"ceo@bank.com\" " J, P, "5.7.1", "Sender: display name shows"},
    {{"john@example.com"}, "=?koi8-r?q?ceo=40bank.com?= " J, P, "5.7.1", "Sender: display"},
#undef J
#undef P
#undef SHOWS
#undef UNDEC
    /* no patterns at all: nothing is allowed */
    {{"john@example.com"}, NULL, {NULL}, "5.7.1", "not allowed"},
    /* Sender: checked too when present */
    {{"john@example.com"}, "john@example.com", {"john@example.com"}, NULL, NULL},
    {{"john@example.com"}, "Boss <evil@x.org>", {"john@example.com"}, "5.7.1", "<evil@x.org>"},
    {{"john@example.com"}, "", {"john@example.com"}, "5.6.0", "Sender: header has no address"},
    {{"john@example.com"},
     "a@b.org, c@d.org",
     {"*@b.org", "*@d.org", "john@example.com"},
     NULL,
     NULL},
};

/* count - entries of a NULL-terminated array (at most max) */
static size_t count(const char *const *v, size_t max)
{
	size_t n = 0;
	while (n < max && v[n] != NULL)
		n++;
	return n;
}

/* test_from_table - every case through milter_from_check */
static void test_from_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < MW_N_ELEMENTS(from_cases); i++) {
		struct milter_reply r;
		const char *sender[1] = {from_cases[i].sender};
		struct milter_from_input in = {from_cases[i].from, count(from_cases[i].from, 4),
		                               sender, from_cases[i].sender != NULL ? 1 : 0};
		int ret;
		memset(&r, 0, sizeof(r));
		ret = milter_from_check(&in, from_cases[i].patterns,
		                        count(from_cases[i].patterns, 4), U, &r);
		if (from_cases[i].xcode == NULL) {
			if (ret != 0)
				fail_msg("case %zu: refused: %s %s %s", i, r.rcode, r.xcode,
				         r.text);
			continue;
		}
		if (ret != 1)
			fail_msg("case %zu (%s): accepted", i,
			         from_cases[i].from[0] ? from_cases[i].from[0] : "no From");
		if (strcmp(r.rcode, "550") != 0 || strcmp(r.xcode, from_cases[i].xcode) != 0 ||
		    strstr(r.text, from_cases[i].text) == NULL)
			fail_msg("case %zu: got %s %s %s, want %s ...%s...", i, r.rcode, r.xcode,
			         r.text, from_cases[i].xcode, from_cases[i].text);
		if (r.reason == NULL || strchr(r.text, '\r') != NULL ||
		    strchr(r.text, '\n') != NULL)
			fail_msg("case %zu: bad reply", i);
	}
}

/* Envelope senders as Postfix passes argv[0]. */
static const struct {
	const char *envfrom;
	bool null_ok;
	const char *rcode, *xcode, *text;
} env_cases[] = {
    {"<john@example.com>", false, NULL, NULL, NULL},
    {"<John@EXAMPLE.com>", false, NULL, NULL, NULL},
    {"<john+list@example.com>", false, NULL, NULL, NULL},
    {"<evil@x.org>", false, "550", "5.7.1", "<evil@x.org>: not allowed for john@example.com"},
    {"<@relay.example:evil@x.org>", false, "550", "5.7.1", "<evil@x.org>"},
    {"<>", false, "550", "5.7.1", "null sender not allowed for john@example.com"},
    {"<>", true, NULL, NULL, NULL},
    {"john@example.com", false, "553", "5.1.7", "does not parse"},
    {"<john@example.com", false, "553", "5.1.7", "does not parse"},
    {"<jo hn@example.com>", false, "553", "5.1.7", "does not parse"},
    {"", false, "553", "5.1.7", "does not parse"},
    {"<\"john\"@example.com>", false, NULL, NULL, NULL},
    {"<jo@b\xc3\xbc"
     "cher.example>",
     false, "550", "5.7.1", "<jo@xn--bcher-kva.example>"},
};

/* test_envfrom - the MAIL FROM check */
static void test_envfrom(void **state)
{
	static const char *const patterns[] = {"john@example.com", "john+*@example.com"};
	(void)state;
	for (size_t i = 0; i < MW_N_ELEMENTS(env_cases); i++) {
		struct milter_reply r;
		int ret = milter_envfrom_check(env_cases[i].envfrom, env_cases[i].null_ok, patterns,
		                               2, U, &r);
		if (env_cases[i].rcode == NULL) {
			if (ret != 0)
				fail_msg("env case %zu: refused: %s %s %s", i, r.rcode, r.xcode,
				         r.text);
			continue;
		}
		if (ret != 1 || strcmp(r.rcode, env_cases[i].rcode) != 0 ||
		    strcmp(r.xcode, env_cases[i].xcode) != 0 ||
		    strstr(r.text, env_cases[i].text) == NULL)
			fail_msg("env case %zu: got %d %s %s %s", i, ret, ret ? r.rcode : "",
			         ret ? r.xcode : "", ret ? r.text : "");
	}
}

/* test_reply_value - untrusted text in replies: no CR/LF/%/controls, bounded */
static void test_reply_value(void **state)
{
	char buf[32], big[600];
	(void)state;
	milter_reply_value(buf, sizeof(buf), "a%b\r\nc\\d");
	assert_string_equal(buf, "a\\x25b\\x0d\\x0ac\\x5cd");
	milter_reply_value(buf, sizeof(buf), "\"jo doe\"@x.org");
	assert_string_equal(buf, "\"jo doe\"@x.org");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	milter_reply_value(buf, sizeof(buf), big);
	assert_true(strlen(buf) < sizeof(buf));
	assert_non_null(strstr(buf, "..."));
	milter_reply_value(buf, 4, "abc");
	assert_string_equal(buf, "");
}

/* test_long_user - a long user name and address still give a bounded reply */
static void test_long_user(void **state)
{
	static const char *const patterns[] = {"a@b.org"};
	char user[300], from[400];
	const char *fv[1] = {from};
	struct milter_from_input in = {fv, 1, NULL, 0};
	struct milter_reply r;
	(void)state;
	memset(user, 'u', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	(void)snprintf(from, sizeof(from), "%.*s@example.com", 60,
	               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	assert_int_equal(milter_from_check(&in, patterns, 1, user, &r), 1);
	assert_string_equal(r.xcode, "5.7.1");
	assert_true(strlen(r.text) < MILTER_REPLY_MAX);
	assert_non_null(strstr(r.text, "..."));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_table),
	    cmocka_unit_test(test_envfrom),
	    cmocka_unit_test(test_reply_value),
	    cmocka_unit_test(test_long_user),
	};
	MW_RUN_TESTS(tests);
}
