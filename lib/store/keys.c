/* keys.c - the store's DKIM signing keys (issue 3, mw-dkim-sign).
 *
 * The private key is stored encrypted (mw_secret_encrypt, "v1:..."); the key type is not a
 * column of dkim_keys but a "k=TYPE; " prefix of the stored public key text, split off
 * again when a row is read. Outside a rotation's overlap a domain has at most one active
 * key: adding an active key or activating one deactivates the domain's others (retiring
 * ones too) in the same transaction.
 *
 * Rotation (issue 18, migration 004): each key has a state (pending, active, retiring,
 * retired, inactive); active = 1 exactly for the keys that sign (active and retiring), so
 * during a rotation's overlap a domain has two. Every rotation step is one conditional
 * UPDATE (or an INSERT guarded by a unique index) inside a transaction: when several hosts
 * run the rotation at once, exactly one makes each step and the others see
 * MW_STORE_NOTFOUND / MW_STORE_EXISTS.
 *
 * Public: mw_store_dkim_key_add/_add_pending/_list/_get/_get_active/_set_active/_promote/
 * _retire/_delete, mw_dkim_key_row_clear, mw_dkim_key_rows_free.
 *
 * Diagnostics: through error_r; never a private key.
 */
#include "mw-build.h"
#include "mw-store-private.h"

#include <stdlib.h>
#include <string.h>

#define DKIM_COLUMNS                                                                               \
	"id, domain, selector, private_key, public_key, created_at, active, state, activated_at, " \
	"retire_at"

