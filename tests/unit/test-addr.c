/* test-addr.c - RFC 5322 header and RFC 5321 envelope address parsing: tables of
   accepted inputs with their exact addr-spec lists, hostile inputs with their errors. */
#include "mw-build.h"
#include "mw-addr.h"
#include "mw-rfc2047.h"

#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One header case: want is the canonical addresses joined by '\n' ("" = none), or NULL
   when the header must be refused with an error containing err. len 0 means strlen. */
struct header_case {
	const char *in;
	size_t len;
	const char *want;
	size_t groups;
	const char *err;
};

static const struct header_case header_cases[] = {
    /* plain forms */
    {"john@example.com", 0, "john@example.com", 0, NULL},
    {"John Smith <john@example.com>, jane@example.com", 0, "john@example.com\njane@example.com", 0,
     NULL},
    {"\"john\"@Example.COM", 0, "john@example.com", 0, NULL},
    {"\"a\\\"b\"@x.org", 0, "\"a\\\"b\"@x.org", 0, NULL},
    {"\"a b\"@x.org", 0, "\"a b\"@x.org", 0, NULL},
    {"\"a\\b\"@x.org", 0, "ab@x.org", 0, NULL},
    {"\"a\\\\b\"@x.org", 0, "\"a\\\\b\"@x.org", 0, NULL},
    {"\".a\"@x.org", 0, "\".a\"@x.org", 0, NULL},
    {"\"a..b\"@x.org", 0, "\"a..b\"@x.org", 0, NULL},
    {"\"\"@x.org", 0, "\"\"@x.org", 0, NULL},
    {"John.Smith@x.org", 0, "John.Smith@x.org", 0, NULL},
    {"a+tag@x.org", 0, "a+tag@x.org", 0, NULL},
    {"!#$%&'*+-/=?^_`{|}~@x.org", 0, "!#$%&'*+-/=?^_`{|}~@x.org", 0, NULL},
    {"<john@x.org>", 0, "john@x.org", 0, NULL},
    {"  <john@x.org>  ", 0, "john@x.org", 0, NULL},
    {"< john @ x.org >", 0, "john@x.org", 0, NULL},
    {"x@y.org.", 0, "x@y.org", 0, NULL},
    {"x@Y.Example.ORG", 0, "x@y.example.org", 0, NULL},
    /* display names must not leak into the address */
    {"\"ceo@bank.com\" <evil@x.org>", 0, "evil@x.org", 0, NULL},
    {"ceo@bank.com <evil@x.org>", 0, NULL, 0, "unexpected '<' at offset 13"},
    {"evil@x.org (ceo@bank.com)", 0, "evil@x.org", 0, NULL},
    {"=?utf-8?q?ceo=40bank.com?= <evil@x.org>", 0, "evil@x.org", 0, NULL},
    {"=?utf-8?b?Y2VvQGJhbmsuY29t?= <evil@x.org>", 0, "evil@x.org", 0, NULL},
    {"=?utf-8?q?ceo@bank.com?= <evil@x.org>", 0, NULL, 0, "domain"},
    {"<evil@x.org> <other@y.org>", 0, NULL, 0, "unexpected '<' at offset 13"},
    {"a@x.org <b@y.org>", 0, NULL, 0, "unexpected '<'"},
    {"John <a@x.org> jane", 0, NULL, 0, "unexpected 'j'"},
    {"John <a@x.org>, <b@y.org>", 0, "a@x.org\nb@y.org", 0, NULL},
    {"Mr. John Q. Public <jqp@x.org>", 0, "jqp@x.org", 0, NULL},
    {".John <a@x.org>", 0, NULL, 0, "display name starts with '.'"},
    {"\"Smith, John\" <js@x.org>", 0, "js@x.org", 0, NULL},
    {"Smith, John <js@x.org>", 0, NULL, 0, "address without domain at offset 5"},
    {"Jöhn Smïth <js@x.org>", 0, "js@x.org", 0, NULL},
    /* folding, comments */
    {"John\r\n <john@x.org>", 0, "john@x.org", 0, NULL},
    {"John\n\t<john@x.org>", 0, "john@x.org", 0, NULL},
    {"John\r\n\r\n <john@x.org>", 0, NULL, 0, "line break not followed by white space"},
    {"john@x.org\r\n", 0, NULL, 0, "line break not followed by white space at offset 10"},
    {"\"a\r\n b\"@x.org", 0, "\"a b\"@x.org", 0, NULL},
    {"(a (b) c) x@y.org", 0, "x@y.org", 0, NULL},
    {"x(c)@(d)y.org", 0, "x@y.org", 0, NULL},
    {"x@y.org (a \\) b)", 0, "x@y.org", 0, NULL},
    {"(a (b c) x@y.org", 0, NULL, 0, "unterminated comment starting at offset 0"},
    {"x@y.org (", 0, NULL, 0, "unterminated comment"},
    {"x@y.org (\\", 0, NULL, 0, "unterminated comment"},
    {"x@y.org (a\x01)", 0, NULL, 0, "control character 0x01 in comment"},
    {"((((((((((((((((((((((((((((((((((x))))))))))))))))))))))))))))))))) a@x.org", 0, NULL, 0,
     "nested deeper"},
    /* groups */
    {"undisclosed-recipients:;", 0, "", 1, NULL},
    {"undisclosed-recipients: ;", 0, "", 1, NULL},
    {"team: a@x.org, b@y.org;, c@z.org", 0, "a@x.org\nb@y.org\nc@z.org", 1, NULL},
    {"a: b@x.org;, c: d@y.org, , ;", 0, "b@x.org\nd@y.org", 2, NULL},
    {"team: John <a@x.org> (x);", 0, "a@x.org", 1, NULL},
    {"team: a@x.org", 0, NULL, 0, "unterminated group starting at offset 4"},
    {"a: b: c@x.org;;", 0, NULL, 0, "group inside a group"},
    {":;", 0, NULL, 0, "group without display name"},
    {"a@x.org;", 0, NULL, 0, "unexpected ';' at offset 7"},
    {"team:; x", 0, NULL, 0, "unexpected 'x'"},
    /* IDN, UTF-8 */
    {"user@bücher.example", 0, "user@xn--bcher-kva.example", 0, NULL},
    {"user@xn--bcher-kva.example", 0, "user@xn--bcher-kva.example", 0, NULL},
    {"user@XN--BCHER-KVA.Example", 0, "user@xn--bcher-kva.example", 0, NULL},
    {"user@BÜCHER.example", 0, "user@xn--bcher-kva.example", 0, NULL},
    {"jörg@bücher.example", 0, "jörg@xn--bcher-kva.example", 0, NULL},
    {"\"jö rg\"@x.org", 0, "\"jö rg\"@x.org", 0, NULL},
    {"user@xn--zz.example", 0, NULL, 0, "invalid A-label"},
    {"user@a\xef\xbc\xa0"
     "b.example",
     0, NULL, 0, "international domain name"},
    {"user@ab\xef\xbc\x8e"
     "cd.example",
     0, NULL, 0, "international domain name"},
    {"user@\xe2\x80\x8d.example", 0, NULL, 0, "domain"},
    {"a\xff@x.org", 0, NULL, 0, "invalid UTF-8 at offset 1"},
    {"a@x.org (\xc3)", 0, NULL, 0, "invalid UTF-8 at offset 9"},
    {"\xc0\xaf@x.org", 0, NULL, 0, "invalid UTF-8 at offset 0"},
    {"\xed\xa0\x80@x.org", 0, NULL, 0, "invalid UTF-8 at offset 0"},
    {"\xf4\x90\x80\x80@x.org", 0, NULL, 0, "invalid UTF-8 at offset 0"},
    /* obsolete syntax */
    {"<@relay.example:a@b.example>", 0, "a@b.example", 0, NULL},
    {"<@r1.example,@r2.example:a@b.example>", 0, "a@b.example", 0, NULL},
    {"Joe <,@r1.example, ,@r2.example : a@b.example>", 0, "a@b.example", 0, NULL},
    {"<@relay.example a@b.example>", 0, NULL, 0, "unexpected 'a'"},
    {"<@:a@b.example>", 0, NULL, 0, "unexpected ':' at offset 2"},
    {"john . smith@x.org", 0, "john.smith@x.org", 0, NULL},
    {"\"john\".smith@x.org", 0, "john.smith@x.org", 0, NULL},
    {"\"john x\".smith@x.org", 0, "\"john x.smith\"@x.org", 0, NULL},
    {"john@x . org", 0, "john@x.org", 0, NULL},
    {"", 0, "", 0, NULL},
    {"   ", 0, "", 0, NULL},
    {"(only a comment)", 0, "", 0, NULL},
    {"x@y.org,", 0, "x@y.org", 0, NULL},
    {", ,x@y.org, ,", 0, "x@y.org", 0, NULL},
    {",", 0, "", 0, NULL},
    /* hostile bytes */
    {"a@x.org\0b@y.org", 15, NULL, 0, "NUL byte at offset 7"},
    {"a@x.org\rb@y.org", 0, NULL, 0, "bare CR at offset 7"},
    {"a@x.org\r", 0, NULL, 0, "bare CR"},
    {"a\x01@x.org", 0, NULL, 0, "unexpected byte 0x01 at offset 1"},
    {"\"a\x01\"@x.org", 0, NULL, 0, "control character 0x01 in quoted string"},
    {"\"a\\\x01\"@x.org", 0, NULL, 0, "invalid quoted-pair"},
    {"\"a\tb\"@x.org", 0, NULL, 0, "control character 0x09 in local part"},
    {"\"a\tb\" <a@x.org>", 0, "a@x.org", 0, NULL},
    /* unclosed things */
    {"\"john@x.org", 0, NULL, 0, "unterminated quoted string starting at offset 0"},
    {"\"john\\", 0, NULL, 0, "unterminated quoted string"},
    {"John <john@x.org", 0, NULL, 0, "unterminated '<' at offset 5"},
    {"John <john", 0, NULL, 0, "unterminated '<'"},
    {"John <john>", 0, NULL, 0, "address without domain at offset 10"},
    {"x@[192.0.2.1", 0, NULL, 0, "unterminated domain literal"},
    {"John john@x.org>", 0, NULL, 0, "words not separated by '.'"},
    /* not addresses */
    {"<>", 0, NULL, 0, "empty address '<>' at offset 0"},
    {"John <>", 0, NULL, 0, "empty address"},
    {"a@b@c", 0, NULL, 0, "domain without '.'"},
    {"a@b.org@c.org", 0, NULL, 0, "unexpected '@' at offset 7"},
    {"@x.org", 0, NULL, 0, "address without local part at offset 0"},
    {"a@", 0, NULL, 0, "address without domain at offset 2"},
    {"a@ ", 0, NULL, 0, "address without domain"},
    {"john", 0, NULL, 0, "address without domain at offset 4"},
    {"john smith", 0, NULL, 0, "address without domain"},
    {"a@localhost", 0, NULL, 0, "domain without '.'"},
    {"a@.x.org", 0, NULL, 0, "domain starts with '.' at offset 2"},
    {"a@x..org", 0, NULL, 0, "empty domain label at offset 4"},
    {"a@x.org..", 0, NULL, 0, "empty domain label"},
    {".a@x.org", 0, NULL, 0, "local part starts with '.' at offset 0"},
    {"a.@x.org", 0, NULL, 0, "local part ends with '.' at offset 1"},
    {"a..b@x.org", 0, NULL, 0, "'..' in local part at offset 2"},
    {"a b@x.org", 0, NULL, 0, "words not separated by '.' at offset 2"},
    {"a@x_y.org", 0, NULL, 0, "invalid character '_' in domain"},
    {"a@x+y.org", 0, NULL, 0, "invalid character '+' in domain"},
    {"a@-x.org", 0, NULL, 0, "starts or ends with '-'"},
    {"a@x-.org", 0, NULL, 0, "starts or ends with '-'"},
    {"a@1.2.3.4", 0, NULL, 0, "all digits"},
    {"a@x.org>", 0, NULL, 0, "unexpected '>'"},
    {"[a]@x.org", 0, NULL, 0, "unexpected '['"},
    {"a@x.org, )", 0, NULL, 0, "unexpected ')'"},
    {"a\\b@x.org", 0, NULL, 0, "unexpected '\\'"},
    /* domain literals */
    {"x@[192.0.2.1]", 0, "x@[192.0.2.1]", 0, NULL},
    {"x@[IPv6:2001:DB8:0::1]", 0, "x@[IPv6:2001:db8::1]", 0, NULL},
    {"x@[ipv6:::1]", 0, "x@[IPv6:::1]", 0, NULL},
    {"x@ [192.0.2.1] (c)", 0, "x@[192.0.2.1]", 0, NULL},
    {"x@[192.0.2.256]", 0, NULL, 0, "invalid domain literal"},
    {"x@[192.0.2.1 ]", 0, NULL, 0, "unexpected space"},
    {"x@[example.org]", 0, NULL, 0, "invalid domain literal"},
    {"x@[a\\]b]", 0, NULL, 0, "unexpected '\\'"},
    {"x@[]", 0, NULL, 0, "invalid domain literal"},
    /* length limits */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org", 0,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org", 0, NULL},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org", 0, NULL, 0,
     "local part longer than 64 bytes"},
    {"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b\"@x.org", 0, NULL, 0,
     "local part longer than 64 bytes"},
    {"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b\"@x.org", 0,
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b\"@x.org", 0, NULL},
    {"a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.org", 0,
     "a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.org", 0, NULL},
    {"a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.org", 0, NULL, 0,
     "domain label too long"},
};

