/* mw-headers.c - print and parse the verdict headers (Authentication-Results, X-Mailwarden-Spam,
 * X-Mailwarden-Virus): the one implementation the milter (writer, and its test of which
 * headers to delete) and the Dovecot plugin (reader) share.
 *
 * Public: mw_auth_result_str, mw_auth_result_parse, mw_hdr_name_is_authres,
 * mw_hdr_name_is_ours, mw_hdr_authres_id, mw_hdr_authres_parse, mw_hdr_authres_print,
 * mw_hdr_authres_equal, mw_hdr_authres_pick, mw_hdr_authres_pick_summary,
 * mw_hdr_authres_summary, mw_hdr_spam_parse,
 * mw_hdr_spam_print, mw_hdr_spam_equal, mw_hdr_tests_has, mw_hdr_virus_parse,
 * mw_hdr_virus_print, mw_hdr_virus_equal.
 *
 * Parsers take (pointer, length) and refuse, never guess: a NUL, an 8-bit or control byte
 * (other than folding), an over-long value, an unbalanced comment or quote, or a shape the
 * printer would not produce makes the value malformed. For Authentication-Results the
 * authserv-id is read exactly once, here, by read_id(): the milter's "is this ours"
 * (mw_hdr_authres_id) and the plugin's reader (mw_hdr_authres_parse, mw_hdr_authres_pick)
 * cannot disagree about it. Each printer writes only what its parser reads back equal.
 *
 * Diagnostics: through error_r only; header text is never echoed into messages.
 */
#include "mw-build.h"
#include "mw-headers.h"

#include <stdio.h>
#include <string.h>

static const char *const result_words[] = {
    [MW_AUTH_NONE] = "none",           [MW_AUTH_PASS] = "pass",
    [MW_AUTH_FAIL] = "fail",           [MW_AUTH_SOFTFAIL] = "softfail",
    [MW_AUTH_NEUTRAL] = "neutral",     [MW_AUTH_POLICY] = "policy",
    [MW_AUTH_TEMPERROR] = "temperror", [MW_AUTH_PERMERROR] = "permerror",
};

/* mw_auth_result_str - the RFC 8601 word of a result */
const char *mw_auth_result_str(enum mw_auth_result r)
{
	if ((size_t)r < MW_N_ELEMENTS(result_words))
		return result_words[r];
	return "permerror";
}

/* mw_auth_result_parse - a result word to its value */
int mw_auth_result_parse(const char *word, size_t len, enum mw_auth_result *r_r)
{
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(result_words); i++) {
		if (strlen(result_words[i]) == len &&
		    mw_ascii_strncasecmp(word, result_words[i], len) == 0) {
			*r_r = (enum mw_auth_result)i;
			return 0;
		}
	}
	return -1;
}

/* ---- header names ------------------------------------------------------------------ */

/* name_is - NAME is WANT in any case, with blanks allowed before the colon */
static bool name_is(const char *name, const char *want, bool prefix)
{
	size_t n = strlen(want), i;
	if (name == NULL || mw_ascii_strncasecmp(name, want, n) != 0)
		return false;
	if (prefix)
		return true;
	for (i = n; name[i] == ' ' || name[i] == '\t'; i++)
		;
	return name[i] == '\0';
}

/* mw_hdr_name_is_authres - "Authentication-Results" */
bool mw_hdr_name_is_authres(const char *name)
{
	return name_is(name, "Authentication-Results", false);
}

/* mw_hdr_name_is_ours - "X-Mailwarden-*" */
bool mw_hdr_name_is_ours(const char *name)
{
	return name_is(name, "X-Mailwarden-", true);
}

/* ---- lexical helpers ---------------------------------------------------------------- */

struct scan {
	const char *p;
	size_t len, pos;
};

/* at - the byte at the position, 0 at the end */
static char at(const struct scan *sc)
{
	return sc->pos < sc->len ? sc->p[sc->pos] : '\0';
}

/* bytes_ok - only printable ASCII, blanks and line breaks; false for NUL, 8-bit, CTL */
static bool bytes_ok(const char *p, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!(c == '\t' || c == '\r' || c == '\n' || (c >= 0x20 && c < 0x7f)))
			return false;
	}
	return true;
}

/* fws - one piece of folding white space at the position; 1 consumed, 0 none, -1 a line
   break not followed by a blank (a header value never holds one) */
static int fws(struct scan *sc)
{
	char c = at(sc);
	if (c == ' ' || c == '\t') {
		sc->pos++;
		return 1;
	}
	if (c == '\r' || c == '\n') {
		size_t q = sc->pos + 1;
		if (c == '\r') {
			if (q >= sc->len || sc->p[q] != '\n')
				return -1;
			q++;
		}
		if (q >= sc->len || (sc->p[q] != ' ' && sc->p[q] != '\t'))
			return -1;
		sc->pos = q + 1;
		return 1;
	}
	return 0;
}

/* comment - a (nested) comment at '('; its text into text_r when it is flat printable ASCII
   that fits (else text_r gets ""); -1 when unbalanced or broken */
