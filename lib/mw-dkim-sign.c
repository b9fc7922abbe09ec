/* mw-dkim-sign.c - DKIM signing for outbound mail: keys, key lookup and a streaming signer.
 *
 * The signing itself is libopendkim's (relaxed/relaxed, rsa-sha256 or ed25519-sha256); this
 * module holds the process's library handle, parses and checks private keys with OpenSSL,
 * finds the key of a domain (the store's active key, decrypted with the master key, or a
 * key file dir/DOMAIN.SELECTOR.key) and wraps one libopendkim signing handle per message
 * behind a header / eoh / body / eom interface that a milter drives from its callbacks.
 * ctl-dkim.c uses the key helpers to generate, import and publish keys.
 *
 * Public: mw_dkim_lib_get, mw_dkim_ed25519_supported, mw_dkim_domain_normalize,
 * mw_dkim_selector_normalize, mw_dkim_key_new/_free/_domain/_selector/_type/_algorithm,
 * mw_dkim_pem_public, mw_dkim_generate_rsa, mw_dkim_txt_record, mw_dkim_key_ad,
 * mw_dkim_key_from_store, mw_dkim_key_load_file, mw_dkim_key_from_dir, mw_dkim_key_lookup,
 * mw_dkim_signer_new/_header/_eoh/_body/_eom/_free.
 *
 * Diagnostics: through error_r only; nothing here logs. Messages never contain key
 * material; header values from messages are not echoed.
 */
#include "mw-build.h"
#include "mw-dkim-sign.h"
#include "mw-addr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <opendkim/dkim.h>

#define SIGNHEADER_PREFIX_LEN (sizeof("DKIM-Signature: ") - 1)

struct mw_dkim_key {
	char domain[MW_DKIM_DOMAIN_MAX + 1];
	char selector[MW_DKIM_SELECTOR_MAX + 1];
	enum mw_dkim_key_type type;
	char *pem; /* NUL-terminated, wiped on free */
	size_t pem_len;
};

enum signer_state { SIGNER_HEADERS, SIGNER_BODY, SIGNER_DONE, SIGNER_FAILED };

