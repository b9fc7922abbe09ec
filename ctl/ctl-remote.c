/*
 * ctl-remote.c - mailwardenctl --api URL: the operations (ctl_remote_ops) over mailwarden-api,
 * for the commands whose table entry has CTL_API: user, allow-from, tag-rule, dkim (but
 * import: the private key stays where the store is), ratelimit status|reset (users only) and
 * ratelimit policy. The others are refused by mailwardenctl.c (exit 2) naming the command.
 *
 * Each operation becomes one or a few HTTP requests to the API (through the nginx in front of
 * it); the commands parse, check and print as in the local mode, since they are the same
 * code. The API checks the caller's role and writes the audit log (actor "api:USER" of the
 * token's session; the action names of lib/mw-audit.def, as the local mode). Failures are
 * printed in the local mode's words (answer_exit). URL: http://HOST[:PORT][/PREFIX],
 * https://HOST[:PORT][/PREFIX] (the server's certificate checked against the system's CAs or
 * --cacert FILE) or unix:/PATH (HTTP over a unix socket, e.g. an nginx listening on one).
 * The session token comes from the environment variable MAILWARDEN_TOKEN or from
 * --token-file FILE (its first line; the file must not be readable by others), never from
 * the command line; it is sent as "Authorization: Bearer".
 *
 * HTTP is libcurl's (only http and https, no redirects followed, no proxy: the *_proxy
 * variables are ignored, so the token goes to URL only), with strict limits:
 * CTL_API_BODY_MAX bytes of body, CTL_API_TIMEOUT_MS for the whole exchange; a larger body
 * is an error, never truncated.
 *
 * Differences from the local mode: `user list --json` and `user show --json` carry no "id"
 * (the API does not expose row ids) and `user show` reports TOTP only when the API does;
 * `user passwd` of the token's own user needs the current password, which this client does
 * not send (the API answers 422). `tag-rule list` shows only the rules the plugin applies
 * (the API does not list invalid ones). `dkim del` of a domain's active key is refused by
 * the API (exit 1). `ratelimit status|reset` take a user known to the store (an IP address:
 * exit 2; an unknown user: exit 3) and need the API to run as mailwarden-policyd's user.
 * `dkim generate` asks for "activate": the new key is active, as in the local mode.
 *
 * Public: ctl_remote_ops, ctl_remote_open, ctl_remote_close.
 * Diagnostics: "mailwardenctl: ..." on stderr; "api: ..." for what the API answered.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-dmarc-report.h"
#include "mw-dkim-sign.h"
#include "mw-pattern.h"
#include "mw-ratescope.h"
#include "mw-tagrule.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_API_URL_MAX    1024
#define CTL_API_TOKEN_MAX  512
#define CTL_API_BODY_MAX   (8 * 1024 * 1024)
#define CTL_API_TIMEOUT_MS 30000
#define CTL_API_PAGE       1000

struct ctl_remote {
	bool unix_socket;
	char host[256];    /* host name or address (no brackets) */
	char port[8];      /* decimal */
	char path[108];    /* unix socket path */
	char prefix[512];  /* path before /api/v1, no trailing '/' */
	bool tls;          /* https */
	char cacert[1024]; /* --cacert FILE: the CA certificates for https ("" = the system's) */
	char token[CTL_API_TOKEN_MAX + 1];
	bool curl_started;
};

struct api_answer {
	int status;
	json_t *json; /* the body when it is JSON, else NULL */
};

/* ---- the HTTP client ------------------------------------------------------------------ */

/* parse_url - http(s)://HOST[:PORT][/PREFIX] or unix:/PATH into t */
static int parse_url(const char *url, struct ctl_remote *t)
{
	const char *p, *end, *colon;
	size_t len;
	if (strlen(url) > CTL_API_URL_MAX) {
		ctl_err("--api: the URL is longer than %d bytes", CTL_API_URL_MAX);
		return -1;
	}
	if (strncmp(url, "unix:", 5) == 0) {
		t->unix_socket = true;
		if (url[5] != '/' || mw_strlcpy(t->path, url + 5, sizeof(t->path)) < 0) {
			ctl_err("--api %s: expected unix:/absolute/path (at most %zu bytes)", url,
			        sizeof(t->path) - 1);
			return -1;
		}
		(void)mw_strlcpy(t->host, "localhost", sizeof(t->host));
		return 0;
	}
	if (strncmp(url, "https://", 8) == 0) {
		t->tls = true;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0)
		p = url + 7;
	else {
		ctl_err("--api %s: expected http(s)://HOST[:PORT][/PREFIX] or unix:/PATH", url);
		return -1;
	}
	end = p + strcspn(p, "/?#");
	if (*end == '?' || *end == '#' || strchr(p, '@') != NULL) {
		ctl_err("--api %s: no user info, query or fragment in the URL", url);
		return -1;
	}
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL) {
			ctl_err("--api %s: unclosed [", url);
			return -1;
		}
		len = (size_t)(rb - p - 1);
		colon = rb[1] == ':' ? rb + 1 : NULL;
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		len = (size_t)((colon != NULL ? colon : end) - p);
	}
	if (len == 0 || len >= sizeof(t->host)) {
		ctl_err("--api %s: no host (or too long)", url);
		return -1;
	}
	memcpy(t->host, p, len);
	t->host[len] = '\0';
	if (colon != NULL) {
		size_t plen = (size_t)(end - colon - 1), i;
		if (plen == 0 || plen > 5) {
			ctl_err("--api %s: bad port", url);
			return -1;
		}
		for (i = 0; i < plen; i++)
			if (colon[1 + i] < '0' || colon[1 + i] > '9') {
				ctl_err("--api %s: bad port", url);
				return -1;
			}
		memcpy(t->port, colon + 1, plen);
		t->port[plen] = '\0';
		if (atoi(t->port) < 1 || atoi(t->port) > 65535) {
			ctl_err("--api %s: bad port", url);
			return -1;
		}
	} else
		(void)mw_strlcpy(t->port, t->tls ? "443" : "80", sizeof(t->port));
	len = strlen(end);
	while (len > 0 && end[len - 1] == '/')
		len--;
	if (len >= sizeof(t->prefix)) {
		ctl_err("--api %s: path too long", url);
		return -1;
	}
	memcpy(t->prefix, end, len);
	t->prefix[len] = '\0';
	for (p = t->prefix; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			ctl_err("--api %s: the path must be printable ASCII", url);
			return -1;
		}
	return 0;
}

