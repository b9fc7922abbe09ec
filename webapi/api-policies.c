/* api-policies.c - mailwarden-api rate-limit policies and each user's current usage.
 *
 * Policies are rows of the store's rate_policies (mailwarden-policyd reads them every
 * store_refresh and on SIGHUP): an admin lists, adds and deletes them; a policy with a
 * username overrides the general limits of its scope and metric for that user only.
 * Usage and reset go to mailwarden-policyd's control socket ([policyd] control_socket, the
 * key mailwardenctl ratelimit uses too): one line "status USER" or "reset USER", an answer
 * ending in "ok" or "error: REASON". The daemon accepts only root and its own user, so the
 * API must run as the policy daemon's user for these two routes. When the daemon cannot be
 * reached (no socket, refused, no answer within API_PD_TIMEOUT_MS) the answer is 503
 * policyd_unavailable; nothing is retried.
 *
 * Every change (policy add and delete, a reset) is audited.
 *
 * Public: api_rl_policy_list, api_rl_policy_create, api_rl_policy_delete,
 * api_user_ratelimit_get, api_user_ratelimit_reset.
 *
 * Diagnostics: control socket failures are logged with the path and the reason.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define API_PD_TIMEOUT_MS 5000
#define API_PD_REPLY_MAX  (256 * 1024)

/* policy_json - the public view of a rate policy */
static json_t *policy_json(const struct mw_rate_policy *p)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s,s:o,s:I}", "id", (json_int_t)p->id, "scope",
	                 p->scope, "match", p->match, "metric", p->metric, "count",
	                 (json_int_t)p->limit_count, "window_seconds",
	                 (json_int_t)p->window_seconds, "action", p->action, "username",
	                 p->username[0] != '\0' ? json_string(p->username) : json_null(),
	                 "created_at", (json_int_t)p->created_at);
}

/* api_rl_policy_list - GET /ratelimit/policies */
void api_rl_policy_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	struct mw_rate_policy *v = NULL;
	size_t n = 0, i;
	mw_error err = {{0}};
	json_t *arr;
	if (api_query_check(req, res, params) < 0)
		return;
	if (mw_store_rate_policy_list(ctx->store, &v, &n, &err) != MW_STORE_OK) {
		api_store_error(res, "listing rate policies", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, policy_json(&v[i]));
	free(v);
	api_ok(res, 200, json_pack("{s:o}", "policies", arr));
}

/* one_of - value is one of the '|'-separated words */
static bool one_of(const char *value, const char *words)
{
	size_t n = strlen(value);
	const char *p = words;
	while (n > 0) {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == n && memcmp(p, value, n) == 0)
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

/* field_int - a whole-number member of the body in [min, max]; 422 naming it otherwise */
static int field_int(struct api_request *req, struct api_response *res, const char *name,
                     long long min, long long max, long long *value_r)
{
	json_t *v = json_object_get(req->json, name);
	if (v == NULL) {
		api_error(res, 422, "missing_field", "field %s is required", name);
		return -1;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		api_error(res, 422, "invalid_field",
		          "field %s must be a whole number in %lld..%lld", name, min, max);
		return -1;
	}
	*value_r = json_integer_value(v);
	return 0;
}

/* cidr_valid - an IPv4 or IPv6 address, optionally /PREFIX within the family's bits */
static bool cidr_valid(const char *s)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char buf[sizeof(struct in6_addr)];
	const char *slash = strchr(s, '/');
	size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	int bits, family;
	char *end;
	long prefix;
	if (len == 0 || len >= sizeof(addr))
		return false;
	memcpy(addr, s, len);
	addr[len] = '\0';
	family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	bits = family == AF_INET6 ? 128 : 32;
	if (inet_pton(family, addr, buf) != 1)
		return false;
	if (slash == NULL)
		return true;
	if (slash[1] < '0' || slash[1] > '9')
		return false;
	errno = 0;
	prefix = strtol(slash + 1, &end, 10);
	return errno == 0 && *end == '\0' && prefix >= 0 && prefix <= bits;
}

/* api_rl_policy_create - POST /ratelimit/policies {scope, match?, metric, count,
   window_seconds, action, username?} */
