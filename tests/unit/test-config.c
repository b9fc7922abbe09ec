/*
 * test-config.c - unit tests of lib/mw-config.c: the key table and its defaults, the
 * parser on good and hostile input, value parsers, conf.d ordering and overrides with
 * real files, origins, dump round trips, and docs/configuration.md against the table.
 *
 * `test-config --print-docs` writes the generated part of docs/configuration.md.
 * Needs top_srcdir in the environment (the test driver sets it).
 */
#include "mw-build.h"
#include "mw-config.h"
#include "mw-tagrule.h"
#include "mw-test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOCS_MARKER "<!-- generated from lib/mw-config-keys.def: do not edit below -->\n"

/* load - mw_config_load_string over a C string named "t.conf" */
static mw_config *load(const char *text, mw_error *error)
{
	memset(error, 0, sizeof(*error));
	return mw_config_load_string(text, strlen(text), "t.conf", error);
}

/* assert_contains - fail with both strings shown when needle is not in hay */
static void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* test_table - the table is well formed and every default parses and is in bounds */
static void test_table(void **state)
{
	size_t i, j;
	(void)state;
	for (i = 0; i < MWK__COUNT; i++) {
		const struct mw_config_key *k = &mw_config_keys[i];
		mw_error error = {""};
		assert_int_equal(k->id, i);
		assert_non_null(k->doc);
		assert_true(strlen(k->doc) > 0);
		assert_true(k->min <= k->max);
		if (k->type == MW_CFG_ENUM)
			assert_non_null(k->values);
		if (mw_config_check(k->id, k->def, &error) < 0)
			fail_msg("default of %s.%s: %s", k->section, k->name, error.msg);
		assert_ptr_equal(mw_config_key_find(k->section, k->name), k);
		for (j = 0; j < i; j++)
			assert_false(strcmp(k->section, mw_config_keys[j].section) == 0 &&
			             strcmp(k->name, mw_config_keys[j].name) == 0);
	}
	assert_null(mw_config_key_find("main", "nope"));
	assert_null(mw_config_key_find("store", "store"));
}

/* test_defaults - the defaults snapshot, its accessors and origins, refcounting */
static void test_defaults(void **state)
{
	mw_config *cfg = mw_config_defaults(), *cfg2;
	size_t i;
	(void)state;
	assert_string_equal(mw_config_str(cfg, MWK_STORE),
	                    "sqlite:/var/lib/mailwarden/mailwarden.db");
	assert_string_equal(mw_config_str(cfg, MWK_LOG_LEVEL), "info");
	assert_int_equal(mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT), 5);
	assert_int_equal(mw_config_int(cfg, MWK_PASSWORD_ARGON2_MEMORY), 64LL * 1024 * 1024);
	assert_int_equal(mw_config_int(cfg, MWK_PASSWORD_MIN_LENGTH), 10);
	for (i = 0; i < MWK__COUNT; i++)
		assert_string_equal(mw_config_origin(cfg, (enum mw_config_key_id)i), "default");
	cfg2 = mw_config_ref(cfg);
	assert_ptr_equal(cfg, cfg2);
	mw_config_unref(&cfg2);
	assert_null(cfg2);
	assert_string_equal(mw_config_str(cfg, MWK_USER), "mailwarden");
	mw_config_unref(&cfg);
	assert_null(cfg);
	mw_config_unref(&cfg); /* NULL is fine */
}

