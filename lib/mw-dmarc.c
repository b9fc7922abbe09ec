/* mw-dmarc.c - DMARC (RFC 9989): record grammar, DNS tree walk, organisational domain, alignment.
 *
 * Public: mw_dmarc_record_parse, mw_dmarc_is_record, mw_dmarc_walk_init, mw_dmarc_policy_walk,
 * mw_dmarc_org_domain, mw_dmarc_aligned, mw_dmarc_p_str.
 *
 * Why not libopendmarc for this: libopendmarc 1.4 finds the organisational domain in the
 * public suffix list and has no tree walk, psd=, np= or t=; its alignment cannot be driven
 * with an organisational domain found elsewhere (it recomputes it from its TLD table for every
 * identifier). mw-authcheck keeps libopendmarc for dmarc_mode = rfc7489 and uses this module
 * for dmarc_mode = dmarcbis, on the SPF and DKIM results it already has.
 *
 * Diagnostics: none logged; parse errors through error_r, walk outcomes as status values.
 */
#include "mw-build.h"
#include "mw-dmarc.h"

#include <string.h>

/* mw_dmarc_p_str - a policy as written in a record */
const char *mw_dmarc_p_str(enum mw_dmarc_p p)
{
	switch (p) {
	case MW_DMARC_P_NONE:
		return "none";
	case MW_DMARC_P_QUARANTINE:
		return "quarantine";
	case MW_DMARC_P_REJECT:
		return "reject";
	case MW_DMARC_P_UNSET:
		break;
	}
	return "unset";
}

/* mw_dmarc_is_record - "v=DMARC1" followed by ';', blank or the end */
bool mw_dmarc_is_record(const char *txt, size_t len)
{
	if (len < 8 || strncmp(txt, "v=DMARC1", 8) != 0 || memchr(txt, '\0', len) != NULL)
		return false;
	return len == 8 || txt[8] == ';' || txt[8] == ' ' || txt[8] == '\t';
}

/* trim - the slice [*s, *e) without blanks at either end */
static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* word_is - slice equals WORD (case-insensitive) */
static bool word_is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && mw_ascii_strncasecmp(s, word, len) == 0;
}

/* parse_p - a policy value */
static int parse_p(const char *v, size_t len, enum mw_dmarc_p *p_r)
{
	if (word_is(v, len, "none"))
		*p_r = MW_DMARC_P_NONE;
	else if (word_is(v, len, "quarantine"))
		*p_r = MW_DMARC_P_QUARANTINE;
	else if (word_is(v, len, "reject"))
		*p_r = MW_DMARC_P_REJECT;
	else
		return -1;
	return 0;
}

/* parse_yn - "y" or "n" (psd= also "u") */
static int parse_flag(const char *v, size_t len, const char *allowed, char *c_r)
{
	if (len != 1 || strchr(allowed, v[0] | 0x20) == NULL)
		return -1;
	*c_r = (char)(v[0] | 0x20);
	return 0;
}

