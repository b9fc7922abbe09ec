/* api-tagrules.c - mailwarden-api: a user's tag rules (the Dovecot plugin applies them).
 *
 * A user manages their own rules (role self: that user or an admin): list them in the order
 * they are applied, add one (it goes last), delete one by id. Each part of a new rule is
 * checked with lib/mw-tagrule.h before anything is stored; a bad part is a 422 naming the
 * field. Additions and deletions are audited (tag_rule.add, tag_rule.del; target the user).
 *
 * Public: api_tag_rule_list, api_tag_rule_create, api_tag_rule_delete.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-audit.h"
#include "mw-log.h"
#include "mw-tagrule.h"

#include <stdlib.h>
#include <string.h>

/* rule_json - the public view of a rule */
static json_t *rule_json(const struct mw_tag_rule *r)
{
	return json_pack("{s:I,s:I,s:s?,s:s,s:s?,s:s?,s:s?,s:b}", "id", (json_int_t)r->id,
	                 "position", (json_int_t)r->position, "field", r->field, "match",
	                 mw_tagrule_match_name(r->match), "value", r->value, "keyword", r->keyword,
	                 "mailbox", r->mailbox, "enabled", r->enabled);
}

/* tr_target - the route's user, normalised (404 when it can name no user) */
static int tr_target(struct api_request *req, struct api_response *res, char *name)
{
	if (mw_store_username_normalize(req->params[0], name, MW_USERNAME_MAX + 1, NULL) < 0) {
		api_error(res, 404, "not_found", "no such user");
		return -1;
	}
	return 0;
}

/* rules_answer - answer status with the user's valid rules (and the one with want_id
   alone when want_id > 0) */
static void rules_answer(struct api_ctx *ctx, struct api_response *res, const char *name,
                         int status, int64_t want_id)
{
	struct mw_tag_rule *rules = NULL;
	size_t n = 0, i;
	mw_error err = {{0}};
	json_t *arr;
	int ret = mw_store_tag_rule_list(ctx->store, name, &rules, &n, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "listing tag rules", &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++) {
		if (want_id > 0 && rules[i].id == want_id) {
			json_decref(arr);
			api_ok(res, status, rule_json(&rules[i]));
			mw_tag_rules_free(rules, n);
			return;
		}
		if (mw_tagrule_check(&rules[i], NULL) == 0)
			json_array_append_new(arr, rule_json(&rules[i]));
	}
	mw_tag_rules_free(rules, n);
	if (want_id > 0) {
		json_decref(arr);
		api_error(res, 404, "not_found", "no such tag rule");
		return;
	}
	api_ok(res, status, json_pack("{s:s,s:o}", "username", name, "rules", arr));
}

/* api_tag_rule_list - GET /users/{username}/tag-rules */
void api_tag_rule_list(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {NULL};
	char name[MW_USERNAME_MAX + 1];
	if (api_query_check(req, res, params) < 0 || tr_target(req, res, name) < 0)
		return;
	rules_answer(ctx, res, name, 200, 0);
}

/* part_check - a 422 naming field when check refuses value */
static int part_check(struct api_response *res, const char *field, int rc, const mw_error *err)
{
	if (rc == 0)
		return 0;
	api_error(res, 422, "invalid_field", "field %s: %s", field, err->msg);
	return -1;
}

/* api_tag_rule_create - POST /users/{username}/tag-rules {field, match, value, keyword?,
   mailbox?, enabled?} */
