/* mw-tagrule.c - tag rules: validation of fields, keywords, values, mailboxes; matching.
 *
 * Pure functions over strings: no I/O, no allocation except in the clear/free helpers.
 * Used by the store front end (argument checks), mailwardenctl and the Dovecot plugin,
 * so a rule is judged the same way wherever it is written or applied.
 *
 * Public: mw_tagrule_match_name, mw_tagrule_match_parse, mw_tagrule_check_field,
 * mw_tagrule_check_keyword, mw_tagrule_check_value, mw_tagrule_check_mailbox,
 * mw_tagrule_check, mw_tagrule_field_is_address, mw_tagrule_matches,
 * mw_tagrule_matches_work, mw_tagrule_matches_field, mw_tagrule_glob, mw_tagrule_glob_work,
 * mw_tag_rule_clear, mw_tag_rules_free.
 *
 * Diagnostics: through error_r only; messages never echo the rejected text.
 */
#include "mw-build.h"
#include "mw-tagrule.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const match_names[] = {
    [MW_TAGRULE_EXACT] = "exact",
    [MW_TAGRULE_SUBSTRING] = "substring",
    [MW_TAGRULE_GLOB] = "glob",
    [MW_TAGRULE_DOMAIN] = "domain",
};

/* mw_tagrule_match_name, mw_tagrule_match_parse: the stored names of the match types (ASCII
   case-insensitive when parsed) */
MW_ENUM_NAMES(mw_tagrule_match_name, mw_tagrule_match_parse, enum mw_tagrule_match, match_names)

/* mw_tagrule_check_field - an RFC 5322 field name: printable ASCII except ':' */
int mw_tagrule_check_field(const char *field, mw_error *error_r)
{
	size_t len, i;
	if (mw_text_len_check("field", field, MW_TAGRULE_FIELD_MAX, &len, error_r) < 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)field[i];
		if (c <= 32 || c >= 127 || c == ':') {
			mw_error_set(error_r, "field is not a header name (printable ASCII "
			                      "without blanks or ':')");
			return -1;
		}
	}
	return 0;
}

/* mw_tagrule_check_keyword - an IMAP flag-keyword (atom without ']'), not a system flag */
int mw_tagrule_check_keyword(const char *keyword, mw_error *error_r)
{
	static const char specials[] = "(){ %*\"\\]";
	size_t len, i;
	if (mw_text_len_check("keyword", keyword, MW_TAGRULE_KEYWORD_MAX, &len, error_r) < 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)keyword[i];
		if (c <= 32 || c >= 127 || strchr(specials, c) != NULL) {
			mw_error_set(error_r, "keyword is not an IMAP atom (no blanks, controls, "
			                      "non-ASCII or any of ( ) { %% * \" \\ ])");
			return -1;
		}
	}
	return 0;
}

/* check_domain - letters, digits, '-' and '.', labels 1..63 bytes */
static int check_domain(const char *value, size_t len, mw_error *error_r)
{
	size_t i, label = 0;
	for (i = 0; i < len; i++) {
		char c = value[i];
		if (c == '.') {
			if (label == 0)
				break;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-') ||
		    ++label > 63) {
			label = 0;
			break;
		}
	}
	if (i < len || label == 0) {
		mw_error_set(error_r, "value is not a domain name (A-label form: letters, digits, "
		                      "'-', dots between labels)");
		return -1;
	}
	return 0;
}

/* mw_tagrule_check_value - what a rule matches: UTF-8 text, or a domain for domain rules */
int mw_tagrule_check_value(enum mw_tagrule_match m, const char *value, mw_error *error_r)
{
	size_t len;
	if (mw_tagrule_match_name(m) == NULL) {
		mw_error_set(error_r, "invalid match type");
		return -1;
	}
	if (mw_text_len_check("value", value, MW_TAGRULE_VALUE_MAX, &len, error_r) < 0 ||
	    mw_utf8_text_check("value", value, len, error_r) < 0)
		return -1;
	if (m == MW_TAGRULE_DOMAIN)
		return check_domain(value, len, error_r);
	return 0;
}

