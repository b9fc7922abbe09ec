/* mw-arc.c - ARC (RFC 8617) chain verification and sealing, on OpenSSL.
 *
 * Public: mw_arc_verify_new, mw_arc_verify_free, mw_arc_verify_header, mw_arc_verify_eoh,
 * mw_arc_verify_body, mw_arc_verify_eom, mw_arc_seal.
 *
 * Every header field is kept (as received, with CRLF line ends) because ARC-Message-Signature
 * may sign any of them, chosen bottom-up per name as DKIM does (RFC 6376 5.4.2). At the end
 * of the header the ARC sets are parsed and checked for structure; the body is then hashed
 * in the newest ARC-Message-Signature's canonicalisation (and in relaxed form for a seal of
 * ours). At the end of the message the newest AMS and every ARC-Seal are verified (RFC 8617
 * 5.2): keys come from SELECTOR._domainkey.DOMAIN TXT through mw-dns (rsa-sha256,
 * ed25519-sha256; RSA keys shorter than 1024 bits are refused as RFC 8301 asks).
 *
 * Diagnostics: none logged; the result carries a short reason.
 */
#include "mw-build.h"
#include "mw-arc.h"
#include "mw-dkim-sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define MAX_FIELDS   1000 /* header fields kept (mw-authcheck refuses more first) */
#define MAX_TAGS     24
#define KEY_TXT_MAX  4096
#define SIG_MAX      1024 /* decoded signature bytes (RSA 8192 = 1024) */
#define RSA_MIN_BITS 1024

struct field {
	size_t off, name_len, len; /* in v->store: "Name:value" without the final CRLF */
};

struct tag {
	const char *name, *val;
	size_t nlen, vlen;
};

/* a streaming body canonicaliser (RFC 6376 3.4.3 simple, 3.4.4 relaxed) with SHA-256 */
struct bodyhash {
	EVP_MD_CTX *md;
	bool relaxed, on;
	size_t crlfs; /* empty lines held back (trailing ones are dropped) */
	bool wsp;     /* relaxed: blanks held back inside a line */
	bool in_line; /* a line has content */
	bool cr;      /* a CR was seen, LF expected */
	bool any;     /* something was hashed */
};

struct arc_set {
	int as, ams, aar; /* field indices, -1 = none */
};

struct mw_arc_verify {
	mw_str store;
	struct field *fields;
	size_t nfields;
	bool overflow;
	unsigned sets;
	struct arc_set set[MW_ARC_MAX_SETS + 1];
	bool structural_fail;
	char reason[96];
	struct bodyhash bh_ams;     /* in AMS(N)'s body canonicalisation */
	struct bodyhash bh_relaxed; /* for a seal of ours */
	bool done_body;
	bool finished; /* the body digests are final */
	unsigned char digest_ams[32], digest_relaxed[32];
};

/* ---- tag lists (RFC 6376 3.2) ------------------------------------------------------- */

/* is_wsp - blank or line break (FWS) */
static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* parse_tags - tag=value; ... into tags; -1 on a malformed list or a repeated tag */
static int parse_tags(const char *s, size_t len, struct tag *tags, size_t *ntags_r)
{
	const char *p = s, *end = s + len;
	size_t n = 0, i;

	while (p < end) {
		const char *ts = p, *te, *eq, *vs, *ve, *semi;

		semi = memchr(p, ';', (size_t)(end - p));
		te = semi != NULL ? semi : end;
		p = semi != NULL ? semi + 1 : end;
		while (ts < te && is_wsp(*ts))
			ts++;
		if (ts == te) {
			if (semi == NULL)
				break; /* a final ';' */
			return -1;
		}
		eq = memchr(ts, '=', (size_t)(te - ts));
		if (eq == NULL || n >= MAX_TAGS)
			return -1;
		vs = eq + 1;
		ve = te;
		te = eq;
		while (te > ts && is_wsp(te[-1]))
			te--;
		while (vs < ve && is_wsp(*vs))
			vs++;
		while (ve > vs && is_wsp(ve[-1]))
			ve--;
		if (te == ts)
			return -1;
		for (i = 0; i < n; i++)
			if (tags[i].nlen == (size_t)(te - ts) &&
			    memcmp(tags[i].name, ts, tags[i].nlen) == 0)
				return -1; /* RFC 6376: a repeated tag makes the list invalid */
		tags[n].name = ts;
		tags[n].nlen = (size_t)(te - ts);
		tags[n].val = vs;
		tags[n].vlen = (size_t)(ve - vs);
		n++;
	}
	*ntags_r = n;
	return 0;
}

/* tag_get - the value of tag NAME, or NULL */
static const struct tag *tag_get(const struct tag *tags, size_t n, const char *name)
{
	size_t i, l = strlen(name);
	for (i = 0; i < n; i++)
		if (tags[i].nlen == l && memcmp(tags[i].name, name, l) == 0)
			return &tags[i];
	return NULL;
}

