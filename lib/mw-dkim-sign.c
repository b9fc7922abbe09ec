/* mw-dkim-sign.c - DKIM signing for outbound mail: keys, key lookup and a streaming signer.
 *
 * This module holds the process's libopendkim handle (verification elsewhere uses it), parses
 * and checks private keys with OpenSSL (a parsed key is kept by the SHA-256 of its text, so
 * a key read again is not parsed again), finds the key of a domain (the store's active key,
 * decrypted with the master key, or a key file dir/DOMAIN.SELECTOR.key) and signs one
 * message per signer behind a header / eoh / body / eom interface that a milter drives from
 * its callbacks: relaxed/relaxed canonicalisation done here (RFC 6376 3.4.2, 3.4.4) and
 * rsa-sha256 or ed25519-sha256 (RFC 8463) with the key's EVP_PKEY, parsed once per key.
 * ctl-dkim.c uses the key helpers to generate, import and publish keys.
 *
 * Public: mw_dkim_lib_get, mw_dkim_ed25519_supported, mw_dkim_domain_normalize,
 * mw_dkim_selector_normalize,
 * mw_dkim_key_new/_free/_domain/_selector/_type/_algorithm/_sign_digest,
 * mw_dkim_key_cache_flush, mw_dkim_key_parses, mw_dkim_pem_public,
 * mw_dkim_generate_rsa, mw_dkim_txt_record, mw_dkim_key_ad, mw_dkim_key_from_store,
 * mw_dkim_key_load_file, mw_dkim_key_from_dir, mw_dkim_key_lookup,
 * mw_dkim_signer_new/_header/_too_many/_eoh/_body/_eom/_free.
 *
 * Diagnostics: through error_r only; nothing here logs. Messages never contain key
 * material; header values from messages are not echoed.
 */
#include "mw-build.h"
#include "mw-dkim-sign.h"
#include "mw-tagrule.h"
#include "mw-addr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <opendkim/dkim.h>

struct mw_dkim_key {
	char domain[MW_DKIM_DOMAIN_MAX + 1];
	char selector[MW_DKIM_SELECTOR_MAX + 1];
	enum mw_dkim_key_type type;
	char *pem; /* NUL-terminated, wiped on free */
	size_t pem_len;
	EVP_PKEY *pkey;           /* parsed once, shared (by reference) with the signers */
	struct mw_dkim_key *also; /* owned: a second key that signs too (rotation overlap) */
};

enum signer_state { SIGNER_HEADERS, SIGNER_BODY, SIGNER_DONE, SIGNER_FAILED };

/* The signer does the DKIM work itself (relaxed/relaxed, RFC 6376 3.4.2 and 3.4.4) with the
   key parsed once per mw_dkim_key: libopendkim parses the PEM and sets up the RSA key anew
   for every signature, which cost about 0.9 ms per message besides the RSA operation. */
struct mw_dkim_signer {
	enum signer_state state;
	enum mw_dkim_key_type type;
	EVP_PKEY *pkey;              /* a reference to the key's */
	struct mw_dkim_signer *also; /* owned: the signer of the key's second key, or NULL */
	char domain[MW_DKIM_DOMAIN_MAX + 1];
	char selector[MW_DKIM_SELECTOR_MAX + 1];
	size_t header_bytes;
	mw_str hdrs; /* the signed header fields as given: name NUL value NUL, in message order */
	size_t nhdrs;
	bool too_many;        /* more than MW_DKIM_SIGNED_FIELDS_MAX fields to sign */
	const char **hdrlist; /* sign_headers, split (owned strings in hdrbuf) */
	char *hdrbuf;
	EVP_MD_CTX *bh; /* the body hash */
	char out[4096]; /* canonical body bytes not yet hashed */
	size_t outlen;
	size_t line_len;    /* content bytes on the current body line */
	size_t empty_lines; /* empty body lines held back */
	bool wsp;           /* blanks pending on the current line */
	bool cr;            /* the last byte was a CR */
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static DKIM_LIB *lib_handle;

/* lib_init - make the process's libopendkim handle (once) */
static void lib_init(void)
{
	unsigned int flags = 0;
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	if (lib == NULL)
		return;
	if (dkim_options(lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	    DKIM_STAT_OK) {
		dkim_close(lib);
		return;
	}
	flags |= DKIM_LIBFLAGS_FIXCRLF;
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	    DKIM_STAT_OK) {
		dkim_close(lib);
		return;
	}
	lib_handle = lib;
}

/* mw_dkim_lib_get - the process's libopendkim handle, NULL if it could not be made */
struct dkim_lib *mw_dkim_lib_get(void)
{
	(void)pthread_once(&lib_once, lib_init);
	return lib_handle;
}

/* mw_dkim_ed25519_supported - this libopendkim signs ed25519-sha256 */
bool mw_dkim_ed25519_supported(void)
{
	DKIM_LIB *lib = mw_dkim_lib_get();
	return lib != NULL && dkim_libfeature(lib, DKIM_FEATURE_ED25519);
}

/* mw_dkim_domain_normalize - a signing domain in lower-case A-label form */
int mw_dkim_domain_normalize(const char *in, char *out, size_t outsize, mw_error *error_r)
{
	size_t len;
	if (in == NULL || *in == '\0') {
		mw_error_set(error_r, "DKIM domain is empty");
		return -1;
	}
	if (mw_addr_domain_normalize(in, strlen(in), out, outsize, error_r) < 0) {
		mw_error_prefix(error_r, "DKIM domain");
		return -1;
	}
	len = strlen(out);
	if (len > 0 && out[len - 1] == '.')
		out[len - 1] = '\0';
	if (strlen(out) > MW_DKIM_DOMAIN_MAX || strchr(out, '.') == NULL) {
		mw_error_set(error_r,
		             "DKIM domain must have at least two labels and at most %d "
		             "bytes",
		             MW_DKIM_DOMAIN_MAX);
		return -1;
	}
	return 0;
}

/* mw_dkim_selector_normalize - a selector: dot-separated labels of [A-Za-z0-9_-] */
int mw_dkim_selector_normalize(const char *in, char *out, size_t outsize, mw_error *error_r)
{
	size_t len, i, label = 0;
	if (in == NULL || *in == '\0') {
		mw_error_set(error_r, "DKIM selector is empty");
		return -1;
	}
	len = strnlen(in, MW_DKIM_SELECTOR_MAX + 1);
	if (len > MW_DKIM_SELECTOR_MAX || len >= outsize) {
		mw_error_set(error_r, "DKIM selector is longer than %d bytes",
		             MW_DKIM_SELECTOR_MAX);
		return -1;
	}
	for (i = 0; i <= len; i++) {
		char c = in[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				mw_error_set(error_r,
				             "DKIM selector has an empty or over-long label");
				return -1;
			}
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_')) {
			mw_error_set(error_r,
			             "DKIM selector may hold only letters, digits, '-', '_' "
			             "and dots");
			return -1;
		}
		label++;
	}
	memcpy(out, in, len + 1);
	mw_ascii_lower(out);
	return 0;
}