/* mw_tagrule_check_mailbox - a mailbox name: UTF-8 text without wildcards */
int mw_tagrule_check_mailbox(const char *mailbox, mw_error *error_r)
{
	size_t len;
	if (mw_text_len_check("mailbox", mailbox, MW_TAGRULE_MAILBOX_MAX, &len, error_r) < 0 ||
	    mw_utf8_text_check("mailbox", mailbox, len, error_r) < 0)
		return -1;
	if (strpbrk(mailbox, "*%") != NULL) {
		mw_error_set(error_r, "mailbox contains a wildcard (* or %%)");
		return -1;
	}
	return 0;
}

/* mw_tagrule_check - every part of a rule, and something for it to do */
int mw_tagrule_check(const struct mw_tag_rule *rule, mw_error *error_r)
{
	if (mw_tagrule_check_field(rule->field, error_r) < 0 ||
	    mw_tagrule_check_value(rule->match, rule->value, error_r) < 0)
		return -1;
	if (rule->keyword == NULL && rule->mailbox == NULL) {
		mw_error_set(error_r, "a rule needs a keyword or a mailbox (or both)");
		return -1;
	}
	if (rule->keyword != NULL && mw_tagrule_check_keyword(rule->keyword, error_r) < 0)
		return -1;
	if (rule->mailbox != NULL && mw_tagrule_check_mailbox(rule->mailbox, error_r) < 0)
		return -1;
	return 0;
}

/* mw_tagrule_field_is_address - the field holds addresses */
bool mw_tagrule_field_is_address(const char *field)
{
	static const char *const fields[] = {
	    "from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to",
	};
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(fields); i++)
		if (mw_ascii_strcasecmp(field, fields[i]) == 0)
			return true;
	return false;
}

/* ---- matching -------------------------------------------------------------------------

   Every match is linear in the text. A value is compiled once per rule (lower-cased; for
   glob, split at runs of '*' into segments of literal bytes and '?'). The first and the
   last segment are anchored at the ends of the text and compared in place; the middle ones
   are found left to right, each at its leftmost occurrence after the previous one (the
   leftmost occurrence never loses for '*'-separated segments, so nothing is retried), and
   each text byte is looked at by one segment search only. A segment's literal core (its
   leading and trailing '?' cut off: they only shift it) is found with Knuth-Morris-Pratt
   (a failure table made at compile time, at most 2n comparisons) when it holds no '?',
   else with the bit-parallel Shift-And (ceil(len/64) <= 8 word operations per text byte).
   A substring value is one literal core searched with KMP. So a rule costs
   O(m + n * ceil(m/64)) for text length n and value length m <= MW_TAGRULE_VALUE_MAX, never
   the O(n * m) of backtracking. Steps (comparisons and word operations) are counted in a
   struct mw_tagrule_work, which also carries the per-text cap and the budget. */

#define TR_SEG_MAX   (MW_TAGRULE_VALUE_MAX / 2 + 2) /* segments of a glob (stars collapsed) */
#define TR_WORDS_MAX ((MW_TAGRULE_VALUE_MAX + 63) / 64)
#define TR_CLASS_MAX 257 /* distinct bytes of a core, plus "none of them" */

struct tr_seg {
	uint16_t off, len;    /* in the compiled pattern */
	uint16_t lead, trail; /* leading and trailing '?' */
	bool wild;            /* the core (between them) holds a '?' */
};

/* A value compiled for matching: glob segments, or one literal core for substring. The
   arrays are in a struct tr_store while compiling; a prepared rule keeps a copy sized to
   its value (mw_tagrule_prepare). */
struct tr_prog {
	char *pat; /* lower-cased, len bytes and a NUL */
	size_t len, nseg;
	struct tr_seg *seg;
	uint16_t *fail; /* KMP table of each literal core, at its offset */
};
struct tr_store {
	char pat[MW_TAGRULE_VALUE_MAX + 1];
	struct tr_seg seg[TR_SEG_MAX];
	uint16_t fail[MW_TAGRULE_VALUE_MAX];
};

