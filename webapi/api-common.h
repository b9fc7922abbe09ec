/* api-common.h - mailwarden-api: request, response, route and context types of its modules. */
#ifndef API_COMMON_H
#define API_COMMON_H

#include "mw-config.h"
#include "mw-forms.h"
#include "mw-password.h"
#include "mw-secret.h"
#include "mw-store.h"

#include <jansson.h>

#define API_PREFIX           "/api/v1"
#define API_URI_MAX          4096 /* REQUEST_URI; longer is 414 */
#define API_MAX_SEGMENTS     16
#define API_MAX_PARAMS       4
#define API_QUERY_PARAMS_MAX 16
#define API_QUERY_VALUE_MAX  1024
#define API_HEADER_MAX       8192 /* Authorization, User-Agent, Origin */
#define API_PAGE_DEFAULT     100
#define API_PAGE_MAX         1000

/* Who may call a route. SELF: a session whose user is the route's {username}, or an admin. */
enum api_role { API_ROLE_NONE, API_ROLE_USER, API_ROLE_SELF, API_ROLE_ADMIN };

struct api_query_param {
	char *name, *value; /* decoded, owned */
};

struct api_request {
	/* from the FastCGI environment (not owned; NULL when absent) */
	const char *method;
	const char *request_uri;
	const char *content_type;
	const char *authorization;
	const char *remote_addr;
	const char *user_agent;
	const char *origin;
	/* the web page's cookie session (api-cookie.c) */
	const char *cookie;         /* HTTP_COOKIE */
	const char *csrf_header;    /* HTTP_X_CSRF_TOKEN */
	const char *sec_fetch_site; /* HTTP_SEC_FETCH_SITE */
	const char *host;           /* HTTP_HOST (nginx: $host, without the port) */
	const char *server_port;    /* SERVER_PORT */
	const char *https;          /* HTTPS ("on" behind TLS) */
	bool via_cookie;            /* authenticated (or refused) through the cookie */
	bool cookie_login;          /* POST /sessions/cookie */
	char cookie_auth[80];       /* "Bearer TOKEN" made from the cookie */
	char *body;                 /* owned, NUL-terminated, body_len bytes */
	size_t body_len;
	/* parsed */
	char *segments[API_MAX_SEGMENTS]; /* decoded path segments, owned */
	size_t nsegments;
	struct api_query_param query[API_QUERY_PARAMS_MAX];
	size_t nquery;
	const char *params[API_MAX_PARAMS]; /* the route's {...} values (into segments) */
	size_t nparams;
	json_t *json; /* the body as an object ({} when there is no body) */
	/* the session, once authenticated */
	bool authed;
	struct mw_user user;
	struct mw_session session;
	/* the store's data version api_authenticate read first (api-authcache.c) */
	bool version_known;
	uint64_t version;
	char actor[MW_USERNAME_MAX + 8]; /* "api:USERNAME" or "api:-" */
	const char *route;               /* the matched route's pattern (metrics), NULL = none */
};

struct api_response {
	int status;
	json_t *body;         /* owned; NULL = no body (204) */
	char retry_after[24]; /* seconds, "" = no Retry-After */
	char allow[128];      /* Allow header of a 405, "" = none */
	bool cors_preflight;  /* answer to an allowed CORS preflight (OPTIONS) */
	char set_cookie[160]; /* Set-Cookie value, "" = none (api-cookie.c) */
	/* a body that is not JSON (api_raw): MTA-STS policy, autoconfig XML, profiles */
	char *raw; /* owned; NULL = the JSON body (or none) */
	size_t raw_len;
	const char *content_type; /* static */
	char disposition[128];    /* Content-Disposition, "" = none */
	/* a contact form's allowed origin to answer with Access-Control-Allow-Origin, "" = none
	   (api-forms.c) */
	char cors_allow[MW_FORM_ORIGIN_MAX + 1];
};

/* Per worker process (api-main.c), which serves one request at a time. Failure counts
   live in the store (api-guard.c), shared by every process. */
struct api_ctx {
	mw_config *cfg;
	mw_store *store;
	char dummy_hash[MW_PASSWORD_HASH_MAX]; /* verified when a login names no usable user */
	struct mw_forms *forms;                /* [forms] (api-forms.c) */
	bool form_key_set;                     /* form_key derived (once per worker) */
	mw_form_key form_key;
	struct api_authcache *authcache; /* the worker's (api-authcache.c); NULL = none */
};

typedef void api_handler_fn(struct api_ctx *ctx, struct api_request *req, struct api_response *res);

struct api_route {
	const char *method;
	const char *pattern; /* "/api/v1/users/{username}": {name} matches one segment */
	enum api_role role;
	api_handler_fn *fn;
};

/* api-routes.c */
extern const struct api_route api_routes[];
extern const size_t api_routes_count;
const char *api_role_name(enum api_role role);
/* Runs one parsed request: CORS preflight, route lookup, body checks, authentication,
   role check, handler. */
void api_dispatch(struct api_ctx *ctx, struct api_request *req, struct api_response *res);

