/*
 * mw-daemon.c - the start-up code every mailwarden daemon shares (milter, policyd, API):
 * listening sockets, the pid file, dropping privileges, reading private files as root.
 *
 * Public: mw_daemon_unix_path, mw_daemon_inet_allowed, mw_daemon_unix_prepare,
 * mw_daemon_unix_umask, mw_daemon_unix_finish, mw_daemon_unix_params, mw_daemon_listen,
 * mw_daemon_peer_allowed, mw_daemon_pidfile_open, mw_daemon_pidfile_write,
 * mw_daemon_drop_privileges, mw_daemon_read_private_file.
 *
 * Unix sockets: whoever can connect to the milter can claim any {auth_authen} and have mail
 * DKIM-signed; whoever can connect to the policy daemon can spend anyone's quota. So the
 * socket lives in a private directory (root's, writable by nobody else, every ancestor
 * likewise unless sticky), is born with its final mode (the umask is set around bind(), so
 * there is never a moment it is wider), and gets its group with fchownat(AT_SYMLINK_NOFOLLOW)
 * relative to the directory's descriptor - never chmod/chown by path. (fchmod/fchown on a
 * socket descriptor would change the socket's own inode on Linux, not the file bind() made.)
 * Then fstatat checks the result. Inet sockets: refused unless the configuration allows them
 * explicitly and names the peer networks, which are checked on every accept (a local user
 * connecting over loopback is 127.0.0.1 like Postfix: naming loopback admits every local
 * user, which the documentation says).
 *
 * Pid files: O_NOFOLLOW (a symlink to a victim file is refused, the victim untouched), a
 * regular file owned by us with one link, flock'ed (a second instance is refused), then
 * truncated through the descriptor.
 *
 * Diagnostics: every function returns -1 with a message in error_r naming the path or
 * setting; nothing here exits.
 */
#include "mw-build.h"
#include "mw-daemon.h"
#include "mw-authcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* mw_daemon_unix_path - the path of a unix:/local: spec, or NULL */
const char *mw_daemon_unix_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	return NULL;
}

/* is_inet - an inet: or inet6: spec */
static bool is_inet(const char *spec)
{
	return strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0;
}

/* mw_daemon_inet_allowed - an inet socket only with the explicit keys */
int mw_daemon_inet_allowed(const struct mw_listen *l, mw_error *error_r)
{
	const char *p;

	if (!is_inet(l->spec))
		return 0;
	if (!l->allow_inet) {
		mw_error_set(error_r,
		             "%s %s: an inet socket is refused: any local user could connect to it "
		             "(use a unix socket in a private directory, or set %s = yes%s%s)",
		             l->what, l->spec, l->allow_key, l->peers_unchecked ? "" : " and ",
		             l->peers_unchecked ? "" : l->peers_key);
		return -1;
	}
	if (l->peers_unchecked)
		return 0;
	p = l->inet_peers != NULL ? l->inet_peers + strspn(l->inet_peers, " \t,") : "";
	if (*p == '\0') {
		mw_error_set(error_r, "%s %s: %s = yes needs %s (the networks allowed to connect)",
		             l->what, l->spec, l->allow_key, l->peers_key);
		return -1;
	}
	/* the list must parse: a check that cannot decide refuses at start, not per connection */
	if (mw_authcheck_ip_in_networks(l->inet_peers, "0.0.0.0", error_r) < 0) {
		mw_error_prefix(error_r, "%s", l->peers_key);
		return -1;
	}
	return 0;
}