/* A rule prepared for matching many messages: its value compiled once. */
struct mw_tagrule_prep {
	struct tr_prog g;
	bool compiled; /* false: substring/glob value over the limit (never matches), or an
	                  exact/domain rule (nothing to compile) */
	               /* then the arrays of g */
};

/* lower - ASCII lower case of one byte */
static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* work_add - count steps; true while the budget (if any) holds */
static bool work_add(struct mw_tagrule_work *w, uint64_t steps)
{
	if (w == NULL)
		return true;
	w->steps += steps;
	if (w->budget != 0 && w->steps > w->budget)
		w->exhausted = true;
	return !w->exhausted;
}

/* kmp_table - the failure function of the literal core p[0..c) into fail[0..c) */
static void kmp_table(const char *p, size_t c, uint16_t *fail)
{
	size_t i, k = 0;
	fail[0] = 0;
	for (i = 1; i < c; i++) {
		while (k > 0 && p[i] != p[k])
			k = fail[k - 1];
		if (p[i] == p[k])
			k++;
		fail[i] = (uint16_t)k;
	}
}

/* prog_compile - lower-case VALUE and, for glob, cut it into segments; -1 when too long */
static int prog_compile(struct tr_prog *g, struct tr_store *st, const char *value, bool glob,
                        struct mw_tagrule_work *w)
{
	size_t i, start, len = strnlen(value, MW_TAGRULE_VALUE_MAX + 1);
	g->pat = st->pat;
	g->seg = st->seg;
	g->fail = st->fail;
	if (len > MW_TAGRULE_VALUE_MAX)
		return -1;
	for (i = 0; i < len; i++)
		g->pat[i] = lower(value[i]);
	g->pat[len] = '\0';
	g->len = len;
	g->nseg = 0;
	(void)work_add(w, len);
	for (start = 0;;) {
		struct tr_seg *s = &g->seg[g->nseg++];
		size_t end = start, j, c;
		if (glob)
			while (end < len && g->pat[end] != '*')
				end++;
		else
			end = len;
		s->off = (uint16_t)start;
		s->len = (uint16_t)(end - start);
		s->lead = s->trail = 0;
		s->wild = false;
		if (glob) {
			while (s->lead < s->len && g->pat[start + s->lead] == '?')
				s->lead++;
			while (s->trail < s->len - s->lead && g->pat[end - 1 - s->trail] == '?')
				s->trail++;
		}
		c = (size_t)(s->len - s->lead - s->trail);
		for (j = 0; glob && j < c; j++)
			if (g->pat[start + s->lead + j] == '?')
				s->wild = true;
		if (c > 0 && !s->wild)
			kmp_table(g->pat + start + s->lead, c, g->fail + start + s->lead);
		if (end == len)
			break;
		while (end < len && g->pat[end] == '*')
			end++;
		start = end;
		if (g->nseg == TR_SEG_MAX) /* cannot happen for a value within the limit */
			return -1;
	}
	return 0;
}

/* seg_at - segment s matches the text at t (it has room: checked by the caller) */
static bool seg_at(const struct tr_prog *g, const struct tr_seg *s, const char *t,
                   struct mw_tagrule_work *w)
{
	size_t j;
	(void)work_add(w, s->len);
	for (j = 0; j < s->len; j++) {
		char p = g->pat[s->off + j];
		if (p != '?' && p != lower(t[j]))
			return false;
	}
	return true;
}

/* first_start - the offset in t[0..n) of the first byte whose lower case is p0 (lower
   case already), n for none (memchr: the C library's vectorised search) */
static size_t first_start(const char *t, size_t n, char p0)
{
	const char *a = memchr(t, p0, n), *b = NULL;
	if (p0 >= 'a' && p0 <= 'z')
		b = memchr(t, p0 - 'a' + 'A', a != NULL ? (size_t)(a - t) : n);
	if (b != NULL)
		return (size_t)(b - t);
	return a != NULL ? (size_t)(a - t) : n;
}

