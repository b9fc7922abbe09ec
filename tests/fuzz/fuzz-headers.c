/*
 * fuzz-headers.c - fuzz target for the verdict header parsers and printers of lib/mw-headers
 * (Authentication-Results, X-Mailwarden-Spam, X-Mailwarden-Virus; libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The input is one header value. Each parser runs over it; whenever one accepts, the result
 * is printed, the printed text parsed again, and the two results must be equal (print ->
 * parse round trip), the printed text must be printed identically a second time, and a
 * refusal must leave an error message and an empty result. For Authentication-Results the
 * authserv-id classification must agree with the full parse: a header that parses is never
 * UNKNOWN, its id is OURS exactly when it equals ours (case, trailing dots), and a printed
 * header of ours classifies as OURS; the plugin's pick never believes a header the milter
 * would have kept. The same target runs under libFuzzer (scripts/fuzz) and over
 * tests/fuzz/corpus-headers in make check (replay-main.c).
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-headers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OURS "mail.example.org"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-headers: invariant broken: %s [%s]\n", what, detail);
	abort();
}

/* fuzz_authres - parse, classify, print, re-parse */
static void fuzz_authres(const char *s, size_t size)
{
	static struct mw_hdr_authres ar, back;
	enum mw_hdr_id_class c = mw_hdr_authres_id(s, size, OURS);
	mw_error err;
	mw_str out, again;

	err.msg[0] = '\0';
	if (mw_hdr_authres_parse(s, size, &ar, &err) != 0) {
		if (err.msg[0] == '\0' || ar.count != 0 || ar.authserv_id[0] != '\0')
			broken("refused header without message or with results", err.msg);
		return;
	}
	if (c == MW_HDR_ID_UNKNOWN)
		broken("a header that parses has an unknown authserv-id", ar.authserv_id);
	{
		/* a parsed id is a host name: ours when it equals ours but for case and
		   trailing dots, else provably someone else's */
		size_t n = strlen(ar.authserv_id);
		while (n > 0 && ar.authserv_id[n - 1] == '.')
			n--;
		enum mw_hdr_id_class want =
		    n == strlen(OURS) && mw_ascii_strncasecmp(ar.authserv_id, OURS, n) == 0
		        ? MW_HDR_ID_OURS
		        : MW_HDR_ID_FOREIGN;
		if (c != want)
			broken("classification and parse disagree about the id", ar.authserv_id);
	}
	mw_str_init(&out, 0);
	if (mw_hdr_authres_print(&ar, &out, &err) != 0)
		broken("a parsed header does not print", err.msg);
	if (mw_hdr_authres_parse(out.buf, out.len, &back, &err) != 0)
		broken("a printed header does not parse", out.buf);
	if (!mw_hdr_authres_equal(&ar, &back))
		broken("print -> parse differs", out.buf);
	if (mw_hdr_authres_id(out.buf, out.len, OURS) != c)
		broken("the printed header classifies differently", out.buf);
	mw_str_init(&again, 0);
	if (mw_hdr_authres_print(&back, &again, &err) != 0 || strcmp(out.buf, again.buf) != 0)
		broken("printing is not stable", out.buf);
	{
		const char *v[1] = {out.buf};
		int r = mw_hdr_authres_pick(v, 1, OURS, &back, &err);
		if (r != (c == MW_HDR_ID_OURS ? 1 : 0))
			broken("pick disagrees with the classification", out.buf);
	}
	mw_str_free(&again);
	mw_str_free(&out);
}

/* fuzz_pick - the input split at LF into several header values: a believed header is the
   only one the milter would not have kept or deleted as foreign */
static void fuzz_pick(const char *s, size_t size)
{
	static struct mw_hdr_authres ar;
	char *copy, *v[8];
	size_t n = 0, i, claim = 0;
	char *p, *nl;
	int r;

	copy = mw_malloc(size + 1);
	memcpy(copy, s, size);
	copy[size] = '\0';
	for (p = copy; n < MW_N_ELEMENTS(v); p = nl + 1) {
		v[n++] = p;
		nl = strchr(p, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
	}
	r = mw_hdr_authres_pick((const char *const *)v, n, OURS, &ar, NULL);
	for (i = 0; i < n; i++)
		if (mw_hdr_authres_id(v[i], strlen(v[i]), OURS) != MW_HDR_ID_FOREIGN)
			claim++;
	if (r == 1 && (claim != 1 || mw_hdr_authres_id(v[0], strlen(v[0]), OURS) != MW_HDR_ID_OURS))
		broken("believed a header among several claimants or not first", v[0]);
	if (r == 0 && claim != 0)
		broken("a claimant was silently ignored", "");
	free(copy);
}

/* fuzz_spam - X-Mailwarden-Spam */
static void fuzz_spam(const char *s, size_t size)
{
	struct mw_hdr_spam v, back;
	mw_error err;
	mw_str out;
	err.msg[0] = '\0';
	if (mw_hdr_spam_parse(s, size, &v, &err) != 0) {
		if (err.msg[0] == '\0' || v.spam || v.tests[0] != '\0')
			broken("refused spam header without message or with a verdict", err.msg);
		return;
	}
	mw_str_init(&out, 0);
	if (mw_hdr_spam_print(&v, &out, &err) != 0)
		broken("a parsed spam header does not print", err.msg);
	if (mw_hdr_spam_parse(out.buf, out.len, &back, &err) != 0 || !mw_hdr_spam_equal(&v, &back))
		broken("spam print -> parse differs", out.buf);
	(void)mw_hdr_tests_has(v.tests, "PHISH_URL,X");
	mw_str_free(&out);
}

/* fuzz_virus - X-Mailwarden-Virus */
static void fuzz_virus(const char *s, size_t size)
{
	struct mw_hdr_virus v, back;
	mw_error err;
	mw_str out;
	err.msg[0] = '\0';
	if (mw_hdr_virus_parse(s, size, &v, &err) != 0) {
		if (err.msg[0] == '\0' || v.infected || v.signature[0] != '\0')
			broken("refused virus header without message or with a verdict", err.msg);
		return;
	}
	mw_str_init(&out, 0);
	if (mw_hdr_virus_print(&v, &out, &err) != 0)
		broken("a parsed virus header does not print", err.msg);
	if (mw_hdr_virus_parse(out.buf, out.len, &back, &err) != 0 ||
	    !mw_hdr_virus_equal(&v, &back))
		broken("virus print -> parse differs", out.buf);
	mw_str_free(&out);
}

/* LLVMFuzzerTestOneInput - every header parser over one input */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	if (size > 2 * MW_HDR_VALUE_MAX)
		return 0;
	fuzz_authres(s, size);
	fuzz_pick(s, size);
	fuzz_spam(s, size);
	fuzz_virus(s, size);
	return 0;
}