/* join - the canonical addresses of a list joined by '\n' */
static void join(const struct mw_addr_list *list, char *buf, size_t size)
{
	size_t i, off = 0;
	buf[0] = '\0';
	for (i = 0; i < list->count; i++) {
		int n =
		    snprintf(buf + off, size - off, "%s%s", i > 0 ? "\n" : "", list->addrs[i].addr);
		assert_true(n >= 0 && (size_t)n < size - off);
		off += (size_t)n;
	}
}

/* test_header_table - every case gives exactly its addresses or its error */
static void test_header_table(void **state)
{
	size_t i, failures = 0;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(header_cases); i++) {
		const struct header_case *c = &header_cases[i];
		struct mw_addr_list list;
		mw_error err;
		char got[8192];
		size_t len = c->len ? c->len : strlen(c->in);
		int ret;
		err.msg[0] = '\0';
		ret = mw_addr_parse_header(c->in, len, &list, &err);
		if (c->want == NULL) {
			if (ret != -1 || strstr(err.msg, c->err) == NULL || list.count != 0 ||
			    list.addrs != NULL) {
				print_error("case %zu [%s]: ret %d err [%s], want error [%s]\n", i,
				            c->in, ret, err.msg, c->err);
				failures++;
			}
			mw_addr_list_free(&list);
			continue;
		}
		if (ret != 0) {
			print_error("case %zu [%s]: %s\n", i, c->in, err.msg);
			failures++;
			continue;
		}
		join(&list, got, sizeof(got));
		if (strcmp(got, c->want) != 0 || list.groups != c->groups) {
			print_error("case %zu [%s]: got [%s] groups %zu, want [%s] groups %zu\n", i,
			            c->in, got, list.groups, c->want, c->groups);
			failures++;
		}
		mw_addr_list_free(&list);
	}
	assert_int_equal(failures, 0);
}

