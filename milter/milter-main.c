/*
 * milter-main.c - mailwarden-milter: options, the listening socket, privileges, signals
 * and configuration reloads around the milter protocol (milter-proto.c).
 *
 * Public: main, milter_config_get, milter_config_put, milter_authserv_id,
 * milter_auth_get, milter_auth_put, milter_auth_lib, milter_inflight_begin,
 * milter_inflight_end.
 *
 * The milter protocol is milter-proto.c's (libmilter's smfi_* interface, without libmilter).
 *
 * Start-up order: config (and the [milter] values the table cannot check: trusted_networks,
 * dns_servers) -> logging -> socket checked by hand (a clear error on stderr when it cannot
 * be bound) and opened with smfi_opensocket -> socket
 * mode/group (lib/mw-daemon.c: private directory, umask around bind, group set without
 * following links; inet only with allow_inet = yes) -> pid file opened and locked -> master key
 * read (dkim_sign) -> privileges dropped to main.user -> store opened and the SPF/DKIM/DMARC state
 * tried (errors still on stderr) -> daemonised (unless -f) -> the SPF/DKIM/DMARC state made for
 * good (libunbound's resolver thread must be started in the process that uses it) -> threads.
 *
 * Threads: smfi_main (the connection threads) runs in a thread of its own and the main
 * thread waits for SIGHUP, SIGTERM and SIGINT in mw_service_signal_wait (the daemon skeleton,
 * lib/mw-service.c, which also owns the options, --help, the pid file and detaching); every
 * other thread has them blocked. The main thread only ever hands work to the reload thread
 * and goes straight back to waiting.
 * Virus engines (milter-scan.c) are built after daemonising, once signals are blocked;
 * SIGHUP builds a new one in the reload thread and a watcher thread rebuilds it when the
 * signature files change; scans go on with the old engine until the new one is swapped in.
 * SIGHUP: reload the configuration (a new counted snapshot with its own SPF/DKIM/DMARC
 * state and resolver; a connection keeps the ones it started with), reopen the store,
 * empty the user and DKIM key caches and re-read the master key when it is readable; on
 * any error the old ones stay. socket*, user and log* take effect only on restart.
 * SIGTERM/SIGINT: new messages get 451 4.7.1; the messages in flight (MAIL FROM seen, end
 * not yet) may finish for up to shutdown_timeout; then smfi_stop and exit 0.
 *
 * Diagnostics: start-up errors on stderr ("mailwarden-milter: ...") with exit status 1;
 * afterwards through mw_log (event=start, event=reload, event=stop ...).
 */
#include "mw-build.h"
#include "milter.h"
#include "mw-degraded.h"
#include "mw-spam.h"
#include "mw-daemon.h"
#include "mw-log.h"
#include "mw-metrics.h"
#include "mw-net.h"
#include "mw-service.h"

#include <libmilter/mfapi.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The SPF/DKIM/DMARC state of one snapshot, counted like the config (under cfg_lock). */
struct milter_auth {
	unsigned refs;
	mw_authcheck_lib *lib;
};

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static mw_config *cur_cfg;
static struct milter_auth *cur_auth;
static char host_name[256];

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cond = PTHREAD_COND_INITIALIZER;
static int inflight;
static bool draining;

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reload_cond = PTHREAD_COND_INITIALIZER;
static bool reload_pending, reload_quit;

static pthread_t main_thread;
static volatile int milter_main_result = MI_SUCCESS;

static struct mw_service svc;

static const char milter_summary[] =
    "The mailwarden milter for Postfix: a user who authenticated with SMTP AUTH may send\n"
    "only as the addresses an admin allowed (envelope sender at MAIL FROM, every address\n"
    "of From: and Sender: at end of message); X-Mailwarden-* headers and\n"
    "Authentication-Results headers carrying our authserv-id are removed from every\n"
    "message so later stages can trust them. Inbound mail (unauthenticated clients outside\n"
    "trusted_networks) gets SPF, DKIM and DMARC, one Authentication-Results header and a\n"
    "verdict; outbound mail a DKIM signature with the header-From domain's key.\n";

