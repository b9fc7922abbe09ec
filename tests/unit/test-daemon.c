/* test-daemon.c - unit tests for mw-daemon: unix sockets in private directories, inet only
   when allowed, pid files that refuse symlinks and a second instance, private files. */
#include "mw-build.h"
#include "mw-daemon.h"
#include "mw-test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

struct fixture {
	char dir[64];
};

/* setup - a private temporary directory per test */
static int setup(void **state)
{
	struct fixture *f = mw_calloc(1, sizeof(*f));
	assert_int_equal(mw_strlcpy(f->dir, "/tmp/mw-test-daemon.XXXXXX", sizeof(f->dir)), 0);
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(chmod(f->dir, 0755), 0);
	*state = f;
	return 0;
}

/* teardown - remove the directory and what the tests left in it */
static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* path - DIR/NAME in buf */
static const char *path(const struct fixture *f, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", f->dir, name);
	assert_true(n > 0 && (size_t)n < size);
	return buf;
}

/* write_text - a file with TEXT and MODE */
static void write_text(const char *p, const char *text, mode_t mode)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	(void)close(fd);
}

/* read_text - the content of a file */
static void read_text(const char *p, char *buf, size_t size)
{
	int fd = open(p, O_RDONLY);
	ssize_t n;
	assert_true(fd >= 0);
	n = read(fd, buf, size - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	(void)close(fd);
}

static void test_unix_socket(void **state)
{
	struct fixture *f = *state;
	char sp[128], spec[160], sub[128];
	struct mw_listen l = {
	    .what = "test socket", .mode = "0660", .group = "", .gid = getegid(), .uid = (uid_t)-1};
	struct stat st;
	mw_error err;
	int fd, fd2;

	/* the socket directory is created 0750 when missing; the socket is born 0660 */
	(void)snprintf(spec, sizeof(spec), "unix:%s", path(f, "run/s.sock", sp, sizeof(sp)));
	l.spec = spec;
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), 0);
	assert_int_equal(lstat(sp, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(stat(path(f, "run", sub, sizeof(sub)), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	/* a live socket is not taken over */
	assert_int_equal(mw_daemon_listen(&l, 4, &fd2, &err), -1);
	assert_non_null(strstr(err.msg, "already in use"));
	(void)close(fd);
	/* a stale one is */
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), 0);
	(void)close(fd);
	/* a regular file at the path is never removed */
	(void)unlink(sp);
	write_text(sp, "data\n", 0600);
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), -1);
	assert_non_null(strstr(err.msg, "not a socket"));
	/* modes for others, bad modes */
	l.mode = "0666";
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), -1);
	assert_non_null(strstr(err.msg, "o+rwx"));
	l.mode = "0x60";
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), -1);
	/* a directory others may write is refused */
	l.mode = "0660";
	assert_int_equal(chmod(sub, 0777), 0);
	(void)unlink(sp);
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), -1);
	assert_non_null(strstr(err.msg, "writable by group or others"));
	/* relative paths, no file name */
	l.spec = "unix:relative.sock";
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), -1);
	l.spec = "tcp:1@2";
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), -1);
}

static void test_inet_allowed(void **state)
{
	struct mw_listen l = {.what = "test socket",
	                      .spec = "inet:12345@127.0.0.1",
	                      .allow_key = "[t] allow_inet",
	                      .peers_key = "[t] inet_peers"};
	mw_error err;
	int fd = -1;
	(void)state;
	assert_int_equal(mw_daemon_inet_allowed(&l, &err), -1);
	assert_non_null(strstr(err.msg, "[t] allow_inet"));
	assert_int_equal(mw_daemon_listen(&l, 4, &fd, &err), -1);
	assert_int_equal(fd, -1);
	l.allow_inet = true;
	assert_int_equal(mw_daemon_inet_allowed(&l, &err), -1);
	assert_non_null(strstr(err.msg, "[t] inet_peers"));
	l.inet_peers = " , ";
	assert_int_equal(mw_daemon_inet_allowed(&l, &err), -1);
	l.inet_peers = "192.0.2.0/33";
	assert_int_equal(mw_daemon_inet_allowed(&l, &err), -1);
	l.inet_peers = "192.0.2.0/24 ::1";
	assert_int_equal(mw_daemon_inet_allowed(&l, &err), 0);
	l.inet_peers = "";
	l.peers_unchecked = true;
	assert_int_equal(mw_daemon_inet_allowed(&l, &err), 0);
	l.spec = "unix:/x";
	l.allow_inet = false;
	assert_int_equal(mw_daemon_inet_allowed(&l, &err), 0);
}

