/* mw-dkim-sign.h - DKIM signing (libopendkim): keys, key lookup, a streaming signer. */
#ifndef MW_DKIM_SIGN_H
#define MW_DKIM_SIGN_H

#include "mw-secret.h"
#include "mw-store.h"
#include "mw-util.h"

#define MW_DKIM_KEY_PEM_MAX     16384   /* a private key in PEM (RSA 4096 is ~3.3k) */
#define MW_DKIM_HEADER_MAX      65536   /* one header field, name and value */
#define MW_DKIM_HEADERS_MAX     1048576 /* all header fields of one message */
#define MW_DKIM_HEADER_LIST_MAX 1024    /* a sign_headers list */
#define MW_DKIM_RSA_MIN_BITS    1024    /* RFC 8301: shorter RSA keys are refused */
#define MW_DKIM_RSA_MAX_BITS    8192

/* Header fields signed by default: comma-separated, '*' is a wildcard. */
#define MW_DKIM_DEFAULT_SIGN_HEADERS                                                               \
	"from,sender,to,cc,subject,date,message-id,reply-to,in-reply-to,references,"               \
	"mime-version,content-type,content-transfer-encoding,list-*"
/* Every signed name is over-signed: h= names each one instance more than the message
   has (names of the list without a wildcard, and From, even when absent), so no field of
   a signed name can be added after signing without breaking the signature. */
/* At most this many header fields of one message are signed (their instances, counted
   over all signed names): a message with more is not signed (mw_dkim_signer_header fails
   and mw_dkim_signer_too_many says why); the milter refuses it permanently. */
#define MW_DKIM_SIGNED_FIELDS_MAX 200

struct dkim_lib;

/* The process's libopendkim handle, made once (pthread_once) with relaxed defaults and
   FIXCRLF (bare LF in input is taken as CRLF). NULL when
   libopendkim could not be initialised (then every signer_new fails). Never closed.
   libopendkim is thread-safe per handle: one signer per message and thread. */
struct dkim_lib *mw_dkim_lib_get(void);
/* Whether this libopendkim signs ed25519-sha256 (RFC 8463). */
bool mw_dkim_ed25519_supported(void);

/* Names: a domain is normalised with mw_addr_domain_normalize (lower-case A-label, no
   trailing dot); a selector is one or more dot-separated labels of letters, digits, '-'
   and '_' (at most 63 bytes each, 253 in all), folded to lower case. */
int mw_dkim_domain_normalize(const char *in, char *out, size_t outsize, mw_error *error_r);
int mw_dkim_selector_normalize(const char *in, char *out, size_t outsize, mw_error *error_r);

/* ---- keys ---- */
typedef struct mw_dkim_key mw_dkim_key;

enum mw_dkim_key_type { MW_DKIM_KEY_RSA, MW_DKIM_KEY_ED25519 };

/* Parses a private key (PEM, PKCS#1 or PKCS#8, unencrypted) for domain and selector
   (both normalised here). Refused with a clear message: not PEM, unparseable, RSA
   shorter than MW_DKIM_RSA_MIN_BITS, a type other than RSA/Ed25519, Ed25519 when
   libopendkim cannot sign with it. The key holds its own wiped-on-free copy of pem. */
mw_dkim_key *mw_dkim_key_new(const char *domain, const char *selector, const char *pem,
                             size_t pem_len, mw_error *error_r);
void mw_dkim_key_free(mw_dkim_key **key);
/* A key made again from the same PEM text shares the EVP_PKEY parsed the first time (a
   process-wide cache by the SHA-256 of the text: other text is parsed anew, failures are
   not kept; keys unused for 10 minutes are dropped). Flush forgets every parsed key (keys
   and signers that exist keep theirs); parses counts the keys actually parsed. */
void mw_dkim_key_cache_flush(void);
unsigned long mw_dkim_key_parses(void);
const char *mw_dkim_key_domain(const mw_dkim_key *key);
const char *mw_dkim_key_selector(const mw_dkim_key *key);
enum mw_dkim_key_type mw_dkim_key_type(const mw_dkim_key *key);
/* "rsa-sha256" or "ed25519-sha256" */
const char *mw_dkim_key_algorithm(const mw_dkim_key *key);
/* Appends the base64 signature of a SHA-256 digest made with key (RSA PKCS#1 v1.5 with
   SHA-256, or Ed25519 over the digest as RFC 8463 does): what an ARC seal needs. */
int mw_dkim_key_sign_digest(const mw_dkim_key *key, const unsigned char digest[32], mw_str *b64_r,
                            mw_error *error_r);

/* Checks a PEM private key as mw_dkim_key_new does and appends to pub_r the p= value of
   its DNS record (base64; SubjectPublicKeyInfo DER for RSA, the raw 32 bytes for Ed25519). */
int mw_dkim_pem_public(const char *pem, size_t pem_len, enum mw_dkim_key_type *type_r,
                       mw_str *pub_r, mw_error *error_r);
/* The RSA sizes a new key may have (tools and the API check with this). */
#define MW_DKIM_RSA_BITS_TEXT "2048, 3072 or 4096"
bool mw_dkim_rsa_bits_ok(long long bits);
/* A new RSA key of bits (2048, 3072 or 4096) through OpenSSL EVP: PKCS#8 PEM appended to
   pem_r (the caller wipes it), the p= value to pub_r. */