/* mw_dmarc_record_parse - tag=value; ... into REC */
int mw_dmarc_record_parse(const char *txt, struct mw_dmarc_record *rec, mw_error *error_r)
{
	const char *p = txt, *end = txt + strlen(txt);
	bool first = true;

	memset(rec, 0, sizeof(*rec));
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *te = semi != NULL ? semi : end, *eq, *ns, *ne, *vs, *ve;
		char c;

		ns = p;
		p = semi != NULL ? semi + 1 : end;
		ne = te;
		trim(&ns, &ne);
		if (ns == ne) {
			if (first) {
				mw_error_set(error_r, "empty first tag");
				return -1;
			}
			continue; /* "p=none;" ends with an empty tag */
		}
		eq = memchr(ns, '=', (size_t)(ne - ns));
		if (eq == NULL) {
			mw_error_set(error_r, "tag without '='");
			return -1;
		}
		vs = eq + 1;
		ve = ne;
		ne = eq;
		trim(&ns, &ne);
		trim(&vs, &ve);
		if (first) {
			if (!word_is(ns, (size_t)(ne - ns), "v") || (size_t)(ve - vs) != 6 ||
			    strncmp(vs, "DMARC1", 6) != 0) {
				mw_error_set(error_r, "not a DMARC1 record");
				return -1;
			}
			first = false;
			continue;
		}
		if (word_is(ns, (size_t)(ne - ns), "p") || word_is(ns, (size_t)(ne - ns), "sp") ||
		    word_is(ns, (size_t)(ne - ns), "np")) {
			enum mw_dmarc_p *dst = ne - ns == 1                   ? &rec->p
			                       : ns[0] == 's' || ns[0] == 'S' ? &rec->sp
			                                                      : &rec->np;
			if (*dst != MW_DMARC_P_UNSET || parse_p(vs, (size_t)(ve - vs), dst) < 0) {
				mw_error_set(error_r, "bad or repeated %.*s= value", (int)(ne - ns),
				             ns);
				return -1;
			}
		} else if (word_is(ns, (size_t)(ne - ns), "t")) {
			if (parse_flag(vs, (size_t)(ve - vs), "yn", &c) < 0) {
				mw_error_set(error_r, "bad t= value");
				return -1;
			}
			rec->testing = c == 'y';
		} else if (word_is(ns, (size_t)(ne - ns), "psd")) {
			if (parse_flag(vs, (size_t)(ve - vs), "ynu", &c) < 0) {
				mw_error_set(error_r, "bad psd= value");
				return -1;
			}
			rec->psd = c == 'y'   ? MW_DMARC_PSD_Y
			           : c == 'n' ? MW_DMARC_PSD_N
			                      : MW_DMARC_PSD_U;
		} else if (word_is(ns, (size_t)(ne - ns), "adkim") ||
		           word_is(ns, (size_t)(ne - ns), "aspf")) {
			if (parse_flag(vs, (size_t)(ve - vs), "rs", &c) < 0) {
				mw_error_set(error_r, "bad %.*s= value", (int)(ne - ns), ns);
				return -1;
			}
			if (ne - ns == 5)
				rec->strict_dkim = c == 's';
			else
				rec->strict_spf = c == 's';
		} else if (word_is(ns, (size_t)(ne - ns), "pct")) {
			/* RFC 7489 only: remembered, never acted on here */
			unsigned v = 0;
			const char *q;
			for (q = vs; q < ve && *q >= '0' && *q <= '9' && v <= 100; q++)
				v = v * 10 + (unsigned)(*q - '0');
			if (q == vs || q != ve || v > 100) {
				mw_error_set(error_r, "bad pct= value");
				return -1;
			}
			rec->has_pct = true;
			rec->pct = v;
		}
		/* other tags (rua, ruf, fo, rf, ri, unknown ones) do not change the verdict */
	}
	if (first) {
		mw_error_set(error_r, "empty record");
		return -1;
	}
	return 0;
}

/* ---- the tree walk ----------------------------------------------------------------- */

/* mw_dmarc_walk_init - an empty per-message walk state */
void mw_dmarc_walk_init(struct mw_dmarc_walk *w, mw_dmarc_fetch_fn *fetch, void *ctx)
{
	memset(w, 0, sizeof(*w));
	w->fetch = fetch;
	w->ctx = ctx;
}

/* lookup - the cached answer for NAME, fetched on first use */
static const struct mw_dmarc_cached *lookup(struct mw_dmarc_walk *w, const char *name)
{
	static const struct mw_dmarc_cached tempfail = {.status = MW_DMARC_FETCH_TEMPFAIL};
	struct mw_dmarc_cached *c;
	char rec[MW_DMARC_RECORD_MAX];
	size_t i;

	for (i = 0; i < w->ncache; i++)
		if (mw_ascii_strcasecmp(w->cache[i].name, name) == 0)
			return &w->cache[i];
	if (w->ncache >= MW_DMARC_CACHE_MAX)
		return &tempfail; /* more names than a message can need: do not decide */
	c = &w->cache[w->ncache];
	memset(c, 0, sizeof(*c));
	if (mw_strlcpy(c->name, name, sizeof(c->name)) < 0)
		return &tempfail;
	rec[0] = '\0';
	w->lookups++;
	c->status = w->fetch(w->ctx, name, rec, sizeof(rec));
	if (c->status == MW_DMARC_FETCH_ONE && mw_dmarc_record_parse(rec, &c->rec, NULL) < 0)
		c->malformed = true;
	if (c->status == MW_DMARC_FETCH_ONE)
		(void)mw_strlcpy(c->text, rec, sizeof(c->text));
	w->ncache++;
	return c;
}

/* count_labels - labels of a domain name */
static size_t count_labels(const char *d)
{
	size_t n = 1;
	for (; *d != '\0'; d++)
		if (*d == '.')
			n++;
	return n;
}

