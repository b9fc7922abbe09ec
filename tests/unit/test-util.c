/* test-util.c - bounded strings, slices, errors and log-value escaping. */
#include "mw-build.h"
#include "mw-log.h"
#include "mw-util.h"

#include "mw-test.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* test_str_bound - appending past the bound fails and leaves the string unchanged */
static void test_str_bound(void **state)
{
	mw_str s;
	(void)state;
	mw_str_init(&s, 8);
	assert_int_equal(mw_str_appends(&s, "abcd"), 0);
	assert_int_equal(mw_str_appends(&s, "efgh"), 0);
	assert_int_equal(mw_str_appendc(&s, 'i'), -1);
	assert_string_equal(mw_str_c(&s), "abcdefgh");
	assert_int_equal(mw_str_appendf(&s, "%d", 1), -1);
	assert_int_equal(s.len, 8);
	mw_str_reset(&s);
	assert_string_equal(mw_str_c(&s), "");
	assert_int_equal(mw_str_appendf(&s, "%s-%d", "ab", 12), 0);
	assert_string_equal(mw_str_c(&s), "ab-12");
	mw_str_free(&s);
}

/* test_str_room - appendf formats in place when the buffer has room and measures first when
   not; appendc fills the buffer to its last byte, then grows; the bound holds on each path
   and a refused append leaves the string as it was */
static void test_str_room(void **state)
{
	mw_str s;
	char want[80];
	(void)state;
	memset(want, 'x', sizeof(want));
	mw_str_init(&s, 0);
	assert_int_equal(mw_str_append(&s, want, 60), 0); /* a 64-byte buffer, 4 bytes of room */
	assert_int_equal(mw_str_appendf(&s, "%s", "0123456789"), 0);
	assert_int_equal(s.len, 70);
	assert_memory_equal(s.buf + 58, "xx0123456789", 13); /* and its NUL */
	mw_str_free(&s);
	mw_str_init(&s, 62);
	assert_int_equal(mw_str_append(&s, want, 60), 0);
	assert_int_equal(mw_str_appendf(&s, "%d", 123), -1); /* fits the buffer, not the bound */
	assert_int_equal(s.len, 60);
	assert_int_equal(s.buf[60], '\0');
	assert_int_equal(mw_str_appendf(&s, "%s", "0123456789"), -1); /* fits neither */
	assert_int_equal(s.len, 60);
	assert_int_equal(s.buf[60], '\0');
	assert_int_equal(mw_str_appendf(&s, "%d", 12), 0);
	assert_int_equal(mw_str_appendc(&s, 'y'), -1);
	assert_memory_equal(s.buf + 59, "x12", 4);
	mw_str_free(&s);
	mw_str_init(&s, 0);
	assert_int_equal(mw_str_append(&s, want, 62), 0);
	assert_int_equal(mw_str_appendc(&s, 'a'), 0); /* the buffer's last byte before the NUL */
	assert_int_equal(mw_str_appendc(&s, 'b'), 0); /* grows */
	assert_int_equal(s.len, 64);
	assert_memory_equal(s.buf + 61, "xab", 4);
	mw_str_free(&s);
}

/* test_str_grow - an unbounded string grows past its first allocation, keeping every byte;
   so does one whose given-up blocks are wiped (it copies instead of realloc), within its
   bound as any other */
