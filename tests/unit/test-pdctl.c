/* test-pdctl.c - the policyd control protocol (lib/mw-pdctl.c): every reply and request the
   encoder writes decodes to exactly what was encoded (also fed a byte at a time, as the client
   reads it), the extremes of every type included; and the decoder refuses every malformed
   input with a reason: unknown records and fields, duplicates, missing fields, values out of
   their type or range, over-long lines and texts, control bytes, bytes after the end. A live
   round trip through mw_pdctl_call over a socketpair-served unix socket checks the client. */
#include "mw-build.h"
#include "mw-pdctl.h"

#include "mw-test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* same_reply - a and b hold the same reply */
static void same_reply(const struct mw_pdctl_reply *a, const struct mw_pdctl_reply *b)
{
	size_t i;
	assert_int_equal(a->ok, b->ok);
	assert_string_equal(a->subject, b->subject);
	assert_string_equal(a->error, b->error);
	assert_int_equal(a->cleared, b->cleared);
	assert_int_equal(a->nlimits, b->nlimits);
	for (i = 0; i < a->nlimits; i++) {
		assert_string_equal(a->limits[i].limit, b->limits[i].limit);
		assert_string_equal(a->limits[i].origin, b->limits[i].origin);
		assert_true(a->limits[i].used == b->limits[i].used);
		assert_true(a->limits[i].count == b->limits[i].count);
		assert_true(a->limits[i].reset_after == b->limits[i].reset_after);
		assert_int_equal(a->limits[i].degraded, b->limits[i].degraded);
	}
	assert_int_equal(a->ndegraded, b->ndegraded);
	for (i = 0; i < a->ndegraded; i++) {
		assert_string_equal(a->degraded[i].component, b->degraded[i].component);
		assert_string_equal(a->degraded[i].reason, b->degraded[i].reason);
		assert_true(a->degraded[i].since == b->degraded[i].since);
	}
}

/* sample - a reply with n limits, the extreme values among them */
static struct mw_pdctl_reply *sample(size_t n, bool ok, int64_t cleared)
{
	struct mw_pdctl_reply *r = mw_calloc(1, sizeof(*r));
	size_t i;
	r->ok = ok;
	r->cleared = cleared;
	(void)mw_strlcpy(r->subject, ok ? "sasl_username u\xc3\xa9@example.org" : "",
	                 sizeof(r->subject));
	(void)mw_strlcpy(r->error, ok ? "" : "not a user name or IP address", sizeof(r->error));
	r->nlimits = n;
	for (i = 0; i < n; i++) {
		struct mw_pdctl_limit *l = &r->limits[i];
		(void)snprintf(l->limit, sizeof(l->limit), "sasl_username messages %zu/1h defer",
		               i + 1);
		(void)snprintf(l->origin, sizeof(l->origin),
		               i % 2 ? "store #%zu" : "/etc/x.conf:%zu", i);
		l->used = i == 1 ? INT64_MAX : (int64_t)i;
		l->count = i == 2 ? INT64_MAX : (int64_t)i + 1;
		l->reset_after = i == 0 ? 0 : i == 3 ? INT64_MAX : 3601 + (int64_t)i;
		l->degraded = i % 3 == 1;
	}
	r->ndegraded = n % MW_PDCTL_DEGRADED_MAX; /* health records beside limits */
	for (i = 0; i < r->ndegraded; i++) {
		(void)snprintf(r->degraded[i].component, sizeof(r->degraded[i].component),
		               "component_%zu", i);
		(void)mw_strlcpy(r->degraded[i].reason, "connect_failed",
		                 sizeof(r->degraded[i].reason));
		r->degraded[i].since = i == 1 ? INT64_MAX : 1796644800 + (int64_t)i;
	}
	if (n > 4) { /* a text of exactly the maximum length, with '=' and spaces in it */
		memset(r->limits[4].origin, 'o', MW_PDCTL_TEXT_MAX);
		r->limits[4].origin[3] = '=';
		r->limits[4].origin[4] = ' ';
		r->limits[4].origin[MW_PDCTL_TEXT_MAX] = '\0';
	}
	return r;
}

