/* policies.c - the store's rate policies (mailwarden-policyd) and tag rules (the Dovecot
 * plugin): the rules other components apply, managed through mailwardenctl and the API.
 *
 * A rate policy may belong to a user (user_id, NULL for everyone); a tag rule always
 * does, and goes last in the user's list (position max+1, in one transaction with the
 * count that enforces MW_TAGRULE_MAX_PER_USER).
 *
 * Public: mw_rate_limit_check, mw_rate_policy_check, mw_store_rate_policy_add/_list/_del,
 * mw_store_tag_rule_add/_list/_del.
 *
 * Diagnostics: through error_r.
 */
#include "mw-build.h"
#include "mw-ratescope.h"
#include "mw-store-private.h"
#include "mw-tagrule.h"

#include <stdlib.h>
#include <string.h>

static const struct mw_db_query q_rate_add = {
    "adding a rate policy",
    "INSERT INTO rate_policies (scope, match, metric, limit_count, window_seconds, action, "
    "user_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
    NULL};
static const struct mw_db_query q_rate_list = {
    "listing rate policies",
    "SELECT r.id, r.scope, r.match, r.metric, r.limit_count, r.window_seconds, r.action, "
    "coalesce(u.username, ''), r.created_at FROM rate_policies r "
    "LEFT JOIN users u ON u.id = r.user_id ORDER BY r.id",
    NULL};
static const struct mw_db_query q_rate_del = {"deleting a rate policy",
                                              "DELETE FROM rate_policies WHERE id = ?1", NULL};
/* pgsql: runs after mw_store_user_id in the transaction; to serialise two adds as SQLite's
   BEGIN IMMEDIATE does, the user's row needs a lock (FOR UPDATE) there */
static const struct mw_db_query q_tag_count = {
    "counting tag rules",
    "SELECT count(*), coalesce(max(position), 0) FROM tag_rules WHERE user_id = ?1", NULL};
static const struct mw_db_query q_tag_add = {
    "adding a tag rule",
    "INSERT INTO tag_rules (user_id, position, field, match_type, value, keyword, mailbox, "
    "enabled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
    NULL};
static const struct mw_db_query q_tag_list = {
    "listing tag rules",
    "SELECT t.id, t.position, t.field, t.match_type, t.value, t.keyword, t.mailbox, "
    "t.enabled FROM users u LEFT JOIN tag_rules t ON t.user_id = u.id "
    "WHERE u.username = ?1 ORDER BY t.position, t.id",
    NULL};
static const struct mw_db_query q_tag_del = {
    "deleting a tag rule",
    "DELETE FROM tag_rules WHERE id = ?2 "
    "AND user_id = (SELECT id FROM users WHERE username = ?1)",
    NULL};

/* mw_rate_limit_check - count and window inside what the rate counters compute exactly */
int mw_rate_limit_check(int64_t count, int64_t window_seconds, bool per_message, mw_error *error_r)
{
	if (count < 1 || count > MW_RATE_COUNT_MAX) {
		mw_error_set(error_r,
		             "count must be a whole number in 1..%lld (the largest the rate "
		             "counters compute exactly)",
		             MW_RATE_COUNT_MAX);
		return -1;
	}
	if ((window_seconds != 0 || !per_message) &&
	    (window_seconds < 1 || window_seconds > MW_RATE_WINDOW_MAX)) {
		mw_error_set(error_r, "window must be 1..%lld seconds (1s..366d)",
		             MW_RATE_WINDOW_MAX);
		return -1;
	}
	return 0;
}

/* rate_word - VALUE is one of the words of LIST ("a|b|c") */
static bool rate_word(const char *list, const char *value)
{
	size_t n = strlen(value);
	while (*list != '\0') {
		size_t w = strcspn(list, "|");
		if (w == n && n > 0 && strncmp(list, value, n) == 0)
			return true;
		list += w;
		if (*list == '|')
			list++;
	}
	return false;
}

/* mw_rate_policy_check - a rate policy's scope, metric, action, limit and match (what
   mw_store_rate_policy_add checks; mailwardenctl --api checks the same before sending) */
