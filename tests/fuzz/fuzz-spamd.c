/*
 * fuzz-spamd.c - fuzz target for spamd's SYMBOLS reply parser (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * Feeds the input to mw_spamd_reply_parse (as a whole reply at end of input, and as what
 * was read so far) and checks what a success promises: the score within the header's
 * range, a tests list the X-Mailwarden-Spam printer takes and its parser gives back, every
 * proper prefix of an accepted reply "read more" (never an answer of its own), and a
 * partial read never called complete when the whole is refused. The same target runs under
 * libFuzzer (scripts/fuzz) and over tests/fuzz/corpus-spamd in make check (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-spamd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what)
{
	fprintf(stderr, "fuzz-spamd: invariant broken: %s\n", what);
	abort();
}

/* LLVMFuzzerTestOneInput - one input as a spamd reply */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mw_spamd_result r, again;
	static struct mw_hdr_spam h, back;
	char *in = malloc(size > 0 ? size : 1);
	int rc, partial;
	mw_str s;

	if (in == NULL)
		abort();
	memcpy(in, data, size);
	rc = mw_spamd_reply_parse(in, size, true, &r, NULL);
	partial = mw_spamd_reply_parse(in, size, false, &again, NULL);
	if (rc == 0 && partial != 0)
		broken("a whole reply is not complete without EOF");
	if (rc < 0 && partial == 0)
		broken("a refused reply is complete without EOF");
	if (rc == 0) {
		if (r.score > MW_HDR_SCORE_MAX || r.score < -MW_HDR_SCORE_MAX)
			broken("score out of range");
		if (r.ntests == 0 && r.tests[0] != '\0')
			broken("tests without names");
		for (size_t i = 0; i + 1 < size; i++)
			if (mw_spamd_reply_parse(in, i, false, &again, NULL) != 1)
				broken("a prefix of a reply is not 'read more'");
		memset(&h, 0, sizeof(h));
		h.score = r.score;
		h.required = 500;
		memcpy(h.tests, r.tests, sizeof(h.tests));
		mw_str_init(&s, 0);
		if (mw_hdr_spam_print(&h, &s, NULL) < 0)
			broken("spamd's tests do not fit X-Mailwarden-Spam");
		if (mw_hdr_spam_parse(s.buf, s.len, &back, NULL) < 0 ||
		    !mw_hdr_spam_equal(&h, &back))
			broken("X-Mailwarden-Spam round trip");
		mw_str_free(&s);
	}
	free(in);
	return 0;
}
