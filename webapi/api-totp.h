/* api-totp.h - mailwarden-api: the TOTP state at rest and the check of a code
   (api-totp-state.c), shared by the login path (api-guard.c) and the enrolment routes
   (api-totp.c). Private to webapi/. */
#ifndef API_TOTP_H
#define API_TOTP_H

#include "api-common.h"

#include <sodium.h>

#define TOTP_KEY_BYTES    20 /* 160 bits, RFC 4226's recommendation */
#define TOTP_STEP         30
#define TOTP_DIGITS       6
#define TOTP_WINDOW       1
#define TOTP_RECOVERY_N   10
#define TOTP_RECOVERY_LEN 10 /* characters, shown as two groups of five */
#define TOTP_CODE_MAX     64 /* longest code field accepted */
#define TOTP_PENDING      "pending:"
#define TOTP_ISSUER       "mailwarden"

struct api_totp_state {
	unsigned char key[TOTP_KEY_BYTES];
	int64_t last_step;
	char recovery[TOTP_RECOVERY_N][crypto_hash_sha256_BYTES * 2 + 1];
	size_t nrecovery;
};

extern const char api_totp_recovery_alphabet[32]; /* 31 characters and the NUL */

int api_totp_oath_ready(void);
void api_totp_state_clear(struct api_totp_state *st);
int api_totp_state_decode(const mw_master_key *mk, int64_t user_id, const char *text,
                          struct api_totp_state *st, bool *pending_r, mw_error *error_r);
int api_totp_state_encode(const mw_master_key *mk, int64_t user_id, const struct api_totp_state *st,
                          bool pending, mw_str *out, mw_error *error_r);
void api_totp_recovery_hash(const char *code, char out[crypto_hash_sha256_BYTES * 2 + 1]);
int api_totp_code_use(struct api_totp_state *st, const char *code, bool recovery_ok);

#endif
