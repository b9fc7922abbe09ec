/* mw-daemon.h - what every mailwarden daemon does as root before it serves requests:
   listening sockets (unix sockets in a private directory, inet only when the config allows
   it and names the peers), the pid file, dropping privileges; and reading a private file
   without being tricked by a symbolic link or a FIFO. */
#ifndef MW_DAEMON_H
#define MW_DAEMON_H

#include "mw-util.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A listening socket as the configuration describes it. */
struct mw_listen {
	const char *what;       /* "[milter] socket": names the setting in messages */
	const char *spec;       /* unix:/path, local:/path, inet:PORT@ADDR, inet6:PORT@ADDR */
	const char *mode;       /* unix: octal permissions, e.g. "0660" */
	const char *group;      /* unix: group of the socket; "" = gid below */
	gid_t gid;              /* unix: group when group is "" (the daemon user's) */
	uid_t uid;              /* unix: owner ((uid_t)-1 = root, the creator) */
	bool allow_inet;        /* the config explicitly allows an inet socket */
	const char *inet_peers; /* networks allowed to connect ("" = none named) */
	bool peers_unchecked;   /* the caller cannot check peers (libmilter): allow_inet decides */
	const char *allow_key;  /* config key names for messages: "[milter] allow_inet" */
	const char *peers_key;  /* "[policyd] inet_peers" (NULL when peers_unchecked) */
};

/* The path of a unix:/local: spec, or NULL when SPEC is not one. */
const char *mw_daemon_unix_path(const char *spec);

/* Checks an inet spec against the explicit keys (allow_inet, inet_peers): -1 with a message
   naming them when the config does not allow it. 0 for unix specs. */
int mw_daemon_inet_allowed(const struct mw_listen *l, mw_error *error_r);

/* Makes sure the directory of unix socket PATH is private (a directory, not a symlink,
   owned by root or us, writable by nobody else, every ancestor likewise unless sticky),
   creating it 0750 root:GID when missing; removes a stale socket (refuses a path that is
   not a socket or that a live process listens on). */
int mw_daemon_unix_prepare(const char *path, gid_t gid, mw_error *error_r);

/* Around a bind() done by someone else (libmilter): set the umask so the socket is born
   with MODE (never wider), then give it OWNER/GID relative to its private directory
   without following links, and check what bind made. */
mode_t mw_daemon_unix_umask(unsigned mode);
int mw_daemon_unix_finish(const char *path, unsigned mode, uid_t uid, gid_t gid, mw_error *error_r);

/* Opens L: unix sockets through the three steps above and listen(); inet sockets only when
   mw_daemon_inet_allowed. *fd_r: the listening descriptor (close-on-exec). */
int mw_daemon_listen(const struct mw_listen *l, int backlog, int *fd_r, mw_error *error_r);

/* The socket group and mode of L resolved: *gid_r from group (or l->gid), *mode_r. */
int mw_daemon_unix_params(const struct mw_listen *l, gid_t *gid_r, unsigned *mode_r,
                          mw_error *error_r);

/* An accepted connection FD may talk to us: unix peers always (the socket's mode decides),
   inet peers only inside NETWORKS. PEER_R (may be NULL) gets the peer's address text. */
bool mw_daemon_peer_allowed(int fd, const char *networks, char *peer_r, size_t peer_size);

/* The pid file: opened without following links (O_NOFOLLOW), a regular file of ours with
   one link, locked (a second instance is refused); mw_daemon_pidfile_write stores PID in it
   (keep the descriptor open: the lock lives as long as it). */
int mw_daemon_pidfile_open(const char *path, int *fd_r, mw_error *error_r);
int mw_daemon_pidfile_write(int fd, long pid, mw_error *error_r);

/* Become USER and its groups when root (refuses a user that is root, checks root cannot
   be regained); when not root, *not_root_r (may be NULL) is set and nothing changes. */
int mw_daemon_drop_privileges(const char *user, bool *not_root_r, mw_error *error_r);

/* Reads a private file (a key) of at most MAX bytes into OUT: not a symbolic link, a regular
   file (a FIFO or device is refused at once, never read), owned by root or the caller,
   without any access for group or others. */
int mw_daemon_read_private_file(const char *path, size_t max, mw_str *out, mw_error *error_r);

#endif