/* kmp_find - leftmost start of the literal core p[0..c) in t[from..to), or -1. While
   nothing of the core is matched (q == 0) a byte that cannot start it costs one step and
   changes nothing, so the run of such bytes is skipped with one search and counted as
   the loop would count it: the steps are those of the plain loop. */
static ptrdiff_t kmp_find(const char *p, size_t c, const uint16_t *fail, const char *t, size_t from,
                          size_t to, struct mw_tagrule_work *w)
{
	size_t i, q = 0;
	uint64_t steps = 0;
	ptrdiff_t found = -1;
	for (i = from; i < to; i++) {
		char ch;
		if (q == 0) {
			size_t skip = first_start(t + i, to - i, p[0]);
			steps += skip;
			i += skip;
			if (i == to)
				break;
		}
		ch = lower(t[i]);
		while (q > 0 && p[q] != ch) {
			q = fail[q - 1];
			steps++;
		}
		steps++;
		if (p[q] == ch && ++q == c) {
			found = (ptrdiff_t)(i + 1 - c);
			break;
		}
	}
	(void)work_add(w, steps);
	return found;
}

/* shift_and_find - leftmost start of the core p[0..c) ('?' any byte) in t[from..to), or -1 */
static ptrdiff_t shift_and_find(const char *p, size_t c, const char *t, size_t from, size_t to,
                                struct mw_tagrule_work *w)
{
	uint64_t masks[TR_CLASS_MAX * TR_WORDS_MAX], wild[TR_WORDS_MAX] = {0},
	                                             d[TR_WORDS_MAX] = {0};
	uint64_t last = (uint64_t)1 << ((c - 1) % 64), steps = 0;
	unsigned char cls[256];
	size_t nw = (c + 63) / 64, ncls = 1, i, j, k;
	ptrdiff_t found = -1;

	/* byte -> class (0: a byte the core does not name), then each class's position mask */
	memset(cls, 0, sizeof(cls));
	for (j = 0; j < c; j++) {
		unsigned char ch = (unsigned char)p[j];
		if (ch == '?') {
			wild[j / 64] |= (uint64_t)1 << (j % 64);
		} else if (cls[ch] == 0 && ncls < TR_CLASS_MAX) {
			cls[ch] = (unsigned char)ncls;
			if (ch >= 'a' && ch <= 'z')
				cls[ch - 'a' + 'A'] = (unsigned char)ncls;
			ncls++;
		}
	}
	for (k = 0; k < ncls; k++)
		for (i = 0; i < nw; i++)
			masks[k * nw + i] = wild[i];
	for (j = 0; j < c; j++)
		if (p[j] != '?')
			masks[cls[(unsigned char)p[j]] * nw + j / 64] |= (uint64_t)1 << (j % 64);
	steps += sizeof(cls) / 8 + ncls * nw + c;

	for (i = from; i < to; i++) {
		const uint64_t *m = &masks[cls[(unsigned char)t[i]] * nw];
		uint64_t carry = 1;
		for (k = 0; k < nw; k++) {
			uint64_t x = d[k];
			d[k] = ((x << 1) | carry) & m[k];
			carry = x >> 63;
		}
		steps += nw;
		if (d[nw - 1] & last) {
			found = (ptrdiff_t)(i + 1 - c);
			break;
		}
	}
	(void)work_add(w, steps);
	return found;
}

/* seg_find - leftmost start of middle segment s within t[from..to), or -1 */
static ptrdiff_t seg_find(const struct tr_prog *g, const struct tr_seg *s, const char *t,
                          size_t from, size_t to, struct mw_tagrule_work *w)
{
	size_t c = (size_t)(s->len - s->lead - s->trail);
	const char *core = g->pat + s->off + s->lead;
	ptrdiff_t r;
	if (to < from || to - from < s->len)
		return -1;
	if (c == 0) /* only '?': any s->len bytes */
		return (ptrdiff_t)from;
	from += s->lead;
	to -= s->trail;
	r = s->wild ? shift_and_find(core, c, t, from, to, w)
	            : kmp_find(core, c, g->fail + s->off + s->lead, t, from, to, w);
	return r < 0 ? -1 : r - (ptrdiff_t)s->lead;
}