static const struct mw_db_query q_dkim_add = {
    "adding a DKIM key",
    "INSERT INTO dkim_keys (domain, selector, private_key, public_key, created_at, active, "
    "state, activated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    NULL};
static const struct mw_db_query q_dkim_deactivate = {
    "deactivating DKIM keys",
    "UPDATE dkim_keys SET active = 0, state = 'inactive', retire_at = NULL "
    "WHERE domain = ?1 AND selector <> ?2 AND active <> 0",
    NULL};
static const struct mw_db_query q_dkim_activate = {
    "activating a DKIM key",
    "UPDATE dkim_keys SET active = 1, state = 'active', activated_at = ?3, retire_at = NULL "
    "WHERE domain = ?1 AND selector = ?2",
    NULL};
static const struct mw_db_query q_dkim_promote = {
    "activating a pending DKIM key",
    "UPDATE dkim_keys SET active = 1, state = 'active', activated_at = ?3 "
    "WHERE domain = ?1 AND selector = ?2 AND state = 'pending'",
    NULL};
static const struct mw_db_query q_dkim_to_retiring = {
    "retiring the previous DKIM key",
    "UPDATE dkim_keys SET state = 'retiring', retire_at = ?3 "
    "WHERE domain = ?1 AND selector <> ?2 AND state = 'active'",
    NULL};
static const struct mw_db_query q_dkim_retire = {
    "retiring a DKIM key",
    "UPDATE dkim_keys SET active = 0, state = 'retired', retire_at = ?3 "
    "WHERE domain = ?1 AND selector = ?2 AND state = 'retiring' AND retire_at <= ?3",
    NULL};
/* ORDER BY domain compares bytes in both dialects: SQLite's BINARY collation, and the
   PostgreSQL schema declares text columns COLLATE "C" (a locale collation would ignore the
   dots and hyphens of domains) */
static const struct mw_db_query q_dkim_list = {
    "listing DKIM keys",
    "SELECT " DKIM_COLUMNS " FROM dkim_keys WHERE (CAST(?1 AS TEXT) IS NULL OR domain = ?1) "
    "ORDER BY domain, created_at, id",
    NULL};
static const struct mw_db_query q_dkim_get = {
    "reading a DKIM key",
    "SELECT " DKIM_COLUMNS " FROM dkim_keys WHERE domain = ?1 AND selector = ?2", NULL};
static const struct mw_db_query q_dkim_get_active = {
    "reading a DKIM key",
    "SELECT " DKIM_COLUMNS " FROM dkim_keys WHERE domain = ?1 AND active = 1 "
    "ORDER BY created_at DESC, id DESC LIMIT 1",
    NULL};
static const struct mw_db_query q_dkim_delete = {
    "deleting a DKIM key", "DELETE FROM dkim_keys WHERE domain = ?1 AND selector = ?2", NULL};

/* check_dkim_name - a lower-case LDH name: labels of [a-z0-9-] (and '_' when underscore)
   separated by single dots, each 1..63 bytes, at most max in all */
static int check_dkim_name(const char *what, const char *s, size_t max, bool underscore,
                           mw_error *error_r)
{
	size_t len, i, label = 0;
	if (mw_text_len_check(what, s, max, &len, error_r) < 0)
		return -1;
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

/* read_dkim_row - one DKIM_COLUMNS row, its public key split into type and p= value */
static int read_dkim_row(const mw_db_row *row, void *elem, mw_error *error_r)
{
	struct mw_dkim_key_row *r = elem;
	r->id = mw_db_int(row, 0);
	if (mw_db_is_null(row, 1) || mw_db_is_null(row, 2) ||
	    mw_store_text_copy(row, 1, r->domain, sizeof(r->domain)) < 0 ||
	    mw_store_text_copy(row, 2, r->selector, sizeof(r->selector)) < 0) {
		mw_error_set(error_r, "DKIM key row %lld is malformed", (long long)r->id);
		return MW_STORE_ERROR;
	}
	r->private_key = mw_db_text_dup(row, 3);
	r->public_key = mw_db_text_dup(row, 4);
	r->created_at = mw_db_int(row, 5);
	r->active = mw_db_int(row, 6) != 0;
	if (mw_db_is_null(row, 7) || mw_store_text_copy(row, 7, r->state, sizeof(r->state)) < 0)
		(void)mw_strlcpy(r->state, r->active ? "active" : "inactive", sizeof(r->state));
	r->activated_at = mw_db_is_null(row, 8) ? 0 : mw_db_int(row, 8);
	r->retire_at = mw_db_is_null(row, 9) ? 0 : mw_db_int(row, 9);
	if (dkim_row_split(r, error_r) != MW_STORE_OK) {
		mw_dkim_key_row_clear(r);
		return MW_STORE_ERROR;
	}
	return MW_STORE_OK;
}

struct dkim_one {
	struct mw_dkim_key_row *row;
	mw_error *error_r;
};

/* read_dkim_one - read_dkim_row as the callback of a single-row query */
static int read_dkim_one(const mw_db_row *row, void *ctx)
{
	struct dkim_one *one = ctx;
	mw_dkim_key_row_clear(one->row);
	return read_dkim_row(row, one->row, one->error_r);
}

/* dkim_add - store a new (encrypted) DKIM key in STATE ("active", "inactive", "pending") */
static int dkim_add(mw_store *store, const char *domain, const char *selector, const char *key_type,
                    const char *private_key, const char *public_key, const char *state,
                    mw_error *error_r)
{
	bool active = strcmp(state, "active") == 0;
	int64_t now = mw_now();
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
	if (mw_store_check_text("DKIM private key", private_key, MW_DKIM_SECRET_MAX, false,
	                        error_r) < 0)
		return MW_STORE_ERROR;
	if (strncmp(private_key, "v1:", 3) != 0) {
		mw_error_set(error_r, "DKIM private key is not encrypted text");
		return MW_STORE_ERROR;
	}
	if (mw_store_check_text("DKIM public key", public_key, MW_DKIM_PUBLIC_MAX, false, error_r) <
	    0)
		return MW_STORE_ERROR;
	for (i = 0; public_key[i] != '\0'; i++) {
		char c = public_key[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '=')) {
			mw_error_set(error_r, "DKIM public key is not base64");
			return MW_STORE_ERROR;
		}
	}
	ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	mw_str_init(&stored, 0);
	(void)mw_str_appendf(&stored, "k=%s; p=%s", key_type, public_key);
	ret = mw_db_change(store->db, &q_dkim_add,
	                   MW_DB_ARGS(MW_DB_T(domain), MW_DB_T(selector), MW_DB_T(private_key),
	                              MW_DB_T(mw_str_c(&stored)), MW_DB_I(now),
	                              MW_DB_I(active ? 1 : 0), MW_DB_T(state),
	                              active ? MW_DB_I(now) : MW_DB_NUL),
	                   error_r);
	mw_str_free(&stored);
	if (ret == MW_STORE_EXISTS && strcmp(state, "pending") == 0)
		mw_error_set(error_r, "DKIM key %s for %s already exists, or %s has a pending key",
		             selector, domain, domain);
	else if (ret == MW_STORE_EXISTS)
		mw_error_set(error_r, "DKIM key %s for %s already exists", selector, domain);
	if (ret == MW_STORE_OK && active)
		ret = mw_db_run(store->db, &q_dkim_deactivate,
		                MW_DB_ARGS(MW_DB_T(domain), MW_DB_T(selector)), NULL, NULL, NULL,
		                error_r);
	return mw_db_end(store->db, ret, error_r);
}

/* mw_store_dkim_key_add - store a new (encrypted) DKIM key; an active one deactivates the
   domain's others */
int mw_store_dkim_key_add(mw_store *store, const char *domain, const char *selector,
                          const char *key_type, const char *private_key, const char *public_key,
                          bool active, mw_error *error_r)
{
	return dkim_add(store, domain, selector, key_type, private_key, public_key,
	                active ? "active" : "inactive", error_r);
}

/* mw_store_dkim_key_add_pending - a rotation's next key: stored, not signing; at most one
   per domain (the unique index on pending keys decides between hosts) */
int mw_store_dkim_key_add_pending(mw_store *store, const char *domain, const char *selector,
                                  const char *key_type, const char *private_key,
                                  const char *public_key, mw_error *error_r)
{
	return dkim_add(store, domain, selector, key_type, private_key, public_key, "pending",
	                error_r);
}

/* dkim_switch - in one transaction, MAKE (domain, selector, at) changes the key (none:
   "no WHICH DKIM key"), then OTHERS changes the domain's other keys (with OTHERS_AT as ?3
   when not NULL) */
static int dkim_switch(mw_store *store, const char *domain, const char *selector,
                       const struct mw_db_query *make, int64_t at, const char *which,
                       const struct mw_db_query *others, const int64_t *others_at,
                       mw_error *error_r)
{
	struct mw_db_arg args[3] = {MW_DB_T(domain), MW_DB_T(selector), MW_DB_I(at)};
	int ret;
	if (selector == NULL || check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = mw_db_change(store->db, make, args, 3, error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no %sDKIM key %s for %s", which, selector, domain);
	if (ret == MW_STORE_OK) {
		if (others_at != NULL)
			args[2] = MW_DB_I(*others_at);
		ret = mw_db_run(store->db, others, args, others_at != NULL ? 3 : 2, NULL, NULL,
		                NULL, error_r);
	}
	return mw_db_end(store->db, ret, error_r);
}

/* mw_store_dkim_key_promote - a pending key becomes active; the domain's active key becomes
   retiring until retire_at (both sign until then) */
int mw_store_dkim_key_promote(mw_store *store, const char *domain, const char *selector,
                              int64_t now, int64_t retire_at, mw_error *error_r)
{
	return dkim_switch(store, domain, selector, &q_dkim_promote, now, "pending ",
	                   &q_dkim_to_retiring, &retire_at, error_r);
}

/* mw_store_dkim_key_retire - a retiring key whose retire_at has come stops signing */
int mw_store_dkim_key_retire(mw_store *store, const char *domain, const char *selector, int64_t now,
                             mw_error *error_r)
{
	int ret;
	if (selector == NULL || check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_change(store->db, &q_dkim_retire,
	                   MW_DB_ARGS(MW_DB_T(domain), MW_DB_T(selector), MW_DB_I(now)), error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no retiring DKIM key %s for %s due by now", selector,
		             domain);
	return ret;
}

/* free_dkim_rows - mw_dkim_key_rows_free for mw_store_list */
static void free_dkim_rows(void *v, size_t n)
{
	mw_dkim_key_rows_free(v, n);
}

/* mw_store_dkim_key_list - every DKIM key, or a domain's, by domain then age */
int mw_store_dkim_key_list(mw_store *store, const char *domain, struct mw_dkim_key_row **rows_r,
                           size_t *count_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS(struct mw_dkim_key_row, read_dkim_row, false, error_r);
	int ret;
	*rows_r = NULL;
	*count_r = 0;
	if (domain != NULL && check_dkim_pair(domain, NULL, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_store_list(store, &q_dkim_list, MW_DB_ARGS(MW_DB_T(domain)), &rows, free_dkim_rows,
	                    false);
	*rows_r = rows.v;
	*count_r = rows.count;
	return ret;
}

/* dkim_get - the shared body of get (selector) and get_active (selector NULL) */
static int dkim_get(mw_store *store, const char *domain, const char *selector,
                    struct mw_dkim_key_row *row_r, mw_error *error_r)
{
	struct dkim_one one = {row_r, error_r};
	int ret;
	memset(row_r, 0, sizeof(*row_r));
	if (check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (selector != NULL)
		ret = mw_db_one(store->db, &q_dkim_get,
		                MW_DB_ARGS(MW_DB_T(domain), MW_DB_T(selector)), read_dkim_one, &one,
		                error_r);
	else
		ret = mw_db_one(store->db, &q_dkim_get_active, MW_DB_ARGS(MW_DB_T(domain)),
		                read_dkim_one, &one, error_r);
	if (ret == MW_STORE_NOTFOUND && selector != NULL)
		mw_error_set(error_r, "no DKIM key %s for %s", selector, domain);
	else if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no active DKIM key for %s", domain);
	if (ret != MW_STORE_OK)
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
	return dkim_switch(store, domain, selector, &q_dkim_activate, mw_now(), "",
	                   &q_dkim_deactivate, NULL, error_r);
}

/* mw_store_dkim_key_delete - delete one key */
int mw_store_dkim_key_delete(mw_store *store, const char *domain, const char *selector,
                             mw_error *error_r)
{
	int ret;
	if (selector == NULL || check_dkim_pair(domain, selector, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_change(store->db, &q_dkim_delete,
	                   MW_DB_ARGS(MW_DB_T(domain), MW_DB_T(selector)), error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no DKIM key %s for %s", selector, domain);
	return ret;
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
	MW_ARRAY_FREE(rows, count, mw_dkim_key_row_clear);
}
