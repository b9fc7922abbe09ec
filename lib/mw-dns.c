/* mw-dns.c - DNS lookups through libunbound with our own servers and a per-query timeout.
 *
 * Public functions: mw_dns_new, mw_dns_free, mw_dns_query, mw_dns_answer_free,
 * mw_dns_status_str, mw_dns_parse_servers, mw_dns_answer_from_result.
 *
 * One libunbound context forwards every query to the configured servers (or follows
 * /etc/resolv.conf). Queries are asynchronous on libunbound's resolver thread; a caller
 * waits for its own answer with a deadline. Answers are delivered by ub_process(), which
 * only one waiting thread (the "leader") runs at a time under our mutex; the others sleep
 * on a condition variable. A query that times out is cancelled; if its answer is already
 * on its way the query record is marked abandoned and freed by the callback instead.
 *
 * Answers (records, NXDOMAIN, NODATA; never failures) are also kept in a small cache of our
 * own for their TTL (at most DNS_CACHE_MAX_TTL seconds, DNS_CACHE_MAX entries): libunbound
 * caches as well, but asking it costs two thread switches through its pipe per query,
 * several queries per message.
 *
 * Diagnostics: everything comes back through error_r. The one exception, for a daemon that
 * asked for it with mw_dns_watch: when DNS_DEGRADED_AFTER queries in a row get no answer
 * (timeout, the resolver unreachable, SERVFAIL) the component given is degraded
 * (lib/mw-degraded.c logs one event=degraded line), and the next query answered by the
 * resolver (records, NXDOMAIN, NODATA; not a cache hit) ends it. One domain's broken
 * servers rarely fail that many queries in a row; a dead resolver fails every one.
 */
#include "mw-build.h"
#include "mw-dns.h"
#include "mw-degraded.h"
#include "mw-ttlcache.h"

#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <unbound.h>

#define DNS_CACHE_BUCKETS  256
#define DNS_CACHE_MAX      4096
#define DNS_CACHE_MAX_TTL  300
#define DNS_DEGRADED_AFTER 5 /* queries in a row without an answer: the resolver is degraded */

struct mw_dns {
	pthread_mutex_t cache_lock;
	mw_ttlcache *cache; /* "TYPE/name" -> struct mw_dns_answer, expiry in monotonic ms */
	struct ub_ctx *ctx;
	unsigned timeout_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool leader;        /* a thread is polling libunbound's fd */
	int watch;          /* mw_dns_watch's component, -1: none */
	unsigned no_answer; /* queries in a row without an answer (atomic) */
	bool recheck;       /* the first answer after mw_dns_watch ends an older state */
};

struct dns_query {
	bool done;
	bool abandoned;
	int err;
	struct ub_result *result;
};

/* mw_dns_status_str - the status as a short word */
const char *mw_dns_status_str(enum mw_dns_status status)
{
	switch (status) {
	case MW_DNS_OK:
		return "ok";
	case MW_DNS_NXDOMAIN:
		return "nxdomain";
	case MW_DNS_NODATA:
		return "nodata";
	case MW_DNS_TEMPFAIL:
		return "tempfail";
	case MW_DNS_PERMFAIL:
		return "permfail";
	}
	return "?";
}

/* mw_dns_parse_servers - split "A@P, B" into libunbound forwarder strings */
int mw_dns_parse_servers(const char *servers, char out[][64], size_t max, mw_error *error_r)
{
	const char *p = servers;
	size_t n = 0;

	while (*p != '\0') {
		char item[80], addr[64];
		unsigned char buf[16];
		const char *at;
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " \t,");
		if (len >= sizeof(item)) {
			mw_error_set(error_r, "DNS server entry too long");
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		p += len;
		at = strchr(item, '@');
		len = at != NULL ? (size_t)(at - item) : strlen(item);
		if (len >= sizeof(addr)) {
			mw_error_set(error_r, "DNS server address too long");
			return -1;
		}
		memcpy(addr, item, len);
		addr[len] = '\0';
		if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1) {
			mw_error_set(error_r, "DNS server \"%s\" is not an IP address", addr);
			return -1;
		}
		if (at != NULL) {
			char *end;
			unsigned long port;

			errno = 0;
			port = strtoul(at + 1, &end, 10);
			if (at[1] < '0' || at[1] > '9' || *end != '\0' || errno != 0 || port == 0 ||
			    port > 65535) {
				mw_error_set(error_r, "DNS server \"%s\": bad port", addr);
				return -1;
			}
		}
		if (n >= max) {
			mw_error_set(error_r, "more than %zu DNS servers", max);
			return -1;
		}
		if (mw_strlcpy(out[n], item, 64) < 0) {
			mw_error_set(error_r, "DNS server entry too long");
			return -1;
		}
		n++;
	}
	return (int)n;
}

