/*
 * milter-callbacks.c - the libmilter callbacks: connection and message contexts, the
 * outbound (authenticated) checks and the header stripping every message gets.
 *
 * Public: milter_desc (the filter description), milter_msg_reset.
 *
 * Flow: negotiate (ask Postfix for the macros we read; header values with their leading
 * blank; the body, with SMFIS_SKIP when a message needs no more of it) -> connect
 * (connection context, holding counted references to the config snapshot of the moment
 * and its SPF/DKIM/DMARC state; trusted_networks decided) -> HELO (kept for SPF) -> MAIL
 * FROM (message reset; {auth_authen} set = outbound: user status and envelope sender
 * checked; otherwise, for an untrusted client, an mw_authcheck is started) -> headers
 * (first From:/Sender: kept, strippable headers counted; inbound: every header to the
 * checker; outbound with dkim_sign: every header we keep, buffered until the From domain is
 * known) -> end of headers (outbound: the signer for the From domain, fed the buffered
 * headers) -> body (to the checker or the signer; SMFIS_SKIP when neither wants it) -> end
 * of message (From enforcement for outbound mail, strip, then the DKIM-Signature for
 * outbound and milter_inbound_eom for inbound, then the scan stages of milter-scan.c, which
 * were fed the message as received along the way) -> abort/close. The message context is reset
 * in one place (milter_msg_reset) at MAIL FROM, abort, end of message and close.
 *
 * Round trips: when the MTA offers them, connect, HELO, RCPT, header, end-of-header and
 * body callbacks are negotiated as no-reply (SMFIP_NR_*) and DATA is not sent
 * (SMFIP_NODATA); those callbacks then return SMFIS_NOREPLY and never refuse: a header
 * refusal is kept and given at end of headers, or at end of message when end of headers
 * takes no reply either (then the body is not read and never skipped: the MTA streams it).
 *
 * Header changes at end of message: deletions first (last index first), then insertions at
 * index 0, which cannot shift the indices of the deleted ones any more.
 *
 * Diagnostics: one log line per decision: event=mail action=accept|reject|tempfail
 * stage=... qid= user= client= reason= (untrusted values through mw_log_value).
 * Replies: see milter-from.c and mailwarden-milter(8); besides those:
 *   550 5.7.1 account <user> is not active / is not known
 *   451 4.7.1 sender check temporarily unavailable, try again later   (on_error = tempfail)
 *   550 5.7.1 sender check unavailable                                (on_error = reject)
 *   552 5.3.4 From: header too long / Sender: header too long (over max_address_header)
 *   552 5.3.4 too many headers to remove (X-Mailwarden-* / Authentication-Results)
 *   552 5.3.4 message header too large to check / to sign
 *   451 4.7.1 cannot sign the message now, try again later   (dkim_on_error = tempfail)
 *   550 5.7.1 message has more than 200 header fields to sign (MW_DKIM_SIGNED_FIELDS_MAX,
 *             whatever dkim_on_error says)
 *   451 4.7.1 internal error, try again later    (an MTA action failed)
 *   550 5.7.1 client address unknown, the sender cannot be verified   (inbound, at MAIL
 *             FROM: an untrusted client whose checks cannot start is never accepted)
 *   451 4.7.1 sender checks unavailable, try again later
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-log.h"
#include "mw-metrics.h"

#include <libmilter/mfapi.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HEADER_NAME_MAX 998 /* RFC 5322 line length; a longer name is refused */

/* milter_msg_reset - free everything a message owns and start afresh */
void milter_msg_reset(struct milter_msg *msg)
{
	size_t i;
	if (msg->active)
		milter_inflight_end();
	milter_user_info_clear(&msg->info);
	free(msg->from_first);
	free(msg->sender_first);
	for (i = 0; i < msg->nstrip; i++)
		free(msg->strip[i].name);
	for (i = 0; i < msg->nnames; i++)
		free(msg->names[i].name);
	mw_authcheck_free(&msg->ac);
	mw_dkim_signer_free(&msg->signer);
	mw_str_free(&msg->scan_buf);
	memset(msg, 0, sizeof(*msg));
}

static void conn_free(struct milter_conn *conn);

/* conn_of - the connection context, or NULL */
static struct milter_conn *conn_of(SMFICTX *ctx)
{
	return (struct milter_conn *)smfi_getpriv(ctx);
}

/* macro - a macro's value, "" when unset */
static const char *macro(SMFICTX *ctx, const char *name)
{
	const char *v = smfi_getsymval(ctx, (char *)name);
	return v != NULL ? v : "";
}

/* note_qid - remember the queue id once Postfix has one */
static void note_qid(SMFICTX *ctx, struct milter_msg *msg)
{
	const char *q = macro(ctx, "i");
	if (msg->qid[0] == '\0' && q[0] != '\0' && mw_strlcpy(msg->qid, q, sizeof(msg->qid)) < 0)
		msg->qid[0] = '\0';
}

