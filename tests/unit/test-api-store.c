/* test-api-store.c - the store operations mailwarden-api adds: sessions, login state, audit
   listing (SQLite backend, a temporary database). */
#include "mw-build.h"
#include "mw-store.h"
#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/mw-api-store-XXXXXX";

/* open_fresh - a migrated store in a new temporary directory, with users alice and bob */
static mw_store *open_fresh(int64_t *alice_r, int64_t *bob_r)
{
	char url[256];
	mw_error err = {{0}};
	mw_store *store;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(url, sizeof(url), "sqlite:%s/t.db", dir);
	store = mw_store_open(url, 1000, &err);
	assert_non_null(store);
	assert_int_equal(mw_store_migrate(store, &err), 0);
	assert_int_equal(mw_store_user_add(store, "alice@x.org", "{X}h", MW_USER_ACTIVE,
	                                   MW_ROLE_USER, NULL, alice_r, &err),
	                 0);
	assert_int_equal(mw_store_user_add(store, "bob@x.org", "{X}h", MW_USER_ACTIVE, MW_ROLE_USER,
	                                   NULL, bob_r, &err),
	                 0);
	return store;
}

/* close_fresh - close and remove the temporary store */
static void close_fresh(mw_store **store)
{
	char cmd[300];
	mw_store_close(store);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	memcpy(dir, "/tmp/mw-api-store-XXXXXX", sizeof(dir));
}

/* hash_n - a valid token hash made of digit d */
static void hash_n(char out[MW_TOKEN_HASH_HEX + 1], char d)
{
	memset(out, d, MW_TOKEN_HASH_HEX);
	out[MW_TOKEN_HASH_HEX] = '\0';
}

/* add - a session of user at time now */
static void add(mw_store *store, char d, int64_t user, int64_t now, int64_t idle, int64_t end)
{
	struct mw_session se;
	mw_error err = {{0}};
	memset(&se, 0, sizeof(se));
	hash_n(se.token_hash, d);
	se.user_id = user;
	se.created_at = se.last_seen_at = now;
	se.idle_timeout = idle;
	se.expires_at = end;
	(void)mw_strlcpy(se.client_ip, "192.0.2.1", sizeof(se.client_ip));
	assert_int_equal(mw_store_session_add(store, &se, &err), MW_STORE_OK);
}

