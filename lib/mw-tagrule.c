/* mw-tagrule.c - tag rules: validation of fields, keywords, values, mailboxes; matching.
 *
 * Pure functions over strings: no I/O, no allocation except in the clear/free helpers.
 * Used by the store front end (argument checks), mailwardenctl and the Dovecot plugin,
 * so a rule is judged the same way wherever it is written or applied.
 *
 * Public: mw_tagrule_match_name, mw_tagrule_match_parse, mw_tagrule_check_field,
 * mw_tagrule_check_keyword, mw_tagrule_check_value, mw_tagrule_check_mailbox,
 * mw_tagrule_check, mw_tagrule_field_is_address, mw_tagrule_matches, mw_tagrule_glob,
 * mw_tag_rule_clear, mw_tag_rules_free.
 *
 * Diagnostics: through error_r only; messages never echo the rejected text.
 */
#include "mw-build.h"
#include "mw-tagrule.h"

#include <stdlib.h>
#include <string.h>

static const char *const match_names[] = {
    [MW_TAGRULE_EXACT] = "exact",
    [MW_TAGRULE_SUBSTRING] = "substring",
    [MW_TAGRULE_GLOB] = "glob",
    [MW_TAGRULE_DOMAIN] = "domain",
};

/* mw_tagrule_match_name - the stored name of a match type, NULL for a bad value */
const char *mw_tagrule_match_name(enum mw_tagrule_match m)
{
	if ((unsigned)m >= MW_N_ELEMENTS(match_names))
		return NULL;
	return match_names[m];
}

/* mw_tagrule_match_parse - a match type name (ASCII case-insensitive) to its value */
int mw_tagrule_match_parse(const char *name, enum mw_tagrule_match *m_r)
{
	int i = mw_name_index(match_names, MW_N_ELEMENTS(match_names), name);
	if (i < 0)
		return -1;
	*m_r = (enum mw_tagrule_match)i;
	return 0;
}

/* check_len - s is not NULL and 1..max bytes */
static int check_len(const char *what, const char *s, size_t max, size_t *len_r, mw_error *error_r)
{
	size_t len;
	if (s == NULL || *s == '\0') {
		mw_error_set(error_r, "%s is empty", what);
		return -1;
	}
	len = strnlen(s, max + 1);
	if (len > max) {
		mw_error_set(error_r, "%s is longer than %zu bytes", what, max);
		return -1;
	}
	*len_r = len;
	return 0;
}

/* check_utf8_text - valid UTF-8 without control characters */
static int check_utf8_text(const char *what, const char *s, size_t len, mw_error *error_r)
{
	size_t i, n;
	uint32_t cp;
	for (i = 0; i < len; i += n) {
		n = mw_utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			mw_error_set(error_r, "%s is not valid UTF-8", what);
			return -1;
		}
		if (mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "%s contains a control character", what);
			return -1;
		}
	}
	return 0;
}

/* mw_tagrule_check_field - an RFC 5322 field name: printable ASCII except ':' */
int mw_tagrule_check_field(const char *field, mw_error *error_r)
{
	size_t len, i;
	if (check_len("field", field, MW_TAGRULE_FIELD_MAX, &len, error_r) < 0)
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
	if (check_len("keyword", keyword, MW_TAGRULE_KEYWORD_MAX, &len, error_r) < 0)
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
	if (check_len("value", value, MW_TAGRULE_VALUE_MAX, &len, error_r) < 0 ||
	    check_utf8_text("value", value, len, error_r) < 0)
		return -1;
	if (m == MW_TAGRULE_DOMAIN)
		return check_domain(value, len, error_r);
	return 0;
}

