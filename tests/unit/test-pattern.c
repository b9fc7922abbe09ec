/* test-pattern.c - allowed-From patterns: the strict grammar, canonical forms, and
   matching against parsed addresses (case, IDN, subdomains, sub-addresses, quoting). */
#include "mw-build.h"
#include "mw-pattern.h"

#include "mw-test.h"

#include <stdio.h>
#include <string.h>

/* Normalisation cases: want NULL means refused with an error containing err. */
static const struct {
	const char *in;
	const char *want;
	const char *err;
} norm_cases[] = {
    {"john@example.com", "john@example.com", NULL},
    {"John@Example.COM", "john@example.com", NULL},
    {"*@example.com", "*@example.com", NULL},
    {"*@*.example.com", "*@*.example.com", NULL},
    {"john+*@example.com", "john+*@example.com", NULL},
    {"John.Smith+*@*.Example.com", "john.smith+*@*.example.com", NULL},
    {"john@example.com.", "john@example.com", NULL},
    {"*@bücher.example", "*@xn--bcher-kva.example", NULL},
    {"*@*.BÜCHER.example", "*@*.xn--bcher-kva.example", NULL},
    {"jörg@bücher.example", "jörg@xn--bcher-kva.example", NULL},
    {"a+b@x.org", "a+b@x.org", NULL},
    {"", NULL, "empty pattern"},
    {"john", NULL, "no '@'"},
    {"john@x@y.org", NULL, "more than one '@'"},
    {"@x.org", NULL, "empty local part"},
    {"john@", NULL, "no domain"},
    {"j*@x.org", NULL, "'*' is only allowed"},
    {"*x@x.org", NULL, "'*' is only allowed"},
    {"**@x.org", NULL, "'*' is only allowed"},
    {"a*b+*@x.org", NULL, "'*' is only allowed"},
    {"+*@x.org", NULL, "needs a local part"},
    {"john+*x@x.org", NULL, "'*' is only allowed"},
    {"a@*", NULL, "leading \"*.\""},
    {"a@x.*", NULL, "leading \"*.\""},
    {"a@*x.com", NULL, "leading \"*.\""},
    {"a@*.*.x.com", NULL, "leading \"*.\""},
    {"a@x.*.com", NULL, "leading \"*.\""},
    {"*@*.com", NULL, "at least two labels"},
    {"*@*.", NULL, "no domain"},
    {"*@com", NULL, "two labels"},
    {"*@*.example.com.", "*@*.example.com", NULL},
    {"john @x.org", NULL, "white space in pattern at offset 4"},
    {" john@x.org", NULL, "white space"},
    {"john@x.org ", NULL, "white space"},
    {"jo\thn@x.org", NULL, "white space"},
    {"john@x.org\n", NULL, "control character 0x0a"},
    {"jo\x01hn@x.org", NULL, "control character 0x01"},
    {"jo\x7fhn@x.org", NULL, "control character 0x7f"},
    {"\"john\"@x.org", NULL, "invalid character 0x22"},
    {"jo(c)hn@x.org", NULL, "invalid character 0x28"},
    {".john@x.org", NULL, "starts or ends with '.'"},
    {"john.@x.org", NULL, "starts or ends with '.'"},
    {"jo..hn@x.org", NULL, "'..'"},
    {"john@x..org", NULL, "pattern domain"},
    {"john@x_y.org", NULL, "pattern domain"},
    {"john@[192.0.2.1]", NULL, "domain literals are not allowed"},
    {"john@xn--zz.org", NULL, "invalid A-label"},
    {"john@1.2.3.4", NULL, "all digits"},
    {"jo\xffhn@x.org", NULL, "invalid UTF-8 in pattern at offset 2"},
    {"*@b\xc3.example", NULL, "invalid UTF-8"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org", NULL,
     "longer than 64"},
    {"a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.org", NULL,
     "label too long"},
};

