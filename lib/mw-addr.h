/* mw-addr.h - strict RFC 5321 envelope path and RFC 5322 header address parsing. */
#ifndef MW_ADDR_H
#define MW_ADDR_H

#include "mw-util.h"

#define MW_ADDR_LOCAL_MAX  64    /* RFC 5321 4.5.3.1.1, in canonical form */
#define MW_ADDR_DOMAIN_MAX 255   /* RFC 5321 4.5.3.1.2, A-label form */
#define MW_ADDR_MAX        320   /* local@domain */
#define MW_ADDR_HEADER_MAX 16384 /* an address header longer than this is refused */
#define MW_ADDR_LIST_MAX   100   /* more addresses than this in one header is refused */

/* One addr-spec in canonical form:
   - local: dot-atom as written (case kept), or the quoted form reduced to a dot-atom when
     the quotes were unnecessary ("john"@x -> john@x), else kept quoted with minimal escapes
     (only '"' and '\\'); at most MW_ADDR_LOCAL_MAX bytes including quotes and escapes;
   - domain: lower-case LDH host name, IDN U-labels converted to A-labels (libidn2,
     IDNA2008 + TR46, non-transitional first, transitional as a fallback), trailing dot
     removed; or a domain literal in canonical form: "[192.0.2.1]" or "[IPv6:2001:db8::1]"
     (inet_ntop form; other literals are refused);
   - addr: local@domain. */
struct mw_addr {
	char local[MW_ADDR_LOCAL_MAX + 3]; /* + possible quotes */
	char domain[MW_ADDR_DOMAIN_MAX + 1];
	char addr[MW_ADDR_MAX + 1];
	bool null_path; /* envelope "<>" */
};

struct mw_addr_list {
	size_t count;
	struct mw_addr *addrs; /* count entries, owned */
	size_t groups;         /* how many RFC 5322 groups appeared (even empty ones) */
};

/* RFC 5321 Path / Reverse-path: "<a@b>", "<>" (null_path), with or without source route
   ("<@x,@y:a@b>", dropped). Bare "a@b" without brackets is accepted only when
   allow_bare is true (Postfix hands milters the bracketed form; the policy protocol bare),
   and then an empty string is the null path too (the policy protocol's "sender="). No
   white space or comments anywhere (SMTP has none), no text after the path (pass argv[0]
   only, not the ESMTP parameters). Quoted local parts and UTF-8 (RFC 6531) are accepted.
   A single-label domain ("root@localhost") is accepted here, unlike in headers. */
int mw_addr_parse_envelope(const char *s, size_t len, bool allow_bare, struct mw_addr *addr_r,
                           mw_error *error_r);

/* RFC 5322 address-list (the value of From:, Sender:, To:, ... after the colon, possibly
   folded with CRLF/LF + WSP): display names, quoted strings, comments (nested), groups,
   encoded words in phrases (taken as atoms, never decoded), obs-syntax (obs-route,
   obs-local-part, CFWS between atoms, empty list elements). Returns every addr-spec. A
   header that does not parse as a whole is an error: no best-effort guessing, since From
   enforcement depends on it. An empty list (or only empty groups) yields count 0 and is
   not an error; the caller decides. Refused besides syntax errors: NUL, bare CR, a line
   break not followed by WSP (so no trailing CRLF), invalid UTF-8, control characters in
   comments or quoted strings, TAB in a quoted local part, unquoted local parts with a
   leading, trailing or double '.', a domain without '.' (unless a literal), "<>", more
   than MW_ADDR_LIST_MAX addresses or MW_ADDR_HEADER_MAX bytes. On error list_r is empty.
   The error message names the problem and its byte offset, never echoing the input. */
int mw_addr_parse_header(const char *s, size_t len, struct mw_addr_list *list_r, mw_error *error_r);
void mw_addr_list_free(struct mw_addr_list *list);

/* Normalises a host name domain (U-label or A-label, any case, one optional trailing dot)
   to lower-case A-label form. Refused: empty labels, characters other than letters,
   digits and '-' (ASCII) or non-ASCII labels that do not convert to a single valid
   A-label, invalid A-labels, labels over 63 bytes, more than 255 bytes in all, an
   all-digit top-level label, domain literals. */
int mw_addr_domain_normalize(const char *domain, size_t len, char *out, size_t outsize,
                             mw_error *error_r);

/* Judges the display text of an address header that mw_addr_parse_header accepted (LIST is
   its result) as a mail reader shows it: display names (atoms and quoted strings, quoted-
   pairs undone), group names and every comment, with RFC 2047 encoded-words decoded in
   any charset (mw-rfc2047) wherever they appear. Returns 0 when no such text holds
   anything address-like ("x@y", also with blanks around the '@' or with U+FF20/U+FE6B for
   '@') other than an address of LIST (local part and domain compared case-insensitively,
   the domain after IDN normalisation); 1 when one does (error_r says so, without echoing
   it); -1 when the text cannot be decoded (error_r names the problem and offset) or the
   header does not parse. */
int mw_addr_display_check(const char *s, size_t len, const struct mw_addr_list *list,
                          mw_error *error_r);

/* Told by mw_addr_display_scan of one address-like text that is not an address of LIST,
   as shown (decoded; neither normalised nor validated, so the domain may end in shown
   punctuation such as "'" or be a single label): LOCAL and DOMAIN are the runs before and
   after the '@' (blanks around it dropped). Returns true when it counts (the scan stops
   with 1), false to look on. */
typedef bool mw_addr_display_fn(const char *local, size_t llen, const char *domain, size_t dlen,
                                void *ctx);

/* mw_addr_display_check with the decision on each address found handed to FN (CTX passed
   on): 1 as soon as FN returns true, 0 when it never does (or nothing is found), -1 as
   mw_addr_display_check. FN NULL is mw_addr_display_check itself. The spam tests use it
   to judge what the address shows; From enforcement refuses any such address. */
int mw_addr_display_scan(const char *s, size_t len, const struct mw_addr_list *list,
                         mw_addr_display_fn *fn, void *ctx, mw_error *error_r);

/* True when header field NAME is WANT (ASCII case-insensitive), ignoring blanks between the
   name and the colon ("From :" is a From field to every mail reader, RFC 5322 4.5.1). */
bool mw_addr_header_name_is(const char *name, const char *want);

#endif