static int comment(struct scan *sc, char *text_r, size_t size)
{
	size_t start = sc->pos + 1, end;
	int depth = 0;
	bool simple = true;
	do {
		char c = at(sc);
		if (sc->pos >= sc->len)
			return -1;
		if (c == '\\') {
			if (sc->pos + 1 >= sc->len)
				return -1;
			simple = false;
			sc->pos += 2;
			continue;
		}
		if (c == '\r' || c == '\n') {
			if (fws(sc) < 0)
				return -1;
			simple = false;
			continue;
		}
		if (c == '(') {
			depth++;
			if (depth > 1)
				simple = false;
		} else if (c == ')') {
			depth--;
		} else if (c == '\t') {
			simple = false;
		}
		sc->pos++;
	} while (depth > 0);
	end = sc->pos - 1;
	if (text_r != NULL) {
		text_r[0] = '\0';
		if (simple && end > start && end - start < size) {
			memcpy(text_r, sc->p + start, end - start);
			text_r[end - start] = '\0';
		}
	}
	return 0;
}

/* cfws - skip blanks, folding and comments; the first comment's text into first_r when it
   comes before any other comment (first_r may be NULL); -1 when broken */
static int cfws(struct scan *sc, char *first_r, size_t size)
{
	bool seen = false;
	if (first_r != NULL)
		first_r[0] = '\0';
	for (;;) {
		int r = fws(sc);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (at(sc) != '(')
			return 0;
		if (comment(sc, seen ? NULL : first_r, size) < 0)
			return -1;
		seen = true;
	}
}

/* is_tspecial - RFC 2045 tspecials */
static bool is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* token - RFC 2045 token into out; its length, 0 when none, -1 when it does not fit */
static int token(struct scan *sc, char *out, size_t size)
{
	size_t n = 0;
	for (;;) {
		char c = at(sc);
		if (sc->pos >= sc->len || c <= 0x20 || c >= 0x7f || is_tspecial(c))
			break;
		if (n + 1 >= size)
			return -1;
		out[n++] = c;
		sc->pos++;
	}
	out[n] = '\0';
	return (int)n;
}

/* quoted - a quoted-string at '"' into out (quoted-pairs resolved, folding unfolded); its
   length or -1 */
static int quoted(struct scan *sc, char *out, size_t size)
{
	size_t n = 0;
	sc->pos++; /* '"' */
	for (;;) {
		char c = at(sc);
		if (sc->pos >= sc->len)
			return -1;
		if (c == '"') {
			sc->pos++;
			break;
		}
		if (c == '\r' || c == '\n') {
			if (fws(sc) < 0)
				return -1;
			c = sc->p[sc->pos - 1]; /* the blank that folding leaves */
		} else if (c == '\\') {
			if (sc->pos + 1 >= sc->len)
				return -1;
			c = sc->p[sc->pos + 1];
			if (c == '\r' || c == '\n')
				return -1;
			sc->pos += 2;
		} else {
			sc->pos++;
		}
		if (n + 1 >= size)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return (int)n;
}

/* keyword - an RFC 8601 Keyword (letters, digits, '-', '_') into out, lower-cased; its length,
   0 when none, -1 when too long */
static int keyword(struct scan *sc, char *out, size_t size)
{
	size_t n = 0;
	for (;;) {
		char c = at(sc);
		if (sc->pos >= sc->len || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                            (c >= '0' && c <= '9') || c == '-' || c == '_'))
			break;
		if (n + 1 >= size)
			return -1;
		out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		sc->pos++;
	}
	out[n] = '\0';
	return (int)n;
}

