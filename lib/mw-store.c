/* mw-store.c - the store's front: opening, schema versions, and what its entity files share.
 *
 * A store is one mw_db connection (mw-db.h): mw_store_open hands the URL to mw_db_open,
 * which picks the driver ("sqlite:/abs/path" or a bare absolute path; "postgresql://" and
 * "postgres://" when the PostgreSQL driver is built in). The operations live in
 * lib/store/, one file per entity, each written once over mw_db: users.c (users,
 * allowed-From, TOTP state, main password protocols, login state), credentials.c (app
 * passwords, failed authentications), sessions.c, policies.c (rate policies, tag rules),
 * keys.c (DKIM keys), audit.c, training.c (training events, the spam classifier).
 *
 * Public: mw_store_open, mw_store_close, mw_store_migrate, mw_store_schema_version,
 * mw_store_latest_schema_version, mw_store_check_schema, mw_store_data_version(_local),
 * mw_store_backend_name, mw_store_username_normalize, mw_user_status_name/_parse,
 * mw_user_role_name/_parse, mw_store_tables.
 * Shared with lib/store/ (mw-store-private.h): mw_store_check_text,
 * mw_store_username_check, mw_store_hex_check, mw_store_text_copy, mw_store_text_or_null,
 * mw_store_read_row, mw_store_rows_cb, mw_store_list, mw_store_read_ints.
 *
 * Diagnostics: through error_r only; nothing here logs. Messages name the offending
 * argument but never a password hash.
 */
#include "mw-build.h"
#include "mw-log.h"
#include "mw-store-private.h"

#include <stdlib.h>
#include <string.h>

/* mw_store_check_text - a free-text argument: bounded UTF-8 without control characters */
int mw_store_check_text(const char *what, const char *s, size_t max, bool allow_empty,
                        mw_error *error_r)
{
	size_t len;
	if (s == NULL) {
		mw_error_set(error_r, "%s is missing", what);
		return -1;
	}
	len = strnlen(s, max + 1);
	if (len > max) {
		mw_error_set(error_r, "%s is longer than %zu bytes", what, max);
		return -1;
	}
	if (len == 0 && !allow_empty) {
		mw_error_set(error_r, "%s is empty", what);
		return -1;
	}
	return mw_utf8_text_check(what, s, len, error_r);
}

/* mw_store_username_normalize - validate a login name and fold its ASCII letters */
int mw_store_username_normalize(const char *in, char *out, size_t outsize, mw_error *error_r)
{
	size_t len, i, n;
	uint32_t cp;
	if (in == NULL || *in == '\0') {
		mw_error_set(error_r, "username is empty");
		return -1;
	}
	len = strnlen(in, MW_USERNAME_MAX + 1);
	if (len > MW_USERNAME_MAX) {
		mw_error_set(error_r, "username is longer than %d bytes", MW_USERNAME_MAX);
		return -1;
	}
	for (i = 0; i < len; i += n) {
		if ((unsigned char)in[i] < 0x80) { /* ASCII, as mw_utf8_decode reads it */
			cp = (unsigned char)in[i];
			n = 1;
		} else {
			n = mw_utf8_decode(in + i, len - i, &cp);
		}
		if (n == 0) {
			mw_error_set(error_r, "username is not valid UTF-8");
			return -1;
		}
		if (mw_unichar_is_control(cp)) {
			mw_error_set(error_r, "username contains a control character");
			return -1;
		}
		if (cp == ' ' || cp == 0xa0 || cp == 0x2028 || cp == 0x2029 || cp == 0x3000 ||
		    (cp >= 0x2000 && cp <= 0x200b) || cp == 0xfeff) {
			mw_error_set(error_r, "username contains a blank");
			return -1;
		}
		if (cp == '%' || cp == '\'' || cp == '"' || cp == '\\') {
			mw_error_set(error_r, "username contains '%c', which is not allowed",
			             (char)cp);
			return -1;
		}
	}
	if (outsize <= len) {
		mw_error_set(error_r, "username does not fit its buffer");
		return -1;
	}
	memcpy(out, in, len + 1);
	mw_ascii_lower(out);
	return 0;
}

/* mw_store_username_check - the argument is a username in its normalised form */
int mw_store_username_check(const char *username, mw_error *error_r)
{
	char norm[MW_USERNAME_MAX + 1];
	if (mw_store_username_normalize(username, norm, sizeof(norm), error_r) < 0)
		return -1;
	if (strcmp(norm, username) != 0) {
		mw_error_set(error_r, "username is not normalised (upper-case letters)");
		return -1;
	}
	return 0;
}

static const char *const status_names[] = {
    [MW_USER_PENDING] = "pending",
    [MW_USER_ACTIVE] = "active",
    [MW_USER_DISABLED] = "disabled",
};

static const char *const role_names[] = {
    [MW_ROLE_USER] = "user",
    [MW_ROLE_ADMIN] = "admin",
};

/* mw_user_status_name, mw_user_status_parse: the status column's names (ASCII
   case-insensitive when parsed); mw_user_role_name, mw_user_role_parse: the role column's */
