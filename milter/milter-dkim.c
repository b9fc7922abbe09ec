/*
 * milter-dkim.c - DKIM signing keys for outbound mail: the master key and a per-domain cache.
 *
 * Public: milter_dkim_init, milter_dkim_reload, milter_dkim_signer, milter_arc_seal,
 * milter_dkim_deinit.
 *
 * A key is looked up by the header-From domain with mw_dkim_key_lookup (the store's active
 * key, decrypted with the master key, then [milter] dkim_key_dir) and kept in a small hash
 * table for cache_ttl seconds (the same TTL as user data), so a message does not pay for a
 * store read and a decryption; "no key for this domain" is cached too, errors never are.
 * SIGHUP empties the cache (milter_dkim_reload), and lib/mw-dkim-sign's cache of parsed
 * keys with it; between SIGHUPs a key read again after cache_ttl is not parsed again unless
 * its text changed (rotation, replacement). A signer copies the key it is made from,
 * so the cache lock is held only while the signer is made (or, for milter_arc_seal, while
 * the ARC set of [milter] arc_seal_domain is signed).
 *
 * The master key is read at start, before privileges are dropped (it is normally
 * root-only). On SIGHUP it is read again; when that fails (the file is not readable by the
 * unprivileged account, which is the normal case) the key already loaded stays.
 *
 * Diagnostics: errors come back through error_r; the callbacks log them. Key material is
 * never logged.
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-ttlcache.h"
#include "mw-arc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KCACHE_BUCKETS 64
#define KCACHE_MAX     4096

static pthread_mutex_t dkim_lock = PTHREAD_MUTEX_INITIALIZER;
static mw_ttlcache *kcache; /* domain -> mw_dkim_key (NULL: no key); created on first use */
static unsigned kcache_ttl;
static mw_master_key master_key;
static bool have_master_key;

/* kcache_value_free - a cached key */
static void kcache_value_free(void *p)
{
	mw_dkim_key *key = p;
	mw_dkim_key_free(&key);
}

/* kcache_clear_locked - drop every entry (dkim_lock held) */
static void kcache_clear_locked(void)
{
	if (kcache != NULL)
		mw_ttlcache_clear(kcache);
}

/* load_master_key - read PATH into the process's master key; keep the old one on failure */
static int load_master_key(const char *path, bool keep_old, mw_error *error_r)
{
	mw_master_key mk;
	if (path[0] == '\0') {
		(void)pthread_mutex_lock(&dkim_lock);
		if (!keep_old) {
			mw_secret_key_wipe(&master_key);
			have_master_key = false;
		}
		(void)pthread_mutex_unlock(&dkim_lock);
		return 0;
	}
	if (mw_secret_key_load(path, &mk, error_r) < 0)
		return -1;
	(void)pthread_mutex_lock(&dkim_lock);
	master_key = mk;
	have_master_key = true;
	(void)pthread_mutex_unlock(&dkim_lock);
	mw_secret_key_wipe(&mk);
	return 0;
}

/* milter_dkim_init - the master key (as root) and the cache TTL */
int milter_dkim_init(const char *master_key_path, unsigned ttl_secs, mw_error *error_r)
{
	if (load_master_key(master_key_path, false, error_r) < 0)
		return -1;
	(void)pthread_mutex_lock(&dkim_lock);
	kcache_ttl = ttl_secs;
	kcache_clear_locked();
	(void)pthread_mutex_unlock(&dkim_lock);
	return 0;
}

/* milter_dkim_reload - re-read the master key when possible, empty the cache */
int milter_dkim_reload(const char *master_key_path, unsigned ttl_secs, mw_error *error_r)
{
	int ret = load_master_key(master_key_path, true, error_r);
	(void)pthread_mutex_lock(&dkim_lock);
	kcache_ttl = ttl_secs;
	kcache_clear_locked();
	(void)pthread_mutex_unlock(&dkim_lock);
	mw_dkim_key_cache_flush();
	return ret;
}

/* key_use - what to do with a domain's key while the cache holds it (key NULL: no key) */
typedef int key_use_fn(const mw_dkim_key *key, void *arg, mw_error *error_r);

struct signer_arg {
	const mw_config *cfg;
	const char *job_id;
	mw_dkim_signer **signer_r;
	char *selector_r;
	size_t selsize;
};

/* make_signer - a signer from KEY (dkim_lock held: the key belongs to the cache) */
static int make_signer(const mw_dkim_key *key, void *arg, mw_error *error_r)
{
	struct signer_arg *a = arg;
	if (key == NULL)
		return MW_DKIM_LOOKUP_NONE;
	*a->signer_r = mw_dkim_signer_new(key, a->job_id,
	                                  mw_config_str(a->cfg, MWK_MILTER_DKIM_HEADERS), error_r);
	if (*a->signer_r == NULL)
		return MW_DKIM_LOOKUP_ERROR;
	(void)mw_strlcpy(a->selector_r, mw_dkim_key_selector(key), a->selsize);
	return MW_DKIM_LOOKUP_FOUND;
}

