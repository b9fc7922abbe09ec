/* mw-password.c - argon2id password hashes in the form Dovecot 2.3 verifies.
 *
 * Hashes are libsodium's crypto_pwhash_str_alg(..., crypto_pwhash_ALG_ARGON2ID13) output
 * behind Dovecot's scheme prefix: "{ARGON2ID}$argon2id$v=19$m=KiB,t=N,p=1$salt$hash".
 * Dovecot's passdb verifies them with the same library, and hashes made by
 * "doveadm pw -s ARGON2ID" verify here.
 *
 * Verification results: 1 the password matches; 0 it does not (including a hash whose
 * digest or salt was altered but which still parses, and a password longer than
 * MW_PASSWORD_MAX that we would never have hashed); -1 the stored text is not an argon2id
 * hash we can read (unknown scheme, missing prefix, malformed or absurd parameters). The
 * comparison itself is crypto_pwhash_str_verify, which is constant-time.
 *
 * Public: mw_password_hash, mw_password_verify, mw_password_needs_rehash,
 * mw_password_generate, mw_password_check_policy.
 *
 * Diagnostics: through error_r. No message ever contains a password or a hash; an unknown
 * scheme is named (its printable characters only).
 */
#include "mw-build.h"
#include "mw-password.h"

#include <sodium.h>
#include <string.h>

#define ARGON2ID_PREFIX "$argon2id$"
/* The most memory a stored hash may ask verification to spend (KiB): 1 GiB. A larger
   value is refused so a tampered row cannot make a login allocate without bound. */
#define VERIFY_MEMLIMIT_MAX_KIB (1024UL * 1024UL)

/* look-alike characters 0 O 1 l I are left out */
static const char generate_alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* sodium_ready - initialise libsodium once (it is idempotent and thread-safe) */
static int sodium_ready(mw_error *error_r)
{
	if (sodium_init() < 0) {
		mw_error_set(error_r, "libsodium failed to initialise");
		return -1;
	}
	return 0;
}

/* mw_password_hash - argon2id-hash password into "{ARGON2ID}$argon2id$..." */
int mw_password_hash(const char *password, size_t memlimit, unsigned long long opslimit, char *out,
                     size_t outsize, mw_error *error_r)
{
	char hash[crypto_pwhash_STRBYTES];
	size_t plen, hlen;
	if (sodium_ready(error_r) < 0)
		return -1;
	if (password == NULL) {
		mw_error_set(error_r, "no password given");
		return -1;
	}
	plen = strnlen(password, MW_PASSWORD_MAX + 1);
	if (plen > MW_PASSWORD_MAX) {
		mw_error_set(error_r, "password is longer than %d bytes", MW_PASSWORD_MAX);
		return -1;
	}
	if (memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
	    memlimit > VERIFY_MEMLIMIT_MAX_KIB * 1024 ||
	    opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
	    opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX) {
		mw_error_set(error_r,
		             "argon2id parameters out of range (memory %zu bytes, "
		             "%llu passes)",
		             memlimit, opslimit);
		return -1;
	}
	if (crypto_pwhash_str_alg(hash, password, plen, opslimit, memlimit,
	                          crypto_pwhash_ALG_ARGON2ID13) != 0) {
		mw_error_set(error_r, "argon2id hashing failed (out of memory?)");
		return -1;
	}
	hlen = strlen(hash);
	if (outsize < sizeof(MW_PASSWORD_SCHEME) + hlen) {
		sodium_memzero(hash, sizeof(hash));
		mw_error_set(error_r, "password hash does not fit its buffer");
		return -1;
	}
	memcpy(out, MW_PASSWORD_SCHEME, sizeof(MW_PASSWORD_SCHEME) - 1);
	memcpy(out + sizeof(MW_PASSWORD_SCHEME) - 1, hash, hlen + 1);
	sodium_memzero(hash, sizeof(hash));
	return 0;
}

/* parse_number - decimal digits at *p (no sign, no leading zero, bounded); advances *p */
static bool parse_number(const char **p, unsigned long max, unsigned long *v_r)
{
	const char *s = *p;
	unsigned long v = 0;
	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*p = s;
	*v_r = v;
	return true;
}

/* skip_b64 - an unpadded base64 field (at least min characters) at *p; advances *p */
static bool skip_b64(const char **p, size_t min)
{
	const char *s = *p;
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
	if (n < min)
		return false;
	*p = s + n;
	return true;
}

/* argon2id_well_formed - "$argon2id$v=19$m=N,t=N,p=N$SALT$HASH" and nothing more */
static bool argon2id_well_formed(const char *h)
{
	unsigned long m, t, par;
	const char *p = h;
	if (strncmp(p, ARGON2ID_PREFIX "v=19$m=", 17) != 0)
		return false;
	p += 17;
	if (!parse_number(&p, VERIFY_MEMLIMIT_MAX_KIB, &m) || strncmp(p, ",t=", 3) != 0)
		return false;
	p += 3;
	if (!parse_number(&p, 0xffffffffUL, &t) || strncmp(p, ",p=", 3) != 0)
		return false;
	p += 3;
	if (!parse_number(&p, 255, &par) || *p++ != '$')
		return false;
	/* salt at least 8 bytes (11 chars), digest at least 16 bytes (22 chars) */
	if (!skip_b64(&p, 11) || *p++ != '$' || !skip_b64(&p, 22) || *p != '\0')
		return false;
	return m >= 8 && t >= 1 && par >= 1;
}