static const struct good_case {
	const char *text;
	enum mw_config_key_id id;
	const char *str; /* expected string value, or NULL */
	long long num;   /* expected number when str is NULL */
	const char *origin;
} good_cases[] = {
    {"[api]\ncors_origin = https://admin.example.org\n", MWK_API_CORS_ORIGIN,
     "https://admin.example.org", 0, "t.conf:2"},
    {"[api]\ncors_origin = http://127.0.0.1:8080\n", MWK_API_CORS_ORIGIN, "http://127.0.0.1:8080",
     0, "t.conf:2"},
    {"[api]\ncors_origin = https://[::1]:8443\n", MWK_API_CORS_ORIGIN, "https://[::1]:8443", 0,
     "t.conf:2"},
    {"user = joe\n", MWK_USER, "joe", 0, "t.conf:1"},
    {"user=joe", MWK_USER, "joe", 0, "t.conf:1"},                     /* no final newline */
    {"\n# c\n  user   =   joe   \n", MWK_USER, "joe", 0, "t.conf:3"}, /* trailing blanks */
    {"user = joe\t \r\n", MWK_USER, "joe", 0, "t.conf:1"},            /* CRLF */
    {"# x\r\n\r\nuser = joe\r\n", MWK_USER, "joe", 0, "t.conf:3"},
    {"user = \"  joe  \"\n", MWK_USER, "  joe  ", 0, "t.conf:1"},
    {"user = \"a\\\"b\\\\c\"\n", MWK_USER, "a\"b\\c", 0, "t.conf:1"},
    {"user = a#b # not a comment\n", MWK_USER, "a#b # not a comment", 0, "t.conf:1"},
    {"user = a=b\n", MWK_USER, "a=b", 0, "t.conf:1"},
    {"user = back\\slash\n", MWK_USER, "back\\slash", 0, "t.conf:1"},
    {"[main]\nuser = joe\n", MWK_USER, "joe", 0, "t.conf:2"},
    {"[ store ]\n[main]\nlog_level = DEBUG\n", MWK_LOG_LEVEL, "debug", 0, "t.conf:3"},
    {"log = stderr\n", MWK_LOG, "stderr", 0, "t.conf:1"},
    {"syslog_facility = local7\n", MWK_SYSLOG_FACILITY, "local7", 0, "t.conf:1"},
    {"master_key = /k\n", MWK_MASTER_KEY, "/k", 0, "t.conf:1"},
    {"store = sqlite:/srv/m.db\n", MWK_STORE, "sqlite:/srv/m.db", 0, "t.conf:1"},
    {"store = postgresql://mw@db/mw\n", MWK_STORE, "postgresql://mw@db/mw", 0, "t.conf:1"},
    {"store = postgres://\n", MWK_STORE, "postgres://", 0, "t.conf:1"},
    {"[store]\nbusy_timeout = 0\n", MWK_STORE_BUSY_TIMEOUT, NULL, 0, "t.conf:2"},
    {"[store]\nbusy_timeout = 10m\n", MWK_STORE_BUSY_TIMEOUT, NULL, 600, "t.conf:2"},
    {"[store]\n\n\nbusy_timeout = 90\n", MWK_STORE_BUSY_TIMEOUT, NULL, 90, "t.conf:4"},
    {"[password]\nmin_length = 1024\n", MWK_PASSWORD_MIN_LENGTH, NULL, 1024, "t.conf:2"},
    {"[password]\nargon2_memory = 8k\n", MWK_PASSWORD_ARGON2_MEMORY, NULL, 8192, "t.conf:2"},
    {"[password]\nargon2_memory = 256M\n", MWK_PASSWORD_ARGON2_MEMORY, NULL, 268435456, "t.conf:2"},
    {"[password]\nargon2_memory = \"1048576\"\n", MWK_PASSWORD_ARGON2_MEMORY, NULL, 1048576,
     "t.conf:2"},
    {"[store]\nbusy_timeout = 1\n[main]\nuser = x\n", MWK_STORE_BUSY_TIMEOUT, NULL, 1, "t.conf:2"},
    {"user = x\n", MWK_LOG_LEVEL, "info", 0, "default"},
};

/* test_good - accepted configs give the expected values and origins */
static void test_good(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(good_cases); i++) {
		const struct good_case *c = &good_cases[i];
		mw_error error;
		mw_config *cfg = load(c->text, &error);
		if (cfg == NULL)
			fail_msg("case %zu refused: %s", i, error.msg);
		if (c->str != NULL)
			assert_string_equal(mw_config_str(cfg, c->id), c->str);
		else
			assert_int_equal(mw_config_int(cfg, c->id), c->num);
		assert_string_equal(mw_config_origin(cfg, c->id), c->origin);
		mw_config_unref(&cfg);
	}
}

