/* api-apppw.c - mailwarden-api app passwords: per-device passwords for IMAP and SMTP AUTH.
 *
 * A user (or an admin for them) creates a named app password for imap and/or smtp, with an
 * optional expiry and client networks. The password is generated here (32 characters from
 * mw_password_generate's alphabet, about 180 bits), shown once in the answer, and stored
 * only as its unsalted hex SHA-256: it is high-entropy, so a salt adds nothing, and the
 * plain hash lets Dovecot's passdb sql compare %{sha256:password} inside its query. The
 * query (scripts/mailwarden_lab.py, conf.d/dovecot-mailwarden.conf.sample) enforces the
 * protocols (%s), the expiry and, by returning allow_nets, the client networks; deleting
 * a row stops the password at the next login.
 *
 * Creating one for yourself needs current_password (and code when TOTP is on), checked
 * and counted by api_reauth / api-guard.c; an admin creating one for another user needs
 * neither. A password change deletes them all (api-users.c).
 *
 * Input limits: name 1..MW_APP_PW_NAME_MAX bytes of text; protocols a non-empty array of
 * "imap"/"smtp"; expires_at a unix time in the future; allow_nets at most 16 addresses or
 * CIDR networks (IPv4 or IPv6), each checked by mw_cidr_parse (lib/mw-net.c).
 *
 * Public: api_apppw_list, api_apppw_create,
 * api_apppw_delete.
 * Diagnostics: the generated password is never logged or audited (the audit names the app
 * password and its restrictions).
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-audit.h"
#include "mw-log.h"
#include "mw-net.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define APPPW_LENGTH   32
#define APPPW_NETS_MAX 16

/* parse_nets - allow_nets as the store's comma-separated text ("" when absent) */
static int parse_nets(struct api_response *res, json_t *arr, char out[MW_APP_PW_NETS_MAX + 1])
{
	mw_str s;
	size_t i;
	json_t *item;
	out[0] = '\0';
	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > APPPW_NETS_MAX) {
		api_error(res, 422, "invalid_field",
		          "field allow_nets must be an array of at most %d networks",
		          APPPW_NETS_MAX);
		return -1;
	}
	mw_str_init(&s, MW_APP_PW_NETS_MAX);
	json_array_foreach(arr, i, item)
	{
		const char *p = json_string_value(item);
		if (p == NULL || strlen(p) != json_string_length(item) || !mw_cidr_valid(p)) {
			mw_str_free(&s);
			api_error(res, 422, "invalid_field",
			          "field allow_nets[%zu] must be an IP "
			          "address or network (ADDRESS/PREFIX)",
			          i);
			return -1;
		}
		if ((i > 0 && mw_str_appendc(&s, ',') < 0) || mw_str_appends(&s, p) < 0) {
			mw_str_free(&s);
			api_error(res, 422, "invalid_field", "field allow_nets is too long");
			return -1;
		}
	}
	(void)mw_strlcpy(out, s.len > 0 ? s.buf : "", MW_APP_PW_NETS_MAX + 1);
	mw_str_free(&s);
	return 0;
}

/* nets_json - "a,b" as ["a","b"]; "" as null (any network) */
static json_t *nets_json(const char *nets)
{
	json_t *arr;
	const char *p = nets, *comma;
	if (nets[0] == '\0')
		return json_null();
	arr = json_array();
	for (;;) {
		comma = strchr(p, ',');
		json_array_append_new(
		    arr, json_stringn(p, comma != NULL ? (size_t)(comma - p) : strlen(p)));
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return arr;
}

/* time_or_null - a unix time, or null for 0 */
static json_t *time_or_null(int64_t t)
{
	return t != 0 ? json_integer((json_int_t)t) : json_null();
}

/* apppw_json - the public view of an app password (never its hash) */
static json_t *apppw_json(const struct mw_app_password *ap)
{
	return json_pack("{s:I,s:s,s:o,s:I,s:o,s:o,s:o,s:o}", "id", (json_int_t)ap->id, "name",
	                 ap->name, "protocols", api_protocols_json(ap->protocols), "created_at",
	                 (json_int_t)ap->created_at, "expires_at", time_or_null(ap->expires_at),
	                 "allow_nets", nets_json(ap->allow_nets), "last_used_at",
	                 time_or_null(ap->last_used_at), "last_ip",
	                 ap->last_ip[0] != '\0' ? json_string(ap->last_ip) : json_null());
}

/* route_user - the route's {username} normalised (404 when it can name no user) */
static int route_user(struct api_request *req, struct api_response *res, char *name)
{
	if (mw_store_username_normalize(req->params[0], name, MW_USERNAME_MAX + 1, NULL) < 0) {
		api_error(res, 404, "not_found", "no such user");
		return -1;
	}
	return 0;
}

/* api_apppw_list - GET /users/{username}/app-passwords */
void api_apppw_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	char name[MW_USERNAME_MAX + 1];
	struct mw_app_password *v = NULL;
	size_t n = 0, i;
	mw_error err = {{0}};
	json_t *arr;
	int ret;
	if (api_query_check(req, res, params) < 0 || route_user(req, res, name) < 0)
		return;
	ret = mw_store_app_password_list(ctx->store, name, &v, &n, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "listing app passwords", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, apppw_json(&v[i]));
	free(v);
	api_ok(res, 200, json_pack("{s:s,s:o}", "username", name, "app_passwords", arr));
}

