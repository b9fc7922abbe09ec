/*
 * test-dns.c - mw_dns against a tiny UDP responder on loopback: answers, the answer cache
 * (copies survive the cache, names are case-insensitive, TTL 0 is never cached, NXDOMAIN
 * keeps its status), hostile names refused without a query, and host names in MX/PTR
 * answers that presentation form cannot hold refused (mw_dns_answer_from_result).
 *
 * The responder answers every TXT and A question: a name starting "nx" gets NXDOMAIN, one
 * starting "zero" a TTL of 0, anything else TTL 60; it counts the queries it saw.
 */
#include "mw-build.h"
#include "mw-dns.h"
#include "mw-test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unbound.h>
#include <unistd.h>

static struct {
	int fd;
	int port;
	pthread_t thread;
	int queries;
	pthread_mutex_t lock;
	mw_dns *dns;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* respond - answer one query packet Q of QLEN bytes into OUT; the reply's length or 0 */
static size_t respond(const unsigned char *q, size_t qlen, unsigned char *out, size_t outsize)
{
	size_t i = 12, qend, o;
	unsigned qtype, ttl = 60;
	bool nx, zero;
	char first[8] = "";
	if (qlen < 17 || outsize < qlen + 64)
		return 0;
	if (q[i] > 0)
		memcpy(first, q + i + 1, q[i] < 7 ? q[i] : 7);
	while (i < qlen && q[i] != 0)
		i += (size_t)q[i] + 1;
	if (i + 5 > qlen)
		return 0;
	qend = i + 5;
	qtype = (unsigned)(q[i + 1] << 8 | q[i + 2]);
	nx = strncmp(first, "nx", 2) == 0;
	zero = strncmp(first, "zero", 4) == 0;
	if (zero)
		ttl = 0;
	memcpy(out, q, qend);
	out[2] = 0x81;             /* QR, RD */
	out[3] = nx ? 0x83 : 0x80; /* RA, rcode */
	out[4] = 0, out[5] = 1;
	out[6] = 0, out[7] = nx ? 0 : 1;
	memset(out + 8, 0, 4);
	o = qend;
	if (nx)
		return o;
	out[o++] = 0xc0, out[o++] = 12; /* the question's name */
	out[o++] = (unsigned char)(qtype >> 8), out[o++] = (unsigned char)qtype;
	out[o++] = 0, out[o++] = 1;
	out[o++] = 0, out[o++] = 0, out[o++] = 0, out[o++] = (unsigned char)ttl;
	if (qtype == MW_DNS_A) {
		static const unsigned char a[4] = {192, 0, 2, 7};
		out[o++] = 0, out[o++] = 4;
		memcpy(out + o, a, 4);
		return o + 4;
	}
	out[o++] = 0, out[o++] = 7;
	out[o++] = 6;
	memcpy(out + o, "v=test", 6);
	return o + 6;
}

/* responder - the server thread: answer until the socket is shut down */
static void *responder(void *arg)
{
	unsigned char q[512], a[600];
	(void)arg;
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(g.fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		size_t len;
		if (n <= 0)
			return NULL;
		pthread_mutex_lock(&g.lock);
		g.queries++;
		pthread_mutex_unlock(&g.lock);
		len = respond(q, (size_t)n, a, sizeof(a));
		if (len > 0)
			(void)sendto(g.fd, a, len, 0, (struct sockaddr *)&from, fl);
	}
}

/* queries - how many queries the responder saw */
static int queries(void)
{
	int n;
	pthread_mutex_lock(&g.lock);
	n = g.queries;
	pthread_mutex_unlock(&g.lock);
	return n;
}

/* setup - the responder and a resolver forwarding to it */
static int setup(void **state)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char servers[64];
	mw_error err = {""};
	(void)state;
	g.fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (g.fd < 0 || bind(g.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(g.fd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	g.port = ntohs(sa.sin_port);
	if (pthread_create(&g.thread, NULL, responder, NULL) != 0)
		return -1;
	(void)snprintf(servers, sizeof(servers), "127.0.0.1@%d", g.port);
	g.dns = mw_dns_new(servers, 2000, &err);
	return g.dns != NULL ? 0 : -1;
}

/* teardown - stop the responder */
static int teardown(void **state)
{
	(void)state;
	mw_dns_free(&g.dns);
	(void)shutdown(g.fd, SHUT_RDWR);
	(void)close(g.fd);
	(void)pthread_join(g.thread, NULL);
	return 0;
}

static const struct {
	const char *name;
	int type;
	enum mw_dns_status status;
	unsigned ttl;
	const char *rec; /* TXT text, or NULL */
	size_t len;      /* record length (A: 4) */
	bool cached;     /* a second query asks nobody */
} cases[] = {
    {"txt.mw.example.net", MW_DNS_TXT, MW_DNS_OK, 60, "v=test", 6, true},
    {"TXT.MW.Example.Net.", MW_DNS_TXT, MW_DNS_OK, 60, "v=test", 6, true},
    {"a.mw.example.net", MW_DNS_A, MW_DNS_OK, 60, NULL, 4, true},
    {"zero.mw.example.net", MW_DNS_TXT, MW_DNS_OK, 0, "v=test", 6, false},
    {"nx.mw.example.net", MW_DNS_TXT, MW_DNS_NXDOMAIN, 0, NULL, 0, false},
};

/* check_answer - ANS is what the case says */
static void check_answer(size_t i, const struct mw_dns_answer *ans, const mw_error *err)
{
	if (ans->status != cases[i].status)
		fail_msg("case %s: status %s (%s)", cases[i].name, mw_dns_status_str(ans->status),
		         err->msg);
	if (cases[i].status != MW_DNS_OK) {
		assert_int_equal(ans->count, 0);
		return;
	}
	assert_int_equal(ans->count, 1);
	assert_int_equal(ans->len[0], cases[i].len);
	if (cases[i].rec != NULL)
		assert_string_equal(ans->rec[0], cases[i].rec);
	else
		assert_memory_equal(ans->rec[0], "\xc0\x00\x02\x07", 4);
}

/* test_answers_and_cache - every case answers right, from the server and again */
static void test_answers_and_cache(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct mw_dns_answer ans;
		mw_error err = {""};
		int before;
		(void)mw_dns_query(g.dns, cases[i].name, cases[i].type, &ans, &err);
		check_answer(i, &ans, &err);
		mw_dns_answer_free(&ans);
		before = queries();
		(void)mw_dns_query(g.dns, cases[i].name, cases[i].type, &ans, &err);
		check_answer(i, &ans, &err);
		if (cases[i].status == MW_DNS_OK)
			assert_true(ans.ttl <= cases[i].ttl);
		mw_dns_answer_free(&ans);
		if (cases[i].cached && queries() != before)
			fail_msg("case %s: asked again", cases[i].name);
		if (!cases[i].cached && cases[i].status == MW_DNS_OK && queries() == before)
			fail_msg("case %s: TTL 0 answered from a cache", cases[i].name);
	}
}

/* test_hostile_names - refused without a query */
static void test_hostile_names(void **state)
{
	static const char *const bad[] = {"", ".", "a..b", "a b.test", "x\n.test", "-\x80.test"};
	size_t i;
	int before = queries();
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(bad); i++) {
		struct mw_dns_answer ans;
		mw_error err = {""};
		assert_int_equal(mw_dns_query(g.dns, bad[i], MW_DNS_TXT, &ans, &err),
		                 MW_DNS_PERMFAIL);
		mw_dns_answer_free(&ans);
	}
	assert_int_equal(queries(), before);
}

/* answer_one - mw_dns_answer_from_result over one rdata of TYPE */
static enum mw_dns_status answer_one(int type, const char *rdata, size_t len,
                                     struct mw_dns_answer *ans)
{
	char *data[2] = {(char *)rdata, NULL};
	int lens[2] = {(int)len, 0};
	struct ub_result r;
	mw_error err = {""};
	memset(&r, 0, sizeof(r));
	r.qtype = type;
	r.qclass = 1;
	r.data = data;
	r.len = lens;
	r.havedata = 1;
	r.ttl = 60;
	return mw_dns_answer_from_result(&r, "x.test", type, ans, &err);
}

/* test_answer_host_names - MX/PTR targets with '.', NUL or other bytes in a label are
   refused (found by tests/fuzz/fuzz-dns.c: they were copied raw, so "a.b" in one label
   read as two labels and a NUL cut the name short), and so are names over 253 characters */
static void test_answer_host_names(void **state)
{
	static const struct {
		int type;
		const char *rdata;
		size_t len;
		enum mw_dns_status status;
		const char *name;
	} names[] = {
	    {MW_DNS_PTR, "\4mail\7example\3com", 18, MW_DNS_OK, "mail.example.com"},
	    {MW_DNS_MX, "\0\12\2mx\7example\3org", 18, MW_DNS_OK, "mx.example.org"},
	    {MW_DNS_MX, "\0\0", 3, MW_DNS_OK, ""},
	    {MW_DNS_PTR, "\14mail.example\3com", 18, MW_DNS_PERMFAIL, NULL},
	    {MW_DNS_PTR, "\4good\3com\5\0evil\0", 16, MW_DNS_PERMFAIL, NULL},
	    {MW_DNS_PTR, "\4ma l\3com", 10, MW_DNS_PERMFAIL, NULL},
	    {MW_DNS_MX, "\0\1\4m+x1\3com", 12, MW_DNS_PERMFAIL, NULL},
	    /* SRV (RFC 2782): priority, weight, port, target; "." is "no such service" */
	    {MW_DNS_SRV, "\0\0\0\1\3\341\4imap\7example\3org", 24, MW_DNS_OK,
	     "0 1 993 imap.example.org"},
	    {MW_DNS_SRV, "\0\0\0\0\0\0\0", 7, MW_DNS_OK, "0 0 0 ."},
	    {MW_DNS_SRV, "\0\0\0\0\0", 5, MW_DNS_PERMFAIL, NULL},
	    {MW_DNS_SRV, "\0\0\0\0\0\0\4im p\0", 13, MW_DNS_PERMFAIL, NULL},
	};
	char longname[300];
	struct mw_dns_answer ans;
	size_t i, o = 0;
	(void)state;
	/* five labels of 50: 254 characters in presentation form, one too many */
	for (i = 0; i < 5; i++) {
		longname[o++] = 50;
		memset(longname + o, 'a', 50);
		o += 50;
	}
	longname[o++] = 0;
	assert_int_equal(answer_one(MW_DNS_PTR, longname, o, &ans), MW_DNS_PERMFAIL);
	mw_dns_answer_free(&ans);
	longname[4 * 51] = 49; /* the last label one shorter: 253, fine */
	longname[5 * 51 - 1] = 0;
	assert_int_equal(answer_one(MW_DNS_PTR, longname, 5 * 51, &ans), MW_DNS_OK);
	assert_int_equal(ans.len[0], 253);
	mw_dns_answer_free(&ans);
	for (i = 0; i < MW_N_ELEMENTS(names); i++) {
		assert_int_equal(answer_one(names[i].type, names[i].rdata, names[i].len, &ans),
		                 names[i].status);
		if (names[i].name != NULL) {
			assert_int_equal(ans.count, 1);
			assert_string_equal(ans.rec[0], names[i].name);
		} else {
			assert_int_equal(ans.count, 0);
		}
		mw_dns_answer_free(&ans);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answers_and_cache),
	    cmocka_unit_test(test_hostile_names),
	    cmocka_unit_test(test_answer_host_names),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
