/* test-milter-proto.c - the milter protocol of milter/milter-proto.c, spoken over a real
   unix socket to smfi_main with a small filter: negotiation and the macro lists, commands
   agreed as no-reply get none (but a refusal is never dropped), macros per stage, header
   changes only at end of message and sent before the final reply, reply codes, QUIT_NC,
   and the connection closed on over-long or out-of-order commands. */
#include "mw-build.h"
#include "milter.h"

#include "mw-test.h"

#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* what the filter saw, for the tests to check (one connection at a time) */
static char seen_auth[128], seen_helo[128], seen_client[64], seen_qid[64];
static int n_negotiate, n_abort, n_connect, n_envfrom, eom_outside_ok;
static volatile int n_header; /* counted in the connection's thread */
static volatile int n_close;  /* counted in the connection's thread */

/* f_negotiate - every action offered, no reply for connect, HELO, RCPT and headers */
static sfsistat f_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                            unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                            unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	n_negotiate++;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE);
	*pf1 = f1 & (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NODATA);
	*pf2 = *pf3 = 0;
	(void)smfi_setpriv(ctx, &n_negotiate);
	(void)smfi_setsymlist(ctx, SMFIM_CONNECT, (char *)"{client_addr}");
	(void)smfi_setsymlist(ctx, SMFIM_ENVFROM, (char *)"{auth_authen} i");
	return SMFIS_CONTINUE;
}

/* f_connect - remember the client address */
static sfsistat f_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	const char *a = smfi_getsymval(ctx, (char *)"client_addr");
	(void)host;
	(void)sa;
	n_connect++;
	snprintf(seen_client, sizeof(seen_client), "%s", a != NULL ? a : "(none)");
	return SMFIS_NOREPLY;
}

/* f_helo - remember HELO */
static sfsistat f_helo(SMFICTX *ctx, char *helo)
{
	(void)ctx;
	snprintf(seen_helo, sizeof(seen_helo), "%s", helo);
	return SMFIS_NOREPLY;
}

/* f_envfrom - <bad@x> is refused with a reply text; header changes are refused here */
static sfsistat f_envfrom(SMFICTX *ctx, char **argv)
{
	const char *a = smfi_getsymval(ctx, (char *)"{auth_authen}");
	n_envfrom++;
	snprintf(seen_auth, sizeof(seen_auth), "%s", a != NULL ? a : "(none)");
	eom_outside_ok = smfi_addheader(ctx, (char *)"X-Early", (char *)"1") == MI_SUCCESS;
	if (strcmp(argv[0], "<bad@x>") == 0) {
		(void)smfi_setreply(ctx, (char *)"550", (char *)"5.7.1", (char *)"not you");
		return SMFIS_REJECT;
	}
	if (strcmp(argv[0], "<temp@x>") == 0) /* a 5xx text with a tempfail: not used */
	{
		(void)smfi_setreply(ctx, (char *)"550", (char *)"5.7.1", (char *)"mismatch");
		return SMFIS_TEMPFAIL;
	}
	return SMFIS_CONTINUE;
}

/* f_envrcpt - no reply agreed, but <refuse@x> is refused: that reply must still come */
static sfsistat f_envrcpt(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	return strcmp(argv[0], "<refuse@x>") == 0 ? SMFIS_TEMPFAIL : SMFIS_NOREPLY;
}

/* f_header - counted, nothing to say */
static sfsistat f_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx;
	(void)name;
	(void)value;
	n_header++;
	return SMFIS_NOREPLY;
}

/* f_eom - two header changes, then continue */
static sfsistat f_eom(SMFICTX *ctx)
{
	const char *q = smfi_getsymval(ctx, (char *)"i");
	snprintf(seen_qid, sizeof(seen_qid), "%s", q != NULL ? q : "(none)");
	if (smfi_insheader(ctx, 0, (char *)"X-Test", (char *)"yes") != MI_SUCCESS ||
	    smfi_chgheader(ctx, (char *)"Subject", 1, NULL) != MI_SUCCESS)
		return SMFIS_TEMPFAIL;
	return SMFIS_CONTINUE;
}

/* f_abort - count */
static sfsistat f_abort(SMFICTX *ctx)
{
	(void)ctx;
	n_abort++;
	return SMFIS_CONTINUE;
}

/* f_close - count */
static sfsistat f_close(SMFICTX *ctx)
{
	(void)smfi_setpriv(ctx, NULL);
	n_close++;
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = (char *)"test",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .xxfi_connect = f_connect,
    .xxfi_helo = f_helo,
    .xxfi_envfrom = f_envfrom,
    .xxfi_envrcpt = f_envrcpt,
    .xxfi_header = f_header,
    .xxfi_eom = f_eom,
    .xxfi_abort = f_abort,
    .xxfi_close = f_close,
    .xxfi_negotiate = f_negotiate,
};

