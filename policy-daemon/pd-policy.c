/* pd-policy.c - what mailwarden-policyd decides for one policy request.
 *
 * Limits come from the config (`limit = [DIRECTION:]SCOPE[=MATCH] METRIC COUNT/WINDOW
 * [defer|reject]` lines) and from the store's rate_policies. For one request:
 *   1. allow list (client_address in a CIDR): DUNNO, nothing counted;
 *   2. block list: 550 5.7.1, at every stage;
 *   3. the request's direction: outbound when sasl_username is set or policy_context equals
 *      originating_context, inbound otherwise (mail from the Internet to local users). Each
 *      limit names the direction it counts (the scope word's DIRECTION: prefix, see
 *      lib/mw-ratescope.h): outbound (the default, so old configs keep their meaning),
 *      inbound or both; only the limits of the request's direction take part below. Inbound
 *      and outbound counters of the same scope and value are kept apart;
 *   4. the limits that apply: each scope's value is taken from the request (sasl_username
 *      and addresses case-folded, client_address grouped to its /ipv4_prefix or /ipv6_prefix
 *      network, or the limit's own /V4/V6: /32 counts one address, /24 its network); a
 *      limit applies when its user (per-user override) and match (if any) fit. Among the
 *      limits of one (scope, prefix, metric, kind) only the most specific apply: a per-user
 *      limit replaces matched and general ones, a matched one replaces general ones;
 *      limits of the same specificity are layered (all apply);
 *   5. costs. At RCPT (check only, nothing charged): messages 1, recipients = RCPTs already
 *      let through in this message + 1, size = the SIZE= the client announced. At
 *      END-OF-MESSAGE (charged, all or nothing): messages 1, recipients = recipient_count,
 *      size = size. Recipient scopes count each recipient remembered from the RCPT stage
 *      (at most PD_RCPT_REMEMBER per message). A WINDOW of "message" is a cap per message,
 *      checked against the same numbers without counters.
 *
 * Public: see pd-policy.h.
 * Diagnostics: parse errors through error_r; evaluation errors in pd_eval.error.
 */
#include "mw-build.h"
#include "pd-policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *const scope_names[PD_SCOPE_COUNT] = {
    "sasl_username", "client_address", "sender", "sender_domain", "recipient", "recipient_domain",
};
_Static_assert(PD_SCOPE_COUNT == MW_RATE_SCOPE_NAMES, "pd_scope follows lib/mw-ratescope.c");
static const char *const metric_names[PD_METRIC_COUNT] = {"messages", "recipients", "size"};

/* pd_scope_name - the config spelling of a scope */
const char *pd_scope_name(enum pd_scope s)
{
	return scope_names[s];
}

/* pd_metric_name - the config spelling of a metric */
const char *pd_metric_name(enum pd_metric m)
{
	return metric_names[m];
}

