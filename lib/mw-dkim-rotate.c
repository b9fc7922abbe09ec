/*
 * mw-dkim-rotate.c - DKIM key rotation (issue 18): the plan for one domain's keys and the
 * run that carries it out against the store and the resolver.
 *
 * The plan is a pure function of the keys and the clock (unit-tested as a table); the run
 * makes each step with one store call that decides by itself whether the step is still to
 * be made (a conditional UPDATE, or an INSERT guarded by the unique index on a domain's
 * pending key), so a timer on several hosts, or two admins at once, cannot make a step
 * twice: the loser sees "skipped". A pending key is activated only when the resolver
 * returns its TXT record exactly as we would publish it; a check that cannot decide
 * (timeout, SERVFAIL, no resolver) leaves it pending.
 *
 * Public: mw_dkim_rotate_plan, mw_dkim_rotate_domain, mw_dkim_rotate_due, mw_dkim_rotate_run.
 *
 * Diagnostics: through error_r and the events array; never a private key.
 */
#include "mw-build.h"
#include "mw-dkim-rotate.h"
#include "mw-audit.h"
#include "mw-dkim-sign.h"
#include "mw-dnsrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* fmt_time - UTC ISO 8601 of unix seconds */
static const char *fmt_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)mw_strlcpy(buf, "?", size);
	return buf;
}

/* selector_taken - a key of the domain already has this selector */
static bool selector_taken(const struct mw_dkim_key_row *rows, size_t n, const char *sel)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].selector, sel) == 0)
			return true;
	return false;
}

/* next_selector - YYYYMMDD of now, then YYYYMMDD-2 .. -9; "" when all are taken */
static void next_selector(const struct mw_dkim_key_row *rows, size_t n, int64_t now, char *out,
                          size_t size)
{
	time_t tt = (time_t)now;
	struct tm tm;
	char day[16];
	int i;
	out[0] = '\0';
	if (gmtime_r(&tt, &tm) == NULL || strftime(day, sizeof(day), "%Y%m%d", &tm) == 0)
		return;
	for (i = 1; i <= 9; i++) {
		if (i == 1)
			(void)snprintf(out, size, "%s", day);
		else
			(void)snprintf(out, size, "%s-%d", day, i);
		if (!selector_taken(rows, n, out))
			return;
	}
	out[0] = '\0';
}

/* mw_dkim_rotate_plan - what is due for one domain's keys */
void mw_dkim_rotate_plan(const struct mw_dkim_key_row *rows, size_t n,
                         const struct mw_dkim_rotate_opts *opts, struct mw_dkim_rotate_plan *plan_r)
{
	const struct mw_dkim_key_row *active = NULL, *still = NULL;
	char t[32];
	bool due = false;
	size_t i;

	memset(plan_r, 0, sizeof(*plan_r));
	for (i = 0; i < n; i++) {
		const struct mw_dkim_key_row *r = &rows[i];
		if (strcmp(r->state, "retiring") == 0) {
			if (r->retire_at <= opts->now &&
			    plan_r->nretire < MW_DKIM_ROTATE_RETIRE_MAX)
				(void)mw_strlcpy(plan_r->retire[plan_r->nretire++], r->selector,
				                 sizeof(plan_r->retire[0]));
			else if (still == NULL || r->retire_at > still->retire_at)
				still = r;
		} else if (strcmp(r->state, "pending") == 0) {
			(void)mw_strlcpy(plan_r->promote, r->selector, sizeof(plan_r->promote));
		} else if (strcmp(r->state, "active") == 0) {
			if (active == NULL || r->created_at >= active->created_at)
				active = r;
		}
	}
	if (active != NULL && opts->period > 0) {
		int64_t since =
		    active->activated_at != 0 ? active->activated_at : active->created_at;
		due = opts->now - since >= opts->period;
	}
	if (!opts->start && !due)
		return;
	if (plan_r->promote[0] != '\0')
		return; /* a rotation is under way: this run checks its key */
	if (still != NULL && !opts->start)
		return; /* due, but the previous key still signs: a later run starts it */
	if (still != NULL) {
		(void)snprintf(plan_r->why, sizeof(plan_r->why),
		               "the previous rotation is not over: key %s signs until %s",
		               still->selector, fmt_time(still->retire_at, t, sizeof(t)));
		return;
	}
	next_selector(rows, n, opts->now, plan_r->generate, sizeof(plan_r->generate));
	if (plan_r->generate[0] == '\0')
		(void)snprintf(plan_r->why, sizeof(plan_r->why),
		               "every selector of today is taken: rotate again tomorrow");
}

