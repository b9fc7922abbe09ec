/*
 * milter-from.c - the milter's pure decisions: may this user send with this envelope
 * sender and these From:/Sender: headers, and is an Authentication-Results header ours.
 *
 * Public: milter_from_check, milter_envfrom_check, milter_reply_value, milter_reply_set.
 *
 * No libmilter here: the callbacks pass header values in and get a reply out, so the unit
 * tests (tests/unit/test-milter-from.c) run the very function the daemon uses.
 * Replies (documented in mailwarden-milter(8)):
 *   550 5.7.1 <addr>: not allowed for <user>      an address matches no pattern
 *   550 5.7.1 null sender not allowed for <user>  MAIL FROM:<> (null_sender = reject)
 *   553 5.1.7 sender address does not parse       envelope sender syntax
 *   550 5.6.0 message has no From: header         missing
 *   550 5.6.0 message has N From: headers         repeated (RFC 5322 3.6: exactly one)
 *   550 5.6.0 From: header has no address         empty, or only empty groups
 *   550 5.6.0 From: header does not parse: ...    syntax (the reason, never the input)
 *   550 5.6.0 message has N Sender: headers / Sender: header does not parse / has no address
 *   550 5.7.1 From: display name shows an address other than the sender's   (a display
 *             name, group name or comment, decoded as a reader shows it: quoted-pairs,
 *             RFC 2047 encoded-words in any charset, holds another x@y)
 *   550 5.7.1 From: display name cannot be decoded: ...   (an undecodable encoded-word)
 *   (the same two for Sender:)
 * The reply text never echoes raw input: addresses are canonical and escaped.
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-log.h"
#include "mw-pattern.h"

#include <stdio.h>
#include <string.h>

/* milter_reply_value - untrusted text made safe for an SMTP reply ('%' is special to
   smfi_setreply, so it is escaped as well) */
void milter_reply_value(char *dst, size_t dstsize, const char *src)
{
	(void)mw_text_escape(dst, dstsize, src, strlen(src), "%\\", false);
}

/* milter_reply_set - fill a reply (text formatted, cut to fit) */
void milter_reply_set(struct milter_reply *r, const char *rcode, const char *xcode,
                      const char *reason, const char *fmt, ...)
{
	va_list ap;
	int n;
	r->rcode = rcode;
	r->xcode = xcode;
	r->reason = reason;
	va_start(ap, fmt);
	n = vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	if (n < 0)
		(void)mw_strlcpy(r->text, "refused", sizeof(r->text));
	/* a cut reply is still a correct refusal; the pieces were bounded beforehand */
}

/* reply_not_allowed - "550 5.7.1 <addr>: not allowed for <user>" */
static void reply_not_allowed(struct milter_reply *r, const char *addr, const char *user,
                              const char *reason)
{
	char a[MILTER_LOGV], u[MILTER_LOGV];
	milter_reply_value(a, sizeof(a), addr);
	milter_reply_value(u, sizeof(u), user);
	milter_reply_set(r, "550", "5.7.1", reason, "<%s>: not allowed for %s", a, u);
}

/* check_header_list - one header kind (From or Sender): count, parse, match every address */
static int check_header_list(const char *label, const char *const *values, size_t n, bool required,
                             const char *const *patterns, size_t npatterns, const char *user,
                             struct milter_reply *r)
{
	struct mw_addr_list list;
	mw_error err;
	size_t i;

	if (n == 0) {
		if (!required)
			return 0;
		milter_reply_set(r, "550", "5.6.0", "from_missing", "message has no %s: header",
		                 label);
		return 1;
	}
	if (n > 1) {
		milter_reply_set(r, "550", "5.6.0", "header_repeated",
		                 "message has %zu %s: headers", n, label);
		return 1;
	}
	if (mw_addr_parse_header(values[0], strlen(values[0]), &list, &err) < 0) {
		char e[MILTER_LOGV];
		/* the parser's message names the problem and offset, never the input */
		milter_reply_value(e, sizeof(e), err.msg);
		milter_reply_set(r, "550", "5.6.0", "header_unparseable",
		                 "%s: header does not parse: %s", label, e);
		return 1;
	}
	if (list.count == 0) {
		mw_addr_list_free(&list);
		milter_reply_set(r, "550", "5.6.0", "header_empty", "%s: header has no address",
		                 label);
		return 1;
	}
	for (i = 0; i < list.count; i++) {
		if (!mw_pattern_match_any(patterns, npatterns, &list.addrs[i])) {
			reply_not_allowed(r, list.addrs[i].addr, user,
			                  strcmp(label, "From") == 0 ? "from_not_allowed"
			                                             : "sender_not_allowed");
			mw_addr_list_free(&list);
			return 1;
		}
	}
	/* what a reader shows besides the addresses: no other address in any decoded form */
	switch (mw_addr_display_check(values[0], strlen(values[0]), &list, &err)) {
	case 0:
		break;
	case 1:
		mw_addr_list_free(&list);
		milter_reply_set(r, "550", "5.7.1", "display_name_address",
		                 "%s: display name shows an address other than the sender's",
		                 label);
		return 1;
	default: {
		char e[MILTER_LOGV];
		mw_addr_list_free(&list);
		milter_reply_value(e, sizeof(e), err.msg);
		milter_reply_set(r, "550", "5.7.1", "display_name_undecodable",
		                 "%s: display name cannot be decoded: %s", label, e);
		return 1;
	}
	}
	mw_addr_list_free(&list);
	return 0;
}

/* milter_from_check - every From:/Sender: address must match one of the user's patterns */
int milter_from_check(const struct milter_from_input *in, const char *const *patterns,
                      size_t npatterns, const char *user, struct milter_reply *reply_r)
{
	if (check_header_list("From", in->from, in->n_from, true, patterns, npatterns, user,
	                      reply_r) != 0)
		return 1;
	return check_header_list("Sender", in->sender, in->n_sender, false, patterns, npatterns,
	                         user, reply_r);
}

/* milter_envfrom_check - the envelope sender must match one of the user's patterns */
int milter_envfrom_check(const char *envfrom, bool null_ok, const char *const *patterns,
                         size_t npatterns, const char *user, struct milter_reply *reply_r)
{
	struct mw_addr addr;
	mw_error err;

	if (mw_addr_parse_envelope(envfrom, strlen(envfrom), false, &addr, &err) < 0) {
		milter_reply_set(reply_r, "553", "5.1.7", "envfrom_unparseable",
		                 "sender address does not parse");
		return 1;
	}
	if (addr.null_path) {
		char u[MILTER_LOGV];
		if (null_ok)
			return 0;
		milter_reply_value(u, sizeof(u), user);
		milter_reply_set(reply_r, "550", "5.7.1", "null_sender",
		                 "null sender not allowed for %s", u);
		return 1;
	}
	if (!mw_pattern_match_any(patterns, npatterns, &addr)) {
		reply_not_allowed(reply_r, addr.addr, user, "envfrom_not_allowed");
		return 1;
	}
	return 0;
}
