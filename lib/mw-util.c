/*
 * mw-util.c - allocation wrappers, error messages, bounded strings, slices.
 *
 * Public: mw_malloc, mw_calloc, mw_realloc, mw_strdup, mw_strndup, mw_error_set,
 * mw_error_prefix, mw_slice_*, mw_str_*, mw_strlcpy, mw_ascii_*, mw_memzero, mw_now, mw_mono_us,
 * mw_mono_ms, mw_mono_s, mw_utf8_*, mw_text_len_check, mw_write_all.
 *
 * Diagnostics: allocation failure aborts with a message on stderr; nothing else here
 * logs.
 */
#include "mw-build.h"
#include "mw-util.h"

#include <sodium.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* mw_oom - report allocation failure and abort: there is no sane way to go on. */
static MW_NORETURN void mw_oom(size_t size)
{
	fprintf(stderr, "mailwarden: out of memory allocating %zu bytes\n", size);
	abort();
}

/* mw_malloc - malloc that never returns NULL */
void *mw_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		mw_oom(size);
	return p;
}

/* mw_calloc - calloc that never returns NULL and checks the multiplication */
void *mw_calloc(size_t nmemb, size_t size)
{
	void *p;
	if (size != 0 && nmemb > SIZE_MAX / size)
		mw_oom(SIZE_MAX);
	p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		mw_oom(nmemb * size);
	return p;
}

/* mw_realloc - realloc that never returns NULL */
void *mw_realloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		mw_oom(size);
	return p;
}

/* mw_strdup - strdup that never returns NULL */
char *mw_strdup(const char *s)
{
	return mw_strndup(s, strlen(s));
}

/* mw_strndup - copy at most n bytes of s into a new NUL-terminated string */
char *mw_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = mw_malloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* mw_error_set - format a message into error_r (if any) */
void mw_error_set(mw_error *error_r, const char *fmt, ...)
{
	va_list ap;
	if (error_r == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(error_r->msg, sizeof(error_r->msg), fmt, ap);
	va_end(ap);
}

/* mw_error_prefix - put "PREFIX: " before the message already in error_r
   (an error message may be cut at its buffer's end: it is for people, not parsing) */
void mw_error_prefix(mw_error *error_r, const char *fmt, ...)
{
	char prefix[256];
	size_t plen, olen, cap = sizeof(error_r->msg) - 1;
	va_list ap;
	if (error_r == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	plen = strlen(prefix);
	olen = strnlen(error_r->msg, cap);
	if (plen + 2 + olen > cap)
		olen = cap - plen - 2;
	memmove(error_r->msg + plen + 2, error_r->msg, olen);
	memcpy(error_r->msg, prefix, plen);
	error_r->msg[plen] = ':';
	error_r->msg[plen + 1] = ' ';
	error_r->msg[plen + 2 + olen] = '\0';
}

/* mw_slice_from - a slice over a NUL-terminated string */
mw_slice mw_slice_from(const char *s)
{
	mw_slice sl = {s, strlen(s)};
	return sl;
}

/* mw_slice_eq - exact comparison of a slice with a string */
bool mw_slice_eq(mw_slice a, const char *s)
{
	size_t n = strlen(s);
	return a.len == n && memcmp(a.ptr, s, n) == 0;
}

/* mw_slice_ieq - ASCII case-insensitive comparison of a slice with a string */
bool mw_slice_ieq(mw_slice a, const char *s)
{
	size_t n = strlen(s);
	return a.len == n && mw_ascii_strncasecmp(a.ptr, s, n) == 0;
}

/* mw_slice_trim - drop leading and trailing blanks (space, tab, CR, LF) */
mw_slice mw_slice_trim(mw_slice s)
{
	while (s.len > 0 &&
	       (s.ptr[0] == ' ' || s.ptr[0] == '\t' || s.ptr[0] == '\r' || s.ptr[0] == '\n')) {
		s.ptr++;
		s.len--;
	}
	while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t' ||
	                     s.ptr[s.len - 1] == '\r' || s.ptr[s.len - 1] == '\n'))
		s.len--;
	return s;
}

/* mw_str_init - an empty string bounded to max bytes (0: unbounded) */
void mw_str_init(mw_str *s, size_t max)
{
	s->buf = NULL;
	s->len = 0;
	s->cap = 0;
	s->max = max;
	s->wipe = false;
}

/* mw_str_init_wiped - an empty string whose given-up blocks are wiped */
void mw_str_init_wiped(mw_str *s, size_t max)
{
	mw_str_init(s, max);
	s->wipe = true;
}

