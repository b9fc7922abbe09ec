/* mw-authcheck.c - inbound message authentication: SPF, DKIM, DMARC, Authentication-Results.
 *
 * Public functions: mw_authcheck_lib_new, mw_authcheck_lib_free, mw_authcheck_lib_dns,
 * mw_authcheck_new, mw_authcheck_free, mw_authcheck_connect, mw_authcheck_mail_from,
 * mw_authcheck_header, mw_authcheck_eoh, mw_authcheck_body, mw_authcheck_eom,
 * mw_dmarc_policy_str, mw_authcheck_format_ar, mw_authcheck_verdict,
 * mw_authcheck_domain_listed, mw_authcheck_ip_in_networks, mw_authcheck_key_cache_stats;
 * and d2i_PUBKEY_bio, OpenSSL's function answered from a cache of parsed DKIM keys.
 *
 * The field's libraries do the work and all of them resolve through mw-dns:
 * - libspf2 through an SPF_dns_server_t layer whose lookup asks mw_dns_query; a
 *   temporary failure becomes TRY_AGAIN, which libspf2 reports as temperror. libspf2 gives
 *   loopback clients a free "pass"; we report that as "none" (nothing was checked).
 * - libopendkim through dkim_set_key_lookup: our callback fetches the key TXT record and
 *   remembers per signature whether the lookup failed temporarily, so such a signature is
 *   reported as temperror (never pass, never a plain fail). The key it parses from that
 *   record comes from a cache of parsed keys keyed by the key's bytes (d2i_PUBKEY_bio below).
 * - libopendmarc gets the DMARC record we fetched (opendmarc_policy_store_dmarc), the From
 *   domain, and the SPF and DKIM outcomes; it decides alignment (relaxed alignment with the
 *   public suffix list loaded into it) and the policy to apply. The organisational domain for
 *   the fallback record lookup comes from libpsl.
 * Per process: the resolver (with its answer cache), libopendkim's handle, a pool of libspf2
 * servers (one per concurrent check, reused) and the parsed-key cache. Per message: one
 * context with the libopendkim handle and a scratch buffer reused for every header field.
 *
 * Diagnostics: functions that can fail return -1 with error_r; the results carry short
 * reasons. Nothing is logged here (the milter logs the decision).
 */
#include "mw-build.h"
#include "mw-authcheck.h"
#include "mw-net.h"
#include "mw-addr.h"
#include "mw-dmarc.h"
#include "mw-arc.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <opendkim/dkim.h>
#include <opendmarc/dmarc.h>
#include <libpsl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define DEFAULT_PSL_FILE "/usr/share/publicsuffix/public_suffix_list.dat"
#define MAX_FROM_HEADERS 2 /* we only need to know whether there is more than one */
#define MAX_KEYREC       (MW_AUTH_MAX_SIGS * 2)
#define DMARC_RECORD_MAX 1024

/* a libspf2 server with its DNS layer, kept for reuse (see spf_server_get) */
struct spf_slot {
	struct spf_slot *next;
	SPF_dns_server_t layer; /* our libspf2 layer: destroy == NULL, never freed by it */
	SPF_server_t *server;
};

struct mw_authcheck_lib {
	mw_dns *dns;
	DKIM_LIB *dkim;
	psl_ctx_t *psl;
	bool dmarc_rfc7489;
	bool want_org_domain;
	char *arc_trusted;
	pthread_mutex_t spf_lock;
	struct spf_slot *spf_free; /* idle servers, one per concurrent check at most */
};

/* what the key lookup callback saw for one signature */
struct keyrec {
	const DKIM_SIGINFO *sig;
	enum mw_dns_status status;
};

struct mw_authcheck {
	mw_authcheck_lib *lib;
	char client_ip[INET6_ADDRSTRLEN];
	bool ipv6;
	char helo[MW_DNS_NAME_MAX + 1];
	struct mw_addr mail_from;
	bool have_mail_from;

	unsigned spf_tempfails; /* lookups of the running SPF check that failed temporarily */

	DKIM *dkim;
	bool dkim_off;     /* no signature, or libopendkim refused the message */
	bool dkim_eoh_err; /* signatures, but dkim_eoh failed (e.g. key lookup): skip eom */
	int dkim_eoh_status;
	size_t headers, header_bytes;
	char *from_value[MAX_FROM_HEADERS];
	size_t from_headers;
	char *sender_value; /* the first Sender: */
	size_t sender_headers;
	struct keyrec keyrec[MAX_KEYREC];
	size_t nkeyrec;
	mw_str field; /* scratch for one header field in DKIM's form, reused per field */
	mw_arc_verify *arc;

	struct mw_auth_results res;
	bool done;
};

static pthread_mutex_t dmarc_init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool dmarc_initialised; /* libopendmarc has one global TLD table per process */

/* mw_dmarc_policy_str - the policy as written in a DMARC record */
const char *mw_dmarc_policy_str(enum mw_dmarc_policy p)
{
	switch (p) {
	case MW_DMARC_POLICY_NONE:
		return "none";
	case MW_DMARC_POLICY_QUARANTINE:
		return "quarantine";
	case MW_DMARC_POLICY_REJECT:
		return "reject";
	case MW_DMARC_POLICY_ABSENT:
		break;
	}
	return "absent";
}

/* ---- libspf2 DNS layer ------------------------------------------------------------- */

/* spf_dns_lookup - libspf2 lookup through mw_dns_query */
static SPF_dns_rr_t *spf_dns_lookup(SPF_dns_server_t *server, const char *domain, ns_type type,
                                    int should_cache)
{
	mw_authcheck *ac = server->hook;
	struct mw_dns_answer ans;
	SPF_dns_rr_t *rr;
	size_t i;
	int herr;

	(void)should_cache;
	if (type != ns_t_a && type != ns_t_aaaa && type != ns_t_mx && type != ns_t_txt &&
	    type != ns_t_ptr)
		return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
	switch (mw_dns_query(ac->lib->dns, domain, (int)type, &ans, NULL)) {
	case MW_DNS_OK:
		herr = NETDB_SUCCESS;
		break;
	case MW_DNS_NXDOMAIN:
		herr = HOST_NOT_FOUND;
		break;
	case MW_DNS_NODATA:
		herr = NO_DATA;
		break;
	case MW_DNS_TEMPFAIL:
		herr = TRY_AGAIN;
		ac->spf_tempfails++;
		break;
	case MW_DNS_PERMFAIL:
	default:
		herr = NO_RECOVERY;
		break;
	}
	rr = SPF_dns_rr_new_init(server, domain, type, (int)ans.ttl, herr);
	if (rr == NULL) {
		mw_dns_answer_free(&ans);
		return NULL;
	}
	for (i = 0; herr == NETDB_SUCCESS && i < ans.count; i++) {
		size_t need = (type == ns_t_a || type == ns_t_aaaa) ? ans.len[i] : ans.len[i] + 1;

		if (SPF_dns_rr_buf_realloc(rr, (int)i, need) != SPF_E_SUCCESS) {
			rr->herrno = NO_RECOVERY;
			break;
		}
		if (type == ns_t_a)
			memcpy(&rr->rr[i]->a, ans.rec[i], 4);
		else if (type == ns_t_aaaa)
			memcpy(&rr->rr[i]->aaaa, ans.rec[i], 16);
		else
			memcpy(rr->rr[i]->txt, ans.rec[i], ans.len[i] + 1);
		rr->num_rr = (int)i + 1;
	}
	mw_dns_answer_free(&ans);
	return rr;
}

/* spf_server_get - an idle libspf2 server of LIB (made when none is idle) for AC's check */
static struct spf_slot *spf_server_get(mw_authcheck *ac)
{
	mw_authcheck_lib *lib = ac->lib;
	struct spf_slot *slot;

	pthread_mutex_lock(&lib->spf_lock);
	slot = lib->spf_free;
	if (slot != NULL)
		lib->spf_free = slot->next;
	pthread_mutex_unlock(&lib->spf_lock);
	if (slot == NULL) {
		/* a server holds only its settings (explanation, local policy, limits): one per
		   concurrent check serves every message, instead of one made per check */
		slot = mw_calloc(1, sizeof(*slot));
		slot->layer.destroy = NULL;
		slot->layer.lookup = spf_dns_lookup;
		slot->layer.layer_below = NULL;
		slot->layer.name = "mailwarden";
		slot->server = SPF_server_new_dns(&slot->layer, 0);
		if (slot->server == NULL) {
			free(slot);
			return NULL;
		}
	}
	slot->next = NULL;
	slot->layer.hook = ac;
	return slot;
}

/* spf_server_put - SLOT is idle again */
static void spf_server_put(mw_authcheck_lib *lib, struct spf_slot *slot)
{
	slot->layer.hook = NULL;
	pthread_mutex_lock(&lib->spf_lock);
	slot->next = lib->spf_free;
	lib->spf_free = slot;
	pthread_mutex_unlock(&lib->spf_lock);
}

/* ---- parsed DKIM public keys ------------------------------------------------------- */

/* libopendkim turns a key record's p= into an EVP_PKEY with d2i_PUBKEY_bio() for every
 * signature it verifies, and OpenSSL 3's decoder (provider look-ups under read-write locks,
 * then a legacy RSA copy and a fresh Montgomery set-up per key) costs several times the RSA
 * verification itself. libopendkim has no hook to hand it a parsed key, so the program
 * defines d2i_PUBKEY_bio itself: the dynamic linker binds libopendkim's call to this
 * definition (as it does for malloc), which answers from a cache of keys parsed before and
 * hands everything else to OpenSSL's own function.
 *
 * The cache is keyed by the key's bytes, not by selector: a key that was rotated or revoked
 * in DNS comes back as other bytes (or as no key, when libopendkim never calls us), so it can
 * never be answered with a key that DNS no longer publishes. How long a key record is
 * believed is the DNS answer cache's business (mw-dns: its TTL, capped; failures are never
 * cached). Only keys that parsed are kept; a call with a caller's EVP_PKEY, a BIO other than
 * a memory buffer, an oversized input, or any call in a process without a live
 * mw_authcheck_lib (mailwardenctl, the API...) goes straight to OpenSSL. The keys handed out are
 * shared (counted references): libopendkim only reads them. */

