/* mw-log.h - logging to syslog (facility mail) or stderr, key=value fields. */
#ifndef MW_LOG_H
#define MW_LOG_H

#include "mw-util.h"

enum mw_log_level { MW_LOG_DEBUG, MW_LOG_INFO, MW_LOG_WARNING, MW_LOG_ERROR };
enum mw_log_target { MW_LOG_TARGET_STDERR, MW_LOG_TARGET_SYSLOG };

/* ident: program name; facility: a syslog facility name ("mail", "local0"...). */
int mw_log_init(const char *ident, enum mw_log_target target, const char *facility,
                enum mw_log_level level, mw_error *error_r);
int mw_log_level_parse(const char *name, enum mw_log_level *level_r);

void mw_log(enum mw_log_level level, const char *fmt, ...) MW_PRINTF(2, 3);
void mw_debug(const char *fmt, ...) MW_PRINTF(1, 2);
void mw_info(const char *fmt, ...) MW_PRINTF(1, 2);
void mw_warn(const char *fmt, ...) MW_PRINTF(1, 2);
void mw_error_log(const char *fmt, ...) MW_PRINTF(1, 2);
/* Something an operator must act on now (an account under attack): syslog LOG_ALERT,
   "alert:" on stderr, written whatever log_level says. */
void mw_alert(const char *fmt, ...) MW_PRINTF(1, 2);
/* Configuration or environment error at start-up: logs and exits 1. Never in a request path. */
void mw_fatal(const char *fmt, ...) MW_PRINTF(1, 2) MW_NORETURN;
/* A bug: logs and aborts. */
void mw_panic(const char *fmt, ...) MW_PRINTF(1, 2) MW_NORETURN;

/* Writes untrusted text as a safe log value into dst (size dstsize, always NUL-terminated):
   control bytes, quotes, backslashes and non-ASCII are escaped as \xNN, the value is quoted
   when it holds a blank or '=', and it is cut at max_len input bytes with "..." appended.
   Returns dst, so it can be used inside a log call. */
const char *mw_log_value(char *dst, size_t dstsize, const char *src, size_t len);
/* The escaper under mw_log_value, for other places untrusted text is echoed (an SMTP reply):
   control bytes, non-ASCII and every byte of also are written as \xNN; quoted when quote is
   true and the text holds a blank or '='; cut with "..." when dstsize is reached. A dstsize
   below 8 gives "". Returns dst. */
const char *mw_text_escape(char *dst, size_t dstsize, const char *src, size_t len, const char *also,
                           bool quote);

#endif
