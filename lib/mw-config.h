/* mw-config.h - configuration: the key table, the parser, typed access to a snapshot. */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include "mw-util.h"

#include <stdio.h>

#define MW_CONFIG_DEFAULT_PATH "/etc/mailwarden/mailwarden.conf"
#define MW_CONFIG_MAX_LINE     4096 /* longer lines are an error, not truncated */

enum mw_config_type {
	MW_CFG_STRING,
	MW_CFG_PATH,
	MW_CFG_BOOL,
	MW_CFG_INT,
	MW_CFG_DURATION,
	MW_CFG_SIZE,
	MW_CFG_ENUM,
	MW_CFG_URL,
	MW_CFG_STRLIST, /* a key that may repeat: every line adds one item (in file order) */
	MW_CFG_ORIGIN,  /* a web origin http(s)://host[:port] as browsers send it, or "" */
};

enum mw_config_key_id {
#define MW_KEY(id, section, name, type, def, min, max, values, doc) MWK_##id,
#include "mw-config-keys.def"
#undef MW_KEY
	MWK__COUNT
};

struct mw_config_key {
	enum mw_config_key_id id;
	const char *section;
	const char *name;
	enum mw_config_type type;
	const char *def;
	long long min, max;
	const char *values;
	const char *doc;
};

extern const struct mw_config_key mw_config_keys[MWK__COUNT];

/* The Dovecot plugin's settings (plugin { mailwarden_* }), from lib/mw-plugin-keys.def: the
   same fields, section "dovecot-plugin", id MWK__COUNT (not a mailwarden.conf key). */
enum mw_plugin_key_id {
#define MW_PLUGIN_KEY(id, name, type, def, min, max, doc) MWP_##id,
#include "mw-plugin-keys.def"
#undef MW_PLUGIN_KEY
	MWP__COUNT
};
extern const struct mw_config_key mw_plugin_keys[MWP__COUNT];

/* A parsed, validated, immutable snapshot; reference-counted so a reload never frees
   a configuration a request is still using. The count is a plain int: a snapshot is
   handed to another thread only through mw_config_ref() taken under the owner's lock
   (e.g. the daemon's reload lock), and each thread drops its own reference. */
typedef struct mw_config mw_config;

/* Loads PATH, then every DIR/conf.d/ *.conf (DIR = PATH's directory) in strcmp() name
   order; other names (and names starting with '.') are ignored, a missing conf.d is fine.
   A key may be set once per file; a later file overrides an earlier one.
   missing_ok: a missing PATH gives the defaults (conf.d is still read).
   File format: [section] headers, key = value lines, whole-line # comments (a '#' after
   a value is part of the value), optional "double-quoted" values with \" and \\.
   Errors name file:line and key. */
mw_config *mw_config_load(const char *path, bool missing_ok, mw_error *error_r);
/* Parses text as if it were the file NAME (tests, `config check -`). No conf.d. */
mw_config *mw_config_load_string(const char *text, size_t len, const char *name, mw_error *error_r);
/* Only the defaults. */
mw_config *mw_config_defaults(void);
mw_config *mw_config_ref(mw_config *cfg);
void mw_config_unref(mw_config **cfg);

/* The key SECTION/NAME, or NULL. */
const struct mw_config_key *mw_config_key_find(const char *section, const char *name);
/* Checks VALUE (unquoted text) as the key's value, exactly as the parser would:
   0, or -1 with "bad value for KEY: ..." in error_r (URL values are not echoed). */
int mw_config_check(enum mw_config_key_id id, const char *value, mw_error *error_r);

/* Typed accessors; the key's type must match (a mismatch is a bug: mw_panic).
   mw_config_str: STRING PATH ENUM URL (ENUM values spelt as in the table), STRLIST (as
   mw_config_list);
   mw_config_int: INT, DURATION in seconds, SIZE in bytes; mw_config_bool: BOOL. */
const char *mw_config_str(const mw_config *cfg, enum mw_config_key_id id);
long long mw_config_int(const mw_config *cfg, enum mw_config_key_id id);
bool mw_config_bool(const mw_config *cfg, enum mw_config_key_id id);
/* A STRLIST: its items joined by '\n' ("" = no items). Within one file every line of the
   key adds an item; a later file that sets the key replaces the earlier file's items. */
const char *mw_config_list(const mw_config *cfg, enum mw_config_key_id id);
/* Where a key's value came from: "file:line" or "default". */
const char *mw_config_origin(const mw_config *cfg, enum mw_config_key_id id);
/* Where a STRLIST's item (0-based) came from: "file:line" (in buf), else mw_config_origin. */
const char *mw_config_list_origin(const mw_config *cfg, enum mw_config_key_id id, size_t item,
                                  char *buf, size_t size);

/* Value parsers, exposed for tests and for other input (API, CLI flags).
   On failure error_r holds the reason only (the caller names the input). No blanks are
   allowed; overflow is an error.
   duration: a whole number with an optional unit s m h d w (30s 5m 1h 1d 2w), bare = s;
   size: a whole number with an optional k K M m G g (powers of 1024), bare = bytes;
   bool: yes/no true/false on/off 1/0, any case. */
int mw_config_parse_duration(const char *s, long long *secs_r, mw_error *error_r);
int mw_config_parse_size(const char *s, long long *bytes_r, mw_error *error_r);
int mw_config_parse_bool(const char *s, bool *b_r, mw_error *error_r);

/* Writes every key as "[section]" groups of "key = value" lines, quoting values that need
   it. Flags: MW_CONFIG_DUMP_ORIGIN adds a "# origin: FILE:LINE" (or "default") comment line
   above each key; without MW_CONFIG_DUMP_SECRETS, secrets are masked: keys whose name ends
   in "_secret" or "password" print as "<hidden>", and the password of a URL's user info
   (scheme://user:PASSWORD@host) as "***". Only output with secrets parses back to the same
   values. */
#define MW_CONFIG_DUMP_ORIGIN  1u
#define MW_CONFIG_DUMP_SECRETS 2u
void mw_config_dump(const mw_config *cfg, FILE *out, unsigned flags);
/* Writes the key reference: plain text for --help, or the markdown that
   docs/configuration.md holds below its "generated" marker. */
void mw_config_describe(FILE *out, bool markdown);
/* The same for the sections named in SECTIONS (NULL-terminated; NULL = every section). */
void mw_config_describe_sections(FILE *out, bool markdown, const char *const *sections);
/* Checks the text value of a plugin setting (type and bounds of its row): 0 with the number
   (INT, DURATION, SIZE; BOOL as 0/1) in num_r, or -1 with a reason in error_r. */
int mw_plugin_key_parse(enum mw_plugin_key_id id, const char *value, long long *num_r,
                        mw_error *error_r);

#endif