/* dir_safe - FD (a directory) is owned by root or us and writable by nobody else */
static int dir_safe(int fd, const char *name, bool allow_sticky, mw_error *error_r)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		mw_error_set(error_r, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		mw_error_set(error_r, "%s is not a directory", name);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		mw_error_set(error_r, "directory %s is owned by uid %ld, not root: refused", name,
		             (long)st.st_uid);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
	    !(allow_sticky && (st.st_mode & S_ISVTX) != 0)) {
		mw_error_set(error_r,
		             "directory %s is writable by group or others (mode %04o): a socket "
		             "directory must be private (root-owned, 0750 or 0755)",
		             name, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* open_dir - open a directory without following a symlink in its last component */
static int open_dir(const char *path)
{
	return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* split_path - DIR and base name of absolute PATH into buffers of sun_path size */
static int split_path(const char *path, char *dir, size_t dsize, const char **base_r,
                      mw_error *error_r)
{
	struct sockaddr_un sun;
	char *slash;

	if (path[0] != '/') {
		mw_error_set(error_r, "socket unix:%s: the path must be absolute", path);
		return -1;
	}
	if (strlen(path) >= sizeof(sun.sun_path) || mw_strlcpy(dir, path, dsize) < 0) {
		mw_error_set(error_r, "socket unix:%s: path too long (at most %zu bytes)", path,
		             sizeof(sun.sun_path) - 1);
		return -1;
	}
	slash = strrchr(dir, '/');
	*base_r = path + (slash - dir) + 1;
	if (**base_r == '\0') {
		mw_error_set(error_r, "socket unix:%s: no file name", path);
		return -1;
	}
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

/* ancestors_safe - every directory above DIR is root's (or ours) and not writable by
   others unless sticky: nobody else can swap the socket directory for their own */
static int ancestors_safe(const char *dir, mw_error *error_r)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;
	int fd, ret;

	(void)mw_strlcpy(buf, dir, sizeof(buf));
	while ((slash = strrchr(buf, '/')) != NULL) {
		if (slash == buf)
			slash[1] = '\0';
		else
			*slash = '\0';
		fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				mw_error_set(error_r, "directory %s does not exist", buf);
			else
				mw_error_set(error_r, "%s: %s", buf, strerror(errno));
			return -1;
		}
		ret = dir_safe(fd, buf, true, error_r);
		(void)close(fd);
		if (ret < 0)
			return -1;
		if (strcmp(buf, "/") == 0)
			break;
	}
	return 0;
}

/* private_dir - the socket directory, checked (or created 0750 root:GID); its descriptor */
static int private_dir(const char *dir, gid_t gid, mw_error *error_r)
{
	int fd;

	if (ancestors_safe(dir, error_r) < 0)
		return -1;
	fd = open_dir(dir);
	if (fd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			mw_error_set(error_r, "socket directory %s: mkdir: %s", dir,
			             strerror(errno));
			return -1;
		}
		fd = open_dir(dir);
		/* only root may give the directory away; otherwise it stays ours, 0750 */
		if (fd >= 0 &&
		    ((geteuid() == 0 && fchown(fd, 0, gid) < 0) || fchmod(fd, 0750) < 0)) {
			mw_error_set(error_r, "socket directory %s: %s", dir, strerror(errno));
			(void)close(fd);
			return -1;
		}
	}
	if (fd < 0) {
		mw_error_set(error_r, "socket directory %s: %s%s", dir, strerror(errno),
		             errno == ELOOP || errno == ENOTDIR ? " (a symbolic link is refused)"
		                                                : "");
		return -1;
	}
	if (dir_safe(fd, dir, false, error_r) < 0) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

/* mw_daemon_unix_prepare - private directory; a stale socket removed, anything else refused */
int mw_daemon_unix_prepare(const char *path, gid_t gid, mw_error *error_r)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un sun;
	const char *base;
	struct stat st;
	int dfd, fd;

	if (split_path(path, dir, sizeof(dir), &base, error_r) < 0)
		return -1;
	dfd = private_dir(dir, gid, error_r);
	if (dfd < 0)
		return -1;
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		(void)close(dfd);
		if (errno == ENOENT)
			return 0;
		mw_error_set(error_r, "socket unix:%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		(void)close(dfd);
		mw_error_set(error_r, "socket unix:%s: the path exists and is not a socket", path);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)mw_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		(void)close(fd);
		(void)close(dfd);
		mw_error_set(error_r, "socket unix:%s: already in use by another process", path);
		return -1;
	}
	if (fd >= 0)
		(void)close(fd);
	if (unlinkat(dfd, base, 0) < 0 && errno != ENOENT) {
		mw_error_set(error_r, "socket unix:%s: removing the stale socket: %s", path,
		             strerror(errno));
		(void)close(dfd);
		return -1;
	}
	(void)close(dfd);
	return 0;
}

/* mw_daemon_unix_umask - set the umask that makes bind() create MODE; the old one */
mode_t mw_daemon_unix_umask(unsigned mode)
{
	return umask((mode_t)(~mode & 0777));
}

/* mw_daemon_unix_finish - owner and group of the new socket, without following links */
int mw_daemon_unix_finish(const char *path, unsigned mode, uid_t uid, gid_t gid, mw_error *error_r)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *base;
	struct stat st;
	int dfd;

	if (split_path(path, dir, sizeof(dir), &base, error_r) < 0)
		return -1;
	dfd = open_dir(dir);
	if (dfd < 0 || dir_safe(dfd, dir, false, error_r) < 0) {
		if (dfd < 0)
			mw_error_set(error_r, "socket directory %s: %s", dir, strerror(errno));
		else
			(void)close(dfd);
		return -1;
	}
	if (geteuid() == 0 && fchownat(dfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
		mw_error_set(error_r, "socket unix:%s: chown: %s", path, strerror(errno));
		(void)close(dfd);
		return -1;
	}
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode) ||
	    (st.st_mode & 0777) != (mode & 0777) ||
	    (geteuid() == 0 && (st.st_gid != gid || (uid != (uid_t)-1 && st.st_uid != uid)))) {
		mw_error_set(error_r, "socket unix:%s: not the socket we made (mode %04o, gid %ld)",
		             path, (unsigned)(st.st_mode & 07777), (long)st.st_gid);
		(void)close(dfd);
		return -1;
	}
	(void)close(dfd);
	return 0;
}

