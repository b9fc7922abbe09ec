/* users.c - the store's users: accounts, allowed-From patterns, TOTP state, where the main
 * password is accepted, and login throttling state.
 *
 * Each operation checks its arguments, then runs its query (a static struct mw_db_query)
 * through mw_db. Changes to what belongs to a user (patterns) run in one transaction with
 * the stamp of the user's updated_at. Deleting a user cascades (foreign keys) to
 * everything the user owns.
 *
 * Public: mw_store_user_add/_get/_get_by_id/_list/_set_password/_set_status/_set_role/
 * _set_description/_delete, mw_user_clear, mw_store_allowed_from_add/_del/_list,
 * mw_store_strv_free, mw_store_user_totp_get/_set, mw_store_protocols_valid,
 * mw_store_user_main_protocols_get/_set, mw_store_user_set_login_state; mw_store_user_id
 * and mw_store_user_touch for the other entity files (mw-store-private.h).
 *
 * Diagnostics: through error_r; "no such user" for an unknown username; never a hash.
 */
#include "mw-build.h"
#include "mw-store-private.h"
#include "mw-pattern.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define USER_COLUMNS                                                                               \
	"id, username, password, status, role, description, created_at, updated_at, "              \
	"password_changed_at, CASE WHEN substr(totp_secret, 1, 3) = 'v1:' THEN 1 ELSE 0 END, "     \
	"failed_logins, locked_until"

static const struct mw_db_query q_user_add = {
    "adding a user",
    "INSERT INTO users (username, password, status, role, description, created_at, "
    "updated_at, password_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6) RETURNING id",
    NULL};
static const struct mw_db_query q_user_get = {
    "reading a user", "SELECT " USER_COLUMNS " FROM users WHERE username = ?1", NULL};
static const struct mw_db_query q_user_get_id = {
    "reading a user", "SELECT " USER_COLUMNS " FROM users WHERE id = ?1", NULL};
static const struct mw_db_query q_user_list = {
    "listing users",
    "SELECT " USER_COLUMNS " FROM users WHERE id > ?1 AND (CAST(?2 AS TEXT) IS NULL OR "
    "status = ?2) AND (CAST(?3 AS TEXT) IS NULL OR role = ?3) ORDER BY id LIMIT ?4",
    NULL};
/* pgsql: append FOR UPDATE, so the changes of one user's belongings (tag rules, patterns)
   serialise inside their transactions as SQLite's BEGIN IMMEDIATE makes them */
static const struct mw_db_query q_user_id = {"looking up a user",
                                             "SELECT id FROM users WHERE username = ?1", NULL};
static const struct mw_db_query q_user_touch = {
    "updating a user", "UPDATE users SET updated_at = ?2 WHERE id = ?1", NULL};
static const struct mw_db_query q_user_set_password = {
    "setting a password",
    "UPDATE users SET password = ?2, password_changed_at = ?3, updated_at = ?3 "
    "WHERE username = ?1",
    NULL};
static const struct mw_db_query q_user_set_status = {
    "setting a status", "UPDATE users SET status = ?2, updated_at = ?3 WHERE username = ?1", NULL};
static const struct mw_db_query q_user_set_role = {
    "setting a role", "UPDATE users SET role = ?2, updated_at = ?3 WHERE username = ?1", NULL};
static const struct mw_db_query q_user_set_description = {
    "setting a description",
    "UPDATE users SET description = ?2, updated_at = ?3 WHERE username = ?1", NULL};
static const struct mw_db_query q_user_delete = {"deleting a user",
                                                 "DELETE FROM users WHERE username = ?1", NULL};
static const struct mw_db_query q_user_set_login = {
    "recording a login",
    "UPDATE users SET failed_logins = ?2, locked_until = ?3 WHERE username = ?1", NULL};
static const struct mw_db_query q_af_add = {
    "adding a pattern", "INSERT INTO allowed_from (user_id, pattern) VALUES (?1, ?2)", NULL};
