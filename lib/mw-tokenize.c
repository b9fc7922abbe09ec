/* mw-tokenize.c - tokens for the statistical classifier.
 *
 * Public: mw_tokens_init, mw_tokens_reset, mw_tokens_free, mw_tokens_add, mw_token_hash,
 * mw_tokenize, mw_tokenize_registrable_domain (see mw-tokenize.h).
 *
 * What becomes a token (all case-folded; body words without a prefix):
 *   - words of the decoded text: whitespace-separated runs with surrounding punctuation
 *     stripped, 3..20 code points (case folded with GLib's Unicode tables); longer runs
 *     become "skip:FIRSTCHAR:LEN/10" as SpamBayes does; with MW_TOK_BIGRAMS, adjacent pairs;
 *   - Subject words ("s:"), From display name words, address domain and registrable
 *     domain ("from:name:", "from:dom:", "from:reg:"), Reply-To / Return-Path / Message-ID
 *     domains, X-Mailer / User-Agent words ("xm:"), Received host hints ("rcvd:" registrable
 *     domains of host names, "rcvd:ip:" /24 of IPv4 addresses), the header field names
 *     present ("h:"), the time zone of Date and of every other "...-Date" field
 *     ("date:tz:"), the words of the first 200 bytes of every other field ("NAME:word";
 *     in To and Cc without the recipients' addresses), the Content-Type / charset /
 *     transfer encoding of every part;
 *   - attachments: "att:ext:" and "att:ct:";
 *   - URLs: scheme, host, registrable domain (libpsl), "url:ip" for a literal address,
 *     words of the path and query;
 *   - mw-mime flags: "mime:hidden", "mime:htmlonly", "mime:truncated", "mime:badcharset",
 *     "mime:badutf8", "mime:unparsed".
 *
 * Not tokens at all (not even "h:"): the fields the receiving side writes once the sender
 * is done (receiver_field: delivery trace such as Delivered-To and Delivery-Date, the mail
 * store's bookkeeping such as Status, X-Status, X-Keywords, X-UID, and our own
 * X-Mailwarden-* verdicts). The milter scores a message before any of them exists; they
 * appear only in a stored copy that is learned (the Dovecot plugin, mailwardenctl learn
 * on a mailbox), and there they say where, when and in which folder the copy was kept,
 * which is the label itself, not what the sender wrote. Likewise the recipients' own
 * addresses in To and Cc: in a model shared by every user they would teach "mail for
 * this user is spam" to whoever receives (and reports) much spam, against that user's ham.
 * Dates say when a message was sent, not what it is: of every date field only the time
 * zone is kept.
 *
 * The public suffix list is loaded once per process (psl_latest, else libpsl's built-in
 * list, else the last two labels are used) and kept for the process's life.
 */
#include "mw-build.h"
#include "mw-tokenize.h"

#include <glib.h>
#include <libpsl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SET_SIZE 16384 /* power of two, > 2 * MW_TOKENS_MAX */
#define WORD_MIN 3
#define WORD_MAX 20

/* The SipHash key: fixed forever, since the hashes are what the store keeps. */
static const unsigned char token_key[crypto_shorthash_KEYBYTES] = "mailwarden-tok-1";

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl_ctx;

/* psl_init_once - the public suffix list, loaded once */
static void psl_init_once(void)
{
	psl_ctx = psl_latest(NULL);
	if (psl_ctx == NULL)
		psl_ctx = psl_builtin();
}

/* mw_tokenize_registrable_domain - the public suffix list's registrable domain of a host */
const char *mw_tokenize_registrable_domain(const char *host)
{
	(void)pthread_once(&psl_once, psl_init_once);
	return psl_ctx != NULL ? psl_registrable_domain(psl_ctx, host) : NULL;
}

/* mw_token_hash - 64-bit keyed hash of a token's text (never 0) */
uint64_t mw_token_hash(const char *s, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h = 0;
	size_t i;
	crypto_shorthash(out, (const unsigned char *)s, len, token_key);
	for (i = 0; i < sizeof(out); i++)
		h = (h << 8) | out[i];
	return h == 0 ? 1 : h;
}