static void test_reply_round_trip(void **state)
{
	static const size_t ns[] = {0, 1, 2, 5, MW_PDCTL_LIMITS_MAX};
	size_t i, cut;
	int variant;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(ns); i++)
		for (variant = 0; variant < 3; variant++) {
			struct mw_pdctl_reply *in =
			    sample(ns[i], variant != 2, variant == 1 ? 7 : -1);
			struct mw_pdctl_reply *out = mw_calloc(1, sizeof(*out));
			mw_str s;
			mw_error err = {""};
			mw_str_init(&s, MW_PDCTL_REPLY_MAX);
			assert_int_equal(mw_pdctl_encode_reply(&s, in, &err), 0);
			assert_int_equal(mw_pdctl_decode_reply(s.buf, s.len, out, &err), 1);
			same_reply(in, out);
			/* every proper prefix is a correct beginning, never a reply */
			for (cut = 0; cut<s.len; cut += ns[i]> 2 ? 97 : 1)
				if (mw_pdctl_decode_reply(s.buf, cut, out, &err) != 0)
					fail_msg("prefix %zu of %zu: %s", cut, s.len, err.msg);
			mw_str_free(&s);
			free(in);
			free(out);
		}
}

static void test_request_round_trip(void **state)
{
	static const char *const subjects[] = {"john@example.org", "192.0.2.1", "2001:db8::1",
	                                       "x=y z"};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(subjects) * 3; i++) {
		struct mw_pdctl_request in, out;
		mw_str s;
		mw_error err = {""};
		size_t framed = 0;
		memset(&in, 0, sizeof(in));
		in.command = i % 3 == 2 ? MW_PDCTL_HEALTH
		             : i % 3    ? MW_PDCTL_RESET
		                        : MW_PDCTL_STATUS;
		(void)mw_strlcpy(in.subject, subjects[i / 3], sizeof(in.subject));
		mw_str_init(&s, MW_PDCTL_REQUEST_MAX);
		assert_int_equal(mw_pdctl_encode_request(&s, &in, &err), 0);
		assert_int_equal(mw_pdctl_frame(s.buf, s.len, MW_PDCTL_REQUEST_MAX, &framed), 1);
		assert_int_equal(framed, s.len);
		assert_int_equal(mw_pdctl_decode_request(s.buf, s.len, &out, &err), 0);
		assert_int_equal(out.command, in.command);
		assert_string_equal(out.subject, in.subject);
		mw_str_free(&s);
	}
}

/* A contact form's charge (mailwarden-api -> policyd) and its verdict round trip; a verdict
   record after the ok, a charge missing a field and a status record with charge fields are
   refused. */