struct mw_dkim_signer {
	DKIM *dkim;
	enum signer_state state;
	size_t header_bytes;
	char *pem; /* the key libopendkim reads at eom: kept for the handle's lifetime */
	size_t pem_len;
	const char **hdrlist; /* sign_headers, split (owned strings in hdrbuf) */
	char *hdrbuf;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static DKIM_LIB *lib_handle;

/* lib_init - make the process's libopendkim handle (once) */
static void lib_init(void)
{
	const char *oversign[8];
	char buf[sizeof(MW_DKIM_OVERSIGN_HEADERS)];
	unsigned int flags = 0;
	size_t n = 0;
	char *p, *save = NULL;
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	if (lib == NULL)
		return;
	if (dkim_options(lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	    DKIM_STAT_OK) {
		dkim_close(lib);
		return;
	}
	flags |= DKIM_LIBFLAGS_FIXCRLF;
	(void)mw_strlcpy(buf, MW_DKIM_OVERSIGN_HEADERS, sizeof(buf));
	for (p = strtok_r(buf, ",", &save); p != NULL && n + 1 < MW_N_ELEMENTS(oversign);
	     p = strtok_r(NULL, ",", &save))
		oversign[n++] = p;
	oversign[n] = NULL;
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	        DKIM_STAT_OK ||
	    /* the library copies the array; len is the size of the pointer it keeps */
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, oversign,
	                 sizeof(const char **)) != DKIM_STAT_OK) {
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
		mw_error_set(error_r, "DKIM domain must have at least two labels and at most %d "
		                      "bytes", MW_DKIM_DOMAIN_MAX);
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
		mw_error_set(error_r, "DKIM selector is longer than %d bytes", MW_DKIM_SELECTOR_MAX);
		return -1;
	}
	for (i = 0; i <= len; i++) {
		char c = in[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				mw_error_set(error_r, "DKIM selector has an empty or over-long label");
				return -1;
			}
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_')) {
			mw_error_set(error_r, "DKIM selector may hold only letters, digits, '-', '_' "
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
		mw_error_set(error_r, "DKIM private key is longer than %d bytes", MW_DKIM_KEY_PEM_MAX);
		return NULL;
	}
	if (memchr(pem, '\0', pem_len) != NULL || strstr(pem, "-----BEGIN ") == NULL) {
		mw_error_set(error_r, "DKIM private key is not in PEM form");
		return NULL;
	}
	if (strstr(pem, "ENCRYPTED") != NULL) {
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
			mw_error_set(error_r, "DKIM RSA key has %d bits: %d to %d are accepted", bits,
			             MW_DKIM_RSA_MIN_BITS, MW_DKIM_RSA_MAX_BITS);
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
static int public_b64(EVP_PKEY *pkey, enum mw_dkim_key_type type, mw_str *pub_r,
                      mw_error *error_r)
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

/* mw_dkim_generate_rsa - a new RSA key: PKCS#8 PEM and p= value */
int mw_dkim_generate_rsa(unsigned bits, mw_str *pem_r, mw_str *pub_r, mw_error *error_r)
{
	EVP_PKEY *pkey;
	BIO *bio;
	char *data;
	long n;
	int ret = -1;
	if (bits != 2048 && bits != 3072 && bits != 4096) {
		mw_error_set(error_r, "RSA key size must be 2048, 3072 or 4096 bits");
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
	pkey = pem_parse(pem, pem_len, &type, error_r);
	if (pkey == NULL)
		return NULL;
	EVP_PKEY_free(pkey);
	if (type == MW_DKIM_KEY_ED25519 && !mw_dkim_ed25519_supported()) {
		mw_error_set(error_r, "this libopendkim cannot sign with Ed25519 keys");
		return NULL;
	}
	key = mw_calloc(1, sizeof(*key));
	(void)mw_strlcpy(key->domain, d, sizeof(key->domain));
	(void)mw_strlcpy(key->selector, s, sizeof(key->selector));
	key->type = type;
	key->pem = mw_strndup(pem, pem_len);
	key->pem_len = pem_len;
	return key;
}

/* mw_dkim_key_free - wipe and free a key */
void mw_dkim_key_free(mw_dkim_key **key)
{
	if (key == NULL || *key == NULL)
		return;
	mw_memzero((*key)->pem, (*key)->pem_len);
	free((*key)->pem);
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

/* mw_dkim_key_from_store - the active key of domain, decrypted */
int mw_dkim_key_from_store(mw_store *store, const mw_master_key *master_key, const char *domain,
                           mw_dkim_key **key_r, mw_error *error_r)
{
	struct mw_dkim_key_row row;
	char d[MW_DKIM_DOMAIN_MAX + 2];
	mw_str ad, plain;
	int ret;
	*key_r = NULL;
	if (mw_dkim_domain_normalize(domain, d, sizeof(d), error_r) < 0)
		return MW_DKIM_LOOKUP_ERROR;
	ret = mw_store_dkim_key_get_active(store, d, &row, error_r);
	if (ret == MW_STORE_NOTFOUND)
		return MW_DKIM_LOOKUP_NONE;
	if (ret != MW_STORE_OK)
		return MW_DKIM_LOOKUP_ERROR;
	mw_str_init(&ad, 0);
	mw_str_init(&plain, MW_DKIM_KEY_PEM_MAX);
	(void)mw_dkim_key_ad(row.domain, row.selector, &ad);
	if (mw_secret_decrypt(master_key, row.private_key, mw_str_c(&ad), &plain, error_r) < 0) {
		mw_error_prefix(error_r, "DKIM key %s for %s: cannot decrypt (wrong master key "
		                         "or tampered row)", row.selector, row.domain);
		ret = MW_DKIM_LOOKUP_ERROR;
	} else {
		*key_r = mw_dkim_key_new(row.domain, row.selector, plain.buf, plain.len, error_r);
		if (*key_r == NULL)
			mw_error_prefix(error_r, "DKIM key %s for %s", row.selector, row.domain);
		ret = *key_r != NULL ? MW_DKIM_LOOKUP_FOUND : MW_DKIM_LOOKUP_ERROR;
	}
	if (plain.buf != NULL)
		mw_memzero(plain.buf, plain.cap);
	mw_str_free(&plain);
	mw_str_free(&ad);
	mw_dkim_key_row_clear(&row);
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
		mw_error_set(error_r, "DKIM key file %s is accessible by group or others (mode %04o): "
		                      "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
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
		if (nlen <= dlen + 5 || strncmp(name, d, dlen) != 0 ||
		    name[dlen] != '.' || strcmp(name + nlen - 4, ".key") != 0)
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
			mw_error_set(error_r, "DKIM key directory %s has several keys for %s (%s, %s): "
			                      "keep one", dir, d, found, sel);
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
		/* field-name characters only: nothing a regular expression would read specially,
		   except '*' which libopendkim turns into a wildcard */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '*' || c == ',' || c == ' ' || c == '\t')) {
			mw_error_set(error_r, "DKIM header list may hold only header names ('*' as "
			                      "a wildcard), separated by commas or blanks");
			return -1;
		}
	}
	s->hdrbuf = mw_strdup(list);
	s->hdrlist = mw_calloc(len / 2 + 2, sizeof(*s->hdrlist));
	for (p = strtok_r(s->hdrbuf, ", \t", &save); p != NULL; p = strtok_r(NULL, ", \t", &save))
		s->hdrlist[n++] = p;
	s->hdrlist[n] = NULL;
	if (n == 0) {
		mw_error_set(error_r, "DKIM header list is empty");
		return -1;
	}
	return 0;
}

/* signer_fail - record a libopendkim failure in error_r and poison the signer */
static int signer_fail(mw_dkim_signer *s, DKIM_STAT st, const char *what, mw_error *error_r)
{
	const char *detail = s->dkim != NULL ? dkim_geterror(s->dkim) : NULL;
	mw_error_set(error_r, "DKIM %s failed: %s%s%s", what, dkim_getresultstr(st),
	             detail != NULL && *detail != '\0' ? ": " : "", detail != NULL ? detail : "");
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
	DKIM_LIB *lib = mw_dkim_lib_get();
	DKIM_STAT st = DKIM_STAT_OK;
	mw_dkim_signer *s;
	if (key == NULL) {
		mw_error_set(error_r, "DKIM signer: no key");
		return NULL;
	}
	if (lib == NULL) {
		mw_error_set(error_r, "libopendkim could not be initialised");
		return NULL;
	}
	s = mw_calloc(1, sizeof(*s));
	if (split_headers(s, sign_headers, error_r) < 0) {
		mw_dkim_signer_free(&s);
		return NULL;
	}
	s->pem = mw_strndup(key->pem, key->pem_len);
	s->pem_len = key->pem_len;
	s->dkim = dkim_sign(lib, (const unsigned char *)(job_id != NULL ? job_id : "-"), NULL,
	                    (dkim_sigkey_t)s->pem, (const unsigned char *)key->selector,
	                    (const unsigned char *)key->domain, DKIM_CANON_RELAXED,
	                    DKIM_CANON_RELAXED,
	                    key->type == MW_DKIM_KEY_ED25519 ? DKIM_SIGN_ED25519SHA256
	                                                     : DKIM_SIGN_RSASHA256,
	                    -1, &st);
	if (s->dkim == NULL || st != DKIM_STAT_OK) {
		mw_error_set(error_r, "DKIM signer for %s: %s", key->domain, dkim_getresultstr(st));
		mw_dkim_signer_free(&s);
		return NULL;
	}
	st = dkim_signhdrs(s->dkim, s->hdrlist);
	if (st != DKIM_STAT_OK) {
		(void)signer_fail(s, st, "header list", error_r);
		mw_dkim_signer_free(&s);
		return NULL;
	}
	s->state = SIGNER_HEADERS;
	return s;
}

/* mw_dkim_signer_header - feed one header field */
int mw_dkim_signer_header(mw_dkim_signer *signer, const char *name, const char *value,
                          mw_error *error_r)
{
	size_t nlen, vlen, i;
	mw_str h;
	DKIM_STAT st;
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
	mw_str_init(&h, 0);
	(void)mw_str_append(&h, name, nlen);
	(void)mw_str_appendc(&h, ':');
	if (vlen == 0 || (value[0] != ' ' && value[0] != '\t'))
		(void)mw_str_appendc(&h, ' ');
	(void)mw_str_append(&h, value, vlen);
	st = dkim_header(signer->dkim, (unsigned char *)h.buf, h.len);
	mw_str_free(&h);
	if (st != DKIM_STAT_OK)
		return signer_fail(signer, st, "header", error_r);
	return 0;
}

/* mw_dkim_signer_eoh - the end of the header */
int mw_dkim_signer_eoh(mw_dkim_signer *signer, mw_error *error_r)
{
	DKIM_STAT st;
	if (signer_state_check(signer, SIGNER_HEADERS, "end of header", error_r) < 0)
		return -1;
	st = dkim_eoh(signer->dkim);
	if (st != DKIM_STAT_OK)
		return signer_fail(signer, st, "end of header", error_r);
	signer->state = SIGNER_BODY;
	return 0;
}

/* mw_dkim_signer_body - a chunk of the body */
int mw_dkim_signer_body(mw_dkim_signer *signer, const void *chunk, size_t len, mw_error *error_r)
{
	DKIM_STAT st;
	if (signer_state_check(signer, SIGNER_BODY, "body", error_r) < 0)
		return -1;
	if (len == 0)
		return 0;
	if (chunk == NULL) {
		mw_error_set(error_r, "DKIM body: no data");
		signer->state = SIGNER_FAILED;
		return -1;
	}
	st = dkim_body(signer->dkim, (unsigned char *)(uintptr_t)chunk, len);
	if (st != DKIM_STAT_OK)
		return signer_fail(signer, st, "body", error_r);
	return 0;
}

/* mw_dkim_signer_eom - finish and give the DKIM-Signature value */
int mw_dkim_signer_eom(mw_dkim_signer *signer, mw_str *value_r, mw_error *error_r)
{
	unsigned char *buf = NULL;
	size_t len = 0, i;
	DKIM_STAT st;
	if (signer_state_check(signer, SIGNER_BODY, "end of message", error_r) < 0)
		return -1;
	st = dkim_eom(signer->dkim, NULL);
	if (st != DKIM_STAT_OK)
		return signer_fail(signer, st, "signing", error_r);
	st = dkim_getsighdr_d(signer->dkim, SIGNHEADER_PREFIX_LEN, &buf, &len);
	if (st != DKIM_STAT_OK || buf == NULL)
		return signer_fail(signer, st, "signature header", error_r);
	/* libopendkim folds with CRLF; milters pass header values with LF */
	for (i = 0; i < len && buf[i] != '\0'; i++)
		if (buf[i] != '\r' && mw_str_appendc(value_r, (char)buf[i]) < 0) {
			mw_error_set(error_r, "DKIM signature header does not fit");
			signer->state = SIGNER_FAILED;
			return -1;
		}
	signer->state = SIGNER_DONE;
	return 0;
}

/* mw_dkim_signer_free - release the handle and wipe the key copy */
void mw_dkim_signer_free(mw_dkim_signer **signer)
{
	mw_dkim_signer *s;
	if (signer == NULL || *signer == NULL)
		return;
	s = *signer;
	if (s->dkim != NULL)
		(void)dkim_free(s->dkim);
	if (s->pem != NULL) {
		mw_memzero(s->pem, s->pem_len);
		free(s->pem);
	}
	free(s->hdrlist);
	free(s->hdrbuf);
	free(s);
	*signer = NULL;
}
