/*
 * mw-rfc2047.c - RFC 2047 encoded-words ("=?utf-8?q?J=C3=B6rg?=") decoded to UTF-8.
 *
 * Public: mw_rfc2047_decode.
 *
 * Used where a header's text must be judged as a mail reader shows it (the display names
 * of an authenticated sender's From:, milter/milter-from.c). Readers are lenient, so this
 * decodes every well-formed encoded-word it meets, and refuses rather than skips anything
 * that starts like one ("=?") but cannot be decoded: a check that cannot read the text
 * cannot say what the reader shows. Charset conversion is glibc's iconv (every charset a
 * reader is likely to know, stateful ones such as ISO-2022-JP included); an RFC 2231
 * language suffix ("utf-8*en") is ignored.
 *
 * Diagnostics: error_r names the problem and its byte offset, never the input.
 */
#include "mw-build.h"
#include "mw-rfc2047.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

/* is_token_char - RFC 2047 token: printable ASCII except SPACE, CTLs and especials */
static bool is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\"/[]?.=", c) == NULL;
}

/* is_wsp - blank or line break (a fold between two encoded-words) */
static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* b64val - value of a base64 digit, -1 otherwise */
static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* decode_q - the Q encoding into raw bytes */
static int decode_q(const char *t, size_t n, mw_str *raw)
{
	size_t i;
	for (i = 0; i < n; i++) {
		char c = t[i];
		if (c == '_') {
			c = ' ';
		} else if (c == '=') {
			int h, l;
			if (i + 2 >= n)
				return -1;
			h = mw_hexval((unsigned char)t[i + 1]);
			l = mw_hexval((unsigned char)t[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (mw_str_appendc(raw, c) < 0)
			return -1;
	}
	return 0;
}

/* decode_b - the B encoding (base64 with padding to a multiple of 4) into raw bytes */
static int decode_b(const char *t, size_t n, mw_str *raw)
{
	size_t i, pad = 0;
	if (n % 4 != 0)
		return -1;
	while (pad < 2 && pad < n && t[n - 1 - pad] == '=')
		pad++;
	for (i = 0; i < n; i += 4) {
		int v[4], k;
		unsigned long w = 0;
		for (k = 0; k < 4; k++) {
			if (i + (size_t)k >= n - pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64val((unsigned char)t[i + (size_t)k]);
			if (v[k] < 0)
				return -1;
		}
		for (k = 0; k < 4; k++)
			w = (w << 6) | (unsigned long)v[k];
		if (mw_str_appendc(raw, (char)((w >> 16) & 0xff)) < 0)
			return -1;
		if (i + 4 < n || pad < 2)
			if (mw_str_appendc(raw, (char)((w >> 8) & 0xff)) < 0)
				return -1;
		if (i + 4 < n || pad < 1)
			if (mw_str_appendc(raw, (char)(w & 0xff)) < 0)
				return -1;
	}
	return 0;
}

/* convert - RAW in CHARSET appended to OUT as UTF-8; -1 when the charset is unknown, the
   bytes are invalid in it, or OUT is full */
static int convert(const char *charset, const mw_str *raw, mw_str *out)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	char buf[256], *in = raw->buf != NULL ? raw->buf : buf;
	size_t inleft = raw->len;
	int ret = 0;

	if (cd == (iconv_t)-1)
		return -1;
	for (;;) {
		char *o = buf;
		size_t oleft = sizeof(buf), r;
		bool flush = inleft == 0;
		r = flush ? iconv(cd, NULL, NULL, &o, &oleft) : iconv(cd, &in, &inleft, &o, &oleft);
		if (r == (size_t)-1 && errno != E2BIG) {
			ret = -1; /* EILSEQ or EINVAL: invalid or cut-short bytes */
			break;
		}
		if (mw_str_append(out, buf, sizeof(buf) - oleft) < 0) {
			ret = -1;
			break;
		}
		if (flush && r != (size_t)-1)
			break;
	}
	(void)iconv_close(cd);
	return ret;
}

/* encoded_word - length of a well-formed encoded-word at s[0..len) (which starts "=?"),
   0 when there is none; its parts through the pointers */
static size_t encoded_word(const char *s, size_t len, size_t *cs_len, char *enc, const char **text,
                           size_t *text_len)
{
	size_t i = 2, c0 = 2, t0;
	while (i < len && is_token_char((unsigned char)s[i]))
		i++;
	if (i == c0 || i + 2 >= len || s[i] != '?' || s[i + 2] != '?')
		return 0;
	*cs_len = i - c0;
	*enc = s[i + 1];
	if (*enc != 'B' && *enc != 'b' && *enc != 'Q' && *enc != 'q')
		return 0;
	t0 = i + 3;
	for (i = t0; i < len && s[i] != '?'; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	if (i + 1 >= len || s[i + 1] != '=')
		return 0;
	*text = s + t0;
	*text_len = i - t0;
	return i + 2;
}

/* mw_rfc2047_decode - see mw-rfc2047.h */
int mw_rfc2047_decode(const char *s, size_t len, mw_str *out, mw_error *error_r)
{
	size_t pos = 0;
	bool after_word = false; /* the last thing copied was an encoded-word */

	while (pos < len) {
		char charset[MW_RFC2047_CHARSET_MAX + 1], enc = 0;
		const char *text = NULL;
		size_t cs_len = 0, text_len = 0, n, ws;
		mw_str raw;
		char *star;
		int r;

		/* white space between two encoded-words is not shown */
		if (after_word && is_wsp((unsigned char)s[pos])) {
			ws = pos;
			while (ws < len && is_wsp((unsigned char)s[ws]))
				ws++;
			if (!(ws + 1 < len && s[ws] == '=' && s[ws + 1] == '?') &&
			    mw_str_append(out, s + pos, ws - pos) < 0) {
				mw_error_set(error_r, "decoded text too long at offset %zu", pos);
				return -1;
			}
			pos = ws;
			after_word = false;
			continue;
		}
		after_word = false;
		if (pos + 1 >= len || s[pos] != '=' || s[pos + 1] != '?') {
			if (mw_str_appendc(out, s[pos]) < 0) {
				mw_error_set(error_r, "decoded text too long at offset %zu", pos);
				return -1;
			}
			pos++;
			continue;
		}
		n = encoded_word(s + pos, len - pos, &cs_len, &enc, &text, &text_len);
		if (n == 0) {
			mw_error_set(error_r, "malformed encoded-word at offset %zu", pos);
			return -1;
		}
		if (cs_len > MW_RFC2047_CHARSET_MAX) {
			mw_error_set(error_r, "charset name too long at offset %zu", pos);
			return -1;
		}
		memcpy(charset, s + pos + 2, cs_len);
		charset[cs_len] = '\0';
		star = strchr(charset, '*'); /* RFC 2231 language */
		if (star != NULL)
			*star = '\0';
		if (charset[0] == '\0') {
			mw_error_set(error_r, "encoded-word without charset at offset %zu", pos);
			return -1;
		}
		mw_str_init(&raw, 0); /* bounded by the input */
		r = enc == 'B' || enc == 'b' ? decode_b(text, text_len, &raw)
		                             : decode_q(text, text_len, &raw);
		if (r < 0) {
			mw_str_free(&raw);
			mw_error_set(error_r, "bad %s encoding in encoded-word at offset %zu",
			             enc == 'B' || enc == 'b' ? "base64" : "quoted-printable", pos);
			return -1;
		}
		{
			size_t before = out->len, bad;
			r = convert(charset, &raw, out);
			mw_str_free(&raw);
			if (r < 0) {
				mw_error_set(
				    error_r,
				    "encoded-word at offset %zu cannot be converted from its "
				    "charset",
				    pos);
				return -1;
			}
			if (out->len > before &&
			    !mw_utf8_valid(out->buf + before, out->len - before, &bad)) {
				mw_error_set(error_r,
				             "encoded-word at offset %zu does not decode to UTF-8",
				             pos);
				return -1;
			}
		}
		pos += n;
		after_word = true;
	}
	return 0;
}
