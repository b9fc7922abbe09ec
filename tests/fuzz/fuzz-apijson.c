/* FUZZ_SOURCES: webapi/api-http.c webapi/api-routes.c webapi/api-support.c webapi/api-sessions.c
 * webapi/api-users.c webapi/api-misc.c webapi/api-totp-state.c webapi/api-totp.c webapi/api-apppw.c
 * webapi/api-policies.c webapi/api-tagrules.c webapi/api-dkim.c webapi/api-authpolicy.c
 * webapi/api-guard.c webapi/api-net.c webapi/api-cookie.c webapi/api-qr.c webapi/api-dns.c
 * webapi/api-discovery.c webapi/api-dmarc-reports.c
 * webapi/api-forms.c webapi/api-authcache.c */
/* FUZZ_PKGS: jansson liboath libqrencode */
/* FUZZ_LDFLAGS: -Wl,--wrap=mw_dkim_generate_rsa */
/*
 * fuzz-apijson.c - fuzz target for every JSON request body of mailwarden-api (libFuzzer).
 *
 * Public: LLVMFuzzerTestOneInput.
 *
 * Input: byte 0 picks a route of the real table (api_routes) that is not a GET, byte 1 the
 * caller (an admin's session, alice's own session, no session; for Dovecot's auth policy
 * hook the shared secret, and bit 3 its command) and whether the body is announced as JSON
 * (bit 2); the rest is the request body. The request runs through api_dispatch
 * exactly as mailwarden-api runs it (body parsing, field checks, the handler) against a
 * SQLite store copied afresh from a template for every input (users admin@x.org and
 * alice@x.org with live sessions, a master key), so every input starts from the same
 * state and a handler that accepts the body really writes to the store.
 *
 * What an answer must be: a status the API knows, never 500 or 503 (the store is fine, so
 * either is a bug in the handler); a JSON body for every status but 204, which has none;
 * an error body of the form {"error": {"code", "message"}}. (The counter reset asks
 * mailwarden-policyd, which does not run here: its 503 is expected.)
 *
 * RSA key generation (POST /dkim/keys) is wrapped (-Wl,--wrap): each size is generated once
 * and handed out again, so a valid body does not cost a second of CPU every time.
 *
 * Diagnostics: a broken invariant prints the route and status on stderr and aborts.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-dkim-sign.h"
#include "mw-log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __real_mw_dkim_generate_rsa(unsigned bits, mw_str *pem_r, mw_str *pub_r, mw_error *error_r);
int __wrap_mw_dkim_generate_rsa(unsigned bits, mw_str *pem_r, mw_str *pub_r, mw_error *error_r);

#define ADMIN_TOKEN    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define ALICE_TOKEN    "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define ALICE_PASSWORD "correct horse battery"
#define POLICY_SECRET  "fuzz-policy-secret-0123456789abcdefghijkl"

static struct {
	bool ready;
	char dir[128];
	char db[192], template_db[192];
	struct api_ctx *ctx;
	const struct api_route *routes[64];
	size_t nroutes;
	char *rsa_pem[3], *rsa_pub[3];
} g;

/* broken - report a broken invariant and abort */
static void broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz-apijson: invariant broken: %s [%s]\n", what, detail);
	abort();
}

/* __wrap_mw_dkim_generate_rsa - one real key per size, then copies of it */
int __wrap_mw_dkim_generate_rsa(unsigned bits, mw_str *pem_r, mw_str *pub_r, mw_error *error_r)
{
	int i = bits == 2048 ? 0 : bits == 3072 ? 1 : bits == 4096 ? 2 : -1;
	if (i < 0)
		return __real_mw_dkim_generate_rsa(bits, pem_r, pub_r, error_r);
	if (g.rsa_pem[i] == NULL) {
		mw_str pem, pub;
		mw_str_init(&pem, 0);
		mw_str_init(&pub, 0);
		if (__real_mw_dkim_generate_rsa(bits, &pem, &pub, error_r) < 0)
			return -1;
		g.rsa_pem[i] = mw_str_steal(&pem);
		g.rsa_pub[i] = mw_str_steal(&pub);
	}
	if (mw_str_appends(pem_r, g.rsa_pem[i]) < 0 || mw_str_appends(pub_r, g.rsa_pub[i]) < 0) {
		mw_error_set(error_r, "key does not fit");
		return -1;
	}
	return 0;
}