static const char milter_more_help[] =
    "RELOAD AND STOP\n"
    "  SIGHUP also reopens the store, empties the caches and re-reads the master key;\n"
    "  socket*, user and log* change only on restart. SIGTERM waits for the messages in\n"
    "  flight up to [milter] shutdown_timeout; new ones get 451 4.7.1 meanwhile.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 stopped by a signal or after -t/-h/-V, 1 start-up error (message on stderr), 2\n"
    "  usage error. See mailwarden-milter(8) for the SMTP replies and the Postfix settings.\n";

static const char *const milter_sections[] = {"main", "store",      "milter",
                                              "spam", "classifier", NULL};

/* milter_config_get - a counted reference to the current snapshot */
mw_config *milter_config_get(void)
{
	mw_config *cfg;
	(void)pthread_mutex_lock(&cfg_lock);
	cfg = mw_config_ref(cur_cfg);
	(void)pthread_mutex_unlock(&cfg_lock);
	return cfg;
}

/* milter_config_put - drop a reference (the count is not atomic: always under cfg_lock) */
void milter_config_put(mw_config **cfg)
{
	(void)pthread_mutex_lock(&cfg_lock);
	mw_config_unref(cfg);
	(void)pthread_mutex_unlock(&cfg_lock);
}

/* milter_auth_get - a counted reference to the current SPF/DKIM/DMARC state */
struct milter_auth *milter_auth_get(void)
{
	struct milter_auth *auth;
	(void)pthread_mutex_lock(&cfg_lock);
	auth = cur_auth;
	if (auth != NULL)
		auth->refs++;
	(void)pthread_mutex_unlock(&cfg_lock);
	return auth;
}

/* milter_auth_put - drop a reference; the last one frees the state */
void milter_auth_put(struct milter_auth **authp)
{
	struct milter_auth *auth = *authp, *dead = NULL;
	if (auth == NULL)
		return;
	*authp = NULL;
	(void)pthread_mutex_lock(&cfg_lock);
	if (--auth->refs == 0)
		dead = auth;
	(void)pthread_mutex_unlock(&cfg_lock);
	if (dead != NULL) {
		mw_authcheck_lib_free(&dead->lib);
		free(dead);
	}
}

/* milter_auth_lib - the library handle of a state */
mw_authcheck_lib *milter_auth_lib(struct milter_auth *auth)
{
	return auth != NULL ? auth->lib : NULL;
}

/* auth_new - SPF/DKIM/DMARC state for CFG (one reference), or NULL with error_r */
static struct milter_auth *auth_new(const mw_config *cfg, mw_error *error_r)
{
	struct mw_authcheck_settings settings;
	struct milter_auth *auth;
	memset(&settings, 0, sizeof(settings));
	settings.dns_servers = mw_config_str(cfg, MWK_MILTER_DNS_SERVERS);
	settings.dns_timeout_ms = (unsigned)mw_config_int(cfg, MWK_MILTER_DNS_TIMEOUT) * 1000u;
	settings.psl_file = NULL;
	settings.dmarc_rfc7489 = strcmp(mw_config_str(cfg, MWK_MILTER_DMARC_MODE), "rfc7489") == 0;
	settings.arc_trusted = mw_config_str(cfg, MWK_MILTER_ARC_TRUSTED_FORWARDERS);
	settings.want_org_domain = mw_config_bool(cfg, MWK_DMARC_RECORD);
	auth = mw_calloc(1, sizeof(*auth));
	auth->refs = 1;
	auth->lib = mw_authcheck_lib_new(&settings, error_r);
	if (auth->lib == NULL) {
		free(auth);
		return NULL;
	}
	mw_dns_watch(mw_authcheck_lib_dns(auth->lib), MW_DEGRADED_MILTER_DNS);
	return auth;
}