/* test_sessions - add, get, touch, revoke by hash, id and user, list live ones */
static void test_sessions(void **state)
{
	int64_t alice, bob, now = 1000000;
	char h[MW_TOKEN_HASH_HEX + 1];
	struct mw_session se, *v = NULL;
	size_t n = 0;
	unsigned count = 0;
	mw_error err = {{0}};
	mw_store *store = open_fresh(&alice, &bob);
	(void)state;
	add(store, '1', alice, now, 60, now + 600);
	add(store, '2', alice, now + 1, 60, now + 600);
	add(store, '3', alice, now, 10, now + 600); /* idle by now + 20 */
	add(store, '4', bob, now, 60, now + 600);
	hash_n(h, '1');
	assert_int_equal(mw_store_session_add(store,
	                                      &(struct mw_session){.user_id = alice,
	                                                           .idle_timeout = 1,
	                                                           .created_at = 1,
	                                                           .expires_at = 2},
	                                      &err),
	                 MW_STORE_ERROR); /* no hash */
	assert_int_equal(mw_store_session_get(store, h, &se, &err), MW_STORE_OK);
	assert_int_equal(se.user_id, alice);
	assert_string_equal(se.client_ip, "192.0.2.1");
	assert_int_equal(se.revoked_at, 0);
	assert_int_equal(mw_store_session_get(store, "ABC", &se, &err), MW_STORE_NOTFOUND);
	hash_n(h, '9');
	assert_int_equal(mw_store_session_get(store, h, &se, &err), MW_STORE_NOTFOUND);
	hash_n(h, '1');
	assert_int_equal(mw_store_session_touch(store, h, now + 15, &err), MW_STORE_OK);
	/* live at now + 20: 1 (touched) and 2, not 3 (idle); newest first */
	assert_int_equal(mw_store_session_list(store, alice, now + 20, &v, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].token_hash[0], '2');
	assert_int_equal(v[1].token_hash[0], '1');
	assert_int_equal(v[1].last_seen_at, now + 15);
	free(v);
	/* past the absolute end nothing is live */
	assert_int_equal(mw_store_session_list(store, alice, now + 600, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
	/* revoke by hash: once */
	assert_int_equal(mw_store_session_revoke(store, h, &err), MW_STORE_OK);
	assert_int_equal(mw_store_session_revoke(store, h, &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_session_get(store, h, &se, &err), MW_STORE_OK);
	assert_true(se.revoked_at != 0);
	assert_int_equal(mw_store_session_touch(store, h, now + 16, &err), MW_STORE_NOTFOUND);
	/* revoke by public id: only the owner's */
	assert_int_equal(mw_store_session_revoke_id(store, alice, "4444444444444444", &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_session_revoke_id(store, alice, "2222", &err), MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_session_revoke_id(store, alice, "x' OR 1=1 --", &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_session_revoke_id(store, alice, "2222222222222222", &err),
	                 MW_STORE_OK);
	/* revoke all but one */
	add(store, '5', bob, now, 60, now + 600);
	hash_n(h, '5');
	assert_int_equal(mw_store_session_revoke_user(store, bob, h, &count, &err), MW_STORE_OK);
	assert_int_equal(count, 1);
	assert_int_equal(mw_store_session_list(store, bob, now + 1, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].token_hash[0], '5');
	free(v);
	assert_int_equal(mw_store_session_revoke_user(store, bob, NULL, &count, &err), 0);
	assert_int_equal(count, 1);
	/* deleting a user deletes their sessions */
	add(store, '6', alice, now, 60, now + 600);
	assert_int_equal(mw_store_user_delete(store, "alice@x.org", &err), 0);
	hash_n(h, '6');
	assert_int_equal(mw_store_session_get(store, h, &se, &err), MW_STORE_NOTFOUND);
	close_fresh(&store);
}

/* test_login_state - failed_logins and locked_until, without touching updated_at */
static void test_login_state(void **state)
{
	int64_t alice, bob;
	struct mw_user u;
	mw_error err = {{0}};
	mw_store *store = open_fresh(&alice, &bob);
	int64_t updated;
	(void)state;
	assert_int_equal(mw_store_user_get(store, "bob@x.org", &u, &err), 0);
	updated = u.updated_at;
	mw_user_clear(&u);
	assert_int_equal(mw_store_user_set_login_state(store, "bob@x.org", 3, 12345, &err), 0);
	assert_int_equal(mw_store_user_get(store, "bob@x.org", &u, &err), 0);
	assert_int_equal(u.failed_logins, 3);
	assert_int_equal(u.locked_until, 12345);
	assert_int_equal(u.updated_at, updated);
	mw_user_clear(&u);
	assert_int_equal(mw_store_user_set_login_state(store, "nobody@x.org", 1, 0, &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_user_set_login_state(store, "bob@x.org", -1, 0, &err),
	                 MW_STORE_ERROR);
	close_fresh(&store);
}

/* test_audit_list - filters, time bounds and paging */
static void test_audit_list(void **state)
{
	static const struct {
		struct mw_audit_filter f;
		size_t count;
	} cases[] = {
	    {{NULL, NULL, NULL, 0, 0, 0, 0, false, 0}, 4},
	    {{"api:a", NULL, NULL, 0, 0, 0, 0, false, 0}, 2},
	    {{NULL, "user.add", NULL, 0, 0, 0, 0, false, 0}, 3},
	    {{"api:a", "user.add", "t2", 0, 0, 0, 0, false, 0}, 1},
	    {{"x' OR '1'='1", NULL, NULL, 0, 0, 0, 0, false, 0}, 0},
	    {{NULL, NULL, NULL, 1, 0, 0, 0, false, 0}, 4},
	    {{NULL, NULL, NULL, 0, 1, 0, 0, false, 0}, 0},
	    {{NULL, NULL, NULL, 0, 0, 0, 2, false, 0}, 2},
	    {{NULL, NULL, NULL, 0, 0, 3, 0, false, 0}, 1},
	    /* newest first: before_id (0: from the newest) and not after_id bounds the page */
	    {{NULL, NULL, NULL, 0, 0, 0, 0, true, 0}, 4},
	    {{NULL, NULL, NULL, 0, 0, 3, 0, true, 0}, 4},
	    {{NULL, NULL, NULL, 0, 0, 0, 0, true, 3}, 2},
	    {{NULL, NULL, NULL, 0, 0, 0, 1, true, 4}, 1},
	    {{NULL, NULL, NULL, 0, 0, 0, 0, true, 1}, 0},
	    {{"api:b", NULL, NULL, 0, 0, 0, 0, true, 0}, 2},
	};
	int64_t alice, bob;
	struct mw_audit_entry *v;
	size_t n, i;
	mw_error err = {{0}};
	mw_store *store = open_fresh(&alice, &bob);
	(void)state;
	assert_int_equal(mw_store_audit_append(store, "api:a", "user.add", "t1", "ip", "", &err),
	                 0);
	assert_int_equal(mw_store_audit_append(store, "api:a", "user.add", "t2", "ip", "{}", &err),
	                 0);
	assert_int_equal(mw_store_audit_append(store, "api:b", "user.add", "t3", "", NULL, &err),
	                 0);
	assert_int_equal(mw_store_audit_append(store, "api:b", "user.delete", "t3", "", NULL, &err),
	                 0);
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		assert_int_equal(mw_store_audit_list(store, &cases[i].f, &v, &n, &err), 0);
		if (n != cases[i].count)
			fail_msg("case %zu: %zu entries, expected %zu", i, n, cases[i].count);
		for (size_t k = 1; k < n; k++)
			if (cases[i].f.newest_first ? v[k].id >= v[k - 1].id
			                            : v[k].id <= v[k - 1].id)
				fail_msg("case %zu: entry %zu out of order", i, k);
		if (cases[i].f.newest_first && cases[i].f.before_id != 0)
			for (size_t k = 0; k < n; k++)
				assert_true(v[k].id < cases[i].f.before_id);
		mw_audit_entries_free(v, n);
	}
	{
		struct mw_audit_filter f = {NULL, NULL, NULL, 0, 0, 1, 2, false, 0};
		assert_int_equal(mw_store_audit_list(store, &f, &v, &n, &err), 0);
		assert_int_equal(n, 2);
		assert_int_equal(v[0].id, 2);
		assert_string_equal(v[0].details, "{}");
		assert_string_equal(v[1].target, "t3");
		mw_audit_entries_free(v, n);
	}
	close_fresh(&store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sessions),
	    cmocka_unit_test(test_login_state),
	    cmocka_unit_test(test_audit_list),
	};
	MW_RUN_TESTS(tests);
}