/* word_find - index of s[0..len) in names, or -1 */
static int word_find(const char *const *names, size_t count, const char *s, size_t len)
{
	size_t i;
	for (i = 0; i < count; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return (int)i;
	return -1;
}

/* pd_scope_parse - a scope name */
int pd_scope_parse(const char *s, size_t len, enum pd_scope *s_r)
{
	int i = word_find(scope_names, PD_SCOPE_COUNT, s, len);
	if (i < 0)
		return -1;
	*s_r = (enum pd_scope)i;
	return 0;
}

/* pd_metric_parse - a metric name */
int pd_metric_parse(const char *s, size_t len, enum pd_metric *m_r)
{
	int i = word_find(metric_names, PD_METRIC_COUNT, s, len);
	if (i < 0)
		return -1;
	*m_r = (enum pd_metric)i;
	return 0;
}

/* next_word - the next blank-separated word of *sp */
static mw_slice next_word(const char **sp)
{
	const char *s = *sp;
	mw_slice w;
	while (*s == ' ' || *s == '\t')
		s++;
	w.ptr = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	w.len = (size_t)(s - w.ptr);
	*sp = s;
	return w;
}

/* limit_scope - the scope word (lib/mw-ratescope.c) into l */
static int limit_scope(const char *s, size_t len, struct pd_limit *l, mw_error *error_r)
{
	struct mw_rate_scope sc;
	if (mw_rate_scope_parse(s, len, &sc, error_r) < 0)
		return -1;
	l->scope = (enum pd_scope)sc.name;
	l->dir = sc.dir;
	l->v4_prefix = sc.v4_prefix;
	l->v6_prefix = sc.v6_prefix;
	return 0;
}

/* pd_limit_parse - "[DIRECTION:]SCOPE[/V4[/V6]][=MATCH] METRIC COUNT/WINDOW [defer|reject]" */
int pd_limit_parse(const char *spec, struct pd_limit *l, mw_error *error_r)
{
	const char *s = spec;
	mw_slice scope = next_word(&s), metric = next_word(&s), rate = next_word(&s);
	mw_slice action = next_word(&s), extra = next_word(&s);
	const char *eq = memchr(scope.ptr, '=', scope.len), *slash;
	char num[32], win[32];
	long long secs = 0;
	char *end;
	memset(l, 0, sizeof(*l));
	if (scope.len == 0 || metric.len == 0 || rate.len == 0 || extra.len != 0) {
		mw_error_set(error_r, "expected [DIRECTION:]SCOPE[=MATCH] METRIC COUNT/WINDOW "
		                      "[defer|reject]");
		return -1;
	}
	if (limit_scope(scope.ptr, eq != NULL ? (size_t)(eq - scope.ptr) : scope.len, l, error_r) <
	    0)
		return -1;
	if (eq != NULL) {
		size_t n = scope.len - (size_t)(eq + 1 - scope.ptr);
		if (n == 0 || n > PD_MATCH_MAX) {
			mw_error_set(error_r, "match value empty or longer than %d bytes",
			             PD_MATCH_MAX);
			return -1;
		}
		memcpy(l->match, eq + 1, n);
		l->match[n] = '\0';
		if (l->scope == PD_SCOPE_CLIENT_ADDRESS) {
			struct mw_cidr c;
			if (mw_cidr_parse(l->match, &c, error_r) < 0)
				return -1;
		} else {
			mw_ascii_lower(l->match);
		}
	}
	if (pd_metric_parse(metric.ptr, metric.len, &l->metric) < 0) {
		mw_error_set(error_r, "unknown metric (expected messages, recipients or size)");
		return -1;
	}
	slash = memchr(rate.ptr, '/', rate.len);
	if (slash == NULL || slash == rate.ptr || (size_t)(slash - rate.ptr) >= sizeof(num) ||
	    rate.len - (size_t)(slash + 1 - rate.ptr) >= sizeof(win)) {
		mw_error_set(error_r, "expected COUNT/WINDOW, e.g. 100/1h");
		return -1;
	}
	memcpy(num, rate.ptr, (size_t)(slash - rate.ptr));
	num[slash - rate.ptr] = '\0';
	memcpy(win, slash + 1, rate.len - (size_t)(slash + 1 - rate.ptr));
	win[rate.len - (size_t)(slash + 1 - rate.ptr)] = '\0';
	errno = 0;
	l->count = strtoll(num, &end, 10);
	if (errno != 0 || *end != '\0' || num[0] < '0' || num[0] > '9') {
		mw_error_set(error_r, "COUNT must be a whole number in 1..%lld", MW_RATE_COUNT_MAX);
		return -1;
	}
	if (strcmp(win, "message") == 0) {
		if (l->metric == PD_METRIC_MESSAGES) {
			mw_error_set(error_r, "a per-message cap counts recipients or size");
			return -1;
		}
		l->window_s = 0;
	} else {
		if (mw_config_parse_duration(win, &secs, error_r) < 0) {
			mw_error_prefix(error_r, "WINDOW: ");
			return -1;
		}
		if (secs < 1 || secs > MW_RATE_WINDOW_MAX) {
			mw_error_set(error_r, "WINDOW must be 1s..366d");
			return -1;
		}
		l->window_s = secs;
	}
	if (mw_rate_limit_check(l->count, l->window_s, true, error_r) < 0)
		return -1;
	if (action.len == 0 || mw_slice_eq(action, "defer")) {
		l->action = PD_ACTION_DEFER;
	} else if (mw_slice_eq(action, "reject")) {
		l->action = PD_ACTION_REJECT;
	} else {
		mw_error_set(error_r, "action must be defer or reject");
		return -1;
	}
	return 0;
}

/* fmt_window - a window in its largest exact unit: 3600 -> "1h" */
static void fmt_window(int64_t s, char *buf, size_t size)
{
	static const struct {
		int64_t secs;
		const char *unit;
	} units[] = {{604800, "w"}, {86400, "d"}, {3600, "h"}, {60, "m"}};
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(units); i++)
		if (s % units[i].secs == 0) {
			(void)snprintf(buf, size, "%" PRId64 "%s", s / units[i].secs,
			               units[i].unit);
			return;
		}
	(void)snprintf(buf, size, "%" PRId64 "s", s);
}

