/* test-dmarc.c - mw-dmarc without DNS: the record grammar, the tree walk (names asked, its
   upper bound, several records at one name, temporary failures), organisational domains
   with psd=, and alignment. Answers come from a table (struct zone). */
#include "mw-build.h"
#include "mw-dmarc.h"

#include "mw-test.h"

#include <stdio.h>
#include <string.h>

struct zone_rec {
	const char *name; /* the domain whose _dmarc is asked */
	enum mw_dmarc_fetch status;
	const char *rec;
};

struct zone {
	const struct zone_rec *recs;
	char asked[16][MW_DNS_NAME_MAX + 1];
	size_t nasked;
};

/* fetch - answer from the table, remembering what was asked */
static enum mw_dmarc_fetch fetch(void *ctx, const char *domain, char *rec, size_t recsize)
{
	struct zone *z = ctx;
	const struct zone_rec *r;

	if (z->nasked < 16)
		snprintf(z->asked[z->nasked++], sizeof(z->asked[0]), "%s", domain);
	for (r = z->recs; r->name != NULL; r++) {
		if (strcmp(r->name, domain) == 0) {
			if (r->rec != NULL)
				snprintf(rec, recsize, "%s", r->rec);
			return r->status;
		}
	}
	return MW_DMARC_FETCH_NONE;
}

static void test_record_grammar(void **state)
{
	struct mw_dmarc_record r;
	mw_error err;
	static const char *const bad[] = {
	    "v=DMARC1; p=rejectx",
	    "v=DMARC1; p=reject; p=none",
	    "v=DMARC1; sp=maybe",
	    "v=DMARC1; np=",
	    "v=DMARC1; t=yes",
	    "v=DMARC1; psd=x",
	    "v=DMARC1; adkim=q",
	    "v=DMARC1; pct=101",
	    "v=DMARC1; pct=ten",
	    "v=DMARC1; p",
	    "v=DMARC2; p=none",
	    "p=none; v=DMARC1",
	    "",
	    "v=DMARC1; aspf=rs",
	};
	size_t i;

	(void)state;
	assert_int_equal(
	    mw_dmarc_record_parse("v=DMARC1; p=reject; sp=quarantine; np=none; "
	                          "t=y; psd=n; adkim=s; aspf=r; pct=20; rua=mailto:a@b;"
	                          " x-unknown=1;",
	                          &r, &err),
	    0);
	assert_int_equal(r.p, MW_DMARC_P_REJECT);
	assert_int_equal(r.sp, MW_DMARC_P_QUARANTINE);
	assert_int_equal(r.np, MW_DMARC_P_NONE);
	assert_true(r.testing);
	assert_int_equal(r.psd, MW_DMARC_PSD_N);
	assert_true(r.strict_dkim);
	assert_false(r.strict_spf);
	assert_true(r.has_pct);
	assert_int_equal(r.pct, 20);
	assert_int_equal(mw_dmarc_record_parse("v=DMARC1", &r, &err), 0);
	assert_int_equal(r.p, MW_DMARC_P_UNSET);
	assert_int_equal(mw_dmarc_record_parse("v=DMARC1 ;P=Reject;T=N", &r, &err), 0);
	assert_int_equal(r.p, MW_DMARC_P_REJECT);
	assert_false(r.testing);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mw_dmarc_record_parse(bad[i], &r, &err), -1);
	assert_true(mw_dmarc_is_record("v=DMARC1; p=none", 16));
	assert_true(mw_dmarc_is_record("v=DMARC1", 8));
	assert_false(mw_dmarc_is_record("v=DMARC10; p=none", 17));
	assert_false(mw_dmarc_is_record("v=spf1 -all", 11));
}

static void test_walk_bound(void **state)
{
	/* 10 labels: the From domain, then 7 labels down to the top-level label: 8 names */
	static const struct zone_rec recs[] = {{NULL, 0, NULL}};
	struct zone z = {recs, {{0}}, 0};
	struct mw_dmarc_walk w;
	const struct mw_dmarc_cached *found;
	static const char *const want[] = {"a.b.c.d.e.f.g.h.example.com",
	                                   "d.e.f.g.h.example.com",
	                                   "e.f.g.h.example.com",
	                                   "f.g.h.example.com",
	                                   "g.h.example.com",
	                                   "h.example.com",
	                                   "example.com",
	                                   "com"};
	size_t i;

	(void)state;
	mw_dmarc_walk_init(&w, fetch, &z);
	assert_int_equal(mw_dmarc_policy_walk(&w, "a.b.c.d.e.f.g.h.example.com", &found),
	                 MW_DMARC_WALK_NONE);
	assert_int_equal(z.nasked, MW_DMARC_WALK_MAX);
	assert_int_equal(w.lookups, MW_DMARC_WALK_MAX);
	for (i = 0; i < MW_DMARC_WALK_MAX; i++)
		assert_string_equal(z.asked[i], want[i]);
	/* a record 9 labels up from the From domain is skipped by the jump: never asked */
	{
		static const struct zone_rec r2[] = {
		    {"b.c.d.e.f.g.h.example.com", MW_DMARC_FETCH_ONE, "v=DMARC1; p=reject"},
		    {NULL, 0, NULL}};
		struct zone z2 = {r2, {{0}}, 0};
		mw_dmarc_walk_init(&w, fetch, &z2);
		assert_int_equal(mw_dmarc_policy_walk(&w, "a.b.c.d.e.f.g.h.example.com", &found),
		                 MW_DMARC_WALK_NONE);
	}
	/* short names: each parent once */
	{
		struct zone z3 = {recs, {{0}}, 0};
		mw_dmarc_walk_init(&w, fetch, &z3);
		assert_int_equal(mw_dmarc_policy_walk(&w, "x.example.com", &found),
		                 MW_DMARC_WALK_NONE);
		assert_int_equal(z3.nasked, 3);
		assert_string_equal(z3.asked[2], "com");
	}
}

