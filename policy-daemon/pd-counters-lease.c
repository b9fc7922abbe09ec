/* pd-counters-lease.c - shared Redis counters answered from leased slices of each budget.
 *
 * With counters = redis://..., every policy request used to cost a script call, and
 * redis-server's single thread became the limit of every host together. This store sits in
 * front of the Redis store (pd-counters-redis.c) and asks Redis only for slices: a lease of
 * g units of one key is charged in Redis exactly like a request of cost g (the same GCRA TAT,
 * so leases, exact requests and control-socket status all see one counter), and the host then
 * spends those units from memory until they are gone or the lease expires.
 *
 *   Slice size: a lease asks for want_min = the cost the request needs and want_max =
 *   max(cost, counters_lease_max percent of the limit, at least 1); the script grants a
 *   quarter of what the key has left, clamped to [want_min, want_max], or 0 when want_min
 *   does not fit (the request is refused, as an exact counter would). Near the limit slices
 *   shrink to single units, so hosts hold little unspent budget when it runs out.
 *   Lease life: L = min(counters_lease_ms, T) where T = ceil(W / N), one unit's refill time.
 *   Return: every later call for a key gives back the unspent units of its previous lease in
 *   the same script call, and a timer (every LEASE_SWEEP_MS) gives back expired leases of
 *   idle keys; Redis credits only the part of the returned reservation that still lies in the
 *   future (min(units * T, end - now)), never time that has passed.
 *   A batch stays atomic: it is allowed only when every limit's local units cover its cost,
 *   and only then (with commit) are they taken; leased units a refused batch did not use stay
 *   in the lease.
 *
 * The bound. Exact GCRA admits at most N + X/T units of a key in any period of length X.
 * With leases every unit is charged in Redis before it is spent and spent within L of that
 * charge, so the units spent in a period [a, b] were all charged in [a - L, b]: at most
 * N + (X + L)/T <= N + X/T + 1 units, because L <= T. Across any number of hosts a key
 * therefore admits at most ONE unit more than one exact counter would (for 1000/h: 0.1 %).
 * The other way, units leased and not spent are lost only when they cannot be given back
 * (a host stops, Redis is down at return time: they come back as the key refills) and by
 * at most one unit's refill per return; a lease-holding host that gets no more traffic
 * gives its slice back within L + LEASE_SWEEP_MS.
 *
 * Redis down: units already leased are still spent (they were charged); a batch that needs
 * a new lease goes to the Redis store's exact path, which answers from its in-memory fallback
 * marked degraded (the documented behaviour of counters = redis://), and leases resume by
 * themselves when Redis answers again. Batches of cost 0 (control-socket status) and input
 * outside the store's bounds go to the exact path as well. Clocks: as for the Redis store,
 * now comes from the caller and hosts must keep their clocks synchronised.
 *
 * Public: pd_counters_lease_new, pd_counters_lease_sweep, pd_counters_lease_units (and the
 * store's ops). Diagnostics: none of its own (the Redis store logs degraded/recovered).
 */
#include "mw-build.h"
#include "pd-counters.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define LEASE_SWEEP_MS     250
#define LEASE_INITIAL_SIZE 1024
#define LEASE_SHARE        4 /* the script grants at most avail / LEASE_SHARE (documented) */

struct lease {
	struct lease *next;          /* hash chain */
	struct lease *fprev, *fnext; /* oldest grant first: the sweep order */
	uint64_t hash;
	int64_t window_us, limit; /* of the key (its name ends with them) */
	int64_t units;            /* leased and not spent */
	int64_t end_us;           /* where the reservation of those units ends (return credit) */
	int64_t expires_us;       /* units may be spent before this */
	int64_t since_us;         /* last grant (or creation): FIFO order */
	int64_t tat_us;           /* the key's TAT as last seen (refusal details) */
	int64_t deny_until_us;    /* Redis had no room for deny_cost: refused here until then */
	int64_t deny_cost;
	unsigned inflight; /* lease calls out for this key: the entry stays while > 0 */
	char key[];
};