int mw_dkim_generate_rsa(unsigned bits, mw_str *pem_r, mw_str *pub_r, mw_error *error_r);
/* The zone-file line to publish:
   SELECTOR._domainkey.DOMAIN. IN TXT ( "v=DKIM1; k=rsa; p=..." "..." )
   with the text split into strings of at most 255 bytes. */
int mw_dkim_txt_record(const char *domain, const char *selector, enum mw_dkim_key_type type,
                       const char *pub_b64, mw_str *out, mw_error *error_r);
/* The associated data binding an encrypted private key to its row: "dkim:DOMAIN:SELECTOR". */
int mw_dkim_key_ad(const char *domain, const char *selector, mw_str *out);

/* ---- key lookup ---- */
enum mw_dkim_lookup {
	MW_DKIM_LOOKUP_ERROR = -1,
	MW_DKIM_LOOKUP_FOUND = 0,
	MW_DKIM_LOOKUP_NONE = 1
};

/* The active key of domain in the store, decrypted with master_key (associated data
   "dkim:DOMAIN:SELECTOR"). A wrong master key, a row moved to another domain or selector
   and a key that does not parse are errors. */
int mw_dkim_key_from_store(mw_store *store, const mw_master_key *master_key, const char *domain,
                           mw_dkim_key **key_r, mw_error *error_r);
/* During a rotation's overlap (lib/mw-dkim-rotate.h) the key also carries the domain's
   retiring key (mw_dkim_key_also), and a signer made from it signs with both. */
const mw_dkim_key *mw_dkim_key_also(const mw_dkim_key *key);
/* A key file: refused unless a regular file (no symlink), not readable or writable by group
   or others, at most MW_DKIM_KEY_PEM_MAX bytes. */
int mw_dkim_key_load_file(const char *path, const char *domain, const char *selector,
                          mw_dkim_key **key_r, mw_error *error_r);
/* The key file of domain in dir: dir/DOMAIN.SELECTOR.key, all in lower case, the selector
   a single label (so "a.example.s.key" cannot be read two ways). No such file is
   MW_DKIM_LOOKUP_NONE; two or more for one domain is an error (remove the old one). */
int mw_dkim_key_from_dir(const char *dir, const char *domain, mw_dkim_key **key_r,
                         mw_error *error_r);
/* The signing key of domain (normalised here): the store's active key first (when store
   and master_key are not NULL), then the key directory (when dir is not NULL or "").
   Returns an enum mw_dkim_lookup value. */
int mw_dkim_key_lookup(mw_store *store, const mw_master_key *master_key, const char *dir,
                       const char *domain, mw_dkim_key **key_r, mw_error *error_r);

/* ---- the signer: one per message ---- */
typedef struct mw_dkim_signer mw_dkim_signer;

/* A signer for one message: relaxed/relaxed, rsa-sha256 or ed25519-sha256 by key type.
   job_id (the queue id, or NULL) is accepted for the caller's convenience and unused.
   sign_headers: comma- or blank-separated header names ('*' wildcard); NULL or "" =
   MW_DKIM_DEFAULT_SIGN_HEADERS; From is always signed. The key may be freed after this. */
mw_dkim_signer *mw_dkim_signer_new(const mw_dkim_key *key, const char *job_id,
                                   const char *sign_headers, mw_error *error_r);
/* One header field in message order: name without colon, value as the milter gives it
   (leading blank optional; folds as LF or CRLF + WSP). Fails for the field that would be
   the (MW_DKIM_SIGNED_FIELDS_MAX + 1)th to sign; then mw_dkim_signer_too_many is true. */
int mw_dkim_signer_header(mw_dkim_signer *signer, const char *name, const char *value,
                          mw_error *error_r);
bool mw_dkim_signer_too_many(const mw_dkim_signer *signer);
int mw_dkim_signer_eoh(mw_dkim_signer *signer, mw_error *error_r);
/* A chunk of the body (CRLF, LF or bare CR line ends: RFC 6376 5.3), any size, any number
   of calls. */
int mw_dkim_signer_body(mw_dkim_signer *signer, const void *chunk, size_t len, mw_error *error_r);
/* Finishes: appends to value_r the value of the DKIM-Signature header field to insert
   first in the message (smfi_insheader(ctx, 0, "DKIM-Signature", value)): no leading
   blank (a milter that negotiated SMFIP_HDR_LEADSPC prepends one), folded with "\n\t"
   (LF, as milters pass header values; relaxed canonicalisation ignores the folding), no
   trailing newline. */
int mw_dkim_signer_eom(mw_dkim_signer *signer, mw_str *value_r, mw_error *error_r);
void mw_dkim_signer_free(mw_dkim_signer **signer);
/* The signer of the key's second key (mw_dkim_key_also), fed every header and body chunk
   given to signer; finish it with its own mw_dkim_signer_eom (a second DKIM-Signature).
   NULL when the key has none. Owned by signer. */
mw_dkim_signer *mw_dkim_signer_also(mw_dkim_signer *signer);

#endif
