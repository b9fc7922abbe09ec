/* mw-test.h - common set-up for the cmocka unit tests: TAP output for the test driver,
   mw_test_expect_text (strings a text must and must not hold), and the case files of
   tests/data: mw_test_file (a whole file), mw_test_srcdir_file / mw_test_data_read (a file
   below $top_srcdir, which the test driver sets; optional / required) and mw_test_unescape
   (the escapes those files use for bytes a line cannot hold). */
#ifndef MW_TEST_H
#define MW_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw-util.h"

#define MW_RUN_TESTS(tests)                                                                        \
	do {                                                                                       \
		cmocka_set_message_output(CM_OUTPUT_TAP);                                          \
		return cmocka_run_group_tests(tests, NULL, NULL);                                  \
	} while (0)

/* mw_test_expect_text - every string of SHOWN is in TEXT and none of HIDDEN (both lists
   end in NULL; either may be NULL); names each string that is not as it should be, then
   fails */
static inline void mw_test_expect_text(const char *text, const char *const *shown,
                                       const char *const *hidden)
{
	size_t wrong = 0;
	for (; shown != NULL && *shown != NULL; shown++)
		if (strstr(text, *shown) == NULL) {
			print_error("missing from the text: [%s]\n", *shown);
			wrong++;
		}
	for (; hidden != NULL && *hidden != NULL; hidden++)
		if (strstr(text, *hidden) != NULL) {
			print_error("in the text but must not be: [%s]\n", *hidden);
			wrong++;
		}
	if (wrong > 0)
		fail_msg("%zu string(s) wrong in the text:\n%s", wrong, text);
}

/* mw_test_file - a whole file into memory (NUL-terminated, free() it; its length in *len_r
   when not NULL), NULL (errno set) when it cannot be opened */
static inline char *mw_test_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	long n;
	char *buf;
	if (f == NULL)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len_r != NULL)
		*len_r = (size_t)n;
	return buf;
}

/* mw_test_srcdir_file - mw_test_file of $top_srcdir/REL (NULL when there is no such file);
   fails the test when the test driver's top_srcdir is not set */
static inline char *mw_test_srcdir_file(const char *rel, size_t *len_r)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	if (top == NULL || *top == '\0')
		fail_msg("top_srcdir is not set: run through `make check` (or set it to the source "
		         "tree)");
	if (snprintf(path, sizeof(path), "%s/%s", top, rel) >= (int)sizeof(path))
		fail_msg("%s: path too long", rel);
	return mw_test_file(path, len_r);
}

/* mw_test_data_read - mw_test_srcdir_file of a file the test needs: fails the test when it
   cannot be read (a test without its cases must not pass) */
static inline char *mw_test_data_read(const char *rel, size_t *len_r)
{
	char *buf = mw_test_srcdir_file(rel, len_r);
	if (buf == NULL)
		fail_msg("cannot read %s below top_srcdir: %s", rel, strerror(errno));
	return buf;
}

/* mw_test_unescape - decode S (N bytes) in place: \t \n \r \\ \0 and \xNN (two hex digits)
   stand for their byte; the decoded length (a NUL is written after it). Fails the test
   naming WHERE on any other backslash. */
static inline size_t mw_test_unescape(char *s, size_t n, const char *where)
{
	size_t i, o = 0;
	for (i = 0; i < n; i++) {
		if (s[i] != '\\') {
			s[o++] = s[i];
			continue;
		}
		if (++i >= n)
			fail_msg("%s: a backslash at the end of a field", where);
		switch (s[i]) {
		case 't':
			s[o++] = '\t';
			break;
		case 'n':
			s[o++] = '\n';
			break;
		case 'r':
			s[o++] = '\r';
			break;
		case '0':
			s[o++] = '\0';
			break;
		case '\\':
			s[o++] = '\\';
			break;
		case 'x':
			if (i + 2 >= n || mw_hexval((unsigned char)s[i + 1]) < 0 ||
			    mw_hexval((unsigned char)s[i + 2]) < 0)
				fail_msg("%s: \\x wants two hex digits", where);
			s[o++] = (char)(mw_hexval((unsigned char)s[i + 1]) * 16 +
			                mw_hexval((unsigned char)s[i + 2]));
			i += 2;
			break;
		default:
			fail_msg("%s: unknown escape \\%c", where, s[i]);
		}
	}
	s[o] = '\0';
	return o;
}

#endif
