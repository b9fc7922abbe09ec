/* training.c - the store's training events (spam/ham feedback from the Dovecot plugin)
 * and the statistical spam classifier's model (issue 10).
 *
 * A model lives in a scope (0: global). spam_learn applies one learned message (the
 * message counts, every token's deltas, the digest's label) in one transaction, or inside
 * the caller's open batch (mw_store_spam_batch_begin/_end: the connection's transaction).
 * Counts never go below 0. Token hashes are 64-bit values stored as signed integers.
 *
 * Public: mw_training_verdict_name, mw_store_training_add/_list, mw_training_events_free,
 * mw_store_spam_meta_get, mw_store_spam_tokens_load/_get, mw_store_spam_learned_get,
 * mw_store_spam_learn, mw_store_spam_batch_begin/_end, mw_store_spam_expire/_expire_claim,
 * mw_store_spam_stats, mw_store_spam_scopes.
 *
 * Expiry (migration 007): a token row's last_seen is written by spam_learn only (scoring
 * never writes); spam_expire deletes by age and by size in one transaction, bounded by a
 * row limit, and marks the model reset so in-memory readers reload it whole.
 *
 * Diagnostics: through error_r.
 */
#include "mw-build.h"
#include "mw-store-private.h"

#include <stdlib.h>
#include <string.h>

/* pgsql: parameters in a SELECT list have no column to take their type from: unless the
   driver sends parameter types, write ?2::text, ?3::text, ?4::bigint */
static const struct mw_db_query q_train_add = {
    "recording a training event",
    "INSERT INTO training_events (user_id, message_id, verdict, created_at) "
    "SELECT id, ?2, ?3, ?4 FROM users WHERE username = ?1",
    NULL};
static const struct mw_db_query q_train_list = {
    "listing training events",
    "SELECT e.id, u.username, e.message_id, e.verdict, e.created_at, e.consumed_at "
    "FROM training_events e JOIN users u ON u.id = e.user_id "
    "WHERE e.id > ?1 AND (?2 = 0 OR e.consumed_at IS NULL) ORDER BY e.id LIMIT ?3",
    NULL};
static const struct mw_db_query q_spam_meta_get = {
    "reading the spam model",
    "SELECT nspam, nham, generation, reset_gen, expired_at FROM spam_meta WHERE scope = ?1", NULL};
/* the new generation comes back: the token rows of this message are stamped with it.
   pgsql: `?2 > 0` makes PostgreSQL infer int4 for an untyped parameter: the driver sends
   parameter types (int8), or the text casts ?2::bigint (also in q_spam_token_upsert) */
static const struct mw_db_query q_spam_meta_bump = {
    "updating the spam model",
    "INSERT INTO spam_meta (scope, nspam, nham, generation) "
    "VALUES (?1, CASE WHEN ?2 > 0 THEN ?2 ELSE 0 END, CASE WHEN ?3 > 0 THEN ?3 ELSE 0 END, 1) "
    "ON CONFLICT (scope) DO UPDATE SET "
    "nspam = CASE WHEN spam_meta.nspam + ?2 > 0 THEN spam_meta.nspam + ?2 ELSE 0 END, "
    "nham = CASE WHEN spam_meta.nham + ?3 > 0 THEN spam_meta.nham + ?3 ELSE 0 END, "
    "generation = spam_meta.generation + 1 RETURNING generation",
    NULL};
static const struct mw_db_query q_spam_tokens_load = {
    "reading spam tokens",
    "SELECT hash, nspam, nham, weight FROM spam_tokens WHERE scope = ?1 AND gen > ?2", NULL};
static const struct mw_db_query q_spam_token_upsert = {
    "updating spam tokens",
    "INSERT INTO spam_tokens (scope, hash, nspam, nham, weight, gen, last_seen) "
    "VALUES (?1, ?2, CASE WHEN ?3 > 0 THEN ?3 ELSE 0 END, CASE WHEN ?4 > 0 THEN ?4 ELSE 0 END, "
    "?5, ?6, ?7) ON CONFLICT (scope, hash) DO UPDATE SET "
    "nspam = CASE WHEN spam_tokens.nspam + ?3 > 0 THEN spam_tokens.nspam + ?3 ELSE 0 END, "
    "nham = CASE WHEN spam_tokens.nham + ?4 > 0 THEN spam_tokens.nham + ?4 ELSE 0 END, "
    "weight = spam_tokens.weight + ?5, gen = ?6, last_seen = ?7",
    NULL};
