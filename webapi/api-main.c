/* api-main.c - mailwarden-api: the FastCGI JSON API for users, passwords and sessions.
 *
 * Runs under spawn-fcgi (the listening socket arrives as descriptor 0) or opens its own
 * socket with -s; serves one request at a time (run several processes with spawn-fcgi -F
 * for concurrency). Started as root it switches to the configured user (config key user)
 * before opening the store; it never serves a request as root.
 *
 * Per request: the FastCGI parameters are read with limits (URI, header lengths, body size
 * [api] max_body: a larger CONTENT_LENGTH is drained and answered 413 without parsing),
 * then api_dispatch (api-routes.c) answers; the answer always carries the security headers
 * (api_render_head). Nothing in the request path exits the process.
 *
 * Public: main.
 * Diagnostics: start-up errors go to stderr and exit 1; requests are logged at info
 * level (method, path, status, actor, client) through mw_log.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-daemon.h"
#include "mw-log.h"

#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char api_help[] =
    "usage: mailwarden-api [-c FILE] [-s ADDRESS]\n"
    "       mailwarden-api --routes | --check [-c FILE] | --help\n"
    "\n"
    "The mailwarden JSON API (users, passwords, allowed-From patterns, sessions, audit log)\n"
    "as a FastCGI application behind nginx. Normally started by spawn-fcgi, which passes the\n"
    "listening socket as descriptor 0:\n"
    "  spawn-fcgi -s /run/mailwarden-api/api.sock -M 0660 -U root -G www-data \\\n"
    "      -u mailwarden -- /usr/sbin/mailwarden-api -c FILE\n"
    "(the socket in a directory only root and nginx's group can enter). An inet socket\n"
    "(spawn-fcgi -a/-p, -s HOST:PORT) is refused unless [api] allow_inet = yes and\n"
    "inet_peers names who may connect: whoever connects sets REMOTE_ADDR. nginx reaches\n"
    "it with fastcgi_pass (see conf.d/nginx-mailwarden.conf.sample).\n"
    "\n"
    "OPTIONS\n"
    "  -c FILE     configuration file (default " MW_CONFIG_DEFAULT_PATH "; its conf.d/\n"
    "              *.conf follow in name order). Keys: [api] section, store, user, log.\n"
    "  -s ADDRESS  listen on ADDRESS itself instead of the socket inherited on descriptor\n"
    "              0: a socket path (made [api] socket_mode, group socket_group, in a\n"
    "              private directory), or \":PORT\" / \"HOST:PORT\" (needs allow_inet)\n"
    "  --routes    print the route table (METHOD PATH ROLE) and exit\n"
    "  --check     load the configuration, open the store, check its schema, exit\n"
    "  -h, --help  this text\n"
    "\n"
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
    "  0 after --routes/--check/--help or when the socket is closed, 1 on a start-up error.\n";

/* drop_privileges - become the configured user when started as root */
static void drop_privileges(const mw_config *cfg)
{
	mw_error err = {{0}};
	if (mw_daemon_drop_privileges(mw_config_str(cfg, MWK_USER), NULL, &err) < 0)
		mw_fatal("%s: refusing to serve requests as root", err.msg);
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
	if ((size_t)snprintf(spec, sizeof(spec), "%s%s", listen_addr[0] == '/' ? "unix:" : "inet:",
	                     listen_addr) >= sizeof(spec))
		mw_fatal("-s %s: too long", listen_addr);
	l.spec = spec;
	if (listen_addr[0] == '/') {
		if (mw_daemon_listen(&l, 64, &fd, &err) < 0)
			mw_fatal("%s", err.msg);
		return fd;
	}
	if (mw_daemon_inet_allowed(&l, &err) < 0)
		mw_fatal("%s", err.msg);
	fd = FCGX_OpenSocket(listen_addr, 64);
	if (fd < 0)
		mw_fatal("cannot listen on %s", listen_addr);
	*inet_r = true;
	return fd;
}