int mw_rate_policy_check(const struct mw_rate_policy *p, mw_error *error_r)
{
	struct mw_rate_scope sc;
	if (memchr(p->scope, '\0', sizeof(p->scope)) == NULL ||
	    mw_rate_scope_parse(p->scope, strlen(p->scope), &sc, error_r) < 0) {
		if (strncmp(error_r != NULL ? error_r->msg : "", "unknown scope", 13) == 0)
			mw_error_set(error_r, "unknown rate policy scope");
		else
			mw_error_prefix(error_r, "rate policy scope: ");
		return -1;
	}
	if (sc.dir != MW_RATE_OUTBOUND && memchr(p->username, '\0', sizeof(p->username)) != NULL &&
	    p->username[0] != '\0') {
		mw_error_set(error_r,
		             "rate policy direction %s: a per-user policy counts the "
		             "user's outbound mail only",
		             mw_rate_dir_name(sc.dir));
		return -1;
	}
	if (!rate_word("messages|recipients|size", p->metric)) {
		mw_error_set(error_r, "unknown rate policy metric (messages, recipients or size)");
		return -1;
	}
	if (!rate_word("defer|reject", p->action)) {
		mw_error_set(error_r, "unknown rate policy action (defer or reject)");
		return -1;
	}
	if (mw_rate_limit_check(p->limit_count, p->window_seconds, false, error_r) < 0) {
		mw_error_prefix(error_r, "rate policy: ");
		return -1;
	}
	if (memchr(p->match, '\0', sizeof(p->match)) == NULL ||
	    mw_store_check_text("rate policy match", p->match, MW_RATE_MATCH_MAX, true, error_r) <
	        0)
		return -1;
	return 0;
}