/* ssl_error - append OpenSSL's first queued error (if any) to a message, clear the queue */
static void ssl_error(mw_error *error_r, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		mw_error_set(error_r, "%s (%s)", what, buf);
	} else {
		mw_error_set(error_r, "%s", what);
	}
	ERR_clear_error();
}

/* mem_has - whether NEEDLE occurs in p[0..len) (p need not be NUL-terminated) */
static bool mem_has(const char *p, size_t len, const char *needle)
{
	size_t n = strlen(needle), i;
	for (i = 0; n <= len && i <= len - n; i++)
		if (memcmp(p + i, needle, n) == 0)
			return true;
	return false;
}

/* pem_parse - parse and check a PEM private key; the caller frees the EVP_PKEY */
static EVP_PKEY *pem_parse(const char *pem, size_t pem_len, enum mw_dkim_key_type *type_r,
                           mw_error *error_r)
{
	EVP_PKEY *pkey;
	BIO *bio;
	int bits;
	if (pem == NULL || pem_len == 0) {
		mw_error_set(error_r, "DKIM private key is empty");
		return NULL;
	}
	if (pem_len > MW_DKIM_KEY_PEM_MAX) {
		mw_error_set(error_r, "DKIM private key is longer than %d bytes",
		             MW_DKIM_KEY_PEM_MAX);
		return NULL;
	}
	/* pem need not be NUL-terminated: search within pem_len only */
	if (memchr(pem, '\0', pem_len) != NULL || !mem_has(pem, pem_len, "-----BEGIN ")) {
		mw_error_set(error_r, "DKIM private key is not in PEM form");
		return NULL;
	}
	if (mem_has(pem, pem_len, "ENCRYPTED")) {
		mw_error_set(error_r, "DKIM private key is protected by a passphrase: "
		                      "store it unencrypted (the store encrypts it)");
		return NULL;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (bio == NULL) {
		ssl_error(error_r, "out of memory");
		return NULL;
	}
	/* a NULL-returning passphrase callback: an encrypted key fails instead of prompting */
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	if (pkey == NULL) {
		ssl_error(error_r, "DKIM private key does not parse");
		return NULL;
	}
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < MW_DKIM_RSA_MIN_BITS || bits > MW_DKIM_RSA_MAX_BITS) {
			mw_error_set(error_r, "DKIM RSA key has %d bits: %d to %d are accepted",
			             bits, MW_DKIM_RSA_MIN_BITS, MW_DKIM_RSA_MAX_BITS);
			EVP_PKEY_free(pkey);
			return NULL;
		}
		*type_r = MW_DKIM_KEY_RSA;
	} else if (EVP_PKEY_is_a(pkey, "ED25519")) {
		*type_r = MW_DKIM_KEY_ED25519;
	} else {
		mw_error_set(error_r, "DKIM private key is neither RSA nor Ed25519");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

/* Parsed keys, found by the SHA-256 of their PEM text. The milter's per-domain key cache
   expires every cache_ttl, and each refresh reads (and for the store decrypts) the key
   again; parsing it again as well, and with a new EVP_PKEY setting up OpenSSL's per-key
   state anew (RSA blinding per thread, Montgomery contexts), cost about 14 M instructions
   (callgrind, RSA-2048: several ms) for the next message. Here the same bytes give a
   counted reference to the key parsed before; other bytes (a rotated or replaced key) are
   parsed, so a key is never answered from the cache for text it was not parsed from, and
   what fails to parse is never cached. At most PKEY_CACHE_MAX keys; one unused for
   PKEY_CACHE_IDLE seconds is dropped at the next lookup (a retired key does not stay in
   memory for long), and when full the least recently used goes. mw_dkim_key_cache_flush
   empties it (the milter's SIGHUP). */
#define PKEY_CACHE_MAX  32
#define PKEY_CACHE_IDLE 600
struct pkey_entry {
	unsigned char digest[32];
	EVP_PKEY *pkey; /* NULL: a free slot */
	enum mw_dkim_key_type type;
	int64_t used; /* mw_mono_s */
};
static pthread_mutex_t pkey_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pkey_entry pkey_cache[PKEY_CACHE_MAX];
static unsigned long pkey_parses;

/* pkey_drop - empty a slot (pkey_lock held) */
static void pkey_drop(struct pkey_entry *e)
{
	EVP_PKEY_free(e->pkey);
	mw_memzero(e, sizeof(*e));
}

/* pkey_put - remember PKEY parsed from the text of DIGEST (pkey_lock held) */
static void pkey_put(const unsigned char *digest, EVP_PKEY *pkey, enum mw_dkim_key_type type,
                     int64_t now)
{
	struct pkey_entry *slot = NULL;
	size_t i;
	for (i = 0; i < PKEY_CACHE_MAX; i++) {
		struct pkey_entry *e = &pkey_cache[i];
		if (e->pkey != NULL && memcmp(e->digest, digest, sizeof(e->digest)) == 0)
			return; /* another thread parsed the same text meanwhile */
		if (slot == NULL ||
		    (slot->pkey != NULL && (e->pkey == NULL || e->used < slot->used)))
			slot = e;
	}
	if (EVP_PKEY_up_ref(pkey) != 1)
		return;
	if (slot->pkey != NULL)
		pkey_drop(slot);
	memcpy(slot->digest, digest, sizeof(slot->digest));
	slot->pkey = pkey;
	slot->type = type;
	slot->used = now;
}

/* pem_parse_cached - pem_parse through the cache of parsed keys */
static EVP_PKEY *pem_parse_cached(const char *pem, size_t pem_len, enum mw_dkim_key_type *type_r,
                                  mw_error *error_r)
{
	unsigned char digest[32];
	unsigned int dlen = 0;
	int64_t now = mw_mono_s();
	EVP_PKEY *pkey = NULL;
	size_t i;

	if (pem == NULL || pem_len == 0 || pem_len > MW_DKIM_KEY_PEM_MAX ||
	    EVP_Digest(pem, pem_len, digest, &dlen, EVP_sha256(), NULL) != 1 ||
	    dlen != sizeof(digest))
		return pem_parse(pem, pem_len, type_r, error_r); /* its error, nothing cached */
	(void)pthread_mutex_lock(&pkey_lock);
	for (i = 0; i < PKEY_CACHE_MAX; i++) {
		struct pkey_entry *e = &pkey_cache[i];
		if (e->pkey == NULL)
			continue;
		if (now - e->used > PKEY_CACHE_IDLE) {
			pkey_drop(e);
		} else if (pkey == NULL && memcmp(e->digest, digest, sizeof(digest)) == 0 &&
		           EVP_PKEY_up_ref(e->pkey) == 1) {
			pkey = e->pkey;
			*type_r = e->type;
			e->used = now;
		}
	}
	(void)pthread_mutex_unlock(&pkey_lock);
	if (pkey != NULL)
		return pkey;
	pkey = pem_parse(pem, pem_len, type_r, error_r);
	if (pkey == NULL)
		return NULL;
	(void)pthread_mutex_lock(&pkey_lock);
	pkey_parses++;
	pkey_put(digest, pkey, *type_r, now);
	(void)pthread_mutex_unlock(&pkey_lock);
	return pkey;
}

/* mw_dkim_key_cache_flush - forget every parsed key (keys and signers keep theirs) */
void mw_dkim_key_cache_flush(void)
{
	size_t i;
	(void)pthread_mutex_lock(&pkey_lock);
	for (i = 0; i < PKEY_CACHE_MAX; i++)
		if (pkey_cache[i].pkey != NULL)
			pkey_drop(&pkey_cache[i]);
	(void)pthread_mutex_unlock(&pkey_lock);
}

/* mw_dkim_key_parses - how many keys mw_dkim_key_new has parsed (not found in the cache) */
unsigned long mw_dkim_key_parses(void)
{
	unsigned long n;
	(void)pthread_mutex_lock(&pkey_lock);
	n = pkey_parses;
	(void)pthread_mutex_unlock(&pkey_lock);
	return n;
}

/* b64_append - append base64 of len bytes to out */
static void b64_append(mw_str *out, const unsigned char *p, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	unsigned char *b = mw_malloc(cap);
	int n = EVP_EncodeBlock(b, p, (int)len);
	(void)mw_str_append(out, (const char *)b, n > 0 ? (size_t)n : 0);
	free(b);
}

/* public_b64 - the p= value of a parsed key */
static int public_b64(EVP_PKEY *pkey, enum mw_dkim_key_type type, mw_str *pub_r, mw_error *error_r)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	int n;
	if (type == MW_DKIM_KEY_ED25519) {
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1) {
			ssl_error(error_r, "cannot extract the Ed25519 public key");
			return -1;
		}
		b64_append(pub_r, raw, rawlen);
		return 0;
	}
	n = i2d_PUBKEY(pkey, &der);
	if (n <= 0) {
		ssl_error(error_r, "cannot encode the RSA public key");
		return -1;
	}
	b64_append(pub_r, der, (size_t)n);
	OPENSSL_free(der);
	return 0;
}