/* tag_copy - a tag's value as a string into out (size); -1 when absent or too long */
static int tag_copy(const struct tag *t, char *out, size_t size)
{
	if (t == NULL || t->vlen >= size)
		return -1;
	memcpy(out, t->val, t->vlen);
	out[t->vlen] = '\0';
	return 0;
}

/* tag_is - the value equals WORD */
static bool tag_is(const struct tag *t, const char *word)
{
	return t != NULL && t->vlen == strlen(word) && memcmp(t->val, word, t->vlen) == 0;
}

/* parse_instance - "i=N" value 1..50; -1 otherwise */
static int parse_instance(const struct tag *t)
{
	unsigned v = 0;
	size_t i;
	if (t == NULL || t->vlen == 0 || t->vlen > 2 || t->val[0] == '0')
		return -1;
	for (i = 0; i < t->vlen; i++) {
		if (t->val[i] < '0' || t->val[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(t->val[i] - '0');
	}
	return v >= 1 && v <= MW_ARC_MAX_SETS ? (int)v : -1;
}

/* b64_decode - base64 with FWS anywhere into out; the decoded length or -1 */
static long b64_decode(const char *s, size_t len, unsigned char *out, size_t outsize)
{
	char *clean = mw_malloc(len + 1);
	size_t n = 0, i, pad = 0;
	int r;

	for (i = 0; i < len; i++)
		if (!is_wsp(s[i]))
			clean[n++] = s[i];
	clean[n] = '\0';
	if (n == 0 || n % 4 != 0 || (n / 4) * 3 > outsize) {
		free(clean);
		return -1;
	}
	if (clean[n - 1] == '=')
		pad++;
	if (n > 1 && clean[n - 2] == '=')
		pad++;
	r = EVP_DecodeBlock(out, (unsigned char *)clean, (int)n);
	free(clean);
	if (r < 0)
		return -1;
	return (long)r - (long)pad;
}

/* ---- canonicalisation -------------------------------------------------------------- */

/* canon_relaxed - NAME:VALUE in relaxed form (RFC 6376 3.4.2) appended to out, + CRLF when
   crlf; SKIP_B empties the value of the b= tag (the signature being verified or made) */
static void canon_relaxed(mw_str *out, const char *f, size_t len, size_t name_len, bool crlf,
                          bool skip_b)
{
	size_t i, start;
	bool wsp = false, any = false;
	const char *v = f + name_len + 1, *vend = f + len;

	for (i = 0; i < name_len; i++)
		if (!is_wsp(f[i]))
			(void)mw_str_appendc(out,
			                     (char)(f[i] >= 'A' && f[i] <= 'Z' ? f[i] + 32 : f[i]));
	(void)mw_str_appendc(out, ':');
	start = out->len;
	while (v < vend) {
		if (skip_b) {
			/* at the start of a tag named "b": copy "b=", drop the value up to ';' */
			const char *q = v;
			bool at_tag = out->len == start || out->buf[out->len - 1] == ';' ||
			              (out->buf[out->len - 1] == ' ' && out->len - 1 > start &&
			               out->buf[out->len - 2] == ';');
			if (at_tag && !is_wsp(*q) && *q == 'b') {
				q++;
				while (q < vend && is_wsp(*q))
					q++;
				if (q < vend && *q == '=') {
					if (wsp && any)
						(void)mw_str_appendc(out, ' ');
					wsp = false;
					(void)mw_str_append(out, "b=", 2);
					any = true;
					while (q < vend && *q != ';')
						q++;
					v = q;
					continue;
				}
			}
		}
		if (is_wsp(*v)) {
			if (*v == ' ' || *v == '\t')
				wsp = true;
			v++;
			continue;
		}
		if (wsp && any)
			(void)mw_str_appendc(out, ' ');
		wsp = false;
		any = true;
		(void)mw_str_appendc(out, *v++);
	}
	if (crlf)
		(void)mw_str_append(out, "\r\n", 2);
}

/* canon_simple - the field as it is, + CRLF when crlf; SKIP_B empties b= as above */
static void canon_simple(mw_str *out, const char *f, size_t len, bool crlf, bool skip_b)
{
	size_t i = 0;
	if (!skip_b) {
		(void)mw_str_append(out, f, len);
	} else {
		/* find ";b=" or ":b=" (with FWS) and drop its value */
		while (i < len) {
			(void)mw_str_appendc(out, f[i]);
			if (f[i] == ';' || f[i] == ':') {
				size_t j = i + 1;
				while (j < len && is_wsp(f[j]))
					j++;
				if (j < len && f[j] == 'b') {
					size_t k = j + 1;
					while (k < len && is_wsp(f[k]))
						k++;
					if (k < len && f[k] == '=') {
						(void)mw_str_append(out, f + i + 1,
						                    k + 1 - (i + 1));
						while (k < len && f[k] != ';')
							k++;
						i = k;
						continue;
					}
				}
			}
			i++;
		}
	}
	if (crlf)
		(void)mw_str_append(out, "\r\n", 2);
}

/* bh_init - a body hasher */
static void bh_init(struct bodyhash *b, bool relaxed)
{
	memset(b, 0, sizeof(*b));
	b->relaxed = relaxed;
	b->md = EVP_MD_CTX_new();
	b->on = b->md != NULL && EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) == 1;
}

/* bh_free - release a body hasher */
static void bh_free(struct bodyhash *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
	b->on = false;
}

/* bh_out - hash bytes */
static void bh_out(struct bodyhash *b, const char *p, size_t n)
{
	if (b->on && n > 0) {
		(void)EVP_DigestUpdate(b->md, p, n);
		b->any = true;
	}
}

/* bh_flush_crlfs - the empty lines held back, now that more content follows */
static void bh_flush_crlfs(struct bodyhash *b)
{
	while (b->crlfs > 0) {
		bh_out(b, "\r\n", 2);
		b->crlfs--;
	}
}

/* bh_feed - canonicalise and hash a chunk (CRLF line ends) */
static void bh_feed(struct bodyhash *b, const char *p, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++) {
		char c = p[i];
		if (c == '\r') {
			if (b->cr) { /* a CR not followed by LF: content */
				bh_flush_crlfs(b);
				bh_out(b, "\r", 1);
				b->in_line = true;
			}
			b->cr = true;
			continue;
		}
		if (c == '\n' && b->cr) {
			b->cr = false;
			b->wsp = false; /* relaxed: blanks at the end of a line go */
			if (b->in_line) {
				bh_out(b, "\r\n", 2);
				b->in_line = false;
			} else {
				b->crlfs++;
			}
			continue;
		}
		if (b->cr) {
			bh_flush_crlfs(b);
			bh_out(b, "\r", 1);
			b->in_line = true;
			b->cr = false;
		}
		if (b->relaxed && (c == ' ' || c == '\t')) {
			b->wsp = true;
			continue;
		}
		bh_flush_crlfs(b);
		if (b->wsp) {
			bh_out(b, " ", 1);
			b->wsp = false;
		}
		bh_out(b, &c, 1);
		b->in_line = true;
	}
}

