/*
 * mw-service.c - the skeleton every mailwarden daemon runs in (milter, policyd, API): one
 * command line, one --help, configuration and logging, pid file, detaching, signals, and a
 * prefork pool of workers.
 *
 * Public: mw_service_args, mw_service_help, mw_service_config, mw_service_log_init,
 * mw_service_reload_check, mw_service_pidfile_open, mw_service_detach, mw_service_end,
 * mw_service_signal_wait, mw_service_signal_fd, mw_service_signal_read, mw_service_pool_run,
 * mw_service_worker_idle.
 *
 * Options (each defined here once, the same for every daemon): -c/--config FILE,
 * -f/--foreground, -t/--check, -p/--pid-file FILE, -h/--help, -V/--version; a daemon adds
 * its own through mw_service_info.opts. --help ends with the configuration keys of the
 * daemon's sections, generated from lib/mw-config-keys.def. Until mw_service_detach every
 * message goes to stderr (a start-up error is seen by whoever started the daemon); then to
 * the configured log.
 *
 * Signals: SIGHUP, SIGTERM, SIGINT and SIGCHLD are blocked in mw_service_args, before any
 * thread or child exists, so every thread inherits the mask and none of them is ever killed
 * by one; the daemon takes them where it wants them: sigtimedwait in a thread or a master
 * (mw_service_signal_wait), or a signalfd in an event loop (mw_service_signal_fd). One
 * meaning everywhere: HUP reload, TERM/INT stop, CHLD a worker ended.
 *
 * The pool (Apache's prefork, Postfix's master on a small scale): the master forks N workers
 * that inherit the listening socket and each accept on it (the kernel hands a connection to
 * one waiting worker). A worker keeps SIGTERM blocked while it serves a request and unblocks
 * it only while waiting for the next one (mw_service_worker_idle), with a handler that
 * exits: so a stop or a reload never cuts a request, and a worker waiting in accept() goes
 * at once. The master replaces a worker that dies (a crash is logged with its status),
 * throttled to one a second when they keep dying right after their start; SIGHUP reloads in
 * the master and replaces every worker gracefully; SIGTERM stops them all, SIGKILL after
 * the grace period.
 *
 * Diagnostics: start-up errors return -1 with error_r; mw_service_args exits 0 after
 * --help/--version and 2 on a usage error (message and usage on stderr).
 */
#include "mw-build.h"
#include "mw-service.h"
#include "mw-daemon.h"
#include "mw-log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MW_SERVICE_MAX_OPTS 16

/* The common options: the one place each is defined. */
static const struct mw_service_opt common_opts[] = {
    {"config", 'c', "FILE",
     "configuration file (default " MW_CONFIG_DEFAULT_PATH ";\nthe conf.d/*.conf beside it "
     "follow in name order)"},
    {"foreground", 'f', NULL, "stay in the foreground (default: detach and run as a daemon)"},
    {"check", 't', NULL, "check the configuration (and what the daemon opens), then exit"},
    {"pid-file", 'p', "FILE",
     "write the process id to FILE, opened and locked before privileges\nare dropped "
     "(a second instance is refused); default: none"},
    {"help", 'h', NULL, "this text"},
    {"version", 'V', NULL, "print the version"},
    {NULL, 0, NULL, NULL},
};

static sigset_t service_sigs;