/* read_token - MAILWARDEN_TOKEN, or the first line of token_file */
static int read_token(const char *token_file, struct ctl_remote *t)
{
	const char *env = getenv("MAILWARDEN_TOKEN");
	char buf[CTL_API_TOKEN_MAX + 2];
	size_t i, len;
	if (token_file != NULL) {
		struct stat st;
		ssize_t n;
		int fd = open(token_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) < 0) {
			ctl_err("--token-file %s: %s", token_file, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (!S_ISREG(st.st_mode) || (st.st_mode & 0007) != 0) {
			close(fd);
			ctl_err("--token-file %s: must be a regular file not readable by others "
			        "(chmod o-rwx)",
			        token_file);
			return -1;
		}
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n < 0) {
			ctl_err("--token-file %s: %s", token_file, strerror(errno));
			return -1;
		}
		buf[n] = '\0';
		len = strcspn(buf, "\r\n");
		if (len > CTL_API_TOKEN_MAX) {
			ctl_err("--token-file %s: the token is longer than %d bytes", token_file,
			        CTL_API_TOKEN_MAX);
			return -1;
		}
		buf[len] = '\0';
	} else if (env != NULL) {
		if (mw_strlcpy(buf, env, sizeof(buf)) < 0 || strlen(env) > CTL_API_TOKEN_MAX) {
			ctl_err("MAILWARDEN_TOKEN is longer than %d bytes", CTL_API_TOKEN_MAX);
			return -1;
		}
	} else {
		ctl_err(
		    "--api needs a session token: set MAILWARDEN_TOKEN or give --token-file FILE "
		    "(from POST /api/v1/sessions)");
		return -1;
	}
	len = strlen(buf);
	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f)
			break;
	if (len == 0 || i < len) {
		mw_memzero(buf, sizeof(buf));
		ctl_err("the session token is empty or not printable ASCII");
		return -1;
	}
	(void)mw_strlcpy(t->token, buf, sizeof(t->token));
	mw_memzero(buf, sizeof(buf));
	return 0;
}

/* url_escape - append s percent-encoded as one path segment */
static void url_escape(mw_str *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || c == '@')
			(void)mw_str_appendc(out, (char)c);
		else {
			(void)mw_str_appendc(out, '%');
			(void)mw_str_appendc(out, hex[c >> 4]);
			(void)mw_str_appendc(out, hex[c & 15]);
		}
	}
}

/* body_sink - curl's write callback: the body into an mw_str bounded by CTL_API_BODY_MAX
   (a larger body stops the transfer: an error, never a truncated answer) */
static size_t body_sink(char *data, size_t size, size_t nmemb, void *arg)
{
	mw_str *out = arg;
	size_t n = size * nmemb;
	if (n > CTL_API_BODY_MAX || out->len + n > CTL_API_BODY_MAX ||
	    mw_str_append(out, data, n) < 0)
		return 0;
	return n;
}

/* api_request - one exchange through libcurl: METHOD PATH (below PREFIX) with an optional
   JSON body (freed here); fills a; -1 (after a message) when no HTTP answer was had */
static int api_request(const struct ctl_remote *t, const char *method, const char *path,
                       json_t *body, struct api_answer *a)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	char errbuf[CURL_ERROR_SIZE] = "", agent[64];
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();
	mw_str url, resp;
	CURLcode rc;
	long status = 0;
	int ret = -1;

	json_decref(body);
	a->status = 0;
	a->json = NULL;
	mw_str_init(&url, 0);
	mw_str_init(&resp, CTL_API_BODY_MAX);
	if (h == NULL) {
		ctl_err("api: cannot start libcurl");
		goto out;
	}
	if (t->unix_socket)
		(void)mw_str_appendf(&url, "http://localhost%s", path);
	else
		(void)mw_str_appendf(&url, "%s://%s%s%s:%s%s%s", t->tls ? "https" : "http",
		                     strchr(t->host, ':') != NULL ? "[" : "", t->host,
		                     strchr(t->host, ':') != NULL ? "]" : "", t->port, t->prefix,
		                     path);
	(void)snprintf(agent, sizeof(agent), "mailwardenctl/%s", PACKAGE_VERSION);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (text != NULL)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (curl_easy_setopt(h, CURLOPT_URL, mw_str_c(&url)) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK || /* the token goes nowhere else */
	    (t->unix_socket &&
	     curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, t->path) != CURLE_OK) ||
	    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, t->token) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_USERAGENT, agent) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
	    (text != NULL && curl_easy_setopt(h, CURLOPT_POSTFIELDS, text) != CURLE_OK) ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CTL_API_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)CTL_API_BODY_MAX) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_sink) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp) != CURLE_OK ||
	    (t->cacert[0] != '\0' && curl_easy_setopt(h, CURLOPT_CAINFO, t->cacert) != CURLE_OK)) {
		ctl_err("api: libcurl refused an option (too old a libcurl?)");
		goto out;
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED) {
		ctl_err("api: the body is over %d bytes", CTL_API_BODY_MAX);
		goto out;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		ctl_err("api: no complete answer within %d s", CTL_API_TIMEOUT_MS / 1000);
		goto out;
	}
	if (rc != CURLE_OK) {
		long oserr = 0;
		(void)curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
		if (t->unix_socket)
			ctl_err("api unix:%s: %s%s%s%s", t->path,
			        oserr != 0 ? strerror((int)oserr) : "", oserr != 0 ? " (" : "",
			        errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc),
			        oserr != 0 ? ")" : "");
		else
			ctl_err("api %s port %s: %s%s%s%s", t->host, t->port,
			        oserr != 0 ? strerror((int)oserr) : "", oserr != 0 ? " (" : "",
			        errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc),
			        oserr != 0 ? ")" : "");
		goto out;
	}
	(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 100 || status > 599) {
		ctl_err("api: the answer is not HTTP");
		goto out;
	}
	a->status = (int)status;
	if (resp.len > 0) {
		json_error_t jerr;
		a->json = json_loadb(resp.buf, resp.len, JSON_REJECT_DUPLICATES, &jerr);
	}
	/* every refusal of mailwarden-api carries {"error":{...}}: one without it came from
	   something else (a web server without the API's location, a proxy whose backend is
	   down), and its 404 must not read as "the user does not exist" */
	if (a->status >= 300 && !json_is_object(json_object_get(a->json, "error"))) {
		if (a->status == 502 || a->status == 503 || a->status == 504)
			ctl_err("api %s: HTTP %d from the web server, not from mailwarden-api: is "
			        "mailwarden-api running behind it (its FastCGI socket)?",
			        mw_str_c(&url), a->status);
		else
			ctl_err("api %s: HTTP %d without a mailwarden answer: no mailwarden-api "
			        "there (--api names the server whose location /api/v1/ passes to "
			        "mailwarden-api, e.g. https://mail.example.org)",
			        mw_str_c(&url), a->status);
		json_decref(a->json);
		a->json = NULL;
		goto out;
	}
	ret = 0;
