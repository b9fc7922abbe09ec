/*
 * milter-scan.c - the message as received, kept for the scan stages, and the stages
 * themselves (virus scanning now; the spam scorer reads the same buffer later).
 *
 * Public: milter_scan_init, milter_scan_reload, milter_scan_deinit, milter_scan_begin,
 * milter_scan_header, milter_scan_eoh, milter_scan_body, milter_scan_wants_body,
 * milter_scan_eom.
 *
 * Capture: at MAIL FROM milter_scan_begin decides whether any stage wants this message
 * (virus_scan on, and for authenticated mail virus_outbound). If so, every header field is
 * kept as "Name: value" CRLF as Postfix passes it, then a blank line, then the body chunks:
 * the message as received, before we strip or add anything. [milter] scan_max_size bounds
 * it: past the bound the buffer is dropped and the message is marked over the limit, and at
 * end of message scan_over_limit decides (tempfail by default; accept only with a log
 * line). The buffer belongs to the message context and goes in milter_msg_reset.
 *
 * Engines (lib/mw-virus): one current mw_virus, swapped under engine_lock; each scan takes
 * a counted reference, so a swap never disturbs a scan in flight and the last scan of an
 * old engine frees it. A new engine is built whole before the swap, outside every lock but
 * build_lock (which keeps two builds from racing): on SIGHUP (milter_scan_reload, from the
 * reload thread) and, for libclamav, by a watcher thread that checks the signature
 * directory every virus_reload_check and builds when a file changed or when there is no
 * engine yet (signatures that appear after start are picked up). A failed build keeps the
 * old engine and logs event=virus_reload status=failed. With no engine at all every
 * message gets virus_on_error.
 *
 * Verdicts at end of message (after strip and Authentication-Results):
 *   infected, virus_action = reject: 554 5.7.1 virus found: NAME
 *   infected, quarantine: X-Mailwarden-Virus: infected (NAME) and smfi_quarantine (hold)
 *   infected, tag: X-Mailwarden-Virus: infected (NAME); clean mail: X-Mailwarden-Virus: clean
 *   no verdict (virus_on_error): 451 4.7.1 virus scanner unavailable, try again later |
 *     554 5.7.1 virus scanner unavailable | accept (logged action=accept_unscanned)
 *   over a limit (scan_over_limit): 451 4.7.1 message too large or too complex to scan, try
 *     again later | 552 5.3.4 message too large or too complex to scan | accept (logged)
 *
 * Spam (inbound, untrusted): [spam] spam_backend = builtin scores with lib/mw-spam's tests;
 * spamd:... asks SpamAssassin's spamd (lib/mw-spamd) and takes its score and test names.
 * Either way X-Mailwarden-Spam, spam_score (tag, subject prefix) and reject_score
 * (550 5.7.1) apply. spamd cannot score it (down, slow, refusing, garbage): spamd_on_error,
 * 451 4.7.1 spam scanner unavailable, try again later | accept with tests=SPAMD_UNAVAILABLE.
 * Over spamd_max_size: spamd_over_size, truncate (tests gets SPAMD_TRUNCATED) | 451 4.7.1 |
 * 552 5.3.4 | accept with tests=SPAMD_TOO_BIG. Over scan_max_size (nothing kept):
 * scan_over_limit, as for viruses (accept: tests=SCAN_OVER_LIMIT). A message accepted
 * unscored always carries X-Mailwarden-Spam: no; score=0 and is logged
 * (event=spam_unscored ... action=accept_unscored).
 *
 * Per-user models ([classifier] per_user): a message with exactly one recipient that is a
 * user of the store is scored with the global model and that user's own model mixed
 * (lib/mw-classify: mw_classifier_score_user; the user's model counts once it has learned
 * user_min_spam/user_min_ham). A message for several recipients is scored once with the
 * global model: one copy carries one X-Mailwarden-Spam header for every recipient, and a
 * per-recipient verdict would need the message split per recipient (the MTA's job, not a
 * milter's). User models are kept in a small LRU cache (UCACHE_SIZE users) on a store
 * connection of their own; scoring with one is serialised by ucache_lock.
 *
 * Degraded states (lib/mw-degraded.c: one event=degraded line when entered, one
 * event=recovered when left, the mailwarden_degraded gauge): milter_virus while no engine
 * can judge a message (none built, or clamd failing: reason no_engine or scan_error; left at
 * the next verdict or when an engine is built), milter_classifier while the classifier's
 * store cannot be opened (left when it opens; the retries in between are debug lines),
 * milter_spamd from a spamd check that failed to the next one answered (spam_backend
 * spamd). milter_dns is lib/mw-dns.c's (mw_dns_watch, set up in milter-main.c).
 *
 * Diagnostics: event=virus_found, event=virus_reload, event=virus_unscanned,
 * event=spam_unscored lines; the verdict goes into the caller's decision line (extra:
 * virus=..., spam=...).
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-classify.h"
#include "mw-degraded.h"
#include "mw-headers.h"
#include "mw-log.h"
#include "mw-metrics.h"
#include "mw-spam.h"
#include "mw-virus.h"

#include <libmilter/mfapi.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;
static mw_virus *cur_engine;

static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

/* The classifier: opened lazily with its own store connection, shared by every thread;
   reopened when a snapshot names another store (cls_rw held for writing), retried at
   most every CLS_RETRY_SECS while the store is down. */
#define CLS_RETRY_SECS 30
static pthread_rwlock_t cls_rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t cls_open_lock = PTHREAD_MUTEX_INITIALIZER;
static mw_classifier *cls;
static mw_store *cls_store;
static char cls_url[1024];
static int64_t cls_next_try; /* mw_mono_s */

/* Per-user models: the UCACHE_SIZE most recently used users, their scope (users.id; 0:
   not a user of the store, looked up again after UCACHE_NEG_SECS) and loaded model. */
