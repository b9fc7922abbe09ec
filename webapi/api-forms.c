/*
 * api-forms.c - mailwarden-api: public contact forms (issue 18).
 *
 *   GET     /api/v1/forms/{form}/token   a signed token, valid [forms] token_lifetime
 *   POST    /api/v1/forms/{form}         a submission: 202 once it is in the spool
 *   OPTIONS /api/v1/forms/{form}         the browser's CORS preflight for the POST
 *
 * No session: these are public. A submission passes, in this order: the form exists (404);
 * [forms] sender is set (503); Origin is one of the form's (403, a missing Origin too); the
 * body is a JSON object of strings (422 naming the member); _token is a token we made for
 * this form and it has not expired (403); the fields fit the form (422 naming the field);
 * the per-IP and per-form limits, asked of mailwarden-policyd over its control socket
 * (429 with Retry-After; policyd unreachable or refusing: 503 with Retry-After, never
 * unlimited); the honeypot (filled: the same 202 as a real submission, nothing is sent, so a
 * bot learns nothing); then the message is built (lib/mw-forms.c: HTML-escaped, no line
 * break reaches a header) and written to the spool and fsync'd before the 202. The API
 * master's flusher (api-formflush.c) submits it to Postfix.
 *
 * Answers to an allowed Origin carry Access-Control-Allow-Origin with that origin (the page
 * reads the token and the verdict); other origins get none.
 *
 * Public: api_forms_load, api_form_token, api_form_submit, api_form_preflight.
 * Diagnostics: event=form_... log lines (form, client, outcome); values are never logged.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-forms.h"
#include "mw-log.h"
#include "mw-pdctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define FORMS_PD_TIMEOUT_MS 1000
#define FORMS_VALUES_MAX    (MW_FORM_FIELDS_MAX + 2) /* the fields, _token, the honeypot */

/* api_forms_load - the configured forms into ctx (start and reload): -1 with error_r */
int api_forms_load(struct api_ctx *ctx, mw_error *error_r)
{
	struct mw_forms *f;
	if (mw_forms_load(ctx->cfg, &f, error_r) < 0)
		return -1;
	mw_forms_free(&ctx->forms);
	ctx->forms = f;
	ctx->form_key_set = false;
	return 0;
}

/* form_of - the route's form; 404 when there is none */
static const struct mw_form *form_of(struct api_ctx *ctx, struct api_request *req,
                                     struct api_response *res)
{
	const struct mw_form *f = mw_forms_find(ctx->forms, req->params[0]);
	if (f == NULL)
		api_error(res, 404, "not_found", "no such form");
	return f;
}

/* form_key - the token key, derived once per worker from the master key */
static int form_key(struct api_ctx *ctx, struct api_response *res)
{
	mw_master_key mk;
	if (ctx->form_key_set)
		return 0;
	if (api_master_key(ctx, res, &mk) < 0)
		return -1;
	mw_form_key_derive(&mk, &ctx->form_key);
	mw_secret_key_wipe(&mk);
	ctx->form_key_set = true;
	return 0;
}

/* cors - answer an allowed origin's page with its own origin */
static void cors(const struct mw_form *f, struct api_request *req, struct api_response *res)
{
	if (mw_form_origin_allowed(f, req->origin))
		(void)mw_strlcpy(res->cors_allow, req->origin, sizeof(res->cors_allow));
}

/* client_of - the submitter's address as nginx passed it */
static const char *client_of(const struct api_request *req)
{
	return req->remote_addr != NULL && req->remote_addr[0] != '\0' ? req->remote_addr : "-";
}

/* api_form_preflight - OPTIONS: CORS for the form's origins only */
void api_form_preflight(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	const struct mw_form *f = form_of(ctx, req, res);
	if (f == NULL)
		return;
	if (!mw_form_origin_allowed(f, req->origin)) {
		api_error(res, 403, "origin_not_allowed", "this origin may not use the form");
		return;
	}
	cors(f, req, res);
	res->cors_preflight = true;
	api_ok(res, 204, NULL);
}

/* api_form_token - GET a signed token */
void api_form_token(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	const struct mw_form *f = form_of(ctx, req, res);
	char token[MW_FORM_TOKEN_MAX + 1];
	int64_t life = mw_config_int(ctx->cfg, MWK_FORMS_TOKEN_LIFETIME);
	mw_error err = {{0}};
	if (f == NULL)
		return;
	if (req->origin != NULL && !mw_form_origin_allowed(f, req->origin)) {
		api_error(res, 403, "origin_not_allowed", "this origin may not use the form");
		return;
	}
	if (form_key(ctx, res) < 0)
		return;
	if (mw_form_token_make(&ctx->form_key, f->name, mw_now(), life, token, &err) < 0) {
		api_error(res, 500, "internal", "%s", err.msg);
		return;
	}
	cors(f, req, res);
	api_ok(res, 200,
	       json_pack("{s:s,s:s,s:I}", "form", f->name, "token", token, "expires_in",
	                 (json_int_t)life));
}

/* field_error - a 422 naming the field */
static void field_error(struct api_response *res, const char *field, const char *why)
{
	api_error(res, 422, "invalid_field", "field %s: %s", field, why);
	json_object_set_new(json_object_get(res->body, "error"), "field", json_string(field));
}