/* test_header_fields - local and domain parts are split as documented */
static void test_header_fields(void **state)
{
	struct mw_addr_list list;
	const char *in = "Jöhn <\"J. Doe\"@Bücher.Example.>";
	(void)state;
	assert_int_equal(mw_addr_parse_header(in, strlen(in), &list, NULL), 0);
	assert_int_equal(list.count, 1);
	assert_string_equal(list.addrs[0].local, "\"J. Doe\"");
	assert_string_equal(list.addrs[0].domain, "xn--bcher-kva.example");
	assert_string_equal(list.addrs[0].addr, "\"J. Doe\"@xn--bcher-kva.example");
	assert_false(list.addrs[0].null_path);
	mw_addr_list_free(&list);
	mw_addr_list_free(&list); /* twice is harmless */
}

/* test_header_limits - header size and address count limits */
static void test_header_limits(void **state)
{
	struct mw_addr_list list;
	mw_error err;
	char *buf = malloc(MW_ADDR_HEADER_MAX + 2);
	size_t i, off = 0;
	(void)state;
	assert_non_null(buf);
	/* exactly MW_ADDR_LIST_MAX addresses pass, one more is refused */
	for (i = 0; i < MW_ADDR_LIST_MAX + 1; i++) {
		int n = snprintf(buf + off, MW_ADDR_HEADER_MAX + 2 - off, "%su%zu@x.org",
		                 i ? "," : "", i);
		assert_true(n > 0);
		off += (size_t)n;
		if (i == MW_ADDR_LIST_MAX - 1) {
			assert_int_equal(mw_addr_parse_header(buf, off, &list, &err), 0);
			assert_int_equal(list.count, MW_ADDR_LIST_MAX);
			assert_string_equal(list.addrs[99].addr, "u99@x.org");
			mw_addr_list_free(&list);
		}
	}
	assert_int_equal(mw_addr_parse_header(buf, off, &list, &err), -1);
	assert_non_null(strstr(err.msg, "more than 100 addresses"));
	assert_null(list.addrs);
	/* empty groups count, addresses do not: a long run of empty elements is fine */
	memset(buf, ' ', MW_ADDR_HEADER_MAX + 1);
	memcpy(buf, "a@x.org,", 8);
	assert_int_equal(mw_addr_parse_header(buf, MW_ADDR_HEADER_MAX, &list, &err), 0);
	assert_int_equal(list.count, 1);
	mw_addr_list_free(&list);
	assert_int_equal(mw_addr_parse_header(buf, MW_ADDR_HEADER_MAX + 1, &list, &err), -1);
	assert_non_null(strstr(err.msg, "longer than 16384"));
	/* a domain over 255 bytes */
	off = 0;
	off += (size_t)snprintf(buf, 8, "a@");
	for (i = 0; i < 5; i++) {
		memset(buf + off, 'b', 60);
		off += 60;
		buf[off++] = '.';
	}
	memcpy(buf + off, "org", 3);
	off += 3;
	assert_int_equal(mw_addr_parse_header(buf, off, &list, &err), -1);
	assert_non_null(strstr(err.msg, "domain longer than 255"));
	free(buf);
}

