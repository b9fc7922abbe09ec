/*
 * api-formflush.c - mailwarden-api: the flusher that submits spooled contact forms to Postfix.
 *
 * One process per API master (the pool's helper, lib/mw-service.c), never one per worker; and
 * one per spool: it sends only while it holds an exclusive lock on DIR/flusher.lock (flock),
 * so two API masters given the same spool_dir never send the same file twice (the second
 * waits and takes over when the first is gone). It watches [forms] spool_dir/new (inotify,
 * and a scan every second), and submits each form, oldest first, over SMTP to [forms] smtp
 * (libcurl; SMTP AUTH as smtp_user when set, so the milter DKIM-signs it and Postfix logs it
 * like any mail). A form leaves the spool only after Postfix's 250 to the data: unlinked, the
 * directory fsync'd. A permanent refusal (5xx other than an AUTH failure) moves it to
 * failed/ (kept for the admin, logged as an error); anything else keeps it in new/.
 *
 * Retries and the circuit breaker: after a temporary failure the next try is retry_min
 * later; after breaker_failures failures in a row the breaker opens: one probe every wait,
 * the wait doubling from retry_min up to retry_max, until Postfix accepts again (closed).
 * Meanwhile workers keep accepting forms into the spool.
 *
 * Exactly once: a form is sent again only when it is still in new/; the one window is a kill
 * between Postfix's 250 and the unlink, which sends it twice (at least once, never lost); its
 * Message-ID (form.ID@domain) is the same both times.
 *
 * SIGTERM ends the flusher at once while it waits, and after the form it is sending.
 *
 * Public: api_form_flusher.
 * Diagnostics: event=form_sent / form_deferred / form_failed / form_breaker lines.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-daemon.h"
#include "mw-forms.h"
#include "mw-log.h"
#include "mw-service.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <unistd.h>

#define FLUSH_SCAN_MS 1000
#define FLUSH_BATCH   200

enum send_result { SEND_OK, SEND_TEMP, SEND_PERM };

struct upload {
	const char *p;
	size_t left;
};

/* read_cb - libcurl pulls the message */
static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload *u = arg;
	size_t n = size * nitems < u->left ? size * nitems : u->left;
	memcpy(buf, u->p, n);
	u->p += n;
	u->left -= n;
	return n;
}

/* smtp_send - one message to Postfix; the reason in why */
static enum send_result smtp_send(const mw_config *cfg, const char *password, const char *sender,
                                  const char *rcpt, const mw_str *msg, char *why, size_t whysize)
{
	const char *hostport = mw_config_str(cfg, MWK_FORMS_SMTP), *user,
	           *dom = strrchr(sender, '@');
	char url[600], from[420], to[420];
	struct curl_slist *rcpts = NULL;
	struct upload up = {msg->buf, msg->len};
	long code = 0, timeout = (long)mw_config_int(cfg, MWK_FORMS_SMTP_TIMEOUT) * 1000;
	enum send_result r;
	CURLcode rc;
	CURL *c = curl_easy_init();
	if (c == NULL) {
		(void)mw_strlcpy(why, "libcurl cannot start", whysize);
		return SEND_TEMP;
	}
	(void)snprintf(url, sizeof(url), "smtp://%s/%s", hostport,
	               dom != NULL ? dom + 1 : "localhost");
	(void)snprintf(from, sizeof(from), "<%s>", sender);
	(void)snprintf(to, sizeof(to), "<%s>", rcpt);
	rcpts = curl_slist_append(rcpts, to);
	(void)curl_easy_setopt(c, CURLOPT_URL, url);
	(void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp");
	(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
	(void)curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
	(void)curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	(void)curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
	(void)curl_easy_setopt(c, CURLOPT_READDATA, &up);
	(void)curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg->len);
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
	(void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000L);
	user = mw_config_str(cfg, MWK_FORMS_SMTP_USER);
	if (user[0] != '\0') {
		(void)curl_easy_setopt(c, CURLOPT_USERNAME, user);
		(void)curl_easy_setopt(c, CURLOPT_PASSWORD, password != NULL ? password : "");
	}
	rc = curl_easy_perform(c);
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK) {
		r = SEND_OK;
		why[0] = '\0';
	} else {
		r = code >= 500 && code < 600 && rc != CURLE_LOGIN_DENIED ? SEND_PERM : SEND_TEMP;
		(void)snprintf(why, whysize, "%s (last reply %ld)", curl_easy_strerror(rc), code);
	}
	curl_slist_free_all(rcpts);
	curl_easy_cleanup(c);
	return r;
}

/* password_load - smtp_password_file's first line (NULL when none is configured or readable) */
static char *password_load(const mw_config *cfg)
{
	const char *path = mw_config_str(cfg, MWK_FORMS_SMTP_PASSWORD_FILE);
	mw_str s;
	mw_error err = {{0}};
	char *nl;
	if (path[0] == '\0')
		return NULL;
	mw_str_init(&s, 0);
	if (mw_daemon_read_private_file(path, 1024, &s, &err) < 0) {
		mw_error_log("event=form_flusher error=\"[forms] smtp_password_file: %s\"",
		             err.msg);
		mw_str_free(&s);
		return NULL;
	}
	if (s.buf == NULL)
		return mw_strdup("");
	nl = strpbrk(s.buf, "\r\n");
	if (nl != NULL)
		*nl = '\0';
	return mw_str_steal(&s);
}

