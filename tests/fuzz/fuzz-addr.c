/*
 * fuzz-addr.c - fuzz target for the address parsers and patterns (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * Feeds the input to mw_addr_parse_header, mw_addr_parse_envelope (bracketed and bare),
 * mw_addr_domain_normalize, mw_pattern_normalize, mw_addr_display_check and
 * mw_addr_display_scan (on a header that parsed) and mw_rfc2047_decode, and checks what a
 * success promises:
 * every address has local@domain within the limits, the canonical address re-parses as
 * the envelope "<addr>" to exactly itself, canonical domains and patterns are fixed points
 * of their normalisation, the display check answers 0, 1 or -1 with a message for the
 * last two and is the full scan's first find, decoded text from valid UTF-8 is valid UTF-8 and text
 * without "=?" decodes to itself. A failed parse must leave an error message and an empty result.
 * The same target runs under libFuzzer (scripts/fuzz) and over the corpus in make check
 * (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-addr.h"
#include "mw-pattern.h"
#include "mw-rfc2047.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-addr: invariant broken: %s [%s]\n", what, detail);
	abort();
}

/* check_addr - what a parsed, non-null address must satisfy */
static void check_addr(const struct mw_addr *a)
{
	char env[MW_ADDR_MAX + 3], both[MW_ADDR_MAX + 2];
	struct mw_addr again;
	mw_error err;
	size_t llen = strnlen(a->local, sizeof(a->local));
	size_t dlen = strnlen(a->domain, sizeof(a->domain));
	size_t alen = strnlen(a->addr, sizeof(a->addr));
	int n;

	if (a->null_path)
		broken("null path inside an address list or with an address", a->addr);
	if (llen == sizeof(a->local) || dlen == sizeof(a->domain) || alen == sizeof(a->addr))
		broken("unterminated field", a->addr);
	if (llen == 0 || llen > MW_ADDR_LOCAL_MAX)
		broken("local part length", a->local);
	if (dlen == 0 || dlen > MW_ADDR_DOMAIN_MAX)
		broken("domain length", a->domain);
	if (alen > MW_ADDR_MAX || strchr(a->addr, '@') == NULL)
		broken("address length or '@'", a->addr);
	n = snprintf(both, sizeof(both), "%s@%s", a->local, a->domain);
	if (n < 0 || (size_t)n >= sizeof(both) || strcmp(both, a->addr) != 0)
		broken("addr is not local@domain", a->addr);
	if (strpbrk(a->domain,
	            a->domain[0] == '[' ? "@ \t\r\n()<>,;\"\\" : "@ \t\r\n()<>,;:\"\\[]") != NULL)
		broken("domain characters", a->domain);
	if (a->domain[0] != '[') {
		char dom[MW_ADDR_DOMAIN_MAX + 1];
		size_t i;
		for (i = 0; i < dlen; i++)
			if (a->domain[i] >= 'A' && a->domain[i] <= 'Z')
				broken("domain not lower-case", a->domain);
		if (mw_addr_domain_normalize(a->domain, dlen, dom, sizeof(dom), &err) != 0 ||
		    strcmp(dom, a->domain) != 0)
			broken("canonical domain does not normalise to itself", a->domain);
	}
	n = snprintf(env, sizeof(env), "<%s>", a->addr);
	if (n < 0 || (size_t)n >= sizeof(env))
		broken("envelope form too long", a->addr);
	if (mw_addr_parse_envelope(env, (size_t)n, false, &again, &err) != 0)
		broken("canonical address does not parse as an envelope", err.msg);
	if (strcmp(again.addr, a->addr) != 0 || strcmp(again.local, a->local) != 0 ||
	    strcmp(again.domain, a->domain) != 0)
		broken("envelope re-parse differs", again.addr);
}

/* check_patterns - a pattern built from the address matches it and is canonical */
static void check_patterns(const struct mw_addr *a)
{
	char pat[MW_ADDR_MAX + 8], canon[MW_PATTERN_MAX + 1];
	int n;
	if (a->domain[0] == '[')
		return;
	n = snprintf(pat, sizeof(pat), "*@%s", a->domain);
	if (n < 0 || (size_t)n >= sizeof(pat))
		return;
	if (mw_pattern_normalize(pat, canon, sizeof(canon), NULL) == 0 &&
	    !mw_pattern_match(canon, a))
		broken("*@domain does not match its own address", a->addr);
	if (a->local[0] == '"')
		return;
	if (mw_pattern_normalize(a->addr, canon, sizeof(canon), NULL) == 0 &&
	    !mw_pattern_match(canon, a))
		broken("the address as a pattern does not match itself", a->addr);
}

