/* test-spamd.c - lib/mw-spamd: the backend address, the SYMBOLS request, the reply parser on
 * real spamd replies and on hostile ones (every limit at and past its bound, every prefix of
 * a good reply), the cut of an oversize message, and the client against a fake spamd
 * (dribbling, silent, not reading, closing, refusing, answering garbage). */
#include "mw-build.h"
#include "mw-spamd.h"

#include "mw-test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Real replies of Debian's spamd 4.0.1 (SPAMC/1.5, SYMBOLS). */
static const char real_spam[] =
    "SPAMD/1.1 0 EX_OK\r\nContent-length: 79\r\nSpam: True ; 23.3 / 5.0\r\n\r\n"
    "MISSING_DATE,MISSING_MID,MW_TEST_SPAMWORD,NO_RECEIVED,NO_RELAYS,TVD_SPACE_RATIO";
static const char real_ham[] = "SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n"
                               "Spam: False ; -0.0 / 5.0\r\n\r\n";

static int parse(const char *reply, size_t len, struct mw_spamd_result *r, mw_error *err)
{
	return mw_spamd_reply_parse(reply, len, true, r, err);
}

#define PARSE(lit, r, err) parse((lit), sizeof(lit) - 1, (r), (err))

static void test_backend(void **state)
{
	static const char *const bad[] = {
	    "",
	    "spamd",
	    "spamd:",
	    "spamd:127.0.0.1",
	    "spamd:127.0.0.1:",
	    "spamd:127.0.0.1:0",
	    "spamd:127.0.0.1:65536",
	    "spamd:127.0.0.1:78a",
	    "spamd:localhost:783",
	    "spamd::783",
	    "spamd:::1:783",
	    "spamd:[127.0.0.1]:783",
	    "spamd:unix:",
	    "spamd:unix:rel/sock",
	    "spamc:127.0.0.1:783",
	    "spamd:127.0.0.1:000000783",
	};
	struct mw_spamd_settings s;
	char longpath[300];
	mw_error err;
	(void)state;
	for (size_t i = 0; i < MW_N_ELEMENTS(bad); i++)
		if (mw_spamd_parse_backend(bad[i], &s, &err) == 0)
			fail_msg("backend %s accepted", bad[i]);
	assert_int_equal(mw_spamd_parse_backend("spamd:127.0.0.1:783", &s, &err), 0);
	assert_int_equal(s.addr.ss_family, AF_INET);
	assert_string_equal(s.spec, "spamd:127.0.0.1:783");
	assert_int_equal(mw_spamd_parse_backend("spamd:[::1]:783", &s, &err), 0);
	assert_int_equal(s.addr.ss_family, AF_INET6);
	assert_int_equal(mw_spamd_parse_backend("spamd:unix:/run/spamd.sock", &s, &err), 0);
	assert_int_equal(s.addr.ss_family, AF_UNIX);
	snprintf(longpath, sizeof(longpath), "spamd:unix:/%0150d", 0);
	assert_int_equal(mw_spamd_parse_backend(longpath, &s, &err), -1);
}

