/* mw-store.c - the store front end: URL parsing, argument checks, dispatch to a backend.
 *
 * Every component opens the store here. This file knows no SQL: it picks a backend from
 * the URL ("sqlite:/abs/path" or a bare absolute path; "postgresql://" and "postgres://"
 * are recognised but not built yet), checks each argument against its limit, and calls
 * the backend through its struct mw_store_backend (mw-store-private.h).
 *
 * Public: mw_store_open, mw_store_close, mw_store_migrate, mw_store_schema_version,
 * mw_store_latest_schema_version, mw_store_check_schema, mw_store_backend_name,
 * mw_store_username_normalize, mw_user_status_name/_parse, mw_user_role_name/_parse,
 * mw_store_user_*, mw_user_clear, mw_store_allowed_from_*, mw_store_strv_free,
 * mw_store_audit_append, mw_store_session_* and mw_store_user_set_login_state,
 * mw_store_audit_list, mw_audit_entries_free (mailwarden-api).
 * mw_store_dkim_key_*, mw_dkim_key_row_clear, mw_dkim_key_rows_free (DKIM signing keys).
 * mw_store_user_totp_get/_set, mw_store_user_main_protocols_get/_set,
 * mw_store_protocols_valid, mw_store_app_password_* (2FA and app passwords).
 * mw_store_auth_fail_* (failed authentications per key and client network, issue 9).
 * mw_rate_limit_check (the bounds of a rate limit's count and window).
 *
 * Diagnostics: through error_r only; nothing here logs. Messages name the offending
 * argument but never a password hash.
 */
#include "mw-build.h"
#include "mw-audit.h"
#include "mw-store-private.h"
#include "mw-pattern.h"

#include <stdlib.h>
#include <string.h>

/* check_text - a free-text argument: at most max bytes of valid UTF-8 without control
   characters; what names the argument in the message */
static int check_text(const char *what, const char *s, size_t max, bool allow_empty,
                      mw_error *error_r)
{
	size_t len, i, n;
	uint32_t cp;
	if (s == NULL) {
		mw_error_set(error_r, "%s is missing", what);
		return -1;
	}
	len = strnlen(s, max + 1);
	if (len > max) {
		mw_error_set(error_r, "%s is longer than %zu bytes", what, max);
		return -1;
	}
	if (len == 0 && !allow_empty) {
		mw_error_set(error_r, "%s is empty", what);
		return -1;
	}
	for (i = 0; i < len; i += n) {
		n = mw_utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			mw_error_set(error_r, "%s is not valid UTF-8", what);
			return -1;
		}
		if (mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "%s contains a control character", what);
			return -1;
		}
	}
	return 0;
}

/* mw_store_username_normalize - validate a login name and fold its ASCII letters */
int mw_store_username_normalize(const char *in, char *out, size_t outsize, mw_error *error_r)
{
	size_t len, i, n;
	uint32_t cp;
	if (in == NULL || *in == '\0') {
		mw_error_set(error_r, "username is empty");
		return -1;
	}
	len = strnlen(in, MW_USERNAME_MAX + 1);
	if (len > MW_USERNAME_MAX) {
		mw_error_set(error_r, "username is longer than %d bytes", MW_USERNAME_MAX);
		return -1;
	}
	for (i = 0; i < len; i += n) {
		n = mw_utf8_decode(in + i, len - i, &cp);
		if (n == 0) {
			mw_error_set(error_r, "username is not valid UTF-8");
			return -1;
		}
		if (mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "username contains a control character");
			return -1;
		}
		if (cp == ' ' || cp == 0xa0 || cp == 0x2028 || cp == 0x2029 || cp == 0x3000 ||
		    (cp >= 0x2000 && cp <= 0x200b) || cp == 0xfeff) {
			mw_error_set(error_r, "username contains a blank");
			return -1;
		}
		if (cp == '%' || cp == '\'' || cp == '"' || cp == '\\') {
			mw_error_set(error_r, "username contains '%c', which is not allowed",
			             (char)cp);
			return -1;
		}
	}
	if (outsize <= len) {
		mw_error_set(error_r, "username does not fit its buffer");
		return -1;
	}
	memcpy(out, in, len + 1);
	mw_ascii_lower(out);
	return 0;
}

/* username_check - the argument is a username in its normalised form */
static int username_check(const char *username, mw_error *error_r)
{
	char norm[MW_USERNAME_MAX + 1];
	if (mw_store_username_normalize(username, norm, sizeof(norm), error_r) < 0)
		return -1;
	if (strcmp(norm, username) != 0) {
		mw_error_set(error_r, "username is not normalised (upper-case letters)");
		return -1;
	}
	return 0;
}

static const char *const status_names[] = {
    [MW_USER_PENDING] = "pending",
    [MW_USER_ACTIVE] = "active",
    [MW_USER_DISABLED] = "disabled",
};

static const char *const role_names[] = {
    [MW_ROLE_USER] = "user",
    [MW_ROLE_ADMIN] = "admin",
};

/* mw_user_status_name - the name stored in the status column, NULL for a bad value */
const char *mw_user_status_name(enum mw_user_status s)
{
	if ((unsigned)s >= MW_N_ELEMENTS(status_names))
		return NULL;
	return status_names[s];
}

/* mw_user_status_parse - a status name (ASCII case-insensitive) to its value */
int mw_user_status_parse(const char *name, enum mw_user_status *s_r)
{
	int i = mw_name_index(status_names, MW_N_ELEMENTS(status_names), name);
	if (i < 0)
		return -1;
	*s_r = (enum mw_user_status)i;
	return 0;
}

/* mw_user_role_name - the name stored in the role column, NULL for a bad value */
const char *mw_user_role_name(enum mw_user_role r)
{
	if ((unsigned)r >= MW_N_ELEMENTS(role_names))
		return NULL;
	return role_names[r];
}

