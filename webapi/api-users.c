/* api-users.c - mailwarden-api users and their allowed-From patterns.
 *
 * Admins list, create, show, change and delete users, rotate passwords and manage
 * allowed-From patterns; a user may show themself, list their own patterns and change
 * their own password (giving the current one, and a TOTP code when TOTP is on: api_reauth,
 * api-guard.c, counted like a login). Every change is audited (api-sessions.c
 * api_audit). Generated passwords appear once, in the answer that made them. Disabling a
 * user, deleting one or changing a password ends their API sessions (a user changing their
 * own password keeps the session they are using); a password change also deletes all the
 * user's app passwords. IMAP and SMTP AUTH read the store on every login, so they refuse
 * the old password or a disabled user at once (see the admin guide on Dovecot's
 * auth_cache).
 *
 * With TOTP confirmed the main password works for no mail service (the passdb query
 * refuses it; app passwords only): the user's answer then reports main_password_protocols
 * [] and keeps the stored choice, which applies again once TOTP is off, as
 * main_password_protocols_without_totp.
 *
 * Input: the {username} of a route is normalised like every login name (404 when it can
 * never name a user); a pattern is checked with mw_pattern_normalize (422 naming it).
 *
 * Public: api_user_list, api_user_create, api_user_get, api_user_update, api_user_delete,
 * api_user_password, api_af_get, api_af_replace, api_af_add, api_af_delete.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-audit.h"
#include "mw-log.h"
#include "mw-pattern.h"

#include <stdlib.h>
#include <string.h>

/* user_json - the public view of a user (never the hash); patterns: NULL = left out */
static json_t *user_json(const struct mw_user *u, char **patterns)
{
	/* member by member, as json_pack("{s:s,...}") built it (same order; NULL when a string
	   is not UTF-8): parsing the format was a tenth of a GET /users/{u}'s instructions */
	const struct {
		const char *key;
		json_t *value;
	} m[] = {
	    {"username", json_string(u->username)},
	    {"status", json_string(mw_user_status_name(u->status))},
	    {"role", json_string(mw_user_role_name(u->role))},
	    {"description", json_string(u->description)},
	    {"created_at", json_integer((json_int_t)u->created_at)},
	    {"updated_at", json_integer((json_int_t)u->updated_at)},
	    {"password_changed_at", json_integer((json_int_t)u->password_changed_at)},
	    {"failed_logins", json_integer(u->failed_logins)},
	    {"locked_until", json_integer((json_int_t)u->locked_until)},
	};
	json_t *o = json_object();
	size_t i;
	for (i = 0; i < MW_N_ELEMENTS(m); i++) {
		if (o != NULL && (m[i].value == NULL ||
		                  json_object_set_new_nocheck(o, m[i].key, m[i].value) < 0)) {
			json_decref(o);
			o = NULL;
			continue; /* set_new took m[i].value, even when it failed */
		}
		if (o == NULL)
			json_decref(m[i].value);
	}
	if (o != NULL && patterns != NULL) {
		json_t *arr = json_array();
		for (i = 0; patterns[i] != NULL; i++)
			json_array_append_new(arr, json_string(patterns[i]));
		json_object_set_new(o, "allowed_from", arr);
	}
	return o;
}

/* hash_password - argon2id with the configured costs; 503 on failure */
static int hash_password(struct api_ctx *ctx, struct api_response *res, const char *pw, char *out,
                         size_t outsize)
{
	mw_error err = {{0}};
	if (mw_password_hash(
	        pw, (size_t)mw_config_int(ctx->cfg, MWK_PASSWORD_ARGON2_MEMORY),
	        (unsigned long long)mw_config_int(ctx->cfg, MWK_PASSWORD_ARGON2_PASSES), out,
	        outsize, &err) < 0) {
		mw_error_log("hashing a password: %s", err.msg);
		api_error(res, 503, "internal", "cannot hash the password now");
		return -1;
	}
	return 0;
}

