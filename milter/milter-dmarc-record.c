/*
 * milter-dmarc-record.c - each DMARC evaluation of inbound mail into the store, for the
 * aggregate reports mailwardenctl dmarc send-reports builds ([dmarc] record = yes).
 *
 * Public: milter_dmarc_record, milter_dmarc_record_deinit.
 *
 * One INSERT per message at its end (a prepared statement cached on the connection), on a
 * store connection of its own behind its own lock: a slow write never holds up the user
 * lookups of milter-users.c. The connection is opened on first use and again when the
 * configured store changes (SIGHUP); while it cannot be opened, opening is retried at most
 * every RETRY_SECS, and messages meanwhile are not recorded.
 *
 * Recording never costs mail: a failure is not the message's failure. The component
 * milter_dmarc_record (lib/mw-degraded.c) logs event=degraded once when recording starts
 * failing and event=recovered when it works again.
 *
 * Diagnostics: only those two log lines.
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-degraded.h"
#include "mw-dmarc-agg.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_SECS      30
#define RECORD_BUSY_MAX 2000 /* ms a record waits for a store lock, at most */

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static mw_store *rec_store;
static char *rec_url;
static int64_t rec_retry_at; /* monotonic seconds: no open attempt before */
static bool rec_watched;

/* store_locked - the recording connection for URL (rec_lock held); NULL with error_r */
static mw_store *store_locked(const char *url, unsigned busy_ms, mw_error *error_r)
{
	mw_store *st;
	if (rec_store != NULL && rec_url != NULL && strcmp(rec_url, url) == 0)
		return rec_store;
	if (rec_url != NULL && strcmp(rec_url, url) == 0 && mw_mono_s() < rec_retry_at) {
		mw_error_set(error_r, "store not open (retried every %d s)", RETRY_SECS);
		return NULL;
	}
	mw_store_close(&rec_store);
	free(rec_url);
	rec_url = mw_strdup(url);
	rec_retry_at = mw_mono_s() + RETRY_SECS;
	st = mw_store_open(url, busy_ms, error_r);
	if (st != NULL && mw_store_check_schema(st, error_r) < 0)
		mw_store_close(&st);
	rec_store = st;
	return st;
}

/* milter_dmarc_record - record the message's DMARC evaluation (never fails the message) */
void milter_dmarc_record(const struct milter_conn *conn, const struct mw_auth_results *res,
                         const struct mw_verdict *v)
{
	const mw_config *cfg = conn->cfg;
	struct mw_dmarc_eval_context c;
	struct mw_dmarc_eval *e;
	unsigned busy_ms;
	mw_error err = {""};
	mw_store *st;
	int ret;

	if (!mw_config_bool(cfg, MWK_DMARC_RECORD))
		return;
	memset(&c, 0, sizeof(c));
	c.source_ip = conn->client_addr;
	c.now = mw_now();
	c.verdict = v;
	c.dmarc_enforce = mw_config_bool(cfg, MWK_MILTER_DMARC_ENFORCE);
	e = mw_malloc(sizeof(*e));
	if (mw_dmarc_eval_from_results(res, &c, e) != 0) {
		free(e);
		return;
	}
	busy_ms = (unsigned)mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT) * 1000u;
	if (busy_ms > RECORD_BUSY_MAX)
		busy_ms = RECORD_BUSY_MAX;
	(void)pthread_mutex_lock(&rec_lock);
	if (!rec_watched) {
		mw_degraded_watch(MW_DEGRADED_MILTER_DMARC_RECORD);
		rec_watched = true;
	}
	st = store_locked(mw_config_str(cfg, MWK_STORE), busy_ms, &err);
	ret = st != NULL ? mw_store_dmarc_eval_add(st, e, &err) : MW_STORE_ERROR;
	(void)pthread_mutex_unlock(&rec_lock);
	free(e);
	if (ret != MW_STORE_OK)
		(void)mw_degraded_enter(MW_DEGRADED_MILTER_DMARC_RECORD,
		                        st == NULL ? "store_open_failed" : "store_error", err.msg);
	else
		(void)mw_degraded_leave(MW_DEGRADED_MILTER_DMARC_RECORD,
		                        "a DMARC evaluation was recorded");
}

/* milter_dmarc_record_deinit - close the recording connection */
void milter_dmarc_record_deinit(void)
{
	(void)pthread_mutex_lock(&rec_lock);
	mw_store_close(&rec_store);
	free(rec_url);
	rec_url = NULL;
	(void)pthread_mutex_unlock(&rec_lock);
}
