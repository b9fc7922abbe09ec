/* mw-util.h - allocation, errors, bounded strings and slices for libmailwarden. */
#ifndef MW_UTIL_H
#define MW_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_PRINTF(f, a)  __attribute__((format(printf, f, a)))
#define MW_NORETURN      __attribute__((noreturn))
#define MW_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: these never return NULL; on exhaustion they abort. */
void *mw_malloc(size_t size);
void *mw_calloc(size_t nmemb, size_t size);
void *mw_realloc(void *ptr, size_t size);
char *mw_strdup(const char *s);
char *mw_strndup(const char *s, size_t n);

/* An error message passed out of a function through its error_r argument.
   A NULL error_r is allowed everywhere and discards the message. */
typedef struct mw_error {
	char msg[512];
} mw_error;

void mw_error_set(mw_error *error_r, const char *fmt, ...) MW_PRINTF(2, 3);
void mw_error_prefix(mw_error *error_r, const char *fmt, ...) MW_PRINTF(2, 3);

/* A non-owning view of bytes: not NUL-terminated. */
typedef struct mw_slice {
	const char *ptr;
	size_t len;
} mw_slice;

mw_slice mw_slice_from(const char *s);
bool mw_slice_eq(mw_slice a, const char *s);
bool mw_slice_ieq(mw_slice a, const char *s);
mw_slice mw_slice_trim(mw_slice s);

/* An owning, growable string with an optional bound; always NUL-terminated.
   Appending past max fails (-1) and leaves the string as it was: over-long input
   is refused, never silently truncated. */
typedef struct mw_str {
	char *buf;
	size_t len;
	size_t cap;
	size_t max; /* 0 = no bound */
	bool wipe;  /* mw_str_init_wiped: a block given up (growth, free) is wiped first */
} mw_str;

void mw_str_init(mw_str *s, size_t max);
/* mw_str_init_wiped - as mw_str_init, for a string that may hold a secret: growing moves
   the bytes to a new block and wipes the old one (no realloc), freeing wipes the buffer.
   Appending within the buffer costs what it costs any string. */
void mw_str_init_wiped(mw_str *s, size_t max);
void mw_str_free(mw_str *s);
void mw_str_reset(mw_str *s);
int mw_str_append(mw_str *s, const char *p, size_t n);
int mw_str_appends(mw_str *s, const char *p);
int mw_str_appendc(mw_str *s, char c);
int mw_str_appendf(mw_str *s, const char *fmt, ...) MW_PRINTF(2, 3);
int mw_str_vappendf(mw_str *s, const char *fmt, va_list ap) MW_PRINTF(2, 0);
const char *mw_str_c(const mw_str *s);
/* Appends s with & < > " ' as entities (MW_MARKUP_XML: &apos;; MW_MARKUP_HTML: &#39;, a
   line break as <br> and CR dropped); | MW_MARKUP_ASCII: bytes outside printable ASCII
   become '?'. 0, or -1 when out would exceed its max. */
#define MW_MARKUP_XML   0u
#define MW_MARKUP_HTML  1u
#define MW_MARKUP_ASCII 2u
int mw_str_append_markup(mw_str *out, const char *s, unsigned flags);
/* Hands the buffer to the caller (who frees it) and resets s. */
char *mw_str_steal(mw_str *s);

/* Bounded copy: returns -1 (and an empty dst) when src does not fit. */
int mw_strlcpy(char *dst, const char *src, size_t dstsize);

/* ASCII case folding, locale-independent. */
void mw_ascii_lower(char *s);
int mw_ascii_strcasecmp(const char *a, const char *b);
int mw_ascii_strncasecmp(const char *a, const char *b, size_t n);
/* The value of one hex digit (either case), -1 when c is none. */
int mw_hexval(unsigned char c);

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
   mw_utf8_decode: length of the sequence at s[0..len) and its code point, 0 when invalid
   or cut short. mw_utf8_valid: the whole of s[0..len) is valid; else *bad_r (if not NULL)
   is the offset of the first bad byte. */
