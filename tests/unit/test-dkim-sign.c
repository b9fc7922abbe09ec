/* test-dkim-sign.c - unit tests for mw-dkim-sign: signing (checked by libopendkim's verifier
 * reading the public key from a file), canonicalisation corner cases, over-signing, bad keys,
 * call order, key files, the store round trip of encrypted keys and the cache of parsed keys.
 *
 * The RSA key is generated at run time; nothing depends on DNS or the wall clock.
 */
#include "mw-build.h"
#include "mw-dkim-sign.h"
#include "mw-tagrule.h"
#include "mw-secret.h"
#include "mw-store.h"
#include "mw-test.h"
#include "mw-test-dkim.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
	char dir[64];
	char keyinfo[128]; /* DKIM_QUERY_FILE key list */
	mw_str pem, pub;
	DKIM_LIB *vlib; /* the verifier's own library handle */
} g;

/* write_file - create path with text and mode */
static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	FILE *f;
	(void)unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* group_setup - one RSA key, its record in a key file for the verifier */
static int group_setup(void **state)
{
	mw_error err = {""};
	mw_str line;
	unsigned int q = DKIM_QUERY_FILE;
	(void)state;
	(void)setenv("MW_FAKE_NOW", "1767225600", 1);
	(void)mw_strlcpy(g.dir, "/tmp/mw-test-dkim.XXXXXX", sizeof(g.dir));
	if (mkdtemp(g.dir) == NULL)
		return -1;
	mw_str_init(&g.pem, 0);
	mw_str_init(&g.pub, 0);
	if (mw_dkim_generate_rsa(2048, &g.pem, &g.pub, &err) < 0) {
		fprintf(stderr, "# keygen: %s\n", err.msg);
		return -1;
	}
	(void)snprintf(g.keyinfo, sizeof(g.keyinfo), "%s/keys.txt", g.dir);
	mw_str_init(&line, 0);
	(void)mw_str_appendf(&line, "s1._domainkey.example.org v=DKIM1; k=rsa; p=%s\n",
	                     mw_str_c(&g.pub));
	/* the rotation test's second selector (the same key under another name) */
	(void)mw_str_appendf(&line, "r2._domainkey.example.org v=DKIM1; k=rsa; p=%s\n",
	                     mw_str_c(&g.pub));
	write_file(g.keyinfo, line.buf, line.len, 0600);
	mw_str_free(&line);
	g.vlib = dkim_init(NULL, NULL);
	if (g.vlib == NULL ||
	    dkim_options(g.vlib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &q, sizeof(q)) != 0 ||
	    dkim_options(g.vlib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, g.keyinfo,
	                 strlen(g.keyinfo)) != 0)
		return -1;
	return 0;
}

/* group_teardown - remove the key files */
static int group_teardown(void **state)
{
	char cmd[128];
	(void)state;
	dkim_close(g.vlib);
	mw_str_free(&g.pem);
	mw_str_free(&g.pub);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* verify - libopendkim's verdict (the DKIM_STAT of dkim_eom) on a complete message (CRLF
   or LF) */
static DKIM_STAT verify(const char *msg, size_t len)
{
	DKIM_STAT st;
	DKIM *d = dkim_verify(g.vlib, (const unsigned char *)"v", NULL, &st);
	assert_non_null(d);
	st = mw_test_dkim_verify(d, msg, len, NULL);
	(void)dkim_free(d);
	return st;
}

struct hdr {
	const char *name, *value;
};

struct sign_case {
	const char *what;
	struct hdr hdrs[8];
	const char *body;   /* as fed to the signer */
	size_t chunk;       /* 0 = in one piece */
	const char *vbody;  /* the body the verifier sees (NULL = body) */
	const char *extra;  /* a header line prepended for the verifier (NULL = none) */
	const char *append; /* a header line appended after the others (NULL = none) */
	bool valid;
};

/* sign_msg - sign hdrs+body, build the signed message as the verifier will see it */
static void sign_msg(const struct sign_case *c, mw_str *out)
{
	mw_error err = {""};
	mw_dkim_key *key = mw_dkim_key_new("example.org", "s1", g.pem.buf, g.pem.len, &err);
	mw_dkim_signer *s;
	mw_str sig;
	size_t i, len = strlen(c->body);
	assert_non_null(key);
	s = mw_dkim_signer_new(key, "t", NULL, &err);
	mw_dkim_key_free(&key); /* the signer keeps what it needs */
	assert_non_null(s);
	for (i = 0; c->hdrs[i].name != NULL; i++)
		assert_int_equal(mw_dkim_signer_header(s, c->hdrs[i].name, c->hdrs[i].value, &err),
		                 0);
	assert_int_equal(mw_dkim_signer_eoh(s, &err), 0);
	if (c->chunk == 0) {
		assert_int_equal(mw_dkim_signer_body(s, c->body, len, &err), 0);
	} else {
		for (i = 0; i < len; i += c->chunk)
			assert_int_equal(
			    mw_dkim_signer_body(s, c->body + i,
			                        len - i < c->chunk ? len - i : c->chunk, &err),
			    0);
	}
	mw_str_init(&sig, 0);
	assert_int_equal(mw_dkim_signer_eom(s, &sig, &err), 0);
	/* the value is ready for smfi_insheader: no CR, no leading blank, no final newline */
	assert_null(strchr(sig.buf, '\r'));
	assert_true(sig.buf[0] != ' ' && sig.buf[sig.len - 1] != '\n');
	assert_non_null(strstr(sig.buf, "a=rsa-sha256"));
	assert_non_null(strstr(sig.buf, "c=relaxed/relaxed"));
	assert_non_null(strstr(sig.buf, "d=example.org"));
	/* out of order after the end: refused, no crash */
	assert_int_equal(mw_dkim_signer_body(s, "x", 1, &err), -1);
	mw_dkim_signer_free(&s);
	assert_null(s);

	if (c->extra != NULL)
		(void)mw_str_appendf(out, "%s\n", c->extra);
	(void)mw_str_appendf(out, "DKIM-Signature: %s\n", mw_str_c(&sig));
	for (i = 0; c->hdrs[i].name != NULL; i++)
		(void)mw_str_appendf(out, "%s:%s%s\n", c->hdrs[i].name,
		                     c->hdrs[i].value[0] == ' ' ? "" : " ", c->hdrs[i].value);
	if (c->append != NULL)
		(void)mw_str_appendf(out, "%s\n", c->append);
	(void)mw_str_appendf(out, "\n%s", c->vbody != NULL ? c->vbody : c->body);
	mw_str_free(&sig);
}

