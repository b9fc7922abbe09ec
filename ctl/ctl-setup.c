/*
 * ctl-setup.c - mailwardenctl setup postfix|dovecot|nginx [--apply] and doctor (issue 13).
 *
 * setup prints the exact lines this host needs, computed from the mailwarden configuration
 * (socket paths as Postfix sees them from its queue directory, the store path) and from what
 * Postfix, Dovecot and nginx already have. --apply applies them: Postfix through
 * `postconf -c DIR -e` after copying main.cf to main.cf.mailwarden-backup-TIME; Dovecot and
 * nginx as files of their own (conf.d/90-mailwarden.conf and the sql files, the nginx
 * snippet). Nothing is applied when what is there conflicts (a scalar set to another value,
 * a file of ours with other content): each conflict is one line on stderr, exit 1. The
 * Postfix lines that make Postfix defer mail until the milter and policy daemon answer are
 * applied only when both sockets answer (or with --yes).
 *
 * doctor checks a running host end to end and prints one line per finding, "ok: ..." or
 * "problem: ... (fix: ...)"; exit 1 when there is a problem: the configuration and the
 * daemons' user, the milter, policy and control sockets, Postfix and Dovecot configured to
 * use them, the store's permissions and the master key's, the resolver, the DKIM keys
 * published in DNS, and each daemon serving from a fallback (issue 17): the policy daemon
 * answers "health" on its control socket; the milter has no control socket, so its
 * metrics_file (the mailwarden_degraded gauges, read by lib/mw-degraded.c's one parser) is
 * what tells, and a file not rewritten for three metrics_interval is reported as unknown.
 *
 * Public: cmd_setup_postfix, cmd_setup_dovecot, cmd_setup_nginx, cmd_doctor.
 * Diagnostics: ctl_err; external programs' output is shown when they fail.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-degraded.h"
#include "mw-dns.h"
#include "mw-pdctl.h"
#include "mw-service.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SETUP_OUT_MAX  (1024 * 1024) /* the most output read from postconf/doveconf */
#define SETUP_FILE_MAX (256 * 1024)  /* the largest file read (samples, main.cf) */
#define SETUP_WANT_MAX 16

#ifndef MW_DOCDIR
#define MW_DOCDIR "/usr/share/doc/mailwarden"
#endif
#ifndef MW_WEBDIR
#define MW_WEBDIR "/usr/share/mailwarden/web"
#endif

/* ---- helpers ----------------------------------------------------------------------------- */