/* clean_host - a host-name-like id: [A-Za-z0-9._-], no empty label, at most MW_HDR_ID_MAX */
static bool clean_host(const char *s)
{
	size_t i, n = strlen(s);
	if (n == 0 || n > MW_HDR_ID_MAX || s[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
		if (c == '.' && i + 1 < n && s[i + 1] == '.')
			return false;
	}
	return true;
}

/* id_eq - the same id ignoring case and trailing dots */
static bool id_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	while (la > 0 && a[la - 1] == '.')
		la--;
	while (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && la > 0 && mw_ascii_strncasecmp(a, b, la) == 0;
}

/* read_id - "[CFWS] authserv-id [CFWS [version CFWS]] ;": the id into id (unquoted), the
   scanner after the ';'. The only reader of the authserv-id. */
static int read_id(struct scan *sc, char *id, size_t size, mw_error *error_r)
{
	int n;
	if (sc->len > MW_HDR_VALUE_MAX) {
		mw_error_set(error_r, "header is longer than %d bytes", MW_HDR_VALUE_MAX);
		return -1;
	}
	if (!bytes_ok(sc->p, sc->len)) {
		mw_error_set(error_r, "header holds a NUL, 8-bit or control byte");
		return -1;
	}
	if (cfws(sc, NULL, 0) < 0) {
		mw_error_set(error_r, "broken comment or folding before the authserv-id");
		return -1;
	}
	n = at(sc) == '"' ? quoted(sc, id, size) : token(sc, id, size);
	if (n <= 0) {
		mw_error_set(error_r, "no authserv-id, or an unclosed or over-long one");
		return -1;
	}
	if (cfws(sc, NULL, 0) < 0) {
		mw_error_set(error_r, "broken comment or folding after the authserv-id");
		return -1;
	}
	if (at(sc) >= '0' && at(sc) <= '9') {
		size_t start = sc->pos;
		while (at(sc) >= '0' && at(sc) <= '9')
			sc->pos++;
		/* a version needs blanks or a comment before it: "id1;" is no id "id" */
		if (start == 0 ||
		    (sc->p[start - 1] != ' ' && sc->p[start - 1] != '\t' &&
		     sc->p[start - 1] != ')' && sc->p[start - 1] != '\n') ||
		    cfws(sc, NULL, 0) < 0) {
			mw_error_set(error_r, "malformed authserv-id or version");
			return -1;
		}
	}
	if (at(sc) != ';') {
		mw_error_set(error_r, "authserv-id not followed by ';'");
		return -1;
	}
	sc->pos++;
	return 0;
}

/* mw_hdr_authres_id - ours, someone else's, or cannot tell */
enum mw_hdr_id_class mw_hdr_authres_id(const char *value, size_t len, const char *ours)
{
	struct scan sc = {value, len, 0};
	char id[MW_HDR_ID_MAX + 2];
	if (ours == NULL || *ours == '\0' || value == NULL)
		return MW_HDR_ID_UNKNOWN;
	if (read_id(&sc, id, sizeof(id), NULL) < 0)
		return MW_HDR_ID_UNKNOWN;
	if (id_eq(id, ours))
		return MW_HDR_ID_OURS;
	return clean_host(id) ? MW_HDR_ID_FOREIGN : MW_HDR_ID_UNKNOWN;
}

/* pvalue_plain_char - a byte of an unquoted property value */
static bool pvalue_plain_char(char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != ';' && c != '\\' && c != '"';
}

/* pvalue - a property value: a quoted-string or a run of plain bytes; its length or -1 */
static int pvalue(struct scan *sc, char *out, size_t size)
{
	size_t n = 0;
	if (at(sc) == '"') {
		int q = quoted(sc, out, size);
		if (q < 0 || (sc->pos < sc->len && pvalue_plain_char(at(sc))))
			return -1; /* "a"@b: not what we print */
		return q;
	}
	while (sc->pos < sc->len && pvalue_plain_char(at(sc))) {
		if (n + 1 >= size)
			return -1;
		out[n++] = sc->p[sc->pos++];
	}
	out[n] = '\0';
	return n > 0 ? (int)n : -1;
}

/* at_end_or_semi - the end of the value or a ';' */
static bool at_end_or_semi(const struct scan *sc)
{
	return sc->pos >= sc->len || at(sc) == ';';
}

/* parse_result - "method[/version] = result [comment] [reason=v] [ptype.property=v ...]";
   CLEAR: zero all of r first (a result kept), else only what a result always sets (a scratch
   result read for its method and result: every field read is written before) */
static int parse_result(struct scan *sc, struct mw_hdr_ar_result *r, bool clear, mw_error *error_r)
{
	char word[MW_HDR_AR_WORD_MAX + 1], prop[MW_HDR_AR_WORD_MAX + 1];
	char scratch[MW_HDR_AR_PVALUE_MAX + 1];
	int n;

	if (clear) {
		memset(r, 0, sizeof(*r));
	} else {
		r->method[0] = '\0';
		r->comment[0] = '\0';
		r->result = MW_AUTH_NONE;
		r->nprops = 0;
	}
	if (cfws(sc, NULL, 0) < 0 || keyword(sc, r->method, sizeof(r->method)) <= 0 ||
	    cfws(sc, NULL, 0) < 0) {
		mw_error_set(error_r, "malformed method");
		return -1;
	}
	if (at(sc) == '/') {
		sc->pos++;
		if (cfws(sc, NULL, 0) < 0 || !(at(sc) >= '0' && at(sc) <= '9')) {
			mw_error_set(error_r, "malformed method version");
			return -1;
		}
		while (at(sc) >= '0' && at(sc) <= '9')
			sc->pos++;
		if (cfws(sc, NULL, 0) < 0) {
			mw_error_set(error_r, "malformed method version");
			return -1;
		}
	}
	if (at(sc) != '=') {
		mw_error_set(error_r, "result without '='");
		return -1;
	}
	sc->pos++;
	if (cfws(sc, NULL, 0) < 0 || (n = keyword(sc, word, sizeof(word))) <= 0 ||
	    mw_auth_result_parse(word, (size_t)n, &r->result) < 0) {
		mw_error_set(error_r, "unknown or malformed result");
		return -1;
	}
	if (!at_end_or_semi(sc) && at(sc) != ' ' && at(sc) != '\t' && at(sc) != '(' &&
	    at(sc) != '\r' && at(sc) != '\n') {
		mw_error_set(error_r, "unknown or malformed result");
		return -1;
	}
	if (cfws(sc, r->comment, sizeof(r->comment)) < 0) {
		mw_error_set(error_r, "broken comment or folding");
		return -1;
	}
	while (!at_end_or_semi(sc)) {
		size_t before = sc->pos;
		if ((n = keyword(sc, word, sizeof(word))) <= 0 || cfws(sc, NULL, 0) < 0) {
			mw_error_set(error_r, "malformed property");
			return -1;
		}
		if (at(sc) == '=' && strcmp(word, "reason") == 0) {
			sc->pos++;
			if (cfws(sc, NULL, 0) < 0 ||
			    (at(sc) == '"' ? quoted(sc, scratch, sizeof(scratch))
			                   : token(sc, scratch, sizeof(scratch))) <= 0) {
				mw_error_set(error_r, "malformed reason");
				return -1;
			}
		} else {
			struct mw_hdr_ar_prop *p;
			if (at(sc) != '.') {
				mw_error_set(error_r, "malformed property");
				return -1;
			}
			sc->pos++;
			if (cfws(sc, NULL, 0) < 0 || keyword(sc, prop, sizeof(prop)) <= 0 ||
			    cfws(sc, NULL, 0) < 0 || at(sc) != '=') {
				mw_error_set(error_r, "malformed property");
				return -1;
			}
			sc->pos++;
			if (r->nprops >= MW_HDR_AR_PROPS) {
				mw_error_set(error_r, "more than %d properties in a result",
				             MW_HDR_AR_PROPS);
				return -1;
			}
			p = &r->props[r->nprops];
			{
				size_t wl = strlen(word), pl = strlen(prop);
				if (wl + 1 + pl >= sizeof(p->name)) {
					mw_error_set(error_r, "property name too long");
					return -1;
				}
				memcpy(p->name, word, wl);
				p->name[wl] = '.';
				memcpy(p->name + wl + 1, prop, pl + 1);
			}
			if (cfws(sc, NULL, 0) < 0 || pvalue(sc, p->value, sizeof(p->value)) < 0) {
				mw_error_set(error_r, "malformed or over-long property value");
				return -1;
			}
			r->nprops++;
		}
		if (!at_end_or_semi(sc) && at(sc) != ' ' && at(sc) != '\t' && at(sc) != '(' &&
		    at(sc) != '\r' && at(sc) != '\n') {
			mw_error_set(error_r, "malformed property");
			return -1;
		}
		if (cfws(sc, NULL, 0) < 0 || sc->pos == before) {
			mw_error_set(error_r, "malformed property");
			return -1;
		}
	}
	return 0;
}

/* summary_add - one result into the summary (what mw_hdr_authres_summary counts) */
static void summary_add(const struct mw_hdr_ar_result *r, struct mw_hdr_auth_summary *s)
{
	bool pass = r->result == MW_AUTH_PASS, fail = r->result == MW_AUTH_FAIL;
	if (strcmp(r->method, "dkim") == 0) {
		s->dkim_pass |= pass;
		s->dkim_fail |= fail || r->result == MW_AUTH_PERMERROR;
	} else if (strcmp(r->method, "dmarc") == 0) {
		s->dmarc_pass |= pass;
		s->dmarc_fail |= fail;
	} else if (strcmp(r->method, "spf") == 0) {
		s->spf_pass |= pass;
		s->spf_fail |= fail;
	}
}

/* authres_parse - the whole header, strictly: into *ar_r, or (ar_r NULL) only into the
   summary *s_r, each result read into one scratch result; the same grammar and limits
   either way, so both accept and refuse the same values */
static int authres_parse(const char *value, size_t len, struct mw_hdr_authres *ar_r,
                         struct mw_hdr_auth_summary *s_r, mw_error *error_r)
{
	struct scan sc = {value, len, 0};
	struct mw_hdr_ar_result scratch;
	char id[MW_HDR_ID_MAX + 2], word[8];
	size_t mark, count = 0;

	if (ar_r != NULL)
		memset(ar_r, 0, sizeof(*ar_r));
	if (s_r != NULL)
		memset(s_r, 0, sizeof(*s_r));
	if (value == NULL) {
		mw_error_set(error_r, "header is missing");
		return -1;
	}
	if (read_id(&sc, id, sizeof(id), error_r) < 0)
		return -1;
	if (!clean_host(id)) {
		mw_error_set(error_r, "authserv-id is not a host name");
		return -1;
	}
	if (ar_r != NULL)
		memcpy(ar_r->authserv_id, id, strlen(id) + 1);
	/* "; none" */
	mark = sc.pos;
	if (cfws(&sc, NULL, 0) == 0 && keyword(&sc, word, sizeof(word)) == 4 &&
	    strcmp(word, "none") == 0 && cfws(&sc, NULL, 0) == 0 && sc.pos == sc.len)
		return 0;
	sc.pos = mark;
	for (;;) {
		struct mw_hdr_ar_result *r = ar_r != NULL ? &ar_r->results[count] : &scratch;
		if (count >= MW_HDR_AR_RESULTS) {
			mw_error_set(error_r, "more than %d results", MW_HDR_AR_RESULTS);
			break;
		}
		if (parse_result(&sc, r, ar_r != NULL, error_r) < 0)
			break;
		if (s_r != NULL && ar_r == NULL)
			summary_add(r, s_r);
		count++;
		if (ar_r != NULL)
			ar_r->count = count;
		if (sc.pos >= sc.len)
			return 0;
		sc.pos++; /* ';' */
	}
	if (ar_r != NULL)
		memset(ar_r, 0, sizeof(*ar_r));
	if (s_r != NULL)
		memset(s_r, 0, sizeof(*s_r));
	return -1;
}

/* mw_hdr_authres_parse - the whole header, strictly */
int mw_hdr_authres_parse(const char *value, size_t len, struct mw_hdr_authres *ar_r,
                         mw_error *error_r)
{
	return authres_parse(value, len, ar_r, NULL, error_r);
}

/* print_safe - printable ASCII (blanks allowed only where quoting keeps them) */
static bool print_safe(const char *s, bool blank_ok)
{
	for (; *s != '\0'; s++)
		if (!((*s > 0x20 && *s < 0x7f) || (blank_ok && (*s == ' ' || *s == '\t'))))
			return false;
	return true;
}

/* keyword_ok - what keyword() reads back: non-empty [a-z0-9_-] (lower case) */
static bool keyword_ok(const char *s, size_t n)
{
	size_t i;
	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '_'))
			return false;
	return true;
}