/* log_decision - one key=value line for a decision */
static void log_decision(enum mw_log_level level, const struct milter_conn *conn,
                         const char *action, const char *stage, const char *reason,
                         const char *extra)
{
	const struct milter_msg *msg = &conn->msg;
	char q[MILTER_LOGV], u[MILTER_LOGV], c[MILTER_LOGV], f[MILTER_LOGV];
	mw_metrics_inc(MWM_MILTER_MESSAGES, action, msg->outbound ? "outbound" : "inbound", reason);
	mw_log(level,
	       "event=mail action=%s stage=%s direction=%s qid=%s user=%s client=%s from=%s "
	       "rcpts=%u reason=%s%s%s",
	       action, stage, msg->outbound ? "outbound" : "inbound",
	       mw_log_value(q, sizeof(q), msg->qid[0] != '\0' ? msg->qid : "-",
	                    strlen(msg->qid[0] != '\0' ? msg->qid : "-")),
	       mw_log_value(u, sizeof(u), msg->outbound ? msg->user : "-",
	                    strlen(msg->outbound ? msg->user : "-")),
	       mw_log_value(c, sizeof(c), conn->client_addr, strlen(conn->client_addr)),
	       mw_log_value(f, sizeof(f), msg->envfrom, strlen(msg->envfrom)), msg->nrcpt, reason,
	       extra != NULL ? " " : "", extra != NULL ? extra : "");
}

/* reply - set the SMTP reply and return the matching status */
static sfsistat reply(SMFICTX *ctx, struct milter_conn *conn, const struct milter_reply *r,
                      const char *stage)
{
	char rcode[4], xcode[16];
	bool temp = r->rcode[0] == '4';
	(void)mw_strlcpy(rcode, r->rcode, sizeof(rcode));
	(void)mw_strlcpy(xcode, r->xcode, sizeof(xcode));
	if (smfi_setreply(ctx, rcode, xcode, (char *)r->text) != MI_SUCCESS)
		mw_warn("event=setreply_failed stage=%s", stage);
	log_decision(temp ? MW_LOG_WARNING : MW_LOG_INFO, conn, temp ? "tempfail" : "reject", stage,
	             r->reason, NULL);
	milter_msg_reset(&conn->msg);
	return temp ? SMFIS_TEMPFAIL : SMFIS_REJECT;
}

/* cb_negotiate - take the actions we use, ask for the macros we read */
static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
	unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_SETSYMLIST | SMFIF_QUARANTINE;
	struct milter_conn *conn;
	(void)f2;
	(void)f3;
	if ((f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS)) != (SMFIF_ADDHDRS | SMFIF_CHGHDRS)) {
		mw_error_log("event=negotiate_failed reason=\"MTA does not offer header changes\"");
		return SMFIS_REJECT;
	}
	*pf0 = f0 & want;
	/* the body is read (DKIM), skipped per message when not needed; header values keep
	   their leading blank (what DKIM verification must see); unknown commands and DATA
	   never matter; HELO, RCPT and each header need no reply (a round trip each, most of
	   a message's cost besides the crypto) */
	*pf1 = f1 & (SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_HDR_LEADSPC | SMFIP_SKIP |
	             SMFIP_NR_HELO | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_CONN);
	/* end of headers and body without a reply too: the MTA then sends the whole content
	   at once, and libmilter's worker pool hands the session to a worker once instead of
	   three times (each hand-off: a pipe write, a poll wake-up, a condition signal).
	   Both or neither: a body that needs a reply after a silent end of headers would
	   still cost the hand-off. Refusals made before the end of the message are given at
	   the end of the message, which for Postfix is the same SMTP reply at the same time
	   (it passes the content to milters only after the client's final dot). */
	if ((f1 & (SMFIP_NR_EOH | SMFIP_NR_BODY)) == (SMFIP_NR_EOH | SMFIP_NR_BODY))
		*pf1 |= SMFIP_NR_EOH | SMFIP_NR_BODY;
	*pf2 = 0;
	/* the connection context is made here so connect can find the negotiated options */
	conn = mw_calloc(1, sizeof(*conn));
	conn->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
	conn->can_skip = (*pf1 & SMFIP_SKIP) != 0;
	conn->nr_helo = (*pf1 & SMFIP_NR_HELO) != 0;
	conn->nr_rcpt = (*pf1 & SMFIP_NR_RCPT) != 0;
	conn->nr_hdr = (*pf1 & SMFIP_NR_HDR) != 0;
	conn->nr_conn = (*pf1 & SMFIP_NR_CONN) != 0;
	conn->nr_eoh = (*pf1 & SMFIP_NR_EOH) != 0;
	conn->nr_body = (*pf1 & SMFIP_NR_BODY) != 0;
	mw_str_init(&conn->hdrs, MW_DKIM_HEADERS_MAX);
	mw_str_init(&conn->scratch, MW_AUTH_MAX_HEADER_LEN + 2);
	if (smfi_setpriv(ctx, conn) != MI_SUCCESS) {
		conn_free(conn);
		return SMFIS_TEMPFAIL;
	}
	*pf3 = 0;
	if ((f0 & SMFIF_SETSYMLIST) != 0) {
		if (smfi_setsymlist(ctx, SMFIM_CONNECT,
		                    "{client_addr} {client_name} j {daemon_name}") != MI_SUCCESS ||
		    smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen} i") != MI_SUCCESS ||
		    smfi_setsymlist(ctx, SMFIM_DATA, "i") != MI_SUCCESS ||
		    smfi_setsymlist(ctx, SMFIM_EOH, "i") != MI_SUCCESS ||
		    smfi_setsymlist(ctx, SMFIM_EOM, "i") != MI_SUCCESS)
			mw_warn("event=setsymlist_failed");
	} else {
		mw_warn(
		    "event=negotiate note=\"MTA cannot take a macro list: set milter_mail_macros "
		    "to include {auth_authen} and i\"");
	}
	return SMFIS_CONTINUE;
}

