/* mw-store-private.h - what the store front end and its backends share; callers never
   include this.

   The front end (mw-store.c) parses the URL, checks every argument (lengths, normalised
   names, NULLs) and then calls the backend through struct mw_store_backend. A backend
   therefore receives only validated input: non-NULL strings within their limits, and
   usernames already normalised. Each backend keeps its own state in store->ctx. */
#ifndef MW_STORE_PRIVATE_H
#define MW_STORE_PRIVATE_H

#include "mw-store.h"
#include "mw-tagrule.h"

struct mw_migration {
	unsigned version;
	const char *name;
	const char *sql;
};

extern const struct mw_migration mw_sqlite_migrations[];
extern const unsigned mw_sqlite_migrations_count;

/* One function pointer per operation; same meaning and return values as the public
   functions of the same name in mw-store.h. */
struct mw_store_backend {
	const char *name; /* "sqlite", "postgresql" */
	/* location: what followed the URL scheme (SQLite: an absolute path). */
	int (*open)(mw_store *store, const char *location, unsigned busy_timeout_ms,
	            mw_error *error_r);
	void (*close)(mw_store *store);
	int (*migrate)(mw_store *store, mw_error *error_r);
	int (*schema_version)(mw_store *store, int *version_r, mw_error *error_r);
	int (*latest_schema_version)(void);

	int (*user_add)(mw_store *store, const char *username, const char *password_hash,
	                enum mw_user_status status, enum mw_user_role role, const char *description,
	                int64_t *id_r, mw_error *error_r);
	int (*user_get)(mw_store *store, const char *username, struct mw_user *user_r,
	                mw_error *error_r);
	int (*user_get_by_id)(mw_store *store, int64_t id, struct mw_user *user_r,
	                      mw_error *error_r);
	/* Fills *users_r with an owned array of *count_r users (the front end calls the
	   callback after the backend has released its statement, so the callback may use
	   the store). */
	int (*user_list)(mw_store *store, const struct mw_user_filter *filter,
	                 struct mw_user **users_r, size_t *count_r, mw_error *error_r);
	int (*user_set_password)(mw_store *store, const char *username, const char *password_hash,
	                         mw_error *error_r);
	int (*user_set_status)(mw_store *store, const char *username, enum mw_user_status status,
	                       mw_error *error_r);
	int (*user_set_role)(mw_store *store, const char *username, enum mw_user_role role,
	                     mw_error *error_r);
	int (*user_set_description)(mw_store *store, const char *username, const char *description,
	                            mw_error *error_r);
	int (*user_delete)(mw_store *store, const char *username, mw_error *error_r);

	int (*allowed_from_add)(mw_store *store, const char *username, const char *pattern,
	                        mw_error *error_r);
	int (*allowed_from_del)(mw_store *store, const char *username, const char *pattern,
	                        mw_error *error_r);
	int (*allowed_from_list)(mw_store *store, const char *username, char ***patterns_r,
	                         size_t *count_r, mw_error *error_r);

	int (*audit_append)(mw_store *store, const char *actor, const char *action,
	                    const char *target, const char *client, const char *details,
	                    mw_error *error_r);

	int (*tag_rule_add)(mw_store *store, const char *username, const struct mw_tag_rule *rule,
	                    int64_t *id_r, mw_error *error_r);
	int (*tag_rule_list)(mw_store *store, const char *username, struct mw_tag_rule **rules_r,
	                     size_t *count_r, mw_error *error_r);
	int (*tag_rule_del)(mw_store *store, const char *username, int64_t id, mw_error *error_r);
	int (*training_add)(mw_store *store, const char *username, const char *message_id,
	                    enum mw_training_verdict verdict, mw_error *error_r);
	int (*training_list)(mw_store *store, int64_t after_id, unsigned limit, bool pending_only,
	                     struct mw_training_event **events_r, size_t *count_r,
	                     mw_error *error_r);

	/* mailwarden-api (issue 5) */
	int (*session_add)(mw_store *store, const struct mw_session *session, mw_error *error_r);
	int (*session_get)(mw_store *store, const char *token_hash, struct mw_session *session_r,
	                   mw_error *error_r);
	int (*session_touch)(mw_store *store, const char *token_hash, int64_t now,
	                     mw_error *error_r);
	int (*session_revoke)(mw_store *store, const char *token_hash, mw_error *error_r);
	int (*session_revoke_id)(mw_store *store, int64_t user_id, const char *id,
	                         mw_error *error_r);
	int (*session_revoke_user)(mw_store *store, int64_t user_id, const char *except_hash,
	                           unsigned *count_r, mw_error *error_r);
	int (*session_list)(mw_store *store, int64_t user_id, int64_t now,
	                    struct mw_session **sessions_r, size_t *count_r, mw_error *error_r);
	int (*user_set_login_state)(mw_store *store, const char *username, int failed_logins,
	                            int64_t locked_until, mw_error *error_r);
	int (*audit_list)(mw_store *store, const struct mw_audit_filter *filter,
	                  struct mw_audit_entry **entries_r, size_t *count_r, mw_error *error_r);

