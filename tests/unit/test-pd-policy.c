/* test-pd-policy.c - policies of mailwarden-policyd: limit syntax, CIDR parsing and client
   grouping (v4/v6), the repeatable `limit` key (STRLIST in mw-config), and policy matching:
   outbound only, allow/block lists, per-user overrides, layering, costs per stage, the
   answers' wording. */
#include "mw-build.h"
#include "pd-policy.h"

#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *spec;
	const char *back; /* NULL = refused */
} limit_cases[] = {
    {"sasl_username messages 100/1h defer", "sasl_username messages 100/1h defer"},
    {"sasl_username messages 100/3600", "sasl_username messages 100/1h defer"},
    {"  sender_domain=Example.ORG   size 10485760/1d   reject ",
     "sender_domain=example.org size 10485760/1d reject"},
    {"client_address=192.0.2.0/24 messages 5/90s",
     "client_address=192.0.2.0/24 messages 5/90s defer"},
    {"sasl_username recipients 50/message reject", "sasl_username recipients 50/message reject"},
    {"recipient_domain recipients 7/2w", "recipient_domain recipients 7/2w defer"},
    {"sasl_username messages/message 5/message", NULL},
    {"sasl_username messages 5/message", NULL},
    {"nosuch messages 1/1h", NULL},
    {"sasl_username bytes 1/1h", NULL},
    {"sasl_username messages 0/1h", NULL},
    {"sasl_username messages -1/1h", NULL},
    {"sasl_username messages 1/0s", NULL},
    {"sasl_username messages 1/400d", NULL},
    /* the bounds pd_gcra computes exactly (MW_RATE_COUNT_MAX, MW_RATE_WINDOW_MAX) */
    {"sasl_username size 1000000000000000/366d", "sasl_username size 1000000000000000/366d defer"},
    {"sasl_username size 1000000000000000/1s", "sasl_username size 1000000000000000/1s defer"},
    {"sasl_username size 1000000000000001/1h", NULL},
    {"sasl_username size 9223372036854775807/1h", NULL},
    {"sasl_username size 99999999999999999999/1h", NULL},
    {"sasl_username recipients 1000000000000001/message", NULL},
    {"sasl_username messages 1/31622400", "sasl_username messages 1/366d defer"},
    {"sasl_username messages 1/31622401", NULL},
    {"sasl_username messages 1h", NULL},
    {"sasl_username messages 10/1h maybe", NULL},
    {"sasl_username messages 10/1h defer extra", NULL},
    {"client_address=not-an-ip messages 1/1h", NULL},
    {"sasl_username= messages 1/1h", NULL},
    {"", NULL},
    /* directions and per-limit client grouping (lib/mw-ratescope.c) */
    {"outbound:sasl_username messages 3/1h", "sasl_username messages 3/1h defer"},
    {"inbound:client_address/32/128 messages 30/1m",
     "inbound:client_address/32/128 messages 30/1m defer"},
    {"both:client_address/24=192.0.2.0/22 recipients 100/1h reject",
     "both:client_address/24=192.0.2.0/22 recipients 100/1h reject"},
    {"inbound:recipient messages 50/1h", "inbound:recipient messages 50/1h defer"},
    {"inbound:recipient_domain recipients 100/message",
     "inbound:recipient_domain recipients 100/message defer"},
    {"sideways:client_address messages 1/1h", NULL},
    {"Inbound:client_address messages 1/1h", NULL},
    {":client_address messages 1/1h", NULL},
    {"inbound:sasl_username messages 1/1h", NULL},
    {"both:sasl_username messages 1/1h", NULL},
    {"inbound:sender/24 messages 1/1h", NULL},
    {"inbound:client_address/33 messages 1/1h", NULL},
    {"inbound:client_address/7 messages 1/1h", NULL},
    {"inbound:client_address/24/129 messages 1/1h", NULL},
    {"inbound:client_address/24/64/1 messages 1/1h", NULL},
    {"inbound:client_address/ messages 1/1h", NULL},
    {"inbound:client_address/x messages 1/1h", NULL},
};

