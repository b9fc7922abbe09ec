/* test-secret.c - unit tests for mw-secret: the master key file and AEAD of secrets. */
#include "mw-build.h"
#include "mw-secret.h"
#include "mw-test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
	char dir[64];
	char path[128];
};

/* setup - a private temporary directory per test */
static int setup(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	int n;
	assert_int_equal(mw_strlcpy(f->dir, "/tmp/mw-test-secret.XXXXXX", sizeof(f->dir)), 0);
	assert_non_null(mkdtemp(f->dir));
	n = snprintf(f->path, sizeof(f->path), "%s/master.key", f->dir);
	assert_true(n > 0 && (size_t)n < sizeof(f->path));
	*state = f;
	return 0;
}

/* teardown - remove whatever the test left in its directory */
static int teardown(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {"master.key", "link.key", "other.key", "fifo"};
	char p[160];
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(names); i++) {
		if (snprintf(p, sizeof(p), "%s/%s", f->dir, names[i]) < (int)sizeof(p))
			(void)unlink(p);
	}
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

/* write_file - create path with mode and n bytes of content */
static void write_file(const char *path, mode_t mode, size_t n)
{
	unsigned char buf[128];
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, mode);
	assert_true(fd >= 0);
	assert_true(n <= sizeof(buf));
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* new_key - create and load a key in the fixture */
static void new_key(struct fixture *f, mw_master_key *key)
{
	mw_error err = {""};
	assert_int_equal(mw_secret_key_create(f->path, &err), 0);
	assert_int_equal(mw_secret_key_load(f->path, key, &err), 0);
}

/* test_key_create - 32 bytes, mode 0600, no overwrite */
static void test_key_create(void **state)
{
	struct fixture *f = *state;
	mw_master_key a, b;
	mw_error err = {""};
	struct stat st;
	static const unsigned char zero[MW_SECRET_KEY_BYTES];
	mode_t old = umask(0); /* the file must be 0600 whatever the umask */
	assert_int_equal(mw_secret_key_create(f->path, &err), 0);
	(void)umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, MW_SECRET_KEY_BYTES);
	assert_int_equal(mw_secret_key_load(f->path, &a, &err), 0);
	assert_memory_not_equal(a.bytes, zero, sizeof(zero));
	/* refuses to overwrite, and the key stays what it was */
	assert_int_equal(mw_secret_key_create(f->path, &err), -1);
	assert_non_null(strstr(err.msg, "already exists"));
	assert_int_equal(mw_secret_key_load(f->path, &b, &err), 0);
	assert_memory_equal(a.bytes, b.bytes, sizeof(a.bytes));
	mw_secret_key_wipe(&a);
	assert_memory_equal(a.bytes, zero, sizeof(zero));
	mw_secret_key_wipe(&b);
	/* a missing directory */
	assert_int_equal(mw_secret_key_create("/nonexistent-mw-dir/master.key", &err), -1);
	assert_non_null(strstr(err.msg, "cannot create"));
}

/* test_key_refused - mode, size, type and symlinks */
static void test_key_refused(void **state)
{
	struct fixture *f = *state;
	char other[160], link[160], fifo[160];
	mw_master_key key;
	mw_error err = {""};
	static const unsigned char zero[MW_SECRET_KEY_BYTES];
	assert_true(snprintf(other, sizeof(other), "%s/other.key", f->dir) < (int)sizeof(other));
	assert_true(snprintf(link, sizeof(link), "%s/link.key", f->dir) < (int)sizeof(link));
	assert_true(snprintf(fifo, sizeof(fifo), "%s/fifo", f->dir) < (int)sizeof(fifo));

	write_file(f->path, 0644, MW_SECRET_KEY_BYTES);
	assert_int_equal(mw_secret_key_load(f->path, &key, &err), -1);
	assert_non_null(strstr(err.msg, "mode 0644 lets others read the master key; chmod 600"));
	assert_non_null(strstr(err.msg, f->path));
	assert_memory_equal(key.bytes, zero, sizeof(zero));
	assert_int_equal(chmod(f->path, 0640), 0);
	assert_int_equal(mw_secret_key_load(f->path, &key, &err), -1);
	assert_non_null(strstr(err.msg, "mode 0640"));
	assert_int_equal(chmod(f->path, 0602), 0);
	assert_int_equal(mw_secret_key_load(f->path, &key, &err), -1);
	assert_int_equal(chmod(f->path, 0400), 0); /* read-only for the owner is fine */
	assert_int_equal(mw_secret_key_load(f->path, &key, &err), 0);
	assert_int_equal(key.bytes[0], 0x5a);

	write_file(other, 0600, MW_SECRET_KEY_BYTES - 1);
	assert_int_equal(mw_secret_key_load(other, &key, &err), -1);
	assert_non_null(strstr(err.msg, "exactly 32 bytes"));
	assert_int_equal(unlink(other), 0);
	write_file(other, 0600, MW_SECRET_KEY_BYTES + 1);
	assert_int_equal(mw_secret_key_load(other, &key, &err), -1);
	assert_non_null(strstr(err.msg, "has 33"));
	assert_int_equal(unlink(other), 0);
	write_file(other, 0600, 0);
	assert_int_equal(mw_secret_key_load(other, &key, &err), -1);

	assert_int_equal(symlink(f->path, link), 0);
	assert_int_equal(mw_secret_key_load(link, &key, &err), -1);
	assert_non_null(strstr(err.msg, "symbolic link"));
	/* create does not follow a symlink either (dangling or not) */
	assert_int_equal(mw_secret_key_create(link, &err), -1);

	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(mw_secret_key_load(fifo, &key, &err), -1);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_int_equal(mw_secret_key_load(f->dir, &key, &err), -1);
	assert_int_equal(mw_secret_key_load("/nonexistent-mw/master.key", &key, &err), -1);
	assert_non_null(strstr(err.msg, "cannot open"));
}

