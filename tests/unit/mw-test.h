/* mw-test.h - common set-up for the cmocka unit tests: TAP output for the test driver,
   mw_test_expect_text (strings a text must and must not hold), and the case files of
   tests/data: mw_test_data_read (a file below $top_srcdir, which the test driver sets) and
   mw_test_unescape (the escapes those files use for bytes a line cannot hold). */
#ifndef MW_TEST_H
#define MW_TEST_H

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

/* mw_test_data_read - the file REL below $top_srcdir, NUL-terminated (its length in
   *len_r); the caller frees it. Fails the test when top_srcdir is not set or the file cannot
   be read: a test without its cases must not pass. */
static inline char *mw_test_data_read(const char *rel, size_t *len_r)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	char *buf = NULL;
	long size = -1;
	FILE *f;
	if (top == NULL) {
		fail_msg("top_srcdir is not set: run through `make check` (or set it to the source "
		         "tree)");
		return NULL;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", top, rel) >= sizeof(path)) {
		fail_msg("path too long: %s/%s", top, rel);
		return NULL;
	}
	f = fopen(path, "rb");
	if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1)) != NULL &&
	    fread(buf, 1, (size_t)size, f) == (size_t)size) {
		fclose(f);
		buf[size] = '\0';
		*len_r = (size_t)size;
		return buf;
	}
	if (f != NULL)
		fclose(f);
	free(buf);
	fail_msg("cannot read %s", path);
	return NULL;
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
