/*
 * mw-log.c - one logging path for every mailwarden program.
 *
 * Public: mw_log_init, mw_log_level_parse, mw_log, mw_debug, mw_info, mw_warn,
 * mw_error_log, mw_alert, mw_fatal, mw_panic, mw_log_value, mw_text_escape (the one
 * escaper of untrusted text: log values here, SMTP reply text in the milter).
 *
 * Messages are "key=value" fields (e.g. "event=user_add user=john@example.com").
 * Callers never pass secrets; untrusted values go through mw_log_value first.
 * Diagnostics: mw_log_init fails on an unknown facility name.
 */
#include "mw-build.h"
#include "mw-log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

static struct {
	enum mw_log_target target;
	enum mw_log_level level;
	char ident[64];
} mw_log_state = {MW_LOG_TARGET_STDERR, MW_LOG_INFO, "mailwarden"};

static const struct {
	const char *name;
	int value;
} mw_facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

static const char *const mw_level_names[] = {"debug", "info", "warning", "error"};

/* mw_log_init - choose target, facility and threshold */
int mw_log_init(const char *ident, enum mw_log_target target, const char *facility,
                enum mw_log_level level, mw_error *error_r)
{
	size_t i;
	int fac = -1;
	for (i = 0; i < MW_N_ELEMENTS(mw_facilities); i++)
		if (strcmp(mw_facilities[i].name, facility) == 0)
			fac = mw_facilities[i].value;
	if (fac < 0) {
		mw_error_set(error_r, "unknown syslog facility \"%s\"", facility);
		return -1;
	}
	if (mw_strlcpy(mw_log_state.ident, ident, sizeof(mw_log_state.ident)) < 0)
		(void)mw_strlcpy(mw_log_state.ident, "mailwarden", sizeof(mw_log_state.ident));
	mw_log_state.target = target;
	mw_log_state.level = level;
	if (target == MW_LOG_TARGET_SYSLOG)
		openlog(mw_log_state.ident, LOG_PID | LOG_NDELAY, fac);
	return 0;
}

/* mw_log_level_parse - "debug|info|warning|error" to a level */
int mw_log_level_parse(const char *name, enum mw_log_level *level_r)
{
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(mw_level_names); i++)
		if (strcmp(mw_level_names[i], name) == 0) {
			*level_r = (enum mw_log_level)i;
			return 0;
		}
	return -1;
}

/* mw_vlog - write one message at a level */
static void mw_vlog(enum mw_log_level level, const char *fmt, va_list ap) MW_PRINTF(2, 0);
static void mw_vlog(enum mw_log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
	char line[2048];
	if (level < mw_log_state.level)
		return;
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	if (mw_log_state.target == MW_LOG_TARGET_SYSLOG)
		syslog(prio[level], "%s: %s", mw_level_names[level], line);
	else
		fprintf(stderr, "%s: %s: %s\n", mw_log_state.ident, mw_level_names[level], line);
}

void mw_log(enum mw_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mw_vlog(level, fmt, ap);
	va_end(ap);
}

#define MW_LOG_FN(fn, lvl)                                                                         \
	void fn(const char *fmt, ...)                                                              \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		mw_vlog(lvl, fmt, ap);                                                             \
		va_end(ap);                                                                        \
	}
MW_LOG_FN(mw_debug, MW_LOG_DEBUG)
MW_LOG_FN(mw_info, MW_LOG_INFO)
MW_LOG_FN(mw_warn, MW_LOG_WARNING)
MW_LOG_FN(mw_error_log, MW_LOG_ERROR)

/* mw_alert - a message an operator must act on, above every threshold */
void mw_alert(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (mw_log_state.target == MW_LOG_TARGET_SYSLOG)
		syslog(LOG_ALERT, "alert: %s", line);
	else
		fprintf(stderr, "%s: alert: %s\n", mw_log_state.ident, line);
}

/* mw_fatal - configuration/environment error at start-up */
void mw_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mw_vlog(MW_LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

/* mw_panic - a bug: never returns */
void mw_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mw_vlog(MW_LOG_ERROR, fmt, ap);
	va_end(ap);
	abort();
}

/* mw_text_escape - escape and bound untrusted text */
const char *mw_text_escape(char *dst, size_t dstsize, const char *src, size_t len, const char *also,
                           bool quote)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t set[2] = {0, 0}; /* the printable ASCII bytes of also (one strchr a byte before) */
	size_t i, o = 0;
	for (i = 0; also[i] != '\0'; i++)
		if ((unsigned char)also[i] < 0x80)
			set[(unsigned char)also[i] >> 6] |= (uint64_t)1 << (also[i] & 63);
	if (dstsize < 8) {
		if (dstsize > 0)
			dst[0] = '\0';
		return dst;
	}
	if (quote) {
		quote = false;
		for (i = 0; i < len; i++)
			if (src[i] == ' ' || src[i] == '=' || src[i] == '\t')
				quote = true;
	}
	if (quote)
		dst[o++] = '"';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		/* room for an escape (4), "..." (3), a closing quote and NUL */
		if (o + 4 + 3 + (quote ? 2 : 1) > dstsize) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f || ((set[c >> 6] >> (c & 63)) & 1) != 0) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		} else {
			dst[o++] = (char)c;
		}
	}
	if (quote)
		dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

/* mw_log_value - escape and bound an untrusted value for a log line */
const char *mw_log_value(char *dst, size_t dstsize, const char *src, size_t len)
{
	return mw_text_escape(dst, dstsize, src, len, "\"\\", true);
}
