/* mw-config.h - configuration: the key table, the parser, typed access to a snapshot. */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include "mw-util.h"

#include <stdio.h>

#define MW_CONFIG_DEFAULT_PATH "/etc/mailwarden/mailwarden.conf"
#define MW_CONFIG_MAX_LINE 4096 /* longer lines are an error, not truncated */

enum mw_config_type {
	MW_CFG_STRING,
	MW_CFG_PATH,
	MW_CFG_BOOL,
	MW_CFG_INT,
	MW_CFG_DURATION,
	MW_CFG_SIZE,
	MW_CFG_ENUM,
	MW_CFG_URL,
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

/* A parsed, validated, immutable snapshot; reference-counted so a reload never frees
   a configuration a request is still using. */
typedef struct mw_config mw_config;

/* Loads PATH, then every DIR/conf.d/ *.conf (DIR = PATH's directory) in name order.
   A key may be set once per file; a later file overrides an earlier one.
   missing_ok: a missing PATH gives the defaults (conf.d is still read).
   Errors name file:line and key. */
mw_config *mw_config_load(const char *path, bool missing_ok, mw_error *error_r);
/* Parses text as if it were the file NAME (tests, `config check -`). No conf.d. */
mw_config *mw_config_load_string(const char *text, size_t len, const char *name,
				 mw_error *error_r);
/* Only the defaults. */
mw_config *mw_config_defaults(void);
mw_config *mw_config_ref(mw_config *cfg);
void mw_config_unref(mw_config **cfg);

/* Typed accessors; the key's type must match (a mismatch is a bug: mw_panic). */
const char *mw_config_str(const mw_config *cfg, enum mw_config_key_id id);  /* STRING PATH ENUM URL */
long long mw_config_int(const mw_config *cfg, enum mw_config_key_id id);    /* INT DURATION(s) SIZE(bytes) */
bool mw_config_bool(const mw_config *cfg, enum mw_config_key_id id);
/* Where a key's value came from: "file:line" or "default". */
const char *mw_config_origin(const mw_config *cfg, enum mw_config_key_id id);

/* Value parsers, exposed for tests and for other input (API, CLI flags). */
int mw_config_parse_duration(const char *s, long long *secs_r, mw_error *error_r); /* 30s 5m 1h 1d, bare = s */
int mw_config_parse_size(const char *s, long long *bytes_r, mw_error *error_r);     /* 10k 25M 1G, bare = bytes */
int mw_config_parse_bool(const char *s, bool *b_r, mw_error *error_r);              /* yes/no true/false on/off 1/0 */

/* Writes every key as "[section]\nkey = value  # origin" (config dump). */
void mw_config_dump(const mw_config *cfg, FILE *out, bool with_origin);
/* Writes the key reference (for --help and docs): markdown when markdown is true. */
void mw_config_describe(FILE *out, bool markdown);

#endif
