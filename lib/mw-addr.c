/*
 * mw-addr.c - strict parsing of RFC 5322 header addresses and RFC 5321 envelope paths.
 *
 * Public: mw_addr_parse_header, mw_addr_parse_envelope, mw_addr_list_free,
 * mw_addr_domain_normalize, mw_addr_header_name_is, mw_addr_display_check,
 * mw_addr_display_scan.
 *
 * This is the ground under From enforcement: a user may send only as addresses an admin
 * allowed, so what this module returns must be exactly what the header says, and a header
 * that does not parse as a whole is an error. Nothing is guessed, repaired or truncated.
 *
 * Header syntax (RFC 5322 3.4 with the obsolete forms of 4.4 that real mail uses): address
 * lists with empty elements (", ,"), display names (phrases with '.' and CFWS, RFC 2047
 * encoded words taken as plain atoms and never decoded), angle addresses with an obs-route
 * (dropped), groups (counted, not nested), local parts as dot-atom, quoted string or
 * obs-local-part (words joined by '.', CFWS around them), domains as dot-atom, obs-domain
 * or domain literal, comments nested up to MW_ADDR_COMMENT_DEPTH_MAX, FWS folded with CRLF
 * or LF followed by white space. UTF-8 (RFC 6532) is accepted wherever text is; the whole
 * input must be valid UTF-8.
 *
 * Decisions (stricter than the letter of the RFC where that removes doubt):
 *   - an unquoted local part may not start or end with '.' or hold "..": that is the RFC
 *     grammar (obs-local-part joins words, never empty ones); quote such local parts;
 *   - quoted local parts may hold space and printable text, no TAB or control characters
 *     (SMTP cannot carry them), and no obs-qp escapes of control characters;
 *   - comments and quoted strings may not hold control characters (obs-ctext, obs-qtext);
 *   - a line break must be followed by white space (FWS); a bare CR or a trailing line
 *     break is an error;
 *   - domains must be host names: LDH labels of 1..63 bytes, U-labels converted to
 *     A-labels with libidn2 (non-transitional, then transitional when that fails), a
 *     non-ASCII label must become an A-label, a top-level label may not be all digits;
 *     one trailing '.' is dropped;
 *   - a header domain needs at least one '.' (or is a domain literal); an envelope domain
 *     may be a single label ("root@localhost" from local submission is legal SMTP);
 *   - domain literals are IPv4 "[192.0.2.1]" or "[IPv6:...]" only, written in canonical
 *     form (inet_ntop); no white space or quoted-pairs inside;
 *   - "<>" in a header, an address without domain and a group without display name are
 *     errors.
 *
 * Display text (mw_addr_display_check): an authenticated sender's From: may not show,
 * anywhere a reader displays text (display names, group names, comments), an address other
 * than its own. The text is taken as a reader decodes it: quoted-pairs undone, encoded-words
 * decoded in any charset, and an encoded-word that cannot be decoded is refused rather
 * than skipped. "Address-like" is deliberately broad (x@y, blanks around the '@', the
 * full-width and small '@'): a false refusal costs the user a display name, a miss lets
 * the user impersonate someone.
 *
 * Diagnostics: every failure sets error_r to what went wrong and where (byte offset), e.g.
 * "unexpected '<' at offset 12". Messages never echo the input itself.
 */
#include "mw-build.h"
#include "mw-addr.h"
#include "mw-rfc2047.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MW_ADDR_COMMENT_DEPTH_MAX 32
#define MW_ADDR_ENVELOPE_MAX      1024 /* an envelope path longer than this is refused */
#define MW_ADDR_DOMAIN_INPUT_MAX  1024 /* domain bytes before IDN conversion */
#define MW_ADDR_LABEL_MAX         63

struct addr_parser {
	const char *s;
	size_t len;
	size_t pos;
	mw_error *error_r;
};

/* The words and dots seen before we know whether they are a local part or a phrase. */
struct addr_words {
	mw_str text; /* contents of the words (quotes removed) with the dots */
	size_t nwords;
	size_t ndots;
	bool last_dot; /* the last item was a '.' */
	size_t last_dot_off;
	const char *problem; /* first reason why this cannot be a local part */
	size_t problem_off;
};

/* is_atext - RFC 5322 atext, extended with UTF-8 (RFC 6532) */
static bool is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	if (c >= 0x80)
		return true;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

