/* test-tokenize.c - lib/mw-tokenize: golden token lists (tests/data/tokenize/NAME.eml ->
   NAME.tokens, sorted, one token a line), the set's dedupe and bound, hashing.

   Needs top_srcdir in the environment (the test driver sets it). MW_GOLDEN_WRITE=1 writes
   the .tokens files instead of comparing (review the diff before committing). */
#include "mw-build.h"
#include "mw-test.h"
#include "mw-tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmp_str - qsort of strings */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* tokens_of_len - the sorted token texts of a message of LEN bytes, one a line */
static char *tokens_of_len(const char *raw, size_t len)
{
	struct mw_mime_msg *m = NULL;
	struct mw_tokens t;
	mw_error err = {""};
	mw_str got;
	size_t i;
	assert_int_equal(mw_mime_parse(raw, len, NULL, &m, &err), 0);
	mw_tokens_init(&t, true);
	mw_tokenize(m, MW_TOK_BIGRAMS, &t);
	qsort(t.text, t.count, sizeof(*t.text), cmp_str);
	mw_str_init(&got, 0);
	for (i = 0; i < t.count; i++) {
		mw_str_appends(&got, t.text[i]);
		mw_str_appendc(&got, '\n');
	}
	mw_tokens_free(&t);
	mw_mime_free(&m);
	return mw_str_steal(&got);
}

/* tokens_of - tokens_of_len of a NUL-terminated message */
static char *tokens_of(const char *raw)
{
	return tokens_of_len(raw, strlen(raw));
}

/* golden - tokenize NAME.eml and compare with NAME.tokens */
static void golden(const char *name)
{
	char rel[256], *raw, *want, *got;
	size_t len = 0;
	snprintf(rel, sizeof(rel), "tests/data/tokenize/%s.eml", name);
	raw = mw_test_data_read(rel, &len);
	got = tokens_of_len(raw, len);
	snprintf(rel, sizeof(rel), "tests/data/tokenize/%s.tokens", name);
	if (getenv("MW_GOLDEN_WRITE") != NULL) {
		char path[4096];
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s", getenv("top_srcdir"), rel);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(got, f);
		fclose(f);
	}
	want = mw_test_data_read(rel, &len);
	assert_string_equal(got, want);
	free(want);
	free(got);
	free(raw);
}

static void test_golden_html_spam(void **state)
{
	(void)state;
	golden("html-spam");
}

static void test_golden_plain_ham(void **state)
{
	(void)state;
	golden("plain-ham");
}