/* event - append {domain, selector, event, message[, record]} */
static void event(json_t *events, const char *domain, const char *selector, const char *what,
                  const char *record, const char *fmt, ...) MW_PRINTF(6, 7);
static void event(json_t *events, const char *domain, const char *selector, const char *what,
                  const char *record, const char *fmt, ...)
{
	json_t *o;
	mw_str msg;
	va_list ap;
	mw_str_init(&msg, 0);
	va_start(ap, fmt);
	(void)mw_str_vappendf(&msg, fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:s, s:s, s:s}", "domain", domain, "selector",
	              selector != NULL ? selector : "", "event", what, "message", mw_str_c(&msg));
	if (record != NULL)
		json_object_set_new(o, "record", json_string(record));
	(void)json_array_append_new(events, o);
	mw_str_free(&msg);
}

/* audit - one rotation step in the audit log (target DOMAIN/SELECTOR) */
static int audit(mw_store *store, const struct mw_dkim_rotate_opts *o, enum mw_audit_action a,
                 const char *domain, const char *selector, json_t *details, mw_error *error_r)
{
	char *text = details != NULL ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	mw_str target;
	int ret;
	json_decref(details);
	mw_str_init(&target, 0);
	(void)mw_str_appendf(&target, "%s/%s", domain, selector);
	ret = mw_store_audit_append(
	    store, o->actor != NULL ? o->actor : "rotation", mw_audit_name(a), mw_str_c(&target),
	    o->client != NULL ? o->client : "local", text != NULL ? text : "", error_r);
	free(text);
	mw_str_free(&target);
	return ret == MW_STORE_OK ? 0 : -1;
}

/* mw_dkim_key_save - encrypt a private key and add it to the store in the state asked */
int mw_dkim_key_save(mw_store *store, const mw_master_key *master_key, const char *domain,
                     const char *selector, const char *type, const char *pem, size_t pem_len,
                     const char *pub, enum mw_dkim_save_state state, mw_error *error_r)
{
	mw_str enc, ad;
	int ret = MW_STORE_ERROR;
	mw_str_init(&enc, 0);
	mw_str_init(&ad, 0);
	if (master_key == NULL)
		mw_error_set(error_r, "no master key to encrypt the new key with");
	else if (mw_dkim_key_ad(domain, selector, &ad) < 0)
		mw_error_set(error_r, "out of memory");
	else if (mw_secret_encrypt(master_key, pem, pem_len, mw_str_c(&ad), &enc, error_r) == 0)
		ret = state == MW_DKIM_SAVE_PENDING
		          ? mw_store_dkim_key_add_pending(store, domain, selector, type,
		                                          mw_str_c(&enc), pub, error_r)
		          : mw_store_dkim_key_add(store, domain, selector, type, mw_str_c(&enc),
		                                  pub, state == MW_DKIM_SAVE_ACTIVE, error_r);
	mw_str_free(&enc);
	mw_str_free(&ad);
	return ret;
}

/* generate - a new RSA key stored as DOMAIN's pending key; MW_STORE_EXISTS when another
   host was first */
static int generate(mw_store *store, const mw_master_key *mk, const char *domain,
                    const char *selector, unsigned bits, mw_error *error_r)
{
	mw_str pem, pub;
	int ret = MW_STORE_ERROR;
	mw_str_init(&pem, 0);
	mw_str_init(&pub, 0);
	if (mw_dkim_generate_rsa(bits, &pem, &pub, error_r) == 0)
		ret = mw_dkim_key_save(store, mk, domain, selector, "rsa", pem.buf, pem.len,
		                       mw_str_c(&pub), MW_DKIM_SAVE_PENDING, error_r);
	if (pem.buf != NULL)
		mw_memzero(pem.buf, pem.cap);
	mw_str_free(&pem);
	mw_str_free(&pub);
	return ret;
}

/* find - the row of SELECTOR */
static const struct mw_dkim_key_row *find(const struct mw_dkim_key_row *rows, size_t n,
                                          const char *selector)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].selector, selector) == 0)
			return &rows[i];
	return NULL;
}