/* is_wsp - space or horizontal tab */
static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* is_vchar - printable ASCII or UTF-8 byte */
static bool is_vchar(unsigned char c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/* is_ldh - letter, digit or hyphen */
static bool is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

/* describe_byte - "'c'" for printable ASCII, "byte 0xNN" otherwise */
static void describe_byte(unsigned char c, char *buf, size_t size)
{
	if (c >= 0x21 && c <= 0x7e)
		(void)snprintf(buf, size, "'%c'", c);
	else if (c == ' ')
		(void)snprintf(buf, size, "space");
	else
		(void)snprintf(buf, size, "byte 0x%02x", c);
}

/* unexpected - error for the byte at pos (or the end of the input) */
static int unexpected(struct addr_parser *p)
{
	char what[32];
	if (p->pos >= p->len) {
		mw_error_set(p->error_r, "unexpected end of input at offset %zu", p->pos);
		return -1;
	}
	describe_byte((unsigned char)p->s[p->pos], what, sizeof(what));
	mw_error_set(p->error_r, "unexpected %s at offset %zu", what, p->pos);
	return -1;
}

/* unterminated - error for a WHAT (comment, quoted string, ...) that starts at START and
   runs to the end of the input */
static int unterminated(struct addr_parser *p, const char *what, size_t start)
{
	mw_error_set(p->error_r, "unterminated %s starting at offset %zu", what, start);
	return -1;
}

/* quoted_pair - the quoted-pair at pos (at '\\') is complete and quotes VCHAR or WSP; what
   and start name the comment or quoted string it stands in */
static int quoted_pair(struct addr_parser *p, const char *what, size_t start)
{
	unsigned char d;
	if (p->pos + 1 >= p->len)
		return unterminated(p, what, start);
	d = (unsigned char)p->s[p->pos + 1];
	if (!is_vchar(d) && !is_wsp(d)) {
		mw_error_set(p->error_r, "invalid quoted-pair at offset %zu", p->pos);
		return -1;
	}
	return 0;
}

/* peek - the byte at pos, or -1 at the end */
static int peek(const struct addr_parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

/* skip_line_break - at CR/LF: consume a fold (line break followed by WSP) or fail */
static int skip_line_break(struct addr_parser *p)
{
	size_t n = 0;
	if (p->s[p->pos] == '\r') {
		if (p->pos + 1 >= p->len || p->s[p->pos + 1] != '\n') {
			mw_error_set(p->error_r, "bare CR at offset %zu", p->pos);
			return -1;
		}
		n = 2;
	} else {
		n = 1;
	}
	if (p->pos + n >= p->len || !is_wsp((unsigned char)p->s[p->pos + n])) {
		mw_error_set(p->error_r, "line break not followed by white space at offset %zu",
		             p->pos);
		return -1;
	}
	p->pos += n;
	return 0;
}

/* skip_fws - skip folding white space */
static int skip_fws(struct addr_parser *p)
{
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (is_wsp(c))
			p->pos++;
		else if (c == '\r' || c == '\n') {
			if (skip_line_break(p) < 0)
				return -1;
		} else
			break;
	}
	return 0;
}

/* skip_comment - skip one comment (pos at '('), nested comments included */
static int skip_comment(struct addr_parser *p)
{
	size_t start = p->pos;
	int depth = 0;
	do {
		unsigned char c;
		if (p->pos >= p->len)
			return unterminated(p, "comment", start);
		c = (unsigned char)p->s[p->pos];
		if (c == '(') {
			if (++depth > MW_ADDR_COMMENT_DEPTH_MAX) {
				mw_error_set(p->error_r,
				             "comments nested deeper than %d at offset %zu",
				             MW_ADDR_COMMENT_DEPTH_MAX, p->pos);
				return -1;
			}
			p->pos++;
		} else if (c == ')') {
			depth--;
			p->pos++;
		} else if (c == '\\') {
			if (quoted_pair(p, "comment", start) < 0)
				return -1;
			p->pos += 2;
		} else if (c == '\r' || c == '\n') {
			if (skip_line_break(p) < 0)
				return -1;
		} else if (is_vchar(c) || is_wsp(c)) {
			p->pos++;
		} else {
			mw_error_set(p->error_r,
			             "control character 0x%02x in comment at offset %zu", c,
			             p->pos);
			return -1;
		}
	} while (depth > 0);
	return 0;
}

/* skip_cfws - skip comments and folding white space */
static int skip_cfws(struct addr_parser *p)
{
	for (;;) {
		if (skip_fws(p) < 0)
			return -1;
		if (peek(p) != '(')
			return 0;
		if (skip_comment(p) < 0)
			return -1;
	}
}

/* text_append - append to a bounded text, failing with a clear message */
static int text_append(struct addr_parser *p, mw_str *text, const char *b, size_t n)
{
	if (text == NULL)
		return 0;
	if (mw_str_append(text, b, n) < 0) {
		mw_error_set(p->error_r, "text too long at offset %zu", p->pos);
		return -1;
	}
	return 0;
}

/* The two grammars of a quoted string. QUOTED_HEADER is RFC 5322 3.2.4: FWS may fold inside,
   and a quoted-pair quotes VCHAR or WSP, UTF-8 included (RFC 6532). QUOTED_ENVELOPE is
   RFC 5321 4.1.2's Quoted-string: no line break, and a quoted-pair quotes printable ASCII
   only (quoted-pairSMTP = %d92 %d32-126); its caller refused every control character of
   the input before. */
enum quoted_grammar { QUOTED_HEADER, QUOTED_ENVELOPE };

/* parse_quoted - parse a quoted string of grammar g (pos at '"'), appending its content
   (quoted-pairs undone, folds removed) to text */
static int parse_quoted(struct addr_parser *p, enum quoted_grammar g, mw_str *text)
{
	size_t start = p->pos++;
	for (;;) {
		unsigned char c;
		if (p->pos >= p->len)
			return unterminated(p, "quoted string", start);
		c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->pos++;
			return 0;
		}
		if (c == '\\') {
			if (g == QUOTED_ENVELOPE) {
				/* the error names the quoted byte */
				if (++p->pos >= p->len)
					return unterminated(p, "quoted string", start);
				c = (unsigned char)p->s[p->pos];
				if (c < 32 || c > 126)
					return unexpected(p);
			} else {
				if (quoted_pair(p, "quoted string", start) < 0)
					return -1;
				p->pos++;
			}
			if (text_append(p, text, &p->s[p->pos], 1) < 0)
				return -1;
			p->pos++;
		} else if ((c == '\r' || c == '\n') && g == QUOTED_HEADER) {
			/* a fold inside a quoted string: the line break is removed, WSP kept */
			if (skip_line_break(p) < 0)
				return -1;
		} else if (is_vchar(c) || is_wsp(c)) {
			if (text_append(p, text, &p->s[p->pos], 1) < 0)
				return -1;
			p->pos++;
		} else {
			mw_error_set(p->error_r,
			             "control character 0x%02x in quoted string at offset %zu", c,
			             p->pos);
			return -1;
		}
	}
}

/* words_problem - remember the first reason the words cannot be a local part */
static void words_problem(struct addr_words *w, const char *why, size_t off)
{
	if (w->problem == NULL) {
		w->problem = why;
		w->problem_off = off;
	}
}

