/* milter.h - mailwarden-milter: shared types of the daemon's modules.
 *
 * Layers: milter-from.c (pure decisions: header From/Sender against patterns, the
 * authserv-id of an Authentication-Results value; no libmilter, unit-tested),
 * milter-users.c (user status + allowed-From patterns from the store, cached),
 * milter-dkim.c (DKIM signing keys per domain, cached; the master key),
 * milter-callbacks.c (milter callbacks, connection and message contexts),
 * milter-proto.c (the milter protocol: libmilter's smfi_* interface, no libmilter),
 * milter-inbound.c (SPF/DKIM/DMARC verdict for unauthenticated mail),
 * milter-dmarc-record.c (DMARC evaluations into the store, for aggregate reports),
 * milter-scan.c (the message as received, kept for the scan stages; virus scanning),
 * milter-main.c (options, socket, privileges, signals, reload).
 */
#ifndef MILTER_H
#define MILTER_H

#include "mw-addr.h"
#include "mw-authcheck.h"
#include "mw-config.h"
#include "mw-dkim-sign.h"
#include "mw-store.h"
#include "mw-util.h"

#include <stdint.h>

#define MILTER_NAME          "mailwarden-milter"
#define MILTER_REPLY_MAX     400 /* text of one SMTP reply we build */
#define MILTER_MAX_STRIP     512 /* headers deleted from one message; more is refused */
#define MILTER_MAX_HDR_NAMES 64  /* distinct strippable header names counted per message */
#define MILTER_LOGV          200 /* room for one escaped untrusted value in a log line */

/* ---- milter-from.c: decisions without libmilter ---- */

/* An SMTP reply: rcode "550", xcode "5.7.1", text without CR/LF or '%'. */
struct milter_reply {
	const char *rcode;
	const char *xcode;
	char text[MILTER_REPLY_MAX];
	const char *reason; /* short key for the log: "from_not_allowed", ... */
};

/* The header values of one message that From enforcement looks at. */
struct milter_from_input {
	const char *const *from; /* values of every From: header, in order */
	size_t n_from;
	const char *const *sender; /* values of every Sender: header */
	size_t n_sender;
};

/* Checks every address of From: (exactly one header, at least one address) and of Sender:
   (at most one header) against the user's canonical patterns. Returns 0 when all match,
   1 with *reply_r filled when the message is refused. */
int milter_from_check(const struct milter_from_input *in, const char *const *patterns,
                      size_t npatterns, const char *user, struct milter_reply *reply_r);
/* Checks an envelope sender (argv[0] of MAIL FROM as Postfix passes it, "<a@b>").
   null_ok: whether "<>" is accepted. Returns 0 or 1 with *reply_r filled. */
int milter_envfrom_check(const char *envfrom, bool null_ok, const char *const *patterns,
                         size_t npatterns, const char *user, struct milter_reply *reply_r);
/* Copies untrusted text into a reply: printable ASCII and space, except '%' and '\\',
   as is; other bytes as \xNN; cut with "..." when dst is full. */
void milter_reply_value(char *dst, size_t dstsize, const char *src);
void milter_reply_set(struct milter_reply *r, const char *rcode, const char *xcode,
                      const char *reason, const char *fmt, ...) MW_PRINTF(5, 6);

/* ---- milter-users.c: user lookups through a small cache ---- */

enum milter_lookup { MILTER_LOOKUP_OK, MILTER_LOOKUP_NOTFOUND, MILTER_LOOKUP_ERROR };

/* What the milter needs to know about a sending user (owned copy). */
struct milter_user_info {
	enum mw_user_status status;
	char **patterns; /* NULL-terminated, owned */
	size_t npatterns;
};

/* Opens the store (url) and sets up the cache; -1 with error_r. */
int milter_users_init(const char *url, unsigned busy_ms, unsigned ttl_secs, mw_error *error_r);
/* Reopens the store and empties the cache (SIGHUP). On failure the old store stays. */
int milter_users_reload(const char *url, unsigned busy_ms, unsigned ttl_secs, mw_error *error_r);
/* Looks up a normalised username. */
enum milter_lookup milter_users_lookup(const char *username, struct milter_user_info *info_r,
                                       mw_error *error_r);
void milter_user_info_clear(struct milter_user_info *info);
void milter_users_deinit(void);
/* mw_dkim_key_lookup on the shared store connection (store_lock held meanwhile). */
int milter_users_dkim_key(const mw_master_key *master_key, const char *dir, const char *domain,
                          mw_dkim_key **key_r, mw_error *error_r);

/* ---- milter-dkim.c: signing keys per domain, cached ---- */

/* Loads the master key (at start, before privileges are dropped; again on SIGHUP: when the
   file cannot be read any more, the key already loaded stays) and sets the key cache TTL,
   emptying the cache. path "" = no master key (store keys cannot be used). */