/* conn_free - a connection context and everything it holds */
static void conn_free(struct milter_conn *conn)
{
	milter_msg_reset(&conn->msg);
	if (conn->cfg != NULL)
		milter_config_put(&conn->cfg);
	milter_auth_put(&conn->auth);
	mw_str_free(&conn->hdrs);
	mw_str_free(&conn->scratch);
	free(conn);
}

/* is_trusted - whether ADDR is in trusted_networks ("none": no client is) */
static bool is_trusted(const mw_config *cfg, const char *addr)
{
	const char *nets = mw_config_str(cfg, MWK_MILTER_TRUSTED_NETWORKS);
	mw_error err;
	if (strcmp(nets, "none") == 0)
		return false;
	/* an address that is not an IP ("unknown") is not trusted; the list was checked at
	   load time, so -1 means the address */
	return mw_authcheck_ip_in_networks(nets, addr, &err) == 1;
}

/* cb_connect - the connection context gets the current config snapshot */
static sfsistat cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct milter_conn *conn = conn_of(ctx);
	const char *addr = macro(ctx, "{client_addr}");

	if (conn == NULL) { /* no negotiation callback (an old MTA): made here */
		conn = mw_calloc(1, sizeof(*conn));
		mw_str_init(&conn->hdrs, MW_DKIM_HEADERS_MAX);
		mw_str_init(&conn->scratch, MW_AUTH_MAX_HEADER_LEN + 2);
		if (smfi_setpriv(ctx, conn) != MI_SUCCESS) {
			conn_free(conn);
			return SMFIS_TEMPFAIL;
		}
	}
	if (conn->cfg != NULL) { /* Postfix reconnects after XCLIENT: start afresh */
		milter_msg_reset(&conn->msg);
		milter_config_put(&conn->cfg);
		milter_auth_put(&conn->auth);
		conn->helo[0] = '\0';
	}
	conn->cfg = milter_config_get();
	conn->auth = milter_auth_get();
	if (addr[0] == '\0' && hostaddr != NULL) {
		char buf[INET6_ADDRSTRLEN];
		const void *src = NULL;
		if (hostaddr->sa_family == AF_INET)
			src = &((const struct sockaddr_in *)(const void *)hostaddr)->sin_addr;
		else if (hostaddr->sa_family == AF_INET6)
			src = &((const struct sockaddr_in6 *)(const void *)hostaddr)->sin6_addr;
		if (src != NULL && inet_ntop(hostaddr->sa_family, src, buf, sizeof(buf)) != NULL)
			addr = buf;
		(void)mw_strlcpy(conn->client_addr, addr, sizeof(conn->client_addr));
	} else if (mw_strlcpy(conn->client_addr, addr[0] != '\0' ? addr : "unknown",
	                      sizeof(conn->client_addr)) < 0) {
		(void)mw_strlcpy(conn->client_addr, "unknown", sizeof(conn->client_addr));
	}
	if (conn->client_addr[0] == '\0')
		(void)mw_strlcpy(conn->client_addr, "unknown", sizeof(conn->client_addr));
	if (hostname == NULL ||
	    mw_strlcpy(conn->client_name, hostname, sizeof(conn->client_name)) < 0)
		(void)mw_strlcpy(conn->client_name, "unknown", sizeof(conn->client_name));
	conn->trusted = is_trusted(conn->cfg, conn->client_addr);
	return conn->nr_conn ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* cb_helo - the HELO/EHLO name, for SPF (a name too long to be one is no name) */