out:
	if (h != NULL)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (text != NULL) {
		mw_memzero(text, strlen(text)); /* may hold a password */
		free(text);
	}
	if (resp.buf != NULL)
		mw_memzero(resp.buf, resp.cap);
	mw_str_free(&resp);
	mw_str_free(&url);
	return ret;
}

/* ---- answers as exit codes --------------------------------------------------------------- */

/* answer_message - error.message of an error answer ("" when none) */
static const char *answer_message(const struct api_answer *a)
{
	const char *m =
	    json_string_value(json_object_get(json_object_get(a->json, "error"), "message"));
	return m != NULL ? m : "";
}

/* answer_exit - the exit code of a failed answer, with the store mode's message for 404
   and 409 (what names the object) */
static int answer_exit(const struct api_answer *a, const char *what)
{
	switch (a->status) {
	case 404:
		ctl_err("%s: not found", what);
		return EXIT_NOTFOUND;
	case 409:
		ctl_err("%s: already exists", what);
		return EXIT_EXISTS;
	case 400:
	case 413:
	case 415:
	case 422:
		ctl_err("api: %s", answer_message(a));
		return EXIT_USAGE;
	case 401:
		ctl_err("api: not authenticated (%s): the token is missing, expired or revoked",
		        answer_message(a));
		return EXIT_ERROR;
	case 403:
		ctl_err("api: refused (%s)", answer_message(a));
		return EXIT_ERROR;
	default:
		ctl_err("api: HTTP %d%s%s", a->status, a->json != NULL ? ": " : "",
		        answer_message(a));
		return EXIT_ERROR;
	}
}

/* call - one request; EXIT_OK when the status is want, else the mapped exit code */
static int call(const struct ctl_remote *t, const char *method, const char *path, json_t *body,
                int want, const char *what, struct api_answer *a)
{
	if (api_request(t, method, path, body, a) < 0)
		return EXIT_ERROR;
	if (a->status == want)
		return EXIT_OK;
	return answer_exit(a, what);
}

/* user_path - "/api/v1/users/USER" + tail into out */
static void user_path(mw_str *out, const char *username, const char *tail)
{
	mw_str_init(out, 0);
	(void)mw_str_appends(out, "/api/v1/users/");
	url_escape(out, username);
	(void)mw_str_appends(out, tail);
}

/* call_user - call() on "/api/v1/users/USER" + tail; failures name the user */
static int call_user(const struct mw_ctl *ctl, const char *method, const char *username,
                     const char *tail, json_t *body, int want, struct api_answer *a)
{
	mw_str path;
	int ret;
	user_path(&path, username, tail);
	ret = call(ctl->remote, method, mw_str_c(&path), body, want, username, a);
	mw_str_free(&path);
	return ret;
}

/* jstr - a string member ("" when absent) */
static const char *jstr(json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s != NULL ? s : "";
}

/* jstr_or - a string member, or dflt when absent or null */
static const char *jstr_or(json_t *o, const char *name, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s != NULL ? s : dflt;
}

/* jint - an integer member (0 when absent) */
static int64_t jint(json_t *o, const char *name)
{
	return (int64_t)json_integer_value(json_object_get(o, name));
}

/* jdup - a string member as an owned copy, NULL when absent or null */
static char *jdup(json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s != NULL ? mw_strdup(s) : NULL;
}

/* jstrv - an array of strings as a NULL-terminated owned vector (mw_store_strv_free) */
static char **jstrv(json_t *arr, size_t *n_r)
{
	size_t i, n = json_array_size(arr), k = 0;
	char **v = mw_calloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++)
		if (json_is_string(json_array_get(arr, i)))
			v[k++] = mw_strdup(json_string_value(json_array_get(arr, i)));
	*n_r = k;
	return v;
}

/* ---- users ------------------------------------------------------------------------------ */

/* remote_user_copy - the API's user object as ctl_user (no id; totp when reported) */
static void remote_user_copy(json_t *j, struct ctl_user *u)
{
	json_t *totp = json_object_get(j, "totp");
	enum mw_user_status st = MW_USER_ACTIVE;
	enum mw_user_role role = MW_ROLE_USER;
	memset(u, 0, sizeof(*u));
	u->id = -1;
	(void)mw_strlcpy(u->username, jstr(j, "username"), sizeof(u->username));
	(void)mw_user_status_parse(jstr(j, "status"), &st);
	(void)mw_user_role_parse(jstr(j, "role"), &role);
	u->status = st;
	u->role = role;
	(void)mw_strlcpy(u->description, jstr(j, "description"), sizeof(u->description));
	u->created_at = jint(j, "created_at");
	u->updated_at = jint(j, "updated_at");
	u->password_changed_at = jint(j, "password_changed_at");
	u->locked_until = jint(j, "locked_until");
	u->failed_logins = (int)jint(j, "failed_logins");
	u->totp = json_is_boolean(totp) ? (json_is_true(totp) ? 1 : 0) : -1;
}