/* check_milter_values - what the key table cannot check: network and server lists */
static int check_milter_values(const mw_config *cfg, mw_error *error_r)
{
	const char *nets = mw_config_str(cfg, MWK_MILTER_TRUSTED_NETWORKS);
	char servers[MW_DNS_SERVERS_MAX][64];
	mw_error err;
	if (mw_config_bool(cfg, MWK_MILTER_ARC_SEAL) &&
	    mw_config_str(cfg, MWK_MILTER_ARC_SEAL_DOMAIN)[0] == '\0') {
		mw_error_set(error_r, "[milter] arc_seal = yes needs arc_seal_domain");
		return -1;
	}
	if (strcmp(nets, "none") != 0 && mw_authcheck_ip_in_networks(nets, "127.0.0.1", &err) < 0) {
		mw_error_set(error_r, "[milter] trusted_networks: %s", err.msg);
		return -1;
	}
	if (mw_config_str(cfg, MWK_MILTER_DNS_SERVERS)[0] != '\0' &&
	    mw_dns_parse_servers(mw_config_str(cfg, MWK_MILTER_DNS_SERVERS), servers,
	                         MW_DNS_SERVERS_MAX, &err) < 0) {
		mw_error_set(error_r, "[milter] dns_servers: %s", err.msg);
		return -1;
	}
	{
		struct mw_spam_settings spam;
		if (mw_spam_settings_from_config(cfg, &spam, error_r) < 0)
			return -1;
	}
	return 0;
}

/* milter_authserv_id - configured authserv-id, else the host name */
const char *milter_authserv_id(const mw_config *cfg)
{
	const char *id = mw_config_str(cfg, MWK_MILTER_AUTHSERV_ID);
	return id[0] != '\0' ? id : host_name;
}

/* milter_inflight_begin - one more message in flight, unless we are stopping */
bool milter_inflight_begin(void)
{
	bool ok;
	(void)pthread_mutex_lock(&conn_lock);
	ok = !draining;
	if (ok)
		inflight++;
	(void)pthread_mutex_unlock(&conn_lock);
	return ok;
}

/* milter_inflight_end - a message ended */
void milter_inflight_end(void)
{
	(void)pthread_mutex_lock(&conn_lock);
	if (--inflight == 0)
		(void)pthread_cond_broadcast(&conn_cond);
	(void)pthread_mutex_unlock(&conn_lock);
}

/* check_inet_socket - PORT@ADDRESS parses and can be bound right now */
static void check_inet_socket(const char *spec, bool v6)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, r = mw_sockaddr_port_at(spec + (v6 ? 6 : 5), v6, &ss, &len);

	if (r == -1)
		mw_fatal("socket %s: expected inet:PORT@ADDRESS with a port 1-65535", spec);
	if (r < 0)
		mw_fatal("socket %s: the address must be an %s literal", spec,
		         v6 ? "IPv6" : "IPv4");
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		mw_fatal("socket(): %s", strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		mw_fatal("socket %s: cannot bind: %s", spec, strerror(errno));
	(void)close(fd);
}

/* open_socket - check the spec, then open it (milter-proto.c): a unix socket in a
   private directory, born with its mode (umask around smfi_opensocket), its group set
   without following links (lib/mw-daemon.c); inet only with [milter] allow_inet = yes */
static void open_socket(const mw_config *cfg, gid_t user_gid)
{
	const char *spec = mw_config_str(cfg, MWK_MILTER_SOCKET);
	const char *path = mw_daemon_unix_path(spec);
	struct mw_listen l = {
	    .what = "[milter] socket",
	    .spec = spec,
	    .mode = mw_config_str(cfg, MWK_MILTER_SOCKET_MODE),
	    .group = mw_config_str(cfg, MWK_MILTER_SOCKET_GROUP),
	    .gid = user_gid,
	    .uid = (uid_t)-1,
	    .allow_inet = mw_config_bool(cfg, MWK_MILTER_ALLOW_INET),
	    .peers_unchecked = true, /* the milter has no inet_peers */
	    .allow_key = "[milter] allow_inet",
	};
	unsigned mode = 0;
	gid_t gid = user_gid;
	mw_error err;
	mode_t old = 0;
	int ret;

	if (path != NULL) {
		if (mw_daemon_unix_params(&l, &gid, &mode, &err) < 0 ||
		    mw_daemon_unix_prepare(path, gid, &err) < 0)
			mw_fatal("%s", err.msg);
	} else if (strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0) {
		if (mw_daemon_inet_allowed(&l, &err) < 0)
			mw_fatal("%s", err.msg);
		check_inet_socket(spec, spec[4] == '6');
	} else {
		mw_fatal("socket %s: expected unix:/path, inet:PORT@ADDRESS or inet6:PORT@ADDRESS",
		         spec);
	}
	if (smfi_setconn((char *)spec) != MI_SUCCESS)
		mw_fatal("socket %s: not a socket spec the milter takes", spec);
	if (path != NULL)
		old = mw_daemon_unix_umask(mode);
	ret = smfi_opensocket(true);
	if (path != NULL)
		(void)umask(old);
	if (ret != MI_SUCCESS)
		mw_fatal("socket %s: cannot open it: %s", spec, strerror(errno));
	if (path != NULL && mw_daemon_unix_finish(path, mode, (uid_t)-1, gid, &err) < 0)
		mw_fatal("%s", err.msg);
	if (path == NULL)
		fprintf(stderr,
		        MILTER_NAME
		        ": warning: %s is an inet socket: any local user who can connect "
		        "can claim any SMTP AUTH login and get mail DKIM-signed; firewall it\n",
		        spec);
}

