/* test-audit.c - the audit log's one vocabulary (lib/mw-audit.def, issue 11): names are
   unique, aliases (what older releases wrote) map to the current names and are never current
   names themselves, and the store lists and filters old rows under the current names. */
#include "mw-build.h"
#include "mw-audit.h"
#include "mw-store.h"
#include "mw-util.h"

#include "mw-test.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* test_names_unique - every name once, OBJECT.VERB, with a doc line */
static void test_names_unique(void **state)
{
	size_t i, j;
	(void)state;
	for (i = 0; i < MW_AUDIT_COUNT; i++) {
		const struct mw_audit_def *d = &mw_audit_defs[i];
		assert_non_null(strchr(d->name, '.'));
		assert_true(d->doc[0] != '\0');
		assert_true(mw_audit_known(d->name));
		assert_string_equal(mw_audit_name((enum mw_audit_action)i), d->name);
		assert_ptr_equal(mw_audit_canonical(d->name), d->name);
		for (j = i + 1; j < MW_AUDIT_COUNT; j++)
			if (strcmp(d->name, mw_audit_defs[j].name) == 0)
				fail_msg("%s is named twice", d->name);
	}
	assert_string_equal(mw_audit_name(MW_AUDIT_COUNT), "unknown");
	assert_false(mw_audit_known("user.del"));
	assert_false(mw_audit_known(NULL));
}

/* test_aliases - the CLI's and the API's old words for the same change */
static void test_aliases(void **state)
{
	static const char *const pairs[][2] = {
	    {"user.del", "user.delete"},
	    {"user.passwd", "user.password"},
	    {"user.enable", "user.update"},
	    {"user.disable", "user.update"},
	    {"allow_from.add", "allowed_from.add"},
	    {"allow_from.del", "allowed_from.delete"},
	    {"tag_rule.del", "tag_rule.delete"},
	    {"dkim.del", "dkim.delete"},
	    {"ratelimit.policy.del", "ratelimit.policy.delete"},
	    {"learn spam", "classifier.learn"},
	    {"learn ham", "classifier.learn"},
	};
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(pairs); i++)
		assert_string_equal(mw_audit_canonical(pairs[i][0]), pairs[i][1]);
	/* unknown names pass through; part of an alias is not an alias */
	assert_string_equal(mw_audit_canonical("something.else"), "something.else");
	assert_string_equal(mw_audit_canonical("user"), "user");
	assert_string_equal(mw_audit_canonical("learn"), "learn");
	assert_string_equal(mw_audit_canonical(""), "");
	assert_null(mw_audit_canonical(NULL));
}

/* test_store_reads_current_names - rows written under old names are listed, and found by a
   filter on either name, as the current name */
static void test_store_reads_current_names(void **state)
{
	char dir[] = "/tmp/mw-test-audit-XXXXXX", url[128], path[96];
	struct mw_audit_filter f;
	struct mw_audit_entry *v = NULL;
	mw_error err = {""};
	mw_store *store;
	size_t n = 0;
	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/s.db", dir);
	(void)snprintf(url, sizeof(url), "sqlite:%s", path);
	store = mw_store_open(url, 1000, &err);
	assert_non_null(store);
	assert_int_equal(mw_store_migrate(store, &err), MW_STORE_OK);
	assert_int_equal(
	    mw_store_audit_append(store, "cli:root", "user.del", "a@x", "local", "", &err),
	    MW_STORE_OK);
	assert_int_equal(
	    mw_store_audit_append(store, "cli:root", "allow_from.add", "a@x", "local", "a@x", &err),
	    MW_STORE_OK);
	assert_int_equal(mw_store_audit_append(store, "api:b", "user.delete", "a@x", "", "", &err),
	                 MW_STORE_OK);
	memset(&f, 0, sizeof(f));
	assert_int_equal(mw_store_audit_list(store, &f, &v, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].action, "user.delete");
	assert_string_equal(v[1].action, "allowed_from.add");
	assert_string_equal(v[1].details, "a@x"); /* details as written */
	assert_string_equal(v[2].action, "user.delete");
	mw_audit_entries_free(v, n);
	f.action = "user.delete";
	assert_int_equal(mw_store_audit_list(store, &f, &v, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 2);
	mw_audit_entries_free(v, n);
	f.action = "user.del";
	assert_int_equal(mw_store_audit_list(store, &f, &v, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 2);
	mw_audit_entries_free(v, n);
	f.action = "allowed_from.add";
	assert_int_equal(mw_store_audit_list(store, &f, &v, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].action, "allowed_from.add");
	mw_audit_entries_free(v, n);
	mw_store_close(&store);
	(void)unlink(path);
	(void)snprintf(path, sizeof(path), "%s/s.db-wal", dir);
	(void)unlink(path);
	(void)snprintf(path, sizeof(path), "%s/s.db-shm", dir);
	(void)unlink(path);
	(void)rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_unique),
	    cmocka_unit_test(test_aliases),
	    cmocka_unit_test(test_store_reads_current_names),
	};
	MW_RUN_TESTS(tests);
}