static const struct mw_db_query q_af_del = {
    "deleting a pattern", "DELETE FROM allowed_from WHERE user_id = ?1 AND pattern = ?2", NULL};
/* ORDER BY a.pattern compares bytes in both dialects (the PostgreSQL schema declares
   text columns COLLATE "C"; a locale collation would ignore the punctuation of patterns) */
static const struct mw_db_query q_af_list = {
    "listing patterns",
    "SELECT a.pattern FROM users u LEFT JOIN allowed_from a ON a.user_id = u.id "
    "WHERE u.username = ?1 ORDER BY a.pattern",
    NULL};
static const struct mw_db_query q_totp_get = {
    "reading TOTP state", "SELECT totp_secret FROM users WHERE username = ?1", NULL};
static const struct mw_db_query q_totp_set = {
    "changing TOTP state",
    "UPDATE users SET totp_secret = ?3 WHERE username = ?1 "
    "AND (totp_secret = ?2 OR (totp_secret IS NULL AND CAST(?2 AS TEXT) IS NULL))",
    NULL};
static const struct mw_db_query q_mainproto_get = {
    "reading main password protocols",
    "SELECT main_password_protocols FROM users WHERE username = ?1", NULL};
static const struct mw_db_query q_mainproto_set = {
    "setting main password protocols",
    "UPDATE users SET main_password_protocols = ?2, updated_at = ?3 WHERE username = ?1", NULL};

/* no_such_user - a lookup or change that found no user row says so */
static int no_such_user(int ret, mw_error *error_r)
{
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	return ret;
}

/* check_hash - a password hash as stored: printable, bounded, not empty */
static int check_hash(const char *hash, mw_error *error_r)
{
	return mw_store_check_text("password hash", hash, MW_STORE_HASH_MAX, false, error_r);
}

/* user_state - a USER_COLUMNS row's status and role (columns 3, 4: known names, else the
   row is malformed) and failed_logins (column 10, clamped to an int) */
static int user_state(const mw_db_row *row, void *elem)
{
	struct mw_user *u = elem;
	const char *status = mw_db_text(row, 3), *role = mw_db_text(row, 4);
	int64_t failed = mw_db_int(row, 10);
	if (status == NULL || role == NULL || mw_user_status_parse(status, &u->status) < 0 ||
	    mw_user_role_parse(role, &u->role) < 0)
		return -1;
	u->failed_logins = failed < 0 ? 0 : failed > INT_MAX ? INT_MAX : (int)failed;
	return 0;
}

/* the USER_COLUMNS */
#define USER(type, field) MW_STORE_COL(struct mw_user, type, field)
static const struct mw_store_col user_cols[] = {
    USER(INT, id),         USER(KEY, username),   USER(DUP, password),
    MW_STORE_COL_SKIPPED,  MW_STORE_COL_SKIPPED,  USER(DUP, description),
    USER(INT, created_at), USER(INT, updated_at), USER(INT, password_changed_at),
    USER(BOOL, has_totp),  MW_STORE_COL_SKIPPED,  USER(INT, locked_until)};
static const struct mw_store_reader user_reader =
    MW_STORE_READER(user_cols, "user row", true, user_state);

struct user_one {
	struct mw_user *user;
	mw_error *error_r;
};

/* read_user_cb - read_user as the row callback of a single-user query */
static int read_user_cb(const mw_db_row *row, void *ctx)
{
	struct user_one *one = ctx;
	mw_user_clear(one->user);
	return mw_store_read_row(row, one->user, &user_reader, one->error_r);
}

/* get_user - run a single-user query */
static int get_user(mw_store *store, const struct mw_db_query *q, struct mw_db_arg key,
                    struct mw_user *user_r, mw_error *error_r)
{
	struct user_one one = {user_r, error_r};
	int ret = mw_db_one(store->db, q, &key, 1, read_user_cb, &one, error_r);
	if (ret != MW_STORE_OK)
		mw_user_clear(user_r);
	return no_such_user(ret, error_r);
}