/* test_header_lf_fold_inside - folded display names and comments across lines */
static void test_header_multiline(void **state)
{
	struct mw_addr_list list;
	const char *in = "\"Team\" (the\r\n team):\r\n a@x.org,\r\n\t(b)\r\n b@y.org\r\n ;";
	(void)state;
	assert_int_equal(mw_addr_parse_header(in, strlen(in), &list, NULL), 0);
	assert_int_equal(list.count, 2);
	assert_int_equal(list.groups, 1);
	assert_string_equal(list.addrs[1].addr, "b@y.org");
	mw_addr_list_free(&list);
}

/* One envelope case: want NULL means error containing err; "" with null_path for <> */
struct env_case {
	const char *in;
	bool bare;
	const char *want;
	bool null_path;
	const char *err;
};

static const struct env_case env_cases[] = {
    {"<a@b.example>", false, "a@b.example", false, NULL},
    {"<A.B@B.Example>", false, "A.B@b.example", false, NULL},
    {"<>", false, "", true, NULL},
    {"<>", true, "", true, NULL},
    {"", true, "", true, NULL},
    {"", false, NULL, false, "empty envelope address"},
    {"a@b.example", true, "a@b.example", false, NULL},
    {"a@b.example", false, NULL, false, "missing '<' at offset 0"},
    {"<@r1.example,@r2.example:a@b.example>", false, "a@b.example", false, NULL},
    {"<@[192.0.2.1]:a@b.example>", false, "a@b.example", false, NULL},
    {"<@r1.example:@r2.example:a@b.example>", false, NULL, false,
     "address without local part at offset 13"},
    {"<@r1.example a@b.example>", false, NULL, false, "unexpected space"},
    {"<\"john\"@b.example>", false, "john@b.example", false, NULL},
    {"<\"j doe\"@b.example>", false, "\"j doe\"@b.example", false, NULL},
    {"<\"j\\\"d\"@b.example>", false, "\"j\\\"d\"@b.example", false, NULL},
    {"<\"j\\\\d\"@b.example>", false, "\"j\\\\d\"@b.example", false, NULL},
    {"<\"j\tb\"@b.example>", false, NULL, false, "control character 0x09"},
    {"<\"jd@b.example>", false, NULL, false, "unterminated quoted string"},
    {"<a@localhost>", false, "a@localhost", false, NULL},
    {"<a@b.example.>", false, "a@b.example", false, NULL},
    {"<a@bücher.example>", false, "a@xn--bcher-kva.example", false, NULL},
    {"<jörg@bücher.example>", false, "jörg@xn--bcher-kva.example", false, NULL},
    {"<a@[192.0.2.1]>", false, "a@[192.0.2.1]", false, NULL},
    {"<a@[IPv6:2001:db8::1]>", false, "a@[IPv6:2001:db8::1]", false, NULL},
    {"<a@[192.0.2.1]x>", false, NULL, false, "unexpected 'x'"},
    {"<a@b.example> SIZE=10", false, NULL, false, "unexpected text after the address"},
    {"<a@b.example>>", false, NULL, false, "unexpected text after the address at offset 13"},
    {"<>x", false, NULL, false, "unexpected text after '>'"},
    {"<a@b.example", false, NULL, false, "unterminated '<'"},
    {"< a@b.example>", false, NULL, false, "unexpected space at offset 1"},
    {"<a @b.example>", false, NULL, false, "unexpected space"},
    {"<a@b.example (c)>", false, NULL, false, "unexpected space"},
    {"<John <a@b.example>>", false, NULL, false, "unexpected space"},
    {"<a@b@c.example>", false, NULL, false, "unexpected '@'"},
    {"<@b.example>", false, NULL, false, "unexpected '>'"},
    {"<a@>", false, NULL, false, "address without domain at offset 3"},
    {"<a>", false, NULL, false, "address without domain at offset 2"},
    {"<.a@b.example>", false, NULL, false, "misplaced '.'"},
    {"<a.@b.example>", false, NULL, false, "misplaced '.'"},
    {"<a..b@b.example>", false, NULL, false, "misplaced '.'"},
    {"<a@b..example>", false, NULL, false, "empty domain label"},
    {"<a@b_c.example>", false, NULL, false, "unexpected '_'"},
    {"<a@xn--zz.example>", false, NULL, false, "invalid A-label"},
    {"<a\x01@b.example>", false, NULL, false, "control character 0x01 at offset 2"},
    {"<a\xff@b.example>", false, NULL, false, "invalid UTF-8 at offset 2"},
    {"<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@b.example>", false, NULL,
     false, "local part longer than 64 bytes"},
    {"a@b.example>", true, NULL, false, "unexpected '>'"},
    {"<a@b.example", true, NULL, false, "unterminated '<'"},
};