/* remote_user_add - POST /users (the API generates the password when none is given) */
static int remote_user_add(struct mw_ctl *ctl, const char *username, const char *password,
                           enum mw_user_role role, enum mw_user_status status,
                           const char *description, char *generated, size_t gsize)
{
	struct api_answer a;
	json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:[]}", "username", username, "role",
	                         mw_user_role_name(role), "status", mw_user_status_name(status),
	                         "description", description, "allowed_from");
	int ret;
	if (password != NULL)
		json_object_set_new(body, "password", json_string(password));
	ret = call(ctl->remote, "POST", "/api/v1/users", body, 201, username, &a);
	if (ret == EXIT_OK && password == NULL)
		(void)mw_strlcpy(generated, jstr(a.json, "password"), gsize);
	json_decref(a.json);
	return ret;
}

/* remote_user_exists - GET /users/USER */
static int remote_user_exists(struct mw_ctl *ctl, const char *username)
{
	struct api_answer a;
	int ret;
	ret = call_user(ctl, "GET", username, "", NULL, 200, &a);
	json_decref(a.json);
	return ret;
}

/* remote_user_passwd - POST /users/USER/password (an admin setting another's password; the
   token's own user would need the current password, which is not sent: the API answers 422) */
static int remote_user_passwd(struct mw_ctl *ctl, const char *username, const char *password,
                              char *generated, size_t gsize, unsigned *sessions_r,
                              unsigned *apppws_r)
{
	struct api_answer a;
	json_t *body = json_object();
	int ret;
	if (password != NULL)
		json_object_set_new(body, "password", json_string(password));
	ret = call_user(ctl, "POST", username, "/password", body, 200, &a);
	if (ret == EXIT_OK) {
		if (password == NULL)
			(void)mw_strlcpy(generated, jstr(a.json, "password"), gsize);
		*sessions_r = (unsigned)jint(a.json, "sessions_revoked");
		*apppws_r = (unsigned)jint(a.json, "app_passwords_revoked");
	}
	json_decref(a.json);
	return ret;
}

/* remote_user_set_status - PATCH /users/USER {"status": ...} */
static int remote_user_set_status(struct mw_ctl *ctl, const char *username,
                                  enum mw_user_status status)
{
	struct api_answer a;
	int ret;
	ret = call_user(ctl, "PATCH", username, "",
	                json_pack("{s:s}", "status", mw_user_status_name(status)), 200, &a);
	json_decref(a.json);
	return ret;
}

/* remote_user_delete - DELETE /users/USER */
static int remote_user_delete(struct mw_ctl *ctl, const char *username)
{
	struct api_answer a;
	int ret;
	ret = call_user(ctl, "DELETE", username, "", NULL, 204, &a);
	json_decref(a.json);
	return ret;
}

/* remote_user_get - GET /users/USER (with its allowed_from) */
static int remote_user_get(struct mw_ctl *ctl, const char *username, struct ctl_user *u,
                           char ***patterns_r, size_t *n_r)
{
	struct api_answer a;
	int ret;
	ret = call_user(ctl, "GET", username, "", NULL, 200, &a);
	if (ret == EXIT_OK) {
		remote_user_copy(a.json, u);
		*patterns_r = jstrv(json_object_get(a.json, "allowed_from"), n_r);
	}
	json_decref(a.json);
	return ret;
}

/* remote_user_list - GET /users page by page */
static int remote_user_list(struct mw_ctl *ctl, int role, int status, long long after,
                            long long limit, int (*each)(const struct ctl_user *u, void *arg),
                            void *arg)
{
	long long left = limit; /* 0: all */
	int ret = EXIT_OK;
	for (;;) {
		long long page = left > 0 && left < CTL_API_PAGE ? left : CTL_API_PAGE;
		struct api_answer a;
		mw_str path;
		json_t *users, *j, *next;
		size_t i;
		mw_str_init(&path, 0);
		(void)mw_str_appendf(&path, "/api/v1/users?after=%lld&limit=%lld", after, page);
		if (role >= 0)
			(void)mw_str_appendf(&path, "&role=%s",
			                     mw_user_role_name((enum mw_user_role)role));
		if (status >= 0)
			(void)mw_str_appendf(&path, "&status=%s",
			                     mw_user_status_name((enum mw_user_status)status));
		ret = call(ctl->remote, "GET", mw_str_c(&path), NULL, 200, "user list", &a);
		mw_str_free(&path);
		users = json_object_get(a.json, "users");
		if (ret == EXIT_OK && !json_is_array(users)) {
			ctl_err("api: the answer has no user list");
			ret = EXIT_ERROR;
		}
		if (ret != EXIT_OK) {
			json_decref(a.json);
			return ret;
		}
		json_array_foreach(users, i, j)
		{
			struct ctl_user u;
			remote_user_copy(j, &u);
			(void)each(&u, arg);
		}
		if (left > 0)
			left -= (long long)json_array_size(users);
		next = json_object_get(a.json, "next_after");
		after = json_is_integer(next) ? (long long)json_integer_value(next) : -1;
		json_decref(a.json);
		if (after < 0 || (limit > 0 && left <= 0))
			return EXIT_OK;
	}
}

/* ---- allowed-From patterns --------------------------------------------------------------- */