static const struct bad_case {
	const char *text;
	const char *where; /* "t.conf:LINE" */
	const char *what;  /* another part of the message */
} bad_cases[] = {
    /* cors_origin (issue 16): exactly one origin, never null, * or a pattern */
    {"[api]\ncors_origin = null\n", "t.conf:2: ", "bad value for api.cors_origin"},
    {"[api]\ncors_origin = *\n", "t.conf:2: ", "expected an origin"},
    {"[api]\ncors_origin = https://*.example.org\n", "t.conf:2: ", "lower-case name"},
    {"[api]\ncors_origin = https://admin.example.org/\n", "t.conf:2: ", "no path"},
    {"[api]\ncors_origin = https://Admin.example.org\n", "t.conf:2: ", "lower-case"},
    {"[api]\ncors_origin = https://u@admin.example.org\n", "t.conf:2: ", "no path, user"},
    {"[api]\ncors_origin = https://admin.example.org:0\n", "t.conf:2: ", "port"},
    {"[api]\ncors_origin = https://admin.example.org:65536\n", "t.conf:2: ", "port"},
    {"[api]\ncors_origin = ftp://admin.example.org\n", "t.conf:2: ", "expected an origin"},
    {"[api]\ncors_origin = https://a..b\n", "t.conf:2: ", "lower-case name"},
    {"[api]\ncors_origin = https://[]\n", "t.conf:2: ", "IPv6"},
    {"foo = 1\n", "t.conf:1: ", "unknown key \"foo\" in section [main]"},
    {"[store]\nstore = x\n", "t.conf:2: ", "unknown key \"store\" in section [store]"},
    {"[x]\n", "t.conf:1: ", "unknown section [x]"},
    {"[]\n", "t.conf:1: ", "empty section name"},
    {"[store\nbusy_timeout = 1\n", "t.conf:1: ", "missing ']'"},
    {"[store] # c\n", "t.conf:1: ", "missing ']'"},
    {"\n\nuser = a\nlog = stderr\nuser = b\n",
     "t.conf:5: ", "duplicate key \"user\" (first set at line 3)"},
    {"[store]\nbusy_timeout = 1\n[main]\n[store]\nbusy_timeout = 2\n",
     "t.conf:5: ", "duplicate key \"store.busy_timeout\" (first set at line 2)"},
    {"log_level = loud\n",
     "t.conf:1: ", "bad value for log_level: \"loud\" (expected debug|info|warning|error)"},
    {"log_level =\n", "t.conf:1: ", "bad value for log_level: \"\""},
    {"user =\n", "t.conf:1: ", "bad value for user: \"\" (must not be empty)"},
    {"user = \"\"\n", "t.conf:1: ", "bad value for user"},
    {"master_key = etc/k\n",
     "t.conf:1: ", "bad value for master_key: \"etc/k\" (expected an absolute path)"},
    {"store = mysql://x\n", "t.conf:1: ", "bad value for store: unsupported scheme"},
    {"store = sqlite:rel.db\n", "t.conf:1: ", "bad value for store: expected sqlite:/absolute"},
    {"store = sqlite://h/x.db\n", "t.conf:1: ", "bad value for store"},
    {"store = postgresql:x\n", "t.conf:1: ", "bad value for store: expected postgresql://"},
    {"store = /var/db\n", "t.conf:1: ", "bad value for store"},
    {"store = Sqlite:/x\n", "t.conf:1: ", "bad value for store: malformed scheme"},
    {"store = postgresql://u:secret@h/d x\n", "t.conf:1: ", "blank inside URL"},
    {"[store]\nbusy_timeout = 601\n",
     "t.conf:2: ", "store.busy_timeout: \"601\" (out of range 0..600"},
    {"[store]\nbusy_timeout = 1h\n", "t.conf:2: ", "out of range"},
    {"[password]\nargon2_passes = 0\n", "t.conf:2: ", "password.argon2_passes"},
    {"[store]\nbusy_timeout = 5x\n", "t.conf:2: ", "expected a duration"},
    {"[store]\nbusy_timeout = -5s\n", "t.conf:2: ", "busy_timeout"},
    {"[store]\nbusy_timeout = 5 s\n", "t.conf:2: ", "busy_timeout"},
    {"[store]\nbusy_timeout = 99999999999999999999d\n", "t.conf:2: ", "number too large"},
    {"[store]\nbusy_timeout = 9223372036854775807w\n", "t.conf:2: ", "number too large"},
    {"[password]\nmin_length = 0\n",
     "t.conf:2: ", "password.min_length: \"0\" (out of range 1..1024)"},
    {"[password]\nmin_length = 1e3\n", "t.conf:2: ", "expected a decimal integer"},
    {"[password]\nmin_length = 0x10\n", "t.conf:2: ", "expected a decimal integer"},
    {"[password]\nmin_length = +5\n", "t.conf:2: ", "expected a decimal integer"},
    {"[password]\nmin_length = 99999999999999999999\n", "t.conf:2: ", "min_length"},
    {"[password]\nargon2_memory = 1T\n", "t.conf:2: ", "expected a size"},
    {"[password]\nargon2_memory = 1G\n", "t.conf:2: ", "out of range 8192..268435456 bytes"},
    {"[password]\nargon2_memory = 18014398509481984k\n", "t.conf:2: ", "number too large"},
    {"user\n", "t.conf:1: ", "missing '='"},
    {"\n\n\n   = x\n", "t.conf:4: ", "empty key"},
    {"user = \"joe\n", "t.conf:1: ", "unterminated quote"},
    {"user = \"jo\\\"\n", "t.conf:1: ", "unterminated quote"},
    {"user = \"jo\"e\n", "t.conf:1: ", "text after closing quote"},
    {"user = \"jo\\n\"\n", "t.conf:1: ", "bad escape"},
    {"user = a\rb\n", "t.conf:1: ", "control character 0x0d"},
    {"user = a\x1b[31m\n", "t.conf:1: ", "control character 0x1b"},
    {"ü = 1\n", "t.conf:1: ", "unknown key \"\\xc3\\xbc\""},
    {"User = x\n", "t.conf:1: ", "unknown key \"User\""},
    {"user = x\n[\"a\\b]\n", "t.conf:2: ", "unknown section [\\x22a\\x5cb]"},
    /* an over-long name is shown cut at 80 bytes */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbb"
     "bbbbbbb = 1\n",
     "t.conf:1: ",
     "unknown key "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\""},
};

/* test_bad - refused configs name the file, the line and what was wrong */
static void test_bad(void **state)
{
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		mw_error error;
		mw_config *cfg = load(c->text, &error);
		if (cfg != NULL)
			fail_msg("case %zu accepted: %s", i, c->text);
		if (strncmp(error.msg, c->where, strlen(c->where)) != 0)
			fail_msg("case %zu: \"%s\" does not start with \"%s\"", i, error.msg,
			         c->where);
		assert_contains(error.msg, c->what);
	}
}

/* test_secret_not_echoed - a refused store URL is not copied into the message */
static void test_secret_not_echoed(void **state)
{
	mw_error error;
	(void)state;
	assert_null(load("store = mysql://u:hunter2@h/d\n", &error));
	assert_null(strstr(error.msg, "hunter2"));
	assert_int_equal(mw_config_check(MWK_STORE, "postgresql:/hunter2", &error), -1);
	assert_null(strstr(error.msg, "hunter2"));
	assert_int_equal(mw_config_check(MWK_LOG_LEVEL, "warning", &error), 0);
}