/* mw_daemon_unix_params - the group and mode a unix socket gets */
int mw_daemon_unix_params(const struct mw_listen *l, gid_t *gid_r, unsigned *mode_r,
                          mw_error *error_r)
{
	char *end;
	long mode;

	errno = 0;
	mode = strtol(l->mode, &end, 8);
	if (errno != 0 || *end != '\0' || end == l->mode || mode < 0 || mode > 0777) {
		mw_error_set(error_r, "%s mode %s: expected an octal mode up to 0777", l->what,
		             l->mode);
		return -1;
	}
	if ((mode & 07) != 0) {
		mw_error_set(error_r,
		             "%s mode %s: a socket for others (o+rwx) is refused: every "
		             "local user could connect",
		             l->what, l->mode);
		return -1;
	}
	*mode_r = (unsigned)mode;
	*gid_r = l->gid;
	if (l->group != NULL && l->group[0] != '\0') {
		struct group *gr = getgrnam(l->group);
		if (gr == NULL) {
			mw_error_set(error_r, "%s group %s: no such group", l->what, l->group);
			return -1;
		}
		*gid_r = gr->gr_gid;
	}
	return 0;
}

/* listen_unix - a unix socket at PATH with MODE, group GID */
static int listen_unix(const char *path, unsigned mode, uid_t uid, gid_t gid, int backlog,
                       mw_error *error_r)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, ret;

	if (mw_daemon_unix_prepare(path, gid, error_r) < 0)
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)mw_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		mw_error_set(error_r, "socket(): %s", strerror(errno));
		return -1;
	}
	old = mw_daemon_unix_umask(mode);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	(void)umask(old);
	if (ret < 0) {
		mw_error_set(error_r, "socket unix:%s: bind: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	if (mw_daemon_unix_finish(path, mode, uid, gid, error_r) < 0) {
		(void)close(fd);
		return -1;
	}
	if (listen(fd, backlog) < 0) {
		mw_error_set(error_r, "socket unix:%s: listen: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	return fd;
}

/* listen_inet - PORT@ADDRESS (numeric) */
static int listen_inet(const char *spec, int backlog, mw_error *error_r)
{
	const char *rest = spec + (strncmp(spec, "inet6:", 6) == 0 ? 6 : 5);
	const char *at = strchr(rest, '@');
	struct addrinfo hints, *ai = NULL;
	char port[16], host[256];
	int fd, one = 1, rc;

	if (at == NULL || at == rest || (size_t)(at - rest) >= sizeof(port) ||
	    mw_strlcpy(host, at + 1, sizeof(host)) < 0 || host[0] == '\0') {
		mw_error_set(error_r, "socket %s: expected inet:PORT@ADDRESS", spec);
		return -1;
	}
	memcpy(port, rest, (size_t)(at - rest));
	port[at - rest] = '\0';
	if (strspn(port, "0123456789") != strlen(port) || atoi(port) < 1 || atoi(port) > 65535) {
		mw_error_set(error_r, "socket %s: expected a port 1-65535", spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		mw_error_set(error_r, "socket %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		mw_error_set(error_r, "socket %s: %s", spec, strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* mw_daemon_listen - the listening socket L describes */
int mw_daemon_listen(const struct mw_listen *l, int backlog, int *fd_r, mw_error *error_r)
{
	const char *path = mw_daemon_unix_path(l->spec);
	unsigned mode;
	gid_t gid;

	*fd_r = -1;
	if (path != NULL) {
		if (mw_daemon_unix_params(l, &gid, &mode, error_r) < 0)
			return -1;
		*fd_r = listen_unix(path, mode, l->uid, gid, backlog, error_r);
	} else if (is_inet(l->spec)) {
		if (mw_daemon_inet_allowed(l, error_r) < 0)
			return -1;
		*fd_r = listen_inet(l->spec, backlog, error_r);
	} else {
		mw_error_set(error_r, "%s %s: expected unix:/path or inet:PORT@ADDRESS", l->what,
		             l->spec);
	}
	if (*fd_r < 0)
		mw_error_prefix(error_r, "%s", l->what);
	return *fd_r < 0 ? -1 : 0;
}

/* mw_daemon_peer_allowed - unix peers always, inet peers inside NETWORKS */
bool mw_daemon_peer_allowed(int fd, const char *networks, char *peer_r, size_t peer_size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];
	const void *addr;

	if (peer_r != NULL && peer_size > 0)
		(void)mw_strlcpy(peer_r, "?", peer_size);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_UNIX) {
		if (peer_r != NULL && peer_size > 0)
			(void)mw_strlcpy(peer_r, "unix", peer_size);
		return true;
	}
	if (ss.ss_family == AF_INET)
		addr = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	else
		return false;
	if (inet_ntop(ss.ss_family, addr, ip, sizeof(ip)) == NULL)
		return false;
	/* an IPv4 client of an IPv6 socket: compare its IPv4 form */
	if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
		memmove(ip, ip + 7, strlen(ip + 7) + 1);
	if (peer_r != NULL && peer_size > 0)
		(void)mw_strlcpy(peer_r, ip, peer_size);
	return networks != NULL && mw_authcheck_ip_in_networks(networks, ip, NULL) == 1;
}

/* mw_daemon_pidfile_open - open, check and lock the pid file */
int mw_daemon_pidfile_open(const char *path, int *fd_r, mw_error *error_r)
{
	struct stat st;
	int fd;

	*fd_r = -1;
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
	if (fd < 0) {
		mw_error_set(error_r, "pid file %s: %s%s", path, strerror(errno),
		             errno == ELOOP ? " (a symbolic link is refused)" : "");
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_uid != geteuid()) {
		mw_error_set(error_r,
		             "pid file %s: not a regular file of ours with one link: refused",
		             path);
		(void)close(fd);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		mw_error_set(error_r, "pid file %s: %s", path,
		             errno == EWOULDBLOCK ? "locked by another running instance"
		                                  : strerror(errno));
		(void)close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

/* mw_daemon_pidfile_write - PID, replacing what the file held */
int mw_daemon_pidfile_write(int fd, long pid, mw_error *error_r)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", pid);

	if (n < 0 || (size_t)n >= sizeof(buf) || ftruncate(fd, 0) < 0 ||
	    pwrite(fd, buf, (size_t)n, 0) != n) {
		mw_error_set(error_r, "pid file: write: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* mw_daemon_drop_privileges - become USER (and its groups) when root */
int mw_daemon_drop_privileges(const char *user, bool *not_root_r, mw_error *error_r)
{
	struct passwd *pw;

	if (not_root_r != NULL)
		*not_root_r = geteuid() != 0;
	if (geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		mw_error_set(error_r,
		             "user %s (config key user) does not exist: refusing to run as "
		             "root",
		             user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		mw_error_set(error_r,
		             "user %s (config key user) is root: choose an unprivileged "
		             "account",
		             user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		mw_error_set(error_r, "cannot switch to user %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		mw_error_set(error_r, "could switch back to root after dropping privileges");
		return -1;
	}
	return 0;
}

/* mw_daemon_read_private_file - a key file: no symlink, no FIFO, private, bounded */
int mw_daemon_read_private_file(const char *path, size_t max, mw_str *out, mw_error *error_r)
{
	char buf[4096];
	struct stat st;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO opens at once instead of waiting for a writer; fstat refuses it */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		mw_error_set(error_r, "%s: %s%s", path, strerror(errno),
		             errno == ELOOP ? " (a symbolic link is refused)" : "");
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		mw_error_set(error_r,
		             "%s: not a regular file (a FIFO, device or directory is "
		             "refused)",
		             path);
		goto fail;
	}
	if (st.st_uid != 0 && st.st_uid != getuid() && st.st_uid != geteuid()) {
		mw_error_set(error_r, "%s: owned by uid %ld, neither root nor you: refused", path,
		             (long)st.st_uid);
		goto fail;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		mw_error_set(error_r,
		             "%s is accessible by group or others (mode %04o): chmod 600 it", path,
		             (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_size <= 0 || (unsigned long long)st.st_size > max) {
		mw_error_set(error_r, "%s: empty or longer than %zu bytes", path, max);
		goto fail;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mw_error_set(error_r, "%s: %s", path, strerror(errno));
			break;
		}
		if (n == 0) {
			mw_memzero(buf, sizeof(buf));
			(void)close(fd);
			return 0;
		}
		if (out->len + (size_t)n > max || mw_str_append(out, buf, (size_t)n) < 0) {
			mw_error_set(error_r, "%s: longer than %zu bytes", path, max);
			break;
		}
	}
	mw_memzero(buf, sizeof(buf));
fail:
	(void)close(fd);
	return -1;
}