/* api-http.c: request parsing and response rendering, independent of FastCGI */
int api_path_split(const char *uri, struct api_request *req, mw_error *error_r);
int api_query_parse(const char *query, struct api_request *req, mw_error *error_r);
const char *api_query_get(const struct api_request *req, const char *name);
bool api_content_type_is_json(const char *content_type);
/* 0: found (*route_r, params set); 404: no route has that path; 405: the path exists but
   not for that method (allow lists the methods). */
int api_route_match(const struct api_route *routes, size_t n, struct api_request *req,
                    const struct api_route **route_r, char *allow, size_t allowsize);
const char *api_status_text(int status);
/* The CGI head (Status line, headers, blank line) of res; cors_origin: the configured
   origin or "" (its headers are added only when it equals req_origin). */
/* api_json_render - append v as json_dumps(v, JSON_COMPACT) would write it; -1 (out
   unchanged) for what jansson would not dump either */
int api_json_render(mw_str *out, const json_t *v);
/* api_json_wipe_init - from here on jansson wipes every block before it frees it (request
   bodies hold passwords and TOTP secrets); release: what then frees it (NULL: free) */
void api_json_wipe_init(void (*release)(void *));
void api_render_head(mw_str *out, const struct api_response *res, const char *cors_origin,
                     const char *req_origin);
void api_request_free(struct api_request *req);
void api_error(struct api_response *res, int status, const char *code, const char *fmt, ...)
    MW_PRINTF(4, 5);
void api_ok(struct api_response *res, int status, json_t *body);
/* api_raw: answer status with body (its text taken over) of content_type (static). */
void api_raw(struct api_response *res, int status, const char *content_type, mw_str *body);
/* Body field helpers: each sets a 422 naming the field and returns -1 on a wrong type.
   api_fields_check: every member of the body is one of names (NULL-terminated).
   api_field_string: 1 and *value_r set, 0 when absent (a 422 when required), -1. */
int api_fields_check(struct api_request *req, struct api_response *res, const char *const *names);
int api_field_string(struct api_request *req, struct api_response *res, const char *name,
                     bool required, size_t max, const char **value_r);
/* Query helpers: a whole number in [min, max] (absent: def); 422 naming it otherwise. */
int api_query_int(struct api_request *req, struct api_response *res, const char *name,
                  long long def, long long min, long long max, long long *value_r);
int api_query_check(struct api_request *req, struct api_response *res, const char *const *names);
/* A route's {id}: a positive decimal number (no sign, blank or leading zero) into *id_r;
   false for anything else (the caller answers 404 naming what has no such id). */
bool api_path_id(const char *s, long long *id_r);

/* api-guard.c: every check of a password, TOTP code, recovery code or internal secret,
   counted per (account, client network) and per client network (see the file header).
   api_verify: OK; WRONG / WRONG_CODE (wrong password / right password, wrong code;
   counted, res untouched: the caller answers); TOTP_MISSING (right password, no code
   given: not counted); BLOCKED (429 set); ERROR (res set). */
enum api_verify_result {
	API_VERIFY_OK,
	API_VERIFY_WRONG,
	API_VERIFY_WRONG_CODE,
	API_VERIFY_TOTP_MISSING,
	API_VERIFY_BLOCKED,
	API_VERIFY_ERROR
};
void api_client_net(const char *ip, int v4_prefix, int v6_prefix, char *out, size_t outsize);
int api_verify(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
               const char *name, const struct mw_user *user, bool usable, const char *password,
               const char *code, bool need_code, const char *what);
int api_guard_secret_blocked(struct api_ctx *ctx, struct api_request *req,
                             struct api_response *res);
void api_guard_secret_failed(struct api_ctx *ctx, struct api_request *req);
int64_t api_guard_mail_wait(struct api_ctx *ctx, const char *name, const char *ip);
void api_guard_mail_report(struct api_ctx *ctx, const char *name, const char *ip, bool success,
                           bool main);

/* api_reauth: the caller's current password (and TOTP code when on) again,
   through api_verify; -1 with res set (403/429/503). */
int api_reauth(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
               const char *password, const char *code, const char *what);

/* api-cookie.c: the web page's session cookie and CSRF token (see its header) */
#define API_COOKIE_NAME "__Host-mw_session"
#define API_CSRF_CHARS  43
void api_cookie_csrf(const char *token, char out[API_CSRF_CHARS + 1]);
int api_cookie_prepare(struct api_ctx *ctx, struct api_request *req, struct api_response *res);
void api_cookie_finish(struct api_ctx *ctx, struct api_request *req, struct api_response *res);
api_handler_fn api_cookie_login, api_session_current;

/* api-qr.c: a QR code as an SVG document (JSON string; NULL when text is too long) */
#define API_QR_TEXT_MAX 512
json_t *api_qr_svg(const char *text);

/* api-support.c: used by every handler module, calls none of them. api_audit appends an
   audit entry (actor, client IP; takes DETAILS); api_store_error answers 503 and logs why;
   api_master_key loads the master key (503 master_key_unavailable when it cannot; the
   caller wipes it with mw_secret_key_wipe). */