static void test_str_grow(void **state)
{
	mw_str s;
	char *p, want[4];
	int i, wiped;
	(void)state;
	for (wiped = 0; wiped <= 1; wiped++) {
		if (wiped)
			mw_str_init_wiped(&s, 0);
		else
			mw_str_init(&s, 0);
		assert_string_equal(mw_str_c(&s), "");
		for (i = 0; i < 1000; i++)
			assert_int_equal(mw_str_appendf(&s, "%03d", i), 0);
		assert_int_equal(s.len, 3000);
		for (i = 0; i < 1000; i++) {
			(void)snprintf(want, sizeof(want), "%03d", i);
			assert_memory_equal(s.buf + 3 * i, want, 3);
		}
		assert_int_equal(s.buf[3000], '\0');
		p = mw_str_steal(&s);
		assert_null(s.buf);
		assert_int_equal(strlen(p), 3000);
		free(p);
	}
	mw_str_init_wiped(&s, 100);
	assert_int_equal(mw_str_append(&s, "0123456789", 10), 0);
	for (i = 0; i < 9; i++)
		assert_int_equal(mw_str_append(&s, "0123456789", 10), 0);
	assert_int_equal(mw_str_appendc(&s, 'x'), -1);
	assert_int_equal(s.len, 100);
	assert_memory_equal(s.buf + 90, "0123456789", 10);
	mw_str_free(&s);
	assert_null(s.buf);
}

/* test_strlcpy - refuses to truncate */
static void test_strlcpy(void **state)
{
	char buf[4];
	(void)state;
	assert_int_equal(mw_strlcpy(buf, "abc", sizeof(buf)), 0);
	assert_string_equal(buf, "abc");
	assert_int_equal(mw_strlcpy(buf, "abcd", sizeof(buf)), -1);
	assert_string_equal(buf, "");
	assert_int_equal(mw_strlcpy(buf, "", 0), -1);
}

/* test_slices - trim and comparisons */
static void test_slices(void **state)
{
	mw_slice s = mw_slice_trim(mw_slice_from(" \t hello \r\n"));
	(void)state;
	assert_int_equal(s.len, 5);
	assert_true(mw_slice_eq(s, "hello"));
	assert_false(mw_slice_eq(s, "hell"));
	assert_true(mw_slice_ieq(s, "HeLLo"));
	assert_false(mw_slice_ieq(s, "hello!"));
	s = mw_slice_trim(mw_slice_from("   "));
	assert_int_equal(s.len, 0);
}

/* test_ascii_case - folding touches ASCII letters only */
static void test_ascii_case(void **state)
{
	char s[] = "JoHn@EXAMPLE.com\xc3\x89";
	(void)state;
	mw_ascii_lower(s);
	assert_string_equal(s, "john@example.com\xc3\x89");
	assert_int_equal(mw_ascii_strcasecmp("ABC", "abc"), 0);
	assert_true(mw_ascii_strcasecmp("abc", "abd") < 0);
	assert_int_equal(mw_ascii_strncasecmp("ABCx", "abcy", 3), 0);
	assert_true(mw_ascii_strncasecmp("ABCx", "abcy", 4) != 0);
}

/* test_error_prefix - prefixes stack and never overflow */
static void test_error_prefix(void **state)
{
	mw_error e;
	char big[600];
	(void)state;
	mw_error_set(&e, "bad value %d", 7);
	mw_error_prefix(&e, "file.conf:%d", 3);
	assert_string_equal(e.msg, "file.conf:3: bad value 7");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	mw_error_set(&e, "%s", big);
	mw_error_prefix(&e, "p");
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
	assert_memory_equal(e.msg, "p: xxx", 6);
	mw_error_set(NULL, "ignored %s", "fine");
	mw_error_prefix(NULL, "ignored");
}

/* test_log_value - hostile values are escaped, quoted and bounded */
static void test_log_value(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
	    {"plain", 5, "plain"},
	    {"two words", 9, "\"two words\""},
	    {"a=b", 3, "\"a=b\""},
	    {"line\r\nInjected: x", 17, NULL},
	    {"nul\0byte", 8, "nul\\x00byte"},
	    {"q\"uote\\", 7, "q\\x22uote\\x5c"},
	    {"\xc3\xa9", 2, "\\xc3\\xa9"},
	};
	char buf[64];
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		const char *got = mw_log_value(buf, sizeof(buf), cases[i].in, cases[i].len);
		/* a blank inside quotes is kept as is */
		if (i == 3)
			assert_string_equal(got, "\"line\\x0d\\x0aInjected: x\"");
		else
			assert_string_equal(got, cases[i].out);
	}
	{
		char longin[200];
		memset(longin, 'a', sizeof(longin));
		mw_log_value(buf, 32, longin, sizeof(longin));
		assert_true(strlen(buf) < 32);
		assert_non_null(strstr(buf, "..."));
	}
}

