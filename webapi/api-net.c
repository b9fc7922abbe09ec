/* api-net.c - mailwarden-api: the client network a lockout counts (issue 9).
 *
 * An IPv4 client is counted by its address with [api] login_ipv4_prefix bits kept (32:
 * alone), an IPv6 client by its login_ipv6_prefix network (64 by default: a site gets a
 * whole /64, so one attacker holds 2^64 addresses and counting them one by one would give
 * it as many fresh starts). IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4. A missing or
 * unparsable address is the one network "unknown", so such clients share their count
 * rather than escape it.
 *
 * Public: api_client_net (over mw_ip_network, lib/mw-net.c).
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-net.h"

/* api_client_net - the client network of address ip ("192.0.2.0/24", "2001:db8::/64");
   "unknown" when ip is NULL or not an address (or outsize is below 8) */
void api_client_net(const char *ip, int v4_prefix, int v6_prefix, char *out, size_t outsize)
{
	if (ip == NULL || v4_prefix < 0 || v6_prefix < 0 || outsize < 8 ||
	    mw_ip_network(ip, (unsigned)v4_prefix, (unsigned)v6_prefix, true, out, outsize) < 0)
		(void)mw_strlcpy(out, "unknown", outsize);
}