/* test_limits - line length bound (exact), NUL bytes, long values cut in messages */
static void test_limits(void **state)
{
	char *text = malloc(MW_CONFIG_MAX_LINE + 64);
	size_t n = strlen("user = ");
	mw_error error;
	mw_config *cfg;
	(void)state;
	assert_non_null(text);
	/* exactly MW_CONFIG_MAX_LINE bytes plus CRLF: accepted */
	memcpy(text, "user = ", n);
	memset(text + n, 'a', MW_CONFIG_MAX_LINE - n);
	memcpy(text + MW_CONFIG_MAX_LINE, "\r\n", 3);
	cfg = mw_config_load_string(text, strlen(text), "t.conf", &error);
	assert_non_null(cfg);
	assert_int_equal(strlen(mw_config_str(cfg, MWK_USER)), MW_CONFIG_MAX_LINE - n);
	mw_config_unref(&cfg);
	/* one more byte: refused, not truncated */
	memcpy(text, "# x\nuser = ", n + 4);
	memset(text + n + 4, 'a', MW_CONFIG_MAX_LINE - n + 1);
	memcpy(text + MW_CONFIG_MAX_LINE + 5, "\n", 2);
	assert_null(mw_config_load_string(text, strlen(text), "t.conf", &error));
	assert_contains(error.msg, "t.conf:2: line longer than 4096 bytes");
	/* a long bad value is shown cut */
	memcpy(text, "log = ", 6);
	memset(text + 6, 'b', 1000);
	text[1006] = '\0';
	assert_null(mw_config_load_string(text, strlen(text), "t.conf", &error));
	assert_contains(error.msg, "t.conf:1: bad value for log: \"bbbb");
	assert_contains(error.msg, "...\" (expected syslog|stderr)");
	free(text);
	/* NUL inside a line, and at the start of a line */
	assert_null(mw_config_load_string("user = a\0b\n", 11, "t.conf", &error));
	assert_contains(error.msg, "t.conf:1: NUL byte");
	assert_null(mw_config_load_string("user = a\n\0\n", 11, "t.conf", &error));
	assert_contains(error.msg, "t.conf:2: NUL byte");
	/* empty input: the defaults */
	cfg = mw_config_load_string("", 0, "t.conf", &error);
	assert_non_null(cfg);
	assert_string_equal(mw_config_origin(cfg, MWK_USER), "default");
	mw_config_unref(&cfg);
}

/* test_documented_empty - every STRING/PATH key whose doc says what "" means takes "" (issue
   13: control_socket = "" was documented as "none" and refused); the others with a
   non-empty default refuse it */
static void test_documented_empty(void **state)
{
	char text[256];
	mw_config *cfg;
	mw_error error;
	size_t i, documented = 0;
	(void)state;
	for (i = 0; i < MWK__COUNT; i++) {
		const struct mw_config_key *k = &mw_config_keys[i];
		if (k->type != MW_CFG_STRING && k->type != MW_CFG_PATH)
			continue;
		if (strcmp(k->section, "main") == 0)
			(void)snprintf(text, sizeof(text), "%s = \"\"\n", k->name);
		else
			(void)snprintf(text, sizeof(text), "[%s]\n%s = \"\"\n", k->section,
			               k->name);
		cfg = mw_config_load_string(text, strlen(text), "t.conf", &error);
		if (strstr(k->doc, "\"\" = ") != NULL || *k->def == '\0') {
			if (cfg == NULL)
				fail_msg("[%s] %s = \"\" refused: %s", k->section, k->name,
				         error.msg);
			assert_string_equal(mw_config_str(cfg, k->id), "");
			mw_config_unref(&cfg);
			documented += *k->def != '\0';
		} else {
			if (cfg != NULL)
				fail_msg("[%s] %s = \"\" accepted but undocumented", k->section,
				         k->name);
			assert_contains(error.msg, "must not be empty");
		}
	}
	/* policyd control_socket and socket_group, api socket_group at least */
	assert_true(documented >= 3);
}

/* test_value_parsers - durations, sizes and booleans on their own */
static void test_value_parsers(void **state)
{
	static const struct {
		const char *s;
		int ret;
		long long v;
	} dur[] =
	    {
	        {"0", 0, 0},
	        {"30", 0, 30},
	        {"30s", 0, 30},
	        {"5m", 0, 300},
	        {"1h", 0, 3600},
	        {"1d", 0, 86400},
	        {"2w", 0, 1209600},
	        {"007s", 0, 7},
	        {"", -1, 0},
	        {"s", -1, 0},
	        {"1x", -1, 0},
	        {"1ss", -1, 0},
	        {"1S", -1, 0},
	        {" 1s", -1, 0},
	        {"1s ", -1, 0},
	        {"-1", -1, 0},
	        {"1.5h", -1, 0},
	        {"1h30m", -1, 0},
	        {"9223372036854775807", 0, 9223372036854775807LL},
	        {"9223372036854775808", -1, 0},
	        {"99999999999999999999d", -1, 0},
	        {"153722867280912931m", -1, 0},
	        {"153722867280912930m", 0, 9223372036854775800LL},
	    },
	  size[] = {
	      {"0", 0, 0},
	      {"512", 0, 512},
	      {"10k", 0, 10240},
	      {"10K", 0, 10240},
	      {"25M", 0, 26214400},
	      {"1G", 0, 1073741824},
	      {"1g", 0, 1073741824},
	      {"1T", -1, 0},
	      {"1kb", -1, 0},
	      {"k", -1, 0},
	      {"-1k", -1, 0},
	      {"8589934592G", -1, 0},
	      {"8589934591G", 0, 8589934591LL * 1073741824},
	  };
	static const struct {
		const char *s;
		int ret;
		bool b;
	} bools[] = {
	    {"yes", 0, true},    {"YES", 0, true}, {"true", 0, true},   {"on", 0, true},
	    {"1", 0, true},      {"no", 0, false}, {"false", 0, false}, {"Off", 0, false},
	    {"0", 0, false},     {"", -1, false},  {"y", -1, false},    {"2", -1, false},
	    {"yes ", -1, false},
	};
	mw_error error;
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(dur); i++) {
		long long v = -42;
		int ret = mw_config_parse_duration(dur[i].s, &v, &error);
		if (ret != dur[i].ret || (ret == 0 && v != dur[i].v))
			fail_msg("duration \"%s\": ret %d value %lld", dur[i].s, ret, v);
		if (ret < 0)
			assert_contains(error.msg, "expected a duration");
	}
	for (i = 0; i < MW_N_ELEMENTS(size); i++) {
		long long v = -42;
		int ret = mw_config_parse_size(size[i].s, &v, &error);
		if (ret != size[i].ret || (ret == 0 && v != size[i].v))
			fail_msg("size \"%s\": ret %d value %lld", size[i].s, ret, v);
	}
	for (i = 0; i < MW_N_ELEMENTS(bools); i++) {
		bool b = !bools[i].b;
		int ret = mw_config_parse_bool(bools[i].s, &b, &error);
		if (ret != bools[i].ret || (ret == 0 && b != bools[i].b))
			fail_msg("bool \"%s\": ret %d", bools[i].s, ret);
	}
}

