/* mw-dnsrec.h - what a mail domain publishes: its DNS records (MX, SPF, DKIM, DMARC,
 * MTA-STS, TLS-RPT, client SRV), its MTA-STS policy and the client settings, all derived
 * from the [mailhost] configuration and the store's DKIM keys; and the check of what is
 * published through the configured resolver.
 *
 * One owner for this data: mailwarden-api (GET /api/v1/domains/{domain}/dns, the MTA-STS
 * policy and client autoconfig) and mailwardenctl's local mode build it here, and the JSON
 * form (mw_dnsrec_json) is what both print, so the two modes cannot disagree.
 */
#ifndef MW_DNSREC_H
#define MW_DNSREC_H

#include "mw-config.h"
#include "mw-dns.h"
#include "mw-store.h"
#include "mw-util.h"

#include <jansson.h>

#define MW_DNSREC_MAX 24 /* records of one domain: 8 fixed + SRV + DKIM selectors */

enum mw_dnsrec_status {
	MW_DNSREC_UNCHECKED,
	MW_DNSREC_OK,        /* published as expected */
	MW_DNSREC_MISSING,   /* nothing of the kind at that name */
	MW_DNSREC_DIFFERENT, /* something else is published (see difference) */
	MW_DNSREC_ERROR,     /* the resolver could not say (timeout, SERVFAIL): not ok */
};

/* One record to publish. value is the rdata in presentation form except for TXT, where it
   is the text itself (zone has it quoted and split into 255-byte strings). */
struct mw_dnsrec {
	const char *purpose; /* "mx", "spf", "dkim", "dmarc", "mta-sts", "tls-rpt", "srv" */
	char name[MW_DNS_NAME_MAX + 2]; /* fully qualified, with the trailing dot */
	const char *type;               /* "MX", "TXT", "SRV" */
	char *value;                    /* owned */
	/* the check (mw_dnsrec_check) */
	enum mw_dnsrec_status status;
	char *published;  /* owned: what was found (records joined by " | "), NULL = none */
	char *difference; /* owned: how it differs, or why it could not be checked */
};

struct mw_dnsrec_set {
	char domain[MW_DNS_NAME_MAX + 1]; /* normalised (lower-case A-label) */
	struct mw_dnsrec rec[MW_DNSREC_MAX];
	size_t count;
	char *mta_sts_policy; /* owned: the RFC 8461 policy text (CRLF lines) */
	char mta_sts_id[24];  /* the policy's id (from its SHA-256: changes when it changes) */
	bool checked;
};

/* The client services of [mailhost] client_services. */
struct mw_dnsrec_service {
	const char *name;     /* "imaps", "imap", "submissions", "submission" */
	const char *protocol; /* "imap" or "smtp" */
	unsigned port;
	bool implicit_tls; /* true: TLS from the first byte; false: STARTTLS */
	bool offered;
	char host[MW_DNS_NAME_MAX + 1];
};
#define MW_DNSREC_SERVICES 4

/* Normalises domain_in (mw_dkim_domain_normalize) into out. -1 with a reason. */
int mw_dnsrec_domain(const char *domain_in, char *out, size_t outsize, mw_error *error_r);
/* Is the normalised DOMAIN one of [milter] local_domains (the domains we serve)? */
bool mw_dnsrec_domain_served(const mw_config *cfg, const char *domain);
/* The client services with their hosts; -1 when [mailhost] mx_host (or a list) is unusable. */
int mw_dnsrec_services(const mw_config *cfg, struct mw_dnsrec_service out[MW_DNSREC_SERVICES],
                       mw_error *error_r);
/* The MTA-STS policy text and its id; -1 when the configuration cannot give one. */
int mw_dnsrec_mta_sts_policy(const mw_config *cfg, mw_str *policy_r, char id[24],
                             mw_error *error_r);
/* Every record DOMAIN (normalised) should publish; store: the DKIM keys (read only; NULL =
   none are listed). -1 with a reason (configuration, store). Free with mw_dnsrec_set_free. */
int mw_dnsrec_build(const mw_config *cfg, mw_store *store, const char *domain,
                    struct mw_dnsrec_set *set_r, mw_error *error_r);
void mw_dnsrec_set_free(struct mw_dnsrec_set *set);
/* A set holding only the TXT record of one DKIM key (purpose "dkim"): what DKIM rotation
   checks before it lets a key sign. -1 with a reason. Free with mw_dnsrec_set_free. */
int mw_dnsrec_dkim_set(const char *domain, const char *selector, const char *key_type,
                       const char *pub_b64, struct mw_dnsrec_set *set_r, mw_error *error_r);
/* Resolves each record through dns and records its status. -1 only when dns is NULL. */
int mw_dnsrec_check(struct mw_dnsrec_set *set, mw_dns *dns, mw_error *error_r);
/* A resolver from [milter] dns_servers / dns_timeout (NULL with a reason). */
mw_dns *mw_dnsrec_resolver(const mw_config *cfg, mw_error *error_r);
/* One record as a zone-file line (no newline) appended to out. */
void mw_dnsrec_zone_line(const struct mw_dnsrec *rec, mw_str *out);
/* The set as JSON: {"domain","records":[{purpose,name,type,value,zone[,status,published,
   difference]}],"mta_sts_policy","mta_sts_id"[,"checked":true,"ok":BOOL]}. */
json_t *mw_dnsrec_json(const struct mw_dnsrec_set *set);
const char *mw_dnsrec_status_str(enum mw_dnsrec_status status);

#endif