static void test_user_and_request(void **state)
{
	mw_str out;
	mw_error err;
	(void)state;
	assert_true(mw_spamd_user_ok(""));
	assert_true(mw_spamd_user_ok("mail.filter-1+x@example.com"));
	assert_false(mw_spamd_user_ok("a b"));
	assert_false(mw_spamd_user_ok("a\r\nUser: root"));
	assert_false(mw_spamd_user_ok("a:b"));
	assert_true(
	    mw_spamd_user_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_false(
	    mw_spamd_user_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	mw_str_init(&out, 0);
	assert_int_equal(mw_spamd_request_print("", 42, &out, &err), 0);
	assert_string_equal(out.buf, "SYMBOLS SPAMC/1.5\r\nContent-length: 42\r\n\r\n");
	mw_str_reset(&out);
	assert_int_equal(mw_spamd_request_print("filter", 0, &out, &err), 0);
	assert_string_equal(out.buf,
	                    "SYMBOLS SPAMC/1.5\r\nContent-length: 0\r\nUser: filter\r\n\r\n");
	mw_str_reset(&out);
	assert_int_equal(mw_spamd_request_print("x\r\nUser: root", 1, &out, &err), -1);
	mw_str_free(&out);
}

static void test_real_replies(void **state)
{
	struct mw_spamd_result r;
	mw_error err = {""};
	(void)state;
	assert_int_equal(PARSE(real_spam, &r, &err), 0);
	assert_int_equal(r.score, 2330);
	assert_int_equal(r.required, 500);
	assert_true(r.spam);
	assert_int_equal(r.ntests, 6);
	assert_false(r.tests_cut);
	assert_string_equal(r.tests, "MISSING_DATE,MISSING_MID,MW_TEST_SPAMWORD,NO_RECEIVED,"
	                             "NO_RELAYS,TVD_SPACE_RATIO");
	assert_int_equal(PARSE(real_ham, &r, &err), 0);
	assert_int_equal(r.score, 0);
	assert_false(r.spam);
	assert_string_equal(r.tests, "");
	assert_int_equal(r.ntests, 0);
}

static void test_prefixes(void **state)
{
	struct mw_spamd_result r;
	mw_error err;
	(void)state;
	/* every proper prefix of a good reply: more needed, and an error at EOF */
	for (size_t n = 0; n < sizeof(real_spam) - 1; n++) {
		if (mw_spamd_reply_parse(real_spam, n, false, &r, &err) != 1)
			fail_msg("prefix of %zu bytes not incomplete: %s", n, err.msg);
		if (mw_spamd_reply_parse(real_spam, n, true, &r, &err) != -1)
			fail_msg("prefix of %zu bytes at EOF accepted", n);
	}
	assert_int_equal(mw_spamd_reply_parse(real_spam, sizeof(real_spam) - 1, false, &r, &err),
	                 0);
}

struct reply_case {
	const char *reply;
	int rc;
	long score;
	const char *tests;
};

static void test_reply_table(void **state)
{
	static const struct reply_case cases[] = {
	    /* good variants */
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nA_1,B", 0,
	     100000, "A_1,B"},
	    {"SPAMD/1.1 0 EX_OK\r\nSpam: false;-2.55/5.0\r\ncontent-length: 3\r\n\r\nX\r\n", 0,
	     -255, "X"},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: No ; 0.004 / 5\r\n\r\n", 0, 0, ""},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: No ; 0.005 / 5\r\n\r\n", 0, 1, ""},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: Yes ; 9999999 / 5\r\n\r\n", 0,
	     9999999, ""},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 99999.995 / 5\r\n\r\n", 0,
	     9999999, ""},
	    {"SPAMD/1.1 0 EX_OK\r\nX-Other: whatever\r\nContent-length: 0\r\n"
	     "Spam: True ; 1 / 5\r\n\r\n",
	     0, 100, ""},
	    /* refused or garbage */
	    {"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\nContent-length: 0\nSpam: True ; 1 / 5\n\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1 / 5\r\n"
	     "Spam: False ; 1 / 5\r\n\r\n",
	     -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nContent-length: 0\r\n"
	     "Spam: True ; 1 / 5\r\n\r\n",
	     -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 16385\r\nSpam: True ; 1 / 5\r\n\r\n", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: -1\r\nSpam: True ; 1 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 1\r\nSpam: True ; 1 / 5\r\n\r\nAB", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: Maybe ; 1 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1e3 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1. / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 12345678 / 5\r\n\r\n", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1 / 5 extra\r\n\r\n", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 4\r\nSpam: True ; 1 / 5\r\n\r\nA,B,", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 4\r\nSpam: True ; 1 / 5\r\n\r\n,A,B", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 4\r\nSpam: True ; 1 / 5\r\n\r\nA,,B", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 3\r\nSpam: True ; 1 / 5\r\n\r\nA B", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 3\r\nSpam: True ; 1 / 5\r\n\r\nA;B", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 3\r\nSpam: True ; 1 / 5\r\n\r\nA\nB", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1 / 5\r\n\r\n\r\n", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent length: 0\r\nSpam: True ; 1 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\n: 0\r\nSpam: True ; 1 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nnonsense\r\nSpam: True ; 1 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1 / 5\r\x00\n\r\n", -1, 0,
	     NULL},
	    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True \xc3\xa9; 1 / 5\r\n\r\n", -1, 0,
	     NULL},
	    {"HTTP/1.1 200 OK\r\nContent-length: 0\r\nSpam: True ; 1 / 5\r\n\r\n", -1, 0, NULL},
	    {"SPAMD/x 0 EX_OK\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 0EX_OK\r\n", -1, 0, NULL},
	    {"SPAMD/1.1 1000 EX_OK\r\n", -1, 0, NULL},
	    {"PONG\r\n", -1, 0, NULL},
	};
	(void)state;
	for (size_t i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct mw_spamd_result r;
		mw_error err = {""};
		int rc = parse(cases[i].reply, strlen(cases[i].reply), &r, &err);
		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, expected %d (%s)", i, rc, cases[i].rc, err.msg);
		if (rc == 0) {
			if (r.score != cases[i].score)
				fail_msg("case %zu: score %ld, expected %ld", i, r.score,
				         cases[i].score);
			assert_string_equal(r.tests, cases[i].tests);
		} else
			assert_true(err.msg[0] != '\0');
	}
}

