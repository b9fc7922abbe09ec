/* test-addr.c - RFC 5322 header and RFC 5321 envelope address parsing: case files
   (tests/data/addr) of accepted inputs with their exact addr-spec lists and hostile inputs
   with their errors; tables of domains, encoded-words and header names.
   Needs top_srcdir in the environment (the test driver sets it). */
#include "mw-build.h"
#include "mw-addr.h"
#include "mw-rfc2047.h"

#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The case files tests/data/addr/NAME: one case a line, fields separated by a TAB (the
   files say what each field is). At most CASE_FIELDS fields. */
#define CASE_FIELDS 4

/* One case: its line number and its fields, decoded (NUL bytes included: lengths in len) */
struct case_line {
	unsigned line;
	size_t n;
	char *f[CASE_FIELDS];
	size_t len[CASE_FIELDS];
};

/* A case file read whole; the cases' fields point into buf */
struct case_file {
	const char *name;
	char *buf;
	struct case_line *cases;
	size_t n;
};

/* case_file_read - every case of tests/data/addr/NAME, split at its TABs and decoded; fails
   the test when the file cannot be read, a line has too many fields or a bad escape, or the
   file holds no case */
static void case_file_read(const char *name, struct case_file *cf)
{
	char rel[128], where[160];
	size_t len, size = 0;
	char *p, *end, *eol;
	unsigned line = 0;
	snprintf(rel, sizeof(rel), "tests/data/addr/%s", name);
	cf->name = name;
	cf->buf = mw_test_data_read(rel, &len);
	cf->cases = NULL;
	cf->n = 0;
	for (p = cf->buf, end = cf->buf + len; p < end; p = eol + 1) {
		struct case_line *c;
		char *f = p;
		eol = p + strcspn(p, "\n");
		line++;
		*eol = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		if (cf->n == size) {
			size = size > 0 ? 2 * size : 64;
			cf->cases = realloc(cf->cases, size * sizeof(*cf->cases));
			assert_non_null(cf->cases);
		}
		c = &cf->cases[cf->n++];
		c->line = line;
		c->n = 0;
		snprintf(where, sizeof(where), "%s:%u", name, line);
		for (;;) {
			char *tab = strchr(f, '\t');
			if (c->n == CASE_FIELDS)
				fail_msg("%s: more than %d fields", where, CASE_FIELDS);
			c->f[c->n] = f;
			c->len[c->n] =
			    mw_test_unescape(f, tab != NULL ? (size_t)(tab - f) : strlen(f), where);
			c->n++;
			if (tab == NULL)
				break;
			f = tab + 1;
		}
	}
	if (cf->n == 0)
		fail_msg("%s: no cases", name);
}

/* case_file_free - free what case_file_read allocated */
static void case_file_free(struct case_file *cf)
{
	free(cf->cases);
	free(cf->buf);
}

/* case_is - whether case C is KIND ("ok", "refused") with N fields; fails the test when it
   is neither kind of the file, or has the wrong number of fields */
static bool case_is(const struct case_file *cf, const struct case_line *c, const char *kind,
                    size_t n)
{
	if (strcmp(c->f[0], "ok") != 0 && strcmp(c->f[0], "refused") != 0)
		fail_msg("%s:%u: a case is ok or refused, not [%s]", cf->name, c->line, c->f[0]);
	if (strcmp(c->f[0], kind) != 0)
		return false;
	if (c->n != n)
		fail_msg("%s:%u: %s wants %zu fields, not %zu", cf->name, c->line, kind, n, c->n);
	return true;
}

/* case_groups - the GROUPS field of a header case */
static size_t case_groups(const struct case_file *cf, const struct case_line *c)
{
	char *end;
	unsigned long g = strtoul(c->f[3], &end, 10);
	if (c->len[3] == 0 || *end != '\0')
		fail_msg("%s:%u: groups [%s] is not a number", cf->name, c->line, c->f[3]);
	return (size_t)g;
}

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

/* test_header_table - every case of header-cases.txt gives exactly its addresses or its
   error */