void api_tag_rule_create(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"field",   "match",   "value", "keyword",
	                                     "mailbox", "enabled", NULL};
	char name[MW_USERNAME_MAX + 1];
	const char *match;
	struct mw_tag_rule rule;
	json_t *enabled = json_object_get(req->json, "enabled");
	mw_error err = {{0}};
	int64_t id = 0;
	int ret;
	memset(&rule, 0, sizeof(rule));
	rule.enabled = true;
	if (api_fields_check(req, res, fields) < 0 ||
	    api_field_string(req, res, "field", true, MW_TAGRULE_FIELD_MAX * 4,
	                     (const char **)&rule.field) < 0 ||
	    api_field_string(req, res, "match", true, 32, &match) < 0 ||
	    api_field_string(req, res, "value", true, MW_TAGRULE_VALUE_MAX * 4,
	                     (const char **)&rule.value) < 0 ||
	    api_field_string(req, res, "keyword", false, MW_TAGRULE_KEYWORD_MAX * 4,
	                     (const char **)&rule.keyword) < 0 ||
	    api_field_string(req, res, "mailbox", false, MW_TAGRULE_MAILBOX_MAX * 4,
	                     (const char **)&rule.mailbox) < 0)
		return;
	if (enabled != NULL) {
		if (!json_is_boolean(enabled)) {
			api_error(res, 422, "invalid_field", "field enabled must be true or false");
			return;
		}
		rule.enabled = json_is_true(enabled);
	}
	if (mw_tagrule_match_parse(match, &rule.match) < 0) {
		api_error(res, 422, "invalid_field",
		          "field match must be exact, substring, glob or domain");
		return;
	}
	if (part_check(res, "field", mw_tagrule_check_field(rule.field, &err), &err) < 0 ||
	    part_check(res, "value", mw_tagrule_check_value(rule.match, rule.value, &err), &err) <
	        0 ||
	    (rule.keyword != NULL &&
	     part_check(res, "keyword", mw_tagrule_check_keyword(rule.keyword, &err), &err) < 0) ||
	    (rule.mailbox != NULL &&
	     part_check(res, "mailbox", mw_tagrule_check_mailbox(rule.mailbox, &err), &err) < 0))
		return;
	if (rule.keyword == NULL && rule.mailbox == NULL) {
		api_error(res, 422, "missing_field", "give keyword or mailbox (or both)");
		return;
	}
	if (mw_tagrule_check(&rule, &err) < 0) {
		api_error(res, 422, "invalid_field", "%s", err.msg);
		return;
	}
	if (tr_target(req, res, name) < 0)
		return;
	ret = mw_store_tag_rule_add(ctx->store, name, &rule, &id, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such user");
		return;
	}
	if (ret == MW_STORE_ERROR && strstr(err.msg, "the most allowed") != NULL) {
		api_error(res, 409, "too_many", "%s", err.msg);
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "adding a tag rule", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_TAG_RULE_ADD), name,
	          json_pack("{s:I,s:s,s:s,s:s,s:s?,s:s?,s:b}", "id", (json_int_t)id, "field",
	                    rule.field, "match", mw_tagrule_match_name(rule.match), "value",
	                    rule.value, "keyword", rule.keyword, "mailbox", rule.mailbox, "enabled",
	                    rule.enabled));
	rules_answer(ctx, res, name, 201, id);
}

/* api_tag_rule_delete - DELETE /users/{username}/tag-rules/{id} */
void api_tag_rule_delete(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char name[MW_USERNAME_MAX + 1];
	long long id;
	mw_error err = {{0}};
	int ret;
	if (tr_target(req, res, name) < 0)
		return;
	if (!api_path_id(req->params[1], &id)) {
		api_error(res, 404, "not_found", "no such tag rule");
		return;
	}
	ret = mw_store_tag_rule_del(ctx->store, name, id, &err);
	if (ret == MW_STORE_NOTFOUND) {
		api_error(res, 404, "not_found", "no such tag rule");
		return;
	}
	if (ret != MW_STORE_OK) {
		api_store_error(res, "deleting a tag rule", &err);
		return;
	}
	api_audit(ctx, req, mw_audit_name(MW_AUDIT_TAG_RULE_DELETE), name,
	          json_pack("{s:I}", "id", (json_int_t)id));
	api_ok(res, 204, NULL);
}