/* charge - the rate limits through mailwarden-policyd: 0 allowed, -1 with res set */
static int charge(struct api_ctx *ctx, const struct mw_form *f, struct api_request *req,
                  struct api_response *res)
{
	struct mw_pdctl_request pr;
	struct mw_pdctl_reply *reply;
	mw_error err = {{0}};
	int rc = -1;
	if (f->ip_count == 0 && f->form_count == 0)
		return 0;
	memset(&pr, 0, sizeof(pr));
	pr.command = MW_PDCTL_CHARGE;
	(void)mw_strlcpy(pr.subject, f->name, sizeof(pr.subject));
	if (mw_strlcpy(pr.client, client_of(req), sizeof(pr.client)) < 0)
		pr.client[0] = '\0';
	pr.ip_count = f->ip_count;
	pr.ip_window = f->ip_window;
	pr.form_count = f->form_count;
	pr.form_window = f->form_window;
	reply = mw_calloc(1, sizeof(*reply));
	if (mw_pdctl_call(mw_config_str(ctx->cfg, MWK_PD_CONTROL_SOCKET), &pr, FORMS_PD_TIMEOUT_MS,
	                  reply, &err) < 0 ||
	    !reply->ok || !reply->verdict) {
		mw_error_log("event=form_refused form=%s client=%s reason=policyd_unavailable "
		             "error=\"%s\"",
		             f->name, client_of(req), reply->ok ? err.msg : reply->error);
		api_error(res, 503, "rate_limiter_unavailable",
		          "the rate limiter cannot be asked; try again later");
		(void)mw_strlcpy(res->retry_after, "30", sizeof(res->retry_after));
	} else if (!reply->allowed) {
		mw_info(
		    "event=form_refused form=%s client=%s reason=rate_limit retry_after=%" PRId64,
		    f->name, client_of(req), reply->retry_after);
		api_error(res, 429, "rate_limited", "too many submissions; try again later");
		(void)snprintf(res->retry_after, sizeof(res->retry_after), "%" PRId64,
		               reply->retry_after > 0 ? reply->retry_after : 1);
	} else {
		rc = 0;
	}
	free(reply);
	return rc;
}

/* api_form_submit - POST a submission */
void api_form_submit(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	const struct mw_form *f = form_of(ctx, req, res);
	const char *sender = mw_config_str(ctx->cfg, MWK_FORMS_SENDER), *key, *token, *hp;
	struct mw_form_value v[FORMS_VALUES_MAX];
	char field[MW_FORM_NAME_MAX + 1], id[MW_FORM_SPOOL_ID_MAX + 1];
	mw_error err = {{0}};
	json_t *val;
	size_t n = 0;
	mw_str msg;
	if (f == NULL)
		return;
	if (sender[0] == '\0') {
		api_error(res, 503, "forms_disabled", "[forms] sender is not set");
		return;
	}
	if (!mw_form_origin_allowed(f, req->origin)) {
		mw_info("event=form_refused form=%s client=%s reason=origin", f->name,
		        client_of(req));
		api_error(res, 403, "origin_not_allowed",
		          "the Origin header is missing or not allowed for this form");
		return;
	}
	cors(f, req, res);
	json_object_foreach(req->json, key, val)
	{
		if (!json_is_string(val) ||
		    strlen(json_string_value(val)) != json_string_length(val)) {
			field_error(res, key, "must be a string without NUL");
			return;
		}
		if (n == FORMS_VALUES_MAX) {
			field_error(res, key, "too many fields");
			return;
		}
		v[n].name = key;
		v[n].value = json_string_value(val);
		n++;
	}
	token = mw_form_value_get(v, n, "_token");
	if (form_key(ctx, res) < 0)
		return;
	if (token == NULL ||
	    mw_form_token_check(&ctx->form_key, f->name, token, mw_now(),
	                        mw_config_int(ctx->cfg, MWK_FORMS_TOKEN_LIFETIME), &err) < 0) {
		mw_info("event=form_refused form=%s client=%s reason=token error=\"%s\"", f->name,
		        client_of(req), token == NULL ? "missing" : err.msg);
		api_error(res, 403, "bad_token", "%s; fetch a new one from %s/forms/%s/token",
		          token == NULL ? "no _token" : err.msg, API_PREFIX, f->name);
		return;
	}
	if (mw_form_validate(f, v, n, field, &err) < 0) {
		field_error(res, field[0] != '\0' ? field : "?", err.msg);
		return;
	}
	if (charge(ctx, f, req, res) < 0)
		return;
	mw_form_spool_id(id);
	hp = f->honeypot[0] != '\0' ? mw_form_value_get(v, n, f->honeypot) : NULL;
	if (hp != NULL && hp[0] != '\0') {
		/* looks accepted: a bot must not learn which field gave it away */
		mw_info("event=form_honeypot form=%s client=%s id=%s", f->name, client_of(req), id);
		api_ok(res, 202, json_pack("{s:s,s:s}", "status", "accepted", "id", id));
		return;
	}
	mw_str_init(&msg, MW_FORM_MESSAGE_MAX);
	if (mw_form_message(f, v, n, sender, client_of(req), id, mw_now(), &msg, &err) < 0 ||
	    mw_form_spool_write(mw_config_str(ctx->cfg, MWK_FORMS_SPOOL_DIR), id, sender, f->to,
	                        msg.buf, msg.len, &err) < 0) {
		mw_error_log("event=form_refused form=%s client=%s reason=spool error=\"%s\"",
		             f->name, client_of(req), err.msg);
		api_error(res, 503, "spool_unavailable",
		          "the form cannot be stored; try again later");
		(void)mw_strlcpy(res->retry_after, "60", sizeof(res->retry_after));
		mw_str_free(&msg);
		return;
	}
	mw_str_free(&msg);
	mw_info("event=form_accepted form=%s client=%s id=%s", f->name, client_of(req), id);
	api_ok(res, 202, json_pack("{s:s,s:s}", "status", "accepted", "id", id));
}
