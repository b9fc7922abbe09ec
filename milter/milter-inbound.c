/*
 * milter-inbound.c - the SPF/DKIM/DMARC verdict for mail from unauthenticated clients.
 *
 * Public: milter_inbound_eom, milter_inbound_seal, milter_insert_top.
 *
 * By the time this runs, every X-Mailwarden-* header and every Authentication-Results
 * header carrying our authserv-id has been deleted (milter-callbacks.c does that for all
 * mail), and the message's checker (lib/mw-authcheck, started at MAIL FROM for a client
 * outside trusted_networks) has seen the client address, HELO, envelope sender, every
 * header as received and the body. Here the checks run (mw_authcheck_eom), one
 * "Authentication-Results: <authserv-id>; spf=... dkim=... dmarc=..." header is inserted at
 * the top, and mw_authcheck_verdict decides with the [milter] settings:
 *   accept; quarantine (dmarc_quarantine = hold: smfi_quarantine puts the message in
 *   Postfix's hold queue; tag: only the header, whose dmarc=fail the Dovecot plugin turns
 *   into its DMARC-failure keyword); 550 5.7.26 (DMARC p=reject); 550 5.7.1 (a local
 *   domain claimed without authentication, or a From header without exactly one usable
 *   address, or an envelope sender that does not parse); 451 4.7.1 (a DNS failure that decides,
 * with dns_error_action = tempfail). Trusted clients get no header: we never claim a check we did
 * not make. An untrusted client's message whose checks could not start is never accepted.
 *
 * milter_inbound_seal (after the scan stages, which may change the Subject) adds our ARC set
 * (lib/mw-arc) with [milter] arc_seal: the ARC-Authentication-Results is the header above.
 *
 * With [dmarc] record = yes the evaluation of a message accepted, quarantined or refused here
 * is recorded for the aggregate reports (milter-dmarc-record.c; never a tempfailed one).
 *
 * Diagnostics: the results go into the caller's log line (extra_r); a header that cannot be
 * formatted or inserted is logged and the message is tempfailed (an MTA action failed).
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-log.h"
#include "mw-arc.h"

#include <libmilter/mfapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dkim_summary - "pass", "fail,pass", "none": every signature's result, for the log */
static void dkim_summary(const struct mw_auth_results *res, char *out, size_t size)
{
	size_t i, len = 0;
	out[0] = '\0';
	if (res->dkim_count == 0) {
		(void)mw_strlcpy(out, "none", size);
		return;
	}
	for (i = 0; i < res->dkim_count && len + 12 < size; i++) {
		int n = snprintf(out + len, size - len, "%s%s", i > 0 ? "," : "",
		                 mw_auth_result_str(res->dkim[i].result));
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* milter_inbound_eom - Authentication-Results and the verdict for an inbound message */
int milter_inbound_eom(SMFICTX *ctx, struct milter_conn *conn, struct milter_reply *reply_r,
                       char *extra_r, size_t extra_size)
{
	struct milter_msg *msg = &conn->msg;
	const mw_config *cfg = conn->cfg;
	const struct mw_auth_results *res;
	struct mw_verdict_policy policy;
	struct mw_verdict v;
	char dkim[64], e[MILTER_LOGV], text[MILTER_REPLY_MAX];
	mw_error err;
	mw_str ar;
	int ret = 0;

	if (msg->ac == NULL) {
		/* an untrusted client whose checks never started (inbound_start refuses that at
		   MAIL FROM already): never accept it unchecked */
		if (!conn->trusted) {
			milter_reply_set(reply_r, "451", "4.7.1", "authcheck_unavailable",
			                 "sender checks unavailable, try again later");
			return 1;
		}
		return 0;
	}
	res = mw_authcheck_eom(msg->ac);
	dkim_summary(res, dkim, sizeof(dkim));
	(void)snprintf(extra_r, extra_size, "spf=%s dkim=%s dmarc=%s policy=%s from_domain=%s",
	               mw_auth_result_str(res->spf), dkim, mw_auth_result_str(res->dmarc),
	               mw_dmarc_policy_str(res->policy),
	               mw_log_value(e, sizeof(e), res->from_domain, strlen(res->from_domain)));

	memset(&policy, 0, sizeof(policy));
	policy.dmarc_enforce = mw_config_bool(cfg, MWK_MILTER_DMARC_ENFORCE);
	policy.quarantine_hold =
	    strcmp(mw_config_str(cfg, MWK_MILTER_DMARC_QUARANTINE), "hold") == 0;
	policy.tempfail_on_dns_error =
	    strcmp(mw_config_str(cfg, MWK_MILTER_DNS_ERROR_ACTION), "tempfail") == 0;
	policy.local_domains = mw_config_str(cfg, MWK_MILTER_LOCAL_DOMAINS);
	policy.trusted_client = conn->trusted;
	policy.authenticated = msg->outbound;
	mw_authcheck_verdict(res, &policy, &v);

	switch (v.action) {
	case MW_VERDICT_REJECT:
	case MW_VERDICT_TEMPFAIL:
		milter_dmarc_record(conn, res, &v); /* a tempfail is not recorded */
		milter_reply_value(text, sizeof(text), v.reason);
		milter_reply_set(reply_r, v.smtp_code, v.xcode, v.why, "%s", text);
		return 1;
	case MW_VERDICT_QUARANTINE:
	case MW_VERDICT_ACCEPT:
		break;
	}

	mw_str_init(&ar, 0);
	if (mw_authcheck_format_ar(milter_authserv_id(cfg), res, &ar, &err) < 0) {
		mw_warn("event=authres_unformattable error=%s",
		        mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
	} else {
		char *v1 = NULL;
		const char *value = mw_str_c(&ar);
		if (conn->leadspc) {
			size_t n = strlen(value);
			v1 = mw_malloc(n + 2);
			v1[0] = ' ';
			memcpy(v1 + 1, value, n + 1);
		}
		if (smfi_insheader(ctx, 0, (char *)"Authentication-Results",
		                   v1 != NULL ? v1 : (char *)value) != MI_SUCCESS)
			ret = -1;
		free(v1);
	}
	mw_str_free(&ar);
	if (ret == 0 && v.action == MW_VERDICT_QUARANTINE && v.hold) {
		if (smfi_quarantine(ctx, (char *)"DMARC policy quarantine") != MI_SUCCESS)
			ret = -1;
		else
			msg->quarantined = true;
	}
	if (ret < 0) {
		milter_reply_set(reply_r, "451", "4.7.1", "mta_action_failed",
		                 "internal error, try again later");
		return 1;
	}
	milter_dmarc_record(conn, res, &v);
	if (v.action == MW_VERDICT_QUARANTINE && v.tag) {
		size_t len = strlen(extra_r);
		(void)snprintf(extra_r + len, extra_size - len, " quarantine=tag");
	}
	return 0;
}

/* milter_insert_top - smfi_insheader at index 0, with a leading blank when negotiated */
int milter_insert_top(SMFICTX *ctx, const struct milter_conn *conn, const char *name,
                      const char *value)
{
	char *v1 = NULL;
	int ret;
	if (conn->leadspc) {
		size_t n = strlen(value);
		v1 = mw_malloc(n + 2);
		v1[0] = ' ';
		memcpy(v1 + 1, value, n + 1);
	}
	ret = smfi_insheader(ctx, 0, (char *)name, v1 != NULL ? v1 : (char *)value);
	free(v1);
	return ret == MI_SUCCESS ? 0 : -1;
}

/* milter_inbound_seal - our ARC set on top of a checked inbound message */
int milter_inbound_seal(SMFICTX *ctx, struct milter_conn *conn, struct milter_reply *reply_r,
                        char *extra_r, size_t extra_size)
{
	struct milter_msg *msg = &conn->msg;
	const mw_config *cfg = conn->cfg;
	const struct mw_auth_results *res;
	mw_str ar, as, ams, aar;
	mw_error err = {{0}};
	char e[MILTER_LOGV];
	size_t len;
	int ret = 0, st;

	if (!mw_config_bool(cfg, MWK_MILTER_ARC_SEAL) || msg->ac == NULL || msg->outbound)
		return 0;
	res = mw_authcheck_eom(msg->ac);
	mw_str_init(&ar, 0);
	mw_str_init(&as, 0);
	mw_str_init(&ams, 0);
	mw_str_init(&aar, 0);
	if (mw_authcheck_format_ar(milter_authserv_id(cfg), res, &ar, &err) < 0)
		st = MW_DKIM_LOOKUP_ERROR;
	else
		st = milter_arc_seal(cfg, mw_authcheck_arc(msg->ac), mw_str_c(&ar), res->arc,
		                     mw_config_str(cfg, MWK_SPAM_SUBJECT_PREFIX)[0] == '\0', &as,
		                     &ams, &aar, &err);
	if (st == MW_DKIM_LOOKUP_FOUND) {
		/* bottom to top: the seal ends up first */
		if (milter_insert_top(ctx, conn, "ARC-Authentication-Results", mw_str_c(&aar)) <
		        0 ||
		    milter_insert_top(ctx, conn, "ARC-Message-Signature", mw_str_c(&ams)) < 0 ||
		    milter_insert_top(ctx, conn, "ARC-Seal", mw_str_c(&as)) < 0) {
			milter_reply_set(reply_r, "451", "4.7.1", "mta_action_failed",
			                 "internal error, try again later");
			ret = 1;
		} else {
			len = strlen(extra_r);
			(void)snprintf(extra_r + len, extra_size - len, " arc_sealed=%u",
			               res->arc_sets + 1);
		}
	} else {
		if (st == MW_DKIM_LOOKUP_NONE)
			mw_error_set(&err, "no DKIM key for the ARC seal domain");
		mw_error_log("event=arc_seal_failed qid=%s domain=%s error=%s",
		             msg->qid[0] != '\0' ? msg->qid : "-",
		             mw_config_str(cfg, MWK_MILTER_ARC_SEAL_DOMAIN),
		             mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		if (strcmp(mw_config_str(cfg, MWK_MILTER_DKIM_ON_ERROR), "tempfail") == 0) {
			milter_reply_set(reply_r, "451", "4.7.1", "arc_seal_failed",
			                 "cannot seal the message now, try again later");
			ret = 1;
		}
	}
	mw_str_free(&ar);
	mw_str_free(&as);
	mw_str_free(&ams);
	mw_str_free(&aar);
	return ret;
}
