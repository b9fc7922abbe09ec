/*
 * mw-pattern.c - allowed-From patterns: validation, canonical form and matching.
 *
 * Public: mw_pattern_normalize, mw_pattern_match, mw_pattern_match_any.
 *
 * A pattern is "LOCAL@DOMAIN" where LOCAL is a literal dot-atom, "*" or "literal+*", and
 * DOMAIN is a host name with at least two labels, or "*." followed by one. Patterns are
 * stored in canonical form (ASCII lower-case, domain in A-label form through
 * mw_addr_domain_normalize) and matched against parsed addresses (struct mw_addr, whose
 * local part is canonical: quoted only when it must be). A quoted local part therefore
 * never equals a literal pattern, which is a dot-atom; "*" matches it.
 *
 * Matching is case-insensitive for ASCII; '*' never crosses '@'; in "literal+*" the '*'
 * stands for one or more characters (john+*@x matches neither john@x nor john+@x);
 * "*.example.com" matches names below example.com, never example.com itself.
 *
 * Diagnostics: mw_pattern_normalize says why a pattern is refused ("pattern has no '@'",
 * "'*' is only allowed as ..."). Matching never fails: a malformed pattern matches nothing.
 */
#include "mw-build.h"
#include "mw-pattern.h"

#include <stdio.h>
#include <string.h>

/* pat_atext - RFC 5322 atext (with UTF-8 bytes) minus '*', which patterns reserve */
static bool pat_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	if (c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$%&'+-/=?^_`{|}~", c) != NULL;
}

/* pat_local_literal - check a literal local part (a dot-atom without '*') */
static int pat_local_literal(const char *s, size_t len, mw_error *error_r)
{
	size_t i;
	if (len == 0) {
		mw_error_set(error_r, "empty local part in pattern");
		return -1;
	}
	if (s[0] == '.' || s[len - 1] == '.') {
		mw_error_set(error_r, "local part of pattern starts or ends with '.'");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '*') {
			mw_error_set(error_r,
			             "'*' is only allowed as the whole local part or "
			             "as a final \"+*\" (offset %zu)",
			             i);
			return -1;
		}
		if (c == '.') {
			if (s[i + 1] == '.') {
				mw_error_set(error_r, "'..' in local part of pattern");
				return -1;
			}
			continue;
		}
		if (!pat_atext(c)) {
			mw_error_set(error_r,
			             "invalid character 0x%02x in local part of pattern "
			             "at offset %zu",
			             c, i);
			return -1;
		}
	}
	return 0;
}