/* mw_tokens_init - an empty token set */
void mw_tokens_init(struct mw_tokens *t, bool keep_text)
{
	memset(t, 0, sizeof(*t));
	t->keep_text = keep_text;
	t->hash = mw_calloc(MW_TOKENS_MAX + 1, sizeof(*t->hash));
	t->set = mw_calloc(SET_SIZE, sizeof(*t->set));
	if (keep_text)
		t->text = mw_calloc(MW_TOKENS_MAX + 1, sizeof(*t->text));
}

/* mw_tokens_reset - empty the set for the next message (keeps the memory) */
void mw_tokens_reset(struct mw_tokens *t)
{
	size_t i;
	if (t->text != NULL)
		for (i = 0; i < t->count; i++) {
			free(t->text[i]);
			t->text[i] = NULL;
		}
	memset(t->set, 0, SET_SIZE * sizeof(*t->set));
	t->count = 0;
	t->truncated = false;
}

/* mw_tokens_free - release a token set */
void mw_tokens_free(struct mw_tokens *t)
{
	if (t->hash == NULL)
		return;
	mw_tokens_reset(t);
	free(t->hash);
	free(t->text);
	free(t->set);
	memset(t, 0, sizeof(*t));
}

/* set_insert - true when h was not in the set yet (and now is) */
static bool set_insert(struct mw_tokens *t, uint64_t h)
{
	size_t i = (size_t)(h ^ (h >> 29)) & (SET_SIZE - 1);
	while (t->set[i] != 0) {
		if (t->set[i] == h)
			return false;
		i = (i + 1) & (SET_SIZE - 1);
	}
	t->set[i] = h;
	return true;
}

/* add_hashed - append a token whose hash is known */
static void add_hashed(struct mw_tokens *t, uint64_t h, const char *s, size_t len)
{
	if (t->count >= MW_TOKENS_MAX) {
		t->truncated = true;
		return;
	}
	if (!set_insert(t, h))
		return;
	if (t->text != NULL)
		t->text[t->count] =
		    mw_strndup(s, len > MW_TOKEN_TEXT_MAX ? MW_TOKEN_TEXT_MAX : len);
	t->hash[t->count++] = h;
}

/* mw_tokens_add - one token into the set */
void mw_tokens_add(struct mw_tokens *t, const char *s, size_t len)
{
	if (len > MW_TOKEN_TEXT_MAX)
		len = MW_TOKEN_TEXT_MAX;
	add_hashed(t, mw_token_hash(s, len), s, len);
}

/* addf - a token built from a prefix and a slice */
static void addp(struct mw_tokens *t, const char *prefix, const char *s, size_t len)
{
	char buf[MW_TOKEN_TEXT_MAX + 1];
	size_t pl = strlen(prefix);
	if (pl >= sizeof(buf))
		return;
	memcpy(buf, prefix, pl);
	if (len > sizeof(buf) - 1 - pl)
		len = sizeof(buf) - 1 - pl;
	memcpy(buf + pl, s, len);
	buf[pl + len] = '\0';
	mw_tokens_add(t, buf, pl + len);
}

/* adds - a token from a prefix and a NUL-terminated string */
static void adds(struct mw_tokens *t, const char *prefix, const char *s)
{
	addp(t, prefix, s, strlen(s));
}

/* is_strip - punctuation stripped from the ends of a word */
static bool is_strip(uint32_t cp)
{
	return cp < 0x80 && strchr(".,;:!?()[]{}\"'<>*`|~^=+#/\\", (int)cp) != NULL && cp != 0;
}

/* fold_word - case-fold s[0..len) into buf (UTF-8), counting code points */
static size_t fold_word(const char *s, size_t len, char *buf, size_t size, size_t *chars_r)
{
	size_t i = 0, n = 0, chars = 0;
	while (i < len) {
		uint32_t cp;
		size_t k = mw_utf8_decode(s + i, len - i, &cp);
		char u[6];
		gint ul;
		if (k == 0) {
			i++;
			continue;
		}
		i += k;
		cp = (uint32_t)g_unichar_tolower((gunichar)cp);
		ul = g_unichar_to_utf8((gunichar)cp, u);
		if (n + (size_t)ul < size) {
			memcpy(buf + n, u, (size_t)ul);
			n += (size_t)ul;
		}
		chars++;
	}
	buf[n] = '\0';
	*chars_r = chars;
	return n;
}

