/*
 * mw-net.c - IP addresses and CIDR networks: the one parser of "ADDRESS[/PREFIX]" that the
 * policy daemon (allow/block lists, CIDR rate policies), the auth checks (trusted networks)
 * and the API (app-password networks, rate policies) share.
 *
 * Public: mw_ip_parse, mw_ip_bits, mw_ip_mask, mw_cidr_parse, mw_cidr_contains,
 * mw_cidr_match, mw_cidr_valid, mw_ip_network (the client network a counter keys on: the
 * policy daemon's client_address scope, the API's login throttling), mw_sockaddr_port_at
 * (inet:PORT@ADDRESS socket specs: the milter's own socket, clamd's).
 *
 * Strict at the boundary: the address must be all that inet_pton reads, the prefix 1..3
 * digits within the family's bits, and nothing may follow it. Matching never fails: an
 * address that does not parse lies in no network.
 *
 * Diagnostics: mw_cidr_parse says "bad network address (expected ADDRESS[/PREFIX])" or
 * "bad prefix length (0..32)" / "(0..128)".
 */
#include "mw-build.h"
#include "mw-net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* mw_ip_parse - a bare IPv4 or IPv6 address */
int mw_ip_parse(const char *s, struct mw_ip *ip_r)
{
	memset(ip_r, 0, sizeof(*ip_r));
	if (s == NULL || strnlen(s, INET6_ADDRSTRLEN) >= INET6_ADDRSTRLEN)
		return -1;
	if (inet_pton(AF_INET, s, ip_r->addr) == 1) {
		ip_r->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, ip_r->addr) == 1) {
		ip_r->family = AF_INET6;
		return 0;
	}
	memset(ip_r, 0, sizeof(*ip_r));
	return -1;
}

/* mw_ip_bits - 32 or 128 */
unsigned mw_ip_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* mw_ip_mask - clear every bit after prefix */
void mw_ip_mask(unsigned char *addr, int family, unsigned prefix)
{
	unsigned bits = mw_ip_bits(family), i;

	for (i = prefix; i < bits; i++)
		addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
}

/* mw_cidr_parse - "ADDRESS[/PREFIX]" */
int mw_cidr_parse(const char *s, struct mw_cidr *cidr_r, mw_error *error_r)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash;
	size_t len, n;
	struct mw_ip ip;
	unsigned bits, prefix;

	memset(cidr_r, 0, sizeof(*cidr_r));
	len = s == NULL ? 0 : strnlen(s, MW_CIDR_TEXT_MAX + 1);
	if (len == 0 || len > MW_CIDR_TEXT_MAX) {
		mw_error_set(error_r, "bad network address (expected ADDRESS[/PREFIX])");
		return -1;
	}
	slash = memchr(s, '/', len);
	n = slash != NULL ? (size_t)(slash - s) : len;
	if (n == 0 || n >= sizeof(addr)) {
		mw_error_set(error_r, "bad network address (expected ADDRESS[/PREFIX])");
		return -1;
	}
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (mw_ip_parse(addr, &ip) < 0) {
		mw_error_set(error_r, "bad network address (expected ADDRESS[/PREFIX])");
		return -1;
	}
	bits = mw_ip_bits(ip.family);
	prefix = bits;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t digits = 0;

		prefix = 0;
		while (p[digits] >= '0' && p[digits] <= '9' && digits < 4) {
			prefix = prefix * 10 + (unsigned)(p[digits] - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || p[digits] != '\0' || prefix > bits) {
			mw_error_set(error_r, "bad prefix length (0..%u)", bits);
			return -1;
		}
	}
	cidr_r->family = ip.family;
	cidr_r->prefix = prefix;
	memcpy(cidr_r->addr, ip.addr, sizeof(cidr_r->addr));
	mw_ip_mask(cidr_r->addr, ip.family, prefix);
	return 0;
}

/* mw_cidr_contains - ip lies in the network */
bool mw_cidr_contains(const struct mw_cidr *cidr, const struct mw_ip *ip)
{
	unsigned char a[16];

	if (ip->family == 0 || ip->family != cidr->family)
		return false;
	memcpy(a, ip->addr, sizeof(a));
	mw_ip_mask(a, ip->family, cidr->prefix);
	return memcmp(a, cidr->addr, sizeof(a)) == 0;
}

/* mw_cidr_match - the text address ip lies in the network */
bool mw_cidr_match(const struct mw_cidr *cidr, const char *ip)
{
	struct mw_ip a;

	if (mw_ip_parse(ip, &a) < 0)
		return false;
	return mw_cidr_contains(cidr, &a);
}

/* mw_cidr_valid - s is "ADDRESS[/PREFIX]" */
bool mw_cidr_valid(const char *s)
{
	struct mw_cidr c;

	return mw_cidr_parse(s, &c, NULL) == 0;
}

/* mw_ip_network - the address's network at the family's prefix, as text */
int mw_ip_network(const char *ip, unsigned v4_prefix, unsigned v6_prefix, bool unmap_v4, char *out,
                  size_t size)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char text[INET6_ADDRSTRLEN];
	struct mw_ip a;
	unsigned prefix;
	int n;

	if (size > 0)
		out[0] = '\0';
	if (mw_ip_parse(ip, &a) < 0)
		return -1;
	if (unmap_v4 && a.family == AF_INET6 && memcmp(a.addr, mapped, sizeof(mapped)) == 0) {
		memmove(a.addr, a.addr + 12, 4);
		memset(a.addr + 4, 0, 12);
		a.family = AF_INET;
	}
	prefix = a.family == AF_INET ? v4_prefix : v6_prefix;
	if (prefix > mw_ip_bits(a.family))
		prefix = mw_ip_bits(a.family);
	mw_ip_mask(a.addr, a.family, prefix);
	if (inet_ntop(a.family, a.addr, text, sizeof(text)) == NULL)
		return -1;
	n = snprintf(out, size, "%s/%u", text, prefix);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

/* mw_sockaddr_port_at - PORT@ADDRESS into a socket address */
int mw_sockaddr_port_at(const char *s, bool v6, struct sockaddr_storage *ss, socklen_t *len_r)
{
	const char *at = strchr(s, '@');
	char *end;
	long port = strtol(s, &end, 10);
	memset(ss, 0, sizeof(*ss));
	if (at == NULL || end != at || port < 1 || port > 65535)
		return -1;
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*s6);
		return inet_pton(AF_INET6, at + 1, &s6->sin6_addr) == 1 ? 0 : -2;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len_r = sizeof(*s4);
	return inet_pton(AF_INET, at + 1, &s4->sin_addr) == 1 ? 0 : -2;
}