/* prog_glob - the compiled glob over the whole of t[0..n) */
static bool prog_glob(const struct tr_prog *g, const char *t, size_t n, struct mw_tagrule_work *w)
{
	const struct tr_seg *first = &g->seg[0], *last = &g->seg[g->nseg - 1];
	size_t pos, limit, i;
	if (g->nseg == 1)
		return n == first->len && seg_at(g, first, t, w);
	if ((size_t)first->len + last->len > n || !seg_at(g, first, t, w) ||
	    !seg_at(g, last, t + n - last->len, w))
		return false;
	pos = first->len;
	limit = n - last->len;
	for (i = 1; i + 1 < g->nseg; i++) {
		ptrdiff_t r = seg_find(g, &g->seg[i], t, pos, limit, w);
		if (r < 0 || (w != NULL && w->exhausted))
			return false;
		pos = (size_t)r + g->seg[i].len;
	}
	return true;
}

/* prog_substring - the compiled literal value occurs in t[0..n) */
static bool prog_substring(const struct tr_prog *g, const char *t, size_t n,
                           struct mw_tagrule_work *w)
{
	if (g->len == 0) /* not a valid value; it occurs everywhere */
		return true;
	return g->len <= n && kmp_find(g->pat, g->len, g->fail, t, 0, n, w) >= 0;
}

/* text_len - how much of text is examined: all of it, or the first work->text_max bytes */
static size_t text_len(const char *text, struct mw_tagrule_work *w)
{
	size_t n;
	if (w == NULL)
		return strlen(text);
	n = w->text_max == 0 ? strlen(text) : strnlen(text, w->text_max + 1);
	if (w->text_max != 0 && n > w->text_max) {
		w->truncated = true;
		n = w->text_max;
	}
	(void)work_add(w, n); /* measuring it is work too */
	return n;
}

/* mw_tagrule_glob_work - '*' and '?' over the whole text, counting steps in work */
bool mw_tagrule_glob_work(const char *pattern, const char *text, struct mw_tagrule_work *work)
{
	struct tr_prog g;
	struct tr_store st;
	if (pattern == NULL || text == NULL || prog_compile(&g, &st, pattern, true, work) < 0)
		return false;
	return prog_glob(&g, text, text_len(text, work), work) &&
	       (work == NULL || !work->exhausted);
}

/* mw_tagrule_glob - '*' and '?' over the whole text, ASCII case-insensitive */
bool mw_tagrule_glob(const char *pattern, const char *text)
{
	return mw_tagrule_glob_work(pattern, text, NULL);
}

/* contains - the compiled substring value occurs in text (capped) */
static bool contains(const struct tr_prog *g, const char *text, struct mw_tagrule_work *w)
{
	return prog_substring(g, text, text_len(text, w), w);
}

/* domain_matches - host (len bytes) is domain or a subdomain of it */
static bool domain_matches(const char *host, size_t len, const char *domain)
{
	size_t d = strlen(domain);
	while (len > 0 && host[len - 1] == '.')
		len--;
	if (len == d)
		return mw_ascii_strncasecmp(host, domain, d) == 0;
	return len > d && host[len - d - 1] == '.' &&
	       mw_ascii_strncasecmp(host + len - d, domain, d) == 0;
}

/* text_domain_matches - the part of a non-address field (its first n bytes) a domain rule
   looks at: the text inside <...> if any, else the whole; after an '@' if there is one */