void api_rl_policy_create(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"scope",          "match",  "metric",   "count",
	                                     "window_seconds", "action", "username", NULL};
	static const char scopes[] =
	    "sasl_username|client_address|sender|sender_domain|recipient|recipient_domain";
	const char *scope, *match, *metric, *action, *username;
	struct mw_rate_policy p, *v = NULL;
	long long count, window;
	mw_error err = {{0}};
	int64_t id = 0;
	size_t n = 0, i;
	json_t *out = NULL;
	int ret;
	memset(&p, 0, sizeof(p));
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "scope", true, sizeof(p.scope) - 1, &scope) < 0 ||
	    api_field_string(req, res, "match", false, MW_RATE_MATCH_MAX, &match) < 0 ||
	    api_field_string(req, res, "metric", true, sizeof(p.metric) - 1, &metric) < 0 ||
	    field_int(req, res, "count", 1, INT64_MAX, &count) < 0 ||
	    field_int(req, res, "window_seconds", 1, MW_RATE_WINDOW_MAX, &window) < 0 ||
	    api_field_string(req, res, "action", true, sizeof(p.action) - 1, &action) < 0 ||
	    api_field_string(req, res, "username", false, MW_USERNAME_MAX * 4, &username) < 0)
		return;
	if (!one_of(scope, scopes)) {
		api_error(res, 422, "invalid_field", "field scope must be one of %s", scopes);
		return;
	}
	if (!one_of(metric, "messages|recipients|size")) {
		api_error(res, 422, "invalid_field",
		          "field metric must be messages, recipients or size");
		return;
	}
	if (!one_of(action, "defer|reject")) {
		api_error(res, 422, "invalid_field", "field action must be defer or reject");
		return;
	}
	if (match != NULL && match[0] != '\0' && strcmp(scope, "client_address") == 0 &&
	    !cidr_valid(match)) {
		api_error(res, 422, "invalid_field",
		          "field match must be an IP address or network (CIDR) for client_address");
		return;
	}
	(void)mw_strlcpy(p.scope, scope, sizeof(p.scope));
	(void)mw_strlcpy(p.metric, metric, sizeof(p.metric));
	(void)mw_strlcpy(p.action, action, sizeof(p.action));
	(void)mw_strlcpy(p.match, match != NULL ? match : "", sizeof(p.match));
	p.limit_count = count;
	p.window_seconds = window;
	if (username != NULL &&
	    mw_store_username_normalize(username, p.username, sizeof(p.username), &err) < 0) {
		api_error(res, 422, "invalid_field", "field username: %s", err.msg);
		return;
	}
	ret = mw_store_rate_policy_add(ctx->store, &p, &id, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 422, "invalid_field", "field username: no such user");
		return;
	}
	if (ret == MW_STORE_ERROR && strstr(err.msg, "match") != NULL) {
		api_error(res, 422, "invalid_field", "field match: %s", err.msg);
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "adding a rate policy", &err);
		return;
	}
	api_audit(ctx, req, "ratelimit.policy.add", p.username[0] != '\0' ? p.username : "*",
	          json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s}", "id", (json_int_t)id, "scope", p.scope,
	                    "match", p.match, "metric", p.metric, "count",
	                    (json_int_t)p.limit_count, "window_seconds",
	                    (json_int_t)p.window_seconds, "action", p.action));
	if (mw_store_rate_policy_list(ctx->store, &v, &n, &err) == MW_STORE_OK)
		for (i = 0; i < n && out == NULL; i++)
			if (v[i].id == id)
				out = policy_json(&v[i]);
	free(v);
	if (out == NULL) {
		p.id = id;
		out = policy_json(&p);
	}
	api_ok(res, 201, out);
}

/* api_rl_policy_delete - DELETE /ratelimit/policies/{id} */
void api_rl_policy_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	const char *s = req->params[0];
	char *end;
	long long id;
	mw_error err = {{0}};
	int ret;
	errno = 0;
	id = s[0] >= '1' && s[0] <= '9' ? strtoll(s, &end, 10) : 0;
	if (id <= 0 || errno != 0 || *end != '\0') {
		api_error(res, 404, "not_found", "no such rate policy");
		return;
	}
	ret = mw_store_rate_policy_del(ctx->store, id, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such rate policy");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "deleting a rate policy", &err);
		return;
	}
	api_audit(ctx, req, "ratelimit.policy.del", s, NULL);
	api_ok(res, 204, NULL);
}

/* ---- usage through mailwarden-policyd ------------------------------------------------ */