#define STD_HDRS                                                                                   \
	{"From", "Alice <alice@example.org>"}, {"To", "bob@example.net"}, {"Subject", "hello"},    \
	    {"Date", "Thu, 01 Jan 2026 00:00:00 +0000"},                                           \
	{                                                                                          \
		"Message-ID", "<1@example.org>"                                                    \
	}

static const struct sign_case sign_cases[] = {
    {"plain", {STD_HDRS}, "Hello\r\nWorld\r\n", 0, NULL, NULL, NULL, true},
    {"LF body, CRLF on the wire",
     {STD_HDRS},
     "Hello\nWorld\n",
     0,
     "Hello\r\nWorld\r\n",
     NULL,
     NULL,
     true},
    {"empty body", {STD_HDRS}, "", 0, NULL, NULL, NULL, true},
    {"empty body vs CRLF", {STD_HDRS}, "", 0, "\r\n", NULL, NULL, true},
    {"trailing blank lines", {STD_HDRS}, "a\r\n\r\n\r\n\r\n", 0, "a\r\n", NULL, NULL, true},
    {"one-byte chunks",
     {STD_HDRS},
     "line one\r\nline  two \r\n\r\nend\r\n",
     1,
     NULL,
     NULL,
     NULL,
     true},
    {"relaxed: inner and trailing blanks",
     {STD_HDRS},
     "a  b \t\r\nc\r\n",
     3,
     "a b\r\nc\r\n",
     NULL,
     NULL,
     true},
    {"folded header (LF)",
     {{"From", "alice@example.org"}, {"Subject", "a long\n\tfolded subject"}, {NULL, NULL}},
     "x\r\n",
     0,
     NULL,
     NULL,
     NULL,
     true},
    {"folded header (CRLF)",
     {{"From", "alice@example.org"}, {"Subject", " a long\r\n  folded subject"}, {NULL, NULL}},
     "x\r\n",
     0,
     NULL,
     NULL,
     NULL,
     true},
    /* found by tests/fuzz/fuzz-dkimcanon.c: a bare CR was hashed as content */
    {"bare CR ends a line (RFC 6376 5.3)",
     {STD_HDRS},
     "a\rb\r\nc\r",
     0,
     "a\r\nb\r\nc\r\n",
     NULL,
     NULL,
     true},
    {"bare CR before CRLF, one-byte chunks",
     {STD_HDRS},
     "x\r\r\ny  \r",
     1,
     "x\r\n\r\ny\r\n",
     NULL,
     NULL,
     true},
    {"unsigned header may be added", {STD_HDRS}, "x\r\n", 0, NULL, "Received: by x", NULL, true},
    {"body tampered", {STD_HDRS}, "Pay 10\r\n", 0, "Pay 99\r\n", NULL, NULL, false},
    {"body appended", {STD_HDRS}, "a\r\n", 0, "a\r\nb\r\n", NULL, NULL, false},
    {"second From added (over-signed)",
     {STD_HDRS},
     "x\r\n",
     0,
     NULL,
     NULL,
     "From: mallory@example.org",
     false},
    {"second Subject added (over-signed)",
     {STD_HDRS},
     "x\r\n",
     0,
     NULL,
     NULL,
     "Subject: urgent",
     false},
    {"missing To added later (over-signed)",
     {{"From", "alice@example.org"}, {"Subject", "s"}, {NULL, NULL}},
     "x\r\n",
     0,
     NULL,
     NULL,
     "To: victim@example.net",
     false},
    /* issue 16 item 6: every signed name is over-signed, present or not */
    {"Reply-To added", {STD_HDRS}, "x\r\n", 0, NULL, NULL, "Reply-To: mallory@evil.example", false},
    {"Cc added", {STD_HDRS}, "x\r\n", 0, NULL, NULL, "Cc: victim@example.net", false},
    {"Sender added", {STD_HDRS}, "x\r\n", 0, NULL, NULL, "Sender: mallory@evil.example", false},
    {"In-Reply-To added", {STD_HDRS}, "x\r\n", 0, NULL, NULL, "In-Reply-To: <x@y>", false},
    {"References added", {STD_HDRS}, "x\r\n", 0, NULL, NULL, "References: <x@y>", false},
    {"MIME-Version added", {STD_HDRS}, "x\r\n", 0, NULL, NULL, "MIME-Version: 1.0", false},
    {"Content-Transfer-Encoding added",
     {STD_HDRS},
     "x\r\n",
     0,
     NULL,
     NULL,
     "Content-Transfer-Encoding: base64",
     false},
    {"second Content-Type added",
     {STD_HDRS, {"MIME-Version", "1.0"}, {"Content-Type", "text/plain"}},
     "x\r\n",
     0,
     NULL,
     NULL,
     "Content-Type: text/html",
     false},
    {"second List-Id added (wildcard name, present)",
     {STD_HDRS, {"List-Id", "<a.example.org>"}},
     "x\r\n",
     0,
     NULL,
     NULL,
     "List-Id: <b.example.org>",
     false},
    {"Content-Type, untouched",
     {STD_HDRS, {"MIME-Version", "1.0"}, {"Content-Type", "text/plain"}},
     "x\r\n",
     0,
     NULL,
     NULL,
     NULL,
     true},
};

