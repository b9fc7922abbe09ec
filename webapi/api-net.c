/* api-net.c - mailwarden-api: the client network a lockout counts (issue 9).
 *
 * An IPv4 client is counted by its address with [api] login_ipv4_prefix bits kept (32:
 * alone), an IPv6 client by its login_ipv6_prefix network (64 by default: a site gets a
 * whole /64, so one attacker holds 2^64 addresses and counting them one by one would give
 * it as many fresh starts). IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4. A missing or
 * unparsable address is the one network "unknown", so such clients share their count
 * rather than escape it.
 *
 * Public: api_client_net.
 */
#include "mw-build.h"
#include "api-common.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* mask_bits - keep the first bits of an address of len bytes, clear the rest */
static void mask_bits(unsigned char *a, size_t len, int bits)
{
	size_t i;
	for (i = 0; i < len; i++) {
		int keep = bits - (int)(i * 8);
		if (keep >= 8)
			continue;
		a[i] = keep <= 0 ? 0 : (unsigned char)(a[i] & (0xff << (8 - keep)));
	}
}

/* api_client_net - the client network of address ip ("192.0.2.0/24", "2001:db8::/64");
   "unknown" when ip is NULL or not an address (or outsize is below 8) */
void api_client_net(const char *ip, int v4_prefix, int v6_prefix, char *out, size_t outsize)
{
	unsigned char a[sizeof(struct in6_addr)];
	char text[INET6_ADDRSTRLEN];
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	int family = 0, bits = 0;
	if (ip != NULL && strlen(ip) < INET6_ADDRSTRLEN) {
		if (inet_pton(AF_INET, ip, a) == 1) {
			family = AF_INET;
		} else if (inet_pton(AF_INET6, ip, a) == 1) {
			family = AF_INET6;
			if (memcmp(a, mapped, sizeof(mapped)) == 0) {
				memmove(a, a + 12, 4);
				family = AF_INET;
			}
		}
	}
	if (family == 0 || outsize < 8) {
		(void)mw_strlcpy(out, "unknown", outsize);
		return;
	}
	bits = family == AF_INET ? v4_prefix : v6_prefix;
	mask_bits(a, family == AF_INET ? 4 : 16, bits);
	if (inet_ntop(family, a, text, sizeof(text)) == NULL ||
	    snprintf(out, outsize, "%s/%d", text, bits) >= (int)outsize)
		(void)mw_strlcpy(out, "unknown", outsize);
}
