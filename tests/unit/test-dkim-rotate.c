/* test-dkim-rotate.c - lib/mw-dkim-rotate.c: the rotation's plan as a table (what is due for
 * which keys at which time), and runs against a SQLite store without a resolver: a new key
 * stays pending (never signs) when its record cannot be checked, a second run starts no
 * second key, the previous key retires only when its grace period is over, and every step
 * is audited. The DNS check against a real server is tests/integration/test_dkim_rotate.py.
 */
#include "mw-build.h"
#include "mw-test.h"
#include "mw-dkim-rotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY 86400

/* row - a key row for the plan (no key material: the plan never reads it) */
static struct mw_dkim_key_row row(const char *sel, const char *state, int64_t created,
                                  int64_t activated, int64_t retire_at)
{
	struct mw_dkim_key_row r;
	memset(&r, 0, sizeof(r));
	(void)mw_strlcpy(r.domain, "example.org", sizeof(r.domain));
	(void)mw_strlcpy(r.selector, sel, sizeof(r.selector));
	(void)mw_strlcpy(r.state, state, sizeof(r.state));
	r.active = strcmp(state, "active") == 0 || strcmp(state, "retiring") == 0;
	r.created_at = created;
	r.activated_at = activated;
	r.retire_at = retire_at;
	return r;
}

/* 2026-12-07T00:00:00Z */
#define NOW 1796601600

struct plan_case {
	const char *name;
	struct mw_dkim_key_row rows[4];
	size_t n;
	int64_t period;
	bool start;
	const char *retire;   /* first retired selector, "" none */
	const char *promote;  /* "" none */
	const char *generate; /* "" none */
	bool why;             /* a reason is given */
};

/* test_plan - the table */
static void test_plan(void **state)
{
	const struct plan_case cases[] = {
	    {"not due, not asked",
	     {row("a", "active", NOW - 10 * DAY, NOW - 10 * DAY, 0)},
	     1,
	     180 * DAY,
	     false,
	     "",
	     "",
	     "",
	     false},
	    {"rotation off",
	     {row("a", "active", NOW - 999 * DAY, NOW - 999 * DAY, 0)},
	     1,
	     0,
	     false,
	     "",
	     "",
	     "",
	     false},
	    {"due by period",
	     {row("a", "active", NOW - 200 * DAY, NOW - 180 * DAY, 0)},
	     1,
	     180 * DAY,
	     false,
	     "",
	     "",
	     "20261207",
	     false},
	    {"asked by hand",
	     {row("a", "active", NOW - DAY, NOW - DAY, 0)},
	     1,
	     0,
	     true,
	     "",
	     "",
	     "20261207",
	     false},
	    {"selector of today taken",
	     {row("20261207", "retired", 1, 1, 2), row("a", "active", 3, 3, 0)},
	     2,
	     0,
	     true,
	     "",
	     "",
	     "20261207-2",
	     false},
	    {"first key of a domain",
	     {row("x", "inactive", 1, 0, 0)},
	     1,
	     0,
	     true,
	     "",
	     "",
	     "20261207",
	     false},
	    {"pending: check it, start nothing",
	     {row("a", "active", 1, 1, 0), row("b", "pending", 2, 0, 0)},
	     2,
	     DAY,
	     true,
	     "",
	     "b",
	     "",
	     false},
	    {"pending without period or asking: still checked",
	     {row("a", "active", 1, 1, 0), row("b", "pending", 2, 0, 0)},
	     2,
	     0,
	     false,
	     "",
	     "b",
	     "",
	     false},
	    {"grace over: retire",
	     {row("a", "retiring", 1, 1, NOW), row("b", "active", 2, NOW - DAY, 0)},
	     2,
	     0,
	     false,
	     "a",
	     "",
	     "",
	     false},
	    {"grace not over: keep signing, refuse to start",
	     {row("a", "retiring", 1, 1, NOW + 1), row("b", "active", 2, NOW - DAY, 0)},
	     2,
	     0,
	     true,
	     "",
	     "",
	     "",
	     true},
	    {"grace over and asked: retire, then start",
	     {row("a", "retiring", 1, 1, NOW - 1), row("b", "active", 2, NOW - DAY, 0)},
	     2,
	     0,
	     true,
	     "a",
	     "",
	     "20261207",
	     false},
	    {"due while the previous key still signs: wait, no complaint",
	     {row("a", "retiring", 1, 1, NOW + 1), row("b", "active", 2, NOW - 9 * DAY, 0)},
	     2,
	     DAY,
	     false,
	     "",
	     "",
	     "",
	     false},
	    {"due counts from activation, not creation",
	     {row("a", "active", NOW - 400 * DAY, NOW - 10 * DAY, 0)},
	     1,
	     180 * DAY,
	     false,
	     "",
	     "",
	     "",
	     false},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		const struct plan_case *c = &cases[i];
		struct mw_dkim_rotate_opts o = {.now = NOW,
		                                .period = c->period,
		                                .grace = 2 * DAY,
		                                .bits = 2048,
		                                .start = c->start};
		struct mw_dkim_rotate_plan p;
		mw_dkim_rotate_plan(c->rows, c->n, &o, &p);
		if (p.nretire != (c->retire[0] != '\0' ? 1u : 0u) ||
		    (p.nretire == 1 && strcmp(p.retire[0], c->retire) != 0) ||
		    strcmp(p.promote, c->promote) != 0 || strcmp(p.generate, c->generate) != 0 ||
		    (p.why[0] != '\0') != c->why)
			fail_msg("case \"%s\": retire %zu %s, promote \"%s\", generate \"%s\", why "
			         "\"%s\"",
			         c->name, p.nretire, p.nretire > 0 ? p.retire[0] : "-", p.promote,
			         p.generate, p.why);
	}
}