static bool text_domain_matches(const char *text, size_t n, const char *domain)
{
	const char *lt = memchr(text, '<', n), *gt, *at;
	mw_slice s = mw_slice_trim((mw_slice){text, n});
	if (lt != NULL && (gt = memchr(lt + 1, '>', n - (size_t)(lt + 1 - text))) != NULL) {
		s.ptr = lt + 1;
		s.len = (size_t)(gt - lt - 1);
	}
	at = memchr(s.ptr, '@', s.len);
	if (at != NULL) {
		s.len -= (size_t)(at + 1 - s.ptr);
		s.ptr = at + 1;
	}
	return domain_matches(s.ptr, s.len, domain);
}

/* last_at - the last '@' in a[0..n), NULL for none */
static const char *last_at(const char *a, size_t n)
{
	while (n-- > 0)
		if (a[n] == '@')
			return a + n;
	return NULL;
}

/* one_matches - the rule (value compiled in g) against one header occurrence */
static bool one_matches(const struct mw_tag_rule *rule, const struct tr_prog *g,
                        const struct mw_tagrule_subject *s, bool address, struct mw_tagrule_work *w)
{
	size_t i, n;
	const char *text = s->text != NULL ? s->text : "";
	switch (rule->match) {
	case MW_TAGRULE_SUBSTRING:
		if (contains(g, text, w))
			return true;
		break;
	case MW_TAGRULE_EXACT:
		if (!address) {
			mw_slice t;
			n = text_len(text, w);
			(void)work_add(w, n);
			t = mw_slice_trim((mw_slice){text, n});
			return t.len == strlen(rule->value) &&
			       mw_ascii_strncasecmp(t.ptr, rule->value, t.len) == 0;
		}
		break;
	case MW_TAGRULE_GLOB:
		if (!address)
			return prog_glob(g, text, text_len(text, w), w);
		break;
	case MW_TAGRULE_DOMAIN:
		if (!address) {
			n = text_len(text, w);
			(void)work_add(w, n);
			return text_domain_matches(text, n, rule->value);
		}
		break;
	}
	if (!address)
		return false;
	for (i = 0; i < s->n_addrs && (w == NULL || !w->exhausted); i++) {
		const char *a = s->addrs[i], *at;
		if (a == NULL)
			continue;
		switch (rule->match) {
		case MW_TAGRULE_SUBSTRING:
			if (contains(g, a, w))
				return true;
			break;
		case MW_TAGRULE_EXACT:
			n = text_len(a, w);
			(void)work_add(w, n);
			if (n == strlen(rule->value) &&
			    mw_ascii_strncasecmp(a, rule->value, n) == 0)
				return true;
			break;
		case MW_TAGRULE_GLOB:
			if (prog_glob(g, a, text_len(a, w), w))
				return true;
			break;
		case MW_TAGRULE_DOMAIN:
			n = text_len(a, w);
			(void)work_add(w, n);
			at = last_at(a, n);
			if (at != NULL &&
			    domain_matches(at + 1, n - (size_t)(at + 1 - a), rule->value))
				return true;
			break;
		}
	}
	return false;
}

/* mw_tagrule_matches_work - the rule against every occurrence of its field, within work */
bool mw_tagrule_matches_work(const struct mw_tag_rule *rule,
                             const struct mw_tagrule_subject *subjects, size_t n,
                             struct mw_tagrule_work *work)
{
	if (rule == NULL || rule->field == NULL)
		return false;
	return mw_tagrule_matches_field(rule, mw_tagrule_field_is_address(rule->field), subjects, n,
	                                work);
}

/* mw_tagrule_prepare - compile the rule's value once; NULL when out of memory */
struct mw_tagrule_prep *mw_tagrule_prepare(const struct mw_tag_rule *rule)
{
	struct mw_tagrule_prep *p;
	struct tr_prog g;
	struct tr_store *st;
	size_t segs, pat, fail;
	char *mem;

