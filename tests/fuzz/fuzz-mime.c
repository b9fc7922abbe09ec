/*
 * fuzz-mime.c - fuzz target for the spam classifier's input side: lib/mw-mime (GMime
 * walking, HTML to text, URL extraction) and lib/mw-tokenize (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The input is one raw message. mw_mime_parse runs with the default limits; when it
 * accepts, every text, header value, URL and file name must be valid UTF-8 within its
 * limit, the counts within theirs, and the tokenizer must give at most MW_TOKENS_MAX + 1
 * distinct tokens. The input also goes straight through the HTML converter into a bounded
 * string, which must stay within its bound and valid UTF-8. The same target runs under
 * libFuzzer and over tests/fuzz/corpus-mime in make check (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-mime.h"
#include "mw-tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check - abort with a message when an invariant is broken */
static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-mime: %s\n", what);
		abort();
	}
}

/* valid - NUL-terminated valid UTF-8 of at most max bytes */
static void valid(const char *s, size_t max, const char *what)
{
	size_t len;
	check(s != NULL, what);
	len = strlen(s);
	check(len <= max, what);
	check(mw_utf8_valid(s, len, NULL), what);
}

/* url_count - the HTML converter's URL callback */
static void url_count(void *ctx, const char *url, size_t len)
{
	(void)url;
	check(len > 0, "empty URL from the HTML converter");
	(*(unsigned *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct mw_mime_limits *lim = &mw_mime_default_limits;
	struct mw_mime_msg *m = NULL;
	struct mw_tokens t;
	mw_error err = {""};
	mw_str out;
	bool hidden = false, cut = false;
	unsigned urls = 0;
	size_t i, total = 0;
	if (mw_mime_parse((const char *)data, size, NULL, &m, &err) == 0) {
		check(m != NULL, "accepted without a result");
		check(m->nheaders <= lim->max_headers, "too many headers");
		for (i = 0; i < m->nheaders; i++) {
			valid(m->headers[i].name, 255, "header name");
			valid(m->headers[i].value, lim->max_header_value, "header value");
		}
		for (i = 0; i < m->ntexts; i++) {
			valid(m->texts[i].text, lim->max_part_text, "text");
			check(strlen(m->texts[i].text) == m->texts[i].len, "text length");
			total += m->texts[i].len;
		}
		check(total <= lim->max_total_text, "total text over the limit");
		check(m->nurls <= lim->max_urls, "too many URLs");
		for (i = 0; i < m->nurls; i++)
			valid(m->urls[i], lim->max_url_len, "URL");
		check(m->nattachments <= lim->max_attachments, "too many attachments");
		for (i = 0; i < m->nattachments; i++) {
			valid(m->attachments[i].filename, 255, "file name");
			valid(m->attachments[i].content_type, 255, "attachment type");
		}
		check(m->nparts <= lim->max_parts, "too many parts");
		mw_tokens_init(&t, true);
		mw_tokenize(m, MW_TOK_BIGRAMS, &t);
		check(t.count <= MW_TOKENS_MAX + 1, "too many tokens");
		for (i = 0; i < t.count; i++)
			check(strlen(t.text[i]) <= MW_TOKEN_TEXT_MAX, "token text too long");
		mw_tokens_free(&t);
		mw_mime_free(&m);
		check(m == NULL, "free left the pointer");
	} else {
		check(m == NULL, "refused with a result");
		check(err.msg[0] != '\0', "refused without a message");
	}
	mw_str_init(&out, 4096);
	mw_mime_html_to_text((const char *)data, size, &out, url_count, &urls, &hidden, &cut);
	check(out.len <= 4096, "HTML text over its bound");
	check(out.len == 0 || mw_utf8_valid(out.buf, out.len, NULL), "HTML text not UTF-8");
	mw_str_free(&out);
	return 0;
}
