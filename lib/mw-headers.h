/* mw-headers.h - the verdict headers the milter writes and the Dovecot plugin reads: the one
 * printer and the one parser of each (DESIGN.md "Contracts between components", rule 12).
 *
 *   Authentication-Results: <authserv-id>; method=result [(comment)] [ptype.prop=value ...]; ...
 *   X-Mailwarden-Spam: yes|no; score=S; required=R; tests=NAME1,NAME2
 *   X-Mailwarden-Virus: clean|infected (SIGNATURE)
 *
 * Only lib/mw-util is used: the plugin compiles this file into its own module.
 *
 * Who is ours. The milter deletes every Authentication-Results header whose authserv-id
 * mw_hdr_authres_id() cannot prove to be someone else's (MW_HDR_ID_FOREIGN), and every
 * X-Mailwarden-* header, then adds its own. The plugin believes an Authentication-Results
 * header only through mw_hdr_authres_pick(): exactly one header may claim our id, it must be
 * the first one, and it must parse.
 */
#ifndef MW_HEADERS_H
#define MW_HEADERS_H

#include "mw-util.h"

#define MW_HDR_VALUE_MAX     8192    /* a longer header value is refused, never cut */
#define MW_HDR_FOLD_AT       78      /* printed values are folded before this column */
#define MW_HDR_ID_MAX        253     /* authserv-id (a host name) */
#define MW_HDR_AR_RESULTS    16      /* resinfo entries in one Authentication-Results */
#define MW_HDR_AR_PROPS      4       /* properties of one result */
#define MW_HDR_AR_WORD_MAX   31      /* method, ptype.property */
#define MW_HDR_AR_PVALUE_MAX 400     /* a property value (an address fits) */
#define MW_HDR_AR_COMMENT    95      /* the comment right after a result (a reason) */
#define MW_HDR_TESTS_MAX     1024    /* tests=NAME1,NAME2 */
#define MW_HDR_SIG_MAX       256     /* a virus signature name */
#define MW_HDR_SCORE_MAX     9999999 /* |score| in hundredths (99999.99) */

/* RFC 8601 result words. */
enum mw_auth_result {
	MW_AUTH_NONE,
	MW_AUTH_PASS,
	MW_AUTH_FAIL,
	MW_AUTH_SOFTFAIL,
	MW_AUTH_NEUTRAL,
	MW_AUTH_POLICY,
	MW_AUTH_TEMPERROR,
	MW_AUTH_PERMERROR,
};
const char *mw_auth_result_str(enum mw_auth_result r);
/* -1 when word is not a result word (ASCII case-insensitive). */
int mw_auth_result_parse(const char *word, size_t len, enum mw_auth_result *r_r);

/* ---- header names ---- */

/* "Authentication-Results", any case, blanks before the colon ignored. */
bool mw_hdr_name_is_authres(const char *name);
/* "X-Mailwarden-*", any case: every such header is ours and deleted on the way in. */
bool mw_hdr_name_is_ours(const char *name);

/* ---- Authentication-Results ---- */

struct mw_hdr_ar_prop {
	char name[MW_HDR_AR_WORD_MAX + 1]; /* "smtp.mailfrom" (lower case) */
	char value[MW_HDR_AR_PVALUE_MAX + 1];
};

struct mw_hdr_ar_result {
	char method[MW_HDR_AR_WORD_MAX + 1]; /* "dkim" (lower case) */
	enum mw_auth_result result;
	char comment[MW_HDR_AR_COMMENT + 1]; /* "" or the comment's text, e.g. "p=reject" */
	size_t nprops;
	struct mw_hdr_ar_prop props[MW_HDR_AR_PROPS];
};

struct mw_hdr_authres {
	char authserv_id[MW_HDR_ID_MAX + 1];
	size_t count; /* 0: "id; none" */
	struct mw_hdr_ar_result results[MW_HDR_AR_RESULTS];
};

/* What the authserv-id of an Authentication-Results value says about its author. */
enum mw_hdr_id_class {
	MW_HDR_ID_UNKNOWN, /* cannot parse it (or it is over-long, or holds NUL, 8-bit or CTL
	                      bytes): it could be ours */
	MW_HDR_ID_OURS,    /* ours in some normalisation (case, quoting, quoted-pairs, comments,
	                      folding, trailing dot) */
	MW_HDR_ID_FOREIGN, /* provably someone else's: a clean host name that is not ours */
};
/* value/len: the bytes after the colon (leading blank and folding allowed). An empty or
   NULL ours makes every id UNKNOWN (nothing can be proved foreign to an unknown id). */