static void test_charge_round_trip(void **state)
{
	struct mw_pdctl_request in, out;
	struct mw_pdctl_reply *rin = mw_calloc(1, sizeof(*rin)),
	                      *rout = mw_calloc(1, sizeof(*rout));
	mw_str s;
	mw_error err = {""};
	static const char no_field[] = "record=charge\nsubject=contact\nclient=192.0.2.1\n"
	                               "ip_count=5\nip_window=600\nform_count=100\n\n";
	static const char status_extra[] = "record=status\nsubject=x\nclient=192.0.2.1\n\n";
	static const char after_ok[] = "record=ok\nsubject=x\n\nrecord=verdict\nallowed=1\n"
	                               "retry_after=0\n\n";
	(void)state;
	memset(&in, 0, sizeof(in));
	in.command = MW_PDCTL_CHARGE;
	strcpy(in.subject, "contact");
	strcpy(in.client, "2001:db8::7");
	in.ip_count = 5;
	in.ip_window = 600;
	in.form_count = 0;
	in.form_window = 0;
	mw_str_init(&s, MW_PDCTL_REQUEST_MAX);
	assert_int_equal(mw_pdctl_encode_request(&s, &in, &err), 0);
	assert_int_equal(mw_pdctl_decode_request(s.buf, s.len, &out, &err), 0);
	assert_int_equal(out.command, MW_PDCTL_CHARGE);
	assert_string_equal(out.subject, "contact");
	assert_string_equal(out.client, "2001:db8::7");
	assert_int_equal(out.ip_count, 5);
	assert_int_equal(out.ip_window, 600);
	assert_int_equal(out.form_count, 0);
	mw_str_free(&s);
	assert_int_equal(mw_pdctl_decode_request(no_field, strlen(no_field), &out, &err), -1);
	assert_int_equal(mw_pdctl_decode_request(status_extra, strlen(status_extra), &out, &err),
	                 -1);
	rin->ok = true;
	rin->cleared = -1;
	strcpy(rin->subject, "form contact client 2001:db8::/64");
	rin->verdict = true;
	rin->allowed = false;
	rin->retry_after = 42;
	mw_str_init(&s, MW_PDCTL_REPLY_MAX);
	assert_int_equal(mw_pdctl_encode_reply(&s, rin, &err), 0);
	assert_int_equal(mw_pdctl_decode_reply(s.buf, s.len, rout, &err), 1);
	assert_true(rout->verdict);
	assert_false(rout->allowed);
	assert_int_equal(rout->retry_after, 42);
	mw_str_free(&s);
	assert_int_equal(mw_pdctl_decode_reply(after_ok, strlen(after_ok), rout, &err), -1);
	free(rin);
	free(rout);
}

/* What the encoder refuses: texts with control bytes or too long, negative numbers. */
static void test_encoder_refuses(void **state)
{
	struct mw_pdctl_reply *r = sample(2, true, -1);
	mw_str s;
	mw_error err = {""};
	(void)state;
	mw_str_init(&s, MW_PDCTL_REPLY_MAX);
	assert_int_equal(mw_pdctl_encode_ok(&s, "a\nrecord=ok", &err), -1);
	assert_int_equal(mw_pdctl_encode_error(&s, "tab\there", &err), -1);
	assert_int_equal(mw_pdctl_encode_cleared(&s, -1, &err), -1);
	r->limits[1].used = -5;
	assert_int_equal(mw_pdctl_encode_reply(&s, r, &err), -1);
	assert_int_equal(s.len, 0); /* nothing half written */
	r->limits[1].used = 5;
	memset(r->limits[1].limit, 'x', MW_PDCTL_TEXT_MAX);
	r->limits[1].limit[MW_PDCTL_TEXT_MAX] = '\0';
	assert_int_equal(mw_pdctl_encode_reply(&s, r, &err), 0);
	mw_str_free(&s);
	free(r);
}

#define OK_END "record=ok\nsubject=sasl_username u\n\n"
#define LIMIT_FIELDS                                                                               \
	"limit=sasl_username messages 3/3s defer\norigin=x.conf:1\nused=1\ncount=3\n"              \
	"reset_after=2\ndegraded=0\n"