/* api_apppw_create - POST /users/{username}/app-passwords {name, protocols?, expires_at?,
   allow_nets?, current_password, code?}: the password is in the answer, once. The user
   themself gives current_password (and code when TOTP is on): an app password is lasting
   mail access, which a stolen session alone must not mint. An admin making one for
   another user gives neither (their session is the authority, as for every admin change). */
void api_apppw_create(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {
	    "name", "protocols", "expires_at", "allow_nets", "current_password", "code", NULL};
	const char *current = NULL, *code = NULL;
	char name[MW_USERNAME_MAX + 1], pw[APPPW_LENGTH + 1];
	unsigned char digest[crypto_hash_sha256_BYTES];
	struct mw_app_password ap;
	json_t *protocols = json_object_get(req->json, "protocols");
	json_t *expires = json_object_get(req->json, "expires_at");
	const char *label;
	mw_error err = {{0}};
	int64_t id = 0;
	int ret;
	memset(&ap, 0, sizeof(ap));
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "name", true, MW_APP_PW_NAME_MAX, &label) < 0)
		return;
	if (label[0] == '\0' || !mw_utf8_valid(label, strlen(label), NULL)) {
		api_error(res, 422, "invalid_field",
		          "field name must be 1 to %d bytes of UTF-8 text", MW_APP_PW_NAME_MAX);
		return;
	}
	for (size_t i = 0; label[i] != '\0'; i++) {
		if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f) {
			api_error(res, 422, "invalid_field",
			          "field name holds a control character");
			return;
		}
	}
	(void)mw_strlcpy(ap.name, label, sizeof(ap.name));
	if (protocols == NULL)
		(void)mw_strlcpy(ap.protocols, "imap,smtp", sizeof(ap.protocols));
	else if (api_protocols_parse(res, protocols, "protocols", false, ap.protocols) < 0)
		return;
	if (expires != NULL && !json_is_null(expires)) {
		if (!json_is_integer(expires) || json_integer_value(expires) <= mw_now()) {
			api_error(res, 422, "invalid_field",
			          "field expires_at must be a unix time in the future (or null)");
			return;
		}
		ap.expires_at = (int64_t)json_integer_value(expires);
	}
	if (parse_nets(res, json_object_get(req->json, "allow_nets"), ap.allow_nets) < 0 ||
	    route_user(req, res, name) < 0 ||
	    api_field_string(req, res, "current_password", false, MW_PASSWORD_MAX, &current) < 0 ||
	    api_field_string(req, res, "code", false, 64, &code) < 0)
		return;
	if (strcmp(name, req->user.username) == 0) {
		if (current == NULL) {
			api_error(res, 422, "missing_field",
			          "field current_password is required to "
			          "create your own app password");
			return;
		}
		if (api_reauth(ctx, req, res, current, code, "app password creation") < 0)
			return;
	} else if (current != NULL || code != NULL) {
		api_error(res, 422, "unknown_field",
		          "an admin creating another user's app password "
		          "gives neither current_password nor code");
		return;
	}
	if (mw_password_generate(pw, sizeof(pw), APPPW_LENGTH, &err) < 0) {
		mw_error_log("generating an app password: %s", err.msg);
		api_error(res, 503, "internal", "cannot generate a password now");
		return;
	}
	crypto_hash_sha256(digest, (const unsigned char *)pw, strlen(pw));
	(void)sodium_bin2hex(ap.hash, sizeof(ap.hash), digest, sizeof(digest));
	ret = mw_store_app_password_add(ctx->store, name, &ap, &id, &err);
	if (ret != MW_STORE_OK) {
		mw_memzero(pw, sizeof(pw));
		if (ret == MW_STORE_NOTFOUND)
			api_error(res, 404, "not_found", "no such user");
		else if (ret == MW_STORE_EXISTS)
			api_error(res, 409, "exists", "an app password with that name exists");
		else if (strstr(err.msg, "at most") != NULL)
			api_error(res, 409, "too_many", "%s", err.msg);
		else
			api_store_error(res, "adding an app password", &err);
		return;
	}
	ap.id = id;
	ap.created_at = mw_now();
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_APP_PASSWORD_ADD), name,
	          json_pack("{s:I,s:s,s:s,s:I,s:s}", "id", (json_int_t)id, "name", ap.name,
	                    "protocols", ap.protocols, "expires_at", (json_int_t)ap.expires_at,
	                    "allow_nets", ap.allow_nets));
	api_ok(res, 201, apppw_json(&ap));
	json_object_set_new(res->body, "password", json_string(pw));
	json_object_set_new(res->body, "password_qr_svg", api_qr_svg(pw)); /* api-qr.c */
	mw_memzero(pw, sizeof(pw));
}

/* api_apppw_delete - DELETE /users/{username}/app-passwords/{id} */
void api_apppw_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	long long id;
	mw_error err = {{0}};
	int ret;
	if (route_user(req, res, name) < 0)
		return;
	if (!api_path_id(req->params[1], &id)) {
		api_error(res, 404, "not_found", "no such app password");
		return;
	}
	ret = mw_store_app_password_del(ctx->store, name, (int64_t)id, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such app password");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "deleting an app password", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_APP_PASSWORD_DELETE), name,
	          json_pack("{s:I}", "id", (json_int_t)id));
	api_ok(res, 204, NULL);
}