/* mw_user_role_parse - a role name (ASCII case-insensitive) to its value */
int mw_user_role_parse(const char *name, enum mw_user_role *r_r)
{
	int i = mw_name_index(role_names, MW_N_ELEMENTS(role_names), name);
	if (i < 0)
		return -1;
	*r_r = (enum mw_user_role)i;
	return 0;
}

/* mw_store_open - pick the backend named by url and open it */
mw_store *mw_store_open(const char *url, unsigned busy_timeout_ms, mw_error *error_r)
{
	const struct mw_store_backend *backend;
	const char *location;
	mw_store *store;
	if (url == NULL || *url == '\0') {
		mw_error_set(error_r, "store URL is empty");
		return NULL;
	}
	if (strnlen(url, MW_STORE_URL_MAX + 1) > MW_STORE_URL_MAX) {
		mw_error_set(error_r, "store URL is longer than %d bytes", MW_STORE_URL_MAX);
		return NULL;
	}
	if (mw_ascii_strncasecmp(url, "postgresql://", 13) == 0 ||
	    mw_ascii_strncasecmp(url, "postgres://", 11) == 0) {
		/* the URL may hold a password: do not echo it */
		mw_error_set(error_r, "PostgreSQL backend not built yet");
		return NULL;
	}
	if (mw_ascii_strncasecmp(url, "sqlite:", 7) == 0) {
		location = url + 7;
		/* "sqlite:///p" is "/p"; "sqlite://host/p" would silently drop a host */
		if (strncmp(location, "//", 2) == 0 && location[2] != '/') {
			mw_error_set(error_r, "store URL takes a path: sqlite:/path/file.db");
			return NULL;
		}
		if (strncmp(location, "///", 3) == 0)
			location += 2;
	} else if (url[0] == '/') {
		location = url;
	} else {
		mw_error_set(error_r, "store URL must be sqlite:/path/file.db, an absolute path, "
		                      "or postgresql://...");
		return NULL;
	}
	if (location[0] != '/') {
		mw_error_set(error_r, "store path must be absolute: sqlite:/path/file.db");
		return NULL;
	}
	if (check_text("store path", location, MW_STORE_URL_MAX, false, error_r) < 0)
		return NULL;
	backend = &mw_store_backend_sqlite;
	store = mw_calloc(1, sizeof(*store));
	store->backend = backend;
	if (backend->open(store, location, busy_timeout_ms, error_r) < 0) {
		free(store);
		return NULL;
	}
	return store;
}

/* mw_store_close - close the store and clear the caller's pointer */
void mw_store_close(mw_store **store)
{
	if (store == NULL || *store == NULL)
		return;
	(*store)->backend->close(*store);
	free(*store);
	*store = NULL;
}

/* mw_store_migrate - apply pending migrations */
int mw_store_migrate(mw_store *store, mw_error *error_r)
{
	return store->backend->migrate(store, error_r);
}

/* mw_store_schema_version - the version recorded in the store */
int mw_store_schema_version(mw_store *store, int *version_r, mw_error *error_r)
{
	return store->backend->schema_version(store, version_r, error_r);
}

/* mw_store_latest_schema_version - the newest migration this code carries */
int mw_store_latest_schema_version(void)
{
	return mw_store_backend_sqlite.latest_schema_version();
}

/* mw_store_check_schema - refuse a store that is newer than the code or not migrated */
int mw_store_check_schema(mw_store *store, mw_error *error_r)
{
	int version, latest = store->backend->latest_schema_version();
	if (store->backend->schema_version(store, &version, error_r) < 0)
		return -1;
	if (version > latest) {
		mw_error_set(error_r,
		             "store schema version %d is newer than this mailwarden "
		             "knows (%d): upgrade mailwarden",
		             version, latest);
		return -1;
	}
	if (version < latest) {
		mw_error_set(error_r,
		             "store schema version %d is older than %d: run "
		             "'mailwardenctl init'",
		             version, latest);
		return -1;
	}
	return 0;
}

/* mw_store_backend_name - "sqlite" or "postgresql" */
const char *mw_store_backend_name(const mw_store *store)
{
	return store->backend->name;
}

/* check_hash - a password hash as stored: printable, bounded, not empty */
static int check_hash(const char *hash, mw_error *error_r)
{
	return check_text("password hash", hash, MW_STORE_HASH_MAX, false, error_r);
}