static char sock_path[108];
static pthread_t main_thread;

/* main_thr - smfi_main in a thread */
static void *main_thr(void *arg)
{
	(void)arg;
	(void)smfi_main();
	return NULL;
}

/* start - the filter listening on a fresh unix socket */
static int start(void **state)
{
	char spec[128];
	(void)state;
	snprintf(sock_path, sizeof(sock_path), "/tmp/mw-test-milter-proto.%ld", (long)getpid());
	snprintf(spec, sizeof(spec), "unix:%s", sock_path);
	if (smfi_register(desc) != MI_SUCCESS || smfi_setconn(spec) != MI_SUCCESS ||
	    smfi_opensocket(true) != MI_SUCCESS)
		return -1;
	return pthread_create(&main_thread, NULL, main_thr, NULL) == 0 ? 0 : -1;
}

/* stop - smfi_stop ends smfi_main */
static int stop(void **state)
{
	(void)state;
	(void)smfi_stop(); /* test_stop joined smfi_main's thread already */
	(void)unlink(sock_path);
	return 0;
}

/* mta_connect - a connection to the filter */
static int mta_connect(void)
{
	struct sockaddr_un su;
	struct timeval tv = {10, 0}; /* a connection the milter should have closed: a failure */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	snprintf(su.sun_path, sizeof(su.sun_path), "%s", sock_path);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&su, sizeof(su)), 0);
	return fd;
}

/* send_cmd - one command: CODE and LEN bytes of DATA */
static void send_cmd(int fd, char code, const void *data, size_t len)
{
	unsigned char buf[4096];
	uint32_t l = htonl((uint32_t)(len + 1));
	assert_true(len + 5 <= sizeof(buf));
	memcpy(buf, &l, 4);
	buf[4] = (unsigned char)code;
	if (len > 0)
		memcpy(buf + 5, data, len);
	assert_int_equal(write(fd, buf, len + 5), (ssize_t)(len + 5));
}

/* read_full - exactly N bytes, or -1 on end of file / timeout (2 s) */
static int read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
		ssize_t r;
		if (poll(&p, 1, 2000) != 1)
			return -1;
		r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* recv_cmd - one reply: its code, data in BUF (NUL-terminated), length in *LEN; -1 when
   none comes */
static int recv_cmd(int fd, char *code, unsigned char *buf, size_t size, size_t *len)
{
	unsigned char hdr[5];
	uint32_t l;
	if (read_full(fd, hdr, 5) < 0)
		return -1;
	memcpy(&l, hdr, 4);
	l = ntohl(l);
	assert_true(l >= 1 && l - 1 < size);
	*code = (char)hdr[4];
	*len = l - 1;
	if (*len > 0 && read_full(fd, buf, *len) < 0)
		return -1;
	buf[*len] = '\0';
	return 0;
}

/* nothing_pending - no reply arrives within 200 ms */
static bool nothing_pending(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
	return poll(&p, 1, 200) == 0;
}

/* negotiate - OPTNEG offering everything; checks the reply */
static void negotiate(int fd)
{
	uint32_t opt[3] = {htonl(6), htonl(SMFI_CURR_ACTS), htonl(SMFI_CURR_PROT)};
	unsigned char buf[512];
	size_t len;
	char code;
	uint32_t v[3];
	send_cmd(fd, SMFIC_OPTNEG, opt, sizeof(opt));
	assert_int_equal(recv_cmd(fd, &code, buf, sizeof(buf), &len), 0);
	assert_int_equal(code, SMFIC_OPTNEG);
	assert_true(len >= 12);
	memcpy(v, buf, 12);
	assert_int_equal(ntohl(v[0]), 6);
	assert_int_equal(ntohl(v[1]), SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE);
	assert_int_equal(ntohl(v[2]), SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_RCPT | SMFIP_NR_HDR |
	                                  SMFIP_NODATA);
	/* the macro lists: stage 0 "{client_addr}", stage 2 "{auth_authen} i" */
	{
		static const unsigned char want[] =
		    "\0\0\0\0{client_addr}\0\0\0\0\2{auth_authen} i";
		assert_int_equal(len - 12, sizeof(want));
		assert_memory_equal(buf + 12, want, sizeof(want));
	}
}