/* bh_final - the digest: a last line without CRLF gets one; an empty body is one CRLF in
   simple form (RFC 6376 3.4.3) and nothing in relaxed form (3.4.4) */
static void bh_final(struct bodyhash *b, unsigned char out[32])
{
	unsigned int n = 32;
	if (b->cr) { /* a CR at the very end: content */
		bh_flush_crlfs(b);
		bh_out(b, "\r", 1);
		b->in_line = true;
	}
	if (b->in_line)
		bh_out(b, "\r\n", 2);
	else if (!b->relaxed && !b->any)
		bh_out(b, "\r\n", 2);
	if (b->on)
		(void)EVP_DigestFinal_ex(b->md, out, &n);
	else
		memset(out, 0, 32);
	b->on = false;
}

/* ---- verifier ---------------------------------------------------------------------- */

/* mw_arc_verify_new - a verifier for one message */
mw_arc_verify *mw_arc_verify_new(void)
{
	mw_arc_verify *v = mw_calloc(1, sizeof(*v));
	mw_str_init(&v->store, 0);
	v->fields = mw_calloc(MAX_FIELDS, sizeof(*v->fields));
	return v;
}

/* mw_arc_verify_free - free a verifier */
void mw_arc_verify_free(mw_arc_verify **vp)
{
	mw_arc_verify *v = *vp;
	if (v == NULL)
		return;
	*vp = NULL;
	bh_free(&v->bh_ams);
	bh_free(&v->bh_relaxed);
	mw_str_free(&v->store);
	free(v->fields);
	free(v);
}

/* mw_arc_verify_header - keep one header field ("Name:value", bare LF made CRLF) */
int mw_arc_verify_header(mw_arc_verify *v, const char *name, const char *value, size_t len)
{
	struct field *f;
	size_t i;

	if (v->nfields >= MAX_FIELDS) {
		v->overflow = true;
		return -1;
	}
	f = &v->fields[v->nfields++];
	f->off = v->store.len;
	f->name_len = strlen(name);
	(void)mw_str_appends(&v->store, name);
	(void)mw_str_appendc(&v->store, ':');
	for (i = 0; i < len; i++) {
		if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r'))
			(void)mw_str_appendc(&v->store, '\r');
		(void)mw_str_appendc(&v->store, value[i]);
	}
	f->len = v->store.len - f->off;
	return 0;
}

/* field_is - header field I has name NAME (case-insensitive) */
static bool field_is(const mw_arc_verify *v, size_t i, const char *name)
{
	const struct field *f = &v->fields[i];
	return f->name_len == strlen(name) &&
	       mw_ascii_strncasecmp(v->store.buf + f->off, name, f->name_len) == 0;
}

