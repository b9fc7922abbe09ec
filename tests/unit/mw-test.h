/* mw-test.h - common set-up for the cmocka unit tests: TAP output for the test driver. */
#ifndef MW_TEST_H
#define MW_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define MW_RUN_TESTS(tests)                                                                        \
	do {                                                                                       \
		cmocka_set_message_output(CM_OUTPUT_TAP);                                          \
		return cmocka_run_group_tests(tests, NULL, NULL);                                  \
	} while (0)

#endif