/* mw_dkim_pem_public - check a PEM private key and give its p= value */
int mw_dkim_pem_public(const char *pem, size_t pem_len, enum mw_dkim_key_type *type_r,
                       mw_str *pub_r, mw_error *error_r)
{
	enum mw_dkim_key_type type;
	EVP_PKEY *pkey = pem_parse(pem, pem_len, &type, error_r);
	int ret;
	if (pkey == NULL)
		return -1;
	ret = public_b64(pkey, type, pub_r, error_r);
	EVP_PKEY_free(pkey);
	if (ret == 0 && type_r != NULL)
		*type_r = type;
	return ret;
}

/* mw_dkim_rsa_bits_ok - bits is a size a new RSA key may have */
bool mw_dkim_rsa_bits_ok(long long bits)
{
	return bits == 2048 || bits == 3072 || bits == 4096;
}

/* mw_dkim_generate_rsa - a new RSA key: PKCS#8 PEM and p= value */
int mw_dkim_generate_rsa(unsigned bits, mw_str *pem_r, mw_str *pub_r, mw_error *error_r)
{
	EVP_PKEY *pkey;
	BIO *bio;
	char *data;
	long n;
	int ret = -1;
	if (!mw_dkim_rsa_bits_ok(bits)) {
		mw_error_set(error_r, "RSA key size must be " MW_DKIM_RSA_BITS_TEXT " bits");
		return -1;
	}
	ERR_clear_error();
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	if (pkey == NULL) {
		ssl_error(error_r, "RSA key generation failed");
		return -1;
	}
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		ssl_error(error_r, "cannot write the private key");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || mw_str_append(pem_r, data, (size_t)n) < 0) {
		mw_error_set(error_r, "cannot write the private key");
		goto out;
	}
	ret = public_b64(pkey, MW_DKIM_KEY_RSA, pub_r, error_r);
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return ret;
}

/* mw_dkim_txt_record - the zone-file line publishing a public key */
int mw_dkim_txt_record(const char *domain, const char *selector, enum mw_dkim_key_type type,
                       const char *pub_b64, mw_str *out, mw_error *error_r)
{
	mw_str txt;
	size_t off, n;
	mw_str_init(&txt, 0);
	if (mw_str_appendf(&txt, "v=DKIM1; k=%s; p=%s",
	                   type == MW_DKIM_KEY_ED25519 ? "ed25519" : "rsa", pub_b64) < 0 ||
	    mw_str_appendf(out, "%s._domainkey.%s. IN TXT (", selector, domain) < 0) {
		mw_str_free(&txt);
		mw_error_set(error_r, "TXT record too long");
		return -1;
	}
	/* character-strings hold at most 255 bytes: split the text (the parts join again) */
	for (off = 0; off < txt.len; off += n) {
		n = txt.len - off > 255 ? 255 : txt.len - off;
		(void)mw_str_appends(out, " \"");
		(void)mw_str_append(out, txt.buf + off, n);
		(void)mw_str_appendc(out, '"');
	}
	(void)mw_str_appends(out, " )");
	mw_str_free(&txt);
	return 0;
}

/* mw_dkim_key_ad - the associated data binding an encrypted key to domain and selector */
int mw_dkim_key_ad(const char *domain, const char *selector, mw_str *out)
{
	return mw_str_appendf(out, "dkim:%s:%s", domain, selector);
}

