/* mw-dkim-rotate.h - DKIM key rotation (issue 18): a domain's keys move
 *   (none) -> pending -> active -> retiring -> retired
 * A rotation generates the next key as pending (it never signs), lets it sign only once its
 * TXT record is visible through the configured resolver (then the previous active key
 * becomes retiring and both sign), and retires the previous key when the grace period is
 * over. Each run is idempotent: it looks at the store, makes the steps that are due, and
 * every step is one store transaction, so several hosts may run it at once.
 */
#ifndef MW_DKIM_ROTATE_H
#define MW_DKIM_ROTATE_H

#include "mw-config.h"
#include "mw-dns.h"
#include "mw-secret.h"
#include "mw-store.h"
#include "mw-util.h"

#include <jansson.h>

#define MW_DKIM_ROTATE_RETIRE_MAX 8 /* retiring keys handled in one run of one domain */

struct mw_dkim_rotate_opts {
	int64_t now;
	int64_t period; /* age of the active key at which a rotation is due; 0 = never */
	int64_t grace;  /* how long the previous key keeps signing beside the new one */
	unsigned bits;  /* RSA size of a generated key (2048, 3072, 4096) */
	bool start;     /* start a rotation now (dkim rotate DOMAIN), due or not */
	const char *actor, *client; /* for the audit log */
};

/* What one run does for one domain, decided from its keys alone (no store, no DNS). */
struct mw_dkim_rotate_plan {
	char retire[MW_DKIM_ROTATE_RETIRE_MAX][MW_DKIM_SELECTOR_MAX + 1];
	size_t nretire;                          /* retiring keys whose retire_at has come */
	char promote[MW_DKIM_SELECTOR_MAX + 1];  /* the pending key: activate when visible */
	char generate[MW_DKIM_SELECTOR_MAX + 1]; /* start a rotation: the new key's selector */
	char why[MW_DKIM_SELECTOR_MAX + 128];    /* why nothing starts although asked, or "" */
};

/* How mw_dkim_key_save stores a key. */
enum mw_dkim_save_state {
	MW_DKIM_SAVE_INACTIVE, /* stored, not signing (dkim activate later) */
	MW_DKIM_SAVE_ACTIVE,   /* the domain's only active key (the previous one stops) */
	MW_DKIM_SAVE_PENDING,  /* a rotation's next key (mw_store_dkim_key_add_pending) */
};

/* Encrypts the private key PEM (pem_len bytes) with master_key, bound to domain/selector
   (mw_dkim_key_ad), and adds it to the store with its public key PUB (base64) and type
   ("rsa", "ed25519") in STATE: what every path that makes a key (API, CLI, rotation) calls.
   Returns the store's status (MW_STORE_EXISTS: the selector or, pending, another pending
   key exists); MW_STORE_ERROR with a reason also when encryption fails. */
int mw_dkim_key_save(mw_store *store, const mw_master_key *master_key, const char *domain,
                     const char *selector, const char *type, const char *pem, size_t pem_len,
                     const char *pub, enum mw_dkim_save_state state, mw_error *error_r);

/* The plan for one domain's keys (rows of that domain only). A rotation starts (generate)
   when asked (opts->start) or due (period > 0 and the active key is at least period old),
   and only when no key is pending and no key is still retiring after this run's
   retirements; the new selector is the day, YYYYMMDD, with "-2".."-9" when taken. why says
   why a rotation asked for (start) cannot begin; a due one that must wait for a retiring
   key just waits. */
void mw_dkim_rotate_plan(const struct mw_dkim_key_row *rows, size_t n,
                         const struct mw_dkim_rotate_opts *opts,
                         struct mw_dkim_rotate_plan *plan_r);

/* Runs the plan for DOMAIN (normalised) against the store: retires, generates (encrypted
   with master_key, audited dkim.rotate), checks the pending key's TXT record through dns and
   activates it only when it is published as expected (audited dkim.promote; the previous
   key retires at now + grace), audits retirements (dkim.retire). Appends one object per
   event to events: {domain, selector, event, message[, record]}, event one of "retired",
   "generated", "waiting", "activated", "idle", "skipped" (another host made the step).
   -1 with a reason when the store or the key generation fails (events so far are kept). */
int mw_dkim_rotate_domain(mw_store *store, const mw_master_key *master_key, mw_dns *dns,
                          const char *domain, const struct mw_dkim_rotate_opts *opts,
                          json_t *events, mw_error *error_r);

/* mw_dkim_rotate_domain for every domain that has keys (dkim rotate --due). Errors of one
   domain are recorded as an "error" event and the others still run; -1 when any failed. */
int mw_dkim_rotate_due(mw_store *store, const mw_master_key *master_key, mw_dns *dns,
                       const struct mw_dkim_rotate_opts *opts, json_t *events, mw_error *error_r);

/* The whole run as mailwardenctl (local mode) and mailwarden-api make it: options from
   [dkim] rotation_period / rotation_grace and the clock, the master key from [main]
   master_key (none readable: only a generation fails), the resolver of [milter]
   dns_servers (none: a pending key waits). domain NULL: every domain, what is due
   (--due); otherwise start a rotation of domain unless one is under way. */
int mw_dkim_rotate_run(const mw_config *cfg, mw_store *store, const char *domain, unsigned bits,
                       const char *actor, const char *client, json_t *events, mw_error *error_r);

#endif
