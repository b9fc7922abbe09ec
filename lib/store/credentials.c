/* credentials.c - the store's app passwords and failed authentications.
 *
 * App passwords (app_passwords) are read by Dovecot's passdb sql as well: an absent expiry
 * or network list is stored as NULL, never 0 or '', because passdb sql skips NULL fields.
 * Failed authentications (auth_failures) are counted by one upsert statement, so API
 * processes counting at once never lose a failure.
 *
 * Public: mw_store_app_password_add/_list/_del/_used/_revoke_all,
 * mw_store_auth_fail_add/_get/_clear/_sum/_prune.
 *
 * Diagnostics: through error_r; never a hash.
 */
#include "mw-build.h"
#include "mw-store-private.h"

#include <stdlib.h>
#include <string.h>

/* pgsql: BEGIN takes no write lock there, so two adds could both pass the count: lock the
   user's row first (SELECT id FROM users WHERE username = ?1 FOR UPDATE), as SQLite's
   BEGIN IMMEDIATE serialises them */
static const struct mw_db_query q_apppw_count = {
    "counting app passwords",
    "SELECT u.id, count(a.id) FROM users u LEFT JOIN app_passwords a ON a.user_id = u.id "
    "WHERE u.username = ?1 GROUP BY u.id",
    NULL};
static const struct mw_db_query q_apppw_add = {
    "adding an app password",
    "INSERT INTO app_passwords (user_id, name, protocols, hash, created_at, expires_at, "
    "allow_nets) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
    NULL};
static const struct mw_db_query q_apppw_list = {
    "listing app passwords",
    "SELECT a.id, a.name, a.protocols, a.hash, a.created_at, coalesce(a.expires_at, 0), "
    "coalesce(a.allow_nets, ''), coalesce(a.last_used_at, 0), coalesce(a.last_ip, '') "
    "FROM users u LEFT JOIN app_passwords a ON a.user_id = u.id "
    "WHERE u.username = ?1 ORDER BY a.id",
    NULL};
static const struct mw_db_query q_apppw_del = {
    "deleting an app password",
    "DELETE FROM app_passwords WHERE id = ?2 "
    "AND user_id = (SELECT id FROM users WHERE username = ?1)",
    NULL};
static const struct mw_db_query q_apppw_used = {
    "recording an app password's use",
    "UPDATE app_passwords SET last_used_at = ?3, last_ip = nullif(?4, '') "
    "WHERE id = ?2 AND user_id = (SELECT id FROM users WHERE username = ?1)",
    NULL};
static const struct mw_db_query q_apppw_revoke_all = {
    "revoking app passwords",
    "DELETE FROM app_passwords WHERE user_id = (SELECT id FROM users WHERE username = ?1)", NULL};
/* one statement, so two API processes counting at once never lose a failure */
static const struct mw_db_query q_authfail_add = {
    "counting a failed authentication",
    "INSERT INTO auth_failures (key, net, failures, first_at, last_at) "
    "VALUES (?1, ?2, 1, ?3, ?3) ON CONFLICT (key, net) DO UPDATE SET "
    "failures = CASE WHEN auth_failures.last_at < ?4 THEN 1 "
    "ELSE auth_failures.failures + 1 END, "
    "first_at = CASE WHEN auth_failures.last_at < ?4 THEN ?3 ELSE auth_failures.first_at END, "
    "last_at = CASE WHEN auth_failures.last_at > ?3 THEN auth_failures.last_at ELSE ?3 END "
    "RETURNING failures, first_at, last_at",
    NULL};
static const struct mw_db_query q_authfail_get = {
    "reading failed authentications",
    "SELECT failures, first_at, last_at FROM auth_failures WHERE key = ?1 AND net = ?2", NULL};
static const struct mw_db_query q_authfail_clear = {
    "clearing failed authentications",
    "DELETE FROM auth_failures WHERE key = ?1 AND (CAST(?2 AS TEXT) IS NULL OR net = ?2)", NULL};
/* pgsql: sum(bigint) is numeric there: the driver's get_int reads its text */
static const struct mw_db_query q_authfail_sum = {
    "summing failed authentications",
    "SELECT coalesce(sum(failures), 0), count(*) FROM auth_failures "
    "WHERE key = ?1 AND last_at >= ?2",
    NULL};
static const struct mw_db_query q_authfail_prune = {
    "pruning failed authentications", "DELETE FROM auth_failures WHERE last_at < ?1", NULL};