#define PKEY_CACHE_MAX 256
#define PKEY_DER_MAX   4096 /* a DER public key above this is not cached (RSA-16384 fits) */

struct pkey_entry {
	uint64_t hash;
	size_t len;      /* of der */
	size_t consumed; /* bytes OpenSSL read from the BIO for it */
	EVP_PKEY *pkey;
	unsigned long long used; /* pkey_tick of the last hit, for eviction */
	unsigned char der[];
};

typedef EVP_PKEY *d2i_pubkey_bio_fn(BIO *bp, EVP_PKEY **a);

static pthread_mutex_t pkey_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pkey_entry *pkey_cache[PKEY_CACHE_MAX];
static size_t pkey_count;
static unsigned long long pkey_tick;
static unsigned long pkey_hits, pkey_misses;
static size_t lib_count; /* live mw_authcheck_lib: the last one empties the cache */
static pthread_once_t pkey_once = PTHREAD_ONCE_INIT;
static d2i_pubkey_bio_fn *pkey_real;

/* pkey_find_real - OpenSSL's d2i_PUBKEY_bio, the next definition after ours */
static void pkey_find_real(void)
{
	void *sym = dlsym(RTLD_NEXT, "d2i_PUBKEY_bio");

	/* converting a data pointer to a function pointer is how dlsym is used (POSIX) */
	memcpy(&pkey_real, &sym, sizeof(pkey_real));
	if (pkey_real == d2i_PUBKEY_bio)
		pkey_real = NULL;
}

/* pkey_hash - FNV-1a over the key bytes */
static uint64_t pkey_hash(const unsigned char *p, size_t len)
{
	uint64_t h = 14695981039346656037ull;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* pkey_cache_get - a counted reference to the key parsed from exactly DER, or NULL */
static EVP_PKEY *pkey_cache_get(const unsigned char *der, size_t len, uint64_t hash,
                                size_t *consumed_r)
{
	EVP_PKEY *pkey = NULL;
	size_t i;

	pthread_mutex_lock(&pkey_lock);
	for (i = 0; i < pkey_count; i++) {
		struct pkey_entry *e = pkey_cache[i];

		if (e->hash == hash && e->len == len && memcmp(e->der, der, len) == 0) {
			if (EVP_PKEY_up_ref(e->pkey) == 1) {
				pkey = e->pkey;
				*consumed_r = e->consumed;
				e->used = ++pkey_tick;
			}
			break;
		}
	}
	if (pkey != NULL)
		pkey_hits++;
	else
		pkey_misses++;
	pthread_mutex_unlock(&pkey_lock);
	return pkey;
}

/* pkey_cache_put - remember PKEY (one more reference taken) as parsed from DER */
static void pkey_cache_put(const unsigned char *der, size_t len, uint64_t hash, size_t consumed,
                           EVP_PKEY *pkey)
{
	struct pkey_entry *e, *old = NULL;
	size_t i, slot;

	if (EVP_PKEY_up_ref(pkey) != 1)
		return;
	e = mw_malloc(sizeof(*e) + len);
	e->hash = hash;
	e->len = len;
	e->consumed = consumed;
	e->pkey = pkey;
	memcpy(e->der, der, len);
	pthread_mutex_lock(&pkey_lock);
	e->used = ++pkey_tick;
	for (i = 0; i < pkey_count; i++) {
		if (pkey_cache[i]->hash == hash && pkey_cache[i]->len == len &&
		    memcmp(pkey_cache[i]->der, der, len) == 0)
			break; /* another thread parsed the same key meanwhile */
	}
	if (i < pkey_count) {
		old = e;
	} else if (pkey_count < PKEY_CACHE_MAX) {
		pkey_cache[pkey_count++] = e;
	} else {
		/* full: the least recently used key goes */
		for (slot = 0, i = 1; i < pkey_count; i++)
			if (pkey_cache[i]->used < pkey_cache[slot]->used)
				slot = i;
		old = pkey_cache[slot];
		pkey_cache[slot] = e;
	}
	pthread_mutex_unlock(&pkey_lock);
	if (old != NULL) {
		EVP_PKEY_free(old->pkey);
		free(old);
	}
}

/* pkey_cache_clear - drop every cached key */
static void pkey_cache_clear(void)
{
	size_t i;

	pthread_mutex_lock(&pkey_lock);
	for (i = 0; i < pkey_count; i++) {
		EVP_PKEY_free(pkey_cache[i]->pkey);
		free(pkey_cache[i]);
		pkey_cache[i] = NULL;
	}
	pkey_count = 0;
	pthread_mutex_unlock(&pkey_lock);
}

/* d2i_PUBKEY_bio - OpenSSL's function, answered from the key cache when it can be */
EVP_PKEY *d2i_PUBKEY_bio(BIO *bp, EVP_PKEY **a)
{
	unsigned char der[PKEY_DER_MAX];
	const char *data = NULL;
	size_t len, consumed = 0;
	uint64_t hash;
	EVP_PKEY *pkey;
	long n;

	(void)pthread_once(&pkey_once, pkey_find_real);
	if (pkey_real == NULL)
		return NULL; /* libcrypto is linked in: cannot happen */
	/* only in a process that verifies DKIM (an mw_authcheck_lib is alive) */
	if (a != NULL || bp == NULL || BIO_method_type(bp) != BIO_TYPE_MEM ||
	    __atomic_load_n(&lib_count, __ATOMIC_RELAXED) == 0)
		return pkey_real(bp, a);
	n = BIO_get_mem_data(bp, (char **)&data);
	if (n <= 0 || n > PKEY_DER_MAX || data == NULL)
		return pkey_real(bp, a);
	len = (size_t)n;
	memcpy(der, data, len);
	hash = pkey_hash(der, len);
	pkey = pkey_cache_get(der, len, hash, &consumed);
	if (pkey != NULL) {
		/* leave the BIO where OpenSSL would have left it */
		if (consumed > 0 && BIO_read(bp, der, (int)consumed) != (int)consumed) {
			EVP_PKEY_free(pkey);
			return NULL;
		}
		return pkey;
	}
	pkey = pkey_real(bp, NULL);
	if (pkey != NULL) {
		n = BIO_get_mem_data(bp, (char **)&data);
		if (n >= 0 && (size_t)n <= len)
			pkey_cache_put(der, len, hash, len - (size_t)n, pkey);
	}
	return pkey;
}

/* mw_authcheck_key_cache_stats - hits and misses of the parsed-key cache so far */
void mw_authcheck_key_cache_stats(unsigned long *hits_r, unsigned long *misses_r, size_t *entries_r)
{
	pthread_mutex_lock(&pkey_lock);
	*hits_r = pkey_hits;
	*misses_r = pkey_misses;
	*entries_r = pkey_count;
	pthread_mutex_unlock(&pkey_lock);
}

/* ---- libopendkim key lookup ---------------------------------------------------------- */

/* dkim_key_lookup - fetch SELECTOR._domainkey.DOMAIN TXT for libopendkim */
static DKIM_CBSTAT dkim_key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	mw_authcheck *ac = dkim_get_user_context(dkim);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	struct mw_dns_answer ans;
	enum mw_dns_status st;
	char name[MW_DNS_NAME_MAX + 2];
	size_t sl, dl;
	DKIM_CBSTAT ret;

	if (ac == NULL || sel == NULL || dom == NULL)
		return DKIM_CBSTAT_ERROR;
	sl = strlen(sel);
	dl = strlen(dom);
	if (sl + dl + sizeof("._domainkey.") - 1 > MW_DNS_NAME_MAX + 1)
		return DKIM_CBSTAT_NOTFOUND; /* as before: a name too long to ask about */
	memcpy(name, sel, sl);
	memcpy(name + sl, "._domainkey.", sizeof("._domainkey.") - 1);
	memcpy(name + sl + sizeof("._domainkey.") - 1, dom, dl + 1);
	st = mw_dns_query(ac->lib->dns, name, MW_DNS_TXT, &ans, NULL);
	if (ac->nkeyrec < MAX_KEYREC) {
		ac->keyrec[ac->nkeyrec].sig = sig;
		ac->keyrec[ac->nkeyrec].status = st;
		ac->nkeyrec++;
	}
	switch (st) {
	case MW_DNS_OK:
		/* RFC 6376 3.6.2.2: more than one key record is ambiguous; use the first */
		if (ans.len[0] + 1 > buflen || memchr(ans.rec[0], '\0', ans.len[0]) != NULL) {
			ret = DKIM_CBSTAT_ERROR;
			break;
		}
		memcpy(buf, ans.rec[0], ans.len[0] + 1);
		ret = DKIM_CBSTAT_CONTINUE;
		break;
	case MW_DNS_NXDOMAIN:
	case MW_DNS_NODATA:
		ret = DKIM_CBSTAT_NOTFOUND;
		break;
	case MW_DNS_TEMPFAIL:
		ret = DKIM_CBSTAT_TRYAGAIN;
		break;
	case MW_DNS_PERMFAIL:
	default:
		ret = DKIM_CBSTAT_ERROR;
		break;
	}
	mw_dns_answer_free(&ans);
	return ret;
}