/* write_file - create path with text (fails the test on error) */
static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* join - dir + "/" + name into a static-free buffer the caller frees */
static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	assert_non_null(p);
	assert_true(snprintf(p, n, "%s/%s", dir, name) == (int)n - 1);
	return p;
}

/* remove_tree - rm -r of the small trees these tests make (files and one level of dirs) */
static void remove_tree(const char *dir)
{
	char cmd[512];
	assert_true(snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) < (int)sizeof(cmd));
	assert_int_equal(system(cmd), 0);
}

/* test_conf_d - conf.d files in name order override the main file; others ignored */
static void test_conf_d(void **state)
{
	char tmpl[] = "/tmp/test-config.XXXXXX";
	char *dir = mkdtemp(tmpl), *main_conf, *confd, *p, want[512];
	mw_error error = {""};
	mw_config *cfg;
	(void)state;
	assert_non_null(dir);
	main_conf = join(dir, "mailwarden.conf");
	confd = join(dir, "conf.d");
	write_file(main_conf,
	           "user = main\nlog_level = debug\nlog = stderr\n[store]\nbusy_timeout = 1\n");
	/* without conf.d */
	cfg = mw_config_load(main_conf, false, &error);
	if (cfg == NULL)
		fail_msg("%s", error.msg);
	assert_string_equal(mw_config_str(cfg, MWK_LOG_LEVEL), "debug");
	mw_config_unref(&cfg);
	assert_int_equal(mkdir(confd, 0755), 0);
#define CONFD(name, text)                                                                          \
	do {                                                                                       \
		p = join(confd, name);                                                             \
		write_file(p, text);                                                               \
		free(p);                                                                           \
	} while (0)
	CONFD("20-b.conf", "# b\nlog_level = error\n");
	CONFD("10-a.conf", "log_level = warning\nuser = a\n");
	CONFD("10-a.conf.bak", "garbage\n");
	CONFD("README", "garbage\n");
	CONFD(".hidden.conf", "garbage\n");
	CONFD("9-z.conf", "[store]\nbusy_timeout = 9\n"); /* "9" sorts after "20" (strcmp) */
	cfg = mw_config_load(main_conf, false, &error);
	if (cfg == NULL)
		fail_msg("%s", error.msg);
	assert_string_equal(mw_config_str(cfg, MWK_LOG_LEVEL), "error");
	assert_string_equal(mw_config_str(cfg, MWK_USER), "a");
	assert_string_equal(mw_config_str(cfg, MWK_LOG), "stderr");
	assert_int_equal(mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT), 9);
	snprintf(want, sizeof(want), "%s/20-b.conf:2", confd);
	assert_string_equal(mw_config_origin(cfg, MWK_LOG_LEVEL), want);
	snprintf(want, sizeof(want), "%s/10-a.conf:2", confd);
	assert_string_equal(mw_config_origin(cfg, MWK_USER), want);
	snprintf(want, sizeof(want), "%s:3", main_conf);
	assert_string_equal(mw_config_origin(cfg, MWK_LOG), want);
	assert_string_equal(mw_config_origin(cfg, MWK_STORE), "default");
	mw_config_unref(&cfg);

	/* a duplicate inside one conf.d file is still an error, naming that file */
	CONFD("30-dup.conf", "user = x\nuser = y\n");
	assert_null(mw_config_load(main_conf, false, &error));
	snprintf(want, sizeof(want),
	         "%s/30-dup.conf:2: duplicate key \"user\" (first set at line 1)", confd);
	assert_string_equal(error.msg, want);
	p = join(confd, "30-dup.conf");
	assert_int_equal(unlink(p), 0);
	free(p);

	/* a bad value in conf.d names its file */
	CONFD("40-bad.conf", "\n[password]\nmin_length = many\n");
	assert_null(mw_config_load(main_conf, false, &error));
	snprintf(want, sizeof(want), "%s/40-bad.conf:3: bad value for password.min_length", confd);
	assert_contains(error.msg, want);
	p = join(confd, "40-bad.conf");
	assert_int_equal(unlink(p), 0);
	free(p);

	/* a .conf entry that cannot be read (a directory, a dangling link) is an error */
	p = join(confd, "50-dir.conf");
	assert_int_equal(mkdir(p, 0755), 0);
	assert_null(mw_config_load(main_conf, false, &error));
	assert_contains(error.msg, p);
	assert_int_equal(rmdir(p), 0);
	free(p);
	p = join(confd, "55-fifo.conf");
	assert_int_equal(mkfifo(p, 0644), 0);
	assert_null(mw_config_load(main_conf, false, &error)); /* must not hang */
	assert_contains(error.msg, p);
	assert_contains(error.msg, "not a regular file");
	assert_int_equal(unlink(p), 0);
	free(p);
	p = join(confd, "60-link.conf");
	assert_int_equal(symlink("/nonexistent/mw-test", p), 0);
	assert_null(mw_config_load(main_conf, false, &error));
	assert_contains(error.msg, p);
	assert_contains(error.msg, "cannot open");
	assert_int_equal(unlink(p), 0);
	free(p);

	/* an unreadable file (permissions do not stop root, so only when not root) */
	if (geteuid() != 0) {
		p = join(confd, "70-secret.conf");
		write_file(p, "user = z\n");
		assert_int_equal(chmod(p, 0), 0);
		assert_null(mw_config_load(main_conf, false, &error));
		assert_contains(error.msg, p);
		assert_contains(error.msg, "Permission denied");
		free(p);
	}
	remove_tree(dir);
	free(main_conf);
	free(confd);
}