MW_ENUM_NAMES(mw_user_status_name, mw_user_status_parse, enum mw_user_status, status_names)
MW_ENUM_NAMES(mw_user_role_name, mw_user_role_parse, enum mw_user_role, role_names)

/* mw_store_open - open the database the URL names */
mw_store *mw_store_open(const char *url, unsigned busy_timeout_ms, mw_error *error_r)
{
	mw_db *db;
	mw_store *store;
	if (url != NULL && strnlen(url, MW_STORE_URL_MAX + 1) > MW_STORE_URL_MAX) {
		mw_error_set(error_r, "store URL is longer than %d bytes", MW_STORE_URL_MAX);
		return NULL;
	}
	db = mw_db_open(url, busy_timeout_ms, error_r);
	if (db == NULL)
		return NULL;
	store = mw_calloc(1, sizeof(*store));
	store->db = db;
	return store;
}

/* mw_store_close - close the store and clear the caller's pointer */
void mw_store_close(mw_store **store)
{
	if (store == NULL || *store == NULL)
		return;
	mw_db_close(&(*store)->db);
	free(*store);
	*store = NULL;
}

/* mw_store_migrate - apply pending migrations */
int mw_store_migrate(mw_store *store, mw_error *error_r)
{
	return mw_db_migrate(store->db, error_r) == MW_STORE_OK ? MW_STORE_OK : MW_STORE_ERROR;
}

/* mw_store_schema_version - the version recorded in the store */
int mw_store_schema_version(mw_store *store, int *version_r, mw_error *error_r)
{
	return mw_db_schema_version(store->db, version_r, error_r);
}

/* the last two: the DMARC aggregate reports received, migration 006 */
const char *const mw_store_tables[] = {
    "users",
    "allowed_from",
    "sessions",
    "app_passwords",
    "rate_policies",
    "tag_rules",
    "dkim_keys",
    "training_events",
    "audit_log",
    "auth_failures",
    "spam_meta",
    "spam_tokens",
    "spam_learned",
    "dmarc_evaluations",
    "dmarc_reports_sent",
    "dmarc_received_reports",
    "dmarc_received_rows",
};
_Static_assert(MW_N_ELEMENTS(mw_store_tables) == MW_STORE_TABLES_COUNT,
               "MW_STORE_TABLES_COUNT is the length of mw_store_tables");

/* mw_store_latest_schema_version - the newest migration this code carries */
int mw_store_latest_schema_version(void)
{
	return mw_db_latest_schema_version();
}

/* mw_store_check_schema - refuse a store that is newer than the code or not migrated */
int mw_store_check_schema(mw_store *store, mw_error *error_r)
{
	int version, latest = mw_db_latest_schema_version();
	if (mw_db_schema_version(store->db, &version, error_r) != MW_STORE_OK)
		return -1;
	if (version > latest) {
		mw_error_set(error_r,
		             "store schema version %d is newer than this mailwarden "
		             "knows (%d): upgrade mailwarden",
		             version, latest);
		return -1;
	}
	if (version < latest) {
		mw_error_set(error_r,
		             "store schema version %d is older than %d: run "
		             "'mailwardenctl init'",
		             version, latest);
		return -1;
	}
	return 0;
}

/* mw_store_data_version - the changes this handle has seen (mw_db_data_version) */
int mw_store_data_version(mw_store *store, uint64_t *version_r, mw_error *error_r)
{
	return mw_db_data_version(store->db, version_r, error_r);
}

/* mw_store_data_version_local - the same, without asking the database */
uint64_t mw_store_data_version_local(const mw_store *store)
{
	return mw_db_data_version_local(store->db);
}

/* mw_store_backend_name - "sqlite" or "postgresql" */
const char *mw_store_backend_name(const mw_store *store)
{
	return mw_db_driver_name(store->db);
}