/* ---- library ----------------------------------------------------------------------- */

/* mw_authcheck_lib_new - resolver, libopendkim handle, libopendmarc and libpsl set-up */
mw_authcheck_lib *mw_authcheck_lib_new(const struct mw_authcheck_settings *s, mw_error *error_r)
{
	mw_authcheck_lib *lib = mw_calloc(1, sizeof(*lib));
	const char *psl_file = s->psl_file != NULL ? s->psl_file : DEFAULT_PSL_FILE;

	lib->dns = mw_dns_new(s->dns_servers, s->dns_timeout_ms, error_r);
	if (lib->dns == NULL) {
		free(lib);
		return NULL;
	}
	lib->dkim = dkim_init(NULL, NULL);
	if (lib->dkim == NULL) {
		mw_error_set(error_r, "dkim_init failed");
		mw_dns_free(&lib->dns);
		free(lib);
		return NULL;
	}
	(void)dkim_set_key_lookup(lib->dkim, dkim_key_lookup);
	pthread_mutex_init(&lib->spf_lock, NULL);
	pthread_mutex_lock(&pkey_lock);
	__atomic_add_fetch(&lib_count, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&pkey_lock);

	lib->dmarc_rfc7489 = s->dmarc_rfc7489;
	lib->want_org_domain = s->want_org_domain;
	lib->arc_trusted = mw_strdup(s->arc_trusted != NULL ? s->arc_trusted : "");
	lib->psl = psl_latest(NULL);
	if (lib->psl == NULL)
		lib->psl = (psl_ctx_t *)psl_builtin();

	pthread_mutex_lock(&dmarc_init_lock);
	if (!dmarc_initialised) {
		OPENDMARC_LIB_T init;

		memset(&init, 0, sizeof(init));
		init.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
		if (access(psl_file, R_OK) == 0)
			(void)mw_strlcpy((char *)init.tld_source_file, psl_file,
			                 sizeof(init.tld_source_file));
		if (opendmarc_policy_library_init(&init) != DMARC_PARSE_OKAY) {
			pthread_mutex_unlock(&dmarc_init_lock);
			mw_error_set(error_r, "opendmarc_policy_library_init(%s) failed", psl_file);
			mw_authcheck_lib_free(&lib);
			return NULL;
		}
		dmarc_initialised = true;
	}
	pthread_mutex_unlock(&dmarc_init_lock);
	return lib;
}

/* mw_authcheck_lib_free - release the process-wide state */
void mw_authcheck_lib_free(mw_authcheck_lib **libp)
{
	mw_authcheck_lib *lib = *libp;

	if (lib == NULL)
		return;
	*libp = NULL;
	if (lib->dkim != NULL) {
		bool last;

		dkim_close(lib->dkim);
		while (lib->spf_free != NULL) {
			struct spf_slot *slot = lib->spf_free;

			lib->spf_free = slot->next;
			SPF_server_free(slot->server);
			free(slot);
		}
		pthread_mutex_destroy(&lib->spf_lock);
		pthread_mutex_lock(&pkey_lock);
		last = __atomic_sub_fetch(&lib_count, 1, __ATOMIC_RELAXED) == 0;
		pthread_mutex_unlock(&pkey_lock);
		if (last)
			pkey_cache_clear();
	}
	if (lib->psl != NULL && lib->psl != psl_builtin())
		psl_free(lib->psl);
	free(lib->arc_trusted);
	mw_dns_free(&lib->dns);
	free(lib);
}

/* mw_authcheck_lib_dns - the shared resolver */
mw_dns *mw_authcheck_lib_dns(mw_authcheck_lib *lib)
{
	return lib->dns;
}

/* ---- per message ------------------------------------------------------------------- */

/* mw_authcheck_new - a message context */
mw_authcheck *mw_authcheck_new(mw_authcheck_lib *lib)
{
	mw_authcheck *ac = mw_calloc(1, sizeof(*ac));
	DKIM_STAT st;

	ac->lib = lib;
	mw_str_init(&ac->field, 0);
	ac->arc = mw_arc_verify_new();
	ac->dkim = dkim_verify(lib->dkim, (const unsigned char *)"mailwarden", NULL, &st);
	if (ac->dkim == NULL)
		ac->dkim_off = true;
	else
		(void)dkim_set_user_context(ac->dkim, ac);
	return ac;
}

/* mw_authcheck_free - free a message context */
void mw_authcheck_free(mw_authcheck **acp)
{
	mw_authcheck *ac = *acp;
	size_t i;

	if (ac == NULL)
		return;
	*acp = NULL;
	if (ac->dkim != NULL)
		dkim_free(ac->dkim);
	for (i = 0; i < ac->from_headers && i < MAX_FROM_HEADERS; i++)
		free(ac->from_value[i]);
	free(ac->sender_value);
	mw_arc_verify_free(&ac->arc);
	mw_str_free(&ac->field);
	free(ac);
}

/* mw_authcheck_connect - the client's address and HELO name */
int mw_authcheck_connect(mw_authcheck *ac, const char *client_ip, const char *helo,
                         mw_error *error_r)
{
	unsigned char buf[16];

	if (client_ip == NULL || mw_strlcpy(ac->client_ip, client_ip, sizeof(ac->client_ip)) < 0) {
		mw_error_set(error_r, "client address too long");
		return -1;
	}
	if (inet_pton(AF_INET, client_ip, buf) == 1) {
		ac->ipv6 = false;
	} else if (inet_pton(AF_INET6, client_ip, buf) == 1) {
		ac->ipv6 = true;
	} else {
		ac->client_ip[0] = '\0';
		mw_error_set(error_r, "client address is not an IP address");
		return -1;
	}
	(void)mw_strlcpy(ac->res.client_ip, ac->client_ip, sizeof(ac->res.client_ip));
	ac->helo[0] = '\0';
	if (helo != NULL && *helo != '\0' &&
	    mw_addr_domain_normalize(helo, strlen(helo), ac->helo, sizeof(ac->helo), NULL) < 0)
		ac->helo[0] = '\0'; /* an address literal or junk: no HELO identity to check */
	return 0;
}

/* envelope_fallback - an envelope sender that does not parse: still learn its domain, so
   the verdict can refuse a local domain claimed this way (SPF never ran on it) */
static void envelope_fallback(mw_authcheck *ac, const char *addr)
{
	struct mw_auth_results *res = &ac->res;
	const char *at = strrchr(addr, '@');
	size_t len;

	res->envelope_invalid = true;
	res->envelope_domain[0] = '\0';
	if (at == NULL)
		return;
	at++;
	len = strlen(at);
	if (len > 0 && at[len - 1] == '>')
		len--;
	if (mw_addr_domain_normalize(at, len, res->envelope_domain, sizeof(res->envelope_domain),
	                             NULL) < 0)
		res->envelope_domain[0] = '\0';
}

/* mw_authcheck_mail_from - the envelope sender */
int mw_authcheck_mail_from(mw_authcheck *ac, const char *addr, mw_error *error_r)
{
	if (mw_addr_parse_envelope(addr, strlen(addr), true, &ac->mail_from, error_r) < 0) {
		ac->have_mail_from = false;
		envelope_fallback(ac, addr);
		return -1;
	}
	ac->res.envelope_invalid = false;
	ac->res.envelope_domain[0] = '\0';
	ac->have_mail_from = true;
	return 0;
}

/* crlf_copy - NAME ":" VALUE with every bare LF turned into CRLF */
static void crlf_copy(mw_str *out, const char *name, const char *value, size_t len)
{
	size_t i, start = 0;

	(void)mw_str_appends(out, name);
	(void)mw_str_appendc(out, ':');
	/* copy the runs between bare LFs in one piece each */
	for (i = 0; i < len; i++) {
		if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r')) {
			(void)mw_str_append(out, value + start, i - start);
			(void)mw_str_appendc(out, '\r');
			start = i;
		}
	}
	(void)mw_str_append(out, value + start, len - start);
}

/* mw_authcheck_header - one header field, in order */
int mw_authcheck_header(mw_authcheck *ac, const char *name, const char *value, size_t len,
                        mw_error *error_r)
{
	size_t nlen = strlen(name), total = nlen + 1 + len;

	if (nlen == 0 || total > MW_AUTH_MAX_HEADER_LEN) {
		mw_error_set(error_r, "header field too long (%zu bytes, limit %d)", total,
		             MW_AUTH_MAX_HEADER_LEN);
		return -1;
	}
	if (++ac->headers > MW_AUTH_MAX_HEADERS ||
	    (ac->header_bytes += total) > MW_AUTH_MAX_HEADERS_TOTAL) {
		mw_error_set(error_r, "too many header fields or bytes (limits %d, %d)",
		             MW_AUTH_MAX_HEADERS, MW_AUTH_MAX_HEADERS_TOTAL);
		return -1;
	}
	if (mw_addr_header_name_is(name, "From")) {
		if (ac->from_headers < MAX_FROM_HEADERS)
			ac->from_value[ac->from_headers] = mw_strndup(value, len);
		ac->from_headers++;
	} else if (mw_addr_header_name_is(name, "Sender")) {
		if (ac->sender_headers++ == 0)
			ac->sender_value = mw_strndup(value, len);
	}
	(void)mw_arc_verify_header(ac->arc, name, value, len); /* over its limit: arc=fail */
	if (ac->dkim_off)
		return 0;
	mw_str_reset(&ac->field);
	crlf_copy(&ac->field, name, value, len);
	if (dkim_header(ac->dkim, (u_char *)ac->field.buf, ac->field.len) != DKIM_STAT_OK)
		ac->dkim_off = true; /* reported as no verifiable signature */
	return 0;
}