/* pd_limit_format - the limit in config syntax */
void pd_limit_format(const struct pd_limit *l, char *buf, size_t size)
{
	char win[32], scope[MW_RATE_SCOPE_TEXT_MAX + 1];
	struct mw_rate_scope sc = {(unsigned)l->scope, l->dir, l->v4_prefix, l->v6_prefix};
	if (l->window_s == 0)
		mw_strlcpy(win, "message", sizeof(win));
	else
		fmt_window(l->window_s, win, sizeof(win));
	if (mw_rate_scope_format(&sc, scope, sizeof(scope)) < 0)
		mw_strlcpy(scope, pd_scope_name(l->scope), sizeof(scope));
	(void)snprintf(buf, size, "%s%s%s %s %" PRId64 "/%s %s", scope,
	               l->match[0] != '\0' ? "=" : "", l->match, pd_metric_name(l->metric),
	               l->count, win, l->action == PD_ACTION_DEFER ? "defer" : "reject");
}

/* pd_limit_from_store - a rate_policies row as a limit */
int pd_limit_from_store(const struct mw_rate_policy *p, struct pd_limit *l, mw_error *error_r)
{
	memset(l, 0, sizeof(*l));
	if (memchr(p->scope, '\0', sizeof(p->scope)) == NULL ||
	    limit_scope(p->scope, strlen(p->scope), l, NULL) < 0 ||
	    (l->dir != MW_RATE_OUTBOUND && p->username[0] != '\0') ||
	    pd_metric_parse(p->metric, strlen(p->metric), &l->metric) < 0 ||
	    (strcmp(p->action, "defer") != 0 && strcmp(p->action, "reject") != 0) ||
	    mw_rate_limit_check(p->limit_count, p->window_seconds, false, NULL) < 0 ||
	    mw_strlcpy(l->match, p->match, sizeof(l->match)) < 0 ||
	    mw_strlcpy(l->user, p->username, sizeof(l->user)) < 0) {
		mw_error_set(error_r, "rate policy #%lld is malformed", (long long)p->id);
		return -1;
	}
	if (l->scope == PD_SCOPE_CLIENT_ADDRESS && l->match[0] != '\0') {
		struct mw_cidr c;
		if (mw_cidr_parse(l->match, &c, error_r) < 0) {
			mw_error_prefix(error_r, "rate policy #%lld: ", (long long)p->id);
			return -1;
		}
	} else {
		mw_ascii_lower(l->match);
	}
	mw_ascii_lower(l->user);
	l->count = p->limit_count;
	l->window_s = p->window_seconds;
	l->action = strcmp(p->action, "reject") == 0 ? PD_ACTION_REJECT : PD_ACTION_DEFER;
	(void)snprintf(l->origin, sizeof(l->origin), "store #%lld", (long long)p->id);
	return 0;
}

/* pd_addr_group - the client's network at the configured prefix (IPv4-mapped IPv6 stays
   IPv6, as Postfix reports IPv4 clients in IPv4 form anyway) */
int pd_addr_group(const char *ip, unsigned v4_prefix, unsigned v6_prefix, char *out, size_t size,
                  mw_error *error_r)
{
	if (mw_ip_network(ip, v4_prefix, v6_prefix, false, out, size) < 0) {
		mw_error_set(error_r, "client_address is not an IP address");
		return -1;
	}
	return 0;
}

/* add_cidrs - the blank- or comma-separated networks of a STRLIST key */
static int add_cidrs(const char *items, struct mw_cidr **v, size_t *count, const char *what,
                     mw_error *error_r)
{
	char word[128];
	while (*items != '\0') {
		size_t n;
		items += strspn(items, " \t,\n");
		n = strcspn(items, " \t,\n");
		if (n == 0)
			break;
		if (n >= sizeof(word)) {
			mw_error_set(error_r, "%s: network too long", what);
			return -1;
		}
		memcpy(word, items, n);
		word[n] = '\0';
		items += n;
		*v = mw_realloc(*v, (*count + 1) * sizeof(**v));
		if (mw_cidr_parse(word, &(*v)[*count], error_r) < 0) {
			mw_error_prefix(error_r, "%s: %s: ", what, word);
			return -1;
		}
		(*count)++;
	}
	return 0;
}

