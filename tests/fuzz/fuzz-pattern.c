/*
 * fuzz-pattern.c - fuzz target for allowed-From pattern matching (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * fuzz-addr.c checks that pattern normalisation is idempotent and that an address matches
 * patterns made from itself; it never puts an arbitrary pattern against an arbitrary
 * address. Here the input is "PATTERN\nADDRESSES": the pattern is normalised
 * (mw_pattern_normalize), the addresses parsed as a From header (mw_addr_parse_header)
 * and as an envelope path, and every match is compared with a reference matcher written
 * from the grammar in mw-pattern.h alone: "*" any local part, "lit+*" that prefix and at
 * least one more character (never a quoted local part), otherwise the same local part;
 * "*.suffix" a proper subdomain, otherwise the same domain; case-insensitive; a domain
 * literal never matches. mw_pattern_match_any must agree with the single matches.
 *
 * Diagnostics: a disagreement prints the pattern and address on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-addr.h"
#include "mw-pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a disagreement and abort */
static void broken(const char *what, const char *pattern, const char *addr)
{
	fprintf(stderr, "fuzz-pattern: %s [pattern %s, address %s]\n", what, pattern, addr);
	abort();
}

/* ref_match - the grammar of mw-pattern.h, independently of mw-pattern.c */
static bool ref_match(const char *pat, const struct mw_addr *a)
{
	const char *at = strrchr(pat, '@');
	size_t pl = (size_t)(at - pat), ll = strlen(a->local), dl = strlen(a->domain);
	const char *pd = at + 1;
	bool local_ok, domain_ok;
	if (a->null_path)
		return false;
	if (pl == 1 && pat[0] == '*')
		local_ok = ll > 0;
	else if (a->local[0] == '"')
		local_ok = false;
	else if (pl >= 2 && pat[pl - 1] == '*' && pat[pl - 2] == '+')
		local_ok = ll > pl - 1 && strncasecmp(a->local, pat, pl - 1) == 0;
	else
		local_ok = ll == pl && strncasecmp(a->local, pat, pl) == 0;
	if (a->domain[0] == '[' || dl == 0)
		domain_ok = false;
	else if (pd[0] == '*')
		domain_ok =
		    dl > strlen(pd + 1) && strcasecmp(a->domain + dl - strlen(pd + 1), pd + 1) == 0;
	else
		domain_ok = strcasecmp(a->domain, pd) == 0;
	return local_ok && domain_ok;
}

/* check - our matcher against the reference for one address */
static void check(const char *canon, const struct mw_addr *a)
{
	const char *one[1] = {canon};
	bool got = mw_pattern_match(canon, a);
	if (got != ref_match(canon, a))
		broken(got ? "matches against the grammar" : "does not match against the grammar",
		       canon, a->addr);
	if (mw_pattern_match_any(one, 1, a) != got)
		broken("match_any differs from match", canon, a->addr);
	if (got && canon[0] != '*') {
		/* a match by the exact local part implies one by "*" */
		char star[MW_PATTERN_MAX + 2];
		const char *at = strrchr(canon, '@');
		(void)snprintf(star, sizeof(star), "*%s", at);
		if (!mw_pattern_match(star, a))
			broken("matched, but not by *@ the same domain", canon, a->addr);
	}
}

/* LLVMFuzzerTestOneInput - one pattern against the addresses after it */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *nl = memchr(s, '\n', size);
	char pat[MW_PATTERN_MAX + 2], canon[MW_PATTERN_MAX + 1];
	struct mw_addr_list list;
	struct mw_addr a;
	size_t plen, rest, i;
	mw_error err;
	int b;

	if (nl == NULL)
		return 0;
	plen = (size_t)(nl - s);
	if (plen > MW_PATTERN_MAX + 1)
		return 0;
	memcpy(pat, s, plen);
	pat[plen] = '\0';
	if (mw_pattern_normalize(pat, canon, sizeof(canon), &err) != 0)
		return 0;
	if (strchr(canon, '@') == NULL || strchr(canon, '@') != strrchr(canon, '@'))
		broken("canonical pattern without exactly one '@'", canon, "");
	s = nl + 1;
	rest = size - plen - 1;
	if (mw_addr_parse_header(s, rest, &list, &err) == 0) {
		for (i = 0; i < list.count; i++)
			check(canon, &list.addrs[i]);
		mw_addr_list_free(&list);
	}
	for (b = 0; b < 2; b++)
		if (mw_addr_parse_envelope(s, rest, b == 1, &a, &err) == 0)
			check(canon, &a);
	return 0;
}
