/*
 * milter-users.c - a sending user's status and allowed-From patterns, from the store
 * through a small cache (lib/mw-ttlcache.c).
 *
 * Public: milter_users_init, milter_users_reload, milter_users_lookup,
 * milter_user_info_clear, milter_users_deinit, milter_users_dkim_key.
 *
 * One store connection serves every milter thread, behind store_lock (an mw_store must not
 * be used by two threads at once). The cache is a hash table by username, entries live
 * cache_ttl seconds on the monotonic clock (so a change through the store is seen within
 * that time) and at most CACHE_MAX entries are kept: when full, expired entries go, and if
 * none had expired the whole table is emptied. Unknown users are cached too (as NOTFOUND);
 * store errors never are. Lock order: store_lock, then cache_lock (never the other way).
 *
 * While the store fails the milter answers from the cache alone (entries still within
 * cache_ttl; the others get on_error): the component milter_store is degraded
 * (lib/mw-degraded.c logs event=degraded at the first failed lookup and event=recovered at
 * the first one the store answers again; the mailwarden_degraded gauge in metrics_file is
 * what mailwardenctl doctor reads).
 *
 * Diagnostics: store errors come back through error_r; the callbacks log them.
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-ttlcache.h"
#include "mw-degraded.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_BUCKETS 256
#define CACHE_MAX     4096

/* What the cache keeps per username (a NOTFOUND is remembered too). */
struct cached_user {
	bool found;
	struct milter_user_info info;
};

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static mw_store *users_store;
static mw_ttlcache *cache; /* created on first use, under cache_lock */
static unsigned cache_ttl;

/* strv_copy - an owned copy of a NULL-terminated string vector */
static char **strv_copy(char *const *v, size_t n)
{
	char **out = mw_calloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = mw_strdup(v[i]);
	return out;
}

/* milter_user_info_clear - free what a lookup filled in */
void milter_user_info_clear(struct milter_user_info *info)
{
	if (info->patterns != NULL) {
		for (size_t i = 0; i < info->npatterns; i++)
			free(info->patterns[i]);
		free(info->patterns);
	}
	memset(info, 0, sizeof(*info));
}

/* cached_user_free - a cache value */
static void cached_user_free(void *p)
{
	struct cached_user *cu = p;
	milter_user_info_clear(&cu->info);
	free(cu);
}

/* cache_clear_locked - drop every entry (cache_lock held) */
static void cache_clear_locked(void)
{
	if (cache != NULL)
		mw_ttlcache_clear(cache);
}

/* cache_get - a fresh entry's data copied out: 1 hit, 0 miss */
static int cache_get(const char *username, bool *found_r, struct milter_user_info *info_r)
{
	const struct cached_user *cu = NULL;
	bool hit = false;
	(void)pthread_mutex_lock(&cache_lock);
	if (cache != NULL)
		cu = mw_ttlcache_get(cache, username, mw_mono_s(), &hit);
	if (hit) {
		*found_r = cu->found;
		info_r->status = cu->info.status;
		info_r->npatterns = cu->info.npatterns;
		info_r->patterns = strv_copy(cu->info.patterns, cu->info.npatterns);
	}
	(void)pthread_mutex_unlock(&cache_lock);
	return hit ? 1 : 0;
}

/* cache_put - remember a lookup result (replacing an older one) */
static void cache_put(const char *username, bool found, const struct milter_user_info *info)
{
	int64_t now = mw_mono_s();
	struct cached_user *cu;

	if (cache_ttl == 0)
		return;
	cu = mw_calloc(1, sizeof(*cu));
	cu->found = found;
	cu->info.status = info->status;
	cu->info.npatterns = info->npatterns;
	cu->info.patterns = strv_copy(info->patterns, info->npatterns);
	(void)pthread_mutex_lock(&cache_lock);
	if (cache == NULL)
		cache = mw_ttlcache_new(CACHE_BUCKETS, CACHE_MAX, cached_user_free);
	(void)mw_ttlcache_put(cache, username, cu, now, now + (int64_t)cache_ttl);
	(void)pthread_mutex_unlock(&cache_lock);
}

/* open_checked - the store at url with a schema this build knows; NULL with error_r */
static mw_store *open_checked(const char *url, unsigned busy_ms, mw_error *error_r)
{
	mw_store *store = mw_store_open(url, busy_ms, error_r);
	if (store != NULL && mw_store_check_schema(store, error_r) < 0)
		mw_store_close(&store);
	return store;
}