/* test_fake_now - the clock follows MW_FAKE_NOW when set */
static void test_hexval(void **state)
{
	(void)state;
	assert_int_equal(mw_hexval('0'), 0);
	assert_int_equal(mw_hexval('9'), 9);
	assert_int_equal(mw_hexval('a'), 10);
	assert_int_equal(mw_hexval('F'), 15);
	assert_int_equal(mw_hexval('g'), -1);
	assert_int_equal(mw_hexval('G'), -1);
	assert_int_equal(mw_hexval('/'), -1);
	assert_int_equal(mw_hexval(':'), -1);
	assert_int_equal(mw_hexval(0), -1);
	assert_int_equal(mw_hexval(0xff), -1);
}

/* test_text_escape - the escaper under mw_log_value, in its SMTP-reply form: extra bytes
   escaped, no quoting; hostile and huge input bounded */
static void test_text_escape(void **state)
{
	char buf[64];
	size_t n = 1 << 20;
	char *huge = malloc(n);
	(void)state;
	assert_string_equal(mw_text_escape(buf, sizeof(buf), "a%b c\r\n\\", 8, "%\\", false),
	                    "a\\x25b c\\x0d\\x0a\\x5c");
	assert_string_equal(mw_text_escape(buf, sizeof(buf), "a=b \"", 5, "", false), "a=b \"");
	assert_string_equal(mw_text_escape(buf, sizeof(buf), "a=b", 3, "", true), "\"a=b\"");
	assert_string_equal(mw_text_escape(buf, 7, "abc", 3, "", false), "");
	assert_string_equal(mw_text_escape(buf, 8, "", 0, "", true), "");
	assert_non_null(huge);
	memset(huge, '\n', n);
	mw_text_escape(buf, sizeof(buf), huge, n, "", true);
	assert_true(strlen(buf) < sizeof(buf));
	assert_string_equal(buf + strlen(buf) - 3, "...");
	memset(huge, ' ', n);
	mw_text_escape(buf, sizeof(buf), huge, n, "", true);
	assert_true(strlen(buf) < sizeof(buf));
	assert_int_equal(buf[0], '"');
	assert_int_equal(buf[strlen(buf) - 1], '"');
	free(huge);
}

/* test_mono - the monotonic clocks agree and never go back */
static void test_mono(void **state)
{
	int64_t s0 = mw_mono_s(), ms0 = mw_mono_ms(), us0 = mw_mono_us();
	int64_t us1 = mw_mono_us(), ms1 = mw_mono_ms(), s1 = mw_mono_s();
	(void)state;
	assert_true(us1 >= us0 && ms1 >= ms0 && s1 >= s0);
	assert_true(ms0 / 1000 >= s0 && ms0 / 1000 <= s1);
	assert_true(us0 / 1000 >= ms0 && us0 / 1000 <= ms1);
}

static void test_fake_now(void **state)
{
	(void)state;
	setenv("MW_FAKE_NOW", "1000000000", 1);
	assert_true(mw_now() >= 1000000000 && mw_now() < 1000000000 + 60);
}

