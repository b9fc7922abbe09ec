/* test-password.c - unit tests for mw-password: argon2id hashes Dovecot agrees with.
 *
 * Uses a small cost (8 MiB, 1 pass) to stay fast. The Dovecot interoperability tests run
 * /usr/bin/doveadm (dovecot-core); when it is missing they fail loudly, since agreeing
 * with Dovecot is the point of this module.
 */
#include "mw-build.h"
#include "mw-password.h"
#include "mw-test.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MEM     (8u * 1024u * 1024u)
#define OPS     1ULL
#define DOVEADM "/usr/bin/doveadm"

/* hash_or_fail - hash pw with the test costs */
static void hash_or_fail(const char *pw, char *out, size_t outsize)
{
	mw_error err = {""};
	assert_int_equal(mw_password_hash(pw, MEM, OPS, out, outsize, &err), 0);
}

/* test_hash_verify - our hash has Dovecot's form, verifies, and rejects a wrong password */
static void test_hash_verify(void **state)
{
	char h[MW_PASSWORD_HASH_MAX];
	mw_error err = {""};
	(void)state;
	hash_or_fail("correct horse", h, sizeof(h));
	assert_true(strncmp(h, "{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$", 40) == 0);
	assert_int_equal(mw_password_verify(h, "correct horse", &err), 1);
	assert_int_equal(mw_password_verify(h, "correct horsE", &err), 0);
	assert_int_equal(mw_password_verify(h, "", &err), 0);
	assert_int_equal(mw_password_verify(h, "correct horse ", &err), 0);
	/* a scheme name is case-insensitive, as in Dovecot */
	memcpy(h, "{argon2id}", 10);
	assert_int_equal(mw_password_verify(h, "correct horse", &err), 1);
	memcpy(h, "{Argon2Id}", 10);
	assert_int_equal(mw_password_verify(h, "correct horse", &err), 1);
}

/* test_salted - the same password hashes differently each time */
static void test_salted(void **state)
{
	char a[MW_PASSWORD_HASH_MAX], b[MW_PASSWORD_HASH_MAX];
	(void)state;
	hash_or_fail("pw", a, sizeof(a));
	hash_or_fail("pw", b, sizeof(b));
	assert_string_not_equal(a, b);
	assert_int_equal(mw_password_verify(a, "pw", NULL), 1);
	assert_int_equal(mw_password_verify(b, "pw", NULL), 1);
}

/* test_tampered - a hash altered but still well-formed is a mismatch (0); documented in
   mw-password.c: only an unreadable hash is -1 */
static void test_tampered(void **state)
{
	char h[MW_PASSWORD_HASH_MAX];
	char *last, *salt;
	(void)state;
	hash_or_fail("secret", h, sizeof(h));
	last = strrchr(h, '$');
	assert_non_null(last);
	last[5] = last[5] == 'A' ? 'B' : 'A'; /* digest */
	assert_int_equal(mw_password_verify(h, "secret", NULL), 0);

	hash_or_fail("secret", h, sizeof(h));
	salt = strstr(h, "p=1$");
	assert_non_null(salt);
	salt[6] = salt[6] == 'A' ? 'B' : 'A'; /* salt */
	assert_int_equal(mw_password_verify(h, "secret", NULL), 0);

	hash_or_fail("secret", h, sizeof(h));
	salt = strstr(h, "t=1");
	salt[2] = '2'; /* cost parameter: a different hash */
	assert_int_equal(mw_password_verify(h, "secret", NULL), 0);
}