/* mw_store_user_id - a user's id */
int mw_store_user_id(mw_store *store, const char *username, int64_t *id_r, mw_error *error_r)
{
	return no_such_user(
	    mw_db_int_one(store->db, &q_user_id, MW_DB_ARGS(MW_DB_T(username)), id_r, error_r),
	    error_r);
}

/* mw_store_user_touch - stamp updated_at on a user whose belongings changed */
int mw_store_user_touch(mw_store *store, int64_t id, mw_error *error_r)
{
	return mw_db_change(store->db, &q_user_touch, MW_DB_ARGS(MW_DB_I(id), MW_DB_I(mw_now())),
	                    error_r);
}

/* mw_store_user_add - add a user */
int mw_store_user_add(mw_store *store, const char *username, const char *password_hash,
                      enum mw_user_status status, enum mw_user_role role, const char *description,
                      int64_t *id_r, mw_error *error_r)
{
	int64_t id;
	int ret;
	if (mw_store_username_check(username, error_r) < 0 ||
	    check_hash(password_hash, error_r) < 0)
		return MW_STORE_ERROR;
	if (mw_user_status_name(status) == NULL || mw_user_role_name(role) == NULL) {
		mw_error_set(error_r, "invalid user status or role");
		return MW_STORE_ERROR;
	}
	if (description == NULL)
		description = "";
	if (mw_store_check_text("description", description, MW_DESCRIPTION_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	ret = mw_db_int_one(store->db, &q_user_add,
	                    MW_DB_ARGS(MW_DB_T(username), MW_DB_T(password_hash),
	                               MW_DB_T(mw_user_status_name(status)),
	                               MW_DB_T(mw_user_role_name(role)), MW_DB_T(description),
	                               MW_DB_I(mw_now())),
	                    id_r != NULL ? id_r : &id, error_r);
	if (ret == MW_STORE_EXISTS)
		mw_error_set(error_r, "user %s already exists", username);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* mw_store_user_get - look a user up by (normalised) username */
int mw_store_user_get(mw_store *store, const char *username, struct mw_user *user_r,
                      mw_error *error_r)
{
	memset(user_r, 0, sizeof(*user_r));
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return get_user(store, &q_user_get, MW_DB_T(username), user_r, error_r);
}

/* mw_store_user_get_by_id - look a user up by id */
int mw_store_user_get_by_id(mw_store *store, int64_t id, struct mw_user *user_r, mw_error *error_r)
{
	memset(user_r, 0, sizeof(*user_r));
	if (id <= 0) {
		mw_error_set(error_r, "no user with id %lld", (long long)id);
		return MW_STORE_NOTFOUND;
	}
	return get_user(store, &q_user_get_id, MW_DB_I(id), user_r, error_r);
}

/* mw_user_clear - free what a user record owns and wipe the hash */
void mw_user_clear(struct mw_user *user)
{
	if (user == NULL)
		return;
	if (user->password != NULL) {
		mw_memzero(user->password, strlen(user->password));
		free(user->password);
	}
	free(user->description);
	memset(user, 0, sizeof(*user));
}

/* mw_store_user_list - read one page of users, then call fn for each */
int mw_store_user_list(mw_store *store, const struct mw_user_filter *filter,
                       int (*fn)(const struct mw_user *user, void *ctx), void *ctx,
                       mw_error *error_r)
{
	struct mw_user_filter any = {.status = -1, .role = -1, .after_id = 0, .limit = 0};
	struct mw_store_rows rows = MW_STORE_ROWS_OF(struct mw_user, &user_reader, false, error_r);
	struct mw_user *users;
	size_t i;
	int ret;
	if (filter == NULL)
		filter = &any;
	if (filter->status < -1 ||
	    (filter->status >= 0 &&
	     mw_user_status_name((enum mw_user_status)filter->status) == NULL)) {
		mw_error_set(error_r, "invalid status filter %d", filter->status);
		return MW_STORE_ERROR;
	}
	if (filter->role < -1 ||
	    (filter->role >= 0 && mw_user_role_name((enum mw_user_role)filter->role) == NULL)) {
		mw_error_set(error_r, "invalid role filter %d", filter->role);
		return MW_STORE_ERROR;
	}
	ret = mw_db_run(
	    store->db, &q_user_list,
	    MW_DB_ARGS(MW_DB_I(filter->after_id),
	               MW_DB_T(filter->status < 0
	                           ? NULL
	                           : mw_user_status_name((enum mw_user_status)filter->status)),
	               MW_DB_T(filter->role < 0
	                           ? NULL
	                           : mw_user_role_name((enum mw_user_role)filter->role)),
	               MW_DB_I(filter->limit == 0 ? INT64_MAX : (int64_t)filter->limit)),
	    mw_store_rows_cb, &rows, NULL, error_r);
	users = rows.v;
	/* the page is read: fn may use the store */
	for (i = 0; ret == MW_STORE_OK && i < rows.count; i++)
		ret = fn(&users[i], ctx);
	for (i = 0; i < rows.count; i++)
		mw_user_clear(&users[i]);
	free(users);
	return ret;
}

/* set_column - the shared body of the user_set_* operations: ?1 username, ?2 value, ?3 now */
static int set_column(mw_store *store, const struct mw_db_query *q, const char *username,
                      const char *value, mw_error *error_r)
{
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return no_such_user(
	    mw_db_change(store->db, q,
	                 MW_DB_ARGS(MW_DB_T(username), MW_DB_T(value), MW_DB_I(mw_now())), error_r),
	    error_r);
}

/* mw_store_user_set_password - replace a user's password hash */
int mw_store_user_set_password(mw_store *store, const char *username, const char *password_hash,
                               mw_error *error_r)
{
	if (check_hash(password_hash, error_r) < 0)
		return MW_STORE_ERROR;
	return set_column(store, &q_user_set_password, username, password_hash, error_r);
}

/* mw_store_user_set_status - change a user's status */
int mw_store_user_set_status(mw_store *store, const char *username, enum mw_user_status status,
                             mw_error *error_r)
{
	if (mw_user_status_name(status) == NULL) {
		mw_error_set(error_r, "invalid user status %d", (int)status);
		return MW_STORE_ERROR;
	}
	return set_column(store, &q_user_set_status, username, mw_user_status_name(status),
	                  error_r);
}

/* mw_store_user_set_role - change a user's role */
int mw_store_user_set_role(mw_store *store, const char *username, enum mw_user_role role,
                           mw_error *error_r)
{
	if (mw_user_role_name(role) == NULL) {
		mw_error_set(error_r, "invalid user role %d", (int)role);
		return MW_STORE_ERROR;
	}
	return set_column(store, &q_user_set_role, username, mw_user_role_name(role), error_r);
}

/* mw_store_user_set_description - change a user's description */
int mw_store_user_set_description(mw_store *store, const char *username, const char *description,
                                  mw_error *error_r)
{
	if (description == NULL)
		description = "";
	if (mw_store_check_text("description", description, MW_DESCRIPTION_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	return set_column(store, &q_user_set_description, username, description, error_r);
}

/* mw_store_user_delete - delete a user; foreign keys cascade to what they own */
int mw_store_user_delete(mw_store *store, const char *username, mw_error *error_r)
{
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return no_such_user(
	    mw_db_change(store->db, &q_user_delete, MW_DB_ARGS(MW_DB_T(username)), error_r),
	    error_r);
}

/* mw_store_user_set_login_state - failed_logins and locked_until, without updated_at */
int mw_store_user_set_login_state(mw_store *store, const char *username, int failed_logins,
                                  int64_t locked_until, mw_error *error_r)
{
	if (failed_logins < 0 || locked_until < 0) {
		mw_error_set(error_r, "invalid login state");
		return MW_STORE_ERROR;
	}
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return no_such_user(mw_db_change(store->db, &q_user_set_login,
	                                 MW_DB_ARGS(MW_DB_T(username), MW_DB_I(failed_logins),
	                                            MW_DB_I(locked_until)),
	                                 error_r),
	                    error_r);
}

/* ---- allowed-From patterns ---- */

/* check_pattern - a canonical allowed-From pattern: bounded, printable, no blanks */
static int check_pattern(const char *pattern, mw_error *error_r)
{
	if (mw_store_check_text("pattern", pattern, MW_PATTERN_MAX, false, error_r) < 0)
		return -1;
	if (strchr(pattern, ' ') != NULL) {
		mw_error_set(error_r, "pattern contains a blank");
		return -1;
	}
	return 0;
}

/* pattern_change - add (add=true) or delete one pattern of a user, in a transaction */
static int pattern_change(mw_store *store, const char *username, const char *pattern, bool add,
                          mw_error *error_r)
{
	int64_t id = 0;
	int ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = mw_store_user_id(store, username, &id, error_r);
	if (ret == MW_STORE_OK) {
		ret = mw_db_change(store->db, add ? &q_af_add : &q_af_del,
		                   MW_DB_ARGS(MW_DB_I(id), MW_DB_T(pattern)), error_r);
		if (ret == MW_STORE_EXISTS)
			mw_error_set(error_r, "pattern %s is already allowed for %s", pattern,
			             username);
		else if (ret == MW_STORE_NOTFOUND)
			mw_error_set(error_r, "pattern %s is not allowed for %s", pattern,
			             username);
	}
	if (ret == MW_STORE_OK)
		ret = mw_store_user_touch(store, id, error_r);
	return mw_db_end(store->db, ret, error_r);
}

/* mw_store_allowed_from_add - allow a user to send as pattern */
int mw_store_allowed_from_add(mw_store *store, const char *username, const char *pattern,
                              mw_error *error_r)
{
	if (check_pattern(pattern, error_r) < 0)
		return MW_STORE_ERROR;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return pattern_change(store, username, pattern, true, error_r);
}

/* mw_store_allowed_from_del - remove one of a user's patterns */
int mw_store_allowed_from_del(mw_store *store, const char *username, const char *pattern,
                              mw_error *error_r)
{
	if (check_pattern(pattern, error_r) < 0 || mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return pattern_change(store, username, pattern, false, error_r);
}

/* read_pattern - one pattern of a user */
static int read_pattern(const mw_db_row *row, void *elem, mw_error *error_r)
{
	(void)error_r;
	*(char **)elem = mw_db_text_dup(row, 0);
	return MW_STORE_OK;
}

/* mw_store_allowed_from_list - a user's patterns, sorted, in one read (an unknown user has
   no row, a user without patterns one row of NULL) */
int mw_store_allowed_from_list(mw_store *store, const char *username, char ***patterns_r,
                               size_t *count_r, mw_error *error_r)
{
	struct mw_store_rows rows = MW_STORE_ROWS(char *, read_pattern, true, error_r);
	uint64_t seen = 0;
	size_t count;
	char **v;
	int ret;
	*patterns_r = NULL;
	if (count_r == NULL)
		count_r = &count;
	*count_r = 0;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_run(store->db, &q_af_list, MW_DB_ARGS(MW_DB_T(username)), mw_store_rows_cb,
	                &rows, &seen, error_r);
	/* NULL-terminated */
	v = mw_realloc(rows.v, (rows.count + 1) * sizeof(*v));
	v[rows.count] = NULL;
	if (ret == MW_STORE_OK && seen == 0)
		ret = no_such_user(MW_STORE_NOTFOUND, error_r);
	if (ret != MW_STORE_OK) {
		mw_store_strv_free(v);
		return ret;
	}
	*patterns_r = v;
	*count_r = rows.count;
	return MW_STORE_OK;
}

/* mw_store_strv_free - free a NULL-terminated array of strings */
void mw_store_strv_free(char **strv)
{
	size_t i;
	if (strv == NULL)
		return;
	for (i = 0; strv[i] != NULL; i++)
		free(strv[i]);
	free(strv);
}

/* ---- TOTP state and main password protocols (mailwarden-api 2FA, issue 5) ---- */

/* totp_text_check - TOTP state text: printable ASCII within MW_TOTP_STATE_MAX (NULL ok) */
static int totp_text_check(const char *text, mw_error *error_r)
{
	size_t i;
	if (text == NULL)
		return 0;
	for (i = 0; text[i] != '\0'; i++) {
		if (i >= MW_TOTP_STATE_MAX || text[i] < 0x21 || text[i] > 0x7e) {
			mw_error_set(error_r, "TOTP state is not short printable ASCII");
			return -1;
		}
	}
	if (i == 0) {
		mw_error_set(error_r, "TOTP state is empty");
		return -1;
	}
	return 0;
}

/* read_text_or_null - column 0 as an owned string or NULL */
static int read_text_or_null(const mw_db_row *row, void *ctx)
{
	free(*(char **)ctx);
	*(char **)ctx = mw_store_text_or_null(row, 0);
	return 0;
}

/* mw_store_user_totp_get - a user's TOTP state text (NULL = none) */
int mw_store_user_totp_get(mw_store *store, const char *username, char **text_r, mw_error *error_r)
{
	int ret;
	*text_r = NULL;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_one(store->db, &q_totp_get, MW_DB_ARGS(MW_DB_T(username)), read_text_or_null,
	                text_r, error_r);
	if (ret != MW_STORE_OK) {
		free(*text_r);
		*text_r = NULL;
	}
	return no_such_user(ret, error_r);
}

/* mw_store_user_totp_set - compare-and-swap a user's TOTP state */
int mw_store_user_totp_set(mw_store *store, const char *username, const char *old_text,
                           const char *new_text, mw_error *error_r)
{
	int ret;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (totp_text_check(old_text, error_r) < 0 || totp_text_check(new_text, error_r) < 0)
		return MW_STORE_ERROR;
	ret = mw_db_change(store->db, &q_totp_set,
	                   MW_DB_ARGS(MW_DB_T(username), MW_DB_T(old_text), MW_DB_T(new_text)),
	                   error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user, or its TOTP state changed meanwhile");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* mw_store_protocols_valid - one of the protocol lists the store accepts */
bool mw_store_protocols_valid(const char *protocols, bool allow_empty)
{
	return protocols != NULL &&
	       ((allow_empty && protocols[0] == '\0') || strcmp(protocols, "imap") == 0 ||
	        strcmp(protocols, "smtp") == 0 || strcmp(protocols, "imap,smtp") == 0);
}

/* read_protocols - column 0 into a MW_PROTOCOLS_MAX buffer ("" when it does not fit) */
static int read_protocols(const mw_db_row *row, void *ctx)
{
	(void)mw_store_text_copy(row, 0, ctx, MW_PROTOCOLS_MAX + 1);
	return 0;
}

/* mw_store_user_main_protocols_get - where a user's main password is accepted */
int mw_store_user_main_protocols_get(mw_store *store, const char *username,
                                     char out[MW_PROTOCOLS_MAX + 1], mw_error *error_r)
{
	out[0] = '\0';
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return no_such_user(mw_db_one(store->db, &q_mainproto_get, MW_DB_ARGS(MW_DB_T(username)),
	                              read_protocols, out, error_r),
	                    error_r);
}

/* mw_store_user_main_protocols_set - set where a user's main password is accepted */
int mw_store_user_main_protocols_set(mw_store *store, const char *username, const char *protocols,
                                     mw_error *error_r)
{
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (!mw_store_protocols_valid(protocols, true)) {
		mw_error_set(error_r, "protocols must be \"\", imap, smtp or imap,smtp");
		return MW_STORE_ERROR;
	}
	return set_column(store, &q_mainproto_set, username, protocols, error_r);
}
