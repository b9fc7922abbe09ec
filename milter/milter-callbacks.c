/*
 * milter-callbacks.c - the libmilter callbacks: connection and message contexts, the
 * outbound (authenticated) checks and the header stripping every message gets.
 *
 * Public: milter_desc (the filter description), milter_msg_reset.
 *
 * Flow: negotiate (ask Postfix for the macros we read) -> connect (connection context,
 * holding a counted reference to the config snapshot of the moment) -> MAIL FROM (message
 * reset; {auth_authen} set = outbound: user status and envelope sender checked) -> headers
 * (first From:/Sender: kept, strippable headers counted) -> end of message (strip, then
 * From enforcement for outbound mail, milter_inbound_eom for inbound) -> abort/close.
 * The message context is reset in one place (milter_msg_reset) at MAIL FROM, abort, end of
 * message and close.
 *
 * Diagnostics: one log line per decision: event=mail action=accept|reject|tempfail
 * stage=... qid= user= client= reason= (untrusted values through mw_log_value).
 * Replies: see milter-from.c and mailwarden-milter(8); besides those:
 *   550 5.7.1 account <user> is not active / is not known
 *   451 4.7.1 sender check temporarily unavailable, try again later   (on_error = tempfail)
 *   550 5.7.1 sender check unavailable                                (on_error = reject)
 *   552 5.3.4 From: header too long / Sender: header too long (over max_address_header)
 *   552 5.3.4 too many headers to remove (X-Mailwarden-* / Authentication-Results)
 *   451 4.7.1 internal error, try again later    (an MTA action failed)
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-log.h"

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
	memset(msg, 0, sizeof(*msg));
}

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
	unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_SETSYMLIST;
	(void)f2;
	(void)f3;
	if ((f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS)) != (SMFIF_ADDHDRS | SMFIF_CHGHDRS)) {
		mw_error_log("event=negotiate_failed reason=\"MTA does not offer header changes\"");
		return SMFIS_REJECT;
	}
	*pf0 = f0 & want;
	/* the body is not read yet (DKIM will need it); unknown commands never matter */
	*pf1 = f1 & (SMFIP_NOBODY | SMFIP_NOUNKNOWN);
	*pf2 = 0;
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

/* cb_connect - a new connection context with the current config snapshot */
static sfsistat cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct milter_conn *conn = mw_calloc(1, sizeof(*conn));
	const char *addr = macro(ctx, "{client_addr}");

	conn->cfg = milter_config_get();
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
	if (smfi_setpriv(ctx, conn) != MI_SUCCESS) {
		milter_config_put(&conn->cfg);
		free(conn);
		return SMFIS_TEMPFAIL;
	}
	return SMFIS_CONTINUE;
}

/* lookup_error - the on_error choice for an unreachable store */
static sfsistat lookup_error(SMFICTX *ctx, struct milter_conn *conn, const mw_error *err)
{
	const char *mode = mw_config_str(conn->cfg, MWK_MILTER_ON_ERROR);
	struct milter_reply r;
	char e[MILTER_LOGV];
	mw_error_log("event=store_error user=%s error=%s",
	             mw_log_value(e, sizeof(e), conn->msg.user, strlen(conn->msg.user)),
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
	authen = macro(ctx, "{auth_authen}");
	if (authen[0] == '\0')
		return SMFIS_CONTINUE; /* inbound: checked at end of message */

	msg->outbound = true;
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
	return SMFIS_CONTINUE;
}

/* cb_envrcpt - count recipients (for the log) */
static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct milter_conn *conn = conn_of(ctx);
	(void)argv;
	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	if (conn->msg.nrcpt < UINT32_MAX)
		conn->msg.nrcpt++;
	return SMFIS_CONTINUE;
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

/* cb_header - keep From:/Sender:, note headers to strip */
static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct milter_conn *conn = conn_of(ctx);
	struct milter_msg *msg;
	struct milter_reply r;
	bool is_from, is_sender;

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	msg = &conn->msg;
	note_qid(ctx, msg);
	if (strlen(name) > HEADER_NAME_MAX) {
		milter_reply_set(&r, "552", "5.3.4", "header_name_too_long",
		                 "header name too long");
		return reply(ctx, conn, &r, "header");
	}
	is_from = mw_ascii_strcasecmp(name, "From") == 0;
	is_sender = mw_ascii_strcasecmp(name, "Sender") == 0;
	if (is_from || is_sender) {
		if (strlen(value) >
		    (size_t)mw_config_int(conn->cfg, MWK_MILTER_MAX_ADDRESS_HEADER)) {
			milter_reply_set(&r, "552", "5.3.4", "header_too_long",
			                 "%s: header too long", is_from ? "From" : "Sender");
			return reply(ctx, conn, &r, "header");
		}
		if (is_from && msg->n_from++ == 0)
			msg->from_first = mw_strdup(value);
		if (is_sender && msg->n_sender++ == 0)
			msg->sender_first = mw_strdup(value);
		return SMFIS_CONTINUE;
	}
	if (milter_header_is_ours(name) ||
	    mw_ascii_strcasecmp(name, "Authentication-Results") == 0) {
		bool del = milter_header_is_ours(name) ||
		           milter_ar_is_ours(value, milter_authserv_id(conn->cfg));
		if (note_strippable(msg, name, del) < 0) {
			milter_reply_set(&r, "552", "5.3.4", "too_many_headers",
			                 "too many headers to remove");
			return reply(ctx, conn, &r, "header");
		}
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

/* cb_eom - strip, then From enforcement (outbound) or the inbound checks */
static sfsistat cb_eom(SMFICTX *ctx)
{
	struct milter_conn *conn = conn_of(ctx);
	struct milter_msg *msg;
	struct milter_reply r;
	char extra[64];
	int ret;

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	msg = &conn->msg;
	note_qid(ctx, msg);
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
		ret = milter_inbound_eom(ctx, conn, &r);
		if (ret != 0)
			return reply(ctx, conn, &r, "end_of_data");
	}
	/* outbound: DKIM signing (lib/mw-dkim-sign) plugs in here */
	(void)snprintf(extra, sizeof(extra), "stripped=%zu", msg->nstrip);
	log_decision(MW_LOG_INFO, conn, "accept", "end_of_data",
	             msg->outbound ? "from_allowed" : "inbound", extra);
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
	milter_msg_reset(&conn->msg);
	milter_config_put(&conn->cfg);
	free(conn);
	return SMFIS_CONTINUE;
}

struct smfiDesc milter_desc = {
    .xxfi_name = (char *)MILTER_NAME,
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_SETSYMLIST,
    .xxfi_connect = cb_connect,
    .xxfi_helo = NULL,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_header = cb_header,
    .xxfi_eoh = NULL,
    .xxfi_body = NULL,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
    .xxfi_unknown = NULL,
    .xxfi_data = NULL,
    .xxfi_negotiate = cb_negotiate,
};