	/* mailwarden-policyd (issue 4) */
	int (*rate_policy_add)(mw_store *store, const struct mw_rate_policy *policy, int64_t *id_r,
	                       mw_error *error_r);
	int (*rate_policy_list)(mw_store *store, struct mw_rate_policy **policies_r,
	                        size_t *count_r, mw_error *error_r);
	int (*rate_policy_del)(mw_store *store, int64_t id, mw_error *error_r);

	/* DKIM signing keys (issue 3): public_key here is the stored text "k=TYPE; p=B64" */
	int (*dkim_key_add)(mw_store *store, const char *domain, const char *selector,
	                    const char *private_key, const char *public_key, bool active,
	                    mw_error *error_r);
	int (*dkim_key_list)(mw_store *store, const char *domain, struct mw_dkim_key_row **rows_r,
	                     size_t *count_r, mw_error *error_r);
	int (*dkim_key_get)(mw_store *store, const char *domain, const char *selector,
	                    bool active_only, struct mw_dkim_key_row *row_r, mw_error *error_r);
	int (*dkim_key_set_active)(mw_store *store, const char *domain, const char *selector,
	                           mw_error *error_r);
	int (*dkim_key_delete)(mw_store *store, const char *domain, const char *selector,
	                       mw_error *error_r);

	/* TOTP state and app passwords (mailwarden-api 2FA, issue 5) */
	int (*user_totp_get)(mw_store *store, const char *username, char **text_r,
	                     mw_error *error_r);
	int (*user_totp_set)(mw_store *store, const char *username, const char *old_text,
	                     const char *new_text, mw_error *error_r);
	int (*user_main_protocols_get)(mw_store *store, const char *username,
	                               char out[MW_PROTOCOLS_MAX + 1], mw_error *error_r);
	int (*user_main_protocols_set)(mw_store *store, const char *username, const char *protocols,
	                               mw_error *error_r);
	int (*app_password_add)(mw_store *store, const char *username,
	                        const struct mw_app_password *ap, int64_t *id_r, mw_error *error_r);
	int (*app_password_list)(mw_store *store, const char *username,
	                         struct mw_app_password **list_r, size_t *count_r,
	                         mw_error *error_r);
	int (*app_password_del)(mw_store *store, const char *username, int64_t id,
	                        mw_error *error_r);
	int (*app_password_used)(mw_store *store, const char *username, int64_t id, int64_t at,
	                         const char *ip, mw_error *error_r);
	/* failed authentications (mailwarden-api lockouts, issue 9) */
	int (*auth_fail_add)(mw_store *store, const char *key, const char *net, int64_t now,
	                     int64_t since, struct mw_auth_fail *row_r, mw_error *error_r);
	int (*auth_fail_get)(mw_store *store, const char *key, const char *net,
	                     struct mw_auth_fail *row_r, mw_error *error_r);
	int (*auth_fail_clear)(mw_store *store, const char *key, const char *net,
	                       mw_error *error_r);
	int (*auth_fail_sum)(mw_store *store, const char *key, int64_t since, int64_t *failures_r,
	                     int64_t *nets_r, mw_error *error_r);
	int (*auth_fail_prune)(mw_store *store, int64_t before, mw_error *error_r);
	int (*app_password_revoke_all)(mw_store *store, const char *username, unsigned *count_r,
	                               mw_error *error_r);
	/* statistical spam classifier (issue 10) */
	int (*spam_meta_get)(mw_store *store, int64_t scope, struct mw_spam_meta *meta_r,
	                     mw_error *error_r);
	int (*spam_tokens_load)(mw_store *store, int64_t scope, int64_t since_gen,
	                        mw_spam_token_cb *cb, void *ctx, mw_error *error_r);
	int (*spam_tokens_get)(mw_store *store, int64_t scope, const uint64_t *hash, size_t count,
	                       mw_spam_token_cb *cb, void *ctx, mw_error *error_r);
	int (*spam_learned_get)(mw_store *store, int64_t scope, const unsigned char *digest,
	                        bool *spam_r, mw_error *error_r);
	int (*spam_learn)(mw_store *store, const struct mw_spam_learn *learn, mw_error *error_r);
	/* what: 0 begin, 1 commit, 2 roll back */
	int (*spam_batch)(mw_store *store, int what, mw_error *error_r);
};

struct mw_store {
	const struct mw_store_backend *backend;
	void *ctx; /* the backend's own state */
};

extern const struct mw_store_backend mw_store_backend_sqlite;

#endif