/* mw_dkim_key_new - a checked private key for domain and selector */
mw_dkim_key *mw_dkim_key_new(const char *domain, const char *selector, const char *pem,
                             size_t pem_len, mw_error *error_r)
{
	mw_dkim_key *key;
	enum mw_dkim_key_type type;
	EVP_PKEY *pkey;
	char d[MW_DKIM_DOMAIN_MAX + 2], s[MW_DKIM_SELECTOR_MAX + 1];
	if (mw_dkim_domain_normalize(domain, d, sizeof(d), error_r) < 0 ||
	    mw_dkim_selector_normalize(selector, s, sizeof(s), error_r) < 0)
		return NULL;
	pkey = pem_parse_cached(pem, pem_len, &type, error_r);
	if (pkey == NULL)
		return NULL;
	if (type == MW_DKIM_KEY_ED25519 && !mw_dkim_ed25519_supported()) {
		EVP_PKEY_free(pkey);
		mw_error_set(error_r, "this libopendkim cannot sign with Ed25519 keys");
		return NULL;
	}
	key = mw_calloc(1, sizeof(*key));
	(void)mw_strlcpy(key->domain, d, sizeof(key->domain));
	(void)mw_strlcpy(key->selector, s, sizeof(key->selector));
	key->type = type;
	key->pem = mw_strndup(pem, pem_len);
	key->pem_len = pem_len;
	key->pkey = pkey;
	return key;
}

/* mw_dkim_key_free - wipe and free a key */
void mw_dkim_key_free(mw_dkim_key **key)
{
	if (key == NULL || *key == NULL)
		return;
	mw_dkim_key_free(&(*key)->also);
	mw_memzero((*key)->pem, (*key)->pem_len);
	free((*key)->pem);
	EVP_PKEY_free((*key)->pkey);
	mw_memzero(*key, sizeof(**key));
	free(*key);
	*key = NULL;
}

/* mw_dkim_key_domain - the signing domain (d=) */
const char *mw_dkim_key_domain(const mw_dkim_key *key)
{
	return key->domain;
}

/* mw_dkim_key_selector - the selector (s=) */
const char *mw_dkim_key_selector(const mw_dkim_key *key)
{
	return key->selector;
}

/* mw_dkim_key_type - RSA or Ed25519 */
enum mw_dkim_key_type mw_dkim_key_type(const mw_dkim_key *key)
{
	return key->type;
}

/* mw_dkim_key_algorithm - the a= value the key signs with */
const char *mw_dkim_key_algorithm(const mw_dkim_key *key)
{
	return key->type == MW_DKIM_KEY_ED25519 ? "ed25519-sha256" : "rsa-sha256";
}

/* key_from_row - decrypt and parse a store row's key */
static int key_from_row(const struct mw_dkim_key_row *row, const mw_master_key *master_key,
                        mw_dkim_key **key_r, mw_error *error_r)
{
	mw_str ad, plain;
	int ret;
	mw_str_init(&ad, 0);
	mw_str_init(&plain, MW_DKIM_KEY_PEM_MAX);
	(void)mw_dkim_key_ad(row->domain, row->selector, &ad);
	if (mw_secret_decrypt(master_key, row->private_key, mw_str_c(&ad), &plain, error_r) < 0) {
		mw_error_prefix(error_r,
		                "DKIM key %s for %s: cannot decrypt (wrong master key "
		                "or tampered row)",
		                row->selector, row->domain);
		ret = MW_DKIM_LOOKUP_ERROR;
	} else {
		*key_r = mw_dkim_key_new(row->domain, row->selector, plain.buf, plain.len, error_r);
		if (*key_r == NULL)
			mw_error_prefix(error_r, "DKIM key %s for %s", row->selector, row->domain);
		ret = *key_r != NULL ? MW_DKIM_LOOKUP_FOUND : MW_DKIM_LOOKUP_ERROR;
	}
	if (plain.buf != NULL)
		mw_memzero(plain.buf, plain.cap);
	mw_str_free(&plain);
	mw_str_free(&ad);
	return ret;
}

/* mw_dkim_key_from_store - the active key of domain, decrypted */
int mw_dkim_key_from_store(mw_store *store, const mw_master_key *master_key, const char *domain,
                           mw_dkim_key **key_r, mw_error *error_r)
{
	struct mw_dkim_key_row row, *rows = NULL;
	char d[MW_DKIM_DOMAIN_MAX + 2];
	size_t n = 0, i;
	int ret;
	*key_r = NULL;
	if (mw_dkim_domain_normalize(domain, d, sizeof(d), error_r) < 0)
		return MW_DKIM_LOOKUP_ERROR;
	ret = mw_store_dkim_key_get_active(store, d, &row, error_r);
	if (ret == MW_STORE_NOTFOUND)
		return MW_DKIM_LOOKUP_NONE;
	if (ret != MW_STORE_OK)
		return MW_DKIM_LOOKUP_ERROR;
	ret = key_from_row(&row, master_key, key_r, error_r);
	mw_dkim_key_row_clear(&row);
	if (ret != MW_DKIM_LOOKUP_FOUND)
		return ret;
	/* a rotation's overlap: the previous key (retiring) signs too, the newest one */
	if (mw_store_dkim_key_list(store, d, &rows, &n, error_r) != MW_STORE_OK) {
		mw_dkim_key_free(key_r);
		return MW_DKIM_LOOKUP_ERROR;
	}
	for (i = n; i-- > 0;)
		if (rows[i].active && strcmp(rows[i].state, "retiring") == 0 &&
		    strcmp(rows[i].selector, (*key_r)->selector) != 0) {
			ret = key_from_row(&rows[i], master_key, &(*key_r)->also, error_r);
			break;
		}
	mw_dkim_key_rows_free(rows, n);
	if (ret != MW_DKIM_LOOKUP_FOUND)
		mw_dkim_key_free(key_r);
	return ret;
}

/* mw_dkim_key_load_file - read a key file that only its owner can read */
int mw_dkim_key_load_file(const char *path, const char *domain, const char *selector,
                          mw_dkim_key **key_r, mw_error *error_r)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;
	*key_r = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		mw_error_set(error_r, "DKIM key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		mw_error_set(error_r, "DKIM key file %s is not a regular file", path);
		goto fail;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		mw_error_set(error_r,
		             "DKIM key file %s is accessible by group or others (mode %04o): "
		             "chmod 600 it",
		             path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_size <= 0 || st.st_size > MW_DKIM_KEY_PEM_MAX) {
		mw_error_set(error_r, "DKIM key file %s is empty or longer than %d bytes", path,
		             MW_DKIM_KEY_PEM_MAX);
		goto fail;
	}
	buf = mw_malloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			mw_error_set(error_r, "DKIM key file %s: read failed", path);
			goto fail;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	(void)close(fd);
	*key_r = mw_dkim_key_new(domain, selector, buf, len, error_r);
	mw_memzero(buf, len);
	free(buf);
	if (*key_r == NULL) {
		mw_error_prefix(error_r, "DKIM key file %s", path);
		return -1;
	}
	return 0;
fail:
	if (buf != NULL) {
		mw_memzero(buf, len);
		free(buf);
	}
	(void)close(fd);
	return -1;
}