/* field_value - the value of field I (after the colon) */
static const char *field_value(const mw_arc_verify *v, size_t i, size_t *len_r)
{
	const struct field *f = &v->fields[i];
	*len_r = f->len - f->name_len - 1;
	return v->store.buf + f->off + f->name_len + 1;
}

/* fail - structural failure with a reason */
static void fail(mw_arc_verify *v, const char *why)
{
	if (!v->structural_fail)
		(void)mw_strlcpy(v->reason, why, sizeof(v->reason));
	v->structural_fail = true;
}

/* aar_instance - the i= of an ARC-Authentication-Results value ("i=N; authserv-id; ...") */
static int aar_instance(const char *s, size_t len)
{
	const char *semi = memchr(s, ';', len);
	struct tag t[1];
	size_t n;
	if (semi == NULL || parse_tags(s, (size_t)(semi - s), t, &n) < 0 || n != 1)
		return -1;
	if (t[0].nlen != 1 || t[0].name[0] != 'i')
		return -1;
	return parse_instance(&t[0]);
}

/* ams_body_relaxed - whether AMS value S asks for relaxed body canonicalisation; -1 bad c= */
static int ams_body_relaxed(const char *s, size_t len)
{
	struct tag tags[MAX_TAGS];
	const struct tag *c;
	const char *slash;
	size_t n;
	if (parse_tags(s, len, tags, &n) < 0)
		return -1;
	c = tag_get(tags, n, "c");
	if (c == NULL)
		return 0; /* simple/simple */
	slash = memchr(c->val, '/', c->vlen);
	if (slash == NULL)
		return 0; /* "relaxed" alone means relaxed/simple */
	if ((size_t)(c->val + c->vlen - slash - 1) == 7 && memcmp(slash + 1, "relaxed", 7) == 0)
		return 1;
	if ((size_t)(c->val + c->vlen - slash - 1) == 6 && memcmp(slash + 1, "simple", 6) == 0)
		return 0;
	return -1;
}

/* mw_arc_verify_eoh - find the ARC sets and check their structure */
void mw_arc_verify_eoh(mw_arc_verify *v)
{
	size_t i;
	unsigned n;
	int relaxed = 1;

	for (i = 0; i <= MW_ARC_MAX_SETS; i++)
		v->set[i].as = v->set[i].ams = v->set[i].aar = -1;
	for (i = 0; i < v->nfields; i++) {
		int *slot = NULL, inst = -1;
		size_t len;
		const char *val = field_value(v, i, &len);

		if (field_is(v, i, "ARC-Seal") || field_is(v, i, "ARC-Message-Signature")) {
			struct tag tags[MAX_TAGS];
			size_t nt;
			if (parse_tags(val, len, tags, &nt) < 0) {
				fail(v, "unparseable ARC header field");
				continue;
			}
			inst = parse_instance(tag_get(tags, nt, "i"));
			slot = NULL;
			if (inst > 0)
				slot = field_is(v, i, "ARC-Seal") ? &v->set[inst].as
				                                  : &v->set[inst].ams;
		} else if (field_is(v, i, "ARC-Authentication-Results")) {
			inst = aar_instance(val, len);
			if (inst > 0)
				slot = &v->set[inst].aar;
		} else {
			continue;
		}
		if (inst < 0) {
			fail(v, "ARC instance missing or out of range");
			continue;
		}
		if (*slot >= 0) {
			fail(v, "ARC instance repeated");
			continue;
		}
		*slot = (int)i;
		if ((unsigned)inst > v->sets)
			v->sets = (unsigned)inst;
	}
	for (n = 1; n <= v->sets; n++)
		if (v->set[n].as < 0 || v->set[n].ams < 0 || v->set[n].aar < 0)
			fail(v, "ARC set incomplete");
	if (v->overflow)
		fail(v, "too many header fields");
	if (v->sets > 0 && !v->structural_fail) {
		size_t len;
		const char *val = field_value(v, (size_t)v->set[v->sets].ams, &len);
		relaxed = ams_body_relaxed(val, len);
		if (relaxed < 0) {
			fail(v, "bad c= in ARC-Message-Signature");
			relaxed = 1;
		}
	}
	bh_init(&v->bh_relaxed, true);
	if (v->sets > 0 && relaxed == 0)
		bh_init(&v->bh_ams, false);
}

/* mw_arc_verify_body - hash a body chunk */
void mw_arc_verify_body(mw_arc_verify *v, const char *chunk, size_t len)
{
	if (len > 0)
		v->done_body = true;
	bh_feed(&v->bh_relaxed, chunk, len);
	if (v->bh_ams.md != NULL)
		bh_feed(&v->bh_ams, chunk, len);
}