/* fuzz_pattern - normalisation of arbitrary patterns is idempotent */
static void fuzz_pattern(const uint8_t *data, size_t size, const struct mw_addr_list *list)
{
	char in[MW_PATTERN_MAX + 2], canon[MW_PATTERN_MAX + 1], again[MW_PATTERN_MAX + 1];
	mw_error err;
	size_t i;
	if (size > MW_PATTERN_MAX + 1)
		return;
	memcpy(in, data, size);
	in[size] = '\0';
	if (mw_pattern_normalize(in, canon, sizeof(canon), &err) != 0) {
		if (err.msg[0] == '\0' || canon[0] != '\0')
			broken("refused pattern without message or with output", err.msg);
		return;
	}
	if (mw_pattern_normalize(canon, again, sizeof(again), &err) != 0 ||
	    strcmp(canon, again) != 0)
		broken("canonical pattern does not normalise to itself", canon);
	for (i = 0; list != NULL && i < list->count; i++)
		(void)mw_pattern_match(canon, &list->addrs[i]);
}

/* fuzz_rfc2047 - encoded-word decoding of arbitrary text */
static void fuzz_rfc2047(const char *s, size_t size)
{
	mw_str out;
	mw_error err;
	bool plain = true;
	size_t i;

	for (i = 0; i + 1 < size; i++)
		if (s[i] == '=' && s[i + 1] == '?')
			plain = false;
	mw_str_init(&out, 4 * MW_ADDR_HEADER_MAX);
	err.msg[0] = '\0';
	if (mw_rfc2047_decode(s, size, &out, &err) == 0) {
		if (mw_utf8_valid(s, size, NULL) && out.len > 0 &&
		    !mw_utf8_valid(out.buf, out.len, NULL))
			broken("decoded valid UTF-8 is not UTF-8", "");
		if (plain && (out.len != size || (size > 0 && memcmp(out.buf, s, size) != 0)))
			broken("text without encoded-words changed", "");
	} else if (err.msg[0] == '\0') {
		broken("refused encoded-word without message", "");
	} else if (plain && size <= 4 * MW_ADDR_HEADER_MAX) {
		broken("text without encoded-words refused", err.msg);
	}
	mw_str_free(&out);
}

/* count_found - mw_addr_display_fn: counts what the scan hands out, never stops it */
static bool count_found(const char *local, size_t llen, const char *domain, size_t dlen, void *ctx)
{
	if (llen == 0 || dlen == 0 || memchr(local, '@', llen) != NULL ||
	    memchr(domain, '@', dlen) != NULL)
		broken("display scan handed out an empty or '@' part", "");
	(*(size_t *)ctx)++;
	return false;
}

/* LLVMFuzzerTestOneInput - run every parser over one input */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct mw_addr_list list;
	struct mw_addr a;
	char dom[MW_ADDR_DOMAIN_MAX + 1], dom2[MW_ADDR_DOMAIN_MAX + 1];
	mw_error err;
	size_t i;
	int b;

	err.msg[0] = '\0';
	if (mw_addr_parse_header(s, size, &list, &err) == 0) {
		if (list.count > MW_ADDR_LIST_MAX || (list.count > 0) != (list.addrs != NULL))
			broken("list count", "");
		for (i = 0; i < list.count; i++) {
			check_addr(&list.addrs[i]);
			check_patterns(&list.addrs[i]);
		}
		fuzz_pattern(data, size, &list);
		err.msg[0] = '\0';
		b = mw_addr_display_check(s, size, &list, &err);
		if (b < -1 || b > 1 || (b != 0 && err.msg[0] == '\0'))
			broken("display check answer", err.msg);
		{ /* the whole scan, every address passed over: the check is its first find */
			size_t found = 0;
			int sc = mw_addr_display_scan(s, size, &list, count_found, &found, NULL);
			if (b != (found > 0 ? 1 : sc) || sc == 1)
				broken("display scan against the check", "");
		}
		mw_addr_list_free(&list);
	} else {
		if (err.msg[0] == '\0' || list.count != 0 || list.addrs != NULL)
			broken("refused header without message or with addresses", err.msg);
		fuzz_pattern(data, size, NULL);
	}

	for (b = 0; b < 2; b++) {
		err.msg[0] = '\0';
		if (mw_addr_parse_envelope(s, size, b == 1, &a, &err) == 0) {
			if (a.null_path) {
				if (a.addr[0] != '\0' || a.local[0] != '\0' || a.domain[0] != '\0')
					broken("null path with an address", a.addr);
			} else {
				check_addr(&a);
				check_patterns(&a);
			}
		} else if (err.msg[0] == '\0' || a.addr[0] != '\0' || a.null_path) {
			broken("refused envelope without message or with an address", err.msg);
		}
	}

	fuzz_rfc2047(s, size);

	if (mw_addr_domain_normalize(s, size, dom, sizeof(dom), &err) == 0) {
		if (mw_addr_domain_normalize(dom, strlen(dom), dom2, sizeof(dom2), &err) != 0 ||
		    strcmp(dom, dom2) != 0)
			broken("canonical domain does not normalise to itself", dom);
	}
	return 0;
}
