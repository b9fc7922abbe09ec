/* mw-store.h - the shared store: one interface, SQLite (and later PostgreSQL) behind it.
 *
 * Every component opens the store through this interface. The operations (lib/store/, one
 * file per entity) are written once over the SQL layer lib/mw-db.h; only its drivers
 * (mw-db-sqlite.c, mw-db-pgsql.c) speak to a database library. Prepared statements only,
 * cached per connection.
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

/* url: "sqlite:/path/file.db" (or a bare absolute path), or "postgresql://..." when the
   PostgreSQL driver is built in (else refused: "PostgreSQL driver not built").
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
/* Every table of the latest schema but schema_version, parents before children (foreign
   keys): what store copy moves, and what a migrated store holds. */
#define MW_STORE_TABLES_COUNT ((size_t)17)
extern const char *const mw_store_tables[MW_STORE_TABLES_COUNT];
/* mw_store_data_version - a counter that moves whenever the store may have changed since
   the previous call on this store handle (a commit by any process, or a change made through
   this handle): equal values mean what was read in between is still current (mw-db.h,
   mw_db_data_version). MW_STORE_NOTFOUND when the backend cannot tell (PostgreSQL): read
   the store. _local: the same counter without asking the database (this handle's own
   changes since the last call only). */
int mw_store_data_version(mw_store *store, uint64_t *version_r, mw_error *error_r);
uint64_t mw_store_data_version_local(const mw_store *store);
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

/* Tag rules (tag_rules; mw-tagrule.h). rule is checked with mw_tagrule_check; id and
   position are ignored on add: the rule goes last (position max+1), *id_r gets its id.
   An unknown user is MW_STORE_NOTFOUND; more than MW_TAGRULE_MAX_PER_USER rules is
   MW_STORE_ERROR. list: the user's rules in position order as an owned array (free with
   mw_tag_rules_free; rows that fail mw_tagrule_check are returned too, the caller skips
   them). del: MW_STORE_NOTFOUND when the user has no rule with that id. */
struct mw_tag_rule;
int mw_store_tag_rule_add(mw_store *store, const char *username, const struct mw_tag_rule *rule,
                          int64_t *id_r, mw_error *error_r);
int mw_store_tag_rule_list(mw_store *store, const char *username, struct mw_tag_rule **rules_r,
                           size_t *count_r, mw_error *error_r);
int mw_store_tag_rule_del(mw_store *store, const char *username, int64_t id, mw_error *error_r);

/* Training events (spam/ham feedback from the Dovecot plugin), consumed by the
   classifier. message_id: the message's Message-ID header (UTF-8 text without controls,
   at most MW_MESSAGE_ID_MAX bytes, may be ""). */
#define MW_MESSAGE_ID_MAX 998
enum mw_training_verdict { MW_TRAINING_SPAM, MW_TRAINING_HAM };
struct mw_training_event {
	int64_t id;
	char username[MW_USERNAME_MAX + 1];
	char *message_id; /* owned */
	enum mw_training_verdict verdict;
	int64_t created_at;
	int64_t consumed_at; /* 0 = not yet */
};
const char *mw_training_verdict_name(enum mw_training_verdict v);
int mw_store_training_add(mw_store *store, const char *username, const char *message_id,
                          enum mw_training_verdict verdict, mw_error *error_r);
/* Events with id > after_id in id order, at most limit (0 = all); pending_only: not yet
   consumed. An owned array: free with mw_training_events_free. */
int mw_store_training_list(mw_store *store, int64_t after_id, unsigned limit, bool pending_only,
                           struct mw_training_event **events_r, size_t *count_r, mw_error *error_r);
void mw_training_events_free(struct mw_training_event *events, size_t count);

/* Audit log: append-only. actor "cli:root" / "api:alice", action "user.add", target,
   client (IP or "local"), details (JSON text or ""); target, client and details may be
   NULL (stored as ""). The time is mw_now(). */
int mw_store_audit_append(mw_store *store, const char *actor, const char *action,
                          const char *target, const char *client, const char *details,
                          mw_error *error_r);

/* ---- API sessions and audit listing (mailwarden-api, issue 5) ---- */
#define MW_TOKEN_HASH_HEX 64 /* hex SHA-256 of a session token */
#define MW_SESSION_ID_LEN 16 /* a session's public id: the first 16 hex digits of its hash */
#define MW_CLIENT_IP_MAX  64
#define MW_USER_AGENT_MAX 512