/* collect_words - read words (atoms, quoted strings), dots and CFWS between them */
static int collect_words(struct addr_parser *p, struct addr_words *w)
{
	for (;;) {
		int c;
		size_t off;
		if (skip_cfws(p) < 0)
			return -1;
		c = peek(p);
		off = p->pos;
		if (c == '"' || (c >= 0 && is_atext((unsigned char)c))) {
			if (w->nwords + w->ndots > 0 && !w->last_dot)
				words_problem(w, "words not separated by '.'", off);
			if (c == '"') {
				if (parse_quoted(p, QUOTED_HEADER, &w->text) < 0)
					return -1;
			} else {
				size_t b = p->pos;
				while (p->pos < p->len && is_atext((unsigned char)p->s[p->pos]))
					p->pos++;
				if (text_append(p, &w->text, p->s + b, p->pos - b) < 0)
					return -1;
			}
			w->nwords++;
			w->last_dot = false;
		} else if (c == '.') {
			if (w->nwords == 0)
				words_problem(w, "local part starts with '.'", off);
			else if (w->last_dot)
				words_problem(w, "'..' in local part", off);
			if (text_append(p, &w->text, ".", 1) < 0)
				return -1;
			p->pos++;
			w->ndots++;
			w->last_dot = true;
			w->last_dot_off = off;
		} else {
			if (w->last_dot)
				words_problem(w, "local part ends with '.'", w->last_dot_off);
			return 0;
		}
	}
}

