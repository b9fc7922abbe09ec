/* mw-learnspool.h - the Dovecot plugin's spool of learning events that could not reach
 * the store (one file per event, one owner for the format: this module writes and reads it).
 *
 * An event is what a learn needs, prepared once (mw_classifier_prepare): the user, the
 * label, the per-user digest the learned label is kept under, the Message-ID (for the
 * training_events row) and the token hashes. File: DIR/<digest in hex>.learn, written to a
 * temporary name and renamed, so a reader sees a whole file or none; a second event for the
 * same message and user replaces the first (the last judgement is the one that counts).
 * Format, LF-terminated lines, nothing else accepted:
 *     mailwarden-learn 1
 *     user USERNAME
 *     label spam|ham
 *     digest HEX64
 *     msgid HEX (the Message-ID's bytes in hex, "-" when empty)
 *     tokens N
 *     HEX16            (N lines)
 *     end
 *
 * Public: mw_learnspool_format, mw_learnspool_parse, mw_learnspool_write,
 * mw_learnspool_flush, mw_learn_item_free.
 *
 * Diagnostics: through error_r ("learning spool DIR: ...").
 */
#ifndef MW_LEARNSPOOL_H
#define MW_LEARNSPOOL_H

#include "mw-store.h"
#include "mw-tokenize.h"

#define MW_LEARNSPOOL_FILE_MAX (128 * 1024) /* bytes of one spool file, at most */

struct mw_learn_item {
	char username[MW_USERNAME_MAX + 1];
	bool spam;
	unsigned char digest[MW_SPAM_DIGEST_LEN];
	char message_id[MW_MESSAGE_ID_MAX + 1];
	uint64_t *hash; /* owned when parsed (mw_learn_item_free) */
	size_t count;   /* at most MW_TOKENS_MAX + 1 */
};

/* The file text of it (malloc'ed, NUL-terminated), *len_r its length. */
char *mw_learnspool_format(const struct mw_learn_item *it, size_t *len_r);
/* 0 and *it (free with mw_learn_item_free), -1 when text is not exactly one event. */
int mw_learnspool_parse(const char *text, size_t len, struct mw_learn_item *it, mw_error *error_r);
void mw_learn_item_free(struct mw_learn_item *it);

/* Writes it into dir (created 0700 when missing); -1 when dir holds max_files events
   already (and none for this digest) or on an I/O error. */
int mw_learnspool_write(const char *dir, unsigned max_files, const struct mw_learn_item *it,
                        mw_error *error_r);

/* 0 the event is learned (its file is removed), -1 it could not be (flushing stops). */
typedef int mw_learnspool_apply_cb(void *ctx, const struct mw_learn_item *it, mw_error *error_r);
/* Applies every event of dir through cb. 0: dir is empty now (or does not exist); 1: cb
   failed and the rest stays (error_r says why); -1: dir cannot be read. *done_r counts the
   events applied; a file that is not an event is renamed NAME.bad and counted in *bad_r. */
int mw_learnspool_flush(const char *dir, mw_learnspool_apply_cb *cb, void *ctx, unsigned *done_r,
                        unsigned *bad_r, mw_error *error_r);

#endif