struct mw_session {
	char token_hash[MW_TOKEN_HASH_HEX + 1]; /* lower-case hex */
	int64_t user_id;
	int64_t created_at, last_seen_at;
	int64_t idle_timeout; /* seconds */
	int64_t expires_at;   /* absolute expiry */
	char client_ip[MW_CLIENT_IP_MAX + 1];
	char user_agent[MW_USER_AGENT_MAX + 1];
	int64_t revoked_at; /* 0 = live */
};

/* Sessions. token_hash must be 64 lower-case hex digits (else MW_STORE_NOTFOUND for
   lookups, MW_STORE_ERROR for add); client_ip and user_agent printable UTF-8 within their
   limits. session_get returns the row whatever its state: the caller judges expiry.
   session_touch sets last_seen_at; session_revoke stamps revoked_at on a live session
   (MW_STORE_NOTFOUND when there is none); session_revoke_id does so for the live session
   of user_id whose public id (MW_SESSION_ID_LEN hex digits) is id; session_revoke_user
   revokes every live session of user_id except except_hash (NULL: none excepted) and
   counts them. session_list gives user_id's sessions that are live at now (not revoked,
   not past expires_at, not idle past idle_timeout), newest first, as an owned array. */
int mw_store_session_add(mw_store *store, const struct mw_session *session, mw_error *error_r);
int mw_store_session_get(mw_store *store, const char *token_hash, struct mw_session *session_r,
                         mw_error *error_r);
int mw_store_session_touch(mw_store *store, const char *token_hash, int64_t now, mw_error *error_r);
int mw_store_session_revoke(mw_store *store, const char *token_hash, mw_error *error_r);
int mw_store_session_revoke_id(mw_store *store, int64_t user_id, const char *id, mw_error *error_r);
int mw_store_session_revoke_user(mw_store *store, int64_t user_id, const char *except_hash,
                                 unsigned *count_r, mw_error *error_r);
int mw_store_session_list(mw_store *store, int64_t user_id, int64_t now,
                          struct mw_session **sessions_r, size_t *count_r, mw_error *error_r);

/* Login throttling state of a user (failed_logins, locked_until; 0 = not locked). Does not
   stamp updated_at: it is not a change of the account. */
int mw_store_user_set_login_state(mw_store *store, const char *username, int failed_logins,
                                  int64_t locked_until, mw_error *error_r);

/* Audit listing: entries matching every given filter field (NULL / 0 = any), in id order,
   ids above after_id, at most limit (0 = no limit). since/until bound `at` inclusively. */
struct mw_audit_entry {
	int64_t id, at;
	char *actor, *action, *target, *client, *details; /* owned */
};
struct mw_audit_filter {
	const char *actor, *action, *target; /* exact match */
	int64_t since, until;
	int64_t after_id;
	unsigned limit;
	/* newest first: entries with id below before_id (0: from the newest); after_id unused */
	bool newest_first;
	int64_t before_id;
};
int mw_store_audit_list(mw_store *store, const struct mw_audit_filter *filter,
                        struct mw_audit_entry **entries_r, size_t *count_r, mw_error *error_r);
void mw_audit_entries_free(struct mw_audit_entry *entries, size_t count);

/* Rate policies (rate_policies; mailwarden-policyd reads them, mailwardenctl and the API
   manage them). scope: sasl_username client_address sender sender_domain recipient
   recipient_domain; metric: messages recipients size; action: defer reject; match: "" (every
   value) or the value (client_address: an address or CIDR), at most MW_RATE_MATCH_MAX bytes
   of text without controls; limit_count >= 1; window_seconds 1..MW_RATE_WINDOW_MAX;
   username: "" for everyone, else the user this policy overrides the general ones for
   (normalised; unknown is MW_STORE_NOTFOUND). list: every policy in id order as an owned
   array (free()). del: MW_STORE_NOTFOUND for an unknown id. */