struct words {
	struct mw_tokens *t;
	const char *prefix;
	bool bigrams;
	bool no_addresses; /* words holding an '@' are not tokens (recipients) */
	char prev[MW_TOKEN_TEXT_MAX + 1];
	size_t prev_len;
};

/* word - one whitespace-separated run: stripped, folded, kept or summarised */
static void word(struct words *w, const char *s, size_t len)
{
	char buf[4 * WORD_MAX + 8];
	size_t n, chars;
	uint32_t cp;
	/* strip ASCII punctuation at both ends */
	while (len > 0 && is_strip((unsigned char)s[0])) {
		s++;
		len--;
	}
	while (len > 0 && is_strip((unsigned char)s[len - 1]))
		len--;
	if (len == 0)
		return;
	if (w->no_addresses && memchr(s, '@', len) != NULL) {
		w->prev_len = 0;
		return;
	}
	if (len > 4 * WORD_MAX) {
		char skip[32];
		int sl =
		    snprintf(skip, sizeof(skip), "skip:%c:%zu",
		             (unsigned char)s[0] < 0x80 ? (char)(s[0] | 0x20) : '?', len / 10 * 10);
		if (sl > 0 && (size_t)sl < sizeof(skip))
			addp(w->t, w->prefix, skip, (size_t)sl);
		w->prev_len = 0;
		return;
	}
	n = fold_word(s, len, buf, sizeof(buf), &chars);
	if (chars < WORD_MIN) {
		return;
	}
	if (chars > WORD_MAX) {
		char skip[32];
		int sl;
		(void)mw_utf8_decode(buf, n, &cp);
		sl = snprintf(skip, sizeof(skip), "skip:%c:%zu", cp < 0x80 ? (char)cp : '?',
		              chars / 10 * 10);
		if (sl > 0 && (size_t)sl < sizeof(skip))
			addp(w->t, w->prefix, skip, (size_t)sl);
		w->prev_len = 0;
		return;
	}
	addp(w->t, w->prefix, buf, n);
	if (w->bigrams) {
		if (w->prev_len > 0 && w->prev_len + 1 + n + 3 <= MW_TOKEN_TEXT_MAX) {
			char bi[MW_TOKEN_TEXT_MAX + 1];
			memcpy(bi, "bi:", 3);
			memcpy(bi + 3, w->prev, w->prev_len);
			bi[3 + w->prev_len] = ' ';
			memcpy(bi + 4 + w->prev_len, buf, n);
			addp(w->t, w->prefix, bi, 4 + w->prev_len + n);
		}
		if (n <= MW_TOKEN_TEXT_MAX) {
			memcpy(w->prev, buf, n);
			w->prev_len = n;
		}
	}
}