/* mw_dkim_key_from_dir - the single DOMAIN.SELECTOR.key of domain in dir */
int mw_dkim_key_from_dir(const char *dir, const char *domain, mw_dkim_key **key_r,
                         mw_error *error_r)
{
	char d[MW_DKIM_DOMAIN_MAX + 2], sel[64], norm[64], found[64] = "";
	struct dirent *de;
	size_t dlen, nlen;
	mw_str path;
	DIR *dh;
	int ret;
	*key_r = NULL;
	if (mw_dkim_domain_normalize(domain, d, sizeof(d), error_r) < 0)
		return MW_DKIM_LOOKUP_ERROR;
	dh = opendir(dir);
	if (dh == NULL) {
		mw_error_set(error_r, "DKIM key directory %s: %s", dir, strerror(errno));
		return MW_DKIM_LOOKUP_ERROR;
	}
	dlen = strlen(d);
	while ((de = readdir(dh)) != NULL) {
		const char *name = de->d_name, *s;
		nlen = strlen(name);
		/* DOMAIN "." SELECTOR ".key" in lower case, the selector one label (so no name
		   is ambiguous) */
		if (nlen <= dlen + 5 || strncmp(name, d, dlen) != 0 || name[dlen] != '.' ||
		    strcmp(name + nlen - 4, ".key") != 0)
			continue;
		s = name + dlen + 1;
		if ((size_t)(name + nlen - 4 - s) >= sizeof(sel))
			continue;
		memcpy(sel, s, (size_t)(name + nlen - 4 - s));
		sel[name + nlen - 4 - s] = '\0';
		if (strchr(sel, '.') != NULL ||
		    mw_dkim_selector_normalize(sel, norm, sizeof(norm), NULL) < 0 ||
		    strcmp(sel, norm) != 0)
			continue;
		if (found[0] != '\0') {
			mw_error_set(error_r,
			             "DKIM key directory %s has several keys for %s (%s, %s): "
			             "keep one",
			             dir, d, found, sel);
			(void)closedir(dh);
			return MW_DKIM_LOOKUP_ERROR;
		}
		(void)mw_strlcpy(found, sel, sizeof(found));
	}
	(void)closedir(dh);
	if (found[0] == '\0')
		return MW_DKIM_LOOKUP_NONE;
	mw_str_init(&path, 0);
	(void)mw_str_appendf(&path, "%s/%s.%s.key", dir, d, found);
	ret = mw_dkim_key_load_file(mw_str_c(&path), d, found, key_r, error_r);
	mw_str_free(&path);
	return ret < 0 ? MW_DKIM_LOOKUP_ERROR : MW_DKIM_LOOKUP_FOUND;
}

/* mw_dkim_key_lookup - the store's active key of domain, else its key file */
int mw_dkim_key_lookup(mw_store *store, const mw_master_key *master_key, const char *dir,
                       const char *domain, mw_dkim_key **key_r, mw_error *error_r)
{
	int ret = MW_DKIM_LOOKUP_NONE;
	*key_r = NULL;
	if (store != NULL && master_key != NULL) {
		ret = mw_dkim_key_from_store(store, master_key, domain, key_r, error_r);
		if (ret != MW_DKIM_LOOKUP_NONE)
			return ret;
	}
	if (dir != NULL && *dir != '\0')
		ret = mw_dkim_key_from_dir(dir, domain, key_r, error_r);
	return ret;
}

/* split_headers - a sign_headers list into a NULL-terminated array over one buffer */
static int split_headers(mw_dkim_signer *s, const char *list, mw_error *error_r)
{
	size_t n = 0, i, len;
	char *p, *save = NULL;
	if (list == NULL || *list == '\0')
		list = MW_DKIM_DEFAULT_SIGN_HEADERS;
	len = strnlen(list, MW_DKIM_HEADER_LIST_MAX + 1);
	if (len > MW_DKIM_HEADER_LIST_MAX) {
		mw_error_set(error_r, "DKIM header list is longer than %d bytes",
		             MW_DKIM_HEADER_LIST_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		char c = list[i];
		/* field-name characters only, '*' as a wildcard */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '*' || c == ',' || c == ' ' || c == '\t')) {
			mw_error_set(error_r, "DKIM header list may hold only header names ('*' as "
			                      "a wildcard), separated by commas or blanks");
			return -1;
		}
	}
	s->hdrbuf = mw_strdup(list);
	s->hdrlist = mw_calloc(len / 2 + 2, sizeof(*s->hdrlist));
	for (p = strtok_r(s->hdrbuf, ", \t", &save); p != NULL; p = strtok_r(NULL, ", \t", &save)) {
		if (strlen(p) > MW_TAGRULE_VALUE_MAX) {
			mw_error_set(error_r, "DKIM header list: a name is longer than %d bytes",
			             MW_TAGRULE_VALUE_MAX);
			return -1;
		}
		s->hdrlist[n++] = p;
	}
	s->hdrlist[n] = NULL;
	if (n == 0) {
		mw_error_set(error_r, "DKIM header list is empty");
		return -1;
	}
	return 0;
}

/* lower - ASCII lower case */
static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* wanted - whether header NAME is signed (the list, and From always). A name with ';'
   (RFC 5322 allows it) is never signed: in h= it would end the tag, and what follows would
   be read as tags the sender chose (l=0, leaving the body unsigned). */
static bool wanted(const mw_dkim_signer *s, const char *name)
{
	size_t i;
	if (strchr(name, ';') != NULL)
		return false;
	if (mw_ascii_strcasecmp(name, "From") == 0)
		return true;
	for (i = 0; s->hdrlist[i] != NULL; i++)
		if (mw_tagrule_glob(s->hdrlist[i], name)) /* the one glob matcher */
			return true;
	return false;
}

/* signer_error - record a failure in error_r and poison the signer */
static int signer_error(mw_dkim_signer *s, mw_error *error_r, const char *what)
{
	mw_error_set(error_r, "DKIM %s failed", what);
	s->state = SIGNER_FAILED;
	return -1;
}

/* signer_state_check - the call fits the signer's state */
static int signer_state_check(mw_dkim_signer *s, enum signer_state want, const char *what,
                              mw_error *error_r)
{
	if (s == NULL || s->state != want) {
		mw_error_set(error_r, "DKIM %s: %s", what,
		             s != NULL && s->state == SIGNER_FAILED
		                 ? "the signer failed earlier"
		                 : "called out of order (header, eoh, body, eom)");
		if (s != NULL)
			s->state = SIGNER_FAILED;
		return -1;
	}
	return 0;
}

