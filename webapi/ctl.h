/* ctl.h - what mailwardenctl's command files share: the context, the command table entry,
   exit codes, option parsing and the small helpers. One file per command group
   (ctl-users.c, ctl-config.c, ...) exports a table of commands; mailwardenctl.c
   dispatches over the tables. */
#ifndef MW_CTL_H
#define MW_CTL_H

#include "mw-config.h"
#include "mw-pdctl.h"
#include "mw-store.h"

#include <jansson.h>
#include <stdio.h>

enum mw_ctl_exit {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_NOTFOUND = 3,
	EXIT_EXISTS = 4,
};

struct mw_ctl {
	const char *config_path;
	bool config_explicit;
	mw_config *cfg;
	mw_store *store;
	char actor[96];
	const char *api_url;    /* --api URL: commands go to mailwarden-api (ctl-api.c) */
	const char *token_file; /* --token-file FILE (else MAILWARDEN_TOKEN) */
};

struct mw_ctl_command {
	const char *group; /* "user", "allow-from", "config", ... or "" for top level */
	const char *name;
	int (*fn)(struct mw_ctl *ctl, int argc, char **argv);
	bool needs_store;
	const char *usage;
	const char *help;
};


/* One group's commands; mailwardenctl.c lists every table. */
struct mw_ctl_table {
	const struct mw_ctl_command *commands;
	size_t count;
};

enum ctl_pw_source { PW_TTY, PW_STDIN, PW_GENERATE };

enum {
	OPT_HELP = 'h',
	OPT_JSON = 1000,
	OPT_ROLE,
	OPT_STATUS,
	OPT_DESCRIPTION,
	OPT_PASSWORD_STDIN,
	OPT_GENERATE,
	OPT_YES,
	OPT_ORIGIN,
	OPT_SHOW_SECRETS,
	OPT_MARKDOWN,
	OPT_LIMIT,
	OPT_AFTER,
};

struct ctl_opts {
	bool json, yes, origin, show_secrets, markdown, help;
	const char *role, *status, *description;
	enum ctl_pw_source pw;
	bool pw_set;
	long long limit, after;
};

/* The command being run (for messages). */
extern const struct mw_ctl_command *ctl_current;

void ctl_err(const char *fmt, ...) MW_PRINTF(1, 2);
int ctl_store_exit(int status, const mw_error *err, const char *what);
int ctl_audit(struct mw_ctl *ctl, const char *action, const char *target, const char *details);
int ctl_username(const char *in, char *out, size_t outsize);
const char *ctl_time(int64_t t, char *buf, size_t size);
int ctl_get_password(struct mw_ctl *ctl, enum ctl_pw_source src, char *buf, size_t size);
int ctl_hash_password(struct mw_ctl *ctl, const char *password, char *hash, size_t size);
int ctl_parse_opts(const struct mw_ctl_command *cmd, int argc, char **argv, const int *allowed,
		   struct ctl_opts *o, int *first_arg_r);
int ctl_want_args(const struct mw_ctl_command *cmd, int n, int min, int max);
/* The command takes exactly one USER argument at argv[first]: check and normalise it. */
int ctl_one_user(int argc, char **argv, int first, char *username, size_t size);
void ctl_json_print(json_t *v);

struct mw_tag_rule;
struct mw_rate_policy;
/* dkim DOMAIN [SELECTOR] names and dkim generate's arguments (ctl-dkim.c). */
int ctl_dkim_names(const char *dom_in, const char *sel_in, char *domain, size_t dsize,
                   char *selector, size_t ssize);
int ctl_dkim_parse_generate(int argc, char **argv, char *domain, size_t dsize, char *selector,
                            size_t ssize, unsigned *bits_r);
/* ratelimit policy add's "SCOPE[=MATCH] METRIC COUNT/WINDOW ACTION" (ctl-ratelimit.c). */
int ctl_rl_parse_policy(char **argv, struct mw_rate_policy *p);
/* A ratelimit status or reset reply as people read it, the same in both modes. */
void ctl_rl_print(const struct mw_pdctl_reply *reply, bool reset);
/* tag-rule add's arguments, shared by the store and --api modes (ctl-tagrules.c). */
int ctl_tagrule_parse_add(int argc, char **argv, char *username, size_t size,
                          struct mw_tag_rule *rule_r);

/* Parses the options listed (ids from the enum above, at least one: -1 for none); on
   --help prints the command's usage and returns EXIT_OK from the calling handler. */
#define CTL_OPTS(cmd, argc, argv, o, first, ...)                                          \
	do {                                                                                \
		static const int allowed_[] = { __VA_ARGS__, 0 };                           \
		int r_ = ctl_parse_opts(cmd, argc, argv, allowed_, o, first);               \
		if (r_ != EXIT_OK)                                                          \
			return r_ < 0 ? EXIT_OK : r_;                                       \
	} while (0)


extern const struct mw_ctl_table ctl_users_table, ctl_config_table;
extern const struct mw_ctl_table ctl_tagrules_table; /* ctl-tagrules.c (issue 6) */
extern const struct mw_ctl_table ctl_dkim_table;     /* ctl-dkim.c (issue 3) */
extern const struct mw_ctl_table ctl_spam_table;     /* ctl-spam.c (issue 10) */
extern const struct mw_ctl_table ctl_ratelimit_table; /* ctl-ratelimit.c (issue 4) */
/* ctl-api.c: run a command against ctl->api_url (refused, exit 2, when it has no route) */
int ctl_api_run(struct mw_ctl *ctl, const struct mw_ctl_command *cmd, int argc, char **argv);

#endif
