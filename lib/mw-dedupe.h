/* mw-dedupe.h - the Dovecot plugin's record of saved deliveries, to recognise a re-delivery
 * of the same queue file (one owner for the key and the record format: this module).
 *
 * Why: when Dovecot's lmtp has saved a message and then dies before its 250 reached the
 * client (it answers "421 Shutting down" when its master is killed), Postfix counts the
 * delivery as failed and sends the same queue file again. The plugin keys each save by a
 * digest of the message as Postfix sent it and, per user, skips a save whose key it saved
 * within a window (mailwarden_dedupe_window), answering as if it had saved it.
 *
 * Key: BLAKE2b-256 in hex (libsodium's crypto_generichash: cryptographic, so no message can
 * be made to stand for another, and about four times cheaper per byte than its SHA-256) of
 * the message without the header lines lmtp prepends itself (its Return-Path, Delivered-To
 * and "Received: ... with LMTP" trace, which carry its session id and the time, so they
 * differ between two deliveries of one queue file), CR bytes not hashed (a message read
 * back from a maildir has LF line ends where lmtp received CRLF: lmtp hands later
 * recipients of one transaction the first recipient's saved copy).
 * Postfix's own Received header (with its queue id) is hashed: two genuine copies of one
 * message (the same Message-ID through two queue files) have different keys.
 *
 * Record: DIR/<key>, an empty file whose modification time is the time of the save; a
 * sweep (at most once per MW_DEDUPE_SWEEP_EVERY, marker DIR/.swept) removes those older
 * than the window. Files are created with O_NOFOLLOW in a directory of mode 0700.
 *
 * Public: mw_dedupe_lmtp_prefix, mw_dedupe_hash_init, mw_dedupe_hash_update,
 * mw_dedupe_hash_final, mw_dedupe_seen, mw_dedupe_record, mw_dedupe_sweep.
 *
 * Diagnostics: through error_r ("dedupe record DIR: ...").
 */
#ifndef MW_DEDUPE_H
#define MW_DEDUPE_H

#include "mw-util.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MW_DEDUPE_KEY_LEN     64   /* hex digits of a key */
#define MW_DEDUPE_PREFIX_MAX  8192 /* bytes of the message start searched for lmtp's lines */
#define MW_DEDUPE_SWEEP_EVERY 3600 /* seconds between two sweeps of one directory */

struct mw_dedupe_hash {
	crypto_generichash_state st; /* BLAKE2b-256 */
};

/* Bytes at the start of data (the first len bytes of a message, at most
   MW_DEDUPE_PREFIX_MAX are looked at) that are header lines lmtp prepended: a first
   Return-Path, then an optional Delivered-To, then an optional Received whose text says
   "with LMTP" (also LMTPS, LMTPA, LMTPSA), each whole (with its continuation lines) and
   within data; 0 when there is none. */
size_t mw_dedupe_lmtp_prefix(const char *data, size_t len);

void mw_dedupe_hash_init(struct mw_dedupe_hash *h);
/* Adds data without its CR bytes. */
void mw_dedupe_hash_update(struct mw_dedupe_hash *h, const char *data, size_t len);
/* The key: MW_DEDUPE_KEY_LEN lower-case hex digits and a NUL. */
void mw_dedupe_hash_final(struct mw_dedupe_hash *h, char key_r[MW_DEDUPE_KEY_LEN + 1]);

/* 1: key was saved in dir within window seconds before now (*saved_r: when), 0: it was
   not (no record, or an older one), -1: cannot tell (error_r says why). */
int mw_dedupe_seen(const char *dir, const char *key, time_t now, unsigned window, time_t *saved_r,
                   mw_error *error_r);
/* Records key as saved at now (dir created 0700 when missing); sync: fsync the directory so
   the record survives a crash of the machine, not only of the process.
   Sweeps dir when the last sweep is MW_DEDUPE_SWEEP_EVERY old. 0, or -1 on an I/O error. */
int mw_dedupe_record(const char *dir, const char *key, time_t now, unsigned window, bool sync,
                     mw_error *error_r);
/* Removes the records older than window; *removed_r counts them. 0, or -1 when dir cannot
   be read. */
int mw_dedupe_sweep(const char *dir, time_t now, unsigned window, unsigned *removed_r,
                    mw_error *error_r);

#endif