/* mw_dkim_signer_new - a signing handle for one message */
mw_dkim_signer *mw_dkim_signer_new(const mw_dkim_key *key, const char *job_id,
                                   const char *sign_headers, mw_error *error_r)
{
	mw_dkim_signer *s;
	(void)job_id;
	if (key == NULL || key->pkey == NULL) {
		mw_error_set(error_r, "DKIM signer: no key");
		return NULL;
	}
	s = mw_calloc(1, sizeof(*s));
	if (split_headers(s, sign_headers, error_r) < 0) {
		mw_dkim_signer_free(&s);
		return NULL;
	}
	s->bh = EVP_MD_CTX_new();
	if (s->bh == NULL || EVP_DigestInit_ex(s->bh, EVP_sha256(), NULL) != 1 ||
	    EVP_PKEY_up_ref(key->pkey) != 1) {
		ssl_error(error_r, "DKIM signer");
		mw_dkim_signer_free(&s);
		return NULL;
	}
	s->pkey = key->pkey;
	s->type = key->type;
	(void)mw_strlcpy(s->domain, key->domain, sizeof(s->domain));
	(void)mw_strlcpy(s->selector, key->selector, sizeof(s->selector));
	mw_str_init(&s->hdrs, MW_DKIM_HEADERS_MAX + 1);
	s->state = SIGNER_HEADERS;
	if (key->also != NULL) {
		s->also = mw_dkim_signer_new(key->also, job_id, sign_headers, error_r);
		if (s->also == NULL)
			mw_dkim_signer_free(&s);
	}
	return s;
}

/* mw_dkim_key_also - the second key that signs beside key (rotation overlap), or NULL */
const mw_dkim_key *mw_dkim_key_also(const mw_dkim_key *key)
{
	return key != NULL ? key->also : NULL;
}

/* mw_dkim_signer_also - the signer of the second key, finished by its own eom */
mw_dkim_signer *mw_dkim_signer_also(mw_dkim_signer *signer)
{
	return signer != NULL ? signer->also : NULL;
}

/* signer_header - keep one header field to sign (name NUL value NUL) for the end; a field
   not signed only counts towards MW_DKIM_HEADERS_MAX */
static int signer_header(mw_dkim_signer *signer, const char *name, const char *value,
                         mw_error *error_r)
{
	size_t nlen, vlen, i;
	if (signer_state_check(signer, SIGNER_HEADERS, "header", error_r) < 0)
		return -1;
	if (name == NULL || value == NULL) {
		mw_error_set(error_r, "DKIM header: missing name or value");
		signer->state = SIGNER_FAILED;
		return -1;
	}
	nlen = strnlen(name, MW_DKIM_HEADER_MAX + 1);
	vlen = strnlen(value, MW_DKIM_HEADER_MAX + 1);
	if (nlen == 0 || nlen + vlen + 2 > MW_DKIM_HEADER_MAX ||
	    signer->header_bytes + nlen + vlen + 4 > MW_DKIM_HEADERS_MAX) {
		mw_error_set(error_r, "DKIM header: empty name, or header (or all headers) over "
		                      "the limit");
		signer->state = SIGNER_FAILED;
		return -1;
	}
	for (i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 32 || c >= 127 || c == ':') {
			mw_error_set(error_r, "DKIM header: invalid header name");
			signer->state = SIGNER_FAILED;
			return -1;
		}
	}
	signer->header_bytes += nlen + vlen + 4;
	if (!wanted(signer, name))
		return 0;
	if (signer->nhdrs >= MW_DKIM_SIGNED_FIELDS_MAX) {
		mw_error_set(error_r, "DKIM header: more than %d header fields to sign",
		             MW_DKIM_SIGNED_FIELDS_MAX);
		signer->too_many = true;
		signer->state = SIGNER_FAILED;
		return -1;
	}
	if (mw_str_append(&signer->hdrs, name, nlen + 1) < 0 ||
	    mw_str_append(&signer->hdrs, value, vlen + 1) < 0)
		return signer_error(signer, error_r, "header");
	signer->nhdrs++;
	return 0;
}

/* mw_dkim_signer_header - one header field, to this signer and its second one */
int mw_dkim_signer_header(mw_dkim_signer *signer, const char *name, const char *value,
                          mw_error *error_r)
{
	if (signer_header(signer, name, value, error_r) < 0)
		return -1;
	return signer->also != NULL ? signer_header(signer->also, name, value, error_r) : 0;
}

/* mw_dkim_signer_too_many - the signer failed on more than MW_DKIM_SIGNED_FIELDS_MAX
   header fields to sign (a property of the message, not a passing failure) */
bool mw_dkim_signer_too_many(const mw_dkim_signer *signer)
{
	return signer != NULL && signer->too_many;
}

/* mw_dkim_signer_eoh - the end of the header */
int mw_dkim_signer_eoh(mw_dkim_signer *signer, mw_error *error_r)
{
	if (signer_state_check(signer, SIGNER_HEADERS, "end of header", error_r) < 0)
		return -1;
	signer->state = SIGNER_BODY;
	return signer->also != NULL ? mw_dkim_signer_eoh(signer->also, error_r) : 0;
}

/* bh_put - one byte of canonical body into the hash (buffered) */
static int bh_put(mw_dkim_signer *s, char c)
{
	if (s->outlen == sizeof(s->out)) {
		if (EVP_DigestUpdate(s->bh, s->out, s->outlen) != 1)
			return -1;
		s->outlen = 0;
	}
	s->out[s->outlen++] = c;
	return 0;
}

/* bh_char - one content byte of a body line (relaxed: blank runs become one SP, empty
   lines are held back until content follows, so trailing empty lines never count) */
static int bh_char(mw_dkim_signer *s, char c)
{
	if (c == ' ' || c == '\t') {
		s->wsp = true;
		return 0;
	}
	for (; s->empty_lines > 0; s->empty_lines--)
		if (bh_put(s, '\r') < 0 || bh_put(s, '\n') < 0)
			return -1;
	if (s->wsp && bh_put(s, ' ') < 0)
		return -1;
	s->wsp = false;
	s->line_len++;
	return bh_put(s, c);
}

/* bh_eol - the end of a body line (trailing blanks dropped) */
static int bh_eol(mw_dkim_signer *s)
{
	s->wsp = false;
	if (s->line_len == 0) {
		s->empty_lines++;
		return 0;
	}
	s->line_len = 0;
	return bh_put(s, '\r') < 0 ? -1 : bh_put(s, '\n');
}