/* mw_tagrule_check_mailbox - a mailbox name: UTF-8 text without wildcards */
int mw_tagrule_check_mailbox(const char *mailbox, mw_error *error_r)
{
	size_t len;
	if (check_len("mailbox", mailbox, MW_TAGRULE_MAILBOX_MAX, &len, error_r) < 0 ||
	    check_utf8_text("mailbox", mailbox, len, error_r) < 0)
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

/* lower - ASCII lower case of one byte */
static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* mw_tagrule_glob - '*' and '?' over the whole text, ASCII case-insensitive */
bool mw_tagrule_glob(const char *pattern, const char *text)
{
	const char *p = pattern, *t = text, *star = NULL, *star_t = NULL;
	while (*t != '\0') {
		if (*p == '*') {
			star = p++;
			star_t = t;
		} else if (*p != '\0' && (*p == '?' || lower(*p) == lower(*t))) {
			p++;
			t++;
		} else if (star != NULL) {
			p = star + 1;
			t = ++star_t;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

/* contains_ci - needle occurs in haystack, ASCII case-insensitive */
static bool contains_ci(const char *haystack, const char *needle)
{
	size_t n = strlen(needle), h = strlen(haystack), i;
	if (n > h)
		return false;
	for (i = 0; i + n <= h; i++)
		if (mw_ascii_strncasecmp(haystack + i, needle, n) == 0)
			return true;
	return false;
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

/* host_of_text - the part of a non-address field a domain rule looks at */
static bool text_domain_matches(const char *text, const char *domain)
{
	const char *lt = strchr(text, '<'), *gt, *at;
	mw_slice s = mw_slice_trim(mw_slice_from(text));
	if (lt != NULL && (gt = strchr(lt + 1, '>')) != NULL) {
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

/* one_matches - the rule against one header occurrence */
static bool one_matches(const struct mw_tag_rule *rule, const struct mw_tagrule_subject *s,
                        bool address)
{
	size_t i;
	const char *text = s->text != NULL ? s->text : "";
	switch (rule->match) {
	case MW_TAGRULE_SUBSTRING:
		if (contains_ci(text, rule->value))
			return true;
		break;
	case MW_TAGRULE_EXACT:
		if (!address) {
			mw_slice t = mw_slice_trim(mw_slice_from(text));
			return t.len == strlen(rule->value) &&
			       mw_ascii_strncasecmp(t.ptr, rule->value, t.len) == 0;
		}
		break;
	case MW_TAGRULE_GLOB:
		if (!address)
			return mw_tagrule_glob(rule->value, text);
		break;
	case MW_TAGRULE_DOMAIN:
		if (!address)
			return text_domain_matches(text, rule->value);
		break;
	}
	if (!address)
		return false;
	for (i = 0; i < s->n_addrs; i++) {
		const char *a = s->addrs[i], *at;
		if (a == NULL)
			continue;
		switch (rule->match) {
		case MW_TAGRULE_SUBSTRING:
			if (contains_ci(a, rule->value))
				return true;
			break;
		case MW_TAGRULE_EXACT:
			if (mw_ascii_strcasecmp(a, rule->value) == 0)
				return true;
			break;
		case MW_TAGRULE_GLOB:
			if (mw_tagrule_glob(rule->value, a))
				return true;
			break;
		case MW_TAGRULE_DOMAIN:
			at = strrchr(a, '@');
			if (at != NULL && domain_matches(at + 1, strlen(at + 1), rule->value))
				return true;
			break;
		}
	}
	return false;
}

/* mw_tagrule_matches - the rule against every occurrence of its field */
bool mw_tagrule_matches(const struct mw_tag_rule *rule, const struct mw_tagrule_subject *subjects,
                        size_t n)
{
	bool address;
	size_t i;
	if (rule == NULL || rule->value == NULL || rule->field == NULL || !rule->enabled)
		return false;
	address = mw_tagrule_field_is_address(rule->field);
	for (i = 0; i < n; i++)
		if (one_matches(rule, &subjects[i], address))
			return true;
	return false;
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
	size_t i;
	if (rules == NULL)
		return;
	for (i = 0; i < count; i++)
		mw_tag_rule_clear(&rules[i]);
	free(rules);
}
