/* api-main.c - mailwarden-api: the FastCGI JSON API for users, passwords and sessions.
 *
 * Runs in the daemon skeleton (lib/mw-service.c: options, --help, pid file, detaching,
 * signals) as a prefork pool: the master opens or inherits the one listening socket, drops
 * privileges, and forks [api] workers processes that each accept on it and serve one request
 * at a time, so a slow request (a password check: argon2) holds up only its own worker.
 * Each worker runs api-fcgi.c's loop: it holds several connections (nginx may keep them
 * open between requests: fastcgi_keep_conn) and answers whichever request completes;
 * before each request it hands the idle ones to the other workers through a socket pair
 * the master makes (api-fcgi.c), so a kept connection never waits behind a slow request.
 * A worker that dies is restarted; SIGHUP re-reads the configuration and replaces the
 * workers once each has finished its request; SIGTERM/SIGINT let every worker finish its
 * request and exit. The socket is inherited from spawn-fcgi (descriptor 0) or opened with
 * -s. Started as root the master switches to the configured user (config key user) before
 * opening the store; no request is ever served as root. Each worker opens its own store
 * connection after the fork (a database handle never crosses a fork).
 *
 * Per request: the FastCGI parameters are read with limits (URI, header lengths, body size
 * [api] max_body: a larger body is read and dropped and answered 413 without parsing),
 * then api_dispatch (api-routes.c) answers; the answer always carries the security headers
 * (api_render_head). Nothing in the request path exits the process.
 *
 * Public: main.
 * Diagnostics: start-up errors go to stderr and exit 1; requests are logged at info
 * level (method, path, status, actor, client) through mw_log, each right after its answer
 * is written (log_answered), so a log write that waits (the workers share the log file's
 * lock, or a slow journald) never holds up an answer; workers that die, reloads and the
 * stop as event=... lines.
 */
#include "mw-build.h"
#include "api-common.h"
#include "api-fcgi.h"
#include "mw-daemon.h"
#include "mw-degraded.h"
#include "mw-log.h"
#include "mw-metrics.h"
#include "mw-service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_NAME "mailwarden-api"

static const char api_summary[] =
    "The mailwarden JSON API (users, passwords, allowed-From patterns, sessions, audit log)\n"
    "as a FastCGI application behind nginx: a master and [api] workers processes on one\n"
    "socket. Normally started by spawn-fcgi, which passes the listening socket as\n"
    "descriptor 0:\n"
    "  spawn-fcgi -s /run/mailwarden-api/api.sock -M 0660 -U root -G www-data \\\n"
    "      -u mailwarden -- " MW_SBINDIR "/mailwarden-api -f -c FILE\n"
    "(the path this build installs to; spawn-fcgi's \"child exited with: 2\" is ENOENT:\n"
    "the program named after -- does not exist there)\n"
    "The socket lives in a directory only root and nginx's group can enter. Or with -s. An\n"
    "inet socket (spawn-fcgi -a/-p, -s HOST:PORT) is refused unless [api] allow_inet = yes\n"
    "and inet_peers names who may connect: whoever connects sets REMOTE_ADDR. nginx\n"
    "reaches it with fastcgi_pass (see conf.d/nginx-mailwarden.conf.sample).\n";

static const char api_more_help[] =
    "SESSIONS\n"
    "  POST /api/v1/sessions {\"username\",\"password\"} returns a bearer token (send it as\n"
    "  Authorization: Bearer TOKEN); it ends after [api] session_idle_timeout unused or\n"
    "  session_lifetime in all. Failed logins lock the account after login_max_failures\n"
    "  and block the client IP after ip_max_failures, for login_lock_time.\n"
    "  The web page logs in with POST /api/v1/sessions/cookie instead: the token goes into\n"
    "  an HttpOnly, Secure, SameSite=Strict cookie and every change made with it needs the\n"
    "  answer's csrf_token in X-CSRF-Token (see mailwarden-api(8)).\n"
    "\n"
    "PRIVILEGES\n"
    "  Started as root, the API switches to the configured user (key user) and its groups\n"
    "  before opening the store, which that user must be able to write.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 after --routes/--check/--help or a stop, 1 on a start-up error, 2 usage error.\n";

