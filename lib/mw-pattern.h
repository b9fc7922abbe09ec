/* mw-pattern.h - allowed-From patterns (DESIGN.md, store: allowed_from). */
#ifndef MW_PATTERN_H
#define MW_PATTERN_H

#include "mw-addr.h"

#define MW_PATTERN_MAX MW_ADDR_MAX

/* Pattern grammar (comparison case-insensitive, '*' never crosses '@'):
     john@example.com      exactly that address
     *@example.com         any address in the domain (not its subdomains)
     *@*.example.com       any address in any subdomain (not the domain itself)
     john+*@example.com    john+anything@example.com (not john@example.com itself:
                           a pattern matches what it says; add john@ separately)
   The local part is a literal dot-atom (no quotes), "*", or "literal+*" (the '*' standing
   for one or more characters, so john+@example.com does not match either); the domain is
   a host name with at least two labels, or "*." followed by one. Anything else is refused
   (white space, control characters, invalid UTF-8, '*' anywhere else, domain literals,
   over-long parts). An IDN domain is stored in A-label form (mw_addr_domain_normalize),
   the local part ASCII lower-cased. A quoted local part (canonical form starting with '"')
   is matched only by "*". */

/* Validates pattern and writes its canonical form (lower-case, A-label) into canon. */
int mw_pattern_normalize(const char *pattern, char *canon, size_t canonsize, mw_error *error_r);
/* Matches a canonical pattern against a parsed address. */
bool mw_pattern_match(const char *canon_pattern, const struct mw_addr *addr);
/* True when any of the n canonical patterns matches. */
bool mw_pattern_match_any(const char *const *patterns, size_t n, const struct mw_addr *addr);

#endif