#define MW_RATE_MATCH_MAX  255
#define MW_RATE_WINDOW_MAX (366LL * 86400)
/* The largest count of a rate limit, derived from mailwarden-policyd's GCRA arithmetic
   (policy-daemon/pd-counters.c, pd_gcra): with W the window in microseconds (at most
   MW_RATE_WINDOW_MAX s = 3.2e13 us) and N the count, it computes T = (W + N - 1) / N, the
   capacity N * T <= W + N - 1, and usage (N * T + T - 1) / T; the Redis script computes the
   same in Lua's doubles, exact below 2^53 (9.0e15), with every time offset by "now" (1.8e15
   us in 2026). N <= 1e15 keeps W + N + T below 1.1e15: every product and quotient exact,
   in int64 and in doubles, until the year 2220. */
#define MW_RATE_COUNT_MAX 1000000000000000LL
/* mw_rate_limit_check - count 1..MW_RATE_COUNT_MAX and window_seconds 1..MW_RATE_WINDOW_MAX
   (or 0, a per-message cap, when per_message is allowed); -1 with error_r naming the field
   ("count", "window") and its bounds. The one check the API, mailwardenctl, the store and
   mailwarden-policyd's config and store loaders share. */
int mw_rate_limit_check(int64_t count, int64_t window_seconds, bool per_message, mw_error *error_r);
struct mw_rate_policy {
	int64_t id;
	char scope[32];
	char match[MW_RATE_MATCH_MAX + 1];
	char metric[16];
	int64_t limit_count, window_seconds;
	char action[16];
	char username[MW_USERNAME_MAX + 1];
	int64_t created_at;
};
/* The field checks of mw_store_rate_policy_add, without a store: 0, or -1 with the reason. */
int mw_rate_policy_check(const struct mw_rate_policy *p, mw_error *error_r);
int mw_store_rate_policy_add(mw_store *store, const struct mw_rate_policy *policy, int64_t *id_r,
                             mw_error *error_r);
int mw_store_rate_policy_list(mw_store *store, struct mw_rate_policy **policies_r, size_t *count_r,
                              mw_error *error_r);
int mw_store_rate_policy_del(mw_store *store, int64_t id, mw_error *error_r);

/* ---- DKIM signing keys (issue 3, mw-dkim-sign) ---- */
#define MW_DKIM_DOMAIN_MAX   253 /* lower-case A-label form, no trailing dot */
#define MW_DKIM_SELECTOR_MAX 253
#define MW_DKIM_SECRET_MAX   32768 /* the encrypted private key as stored ("v1:...") */
#define MW_DKIM_PUBLIC_MAX   4096  /* the p= value (base64) */

struct mw_dkim_key_row {
	int64_t id;
	char domain[MW_DKIM_DOMAIN_MAX + 1];
	char selector[MW_DKIM_SELECTOR_MAX + 1];
	char *private_key; /* encrypted text (mw_secret_encrypt), owned; never printed */
	char *public_key;  /* base64 p= value, owned */
	char key_type[16]; /* "rsa" or "ed25519", as recorded in public_key's row */
	int64_t created_at;
	bool active;          /* the key signs (state active or retiring) */
	char state[16];       /* pending|active|retiring|retired|inactive (migration 004) */
	int64_t activated_at; /* when it became active; 0 = never */
	int64_t retire_at;    /* retiring: when it stops signing; retired: when it did; 0 = - */
};

/* DKIM keys. domain and selector must be lower-case LDH names (letters, digits, '-',
   '_' in selectors, dots between labels) within their limits; anything else is
   MW_STORE_ERROR on add and MW_STORE_NOTFOUND on lookups. private_key is the encrypted
   text, public_key the base64 p= value. Each domain has at most one active key (two
   during a rotation's overlap: the active and the retiring one): adding an active key (or
   set_active) deactivates the domain's others in the same transaction. (domain,
   selector) taken is MW_STORE_EXISTS. list: every key (domain NULL) or a domain's,
   ordered by domain then created_at, as an owned array (free with
   mw_dkim_key_rows_free). get_active: the active key of domain (during an overlap the
   newest, the one a rotation activated), MW_STORE_NOTFOUND when it has none. The key
   type is not a column of dkim_keys: it is kept as a "k=TYPE;" prefix of the stored
   public_key text and split off again here. */
int mw_store_dkim_key_add(mw_store *store, const char *domain, const char *selector,
                          const char *key_type, const char *private_key, const char *public_key,
                          bool active, mw_error *error_r);
int mw_store_dkim_key_list(mw_store *store, const char *domain, struct mw_dkim_key_row **rows_r,
                           size_t *count_r, mw_error *error_r);