/* has_line - TEXT (one token a line) holds the token exactly */
static bool has_line(const char *text, const char *tok)
{
	size_t n = strlen(tok);
	const char *p = text;
	while ((p = strstr(p, tok)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
		p += n;
	}
	return false;
}

#define BODY "\r\nHello Bob, the quarterly figures are attached as promised.\r\n"

static void test_receiver_fields(void **state)
{
	/* what the receiving side writes (delivery trace, the mail store's flags and
	   keywords, our own verdicts) says where and in which folder a copy was kept, not
	   what the sender wrote: a stored copy learned from a mailbox tokenizes as the
	   message did when the milter scored it */
	static const char sent[] = "From: Alice <alice@example.org>\r\n"
	                           "Subject: figures\r\n"
	                           "Date: Tue, 7 May 2002 09:37:01 -0500\r\n"
	                           "Message-ID: <f1@example.org>\r\n" BODY;
	static const char stored[] = "Return-Path: <alice@example.org>\r\n"
	                             "Delivered-To: bob@example.net\r\n"
	                             "X-Original-To: bob@example.net\r\n"
	                             "Delivery-Date: Tue May  7 15:40:00 2002\r\n"
	                             "X-Mailwarden-Spam: no; score=-1.50; tests=BAYES_00\r\n"
	                             "X-Mailwarden-Virus: clean\r\n"
	                             "From: Alice <alice@example.org>\r\n"
	                             "Subject: figures\r\n"
	                             "Date: Tue, 7 May 2002 09:37:01 -0500\r\n"
	                             "Message-ID: <f1@example.org>\r\n"
	                             "Status: RO\r\n"
	                             "X-Status: A\r\n"
	                             "X-Keywords: $Junk NonJunk\r\n"
	                             "X-UID: 42\r\n"
	                             "Content-Length: 63\r\n"
	                             "Lines: 1\r\n" BODY;
	char *a, *b;
	(void)state;
	a = tokens_of(sent);
	b = tokens_of(stored);
	/* the stored copy adds only its Return-Path (the envelope sender: the sender's) */
	assert_true(has_line(b, "h:return-path"));
	assert_true(has_line(b, "retpath:reg:example.org"));
	assert_false(has_line(b, "h:delivered-to"));
	assert_false(has_line(b, "h:x-keywords"));
	assert_false(has_line(b, "h:x-mailwarden-spam"));
	assert_false(has_line(b, "x-mailwarden-spam:no"));
	assert_false(has_line(b, "delivery-date:may"));
	{
		char *c = b;
		/* drop the Return-Path tokens, the rest is the sent message's */
		mw_str rest;
		mw_str_init(&rest, 0);
		while (*c != '\0') {
			size_t n = strcspn(c, "\n");
			if (!(n >= 8 && (strncmp(c, "retpath:", 8) == 0 ||
			                 strncmp(c, "h:return-path", 13) == 0))) {
				mw_str_append(&rest, c, n);
				mw_str_appendc(&rest, '\n');
			}
			c += n + (c[n] == '\n');
		}
		assert_string_equal(rest.buf, a);
		mw_str_free(&rest);
	}
	free(a);
	free(b);
}

/* Header cases: the tokens of a message with these header lines and BODY; every line of
   WANT is a token, no line of NOT_LINE is, and no token holds a string of NOT_IN */
struct header_case {
	const char *name, *headers;
	const char *want[6], *not_line[4], *not_in[5];
};

static const struct header_case header_cases[] = {
    /* the recipients' own addresses are not tokens (a model shared by all users would
       learn who receives much spam); the rest of To and Cc is, and the sender's address */
    {"recipient addresses",
     "From: Alice <alice@example.org>\r\n"
     "To: \"Bob Builder\" <bob@example.net>, undisclosed-recipients:;\r\n"
     "Cc: carol@example.com\r\n"
     "Subject: figures\r\n",
     {"to:builder", "to:skip:u:20", "h:cc", "from:reg:example.org"},
     {NULL},
     {"to:bob@", "example.net", "cc:carol", "example.com"}},
    /* of every date field only the time zone: the day and month say when, not what */
    {"date fields",
     "From: Alice <alice@example.org>\r\n"
     "Date: Tue, 7 May 2002 09:37:01 -0500\r\n"
     "X-Original-Date: Mon, 6 May 2002 23:01:00 +0200\r\n"
     "Resent-Date: Wed, 8 May 2002 10:00:00 +0000\r\n"
     "Subject: figures\r\n",
     {"date:tz:-0500", "date:tz:+0200", "date:tz:+0000", "h:x-original-date"},
     {NULL},
     {"may", "2002"}},
    /* "rcvd:" is for host names: a software version with a letter in it is none */
    {"received versions",
     "Received: from www.example.com (209.238.222.187)\r\n"
     "\tby mail01d.rapidsite.net (RS ver 1.0.63s) with SMTP id 1;\r\n"
     "\tFri, 23 Aug 2002 07:17:57 -0400\r\n"
     "Received: from x.example.org by relay.example.xn--p1ai "
     "(Mailer v1.1b); Fri, 23 Aug 2002 07:17:57 -0400\r\n"
     "From: Alice <alice@example.org>\r\n"
     "Subject: figures\r\n",
     {"rcvd:rapidsite.net", "rcvd:example.com", "rcvd:ip:209.238.222", "rcvd:example.xn--p1ai"},
     {"rcvd:0.63s", "rcvd:1.0.63s", "rcvd:v1.1b"},
     {NULL}},
};

static void test_header_cases(void **state)
{
	size_t i, k, wrong = 0;
	(void)state;
	for (i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
		const struct header_case *c = &header_cases[i];
		mw_str msg;
		char *t;
		mw_str_init(&msg, 0);
		mw_str_appends(&msg, c->headers);
		mw_str_appends(&msg, BODY);
		t = tokens_of(msg.buf);
		for (k = 0; k < 6 && c->want[k] != NULL; k++)
			if (!has_line(t, c->want[k])) {
				print_error("%s: no token %s\n", c->name, c->want[k]);
				wrong++;
			}
		for (k = 0; k < 4 && c->not_line[k] != NULL; k++)
			if (has_line(t, c->not_line[k])) {
				print_error("%s: token %s must not be\n", c->name, c->not_line[k]);
				wrong++;
			}
		for (k = 0; k < 5 && c->not_in[k] != NULL; k++)
			if (strstr(t, c->not_in[k]) != NULL) {
				print_error("%s: a token holds %s\n", c->name, c->not_in[k]);
				wrong++;
			}
		free(t);
		mw_str_free(&msg);
	}
	if (wrong > 0)
		fail_msg("%zu header case check(s) wrong", wrong);
}

static void test_set(void **state)
{
	struct mw_tokens t;
	char buf[32];
	unsigned i;
	(void)state;
	mw_tokens_init(&t, false);
	mw_tokens_add(&t, "word", 4);
	mw_tokens_add(&t, "word", 4);
	mw_tokens_add(&t, "Word", 4);
	assert_int_equal(t.count, 2);
	assert_int_equal(t.hash[0], mw_token_hash("word", 4));
	assert_true(mw_token_hash("word", 4) != mw_token_hash("Word", 4));
	/* the hash is fixed forever (the store keeps hashes): a known value */
	assert_true(mw_token_hash("", 0) != 0);
	for (i = 0; i < MW_TOKENS_MAX + 100; i++) {
		snprintf(buf, sizeof(buf), "t%u", i);
		mw_tokens_add(&t, buf, strlen(buf));
	}
	assert_int_equal(t.count, MW_TOKENS_MAX);
	assert_true(t.truncated);
	mw_tokens_reset(&t);
	assert_int_equal(t.count, 0);
	mw_tokens_add(&t, "word", 4);
	assert_int_equal(t.count, 1);
	mw_tokens_free(&t);
}

static void test_stable_hash(void **state)
{
	(void)state;
	/* a changed hash would orphan every stored token: pin one value */
	assert_int_equal(mw_token_hash("viagra", 6), 0x3e6468a4b60708afULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden_html_spam),
	    cmocka_unit_test(test_golden_plain_ham),
	    cmocka_unit_test(test_receiver_fields),
	    cmocka_unit_test(test_header_cases),
	    cmocka_unit_test(test_set),
	    cmocka_unit_test(test_stable_hash),
	};
	MW_RUN_TESTS(tests);
}