/* test_envelope_table - every envelope case gives its address or its error */
static void test_envelope_table(void **state)
{
	size_t i, failures = 0;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(env_cases); i++) {
		const struct env_case *c = &env_cases[i];
		struct mw_addr a;
		mw_error err;
		int ret;
		err.msg[0] = '\0';
		ret = mw_addr_parse_envelope(c->in, strlen(c->in), c->bare, &a, &err);
		if (c->want == NULL) {
			if (ret != -1 || strstr(err.msg, c->err) == NULL || a.addr[0] != '\0') {
				print_error("env case %zu [%s]: ret %d err [%s] want [%s]\n", i,
				            c->in, ret, err.msg, c->err);
				failures++;
			}
			continue;
		}
		if (ret != 0 || strcmp(a.addr, c->want) != 0 || a.null_path != c->null_path) {
			print_error("env case %zu [%s]: ret %d [%s] err [%s]\n", i, c->in, ret,
			            a.addr, err.msg);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* test_envelope_nul - a NUL byte inside the given length is refused */
static void test_envelope_nul(void **state)
{
	struct mw_addr a;
	mw_error err;
	(void)state;
	assert_int_equal(mw_addr_parse_envelope("<a@b.example>\0", 14, false, &a, &err), -1);
	assert_non_null(strstr(err.msg, "NUL byte at offset 13"));
	assert_int_equal(mw_addr_parse_envelope("<a@b.ex>", 5, false, &a, &err), -1);
}

/* Domain normalisation cases: want NULL means an error. */
static const struct {
	const char *in;
	const char *want;
} domain_cases[] = {
    {"Example.COM", "example.com"},
    {"example.com.", "example.com"},
    {"bücher.example", "xn--bcher-kva.example"},
    {"BÜCHER.example", "xn--bcher-kva.example"},
    {"straße.de", "xn--strae-oqa.de"},
    {"xn--strae-oqa.de", "xn--strae-oqa.de"},
    {"localhost", "localhost"},
    {"a-b.c-d.example", "a-b.c-d.example"},
    {"", NULL},
    {".", NULL},
    {"example.com..", NULL},
    {".example.com", NULL},
    {"a b.example", NULL},
    {"a_b.example", NULL},
    {"a@b.example", NULL},
    {"*.example", NULL},
    {"-a.example", NULL},
    {"xn--zz.example", NULL},
    {"a\xef\xbc\xa0"
     "b.example",
     NULL},                                     /* fullwidth '@' must not map to '@' or vanish */
    {"\xef\xbd\x81\xef\xbd\x82.example", NULL}, /* fullwidth "ab" is not an A-label */
    {"\xff.example", NULL},
    {"example.123", NULL},
};

/* test_domain_normalize - host names to lower-case A-label form, anything else refused */
static void test_domain_normalize(void **state)
{
	size_t i;
	char out[MW_ADDR_DOMAIN_MAX + 1], small[4];
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(domain_cases); i++) {
		mw_error err;
		int ret = mw_addr_domain_normalize(domain_cases[i].in, strlen(domain_cases[i].in),
		                                   out, sizeof(out), &err);
		if (domain_cases[i].want == NULL) {
			if (ret != -1)
				print_error("domain case %zu [%s]: accepted as [%s]\n", i,
				            domain_cases[i].in, out);
			assert_int_equal(ret, -1);
			assert_true(err.msg[0] != '\0');
		} else {
			if (ret != 0)
				print_error("domain case %zu: %s\n", i, err.msg);
			assert_int_equal(ret, 0);
			assert_string_equal(out, domain_cases[i].want);
		}
	}
	assert_int_equal(mw_addr_domain_normalize("example.com", 11, small, sizeof(small), NULL),
	                 -1);
	assert_string_equal(small, "");
	assert_int_equal(mw_addr_domain_normalize("a\0b.example", 11, out, sizeof(out), NULL), -1);
}

/* test_roundtrip - every canonical header address re-parses as an envelope to itself */
static void test_roundtrip(void **state)
{
	size_t i, j;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(header_cases); i++) {
		const struct header_case *c = &header_cases[i];
		struct mw_addr_list list;
		if (c->want == NULL)
			continue;
		assert_int_equal(
		    mw_addr_parse_header(c->in, c->len ? c->len : strlen(c->in), &list, NULL), 0);
		for (j = 0; j < list.count; j++) {
			char env[MW_ADDR_MAX + 3];
			struct mw_addr a;
			mw_error err;
			int n = snprintf(env, sizeof(env), "<%s>", list.addrs[j].addr);
			assert_true(n > 0 && (size_t)n < sizeof(env));
			if (mw_addr_parse_envelope(env, (size_t)n, false, &a, &err) != 0)
				print_error("roundtrip [%s]: %s\n", env, err.msg);
			assert_int_equal(mw_addr_parse_envelope(env, (size_t)n, false, &a, &err),
			                 0);
			assert_string_equal(a.addr, list.addrs[j].addr);
			assert_string_equal(a.local, list.addrs[j].local);
			assert_string_equal(a.domain, list.addrs[j].domain);
		}
		mw_addr_list_free(&list);
	}
}