/* mw_authcheck_eoh - end of the header */
void mw_authcheck_eoh(mw_authcheck *ac)
{
	DKIM_STAT st;

	mw_arc_verify_eoh(ac->arc);
	if (ac->dkim_off)
		return;
	st = dkim_eoh(ac->dkim);
	ac->dkim_eoh_status = (int)st;
	if (st == DKIM_STAT_NOSIG)
		ac->dkim_off = true;
	else if (st != DKIM_STAT_OK)
		ac->dkim_eoh_err = true; /* results per signature come from dkim_getsiglist */
}

/* mw_authcheck_body - a chunk of the body (CRLF line ends) */
void mw_authcheck_body(mw_authcheck *ac, const char *chunk, size_t len)
{
	mw_arc_verify_body(ac->arc, chunk, len);
	if (ac->dkim_off || ac->dkim_eoh_err || len == 0)
		return;
	if (dkim_body(ac->dkim, (u_char *)chunk, len) != DKIM_STAT_OK)
		ac->dkim_off = true;
}

/* spf_map - libspf2 result to ours */
static enum mw_auth_result spf_map(SPF_response_t *resp)
{
	if (resp == NULL)
		return MW_AUTH_TEMPERROR;
	if (SPF_response_reason(resp) == SPF_REASON_LOCALHOST)
		return MW_AUTH_NONE; /* libspf2's free ride for loopback: nothing was checked */
	switch (SPF_response_result(resp)) {
	case SPF_RESULT_PASS:
		return MW_AUTH_PASS;
	case SPF_RESULT_FAIL:
		return MW_AUTH_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return MW_AUTH_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return MW_AUTH_NEUTRAL;
	case SPF_RESULT_NONE:
		return MW_AUTH_NONE;
	case SPF_RESULT_TEMPERROR:
		return MW_AUTH_TEMPERROR;
	case SPF_RESULT_PERMERROR:
	case SPF_RESULT_INVALID:
	default:
		return MW_AUTH_PERMERROR;
	}
}

/* spf_check - one SPF evaluation for FROM (an address, or "" for postmaster@HELO) */
static enum mw_auth_result spf_check(mw_authcheck *ac, const char *from)
{
	struct spf_slot *slot;
	SPF_request_t *req;
	SPF_response_t *resp = NULL;
	enum mw_auth_result r;
	int ret;

	ac->spf_tempfails = 0;
	slot = spf_server_get(ac);
	if (slot == NULL)
		return MW_AUTH_TEMPERROR;
	req = SPF_request_new(slot->server);
	ret = ac->ipv6 ? SPF_request_set_ipv6_str(req, ac->client_ip)
	               : SPF_request_set_ipv4_str(req, ac->client_ip);
	if (ret == 0 && ac->helo[0] != '\0')
		ret = SPF_request_set_helo_dom(req, ac->helo);
	if (ret == 0 && (*from != '\0' || ac->helo[0] != '\0'))
		ret = SPF_request_set_env_from(req, from);
	else if (ret == 0)
		ret = -1;
	if (ret != 0) {
		r = MW_AUTH_NONE; /* nothing to check (RFC 7208 4.3: malformed domain -> none) */
	} else {
		(void)SPF_request_query_mailfrom(req, &resp);
		r = spf_map(resp);
		/* libspf2 may turn a failed lookup into permerror, or evaluate past it: any
		   temporary DNS failure during the check makes the result temperror */
		if (ac->spf_tempfails > 0)
			r = MW_AUTH_TEMPERROR;
	}
	if (resp != NULL)
		SPF_response_free(resp);
	SPF_request_free(req);
	spf_server_put(ac->lib, slot);
	return r;
}

/* run_spf - SPF for MAIL FROM and HELO */
static void run_spf(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;

	(void)mw_strlcpy(res->helo, ac->helo, sizeof(res->helo));
	res->spf = res->spf_helo = MW_AUTH_NONE;
	if (ac->client_ip[0] == '\0')
		return;
	if (ac->helo[0] != '\0') {
		char pm[MW_DNS_NAME_MAX + 16];

		snprintf(pm, sizeof(pm), "postmaster@%s", ac->helo);
		res->spf_helo = spf_check(ac, pm);
	}
	if (ac->have_mail_from && !ac->mail_from.null_path) {
		if (ac->mail_from.domain[0] == '[')
			return; /* a domain literal has no SPF record */
		(void)mw_strlcpy(res->spf_mailfrom, ac->mail_from.addr, sizeof(res->spf_mailfrom));
		(void)mw_strlcpy(res->spf_domain, ac->mail_from.domain, sizeof(res->spf_domain));
		res->spf = spf_check(ac, ac->mail_from.addr);
	} else if (ac->have_mail_from && ac->helo[0] != '\0') {
		/* null sender: RFC 7208 2.4, the MAIL FROM identity is postmaster@HELO */
		(void)mw_strlcpy(res->spf_domain, ac->helo, sizeof(res->spf_domain));
		res->spf = res->spf_helo;
		res->spf_scope_helo = true;
	}
}

/* keyrec_status - what the key lookup saw for SIG (MW_DNS_OK when it never ran) */
static enum mw_dns_status keyrec_status(const mw_authcheck *ac, const DKIM_SIGINFO *sig)
{
	size_t i;

	for (i = 0; i < ac->nkeyrec; i++)
		if (ac->keyrec[i].sig == sig)
			return ac->keyrec[i].status;
	return MW_DNS_OK;
}

/* sig_names - d= and s= of SIG into D */
static void sig_names(DKIM_SIGINFO *sig, struct mw_auth_dkim *d)
{
	const char *s;

	s = (const char *)dkim_sig_getdomain(sig);
	if (s == NULL || mw_strlcpy(d->domain, s, sizeof(d->domain)) < 0)
		d->domain[0] = '\0';
	mw_ascii_lower(d->domain);
	s = (const char *)dkim_sig_getselector(sig);
	if (s == NULL || mw_strlcpy(d->selector, s, sizeof(d->selector)) < 0)
		d->selector[0] = '\0';
}

/* dkim_from_keyrecs - results when dkim_eoh failed: from the key lookups that ran */
static void dkim_from_keyrecs(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;
	size_t i;

	for (i = 0; i < ac->nkeyrec && res->dkim_count < MW_AUTH_MAX_SIGS; i++) {
		struct mw_auth_dkim *d = &res->dkim[res->dkim_count++];

		sig_names((DKIM_SIGINFO *)ac->keyrec[i].sig, d);
		if (ac->keyrec[i].status == MW_DNS_TEMPFAIL) {
			d->result = MW_AUTH_TEMPERROR;
			(void)mw_strlcpy(d->reason, "key lookup failed temporarily",
			                 sizeof(d->reason));
		} else {
			d->result = MW_AUTH_PERMERROR;
			(void)mw_strlcpy(d->reason,
			                 ac->keyrec[i].status == MW_DNS_OK ? "not verifiable"
			                                                   : "no key",
			                 sizeof(d->reason));
		}
	}
	if (res->dkim_count == 0) {
		struct mw_auth_dkim *d = &res->dkim[res->dkim_count++];

		d->result = ac->dkim_eoh_status == DKIM_STAT_CBTRYAGAIN ? MW_AUTH_TEMPERROR
		                                                        : MW_AUTH_PERMERROR;
		snprintf(d->reason, sizeof(d->reason), "%s",
		         dkim_getresultstr(ac->dkim_eoh_status));
	}
}

/* run_dkim - finish DKIM verification and collect each signature's result */
static void run_dkim(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0, i;

	if (ac->dkim_off || ac->dkim == NULL)
		return;
	if (ac->dkim_eoh_err) {
		/* libopendkim stops at the first key it could not fetch and then refuses
		   dkim_getsiglist(): report the signatures our key lookup saw */
		dkim_from_keyrecs(ac);
		return;
	}
	(void)dkim_eom(ac->dkim, NULL);
	if (dkim_getsiglist(ac->dkim, &sigs, &nsigs) != DKIM_STAT_OK)
		return;
	for (i = 0; i < nsigs && res->dkim_count < MW_AUTH_MAX_SIGS; i++) {
		struct mw_auth_dkim *d = &res->dkim[res->dkim_count];
		DKIM_SIGINFO *sig = sigs[i];
		unsigned flags = dkim_sig_getflags(sig);
		int err = dkim_sig_geterror(sig);
		const char *s;

		sig_names(sig, d);
		switch (keyrec_status(ac, sig)) {
		case MW_DNS_TEMPFAIL:
			d->result = MW_AUTH_TEMPERROR;
			(void)mw_strlcpy(d->reason, "key lookup failed temporarily",
			                 sizeof(d->reason));
			break;
		case MW_DNS_NXDOMAIN:
		case MW_DNS_NODATA:
			d->result = MW_AUTH_PERMERROR;
			(void)mw_strlcpy(d->reason, "no key", sizeof(d->reason));
			break;
		case MW_DNS_PERMFAIL:
			d->result = MW_AUTH_PERMERROR;
			(void)mw_strlcpy(d->reason, "key lookup failed", sizeof(d->reason));
			break;
		case MW_DNS_OK:
			if ((flags & DKIM_SIGFLAG_PASSED) != 0 &&
			    dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
				d->result = MW_AUTH_PASS;
			} else if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
				d->result = MW_AUTH_FAIL;
				(void)mw_strlcpy(d->reason, "body hash mismatch",
				                 sizeof(d->reason));
			} else if (err == DKIM_SIGERROR_BADSIG ||
			           ((flags & DKIM_SIGFLAG_PROCESSED) != 0 &&
			            err == DKIM_SIGERROR_OK)) {
				d->result = MW_AUTH_FAIL;
				(void)mw_strlcpy(d->reason, "signature mismatch",
				                 sizeof(d->reason));
			} else if (err == DKIM_SIGERROR_KEYFAIL) {
				d->result = MW_AUTH_TEMPERROR;
				(void)mw_strlcpy(d->reason, "key lookup failed", sizeof(d->reason));
			} else {
				d->result = MW_AUTH_PERMERROR;
				s = err != DKIM_SIGERROR_OK ? dkim_sig_geterrorstr(err) : NULL;
				(void)mw_strlcpy(d->reason, s != NULL ? s : "not verifiable",
				                 sizeof(d->reason));
			}
			break;
		}
		if (d->domain[0] == '\0') {
			d->result = MW_AUTH_PERMERROR;
			(void)mw_strlcpy(d->reason, "no d= tag", sizeof(d->reason));
		}
		res->dkim_count++;
	}
}