#define UCACHE_SIZE     64
#define UCACHE_NEG_SECS 60
struct ucache_entry {
	char username[MW_USERNAME_MAX + 1];
	int64_t scope;
	mw_classifier *c;
	int64_t looked_up; /* mw_mono_s */
	uint64_t used;     /* LRU tick */
};
static pthread_mutex_t ucache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ucache_entry ucache[UCACHE_SIZE];
static mw_store *ucache_store;
static char ucache_url[1024];
static uint64_t ucache_tick;

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cond = PTHREAD_COND_INITIALIZER;
static bool watch_quit, watch_started;
static pthread_t watch_thread;

/* settings_of - the engine settings of a config snapshot; false when scanning is off */
static bool settings_of(const mw_config *cfg, struct mw_virus_settings *s)
{
	const char *kind = mw_config_str(cfg, MWK_MILTER_VIRUS_SCAN);
	memset(s, 0, sizeof(*s));
	if (strcmp(kind, "off") == 0)
		return false;
	s->engine = strcmp(kind, "clamd") == 0 ? MW_VIRUS_CLAMD : MW_VIRUS_LIBCLAMAV;
	s->signatures = mw_config_str(cfg, MWK_MILTER_VIRUS_SIGNATURES);
	s->tmpdir = mw_config_str(cfg, MWK_MILTER_VIRUS_TMPDIR);
	s->clamd_socket = mw_config_str(cfg, MWK_MILTER_VIRUS_CLAMD_SOCKET);
	s->clamd_timeout_ms = (unsigned)mw_config_int(cfg, MWK_MILTER_VIRUS_CLAMD_TIMEOUT) * 1000u;
	s->max_scansize = (uint64_t)mw_config_int(cfg, MWK_MILTER_VIRUS_MAX_SCANSIZE);
	s->max_filesize = (uint64_t)mw_config_int(cfg, MWK_MILTER_VIRUS_MAX_FILESIZE);
	s->max_files = (unsigned)mw_config_int(cfg, MWK_MILTER_VIRUS_MAX_FILES);
	s->max_recursion = (unsigned)mw_config_int(cfg, MWK_MILTER_VIRUS_MAX_RECURSION);
	s->max_scantime_ms = (unsigned)mw_config_int(cfg, MWK_MILTER_VIRUS_MAX_SCANTIME) * 1000u;
	return true;
}

/* engine_get - a counted reference to the current engine (NULL when none) */
static mw_virus *engine_get(void)
{
	mw_virus *v;
	(void)pthread_mutex_lock(&engine_lock);
	v = mw_virus_ref(cur_engine);
	(void)pthread_mutex_unlock(&engine_lock);
	return v;
}

/* build - a new engine for the current config snapshot, swapped in whole; on failure the
   old one stays. The snapshot is taken under build_lock, so a SIGHUP that changes engines
   and a watcher rebuild can never swap in an engine of an older snapshot. WATCHER: build
   only when the current snapshot still wants libclamav. */
