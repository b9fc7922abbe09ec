/*
 * fuzz-config.c - fuzz target for the configuration file parser (libFuzzer entry point).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * The input is the text of a configuration file. It is parsed twice, from the buffer
 * (mw_config_load_string) and as a real file (mw_config_load on a memfd through
 * /proc/self/fd, so read_file and its limits run too): both must agree. An accepted file
 * must survive its own dump: `config dump` output with secrets parses back to the same
 * value of every key. A refused one must say why (file:line). The value parsers
 * (duration, size, bool) get the first line too, and what they accept must print back to
 * the same number.
 *
 * Diagnostics: a broken invariant prints what broke on stderr and aborts.
 */
#define _GNU_SOURCE
#include "mw-build.h"
#include "mw-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* broken - report a broken invariant and abort */
static void broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-config: invariant broken: %s [%s]\n", what, detail);
	abort();
}

/* dump - the configuration's dump (with secrets, without origins) as an owned string */
static char *dump(const mw_config *cfg, size_t *len_r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		broken("open_memstream", "");
	mw_config_dump(cfg, f, MW_CONFIG_DUMP_SECRETS);
	if (fclose(f) != 0)
		broken("dump stream", "");
	*len_r = len;
	return buf;
}

/* same_values - every key has the same typed value in a and b */
static void same_values(const mw_config *a, const mw_config *b)
{
	size_t i;
	for (i = 0; i < MWK__COUNT; i++) {
		const struct mw_config_key *k = &mw_config_keys[i];
		switch (k->type) {
		case MW_CFG_BOOL:
			if (mw_config_bool(a, k->id) != mw_config_bool(b, k->id))
				broken("bool value differs after dump", k->name);
			break;
		case MW_CFG_INT:
		case MW_CFG_DURATION:
		case MW_CFG_SIZE:
			if (mw_config_int(a, k->id) != mw_config_int(b, k->id))
				broken("number differs after dump", k->name);
			break;
		default:
			if (strcmp(mw_config_str(a, k->id), mw_config_str(b, k->id)) != 0)
				broken("value differs after dump", k->name);
			break;
		}
	}
}

/* load_as_file - the same text through the file reader (a memfd); NULL when refused */
static mw_config *load_as_file(const uint8_t *data, size_t size, mw_error *err)
{
	char path[64];
	mw_config *cfg;
	int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
	if (fd < 0)
		broken("memfd_create", "");
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		broken("memfd write", "");
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg = mw_config_load(path, false, err);
	close(fd);
	return cfg;
}

/* value_parsers - duration, size and bool over one line of the input */
static void value_parsers(const uint8_t *data, size_t size)
{
	char s[64], back[64];
	long long n;
	bool b;
	mw_error err;
	size_t len = 0;
	while (len < size && len < sizeof(s) - 1 && data[len] != '\n' && data[len] != '\0')
		len++;
	memcpy(s, data, len);
	s[len] = '\0';
	err.msg[0] = '\0';
	if (mw_config_parse_duration(s, &n, &err) == 0) {
		long long again;
		if (n < 0)
			broken("negative duration", s);
		(void)snprintf(back, sizeof(back), "%lld", n);
		if (mw_config_parse_duration(back, &again, &err) != 0 || again != n)
			broken("duration in seconds does not parse back", s);
	} else if (err.msg[0] == '\0') {
		broken("duration refused without a reason", s);
	}
	err.msg[0] = '\0';
	if (mw_config_parse_size(s, &n, &err) == 0) {
		long long again;
		if (n < 0)
			broken("negative size", s);
		(void)snprintf(back, sizeof(back), "%lld", n);
		if (mw_config_parse_size(back, &again, &err) != 0 || again != n)
			broken("size in bytes does not parse back", s);
	} else if (err.msg[0] == '\0') {
		broken("size refused without a reason", s);
	}
	err.msg[0] = '\0';
	if (mw_config_parse_bool(s, &b, &err) != 0 && err.msg[0] == '\0')
		broken("bool refused without a reason", s);
}

/* LLVMFuzzerTestOneInput - parse one configuration text every way */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mw_config *cfg, *filecfg, *again;
	mw_error err, ferr, aerr;
	char *text, *ftext, *atext;
	size_t len, flen, alen;

	value_parsers(data, size);
	err.msg[0] = ferr.msg[0] = aerr.msg[0] = '\0';
	cfg = mw_config_load_string((const char *)data, size, "fuzz.conf", &err);
	filecfg = load_as_file(data, size, &ferr);
	if ((cfg == NULL) != (filecfg == NULL))
		broken("buffer and file parsers disagree", cfg == NULL ? err.msg : ferr.msg);
	if (cfg == NULL) {
		if (strncmp(err.msg, "fuzz.conf:", 10) != 0)
			broken("refused without naming file:line", err.msg);
		return 0;
	}
	text = dump(cfg, &len);
	ftext = dump(filecfg, &flen);
	if (len != flen || memcmp(text, ftext, len) != 0)
		broken("buffer and file parsers give different values", "");
	again = mw_config_load_string(text, len, "dump.conf", &aerr);
	if (again == NULL)
		broken("the dump of an accepted file is refused", aerr.msg);
	same_values(cfg, again);
	atext = dump(again, &alen);
	if (alen != len || memcmp(atext, text, len) != 0)
		broken("dump is not a fixed point", "");
	free(text);
	free(ftext);
	free(atext);
	mw_config_unref(&again);
	mw_config_unref(&filecfg);
	mw_config_unref(&cfg);
	return 0;
}
