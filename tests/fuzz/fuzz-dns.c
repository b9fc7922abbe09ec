/*
 * fuzz-dns.c - fuzz target for the DNS answer parser and the server list (libFuzzer).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * Input: byte 0 picks the query type (A, PTR, MX, TXT, AAAA, or one we never ask for) or,
 * from 0xf0 up, the server-list parser for the rest; byte 1 holds nxdomain and rcode; then
 * records, each a 2-byte big-endian length and that many bytes of rdata (the last one cut
 * short by the end of the input). The records are handed to mw_dns_answer_from_result as
 * libunbound would (each in its own exact-size allocation, so ASan sees any read past
 * one). An answer must keep the promises of mw-dns.h: A/AAAA of 4/16 bytes, TXT
 * NUL-terminated with len bytes, MX/PTR host names in presentation form (letters, digits,
 * '-', '_', non-empty labels of at most 63, at most 253 in all; "" only for the root
 * name), no more than MW_DNS_MAX_RECORDS records, and a failure says why.
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-dns.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#define FUZZ_DNS_RECORDS (MW_DNS_MAX_RECORDS + 4)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-dns: invariant broken: %s [%s]\n", what, detail);
	abort();
}

/* check_host - a host name in presentation form as mw-dns.h promises */
static void check_host(const char *name, size_t len)
{
	size_t i, label = 0;
	if (strlen(name) != len)
		broken("host name length differs from len (embedded NUL)", name);
	if (len == 0)
		return; /* the root name: a null MX (RFC 7505) */
	if (len > MW_DNS_NAME_MAX)
		broken("host name longer than MW_DNS_NAME_MAX", name);
	for (i = 0; i < len; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0)
				broken("empty label in host name", name);
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			broken("host name character outside letters, digits, '-', '_'", name);
		if (++label > 63)
			broken("host name label longer than 63", name);
	}
	if (label == 0)
		broken("host name ends in a dot", name);
}

/* fuzz_servers - the server list parser over the rest of the input */
static void fuzz_servers(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), out[MW_DNS_SERVERS_MAX][64];
	mw_error err;
	int n, i;
	memcpy(s, data, size);
	s[size] = '\0';
	err.msg[0] = '\0';
	n = mw_dns_parse_servers(s, out, MW_DNS_SERVERS_MAX, &err);
	if (n < 0 && err.msg[0] == '\0')
		broken("server list refused without a reason", s);
	if (n > MW_DNS_SERVERS_MAX)
		broken("more servers than the maximum", s);
	for (i = 0; i < n; i++) {
		char addr[64];
		unsigned char buf[16];
		size_t len = strcspn(out[i], "@");
		if (strnlen(out[i], 64) == 64 || len >= sizeof(addr))
			broken("server entry unterminated or too long", "");
		memcpy(addr, out[i], len);
		addr[len] = '\0';
		if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)
			broken("server entry is not an IP address", out[i]);
	}
	free(s);
}

/* LLVMFuzzerTestOneInput - one answer through the parser */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = {MW_DNS_A, MW_DNS_PTR, MW_DNS_MX, MW_DNS_TXT, MW_DNS_AAAA, 99};
	char *recs[FUZZ_DNS_RECORDS + 1];
	int lens[FUZZ_DNS_RECORDS + 1];
	struct ub_result r;
	struct mw_dns_answer ans;
	mw_error err;
	size_t pos = 2, n = 0, i;
	int type;

	if (size < 2)
		return 0;
	if (data[0] >= 0xf0) {
		fuzz_servers(data + 1, size - 1);
		return 0;
	}
	type = types[data[0] % MW_N_ELEMENTS(types)];
	while (pos + 2 <= size && n < FUZZ_DNS_RECORDS) {
		size_t len = (size_t)data[pos] << 8 | data[pos + 1];
		pos += 2;
		if (len > size - pos)
			len = size - pos;
		recs[n] = malloc(len ? len : 1);
		memcpy(recs[n], data + pos, len);
		lens[n++] = (int)len;
		pos += len;
	}
	recs[n] = NULL;
	lens[n] = 0;
	memset(&r, 0, sizeof(r));
	r.qname = (char *)"fuzz.example";
	r.qtype = type;
	r.qclass = 1;
	r.data = recs;
	r.len = lens;
	r.nxdomain = (data[1] & 1) != 0;
	r.rcode = (data[1] >> 1) & 7;
	r.havedata = n > 0; /* libunbound: havedata exactly when data[0] is set */
	r.ttl = (int)data[1] * 1000 - 3000;

	err.msg[0] = '\0';
	if (mw_dns_answer_from_result(&r, "fuzz.example", type, &ans, &err) != ans.status)
		broken("returned status differs from the answer's", "");
	switch (ans.status) {
	case MW_DNS_OK:
		if (ans.count == 0 || ans.count > MW_DNS_MAX_RECORDS || ans.count != n)
			broken("record count", "");
		if (r.rcode != 0 || r.nxdomain)
			broken("OK for an error rcode or NXDOMAIN", "");
		for (i = 0; i < ans.count; i++) {
			if (ans.rec[i] == NULL)
				broken("NULL record", "");
			if ((type == MW_DNS_A && ans.len[i] != 4) ||
			    (type == MW_DNS_AAAA && ans.len[i] != 16))
				broken("address record length", "");
			if (type == MW_DNS_TXT &&
			    (ans.len[i] > (size_t)lens[i] || ans.rec[i][ans.len[i]] != '\0'))
				broken("TXT record length or terminator", "");
			if (type == MW_DNS_MX || type == MW_DNS_PTR)
				check_host(ans.rec[i], ans.len[i]);
			if (type != MW_DNS_MX && ans.pref[i] != 0)
				broken("preference on a record that is not MX", "");
		}
		if (type == 99)
			broken("OK for a type the parser does not know", "");
		break;
	case MW_DNS_NXDOMAIN:
	case MW_DNS_NODATA:
		if (ans.count != 0)
			broken("records in a negative answer", "");
		break;
	case MW_DNS_TEMPFAIL:
	case MW_DNS_PERMFAIL:
		if (ans.count != 0 || err.msg[0] == '\0')
			broken("failure with records or without a reason", "");
		break;
	default:
		broken("unknown status", "");
	}
	mw_dns_answer_free(&ans);
	for (i = 0; i < n; i++)
		free(recs[i]);
	return 0;
}