static const struct mw_db_query q_spam_token_get = {
    "reading spam tokens",
    "SELECT hash, nspam, nham, weight FROM spam_tokens WHERE scope = ?1 AND hash = ?2", NULL};
static const struct mw_db_query q_spam_learned_get = {
    "reading learned messages", "SELECT spam FROM spam_learned WHERE scope = ?1 AND digest = ?2",
    NULL};
static const struct mw_db_query q_spam_learned_set = {
    "recording a learned message",
    "INSERT INTO spam_learned (scope, digest, spam, learned_at) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (scope, digest) DO UPDATE "
    "SET spam = excluded.spam, learned_at = excluded.learned_at",
    NULL};
static const struct mw_db_query q_spam_count_old = {
    "counting old spam tokens",
    "SELECT count(*) FROM spam_tokens WHERE scope = ?1 AND last_seen < ?2 AND hash <> ?3", NULL};
static const struct mw_db_query q_spam_expire_age = {
    "expiring old spam tokens",
    "DELETE FROM spam_tokens WHERE scope = ?1 AND hash IN (SELECT hash FROM spam_tokens "
    "WHERE scope = ?1 AND last_seen < ?2 AND hash <> ?3 ORDER BY last_seen, hash LIMIT ?4)",
    NULL};
/* the least useful first: tokens of at most one learned message (hapaxes), then the least
   recently learned */
static const struct mw_db_query q_spam_expire_size = {
    "expiring spam tokens over the size bound",
    "DELETE FROM spam_tokens WHERE scope = ?1 AND hash IN (SELECT hash FROM spam_tokens "
    "WHERE scope = ?1 AND hash <> ?2 ORDER BY CASE WHEN nspam + nham <= 1 THEN 0 ELSE 1 END, "
    "last_seen, hash LIMIT ?3)",
    NULL};
static const struct mw_db_query q_spam_expire_digests = {
    "expiring learned-message digests",
    "DELETE FROM spam_learned WHERE scope = ?1 AND learned_at < ?2", NULL};
static const struct mw_db_query q_spam_count_digests = {
    "counting learned-message digests",
    "SELECT count(*) FROM spam_learned WHERE scope = ?1 AND learned_at < ?2", NULL};
static const struct mw_db_query q_spam_meta_reset = {
    "marking the spam model expired",
    "INSERT INTO spam_meta (scope, generation, reset_gen, expired_at) VALUES (?1, 1, 1, ?2) "
    "ON CONFLICT (scope) DO UPDATE SET generation = spam_meta.generation + 1, "
    "reset_gen = spam_meta.generation + 1, expired_at = ?2",
    NULL};
static const struct mw_db_query q_spam_meta_expired = {
    "recording the spam expiry", "UPDATE spam_meta SET expired_at = ?2 WHERE scope = ?1", NULL};
static const struct mw_db_query q_spam_expire_claim = {
    "claiming the spam expiry",
    "UPDATE spam_meta SET expired_at = ?2 WHERE scope = ?1 AND expired_at <= ?2 - ?3",
    "UPDATE spam_meta SET expired_at = ?2 WHERE scope = ?1 AND expired_at <= ?2::bigint - "
    "?3::bigint"};
static const struct mw_db_query q_spam_stats = {
    "reading spam token statistics",
    "SELECT count(*), coalesce(min(last_seen), 0), coalesce(max(last_seen), 0) "
    "FROM spam_tokens WHERE scope = ?1",
    NULL};
static const struct mw_db_query q_spam_scopes = {
    "listing per-user spam models",
    "SELECT m.scope, u.username, m.nspam, m.nham FROM spam_meta m "
    "LEFT JOIN users u ON u.id = m.scope WHERE m.scope <> 0 ORDER BY m.scope",
    NULL};