/* no_such_app_password - a change that found no row says so */
static int no_such_app_password(int ret, mw_error *error_r)
{
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such app password");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* app_password_insert - count the user's app passwords and insert one (in a transaction) */
static int app_password_insert(mw_store *store, const char *username,
                               const struct mw_app_password *ap, int64_t *id_r, mw_error *error_r)
{
	int64_t uc[2] = {0, 0};
	int ret = mw_db_one(store->db, &q_apppw_count, MW_DB_ARGS(MW_DB_T(username)),
	                    mw_store_read_ints, uc, error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	if (ret != MW_STORE_OK)
		return ret;
	if (uc[1] >= MW_APP_PW_PER_USER_MAX) {
		mw_error_set(error_r, "a user may have at most %d app passwords",
		             MW_APP_PW_PER_USER_MAX);
		return MW_STORE_ERROR;
	}
	/* NULL, not 0 or '': Dovecot's passdb sql skips NULL fields */
	ret = mw_db_int_one(store->db, &q_apppw_add,
	                    MW_DB_ARGS(MW_DB_I(uc[0]), MW_DB_T(ap->name), MW_DB_T(ap->protocols),
	                               MW_DB_T(ap->hash), MW_DB_I(mw_now()),
	                               ap->expires_at != 0 ? MW_DB_I(ap->expires_at) : MW_DB_NUL,
	                               MW_DB_T(ap->allow_nets[0] != '\0' ? ap->allow_nets : NULL)),
	                    id_r, error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* mw_store_app_password_add - record a new app password, refusing more than the limit */
int mw_store_app_password_add(mw_store *store, const char *username,
                              const struct mw_app_password *ap, int64_t *id_r, mw_error *error_r)
{
	int64_t id;
	int ret;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (mw_store_check_text("app password name", ap->name, MW_APP_PW_NAME_MAX, false, error_r) <
	        0 ||
	    mw_store_check_text("allow_nets", ap->allow_nets, MW_APP_PW_NETS_MAX, true, error_r) <
	        0)
		return MW_STORE_ERROR;
	if (!mw_store_protocols_valid(ap->protocols, false)) {
		mw_error_set(error_r, "protocols must be imap, smtp or imap,smtp");
		return MW_STORE_ERROR;
	}
	if (strlen(ap->hash) != MW_APP_PW_HASH_HEX ||
	    !mw_store_hex_check(ap->hash, MW_APP_PW_HASH_HEX)) {
		mw_error_set(error_r, "an app password hash is 64 lower-case hex digits");
		return MW_STORE_ERROR;
	}
	if (ap->expires_at < 0) {
		mw_error_set(error_r, "invalid expiry time");
		return MW_STORE_ERROR;
	}
	ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = app_password_insert(store, username, ap, id_r != NULL ? id_r : &id, error_r);
	return mw_db_end(store->db, ret, error_r);
}

/* the columns of q_apppw_list */
#define APPPW(type, field) MW_STORE_COL(struct mw_app_password, type, field)
static const struct mw_store_col apppw_cols[] = {APPPW(INT, id),
                                                 APPPW(TEXT_LAX, name),
                                                 APPPW(TEXT_LAX, protocols),
                                                 APPPW(TEXT_LAX, hash),
                                                 APPPW(INT, created_at),
                                                 APPPW(INT, expires_at),
                                                 APPPW(TEXT_LAX, allow_nets),
                                                 APPPW(INT, last_used_at),
                                                 APPPW(TEXT_LAX, last_ip)};
static const struct mw_store_reader apppw_reader =
    MW_STORE_READER(apppw_cols, "app password", true, NULL);

/* mw_store_app_password_list - a user's app passwords in id order (an unknown user has no
   row, a user without app passwords one row of NULLs) */
int mw_store_app_password_list(mw_store *store, const char *username,
                               struct mw_app_password **list_r, size_t *count_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_app_password, &apppw_reader, true, error_r);
	int ret;
	*list_r = NULL;
	*count_r = 0;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_store_list(store, &q_apppw_list, MW_DB_ARGS(MW_DB_T(username)), &rows, NULL, true);
	*list_r = rows.v;
	*count_r = rows.count;
	return ret;
}

/* check_user_and_id - the username and app password id of a del or used */
static int check_user_and_id(const char *username, int64_t id, mw_error *error_r)
{
	if (mw_store_username_check(username, error_r) < 0)
		return -1;
	if (id <= 0) {
		mw_error_set(error_r, "no such app password");
		return -1;
	}
	return 0;
}

/* mw_store_app_password_del - delete one app password of a user */
int mw_store_app_password_del(mw_store *store, const char *username, int64_t id, mw_error *error_r)
{
	if (check_user_and_id(username, id, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return no_such_app_password(mw_db_change(store->db, &q_apppw_del,
	                                         MW_DB_ARGS(MW_DB_T(username), MW_DB_I(id)),
	                                         error_r),
	                            error_r);
}

/* mw_store_app_password_used - stamp an app password's last use and client address */
int mw_store_app_password_used(mw_store *store, const char *username, int64_t id, int64_t at,
                               const char *ip, mw_error *error_r)
{
	if (check_user_and_id(username, id, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (at < 0) {
		mw_error_set(error_r, "invalid time");
		return MW_STORE_ERROR;
	}
	if (mw_store_check_text("client address", ip, MW_CLIENT_IP_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	return no_such_app_password(
	    mw_db_change(store->db, &q_apppw_used,
	                 MW_DB_ARGS(MW_DB_T(username), MW_DB_I(id), MW_DB_I(at), MW_DB_T(ip)),
	                 error_r),
	    error_r);
}

/* mw_store_app_password_revoke_all - delete all of a user's app passwords and count them */
int mw_store_app_password_revoke_all(mw_store *store, const char *username, unsigned *count_r,
                                     mw_error *error_r)
{
	uint64_t n = 0;
	int ret;
	*count_r = 0;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_run(store->db, &q_apppw_revoke_all, MW_DB_ARGS(MW_DB_T(username)), NULL, NULL,
	                &n, error_r);
	if (ret == MW_STORE_OK)
		*count_r = (unsigned)n;
	return ret;
}

/* ---- failed authentications per (key, client network) (issue 9) ---- */

/* auth_fail_word - a key or network: 1..max printable ASCII bytes without blanks */
static int auth_fail_word(const char *what, const char *s, size_t max, mw_error *error_r)
{
	size_t i;
	if (s == NULL || s[0] == '\0') {
		mw_error_set(error_r, "%s is empty", what);
		return -1;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= max || s[i] <= 0x20 || s[i] >= 0x7f) {
			mw_error_set(error_r, "%s is not 1..%zu printable characters", what, max);
			return -1;
		}
	}
	return 0;
}

/* auth_fail_pair - key and network of a row */
static int auth_fail_pair(const char *key, const char *net, mw_error *error_r)
{
	if (auth_fail_word("key", key, MW_AUTH_FAIL_KEY_MAX, error_r) < 0 ||
	    auth_fail_word("network", net, MW_AUTH_FAIL_NET_MAX, error_r) < 0)
		return -1;
	return 0;
}

/* read_auth_fail - (failures, first_at, last_at) */
static int read_auth_fail(const mw_db_row *row, void *ctx)
{
	struct mw_auth_fail *f = ctx;
	f->failures = mw_db_int(row, 0);
	f->first_at = mw_db_int(row, 1);
	f->last_at = mw_db_int(row, 2);
	return 0;
}

/* mw_store_auth_fail_add - count one failed authentication of (key, net), atomically */
int mw_store_auth_fail_add(mw_store *store, const char *key, const char *net, int64_t now,
                           int64_t since, struct mw_auth_fail *row_r, mw_error *error_r)
{
	int ret;
	memset(row_r, 0, sizeof(*row_r));
	if (auth_fail_pair(key, net, error_r) < 0)
		return MW_STORE_ERROR;
	if (now < 0 || since > now) {
		mw_error_set(error_r, "invalid time");
		return MW_STORE_ERROR;
	}
	ret = mw_db_one(store->db, &q_authfail_add,
	                MW_DB_ARGS(MW_DB_T(key), MW_DB_T(net), MW_DB_I(now), MW_DB_I(since)),
	                read_auth_fail, row_r, error_r);
	return ret == MW_STORE_OK ? ret : MW_STORE_ERROR;
}

/* mw_store_auth_fail_get - the failures of (key, net) */
int mw_store_auth_fail_get(mw_store *store, const char *key, const char *net,
                           struct mw_auth_fail *row_r, mw_error *error_r)
{
	int ret;
	memset(row_r, 0, sizeof(*row_r));
	if (auth_fail_pair(key, net, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_one(store->db, &q_authfail_get, MW_DB_ARGS(MW_DB_T(key), MW_DB_T(net)),
	                read_auth_fail, row_r, error_r);
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* mw_store_auth_fail_clear - forget (key, net)'s failures, or all of key's (net NULL) */
int mw_store_auth_fail_clear(mw_store *store, const char *key, const char *net, mw_error *error_r)
{
	int ret;
	if (auth_fail_word("key", key, MW_AUTH_FAIL_KEY_MAX, error_r) < 0 ||
	    (net != NULL && auth_fail_word("network", net, MW_AUTH_FAIL_NET_MAX, error_r) < 0))
		return MW_STORE_ERROR;
	ret = mw_db_run(store->db, &q_authfail_clear, MW_DB_ARGS(MW_DB_T(key), MW_DB_T(net)), NULL,
	                NULL, NULL, error_r);
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* mw_store_auth_fail_sum - key's failures and networks since a time (the aggregate has
   one row whatever matches) */
int mw_store_auth_fail_sum(mw_store *store, const char *key, int64_t since, int64_t *failures_r,
                           int64_t *nets_r, mw_error *error_r)
{
	int64_t sum[2] = {0, 0};
	int ret;
	*failures_r = *nets_r = 0;
	if (auth_fail_word("key", key, MW_AUTH_FAIL_KEY_MAX, error_r) < 0)
		return MW_STORE_ERROR;
	ret = mw_db_run(store->db, &q_authfail_sum, MW_DB_ARGS(MW_DB_T(key), MW_DB_I(since)),
	                mw_store_read_ints, sum, NULL, error_r);
	*failures_r = sum[0];
	*nets_r = sum[1];
	return ret;
}

/* mw_store_auth_fail_prune - delete rows whose last failure is older than before */
int mw_store_auth_fail_prune(mw_store *store, int64_t before, mw_error *error_r)
{
	int ret = mw_db_run(store->db, &q_authfail_prune, MW_DB_ARGS(MW_DB_I(before)), NULL, NULL,
	                    NULL, error_r);
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}