/* test_missing - a missing main file with and without missing_ok; conf.d still read */
static void test_missing(void **state)
{
	char tmpl[] = "/tmp/test-config.XXXXXX";
	char *dir = mkdtemp(tmpl), *main_conf, *confd, *p;
	mw_error error = {""};
	mw_config *cfg;
	(void)state;
	assert_non_null(dir);
	main_conf = join(dir, "none.conf");
	assert_null(mw_config_load(main_conf, false, &error));
	assert_contains(error.msg, main_conf);
	assert_contains(error.msg, "No such file");
	cfg = mw_config_load(main_conf, true, &error);
	assert_non_null(cfg);
	assert_string_equal(mw_config_origin(cfg, MWK_USER), "default");
	mw_config_unref(&cfg);
	confd = join(dir, "conf.d");
	assert_int_equal(mkdir(confd, 0755), 0);
	p = join(confd, "a.conf");
	write_file(p, "user = fromconfd");
	cfg = mw_config_load(main_conf, true, &error);
	assert_non_null(cfg);
	assert_string_equal(mw_config_str(cfg, MWK_USER), "fromconfd");
	mw_config_unref(&cfg);
	/* the main path being a directory is an error, not "missing" */
	assert_null(mw_config_load(dir, true, &error));
	assert_contains(error.msg, dir);
	free(p);
	free(confd);
	free(main_conf);
	remove_tree(dir);
}

/* dump - mw_config_dump into a malloc'd string */
static char *dump(const mw_config *cfg, bool with_origin)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	mw_config_dump(cfg, f, (with_origin ? MW_CONFIG_DUMP_ORIGIN : 0) | MW_CONFIG_DUMP_SECRETS);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* test_dump_masks_secrets - without MW_CONFIG_DUMP_SECRETS no secret reaches the output */
static void test_dump_masks_secrets(void **state)
{
	static const char text[] = "store = postgresql://mw:s3cr3t-pw@db.example/mailwarden\n"
	                           "[policyd]\ncounters = redis://:r3d1s-pw@127.0.0.1:6379/0\n"
	                           "[api]\nauth_policy_secret = 0123456789abcdef-secret\n";
	static const char *const secrets[] = {"s3cr3t-pw", "r3d1s-pw", "0123456789abcdef-secret",
	                                      NULL};
	static const char *const masked[] = {"store = postgresql://mw:***@db.example/mailwarden",
	                                     "counters = redis://:***@127.0.0.1:6379/0",
	                                     "auth_policy_secret = <hidden>", NULL};
	mw_error err;
	mw_config *cfg = mw_config_load_string(text, sizeof(text) - 1, "t.conf", &err);
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	(void)state;
	assert_non_null(cfg);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	mw_config_dump(cfg, f, 0);
	assert_int_equal(fclose(f), 0);
	mw_test_expect_text(buf, masked, secrets);
	free(buf);
	buf = dump(cfg, false); /* with secrets: everything, and it parses back */
	mw_test_expect_text(buf, secrets, NULL);
	free(buf);
	mw_config_unref(&cfg);
}

