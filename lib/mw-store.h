/* mw-store.h - the shared store: one interface, SQLite (and later PostgreSQL) behind it.
 *
 * Every component opens the store through this interface; only the backend files
 * (mw-store-sqlite.c, ...) know SQL dialects. Prepared statements only.
 *
 * Threads: an mw_store is one database connection and must not be used by two threads at
 * once; open one store per thread (SQLite's own locking then arbitrates between them).
 * Arguments are checked before anything reaches the database: an over-long or malformed
 * argument is refused (MW_STORE_ERROR for adds, MW_STORE_NOTFOUND for an impossible
 * username in a lookup or change, with error_r saying why).
 */
#ifndef MW_STORE_H
#define MW_STORE_H

#include "mw-util.h"

#define MW_USERNAME_MAX      254
#define MW_DESCRIPTION_MAX   1024
#define MW_STORE_URL_MAX     4096
#define MW_STORE_HASH_MAX    512   /* a stored password hash, any scheme */
#define MW_AUDIT_FIELD_MAX   1024  /* actor, action, target, client */
#define MW_AUDIT_DETAILS_MAX 65536 /* details */

/* Return values of store operations. */
enum mw_store_status {
	MW_STORE_ERROR = -1, /* error_r says what; the store is unreachable or corrupt */
	MW_STORE_OK = 0,
	MW_STORE_NOTFOUND = 1, /* no such row */
	MW_STORE_EXISTS = 2,   /* unique key already taken */
	/* A lock held longer than busy_timeout_ms is MW_STORE_ERROR with "busy" in error_r. */
};

enum mw_user_status { MW_USER_PENDING, MW_USER_ACTIVE, MW_USER_DISABLED };
enum mw_user_role { MW_ROLE_USER, MW_ROLE_ADMIN };

struct mw_user {
	int64_t id;
	char username[MW_USERNAME_MAX + 1];
	char *password; /* "{ARGON2ID}$argon2id$..." (owned) */
	enum mw_user_status status;
	enum mw_user_role role;
	char *description;                                   /* owned, may be "" */
	int64_t created_at, updated_at, password_changed_at; /* unix seconds */
	bool has_totp;
	int failed_logins;
	int64_t locked_until; /* 0 = not locked */
};

struct mw_user_filter {
	int status;       /* -1 = any, else enum mw_user_status */
	int role;         /* -1 = any, else enum mw_user_role */
	int64_t after_id; /* paging: ids greater than this */
	unsigned limit;   /* 0 = no limit */
};

typedef struct mw_store mw_store;

/* url: "sqlite:/path/file.db" (or a bare absolute path), later "postgresql://...".
   busy_timeout_ms: how long SQLite waits for a lock. Does not create or migrate: the
   directory must exist; a missing database file is created by mw_store_migrate, and any
   other operation on it fails saying so. */
mw_store *mw_store_open(const char *url, unsigned busy_timeout_ms, mw_error *error_r);
void mw_store_close(mw_store **store);
/* Applies pending numbered migrations, each in its own transaction, recording the last in
   schema_version. Creates the database file if needed (SQLite, mode 0640). Refuses a
   store whose version is newer than the code. Safe to run again and from two processes. */
int mw_store_migrate(mw_store *store, mw_error *error_r);
/* The schema version recorded in the store (0 for an empty store), and the latest the
   code knows (all backends carry the same numbered migrations). mw_store_check_schema
   refuses a store newer than the code and one that still needs migrating. */
int mw_store_schema_version(mw_store *store, int *version_r, mw_error *error_r);
int mw_store_latest_schema_version(void);
int mw_store_check_schema(mw_store *store, mw_error *error_r);
/* "sqlite" or "postgresql" */
const char *mw_store_backend_name(const mw_store *store);

/* Normalises a login name: trims nothing (blanks are an error), case-folds ASCII,
   refuses empty, control characters, blanks, '%', '\'', '"', '\\', invalid UTF-8 and longer
   than MW_USERNAME_MAX bytes. Non-ASCII letters are kept as they are. */
int mw_store_username_normalize(const char *in, char *out, size_t outsize, mw_error *error_r);

const char *mw_user_status_name(enum mw_user_status s);
int mw_user_status_parse(const char *name, enum mw_user_status *s_r);
const char *mw_user_role_name(enum mw_user_role r);
int mw_user_role_parse(const char *name, enum mw_user_role *r_r);

/* Users. username must already be normalised. description (NULL = "") and the password
   hash are valid UTF-8 without control characters, at most MW_DESCRIPTION_MAX and
   MW_STORE_HASH_MAX bytes. Every change stamps updated_at; set_password also
   password_changed_at. */
int mw_store_user_add(mw_store *store, const char *username, const char *password_hash,
                      enum mw_user_status status, enum mw_user_role role, const char *description,
                      int64_t *id_r, mw_error *error_r);
int mw_store_user_get(mw_store *store, const char *username, struct mw_user *user_r,
                      mw_error *error_r);
int mw_store_user_get_by_id(mw_store *store, int64_t id, struct mw_user *user_r, mw_error *error_r);
void mw_user_clear(struct mw_user *user);
/* Calls fn for each matching user in id order; stops early (and returns that value) when
   fn returns non-zero. The page is read before the first call, so fn may use the store. */
int mw_store_user_list(mw_store *store, const struct mw_user_filter *filter,
                       int (*fn)(const struct mw_user *user, void *ctx), void *ctx,
                       mw_error *error_r);
int mw_store_user_set_password(mw_store *store, const char *username, const char *password_hash,
                               mw_error *error_r);
int mw_store_user_set_status(mw_store *store, const char *username, enum mw_user_status status,
                             mw_error *error_r);
int mw_store_user_set_role(mw_store *store, const char *username, enum mw_user_role role,
                           mw_error *error_r);
int mw_store_user_set_description(mw_store *store, const char *username, const char *description,
                                  mw_error *error_r);
/* Deletes the user and everything that belongs to them (patterns, sessions, app passwords). */
int mw_store_user_delete(mw_store *store, const char *username, mw_error *error_r);

/* Allowed-From patterns (already normalised with mw_pattern_normalize). Adding an existing
   pattern is MW_STORE_EXISTS, deleting a missing one MW_STORE_NOTFOUND, an unknown user
   MW_STORE_NOTFOUND. Changes update the user's updated_at. */
int mw_store_allowed_from_add(mw_store *store, const char *username, const char *pattern,
                              mw_error *error_r);
int mw_store_allowed_from_del(mw_store *store, const char *username, const char *pattern,
                              mw_error *error_r);
/* Fills *patterns_r with a NULL-terminated, owned array (free with mw_store_strv_free). */
int mw_store_allowed_from_list(mw_store *store, const char *username, char ***patterns_r,
                               size_t *count_r, mw_error *error_r);
void mw_store_strv_free(char **strv);

/* Audit log: append-only. actor "cli:root" / "api:alice", action "user.add", target,
   client (IP or "local"), details (JSON text or ""); target, client and details may be
   NULL (stored as ""). The time is mw_now(). */
int mw_store_audit_append(mw_store *store, const char *actor, const char *action,
                          const char *target, const char *client, const char *details,
                          mw_error *error_r);

#endif