int mw_store_dkim_key_get(mw_store *store, const char *domain, const char *selector,
                          struct mw_dkim_key_row *row_r, mw_error *error_r);
int mw_store_dkim_key_get_active(mw_store *store, const char *domain, struct mw_dkim_key_row *row_r,
                                 mw_error *error_r);
int mw_store_dkim_key_set_active(mw_store *store, const char *domain, const char *selector,
                                 mw_error *error_r);
int mw_store_dkim_key_delete(mw_store *store, const char *domain, const char *selector,
                             mw_error *error_r);
/* Rotation (issue 18). add_pending: a key in state pending (never signs); a domain has at
   most one (a second, or a taken selector, is MW_STORE_EXISTS). promote: pending -> active
   and the domain's active key -> retiring until retire_at, in one transaction
   (MW_STORE_NOTFOUND when the key is not pending: another host did it). retire: a
   retiring key whose retire_at <= now -> retired (MW_STORE_NOTFOUND otherwise). */
int mw_store_dkim_key_add_pending(mw_store *store, const char *domain, const char *selector,
                                  const char *key_type, const char *private_key,
                                  const char *public_key, mw_error *error_r);
int mw_store_dkim_key_promote(mw_store *store, const char *domain, const char *selector,
                              int64_t now, int64_t retire_at, mw_error *error_r);
int mw_store_dkim_key_retire(mw_store *store, const char *domain, const char *selector, int64_t now,
                             mw_error *error_r);
/* Wipes and frees what a row owns. */
void mw_dkim_key_row_clear(struct mw_dkim_key_row *row);
void mw_dkim_key_rows_free(struct mw_dkim_key_row *rows, size_t count);

/* ---- TOTP state and app passwords (mailwarden-api 2FA, issue 5) ---- */
#define MW_TOTP_STATE_MAX      8192 /* users.totp_secret text (encrypted state + prefix) */
#define MW_APP_PW_NAME_MAX     64
#define MW_APP_PW_NETS_MAX     1024 /* allow_nets: comma-separated addresses/CIDRs */
#define MW_APP_PW_HASH_HEX     64   /* hex SHA-256 of the app password */
#define MW_APP_PW_PER_USER_MAX 100
#define MW_PROTOCOLS_MAX       32 /* "imap,smtp" */

/* The TOTP state text of a user (users.totp_secret: NULL = none). The store treats it as
   opaque printable ASCII; has_totp in struct mw_user is true when it starts with "v1:"
   (an active enrolment; mailwarden-api keeps a pending one as "pending:v1:..."). get:
   *text_r is an owned copy or NULL (none); MW_STORE_NOTFOUND for an unknown user. set:
   compare-and-swap: the state changes to new_text (NULL clears it) only when it is still
   old_text (NULL = none), else MW_STORE_NOTFOUND (unknown user or changed meanwhile), so
   a one-time code or recovery code can be consumed only once even between processes.
   Does not stamp updated_at. */
int mw_store_user_totp_get(mw_store *store, const char *username, char **text_r, mw_error *error_r);
int mw_store_user_totp_set(mw_store *store, const char *username, const char *old_text,
                           const char *new_text, mw_error *error_r);

/* Where the main password is accepted (users.main_password_protocols): "" or a
   comma-separated subset of imap,smtp, in that order (e.g. "imap,smtp", "smtp", ""). set
   stamps updated_at. MW_STORE_NOTFOUND for an unknown user. */
int mw_store_user_main_protocols_get(mw_store *store, const char *username,
                                     char out[MW_PROTOCOLS_MAX + 1], mw_error *error_r);
int mw_store_user_main_protocols_set(mw_store *store, const char *username, const char *protocols,
                                     mw_error *error_r);

/* App passwords (app_passwords; Dovecot's passdb sql compares hash with
   %{sha256:password}). name: 1..MW_APP_PW_NAME_MAX bytes of text without controls, unique
   per user (MW_STORE_EXISTS); protocols: "imap", "smtp" or "imap,smtp"; hash: 64 lower-case
   hex digits; expires_at 0 = never; allow_nets "" = any network, else addresses/CIDRs
   separated by commas (checked by the caller); last_used_at 0 / last_ip "" = never used.
   add: at most MW_APP_PW_PER_USER_MAX per user (more is MW_STORE_ERROR); id and
   created_at are set by the store (*id_r). list: the user's in id order (owned array,
   free()). del: MW_STORE_NOTFOUND when the user has no app password with that id. */