static void test_peer_allowed(void **state)
{
	int sv[2];
	char peer[64];
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_true(mw_daemon_peer_allowed(sv[0], "", peer, sizeof(peer)));
	assert_string_equal(peer, "unix");
	(void)close(sv[0]);
	(void)close(sv[1]);
	/* not a socket: cannot decide, refuse */
	assert_false(mw_daemon_peer_allowed(0x7fff, "0.0.0.0/0", peer, sizeof(peer)));
}

static void test_pidfile(void **state)
{
	struct fixture *f = *state;
	char pid[128], victim[128], lnk[128], hard[128], text[64];
	mw_error err;
	int fd, fd2;

	/* a symlink to a victim is refused and the victim untouched */
	write_text(path(f, "victim", victim, sizeof(victim)), "precious\n", 0600);
	assert_int_equal(symlink(victim, path(f, "link.pid", lnk, sizeof(lnk))), 0);
	assert_int_equal(mw_daemon_pidfile_open(lnk, &fd, &err), -1);
	assert_non_null(strstr(err.msg, "symbolic link"));
	/* so is a hard link */
	assert_int_equal(link(victim, path(f, "hard.pid", hard, sizeof(hard))), 0);
	assert_int_equal(mw_daemon_pidfile_open(hard, &fd, &err), -1);
	assert_non_null(strstr(err.msg, "one link"));
	read_text(victim, text, sizeof(text));
	assert_string_equal(text, "precious\n");
	/* a stale pid file is replaced; a second instance is refused while the first runs */
	write_text(path(f, "d.pid", pid, sizeof(pid)), "999999999999\n", 0644);
	assert_int_equal(mw_daemon_pidfile_open(pid, &fd, &err), 0);
	assert_int_equal(mw_daemon_pidfile_write(fd, 42, &err), 0);
	read_text(pid, text, sizeof(text));
	assert_string_equal(text, "42\n");
	assert_int_equal(mw_daemon_pidfile_open(pid, &fd2, &err), -1);
	assert_non_null(strstr(err.msg, "locked"));
	(void)close(fd);
	assert_int_equal(mw_daemon_pidfile_open(pid, &fd2, &err), 0);
	(void)close(fd2);
}

static void test_private_file(void **state)
{
	struct fixture *f = *state;
	char key[128], link[128], fifo[128], big[128];
	mw_str out;
	mw_error err;

	mw_str_init(&out, 0);
	write_text(path(f, "k.pem", key, sizeof(key)), "KEY\n", 0600);
	assert_int_equal(mw_daemon_read_private_file(key, 100, &out, &err), 0);
	assert_string_equal(mw_str_c(&out), "KEY\n");
	mw_str_reset(&out);
	assert_int_equal(symlink(key, path(f, "l.pem", link, sizeof(link))), 0);
	assert_int_equal(mw_daemon_read_private_file(link, 100, &out, &err), -1);
	assert_non_null(strstr(err.msg, "symbolic link"));
	/* a FIFO fails at once instead of waiting for a writer */
	assert_int_equal(mkfifo(path(f, "f.pem", fifo, sizeof(fifo)), 0600), 0);
	assert_int_equal(mw_daemon_read_private_file(fifo, 100, &out, &err), -1);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_int_equal(mw_daemon_read_private_file(f->dir, 100, &out, &err), -1);
	assert_int_equal(chmod(key, 0640), 0);
	assert_int_equal(mw_daemon_read_private_file(key, 100, &out, &err), -1);
	assert_non_null(strstr(err.msg, "group or others"));
	write_text(path(f, "big.pem", big, sizeof(big)), "0123456789", 0600);
	assert_int_equal(mw_daemon_read_private_file(big, 9, &out, &err), -1);
	assert_int_equal(mw_daemon_read_private_file(big, 10, &out, &err), 0);
	write_text(big, "", 0600);
	mw_str_reset(&out);
	assert_int_equal(mw_daemon_read_private_file(big, 10, &out, &err), -1);
	assert_int_equal(out.len, 0);
	mw_str_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inet_allowed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_allowed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pidfile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_private_file, setup, teardown),
	};
	MW_RUN_TESTS(tests);
}