/* test_round_trip - text form, fresh nonces, empty and binary secrets */
static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	static const unsigned char bin[] = {0, 1, 2, 0xff, 0, '\n', 'x'};
	mw_master_key key;
	mw_str a, b, plain;
	mw_error err = {""};
	new_key(f, &key);
	mw_str_init(&a, 0);
	mw_str_init(&b, 0);
	mw_str_init(&plain, 0);
	assert_int_equal(mw_secret_encrypt(&key, "JBSWY3DPEHPK3PXP", 16, "totp:7", &a, &err), 0);
	assert_int_equal(mw_secret_encrypt(&key, "JBSWY3DPEHPK3PXP", 16, "totp:7", &b, &err), 0);
	assert_true(strncmp(mw_str_c(&a), "v1:", 3) == 0);
	assert_null(strstr(mw_str_c(&a), "JBSWY3DP"));
	assert_string_not_equal(mw_str_c(&a), mw_str_c(&b)); /* random nonce */
	/* 24 + 16 + 16 bytes -> 56 -> 76 base64 characters */
	assert_int_equal(a.len, 3 + 76);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&a), "totp:7", &plain, &err), 0);
	assert_int_equal(plain.len, 16);
	assert_memory_equal(plain.buf, "JBSWY3DPEHPK3PXP", 16);

	/* appends */
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&b), "totp:7", &plain, &err), 0);
	assert_int_equal(plain.len, 32);

	mw_str_reset(&a);
	mw_str_reset(&plain);
	assert_int_equal(mw_secret_encrypt(&key, bin, sizeof(bin), NULL, &a, &err), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&a), "", &plain, &err), 0);
	assert_int_equal(plain.len, sizeof(bin));
	assert_memory_equal(plain.buf, bin, sizeof(bin));

	mw_str_reset(&a);
	mw_str_reset(&plain);
	assert_int_equal(mw_secret_encrypt(&key, NULL, 0, "x", &a, &err), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&a), "x", &plain, &err), 0);
	assert_int_equal(plain.len, 0);

	mw_secret_key_wipe(&key);
	mw_str_free(&a);
	mw_str_free(&b);
	mw_str_free(&plain);
}