/* peer_refused - an inet connection from outside [api] inet_peers: 403, nothing read */
static bool peer_refused(const mw_config *cfg, FCGX_Request *r)
{
	char peer[64];
	if (mw_daemon_peer_allowed(r->ipcFd, mw_config_str(cfg, MWK_API_INET_PEERS), peer,
	                           sizeof(peer)))
		return false;
	mw_warn("FastCGI connection from %s refused: not in [api] inet_peers", peer);
	(void)FCGX_PutS("Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\n", r->out);
	return true;
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

/* read_body - read exactly len bytes of the request body */
static int read_body(FCGX_Request *r, struct api_request *req, size_t len)
{
	size_t got = 0;
	int n;
	req->body = mw_malloc(len + 1);
	while (got < len) {
		n = FCGX_GetStr(req->body + got, (int)(len - got), r->in);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	req->body[got] = '\0';
	req->body_len = got;
	return got == len ? 0 : -1;
}

/* drain_body - read and discard what the client sent (nginx is still sending it) */
static void drain_body(FCGX_Request *r)
{
	char buf[8192];
	while (FCGX_GetStr(buf, sizeof(buf), r->in) > 0)
		;
}

/* header_ok - an optional header within API_HEADER_MAX bytes */
static bool header_ok(const char *v)
{
	return v == NULL || strnlen(v, API_HEADER_MAX + 1) <= API_HEADER_MAX;
}

/* handle - read, dispatch and answer one request */
static void handle(struct api_ctx *ctx, FCGX_Request *r)
{
	struct api_request req;
	struct api_response res;
	long long len, max = mw_config_int(ctx->cfg, MWK_API_MAX_BODY);
	char *text = NULL, safe[256];
	mw_str head;
	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	req.method = FCGX_GetParam("REQUEST_METHOD", r->envp);
	req.request_uri = FCGX_GetParam("REQUEST_URI", r->envp);
	req.content_type = FCGX_GetParam("CONTENT_TYPE", r->envp);
	req.authorization = FCGX_GetParam("HTTP_AUTHORIZATION", r->envp);
	req.remote_addr = FCGX_GetParam("REMOTE_ADDR", r->envp);
	req.user_agent = FCGX_GetParam("HTTP_USER_AGENT", r->envp);
	req.origin = FCGX_GetParam("HTTP_ORIGIN", r->envp);
	req.cookie = FCGX_GetParam("HTTP_COOKIE", r->envp);
	req.csrf_header = FCGX_GetParam("HTTP_X_CSRF_TOKEN", r->envp);
	req.sec_fetch_site = FCGX_GetParam("HTTP_SEC_FETCH_SITE", r->envp);
	req.host = FCGX_GetParam("HTTP_HOST", r->envp);
	req.https = FCGX_GetParam("HTTPS", r->envp);
	req.server_port = FCGX_GetParam("SERVER_PORT", r->envp);
	if (req.remote_addr != NULL && strlen(req.remote_addr) > MW_CLIENT_IP_MAX)
		req.remote_addr = "";
	len = parse_length(FCGX_GetParam("CONTENT_LENGTH", r->envp));
	if (!header_ok(req.authorization) || !header_ok(req.user_agent) || !header_ok(req.origin) ||
	    !header_ok(req.content_type) || !header_ok(req.cookie) || !header_ok(req.csrf_header) ||
	    !header_ok(req.sec_fetch_site) || !header_ok(req.host) || !header_ok(req.server_port)) {
		api_error(&res, 400, "bad_request", "a request header is longer than %d bytes",
		          API_HEADER_MAX);
	} else if (req.request_uri != NULL && strnlen(req.request_uri, API_URI_MAX + 1) > API_URI_MAX) {
		api_error(&res, 414, "uri_too_long", "the request URI is longer than %d bytes",
		          API_URI_MAX);
	} else if (len < 0) {
		api_error(&res, 400, "bad_request", "invalid Content-Length");
	} else if (len > max) {
		drain_body(r);
		api_error(&res, 413, "body_too_large", "the request body is larger than %lld bytes",
		          max);
	} else if (read_body(r, &req, (size_t)len) < 0) {
		api_error(&res, 400, "bad_request", "the request body is shorter than announced");
	} else {
		api_dispatch(ctx, &req, &res);
	}
	if (res.status == 0)
		api_error(&res, 500, "internal", "no answer");
	mw_str_init(&head, 0);
	api_render_head(&head, &res, mw_config_str(ctx->cfg, MWK_API_CORS_ORIGIN), req.origin);
	(void)FCGX_PutStr(head.buf, (int)head.len, r->out);
	if (res.body != NULL) {
		text = json_dumps(res.body, JSON_COMPACT);
		if (text != NULL) {
			(void)FCGX_PutStr(text, (int)strlen(text), r->out);
			(void)FCGX_PutStr("\n", 1, r->out);
			mw_memzero(text, strlen(text));
			free(text);
		}
		json_decref(res.body);
	}
	mw_info("%s %s %d actor=%s client=%s", req.method != NULL ? req.method : "-",
	        req.request_uri != NULL ? mw_log_value(safe, sizeof(safe), req.request_uri,
	                                               strlen(req.request_uri))
	                                : "-",
	        res.status, req.actor[0] != '\0' ? req.actor : "api:-",
	        req.remote_addr != NULL ? req.remote_addr : "-");
	mw_str_free(&head);
	api_request_free(&req);
}

/* print_routes - the route table, one "METHOD PATH ROLE" line each */
static void print_routes(void)
{
	size_t i;
	for (i = 0; i < api_routes_count; i++)
		printf("%s %s %s\n", api_routes[i].method, api_routes[i].pattern,
		       api_role_name(api_routes[i].role));
}

/* init_log - logging as the configuration says */
static void init_log(const mw_config *cfg)
{
	enum mw_log_level level = MW_LOG_INFO;
	mw_error err = {{0}};
	(void)mw_log_level_parse(mw_config_str(cfg, MWK_LOG_LEVEL), &level);
	if (mw_log_init("mailwarden-api",
	                strcmp(mw_config_str(cfg, MWK_LOG), "syslog") == 0 ? MW_LOG_TARGET_SYSLOG
	                                                                   : MW_LOG_TARGET_STDERR,
	                mw_config_str(cfg, MWK_SYSLOG_FACILITY), level, &err) < 0)
		mw_fatal("logging: %s", err.msg);
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

/* main - options, configuration, privileges, then the FastCGI loop */
int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
	                                         {"routes", no_argument, NULL, 'R'},
	                                         {"check", no_argument, NULL, 'C'},
	                                         {NULL, 0, NULL, 0}};
	const char *config_path = MW_CONFIG_DEFAULT_PATH, *listen_addr = NULL;
	char dummy_pw[32];
	struct api_ctx *ctx;
	FCGX_Request r;
	mw_error err = {{0}};
	bool check = false, inet = false;
	int c, sock = 0;
	(void)mw_log_init("mailwarden-api", MW_LOG_TARGET_STDERR, "mail", MW_LOG_INFO, NULL);
	while ((c = getopt_long(argc, argv, "c:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 's': listen_addr = optarg; break;
		case 'h': fputs(api_help, stdout); return 0;
		case 'R': print_routes(); return 0;
		case 'C': check = true; break;
		default: fputs(api_help, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(api_help, stderr);
		return 2;
	}
	if (sodium_init() < 0)
		mw_fatal("libsodium cannot start");
	ctx = mw_calloc(1, sizeof(*ctx));
	ctx->cfg = mw_config_load(config_path, false, &err);
	if (ctx->cfg == NULL)
		mw_fatal("%s", err.msg);
	init_log(ctx->cfg);
	if (FCGX_Init() != 0)
		mw_fatal("FastCGI library cannot start");
	sock = api_listen(ctx->cfg, listen_addr, &inet);
	drop_privileges(ctx->cfg);
	ctx->store = open_store(ctx->cfg);
	if (mw_password_generate(dummy_pw, sizeof(dummy_pw), 20, &err) < 0 ||
	    mw_password_hash(dummy_pw, (size_t)mw_config_int(ctx->cfg, MWK_PASSWORD_ARGON2_MEMORY),
	                     (unsigned long long)mw_config_int(ctx->cfg, MWK_PASSWORD_ARGON2_PASSES),
	                     ctx->dummy_hash, sizeof(ctx->dummy_hash), &err) < 0)
		mw_fatal("password hashing: %s", err.msg);
	if (check) {
		printf("configuration and store are fine\n");
		mw_store_close(&ctx->store);
		mw_config_unref(&ctx->cfg);
		free(ctx);
		return 0;
	}
	(void)signal(SIGPIPE, SIG_IGN);
	if (FCGX_InitRequest(&r, sock, 0) != 0)
		mw_fatal("FastCGI request set-up failed");
	mw_info("ready (store %s)", mw_store_backend_name(ctx->store));
	while (FCGX_Accept_r(&r) >= 0) {
		if (!inet || !peer_refused(ctx->cfg, &r))
			handle(ctx, &r);
		FCGX_Finish_r(&r);
	}
	mw_store_close(&ctx->store);
	mw_config_unref(&ctx->cfg);
	free(ctx);
	return 0;
}