/* signer_body - a chunk of the body, canonicalised (relaxed) into the body hash */
static int signer_body(mw_dkim_signer *signer, const void *chunk, size_t len, mw_error *error_r)
{
	const char *p = chunk;
	size_t i;
	if (signer_state_check(signer, SIGNER_BODY, "body", error_r) < 0)
		return -1;
	if (len == 0)
		return 0;
	if (chunk == NULL) {
		mw_error_set(error_r, "DKIM body: no data");
		signer->state = SIGNER_FAILED;
		return -1;
	}
	for (i = 0; i < len; i++) {
		int ret;
		if (signer->cr) {
			signer->cr = false;
			if (p[i] == '\n') {
				if (bh_eol(signer) < 0)
					return signer_error(signer, error_r, "body hash");
				continue;
			}
			/* a bare CR ends a line, as a bare LF does (RFC 6376 5.3: both are made
			   CRLF before signing; libopendkim's FIXCRLF does the same) */
			if (bh_eol(signer) < 0)
				return signer_error(signer, error_r, "body hash");
		}
		if (p[i] == '\r') {
			signer->cr = true;
			continue;
		}
		ret = p[i] == '\n' ? bh_eol(signer) : bh_char(signer, p[i]);
		if (ret < 0)
			return signer_error(signer, error_r, "body hash");
	}
	return 0;
}

/* canon_header - append NAME:VALUE in relaxed form (no CRLF): lower-case name, unfolded,
   blank runs as one SP, no blanks at the ends of the value */
static int canon_header(mw_str *out, const char *name, const char *value)
{
	bool wsp = false, started = false;
	const char *p;
	for (p = name; *p != '\0'; p++)
		if (mw_str_appendc(out, lower(*p)) < 0)
			return -1;
	if (mw_str_appendc(out, ':') < 0)
		return -1;
	for (p = value; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == ' ' || *p == '\t') {
			wsp = true;
			continue;
		}
		if (wsp && started && mw_str_appendc(out, ' ') < 0)
			return -1;
		wsp = false;
		started = true;
		if (mw_str_appendc(out, *p) < 0)
			return -1;
	}
	return 0;
}

/* fold_add - append TEXT to the signature value, folding before it past 76 columns */
static int fold_add(mw_str *v, size_t *col, const char *text, const char *sep)
{
	size_t n = strlen(text) + strlen(sep);
	if (*col > 1 && *col + n > 76) {
		if (mw_str_appends(v, "\n\t") < 0)
			return -1;
		*col = 1;
	} else if (*col > 1 && sep[0] == ' ' && mw_str_appendc(v, ' ') < 0) {
		return -1;
	}
	if (mw_str_appends(v, text) < 0)
		return -1;
	*col += n;
	return 0;
}

/* b64 - base64 of LEN bytes into OUT (size >= 4 * ((len + 2) / 3) + 1) */
static void b64(char *out, const unsigned char *p, size_t len)
{
	(void)EVP_EncodeBlock((unsigned char *)out, p, (int)len);
}

/* sign_digest - the signature of the header hash DIGEST with the signer's key */
static int sign_digest(mw_dkim_signer *s, const unsigned char *digest, unsigned char *sig,
                       size_t *siglen)
{
	int ok = 0;
	if (s->type == MW_DKIM_KEY_ED25519) {
		/* RFC 8463: PureEdDSA over the SHA-256 of the canonical header */
		EVP_MD_CTX *mc = EVP_MD_CTX_new();
		ok = mc != NULL && EVP_DigestSignInit(mc, NULL, NULL, NULL, s->pkey) == 1 &&
		     EVP_DigestSign(mc, sig, siglen, digest, 32) == 1;
		EVP_MD_CTX_free(mc);
	} else {
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(s->pkey, NULL);
		ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		     EVP_PKEY_sign(pc, sig, siglen, digest, 32) == 1;
		EVP_PKEY_CTX_free(pc);
	}
	return ok ? 0 : -1;
}

/* mw_dkim_key_sign_digest - base64 signature of a SHA-256 DIGEST with KEY (ARC seals) */
int mw_dkim_key_sign_digest(const mw_dkim_key *key, const unsigned char digest[32], mw_str *b64_r,
                            mw_error *error_r)
{
	unsigned char sig[MW_DKIM_RSA_MAX_BITS / 8];
	size_t siglen = sizeof(sig);
	int ok;

	if (key->type == MW_DKIM_KEY_ED25519) {
		EVP_MD_CTX *mc = EVP_MD_CTX_new();
		ok = mc != NULL && EVP_DigestSignInit(mc, NULL, NULL, NULL, key->pkey) == 1 &&
		     EVP_DigestSign(mc, sig, &siglen, digest, 32) == 1;
		EVP_MD_CTX_free(mc);
	} else {
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(key->pkey, NULL);
		ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		     EVP_PKEY_sign(pc, sig, &siglen, digest, 32) == 1;
		EVP_PKEY_CTX_free(pc);
	}
	if (!ok) {
		ssl_error(error_r, "signing failed");
		return -1;
	}
	b64_append(b64_r, sig, siglen);
	return 0;
}

/* header_hash_input - the canonical signed header fields (bottom-up per name, as h=
   names them) followed by the canonical DKIM-Signature without its b= value */
static int header_hash_input(mw_dkim_signer *s, const char **names, const char **values, bool *used,
                             const mw_str *hlist, const mw_str *sigval, mw_str *canon)
{
	const char *p = hlist->buf, *end = hlist->buf + hlist->len;
	while (p < end) {
		size_t j = s->nhdrs;
		while (j-- > 0)
			if (!used[j] && mw_ascii_strcasecmp(names[j], p) == 0)
				break;
		if (j != (size_t)-1) {
			used[j] = true;
			if (canon_header(canon, names[j], values[j]) < 0 ||
			    mw_str_append(canon, "\r\n", 2) < 0)
				return -1;
		}
		p += strlen(p) + 1;
	}
	return canon_header(canon, "DKIM-Signature", mw_str_c(sigval));
}

/* over_add - append NAME (lower case) to the over-signed part of h= unless already there */
static int over_add(mw_str *hlist, size_t over_start, const char *name)
{
	const char *p = hlist->buf + over_start, *end = hlist->buf + hlist->len;
	size_t len = strlen(name), i;
	for (; p < end; p += strlen(p) + 1)
		if (mw_ascii_strcasecmp(p, name) == 0)
			return 0;
	for (i = 0; i < len; i++)
		if (mw_str_appendc(hlist, lower(name[i])) < 0)
			return -1;
	return mw_str_appendc(hlist, '\0');
}

