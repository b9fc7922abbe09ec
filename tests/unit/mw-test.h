/* mw-test.h - common set-up for the cmocka unit tests: TAP output for the test driver, and
   reading a file of the source tree (tests/data). */
#ifndef MW_TEST_H
#define MW_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

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

/* mw_test_srcdir_file - mw_test_file of $top_srcdir/rel; fails the test when make check's
   top_srcdir is not set */
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

#define MW_RUN_TESTS(tests)                                                                        \
	do {                                                                                       \
		cmocka_set_message_output(CM_OUTPUT_TAP);                                          \
		return cmocka_run_group_tests(tests, NULL, NULL);                                  \
	} while (0)

#endif