/* promote - activate the pending key when its record is visible, else say what to publish */
static int promote(mw_store *store, mw_dns *dns, const struct mw_dkim_key_row *k,
                   const struct mw_dkim_rotate_opts *o, json_t *events, mw_error *error_r)
{
	struct mw_dnsrec_set set;
	mw_str zone;
	mw_error err = {{0}};
	char t[32];
	int ret;

	if (mw_dnsrec_dkim_set(k->domain, k->selector, k->key_type, k->public_key, &set, error_r) <
	    0)
		return -1;
	mw_str_init(&zone, 0);
	mw_dnsrec_zone_line(&set.rec[0], &zone);
	if (dns == NULL)
		event(events, k->domain, k->selector, "waiting", mw_str_c(&zone),
		      "key %s stays pending: no resolver to check its TXT record with",
		      k->selector);
	else if (mw_dnsrec_check(&set, dns, &err) < 0 || set.rec[0].status != MW_DNSREC_OK)
		event(events, k->domain, k->selector, "waiting", mw_str_c(&zone),
		      "key %s stays pending until its TXT record is visible through the resolver "
		      "(%s%s%s); publish: %s",
		      k->selector, mw_dnsrec_status_str(set.rec[0].status),
		      set.rec[0].difference != NULL ? ": " : "",
		      set.rec[0].difference != NULL ? set.rec[0].difference : "", mw_str_c(&zone));
	else {
		int64_t until = o->now + o->grace;
		ret = mw_store_dkim_key_promote(store, k->domain, k->selector, o->now, until,
		                                error_r);
		if (ret == MW_STORE_NOTFOUND)
			event(events, k->domain, k->selector, "skipped", NULL,
			      "key %s was activated elsewhere", k->selector);
		else if (ret != MW_STORE_OK ||
		         audit(store, o, MW_AUDIT_DKIM_PROMOTE, k->domain, k->selector,
		               json_pack("{s:I}", "previous_until", (json_int_t)until),
		               error_r) < 0) {
			mw_dnsrec_set_free(&set);
			mw_str_free(&zone);
			return -1;
		} else
			event(events, k->domain, k->selector, "activated", NULL,
			      "key %s is published and signs now; the previous key signs beside it "
			      "until %s",
			      k->selector, fmt_time(until, t, sizeof(t)));
	}
	mw_dnsrec_set_free(&set);
	mw_str_free(&zone);
	return 0;
}

/* mw_dkim_rotate_domain - one run for one domain */
int mw_dkim_rotate_domain(mw_store *store, const mw_master_key *master_key, mw_dns *dns,
                          const char *domain, const struct mw_dkim_rotate_opts *opts,
                          json_t *events, mw_error *error_r)
{
	struct mw_dkim_key_row *rows = NULL;
	struct mw_dkim_rotate_plan plan;
	const struct mw_dkim_key_row *k;
	size_t n = 0, i, before = json_array_size(events);
	char t[32];
	int ret;

	if (mw_store_dkim_key_list(store, domain, &rows, &n, error_r) != MW_STORE_OK)
		return -1;
	mw_dkim_rotate_plan(rows, n, opts, &plan);
	for (i = 0; i < plan.nretire; i++) {
		ret = mw_store_dkim_key_retire(store, domain, plan.retire[i], opts->now, error_r);
		if (ret == MW_STORE_NOTFOUND) {
			event(events, domain, plan.retire[i], "skipped", NULL,
			      "key %s was retired elsewhere", plan.retire[i]);
			continue;
		}
		if (ret != MW_STORE_OK || audit(store, opts, MW_AUDIT_DKIM_RETIRE, domain,
		                                plan.retire[i], NULL, error_r) < 0)
			goto fail;
		event(events, domain, plan.retire[i], "retired", NULL,
		      "key %s no longer signs; withdraw its TXT record in a few days",
		      plan.retire[i]);
	}
	if (plan.generate[0] != '\0') {
		ret = generate(store, master_key, domain, plan.generate, opts->bits, error_r);
		if (ret == MW_STORE_EXISTS)
			event(events, domain, plan.generate, "skipped", NULL,
			      "another run started this rotation");
		else if (ret != MW_STORE_OK ||
		         audit(store, opts, MW_AUDIT_DKIM_ROTATE, domain, plan.generate,
		               json_pack("{s:s, s:i}", "type", "rsa", "bits", (int)opts->bits),
		               error_r) < 0)
			goto fail;
		else
			event(events, domain, plan.generate, "generated", NULL,
			      "key %s was generated; it stays pending until its TXT record is "
			      "published",
			      plan.generate);
		/* read again: the pending key is ours or the other run's */
		mw_dkim_key_rows_free(rows, n);
		rows = NULL;
		n = 0;
		if (mw_store_dkim_key_list(store, domain, &rows, &n, error_r) != MW_STORE_OK)
			return -1;
		for (i = 0; i < n; i++)
			if (strcmp(rows[i].state, "pending") == 0)
				(void)mw_strlcpy(plan.promote, rows[i].selector,
				                 sizeof(plan.promote));
	}
	if (plan.why[0] != '\0')
		event(events, domain, NULL, "refused", NULL, "%s", plan.why);
	if (plan.promote[0] != '\0' && (k = find(rows, n, plan.promote)) != NULL &&
	    strcmp(k->state, "pending") == 0 && promote(store, dns, k, opts, events, error_r) < 0)
		goto fail;
	if (json_array_size(events) == before) {
		const struct mw_dkim_key_row *a = NULL;
		for (i = 0; i < n; i++)
			if (strcmp(rows[i].state, "active") == 0)
				a = &rows[i];
		if (a == NULL)
			event(events, domain, NULL, "idle", NULL, "no active key to rotate");
		else if (opts->period <= 0)
			event(
			    events, domain, a->selector, "idle", NULL,
			    "key %s is active; scheduled rotation is off ([dkim] rotation_period)",
			    a->selector);
		else
			event(events, domain, a->selector, "idle", NULL,
			      "key %s is active; the next rotation is due at %s", a->selector,
			      fmt_time((a->activated_at != 0 ? a->activated_at : a->created_at) +
			                   opts->period,
			               t, sizeof(t)));
	}
	mw_dkim_key_rows_free(rows, n);
	return 0;
fail:
	mw_dkim_key_rows_free(rows, n);
	return -1;
}