/* mw_store_user_add - add a user */
int mw_store_user_add(mw_store *store, const char *username, const char *password_hash,
                      enum mw_user_status status, enum mw_user_role role, const char *description,
                      int64_t *id_r, mw_error *error_r)
{
	int64_t id;
	if (username_check(username, error_r) < 0 || check_hash(password_hash, error_r) < 0)
		return MW_STORE_ERROR;
	if (mw_user_status_name(status) == NULL || mw_user_role_name(role) == NULL) {
		mw_error_set(error_r, "invalid user status or role");
		return MW_STORE_ERROR;
	}
	if (description == NULL)
		description = "";
	if (check_text("description", description, MW_DESCRIPTION_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	return store->backend->user_add(store, username, password_hash, status, role, description,
	                                id_r != NULL ? id_r : &id, error_r);
}

/* mw_store_user_get - look a user up by (normalised) username */
int mw_store_user_get(mw_store *store, const char *username, struct mw_user *user_r,
                      mw_error *error_r)
{
	memset(user_r, 0, sizeof(*user_r));
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_get(store, username, user_r, error_r);
}

/* mw_store_user_get_by_id - look a user up by id */
int mw_store_user_get_by_id(mw_store *store, int64_t id, struct mw_user *user_r, mw_error *error_r)
{
	memset(user_r, 0, sizeof(*user_r));
	if (id <= 0) {
		mw_error_set(error_r, "no user with id %lld", (long long)id);
		return MW_STORE_NOTFOUND;
	}
	return store->backend->user_get_by_id(store, id, user_r, error_r);
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
	struct mw_user *users = NULL;
	size_t count = 0, i;
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
	ret = store->backend->user_list(store, filter, &users, &count, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	for (i = 0; i < count && ret == 0; i++)
		ret = fn(&users[i], ctx);
	for (i = 0; i < count; i++)
		mw_user_clear(&users[i]);
	free(users);
	return ret;
}

/* mw_store_user_set_password - replace a user's password hash */
int mw_store_user_set_password(mw_store *store, const char *username, const char *password_hash,
                               mw_error *error_r)
{
	if (check_hash(password_hash, error_r) < 0)
		return MW_STORE_ERROR;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_set_password(store, username, password_hash, error_r);
}

/* mw_store_user_set_status - change a user's status */
int mw_store_user_set_status(mw_store *store, const char *username, enum mw_user_status status,
                             mw_error *error_r)
{
	if (mw_user_status_name(status) == NULL) {
		mw_error_set(error_r, "invalid user status %d", (int)status);
		return MW_STORE_ERROR;
	}
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_set_status(store, username, status, error_r);
}

/* mw_store_user_set_role - change a user's role */
int mw_store_user_set_role(mw_store *store, const char *username, enum mw_user_role role,
                           mw_error *error_r)
{
	if (mw_user_role_name(role) == NULL) {
		mw_error_set(error_r, "invalid user role %d", (int)role);
		return MW_STORE_ERROR;
	}
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_set_role(store, username, role, error_r);
}

/* mw_store_user_set_description - change a user's description */
int mw_store_user_set_description(mw_store *store, const char *username, const char *description,
                                  mw_error *error_r)
{
	if (description == NULL)
		description = "";
	if (check_text("description", description, MW_DESCRIPTION_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_set_description(store, username, description, error_r);
}

/* mw_store_user_delete - delete a user and everything that belongs to them */
int mw_store_user_delete(mw_store *store, const char *username, mw_error *error_r)
{
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_delete(store, username, error_r);
}

/* check_pattern - a canonical allowed-From pattern: bounded, printable, no blanks */
static int check_pattern(const char *pattern, mw_error *error_r)
{
	if (check_text("pattern", pattern, MW_PATTERN_MAX, false, error_r) < 0)
		return -1;
	if (strchr(pattern, ' ') != NULL) {
		mw_error_set(error_r, "pattern contains a blank");
		return -1;
	}
	return 0;
}

/* mw_store_allowed_from_add - allow a user to send as pattern */
int mw_store_allowed_from_add(mw_store *store, const char *username, const char *pattern,
                              mw_error *error_r)
{
	if (check_pattern(pattern, error_r) < 0)
		return MW_STORE_ERROR;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->allowed_from_add(store, username, pattern, error_r);
}

/* mw_store_allowed_from_del - remove one of a user's patterns */
int mw_store_allowed_from_del(mw_store *store, const char *username, const char *pattern,
                              mw_error *error_r)
{
	if (check_pattern(pattern, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->allowed_from_del(store, username, pattern, error_r);
}

/* mw_store_allowed_from_list - a user's patterns, sorted */
int mw_store_allowed_from_list(mw_store *store, const char *username, char ***patterns_r,
                               size_t *count_r, mw_error *error_r)
{
	size_t count;
	*patterns_r = NULL;
	if (count_r == NULL)
		count_r = &count;
	*count_r = 0;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->allowed_from_list(store, username, patterns_r, count_r, error_r);
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

/* mw_store_audit_append - add one entry to the append-only audit log */
int mw_store_audit_append(mw_store *store, const char *actor, const char *action,
                          const char *target, const char *client, const char *details,
                          mw_error *error_r)
{
	if (target == NULL)
		target = "";
	if (client == NULL)
		client = "";
	if (details == NULL)
		details = "";
	if (check_text("audit actor", actor, MW_AUDIT_FIELD_MAX, false, error_r) < 0 ||
	    check_text("audit action", action, MW_AUDIT_FIELD_MAX, false, error_r) < 0 ||
	    check_text("audit target", target, MW_AUDIT_FIELD_MAX, true, error_r) < 0 ||
	    check_text("audit client", client, MW_AUDIT_FIELD_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	/* details is JSON text: may span lines, so only length and UTF-8 are checked */
	if (strnlen(details, MW_AUDIT_DETAILS_MAX + 1) > MW_AUDIT_DETAILS_MAX) {
		mw_error_set(error_r, "audit details are longer than %d bytes",
		             MW_AUDIT_DETAILS_MAX);
		return MW_STORE_ERROR;
	}
	if (!mw_utf8_valid(details, strlen(details), NULL)) {
		mw_error_set(error_r, "audit details are not valid UTF-8");
		return MW_STORE_ERROR;
	}
	return store->backend->audit_append(store, actor, action, target, client, details, error_r);
}

/* ---- API sessions and audit listing (mailwarden-api, issue 5) ---- */

/* hex_check - exactly len lower-case hex digits */
static bool hex_check(const char *s, size_t len)
{
	size_t i;
	if (s == NULL || strnlen(s, len + 1) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* token_hash_check - a session key: 64 lower-case hex digits */
static int token_hash_check(const char *hash, mw_error *error_r)
{
	if (!hex_check(hash, MW_TOKEN_HASH_HEX)) {
		mw_error_set(error_r, "a session token hash is 64 lower-case hex digits");
		return -1;
	}
	return 0;
}

/* mw_store_session_add - record a new session */
int mw_store_session_add(mw_store *store, const struct mw_session *session, mw_error *error_r)
{
	if (token_hash_check(session->token_hash, error_r) < 0 ||
	    check_text("client IP", session->client_ip, MW_CLIENT_IP_MAX, true, error_r) < 0 ||
	    check_text("user agent", session->user_agent, MW_USER_AGENT_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	if (session->user_id <= 0 || session->idle_timeout <= 0 ||
	    session->expires_at <= session->created_at) {
		mw_error_set(error_r, "invalid session times or user");
		return MW_STORE_ERROR;
	}
	return store->backend->session_add(store, session, error_r);
}

/* mw_store_session_get - a session by token hash, whatever its state */
int mw_store_session_get(mw_store *store, const char *token_hash, struct mw_session *session_r,
                         mw_error *error_r)
{
	memset(session_r, 0, sizeof(*session_r));
	if (token_hash_check(token_hash, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->session_get(store, token_hash, session_r, error_r);
}

/* mw_store_session_touch - note that a session was used at now */
int mw_store_session_touch(mw_store *store, const char *token_hash, int64_t now, mw_error *error_r)
{
	if (token_hash_check(token_hash, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->session_touch(store, token_hash, now, error_r);
}

/* mw_store_session_revoke - end one live session */
int mw_store_session_revoke(mw_store *store, const char *token_hash, mw_error *error_r)
{
	if (token_hash_check(token_hash, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->session_revoke(store, token_hash, error_r);
}

/* mw_store_session_revoke_id - end one live session of a user, named by its public id */
int mw_store_session_revoke_id(mw_store *store, int64_t user_id, const char *id, mw_error *error_r)
{
	if (!hex_check(id, MW_SESSION_ID_LEN)) {
		mw_error_set(error_r, "a session id is %d lower-case hex digits",
		             MW_SESSION_ID_LEN);
		return MW_STORE_NOTFOUND;
	}
	return store->backend->session_revoke_id(store, user_id, id, error_r);
}

/* mw_store_session_revoke_user - end every live session of a user but one */
int mw_store_session_revoke_user(mw_store *store, int64_t user_id, const char *except_hash,
                                 unsigned *count_r, mw_error *error_r)
{
	unsigned count;
	if (count_r == NULL)
		count_r = &count;
	*count_r = 0;
	if (except_hash != NULL && token_hash_check(except_hash, error_r) < 0)
		return MW_STORE_ERROR;
	return store->backend->session_revoke_user(store, user_id, except_hash, count_r, error_r);
}

/* mw_store_session_list - a user's live sessions, newest first */
int mw_store_session_list(mw_store *store, int64_t user_id, int64_t now,
                          struct mw_session **sessions_r, size_t *count_r, mw_error *error_r)
{
	*sessions_r = NULL;
	*count_r = 0;
	return store->backend->session_list(store, user_id, now, sessions_r, count_r, error_r);
}

/* mw_store_user_set_login_state - record failed logins and a lock */
int mw_store_user_set_login_state(mw_store *store, const char *username, int failed_logins,
                                  int64_t locked_until, mw_error *error_r)
{
	if (failed_logins < 0 || locked_until < 0) {
		mw_error_set(error_r, "invalid login state");
		return MW_STORE_ERROR;
	}
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_set_login_state(store, username, failed_logins, locked_until,
	                                            error_r);
}

/* mw_store_audit_list - one page of audit entries */
int mw_store_audit_list(mw_store *store, const struct mw_audit_filter *filter,
                        struct mw_audit_entry **entries_r, size_t *count_r, mw_error *error_r)
{
	struct mw_audit_filter f;
	size_t i;
	int ret;
	*entries_r = NULL;
	*count_r = 0;
	if ((filter->actor != NULL &&
	     check_text("actor filter", filter->actor, MW_AUDIT_FIELD_MAX, false, error_r) < 0) ||
	    (filter->action != NULL &&
	     check_text("action filter", filter->action, MW_AUDIT_FIELD_MAX, false, error_r) < 0) ||
	    (filter->target != NULL &&
	     check_text("target filter", filter->target, MW_AUDIT_FIELD_MAX, false, error_r) < 0))
		return MW_STORE_ERROR;
	/* one vocabulary (lib/mw-audit.def): filter and report by the current action names,
	   whatever name an older release wrote */
	f = *filter;
	f.action = mw_audit_canonical(filter->action);
	ret = store->backend->audit_list(store, &f, entries_r, count_r, error_r);
	for (i = 0; ret == MW_STORE_OK && i < *count_r; i++) {
		const char *cur = mw_audit_canonical((*entries_r)[i].action);
		if (cur != (*entries_r)[i].action) {
			free((*entries_r)[i].action);
			(*entries_r)[i].action = mw_strdup(cur);
		}
	}
	return ret;
}

/* mw_audit_entries_free - free what mw_store_audit_list returned */
void mw_audit_entries_free(struct mw_audit_entry *entries, size_t count)
{
	size_t i;
	for (i = 0; i < count; i++) {
		free(entries[i].actor);
		free(entries[i].action);
		free(entries[i].target);
		free(entries[i].client);
		free(entries[i].details);
	}
	free(entries);
}

/* ---- tag rules and training events (Dovecot plugin, issue 6) ---- */

/* mw_store_tag_rule_add - append a checked rule to the user's list */
int mw_store_tag_rule_add(mw_store *store, const char *username, const struct mw_tag_rule *rule,
                          int64_t *id_r, mw_error *error_r)
{
	int64_t id;
	if (rule == NULL || mw_tagrule_check(rule, error_r) < 0)
		return MW_STORE_ERROR;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->tag_rule_add(store, username, rule, id_r != NULL ? id_r : &id,
	                                    error_r);
}

/* mw_store_tag_rule_list - a user's rules in position order */
int mw_store_tag_rule_list(mw_store *store, const char *username, struct mw_tag_rule **rules_r,
                           size_t *count_r, mw_error *error_r)
{
	*rules_r = NULL;
	*count_r = 0;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->tag_rule_list(store, username, rules_r, count_r, error_r);
}

/* mw_store_tag_rule_del - delete one of the user's rules */
int mw_store_tag_rule_del(mw_store *store, const char *username, int64_t id, mw_error *error_r)
{
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (id <= 0) {
		mw_error_set(error_r, "no rule with id %lld", (long long)id);
		return MW_STORE_NOTFOUND;
	}
	return store->backend->tag_rule_del(store, username, id, error_r);
}

/* mw_training_verdict_name - "spam" or "ham", NULL for a bad value */
const char *mw_training_verdict_name(enum mw_training_verdict v)
{
	switch (v) {
	case MW_TRAINING_SPAM:
		return "spam";
	case MW_TRAINING_HAM:
		return "ham";
	}
	return NULL;
}

/* mw_store_training_add - record one spam/ham event for the classifier */
int mw_store_training_add(mw_store *store, const char *username, const char *message_id,
                          enum mw_training_verdict verdict, mw_error *error_r)
{
	if (mw_training_verdict_name(verdict) == NULL) {
		mw_error_set(error_r, "invalid training verdict %d", (int)verdict);
		return MW_STORE_ERROR;
	}
	if (message_id == NULL)
		message_id = "";
	if (check_text("message id", message_id, MW_MESSAGE_ID_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->training_add(store, username, message_id, verdict, error_r);
}

/* mw_store_training_list - events after after_id, oldest first */
int mw_store_training_list(mw_store *store, int64_t after_id, unsigned limit, bool pending_only,
                           struct mw_training_event **events_r, size_t *count_r, mw_error *error_r)
{
	*events_r = NULL;
	*count_r = 0;
	if (after_id < 0)
		after_id = 0;
	return store->backend->training_list(store, after_id, limit, pending_only, events_r,
	                                     count_r, error_r);
}

/* mw_training_events_free - free what mw_store_training_list returned */
void mw_training_events_free(struct mw_training_event *events, size_t count)
{
	size_t i;
	if (events == NULL)
		return;
	for (i = 0; i < count; i++)
		free(events[i].message_id);
	free(events);
}

/* mw_rate_limit_check - count and window inside what the rate counters compute exactly */
int mw_rate_limit_check(int64_t count, int64_t window_seconds, bool per_message, mw_error *error_r)
{
	if (count < 1 || count > MW_RATE_COUNT_MAX) {
		mw_error_set(error_r,
		             "count must be a whole number in 1..%lld (the largest the rate "
		             "counters compute exactly)",
		             MW_RATE_COUNT_MAX);
		return -1;
	}
	if ((window_seconds != 0 || !per_message) &&
	    (window_seconds < 1 || window_seconds > MW_RATE_WINDOW_MAX)) {
		mw_error_set(error_r, "window must be 1..%lld seconds (1s..366d)",
		             MW_RATE_WINDOW_MAX);
		return -1;
	}
	return 0;
}

/* rate_word - VALUE is one of the words of LIST ("a|b|c") */
static bool rate_word(const char *list, const char *value)
{
	size_t n = strlen(value);
	while (*list != '\0') {
		size_t w = strcspn(list, "|");
		if (w == n && n > 0 && strncmp(list, value, n) == 0)
			return true;
		list += w;
		if (*list == '|')
			list++;
	}
	return false;
}

/* mw_rate_policy_check - a rate policy's scope, metric, action, limit and match (what
   mw_store_rate_policy_add checks; mailwardenctl --api checks the same before sending) */
int mw_rate_policy_check(const struct mw_rate_policy *p, mw_error *error_r)
{
	if (!rate_word("sasl_username|client_address|sender|sender_domain|recipient|"
	               "recipient_domain",
	               p->scope)) {
		mw_error_set(error_r, "unknown rate policy scope");
		return -1;
	}
	if (!rate_word("messages|recipients|size", p->metric)) {
		mw_error_set(error_r, "unknown rate policy metric (messages, recipients or size)");
		return -1;
	}
	if (!rate_word("defer|reject", p->action)) {
		mw_error_set(error_r, "unknown rate policy action (defer or reject)");
		return -1;
	}
	if (mw_rate_limit_check(p->limit_count, p->window_seconds, false, error_r) < 0) {
		mw_error_prefix(error_r, "rate policy: ");
		return -1;
	}
	if (memchr(p->match, '\0', sizeof(p->match)) == NULL ||
	    check_text("rate policy match", p->match, MW_RATE_MATCH_MAX, true, error_r) < 0)
		return -1;
	return 0;
}

/* mw_store_rate_policy_add - add a rate policy after checking every field */
int mw_store_rate_policy_add(mw_store *store, const struct mw_rate_policy *policy, int64_t *id_r,
                             mw_error *error_r)
{
	struct mw_rate_policy p = *policy;
	if (mw_rate_policy_check(&p, error_r) < 0)
		return MW_STORE_ERROR;
	if (memchr(p.username, '\0', sizeof(p.username)) == NULL)
		return MW_STORE_ERROR;
	if (p.username[0] != '\0' && mw_store_username_normalize(policy->username, p.username,
	                                                         sizeof(p.username), error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->rate_policy_add(store, &p, id_r, error_r);
}

/* mw_store_rate_policy_list - every rate policy, id order */
int mw_store_rate_policy_list(mw_store *store, struct mw_rate_policy **policies_r, size_t *count_r,
                              mw_error *error_r)
{
	*policies_r = NULL;
	*count_r = 0;
	return store->backend->rate_policy_list(store, policies_r, count_r, error_r);
}

/* mw_store_rate_policy_del - delete a rate policy by id */
int mw_store_rate_policy_del(mw_store *store, int64_t id, mw_error *error_r)
{
	if (id <= 0) {
		mw_error_set(error_r, "no rate policy with id %lld", (long long)id);
		return MW_STORE_NOTFOUND;
	}
	return store->backend->rate_policy_del(store, id, error_r);
}

/* ---- DKIM signing keys (issue 3) ---- */

/* check_dkim_name - a lower-case LDH name: labels of [a-z0-9-] (and '_' when underscore)
   separated by single dots, each 1..63 bytes, at most max in all */
static int check_dkim_name(const char *what, const char *s, size_t max, bool underscore,
                           mw_error *error_r)
{
	size_t len, i, label = 0;
	if (s == NULL || *s == '\0') {
		mw_error_set(error_r, "%s is empty", what);
		return -1;
	}
	len = strnlen(s, max + 1);
	if (len > max) {
		mw_error_set(error_r, "%s is longer than %zu bytes", what, max);
		return -1;
	}
	for (i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				mw_error_set(error_r, "%s has an empty or over-long label", what);
				return -1;
			}
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      (underscore && c == '_'))) {
			mw_error_set(error_r, "%s contains a character other than a-z 0-9 - %s.",
			             what, underscore ? "_ " : "");
			return -1;
		}
		label++;
	}
	return 0;
}

/* check_dkim_pair - domain and selector of a DKIM key */
static int check_dkim_pair(const char *domain, const char *selector, mw_error *error_r)
{
	if (check_dkim_name("DKIM domain", domain, MW_DKIM_DOMAIN_MAX, false, error_r) < 0)
		return -1;
	if (selector != NULL &&
	    check_dkim_name("DKIM selector", selector, MW_DKIM_SELECTOR_MAX, true, error_r) < 0)
		return -1;
	return 0;
}

/* dkim_row_split - turn the stored "k=TYPE; p=B64" text of a row into key_type and the
   bare p= value (a row without the prefix is taken as rsa) */
static int dkim_row_split(struct mw_dkim_key_row *row, mw_error *error_r)
{
	const char *p = row->public_key, *semi;
	char *bare;
	if (p == NULL) {
		mw_error_set(error_r, "DKIM key %s/%s has no public key", row->domain,
		             row->selector);
		return MW_STORE_ERROR;
	}
	if (strncmp(p, "k=", 2) != 0) {
		(void)mw_strlcpy(row->key_type, "rsa", sizeof(row->key_type));
		return MW_STORE_OK;
	}
	semi = strchr(p, ';');
	if (semi == NULL || (size_t)(semi - p - 2) >= sizeof(row->key_type) || semi == p + 2 ||
	    strncmp(semi, "; p=", 4) != 0) {
		mw_error_set(error_r, "DKIM key %s/%s: malformed public key", row->domain,
		             row->selector);
		return MW_STORE_ERROR;
	}
	memcpy(row->key_type, p + 2, (size_t)(semi - p - 2));
	row->key_type[semi - p - 2] = '\0';
	bare = mw_strdup(semi + 4);
	free(row->public_key);
	row->public_key = bare;
	return MW_STORE_OK;
}

/* mw_store_dkim_key_add - store a new (encrypted) DKIM key */
int mw_store_dkim_key_add(mw_store *store, const char *domain, const char *selector,
                          const char *key_type, const char *private_key, const char *public_key,
                          bool active, mw_error *error_r)
{
	mw_str stored;
	size_t i;
	int ret;
	if (check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_ERROR;
	if (key_type == NULL ||
	    (strcmp(key_type, "rsa") != 0 && strcmp(key_type, "ed25519") != 0)) {
		mw_error_set(error_r, "DKIM key type must be rsa or ed25519");
		return MW_STORE_ERROR;
	}
	if (check_text("DKIM private key", private_key, MW_DKIM_SECRET_MAX, false, error_r) < 0)
		return MW_STORE_ERROR;
	if (strncmp(private_key, "v1:", 3) != 0) {
		mw_error_set(error_r, "DKIM private key is not encrypted text");
		return MW_STORE_ERROR;
	}
	if (check_text("DKIM public key", public_key, MW_DKIM_PUBLIC_MAX, false, error_r) < 0)
		return MW_STORE_ERROR;
	for (i = 0; public_key[i] != '\0'; i++) {
		char c = public_key[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '=')) {
			mw_error_set(error_r, "DKIM public key is not base64");
			return MW_STORE_ERROR;
		}
	}
	mw_str_init(&stored, 0);
	(void)mw_str_appendf(&stored, "k=%s; p=%s", key_type, public_key);
	ret = store->backend->dkim_key_add(store, domain, selector, private_key, mw_str_c(&stored),
	                                   active, error_r);
	mw_str_free(&stored);
	return ret;
}

/* mw_store_dkim_key_list - every DKIM key, or a domain's */
int mw_store_dkim_key_list(mw_store *store, const char *domain, struct mw_dkim_key_row **rows_r,
                           size_t *count_r, mw_error *error_r)
{
	size_t i;
	int ret;
	*rows_r = NULL;
	*count_r = 0;
	if (domain != NULL && check_dkim_pair(domain, NULL, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = store->backend->dkim_key_list(store, domain, rows_r, count_r, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	for (i = 0; i < *count_r; i++) {
		if (dkim_row_split(&(*rows_r)[i], error_r) != MW_STORE_OK) {
			mw_dkim_key_rows_free(*rows_r, *count_r);
			*rows_r = NULL;
			*count_r = 0;
			return MW_STORE_ERROR;
		}
	}
	return MW_STORE_OK;
}

/* dkim_get - the shared body of get and get_active */
static int dkim_get(mw_store *store, const char *domain, const char *selector,
                    struct mw_dkim_key_row *row_r, mw_error *error_r)
{
	int ret;
	memset(row_r, 0, sizeof(*row_r));
	if (check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = store->backend->dkim_key_get(store, domain, selector != NULL ? selector : "",
	                                   selector == NULL, row_r, error_r);
	if (ret == MW_STORE_OK && (ret = dkim_row_split(row_r, error_r)) != MW_STORE_OK)
		mw_dkim_key_row_clear(row_r);
	return ret;
}

/* mw_store_dkim_key_get - one key by domain and selector */
int mw_store_dkim_key_get(mw_store *store, const char *domain, const char *selector,
                          struct mw_dkim_key_row *row_r, mw_error *error_r)
{
	if (selector == NULL) {
		memset(row_r, 0, sizeof(*row_r));
		mw_error_set(error_r, "DKIM selector is missing");
		return MW_STORE_NOTFOUND;
	}
	return dkim_get(store, domain, selector, row_r, error_r);
}

/* mw_store_dkim_key_get_active - the active key of a domain */
int mw_store_dkim_key_get_active(mw_store *store, const char *domain, struct mw_dkim_key_row *row_r,
                                 mw_error *error_r)
{
	return dkim_get(store, domain, NULL, row_r, error_r);
}

/* mw_store_dkim_key_set_active - make one key the domain's only active key */
int mw_store_dkim_key_set_active(mw_store *store, const char *domain, const char *selector,
                                 mw_error *error_r)
{
	if (selector == NULL || check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->dkim_key_set_active(store, domain, selector, error_r);
}

/* mw_store_dkim_key_delete - delete one key */
int mw_store_dkim_key_delete(mw_store *store, const char *domain, const char *selector,
                             mw_error *error_r)
{
	if (selector == NULL || check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->dkim_key_delete(store, domain, selector, error_r);
}

/* mw_dkim_key_row_clear - wipe the encrypted key and free the row's strings */
void mw_dkim_key_row_clear(struct mw_dkim_key_row *row)
{
	if (row == NULL)
		return;
	if (row->private_key != NULL) {
		mw_memzero(row->private_key, strlen(row->private_key));
		free(row->private_key);
	}
	free(row->public_key);
	memset(row, 0, sizeof(*row));
}

/* mw_dkim_key_rows_free - free an array of rows from mw_store_dkim_key_list */
void mw_dkim_key_rows_free(struct mw_dkim_key_row *rows, size_t count)
{
	size_t i;
	if (rows == NULL)
		return;
	for (i = 0; i < count; i++)
		mw_dkim_key_row_clear(&rows[i]);
	free(rows);
}

/* ---- TOTP state and app passwords (mailwarden-api 2FA, issue 5) ---- */

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

/* mw_store_user_totp_get - a user's TOTP state text (NULL = none) */
int mw_store_user_totp_get(mw_store *store, const char *username, char **text_r, mw_error *error_r)
{
	*text_r = NULL;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_totp_get(store, username, text_r, error_r);
}

/* mw_store_user_totp_set - compare-and-swap a user's TOTP state */
int mw_store_user_totp_set(mw_store *store, const char *username, const char *old_text,
                           const char *new_text, mw_error *error_r)
{
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (totp_text_check(old_text, error_r) < 0 || totp_text_check(new_text, error_r) < 0)
		return MW_STORE_ERROR;
	return store->backend->user_totp_set(store, username, old_text, new_text, error_r);
}

/* mw_store_protocols_valid - one of the protocol lists the store accepts */
bool mw_store_protocols_valid(const char *protocols, bool allow_empty)
{
	return protocols != NULL &&
	       ((allow_empty && protocols[0] == '\0') || strcmp(protocols, "imap") == 0 ||
	        strcmp(protocols, "smtp") == 0 || strcmp(protocols, "imap,smtp") == 0);
}

/* mw_store_user_main_protocols_get - where a user's main password is accepted */
int mw_store_user_main_protocols_get(mw_store *store, const char *username,
                                     char out[MW_PROTOCOLS_MAX + 1], mw_error *error_r)
{
	out[0] = '\0';
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->user_main_protocols_get(store, username, out, error_r);
}

/* mw_store_user_main_protocols_set - set where a user's main password is accepted */
int mw_store_user_main_protocols_set(mw_store *store, const char *username, const char *protocols,
                                     mw_error *error_r)
{
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (!mw_store_protocols_valid(protocols, true)) {
		mw_error_set(error_r, "protocols must be \"\", imap, smtp or imap,smtp");
		return MW_STORE_ERROR;
	}
	return store->backend->user_main_protocols_set(store, username, protocols, error_r);
}

/* mw_store_app_password_add - record a new app password of a user */
int mw_store_app_password_add(mw_store *store, const char *username,
                              const struct mw_app_password *ap, int64_t *id_r, mw_error *error_r)
{
	int64_t id;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (check_text("app password name", ap->name, MW_APP_PW_NAME_MAX, false, error_r) < 0 ||
	    check_text("allow_nets", ap->allow_nets, MW_APP_PW_NETS_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	if (!mw_store_protocols_valid(ap->protocols, false)) {
		mw_error_set(error_r, "protocols must be imap, smtp or imap,smtp");
		return MW_STORE_ERROR;
	}
	if (strlen(ap->hash) != MW_APP_PW_HASH_HEX || !hex_check(ap->hash, MW_APP_PW_HASH_HEX)) {
		mw_error_set(error_r, "an app password hash is 64 lower-case hex digits");
		return MW_STORE_ERROR;
	}
	if (ap->expires_at < 0) {
		mw_error_set(error_r, "invalid expiry time");
		return MW_STORE_ERROR;
	}
	return store->backend->app_password_add(store, username, ap, id_r != NULL ? id_r : &id,
	                                        error_r);
}

/* mw_store_app_password_list - a user's app passwords in id order */
int mw_store_app_password_list(mw_store *store, const char *username,
                               struct mw_app_password **list_r, size_t *count_r, mw_error *error_r)
{
	*list_r = NULL;
	*count_r = 0;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->app_password_list(store, username, list_r, count_r, error_r);
}

/* mw_store_app_password_del - delete one app password of a user */
int mw_store_app_password_del(mw_store *store, const char *username, int64_t id, mw_error *error_r)
{
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (id <= 0) {
		mw_error_set(error_r, "no such app password");
		return MW_STORE_NOTFOUND;
	}
	return store->backend->app_password_del(store, username, id, error_r);
}

/* mw_store_app_password_used - stamp an app password's last use and client address */
int mw_store_app_password_used(mw_store *store, const char *username, int64_t id, int64_t at,
                               const char *ip, mw_error *error_r)
{
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (id <= 0) {
		mw_error_set(error_r, "no such app password");
		return MW_STORE_NOTFOUND;
	}
	if (at < 0) {
		mw_error_set(error_r, "invalid time");
		return MW_STORE_ERROR;
	}
	if (check_text("client address", ip, MW_CLIENT_IP_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	return store->backend->app_password_used(store, username, id, at, ip, error_r);
}

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

/* mw_store_auth_fail_add - count one failed authentication of (key, net) */
int mw_store_auth_fail_add(mw_store *store, const char *key, const char *net, int64_t now,
                           int64_t since, struct mw_auth_fail *row_r, mw_error *error_r)
{
	memset(row_r, 0, sizeof(*row_r));
	if (auth_fail_word("key", key, MW_AUTH_FAIL_KEY_MAX, error_r) < 0 ||
	    auth_fail_word("network", net, MW_AUTH_FAIL_NET_MAX, error_r) < 0)
		return MW_STORE_ERROR;
	if (now < 0 || since > now) {
		mw_error_set(error_r, "invalid time");
		return MW_STORE_ERROR;
	}
	return store->backend->auth_fail_add(store, key, net, now, since, row_r, error_r);
}

/* mw_store_auth_fail_get - the failures of (key, net) */
int mw_store_auth_fail_get(mw_store *store, const char *key, const char *net,
                           struct mw_auth_fail *row_r, mw_error *error_r)
{
	memset(row_r, 0, sizeof(*row_r));
	if (auth_fail_word("key", key, MW_AUTH_FAIL_KEY_MAX, error_r) < 0 ||
	    auth_fail_word("network", net, MW_AUTH_FAIL_NET_MAX, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->auth_fail_get(store, key, net, row_r, error_r);
}

/* mw_store_auth_fail_clear - forget (key, net)'s failures, or all of key's (net NULL) */
int mw_store_auth_fail_clear(mw_store *store, const char *key, const char *net, mw_error *error_r)
{
	if (auth_fail_word("key", key, MW_AUTH_FAIL_KEY_MAX, error_r) < 0 ||
	    (net != NULL && auth_fail_word("network", net, MW_AUTH_FAIL_NET_MAX, error_r) < 0))
		return MW_STORE_ERROR;
	return store->backend->auth_fail_clear(store, key, net, error_r);
}

/* mw_store_auth_fail_sum - key's failures and networks since a time */
int mw_store_auth_fail_sum(mw_store *store, const char *key, int64_t since, int64_t *failures_r,
                           int64_t *nets_r, mw_error *error_r)
{
	*failures_r = *nets_r = 0;
	if (auth_fail_word("key", key, MW_AUTH_FAIL_KEY_MAX, error_r) < 0)
		return MW_STORE_ERROR;
	return store->backend->auth_fail_sum(store, key, since, failures_r, nets_r, error_r);
}

/* mw_store_auth_fail_prune - delete rows whose last failure is older than before */
int mw_store_auth_fail_prune(mw_store *store, int64_t before, mw_error *error_r)
{
	return store->backend->auth_fail_prune(store, before, error_r);
}

/* mw_store_app_password_revoke_all - delete all of a user's app passwords */
int mw_store_app_password_revoke_all(mw_store *store, const char *username, unsigned *count_r,
                                     mw_error *error_r)
{
	*count_r = 0;
	if (username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	return store->backend->app_password_revoke_all(store, username, count_r, error_r);
}

/* ---- statistical spam classifier (issue 10) ---- */

/* mw_store_spam_meta_get - learned message counts and generation of a model */
int mw_store_spam_meta_get(mw_store *store, int64_t scope, struct mw_spam_meta *meta_r,
                           mw_error *error_r)
{
	memset(meta_r, 0, sizeof(*meta_r));
	return store->backend->spam_meta_get(store, scope, meta_r, error_r);
}

/* mw_store_spam_tokens_load - every token row changed after since_gen, to cb */
int mw_store_spam_tokens_load(mw_store *store, int64_t scope, int64_t since_gen,
                              mw_spam_token_cb *cb, void *ctx, mw_error *error_r)
{
	return store->backend->spam_tokens_load(store, scope, since_gen < 0 ? 0 : since_gen, cb,
	                                        ctx, error_r);
}

/* mw_store_spam_tokens_get - the rows of the given tokens, to cb */
int mw_store_spam_tokens_get(mw_store *store, int64_t scope, const uint64_t *hash, size_t count,
                             mw_spam_token_cb *cb, void *ctx, mw_error *error_r)
{
	return store->backend->spam_tokens_get(store, scope, hash, count, cb, ctx, error_r);
}

/* mw_store_spam_learned_get - the label a message digest was learned with */
int mw_store_spam_learned_get(mw_store *store, int64_t scope, const unsigned char *digest,
                              bool *spam_r, mw_error *error_r)
{
	*spam_r = false;
	return store->backend->spam_learned_get(store, scope, digest, spam_r, error_r);
}

/* mw_store_spam_learn - apply one learned message in one transaction */
int mw_store_spam_learn(mw_store *store, const struct mw_spam_learn *learn, mw_error *error_r)
{
	if (learn->digest == NULL || (learn->count > 0 && learn->tokens == NULL)) {
		mw_error_set(error_r, "spam learn: no digest or tokens");
		return MW_STORE_ERROR;
	}
	return store->backend->spam_learn(store, learn, error_r);
}

/* mw_store_spam_batch_begin - start one transaction for many spam_learn calls */
int mw_store_spam_batch_begin(mw_store *store, mw_error *error_r)
{
	return store->backend->spam_batch(store, 0, error_r);
}

/* mw_store_spam_batch_end - commit (or roll back) a batch */
int mw_store_spam_batch_end(mw_store *store, bool commit, mw_error *error_r)
{
	return store->backend->spam_batch(store, commit ? 1 : 2, error_r);
}