struct lease_store {
	struct pd_counters c; /* first: the public handle */
	struct pd_counters *redis;
	struct lease **buckets;
	size_t size, count, max_keys;
	struct lease *head, *tail;
	int64_t lease_us;
	unsigned max_pct;
	struct event *sweep_ev;
	size_t returns_out; /* return calls not answered yet */
	bool closing;
};

/* One batch waiting for its lease call. */
struct lease_op {
	struct lease_store *ls;
	struct pd_limit_req reqs[PD_BATCH_MAX];
	struct lease *entry[PD_BATCH_MAX]; /* per limit of the batch; NULL for cost 0 */
	size_t n;
	bool commit;
	int64_t now_us;
	pd_counters_cb *cb;
	void *ctx;
	size_t nl;
	size_t idx[PD_BATCH_MAX]; /* batch index of each lease request */
	unsigned tries;
};

static void lease_apply_try(struct lease_store *ls, const struct pd_limit_req *reqs, size_t n,
                            bool commit, int64_t now_us, pd_counters_cb *cb, void *ctx,
                            unsigned tries);

/* lease_hash - FNV-1a of a key (leases are looked up once or twice per request) */
static uint64_t lease_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 0x100000001b3ULL;
	return h ^ (h >> 31);
}

/* lease_interval - T = ceil(W / N), at least 1 us (as pd_gcra) */
static int64_t lease_interval(const struct pd_limit_req *r)
{
	int64_t t = (r->window_us + r->limit - 1) / r->limit;
	return t < 1 ? 1 : t;
}

/* lease_find - the lease of key, or NULL */
static struct lease *lease_find(struct lease_store *ls, const char *key, uint64_t h)
{
	struct lease *e = ls->buckets[h & (ls->size - 1)];
	for (; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* fifo_unlink - take e out of the sweep order */
static void fifo_unlink(struct lease_store *ls, struct lease *e)
{
	if (e->fprev != NULL)
		e->fprev->fnext = e->fnext;
	else
		ls->head = e->fnext;
	if (e->fnext != NULL)
		e->fnext->fprev = e->fprev;
	else
		ls->tail = e->fprev;
	e->fprev = e->fnext = NULL;
}

/* fifo_append - e is the newest */
static void fifo_append(struct lease_store *ls, struct lease *e, int64_t now_us)
{
	e->since_us = now_us;
	e->fprev = ls->tail;
	e->fnext = NULL;
	if (ls->tail != NULL)
		ls->tail->fnext = e;
	else
		ls->head = e;
	ls->tail = e;
}

/* lease_grow - double the table */
static void lease_grow(struct lease_store *ls)
{
	size_t nsize = ls->size * 2, i;
	struct lease **nb = mw_calloc(nsize, sizeof(*nb));
	for (i = 0; i < ls->size; i++) {
		struct lease *e = ls->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (nsize - 1)];
			nb[e->hash & (nsize - 1)] = e;
		}
	}
	free(ls->buckets);
	ls->buckets = nb;
	ls->size = nsize;
}