/* fetch_key - the public key of SELECTOR._domainkey.DOMAIN; 0, or an mw_auth_result
   (FAIL for a missing/revoked/unusable key, TEMPERROR) with reason */
static int fetch_key(mw_dns *dns, const char *d, const char *s, const char *alg, EVP_PKEY **key_r,
                     char *reason, size_t rsize)
{
	char name[MW_DNS_NAME_MAX + 2], txt[KEY_TXT_MAX];
	unsigned char der[KEY_TXT_MAX];
	struct mw_dns_answer ans;
	enum mw_dns_status st;
	struct tag tags[MAX_TAGS];
	const struct tag *p, *k;
	size_t n;
	long dl;
	bool ed = strcmp(alg, "ed25519-sha256") == 0;

	*key_r = NULL;
	if ((size_t)snprintf(name, sizeof(name), "%s._domainkey.%s", s, d) >= sizeof(name)) {
		snprintf(reason, rsize, "key name too long");
		return MW_AUTH_FAIL;
	}
	st = mw_dns_query(dns, name, MW_DNS_TXT, &ans, NULL);
	if (st == MW_DNS_TEMPFAIL) {
		snprintf(reason, rsize, "key lookup failed temporarily");
		return MW_AUTH_TEMPERROR;
	}
	if (st != MW_DNS_OK) {
		snprintf(reason, rsize, "no key");
		return MW_AUTH_FAIL;
	}
	n = mw_strlcpy(txt, ans.rec[0], sizeof(txt)) < 0 ? 0 : 1;
	mw_dns_answer_free(&ans);
	if (n == 0 || parse_tags(txt, strlen(txt), tags, &n) < 0) {
		snprintf(reason, rsize, "key record does not parse");
		return MW_AUTH_FAIL;
	}
	p = tag_get(tags, n, "p");
	k = tag_get(tags, n, "k");
	if (p == NULL || p->vlen == 0) {
		snprintf(reason, rsize, "key revoked");
		return MW_AUTH_FAIL;
	}
	if ((k != NULL && !tag_is(k, ed ? "ed25519" : "rsa")) || (k == NULL && ed)) {
		snprintf(reason, rsize, "key type does not match a=");
		return MW_AUTH_FAIL;
	}
	dl = b64_decode(p->val, p->vlen, der, sizeof(der));
	if (dl <= 0) {
		snprintf(reason, rsize, "key does not decode");
		return MW_AUTH_FAIL;
	}
	if (ed) {
		*key_r =
		    dl == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32) : NULL;
	} else {
		const unsigned char *q = der;
		*key_r = d2i_PUBKEY(NULL, &q, dl);
		if (*key_r != NULL &&
		    (!EVP_PKEY_is_a(*key_r, "RSA") || EVP_PKEY_get_bits(*key_r) < RSA_MIN_BITS)) {
			EVP_PKEY_free(*key_r);
			*key_r = NULL;
		}
	}
	if (*key_r == NULL) {
		snprintf(reason, rsize, "key unusable");
		return MW_AUTH_FAIL;
	}
	return 0;
}

/* verify_sig - the signature (tags) over DATA: PASS, FAIL, TEMPERROR with reason */
static enum mw_auth_result verify_sig(mw_dns *dns, const struct tag *tags, size_t n,
                                      const mw_str *data, char *reason, size_t rsize)
{
	char d[MW_DNS_NAME_MAX + 1], s[64], a[32];
	unsigned char sig[SIG_MAX], digest[32];
	const struct tag *b = tag_get(tags, n, "b");
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *mc;
	long sl;
	int r, ok = 0;

	if (tag_copy(tag_get(tags, n, "d"), d, sizeof(d)) < 0 ||
	    tag_copy(tag_get(tags, n, "s"), s, sizeof(s)) < 0 ||
	    tag_copy(tag_get(tags, n, "a"), a, sizeof(a)) < 0 || b == NULL || d[0] == '\0' ||
	    s[0] == '\0') {
		snprintf(reason, rsize, "d=, s=, a= or b= missing");
		return MW_AUTH_FAIL;
	}
	if (strcmp(a, "rsa-sha256") != 0 && strcmp(a, "ed25519-sha256") != 0) {
		snprintf(reason, rsize, "algorithm not supported");
		return MW_AUTH_FAIL;
	}
	sl = b64_decode(b->val, b->vlen, sig, sizeof(sig));
	if (sl <= 0) {
		snprintf(reason, rsize, "b= does not decode");
		return MW_AUTH_FAIL;
	}
	r = fetch_key(dns, d, s, a, &key, reason, rsize);
	if (r != 0)
		return (enum mw_auth_result)r;
	mc = EVP_MD_CTX_new();
	if (mc != NULL) {
		if (strcmp(a, "ed25519-sha256") == 0) {
			unsigned int dlen = 32;
			ok = EVP_Digest(data->buf, data->len, digest, &dlen, EVP_sha256(), NULL) ==
			         1 &&
			     EVP_DigestVerifyInit(mc, NULL, NULL, NULL, key) == 1 &&
			     EVP_DigestVerify(mc, sig, (size_t)sl, digest, 32) == 1;
		} else {
			ok = EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, key) == 1 &&
			     EVP_DigestVerify(mc, sig, (size_t)sl, (const unsigned char *)data->buf,
			                      data->len) == 1;
		}
	}
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(key);
	if (!ok) {
		snprintf(reason, rsize, "signature does not verify");
		return MW_AUTH_FAIL;
	}
	return MW_AUTH_PASS;
}

