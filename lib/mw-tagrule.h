/* mw-tagrule.h - users' tag rules: validation of their parts and matching (no I/O).
 *
 * A tag rule says: when header FIELD of a delivered message matches VALUE (exact,
 * substring, glob or domain), set IMAP keyword KEYWORD and/or file it into MAILBOX.
 * The store keeps them (tag_rules); the Dovecot plugin applies them; mailwardenctl and
 * the API validate them with the same functions before storing.
 */
#ifndef MW_TAGRULE_H
#define MW_TAGRULE_H

#include "mw-util.h"

#define MW_TAGRULE_FIELD_MAX    64  /* a header field name */
#define MW_TAGRULE_VALUE_MAX    512 /* what is matched against */
#define MW_TAGRULE_KEYWORD_MAX  64  /* an IMAP keyword (atom) */
#define MW_TAGRULE_MAILBOX_MAX  255 /* a mailbox name (UTF-8) */
#define MW_TAGRULE_MAX_PER_USER 500 /* rules a user may have */

enum mw_tagrule_match {
	MW_TAGRULE_EXACT,
	MW_TAGRULE_SUBSTRING,
	MW_TAGRULE_GLOB,
	MW_TAGRULE_DOMAIN,
};

/* One rule as stored. keyword and mailbox may be NULL (not both). Strings are owned. */
struct mw_tag_rule {
	int64_t id;
	int64_t position;
	char *field;
	enum mw_tagrule_match match;
	char *value;
	char *keyword;
	char *mailbox;
	bool enabled;
};

const char *mw_tagrule_match_name(enum mw_tagrule_match m);
int mw_tagrule_match_parse(const char *name, enum mw_tagrule_match *m_r);

/* Validation; each returns 0, or -1 with the reason in error_r.
   field: an RFC 5322 field name (printable ASCII except ':'), 1..MW_TAGRULE_FIELD_MAX.
   keyword: an IMAP flag-keyword atom (RFC 3501: CHARs except atom-specials and ']'),
   not starting with '\' (system flags), 1..MW_TAGRULE_KEYWORD_MAX.
   value: valid UTF-8 without control characters, 1..MW_TAGRULE_VALUE_MAX; for domain
   matching a domain name (letters, digits, '-', '.', no leading/trailing dot).
   mailbox: valid UTF-8 without control characters or '*' '%', 1..MW_TAGRULE_MAILBOX_MAX. */
int mw_tagrule_check_field(const char *field, mw_error *error_r);
int mw_tagrule_check_keyword(const char *keyword, mw_error *error_r);
int mw_tagrule_check_value(enum mw_tagrule_match m, const char *value, mw_error *error_r);
int mw_tagrule_check_mailbox(const char *mailbox, mw_error *error_r);
/* The whole rule: every part, and at least one of keyword and mailbox. */
int mw_tagrule_check(const struct mw_tag_rule *rule, mw_error *error_r);

/* Address header fields (From, To, Cc, Reply-To, Sender...): their rules match
   addresses, not the raw text (except substring, which sees both). */
bool mw_tagrule_field_is_address(const char *field);

/* What one header occurrence offers to matching: its unfolded text and, for address
   fields, the addresses in it ("local@domain"). */
struct mw_tagrule_subject {
	const char *text;
	const char *const *addrs;
	size_t n_addrs;
};

/* Limits and accounting for matching. The Dovecot plugin gives one of these to every rule
   of a delivery: text_max caps the bytes of each header text (and each address) looked
   at, budget caps the steps of the whole delivery. A step is one byte comparison or one
   64-bit word operation of the matchers (every match is linear in the text: see
   mw-tagrule.c); steps also serves tests as a count to bound. */
#define MW_TAGRULE_TEXT_MAX_DEFAULT 8192     /* bytes of one header examined */
#define MW_TAGRULE_BUDGET_DEFAULT   20000000 /* steps for all rules of one delivery */
struct mw_tagrule_work {
	size_t text_max; /* 0: no cap */
	uint64_t budget; /* 0: no budget */
	uint64_t steps;  /* spent so far */
	bool truncated;  /* a text was longer than text_max: only its start was examined */
	bool exhausted;  /* the budget ran out: no rule matches any more */
};

/* True when rule matches any of the n subjects (occurrences of rule->field).
   Comparison is ASCII case-insensitive. exact: the whole text (or an address) equals
   value; substring: value occurs in the text or an address; glob: '*' any run, '?' one
   byte, over the whole text (or an address); domain: an address's domain (for non-address
   fields: the text inside <...> if any, else the text) equals value or ends in "."value.
   With work (may be NULL: no cap, no budget): only the first work->text_max bytes of each
   text and address are examined, steps are added to work->steps, and once they pass
   work->budget the rule (and every later call with this work) does not match and
   work->exhausted is set. */
bool mw_tagrule_matches_work(const struct mw_tag_rule *rule,
                             const struct mw_tagrule_subject *subjects, size_t n,
                             struct mw_tagrule_work *work);
bool mw_tagrule_matches(const struct mw_tag_rule *rule, const struct mw_tagrule_subject *subjects,
                        size_t n);
/* The same with the field's kind given: ADDRESS must be mw_tagrule_field_is_address(
   rule->field), worked out once by a caller that matches the rule many times. */
bool mw_tagrule_matches_field(const struct mw_tag_rule *rule, bool address,
                              const struct mw_tagrule_subject *subjects, size_t n,
                              struct mw_tagrule_work *work);
/* A rule prepared for matching many messages (the plugin's rule cache): its value
   compiled once. mw_tagrule_prepare returns NULL only when out of memory; the rule must
   outlive the prep and stay unchanged. mw_tagrule_matches_prep gives what
   mw_tagrule_matches_field gives and counts the same steps (prep NULL: compiled now). */
struct mw_tagrule_prep;
struct mw_tagrule_prep *mw_tagrule_prepare(const struct mw_tag_rule *rule);
void mw_tagrule_prep_free(struct mw_tagrule_prep *prep);
bool mw_tagrule_matches_prep(const struct mw_tag_rule *rule, const struct mw_tagrule_prep *prep,
                             bool address, const struct mw_tagrule_subject *subjects, size_t n,
                             struct mw_tagrule_work *work);

/* Glob matching on its own (tests, fuzzing): '*' and '?', ASCII case-insensitive, in
   O(m + n * ceil(m/64)) steps for a pattern of m <= MW_TAGRULE_VALUE_MAX bytes (a longer
   one never matches) and a text of n. */
bool mw_tagrule_glob(const char *pattern, const char *text);
bool mw_tagrule_glob_work(const char *pattern, const char *text, struct mw_tagrule_work *work);

void mw_tag_rule_clear(struct mw_tag_rule *rule);
void mw_tag_rules_free(struct mw_tag_rule *rules, size_t count);

#endif
