/* mw-store-private.h - what the store's entity files (the files of lib/store/) and mw-store.c
   share; callers never include this.

   struct mw_store wraps one mw_db connection (mw-db.h): every operation is written once
   over it, its SQL in a static struct mw_db_query next to the operation. Each public
   function checks its arguments first (the helpers below), so the SQL only ever sees
   validated input: non-NULL strings within their limits, usernames already normalised. */
#ifndef MW_STORE_PRIVATE_H
#define MW_STORE_PRIVATE_H

#include "mw-db.h"
#include "mw-store.h"

#include <stddef.h>

struct mw_store {
	mw_db *db;
};

/* mw_store_check_text - a free-text argument: at most max bytes of valid UTF-8 without
   control characters; what names the argument in the message */
int mw_store_check_text(const char *what, const char *s, size_t max, bool allow_empty,
                        mw_error *error_r);
/* mw_store_username_check - the argument is a username in its normalised form */
int mw_store_username_check(const char *username, mw_error *error_r);
/* mw_store_hex_check - exactly len lower-case hex digits */
bool mw_store_hex_check(const char *s, size_t len);

/* mw_store_text_copy - a text column into a fixed buffer ("" for NULL; "" and -1 when it
   does not fit: the checks refuse such values on add, so only a hand-edited row has one) */
int mw_store_text_copy(const mw_db_row *row, unsigned col, char *buf, size_t size);
/* mw_store_text_or_null - an owned copy of a text column, NULL for NULL */
char *mw_store_text_or_null(const mw_db_row *row, unsigned col);

/* A row reader as a table: column i of the row goes where cols[i] says in the element (a
   struct), converted as its type says; what a copy cannot do (parsing an enum, clamping,
   building a text from several columns) is the reader's finish, run after the copies. */
enum mw_store_col_type {
	MW_STORE_COL_SKIP,     /* not copied: finish reads it */
	MW_STORE_COL_INT,      /* int64_t (or uint64_t): mw_db_int */
	MW_STORE_COL_BOOL,     /* bool: the column is not 0 */
	MW_STORE_COL_TEXT,     /* char[N]: NULL reads as ""; a value too long fails the row */
	MW_STORE_COL_KEY,      /* char[N]: NULL or a value too long fails the row */
	MW_STORE_COL_TEXT_LAX, /* char[N]: NULL or a value too long reads as "" */
	MW_STORE_COL_DUP,      /* char *, owned: "" for NULL (mw_db_text_dup) */
	MW_STORE_COL_OPT,      /* char *, owned: NULL for NULL (mw_store_text_or_null) */
};
struct mw_store_col {
	enum mw_store_col_type type;
	size_t offset, size;
};
/* MW_STORE_COL(struct mw_user, INT, id): one column of a table (the field's size is checked
   against the type on every read: a mismatch is a bug, mw_panic) */
#define MW_STORE_COL(stype, type, field)                                                           \
	{                                                                                          \
		MW_STORE_COL_##type, offsetof(stype, field), sizeof(((stype *)0)->field)           \
	}
/* a column the table does not copy (the reader's finish reads it) */
#define MW_STORE_COL_SKIPPED                                                                       \
	{                                                                                          \
		MW_STORE_COL_SKIP, 0, 0                                                            \
	}
struct mw_store_reader {
	const struct mw_store_col *cols;
	size_t ncols;
	/* a row that fails is "WHAT ID is malformed" (ID: column 0) or, without with_id,
	   "WHAT is malformed" */
	const char *what;
	bool with_id;
	/* may be NULL: after the copies; 0, or -1 for a malformed row (nothing to free: the
	   reader frees the owned texts of the table) */
	int (*finish)(const mw_db_row *row, void *elem);
};
/* MW_STORE_READER(cols, what, with_id, finish): a reader over a static table */
#define MW_STORE_READER(cols, what, with_id, finish)                                               \
	{                                                                                          \
		(cols), sizeof(cols) / sizeof((cols)[0]), (what), (with_id), (finish)              \
	}
/* mw_store_read_row - fill elem (zeroed by the caller) from row as rd says: MW_STORE_OK, or
   MW_STORE_ERROR with error_r set and nothing of the row kept */
int mw_store_read_row(const mw_db_row *row, void *elem, const struct mw_store_reader *rd,
                      mw_error *error_r);

/* Rows collected into a growing array of elements of `size` bytes, each zeroed and filled
   by reader (a table, mw_store_read_row) or read (0, or MW_STORE_ERROR with error_r set,
   which stops the query; a read that fails frees what it took). skip_null0: a row whose
   column 0 is NULL (a LEFT JOIN's "the user exists but has none") is counted by mw_db_run
   but not kept. On failure the caller frees the elements collected so far. */
struct mw_store_rows {
	void *v;
	size_t count, cap, size;
	int (*read)(const mw_db_row *row, void *elem, mw_error *error_r);
	bool skip_null0;
	mw_error *error_r;
	const struct mw_store_reader *reader;
};
#define MW_STORE_ROWS(type, readfn, skip, err)                                                     \
	{                                                                                          \
		NULL, 0, 0, sizeof(type), (readfn), (skip), (err), NULL                            \
	}
#define MW_STORE_ROWS_OF(type, rd, skip, err)                                                      \
	{                                                                                          \
		NULL, 0, 0, sizeof(type), NULL, (skip), (err), (rd)                                \
	}
int mw_store_rows_cb(const mw_db_row *row, void *ctx);
/* mw_store_list - run q collecting its rows into rows (a list operation's body). user_rows:
   q joins from users, so no row at all means "no such user" (MW_STORE_NOTFOUND). On failure
   what was collected is freed (free_rows, or only the array when NULL) and rows is left
   empty, so the caller hands out rows->v and rows->count whatever the result. */
int mw_store_list(mw_store *store, const struct mw_db_query *q, const struct mw_db_arg *args,
                  size_t nargs, struct mw_store_rows *rows, void (*free_rows)(void *v, size_t n),
                  bool user_rows);
/* mw_store_read_ints - the row callback reading columns 0 and 1 into int64_t ctx[2] */
int mw_store_read_ints(const mw_db_row *row, void *ctx);

/* users.c, for the entities that belong to a user: the id of a username ("no such user"),
   and stamping updated_at when a user's belongings change */
int mw_store_user_id(mw_store *store, const char *username, int64_t *id_r, mw_error *error_r);
int mw_store_user_touch(mw_store *store, int64_t id, mw_error *error_r);

#endif
