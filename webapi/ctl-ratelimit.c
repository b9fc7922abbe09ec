/*
 * ctl-ratelimit.c - mailwardenctl ratelimit status|reset (through mailwarden-policyd's control
 * socket) and ratelimit policy add|list|del (the store's rate_policies).
 *
 * status and reset ask [policyd] control_socket through the one client of its record format
 * (lib/mw-pdctl.c) and print the reply as people read it (ctl_rl_print, shared with --api
 * mode): exit 0, or 1 with the daemon's reason. The daemon answers only root and its own
 * user.
 * policy add/del are written to the audit log as actor "cli:LOGIN".
 * Diagnostics: "policyd control socket PATH: REASON" when the daemon cannot be reached.
 */
#include "mw-build.h"
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define RL_TIMEOUT_MS 10000

/* rl_ask - one request to mailwarden-policyd's control socket (the one client,
   lib/mw-pdctl.c) and the answer as people read it; exit code */
static int rl_ask(struct mw_ctl *ctl, enum mw_pdctl_command command, const char *subject)
{
	struct mw_pdctl_request req;
	struct mw_pdctl_reply *reply;
	mw_error err;
	size_t i;
	int ret = EXIT_ERROR;
	for (i = 0; subject[i] != '\0'; i++)
		if ((unsigned char)subject[i] <= 0x20 || subject[i] == 0x7f) {
			ctl_err("%s: not a user name or IP address", subject);
			return EXIT_USAGE;
		}
	memset(&req, 0, sizeof(req));
	req.command = command;
	if (mw_strlcpy(req.subject, subject, sizeof(req.subject)) < 0) {
		ctl_err("%s: not a user name or IP address", subject);
		return EXIT_USAGE;
	}
	reply = mw_calloc(1, sizeof(*reply));
	if (mw_pdctl_call(mw_config_str(ctl->cfg, MWK_PD_CONTROL_SOCKET), &req, RL_TIMEOUT_MS,
	                  reply, &err) < 0) {
		ctl_err("policyd %s", err.msg);
	} else if (!reply->ok) {
		ctl_err("policyd: %s", reply->error);
	} else {
		ctl_rl_print(reply, command == MW_PDCTL_RESET);
		ret = EXIT_OK;
	}
	free(reply);
	return ret;
}

/* ctl_rl_print - a status or reset reply as people read it (the same in both modes) */
void ctl_rl_print(const struct mw_pdctl_reply *reply, bool reset)
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

/* cmd_rl_status - usage of every limit of a user or client address */
static int cmd_rl_status(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	int first;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	return rl_ask(ctl, MW_PDCTL_STATUS, argv[first]);
}

/* cmd_rl_reset - clear the counters of a user or client address */
static int cmd_rl_reset(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	int first, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	ret = rl_ask(ctl, MW_PDCTL_RESET, argv[first]);
	return ret;
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
static int cmd_rl_policy(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = {""};
	int first, n, ret;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	n = argc - first;
	if (n >= 1 && strcmp(argv[first], "list") == 0 && n == 1) {
		struct mw_rate_policy *v = NULL;
		size_t count = 0, i;
		json_t *arr = o.json ? json_array() : NULL;
		ret = mw_store_rate_policy_list(ctl->store, &v, &count, &err);
		if (ret != MW_STORE_OK)
			return ctl_store_exit(ret, &err, "listing rate policies");
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
		char details[128];
		int64_t id = 0;
		if (ctl_rl_parse_policy(argv + first + 1, &p) < 0)
			return EXIT_USAGE;
		if (n == 6 && ctl_username(argv[first + 5], p.username, sizeof(p.username)) != 0)
			return EXIT_USAGE;
		ret = mw_store_rate_policy_add(ctl->store, &p, &id, &err);
		if (ret != MW_STORE_OK)
			return ctl_store_exit(ret, &err, "adding a rate policy");
		(void)snprintf(details, sizeof(details), "{\"id\":%" PRId64 "}", id);
		if (ctl_audit(ctl, "ratelimit.policy.add", p.username, details) != EXIT_OK)
			return EXIT_ERROR;
		printf("%" PRId64 "\n", id);
		return EXIT_OK;
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
		ret = mw_store_rate_policy_del(ctl->store, id, &err);
		if (ret != MW_STORE_OK)
			return ctl_store_exit(ret, &err, "deleting a rate policy");
		return ctl_audit(ctl, "ratelimit.policy.del", argv[first + 1], NULL);
	}
	(void)ctl_want_args(ctl_current, -1, 0, 0);
	return EXIT_USAGE;
}

static const struct mw_ctl_command ratelimit_commands[] = {
    {"ratelimit", "status", cmd_rl_status, false, "ratelimit status USER|IP",
     "Show the usage of every rate limit of USER (sasl_username) or of IP's network\n"
     "(client_address), and when each resets, as mailwarden-policyd counts them."},
    {"ratelimit", "reset", cmd_rl_reset, false, "ratelimit reset USER|IP",
     "Clear every rate-limit counter of USER or of IP's network."},
    {"ratelimit", "policy", cmd_rl_policy, true,
     "ratelimit policy add SCOPE[=MATCH] METRIC COUNT/WINDOW defer|reject [USER] | "
     "list [--json] | del ID",
     "Manage the store's rate_policies (read by mailwarden-policyd every store_refresh\n"
     "and on SIGHUP). SCOPE: sasl_username client_address sender sender_domain recipient\n"
     "recipient_domain; METRIC: messages recipients size; with USER the policy replaces\n"
     "the general limits of the same scope and metric for that user only."},
};

const struct mw_ctl_table ctl_ratelimit_table = {ratelimit_commands,
                                                 MW_N_ELEMENTS(ratelimit_commands)};
