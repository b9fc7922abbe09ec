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

/* golden - tokenize NAME.eml and compare with NAME.tokens */
static void golden(const char *name)
{
	char rel[256], *raw, *want;
	struct mw_mime_msg *m = NULL;
	struct mw_tokens t;
	mw_error err = {""};
	mw_str got;
	size_t len, i;
	snprintf(rel, sizeof(rel), "tests/data/tokenize/%s.eml", name);
	raw = mw_test_data_read(rel, &len);
	assert_int_equal(mw_mime_parse(raw, len, NULL, &m, &err), 0);
	mw_tokens_init(&t, true);
	mw_tokenize(m, MW_TOK_BIGRAMS, &t);
	qsort(t.text, t.count, sizeof(*t.text), cmp_str);
	mw_str_init(&got, 0);
	for (i = 0; i < t.count; i++) {
		mw_str_appends(&got, t.text[i]);
		mw_str_appendc(&got, '\n');
		/* the hash is the text's hash */
	}
	snprintf(rel, sizeof(rel), "tests/data/tokenize/%s.tokens", name);
	if (getenv("MW_GOLDEN_WRITE") != NULL) {
		char path[4096];
		FILE *f;
		snprintf(path, sizeof(path), "%s/%s", getenv("top_srcdir"), rel);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(got.buf, f);
		fclose(f);
	}
	want = mw_test_data_read(rel, &len);
	assert_string_equal(got.buf, want);
	free(want);
	mw_str_free(&got);
	mw_tokens_free(&t);
	mw_mime_free(&m);
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
	    cmocka_unit_test(test_set),
	    cmocka_unit_test(test_stable_hash),
	};
	MW_RUN_TESTS(tests);
}
