/* mw-tokenize.h - the classifier's tokens of a message (from mw-mime's parse).
 *
 * A token is a short text with a kind prefix ("s:" subject word, "from:dom:" sender domain,
 * "url:reg:" registrable domain of a URL, ... ; body words have no prefix), hashed with
 * SipHash-2-4 (libsodium crypto_shorthash, a fixed key: the hashes are stored, so the key
 * can never change) into a 64-bit key. A message's tokens are distinct (a set), at most
 * MW_TOKENS_MAX of them (the rest are dropped and the token "tok:truncated" added).
 */
#ifndef MW_TOKENIZE_H
#define MW_TOKENIZE_H

#include "mw-mime.h"

#define MW_TOKENS_MAX     4000
#define MW_TOKEN_TEXT_MAX 64 /* bytes of token text kept (longer: cut) */

enum mw_tokenize_flag {
	MW_TOK_BIGRAMS = 1 << 0, /* also pairs of adjacent body and subject words */
};

struct mw_tokens {
	uint64_t *hash;
	char **text; /* only when keep_text (debugging: mailwardenctl classify) */
	size_t count;
	bool keep_text;
	bool truncated;
	uint64_t *set; /* open-addressing set of hashes (0 = empty slot) */
};

void mw_tokens_init(struct mw_tokens *t, bool keep_text);
void mw_tokens_reset(struct mw_tokens *t);
void mw_tokens_free(struct mw_tokens *t);
/* Adds one token (ignored when already there or when the set is full). */
void mw_tokens_add(struct mw_tokens *t, const char *s, size_t len);
uint64_t mw_token_hash(const char *s, size_t len);

/* The registrable domain of a lower-case host name by the public suffix list (libpsl's
   latest, else its built-in list; loaded once per process), a suffix of HOST; NULL when the
   list gives none (HOST is a public suffix or not a domain). */
const char *mw_tokenize_registrable_domain(const char *host);

/* The tokens of a parsed message (flags: enum mw_tokenize_flag), added to t. */
void mw_tokenize(const struct mw_mime_msg *msg, unsigned flags, struct mw_tokens *t);

#endif
