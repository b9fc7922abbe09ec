/* test-virus.c - lib/mw-virus: libclamav on signature files the test writes (no
 * signatures exist on this machine and EICAR is not built in), the clamd reply parser on
 * hostile input, and the clamd client against a fake clamd (timeouts, garbage, early
 * close). */
#include "mw-build.h"
#include "mw-virus.h"

#include "mw-test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char eicar[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/* tmpdir - a fresh directory */
static char *tmpdir(void)
{
	char *d = strdup("/tmp/mw-virus-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

/* write_ndb - a body signature NAME for TEXT, as FILE in DIR */
static void write_ndb(const char *dir, const char *file, const char *name, const char *text)
{
	char path[512];
	FILE *f;
	size_t i;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s:0:*:", name);
	for (i = 0; text[i] != '\0'; i++)
		fprintf(f, "%02x", (unsigned char)text[i]);
	fputc('\n', f);
	assert_int_equal(fclose(f), 0);
}

/* rm_dir - the test's directory and its files */
static void rm_dir(char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

static struct mw_virus_settings lib_settings(const char *dir)
{
	struct mw_virus_settings s;
	memset(&s, 0, sizeof(s));
	s.engine = MW_VIRUS_LIBCLAMAV;
	s.signatures = dir;
	s.max_scansize = 100u << 20;
	s.max_filesize = 25u << 20;
	s.max_files = 10000;
	s.max_recursion = 17;
	s.max_scantime_ms = 60000;
	return s;
}

/* a mail with the EICAR string as a base64 attachment */
static char *mime_message(const char *payload)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(payload), i, o = 0;
	char *enc = calloc(1, n * 2 + 8), *msg;
	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)payload[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)payload[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)payload[i + 2];
		enc[o++] = b64[(v >> 18) & 63];
		enc[o++] = b64[(v >> 12) & 63];
		enc[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		enc[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	msg = calloc(1, 4096);
	snprintf(msg, 4096,
	         "Received: from x by y; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
	         "From: a@example.com\r\nTo: b@example.org\r\nSubject: att\r\n"
	         "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
	         "--BB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
	         "--BB\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
	         "Content-Transfer-Encoding: base64\r\n"
	         "Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\n%s\r\n--BB--\r\n",
	         enc);
	free(enc);
	return msg;
}

static void test_libclamav_found_clean_mime(void **state)
{
	char *dir = tmpdir(), name[MW_VIRUS_NAME_MAX + 1], *msg;
	struct mw_virus_settings s = lib_settings(dir);
	const char *clean = "From: a@example.com\r\nSubject: hi\r\n\r\nnothing to see\r\n";
	mw_error err;
	mw_virus *v;
	(void)state;

	write_ndb(dir, "test.ndb", "Mailwarden.Test.EICAR", eicar);
	v = mw_virus_new(&s, &err);
	assert_non_null(v);
	assert_int_equal(mw_virus_signatures(v), 1);
	assert_int_equal(mw_virus_scan(v, eicar, strlen(eicar), name, sizeof(name), &err),
	                 MW_VIRUS_FOUND);
	assert_string_equal(name, "Mailwarden.Test.EICAR.UNOFFICIAL");
	assert_int_equal(mw_virus_scan(v, clean, strlen(clean), name, sizeof(name), &err),
	                 MW_VIRUS_CLEAN);
	assert_string_equal(name, "");
	/* the base64 attachment is decoded by libclamav itself */
	msg = mime_message(eicar);
	assert_null(strstr(msg, "EICAR"));
	assert_int_equal(mw_virus_scan(v, msg, strlen(msg), name, sizeof(name), &err),
	                 MW_VIRUS_FOUND);
	assert_string_equal(name, "Mailwarden.Test.EICAR.UNOFFICIAL");
	free(msg);
	mw_virus_unref(&v);
	assert_null(v);
	rm_dir(dir);
}

/* test_libclamav_tmpdir - virus_tmpdir reaches libclamav: a directory that does not exist
   gives no verdict (never "clean"), a real one works and is left empty after the scan */
static void test_libclamav_tmpdir(void **state)
{
	char *dir = tmpdir(), *tmp = tmpdir(), *msg, name[MW_VIRUS_NAME_MAX + 1], bad[600];
	struct mw_virus_settings s = lib_settings(dir);
	mw_error err;
	mw_virus *v;
	DIR *d;
	struct dirent *de;
	(void)state;

	write_ndb(dir, "test.ndb", "Mailwarden.Test.EICAR", eicar);
	msg = mime_message(eicar);
	snprintf(bad, sizeof(bad), "%s/missing", tmp);
	s.tmpdir = bad;
	v = mw_virus_new(&s, &err);
	if (v != NULL) {
		assert_int_equal(mw_virus_scan(v, msg, strlen(msg), name, sizeof(name), &err),
		                 MW_VIRUS_ERROR);
		mw_virus_unref(&v);
	}
	s.tmpdir = tmp;
	v = mw_virus_new(&s, &err);
	assert_non_null(v);
	assert_int_equal(mw_virus_scan(v, msg, strlen(msg), name, sizeof(name), &err),
	                 MW_VIRUS_FOUND);
	mw_virus_unref(&v);
	d = opendir(tmp);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		assert_true(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0);
	closedir(d);
	free(msg);
	rm_dir(tmp);
	rm_dir(dir);
}

static void test_libclamav_no_signatures(void **state)
{
	char *dir = tmpdir(), path[600];
	struct mw_virus_settings s = lib_settings(dir);
	mw_error err;
	(void)state;
	/* an empty directory: an engine that finds nothing must not pass for a working one */
	assert_null(mw_virus_new(&s, &err));
	assert_non_null(strstr(err.msg, dir));
	/* a directory that does not exist */
	snprintf(path, sizeof(path), "%s/missing", dir);
	s.signatures = path;
	assert_null(mw_virus_new(&s, &err));
	/* a broken signature file */
	snprintf(path, sizeof(path), "%s/broken.ndb", dir);
	{
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs("this is not a signature\n", f);
		fclose(f);
	}
	s.signatures = dir;
	assert_null(mw_virus_new(&s, &err));
	rm_dir(dir);
}

static void test_libclamav_stale_and_reload(void **state)
{
	char *dir = tmpdir(), name[MW_VIRUS_NAME_MAX + 1];
	struct mw_virus_settings s = lib_settings(dir);
	const char *other = "MAILWARDEN-SECOND-TEST-SIGNATURE-0123456789";
	mw_virus *v, *v2, *held;
	mw_error err;
	(void)state;

	write_ndb(dir, "a.ndb", "Mailwarden.Test.EICAR", eicar);
	v = mw_virus_new(&s, &err);
	assert_non_null(v);
	assert_false(mw_virus_stale(v));
	assert_int_equal(mw_virus_scan(v, other, strlen(other), name, sizeof(name), &err),
	                 MW_VIRUS_CLEAN);
	write_ndb(dir, "b.ndb", "Mailwarden.Test.Second", other);
	assert_true(mw_virus_stale(v));
	/* the new engine is built beside the old one; a scan holding the old one goes on */
	held = mw_virus_ref(v);
	v2 = mw_virus_new(&s, &err);
	assert_non_null(v2);
	assert_int_equal(mw_virus_signatures(v2), 2);
	mw_virus_unref(&v);
	assert_int_equal(mw_virus_scan(held, eicar, strlen(eicar), name, sizeof(name), &err),
	                 MW_VIRUS_FOUND);
	mw_virus_unref(&held);
	assert_int_equal(mw_virus_scan(v2, other, strlen(other), name, sizeof(name), &err),
	                 MW_VIRUS_FOUND);
	assert_string_equal(name, "Mailwarden.Test.Second.UNOFFICIAL");
	assert_false(mw_virus_stale(v2));
	mw_virus_unref(&v2);
	rm_dir(dir);
}

static void test_libclamav_limits(void **state)
{
	enum mw_virus_status st;
	char *dir = tmpdir(), name[MW_VIRUS_NAME_MAX + 1], *big;
	struct mw_virus_settings s = lib_settings(dir);
	mw_error err;
	mw_virus *v;
	(void)state;

	write_ndb(dir, "a.ndb", "Mailwarden.Test.EICAR", eicar);
	s.max_filesize = 1000;
	s.max_scansize = 1000;
	v = mw_virus_new(&s, &err);
	assert_non_null(v);
	big = malloc(5000);
	memset(big, 'a', 5000);
	/* over a limit is never clean: the message was not scanned whole */
	st = mw_virus_scan(v, big, 5000, name, sizeof(name), &err);
	if (st != MW_VIRUS_LIMIT)
		fail_msg("got %d name %s", st, name);
	assert_true(mw_virus_name_is_limit(name));
	free(big);
	mw_virus_unref(&v);
	assert_true(mw_virus_name_is_limit("Heuristics.Limits.Exceeded.MaxFileSize"));
	assert_false(mw_virus_name_is_limit("Heuristics.Limits.Exceeded.MaxScanTime"));
	assert_false(mw_virus_name_is_limit("Heuristics.Limits.ExceededX"));
	assert_false(mw_virus_name_is_limit("Eicar-Test-Signature"));
	rm_dir(dir);
}

struct parse_case {
	const char *reply;
	size_t len; /* 0 = strlen */
	enum mw_virus_status want;
	const char *name;
};

static void test_clamd_parse(void **state)
{
	static char longname[400];
	static const struct parse_case cases[] = {
	    {"stream: OK", 0, MW_VIRUS_CLEAN, ""},
	    {"stream: Eicar-Test-Signature FOUND", 0, MW_VIRUS_FOUND, "Eicar-Test-Signature"},
	    {"stream: Mailwarden.Test.EICAR.UNOFFICIAL FOUND", 0, MW_VIRUS_FOUND,
	     "Mailwarden.Test.EICAR.UNOFFICIAL"},
	    {"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND", 0, MW_VIRUS_LIMIT, NULL},
	    {"stream: Heuristics.Limits.Exceeded.MaxScanTime FOUND", 0, MW_VIRUS_ERROR, NULL},
	    {"INSTREAM size limit exceeded. ERROR", 0, MW_VIRUS_LIMIT, NULL},
	    {"stream: Can't allocate memory ERROR", 0, MW_VIRUS_ERROR, ""},
	    {"", 0, MW_VIRUS_ERROR, ""},
	    {"stream:", 0, MW_VIRUS_ERROR, ""},
	    {"stream: ", 0, MW_VIRUS_ERROR, ""},
	    {"stream: ok", 0, MW_VIRUS_ERROR, ""},
	    {"stream: OK ", 0, MW_VIRUS_ERROR, ""},
	    {" stream: OK", 0, MW_VIRUS_ERROR, ""},
	    {"stream:  FOUND", 0, MW_VIRUS_ERROR, ""},
	    {"stream: FOUND", 0, MW_VIRUS_ERROR, ""},
	    {"stream: Two Words FOUND", 0, MW_VIRUS_ERROR, ""},
	    {"stream: Evil(x) FOUND", 0, MW_VIRUS_ERROR, ""},
	    {"stream: Evil;x FOUND", 0, MW_VIRUS_ERROR, ""},
	    {"stream: OK\nstream: X FOUND", 0, MW_VIRUS_ERROR, ""},
	    {"stream: X FOUND\r", 0, MW_VIRUS_ERROR, ""},
	    {"stream: OK\0garbage", 18, MW_VIRUS_ERROR, ""},
	    {"stream: Caf\xc3\xa9 FOUND", 0, MW_VIRUS_ERROR, ""},
	    {"PONG", 0, MW_VIRUS_ERROR, ""},
	    {"stream: X FOUNDX", 0, MW_VIRUS_ERROR, ""},
	    {"stream: OKFOUND", 0, MW_VIRUS_ERROR, ""},
	};
	char name[MW_VIRUS_NAME_MAX + 1], buf[600];
	mw_error err;
	size_t i;
	(void)state;

	for (i = 0; i < MW_N_ELEMENTS(cases); i++) {
		const struct parse_case *c = &cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->reply);
		enum mw_virus_status st =
		    mw_virus_clamd_parse(c->reply, len, name, sizeof(name), &err);
		if (st != c->want)
			fail_msg("case %zu (%s): got %d, want %d", i, c->reply, st, c->want);
		if (c->name != NULL)
			assert_string_equal(name, c->name);
	}
	/* a name at the limit is taken, one byte more is not */
	memset(longname, 'A', MW_VIRUS_NAME_MAX);
	snprintf(buf, sizeof(buf), "stream: %.*s FOUND", MW_VIRUS_NAME_MAX, longname);
	assert_int_equal(mw_virus_clamd_parse(buf, strlen(buf), name, sizeof(name), &err),
	                 MW_VIRUS_FOUND);
	assert_int_equal(strlen(name), MW_VIRUS_NAME_MAX);
	snprintf(buf, sizeof(buf), "stream: %.*sB FOUND", MW_VIRUS_NAME_MAX, longname);
	assert_int_equal(mw_virus_clamd_parse(buf, strlen(buf), name, sizeof(name), &err),
	                 MW_VIRUS_ERROR);
}

/* ---- a fake clamd on a unix socket ---- */

struct fake {
	char path[108];
	int lfd;
	const char *reply; /* sent after the stream ends (with len) */
	size_t reply_len;
	int mode; /* 0 read all then reply, 1 never reply, 2 close at once, 3 reply at once */
	char cmd[16];
	size_t received;
	pthread_t th;
};

/* read_n - exactly N bytes, -1 on EOF */
static int read_n(int fd, void *p, size_t n)
{
	char *c = p;
	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	uint32_t len;
	char buf[4096];
	if (fd < 0)
		return NULL;
	if (f->mode == 2) {
		close(fd);
		return NULL;
	}
	if (read_n(fd, f->cmd, 10) < 0)
		goto out;
	if (f->mode == 3) {
		(void)write(fd, f->reply, f->reply_len);
		goto out;
	}
	for (;;) {
		if (read_n(fd, &len, 4) < 0)
			goto out;
		len = ntohl(len);
		if (len == 0)
			break;
		while (len > 0) {
			size_t n = len > sizeof(buf) ? sizeof(buf) : len;
			if (read_n(fd, buf, n) < 0)
				goto out;
			f->received += n;
			len -= (uint32_t)n;
		}
	}
	if (f->mode == 1) {
		sleep(3);
		goto out;
	}
	(void)write(fd, f->reply, f->reply_len);
out:
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const char *dir, int mode, const char *reply, size_t len)
{
	struct sockaddr_un su;
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s/clamd.sock", dir);
	(void)unlink(f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	strcpy(su.sun_path, f->path);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&su, sizeof(su)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->mode = mode;
	f->reply = reply;
	f->reply_len = len;
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
	unlink(f->path);
}

static enum mw_virus_status clamd_scan(const char *dir, const void *data, size_t len, char *name,
                                       mw_error *err)
{
	char spec[200];
	struct mw_virus_settings s;
	enum mw_virus_status st;
	mw_virus *v;
	memset(&s, 0, sizeof(s));
	s.engine = MW_VIRUS_CLAMD;
	snprintf(spec, sizeof(spec), "unix:%s/clamd.sock", dir);
	s.clamd_socket = spec;
	s.clamd_timeout_ms = 1000;
	v = mw_virus_new(&s, err);
	assert_non_null(v);
	st = mw_virus_scan(v, data, len, name, MW_VIRUS_NAME_MAX + 1, err);
	mw_virus_unref(&v);
	return st;
}

static void test_clamd_fake(void **state)
{
	char *dir = tmpdir(), name[MW_VIRUS_NAME_MAX + 1], *big;
	static const char found[] = "stream: Test.Sig FOUND";
	struct fake f;
	mw_error err;
	(void)state;

	/* clean, found, and the stream arrives whole in chunks */
	big = malloc(200000);
	memset(big, 'x', 200000);
	fake_start(&f, dir, 0, "stream: OK", sizeof("stream: OK"));
	assert_int_equal(clamd_scan(dir, big, 200000, name, &err), MW_VIRUS_CLEAN);
	fake_stop(&f);
	assert_memory_equal(f.cmd, "zINSTREAM", 10);
	assert_int_equal(f.received, 200000);
	free(big);
	fake_start(&f, dir, 0, found, sizeof(found));
	assert_int_equal(clamd_scan(dir, "abc", 3, name, &err), MW_VIRUS_FOUND);
	assert_string_equal(name, "Test.Sig");
	fake_stop(&f);
	/* garbage, no NUL, silence (timeout), closed at once, nothing there */
	fake_start(&f, dir, 0, "HELLO\0", 6);
	assert_int_equal(clamd_scan(dir, "abc", 3, name, &err), MW_VIRUS_ERROR);
	fake_stop(&f);
	fake_start(&f, dir, 0, "stream: OK", 10);
	assert_int_equal(clamd_scan(dir, "abc", 3, name, &err), MW_VIRUS_ERROR);
	fake_stop(&f);
	fake_start(&f, dir, 1, "", 0);
	assert_int_equal(clamd_scan(dir, "abc", 3, name, &err), MW_VIRUS_ERROR);
	assert_non_null(strstr(err.msg, "no reply in time"));
	fake_stop(&f);
	fake_start(&f, dir, 2, "", 0);
	assert_int_equal(clamd_scan(dir, "abc", 3, name, &err), MW_VIRUS_ERROR);
	fake_stop(&f);
	assert_int_equal(clamd_scan(dir, "abc", 3, name, &err), MW_VIRUS_ERROR);
	assert_non_null(strstr(err.msg, "connect"));
	/* an early answer (clamd's size limit) while we still send is still read */
	fake_start(&f, dir, 3, "INSTREAM size limit exceeded. ERROR",
	           sizeof("INSTREAM size limit exceeded. ERROR"));
	assert_int_equal(clamd_scan(dir, "abc", 3, name, &err), MW_VIRUS_LIMIT);
	fake_stop(&f);
	rm_dir(dir);
}

static void test_clamd_spec(void **state)
{
	static const char *bad[] = {"",
	                            "unix:",
	                            "unix:relative",
	                            "inet:",
	                            "inet:0@127.0.0.1",
	                            "inet:3310",
	                            "inet:3310@",
	                            "inet:3310@localhost",
	                            "inet6:3310@127.0.0.1",
	                            "tcp:3310@127.0.0.1",
	                            "inet:70000@127.0.0.1"};
	struct mw_virus_settings s;
	mw_error err;
	mw_virus *v;
	size_t i;
	(void)state;
	memset(&s, 0, sizeof(s));
	s.engine = MW_VIRUS_CLAMD;
	for (i = 0; i < MW_N_ELEMENTS(bad); i++) {
		s.clamd_socket = bad[i];
		if (mw_virus_new(&s, &err) != NULL)
			fail_msg("clamd socket %s accepted", bad[i]);
	}
	s.clamd_socket = "inet:3310@127.0.0.1";
	v = mw_virus_new(&s, &err);
	assert_non_null(v);
	mw_virus_unref(&v);
	s.clamd_socket = "inet6:3310@::1";
	v = mw_virus_new(&s, &err);
	assert_non_null(v);
	mw_virus_unref(&v);
	assert_int_equal(mw_virus_scan(NULL, "a", 1, NULL, 0, &err), MW_VIRUS_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_libclamav_found_clean_mime),
	    cmocka_unit_test(test_libclamav_no_signatures),
	    cmocka_unit_test(test_libclamav_tmpdir),
	    cmocka_unit_test(test_libclamav_stale_and_reload),
	    cmocka_unit_test(test_libclamav_limits),
	    cmocka_unit_test(test_clamd_parse),
	    cmocka_unit_test(test_clamd_fake),
	    cmocka_unit_test(test_clamd_spec),
	};
	MW_RUN_TESTS(tests);
}
