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

/* One plan: want is the plan as plan_text writes it */
struct plan_case {
	const char *name;
	int64_t period;
	bool start;
	const char *want;
	struct mw_dkim_key_row rows[4]; /* up to the first with no selector */
};

/* add_part - append ", WHAT SEL" (WHAT alone when SEL is "") to the plan text */
static void add_part(char *buf, size_t size, size_t *off, const char *what, const char *sel)
{
	int n = snprintf(buf + *off, size - *off, "%s%s%s%s", *off > 0 ? ", " : "", what,
	                 sel[0] != '\0' ? " " : "", sel);
	assert_true(n >= 0 && (size_t)n < size - *off);
	*off += (size_t)n;
}

/* plan_text - "retire S, promote S, generate S, why": the parts the plan has */
static void plan_text(const struct mw_dkim_rotate_plan *p, char *buf, size_t size)
{
	size_t i, off = 0;
	buf[0] = '\0';
	for (i = 0; i < p->nretire; i++)
		add_part(buf, size, &off, "retire", p->retire[i]);
	if (p->promote[0] != '\0')
		add_part(buf, size, &off, "promote", p->promote);
	if (p->generate[0] != '\0')
		add_part(buf, size, &off, "generate", p->generate);
	if (p->why[0] != '\0')
		add_part(buf, size, &off, "why", "");
}

/* test_plan - the table */
static void test_plan(void **state)
{
	const struct plan_case cases[] = {
	    {"not due, not asked",
	     180 * DAY,
	     false,
	     "",
	     {row("a", "active", NOW - 10 * DAY, NOW - 10 * DAY, 0)}},
	    {"rotation off",
	     0,
	     false,
	     "",
	     {row("a", "active", NOW - 999 * DAY, NOW - 999 * DAY, 0)}},
	    {"due by period",
	     180 * DAY,
	     false,
	     "generate 20261207",
	     {row("a", "active", NOW - 200 * DAY, NOW - 180 * DAY, 0)}},
	    {"asked by hand",
	     0,
	     true,
	     "generate 20261207",
	     {row("a", "active", NOW - DAY, NOW - DAY, 0)}},
	    {"selector of today taken",
	     0,
	     true,
	     "generate 20261207-2",
	     {row("20261207", "retired", 1, 1, 2), row("a", "active", 3, 3, 0)}},
	    {"first key of a domain",
	     0,
	     true,
	     "generate 20261207",
	     {row("x", "inactive", 1, 0, 0)}},
	    {"pending: check it, start nothing",
	     DAY,
	     true,
	     "promote b",
	     {row("a", "active", 1, 1, 0), row("b", "pending", 2, 0, 0)}},
	    {"pending without period or asking: still checked",
	     0,
	     false,
	     "promote b",
	     {row("a", "active", 1, 1, 0), row("b", "pending", 2, 0, 0)}},
	    {"grace over: retire",
	     0,
	     false,
	     "retire a",
	     {row("a", "retiring", 1, 1, NOW), row("b", "active", 2, NOW - DAY, 0)}},
	    {"grace not over: keep signing, refuse to start",
	     0,
	     true,
	     "why",
	     {row("a", "retiring", 1, 1, NOW + 1), row("b", "active", 2, NOW - DAY, 0)}},
	    {"grace over and asked: retire, then start",
	     0,
	     true,
	     "retire a, generate 20261207",
	     {row("a", "retiring", 1, 1, NOW - 1), row("b", "active", 2, NOW - DAY, 0)}},
	    {"due while the previous key still signs: wait, no complaint",
	     DAY,
	     false,
	     "",
	     {row("a", "retiring", 1, 1, NOW + 1), row("b", "active", 2, NOW - 9 * DAY, 0)}},
	    {"due counts from activation, not creation",
	     180 * DAY,
	     false,
	     "",
	     {row("a", "active", NOW - 400 * DAY, NOW - 10 * DAY, 0)}},
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
		char got[512];
		size_t n = 0;
		while (n < MW_N_ELEMENTS(c->rows) && c->rows[n].selector[0] != '\0')
			n++;
		mw_dkim_rotate_plan(c->rows, n, &o, &p);
		plan_text(&p, got, sizeof(got));
		if (strcmp(got, c->want) != 0)
			fail_msg("case \"%s\": plan \"%s\" (why \"%s\"), want \"%s\"", c->name, got,
			         p.why, c->want);
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