/* with_key - run USE on DOMAIN's key (cache, then store and key directory) */
static int with_key(const mw_config *cfg, const char *domain, key_use_fn *use, void *arg,
                    mw_error *error_r)
{
	char dom[MW_ADDR_DOMAIN_MAX + 1];
	mw_master_key mk;
	bool mk_ok;
	mw_dkim_key *key = NULL;
	int64_t now = mw_mono_s();
	int ret;

	if (mw_dkim_domain_normalize(domain, dom, sizeof(dom), error_r) < 0)
		return MW_DKIM_LOOKUP_ERROR;
	(void)pthread_mutex_lock(&dkim_lock);
	if (kcache != NULL) {
		bool hit;
		const mw_dkim_key *cached = mw_ttlcache_get(kcache, dom, now, &hit);
		if (hit) {
			ret = use(cached, arg, error_r);
			(void)pthread_mutex_unlock(&dkim_lock);
			return ret;
		}
	}
	mk = master_key;
	mk_ok = have_master_key;
	(void)pthread_mutex_unlock(&dkim_lock);

	/* not cached: the store (store_lock, never under dkim_lock) and the key directory */
	ret = milter_users_dkim_key(mk_ok ? &mk : NULL, mw_config_str(cfg, MWK_MILTER_DKIM_KEY_DIR),
	                            dom, &key, error_r);
	mw_secret_key_wipe(&mk);
	if (ret == MW_DKIM_LOOKUP_ERROR)
		return ret;

	(void)pthread_mutex_lock(&dkim_lock);
	if (kcache_ttl > 0) {
		if (kcache == NULL)
			kcache = mw_ttlcache_new(KCACHE_BUCKETS, KCACHE_MAX, kcache_value_free);
		key = mw_ttlcache_put(kcache, dom, key, now, now + (int64_t)kcache_ttl);
		ret = use(key, arg, error_r);
		(void)pthread_mutex_unlock(&dkim_lock);
		return ret;
	}
	(void)pthread_mutex_unlock(&dkim_lock);
	ret = use(key, arg, error_r);
	mw_dkim_key_free(&key);
	return ret;
}

/* milter_dkim_signer - a signer for DOMAIN's key (cache, then store and key directory) */
int milter_dkim_signer(const mw_config *cfg, const char *domain, const char *job_id,
                       mw_dkim_signer **signer_r, char *selector_r, size_t selsize,
                       mw_error *error_r)
{
	struct signer_arg a = {cfg, job_id, signer_r, selector_r, selsize};
	*signer_r = NULL;
	return with_key(cfg, domain, make_signer, &a, error_r);
}

struct seal_arg {
	mw_arc_verify *v;
	const char *ar;
	enum mw_auth_result cv;
	bool sign_subject;
	mw_str *as, *ams, *aar;
};

/* make_seal - our ARC set with KEY (dkim_lock held) */
static int make_seal(const mw_dkim_key *key, void *arg, mw_error *error_r)
{
	struct seal_arg *a = arg;
	if (key == NULL)
		return MW_DKIM_LOOKUP_NONE;
	if (mw_arc_seal(a->v, key, a->ar, a->cv, a->sign_subject, (unsigned long)time(NULL), a->as,
	                a->ams, a->aar, error_r) < 0)
		return MW_DKIM_LOOKUP_ERROR;
	return MW_DKIM_LOOKUP_FOUND;
}

/* milter_arc_seal - ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results values for
   the message V saw, with [milter] arc_seal_domain's key; an mw_dkim_lookup value */
int milter_arc_seal(const mw_config *cfg, mw_arc_verify *v, const char *ar, enum mw_auth_result cv,
                    bool sign_subject, mw_str *as_r, mw_str *ams_r, mw_str *aar_r,
                    mw_error *error_r)
{
	struct seal_arg a = {v, ar, cv, sign_subject, as_r, ams_r, aar_r};
	return with_key(cfg, mw_config_str(cfg, MWK_MILTER_ARC_SEAL_DOMAIN), make_seal, &a,
	                error_r);
}

/* milter_dkim_deinit - empty the cache, wipe the master key */
void milter_dkim_deinit(void)
{
	(void)pthread_mutex_lock(&dkim_lock);
	mw_ttlcache_free(&kcache);
	mw_secret_key_wipe(&master_key);
	have_master_key = false;
	(void)pthread_mutex_unlock(&dkim_lock);
	mw_dkim_key_cache_flush();
}