static void test_limit_parse(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(limit_cases); i++) {
		struct pd_limit l;
		mw_error err = {""};
		char back[512];
		int r = pd_limit_parse(limit_cases[i].spec, &l, &err);
		if (limit_cases[i].back == NULL) {
			if (r == 0)
				fail_msg("case %zu accepted: %s", i, limit_cases[i].spec);
			/* a count out of range is named with its bound */
			if (strstr(limit_cases[i].spec, "000000000000001/") != NULL &&
			    strstr(err.msg,
			           "count must be a whole number in 1..1000000000000000") == NULL)
				fail_msg("case %zu: %s", i, err.msg);
			continue;
		}
		if (r != 0)
			fail_msg("case %zu refused: %s", i, err.msg);
		pd_limit_format(&l, back, sizeof(back));
		assert_string_equal(back, limit_cases[i].back);
	}
}

static const struct {
	const char *ip;
	unsigned v4, v6;
	const char *group; /* NULL = refused */
} group_cases[] = {
    {"192.0.2.77", 24, 64, "192.0.2.0/24"},
    {"192.0.2.77", 32, 64, "192.0.2.77/32"},
    {"192.0.2.77", 16, 64, "192.0.0.0/16"},
    {"198.51.100.255", 25, 64, "198.51.100.128/25"},
    {"2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
    {"2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"},
    {"2001:DB8::1", 24, 128, "2001:db8::1/128"},
    {"::ffff:192.0.2.1", 24, 96, "::ffff:0.0.0.0/96"},
    {"", 24, 64, NULL},
    {"192.0.2", 24, 64, NULL},
    {"192.0.2.1/24", 24, 64, NULL},
    {"example.org", 24, 64, NULL},
};

static void test_addr_group(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(group_cases); i++) {
		char out[64];
		int r = pd_addr_group(group_cases[i].ip, group_cases[i].v4, group_cases[i].v6, out,
		                      sizeof(out), NULL);
		if (group_cases[i].group == NULL) {
			if (r == 0)
				fail_msg("case %zu accepted", i);
			continue;
		}
		if (r != 0 || strcmp(out, group_cases[i].group) != 0)
			fail_msg("case %zu: %s", i, r == 0 ? out : "refused");
	}
}

static const char conf[] = "[policyd]\n"
                           "limit = sasl_username messages 3/1h defer\n"
                           "limit = sasl_username messages 10/1d defer\n"
                           "limit = sasl_username=bulk@example.org messages 1000/1h reject\n"
                           "limit = sasl_username recipients 5/message reject\n"
                           "limit = sasl_username recipients 20/1h\n"
                           "limit = sender_domain size 1000/1h\n"
                           "limit = recipient_domain messages 2/1h\n"
                           "allow = 203.0.113.0/24, 2001:db8:aaaa::/48\n"
                           "block = 198.51.100.0/24\n"
                           "block = 192.0.2.66\n";

/* build - a request from "name=value" strings */
static void build(struct pd_request *r, const char *const *kv, char store[][128])
{
	size_t i;
	memset(r, 0, sizeof(*r));
	for (i = 0; kv[i] != NULL; i++) {
		char *eq;
		snprintf(store[i], 128, "%s", kv[i]);
		eq = strchr(store[i], '=');
		*eq = '\0';
		r->attrs[i].name = store[i];
		r->attrs[i].value = eq + 1;
	}
	r->count = (unsigned)i;
	pd_request_index(r);
}

static struct pd_policy *load(const char *text, size_t store_n, const struct pd_limit *store)
{
	mw_error err = {""};
	mw_config *cfg = mw_config_load_string(text, strlen(text), "test.conf", &err);
	struct pd_policy *p;
	if (cfg == NULL)
		fail_msg("config: %s", err.msg);
	p = pd_policy_new(cfg, store, store_n, &err);
	if (p == NULL)
		fail_msg("policy: %s", err.msg);
	mw_config_unref(&cfg);
	return p;
}

static bool has_key(const struct pd_eval *ev, const char *key, int64_t cost)
{
	size_t i;
	for (i = 0; i < ev->n; i++)
		if (strcmp(ev->reqs[i].key, key) == 0 && ev->reqs[i].cost == cost)
			return true;
	return false;
}

