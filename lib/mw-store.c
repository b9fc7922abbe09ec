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
 * mw_store_audit_append.
 *
 * Diagnostics: through error_r only; nothing here logs. Messages name the offending
 * argument but never a password hash.
 */
#include "mw-build.h"
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
	size_t i;
	if (name == NULL)
		return -1;
	for (i = 0; i < MW_N_ELEMENTS(status_names); i++) {
		if (mw_ascii_strcasecmp(name, status_names[i]) == 0) {
			*s_r = (enum mw_user_status)i;
			return 0;
		}
	}
	return -1;
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
	size_t i;
	if (name == NULL)
		return -1;
	for (i = 0; i < MW_N_ELEMENTS(role_names); i++) {
		if (mw_ascii_strcasecmp(name, role_names[i]) == 0) {
			*r_r = (enum mw_user_role)i;
			return 0;
		}
	}
	return -1;
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
