/* mw-verdict.c - parse X-Mailwarden-Spam, X-Mailwarden-Virus and Authentication-Results.
 *
 * The milter is the only writer of these headers (it strips forged ones), so parsing is
 * strict about shape but forgiving of what it does not need: unknown parameters and
 * methods are ignored, anything malformed makes the header count as absent. Comments
 * "(...)" (nested) and quoted strings in Authentication-Results are honoured.
 *
 * Public: mw_verdict_parse_spam, mw_verdict_parse_virus, mw_verdict_parse_authres,
 * mw_verdict_has_test.
 *
 * Diagnostics: through error_r only; the header text is never echoed.
 */
#include "mw-verdict.h"

#include <string.h>

/* check_value - bounded, no NUL-less surprises; returns the length or -1 */
static int check_value(const char *value, size_t *len_r, mw_error *error_r)
{
	size_t len;
	if (value == NULL) {
		mw_error_set(error_r, "header is missing");
		return -1;
	}
	len = strnlen(value, MW_VERDICT_HEADER_MAX + 1);
	if (len > MW_VERDICT_HEADER_MAX) {
		mw_error_set(error_r, "header is longer than %d bytes", MW_VERDICT_HEADER_MAX);
		return -1;
	}
	*len_r = len;
	return 0;
}