/* block_signals - HUP, TERM, INT, CHLD blocked for good; SIGPIPE ignored */
static void block_signals(void)
{
	(void)sigemptyset(&service_sigs);
	(void)sigaddset(&service_sigs, SIGHUP);
	(void)sigaddset(&service_sigs, SIGTERM);
	(void)sigaddset(&service_sigs, SIGINT);
	(void)sigaddset(&service_sigs, SIGCHLD);
	(void)sigprocmask(SIG_BLOCK, &service_sigs, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
}

/* opt_count - entries of an option list */
static size_t opt_count(const struct mw_service_opt *o)
{
	size_t n = 0;
	while (o != NULL && o[n].long_name != NULL)
		n++;
	return n;
}

/* print_opts - "  -x, --long ARG  help" lines */
static void print_opts(FILE *out, const struct mw_service_opt *o)
{
	size_t i;
	for (i = 0; o != NULL && o[i].long_name != NULL; i++) {
		char head[64];
		const char *h = o[i].help, *nl;
		int n;
		if (o[i].short_name != 0)
			n = snprintf(head, sizeof(head), "-%c, --%s%s%s", o[i].short_name,
			             o[i].long_name, o[i].arg_name != NULL ? " " : "",
			             o[i].arg_name != NULL ? o[i].arg_name : "");
		else
			n = snprintf(head, sizeof(head), "    --%s%s%s", o[i].long_name,
			             o[i].arg_name != NULL ? " " : "",
			             o[i].arg_name != NULL ? o[i].arg_name : "");
		if (n < 0 || (size_t)n >= sizeof(head))
			mw_panic("option %s: name too long", o[i].long_name);
		fprintf(out, "  %-24s", head);
		if (n > 24)
			fprintf(out, "\n  %-24s", "");
		for (;;) {
			nl = strchr(h, '\n');
			if (nl == NULL) {
				fprintf(out, "%s\n", h);
				break;
			}
			fprintf(out, "%.*s\n  %-24s", (int)(nl - h), h, "");
			h = nl + 1;
		}
	}
}

/* mw_service_help - usage, options and config keys of a daemon */
void mw_service_help(const struct mw_service_info *info, FILE *out)
{
	size_t i;
	fprintf(out, "usage: %s [-f] [-t] [-c FILE] [-p FILE]", info->name);
	for (i = 0; i < opt_count(info->opts); i++) {
		const struct mw_service_opt *o = &info->opts[i];
		if (o->short_name != 0)
			fprintf(out, " [-%c%s%s]", o->short_name, o->arg_name != NULL ? " " : "",
			        o->arg_name != NULL ? o->arg_name : "");
		else
			fprintf(out, " [--%s%s%s]", o->long_name, o->arg_name != NULL ? " " : "",
			        o->arg_name != NULL ? o->arg_name : "");
	}
	fprintf(out, "\n       %s -h | -V\n\n%s\nOPTIONS\n", info->name, info->summary);
	print_opts(out, common_opts);
	print_opts(out, info->opts);
	fputs("\nSIGNALS\n  SIGHUP reloads the configuration; SIGTERM and SIGINT stop the daemon "
	      "once the\n  work in hand is done (see EXIT STATUS and the man page).\n",
	      out);
	if (info->more_help != NULL)
		fprintf(out, "\n%s", info->more_help);
	fputs("\nCONFIGURATION KEYS (the sections this daemon reads; mailwardenctl config keys "
	      "lists all)\n",
	      out);
	mw_config_describe_sections(out, false, info->sections);
}

/* usage_error - a message, the usage line, exit 2 */
static void usage_error(const struct mw_service_info *info, const char *msg, const char *arg)
{
	fprintf(stderr, "%s: %s%s%s\nTry '%s --help'.\n", info->name, msg, arg != NULL ? " " : "",
	        arg != NULL ? arg : "", info->name);
	exit(2);
}

/* add_opt - one getopt_long entry and its short letters */
static void add_opt(const struct mw_service_opt *o, int val, struct option *lo, size_t *nlo,
                    char *shorts, size_t *nshort)
{
	lo[*nlo].name = o->long_name;
	lo[*nlo].has_arg = o->arg_name != NULL ? required_argument : no_argument;
	lo[*nlo].flag = NULL;
	lo[*nlo].val = val;
	(*nlo)++;
	if (o->short_name != 0) {
		shorts[(*nshort)++] = (char)o->short_name;
		if (o->arg_name != NULL)
			shorts[(*nshort)++] = ':';
	}
}

/* mw_service_args - the command line */
void mw_service_args(struct mw_service *s, const struct mw_service_info *info, int argc,
                     char **argv)
{
	struct option lo[2 * MW_SERVICE_MAX_OPTS + 1];
	char shorts[4 * MW_SERVICE_MAX_OPTS + 2];
	size_t i, nlo = 0, nshort = 0, own = opt_count(info->opts);
	int c, r;

	memset(s, 0, sizeof(*s));
	s->info = info;
	s->config_path = MW_CONFIG_DEFAULT_PATH;
	s->pid_fd = -1;
	/* until mw_service_detach every message goes to stderr: start-up errors are seen */
	(void)mw_log_init(info->name, MW_LOG_TARGET_STDERR, "mail", MW_LOG_INFO, NULL);
	block_signals();
	if (own + opt_count(common_opts) > MW_SERVICE_MAX_OPTS)
		mw_panic("%s: too many options", info->name);
	shorts[nshort++] = ':';
	for (i = 0; i < opt_count(common_opts); i++)
		add_opt(&common_opts[i], common_opts[i].short_name, lo, &nlo, shorts, &nshort);
	for (i = 0; i < own; i++)
		add_opt(&info->opts[i],
		        info->opts[i].short_name != 0 ? info->opts[i].short_name
		                                      : MW_SERVICE_OPT_LONG((int)i),
		        lo, &nlo, shorts, &nshort);
	shorts[nshort] = '\0';
	memset(&lo[nlo], 0, sizeof(lo[nlo]));
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			s->config_path = optarg;
			s->config_explicit = true;
			break;
		case 'f':
			s->foreground = true;
			break;
		case 't':
			s->check = true;
			break;
		case 'p':
			s->pid_file = optarg;
			break;
		case 'h':
			mw_service_help(info, stdout);
			exit(0);
		case 'V':
			printf("%s %s\n", info->name, PACKAGE_VERSION);
			exit(0);
		case ':':
			usage_error(info, "option needs an argument:", argv[optind - 1]);
			break;
		case '?':
			usage_error(info, "unknown option", argv[optind - 1]);
			break;
		default:
			r = info->option != NULL ? info->option(info->ctx, c, optarg) : -1;
			if (r > 0)
				exit(0);
			if (r < 0)
				usage_error(info, "bad option", argv[optind - 1]);
		}
	}
	if (optind != argc)
		usage_error(info, "unexpected argument", argv[optind]);
}