/* mw_pattern_normalize - validate a pattern and write its canonical form */
int mw_pattern_normalize(const char *pattern, char *canon, size_t canonsize, mw_error *error_r)
{
	char local[MW_ADDR_LOCAL_MAX + 1];
	char domain[MW_ADDR_DOMAIN_MAX + 1];
	const char *at, *dom;
	size_t len, i, llen, dlen;
	bool wild_domain = false;
	int n;

	if (canonsize > 0)
		canon[0] = '\0';
	if (pattern == NULL || pattern[0] == '\0') {
		mw_error_set(error_r, "empty pattern");
		return -1;
	}
	len = strnlen(pattern, MW_PATTERN_MAX + 1);
	if (len > MW_PATTERN_MAX) {
		mw_error_set(error_r, "pattern longer than %d bytes", MW_PATTERN_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)pattern[i];
		if (c == ' ' || c == '\t') {
			mw_error_set(error_r, "white space in pattern at offset %zu", i);
			return -1;
		}
		if (c < 0x20 || c == 0x7f) {
			mw_error_set(error_r, "control character 0x%02x in pattern at offset %zu",
			             c, i);
			return -1;
		}
	}
	if (!mw_utf8_valid(pattern, len, &i)) {
		mw_error_set(error_r, "invalid UTF-8 in pattern at offset %zu", i);
		return -1;
	}
	at = strchr(pattern, '@');
	if (at == NULL) {
		mw_error_set(error_r, "pattern has no '@'");
		return -1;
	}
	if (strchr(at + 1, '@') != NULL) {
		mw_error_set(error_r, "pattern has more than one '@'");
		return -1;
	}
	llen = (size_t)(at - pattern);
	if (llen > MW_ADDR_LOCAL_MAX) {
		mw_error_set(error_r, "local part of pattern longer than %d bytes",
		             MW_ADDR_LOCAL_MAX);
		return -1;
	}
	if (llen == 1 && pattern[0] == '*') {
		/* any local part */
	} else if (llen >= 2 && pattern[llen - 2] == '+' && pattern[llen - 1] == '*') {
		if (llen == 2) {
			mw_error_set(error_r, "\"+*\" needs a local part before the '+'");
			return -1;
		}
		if (pat_local_literal(pattern, llen - 1, error_r) < 0)
			return -1;
	} else if (pat_local_literal(pattern, llen, error_r) < 0) {
		return -1;
	}
	memcpy(local, pattern, llen);
	local[llen] = '\0';
	mw_ascii_lower(local);

	dom = at + 1;
	dlen = len - llen - 1;
	if (dlen >= 2 && dom[0] == '*' && dom[1] == '.') {
		wild_domain = true;
		dom += 2;
		dlen -= 2;
	}
	if (dlen == 0) {
		mw_error_set(error_r, "pattern has no domain");
		return -1;
	}
	if (memchr(dom, '*', dlen) != NULL) {
		mw_error_set(error_r, "'*' in the domain is only allowed as a leading \"*.\"");
		return -1;
	}
	if (dom[0] == '[') {
		mw_error_set(error_r, "domain literals are not allowed in patterns");
		return -1;
	}
	if (mw_addr_domain_normalize(dom, dlen, domain, sizeof(domain), error_r) < 0) {
		mw_error_prefix(error_r, "pattern domain");
		return -1;
	}
	if (strchr(domain, '.') == NULL) {
		mw_error_set(error_r, wild_domain ? "\"*.\" must be followed by a domain of at "
		                                    "least two labels"
		                                  : "pattern domain needs at least two labels");
		return -1;
	}
	n = snprintf(canon, canonsize, "%s@%s%s", local, wild_domain ? "*." : "", domain);
	if (n < 0 || (size_t)n >= canonsize) {
		if (canonsize > 0)
			canon[0] = '\0';
		mw_error_set(error_r, "canonical pattern does not fit its buffer");
		return -1;
	}
	if ((size_t)n > MW_PATTERN_MAX) {
		canon[0] = '\0';
		mw_error_set(error_r, "pattern longer than %d bytes", MW_PATTERN_MAX);
		return -1;
	}
	return 0;
}

/* match_local - match the pattern's local part against a canonical local part */
static bool match_local(const char *pl, size_t pllen, const char *local)
{
	size_t len = strlen(local);
	if (pllen == 1 && pl[0] == '*')
		return len > 0;
	if (pllen >= 2 && pl[pllen - 1] == '*' && pl[pllen - 2] == '+') {
		/* "literal+*": the prefix with its '+', then one or more characters */
		return len > pllen - 1 && mw_ascii_strncasecmp(local, pl, pllen - 1) == 0;
	}
	return len == pllen && mw_ascii_strncasecmp(local, pl, pllen) == 0;
}

/* match_domain - match the pattern's domain (literal or "*.suffix") */
static bool match_domain(const char *pd, const char *domain)
{
	size_t dlen = strlen(domain), slen;
	if (dlen == 0 || domain[0] == '[')
		return false;
	if (pd[0] == '*' && pd[1] == '.') {
		const char *suffix = pd + 1; /* ".example.com" */
		slen = strlen(suffix);
		return dlen > slen && mw_ascii_strcasecmp(domain + dlen - slen, suffix) == 0;
	}
	return mw_ascii_strcasecmp(domain, pd) == 0;
}

/* mw_pattern_match - does a canonical pattern match the address? */
bool mw_pattern_match(const char *canon_pattern, const struct mw_addr *addr)
{
	const char *at;
	if (canon_pattern == NULL || addr == NULL || addr->null_path || addr->local[0] == '\0' ||
	    addr->domain[0] == '\0')
		return false;
	at = strchr(canon_pattern, '@');
	if (at == NULL || at == canon_pattern || strchr(at + 1, '@') != NULL || at[1] == '\0')
		return false;
	return match_local(canon_pattern, (size_t)(at - canon_pattern), addr->local) &&
	       match_domain(at + 1, addr->domain);
}

/* mw_pattern_match_any - true when one of n canonical patterns matches */
bool mw_pattern_match_any(const char *const *patterns, size_t n, const struct mw_addr *addr)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (mw_pattern_match(patterns[i], addr))
			return true;
	return false;
}