/* RFC 2047 decoding: input, UTF-8 output (NULL: refused, err containing the text) */
static const struct {
	const char *in, *out, *err;
} rfc2047_cases[] = {
    {"plain text", "plain text", NULL},
    {"a = b ? c", "a = b ? c", NULL},
    {"=?utf-8?q?J=C3=B6rg_M?=", "J\xc3\xb6rg M", NULL},
    {"=?UTF-8?Q?J=c3=b6rg?=", "J\xc3\xb6rg", NULL},
    {"=?iso-8859-1?q?J=F6rg?=", "J\xc3\xb6rg", NULL},
    {"=?ISO-8859-15?Q?=A4?=", "\xe2\x82\xac", NULL},
    {"=?windows-1252?q?=80?=", "\xe2\x82\xac", NULL},
    {"=?utf-8?b?SsO2cmc=?=", "J\xc3\xb6rg", NULL},
    {"=?utf-8?b?SsO2?=", "J\xc3\xb6", NULL},
    {"=?utf-8?b?SsO2cg==?=", "J\xc3\xb6r", NULL},
    {"=?utf-8?b?"
     "?=",
     "", NULL},
    {"=?utf-16be?b?AEoA9g==?=", "J\xc3\xb6", NULL},
    {"=?iso-2022-jp?b?GyRCJCIbKEI=?=", "\xe3\x81\x82", NULL},
    {"=?utf-7?q?a+AEA-b?=", "a@b", NULL},
    {"=?utf-8*de?q?J=C3=B6rg?=", "J\xc3\xb6rg", NULL},
    {"=?utf-8?q?a?= =?utf-8?q?b?=", "ab", NULL},
    {"=?utf-8?q?a?=\r\n\t=?utf-8?q?b?=", "ab", NULL},
    {"=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c", NULL},
    {"x=?utf-8?q?a?=y", "xay", NULL},
    {"=?utf-8?q?a?= ", "a ", NULL},
    {"=?utf-8?q?=00?=", NULL, NULL}, /* a NUL: decodes (the caller judges it) */
    {"=?", NULL, "malformed"},
    {"=?utf-8?q?abc", NULL, "malformed"},
    {"=?utf-8?q?a b?=", NULL, "malformed"},
    {"=??q?a?=", NULL, "malformed"},
    {"=?utf-8?z?a?=", NULL, "malformed"},
    {"=?utf-8?q?=4?=", NULL, "quoted-printable"},
    {"=?utf-8?q?=G0?=", NULL, "quoted-printable"},
    {"=?utf-8?b?SsO?=", NULL, "base64"},
    {"=?utf-8?b?S!O2?=", NULL, "base64"},
    {"=?utf-8?q?=C3?=", NULL, "cannot be converted"},
    {"=?utf-8?q?=FF?=", NULL, "cannot be converted"},
    {"=?us-ascii?q?=80?=", NULL, "cannot be converted"},
    {"=?x-no-such?q?a?=", NULL, "cannot be converted"},
    {"=?*en?q?a?=", NULL, "without charset"},
    {"=?utf-8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?q?a?=", NULL,
     "too long"},
};