/* mw_str_free - release the buffer; the string is empty and reusable after */
void mw_str_free(mw_str *s)
{
	if (s->wipe && s->buf != NULL)
		mw_memzero(s->buf, s->cap);
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

/* mw_str_reset - empty the string, keeping its buffer */
void mw_str_reset(mw_str *s)
{
	s->len = 0;
	if (s->buf != NULL)
		s->buf[0] = '\0';
}

/* mw_str_reserve - make room for n more bytes plus the NUL, within the bound */
static int mw_str_reserve(mw_str *s, size_t n)
{
	size_t need, cap;
	if (n > SIZE_MAX - s->len - 1)
		return -1;
	need = s->len + n;
	if (s->max != 0 && need > s->max)
		return -1;
	if (need + 1 <= s->cap)
		return 0;
	cap = s->cap ? s->cap : 64;
	while (cap < need + 1)
		cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
	if (s->wipe && s->buf != NULL) { /* not realloc: it would leave the old block as is */
		char *buf = mw_malloc(cap);
		memcpy(buf, s->buf, s->len + 1);
		mw_memzero(s->buf, s->cap);
		free(s->buf);
		s->buf = buf;
	} else {
		s->buf = mw_realloc(s->buf, cap);
	}
	s->cap = cap;
	return 0;
}

/* mw_str_append - append n bytes; -1 (nothing appended) when over the bound */
int mw_str_append(mw_str *s, const char *p, size_t n)
{
	if (mw_str_reserve(s, n) < 0)
		return -1;
	if (n > 0)
		memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return 0;
}

/* mw_str_appends - append a NUL-terminated string */
int mw_str_appends(mw_str *s, const char *p)
{
	return mw_str_append(s, p, strlen(p));
}

/* mw_str_append_markup - s escaped for XML or HTML text and attribute values */
int mw_str_append_markup(mw_str *out, const char *s, unsigned flags)
{
	bool html = (flags & MW_MARKUP_HTML) != 0, ascii = (flags & MW_MARKUP_ASCII) != 0;
	int rc = 0;
	for (; *s != '\0' && rc == 0; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '&':
			rc = mw_str_appends(out, "&amp;");
			break;
		case '<':
			rc = mw_str_appends(out, "&lt;");
			break;
		case '>':
			rc = mw_str_appends(out, "&gt;");
			break;
		case '"':
			rc = mw_str_appends(out, "&quot;");
			break;
		case '\'':
			rc = mw_str_appends(out, html ? "&#39;" : "&apos;");
			break;
		case '\n':
			if (html) {
				rc = mw_str_appends(out, "<br>\n");
				break;
			}
			/* fall through */
		default:
			if (html && c == '\r')
				break;
			rc = mw_str_appendc(out, ascii && (c < 0x20 || c >= 0x7f) ? '?' : (char)c);
		}
	}
	return rc;
}

/* mw_str_appendc - append one byte (in place when it fits: the JSON and metrics writers
   call this per byte) */
int mw_str_appendc(mw_str *s, char c)
{
	if (s->len + 2 <= s->cap && (s->max == 0 || s->len + 1 <= s->max)) {
		s->buf[s->len++] = c;
		s->buf[s->len] = '\0';
		return 0;
	}
	return mw_str_append(s, &c, 1);
}

/* mw_str_vappendf - append formatted text; -1 (nothing appended) when over the bound */
int mw_str_vappendf(mw_str *s, const char *fmt, va_list ap)
{
	va_list ap2;
	size_t room = s->cap - s->len; /* with the NUL; 0 before the first byte */
	int n;
	/* one pass when it fits in the room the buffer has (the usual case), else measure */
	va_copy(ap2, ap);
	n = vsnprintf(room > 0 ? s->buf + s->len : NULL, room, fmt, ap2);
	va_end(ap2);
	if (n >= 0 && (size_t)n < room) {
		if (s->max != 0 && s->len + (size_t)n > s->max) {
			s->buf[s->len] = '\0';
			return -1;
		}
		s->len += (size_t)n;
		return 0;
	}
	if (room > 0)
		s->buf[s->len] = '\0'; /* what did not fit is not appended */
	if (n < 0 || mw_str_reserve(s, (size_t)n) < 0)
		return -1;
	if (vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap) != n)
		return -1;
	s->len += (size_t)n;
	return 0;
}

/* mw_str_appendf - append formatted text */
int mw_str_appendf(mw_str *s, const char *fmt, ...)
{
	va_list ap;
	int ret;
	va_start(ap, fmt);
	ret = mw_str_vappendf(s, fmt, ap);
	va_end(ap);
	return ret;
}

/* mw_str_c - the string's text ("" when nothing was appended yet) */
const char *mw_str_c(const mw_str *s)
{
	return s->buf != NULL ? s->buf : "";
}

/* mw_str_steal - hand the buffer to the caller */
char *mw_str_steal(mw_str *s)
{
	char *p = s->buf != NULL ? s->buf : mw_strdup("");
	s->buf = NULL;
	s->len = s->cap = 0;
	return p;
}

/* mw_strlcpy - copy src into dst, failing rather than truncating */
int mw_strlcpy(char *dst, const char *src, size_t dstsize)
{
	size_t n = strlen(src);
	if (dstsize == 0)
		return -1;
	if (n >= dstsize) {
		dst[0] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

/* mw_ascii_lower - lower-case ASCII letters in place; other bytes untouched */
void mw_ascii_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int mw_ascii_tolower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* mw_ascii_strcasecmp - locale-independent case-insensitive compare */
int mw_ascii_strcasecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = mw_ascii_tolower((unsigned char)*a);
		int cb = mw_ascii_tolower((unsigned char)*b);
		if (ca != cb || ca == 0)
			return ca - cb;
	}
}

