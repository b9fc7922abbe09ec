/* test-plugin-rules.c - tag rules (lib/mw-tagrule.c): IMAP keyword atoms, field names,
   values, mailboxes, and matching of each kind against header texts and addresses. */
#include "mw-build.h"
#include "mw-tagrule.h"

#include "mw-test.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *kw;
	bool ok;
} keyword_cases[] = {
    {"$Junk", true},
    {"$NotJunk", true},
    {"work", true},
    {"Project-X_2024.v1", true},
    {"$label1", true},
    {"a!#&'+,-./:;<=>?@^_`|}~", true},
    {"", false},
    {"two words", false},
    {"paren(", false},
    {"paren)", false},
    {"brace{", false},
    {"pct%", false},
    {"star*", false},
    {"quote\"", false},
    {"\\Seen", false},
    {"bracket]", false},
    {"tab\t", false},
    {"nl\n", false},
    {"del\x7f", false},
    {"caf\xc3\xa9", false},
    {"0123456789012345678901234567890123456789012345678901234567890123", true},
    {"01234567890123456789012345678901234567890123456789012345678901234", false},
};

/* test_keywords - IMAP atom rules for keywords */
static void test_keywords(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(keyword_cases); i++) {
		mw_error err = {""};
		int ret = mw_tagrule_check_keyword(keyword_cases[i].kw, &err);
		if ((ret == 0) != keyword_cases[i].ok)
			fail_msg("keyword case %zu: got %d (%s)", i, ret, err.msg);
		if (ret < 0)
			assert_true(err.msg[0] != '\0');
	}
	assert_int_equal(mw_tagrule_check_keyword(NULL, NULL), -1);
}

/* test_fields_values_mailboxes - the other parts of a rule */
static void test_fields_values_mailboxes(void **state)
{
	char big[MW_TAGRULE_VALUE_MAX + 2];
	(void)state;
	assert_int_equal(mw_tagrule_check_field("From", NULL), 0);
	assert_int_equal(mw_tagrule_check_field("List-Id", NULL), 0);
	assert_int_equal(mw_tagrule_check_field("X-Spam_Flag", NULL), 0);
	assert_int_equal(mw_tagrule_check_field("From:", NULL), -1);
	assert_int_equal(mw_tagrule_check_field("Fr om", NULL), -1);
	assert_int_equal(mw_tagrule_check_field("", NULL), -1);
	assert_int_equal(mw_tagrule_check_field("Fr\xc3\xb6m", NULL), -1);

	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_SUBSTRING, "Rechnung f\xc3\xbcr", NULL),
	                 0);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_SUBSTRING, "bad\xc3", NULL), -1);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_EXACT, "ctl\x01", NULL), -1);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_DOMAIN, "example.com", NULL), 0);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_DOMAIN, "xn--bcher-kva.example", NULL),
	                 0);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_DOMAIN, ".example.com", NULL), -1);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_DOMAIN, "example.com.", NULL), -1);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_DOMAIN, "a..b", NULL), -1);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_DOMAIN, "*.example.com", NULL), -1);
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_DOMAIN, "a@b.com", NULL), -1);
	assert_int_equal(mw_tagrule_check_value((enum mw_tagrule_match)9, "x", NULL), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_SUBSTRING, big, NULL), -1);
	big[MW_TAGRULE_VALUE_MAX] = '\0';
	assert_int_equal(mw_tagrule_check_value(MW_TAGRULE_SUBSTRING, big, NULL), 0);

	assert_int_equal(mw_tagrule_check_mailbox("Lists/dev", NULL), 0);
	assert_int_equal(mw_tagrule_check_mailbox("Entw\xc3\xbcrfe", NULL), 0);
	assert_int_equal(mw_tagrule_check_mailbox("a*", NULL), -1);
	assert_int_equal(mw_tagrule_check_mailbox("a%", NULL), -1);
	assert_int_equal(mw_tagrule_check_mailbox("a\nb", NULL), -1);
	assert_int_equal(mw_tagrule_check_mailbox("", NULL), -1);
}

/* test_rule_check - a whole rule needs something to do */
static void test_rule_check(void **state)
{
	struct mw_tag_rule r = {0};
	enum mw_tagrule_match m;
	(void)state;
	r.field = (char *)"From";
	r.match = MW_TAGRULE_EXACT;
	r.value = (char *)"a@b.org";
	r.enabled = true;
	assert_int_equal(mw_tagrule_check(&r, NULL), -1);
	r.mailbox = (char *)"Lists";
	assert_int_equal(mw_tagrule_check(&r, NULL), 0);
	r.keyword = (char *)"bad keyword";
	assert_int_equal(mw_tagrule_check(&r, NULL), -1);
	r.keyword = (char *)"good";
	assert_int_equal(mw_tagrule_check(&r, NULL), 0);
	assert_int_equal(mw_tagrule_match_parse("GLOB", &m), 0);
	assert_int_equal(m, MW_TAGRULE_GLOB);
	assert_int_equal(mw_tagrule_match_parse("regex", &m), -1);
	assert_null(mw_tagrule_match_name((enum mw_tagrule_match)17));
	assert_string_equal(mw_tagrule_match_name(MW_TAGRULE_DOMAIN), "domain");
}