static int build(const char *why, bool watcher)
{
	struct mw_virus_settings s;
	struct mw_degraded_state ds;
	bool none;
	int64_t t0;
	mw_virus *v = NULL, *old;
	char e[MILTER_LOGV];
	mw_config *cfg;
	mw_error err;
	long ms;
	int ret = 0;

	(void)pthread_mutex_lock(&build_lock);
	cfg = milter_config_get();
	if (watcher && strcmp(mw_config_str(cfg, MWK_MILTER_VIRUS_SCAN), "libclamav") != 0)
		goto out;
	if (settings_of(cfg, &s)) {
		mw_degraded_watch(MW_DEGRADED_MILTER_VIRUS);
		t0 = mw_mono_ms();
		v = mw_virus_new(&s, &err);
		if (v == NULL) {
			mw_error_log("event=virus_reload status=failed why=%s engine=%s "
			             "note=\"the previous engine stays\" error=%s",
			             why, mw_config_str(cfg, MWK_MILTER_VIRUS_SCAN),
			             mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
			(void)pthread_mutex_lock(&engine_lock);
			none = cur_engine == NULL;
			(void)pthread_mutex_unlock(&engine_lock);
			if (none)
				(void)mw_degraded_enter(MW_DEGRADED_MILTER_VIRUS, "no_engine",
				                        err.msg);
			ret = -1;
			goto out;
		}
		ms = (long)(mw_mono_ms() - t0);
		mw_info("event=virus_reload status=ok why=%s engine=%s signatures=%u build_ms=%ld",
		        why, mw_config_str(cfg, MWK_MILTER_VIRUS_SCAN), mw_virus_signatures(v), ms);
		mw_degraded_get(MW_DEGRADED_MILTER_VIRUS, &ds);
		if (ds.degraded && strcmp(ds.reason, "no_engine") == 0)
			(void)mw_degraded_leave(MW_DEGRADED_MILTER_VIRUS, "an engine was built");
	} else {
		(void)mw_degraded_leave(MW_DEGRADED_MILTER_VIRUS, "virus scanning is off");
	}
	(void)pthread_mutex_lock(&engine_lock);
	old = cur_engine;
	cur_engine = v;
	(void)pthread_mutex_unlock(&engine_lock);
	mw_virus_unref(&old); /* freed here or by the last scan still holding it */
out:
	milter_config_put(&cfg);
	(void)pthread_mutex_unlock(&build_lock);
	return ret;
}

/* watcher - rebuild the libclamav engine when its signatures change (or are missing) */
static void *watcher(void *arg)
{
	(void)arg;
	(void)pthread_mutex_lock(&watch_lock);
	while (!watch_quit) {
		mw_config *cfg = milter_config_get();
		long long secs = mw_config_int(cfg, MWK_MILTER_VIRUS_RELOAD_CHECK);
		bool lib = strcmp(mw_config_str(cfg, MWK_MILTER_VIRUS_SCAN), "libclamav") == 0;
		struct timespec until;
		milter_config_put(&cfg);
		(void)pthread_mutex_unlock(&watch_lock);
		if (secs > 0 && lib) {
			mw_virus *v = engine_get();
			/* no engine: retried every check (signatures may appear after start) */
			if (v == NULL || mw_virus_stale(v))
				(void)build(v == NULL ? "no_engine" : "signatures_changed", true);
			mw_virus_unref(&v);
		}
		(void)clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += secs > 0 ? (time_t)secs : 5;
		(void)pthread_mutex_lock(&watch_lock);
		if (!watch_quit)
			(void)pthread_cond_timedwait(&watch_cond, &watch_lock, &until);
	}
	(void)pthread_mutex_unlock(&watch_lock);
	return NULL;
}

/* milter_scan_init - the first engine and the watcher (after daemonising, signals blocked) */
int milter_scan_init(mw_error *error_r)
{
	int ret = build("start", false);
	if (ret < 0)
		mw_error_set(error_r, "no virus engine (see the log); mail gets virus_on_error "
		                      "until one can be built");
	if (pthread_create(&watch_thread, NULL, watcher, NULL) == 0)
		watch_started = true;
	return ret;
}

/* milter_scan_reload - SIGHUP: a new engine from CFG (in the reload thread) */
void milter_scan_reload(void)
{
	(void)build("sighup", false);
}

/* ucache_clear - close every cached user model and the cache's store (ucache_lock held) */
static void ucache_clear(void)
{
	size_t i;
	for (i = 0; i < UCACHE_SIZE; i++) {
		mw_classifier_close(&ucache[i].c);
		memset(&ucache[i], 0, sizeof(ucache[i]));
	}
	mw_store_close(&ucache_store);
	ucache_url[0] = '\0';
}

/* milter_scan_deinit - stop the watcher, drop the engine */
void milter_scan_deinit(void)
{
	mw_virus *old;
	if (watch_started) {
		(void)pthread_mutex_lock(&watch_lock);
		watch_quit = true;
		(void)pthread_cond_signal(&watch_cond);
		(void)pthread_mutex_unlock(&watch_lock);
		(void)pthread_join(watch_thread, NULL);
		watch_started = false;
	}
	(void)pthread_mutex_lock(&engine_lock);
	old = cur_engine;
	cur_engine = NULL;
	(void)pthread_mutex_unlock(&engine_lock);
	mw_virus_unref(&old);
	(void)pthread_rwlock_wrlock(&cls_rw);
	mw_classifier_close(&cls);
	mw_store_close(&cls_store);
	(void)pthread_rwlock_unlock(&cls_rw);
	(void)pthread_mutex_lock(&ucache_lock);
	ucache_clear();
	(void)pthread_mutex_unlock(&ucache_lock);
}

/* milter_scan_begin - at MAIL FROM (direction known): whether to keep this message */
void milter_scan_begin(struct milter_conn *conn)
{
	struct milter_msg *msg = &conn->msg;
	const mw_config *cfg = conn->cfg;
	msg->scan_virus = strcmp(mw_config_str(cfg, MWK_MILTER_VIRUS_SCAN), "off") != 0 &&
	                  (!msg->outbound || mw_config_bool(cfg, MWK_MILTER_VIRUS_OUTBOUND));
	/* spam: inbound mail only; trusted clients (trusted_networks) are not scored, as they
	   get no SPF/DKIM/DMARC either */
	msg->scan_spam = mw_config_bool(cfg, MWK_SPAM_ENABLE) && !msg->outbound && !conn->trusted;
	msg->scan_wanted = msg->scan_virus || msg->scan_spam;
	msg->scan_over = false;
	mw_str_free(&msg->scan_buf);
	mw_str_init(&msg->scan_buf, 0);
}

/* scan_append - N more bytes of the message, or the over-limit mark */
static void scan_append(struct milter_conn *conn, const void *p, size_t n)
{
	struct milter_msg *msg = &conn->msg;
	size_t max = (size_t)mw_config_int(conn->cfg, MWK_MILTER_SCAN_MAX_SIZE);
	if (!msg->scan_wanted || msg->scan_over)
		return;
	if (n > max || msg->scan_buf.len > max - n) {
		msg->scan_over = true;
		mw_str_free(&msg->scan_buf); /* nothing partial is ever scanned */
		return;
	}
	(void)mw_str_append(&msg->scan_buf, p, n); /* unbounded str: cannot fail */
}

/* milter_scan_header - one header field as received: "Name: value" CRLF */
void milter_scan_header(struct milter_conn *conn, const char *name, const char *value)
{
	if (!conn->msg.scan_wanted)
		return;
	scan_append(conn, name, strlen(name));
	scan_append(conn, conn->leadspc ? ":" : ": ", conn->leadspc ? 1 : 2);
	scan_append(conn, value, strlen(value));
	scan_append(conn, "\r\n", 2);
}

/* milter_scan_eoh - the blank line between header and body */
void milter_scan_eoh(struct milter_conn *conn)
{
	scan_append(conn, "\r\n", 2);
}

/* milter_scan_body - one body chunk */
void milter_scan_body(struct milter_conn *conn, const unsigned char *chunk, size_t len)
{
	scan_append(conn, chunk, len);
}

/* milter_scan_wants_body - whether the body must be read (no SMFIS_SKIP) */
bool milter_scan_wants_body(const struct milter_msg *msg)
{
	return msg->scan_wanted && !msg->scan_over;
}

/* insert_virus_header - X-Mailwarden-Virus at the top, through lib/mw-headers' printer */
static int insert_virus_header(SMFICTX *ctx, const struct milter_conn *conn, bool infected,
                               const char *name)
{
	struct mw_hdr_virus hv;
	mw_str value;
	mw_error err;
	int ret = -1;

	memset(&hv, 0, sizeof(hv));
	hv.infected = infected;
	if (infected && mw_strlcpy(hv.signature, name, sizeof(hv.signature)) < 0)
		hv.signature[0] = '\0';
	mw_str_init(&value, 0);
	if (conn->leadspc)
		(void)mw_str_appendc(&value, ' ');
	if (mw_hdr_virus_print(&hv, &value, &err) < 0) {
		/* a name the header cannot carry: the verdict without it */
		hv.signature[0] = '\0';
		mw_str_reset(&value);
		if (conn->leadspc)
			(void)mw_str_appendc(&value, ' ');
		if (mw_hdr_virus_print(&hv, &value, &err) < 0)
			goto out;
	}
	if (smfi_insheader(ctx, 0, (char *)"X-Mailwarden-Virus", value.buf) == MI_SUCCESS)
		ret = 0;
out:
	mw_str_free(&value);
	return ret;
}

/* A message that goes unscanned: the key that says what to do with it, its log line's
   reason (an error or a warning), what accepting it adds to the log line, the reply when
   the config says reject (a tempfail is 451 4.7.1 with the same text and "try again later") */
struct unscanned {
	enum mw_config_key_id mode_key;
	const char *log_reason;
	bool error;
	const char *accepted, *rcode, *xcode, *reason, *text;
};
/* scan_over_limit's choice for a message that cannot be scanned whole */
static const struct unscanned over_limit = {MWK_MILTER_SCAN_OVER_LIMIT,
                                            "over_limit",
                                            false,
                                            "virus=unscanned_over_limit action=accept_unscanned",
                                            "552",
                                            "5.3.4",
                                            "scan_over_limit",
                                            "message too large or too complex to scan"};
/* virus_on_error's choice when no engine could judge the message */
static const struct unscanned scan_error = {MWK_MILTER_VIRUS_ON_ERROR,
                                            "engine_error",
                                            true,
                                            "virus=unscanned_error action=accept_unscanned",
                                            "554",
                                            "5.7.1",
                                            "virus_scan_error",
                                            "virus scanner unavailable"};

/* unscanned - log it, then accept (0, noted in extra), reject or tempfail (1) as the config
   says */
static int unscanned(struct milter_conn *conn, const struct unscanned *u, const char *why,
                     struct milter_reply *r, char *extra, size_t extra_size)
{
	const char *mode = mw_config_str(conn->cfg, u->mode_key);
	char wb[MILTER_LOGV], qb[MILTER_LOGV];
	const char *q = mw_log_value(qb, sizeof(qb), conn->msg.qid, strlen(conn->msg.qid));
	const char *w = mw_log_value(wb, sizeof(wb), why, strlen(why));
	mw_metrics_inc(MWM_MILTER_SCANS, "virus", "unscanned");
	if (u->error)
		mw_error_log("event=virus_unscanned qid=%s reason=%s action=%s error=%s", q,
		             u->log_reason, mode, w);
	else
		mw_warn("event=virus_unscanned qid=%s reason=%s action=%s detail=%s", q,
		        u->log_reason, mode, w);
	if (strcmp(mode, "accept") == 0) {
		(void)snprintf(extra, extra_size, "%s", u->accepted);
		return 0;
	}
	if (strcmp(mode, "reject") == 0)
		milter_reply_set(r, u->rcode, u->xcode, u->reason, "%s", u->text);
	else
		milter_reply_set(r, "451", "4.7.1", u->reason, "%s, try again later", u->text);
	return 1;
}

/* no_verdict - no engine could judge the message: unscanned, and the milter degraded */
static int no_verdict(struct milter_conn *conn, bool engine, const char *why,
                      struct milter_reply *r, char *extra, size_t extra_size)
{
	int ret = unscanned(conn, &scan_error, why, r, extra, extra_size);
	(void)mw_degraded_enter(MW_DEGRADED_MILTER_VIRUS, engine ? "scan_error" : "no_engine", why);
	return ret;
}

/* virus_stage - scan the kept message and act on the verdict */
static int virus_stage(SMFICTX *ctx, struct milter_conn *conn, struct milter_reply *r, char *extra,
                       size_t extra_size)
{
	struct milter_msg *msg = &conn->msg;
	const char *action = mw_config_str(conn->cfg, MWK_MILTER_VIRUS_ACTION);
	char name[MW_VIRUS_NAME_MAX + 1], n[MILTER_REPLY_MAX], e[MILTER_LOGV];
	enum mw_virus_status st;
	mw_virus *v;
	mw_error err;

	if (msg->scan_over) {
		char why[80];
		(void)snprintf(why, sizeof(why), "message over scan_max_size (%lld bytes)",
		               mw_config_int(conn->cfg, MWK_MILTER_SCAN_MAX_SIZE));
		return unscanned(conn, &over_limit, why, r, extra, extra_size);
	}
	v = engine_get();
	if (v == NULL)
		return no_verdict(conn, false, "no virus engine", r, extra, extra_size);
	st = mw_virus_scan(v, msg->scan_buf.buf != NULL ? msg->scan_buf.buf : "", msg->scan_buf.len,
	                   name, sizeof(name), &err);
	mw_virus_unref(&v);
	switch (st) {
	case MW_VIRUS_ERROR:
		return no_verdict(conn, true, err.msg, r, extra, extra_size);
	case MW_VIRUS_LIMIT:
		return unscanned(conn, &over_limit, err.msg, r, extra, extra_size);
	case MW_VIRUS_CLEAN:
		(void)mw_degraded_leave(MW_DEGRADED_MILTER_VIRUS, "a scan answered");
		mw_metrics_inc(MWM_MILTER_SCANS, "virus", "clean");
		(void)snprintf(extra, extra_size, "virus=clean");
		if (strcmp(action, "tag") == 0 && insert_virus_header(ctx, conn, false, "") < 0)
			goto mta_failed;
		return 0;
	case MW_VIRUS_FOUND:
		break;
	}
	(void)mw_degraded_leave(MW_DEGRADED_MILTER_VIRUS, "a scan answered");
	mw_metrics_inc(MWM_MILTER_SCANS, "virus", "infected");
	(void)snprintf(extra, extra_size, "virus=found signature=%s",
	               mw_log_value(e, sizeof(e), name, strlen(name)));
	{
		char q[MILTER_LOGV];
		mw_info("event=virus_found qid=%s direction=%s signature=%s action=%s",
		        mw_log_value(q, sizeof(q), msg->qid[0] != '\0' ? msg->qid : "-",
		                     strlen(msg->qid[0] != '\0' ? msg->qid : "-")),
		        msg->outbound ? "outbound" : "inbound", e, action);
	}
	if (strcmp(action, "reject") == 0) {
		milter_reply_value(n, sizeof(n), name);
		milter_reply_set(r, "554", "5.7.1", "virus_found", "virus found: %s", n);
		return 1;
	}
	if (insert_virus_header(ctx, conn, true, name) < 0)
		goto mta_failed;
	if (strcmp(action, "quarantine") == 0) {
		char reason[MILTER_REPLY_MAX + 20];
		milter_reply_value(n, sizeof(n), name);
		(void)snprintf(reason, sizeof(reason), "virus found: %s", n);
		if (smfi_quarantine(ctx, reason) != MI_SUCCESS)
			goto mta_failed;
		msg->quarantined = true;
	}
	return 0;
mta_failed:
	milter_reply_set(r, "451", "4.7.1", "mta_action_failed", "internal error, try again later");
	return 1;
}

/* classifier_ensure - the shared classifier for CFG's store (opened or reopened here) */
static void classifier_ensure(const mw_config *cfg)
{
	const char *url = mw_config_str(cfg, MWK_STORE);
	struct mw_classifier_settings cs;
	int64_t now;
	bool current;
	mw_error err;
	mw_store *store;
	mw_classifier *c = NULL;
	char e[MILTER_LOGV];

	mw_degraded_watch(MW_DEGRADED_MILTER_CLASSIFIER);
	(void)pthread_rwlock_rdlock(&cls_rw);
	current = cls != NULL && strcmp(cls_url, url) == 0;
	(void)pthread_rwlock_unlock(&cls_rw);
	if (current)
		return;
	(void)pthread_mutex_lock(&cls_open_lock);
	now = mw_mono_s();
	if (now < cls_next_try)
		goto out;
	(void)pthread_rwlock_rdlock(&cls_rw);
	current = cls != NULL && strcmp(cls_url, url) == 0;
	(void)pthread_rwlock_unlock(&cls_rw);
	if (current)
		goto out;
	store =
	    mw_store_open(url, (unsigned)mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT) * 1000u, &err);
	if (store == NULL || mw_classifier_open(store, &c, &err) < 0) {
		mw_store_close(&store);
		cls_next_try = now + CLS_RETRY_SECS;
		/* the first failure is the degraded line; the retries are debug lines */
		mw_log(mw_degraded_enter(MW_DEGRADED_MILTER_CLASSIFIER, "store_error", err.msg)
		           ? MW_LOG_WARNING
		           : MW_LOG_DEBUG,
		       "event=spam_classifier status=unavailable retry_secs=%d error=%s",
		       CLS_RETRY_SECS, mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		goto out;
	}
	mw_classifier_settings_from_config(cfg, &cs);
	mw_classifier_configure(c, &cs);
	(void)pthread_rwlock_wrlock(&cls_rw);
	mw_classifier_close(&cls);
	mw_store_close(&cls_store);
	cls = c;
	cls_store = store;
	(void)mw_strlcpy(cls_url, url, sizeof(cls_url));
	(void)pthread_rwlock_unlock(&cls_rw);
	mw_info("event=spam_classifier status=open");
	(void)mw_degraded_leave(MW_DEGRADED_MILTER_CLASSIFIER, "the classifier is open");
out:
	(void)pthread_mutex_unlock(&cls_open_lock);
}

/* classify - mw_spam's classifier callback over the shared classifier */
static int classify(void *ctx, const char *m, size_t len, double *p_r, mw_error *error_r)
{
	int rc;
	(void)ctx;
	(void)pthread_rwlock_rdlock(&cls_rw);
	if (cls == NULL) {
		(void)pthread_rwlock_unlock(&cls_rw);
		mw_error_set(error_r, "classifier store unavailable");
		return -1;
	}
	rc = mw_classifier_score(cls, m, len, p_r, error_r);
	(void)pthread_rwlock_unlock(&cls_rw);
	return rc;
}

/* ucache_get - the cache entry of username, looked up and loaded as needed (ucache_lock
   held); NULL when the store fails (error_r) */
static struct ucache_entry *ucache_get(const mw_config *cfg, const char *username,
                                       mw_error *error_r)
{
	const char *url = mw_config_str(cfg, MWK_STORE);
	struct ucache_entry *e = NULL;
	struct mw_classifier_settings gs, us;
	int64_t now = mw_mono_s();
	size_t i;

	if (ucache_store == NULL || strcmp(ucache_url, url) != 0) {
		ucache_clear();
		ucache_store = mw_store_open(
		    url, (unsigned)mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT) * 1000u, error_r);
		if (ucache_store == NULL)
			return NULL;
		(void)mw_strlcpy(ucache_url, url, sizeof(ucache_url));
	}
	for (i = 0; i < UCACHE_SIZE && e == NULL; i++)
		if (ucache[i].username[0] != '\0' && strcmp(ucache[i].username, username) == 0)
			e = &ucache[i];
	if (e == NULL) {
		e = &ucache[0];
		for (i = 1; i < UCACHE_SIZE; i++)
			if (ucache[i].used < e->used)
				e = &ucache[i];
		mw_classifier_close(&e->c);
		memset(e, 0, sizeof(*e));
	}
	e->used = ++ucache_tick;
	if (e->username[0] == '\0' || (e->scope == 0 && now - e->looked_up >= UCACHE_NEG_SECS)) {
		struct mw_user u;
		int ret = mw_store_user_get(ucache_store, username, &u, error_r);
		if (ret == MW_STORE_ERROR) {
			memset(e, 0, sizeof(*e));
			return NULL;
		}
		(void)mw_strlcpy(e->username, username, sizeof(e->username));
		e->scope = ret == MW_STORE_OK ? u.id : 0;
		e->looked_up = now;
		if (ret == MW_STORE_OK)
			mw_user_clear(&u);
	}
	if (e->scope > 0 && e->c == NULL &&
	    mw_classifier_open_scope(ucache_store, e->scope, &e->c, error_r) < 0) {
		memset(e, 0, sizeof(*e));
		return NULL;
	}
	if (e->c != NULL) {
		mw_classifier_settings_from_config(cfg, &gs);
		mw_classifier_user_settings(&gs, &us);
		mw_classifier_configure(e->c, &us);
	}
	return e;
}