/* test_refused - wrong key, wrong ad, altered, truncated, bad prefix, bad base64 */
static void test_refused(void **state)
{
	struct fixture *f = *state;
	mw_master_key key, other;
	mw_str ct, plain, bad;
	mw_error err = {""};
	size_t i;
	new_key(f, &key);
	memcpy(&other, &key, sizeof(other));
	other.bytes[31] ^= 1;
	mw_str_init(&ct, 0);
	mw_str_init(&plain, 0);
	mw_str_init(&bad, 0);
	assert_int_equal(mw_secret_encrypt(&key, "dkim-private", 12, "dkim:3", &ct, &err), 0);

	assert_int_equal(mw_secret_decrypt(&other, mw_str_c(&ct), "dkim:3", &plain, &err), -1);
	assert_non_null(strstr(err.msg, "does not authenticate"));
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&ct), "dkim:4", &plain, &err), -1);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&ct), "", &plain, &err), -1);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&ct), NULL, &plain, &err), -1);
	assert_int_equal(plain.len, 0); /* nothing appended on failure */

	/* every single-character change in the base64 part is refused */
	for (i = 3; i < ct.len; i++) {
		mw_str_reset(&bad);
		assert_int_equal(mw_str_appends(&bad, mw_str_c(&ct)), 0);
		if (bad.buf[i] == '=')
			continue;
		bad.buf[i] = bad.buf[i] == 'A' ? 'B' : 'A';
		if (mw_secret_decrypt(&key, mw_str_c(&bad), "dkim:3", &plain, &err) != -1)
			fail_msg("change at %zu accepted", i);
	}
	assert_int_equal(plain.len, 0);

	/* truncated: by one character, to a whole base64 quantum, to almost nothing */
	mw_str_reset(&bad);
	assert_int_equal(mw_str_append(&bad, ct.buf, ct.len - 1), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&bad), "dkim:3", &plain, &err), -1);
	mw_str_reset(&bad);
	assert_int_equal(mw_str_append(&bad, ct.buf, ct.len - 4), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&bad), "dkim:3", &plain, &err), -1);
	assert_int_equal(mw_secret_decrypt(&key, "v1:AAAA", "dkim:3", &plain, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_int_equal(mw_secret_decrypt(&key, "v1:", "dkim:3", &plain, &err), -1);

	/* prefix */
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&ct) + 3, "dkim:3", &plain, &err), -1);
	assert_non_null(strstr(err.msg, "v1:"));
	mw_str_reset(&bad);
	assert_int_equal(mw_str_appendf(&bad, "v2:%s", mw_str_c(&ct) + 3), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&bad), "dkim:3", &plain, &err), -1);
	assert_int_equal(mw_secret_decrypt(&key, NULL, "dkim:3", &plain, &err), -1);
	assert_int_equal(mw_secret_decrypt(&key, "", "dkim:3", &plain, &err), -1);

	/* trailing junk, URL-safe alphabet, embedded blank */
	mw_str_reset(&bad);
	assert_int_equal(mw_str_appendf(&bad, "%s ", mw_str_c(&ct)), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&bad), "dkim:3", &plain, &err), -1);
	assert_non_null(strstr(err.msg, "base64"));
	mw_str_reset(&bad);
	assert_int_equal(mw_str_appendf(&bad, "%sAAAA", mw_str_c(&ct)), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&bad), "dkim:3", &plain, &err), -1);
	assert_int_equal(mw_secret_decrypt(&key, "v1:-_-_", "dkim:3", &plain, &err), -1);
	assert_int_equal(plain.len, 0);

	/* still fine after all that */
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&ct), "dkim:3", &plain, &err), 0);
	assert_int_equal(plain.len, 12);

	mw_secret_key_wipe(&key);
	mw_secret_key_wipe(&other);
	mw_str_free(&ct);
	mw_str_free(&plain);
	mw_str_free(&bad);
}

/* test_limits - oversized input and a bounded output string */
static void test_limits(void **state)
{
	struct fixture *f = *state;
	mw_master_key key;
	mw_str out, small;
	mw_error err = {""};
	char *big = mw_calloc(1, MW_SECRET_PLAIN_MAX + 1);
	char ad[1100];
	new_key(f, &key);
	mw_str_init(&out, 0);
	mw_str_init(&small, 10);
	assert_int_equal(mw_secret_encrypt(&key, big, MW_SECRET_PLAIN_MAX + 1, "", &out, &err), -1);
	assert_int_equal(mw_secret_encrypt(&key, big, MW_SECRET_PLAIN_MAX, "", &out, &err), 0);
	mw_str_reset(&out);
	memset(ad, 'a', sizeof(ad) - 1);
	ad[sizeof(ad) - 1] = '\0';
	assert_int_equal(mw_secret_encrypt(&key, "x", 1, ad, &out, &err), -1);
	assert_int_equal(mw_secret_encrypt(&key, "x", 1, "", &small, &err), -1);
	assert_non_null(strstr(err.msg, "does not fit"));
	assert_int_equal(small.len, 0); /* nothing half-written */
	assert_int_equal(mw_secret_encrypt(&key, "0123456789abcdef", 16, "", &out, &err), 0);
	assert_int_equal(mw_secret_decrypt(&key, mw_str_c(&out), "", &small, &err), -1);
	assert_int_equal(small.len, 0);
	free(big);
	mw_secret_key_wipe(&key);
	mw_str_free(&out);
	mw_str_free(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_key_create, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	};
	MW_RUN_TESTS(tests);
}