struct mw_app_password {
	int64_t id;
	char name[MW_APP_PW_NAME_MAX + 1];
	char protocols[MW_PROTOCOLS_MAX + 1];
	char hash[MW_APP_PW_HASH_HEX + 1];
	int64_t created_at, expires_at;
	char allow_nets[MW_APP_PW_NETS_MAX + 1];
	int64_t last_used_at;
	char last_ip[MW_CLIENT_IP_MAX + 1];
};
/* true when protocols is "", "imap", "smtp" or "imap,smtp" (allow_empty: "" too) */
bool mw_store_protocols_valid(const char *protocols, bool allow_empty);
int mw_store_app_password_add(mw_store *store, const char *username,
                              const struct mw_app_password *ap, int64_t *id_r, mw_error *error_r);
int mw_store_app_password_list(mw_store *store, const char *username,
                               struct mw_app_password **list_r, size_t *count_r, mw_error *error_r);
int mw_store_app_password_del(mw_store *store, const char *username, int64_t id, mw_error *error_r);
/* Records a login with app password id of username (Dovecot's auth policy report):
   last_used_at = at, last_ip = ip (an address, at most MW_CLIENT_IP_MAX bytes; "" = unknown,
   stored as NULL). MW_STORE_NOTFOUND when the user has no app password with that id. */
int mw_store_app_password_used(mw_store *store, const char *username, int64_t id, int64_t at,
                               const char *ip, mw_error *error_r);

/* ---- failed authentications per (key, client network) (mailwarden-api, issue 9) ----
   key: what was attacked, 1..MW_AUTH_FAIL_KEY_MAX bytes of printable ASCII ("account:12",
   "client", "internal"); net: the client network as text ("192.0.2.7/32",
   "2001:db8::/64"), 1..MW_AUTH_FAIL_NET_MAX bytes of printable ASCII.
   add: counts one failure at now, atomically (several API processes share the rows); a
   row whose last failure is before since starts again at 1; *row_r gets the row after the
   change. get: MW_STORE_NOTFOUND when (key, net) has no row. clear: deletes (key, net)'s
   row, or every row of key when net is NULL (MW_STORE_OK when there was none). sum: the
   failures and the number of networks of key's rows whose last failure is at or after
   since. prune: deletes the rows whose last failure is before `before`. */
#define MW_AUTH_FAIL_KEY_MAX 64
#define MW_AUTH_FAIL_NET_MAX 64
struct mw_auth_fail {
	int64_t failures; /* in a row, since first_at */
	int64_t first_at, last_at;
};
int mw_store_auth_fail_add(mw_store *store, const char *key, const char *net, int64_t now,
                           int64_t since, struct mw_auth_fail *row_r, mw_error *error_r);
int mw_store_auth_fail_get(mw_store *store, const char *key, const char *net,
                           struct mw_auth_fail *row_r, mw_error *error_r);
int mw_store_auth_fail_clear(mw_store *store, const char *key, const char *net, mw_error *error_r);
int mw_store_auth_fail_sum(mw_store *store, const char *key, int64_t since, int64_t *failures_r,
                           int64_t *nets_r, mw_error *error_r);
int mw_store_auth_fail_prune(mw_store *store, int64_t before, mw_error *error_r);
/* Deletes every app password of username and counts them (a password reset). */
int mw_store_app_password_revoke_all(mw_store *store, const char *username, unsigned *count_r,
                                     mw_error *error_r);

/* ---- statistical spam classifier (issue 10) ----
   A model lives in a scope (0: the global model; a users.id: that user's own model). Tokens
   are 64-bit hashes (lib/mw-tokenize). spam_learn applies one learned message: the token
   deltas (counts and weight), the message count deltas and the digest's label, in one
   transaction (or inside the caller's open spam_batch). Counts never go below 0. */