/* test_unreadable - other schemes and malformed hashes are -1 with a message */
static void test_unreadable(void **state)
{
	static const struct {
		const char *stored, *msg;
	} cases[] = {
	    {"{SHA512-CRYPT}$6$abcdefgh$0123456789", "{SHA512-CRYPT} is not supported"},
	    {"{PLAIN}secret", "{PLAIN} is not supported"},
	    {"{CRYPT}xyz", "{CRYPT} is not supported"},
	    {"{ARGON2I}$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "not supported"},
	    {"$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "no {SCHEME} prefix"},
	    {"secret", "no {SCHEME} prefix"},
	    {"{}$argon2id$", "no {SCHEME} prefix"},
	    {"{ARGON2ID", "no {SCHEME} prefix"},
	    {"", "no password hash"},
	    {"{ARGON2ID}", "does not start with $argon2id$"},
	    {"{ARGON2ID}$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "does not start with"},
	    {"{ARGON2ID}$argon2id$v=16$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "malformed"},
	    {"{ARGON2ID}$argon2id$v=19$m=abc,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "malformed"},
	    {"{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA$",
	     "malformed"},
	    {"{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA ",
	     "malformed"},
	    {"{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$", "malformed"},
	    {"{ARGON2ID}$argon2id$v=19$m=8192,t=0,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "malformed"},
	    {"{ARGON2ID}$argon2id$v=19$m=08192,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "malformed"},
	    /* 4 GiB of memory asked by a stored row: refused before any work */
	    {"{ARGON2ID}$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "malformed"},
	    {"{ARGON2ID}$argon2id$v=19$m=99999999999999999999999,t=1,p=1$c2FsdHNhbHRzYWx0$"
	     "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
	     "malformed"},
	};
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		mw_error err = {""};
		int r = mw_password_verify(cases[i].stored, "secret", &err);
		if (r != -1 || strstr(err.msg, cases[i].msg) == NULL)
			fail_msg("case %zu (%s): got %d, '%s'", i, cases[i].stored, r, err.msg);
	}
	assert_int_equal(mw_password_verify(NULL, "secret", NULL), -1);
}

/* test_hash_limits - arguments out of range are refused */
static void test_hash_limits(void **state)
{
	char h[MW_PASSWORD_HASH_MAX], small[40];
	char long_pw[MW_PASSWORD_MAX + 2];
	mw_error err = {""};
	(void)state;
	memset(long_pw, 'a', sizeof(long_pw) - 1);
	long_pw[sizeof(long_pw) - 1] = '\0';
	assert_int_equal(mw_password_hash(long_pw, MEM, OPS, h, sizeof(h), &err), -1);
	assert_non_null(strstr(err.msg, "longer than"));
	long_pw[MW_PASSWORD_MAX] = '\0'; /* exactly the maximum is fine */
	assert_int_equal(mw_password_hash(long_pw, MEM, OPS, h, sizeof(h), &err), 0);
	assert_int_equal(mw_password_verify(h, long_pw, &err), 1);
	long_pw[MW_PASSWORD_MAX] = 'a'; /* one byte more never matches */
	assert_int_equal(mw_password_verify(h, long_pw, &err), 0);
	assert_int_equal(mw_password_hash("x", 1024, OPS, h, sizeof(h), &err), -1);
	assert_int_equal(mw_password_hash("x", MEM, 0, h, sizeof(h), &err), -1);
	assert_int_equal(mw_password_hash(NULL, MEM, OPS, h, sizeof(h), &err), -1);
	assert_int_equal(mw_password_hash("x", MEM, OPS, small, sizeof(small), &err), -1);
	assert_non_null(strstr(err.msg, "does not fit"));
}

/* test_needs_rehash - differing costs or another scheme want a new hash */
static void test_needs_rehash(void **state)
{
	char h[MW_PASSWORD_HASH_MAX];
	(void)state;
	hash_or_fail("pw", h, sizeof(h));
	assert_false(mw_password_needs_rehash(h, MEM, OPS));
	assert_true(mw_password_needs_rehash(h, MEM * 2, OPS));
	assert_true(mw_password_needs_rehash(h, MEM, OPS + 1));
	assert_true(mw_password_needs_rehash("{SHA512-CRYPT}$6$x$y", MEM, OPS));
	assert_true(mw_password_needs_rehash("garbage", MEM, OPS));
	assert_true(mw_password_needs_rehash(NULL, MEM, OPS));
}

/* test_generate - length, alphabet without look-alikes, randomness, bounds */
static void test_generate(void **state)
{
	char a[65], b[65], tiny[4];
	mw_error err = {""};
	size_t i;
	(void)state;
	assert_int_equal(mw_password_generate(a, sizeof(a), 64, &err), 0);
	assert_int_equal(mw_password_generate(b, sizeof(b), 64, &err), 0);
	assert_int_equal(strlen(a), 64);
	assert_string_not_equal(a, b);
	for (i = 0; i < 200; i++) {
		assert_int_equal(mw_password_generate(a, sizeof(a), 64, &err), 0);
		assert_null(strpbrk(a, "0O1lI"));
		for (size_t j = 0; j < 64; j++)
			assert_true((a[j] >= '2' && a[j] <= '9') || (a[j] >= 'A' && a[j] <= 'Z') ||
			            (a[j] >= 'a' && a[j] <= 'z'));
	}
	assert_int_equal(mw_password_generate(tiny, sizeof(tiny), 4, &err), -1);
	assert_int_equal(mw_password_generate(tiny, sizeof(tiny), 3, &err), 0);
	assert_int_equal(strlen(tiny), 3);
	assert_int_equal(mw_password_generate(a, sizeof(a), 0, &err), -1);
	assert_int_equal(mw_password_generate(a, sizeof(a), MW_PASSWORD_MAX + 1, &err), -1);
	assert_int_equal(mw_password_generate(NULL, 10, 4, &err), -1);
}

/* test_policy - character counting, control characters, UTF-8 validity, length */
static void test_policy(void **state)
{
	static const struct {
		const char *pw;
		size_t min;
		int ok;
		const char *msg;
	} cases[] = {
	    {"abcdefgh", 8, 1, NULL},
	    {"abcdefg", 8, 0, "too short: 7 characters"},
	    {"", 1, 0, "too short: 0"},
	    {"", 0, 1, NULL},
	    {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 4, 1, NULL}, /* 4 chars, 8 bytes */
	    {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5, 0, "4 characters"},
	    {"\xf0\x9f\x94\x91\xf0\x9f\x94\x91", 2, 1, NULL}, /* two emoji */
	    {"\xf0\x9f\x94\x91\xf0\x9f\x94\x91", 3, 0, "2 characters"},
	    {"pass word", 4, 1, NULL},
	    {"pass\tword", 4, 0, "control character"},
	    {"pass\nword", 4, 0, "control character"},
	    {"pass\x7fword", 4, 0, "control character"},
	    {"pass\xc2\x85word", 4, 0, "control character"}, /* NEL (C1) */
	    {"pass\xffword", 4, 0, "not valid UTF-8"},
	    {"pass\xc0\xafword", 4, 0, "not valid UTF-8"},         /* overlong '/' */
	    {"pass\xed\xa0\x80word", 4, 0, "not valid UTF-8"},     /* surrogate */
	    {"pass\xf4\x90\x80\x80word", 4, 0, "not valid UTF-8"}, /* > U+10FFFF */
	    {"pass\xc3", 4, 0, "not valid UTF-8"},                 /* truncated */
	    {"pass\xe2\x82", 4, 0, "not valid UTF-8"},
	};
	char long_pw[MW_PASSWORD_MAX + 2];
	size_t i;
	(void)state;
	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		mw_error err = {""};
		int r = mw_password_check_policy(cases[i].pw, cases[i].min, &err);
		if (cases[i].ok ? r != 0 : (r != -1 || strstr(err.msg, cases[i].msg) == NULL))
			fail_msg("policy case %zu: got %d '%s'", i, r, err.msg);
	}
	memset(long_pw, 'a', sizeof(long_pw) - 1);
	long_pw[sizeof(long_pw) - 1] = '\0';
	assert_int_equal(mw_password_check_policy(long_pw, 8, NULL), -1);
	long_pw[MW_PASSWORD_MAX] = '\0';
	assert_int_equal(mw_password_check_policy(long_pw, 8, NULL), 0);
	assert_int_equal(mw_password_check_policy(NULL, 0, NULL), -1);
}

/* require_doveadm - these tests exist to prove Dovecot agrees; without it they fail */
static void require_doveadm(void)
{
	if (access(DOVEADM, X_OK) != 0)
		fail_msg("%s is missing: install dovecot-core to test Dovecot compatibility",
		         DOVEADM);
}

/* test_doveadm_hash_verifies_here - a hash from "doveadm pw -s ARGON2ID" verifies */
static void test_doveadm_hash_verifies_here(void **state)
{
	char line[512];
	mw_error err = {""};
	FILE *p;
	size_t n;
	(void)state;
	require_doveadm();
	p = popen(DOVEADM " pw -s ARGON2ID -p 'secret' 2>&1", "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	assert_true(strncmp(line, "{ARGON2ID}$argon2id$", 20) == 0);
	assert_int_equal(mw_password_verify(line, "secret", &err), 1);
	assert_int_equal(mw_password_verify(line, "Secret", &err), 0);
	/* a Dovecot hash uses other costs than ours: it wants a rehash */
	assert_true(mw_password_needs_rehash(line, MEM, OPS));
}

/* doveadm_test - exit status of "doveadm pw -t HASH -p PASSWORD" */
static int doveadm_test(const char *hash, const char *password)
{
	char cmd[1024];
	int n, status;
	FILE *p;
	/* our hashes and these passwords hold no single quote */
	assert_null(strchr(hash, '\''));
	assert_null(strchr(password, '\''));
	n = snprintf(cmd, sizeof(cmd), DOVEADM " pw -t '%s' -p '%s' >/dev/null 2>&1", hash,
	             password);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	p = popen(cmd, "r");
	assert_non_null(p);
	status = pclose(p);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* test_our_hash_verifies_in_dovecot - "doveadm pw -t" accepts ours, refuses a wrong pw */
static void test_our_hash_verifies_in_dovecot(void **state)
{
	char h[MW_PASSWORD_HASH_MAX];
	(void)state;
	require_doveadm();
	hash_or_fail("secret", h, sizeof(h));
	assert_int_equal(doveadm_test(h, "secret"), 0);
	assert_int_not_equal(doveadm_test(h, "wrong"), 0);
	/* and with the cost of a real deployment's default (libsodium interactive) */
	assert_int_equal(
	    mw_password_hash("s3cr\xc3\xa9t", 64u * 1024u * 1024u, 2, h, sizeof(h), NULL), 0);
	assert_int_equal(doveadm_test(h, "s3cr\xc3\xa9t"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_verify),
	    cmocka_unit_test(test_salted),
	    cmocka_unit_test(test_tampered),
	    cmocka_unit_test(test_unreadable),
	    cmocka_unit_test(test_hash_limits),
	    cmocka_unit_test(test_needs_rehash),
	    cmocka_unit_test(test_generate),
	    cmocka_unit_test(test_policy),
	    cmocka_unit_test(test_doveadm_hash_verifies_here),
	    cmocka_unit_test(test_our_hash_verifies_in_dovecot),
	};
	MW_RUN_TESTS(tests);
}