/* mw_store_rate_policy_add - add a rate policy after checking every field */
int mw_store_rate_policy_add(mw_store *store, const struct mw_rate_policy *policy, int64_t *id_r,
                             mw_error *error_r)
{
	struct mw_rate_policy p = *policy;
	int64_t uid = 0, id;
	int ret = MW_STORE_OK;
	if (mw_rate_policy_check(&p, error_r) < 0)
		return MW_STORE_ERROR;
	if (memchr(p.username, '\0', sizeof(p.username)) == NULL)
		return MW_STORE_ERROR;
	if (p.username[0] != '\0' && mw_store_username_normalize(policy->username, p.username,
	                                                         sizeof(p.username), error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (p.username[0] != '\0')
		ret = mw_store_user_id(store, p.username, &uid, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = mw_db_int_one(store->db, &q_rate_add,
	                    MW_DB_ARGS(MW_DB_T(p.scope), MW_DB_T(p.match), MW_DB_T(p.metric),
	                               MW_DB_I(p.limit_count), MW_DB_I(p.window_seconds),
	                               MW_DB_T(p.action), uid != 0 ? MW_DB_I(uid) : MW_DB_NUL,
	                               MW_DB_I(mw_now())),
	                    id_r != NULL ? id_r : &id, error_r);
	return ret == MW_STORE_NOTFOUND ? MW_STORE_ERROR : ret;
}

/* the columns of q_rate_list */
#define RATE(type, field) MW_STORE_COL(struct mw_rate_policy, type, field)
static const struct mw_store_col rate_cols[] = {
    RATE(INT, id),          RATE(TEXT_LAX, scope),    RATE(TEXT_LAX, match),
    RATE(TEXT_LAX, metric), RATE(INT, limit_count),   RATE(INT, window_seconds),
    RATE(TEXT_LAX, action), RATE(TEXT_LAX, username), RATE(INT, created_at)};
static const struct mw_store_reader rate_reader =
    MW_STORE_READER(rate_cols, "rate policy", true, NULL);

/* mw_store_rate_policy_list - every rate policy, id order */
int mw_store_rate_policy_list(mw_store *store, struct mw_rate_policy **policies_r, size_t *count_r,
                              mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_rate_policy, &rate_reader, false, error_r);
	int ret = mw_store_list(store, &q_rate_list, MW_DB_NOARGS, &rows, NULL, false);
	*policies_r = rows.v;
	*count_r = rows.count;
	return ret;
}

/* mw_store_rate_policy_del - delete a rate policy by id */
int mw_store_rate_policy_del(mw_store *store, int64_t id, mw_error *error_r)
{
	int ret;
	if (id > 0)
		ret = mw_db_change(store->db, &q_rate_del, MW_DB_ARGS(MW_DB_I(id)), error_r);
	else
		ret = MW_STORE_NOTFOUND;
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "no rate policy with id %lld", (long long)id);
	return ret;
}

/* ---- tag rules (Dovecot plugin, issue 6) ---- */

/* tag_rule_insert - append a rule after the user's last one (inside a transaction) */
static int tag_rule_insert(mw_store *store, const char *username, const struct mw_tag_rule *rule,
                           int64_t *id_r, mw_error *error_r)
{
	int64_t uid = 0, count_last[2] = {0, 0};
	int ret = mw_store_user_id(store, username, &uid, error_r);
	if (ret == MW_STORE_OK)
		ret = mw_db_one(store->db, &q_tag_count, MW_DB_ARGS(MW_DB_I(uid)),
		                mw_store_read_ints, count_last, error_r);
	if (ret != MW_STORE_OK)
		return ret == MW_STORE_NOTFOUND && uid != 0 ? MW_STORE_ERROR : ret;
	if (count_last[0] >= MW_TAGRULE_MAX_PER_USER) {
		mw_error_set(error_r, "%s already has %d tag rules, the most allowed", username,
		             MW_TAGRULE_MAX_PER_USER);
		return MW_STORE_ERROR;
	}
	ret =
	    mw_db_int_one(store->db, &q_tag_add,
	                  MW_DB_ARGS(MW_DB_I(uid), MW_DB_I(count_last[1] + 1), MW_DB_T(rule->field),
	                             MW_DB_T(mw_tagrule_match_name(rule->match)),
	                             MW_DB_T(rule->value), MW_DB_T(rule->keyword),
	                             MW_DB_T(rule->mailbox), MW_DB_I(rule->enabled ? 1 : 0)),
	                  id_r, error_r);
	if (ret != MW_STORE_OK)
		return MW_STORE_ERROR;
	return mw_store_user_touch(store, uid, error_r);
}

/* mw_store_tag_rule_add - append a checked rule to the user's list */
int mw_store_tag_rule_add(mw_store *store, const char *username, const struct mw_tag_rule *rule,
                          int64_t *id_r, mw_error *error_r)
{
	int64_t id;
	int ret;
	if (rule == NULL || mw_tagrule_check(rule, error_r) < 0)
		return MW_STORE_ERROR;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_db_begin(store->db, error_r);
	if (ret != MW_STORE_OK)
		return ret;
	ret = tag_rule_insert(store, username, rule, id_r != NULL ? id_r : &id, error_r);
	return mw_db_end(store->db, ret, error_r);
}

/* tag_rule_match - a q_tag_list row's match type (column 3; an unknown one is kept as an
   invalid value: the caller skips the rule) */
static int tag_rule_match(const mw_db_row *row, void *elem)
{
	struct mw_tag_rule *r = elem;
	const char *m = mw_db_text(row, 3);
	if (m == NULL || mw_tagrule_match_parse(m, &r->match) < 0)
		r->match = (enum mw_tagrule_match) - 1;
	return 0;
}

/* the columns of q_tag_list */
#define TAG(type, field) MW_STORE_COL(struct mw_tag_rule, type, field)
static const struct mw_store_col tag_cols[] = {
    TAG(INT, id),    TAG(INT, position), TAG(OPT, field),   MW_STORE_COL_SKIPPED,
    TAG(OPT, value), TAG(OPT, keyword),  TAG(OPT, mailbox), TAG(BOOL, enabled)};
static const struct mw_store_reader tag_reader =
    MW_STORE_READER(tag_cols, "tag rule", true, tag_rule_match);

/* free_tag_rules - mw_tag_rules_free for mw_store_list */
static void free_tag_rules(void *v, size_t n)
{
	mw_tag_rules_free(v, n);
}

/* mw_store_tag_rule_list - a user's rules in position order, in one read (an unknown user
   has no row, a user without rules one row of NULLs) */
int mw_store_tag_rule_list(mw_store *store, const char *username, struct mw_tag_rule **rules_r,
                           size_t *count_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_tag_rule, &tag_reader, true, error_r);
	int ret;
	*rules_r = NULL;
	*count_r = 0;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	ret = mw_store_list(store, &q_tag_list, MW_DB_ARGS(MW_DB_T(username)), &rows,
	                    free_tag_rules, true);
	*rules_r = rows.v;
	*count_r = rows.count;
	return ret;
}

/* mw_store_tag_rule_del - delete one of the user's rules */
int mw_store_tag_rule_del(mw_store *store, const char *username, int64_t id, mw_error *error_r)
{
	int ret;
	if (mw_store_username_check(username, error_r) < 0)
		return MW_STORE_NOTFOUND;
	if (id <= 0) {
		mw_error_set(error_r, "no rule with id %lld", (long long)id);
		return MW_STORE_NOTFOUND;
	}
	ret = mw_db_change(store->db, &q_tag_del, MW_DB_ARGS(MW_DB_T(username), MW_DB_I(id)),
	                   error_r);
	if (ret == MW_STORE_NOTFOUND)
		mw_error_set(error_r, "%s has no tag rule %lld", username, (long long)id);
	return ret;
}