/* Hostile replies: each refused (-1) with a reason containing the expected words. */
static const struct {
	const char *in;
	size_t len; /* 0 = strlen */
	const char *err;
} bad_replies[] = {
    {"record=ok\n\n", 0, "subject missing"},
    {"record=ok\nsubject=a\nsubject=b\n\n", 0, "subject given twice"},
    {"record=ok\nsubject=a\nextra=1\n\n", 0, "unknown field"},
    {"record=okay\nsubject=a\n\n", 0, "unknown or unexpected record"},
    {"record=status\nsubject=a\n\n", 0, "unknown or unexpected record"},
    {"subject=a\n\n", 0, "must start with record="},
    {"\n", 0, "must start with record="},
    {OK_END "x", 0, "bytes after the end"},
    {OK_END "\n", 0, "bytes after the end"},
    {OK_END OK_END, 0, "bytes after the end"},
    {"record=ok\nsubject=a\r\n\n", 0, "control byte"},
    {"record=ok\nsubject=a\0b\n\n", 23, "control byte"},
    {"record=ok\nsubjectnovalue\n\n", 0, "without '='"},
    {"record=limit\n" LIMIT_FIELDS "\n" OK_END, 0, NULL},
    {"record=limit\n" LIMIT_FIELDS "used=2\n\n" OK_END, 0, "used given twice"},
    {"record=limit\nlimit=x\norigin=y\nused=1\ncount=3\ndegraded=0\n\n" OK_END, 0,
     "reset_after missing"},
    {"record=limit\nlimit=x\norigin=y\nused=-1\ncount=3\nreset_after=0\ndegraded=0\n\n" OK_END, 0,
     "used is not a number"},
    {"record=limit\nlimit=x\norigin=y\nused=+1\ncount=3\nreset_after=0\ndegraded=0\n\n" OK_END, 0,
     "used is not a number"},
    {"record=limit\nlimit=x\norigin=y\nused=01\ncount=3\nreset_after=0\ndegraded=0\n\n" OK_END, 0,
     "used is not a number"},
    {"record=limit\nlimit=x\norigin=y\nused=\ncount=3\nreset_after=0\ndegraded=0\n\n" OK_END, 0,
     "used is not a number"},
    {"record=limit\nlimit=x\norigin=y\nused=1 \ncount=3\nreset_after=0\ndegraded=0\n\n" OK_END, 0,
     "used is not a number"},
    {"record=limit\nlimit=x\norigin=y\nused=9223372036854775808\ncount=3\nreset_after=0\n"
     "degraded=0\n\n" OK_END,
     0, "used is not a number"},
    {"record=limit\nlimit=x\norigin=y\nused=9223372036854775807\ncount=3\nreset_after=0\n"
     "degraded=0\n\n" OK_END,
     0, NULL},
    {"record=limit\nlimit=x\norigin=y\nused=1\ncount=3\nreset_after=1.5\ndegraded=0\n\n" OK_END, 0,
     "reset_after is not a number"},
    {"record=limit\nlimit=x\norigin=y\nused=1\ncount=3\nreset_after=1\ndegraded=yes\n\n" OK_END, 0,
     "degraded is not 0 or 1"},
    {"record=cleared\ncount=3\n\nrecord=limit\n" LIMIT_FIELDS "\n" OK_END, 0,
     "unknown or unexpected record"},
    {"record=cleared\ncount=3\n\nrecord=cleared\ncount=3\n\n" OK_END, 0,
     "unknown or unexpected record"},
    {"record=cleared\ncount=3\n\n" OK_END, 0, NULL},
    {"record=error\nreason=no\n\n", 0, NULL},
    {"record=error\nreason=no\n\nrecord=limit\n", 0, "bytes after the end"},
    {"record=degraded\ncomponent=policyd_counters\nreason=connect_failed\nsince=5\n\n" OK_END, 0,
     NULL},
    {"record=degraded\ncomponent=policyd_counters\nreason=connect_failed\n\n" OK_END, 0,
     "since missing"},
    {"record=degraded\ncomponent=policyd_counters\nreason=x\nsince=-1\n\n" OK_END, 0,
     "since is not a number"},
    {"record=health\nsubject=daemon\n\n" OK_END, 0, "unknown or unexpected record"},
};

static void test_decoder_refuses(void **state)
{
	struct mw_pdctl_reply *r = mw_calloc(1, sizeof(*r));
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(bad_replies); i++) {
		size_t len =
		    bad_replies[i].len != 0 ? bad_replies[i].len : strlen(bad_replies[i].in);
		mw_error err = {""};
		int rc = mw_pdctl_decode_reply(bad_replies[i].in, len, r, &err);
		if (bad_replies[i].err == NULL) {
			if (rc != 1)
				fail_msg("case %zu: rc=%d err=%s", i, rc, err.msg);
		} else if (rc != -1 || strstr(err.msg, bad_replies[i].err) == NULL) {
			fail_msg("case %zu: rc=%d err=%s (want %s)", i, rc, err.msg,
			         bad_replies[i].err);
		}
	}
	free(r);
}