/* pd_policy_new - config limits and lists, plus a copy of the store's limits */
struct pd_policy *pd_policy_new(const mw_config *cfg, const struct pd_limit *store_limits,
                                size_t store_count, mw_error *error_r)
{
	struct pd_policy *p = mw_calloc(1, sizeof(*p));
	const char *items = mw_config_list(cfg, MWK_PD_LIMIT);
	char line[MW_CONFIG_MAX_LINE + 1];
	size_t i, lineno = 0;
	p->v4_prefix = (unsigned)mw_config_int(cfg, MWK_PD_IPV4_PREFIX);
	p->v6_prefix = (unsigned)mw_config_int(cfg, MWK_PD_IPV6_PREFIX);
	if (mw_strlcpy(p->originating_context, mw_config_str(cfg, MWK_PD_ORIGINATING_CONTEXT),
	               sizeof(p->originating_context)) < 0) {
		mw_error_set(error_r, "originating_context too long");
		goto fail;
	}
	while (*items != '\0') {
		size_t n = strcspn(items, "\n");
		struct pd_limit *l;
		lineno++;
		if (n >= sizeof(line)) {
			mw_error_set(error_r, "limit too long");
			goto fail;
		}
		memcpy(line, items, n);
		line[n] = '\0';
		items += n + (items[n] == '\n');
		p->limits = mw_realloc(p->limits, (p->count + 1) * sizeof(*p->limits));
		l = &p->limits[p->count];
		if (pd_limit_parse(line, l, error_r) < 0) {
			char where[128];
			mw_error_prefix(error_r, "%s: [policyd] limit #%zu: ",
			                mw_config_list_origin(cfg, MWK_PD_LIMIT, lineno - 1, where,
			                                      sizeof(where)),
			                lineno);
			goto fail;
		}
		(void)snprintf(l->origin, sizeof(l->origin), "config #%zu", lineno);
		p->count++;
	}
	if (store_count > 0) {
		p->limits = mw_realloc(p->limits, (p->count + store_count) * sizeof(*p->limits));
		memcpy(p->limits + p->count, store_limits, store_count * sizeof(*p->limits));
		p->count += store_count;
	}
	for (i = 0; i < p->count; i++) {
		if (p->limits[i].scope == PD_SCOPE_RECIPIENT ||
		    p->limits[i].scope == PD_SCOPE_RECIPIENT_DOMAIN)
			p->has_rcpt_scopes = true;
		if (p->limits[i].dir != MW_RATE_OUTBOUND)
			p->has_inbound = true;
	}
	if (add_cidrs(mw_config_list(cfg, MWK_PD_ALLOW), &p->allow, &p->allow_count,
	              "[policyd] allow", error_r) < 0 ||
	    add_cidrs(mw_config_list(cfg, MWK_PD_BLOCK), &p->block, &p->block_count,
	              "[policyd] block", error_r) < 0)
		goto fail;
	return p;
fail:
	pd_policy_free(p);
	return NULL;
}

/* pd_policy_free - free a policy */
void pd_policy_free(struct pd_policy *p)
{
	if (p == NULL)
		return;
	free(p->limits);
	free(p->allow);
	free(p->block);
	free(p);
}

/* lower_copy - a case-folded copy of an attribute; false when too long or with controls */
static bool lower_copy(const char *in, char *out, size_t size)
{
	size_t i;
	if (mw_strlcpy(out, in, size) < 0)
		return false;
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			return false;
	mw_ascii_lower(out);
	return true;
}

/* domain_of - the part after the last '@' ("" when none) */
static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : "";
}

/* limit_v4, limit_v6 - the prefixes a client_address limit groups clients by */
static unsigned limit_v4(const struct pd_policy *p, const struct pd_limit *l)
{
	return l->v4_prefix != 0 ? l->v4_prefix : p->v4_prefix;
}
static unsigned limit_v6(const struct pd_policy *p, const struct pd_limit *l)
{
	return l->v6_prefix != 0 ? l->v6_prefix : p->v6_prefix;
}