static void test_policy_eval(void **state)
{
	struct pd_policy *p = load(conf, 0, NULL);
	struct pd_msg_state st;
	struct pd_eval ev;
	struct pd_request r;
	char store[32][128];
	char action[512];
	struct pd_batch_res res;
	(void)state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(p->count, 7);

	/* inbound (no sasl_username) to a local user: nothing applies */
	build(&r,
	      (const char *const[]){"request=smtpd_access_policy", "protocol_state=RCPT",
	                            "client_address=192.0.2.10", "sender=x@remote.example",
	                            "recipient=bob@example.org", "instance=i1", NULL},
	      store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_DUNNO);

	/* block list first, whatever the traffic */
	build(&r,
	      (const char *const[]){"request=smtpd_access_policy", "protocol_state=CONNECT",
	                            "client_address=198.51.100.7", NULL},
	      store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_BLOCK);
	/* allow list wins over block and limits */
	build(&r,
	      (const char *const[]){"request=smtpd_access_policy", "protocol_state=RCPT",
	                            "client_address=2001:db8:aaaa:1::5", "sasl_username=a@x.org",
	                            NULL},
	      store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_DUNNO);

	/* not a policy request */
	build(&r, (const char *const[]){"request=junk", NULL}, store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_ERROR);

	/* authenticated RCPT: layered limits, check only, sender_domain and recipient_domain */
	build(&r,
	      (const char *const[]){"request=smtpd_access_policy", "protocol_state=RCPT",
	                            "client_address=192.0.2.10", "sasl_username=John@Example.org",
	                            "sender=john@Example.ORG", "recipient=Someone@Dest.example",
	                            "size=700", "instance=m1", NULL},
	      store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_false(ev.commit);
	assert_true(has_key(&ev, "sasl_username:john@example.org:messages:3600:3", 1));
	assert_true(has_key(&ev, "sasl_username:john@example.org:messages:86400:10", 1));
	assert_true(has_key(&ev, "sasl_username:john@example.org:recipients:3600:20", 1));
	assert_true(has_key(&ev, "sender_domain:example.org:size:3600:1000", 700));
	assert_true(has_key(&ev, "recipient_domain:dest.example:messages:3600:2", 1));
	assert_int_equal(ev.n, 5);
	pd_policy_note_rcpt(p, &r, &st);
	pd_policy_note_rcpt(p, &r, &st);
	/* the third RCPT of the message costs 3 recipients */
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(has_key(&ev, "sasl_username:john@example.org:recipients:3600:20", 3));
	pd_policy_note_rcpt(p, &r, &st);
	pd_policy_note_rcpt(p, &r, &st);
	pd_policy_note_rcpt(p, &r, &st);
	/* sixth recipient: over the per-message cap */
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_CAP);
	pd_policy_action(&ev, NULL, action, sizeof(action));
	assert_string_equal(action, "550 5.7.1 rate limit: at most 5 recipients per message for "
	                            "john@example.org");

	/* END-OF-MESSAGE: charged, recipient_count and size from the request; the recipient
	   scope counts the remembered recipient */
	build(&r,
	      (const char *const[]){"request=smtpd_access_policy", "protocol_state=END-OF-MESSAGE",
	                            "client_address=192.0.2.10", "sasl_username=john@example.org",
	                            "sender=john@example.org", "recipient=", "recipient_count=4",
	                            "size=1234", "instance=m1", NULL},
	      store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(ev.commit);
	assert_true(has_key(&ev, "sasl_username:john@example.org:recipients:3600:20", 4));
	assert_true(has_key(&ev, "sender_domain:example.org:size:3600:1000", 1234));
	assert_true(has_key(&ev, "recipient_domain:dest.example:messages:3600:2", 1));

	/* the answers */
	memset(&res, 0, sizeof(res));
	res.count = ev.n;
	res.allowed = false;
	res.res[0].allowed = false;
	res.res[0].retry_after_us = 7 * 60 * 1000000LL - 5;
	res.res[0].reset_after_us = 3600 * 1000000LL;
	pd_policy_action(&ev, &res, action, sizeof(action));
	assert_string_equal(action, "450 4.7.1 rate limit: 3 messages per 1h for john@example.org, "
	                            "retry in 7m");
	ev.stage = PD_STAGE_RCPT;
	pd_policy_action(&ev, &res, action, sizeof(action));
	assert_string_equal(action, "DEFER_IF_PERMIT 4.7.1 rate limit: 3 messages per 1h for "
	                            "john@example.org, retry in 7m");
	pd_policy_free(p);
}

static void test_overrides(void **state)
{
	struct pd_limit store_limits[2];
	struct mw_rate_policy rp;
	struct pd_msg_state st;
	struct pd_eval ev;
	struct pd_request r;
	struct pd_policy *p;
	char store[32][128];
	mw_error err;
	(void)state;
	memset(&rp, 0, sizeof(rp));
	rp.id = 7;
	mw_strlcpy(rp.scope, "sasl_username", sizeof(rp.scope));
	mw_strlcpy(rp.metric, "messages", sizeof(rp.metric));
	mw_strlcpy(rp.action, "reject", sizeof(rp.action));
	rp.limit_count = 50;
	rp.window_seconds = 3600;
	mw_strlcpy(rp.username, "vip@example.org", sizeof(rp.username));
	assert_int_equal(pd_limit_from_store(&rp, &store_limits[0], &err), 0);
	assert_string_equal(store_limits[0].origin, "store #7");
	mw_strlcpy(rp.scope, "bogus", sizeof(rp.scope));
	assert_int_equal(pd_limit_from_store(&rp, &store_limits[1], &err), -1);
	p = load(conf, 1, store_limits);
	memset(&st, 0, sizeof(st));

	/* vip: the per-user store limit replaces both general messages limits */
	build(&r,
	      (const char *const[]){"request=smtpd_access_policy", "protocol_state=RCPT",
	                            "client_address=192.0.2.10", "sasl_username=vip@example.org",
	                            NULL},
	      store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(has_key(&ev, "sasl_username:vip@example.org:messages:3600:50", 1));
	assert_false(has_key(&ev, "sasl_username:vip@example.org:messages:3600:3", 1));
	assert_false(has_key(&ev, "sasl_username:vip@example.org:messages:86400:10", 1));
	assert_true(has_key(&ev, "sasl_username:vip@example.org:recipients:3600:20", 1));
	/* bulk: the matched config limit replaces the general ones */
	build(&r,
	      (const char *const[]){"request=smtpd_access_policy", "protocol_state=RCPT",
	                            "client_address=192.0.2.10", "sasl_username=bulk@example.org",
	                            NULL},
	      store);
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(has_key(&ev, "sasl_username:bulk@example.org:messages:3600:1000", 1));
	assert_false(has_key(&ev, "sasl_username:bulk@example.org:messages:3600:3", 1));
	/* status of an ordinary user: cost 0, rate limits only */
	pd_policy_status(p, PD_SCOPE_SASL_USERNAME, "a@example.org", &ev);
	assert_int_equal(ev.n, 3);
	assert_true(has_key(&ev, "sasl_username:a@example.org:messages:3600:3", 0));
	pd_policy_free(p);
}

/* inbound_request - an unauthenticated RCPT (or END-OF-MESSAGE) from IP to RCPT */
static void inbound_request(struct pd_request *r, char store[][128], const char *state,
                            const char *ip, const char *rcpt, const char *user)
{
	char a[4][128];
	snprintf(a[0], sizeof(a[0]), "protocol_state=%s", state);
	snprintf(a[1], sizeof(a[1]), "client_address=%s", ip);
	snprintf(a[2], sizeof(a[2]), "recipient=%s", rcpt);
	snprintf(a[3], sizeof(a[3]), "sasl_username=%s", user);
	build(r,
	      (const char *const[]){"request=smtpd_access_policy", a[0], a[1],
	                            "sender=x@remote.example", a[2], a[3], "recipient_count=1",
	                            "size=10", "instance=in1", NULL},
	      store);
}

static const char inbound_conf[] = "[policyd]\n"
                                   "limit = sasl_username messages 3/1h\n"
                                   "limit = client_address messages 5/1h\n"
                                   "limit = inbound:client_address/32/128 messages 10/1h\n"
                                   "limit = inbound:client_address/24/64 messages 100/1h\n"
                                   "limit = inbound:recipient messages 20/1h\n"
                                   "limit = both:recipient_domain=example.org messages 9/1h\n"
                                   "limit = inbound:client_address=198.51.100.0/24 "
                                   "messages 1/1h\n"
                                   "allow = 192.0.2.128/25\n";

static void test_inbound(void **state)
{
	struct pd_policy *p = load(inbound_conf, 0, NULL);
	struct pd_msg_state st;
	struct pd_eval ev;
	struct pd_request r;
	char store[32][128];
	(void)state;
	memset(&st, 0, sizeof(st));
	assert_true(p->has_inbound);

	/* inbound: per IP, per /24, per recipient, per domain; no outbound limit */
	inbound_request(&r, store, "RCPT", "192.0.2.7", "Bob@Example.org", "");
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(has_key(&ev, "client_address:192.0.2.7/32:messages@inbound:3600:10", 1));
	assert_true(has_key(&ev, "client_address:192.0.2.0/24:messages@inbound:3600:100", 1));
	assert_true(has_key(&ev, "recipient:bob@example.org:messages@inbound:3600:20", 1));
	assert_true(has_key(&ev, "recipient_domain:example.org:messages@both:3600:9", 1));
	assert_int_equal(ev.n, 4);
	/* IPv6: /128 and /64 */
	inbound_request(&r, store, "RCPT", "2001:db8:1:2::99", "bob@example.org", "");
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(
	    has_key(&ev, "client_address:2001:db8:1:2::99/128:messages@inbound:3600:10", 1));
	assert_true(has_key(&ev, "client_address:2001:db8:1:2::/64:messages@inbound:3600:100", 1));
	/* a matched inbound limit replaces the general one of its group (default prefix) only */
	inbound_request(&r, store, "RCPT", "198.51.100.9", "carol@remote.example", "");
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(has_key(&ev, "client_address:198.51.100.0/24:messages@inbound:3600:1", 1));
	assert_true(has_key(&ev, "client_address:198.51.100.9/32:messages@inbound:3600:10", 1));
	assert_true(has_key(&ev, "client_address:198.51.100.0/24:messages@inbound:3600:100", 1));
	assert_false(has_key(&ev, "client_address:198.51.100.0/24:messages:3600:5", 1));
	/* the allow list exempts inbound mail too */
	inbound_request(&r, store, "RCPT", "192.0.2.200", "bob@example.org", "");
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_DUNNO);
	/* END-OF-MESSAGE charges the remembered recipient */
	inbound_request(&r, store, "RCPT", "192.0.2.7", "bob@example.org", "");
	pd_policy_note_rcpt(p, &r, &st);
	inbound_request(&r, store, "END-OF-MESSAGE", "192.0.2.7", "", "");
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(ev.commit);
	assert_true(has_key(&ev, "recipient:bob@example.org:messages@inbound:3600:20", 1));
	assert_true(has_key(&ev, "client_address:192.0.2.7/32:messages@inbound:3600:10", 1));

	/* outbound (authenticated): only outbound and both limits, keys as before */
	pd_msg_reset(&st);
	inbound_request(&r, store, "RCPT", "192.0.2.7", "bob@example.org", "john@example.org");
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_COUNTERS);
	assert_true(has_key(&ev, "sasl_username:john@example.org:messages:3600:3", 1));
	assert_true(has_key(&ev, "client_address:192.0.2.0/24:messages:3600:5", 1));
	assert_true(has_key(&ev, "recipient_domain:example.org:messages@both:3600:9", 1));
	assert_int_equal(ev.n, 3);

	/* status of an address: every client_address limit, each grouping it its own way */
	pd_policy_status(p, PD_SCOPE_CLIENT_ADDRESS, "192.0.2.7", &ev);
	assert_true(has_key(&ev, "client_address:192.0.2.0/24:messages:3600:5", 0));
	assert_true(has_key(&ev, "client_address:192.0.2.7/32:messages@inbound:3600:10", 0));
	assert_true(has_key(&ev, "client_address:192.0.2.0/24:messages@inbound:3600:100", 0));
	assert_int_equal(ev.n, 3);
	/* reset of an address: each network it is counted under, once */
	pd_policy_client_groups(p, "192.0.2.7", &ev);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.value_of[0], "192.0.2.0/24");
	assert_string_equal(ev.value_of[1], "192.0.2.7/32");
	pd_policy_client_groups(p, "not-an-ip", &ev);
	assert_int_equal(ev.n, 0);
	pd_policy_free(p);

	/* without an inbound limit, inbound mail is not looked at (as before) */
	p = load(conf, 0, NULL);
	assert_false(p->has_inbound);
	inbound_request(&r, store, "RCPT", "192.0.2.7", "bob@example.org", "");
	assert_int_equal(pd_policy_eval(p, &r, &st, &ev), PD_DUNNO);
	pd_policy_free(p);
}

