/* api-totp-state.c - mailwarden-api: a user's TOTP state at rest and the check of a code
 * (the lower half of two-factor login; the routes are api-totp.c's).
 *
 * State at rest: the whole TOTP state of a user is one JSON object {"k": hex secret,
 * "l": last used time step, "r": [hex SHA-256 of each unused recovery code]}, encrypted
 * with the master key (mw_secret, associated data "totp:USERID", so it cannot be moved to
 * another row) into users.totp_secret; a pending enrolment is stored as "pending:" plus
 * the same text. Every change goes through mw_store_user_totp_set, a compare-and-swap, so
 * a code or recovery code is accepted once even when two API workers race.
 *
 * Codes: 6 digits, 30 s steps, one step either side accepted; a step at or below the last
 * used one is refused (no replay). Recovery codes are compared by hash in constant time and
 * consumed.
 *
 * Public: api_totp_login, api_totp_oath_ready, api_totp_state_clear, api_totp_state_decode,
 * api_totp_state_encode, api_totp_recovery_hash, api_totp_code_use.
 * Depends on api-support.c (master key, store errors) only, in this directory.
 * Diagnostics: store and key failures are logged (503); codes and secrets never are.
 */
#include "mw-build.h"
#include "api-totp.h"
#include "mw-log.h"

#include <liboath/oath.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* 31 characters without look-alikes (no i, l, o, 0, 1): ten of them are about 49 bits */
const char api_totp_recovery_alphabet[32] = "abcdefghjkmnpqrstuvwxyz23456789";

/* api_totp_oath_ready - initialise liboath once per process (it keeps no per-request state) */
int api_totp_oath_ready(void)
{
	static bool done;
	if (!done && oath_init() == OATH_OK)
		done = true;
	return done ? 0 : -1;
}

/* api_totp_state_clear - wipe a state */
void api_totp_state_clear(struct api_totp_state *st)
{
	mw_memzero(st, sizeof(*st));
}

/* totp_ad - the associated data that binds a state to its user */
static void totp_ad(int64_t user_id, char *out, size_t outsize)
{
	(void)snprintf(out, outsize, "totp:%lld", (long long)user_id);
}

/* api_totp_state_decode - decrypt and parse stored text; *pending_r set from its prefix */
int api_totp_state_decode(const mw_master_key *mk, int64_t user_id, const char *text,
                          struct api_totp_state *st, bool *pending_r, mw_error *error_r)
{
	char ad[40], *hex = NULL;
	mw_str plain;
	json_t *o, *k, *l, *r, *item;
	json_error_t jerr;
	size_t i, binlen = 0;
	int ret = -1;
	memset(st, 0, sizeof(*st));
	*pending_r = strncmp(text, TOTP_PENDING, strlen(TOTP_PENDING)) == 0;
	if (*pending_r)
		text += strlen(TOTP_PENDING);
	totp_ad(user_id, ad, sizeof(ad));
	mw_str_init(&plain, 0);
	if (mw_secret_decrypt(mk, text, ad, &plain, error_r) < 0) {
		mw_str_free(&plain);
		return -1;
	}
	o = json_loadb(plain.buf, plain.len, 0, &jerr);
	mw_memzero(plain.buf, plain.len);
	mw_str_free(&plain);
	k = json_object_get(o, "k");
	l = json_object_get(o, "l");
	r = json_object_get(o, "r");
	if (!json_is_string(k) || !json_is_integer(l) || !json_is_array(r) ||
	    json_array_size(r) > TOTP_RECOVERY_N ||
	    sodium_hex2bin(st->key, sizeof(st->key), json_string_value(k), json_string_length(k),
	                   NULL, &binlen, NULL) != 0 ||
	    binlen != sizeof(st->key)) {
		mw_error_set(error_r, "stored TOTP state is malformed");
		goto out;
	}
	st->last_step = json_integer_value(l);
	json_array_foreach(r, i, item)
	{
		if (!json_is_string(item) || mw_strlcpy(st->recovery[i], json_string_value(item),
		                                        sizeof(st->recovery[i])) < 0) {
			mw_error_set(error_r, "stored TOTP state is malformed");
			goto out;
		}
	}
	st->nrecovery = json_array_size(r);
	ret = 0;
out:
	if (o != NULL) {
		/* wipe the hex secret held by jansson before freeing it */
		if (json_is_string(k) && (hex = (char *)json_string_value(k)) != NULL)
			mw_memzero(hex, strlen(hex));
		json_decref(o);
	}
	if (ret < 0)
		api_totp_state_clear(st);
	return ret;
}

/* api_totp_state_encode - the stored text of a state (pending: with the "pending:" prefix) */
int api_totp_state_encode(const mw_master_key *mk, int64_t user_id, const struct api_totp_state *st,
                          bool pending, mw_str *out, mw_error *error_r)
{
	char ad[40], hex[TOTP_KEY_BYTES * 2 + 1], *text;
	json_t *o, *r = json_array();
	size_t i;
	int ret;
	for (i = 0; i < st->nrecovery; i++)
		json_array_append_new(r, json_string(st->recovery[i]));
	(void)sodium_bin2hex(hex, sizeof(hex), st->key, sizeof(st->key));
	o = json_pack("{s:s,s:I,s:o}", "k", hex, "l", (json_int_t)st->last_step, "r", r);
	mw_memzero(hex, sizeof(hex));
	/* json_dumps, not api_json_render: its buffer grows through jansson's allocator, which
	   wipes every block it lets go (api_json_wipe_init); an mw_str grows by realloc, which
	   would leave copies of the secret in freed memory */
	text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (text == NULL) {
		mw_error_set(error_r, "cannot encode TOTP state");
		return -1;
	}
	totp_ad(user_id, ad, sizeof(ad));
	if (pending)
		(void)mw_str_appends(out, TOTP_PENDING);
	ret = mw_secret_encrypt(mk, text, strlen(text), ad, out, error_r);
	mw_memzero(text, strlen(text));
	free(text);
	return ret;
}