/* scope_value - a limit's value in this request ("" = the scope does not apply) */
static void scope_value(const struct pd_policy *p, const struct pd_limit *l,
                        const struct pd_request *req, const char *rcpt, char *out, size_t size)
{
	char tmp[PD_VALUE_MAX + 1];
	enum pd_scope scope = l->scope;
	out[0] = '\0';
	switch (scope) {
	case PD_SCOPE_SASL_USERNAME:
		if (!lower_copy(pd_request_known(req, PD_A_SASL_USERNAME), out, size))
			out[0] = '\0';
		break;
	case PD_SCOPE_CLIENT_ADDRESS:
		if (pd_addr_group(pd_request_known(req, PD_A_CLIENT_ADDRESS), limit_v4(p, l),
		                  limit_v6(p, l), out, size, NULL) < 0)
			out[0] = '\0';
		break;
	case PD_SCOPE_SENDER:
	case PD_SCOPE_SENDER_DOMAIN:
		if (!lower_copy(pd_request_known(req, PD_A_SENDER), tmp, sizeof(tmp)))
			break;
		(void)mw_strlcpy(out, scope == PD_SCOPE_SENDER ? tmp : domain_of(tmp), size);
		break;
	case PD_SCOPE_RECIPIENT:
	case PD_SCOPE_RECIPIENT_DOMAIN:
		if (!lower_copy(rcpt, tmp, sizeof(tmp)))
			break;
		(void)mw_strlcpy(out, scope == PD_SCOPE_RECIPIENT ? tmp : domain_of(tmp), size);
		break;
	case PD_SCOPE_COUNT:
		break;
	}
}

/* limit_fits - the limit's user and match fit this request (value = the scope's value) */
static bool limit_fits(const struct pd_limit *l, const char *user, const char *value)
{
	if (l->user[0] != '\0' && strcmp(l->user, user) != 0)
		return false;
	if (l->match[0] == '\0')
		return true;
	if (l->scope == PD_SCOPE_CLIENT_ADDRESS) {
		struct mw_cidr c;
		char ip[PD_VALUE_MAX + 1];
		char *slash;
		if (mw_cidr_parse(l->match, &c, NULL) < 0 || mw_strlcpy(ip, value, sizeof(ip)) < 0)
			return false;
		slash = strchr(ip, '/');
		if (slash != NULL)
			*slash = '\0';
		return mw_cidr_match(&c, ip);
	}
	return strcmp(l->match, value) == 0;
}

/* specificity - 2 per-user, 1 matched, 0 general */
static int specificity(const struct pd_limit *l)
{
	return l->user[0] != '\0' ? 2 : l->match[0] != '\0' ? 1 : 0;
}

/* same_group - two limits compete for specificity (a per-IP and a per-network limit do not) */
static bool same_group(const struct pd_limit *a, const struct pd_limit *b)
{
	return a->scope == b->scope && a->metric == b->metric &&
	       (a->window_s == 0) == (b->window_s == 0) && a->v4_prefix == b->v4_prefix &&
	       a->v6_prefix == b->v6_prefix;
}

/* applies - the limit counts mail of this direction */
static bool applies(const struct pd_limit *l, bool inbound)
{
	return l->dir == MW_RATE_BOTH || (l->dir == MW_RATE_INBOUND) == inbound;
}