/* print_prop - " ptype.property=value", quoted when the value is not plain */
static int print_prop(mw_str *out, const struct mw_hdr_ar_prop *p)
{
	const char *dot = strchr(p->name, '.'), *s;
	bool plain = p->value[0] != '\0';
	if (dot == NULL || !keyword_ok(p->name, (size_t)(dot - p->name)) ||
	    !keyword_ok(dot + 1, strlen(dot + 1)) || !print_safe(p->value, true))
		return -1;
	for (s = p->value; *s != '\0'; s++)
		if (!pvalue_plain_char(*s))
			plain = false;
	if (plain)
		return mw_str_appendf(out, " %s=%s", p->name, p->value);
	if (mw_str_appendf(out, " %s=\"", p->name) < 0)
		return -1;
	for (s = p->value; *s != '\0'; s++)
		if (((*s == '"' || *s == '\\') && mw_str_appendc(out, '\\') < 0) ||
		    mw_str_appendc(out, *s) < 0)
			return -1;
	return mw_str_appendc(out, '"');
}

/* fold_add - append PIECE (which starts with one blank) to out, breaking the line before it
   ("\n\t", the folding the milter protocol carries) when it would pass MW_HDR_FOLD_AT
   columns; *col is the current column. A header line never reaches 998 octets this way:
   no piece is longer than a property value plus its name. */