/* ams_headers - the canonical header data AMS field I signs (h= bottom-up per name, then
   the AMS without b=); -1 when h= is missing */
static int ams_headers(const mw_arc_verify *v, size_t ams, const struct tag *h, bool relaxed,
                       mw_str *out)
{
	bool *used = mw_calloc(v->nfields + 1, sizeof(bool));
	const char *p, *end;
	const struct field *f = &v->fields[ams];

	if (h == NULL || h->vlen == 0) {
		free(used);
		return -1;
	}
	p = h->val;
	end = h->val + h->vlen;
	while (p < end) {
		const char *ns, *ne, *colon = memchr(p, ':', (size_t)(end - p));
		size_t i;
		char name[128];

		ns = p;
		ne = colon != NULL ? colon : end;
		p = colon != NULL ? colon + 1 : end;
		while (ns < ne && is_wsp(*ns))
			ns++;
		while (ne > ns && is_wsp(ne[-1]))
			ne--;
		if (ne == ns || (size_t)(ne - ns) >= sizeof(name))
			continue;
		memcpy(name, ns, (size_t)(ne - ns));
		name[ne - ns] = '\0';
		for (i = v->nfields; i-- > 0;) {
			if (used[i] || i == ams || !field_is(v, i, name))
				continue;
			used[i] = true;
			if (relaxed)
				canon_relaxed(out, v->store.buf + v->fields[i].off,
				              v->fields[i].len, v->fields[i].name_len, true, false);
			else
				canon_simple(out, v->store.buf + v->fields[i].off, v->fields[i].len,
				             true, false);
			break;
		}
	}
	free(used);
	if (relaxed)
		canon_relaxed(out, v->store.buf + f->off, f->len, f->name_len, false, true);
	else
		canon_simple(out, v->store.buf + f->off, f->len, false, true);
	return 0;
}

/* verify_ams - AMS(N): body hash and signature */
static enum mw_auth_result verify_ams(mw_arc_verify *v, mw_dns *dns, char *reason, size_t rsize)
{
	size_t i = (size_t)v->set[v->sets].ams, len, n;
	const char *val = field_value(v, i, &len);
	struct tag tags[MAX_TAGS];
	const struct tag *c, *bh;
	unsigned char want[64];
	const unsigned char *got;
	bool hrelaxed = false;
	enum mw_auth_result r;
	long wl;
	mw_str data;

	if (parse_tags(val, len, tags, &n) < 0)
		return MW_AUTH_FAIL;
	if (tag_get(tags, n, "l") != NULL) {
		snprintf(reason, rsize, "l= not accepted");
		return MW_AUTH_FAIL;
	}
	c = tag_get(tags, n, "c");
	if (c != NULL && c->vlen >= 7 && memcmp(c->val, "relaxed", 7) == 0)
		hrelaxed = true;
	bh = tag_get(tags, n, "bh");
	got = v->bh_ams.md != NULL ? v->digest_ams : v->digest_relaxed;
	wl = bh != NULL ? b64_decode(bh->val, bh->vlen, want, sizeof(want)) : -1;
	if (wl != 32 || memcmp(want, got, 32) != 0) {
		snprintf(reason, rsize, "ARC-Message-Signature %u: body hash mismatch", v->sets);
		return MW_AUTH_FAIL;
	}
	mw_str_init(&data, 0);
	if (ams_headers(v, i, tag_get(tags, n, "h"), hrelaxed, &data) < 0) {
		mw_str_free(&data);
		snprintf(reason, rsize, "ARC-Message-Signature %u: no h=", v->sets);
		return MW_AUTH_FAIL;
	}
	r = verify_sig(dns, tags, n, &data, reason, rsize);
	mw_str_free(&data);
	return r;
}

/* seal_data - the canonical data ARC-Seal K signs: sets 1..K (AAR, AMS, AS); with open_last,
   AS(K) without its b= value and without the final CRLF */
static void seal_data(const mw_arc_verify *v, unsigned k, mw_str *out, bool open_last)
{
	unsigned j;
	for (j = 1; j <= k; j++) {
		const int idx[3] = {v->set[j].aar, v->set[j].ams, v->set[j].as};
		size_t m;
		for (m = 0; m < 3; m++) {
			const struct field *f = &v->fields[idx[m]];
			bool last = open_last && j == k && m == 2;
			canon_relaxed(out, v->store.buf + f->off, f->len, f->name_len, !last, last);
		}
	}
}

