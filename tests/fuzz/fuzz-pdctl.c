/*
 * fuzz-pdctl.c - fuzz target for the policyd control-socket records (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * Feeds the input to mw_pdctl_decode_request, mw_pdctl_frame and mw_pdctl_decode_reply, and
 * checks what a success promises: what decoded encodes again, and the encoding decodes to
 * the same values (one owner of the format: the two directions agree); a reply decodes the
 * same from every prefix that ends a record (0 = not yet) up to the whole; nothing is
 * accepted with bytes after its end. The same target runs under libFuzzer (scripts/fuzz)
 * and over tests/fuzz/corpus-pdctl in make check (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-pdctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what)
{
	fprintf(stderr, "fuzz-pdctl: invariant broken: %s\n", what);
	abort();
}

/* same_reply - a and b hold the same values */
static bool same_reply(const struct mw_pdctl_reply *a, const struct mw_pdctl_reply *b)
{
	size_t i;
	if (a->ok != b->ok || strcmp(a->subject, b->subject) != 0 ||
	    strcmp(a->error, b->error) != 0 || a->cleared != b->cleared || a->nlimits != b->nlimits)
		return false;
	for (i = 0; i < a->nlimits; i++) {
		const struct mw_pdctl_limit *x = &a->limits[i], *y = &b->limits[i];
		if (strcmp(x->limit, y->limit) != 0 || strcmp(x->origin, y->origin) != 0 ||
		    x->used != y->used || x->count != y->count ||
		    x->reset_after != y->reset_after || x->degraded != y->degraded)
			return false;
	}
	return true;
}

/* check_request - a request that decodes re-encodes to one that decodes the same */
static void check_request(const char *in, size_t len)
{
	struct mw_pdctl_request req, again;
	size_t framed = 0;
	mw_str s;
	int fr = mw_pdctl_frame(in, len, MW_PDCTL_REQUEST_MAX, &framed);
	if (fr == 1 && (framed == 0 || framed > len))
		broken("frame length outside the input");
	if (mw_pdctl_decode_request(in, len, &req, NULL) < 0)
		return;
	if (fr != 1 || framed != len)
		broken("a request decoded that is not exactly one frame");
	mw_str_init(&s, MW_PDCTL_REQUEST_MAX);
	if (mw_pdctl_encode_request(&s, &req, NULL) < 0)
		broken("a decoded request does not encode");
	if (mw_pdctl_decode_request(s.buf, s.len, &again, NULL) < 0 ||
	    again.command != req.command || strcmp(again.subject, req.subject) != 0)
		broken("request round trip");
	mw_str_free(&s);
}

/* check_reply - a reply that decodes re-encodes to the same values; prefixes are not yet */
static void check_reply(const char *in, size_t len)
{
	static struct mw_pdctl_reply r, again;
	size_t i;
	mw_str s;
	int rc = mw_pdctl_decode_reply(in, len, &r, NULL);
	if (rc != 1)
		return;
	for (i = 0; i + 2 < len; i++) /* every proper prefix ending a record */
		if (in[i] == '\n' && in[i + 1] == '\n' &&
		    mw_pdctl_decode_reply(in, i + 2, &again, NULL) != 0)
			broken("a prefix of a reply is not 'read more'");
	mw_str_init(&s, MW_PDCTL_REPLY_MAX);
	if (mw_pdctl_encode_reply(&s, &r, NULL) < 0)
		broken("a decoded reply does not encode");
	if (mw_pdctl_decode_reply(s.buf, s.len, &again, NULL) != 1 || !same_reply(&r, &again))
		broken("reply round trip");
	mw_str_free(&s);
}

/* LLVMFuzzerTestOneInput - one input as a request and as a reply */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size > 0 ? size : 1);
	if (in == NULL)
		abort();
	memcpy(in, data, size);
	check_request(in, size);
	check_reply(in, size);
	free(in);
	return 0;
}