struct fx {
	char dir[64], url[128];
	mw_store *store;
	mw_master_key mk;
};

/* setup - a migrated SQLite store and a master key */
static int setup(void **state)
{
	struct fx *f = mw_calloc(1, sizeof(*f));
	mw_error err = {""};
	(void)mw_strlcpy(f->dir, "/tmp/mw-test-rotate.XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	(void)snprintf(f->url, sizeof(f->url), "sqlite:%s/mw.db", f->dir);
	f->store = mw_store_open(f->url, 2000, &err);
	if (f->store == NULL || mw_store_migrate(f->store, &err) != MW_STORE_OK)
		fail_msg("store: %s", err.msg);
	memset(f->mk.bytes, 7, sizeof(f->mk.bytes));
	*state = f;
	return 0;
}

/* teardown - remove the store */
static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	mw_store_close(&f->store);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* one_event - the only event of a run with this name; its message */
static const char *event_of(json_t *events, const char *what)
{
	size_t i;
	json_t *ev;
	json_array_foreach(events, i,
	                   ev) if (strcmp(json_string_value(json_object_get(ev, "event")), what) ==
	                           0) return json_string_value(json_object_get(ev, "message"));
	return NULL;
}

/* state_of - a key's state */
static void state_of(mw_store *st, const char *sel, const char *want)
{
	struct mw_dkim_key_row r;
	mw_error err = {""};
	if (mw_store_dkim_key_get(st, "example.org", sel, &r, &err) != MW_STORE_OK)
		fail_msg("get %s: %s", sel, err.msg);
	assert_string_equal(r.state, want);
	mw_dkim_key_row_clear(&r);
}

/* audited - how many audit entries of action */
static size_t audited(mw_store *st, const char *action)
{
	struct mw_audit_filter flt = {.action = action};
	struct mw_audit_entry *e = NULL;
	mw_error err = {""};
	size_t n = 0;
	assert_int_equal(mw_store_audit_list(st, &flt, &e, &n, &err), MW_STORE_OK);
	mw_audit_entries_free(e, n);
	return n;
}

/* test_run_without_resolver - pending stays pending; one pending key; retire after grace */
static void test_run_without_resolver(void **state)
{
	struct fx *f = *state;
	struct mw_dkim_rotate_opts o = {.now = NOW,
	                                .period = 0,
	                                .grace = 2 * DAY,
	                                .bits = 2048,
	                                .start = true,
	                                .actor = "test",
	                                .client = "local"};
	struct mw_dkim_key_row r;
	mw_error err = {""};
	json_t *ev = json_array();

	assert_int_equal(mw_store_dkim_key_add(f->store, "example.org", "old", "rsa", "v1:x",
	                                       "AAAA", true, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_dkim_rotate_domain(f->store, &f->mk, NULL, "example.org", &o, ev, &err),
	                 0);
	assert_non_null(event_of(ev, "generated"));
	assert_non_null(strstr(event_of(ev, "waiting"), "stays pending"));
	state_of(f->store, "20261207", "pending");
	state_of(f->store, "old", "active");
	assert_int_equal(mw_store_dkim_key_get_active(f->store, "example.org", &r, &err),
	                 MW_STORE_OK);
	assert_string_equal(r.selector, "old");
	mw_dkim_key_row_clear(&r);
	/* again (another host, the timer): no second key */
	json_decref(ev);
	ev = json_array();
	o.now += 60;
	assert_int_equal(mw_dkim_rotate_domain(f->store, &f->mk, NULL, "example.org", &o, ev, &err),
	                 0);
	assert_null(event_of(ev, "generated"));
	assert_non_null(event_of(ev, "waiting"));
	assert_int_equal(audited(f->store, "dkim.rotate"), 1);
	/* the record became visible (promoted as the check would), then the grace period */
	assert_int_equal(mw_store_dkim_key_promote(f->store, "example.org", "20261207", o.now,
	                                           o.now + o.grace, &err),
	                 MW_STORE_OK);
	json_decref(ev);
	ev = json_array();
	o.start = false;
	o.now += o.grace - 1;
	assert_int_equal(mw_dkim_rotate_domain(f->store, &f->mk, NULL, "example.org", &o, ev, &err),
	                 0);
	assert_null(event_of(ev, "retired"));
	state_of(f->store, "old", "retiring");
	json_decref(ev);
	ev = json_array();
	o.now += 1;
	assert_int_equal(mw_dkim_rotate_due(f->store, &f->mk, NULL, &o, ev, &err), 0);
	assert_non_null(event_of(ev, "retired"));
	state_of(f->store, "old", "retired");
	state_of(f->store, "20261207", "active");
	assert_int_equal(audited(f->store, "dkim.retire"), 1);
	json_decref(ev);
}

/* test_no_master_key - a rotation that cannot encrypt the new key fails, stores nothing */
static void test_no_master_key(void **state)
{
	struct fx *f = *state;
	struct mw_dkim_rotate_opts o = {.now = NOW, .grace = DAY, .bits = 2048, .start = true};
	struct mw_dkim_key_row *rows = NULL;
	mw_error err = {""};
	size_t n = 0;
	json_t *ev = json_array();
	assert_int_equal(mw_dkim_rotate_domain(f->store, NULL, NULL, "example.org", &o, ev, &err),
	                 -1);
	assert_non_null(strstr(err.msg, "master key"));
	assert_int_equal(mw_store_dkim_key_list(f->store, NULL, &rows, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 0);
	mw_dkim_key_rows_free(rows, n);
	json_decref(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan),
	    cmocka_unit_test_setup_teardown(test_run_without_resolver, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_master_key, setup, teardown),
	};
	MW_RUN_TESTS(tests);
}
