/* mw-secret.c - the master key file and AEAD encryption of secrets at rest.
 *
 * Secrets kept in the store (TOTP seeds, DKIM private keys) are encrypted with
 * XChaCha20-Poly1305 (libsodium crypto_aead_xchacha20poly1305_ietf) under a 32-byte master
 * key read from a file that only its owner may read. The stored text is
 * "v1:" base64(nonce || ciphertext || tag), standard alphabet with padding; the nonce is
 * random (192 bits, so random nonces never collide in practice). The associated data
 * names the row the secret belongs to, so a ciphertext moved to another row fails.
 *
 * Public: mw_secret_key_create, mw_secret_key_load, mw_secret_key_wipe,
 * mw_secret_encrypt, mw_secret_decrypt.
 *
 * Diagnostics: through error_r, naming the key file; never key bytes or plaintext.
 * Decryption failure does not say whether the key, the associated data or the text was
 * wrong (the cipher cannot tell).
 */
#include "mw-build.h"
#include "mw-secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_PREFIX "v1:"
#define NONCE_BYTES   crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES     crypto_aead_xchacha20poly1305_ietf_ABYTES
#define AD_MAX        1024

/* sodium_ready - initialise libsodium once */
static int sodium_ready(mw_error *error_r)
{
	if (sodium_init() < 0) {
		mw_error_set(error_r, "libsodium failed to initialise");
		return -1;
	}
	return 0;
}

/* sync_parent_dir - make the new directory entry durable (best effort) */
static void sync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;
	if (slash == NULL)
		dir = mw_strdup(".");
	else
		dir = mw_strndup(path, slash == path ? 1 : (size_t)(slash - path));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		(void)close(fd);
	}
	free(dir);
}

/* open_failed - why open(2) of the key file failed: errno EXPECTED has its own words */
static void open_failed(const char *path, int expected, const char *expected_msg, const char *verb,
                        mw_error *error_r)
{
	if (errno == expected)
		mw_error_set(error_r, "%s: %s", path, expected_msg);
	else
		mw_error_set(error_r, "%s: cannot %s: %s", path, verb, strerror(errno));
}

/* mw_secret_key_create - a new key file of 32 random bytes, mode 0600, never overwriting */
int mw_secret_key_create(const char *path, mw_error *error_r)
{
	unsigned char key[MW_SECRET_KEY_BYTES];
	int fd, err;
	if (sodium_ready(error_r) < 0)
		return -1;
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		open_failed(path, EEXIST, "already exists; refusing to overwrite a master key",
		            "create", error_r);
		return -1;
	}
	randombytes_buf(key, sizeof(key));
	if (mw_write_all(fd, key, sizeof(key)) < 0 || fsync(fd) < 0) {
		err = errno;
		sodium_memzero(key, sizeof(key));
		(void)close(fd);
		(void)unlink(path);
		mw_error_set(error_r, "%s: cannot write: %s", path, strerror(err));
		return -1;
	}
	sodium_memzero(key, sizeof(key));
	if (close(fd) < 0) {
		err = errno;
		(void)unlink(path);
		mw_error_set(error_r, "%s: cannot write: %s", path, strerror(err));
		return -1;
	}
	sync_parent_dir(path);
	return 0;
}

/* mw_secret_key_load - read the key, refusing anything but a private 32-byte file */
int mw_secret_key_load(const char *path, mw_master_key *key_r, mw_error *error_r)
{
	struct stat st;
	size_t got = 0;
	int fd;
	memset(key_r, 0, sizeof(*key_r));
	/* O_NONBLOCK: a FIFO planted at the path must not hang us before fstat refuses it */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		open_failed(path, ELOOP,
		            "is a symbolic link; the master key must be a regular file", "open",
		            error_r);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		mw_error_set(error_r, "%s: fstat: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		mw_error_set(error_r, "%s: not a regular file", path);
		(void)close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		mw_error_set(error_r, "%s: mode %04o lets others read the master key; chmod 600 it",
		             path, (unsigned)(st.st_mode & 07777));
		(void)close(fd);
		return -1;
	}
	if (st.st_size != MW_SECRET_KEY_BYTES) {
		mw_error_set(error_r, "%s: a master key is exactly %d bytes, this file has %lld",
		             path, MW_SECRET_KEY_BYTES, (long long)st.st_size);
		(void)close(fd);
		return -1;
	}
	while (got < sizeof(key_r->bytes)) {
		ssize_t r = read(fd, key_r->bytes + got, sizeof(key_r->bytes) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			mw_error_set(error_r, "%s: short read", path);
			mw_secret_key_wipe(key_r);
			(void)close(fd);
			return -1;
		}
		got += (size_t)r;
	}
	(void)close(fd);
	return 0;
}

/* mw_secret_key_wipe - erase key material */
void mw_secret_key_wipe(mw_master_key *key)
{
	if (key != NULL)
		sodium_memzero(key->bytes, sizeof(key->bytes));
}