static const struct mw_service_opt api_opts[] = {
    {"socket", 's', "ADDRESS",
     "listen on ADDRESS itself instead of the socket inherited on\ndescriptor 0: a socket "
     "path (made [api] socket_mode, group\nsocket_group, in a private directory), or "
     "\":PORT\" / \"HOST:PORT\"\n(needs allow_inet)"},
    {"routes", 0, NULL, "print the route table (METHOD PATH ROLE) and exit"},
    {NULL, 0, NULL, NULL},
};

static const char *const api_sections[] = {"main", "store", "password", "api", "forms", NULL};

/* What the master hands its workers. */
struct api_main {
	struct mw_service svc;
	struct api_ctx *ctx;
	const char *listen_addr;      /* -s */
	int sock;                     /* the FastCGI listening socket */
	int handoff[2];               /* idle kept connections between workers (api-fcgi.c) */
	unsigned *idle_workers;       /* shared by the workers: how many wait for work */
	bool inet;                    /* peers are checked against [api] inet_peers */
	mw_str log_pending;           /* the worker's request log lines not yet written */
	struct mw_service_pool *pool; /* its helper: the forms' flusher, only with forms */
};

static void print_routes(void);

/* api_option - -s ADDRESS, --routes */
static int api_option(void *arg, int opt, const char *value)
{
	struct api_main *m = arg;
	if (opt == 's') {
		m->listen_addr = value;
		return 0;
	}
	if (opt == MW_SERVICE_OPT_LONG(1)) {
		print_routes();
		return 1;
	}
	return -1;
}

/* api_listen - the FastCGI socket: -s /path is a unix socket made by lib/mw-daemon.c
   (private directory, [api] socket_mode/socket_group); -s HOST:PORT and an inherited inet
   socket (spawn-fcgi -a/-p) only with [api] allow_inet = yes and inet_peers, because
   whoever reaches the socket sets REMOTE_ADDR (the per-IP throttle, the audit log). Sets
   *inet_r when connections must be checked against inet_peers. */
static int api_listen(const mw_config *cfg, const char *listen_addr, bool *inet_r)
{
	struct mw_listen l = {
	    .what = "mailwarden-api socket",
	    .mode = mw_config_str(cfg, MWK_API_SOCKET_MODE),
	    .group = mw_config_str(cfg, MWK_API_SOCKET_GROUP),
	    .gid = getegid(),
	    .uid = (uid_t)-1,
	    .allow_inet = mw_config_bool(cfg, MWK_API_ALLOW_INET),
	    .inet_peers = mw_config_str(cfg, MWK_API_INET_PEERS),
	    .allow_key = "[api] allow_inet",
	    .peers_key = "[api] inet_peers",
	};
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	mw_error err = {{0}};
	char spec[256];
	int fd;

	*inet_r = false;
	if (listen_addr == NULL) {
		/* spawn-fcgi's socket on descriptor 0; not a socket = not reachable by anyone */
		if (getsockname(0, (struct sockaddr *)&ss, &len) < 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			return 0;
		l.spec = "inet:(descriptor 0 from spawn-fcgi)";
		if (mw_daemon_inet_allowed(&l, &err) < 0)
			mw_fatal("%s", err.msg);
		*inet_r = true;
		return 0;
	}
	if (listen_addr[0] == '/') {
		if ((size_t)snprintf(spec, sizeof(spec), "unix:%s", listen_addr) >= sizeof(spec))
			mw_fatal("-s %s: too long", listen_addr);
	} else {
		/* HOST:PORT, [V6]:PORT or :PORT (every IPv4 address) as inet:PORT@HOST */
		const char *colon = strrchr(listen_addr, ':'), *host = listen_addr;
		size_t hlen = colon != NULL ? (size_t)(colon - listen_addr) : 0;
		bool v6 = hlen >= 2 && listen_addr[0] == '[' && listen_addr[hlen - 1] == ']';
		if (v6) {
			host++;
			hlen -= 2;
		} else if (hlen == 0) {
			host = "0.0.0.0";
			hlen = 7;
		}
		if (colon == NULL || colon[1] == '\0' ||
		    (size_t)snprintf(spec, sizeof(spec), "%s:%s@%.*s", v6 ? "inet6" : "inet",
		                     colon + 1, (int)hlen, host) >= sizeof(spec))
			mw_fatal("-s %s: expected /path, HOST:PORT or :PORT", listen_addr);
		*inet_r = true;
	}
	l.spec = spec;
	if (mw_daemon_listen(&l, 64, &fd, &err) < 0)
		mw_fatal("%s", err.msg);
	return fd;
}

/* parse_length - CONTENT_LENGTH: absent or "" = 0; digits only; -1 when malformed */
static long long parse_length(const char *s)
{
	long long n = 0;
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || n > (1LL << 40))
			return -1;
		n = n * 10 + (*s - '0');
	}
	return n;
}