void api_audit(struct api_ctx *ctx, struct api_request *req, const char *action, const char *target,
               json_t *details);
void api_store_error(struct api_response *res, const char *what, const mw_error *err);
/* The store answered (a session was read): the api_store degraded state ends. */
void api_store_answered(void);
int api_master_key(struct api_ctx *ctx, struct api_response *res, mw_master_key *key_r);
/* api_target_user: the route's {username} (params[0]) normalised into NAME
   (MW_USERNAME_MAX + 1) and loaded; 404 unknown, 503 store, with self_only 403 unless the
   caller; the caller frees USER with mw_user_clear. */
int api_target_user(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                    char *name, struct mw_user *user, bool self_only);
/* api_target_reauth: api_target_user, then the body: the caller acting on themself sends
   SELF_FIELDS with PW_FIELD (required) and "code" (optional, CODE_MAX bytes) to re-check
   with api_reauth, an admin acting on another user sends ADMIN_FIELDS; *self_r says which.
   -1 with res set and USER cleared. */
int api_target_reauth(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                      char *name, struct mw_user *user, const char *const *self_fields,
                      const char *const *admin_fields, const char *pw_field, size_t code_max,
                      const char **password_r, const char **code_r, bool *self_r);
/* api_protocols_parse turns a JSON array of "imap"/"smtp" (users and app passwords)
   into the store's form ("imap,smtp", ...; "" only when allow_empty); 422 naming field. */
int api_protocols_parse(struct api_response *res, json_t *arr, const char *field, bool allow_empty,
                        char out[MW_PROTOCOLS_MAX + 1]);
json_t *api_protocols_json(const char *protocols);

/* api-authcache.c: a worker's cache of an authenticated request's rows, fresh only at the
   store data version they were read at */
struct api_authcache *api_authcache_new(void);
void api_authcache_free(struct api_authcache **c);
bool api_authcache_get(struct api_authcache *c, uint64_t version, const char *hash,
                       struct mw_session *session_r, struct mw_user *user_r);
void api_authcache_put(struct api_authcache *c, uint64_t version, const struct mw_session *se,
                       const struct mw_user *user);
bool api_authcache_user_extra_get(struct api_authcache *c, uint64_t version, const char *hash,
                                  char ***patterns_r, char protocols[MW_PROTOCOLS_MAX + 1]);
void api_authcache_user_extra_put(struct api_authcache *c, uint64_t version, const char *hash,
                                  char *const *patterns, const char *protocols);

/* api-sessions.c */
int api_authenticate(struct api_ctx *ctx, struct api_request *req, struct api_response *res);
api_handler_fn api_session_create, api_session_refresh, api_session_delete_current,
    api_session_list, api_session_delete, api_user_sessions_delete;

/* api-users.c */
api_handler_fn api_user_list, api_user_create, api_user_get, api_user_update, api_user_delete,
    api_user_password, api_af_get, api_af_replace, api_af_add, api_af_delete;

/* api-misc.c */
api_handler_fn api_healthz, api_audit_list, api_metrics;

/* api-totp-state.c: api_totp_login checks the second factor of a user with active TOTP
   (code NULL: none given) and consumes the code. api-totp.c: the enrolment routes. */
enum api_totp_result { API_TOTP_OK, API_TOTP_MISSING, API_TOTP_WRONG, API_TOTP_ERROR };
int api_totp_login(struct api_ctx *ctx, struct api_response *res, const struct mw_user *user,
                   const char *code);
api_handler_fn api_totp_enrol, api_totp_confirm, api_totp_delete;

/* api-apppw.c: app passwords */
api_handler_fn api_apppw_list, api_apppw_create, api_apppw_delete;

/* api-policies.c, api-tagrules.c, api-dkim.c */
api_handler_fn api_rl_policy_list, api_rl_policy_create, api_rl_policy_delete,
    api_user_ratelimit_get, api_user_ratelimit_reset;
api_handler_fn api_tag_rule_list, api_tag_rule_create, api_tag_rule_delete;
api_handler_fn api_dkim_list, api_dkim_generate, api_dkim_activate, api_dkim_delete,
    api_dkim_rotate;

/* api-dns.c: the records a domain publishes (admin) */
api_handler_fn api_domain_dns;
/* api-discovery.c: MTA-STS policy, Thunderbird autoconfig, Outlook autodiscover (public),
   Apple configuration profile (self) */
api_handler_fn api_mta_sts, api_autoconfig, api_autodiscover, api_mobileconfig;

/* api-dmarc-reports.c: DMARC aggregate reports received for our domains (admin) */
api_handler_fn api_dmarc_reports, api_dmarc_summary;
/* api-forms.c: public contact forms; api-formflush.c: the flusher (the pool's helper) */
int api_forms_load(struct api_ctx *ctx, mw_error *error_r);
api_handler_fn api_form_token, api_form_submit, api_form_preflight;
void api_form_flusher(const mw_config *cfg);

/* api-authpolicy.c: Dovecot's auth policy hook (no session; [api] auth_policy_secret) */
api_handler_fn api_auth_policy;

#endif
