/*
 * fuzz-dkimcanon.c - differential fuzz target: our DKIM relaxed/relaxed canonicalisation
 * (lib/mw-dkim-sign.c) against libopendkim's, on the same message (libFuzzer).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * Input: byte 0 holds options (bit 0: header folds given to our signer as LF instead of
 * CRLF; bits 1-7: the body chunk size for our signer, 1..128); the rest is a message,
 * header lines up to the first empty line ("\n" or "\r\n" line ends; a line starting with
 * a blank continues the field), then the body, any bytes. The message is signed by our
 * signer, driven as the milter drives it (header name and value, folds inside the value;
 * the body in chunks), and the DKIM-Signature it gives is verified by libopendkim on
 * the same message as it goes out on the wire (CRLF header lines, the body as given with
 * bare LF taken as CRLF: DKIM_LIBFLAGS_FIXCRLF, as Postfix's SMTP client sends it). The key
 * (Ed25519 when libopendkim signs it, else RSA 1024) comes from a key-lookup callback.
 *
 * Any verification failure aborts, naming the part whose canonical form differs: a body
 * hash mismatch is our relaxed body canonicalisation differing from libopendkim's, a bad
 * signature with a matching body hash our relaxed header canonicalisation (or the h=
 * list) differing.
 *
 * The header section is kept to what a milter sees from Postfix: field names of printable
 * ASCII without ':', values without control characters other than TAB (a header with a
 * bare CR or NUL is not a header a verifier canonicalises the same way twice: libopendkim
 * treats every isspace() byte as a blank, RFC 6376 only SP and TAB), no DKIM-Signature
 * field of its own, at least one From (libopendkim refuses a message without one, and
 * RFC 5322 requires it). A message libopendkim refuses before the body (a From address it
 * cannot parse, a field name it does not take, such as one with ';') has no verdict to
 * compare and is passed over. A value that begins with a fold ("Subject:\r\n\tvalue") is left out
 * too: RFC 6376 3.4.2 unfolds it to "subject:value", libopendkim before its 2021 fix
 * (trusteddomainproject/OpenDKIM pull request 119, not in Debian's 2.11.0~beta2) keeps a
 * blank there; our form is the RFC's, so the difference is theirs.
 *
 * The body always ends with a line end, as it does when Postfix hands it to a milter
 * (SMTP's DATA and the queue file end every line): a non-empty body that does not end in
 * LF gets CRLF appended. libopendkim 2.11.0~beta2 drops the empty lines before an
 * unterminated last line ("x\r\n\r\ny" hashes as "x\r\ny\r\n"); RFC 6376 3.4.4 keeps
 * them, and so do we.
 *
 * Diagnostics: a mismatch prints what differed on stderr and aborts.
 */
#include "mw-build.h"
#include "mw-dkim-sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <opendkim/dkim.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FIELDS 64

static struct {
	bool ready;
	mw_dkim_key *key;
	char txt[2048]; /* the key record: v=DKIM1; k=...; p=... */
	DKIM_LIB *verifier;
} g;

struct field {
	const char *name;
	size_t nlen;
	const char *value; /* raw: after ':', folds as "\r\n" + blank */
	size_t vlen;
};

/* broken - report a mismatch and abort */
static void broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-dkimcanon: %s [%s]\n", what, detail);
	abort();
}

/* key_lookup - libopendkim's key callback: our public key for any selector */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	(void)dkim;
	(void)sig;
	if (mw_strlcpy((char *)buf, g.txt, buflen) < 0)
		return DKIM_CBSTAT_ERROR;
	return DKIM_CBSTAT_CONTINUE;
}

/* init - the signing key, its record and a verifying libopendkim handle, once */
static void init(void)
{
	bool ed = mw_dkim_ed25519_supported();
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(ed ? EVP_PKEY_ED25519 : EVP_PKEY_RSA, NULL);
	EVP_PKEY *pkey = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	enum mw_dkim_key_type type;
	unsigned int flags = 0;
	mw_error err = {{0}};
	mw_str pub;
	char *pem;
	long len;

	if (pc == NULL || bio == NULL || EVP_PKEY_keygen_init(pc) != 1 ||
	    (!ed && EVP_PKEY_CTX_set_rsa_keygen_bits(pc, 1024) != 1) ||
	    EVP_PKEY_keygen(pc, &pkey) != 1 ||
	    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1)
		broken("key generation failed", "");
	len = BIO_get_mem_data(bio, &pem);
	g.key = mw_dkim_key_new("x.org", "s1", pem, (size_t)len, &err);
	mw_str_init(&pub, 0);
	if (g.key == NULL || mw_dkim_pem_public(pem, (size_t)len, &type, &pub, &err) < 0)
		broken("key", err.msg);
	(void)snprintf(g.txt, sizeof(g.txt), "v=DKIM1; k=%s; p=%s", ed ? "ed25519" : "rsa",
	               mw_str_c(&pub));
	mw_str_free(&pub);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pc);

	g.verifier = dkim_init(NULL, NULL);
	if (g.verifier == NULL || dkim_options(g.verifier, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags,
	                                       sizeof(flags)) != DKIM_STAT_OK)
		broken("dkim_init", "");
	flags |= DKIM_LIBFLAGS_FIXCRLF;
	if (dkim_options(g.verifier, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	        DKIM_STAT_OK ||
	    dkim_set_key_lookup(g.verifier, key_lookup) != DKIM_STAT_OK)
		broken("dkim_options", "");
	g.ready = true;
}

