/* test-net.c - lib/mw-net.c: the one CIDR parser (policyd lists, trusted networks, API). */
#include "mw-build.h"
#include "mw-net.h"

#include "mw-test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* test_cidr_parse - accepted forms, their family and prefix, and everything refused */
static void test_cidr_parse(void **state)
{
	static const struct {
		const char *in;
		int ok, family;
		unsigned prefix;
	} cases[] = {
	    {"192.0.2.0/24", 1, AF_INET, 24},
	    {"192.0.2.9/24", 1, AF_INET, 24},
	    {"10.0.0.1", 1, AF_INET, 32},
	    {"0.0.0.0/0", 1, AF_INET, 0},
	    {"10.0.0.0/32", 1, AF_INET, 32},
	    {"10.0.0.0/008", 1, AF_INET, 8},
	    {"2001:db8::/32", 1, AF_INET6, 32},
	    {"::1", 1, AF_INET6, 128},
	    {"::/0", 1, AF_INET6, 0},
	    {"::ffff:1.2.3.4/128", 1, AF_INET6, 128},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", 1, AF_INET6, 128},
	    /* hostile */
	    {"10.0.0.0/33", 0, 0, 0},
	    {"::ffff:1.2.3.4/129", 0, 0, 0},
	    {"2001:db8::/129", 0, 0, 0},
	    {"", 0, 0, 0},
	    {"/", 0, 0, 0},
	    {"/8", 0, 0, 0},
	    {"10.0.0.0/", 0, 0, 0},
	    {"10.0.0.0/+8", 0, 0, 0},
	    {"10.0.0.0/-0", 0, 0, 0},
	    {"10.0.0.0/ 8", 0, 0, 0},
	    {"10.0.0.0/8 ", 0, 0, 0},
	    {" 10.0.0.0/8", 0, 0, 0},
	    {"10.0.0.0/8x", 0, 0, 0},
	    {"10.0.0.0/8/8", 0, 0, 0},
	    {"10.0.0.0/0008", 0, 0, 0},
	    {"10.0.0.0/4294967304", 0, 0, 0}, /* 2^32 + 8: no wrap-around to /8 */
	    {"10.0.0", 0, 0, 0},
	    {"10.0.0.256", 0, 0, 0},
	    {"example.com/8", 0, 0, 0},
	    {"10.0.0.0\n/8", 0, 0, 0},
	    {"1.2.3.4%eth0", 0, 0, 0},
	    {"fe80::1%eth0/64", 0, 0, 0},
	    {"[::1]/128", 0, 0, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct mw_cidr c;
		mw_error err = {""};
		int r = mw_cidr_parse(cases[i].in, &c, &err);

		if ((r == 0) != (cases[i].ok == 1))
			fail_msg("case %zu \"%s\": %s", i, cases[i].in,
			         r == 0 ? "accepted" : "refused");
		assert_int_equal(mw_cidr_valid(cases[i].in), cases[i].ok == 1);
		if (r == 0) {
			assert_int_equal(c.family, cases[i].family);
			assert_int_equal(c.prefix, cases[i].prefix);
		} else {
			assert_true(strncmp(err.msg, "bad ", 4) == 0);
		}
	}
}

/* test_cidr_huge - a long string is refused without reading all of it as an address */
static void test_cidr_huge(void **state)
{
	size_t n = 1 << 20;
	char *s = malloc(n + 1);
	struct mw_cidr c;

	(void)state;
	assert_non_null(s);
	memset(s, '1', n);
	s[n] = '\0';
	assert_int_equal(mw_cidr_parse(s, &c, NULL), -1);
	memcpy(s, "10.0.0.0/", 9);
	assert_int_equal(mw_cidr_parse(s, &c, NULL), -1);
	memset(s, ':', n);
	assert_int_equal(mw_cidr_parse(s, &c, NULL), -1);
	assert_false(mw_cidr_valid(NULL));
	free(s);
}

/* test_cidr_match - host bits cleared; families never mix; garbage matches nothing */
static void test_cidr_match(void **state)
{
	struct mw_cidr c;

	(void)state;
	assert_int_equal(mw_cidr_parse("192.0.2.9/24", &c, NULL), 0);
	assert_true(mw_cidr_match(&c, "192.0.2.1"));
	assert_true(mw_cidr_match(&c, "192.0.2.255"));
	assert_false(mw_cidr_match(&c, "192.0.3.1"));
	assert_false(mw_cidr_match(&c, "::ffff:192.0.2.1"));
	assert_false(mw_cidr_match(&c, "2001:db8::1"));
	assert_false(mw_cidr_match(&c, "garbage"));
	assert_false(mw_cidr_match(&c, ""));
	assert_false(mw_cidr_match(&c, NULL));
	assert_int_equal(mw_cidr_parse("192.0.2.128/25", &c, NULL), 0);
	assert_false(mw_cidr_match(&c, "192.0.2.127"));
	assert_true(mw_cidr_match(&c, "192.0.2.128"));
	assert_int_equal(mw_cidr_parse("2001:db8::/33", &c, NULL), 0);
	assert_true(mw_cidr_match(&c, "2001:db8:7fff::1"));
	assert_false(mw_cidr_match(&c, "2001:db8:8000::1"));
	assert_int_equal(mw_cidr_parse("0.0.0.0/0", &c, NULL), 0);
	assert_true(mw_cidr_match(&c, "203.0.113.5"));
	assert_false(mw_cidr_match(&c, "::1"));
}

/* test_ip_parse_mask - bare addresses only; masking keeps the prefix */
static void test_ip_parse_mask(void **state)
{
	struct mw_ip ip;
	static const unsigned char want[4] = {10, 1, 0, 0};

	(void)state;
	assert_int_equal(mw_ip_parse("10.1.255.7", &ip), 0);
	assert_int_equal(ip.family, AF_INET);
	mw_ip_mask(ip.addr, ip.family, 12);
	assert_memory_equal(ip.addr, ((const unsigned char[4]){10, 0, 0, 0}), 4);
	assert_int_equal(mw_ip_parse("10.1.255.7", &ip), 0);
	mw_ip_mask(ip.addr, ip.family, 16);
	assert_memory_equal(ip.addr, want, 4);
	assert_int_equal(mw_ip_parse("10.1.255.7/16", &ip), -1);
	assert_int_equal(ip.family, 0);
	assert_int_equal(mw_ip_parse("", &ip), -1);
	assert_int_equal(mw_ip_parse("::ffff:1.2.3.4", &ip), 0);
	assert_int_equal(ip.family, AF_INET6);
	assert_int_equal(mw_ip_bits(AF_INET), 32);
	assert_int_equal(mw_ip_bits(AF_INET6), 128);
}

/* test_ip_network - the counted network of a client, for the policy daemon and the API */
static void test_ip_network(void **state)
{
	static const struct {
		const char *ip;
		unsigned v4, v6;
		bool unmap;
		const char *want; /* NULL: refused */
	} cases[] = {
	    {"192.0.2.77", 24, 64, false, "192.0.2.0/24"},
	    {"192.0.2.77", 32, 64, false, "192.0.2.77/32"},
	    {"198.51.100.255", 25, 64, false, "198.51.100.128/25"},
	    {"203.0.113.9", 0, 64, false, "0.0.0.0/0"},
	    {"2001:db8:1:2:3:4:5:6", 24, 64, false, "2001:db8:1:2::/64"},
	    {"2001:DB8::1", 24, 128, false, "2001:db8::1/128"},
	    {"::ffff:192.0.2.1", 24, 96, false, "::ffff:0.0.0.0/96"},
	    {"::ffff:192.0.2.1", 24, 64, true, "192.0.2.0/24"},
	    {"::ffff:192.0.2.1", 32, 64, true, "192.0.2.1/32"},
	    {"2001:db8::1", 24, 64, true, "2001:db8::/64"},
	    {"", 24, 64, true, NULL},
	    {"192.0.2", 24, 64, true, NULL},
	    {"192.0.2.1/24", 24, 64, true, NULL},
	    {"example.org", 24, 64, true, NULL},
	    {NULL, 24, 64, true, NULL},
	};
	char out[64];
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		int r = mw_ip_network(cases[i].ip, cases[i].v4, cases[i].v6, cases[i].unmap, out,
		                      sizeof(out));
		if (cases[i].want == NULL) {
			if (r == 0)
				fail_msg("case %zu accepted: %s", i, out);
			assert_string_equal(out, "");
			continue;
		}
		if (r != 0 || strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: %s", i, r == 0 ? out : "refused");
	}
	/* too small a buffer is refused, never cut */
	assert_int_equal(mw_ip_network("192.0.2.77", 24, 64, false, out, 12), -1);
	assert_string_equal(out, "");
	assert_int_equal(mw_ip_network("192.0.2.77", 24, 64, false, out, 13), 0);
	assert_string_equal(out, "192.0.2.0/24");
}

/* test_sockaddr_port_at - inet:PORT@ADDRESS specs (the milter's socket, clamd's): the
   address and port of each accepted one, and which part of a refused one is wrong */
static void test_sockaddr_port_at(void **state)
{
	static const struct {
		const char *s;
		bool v6;
		int want;         /* 0, -1 (PORT@) or -2 (ADDRESS) */
		const char *addr; /* accepted: the address as inet_ntop writes it */
		unsigned port;
	} cases[] = {
	    {"10025@127.0.0.1", false, 0, "127.0.0.1", 10025},
	    {"1@192.0.2.1", false, 0, "192.0.2.1", 1},
	    {"65535@192.0.2.1", false, 0, "192.0.2.1", 65535},
	    {"3310@::1", true, 0, "::1", 3310},
	    {"3310@2001:DB8::7", true, 0, "2001:db8::7", 3310},
	    {"0@127.0.0.1", false, -1, NULL, 0},
	    {"65536@127.0.0.1", false, -1, NULL, 0},
	    {"@127.0.0.1", false, -1, NULL, 0},
	    {"10025", false, -1, NULL, 0},
	    {"10025x@127.0.0.1", false, -1, NULL, 0},
	    {"99999999999999999999@127.0.0.1", false, -1, NULL, 0},
	    {"10025@", false, -2, NULL, 0},
	    {"10025@localhost", false, -2, NULL, 0},
	    {"10025@::1", false, -2, NULL, 0},
	    {"10025@127.0.0.1", true, -2, NULL, 0},
	    {"10025@127.0.0.1 ", false, -2, NULL, 0},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char text[INET6_ADDRSTRLEN];
		const void *a;
		unsigned port;
		int r = mw_sockaddr_port_at(cases[i].s, cases[i].v6, &ss, &len);
		if (r != cases[i].want)
			fail_msg("%s: %d, want %d", cases[i].s, r, cases[i].want);
		if (r != 0)
			continue;
		if (cases[i].v6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
			assert_int_equal(s6->sin6_family, AF_INET6);
			assert_int_equal(len, sizeof(*s6));
			a = &s6->sin6_addr;
			port = ntohs(s6->sin6_port);
		} else {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
			assert_int_equal(s4->sin_family, AF_INET);
			assert_int_equal(len, sizeof(*s4));
			a = &s4->sin_addr;
			port = ntohs(s4->sin_port);
		}
		assert_non_null(inet_ntop(ss.ss_family, a, text, sizeof(text)));
		assert_string_equal(text, cases[i].addr);
		assert_int_equal(port, cases[i].port);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr_parse), cmocka_unit_test(test_cidr_huge),
	    cmocka_unit_test(test_cidr_match), cmocka_unit_test(test_ip_parse_mask),
	    cmocka_unit_test(test_ip_network), cmocka_unit_test(test_sockaddr_port_at),
	};
	MW_RUN_TESTS(tests);
}
