/*
 * milter-inbound.c - end-of-message work for mail from unauthenticated clients.
 *
 * Public: milter_inbound_eom.
 *
 * By the time this runs, every X-Mailwarden-* header and every Authentication-Results
 * header carrying our authserv-id has been deleted (milter-callbacks.c does that for all
 * mail). This is the place where SPF, DKIM and DMARC verification (lib/mw-authcheck) plugs
 * in: it computes the verdict from conn->client_addr, the HELO name, conn->msg.envfrom and
 * the message, adds one "Authentication-Results: <milter_authserv_id()>; ..." header with
 * smfi_insheader and may refuse (550 5.7.26) or tempfail (451 4.7.1) the message. Until
 * then no verdict is written: we never claim a check we did not make.
 */
#include "mw-build.h"
#include "milter.h"

#include <libmilter/mfapi.h>

/* milter_inbound_eom - verdicts for inbound mail (none yet: accept) */
int milter_inbound_eom(SMFICTX *ctx, struct milter_conn *conn, struct milter_reply *reply_r)
{
	(void)ctx;
	(void)conn;
	(void)reply_r;
	return 0;
}