size_t mw_utf8_decode(const char *s, size_t len, uint32_t *cp_r);
bool mw_utf8_valid(const char *s, size_t len, size_t *bad_r);
/* C0 controls, DEL and C1 controls. */
bool mw_unichar_is_control(uint32_t cp);
/* s[0..len) is valid UTF-8 without control characters; else -1, "WHAT is not valid UTF-8"
   or "WHAT contains a control character". */
int mw_utf8_text_check(const char *what, const char *s, size_t len, mw_error *error_r);
/* s is not NULL and 1..max bytes long (its length in *len_r); else -1, "WHAT is empty" or
   "WHAT is longer than MAX bytes". */
int mw_text_len_check(const char *what, const char *s, size_t max, size_t *len_r,
                      mw_error *error_r);

/* Writes v in decimal at the END of tmp (no NUL) and returns where it starts; *len_r gets
   its length. For hot paths that must not go through printf (policy keys, Redis RESP). */
#define MW_I64_DIGITS 24
const char *mw_i64_digits(char tmp[MW_I64_DIGITS], int64_t v, size_t *len_r);

/* The index of name in names[0..n) (ASCII case-insensitive), or -1: for the small
   enum <-> name tables (user status, role, tag-rule match, ...). */
int mw_name_index(const char *const *names, size_t n, const char *name);

/* MW_ARRAY_FREE - clear each of COUNT elements of the array ARR with CLEAR(&ARR[i]), then
   free ARR (NULL: nothing). The body of every "free an array of rows" function. */
#define MW_ARRAY_FREE(arr, count, clear)                                                           \
	do {                                                                                       \
		size_t mw_i_;                                                                      \
		if ((arr) == NULL)                                                                 \
			break;                                                                     \
		for (mw_i_ = 0; mw_i_ < (count); mw_i_++)                                          \
			clear(&(arr)[mw_i_]);                                                      \
		free(arr);                                                                         \
	} while (0)

/* Defines the two functions of one such table: NAME_FN(value) -> its name (NULL for a value
   outside the table) and PARSE_FN(name, &value) -> 0, or -1 for a name not in it. */
#define MW_ENUM_NAMES(name_fn, parse_fn, type, table)                                              \
	const char *name_fn(type v)                                                                \
	{                                                                                          \
		return (unsigned)v < MW_N_ELEMENTS(table) ? table[v] : NULL;                       \
	}                                                                                          \
	int parse_fn(const char *name, type *v_r)                                                  \
	{                                                                                          \
		int i_ = mw_name_index(table, MW_N_ELEMENTS(table), name);                         \
		if (i_ < 0)                                                                        \
			return -1;                                                                 \
		*v_r = (type)i_;                                                                   \
		return 0;                                                                          \
	}

/* Writes a duration in seconds as people read it: "1h30m", "7m", "3s" (at most two units,
   the last rounded up; below 1 s is "1s"). Used for reset times in replies and tools. */
void mw_fmt_duration(int64_t secs, char *buf, size_t size);

/* Wipes memory holding secrets (not optimised away). */
void mw_memzero(void *p, size_t n);

/* Seconds since the epoch; tests fix it with the MW_FAKE_NOW environment variable
   (read once) so nothing depends on the wall clock. */
int64_t mw_now(void);

/* A monotonic clock (CLOCK_MONOTONIC) in microseconds, milliseconds or seconds since an
   unspecified start: for deadlines, cache expiry and durations, which must not follow
   wall-clock jumps. Never faked: tests do not depend on it. */
int64_t mw_mono_us(void);
int64_t mw_mono_ms(void);
int64_t mw_mono_s(void);

/* Writes all len bytes of buf to fd, through short writes and EINTR: 0, or -1 with errno
   set (EIO when write() made no progress without saying why). */
int mw_write_all(int fd, const void *buf, size_t len);

#endif
