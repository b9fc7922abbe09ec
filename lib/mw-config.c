/*
 * mw-config.c - the configuration: key table, parser, validated snapshots, dump and docs.
 *
 * Public: mw_config_keys[], mw_config_load, mw_config_load_string, mw_config_defaults,
 * mw_config_ref, mw_config_unref, mw_config_key_find, mw_config_check, mw_config_str,
 * mw_config_int, mw_config_bool, mw_config_origin, mw_config_parse_duration,
 * mw_config_parse_size, mw_config_parse_bool, mw_config_dump, mw_config_describe,
 * mw_config_describe_sections.
 *
 * Every key lives in lib/mw-config-keys.def; this file turns it into mw_config_keys[].
 * A snapshot holds, per key, the value as text plus its parsed number/boolean and where
 * it came from; it never changes once loaded. Its reference count is a plain int: a
 * snapshot crosses threads only through mw_config_ref() under the owner's lock. Defaults
 * go through the same value parser as configured values (a bad one is a bug: mw_panic).
 * conf.d files are listed with opendir/readdir and sorted with strcmp (no glob).
 *
 * File format: "[section]" headers; "key = value" lines; blank lines; whole-line "#"
 * comments only (a "#" after a value belongs to the value); a value may be written in
 * double quotes, inside which \" and \\ are the only escapes. Keys before any header are
 * in [main]. CRLF line ends and a missing final newline are accepted.
 *
 * Diagnostics: every error is "FILE:LINE: what" (or "FILE: what" for file-level
 * failures) through error_r: unknown section or key, duplicate key in one file, bad value
 * (with the reason and the accepted forms), missing '=', empty key, quoting errors, lines
 * over MW_CONFIG_MAX_LINE bytes, NUL and other control bytes. URL values are not echoed
 * in errors: they may hold a database password. A bad default in the table is a bug
 * (mw_panic).
 */
#include "mw-build.h"
#include "mw-config.h"
#include "mw-log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MW_CONFIG_MAX_FILE  (1024 * 1024) /* bytes per file; more is an error */
#define MW_CONFIG_MAX_FILES 1000          /* conf.d entries */
#define MW_CONFIG_SHOW_MAX  80            /* bytes of an offending value quoted in errors */