static void test_walk_outcomes(void **state)
{
	static const struct zone_rec recs[] = {
	    {"multi.example.com", MW_DMARC_FETCH_MULTIPLE, NULL},
	    {"example.com", MW_DMARC_FETCH_ONE, "v=DMARC1; p=reject; sp=quarantine"},
	    {"bad.example.org", MW_DMARC_FETCH_ONE, "v=DMARC1; p=bogus"},
	    {"example.org", MW_DMARC_FETCH_ONE, "v=DMARC1; p=none"},
	    {"down.example.net", MW_DMARC_FETCH_TEMPFAIL, NULL},
	    {NULL, 0, NULL}};
	struct zone z = {recs, {{0}}, 0};
	struct mw_dmarc_walk w;
	const struct mw_dmarc_cached *found;

	(void)state;
	mw_dmarc_walk_init(&w, fetch, &z);
	/* several records at the From domain: none there, the walk goes on */
	assert_int_equal(mw_dmarc_policy_walk(&w, "multi.example.com", &found),
	                 MW_DMARC_WALK_FOUND);
	assert_string_equal(found->name, "example.com");
	assert_int_equal(found->rec.sp, MW_DMARC_P_QUARANTINE);
	/* answers are remembered: the second walk asks nothing new */
	assert_int_equal(mw_dmarc_policy_walk(&w, "example.com", &found), MW_DMARC_WALK_FOUND);
	assert_int_equal(w.lookups, 2);
	/* a malformed record stops the walk and says so */
	assert_int_equal(mw_dmarc_policy_walk(&w, "bad.example.org", &found),
	                 MW_DMARC_WALK_MALFORMED);
	assert_string_equal(found->name, "bad.example.org");
	/* a temporary failure is never "no record" */
	assert_int_equal(mw_dmarc_policy_walk(&w, "a.down.example.net", &found),
	                 MW_DMARC_WALK_TEMPFAIL);
}

static void test_org_domain(void **state)
{
	static const struct zone_rec recs[] = {
	    {"example.com", MW_DMARC_FETCH_ONE, "v=DMARC1; p=reject"},
	    {"a.example.com", MW_DMARC_FETCH_ONE, "v=DMARC1; p=none"},
	    {"com", MW_DMARC_FETCH_ONE, "v=DMARC1; p=none; psd=y"},
	    {"b.example.net", MW_DMARC_FETCH_ONE, "v=DMARC1; p=none; psd=n"},
	    {"example.net", MW_DMARC_FETCH_ONE, "v=DMARC1; p=reject"},
	    {"gov.test", MW_DMARC_FETCH_ONE, "v=DMARC1; p=reject; psd=y"},
	    {"down.example", MW_DMARC_FETCH_TEMPFAIL, NULL},
	    {NULL, 0, NULL}};
	struct zone z = {recs, {{0}}, 0};
	struct mw_dmarc_walk w;
	char org[MW_DNS_NAME_MAX + 1];

	(void)state;
	mw_dmarc_walk_init(&w, fetch, &z);
	/* the name with the fewest labels that has a record, below a psd=y */
	assert_int_equal(mw_dmarc_org_domain(&w, "x.a.example.com", org), MW_DMARC_WALK_FOUND);
	assert_string_equal(org, "example.com");
	/* psd=n stops the walk there */
	assert_int_equal(mw_dmarc_org_domain(&w, "c.b.example.net", org), MW_DMARC_WALK_FOUND);
	assert_string_equal(org, "b.example.net");
	/* psd=y above the start: one label below it, even without a record there */
	assert_int_equal(mw_dmarc_org_domain(&w, "x.y.agency.gov.test", org), MW_DMARC_WALK_FOUND);
	assert_string_equal(org, "agency.gov.test");
	/* no record anywhere: the domain itself */
	assert_int_equal(mw_dmarc_org_domain(&w, "mail.example.org", org), MW_DMARC_WALK_FOUND);
	assert_string_equal(org, "mail.example.org");
	assert_int_equal(mw_dmarc_org_domain(&w, "x.down.example", org), MW_DMARC_WALK_TEMPFAIL);

	/* alignment */
	assert_int_equal(mw_dmarc_aligned(&w, "example.com", "mail.example.com", false),
	                 MW_DMARC_WALK_FOUND);
	assert_int_equal(mw_dmarc_aligned(&w, "example.com", "mail.example.com", true),
	                 MW_DMARC_WALK_NONE);
	assert_int_equal(mw_dmarc_aligned(&w, "EXAMPLE.com", "example.COM", true),
	                 MW_DMARC_WALK_FOUND);
	/* two organisations under one public suffix domain do not align */
	assert_int_equal(mw_dmarc_aligned(&w, "a.gov.test", "b.gov.test", false),
	                 MW_DMARC_WALK_NONE);
	/* nor across a psd=n boundary */
	assert_int_equal(mw_dmarc_aligned(&w, "c.b.example.net", "example.net", false),
	                 MW_DMARC_WALK_NONE);
	assert_int_equal(mw_dmarc_aligned(&w, "example.com", "example.net", false),
	                 MW_DMARC_WALK_NONE);
	assert_int_equal(mw_dmarc_aligned(&w, "a.down.example", "b.down.example", false),
	                 MW_DMARC_WALK_TEMPFAIL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_grammar),
	    cmocka_unit_test(test_walk_bound),
	    cmocka_unit_test(test_walk_outcomes),
	    cmocka_unit_test(test_org_domain),
	};

	MW_RUN_TESTS(tests);
}