/* next_line - the line at *pos (without its "\n" or "\r\n"); false at the end */
static bool next_line(const char *s, size_t size, size_t *pos, const char **line_r, size_t *len_r)
{
	const char *nl;
	size_t len;
	if (*pos >= size)
		return false;
	nl = memchr(s + *pos, '\n', size - *pos);
	len = nl != NULL ? (size_t)(nl - (s + *pos)) : size - *pos;
	*line_r = s + *pos;
	*pos += len + (nl != NULL);
	if (len > 0 && (*line_r)[len - 1] == '\r')
		len--;
	*len_r = len;
	return true;
}

/* parse_header - the header section into fields; false for a section out of scope */
static bool parse_header(const char *s, size_t size, size_t *body_r, struct field *f, size_t *n_r,
                         mw_str *values)
{
	size_t pos = 0, n = 0, i;
	const char *line;
	size_t len;
	/* values: each field's value with "\r\n" folds, NUL-separated (offsets fixed later) */
	while (next_line(s, size, &pos, &line, &len)) {
		const char *colon;
		if (len == 0)
			break;
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)line[i];
			if ((c < 32 && c != '\t') || c == 127)
				return false;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			if (n == 0)
				return false;
			if (f[n - 1].vlen == 0)
				return false; /* a value that begins with a fold: see the top */
			(void)mw_str_append(values, "\r\n", 2);
			(void)mw_str_append(values, line, len);
			f[n - 1].vlen += 2 + len;
			continue;
		}
		colon = memchr(line, ':', len);
		if (colon == NULL || colon == line || n == FUZZ_MAX_FIELDS)
			return false;
		for (i = 0; line + i < colon; i++)
			if (line[i] <= 32 || line[i] >= 127)
				return false;
		if ((size_t)(colon - line) == 14 &&
		    mw_ascii_strncasecmp(line, "DKIM-Signature", 14) == 0)
			return false;
		if (n > 0)
			(void)mw_str_appendc(values, '\0');
		f[n].name = line;
		f[n].nlen = (size_t)(colon - line);
		f[n].value = (const char *)(uintptr_t)values->len; /* an offset until the end */
		f[n].vlen = len - (size_t)(colon + 1 - line);
		(void)mw_str_append(values, colon + 1, f[n].vlen);
		n++;
	}
	for (i = 0; i < n; i++)
		f[i].value = values->buf + (size_t)(uintptr_t)f[i].value;
	/* libopendkim refuses a message without From at the end of the header */
	for (i = 0; i < n; i++)
		if (f[i].nlen == 4 && mw_ascii_strncasecmp(f[i].name, "From", 4) == 0)
			break;
	if (i == n)
		return false;
	*body_r = pos;
	*n_r = n;
	return true;
}

/* sign - our signature of the message; 0, or -1 when our signer refuses it */
static int sign(const struct field *f, size_t n, const char *body, size_t blen, bool lf,
                size_t chunk, mw_str *sig)
{
	mw_dkim_signer *s;
	mw_error err = {{0}};
	size_t i, o;
	s = mw_dkim_signer_new(g.key, NULL, NULL, &err);
	if (s == NULL)
		broken("signer_new", err.msg);
	for (i = 0; i < n; i++) {
		char *name = mw_strndup(f[i].name, f[i].nlen);
		mw_str v;
		size_t k;
		int r;
		mw_str_init(&v, 0);
		for (k = 0; k < f[i].vlen; k++)
			if (!(lf && f[i].value[k] == '\r'))
				(void)mw_str_appendc(&v, f[i].value[k]);
		r = mw_dkim_signer_header(s, name, mw_str_c(&v), &err);
		free(name);
		mw_str_free(&v);
		if (r < 0) {
			mw_dkim_signer_free(&s);
			return -1;
		}
	}
	if (mw_dkim_signer_eoh(s, &err) < 0)
		broken("signer_eoh", err.msg);
	for (o = 0; o < blen; o += chunk)
		if (mw_dkim_signer_body(s, body + o, blen - o < chunk ? blen - o : chunk, &err) < 0)
			broken("signer_body", err.msg);
	if (mw_dkim_signer_eom(s, sig, &err) < 0)
		broken("signer_eom", err.msg);
	mw_dkim_signer_free(&s);
	return 0;
}

