/* mw-spam.h - the spam score of one message: the sum of the weights of the named tests it
 * fires (SPF/DKIM/DMARC outcomes, DNS block lists, header heuristics, classifier bands).
 *
 * mw_spam_score is a pure function of its input (the raw message, the authentication
 * results, client IP, HELO, envelope sender) and its settings; the DNS lists and the
 * classifier are reached through callbacks, so unit tests run without a resolver or a store
 * (the milter passes wrappers around mw_dns_query and mw_classifier_score).
 *
 * A list lookup that fails (timeout, SERVFAIL, an answer outside 127.0.0.0/8 or a list's
 * 127.255.255.x error code) never adds score: it is counted and its reason kept for the
 * log. At most max_lookups list queries are made per message.
 */
#ifndef MW_SPAM_H
#define MW_SPAM_H

#include "mw-authcheck.h"
#include "mw-config.h"
#include "mw-headers.h"
#include "mw-spamd.h"
#include "mw-util.h"

enum mw_spam_test {
	MW_SPAM_SPF_FAIL,
	MW_SPAM_SPF_SOFTFAIL,
	MW_SPAM_DKIM_INVALID,
	MW_SPAM_DMARC_FAIL,
	MW_SPAM_DMARC_PASS,
	MW_SPAM_RCVD_IN_DNSBL,
	MW_SPAM_RHSBL_SENDER,
	MW_SPAM_URIBL,
	MW_SPAM_MISSING_DATE,
	MW_SPAM_MISSING_MID,
	MW_SPAM_HELO_IP_LITERAL,
	MW_SPAM_HELO_LOCAL_FORGED,
	MW_SPAM_FROM_DISPLAY_ADDR,
	MW_SPAM_FROM_LOOKALIKE,
	MW_SPAM_HTML_HIDDEN,
	MW_SPAM_ATTACH_EXECUTABLE,
	MW_SPAM_ATTACH_DOUBLE_EXT,
	MW_SPAM_FREEMAIL_REPLYTO,
	MW_SPAM_BAYES_00,
	MW_SPAM_BAYES_20,
	MW_SPAM_BAYES_50,
	MW_SPAM_BAYES_67,
	MW_SPAM_BAYES_80,
	MW_SPAM_BAYES_95,
	MW_SPAM_BAYES_99,
	MW_SPAM_TEST_COUNT
};

/* The name of a test as it appears in tests= ("SPF_FAIL", "BAYES_99", ...). */
const char *mw_spam_test_name(enum mw_spam_test t);

/* A list lookup: 1 listed (a_r holds the first A record), 0 not listed (NXDOMAIN, NODATA),
   -1 failed (error_r). */
typedef int mw_spam_dns_fn(void *ctx, const char *name, unsigned char a_r[4], mw_error *error_r);
/* The classifier: as mw_classifier_score (0 with p_r, 1 untrained, -1 error). */
typedef int mw_spam_classify_fn(void *ctx, const char *msg, size_t len, double *p_r,
                                mw_error *error_r);

#define MW_SPAM_LIST_MAX 256 /* a zone or domain list value, in bytes */

/* Who scores: the tests below (builtin) or SpamAssassin's spamd (spam_backend). */
enum mw_spam_backend { MW_SPAM_BACKEND_BUILTIN, MW_SPAM_BACKEND_SPAMD };

struct mw_spam_settings {
	long weight[MW_SPAM_TEST_COUNT]; /* hundredths of a point */
	long required;                   /* spam_score: tag at or above (hundredths) */
	long reject;                     /* reject_score (hundredths); 0 = never reject */
	char dnsbl_zones[MW_SPAM_LIST_MAX];
	char rhsbl_zones[MW_SPAM_LIST_MAX];
	char uribl_zones[MW_SPAM_LIST_MAX];
	char freemail_domains[1024];
	char local_domains[1024];
	unsigned max_lookups;
	mw_spam_dns_fn *dns;
	void *dns_ctx;
	mw_spam_classify_fn *classify; /* NULL: no classifier tests */
	void *classify_ctx;
	enum mw_spam_backend backend;
	struct mw_spamd_settings spamd; /* backend SPAMD: address, user, timeout */
};

/* The [spam] keys (and [milter] local_domains) of cfg into s; callbacks NULL. -1 with
   error_r for a weight or threshold that is not a decimal with at most two places, or a
   spam_backend / spamd_user that mw-spamd refuses. */
int mw_spam_settings_from_config(const mw_config *cfg, struct mw_spam_settings *s,
                                 mw_error *error_r);
/* A decimal "-1.5", "3", "0.25" into hundredths; -1 for anything else. */
int mw_spam_parse_points(const char *s, long *hundredths_r);

struct mw_spam_input {
	const char *msg; /* the message as received (header, blank line, body) */
	size_t len;
	const struct mw_auth_results *auth; /* NULL: no SPF/DKIM/DMARC tests */
	const char *client_ip;              /* "" or NULL: no DNSBL */
	const char *helo;                   /* "" or NULL when none */
	const char *envfrom;                /* "<a@b>", "<>", or NULL */
};

struct mw_spam_result {
	long score; /* hundredths */
	bool spam;  /* score >= required */
	bool fired[MW_SPAM_TEST_COUNT];
	char tests[MW_HDR_TESTS_MAX + 1]; /* "NAME1,NAME2" in firing order */
	unsigned lookups;                 /* list queries made */
	unsigned dns_failures;            /* of which failed (never scored) */
	char dns_error[200];              /* the first failure: "ZONE: why" */
	bool lookups_capped;              /* max_lookups was reached */
	bool classifier_skipped;          /* untrained or unavailable */
	char classifier_error[200];       /* why unavailable ("" when untrained or used) */
	double bayes;                     /* the classifier's probability, -1 when none */
	bool mime_refused;                /* content tests skipped (mw-mime refused it) */
};

/* Scores one message. Never fails: what cannot be judged adds nothing. */
void mw_spam_score(const struct mw_spam_settings *s, const struct mw_spam_input *in,
                   struct mw_spam_result *r);

/* A result from spamd's verdict: its score against s->required, its test names (as many
   whole names as tests holds). */
void mw_spam_from_spamd(const struct mw_spam_settings *s, const struct mw_spamd_result *sr,
                        struct mw_spam_result *r);
/* A result for a message spamd did not score and that is accepted anyway: score 0, not
   spam, tests = NAME (SPAMD_UNAVAILABLE, SPAMD_TOO_BIG). */
void mw_spam_unscored(const char *name, struct mw_spam_result *r);

/* The X-Mailwarden-Spam value for a result (through lib/mw-headers' printer). */
int mw_spam_header(const struct mw_spam_settings *s, const struct mw_spam_result *r, mw_str *out,
                   mw_error *error_r);

#endif