/* choose_password - the given password (policy-checked, 422) or a generated one */
static int choose_password(struct api_ctx *ctx, struct api_response *res, const char *given,
                           const char *field, char *out, size_t outsize, bool *generated_r)
{
	mw_error err = {{0}};
	*generated_r = given == NULL;
	if (given != NULL) {
		if (mw_password_check_policy(
		        given, (size_t)mw_config_int(ctx->cfg, MWK_PASSWORD_MIN_LENGTH), &err) <
		    0) {
			api_error(res, 422, "invalid_field", "field %s: %s", field, err.msg);
			return -1;
		}
		if (mw_strlcpy(out, given, outsize) < 0) {
			api_error(res, 422, "invalid_field", "field %s is too long", field);
			return -1;
		}
		return 0;
	}
	if (mw_password_generate(out, outsize,
	                         (size_t)mw_config_int(ctx->cfg, MWK_PASSWORD_GENERATE_LENGTH),
	                         &err) < 0) {
		mw_error_log("generating a password: %s", err.msg);
		api_error(res, 503, "internal", "cannot generate a password now");
		return -1;
	}
	return 0;
}

/* normalize_patterns - every string of arr as a canonical pattern, duplicates dropped;
   a 422 naming the first bad one */
static char **normalize_patterns(json_t *arr, const char *field, struct api_response *res)
{
	char canon[MW_PATTERN_MAX + 1], safe[MW_PATTERN_MAX + 8];
	char **v;
	size_t i, k, n = 0;
	mw_error err = {{0}};
	json_t *item;
	if (!json_is_array(arr)) {
		api_error(res, 422, "invalid_field", "field %s must be an array of strings", field);
		return NULL;
	}
	if (json_array_size(arr) > 1000) {
		api_error(res, 422, "invalid_field", "field %s holds more than 1000 patterns",
		          field);
		return NULL;
	}
	v = mw_calloc(json_array_size(arr) + 1, sizeof(*v));
	json_array_foreach(arr, i, item)
	{
		const char *p = json_string_value(item);
		if (p == NULL || strlen(p) != json_string_length(item)) {
			api_error(res, 422, "invalid_field", "field %s[%zu] must be a string",
			          field, i);
			mw_store_strv_free(v);
			return NULL;
		}
		if (mw_pattern_normalize(p, canon, sizeof(canon), &err) < 0) {
			api_error(res, 422, "invalid_pattern", "field %s[%zu]: bad pattern %s: %s",
			          field, i, mw_log_value(safe, sizeof(safe), p, strlen(p)),
			          err.msg);
			mw_store_strv_free(v);
			return NULL;
		}
		for (k = 0; k < n; k++)
			if (strcmp(v[k], canon) == 0)
				break;
		if (k == n)
			v[n++] = mw_strdup(canon);
	}
	return v;
}

/* ---- users ---------------------------------------------------------------------------- */

struct list_ctx {
	json_t *arr;
	int64_t last_id;
};

/* list_one - append one user to the page */
static int list_one(const struct mw_user *u, void *p)
{
	struct list_ctx *lc = p;
	json_array_append_new(lc->arr, user_json(u, NULL));
	lc->last_id = u->id;
	return 0;
}

/* api_user_list - GET /users?status=&role=&after=&limit= */
void api_user_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {"status", "role", "after", "limit", NULL};
	struct mw_user_filter f = {.status = -1, .role = -1, .after_id = 0, .limit = 0};
	struct list_ctx lc = {NULL, 0};
	const char *status = api_query_get(req, "status"), *role = api_query_get(req, "role");
	long long after, limit;
	mw_error err = {{0}};
	enum mw_user_status st;
	enum mw_user_role ro;
	if (api_query_check(req, res, params) < 0 ||
	    api_query_int(req, res, "after", 0, 0, INT64_MAX, &after) < 0 ||
	    api_query_int(req, res, "limit", API_PAGE_DEFAULT, 1, API_PAGE_MAX, &limit) < 0)
		return;
	if (status != NULL) {
		if (mw_user_status_parse(status, &st) < 0) {
			api_error(res, 422, "invalid_parameter",
			          "query parameter status must be pending, active or disabled");
			return;
		}
		f.status = (int)st;
	}
	if (role != NULL) {
		if (mw_user_role_parse(role, &ro) < 0) {
			api_error(res, 422, "invalid_parameter",
			          "query parameter role must be admin or user");
			return;
		}
		f.role = (int)ro;
	}
	f.after_id = after;
	f.limit = (unsigned)limit;
	lc.arr = json_array();
	if (mw_store_user_list(ctx->store, &f, list_one, &lc, &err) != MW_STORE_OK) {
		json_decref(lc.arr);
		api_store_error(res, "listing users", &err);
		return;
	}
	api_ok(res, 200,
	       json_pack("{s:o,s:o}", "users", lc.arr, "next_after",
	                 json_array_size(lc.arr) == (size_t)limit ? json_integer(lc.last_id)
	                                                          : json_null()));
}