/* is_dmarc_record - "v=DMARC1" followed by ';', blank or the end */
static bool is_dmarc_record(const char *txt, size_t len)
{
	if (len < 8 || strncmp(txt, "v=DMARC1", 8) != 0 || memchr(txt, '\0', len) != NULL)
		return false;
	return len == 8 || txt[8] == ';' || txt[8] == ' ' || txt[8] == '\t';
}

/* fetch_dmarc - the single DMARC record of DOMAIN into rec; TEMPFAIL, OK or NODATA */
static enum mw_dns_status fetch_dmarc(mw_authcheck *ac, const char *domain, char *rec,
                                      size_t recsize)
{
	struct mw_dns_answer ans;
	enum mw_dns_status st;
	size_t i, found = 0, idx = 0;
	char name[MW_DNS_NAME_MAX + 16];

	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", domain) >= sizeof(name))
		return MW_DNS_NODATA;
	st = mw_dns_query(ac->lib->dns, name, MW_DNS_TXT, &ans, NULL);
	if (st == MW_DNS_TEMPFAIL)
		return st;
	for (i = 0; st == MW_DNS_OK && i < ans.count; i++) {
		if (is_dmarc_record(ans.rec[i], ans.len[i])) {
			found++;
			idx = i;
		}
	}
	/* RFC 7489 6.6.3: several records, or none, mean no policy */
	st = MW_DNS_NODATA;
	if (found == 1 && mw_strlcpy(rec, ans.rec[idx], recsize) == 0)
		st = MW_DNS_OK;
	mw_dns_answer_free(&ans);
	return st;
}

/* from_domain - the one From address's domain, or a reason why there is none (also kept in
   res->from_problem: the verdict refuses such mail from unauthenticated clients) */
static int from_domain(mw_authcheck *ac, char *reason, size_t rsize)
{
	struct mw_auth_results *res = &ac->res;
	struct mw_addr_list list;

	res->from_domain[0] = '\0';
	if (ac->from_headers != 1) {
		snprintf(res->from_problem, sizeof(res->from_problem), "%zu From header fields",
		         ac->from_headers);
	} else if (mw_addr_parse_header(ac->from_value[0], strlen(ac->from_value[0]), &list, NULL) <
	           0) {
		snprintf(res->from_problem, sizeof(res->from_problem), "unparseable From");
	} else {
		res->from_count = list.count;
		if (list.count != 1)
			snprintf(res->from_problem, sizeof(res->from_problem),
			         "%zu addresses in From", list.count);
		else if (list.addrs[0].domain[0] == '[')
			snprintf(res->from_problem, sizeof(res->from_problem),
			         "domain literal in From");
		else if (mw_strlcpy(res->from_domain, list.addrs[0].domain,
		                    sizeof(res->from_domain)) < 0)
			snprintf(res->from_problem, sizeof(res->from_problem),
			         "From domain too long");
		mw_addr_list_free(&list);
	}
	if (res->from_domain[0] == '\0') {
		if (res->from_problem[0] == '\0')
			snprintf(res->from_problem, sizeof(res->from_problem), "no From domain");
		snprintf(reason, rsize, "%s", res->from_problem);
		return -1;
	}
	return 0;
}

/* domain_covers - whether identity D (DKIM d=, SPF domain) is DOMAIN or a parent of it
   that is not a public suffix */
static bool domain_covers(const mw_authcheck *ac, const char *d, const char *domain)
{
	size_t dl = strlen(d), l = strlen(domain);

	if (dl == 0 || dl > l)
		return false;
	if (dl == l)
		return mw_ascii_strcasecmp(d, domain) == 0;
	if (domain[l - dl - 1] != '.' || mw_ascii_strcasecmp(domain + l - dl, d) != 0)
		return false;
	return strchr(d, '.') != NULL &&
	       (ac->lib->psl == NULL || !psl_is_public_suffix(ac->lib->psl, d));
}

/* run_sender - the Sender: field's one domain and whether DKIM or SPF vouches for it */
static void run_sender(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;
	struct mw_addr_list list;
	size_t i;

	if (ac->sender_headers == 0)
		return;
	if (ac->sender_headers > 1) {
		snprintf(res->sender_problem, sizeof(res->sender_problem),
		         "%zu Sender header fields", ac->sender_headers);
		return;
	}
	if (mw_addr_parse_header(ac->sender_value, strlen(ac->sender_value), &list, NULL) < 0) {
		snprintf(res->sender_problem, sizeof(res->sender_problem), "unparseable Sender");
		return;
	}
	if (list.count != 1)
		snprintf(res->sender_problem, sizeof(res->sender_problem),
		         "%zu addresses in Sender", list.count);
	else if (list.addrs[0].domain[0] == '[' ||
	         mw_strlcpy(res->sender_domain, list.addrs[0].domain, sizeof(res->sender_domain)) <
	             0)
		snprintf(res->sender_problem, sizeof(res->sender_problem),
		         "unusable Sender address");
	mw_addr_list_free(&list);
	if (res->sender_problem[0] != '\0') {
		res->sender_domain[0] = '\0';
		return;
	}
	if (res->spf == MW_AUTH_PASS && domain_covers(ac, res->spf_domain, res->sender_domain))
		res->sender_authenticated = true;
	for (i = 0; i < res->dkim_count; i++)
		if (res->dkim[i].result == MW_AUTH_PASS &&
		    domain_covers(ac, res->dkim[i].domain, res->sender_domain))
			res->sender_authenticated = true;
}

/* dmarc_spf_outcome - our SPF result as libopendmarc's outcome */
static int dmarc_spf_outcome(enum mw_auth_result r)
{
	switch (r) {
	case MW_AUTH_PASS:
		return DMARC_POLICY_SPF_OUTCOME_PASS;
	case MW_AUTH_NONE:
		return DMARC_POLICY_SPF_OUTCOME_NONE;
	case MW_AUTH_TEMPERROR:
		return DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
	default:
		return DMARC_POLICY_SPF_OUTCOME_FAIL;
	}
}

