/* api-dkim.c - mailwarden-api: DKIM signing keys per domain (admin).
 *
 * list: every key (or one domain's) with its public key and the DNS TXT record to publish;
 * private keys are never returned. generate: a new RSA key (lib/mw-dkim-sign.h) under a
 * selector (default: the month, YYYYMM), its private key encrypted with the master key
 * (associated data "dkim:DOMAIN:SELECTOR") and stored; it becomes the domain's active key
 * only when the domain has none yet or the body says "activate": true. Rotation is generate
 * under a new selector, publish its record, then activate. A domain's active key (the one
 * mailwarden-milter signs with) cannot be deleted: activate another first.
 * The master key file ([main] master_key) must be readable by the API's user for generate.
 * Every change is audited (dkim.generate, dkim.activate, dkim.del; target DOMAIN/SELECTOR).
 *
 * rotate runs the key rotation (lib/mw-dkim-rotate.h) for one domain or what is due for
 * all, exactly as mailwardenctl's local mode does (audited dkim.rotate, dkim.promote,
 * dkim.retire with this API user as the actor).
 *
 * Public: api_dkim_list, api_dkim_generate, api_dkim_activate, api_dkim_delete,
 * api_dkim_rotate.
 *
 * Diagnostics: key generation and master key failures are logged and answered 503.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-audit.h"
#include "mw-dkim-rotate.h"
#include "mw-dkim-sign.h"
#include "mw-log.h"
#include "mw-secret.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* row_type - the key type recorded in a row */
static enum mw_dkim_key_type row_type(const struct mw_dkim_key_row *row)
{
	return strcmp(row->key_type, "ed25519") == 0 ? MW_DKIM_KEY_ED25519 : MW_DKIM_KEY_RSA;
}

/* key_json - the public view of a key row, with its TXT record */
static json_t *key_json(const struct mw_dkim_key_row *row)
{
	mw_str txt;
	json_t *o;
	mw_str_init(&txt, 0);
	if (mw_dkim_txt_record(row->domain, row->selector, row_type(row), row->public_key, &txt,
	                       NULL) < 0)
		mw_str_reset(&txt);
	o = json_pack("{s:s,s:s,s:s,s:b,s:I,s:s,s:s}", "domain", row->domain, "selector",
	              row->selector, "type", row->key_type, "active", row->active, "created_at",
	              (json_int_t)row->created_at, "public_key", row->public_key, "txt_record",
	              mw_str_c(&txt));
	json_object_set_new(o, "dns_name",
	                    json_sprintf("%s._domainkey.%s", row->selector, row->domain));
	json_object_set_new(o, "state", json_string(row->state));
	json_object_set_new(o, "activated_at",
	                    row->activated_at != 0 ? json_integer((json_int_t)row->activated_at)
	                                           : json_null());
	json_object_set_new(o, "retire_at",
	                    row->retire_at != 0 ? json_integer((json_int_t)row->retire_at)
	                                        : json_null());
	mw_str_free(&txt);
	return o;
}

/* names - domain (and selector when sel_in is not NULL) normalised; status (404 for route
   parameters, 422 for body fields) naming what is wrong */
static int names(struct api_response *res, int status, const char *dom_in, const char *sel_in,
                 char *domain, char *selector)
{
	mw_error err = {{0}};
	if (mw_dkim_domain_normalize(dom_in, domain, MW_DKIM_DOMAIN_MAX + 1, &err) < 0) {
		if (status == 404)
			api_error(res, 404, "not_found", "no such DKIM key");
		else
			api_error(res, 422, "invalid_field", "field domain: %s", err.msg);
		return -1;
	}
	if (sel_in != NULL &&
	    mw_dkim_selector_normalize(sel_in, selector, MW_DKIM_SELECTOR_MAX + 1, &err) < 0) {
		if (status == 404)
			api_error(res, 404, "not_found", "no such DKIM key");
		else
			api_error(res, 422, "invalid_field", "field selector: %s", err.msg);
		return -1;
	}
	return 0;
}

/* key_answer - answer status with the key domain/selector */
static void key_answer(struct api_ctx *ctx, struct api_response *res, const char *domain,
                       const char *selector, int status)
{
	struct mw_dkim_key_row row;
	mw_error err = {{0}};
	int ret;
	memset(&row, 0, sizeof(row));
	ret = mw_store_dkim_key_get(ctx->store, domain, selector, &row, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such DKIM key");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "reading a DKIM key", &err);
		return;
	}
	api_ok(res, status, key_json(&row));
	mw_dkim_key_row_clear(&row);
}

