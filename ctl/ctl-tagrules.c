/*
 * ctl-tagrules.c - mailwardenctl tag-rule (the store or the API, through ctl->ops) and
 * training commands (the store only).
 *
 * tag-rule add/list/del manage a user's tag rules, which the Dovecot plugin applies at
 * delivery (IMAP keywords, target mailbox). Every rule is checked (mw_tagrule_check: IMAP
 * atom keywords, header field names, domain values) before it is stored. training list
 * shows the spam/ham events the plugin recorded for the classifier.
 *
 * Public: the cmd_* handlers of ctl-commands.def.
 *
 * Diagnostics: "mailwardenctl: ..." on stderr; changes are audited as tag_rule.add/.del.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-tagrule.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* tagrule_parse_add - the arguments of tag-rule add: USER and a checked rule whose strings
   point into argv; EXIT_OK, an exit code, or -1 after --help */
static int tagrule_parse_add(int argc, char **argv, char *username, size_t size,
                             struct mw_tag_rule *rule_r)
{
	static const int allowed[] = {OPT_FIELD,   OPT_MATCH,    OPT_VALUE, OPT_KEYWORD,
	                              OPT_MAILBOX, OPT_DISABLED, 0};
	struct ctl_opts o;
	mw_error err = {""};
	int first, ret;

	memset(rule_r, 0, sizeof(*rule_r));
	ret = ctl_parse_opts(ctl_current, argc, argv, allowed, &o, &first);
	if (ret != EXIT_OK)
		return ret;
	rule_r->field = o.field;
	rule_r->value = o.value;
	rule_r->keyword = o.keyword;
	rule_r->mailbox = o.mailbox;
	rule_r->enabled = !o.disabled;
	if (ctl_one_user(argc, argv, first, username, size) != EXIT_OK)
		return EXIT_USAGE;
	if (rule_r->field == NULL || o.match == NULL || rule_r->value == NULL) {
		ctl_err("tag-rule add: --field, --match and --value are required");
		return EXIT_USAGE;
	}
	if (mw_tagrule_match_parse(o.match, &rule_r->match) < 0) {
		ctl_err("--match: expected exact, substring, glob or domain");
		return EXIT_USAGE;
	}
	if (mw_tagrule_check(rule_r, &err) < 0) {
		ctl_err("invalid tag rule: %s", err.msg);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* cmd_tag_rule_add - tag-rule add USER --field F --match M --value V [--keyword K] [--mailbox M] */
int cmd_tag_rule_add(struct mw_ctl *ctl, int argc, char **argv)
{
	struct mw_tag_rule rule;
	char username[MW_USERNAME_MAX + 1];
	int64_t id = 0;
	int ret;

	ret = tagrule_parse_add(argc, argv, username, sizeof(username), &rule);
	if (ret != EXIT_OK)
		return ret < 0 ? EXIT_OK : ret;
	ret = ctl->ops->tag_rule_add(ctl, username, &rule, &id);
	if (ret == EXIT_OK)
		printf("%lld\n", (long long)id);
	return ret;
}

/* cmd_tag_rule_list - a user's rules in the order they are applied */
int cmd_tag_rule_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	struct mw_tag_rule *rules = NULL;
	size_t n = 0, i;
	int ret;

	CTL_ONE_USER(argc, argv, &o, username, OPT_JSON);
	ret = ctl->ops->tag_rule_list(ctl, username, &rules, &n);
	if (ret != EXIT_OK)
		return ret;
	if (o.json) {
		json_t *arr = json_array();
		for (i = 0; i < n; i++) {
			const struct mw_tag_rule *r = &rules[i];
			const char *m = mw_tagrule_match_name(r->match);
			json_array_append_new(
			    arr,
			    json_pack("{s:I, s:I, s:s?, s:s?, s:s?, s:s?, s:s?, s:b, s:b}", "id",
			              (json_int_t)r->id, "position", (json_int_t)r->position,
			              "field", r->field, "match", m, "value", r->value, "keyword",
			              r->keyword, "mailbox", r->mailbox, "enabled", r->enabled,
			              "valid", mw_tagrule_check(r, NULL) == 0));
		}
		ctl_json_print(arr);
	} else {
		for (i = 0; i < n; i++) {
			const struct mw_tag_rule *r = &rules[i];
			const char *m = mw_tagrule_match_name(r->match);
			printf("%lld\t%s\t%s\t%s\tkeyword=%s\tmailbox=%s%s%s\n", (long long)r->id,
			       r->field != NULL ? r->field : "?", m != NULL ? m : "?",
			       r->value != NULL ? r->value : "?",
			       r->keyword != NULL ? r->keyword : "-",
			       r->mailbox != NULL ? r->mailbox : "-",
			       r->enabled ? "" : "\tdisabled",
			       mw_tagrule_check(r, NULL) == 0 ? "" : "\tINVALID (skipped)");
		}
	}
	mw_tag_rules_free(rules, n);
	return EXIT_OK;
}

/* cmd_tag_rule_del - delete one rule by id */
int cmd_tag_rule_del(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	long long id;
	char *end;
	int first;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 2, 2, -1);
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	errno = 0;
	id = strtoll(argv[first + 1], &end, 10);
	if (errno != 0 || *end != '\0' || end == argv[first + 1] || id <= 0) {
		ctl_err("tag-rule del: not a rule id: %s", argv[first + 1]);
		return EXIT_USAGE;
	}
	return ctl->ops->tag_rule_del(ctl, username, (int64_t)id);
}

/* cmd_training_list - the spam/ham events recorded by the Dovecot plugin */
int cmd_training_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = {""};
	struct mw_training_event *ev = NULL;
	char t1[32], t2[32];
	size_t n = 0, i;
	int first, ret;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_JSON, OPT_LIMIT, OPT_AFTER);
	if (o.limit > 1000000) {
		ctl_err("--limit: at most 1000000");
		return EXIT_USAGE;
	}
	ret = mw_store_training_list(ctl->store, o.after, (unsigned)o.limit, false, &ev, &n, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "training events");
	if (o.json) {
		json_t *arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(
			    arr,
			    json_pack("{s:I, s:s, s:s, s:s, s:I, s:o}", "id", (json_int_t)ev[i].id,
			              "user", ev[i].username, "message_id", ev[i].message_id,
			              "verdict", mw_training_verdict_name(ev[i].verdict),
			              "created_at", (json_int_t)ev[i].created_at, "consumed_at",
			              ev[i].consumed_at != 0 ? json_integer(ev[i].consumed_at)
			                                     : json_null()));
		ctl_json_print(arr);
	} else {
		for (i = 0; i < n; i++)
			printf("%lld\t%s\t%s\t%s\t%s\tconsumed=%s\n", (long long)ev[i].id,
			       ctl_time(ev[i].created_at, t1, sizeof(t1)), ev[i].username,
			       mw_training_verdict_name(ev[i].verdict),
			       ev[i].message_id[0] != '\0' ? ev[i].message_id : "-",
			       ctl_time(ev[i].consumed_at, t2, sizeof(t2)));
	}
	mw_training_events_free(ev, n);
	return EXIT_OK;
}