/* run_dmarc - DMARC for the header From domain */
static void run_dmarc(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;
	char rec[DMARC_RECORD_MAX], org[MW_DNS_NAME_MAX + 1];
	enum mw_dns_status st;
	DMARC_POLICY_T *pctx;
	bool used_org = false, could_pass = false;
	int pol, dkim_al = 0, spf_al = 0, p = 0;
	size_t i;

	res->dmarc = MW_AUTH_NONE;
	res->policy = MW_DMARC_POLICY_ABSENT;
	if (from_domain(ac, res->reason, sizeof(res->reason)) < 0) {
		res->dmarc = MW_AUTH_PERMERROR;
		return;
	}
	org[0] = '\0';
	if (ac->lib->psl != NULL) {
		const char *o = psl_registrable_domain(ac->lib->psl, res->from_domain);

		if (o != NULL)
			(void)mw_strlcpy(org, o, sizeof(org));
	}
	st = fetch_dmarc(ac, res->from_domain, rec, sizeof(rec));
	if (st == MW_DNS_NODATA && org[0] != '\0' && strcmp(org, res->from_domain) != 0) {
		st = fetch_dmarc(ac, org, rec, sizeof(rec));
		used_org = true;
	}
	if (st == MW_DNS_TEMPFAIL) {
		res->dmarc = MW_AUTH_TEMPERROR;
		snprintf(res->reason, sizeof(res->reason), "DMARC record lookup failed");
		return;
	}
	if (st != MW_DNS_OK)
		return; /* no record: dmarc=none */
	(void)mw_strlcpy(res->dmarc_record, rec, sizeof(res->dmarc_record));
	(void)mw_strlcpy(res->dmarc_record_domain, used_org ? org : res->from_domain,
	                 sizeof(res->dmarc_record_domain));
	(void)mw_strlcpy(res->dmarc_org_domain, org[0] != '\0' ? org : res->from_domain,
	                 sizeof(res->dmarc_org_domain));

	pctx = opendmarc_policy_connect_init((u_char *)ac->client_ip, ac->ipv6);
	if (pctx == NULL) {
		res->dmarc = MW_AUTH_TEMPERROR;
		return;
	}
	if (opendmarc_policy_store_from_domain(pctx, (u_char *)res->from_domain) !=
	        DMARC_PARSE_OKAY ||
	    opendmarc_policy_store_dmarc(pctx, (u_char *)rec, (u_char *)res->from_domain,
	                                 used_org ? (u_char *)org : NULL) != DMARC_PARSE_OKAY) {
		res->dmarc = MW_AUTH_PERMERROR;
		snprintf(res->reason, sizeof(res->reason), "invalid DMARC record");
		(void)opendmarc_policy_connect_shutdown(pctx);
		return;
	}
	if (res->spf_domain[0] != '\0')
		(void)opendmarc_policy_store_spf(
		    pctx, (u_char *)res->spf_domain, dmarc_spf_outcome(res->spf),
		    ac->mail_from.null_path ? DMARC_POLICY_SPF_ORIGIN_HELO
		                            : DMARC_POLICY_SPF_ORIGIN_MAILFROM,
		    NULL);
	if (res->spf == MW_AUTH_TEMPERROR)
		could_pass = true;
	for (i = 0; i < res->dkim_count; i++) {
		const struct mw_auth_dkim *d = &res->dkim[i];
		int outcome = d->result == MW_AUTH_PASS        ? DMARC_POLICY_DKIM_OUTCOME_PASS
		              : d->result == MW_AUTH_TEMPERROR ? DMARC_POLICY_DKIM_OUTCOME_TMPFAIL
		                                               : DMARC_POLICY_DKIM_OUTCOME_FAIL;

		if (d->result == MW_AUTH_TEMPERROR)
			could_pass = true;
		if (d->domain[0] != '\0')
			(void)opendmarc_policy_store_dkim(pctx, (u_char *)d->domain,
			                                  (u_char *)d->selector, outcome, NULL);
	}
	pol = opendmarc_get_policy_to_enforce(pctx);
	(void)opendmarc_policy_fetch_alignment(pctx, &dkim_al, &spf_al);
	res->dmarc_dkim_aligned = dkim_al == DMARC_POLICY_DKIM_ALIGNMENT_PASS;
	res->dmarc_spf_aligned = spf_al == DMARC_POLICY_SPF_ALIGNMENT_PASS;
	/* the organisational record's sp= applies to a subdomain, else p= */
	if (!used_org || opendmarc_policy_fetch_sp(pctx, &p) != DMARC_PARSE_OKAY ||
	    p == DMARC_RECORD_P_UNSPECIFIED)
		(void)opendmarc_policy_fetch_p(pctx, &p);
	res->policy = p == DMARC_RECORD_P_REJECT       ? MW_DMARC_POLICY_REJECT
	              : p == DMARC_RECORD_P_QUARANTINE ? MW_DMARC_POLICY_QUARANTINE
	                                               : MW_DMARC_POLICY_NONE;
	switch (pol) {
	case DMARC_POLICY_PASS:
		res->dmarc = MW_AUTH_PASS;
		break;
	case DMARC_POLICY_REJECT:
	case DMARC_POLICY_QUARANTINE:
	case DMARC_POLICY_NONE:
		/* a check that failed temporarily might have passed and aligned */
		res->dmarc = could_pass ? MW_AUTH_TEMPERROR : MW_AUTH_FAIL;
		if (could_pass)
			snprintf(res->reason, sizeof(res->reason),
			         "SPF or DKIM failed temporarily");
		break;
	default:
		/* an answer we do not know: unable to decide is not a pass. Retrying costs the
		   sender a delay; accepting would let whatever provoked it through p=reject. */
		res->dmarc = MW_AUTH_TEMPERROR;
		snprintf(res->reason, sizeof(res->reason), "libopendmarc: %s",
		         opendmarc_policy_status_to_str(pol));
		break;
	}
	(void)opendmarc_policy_connect_shutdown(pctx);
}

/* ---- DMARCbis (RFC 9989) ----------------------------------------------------------- */

/* bis_fetch - the DMARC records at _dmarc.DOMAIN, for mw-dmarc's walk */
static enum mw_dmarc_fetch bis_fetch(void *ctx, const char *domain, char *rec, size_t recsize)
{
	mw_authcheck *ac = ctx;
	struct mw_dns_answer ans;
	enum mw_dns_status st;
	enum mw_dmarc_fetch ret = MW_DMARC_FETCH_NONE;
	char name[MW_DNS_NAME_MAX + 16];
	size_t i, found = 0, idx = 0;

	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", domain) >= sizeof(name))
		return MW_DMARC_FETCH_NONE; /* no such name can exist */
	st = mw_dns_query(ac->lib->dns, name, MW_DNS_TXT, &ans, NULL);
	switch (st) {
	case MW_DNS_TEMPFAIL:
	case MW_DNS_PERMFAIL:
		/* an answer we could not read (corrupt, oversized) decides nothing either */
		return MW_DMARC_FETCH_TEMPFAIL;
	case MW_DNS_NXDOMAIN:
	case MW_DNS_NODATA:
		return MW_DMARC_FETCH_NONE;
	case MW_DNS_OK:
		break;
	}
	for (i = 0; i < ans.count; i++) {
		if (mw_dmarc_is_record(ans.rec[i], ans.len[i])) {
			found++;
			idx = i;
		}
	}
	if (found > 1) {
		ret = MW_DMARC_FETCH_MULTIPLE;
	} else if (found == 1) {
		ret = MW_DMARC_FETCH_ONE;
		/* a record longer than we take is malformed, never cut short */
		if (mw_strlcpy(rec, ans.rec[idx], recsize) < 0)
			rec[0] = '\0';
	}
	mw_dns_answer_free(&ans);
	return ret;
}

/* domain_exists - RFC 9989 np=: a name with no A, AAAA or MX record (NXDOMAIN or NODATA for
   all three) does not exist; 1 exists, 0 not, -1 a lookup failed temporarily */
static int domain_exists(mw_authcheck *ac, const char *domain)
{
	static const int types[] = {MW_DNS_A, MW_DNS_AAAA, MW_DNS_MX};
	struct mw_dns_answer ans;
	size_t i;
	int ret = 0;

	for (i = 0; i < sizeof(types) / sizeof(types[0]) && ret == 0; i++) {
		enum mw_dns_status st = mw_dns_query(ac->lib->dns, domain, types[i], &ans, NULL);

		if (st == MW_DNS_OK)
			mw_dns_answer_free(&ans);
		if (st == MW_DNS_OK)
			ret = 1;
		else if (st == MW_DNS_TEMPFAIL || st == MW_DNS_PERMFAIL)
			ret = -1;
	}
	return ret;
}

/* bis_aligned - any passing identifier aligned with the From domain: 1, 0, or -1 when a walk
   (or an identifier's own check) failed temporarily and might have aligned */
static int bis_aligned(mw_authcheck *ac, struct mw_dmarc_walk *w, const struct mw_dmarc_record *r)
{
	struct mw_auth_results *res = &ac->res;
	bool unknown = false;
	size_t i;

	if (res->spf_domain[0] != '\0' &&
	    (res->spf == MW_AUTH_PASS || res->spf == MW_AUTH_TEMPERROR)) {
		enum mw_dmarc_walk_status st =
		    mw_dmarc_aligned(w, res->from_domain, res->spf_domain, r->strict_spf);
		if (st == MW_DMARC_WALK_TEMPFAIL ||
		    (st == MW_DMARC_WALK_FOUND && res->spf != MW_AUTH_PASS))
			unknown = true;
		else if (st == MW_DMARC_WALK_FOUND)
			res->dmarc_spf_aligned = true;
	}
	for (i = 0; i < res->dkim_count; i++) {
		const struct mw_auth_dkim *d = &res->dkim[i];
		enum mw_dmarc_walk_status st;

		if (d->domain[0] == '\0' ||
		    (d->result != MW_AUTH_PASS && d->result != MW_AUTH_TEMPERROR))
			continue;
		st = mw_dmarc_aligned(w, res->from_domain, d->domain, r->strict_dkim);
		if (st == MW_DMARC_WALK_TEMPFAIL ||
		    (st == MW_DMARC_WALK_FOUND && d->result != MW_AUTH_PASS))
			unknown = true;
		else if (st == MW_DMARC_WALK_FOUND)
			res->dmarc_dkim_aligned = true;
	}
	if (res->dmarc_spf_aligned || res->dmarc_dkim_aligned)
		return 1;
	return unknown ? -1 : 0;
}