/* Size limits: a line, a text, the number of limits, the whole reply. */
static void test_decoder_limits(void **state)
{
	struct mw_pdctl_reply *r = mw_calloc(1, sizeof(*r));
	struct mw_pdctl_request req;
	mw_str s;
	mw_error err = {""};
	size_t i, framed;
	char *text = mw_malloc(MW_PDCTL_LINE_MAX + 10);
	(void)state;
	/* a text of MW_PDCTL_TEXT_MAX passes, one more byte does not */
	for (i = 0; i < 2; i++) {
		mw_str_init(&s, 0);
		memset(text, 'a', MW_PDCTL_TEXT_MAX + i);
		text[MW_PDCTL_TEXT_MAX + i] = '\0';
		assert_int_equal(mw_str_appendf(&s, "record=error\nreason=%s\n\n", text), 0);
		assert_int_equal(mw_pdctl_decode_reply(s.buf, s.len, r, &err), i == 0 ? 1 : -1);
		if (i == 1)
			assert_non_null(strstr(err.msg, "reason longer than"));
		mw_str_free(&s);
	}
	/* a line that never ends is refused once it is too long, not waited for */
	memset(text, 'b', MW_PDCTL_LINE_MAX + 1);
	mw_str_init(&s, 0);
	assert_int_equal(mw_str_appendf(&s, "record=ok\nsubject=%.*s", MW_PDCTL_LINE_MAX - 8, text),
	                 0);
	assert_int_equal(mw_pdctl_decode_reply(s.buf, s.len, r, &err), 0);
	assert_int_equal(mw_str_appendc(&s, 'b'), 0);
	assert_int_equal(mw_pdctl_decode_reply(s.buf, s.len, r, &err), -1);
	assert_non_null(strstr(err.msg, "line longer than"));
	mw_str_free(&s);
	/* MW_PDCTL_LIMITS_MAX limit records pass (round trip above), one more does not */
	mw_str_init(&s, 0);
	for (i = 0; i <= MW_PDCTL_LIMITS_MAX; i++)
		assert_int_equal(mw_str_appends(&s, "record=limit\n" LIMIT_FIELDS "\n"), 0);
	assert_int_equal(mw_str_appends(&s, OK_END), 0);
	assert_int_equal(mw_pdctl_decode_reply(s.buf, s.len, r, &err), -1);
	assert_non_null(strstr(err.msg, "more than"));
	mw_str_free(&s);
	/* a reply longer than MW_PDCTL_REPLY_MAX */
	assert_int_equal(mw_pdctl_decode_reply("", MW_PDCTL_REPLY_MAX + 1, r, &err), -1);
	/* requests: framing and the exact-one rule */
	assert_int_equal(mw_pdctl_frame("record=status\nsub", 17, 64, &framed), 0);
	assert_int_equal(mw_pdctl_frame("record=status\nsubject=aaaaaaaa", 30, 20, &framed), -1);
	assert_int_equal(mw_pdctl_frame("\nrecord=x", 9, 64, &framed), 1);
	assert_int_equal(framed, 1);
	assert_int_equal(mw_pdctl_decode_request("record=status\nsubject=a\n\n", 25, &req, &err),
	                 0);
	assert_int_equal(
	    mw_pdctl_decode_request("record=status\nsubject=a\n\nrecord=reset\nsubject=b\n\n", 50,
	                            &req, &err),
	    -1);
	assert_non_null(strstr(err.msg, "bytes after"));
	assert_int_equal(mw_pdctl_decode_request("record=status\nsubject=a\n", 24, &req, &err), -1);
	assert_non_null(strstr(err.msg, "cut short"));
	assert_int_equal(mw_pdctl_decode_request("record=ok\nsubject=a\n\n", 21, &req, &err), -1);
	assert_int_equal(mw_pdctl_decode_request("record=reset\n\n", 14, &req, &err), -1);
	assert_non_null(strstr(err.msg, "subject missing"));
	free(text);
	free(r);
}

