/* audit.c - the store's audit log: append-only (triggers refuse UPDATE and DELETE).
 *
 * Listing speaks one vocabulary (lib/mw-audit.def): an action filter matches the current
 * name and every name older releases wrote for it (its aliases, computed here and bound
 * as parameters), and each entry comes back under its current name.
 *
 * Public: mw_store_audit_append, mw_store_audit_list, mw_audit_entries_free.
 *
 * Diagnostics: through error_r.
 */
#include "mw-build.h"
#include "mw-store-private.h"
#include "mw-audit.h"

#include <stdlib.h>
#include <string.h>

/* how many names an action filter binds: the current name and up to ALIASES_MAX aliases */
#define ALIASES_MAX 4

static const struct mw_db_query q_audit_add = {
    "appending to the audit log",
    "INSERT INTO audit_log (at, actor, action, target, client, details) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    NULL};

/* ?1 the paging id, ?2 actor, ?3 action and ?8..?11 its aliases, ?4 target, ?5 since,
   ?6 until, ?7 limit */
#define AUDIT_SELECT "SELECT id, at, actor, action, target, client, details FROM audit_log "
#define AUDIT_FILTER                                                                               \
	"AND (CAST(?2 AS TEXT) IS NULL OR actor = ?2) "                                            \
	"AND (CAST(?3 AS TEXT) IS NULL OR action IN (?3, ?8, ?9, ?10, ?11)) "                      \
	"AND (CAST(?4 AS TEXT) IS NULL OR target = ?4) "                                           \
	"AND (CAST(?5 AS BIGINT) IS NULL OR at >= ?5) AND (CAST(?6 AS BIGINT) IS NULL OR at <= "   \
	"?6) "
static const struct mw_db_query q_audit_list = {
    "listing the audit log", AUDIT_SELECT "WHERE id > ?1 " AUDIT_FILTER "ORDER BY id LIMIT ?7",
    NULL};
static const struct mw_db_query q_audit_list_desc = {
    "listing the audit log",
    AUDIT_SELECT "WHERE (CAST(?1 AS BIGINT) = 0 OR id < ?1) " AUDIT_FILTER
                 "ORDER BY id DESC LIMIT ?7",
    NULL};

/* mw_store_audit_append - add one entry to the append-only audit log */
int mw_store_audit_append(mw_store *store, const char *actor, const char *action,
                          const char *target, const char *client, const char *details,
                          mw_error *error_r)
{
	int ret;
	if (target == NULL)
		target = "";
	if (client == NULL)
		client = "";
	if (details == NULL)
		details = "";
	if (mw_store_check_text("audit actor", actor, MW_AUDIT_FIELD_MAX, false, error_r) < 0 ||
	    mw_store_check_text("audit action", action, MW_AUDIT_FIELD_MAX, false, error_r) < 0 ||
	    mw_store_check_text("audit target", target, MW_AUDIT_FIELD_MAX, true, error_r) < 0 ||
	    mw_store_check_text("audit client", client, MW_AUDIT_FIELD_MAX, true, error_r) < 0)
		return MW_STORE_ERROR;
	/* details is JSON text: may span lines, so only length and UTF-8 are checked */
	if (strnlen(details, MW_AUDIT_DETAILS_MAX + 1) > MW_AUDIT_DETAILS_MAX) {
		mw_error_set(error_r, "audit details are longer than %d bytes",
		             MW_AUDIT_DETAILS_MAX);
		return MW_STORE_ERROR;
	}
	if (!mw_utf8_valid(details, strlen(details), NULL)) {
		mw_error_set(error_r, "audit details are not valid UTF-8");
		return MW_STORE_ERROR;
	}
	ret = mw_db_change(store->db, &q_audit_add,
	                   MW_DB_ARGS(MW_DB_I(mw_now()), MW_DB_T(actor), MW_DB_T(action),
	                              MW_DB_T(target), MW_DB_T(client), MW_DB_T(details)),
	                   error_r);
	return ret == MW_STORE_OK ? ret : MW_STORE_ERROR;
}

/* action_aliases - the names older releases wrote for the current action name (NULL for
   the unused slots); -1 when there are more than ALIASES_MAX */
static int action_aliases(const char *action, char *aliases[ALIASES_MAX], mw_error *error_r)
{
	const char *p = NULL;
	size_t i, n = 0;
	for (i = 0; action != NULL && i < MW_AUDIT_COUNT; i++)
		if (strcmp(mw_audit_defs[i].name, action) == 0)
			p = mw_audit_defs[i].aliases;
	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, "|");
		if (n == ALIASES_MAX) {
			mw_error_set(error_r, "audit action %s has more than %d older names",
			             action, ALIASES_MAX);
			return -1;
		}
		if (len > 0)
			aliases[n++] = mw_strndup(p, len);
		p += len;
		if (*p == '|')
			p++;
	}
	return 0;
}