/* token_hash - the hex SHA-256 of a token, as api-sessions.c stores it */
static void token_hash(const char *token, char out[MW_TOKEN_HASH_HEX + 1])
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
	(void)sodium_bin2hex(out, MW_TOKEN_HASH_HEX + 1, digest, sizeof(digest));
}

/* copy_file - copy FROM over TO */
static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	if (in == NULL || out == NULL)
		broken("cannot copy the template store", from);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			broken("cannot write the store", to);
	fclose(in);
	if (fclose(out) != 0)
		broken("cannot write the store", to);
}

/* add_user - a user with a live session of TOKEN */
static void add_user(mw_store *store, const char *name, enum mw_user_role role, const char *hash,
                     const char *token)
{
	struct mw_session se;
	mw_error err = {{0}};
	int64_t id;
	if (mw_store_user_add(store, name, hash, MW_USER_ACTIVE, role, NULL, &id, &err) != 0)
		broken("user add", err.msg);
	memset(&se, 0, sizeof(se));
	token_hash(token, se.token_hash);
	se.user_id = id;
	se.created_at = se.last_seen_at = mw_now();
	se.idle_timeout = 100000000;
	se.expires_at = mw_now() + 100000000;
	(void)mw_strlcpy(se.client_ip, "192.0.2.1", sizeof(se.client_ip));
	if (mw_store_session_add(store, &se, &err) != MW_STORE_OK)
		broken("session add", err.msg);
}

/* cleanup - remove the temporary directory at exit */
static void cleanup(void)
{
	static const char *const names[] = {"t.db",     "t.db-journal", "t.db-wal",
	                                    "t.db-shm", "template.db",  "master.key"};
	char path[256];
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(names); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", g.dir, names[i]);
		(void)unlink(path);
	}
	(void)rmdir(g.dir);
}

/* init - the configuration, the template store and the route list, once */
static void init(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char conf[1024], url[256], key[192], hash[MW_PASSWORD_HASH_MAX];
	mw_error err = {{0}};
	mw_store *store;
	size_t i;
	int n;

	if (sodium_init() < 0)
		broken("sodium_init", "");
	(void)mw_log_init("fuzz-apijson", MW_LOG_TARGET_STDERR, "mail", MW_LOG_ERROR, NULL);
	(void)snprintf(g.dir, sizeof(g.dir), "%s/mw-fuzz-apijson.XXXXXX", base);
	if (mkdtemp(g.dir) == NULL)
		broken("mkdtemp", g.dir);
	(void)atexit(cleanup);
	(void)snprintf(g.db, sizeof(g.db), "%s/t.db", g.dir);
	(void)snprintf(g.template_db, sizeof(g.template_db), "%s/template.db", g.dir);
	(void)snprintf(key, sizeof(key), "%s/master.key", g.dir);
	if (mw_secret_key_create(key, &err) < 0)
		broken("master key", err.msg);
	n = snprintf(conf, sizeof(conf),
	             "store = sqlite:%s\nmaster_key = %s\n[password]\nargon2_memory = 8192\n"
	             "argon2_passes = 1\n[api]\nauth_policy_secret = " POLICY_SECRET "\n",
	             g.db, key);
	g.ctx = mw_calloc(1, sizeof(*g.ctx));
	g.ctx->cfg = mw_config_load_string(conf, (size_t)n, "fuzz.conf", &err);
	if (g.ctx->cfg == NULL)
		broken("configuration", err.msg);
	if (mw_password_hash(ALICE_PASSWORD, 8192, 1, hash, sizeof(hash), &err) < 0)
		broken("password hash", err.msg);
	(void)mw_strlcpy(g.ctx->dummy_hash, hash, sizeof(g.ctx->dummy_hash));

	(void)snprintf(url, sizeof(url), "sqlite:%s", g.template_db);
	store = mw_store_open(url, 1000, &err);
	if (store == NULL || mw_store_migrate(store, &err) < 0)
		broken("template store", err.msg);
	add_user(store, "admin@x.org", MW_ROLE_ADMIN, hash, ADMIN_TOKEN);
	add_user(store, "alice@x.org", MW_ROLE_USER, hash, ALICE_TOKEN);
	mw_store_close(&store);

	for (i = 0; i < api_routes_count && g.nroutes < MW_N_ELEMENTS(g.routes); i++)
		if (strcmp(api_routes[i].method, "GET") != 0)
			g.routes[g.nroutes++] = &api_routes[i];
	g.ready = true;
}