/* cache_value_free - a cached answer */
static void cache_value_free(void *p)
{
	struct mw_dns_answer *ans = p;

	mw_dns_answer_free(ans);
	free(ans);
}

/* mw_dns_new - a resolver context forwarding to SERVERS */
mw_dns *mw_dns_new(const char *servers, unsigned timeout_ms, mw_error *error_r)
{
	char list[MW_DNS_SERVERS_MAX][64];
	int n, i, ret;
	mw_dns *dns;

	if (timeout_ms == 0 || timeout_ms > 600000) {
		mw_error_set(error_r, "DNS timeout out of range");
		return NULL;
	}
	n = mw_dns_parse_servers(servers != NULL ? servers : "", list, MW_DNS_SERVERS_MAX, error_r);
	if (n < 0)
		return NULL;
	dns = mw_calloc(1, sizeof(*dns));
	dns->timeout_ms = timeout_ms;
	dns->watch = -1;
	dns->ctx = ub_ctx_create();
	if (dns->ctx == NULL) {
		mw_error_set(error_r, "ub_ctx_create failed");
		free(dns);
		return NULL;
	}
	/* a thread, not a forked process, answers our asynchronous queries */
	ret = ub_ctx_async(dns->ctx, 1);
	/* forwarders on loopback (a local resolver, the test server) must be usable */
	if (ret == 0)
		ret = ub_ctx_set_option(dns->ctx, "do-not-query-localhost:", "no");
	if (ret == 0 && n == 0)
		ret = ub_ctx_resolvconf(dns->ctx, NULL);
	for (i = 0; ret == 0 && i < n; i++)
		ret = ub_ctx_set_fwd(dns->ctx, list[i]);
	if (ret != 0) {
		mw_error_set(error_r, "libunbound set-up: %s", ub_strerror(ret));
		ub_ctx_delete(dns->ctx);
		free(dns);
		return NULL;
	}
	pthread_mutex_init(&dns->lock, NULL);
	pthread_mutex_init(&dns->cache_lock, NULL);
	dns->cache = mw_ttlcache_new(DNS_CACHE_BUCKETS, DNS_CACHE_MAX, cache_value_free);
	pthread_cond_init(&dns->cond, NULL);
	return dns;
}

/* answer_copy - a deep copy of an answer */
static void answer_copy(struct mw_dns_answer *dst, const struct mw_dns_answer *src)
{
	size_t i;

	*dst = *src;
	for (i = 0; i < src->count; i++) {
		dst->rec[i] = mw_malloc(src->len[i] + 1);
		memcpy(dst->rec[i], src->rec[i], src->len[i]);
		dst->rec[i][src->len[i]] = '\0';
	}
}