/* test_sign_table - every sign case verifies (or fails) as the table says */
static void test_sign_table(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(sign_cases); i++) {
		mw_str m;
		DKIM_STAT st;
		mw_str_init(&m, 0);
		sign_msg(&sign_cases[i], &m);
		st = verify(m.buf, m.len);
		if ((st == DKIM_STAT_OK) != sign_cases[i].valid)
			fail_msg("case \"%s\": verifier said %s", sign_cases[i].what,
			         dkim_getresultstr(st));
		mw_str_free(&m);
	}
}

/* test_signed_fields_cap - at most MW_DKIM_SIGNED_FIELDS_MAX fields are signed (170 000 To:
   fields took 6 s and made a 524 KB signature): one more fails with too_many; fields that
   are not signed do not count, and a message at the cap signs and verifies */
static void test_signed_fields_cap(void **state)
{
	mw_error err = {""};
	mw_dkim_key *key = mw_dkim_key_new("example.org", "s1", g.pem.buf, g.pem.len, &err);
	mw_dkim_signer *s;
	mw_str sig, m;
	size_t i;
	(void)state;
	assert_non_null(key);

	s = mw_dkim_signer_new(key, NULL, NULL, &err);
	assert_non_null(s);
	mw_str_init(&m, 0);
	assert_int_equal(mw_dkim_signer_header(s, "From", "a@example.org", &err), 0);
	(void)mw_str_appends(&m, "From: a@example.org\r\n");
	for (i = 0; i < 1000; i++) {
		assert_int_equal(mw_dkim_signer_header(s, "X-Unsigned", "1", &err), 0);
		(void)mw_str_appends(&m, "X-Unsigned: 1\r\n");
	}
	for (i = 1; i < MW_DKIM_SIGNED_FIELDS_MAX; i++) {
		assert_int_equal(mw_dkim_signer_header(s, "To", "b@example.net", &err), 0);
		(void)mw_str_appends(&m, "To: b@example.net\r\n");
	}
	assert_false(mw_dkim_signer_too_many(s));
	assert_int_equal(mw_dkim_signer_eoh(s, &err), 0);
	assert_int_equal(mw_dkim_signer_body(s, "x\r\n", 3, &err), 0);
	mw_str_init(&sig, 0);
	assert_int_equal(mw_dkim_signer_eom(s, &sig, &err), 0);
	assert_true(sig.len < 8192);
	{
		mw_str full;
		mw_str_init(&full, 0);
		(void)mw_str_appendf(&full, "DKIM-Signature: %s\r\n%s\r\nx\r\n", mw_str_c(&sig),
		                     mw_str_c(&m));
		assert_int_equal(verify(full.buf, full.len), DKIM_STAT_OK);
		mw_str_free(&full);
	}
	mw_str_free(&sig);
	mw_str_free(&m);
	mw_dkim_signer_free(&s);

	s = mw_dkim_signer_new(key, NULL, NULL, &err);
	assert_non_null(s);
	assert_int_equal(mw_dkim_signer_header(s, "From", "a@example.org", &err), 0);
	for (i = 1; i < MW_DKIM_SIGNED_FIELDS_MAX; i++)
		assert_int_equal(mw_dkim_signer_header(s, "To", "b@example.net", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "to", "c@example.net", &err), -1);
	assert_true(mw_dkim_signer_too_many(s));
	assert_non_null(strstr(err.msg, "more than"));
	assert_int_equal(mw_dkim_signer_eoh(s, &err), -1);
	mw_dkim_signer_free(&s);
	assert_false(mw_dkim_signer_too_many(NULL));
	mw_dkim_key_free(&key);
}