static void test_header_table(void **state)
{
	struct case_file cf;
	size_t i, failures = 0;
	(void)state;
	case_file_read("header-cases.txt", &cf);
	for (i = 0; i < cf.n; i++) {
		const struct case_line *c = &cf.cases[i];
		struct mw_addr_list list;
		mw_error err;
		char got[8192];
		size_t groups;
		int ret;
		err.msg[0] = '\0';
		if (case_is(&cf, c, "refused", 3)) {
			ret = mw_addr_parse_header(c->f[1], c->len[1], &list, &err);
			if (ret != -1 || strstr(err.msg, c->f[2]) == NULL || list.count != 0 ||
			    list.addrs != NULL) {
				print_error("%s:%u [%s]: ret %d err [%s], want error [%s]\n",
				            cf.name, c->line, c->f[1], ret, err.msg, c->f[2]);
				failures++;
			}
			mw_addr_list_free(&list);
			continue;
		}
		(void)case_is(&cf, c, "ok", 4);
		groups = case_groups(&cf, c);
		ret = mw_addr_parse_header(c->f[1], c->len[1], &list, &err);
		if (ret != 0) {
			print_error("%s:%u [%s]: %s\n", cf.name, c->line, c->f[1], err.msg);
			failures++;
			continue;
		}
		join(&list, got, sizeof(got));
		if (strcmp(got, c->f[2]) != 0 || list.groups != groups) {
			print_error("%s:%u [%s]: got [%s] groups %zu, want [%s] groups %zu\n",
			            cf.name, c->line, c->f[1], got, list.groups, c->f[2], groups);
			failures++;
		}
		mw_addr_list_free(&list);
	}
	case_file_free(&cf);
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

/* test_envelope_table - every case of envelope-cases.txt gives its address or its error */
static void test_envelope_table(void **state)
{
	struct case_file cf;
	size_t i, failures = 0;
	(void)state;
	case_file_read("envelope-cases.txt", &cf);
	for (i = 0; i < cf.n; i++) {
		const struct case_line *c = &cf.cases[i];
		bool refused = !case_is(&cf, c, "ok", 4) && case_is(&cf, c, "refused", 4);
		bool bare = strcmp(c->f[1], "bare") == 0, null_path = strcmp(c->f[3], "<>") == 0;
		struct mw_addr a;
		mw_error err;
		int ret;
		if (!bare && strcmp(c->f[1], "path") != 0)
			fail_msg("%s:%u: the mode is path or bare, not [%s]", cf.name, c->line,
			         c->f[1]);
		err.msg[0] = '\0';
		ret = mw_addr_parse_envelope(c->f[2], c->len[2], bare, &a, &err);
		if (refused) {
			if (ret != -1 || strstr(err.msg, c->f[3]) == NULL || a.addr[0] != '\0') {
				print_error("%s:%u [%s]: ret %d err [%s] want [%s]\n", cf.name,
				            c->line, c->f[2], ret, err.msg, c->f[3]);
				failures++;
			}
			continue;
		}
		if (ret != 0 || strcmp(a.addr, null_path ? "" : c->f[3]) != 0 ||
		    a.null_path != null_path) {
			print_error("%s:%u [%s]: ret %d [%s] err [%s]\n", cf.name, c->line, c->f[2],
			            ret, a.addr, err.msg);
			failures++;
		}
	}
	case_file_free(&cf);
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
	struct case_file cf;
	size_t i, j;
	(void)state;
	case_file_read("header-cases.txt", &cf);
	for (i = 0; i < cf.n; i++) {
		const struct case_line *c = &cf.cases[i];
		struct mw_addr_list list;
		if (!case_is(&cf, c, "ok", 4))
			continue;
		assert_int_equal(mw_addr_parse_header(c->f[1], c->len[1], &list, NULL), 0);
		for (j = 0; j < list.count; j++) {
			char env[MW_ADDR_MAX + 3];
			struct mw_addr a;
			mw_error err;
			int n = snprintf(env, sizeof(env), "<%s>", list.addrs[j].addr);
			assert_true(n > 0 && (size_t)n < sizeof(env));
			if (mw_addr_parse_envelope(env, (size_t)n, false, &a, &err) != 0)
				print_error("roundtrip %s:%u [%s]: %s\n", cf.name, c->line, env,
				            err.msg);
			assert_int_equal(mw_addr_parse_envelope(env, (size_t)n, false, &a, &err),
			                 0);
			assert_string_equal(a.addr, list.addrs[j].addr);
			assert_string_equal(a.local, list.addrs[j].local);
			assert_string_equal(a.domain, list.addrs[j].domain);
		}
		mw_addr_list_free(&list);
	}
	case_file_free(&cf);
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

/* What mw_addr_display_scan hands out: each found address as shown, "local|domain;" */
struct scan_seen {
	char buf[256];
	const char *stop_at; /* the domain (as shown) at which to answer true */
};

/* scan_note - mw_addr_display_fn: records the address, true at stop_at */
static bool scan_note(const char *local, size_t llen, const char *domain, size_t dlen, void *ctx)
{
	struct scan_seen *seen = ctx;
	size_t n = strlen(seen->buf);
	snprintf(seen->buf + n, sizeof(seen->buf) - n, "%.*s|%.*s;", (int)llen, local, (int)dlen,
	         domain);
	return seen->stop_at != NULL && strlen(seen->stop_at) == dlen &&
	       memcmp(seen->stop_at, domain, dlen) == 0;
}

/* test_display_scan - every address-like text other than the header's own, as shown (decoded,
   blanks around '@' dropped, punctuation kept), in order; the verdict is the callback's;
   mw_addr_display_check is the scan that refuses the first */
static void test_display_scan(void **state)
{
	static const struct {
		const char *hdr, *stop_at, *seen;
		int ret, check;
	} cases[] = {
	    {"\"john@example.com\" <john@example.com>", NULL, "", 0, 0},
	    {"\"'jane@example.com'\" <john@example.com>", NULL, "'jane|example.com';", 0, 1},
	    {"\"a @ x.org (b@y.org)\" <john@example.com> (c@z.org)", "y.org", "a|x.org;b|y.org;", 1,
	     1},
	    {"\"a@x.org\" <john@example.com> (c@z.org)", "nothing", "a|x.org;c|z.org;", 0, 1},
	    {"=?utf-8?q?hyatt=40mozilla?= <john@example.com>", "mozilla", "hyatt|mozilla;", 1, 1},
	    {"\"=?x-unknown?q?a=40b?=\" <john@example.com>", NULL, "", -1, -1},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct mw_addr_list list;
		struct scan_seen seen = {"", cases[i].stop_at};
		mw_error err = {""};
		int ret;
		assert_int_equal(
		    mw_addr_parse_header(cases[i].hdr, strlen(cases[i].hdr), &list, &err), 0);
		ret = mw_addr_display_scan(cases[i].hdr, strlen(cases[i].hdr), &list, scan_note,
		                           &seen, &err);
		if (ret != cases[i].ret || strcmp(seen.buf, cases[i].seen) != 0)
			fail_msg("scan case %zu: ret %d seen [%s], want %d [%s]", i, ret, seen.buf,
			         cases[i].ret, cases[i].seen);
		assert_int_equal(
		    mw_addr_display_check(cases[i].hdr, strlen(cases[i].hdr), &list, &err),
		    cases[i].check);
		mw_addr_list_free(&list);
	}
}

/* Header field names: "From", "from", "From " and "FROM\t" are From; others not. */
static const struct {
	const char *name, *want;
	bool is;
} name_cases[] = {
    {"From", "From", true},     {"fROM", "From", true},   {"From ", "From", true},
    {"From \t ", "From", true}, {" From", "From", false}, {"Fromx", "From", false},
    {"Fro", "From", false},     {"", "From", false},      {"Resent-From", "From", false},
};

/* test_header_name_is - each name case is or is not the wanted field */
static void test_header_name_is(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(name_cases); i++)
		if (mw_addr_header_name_is(name_cases[i].name, name_cases[i].want) !=
		    name_cases[i].is)
			fail_msg("name case %zu: [%s] is %s: want %s", i, name_cases[i].name,
			         name_cases[i].want, name_cases[i].is ? "yes" : "no");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_table),     cmocka_unit_test(test_header_fields),
	    cmocka_unit_test(test_header_limits),    cmocka_unit_test(test_header_multiline),
	    cmocka_unit_test(test_envelope_table),   cmocka_unit_test(test_envelope_nul),
	    cmocka_unit_test(test_domain_normalize), cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_rfc2047),          cmocka_unit_test(test_header_name_is),
	    cmocka_unit_test(test_display_scan),
	};
	MW_RUN_TESTS(tests);
}