/* api_dkim_list - GET /dkim/keys?domain= */
void api_dkim_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {"domain", NULL};
	const char *dom_in = api_query_get(req, "domain");
	char domain[MW_DKIM_DOMAIN_MAX + 1];
	struct mw_dkim_key_row *rows = NULL;
	size_t n = 0, i;
	mw_error err = {{0}};
	json_t *arr;
	if (api_query_check(req, res, params) < 0)
		return;
	if (dom_in != NULL && mw_dkim_domain_normalize(dom_in, domain, sizeof(domain), &err) < 0) {
		api_error(res, 422, "invalid_parameter", "query parameter domain: %s", err.msg);
		return;
	}
	if (mw_store_dkim_key_list(ctx->store, dom_in != NULL ? domain : NULL, &rows, &n, &err) !=
	    MW_STORE_OK) {
		api_store_error(res, "listing DKIM keys", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, key_json(&rows[i]));
	mw_dkim_key_rows_free(rows, n);
	api_ok(res, 200, json_pack("{s:o}", "keys", arr));
}

/* default_selector - the month, YYYYMM */
static int default_selector(char *out, size_t size)
{
	time_t now = (time_t)mw_now();
	struct tm tm;
	return gmtime_r(&now, &tm) != NULL && strftime(out, size, "%Y%m", &tm) != 0 ? 0 : -1;
}

/* field_bits - the optional field bits (NULL: *bits_r unchanged): an RSA size a new key may
   have; -1 with the 422 answer otherwise */
static int field_bits(struct api_response *res, const json_t *bits_v, unsigned *bits_r)
{
	json_int_t b;
	if (bits_v == NULL)
		return 0;
	b = json_is_integer(bits_v) ? json_integer_value(bits_v) : 0;
	if (!mw_dkim_rsa_bits_ok((long long)b)) {
		api_error(res, 422, "invalid_field", "field bits must be " MW_DKIM_RSA_BITS_TEXT);
		return -1;
	}
	*bits_r = (unsigned)b;
	return 0;
}

/* api_dkim_generate - POST /dkim/keys {domain, selector?, bits?, activate?} */
void api_dkim_generate(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"domain", "selector", "bits", "activate", NULL};
	const char *dom_in, *sel_in;
	char domain[MW_DKIM_DOMAIN_MAX + 1], selector[MW_DKIM_SELECTOR_MAX + 1], month[16];
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 2];
	json_t *bits_v = json_object_get(req->json, "bits");
	json_t *act_v = json_object_get(req->json, "activate");
	struct mw_dkim_key_row active;
	mw_master_key mk;
	mw_str pem, pub;
	mw_error err = {{0}};
	unsigned bits = 2048;
	bool activate;
	int ret;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "domain", true, MW_DKIM_DOMAIN_MAX * 4, &dom_in) < 0 ||
	    api_field_string(req, res, "selector", false, MW_DKIM_SELECTOR_MAX, &sel_in) < 0)
		return;
	if (field_bits(res, bits_v, &bits) < 0)
		return;
	if (act_v != NULL && !json_is_boolean(act_v)) {
		api_error(res, 422, "invalid_field", "field activate must be true or false");
		return;
	}
	if (sel_in == NULL) {
		if (default_selector(month, sizeof(month)) < 0) {
			api_error(res, 503, "internal", "cannot make the default selector");
			return;
		}
		sel_in = month;
	}
	if (names(res, 422, dom_in, sel_in, domain, selector) < 0)
		return;
	/* the default: active when the domain has no active key yet */
	memset(&active, 0, sizeof(active));
	ret = mw_store_dkim_key_get_active(ctx->store, domain, &active, &err);
	if (ret != MW_STORE_OK && ret != MW_STORE_NOTFOUND) {
		api_store_error(res, "reading DKIM keys", &err);
		return;
	}
	if (ret == MW_STORE_OK)
		mw_dkim_key_row_clear(&active);
	activate = act_v != NULL ? json_is_true(act_v) : ret == MW_STORE_NOTFOUND;
	memset(&active, 0, sizeof(active));
	ret = mw_store_dkim_key_get(ctx->store, domain, selector, &active, &err);
	if (ret == MW_STORE_OK) {
		mw_dkim_key_row_clear(&active);
		api_error(res, 409, "exists", "%s already has a key with selector %s", domain,
		          selector);
		return;
	}
	if (api_master_key(ctx, res, &mk) < 0)
		return;
	mw_str_init(&pem, 0);
	mw_str_init(&pub, 0);
	if (mw_dkim_generate_rsa(bits, &pem, &pub, &err) < 0) {
		mw_error_log("DKIM generate for %s: %s", domain, err.msg);
		api_error(res, 503, "internal", "cannot make the key now (see the log)");
		goto out;
	}
	ret = mw_dkim_key_save(ctx->store, &mk, domain, selector, "rsa", pem.buf, pem.len,
	                       mw_str_c(&pub),
	                       activate ? MW_DKIM_SAVE_ACTIVE : MW_DKIM_SAVE_INACTIVE, &err);
	if (ret == MW_STORE_EXISTS) {
		api_error(res, 409, "exists", "%s already has a key with selector %s", domain,
		          selector);
		goto out;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "adding a DKIM key", &err);
		goto out;
	}
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_DKIM_GENERATE), target,
	          json_pack("{s:s,s:i,s:b}", "type", "rsa", "bits", (int)bits, "active", activate));
	key_answer(ctx, res, domain, selector, 201);
