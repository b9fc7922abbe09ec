/* test-learnspool.c - lib/mw-learnspool: the format round trip, strict parsing (every
   damaged form refused), the bound on spooled events, a repeated event replacing the
   first, and flushing that stops (keeping the rest) when the store fails. */
#include "mw-build.h"
#include "mw-learnspool.h"
#include "mw-test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t hashes[3] = {1, UINT64_C(0xfedcba9876543210), UINT64_C(0x0123456789abcdef)};

/* item - an event whose digest starts with tag */
static void item(struct mw_learn_item *it, unsigned char tag, bool spam)
{
	memset(it, 0, sizeof(*it));
	strcpy(it->username, "alice@example.com");
	strcpy(it->message_id, "<a b@c>");
	memset(it->digest, 0x5a, sizeof(it->digest));
	it->digest[0] = tag;
	it->spam = spam;
	it->hash = hashes;
	it->count = 3;
}

static void test_round_trip(void **state)
{
	struct mw_learn_item it, back;
	mw_error err = {""};
	size_t len;
	char *text;
	(void)state;
	item(&it, 1, true);
	text = mw_learnspool_format(&it, &len);
	assert_int_equal(mw_learnspool_parse(text, len, &back, &err), 0);
	assert_string_equal(back.username, it.username);
	assert_string_equal(back.message_id, it.message_id);
	assert_memory_equal(back.digest, it.digest, sizeof(it.digest));
	assert_true(back.spam);
	assert_int_equal(back.count, 3);
	assert_memory_equal(back.hash, hashes, sizeof(hashes));
	mw_learn_item_free(&back);
	free(text);
	/* an empty Message-ID and ham */
	item(&it, 2, false);
	it.message_id[0] = '\0';
	text = mw_learnspool_format(&it, &len);
	assert_int_equal(mw_learnspool_parse(text, len, &back, &err), 0);
	assert_string_equal(back.message_id, "");
	assert_false(back.spam);
	mw_learn_item_free(&back);
	free(text);
}

/* replace_once - text with the first from replaced by to (malloc'ed) */
static char *replace_once(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);
	mw_str s;
	assert_non_null(p);
	mw_str_init(&s, 0);
	mw_str_append(&s, text, (size_t)(p - text));
	mw_str_appends(&s, to);
	mw_str_appends(&s, p + strlen(from));
	return mw_str_steal(&s);
}

static void test_damaged_refused(void **state)
{
	static const char *const edits[][2] = {
	    {"mailwarden-learn 1\n", "mailwarden-learn 2\n"},
	    {"label spam", "label maybe"},
	    {"digest 01", "digest 0"},
	    {"digest 01", "digest zz"},
	    {"tokens 3", "tokens 4"},
	    {"tokens 3", "tokens 2"},
	    {"tokens 3", "tokens 0"},
	    {"tokens 3", "tokens 99999999999999999999"},
	    {"tokens 3", "tokens -3"},
	    {"fedcba9876543210", "fedcba987654321"},
	    {"fedcba9876543210", "fedcba987654321g"},
	    {"msgid ", "msgid 0"},
	    {"msgid 3c", "msgid 00"},
	    {"user alice@example.com", "user "},
	    {"end\n", "end"},
	    {"end\n", "end\nx"},
	    {"label spam\n", "label spam\r\n"},
	};
	struct mw_learn_item it, back;
	mw_error err = {""};
	size_t len, i;
	char *text;
	(void)state;
	item(&it, 1, true);
	text = mw_learnspool_format(&it, &len);
	for (i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char *bad = replace_once(text, edits[i][0], edits[i][1]);
		if (mw_learnspool_parse(bad, strlen(bad), &back, &err) == 0)
			fail_msg("accepted edit %zu: %s -> %s", i, edits[i][0], edits[i][1]);
		assert_null(back.hash);
		free(bad);
	}
	/* cut anywhere: refused */
	for (i = 0; i < len; i++)
		assert_int_equal(mw_learnspool_parse(text, i, &back, &err), -1);
	free(text);
}

struct flush_ctx {
	unsigned calls, fail_after;
	bool saw_ham;
};

static int flush_cb(void *ctx, const struct mw_learn_item *it, mw_error *err)
{
	struct flush_ctx *f = ctx;
	if (f->calls >= f->fail_after) {
		mw_error_set(err, "store down");
		return -1;
	}
	f->calls++;
	if (!it->spam)
		f->saw_ham = true;
	return 0;
}

/* count_files - files named *suffix in dir */
static unsigned count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), sl = strlen(suffix);
		if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void test_write_bound_and_flush(void **state)
{
	char base[64], dir[96], path[256];
	struct mw_learn_item it;
	struct flush_ctx fc;
	mw_error err = {""};
	unsigned done, bad;
	struct stat st;
	FILE *fp;
	(void)state;
	snprintf(base, sizeof(base), "/tmp/mw-test-learnspool.XXXXXX");
	assert_non_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/spool", base);

	/* no spool directory yet: nothing to flush */
	memset(&fc, 0, sizeof(fc));
	fc.fail_after = 100;
	assert_int_equal(mw_learnspool_flush(dir, flush_cb, &fc, &done, &bad, &err), 0);
	assert_int_equal(done, 0);

	item(&it, 1, true);
	assert_int_equal(mw_learnspool_write(dir, 2, &it, &err), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* the same message and user again (now ham): replaces, the last judgement counts */
	item(&it, 1, false);
	assert_int_equal(mw_learnspool_write(dir, 2, &it, &err), 0);
	assert_int_equal(count_files(dir, ".learn"), 1);
	item(&it, 2, true);
	assert_int_equal(mw_learnspool_write(dir, 2, &it, &err), 0);
	/* full: a third event is refused, a repeat of a spooled one is still taken */
	item(&it, 3, true);
	assert_int_equal(mw_learnspool_write(dir, 2, &it, &err), -1);
	assert_non_null(strstr(err.msg, "full"));
	item(&it, 2, true);
	assert_int_equal(mw_learnspool_write(dir, 2, &it, &err), 0);
	assert_int_equal(count_files(dir, ".learn"), 2);

	/* a file that is not an event: set aside, never learned */
	snprintf(path, sizeof(path), "%s/junk.learn", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("mailwarden-learn 1\nuser x\n", fp);
	fclose(fp);

	/* the store fails after one event: one learned and removed, the other kept */
	memset(&fc, 0, sizeof(fc));
	fc.fail_after = 1;
	assert_int_equal(mw_learnspool_flush(dir, flush_cb, &fc, &done, &bad, &err), 1);
	assert_int_equal(done, 1);
	assert_int_equal(count_files(dir, ".learn"), 1);
	/* the store is back: the rest, once */
	fc.fail_after = 100;
	assert_int_equal(mw_learnspool_flush(dir, flush_cb, &fc, &done, &bad, &err), 0);
	assert_int_equal(done, 1);
	assert_int_equal(fc.calls, 2);
	assert_true(fc.saw_ham);
	assert_int_equal(count_files(dir, ".learn"), 0);
	assert_int_equal(count_files(dir, ".bad"), 1);
	assert_int_equal(mw_learnspool_flush(dir, flush_cb, &fc, &done, &bad, &err), 0);
	assert_int_equal(done, 0);
	assert_int_equal(fc.calls, 2);

	snprintf(path, sizeof(path), "rm -rf '%s'", base);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_damaged_refused),
	    cmocka_unit_test(test_write_bound_and_flush),
	};
	MW_RUN_TESTS(tests);
}