/* words_of - every whitespace-separated word of a UTF-8 text (no_addresses: but addresses) */
static void words_of(struct mw_tokens *t, const char *prefix, const char *s, size_t len,
                     bool bigrams, bool no_addresses)
{
	struct words w;
	size_t i = 0;
	memset(&w, 0, sizeof(w));
	w.t = t;
	w.prefix = prefix;
	w.bigrams = bigrams;
	w.no_addresses = no_addresses;
	while (i < len) {
		size_t start;
		while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
			i++;
		start = i;
		while (i < len && !(s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
			i++;
		if (i > start)
			word(&w, s + start, i - start);
		if (t->count >= MW_TOKENS_MAX)
			return;
	}
}

/* words - every whitespace-separated word of a UTF-8 text */
static void words(struct mw_tokens *t, const char *prefix, const char *s, size_t len, bool bigrams)
{
	words_of(t, prefix, s, len, bigrams, false);
}

/* Header fields the receiving side writes (see the file comment): never tokens. */
static const char *const receiver_fields[] = {
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "X-Apparently-To",
    "X-Delivered-To",
    "Delivery-Date",
    "Status",
    "X-Status",
    "X-Keywords",
    "X-UID",
    "X-UIDL",
    "X-IMAP",
    "X-IMAPbase",
    "X-Mozilla-Status",
    "X-Mozilla-Status2",
    "X-Mozilla-Keys",
    "Lines",
    "Content-Length",
};

/* receiver_field - a field written by the receiving side, not by the sender */
static bool receiver_field(const char *name)
{
	size_t i;
	if (mw_ascii_strncasecmp(name, "X-Mailwarden-", 13) == 0)
		return true;
	for (i = 0; i < MW_N_ELEMENTS(receiver_fields); i++)
		if (mw_ascii_strcasecmp(name, receiver_fields[i]) == 0)
			return true;
	return false;
}

/* date_field - Date and every "...-Date" field (Resent-Date, X-Original-Date, ...) */
static bool date_field(const char *name)
{
	size_t n = strlen(name);
	return mw_ascii_strcasecmp(name, "Date") == 0 ||
	       (n > 5 && mw_ascii_strcasecmp(name + n - 5, "-Date") == 0);
}

/* registrable - the registrable domain of a lower-case host name (or the last two labels) */
static const char *registrable(const char *host)
{
	const char *r = mw_tokenize_registrable_domain(host), *p;
	if (r != NULL)
		return r;
	p = strrchr(host, '.');
	if (p == NULL)
		return host;
	while (p > host && p[-1] != '.')
		p--;
	return p;
}

/* domain_tokens - "PREFIXdom:host" and "PREFIXreg:registrable" of a domain slice */
static void domain_tokens(struct mw_tokens *t, const char *prefix, const char *d, size_t len)
{
	char host[256], pfx[48];
	size_t i;
	while (len > 0 && (d[len - 1] == '>' || d[len - 1] == '.' || d[len - 1] == ' '))
		len--;
	if (len == 0 || len >= sizeof(host))
		return;
	for (i = 0; i < len; i++) {
		char c = d[i];
		if ((unsigned char)c <= ' ' || c == '<' || c == '>' || c == '@' || c == '"' ||
		    c == '\'' || c == '(' || c == ')' || c == ',' || c == ';')
			break;
		host[i] = (char)((c >= 'A' && c <= 'Z') ? c | 0x20 : c);
	}
	host[i] = '\0';
	if (i == 0)
		return;
	snprintf(pfx, sizeof(pfx), "%sdom:", prefix);
	adds(t, pfx, host);
	snprintf(pfx, sizeof(pfx), "%sreg:", prefix);
	adds(t, pfx, registrable(host));
}

/* address_domain - the domain of the (last) address in a header value, or NULL */
static const char *address_domain(const char *v, size_t *len_r)
{
	const char *lt = strrchr(v, '<'), *at, *end;
	if (lt != NULL)
		v = lt + 1;
	at = strrchr(v, '@');
	if (at == NULL)
		return NULL;
	at++;
	end = at;
	while (*end != '\0' && *end != '>' && *end != ' ' && *end != ',' && *end != ';' &&
	       *end != ')')
		end++;
	*len_r = (size_t)(end - at);
	return at;
}

/* from_tokens - display name words and domains of From */
static void from_tokens(struct mw_tokens *t, const char *v)
{
	const char *lt = strchr(v, '<'), *d;
	size_t dl;
	if (lt != NULL && lt > v)
		words(t, "from:name:", v, (size_t)(lt - v), false);
	else if (lt == NULL && strchr(v, '(') != NULL)
		words(t, "from:name:", strchr(v, '('), strlen(strchr(v, '(')), false);
	else if (lt == NULL)
		adds(t, "from:", "noname");
	d = address_domain(v, &dl);
	if (d != NULL)
		domain_tokens(t, "from:", d, dl);
	else
		adds(t, "from:", "noaddr");
}

/* is_ipv4 - a dotted quad (the /24 in net, "a.b.c") */
static bool is_ipv4(const char *s, size_t len, char *net, size_t size)
{
	unsigned parts = 0, digits = 0;
	size_t i, third = 0;
	for (i = 0; i < len; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			if (++digits > 3)
				return false;
		} else if (s[i] == '.' && digits > 0) {
			parts++;
			digits = 0;
			if (parts == 3)
				third = i;
		} else {
			return false;
		}
	}
	if (parts != 3 || digits == 0 || third >= size)
		return false;
	memcpy(net, s, third);
	net[third] = '\0';
	return true;
}

/* received_tokens - host name and network hints of one Received field */
static void received_tokens(struct mw_tokens *t, const char *v)
{
	size_t i = 0, len = strlen(v);
	while (i < len) {
		size_t start;
		char net[16];
		while (i < len && strchr(" \t()[];=", v[i]) != NULL)
			i++;
		start = i;
		while (i < len && strchr(" \t()[];=", v[i]) == NULL)
			i++;
		if (i - start < 4 || i - start > 200)
			continue;
		if (is_ipv4(v + start, i - start, net, sizeof(net))) {
			adds(t, "rcvd:ip:", net);
		} else if (memchr(v + start, '.', i - start) != NULL &&
		           memchr(v + start, '@', i - start) == NULL) {
			char host[256];
			const char *p;
			size_t k, hl = i - start;
			bool alpha = false;
			memcpy(host, v + start, hl);
			host[hl] = '\0';
			for (k = 0; k < hl; k++) {
				char c = host[k];
				if (c >= 'A' && c <= 'Z')
					host[k] = (char)(c | 0x20);
				if ((host[k] >= 'a' && host[k] <= 'z'))
					alpha = true;
				else if (!(c == '.' || c == '-' || (c >= '0' && c <= '9')))
					alpha = false, k = hl;
			}
			if (!alpha || host[hl - 1] == '.')
				continue;
			p = strrchr(host, '.');
			if (strspn(p + 1, "abcdefghijklmnopqrstuvwxyz") != strlen(p + 1) &&
			    strncmp(p + 1, "xn--", 4) != 0)
				continue; /* a version ("1.0.63s", "v1.1b"), not a host name */
			adds(t, "rcvd:", registrable(host));
		}
	}
}

/* url_tokens - scheme, host, registrable domain and path words of one URL */
static void url_tokens(struct mw_tokens *t, const char *u)
{
	const char *p = u, *host, *hend;
	char h[256], net[16];
	size_t hl, i;
	if (mw_ascii_strncasecmp(p, "https://", 8) == 0) {
		adds(t, "url:", "scheme:https");
		p += 8;
	} else if (mw_ascii_strncasecmp(p, "http://", 7) == 0) {
		adds(t, "url:", "scheme:http");
		p += 7;
	} else {
		adds(t, "url:", "scheme:none");
	}
	host = p;
	hend = host + strcspn(host, "/?#");
	{ /* userinfo@ is a classic trick: the host is after it */
		const char *at = memchr(host, '@', (size_t)(hend - host));
		if (at != NULL) {
			adds(t, "url:", "userinfo");
			host = at + 1;
		}
	}
	hl = strcspn(host, ":/?#");
	if (hl == 0 || hl >= sizeof(h))
		return;
	for (i = 0; i < hl; i++)
		h[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] | 0x20 : host[i]);
	h[hl] = '\0';
	if (is_ipv4(h, hl, net, sizeof(net))) {
		adds(t, "url:", "ip");
	} else {
		domain_tokens(t, "url:", h, hl);
	}
	/* path and query words */
	p = hend;
	while (*p != '\0') {
		size_t wl;
		p += strspn(p, "/?#&=.-_+%,;:~!");
		wl = strcspn(p, "/?#&=.-_+%,;:~!");
		if (wl >= 3 && wl <= 20) {
			char wbuf[24];
			for (i = 0; i < wl; i++)
				wbuf[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] | 0x20 : p[i]);
			addp(t, "url:p:", wbuf, wl);
		}
		p += wl;
	}
}