/* padded_reply - a reply of NHDR header lines whose last (Spam) line is padded with blanks
   to LINELEN bytes, CRLF included (0: not padded) */
static size_t padded_reply(char *buf, size_t size, size_t linelen, unsigned nhdr)
{
	size_t n = (size_t)snprintf(buf, size, "SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n"), start;
	for (unsigned i = 2; i < nhdr; i++)
		n += (size_t)snprintf(buf + n, size - n, "X-Pad-%u: x\r\n", i);
	start = n;
	n += (size_t)snprintf(buf + n, size - n, "Spam: True ; 1 / 5");
	while (n - start + 2 < linelen && n + 5 < size)
		buf[n++] = ' ';
	n += (size_t)snprintf(buf + n, size - n, "\r\n\r\n");
	return n;
}

static void test_limits(void **state)
{
	static char buf[40000];
	struct mw_spamd_result r;
	mw_error err;
	size_t n, i;
	(void)state;
	/* a line of exactly MW_SPAMD_LINE_MAX bytes with its CRLF, and one more */
	n = padded_reply(buf, sizeof(buf), MW_SPAMD_LINE_MAX, 2);
	assert_int_equal(parse(buf, n, &r, &err), 0);
	n = padded_reply(buf, sizeof(buf), MW_SPAMD_LINE_MAX + 1, 2);
	assert_int_equal(parse(buf, n, &r, &err), -1);
	assert_non_null(strstr(err.msg, "longer"));
	/* a long line is refused before its end arrives */
	assert_int_equal(mw_spamd_reply_parse(buf, n - 3, false, &r, &err), -1);
	/* MW_SPAMD_HEADERS_MAX header lines, and one more */
	n = padded_reply(buf, sizeof(buf), 0, MW_SPAMD_HEADERS_MAX);
	assert_int_equal(parse(buf, n, &r, &err), 0);
	n = padded_reply(buf, sizeof(buf), 0, MW_SPAMD_HEADERS_MAX + 1);
	assert_int_equal(parse(buf, n, &r, &err), -1);
	/* the body at MW_SPAMD_BODY_MAX: names of MW_SPAMD_NAME_MAX bytes; those beyond
	   MW_HDR_TESTS_MAX are counted, not kept */
	n = (size_t)snprintf(
	    buf, sizeof(buf),
	    "SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: True ; 1 / 5\r\n\r\n",
	    MW_SPAMD_BODY_MAX);
	for (i = 0; i < MW_SPAMD_BODY_MAX; i++)
		buf[n + i] = (i + 1) % (MW_SPAMD_NAME_MAX + 1) == 0 ? ',' : 'A';
	buf[n + i - 1] = 'B';
	assert_int_equal(parse(buf, n + i, &r, &err), 0);
	assert_true(r.tests_cut);
	assert_int_equal(r.ntests, MW_SPAMD_BODY_MAX / (MW_SPAMD_NAME_MAX + 1) + 1);
	assert_true(strlen(r.tests) <= MW_HDR_TESTS_MAX);
	assert_int_equal(strlen(r.tests) % (MW_SPAMD_NAME_MAX + 1), MW_SPAMD_NAME_MAX);
	/* a name one byte longer than MW_SPAMD_NAME_MAX */
	n = (size_t)snprintf(
	    buf, sizeof(buf),
	    "SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: True ; 1 / 5\r\n\r\n",
	    MW_SPAMD_NAME_MAX + 1);
	memset(buf + n, 'A', MW_SPAMD_NAME_MAX + 1);
	assert_int_equal(parse(buf, n + MW_SPAMD_NAME_MAX + 1, &r, &err), -1);
	/* a NUL inside a line */
	assert_int_equal(parse("SPAMD/1.1 0 EX\0OK\r\n", 19, &r, &err), -1);
}

static void test_cut(void **state)
{
	static const char m[] = "A: b\r\n\r\nline one\r\nline two\r\n";
	(void)state;
	assert_int_equal(mw_spamd_cut(m, sizeof(m) - 1, 100), sizeof(m) - 1);
	assert_int_equal(mw_spamd_cut(m, sizeof(m) - 1, sizeof(m) - 2), 18); /* after "one\r\n" */
	assert_int_equal(mw_spamd_cut(m, sizeof(m) - 1, 18), 18);
	assert_int_equal(mw_spamd_cut(m, sizeof(m) - 1, 17), 8);
	assert_int_equal(mw_spamd_cut("abcdef", 6, 3), 3);
}

