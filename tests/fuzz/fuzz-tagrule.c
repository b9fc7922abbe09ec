/*
 * fuzz-tagrule.c - fuzz target for tag rule values and matching (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The input is a value and a text, split at the first NUL byte (no NUL: the value alone,
 * against an empty text). The value is validated as each match type would store it; then,
 * valid or not (the matchers take any bytes up to MW_TAGRULE_VALUE_MAX), it is matched
 * against the text as a glob and as a substring, and checked:
 *   - the steps counted stay within the linear bound (n + 1) * (ceil(m / 64) + 2) +
 *     64 * (m + 1) for a value of m bytes and a text of n (the matcher's promise: no
 *     O(n * m) backtracking);
 *   - on short inputs the results equal those of simple reference matchers (a dynamic
 *     programme for glob, the obvious loop for substring), both ASCII case-insensitive;
 *   - with a text cap the result is that of the capped text, and with a budget smaller
 *     than the work needed nothing matches and exhausted is set.
 * The same target runs under libFuzzer and over tests/fuzz/corpus-tagrule in make check
 * (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-tagrule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_VALUE_MAX 24
#define REF_TEXT_MAX  96

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what, const char *value, const char *text)
{
	fprintf(stderr, "fuzz-tagrule: invariant broken: %s [value %zu bytes, text %zu bytes]\n",
	        what, strlen(value), strlen(text));
	abort();
}

/* fold - ASCII lower case */
static char fold(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ref_glob - '*' and '?' by dynamic programming over prefixes (short inputs only) */
static bool ref_glob(const char *p, const char *t)
{
	bool dp[REF_VALUE_MAX + 1][REF_TEXT_MAX + 1];
	size_t m = strlen(p), n = strlen(t), i, j;
	memset(dp, 0, sizeof(dp));
	dp[0][0] = true;
	for (i = 1; i <= m; i++) {
		dp[i][0] = dp[i - 1][0] && p[i - 1] == '*';
		for (j = 1; j <= n; j++) {
			if (p[i - 1] == '*')
				dp[i][j] = dp[i - 1][j] || dp[i][j - 1];
			else
				dp[i][j] = dp[i - 1][j - 1] &&
				           (p[i - 1] == '?' || fold(p[i - 1]) == fold(t[j - 1]));
		}
	}
	return dp[m][n];
}

/* ref_substring - value occurs in text (short inputs only) */
static bool ref_substring(const char *v, const char *t)
{
	size_t m = strlen(v), n = strlen(t), i, j;
	for (i = 0; i + m <= n; i++) {
		for (j = 0; j < m && fold(v[j]) == fold(t[i + j]); j++)
			;
		if (j == m)
			return true;
	}
	return false;
}

/* linear_bound - the most steps a match of m value bytes over n text bytes may take */
static uint64_t linear_bound(size_t m, size_t n)
{
	return (uint64_t)(n + 1) * ((m + 63) / 64 + 2) + 64 * (uint64_t)(m + 1);
}

/* one_rule - match value as MATCH against text with work; checks the step bound */
static bool one_rule(enum mw_tagrule_match match, const char *value, const char *text,
                     struct mw_tagrule_work *w)
{
	struct mw_tag_rule r;
	struct mw_tagrule_subject s = {text, NULL, 0};
	uint64_t before = w->steps;
	size_t n = strlen(text);
	bool got;
	memset(&r, 0, sizeof(r));
	r.field = (char *)"Subject";
	r.match = match;
	r.value = (char *)value;
	r.keyword = (char *)"k";
	r.enabled = true;
	got = mw_tagrule_matches_work(&r, &s, 1, w);
	if (w->text_max != 0 && n > w->text_max)
		n = w->text_max;
	if (w->steps - before > linear_bound(strlen(value), n) + 2 * n)
		broken("steps over the linear bound", value, text);
	return got;
}

/* LLVMFuzzerTestOneInput - value NUL text */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t vlen = nul != NULL ? (size_t)(nul - data) : size;
	size_t tlen = nul != NULL ? size - vlen - 1 : 0, i;
	char *value, *text, *cut;
	struct mw_tagrule_work w;
	mw_error err;
	bool glob, sub, capped;
	static const enum mw_tagrule_match kinds[] = {MW_TAGRULE_EXACT, MW_TAGRULE_SUBSTRING,
	                                              MW_TAGRULE_GLOB, MW_TAGRULE_DOMAIN};

	if (vlen > MW_TAGRULE_VALUE_MAX + 8 || tlen > 65536)
		return 0;
	value = malloc(vlen + 1);
	text = malloc(tlen + 1);
	if (value == NULL || text == NULL)
		abort();
	memcpy(value, data, vlen);
	value[vlen] = '\0';
	if (tlen > 0)
		memcpy(text, nul + 1, tlen);
	text[tlen] = '\0';
	tlen = strlen(text); /* a second NUL ends the text */

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		err.msg[0] = '\0';
		if (mw_tagrule_check_value(kinds[i], value, &err) < 0 && err.msg[0] == '\0')
			broken("refused without a reason", value, text);
	}

	memset(&w, 0, sizeof(w));
	glob = one_rule(MW_TAGRULE_GLOB, value, text, &w);
	sub = one_rule(MW_TAGRULE_SUBSTRING, value, text, &w);
	if (glob != mw_tagrule_glob(value, text))
		broken("glob differs between the rule and mw_tagrule_glob", value, text);
	if (vlen > MW_TAGRULE_VALUE_MAX) {
		if (glob || sub)
			broken("a value over the limit matched", value, text);
	} else if (vlen <= REF_VALUE_MAX && tlen <= REF_TEXT_MAX) {
		if (glob != ref_glob(value, text))
			broken("glob differs from the reference", value, text);
		if (sub != ref_substring(value, text))
			broken("substring differs from the reference", value, text);
	}

	/* a cap: the same result as on the text cut there */
	memset(&w, 0, sizeof(w));
	w.text_max = 1 + (tlen > 0 ? (size_t)text[0] % (tlen + 1) : 0);
	capped = one_rule(MW_TAGRULE_GLOB, value, text, &w);
	cut = malloc(w.text_max + 1);
	if (cut == NULL)
		abort();
	memcpy(cut, text, tlen < w.text_max ? tlen + 1 : w.text_max);
	cut[w.text_max] = '\0';
	if (capped != mw_tagrule_glob(value, cut))
		broken("capped glob differs from glob on the cut text", value, text);
	if (vlen <= MW_TAGRULE_VALUE_MAX && w.truncated != (tlen > w.text_max))
		broken("truncated flag wrong", value, text);
	free(cut);

	/* a budget too small for the work: no match, exhausted */
	memset(&w, 0, sizeof(w));
	(void)one_rule(MW_TAGRULE_SUBSTRING, value, text, &w);
	if (w.steps > 1) {
		uint64_t need = w.steps;
		memset(&w, 0, sizeof(w));
		w.budget = need - 1;
		if (one_rule(MW_TAGRULE_SUBSTRING, value, text, &w) || !w.exhausted)
			broken("a spent budget still matched", value, text);
	}
	free(value);
	free(text);
	return 0;
}