int milter_dkim_init(const char *master_key_path, unsigned ttl_secs, mw_error *error_r);
int milter_dkim_reload(const char *master_key_path, unsigned ttl_secs, mw_error *error_r);
/* A signer for a message whose header From domain is DOMAIN (any case): the cached key,
   else the store's active key, else dkim_key_dir's. Returns MW_DKIM_LOOKUP_FOUND with
   *signer_r set, MW_DKIM_LOOKUP_NONE (no key for the domain: sign nothing) or
   MW_DKIM_LOOKUP_ERROR (a broken key, a wrong master key, the store down). */
struct mw_arc_verify;
int milter_arc_seal(const mw_config *cfg, struct mw_arc_verify *v, const char *ar,
                    enum mw_auth_result cv, bool sign_subject, mw_str *as_r, mw_str *ams_r,
                    mw_str *aar_r, mw_error *error_r);
int milter_dkim_signer(const mw_config *cfg, const char *domain, const char *job_id,
                       mw_dkim_signer **signer_r, char *selector_r, size_t selsize,
                       mw_error *error_r);
void milter_dkim_deinit(void);

/* ---- milter-main.c: the current configuration snapshot ---- */

/* A counted reference to the current snapshot (drop it with milter_config_put). */
mw_config *milter_config_get(void);
void milter_config_put(mw_config **cfg);
/* Our authserv-id: [milter] authserv_id or the host name. */
const char *milter_authserv_id(const mw_config *cfg);
/* A counted reference to the SPF/DKIM/DMARC library state of the current snapshot (made
   at start and on every reload); drop it with milter_auth_put. */
struct milter_auth;
struct milter_auth *milter_auth_get(void);
void milter_auth_put(struct milter_auth **auth);
mw_authcheck_lib *milter_auth_lib(struct milter_auth *auth);
/* Messages in flight, between MAIL FROM and their end (SIGTERM waits for them):
   milter_inflight_begin counts one more, or returns false once SIGTERM arrived (the
   message then gets 451 4.7.1); milter_inflight_end counts one less. */
bool milter_inflight_begin(void);
void milter_inflight_end(void);

/* ---- milter-callbacks.c: contexts ---- */

/* One header to delete at end of message: the IDX-th (1-based) header called NAME. */
struct milter_strip {
	char *name;
	unsigned idx;
};

/* How many headers of one strippable name were seen so far. */
struct milter_hdr_count {
	char *name;
	unsigned count;
};

/* Per message: reset at MAIL FROM, at abort and at end of message (milter_msg_reset frees
   everything it owns in one place). */
struct milter_msg {
	bool active;      /* between MAIL FROM and end of message / abort */
	bool outbound;    /* {auth_authen} was set */
	bool unchecked;   /* outbound, store down and on_error = accept */
	bool skipped;     /* body callback answered SMFIS_SKIP */
	bool quarantined; /* inbound: put on hold (smfi_quarantine) */
	char qid[64];     /* Postfix queue id (macro i), "" until known */
	char user[MW_USERNAME_MAX + 1];
	char envfrom[MW_ADDR_MAX + 3];
	struct milter_user_info info; /* outbound: status and patterns */
	unsigned nrcpt;
	char rcpt1[MW_USERNAME_MAX + 1]; /* the first recipient, as a store username ("": none) */
	char *from_first, *sender_first; /* first From:/Sender: values (owned) */
	size_t n_from, n_sender;
	struct milter_strip strip[MILTER_MAX_STRIP];
	size_t nstrip;
	struct milter_hdr_count names[MILTER_MAX_HDR_NAMES];
	size_t nnames;
	/* inbound: SPF/DKIM/DMARC (NULL for trusted clients and when checks cannot run) */
	mw_authcheck *ac;
	/* outbound: DKIM signing */
	bool sign_wanted;       /* dkim_sign on and From enforcement ran */
	mw_dkim_signer *signer; /* a key was found for the From domain */
	bool sign_failed;       /* key lookup or signer failed: dkim_on_error */
	bool sign_refused;      /* more header fields to sign than the signer takes */
	char sign_domain[MW_ADDR_DOMAIN_MAX + 1];
	char sign_selector[64];
	char sign_error[200]; /* why signing failed (for the log) */
	/* a header refused while the MTA takes no reply per header (SMFIP_NR_HDR): the
	   refusal is given at end of headers */
	bool hdr_refused;
	struct milter_reply hdr_reply;
	/* the scan stages (milter-scan.c): the message as received, bounded by scan_max_size */
	bool scan_wanted; /* some stage wants the message kept */
	bool scan_virus;  /* the virus stage runs at end of message */
	bool scan_spam;   /* the spam stage runs at end of message (inbound, untrusted) */
	bool scan_over;   /* over scan_max_size: nothing kept, scan_over_limit decides */
	mw_str scan_buf;
};