/* test_normalize_table - accepted patterns in canonical form, refused ones with a reason */
static void test_normalize_table(void **state)
{
	size_t i, failures = 0;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(norm_cases); i++) {
		char canon[MW_PATTERN_MAX + 1];
		mw_error err;
		int ret;
		err.msg[0] = '\0';
		ret = mw_pattern_normalize(norm_cases[i].in, canon, sizeof(canon), &err);
		if (norm_cases[i].want == NULL) {
			if (ret != -1 || strstr(err.msg, norm_cases[i].err) == NULL ||
			    canon[0] != '\0') {
				print_error("case %zu [%s]: ret %d [%s] err [%s] want [%s]\n", i,
				            norm_cases[i].in, ret, canon, err.msg,
				            norm_cases[i].err);
				failures++;
			}
		} else if (ret != 0 || strcmp(canon, norm_cases[i].want) != 0) {
			print_error("case %zu [%s]: ret %d [%s] err [%s]\n", i, norm_cases[i].in,
			            ret, canon, err.msg);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* test_normalize_limits - over-long patterns and small output buffers are refused */
static void test_normalize_limits(void **state)
{
	char big[MW_PATTERN_MAX + 64], canon[MW_PATTERN_MAX + 1], small[8];
	mw_error err;
	size_t i, off = 0;
	(void)state;
	memcpy(big, "a@", 2);
	off = 2;
	for (i = 0; i < 7; i++) {
		memset(big + off, 'b', 50);
		off += 50;
		big[off++] = '.';
	}
	memcpy(big + off, "org", 4);
	assert_int_equal(mw_pattern_normalize(big, canon, sizeof(canon), &err), -1);
	assert_non_null(strstr(err.msg, "longer than 320"));
	assert_int_equal(mw_pattern_normalize("john@example.com", small, sizeof(small), &err), -1);
	assert_string_equal(small, "");
	assert_int_equal(mw_pattern_normalize(NULL, canon, sizeof(canon), &err), -1);
}

/* Matching cases: a canonical pattern, a header address, and whether it matches. */
static const struct {
	const char *pattern;
	const char *header;
	bool match;
} match_cases[] = {
    {"john@example.com", "john@example.com", true},
    {"john@example.com", "John@EXAMPLE.com", true},
    {"john@example.com", "\"john\"@example.com", true},
    {"john@example.com", "John Smith <john@example.com>", true},
    {"john@example.com", "john@example.com.", true},
    {"john@example.com", "jane@example.com", false},
    {"john@example.com", "john@example.org", false},
    {"john@example.com", "john@sub.example.com", false},
    {"john@example.com", "john@example.com.evil.org", false},
    {"john@example.com", "john.x@example.com", false},
    {"john@example.com", "\"john \"@example.com", false},
    {"john@example.com", "\"john@example.com\"@evil.org", false},
    {"john@example.com", "\"john@example.com\" <evil@x.org>", false},
    {"*@example.com", "anyone@example.com", true},
    {"*@example.com", "\"any one\"@example.com", true},
    {"*@example.com", "a@EXAMPLE.COM", true},
    {"*@example.com", "a@sub.example.com", false},
    {"*@example.com", "a@badexample.com", false},
    {"*@example.com", "a@example.com.org", false},
    {"*@*.example.com", "a@sub.example.com", true},
    {"*@*.example.com", "a@a.b.example.com", true},
    {"*@*.example.com", "a@example.com", false},
    {"*@*.example.com", "a@badexample.com", false},
    {"*@*.example.com", "a@sub.example.com.evil.org", false},
    {"john+*@example.com", "john+news@example.com", true},
    {"john+*@example.com", "JOHN+News@example.com", true},
    {"john+*@example.com", "john+a+b@example.com", true},
    {"john+*@example.com", "john@example.com", false},
    {"john+*@example.com", "john+@example.com", false},
    {"john+*@example.com", "johnx+a@example.com", false},
    {"john+*@example.com", "\"john+a b\"@example.com", false},
    {"john+*@example.com", "john+a@sub.example.com", false},
    {"john+*@*.example.com", "john+a@sub.example.com", true},
    {"*@xn--bcher-kva.example", "a@bücher.example", true},
    {"*@xn--bcher-kva.example", "a@BÜCHER.example", true},
    {"*@xn--bcher-kva.example", "a@xn--bcher-kva.example", true},
    {"*@xn--bcher-kva.example", "a@bucher.example", false},
    {"jörg@xn--bcher-kva.example", "jörg@bücher.example", true},
    {"jörg@xn--bcher-kva.example", "jorg@bücher.example", false},
    {"*@example.com", "a@[192.0.2.1]", false},
};

/* test_match_table - the documented matching rules, against parsed header addresses */
static void test_match_table(void **state)
{
	size_t i, failures = 0;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(match_cases); i++) {
		struct mw_addr_list list;
		char canon[MW_PATTERN_MAX + 1];
		mw_error err;
		assert_int_equal(
		    mw_pattern_normalize(match_cases[i].pattern, canon, sizeof(canon), &err), 0);
		/* the table's patterns are already canonical */
		assert_string_equal(canon, match_cases[i].pattern);
		if (mw_addr_parse_header(match_cases[i].header, strlen(match_cases[i].header),
		                         &list, &err) != 0) {
			print_error("case %zu: header [%s]: %s\n", i, match_cases[i].header,
			            err.msg);
			failures++;
			continue;
		}
		assert_int_equal(list.count, 1);
		if (mw_pattern_match(canon, &list.addrs[0]) != match_cases[i].match) {
			print_error("case %zu: [%s] vs [%s] (%s): want %d\n", i, canon,
			            match_cases[i].header, list.addrs[0].addr,
			            match_cases[i].match);
			failures++;
		}
		mw_addr_list_free(&list);
	}
	assert_int_equal(failures, 0);
}

/* test_match_any - any of several patterns; malformed patterns and null paths never match */
static void test_match_any(void **state)
{
	const char *pats[] = {"jane@example.com", "*@*.example.org", "john+*@example.com"};
	const char *bad[] = {"", "john", "@example.com", "john@", "a@b@example.com"};
	struct mw_addr a;
	(void)state;
	assert_int_equal(mw_addr_parse_envelope("<x@a.example.org>", 17, false, &a, NULL), 0);
	assert_true(mw_pattern_match_any(pats, MW_N_ELEMENTS(pats), &a));
	assert_false(mw_pattern_match_any(pats, 1, &a));
	assert_false(mw_pattern_match_any(pats, 0, &a));
	assert_false(mw_pattern_match_any(bad, MW_N_ELEMENTS(bad), &a));
	assert_false(mw_pattern_match(NULL, &a));
	assert_int_equal(mw_addr_parse_envelope("<john+x@example.com>", 20, false, &a, NULL), 0);
	assert_true(mw_pattern_match_any(pats, MW_N_ELEMENTS(pats), &a));
	assert_int_equal(mw_addr_parse_envelope("<>", 2, false, &a, NULL), 0);
	assert_true(a.null_path);
	assert_false(mw_pattern_match("*@example.com", &a));
	assert_false(mw_pattern_match_any(pats, MW_N_ELEMENTS(pats), &a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalize_table),
	    cmocka_unit_test(test_normalize_limits),
	    cmocka_unit_test(test_match_table),
	    cmocka_unit_test(test_match_any),
	};
	MW_RUN_TESTS(tests);
}