/* is_dot_atom - true when s is a non-empty dot-atom-text */
static bool is_dot_atom(const char *s, size_t len)
{
	size_t i;
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (!is_atext((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* local_canon - the canonical local part for content (unquoted when a dot-atom) */
static int local_canon(const char *content, size_t len, char *out, size_t outsize,
                       mw_error *error_r)
{
	size_t i, o = 0;
	if (outsize < MW_ADDR_LOCAL_MAX + 1) {
		mw_error_set(error_r, "local part buffer too small");
		return -1;
	}
	if (is_dot_atom(content, len)) {
		if (len > MW_ADDR_LOCAL_MAX) {
			mw_error_set(error_r, "local part longer than %d bytes", MW_ADDR_LOCAL_MAX);
			return -1;
		}
		memcpy(out, content, len);
		out[len] = '\0';
		return 0;
	}
	out[o++] = '"';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)content[i];
		if (c < 0x20 || c == 0x7f) {
			mw_error_set(error_r, "control character 0x%02x in local part", c);
			return -1;
		}
		if (c == '"' || c == '\\') {
			if (o + 1 > MW_ADDR_LOCAL_MAX)
				break;
			out[o++] = '\\';
		}
		if (o + 1 > MW_ADDR_LOCAL_MAX)
			break;
		out[o++] = (char)c;
	}
	if (i < len || o + 1 > MW_ADDR_LOCAL_MAX) {
		mw_error_set(error_r, "local part longer than %d bytes", MW_ADDR_LOCAL_MAX);
		return -1;
	}
	out[o++] = '"';
	out[o] = '\0';
	return 0;
}

/* idn_label - convert one label through libidn2; non-transitional first, then
   transitional (for compatibility with names registered under IDNA2003) */
static int idn_label(const char *label, uint8_t **out_r)
{
	int ret =
	    idn2_lookup_u8((const uint8_t *)label, out_r, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
	if (ret != IDN2_OK) {
		*out_r = NULL;
		if (idn2_lookup_u8((const uint8_t *)label, out_r,
		                   IDN2_TRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK) {
			*out_r = NULL;
			return ret;
		}
	}
	return IDN2_OK;
}

/* domain_label - validate and convert one label into out (lower-case A-label form) */
static int domain_label(const char *label, size_t len, char *out, size_t outsize, mw_error *error_r)
{
	char buf[MW_ADDR_DOMAIN_INPUT_MAX + 1];
	bool ascii = true;
	size_t i, olen;
	uint8_t *conv = NULL;
	int ret;

	if (len == 0) {
		mw_error_set(error_r, "empty domain label");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)label[i];
		if (c >= 0x80)
			ascii = false;
		else if (!is_ldh(c)) {
			char what[32];
			describe_byte(c, what, sizeof(what));
			mw_error_set(error_r, "invalid character %s in domain", what);
			return -1;
		}
	}
	if (ascii) {
		if (len > MW_ADDR_LABEL_MAX) {
			mw_error_set(error_r, "domain label too long (over %d bytes)",
			             MW_ADDR_LABEL_MAX);
			return -1;
		}
		if (label[0] == '-' || label[len - 1] == '-') {
			mw_error_set(error_r, "domain label starts or ends with '-'");
			return -1;
		}
		if (len + 1 > outsize) {
			mw_error_set(error_r, "domain label too long");
			return -1;
		}
		for (i = 0; i < len; i++) {
			char c = label[i];
			out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		out[len] = '\0';
		if (len < 4 || strncmp(out, "xn--", 4) != 0)
			return 0;
		/* an A-label must be valid punycode of a valid U-label */
		ret = idn_label(out, &conv);
		if (ret != IDN2_OK || strcmp((const char *)conv, out) != 0) {
			idn2_free(conv);
			mw_error_set(error_r, "invalid A-label in domain%s%s",
			             ret != IDN2_OK ? ": " : "",
			             ret != IDN2_OK ? idn2_strerror(ret) : "");
			return -1;
		}
		idn2_free(conv);
		return 0;
	}
	if (len >= sizeof(buf)) {
		mw_error_set(error_r, "domain too long");
		return -1;
	}
	memcpy(buf, label, len);
	buf[len] = '\0';
	ret = idn_label(buf, &conv);
	if (ret != IDN2_OK) {
		mw_error_set(error_r, "invalid international domain name: %s", idn2_strerror(ret));
		return -1;
	}
	olen = strlen((const char *)conv);
	/* the result must be one A-label: UTS 46 mapping may turn characters into dots,
	   '@' or nothing at all, and such a name is refused rather than reinterpreted */
	if (olen < 5 || strncmp((const char *)conv, "xn--", 4) != 0) {
		idn2_free(conv);
		mw_error_set(error_r, "invalid international domain name");
		return -1;
	}
	for (i = 0; i < olen; i++) {
		if (!is_ldh(conv[i]) || (conv[i] >= 'A' && conv[i] <= 'Z')) {
			idn2_free(conv);
			mw_error_set(error_r, "invalid international domain name");
			return -1;
		}
	}
	if (olen > MW_ADDR_LABEL_MAX) {
		idn2_free(conv);
		mw_error_set(error_r, "domain label too long (over %d bytes)", MW_ADDR_LABEL_MAX);
		return -1;
	}
	if (conv[olen - 1] == '-' || olen + 1 > outsize) {
		idn2_free(conv);
		mw_error_set(error_r, "invalid international domain name");
		return -1;
	}
	memcpy(out, conv, olen + 1);
	idn2_free(conv);
	return 0;
}

/* mw_addr_domain_normalize - lower-case A-label form of a host name domain */
int mw_addr_domain_normalize(const char *domain, size_t len, char *out, size_t outsize,
                             mw_error *error_r)
{
	char label[MW_ADDR_LABEL_MAX + 1];
	char res[MW_ADDR_DOMAIN_MAX + 1];
	size_t i, start, rlen = 0, last_start = 0;
	size_t bad;
	bool numeric = true;

	if (outsize > 0)
		out[0] = '\0';
	if (len == 0) {
		mw_error_set(error_r, "empty domain");
		return -1;
	}
	if (len > MW_ADDR_DOMAIN_INPUT_MAX) {
		mw_error_set(error_r, "domain longer than %d bytes", MW_ADDR_DOMAIN_INPUT_MAX);
		return -1;
	}
	if (memchr(domain, '\0', len) != NULL) {
		mw_error_set(error_r, "NUL byte in domain");
		return -1;
	}
	if (!mw_utf8_valid(domain, len, &bad)) {
		mw_error_set(error_r, "invalid UTF-8 in domain at offset %zu", bad);
		return -1;
	}
	if (domain[len - 1] == '.')
		len--; /* one trailing dot: the root */
	if (len == 0) {
		mw_error_set(error_r, "empty domain");
		return -1;
	}
	start = 0;
	for (i = 0; i <= len; i++) {
		size_t llen;
		if (i < len && domain[i] != '.')
			continue;
		if (domain_label(domain + start, i - start, label, sizeof(label), error_r) < 0)
			return -1;
		llen = strlen(label);
		if (rlen + (rlen > 0) + llen > MW_ADDR_DOMAIN_MAX) {
			mw_error_set(error_r, "domain longer than %d bytes", MW_ADDR_DOMAIN_MAX);
			return -1;
		}
		if (rlen > 0)
			res[rlen++] = '.';
		last_start = rlen;
		memcpy(res + rlen, label, llen);
		rlen += llen;
		start = i + 1;
	}
	res[rlen] = '\0';
	for (i = last_start; i < rlen; i++)
		if (res[i] < '0' || res[i] > '9')
			numeric = false;
	if (numeric) {
		mw_error_set(error_r, "top-level domain label is all digits");
		return -1;
	}
	if (mw_strlcpy(out, res, outsize) < 0) {
		mw_error_set(error_r, "domain does not fit the output buffer");
		return -1;
	}
	return 0;
}

/* literal_canon - canonical form of a domain literal's content (IPv4 or "IPv6:") */
static int literal_canon(const char *content, size_t len, char *out, size_t outsize,
                         mw_error *error_r)
{
	char buf[64], addr[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	int n;

	if (len >= 5 && mw_ascii_strncasecmp(content, "IPv6:", 5) == 0) {
		if (len - 5 >= sizeof(buf))
			goto bad;
		memcpy(buf, content + 5, len - 5);
		buf[len - 5] = '\0';
		if (inet_pton(AF_INET6, buf, bin) != 1 ||
		    inet_ntop(AF_INET6, bin, addr, sizeof(addr)) == NULL)
			goto bad;
		n = snprintf(out, outsize, "[IPv6:%s]", addr);
	} else {
		if (len >= sizeof(buf))
			goto bad;
		memcpy(buf, content, len);
		buf[len] = '\0';
		if (inet_pton(AF_INET, buf, bin) != 1 ||
		    inet_ntop(AF_INET, bin, addr, sizeof(addr)) == NULL)
			goto bad;
		n = snprintf(out, outsize, "[%s]", addr);
	}
	if (n < 0 || (size_t)n >= outsize)
		goto bad;
	return 0;
bad:
	mw_error_set(error_r,
	             "invalid domain literal (only [IPv4] and [IPv6:...] addresses are allowed)");
	return -1;
}

/* parse_literal - a domain literal (pos at '['): no white space or quoted-pairs inside */
static int parse_literal(struct addr_parser *p, char *out, size_t outsize)
{
	size_t start = p->pos++, b = p->pos;
	for (;;) {
		unsigned char c;
		if (p->pos >= p->len)
			return unterminated(p, "domain literal", start);
		c = (unsigned char)p->s[p->pos];
		if (c == ']')
			break;
		if ((c >= 33 && c <= 90) || (c >= 94 && c <= 126)) {
			p->pos++;
			continue;
		}
		return unexpected(p);
	}
	if (literal_canon(p->s + b, p->pos - b, out, outsize, p->error_r) < 0) {
		mw_error_prefix(p->error_r, "at offset %zu", start);
		return -1;
	}
	p->pos++;
	return 0;
}

/* normalize_at - normalise a domain found at offset off, errors naming that offset */
static int normalize_at(struct addr_parser *p, const char *d, size_t len, size_t off, char *out,
                        size_t outsize)
{
	if (mw_addr_domain_normalize(d, len, out, outsize, p->error_r) < 0) {
		mw_error_prefix(p->error_r, "domain at offset %zu", off);
		return -1;
	}
	return 0;
}

/* parse_header_domain - dot-atom / obs-domain / domain literal with CFWS around */
static int parse_header_domain(struct addr_parser *p, bool need_dot, char *out, size_t outsize)
{
	mw_str d;
	size_t start;
	int c, ret = -1;

	if (skip_cfws(p) < 0)
		return -1;
	start = p->pos;
	c = peek(p);
	if (c == '[') {
		if (parse_literal(p, out, outsize) < 0)
			return -1;
		return skip_cfws(p);
	}
	if (c < 0 || !is_atext((unsigned char)c)) {
		if (c == '.') {
			mw_error_set(p->error_r, "domain starts with '.' at offset %zu", p->pos);
			return -1;
		}
		if (c < 0 || c == ',' || c == ';' || c == '>') {
			mw_error_set(p->error_r, "address without domain at offset %zu", p->pos);
			return -1;
		}
		return unexpected(p);
	}
	mw_str_init(&d, MW_ADDR_HEADER_MAX);
	for (;;) {
		size_t b = p->pos;
		while (p->pos < p->len && is_atext((unsigned char)p->s[p->pos]))
			p->pos++;
		if (text_append(p, &d, p->s + b, p->pos - b) < 0)
			goto out;
		if (skip_cfws(p) < 0)
			goto out;
		if (peek(p) != '.')
			break;
		p->pos++;
		if (text_append(p, &d, ".", 1) < 0 || skip_cfws(p) < 0)
			goto out;
		c = peek(p);
		if (c == '.') {
			mw_error_set(p->error_r, "empty domain label at offset %zu", p->pos);
			goto out;
		}
		if (c < 0 || !is_atext((unsigned char)c))
			break; /* a trailing dot, removed by the normalisation */
	}
	if (normalize_at(p, d.buf, d.len, start, out, outsize) < 0)
		goto out;
	if (need_dot && out[0] != '[' && strchr(out, '.') == NULL) {
		mw_error_set(p->error_r, "domain without '.' at offset %zu", start);
		goto out;
	}
	ret = 0;
out:
	mw_str_free(&d);
	return ret;
}

/* make_addr - fill addr from a local part content and a canonical domain */
static int make_addr(struct addr_parser *p, const struct addr_words *w, size_t at_off,
                     const char *domain, struct mw_addr *a)
{
	int n;
	memset(a, 0, sizeof(*a));
	if (local_canon(w->text.buf, w->text.len, a->local, sizeof(a->local), p->error_r) < 0) {
		mw_error_prefix(p->error_r, "local part before offset %zu", at_off);
		return -1;
	}
	if (mw_strlcpy(a->domain, domain, sizeof(a->domain)) < 0)
		return -1;
	n = snprintf(a->addr, sizeof(a->addr), "%s@%s", a->local, a->domain);
	if (n < 0 || (size_t)n >= sizeof(a->addr)) {
		mw_error_set(p->error_r, "address longer than %d bytes", MW_ADDR_MAX);
		return -1;
	}
	return 0;
}

/* finish_addr_spec - words collected and pos at '@': check the local part, read domain */
static int finish_addr_spec(struct addr_parser *p, struct addr_words *w, struct mw_addr *a)
{
	char domain[MW_ADDR_DOMAIN_MAX + 1];
	size_t at_off = p->pos;
	if (w->nwords == 0) {
		mw_error_set(p->error_r, "address without local part at offset %zu", at_off);
		return -1;
	}
	if (w->problem != NULL) {
		mw_error_set(p->error_r, "%s at offset %zu", w->problem, w->problem_off);
		return -1;
	}
	p->pos++;
	if (parse_header_domain(p, true, domain, sizeof(domain)) < 0)
		return -1;
	return make_addr(p, w, at_off, domain, a);
}

/* list_add - append an address to the list, refusing more than MW_ADDR_LIST_MAX */
static int list_add(struct addr_parser *p, struct mw_addr_list *list, const struct mw_addr *a)
{
	if (list->count >= MW_ADDR_LIST_MAX) {
		mw_error_set(p->error_r, "more than %d addresses at offset %zu", MW_ADDR_LIST_MAX,
		             p->pos);
		return -1;
	}
	list->addrs = mw_realloc(list->addrs, (list->count + 1) * sizeof(*list->addrs));
	list->addrs[list->count++] = *a;
	return 0;
}

/* parse_obs_route - skip an obs-route "@a,@b:" at the start of an angle address */
static int parse_obs_route(struct addr_parser *p)
{
	char domain[MW_ADDR_DOMAIN_MAX + 1];
	bool any = false;
	for (;;) {
		if (skip_cfws(p) < 0)
			return -1;
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == '@') {
			p->pos++;
			if (parse_header_domain(p, false, domain, sizeof(domain)) < 0)
				return -1;
			any = true;
			continue;
		}
		break;
	}
	if (!any || peek(p) != ':') {
		if (p->pos < p->len && peek(p) != ':')
			return unexpected(p);
		mw_error_set(p->error_r, "malformed source route at offset %zu", p->pos);
		return -1;
	}
	p->pos++;
	return 0;
}

/* parse_angle - angle address (pos at '<'): [obs-route] addr-spec '>' [CFWS] */
static int parse_angle(struct addr_parser *p, struct mw_addr *a)
{
	struct addr_words w;
	size_t start = p->pos;
	int c, ret = -1;

	p->pos++;
	if (skip_cfws(p) < 0)
		return -1;
	c = peek(p);
	if (c == '>') {
		mw_error_set(p->error_r, "empty address '<>' at offset %zu", start);
		return -1;
	}
	if ((c == '@' || c == ',') && parse_obs_route(p) < 0)
		return -1;
	memset(&w, 0, sizeof(w));
	mw_str_init(&w.text, MW_ADDR_HEADER_MAX);
	if (collect_words(p, &w) < 0)
		goto out;
	c = peek(p);
	if (c != '@') {
		if (c < 0)
			mw_error_set(p->error_r, "unterminated '<' at offset %zu", start);
		else if (c == '>' && w.nwords > 0)
			mw_error_set(p->error_r, "address without domain at offset %zu", p->pos);
		else
			(void)unexpected(p);
		goto out;
	}
	if (finish_addr_spec(p, &w, a) < 0)
		goto out;
	c = peek(p);
	if (c != '>') {
		if (c < 0)
			mw_error_set(p->error_r, "unterminated '<' at offset %zu", start);
		else
			(void)unexpected(p);
		goto out;
	}
	p->pos++;
	ret = skip_cfws(p);
out:
	mw_str_free(&w.text);
	return ret;
}

static int parse_list(struct addr_parser *p, struct mw_addr_list *list, bool in_group);

/* parse_element - one list element: empty, mailbox, or (outside a group) a group */
static int parse_element(struct addr_parser *p, struct mw_addr_list *list, bool in_group)
{
	struct addr_words w;
	struct mw_addr a;
	size_t start;
	int c, ret = -1;

	if (skip_cfws(p) < 0)
		return -1;
	start = p->pos;
	c = peek(p);
	if (c < 0 || c == ',' || (in_group && c == ';'))
		return 0; /* empty element (obs-addr-list, obs-mbox-list) */
	memset(&w, 0, sizeof(w));
	mw_str_init(&w.text, MW_ADDR_HEADER_MAX);
	if (collect_words(p, &w) < 0)
		goto out;
	c = peek(p);
	if (c == '@') {
		if (finish_addr_spec(p, &w, &a) < 0 || list_add(p, list, &a) < 0)
			goto out;
	} else if (c == '<' || c == ':') {
		/* what came before is a display name: a phrase starts with a word */
		if (w.nwords + w.ndots > 0 && (w.nwords == 0 || p->s[start] == '.')) {
			mw_error_set(p->error_r, "display name starts with '.' at offset %zu",
			             start);
			goto out;
		}
		if (c == '<') {
			if (parse_angle(p, &a) < 0 || list_add(p, list, &a) < 0)
				goto out;
		} else {
			size_t gstart = p->pos;
			if (in_group) {
				mw_error_set(p->error_r, "group inside a group at offset %zu",
				             p->pos);
				goto out;
			}
			if (w.nwords == 0) {
				mw_error_set(p->error_r, "group without display name at offset %zu",
				             p->pos);
				goto out;
			}
			p->pos++;
			list->groups++;
			if (parse_list(p, list, true) < 0)
				goto out;
			if (p->pos >= p->len) {
				mw_error_set(p->error_r,
				             "unterminated group starting at offset %zu "
				             "(missing ';')",
				             gstart);
				goto out;
			}
			p->pos++; /* ';' */
			if (skip_cfws(p) < 0)
				goto out;
		}
	} else if (w.nwords > 0 && (c < 0 || c == ',' || (in_group && c == ';'))) {
		mw_error_set(p->error_r, "address without domain at offset %zu", p->pos);
		goto out;
	} else {
		(void)unexpected(p);
		goto out;
	}
	/* the element must end here */
	c = peek(p);
	if (c >= 0 && c != ',' && !(in_group && c == ';')) {
		(void)unexpected(p);
		goto out;
	}
	ret = 0;
out:
	mw_str_free(&w.text);
	return ret;
}

/* parse_list - elements separated by ','; in a group it stops before ';' */
static int parse_list(struct addr_parser *p, struct mw_addr_list *list, bool in_group)
{
	for (;;) {
		int c;
		if (parse_element(p, list, in_group) < 0)
			return -1;
		c = peek(p);
		if (c < 0 || (in_group && c == ';'))
			return 0;
		if (c != ',')
			return unexpected(p);
		p->pos++;
	}
}

/* mw_addr_header_name_is - NAME is WANT, blanks before the colon ignored */
bool mw_addr_header_name_is(const char *name, const char *want)
{
	size_t n = strlen(name), w = strlen(want);
	while (n > 0 && is_wsp((unsigned char)name[n - 1]))
		n--;
	return n == w && mw_ascii_strncasecmp(name, want, w) == 0;
}

/* mw_addr_list_free - free the addresses of a list */
void mw_addr_list_free(struct mw_addr_list *list)
{
	if (list == NULL)
		return;
	free(list->addrs);
	list->addrs = NULL;
	list->count = 0;
	list->groups = 0;
}

/* mw_addr_parse_header - parse an RFC 5322 address-list as a whole */
int mw_addr_parse_header(const char *s, size_t len, struct mw_addr_list *list_r, mw_error *error_r)
{
	struct addr_parser p;
	size_t i, bad;

	memset(list_r, 0, sizeof(*list_r));
	if (len > MW_ADDR_HEADER_MAX) {
		mw_error_set(error_r, "address header longer than %d bytes", MW_ADDR_HEADER_MAX);
		return -1;
	}
	if (len > 0 && s == NULL) {
		mw_error_set(error_r, "no input");
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (s[i] == '\0') {
			mw_error_set(error_r, "NUL byte at offset %zu", i);
			return -1;
		}
		if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n')) {
			mw_error_set(error_r, "bare CR at offset %zu", i);
			return -1;
		}
	}
	if (!mw_utf8_valid(s, len, &bad)) {
		mw_error_set(error_r, "invalid UTF-8 at offset %zu", bad);
		return -1;
	}
	p.s = s;
	p.len = len;
	p.pos = 0;
	p.error_r = error_r;
	if (parse_list(&p, list_r, false) < 0) {
		mw_addr_list_free(list_r);
		return -1;
	}
	return 0;
}

/* env_domain - envelope domain: literal or host name, up to '>' (or the end) */
static int env_domain(struct addr_parser *p, bool bracket, char *out, size_t outsize, bool in_route)
{
	size_t start = p->pos;
	if (peek(p) == '[')
		return parse_literal(p, out, outsize);
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (is_ldh(c) || c == '.' || c >= 0x80) {
			p->pos++;
			continue;
		}
		if ((bracket && c == '>' && !in_route) || (in_route && (c == ',' || c == ':')))
			break;
		return unexpected(p);
	}
	if (p->pos == start) {
		mw_error_set(p->error_r, "address without domain at offset %zu", start);
		return -1;
	}
	return normalize_at(p, p->s + start, p->pos - start, start, out, outsize);
}

/* env_local - RFC 5321 Dot-string or Quoted-string, content appended to text */
static int env_local(struct addr_parser *p, struct addr_words *w)
{
	size_t start = p->pos;
	if (peek(p) == '"') {
		if (parse_quoted(p, QUOTED_ENVELOPE, &w->text) < 0)
			return -1;
		w->nwords = 1;
		return 0;
	}
	for (;;) {
		size_t b = p->pos;
		while (p->pos < p->len && is_atext((unsigned char)p->s[p->pos]))
			p->pos++;
		if (p->pos == b) {
			if (peek(p) == '@' && b == start) {
				mw_error_set(p->error_r, "address without local part at offset %zu",
				             b);
				return -1;
			}
			if (peek(p) == '.' || peek(p) == '@') {
				mw_error_set(p->error_r,
				             "misplaced '.' in local part at offset %zu",
				             peek(p) == '.' ? b : b - 1);
				return -1;
			}
			return unexpected(p);
		}
		if (text_append(p, &w->text, p->s + b, p->pos - b) < 0)
			return -1;
		w->nwords++;
		if (peek(p) != '.')
			return 0;
		p->pos++;
		if (text_append(p, &w->text, ".", 1) < 0)
			return -1;
	}
}

/* mw_addr_parse_envelope - parse an RFC 5321 path */
int mw_addr_parse_envelope(const char *s, size_t len, bool allow_bare, struct mw_addr *addr_r,
                           mw_error *error_r)
{
	struct addr_parser p;
	struct addr_words w;
	char domain[MW_ADDR_DOMAIN_MAX + 1];
	bool bracket;
	size_t i, bad, at_off;
	int ret = -1;

	memset(addr_r, 0, sizeof(*addr_r));
	if (len > MW_ADDR_ENVELOPE_MAX) {
		mw_error_set(error_r, "envelope address longer than %d bytes",
		             MW_ADDR_ENVELOPE_MAX);
		return -1;
	}
	if (len > 0 && s == NULL) {
		mw_error_set(error_r, "no input");
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			if (c == '\0')
				mw_error_set(error_r, "NUL byte at offset %zu", i);
			else
				mw_error_set(error_r, "control character 0x%02x at offset %zu", c,
				             i);
			return -1;
		}
	}
	if (!mw_utf8_valid(s, len, &bad)) {
		mw_error_set(error_r, "invalid UTF-8 at offset %zu", bad);
		return -1;
	}
	if (len == 0) {
		if (allow_bare) {
			addr_r->null_path = true;
			return 0;
		}
		mw_error_set(error_r, "empty envelope address (expected '<...>')");
		return -1;
	}
	p.s = s;
	p.len = len;
	p.pos = 0;
	p.error_r = error_r;
	bracket = s[0] == '<';
	if (!bracket && !allow_bare) {
		mw_error_set(error_r, "missing '<' at offset 0");
		return -1;
	}
	if (bracket) {
		p.pos = 1;
		if (peek(&p) == '>') {
			if (len != 2) {
				mw_error_set(error_r, "unexpected text after '>' at offset 2");
				return -1;
			}
			addr_r->null_path = true;
			return 0;
		}
		if (peek(&p) == '@') {
			/* source route "@a,@b:" dropped (RFC 5321 4.1.2, appendix C) */
			for (;;) {
				if (peek(&p) != '@')
					return unexpected(&p);
				p.pos++;
				if (env_domain(&p, true, domain, sizeof(domain), true) < 0)
					return -1;
				if (peek(&p) == ':')
					break;
				if (peek(&p) != ',')
					return unexpected(&p);
				p.pos++;
			}
			p.pos++;
		}
	}
	memset(&w, 0, sizeof(w));
	mw_str_init(&w.text, MW_ADDR_ENVELOPE_MAX);
	if (env_local(&p, &w) < 0)
		goto out;
	at_off = p.pos;
	if (peek(&p) != '@') {
		if (p.pos >= len || peek(&p) == '>')
			mw_error_set(error_r, "address without domain at offset %zu", p.pos);
		else
			(void)unexpected(&p);
		goto out;
	}
	p.pos++;
	if (env_domain(&p, bracket, domain, sizeof(domain), false) < 0)
		goto out;
	if (bracket) {
		if (p.pos >= len) {
			mw_error_set(error_r, "unterminated '<' at offset 0");
			goto out;
		}
		if (peek(&p) != '>') {
			(void)unexpected(&p);
			goto out;
		}
		p.pos++;
	}
	if (p.pos != len) {
		mw_error_set(error_r, "unexpected text after the address at offset %zu", p.pos);
		goto out;
	}
	if (make_addr(&p, &w, at_off, domain, addr_r) < 0)
		goto out;
	ret = 0;
out:
	mw_str_free(&w.text);
	if (ret < 0)
		memset(addr_r, 0, sizeof(*addr_r));
	return ret;
}

/* ---- display text ------------------------------------------------------------------ */

#define MW_ADDR_DISPLAY_MAX (4 * MW_ADDR_HEADER_MAX) /* decoded text of one display part */

/* is_display_sep - a byte that ends an address-like token in shown text */
static bool is_display_sep(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || strchr("<>()[]\",;:\\@", c) != NULL;
}

/* display_listed - whether LOCAL@DOMAIN (as shown) is one of LIST's addresses */
static bool display_listed(const char *local, size_t llen, const char *domain, size_t dlen,
                           const struct mw_addr_list *list)
{
	char dom[MW_ADDR_DOMAIN_MAX + 1];
	size_t i;

	if (mw_addr_domain_normalize(domain, dlen, dom, sizeof(dom), NULL) < 0)
		return false;
	for (i = 0; i < list->count; i++) {
		const struct mw_addr *a = &list->addrs[i];
		if (strcmp(a->domain, dom) == 0 && strlen(a->local) == llen &&
		    mw_ascii_strncasecmp(a->local, local, llen) == 0)
			return true;
	}
	return false;
}

/* What display_judge reports to: the sender's addresses, and who decides on an address
   found (NULL: every one ends the scan with 1). */
struct display_scan {
	const struct mw_addr_list *list;
	mw_addr_display_fn *fn;
	void *ctx;
};

/* display_judge - one piece of shown text (raw, before decoding): 0, 1 or -1 */
static int display_judge(const char *raw, size_t rlen, const struct display_scan *ds,
                         mw_error *error_r)
{
	mw_str dec, t;
	size_t i;
	int ret = 0;

	if (rlen == 0)
		return 0;
	mw_str_init(&dec, MW_ADDR_DISPLAY_MAX);
	mw_str_init(&t, MW_ADDR_DISPLAY_MAX);
	if (mw_rfc2047_decode(raw, rlen, &dec, error_r) < 0) {
		mw_error_prefix(error_r, "display text");
		ret = -1;
		goto out;
	}
	/* the full-width and the small commercial at look like '@' */
	for (i = 0; i < dec.len; i++) {
		const unsigned char *u = (const unsigned char *)dec.buf + i;
		int r;
		if (i + 3 <= dec.len && ((u[0] == 0xef && u[1] == 0xbc && u[2] == 0xa0) ||
		                         (u[0] == 0xef && u[1] == 0xb9 && u[2] == 0xab))) {
			r = mw_str_appendc(&t, '@');
			i += 2;
		} else {
			r = mw_str_appendc(&t, (char)u[0]);
		}
		if (r < 0) {
			mw_error_set(error_r, "display text too long");
			ret = -1;
			goto out;
		}
	}
	for (i = 0; i < t.len; i++) {
		size_t l, lend, r, rs;
		if (t.buf[i] != '@')
			continue;
		l = i;
		while (l > 0 && is_wsp((unsigned char)t.buf[l - 1]))
			l--;
		lend = l;
		while (l > 0 && !is_display_sep((unsigned char)t.buf[l - 1]))
			l--;
		r = i + 1;
		while (r < t.len && is_wsp((unsigned char)t.buf[r]))
			r++;
		rs = r;
		while (r < t.len && !is_display_sep((unsigned char)t.buf[r]))
			r++;
		if (lend > l && r > rs &&
		    !display_listed(t.buf + l, lend - l, t.buf + rs, r - rs, ds->list) &&
		    (ds->fn == NULL || ds->fn(t.buf + l, lend - l, t.buf + rs, r - rs, ds->ctx))) {
			mw_error_set(error_r, "display text shows an address other than the "
			                      "sender's");
			ret = 1;
			goto out;
		}
	}
out:
	mw_str_free(&dec);
	mw_str_free(&t);
	return ret;
}

/* display_quoted - a quoted string at *pos ('"'), content (quoted-pairs undone, folds
   removed) appended to OUT when not NULL; -1 when unterminated */
static int display_quoted(const char *s, size_t len, size_t *pos, mw_str *out)
{
	size_t i = *pos + 1;
	for (; i < len && s[i] != '"'; i++) {
		if (s[i] == '\\' && i + 1 < len)
			i++;
		else if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (out != NULL && mw_str_appendc(out, s[i]) < 0)
			return -1;
	}
	if (i >= len)
		return -1;
	*pos = i + 1;
	return 0;
}

/* display_comment - a comment at *pos ('('): its text with the nested parentheses kept,
   quoted-pairs undone, folds removed; -1 when unterminated or too deep */
static int display_comment(const char *s, size_t len, size_t *pos, mw_str *out)
{
	size_t i = *pos;
	int depth = 0;
	for (; i < len; i++) {
		char c = s[i];
		if (c == '\\' && i + 1 < len) {
			c = s[++i];
		} else if (c == '(') {
			if (++depth > MW_ADDR_COMMENT_DEPTH_MAX)
				return -1;
			if (depth == 1)
				continue;
		} else if (c == ')') {
			if (--depth == 0) {
				*pos = i + 1;
				return 0;
			}
		} else if (c == '\r' || c == '\n') {
			continue;
		}
		if (mw_str_appendc(out, c) < 0)
			return -1;
	}
	return -1;
}

/* mw_addr_display_scan - see mw-addr.h */
int mw_addr_display_scan(const char *s, size_t len, const struct mw_addr_list *list,
                         mw_addr_display_fn *fn, void *ctx, mw_error *error_r)
{
	const struct display_scan ds = {list, fn, ctx};
	mw_str phrase, com;
	size_t pos = 0;
	bool angle = false, bare = false, space = false;
	int ret = 0;

	if (len > MW_ADDR_HEADER_MAX) {
		mw_error_set(error_r, "address header longer than %d bytes", MW_ADDR_HEADER_MAX);
		return -1;
	}
	mw_str_init(&phrase, MW_ADDR_HEADER_MAX);
	mw_str_init(&com, MW_ADDR_HEADER_MAX);
	while (ret == 0 && pos < len) {
		unsigned char c = (unsigned char)s[pos];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = true;
			pos++;
			continue;
		}
		if (c == '(') {
			mw_str_reset(&com);
			if (display_comment(s, len, &pos, &com) < 0) {
				mw_error_set(error_r, "comment at offset %zu does not parse", pos);
				ret = -1;
			} else {
				ret = display_judge(com.buf, com.len, &ds, error_r);
			}
			space = true;
			continue;
		}
		if (c == '"') {
			bool in_phrase = !angle && !bare;
			if (in_phrase && space && phrase.len > 0 &&
			    mw_str_appendc(&phrase, ' ') < 0)
				ret = -1;
			if (ret == 0 &&
			    display_quoted(s, len, &pos, in_phrase ? &phrase : NULL) < 0)
				ret = -1;
			if (ret < 0)
				mw_error_set(error_r, "quoted string at offset %zu does not parse",
				             pos);
			space = false;
			continue;
		}
		if (c == '[') { /* a domain literal: part of an address */
			while (pos < len && s[pos] != ']')
				pos += s[pos] == '\\' ? 2 : 1;
			pos++;
			space = false;
			continue;
		}
		pos++;
		if (angle) {
			if (c == '>')
				angle = false;
			continue;
		}
		if (c == '<' || c == ':') { /* what came before was a display or group name */
			ret = display_judge(phrase.buf, phrase.len, &ds, error_r);
			mw_str_reset(&phrase);
			angle = c == '<';
		} else if (c == ',' || c == ';') {
			mw_str_reset(&phrase); /* it was an addr-spec (or nothing) */
			bare = false;
		} else if (c == '@') {
			mw_str_reset(&phrase); /* a bare addr-spec: its words are the address */
			bare = true;
		} else if (!bare) {
			if ((space && phrase.len > 0 && mw_str_appendc(&phrase, ' ') < 0) ||
			    mw_str_appendc(&phrase, (char)c) < 0) {
				mw_error_set(error_r, "display text too long");
				ret = -1;
			}
		}
		space = false;
	}
	mw_str_free(&phrase);
	mw_str_free(&com);
	return ret;
}

/* mw_addr_display_check - see mw-addr.h */
int mw_addr_display_check(const char *s, size_t len, const struct mw_addr_list *list,
                          mw_error *error_r)
{
	return mw_addr_display_scan(s, len, list, NULL, NULL, error_r);
}