/* scheme_of - split "{SCHEME}rest": the scheme (printable, bounded) goes to scheme and a
   pointer to rest is returned; NULL when there is no such prefix */
static const char *scheme_of(const char *stored, char *scheme, size_t schemesize)
{
	const char *end;
	size_t n;
	if (stored[0] != '{')
		return NULL;
	end = strchr(stored, '}');
	if (end == NULL)
		return NULL;
	n = (size_t)(end - stored - 1);
	if (n == 0 || n >= schemesize)
		return NULL;
	memcpy(scheme, stored + 1, n);
	scheme[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)scheme[i];
		if (c <= ' ' || c >= 0x7f || c == '{')
			return NULL;
	}
	return end + 1;
}

/* argon2id_part - the "$argon2id$..." part of a stored "{ARGON2ID}..." value; NULL with
   a message for anything else */
static const char *argon2id_part(const char *stored, mw_error *error_r)
{
	char scheme[32];
	const char *rest;
	if (stored == NULL || *stored == '\0') {
		mw_error_set(error_r, "no password hash stored");
		return NULL;
	}
	rest = scheme_of(stored, scheme, sizeof(scheme));
	if (rest == NULL) {
		mw_error_set(error_r, "password hash has no {SCHEME} prefix; expected %s",
		             MW_PASSWORD_SCHEME);
		return NULL;
	}
	if (mw_ascii_strcasecmp(scheme, "ARGON2ID") != 0) {
		mw_error_set(error_r,
		             "password scheme {%s} is not supported; only %s hashes "
		             "can be verified (reset the password)",
		             scheme, MW_PASSWORD_SCHEME);
		return NULL;
	}
	if (strncmp(rest, ARGON2ID_PREFIX, sizeof(ARGON2ID_PREFIX) - 1) != 0) {
		mw_error_set(error_r, "%s hash does not start with %s", MW_PASSWORD_SCHEME,
		             ARGON2ID_PREFIX);
		return NULL;
	}
	if (strlen(rest) >= crypto_pwhash_STRBYTES || !argon2id_well_formed(rest)) {
		mw_error_set(error_r, "%s hash is malformed", MW_PASSWORD_SCHEME);
		return NULL;
	}
	return rest;
}

/* mw_password_verify - check password against a stored "{ARGON2ID}..." hash */
int mw_password_verify(const char *stored, const char *password, mw_error *error_r)
{
	char buf[crypto_pwhash_STRBYTES];
	const char *hash;
	size_t plen;
	int ret;
	if (sodium_ready(error_r) < 0)
		return -1;
	hash = argon2id_part(stored, error_r);
	if (hash == NULL)
		return -1;
	if (password == NULL) {
		mw_error_set(error_r, "no password given");
		return 0;
	}
	plen = strnlen(password, MW_PASSWORD_MAX + 1);
	if (plen > MW_PASSWORD_MAX) {
		mw_error_set(error_r, "password is longer than %d bytes", MW_PASSWORD_MAX);
		return 0;
	}
	/* crypto_pwhash_str_verify takes a buffer of crypto_pwhash_STRBYTES */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, hash, strlen(hash));
	ret = crypto_pwhash_str_verify(buf, password, plen) == 0 ? 1 : 0;
	if (ret == 0)
		mw_error_set(error_r, "password mismatch");
	return ret;
}

/* mw_password_needs_rehash - true unless stored is argon2id with exactly these costs */
bool mw_password_needs_rehash(const char *stored, size_t memlimit, unsigned long long opslimit)
{
	const char *hash;
	if (sodium_init() < 0)
		return true;
	hash = argon2id_part(stored, NULL);
	if (hash == NULL)
		return true;
	return crypto_pwhash_str_needs_rehash(hash, opslimit, memlimit) != 0;
}

/* mw_password_generate - len random characters from the look-alike-free alphabet */
int mw_password_generate(char *out, size_t outsize, size_t len, mw_error *error_r)
{
	size_t i;
	if (sodium_ready(error_r) < 0)
		return -1;
	if (len == 0 || len > MW_PASSWORD_MAX) {
		mw_error_set(error_r, "generated password length must be 1..%d", MW_PASSWORD_MAX);
		return -1;
	}
	if (out == NULL || outsize <= len) {
		mw_error_set(error_r, "generated password does not fit its buffer");
		return -1;
	}
	for (i = 0; i < len; i++)
		out[i] = generate_alphabet[randombytes_uniform(sizeof(generate_alphabet) - 1)];
	out[len] = '\0';
	return 0;
}

/* mw_password_check_policy - length in characters, valid UTF-8, no control characters */
int mw_password_check_policy(const char *password, size_t min_length, mw_error *error_r)
{
	const char *p, *end;
	size_t chars = 0, n;
	uint32_t cp;
	if (password == NULL) {
		mw_error_set(error_r, "no password given");
		return -1;
	}
	if (strnlen(password, MW_PASSWORD_MAX + 1) > MW_PASSWORD_MAX) {
		mw_error_set(error_r, "password is longer than %d bytes", MW_PASSWORD_MAX);
		return -1;
	}
	end = password + strlen(password);
	for (p = password; p < end; p += n, chars++) {
		n = mw_utf8_decode(p, (size_t)(end - p), &cp);
		if (n == 0) {
			mw_error_set(error_r, "password is not valid UTF-8");
			return -1;
		}
		if (mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "password contains a control character");
			return -1;
		}
	}
	if (chars < min_length) {
		mw_error_set(error_r, "password is too short: %zu characters, at least %zu needed",
		             chars, min_length);
		return -1;
	}
	return 0;
}