static void test_inbound_store(void **state)
{
	struct mw_rate_policy rp;
	struct pd_limit l;
	mw_error err = {""};
	char back[256];
	(void)state;
	memset(&rp, 0, sizeof(rp));
	rp.id = 3;
	mw_strlcpy(rp.scope, "inbound:client_address/32", sizeof(rp.scope));
	mw_strlcpy(rp.metric, "messages", sizeof(rp.metric));
	mw_strlcpy(rp.action, "defer", sizeof(rp.action));
	rp.limit_count = 5;
	rp.window_seconds = 60;
	assert_int_equal(mw_rate_policy_check(&rp, &err), 0);
	assert_int_equal(pd_limit_from_store(&rp, &l, &err), 0);
	assert_int_equal(l.dir, MW_RATE_INBOUND);
	assert_int_equal(l.v4_prefix, 32);
	pd_limit_format(&l, back, sizeof(back));
	assert_string_equal(back, "inbound:client_address/32 messages 5/1m defer");
	/* a bad direction is named */
	mw_strlcpy(rp.scope, "upward:client_address", sizeof(rp.scope));
	assert_int_equal(mw_rate_policy_check(&rp, &err), -1);
	assert_non_null(strstr(err.msg, "unknown direction \"upward\""));
	assert_int_equal(pd_limit_from_store(&rp, &l, &err), -1);
	/* a per-user policy counts that user's outbound mail only */
	mw_strlcpy(rp.scope, "inbound:recipient", sizeof(rp.scope));
	mw_strlcpy(rp.username, "vip@example.org", sizeof(rp.username));
	assert_int_equal(mw_rate_policy_check(&rp, &err), -1);
	assert_non_null(strstr(err.msg, "direction inbound"));
	assert_int_equal(pd_limit_from_store(&rp, &l, &err), -1);
	/* old rows keep their meaning */
	mw_strlcpy(rp.scope, "client_address", sizeof(rp.scope));
	rp.username[0] = '\0';
	assert_int_equal(pd_limit_from_store(&rp, &l, &err), 0);
	assert_int_equal(l.dir, MW_RATE_OUTBOUND);
}