/* serve - a one-shot daemon on path: reads a request, answers with reply bytes as given */
static pid_t serve(const char *path, const char *reply, size_t len, bool close_early)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	pid_t pid;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)mw_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	(void)unlink(path);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int c = accept(fd, NULL, NULL);
		char buf[2048];
		size_t got = 0, framed;
		ssize_t n;
		while ((n = read(c, buf + got, sizeof(buf) - got)) > 0) {
			got += (size_t)n;
			if (mw_pdctl_frame(buf, got, sizeof(buf), &framed) != 0)
				break;
		}
		if (len > 0 && write(c, reply, len) < 0)
			_exit(1);
		if (!close_early)
			sleep(3);
		_exit(0);
	}
	close(fd);
	return pid;
}

/* The client against a fake daemon: a good reply, a garbled one, one cut short, none. */
static void test_client(void **state)
{
	char path[64];
	struct mw_pdctl_request req = {.command = MW_PDCTL_STATUS, .subject = "u@example.org"};
	struct mw_pdctl_reply *r = mw_calloc(1, sizeof(*r));
	mw_error err = {""};
	static const char good[] = "record=limit\n" LIMIT_FIELDS "\n" OK_END;
	pid_t pid;
	int st;
	(void)state;
	(void)snprintf(path, sizeof(path), "/tmp/test-pdctl-%ld.sock", (long)getpid());
	pid = serve(path, good, sizeof(good) - 1, false);
	assert_int_equal(mw_pdctl_call(path, &req, 2000, r, &err), 0);
	assert_true(r->ok);
	assert_int_equal(r->nlimits, 1);
	assert_true(r->limits[0].reset_after == 2);
	assert_string_equal(r->subject, "sasl_username u");
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);

	pid = serve(path, "record=ok\nsubject=a\nx=1\n\n", 25, false);
	assert_int_equal(mw_pdctl_call(path, &req, 2000, r, &err), -1);
	assert_non_null(strstr(err.msg, "bad answer"));
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);

	pid = serve(path, good, 40, true);
	assert_int_equal(mw_pdctl_call(path, &req, 2000, r, &err), -1);
	assert_non_null(strstr(err.msg, "cut short"));
	waitpid(pid, &st, 0);

	pid = serve(path, "", 0, false);
	assert_int_equal(mw_pdctl_call(path, &req, 300, r, &err), -1);
	assert_non_null(strstr(err.msg, "no answer within 300 ms"));
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);

	(void)unlink(path);
	assert_int_equal(mw_pdctl_call(path, &req, 300, r, &err), -1);
	assert_non_null(strstr(err.msg, path));
	free(r);
}

static void test_format_limit(void **state)
{
	struct mw_pdctl_limit l = {"sasl_username messages 3/3s defer", "x.conf:4", 3, 3, 2, false};
	char buf[1200];
	(void)state;
	mw_pdctl_format_limit(&l, buf, sizeof(buf));
	assert_string_equal(
	    buf, "sasl_username messages 3/3s defer  used 3/3  resets in 2s  (x.conf:4)");
	l.reset_after = 0;
	l.used = 0;
	l.degraded = true;
	mw_pdctl_format_limit(&l, buf, sizeof(buf));
	assert_string_equal(
	    buf, "sasl_username messages 3/3s defer  used 0/3  idle  (x.conf:4, degraded)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_round_trip), cmocka_unit_test(test_request_round_trip),
	    cmocka_unit_test(test_encoder_refuses),  cmocka_unit_test(test_decoder_refuses),
	    cmocka_unit_test(test_decoder_limits),   cmocka_unit_test(test_client),
	    cmocka_unit_test(test_format_limit),     cmocka_unit_test(test_charge_round_trip),
	};
	MW_RUN_TESTS(tests);
}
