/* mw-verdict.h - parsing the verdict headers the milter writes (DESIGN.md "Contracts").
 *
 * No Dovecot here: the plugin feeds header values in, the unit tests do the same.
 */
#ifndef MW_VERDICT_H
#define MW_VERDICT_H

#include "mw-util.h"

#define MW_VERDICT_HEADER_MAX 4096 /* a longer header value is refused, not cut */
#define MW_VERDICT_TESTS_MAX  1024
#define MW_VERDICT_SIG_MAX    256

/* X-Mailwarden-Spam: yes|no; score=S; required=R; tests=NAME1,NAME2 */
struct mw_spam_verdict {
	bool spam;
	char tests[MW_VERDICT_TESTS_MAX + 1]; /* "NAME1,NAME2" or "" */
};

/* X-Mailwarden-Virus: clean|infected (SIGNATURE) */
struct mw_virus_verdict {
	bool infected;
	char signature[MW_VERDICT_SIG_MAX + 1];
};

/* Authentication-Results (RFC 8601) written by our authserv-id. Each field: the method
   had at least one result of that kind. */
struct mw_auth_verdict {
	bool dkim_pass, dkim_fail;
	bool dmarc_pass, dmarc_fail;
	bool spf_pass, spf_fail;
};

/* Each returns 0 and fills *v_r, or -1 (malformed or over-long: the header is ignored,
   error_r says why). */
int mw_verdict_parse_spam(const char *value, struct mw_spam_verdict *v_r, mw_error *error_r);
int mw_verdict_parse_virus(const char *value, struct mw_virus_verdict *v_r, mw_error *error_r);
/* 1 and merges the results into *v_r when the header's authserv-id is authserv_id
   (ASCII case-insensitive), 0 when it is someone else's (v_r untouched), -1 malformed. */
int mw_verdict_parse_authres(const char *value, const char *authserv_id,
                             struct mw_auth_verdict *v_r, mw_error *error_r);
/* True when the comma-separated list holds name (ASCII case-insensitive). names_csv may
   itself hold several names separated by commas or blanks: true when any is present. */
bool mw_verdict_has_test(const char *tests, const char *names);

#endif
