/* pd-policy.h - rate-limit policies of mailwarden-policyd: limits, scopes, CIDR lists, and the
   decision for one policy request. */
#ifndef PD_POLICY_H
#define PD_POLICY_H

#include "mw-config.h"
#include "mw-net.h"
#include "mw-ratescope.h"
#include "mw-store.h"
#include "pd-counters.h"
#include "pd-proto.h"

#define PD_MATCH_MAX     255
#define PD_VALUE_MAX     400 /* longest scope value we count (longer: not counted) */
#define PD_RCPT_REMEMBER 16  /* recipients of one message remembered for recipient scopes */

enum pd_scope {
	PD_SCOPE_SASL_USERNAME,
	PD_SCOPE_CLIENT_ADDRESS,
	PD_SCOPE_SENDER,
	PD_SCOPE_SENDER_DOMAIN,
	PD_SCOPE_RECIPIENT,
	PD_SCOPE_RECIPIENT_DOMAIN,
	PD_SCOPE_COUNT
};
enum pd_metric { PD_METRIC_MESSAGES, PD_METRIC_RECIPIENTS, PD_METRIC_SIZE, PD_METRIC_COUNT };
enum pd_action { PD_ACTION_DEFER, PD_ACTION_REJECT };

struct pd_limit {
	enum pd_scope scope;
	enum mw_rate_dir dir;          /* which mail it counts: outbound (default), inbound, both */
	unsigned v4_prefix, v6_prefix; /* client_address: own grouping (0 = the policy's) */
	char match[PD_MATCH_MAX + 1];  /* "" = every value; client_address: a CIDR */
	enum pd_metric metric;
	int64_t count;    /* > 0 */
	int64_t window_s; /* 0 = a cap per message */
	enum pd_action action;
	char user[MW_USERNAME_MAX + 1]; /* "" = everyone; else only this sasl_username */
	char origin[64];                /* "file:line" or "store #ID" */
};

struct pd_policy {
	struct pd_limit *limits;
	size_t count;
	struct mw_cidr *allow, *block;
	size_t allow_count, block_count;
	unsigned v4_prefix, v6_prefix;
	char originating_context[128];
	bool has_rcpt_scopes;
	bool has_inbound; /* some limit counts inbound mail */
};

/* Per-connection message state: ties the RCPT requests of one message (same instance)
   to its END-OF-MESSAGE request. */
struct pd_msg_state {
	char instance[64];
	unsigned rcpts; /* RCPT requests of this instance answered DUNNO */
	unsigned nrcpt_values;
	char rcpt_values[PD_RCPT_REMEMBER][PD_VALUE_MAX + 1];
};

enum pd_stage { PD_STAGE_RCPT, PD_STAGE_EOM, PD_STAGE_OTHER };

enum pd_decision {
	PD_DUNNO,    /* nothing applies (inbound, allow-listed, no limit) */
	PD_BLOCK,    /* block-listed client */
	PD_CAP,      /* a per-message cap is exceeded: eval->cap_limit */
	PD_COUNTERS, /* run eval->reqs through the counter store */
	PD_ERROR,    /* the request cannot be evaluated (eval->error) */
};

struct pd_eval {
	enum pd_stage stage;
	bool commit;
	size_t n;
	struct pd_limit_req reqs[PD_BATCH_MAX];
	const struct pd_limit *limit_of[PD_BATCH_MAX];
	char value_of[PD_BATCH_MAX][PD_VALUE_MAX + 1];
	const struct pd_limit *cap_limit;
	char cap_value[PD_VALUE_MAX + 1];
	char error[128];
};

const char *pd_scope_name(enum pd_scope s);
const char *pd_metric_name(enum pd_metric m);
int pd_scope_parse(const char *s, size_t len, enum pd_scope *s_r);
int pd_metric_parse(const char *s, size_t len, enum pd_metric *m_r);

/* Parses "[DIRECTION:]SCOPE[/V4[/V6]][=MATCH] METRIC COUNT/WINDOW [defer|reject]" (the
   scope word: lib/mw-ratescope.h; WINDOW a duration or "message"). user and origin are left
   empty. */
int pd_limit_parse(const char *spec, struct pd_limit *l, mw_error *error_r);
/* The limit back in that syntax. */
void pd_limit_format(const struct pd_limit *l, char *buf, size_t size);
/* A store rate_policies row as a limit. */
int pd_limit_from_store(const struct mw_rate_policy *p, struct pd_limit *l, mw_error *error_r);

/* The client's network at the given prefix lengths: "192.0.2.0/24", "2001:db8:1:2::/64". */
int pd_addr_group(const char *ip, unsigned v4_prefix, unsigned v6_prefix, char *out, size_t size,
                  mw_error *error_r);

/* The policy from a config snapshot plus store limits (copied). */
struct pd_policy *pd_policy_new(const mw_config *cfg, const struct pd_limit *store_limits,
                                size_t store_count, mw_error *error_r);
void pd_policy_free(struct pd_policy *p);

/* Evaluates one request: which limits apply and at what cost. Updates nothing. */
enum pd_decision pd_policy_eval(const struct pd_policy *p, const struct pd_request *req,
                                const struct pd_msg_state *st, struct pd_eval *ev);
/* Forgets the message state (cheaper than clearing the whole struct). */
void pd_msg_reset(struct pd_msg_state *st);
/* After the answer: the RCPT was let through (count it in the message state). */
void pd_policy_note_rcpt(const struct pd_policy *p, const struct pd_request *req,
                         struct pd_msg_state *st);
/* The action line (without "action=") for a refused request: the first denied limit of res,
   or the cap. */
void pd_policy_action(const struct pd_eval *ev, const struct pd_batch_res *res, char *buf,
                      size_t size);
/* For status: the rate limits of SCOPE's VALUE (a normalised sasl_username, or the client's
   IP address, which each client_address limit groups its own way) as cost-0 requests;
   per-message caps are not included. */
void pd_policy_status(const struct pd_policy *p, enum pd_scope scope, const char *value,
                      struct pd_eval *ev);
/* For reset: the distinct networks IP is counted under (the policy's ipv4_prefix/ipv6_prefix
   grouping first, then each client_address limit's own), in ev->value_of[0..ev->n). */
void pd_policy_client_groups(const struct pd_policy *p, const char *ip, struct pd_eval *ev);
/* The counter key prefix of SCOPE's VALUE ("sasl_username:john@example.org:"). */
int pd_key_prefix(enum pd_scope scope, const char *value, char *buf, size_t size);
/* Builds the counter request for limit l and value (cost c). */
int pd_limit_req_make(const struct pd_limit *l, const char *value, int64_t cost,
                      struct pd_limit_req *r);

#endif