/* run_dmarcbis - DMARC for the header From domain, as RFC 9989 writes it */
static void run_dmarcbis(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;
	const struct mw_dmarc_cached *found;
	const struct mw_dmarc_record *r;
	struct mw_dmarc_walk *w;
	enum mw_dmarc_walk_status st;
	enum mw_dmarc_p p;
	int al;

	res->dmarc = MW_AUTH_NONE;
	res->policy = MW_DMARC_POLICY_ABSENT;
	if (from_domain(ac, res->reason, sizeof(res->reason)) < 0) {
		res->dmarc = MW_AUTH_PERMERROR;
		return;
	}
	w = mw_malloc(sizeof(*w));
	mw_dmarc_walk_init(w, bis_fetch, ac);
	st = mw_dmarc_policy_walk(w, res->from_domain, &found);
	if (st == MW_DMARC_WALK_TEMPFAIL) {
		res->dmarc = MW_AUTH_TEMPERROR;
		snprintf(res->reason, sizeof(res->reason), "DMARC record lookup failed");
		goto out;
	}
	if (st == MW_DMARC_WALK_NONE)
		goto out; /* no policy anywhere on the walk: dmarc=none */
	(void)mw_strlcpy(res->dmarc_record_domain, found->name, sizeof(res->dmarc_record_domain));
	if (st == MW_DMARC_WALK_MALFORMED) {
		/* the domain owner's intent cannot be read: not a pass, not a guess */
		res->dmarc = MW_AUTH_PERMERROR;
		snprintf(res->reason, sizeof(res->reason), "invalid DMARC record at %.100s",
		         found->name);
		goto out;
	}
	r = &found->rec;
	res->dmarc_testing = r->testing;
	(void)mw_strlcpy(res->dmarc_record, found->text, sizeof(res->dmarc_record));
	al = bis_aligned(ac, w, r);

	/* the policy that applies: the From domain's own record's p=; a record found above it:
	   np= when the From domain does not exist, else sp=, else p= */
	p = r->p;
	(void)mw_strlcpy(res->dmarc_policy_tag, "p", sizeof(res->dmarc_policy_tag));
	if (mw_ascii_strcasecmp(found->name, res->from_domain) != 0) {
		int ex =
		    r->np != MW_DMARC_P_UNSET && al != 1 ? domain_exists(ac, res->from_domain) : 1;

		if (ex < 0) {
			res->dmarc = MW_AUTH_TEMPERROR;
			snprintf(res->reason, sizeof(res->reason), "existence of %.100s unknown",
			         res->from_domain);
			goto out;
		}
		if (ex == 0) {
			p = r->np;
			(void)mw_strlcpy(res->dmarc_policy_tag, "np",
			                 sizeof(res->dmarc_policy_tag));
		} else if (r->sp != MW_DMARC_P_UNSET) {
			p = r->sp;
			(void)mw_strlcpy(res->dmarc_policy_tag, "sp",
			                 sizeof(res->dmarc_policy_tag));
		}
	}
	/* RFC 9989: a record without p= is taken as p=none */
	res->policy = p == MW_DMARC_P_REJECT       ? MW_DMARC_POLICY_REJECT
	              : p == MW_DMARC_P_QUARANTINE ? MW_DMARC_POLICY_QUARANTINE
	                                           : MW_DMARC_POLICY_NONE;
	if (al == 1) {
		res->dmarc = MW_AUTH_PASS;
	} else if (al < 0) {
		res->dmarc = MW_AUTH_TEMPERROR;
		snprintf(res->reason, sizeof(res->reason),
		         "SPF, DKIM or alignment failed temporarily");
	} else {
		res->dmarc = MW_AUTH_FAIL;
	}
out:
	res->dmarc_lookups = w->lookups;
	if (ac->lib->want_org_domain && res->dmarc_record[0] != '\0' &&
	    mw_dmarc_org_domain(w, res->from_domain, res->dmarc_org_domain) != MW_DMARC_WALK_FOUND)
		res->dmarc_org_domain[0] = '\0';
	free(w);
}

/* ---- ARC --------------------------------------------------------------------------- */

/* covers - identity ID is DOMAIN or a parent of it (with at least one dot) */
static bool covers(const char *id, const char *domain)
{
	size_t il = strlen(id), dl = strlen(domain);
	if (il == 0 || strchr(id, '.') == NULL || il > dl)
		return false;
	if (il == dl)
		return mw_ascii_strcasecmp(id, domain) == 0;
	return domain[dl - il - 1] == '.' && mw_ascii_strcasecmp(domain + dl - il, id) == 0;
}

/* mw_authcheck_aar_vouches - the forwarder saw DMARC, or an aligned DKIM/SPF, pass */
bool mw_authcheck_aar_vouches(const char *aar, const char *from_domain)
{
	struct mw_hdr_authres *ar;
	bool ok = false;
	size_t i, j;

	if (aar == NULL || from_domain[0] == '\0')
		return false;
	ar = mw_calloc(1, sizeof(*ar));
	if (mw_hdr_authres_parse(aar, strlen(aar), ar, NULL) < 0) {
		free(ar);
		return false; /* what we cannot read vouches for nothing */
	}
	for (i = 0; i < ar->count && !ok; i++) {
		const struct mw_hdr_ar_result *r = &ar->results[i];
		if (r->result != MW_AUTH_PASS)
			continue;
		for (j = 0; j < r->nprops && !ok; j++) {
			const struct mw_hdr_ar_prop *p = &r->props[j];
			const char *at = strrchr(p->value, '@');
			if (strcmp(r->method, "dmarc") == 0 && strcmp(p->name, "header.from") == 0)
				ok = mw_ascii_strcasecmp(p->value, from_domain) == 0;
			else if (strcmp(r->method, "dkim") == 0 && strcmp(p->name, "header.d") == 0)
				ok = covers(p->value, from_domain);
			else if (strcmp(r->method, "spf") == 0 &&
			         strcmp(p->name, "smtp.mailfrom") == 0)
				ok = covers(at != NULL ? at + 1 : p->value, from_domain);
		}
	}
	free(ar);
	return ok;
}

/* run_arc - the chain's result, and whether a trusted forwarder's seal overrides DMARC */
static void run_arc(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;
	struct mw_arc_result ar;

	mw_arc_verify_eom(ac->arc, ac->lib->dns, &ar);
	res->arc = ar.result;
	res->arc_sets = ar.sets;
	(void)mw_strlcpy(res->arc_reason, ar.reason, sizeof(res->arc_reason));
	(void)mw_strlcpy(res->arc_seal_domain, ar.seal_domain, sizeof(res->arc_seal_domain));
	if (res->dmarc == MW_AUTH_FAIL && ar.result == MW_AUTH_PASS &&
	    mw_authcheck_domain_listed(ac->lib->arc_trusted, ar.seal_domain) &&
	    mw_authcheck_aar_vouches(ar.aar, res->from_domain))
		res->dmarc_override = true;
	free(ar.aar);
}

/* mw_authcheck_arc - the message's ARC verifier */
struct mw_arc_verify *mw_authcheck_arc(mw_authcheck *ac)
{
	return ac->arc;
}

/* mw_authcheck_eom - run every check; see mw-authcheck.h */
const struct mw_auth_results *mw_authcheck_eom(mw_authcheck *ac)
{
	struct mw_auth_results *res = &ac->res;
	size_t i;

	if (ac->done)
		return res;
	ac->done = true;
	run_spf(ac);
	run_dkim(ac);
	if (ac->lib->dmarc_rfc7489)
		run_dmarc(ac);
	else
		run_dmarcbis(ac);
	run_arc(ac);
	run_sender(ac);
	res->temperror = res->spf == MW_AUTH_TEMPERROR || res->dmarc == MW_AUTH_TEMPERROR;
	/* an ARC temperror decides nothing by itself (only a passing chain can help), so it
	   is not a temperror of the message */
	for (i = 0; i < res->dkim_count; i++)
		if (res->dkim[i].result == MW_AUTH_TEMPERROR)
			res->temperror = true;
	return res;
}

/* ---- Authentication-Results -------------------------------------------------------- */

/* add_result - one more result (method, result, comment) in the header being built */
static struct mw_hdr_ar_result *add_result(struct mw_hdr_authres *ar, const char *method,
                                           enum mw_auth_result result, const char *comment)
{
	struct mw_hdr_ar_result *r;
	const char *p;
	size_t n = 0;
	if (ar->count >= MW_HDR_AR_RESULTS)
		return NULL;
	r = &ar->results[ar->count++];
	memset(r, 0, sizeof(*r));
	(void)mw_strlcpy(r->method, method, sizeof(r->method));
	r->result = result;
	/* reasons are ours, but keep the comment well-formed whatever they hold */
	for (p = comment; p != NULL && *p != '\0' && n + 1 < sizeof(r->comment); p++)
		if (*p >= 0x20 && *p < 0x7f && *p != '(' && *p != ')' && *p != '\\')
			r->comment[n++] = *p;
	r->comment[n] = '\0';
	return r;
}

/* add_prop - a property of r; -1 when it does not fit (refused, never cut) */
static int add_prop(struct mw_hdr_ar_result *r, const char *name, const char *value)
{
	struct mw_hdr_ar_prop *p;
	if (r == NULL || r->nprops >= MW_HDR_AR_PROPS)
		return -1;
	p = &r->props[r->nprops++];
	if (mw_strlcpy(p->name, name, sizeof(p->name)) < 0 ||
	    mw_strlcpy(p->value, value, sizeof(p->value)) < 0)
		return -1;
	return 0;
}

/* mw_authcheck_format_ar - the Authentication-Results value, printed by lib/mw-headers */
int mw_authcheck_format_ar(const char *authserv_id, const struct mw_auth_results *res, mw_str *out,
                           mw_error *error_r)
{
	struct mw_hdr_authres *ar = mw_calloc(1, sizeof(*ar));
	struct mw_hdr_ar_result *r;
	size_t i;
	int ret = 0;

	if (mw_strlcpy(ar->authserv_id, authserv_id, sizeof(ar->authserv_id)) < 0) {
		free(ar);
		mw_error_set(error_r, "authserv-id must be a host name");
		return -1;
	}
	r = add_result(ar, "spf", res->spf, NULL);
	if (res->spf_mailfrom[0] != '\0')
		ret |= add_prop(r, "smtp.mailfrom", res->spf_mailfrom);
	else if (res->spf_domain[0] != '\0')
		ret |= add_prop(r, "smtp.mailfrom", res->spf_domain);
	if (res->helo[0] != '\0')
		ret |= add_prop(r, "smtp.helo", res->helo);
	if (res->dkim_count == 0)
		(void)add_result(ar, "dkim", MW_AUTH_NONE, NULL);
	for (i = 0; i < res->dkim_count; i++) {
		const struct mw_auth_dkim *d = &res->dkim[i];
		r = add_result(ar, "dkim", d->result, d->result != MW_AUTH_PASS ? d->reason : NULL);
		if (r == NULL)
			ret = -1;
		else if (d->domain[0] != '\0')
			ret |= add_prop(r, "header.d", d->domain);
		if (r != NULL && d->selector[0] != '\0')
			ret |= add_prop(r, "header.s", d->selector);
	}
	r = add_result(ar, "dmarc", res->dmarc, res->policy != MW_DMARC_POLICY_ABSENT ? "" : NULL);
	if (r != NULL && res->policy != MW_DMARC_POLICY_ABSENT)
		(void)snprintf(r->comment, sizeof(r->comment), "%s=%s%s",
		               res->dmarc_policy_tag[0] != '\0' ? res->dmarc_policy_tag : "p",
		               mw_dmarc_policy_str(res->policy), res->dmarc_testing ? " t=y" : "");
	if (r != NULL && res->dmarc_override)
		(void)snprintf(r->comment, sizeof(r->comment),
		               "%s=%s; override: trusted ARC forwarder",
		               res->dmarc_policy_tag[0] != '\0' ? res->dmarc_policy_tag : "p",
		               mw_dmarc_policy_str(res->policy));
	if (r == NULL)
		ret = -1;
	else if (res->from_domain[0] != '\0')
		ret |= add_prop(r, "header.from", res->from_domain);
	/* arc= only for a message with ARC header fields (no chain: nothing to say) */
	if (res->arc != MW_AUTH_NONE || res->arc_sets > 0) {
		char comment[MW_HDR_AR_COMMENT + 1];

		if (res->dmarc_override)
			(void)snprintf(comment, sizeof(comment), "trusted forwarder %.60s",
			               res->arc_seal_domain);
		else if (res->arc != MW_AUTH_PASS)
			(void)mw_strlcpy(comment, res->arc_reason, sizeof(comment));
		else
			(void)snprintf(comment, sizeof(comment), "i=%u", res->arc_sets);
		r = add_result(ar, "arc", res->arc, comment);
		if (r == NULL)
			ret = -1;
		else if (res->client_ip[0] != '\0')
			ret |= add_prop(r, "smtp.remote-ip", res->client_ip);
	}
	if (ret != 0) {
		free(ar);
		mw_error_set(error_r, "Authentication-Results: unsafe value or too long");
		return -1;
	}
	ret = mw_hdr_authres_print(ar, out, error_r);
	free(ar);
	return ret;
}