	if (rule == NULL || rule->value == NULL ||
	    (rule->match != MW_TAGRULE_SUBSTRING && rule->match != MW_TAGRULE_GLOB))
		return calloc(1, sizeof(*p));
	st = malloc(sizeof(*st));
	if (st == NULL)
		return NULL;
	if (prog_compile(&g, st, rule->value, rule->match == MW_TAGRULE_GLOB, NULL) < 0) {
		free(st);
		return calloc(1, sizeof(*p)); /* over the limit: never matches */
	}
	segs = g.nseg * sizeof(struct tr_seg);
	fail = g.len * sizeof(uint16_t);
	pat = g.len + 1;
	p = calloc(1, sizeof(*p) + segs + fail + pat);
	if (p == NULL) {
		free(st);
		return NULL;
	}
	mem = (char *)(p + 1);
	p->g = g;
	p->g.seg = (struct tr_seg *)(void *)mem;
	memcpy(p->g.seg, st->seg, segs);
	p->g.fail = (uint16_t *)(void *)(mem + segs);
	memcpy(p->g.fail, st->fail, fail);
	p->g.pat = mem + segs + fail;
	memcpy(p->g.pat, st->pat, pat);
	p->compiled = true;
	free(st);
	return p;
}

/* mw_tagrule_prep_free - free a prepared rule (NULL is fine) */
void mw_tagrule_prep_free(struct mw_tagrule_prep *prep)
{
	free(prep);
}

/* mw_tagrule_matches_field - mw_tagrule_matches_work with the field's kind given */
bool mw_tagrule_matches_field(const struct mw_tag_rule *rule, bool address,
                              const struct mw_tagrule_subject *subjects, size_t n,
                              struct mw_tagrule_work *work)
{
	return mw_tagrule_matches_prep(rule, NULL, address, subjects, n, work);
}

/* mw_tagrule_matches_prep - the rule against every occurrence of its field, its value
   compiled already (prep) or now (prep NULL); the same steps counted either way */
bool mw_tagrule_matches_prep(const struct mw_tag_rule *rule, const struct mw_tagrule_prep *prep,
                             bool address, const struct mw_tagrule_subject *subjects, size_t n,
                             struct mw_tagrule_work *work)
{
	struct tr_prog prog;
	const struct tr_prog *g = NULL;
	struct tr_store st;
	bool found = false;
	size_t i;
	if (rule == NULL || rule->value == NULL || rule->field == NULL || !rule->enabled ||
	    (work != NULL && work->exhausted))
		return false;
	if (rule->match == MW_TAGRULE_SUBSTRING || rule->match == MW_TAGRULE_GLOB) {
		if (prep != NULL) {
			if (!prep->compiled)
				return false; /* longer than a valid value: never matches */
			g = &prep->g;
			(void)work_add(work, g->len); /* what compiling counts */
		} else {
			if (prog_compile(&prog, &st, rule->value, rule->match == MW_TAGRULE_GLOB,
			                 work) < 0)
				return false; /* longer than a valid value: never matches */
			g = &prog;
		}
	}
	for (i = 0; i < n && !found; i++) {
		found = one_matches(rule, g, &subjects[i], address, work);
		if (work != NULL && work->exhausted)
			found = false;
		if (work != NULL && work->exhausted)
			break;
	}
	return found;
}

/* mw_tagrule_matches - the rule against every occurrence of its field, no limits */
bool mw_tagrule_matches(const struct mw_tag_rule *rule, const struct mw_tagrule_subject *subjects,
                        size_t n)
{
	return mw_tagrule_matches_work(rule, subjects, n, NULL);
}

/* mw_tag_rule_clear - free what a rule owns */
void mw_tag_rule_clear(struct mw_tag_rule *rule)
{
	if (rule == NULL)
		return;
	free(rule->field);
	free(rule->value);
	free(rule->keyword);
	free(rule->mailbox);
	memset(rule, 0, sizeof(*rule));
}

/* mw_tag_rules_free - free an array of rules */
void mw_tag_rules_free(struct mw_tag_rule *rules, size_t count)
{
	MW_ARRAY_FREE(rules, count, mw_tag_rule_clear);
}