/* classify_user - mw_spam's classifier callback for a message with one recipient: the
   global model mixed with the recipient's own (ctx: the connection) */
static int classify_user(void *ctx, const char *m, size_t len, double *p_r, mw_error *error_r)
{
	const struct milter_conn *conn = ctx;
	struct ucache_entry *e;
	int rc;
	(void)pthread_mutex_lock(&ucache_lock);
	e = ucache_get(conn->cfg, conn->msg.rcpt1, error_r);
	(void)pthread_rwlock_rdlock(&cls_rw);
	if (cls == NULL) {
		(void)pthread_rwlock_unlock(&cls_rw);
		(void)pthread_mutex_unlock(&ucache_lock);
		mw_error_set(error_r, "classifier store unavailable");
		return -1;
	}
	if (e == NULL) {
		/* the user cannot be looked up: the global model alone, as for several
		   recipients (logged, not refused) */
		char q[MILTER_LOGV], w[MILTER_LOGV];
		mw_warn("event=spam_classifier qid=%s status=user_model_unavailable error=%s",
		        mw_log_value(q, sizeof(q), conn->msg.qid, strlen(conn->msg.qid)),
		        mw_log_value(w, sizeof(w), error_r->msg, strlen(error_r->msg)));
		error_r->msg[0] = '\0';
		rc = mw_classifier_score(cls, m, len, p_r, error_r);
	} else
		rc = mw_classifier_score_user(cls, e->c, m, len, p_r, NULL, error_r);
	(void)pthread_rwlock_unlock(&cls_rw);
	(void)pthread_mutex_unlock(&ucache_lock);
	return rc;
}

