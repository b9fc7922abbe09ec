/* pd-counters.c - the GCRA arithmetic and the in-memory counter store of mailwarden-policyd.
 *
 * pd_gcra() is the one implementation of the window arithmetic described in pd-counters.h;
 * the memory store keeps one TAT per key in a chained hash table that doubles as it fills.
 * Memory stays bounded: at most max_keys keys; every new key sweeps a few buckets and every
 * other operation one, dropping expired keys (TAT in the past, the same as absent), so expiry
 * keeps pace with insertion and idle keys still go away; when the table is full, expired
 * keys are dropped first, then (from a sample of buckets) the key closest to reset.
 *
 * Public: pd_gcra, pd_counters_memory_new (and its ops through struct pd_counters).
 * Diagnostics: none; the memory store cannot fail (allocation failure aborts).
 */
#include "mw-build.h"
#include "pd-counters.h"

#include <stdlib.h>
#include <string.h>

#define SWEEP_BUCKETS 8  /* buckets swept for expired keys on every new key */
#define SWEEP_READ    1  /* ... and on every other operation (each bucket is a cache miss) */
#define EVICT_SAMPLE  64 /* buckets sampled to pick a victim when full */
#define INITIAL_SIZE  1024

struct mem_entry {
	struct mem_entry *next;
	int64_t tat;
	uint64_t hash;
	char key[];
};

struct mem_store {
	struct pd_counters c;
	struct mem_entry **buckets;
	size_t size; /* power of two */
	size_t count, max_keys;
	size_t sweep; /* next bucket to sweep */
};

/* pd_gcra - evaluate one request against a TAT; with commit (and allowed) update the TAT */
int pd_gcra(int64_t *tat_us, const struct pd_limit_req *req, int64_t now_us, bool commit,
            struct pd_limit_res *res_r)
{
	int64_t t, base, new_tat, cap;
	bool overflow = false;
	/* inside these bounds every sum, product and quotient below is exact (mw-store.h) */
	if (req->limit < 1 || req->limit > MW_RATE_COUNT_MAX || req->window_us < 1 ||
	    req->window_us > PD_GCRA_WINDOW_US_MAX || req->cost < 0 || now_us < 0 ||
	    now_us > PD_GCRA_NOW_MAX || *tat_us < 0 || *tat_us - now_us > PD_GCRA_SPAN_MAX) {
		memset(res_r, 0, sizeof(*res_r));
		return -1;
	}
	t = (req->window_us + req->limit - 1) / req->limit;
	base = *tat_us > now_us ? *tat_us : now_us;
	if (t < 1)
		t = 1;
	if (req->cost > 0 && t > (INT64_MAX - base) / req->cost)
		overflow = true;
	new_tat = overflow ? INT64_MAX : base + req->cost * t;
	/* capacity N*T, not W: with T rounded up, W alone would fit only N-1 when N does not
	   divide W */
	cap = req->limit * t;
	memset(res_r, 0, sizeof(*res_r));
	if (!overflow && new_tat - now_us <= cap) {
		res_r->allowed = true;
		res_r->usage = (new_tat - now_us + t - 1) / t;
		res_r->reset_after_us = new_tat - now_us;
		if (commit)
			*tat_us = new_tat;
		return 0;
	}
	res_r->allowed = false;
	res_r->usage = (base - now_us + t - 1) / t;
	res_r->reset_after_us = base - now_us;
	res_r->retry_after_us = overflow ? INT64_MAX : new_tat - cap - now_us;
	return 0;
}

/* key_hash - hash of a key, eight bytes at a time (keys are ~50 bytes; a byte-at-a-time
   hash was a visible part of every request) */
static uint64_t key_hash(const char *key)
{
	size_t len = strlen(key);
	uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15ULL, w;
	while (len >= 8) {
		memcpy(&w, key, 8);
		h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
		h ^= h >> 32;
		key += 8;
		len -= 8;
	}
	if (len > 0) {
		w = 0;
		memcpy(&w, key, len);
		h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
	}
	h ^= h >> 29;
	h *= 0xC4CEB9FE1A85EC53ULL;
	return h ^ (h >> 32);
}