static void test_bad_direction_config(void **state)
{
	static const char text[] = "[policyd]\nlimit = sasl_username messages 1/1h\n"
	                           "limit = sideways:client_address messages 1/1h\n";
	mw_error err = {""};
	mw_config *cfg = mw_config_load_string(text, strlen(text), "bad.conf", &err);
	(void)state;
	assert_non_null(cfg);
	assert_null(pd_policy_new(cfg, NULL, 0, &err));
	assert_non_null(strstr(err.msg, "bad.conf:3"));
	assert_non_null(strstr(err.msg, "limit"));
	assert_non_null(strstr(err.msg, "unknown direction \"sideways\""));
	mw_config_unref(&cfg);
}

static void test_strlist_config(void **state)
{
	static const char two_files[] = "[policyd]\nlimit = sasl_username messages 1/1h\n";
	mw_error err = {""};
	mw_config *cfg = mw_config_load_string(conf, strlen(conf), "t.conf", &err);
	mw_config *back;
	char *dump = NULL;
	size_t len = 0;
	FILE *f;
	(void)state;
	assert_non_null(cfg);
	assert_string_equal(mw_config_list(cfg, MWK_PD_BLOCK), "198.51.100.0/24\n192.0.2.66");
	assert_string_equal(mw_config_list(cfg, MWK_PD_ALLOW),
	                    "203.0.113.0/24, 2001:db8:aaaa::/48");
	f = open_memstream(&dump, &len);
	mw_config_dump(cfg, f, MW_CONFIG_DUMP_SECRETS);
	fclose(f);
	back = mw_config_load_string(dump, len, "dump", &err);
	assert_non_null(back);
	assert_string_equal(mw_config_list(back, MWK_PD_LIMIT), mw_config_list(cfg, MWK_PD_LIMIT));
	assert_string_equal(mw_config_list(back, MWK_PD_BLOCK), mw_config_list(cfg, MWK_PD_BLOCK));
	free(dump);
	mw_config_unref(&back);
	mw_config_unref(&cfg);
	/* empty by default, and an empty list dumps and reads back empty */
	cfg = mw_config_load_string(two_files, strlen(two_files), "t2.conf", &err);
	assert_non_null(cfg);
	assert_string_equal(mw_config_list(cfg, MWK_PD_BLOCK), "");
	assert_string_equal(mw_config_list(cfg, MWK_PD_LIMIT), "sasl_username messages 1/1h");
	mw_config_unref(&cfg);
	/* a bad limit names the limit */
	cfg = mw_config_load_string("[policyd]\nlimit = x y z\n", 23, "bad.conf", &err);
	assert_non_null(cfg);
	assert_null(pd_policy_new(cfg, NULL, 0, &err));
	assert_non_null(strstr(err.msg, "[policyd] limit #1"));
	mw_config_unref(&cfg);
	/* a repeated ordinary key is still a duplicate */
	assert_null(mw_config_load_string("[policyd]\nmax_keys = 100\nmax_keys = 200\n", 41,
	                                  "dup.conf", &err));
	assert_non_null(strstr(err.msg, "duplicate key"));
}