/* spool_lock - the spool's flusher lock, taken without waiting: true once held */
static bool spool_lock(const char *dir, int *fd, bool *told)
{
	char path[4096];
	if (*fd < 0) {
		(void)snprintf(path, sizeof(path), "%s/flusher.lock", dir);
		*fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (*fd < 0) {
			mw_error_log("event=form_flusher error=\"%s: %s\"", path, strerror(errno));
			return false;
		}
	}
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return true;
	if (!*told)
		mw_warn("event=form_flusher status=waiting reason=\"another flusher holds "
		        "%s/flusher.lock\"",
		        dir);
	*told = true;
	return false;
}

/* api_form_flusher - the helper process's loop; returns only when stopped */
void api_form_flusher(const mw_config *cfg)
{
	struct mw_forms *forms = NULL;
	const char *dir = mw_config_str(cfg, MWK_FORMS_SPOOL_DIR);
	int64_t retry_min = mw_config_int(cfg, MWK_FORMS_RETRY_MIN) * 1000,
	        retry_max = mw_config_int(cfg, MWK_FORMS_RETRY_MAX) * 1000, wait = retry_min,
	        next_try = 0;
	long long breaker = mw_config_int(cfg, MWK_FORMS_BREAKER_FAILURES), failures = 0;
	char *password = NULL, newdir[4096];
	mw_error err = {{0}};
	int ino = -1, lock = -1;
	bool locked = false, told = false;
	if (mw_forms_load(cfg, &forms, &err) < 0 || forms->n == 0) {
		mw_forms_free(&forms);
		mw_service_worker_idle(true);
		for (;;)
			pause(); /* nothing to flush: wait for the stop */
	}
	mw_forms_free(&forms);
	if (retry_max < retry_min)
		retry_max = retry_min;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	password = password_load(cfg);
	(void)snprintf(newdir, sizeof(newdir), "%s/new", dir);
	ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ino >= 0 && inotify_add_watch(ino, newdir, IN_MOVED_TO | IN_CREATE) < 0) {
		close(ino);
		ino = -1;
	}
	mw_info("event=form_flusher status=started spool=%s smtp=%s", dir,
	        mw_config_str(cfg, MWK_FORMS_SMTP));
	for (;;) {
		char **ids = NULL;
		size_t n = 0, i;
		int64_t now = mw_mono_ms(), timeout = FLUSH_SCAN_MS;
		struct pollfd pfd = {ino, POLLIN, 0};
		if (next_try > now && next_try - now < timeout)
			timeout = next_try - now;
		mw_service_worker_idle(true);
		(void)poll(&pfd, ino >= 0 ? 1 : 0, (int)timeout);
		mw_service_worker_idle(false);
		if (ino >= 0) {
			char ev[4096];
			while (read(ino, ev, sizeof(ev)) > 0)
				;
		}
		if (mw_mono_ms() < next_try)
			continue;
		if (!locked && !(locked = spool_lock(dir, &lock, &told)))
			continue;
		if (mw_form_spool_list(dir, &ids, &n, FLUSH_BATCH, &err) < 0) {
			mw_error_log("event=form_flusher error=\"%s\"", err.msg);
			next_try = mw_mono_ms() + retry_min;
			continue;
		}
		for (i = 0; i < n; i++) {
			char sender[400], rcpt[400], why[300];
			mw_str msg;
			enum send_result r;
			if (next_try > mw_mono_ms())
				break;
			mw_str_init(&msg, 0);
			if (mw_form_spool_read(dir, ids[i], sender, sizeof(sender), rcpt,
			                       sizeof(rcpt), &msg, &err) < 0) {
				mw_error_log("event=form_failed id=%s error=\"%s\"", ids[i],
				             err.msg);
				(void)mw_form_spool_done(dir, ids[i], true, &err);
				mw_str_free(&msg);
				continue;
			}
			if (password == NULL)
				password = password_load(cfg);
			r = smtp_send(cfg, password, sender, rcpt, &msg, why, sizeof(why));
			mw_str_free(&msg);
			if (r == SEND_TEMP) {
				failures++;
				if (failures < breaker) {
					next_try = mw_mono_ms() + retry_min;
				} else {
					if (failures == breaker)
						mw_warn(
						    "event=form_breaker state=open failures=%lld "
						    "error=\"%s\"",
						    failures, why);
					else
						wait = wait * 2 < retry_max ? wait * 2 : retry_max;
					next_try = mw_mono_ms() + wait;
				}
				mw_info("event=form_deferred id=%s failures=%lld retry_ms=%lld "
				        "error=\"%s\"",
				        ids[i], failures, (long long)(next_try - mw_mono_ms()),
				        why);
				break;
			}
			if (failures >= breaker)
				mw_info("event=form_breaker state=closed");
			failures = 0;
			wait = retry_min;
			if (r == SEND_PERM) {
				mw_error_log("event=form_failed id=%s error=\"%s\" kept=failed/",
				             ids[i], why);
				if (mw_form_spool_done(dir, ids[i], true, &err) < 0)
					mw_error_log("event=form_flusher error=\"%s\"", err.msg);
				continue;
			}
			if (mw_form_spool_done(dir, ids[i], false, &err) < 0)
				mw_error_log("event=form_flusher error=\"%s\"", err.msg);
			mw_info("event=form_sent id=%s to=%s", ids[i], rcpt);
		}
		for (i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
	}
}
