/* pd-counters.h - rate-limit counter stores for mailwarden-policyd: memory and Redis.
 *
 * Every limit is a GCRA (generic cell rate algorithm) over one key: "limit N per window W"
 * lets N units through at once and then refills continuously at N/W (a token bucket of
 * size N). State per key is one number, the theoretical arrival time (TAT, microseconds):
 *   interval T = W / N (rounded up, at least 1 us), capacity N * T (>= W), request of
 *   cost c at time now:
 *   new_tat = max(tat, now) + c * T;  allowed  <=>  new_tat - now <= N * T
 *   denied: retry_after = new_tat - N * T - now;  usage = ceil((max(tat,now) - now) / T)
 * So N units always fit at once, and the refill is one unit per T (never faster than N/W).
 * A key whose TAT is in the past is the same as an absent key, so stores may expire it.
 * The arithmetic lives in pd_gcra() (pd-counters.c) and, for Redis, in the Lua script,
 * which must compute exactly the same; a unit test feeds both the same sequences.
 *
 * A batch holds all the limits one policy request touches. It is atomic: with commit
 * set, either every limit allows and all are charged, or none is charged.
 * Stores answer through a callback so Redis can be asynchronous on the daemon's
 * libevent loop; the memory store calls back before pd_counters_apply returns.
 */
#ifndef PD_COUNTERS_H
#define PD_COUNTERS_H

#include "mw-store.h"
#include "mw-util.h"

#define PD_COUNTER_KEY_MAX 512
#define PD_BATCH_MAX       32 /* limits per request; more is a configuration error */

struct pd_limit_req {
	char key[PD_COUNTER_KEY_MAX]; /* e.g. "sasl_username:john@example.com:messages:3600:100" */
	int64_t window_us;            /* W */
	int64_t limit;                /* N, > 0 */
	int64_t cost;                 /* units this request adds (0 = check only what is there) */
};

struct pd_limit_res {
	bool allowed;
	int64_t usage;          /* units in use after the operation (before, when denied) */
	int64_t retry_after_us; /* denied: how long until this request would pass */
	int64_t reset_after_us; /* how long until the key is empty again */
};

struct pd_batch_res {
	bool allowed;  /* every limit allowed */
	bool degraded; /* answered from the in-memory fallback (Redis unreachable) */
	size_t count;
	struct pd_limit_res res[PD_BATCH_MAX];
};

typedef void pd_counters_cb(const struct pd_batch_res *res, void *ctx);

struct pd_counters;

struct pd_counters_ops {
	const char *name; /* "memory", "redis" */
	/* commit false: evaluate only (RCPT); true: charge when every limit allows
	   (END-OF-MESSAGE). now_us is the caller's clock (tests fix it). */
	void (*apply)(struct pd_counters *c, const struct pd_limit_req *reqs, size_t n, bool commit,
	              int64_t now_us, pd_counters_cb *cb, void *ctx);
	/* Clears every key starting with prefix; calls back with count = keys cleared. */
	void (*reset)(struct pd_counters *c, const char *prefix, int64_t now_us, pd_counters_cb *cb,
	              void *ctx);
	void (*free)(struct pd_counters *c);
};

struct pd_counters {
	const struct pd_counters_ops *ops;
};

/* The inputs pd_gcra computes exactly (see MW_RATE_COUNT_MAX in mw-store.h): limit
   1..MW_RATE_COUNT_MAX, window 1 us..MW_RATE_WINDOW_MAX s, cost >= 0, now 0..PD_GCRA_NOW_MAX,
   a TAT 0..now + PD_GCRA_SPAN_MAX (no capacity N * T is larger). */
#define PD_GCRA_WINDOW_US_MAX (MW_RATE_WINDOW_MAX * 1000000)
#define PD_GCRA_SPAN_MAX      (PD_GCRA_WINDOW_US_MAX + MW_RATE_COUNT_MAX)
#define PD_GCRA_NOW_MAX       (INT64_MAX / 4)

/* The shared arithmetic: evaluates (and with commit, updates) one TAT. 0; or -1 when an input
   is outside what it computes exactly: then nothing is charged and the request is denied
   (a check that cannot decide refuses), never an overflow. */
int pd_gcra(int64_t *tat_us, const struct pd_limit_req *req, int64_t now_us, bool commit,
            struct pd_limit_res *res_r);

/* In-memory store: a hash table with expiry holding at most max_keys keys (when full,
   expired keys are dropped first, then the keys closest to reset). */
struct pd_counters *pd_counters_memory_new(size_t max_keys);
/* Keys the memory store holds now (tests, status). */
size_t pd_counters_memory_count(struct pd_counters *c);

/* Redis store (redis://host:port/db): one Lua script does a whole batch atomically; a small
   connection pool on the libevent base; when Redis is unreachable the batch is answered by
   fallback (a memory store) with degraded set, and reconnection is retried with backoff.
   timeout_ms bounds each call so Postfix's policy timeout is never reached. */
struct event_base;
struct pd_counters *pd_counters_redis_new(const char *url, struct event_base *base,
                                          struct pd_counters *fallback, unsigned timeout_ms,
                                          mw_error *error_r);

/* Leases (pd-counters-lease.c over the Redis store). One lease request per key: give back
   ret unused units of the previous lease (whose reservation ended at ret_end_us) and ask for
   want_min..want_max units; the script grants 0 when want_min does not fit. */
struct pd_lease_req {
	struct pd_limit_req lim; /* key, window, limit (cost unused) */
	int64_t want_min, want_max;
	int64_t ret, ret_end_us;
};

struct pd_lease_res {
	int64_t granted;
	int64_t base_us; /* max(TAT, now) before the grant: the reservation starts there */
	int64_t tat_us;  /* the key's TAT after the grant */
};

/* ok false: Redis did not answer (res NULL); the caller answers from elsewhere */
typedef void pd_lease_cb(const struct pd_lease_res *res, size_t n, bool ok, void *ctx);

/* pd_counters_redis_lease - one lease batch (n <= PD_BATCH_MAX) through the Redis store's
   script, grouped with the other calls of this loop iteration; cb is always called, maybe
   before this returns (no connection). */
void pd_counters_redis_lease(struct pd_counters *redis, const struct pd_lease_req *reqs, size_t n,
                             int64_t now_us, pd_lease_cb *cb, void *ctx);

/* Lease store: answers from slices of each key's budget leased from the Redis store
   (owned, freed with it); see pd-counters-lease.c for the design and the bound. lease_ms:
   longest life of a lease (a key's own interval W/N when shorter); max_pct: most of a limit
   one lease takes (percent, 1..100); max_keys bounds the lease table. With base set, a timer
   gives back expired leases every LEASE_SWEEP_MS on the wall clock; without (tests),
   pd_counters_lease_sweep does it. */
struct pd_counters *pd_counters_lease_new(struct pd_counters *redis, struct event_base *base,
                                          unsigned lease_ms, unsigned max_pct, size_t max_keys);
/* pd_counters_lease_sweep - give back every lease due at now_us (lease_ms after its grant:
   every lease has expired by then); the number of keys given back */
size_t pd_counters_lease_sweep(struct pd_counters *c, int64_t now_us);
/* Units leased and not spent, over every key (tests, status). */
int64_t pd_counters_lease_units(struct pd_counters *c);
/* Return calls (from the sweep) not answered yet (tests wait for them). */
size_t pd_counters_lease_returns_out(struct pd_counters *c);

#endif