/* mw_ascii_strncasecmp - the same, for at most n bytes */
int mw_ascii_strncasecmp(const char *a, const char *b, size_t n)
{
	for (; n > 0; n--, a++, b++) {
		int ca = mw_ascii_tolower((unsigned char)*a);
		int cb = mw_ascii_tolower((unsigned char)*b);
		if (ca != cb || ca == 0)
			return ca - cb;
	}
	return 0;
}

/* mw_hexval - the value of one hex digit, -1 when it is none */
int mw_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* mw_utf8_decode - one strict UTF-8 sequence */
size_t mw_utf8_decode(const char *str, size_t len, uint32_t *cp_r)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	size_t n, i;
	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	} else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		cp = s[0] & 0x1f;
		n = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		cp = s[0] & 0x0f;
		n = 3;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		cp = s[0] & 0x07;
		n = 4;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

/* mw_utf8_valid - the whole buffer is strict UTF-8 */
bool mw_utf8_valid(const char *s, size_t len, size_t *bad_r)
{
	size_t i = 0, n;
	uint32_t cp;
	while (i < len) {
		n = mw_utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			if (bad_r != NULL)
				*bad_r = i;
			return false;
		}
		i += n;
	}
	return true;
}

/* mw_text_len_check - a string of 1..max bytes */
int mw_text_len_check(const char *what, const char *s, size_t max, size_t *len_r, mw_error *error_r)
{
	size_t len;
	if (s == NULL || *s == '\0') {
		mw_error_set(error_r, "%s is empty", what);
		return -1;
	}
	len = strnlen(s, max + 1);
	if (len > max) {
		mw_error_set(error_r, "%s is longer than %zu bytes", what, max);
		return -1;
	}
	*len_r = len;
	return 0;
}

/* mw_utf8_text_check - valid UTF-8 without control characters */
int mw_utf8_text_check(const char *what, const char *s, size_t len, mw_error *error_r)
{
	size_t i, n;
	uint32_t cp;
	for (i = 0; i < len; i += n) {
		n = mw_utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			mw_error_set(error_r, "%s is not valid UTF-8", what);
			return -1;
		}
		if (mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "%s contains a control character", what);
			return -1;
		}
	}
	return 0;
}

/* mw_unichar_is_control - C0, DEL and C1 control characters */
bool mw_unichar_is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* mw_i64_digits - v in decimal at the end of tmp; its start, its length in *len_r */
const char *mw_i64_digits(char tmp[MW_I64_DIGITS], int64_t v, size_t *len_r)
{
	size_t i = MW_I64_DIGITS;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	do {
		tmp[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		tmp[--i] = '-';
	*len_r = MW_I64_DIGITS - i;
	return tmp + i;
}

/* mw_name_index - look a name up in an enum's name table */
int mw_name_index(const char *const *names, size_t n, const char *name)
{
	size_t i;
	if (name == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (names[i] != NULL && mw_ascii_strcasecmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}

/* mw_fmt_duration - "1h30m", "7m", "3s" (seconds, at most two units, the last rounded up) */
void mw_fmt_duration(int64_t secs, char *buf, size_t size)
{
	static const int64_t units[] = {86400, 3600, 60, 1};
	static const char names[] = "dhms";
	int64_t q1, q2 = 0;
	size_t i = 0;
	if (secs < 1)
		secs = 1;
	while (secs < units[i])
		i++;
	q1 = secs / units[i];
	if (i + 1 < MW_N_ELEMENTS(units)) {
		int64_t rem = secs % units[i];
		q2 = (rem + units[i + 1] - 1) / units[i + 1];
		if (q2 * units[i + 1] >= units[i]) {
			q1++;
			q2 = 0;
		}
	}
	if (q2 > 0)
		(void)snprintf(buf, size, "%" PRId64 "%c%" PRId64 "%c", q1, names[i], q2,
		               names[i + 1]);
	else
		(void)snprintf(buf, size, "%" PRId64 "%c", q1, names[i]);
}

/* mw_memzero - wipe a secret */
void mw_memzero(void *p, size_t n)
{
	sodium_memzero(p, n);
}

/* mw_now - the current time, or MW_FAKE_NOW (+ the seconds elapsed since) in tests */
int64_t mw_now(void)
{
	static int fake_checked;
	static int64_t fake_base, real_base;
	if (!fake_checked) {
		const char *f = getenv("MW_FAKE_NOW");
		fake_checked = 1;
		if (f != NULL && *f != '\0') {
			fake_base = strtoll(f, NULL, 10);
			real_base = (int64_t)time(NULL);
		}
	}
	if (fake_base != 0)
		return fake_base + ((int64_t)time(NULL) - real_base);
	return (int64_t)time(NULL);
}

/* mw_mono_us - monotonic microseconds */
int64_t mw_mono_us(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* mw_mono_ms - monotonic milliseconds */
int64_t mw_mono_ms(void)
{
	return mw_mono_us() / 1000;
}

/* mw_mono_s - monotonic seconds */
int64_t mw_mono_s(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* mw_write_all - the whole buffer, retrying short writes and EINTR */
int mw_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}
