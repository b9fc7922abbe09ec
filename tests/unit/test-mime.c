/* test-mime.c - lib/mw-mime: decoding, HTML to text, URLs, and hostile MIME (deep nesting,
   huge headers, broken base64/QP, unknown charsets, too many parts). */
#include "mw-build.h"
#include "mw-mime.h"
#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* parse - mw_mime_parse of a C string, asserting success */
static struct mw_mime_msg *parse(const char *raw)
{
	struct mw_mime_msg *m = NULL;
	mw_error err = {""};
	int ret = mw_mime_parse(raw, strlen(raw), NULL, &m, &err);
	if (ret != 0)
		fprintf(stderr, "parse: %s\n", err.msg);
	assert_int_equal(ret, 0);
	assert_non_null(m);
	return m;
}

/* has_url - the parse found this URL */
static bool has_url(const struct mw_mime_msg *m, const char *url)
{
	size_t i;
	for (i = 0; i < m->nurls; i++)
		if (strcmp(m->urls[i], url) == 0)
			return true;
	return false;
}

static void test_alternative(void **state)
{
	static const char msg[] =
	    "From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.org>\r\n"
	    "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus Bern\r\n"
	    "Message-ID: <1@example.org>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	    "\r\n"
	    "--b1\r\n"
	    "Content-Type: multipart/alternative; boundary=\"b2\"\r\n"
	    "\r\n"
	    "--b2\r\n"
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "Caf=E9 cr=E8me, see https://shop.example.com/deal?id=7.\r\n"
	    "--b2\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    /* <p>Hi &amp; <a href="http://evil.example.net/x">bye</a></p><script>var
	       s="nope";</script><div style="display: none">secret</div> */
	    "PHA+SGkgJmFtcDsgPGEgaHJlZj0iaHR0cDovL2V2aWwuZXhhbXBsZS5uZXQveCI+YnllPC9hPjwv\r\n"
	    "cD48c2NyaXB0PnZhciBzPSJub3BlIjs8L3NjcmlwdD48ZGl2IHN0eWxlPSJkaXNwbGF5OiBub25l\r\n"
	    "Ij5zZWNyZXQ8L2Rpdj4=\r\n"
	    "--b2--\r\n"
	    "--b1\r\n"
	    "Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
	    "Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "TVqQAAMAAAAEAAAA\r\n"
	    "--b1--\r\n";
	struct mw_mime_msg *m = parse(msg);
	(void)state;
	assert_string_equal(mw_mime_header(m, "subject"), "Grüße aus Bern");
	assert_string_equal(mw_mime_header(m, "From"), "Jürgen <j@example.org>");
	assert_int_equal(m->ntexts, 2);
	assert_false(m->texts[0].html);
	assert_non_null(strstr(m->texts[0].text, "Café crème"));
	assert_true(m->texts[1].html);
	assert_non_null(strstr(m->texts[1].text, "Hi & bye"));
	assert_null(strstr(m->texts[1].text, "nope")); /* script content dropped */
	assert_true(m->flags & MW_MIME_HIDDEN_TEXT);
	assert_false(m->flags & MW_MIME_HTML_ONLY);
	assert_true(has_url(m, "https://shop.example.com/deal?id=7"));
	assert_true(has_url(m, "http://evil.example.net/x"));
	assert_int_equal(m->nattachments, 1);
	assert_string_equal(m->attachments[0].filename, "invoice.pdf.exe");
	assert_string_equal(m->attachments[0].content_type, "application/octet-stream");
	assert_int_equal(m->nparts, 3);
	assert_string_equal(m->parts[0].content_type, "text/plain");
	assert_string_equal(m->parts[0].charset, "iso-8859-1");
	assert_string_equal(m->parts[0].encoding, "quoted-printable");
	mw_mime_free(&m);
	assert_null(m);
}

static void test_html_to_text(void **state)
{
	static const char html[] =
	    "<html><head><style>p{color:red}</style><title>T</title></head><body>"
	    "<!-- <a href=\"http://comment.example/\">x</a> -->"
	    "A&nbsp;&lt;b&gt; &#65;&#x42; &bogus; &#0; &#x110000;<br>"
	    "<img src='http://img.example.com/p.gif'>"
	    "<span style=\"font-size:0\">tiny</span><a href=javascript:alert(1)>j</a>"
	    "<a href=www.bare.example/path>w</a><script";
	struct mw_mime_msg dummy;
	mw_str out;
	bool hidden = false, cut = false;
	(void)state;
	memset(&dummy, 0, sizeof(dummy));
	mw_str_init(&out, 0);
	mw_mime_html_to_text(html, strlen(html), &out, NULL, NULL, &hidden, &cut);
	assert_true(hidden);
	assert_false(cut);
	assert_non_null(strstr(out.buf, "A <b> AB &bogus; \xEF\xBF\xBD \xEF\xBF\xBD"));
	assert_null(strstr(out.buf, "color"));
	assert_null(strstr(out.buf, "comment"));
	assert_true(mw_utf8_valid(out.buf, out.len, NULL));
	mw_str_free(&out);
	/* bounded output: truncated, never over the bound */
	mw_str_init(&out, 5);
	mw_mime_html_to_text("abcdefghij", 10, &out, NULL, NULL, &hidden, &cut);
	assert_true(cut);
	assert_true(out.len <= 5);
	mw_str_free(&out);
}

