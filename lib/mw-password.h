/* mw-password.h - argon2id password hashes in the form Dovecot 2.3 verifies. */
#ifndef MW_PASSWORD_H
#define MW_PASSWORD_H

#include "mw-util.h"

#define MW_PASSWORD_SCHEME   "{ARGON2ID}"
#define MW_PASSWORD_HASH_MAX 256  /* "{ARGON2ID}$argon2id$v=19$m=...,t=...,p=1$salt$hash" */
#define MW_PASSWORD_MAX      1024 /* longer passwords are refused */

/* Hashes password with argon2id (libsodium) using memlimit bytes and opslimit passes;
   writes "{ARGON2ID}$argon2id$v=19$m=KiB,t=N,p=1$salt$hash" into out. */
int mw_password_hash(const char *password, size_t memlimit, unsigned long long opslimit, char *out,
                     size_t outsize, mw_error *error_r);
/* 1: password matches stored; 0: it does not (also for a well-formed hash whose salt,
   digest or costs were altered, and for a password over MW_PASSWORD_MAX); -1: stored is
   malformed, of an unknown scheme, or asks for more than 1 GiB of memory (error_r says
   which). Scheme names compare case-insensitively. The comparison is constant-time. */
int mw_password_verify(const char *stored, const char *password, mw_error *error_r);
/* True when stored was hashed with other parameters than these (rehash on next login). */
bool mw_password_needs_rehash(const char *stored, size_t memlimit, unsigned long long opslimit);
/* Random password of len characters (len+1 bytes in out) from an alphabet without
   look-alike characters; uses the kernel CSPRNG. */
int mw_password_generate(char *out, size_t outsize, size_t len, mw_error *error_r);
/* Policy check for a password an admin or user chose: length in characters (UTF-8),
   no control characters, not longer than MW_PASSWORD_MAX bytes. */
int mw_password_check_policy(const char *password, size_t min_length, mw_error *error_r);

#endif