static int fold_add(mw_str *out, size_t *col, const char *piece, size_t len)
{
	if (*col > 1 && *col + len > MW_HDR_FOLD_AT) {
		if (mw_str_appends(out, "\n\t") < 0 || mw_str_append(out, piece + 1, len - 1) < 0)
			return -1;
		*col = 8 + len - 1;
		return 0;
	}
	*col += len;
	return mw_str_append(out, piece, len);
}

/* mw_hdr_authres_print - the value the milter adds, folded into lines of at most about
   MW_HDR_FOLD_AT columns */
int mw_hdr_authres_print(const struct mw_hdr_authres *ar, mw_str *out, mw_error *error_r)
{
	size_t mark = out->len, i, j, col = sizeof("Authentication-Results: ") - 1;
	mw_str piece;
	int ret = 0;

	if (!clean_host(ar->authserv_id)) {
		mw_error_set(error_r, "authserv-id must be a host name");
		return -1;
	}
	if (ar->count > MW_HDR_AR_RESULTS) {
		mw_error_set(error_r, "too many results");
		return -1;
	}
	ret |= mw_str_appendf(out, "%s;", ar->authserv_id);
	col += strlen(ar->authserv_id) + 1;
	if (ar->count == 0)
		ret |= fold_add(out, &col, " none", 5);
	mw_str_init(&piece, 0);
	for (i = 0; i < ar->count && ret == 0; i++) {
		const struct mw_hdr_ar_result *r = &ar->results[i];
		if (!keyword_ok(r->method, strlen(r->method)) || r->nprops > MW_HDR_AR_PROPS ||
		    (size_t)r->result >= MW_N_ELEMENTS(result_words) ||
		    !print_safe(r->comment, true) || strpbrk(r->comment, "()\\\t") != NULL) {
			ret = -1;
			break;
		}
		if (i > 0)
			ret |= mw_str_appendc(out, ';');
		col++;
		mw_str_reset(&piece);
		ret |= mw_str_appendf(&piece, " %s=%s", r->method, mw_auth_result_str(r->result));
		if (r->comment[0] != '\0')
			ret |= mw_str_appendf(&piece, " (%s)", r->comment);
		ret |= fold_add(out, &col, piece.buf, piece.len);
		for (j = 0; j < r->nprops && ret == 0; j++) {
			mw_str_reset(&piece);
			ret |= print_prop(&piece, &r->props[j]);
			ret |= fold_add(out, &col, piece.buf, piece.len);
		}
	}
	mw_str_free(&piece);
	if (ret != 0 || out->len - mark > MW_HDR_VALUE_MAX) {
		out->len = mark;
		if (out->buf != NULL)
			out->buf[mark] = '\0';
		mw_error_set(error_r, "Authentication-Results: unsafe value or too long");
		return -1;
	}
	return 0;
}

/* mw_hdr_authres_equal - same id (any case) and the same results in the same order */
bool mw_hdr_authres_equal(const struct mw_hdr_authres *a, const struct mw_hdr_authres *b)
{
	size_t i, j;
	if (mw_ascii_strcasecmp(a->authserv_id, b->authserv_id) != 0 || a->count != b->count)
		return false;
	for (i = 0; i < a->count; i++) {
		const struct mw_hdr_ar_result *x = &a->results[i], *y = &b->results[i];
		if (mw_ascii_strcasecmp(x->method, y->method) != 0 || x->result != y->result ||
		    strcmp(x->comment, y->comment) != 0 || x->nprops != y->nprops)
			return false;
		for (j = 0; j < x->nprops; j++)
			if (mw_ascii_strcasecmp(x->props[j].name, y->props[j].name) != 0 ||
			    strcmp(x->props[j].value, y->props[j].value) != 0)
				return false;
	}
	return true;
}