/* store_busy_ms - [store] busy_timeout in milliseconds */
static unsigned store_busy_ms(const mw_config *cfg)
{
	return (unsigned)mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT) * 1000u;
}

/* reload - a new config snapshot and store connection (SIGHUP) */
static void reload(void)
{
	mw_error err;
	mw_config *cfg = mw_service_config(&svc, &err), *old;
	struct milter_auth *auth, *old_auth;
	char e[MILTER_LOGV];
	if (cfg == NULL || check_milter_values(cfg, &err) < 0) {
		mw_error_log("event=reload status=failed error=%s",
		             mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		mw_config_unref(&cfg);
		return;
	}
	auth = auth_new(cfg, &err);
	if (auth == NULL) {
		mw_error_log("event=reload status=failed error=%s",
		             mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		mw_config_unref(&cfg);
		return;
	}
	if (milter_users_reload(mw_config_str(cfg, MWK_STORE), store_busy_ms(cfg),
	                        (unsigned)mw_config_int(cfg, MWK_MILTER_CACHE_TTL), &err) < 0) {
		mw_error_log("event=reload status=failed error=%s",
		             mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
		milter_auth_put(&auth);
		mw_config_unref(&cfg);
		return;
	}
	if (milter_dkim_reload(
	        mw_config_bool(cfg, MWK_MILTER_DKIM_SIGN) ? mw_config_str(cfg, MWK_MASTER_KEY) : "",
	        (unsigned)mw_config_int(cfg, MWK_MILTER_CACHE_TTL), &err) < 0)
		mw_info("event=reload master_key=kept note=%s",
		        mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
	(void)pthread_mutex_lock(&cfg_lock);
	old = cur_cfg;
	cur_cfg = cfg;
	mw_config_unref(&old);
	old_auth = cur_auth;
	cur_auth = auth;
	(void)pthread_mutex_unlock(&cfg_lock);
	milter_auth_put(&old_auth);
	mw_info("event=reload status=ok");
	/* a new virus engine, built here while scans go on with the old one */
	milter_scan_reload();
}

/* reload_thread - runs reloads so the main thread never leaves sigwait for long */
static void *reload_thread(void *arg)
{
	(void)arg;
	(void)pthread_mutex_lock(&reload_lock);
	for (;;) {
		while (!reload_pending && !reload_quit)
			(void)pthread_cond_wait(&reload_cond, &reload_lock);
		if (reload_quit)
			break;
		reload_pending = false;
		(void)pthread_mutex_unlock(&reload_lock);
		reload();
		(void)pthread_mutex_lock(&reload_lock);
	}
	(void)pthread_mutex_unlock(&reload_lock);
	return NULL;
}

/* milter_thread - the connection threads (smfi_main); wakes the main thread when it ends */
static void *milter_thread(void *arg)
{
	(void)arg;
	milter_main_result = smfi_main();
	(void)pthread_kill(main_thread, SIGTERM);
	return NULL;
}

/* metrics_thread - write the counters to [milter] metrics_file every metrics_interval */
static void *metrics_thread(void *arg)
{
	char e[MILTER_LOGV];
	bool warned = false;
	(void)arg;
	for (;;) {
		mw_config *cfg = milter_config_get();
		const char *path = mw_config_str(cfg, MWK_MILTER_METRICS_FILE);
		unsigned secs = (unsigned)mw_config_int(cfg, MWK_MILTER_METRICS_INTERVAL);
		mw_error err = {{0}};
		if (path[0] != '\0' && mw_metrics_write_file(path, &err) < 0 && !warned) {
			mw_warn("event=metrics_write_failed error=%s",
			        mw_log_value(e, sizeof(e), err.msg, strlen(err.msg)));
			warned = true; /* once: the file's directory is the admin's to fix */
		}
		milter_config_put(&cfg);
		(void)sleep(secs);
	}
	return NULL;
}

/* drain - stop taking messages; wait until none is in flight, at most SECS seconds */
static int drain(long long secs)
{
	struct timespec until;
	int left;
	(void)clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)secs;
	(void)pthread_mutex_lock(&conn_lock);
	draining = true;
	while (inflight > 0)
		if (pthread_cond_timedwait(&conn_cond, &conn_lock, &until) != 0)
			break;
	left = inflight;
	(void)pthread_mutex_unlock(&conn_lock);
	return left;
}

/* main - options, configuration, socket, privileges, then the connection threads and the signals */
int main(int argc, char **argv)
{
	static const struct mw_service_info info = {
	    .name = MILTER_NAME,
	    .summary = milter_summary,
	    .sections = milter_sections,
	    .more_help = milter_more_help,
	};
	enum mw_service_event ev;
	int left;
	const struct passwd *pwp;
	struct passwd pw;
	mw_config *cfg;
	pthread_t mt, rt, wt;
	mw_error err;
	bool not_root;

	/* The skeleton blocks HUP, TERM, INT (and CHLD) before anything is opened, so every
	   thread inherits the mask and the main thread alone takes them: a SIGHUP that arrives
	   once the socket accepts connections but before the threads exist waits instead of
	   killing the daemon (the default action). */
	mw_service_args(&svc, &info, argc, argv);
	cur_cfg = mw_service_config(&svc, &err);
	if (cur_cfg == NULL || check_milter_values(cur_cfg, &err) < 0)
		mw_fatal("%s", err.msg);
	if (mw_service_reload_check(&svc, mw_config_str(cur_cfg, MWK_USER), &err) < 0)
		mw_fatal("%s", err.msg);
	if (svc.check) {
		cur_auth = auth_new(cur_cfg, &err);
		if (cur_auth == NULL)
			mw_fatal("SPF/DKIM/DMARC set-up: %s", err.msg);
		printf("%s: configuration OK\n", svc.config_path);
		milter_auth_put(&cur_auth);
		mw_config_unref(&cur_cfg);
		return 0;
	}
	if (gethostname(host_name, sizeof(host_name)) < 0 || host_name[0] == '\0')
		(void)mw_strlcpy(host_name, "localhost", sizeof(host_name));
	host_name[sizeof(host_name) - 1] = '\0';

	pwp = getpwnam(mw_config_str(cur_cfg, MWK_USER));
	if (pwp == NULL)
		mw_fatal("main.user %s: no such account", mw_config_str(cur_cfg, MWK_USER));
	pw = *pwp;
	pw.pw_name = mw_strdup(pwp->pw_name);

	if (smfi_register(milter_desc) != MI_SUCCESS)
		mw_fatal("smfi_register failed (libmilter version mismatch?)");
	open_socket(cur_cfg, pw.pw_gid);
	if (mw_service_pidfile_open(&svc, &err) < 0)
		mw_fatal("%s", err.msg);
	/* the master key is root's: read it while we still are */
	if (milter_dkim_init(mw_config_bool(cur_cfg, MWK_MILTER_DKIM_SIGN)
	                         ? mw_config_str(cur_cfg, MWK_MASTER_KEY)
	                         : "",
	                     (unsigned)mw_config_int(cur_cfg, MWK_MILTER_CACHE_TTL), &err) < 0)
		mw_fatal("master_key (needed by [milter] dkim_sign = yes): %s", err.msg);
	if (mw_daemon_drop_privileges(pw.pw_name, &not_root, &err) < 0)
		mw_fatal("main.user: %s", err.msg);
	if (not_root && geteuid() != pw.pw_uid)
		/* started unprivileged by someone else: keep going as that account */
		fprintf(stderr, MILTER_NAME ": note: not root, running as uid %u, not %s\n",
		        (unsigned)geteuid(), pw.pw_name);
	if (milter_users_init(mw_config_str(cur_cfg, MWK_STORE), store_busy_ms(cur_cfg),
	                      (unsigned)mw_config_int(cur_cfg, MWK_MILTER_CACHE_TTL), &err) < 0)
		mw_fatal("store: %s", err.msg);
	/* tried here so a bad resolver setting is reported on stderr; made for good below */
	cur_auth = auth_new(cur_cfg, &err);
	if (cur_auth == NULL)
		mw_fatal("SPF/DKIM/DMARC set-up: %s", err.msg);
	if (!svc.foreground)
		milter_auth_put(&cur_auth);
	if (mw_service_detach(&svc, cur_cfg, NULL, &err) < 0)
		mw_fatal("event=start status=failed error=\"%s\"", err.msg);
	if (cur_auth == NULL) {
		cur_auth = auth_new(cur_cfg, &err);
		if (cur_auth == NULL)
			mw_fatal("event=start status=failed error=\"SPF/DKIM/DMARC set-up: %s\"",
			         err.msg);
	}

	main_thread = pthread_self();
	if (milter_scan_init(&err) < 0)
		mw_error_log("event=start virus_engine=none error=\"%s\"", err.msg);
	if (mw_metrics_init(false, &err) < 0 ||
	    pthread_create(&rt, NULL, reload_thread, NULL) != 0 ||
	    pthread_create(&mt, NULL, milter_thread, NULL) != 0 ||
	    pthread_create(&wt, NULL, metrics_thread, NULL) != 0 || pthread_detach(wt) != 0)
		mw_fatal("event=start status=failed error=\"cannot create threads\"");
	mw_info("event=start socket=%s user=%s pid=%ld", mw_config_str(cur_cfg, MWK_MILTER_SOCKET),
	        pw.pw_name, (long)getpid());

	while ((ev = mw_service_signal_wait(-1)) != MW_SERVICE_STOP) {
		if (ev != MW_SERVICE_RELOAD)
			continue;
		(void)pthread_mutex_lock(&reload_lock);
		reload_pending = true;
		(void)pthread_cond_signal(&reload_cond);
		(void)pthread_mutex_unlock(&reload_lock);
	}

	/* messages in flight finish first, then no new connections are taken */
	mw_info("event=stop");
	cfg = milter_config_get();
	left = drain(mw_config_int(cfg, MWK_MILTER_SHUTDOWN_TIMEOUT));
	milter_config_put(&cfg);
	if (left > 0)
		mw_warn("event=stop messages_left=%d", left);
	(void)smfi_stop();
	(void)pthread_join(mt, NULL);
	(void)pthread_mutex_lock(&reload_lock);
	reload_quit = true;
	(void)pthread_cond_signal(&reload_cond);
	(void)pthread_mutex_unlock(&reload_lock);
	(void)pthread_join(rt, NULL);
	cfg = milter_config_get(); /* the last counts, for whoever reads the file next */
	if (mw_config_str(cfg, MWK_MILTER_METRICS_FILE)[0] != '\0')
		(void)mw_metrics_write_file(mw_config_str(cfg, MWK_MILTER_METRICS_FILE), &err);
	milter_config_put(&cfg);
	milter_users_deinit();
	milter_dmarc_record_deinit();
	milter_dkim_deinit();
	milter_scan_deinit();
	if (left == 0) {
		milter_config_put(&cur_cfg);
		milter_auth_put(&cur_auth);
	}
	mw_service_end(&svc);
	free(pw.pw_name);
	mw_info("event=stopped status=%s", milter_main_result == MI_SUCCESS ? "ok" : "error");
	return milter_main_result == MI_SUCCESS ? 0 : 1;
}
