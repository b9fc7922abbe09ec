/* ctl-store.c - mailwardenctl store migrate and store copy: the store as a whole.
 *
 * store migrate [URL]: apply the pending migrations of the configured store (or URL), as
 * init does, without touching the master key.
 *
 * store copy SRC DST [--force]: every row of every table of SRC into DST (SQLite to
 * PostgreSQL when a host moves onto a shared store, or back). Both are brought to the latest
 * schema version first (SRC only read: it must already be there). The copy runs in ONE
 * transaction on DST: the rows, PostgreSQL's identity counters moved past the copied ids,
 * then the check - per table the row count and an order-independent checksum (the sum of
 * each row's BLAKE2b digest over its typed values) read back from DST must equal SRC's -
 * and commits only when every table matches. A DST with any row is refused (exit 4) unless
 * --force, which empties a PostgreSQL DST first (TRUNCATE; a SQLite DST must be a new file:
 * its audit log cannot be emptied). Progress: one line per table.
 *
 * The tables are the fixed list mw_store_tables (lib/mw-store.c), parents before children
 * (foreign keys); the columns and their storage classes come from each side's catalog and
 * must agree. A table in the source that the list lacks is refused rather than skipped.
 *
 * Public: cmd_store_migrate, cmd_store_copy (the command table).
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-db.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct copy_table {
	const char *name;
	char **cols;
	enum mw_db_type *kinds;
	size_t ncols;
	/* query objects live until both stores are closed: the statement cache is keyed by
	   their addresses */
	struct mw_db_query select, insert, count, setval;
	mw_str select_sql, insert_sql, count_sql, setval_sql;
	uint64_t rows_src, rows_dst;
	unsigned char sum_src[16], sum_dst[16];
};

static const struct mw_db_query q_tables = {
    "listing the tables",
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
    "ESCAPE '\\' AND name <> 'schema_version' ORDER BY name",
    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = "
    "current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_version' "
    "ORDER BY 1"};
static const struct mw_db_query q_columns = {
    "listing a table's columns", "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid",
    "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE "
    "table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"};

struct name_list {
	char **v;
	size_t n;
};

/* add_name - collect column 0 */
static int add_name(const mw_db_row *row, void *ctx)
{
	struct name_list *l = ctx;
	l->v = mw_realloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = mw_db_text_dup(row, 0);
	return 0;
}