/* test_markup - XML and HTML escaping: every special character, line breaks, non-ASCII */
static void test_markup(void **state)
{
	mw_str s;
	(void)state;
	mw_str_init(&s, 0);
	assert_int_equal(mw_str_append_markup(&s, "a&b<c>\"d'e\r\n\xc3\xa9", MW_MARKUP_XML), 0);
	assert_string_equal(mw_str_c(&s), "a&amp;b&lt;c&gt;&quot;d&apos;e\r\n\xc3\xa9");
	mw_str_reset(&s);
	assert_int_equal(mw_str_append_markup(&s, "a'b\r\nc\xc3\xa9", MW_MARKUP_HTML), 0);
	assert_string_equal(mw_str_c(&s), "a&#39;b<br>\nc\xc3\xa9");
	mw_str_reset(&s);
	assert_int_equal(
	    mw_str_append_markup(&s, "x\x01\xc3\xa9\x7f<", MW_MARKUP_XML | MW_MARKUP_ASCII), 0);
	assert_string_equal(mw_str_c(&s), "x????&lt;");
	mw_str_free(&s);
	mw_str_init(&s, 8); /* bounded: -1 when it would not fit */
	assert_int_equal(mw_str_append_markup(&s, "<<<", MW_MARKUP_XML), -1);
	mw_str_free(&s);
}

/* test_text_len - NULL and "" are empty, max bytes fit, max + 1 do not (the tag rule and DKIM
   name checks share it) */
static void test_text_len(void **state)
{
	mw_error err = {{0}};
	size_t len = 99;
	(void)state;
	assert_int_equal(mw_text_len_check("field", NULL, 4, &len, &err), -1);
	assert_string_equal(err.msg, "field is empty");
	assert_int_equal(mw_text_len_check("field", "", 4, &len, &err), -1);
	assert_int_equal(mw_text_len_check("field", "abcde", 4, &len, &err), -1);
	assert_string_equal(err.msg, "field is longer than 4 bytes");
	assert_int_equal(len, 99);
	assert_int_equal(mw_text_len_check("field", "abcd", 4, &len, &err), 0);
	assert_int_equal(len, 4);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* test_write_all - 4 MiB through a pipe while a timer interrupts the writer every
   millisecond; the reader pauses 5 ms every 256 KiB, so the writer is interrupted with the
   pipe full (EINTR) and part way (short writes): every byte arrives, in order; a closed
   descriptor is -1 with errno */
static void test_write_all(void **state)
{
	static unsigned char buf[4 * 1024 * 1024];
	const size_t len = sizeof(buf);
	struct sigaction sa;
	struct itimerval tv = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
	int pfd[2], status;
	size_t i;
	pid_t pid;
	(void)state;
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 % 251);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* the reader: exit 0 when exactly buf arrived */
		unsigned char chunk[4096];
		size_t got = 0;
		ssize_t n;
		close(pfd[1]);
		usleep(5000);
		while ((n = read(pfd[0], chunk, sizeof(chunk))) > 0) {
			for (i = 0; i < (size_t)n; i++)
				if (got + i >= len ||
				    chunk[i] != (unsigned char)((got + i) * 7 % 251))
					_exit(1);
			if (got / (256 * 1024) != (got + (size_t)n) / (256 * 1024))
				usleep(5000);
			got += (size_t)n;
		}
		_exit(n == 0 && got == len ? 0 : 2);
	}
	close(pfd[0]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: write() returns early */
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &tv, NULL), 0);
	assert_int_equal(mw_write_all(pfd[1], buf, len), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
	close(pfd[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	errno = 0;
	assert_int_equal(mw_write_all(pfd[1], buf, 1), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(mw_write_all(pfd[1], buf, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_str_bound),    cmocka_unit_test(test_str_room),
	    cmocka_unit_test(test_str_grow),     cmocka_unit_test(test_strlcpy),
	    cmocka_unit_test(test_slices),       cmocka_unit_test(test_ascii_case),
	    cmocka_unit_test(test_error_prefix), cmocka_unit_test(test_log_value),
	    cmocka_unit_test(test_fake_now),     cmocka_unit_test(test_hexval),
	    cmocka_unit_test(test_text_escape),  cmocka_unit_test(test_markup),
	    cmocka_unit_test(test_mono),         cmocka_unit_test(test_text_len),
	    cmocka_unit_test(test_write_all),
	};
	MW_RUN_TESTS(tests);
}