/* mw_service_config - the configuration the command line names */
mw_config *mw_service_config(const struct mw_service *s, mw_error *error_r)
{
	return mw_config_load(s->config_path, !s->config_explicit, error_r);
}

/* mw_service_reload_check - can USER read the configuration again (a SIGHUP reload)? */
int mw_service_reload_check(const struct mw_service *s, const char *user, mw_error *error_r)
{
	char msg[sizeof(error_r->msg)];
	int pfd[2], status = 0;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	/* not root: nothing to drop; no such user: the daemon's own drop says so */
	if (geteuid() != 0 || getpwnam(user) == NULL)
		return 0;
	if (pipe(pfd) < 0) {
		mw_error_set(error_r, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		mw_error_set(error_r, "fork: %s", strerror(errno));
		(void)close(pfd[0]);
		(void)close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		/* the child: become USER and load the configuration as a reload would */
		mw_error err = {{0}};
		mw_config *cfg = NULL;
		(void)close(pfd[0]);
		if (mw_daemon_drop_privileges(user, NULL, &err) == 0)
			cfg = mw_service_config(s, &err);
		if (cfg == NULL) {
			(void)!write(pfd[1], err.msg, strnlen(err.msg, sizeof(err.msg)));
			_exit(1);
		}
		_exit(0);
	}
	(void)close(pfd[1]);
	while (got < sizeof(msg) - 1) {
		n = read(pfd[0], msg + got, sizeof(msg) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	msg[got] = '\0';
	(void)close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	mw_error_set(error_r,
	             "as user %s (config key user) the configuration cannot be read again, so a "
	             "SIGHUP reload would fail: %s; make %s and its directory readable by that "
	             "user's group (e.g. /etc/mailwarden root:dovecot 0750 and its files 0640, the "
	             "user in group dovecot: docs/admin-guide.md section 1)",
	             user, got > 0 ? msg : "the check ended abnormally", s->config_path);
	return -1;
}

/* log_init - logging as configured */
static int log_init(struct mw_service *s, const mw_config *cfg, mw_error *error_r)
{
	enum mw_log_level level = MW_LOG_INFO;
	(void)mw_log_level_parse(mw_config_str(cfg, MWK_LOG_LEVEL), &level);
	return mw_log_init(s->info->name,
	                   s->log_stderr ? MW_LOG_TARGET_STDERR : MW_LOG_TARGET_SYSLOG,
	                   mw_config_str(cfg, MWK_SYSLOG_FACILITY), level, error_r);
}

/* mw_service_pidfile_open - -p FILE opened and locked */
int mw_service_pidfile_open(struct mw_service *s, mw_error *error_r)
{
	if (s->pid_file == NULL)
		return 0;
	return mw_daemon_pidfile_open(s->pid_file, &s->pid_fd, error_r);
}

/* mw_service_detach - into the background unless -f; the configured logging; the pid file */
int mw_service_detach(struct mw_service *s, const mw_config *cfg, int *keep_fd, mw_error *error_r)
{
	pid_t pid;
	int fd;

	s->log_stderr = strcmp(mw_config_str(cfg, MWK_LOG), "stderr") == 0;
	if (!s->foreground) {
		if (keep_fd != NULL && *keep_fd >= 0 && *keep_fd <= STDERR_FILENO) {
			fd = fcntl(*keep_fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
			if (fd < 0) {
				mw_error_set(error_r, "dup: %s", strerror(errno));
				return -1;
			}
			(void)close(*keep_fd);
			*keep_fd = fd;
		}
		pid = fork();
		if (pid < 0) {
			mw_error_set(error_r, "fork: %s", strerror(errno));
			return -1;
		}
		if (pid > 0)
			_exit(0);
		if (setsid() < 0 || chdir("/") < 0) {
			mw_error_set(error_r, "detaching: %s", strerror(errno));
			return -1;
		}
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			mw_error_set(error_r, "/dev/null: %s", strerror(errno));
			return -1;
		}
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		/* stderr stays when the log goes there (log = stderr in a test) */
		if (!s->log_stderr)
			(void)dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			(void)close(fd);
	}
	if (log_init(s, cfg, error_r) < 0)
		return -1;
	/* the descriptor stays open: its lock keeps a second instance out */
	if (s->pid_fd >= 0 && mw_daemon_pidfile_write(s->pid_fd, (long)getpid(), error_r) < 0)
		return -1;
	return 0;
}

/* mw_service_end - the pid file removed and closed */
void mw_service_end(struct mw_service *s)
{
	if (s->pid_file != NULL && s->pid_fd >= 0)
		(void)unlink(s->pid_file); /* may fail once unprivileged: documented */
	if (s->pid_fd >= 0)
		(void)close(s->pid_fd);
	s->pid_fd = -1;
}

/* event_of - the meaning of a signal number */
static enum mw_service_event event_of(int sig)
{
	switch (sig) {
	case SIGHUP:
		return MW_SERVICE_RELOAD;
	case SIGTERM:
	case SIGINT:
		return MW_SERVICE_STOP;
	case SIGCHLD:
		return MW_SERVICE_CHILD;
	default:
		return MW_SERVICE_NONE;
	}
}

/* mw_service_signal_wait - the next signal, or NONE after TIMEOUT_MS */
enum mw_service_event mw_service_signal_wait(int timeout_ms)
{
	struct timespec ts;
	int sig;

	if (timeout_ms < 0) {
		sig = sigwaitinfo(&service_sigs, NULL);
	} else {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		sig = sigtimedwait(&service_sigs, NULL, &ts);
	}
	return sig < 0 ? MW_SERVICE_NONE : event_of(sig);
}

/* mw_service_signal_fd - a signalfd of the blocked signals, for an event loop */
int mw_service_signal_fd(mw_error *error_r)
{
	int fd = signalfd(-1, &service_sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		mw_error_set(error_r, "signalfd: %s", strerror(errno));
	return fd;
}

/* mw_service_signal_read - one pending signal from the signalfd */
enum mw_service_event mw_service_signal_read(int fd)
{
	struct signalfd_siginfo si;
	ssize_t n;
	do
		n = read(fd, &si, sizeof(si));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(si))
		return MW_SERVICE_NONE;
	return event_of((int)si.ssi_signo);
}

/* ------------------------------------------------------------------------------------- */
/* the prefork pool */

/* worker_term - SIGTERM in a worker; only ever unblocked while it waits for a request */
static void worker_term(int sig)
{
	(void)sig;
	_exit(0);
}

/* mw_service_worker_idle - SIGTERM may end us now (waiting) or must wait (serving) */
void mw_service_worker_idle(bool idle)
{
	sigset_t term;
	(void)sigemptyset(&term);
	(void)sigaddset(&term, SIGTERM);
	(void)sigprocmask(idle ? SIG_UNBLOCK : SIG_BLOCK, &term, NULL);
}

struct pool_worker {
	pid_t pid;      /* 0 = a free slot to fill */
	time_t started; /* monotonic seconds */
	unsigned gen;   /* the generation (reload count) it was started in */
};

/* worker_start - fork one worker (or, with helper, the helper) into slot W */
static int worker_start(const struct mw_service_pool *pool, struct pool_worker *w, unsigned gen,
                        bool helper)
{
	struct sigaction sa;
	pid_t pid = fork();
	if (pid < 0) {
		mw_error_log("event=worker_fork_failed error=\"%s\"", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = worker_term;
		(void)sigemptyset(&sa.sa_mask);
		(void)sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: accept() is interrupted */
		(void)signal(SIGINT, SIG_IGN);       /* ^C reaches the group: the master decides */
		(void)signal(SIGHUP, SIG_IGN);
		if (helper)
			pool->helper(pool->ctx);
		else
			pool->run(pool->ctx);
		exit(0);
	}
	w->pid = pid;
	w->started = (time_t)mw_mono_s();
	w->gen = gen;
	return 0;
}

/* reap - collect every ended child; a worker of generation GEN that ended unasked is
   logged; the number of those that ended within a second of their start */
static unsigned reap(struct pool_worker *ws, size_t n, unsigned gen, bool stopping,
                     struct pool_worker *helper)
{
	unsigned early = 0;
	int status;
	pid_t pid;
	size_t i;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (helper->pid == pid) {
			if (helper->gen == gen && !stopping && WIFSIGNALED(status))
				mw_error_log("event=helper_died pid=%ld signal=%d", (long)pid,
				             WTERMSIG(status));
			else if (helper->gen == gen && !stopping)
				mw_warn("event=helper_exited pid=%ld status=%d", (long)pid,
				        WEXITSTATUS(status));
			helper->pid = 0;
			continue;
		}
		for (i = 0; i < n; i++)
			if (ws[i].pid == pid)
				break;
		if (i == n)
			continue;
		if (ws[i].gen == gen && !stopping) {
			if ((time_t)mw_mono_s() - ws[i].started <= 1)
				early++;
			if (WIFSIGNALED(status))
				mw_error_log("event=worker_died pid=%ld signal=%d", (long)pid,
				             WTERMSIG(status));
			else
				mw_warn("event=worker_exited pid=%ld status=%d", (long)pid,
				        WEXITSTATUS(status));
		}
		ws[i].pid = 0;
	}
	return early;
}

/* live - workers still running */
static size_t live(const struct pool_worker *ws, size_t n)
{
	size_t i, k = 0;
	for (i = 0; i < n; i++)
		if (ws[i].pid > 0)
			k++;
	return k;
}

/* signal_gen - send SIG to every worker (of generation GEN, or all when ALL) */
static void signal_gen(struct pool_worker *ws, size_t n, unsigned gen, bool all, int sig)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (ws[i].pid > 0 && (all || ws[i].gen == gen))
			(void)kill(ws[i].pid, sig);
}

/* fill - start workers of generation GEN until WANT run; not faster than one a second
   when the last ones died right after their start */
static void fill(const struct mw_service_pool *pool, struct pool_worker **ws, size_t *n,
                 unsigned gen, unsigned want, time_t *hold_until)
{
	size_t i, have = 0;
	for (i = 0; i < *n; i++)
		if ((*ws)[i].pid > 0 && (*ws)[i].gen == gen)
			have++;
	while (have < want) {
		if ((time_t)mw_mono_s() < *hold_until)
			return;
		for (i = 0; i < *n && (*ws)[i].pid > 0; i++)
			;
		if (i == *n) {
			*ws = mw_realloc(*ws, (*n + 1) * sizeof(**ws));
			memset(&(*ws)[*n], 0, sizeof(**ws));
			(*n)++;
		}
		if (worker_start(pool, &(*ws)[i], gen, false) < 0) {
			*hold_until = (time_t)mw_mono_s() + 1;
			return;
		}
		have++;
	}
}

/* mw_service_pool_run - master loop of a prefork pool; returns after a stop */
int mw_service_pool_run(const struct mw_service_pool *pool, mw_error *error_r)
{
	struct pool_worker *ws = NULL;
	size_t n = 0;
	unsigned gen = 0, want = pool->workers > 0 ? pool->workers : 1, died;
	time_t hold_until = 0, deadline;
	enum mw_service_event ev;

	struct pool_worker helper = {0, 0, 0};
	fill(pool, &ws, &n, gen, want, &hold_until);
	if (pool->helper != NULL)
		(void)worker_start(pool, &helper, gen, true);
	if (live(ws, n) == 0) {
		free(ws);
		mw_error_set(error_r, "no worker could be started");
		return -1;
	}
	mw_info("event=pool_start workers=%u pid=%ld", want, (long)getpid());
	for (;;) {
		ev = mw_service_signal_wait(1000);
		if (ev == MW_SERVICE_STOP)
			break;
		if (ev == MW_SERVICE_RELOAD) {
			unsigned w = want;
			if (pool->reload != NULL && pool->reload(pool->ctx, &w) < 0)
				continue; /* the reload logged why; the workers stay */
			/* the old generation finishes what it serves and goes */
			signal_gen(ws, n, gen, false, SIGTERM);
			signal_gen(&helper, 1, gen, false, SIGTERM);
			gen++;
			want = w > 0 ? w : 1;
			hold_until = 0;
			mw_info("event=reload status=ok workers=%u", want);
		}
		died = reap(ws, n, gen, false, &helper);
		if (died > 0) /* dying right after the start: a crash loop must not fork-loop */
			hold_until = (time_t)mw_mono_s() + 1;
		fill(pool, &ws, &n, gen, want, &hold_until);
		/* one helper at a time: a replaced one is restarted once it has ended */
		if (pool->helper != NULL && helper.pid == 0 && (time_t)mw_mono_s() >= hold_until)
			(void)worker_start(pool, &helper, gen, true);
	}
	mw_info("event=stop workers=%zu", live(ws, n));
	signal_gen(ws, n, gen, true, SIGTERM);
	signal_gen(&helper, 1, gen, true, SIGTERM);
	deadline = (time_t)mw_mono_s() + (time_t)pool->grace_s;
	while (live(ws, n) + live(&helper, 1) > 0) {
		(void)reap(ws, n, gen, true, &helper);
		if (live(ws, n) + live(&helper, 1) == 0)
			break;
		if ((time_t)mw_mono_s() >= deadline) {
			mw_warn("event=stop workers_killed=%zu", live(ws, n) + live(&helper, 1));
			signal_gen(ws, n, gen, true, SIGKILL);
			signal_gen(&helper, 1, gen, true, SIGKILL);
			deadline = (time_t)mw_mono_s() + 5;
		}
		(void)mw_service_signal_wait(200);
	}
	free(ws);
	return 0;
}
