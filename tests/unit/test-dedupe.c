/* test-dedupe.c - lib/mw-dedupe: which of lmtp's prepended lines are left out of the key
   (table), the key of one queue file delivered twice equal and of two copies of one message
   different, CR bytes not hashed (known answer: BLAKE2b-256 of the text without CRs, over
   more than one internal buffer of the hash update and fed in pieces), and the record: seen within
   the window, not after it, not when unreadable (cannot tell), swept when old, invalid keys
   refused. */
#include "mw-build.h"
#include "mw-dedupe.h"
#include "mw-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LMTP_RECEIVED                                                                              \
	"Received: from mx.example.com\r\n\tby imap.example.com with LMTP\r\n\tid "                \
	"Wq3aAZ1hdWUeEwAA0J78UA\r\n\t(envelope-from <a@b.example>)\r\n\tfor <u@example.com>; "     \
	"Mon, 07 Dec 2026 18:00:00 +0000\r\n"
#define POSTFIX_RECEIVED                                                                           \
	"Received: from client.example (client.example [192.0.2.1])\r\n\tby mx.example.com "       \
	"(Postfix) with ESMTP id 4AB12C0123\r\n\tfor <u@example.com>; Mon, 07 Dec 2026 +0000\r\n"
#define MESSAGE "Message-ID: <m1@x>\r\nSubject: s\r\n\r\nbody\r\n"

static void test_lmtp_prefix(void **state)
{
	static const struct {
		const char *text, *rest; /* rest: what is left after the prefix */
	} cases[] = {
	    /* all three of lmtp's lines */
	    {"Return-Path: <a@b.example>\r\nDelivered-To: u@example.com\r\n" LMTP_RECEIVED
	         POSTFIX_RECEIVED MESSAGE,
	     POSTFIX_RECEIVED MESSAGE},
	    /* several recipients: no Delivered-To */
	    {"Return-Path: <a@b.example>\r\n" LMTP_RECEIVED POSTFIX_RECEIVED MESSAGE,
	     POSTFIX_RECEIVED MESSAGE},
	    /* lmtp_add_received_header = no: Postfix's Received is not lmtp's */
	    {"Return-Path: <a@b.example>\r\nDelivered-To: u@example.com\r\n" POSTFIX_RECEIVED
	         MESSAGE,
	     POSTFIX_RECEIVED MESSAGE},
	    /* no Return-Path first: nothing is lmtp's */
	    {LMTP_RECEIVED POSTFIX_RECEIVED MESSAGE, LMTP_RECEIVED POSTFIX_RECEIVED MESSAGE},
	    {"Delivered-To: u@example.com\r\n" MESSAGE, "Delivered-To: u@example.com\r\n" MESSAGE},
	    /* a Delivered-To after lmtp's Received is not lmtp's */
	    {"Return-Path: <>\r\n" LMTP_RECEIVED "Delivered-To: u@example.com\r\n" MESSAGE,
	     "Delivered-To: u@example.com\r\n" MESSAGE},
	    /* a read back maildir copy (LF) */
	    {"Return-Path: <a@b.example>\nReceived: from x\n\tby y with LMTP id z; date\n" MESSAGE,
	     MESSAGE},
	    /* a field whose end cannot be seen is not skipped */
	    {"Return-Path: <a@b.example>", "Return-Path: <a@b.example>"},
	    {"Return-Path: <a@b.example>\r\n", "Return-Path: <a@b.example>\r\n"},
	    {"Return-Path: <a>\r\nReceived: from x\r\n\tby y with LMTP",
	     "Received: from x\r\n\tby y with LMTP"},
	    /* a name that only starts like it */
	    {"Return-Pathology: x\r\n" MESSAGE, "Return-Pathology: x\r\n" MESSAGE},
	    {"", ""},
	};
	size_t i, n;
	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = mw_dedupe_lmtp_prefix(cases[i].text, strlen(cases[i].text));
		assert_string_equal(cases[i].text + n, cases[i].rest);
	}
}

/* key_of - the key of text as the plugin computes it */
static void key_of(const char *text, char key[MW_DEDUPE_KEY_LEN + 1])
{
	struct mw_dedupe_hash h;
	size_t skip = mw_dedupe_lmtp_prefix(text, strlen(text));
	mw_dedupe_hash_init(&h);
	/* in two pieces, split inside a CRLF */
	mw_dedupe_hash_update(&h, text + skip, 3);
	mw_dedupe_hash_update(&h, text + skip + 3, strlen(text + skip + 3));
	mw_dedupe_hash_final(&h, key);
}

static void test_keys(void **state)
{
	char a[MW_DEDUPE_KEY_LEN + 1], b[MW_DEDUPE_KEY_LEN + 1];
	(void)state;
	/* one queue file, two lmtp sessions (ids and times differ) */
	key_of("Return-Path: <a@b.example>\r\nDelivered-To: u@example.com\r\n" LMTP_RECEIVED
	           POSTFIX_RECEIVED MESSAGE,
	       a);
	key_of(
	    "Return-Path: <a@b.example>\r\nDelivered-To: u@example.com\r\nReceived: from other\r\n"
	    "\tby imap.example.com with LMTPS id ZZZ; Tue, 08 Dec 2026 00:00:00 "
	    "+0000\r\n" POSTFIX_RECEIVED MESSAGE,
	    b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), MW_DEDUPE_KEY_LEN);
	/* the first recipient's saved copy (LF, no Delivered-To) */
	key_of("Return-Path: <a@b.example>\nReceived: from x\n\tby y with LMTP id q; d\n"
	       "Received: from client.example (client.example [192.0.2.1])\n\tby mx.example.com "
	       "(Postfix) with ESMTP id 4AB12C0123\n\tfor <u@example.com>; Mon, 07 Dec 2026 "
	       "+0000\n" MESSAGE,
	       b);
	assert_string_equal(a, b);
	/* the same message (same Message-ID) through another queue file */
	key_of("Return-Path: <a@b.example>\r\n" LMTP_RECEIVED
	       "Received: from client.example (client.example [192.0.2.1])\r\n\tby mx.example.com "
	       "(Postfix) with ESMTP id 4AB12C0999\r\n\tfor <u@example.com>; Mon, 07 Dec 2026 "
	       "+0000\r\n" MESSAGE,
	       b);
	assert_string_not_equal(a, b);
}