/* status_role - the status and role fields (NULL: absent, left as they are); 422 naming
   the field */
static int status_role(struct api_response *res, const char *status_s, enum mw_user_status *status,
                       const char *role_s, enum mw_user_role *role)
{
	if (status_s != NULL && mw_user_status_parse(status_s, status) < 0) {
		api_error(res, 422, "invalid_field",
		          "field status must be pending, active or disabled");
		return -1;
	}
	if (role_s != NULL && mw_user_role_parse(role_s, role) < 0) {
		api_error(res, 422, "invalid_field", "field role must be admin or user");
		return -1;
	}
	return 0;
}

/* api_user_create - POST /users {username, password?, status?, role?, description?,
   allowed_from?} */
void api_user_create(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"username",    "password",     "status", "role",
	                                     "description", "allowed_from", NULL};
	const char *username, *password, *status_s, *role_s, *desc;
	char name[MW_USERNAME_MAX + 1], pw[MW_PASSWORD_MAX + 1], hash[MW_PASSWORD_HASH_MAX];
	enum mw_user_status status = MW_USER_ACTIVE;
	enum mw_user_role role = MW_ROLE_USER;
	json_t *afv = json_object_get(req->json, "allowed_from");
	char **patterns = NULL;
	struct mw_user user;
	bool generated;
	mw_error err = {{0}};
	size_t i;
	int ret;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "username", true, MW_USERNAME_MAX * 4, &username) < 0 ||
	    api_field_string(req, res, "password", false, MW_PASSWORD_MAX, &password) < 0 ||
	    api_field_string(req, res, "status", false, 32, &status_s) < 0 ||
	    api_field_string(req, res, "role", false, 32, &role_s) < 0 ||
	    api_field_string(req, res, "description", false, MW_DESCRIPTION_MAX, &desc) < 0)
		return;
	if (mw_store_username_normalize(username, name, sizeof(name), &err) < 0) {
		api_error(res, 422, "invalid_field", "field username: %s", err.msg);
		return;
	}
	if (status_role(res, status_s, &status, role_s, &role) < 0)
		return;
	if (afv != NULL && (patterns = normalize_patterns(afv, "allowed_from", res)) == NULL)
		return;
	if (choose_password(ctx, res, password, "password", pw, sizeof(pw), &generated) < 0 ||
	    hash_password(ctx, res, pw, hash, sizeof(hash)) < 0) {
		mw_memzero(pw, sizeof(pw));
		mw_store_strv_free(patterns);
		return;
	}
	ret = mw_store_user_add(ctx->store, name, hash, status, role, desc, NULL, &err);
	if (ret != MW_STORE_OK) {
		mw_memzero(pw, sizeof(pw));
		mw_store_strv_free(patterns);
		if (ret == MW_STORE_EXISTS)
			api_error(res, 409, "exists", "user %s already exists", name);
		else if (ret == MW_STORE_ERROR && strstr(err.msg, "busy") == NULL &&
		         strstr(err.msg, "description") != NULL)
			api_error(res, 422, "invalid_field", "field description: %s", err.msg);
		else
			api_store_error(res, "adding a user", &err);
		return;
	}
	for (i = 0; patterns != NULL && patterns[i] != NULL; i++)
		if (mw_store_allowed_from_add(ctx->store, name, patterns[i], &err) ==
		    MW_STORE_ERROR)
			mw_error_log("adding pattern for %s: %s", name, err.msg);
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_USER_ADD), name,
	          json_pack("{s:s,s:s,s:b}", "status", mw_user_status_name(status), "role",
	                    mw_user_role_name(role), "generated_password", generated));
	mw_store_strv_free(patterns);
	patterns = NULL;
	if (mw_store_user_get(ctx->store, name, &user, &err) != MW_STORE_OK ||
	    mw_store_allowed_from_list(ctx->store, name, &patterns, NULL, &err) != MW_STORE_OK) {
		mw_memzero(pw, sizeof(pw));
		mw_user_clear(&user);
		api_store_error(res, "reading the new user", &err);
		return;
	}
	api_ok(res, 201, user_json(&user, patterns));
	if (generated)
		json_object_set_new(res->body, "password", json_string(pw));
	mw_memzero(pw, sizeof(pw));
	mw_store_strv_free(patterns);
	mw_user_clear(&user);
}