/* ---- a fake spamd on a unix socket ---------------------------------------------------- */

enum fake_mode {
	FAKE_ANSWER,  /* read the request whole, answer */
	FAKE_DRIBBLE, /* answer one byte every DELAY ms */
	FAKE_SILENT,  /* read the request, say nothing for 3 s */
	FAKE_NOREAD,  /* read nothing, wait 3 s */
	FAKE_CLOSE,   /* close at once */
	FAKE_EARLY,   /* answer right after the request head, close */
	FAKE_NOCLOSE, /* answer, then keep the connection open for 3 s */
};

struct fake {
	char path[108];
	int lfd;
	enum fake_mode mode;
	const char *reply;
	size_t reply_len;
	unsigned delay_ms;
	char head[512];
	size_t received;
	pthread_t th;
};

static void sleep_ms(unsigned ms)
{
	struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	size_t hlen = 0, clen = 0;
	char buf[4096], *cl;
	if (fd < 0)
		return NULL;
	if (f->mode == FAKE_CLOSE)
		goto out;
	if (f->mode == FAKE_NOREAD) {
		sleep_ms(3000);
		goto out;
	}
	/* the head, byte by byte, up to its blank line */
	while (hlen + 1 < sizeof(f->head) &&
	       (hlen < 4 || memcmp(f->head + hlen - 4, "\r\n\r\n", 4) != 0)) {
		if (read(fd, f->head + hlen, 1) != 1)
			goto out;
		hlen++;
	}
	f->head[hlen] = '\0';
	if (f->mode == FAKE_EARLY) {
		(void)write(fd, f->reply, f->reply_len);
		goto out;
	}
	cl = strstr(f->head, "Content-length: ");
	if (cl != NULL)
		clen = (size_t)strtoul(cl + 16, NULL, 10);
	while (f->received < clen) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			goto out;
		f->received += (size_t)n;
	}
	if (f->mode == FAKE_SILENT) {
		sleep_ms(3000);
		goto out;
	}
	if (f->mode == FAKE_DRIBBLE) {
		for (size_t i = 0; i < f->reply_len; i++) {
			if (write(fd, f->reply + i, 1) != 1)
				goto out;
			sleep_ms(f->delay_ms);
		}
		goto out;
	}
	(void)write(fd, f->reply, f->reply_len);
	if (f->mode == FAKE_NOCLOSE)
		sleep_ms(3000);
