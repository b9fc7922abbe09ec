/*
 * replay-main.c - run a fuzz target over files, for make check and for reproducing crashes.
 *
 * Usage: fuzz-addr FILE|DIR...  Each regular file is one input to LLVMFuzzerTestOneInput;
 * a directory is walked (recursively, hidden entries skipped). Prints nothing on success;
 * exits 2 when an argument cannot be read. A broken invariant aborts in the target itself,
 * which is what the test harness sees.
 */
#include "mw-build.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_FILE_MAX (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* replay_file - read one file whole and hand it to the target */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;
	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf = malloc(REPLAY_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		fprintf(stderr, "replay: out of memory\n");
		return -1;
	}
	n = fread(buf, 1, REPLAY_FILE_MAX + 1, f);
	if (ferror(f) || n > REPLAY_FILE_MAX) {
		fprintf(stderr, "replay: %s: %s\n", path,
		        n > REPLAY_FILE_MAX ? "larger than 1 MiB" : "read error");
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	/* an exact-size copy so that ASan sees any read past the input */
	{
		unsigned char *exact = malloc(n ? n : 1);
		if (exact == NULL) {
			free(buf);
			fprintf(stderr, "replay: out of memory\n");
			return -1;
		}
		memcpy(exact, buf, n);
		free(buf);
		(void)LLVMFuzzerTestOneInput(exact, n);
		free(exact);
	}
	return 0;
}

/* replay_path - a file, or every file below a directory */
static int replay_path(const char *path, int depth)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int ret = 0;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return S_ISREG(st.st_mode) ? replay_file(path) : 0;
	if (depth > 8) {
		fprintf(stderr, "replay: %s: directories nested too deeply\n", path);
		return -1;
	}
	d = opendir(path);
	if (d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char sub[4096];
		int n;
		if (e->d_name[0] == '.')
			continue;
		n = snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		if (n < 0 || (size_t)n >= sizeof(sub)) {
			fprintf(stderr, "replay: path too long under %s\n", path);
			ret = -1;
			continue;
		}
		if (replay_path(sub, depth + 1) < 0)
			ret = -1;
	}
	closedir(d);
	return ret;
}

/* main - replay every argument; exit 2 when one cannot be read */
int main(int argc, char **argv)
{
	int i, ret = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], 0) < 0)
			ret = 2;
	return ret;
}
