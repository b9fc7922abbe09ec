/* mw-dmarc.h - DMARC as RFC 9989 (DMARCbis) writes it: record grammar, the DNS tree walk for
 * policy discovery and for the organisational domain, identifier alignment.
 *
 * No DNS of its own: the caller passes a fetch callback that returns the DMARC TXT records of
 * one name (mw-authcheck asks mw-dns; the unit tests answer from a table). Every answer the
 * walk asks for is remembered per message (struct mw_dmarc_walk), so the policy walk and the
 * alignment walks of the From domain, the DKIM d= domains and the SPF domain share lookups.
 *
 * Hardening: a lookup that failed temporarily anywhere on a walk whose outcome it could
 * change makes the walk MW_DMARC_WALK_TEMPFAIL (the caller reports temperror), never a
 * guess. Several DMARC records at one name count as none there (RFC 9989: the walk goes on).
 * A record whose v=DMARC1 is right but whose p=, sp=, np=, t=, psd=, adkim= or aspf= value
 * is not in the grammar is "malformed": the walk stops there and reports it.
 */
#ifndef MW_DMARC_H
#define MW_DMARC_H

#include "mw-dns.h"
#include "mw-util.h"

#define MW_DMARC_RECORD_MAX  1024 /* one TXT record (its strings joined) */
#define MW_DMARC_WALK_LABELS 7    /* RFC 9989 4.10: longer names jump to their last 7 labels */
#define MW_DMARC_WALK_MAX    8    /* so one walk never asks more than 8 names */
#define MW_DMARC_CACHE_MAX   32   /* names remembered per message */

enum mw_dmarc_p {
	MW_DMARC_P_UNSET = 0,
	MW_DMARC_P_NONE,
	MW_DMARC_P_QUARANTINE,
	MW_DMARC_P_REJECT,
};

enum mw_dmarc_psd { MW_DMARC_PSD_U = 0, MW_DMARC_PSD_Y, MW_DMARC_PSD_N };

struct mw_dmarc_record {
	enum mw_dmarc_p p, sp, np;
	enum mw_dmarc_psd psd;
	bool testing;     /* t=y */
	bool strict_dkim; /* adkim=s */
	bool strict_spf;  /* aspf=s */
	bool has_pct;     /* pct= was given (RFC 7489; ignored by RFC 9989) */
	unsigned pct;
};

/* Parses TXT: 0, or -1 with error_r when it is not a DMARC record at all (the caller has
   already kept only records starting with v=DMARC1) or one of the tags above has a value
   outside the grammar (then the record is malformed). Unknown tags are ignored. */
int mw_dmarc_record_parse(const char *txt, struct mw_dmarc_record *rec_r, mw_error *error_r);
/* "v=DMARC1" followed by ';', blank or the end. */
bool mw_dmarc_is_record(const char *txt, size_t len);

/* What a fetch returns for one name. */
enum mw_dmarc_fetch {
	MW_DMARC_FETCH_ONE,      /* exactly one DMARC record: copied to rec */
	MW_DMARC_FETCH_NONE,     /* none (NXDOMAIN, NODATA, only non-DMARC TXT) */
	MW_DMARC_FETCH_MULTIPLE, /* more than one: none at this name */
	MW_DMARC_FETCH_TEMPFAIL, /* timeout, SERVFAIL: unknown */
};
typedef enum mw_dmarc_fetch mw_dmarc_fetch_fn(void *ctx, const char *domain, char *rec,
                                              size_t recsize);

struct mw_dmarc_cached {
	char name[MW_DNS_NAME_MAX + 1];
	enum mw_dmarc_fetch status;
	bool malformed;
	struct mw_dmarc_record rec;
	char text[MW_DMARC_RECORD_MAX]; /* the record as fetched (status ONE) */
};

struct mw_dmarc_walk {
	mw_dmarc_fetch_fn *fetch;
	void *ctx;
	size_t ncache;
	struct mw_dmarc_cached cache[MW_DMARC_CACHE_MAX];
	unsigned lookups; /* fetches made (for tests and the log) */
};

enum mw_dmarc_walk_status {
	MW_DMARC_WALK_FOUND,     /* a record: *found_r points at it */
	MW_DMARC_WALK_NONE,      /* no record anywhere on the walk */
	MW_DMARC_WALK_TEMPFAIL,  /* a lookup failed temporarily */
	MW_DMARC_WALK_MALFORMED, /* the first record found is malformed (*found_r names it) */
};

void mw_dmarc_walk_init(struct mw_dmarc_walk *w, mw_dmarc_fetch_fn *fetch, void *ctx);

/* Policy discovery (RFC 9989 4.10.1): the From domain's own record, else the walk upwards
   (jumping to 7 labels, then one label at a time, down to the top-level label). */
enum mw_dmarc_walk_status mw_dmarc_policy_walk(struct mw_dmarc_walk *w, const char *domain,
                                               const struct mw_dmarc_cached **found_r);
/* The organisational domain (RFC 9989 4.10.2) into org (size MW_DNS_NAME_MAX + 1): the walk
   stops at a record with psd=n (that name) or psd=y above the start (the name one label
   below it); otherwise the name with the fewest labels that has a record; with no record
   on the walk, DOMAIN itself. */
enum mw_dmarc_walk_status mw_dmarc_org_domain(struct mw_dmarc_walk *w, const char *domain,
                                              char *org);
/* Whether identifier ID (DKIM d=, SPF domain) is aligned with FROM: strict = equal; relaxed =
   same organisational domain. MW_DMARC_WALK_FOUND = aligned, _NONE = not, _TEMPFAIL. */
enum mw_dmarc_walk_status mw_dmarc_aligned(struct mw_dmarc_walk *w, const char *from,
                                           const char *id, bool strict);

const char *mw_dmarc_p_str(enum mw_dmarc_p p);

#endif
