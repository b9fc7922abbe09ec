/* mw-virus.h - virus scanning behind one interface: in-process libclamav or clamd (INSTREAM).
 *
 * An mw_virus is one ready engine: a compiled libclamav engine over a signature directory,
 * or the address and limits of a clamd. It is built whole (mw_virus_new) before anyone
 * sees it and is reference-counted, so a reload builds a new one beside the old, swaps the
 * pointer and lets the last scan in flight free the old one: no scan ever sees a half-built
 * engine. */
#ifndef MW_VIRUS_H
#define MW_VIRUS_H

#include "mw-util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_VIRUS_NAME_MAX     256  /* a signature name (as X-Mailwarden-Virus carries it) */
#define MW_VIRUS_REPLY_MAX    1024 /* the longest clamd reply read */
#define MW_VIRUS_LIMIT_PREFIX "Heuristics.Limits.Exceeded"

enum mw_virus_engine { MW_VIRUS_LIBCLAMAV, MW_VIRUS_CLAMD };

struct mw_virus_settings {
	enum mw_virus_engine engine;
	const char *signatures;   /* libclamav: signature directory */
	const char *tmpdir;       /* libclamav: its per-scan directories go here; NULL or ""
	                             for libclamav's default ($TMPDIR or /tmp) */
	const char *clamd_socket; /* clamd: unix:/path or inet:PORT@ADDRESS */
	unsigned clamd_timeout_ms;
	uint64_t max_scansize, max_filesize;
	unsigned max_files, max_recursion, max_scantime_ms;
};

/* The outcome of one scan. LIMIT: a size/files/recursion limit stopped the scan (the
   message could not be scanned whole); ERROR: no verdict (engine broken, clamd down or
   answering nonsense, scan time exceeded). */
enum mw_virus_status { MW_VIRUS_CLEAN, MW_VIRUS_FOUND, MW_VIRUS_LIMIT, MW_VIRUS_ERROR };

typedef struct mw_virus mw_virus;

/* Builds an engine (libclamav: loads and compiles the signatures, an empty directory is an
   error; clamd: checks the socket spec only). NULL with error_r. Thread-safe. */
mw_virus *mw_virus_new(const struct mw_virus_settings *settings, mw_error *error_r);
/* One more reference; mw_virus_unref drops one and frees on the last (NULLs *v). */
mw_virus *mw_virus_ref(mw_virus *v);
void mw_virus_unref(mw_virus **v);
/* Signatures loaded (libclamav), 0 for clamd. */
unsigned mw_virus_signatures(const mw_virus *v);
/* libclamav: whether the signature directory changed since the engine was built (files
   added, removed or modified). Always false for clamd. */
bool mw_virus_stale(mw_virus *v);
/* Scans DATA (a whole message as received) from memory. name_r gets the signature name
   for FOUND and LIMIT; error_r the reason for ERROR (and LIMIT). Thread-safe. */
enum mw_virus_status mw_virus_scan(mw_virus *v, const void *data, size_t len, char *name_r,
                                   size_t namesize, mw_error *error_r);
/* Parses one clamd INSTREAM reply (without its terminating NUL or newline, strictly):
   "stream: OK", "stream: NAME FOUND", "INSTREAM size limit exceeded. ERROR" (LIMIT);
   anything else is ERROR. A NAME must be printable ASCII without blanks, parentheses,
   quotes, ';' or '\' and at most MW_VIRUS_NAME_MAX bytes. */
enum mw_virus_status mw_virus_clamd_parse(const char *reply, size_t len, char *name_r,
                                          size_t namesize, mw_error *error_r);
/* Whether a signature name is one of libclamav's "limit exceeded" alerts. */
bool mw_virus_name_is_limit(const char *name);

#endif
