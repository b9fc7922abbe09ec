/* mw-ttlcache.h - a string-keyed hash table whose entries expire: the one cache shape the
   milter's user and DKIM-key caches and the DNS answer cache share. */
#ifndef MW_TTLCACHE_H
#define MW_TTLCACHE_H

#include "mw-util.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct mw_ttlcache mw_ttlcache;

/* A cache of at most max_entries (>= 1) in buckets (>= 1) chains. free_value (NULL: values
   are not freed) frees a value the cache owns. The cache takes no lock: its owner holds
   one around every call. Times are whatever clock the owner passes (mw_mono_s, mw_mono_ms),
   the same for every call. */
mw_ttlcache *mw_ttlcache_new(size_t buckets, size_t max_entries, void (*free_value)(void *));
void mw_ttlcache_free(mw_ttlcache **cachep);

/* The value of key's entry when it is fresh (expires > now): *hit_r true and the value,
   which the cache keeps owning (it may be NULL: a remembered "none"). Otherwise *hit_r
   false and NULL; a stale entry is dropped. */
void *mw_ttlcache_get(mw_ttlcache *cache, const char *key, int64_t now, bool *hit_r);
/* Keeps value (the cache owns it from now on) for key until expires, replacing key's older
   entry. When the cache is full, expired entries are dropped first, and every entry when
   none had expired. Returns the value as stored. */
void *mw_ttlcache_put(mw_ttlcache *cache, const char *key, void *value, int64_t now,
                      int64_t expires);
/* Drops every entry. */
void mw_ttlcache_clear(mw_ttlcache *cache);
/* Entries held (fresh or not yet dropped). */
size_t mw_ttlcache_count(const mw_ttlcache *cache);

#endif
