/* api-authcache.c - mailwarden-api: a worker's cache of the rows an authenticated request
 * reads (its session and user, and for GET /users/{self} the user's allowed-From patterns
 * and main password protocols), so a repeated request need not read them from the store.
 *
 * Freshness: every entry carries the store's data version (mw_store_data_version) read
 * BEFORE its rows were, and is used only while the store reports that same version: any
 * commit by any process (another worker's logout, mailwardenctl disabling the user, a
 * password change revoking sessions, another worker touching a session) or any change made
 * through this worker's own connection moves it, and then every entry of this worker is
 * stale and the next request reads the store again. The checks themselves (revoked, expired,
 * idle, user active) are made by api_authenticate on every request, cached rows or not, at
 * that request's clock. A backend that cannot tell (PostgreSQL) is never cached. So a
 * revocation takes effect on the very next request on every worker, as without the cache.
 *
 * Keys are the session's token hash (the store's key; the token itself is never kept). The
 * entries hold the user's password hash as the request did: it is wiped when an entry is
 * replaced or the cache freed. API_AUTHCACHE_SLOTS entries, direct-mapped by the hash.
 *
 * Public: api_authcache_new, api_authcache_free, api_authcache_get, api_authcache_put,
 * api_authcache_user_extra_get, api_authcache_user_extra_put.
 * Diagnostics: none (a miss is only slower).
 */
#include "mw-build.h"
#include "api-common.h"

#include <stdlib.h>
#include <string.h>

#define API_AUTHCACHE_SLOTS 32

struct authcache_entry {
	bool used;
	uint64_t version; /* the store's data version when the rows were read */
	struct mw_session session;
	struct mw_user user; /* owned strings */
	bool have_extra;
	char **patterns; /* NULL-terminated, owned (have_extra) */
	char protocols[MW_PROTOCOLS_MAX + 1];
};

struct api_authcache {
	struct authcache_entry slots[API_AUTHCACHE_SLOTS];
};

/* entry_clear - forget an entry, wiping the password hash it held */
static void entry_clear(struct authcache_entry *e)
{
	mw_user_clear(&e->user);
	mw_store_strv_free(e->patterns);
	memset(e, 0, sizeof(*e));
}

/* strv_dup - an owned copy of a NULL-terminated string array */
static char **strv_dup(char *const *v)
{
	size_t n = 0, i;
	char **out;
	while (v[n] != NULL)
		n++;
	out = mw_calloc(n + 1, sizeof(*out));
	for (i = 0; i < n; i++)
		out[i] = mw_strdup(v[i]);
	return out;
}

/* user_copy - an owned copy of a user row */
static void user_copy(struct mw_user *dst, const struct mw_user *src)
{
	*dst = *src;
	dst->password = src->password != NULL ? mw_strdup(src->password) : NULL;
	dst->description = src->description != NULL ? mw_strdup(src->description) : NULL;
}

/* slot_of - the entry a token hash maps to (its first 8 hex digits pick it) */
static struct authcache_entry *slot_of(struct api_authcache *c, const char *hash)
{
	unsigned h = 0;
	size_t i;
	for (i = 0; i < 8; i++)
		h = h * 31u + (unsigned char)hash[i];
	return &c->slots[h % API_AUTHCACHE_SLOTS];
}

/* find - the live entry of hash read at version, or NULL */
static struct authcache_entry *find(struct api_authcache *c, uint64_t version, const char *hash)
{
	struct authcache_entry *e;
	if (c == NULL || strlen(hash) != MW_TOKEN_HASH_HEX)
		return NULL;
	e = slot_of(c, hash);
	if (!e->used || e->version != version || strcmp(e->session.token_hash, hash) != 0)
		return NULL;
	return e;
}

/* api_authcache_new - an empty cache for one worker */
struct api_authcache *api_authcache_new(void)
{
	return mw_calloc(1, sizeof(struct api_authcache));
}

/* api_authcache_free - wipe and free a cache, clearing the caller's pointer */
void api_authcache_free(struct api_authcache **c)
{
	size_t i;
	if (c == NULL || *c == NULL)
		return;
	for (i = 0; i < API_AUTHCACHE_SLOTS; i++)
		entry_clear(&(*c)->slots[i]);
	free(*c);
	*c = NULL;
}

/* api_authcache_get - the session of hash and its user as read at the store's data version
   version (copies: *user_r owned by the caller); false when not cached at that version */
bool api_authcache_get(struct api_authcache *c, uint64_t version, const char *hash,
                       struct mw_session *session_r, struct mw_user *user_r)
{
	struct authcache_entry *e = find(c, version, hash);
	if (e == NULL)
		return false;
	*session_r = e->session;
	user_copy(user_r, &e->user);
	return true;
}

/* api_authcache_put - remember a live session and its user, read at data version version
   (taken before they were read) */
void api_authcache_put(struct api_authcache *c, uint64_t version, const struct mw_session *se,
                       const struct mw_user *user)
{
	struct authcache_entry *e;
	if (c == NULL || strlen(se->token_hash) != MW_TOKEN_HASH_HEX || se->revoked_at != 0)
		return;
	e = slot_of(c, se->token_hash);
	entry_clear(e);
	e->used = true;
	e->version = version;
	e->session = *se;
	user_copy(&e->user, user);
}

/* api_authcache_user_extra_get - the session's user's allowed-From patterns (owned copy,
   free with mw_store_strv_free) and main password protocols, when cached at version */
bool api_authcache_user_extra_get(struct api_authcache *c, uint64_t version, const char *hash,
                                  char ***patterns_r, char protocols[MW_PROTOCOLS_MAX + 1])
{
	struct authcache_entry *e = find(c, version, hash);
	if (e == NULL || !e->have_extra)
		return false;
	*patterns_r = strv_dup(e->patterns);
	memcpy(protocols, e->protocols, MW_PROTOCOLS_MAX + 1);
	return true;
}

/* api_authcache_user_extra_put - add the user's patterns and protocols, read at version, to
   the session's entry (only when that entry was read at the same version) */
void api_authcache_user_extra_put(struct api_authcache *c, uint64_t version, const char *hash,
                                  char *const *patterns, const char *protocols)
{
	struct authcache_entry *e = find(c, version, hash);
	if (e == NULL || patterns == NULL || strlen(protocols) > MW_PROTOCOLS_MAX)
		return;
	mw_store_strv_free(e->patterns);
	e->patterns = strv_dup(patterns);
	(void)mw_strlcpy(e->protocols, protocols, sizeof(e->protocols));
	e->have_extra = true;
}