/* mono_ms - a monotonic clock in milliseconds (deadlines; mw_now may be fixed in tests) */
static int64_t mono_ms(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pd_ask - send "VERB SUBJECT" to the control socket; *reply_r gets every line before the
   final "ok" (0), or the reason of an "error: " line (1); -1 with error_r set when the
   daemon cannot be reached or answers nothing sensible */
static int pd_ask(struct api_ctx *ctx, const char *verb, const char *subject, mw_str *reply_r,
                  mw_error *error_r)
{
	const char *path = mw_config_str(ctx->cfg, MWK_PD_CONTROL_SOCKET);
	struct sockaddr_un sun;
	mw_str line;
	int64_t deadline = mono_ms() + API_PD_TIMEOUT_MS;
	int fd, ret = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || mw_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		mw_error_set(error_r, "[policyd] control_socket is not set (or too long)");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		mw_error_set(error_r, "control socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	mw_str_init(&line, 1024);
	if (mw_str_appendf(&line, "%s %s\n", verb, subject) < 0 ||
	    send(fd, line.buf, line.len, MSG_NOSIGNAL) != (ssize_t)line.len) {
		mw_error_set(error_r, "control socket %s: cannot send the request", path);
		goto out;
	}
	for (;;) {
		char buf[4096];
		struct pollfd pfd = {fd, POLLIN, 0};
		int64_t left = deadline - mono_ms();
		const char *last;
		ssize_t n;
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			mw_error_set(error_r, "control socket %s: no answer", path);
			goto out;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0 || reply_r->len + (size_t)n > API_PD_REPLY_MAX ||
		    mw_str_append(reply_r, buf, (size_t)n) < 0) {
			mw_error_set(error_r, "control socket %s: answer cut short or too long",
			             path);
			goto out;
		}
		if (reply_r->buf[reply_r->len - 1] != '\n')
			continue;
		reply_r->buf[reply_r->len - 1] = '\0';
		last = strrchr(reply_r->buf, '\n');
		last = last != NULL ? last + 1 : reply_r->buf;
		if (strcmp(last, "ok") == 0 || strncmp(last, "error: ", 7) == 0) {
			size_t keep = (size_t)(last - reply_r->buf);
			ret = last[0] == 'o' ? 0 : 1;
			if (ret == 1) {
				mw_error_set(error_r, "%s", last + 7);
				keep = 0;
			}
			reply_r->len = keep;
			reply_r->buf[keep] = '\0';
			break;
		}
		reply_r->buf[reply_r->len - 1] = '\n';
	}
out:
	mw_str_free(&line);
	close(fd);
	return ret;
}

/* parse_duration - "1h30m", "7m", "3s" as mw_fmt_duration writes them; -1 if not one */
static long long parse_duration(const char *s, size_t len)
{
	long long total = 0, q = 0;
	bool digits = false;
	size_t i;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9') {
			if (q > 1000000000LL)
				return -1;
			q = q * 10 + (c - '0');
			digits = true;
			continue;
		}
		if (!digits)
			return -1;
		switch (c) {
		case 'd':
			total += q * 86400;
			break;
		case 'h':
			total += q * 3600;
			break;
		case 'm':
			total += q * 60;
			break;
		case 's':
			total += q;
			break;
		default:
			return -1;
		}
		q = 0;
		digits = false;
	}
	return digits || len == 0 ? -1 : total;
}

/* status_line - one "SPEC  used U/C  resets in D|idle  (ORIGIN[, degraded])" line as JSON;
   NULL when the line has another form */
static json_t *status_line(const char *l)
{
	const char *used = strstr(l, "  used "), *p, *sp, *open, *close;
	char *end;
	long long u, c, secs = -1;
	json_t *o;
	if (used == NULL)
		return NULL;
	p = used + 7;
	errno = 0;
	u = strtoll(p, &end, 10);
	if (errno != 0 || end == p || *end != '/')
		return NULL;
	p = end + 1;
	c = strtoll(p, &end, 10);
	if (errno != 0 || end == p || strncmp(end, "  ", 2) != 0)
		return NULL;
	p = end + 2;
	open = strstr(p, "  (");
	close = strrchr(p, ')');
	if (open == NULL || close == NULL || close < open || close[1] != '\0')
		return NULL;
	if (strncmp(p, "resets in ", 10) == 0) {
		sp = p + 10;
		if ((secs = parse_duration(sp, (size_t)(open - sp))) < 0)
			return NULL;
	} else if ((size_t)(open - p) != 4 || strncmp(p, "idle", 4) != 0)
		return NULL;
	o = json_pack("{s:s%,s:I,s:I,s:o,s:o,s:s%,s:b}", "limit", l, (size_t)(used - l), "used",
	              (json_int_t)u, "count", (json_int_t)c, "reset_after_seconds",
	              secs >= 0 ? json_integer(secs) : json_null(), "resets_at",
	              secs >= 0 ? json_integer(mw_now() + secs) : json_null(), "origin", open + 3,
	              (size_t)(close - open - 3), "degraded", false);
	if (o != NULL) {
		const char *origin = json_string_value(json_object_get(o, "origin"));
		const char *comma = origin != NULL ? strstr(origin, ", degraded") : NULL;
		if (comma != NULL && comma[10] == '\0') {
			json_object_set_new(o, "origin",
			                    json_stringn(origin, (size_t)(comma - origin)));
			json_object_set_new(o, "degraded", json_true());
		}
	}
	return o;
}