/* list_lookup - mw_spam's block-list callback over the milter's resolver */
static int list_lookup(void *ctx, const char *name, unsigned char a_r[4], mw_error *error_r)
{
	struct mw_dns_answer ans;
	enum mw_dns_status st = mw_dns_query(ctx, name, MW_DNS_A, &ans, error_r);
	int ret = -1;
	switch (st) {
	case MW_DNS_OK:
		if (ans.count > 0 && ans.len[0] == 4) {
			memcpy(a_r, ans.rec[0], 4);
			ret = 1;
		} else
			mw_error_set(error_r, "malformed A answer");
		break;
	case MW_DNS_NXDOMAIN:
	case MW_DNS_NODATA:
		ret = 0;
		break;
	default:
		if (error_r != NULL && error_r->msg[0] == '\0')
			mw_error_set(error_r, "%s", mw_dns_status_str(st));
		break;
	}
	mw_dns_answer_free(&ans);
	return ret;
}

/* subject_prefix - put PREFIX before the Subject (or add one when there is none) */
static int subject_prefix(SMFICTX *ctx, const struct milter_conn *conn, const char *prefix)
{
	const char *b = conn->msg.scan_buf.buf, *p, *end, *v = NULL, *ve = NULL;
	mw_str value;
	int ret;

	end = b != NULL ? b + conn->msg.scan_buf.len : NULL;
	/* the first Subject field of the kept header (CRLF line ends, folded lines start with
	   blanks); the header ends at the first empty line */
	for (p = b; p != NULL && p < end && !(p[0] == '\r' && p + 1 < end && p[1] == '\n');) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			break;
		if (v == NULL && (size_t)(end - p) > 8 &&
		    mw_ascii_strncasecmp(p, "Subject:", 8) == 0)
			v = p + 8;
		p = nl + 1;
		if (v != NULL && ve == NULL && (p >= end || (*p != ' ' && *p != '\t')))
			ve = nl > v && nl[-1] == '\r' ? nl - 1 : nl;
	}
	mw_str_init(&value, 0);
	(void)mw_str_appends(&value, conn->leadspc ? " " : "");
	(void)mw_str_appends(&value, prefix);
	if (v != NULL && ve != NULL) {
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		(void)mw_str_append(&value, v, (size_t)(ve - v));
		ret = smfi_chgheader(ctx, (char *)"Subject", 1, value.buf);
	} else
		ret = smfi_addheader(ctx, (char *)"Subject", value.buf);
	mw_str_free(&value);
	return ret == MI_SUCCESS ? 0 : -1;
}