/* api_user_get - GET /users/{username} (admin or that user) */
void api_user_get(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	char **patterns = NULL, protocols[MW_PROTOCOLS_MAX + 1];
	struct mw_user user;
	mw_error err = {{0}};
	bool self, fresh;
	if (api_target_user(ctx, req, res, name, &user, false) < 0)
		return;
	/* the caller's own rows may come from the worker's cache (api-authcache.c) while the
	   store's data version is the one api_authenticate read and nothing changed since */
	self = req->authed && user.id == req->user.id;
	fresh =
	    self && req->version_known && mw_store_data_version_local(ctx->store) == req->version;
	if (fresh && api_authcache_user_extra_get(ctx->authcache, req->version,
	                                          req->session.token_hash, &patterns, protocols)) {
		/* served from the cache */
	} else if (mw_store_allowed_from_list(ctx->store, name, &patterns, NULL, &err) !=
	               MW_STORE_OK ||
	           mw_store_user_main_protocols_get(ctx->store, name, protocols, &err) !=
	               MW_STORE_OK) {
		mw_store_strv_free(patterns);
		mw_user_clear(&user);
		api_store_error(res, "listing patterns", &err);
		return;
	} else if (fresh && mw_store_data_version_local(ctx->store) == req->version) {
		api_authcache_user_extra_put(ctx->authcache, req->version, req->session.token_hash,
		                             patterns, protocols);
	}
	api_ok(res, 200, user_json(&user, patterns));
	/* 2FA (api-totp.c, api-apppw.c): where the main password works now; with TOTP on that
	   is nowhere (the passdb query refuses it), the stored choice waits for TOTP off */
	json_object_set_new(res->body, "main_password_protocols",
	                    api_protocols_json(user.has_totp ? "" : protocols));
	json_object_set_new(res->body, "main_password_protocols_without_totp",
	                    api_protocols_json(protocols));
	json_object_set_new(res->body, "totp", json_boolean(user.has_totp));
	mw_store_strv_free(patterns);
	mw_user_clear(&user);
}

/* api_user_update - PATCH /users/{username} {status?, role?, description?,
   main_password_protocols?} */
void api_user_update(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"status", "role", "description",
	                                     "main_password_protocols", NULL};
	json_t *mpp = json_object_get(req->json, "main_password_protocols");
	char protocols[MW_PROTOCOLS_MAX + 1];
	const char *status_s, *role_s, *desc;
	char name[MW_USERNAME_MAX + 1];
	enum mw_user_status status = MW_USER_ACTIVE;
	enum mw_user_role role = MW_ROLE_USER;
	struct mw_user user;
	mw_error err = {{0}};
	int64_t uid;
	bool self;
	int ret = MW_STORE_OK;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "status", false, 32, &status_s) < 0 ||
	    api_field_string(req, res, "role", false, 32, &role_s) < 0 ||
	    api_field_string(req, res, "description", false, MW_DESCRIPTION_MAX, &desc) < 0)
		return;
	if (status_s == NULL && role_s == NULL && desc == NULL && mpp == NULL) {
		api_error(res, 422, "missing_field",
		          "give at least one of status, role, description, "
		          "main_password_protocols");
		return;
	}
	if (mpp != NULL &&
	    api_protocols_parse(res, mpp, "main_password_protocols", true, protocols) < 0)
		return;
	if (status_role(res, status_s, &status, role_s, &role) < 0)
		return;
	if (api_target_user(ctx, req, res, name, &user, false) < 0)
		return;
	self = strcmp(name, req->user.username) == 0;
	uid = user.id;
	mw_user_clear(&user);
	if (self && ((status_s != NULL && status != MW_USER_ACTIVE) ||
	             (role_s != NULL && role != MW_ROLE_ADMIN))) {
		api_error(res, 409, "self_lockout", "an admin cannot disable or demote themself");
		return;
	}
	if (desc != NULL) {
		ret = mw_store_user_set_description(ctx->store, name, desc, &err);
		if (ret == MW_STORE_ERROR && strstr(err.msg, "description") != NULL) {
			api_error(res, 422, "invalid_field", "field description: %s", err.msg);
			return;
		}
	}
	if (ret == MW_STORE_OK && status_s != NULL)
		ret = mw_store_user_set_status(ctx->store, name, status, &err);
	if (ret == MW_STORE_OK && role_s != NULL)
		ret = mw_store_user_set_role(ctx->store, name, role, &err);
	if (ret == MW_STORE_OK && mpp != NULL)
		ret = mw_store_user_main_protocols_set(ctx->store, name, protocols, &err);
	if (ret == MW_STORE_OK && status_s != NULL && status != MW_USER_ACTIVE)
		ret = mw_store_session_revoke_user(ctx->store, uid, NULL, NULL, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "changing a user", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_USER_UPDATE), name, json_deep_copy(req->json));
	api_user_get(ctx, req, res);
}