/* oversign_names - every signed name once more in h=: the names of the signed fields,
   every name of the list without a wildcard (present or not) and From. A verifier then
   finds no field for each extra entry, and a field of that name added after signing
   breaks the signature (RFC 6376 5.4.2, 8.15). Names of a wildcard entry ("list-*") can
   only be over-signed when the message has them. */
static int oversign_names(const mw_dkim_signer *s, const char **names, size_t n, mw_str *hlist)
{
	size_t over_start = hlist->len, i;
	for (i = 0; i < n; i++)
		if (over_add(hlist, over_start, names[i]) < 0)
			return -1;
	for (i = 0; s->hdrlist[i] != NULL; i++)
		if (strchr(s->hdrlist[i], '*') == NULL &&
		    over_add(hlist, over_start, s->hdrlist[i]) < 0)
			return -1;
	return over_add(hlist, over_start, "from");
}

/* mw_dkim_signer_eom - finish and give the DKIM-Signature value */
int mw_dkim_signer_eom(mw_dkim_signer *signer, mw_str *value_r, mw_error *error_r)
{
	const char **names = NULL, **values = NULL;
	bool *used = NULL;
	unsigned char digest[EVP_MAX_MD_SIZE], sig[1024];
	char bh[64], *b = NULL, num[32];
	unsigned int dlen = 0;
	size_t siglen = sizeof(sig), i, col, n = 0;
	mw_str hlist, v, canon;
	const char *p, *end;
	bool told = false;
	int ret = -1;

	if (signer_state_check(signer, SIGNER_BODY, "end of message", error_r) < 0)
		return -1;
	/* the body: a pending bare CR ends its line; an unterminated last line gets its CRLF */
	if (signer->cr) {
		signer->cr = false;
		if (bh_eol(signer) < 0)
			return signer_error(signer, error_r, "body hash");
	}
	if (signer->line_len > 0 && bh_eol(signer) < 0)
		return signer_error(signer, error_r, "body hash");
	if ((signer->outlen > 0 &&
	     EVP_DigestUpdate(signer->bh, signer->out, signer->outlen) != 1) ||
	    EVP_DigestFinal_ex(signer->bh, digest, &dlen) != 1 || dlen != 32)
		return signer_error(signer, error_r, "body hash");
	signer->outlen = 0;
	b64(bh, digest, dlen);

	mw_str_init(&hlist, 0);
	mw_str_init(&v, 0);
	mw_str_init(&canon, 0);
	names = mw_calloc(signer->nhdrs + 1, sizeof(*names));
	values = mw_calloc(signer->nhdrs + 1, sizeof(*values));
	used = mw_calloc(signer->nhdrs + 1, sizeof(*used));
	p = signer->hdrs.buf;
	end = p != NULL ? p + signer->hdrs.len : NULL;
	while (p != NULL && p < end && n < signer->nhdrs) {
		names[n] = p;
		values[n] = p + strlen(p) + 1;
		p = values[n] + strlen(values[n]) + 1;
		n++;
	}
	/* h=: every signed field in message order (all kept fields are signed), then every
	   signed name once more, so that no field of a signed name can be added */
	for (i = 0; i < n; i++)
		if (mw_str_append(&hlist, names[i], strlen(names[i]) + 1) < 0)
			goto out;
	if (oversign_names(signer, names, n, &hlist) < 0)
		goto out;

	(void)snprintf(num, sizeof(num), "%lld", (long long)time(NULL));
	if (mw_str_appendf(&v, "v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s;",
	                   signer->type == MW_DKIM_KEY_ED25519 ? "ed25519-sha256" : "rsa-sha256",
	                   signer->domain, signer->selector) < 0 ||
	    mw_str_appendf(&v, "\n\tt=%s; bh=%s;\n\th=", num, bh) < 0)
		goto out;
	col = 3;
	for (p = hlist.buf, end = hlist.buf + hlist.len; p != NULL && p < end; p += strlen(p) + 1) {
		mw_str item;
		int r;
		mw_str_init(&item, 0);
		r = mw_str_appendf(&item, "%s%s", p, p + strlen(p) + 1 < end ? ":" : ";");
		r = r < 0 ? r : fold_add(&v, &col, mw_str_c(&item), "");
		mw_str_free(&item);
		if (r < 0)
			goto out;
	}
	if (mw_str_appends(&v, "\n\tb=") < 0)
		goto out;
	if (header_hash_input(signer, names, values, used, &hlist, &v, &canon) < 0 ||
	    EVP_Digest(canon.buf, canon.len, digest, &dlen, EVP_sha256(), NULL) != 1 ||
	    sign_digest(signer, digest, sig, &siglen) < 0) {
		ssl_error(error_r, "DKIM signing");
		told = true;
		goto out;
	}
	b = mw_malloc(4 * ((siglen + 2) / 3) + 1);
	b64(b, sig, siglen);
	/* b= folded in 72-column pieces (FWS inside base64 is ignored by verifiers) */
	for (i = 0, col = 3; b[i] != '\0'; i++) {
		if (col >= 76) {
			if (mw_str_appends(&v, "\n\t ") < 0)
				goto out;
			col = 2;
		}
		if (mw_str_appendc(&v, b[i]) < 0)
			goto out;
		col++;
	}
	if (mw_str_append(value_r, v.buf, v.len) < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0 && !told)
		mw_error_set(error_r, "DKIM signature header does not fit");
	signer->state = ret == 0 ? SIGNER_DONE : SIGNER_FAILED;
	free(b);
	free(names);
	free(values);
	free(used);
	mw_str_free(&hlist);
	mw_str_free(&v);
	mw_str_free(&canon);
	return ret;
}

/* mw_dkim_signer_body - a chunk of the body, to this signer and its second one */
int mw_dkim_signer_body(mw_dkim_signer *signer, const void *chunk, size_t len, mw_error *error_r)
{
	if (signer_body(signer, chunk, len, error_r) < 0)
		return -1;
	return signer->also != NULL ? signer_body(signer->also, chunk, len, error_r) : 0;
}

/* mw_dkim_signer_free - release the handle and its key reference */
void mw_dkim_signer_free(mw_dkim_signer **signer)
{
	mw_dkim_signer *s;
	if (signer == NULL || *signer == NULL)
		return;
	s = *signer;
	mw_dkim_signer_free(&s->also);
	EVP_MD_CTX_free(s->bh);
	EVP_PKEY_free(s->pkey);
	mw_str_free(&s->hdrs);
	free(s->hdrlist);
	free(s->hdrbuf);
	free(s);
	*signer = NULL;
}