enum mw_hdr_id_class mw_hdr_authres_id(const char *value, size_t len, const char *ours);

/* 0 and *ar_r, or -1 (error_r) when value is not a well-formed header (strict RFC 8601
   shape: the authserv-id as mw_hdr_authres_id reads it; each result "method[/v]=result",
   an optional comment, optional "reason=value", properties "ptype.property=value"; results
   outside the result words, too many results or properties, over-long fields, NUL, 8-bit or
   control bytes are refused). Comments other than the first after a result are skipped. */
int mw_hdr_authres_parse(const char *value, size_t len, struct mw_hdr_authres *ar_r,
                         mw_error *error_r);
/* Appends the value (no name, no leading blank) to out: "id; m=r (c) p.q=v; ...", folded
   with "\n\t" before a result or property that would pass MW_HDR_FOLD_AT columns (a line of
   the header never comes near RFC 5322's 998 octets, which Postfix would split). Values that
   are not plain words are written as quoted-strings; anything the parser would not read back
   as it was given (unsafe id, bytes outside printable ASCII, a ')' in a comment, empty
   fields) is refused: -1, out unchanged. */
int mw_hdr_authres_print(const struct mw_hdr_authres *ar, mw_str *out, mw_error *error_r);
/* True when the two hold the same results (the id compared ASCII case-insensitively). */
bool mw_hdr_authres_equal(const struct mw_hdr_authres *a, const struct mw_hdr_authres *b);

/* The header the milter wrote, among all Authentication-Results values of a delivered
   message in header order: 1 and *ar_r when exactly one value claims our id (anything not
   MW_HDR_ID_FOREIGN), it is the first value and it parses with id ours; 0 when no value
   claims it; -1 (error_r) when one claimant is ambiguous or malformed: nothing is believed. */
int mw_hdr_authres_pick(const char *const *values, size_t n, const char *ours,
                        struct mw_hdr_authres *ar_r, mw_error *error_r);

/* What the plugin needs of our header: was there a result of each kind. */
struct mw_hdr_auth_summary {
	bool dkim_pass, dkim_fail; /* fail: fail or permerror */
	bool dmarc_pass, dmarc_fail;
	bool spf_pass, spf_fail;
};
void mw_hdr_authres_summary(const struct mw_hdr_authres *ar, struct mw_hdr_auth_summary *s_r);
/* mw_hdr_authres_pick and mw_hdr_authres_summary in one, the same return and the same
   summary (all false unless 1), without the ~30 KB struct mw_hdr_authres: the same parser
   reads each result into one scratch result (the plugin's per-delivery path). */
int mw_hdr_authres_pick_summary(const char *const *values, size_t n, const char *ours,
                                struct mw_hdr_auth_summary *s_r, mw_error *error_r);

/* ---- X-Mailwarden-Spam ---- */

struct mw_hdr_spam {
	bool spam;
	long score;                       /* hundredths of a point */
	long required;                    /* hundredths */
	char tests[MW_HDR_TESTS_MAX + 1]; /* "NAME1,NAME2" or "" */
};
/* "yes|no" then "; name=value" parameters, each at most once: score and required are
   decimals with at most two places within +-MW_HDR_SCORE_MAX hundredths (missing: 0), tests a
   comma-separated list of [A-Za-z0-9_.-] names; unknown parameters are ignored. -1 for
   anything else (error_r; the header text is never echoed). */
int mw_hdr_spam_parse(const char *value, size_t len, struct mw_hdr_spam *v_r, mw_error *error_r);
int mw_hdr_spam_print(const struct mw_hdr_spam *v, mw_str *out, mw_error *error_r);
bool mw_hdr_spam_equal(const struct mw_hdr_spam *a, const struct mw_hdr_spam *b);
/* True when any of names (separated by ',' or blanks) is in the tests list. */
bool mw_hdr_tests_has(const char *tests, const char *names);

/* ---- X-Mailwarden-Virus ---- */

struct mw_hdr_virus {
	bool infected;
	char signature[MW_HDR_SIG_MAX + 1]; /* "" when infected without a name */
};
/* "clean" or "infected" with an optional "(SIGNATURE)" of printable ASCII without blanks,
   parentheses, quotes, ';' or '\'. */
int mw_hdr_virus_parse(const char *value, size_t len, struct mw_hdr_virus *v_r, mw_error *error_r);
int mw_hdr_virus_print(const struct mw_hdr_virus *v, mw_str *out, mw_error *error_r);
bool mw_hdr_virus_equal(const struct mw_hdr_virus *a, const struct mw_hdr_virus *b);

#endif