/* lease_add - a new, empty lease for key (NULL when the table is full) */
static struct lease *lease_add(struct lease_store *ls, const struct pd_limit_req *r, uint64_t h,
                               int64_t now_us)
{
	const char *key = r->key;
	size_t len = strlen(key);
	struct lease *e;
	if (ls->count >= ls->max_keys)
		return NULL; /* the sweep timer makes room; never here (callers hold entries) */
	if (ls->count >= ls->size && ls->size < ((size_t)1 << 30))
		lease_grow(ls);
	e = mw_calloc(1, sizeof(*e) + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->window_us = r->window_us;
	e->limit = r->limit;
	e->next = ls->buckets[h & (ls->size - 1)];
	ls->buckets[h & (ls->size - 1)] = e;
	ls->count++;
	fifo_append(ls, e, now_us);
	return e;
}

/* lease_remove - drop e from the table (its units are gone: given back or cleared) */
static void lease_remove(struct lease_store *ls, struct lease *e)
{
	struct lease **pp = &ls->buckets[e->hash & (ls->size - 1)];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	fifo_unlink(ls, e);
	ls->count--;
	free(e);
}

/* lease_usable - e covers cost at now */
static bool lease_usable(const struct lease *e, int64_t cost, int64_t now_us)
{
	return e != NULL && e->units >= cost && now_us < e->expires_us;
}

/* lease_slice - the most units one lease of this limit asks for */
static int64_t lease_slice(const struct lease_store *ls, const struct pd_limit_req *r)
{
	int64_t s = r->limit / 100 * ls->max_pct + r->limit % 100 * ls->max_pct / 100;
	if (s < 1)
		s = 1;
	if (s < r->cost)
		s = r->cost;
	return s > r->limit ? r->limit : s;
}

/* lease_low - a usable lease that is nearly spent or nearly expired: renewed together with
   a key of the same batch that needs a lease anyway (one call instead of two soon) */
static bool lease_low(const struct lease_store *ls, const struct lease *e,
                      const struct pd_limit_req *r, int64_t now_us)
{
	int64_t t = lease_interval(r);
	int64_t life = ls->lease_us < t ? ls->lease_us : t;
	return e->units < 2 * r->cost || e->expires_us - now_us < life / 4;
}

/* lease_answer - decide the batch from the local leases; with commit take the units */
static void lease_answer(struct lease_store *ls, const struct pd_limit_req *reqs, size_t n,
                         struct lease *const *entry, bool commit, int64_t now_us,
                         pd_counters_cb *cb, void *ctx)
{
	struct pd_batch_res res;
	bool local[PD_BATCH_MAX], named = false;
	size_t i;
	(void)ls;
	res.degraded = false;
	res.allowed = true;
	res.count = n;
	for (i = 0; i < n; i++) {
		local[i] = reqs[i].cost == 0 || lease_usable(entry[i], reqs[i].cost, now_us);
		if (!local[i])
			res.allowed = false;
	}
	/* a refusal names the limits Redis had no room for (the action text comes from the
	   first refused one), not those that only lacked a lease when another refused */
	for (i = 0; i < n; i++) {
		struct pd_limit_res *r = &res.res[i];
		int64_t tat = entry[i] != NULL ? entry[i]->tat_us : 0;
		memset(r, 0, sizeof(*r));
		r->allowed = true;
		if (local[i])
			continue;
		if (pd_gcra(&tat, &reqs[i], now_us, false, r) < 0)
			memset(r, 0, sizeof(*r));
		r->allowed = !(entry[i] != NULL && now_us < entry[i]->deny_until_us &&
		               reqs[i].cost >= entry[i]->deny_cost);
		if (r->retry_after_us <= 0)
			r->retry_after_us = lease_interval(&reqs[i]);
		if (!r->allowed)
			named = true;
	}
	for (i = 0; i < n && !res.allowed && !named; i++)
		if (!local[i]) /* a race spent them: refuse as what is missing */
			res.res[i].allowed = false;
	if (commit && res.allowed)
		for (i = 0; i < n; i++)
			if (reqs[i].cost > 0)
				entry[i]->units -= reqs[i].cost;
	cb(&res, ctx);
}

/* lease_closing_answer - the store is being freed: refuse, marked degraded */
static void lease_closing_answer(size_t n, pd_counters_cb *cb, void *ctx)
{
	struct pd_batch_res res;
	memset(&res, 0, sizeof(res));
	res.degraded = true;
	res.count = n;
	cb(&res, ctx);
}

/* lease_on_reply - the lease call answered: record the grants, then decide the batch */
static void lease_on_reply(const struct pd_lease_res *res, size_t n, bool ok, void *ctx)
{
	struct lease_op *op = ctx;
	struct lease_store *ls = op->ls;
	size_t j;
	for (j = 0; j < op->nl && j < n; j++) {
		const struct pd_limit_req *r = &op->reqs[op->idx[j]];
		struct lease *e = op->entry[op->idx[j]];
		e->inflight--;
		if (!ok)
			continue;
		e->tat_us = res[j].tat_us;
		if (res[j].granted == 0 && r->cost > 0) {
			/* no room: refuse this cost (or more) here until the TAT says it fits, at
			   most one lease life (another host's return may make room earlier) */
			int64_t t = lease_interval(r);
			int64_t life = ls->lease_us < t ? ls->lease_us : t;
			int64_t fits = res[j].tat_us + r->cost * t - r->limit * t;
			e->deny_cost = r->cost;
			e->deny_until_us = fits < op->now_us + life ? fits : op->now_us + life;
		}
		if (res[j].granted > 0) {
			e->deny_until_us = 0;
			int64_t t = lease_interval(r);
			int64_t life = ls->lease_us < t ? ls->lease_us : t;
			int64_t exp = op->now_us + life, end = res[j].base_us + res[j].granted * t;
			if (e->units > 0 && e->expires_us <= op->now_us)
				e->units = 0; /* a raced grant already expired: never spent later */
			if (e->units > 0) {
				/* merged with a grant that raced this one: the earlier limits hold
				 */
				if (exp > e->expires_us)
					exp = e->expires_us;
				if (end > e->end_us)
					end = e->end_us;
			}
			e->units += res[j].granted;
			e->expires_us = exp;
			e->end_us = end;
			fifo_unlink(ls, e);
			fifo_append(ls, e, op->now_us);
		}
	}
	if (ok && !ls->closing && op->tries < 2) {
		/* a limit that needed no lease when the batch came may have been spent by other
		   requests meanwhile: then lease again rather than refuse */
		size_t i, k;
		bool again = false;
		for (i = 0; i < op->n && !again; i++) {
			bool leased = false;
			if (op->reqs[i].cost == 0 ||
			    lease_usable(op->entry[i], op->reqs[i].cost, op->now_us))
				continue;
			for (k = 0; k < op->nl; k++)
				if (op->idx[k] == i)
					leased = true;
			again = !leased;
		}
		if (again) {
			lease_apply_try(ls, op->reqs, op->n, op->commit, op->now_us, op->cb,
			                op->ctx, op->tries + 1);
			free(op);
			return;
		}
	}
	if (ls->closing)
		lease_closing_answer(op->n, op->cb, op->ctx);
	else if (!ok) /* Redis did not answer: its exact path answers (degraded, from memory) */
		ls->redis->ops->apply(ls->redis, op->reqs, op->n, op->commit, op->now_us, op->cb,
		                      op->ctx);
	else
		lease_answer(ls, op->reqs, op->n, op->entry, op->commit, op->now_us, op->cb,
		             op->ctx);
	free(op);
}

/* lease_valid - input the Redis store takes (anything else goes to its exact path) */
static bool lease_valid(const struct pd_limit_req *reqs, size_t n, bool *any_cost_r)
{
	size_t i;
	*any_cost_r = false;
	if (n == 0 || n > PD_BATCH_MAX)
		return false;
	for (i = 0; i < n; i++) {
		if (memchr(reqs[i].key, '\0', sizeof(reqs[i].key)) == NULL ||
		    reqs[i].window_us <= 0 || reqs[i].window_us > PD_GCRA_WINDOW_US_MAX ||
		    reqs[i].limit <= 0 || reqs[i].limit > MW_RATE_COUNT_MAX || reqs[i].cost < 0 ||
		    reqs[i].cost > reqs[i].limit)
			return false;
		if (reqs[i].cost > 0)
			*any_cost_r = true;
	}
	return true;
}

/* lease_apply - ops->apply: from local leases, asking Redis only for keys that need one */
static void lease_apply(struct pd_counters *c, const struct pd_limit_req *reqs, size_t n,
                        bool commit, int64_t now_us, pd_counters_cb *cb, void *ctx)
{
	lease_apply_try((struct lease_store *)c, reqs, n, commit, now_us, cb, ctx, 0);
}

/* lease_apply_try - lease_apply, tries times again after a race */
static void lease_apply_try(struct lease_store *ls, const struct pd_limit_req *reqs, size_t n,
                            bool commit, int64_t now_us, pd_counters_cb *cb, void *ctx,
                            unsigned tries)
{
	struct lease *entry[PD_BATCH_MAX];
	struct pd_lease_req lreq[PD_BATCH_MAX];
	struct lease_op *op;
	bool any_cost, need = false, refused = false;
	size_t i;
	if (!lease_valid(reqs, n, &any_cost) || !any_cost) {
		/* status (cost 0) reads the exact counter; bad input gets the exact path's checks
		 */
		ls->redis->ops->apply(ls->redis, reqs, n, commit, now_us, cb, ctx);
		return;
	}
	for (i = 0; i < n; i++) {
		entry[i] = NULL;
		if (reqs[i].cost == 0)
			continue;
		entry[i] = lease_find(ls, reqs[i].key, lease_hash(reqs[i].key));
		if (lease_usable(entry[i], reqs[i].cost, now_us))
			continue;
		if (entry[i] != NULL && now_us < entry[i]->deny_until_us &&
		    reqs[i].cost >= entry[i]->deny_cost)
			refused = true; /* Redis said no moments ago: so do we, without asking */
		else
			need = true;
	}
	if (!need || refused) {
		lease_answer(ls, reqs, n, entry, commit, now_us, cb, ctx);
		return;
	}
	op = mw_malloc(sizeof(*op));
	op->nl = 0;
	for (i = 0; i < n; i++) {
		struct pd_lease_req *q;
		if (reqs[i].cost == 0 || (lease_usable(entry[i], reqs[i].cost, now_us) &&
		                          !lease_low(ls, entry[i], &reqs[i], now_us)))
			continue;
		if (entry[i] == NULL)
			entry[i] = lease_add(ls, &reqs[i], lease_hash(reqs[i].key), now_us);
		if (entry[i] == NULL) { /* the lease table is full: the exact path decides */
			size_t j;
			for (j = 0; j < op->nl; j++)
				entry[op->idx[j]]->inflight--;
			free(op);
			ls->redis->ops->apply(ls->redis, reqs, n, commit, now_us, cb, ctx);
			return;
		}
		q = &lreq[op->nl];
		q->lim = reqs[i];
		q->want_min = reqs[i].cost;
		q->want_max = lease_slice(ls, &reqs[i]);
		/* what is left of the previous lease goes back, and a fresh one comes */
		q->ret = entry[i]->units > reqs[i].limit ? reqs[i].limit : entry[i]->units;
		q->ret_end_us = entry[i]->end_us;
		entry[i]->units = 0;
		entry[i]->inflight++;
		op->idx[op->nl++] = i;
	}
	op->ls = ls;
	memcpy(op->reqs, reqs, n * sizeof(*reqs));
	memcpy(op->entry, entry, n * sizeof(*entry));
	op->n = n;
	op->commit = commit;
	op->now_us = now_us;
	op->cb = cb;
	op->ctx = ctx;
	op->tries = tries;
	pd_counters_redis_lease(ls->redis, lreq, op->nl, now_us, lease_on_reply, op);
}

/* lease_return_done - a return call answered (nothing to do: a lost return only wastes) */
static void lease_return_done(const struct pd_lease_res *res, size_t n, bool ok, void *ctx)
{
	struct lease_store *ls = ctx;
	(void)res;
	(void)n;
	(void)ok;
	ls->returns_out--;
}

/* lease_send_returns - one return call of nq leases */
static void lease_send_returns(struct lease_store *ls, const struct pd_lease_req *q, size_t nq,
                               int64_t now_us)
{
	ls->returns_out++;
	pd_counters_redis_lease(ls->redis, q, nq, now_us, lease_return_done, ls);
}

/* pd_counters_lease_sweep - give back the leases due at now_us (oldest grant first; a lease
   is due lease_ms after its grant, when every lease has expired) */
size_t pd_counters_lease_sweep(struct pd_counters *c, int64_t now_us)
{
	struct lease_store *ls = (struct lease_store *)c;
	struct pd_lease_req q[PD_BATCH_MAX];
	size_t nq = 0, returned = 0;
	struct lease *stop = NULL;
	while (ls->head != NULL && ls->head != stop && !ls->closing) {
		struct lease *e = ls->head;
		if (e->since_us + ls->lease_us > now_us)
			break;         /* the oldest is not due: neither are the younger ones */
		if (e->inflight > 0) { /* a call is out: look again later */
			fifo_unlink(ls, e);
			fifo_append(ls, e, e->since_us);
			if (stop == NULL)
				stop = e;
			continue;
		}
		if (e->units > 0) {
			memset(&q[nq], 0, sizeof(q[nq]));
			(void)mw_strlcpy(q[nq].lim.key, e->key, sizeof(q[nq].lim.key));
			q[nq].lim.window_us = e->window_us;
			q[nq].lim.limit = e->limit;
			q[nq].ret = e->units > e->limit ? e->limit : e->units;
			q[nq].ret_end_us = e->end_us;
			nq++;
			returned++;
		}
		lease_remove(ls, e);
		if (nq == PD_BATCH_MAX) {
			lease_send_returns(ls, q, nq, now_us);
			nq = 0;
		}
	}
	if (nq > 0)
		lease_send_returns(ls, q, nq, now_us);
	return returned;
}

/* lease_on_sweep - the timer: give back expired leases on the wall clock */
static void lease_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct timespec ts;
	(void)fd;
	(void)what;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	(void)pd_counters_lease_sweep(arg, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* lease_reset - ops->reset: forget the local leases under prefix, then clear Redis */
static void lease_reset(struct pd_counters *c, const char *prefix, int64_t now_us,
                        pd_counters_cb *cb, void *ctx)
{
	struct lease_store *ls = (struct lease_store *)c;
	size_t plen = strlen(prefix);
	struct lease *e = ls->head, *next;
	for (; e != NULL; e = next) {
		next = e->fnext;
		if (strncmp(e->key, prefix, plen) != 0)
			continue;
		e->units = 0;
		if (e->inflight == 0)
			lease_remove(ls, e);
	}
	ls->redis->ops->reset(ls->redis, prefix, now_us, cb, ctx);
}

/* lease_free - ops->free: the Redis store first (it answers what is in flight), then ours */
static void lease_free(struct pd_counters *c)
{
	struct lease_store *ls = (struct lease_store *)c;
	size_t i;
	if (ls == NULL)
		return;
	ls->closing = true;
	if (ls->sweep_ev != NULL)
		event_free(ls->sweep_ev);
	ls->redis->ops->free(ls->redis);
	for (i = 0; i < ls->size; i++) {
		struct lease *e = ls->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(ls->buckets);
	free(ls);
}

static const struct pd_counters_ops lease_ops = {
    .name = "redis (leases)",
    .apply = lease_apply,
    .reset = lease_reset,
    .free = lease_free,
};

/* pd_counters_lease_new - a lease store over a Redis store (see pd-counters.h) */
struct pd_counters *pd_counters_lease_new(struct pd_counters *redis, struct event_base *base,
                                          unsigned lease_ms, unsigned max_pct, size_t max_keys)
{
	struct lease_store *ls = mw_calloc(1, sizeof(*ls));
	ls->c.ops = &lease_ops;
	ls->redis = redis;
	ls->size = LEASE_INITIAL_SIZE;
	ls->buckets = mw_calloc(ls->size, sizeof(*ls->buckets));
	ls->max_keys = max_keys > 0 ? max_keys : 1;
	ls->lease_us = (int64_t)(lease_ms > 0 ? lease_ms : 1) * 1000;
	ls->max_pct = max_pct < 1 ? 1 : max_pct > 100 ? 100 : max_pct;
	if (base != NULL) {
		struct timeval tv = {0, LEASE_SWEEP_MS * 1000};
		ls->sweep_ev = event_new(base, -1, EV_PERSIST, lease_on_sweep, ls);
		event_add(ls->sweep_ev, &tv);
	}
	return &ls->c;
}

/* pd_counters_lease_units - units leased and not spent, over every key */
int64_t pd_counters_lease_units(struct pd_counters *c)
{
	struct lease_store *ls = (struct lease_store *)c;
	const struct lease *e;
	int64_t sum = 0;
	for (e = ls->head; e != NULL; e = e->fnext)
		sum += e->units;
	return sum;
}

/* pd_counters_lease_returns_out - return calls not answered yet (tests wait for them) */
size_t pd_counters_lease_returns_out(struct pd_counters *c)
{
	return ((struct lease_store *)c)->returns_out;
}