/* run - ARGV's exit status (-1: not run) and its standard output (and error) in out */
static int run(char *const argv[], mw_str *out)
{
	int pfd[2], status = 0;
	char buf[4096];
	ssize_t n;
	pid_t pid;

	mw_str_reset(out);
	if (pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		(void)close(pfd[0]);
		(void)close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			(void)dup2(devnull, STDIN_FILENO);
		(void)dup2(pfd[1], STDOUT_FILENO);
		(void)dup2(pfd[1], STDERR_FILENO);
		(void)close(pfd[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	(void)close(pfd[1]);
	for (;;) {
		n = read(pfd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		(void)mw_str_append(out, buf, (size_t)n); /* over the limit: the rest is dropped */
	}
	(void)close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* chomp - the text without trailing blanks and newlines */
static const char *chomp(mw_str *s)
{
	size_t n = s->len;
	while (n > 0 && (s->buf[n - 1] == '\n' || s->buf[n - 1] == ' '))
		n--;
	s->len = n;
	if (s->buf != NULL)
		s->buf[n] = '\0';
	return mw_str_c(s);
}

/* one_line - the text trimmed and with its line breaks as blanks (one finding, one line) */
static const char *one_line(mw_str *s)
{
	size_t i;
	(void)chomp(s);
	for (i = 0; i < s->len; i++)
		if (s->buf[i] == '\n' || s->buf[i] == '\r')
			s->buf[i] = ' ';
	return mw_str_c(s);
}

/* read_text - the whole of regular file PATH into out; -1 (errno) when it cannot be read */
static int read_text(const char *path, mw_str *out)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	mw_str_reset(out);
	if (fd < 0)
		return -1;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (mw_str_append(out, buf, (size_t)n) < 0) {
			(void)close(fd);
			errno = EFBIG;
			return -1;
		}
	}
	(void)close(fd);
	return n < 0 ? -1 : 0;
}

/* sample_with_line - the sample file PATH (read into SCRATCH) appended to OUT, each line
   that starts with PREFIX replaced by the line REPLACEMENT; -1 (said) when unreadable */
static int sample_with_line(const char *path, mw_str *scratch, const char *prefix,
                            const char *replacement, mw_str *out)
{
	const char *p, *line;
	size_t plen = strlen(prefix);
	if (read_text(path, scratch) < 0) {
		ctl_err("%s: %s (--examples DIR names where the samples are)", path,
		        strerror(errno));
		return -1;
	}
	for (p = mw_str_c(scratch); *p != '\0'; p = line) {
		const char *nl = strchr(p, '\n');
		line = nl != NULL ? nl + 1 : p + strlen(p);
		if (strncmp(p, prefix, plen) == 0)
			(void)mw_str_appendf(out, "%s\n", replacement);
		else
			(void)mw_str_append(out, p, (size_t)(line - p));
	}
	return 0;
}

/* write_new - PATH with TEXT, mode MODE and group GID (-1: unchanged); refuses to replace */
static int write_new(const char *path, const char *text, mode_t mode, gid_t gid)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		ctl_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (mw_write_all(fd, text, strlen(text)) < 0) {
		ctl_err("%s: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	if (fchmod(fd, mode) < 0 || (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0)) {
		ctl_err("%s: %s", path, strerror(errno));
		(void)close(fd);
		return -1;
	}
	return close(fd);
}

/* copy_backup - PATH copied to PATH.mailwarden-backup-TIME (never overwriting); the name */
static int copy_backup(const char *path, char *name, size_t size)
{
	struct stat st;
	mw_str text;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int ret;

	mw_str_init(&text, SETUP_FILE_MAX);
	if (read_text(path, &text) < 0 || stat(path, &st) < 0) {
		ctl_err("%s: %s", path, strerror(errno));
		mw_str_free(&text);
		return -1;
	}
	(void)gmtime_r(&now, &tm);
	(void)strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if ((size_t)snprintf(name, size, "%s.mailwarden-backup-%s", path, stamp) >= size) {
		ctl_err("%s: path too long for a backup name", path);
		mw_str_free(&text);
		return -1;
	}
	ret = write_new(name, mw_str_c(&text), st.st_mode & 07777, st.st_gid);
	mw_str_free(&text);
	return ret;
}

/* socket_answers - whether a daemon listens at SPEC (unix:/path, /path, inet:PORT@HOST) */
static bool socket_answers(const char *spec, char *why, size_t size)
{
	struct sockaddr_un sun;
	int fd, ok;
	const char *path = spec;

	if (strncmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	else if (strncmp(spec, "local:", 6) == 0)
		path = spec + 6;
	else if (strncmp(spec, "inet", 4) == 0) {
		/* inet:PORT@HOST: connect with the system's resolver (loopback in practice) */
		char host[256], port[16];
		const char *colon = strchr(spec, ':'), *at;
		struct addrinfo hints, *res = NULL;
		at = colon != NULL ? strchr(colon, '@') : NULL;
		if (colon == NULL || at == NULL || (size_t)(at - colon - 1) >= sizeof(port) ||
		    mw_strlcpy(host, at + 1, sizeof(host)) < 0) {
			(void)snprintf(why, size, "cannot read the address %s", spec);
			return false;
		}
		memcpy(port, colon + 1, (size_t)(at - colon - 1));
		port[at - colon - 1] = '\0';
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
			(void)snprintf(why, size, "cannot resolve the host");
			return false;
		}
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
		if (!ok)
			(void)snprintf(why, size, "%s", strerror(errno));
		freeaddrinfo(res);
		if (fd >= 0)
			(void)close(fd);
		return ok;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (mw_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		(void)snprintf(why, size, "path too long");
		return false;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		(void)snprintf(why, size, "%s", strerror(errno));
		return false;
	}
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	if (!ok)
		(void)snprintf(why, size, "%s", strerror(errno));
	(void)close(fd);
	return ok;
}

/* postfix_name - how main.cf names daemon socket SPEC: unix:REL below the queue directory
   (chrooted smtpd or not), unix:/abs elsewhere (*outside set), inet:HOST:PORT */
static void postfix_name(const char *spec, const char *queue_dir, char *out, size_t size,
                         bool *outside)
{
	size_t ql = strlen(queue_dir);
	const char *path = spec;
	*outside = false;
	if (strncmp(spec, "inet:", 5) == 0) {
		const char *at = strchr(spec, '@');
		if (at != NULL)
			(void)snprintf(out, size, "inet:%s:%.*s", at + 1, (int)(at - spec - 5),
			               spec + 5);
		else
			(void)snprintf(out, size, "inet:127.0.0.1:%s", spec + 5);
		return;
	}
	if (strncmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	if (ql > 0 && strncmp(path, queue_dir, ql) == 0 && path[ql] == '/') {
		(void)snprintf(out, size, "unix:%s", path + ql + 1);
		return;
	}
	*outside = true;
	(void)snprintf(out, size, "unix:%s", path);
}

/* ---- setup postfix --------------------------------------------------------------------- */

/* WANT_SCALAR: needed, another value set in main.cf is a conflict; WANT_LIST: an item of a
   list; WANT_ADVISED: set only over Postfix's default, a value main.cf sets is kept */
enum want_kind { WANT_SCALAR, WANT_LIST, WANT_ADVISED };

struct want {
	const char *key;
	char value[1024];
	enum want_kind kind;
	bool daemons;          /* defers mail until the daemons answer */
	const char *before[3]; /* WANT_LIST: insert before the first of these (else append) */
	char result[4096];     /* the value to set ("" = nothing to do) */
	char kept[256];        /* WANT_ADVISED: the value main.cf sets, kept */
};

/* postconf_get - KEY's value (explicit: only what main.cf sets, "" when it does not) */
static int postconf_get(const char *dir, const char *key, bool explicit, mw_str *out)
{
	char *argv[] = {"postconf", "-c", (char *)dir, "-h", (char *)key, NULL, NULL};
	int st;
	if (explicit) {
		argv[3] = "-nh";
		argv[4] = (char *)key;
	}
	st = run(argv, out);
	if (st != 0) {
		ctl_err("postconf -c %s %s: %s", dir, key,
		        st < 0 ? "cannot run (is Postfix installed?)" : chomp(out));
		return -1;
	}
	(void)chomp(out);
	return 0;
}

/* list_insert - CUR with ENTRY inserted before the first of BEFORE (else at the end) */
static void list_insert(const char *cur, const char *entry, const char *const *before, char *out,
                        size_t size)
{
	const char *at = NULL, *p;
	size_t i;
	for (i = 0; i < 3 && before[i] != NULL && at == NULL; i++) {
		size_t bl = strlen(before[i]);
		for (p = strstr(cur, before[i]); p != NULL; p = strstr(p + 1, before[i]))
			if ((p == cur || strchr(", \t", p[-1]) != NULL) &&
			    (p[bl] == '\0' || strchr(", \t", p[bl]) != NULL)) {
				at = p;
				break;
			}
	}
	while (*cur == ' ')
		cur++;
	if (*cur == '\0')
		(void)snprintf(out, size, "%s", entry);
	else if (at == NULL)
		(void)snprintf(out, size, "%s, %s", cur, entry);
	else
		(void)snprintf(out, size, "%.*s%s, %s", (int)(at - cur), cur, entry, at);
}

/* list_has - whether list text CUR holds ENTRY as an item */
static bool list_has(const char *cur, const char *entry)
{
	size_t el = strlen(entry);
	const char *p;
	for (p = strstr(cur, entry); p != NULL; p = strstr(p + 1, entry))
		if ((p == cur || strchr(", \t\n", p[-1]) != NULL) &&
		    (p[el] == '\0' || strchr(", \t\n", p[el]) != NULL))
			return true;
	return false;
}

/* cmd_setup_postfix - the main.cf lines for this host; --apply: postconf -e with a backup */
int cmd_setup_postfix(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct want w[SETUP_WANT_MAX];
	char milter[600], policy[600], why[256], backup[4096];
	const char *dir;
	bool outside_m, outside_p, daemons_up;
	size_t n = 0, i, changes = 0, conflicts = 0;
	mw_str cur, expl, qdir;
	int first, ret = EXIT_ERROR;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_APPLY, OPT_POSTFIX_DIR, OPT_YES);
	dir = o.postfix_dir;
	mw_str_init(&cur, SETUP_OUT_MAX);
	mw_str_init(&expl, SETUP_OUT_MAX);
	mw_str_init(&qdir, SETUP_OUT_MAX);
	if (postconf_get(dir, "queue_directory", false, &qdir) < 0)
		goto out;
	postfix_name(mw_config_str(ctl->cfg, MWK_MILTER_SOCKET), mw_str_c(&qdir), milter,
	             sizeof(milter), &outside_m);
	postfix_name(mw_config_str(ctl->cfg, MWK_PD_SOCKET), mw_str_c(&qdir), policy,
	             sizeof(policy), &outside_p);

#define WANT(k, kind_, d, ...)                                                                     \
	do {                                                                                       \
		memset(&w[n], 0, sizeof(w[n]));                                                    \
		w[n].key = k;                                                                      \
		w[n].kind = kind_;                                                                 \
		w[n].daemons = d;                                                                  \
		(void)snprintf(w[n].value, sizeof(w[n].value), __VA_ARGS__);                       \
		n++;                                                                               \
	} while (0)
	WANT("smtpd_sasl_auth_enable", WANT_SCALAR, false, "yes");
	WANT("smtpd_tls_auth_only", WANT_SCALAR, false, "yes");
	WANT("smtpd_sasl_type", WANT_SCALAR, false, "dovecot");
	WANT("smtpd_sasl_path", WANT_SCALAR, false, "private/auth");
	WANT("smtpd_sasl_security_options", WANT_SCALAR, false, "noanonymous");
	WANT("smtpd_relay_restrictions", WANT_LIST, false, "permit_sasl_authenticated");
	w[n - 1].before[0] = "reject_unauth_destination";
	w[n - 1].before[1] = "defer_unauth_destination";
	WANT("smtpd_recipient_restrictions", WANT_LIST, true, "check_policy_service %s", policy);
	w[n - 1].before[0] = "permit";
	WANT("smtpd_end_of_data_restrictions", WANT_LIST, true, "check_policy_service %s", policy);
	w[n - 1].before[0] = "permit";
	WANT("smtpd_policy_service_default_action", WANT_SCALAR, true,
	     "451 4.3.5 Server configuration problem");
	WANT("smtpd_milters", WANT_LIST, true, "%s", milter);
	WANT("non_smtpd_milters", WANT_SCALAR, true, "$smtpd_milters");
	WANT("milter_default_action", WANT_SCALAR, true, "tempfail");
	WANT("milter_protocol", WANT_SCALAR, true, "6");
	/* an smtpd started while Dovecot's auth socket is gone exits, and master then starts no
	   smtpd for service_throttle_time (60 s by default) after Dovecot is back; master-wide,
	   so only the default is replaced (docs/admin-guide.md section 5) */
	WANT("service_throttle_time", WANT_ADVISED, false, "5s");
#undef WANT

	for (i = 0; i < n; i++) {
		if (postconf_get(dir, w[i].key, false, &cur) < 0 ||
		    postconf_get(dir, w[i].key, true, &expl) < 0)
			goto out;
		if (w[i].kind != WANT_LIST) {
			if (strcmp(mw_str_c(&cur), w[i].value) == 0)
				continue;
			if (w[i].kind == WANT_ADVISED && expl.len > 0) {
				(void)snprintf(w[i].kept, sizeof(w[i].kept), "%s", mw_str_c(&expl));
				continue;
			}
			if (expl.len > 0 && strcmp(mw_str_c(&expl), w[i].value) != 0) {
				ctl_err("conflict: %s = %s in %s/main.cf; mailwarden needs %s = %s",
				        w[i].key, mw_str_c(&expl), dir, w[i].key, w[i].value);
				conflicts++;
				continue;
			}
			(void)mw_strlcpy(w[i].result, w[i].value, sizeof(w[i].result));
		} else {
			if (list_has(mw_str_c(&cur), w[i].value))
				continue;
			list_insert(mw_str_c(&cur), w[i].value, w[i].before, w[i].result,
			            sizeof(w[i].result));
		}
		changes++;
	}
	printf("# Postfix %s/main.cf for mailwarden (queue directory %s)\n", dir, mw_str_c(&qdir));
	if (outside_m || outside_p)
		printf(
		    "# warning: a socket outside the queue directory: a chrooted smtpd (Debian's "
		    "default) cannot reach it\n");
	for (i = 0; i < n; i++)
		if (w[i].result[0] != '\0')
			printf("%s = %s\n", w[i].key, w[i].result);
		else if (w[i].kept[0] != '\0')
			printf("# kept: %s = %s (main.cf sets it; mailwarden advises %s)\n",
			       w[i].key, w[i].kept, w[i].value);
		else
			printf("# already: %s has %s\n", w[i].key, w[i].value);
	if (conflicts > 0) {
		ctl_err("setup postfix: %zu conflicting settings: nothing %s", conflicts,
		        o.apply ? "applied" : "to apply until they are resolved");
		goto out;
	}
	daemons_up = socket_answers(mw_config_str(ctl->cfg, MWK_MILTER_SOCKET), why, sizeof(why)) &&
	             socket_answers(mw_config_str(ctl->cfg, MWK_PD_SOCKET), why, sizeof(why));
	if (!daemons_up)
		printf("# note: mailwarden-milter or mailwarden-policyd does not answer (%s): the "
		       "milter and policy lines make Postfix defer all mail until both do\n",
		       why);
	if (!o.apply) {
		ret = EXIT_OK;
		goto out;
	}
	if (changes == 0) {
		printf("postfix: nothing to change\n");
		ret = EXIT_OK;
		goto out;
	}
	if (!daemons_up && !o.yes) {
		ctl_err(
		    "setup postfix --apply: start mailwarden-milter and mailwarden-policyd first "
		    "(or add --yes to defer mail until they run)");
		goto out;
	}
	{
		char path[4096];
		char *args[SETUP_WANT_MAX + 5];
		char kv[SETUP_WANT_MAX][4700];
		size_t a = 0;
		mw_str outp;
		int st;
		(void)snprintf(path, sizeof(path), "%s/main.cf", dir);
		if (copy_backup(path, backup, sizeof(backup)) < 0)
			goto out;
		args[a++] = "postconf";
		args[a++] = "-c";
		args[a++] = (char *)dir;
		args[a++] = "-e";
		for (i = 0; i < n; i++)
			if (w[i].result[0] != '\0') {
				(void)snprintf(kv[i], sizeof(kv[i]), "%s=%s", w[i].key,
				               w[i].result);
				args[a++] = kv[i];
			}
		args[a] = NULL;
		mw_str_init(&outp, SETUP_OUT_MAX);
		st = run(args, &outp);
		if (st != 0) {
			ctl_err("postconf -e failed: %s (main.cf is as before, saved in %s)",
			        chomp(&outp), backup);
			mw_str_free(&outp);
			goto out;
		}
		mw_str_free(&outp);
		printf(
		    "postfix: %zu settings applied; the old main.cf is %s; run `postfix reload`\n",
		    changes, backup);
	}
	ret = EXIT_OK;
out:
	mw_str_free(&cur);
	mw_str_free(&expl);
	mw_str_free(&qdir);
	return ret;
}

/* ---- setup dovecot and nginx: files of our own ------------------------------------------- */

struct own_file {
	char path[4096];
	mw_str text;
	mode_t mode;
	gid_t gid;
	bool present; /* already there with this very text */
};

/* own_files_apply - print or write FILES: refuses when one exists with other content */
static int own_files_apply(struct own_file *f, size_t n, bool apply, const char *what,
                           const char *after)
{
	mw_str cur;
	size_t i, conflicts = 0, todo = 0;
	mw_str_init(&cur, SETUP_FILE_MAX);
	for (i = 0; i < n; i++) {
		if (read_text(f[i].path, &cur) == 0) {
			if (strcmp(mw_str_c(&cur), mw_str_c(&f[i].text)) == 0)
				f[i].present = true;
			else {
				ctl_err(
				    "conflict: %s exists with other content (move it away or merge "
				    "it by hand)",
				    f[i].path);
				conflicts++;
			}
		} else if (errno != ENOENT) {
			ctl_err("%s: %s", f[i].path, strerror(errno));
			conflicts++;
		} else
			todo++;
	}
	mw_str_free(&cur);
	for (i = 0; i < n; i++) {
		printf("# ---- %s%s\n", f[i].path, f[i].present ? " (already there)" : "");
		if (!f[i].present)
			fputs(mw_str_c(&f[i].text), stdout);
	}
	if (conflicts > 0) {
		ctl_err("setup %s: %zu conflicting files: nothing %s", what, conflicts,
		        apply ? "applied" : "to apply until they are resolved");
		return EXIT_ERROR;
	}
	if (!apply)
		return EXIT_OK;
	if (todo == 0) {
		printf("%s: nothing to change\n", what);
		return EXIT_OK;
	}
	for (i = 0; i < n; i++)
		if (!f[i].present &&
		    write_new(f[i].path, mw_str_c(&f[i].text), f[i].mode, f[i].gid) < 0)
			return EXIT_ERROR;
	printf("%s: %zu files written; %s\n", what, todo, after);
	return EXIT_OK;
}

/* sqlite_path - the file of a sqlite: store URL, NULL for another backend */
static const char *sqlite_path(const char *url)
{
	if (strncmp(url, "sqlite://", 9) == 0)
		return url + 8;
	if (strncmp(url, "sqlite:", 7) == 0)
		return url + 7;
	return NULL;
}

/* cmd_setup_dovecot - conf.d/90-mailwarden.conf and the sql files for this host */
int cmd_setup_dovecot(struct mw_ctl *ctl, int argc, char **argv)
{
	static const char *const sql[] = {"dovecot-sql-mailwarden.conf.ext",
	                                  "dovecot-sql-mailwarden-apppw.conf.ext",
	                                  "dovecot-sql-mailwarden-userdb.conf.ext"};
	struct own_file f[4];
	struct ctl_opts o;
	struct stat st;
	struct group *gr;
	const char *dir, *db;
	char store_dir[4096], group[64] = "dovecot", plugin[4096];
	mw_str sample, outp;
	size_t i;
	int first, ret = EXIT_ERROR;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_APPLY, OPT_DOVECOT_DIR,
	         OPT_EXAMPLES);
	dir = o.dovecot_dir;
	db = sqlite_path(mw_config_str(ctl->cfg, MWK_STORE));
	if (db == NULL) {
		ctl_err("setup dovecot: the samples are for the sqlite store; with %s write the "
		        "passdb/userdb queries by hand (docs/admin-guide.md)",
		        mw_config_str(ctl->cfg, MWK_STORE));
		return EXIT_ERROR;
	}
	/* the store directory's group is what the mail processes need to join */
	(void)mw_strlcpy(store_dir, db, sizeof(store_dir));
	if (strrchr(store_dir, '/') != NULL)
		*strrchr(store_dir, '/') = '\0';
	if (stat(store_dir, &st) == 0 && (gr = getgrgid(st.st_gid)) != NULL)
		(void)mw_strlcpy(group, gr->gr_name, sizeof(group));
	gr = getgrnam(group);

	memset(f, 0, sizeof(f));
	mw_str_init(&sample, SETUP_FILE_MAX);
	mw_str_init(&outp, SETUP_OUT_MAX);
	for (i = 0; i < 4; i++) {
		mw_str_init(&f[i].text, SETUP_FILE_MAX);
		f[i].mode = 0640;
		f[i].gid = gr != NULL ? gr->gr_gid : (gid_t)-1;
	}
	for (i = 0; i < 3; i++) {
		char path[4096];
		char repl[4200];
		(void)snprintf(path, sizeof(path), "%s/%s", o.examples, sql[i]);
		/* the sample with this host's store in its connect line */
		if ((size_t)snprintf(repl, sizeof(repl), "connect = %s", db) >= sizeof(repl)) {
			ctl_err("setup dovecot: the store path is too long");
			goto out;
		}
		if (sample_with_line(path, &sample, "connect = ", repl, &f[i + 1].text) < 0)
			goto out;
		(void)snprintf(f[i + 1].path, sizeof(f[i + 1].path), "%s/%s", dir, sql[i]);
	}
	(void)snprintf(f[0].path, sizeof(f[0].path), "%s/conf.d/90-mailwarden.conf", dir);
	f[0].mode = 0644;
	f[0].gid = (gid_t)-1;
	{
		char *args[] = {"doveconf", "-c", NULL, "-h", "mail_plugin_dir", NULL};
		char conf[4096];
		(void)snprintf(conf, sizeof(conf), "%s/dovecot.conf", dir);
		args[2] = conf;
		plugin[0] = '\0';
		if (run(args, &outp) == 0)
			(void)snprintf(plugin, sizeof(plugin), "%s/lib90_mailwarden_plugin.so",
			               chomp(&outp));
	}
	(void)mw_str_appendf(
	    &f[0].text,
	    "# mailwarden: written by mailwardenctl setup dovecot (docs/admin-guide.md, section "
	    "4)\n"
	    "auth_mechanisms = plain login\n"
	    "auth_username_format = %%Lu\n"
	    "passdb {\n  driver = sql\n  args = %s\n}\n"
	    "passdb {\n  driver = sql\n  args = %s\n}\n"
	    "userdb {\n  driver = sql\n  args = %s\n"
	    "  default_fields = uid=vmail gid=vmail home=/var/vmail/%%Lu\n}\n"
	    "service auth-worker {\n  user = $default_internal_user\n}\n"
	    "service auth {\n  unix_listener /var/spool/postfix/private/auth {\n"
	    "    mode = 0660\n    user = postfix\n    group = postfix\n  }\n}\n"
	    "service lmtp {\n  unix_listener /var/spool/postfix/private/dovecot-lmtp {\n"
	    "    mode = 0600\n    user = postfix\n    group = postfix\n  }\n}\n",
	    f[1].path, f[2].path, f[3].path);
	(void)mw_str_appendf(
	    &f[0].text,
	    "%smail_plugins = $mail_plugins mailwarden\n"
	    "%smail_access_groups = %s\n"
	    "lda_mailbox_autocreate = yes\n"
	    "lda_mailbox_autosubscribe = yes\n"
	    "plugin {\n  mailwarden_config = %s\n}\n",
	    plugin[0] != '\0' && access(plugin, R_OK) == 0 ? "" : "#(plugin not installed) ", "",
	    group, ctl->config_path);
	{
		/* Debian's PAM passdb would let system accounts log in around the store */
		char path[4096];
		(void)snprintf(path, sizeof(path), "%s/conf.d/10-auth.conf", dir);
		if (read_text(path, &sample) == 0 &&
		    strstr(mw_str_c(&sample), "\n!include auth-system.conf.ext") != NULL)
			printf(
			    "# note: %s includes auth-system.conf.ext (PAM passdb, passwd userdb): "
			    "comment it out for the store to decide who logs in, and create the "
			    "vmail user (docs/admin-guide.md, section 4)\n",
			    path);
	}
	ret = own_files_apply(f, 4, o.apply, "dovecot", "run `doveadm reload`");
out:
	for (i = 0; i < 4; i++)
		mw_str_free(&f[i].text);
	mw_str_free(&sample);
	mw_str_free(&outp);
	return ret;
}

/* cmd_setup_nginx - the snippet (API locations and the web page) for this host */
int cmd_setup_nginx(struct mw_ctl *ctl, int argc, char **argv)
{
	struct own_file f;
	struct ctl_opts o;
	const char *dir;
	char path[4096];
	mw_str sample;
	int first, ret = EXIT_ERROR;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_APPLY, OPT_NGINX_DIR, OPT_EXAMPLES);
	dir = o.nginx_dir;
	memset(&f, 0, sizeof(f));
	mw_str_init(&sample, SETUP_FILE_MAX);
	mw_str_init(&f.text, SETUP_FILE_MAX);
	f.mode = 0644;
	f.gid = (gid_t)-1;
	(void)snprintf(path, sizeof(path), "%s/nginx-mailwarden.conf.sample", o.examples);
	/* the web page's root where this build installed it */
	if (sample_with_line(path, &sample, "    root ", "    root " MW_WEBDIR ";", &f.text) < 0)
		goto out;
	(void)snprintf(f.path, sizeof(f.path), "%s/snippets/mailwarden.conf", dir);
	printf("# include it inside the server { } block of your HTTPS server:\n"
	       "#   include %s;\n",
	       f.path);
	ret = own_files_apply(&f, 1, o.apply, "nginx", "include it and run `nginx -s reload`");
out:
	mw_str_free(&sample);
	mw_str_free(&f.text);
	(void)ctl;
	return ret;
}

/* ---- doctor ------------------------------------------------------------------------------ */

struct doctor {
	unsigned problems;
};

/* finding - one line: ok or problem (with the fix) */
static void finding(struct doctor *d, bool ok, const char *fmt, ...) MW_PRINTF(3, 4);
static void finding(struct doctor *d, bool ok, const char *fmt, ...)
{
	va_list ap;
	fputs(ok ? "ok: " : "problem: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!ok)
		d->problems++;
}

/* doctor_socket - a daemon's socket answers */
static void doctor_socket(struct doctor *d, const char *what, const char *spec, const char *unit)
{
	char why[256] = "";
	if (socket_answers(spec, why, sizeof(why)))
		finding(d, true, "%s answers on %s", what, spec);
	else
		finding(d, false,
		        "%s does not answer on %s: %s (fix: start it, systemctl start %s)", what,
		        spec, why, unit);
}

/* doctor_postfix - main.cf uses our sockets */
static void doctor_postfix(struct doctor *d, struct mw_ctl *ctl, const char *dir)
{
	char milter[600], policy[600];
	bool outside;
	mw_str v, q;
	mw_str_init(&v, SETUP_OUT_MAX);
	mw_str_init(&q, SETUP_OUT_MAX);
	{
		char *args[] = {"postconf", "-c", (char *)dir, "-h", "queue_directory", NULL};
		if (run(args, &q) != 0) {
			finding(d, false,
			        "postconf -c %s does not run: %s (fix: install Postfix or "
			        "give --postfix-dir)",
			        dir, one_line(&q));
			goto out;
		}
		(void)chomp(&q);
	}
	postfix_name(mw_config_str(ctl->cfg, MWK_MILTER_SOCKET), mw_str_c(&q), milter,
	             sizeof(milter), &outside);
	postfix_name(mw_config_str(ctl->cfg, MWK_PD_SOCKET), mw_str_c(&q), policy, sizeof(policy),
	             &outside);
	{
		static const char *const keys[] = {"smtpd_milters", "smtpd_recipient_restrictions",
		                                   "smtpd_end_of_data_restrictions"};
		size_t i;
		for (i = 0; i < 3; i++) {
			char want[700];
			char *args[] = {"postconf", "-c", (char *)dir, "-h", (char *)keys[i], NULL};
			(void)snprintf(want, sizeof(want),
			               i == 0 ? "%s" : "check_policy_service %s",
			               i == 0 ? milter : policy);
			if (run(args, &v) != 0 || !list_has(chomp(&v), want))
				finding(d, false,
				        "Postfix (%s) %s lacks %s (fix: mailwardenctl setup "
				        "postfix --apply)",
				        dir, keys[i], want);
			else
				finding(d, true, "Postfix %s has %s", keys[i], want);
		}
	}
out:
	mw_str_free(&v);
	mw_str_free(&q);
}

/* doctor_dovecot - Dovecot reads the store and loads the plugin */
static void doctor_dovecot(struct doctor *d, const char *conf)
{
	char *args[] = {"doveconf", "-c", (char *)conf, "-n", NULL};
	mw_str v;
	mw_str_init(&v, SETUP_OUT_MAX);
	if (run(args, &v) != 0) {
		finding(d, false,
		        "doveconf -c %s does not run: %.200s (fix: install Dovecot or give "
		        "--dovecot-config)",
		        conf, one_line(&v));
		goto out;
	}
	if (strstr(mw_str_c(&v), "dovecot-sql-mailwarden") == NULL)
		finding(d, false,
		        "Dovecot (%s) has no passdb on the mailwarden store (fix: "
		        "mailwardenctl setup dovecot --apply)",
		        conf);
	else
		finding(d, true, "Dovecot reads the mailwarden store (passdb/userdb sql)");
	if (strstr(mw_str_c(&v), " mailwarden") == NULL ||
	    strstr(mw_str_c(&v), "mail_plugins") == NULL)
		finding(d, false,
		        "Dovecot (%s) does not load the mailwarden plugin (fix: "
		        "mail_plugins = $mail_plugins mailwarden; package dovecot-mailwarden)",
		        conf);
	else
		finding(d, true, "Dovecot loads the mailwarden plugin");
out:
	mw_str_free(&v);
}

/* doctor_store - the store's directory, files and the master key */
static void doctor_store(struct doctor *d, struct mw_ctl *ctl)
{
	const char *db = sqlite_path(mw_config_str(ctl->cfg, MWK_STORE));
	const char *key = mw_config_str(ctl->cfg, MWK_MASTER_KEY);
	struct stat st;
	mw_store *store;
	mw_error err = {""};

	store = mw_store_open(mw_config_str(ctl->cfg, MWK_STORE), 2000, &err);
	if (store == NULL)
		finding(d, false, "store %s cannot be opened: %s (fix: mailwardenctl init)",
		        mw_config_str(ctl->cfg, MWK_STORE), err.msg);
	else {
		finding(d, true, "store %s opens", mw_config_str(ctl->cfg, MWK_STORE));
		mw_store_close(&store);
	}
	if (db != NULL) {
		char sdir[4096];
		(void)mw_strlcpy(sdir, db, sizeof(sdir));
		if (strrchr(sdir, '/') != NULL)
			*strrchr(sdir, '/') = '\0';
		if (stat(sdir, &st) < 0)
			finding(d, false, "store directory %s: %s", sdir, strerror(errno));
		else if ((st.st_mode & 0070) != 0070 || (st.st_mode & 0007) != 0)
			finding(d, false,
			        "store directory %s is %04o: Dovecot's auth-worker needs it "
			        "group-writable for SQLite's WAL files, others nothing (fix: chmod "
			        "2770 "
			        "%s)",
			        sdir, (unsigned)(st.st_mode & 07777), sdir);
		else
			finding(d, true, "store directory %s is %04o", sdir,
			        (unsigned)(st.st_mode & 07777));
		if (stat(db, &st) == 0 && ((st.st_mode & 0060) != 0060 || (st.st_mode & 0007) != 0))
			finding(d, false,
			        "store file %s is %04o: its group reads and writes it, others "
			        "nothing (fix: chmod 0660 %s)",
			        db, (unsigned)(st.st_mode & 07777), db);
	}
	if (stat(key, &st) < 0)
		finding(d, false, "master key %s: %s (fix: mailwardenctl init)", key,
		        strerror(errno));
	else if ((st.st_mode & 0077) != 0)
		finding(d, false,
		        "master key %s is %04o: every program refuses it (fix: chmod 0600 %s)", key,
		        (unsigned)(st.st_mode & 07777), key);
	else
		finding(d, true, "master key %s is 0600", key);
}

/* doctor_dns - the resolver answers, each active DKIM key is published */
static void doctor_dns(struct doctor *d, struct mw_ctl *ctl)
{
	const char *servers = mw_config_str(ctl->cfg, MWK_MILTER_DNS_SERVERS);
	struct mw_dkim_key_row *rows = NULL;
	struct mw_dns_answer ans;
	mw_store *store;
	mw_dns *dns;
	mw_error err = {""};
	size_t n = 0, i, j, answered = 0, asked = 0;
	char name[MW_DNS_NAME_MAX + 1];

	dns = mw_dns_new(servers, 3000, &err);
	if (dns == NULL) {
		finding(d, false, "resolver (%s): %s",
		        servers[0] != '\0' ? servers : "/etc/resolv.conf", err.msg);
		return;
	}
	store = mw_store_open(mw_config_str(ctl->cfg, MWK_STORE), 2000, &err);
	if (store != NULL && mw_store_dkim_key_list(store, NULL, &rows, &n, &err) != MW_STORE_OK)
		n = 0;
	for (i = 0; i < n; i++) {
		bool published = false;
		if (!rows[i].active)
			continue;
		if ((size_t)snprintf(name, sizeof(name), "%s._domainkey.%s", rows[i].selector,
		                     rows[i].domain) >= sizeof(name)) {
			finding(d, false, "DKIM key %s/%s: the record name is too long for DNS",
			        rows[i].domain, rows[i].selector);
			continue;
		}
		asked++;
		if (mw_dns_query(dns, name, MW_DNS_TXT, &ans, &err) != MW_DNS_TEMPFAIL)
			answered++;
		for (j = 0; j < ans.count && ans.status == MW_DNS_OK; j++) {
			const char *p = strstr(ans.rec[j], "p=");
			size_t pl = strlen(rows[i].public_key);
			if (p != NULL && strncmp(p + 2, rows[i].public_key, pl) == 0 &&
			    (p[2 + pl] == '\0' || p[2 + pl] == ';' || p[2 + pl] == ' '))
				published = true;
		}
		if (published)
			finding(d, true, "DKIM key %s is published", name);
		else
			finding(d, false,
			        "DKIM key %s is not published (%s) (fix: publish the TXT record "
			        "`mailwardenctl dkim list` shows)",
			        name, mw_dns_status_str(ans.status));
		mw_dns_answer_free(&ans);
	}
	if (asked == 0) {
		/* no key to look up: any answer, even "no such name", shows the resolver works */
		char host[256] = "localhost";
		(void)gethostname(host, sizeof(host));
		host[sizeof(host) - 1] = '\0';
		asked++;
		if (mw_dns_query(dns, strchr(host, '.') != NULL ? host : "example.org", MW_DNS_A,
		                 &ans, &err) != MW_DNS_TEMPFAIL)
			answered++;
		mw_dns_answer_free(&ans);
	}
	if (answered > 0)
		finding(d, true, "resolver %s answers",
		        servers[0] != '\0' ? servers : "(/etc/resolv.conf)");
	else
		finding(d, false,
		        "resolver %s does not answer: %s (fix: [milter] dns_servers or "
		        "/etc/resolv.conf)",
		        servers[0] != '\0' ? servers : "(/etc/resolv.conf)", err.msg);
	mw_dkim_key_rows_free(rows, n);
	mw_store_close(&store);
	mw_dns_free(&dns);
}

/* doctor_degraded_file - the degraded gauges of a daemon's metrics file (the milter's way to
   tell: it has no control socket); a file older than three intervals is not believed */
static void doctor_degraded_file(struct doctor *d, const char *daemon, const char *path,
                                 int64_t interval)
{
	struct mw_degraded_state st[MW_DEGRADED_COUNT_];
	char line[1024];
	struct stat sb;
	mw_error err = {""};
	size_t n = 0, i, bad = 0;
	mw_str text;
	if (path[0] == '\0')
		return; /* no metrics_file: nothing tells the state */
	mw_str_init(&text, 4 * 1024 * 1024);
	if (stat(path, &sb) < 0 || read_text(path, &text) < 0) {
		finding(d, false, "%s's metrics file %s cannot be read: %s (fix: start %s)", daemon,
		        path, strerror(errno), daemon);
		goto out;
	}
	if ((int64_t)time(NULL) - (int64_t)sb.st_mtime > 3 * interval + 5) {
		finding(d, false,
		        "%s's metrics file %s was not written for %lld s: its state is unknown "
		        "(fix: start %s)",
		        daemon, path, (long long)((int64_t)time(NULL) - (int64_t)sb.st_mtime),
		        daemon);
		goto out;
	}
	if (mw_degraded_parse(text.buf != NULL ? text.buf : "", text.len, st, MW_N_ELEMENTS(st), &n,
	                      &err) < 0) {
		finding(d, false, "%s's metrics file %s: %s", daemon, path, err.msg);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (st[i].degraded) {
			mw_degraded_describe(&st[i], line, sizeof(line));
			finding(d, false, "%s", line);
			bad++;
		}
	if (bad == 0)
		finding(d, true, "%s serves without a fallback (%s)", daemon, path);
out:
	mw_str_free(&text);
}

/* doctor_degraded_policyd - the policy daemon's degraded components, asked over its control
   socket ("health"); without one, from its metrics file */
static void doctor_degraded_policyd(struct doctor *d, struct mw_ctl *ctl, const char *control)
{
	struct mw_pdctl_request req;
	struct mw_pdctl_reply *reply;
	char line[1024];
	mw_error err = {""};
	size_t i;
	if (control[0] == '\0') {
		doctor_degraded_file(d, "mailwarden-policyd",
		                     mw_config_str(ctl->cfg, MWK_PD_METRICS_FILE),
		                     mw_config_int(ctl->cfg, MWK_PD_METRICS_INTERVAL));
		return;
	}
	memset(&req, 0, sizeof(req));
	req.command = MW_PDCTL_HEALTH;
	(void)mw_strlcpy(req.subject, "daemon", sizeof(req.subject));
	reply = mw_calloc(1, sizeof(*reply));
	if (mw_pdctl_call(control, &req, 5000, reply, &err) < 0) {
		free(reply);
		return; /* the control socket's own finding says it does not answer */
	}
	if (!reply->ok)
		finding(d, false, "mailwarden-policyd refused the health query: %s", reply->error);
	for (i = 0; i < reply->ndegraded; i++) {
		struct mw_degraded_state st;
		memset(&st, 0, sizeof(st));
		(void)mw_strlcpy(st.component, reply->degraded[i].component, sizeof(st.component));
		(void)mw_strlcpy(st.reason, reply->degraded[i].reason, sizeof(st.reason));
		st.degraded = true;
		st.since = reply->degraded[i].since;
		mw_degraded_describe(&st, line, sizeof(line));
		finding(d, false, "%s", line);
	}
	if (reply->ok && reply->ndegraded == 0)
		finding(d, true, "mailwarden-policyd serves without a fallback");
	free(reply);
}

/* cmd_doctor - check the host end to end, one line per finding */
int cmd_doctor(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct doctor d = {0};
	struct mw_service svc;
	const char *user = mw_config_str(ctl->cfg, MWK_USER);
	const char *control = mw_config_str(ctl->cfg, MWK_PD_CONTROL_SOCKET);
	mw_error err = {""};
	int first;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_POSTFIX_DIR, OPT_DOVECOT_CONFIG);
	if (getpwnam(user) == NULL)
		finding(&d, false,
		        "user %s (config key user) does not exist (fix: adduser --system "
		        "--group %s)",
		        user, user);
	else {
		memset(&svc, 0, sizeof(svc));
		svc.config_path = ctl->config_path;
		svc.config_explicit = true;
		if (mw_service_reload_check(&svc, user, &err) < 0)
			finding(&d, false, "%s", err.msg);
		else
			finding(&d, true, "configuration %s readable by the daemons' user %s",
			        ctl->config_path, user);
	}
	doctor_socket(&d, "mailwarden-milter", mw_config_str(ctl->cfg, MWK_MILTER_SOCKET),
	              "mailwarden-milter");
	doctor_socket(&d, "mailwarden-policyd", mw_config_str(ctl->cfg, MWK_PD_SOCKET),
	              "mailwarden-policyd");
	if (control[0] != '\0')
		doctor_socket(&d, "mailwarden-policyd's control socket", control,
		              "mailwarden-policyd");
	doctor_degraded_policyd(&d, ctl, control);
	doctor_degraded_file(&d, "mailwarden-milter",
	                     mw_config_str(ctl->cfg, MWK_MILTER_METRICS_FILE),
	                     mw_config_int(ctl->cfg, MWK_MILTER_METRICS_INTERVAL));
	doctor_postfix(&d, ctl, o.postfix_dir);
	doctor_dovecot(&d, o.dovecot_config);
	doctor_store(&d, ctl);
	doctor_dns(&d, ctl);
	if (d.problems > 0) {
		printf("doctor: %u problem%s\n", d.problems, d.problems == 1 ? "" : "s");
		return EXIT_ERROR;
	}
	printf("doctor: no problems found\n");
	return EXIT_OK;
}