/* connect_helo - macros, CONNECT and HELO: no reply to either */
static void connect_helo(int fd)
{
	static const char mac[] = "C{client_addr}\000"
	                          "192.0.2.1";
	static const char conn[] = "mx.example\0004\0\031192.0.2.1";
	send_cmd(fd, SMFIC_MACRO, mac, sizeof(mac));
	send_cmd(fd, SMFIC_CONNECT, conn, sizeof(conn));
	send_cmd(fd, SMFIC_HELO, "mx.example", sizeof("mx.example"));
}

/* expect - the next reply is CODE (with data starting with TEXT when given) */
static void expect(int fd, char want, const char *text)
{
	unsigned char buf[512];
	size_t len;
	char code;
	assert_int_equal(recv_cmd(fd, &code, buf, sizeof(buf), &len), 0);
	assert_int_equal(code, want);
	if (text != NULL)
		assert_string_equal((const char *)buf, text);
}

/* test_message - a whole message: replies only where agreed, changes before the reply */
static void test_message(void **state)
{
	static const char mac_m[] = "M{auth_authen}\0alice\0i\0ABC123";
	static const char hdr[] = "Subject\0 hello";
	unsigned char buf[512];
	size_t len;
	char code;
	uint32_t idx;
	int fd = mta_connect();
	(void)state;
	negotiate(fd);
	connect_helo(fd);
	assert_true(nothing_pending(fd)); /* connect and HELO agreed as no-reply */
	send_cmd(fd, SMFIC_MACRO, mac_m, sizeof(mac_m));
	send_cmd(fd, SMFIC_MAIL, "<a@x>\0SIZE=10", sizeof("<a@x>\0SIZE=10"));
	expect(fd, SMFIR_CONTINUE, NULL);
	assert_string_equal(seen_client, "192.0.2.1");
	assert_string_equal(seen_helo, "mx.example");
	assert_string_equal(seen_auth, "alice");
	assert_false(eom_outside_ok); /* header changes only at end of message */
	send_cmd(fd, SMFIC_RCPT, "<b@y>", sizeof("<b@y>"));
	send_cmd(fd, SMFIC_HEADER, hdr, sizeof(hdr));
	send_cmd(fd, SMFIC_EOH, NULL, 0);
	expect(fd, SMFIR_CONTINUE, NULL); /* end of headers was not agreed as no-reply */
	send_cmd(fd, SMFIC_BODY, "body\r\n", 6);
	expect(fd, SMFIR_CONTINUE, NULL);
	send_cmd(fd, SMFIC_BODYEOB, NULL, 0);
	/* insheader (index 0, X-Test: yes), chgheader (Subject #1 deleted), then continue */
	assert_int_equal(recv_cmd(fd, &code, buf, sizeof(buf), &len), 0);
	assert_int_equal(code, SMFIR_INSHEADER);
	memcpy(&idx, buf, 4);
	assert_int_equal(ntohl(idx), 0);
	assert_int_equal(len, 4 + sizeof("X-Test") + sizeof("yes"));
	assert_memory_equal(buf + 4, "X-Test\0yes", sizeof("X-Test\0yes"));
	assert_int_equal(recv_cmd(fd, &code, buf, sizeof(buf), &len), 0);
	assert_int_equal(code, SMFIR_CHGHEADER);
	memcpy(&idx, buf, 4);
	assert_int_equal(ntohl(idx), 1);
	assert_memory_equal(buf + 4, "Subject\0", sizeof("Subject\0"));
	expect(fd, SMFIR_CONTINUE, NULL);
	assert_string_equal(seen_qid, "ABC123"); /* a macro of MAIL, seen at end of message */
	send_cmd(fd, SMFIC_QUIT, NULL, 0);
	assert_int_equal(read(fd, buf, 1), 0); /* closed after QUIT */
	(void)close(fd);
}

/* test_refusals - reply texts go with the status they match; an agreed no-reply command
   that refuses still answers */