/* api_user_delete - DELETE /users/{username} */
void api_user_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	struct mw_user user;
	mw_error err = {{0}};
	int ret;
	if (api_target_user(ctx, req, res, name, &user, false) < 0)
		return;
	mw_user_clear(&user);
	if (strcmp(name, req->user.username) == 0) {
		api_error(res, 409, "self_lockout", "an admin cannot delete themself");
		return;
	}
	ret = mw_store_user_delete(ctx->store, name, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "deleting a user", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_USER_DELETE), name, NULL);
	api_ok(res, 204, NULL);
}

/* api_user_password - POST /users/{username}/password: admin {password?}; the user
   themself {current_password, code?, password?}; a generated password is in the answer.
   Either way the user's other sessions and all their app passwords end: a reset is what
   follows a leak, and an app password made by whoever caused it must not outlive it. */
void api_user_password(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const admin_fields[] = {"password", NULL};
	static const char *const self_fields[] = {"current_password", "code", "password", NULL};
	const char *given, *current = NULL, *code = NULL;
	char name[MW_USERNAME_MAX + 1], pw[MW_PASSWORD_MAX + 1], hash[MW_PASSWORD_HASH_MAX];
	struct mw_user user;
	bool self, generated;
	unsigned revoked = 0, apppw_revoked = 0;
	mw_error err = {{0}};
	int ret;
	if (api_target_reauth(ctx, req, res, name, &user, self_fields, admin_fields,
	                      "current_password", 64, &current, &code, &self) < 0)
		return;
	if (api_field_string(req, res, "password", false, MW_PASSWORD_MAX, &given) < 0) {
		mw_user_clear(&user);
		return;
	}
	if (self && api_reauth(ctx, req, res, current, code, "password change") < 0) {
		mw_user_clear(&user);
		return;
	}
	if (choose_password(ctx, res, given, "password", pw, sizeof(pw), &generated) < 0 ||
	    hash_password(ctx, res, pw, hash, sizeof(hash)) < 0) {
		mw_memzero(pw, sizeof(pw));
		mw_user_clear(&user);
		return;
	}
	ret = mw_store_user_set_password(ctx->store, name, hash, &err);
	if (ret == MW_STORE_OK)
		ret = mw_store_session_revoke_user(
		    ctx->store, user.id, self ? req->session.token_hash : NULL, &revoked, &err);
	if (ret == MW_STORE_OK)
		ret = mw_store_app_password_revoke_all(ctx->store, name, &apppw_revoked, &err);
	mw_user_clear(&user);
	if (ret != MW_STORE_OK) {
		mw_memzero(pw, sizeof(pw));
		if (ret == MW_STORE_NOTFOUND)
			api_error(res, 404, "not_found", "no such user");
		else
			api_store_error(res, "setting a password", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_USER_PASSWORD), name,
	          json_pack("{s:b,s:i,s:i}", "generated", generated, "sessions_revoked",
	                    (int)revoked, "app_passwords_revoked", (int)apppw_revoked));
	api_ok(res, 200,
	       json_pack("{s:s,s:i,s:i}", "username", name, "sessions_revoked", (int)revoked,
	                 "app_passwords_revoked", (int)apppw_revoked));
	if (generated)
		json_object_set_new(res->body, "password", json_string(pw));
	mw_memzero(pw, sizeof(pw));
}

/* ---- allowed-From ------------------------------------------------------------------- */

/* af_answer - answer status with the user's patterns */
static void af_answer(struct api_ctx *ctx, struct api_response *res, const char *name, int status)
{
	char **patterns = NULL;
	json_t *arr;
	size_t i;
	mw_error err = {{0}};
	int ret = mw_store_allowed_from_list(ctx->store, name, &patterns, NULL, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "listing patterns", &err);
		return;
	}
	arr = json_array();
	for (i = 0; patterns[i] != NULL; i++)
		json_array_append_new(arr, json_string(patterns[i]));
	mw_store_strv_free(patterns);
	api_ok(res, status, json_pack("{s:s,s:o}", "username", name, "patterns", arr));
}

/* af_target - the route's user, normalised (404 when unknown) */
static int af_target(struct api_ctx *ctx, struct api_request *req, struct api_response *res,
                     char *name)
{
	struct mw_user user;
	if (api_target_user(ctx, req, res, name, &user, false) < 0)
		return -1;
	mw_user_clear(&user);
	return 0;
}