/* next_part - the next ';'-separated part of s (trimmed); false at the end */
static bool next_part(mw_slice *rest, mw_slice *part_r)
{
	const char *semi;
	if (rest->ptr == NULL)
		return false;
	semi = memchr(rest->ptr, ';', rest->len);
	if (semi == NULL) {
		*part_r = mw_slice_trim(*rest);
		rest->ptr = NULL;
		rest->len = 0;
	} else {
		part_r->ptr = rest->ptr;
		part_r->len = (size_t)(semi - rest->ptr);
		*part_r = mw_slice_trim(*part_r);
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

/* mw_verdict_parse_spam - "yes|no; score=S; required=R; tests=A,B" */
int mw_verdict_parse_spam(const char *value, struct mw_spam_verdict *v_r, mw_error *error_r)
{
	mw_slice rest, part;
	size_t len, i;
	memset(v_r, 0, sizeof(*v_r));
	if (check_value(value, &len, error_r) < 0)
		return -1;
	rest.ptr = value;
	rest.len = len;
	if (!next_part(&rest, &part))
		return -1;
	if (mw_slice_ieq(part, "yes"))
		v_r->spam = true;
	else if (!mw_slice_ieq(part, "no")) {
		mw_error_set(error_r, "spam verdict is neither yes nor no");
		return -1;
	}
	while (next_part(&rest, &part)) {
		if (part.len == 0)
			continue;
		if (part.len < 6 || mw_ascii_strncasecmp(part.ptr, "tests=", 6) != 0)
			continue; /* score=, required= and future parameters */
		part.ptr += 6;
		part.len -= 6;
		if (part.len > MW_VERDICT_TESTS_MAX) {
			mw_error_set(error_r, "tests list is longer than %d bytes",
			             MW_VERDICT_TESTS_MAX);
			return -1;
		}
		for (i = 0; i < part.len; i++) {
			if (!is_test_char(part.ptr[i]) && part.ptr[i] != ',') {
				mw_error_set(error_r, "tests list holds a character outside "
				                      "A-Z a-z 0-9 _ - . ,");
				return -1;
			}
		}
		memcpy(v_r->tests, part.ptr, part.len);
		v_r->tests[part.len] = '\0';
	}
	return 0;
}

/* mw_verdict_parse_virus - "clean" or "infected (SIGNATURE)" */
int mw_verdict_parse_virus(const char *value, struct mw_virus_verdict *v_r, mw_error *error_r)
{
	mw_slice s;
	const char *open, *close;
	size_t len, n;
	memset(v_r, 0, sizeof(*v_r));
	if (check_value(value, &len, error_r) < 0)
		return -1;
	s.ptr = value;
	s.len = len;
	s = mw_slice_trim(s);
	if (mw_slice_ieq(s, "clean"))
		return 0;
	if (s.len < 8 || mw_ascii_strncasecmp(s.ptr, "infected", 8) != 0 ||
	    (s.len > 8 && s.ptr[8] != ' ' && s.ptr[8] != '\t' && s.ptr[8] != '(')) {
		mw_error_set(error_r, "virus verdict is neither clean nor infected");
		return -1;
	}
	v_r->infected = true;
	open = memchr(s.ptr, '(', s.len);
	if (open == NULL)
		return 0;
	close = memchr(open, ')', s.len - (size_t)(open - s.ptr));
	if (close == NULL) {
		mw_error_set(error_r, "virus signature is not closed by ')'");
		return -1;
	}
	n = (size_t)(close - open - 1);
	if (n > MW_VERDICT_SIG_MAX) {
		mw_error_set(error_r, "virus signature is longer than %d bytes",
		             MW_VERDICT_SIG_MAX);
		return -1;
	}
	memcpy(v_r->signature, open + 1, n);
	v_r->signature[n] = '\0';
	return 0;
}

/* strip_comments - copy src into dst without (nested) comments, keeping quoted strings;
   -1 when a comment or quote is not closed */
static int strip_comments(const char *src, size_t len, char *dst)
{
	size_t i, o = 0;
	int depth = 0;
	bool quoted = false;
	for (i = 0; i < len; i++) {
		char c = src[i];
		if (quoted) {
			if (c == '\\' && i + 1 < len) {
				dst[o++] = src[++i];
				continue;
			}
			if (c == '"')
				quoted = false;
			else
				dst[o++] =
				    c == ';' ? ' ' : c; /* a ';' inside quotes splits nothing */
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(') {
			depth = 1;
			dst[o++] = ' ';
		} else if (c == '"') {
			quoted = true;
		} else {
			dst[o++] = c == '\r' || c == '\n' || c == '\t' ? ' ' : c;
		}
	}
	dst[o] = '\0';
	return depth == 0 && !quoted ? 0 : -1;
}

/* first_word - the first blank-separated word of s */
static mw_slice first_word(mw_slice s)
{
	size_t i;
	s = mw_slice_trim(s);
	for (i = 0; i < s.len && s.ptr[i] != ' '; i++)
		;
	s.len = i;
	return s;
}

/* mw_verdict_parse_authres - "authserv-id [version]; method=result ...; ..." */
int mw_verdict_parse_authres(const char *value, const char *authserv_id,
                             struct mw_auth_verdict *v_r, mw_error *error_r)
{
	char buf[MW_VERDICT_HEADER_MAX + 1];
	mw_slice rest, part, id, method, result;
	size_t len;
	const char *eq;
	if (check_value(value, &len, error_r) < 0)
		return -1;
	if (strip_comments(value, len, buf) < 0) {
		mw_error_set(error_r, "unbalanced comment or quote");
		return -1;
	}
	rest = mw_slice_from(buf);
	if (!next_part(&rest, &part))
		return -1;
	id = first_word(part);
	if (id.len == 0) {
		mw_error_set(error_r, "no authserv-id");
		return -1;
	}
	if (authserv_id == NULL || *authserv_id == '\0' || !mw_slice_ieq(id, authserv_id))
		return 0;
	while (next_part(&rest, &part)) {
		part = first_word(part);
		if (part.len == 0 || mw_slice_ieq(part, "none"))
			continue;
		eq = memchr(part.ptr, '=', part.len);
		if (eq == NULL) {
			mw_error_set(error_r, "result without '='");
			return -1;
		}
		method.ptr = part.ptr;
		method.len = (size_t)(eq - part.ptr);
		/* "method/version" */
		{
			const char *slash = memchr(method.ptr, '/', method.len);
			if (slash != NULL)
				method.len = (size_t)(slash - method.ptr);
		}
		method = mw_slice_trim(method);
		result.ptr = eq + 1;
		result.len = part.len - (size_t)(eq + 1 - part.ptr);
		result = mw_slice_trim(result);
		if (mw_slice_ieq(method, "dkim")) {
			if (mw_slice_ieq(result, "pass"))
				v_r->dkim_pass = true;
			else if (mw_slice_ieq(result, "fail") || mw_slice_ieq(result, "permerror"))
				v_r->dkim_fail = true;
		} else if (mw_slice_ieq(method, "dmarc")) {
			if (mw_slice_ieq(result, "pass"))
				v_r->dmarc_pass = true;
			else if (mw_slice_ieq(result, "fail"))
				v_r->dmarc_fail = true;
		} else if (mw_slice_ieq(method, "spf")) {
			if (mw_slice_ieq(result, "pass"))
				v_r->spf_pass = true;
			else if (mw_slice_ieq(result, "fail"))
				v_r->spf_fail = true;
		}
	}
	return 1;
}

/* mw_verdict_has_test - any of names (separated by ',' or blanks) is in tests */
bool mw_verdict_has_test(const char *tests, const char *names)
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