static const struct {
	const char *pattern, *text;
	bool match;
} glob_cases[] = {
    {"*", "", true},
    {"*", "anything", true},
    {"a*c", "abc", true},
    {"a*c", "ac", true},
    {"a*c", "abd", false},
    {"?", "x", true},
    {"?", "", false},
    {"*@example.com", "John@EXAMPLE.com", true},
    {"*@example.com", "john@example.com.evil", false},
    {"[sale]*", "[SALE] now", true},
    {"*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
    {"**x", "yyx", true},
    {"x", "xx", false},
};

/* test_glob - wildcards, case, pathological input in linear time */
static void test_glob(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(glob_cases); i++)
		if (mw_tagrule_glob(glob_cases[i].pattern, glob_cases[i].text) !=
		    glob_cases[i].match)
			fail_msg("glob case %zu: %s vs %s", i, glob_cases[i].pattern,
			         glob_cases[i].text);
}

struct match_case {
	const char *field;
	enum mw_tagrule_match match;
	const char *value;
	const char *text;
	const char *addr; /* one address for address fields, NULL for none */
	bool want;
};

static const struct match_case match_cases[] = {
    /* address fields */
    {"From", MW_TAGRULE_EXACT, "boss@example.com", "The Boss <Boss@Example.com>",
     "Boss@Example.com", true},
    {"From", MW_TAGRULE_EXACT, "boss@example.com", "boss@example.com.evil", "boss@example.com.evil",
     false},
    {"From", MW_TAGRULE_EXACT, "The Boss", "The Boss <boss@example.com>", "boss@example.com",
     false},
    {"From", MW_TAGRULE_SUBSTRING, "boss", "The Boss <x@example.com>", "x@example.com", true},
    {"To", MW_TAGRULE_SUBSTRING, "team@", "<team@example.com>", "team@example.com", true},
    {"From", MW_TAGRULE_GLOB, "*@*.example.com", "a <a@mail.example.com>", "a@mail.example.com",
     true},
    {"From", MW_TAGRULE_GLOB, "*@*.example.com", "a <a@example.com>", "a@example.com", false},
    {"From", MW_TAGRULE_DOMAIN, "example.com", "x <x@example.com>", "x@example.com", true},
    {"From", MW_TAGRULE_DOMAIN, "example.com", "x <x@sub.EXAMPLE.com>", "x@sub.EXAMPLE.com", true},
    {"From", MW_TAGRULE_DOMAIN, "example.com", "x <x@badexample.com>", "x@badexample.com", false},
    {"From", MW_TAGRULE_DOMAIN, "example.com", "x@example.com (no addrs)", NULL, false},
    {"Cc", MW_TAGRULE_DOMAIN, "example.com", "<x@example.com.>", "x@example.com.", true},
    /* text fields */
    {"Subject", MW_TAGRULE_SUBSTRING, "invoice", "Your INVOICE 42", NULL, true},
    {"Subject", MW_TAGRULE_SUBSTRING, "invoice", "Your bill", NULL, false},
    {"Subject", MW_TAGRULE_EXACT, "hello", "  Hello ", NULL, true},
    {"Subject", MW_TAGRULE_EXACT, "hello", "Hello there", NULL, false},
    {"Subject", MW_TAGRULE_GLOB, "[dev]*", "[DEV] build failed", NULL, true},
    {"List-Id", MW_TAGRULE_DOMAIN, "lists.example.org", "Developers <dev.lists.example.org>", NULL,
     true},
    {"List-Id", MW_TAGRULE_DOMAIN, "lists.example.org", "<dev.lists.example.net>", NULL, false},
    {"List-Id", MW_TAGRULE_EXACT, "<dev.lists.example.org>", "<dev.lists.example.org>", NULL, true},
    {"X-Custom", MW_TAGRULE_SUBSTRING, "yes", "maybe yes", NULL, true},
};

/* test_matching - each kind of rule against texts and addresses */
static void test_matching(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(match_cases); i++) {
		const struct match_case *c = &match_cases[i];
		const char *addrs[1] = {c->addr};
		struct mw_tagrule_subject s = {c->text, addrs, c->addr != NULL ? 1 : 0};
		struct mw_tag_rule r = {0};
		r.field = (char *)c->field;
		r.match = c->match;
		r.value = (char *)c->value;
		r.keyword = (char *)"k";
		r.enabled = true;
		if (mw_tagrule_matches(&r, &s, 1) != c->want)
			fail_msg("match case %zu (%s %s %s vs %s)", i, c->field,
			         mw_tagrule_match_name(c->match), c->value, c->text);
		r.enabled = false;
		assert_false(mw_tagrule_matches(&r, &s, 1));
	}
}

/* test_several_occurrences - any occurrence of the field may match */
static void test_several_occurrences(void **state)
{
	const char *a1[] = {"x@one.example"}, *a2[] = {"y@two.example", NULL};
	struct mw_tagrule_subject s[2] = {{"x@one.example", a1, 1}, {"y@two.example", a2, 2}};
	struct mw_tag_rule r = {0};
	(void)state;
	r.field = (char *)"To";
	r.match = MW_TAGRULE_DOMAIN;
	r.value = (char *)"two.example";
	r.enabled = true;
	assert_true(mw_tagrule_matches(&r, s, 2));
	assert_false(mw_tagrule_matches(&r, s, 1));
	assert_false(mw_tagrule_matches(&r, s, 0));
	assert_false(mw_tagrule_matches(NULL, s, 2));
	assert_true(mw_tagrule_field_is_address("reply-to"));
	assert_false(mw_tagrule_field_is_address("Subject"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keywords),   cmocka_unit_test(test_fields_values_mailboxes),
	    cmocka_unit_test(test_rule_check), cmocka_unit_test(test_glob),
	    cmocka_unit_test(test_matching),   cmocka_unit_test(test_several_occurrences),
	};
	MW_RUN_TESTS(tests);
}