/* authres_pick - whether the milter wrote one value we may read: 1 (values[0], the first
   value, the only claimant), 0 when none claims our id, -1 when ambiguous */
static int authres_pick(const char *const *values, size_t n, const char *ours, mw_error *error_r)
{
	enum mw_hdr_id_class first = MW_HDR_ID_UNKNOWN;
	size_t i, claimants = 0;
	if (ours == NULL || *ours == '\0')
		return 0;
	for (i = 0; i < n; i++) {
		enum mw_hdr_id_class c =
		    values[i] == NULL
		        ? MW_HDR_ID_UNKNOWN
		        : mw_hdr_authres_id(values[i], strnlen(values[i], MW_HDR_VALUE_MAX + 1),
		                            ours);
		if (i == 0)
			first = c;
		if (c != MW_HDR_ID_FOREIGN)
			claimants++;
	}
	if (claimants == 0)
		return 0;
	if (claimants > 1) {
		mw_error_set(error_r, "%zu headers claim our authserv-id: none believed",
		             claimants);
		return -1;
	}
	if (first != MW_HDR_ID_OURS) {
		mw_error_set(error_r, "the header claiming our authserv-id is not the first one "
		                      "or does not parse: not believed");
		return -1;
	}
	return 1;
}

/* mw_hdr_authres_pick - the one header the milter wrote, or nothing */
int mw_hdr_authres_pick(const char *const *values, size_t n, const char *ours,
                        struct mw_hdr_authres *ar_r, mw_error *error_r)
{
	int ret;
	memset(ar_r, 0, sizeof(*ar_r));
	ret = authres_pick(values, n, ours, error_r);
	if (ret <= 0)
		return ret;
	if (authres_parse(values[0], strnlen(values[0], MW_HDR_VALUE_MAX + 1), ar_r, NULL,
	                  error_r) < 0) {
		mw_error_prefix(error_r, "our header is malformed: ");
		return -1;
	}
	return 1;
}

/* mw_hdr_authres_pick_summary - mw_hdr_authres_pick then mw_hdr_authres_summary, without
   keeping the results */
int mw_hdr_authres_pick_summary(const char *const *values, size_t n, const char *ours,
                                struct mw_hdr_auth_summary *s_r, mw_error *error_r)
{
	int ret;
	memset(s_r, 0, sizeof(*s_r));
	ret = authres_pick(values, n, ours, error_r);
	if (ret <= 0)
		return ret;
	if (authres_parse(values[0], strnlen(values[0], MW_HDR_VALUE_MAX + 1), NULL, s_r, error_r) <
	    0) {
		mw_error_prefix(error_r, "our header is malformed: ");
		return -1;
	}
	return 1;
}

/* mw_hdr_authres_summary - which kinds of result the header holds */
void mw_hdr_authres_summary(const struct mw_hdr_authres *ar, struct mw_hdr_auth_summary *s_r)
{
	size_t i;
	memset(s_r, 0, sizeof(*s_r));
	for (i = 0; i < ar->count; i++)
		summary_add(&ar->results[i], s_r);
}

/* ---- X-Mailwarden-Spam / -Virus --------------------------------------------------------- */

/* check_value - present, bounded, only printable ASCII and folding blanks */
static int check_value(const char *value, size_t len, mw_error *error_r)
{
	if (value == NULL) {
		mw_error_set(error_r, "header is missing");
		return -1;
	}
	if (len > MW_HDR_VALUE_MAX) {
		mw_error_set(error_r, "header is longer than %d bytes", MW_HDR_VALUE_MAX);
		return -1;
	}
	if (!bytes_ok(value, len)) {
		mw_error_set(error_r, "header holds a NUL, 8-bit or control byte");
		return -1;
	}
	return 0;
}

/* is_blank - blank or line break (folding is checked by bytes_ok's caller's shape) */
static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* trim - a slice without surrounding blanks and line breaks */
static mw_slice trim(const char *p, size_t len)
{
	while (len > 0 && is_blank(*p)) {
		p++;
		len--;
	}
	while (len > 0 && is_blank(p[len - 1]))
		len--;
	return (mw_slice){p, len};
}

/* next_part - the next ';'-separated part (trimmed); false at the end */
static bool next_part(mw_slice *rest, mw_slice *part_r)
{
	const char *semi;
	if (rest->ptr == NULL)
		return false;
	semi = memchr(rest->ptr, ';', rest->len);
	if (semi == NULL) {
		*part_r = trim(rest->ptr, rest->len);
		rest->ptr = NULL;
		rest->len = 0;
	} else {
		*part_r = trim(rest->ptr, (size_t)(semi - rest->ptr));
		rest->len -= (size_t)(semi + 1 - rest->ptr);
		rest->ptr = semi + 1;
	}
	return true;
}

/* is_test_char - a character of a test name */
static bool is_test_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* tests_ok - "", or names of test characters separated by single commas */
static bool tests_ok(const char *s, size_t n)
{
	size_t i;
	if (n == 0)
		return true;
	if (n > MW_HDR_TESTS_MAX || s[0] == ',' || s[n - 1] == ',')
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == ',') {
			if (s[i + 1] == ',')
				return false;
		} else if (!is_test_char(s[i])) {
			return false;
		}
	}
	return true;
}

/* unfold_tests - copy a tests list into out (MW_HDR_TESTS_MAX + 1 bytes) without the
   folding the printer puts after a comma; blanks anywhere else, or a list tests_ok
   refuses, is -1 */