/* test_known_answer - the key is BLAKE2b-256 of the text without its CR bytes (the record
   names of earlier versions must still be found), also when the text is longer than the
   update's gathering buffer and arrives in pieces split anywhere */
static void test_known_answer(void **state)
{
	static const size_t pieces[] = {9300, 1, 4095, 4096, 4097, 61, 62, 63};
	char text[9301], key[MW_DEDUPE_KEY_LEN + 1];
	struct mw_dedupe_hash h;
	size_t i, off, used = 0, n;
	(void)state;
	for (i = 0; i < 150; i++) {
		n = (size_t)snprintf(
		    text + used, sizeof(text) - used,
		    "line %04zu of the test message, with some words to fill it up\r\n", i);
		used += n;
	}
	assert_int_equal(used, 9300);
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		mw_dedupe_hash_init(&h);
		for (off = 0; off < used; off += n) {
			n = pieces[i] < used - off ? pieces[i] : used - off;
			mw_dedupe_hash_update(&h, text + off, n);
		}
		mw_dedupe_hash_final(&h, key);
		/* python3: hashlib.blake2b(text.replace('\r', '').encode(), digest_size=32) */
		assert_string_equal(
		    key, "a42dbcfdb71df54f76ad300dfe4192d322163abd7129f8929b7dd7aa837419bd");
	}
}

static void test_record(void **state)
{
	char base[64], dir[128], path[256], key[MW_DEDUPE_KEY_LEN + 1],
	    other[MW_DEDUPE_KEY_LEN + 1];
	const time_t t0 = 1800000000;
	const unsigned window = 5 * 86400;
	mw_error err = {""};
	unsigned removed;
	struct stat st;
	time_t saved;
	(void)state;
	snprintf(base, sizeof(base), "/tmp/mw-test-dedupe.XXXXXX");
	assert_non_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/dedupe", base);
	key_of(MESSAGE, key);
	key_of(POSTFIX_RECEIVED MESSAGE, other);

	/* no directory yet: not seen */
	assert_int_equal(mw_dedupe_seen(dir, key, t0, window, &saved, &err), 0);
	assert_int_equal(mw_dedupe_record(dir, key, t0, window, true, &err), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(mw_dedupe_seen(dir, key, t0 + 10, window, &saved, &err), 1);
	assert_int_equal(saved, t0);
	assert_int_equal(mw_dedupe_seen(dir, other, t0 + 10, window, &saved, &err), 0);
	/* the last second of the window, then past it */
	assert_int_equal(mw_dedupe_seen(dir, key, t0 + window - 1, window, &saved, &err), 1);
	assert_int_equal(mw_dedupe_seen(dir, key, t0 + window, window, &saved, &err), 0);
	/* a record from the future (clock set back) counts */
	assert_int_equal(mw_dedupe_seen(dir, key, t0 - 100, window, &saved, &err), 1);
	/* recorded again after the window: a new window */
	assert_int_equal(mw_dedupe_record(dir, key, t0 + window + 5, window, false, &err), 0);
	assert_int_equal(mw_dedupe_seen(dir, key, t0 + window + 6, window, &saved, &err), 1);

	/* invalid keys are refused, never looked up as paths */
	assert_int_equal(mw_dedupe_seen(dir, "../x", t0, window, &saved, &err), -1);
	assert_int_equal(mw_dedupe_record(dir, "ABC", t0, window, false, &err), -1);

	/* something that is not a record: cannot tell */
	snprintf(path, sizeof(path), "%s/%s", dir, other);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(mw_dedupe_seen(dir, other, t0, window, &saved, &err), -1);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_int_equal(rmdir(path), 0);

	/* the sweep removes only old records */
	assert_int_equal(mw_dedupe_record(dir, other, t0 + 2 * window, window, false, &err), 0);
	assert_int_equal(mw_dedupe_sweep(dir, t0 + 2 * window + 10, window, &removed, &err), 0);
	assert_int_equal(removed, 1); /* key, recorded at t0 + window + 5 */
	assert_int_equal(mw_dedupe_seen(dir, other, t0 + 2 * window + 10, window, &saved, &err), 1);
	/* a record is swept by a later record once the marker is an hour old */
	assert_int_equal(mw_dedupe_record(dir, key, t0 + 4 * window, window, false, &err), 0);
	assert_int_equal(mw_dedupe_seen(dir, other, t0 + 4 * window, window, &saved, &err), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, other);
	assert_int_equal(stat(path, &st), -1);

	/* an unreadable directory: cannot tell (root reads it anyway) */
	if (geteuid() != 0) {
		assert_int_equal(chmod(dir, 0), 0);
		assert_int_equal(mw_dedupe_seen(dir, key, t0, window, &saved, &err), -1);
		assert_int_equal(mw_dedupe_record(dir, key, t0, window, false, &err), -1);
		assert_int_equal(chmod(dir, 0700), 0);
	}

	snprintf(path, sizeof(path), "rm -rf '%s'", base);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lmtp_prefix),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_known_answer),
	    cmocka_unit_test(test_record),
	};
	MW_RUN_TESTS(tests);
}