/* names_free - free a name list */
static void names_free(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* check_tables - SRC has exactly the tables the copy knows */
static int check_tables(mw_db *db, const char *side)
{
	struct name_list l = {NULL, 0};
	mw_error err = {""};
	int ret = EXIT_OK;
	if (mw_db_run(db, &q_tables, MW_DB_NOARGS, add_name, &l, NULL, &err) != MW_STORE_OK) {
		ctl_err("%s: %s", side, err.msg);
		return EXIT_ERROR;
	}
	for (size_t i = 0; i < l.n && ret == EXIT_OK; i++) {
		size_t j;
		for (j = 0; j < MW_STORE_TABLES_COUNT; j++)
			if (strcmp(l.v[i], mw_store_tables[j]) == 0)
				break;
		if (j == MW_STORE_TABLES_COUNT) {
			ctl_err("%s: table %s is not known to store copy: refusing to leave it "
			        "behind",
			        side, l.v[i]);
			ret = EXIT_ERROR;
		}
	}
	if (ret == EXIT_OK && l.n != MW_STORE_TABLES_COUNT) {
		ctl_err("%s: %zu tables, expected %zu", side, l.n, MW_STORE_TABLES_COUNT);
		ret = EXIT_ERROR;
	}
	names_free(&l);
	return ret;
}

struct col_list {
	struct name_list names;
	struct name_list types;
};

/* add_column - collect (name, type) */
static int add_column(const mw_db_row *row, void *ctx)
{
	struct col_list *c = ctx;
	struct name_list *n = &c->names, *t = &c->types;
	n->v = mw_realloc(n->v, (n->n + 1) * sizeof(*n->v));
	n->v[n->n++] = mw_db_text_dup(row, 0);
	t->v = mw_realloc(t->v, (t->n + 1) * sizeof(*t->v));
	t->v[t->n++] = mw_db_text_dup(row, 1);
	return 0;
}

/* load_columns - the columns of t on both sides, which must agree */
static int load_columns(mw_db *src, mw_db *dst, struct copy_table *t)
{
	struct col_list a = {{NULL, 0}, {NULL, 0}}, b = {{NULL, 0}, {NULL, 0}};
	mw_error err = {""};
	int ret = EXIT_OK;

	if (mw_db_run(src, &q_columns, MW_DB_ARGS(MW_DB_T(t->name)), add_column, &a, NULL, &err) !=
	        MW_STORE_OK ||
	    mw_db_run(dst, &q_columns, MW_DB_ARGS(MW_DB_T(t->name)), add_column, &b, NULL, &err) !=
	        MW_STORE_OK) {
		ctl_err("%s: %s", t->name, err.msg);
		ret = EXIT_ERROR;
		goto out;
	}
	if (a.names.n == 0 || a.names.n != b.names.n) {
		ctl_err("%s: %zu columns in the source, %zu in the target", t->name, a.names.n,
		        b.names.n);
		ret = EXIT_ERROR;
		goto out;
	}
	t->ncols = a.names.n;
	t->cols = mw_calloc(t->ncols, sizeof(*t->cols));
	t->kinds = mw_calloc(t->ncols, sizeof(*t->kinds));
	for (size_t i = 0; i < t->ncols; i++) {
		enum mw_db_type ka, kb;
		if (strcmp(a.names.v[i], b.names.v[i]) != 0 ||
		    mw_db_decltype(a.types.v[i], &ka) < 0 ||
		    mw_db_decltype(b.types.v[i], &kb) < 0 || ka != kb) {
			ctl_err("%s: column %zu differs: %s %s in the source, %s %s in the target",
			        t->name, i + 1, a.names.v[i], a.types.v[i], b.names.v[i],
			        b.types.v[i]);
			ret = EXIT_ERROR;
			goto out;
		}
		t->cols[i] = mw_strdup(a.names.v[i]);
		t->kinds[i] = ka;
	}
out:
	names_free(&a.names);
	names_free(&a.types);
	names_free(&b.names);
	names_free(&b.types);
	return ret;
}

/* build_queries - SELECT every column, INSERT every column (identifiers from the catalog:
   quoted) */
static void build_queries(struct copy_table *t)
{
	(void)mw_str_appends(&t->select_sql, "SELECT ");
	(void)mw_str_appendf(&t->insert_sql, "INSERT INTO \"%s\" (", t->name);
	for (size_t i = 0; i < t->ncols; i++) {
		(void)mw_str_appendf(&t->select_sql, "%s\"%s\"", i > 0 ? ", " : "", t->cols[i]);
		(void)mw_str_appendf(&t->insert_sql, "%s\"%s\"", i > 0 ? ", " : "", t->cols[i]);
	}
	(void)mw_str_appendf(&t->select_sql, " FROM \"%s\"", t->name);
	(void)mw_str_appends(&t->insert_sql, ") VALUES (");
	for (size_t i = 0; i < t->ncols; i++)
		(void)mw_str_appendf(&t->insert_sql, "%s?%zu", i > 0 ? ", " : "", i + 1);
	(void)mw_str_appends(&t->insert_sql, ")");
	t->select = (struct mw_db_query){"reading a table", mw_str_c(&t->select_sql), NULL};
	t->insert = (struct mw_db_query){"copying a row", mw_str_c(&t->insert_sql), NULL};
}

/* build_fixed - the queries that need no columns: count, identity counter */
static void build_fixed(struct copy_table *t)
{
	mw_str_init(&t->count_sql, 0);
	mw_str_init(&t->setval_sql, 0);
	(void)mw_str_appendf(&t->count_sql, "SELECT count(*) FROM \"%s\"", t->name);
	(void)mw_str_appendf(&t->setval_sql,
	                     "SELECT setval(pg_get_serial_sequence('%s', 'id'), "
	                     "(SELECT coalesce(max(id), 0) + 1 FROM \"%s\"), false)",
	                     t->name, t->name);
	t->count =
	    (struct mw_db_query){"counting the target's rows", mw_str_c(&t->count_sql), NULL};
	t->setval = (struct mw_db_query){"moving an id counter", mw_str_c(&t->setval_sql), NULL};
}

/* row_args - the row's values as typed arguments (pointers valid inside the callback) */
static void row_args(const struct copy_table *t, const mw_db_row *row, struct mw_db_arg *args)
{
	for (size_t i = 0; i < t->ncols; i++) {
		unsigned c = (unsigned)i;
		if (mw_db_is_null(row, c)) {
			args[i] = MW_DB_NUL;
			continue;
		}
		switch (t->kinds[i]) {
		case MW_DB_INT:
			args[i] = MW_DB_I(mw_db_int(row, c));
			break;
		case MW_DB_TEXT:
			args[i] = MW_DB_T(mw_db_text(row, c));
			break;
		case MW_DB_BLOB: {
			size_t len = 0;
			const void *p = mw_db_blob(row, c, &len);
			args[i] = MW_DB_B(p != NULL ? p : "", len);
			break;
		}
		case MW_DB_DOUBLE:
			args[i] = MW_DB_D(mw_db_double(row, c));
			break;
		case MW_DB_NULL: /* not a storage class mw_db_decltype gives */
			args[i] = MW_DB_NUL;
			break;
		}
	}
}

/* sum_add - add the row's digest into the 128-bit little-endian sum */
static void sum_add(unsigned char sum[16], const struct mw_db_arg *args, size_t n)
{
	crypto_generichash_state st;
	unsigned char d[16];
	unsigned carry = 0;
	crypto_generichash_init(&st, NULL, 0, sizeof(d));
	for (size_t i = 0; i < n; i++) {
		unsigned char tag = (unsigned char)args[i].type;
		uint64_t len;
		crypto_generichash_update(&st, &tag, 1);
		switch (args[i].type) {
		case MW_DB_NULL:
			break;
		case MW_DB_INT: {
			unsigned char b[8];
			for (int k = 0; k < 8; k++)
				b[k] = (unsigned char)((uint64_t)args[i].i >> (8 * k));
			crypto_generichash_update(&st, b, sizeof(b));
			break;
		}
		case MW_DB_DOUBLE: {
			char b[40];
			int m = snprintf(b, sizeof(b), "%.17g", args[i].d);
			crypto_generichash_update(&st, (const unsigned char *)b, (size_t)m);
			break;
		}
		case MW_DB_TEXT:
		case MW_DB_BLOB:
			len = args[i].type == MW_DB_TEXT ? strlen(args[i].p) : args[i].len;
			crypto_generichash_update(&st, (const unsigned char *)&len, sizeof(len));
			crypto_generichash_update(&st, args[i].p, (size_t)len);
			break;
		}
	}
	crypto_generichash_final(&st, d, sizeof(d));
	for (size_t k = 0; k < sizeof(d); k++) {
		carry += (unsigned)sum[k] + d[k];
		sum[k] = (unsigned char)carry;
		carry >>= 8;
	}
}

struct copy_ctx {
	struct copy_table *t;
	mw_db *dst;
	mw_error err;
	int status;
	uint64_t done;
};

/* copy_row - one source row into the target, counted and summed */
static int copy_row(const mw_db_row *row, void *ctx)
{
	struct copy_ctx *c = ctx;
	struct mw_db_arg *args = mw_calloc(c->t->ncols, sizeof(*args));
	row_args(c->t, row, args);
	c->status = mw_db_run(c->dst, &c->t->insert, args, c->t->ncols, NULL, NULL, NULL, &c->err);
	if (c->status == MW_STORE_OK) {
		sum_add(c->t->sum_src, args, c->t->ncols);
		c->t->rows_src++;
		if (++c->done % 10000 == 0)
			fprintf(stderr, "  %s: %" PRIu64 " rows...\n", c->t->name, c->done);
	}
	free(args);
	return c->status == MW_STORE_OK ? 0 : 1;
}

/* sum_row - count and sum one target row */
static int sum_row(const mw_db_row *row, void *ctx)
{
	struct copy_table *t = ctx;
	struct mw_db_arg *args = mw_calloc(t->ncols, sizeof(*args));
	row_args(t, row, args);
	sum_add(t->sum_dst, args, t->ncols);
	t->rows_dst++;
	free(args);
	return 0;
}

/* open_migrated - open URL; migrate it (target) or check it is at the latest version */
static mw_db *open_store(struct mw_ctl *ctl, const char *url, const char *side, bool migrate)
{
	char shown[512];
	mw_error err = {""};
	int version = 0;
	mw_db *db;

	mw_db_url_redact(url, shown, sizeof(shown));
	db =
	    mw_db_open(url, (unsigned)mw_config_int(ctl->cfg, MWK_STORE_BUSY_TIMEOUT) * 1000, &err);
	if (db == NULL) {
		ctl_err("%s %s: %s", side, shown, err.msg);
		return NULL;
	}
	if ((migrate && mw_db_migrate(db, &err) != MW_STORE_OK) ||
	    mw_db_schema_version(db, &version, &err) != MW_STORE_OK) {
		ctl_err("%s %s: %s", side, shown, err.msg);
		mw_db_close(&db);
		return NULL;
	}
	if (version != mw_db_latest_schema_version()) {
		ctl_err("%s %s: schema version %d, this mailwardenctl copies version %d: run "
		        "mailwardenctl store migrate on it first",
		        side, shown, version, mw_db_latest_schema_version());
		mw_db_close(&db);
		return NULL;
	}
	return db;
}

/* empty_target - 0 rows everywhere; or emptied (--force on PostgreSQL) */
static int empty_target(mw_db *dst, struct copy_table *tables, size_t n, bool force,
                        struct mw_db_query *truncate, mw_str *truncate_sql)
{
	mw_error err = {""};
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t rows = 0;
		if (mw_db_int_one(dst, &tables[i].count, MW_DB_NOARGS, &rows, &err) !=
		    MW_STORE_OK) {
			ctl_err("target: %s", err.msg);
			return EXIT_ERROR;
		}
		total += (uint64_t)rows;
	}
	if (total == 0)
		return EXIT_OK;
	if (!force) {
		ctl_err("target: not empty (%" PRIu64 " rows): refusing to copy into it "
		        "(--force empties a PostgreSQL target first)",
		        total);
		return EXIT_EXISTS;
	}
	if (mw_db_dialect(dst) != MW_DB_PGSQL) {
		ctl_err("target: not empty (%" PRIu64 " rows), and --force empties only a "
		        "PostgreSQL target: give a new SQLite file",
		        total);
		return EXIT_EXISTS;
	}
	(void)mw_str_appends(truncate_sql, "TRUNCATE ");
	for (size_t i = 0; i < n; i++)
		(void)mw_str_appendf(truncate_sql, "%s\"%s\"", i > 0 ? ", " : "", tables[i].name);
	(void)mw_str_appends(truncate_sql, " RESTART IDENTITY");
	*truncate = (struct mw_db_query){"emptying the target", mw_str_c(truncate_sql), NULL};
	if (mw_db_run(dst, truncate, MW_DB_NOARGS, NULL, NULL, NULL, &err) != MW_STORE_OK) {
		ctl_err("target: %s", err.msg);
		return EXIT_ERROR;
	}
	printf("target: emptied (%" PRIu64 " rows)\n", total);
	return EXIT_OK;
}