/* test_header_list - the configured list is what h= names, From always included */
static void test_header_list(void **state)
{
	mw_error err = {""};
	mw_dkim_key *key = mw_dkim_key_new("example.org", "s1", g.pem.buf, g.pem.len, &err);
	mw_dkim_signer *s;
	mw_str sig;
	(void)state;
	assert_non_null(key);
	s = mw_dkim_signer_new(key, NULL, "subject, x-custom", &err);
	assert_non_null(s);
	assert_int_equal(mw_dkim_signer_header(s, "From", "a@example.org", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "X-Custom", "1", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "Subject", "s", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "X-Other", "1", &err), 0);
	assert_int_equal(mw_dkim_signer_eoh(s, &err), 0);
	mw_str_init(&sig, 0);
	assert_int_equal(mw_dkim_signer_eom(s, &sig, &err), 0);
	assert_non_null(strstr(sig.buf, "h=From:X-Custom:Subject:"));
	assert_null(strstr(sig.buf, "X-Other"));
	mw_str_free(&sig);
	mw_dkim_signer_free(&s);
	/* a field name with ';' (RFC 5322 allows it) matching the list is not signed: in h= it
	   would end the tag and start the sender's own tags, here a body length of 0 (found by
	   tests/fuzz/fuzz-dkimcanon.c) */
	s = mw_dkim_signer_new(key, NULL, "list-*", &err);
	assert_non_null(s);
	assert_int_equal(mw_dkim_signer_header(s, "From", "a@example.org", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "List-Id", "<l.example.org>", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "List-X;l=0;z=", "1", &err), 0);
	assert_int_equal(mw_dkim_signer_eoh(s, &err), 0);
	mw_str_init(&sig, 0);
	assert_int_equal(mw_dkim_signer_eom(s, &sig, &err), 0);
	/* From and List-Id signed and over-signed; the ';' name nowhere */
	assert_non_null(strstr(sig.buf, "h=From:List-Id:"));
	assert_null(strstr(sig.buf, "List-X"));
	assert_null(strstr(sig.buf, "l=0"));
	mw_str_free(&sig);
	mw_dkim_signer_free(&s);
	/* regex metacharacters and empty lists are refused */
	assert_null(mw_dkim_signer_new(key, NULL, "from|.*", &err));
	assert_null(mw_dkim_signer_new(key, NULL, " , ", &err));
	/* the glob (mw_tagrule_glob): '*' any run, case-insensitive, the whole name */
	s = mw_dkim_signer_new(key, NULL, "X-*-ID, *-Date", &err);
	assert_non_null(s);
	assert_int_equal(mw_dkim_signer_header(s, "From", "a@example.org", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "x-mailer-id", "1", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "X-ID", "2", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "Resent-Date", "3", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "Resent-Dates", "4", &err), 0);
	assert_int_equal(mw_dkim_signer_eoh(s, &err), 0);
	mw_str_init(&sig, 0);
	assert_int_equal(mw_dkim_signer_eom(s, &sig, &err), 0);
	assert_non_null(strstr(sig.buf, "x-mailer-id:"));
	assert_non_null(strstr(sig.buf, "Resent-Date:"));
	assert_null(strstr(sig.buf, "X-ID:"));
	assert_null(strstr(sig.buf, "Resent-Dates"));
	mw_str_free(&sig);
	mw_dkim_signer_free(&s);
	{
		char longname[MW_TAGRULE_VALUE_MAX + 2];
		memset(longname, 'x', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		assert_null(mw_dkim_signer_new(key, NULL, longname, &err));
	}
	mw_dkim_key_free(&key);
}

/* test_call_order - out-of-order and hostile calls fail cleanly */
static void test_call_order(void **state)
{
	mw_error err = {""};
	mw_dkim_key *key = mw_dkim_key_new("example.org", "s1", g.pem.buf, g.pem.len, &err);
	mw_dkim_signer *s;
	mw_str sig, big;
	(void)state;
	mw_str_init(&sig, 0);
	s = mw_dkim_signer_new(key, NULL, NULL, &err);
	assert_int_equal(mw_dkim_signer_body(s, "x", 1, &err), -1);
	assert_non_null(strstr(err.msg, "order"));
	assert_int_equal(mw_dkim_signer_eoh(s, &err), -1); /* poisoned */
	mw_dkim_signer_free(&s);

	s = mw_dkim_signer_new(key, NULL, NULL, &err);
	assert_int_equal(mw_dkim_signer_header(s, "Bad Name", "x", &err), -1);
	mw_dkim_signer_free(&s);
	s = mw_dkim_signer_new(key, NULL, NULL, &err);
	assert_int_equal(mw_dkim_signer_header(s, "", "x", &err), -1);
	mw_dkim_signer_free(&s);
	s = mw_dkim_signer_new(key, NULL, NULL, &err);
	mw_str_init(&big, 0);
	while (big.len <= MW_DKIM_HEADER_MAX)
		(void)mw_str_appends(&big, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ");
	assert_int_equal(mw_dkim_signer_header(s, "Subject", big.buf, &err), -1);
	mw_str_free(&big);
	mw_dkim_signer_free(&s);

	s = mw_dkim_signer_new(key, NULL, NULL, &err);
	assert_int_equal(mw_dkim_signer_eom(s, &sig, &err), -1);
	mw_dkim_signer_free(&s);
	assert_null(mw_dkim_signer_new(NULL, NULL, NULL, &err));
	mw_dkim_signer_free(NULL);
	mw_str_free(&sig);
	mw_dkim_key_free(&key);
}

/* pem_of - PEM of a fresh key of an OpenSSL type (PKCS#8, optionally encrypted) */
static void pem_of(const char *type, size_t bits, bool encrypted, mw_str *out)
{
	EVP_PKEY *k = bits > 0 ? EVP_PKEY_Q_keygen(NULL, NULL, type, bits)
	                       : EVP_PKEY_Q_keygen(NULL, NULL, type, "P-256");
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	assert_non_null(k);
	assert_int_equal(PEM_write_bio_PrivateKey(b, k, encrypted ? EVP_aes_128_cbc() : NULL,
	                                          encrypted ? (unsigned char *)"pw" : NULL,
	                                          encrypted ? 2 : 0, NULL, NULL),
	                 1);
	n = BIO_get_mem_data(b, &data);
	(void)mw_str_append(out, data, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(k);
}

/* test_bad_keys - every bad key is a clear error, never a crash */
static void test_bad_keys(void **state)
{
	static const char *const texts[] = {
	    "",
	    "not a key",
	    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	    "-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----\n",
	};
	mw_error err = {""};
	mw_str p;
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(texts); i++) {
		err.msg[0] = '\0';
		assert_null(mw_dkim_key_new("example.org", "s1", texts[i], strlen(texts[i]), &err));
		assert_true(err.msg[0] != '\0');
	}
	/* truncated real key */
	assert_null(mw_dkim_key_new("example.org", "s1", g.pem.buf, g.pem.len / 2, &err));
	/* a key in a buffer of exactly its length, no NUL after it (as a BIO or a file read
	   gives it): nothing past pem_len is read (found by tests/fuzz/fuzz-dkimcanon.c) */
	{
		char *exact = malloc(g.pem.len);
		mw_dkim_key *k;
		assert_non_null(exact);
		memcpy(exact, g.pem.buf, g.pem.len);
		k = mw_dkim_key_new("example.org", "s1", exact, g.pem.len, &err);
		assert_non_null(k);
		mw_dkim_key_free(&k);
		free(exact);
	}
	/* a short RSA key */
	mw_str_init(&p, 0);
	pem_of("RSA", 512, false, &p);
	assert_null(mw_dkim_key_new("example.org", "s1", p.buf, p.len, &err));
	assert_non_null(strstr(err.msg, "512 bits"));
	/* an EC key */
	mw_str_reset(&p);
	pem_of("EC", 0, false, &p);
	assert_null(mw_dkim_key_new("example.org", "s1", p.buf, p.len, &err));
	assert_non_null(strstr(err.msg, "neither RSA nor Ed25519"));
	/* a passphrase-protected key */
	mw_str_reset(&p);
	pem_of("RSA", 1024, true, &p);
	assert_null(mw_dkim_key_new("example.org", "s1", p.buf, p.len, &err));
	assert_non_null(strstr(err.msg, "passphrase"));
	/* Ed25519: accepted only when this libopendkim signs with it */
	mw_str_reset(&p);
	pem_of("ED25519", 0, false, &p);
	if (mw_dkim_ed25519_supported()) {
		mw_dkim_key *k = mw_dkim_key_new("example.org", "s1", p.buf, p.len, &err);
		assert_non_null(k);
		assert_string_equal(mw_dkim_key_algorithm(k), "ed25519-sha256");
		mw_dkim_key_free(&k);
	} else {
		assert_null(mw_dkim_key_new("example.org", "s1", p.buf, p.len, &err));
		assert_non_null(strstr(err.msg, "Ed25519"));
	}
	mw_str_free(&p);
	/* bad names */
	assert_null(mw_dkim_key_new("example", "s1", g.pem.buf, g.pem.len, &err));
	assert_null(mw_dkim_key_new("exa mple.org", "s1", g.pem.buf, g.pem.len, &err));
	assert_null(mw_dkim_key_new("example.org", "s 1", g.pem.buf, g.pem.len, &err));
	assert_null(mw_dkim_key_new("example.org", "", g.pem.buf, g.pem.len, &err));
	assert_null(mw_dkim_key_new("example.org", "a..b", g.pem.buf, g.pem.len, &err));
	/* generation sizes */
	mw_str_init(&p, 0);
	assert_int_equal(mw_dkim_generate_rsa(1024, &p, &p, &err), -1);
	mw_str_free(&p);
}

/* sig_of - KEY's base64 signature of a fixed digest (RSA PKCS#1 v1.5 is deterministic:
   two keys sign alike exactly when they are the same key) */
static void sig_of(const mw_dkim_key *key, mw_str *out)
{
	unsigned char digest[32];
	mw_error err = {""};
	memset(digest, 0x5a, sizeof(digest));
	mw_str_reset(out);
	assert_int_equal(mw_dkim_key_sign_digest(key, digest, out, &err), 0);
}

/* key_made - a key from PEM for DOMAIN that must be made, after which mw_dkim_key_parses
   must be WANT; its signature of the fixed digest in SIG_R (the key is freed again) */
static void key_made(const char *domain, const char *pem, size_t len, unsigned long want,
                     mw_str *sig_r)
{
	mw_error err = {""};
	mw_dkim_key *k = mw_dkim_key_new(domain, "s1", pem, len, &err);
	assert_non_null(k);
	assert_int_equal(mw_dkim_key_parses(), want);
	assert_string_equal(mw_dkim_key_domain(k), domain);
	sig_of(k, sig_r);
	mw_dkim_key_free(&k);
}

/* test_parsed_key_cache_by_text - the same PEM text is parsed once and signs as before,
   also after every key made from it is gone; other text (a rotated key, the same key with
   one more byte) is parsed anew; failures are never kept; a flush parses again */
static void test_parsed_key_cache_by_text(void **state)
{
	mw_error err = {""};
	mw_str s1, s2, other, longer;
	char *copy;
	unsigned long n0;
	(void)state;
	mw_str_init(&s1, 0);
	mw_str_init(&s2, 0);
	mw_str_init(&other, 0);
	mw_str_init(&longer, 0);
	mw_dkim_key_cache_flush();
	n0 = mw_dkim_key_parses();
	key_made("example.org", g.pem.buf, g.pem.len, n0 + 1, &s1);
	/* the same text from another buffer, for another domain: not parsed again, same key */
	copy = mw_strndup(g.pem.buf, g.pem.len);
	key_made("example.net", copy, g.pem.len, n0 + 1, &s2);
	free(copy);
	assert_string_equal(mw_str_c(&s1), mw_str_c(&s2));
	/* a rotated key: other text, parsed, signs differently */
	pem_of("RSA", 2048, false, &other);
	key_made("example.org", other.buf, other.len, n0 + 2, &s2);
	assert_string_not_equal(mw_str_c(&s1), mw_str_c(&s2));
	/* one byte more is other text: parsed once more (and the same key) */
	(void)mw_str_append(&longer, g.pem.buf, g.pem.len);
	(void)mw_str_appendc(&longer, '\n');
	key_made("example.org", longer.buf, longer.len, n0 + 3, &s2);
	assert_string_equal(mw_str_c(&s1), mw_str_c(&s2));
	/* a text that does not parse fails every time and leaves the count alone */
	assert_null(mw_dkim_key_new("example.org", "s1", g.pem.buf, g.pem.len / 2, &err));
	assert_null(mw_dkim_key_new("example.org", "s1", g.pem.buf, g.pem.len / 2, &err));
	assert_int_equal(mw_dkim_key_parses(), n0 + 3);
	key_made("example.org", g.pem.buf, g.pem.len, n0 + 3, &s2); /* still the first parse */
	assert_string_equal(mw_str_c(&s1), mw_str_c(&s2));
	/* after a flush the text is parsed again, and signs as it did */
	mw_dkim_key_cache_flush();
	key_made("example.org", g.pem.buf, g.pem.len, n0 + 4, &s2);
	assert_string_equal(mw_str_c(&s1), mw_str_c(&s2));
	mw_str_free(&s1);
	mw_str_free(&s2);
	mw_str_free(&other);
	mw_str_free(&longer);
}

/* test_txt_record - split into 255-byte strings that join to the record */
static void test_txt_record(void **state)
{
	mw_error err = {""};
	mw_str out, joined;
	const char *p, *q;
	(void)state;
	mw_str_init(&out, 0);
	mw_str_init(&joined, 0);
	assert_int_equal(
	    mw_dkim_txt_record("example.org", "s1", MW_DKIM_KEY_RSA, g.pub.buf, &out, &err), 0);
	assert_int_equal(strncmp(out.buf, "s1._domainkey.example.org. IN TXT ( \"", 37), 0);
	for (p = strchr(out.buf, '"'); p != NULL; p = strchr(q + 1, '"')) {
		q = strchr(p + 1, '"');
		assert_non_null(q);
		assert_true(q - p - 1 <= 255);
		(void)mw_str_append(&joined, p + 1, (size_t)(q - p - 1));
	}
	assert_int_equal(strncmp(joined.buf, "v=DKIM1; k=rsa; p=", 18), 0);
	assert_string_equal(joined.buf + 18, g.pub.buf);
	mw_str_free(&out);
	mw_str_free(&joined);
}

/* test_key_files - permissions, naming, one key per domain */
static void test_key_files(void **state)
{
	char kdir[128], path[192], path2[192];
	mw_error err = {""};
	mw_dkim_key *key = NULL;
	(void)state;
	(void)snprintf(kdir, sizeof(kdir), "%s/keys", g.dir);
	assert_int_equal(mkdir(kdir, 0700), 0);
	assert_int_equal(mw_dkim_key_from_dir(kdir, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_NONE);
	(void)snprintf(path, sizeof(path), "%s/example.org.sel1.key", kdir);
	write_file(path, g.pem.buf, g.pem.len, 0644);
	assert_int_equal(mw_dkim_key_from_dir(kdir, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_ERROR);
	assert_non_null(strstr(err.msg, "group or others"));
	assert_null(key);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(mw_dkim_key_from_dir(kdir, "EXAMPLE.org", &key, &err),
	                 MW_DKIM_LOOKUP_FOUND);
	assert_string_equal(mw_dkim_key_selector(key), "sel1");
	assert_string_equal(mw_dkim_key_domain(key), "example.org");
	mw_dkim_key_free(&key);
	/* a sub-domain's file is not the domain's; a dotted "selector" is ignored */
	(void)snprintf(path2, sizeof(path2), "%s/sub.example.org.s.key", kdir);
	write_file(path2, g.pem.buf, g.pem.len, 0600);
	(void)snprintf(path2, sizeof(path2), "%s/example.org.a.b.key", kdir);
	write_file(path2, g.pem.buf, g.pem.len, 0600);
	assert_int_equal(mw_dkim_key_lookup(NULL, NULL, kdir, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_FOUND);
	mw_dkim_key_free(&key);
	/* two keys for one domain: ambiguous */
	(void)snprintf(path2, sizeof(path2), "%s/example.org.sel2.key", kdir);
	write_file(path2, g.pem.buf, g.pem.len, 0600);
	assert_int_equal(mw_dkim_key_from_dir(kdir, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_ERROR);
	assert_non_null(strstr(err.msg, "several"));
	/* a garbage key file */
	(void)unlink(path2);
	write_file(path, "garbage\n", 8, 0600);
	assert_int_equal(mw_dkim_key_from_dir(kdir, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_ERROR);
	assert_null(key);
	/* no such directory */
	assert_int_equal(mw_dkim_key_from_dir("/nonexistent-mw", "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_ERROR);
}

/* add_key - encrypt the test key as the store does and add it */
static int add_key(mw_store *st, const mw_master_key *mk, const char *domain, const char *selector,
                   const char *ad_domain, bool active)
{
	mw_error err = {""};
	mw_str ad, enc;
	int ret;
	mw_str_init(&ad, 0);
	mw_str_init(&enc, 0);
	(void)mw_dkim_key_ad(ad_domain, selector, &ad);
	assert_int_equal(mw_secret_encrypt(mk, g.pem.buf, g.pem.len, ad.buf, &enc, &err), 0);
	ret = mw_store_dkim_key_add(st, domain, selector, "rsa", enc.buf, g.pub.buf, active, &err);
	mw_str_free(&ad);
	mw_str_free(&enc);
	return ret;
}

/* sign_with - the DKIM-Signature values a signer made from KEY gives a small message: the
   key's own into sig_r, the second key's (rotation overlap) into also_r (left empty when
   there is none) */
static void sign_with(const mw_dkim_key *key, mw_str *sig_r, mw_str *also_r)
{
	static const char body[] = "hello\r\n";
	mw_error err = {""};
	mw_dkim_signer *s = mw_dkim_signer_new(key, NULL, NULL, &err), *a;
	assert_non_null(s);
	assert_int_equal(mw_dkim_signer_header(s, "From", "a@example.org", &err), 0);
	assert_int_equal(mw_dkim_signer_header(s, "Subject", "rot", &err), 0);
	assert_int_equal(mw_dkim_signer_eoh(s, &err), 0);
	assert_int_equal(mw_dkim_signer_body(s, body, sizeof(body) - 1, &err), 0);
	assert_int_equal(mw_dkim_signer_eom(s, sig_r, &err), 0);
	a = mw_dkim_signer_also(s);
	if (a != NULL)
		assert_int_equal(mw_dkim_signer_eom(a, also_r, &err), 0);
	mw_dkim_signer_free(&s);
}

/* verify_sig - the message of sign_with carrying SIG verifies */
static void verify_sig(const mw_str *sig, const char *selector)
{
	mw_str m, want;
	mw_str_init(&m, 0);
	mw_str_init(&want, 0);
	(void)mw_str_appendf(&want, "s=%s;", selector);
	assert_non_null(strstr(sig->buf, want.buf));
	(void)mw_str_appendf(&m,
	                     "DKIM-Signature: %s\r\nFrom: a@example.org\r\nSubject: rot\r\n"
	                     "\r\nhello\r\n",
	                     mw_str_c(sig));
	assert_int_equal(verify(m.buf, m.len), DKIM_STAT_OK);
	mw_str_free(&m);
	mw_str_free(&want);
}

/* test_store_rotation_overlap - a rotation's retiring key signs beside the active one (two
   signatures, both verify); the pending key never signs; once retired, one signature */
static void test_store_rotation_overlap(void **state)
{
	char url[128], mkpath[128];
	mw_error err = {""};
	mw_master_key mk;
	mw_dkim_key *key = NULL;
	mw_str sig, also, ad, enc;
	mw_store *st;
	(void)state;
	(void)snprintf(url, sizeof(url), "sqlite:%s/rot.db", g.dir);
	(void)snprintf(mkpath, sizeof(mkpath), "%s/rot.key", g.dir);
	assert_int_equal(mw_secret_key_create(mkpath, &err), 0);
	assert_int_equal(mw_secret_key_load(mkpath, &mk, &err), 0);
	st = mw_store_open(url, 1000, &err);
	assert_non_null(st);
	assert_int_equal(mw_store_migrate(st, &err), 0);
	assert_int_equal(add_key(st, &mk, "example.org", "s1", "example.org", true), MW_STORE_OK);
	mw_str_init(&ad, 0);
	mw_str_init(&enc, 0);
	(void)mw_dkim_key_ad("example.org", "r2", &ad);
	assert_int_equal(mw_secret_encrypt(&mk, g.pem.buf, g.pem.len, ad.buf, &enc, &err), 0);
	assert_int_equal(
	    mw_store_dkim_key_add_pending(st, "example.org", "r2", "rsa", enc.buf, g.pub.buf, &err),
	    MW_STORE_OK);
	mw_str_free(&ad);
	mw_str_free(&enc);

	/* pending: s1 alone signs */
	mw_str_init(&sig, 0);
	mw_str_init(&also, 0);
	assert_int_equal(mw_dkim_key_from_store(st, &mk, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_FOUND);
	assert_string_equal(mw_dkim_key_selector(key), "s1");
	assert_null(mw_dkim_key_also(key));
	sign_with(key, &sig, &also);
	assert_int_equal(also.len, 0);
	verify_sig(&sig, "s1");
	mw_dkim_key_free(&key);

	/* overlap: r2 signs, s1 beside it */
	assert_int_equal(mw_store_dkim_key_promote(st, "example.org", "r2", 100, 200, &err),
	                 MW_STORE_OK);
	assert_int_equal(mw_dkim_key_from_store(st, &mk, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_FOUND);
	assert_string_equal(mw_dkim_key_selector(key), "r2");
	assert_non_null(mw_dkim_key_also(key));
	assert_string_equal(mw_dkim_key_selector(mw_dkim_key_also(key)), "s1");
	mw_str_reset(&sig);
	sign_with(key, &sig, &also);
	verify_sig(&sig, "r2");
	verify_sig(&also, "s1");
	mw_dkim_key_free(&key);

	/* retired: r2 alone */
	assert_int_equal(mw_store_dkim_key_retire(st, "example.org", "s1", 200, &err), MW_STORE_OK);
	assert_int_equal(mw_dkim_key_from_store(st, &mk, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_FOUND);
	assert_string_equal(mw_dkim_key_selector(key), "r2");
	assert_null(mw_dkim_key_also(key));
	mw_dkim_key_free(&key);
	mw_str_free(&sig);
	mw_str_free(&also);
	mw_store_close(&st);
	mw_secret_key_wipe(&mk);
}

/* test_store_round_trip - encrypted keys in the store: add, active, list, wrong key, delete */
static void test_store_round_trip(void **state)
{
	char url[128], mkpath[128], mkpath2[128];
	mw_error err = {""};
	mw_master_key mk, mk2;
	struct mw_dkim_key_row row, *rows = NULL;
	size_t n = 0;
	mw_dkim_key *key = NULL;
	mw_store *st;
	(void)state;
	(void)snprintf(url, sizeof(url), "sqlite:%s/s.db", g.dir);
	(void)snprintf(mkpath, sizeof(mkpath), "%s/master.key", g.dir);
	(void)snprintf(mkpath2, sizeof(mkpath2), "%s/other.key", g.dir);
	assert_int_equal(mw_secret_key_create(mkpath, &err), 0);
	assert_int_equal(mw_secret_key_create(mkpath2, &err), 0);
	assert_int_equal(mw_secret_key_load(mkpath, &mk, &err), 0);
	assert_int_equal(mw_secret_key_load(mkpath2, &mk2, &err), 0);
	st = mw_store_open(url, 1000, &err);
	assert_non_null(st);
	assert_int_equal(mw_store_migrate(st, &err), 0);

	assert_int_equal(mw_dkim_key_from_store(st, &mk, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_NONE);
	assert_int_equal(add_key(st, &mk, "example.org", "s1", "example.org", true), MW_STORE_OK);
	assert_int_equal(add_key(st, &mk, "example.org", "s1", "example.org", true),
	                 MW_STORE_EXISTS);
	assert_int_equal(add_key(st, &mk, "example.org", "s2", "example.org", true), MW_STORE_OK);
	/* s2 is active now, s1 not */
	assert_int_equal(mw_store_dkim_key_get_active(st, "example.org", &row, &err), MW_STORE_OK);
	assert_string_equal(row.selector, "s2");
	assert_string_equal(row.key_type, "rsa");
	assert_string_equal(row.public_key, g.pub.buf);
	assert_int_equal(strncmp(row.private_key, "v1:", 3), 0);
	assert_null(strstr(row.private_key, "PRIVATE"));
	mw_dkim_key_row_clear(&row);
	assert_int_equal(mw_store_dkim_key_set_active(st, "example.org", "s1", &err), MW_STORE_OK);
	assert_int_equal(mw_store_dkim_key_set_active(st, "example.org", "nope", &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_store_dkim_key_list(st, NULL, &rows, &n, &err), MW_STORE_OK);
	assert_int_equal(n, 2);
	assert_true(rows[0].active && !rows[1].active);
	mw_dkim_key_rows_free(rows, n);

	/* round trip: the decrypted key signs as s1 */
	assert_int_equal(mw_dkim_key_lookup(st, &mk, NULL, "Example.Org", &key, &err),
	                 MW_DKIM_LOOKUP_FOUND);
	assert_string_equal(mw_dkim_key_selector(key), "s1");
	mw_dkim_key_free(&key);
	/* the wrong master key fails with a clear message */
	assert_int_equal(mw_dkim_key_from_store(st, &mk2, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_ERROR);
	assert_non_null(strstr(err.msg, "cannot decrypt"));
	assert_null(key);
	/* a row encrypted for another domain (moved) does not decrypt */
	assert_int_equal(add_key(st, &mk, "example.net", "s1", "example.org", true), MW_STORE_OK);
	assert_int_equal(mw_dkim_key_from_store(st, &mk, "example.net", &key, &err),
	                 MW_DKIM_LOOKUP_ERROR);
	/* bad arguments */
	assert_int_equal(add_key(st, &mk, "Example.org", "s3", "example.org", true),
	                 MW_STORE_ERROR);
	assert_int_equal(
	    mw_store_dkim_key_add(st, "example.org", "s9", "rsa", "plain", "AAAA", true, &err),
	    MW_STORE_ERROR);
	assert_int_equal(
	    mw_store_dkim_key_add(st, "example.org", "s9", "dsa", "v1:x", "AAAA", true, &err),
	    MW_STORE_ERROR);
	assert_int_equal(mw_store_dkim_key_get(st, "example.org", "x;y", &row, &err),
	                 MW_STORE_NOTFOUND);
	/* delete */
	assert_int_equal(mw_store_dkim_key_delete(st, "example.org", "s1", &err), MW_STORE_OK);
	assert_int_equal(mw_store_dkim_key_delete(st, "example.org", "s1", &err),
	                 MW_STORE_NOTFOUND);
	assert_int_equal(mw_dkim_key_from_store(st, &mk, "example.org", &key, &err),
	                 MW_DKIM_LOOKUP_NONE);
	mw_store_close(&st);
	mw_secret_key_wipe(&mk);
	mw_secret_key_wipe(&mk2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sign_table),
	    cmocka_unit_test(test_header_list),
	    cmocka_unit_test(test_signed_fields_cap),
	    cmocka_unit_test(test_call_order),
	    cmocka_unit_test(test_bad_keys),
	    cmocka_unit_test(test_parsed_key_cache_by_text),
	    cmocka_unit_test(test_txt_record),
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_store_round_trip),
	    cmocka_unit_test(test_store_rotation_overlap),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