/* Per connection (SMTP session): created at connect, freed at close. Holds the config
   snapshot it started with, so a reload never changes a session half-way. */
struct milter_conn {
	mw_config *cfg;
	struct milter_auth *auth; /* the SPF/DKIM/DMARC state of the same snapshot */
	char client_addr[64];
	char client_name[256];
	char helo[256]; /* HELO/EHLO argument, "" when none or too long */
	bool trusted;   /* client in trusted_networks: no inbound checks */
	bool leadspc;   /* header values keep their leading blank (SMFIP_HDR_LEADSPC) */
	bool can_skip;  /* the MTA takes SMFIS_SKIP from the body callback */
	bool nr_helo;   /* no reply to HELO, RCPT, each header (SMFIP_NR_*): one round */
	bool nr_rcpt;   /*   trip less per command; those callbacks never refuse (a */
	bool nr_hdr;    /*   header refusal waits for the end of the headers) */
	bool nr_conn;   /* no reply to connect, end of headers and body chunks either: */
	bool nr_eoh;    /*   the MTA sends the whole content in one go; a header refusal */
	bool nr_body;   /*   then waits for the end of the message (no SMFIS_SKIP) */
	unsigned nmsgs;
	mw_str hdrs;    /* outbound headers kept for the signer ("name\0value\0"...),
	                   reused from message to message */
	mw_str scratch; /* one header value with a blank prepended (no LEADSPC) */
	struct milter_msg msg;
};

void milter_msg_reset(struct milter_msg *msg);

/* ---- milter-inbound.c ---- */

struct smfi_str;
/* End-of-message work for unauthenticated mail, after our headers were stripped: the
   SPF/DKIM/DMARC results, one Authentication-Results header at the top, and the verdict
   (quarantine = smfi_quarantine when dmarc_quarantine = hold). Returns 0 to accept, 1 with
   *reply_r filled to refuse (or tempfail: reply_r->rcode "451"). extra_r gets the results
   for the log line ("spf=pass dkim=pass dmarc=pass ..."). */
int milter_inbound_eom(struct smfi_str *ctx, struct milter_conn *conn, struct milter_reply *reply_r,
                       char *extra_r, size_t extra_size);
/* With [milter] arc_seal: our ARC set on top of a checked inbound message (after every other
   change to it). 0 sealed or nothing to do, 1 with *reply_r (a key that cannot be used, with
   dkim_on_error = tempfail). */
int milter_inbound_seal(struct smfi_str *ctx, struct milter_conn *conn,
                        struct milter_reply *reply_r, char *extra_r, size_t extra_size);
/* A header at the very top (index 0), with the leading blank SMFIP_HDR_LEADSPC asks for;
   0, or -1 when libmilter refused it. */
int milter_insert_top(struct smfi_str *ctx, const struct milter_conn *conn, const char *name,
                      const char *value);

/* ---- milter-dmarc-record.c ---- */

/* With [dmarc] record = yes: the message's DMARC evaluation (results and the verdict
   applied) into the store; nothing when the From domain has no policy or the verdict is a
   tempfail. Never fails the message (a store failure is logged once, degraded
   milter_dmarc_record). */
void milter_dmarc_record(const struct milter_conn *conn, const struct mw_auth_results *res,
                         const struct mw_verdict *v);
void milter_dmarc_record_deinit(void);

/* ---- milter-scan.c: the message as received and the scan stages ---- */

/* The first virus engine (current snapshot's [milter] virus_scan; none when off) and the thread
   that rebuilds it when the signature files change. Call once signals are blocked, after
   daemonising. -1 with error_r when no engine could be built: the milter runs on, and mail gets
   virus_on_error until one can be. */
int milter_scan_init(mw_error *error_r);
/* SIGHUP (after the new snapshot is current): a new engine built from it and swapped in;
   the old one stays on failure. */
void milter_scan_reload(void);
void milter_scan_deinit(void);
/* Capture: decided at MAIL FROM (direction known), fed every header, the end of the
   headers and each body chunk; freed by milter_msg_reset. */
void milter_scan_begin(struct milter_conn *conn);
void milter_scan_header(struct milter_conn *conn, const char *name, const char *value);
void milter_scan_eoh(struct milter_conn *conn);
void milter_scan_body(struct milter_conn *conn, const unsigned char *chunk, size_t len);
bool milter_scan_wants_body(const struct milter_msg *msg);
/* End of message, after strip and Authentication-Results: every stage. 0 accept, 1 with
 *reply_r filled to refuse; the verdicts are appended to extra (for the log line). */
int milter_scan_eom(struct smfi_str *ctx, struct milter_conn *conn, struct milter_reply *reply_r,
                    char *extra, size_t extra_size);

/* ---- milter-callbacks.c ---- */

struct smfiDesc;
/* The filter description registered with libmilter. */
extern struct smfiDesc milter_desc;

#endif