/* test_dump_roundtrip - dump output parses back to the same values */
static void test_dump_roundtrip(void **state)
{
	static const char *const texts[] = {
	    "",
	    "user = \"  two words \"\nlog_level = WARNING\n[store]\nbusy_timeout = 2m\n"
	    "[password]\nargon2_memory = 16M\n",
	    "user = \"\\\"quoted\\\" and \\\\ back\"\nstore = postgresql://mw@db:5432/mw\n",
	    "user = # hash at start\nmaster_key = /a b/#c\n",
	    "user = \"\\\"\"\n",
	};
	size_t i, k;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(texts); i++) {
		mw_error error = {""};
		mw_config *a = load(texts[i], &error), *b, *c;
		char *d1, *d2;
		if (a == NULL)
			fail_msg("text %zu: %s", i, error.msg);
		d1 = dump(a, true);
		d2 = dump(a, false);
		b = mw_config_load_string(d1, strlen(d1), "dump", &error);
		if (b == NULL)
			fail_msg("dump %zu does not parse: %s\n%s", i, error.msg, d1);
		c = mw_config_load_string(d2, strlen(d2), "dump", &error);
		assert_non_null(c);
		for (k = 0; k < MWK__COUNT; k++) {
			enum mw_config_key_id id = (enum mw_config_key_id)k;
			switch (mw_config_keys[k].type) {
			case MW_CFG_INT:
			case MW_CFG_DURATION:
			case MW_CFG_SIZE:
				assert_int_equal(mw_config_int(a, id), mw_config_int(b, id));
				assert_int_equal(mw_config_int(a, id), mw_config_int(c, id));
				break;
			case MW_CFG_BOOL:
				assert_int_equal(mw_config_bool(a, id), mw_config_bool(b, id));
				break;
			default:
				assert_string_equal(mw_config_str(a, id), mw_config_str(b, id));
				assert_string_equal(mw_config_str(a, id), mw_config_str(c, id));
			}
		}
		if (i == 1) {
			assert_contains(d1, "# origin: t.conf:1\nuser = \"  two words \"\n");
			assert_contains(d1, "# origin: default\nstore = sqlite:/var/lib/");
			assert_contains(d2, "[main]\nstore = ");
			assert_contains(d2, "\n\n[store]\nbusy_timeout = 2m\n");
			assert_contains(d2, "log_level = warning\n");
			assert_null(strstr(d2, "# origin"));
		}
		free(d1);
		free(d2);
		mw_config_unref(&a);
		mw_config_unref(&b);
		mw_config_unref(&c);
	}
}

/* read_all - a file's whole text (NUL-terminated), failing the test when unreadable */
static char *read_all(const char *path)
{
	char *buf = mw_test_file(path, NULL);
	if (buf == NULL)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	return buf;
}

/* srcdir_path - $top_srcdir/rel, failing loudly when the driver did not set top_srcdir */
static char *srcdir_path(const char *rel)
{
	const char *top = getenv("top_srcdir");
	if (top == NULL || *top == '\0')
		fail_msg("top_srcdir is not set: run through `make check` (or set it to the source "
		         "tree)");
	return join(top, rel);
}

/* test_golden - tests/data/config: main file + conf.d, dump equals expected-dump.conf */
static void test_golden(void **state)
{
	char *path = srcdir_path("tests/data/config/mailwarden.conf");
	char *want_path = srcdir_path("tests/data/config/expected-dump.conf");
	char *want = read_all(want_path), *got, *origin, buf[1024];
	mw_error error = {""};
	mw_config *cfg = mw_config_load(path, false, &error);
	(void)state;
	if (cfg == NULL)
		fail_msg("%s", error.msg);
	got = dump(cfg, false);
	if (strcmp(got, want) != 0)
		fail_msg("dump differs from %s:\n%s", want_path, got);
	assert_int_equal(mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT), 60);
	assert_int_equal(mw_config_int(cfg, MWK_PASSWORD_MIN_LENGTH), 14);
	origin = srcdir_path("tests/data/config/conf.d/20-crlf.conf");
	snprintf(buf, sizeof(buf), "%s:4", origin);
	assert_string_equal(mw_config_origin(cfg, MWK_MASTER_KEY), buf);
	snprintf(buf, sizeof(buf), "%s:4", path);
	assert_string_equal(mw_config_origin(cfg, MWK_LOG), buf);
	assert_string_equal(mw_config_origin(cfg, MWK_PASSWORD_ARGON2_PASSES), "default");
	free(origin);
	free(got);
	free(want);
	free(want_path);
	free(path);
	mw_config_unref(&cfg);
}

/* describe - mw_config_describe into a malloc'd string */
static char *describe(bool markdown)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	mw_config_describe(f, markdown);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* test_describe_text - the --help reference names every key and fits 80 columns */
static void test_describe_text(void **state)
{
	char *text = describe(false), *line, *save = NULL;
	size_t i;
	(void)state;
	for (i = 0; i < MWK__COUNT; i++) {
		char want[128];
		snprintf(want, sizeof(want), "  %s (", mw_config_keys[i].name);
		assert_contains(text, want);
	}
	assert_contains(text, "[store]\n  busy_timeout (duration, default 5s)\n      How long");
	assert_contains(text, "and lock_timeout. Accepted:\n      0s..10m.\n");
	assert_contains(text, "  argon2_memory (size, default 64M)\n");
	assert_contains(text, "Accepted: 8k..256M.\n");
	assert_contains(text, "  user (string, default mailwarden)\n");
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		if (strlen(line) > 80)
			fail_msg("line over 80 columns: %s", line);
	free(text);
}

/* test_plugin_keys - every Dovecot plugin setting's default parses as its type, within its
   bounds, and agrees with the limits the tag-rule code was written for */
