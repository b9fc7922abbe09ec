/* mw-test-dkim.h - feed a whole message to a libopendkim verifier, for the tests that check
   our signer against libopendkim (tests/unit/test-dkim-sign.c, tests/tools/mw-dkim-sign-tool.c).

   mw_test_dkim_verify takes a message with CRLF or LF line ends, splits its header fields
   (continuation lines included), hands each to dkim_header and the body to dkim_body with
   every bare LF made CRLF, as on the wire, and returns the first status that is not
   DKIM_STAT_OK, else dkim_eom's; *header_refused_r (may be NULL) says whether that was
   dkim_header refusing a field. The caller owns d (dkim_verify, dkim_free). */
#ifndef MW_TEST_DKIM_H
#define MW_TEST_DKIM_H

#include "mw-util.h"

#include <opendkim/dkim.h>

/* mw_test_crlf_append - append p[0..n) with every bare LF made CRLF */
static inline void mw_test_crlf_append(mw_str *out, const char *p, size_t n)
{
	size_t k;
	for (k = 0; k < n; k++) {
		if (p[k] == '\n' && (k == 0 || p[k - 1] != '\r'))
			(void)mw_str_appendc(out, '\r');
		(void)mw_str_appendc(out, p[k]);
	}
}

/* mw_test_dkim_verify - libopendkim's status for a whole message */
static inline DKIM_STAT mw_test_dkim_verify(DKIM *d, const char *msg, size_t len,
                                            bool *header_refused_r)
{
	DKIM_STAT st = DKIM_STAT_OK;
	mw_str h;
	size_t i = 0;
	mw_str_init(&h, 0);
	while (st == DKIM_STAT_OK && i < len &&
	       !(msg[i] == '\n' || (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n'))) {
		size_t e = i;
		while (e < len && msg[e] != '\n')
			e++;
		while (e + 1 < len && (msg[e + 1] == ' ' || msg[e + 1] == '\t')) {
			e++;
			while (e < len && msg[e] != '\n')
				e++;
		}
		/* the field without its final line end */
		mw_str_reset(&h);
		mw_test_crlf_append(&h, msg + i, e > i && msg[e - 1] == '\r' ? e - i - 1 : e - i);
		st = dkim_header(d, (unsigned char *)h.buf, h.len);
		i = e + 1;
	}
	if (header_refused_r != NULL)
		*header_refused_r = st != DKIM_STAT_OK;
	if (st == DKIM_STAT_OK) {
		if (i < len)
			i += msg[i] == '\r' ? 2 : 1;
		mw_str_reset(&h);
		mw_test_crlf_append(&h, msg + i, i < len ? len - i : 0);
		st = dkim_eoh(d);
		if (st == DKIM_STAT_OK && h.len > 0)
			st = dkim_body(d, (unsigned char *)h.buf, h.len);
		if (st == DKIM_STAT_OK)
			st = dkim_eom(d, NULL);
	}
	mw_str_free(&h);
	return st;
}

#endif