out:
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const char *dir, enum fake_mode mode, const char *reply,
                       size_t len, unsigned delay_ms)
{
	struct sockaddr_un su;
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s/spamd.sock", dir);
	(void)unlink(f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	memcpy(su.sun_path, f->path, strlen(f->path) + 1);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&su, sizeof(su)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->mode = mode;
	f->reply = reply;
	f->reply_len = len;
	f->delay_ms = delay_ms;
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
	unlink(f->path);
}

static int check(const char *dir, unsigned timeout_ms, const char *msg, size_t len,
                 struct mw_spamd_result *r, mw_error *err)
{
	struct mw_spamd_settings s;
	char spec[200];
	memset(&s, 0, sizeof(s));
	snprintf(spec, sizeof(spec), "spamd:unix:%s/spamd.sock", dir);
	assert_int_equal(mw_spamd_parse_backend(spec, &s, err), 0);
	s.timeout_ms = timeout_ms;
	memcpy(s.user, "filter", 7);
	return mw_spamd_check(&s, msg, len, r, err);
}

static double mono(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_client(void **state)
{
	char dir[] = "/tmp/mw-spamd-XXXXXX", *big;
	static const char msg[] = "Subject: x\r\n\r\nhello\r\n";
	struct mw_spamd_result r;
	struct fake f;
	mw_error err;
	double t0;
	(void)state;
	assert_non_null(mkdtemp(dir));

	/* a good answer; the request head and the whole message arrive */
	fake_start(&f, dir, FAKE_ANSWER, real_spam, sizeof(real_spam) - 1, 0);
	assert_int_equal(check(dir, 2000, msg, sizeof(msg) - 1, &r, &err), 0);
	fake_stop(&f);
	assert_string_equal(f.head,
	                    "SYMBOLS SPAMC/1.5\r\nContent-length: 21\r\nUser: filter\r\n\r\n");
	assert_int_equal(f.received, sizeof(msg) - 1);
	assert_int_equal(r.score, 2330);
	assert_int_equal(r.ntests, 6);

	/* a big message (more than the socket buffers hold) */
	big = malloc(3000000);
	memset(big, 'x', 3000000);
	fake_start(&f, dir, FAKE_ANSWER, real_ham, sizeof(real_ham) - 1, 0);
	assert_int_equal(check(dir, 5000, big, 3000000, &r, &err), 0);
	fake_stop(&f);
	assert_int_equal(f.received, 3000000);

	/* an answer that does not close the connection is complete at its Content-length */
	fake_start(&f, dir, FAKE_NOCLOSE, real_spam, sizeof(real_spam) - 1, 0);
	t0 = mono();
	assert_int_equal(check(dir, 2500, msg, sizeof(msg) - 1, &r, &err), 0);
	assert_true(mono() - t0 < 2.0);
	fake_stop(&f);

	/* dribbled within the deadline: fine */
	fake_start(&f, dir, FAKE_DRIBBLE, real_ham, sizeof(real_ham) - 1, 2);
	assert_int_equal(check(dir, 3000, msg, sizeof(msg) - 1, &r, &err), 0);
	fake_stop(&f);
	/* dribbled past the deadline: one deadline for the whole check, not one per read */
	fake_start(&f, dir, FAKE_DRIBBLE, real_spam, sizeof(real_spam) - 1, 20);
	t0 = mono();
	assert_int_equal(check(dir, 600, msg, sizeof(msg) - 1, &r, &err), -1);
	assert_true(mono() - t0 < 1.5);
	assert_non_null(strstr(err.msg, "in time"));
	fake_stop(&f);

	/* silent after the message */
	fake_start(&f, dir, FAKE_SILENT, "", 0, 0);
	t0 = mono();
	assert_int_equal(check(dir, 500, msg, sizeof(msg) - 1, &r, &err), -1);
	assert_true(mono() - t0 < 1.5);
	assert_non_null(strstr(err.msg, "no complete reply in time"));
	fake_stop(&f);

	/* not reading a big message at all */
	fake_start(&f, dir, FAKE_NOREAD, "", 0, 0);
	t0 = mono();
	assert_int_equal(check(dir, 500, big, 3000000, &r, &err), -1);
	assert_true(mono() - t0 < 1.5);
	assert_non_null(strstr(err.msg, "in time"));
	fake_stop(&f);

	/* closing at once, refusing early, answering garbage, answering too much */
	fake_start(&f, dir, FAKE_CLOSE, "", 0, 0);
	assert_int_equal(check(dir, 2000, msg, sizeof(msg) - 1, &r, &err), -1);
	fake_stop(&f);
	{
		static const char refuse[] = "SPAMD/1.0 76 Bad header line: x\r\n";
		fake_start(&f, dir, FAKE_EARLY, refuse, sizeof(refuse) - 1, 0);
		assert_int_equal(check(dir, 2000, big, 3000000, &r, &err), -1);
		assert_non_null(strstr(err.msg, "76"));
		fake_stop(&f);
	}
	{
		static const char garbage[] = "220 smtp.example ESMTP ready\r\n";
		fake_start(&f, dir, FAKE_ANSWER, garbage, sizeof(garbage) - 1, 0);
		assert_int_equal(check(dir, 2000, msg, sizeof(msg) - 1, &r, &err), -1);
		fake_stop(&f);
	}
	{
		static const char trail[] = "SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n"
		                            "Spam: False ; 0.0 / 5.0\r\n\r\nEXTRA";
		fake_start(&f, dir, FAKE_ANSWER, trail, sizeof(trail) - 1, 0);
		assert_int_equal(check(dir, 2000, msg, sizeof(msg) - 1, &r, &err), -1);
		fake_stop(&f);
	}
	{
		/* an endless header: refused at the line bound, not read to the end */
		static char endless[200000];
		memcpy(endless, "SPAMD/1.1 0 EX_OK\r\nX: ", 22);
		memset(endless + 22, 'a', sizeof(endless) - 22);
		fake_start(&f, dir, FAKE_ANSWER, endless, sizeof(endless), 0);
		assert_int_equal(check(dir, 2000, msg, sizeof(msg) - 1, &r, &err), -1);
		assert_non_null(strstr(err.msg, "longer"));
		fake_stop(&f);
	}
	/* nobody there */
	assert_int_equal(check(dir, 2000, msg, sizeof(msg) - 1, &r, &err), -1);
	assert_non_null(strstr(err.msg, "connect"));
	free(big);
	rmdir(dir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* the fake writes to a client that gave up */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backend),      cmocka_unit_test(test_user_and_request),
	    cmocka_unit_test(test_real_replies), cmocka_unit_test(test_prefixes),
	    cmocka_unit_test(test_reply_table),  cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_cut),          cmocka_unit_test(test_client),
	};
	MW_RUN_TESTS(tests);
}
