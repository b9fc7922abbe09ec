/* mw-service.h - the life of a mailwarden daemon (milter, policyd, API) around its own
   work: one command line, one --help (with the daemon's config keys from the one table), the
   configuration and logging, the pid file, detaching, the signals, and a prefork pool of
   workers on one listening socket. Sockets, privileges and private files: mw-daemon.h. */
#ifndef MW_SERVICE_H
#define MW_SERVICE_H

#include "mw-config.h"
#include "mw-util.h"

#include <stdbool.h>
#include <sys/types.h>

/* The value mw_service_info.option gets for the long-only option at index I of opts. */
#define MW_SERVICE_OPT_LONG(i) (0x100 + (i))

/* An option of one daemon beyond the common ones (-c -f -t -p -h -V). */
struct mw_service_opt {
	const char *long_name; /* "routes" */
	int short_name;        /* 's', or 0 for a long-only option */
	const char *arg_name;  /* "ADDRESS"; NULL = no argument */
	const char *help;      /* one line (more lines after \n, indented by the printer) */
};

/* What a daemon tells the skeleton about itself. */
struct mw_service_info {
	const char *name;                  /* "mailwarden-milter": messages and --version */
	const char *summary;               /* what it does, paragraphs for --help */
	const char *const *sections;       /* config sections --help lists (NULL-terminated) */
	const struct mw_service_opt *opts; /* its own options ({0}-terminated; may be NULL) */
	const char *more_help;             /* after the keys: signals, exit status (may be NULL) */
	/* its own option OPT (short_name, or MW_SERVICE_OPT_LONG(index) for a long-only one):
	   0 = go on, 1 = done (exit 0: --routes), -1 = usage error */
	int (*option)(void *ctx, int opt, const char *arg);
	void *ctx;
};

/* The common options, as given. */
struct mw_service {
	const struct mw_service_info *info;
	const char *config_path; /* -c (default MW_CONFIG_DEFAULT_PATH) */
	bool config_explicit;    /* -c given */
	bool foreground;         /* -f: do not detach */
	bool check;              /* -t/--check: check the configuration and exit */
	const char *pid_file;    /* -p FILE, NULL = none */
	int pid_fd;              /* the locked pid file, -1 */
	bool log_stderr;         /* log = stderr: detaching keeps descriptor 2 */
};

/* Reads the command line into S: --help and --version print and exit 0, a usage error
   prints the usage and exits 2. Also blocks the signals of mw_service_signal_* (before any
   thread or child exists: they inherit the mask) and ignores SIGPIPE. */
void mw_service_args(struct mw_service *s, const struct mw_service_info *info, int argc,
                     char **argv);

/* The --help text of INFO: usage, common and own options, the config keys of its sections. */
void mw_service_help(const struct mw_service_info *info, FILE *out);

/* The configuration S names (a reload uses the same call); NULL with error_r. */
mw_config *mw_service_config(const struct mw_service *s, mw_error *error_r);

/* When root: whether USER (the account the daemon drops to) can read the configuration
   again, as a SIGHUP reload will (tried in a child that drops to USER); -1 with the reason
   and the fix in error_r. Does nothing when not root. */
int mw_service_reload_check(const struct mw_service *s, const char *user, mw_error *error_r);

/* Opens and locks -p FILE (as root, before dropping privileges); nothing without -p. */
int mw_service_pidfile_open(struct mw_service *s, mw_error *error_r);

/* Detaches unless -f (fork, setsid, chdir /, stdin/stdout/stderr to /dev/null - stderr
   stays when log = stderr; KEEP_FD, if not NULL, is moved off descriptors 0-2 first and its
   new number returned), switches logging to what CFG says (log, log_level,
   syslog_facility: until here every message went to stderr), writes our pid into the pid
   file. */
int mw_service_detach(struct mw_service *s, const mw_config *cfg, int *keep_fd, mw_error *error_r);

/* At exit: the pid file removed (may fail once unprivileged) and closed. */
void mw_service_end(struct mw_service *s);

/* Signals, one meaning for every daemon: SIGHUP reload, SIGTERM/SIGINT stop, SIGCHLD a
   child (worker) ended. They stay blocked; a daemon takes them one of two ways. */
enum mw_service_event {
	MW_SERVICE_NONE,
	MW_SERVICE_RELOAD,
	MW_SERVICE_STOP,
	MW_SERVICE_CHILD,
};
/* waits up to TIMEOUT_MS (-1 = forever) for one: a thread or a master process */
enum mw_service_event mw_service_signal_wait(int timeout_ms);
/* a descriptor that becomes readable when one is pending (an event loop), -1 with error_r;
   mw_service_signal_read takes one from it (MW_SERVICE_NONE when none is left) */
int mw_service_signal_fd(mw_error *error_r);
enum mw_service_event mw_service_signal_read(int fd);

/* A prefork pool: N worker processes, each running RUN(ctx) (their accept loop on a socket
   they inherit) until told to stop. A worker that dies is replaced (at most one a second
   while they keep dying at once); SIGHUP calls RELOAD (may be NULL) and, when it returns
   0, replaces every worker gracefully; SIGTERM/SIGINT stop them: each finishes the request
   it is serving (up to GRACE_S seconds, then it is killed) and the pool returns. */
struct mw_service_pool {
	const struct mw_service *service;
	unsigned workers;
	unsigned grace_s;
	void (*run)(void *ctx); /* in the child; returns = the worker exits 0 */
	/* one helper process beside the workers (NULL = none): started with them, restarted
	   when it dies, replaced on a reload, stopped with them; it serves no request (the API's
	   form flusher). It takes SIGTERM like a worker (mw_service_worker_idle). */
	void (*helper)(void *ctx);
	int (*reload)(void *ctx, unsigned *workers_r); /* in the master: a new config */
	void *ctx;
};
int mw_service_pool_run(const struct mw_service_pool *pool, mw_error *error_r);

/* In a worker, around the blocking wait for the next request: mw_service_worker_idle(true)
   (a stop from the master then exits at once), mw_service_worker_idle(false) once a request
   came (a stop then waits until the worker is idle again). */
void mw_service_worker_idle(bool idle);

#endif