/* suffix_labels - the last N labels of D */
static const char *suffix_labels(const char *d, size_t n)
{
	size_t have = count_labels(d);
	while (have > n) {
		d = strchr(d, '.') + 1;
		have--;
	}
	return d;
}

/* walk_names - the names a walk from DOMAIN asks, in order (at most MW_DMARC_WALK_MAX) */
static size_t walk_names(const char *domain, const char *names[MW_DMARC_WALK_MAX])
{
	size_t n = 0, labels = count_labels(domain);

	names[n++] = domain;
	if (labels > MW_DMARC_WALK_LABELS + 1)
		labels = MW_DMARC_WALK_LABELS + 1; /* the next one asked has 7 labels */
	while (--labels >= 1 && n < MW_DMARC_WALK_MAX)
		names[n++] = suffix_labels(domain, labels);
	return n;
}

/* mw_dmarc_policy_walk - the record that governs DOMAIN */
enum mw_dmarc_walk_status mw_dmarc_policy_walk(struct mw_dmarc_walk *w, const char *domain,
                                               const struct mw_dmarc_cached **found_r)
{
	const char *names[MW_DMARC_WALK_MAX];
	size_t i, n = walk_names(domain, names);

	*found_r = NULL;
	for (i = 0; i < n; i++) {
		const struct mw_dmarc_cached *c = lookup(w, names[i]);

		if (c->status == MW_DMARC_FETCH_TEMPFAIL)
			return MW_DMARC_WALK_TEMPFAIL; /* a record there would have decided */
		if (c->status != MW_DMARC_FETCH_ONE)
			continue; /* none, or several: none at this name */
		*found_r = c;
		return c->malformed ? MW_DMARC_WALK_MALFORMED : MW_DMARC_WALK_FOUND;
	}
	return MW_DMARC_WALK_NONE;
}

/* mw_dmarc_org_domain - the organisational domain of DOMAIN */
enum mw_dmarc_walk_status mw_dmarc_org_domain(struct mw_dmarc_walk *w, const char *domain,
                                              char *org)
{
	const char *names[MW_DMARC_WALK_MAX], *best = NULL;
	size_t i, n = walk_names(domain, names);

	for (i = 0; i < n; i++) {
		const struct mw_dmarc_cached *c = lookup(w, names[i]);

		if (c->status == MW_DMARC_FETCH_TEMPFAIL)
			return MW_DMARC_WALK_TEMPFAIL;
		/* a malformed record says nothing about psd=: it does not move the boundary
		   (a smaller organisational domain aligns less, never more) */
		if (c->status != MW_DMARC_FETCH_ONE || c->malformed)
			continue;
		if (c->rec.psd == MW_DMARC_PSD_N) {
			best = names[i];
			break;
		}
		if (c->rec.psd == MW_DMARC_PSD_Y && i > 0) {
			/* the name one label below the public suffix domain */
			best = suffix_labels(domain, count_labels(names[i]) + 1);
			break;
		}
		best = names[i];
	}
	(void)mw_strlcpy(org, best != NULL ? best : domain, MW_DNS_NAME_MAX + 1);
	return MW_DMARC_WALK_FOUND;
}

/* mw_dmarc_aligned - identifier ID aligned with FROM */
enum mw_dmarc_walk_status mw_dmarc_aligned(struct mw_dmarc_walk *w, const char *from,
                                           const char *id, bool strict)
{
	char of[MW_DNS_NAME_MAX + 1], oi[MW_DNS_NAME_MAX + 1];
	const char *lf, *li;
	enum mw_dmarc_walk_status st;

	if (id[0] == '\0' || from[0] == '\0')
		return MW_DMARC_WALK_NONE;
	if (mw_ascii_strcasecmp(from, id) == 0)
		return MW_DMARC_WALK_FOUND;
	if (strict)
		return MW_DMARC_WALK_NONE;
	/* organisational domains are suffixes: names without a common last label never align */
	lf = strrchr(from, '.');
	li = strrchr(id, '.');
	if (mw_ascii_strcasecmp(lf != NULL ? lf + 1 : from, li != NULL ? li + 1 : id) != 0)
		return MW_DMARC_WALK_NONE;
	st = mw_dmarc_org_domain(w, from, of);
	if (st != MW_DMARC_WALK_FOUND)
		return st;
	st = mw_dmarc_org_domain(w, id, oi);
	if (st != MW_DMARC_WALK_FOUND)
		return st;
	return mw_ascii_strcasecmp(of, oi) == 0 ? MW_DMARC_WALK_FOUND : MW_DMARC_WALK_NONE;
}