static void test_fmt_duration(void **state)
{
	static const struct {
		int64_t s;
		const char *want;
	} c[] = {{0, "1s"},     {1, "1s"},        {59, "59s"},  {60, "1m"},     {61, "1m1s"},
	         {420, "7m"},   {3599, "59m59s"}, {3600, "1h"}, {3601, "1h1m"}, {5400, "1h30m"},
	         {86400, "1d"}, {90061, "1d2h"},  {7199, "2h"}};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(c); i++) {
		char buf[32];
		mw_fmt_duration(c[i].s, buf, sizeof(buf));
		if (strcmp(buf, c[i].want) != 0)
			fail_msg("%lld: %s, want %s", (long long)c[i].s, buf, c[i].want);
	}
}

/* The counter key is built by hand: it must equal the snprintf spelling, and a value that
   does not leave room for the whole key (with its NUL) is refused, never truncated. */
static void test_limit_req_make(void **state)
{
	static const struct {
		const char *spec;
		const char *value;
	} cases[] = {
	    {"sasl_username messages 100/1h", "john@example.org"},
	    {"client_address=10.0.0.0/8 size 1000000000000000/366d reject", "10.1.2.0/24"},
	    {"recipient_domain recipients 1/1s", ""},
	};
	struct pd_limit l;
	struct pd_limit_req r;
	char want[PD_COUNTER_KEY_MAX + 64], value[PD_COUNTER_KEY_MAX + 1];
	mw_error err = {""};
	size_t i, fixed;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		if (pd_limit_parse(cases[i].spec, &l, &err) < 0)
			fail_msg("%s: %s", cases[i].spec, err.msg);
		assert_int_equal(pd_limit_req_make(&l, cases[i].value, 3, &r), 0);
		snprintf(want, sizeof(want), "%s:%s:%s:%lld:%lld", pd_scope_name(l.scope),
		         cases[i].value, pd_metric_name(l.metric), (long long)l.window_s,
		         (long long)l.count);
		assert_string_equal(r.key, want);
		assert_int_equal(r.window_us, l.window_s * 1000000);
		assert_int_equal(r.limit, l.count);
		assert_int_equal(r.cost, 3);
	}
	/* "sasl_username:VALUE:messages:3600:100": the longest value that fits, then one more */
	assert_int_equal(pd_limit_parse("sasl_username messages 100/1h", &l, &err), 0);
	fixed = strlen("sasl_username::messages:3600:100");
	memset(value, 'v', sizeof(value));
	value[PD_COUNTER_KEY_MAX - 1 - fixed] = '\0';
	assert_int_equal(pd_limit_req_make(&l, value, 1, &r), 0);
	assert_int_equal(strlen(r.key), PD_COUNTER_KEY_MAX - 1);
	value[PD_COUNTER_KEY_MAX - 1 - fixed] = 'v';
	value[PD_COUNTER_KEY_MAX - fixed] = '\0';
	assert_int_equal(pd_limit_req_make(&l, value, 1, &r), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limit_parse),    cmocka_unit_test(test_addr_group),
	    cmocka_unit_test(test_policy_eval),    cmocka_unit_test(test_overrides),
	    cmocka_unit_test(test_strlist_config), cmocka_unit_test(test_fmt_duration),
	    cmocka_unit_test(test_limit_req_make), cmocka_unit_test(test_inbound),
	    cmocka_unit_test(test_inbound_store),  cmocka_unit_test(test_bad_direction_config),
	};
	MW_RUN_TESTS(tests);
}