/* free_entries - mw_audit_entries_free for mw_store_list */
static void free_entries(void *v, size_t n)
{
	mw_audit_entries_free(v, n);
}

/* entry_action - an audit row's action (column 3) under the current name */
static int entry_action(const mw_db_row *row, void *elem)
{
	struct mw_audit_entry *e = elem;
	const char *action = mw_db_text(row, 3);
	e->action = mw_strdup(action != NULL ? mw_audit_canonical(action) : "");
	return 0;
}

/* the columns of an audit row */
#define ENTRY(type, field) MW_STORE_COL(struct mw_audit_entry, type, field)
static const struct mw_store_col entry_cols[] = {
    ENTRY(INT, id),     ENTRY(INT, at),     ENTRY(DUP, actor),  MW_STORE_COL_SKIPPED,
    ENTRY(DUP, target), ENTRY(DUP, client), ENTRY(DUP, details)};
static const struct mw_store_reader entry_reader =
    MW_STORE_READER(entry_cols, "audit entry", true, entry_action);

/* mw_store_audit_list - one page of audit entries in id order (or newest first) */
int mw_store_audit_list(mw_store *store, const struct mw_audit_filter *f,
                        struct mw_audit_entry **entries_r, size_t *count_r, mw_error *error_r)
{
	struct mw_store_rows rows =
	    MW_STORE_ROWS_OF(struct mw_audit_entry, &entry_reader, false, error_r);
	char *aliases[ALIASES_MAX] = {NULL};
	const char *action;
	size_t i;
	int ret;
	*entries_r = NULL;
	*count_r = 0;
	if ((f->actor != NULL && mw_store_check_text("actor filter", f->actor, MW_AUDIT_FIELD_MAX,
	                                             false, error_r) < 0) ||
	    (f->action != NULL && mw_store_check_text("action filter", f->action,
	                                              MW_AUDIT_FIELD_MAX, false, error_r) < 0) ||
	    (f->target != NULL && mw_store_check_text("target filter", f->target,
	                                              MW_AUDIT_FIELD_MAX, false, error_r) < 0))
		return MW_STORE_ERROR;
	/* one vocabulary (lib/mw-audit.def): filter by the current name, whatever name an
	   older release wrote */
	action = mw_audit_canonical(f->action);
	if (action_aliases(action, aliases, error_r) < 0) {
		ret = MW_STORE_ERROR;
		goto out;
	}
	ret = mw_store_list(store, f->newest_first ? &q_audit_list_desc : &q_audit_list,
	                    MW_DB_ARGS(MW_DB_I(f->newest_first ? f->before_id : f->after_id),
	                               MW_DB_T(f->actor), MW_DB_T(action), MW_DB_T(f->target),
	                               f->since != 0 ? MW_DB_I(f->since) : MW_DB_NUL,
	                               f->until != 0 ? MW_DB_I(f->until) : MW_DB_NUL,
	                               MW_DB_I(f->limit == 0 ? INT64_MAX : (int64_t)f->limit),
	                               MW_DB_T(aliases[0]), MW_DB_T(aliases[1]),
	                               MW_DB_T(aliases[2]), MW_DB_T(aliases[3])),
	                    &rows, free_entries, false);
	*entries_r = rows.v;
	*count_r = rows.count;
out:
	for (i = 0; i < ALIASES_MAX; i++)
		free(aliases[i]);
	return ret;
}

/* mw_audit_entries_free - free what mw_store_audit_list returned */
void mw_audit_entries_free(struct mw_audit_entry *entries, size_t count)
{
	size_t i;
	for (i = 0; i < count; i++) {
		free(entries[i].actor);
		free(entries[i].action);
		free(entries[i].target);
		free(entries[i].client);
		free(entries[i].details);
	}
	free(entries);
}