/* test_rfc2047 - encoded-words decoded, or refused with a reason */
static void test_rfc2047(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(rfc2047_cases); i++) {
		mw_str out;
		mw_error err;
		int r;

		mw_str_init(&out, 1024);
		err.msg[0] = '\0';
		r = mw_rfc2047_decode(rfc2047_cases[i].in, strlen(rfc2047_cases[i].in), &out, &err);
		if (rfc2047_cases[i].err != NULL) {
			if (r != -1 || strstr(err.msg, rfc2047_cases[i].err) == NULL)
				fail_msg("case %zu: %d \"%s\", want error ...%s...", i, r, err.msg,
				         rfc2047_cases[i].err);
		} else if (r != 0) {
			fail_msg("case %zu: refused: %s", i, err.msg);
		} else if (rfc2047_cases[i].out != NULL &&
		           (out.len != strlen(rfc2047_cases[i].out) ||
		            memcmp(mw_str_c(&out), rfc2047_cases[i].out, out.len) != 0)) {
			fail_msg("case %zu: got \"%s\"", i, mw_str_c(&out));
		}
		mw_str_free(&out);
	}
	{
		/* the output bound is respected */
		mw_str out;
		mw_error err;
		mw_str_init(&out, 3);
		assert_int_equal(mw_rfc2047_decode("=?utf-8?q?abcd?=", 16, &out, &err), -1);
		mw_str_free(&out);
	}
}

/* test_header_name_is - "From", "from", "From " and "FROM\t" are From; others not */
static void test_header_name_is(void **state)
{
	(void)state;
	assert_true(mw_addr_header_name_is("From", "From"));
	assert_true(mw_addr_header_name_is("fROM", "From"));
	assert_true(mw_addr_header_name_is("From ", "From"));
	assert_true(mw_addr_header_name_is("From \t ", "From"));
	assert_false(mw_addr_header_name_is(" From", "From"));
	assert_false(mw_addr_header_name_is("Fromx", "From"));
	assert_false(mw_addr_header_name_is("Fro", "From"));
	assert_false(mw_addr_header_name_is("", "From"));
	assert_false(mw_addr_header_name_is("Resent-From", "From"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_table),     cmocka_unit_test(test_header_fields),
	    cmocka_unit_test(test_header_limits),    cmocka_unit_test(test_header_multiline),
	    cmocka_unit_test(test_envelope_table),   cmocka_unit_test(test_envelope_nul),
	    cmocka_unit_test(test_domain_normalize), cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_rfc2047),          cmocka_unit_test(test_header_name_is),
	};
	MW_RUN_TESTS(tests);
}