/* rl_target - the route's user, normalised and known to the store (404 otherwise) */
static int rl_target(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                     char *name)
{
	struct mw_user user;
	mw_error err = {{0}};
	int ret = MW_STORE_NOTFOUND;
	if (mw_store_username_normalize(req->params[0], name, MW_USERNAME_MAX + 1, NULL) == 0)
		ret = mw_store_user_get(ctx->store, name, &user, &err);
	if (ret == MW_STORE_OK) {
		mw_user_clear(&user);
		return 0;
	}
	if (ret == MW_STORE_NOTFOUND)
		api_error(res, 404, "not_found", "no such user");
	else
		api_store_error(res, "reading a user", &err);
	return -1;
}

/* pd_failed - answer for a control socket failure (rc -1: unreachable, 1: refused) */
static void pd_failed(struct api_response *res, int rc, const mw_error *err)
{
	if (rc < 0) {
		mw_error_log("policyd: %s", err->msg);
		api_error(res, 503, "policyd_unavailable",
		          "mailwarden-policyd cannot be reached through its control socket "
		          "([policyd] control_socket): %s",
		          err->msg);
		return;
	}
	api_error(res, 502, "policyd_error", "mailwarden-policyd refused: %s", err->msg);
}

/* api_user_ratelimit_get - GET /users/{username}/ratelimit: usage of each limit */
void api_user_ratelimit_get(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	char name[MW_USERNAME_MAX + 1];
	mw_error err = {{0}};
	mw_str reply;
	json_t *arr;
	char *save = NULL, *l;
	int rc;
	if (api_query_check(req, res, params) < 0 || rl_target(ctx, req, res, name) < 0)
		return;
	mw_str_init(&reply, API_PD_REPLY_MAX);
	rc = pd_ask(ctx, "status", name, &reply, &err);
	if (rc != 0) {
		mw_str_free(&reply);
		pd_failed(res, rc, &err);
		return;
	}
	arr = json_array();
	for (l = strtok_r(reply.buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		json_t *o;
		if (strncmp(l, "no rate limit applies", 21) == 0)
			continue;
		if ((o = status_line(l)) == NULL) {
			char safe[256];
			mw_error_log("policyd: unexpected status line %s",
			             mw_log_value(safe, sizeof(safe), l, strlen(l)));
			continue;
		}
		json_array_append_new(arr, o);
	}
	mw_str_free(&reply);
	api_ok(res, 200, json_pack("{s:s,s:o}", "username", name, "limits", arr));
}

/* api_user_ratelimit_reset - DELETE /users/{username}/ratelimit: clear the counters */
void api_user_ratelimit_reset(struct api_ctx *ctx, struct api_request *req,
                              struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	mw_error err = {{0}};
	mw_str reply;
	unsigned long long cleared = 0;
	int rc;
	if (rl_target(ctx, req, res, name) < 0)
		return;
	mw_str_init(&reply, API_PD_REPLY_MAX);
	rc = pd_ask(ctx, "reset", name, &reply, &err);
	if (rc != 0) {
		mw_str_free(&reply);
		pd_failed(res, rc, &err);
		return;
	}
	if (strncmp(mw_str_c(&reply), "cleared ", 8) == 0)
		cleared = strtoull(reply.buf + 8, NULL, 10);
	mw_str_free(&reply);
	api_audit(ctx, req, "ratelimit.reset", name,
	          json_pack("{s:I}", "cleared", (json_int_t)cleared));
	api_ok(res, 200, json_pack("{s:s,s:I}", "username", name, "cleared", (json_int_t)cleared));
}