/* spam_refuse - a temporary or permanent refusal of a message no one scored */
static int spam_refuse(struct milter_conn *conn, const char *reason, const char *mode,
                       const char *why, struct milter_reply *r, char *extra, size_t extra_size)
{
	char q[MILTER_LOGV], w[MILTER_LOGV];
	mw_error_log("event=spam_unscored qid=%s reason=%s action=%s error=%s",
	             mw_log_value(q, sizeof(q), conn->msg.qid, strlen(conn->msg.qid)), reason, mode,
	             mw_log_value(w, sizeof(w), why, strlen(why)));
	(void)snprintf(extra, extra_size, "spam=unscored_%s action=%s", reason, mode);
	if (strcmp(reason, "spamd_error") == 0)
		milter_reply_set(r, "451", "4.7.1", "spam_scan_error",
		                 "spam scanner unavailable, try again later");
	else if (strcmp(mode, "reject") == 0)
		milter_reply_set(r, "552", "5.3.4", "spam_over_limit",
		                 "message too large to scan for spam");
	else
		milter_reply_set(r, "451", "4.7.1", "spam_over_limit",
		                 "message too large to scan for spam, try again later");
	return 1;
}

/* spam_unscored_accept - log a message accepted without a score; RES says so (tests=NAME) */
static void spam_unscored_accept(struct milter_conn *conn, const char *reason, const char *name,
                                 const char *why, struct mw_spam_result *res)
{
	char q[MILTER_LOGV], w[MILTER_LOGV];
	mw_warn("event=spam_unscored qid=%s reason=%s action=accept_unscored error=%s",
	        mw_log_value(q, sizeof(q), conn->msg.qid, strlen(conn->msg.qid)), reason,
	        mw_log_value(w, sizeof(w), why, strlen(why)));
	mw_spam_unscored(name, res);
}