/* header_ok - an optional header within API_HEADER_MAX bytes */
static bool header_ok(const char *v)
{
	return v == NULL || strnlen(v, API_HEADER_MAX + 1) <= API_HEADER_MAX;
}

/* method_label - the method as a metrics label (a bounded set) */
static const char *method_label(const char *m)
{
	static const char *const known[] = {"GET",   "HEAD",   "POST",   "PUT",
	                                    "PATCH", "DELETE", "OPTIONS"};
	size_t i;
	for (i = 0; m != NULL && i < MW_N_ELEMENTS(known); i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

/* status_label - the status as a metrics label */
static const char *status_label(int status, char *buf, size_t size)
{
	(void)snprintf(buf, size, "%d", status);
	return buf;
}

/* take_params - the parameters the API reads, in one pass over the request's (nginx sends
   ~30; one api_fcgi_param per name was ~400 strcmp a request). The first of a repeated
   name wins, as with api_fcgi_param. */
static void take_params(const struct api_fcgi_request *r, struct api_request *req,
                        const char **content_length_r)
{
	const struct {
		const char *name;
		size_t len;
		const char **slot;
	} want[] = {
#define WANT(name, slot) {name, sizeof(name) - 1, slot}
	    WANT("REQUEST_METHOD", &req->method),
	    WANT("REQUEST_URI", &req->request_uri),
	    WANT("CONTENT_TYPE", &req->content_type),
	    WANT("CONTENT_LENGTH", content_length_r),
	    WANT("HTTP_AUTHORIZATION", &req->authorization),
	    WANT("REMOTE_ADDR", &req->remote_addr),
	    WANT("HTTP_USER_AGENT", &req->user_agent),
	    WANT("HTTP_ORIGIN", &req->origin),
	    WANT("HTTP_COOKIE", &req->cookie),
	    WANT("HTTP_X_CSRF_TOKEN", &req->csrf_header),
	    WANT("HTTP_SEC_FETCH_SITE", &req->sec_fetch_site),
	    WANT("HTTP_HOST", &req->host),
	    WANT("HTTPS", &req->https),
	    WANT("SERVER_PORT", &req->server_port),
#undef WANT
	};
	size_t i, k, len;
	*content_length_r = NULL;
	for (i = 0; i < r->nparams; i++) {
		len = strlen(r->names[i]);
		for (k = 0; k < MW_N_ELEMENTS(want); k++)
			if (want[k].len == len && *want[k].slot == NULL &&
			    memcmp(want[k].name, r->names[i], len) == 0) {
				*want[k].slot = r->values[i];
				break;
			}
	}
}

/* handle - dispatch one request and append its answer to out (api-fcgi.c's handler) */
static void handle(void *arg, const struct api_fcgi_request *r, mw_str *out)
{
	struct api_main *m = arg;
	struct api_ctx *ctx = m->ctx;
	struct api_request req;
	struct api_response res;
	long long len, max = mw_config_int(ctx->cfg, MWK_API_MAX_BODY);
	const char *content_length;
	char safe[256], status[16];
	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	take_params(r, &req, &content_length);
	if (req.remote_addr != NULL && strlen(req.remote_addr) > MW_CLIENT_IP_MAX)
		req.remote_addr = "";
	len = parse_length(content_length);
	if (r->bad != NULL) {
		api_error(&res, 400, "bad_request", "%s", r->bad);
	} else if (!header_ok(req.authorization) || !header_ok(req.user_agent) ||
	           !header_ok(req.origin) || !header_ok(req.content_type) ||
	           !header_ok(req.cookie) || !header_ok(req.csrf_header) ||
	           !header_ok(req.sec_fetch_site) || !header_ok(req.host) ||
	           !header_ok(req.server_port)) {
		api_error(&res, 400, "bad_request", "a request header is longer than %d bytes",
		          API_HEADER_MAX);
	} else if (req.request_uri != NULL &&
	           strnlen(req.request_uri, API_URI_MAX + 1) > API_URI_MAX) {
		api_error(&res, 414, "uri_too_long", "the request URI is longer than %d bytes",
		          API_URI_MAX);
	} else if (len < 0) {
		api_error(&res, 400, "bad_request", "invalid Content-Length");
	} else if (len > max || r->body_too_large) {
		api_error(&res, 413, "body_too_large", "the request body is larger than %lld bytes",
		          max);
	} else if ((size_t)len != r->body_len) {
		api_error(&res, 400, "bad_request", "the request body is not as long as announced");
	} else {
		req.body = mw_malloc(r->body_len + 1);
		memcpy(req.body, r->body, r->body_len);
		req.body[r->body_len] = '\0';
		req.body_len = r->body_len;
		api_dispatch(ctx, &req, &res);
	}
	if (res.status == 0)
		api_error(&res, 500, "internal", "no answer");
	if (res.cors_allow[0] != '\0') /* a contact form's own origin (api-forms.c) */
		api_render_head(out, &res, res.cors_allow, req.origin);
	else
		api_render_head(out, &res, mw_config_str(ctx->cfg, MWK_API_CORS_ORIGIN),
		                req.origin);
	if (res.raw != NULL) {
		(void)mw_str_append(out, res.raw, res.raw_len);
		mw_memzero(res.raw, res.raw_len); /* a profile may hold an app password */
		free(res.raw);
	} else if (res.body != NULL) {
		/* straight into the answer (api-fcgi.c wipes it once sent): no copy to wipe */
		if (api_json_render(out, res.body) == 0)
			(void)mw_str_appendc(out, '\n');
		json_decref(res.body);
	}
	mw_metrics_inc(MWM_API_REQUESTS, method_label(req.method), req.route ? req.route : "none",
	               status_label(res.status, status, sizeof(status)));
	/* logged by log_answered once the answer is written */
	(void)mw_str_appendf(
	    &m->log_pending, "%s %s %d actor=%s client=%s\n", req.method != NULL ? req.method : "-",
	    req.request_uri != NULL
	        ? mw_log_value(safe, sizeof(safe), req.request_uri, strlen(req.request_uri))
	        : "-",
	    res.status, req.actor[0] != '\0' ? req.actor : "api:-",
	    req.remote_addr != NULL ? req.remote_addr : "-");
	api_request_free(&req);
}

/* log_answered - the request lines of the answers just written (api-fcgi.c's answered);
   each is one line (mw_log_value escapes the URI, the other fields hold no newline) */
static void log_answered(void *arg)
{
	struct api_main *m = arg;
	char *line, *end;
	if (m->log_pending.len == 0)
		return;
	for (line = m->log_pending.buf; (end = strchr(line, '\n')) != NULL; line = end + 1) {
		*end = '\0';
		mw_info("%s", line);
	}
	mw_str_reset(&m->log_pending);
}

/* print_routes - the route table, one "METHOD PATH ROLE" line each */
static void print_routes(void)
{
	size_t i;
	for (i = 0; i < api_routes_count; i++)
		printf("%s %s %s\n", api_routes[i].method, api_routes[i].pattern,
		       api_role_name(api_routes[i].role));
}

/* open_store - the store, with a current schema */
static mw_store *open_store(const mw_config *cfg)
{
	mw_error err = {{0}};
	mw_store *store =
	    mw_store_open(mw_config_str(cfg, MWK_STORE),
	                  (unsigned)(mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT) * 1000), &err);
	if (store == NULL || mw_store_check_schema(store, &err) < 0)
		mw_fatal("store: %s", err.msg);
	return store;
}

/* dummy_hash - the hash a login that names no usable user is verified against, so it
   costs what a real check costs */
static void dummy_hash(struct api_ctx *ctx)
{
	char pw[32];
	mw_error err = {{0}};
	if (mw_password_generate(pw, sizeof(pw), 20, &err) < 0 ||
	    mw_password_hash(
	        pw, (size_t)mw_config_int(ctx->cfg, MWK_PASSWORD_ARGON2_MEMORY),
	        (unsigned long long)mw_config_int(ctx->cfg, MWK_PASSWORD_ARGON2_PASSES),
	        ctx->dummy_hash, sizeof(ctx->dummy_hash), &err) < 0)
		mw_fatal("password hashing: %s", err.msg);
	mw_memzero(pw, sizeof(pw));
}

/* worker_run - one worker: its own store connection, then requests until told to stop */
static void worker_run(void *arg)
{
	struct api_main *m = arg;
	struct api_ctx *ctx = m->ctx;
	struct api_fcgi_conf conf = {
	    .listen_fd = m->sock,
	    .handoff_fd = -1,
	    .handoff_out = -1,
	    .max_body = (size_t)mw_config_int(ctx->cfg, MWK_API_MAX_BODY),
	    .inet_peers = m->inet ? mw_config_str(ctx->cfg, MWK_API_INET_PEERS) : NULL,
	    .handler = handle,
	    .answered = log_answered,
	    .ctx = m,
	};
	mw_error err = {{0}};

	if (mw_config_int(ctx->cfg, MWK_API_WORKERS) > 1) { /* alone, there is nobody to hand to */
		conf.handoff_fd = m->handoff[1];
		conf.handoff_out = m->handoff[0];
		conf.idle_workers = m->idle_workers;
	}
	ctx->store = open_store(ctx->cfg);
	ctx->authcache = api_authcache_new();
	if (api_fcgi_serve(&conf, &err) < 0)
		mw_error_log("FastCGI: %s", err.msg);
	log_answered(m);
	mw_str_free(&m->log_pending);
	api_authcache_free(&ctx->authcache);
	mw_store_close(&ctx->store);
}

/* flusher_run - the pool's helper: delivers the spooled forms (api-formflush.c); started only
   when forms are configured */
static void flusher_run(void *arg)
{
	struct api_main *m = arg;
	api_form_flusher(m->ctx->cfg);
}

/* api_reload - SIGHUP in the master: a new configuration for the next workers */
static int api_reload(void *arg, unsigned *workers_r)
{
	struct api_main *m = arg;
	mw_error err = {{0}};
	mw_config *cfg = mw_service_config(&m->svc, &err);
	if (cfg == NULL) {
		mw_error_log("event=reload status=failed error=\"%s\"", err.msg);
		return -1;
	}
	{
		struct api_ctx probe = {.cfg = cfg};
		if (api_forms_load(&probe, &err) < 0 ||
		    (probe.forms->n > 0 &&
		     mw_form_spool_init(mw_config_str(cfg, MWK_FORMS_SPOOL_DIR), &err) < 0)) {
			mw_error_log("event=reload status=failed error=\"%s\"", err.msg);
			mw_forms_free(&probe.forms);
			mw_config_unref(&cfg);
			return -1;
		}
		mw_forms_free(&m->ctx->forms);
		m->ctx->forms = probe.forms;
		m->ctx->form_key_set = false;
		/* a reload that adds the first form starts the flusher, one that removes the last
		   ends it (the pool stops the old helper on every reload) */
		m->pool->helper = probe.forms->n > 0 ? flusher_run : NULL;
	}
	mw_config_unref(&m->ctx->cfg);
	m->ctx->cfg = cfg;
	dummy_hash(m->ctx);
	*workers_r = (unsigned)mw_config_int(cfg, MWK_API_WORKERS);
	return 0;
}

/* main - options, configuration, socket, privileges, then the pool of workers */
int main(int argc, char **argv)
{
	static const struct mw_service_info info = {
	    .name = API_NAME,
	    .summary = api_summary,
	    .sections = api_sections,
	    .opts = api_opts,
	    .more_help = api_more_help,
	    .option = api_option,
	};
	static struct api_main m;
	struct mw_service_info own = info;
	struct mw_service_pool pool;
	mw_error err = {{0}};
	char backend[32];
	bool not_root;

	own.ctx = &m;
	mw_service_args(&m.svc, &own, argc, argv);
	if (sodium_init() < 0)
		mw_fatal("libsodium cannot start");
	api_json_wipe_init(NULL); /* before anything is parsed; the workers inherit it */
	m.ctx = mw_calloc(1, sizeof(*m.ctx));
	m.ctx->cfg = mw_service_config(&m.svc, &err);
	if (m.ctx->cfg == NULL)
		mw_fatal("%s", err.msg);
	if (mw_service_reload_check(&m.svc, mw_config_str(m.ctx->cfg, MWK_USER), &err) < 0)
		mw_fatal("%s", err.msg);
	if (api_forms_load(m.ctx, &err) < 0) /* [forms] lines as a whole */
		mw_fatal("%s", err.msg);
	m.sock = api_listen(m.ctx->cfg, m.listen_addr, &m.inet);
	if (!m.svc.check && mw_service_pidfile_open(&m.svc, &err) < 0)
		mw_fatal("%s", err.msg);
	if (mw_daemon_drop_privileges(mw_config_str(m.ctx->cfg, MWK_USER), &not_root, &err) < 0)
		mw_fatal("%s: refusing to serve requests as root", err.msg);
	/* the contact forms' spool (made as the user that writes it); one flusher beside the
	   workers */
	if (m.ctx->forms->n > 0 &&
	    mw_form_spool_init(mw_config_str(m.ctx->cfg, MWK_FORMS_SPOOL_DIR), &err) < 0)
		mw_fatal("%s", err.msg);
	/* the store is checked here, then closed: each worker opens its own */
	m.ctx->store = open_store(m.ctx->cfg);
	(void)mw_strlcpy(backend, mw_store_backend_name(m.ctx->store), sizeof(backend));
	mw_store_close(&m.ctx->store);
	dummy_hash(m.ctx);
	if (m.svc.check) {
		printf("configuration and store are fine\n");
		mw_forms_free(&m.ctx->forms);
		mw_config_unref(&m.ctx->cfg);
		free(m.ctx);
		return 0;
	}
	if (mw_service_detach(&m.svc, m.ctx->cfg, &m.sock, &err) < 0)
		mw_fatal("%s", err.msg);
	/* made after detaching (which closes what it does not know); each worker inherits it */
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, m.handoff) < 0 ||
	    fcntl(m.handoff[1], F_SETFL, O_NONBLOCK) < 0)
		mw_fatal("hand-off socket pair: %s", strerror(errno));
	m.idle_workers = mmap(NULL, sizeof(*m.idle_workers), PROT_READ | PROT_WRITE,
	                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m.idle_workers == MAP_FAILED)
		mw_fatal("shared worker counter: %s", strerror(errno));
	*m.idle_workers = 0;
	mw_info("ready (store %s, %ld workers)", backend,
	        (long)mw_config_int(m.ctx->cfg, MWK_API_WORKERS));
	/* the request counters, in memory every worker forked from here shares */
	if (mw_metrics_init(true, &err) < 0 || mw_degraded_share(&err) < 0)
		mw_fatal("%s", err.msg);
	mw_degraded_watch(MW_DEGRADED_API_STORE);
	memset(&pool, 0, sizeof(pool));
	pool.service = &m.svc;
	pool.workers = (unsigned)mw_config_int(m.ctx->cfg, MWK_API_WORKERS);
	pool.grace_s = 30;
	pool.run = worker_run;
	pool.helper = m.ctx->forms->n > 0 ? flusher_run : NULL;
	m.pool = &pool;
	pool.reload = api_reload;
	pool.ctx = &m;
	if (mw_service_pool_run(&pool, &err) < 0)
		mw_fatal("%s", err.msg);
	mw_service_end(&m.svc);
	mw_forms_free(&m.ctx->forms);
	mw_config_unref(&m.ctx->cfg);
	free(m.ctx);
	return 0;
}
