/* mw-secret.h - the master key file and AEAD encryption of secrets at rest. */
#ifndef MW_SECRET_H
#define MW_SECRET_H

#include "mw-util.h"

#define MW_SECRET_KEY_BYTES 32
#define MW_SECRET_PLAIN_MAX 65536 /* longest secret that may be encrypted */

typedef struct mw_master_key {
	unsigned char bytes[MW_SECRET_KEY_BYTES];
} mw_master_key;

/* Creates path with 32 random bytes, mode 0600, refusing to overwrite an existing file. */
int mw_secret_key_create(const char *path, mw_error *error_r);
/* Loads the key; refuses a file that is not a regular file, is readable or writable by
   group or others, or is not exactly 32 bytes. */
int mw_secret_key_load(const char *path, mw_master_key *key_r, mw_error *error_r);
void mw_secret_key_wipe(mw_master_key *key);

/* XChaCha20-Poly1305 (libsodium). The output is text, safe for a TEXT column:
   "v1:" base64(nonce || ciphertext+tag). ad (associated data, e.g. "totp:USERID") binds the
   ciphertext to its row so it cannot be swapped onto another; it is not stored (NULL = "").
   Each call uses a fresh random nonce, so encrypting the same secret twice differs. */
int mw_secret_encrypt(const mw_master_key *key, const void *plain, size_t len, const char *ad,
                      mw_str *out, mw_error *error_r);
/* Appends the plaintext to out; fails on a wrong key, wrong ad or tampered text, leaving
   out as it was. The caller wipes out (mw_memzero) when done with the secret. */
int mw_secret_decrypt(const mw_master_key *key, const char *text, const char *ad, mw_str *out,
                      mw_error *error_r);

#endif