/* A '<' as the last byte: the tag reader looked one byte past the input (fuzz-mime). */
static void test_html_lt_at_end(void **state)
{
	static const char *const inputs[] = {"<", "abc<", "x</", "<!-", "&#"};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(inputs); i++) {
		size_t len = strlen(inputs[i]);
		char *exact = mw_malloc(len); /* no NUL after it: ASan sees any read past */
		bool hidden = false, cut = false;
		mw_str out;
		memcpy(exact, inputs[i], len);
		mw_str_init(&out, 0);
		mw_mime_html_to_text(exact, len, &out, NULL, NULL, &hidden, &cut);
		assert_true(out.len == 0 || mw_utf8_valid(out.buf, out.len, NULL));
		mw_str_free(&out);
		free(exact);
	}
}

/* nested - a message nested depth multiparts deep */
static char *nested(unsigned depth)
{
	mw_str s;
	unsigned i;
	mw_str_init(&s, 0);
	mw_str_appends(&s, "Subject: deep\r\n");
	for (i = 0; i < depth; i++)
		mw_str_appendf(
		    &s, "Content-Type: multipart/mixed; boundary=\"d%u\"\r\n\r\n--d%u\r\n", i, i);
	mw_str_appends(&s, "Content-Type: text/plain\r\n\r\ndeepest words\r\n");
	for (i = depth; i-- > 0;)
		mw_str_appendf(&s, "--d%u--\r\n", i);
	return mw_str_steal(&s);
}

static void test_deep_nesting(void **state)
{
	struct mw_mime_msg *m = NULL;
	mw_error err = {""};
	char *raw = nested(20);
	(void)state;
	m = parse(raw);
	assert_true(m->flags & MW_MIME_DEPTH_LIMIT);
	assert_int_equal(m->ntexts, 0); /* below the depth limit: not walked */
	mw_mime_free(&m);
	free(raw);
	/* thousands of levels: refused before GMime's recursive parser sees it */
	raw = nested(5000);
	assert_int_equal(mw_mime_parse(raw, strlen(raw), NULL, &m, &err), -1);
	assert_null(m);
	assert_non_null(strstr(err.msg, "Content-Type"));
	free(raw);
	/* within both limits: walked to the text */
	raw = nested(5);
	m = parse(raw);
	assert_int_equal(m->flags & MW_MIME_DEPTH_LIMIT, 0);
	assert_int_equal(m->ntexts, 1);
	assert_non_null(strstr(m->texts[0].text, "deepest words"));
	mw_mime_free(&m);
	free(raw);
}

static void test_many_parts(void **state)
{
	struct mw_mime_msg *m;
	mw_str s;
	unsigned i;
	(void)state;
	mw_str_init(&s, 0);
	mw_str_appends(&s,
	               "Subject: parts\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n");
	for (i = 0; i < 200; i++)
		mw_str_appendf(&s, "--p\r\nContent-Type: text/plain\r\n\r\npart%u\r\n", i);
	mw_str_appends(&s, "--p--\r\n");
	m = parse(s.buf);
	assert_true(m->flags & MW_MIME_PARTS_LIMIT);
	assert_true(m->nparts < mw_mime_default_limits.max_parts);
	mw_mime_free(&m);
	mw_str_free(&s);
}

static void test_huge_header(void **state)
{
	struct mw_mime_msg *m;
	mw_str s;
	unsigned i;
	(void)state;
	mw_str_init(&s, 0);
	mw_str_appends(&s, "Subject: ");
	for (i = 0; i < 100000; i++)
		mw_str_appends(&s, "spam ");
	mw_str_appends(&s, "\r\n");
	for (i = 0; i < 1000; i++)
		mw_str_appendf(&s, "X-H%u: v\r\n", i);
	mw_str_appends(&s, "\r\nbody\r\n");
	m = parse(s.buf);
	assert_true(m->flags & MW_MIME_TRUNCATED);
	assert_true(strlen(mw_mime_header(m, "Subject")) <=
	            mw_mime_default_limits.max_header_value);
	assert_int_equal(m->nheaders, mw_mime_default_limits.max_headers);
	mw_mime_free(&m);
	mw_str_free(&s);
}