/* verify_seal - ARC-Seal K */
static enum mw_auth_result verify_seal(mw_arc_verify *v, mw_dns *dns, unsigned k, char *reason,
                                       size_t rsize)
{
	size_t len, n;
	const char *val = field_value(v, (size_t)v->set[k].as, &len);
	struct tag tags[MAX_TAGS];
	enum mw_auth_result r;
	mw_str data;

	if (parse_tags(val, len, tags, &n) < 0 || tag_get(tags, n, "h") != NULL) {
		snprintf(reason, rsize, "ARC-Seal %u malformed", k);
		return MW_AUTH_FAIL;
	}
	mw_str_init(&data, 0);
	seal_data(v, k, &data, true);
	r = verify_sig(dns, tags, n, &data, reason, rsize);
	mw_str_free(&data);
	return r;
}

/* mw_arc_verify_eom - the chain's result (RFC 8617 5.2) */
void mw_arc_verify_eom(mw_arc_verify *v, mw_dns *dns, struct mw_arc_result *res)
{
	unsigned k;
	enum mw_auth_result r;

	memset(res, 0, sizeof(*res));
	res->result = MW_AUTH_NONE;
	res->sets = v->sets;
	if (!v->finished) {
		v->finished = true;
		bh_final(&v->bh_relaxed, v->digest_relaxed);
		if (v->bh_ams.md != NULL)
			bh_final(&v->bh_ams, v->digest_ams);
	}
	if (v->sets == 0 && !v->structural_fail)
		return;
	res->result = MW_AUTH_FAIL;
	if (v->structural_fail) {
		(void)mw_strlcpy(res->reason, v->reason, sizeof(res->reason));
		return;
	}
	/* cv= of each seal: none on the first, pass on the others; fail anywhere ends it */
	for (k = 1; k <= v->sets; k++) {
		size_t len, n;
		const char *val = field_value(v, (size_t)v->set[k].as, &len);
		struct tag tags[MAX_TAGS];
		const struct tag *cv;

		if (parse_tags(val, len, tags, &n) < 0) {
			(void)mw_strlcpy(res->reason, "ARC-Seal unparseable", sizeof(res->reason));
			return;
		}
		cv = tag_get(tags, n, "cv");
		if (tag_is(cv, "fail")) {
			snprintf(res->reason, sizeof(res->reason), "ARC-Seal %u says cv=fail", k);
			return;
		}
		if (!tag_is(cv, k == 1 ? "none" : "pass")) {
			snprintf(res->reason, sizeof(res->reason), "ARC-Seal %u: wrong cv=", k);
			return;
		}
	}
	r = verify_ams(v, dns, res->reason, sizeof(res->reason));
	if (r != MW_AUTH_PASS) {
		res->result = r;
		return;
	}
	for (k = v->sets; k >= 1; k--) {
		r = verify_seal(v, dns, k, res->reason, sizeof(res->reason));
		if (r != MW_AUTH_PASS) {
			res->result = r;
			return;
		}
	}
	res->result = MW_AUTH_PASS;
	{
		size_t len, n;
		const char *val = field_value(v, (size_t)v->set[v->sets].as, &len);
		struct tag tags[MAX_TAGS];
		const char *semi;
		if (parse_tags(val, len, tags, &n) == 0)
			(void)tag_copy(tag_get(tags, n, "d"), res->seal_domain,
			               sizeof(res->seal_domain));
		val = field_value(v, (size_t)v->set[v->sets].aar, &len);
		semi = memchr(val, ';', len);
		if (semi != NULL)
			res->aar = mw_strndup(semi + 1, len - (size_t)(semi + 1 - val));
	}
}

/* ---- sealing ----------------------------------------------------------------------- */

/* Header fields our ARC-Message-Signature signs, when present (never ARC-* or
   Authentication-Results, which every hop adds to) */
static const char *const seal_names[] = {
    "from",           "to",           "cc",           "subject",
    "date",           "message-id",   "reply-to",     "in-reply-to",
    "references",     "mime-version", "content-type", "content-transfer-encoding",
    "dkim-signature", "list-id",      "list-post",    "list-unsubscribe",
    "sender",
};

/* text_field - "Name:" + value as a field in a scratch verifier-like form, canonicalised */
static void canon_text(mw_str *out, const char *name, const char *value, bool crlf, bool skip_b)
{
	mw_str f;
	mw_str_init(&f, 0);
	(void)mw_str_appends(&f, name);
	(void)mw_str_appendc(&f, ':');
	(void)mw_str_appends(&f, value);
	canon_relaxed(out, f.buf, f.len, strlen(name), crlf, skip_b);
	mw_str_free(&f);
}

