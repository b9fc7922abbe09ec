/* mw-ratescope.h - the scope word of a rate limit, shared by every place that reads or writes
 * one: mailwarden-policyd's `limit =` lines and store rows, the store's check of
 * rate_policies, mailwardenctl ratelimit policy and the API.
 *
 *   [DIRECTION:]NAME[/V4[/V6]]
 *
 * DIRECTION is outbound (authenticated or `originating` mail; the default, so a word without
 * it keeps its old meaning), inbound (mail from the Internet to local users) or both. NAME is
 * one of sasl_username client_address sender sender_domain recipient recipient_domain.
 * /V4[/V6] (client_address only) groups clients per network for this limit: /32 is one IPv4
 * address, /24 its network; without it the policy's ipv4_prefix/ipv6_prefix apply. The
 * store keeps the word in rate_policies.scope as it is printed here (outbound not spelled
 * out), so the schema is unchanged and old rows read as before.
 */
#ifndef MW_RATESCOPE_H
#define MW_RATESCOPE_H

#include "mw-util.h"

#define MW_RATE_SCOPE_NAMES    6
#define MW_RATE_SCOPE_TEXT_MAX 31 /* the longest word (fits rate_policies.scope) */

enum mw_rate_dir { MW_RATE_OUTBOUND, MW_RATE_INBOUND, MW_RATE_BOTH, MW_RATE_DIR_COUNT };

struct mw_rate_scope {
	unsigned name;                 /* index into mw_rate_scope_name(): 0 sasl_username .. 5 */
	enum mw_rate_dir dir;          /* MW_RATE_OUTBOUND when not given */
	unsigned v4_prefix, v6_prefix; /* 0 = the policy's ipv4_prefix / ipv6_prefix */
};

/* mw_rate_scope_name - NAME of index i (sasl_username, client_address, sender, sender_domain,
   recipient, recipient_domain) */
const char *mw_rate_scope_name(unsigned i);
/* mw_rate_dir_name - outbound, inbound or both */
const char *mw_rate_dir_name(enum mw_rate_dir d);
/* mw_rate_dir_parse - a direction word s[0..len); -1 with the reason */
int mw_rate_dir_parse(const char *s, size_t len, enum mw_rate_dir *dir_r, mw_error *error_r);
/* mw_rate_scope_parse - the scope word s[0..len); -1 with a reason naming the bad part */
int mw_rate_scope_parse(const char *s, size_t len, struct mw_rate_scope *scope_r,
                        mw_error *error_r);
/* mw_rate_scope_format - the word back (outbound not spelled out); -1 when it does not fit */
int mw_rate_scope_format(const struct mw_rate_scope *scope, char *buf, size_t size);

#endif
