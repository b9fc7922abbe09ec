/*
 * mw-ttlcache.c - a string-keyed hash table with expiring entries (FNV-1a chains), bounded
 * in entries. Used by the milter's user cache (milter-users.c), its DKIM key cache
 * (milter-dkim.c) and the DNS answer cache (mw-dns.c); each keeps its own lock and clock.
 *
 * Public: mw_ttlcache_new, mw_ttlcache_free, mw_ttlcache_get, mw_ttlcache_put,
 * mw_ttlcache_clear, mw_ttlcache_count.
 *
 * Bounds: never more than max_entries; a put into a full cache first drops what has expired
 * and, when nothing had, everything (a burst of distinct keys costs a refill, never memory).
 *
 * Diagnostics: none; allocation failure aborts (mw_malloc).
 */
#include "mw-build.h"
#include "mw-ttlcache.h"

#include <stdlib.h>
#include <string.h>

struct ttl_entry {
	struct ttl_entry *next;
	void *value;
	int64_t expires;
	char key[]; /* NUL-terminated */
};

struct mw_ttlcache {
	struct ttl_entry **bucket;
	size_t nbuckets, count, max;
	void (*free_value)(void *);
};

/* bucket_of - FNV-1a of key, modulo the bucket count */
static size_t bucket_of(const mw_ttlcache *c, const char *key)
{
	uint32_t h = 2166136261u;
	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % c->nbuckets;
}

/* entry_free - free an entry and the value it owns */
static void entry_free(mw_ttlcache *c, struct ttl_entry *e)
{
	if (c->free_value != NULL && e->value != NULL)
		c->free_value(e->value);
	free(e);
	c->count--;
}

/* mw_ttlcache_new - an empty cache */
mw_ttlcache *mw_ttlcache_new(size_t buckets, size_t max_entries, void (*free_value)(void *))
{
	mw_ttlcache *c = mw_calloc(1, sizeof(*c));
	c->nbuckets = buckets > 0 ? buckets : 1;
	c->max = max_entries > 0 ? max_entries : 1;
	c->bucket = mw_calloc(c->nbuckets, sizeof(*c->bucket));
	c->free_value = free_value;
	return c;
}

/* mw_ttlcache_clear - drop every entry */
void mw_ttlcache_clear(mw_ttlcache *c)
{
	size_t b;
	for (b = 0; b < c->nbuckets; b++) {
		while (c->bucket[b] != NULL) {
			struct ttl_entry *e = c->bucket[b];
			c->bucket[b] = e->next;
			entry_free(c, e);
		}
	}
}

/* mw_ttlcache_free - drop every entry and the cache */
void mw_ttlcache_free(mw_ttlcache **cachep)
{
	mw_ttlcache *c = *cachep;
	if (c == NULL)
		return;
	mw_ttlcache_clear(c);
	free(c->bucket);
	free(c);
	*cachep = NULL;
}

/* mw_ttlcache_get - a fresh entry's value; a stale one is dropped */
void *mw_ttlcache_get(mw_ttlcache *c, const char *key, int64_t now, bool *hit_r)
{
	struct ttl_entry **pp, *e;
	*hit_r = false;
	for (pp = &c->bucket[bucket_of(c, key)]; (e = *pp) != NULL; pp = &e->next) {
		if (strcmp(e->key, key) != 0)
			continue;
		if (e->expires > now) {
			*hit_r = true;
			return e->value;
		}
		*pp = e->next;
		entry_free(c, e);
		break;
	}
	return NULL;
}

/* purge - drop expired entries; everything when none had expired */
static void purge(mw_ttlcache *c, int64_t now)
{
	size_t b, before = c->count;
	for (b = 0; b < c->nbuckets; b++) {
		struct ttl_entry **pp = &c->bucket[b];
		while (*pp != NULL) {
			struct ttl_entry *e = *pp;
			if (e->expires <= now) {
				*pp = e->next;
				entry_free(c, e);
			} else {
				pp = &e->next;
			}
		}
	}
	if (c->count == before)
		mw_ttlcache_clear(c);
}

/* mw_ttlcache_put - keep value for key until expires */
void *mw_ttlcache_put(mw_ttlcache *c, const char *key, void *value, int64_t now, int64_t expires)
{
	size_t b = bucket_of(c, key), klen = strlen(key);
	struct ttl_entry **pp, *e;
	for (pp = &c->bucket[b]; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->key, key) == 0) {
			e = *pp;
			*pp = e->next;
			entry_free(c, e);
			break;
		}
	}
	if (c->count >= c->max)
		purge(c, now);
	e = mw_malloc(sizeof(*e) + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->value = value;
	e->expires = expires;
	e->next = c->bucket[b];
	c->bucket[b] = e;
	c->count++;
	return value;
}

/* mw_ttlcache_count - entries held */
size_t mw_ttlcache_count(const mw_ttlcache *c)
{
	return c->count;
}