#define MW_SPAM_DIGEST_LEN 32
struct mw_spam_meta {
	int64_t nspam, nham; /* learned messages */
	int64_t generation;  /* bumped by every spam_learn */
	int64_t reset_gen;   /* generation of the last expiry: older readers reload it all */
	int64_t expired_at;  /* when the last expiry of the scope ran (0: never) */
};
struct mw_spam_token {
	uint64_t hash;
	int64_t nspam, nham; /* absolute (load) or deltas (learn) */
	double weight;       /* absolute (load) or delta (learn) */
};
struct mw_spam_learn {
	int64_t scope;
	const unsigned char *digest; /* MW_SPAM_DIGEST_LEN bytes */
	bool spam;                   /* the message's label from now on */
	int64_t dspam, dham;         /* message count deltas */
	const struct mw_spam_token *tokens;
	size_t count;
	int64_t now; /* learned_at and the tokens' last_seen; 0: mw_now() */
};
typedef void mw_spam_token_cb(void *ctx, const struct mw_spam_token *token);
int mw_store_spam_meta_get(mw_store *store, int64_t scope, struct mw_spam_meta *meta_r,
                           mw_error *error_r);
/* Calls cb for every token of scope whose row changed after generation since_gen
   (0: all of them). */
int mw_store_spam_tokens_load(mw_store *store, int64_t scope, int64_t since_gen,
                              mw_spam_token_cb *cb, void *ctx, mw_error *error_r);
/* Calls cb for each of the count tokens hash[] that has a row in scope (a learner's read). */
int mw_store_spam_tokens_get(mw_store *store, int64_t scope, const uint64_t *hash, size_t count,
                             mw_spam_token_cb *cb, void *ctx, mw_error *error_r);
/* MW_STORE_OK with *spam_r, or MW_STORE_NOTFOUND when the digest was never learned. */
int mw_store_spam_learned_get(mw_store *store, int64_t scope, const unsigned char *digest,
                              bool *spam_r, mw_error *error_r);
int mw_store_spam_learn(mw_store *store, const struct mw_spam_learn *learn, mw_error *error_r);
/* A learn run: spam_learn calls between begin and end share one transaction (end commits
   when commit is true, else rolls back). */
int mw_store_spam_batch_begin(mw_store *store, mw_error *error_r);
int mw_store_spam_batch_end(mw_store *store, bool commit, mw_error *error_r);

/* Token expiry of one scope (migration 007). Age: rows whose last_seen (the last learn
   that carried them) is more than max_age before the scope's newest last_seen (now at the
   latest), oldest first. Size: while more than
   max_tokens rows remain, the least useful go (seen in at most one learned message first,
   then the least recently learned). keep: a hash never expired (the logistic bias). At
   most limit rows go per call (0: no bound), so a run is bounded in time. Learned-message
   digests older than max_age go too (such a message may be learned again). A call that
   deletes rows bumps the generation and sets reset_gen to it (readers reload). dry_run:
   counts only. Its own transaction (not inside a batch). */
struct mw_spam_expire {
	int64_t scope, now;
	int64_t max_age;    /* seconds; 0: no expiry by age */
	int64_t max_tokens; /* 0: no bound on size */
	uint64_t keep;      /* a hash never expired */
	int64_t limit;      /* rows deleted per call, at most; 0: no bound */
	bool dry_run;
};
struct mw_spam_expire_result {
	int64_t tokens_before, by_age, by_size, digests;
};
int mw_store_spam_expire(mw_store *store, const struct mw_spam_expire *x,
                         struct mw_spam_expire_result *res_r, mw_error *error_r);
/* The automatic expiry's turn: MW_STORE_OK when this caller claimed the scope's run (its
   last run is at least interval seconds before now; expired_at set to now), NOTFOUND when
   it is not due or another process claimed it. */
int mw_store_spam_expire_claim(mw_store *store, int64_t scope, int64_t now, int64_t interval,
                               mw_error *error_r);
/* Token rows of a scope and the range of their last_seen (0 when none). */
struct mw_spam_stats {
	struct mw_spam_meta meta;
	int64_t tokens, oldest, newest;
};
int mw_store_spam_stats(mw_store *store, int64_t scope, struct mw_spam_stats *stats_r,
                        mw_error *error_r);
/* The per-user models (scopes other than 0), in scope order: cb(ctx, scope, username or ""
   when the user is gone, nspam, nham). */
typedef void mw_spam_scope_cb(void *ctx, int64_t scope, const char *username, int64_t nspam,
                              int64_t nham);
int mw_store_spam_scopes(mw_store *store, mw_spam_scope_cb *cb, void *ctx, mw_error *error_r);

#endif