static int unfold_tests(mw_slice val, char *out)
{
	size_t i, n = 0;
	for (i = 0; i < val.len; i++) {
		if (is_blank(val.ptr[i])) {
			if (n == 0 || out[n - 1] != ',')
				return -1;
			continue;
		}
		if (n == MW_HDR_TESTS_MAX)
			return -1;
		out[n++] = val.ptr[i];
	}
	out[n] = '\0';
	return tests_ok(out, n) ? 0 : -1;
}

/* parse_decimal - "-12.5" into hundredths, bounded */
static int parse_decimal(mw_slice s, long *v_r)
{
	size_t i = 0, digits = 0, frac = 0;
	long v = 0;
	bool neg = false;
	if (s.len > 0 && s.ptr[0] == '-') {
		neg = true;
		i++;
	}
	for (; i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9'; i++) {
		if (++digits > 7)
			return -1;
		v = v * 10 + (s.ptr[i] - '0');
	}
	if (digits == 0)
		return -1;
	v *= 100;
	if (i < s.len && s.ptr[i] == '.') {
		i++;
		for (; i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9'; i++) {
			if (++frac > 2)
				return -1;
			v += (s.ptr[i] - '0') * (frac == 1 ? 10 : 1);
		}
		if (frac == 0)
			return -1;
	}
	if (i != s.len || v > MW_HDR_SCORE_MAX)
		return -1;
	*v_r = neg ? -v : v;
	return 0;
}

/* mw_hdr_spam_parse - "yes|no; score=S; required=R; tests=A,B" */
int mw_hdr_spam_parse(const char *value, size_t len, struct mw_hdr_spam *v_r, mw_error *error_r)
{
	mw_slice rest = {value, len}, part;
	bool seen_score = false, seen_required = false, seen_tests = false;

	memset(v_r, 0, sizeof(*v_r));
	if (check_value(value, len, error_r) < 0)
		return -1;
	if (!next_part(&rest, &part))
		return -1;
	if (mw_slice_ieq(part, "yes"))
		v_r->spam = true;
	else if (!mw_slice_ieq(part, "no")) {
		mw_error_set(error_r, "spam verdict is neither yes nor no");
		return -1;
	}
	while (next_part(&rest, &part)) {
		const char *eq;
		mw_slice name, val;
		if (part.len == 0)
			continue;
		eq = memchr(part.ptr, '=', part.len);
		if (eq == NULL) {
			mw_error_set(error_r, "parameter without '='");
			goto bad;
		}
		name = trim(part.ptr, (size_t)(eq - part.ptr));
		val = trim(eq + 1, part.len - (size_t)(eq + 1 - part.ptr));
		if (mw_slice_ieq(name, "score") || mw_slice_ieq(name, "required")) {
			bool score = mw_slice_ieq(name, "score");
			bool *seen = score ? &seen_score : &seen_required;
			if (*seen || parse_decimal(val, score ? &v_r->score : &v_r->required) < 0) {
				mw_error_set(error_r, "%s is repeated or not a bounded decimal",
				             score ? "score" : "required");
				goto bad;
			}
			*seen = true;
		} else if (mw_slice_ieq(name, "tests")) {
			if (seen_tests || unfold_tests(val, v_r->tests) < 0) {
				mw_error_set(error_r,
				             "tests is repeated, longer than %d bytes or "
				             "holds a character outside A-Z a-z 0-9 _ - . ,",
				             MW_HDR_TESTS_MAX);
				goto bad;
			}
			seen_tests = true;
		}
		/* unknown parameters: ignored (a later writer may add some) */
	}
	return 0;
bad:
	memset(v_r, 0, sizeof(*v_r));
	return -1;
}

/* print_decimal - hundredths as "-12.50" */
static int print_decimal(mw_str *out, const char *name, long v)
{
	long a = v < 0 ? -v : v;
	return mw_str_appendf(out, "; %s=%s%ld.%02ld", name, v < 0 ? "-" : "", a / 100, a % 100);
}

/* print_tests - append the tests list, breaking the line ("\n\t") after a comma before a
   name (or before the first) that would pass MW_HDR_FOLD_AT columns, so a long list never makes a
   header line longer than RFC 5322 allows; start is where the header value began in out */
static int print_tests(mw_str *out, size_t start, const char *tests, size_t n)
{
	size_t col = sizeof("X-Mailwarden-Spam: ") - 1 + (out->len - start), i = 0, len;
	while (i < n) {
		const char *comma = memchr(tests + i, ',', n - i);
		len = (comma != NULL ? (size_t)(comma - tests) + 1 : n) - i;
		if (col > 8 && col + len > MW_HDR_FOLD_AT) {
			if (mw_str_appends(out, "\n\t") < 0)
				return -1;
			col = 8;
		}
		if (mw_str_append(out, tests + i, len) < 0)
			return -1;
		col += len;
		i += len;
	}
	return 0;
}