/* check_ad - associated data: NULL means "", bounded */
static int check_ad(const char **ad, mw_error *error_r)
{
	if (*ad == NULL)
		*ad = "";
	if (strnlen(*ad, AD_MAX + 1) > AD_MAX) {
		mw_error_set(error_r, "associated data is longer than %d bytes", AD_MAX);
		return -1;
	}
	return 0;
}

/* mw_secret_encrypt - encrypt plain into "v1:" base64(nonce || ciphertext+tag) */
int mw_secret_encrypt(const mw_master_key *key, const void *plain, size_t len, const char *ad,
                      mw_str *out, mw_error *error_r)
{
	unsigned char *bin;
	char *b64;
	size_t binlen, b64len;
	unsigned long long clen;
	int ret = 0;
	if (sodium_ready(error_r) < 0 || check_ad(&ad, error_r) < 0)
		return -1;
	if (len > MW_SECRET_PLAIN_MAX || (plain == NULL && len > 0)) {
		mw_error_set(error_r, "secret is longer than %d bytes", MW_SECRET_PLAIN_MAX);
		return -1;
	}
	if (plain == NULL)
		plain = "";
	binlen = NONCE_BYTES + len + TAG_BYTES;
	bin = mw_malloc(binlen);
	randombytes_buf(bin, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(bin + NONCE_BYTES, &clen, plain, len,
	                                           (const unsigned char *)ad, strlen(ad), NULL, bin,
	                                           key->bytes);
	/* one append, so a bounded out that is too small is left as it was */
	b64len = sodium_base64_ENCODED_LEN(binlen, sodium_base64_VARIANT_ORIGINAL);
	b64 = mw_malloc(sizeof(SECRET_PREFIX) - 1 + b64len);
	memcpy(b64, SECRET_PREFIX, sizeof(SECRET_PREFIX) - 1);
	sodium_bin2base64(b64 + sizeof(SECRET_PREFIX) - 1, b64len, bin, binlen,
	                  sodium_base64_VARIANT_ORIGINAL);
	if (mw_str_appends(out, b64) < 0) {
		mw_error_set(error_r, "encrypted secret does not fit its buffer");
		ret = -1;
	}
	free(b64);
	free(bin);
	return ret;
}

/* mw_secret_decrypt - authenticate and decrypt text, appending the plaintext to out */
int mw_secret_decrypt(const mw_master_key *key, const char *text, const char *ad, mw_str *out,
                      mw_error *error_r)
{
	const size_t textmax =
	    sizeof(SECRET_PREFIX) - 1 +
	    sodium_base64_ENCODED_LEN(NONCE_BYTES + MW_SECRET_PLAIN_MAX + TAG_BYTES,
	                              sodium_base64_VARIANT_ORIGINAL);
	unsigned char *bin, *plain;
	const char *b64, *b64_end = NULL;
	size_t tlen, b64len, binlen = 0;
	unsigned long long plen = 0;
	int ret = 0;
	if (sodium_ready(error_r) < 0 || check_ad(&ad, error_r) < 0)
		return -1;
	if (text == NULL || strncmp(text, SECRET_PREFIX, sizeof(SECRET_PREFIX) - 1) != 0) {
		mw_error_set(error_r, "encrypted secret does not start with %s", SECRET_PREFIX);
		return -1;
	}
	tlen = strnlen(text, textmax + 1);
	if (tlen > textmax) {
		mw_error_set(error_r, "encrypted secret is too long");
		return -1;
	}
	b64 = text + sizeof(SECRET_PREFIX) - 1;
	b64len = tlen - (sizeof(SECRET_PREFIX) - 1);
	bin = mw_malloc(b64len / 4 * 3 + 3);
	if (sodium_base642bin(bin, b64len / 4 * 3 + 3, b64, b64len, NULL, &binlen, &b64_end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    b64_end != b64 + b64len) {
		free(bin);
		mw_error_set(error_r, "encrypted secret is not valid base64");
		return -1;
	}
	if (binlen < NONCE_BYTES + TAG_BYTES) {
		free(bin);
		mw_error_set(error_r, "encrypted secret is truncated");
		return -1;
	}
	plain = mw_malloc(binlen - NONCE_BYTES - TAG_BYTES + 1);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	        plain, &plen, NULL, bin + NONCE_BYTES, binlen - NONCE_BYTES,
	        (const unsigned char *)ad, strlen(ad), bin, key->bytes) != 0) {
		mw_error_set(error_r, "encrypted secret does not authenticate (wrong key, wrong "
		                      "row or altered text)");
		ret = -1;
	} else if (mw_str_append(out, (const char *)plain, (size_t)plen) < 0) {
		mw_error_set(error_r, "decrypted secret does not fit its buffer");
		ret = -1;
	}
	sodium_memzero(plain, binlen - NONCE_BYTES - TAG_BYTES + 1);
	free(plain);
	free(bin);
	return ret;
}
