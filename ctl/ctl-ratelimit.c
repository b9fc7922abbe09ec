/*
 * ctl-ratelimit.c - mailwardenctl ratelimit status|reset (through mailwarden-policyd's control
 * socket) and ratelimit policy add|list|del (the store's rate_policies).
 *
 * status and reset ask through ctl->ops: locally [policyd] control_socket (the one client of
 * its record format, lib/mw-pdctl.c), with --api the API; the reply is printed here as people
 * read it: exit 0, or 1 with the daemon's reason. policy add|list|del: the store's
 * rate_policies, locally or through the API.
 * Diagnostics: "policyd control socket PATH: REASON" when the daemon cannot be reached.
 */
#include "mw-build.h"
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* rl_print - a status or reset reply as people read it (the same in both modes) */
static void rl_print(const struct mw_pdctl_reply *reply, bool reset)
{
	size_t i;
	if (reset) {
		printf("cleared %" PRId64 " counters of %s\n", reply->cleared, reply->subject);
		return;
	}
	for (i = 0; i < reply->nlimits; i++) {
		char line[2 * MW_PDCTL_TEXT_MAX + 128];
		mw_pdctl_format_limit(&reply->limits[i], line, sizeof(line));
		printf("%s\n", line);
	}
	if (reply->nlimits == 0)
		printf("no rate limit applies to %s\n", reply->subject);
}

/* rl_ask - ratelimit status|reset SUBJECT */
static int rl_ask(struct mw_ctl *ctl, int argc, char **argv, bool reset)
{
	struct mw_pdctl_reply *reply;
	struct ctl_opts o;
	int first, ret;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 1, 1, -1);
	reply = mw_calloc(1, sizeof(*reply));
	ret = ctl->ops->rl_ask(ctl, argv[first], reset, reply);
	if (ret == EXIT_OK)
		rl_print(reply, reset);
	free(reply);
	return ret;
}

/* cmd_rl_status - usage of every limit of a user or client address */
int cmd_rl_status(struct mw_ctl *ctl, int argc, char **argv)
{
	return rl_ask(ctl, argc, argv, false);
}

/* cmd_rl_reset - clear the counters of a user or client address */
int cmd_rl_reset(struct mw_ctl *ctl, int argc, char **argv)
{
	return rl_ask(ctl, argc, argv, true);
}

/* ctl_rl_parse_policy - "SCOPE[=MATCH] METRIC COUNT/WINDOW ACTION" (argv[0..3]) into a
   rate policy; shared by the store and --api modes */
int ctl_rl_parse_policy(char **argv, struct mw_rate_policy *p)
{
	const char *eq = strchr(argv[0], '='), *slash = strchr(argv[2], '/');
	char *end;
	long long secs;
	mw_error err;
	size_t n = eq != NULL ? (size_t)(eq - argv[0]) : strlen(argv[0]);
	memset(p, 0, sizeof(*p));
	if (n >= sizeof(p->scope) ||
	    (eq != NULL && mw_strlcpy(p->match, eq + 1, sizeof(p->match)) < 0)) {
		ctl_err("bad scope or match: %s", argv[0]);
		return -1;
	}
	memcpy(p->scope, argv[0], n);
	if (mw_strlcpy(p->metric, argv[1], sizeof(p->metric)) < 0 ||
	    mw_strlcpy(p->action, argv[3], sizeof(p->action)) < 0) {
		ctl_err("bad metric or action");
		return -1;
	}
	if (slash == NULL || slash == argv[2]) {
		ctl_err("expected COUNT/WINDOW, e.g. 100/1h: %s", argv[2]);
		return -1;
	}
	errno = 0;
	p->limit_count = strtoll(argv[2], &end, 10);
	if (errno != 0 || end != slash || p->limit_count < 1) {
		ctl_err("COUNT must be a whole number >= 1: %s", argv[2]);
		return -1;
	}
	if (mw_config_parse_duration(slash + 1, &secs, &err) < 0) {
		ctl_err("WINDOW %s: %s", slash + 1, err.msg);
		return -1;
	}
	p->window_seconds = secs;
	if (mw_rate_limit_check(p->limit_count, p->window_seconds, false, &err) < 0) {
		ctl_err("%s: %s", argv[2], err.msg);
		return -1;
	}
	return 0;
}

/* cmd_rl_policy - ratelimit policy add|list|del */
int cmd_rl_policy(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	int first, n, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	n = argc - first;
	if (n == 1 && strcmp(argv[first], "list") == 0) {
		struct mw_rate_policy *v = NULL;
		size_t count = 0, i;
		json_t *arr = o.json ? json_array() : NULL;
		ret = ctl->ops->rl_policy_list(ctl, &v, &count);
		if (ret != EXIT_OK) {
			json_decref(arr);
			return ret;
		}
		for (i = 0; i < count; i++) {
			const struct mw_rate_policy *p = &v[i];
			if (arr != NULL) {
				json_array_append_new(
				    arr, json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s,s:s}", "id",
				                   (json_int_t)p->id, "scope", p->scope, "match",
				                   p->match, "metric", p->metric, "count",
				                   (json_int_t)p->limit_count, "window_seconds",
				                   (json_int_t)p->window_seconds, "action",
				                   p->action, "user", p->username));
				continue;
			}
			printf("%" PRId64 "\t%s%s%s %s %" PRId64 "/%" PRId64 "s %s\t%s\n", p->id,
			       p->scope, p->match[0] != '\0' ? "=" : "", p->match, p->metric,
			       p->limit_count, p->window_seconds, p->action,
			       p->username[0] != '\0' ? p->username : "(everyone)");
		}
		if (arr != NULL)
			ctl_json_print(arr);
		free(v);
		return EXIT_OK;
	}
	if (n >= 5 && n <= 6 && strcmp(argv[first], "add") == 0) {
		struct mw_rate_policy p;
		int64_t id = 0;
		if (ctl_rl_parse_policy(argv + first + 1, &p) < 0)
			return EXIT_USAGE;
		if (n == 6 && ctl_username(argv[first + 5], p.username, sizeof(p.username)) != 0)
			return EXIT_USAGE;
		ret = ctl->ops->rl_policy_add(ctl, &p, &id);
		if (ret == EXIT_OK)
			printf("%" PRId64 "\n", id);
		return ret;
	}
	if (n == 2 && strcmp(argv[first], "del") == 0) {
		char *end;
		long long id;
		errno = 0;
		id = strtoll(argv[first + 1], &end, 10);
		if (errno != 0 || *end != '\0' || id <= 0) {
			ctl_err("expected a policy id: %s", argv[first + 1]);
			return EXIT_USAGE;
		}
		return ctl->ops->rl_policy_del(ctl, (int64_t)id);
	}
	(void)ctl_want_args(ctl_current, -1, 0, 0);
	return EXIT_USAGE;
}