/* mem_find - the entry of key, or NULL */
static struct mem_entry *mem_find(struct mem_store *m, const char *key, uint64_t h)
{
	struct mem_entry *e = m->buckets[h & (m->size - 1)];
	for (; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* sweep_bucket - drop the expired entries of one bucket */
static void sweep_bucket(struct mem_store *m, size_t b, int64_t now)
{
	struct mem_entry **pp = &m->buckets[b];
	while (*pp != NULL) {
		struct mem_entry *e = *pp;
		if (e->tat <= now) {
			*pp = e->next;
			free(e);
			m->count--;
		} else {
			pp = &e->next;
		}
	}
}

/* sweep_some - incremental expiry: a few buckets per operation */
static void sweep_some(struct mem_store *m, size_t n, int64_t now)
{
	size_t i;
	for (i = 0; i < n && i < m->size; i++) {
		sweep_bucket(m, m->sweep, now);
		m->sweep = (m->sweep + 1) & (m->size - 1);
	}
}

/* grow - double the table */
static void grow(struct mem_store *m)
{
	size_t nsize = m->size * 2, i;
	struct mem_entry **nb = mw_calloc(nsize, sizeof(*nb));
	for (i = 0; i < m->size; i++) {
		struct mem_entry *e = m->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (nsize - 1)];
			nb[e->hash & (nsize - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->size = nsize;
	m->sweep = 0;
}

/* evict_one - make room when full: expired keys first, then the sampled key nearest reset */
static void evict_one(struct mem_store *m, int64_t now)
{
	struct mem_entry **victim = NULL, **pp;
	size_t i, b;
	sweep_some(m, EVICT_SAMPLE, now);
	if (m->count < m->max_keys)
		return;
	for (i = 0; i < EVICT_SAMPLE * 16 && (victim == NULL || i < EVICT_SAMPLE); i++) {
		b = (m->sweep + i) & (m->size - 1);
		for (pp = &m->buckets[b]; *pp != NULL; pp = &(*pp)->next)
			if (victim == NULL || (*pp)->tat < (*victim)->tat)
				victim = pp;
	}
	if (victim != NULL) {
		struct mem_entry *e = *victim;
		*victim = e->next;
		free(e);
		m->count--;
	}
}

/* mem_set - store a TAT for key (creating the entry) */
static void mem_set(struct mem_store *m, const char *key, int64_t tat, int64_t now)
{
	uint64_t h = key_hash(key);
	struct mem_entry *e = mem_find(m, key, h);
	size_t len;
	if (e != NULL) {
		e->tat = tat;
		return;
	}
	sweep_some(m, SWEEP_BUCKETS, now);
	if (m->count >= m->max_keys)
		evict_one(m, now);
	if (m->count >= m->size && m->size < ((size_t)1 << 30))
		grow(m);
	len = strlen(key);
	e = mw_malloc(sizeof(*e) + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->tat = tat;
	e->next = m->buckets[h & (m->size - 1)];
	m->buckets[h & (m->size - 1)] = e;
	m->count++;
}

/* mem_apply - evaluate a batch; with commit charge every limit only when all allow */
static void mem_apply(struct pd_counters *c, const struct pd_limit_req *reqs, size_t n, bool commit,
                      int64_t now_us, pd_counters_cb *cb, void *ctx)
{
	struct mem_store *m = (struct mem_store *)c;
	struct pd_batch_res res;
	int64_t tats[PD_BATCH_MAX];
	uint64_t hashes[PD_BATCH_MAX];
	size_t i;
	res.degraded = false;
	res.allowed = true;
	res.count = n > PD_BATCH_MAX ? PD_BATCH_MAX : n;
	/* the buckets are cache misses: start loading them all before walking any */
	for (i = 0; i < res.count; i++) {
		hashes[i] = key_hash(reqs[i].key);
		__builtin_prefetch(&m->buckets[hashes[i] & (m->size - 1)]);
	}
	sweep_some(m, SWEEP_READ, now_us);
	for (i = 0; i < res.count; i++) {
		struct mem_entry *e = mem_find(m, reqs[i].key, hashes[i]);
		tats[i] = e != NULL ? e->tat : 0;
		if (pd_gcra(&tats[i], &reqs[i], now_us, true, &res.res[i]) < 0)
			res.res[i].allowed = false; /* out of range: refused, never charged */
		if (!res.res[i].allowed)
			res.allowed = false;
	}
	if (commit && res.allowed)
		for (i = 0; i < res.count; i++)
			if (reqs[i].cost > 0)
				mem_set(m, reqs[i].key, tats[i], now_us);
	cb(&res, ctx);
}

/* mem_reset - drop every key starting with prefix */
static void mem_reset(struct pd_counters *c, const char *prefix, int64_t now_us, pd_counters_cb *cb,
                      void *ctx)
{
	struct mem_store *m = (struct mem_store *)c;
	struct pd_batch_res res;
	size_t plen = strlen(prefix), i;
	memset(&res, 0, sizeof(res));
	for (i = 0; i < m->size; i++) {
		struct mem_entry **pp = &m->buckets[i];
		while (*pp != NULL) {
			struct mem_entry *e = *pp;
			if (strncmp(e->key, prefix, plen) == 0) {
				if (e->tat > now_us)
					res.count++;
				*pp = e->next;
				free(e);
				m->count--;
			} else {
				pp = &e->next;
			}
		}
	}
	res.allowed = true;
	cb(&res, ctx);
}

/* mem_free - free the table */
static void mem_free(struct pd_counters *c)
{
	struct mem_store *m = (struct mem_store *)c;
	size_t i;
	if (m == NULL)
		return;
	for (i = 0; i < m->size; i++) {
		struct mem_entry *e = m->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->buckets);
	free(m);
}

static const struct pd_counters_ops mem_ops = {
    .name = "memory",
    .apply = mem_apply,
    .reset = mem_reset,
    .free = mem_free,
};

/* pd_counters_memory_new - an empty in-memory store of at most max_keys keys */
struct pd_counters *pd_counters_memory_new(size_t max_keys)
{
	struct mem_store *m = mw_calloc(1, sizeof(*m));
	m->c.ops = &mem_ops;
	m->size = INITIAL_SIZE;
	m->buckets = mw_calloc(m->size, sizeof(*m->buckets));
	m->max_keys = max_keys > 0 ? max_keys : 1;
	return &m->c;
}

/* pd_counters_memory_count - keys held (tests, status) */
size_t pd_counters_memory_count(struct pd_counters *c)
{
	return ((struct mem_store *)c)->count;
}