/* remote_allowed_from_change - POST or DELETE one pattern */
static int remote_allowed_from_change(struct mw_ctl *ctl, const char *username, const char *canon,
                                      bool add)
{
	char what[MW_USERNAME_MAX + MW_PATTERN_MAX + 32];
	struct api_answer a;
	mw_str path;
	int ret;
	user_path(&path, username, "/allowed-from");
	if (!add) {
		(void)mw_str_appendc(&path, '/');
		url_escape(&path, canon);
	}
	if (api_request(ctl->remote, add ? "POST" : "DELETE", mw_str_c(&path),
	                add ? json_pack("{s:s}", "pattern", canon) : NULL, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == (add ? 201 : 204))
		ret = EXIT_OK;
	else {
		(void)snprintf(what, sizeof(what), "%s: pattern %s", username, canon);
		if (a.status == 404 && strncmp(answer_message(&a), "no such user", 12) == 0)
			(void)snprintf(what, sizeof(what), "user %s", username);
		ret = answer_exit(&a, what);
	}
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* remote_allowed_from_list - GET /users/USER/allowed-from */
static int remote_allowed_from_list(struct mw_ctl *ctl, const char *username, char ***patterns_r,
                                    size_t *n_r)
{
	struct api_answer a;
	int ret;
	ret = call_user(ctl, "GET", username, "/allowed-from", NULL, 200, &a);
	if (ret == EXIT_OK)
		*patterns_r = jstrv(json_object_get(a.json, "patterns"), n_r);
	json_decref(a.json);
	return ret;
}

/* ---- tag rules --------------------------------------------------------------------------- */

/* remote_tag_rule_add - POST /users/USER/tag-rules */
static int remote_tag_rule_add(struct mw_ctl *ctl, const char *username,
                               const struct mw_tag_rule *rule, int64_t *id_r)
{
	struct api_answer a;
	json_t *body;
	mw_str path;
	int ret;
	body = json_pack("{s:s,s:s,s:s,s:b}", "field", rule->field, "match",
	                 mw_tagrule_match_name(rule->match), "value", rule->value, "enabled",
	                 rule->enabled);
	if (rule->keyword != NULL)
		json_object_set_new(body, "keyword", json_string(rule->keyword));
	if (rule->mailbox != NULL)
		json_object_set_new(body, "mailbox", json_string(rule->mailbox));
	user_path(&path, username, "/tag-rules");
	if (api_request(ctl->remote, "POST", mw_str_c(&path), body, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 201) {
		*id_r = jint(a.json, "id");
		ret = EXIT_OK;
	} else if (a.status == 409) {
		/* the store's "at most N rules" refusal, as the store mode words it */
		ctl_err("tag rule: %s", answer_message(&a));
		ret = EXIT_ERROR;
	} else
		ret = answer_exit(&a, username);
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* remote_tag_rule_list - GET /users/USER/tag-rules (the API lists the rules the plugin
   applies: the valid ones) */
static int remote_tag_rule_list(struct mw_ctl *ctl, const char *username,
                                struct mw_tag_rule **rules_r, size_t *n_r)
{
	struct api_answer a;
	struct mw_tag_rule *v;
	json_t *rules, *r;
	size_t i;
	int ret;
	ret = call_user(ctl, "GET", username, "/tag-rules", NULL, 200, &a);
	rules = json_object_get(a.json, "rules");
	if (ret == EXIT_OK && !json_is_array(rules)) {
		ctl_err("api: the answer has no rule list");
		ret = EXIT_ERROR;
	}
	if (ret != EXIT_OK) {
		json_decref(a.json);
		return ret;
	}
	v = mw_calloc(json_array_size(rules) + 1, sizeof(*v));
	json_array_foreach(rules, i, r)
	{
		v[i].id = jint(r, "id");
		v[i].position = jint(r, "position");
		v[i].field = jdup(r, "field");
		if (mw_tagrule_match_parse(jstr(r, "match"), &v[i].match) < 0)
			v[i].match = MW_TAGRULE_EXACT;
		v[i].value = jdup(r, "value");
		v[i].keyword = jdup(r, "keyword");
		v[i].mailbox = jdup(r, "mailbox");
		v[i].enabled = json_is_true(json_object_get(r, "enabled"));
	}
	*rules_r = v;
	*n_r = json_array_size(rules);
	json_decref(a.json);
	return EXIT_OK;
}

/* remote_tag_rule_del - DELETE /users/USER/tag-rules/ID (an unknown user first, as the
   store mode: the API's DELETE answers only "no such tag rule" for both) */
static int remote_tag_rule_del(struct mw_ctl *ctl, const char *username, int64_t id)
{
	char what[MW_USERNAME_MAX + 48];
	struct api_answer a;
	mw_str path;
	int ret;
	user_path(&path, username, "/tag-rules");
	ret = call(ctl->remote, "GET", mw_str_c(&path), NULL, 200, username, &a);
	json_decref(a.json);
	if (ret != EXIT_OK) {
		mw_str_free(&path);
		return ret;
	}
	(void)mw_str_appendf(&path, "/%lld", (long long)id);
	if (api_request(ctl->remote, "DELETE", mw_str_c(&path), NULL, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 204)
		ret = EXIT_OK;
	else {
		if (a.status == 404 && strncmp(answer_message(&a), "no such user", 12) == 0)
			(void)snprintf(what, sizeof(what), "%s", username);
		else
			(void)snprintf(what, sizeof(what), "%s: tag rule %lld", username,
			               (long long)id);
		ret = answer_exit(&a, what);
	}
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* ---- DKIM keys --------------------------------------------------------------------------- */

/* dk_path - "/api/v1/dkim/keys/DOMAIN/SELECTOR" + tail */
static void dk_path(mw_str *out, const char *domain, const char *selector, const char *tail)
{
	mw_str_init(out, 0);
	(void)mw_str_appends(out, "/api/v1/dkim/keys/");
	url_escape(out, domain);
	(void)mw_str_appendc(out, '/');
	url_escape(out, selector);
	(void)mw_str_appends(out, tail);
}

/* dk_copy - the API's key object as a key row (no private key) */
static void dk_copy(json_t *k, struct mw_dkim_key_row *row)
{
	memset(row, 0, sizeof(*row));
	(void)mw_strlcpy(row->domain, jstr(k, "domain"), sizeof(row->domain));
	(void)mw_strlcpy(row->selector, jstr(k, "selector"), sizeof(row->selector));
	(void)mw_strlcpy(row->key_type, jstr(k, "type"), sizeof(row->key_type));
	row->public_key = mw_strdup(jstr(k, "public_key"));
	row->created_at = jint(k, "created_at");
	row->active = json_is_true(json_object_get(k, "active"));
	(void)mw_strlcpy(row->state, jstr_or(k, "state", row->active ? "active" : "inactive"),
	                 sizeof(row->state));
	row->activated_at = jint(k, "activated_at");
	row->retire_at = jint(k, "retire_at");
}

/* remote_dkim_generate - POST /dkim/keys with activate (the local mode's key is always the
   domain's active key) */
static int remote_dkim_generate(struct mw_ctl *ctl, const char *domain, const char *selector,
                                unsigned bits, struct mw_dkim_key_row *key_r)
{
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 4];
	struct api_answer a;
	int ret;
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	ret = call(ctl->remote, "POST", "/api/v1/dkim/keys",
	           json_pack("{s:s,s:s,s:i,s:b}", "domain", domain, "selector", selector, "bits",
	                     (int)bits, "activate", true),
	           201, target, &a);
	if (ret == EXIT_OK)
		dk_copy(a.json, key_r);
	json_decref(a.json);
	return ret;
}

/* remote_dkim_list - GET /dkim/keys[?domain=D] */
static int remote_dkim_list(struct mw_ctl *ctl, const char *domain, struct mw_dkim_key_row **rows_r,
                            size_t *n_r)
{
	struct api_answer a;
	json_t *keys, *k;
	mw_str path;
	size_t i;
	int ret;
	mw_str_init(&path, 0);
	(void)mw_str_appends(&path, "/api/v1/dkim/keys");
	if (domain != NULL) {
		(void)mw_str_appends(&path, "?domain=");
		url_escape(&path, domain);
	}
	ret = call(ctl->remote, "GET", mw_str_c(&path), NULL, 200, "dkim list", &a);
	mw_str_free(&path);
	keys = json_object_get(a.json, "keys");
	if (ret == EXIT_OK && !json_is_array(keys)) {
		ctl_err("api: the answer has no key list");
		ret = EXIT_ERROR;
	}
	if (ret == EXIT_OK) {
		*rows_r = mw_calloc(json_array_size(keys) + 1, sizeof(**rows_r));
		json_array_foreach(keys, i, k) dk_copy(k, &(*rows_r)[i]);
		*n_r = json_array_size(keys);
	}
	json_decref(a.json);
	return ret;
}

/* remote_dkim_change - POST .../activate or DELETE (the API keeps a domain's active key:
   deleting it is refused, exit 1) */
static int remote_dkim_change(struct mw_ctl *ctl, const char *domain, const char *selector,
                              bool del)
{
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 4];
	struct api_answer a;
	mw_str path;
	int ret;
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	dk_path(&path, domain, selector, del ? "" : "/activate");
	if (api_request(ctl->remote, del ? "DELETE" : "POST", mw_str_c(&path),
	                del ? NULL : json_object(), &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == (del ? 204 : 200))
		ret = EXIT_OK;
	else if (a.status == 409) {
		ctl_err("%s: %s", target, answer_message(&a));
		ret = EXIT_ERROR;
	} else
		ret = answer_exit(&a, target);
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* remote_dkim_activate - sign with this key from now on */
static int remote_dkim_activate(struct mw_ctl *ctl, const char *domain, const char *selector)
{
	return remote_dkim_change(ctl, domain, selector, false);
}

/* remote_dkim_delete - delete a key */
static int remote_dkim_delete(struct mw_ctl *ctl, const char *domain, const char *selector)
{
	return remote_dkim_change(ctl, domain, selector, true);
}

/* remote_dkim_rotate - POST /dkim/rotate {domain} or {due: true} */
static int remote_dkim_rotate(struct mw_ctl *ctl, const char *domain, unsigned bits,
                              json_t **events_r)
{
	struct api_answer a;
	json_t *body =
	    domain != NULL ? json_pack("{s:s}", "domain", domain) : json_pack("{s:b}", "due", true);
	int ret;
	if (bits != 0)
		json_object_set_new(body, "bits", json_integer(bits));
	ret = call(ctl->remote, "POST", "/api/v1/dkim/rotate", body, 200,
	           domain != NULL ? domain : "dkim rotate --due", &a);
	if (ret == EXIT_OK && !json_is_array(json_object_get(a.json, "events"))) {
		ctl_err("api: the answer has no event list");
		ret = EXIT_ERROR;
	}
	if (ret == EXIT_OK)
		*events_r = json_incref(json_object_get(a.json, "events"));
	json_decref(a.json);
	return ret;
}

/* ---- rate limits ------------------------------------------------------------------------- */

/* rl_subject - the USER of ratelimit status|reset (the API reports users, not addresses) */
static int rl_subject(const char *in, bool reset, char *username, size_t size)
{
	unsigned char buf[sizeof(struct in6_addr)];
	char addr[INET6_ADDRSTRLEN + 1];
	size_t i, len = strcspn(in, "/");
	for (i = 0; in[i] != '\0'; i++)
		if ((unsigned char)in[i] <= 0x20 || in[i] == 0x7f) {
			ctl_err("%s: not a user name or IP address", in);
			return EXIT_USAGE;
		}
	if (len < sizeof(addr)) {
		memcpy(addr, in, len);
		addr[len] = '\0';
		if (inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1) {
			ctl_err("ratelimit %s IP is not available with --api (the API reports "
			        "users only): run it where mailwarden-policyd runs",
			        reset ? "reset" : "status");
			return EXIT_USAGE;
		}
	}
	if (ctl_username(in, username, size) < 0)
		return EXIT_USAGE;
	return EXIT_OK;
}

/* remote_rl_ask - GET or DELETE /users/USER/ratelimit; the reply rebuilt from the API's JSON
   in mailwarden-policyd's words */
static int remote_rl_ask(struct mw_ctl *ctl, const char *subject, bool reset,
                         struct mw_pdctl_reply *reply)
{
	char username[MW_USERNAME_MAX + 1];
	struct api_answer a;
	json_t *limits, *l;
	mw_str path;
	size_t i;
	int ret = rl_subject(subject, reset, username, sizeof(username));
	if (ret != EXIT_OK)
		return ret;
	user_path(&path, username, "/ratelimit");
	if (api_request(ctl->remote, reset ? "DELETE" : "GET", mw_str_c(&path), NULL, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 200)
		ret = EXIT_OK;
	else if (a.status == 502 &&
	         strncmp(answer_message(&a), "mailwarden-policyd refused: ", 28) == 0) {
		ctl_err("policyd: %s", answer_message(&a) + 28);
		ret = EXIT_ERROR;
	} else
		ret = answer_exit(&a, username);
	mw_str_free(&path);
	if (ret != EXIT_OK) {
		json_decref(a.json);
		return ret;
	}
	reply->ok = true;
	reply->cleared = reset ? jint(a.json, "cleared") : -1;
	(void)snprintf(reply->subject, sizeof(reply->subject), "sasl_username %s",
	               jstr_or(a.json, "username", username));
	limits = json_object_get(a.json, "limits");
	json_array_foreach(limits, i, l)
	{
		struct mw_pdctl_limit *pl;
		json_t *after = json_object_get(l, "reset_after_seconds");
		if (reply->nlimits == MW_PDCTL_LIMITS_MAX)
			break;
		pl = &reply->limits[reply->nlimits++];
		(void)mw_strlcpy(pl->limit, jstr(l, "limit"), sizeof(pl->limit));
		(void)mw_strlcpy(pl->origin, jstr(l, "origin"), sizeof(pl->origin));
		pl->used = jint(l, "used");
		pl->count = jint(l, "count");
		pl->reset_after = json_is_integer(after) ? (int64_t)json_integer_value(after) : 0;
		pl->degraded = json_is_true(json_object_get(l, "degraded"));
	}
	json_decref(a.json);
	return EXIT_OK;
}

/* remote_rl_policy_add - the store's checks first (mw_rate_policy_check), then POST */
static int remote_rl_policy_add(struct mw_ctl *ctl, const struct mw_rate_policy *p, int64_t *id_r)
{
	static const char what[] = "adding a rate policy";
	mw_error err = {""};
	struct api_answer a;
	struct mw_rate_scope sc;
	const char *colon = strchr(p->scope, ':');
	json_t *body;
	int ret;
	if (mw_rate_policy_check(p, &err) < 0 ||
	    mw_rate_scope_parse(p->scope, strlen(p->scope), &sc, &err) < 0) {
		ctl_err("%s: %s", what, err.msg);
		return EXIT_ERROR;
	}
	/* the API takes the scope word's direction as a field of its own */
	body =
	    json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s}", "scope",
	              colon != NULL ? colon + 1 : p->scope, "direction", mw_rate_dir_name(sc.dir),
	              "match", p->match, "metric", p->metric, "count", (json_int_t)p->limit_count,
	              "window_seconds", (json_int_t)p->window_seconds, "action", p->action);
	if (p->username[0] != '\0')
		json_object_set_new(body, "username", json_string(p->username));
	if (api_request(ctl->remote, "POST", "/api/v1/ratelimit/policies", body, &a) < 0)
		ret = EXIT_ERROR;
	else if (a.status == 201) {
		*id_r = jint(a.json, "id");
		ret = EXIT_OK;
	} else if (a.status == 422 &&
	           strcmp(answer_message(&a), "field username: no such user") == 0) {
		ctl_err("%s: not found", what);
		ret = EXIT_NOTFOUND;
	} else
		ret = answer_exit(&a, what);
	json_decref(a.json);
	return ret;
}

/* remote_rl_policy_list - GET /ratelimit/policies */
static int remote_rl_policy_list(struct mw_ctl *ctl, struct mw_rate_policy **v_r, size_t *n_r)
{
	struct api_answer a;
	struct mw_rate_policy *v;
	json_t *pols, *p;
	size_t i;
	int ret = call(ctl->remote, "GET", "/api/v1/ratelimit/policies", NULL, 200,
	               "listing rate policies", &a);
	pols = json_object_get(a.json, "policies");
	if (ret == EXIT_OK && !json_is_array(pols)) {
		ctl_err("api: the answer has no policy list");
		ret = EXIT_ERROR;
	}
	if (ret != EXIT_OK) {
		json_decref(a.json);
		return ret;
	}
	v = mw_calloc(json_array_size(pols) + 1, sizeof(*v));
	json_array_foreach(pols, i, p)
	{
		v[i].id = jint(p, "id");
		if (strcmp(jstr(p, "direction"), "inbound") == 0 ||
		    strcmp(jstr(p, "direction"), "both") == 0)
			(void)snprintf(v[i].scope, sizeof(v[i].scope), "%s:%s",
			               jstr(p, "direction"), jstr(p, "scope"));
		else
			(void)mw_strlcpy(v[i].scope, jstr(p, "scope"), sizeof(v[i].scope));
		(void)mw_strlcpy(v[i].match, jstr(p, "match"), sizeof(v[i].match));
		(void)mw_strlcpy(v[i].metric, jstr(p, "metric"), sizeof(v[i].metric));
		(void)mw_strlcpy(v[i].action, jstr(p, "action"), sizeof(v[i].action));
		(void)mw_strlcpy(v[i].username, jstr(p, "username"), sizeof(v[i].username));
		v[i].limit_count = jint(p, "count");
		v[i].window_seconds = jint(p, "window_seconds");
	}
	*v_r = v;
	*n_r = json_array_size(pols);
	json_decref(a.json);
	return EXIT_OK;
}

/* remote_rl_policy_del - DELETE /ratelimit/policies/ID */
static int remote_rl_policy_del(struct mw_ctl *ctl, int64_t id)
{
	struct api_answer a;
	mw_str path;
	int ret;
	mw_str_init(&path, 0);
	(void)mw_str_appendf(&path, "/api/v1/ratelimit/policies/%lld", (long long)id);
	ret = call(ctl->remote, "DELETE", mw_str_c(&path), NULL, 204, "deleting a rate policy", &a);
	json_decref(a.json);
	mw_str_free(&path);
	return ret;
}

/* remote_dns_records - GET /domains/{domain}/dns[?check=1]; a 409 (nothing configured to
   publish) says what the local mode says */
static int remote_dns_records(struct mw_ctl *ctl, const char *domain, bool check, json_t **set_r)
{
	struct api_answer a;
	mw_str path;
	int ret;
	mw_str_init(&path, 0);
	(void)mw_str_appends(&path, "/api/v1/domains/");
	url_escape(&path, domain);
	(void)mw_str_appends(&path, check ? "/dns?check=1" : "/dns");
	if (api_request(ctl->remote, "GET", mw_str_c(&path), NULL, &a) < 0) {
		mw_str_free(&path);
		return EXIT_ERROR;
	}
	mw_str_free(&path);
	if (a.status == 409) {
		ctl_err("dns %s: %s", domain, answer_message(&a));
		ret = EXIT_ERROR;
	} else if (a.status != 200) {
		ret = answer_exit(&a, domain);
	} else if (!json_is_array(json_object_get(a.json, "records"))) {
		ctl_err("api: the answer has no record list");
		ret = EXIT_ERROR;
	} else {
		*set_r = json_incref(a.json);
		ret = EXIT_OK;
	}
	json_decref(a.json);
	return ret;
}

/* remote_dmarc_summary - GET /dmarc/summary?domain=&since=&until=&limit= */
static int remote_dmarc_summary(struct mw_ctl *ctl, const struct mw_dmarc_filter *f,
                                json_t **summary_r)
{
	struct api_answer a;
	mw_str path;
	int ret;
	char sep = '?';
	mw_str_init(&path, 0);
	(void)mw_str_appends(&path, "/api/v1/dmarc/summary");
	if (f->domain != NULL) {
		(void)mw_str_appends(&path, "?domain=");
		url_escape(&path, f->domain);
		sep = '&';
	}
	if (f->since > 0) {
		(void)mw_str_appendf(&path, "%csince=%lld", sep, (long long)f->since);
		sep = '&';
	}
	if (f->until > 0) {
		(void)mw_str_appendf(&path, "%cuntil=%lld", sep, (long long)f->until);
		sep = '&';
	}
	if (f->limit > 0)
		(void)mw_str_appendf(&path, "%climit=%u", sep, f->limit);
	if (api_request(ctl->remote, "GET", mw_str_c(&path), NULL, &a) < 0) {
		mw_str_free(&path);
		return EXIT_ERROR;
	}
	mw_str_free(&path);
	if (a.status != 200) {
		ret = answer_exit(&a, "dmarc report");
	} else if (!json_is_array(json_object_get(a.json, "domains")) ||
	           !json_is_object(json_object_get(a.json, "totals"))) {
		ctl_err("api: the answer has no DMARC summary");
		ret = EXIT_ERROR;
	} else {
		*summary_r = json_incref(a.json);
		ret = EXIT_OK;
	}
	json_decref(a.json);
	return ret;
}

const struct ctl_ops ctl_remote_ops = {
    .name = "api",
    .user_add = remote_user_add,
    .user_exists = remote_user_exists,
    .user_passwd = remote_user_passwd,
    .user_set_status = remote_user_set_status,
    .user_delete = remote_user_delete,
    .user_get = remote_user_get,
    .user_list = remote_user_list,
    .allowed_from_change = remote_allowed_from_change,
    .allowed_from_list = remote_allowed_from_list,
    .tag_rule_add = remote_tag_rule_add,
    .tag_rule_list = remote_tag_rule_list,
    .tag_rule_del = remote_tag_rule_del,
    .dkim_generate = remote_dkim_generate,
    .dkim_list = remote_dkim_list,
    .dkim_activate = remote_dkim_activate,
    .dkim_delete = remote_dkim_delete,
    .dkim_rotate = remote_dkim_rotate,
    .rl_ask = remote_rl_ask,
    .rl_policy_add = remote_rl_policy_add,
    .rl_policy_list = remote_rl_policy_list,
    .rl_policy_del = remote_rl_policy_del,
    .dns_records = remote_dns_records,
    .dmarc_summary = remote_dmarc_summary,
};

/* ctl_remote_open - parse --api URL and read the token into ctl->remote */
int ctl_remote_open(struct mw_ctl *ctl)
{
	struct ctl_remote *t = mw_calloc(1, sizeof(*t));
	ctl->remote = t;
	if (ctl->cacert != NULL && mw_strlcpy(t->cacert, ctl->cacert, sizeof(t->cacert)) < 0) {
		ctl_err("--cacert: the path is longer than %zu bytes", sizeof(t->cacert) - 1);
		return EXIT_ERROR;
	}
	if (parse_url(ctl->api_url, t) < 0 || read_token(ctl->token_file, t) < 0)
		return EXIT_ERROR;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ctl_err("api: cannot start libcurl");
		return EXIT_ERROR;
	}
	t->curl_started = true;
	return EXIT_OK;
}

/* ctl_remote_close - forget the token */
void ctl_remote_close(struct mw_ctl *ctl)
{
	if (ctl->remote == NULL)
		return;
	if (ctl->remote->curl_started)
		curl_global_cleanup();
	mw_memzero(ctl->remote, sizeof(*ctl->remote));
	free(ctl->remote);
	ctl->remote = NULL;
}