/* mw_tokenize - every token of a parsed message */
void mw_tokenize(const struct mw_mime_msg *m, unsigned flags, struct mw_tokens *t)
{
	bool bigrams = (flags & MW_TOK_BIGRAMS) != 0;
	unsigned received = 0;
	size_t i, total = 0;
	char buf[64];
	for (i = 0; i < m->nheaders; i++) {
		const char *name = m->headers[i].name, *v = m->headers[i].value, *d;
		char lname[48];
		size_t dl;
		if (receiver_field(name))
			continue;
		if (strlen(name) < sizeof(lname)) {
			mw_strlcpy(lname, name, sizeof(lname));
			mw_ascii_lower(lname);
			adds(t, "h:", lname);
		}
		if (mw_ascii_strcasecmp(name, "Subject") == 0) {
			words(t, "s:", v, strlen(v), bigrams);
		} else if (mw_ascii_strcasecmp(name, "From") == 0) {
			from_tokens(t, v);
		} else if (mw_ascii_strcasecmp(name, "Reply-To") == 0 ||
		           mw_ascii_strcasecmp(name, "Return-Path") == 0 ||
		           mw_ascii_strcasecmp(name, "Message-ID") == 0) {
			const char *pfx =
			    (name[0] | 0x20) == 'r'
			        ? (name[2] == 'p' || name[2] == 'P' ? "replyto:" : "retpath:")
			        : "mid:";
			d = address_domain(v, &dl);
			if (d != NULL)
				domain_tokens(t, pfx, d, dl);
			else
				adds(t, pfx, "none");
		} else if (mw_ascii_strcasecmp(name, "X-Mailer") == 0 ||
		           mw_ascii_strcasecmp(name, "User-Agent") == 0) {
			words(t, "xm:", v, strlen(v), false);
		} else if (mw_ascii_strcasecmp(name, "Received") == 0) {
			if (received++ < 8)
				received_tokens(t, v);
		} else if (date_field(name)) {
			const char *tz = strrchr(v, ' ');
			if (tz != NULL && (tz[1] == '+' || tz[1] == '-'))
				adds(t, "date:tz:", tz + 1);
		} else if (strlen(name) < sizeof(lname) - 2) {
			/* any other field: its first words, prefixed with its name (in To and Cc
			   not the recipients' addresses) */
			char pfx[sizeof(lname) + 1];
			size_t vl = strlen(v);
			snprintf(pfx, sizeof(pfx), "%s:", lname);
			words_of(t, pfx, v, vl > 200 ? 200 : vl, false,
			         mw_ascii_strcasecmp(name, "To") == 0 ||
			             mw_ascii_strcasecmp(name, "Cc") == 0);
		}
	}
	if (mw_mime_header(m, "Message-ID") == NULL)
		adds(t, "mid:", "missing");
	if (mw_mime_header(m, "Date") == NULL)
		adds(t, "date:", "missing");
	for (i = 0; i < m->nparts; i++) {
		adds(t, "part:", m->parts[i].content_type);
		if (m->parts[i].charset[0] != '\0')
			adds(t, "cs:", m->parts[i].charset);
		if (m->parts[i].encoding[0] != '\0')
			adds(t, "cte:", m->parts[i].encoding);
	}
	for (i = 0; i < m->nattachments; i++) {
		const char *dot = strrchr(m->attachments[i].filename, '.');
		adds(t, "att:ct:", m->attachments[i].content_type);
		if (dot != NULL && strlen(dot + 1) <= 8) {
			mw_strlcpy(buf, dot + 1, sizeof(buf));
			mw_ascii_lower(buf);
			adds(t, "att:ext:", buf);
		}
	}
	for (i = 0; i < m->nurls; i++)
		url_tokens(t, m->urls[i]);
	snprintf(buf, sizeof(buf), "count:%u",
	         m->nurls == 0 ? 0
	                       : (unsigned)(m->nurls < 4    ? 1
	                                    : m->nurls < 16 ? 2
	                                                    : 3));
	adds(t, "url:", buf);
	if (m->flags & MW_MIME_HIDDEN_TEXT)
		adds(t, "mime:", "hidden");
	if (m->flags & MW_MIME_HTML_ONLY)
		adds(t, "mime:", "htmlonly");
	if (m->flags & (MW_MIME_TRUNCATED | MW_MIME_PARTS_LIMIT | MW_MIME_DEPTH_LIMIT))
		adds(t, "mime:", "truncated");
	if (m->flags & MW_MIME_BAD_CHARSET)
		adds(t, "mime:", "badcharset");
	if (m->flags & MW_MIME_BAD_UTF8)
		adds(t, "mime:", "badutf8");
	if (m->flags & MW_MIME_UNPARSED)
		adds(t, "mime:", "unparsed");
	for (i = 0; i < m->ntexts; i++) {
		words(t, "", m->texts[i].text, m->texts[i].len, bigrams);
		total += m->texts[i].len;
	}
	{
		unsigned lb = 0;
		while (total > 0 && lb < 24) {
			total >>= 1;
			lb++;
		}
		snprintf(buf, sizeof(buf), "len:%u", lb);
		adds(t, "text:", buf);
	}
	if (t->truncated) {
		/* one slot is kept free for this marker */
		uint64_t h = mw_token_hash("tok:truncated", 13);
		if (set_insert(t, h)) {
			if (t->text != NULL)
				t->text[t->count] = mw_strdup("tok:truncated");
			t->hash[t->count++] = h;
		}
	}
}