/* mw_store_hex_check - exactly len lower-case hex digits */
bool mw_store_hex_check(const char *s, size_t len)
{
	size_t i;
	if (s == NULL || strnlen(s, len + 1) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* mw_store_text_copy - a text column into a fixed buffer */
int mw_store_text_copy(const mw_db_row *row, unsigned col, char *buf, size_t size)
{
	const char *t = mw_db_text(row, col);
	return mw_strlcpy(buf, t != NULL ? t : "", size);
}

/* mw_store_text_or_null - an owned copy of a text column, NULL for NULL */
char *mw_store_text_or_null(const mw_db_row *row, unsigned col)
{
	const char *t = mw_db_text(row, col);
	return t != NULL ? mw_strdup(t) : NULL;
}

/* col_size_ok - the field's size fits the column type (a table naming the wrong field is a
   bug; the text types' char[N] cannot be told from a pointer by size, the tests do) */
static bool col_size_ok(const struct mw_store_col *c)
{
	switch (c->type) {
	case MW_STORE_COL_SKIP:
		return true;
	case MW_STORE_COL_INT:
		return c->size == sizeof(int64_t);
	case MW_STORE_COL_BOOL:
		return c->size == sizeof(bool);
	case MW_STORE_COL_DUP:
	case MW_STORE_COL_OPT:
		return c->size == sizeof(char *);
	case MW_STORE_COL_TEXT:
	case MW_STORE_COL_KEY:
	case MW_STORE_COL_TEXT_LAX:
		return c->size > 0;
	}
	return false;
}

/* free_owned - wipe and free the owned texts (DUP, OPT) of elem that rd's table filled (a
   password hash may be one of them) */
static void free_owned(void *elem, const struct mw_store_reader *rd)
{
	for (size_t i = 0; i < rd->ncols; i++) {
		const struct mw_store_col *c = &rd->cols[i];
		char *p;
		if (c->type != MW_STORE_COL_DUP && c->type != MW_STORE_COL_OPT)
			continue;
		memcpy(&p, (char *)elem + c->offset, sizeof(p));
		if (p != NULL)
			mw_memzero(p, strlen(p));
		free(p);
		p = NULL;
		memcpy((char *)elem + c->offset, &p, sizeof(p));
	}
}

/* mw_store_read_row - copy each column of the table into elem, then finish */
int mw_store_read_row(const mw_db_row *row, void *elem, const struct mw_store_reader *rd,
                      mw_error *error_r)
{
	bool ok = true;
	for (size_t i = 0; i < rd->ncols; i++) {
		const struct mw_store_col *c = &rd->cols[i];
		char *field = (char *)elem + c->offset, *p;
		int64_t v;
		bool b;
		if (!col_size_ok(c))
			mw_panic("store: %s column %zu does not fit its field", rd->what, i);
		switch (c->type) {
		case MW_STORE_COL_SKIP:
			break;
		case MW_STORE_COL_INT:
			v = mw_db_int(row, (unsigned)i);
			memcpy(field, &v, sizeof(v));
			break;
		case MW_STORE_COL_BOOL:
			b = mw_db_int(row, (unsigned)i) != 0;
			memcpy(field, &b, sizeof(b));
			break;
		case MW_STORE_COL_KEY:
			if (mw_db_is_null(row, (unsigned)i))
				ok = false;
			/* fall through */
		case MW_STORE_COL_TEXT:
			if (mw_store_text_copy(row, (unsigned)i, field, c->size) < 0)
				ok = false;
			break;
		case MW_STORE_COL_TEXT_LAX:
			(void)mw_store_text_copy(row, (unsigned)i, field, c->size);
			break;
		case MW_STORE_COL_DUP:
		case MW_STORE_COL_OPT:
			p = c->type == MW_STORE_COL_DUP ? mw_db_text_dup(row, (unsigned)i)
			                                : mw_store_text_or_null(row, (unsigned)i);
			memcpy(field, &p, sizeof(p));
			break;
		}
	}
	if (ok && rd->finish != NULL && rd->finish(row, elem) < 0)
		ok = false;
	if (ok)
		return MW_STORE_OK;
	free_owned(elem, rd);
	if (rd->with_id)
		mw_error_set(error_r, "%s %lld is malformed", rd->what,
		             (long long)mw_db_int(row, 0));
	else
		mw_error_set(error_r, "%s is malformed", rd->what);
	return MW_STORE_ERROR;
}

/* mw_store_rows_cb - the row callback that collects rows into an array */
int mw_store_rows_cb(const mw_db_row *row, void *ctx)
{
	struct mw_store_rows *r = ctx;
	void *elem;
	if (r->skip_null0 && mw_db_is_null(row, 0))
		return 0;
	if (r->count == r->cap) {
		r->cap = r->cap == 0 ? 16 : r->cap * 2;
		r->v = mw_realloc(r->v, r->cap * r->size);
	}
	elem = (char *)r->v + r->count * r->size;
	memset(elem, 0, r->size);
	if ((r->reader != NULL ? mw_store_read_row(row, elem, r->reader, r->error_r)
	                       : r->read(row, elem, r->error_r)) != 0)
		return MW_STORE_ERROR;
	r->count++;
	return 0;
}

/* mw_store_list - run q collecting its rows, freeing them on failure */
int mw_store_list(mw_store *store, const struct mw_db_query *q, const struct mw_db_arg *args,
                  size_t nargs, struct mw_store_rows *rows, void (*free_rows)(void *v, size_t n),
                  bool user_rows)
{
	uint64_t seen = 0;
	int ret =
	    mw_db_run(store->db, q, args, nargs, mw_store_rows_cb, rows, &seen, rows->error_r);
	if (ret == MW_STORE_OK && user_rows && seen == 0) {
		mw_error_set(rows->error_r, "no such user");
		ret = MW_STORE_NOTFOUND;
	}
	if (ret != MW_STORE_OK) {
		if (free_rows != NULL)
			free_rows(rows->v, rows->count);
		else
			free(rows->v);
		rows->v = NULL;
		rows->count = 0;
	}
	return ret;
}

/* mw_store_read_ints - columns 0 and 1 as integers */
int mw_store_read_ints(const mw_db_row *row, void *ctx)
{
	int64_t *v = ctx;
	v[0] = mw_db_int(row, 0);
	v[1] = mw_db_int(row, 1);
	return 0;
}