/* sync_identity - a PostgreSQL identity column continues after the copied ids */
static int sync_identity(mw_db *dst, struct copy_table *t)
{
	mw_error err = {""};
	if (mw_db_dialect(dst) != MW_DB_PGSQL || t->ncols == 0 || strcmp(t->cols[0], "id") != 0)
		return EXIT_OK;
	if (mw_db_run(dst, &t->setval, MW_DB_NOARGS, NULL, NULL, NULL, &err) != MW_STORE_OK) {
		ctl_err("%s: %s", t->name, err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* copy_all - inside the target's transaction: every table, then the check */
static int copy_all(mw_db *src, mw_db *dst, struct copy_table *tables, size_t n, bool force,
                    struct mw_db_query *truncate, mw_str *truncate_sql)
{
	uint64_t total = 0;
	int ret = empty_target(dst, tables, n, force, truncate, truncate_sql);
	if (ret != EXIT_OK)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct copy_table *t = &tables[i];
		struct copy_ctx c = {.t = t, .dst = dst, .err = {""}, .status = MW_STORE_OK};
		mw_error err = {""};
		int r = mw_db_run(src, &t->select, MW_DB_NOARGS, copy_row, &c, NULL, &err);
		if (c.status != MW_STORE_OK) {
			ctl_err("%s: %s", t->name, c.err.msg);
			return EXIT_ERROR;
		}
		if (r != MW_STORE_OK) {
			ctl_err("%s: %s", t->name, err.msg);
			return EXIT_ERROR;
		}
		if (sync_identity(dst, t) != EXIT_OK)
			return EXIT_ERROR;
		if (mw_db_run(dst, &t->select, MW_DB_NOARGS, sum_row, t, NULL, &err) !=
		    MW_STORE_OK) {
			ctl_err("%s: reading back: %s", t->name, err.msg);
			return EXIT_ERROR;
		}
		if (t->rows_src != t->rows_dst ||
		    memcmp(t->sum_src, t->sum_dst, sizeof(t->sum_src)) != 0) {
			ctl_err("%s: the target differs after the copy (%" PRIu64
			        " rows read, %" PRIu64 " found): nothing is committed",
			        t->name, t->rows_src, t->rows_dst);
			return EXIT_ERROR;
		}
		printf("%-16s %8" PRIu64 " rows  checksum ", t->name, t->rows_src);
		for (size_t k = 0; k < 8; k++)
			printf("%02x", t->sum_src[15 - k]);
		printf("  ok\n");
		fflush(stdout);
		total += t->rows_src;
	}
	printf("copied %" PRIu64 " rows of %zu tables; counts and checksums match\n", total, n);
	return EXIT_OK;
}

/* cmd_store_copy - mailwardenctl store copy SRC DST [--force] */
int cmd_store_copy(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct copy_table tables[MW_STORE_TABLES_COUNT];
	size_t n = MW_STORE_TABLES_COUNT;
	struct mw_db_query truncate = {NULL, NULL, NULL};
	mw_str truncate_sql;
	mw_db *src = NULL, *dst = NULL;
	mw_error err = {""};
	int first, ret = EXIT_ERROR;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 2, 2, OPT_FORCE);
	if (strcmp(argv[first], argv[first + 1]) == 0) {
		ctl_err("source and target are the same store");
		return EXIT_USAGE;
	}
	memset(tables, 0, sizeof(tables));
	mw_str_init(&truncate_sql, 0);
	for (size_t i = 0; i < n; i++) {
		tables[i].name = mw_store_tables[i];
		mw_str_init(&tables[i].select_sql, 0);
		mw_str_init(&tables[i].insert_sql, 0);
		build_fixed(&tables[i]);
	}
	src = open_store(ctl, argv[first], "source", false);
	if (src == NULL)
		goto out;
	dst = open_store(ctl, argv[first + 1], "target", true);
	if (dst == NULL)
		goto out;
	if (check_tables(src, "source") != EXIT_OK || check_tables(dst, "target") != EXIT_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (load_columns(src, dst, &tables[i]) != EXIT_OK)
			goto out;
		build_queries(&tables[i]);
	}
	if (mw_db_begin(dst, &err) != MW_STORE_OK) {
		ctl_err("target: %s", err.msg);
		goto out;
	}
	ret = copy_all(src, dst, tables, n, o.force, &truncate, &truncate_sql);
	if (mw_db_end(dst, ret == EXIT_OK ? MW_STORE_OK : MW_STORE_ERROR, &err) != MW_STORE_OK &&
	    ret == EXIT_OK) {
		ctl_err("target: %s", err.msg);
		ret = EXIT_ERROR;
	}
out:
	mw_db_close(&src);
	mw_db_close(&dst);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < tables[i].ncols; k++)
			free(tables[i].cols[k]);
		free(tables[i].cols);
		free(tables[i].kinds);
		mw_str_free(&tables[i].select_sql);
		mw_str_free(&tables[i].insert_sql);
		mw_str_free(&tables[i].count_sql);
		mw_str_free(&tables[i].setval_sql);
	}
	mw_str_free(&truncate_sql);
	return ret;
}

/* cmd_store_migrate - mailwardenctl store migrate [URL] */
int cmd_store_migrate(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = {""};
	const char *url;
	char shown[512];
	int first, before = 0, after = 0;
	mw_db *db;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 1, -1);
	url = argc > first ? argv[first] : mw_config_str(ctl->cfg, MWK_STORE);
	mw_db_url_redact(url, shown, sizeof(shown));
	db =
	    mw_db_open(url, (unsigned)mw_config_int(ctl->cfg, MWK_STORE_BUSY_TIMEOUT) * 1000, &err);
	if (db == NULL || mw_db_schema_version(db, &before, &err) != MW_STORE_OK ||
	    mw_db_migrate(db, &err) != MW_STORE_OK ||
	    mw_db_schema_version(db, &after, &err) != MW_STORE_OK) {
		ctl_err("store %s: %s", shown, err.msg);
		mw_db_close(&db);
		return EXIT_ERROR;
	}
	mw_db_close(&db);
	if (before == after)
		printf("store %s: schema version %d, up to date\n", shown, after);
	else
		printf("store %s: schema version %d -> %d\n", shown, before, after);
	return EXIT_OK;
}