const struct mw_config_key mw_config_keys[MWK__COUNT] = {
#define MW_KEY(id, section, name, type, def, min, max, values, doc)                                \
	{MWK_##id, section, name, MW_CFG_##type, def, min, max, values, doc},
#include "mw-config-keys.def"
#undef MW_KEY
};

const struct mw_config_key mw_plugin_keys[MWP__COUNT] = {
#define MW_PLUGIN_KEY(id, name, type, def, min, max, doc)                                          \
	{MWK__COUNT, "dovecot-plugin", name, MW_CFG_##type, def, min, max, NULL, doc},
#include "mw-plugin-keys.def"
#undef MW_PLUGIN_KEY
};

struct mw_config_value {
	char *str;     /* the value as text (ENUM: the table's spelling) */
	long long num; /* INT, DURATION (seconds), SIZE (bytes), BOOL (0/1) */
	bool b;
	char *origin;       /* "file:line", NULL = default */
	char *item_origins; /* STRLIST: "file:line" of each item, joined by '\n' (NULL = default) */
};

struct mw_config {
	int refcount;
	struct mw_config_value v[MWK__COUNT];
};

static const char *const mw_type_names[] = {
    [MW_CFG_STRING] = "string", [MW_CFG_PATH] = "path",         [MW_CFG_BOOL] = "bool",
    [MW_CFG_INT] = "integer",   [MW_CFG_DURATION] = "duration", [MW_CFG_SIZE] = "size",
    [MW_CFG_ENUM] = "enum",     [MW_CFG_URL] = "url",           [MW_CFG_STRLIST] = "list",
    [MW_CFG_ORIGIN] = "origin",
};

/* show - copy untrusted text into buf for an error message: bytes outside printable
   ASCII, quotes and backslashes become \xNN (mw_text_escape); cut at MW_CONFIG_SHOW_MAX
   input bytes with "..." */
static const char *show(char *buf, size_t size, const char *p, size_t len)
{
	size_t o;
	(void)mw_text_escape(buf, size, p, len < MW_CONFIG_SHOW_MAX ? len : MW_CONFIG_SHOW_MAX,
	                     "\"\\", false);
	o = strlen(buf);
	if (len > MW_CONFIG_SHOW_MAX && o + 4 <= size)
		memcpy(buf + o, "...", 4);
	return buf;
}

/* key_label - how errors name a key: "name" in [main], "section.name" elsewhere */
static const char *key_label(char *buf, size_t size, const struct mw_config_key *k)
{
	int n = strcmp(k->section, "main") == 0 ? snprintf(buf, size, "%s", k->name)
	                                        : snprintf(buf, size, "%s.%s", k->section, k->name);
	if (n < 0 || (size_t)n >= size)
		mw_panic("config: key name %s too long", k->name);
	return buf;
}

/* parse_number - a non-negative decimal at *sp, advancing it; detects overflow */
static int parse_number(const char **sp, long long *n_r, mw_error *error_r)
{
	const char *s = *sp;
	long long n = 0;
	if (*s < '0' || *s > '9') {
		mw_error_set(error_r, "expected a number");
		return -1;
	}
	for (; *s >= '0' && *s <= '9'; s++) {
		int d = *s - '0';
		if (n > (LLONG_MAX - d) / 10) {
			mw_error_set(error_r, "number too large");
			return -1;
		}
		n = n * 10 + d;
	}
	*sp = s;
	*n_r = n;
	return 0;
}

/* scaled - a number followed by one unit letter from units[] (or none: factor 1) */
static int scaled(const char *s, const char *units, const long long *factors, long long *r,
                  mw_error *error_r)
{
	long long n, f = 1;
	const char *u;
	if (parse_number(&s, &n, error_r) < 0)
		return -1;
	if (*s != '\0') {
		u = s[1] == '\0' ? strchr(units, *s) : NULL;
		if (u == NULL) {
			mw_error_set(error_r, "unknown unit");
			return -1;
		}
		f = factors[u - units];
	}
	if (n > LLONG_MAX / f) {
		mw_error_set(error_r, "number too large");
		return -1;
	}
	*r = n * f;
	return 0;
}

/* mw_config_parse_duration - "30s 5m 1h 1d 2w" or bare seconds */
int mw_config_parse_duration(const char *s, long long *secs_r, mw_error *error_r)
{
	static const long long f[] = {1, 60, 3600, 86400, 604800};
	if (scaled(s, "smhdw", f, secs_r, error_r) == 0)
		return 0;
	mw_error_prefix(error_r, "expected a duration such as 30s, 5m, 1h, 1d, 2w");
	return -1;
}

/* mw_config_parse_size - "10k 25M 1G" (k = 1024) or bare bytes */
int mw_config_parse_size(const char *s, long long *bytes_r, mw_error *error_r)
{
	static const long long f[] = {1024, 1024, 1048576, 1048576, 1073741824, 1073741824};
	if (scaled(s, "kKmMgG", f, bytes_r, error_r) == 0)
		return 0;
	mw_error_prefix(error_r, "expected a size such as 512, 10k, 25M, 1G");
	return -1;
}

/* mw_config_parse_bool - yes/no true/false on/off 1/0, any case */
int mw_config_parse_bool(const char *s, bool *b_r, mw_error *error_r)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(yes); i++) {
		if (mw_ascii_strcasecmp(s, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (mw_ascii_strcasecmp(s, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	mw_error_set(error_r, "expected yes|no|true|false|on|off|1|0");
	return -1;
}

/* parse_int - an optionally negative decimal integer, overflow detected */
static int parse_int(const char *s, long long *r, mw_error *error_r)
{
	bool neg = *s == '-';
	long long n;
	if (neg)
		s++;
	/* LLONG_MIN itself is refused: no key needs it */
	if (parse_number(&s, &n, error_r) < 0 || *s != '\0') {
		mw_error_set(error_r, "expected a decimal integer");
		return -1;
	}
	*r = neg ? -n : n;
	return 0;
}

/* list_find - the word s in "a|b|c" (ASCII case-insensitive), as the list spells it */
static mw_slice list_find(const char *list, const char *s, size_t slen)
{
	mw_slice none = {NULL, 0};
	const char *p = list;
	while (*p != '\0') {
		const char *e = strchr(p, '|');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n == slen && mw_ascii_strncasecmp(p, s, n) == 0) {
			mw_slice found = {p, n};
			return found;
		}
		p += n + (e != NULL);
	}
	return none;
}

/* check_url - SCHEME:/absolute/path for sqlite, SCHEME://... for the rest */
static int check_url(const struct mw_config_key *k, const char *s, mw_error *error_r)
{
	const char *colon = strchr(s, ':'), *p;
	size_t n = colon != NULL ? (size_t)(colon - s) : 0;
	if (n == 0) {
		mw_error_set(error_r, "expected SCHEME:...");
		return -1;
	}
	for (p = s; p < colon; p++) {
		if (!((*p >= 'a' && *p <= 'z') ||
		      (p > s &&
		       ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')))) {
			mw_error_set(error_r, "malformed scheme");
			return -1;
		}
	}
	if (k->values != NULL && list_find(k->values, s, n).ptr == NULL) {
		mw_error_set(error_r, "unsupported scheme, expected one of %s", k->values);
		return -1;
	}
	if (strpbrk(colon, " \t") != NULL) {
		mw_error_set(error_r, "blank inside URL");
		return -1;
	}
	if (n == 6 && memcmp(s, "sqlite", 6) == 0) {
		if (colon[1] != '/' || colon[2] == '/') {
			mw_error_set(error_r, "expected sqlite:/absolute/path");
			return -1;
		}
	} else if (strncmp(colon, "://", 3) != 0) {
		mw_error_set(error_r, "expected %.*s://...", (int)n, s);
		return -1;
	}
	return 0;
}

/* check_origin - s is "" or one exact web origin, scheme://host[:port] as a browser sends
   it in Origin: (RFC 6454 serialisation): http or https, a lower-case DNS name, IPv4
   address or [IPv6] literal, an optional port 1..65535, nothing else. "null" (what
   sandboxed pages and file: URLs send), "*" and any pattern are refused: an origin that
   many pages can claim is no restriction. */
static int check_origin(const char *s, mw_error *error_r)
{
	const char *p, *host;
	size_t label = 0;
	long port = 0;
	if (*s == '\0')
		return 0;
	if (strncmp(s, "https://", 8) == 0)
		host = s + 8;
	else if (strncmp(s, "http://", 7) == 0)
		host = s + 7;
	else {
		mw_error_set(error_r,
		             "expected an origin https://host[:port] or http://host[:port] "
		             "(\"null\", \"*\" and patterns are refused)");
		return -1;
	}
	p = host;
	if (*p == '[') {
		for (p++; *p != ']'; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == ':' ||
			      *p == '.')) {
				mw_error_set(error_r, "malformed IPv6 literal in the origin");
				return -1;
			}
		if (p == host + 1) {
			mw_error_set(error_r, "malformed IPv6 literal in the origin");
			return -1;
		}
		p++;
	} else {
		for (; *p != '\0' && *p != ':'; p++) {
			if (*p == '.') {
				if (label == 0)
					break;
				label = 0;
				continue;
			}
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
				break;
			if (++label > 63)
				break;
		}
		if (label == 0 || (*p != '\0' && *p != ':')) {
			mw_error_set(error_r,
			             "the origin's host must be a lower-case name or address, "
			             "with no path, user, wildcard or trailing slash");
			return -1;
		}
	}
	if (*p == ':') {
		for (p++; *p >= '0' && *p <= '9' && port <= 65535; p++)
			port = port * 10 + (*p - '0');
		if (port < 1 || port > 65535 || *p != '\0') {
			mw_error_set(error_r,
			             "the origin's port must be 1..65535 and end the origin");
			return -1;
		}
	}
	if (*p != '\0') {
		mw_error_set(error_r, "the origin must end after host[:port] (no path or slash)");
		return -1;
	}
	return 0;
}

/* parse_value - check s as key k's value and fill v->num/b; the text to keep in *text_r
   (s itself, or the table's spelling of an ENUM value); the reason in error_r */
static int parse_value(const struct mw_config_key *k, const char *s, struct mw_config_value *v,
                       mw_slice *text_r, mw_error *error_r)
{
	int ret = 0;
	v->num = 0;
	v->b = false;
	*text_r = mw_slice_from(s);
	switch (k->type) {
	case MW_CFG_STRING:
	case MW_CFG_PATH:
		/* "" is a value where the default is "" or the doc says what "" means */
		if (*s == '\0' && *k->def != '\0' && strstr(k->doc, "\"\" = ") == NULL) {
			mw_error_set(error_r, "must not be empty");
			return -1;
		}
		if (k->type == MW_CFG_PATH && *s != '\0' && *s != '/') {
			mw_error_set(error_r, "expected an absolute path");
			return -1;
		}
		return 0;
	case MW_CFG_BOOL:
		ret = mw_config_parse_bool(s, &v->b, error_r);
		v->num = v->b;
		return ret;
	case MW_CFG_ENUM:
		*text_r = list_find(k->values != NULL ? k->values : "", s, strlen(s));
		if (text_r->ptr == NULL || text_r->len == 0) {
			mw_error_set(error_r, "expected %s", k->values != NULL ? k->values : "?");
			return -1;
		}
		return 0;
	case MW_CFG_URL:
		return check_url(k, s, error_r);
	case MW_CFG_ORIGIN:
		return check_origin(s, error_r);
	case MW_CFG_STRLIST:
		/* "" is a value where the default is "" or the doc says what "" means */
		if (*s == '\0' && *k->def != '\0' && strstr(k->doc, "\"\" = ") == NULL) {
			mw_error_set(error_r, "must not be empty");
			return -1;
		}
		return 0;
	case MW_CFG_INT:
		ret = parse_int(s, &v->num, error_r);
		break;
	case MW_CFG_DURATION:
		ret = mw_config_parse_duration(s, &v->num, error_r);
		break;
	case MW_CFG_SIZE:
		ret = mw_config_parse_size(s, &v->num, error_r);
		break;
	}
	if (ret == 0 && (k->min != 0 || k->max != 0) && (v->num < k->min || v->num > k->max)) {
		mw_error_set(error_r, "out of range %lld..%lld%s", k->min, k->max,
		             k->type == MW_CFG_DURATION ? " seconds"
		             : k->type == MW_CFG_SIZE   ? " bytes"
		                                        : "");
		return -1;
	}
	return ret;
}

/* mw_plugin_key_parse - a plugin setting's value checked against its row */
int mw_plugin_key_parse(enum mw_plugin_key_id id, const char *value, long long *num_r,
                        mw_error *error_r)
{
	struct mw_config_value v;
	mw_slice text;
	if ((unsigned)id >= MWP__COUNT)
		mw_panic("config: plugin key id %d out of range", (int)id);
	if (parse_value(&mw_plugin_keys[id], value, &v, &text, error_r) < 0)
		return -1;
	if (num_r != NULL)
		*num_r = v.num;
	return 0;
}

/* bad_value - "bad value for KEY: "VALUE" (REASON)", the reason being in error_r */
static void bad_value(const struct mw_config_key *k, const char *s, mw_error *error_r)
{
	char label[128], shown[4 * MW_CONFIG_SHOW_MAX + 8], reason[sizeof(error_r->msg)];
	if (error_r == NULL)
		return;
	memcpy(reason, error_r->msg, sizeof(reason));
	key_label(label, sizeof(label), k);
	if (k->type == MW_CFG_URL) /* may hold a password */
		mw_error_set(error_r, "bad value for %s: %s", label, reason);
	else
		mw_error_set(error_r, "bad value for %s: \"%s\" (%s)", label,
		             show(shown, sizeof(shown), s, strlen(s)), reason);
}

/* set_value - parse s into cfg's value for k; origin NULL = default */
static int set_value(mw_config *cfg, const struct mw_config_key *k, const char *s, char *origin,
                     mw_error *error_r)
{
	struct mw_config_value *v = &cfg->v[k->id], nv;
	mw_slice text;
	if (parse_value(k, s, &nv, &text, error_r) < 0) {
		bad_value(k, s, error_r);
		free(origin);
		return -1;
	}
	free(v->str);
	free(v->origin);
	free(v->item_origins);
	v->str = mw_strndup(text.ptr, text.len);
	v->num = nv.num;
	v->b = nv.b;
	v->origin = origin;
	v->item_origins =
	    k->type == MW_CFG_STRLIST && origin != NULL ? mw_strndup(origin, strlen(origin)) : NULL;
	return 0;
}

/* list_append - add one item (text) to a STRLIST that this file already set; the origin
   stays the first line's */
static int list_append(mw_config *cfg, const struct mw_config_key *k, const mw_str *text,
                       char *origin, mw_error *error_r)
{
	struct mw_config_value *v = &cfg->v[k->id];
	mw_str joined;
	if (text->len == 0) {
		mw_error_set(error_r, "bad value for %s: an item must not be empty", k->name);
		free(origin);
		return -1;
	}
	mw_str_init(&joined, 0);
	(void)mw_str_appendf(&joined, "%s\n%s", v->item_origins != NULL ? v->item_origins : "",
	                     origin);
	free(origin);
	free(v->item_origins);
	v->item_origins = mw_str_steal(&joined);
	mw_str_init(&joined, 0);
	if (*v->str != '\0')
		(void)mw_str_appendf(&joined, "%s\n", v->str);
	(void)mw_str_append(&joined, text->buf, text->len);
	free(v->str);
	v->str = mw_str_steal(&joined);
	return 0;
}

/* mw_config_check - validate one value for a key, as the parser would */
int mw_config_check(enum mw_config_key_id id, const char *value, mw_error *error_r)
{
	struct mw_config_value v;
	mw_slice text;
	if ((unsigned)id >= MWK__COUNT)
		mw_panic("config: key id %d out of range", (int)id);
	if (parse_value(&mw_config_keys[id], value, &v, &text, error_r) < 0) {
		bad_value(&mw_config_keys[id], value, error_r);
		return -1;
	}
	return 0;
}

/* mw_config_key_find - look a key up by section and name */
const struct mw_config_key *mw_config_key_find(const char *section, const char *name)
{
	size_t i;
	for (i = 0; i < MWK__COUNT; i++)
		if (strcmp(mw_config_keys[i].section, section) == 0 &&
		    strcmp(mw_config_keys[i].name, name) == 0)
			return &mw_config_keys[i];
	return NULL;
}

/* section_known - whether any key lives in the section */
static bool section_known(const char *section)
{
	size_t i;
	for (i = 0; i < MWK__COUNT; i++)
		if (strcmp(mw_config_keys[i].section, section) == 0)
			return true;
	return false;
}

/* mw_config_defaults - a new snapshot holding every default */
mw_config *mw_config_defaults(void)
{
	mw_config *cfg = mw_calloc(1, sizeof(*cfg));
	mw_error error;
	size_t i;
	cfg->refcount = 1;
	for (i = 0; i < MWK__COUNT; i++) {
		if (mw_config_keys[i].id != (enum mw_config_key_id)i)
			mw_panic("config: key table out of order at %s", mw_config_keys[i].name);
		if (set_value(cfg, &mw_config_keys[i], mw_config_keys[i].def, NULL, &error) < 0)
			mw_panic("config: bad default in mw-config-keys.def: %s", error.msg);
	}
	return cfg;
}

/* mw_config_ref - take another reference */
mw_config *mw_config_ref(mw_config *cfg)
{
	if (cfg->refcount <= 0)
		mw_panic("config: ref of a freed snapshot");
	cfg->refcount++;
	return cfg;
}

/* mw_config_unref - drop a reference (freeing on the last) and clear *cfg */
void mw_config_unref(mw_config **cfg)
{
	mw_config *c = *cfg;
	size_t i;
	if (c == NULL)
		return;
	*cfg = NULL;
	if (c->refcount <= 0)
		mw_panic("config: unref of a freed snapshot");
	if (--c->refcount > 0)
		return;
	for (i = 0; i < MWK__COUNT; i++) {
		free(c->v[i].str);
		free(c->v[i].origin);
		free(c->v[i].item_origins);
	}
	free(c);
}

/* The state of one file's parse. */
struct parse_state {
	mw_config *cfg;
	const char *name;
	unsigned lineno;
	unsigned set_at[MWK__COUNT]; /* line where this file set the key, 0 = not yet */
	char section[MW_CONFIG_MAX_LINE + 1];
};

/* unquote - the value text of a "..." value into out; reason in error_r */
static int unquote(mw_slice v, mw_str *out, mw_error *error_r)
{
	size_t i;
	for (i = 1; i < v.len; i++) {
		char c = v.ptr[i];
		if (c == '"') {
			if (i + 1 != v.len) {
				mw_error_set(error_r, "text after closing quote");
				return -1;
			}
			return 0;
		}
		if (c == '\\') {
			if (i + 1 >= v.len || (v.ptr[i + 1] != '"' && v.ptr[i + 1] != '\\')) {
				mw_error_set(error_r,
				             "bad escape in quoted value (only \\\" and \\\\)");
				return -1;
			}
			c = v.ptr[++i];
		}
		if (mw_str_appendc(out, c) < 0) {
			mw_error_set(error_r, "value too long");
			return -1;
		}
	}
	mw_error_set(error_r, "unterminated quote");
	return -1;
}

/* parse_header - a "[section]" line */
static int parse_header(struct parse_state *st, mw_slice line, mw_error *error_r)
{
	char shown[4 * MW_CONFIG_SHOW_MAX + 8];
	mw_slice name;
	if (line.ptr[line.len - 1] != ']') {
		mw_error_set(error_r, "missing ']' in section header");
		return -1;
	}
	name.ptr = line.ptr + 1;
	name.len = line.len - 2;
	name = mw_slice_trim(name);
	if (name.len == 0) {
		mw_error_set(error_r, "empty section name");
		return -1;
	}
	memcpy(st->section, name.ptr, name.len);
	st->section[name.len] = '\0';
	if (!section_known(st->section)) {
		mw_error_set(error_r, "unknown section [%s]",
		             show(shown, sizeof(shown), name.ptr, name.len));
		return -1;
	}
	return 0;
}

/* parse_assignment - a "key = value" line */
static int parse_assignment(struct parse_state *st, mw_slice line, mw_error *error_r)
{
	char shown[4 * MW_CONFIG_SHOW_MAX + 8], label[128], keyname[MW_CONFIG_MAX_LINE + 1];
	const char *eq = memchr(line.ptr, '=', line.len);
	const struct mw_config_key *k;
	mw_slice key, val;
	mw_str text;
	int ret;
	if (eq == NULL) {
		mw_error_set(error_r, "missing '=' (expected key = value)");
		return -1;
	}
	key.ptr = line.ptr;
	key.len = (size_t)(eq - line.ptr);
	key = mw_slice_trim(key);
	val.ptr = eq + 1;
	val.len = (size_t)(line.ptr + line.len - val.ptr);
	val = mw_slice_trim(val);
	if (key.len == 0) {
		mw_error_set(error_r, "empty key before '='");
		return -1;
	}
	memcpy(keyname, key.ptr, key.len);
	keyname[key.len] = '\0';
	k = mw_config_key_find(st->section, keyname);
	if (k == NULL) {
		mw_error_set(error_r, "unknown key \"%s\" in section [%s]",
		             show(shown, sizeof(shown), key.ptr, key.len), st->section);
		return -1;
	}
	if (st->set_at[k->id] != 0 && k->type != MW_CFG_STRLIST) {
		mw_error_set(error_r, "duplicate key \"%s\" (first set at line %u)",
		             key_label(label, sizeof(label), k), st->set_at[k->id]);
		return -1;
	}
	mw_str_init(&text, MW_CONFIG_MAX_LINE);
	if (val.len > 0 && val.ptr[0] == '"')
		ret = unquote(val, &text, error_r);
	else
		ret = mw_str_append(&text, val.ptr, val.len);
	if (ret == 0) {
		mw_str origin;
		mw_str_init(&origin, 0);
		(void)mw_str_appendf(&origin, "%s:%u", st->name, st->lineno);
		if (st->set_at[k->id] != 0) /* a STRLIST line after the first: one more item */
			ret = list_append(st->cfg, k, &text, mw_str_steal(&origin), error_r);
		else
			ret =
			    set_value(st->cfg, k, mw_str_c(&text), mw_str_steal(&origin), error_r);
		if (ret == 0 && st->set_at[k->id] == 0)
			st->set_at[k->id] = st->lineno;
	}
	mw_str_free(&text);
	return ret;
}

/* parse_line - one line, without its line end */
static int parse_line(struct parse_state *st, mw_slice line, mw_error *error_r)
{
	size_t i;
	if (line.len > MW_CONFIG_MAX_LINE) {
		mw_error_set(error_r, "line longer than %d bytes", MW_CONFIG_MAX_LINE);
		return -1;
	}
	for (i = 0; i < line.len; i++) {
		unsigned char c = (unsigned char)line.ptr[i];
		if (c == '\0') {
			mw_error_set(error_r, "NUL byte in line");
			return -1;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			mw_error_set(error_r, "control character 0x%02x in line", c);
			return -1;
		}
	}
	line = mw_slice_trim(line);
	if (line.len == 0 || line.ptr[0] == '#')
		return 0;
	if (line.ptr[0] == '[')
		return parse_header(st, line, error_r);
	return parse_assignment(st, line, error_r);
}

/* parse_text - parse one file's text into cfg */
static int parse_text(mw_config *cfg, const char *text, size_t len, const char *name,
                      mw_error *error_r)
{
	struct parse_state *st = mw_calloc(1, sizeof(*st));
	size_t pos = 0;
	int ret = 0;
	st->cfg = cfg;
	st->name = name;
	memcpy(st->section, "main", 5);
	while (pos < len && ret == 0) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		mw_slice line = {text + pos, nl != NULL ? (size_t)(nl - (text + pos)) : len - pos};
		pos += line.len + (nl != NULL);
		if (line.len > 0 && line.ptr[line.len - 1] == '\r')
			line.len--;
		st->lineno++;
		ret = parse_line(st, line, error_r);
		if (ret < 0)
			mw_error_prefix(error_r, "%s:%u", name, st->lineno);
	}
	free(st);
	return ret;
}

/* mw_config_load_string - parse text as the file NAME on top of the defaults */
mw_config *mw_config_load_string(const char *text, size_t len, const char *name, mw_error *error_r)
{
	mw_config *cfg = mw_config_defaults();
	if (parse_text(cfg, text, len, name, error_r) < 0)
		mw_config_unref(&cfg);
	return cfg;
}

/* read_file - the whole of regular file PATH (at most MW_CONFIG_MAX_FILE bytes); 1 = missing.
   O_NONBLOCK keeps a FIFO named *.conf from hanging start-up; it is refused below. */
static int read_file(const char *path, bool missing_ok, mw_str *out, mw_error *error_r)
{
	char buf[8192];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && missing_ok)
			return 1;
		mw_error_set(error_r, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		mw_error_set(error_r, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mw_error_set(error_r, "%s: cannot read: %s", path, strerror(errno));
			break;
		}
		if (mw_str_append(out, buf, (size_t)n) < 0) {
			mw_error_set(error_r, "%s: larger than %d bytes", path, MW_CONFIG_MAX_FILE);
			break;
		}
	}
	close(fd);
	return n == 0 ? 0 : -1;
}

/* load_file - read and parse one file into cfg */
static int load_file(mw_config *cfg, const char *path, bool missing_ok, mw_error *error_r)
{
	mw_str text;
	int ret;
	mw_str_init(&text, MW_CONFIG_MAX_FILE);
	ret = read_file(path, missing_ok, &text, error_r);
	if (ret == 0)
		ret = parse_text(cfg, mw_str_c(&text), text.len, path, error_r);
	mw_str_free(&text);
	return ret < 0 ? -1 : 0;
}

/* cmp_names - qsort comparison of two names, byte-wise */
static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* conf_d_names - the *.conf names in dir, sorted (none when dir is missing);
   names starting with '.' are skipped: editors and package managers leave those */
static int conf_d_names(const char *dir, char ***names_r, size_t *count_r, mw_error *error_r)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n;
	int err = 0;
	*names_r = NULL;
	*count_r = 0;
	if (d == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		mw_error_set(error_r, "%s: cannot open directory: %s", dir, strerror(errno));
		return -1;
	}
	while (err == 0 && (errno = 0, de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (de->d_name[0] == '.' || n <= 5 || strcmp(de->d_name + n - 5, ".conf") != 0)
			continue;
		if (*count_r == MW_CONFIG_MAX_FILES)
			err = E2BIG;
		*names_r = mw_realloc(*names_r, (*count_r + 1) * sizeof(**names_r));
		(*names_r)[(*count_r)++] = mw_strdup(de->d_name);
	}
	if (err == 0 && de == NULL)
		err = errno;
	closedir(d);
	if (err != 0) {
		mw_error_set(error_r, "%s: cannot read directory: %s", dir, strerror(err));
		return -1;
	}
	if (*count_r > 0)
		qsort(*names_r, *count_r, sizeof(**names_r), cmp_names);
	return 0;
}

/* mw_config_load - PATH, then DIR/conf.d/ *.conf in name order */
mw_config *mw_config_load(const char *path, bool missing_ok, mw_error *error_r)
{
	mw_config *cfg = mw_config_defaults();
	const char *slash = strrchr(path, '/');
	char **names = NULL;
	size_t i, count = 0;
	mw_str dir, file;
	int ret;
	mw_str_init(&dir, 0);
	mw_str_init(&file, 0);
	if (slash == NULL)
		(void)mw_str_appends(&dir, ".");
	else
		(void)mw_str_append(&dir, path, slash == path ? 1 : (size_t)(slash - path));
	(void)mw_str_appends(&dir, slash == path ? "conf.d" : "/conf.d");
	ret = load_file(cfg, path, missing_ok, error_r);
	if (ret == 0)
		ret = conf_d_names(mw_str_c(&dir), &names, &count, error_r);
	for (i = 0; i < count; i++) {
		if (ret == 0) {
			mw_str_reset(&file);
			(void)mw_str_appendf(&file, "%s/%s", mw_str_c(&dir), names[i]);
			ret = load_file(cfg, mw_str_c(&file), false, error_r);
		}
		free(names[i]);
	}
	free(names);
	mw_str_free(&dir);
	mw_str_free(&file);
	if (ret < 0)
		mw_config_unref(&cfg);
	return cfg;
}

/* value_of - the value of key id, checking that the accessor fits the key's type */
static const struct mw_config_value *value_of(const mw_config *cfg, enum mw_config_key_id id,
                                              unsigned types)
{
	if ((unsigned)id >= MWK__COUNT)
		mw_panic("config: key id %d out of range", (int)id);
	if ((types & (1u << mw_config_keys[id].type)) == 0)
		mw_panic("config: key %s read with the wrong accessor", mw_config_keys[id].name);
	return &cfg->v[id];
}

/* mw_config_str - a STRING, PATH, ENUM, URL or ORIGIN value */
const char *mw_config_str(const mw_config *cfg, enum mw_config_key_id id)
{
	return value_of(cfg, id,
	                1u << MW_CFG_STRING | 1u << MW_CFG_PATH | 1u << MW_CFG_ENUM |
	                    1u << MW_CFG_URL | 1u << MW_CFG_STRLIST | 1u << MW_CFG_ORIGIN)
	    ->str;
}

/* mw_config_int - an INT, DURATION (seconds) or SIZE (bytes) value */
long long mw_config_int(const mw_config *cfg, enum mw_config_key_id id)
{
	return value_of(cfg, id, 1u << MW_CFG_INT | 1u << MW_CFG_DURATION | 1u << MW_CFG_SIZE)->num;
}

/* mw_config_list - a STRLIST value: items joined by '\n' */
const char *mw_config_list(const mw_config *cfg, enum mw_config_key_id id)
{
	return value_of(cfg, id, 1u << MW_CFG_STRLIST)->str;
}

/* mw_config_bool - a BOOL value */
bool mw_config_bool(const mw_config *cfg, enum mw_config_key_id id)
{
	return value_of(cfg, id, 1u << MW_CFG_BOOL)->b;
}

/* mw_config_origin - "file:line" or "default" */
const char *mw_config_origin(const mw_config *cfg, enum mw_config_key_id id)
{
	const struct mw_config_value *v = value_of(cfg, id, ~0u);
	return v->origin != NULL ? v->origin : "default";
}

/* mw_config_list_origin - "file:line" of a STRLIST's item (0-based), or the key's origin */
const char *mw_config_list_origin(const mw_config *cfg, enum mw_config_key_id id, size_t item,
                                  char *buf, size_t size)
{
	const struct mw_config_value *v = value_of(cfg, id, 1u << MW_CFG_STRLIST);
	const char *s = v->item_origins;
	size_t n;
	for (; s != NULL && item > 0; item--) {
		s = strchr(s, '\n');
		if (s != NULL)
			s++;
	}
	if (s == NULL)
		return mw_config_origin(cfg, id);
	n = strcspn(s, "\n");
	if (n >= size)
		return mw_config_origin(cfg, id);
	memcpy(buf, s, n);
	buf[n] = '\0';
	return buf;
}

/* needs_quotes - whether a value would not read back the same unquoted */
static bool needs_quotes(const char *s)
{
	size_t n = strlen(s);
	return n == 0 || s[0] == '"' || s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' ||
	       s[n - 1] == '\t';
}

/* put_value - write a value, quoted and escaped when it needs it */
static void put_value(FILE *out, const char *s)
{
	if (!needs_quotes(s)) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

/* put_list - a STRLIST as one "name = item" line per item (name = "" when empty) */
static void put_list(FILE *out, const char *name, const char *items)
{
	do {
		size_t n = strcspn(items, "\n");
		char *item = mw_strndup(items, n);
		fprintf(out, "%s = ", name);
		put_value(out, item); /* an empty list: "" */
		fputc('\n', out);
		free(item);
		items += n;
	} while (*items++ != '\0');
}

/* first_of_section - whether key i is the first of its section in the table */
static bool first_of_section(size_t i)
{
	size_t j;
	for (j = 0; j < i; j++)
		if (strcmp(mw_config_keys[j].section, mw_config_keys[i].section) == 0)
			return false;
	return true;
}

/* is_secret_key - a key whose whole value is a secret (name ends in _secret or password) */
static bool is_secret_key(const char *name)
{
	size_t n = strlen(name);
	return (n >= 7 && strcmp(name + n - 7, "_secret") == 0) ||
	       (n >= 8 && strcmp(name + n - 8, "password") == 0);
}

/* mask_url_password - a copy of value with the password of a URL's user info replaced by
   "***" (scheme://user:PASSWORD@host...), or NULL when there is none */
static char *mask_url_password(const char *value)
{
	const char *auth = strstr(value, "://"), *end, *colon;
	mw_str s;
	if (auth == NULL)
		return NULL;
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	colon = memchr(auth, ':', (size_t)(end - auth));
	end = colon != NULL ? memchr(colon, '@', (size_t)(end - colon)) : NULL;
	if (colon == NULL || end == NULL)
		return NULL;
	mw_str_init(&s, 0);
	(void)mw_str_append(&s, value, (size_t)(colon + 1 - value));
	(void)mw_str_appends(&s, "***");
	(void)mw_str_appends(&s, end);
	return mw_str_steal(&s);
}

/* mw_config_dump - every key, grouped by section, in a form that parses back */
void mw_config_dump(const mw_config *cfg, FILE *out, unsigned flags)
{
	bool with_origin = (flags & MW_CONFIG_DUMP_ORIGIN) != 0;
	bool secrets = (flags & MW_CONFIG_DUMP_SECRETS) != 0;
	size_t i, j;
	for (i = 0; i < MWK__COUNT; i++) {
		if (!first_of_section(i))
			continue;
		fprintf(out, "%s[%s]\n", i == 0 ? "" : "\n", mw_config_keys[i].section);
		for (j = i; j < MWK__COUNT; j++) {
			if (strcmp(mw_config_keys[j].section, mw_config_keys[i].section) != 0)
				continue;
			if (with_origin)
				fprintf(out, "# origin: %s\n",
				        mw_config_origin(cfg, (enum mw_config_key_id)j));
			if (mw_config_keys[j].type == MW_CFG_STRLIST) {
				put_list(out, mw_config_keys[j].name, cfg->v[j].str);
				continue;
			}
			fprintf(out, "%s = ", mw_config_keys[j].name);
			if (!secrets && is_secret_key(mw_config_keys[j].name) &&
			    *cfg->v[j].str != '\0') {
				fputs("<hidden>", out);
			} else {
				char *masked = secrets ? NULL : mask_url_password(cfg->v[j].str);
				put_value(out, masked != NULL ? masked : cfg->v[j].str);
				free(masked);
			}
			fputc('\n', out);
		}
	}
}

/* fmt_bound - a bound in the key's largest exact unit: 600 -> "10m", 8192 -> "8k" */
static const char *fmt_bound(char *buf, size_t size, enum mw_config_type type, long long n)
{
	static const long long dur[] = {604800, 86400, 3600, 60, 1};
	static const long long sz[] = {1073741824, 1048576, 1024, 1};
	const long long *f = type == MW_CFG_DURATION ? dur : sz;
	const char *units = type == MW_CFG_DURATION ? "wdhms" : "GMk";
	size_t i = 0;
	int r;
	if (n == LLONG_MAX) { /* open upper bound */
		buf[0] = '\0';
		return buf;
	}
	if (type != MW_CFG_DURATION && type != MW_CFG_SIZE)
		r = snprintf(buf, size, "%lld", n);
	else if (n == 0)
		r = snprintf(buf, size, "0%s", type == MW_CFG_DURATION ? "s" : "");
	else {
		while (n % f[i] != 0)
			i++;
		r = snprintf(buf, size, "%lld%.1s", n / f[i], units + i);
	}
	if (r < 0 || (size_t)r >= size)
		buf[0] = '\0';
	return buf;
}

/* allowed - the accepted values of a key for the reference ("" when anything goes) */
static void allowed(mw_str *s, const struct mw_config_key *k, bool markdown)
{
	char lo[32], hi[32];
	const char *p;
	if ((k->type == MW_CFG_ENUM || k->type == MW_CFG_URL) && k->values != NULL) {
		for (p = k->values; *p != '\0'; p++) {
			if (p == k->values)
				(void)mw_str_appends(s, markdown ? "`" : "");
			if (*p == '|')
				(void)mw_str_appends(s, markdown ? "`, `" : ", ");
			else
				(void)mw_str_appendc(s, *p);
		}
		(void)mw_str_appends(s, markdown ? "`" : "");
		if (k->type == MW_CFG_URL)
			(void)mw_str_appends(s, " URLs");
	} else if (k->type == MW_CFG_PATH) {
		(void)mw_str_appends(s, "absolute path");
	} else if (k->type == MW_CFG_ORIGIN) {
		(void)mw_str_appends(s, markdown
		                            ? "`https://host[:port]`, `http://host[:port]`, empty"
		                            : "https://host[:port], http://host[:port], empty");
	} else if (k->type == MW_CFG_BOOL) {
		(void)mw_str_appends(s, markdown ? "`yes`, `no`" : "yes, no");
	} else if (k->min != 0 || k->max != 0) {
		(void)mw_str_appendf(s, "%s..%s", fmt_bound(lo, sizeof(lo), k->type, k->min),
		                     fmt_bound(hi, sizeof(hi), k->type, k->max));
	}
}

/* wrap - write text in lines of at most width columns after indent, breaking at a blank or
   after a comma (long comma lists such as header names); a longer word stays whole */
static void wrap(FILE *out, const char *text, size_t indent, size_t width)
{
	size_t avail = width - indent;
	while (*text != '\0') {
		size_t cut = strlen(text);
		if (cut > avail) {
			cut = avail;
			while (cut > 0 && text[cut] != ' ' && text[cut - 1] != ',')
				cut--;
			if (cut == 0)
				cut = strcspn(text, " ");
		}
		fprintf(out, "%*s%.*s\n", (int)indent, "", (int)cut, text);
		text += cut;
		while (*text == ' ')
			text++;
	}
}

/* md_cell - text for a markdown table cell: '|' escaped */
static void md_cell(FILE *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '|')
			fputc('\\', out);
		fputc(*s, out);
	}
}

/* section_listed - SECTION is in the NULL-terminated list (NULL = every section) */
static bool section_listed(const char *const *sections, const char *section)
{
	if (sections == NULL)
		return true;
	for (; *sections != NULL; sections++)
		if (strcmp(*sections, section) == 0)
			return true;
	return false;
}

/* describe_key - one key of the reference, as a markdown row or a text paragraph */
static void describe_key(FILE *out, const struct mw_config_key *k, bool markdown, mw_str *s)
{
	mw_str_reset(s);
	allowed(s, k, markdown);
	if (markdown) {
		fprintf(out, "| `%s` | %s | ", k->name, mw_type_names[k->type]);
		if (*k->def != '\0') {
			fputc('`', out);
			md_cell(out, k->def);
			fputc('`', out);
		} else {
			fputs("(empty)", out);
		}
		fputs(" | ", out);
		md_cell(out, mw_str_c(s));
		fputs(" | ", out);
		md_cell(out, k->doc);
		fputs(" |\n", out);
		return;
	}
	if (strlen(k->name) + strlen(k->def) + 24 <= 80) {
		fprintf(out, "  %s (%s, default ", k->name, mw_type_names[k->type]);
		put_value(out, k->def);
		fputs(")\n", out);
	} else {
		/* a long default gets its own wrapped lines */
		fprintf(out, "  %s (%s), default:\n", k->name, mw_type_names[k->type]);
		wrap(out, k->def, 6, 78);
	}
	if (s->len > 0) {
		char *acc = mw_str_steal(s);
		(void)mw_str_appendf(s, "%s Accepted: %s.", k->doc, acc);
		free(acc);
	} else {
		(void)mw_str_appends(s, k->doc);
	}
	wrap(out, mw_str_c(s), 6, 78);
}

/* mw_config_describe - the key reference, from the table; the markdown form ends with the
   Dovecot plugin's settings */
void mw_config_describe(FILE *out, bool markdown)
{
	mw_str s;
	size_t j;
	mw_config_describe_sections(out, markdown, NULL);
	if (!markdown)
		return;
	mw_str_init(&s, 0);
	fputs("\n### Dovecot plugin settings\n\n"
	      "Set in dovecot.conf, `plugin { mailwarden_... = VALUE }`, not in mailwarden.conf "
	      "(from `lib/mw-plugin-keys.def`; quote values starting with `$`, e.g. `\"$Junk\"`; "
	      "a value outside the accepted range is logged and the default used).\n\n"
	      "| setting | type | default | accepted | description |\n|---|---|---|---|---|\n",
	      out);
	for (j = 0; j < MWP__COUNT; j++)
		describe_key(out, &mw_plugin_keys[j], true, &s);
	mw_str_free(&s);
}

/* mw_config_describe_sections - the key reference of some sections (a daemon's --help) */
void mw_config_describe_sections(FILE *out, bool markdown, const char *const *sections)
{
	size_t i, j;
	bool first = true;
	mw_str s;
	mw_str_init(&s, 0);
	for (i = 0; i < MWK__COUNT; i++) {
		if (!first_of_section(i) || !section_listed(sections, mw_config_keys[i].section))
			continue;
		if (markdown)
			fprintf(out,
			        "%s### [%s]\n\n| key | type | default | accepted | description |\n"
			        "|---|---|---|---|---|\n",
			        first ? "" : "\n", mw_config_keys[i].section);
		else
			fprintf(out, "%s[%s]\n", first ? "" : "\n", mw_config_keys[i].section);
		first = false;
		for (j = i; j < MWK__COUNT; j++) {
			const struct mw_config_key *k = &mw_config_keys[j];
			if (strcmp(k->section, mw_config_keys[i].section) == 0)
				describe_key(out, k, markdown, &s);
		}
	}
	mw_str_free(&s);
}