/* spamd_score - RES from spamd (0), or a refusal (1, R filled) */
static int spamd_score(struct milter_conn *conn, const struct mw_spam_settings *s,
                       struct mw_spam_result *res, struct milter_reply *r, char *extra,
                       size_t extra_size)
{
	struct milter_msg *msg = &conn->msg;
	size_t len = msg->scan_buf.len,
	       max = (size_t)mw_config_int(conn->cfg, MWK_SPAM_SPAMD_MAX_SIZE);
	const char *buf = msg->scan_buf.buf != NULL ? msg->scan_buf.buf : "";
	struct mw_spamd_result sr;
	bool truncated = false;
	mw_error err;

	if (len > max) {
		const char *mode = mw_config_str(conn->cfg, MWK_SPAM_SPAMD_OVER_SIZE);
		char why[120];
		(void)snprintf(why, sizeof(why), "message of %zu bytes over spamd_max_size (%zu)",
		               len, max);
		if (strcmp(mode, "accept") == 0) {
			spam_unscored_accept(conn, "spamd_over_size", "SPAMD_TOO_BIG", why, res);
			return 0;
		}
		if (strcmp(mode, "truncate") != 0)
			return spam_refuse(conn, "spamd_over_size", mode, why, r, extra,
			                   extra_size);
		len = mw_spamd_cut(buf, len, max);
		truncated = true;
	}
	err.msg[0] = '\0';
	if (mw_spamd_check(&s->spamd, buf, len, &sr, &err) < 0) {
		const char *mode = mw_config_str(conn->cfg, MWK_SPAM_SPAMD_ON_ERROR);
		(void)mw_degraded_enter(MW_DEGRADED_MILTER_SPAMD, "spamd_error", err.msg);
		if (strcmp(mode, "accept") == 0) {
			spam_unscored_accept(conn, "spamd_error", "SPAMD_UNAVAILABLE", err.msg,
			                     res);
			return 0;
		}
		return spam_refuse(conn, "spamd_error", mode, err.msg, r, extra, extra_size);
	}
	(void)mw_degraded_leave(MW_DEGRADED_MILTER_SPAMD, "spamd answered");
	mw_spam_from_spamd(s, &sr, res);
	if (truncated) {
		size_t n = strlen(res->tests);
		if (n + sizeof(",SPAMD_TRUNCATED") <= sizeof(res->tests))
			(void)snprintf(res->tests + n, sizeof(res->tests) - n, "%sSPAMD_TRUNCATED",
			               n > 0 ? "," : "");
	}
	if (sr.tests_cut) {
		char q[MILTER_LOGV];
		mw_warn("event=spam_spamd_tests_cut qid=%s tests=%u note=\"X-Mailwarden-Spam "
		        "carries the first names that fit\"",
		        mw_log_value(q, sizeof(q), msg->qid, strlen(msg->qid)), sr.ntests);
	}
	return 0;
}

/* builtin_score - RES from lib/mw-spam's tests (and the classifier) */
static void builtin_score(struct milter_conn *conn, struct mw_spam_settings *s,
                          struct mw_spam_result *res, const char *q)
{
	struct milter_msg *msg = &conn->msg;
	struct mw_spam_input in;
	char e[MILTER_LOGV];