static sfsistat cb_helo(SMFICTX *ctx, char *helo)
{
	struct milter_conn *conn = conn_of(ctx);
	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	if (helo == NULL || mw_strlcpy(conn->helo, helo, sizeof(conn->helo)) < 0)
		conn->helo[0] = '\0';
	return conn->nr_helo ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* inbound_start - the SPF/DKIM/DMARC checker of an inbound message (untrusted client);
   -1 with *r filled when it cannot start: such a message is never accepted unchecked */
static int inbound_start(struct milter_conn *conn, const char *envfrom, struct milter_reply *r)
{
	struct milter_msg *msg = &conn->msg;
	mw_authcheck_lib *lib = milter_auth_lib(conn->auth);
	char e[MILTER_LOGV], c[MILTER_LOGV];
	mw_error err;

	if (conn->trusted)
		return 0;
	if (lib == NULL) {
		milter_reply_set(r, "451", "4.7.1", "authcheck_unavailable",
		                 "sender checks unavailable, try again later");
		return -1;
	}
	msg->ac = mw_authcheck_new(lib);
	if (mw_authcheck_connect(msg->ac, conn->client_addr, conn->helo, &err) < 0) {
		/* no client address to check (e.g. "unknown"): nothing can be verified */
		mw_warn("event=authcheck_refused client=%s error=%s",
		        mw_log_value(c, sizeof(c), conn->client_addr, strlen(conn->client_addr)),
		        mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		mw_authcheck_free(&msg->ac);
		milter_reply_set(r, "550", "5.7.1", "client_unverifiable",
		                 "client address unknown, the sender cannot be verified");
		return -1;
	}
	/* an envelope that does not parse is judged by the verdict at end of message */
	if (mw_authcheck_mail_from(msg->ac, envfrom, &err) < 0)
		mw_debug("event=authcheck_mail_from error=%s",
		         mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
	return 0;
}

/* lookup_error - the on_error choice for an unreachable store */
static sfsistat lookup_error(SMFICTX *ctx, struct milter_conn *conn, const mw_error *err)
{
	const char *mode = mw_config_str(conn->cfg, MWK_MILTER_ON_ERROR);
	struct milter_reply r;
	char u[MILTER_LOGV], e[MILTER_LOGV];
	/* one buffer per value: both are formatted before the line is written */
	mw_error_log("event=store_error user=%s error=%s",
	             mw_log_value(u, sizeof(u), conn->msg.user, strlen(conn->msg.user)),
	             mw_log_value(e, sizeof(e), err->msg, strlen(err->msg)));
	if (strcmp(mode, "accept") == 0) {
		/* headers are still stripped at end of message; only From goes unchecked */
		log_decision(MW_LOG_WARNING, conn, "accept_unchecked", "mail_from", "store_error",
		             NULL);
		conn->msg.unchecked = true;
		return SMFIS_CONTINUE;
	}
	if (strcmp(mode, "reject") == 0)
		milter_reply_set(&r, "550", "5.7.1", "store_error", "sender check unavailable");
	else
		milter_reply_set(&r, "451", "4.7.1", "store_error",
		                 "sender check temporarily unavailable, try again later");
	return reply(ctx, conn, &r, "mail_from");
}

/* cb_envfrom - new message; authenticated: user status and envelope sender */
static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct milter_conn *conn = conn_of(ctx);
	struct milter_msg *msg;
	struct milter_reply r;
	const char *authen;
	mw_error err;
	char u[MILTER_LOGV];

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	msg = &conn->msg;
	milter_msg_reset(msg);
	if (!milter_inflight_begin()) {
		milter_reply_set(&r, "451", "4.7.1", "shutting_down",
		                 "mail filter restarting, try again later");
		return reply(ctx, conn, &r, "mail_from");
	}
	msg->active = true;
	conn->nmsgs++;
	note_qid(ctx, msg);
	if (argv[0] == NULL || mw_strlcpy(msg->envfrom, argv[0], sizeof(msg->envfrom)) < 0)
		msg->envfrom[0] = '\0';
	mw_str_reset(&conn->hdrs);
	authen = macro(ctx, "{auth_authen}");
	if (authen[0] == '\0') {
		if (inbound_start(conn, argv[0] != NULL ? argv[0] : "<>", &r) < 0)
			return reply(ctx, conn, &r, "mail_from");
		milter_scan_begin(conn);
		return SMFIS_CONTINUE; /* inbound: verdict at end of message */
	}

	msg->outbound = true;
	milter_scan_begin(conn);
	if (mw_store_username_normalize(authen, msg->user, sizeof(msg->user), &err) < 0) {
		(void)mw_strlcpy(msg->user, "-", sizeof(msg->user));
		milter_reply_value(u, sizeof(u), authen);
		milter_reply_set(&r, "550", "5.7.1", "bad_username", "account %s is not known", u);
		return reply(ctx, conn, &r, "mail_from");
	}
	switch (milter_users_lookup(msg->user, &msg->info, &err)) {
	case MILTER_LOOKUP_ERROR:
		return lookup_error(ctx, conn, &err);
	case MILTER_LOOKUP_NOTFOUND:
		milter_reply_value(u, sizeof(u), msg->user);
		milter_reply_set(&r, "550", "5.7.1", "user_unknown", "account %s is not known", u);
		return reply(ctx, conn, &r, "mail_from");
	case MILTER_LOOKUP_OK:
		break;
	}
	if (msg->info.status != MW_USER_ACTIVE) {
		milter_reply_value(u, sizeof(u), msg->user);
		milter_reply_set(&r, "550", "5.7.1", "user_not_active", "account %s is not active",
		                 u);
		return reply(ctx, conn, &r, "mail_from");
	}
	if (milter_envfrom_check(
	        argv[0] != NULL ? argv[0] : "",
	        strcmp(mw_config_str(conn->cfg, MWK_MILTER_NULL_SENDER), "accept") == 0,
	        (const char *const *)msg->info.patterns, msg->info.npatterns, msg->user, &r) != 0)
		return reply(ctx, conn, &r, "mail_from");
	msg->sign_wanted = mw_config_bool(conn->cfg, MWK_MILTER_DKIM_SIGN);
	return SMFIS_CONTINUE;
}

/* cb_envrcpt - count recipients (for the log); keep the first (per-user spam models) */
static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct milter_conn *conn = conn_of(ctx);
	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	if (conn->msg.nrcpt == 0 && argv != NULL && argv[0] != NULL) {
		/* "<local@domain>" as Postfix passes it; anything that is no username stays "" */
		char addr[MW_USERNAME_MAX + 3];
		size_t n = strlen(argv[0]);
		mw_error err;
		conn->msg.rcpt1[0] = '\0';
		if (n >= 2 && n < sizeof(addr) && argv[0][0] == '<' && argv[0][n - 1] == '>') {
			memcpy(addr, argv[0] + 1, n - 2);
			addr[n - 2] = '\0';
			if (mw_store_username_normalize(addr, conn->msg.rcpt1,
			                                sizeof(conn->msg.rcpt1), &err) < 0)
				conn->msg.rcpt1[0] = '\0';
		}
	}
	if (conn->msg.nrcpt < UINT32_MAX)
		conn->msg.nrcpt++;
	return conn->nr_rcpt ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* note_strippable - count a header we may delete; record it when it is ours */
static int note_strippable(struct milter_msg *msg, const char *name, bool delete)
{
	struct milter_hdr_count *hc = NULL;
	size_t i;
	for (i = 0; i < msg->nnames; i++)
		if (mw_ascii_strcasecmp(msg->names[i].name, name) == 0) {
			hc = &msg->names[i];
			break;
		}
	if (hc == NULL) {
		if (msg->nnames >= MILTER_MAX_HDR_NAMES)
			return -1;
		hc = &msg->names[msg->nnames++];
		hc->name = mw_strdup(name);
		hc->count = 0;
	}
	hc->count++;
	if (!delete)
		return 0;
	if (msg->nstrip >= MILTER_MAX_STRIP)
		return -1;
	msg->strip[msg->nstrip].name = mw_strdup(name);
	msg->strip[msg->nstrip].idx = hc->count;
	msg->nstrip++;
	return 0;
}

/* feed_checker - one header to the inbound checker, with its leading blank */
static int feed_checker(struct milter_conn *conn, const char *name, const char *value,
                        mw_error *err)
{
	if (conn->leadspc)
		return mw_authcheck_header(conn->msg.ac, name, value, strlen(value), err);
	mw_str_reset(&conn->scratch);
	if (mw_str_appendc(&conn->scratch, ' ') < 0 || mw_str_appends(&conn->scratch, value) < 0) {
		mw_error_set(err, "header field too long");
		return -1;
	}
	return mw_authcheck_header(conn->msg.ac, name, conn->scratch.buf, conn->scratch.len, err);
}

/* keep_for_signer - buffer a header the signer will see (name NUL value NUL) */
static int keep_for_signer(struct milter_conn *conn, const char *name, const char *value)
{
	size_t mark = conn->hdrs.len;
	if (mw_str_append(&conn->hdrs, name, strlen(name) + 1) < 0 ||
	    mw_str_append(&conn->hdrs, value, strlen(value) + 1) < 0) {
		conn->hdrs.len = mark;
		return -1;
	}
	return 0;
}

/* header_refuse - refuse at a header, or at end of headers when the MTA takes no reply
   per header (the first refusal counts; later headers are ignored) */
static sfsistat header_refuse(SMFICTX *ctx, struct milter_conn *conn, const struct milter_reply *r)
{
	if (!conn->nr_hdr)
		return reply(ctx, conn, r, "header");
	conn->msg.hdr_refused = true;
	conn->msg.hdr_reply = *r;
	return SMFIS_NOREPLY;
}

/* cb_header - keep From:/Sender:, note headers to strip, feed checker or signer buffer */
static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct milter_conn *conn = conn_of(ctx);
	struct milter_msg *msg;
	struct milter_reply r;
	bool is_from, is_sender;
	mw_error err;
	char e[MILTER_LOGV];
	size_t nstrip;

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	msg = &conn->msg;
	if (msg->hdr_refused)
		return SMFIS_NOREPLY;
	note_qid(ctx, msg);
	if (strlen(name) > HEADER_NAME_MAX) {
		milter_reply_set(&r, "552", "5.3.4", "header_name_too_long",
		                 "header name too long");
		return header_refuse(ctx, conn, &r);
	}
	milter_scan_header(conn, name, value); /* as received, before anything is stripped */
	if (msg->ac != NULL && feed_checker(conn, name, value, &err) < 0) {
		mw_info("event=authcheck_header_refused error=%s",
		        mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		milter_reply_set(&r, "552", "5.3.4", "header_too_large_to_check",
		                 "message header too large to check");
		return header_refuse(ctx, conn, &r);
	}
	nstrip = msg->nstrip;
	is_from = mw_addr_header_name_is(name, "From");
	is_sender = mw_addr_header_name_is(name, "Sender");
	if (is_from || is_sender) {
		if (strlen(value) >
		    (size_t)mw_config_int(conn->cfg, MWK_MILTER_MAX_ADDRESS_HEADER)) {
			milter_reply_set(&r, "552", "5.3.4", "header_too_long",
			                 "%s: header too long", is_from ? "From" : "Sender");
			return header_refuse(ctx, conn, &r);
		}
		if (is_from && msg->n_from++ == 0)
			msg->from_first = mw_strdup(value);
		if (is_sender && msg->n_sender++ == 0)
			msg->sender_first = mw_strdup(value);
	} else if (mw_hdr_name_is_ours(name) || mw_hdr_name_is_authres(name)) {
		/* deleted unless lib/mw-headers proves the authserv-id someone else's */
		bool del = mw_hdr_name_is_ours(name) ||
		           mw_hdr_authres_id(value, strlen(value), milter_authserv_id(conn->cfg)) !=
		               MW_HDR_ID_FOREIGN;
		if (note_strippable(msg, name, del) < 0) {
			milter_reply_set(&r, "552", "5.3.4", "too_many_headers",
			                 "too many headers to remove");
			return header_refuse(ctx, conn, &r);
		}
	}
	/* the signer sees the message as it leaves: without the headers we delete */
	if (msg->sign_wanted && msg->nstrip == nstrip && keep_for_signer(conn, name, value) < 0) {
		milter_reply_set(&r, "552", "5.3.4", "header_too_large_to_sign",
		                 "message header too large to sign");
		return header_refuse(ctx, conn, &r);
	}
	return conn->nr_hdr ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* sign_fail - remember why signing cannot happen; dkim_on_error decides at the end */
static void sign_fail(struct milter_msg *msg, const char *why)
{
	msg->sign_failed = true;
	mw_dkim_signer_free(&msg->signer);
	if (mw_strlcpy(msg->sign_error, why, sizeof(msg->sign_error)) < 0)
		(void)mw_strlcpy(msg->sign_error, "error message too long",
		                 sizeof(msg->sign_error));
}

/* from_domain - the domain of the only address of the only From: ("" otherwise: the From
   check refuses such a message at the end anyway) */
static void from_domain(const struct milter_msg *msg, char *out, size_t size)
{
	struct mw_addr_list list;
	mw_error err;
	out[0] = '\0';
	if (msg->n_from != 1 || msg->from_first == NULL)
		return;
	if (mw_addr_parse_header(msg->from_first, strlen(msg->from_first), &list, &err) < 0)
		return;
	if (list.count >= 1 && mw_strlcpy(out, list.addrs[0].domain, size) < 0)
		out[0] = '\0';
	mw_addr_list_free(&list);
}

/* start_signer - the signer for the From domain, fed the buffered headers */
static void start_signer(struct milter_conn *conn)
{
	struct milter_msg *msg = &conn->msg;
	mw_error err;
	char e[MILTER_LOGV];
	const char *p, *end;
	int ret;

	from_domain(msg, msg->sign_domain, sizeof(msg->sign_domain));
	if (msg->sign_domain[0] == '\0')
		return;
	ret =
	    milter_dkim_signer(conn->cfg, msg->sign_domain, msg->qid[0] != '\0' ? msg->qid : NULL,
	                       &msg->signer, msg->sign_selector, sizeof(msg->sign_selector), &err);
	if (ret == MW_DKIM_LOOKUP_NONE) {
		mw_debug("event=dkim_no_key domain=%s",
		         mw_log_value(e, sizeof(e), msg->sign_domain, strlen(msg->sign_domain)));
		return;
	}
	if (ret != MW_DKIM_LOOKUP_FOUND) {
		sign_fail(msg, err.msg);
		return;
	}
	p = conn->hdrs.buf;
	end = p != NULL ? p + conn->hdrs.len : NULL;
	while (p != NULL && p < end) {
		const char *value = p + strlen(p) + 1;
		if (mw_dkim_signer_header(msg->signer, p, value, &err) < 0) {
			msg->sign_refused = mw_dkim_signer_too_many(msg->signer);
			sign_fail(msg, err.msg);
			return;
		}
		p = value + strlen(value) + 1;
	}
	if (mw_dkim_signer_eoh(msg->signer, &err) < 0)
		sign_fail(msg, err.msg);
}

/* cb_eoh - end of headers: inbound checker, outbound signer */
static sfsistat cb_eoh(SMFICTX *ctx)
{
	struct milter_conn *conn = conn_of(ctx);
	struct milter_msg *msg;
	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	msg = &conn->msg;
	note_qid(ctx, msg);
	if (msg->hdr_refused) {
		struct milter_reply r = msg->hdr_reply;
		if (conn->nr_eoh)
			return SMFIS_NOREPLY; /* given at end of message */
		return reply(ctx, conn, &r, "header");
	}
	if (msg->ac != NULL)
		mw_authcheck_eoh(msg->ac);
	milter_scan_eoh(conn);
	if (msg->outbound && msg->sign_wanted && !msg->unchecked)
		start_signer(conn);
	mw_str_reset(&conn->hdrs);
	return conn->nr_eoh ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* cb_body - a body chunk to whoever needs it; skip the rest when nobody does */
static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct milter_conn *conn = conn_of(ctx);
	struct milter_msg *msg;
	mw_error err;
	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	msg = &conn->msg;
	if (msg->hdr_refused) /* refused at end of message (nr_eoh) */
		return conn->nr_body ? SMFIS_NOREPLY : SMFIS_CONTINUE;
	if (msg->ac != NULL)
		mw_authcheck_body(msg->ac, (const char *)chunk, len);
	if (msg->signer != NULL && mw_dkim_signer_body(msg->signer, chunk, len, &err) < 0)
		sign_fail(msg, err.msg);
	milter_scan_body(conn, chunk, len);
	if (conn->nr_body)
		return SMFIS_NOREPLY;
	if (msg->ac == NULL && msg->signer == NULL && !milter_scan_wants_body(msg) &&
	    conn->can_skip) {
		msg->skipped = true;
		return SMFIS_SKIP;
	}
	return SMFIS_CONTINUE;
}

/* strip_headers - delete what we own, last index first so earlier indices stay valid */
static int strip_headers(SMFICTX *ctx, struct milter_msg *msg)
{
	size_t i = msg->nstrip;
	while (i-- > 0)
		if (smfi_chgheader(ctx, msg->strip[i].name, (int)msg->strip[i].idx, NULL) !=
		    MI_SUCCESS)
			return -1;
	return 0;
}

/* sign_eom - the DKIM-Signature of an outbound message, or dkim_on_error's choice */
static int sign_eom(SMFICTX *ctx, struct milter_conn *conn, struct milter_reply *r, char *extra,
                    size_t extra_size)
{
	struct milter_msg *msg = &conn->msg;
	char e[MILTER_LOGV], d[MILTER_LOGV];
	mw_dkim_signer *also;
	mw_error err;
	mw_str sig;
	int n_sig = 1;

	if (msg->signer != NULL) {
		mw_str_init(&sig, 0);
		if (mw_dkim_signer_eom(msg->signer, &sig, &err) < 0)
			sign_fail(msg, err.msg);
		else if (milter_insert_top(ctx, conn, "DKIM-Signature", mw_str_c(&sig)) < 0)
			sign_fail(msg, "smfi_insheader failed");
		mw_str_free(&sig);
	}
	/* a DKIM rotation's overlap: the previous key signs too (lib/mw-dkim-rotate.h) */
	if (msg->signer != NULL && (also = mw_dkim_signer_also(msg->signer)) != NULL) {
		mw_str_init(&sig, 0);
		if (mw_dkim_signer_eom(also, &sig, &err) < 0)
			sign_fail(msg, err.msg);
		else if (milter_insert_top(ctx, conn, "DKIM-Signature", mw_str_c(&sig)) < 0)
			sign_fail(msg, "smfi_insheader failed");
		else
			n_sig = 2;
		mw_str_free(&sig);
	}
	mw_log_value(d, sizeof(d), msg->sign_domain, strlen(msg->sign_domain));
	if (msg->sign_refused) {
		/* a property of the message: retrying cannot help, and sending it unsigned
		   would let a signing domain's user send what is not signed */
		mw_error_log("event=dkim_sign_refused qid=%s domain=%s error=%s",
		             msg->qid[0] != '\0' ? msg->qid : "-", d,
		             mw_log_value(e, sizeof(e), msg->sign_error, strlen(msg->sign_error)));
		milter_reply_set(r, "550", "5.7.1", "dkim_too_many_headers",
		                 "message has more than %d header fields to sign (To, Cc, "
		                 "Subject, ...); send it with fewer",
		                 MW_DKIM_SIGNED_FIELDS_MAX);
		return 1;
	}
	if (msg->sign_failed) {
		mw_error_log("event=dkim_sign_failed qid=%s domain=%s error=%s",
		             msg->qid[0] != '\0' ? msg->qid : "-", d,
		             mw_log_value(e, sizeof(e), msg->sign_error, strlen(msg->sign_error)));
		if (strcmp(mw_config_str(conn->cfg, MWK_MILTER_DKIM_ON_ERROR), "accept") != 0) {
			milter_reply_set(r, "451", "4.7.1", "dkim_sign_failed",
			                 "cannot sign the message now, try again later");
			return 1;
		}
		(void)snprintf(extra, extra_size, "dkim=unsigned_error domain=%s", d);
	} else if (msg->signer != NULL) {
		(void)snprintf(extra, extra_size, "dkim=signed domain=%s selector=%s signatures=%d",
		               d, msg->sign_selector, n_sig);
	} else if (msg->sign_wanted) {
		(void)snprintf(extra, extra_size, "dkim=no_key domain=%s", d[0] != '\0' ? d : "-");
	}
	return 0;
}

/* cb_eom - strip, then From enforcement (outbound) or the inbound checks */
static sfsistat cb_eom(SMFICTX *ctx)
{
	struct milter_conn *conn = conn_of(ctx);
	struct milter_msg *msg;
	struct milter_reply r;
	char extra[400] = "";
	size_t len;
	int ret;

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	msg = &conn->msg;
	note_qid(ctx, msg);
	if (msg->hdr_refused) { /* a header refusal kept past a silent end of headers */
		r = msg->hdr_reply;
		return reply(ctx, conn, &r, "header");
	}
	if (msg->outbound && !msg->unchecked) {
		const char *from[1] = {msg->from_first}, *sender[1] = {msg->sender_first};
		struct milter_from_input in = {from, msg->n_from, sender, msg->n_sender};
		if (milter_from_check(&in, (const char *const *)msg->info.patterns,
		                      msg->info.npatterns, msg->user, &r) != 0)
			return reply(ctx, conn, &r, "end_of_data");
	}
	if (strip_headers(ctx, msg) < 0) {
		milter_reply_set(&r, "451", "4.7.1", "chgheader_failed",
		                 "internal error, try again later");
		return reply(ctx, conn, &r, "end_of_data");
	}
	if (!msg->outbound) {
		ret = milter_inbound_eom(ctx, conn, &r, extra, sizeof(extra));
		if (ret != 0)
			return reply(ctx, conn, &r, "end_of_data");
	}
	if (msg->outbound && sign_eom(ctx, conn, &r, extra, sizeof(extra)) != 0)
		return reply(ctx, conn, &r, "end_of_data");
	if (milter_scan_eom(ctx, conn, &r, extra, sizeof(extra)) != 0)
		return reply(ctx, conn, &r, "end_of_data");
	if (!msg->outbound && milter_inbound_seal(ctx, conn, &r, extra, sizeof(extra)) != 0)
		return reply(ctx, conn, &r, "end_of_data");
	len = strlen(extra);
	(void)snprintf(extra + len, sizeof(extra) - len, "%sstripped=%zu", len > 0 ? " " : "",
	               msg->nstrip);
	log_decision(MW_LOG_INFO, conn, msg->quarantined ? "hold" : "accept", "end_of_data",
	             msg->outbound   ? "from_allowed"
	             : conn->trusted ? "trusted_client"
	                             : "inbound",
	             extra);
	milter_msg_reset(msg);
	return SMFIS_CONTINUE;
}

/* cb_abort - the message ends early (RSET, a rejected command, lost connection) */
static sfsistat cb_abort(SMFICTX *ctx)
{
	struct milter_conn *conn = conn_of(ctx);
	if (conn != NULL)
		milter_msg_reset(&conn->msg);
	return SMFIS_CONTINUE;
}

/* cb_close - free the connection context */
static sfsistat cb_close(SMFICTX *ctx)
{
	struct milter_conn *conn = conn_of(ctx);
	if (conn == NULL)
		return SMFIS_CONTINUE;
	(void)smfi_setpriv(ctx, NULL);
	conn_free(conn);
	return SMFIS_CONTINUE;
}

struct smfiDesc milter_desc = {
    .xxfi_name = (char *)MILTER_NAME,
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_SETSYMLIST | SMFIF_QUARANTINE,
    .xxfi_connect = cb_connect,
    .xxfi_helo = cb_helo,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_header = cb_header,
    .xxfi_eoh = cb_eoh,
    .xxfi_body = cb_body,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
    .xxfi_unknown = NULL,
    .xxfi_data = NULL,
    .xxfi_negotiate = cb_negotiate,
};