static void test_refusals(void **state)
{
	unsigned char buf[8];
	int fd = mta_connect(), closes;
	(void)state;
	negotiate(fd);
	connect_helo(fd);
	send_cmd(fd, SMFIC_MAIL, "<bad@x>", sizeof("<bad@x>"));
	expect(fd, SMFIR_REPLYCODE, "550 5.7.1 not you");
	send_cmd(fd, SMFIC_ABORT, NULL, 0);
	send_cmd(fd, SMFIC_MAIL, "<temp@x>", sizeof("<temp@x>"));
	expect(fd, SMFIR_TEMPFAIL, NULL); /* a 5xx text never turns a tempfail into a reject */
	send_cmd(fd, SMFIC_MAIL, "<a@x>", sizeof("<a@x>"));
	expect(fd, SMFIR_CONTINUE, NULL);
	send_cmd(fd, SMFIC_RCPT, "<refuse@x>", sizeof("<refuse@x>"));
	expect(fd, SMFIR_TEMPFAIL, NULL);
	/* the connection is reused (QUIT_NC): the filter's context is made again */
	closes = n_close;
	send_cmd(fd, SMFIC_QUIT_NC, NULL, 0);
	connect_helo(fd);
	send_cmd(fd, SMFIC_MAIL, "<a@x>", sizeof("<a@x>"));
	expect(fd, SMFIR_CONTINUE, NULL);
	assert_int_equal(n_close, closes + 1);
	/* hanging up in a message: abort, then close */
	closes = n_close;
	(void)close(fd);
	for (int i = 0; i < 200 && n_close == closes; i++)
		(void)poll(NULL, 0, 10);
	assert_int_equal(n_close, closes + 1);
	(void)buf;
}

/* test_bad_input - out-of-order and over-long commands close the connection */
static void test_bad_input(void **state)
{
	unsigned char buf[8];
	uint32_t huge = htonl(1024 * 1024 * 1024);
	int fd;
	(void)state;
	/* a command before the negotiation */
	fd = mta_connect();
	send_cmd(fd, SMFIC_MAIL, "<a@x>", sizeof("<a@x>"));
	assert_int_equal(read(fd, buf, 1), 0);
	(void)close(fd);
	/* a header before MAIL */
	fd = mta_connect();
	negotiate(fd);
	connect_helo(fd);
	send_cmd(fd, SMFIC_HEADER, "A\0b", sizeof("A\0b"));
	assert_int_equal(read(fd, buf, 1), 0);
	(void)close(fd);
	/* a length over the limit: refused, not read */
	fd = mta_connect();
	negotiate(fd);
	assert_int_equal(write(fd, &huge, 4), 4);
	assert_int_equal(read(fd, buf, 1), 0);
	(void)close(fd);
	/* a header without its value */
	fd = mta_connect();
	negotiate(fd);
	connect_helo(fd);
	send_cmd(fd, SMFIC_MAIL, "<a@x>", sizeof("<a@x>"));
	expect(fd, SMFIR_CONTINUE, NULL);
	send_cmd(fd, SMFIC_HEADER, "A", sizeof("A"));
	assert_int_equal(read(fd, buf, 1), 0);
	(void)close(fd);
	/* a value with a NUL inside: the filter would see only what comes before it (a From
	   whose second address a mail reader shows), so the connection is closed before any
	   callback sees it; the MTA applies its default action (tempfail) */
	fd = mta_connect();
	negotiate(fd);
	connect_helo(fd);
	send_cmd(fd, SMFIC_MAIL, "<a@x>", sizeof("<a@x>"));
	expect(fd, SMFIR_CONTINUE, NULL);
	n_header = 0;
	send_cmd(fd, SMFIC_HEADER, "From\0<a@x>\0, <b@y>", sizeof("From\0<a@x>\0, <b@y>"));
	assert_int_equal(read(fd, buf, 1), 0);
	assert_int_equal(n_header, 0);
	(void)close(fd);
}

/* test_stop - after smfi_stop a connection still open gets no callback: its next command
   closes it (the daemon is tearing its state down); no new connection is served */
static void test_stop(void **state)
{
	unsigned char buf[8];
	int fd = mta_connect(), before;
	(void)state;
	negotiate(fd);
	connect_helo(fd);
	send_cmd(fd, SMFIC_MAIL, "<a@x>", sizeof("<a@x>"));
	expect(fd, SMFIR_CONTINUE, NULL); /* everything before was handled */
	before = n_envfrom;
	(void)smfi_stop();
	(void)pthread_join(main_thread, NULL); /* smfi_main returned */
	send_cmd(fd, SMFIC_MAIL, "<a@x>", sizeof("<a@x>"));
	assert_int_equal(read(fd, buf, 1), 0);
	assert_int_equal(n_envfrom, before);
	(void)close(fd);
}

/* test_reply_text - smfi_setreply refuses what would break the SMTP reply */
static void test_reply_text(void **state)
{
	(void)state;
	/* no connection context: refused */
	assert_int_equal(smfi_setreply(NULL, (char *)"550", NULL, (char *)"x"), MI_FAILURE);
	assert_int_equal(smfi_getsymval(NULL, (char *)"i"), NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message),   cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_bad_input), cmocka_unit_test(test_reply_text),
	    cmocka_unit_test(test_stop), /* last: stops the filter */
	};
	(void)signal(SIGPIPE, SIG_IGN); /* a write to a connection the filter closed fails */
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, start, stop);
}
