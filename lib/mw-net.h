/* mw-net.h - IP addresses and CIDR networks: one parser for every component. */
#ifndef MW_NET_H
#define MW_NET_H

#include "mw-util.h"

#include <stdbool.h>
#include <sys/socket.h>

/* Longest "ADDRESS/PREFIX" text accepted (an IPv6 address with an embedded IPv4 and /128). */
#define MW_CIDR_TEXT_MAX 50

/* An IP address: family AF_INET (4 bytes used) or AF_INET6 (16), unused bytes zero. */
struct mw_ip {
	int family;
	unsigned char addr[16];
};

/* A network: the address with every bit after prefix cleared. */
struct mw_cidr {
	int family;
	unsigned prefix;
	unsigned char addr[16];
};

/* Parses a bare IPv4 or IPv6 address (inet_pton forms, nothing around it): -1 when it is
   not one. An IPv4-mapped IPv6 address stays IPv6. */
int mw_ip_parse(const char *s, struct mw_ip *ip_r);
/* Bits of an address of family (32 or 128). */
unsigned mw_ip_bits(int family);
/* Clears every bit of addr (a family's 4 or 16 bytes) after the first prefix bits. */
void mw_ip_mask(unsigned char *addr, int family, unsigned prefix);

/* Parses "ADDRESS[/PREFIX]": PREFIX is 1 to 3 decimal digits no larger than the family's
   bits; without it the network is the single address. Host bits after the prefix are
   cleared (192.0.2.9/24 is 192.0.2.0/24). Anything else (empty, a blank, a sign, trailing
   text, over MW_CIDR_TEXT_MAX bytes) is refused with a reason in error_r. */
int mw_cidr_parse(const char *s, struct mw_cidr *cidr_r, mw_error *error_r);
/* True when ip is inside the network (a different family never is). */
bool mw_cidr_contains(const struct mw_cidr *cidr, const struct mw_ip *ip);
/* True when the text address ip is inside the network; false when ip is not an address. */
bool mw_cidr_match(const struct mw_cidr *cidr, const char *ip);
/* True when s is a valid "ADDRESS[/PREFIX]". */
bool mw_cidr_valid(const char *s);

/* The network of address ip at v4_prefix or v6_prefix bits as text into out:
   "192.0.2.0/24", "2001:db8:1:2::/64". With unmap_v4, an IPv4-mapped IPv6 address
   (::ffff:a.b.c.d) counts as IPv4. -1 when ip is not a bare address or out is too small. */
int mw_ip_network(const char *ip, unsigned v4_prefix, unsigned v6_prefix, bool unmap_v4, char *out,
                  size_t size);

/* Parses the "PORT@ADDRESS" of a Sendmail-style socket spec (what follows "inet:" or
   "inet6:": PORT 1-65535 as strtol reads it, ADDRESS an IPv4 literal, with v6 an IPv6 one)
   into ss and *len_r: 0; -1 when the PORT@ part is wrong, -2 when the address is. */
int mw_sockaddr_port_at(const char *s, bool v6, struct sockaddr_storage *ss, socklen_t *len_r);

#endif