/* pd_key_prefix - "SCOPE:VALUE:" */
int pd_key_prefix(enum pd_scope scope, const char *value, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s:%s:", pd_scope_name(scope), value);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* key_put - append s[0..n) at *off; false when it does not fit (with its NUL) */
static bool key_put(char *buf, size_t size, size_t *off, const char *s, size_t n)
{
	if (n >= size - *off)
		return false;
	memcpy(buf + *off, s, n);
	*off += n;
	return true;
}

/* key_put_num - append a decimal number */
static bool key_put_num(char *buf, size_t size, size_t *off, int64_t v)
{
	char tmp[MW_I64_DIGITS];
	size_t n;
	const char *d = mw_i64_digits(tmp, v, &n);
	return key_put(buf, size, off, d, n);
}

/* pd_limit_req_make - "SCOPE:VALUE:METRIC[@DIRECTION]:WINDOW:COUNT" with window and cost
   (built by hand: snprintf was a visible part of every request). Outbound keys carry no
   direction, as before; inbound and both keys do, so that they never share a counter with an
   outbound limit, and still begin with "SCOPE:VALUE:" for a reset. */
int pd_limit_req_make(const struct pd_limit *l, const char *value, int64_t cost,
                      struct pd_limit_req *r)
{
	const char *scope = pd_scope_name(l->scope), *metric = pd_metric_name(l->metric);
	size_t off = 0, size = sizeof(r->key);
	if (!key_put(r->key, size, &off, scope, strlen(scope)) ||
	    !key_put(r->key, size, &off, ":", 1) ||
	    !key_put(r->key, size, &off, value, strlen(value)) ||
	    !key_put(r->key, size, &off, ":", 1) ||
	    !key_put(r->key, size, &off, metric, strlen(metric)) ||
	    (l->dir != MW_RATE_OUTBOUND && (!key_put(r->key, size, &off, "@", 1) ||
	                                    !key_put(r->key, size, &off, mw_rate_dir_name(l->dir),
	                                             strlen(mw_rate_dir_name(l->dir))))) ||
	    !key_put(r->key, size, &off, ":", 1) || !key_put_num(r->key, size, &off, l->window_s) ||
	    !key_put(r->key, size, &off, ":", 1) || !key_put_num(r->key, size, &off, l->count))
		return -1;
	r->key[off] = '\0';
	r->window_us = l->window_s * 1000000;
	r->limit = l->count;
	r->cost = cost;
	return 0;
}

/* num_attr - a numeric attribute (0 when absent or malformed) */
static int64_t num_attr(const struct pd_request *req, enum pd_known_attr name)
{
	const char *v = pd_request_known(req, name);
	char *end;
	long long n;
	if (*v < '0' || *v > '9')
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	return errno != 0 || *end != '\0' || n < 0 ? 0 : n;
}

/* metric_cost - what one message/recipient adds to a metric at this stage */
static int64_t metric_cost(enum pd_metric m, enum pd_stage stage, const struct pd_request *req,
                           const struct pd_msg_state *st, bool per_rcpt)
{
	switch (m) {
	case PD_METRIC_MESSAGES:
		return 1;
	case PD_METRIC_RECIPIENTS:
		if (per_rcpt)
			return 1;
		return stage == PD_STAGE_RCPT ? (int64_t)st->rcpts + 1
		                              : num_attr(req, PD_A_RECIPIENT_COUNT);
	case PD_METRIC_SIZE:
	case PD_METRIC_COUNT:
		break;
	}
	return num_attr(req, PD_A_SIZE);
}

/* add_req - append one counter request; false when the batch is full */
static bool add_req(struct pd_eval *ev, const struct pd_limit *l, const char *value, int64_t cost)
{
	if (ev->n >= PD_BATCH_MAX) {
		mw_strlcpy(ev->error, "too many limits for one request", sizeof(ev->error));
		return false;
	}
	if (pd_limit_req_make(l, value, cost, &ev->reqs[ev->n]) < 0)
		return true; /* an over-long value is not counted */
	ev->limit_of[ev->n] = l;
	(void)mw_strlcpy(ev->value_of[ev->n], value, sizeof(ev->value_of[ev->n]));
	ev->n++;
	return true;
}

/* instance_matches - the message state belongs to this request's message */
static bool instance_matches(const struct pd_msg_state *st, const struct pd_request *req)
{
	const char *inst = pd_request_known(req, PD_A_INSTANCE);
	return *inst != '\0' && strcmp(st->instance, inst) == 0;
}

/* pd_policy_eval - which limits apply to this request and at what cost */
enum pd_decision pd_policy_eval(const struct pd_policy *p, const struct pd_request *req,
                                const struct pd_msg_state *st_in, struct pd_eval *ev)
{
	const char *client = pd_request_known(req, PD_A_CLIENT_ADDRESS);
	const char *state = pd_request_known(req, PD_A_PROTOCOL_STATE);
	static const struct pd_msg_state empty_state;
	const struct pd_msg_state *st = instance_matches(st_in, req) ? st_in : &empty_state;
	char user[MW_USERNAME_MAX + 1];
	char value[PD_VALUE_MAX + 1];
	bool inbound;
	size_t i, j, r;
	/* not a memset: the batch arrays are large and only their first n entries are read */
	ev->stage = PD_STAGE_OTHER;
	ev->commit = false;
	ev->n = 0;
	ev->cap_limit = NULL;
	ev->cap_value[0] = '\0';
	ev->error[0] = '\0';
	if (strcmp(pd_request_known(req, PD_A_REQUEST), "smtpd_access_policy") != 0) {
		mw_strlcpy(ev->error, "not an smtpd_access_policy request", sizeof(ev->error));
		return PD_ERROR;
	}
	for (i = 0; i < p->allow_count; i++)
		if (mw_cidr_match(&p->allow[i], client))
			return PD_DUNNO;
	for (i = 0; i < p->block_count; i++)
		if (mw_cidr_match(&p->block[i], client))
			return PD_BLOCK;
	if (mw_ascii_strcasecmp(state, "RCPT") == 0)
		ev->stage = PD_STAGE_RCPT;
	else if (mw_ascii_strcasecmp(state, "END-OF-MESSAGE") == 0)
		ev->stage = PD_STAGE_EOM;
	else
		return PD_DUNNO;
	ev->commit = ev->stage == PD_STAGE_EOM;
	if (!lower_copy(pd_request_known(req, PD_A_SASL_USERNAME), user, sizeof(user)))
		user[0] = '\0';
	inbound = user[0] == '\0' &&
	          (p->originating_context[0] == '\0' ||
	           strcmp(pd_request_known(req, PD_A_POLICY_CONTEXT), p->originating_context) != 0);
	if (inbound && !p->has_inbound)
		return PD_DUNNO; /* inbound, and no limit counts inbound mail */
	for (i = 0; i < p->count; i++) {
		const struct pd_limit *l = &p->limits[i];
		bool rcpt_scope =
		    l->scope == PD_SCOPE_RECIPIENT || l->scope == PD_SCOPE_RECIPIENT_DOMAIN;
		bool beaten = false;
		size_t nvalues = 1;
		if (!applies(l, inbound) || (l->user[0] != '\0' && strcmp(l->user, user) != 0))
			continue;
		if (rcpt_scope && ev->stage == PD_STAGE_EOM)
			nvalues = st->nrcpt_values;
		for (r = 0; r < nvalues; r++) {
			const char *rcpt = ev->stage == PD_STAGE_RCPT
			                       ? pd_request_known(req, PD_A_RECIPIENT)
			                       : st->rcpt_values[r];
			scope_value(p, l, req, rcpt, value, sizeof(value));
			if (value[0] == '\0' || !limit_fits(l, user, value))
				continue;
			beaten = false;
			for (j = 0; j < p->count && !beaten; j++)
				if (j != i && same_group(&p->limits[j], l) &&
				    applies(&p->limits[j], inbound) &&
				    specificity(&p->limits[j]) > specificity(l) &&
				    limit_fits(&p->limits[j], user, value))
					beaten = true;
			if (beaten)
				continue;
			if (l->window_s == 0) { /* a cap per message */
				int64_t n = metric_cost(l->metric, ev->stage, req, st, false);
				if (n > l->count) {
					ev->cap_limit = l;
					(void)mw_strlcpy(ev->cap_value, value,
					                 sizeof(ev->cap_value));
					return PD_CAP;
				}
				continue;
			}
			if (!add_req(ev, l, value,
			             metric_cost(l->metric, ev->stage, req, st, rcpt_scope)))
				return PD_ERROR;
		}
	}
	return ev->n > 0 ? PD_COUNTERS : PD_DUNNO;
}

/* pd_policy_status - the rate limits that apply to one value of a scope, at cost 0 (a
   client_address value is the address itself: each limit groups it its own way) */
void pd_policy_status(const struct pd_policy *p, enum pd_scope scope, const char *value,
                      struct pd_eval *ev)
{
	const char *user = scope == PD_SCOPE_SASL_USERNAME ? value : "";
	char v[PD_VALUE_MAX + 1];
	size_t i, j;
	memset(ev, 0, sizeof(*ev));
	for (i = 0; i < p->count; i++) {
		const struct pd_limit *l = &p->limits[i];
		bool beaten = false;
		if (l->scope != scope || l->window_s == 0)
			continue;
		if (scope != PD_SCOPE_CLIENT_ADDRESS)
			(void)mw_strlcpy(v, value, sizeof(v));
		else if (pd_addr_group(value, limit_v4(p, l), limit_v6(p, l), v, sizeof(v), NULL) <
		         0)
			continue;
		if (!limit_fits(l, user, v))
			continue;
		for (j = 0; j < p->count && !beaten; j++)
			if (j != i && same_group(&p->limits[j], l) && p->limits[j].dir == l->dir &&
			    specificity(&p->limits[j]) > specificity(l) &&
			    limit_fits(&p->limits[j], user, v))
				beaten = true;
		if (!beaten && !add_req(ev, l, v, 0))
			return;
	}
}

/* pd_policy_client_groups - the distinct networks an address is counted under */
void pd_policy_client_groups(const struct pd_policy *p, const char *ip, struct pd_eval *ev)
{
	size_t i, j;
	ev->n = 0;
	for (i = 0; i <= p->count && ev->n < PD_BATCH_MAX; i++) {
		const struct pd_limit *l = i < p->count ? &p->limits[i] : NULL;
		char *v = ev->value_of[ev->n];
		if (l != NULL && l->scope != PD_SCOPE_CLIENT_ADDRESS)
			continue;
		if (pd_addr_group(ip, l != NULL ? limit_v4(p, l) : p->v4_prefix,
		                  l != NULL ? limit_v6(p, l) : p->v6_prefix, v, PD_VALUE_MAX + 1,
		                  NULL) < 0)
			continue;
		for (j = 0; j < ev->n && strcmp(ev->value_of[j], v) != 0; j++)
			;
		if (j == ev->n)
			ev->n++;
	}
}

/* pd_msg_reset - forget the message (only the fields that say what the arrays hold) */
void pd_msg_reset(struct pd_msg_state *st)
{
	st->instance[0] = '\0';
	st->rcpts = 0;
	st->nrcpt_values = 0;
}

/* pd_policy_note_rcpt - the RCPT was answered DUNNO: count it for this message */
void pd_policy_note_rcpt(const struct pd_policy *p, const struct pd_request *req,
                         struct pd_msg_state *st)
{
	const char *inst = pd_request_known(req, PD_A_INSTANCE);
	const char *rcpt = pd_request_known(req, PD_A_RECIPIENT);
	unsigned i;
	if (mw_ascii_strcasecmp(pd_request_known(req, PD_A_PROTOCOL_STATE), "RCPT") != 0)
		return;
	if (!instance_matches(st, req)) {
		pd_msg_reset(st);
		if (mw_strlcpy(st->instance, inst, sizeof(st->instance)) < 0)
			st->instance[0] = '\0';
	}
	st->rcpts++;
	if (!p->has_rcpt_scopes || st->nrcpt_values >= PD_RCPT_REMEMBER)
		return;
	for (i = 0; i < st->nrcpt_values; i++)
		if (mw_ascii_strcasecmp(st->rcpt_values[i], rcpt) == 0)
			return;
	if (mw_strlcpy(st->rcpt_values[st->nrcpt_values], rcpt, PD_VALUE_MAX + 1) == 0)
		st->nrcpt_values++;
}

/* printable - the value may go into an SMTP reply as it is */
static bool printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* pd_policy_action - the action line for a refusal */
void pd_policy_action(const struct pd_eval *ev, const struct pd_batch_res *res, char *buf,
                      size_t size)
{
	const struct pd_limit *l = ev->cap_limit;
	const char *value = ev->cap_value, *prefix;
	char win[32], when[32];
	const struct pd_limit_res *lr = NULL;
	size_t i;
	if (l == NULL && res != NULL) {
		for (i = 0; i < res->count && i < ev->n; i++)
			if (!res->res[i].allowed) {
				l = ev->limit_of[i];
				value = ev->value_of[i];
				lr = &res->res[i];
				break;
			}
	}
	if (l == NULL) {
		mw_strlcpy(buf, "DUNNO", size);
		return;
	}
	if (l->action == PD_ACTION_REJECT)
		prefix = "550 5.7.1";
	else if (ev->stage == PD_STAGE_RCPT)
		prefix = "DEFER_IF_PERMIT 4.7.1";
	else
		prefix = "450 4.7.1";
	if (!printable(value))
		value = pd_scope_name(l->scope);
	if (l->window_s == 0) {
		(void)snprintf(buf, size,
		               "%s rate limit: at most %" PRId64 " %s per message for %s", prefix,
		               l->count, pd_metric_name(l->metric), value);
		return;
	}
	fmt_window(l->window_s, win, sizeof(win));
	mw_fmt_duration(
	    lr != NULL
	        ? (l->action == PD_ACTION_REJECT ? lr->reset_after_us : lr->retry_after_us) /
	                  1000000 +
	              ((l->action == PD_ACTION_REJECT ? lr->reset_after_us : lr->retry_after_us) %
	                   1000000 !=
	               0)
	        : l->window_s,
	    when, sizeof(when));
	(void)snprintf(buf, size, "%s rate limit: %" PRId64 " %s per %s for %s, %s %s", prefix,
	               l->count, pd_metric_name(l->metric), win, value,
	               l->action == PD_ACTION_REJECT ? "resets in" : "retry in", when);
}