/* cache_key - "TYPE/name"; -1 when it does not fit (then nothing is cached) */
static int cache_key(char *key, size_t size, const char *name, int type)
{
	int n = snprintf(key, size, "%d/%s", type, name);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* cache_get - a fresh cached answer for NAME/TYPE into ans_r; false when none */
static bool cache_get(mw_dns *dns, const char *name, int type, struct mw_dns_answer *ans_r)
{
	char key[16 + MW_DNS_NAME_MAX + 1];
	const struct mw_dns_answer *ans;
	bool found = false;

	if (cache_key(key, sizeof(key), name, type) < 0)
		return false;
	pthread_mutex_lock(&dns->cache_lock);
	ans = mw_ttlcache_get(dns->cache, key, mw_mono_ms(), &found);
	if (found)
		answer_copy(ans_r, ans);
	pthread_mutex_unlock(&dns->cache_lock);
	return found;
}

/* cache_put - keep ANS for NAME/TYPE for TTL seconds (capped) */
static void cache_put(mw_dns *dns, const char *name, int type, const struct mw_dns_answer *ans,
                      unsigned ttl)
{
	char key[16 + MW_DNS_NAME_MAX + 1];
	struct mw_dns_answer *copy;
	int64_t now;

	if (ttl == 0 || cache_key(key, sizeof(key), name, type) < 0)
		return;
	if (ttl > DNS_CACHE_MAX_TTL)
		ttl = DNS_CACHE_MAX_TTL;
	copy = mw_malloc(sizeof(*copy));
	answer_copy(copy, ans);
	now = mw_mono_ms();
	pthread_mutex_lock(&dns->cache_lock);
	(void)mw_ttlcache_put(dns->cache, key, copy, now, now + (int64_t)ttl * 1000);
	pthread_mutex_unlock(&dns->cache_lock);
}

/* mw_dns_free - drop the context (no query may be running) */
void mw_dns_free(mw_dns **dnsp)
{
	mw_dns *dns = *dnsp;

	if (dns == NULL)
		return;
	*dnsp = NULL;
	ub_ctx_delete(dns->ctx);
	mw_ttlcache_free(&dns->cache);
	pthread_mutex_destroy(&dns->cache_lock);
	pthread_mutex_destroy(&dns->lock);
	pthread_cond_destroy(&dns->cond);
	free(dns);
}

/* mw_dns_answer_free - free the records of an answer */
void mw_dns_answer_free(struct mw_dns_answer *ans)
{
	size_t i;

	for (i = 0; i < ans->count; i++)
		free(ans->rec[i]);
	memset(ans, 0, sizeof(*ans));
}

/* valid_name - a host name we are willing to ask about (LDH plus '_', no empty labels) */
static bool valid_name(const char *name, size_t *len_r)
{
	size_t len = strlen(name), label = 0, i;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > MW_DNS_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	*len_r = len;
	return true;
}

/* query_done - libunbound callback: hand the result to the waiter (our lock is held) */
static void query_done(void *arg, int err, struct ub_result *result)
{
	struct dns_query *q = arg;

	if (q->abandoned) {
		if (result != NULL)
			ub_resolve_free(result);
		free(q);
		return;
	}
	q->err = err;
	q->result = result;
	q->done = true;
}

/* host_char - a byte a host name label may hold (LDH, and '_' as in valid_name) */
static bool host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* wire_name - a wire-format name (uncompressed) in presentation form, no trailing dot.
   A label byte that presentation form would have to escape ('.', NUL, blanks, anything
   outside LDH and '_') is refused: copied raw, "a.b" as one label reads as two labels and
   a NUL cuts the name short. So is a name longer than MW_DNS_NAME_MAX. */
static int wire_name(const unsigned char *p, size_t len, char *out, size_t outsize)
{
	size_t i = 0, o = 0;

	while (i < len && p[i] != 0) {
		size_t l = p[i++], k;

		if (l > 63 || i + l > len)
			return -1;
		if (o > 0) {
			if (o + 1 >= outsize)
				return -1;
			out[o++] = '.';
		}
		for (k = 0; k < l; k++) {
			if (o + 1 >= outsize || !host_char(p[i + k]))
				return -1;
			out[o++] = (char)p[i + k];
		}
		i += l;
	}
	if (i >= len || o > MW_DNS_NAME_MAX) /* 255 octets on the wire are 253 here */
		return -1;
	out[o] = '\0';
	return 0;
}

/* convert_record - one rdata into our answer form */
static int convert_record(int type, const unsigned char *d, size_t len, struct mw_dns_answer *ans)
{
	size_t n = ans->count;
	char name[MW_DNS_NAME_MAX + 2];

	switch (type) {
	case MW_DNS_A:
	case MW_DNS_AAAA:
		if (len != (type == MW_DNS_A ? 4u : 16u))
			return -1;
		ans->rec[n] = mw_malloc(len);
		memcpy(ans->rec[n], d, len);
		ans->len[n] = len;
		break;
	case MW_DNS_TXT: {
		size_t i = 0, o = 0;

		ans->rec[n] = mw_malloc(len + 1);
		while (i < len) {
			size_t l = d[i++];

			if (i + l > len) {
				free(ans->rec[n]);
				return -1;
			}
			memcpy(ans->rec[n] + o, d + i, l);
			o += l;
			i += l;
		}
		ans->rec[n][o] = '\0';
		ans->len[n] = o;
		break;
	}
	case MW_DNS_MX:
	case MW_DNS_PTR: {
		size_t off = type == MW_DNS_MX ? 2 : 0;

		if (len < off + 1 || wire_name(d + off, len - off, name, sizeof(name)) < 0)
			return -1;
		ans->pref[n] = type == MW_DNS_MX ? (unsigned)(d[0] << 8 | d[1]) : 0;
		ans->rec[n] = mw_strdup(name);
		ans->len[n] = strlen(name);
		break;
	}
	case MW_DNS_SRV: {
		char text[MW_DNS_NAME_MAX + 24];

		if (len < 7 || wire_name(d + 6, len - 6, name, sizeof(name)) < 0)
			return -1;
		(void)snprintf(text, sizeof(text), "%u %u %u %s", (unsigned)(d[0] << 8 | d[1]),
		               (unsigned)(d[2] << 8 | d[3]), (unsigned)(d[4] << 8 | d[5]),
		               name[0] != '\0' ? name : ".");
		ans->pref[n] = (unsigned)(d[0] << 8 | d[1]);
		ans->rec[n] = mw_strdup(text);
		ans->len[n] = strlen(text);
		break;
	}
	default:
		return -1;
	}
	ans->count++;
	return 0;
}

/* mw_dns_answer_from_result - a libunbound result for QNAME and TYPE in our answer form */
enum mw_dns_status mw_dns_answer_from_result(const struct ub_result *r, const char *qname, int type,
                                             struct mw_dns_answer *ans_r, mw_error *error_r)
{
	int i;

	memset(ans_r, 0, sizeof(*ans_r));
	if (r->nxdomain) {
		ans_r->status = MW_DNS_NXDOMAIN;
	} else if (r->rcode != 0) {
		/* SERVFAIL (2) and REFUSED (5) come from a server in trouble: try later */
		ans_r->status = r->rcode == 1 ? MW_DNS_PERMFAIL : MW_DNS_TEMPFAIL;
		mw_error_set(error_r, "DNS query for %s: rcode %d", qname, r->rcode);
	} else if (!r->havedata) {
		ans_r->status = MW_DNS_NODATA;
	} else {
		ans_r->status = MW_DNS_OK;
		ans_r->ttl = r->ttl > 0 ? (unsigned)r->ttl : 0;
		for (i = 0; r->data[i] != NULL; i++) {
			if (ans_r->count >= MW_DNS_MAX_RECORDS ||
			    convert_record(type, (const unsigned char *)r->data[i],
			                   (size_t)r->len[i], ans_r) < 0) {
				mw_dns_answer_free(ans_r);
				ans_r->status = MW_DNS_PERMFAIL;
				mw_error_set(error_r, "DNS answer for %s is corrupt or too large",
				             qname);
				break;
			}
		}
	}
	return ans_r->status;
}

/* wait_for - wait until Q is done or the deadline passes; called and returns with the lock */
static bool wait_for(mw_dns *dns, struct dns_query *q, long long deadline)
{
	while (!q->done) {
		long long left = deadline - mw_mono_ms();

		if (left <= 0)
			return false;
		if (!dns->leader) {
			struct pollfd pfd;
			int ready;

			dns->leader = true;
			pthread_mutex_unlock(&dns->lock);
			pfd.fd = ub_fd(dns->ctx);
			pfd.events = POLLIN;
			ready = poll(&pfd, 1, left > 100 ? 100 : (int)left);
			pthread_mutex_lock(&dns->lock);
			if (ready > 0)
				(void)ub_process(dns->ctx);
			dns->leader = false;
			pthread_cond_broadcast(&dns->cond);
		} else {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			(void)pthread_cond_timedwait(&dns->cond, &dns->lock, &ts);
		}
	}
	return true;
}

/* mw_dns_watch - report the resolver's health as component ID (see the file comment) */
void mw_dns_watch(mw_dns *dns, int id)
{
	dns->watch = id;
	dns->recheck = true; /* a reload's new resolver: the old one's state ends at an answer */
	if (id >= 0)
		mw_degraded_watch((enum mw_degraded_id)id);
}

/* watched - count a query the resolver answered or did not, for mw_dns_watch; STATUS back */
static enum mw_dns_status watched(mw_dns *dns, enum mw_dns_status status, const mw_error *err)
{
	unsigned n;
	if (dns->watch < 0 || status == MW_DNS_PERMFAIL)
		return status;
	if (status != MW_DNS_TEMPFAIL) {
		if (__atomic_exchange_n(&dns->no_answer, 0, __ATOMIC_RELAXED) >=
		        DNS_DEGRADED_AFTER ||
		    __atomic_exchange_n(&dns->recheck, false, __ATOMIC_RELAXED))
			(void)mw_degraded_leave((enum mw_degraded_id)dns->watch,
			                        "the resolver answered a query");
		return status;
	}
	n = __atomic_add_fetch(&dns->no_answer, 1, __ATOMIC_RELAXED);
	if (n == DNS_DEGRADED_AFTER)
		(void)mw_degraded_enter((enum mw_degraded_id)dns->watch, "no_answer",
		                        err != NULL && err->msg[0] != '\0'
		                            ? err->msg
		                            : "queries in a row got no answer");
	return status;
}

/* mw_dns_query - look NAME up; see mw-dns.h */
enum mw_dns_status mw_dns_query(mw_dns *dns, const char *name, int type,
                                struct mw_dns_answer *ans_r, mw_error *error_r)
{
	struct dns_query *q;
	struct ub_result *r;
	size_t len;
	int id = 0, ret, i;
	char qname[MW_DNS_NAME_MAX + 2];

	memset(ans_r, 0, sizeof(*ans_r));
	ans_r->status = MW_DNS_PERMFAIL;
	if (!valid_name(name, &len)) {
		mw_error_set(error_r, "not a valid DNS name");
		return ans_r->status;
	}
	memcpy(qname, name, len);
	qname[len] = '\0';
	for (i = 0; qname[i] != '\0'; i++)
		if (qname[i] >= 'A' && qname[i] <= 'Z')
			qname[i] = (char)(qname[i] - 'A' + 'a');
	if (cache_get(dns, qname, type, ans_r))
		return ans_r->status;

	q = mw_calloc(1, sizeof(*q));
	pthread_mutex_lock(&dns->lock);
	ret = ub_resolve_async(dns->ctx, qname, type, 1 /* IN */, q, query_done, &id);
	if (ret != 0) {
		pthread_mutex_unlock(&dns->lock);
		free(q);
		mw_error_set(error_r, "DNS query for %s: %s", qname, ub_strerror(ret));
		ans_r->status = MW_DNS_TEMPFAIL;
		return ans_r->status;
	}
	if (!wait_for(dns, q, mw_mono_ms() + dns->timeout_ms)) {
		if (ub_cancel(dns->ctx, id) == 0)
			free(q);
		else
			q->abandoned = true; /* the callback frees it */
		pthread_mutex_unlock(&dns->lock);
		mw_error_set(error_r, "DNS query for %s (type %d) timed out after %u ms", qname,
		             type, dns->timeout_ms);
		ans_r->status = MW_DNS_TEMPFAIL;
		return watched(dns, ans_r->status, error_r);
	}
	pthread_mutex_unlock(&dns->lock);

	r = q->result;
	ret = q->err;
	free(q);
	if (ret != 0 || r == NULL) {
		mw_error_set(error_r, "DNS query for %s: %s", qname, ub_strerror(ret));
		if (r != NULL)
			ub_resolve_free(r);
		ans_r->status = MW_DNS_TEMPFAIL;
		return watched(dns, ans_r->status, error_r);
	}
	(void)mw_dns_answer_from_result(r, qname, type, ans_r, error_r);
	if (ans_r->status == MW_DNS_OK || ans_r->status == MW_DNS_NXDOMAIN ||
	    ans_r->status == MW_DNS_NODATA)
		cache_put(dns, qname, type, ans_r, r->ttl > 0 ? (unsigned)r->ttl : 0);
	ub_resolve_free(r);
	return watched(dns, ans_r->status, error_r);
}