/* build_uri - the route's pattern with its {params} filled in */
static void build_uri(const char *pattern, char *out, size_t outsize)
{
	mw_str s;
	const char *p = pattern;
	mw_str_init(&s, outsize - 1);
	while (*p != '\0') {
		if (*p == '{') {
			const char *end = strchr(p, '}');
			size_t len = (size_t)(end - p - 1);
			const char *v = "1";
			if (len == 8 && memcmp(p + 1, "username", 8) == 0)
				v = "alice@x.org";
			else if (len == 7 && memcmp(p + 1, "pattern", 7) == 0)
				v = "%2A%40x.org";
			else if (len == 6 && memcmp(p + 1, "domain", 6) == 0)
				v = "x.org";
			else if (len == 8 && memcmp(p + 1, "selector", 8) == 0)
				v = "s1";
			(void)mw_str_appends(&s, v);
			p = end + 1;
		} else {
			(void)mw_str_appendc(&s, *p++);
		}
	}
	(void)mw_strlcpy(out, mw_str_c(&s), outsize);
	mw_str_free(&s);
}

/* check_response - what every answer must be */
static void check_response(const struct api_route *route, const struct api_response *res)
{
	char what[256];
	json_t *e;
	(void)snprintf(what, sizeof(what), "%s %s -> %d", route->method, route->pattern,
	               res->status);
	/* the counter reset talks to mailwarden-policyd, which is not running here */
	bool policyd = route->fn == api_user_ratelimit_reset;
	if (res->status == 0 || res->status == 500 || (res->status == 503 && !policyd) ||
	    strcmp(api_status_text(res->status), "Internal Server Error") == 0)
		broken("status 0, 500, 503 or unknown", what);
	if (res->status == 204) {
		if (res->body != NULL)
			broken("204 with a body", what);
		return;
	}
	if (res->body == NULL)
		broken("no body (an unencodable message?)", what);
	if (res->status >= 400) {
		e = json_object_get(res->body, "error");
		if (!json_is_object(e) || !json_is_string(json_object_get(e, "code")) ||
		    !json_is_string(json_object_get(e, "message")))
			broken("error body without error.code and error.message", what);
	}
	{
		char *text = json_dumps(res->body, JSON_COMPACT);
		if (text == NULL)
			broken("body does not serialise", what);
		free(text);
	}
}

/* LLVMFuzzerTestOneInput - one request with the input as its body */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const auths[] = {"Bearer " ADMIN_TOKEN, "Bearer " ALICE_TOKEN, NULL};
	struct api_request req;
	struct api_response res;
	const struct api_route *route;
	char uri[512], url[256];
	mw_error err = {{0}};

	if (size < 2)
		return 0;
	if (!g.ready)
		init();
	route = g.routes[data[0] % g.nroutes];
	copy_file(g.template_db, g.db);
	(void)snprintf(url, sizeof(url), "sqlite:%s", g.db);
	g.ctx->store = mw_store_open(url, 1000, &err);
	if (g.ctx->store == NULL)
		broken("store open", err.msg);

	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	build_uri(route->pattern, uri, sizeof(uri));
	req.method = route->method;
	req.request_uri = uri;
	req.content_type = (data[1] & 4) != 0 ? "text/plain" : "application/json";
	req.authorization = auths[(data[1] & 3) % 3];
	if (route->fn == api_auth_policy) {
		/* Dovecot's hook: the shared secret, and the command in the query */
		if ((data[1] & 3) == 0)
			req.authorization = "Bearer " POLICY_SECRET;
		size_t ulen = strlen(uri);
		(void)mw_strlcpy(uri + ulen,
		                 (data[1] & 8) != 0 ? "?command=allow" : "?command=report",
		                 sizeof(uri) - ulen);
	}
	req.remote_addr = "192.0.2.7";
	req.user_agent = "fuzz";
	req.body = mw_malloc(size - 2 + 1);
	memcpy(req.body, data + 2, size - 2);
	req.body[size - 2] = '\0';
	req.body_len = size - 2;

	api_dispatch(g.ctx, &req, &res);
	check_response(route, &res);
	json_decref(res.body);
	api_request_free(&req);
	mw_store_close(&g.ctx->store);
	return 0;
}