/* mw_hdr_spam_print - the X-Mailwarden-Spam value, folded like Authentication-Results */
int mw_hdr_spam_print(const struct mw_hdr_spam *v, mw_str *out, mw_error *error_r)
{
	size_t mark = out->len, n = strnlen(v->tests, sizeof(v->tests));
	if (v->score > MW_HDR_SCORE_MAX || v->score < -MW_HDR_SCORE_MAX ||
	    v->required > MW_HDR_SCORE_MAX || v->required < -MW_HDR_SCORE_MAX ||
	    n == sizeof(v->tests) || !tests_ok(v->tests, n)) {
		mw_error_set(error_r, "X-Mailwarden-Spam: score out of range or bad tests list");
		return -1;
	}
	if (mw_str_appends(out, v->spam ? "yes" : "no") < 0 ||
	    print_decimal(out, "score", v->score) < 0 ||
	    print_decimal(out, "required", v->required) < 0 ||
	    mw_str_appends(out, "; tests=") < 0 || print_tests(out, mark, v->tests, n) < 0) {
		out->len = mark;
		if (out->buf != NULL)
			out->buf[mark] = '\0';
		mw_error_set(error_r, "X-Mailwarden-Spam: too long");
		return -1;
	}
	return 0;
}

/* mw_hdr_spam_equal - the same verdict */
bool mw_hdr_spam_equal(const struct mw_hdr_spam *a, const struct mw_hdr_spam *b)
{
	return a->spam == b->spam && a->score == b->score && a->required == b->required &&
	       strcmp(a->tests, b->tests) == 0;
}

/* mw_hdr_tests_has - any of names (separated by ',' or blanks) is in tests */
bool mw_hdr_tests_has(const char *tests, const char *names)
{
	const char *n = names, *t;
	size_t nlen, tlen;
	if (tests == NULL || names == NULL)
		return false;
	while (*n != '\0') {
		while (*n == ',' || *n == ' ')
			n++;
		for (nlen = 0; n[nlen] != '\0' && n[nlen] != ',' && n[nlen] != ' '; nlen++)
			;
		if (nlen == 0)
			break;
		for (t = tests; *t != '\0';) {
			for (tlen = 0; t[tlen] != '\0' && t[tlen] != ','; tlen++)
				;
			if (tlen == nlen && mw_ascii_strncasecmp(t, n, nlen) == 0)
				return true;
			t += tlen;
			if (*t == ',')
				t++;
		}
		n += nlen;
	}
	return false;
}

/* sig_char - a byte of a virus signature name */
static bool sig_char(char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '"' && c != ';' && c != '\\';
}

/* mw_hdr_virus_parse - "clean" or "infected [(SIGNATURE)]" */
int mw_hdr_virus_parse(const char *value, size_t len, struct mw_hdr_virus *v_r, mw_error *error_r)
{
	mw_slice s, sig;
	size_t i;

	memset(v_r, 0, sizeof(*v_r));
	if (check_value(value, len, error_r) < 0)
		return -1;
	s = trim(value, len);
	if (mw_slice_ieq(s, "clean"))
		return 0;
	if (s.len < 8 || mw_ascii_strncasecmp(s.ptr, "infected", 8) != 0) {
		mw_error_set(error_r, "virus verdict is neither clean nor infected");
		return -1;
	}
	if (s.len == 8) {
		v_r->infected = true;
		return 0;
	}
	sig = trim(s.ptr + 8, s.len - 8);
	if (sig.len == s.len - 8 || sig.len < 3 || sig.ptr[0] != '(' ||
	    sig.ptr[sig.len - 1] != ')') {
		if (sig.len == s.len - 8 || sig.len == 0 || sig.ptr[0] != '(') {
			mw_error_set(error_r, "virus verdict is neither clean nor infected");
			return -1;
		}
		mw_error_set(error_r, "virus signature is empty or not closed by ')'");
		return -1;
	}
	sig.ptr++;
	sig.len -= 2;
	if (sig.len > MW_HDR_SIG_MAX) {
		mw_error_set(error_r, "virus signature is longer than %d bytes", MW_HDR_SIG_MAX);
		return -1;
	}
	for (i = 0; i < sig.len; i++) {
		if (!sig_char(sig.ptr[i])) {
			mw_error_set(error_r, "virus signature holds a blank, parenthesis, quote, "
			                      "';' or '\\'");
			return -1;
		}
	}
	v_r->infected = true;
	memcpy(v_r->signature, sig.ptr, sig.len);
	v_r->signature[sig.len] = '\0';
	return 0;
}

/* mw_hdr_virus_print - the X-Mailwarden-Virus value */
int mw_hdr_virus_print(const struct mw_hdr_virus *v, mw_str *out, mw_error *error_r)
{
	size_t n = strnlen(v->signature, sizeof(v->signature)), i;
	int ret;
	if (n == sizeof(v->signature) || (!v->infected && n > 0)) {
		mw_error_set(error_r, "X-Mailwarden-Virus: bad signature");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (!sig_char(v->signature[i])) {
			mw_error_set(error_r, "X-Mailwarden-Virus: unsafe signature name");
			return -1;
		}
	}
	if (!v->infected)
		ret = mw_str_appends(out, "clean");
	else if (n == 0)
		ret = mw_str_appends(out, "infected");
	else
		ret = mw_str_appendf(out, "infected (%s)", v->signature);
	if (ret < 0) {
		mw_error_set(error_r, "X-Mailwarden-Virus: too long");
		return -1;
	}
	return 0;
}

/* mw_hdr_virus_equal - the same verdict */
bool mw_hdr_virus_equal(const struct mw_hdr_virus *a, const struct mw_hdr_virus *b)
{
	return a->infected == b->infected && strcmp(a->signature, b->signature) == 0;
}