static void test_broken_encodings(void **state)
{
	static const char *const msgs[] = {
	    "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	    "!!!!not base64 at all====\r\nQUJD\r\n=\r\n",
	    "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "soft =\r\nbreak =ZZ bad =4 end=\r\n",
	    "Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nbytes \xff\xfe here\r\n",
	    "Content-Type: text/plain; charset=utf-8\r\n\r\ninvalid \xc3\x28 \xed\xa0\x80 utf8\r\n",
	    "Content-Type: multipart/mixed; boundary=\"never-closed\"\r\n\r\n--never-closed\r\n"
	    "Content-Type: text/html\r\n\r\n<a href=\"http://x.example/\r\n",
	    "Content-Type: text/plain; charset=\"\"\r\n\r\n\0\0 nul bytes\r\n",
	    "",
	    "no header at all",
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(msgs); i++) {
		struct mw_mime_msg *m = parse(msgs[i]);
		size_t k;
		for (k = 0; k < m->ntexts; k++)
			assert_true(mw_utf8_valid(m->texts[k].text, m->texts[k].len, NULL));
		if (i == 2) {
			assert_true(m->flags & MW_MIME_BAD_CHARSET);
			assert_int_equal(m->ntexts, 1);
			assert_non_null(strstr(m->texts[0].text, "here"));
		}
		if (i == 3)
			assert_true(m->flags & MW_MIME_BAD_UTF8);
		mw_mime_free(&m);
	}
}

static void test_limits(void **state)
{
	struct mw_mime_limits lim = mw_mime_default_limits;
	struct mw_mime_msg *m = NULL;
	mw_error err = {""};
	static const char msg[] = "Subject: x\r\n\r\nhttp://a.example/1 http://b.example/2 "
	                          "http://c.example/3 0123456789012345678901234567890123456789\r\n";
	(void)state;
	lim.max_input = 10;
	assert_int_equal(mw_mime_parse(msg, strlen(msg), &lim, &m, &err), -1);
	assert_non_null(strstr(err.msg, "too large"));
	lim = mw_mime_default_limits;
	lim.max_urls = 2;
	assert_int_equal(mw_mime_parse(msg, strlen(msg), &lim, &m, &err), 0);
	assert_int_equal(m->nurls, 2);
	assert_true(m->flags & MW_MIME_TRUNCATED);
	mw_mime_free(&m);
	lim = mw_mime_default_limits;
	lim.max_part_text = 20;
	assert_int_equal(mw_mime_parse(msg, strlen(msg), &lim, &m, &err), 0);
	assert_true(m->flags & MW_MIME_TRUNCATED);
	assert_int_equal(m->ntexts, 1);
	assert_true(m->texts[0].len <= 20);
	mw_mime_free(&m);
}

/* test_clean_text_exact - the text of a part, byte for byte: printable ASCII, tab and
   newline kept, other controls a space, bad bytes U+FFFD, UTF-8 kept; a cut at
   max_part_text falls on the same byte whether it is in an ASCII run or not */
static void test_clean_text_exact(void **state)
{
	static const char msg[] = "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	                          "ab\tc\x01"
	                          "d\x7f"
	                          "e\xc3\xa9\xff"
	                          "xyz\nend";
	static const char want[] = "ab\tc d e\xc3\xa9\xef\xbf\xbdxyz\nend";
	static const size_t cuts[] = {1, 3, 5, 9, 10, 12, 13, 15, 16, 19};
	struct mw_mime_limits lim = mw_mime_default_limits;
	struct mw_mime_msg *m = NULL;
	mw_error err = {""};
	size_t i;
	(void)state;
	assert_int_equal(mw_mime_parse(msg, strlen(msg), &lim, &m, &err), 0);
	assert_int_equal(m->ntexts, 1);
	assert_int_equal(m->texts[0].len, strlen(want));
	assert_memory_equal(m->texts[0].text, want, strlen(want));
	mw_mime_free(&m);
	for (i = 0; i < MW_N_ELEMENTS(cuts); i++) {
		size_t n = 0, k;
		lim.max_part_text = cuts[i];
		assert_int_equal(mw_mime_parse(msg, strlen(msg), &lim, &m, &err), 0);
		assert_int_equal(m->ntexts, 1);
		/* the longest prefix of whole output characters within the cut */
		for (k = 0; k < strlen(want);) {
			size_t step = ((unsigned char)want[k] & 0xe0) == 0xc0   ? 2
			              : ((unsigned char)want[k] & 0xf0) == 0xe0 ? 3
			                                                        : 1;
			if (k + step > cuts[i])
				break;
			k += step;
		}
		n = k;
		assert_int_equal(m->texts[0].len, n);
		assert_memory_equal(m->texts[0].text, want, n);
		assert_true(m->flags & MW_MIME_TRUNCATED);
		mw_mime_free(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alternative),      cmocka_unit_test(test_html_to_text),
	    cmocka_unit_test(test_deep_nesting),     cmocka_unit_test(test_many_parts),
	    cmocka_unit_test(test_huge_header),      cmocka_unit_test(test_broken_encodings),
	    cmocka_unit_test(test_limits),           cmocka_unit_test(test_html_lt_at_end),
	    cmocka_unit_test(test_clean_text_exact),
	};
	MW_RUN_TESTS(tests);
}