/* api_totp_recovery_hash - hex SHA-256 of a normalised recovery code */
void api_totp_recovery_hash(const char *code, char out[crypto_hash_sha256_BYTES * 2 + 1])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, (const unsigned char *)code, strlen(code));
	(void)sodium_bin2hex(out, crypto_hash_sha256_BYTES * 2 + 1, d, sizeof(d));
}

/* recovery_normalize - "ABCDE-FGHJK" / "abcdefghjk" → "abcdefghjk"; -1 when not one */
static int recovery_normalize(const char *in, char out[TOTP_RECOVERY_LEN + 1])
{
	size_t n = 0;
	for (; *in != '\0'; in++) {
		char c = *in >= 'A' && *in <= 'Z' ? (char)(*in - 'A' + 'a') : *in;
		if (c == '-' || c == ' ')
			continue;
		if (n >= TOTP_RECOVERY_LEN || strchr(api_totp_recovery_alphabet, c) == NULL)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return n == TOTP_RECOVERY_LEN ? 0 : -1;
}

/* is_digits - exactly n ASCII digits */
static bool is_digits(const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return s[n] == '\0';
}

/* api_totp_code_use - check code (6-digit TOTP or a recovery code) against st and consume it
   there; recovery_ok: whether recovery codes are accepted. 0 accepted, -1 not. */
int api_totp_code_use(struct api_totp_state *st, const char *code, bool recovery_ok)
{
	char norm[TOTP_RECOVERY_LEN + 1], h[crypto_hash_sha256_BYTES * 2 + 1];
	uint64_t counter = 0;
	int pos = 0, found = -1;
	size_t i;
	if (is_digits(code, TOTP_DIGITS)) {
		if (api_totp_oath_ready() < 0)
			return -1;
		if (oath_totp_validate3((const char *)st->key, sizeof(st->key), (time_t)mw_now(),
		                        TOTP_STEP, 0, TOTP_WINDOW, &pos, &counter, code) < 0)
			return -1;
		if ((int64_t)counter <= st->last_step)
			return -1; /* this step (or a later one) was used already: a replay */
		st->last_step = (int64_t)counter;
		return 0;
	}
	if (!recovery_ok || recovery_normalize(code, norm) < 0)
		return -1;
	api_totp_recovery_hash(norm, h);
	mw_memzero(norm, sizeof(norm));
	/* look at every entry whatever matches, so the time does not tell which */
	for (i = 0; i < st->nrecovery; i++)
		if (sodium_memcmp(h, st->recovery[i], sizeof(h) - 1) == 0)
			found = (int)i;
	if (found < 0)
		return -1;
	for (i = (size_t)found; i + 1 < st->nrecovery; i++)
		memcpy(st->recovery[i], st->recovery[i + 1], sizeof(st->recovery[i]));
	st->nrecovery--;
	return 0;
}

/* use_code - verify code against the stored state text and consume it in the store;
   1 accepted, 0 refused (including a lost race), -1 store/key error (res set) */
static int use_code(struct api_ctx *ctx, struct api_response *res, const char *username,
                    int64_t user_id, const char *text, const char *code, bool recovery_ok)
{
	mw_master_key mk;
	struct api_totp_state st;
	mw_str out;
	mw_error err = {{0}};
	bool pending;
	int ret;
	if (api_master_key(ctx, res, &mk) < 0)
		return -1;
	if (api_totp_state_decode(&mk, user_id, text, &st, &pending, &err) < 0) {
		mw_secret_key_wipe(&mk);
		mw_error_log("TOTP state of %s: %s", username, err.msg);
		api_error(res, 503, "internal", "the two-factor state cannot be read");
		return -1;
	}
	if (api_totp_code_use(&st, code, recovery_ok) < 0) {
		api_totp_state_clear(&st);
		mw_secret_key_wipe(&mk);
		return 0;
	}
	mw_str_init(&out, 0);
	ret = api_totp_state_encode(&mk, user_id, &st, pending, &out, &err);
	api_totp_state_clear(&st);
	mw_secret_key_wipe(&mk);
	if (ret == 0)
		ret = mw_store_user_totp_set(ctx->store, username, text, out.buf, &err);
	mw_str_free(&out);
	if (ret == MW_STORE_NOTFOUND)
		return 0; /* changed meanwhile: another request used a code first */
	if (ret != MW_STORE_OK) {
		api_store_error(res, "recording a used code", &err);
		return -1;
	}
	return 1;
}

/* api_totp_login - the second factor of a login by user (active TOTP); code NULL when the
   client sent none */
int api_totp_login(struct api_ctx *ctx, struct api_response *res, const struct mw_user *user,
                   const char *code)
{
	char *text = NULL;
	mw_error err = {{0}};
	int ret;
	if (code == NULL)
		return API_TOTP_MISSING;
	ret = mw_store_user_totp_get(ctx->store, user->username, &text, &err);
	if (ret != MW_STORE_OK) {
		api_store_error(res, "reading TOTP state", &err);
		return API_TOTP_ERROR;
	}
	if (text == NULL || strncmp(text, "v1:", 3) != 0) {
		free(text);
		return API_TOTP_WRONG; /* turned off meanwhile: refuse, the client retries */
	}
	ret = use_code(ctx, res, user->username, user->id, text, code, true);
	free(text);
	return ret < 0 ? API_TOTP_ERROR : ret == 1 ? API_TOTP_OK : API_TOTP_WRONG;
}