static void test_plugin_keys(void **state)
{
	size_t i, j;
	long long n;
	mw_error err = {""};
	(void)state;
	for (i = 0; i < MWP__COUNT; i++) {
		const struct mw_config_key *k = &mw_plugin_keys[i];
		if (strncmp(k->name, "mailwarden_", 11) != 0)
			fail_msg("plugin setting %s lacks the mailwarden_ prefix", k->name);
		if (mw_plugin_key_parse((enum mw_plugin_key_id)i, k->def, &n, &err) < 0)
			fail_msg("plugin setting %s: default %s: %s", k->name, k->def, err.msg);
		for (j = 0; j < i; j++)
			assert_string_not_equal(k->name, mw_plugin_keys[j].name);
	}
	assert_int_equal(mw_plugin_key_parse(MWP_RULES_TEXT_MAX,
	                                     mw_plugin_keys[MWP_RULES_TEXT_MAX].def, &n, NULL),
	                 0);
	assert_int_equal(n, MW_TAGRULE_TEXT_MAX_DEFAULT);
	assert_int_equal(mw_plugin_key_parse(MWP_RULES_BUDGET, "20000000", &n, NULL), 0);
	assert_int_equal(n, MW_TAGRULE_BUDGET_DEFAULT);
	assert_int_equal(mw_plugin_key_parse(MWP_RULES_TEXT_MAX, "255", &n, NULL), -1);
	assert_int_equal(mw_plugin_key_parse(MWP_RULES_TEXT_MAX, "2M", &n, NULL), -1);
	assert_int_equal(mw_plugin_key_parse(MWP_RULES_CACHE_TTL, "2d", &n, NULL), -1);
	assert_int_equal(mw_plugin_key_parse(MWP_RULES_CACHE_TTL, "5m", &n, NULL), 0);
	assert_int_equal(n, 300);
	assert_int_equal(mw_plugin_key_parse(MWP_RULES_BUDGET, "9999", &n, NULL), -1);
	assert_int_equal(mw_plugin_key_parse(MWP_FILE_SPAM, "maybe", &n, NULL), -1);
	assert_int_equal(mw_plugin_key_parse(MWP_LEARN, mw_plugin_keys[MWP_LEARN].def, &n, NULL),
	                 0);
	assert_int_equal(n, 1);
	assert_int_equal(mw_plugin_key_parse(MWP_CONFIG, "relative.conf", &n, NULL), -1);
}

/* test_docs - docs/configuration.md holds exactly the generated reference */
static void test_docs(void **state)
{
	char *md = describe(true), *path = srcdir_path("docs/configuration.md");
	char *doc = read_all(path), *after;
	(void)state;
	after = strstr(doc, DOCS_MARKER);
	if (after == NULL)
		fail_msg("%s has no marker line %s", path, DOCS_MARKER);
	after += strlen(DOCS_MARKER);
	if (strcmp(after, md) != 0)
		fail_msg("%s is out of date with lib/mw-config-keys.def: regenerate the part below "
		         "the marker with `tests/unit/test-config --print-docs`",
		         path);
	assert_contains(md, "| `busy_timeout` | duration | `5s` | 0s..10m |");
	assert_contains(md, "### Dovecot plugin settings");
	assert_contains(md, "| `mailwarden_spam_mailbox` | string | `Junk` |");
	free(path);
	free(doc);
	free(md);
}

/* test_describe_sections - a daemon's --help: every key of its sections, none of others */
static void test_describe_sections(void **state)
{
	static const char *const sections[] = {"main", "api", NULL};
	char *buf = NULL, needle[128];
	size_t len = 0, k;
	FILE *f = open_memstream(&buf, &len);
	(void)state;
	assert_non_null(f);
	mw_config_describe_sections(f, false, sections);
	assert_int_equal(fclose(f), 0);
	assert_true(strncmp(buf, "[main]\n", 7) == 0);
	assert_non_null(strstr(buf, "\n[api]\n"));
	assert_null(strstr(buf, "[milter]"));
	assert_null(strstr(buf, "[policyd]"));
	for (k = 0; k < MWK__COUNT; k++) {
		const struct mw_config_key *key = &mw_config_keys[k];
		bool listed = strcmp(key->section, "main") == 0 || strcmp(key->section, "api") == 0;
		(void)snprintf(needle, sizeof(needle), "\n  %s (", key->name);
		if (listed && strstr(buf, needle) == NULL)
			fail_msg("[%s] %s missing from the help of its sections", key->section,
			         key->name);
	}
	assert_non_null(strstr(buf, "\n  workers ("));
	free(buf);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_secret_not_echoed),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_value_parsers),
	    cmocka_unit_test(test_documented_empty),
	    cmocka_unit_test(test_conf_d),
	    cmocka_unit_test(test_missing),
	    cmocka_unit_test(test_dump_masks_secrets),
	    cmocka_unit_test(test_dump_roundtrip),
	    cmocka_unit_test(test_describe_text),
	    cmocka_unit_test(test_describe_sections),
	    cmocka_unit_test(test_plugin_keys),
	    cmocka_unit_test(test_docs),
	    cmocka_unit_test(test_golden),
	};
	if (argc == 2 && strcmp(argv[1], "--print-docs") == 0) {
		mw_config_describe(stdout, true);
		return 0;
	}
	MW_RUN_TESTS(tests);
}