/* milter_users_init - open the store, set the cache TTL */
int milter_users_init(const char *url, unsigned busy_ms, unsigned ttl_secs, mw_error *error_r)
{
	mw_store *store = open_checked(url, busy_ms, error_r);
	if (store == NULL)
		return -1;
	(void)pthread_mutex_lock(&store_lock);
	users_store = store;
	cache_ttl = ttl_secs;
	(void)pthread_mutex_unlock(&store_lock);
	mw_degraded_watch(MW_DEGRADED_MILTER_STORE);
	return 0;
}

/* milter_users_reload - a new store connection and an empty cache; the old store stays
   when the new one cannot be opened */
int milter_users_reload(const char *url, unsigned busy_ms, unsigned ttl_secs, mw_error *error_r)
{
	mw_store *store = open_checked(url, busy_ms, error_r), *old;
	if (store == NULL)
		return -1;
	(void)pthread_mutex_lock(&store_lock);
	old = users_store;
	users_store = store;
	(void)pthread_mutex_lock(&cache_lock);
	cache_ttl = ttl_secs;
	cache_clear_locked();
	(void)pthread_mutex_unlock(&cache_lock);
	(void)pthread_mutex_unlock(&store_lock);
	mw_store_close(&old);
	return 0;
}

/* milter_users_lookup - status and patterns of USERNAME (cache, then store) */
enum milter_lookup milter_users_lookup(const char *username, struct milter_user_info *info_r,
                                       mw_error *error_r)
{
	struct mw_user user;
	char **patterns = NULL;
	size_t n = 0;
	bool found = false;
	mw_error err = {""};
	int ret;

	memset(info_r, 0, sizeof(*info_r));
	if (cache_get(username, &found, info_r))
		return found ? MILTER_LOOKUP_OK : MILTER_LOOKUP_NOTFOUND;

	(void)pthread_mutex_lock(&store_lock);
	if (users_store == NULL) {
		(void)pthread_mutex_unlock(&store_lock);
		mw_error_set(error_r, "store not open");
		(void)mw_degraded_enter(MW_DEGRADED_MILTER_STORE, "store_closed", "store not open");
		return MILTER_LOOKUP_ERROR;
	}
	memset(&user, 0, sizeof(user));
	ret = mw_store_user_get(users_store, username, &user, &err);
	if (ret == MW_STORE_OK) {
		info_r->status = user.status;
		mw_user_clear(&user);
		ret = mw_store_allowed_from_list(users_store, username, &patterns, &n, &err);
		if (ret == MW_STORE_NOTFOUND) { /* deleted between the two reads */
			ret = MW_STORE_OK;
			patterns = NULL;
			n = 0;
		}
	}
	(void)pthread_mutex_unlock(&store_lock);

	if (ret != MW_STORE_OK && ret != MW_STORE_NOTFOUND) {
		/* once per outage: a failing store must not log twice per message */
		(void)mw_degraded_enter(MW_DEGRADED_MILTER_STORE, "store_error", err.msg);
		mw_error_set(error_r, "%s", err.msg);
	} else {
		(void)mw_degraded_leave(MW_DEGRADED_MILTER_STORE, "a user lookup was answered");
	}
	if (ret == MW_STORE_NOTFOUND) {
		cache_put(username, false, info_r);
		return MILTER_LOOKUP_NOTFOUND;
	}
	if (ret != MW_STORE_OK) {
		mw_store_strv_free(patterns);
		milter_user_info_clear(info_r);
		return MILTER_LOOKUP_ERROR;
	}
	info_r->npatterns = n;
	info_r->patterns = strv_copy(patterns, n);
	mw_store_strv_free(patterns);
	cache_put(username, true, info_r);
	return MILTER_LOOKUP_OK;
}

/* milter_users_deinit - close the store, empty the cache */
void milter_users_deinit(void)
{
	(void)pthread_mutex_lock(&store_lock);
	mw_store_close(&users_store);
	(void)pthread_mutex_lock(&cache_lock);
	mw_ttlcache_free(&cache);
	(void)pthread_mutex_unlock(&cache_lock);
	(void)pthread_mutex_unlock(&store_lock);
}

/* milter_users_dkim_key - a domain's signing key through the shared store connection */
int milter_users_dkim_key(const mw_master_key *master_key, const char *dir, const char *domain,
                          mw_dkim_key **key_r, mw_error *error_r)
{
	int ret;
	(void)pthread_mutex_lock(&store_lock);
	ret = mw_dkim_key_lookup(master_key != NULL ? users_store : NULL, master_key, dir, domain,
	                         key_r, error_r);
	(void)pthread_mutex_unlock(&store_lock);
	return ret;
}