/* mw_training_verdict_name - "spam" or "ham", NULL for a bad value */
const char *mw_training_verdict_name(enum mw_training_verdict v)
{
	switch (v) {
	case MW_TRAINING_SPAM:
		return "spam";
	case MW_TRAINING_HAM:
		return "ham";
	}
	return NULL;
}

/* mw_store_training_add - record one spam/ham event (none when the user is unknown) */
int mw_store_training_add(mw_store *store, const char *username, const char *message_id,
                          enum mw_training_verdict verdict, mw_error *error_r)
{
	int ret;
	if (mw_training_verdict_name(verdict) == NULL) {
		mw_error_set(error_r, "invalid training verdict %d", (int)verdict);
		return MW_STORE_ERROR;
	}
	if (message_id == NULL)
		message_id = "";
	if (mw_store_check_text("message id", message_id, MW_MESSAGE_ID_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret =
	    mw_db_change(store->db, &q_train_add,
	                 MW_DB_ARGS(MW_DB_T(username), MW_DB_T(message_id),
	                            MW_DB_T(mw_training_verdict_name(verdict)), MW_DB_I(mw_now())),
	                 error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no such user");
	return ret == MW_STORE_EXISTS ? MW_STORE_ERROR : ret;
}

/* event_verdict - a q_train_list row's verdict (column 3): spam or ham, else malformed */
static int event_verdict(const mw_db_row *row, void *elem)
{
	struct mw_training_event *e = elem;
	const char *verdict = mw_db_text(row, 3);
	if (verdict == NULL || (strcmp(verdict, "spam") != 0 && strcmp(verdict, "ham") != 0))
		return -1;
	e->verdict = strcmp(verdict, "spam") == 0 ? MW_TRAINING_SPAM : MW_TRAINING_HAM;
	return 0;
}

/* the columns of q_train_list */
#define EVENT(type, field) MW_STORE_COL(struct mw_training_event, type, field)
static const struct mw_store_col event_cols[] = {EVENT(INT, id),         EVENT(KEY, username),
                                                 EVENT(DUP, message_id), MW_STORE_COL_SKIPPED,
                                                 EVENT(INT, created_at), EVENT(INT, consumed_at)};
static const struct mw_store_reader event_reader =
    MW_STORE_READER(event_cols, "training event", true, event_verdict);

/* free_events - mw_training_events_free for mw_store_list */
static void free_events(void *v, size_t n)
{
	mw_training_events_free(v, n);
}

/* mw_store_training_list - events after after_id, oldest first */
int mw_store_training_list(mw_store *store, int64_t after_id, unsigned limit, bool pending_only,
                           struct mw_training_event **events_r, size_t *count_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_training_event, &event_reader, false, error_r);
	int ret = mw_store_list(store, &q_train_list,
	                        MW_DB_ARGS(MW_DB_I(after_id < 0 ? 0 : after_id),
	                                   MW_DB_I(pending_only ? 1 : 0),
	                                   MW_DB_I(limit == 0 ? INT64_MAX : (int64_t)limit)),
	                        &rows, free_events, false);
	*events_r = rows.v;
	*count_r = rows.count;
	return ret;
}

/* mw_training_events_free - free what mw_store_training_list returned */
void mw_training_events_free(struct mw_training_event *events, size_t count)
{
	size_t i;
	if (events == NULL)
		return;
	for (i = 0; i < count; i++)
		free(events[i].message_id);
	free(events);
}

/* ---- statistical spam classifier (issue 10) ---- */

/* read_meta - counts and generation of a model */
static int read_meta(const mw_db_row *row, void *ctx)
{
	struct mw_spam_meta *m = ctx;
	m->nspam = mw_db_int(row, 0);
	m->nham = mw_db_int(row, 1);
	m->generation = mw_db_int(row, 2);
	m->reset_gen = mw_db_int(row, 3);
	m->expired_at = mw_db_int(row, 4);
	return 0;
}

/* mw_store_spam_meta_get - learned message counts and generation (zeros when never learned) */
int mw_store_spam_meta_get(mw_store *store, int64_t scope, struct mw_spam_meta *meta_r,
                           mw_error *error_r)
{
	memset(meta_r, 0, sizeof(*meta_r));
	return mw_db_run(store->db, &q_spam_meta_get, MW_DB_ARGS(MW_DB_I(scope)), read_meta, meta_r,
	                 NULL, error_r);
}

struct token_cb {
	mw_spam_token_cb *cb;
	void *ctx;
};

/* read_token - one token row to the caller's callback */
static int read_token(const mw_db_row *row, void *ctx)
{
	const struct token_cb *tc = ctx;
	struct mw_spam_token t;
	t.hash = (uint64_t)mw_db_int(row, 0);
	t.nspam = mw_db_int(row, 1);
	t.nham = mw_db_int(row, 2);
	t.weight = mw_db_double(row, 3);
	tc->cb(tc->ctx, &t);
	return 0;
}

/* mw_store_spam_tokens_load - every token row changed after since_gen, to cb */
int mw_store_spam_tokens_load(mw_store *store, int64_t scope, int64_t since_gen,
                              mw_spam_token_cb *cb, void *ctx, mw_error *error_r)
{
	struct token_cb tc = {cb, ctx};
	return mw_db_run(store->db, &q_spam_tokens_load,
	                 MW_DB_ARGS(MW_DB_I(scope), MW_DB_I(since_gen < 0 ? 0 : since_gen)),
	                 read_token, &tc, NULL, error_r);
}

/* mw_store_spam_tokens_get - the rows of the given tokens, to cb */
int mw_store_spam_tokens_get(mw_store *store, int64_t scope, const uint64_t *hash, size_t count,
                             mw_spam_token_cb *cb, void *ctx, mw_error *error_r)
{
	struct token_cb tc = {cb, ctx};
	size_t i;
	int ret = MW_STORE_OK;
	for (i = 0; i < count && ret == MW_STORE_OK; i++)
		ret = mw_db_run(store->db, &q_spam_token_get,
		                MW_DB_ARGS(MW_DB_I(scope), MW_DB_I((int64_t)hash[i])), read_token,
		                &tc, NULL, error_r);
	return ret;
}

/* read_flag - column 0 as a bool */
static int read_flag(const mw_db_row *row, void *ctx)
{
	*(bool *)ctx = mw_db_int(row, 0) != 0;
	return 0;
}

/* mw_store_spam_learned_get - the label a message digest was learned with */
int mw_store_spam_learned_get(mw_store *store, int64_t scope, const unsigned char *digest,
                              bool *spam_r, mw_error *error_r)
{
	*spam_r = false;
	return mw_db_one(store->db, &q_spam_learned_get,
	                 MW_DB_ARGS(MW_DB_I(scope), MW_DB_B(digest, MW_SPAM_DIGEST_LEN)), read_flag,
	                 spam_r, error_r);
}

/* spam_learn_rows - the statements of one learned message (inside a transaction) */
static int spam_learn_rows(mw_store *store, const struct mw_spam_learn *l, mw_error *error_r)
{
	int64_t generation = 0, now = l->now != 0 ? l->now : mw_now();
	size_t i;
	int ret = mw_db_int_one(store->db, &q_spam_meta_bump,
	                        MW_DB_ARGS(MW_DB_I(l->scope), MW_DB_I(l->dspam), MW_DB_I(l->dham)),
	                        &generation, error_r);
	for (i = 0; ret == MW_STORE_OK && i < l->count; i++) {
		const struct mw_spam_token *t = &l->tokens[i];
		ret =
		    mw_db_change(store->db, &q_spam_token_upsert,
		                 MW_DB_ARGS(MW_DB_I(l->scope), MW_DB_I((int64_t)t->hash),
		                            MW_DB_I(t->nspam), MW_DB_I(t->nham), MW_DB_D(t->weight),
		                            MW_DB_I(generation), MW_DB_I(now)),
		                 error_r);
	}
	if (ret == MW_STORE_OK)
		ret = mw_db_change(store->db, &q_spam_learned_set,
		                   MW_DB_ARGS(MW_DB_I(l->scope),
		                              MW_DB_B(l->digest, MW_SPAM_DIGEST_LEN),
		                              MW_DB_I(l->spam ? 1 : 0), MW_DB_I(now)),
		                   error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* mw_store_spam_learn - apply one learned message: its own transaction unless in a batch */
int mw_store_spam_learn(mw_store *store, const struct mw_spam_learn *learn, mw_error *error_r)
{
	int ret;
	if (learn->digest == NULL || (learn->count > 0 && learn->tokens == NULL)) {
		mw_error_set(error_r, "spam learn: no digest or tokens");
		return MW_STORE_ERROR;
	}
	if (mw_db_in_transaction(store->db))
		return spam_learn_rows(store, learn, error_r);
	ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	return mw_db_end(store->db, spam_learn_rows(store, learn, error_r), error_r);
}

/* mw_store_spam_batch_begin - start one transaction for many spam_learn calls */
int mw_store_spam_batch_begin(mw_store *store, mw_error *error_r)
{
	if (mw_db_in_transaction(store->db)) {
		mw_error_set(error_r, "spam learn batch already open");
		return MW_STORE_ERROR;
	}
	return mw_db_begin(store->db, error_r);
}

/* mw_store_spam_batch_end - commit (or roll back) a batch */
int mw_store_spam_batch_end(mw_store *store, bool commit, mw_error *error_r)
{
	if (!mw_db_in_transaction(store->db)) {
		mw_error_set(error_r, "no spam learn batch open");
		return MW_STORE_ERROR;
	}
	if (commit)
		return mw_db_end(store->db, MW_STORE_OK, error_r);
	(void)mw_db_end(store->db, MW_STORE_ERROR, NULL);
	return MW_STORE_OK;
}

/* ---- token expiry (migration 007) ---- */

/* read_stats - the token statistics row */
static int read_stats(const mw_db_row *row, void *ctx)
{
	struct mw_spam_stats *st = ctx;
	st->tokens = mw_db_int(row, 0);
	st->oldest = mw_db_int(row, 1);
	st->newest = mw_db_int(row, 2);
	return 0;
}

/* expire_rows - the statements of one expiry (inside its transaction) */
static int expire_rows(mw_store *store, const struct mw_spam_expire *x,
                       struct mw_spam_expire_result *res, mw_error *error_r)
{
	int64_t left = x->limit > 0 ? x->limit : INT64_MAX, n = 0, cutoff;
	int64_t keep = (int64_t)x->keep;
	uint64_t changed = 0;
	struct mw_spam_stats st = {{0, 0, 0, 0, 0}, 0, 0, 0};
	int ret = mw_db_run(store->db, &q_spam_stats, MW_DB_ARGS(MW_DB_I(x->scope)), read_stats,
	                    &st, NULL, error_r);
	/* age counts back from the newest learn (as SpamAssassin's bayes expiry does): a model
	   nobody teaches any more is not emptied by the calendar */
	res->tokens_before = st.tokens;
	cutoff = (st.newest < x->now ? st.newest : x->now) - x->max_age;
	if (ret == MW_STORE_OK && x->max_age > 0) {
		ret = mw_db_int_one(store->db, &q_spam_count_old,
		                    MW_DB_ARGS(MW_DB_I(x->scope), MW_DB_I(cutoff), MW_DB_I(keep)),
		                    &n, error_r);
		n = n < left ? n : left;
		if (ret == MW_STORE_OK && n > 0 && !x->dry_run) {
			ret = mw_db_run(store->db, &q_spam_expire_age,
			                MW_DB_ARGS(MW_DB_I(x->scope), MW_DB_I(cutoff),
			                           MW_DB_I(keep), MW_DB_I(n)),
			                NULL, NULL, &changed, error_r);
			n = (int64_t)changed;
		}
		res->by_age = n;
		left -= n;
		if (ret == MW_STORE_OK)
			ret = mw_db_int_one(store->db, &q_spam_count_digests,
			                    MW_DB_ARGS(MW_DB_I(x->scope), MW_DB_I(cutoff)),
			                    &res->digests, error_r);
		if (ret == MW_STORE_OK && res->digests > 0 && !x->dry_run)
			ret = mw_db_run(store->db, &q_spam_expire_digests,
			                MW_DB_ARGS(MW_DB_I(x->scope), MW_DB_I(cutoff)), NULL, NULL,
			                NULL, error_r);
	}
	if (ret == MW_STORE_OK && x->max_tokens > 0) {
		n = res->tokens_before - res->by_age - x->max_tokens;
		n = n < left ? n : left;
		if (n > 0 && !x->dry_run) {
			ret = mw_db_run(store->db, &q_spam_expire_size,
			                MW_DB_ARGS(MW_DB_I(x->scope), MW_DB_I(keep), MW_DB_I(n)),
			                NULL, NULL, &changed, error_r);
			n = (int64_t)changed;
		}
		res->by_size = n > 0 ? n : 0;
	}
	if (ret != MW_STORE_OK || x->dry_run)
		return ret;
	if (res->by_age + res->by_size > 0)
		return mw_db_run(store->db, &q_spam_meta_reset,
		                 MW_DB_ARGS(MW_DB_I(x->scope), MW_DB_I(x->now)), NULL, NULL, NULL,
		                 error_r);
	return mw_db_run(store->db, &q_spam_meta_expired,
	                 MW_DB_ARGS(MW_DB_I(x->scope), MW_DB_I(x->now)), NULL, NULL, NULL, error_r);
}

/* mw_store_spam_expire - delete old and surplus token rows of one scope (see mw-store.h) */
int mw_store_spam_expire(mw_store *store, const struct mw_spam_expire *x,
                         struct mw_spam_expire_result *res_r, mw_error *error_r)
{
	int ret;
	memset(res_r, 0, sizeof(*res_r));
	if (x->max_age < 0 || x->max_tokens < 0 || x->limit < 0) {
		mw_error_set(error_r, "spam expiry: negative bound");
		return MW_STORE_ERROR;
	}
	if (mw_db_in_transaction(store->db)) {
		mw_error_set(error_r, "spam expiry inside a learn batch");
		return MW_STORE_ERROR;
	}
	ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = expire_rows(store, x, res_r, error_r);
	if (x->dry_run)
		(void)mw_db_end(store->db, MW_STORE_ERROR, NULL);
	else
		ret = mw_db_end(store->db, ret, error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* mw_store_spam_expire_claim - whether this caller runs the scope's automatic expiry now */
int mw_store_spam_expire_claim(mw_store *store, int64_t scope, int64_t now, int64_t interval,
                               mw_error *error_r)
{
	return mw_db_change(store->db, &q_spam_expire_claim,
	                    MW_DB_ARGS(MW_DB_I(scope), MW_DB_I(now), MW_DB_I(interval)), error_r);
}

/* mw_store_spam_stats - a scope's counts, token rows and their age range */
int mw_store_spam_stats(mw_store *store, int64_t scope, struct mw_spam_stats *stats_r,
                        mw_error *error_r)
{
	int ret;
	memset(stats_r, 0, sizeof(*stats_r));
	ret = mw_store_spam_meta_get(store, scope, &stats_r->meta, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	return mw_db_run(store->db, &q_spam_stats, MW_DB_ARGS(MW_DB_I(scope)), read_stats, stats_r,
	                 NULL, error_r);
}

struct scope_cb {
	mw_spam_scope_cb *cb;
	void *ctx;
};

/* read_scope - one per-user model to the caller's callback */
static int read_scope(const mw_db_row *row, void *ctx)
{
	const struct scope_cb *sc = ctx;
	const char *u = mw_db_text(row, 1);
	sc->cb(sc->ctx, mw_db_int(row, 0), u != NULL ? u : "", mw_db_int(row, 2),
	       mw_db_int(row, 3));
	return 0;
}

/* mw_store_spam_scopes - every per-user model with its counts */
int mw_store_spam_scopes(mw_store *store, mw_spam_scope_cb *cb, void *ctx, mw_error *error_r)
{
	struct scope_cb sc = {cb, ctx};
	return mw_db_run(store->db, &q_spam_scopes, MW_DB_NOARGS, read_scope, &sc, NULL, error_r);
}