out:
	mw_secret_key_wipe(&mk);
	if (pem.buf != NULL)
		mw_memzero(pem.buf, pem.cap);
	mw_str_free(&pem);
	mw_str_free(&pub);
}

/* api_dkim_activate - POST /dkim/keys/{domain}/{selector}/activate */
void api_dkim_activate(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char domain[MW_DKIM_DOMAIN_MAX + 1], selector[MW_DKIM_SELECTOR_MAX + 1];
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 2];
	static const char *const fields[] = {NULL};
	mw_error err = {{0}};
	int ret;
	if (api_fields_check(req, res, fields) < 0 ||
	    names(res, 404, req->params[0], req->params[1], domain, selector) < 0)
		return;
	ret = mw_store_dkim_key_set_active(ctx->store, domain, selector, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such DKIM key");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "activating a DKIM key", &err);
		return;
	}
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_DKIM_ACTIVATE), target, NULL);
	key_answer(ctx, res, domain, selector, 200);
}

/* api_dkim_delete - DELETE /dkim/keys/{domain}/{selector} (not the active key) */
void api_dkim_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char domain[MW_DKIM_DOMAIN_MAX + 1], selector[MW_DKIM_SELECTOR_MAX + 1];
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 2];
	struct mw_dkim_key_row row;
	mw_error err = {{0}};
	int ret;
	if (names(res, 404, req->params[0], req->params[1], domain, selector) < 0)
		return;
	memset(&row, 0, sizeof(row));
	ret = mw_store_dkim_key_get(ctx->store, domain, selector, &row, &err);
	if (ret == MW_STORE_OK && row.active) {
		mw_dkim_key_row_clear(&row);
		api_error(res, 409, "active_key",
		          "%s is the active key of %s: activate another key first", selector,
		          domain);
		return;
	}
	if (ret == MW_STORE_OK) {
		mw_dkim_key_row_clear(&row);
		ret = mw_store_dkim_key_delete(ctx->store, domain, selector, &err);
	}
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such DKIM key");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "deleting a DKIM key", &err);
		return;
	}
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_DKIM_DELETE), target, NULL);
	api_ok(res, 204, NULL);
}

/* api_dkim_rotate - POST /dkim/rotate {domain} or {due: true}, bits? */
void api_dkim_rotate(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"domain", "due", "bits", NULL};
	json_t *bits_v = json_object_get(req->json, "bits");
	json_t *due_v = json_object_get(req->json, "due");
	char domain[MW_DKIM_DOMAIN_MAX + 1];
	const char *dom_in = NULL;
	mw_error err = {{0}};
	unsigned bits = 0;
	json_t *events;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "domain", false, MW_DKIM_DOMAIN_MAX * 4, &dom_in) < 0)
		return;
	if (due_v != NULL && !json_is_boolean(due_v)) {
		api_error(res, 422, "invalid_field", "field due must be true or false");
		return;
	}
	if ((dom_in == NULL) == !json_is_true(due_v)) {
		api_error(res, 422, "invalid_field", "give either domain or due: true");
		return;
	}
	if (field_bits(res, bits_v, &bits) < 0)
		return;
	if (dom_in != NULL && names(res, 422, dom_in, NULL, domain, NULL) < 0)
		return;
	events = json_array();
	if (mw_dkim_rotate_run(ctx->cfg, ctx->store, dom_in != NULL ? domain : NULL, bits,
	                       req->actor, req->remote_addr != NULL ? req->remote_addr : "", events,
	                       &err) < 0 &&
	    dom_in != NULL) {
		json_decref(events);
		api_store_error(res, "rotating DKIM keys", &err);
		return;
	}
	api_ok(res, 200, json_pack("{s:o}", "events", events));
}