/* ---- verdict ----------------------------------------------------------------------- */

/* mw_authcheck_domain_listed - DOMAIN is one of LIST's entries */
bool mw_authcheck_domain_listed(const char *list, const char *domain)
{
	size_t dlen = strlen(domain);
	const char *p = list;

	if (list == NULL || dlen == 0)
		return false;
	while (*p != '\0') {
		size_t len;

		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (len == dlen && mw_ascii_strncasecmp(p, domain, len) == 0)
			return true;
		if (len > 0 && len == dlen + 1 && p[len - 1] == '.' &&
		    mw_ascii_strncasecmp(p, domain, dlen) == 0)
			return true;
		p += len;
	}
	return false;
}

/* mw_authcheck_ip_in_networks - IP inside one of NETWORKS (parsed by mw-net) */
int mw_authcheck_ip_in_networks(const char *networks, const char *ip, mw_error *error_r)
{
	struct mw_ip addr;
	int found = 0;
	const char *p = networks;

	if (mw_ip_parse(ip, &addr) < 0) {
		mw_error_set(error_r, "not an IP address");
		return -1;
	}
	while (*p != '\0') {
		char item[MW_CIDR_TEXT_MAX + 1];
		struct mw_cidr net;
		size_t len;

		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (len == 0)
			break;
		if (len >= sizeof(item)) {
			mw_error_set(error_r, "network entry too long");
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		p += len;
		/* every entry is checked, so a bad one is found whatever comes before it */
		if (mw_cidr_parse(item, &net, error_r) < 0) {
			mw_error_prefix(error_r, "trusted networks: %s: ", item);
			return -1;
		}
		if (mw_cidr_contains(&net, &addr))
			found = 1;
	}
	return found;
}

/* set_verdict - fill V */
static void set_verdict(struct mw_verdict *v, enum mw_verdict_action action, const char *why,
                        const char *code, const char *xcode, const char *fmt, ...) MW_PRINTF(6, 7);
static void set_verdict(struct mw_verdict *v, enum mw_verdict_action action, const char *why,
                        const char *code, const char *xcode, const char *fmt, ...)
{
	va_list ap;

	v->action = action;
	v->why = why;
	v->smtp_code = code;
	v->xcode = xcode;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

/* local_spoof - step 3's verdict: a local domain claimed without authentication is refused,
   unless the check that failed was a temperror (451 with tempfail_on_dns_error, else no
   verdict); claim names who claims it in the reply */
static void local_spoof(struct mw_verdict *v, const struct mw_verdict_policy *policy,
                        bool temperror, const char *claim, const char *domain)
{
	if (!temperror)
		set_verdict(v, MW_VERDICT_REJECT, "local_domain_spoof", "550", "5.7.1",
		            "%s local domain %s but is not authenticated", claim, domain);
	else if (policy->tempfail_on_dns_error)
		set_verdict(v, MW_VERDICT_TEMPFAIL, "auth_tempfail", "451", "4.7.1",
		            "Cannot verify the sender %s now, try again later", domain);
}

/* mw_authcheck_verdict - what to do with a message, in this order:
 *   1. authenticated or trusted client                         -> accept
 *   2. no single header From domain (From missing, repeated, unparseable, without an
 *      address, with several addresses or a domain literal): DMARC cannot be evaluated,
 *      so nothing would stop a spoofed From (RFC 7489 6.6.1 allows refusing it)
 *                                                               -> 550 5.7.1
 *      an envelope sender that does not parse, unless its domain is a host name that is
 *      not local                                                -> 550 5.7.1
 *      a Sender: that is repeated, unparseable or not one address -> 550 5.7.1
 *   3. header From domain is local and DMARC did not pass, or
 *      the envelope domain is local and SPF did not pass, or
 *      the Sender: domain is local and no passing DKIM signature
 *      or SPF identity is that domain (or a parent)            -> 550 5.7.1 (spoofing);
 *      when the failing check was a temperror                    -> 451 4.7.1
 *   4. DMARC enforcement on:
 *      dmarc=temperror and the policy is not known to be none   -> 451 4.7.1
 *      dmarc=fail, p=reject                                      -> 550 5.7.26
 *      dmarc=fail, p=quarantine                                  -> quarantine (hold or tag)
 *   5. otherwise                                                 -> accept
 * With tempfail_on_dns_error off, the 451 cases accept instead (the A-R header still says
 * temperror). Step 2 does not depend on dmarc_enforce: it is what makes the local-domain
 * check of step 3 decidable. */
void mw_authcheck_verdict(const struct mw_auth_results *res, const struct mw_verdict_policy *policy,
                          struct mw_verdict *v)
{
	const char *local = policy->local_domains != NULL ? policy->local_domains : "";

	memset(v, 0, sizeof(*v));
	set_verdict(v, MW_VERDICT_ACCEPT, "", "", "", "%s", "accepted");
	if (policy->authenticated || policy->trusted_client)
		return;

	if (res->from_domain[0] == '\0') {
		set_verdict(v, MW_VERDICT_REJECT, "from_invalid", "550", "5.7.1",
		            "Message must have one From header with one address (%s)",
		            res->from_problem[0] != '\0' ? res->from_problem : "no From domain");
		return;
	}
	if (res->sender_problem[0] != '\0') {
		set_verdict(v, MW_VERDICT_REJECT, "sender_invalid", "550", "5.7.1",
		            "Message must have at most one Sender header with one address (%s)",
		            res->sender_problem);
		return;
	}
	if (res->envelope_invalid) {
		if (res->envelope_domain[0] == '\0') {
			set_verdict(v, MW_VERDICT_REJECT, "envelope_invalid", "550", "5.7.1",
			            "Envelope sender does not parse");
			return;
		}
		if (mw_authcheck_domain_listed(local, res->envelope_domain)) {
			local_spoof(v, policy, false, "Envelope sender claims",
			            res->envelope_domain);
			return;
		}
	}

	if (mw_authcheck_domain_listed(local, res->from_domain) && res->dmarc != MW_AUTH_PASS) {
		local_spoof(v, policy, res->temperror && res->dmarc == MW_AUTH_TEMPERROR,
		            "Message claims to be from", res->from_domain);
		return;
	}
	if (res->spf_mailfrom[0] != '\0' && mw_authcheck_domain_listed(local, res->spf_domain) &&
	    res->spf != MW_AUTH_PASS) {
		local_spoof(v, policy, res->spf == MW_AUTH_TEMPERROR, "Envelope sender claims",
		            res->spf_domain);
		return;
	}

	if (res->sender_domain[0] != '\0' && !res->sender_authenticated &&
	    mw_authcheck_domain_listed(local, res->sender_domain)) {
		local_spoof(v, policy, res->temperror, "Sender header claims", res->sender_domain);
		return;
	}

	/* t=y (RFC 9989): the domain owner asks that the policy not be applied yet */
	if (!policy->dmarc_enforce || res->dmarc_testing || res->dmarc_override)
		return;
	if (res->dmarc == MW_AUTH_TEMPERROR && res->policy != MW_DMARC_POLICY_NONE) {
		if (policy->tempfail_on_dns_error)
			set_verdict(v, MW_VERDICT_TEMPFAIL, "auth_tempfail", "451", "4.7.1",
			            "DMARC check for %s failed temporarily, try again later",
			            res->from_domain);
		return;
	}
	if (res->dmarc != MW_AUTH_FAIL)
		return;
	if (res->policy == MW_DMARC_POLICY_REJECT) {
		set_verdict(v, MW_VERDICT_REJECT, "dmarc_reject", "550", "5.7.26",
		            "Unauthenticated email from %s is not accepted due to the domain's "
		            "DMARC policy",
		            res->from_domain);
	} else if (res->policy == MW_DMARC_POLICY_QUARANTINE) {
		set_verdict(v, MW_VERDICT_QUARANTINE, "dmarc_quarantine", "", "",
		            "DMARC policy of %s is quarantine", res->from_domain);
		v->hold = policy->quarantine_hold;
		v->tag = !policy->quarantine_hold;
	}
}