	s->dns = list_lookup;
	s->dns_ctx = mw_authcheck_lib_dns(milter_auth_lib(conn->auth));
	if (s->dns_ctx == NULL)
		s->dns = NULL;
	if (mw_config_bool(conn->cfg, MWK_SPAM_CLASSIFIER)) {
		classifier_ensure(conn->cfg);
		s->classify = classify;
		if (mw_config_bool(conn->cfg, MWK_CLASSIFIER_PER_USER) && msg->nrcpt == 1 &&
		    msg->rcpt1[0] != '\0') {
			s->classify = classify_user;
			s->classify_ctx = conn;
		}
	}
	memset(&in, 0, sizeof(in));
	in.msg = msg->scan_buf.buf != NULL ? msg->scan_buf.buf : "";
	in.len = msg->scan_buf.len;
	in.auth = msg->ac != NULL ? mw_authcheck_eom(msg->ac) : NULL;
	in.client_ip = conn->client_addr;
	in.helo = conn->helo;
	in.envfrom = msg->envfrom;
	mw_spam_score(s, &in, res);
	if (res->dns_failures > 0)
		mw_warn("event=spam_list_error qid=%s failures=%u note=\"no score added\" error=%s",
		        q, res->dns_failures,
		        mw_log_value(e, sizeof(e), res->dns_error, strlen(res->dns_error)));
	if (res->classifier_error[0] != '\0')
		mw_warn("event=spam_classifier qid=%s status=skipped error=%s", q,
		        mw_log_value(e, sizeof(e), res->classifier_error,
		                     strlen(res->classifier_error)));
}

/* spam_stage - score an inbound message: X-Mailwarden-Spam, subject prefix, or 550 5.7.1 */
static int spam_stage(SMFICTX *ctx, struct milter_conn *conn, struct milter_reply *r, char *extra,
                      size_t extra_size)
{
	struct milter_msg *msg = &conn->msg;
	struct mw_spam_settings s;
	struct mw_spam_result res;
	char q[MILTER_LOGV], e[MILTER_LOGV], scorebuf[32];
	mw_str value;
	mw_error err;
	long a;

	if (mw_spam_settings_from_config(conn->cfg, &s, &err) < 0) {
		/* checked at load: cannot happen with a loaded snapshot */
		mw_error_log("event=spam_config error=%s",
		             mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		(void)snprintf(extra, extra_size, "spam=unscored_config");
		return 0;
	}
	(void)mw_log_value(q, sizeof(q), msg->qid[0] != '\0' ? msg->qid : "-",
	                   strlen(msg->qid[0] != '\0' ? msg->qid : "-"));
	if (msg->scan_over) {
		/* nothing kept: scan_over_limit, as the virus stage (which, when it ran, let the
		   message through only when that says accept) */
		const char *mode = mw_config_str(conn->cfg, MWK_MILTER_SCAN_OVER_LIMIT);
		char why[80];
		(void)snprintf(why, sizeof(why), "message over scan_max_size (%lld bytes)",
		               mw_config_int(conn->cfg, MWK_MILTER_SCAN_MAX_SIZE));
		if (strcmp(mode, "accept") != 0)
			return spam_refuse(conn, "over_limit", mode, why, r, extra, extra_size);
		spam_unscored_accept(conn, "over_limit", "SCAN_OVER_LIMIT", why, &res);
	} else if (s.backend == MW_SPAM_BACKEND_SPAMD) {
		if (spamd_score(conn, &s, &res, r, extra, extra_size) != 0)
			return 1;
	} else
		builtin_score(conn, &s, &res, q);

	mw_metrics_inc(MWM_MILTER_SCANS, "spam", res.spam ? "spam" : "ham");
	a = res.score < 0 ? -res.score : res.score;
	(void)snprintf(scorebuf, sizeof(scorebuf), "%s%ld.%02ld", res.score < 0 ? "-" : "", a / 100,
	               a % 100);
	/* the log line may cut a long tests list; the header never does */
	if (snprintf(extra, extra_size, "spam=%s score=%s tests=%s%s",
	             s.reject > 0 && res.score >= s.reject ? "reject"
	             : res.spam                            ? "yes"
	                                                   : "no",
	             scorebuf, res.tests[0] != '\0' ? res.tests : "-",
	             s.backend == MW_SPAM_BACKEND_SPAMD ? " backend=spamd" : "") < 0)
		extra[0] = '\0';
	if (s.reject > 0 && res.score >= s.reject) {
		milter_reply_set(r, "550", "5.7.1", "spam", "message looks like spam (score %s)",
		                 scorebuf);
		return 1;
	}
	mw_str_init(&value, 0);
	if (conn->leadspc)
		(void)mw_str_appendc(&value, ' ');
	if (mw_spam_header(&s, &res, &value, &err) < 0 ||
	    smfi_insheader(ctx, 0, (char *)"X-Mailwarden-Spam", value.buf) != MI_SUCCESS) {
		mw_str_free(&value);
		goto mta_failed;
	}
	mw_str_free(&value);
	if (res.spam && mw_config_str(conn->cfg, MWK_SPAM_SUBJECT_PREFIX)[0] != '\0' &&
	    subject_prefix(ctx, conn, mw_config_str(conn->cfg, MWK_SPAM_SUBJECT_PREFIX)) < 0)
		goto mta_failed;
	return 0;
mta_failed:
	milter_reply_set(r, "451", "4.7.1", "mta_action_failed", "internal error, try again later");
	return 1;
}

/* milter_scan_eom - the scan stages, after the headers were stripped and the
   authentication results added; 0 accept, 1 with *r filled to refuse */
int milter_scan_eom(SMFICTX *ctx, struct milter_conn *conn, struct milter_reply *r, char *extra,
                    size_t extra_size)
{
	size_t len = strlen(extra);
	char mine[400] = "";
	int ret = 0;
	if (conn->msg.scan_virus)
		ret = virus_stage(ctx, conn, r, mine, sizeof(mine));
	if (mine[0] != '\0') {
		(void)snprintf(extra + len, extra_size - len, "%s%s", len > 0 ? " " : "", mine);
		len = strlen(extra);
	}
	mine[0] = '\0';
	if (ret == 0 && conn->msg.scan_spam)
		ret = spam_stage(ctx, conn, r, mine, sizeof(mine));
	if (mine[0] != '\0')
		(void)snprintf(extra + len, extra_size - len, "%s%s", len > 0 ? " " : "", mine);
	return ret;
}