/* api_af_get - GET /users/{username}/allowed-from */
void api_af_get(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	if (af_target(ctx, req, res, name) == 0)
		af_answer(ctx, res, name, 200);
}

/* api_af_replace - PUT /users/{username}/allowed-from {patterns: [...]} */
void api_af_replace(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"patterns", NULL};
	char name[MW_USERNAME_MAX + 1];
	char **want, **have = NULL;
	json_t *arr = json_object_get(req->json, "patterns");
	size_t i, k;
	mw_error err = {{0}};
	int ret = MW_STORE_OK;
	if (api_fields_check(req, res, fields) < 0)
		return;
	if (arr == NULL) {
		api_error(res, 422, "missing_field", "field patterns is required");
		return;
	}
	if ((want = normalize_patterns(arr, "patterns", res)) == NULL)
		return;
	if (af_target(ctx, req, res, name) < 0 ||
	    mw_store_allowed_from_list(ctx->store, name, &have, NULL, &err) != MW_STORE_OK) {
		if (res->status == 0)
			api_store_error(res, "listing patterns", &err);
		mw_store_strv_free(want);
		return;
	}
	/* not one transaction: a concurrent change may interleave, the result is still a
	   valid set and the answer shows what is stored */
	for (i = 0; have[i] != NULL && ret != MW_STORE_ERROR; i++) {
		for (k = 0; want[k] != NULL && strcmp(want[k], have[i]) != 0; k++)
			;
		if (want[k] == NULL)
			ret = mw_store_allowed_from_del(ctx->store, name, have[i], &err);
	}
	for (k = 0; want[k] != NULL && ret != MW_STORE_ERROR; k++) {
		for (i = 0; have[i] != NULL && strcmp(want[k], have[i]) != 0; i++)
			;
		if (have[i] == NULL)
			ret = mw_store_allowed_from_add(ctx->store, name, want[k], &err);
	}
	mw_store_strv_free(have);
	if (ret == MW_STORE_ERROR) {
		mw_store_strv_free(want);
		api_store_error(res, "replacing patterns", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_ALLOWED_FROM_REPLACE), name,
	          json_pack("{s:O}", "patterns", arr));
	mw_store_strv_free(want);
	af_answer(ctx, res, name, 200);
}

/* api_af_add - POST /users/{username}/allowed-from {pattern} */
void api_af_add(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"pattern", NULL};
	char name[MW_USERNAME_MAX + 1];
	const char *pattern;
	json_t *one;
	char **v;
	mw_error err = {{0}};
	int ret;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "pattern", true, MW_PATTERN_MAX * 4, &pattern) < 0)
		return;
	one = json_pack("[s]", pattern);
	v = normalize_patterns(one, "pattern", res);
	json_decref(one);
	if (v == NULL)
		return;
	if (af_target(ctx, req, res, name) < 0) {
		mw_store_strv_free(v);
		return;
	}
	ret = mw_store_allowed_from_add(ctx->store, name, v[0], &err);
	if (ret == MW_STORE_EXISTS)
		api_error(res, 409, "exists", "pattern %s is already allowed", v[0]);
	else if (ret == MW_STORE_NOTFOUND)
		api_error(res, 404, "not_found", "no such user");
	else if (ret != MW_STORE_OK)
		api_store_error(res, "adding a pattern", &err);
	else {
		api_audit(ctx, req, mw_audit_name(MW_AUDIT_ALLOWED_FROM_ADD), name,
		          json_pack("{s:s}", "pattern", v[0]));
		af_answer(ctx, res, name, 201);
	}
	mw_store_strv_free(v);
}

/* api_af_delete - DELETE /users/{username}/allowed-from/{pattern} */
void api_af_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1], canon[MW_PATTERN_MAX + 1];
	mw_error err = {{0}};
	int ret;
	if (af_target(ctx, req, res, name) < 0)
		return;
	if (mw_pattern_normalize(req->params[1], canon, sizeof(canon), &err) < 0) {
		api_error(res, 404, "not_found", "no such pattern (%s)", err.msg);
		return;
	}
	ret = mw_store_allowed_from_del(ctx->store, name, canon, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "pattern %s is not allowed for %s", canon, name);
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "deleting a pattern", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_ALLOWED_FROM_DELETE), name,
	          json_pack("{s:s}", "pattern", canon));
	api_ok(res, 204, NULL);
}