/* mw_dkim_rotate_due - every domain with keys */
int mw_dkim_rotate_due(mw_store *store, const mw_master_key *master_key, mw_dns *dns,
                       const struct mw_dkim_rotate_opts *opts, json_t *events, mw_error *error_r)
{
	struct mw_dkim_key_row *rows = NULL;
	size_t n = 0, i;
	int failed = 0;
	if (mw_store_dkim_key_list(store, NULL, &rows, &n, error_r) != MW_STORE_OK)
		return -1;
	for (i = 0; i < n; i++) {
		mw_error err = {{0}};
		if (i > 0 && strcmp(rows[i].domain, rows[i - 1].domain) == 0)
			continue; /* rows come ordered by domain */
		if (mw_dkim_rotate_domain(store, master_key, dns, rows[i].domain, opts, events,
		                          &err) < 0) {
			event(events, rows[i].domain, NULL, "error", NULL, "%s", err.msg);
			if (!failed)
				mw_error_set(error_r, "%s: %s", rows[i].domain, err.msg);
			failed = 1;
		}
	}
	mw_dkim_key_rows_free(rows, n);
	return failed ? -1 : 0;
}

/* mw_dkim_rotate_run - one run with the configured period, grace, key and resolver */
int mw_dkim_rotate_run(const mw_config *cfg, mw_store *store, const char *domain, unsigned bits,
                       const char *actor, const char *client, json_t *events, mw_error *error_r)
{
	struct mw_dkim_rotate_opts o;
	mw_master_key mk;
	mw_error err = {{0}};
	bool have_mk;
	mw_dns *dns;
	int ret;

	memset(&o, 0, sizeof(o));
	o.now = mw_now();
	o.period = mw_config_int(cfg, MWK_DKIM_ROTATION_PERIOD);
	o.grace = mw_config_int(cfg, MWK_DKIM_ROTATION_GRACE);
	o.bits = bits != 0 ? bits : 2048;
	o.start = domain != NULL;
	o.actor = actor;
	o.client = client;
	have_mk = mw_secret_key_load(mw_config_str(cfg, MWK_MASTER_KEY), &mk, &err) == 0;
	dns = mw_dnsrec_resolver(cfg, &err);
	if (domain != NULL)
		ret = mw_dkim_rotate_domain(store, have_mk ? &mk : NULL, dns, domain, &o, events,
		                            error_r);
	else
		ret = mw_dkim_rotate_due(store, have_mk ? &mk : NULL, dns, &o, events, error_r);
	if (have_mk)
		mw_secret_key_wipe(&mk);
	mw_dns_free(&dns);
	return ret;
}