/* sign_data - sha256(DATA) signed with KEY, base64 appended to out */
static int sign_data(const struct mw_dkim_key *key, const mw_str *data, mw_str *out,
                     mw_error *error_r)
{
	unsigned char digest[32];
	unsigned int dl = 32;
	if (EVP_Digest(data->buf, data->len, digest, &dl, EVP_sha256(), NULL) != 1) {
		mw_error_set(error_r, "SHA-256 failed");
		return -1;
	}
	return mw_dkim_key_sign_digest(key, digest, out, error_r);
}

/* mw_arc_seal - the next ARC set for the message the verifier saw */
int mw_arc_seal(mw_arc_verify *v, const struct mw_dkim_key *key, const char *ar,
                enum mw_auth_result cv, bool sign_subject, unsigned long now, mw_str *seal_r,
                mw_str *ams_r, mw_str *aar_r, mw_error *error_r)
{
	const char *cvs = cv == MW_AUTH_PASS ? "pass" : cv == MW_AUTH_NONE ? "none" : "fail";
	unsigned inst;
	char bh[64];
	mw_str hlist, data;
	size_t i, k;
	int ret = -1;

	if (!v->finished) {
		mw_error_set(error_r, "mw_arc_seal before mw_arc_verify_eom");
		return -1;
	}
	/* a chain we found broken is sealed as failed (RFC 8617 5.1.2) */
	if (v->structural_fail && cv != MW_AUTH_NONE)
		cvs = "fail";
	if (v->sets == 0 && v->structural_fail)
		cvs = "fail";
	if (v->sets == 0 && !v->structural_fail)
		cvs = "none";
	inst = v->sets + 1;
	if (inst > MW_ARC_MAX_SETS) {
		mw_error_set(error_r, "the message already has %d ARC sets", MW_ARC_MAX_SETS);
		return -1;
	}
	mw_str_init(&hlist, 0);
	mw_str_init(&data, 0);

	/* ARC-Authentication-Results */
	mw_str_reset(aar_r);
	(void)mw_str_appendf(aar_r, "i=%u; %s", inst, ar);

	/* ARC-Message-Signature: the fields of seal_names present, bottom-up per name */
	for (k = 0; k < sizeof(seal_names) / sizeof(seal_names[0]); k++) {
		bool *used;
		if (!sign_subject && strcmp(seal_names[k], "subject") == 0)
			continue;
		used = mw_calloc(v->nfields + 1, sizeof(bool));
		for (;;) {
			bool found = false;
			for (i = v->nfields; i-- > 0;) {
				if (used[i] || !field_is(v, i, seal_names[k]))
					continue;
				used[i] = true;
				found = true;
				canon_relaxed(&data, v->store.buf + v->fields[i].off,
				              v->fields[i].len, v->fields[i].name_len, true, false);
				(void)mw_str_appends(&hlist, hlist.len > 0 ? ":" : "");
				(void)mw_str_appends(&hlist, seal_names[k]);
				break;
			}
			if (!found)
				break;
		}
		free(used);
	}
	if (hlist.len == 0) {
		mw_error_set(error_r, "nothing to sign (no From)");
		goto out;
	}
	(void)EVP_EncodeBlock((unsigned char *)bh, v->digest_relaxed, 32);
	mw_str_reset(ams_r);
	(void)mw_str_appendf(
	    ams_r,
	    "i=%u; a=%s; c=relaxed/relaxed; d=%s; s=%s;\n\tt=%lu; h=%s;\n\tbh=%s;\n\tb=", inst,
	    mw_dkim_key_algorithm(key), mw_dkim_key_domain(key), mw_dkim_key_selector(key), now,
	    hlist.buf, bh);
	canon_text(&data, "ARC-Message-Signature", ams_r->buf, false, true);
	if (sign_data(key, &data, ams_r, error_r) < 0)
		goto out;

	/* ARC-Seal over the sets before ours and ours (RFC 8617 5.1.1; a cv=fail seal too, as
	   dkimpy's verifier reads it), unless those sets are not whole */
	mw_str_reset(&data);
	if (v->sets > 0 && !v->structural_fail)
		seal_data(v, v->sets, &data, false);
	canon_text(&data, "ARC-Authentication-Results", aar_r->buf, true, false);
	canon_text(&data, "ARC-Message-Signature", ams_r->buf, true, false);
	mw_str_reset(seal_r);
	(void)mw_str_appendf(seal_r, "i=%u; cv=%s; a=%s; d=%s; s=%s;\n\tt=%lu;\n\tb=", inst, cvs,
	                     mw_dkim_key_algorithm(key), mw_dkim_key_domain(key),
	                     mw_dkim_key_selector(key), now);
	canon_text(&data, "ARC-Seal", seal_r->buf, false, true);
	if (sign_data(key, &data, seal_r, error_r) < 0)
		goto out;
	ret = 0;
out:
	mw_str_free(&hlist);
	mw_str_free(&data);
	return ret;
}