/* verify - libopendkim's verdict on the message with our signature on top */
static void verify(const struct field *f, size_t n, const char *body, size_t blen,
                   const char *sigval)
{
	DKIM_STAT st;
	DKIM *v = dkim_verify(g.verifier, (const u_char *)"fuzz", NULL, &st);
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0, bh, flags;
	mw_str h;
	size_t i;
	if (v == NULL)
		broken("dkim_verify", "");
	mw_str_init(&h, 0);
	(void)mw_str_appends(&h, "DKIM-Signature: ");
	for (; *sigval != '\0'; sigval++) {
		if (*sigval == '\n')
			(void)mw_str_appendc(&h, '\r');
		(void)mw_str_appendc(&h, *sigval);
	}
	if (dkim_header(v, (u_char *)h.buf, h.len) != DKIM_STAT_OK)
		broken("dkim_header refused our DKIM-Signature", mw_str_c(&h));
	for (i = 0; i < n; i++) {
		h.len = 0;
		(void)mw_str_append(&h, f[i].name, f[i].nlen);
		(void)mw_str_appendc(&h, ':');
		(void)mw_str_append(&h, f[i].value, f[i].vlen);
		st = dkim_header(v, (u_char *)h.buf, h.len);
		if (st != DKIM_STAT_OK)
			break;
	}
	if (st == DKIM_STAT_OK)
		st = dkim_eoh(v);
	if (st != DKIM_STAT_OK) {
		/* libopendkim refuses the message itself (a field name with ';', a From it cannot
		   parse): no verdict on the canonical forms to compare */
		mw_str_free(&h);
		(void)dkim_free(v);
		return;
	}
	if (blen > 0 && dkim_body(v, (u_char *)body, blen) != DKIM_STAT_OK)
		broken("dkim_body", "");
	st = dkim_eom(v, NULL);
	if (dkim_getsiglist(v, &sigs, &nsigs) != DKIM_STAT_OK || nsigs != 1)
		broken("no signature seen", dkim_getresultstr(st));
	bh = dkim_sig_getbh(sigs[0]);
	flags = (int)dkim_sig_getflags(sigs[0]);
	if (bh != DKIM_SIGBH_MATCH)
		broken(
		    "relaxed BODY canonicalisation differs from libopendkim (body hash mismatch)",
		    dkim_sig_geterrorstr(dkim_sig_geterror(sigs[0])));
	if ((flags & DKIM_SIGFLAG_PASSED) == 0 || st != DKIM_STAT_OK)
		broken("relaxed HEADER canonicalisation differs from libopendkim (bad signature)",
		       dkim_sig_geterrorstr(dkim_sig_geterror(sigs[0])));
	mw_str_free(&h);
	(void)dkim_free(v);
}

/* LLVMFuzzerTestOneInput - sign with ours, verify with libopendkim */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct field f[FUZZ_MAX_FIELDS];
	const char *msg = (const char *)data + 1;
	size_t n = 0, body = 0, chunk;
	mw_str values, sig;
	bool lf;

	if (size < 1)
		return 0;
	if (!g.ready)
		init();
	lf = (data[0] & 1) != 0;
	chunk = (size_t)(data[0] >> 1) + 1;
	mw_str_init(&values, 0);
	mw_str_init(&sig, 0);
	if (parse_header(msg, size - 1, &body, f, &n, &values)) {
		mw_str b;
		mw_str_init(&b, 0);
		(void)mw_str_append(&b, msg + body, size - 1 - body);
		if (b.len > 0 && b.buf[b.len - 1] != '\n')
			(void)mw_str_append(&b, "\r\n", 2);
		if (sign(f, n, b.len > 0 ? b.buf : "", b.len, lf, chunk, &sig) == 0)
			verify(f, n, b.len > 0 ? b.buf : "", b.len, mw_str_c(&sig));
		mw_str_free(&b);
	}
	mw_str_free(&values);
	mw_str_free(&sig);
	return 0;
}
