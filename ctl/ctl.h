/* ctl.h - what mailwardenctl's files share: the context, the one command table's entry, the
   operations interface, exit codes, option parsing and the small helpers.

   Shape (after Dovecot's doveadm): every command is one entry of ctl/ctl-commands.def and
   one handler (ctl-users.c, ctl-tagrules.c, ctl-dkim.c, ...) that parses its arguments and
   prints its result once. What it reads or changes goes through ctl->ops, which has two
   implementations: ctl-local.c (the store, mailwarden-policyd's control socket; audit as
   "cli:LOGIN") and ctl-remote.c (mailwarden-api over HTTP(S) or a unix socket, libcurl; the
   API audits as "api:USER"). An operation prints its own failure, in the same words in both
   implementations, and returns the exit code. */
#ifndef MW_CTL_H
#define MW_CTL_H

#include "mw-audit.h"
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

struct ctl_ops;
struct ctl_remote;

struct mw_ctl {
	const char *config_path;
	bool config_explicit;
	mw_config *cfg;
	mw_store *store; /* local mode, for commands that need it */
	char actor[96];
	const char *api_url;       /* --api URL: commands go to mailwarden-api (ctl-remote.c) */
	const char *token_file;    /* --token-file FILE (else MAILWARDEN_TOKEN) */
	const char *cacert;        /* --cacert FILE for https */
	const struct ctl_ops *ops; /* ctl_local_ops or ctl_remote_ops */
	struct ctl_remote *remote; /* --api: the target and token */
};

/* Where a command runs (the flags of its table entry). */
enum ctl_mode {
	CTL_LOCAL = 1 << 0,   /* without --api */
	CTL_API = 1 << 1,     /* with --api (the API has routes for it) */
	CTL_STORE = 1 << 2,   /* local mode opens the store first */
	CTL_NOCONFIG = 1 << 3 /* the configuration is not loaded first (config check) */
};

struct mw_ctl_command {
	const char *group; /* "user", "allow-from", "config", ... or "" for top level */
	const char *name;
	int (*fn)(struct mw_ctl *ctl, int argc, char **argv);
	unsigned modes; /* enum ctl_mode */
	const char *usage;
	const char *help;
};

/* THE command table (ctl/ctl-commands.def, built in mailwardenctl.c). */
extern const struct mw_ctl_command ctl_commands[];
extern const size_t ctl_commands_count;

/* Every handler, declared from the table. */
#define CTL_COMMAND(group, name, fn, modes, usage, help)                                           \
	int fn(struct mw_ctl *ctl, int argc, char **argv);
#include "ctl-commands.def"
#undef CTL_COMMAND

/* ---- the operations interface ------------------------------------------------------------ */

/* A user as both implementations report it. */
struct ctl_user {
	int64_t id; /* -1: not reported (the API shows no row ids) */
	char username[MW_USERNAME_MAX + 1];
	enum mw_user_status status;
	enum mw_user_role role;
	char description[MW_DESCRIPTION_MAX + 1];
	int64_t created_at, updated_at, password_changed_at, locked_until;
	int failed_logins;
	int totp; /* 1 on, 0 off, -1 not reported */
};

struct mw_tag_rule;
struct mw_rate_policy;
struct mw_dkim_key_row;
struct mw_pdctl_reply;
struct mw_dmarc_filter;

/* Each returns an exit code (EXIT_OK, ...) after printing the failure's message. */
struct ctl_ops {
	const char *name; /* "local" or "api" */
	/* users; password NULL: generated (into generated, size gsize) */
	int (*user_add)(struct mw_ctl *ctl, const char *username, const char *password,
	                enum mw_user_role role, enum mw_user_status status, const char *description,
	                char *generated, size_t gsize);
	int (*user_exists)(struct mw_ctl *ctl, const char *username);
	int (*user_passwd)(struct mw_ctl *ctl, const char *username, const char *password,
	                   char *generated, size_t gsize, unsigned *sessions_r, unsigned *apppws_r);
	int (*user_set_status)(struct mw_ctl *ctl, const char *username,
	                       enum mw_user_status status);
	int (*user_delete)(struct mw_ctl *ctl, const char *username);
	int (*user_get)(struct mw_ctl *ctl, const char *username, struct ctl_user *u,
	                char ***patterns_r, size_t *n_r);
	/* each user in id order (role, status: -1 any; limit 0: all) */
	int (*user_list)(struct mw_ctl *ctl, int role, int status, long long after, long long limit,
	                 int (*each)(const struct ctl_user *u, void *arg), void *arg);
	/* allowed-From: canon is normalised; the message names the user or the pattern */
	int (*allowed_from_change)(struct mw_ctl *ctl, const char *username, const char *canon,
	                           bool add);
	int (*allowed_from_list)(struct mw_ctl *ctl, const char *username, char ***patterns_r,
	                         size_t *n_r);
	/* tag rules (rules_r freed with mw_tag_rules_free) */
	int (*tag_rule_add)(struct mw_ctl *ctl, const char *username,
	                    const struct mw_tag_rule *rule, int64_t *id_r);
	int (*tag_rule_list)(struct mw_ctl *ctl, const char *username, struct mw_tag_rule **rules_r,
	                     size_t *n_r);
	int (*tag_rule_del)(struct mw_ctl *ctl, const char *username, int64_t id);
	/* DKIM keys (rows freed with mw_dkim_key_rows_free; private_key is never filled) */
	int (*dkim_generate)(struct mw_ctl *ctl, const char *domain, const char *selector,
	                     unsigned bits, struct mw_dkim_key_row *key_r);
	int (*dkim_list)(struct mw_ctl *ctl, const char *domain, struct mw_dkim_key_row **rows_r,
	                 size_t *n_r);
	int (*dkim_activate)(struct mw_ctl *ctl, const char *domain, const char *selector);
	int (*dkim_delete)(struct mw_ctl *ctl, const char *domain, const char *selector);
	/* one rotation run (lib/mw-dkim-rotate.h): domain NULL = --due; *events_r: the JSON
	   array of events, owned by the caller */
	int (*dkim_rotate)(struct mw_ctl *ctl, const char *domain, unsigned bits,
	                   json_t **events_r);
	/* rate limits: status or reset of SUBJECT (a user, or locally also an IP) */
	int (*rl_ask)(struct mw_ctl *ctl, const char *subject, bool reset,
	              struct mw_pdctl_reply *reply);
	int (*rl_policy_add)(struct mw_ctl *ctl, const struct mw_rate_policy *p, int64_t *id_r);
	int (*rl_policy_list)(struct mw_ctl *ctl, struct mw_rate_policy **v_r, size_t *n_r);
	int (*rl_policy_del)(struct mw_ctl *ctl, int64_t id);
	/* the records DOMAIN (normalised) publishes, checked through DNS when check (JSON object
	   of lib/mw-dnsrec.h's mw_dnsrec_json, owned by the caller) */
	int (*dns_records)(struct mw_ctl *ctl, const char *domain, bool check, json_t **set_r);
	/* the summary of the DMARC aggregate reports received (lib/mw-dmarc-report.h's
	   mw_dmarc_summary_json, owned by the caller) */
	int (*dmarc_summary)(struct mw_ctl *ctl, const struct mw_dmarc_filter *f,
	                     json_t **summary_r);
};

extern const struct ctl_ops ctl_local_ops;  /* ctl-local.c */
extern const struct ctl_ops ctl_remote_ops; /* ctl-remote.c */
/* ctl-remote.c: the --api target and token into ctl->remote; EXIT_OK or an exit code */
int ctl_remote_open(struct mw_ctl *ctl);
void ctl_remote_close(struct mw_ctl *ctl);

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
	OPT_FORCE,
	OPT_APPLY,
	OPT_POSTFIX_DIR,
	OPT_DOVECOT_DIR,
	OPT_DOVECOT_CONFIG,
	OPT_NGINX_DIR,
	OPT_EXAMPLES,
	OPT_USER,     /* learn, spam stats|expire: --user U */
	OPT_DRY_RUN,  /* spam expire, dmarc send-reports */
	OPT_SELECTOR, /* dkim generate */
	OPT_BITS,     /* dkim generate, dkim rotate */
	OPT_DUE,      /* dkim rotate */
	OPT_DATE,     /* dmarc send-reports */
	OPT_OUTPUT,   /* dmarc send-reports */
	OPT_FIELD,    /* tag-rule add: --field --match --value --keyword --mailbox --disabled */
	OPT_MATCH,
	OPT_VALUE,
	OPT_KEYWORD,
	OPT_MAILBOX,
	OPT_DISABLED,
	OPT_DELETE, /* dmarc import */
	OPT_DOMAIN, /* dmarc report: --domain --since --until */
	OPT_SINCE,
	OPT_UNTIL,
};

struct ctl_opts {
	bool json, yes, origin, show_secrets, markdown, help, force;
	const char *role, *status, *description;
	enum ctl_pw_source pw;
	bool pw_set;
	long long limit, after;
	bool apply;                                        /* setup --apply */
	const char *postfix_dir, *dovecot_dir, *nginx_dir; /* setup, doctor: config dirs */
	const char *dovecot_config, *examples;
	const char *user;            /* --user */
	bool dry_run;                /* --dry-run */
	const char *selector, *bits; /* dkim: --selector, --bits (checked by the command) */
	bool due;                    /* dkim rotate --due */
	const char *date, *output;   /* dmarc send-reports --date, --output */
	/* tag-rule add (pointing into argv, as struct mw_tag_rule's strings do) */
	char *field, *match, *value, *keyword, *mailbox;
	bool disabled;
	bool delete_done;                   /* dmarc import --delete */
	const char *domain, *since, *until; /* dmarc report */
	bool limit_given;                   /* --limit was given */
};

/* The command being run (for messages). */
extern const struct mw_ctl_command *ctl_current;

void ctl_err(const char *fmt, ...) MW_PRINTF(1, 2);
int ctl_store_exit(int status, const mw_error *err, const char *what);
/* local mode: append to the store's audit log (details: a JSON object or NULL, consumed) */
int ctl_audit(struct mw_ctl *ctl, enum mw_audit_action action, const char *target, json_t *details);
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

/* dkim DOMAIN [SELECTOR] names and dkim generate's arguments (ctl-dkim.c). */
int ctl_dkim_names(const char *dom_in, const char *sel_in, char *domain, size_t dsize,
                   char *selector, size_t ssize);
int ctl_dkim_parse_generate(int argc, char **argv, char *domain, size_t dsize, char *selector,
                            size_t ssize, unsigned *bits_r);
/* local mode: encrypt and store a DKIM key as the domain's active key, audit it (details
   consumed) and describe it in key_r (ctl-dkim.c) */
int ctl_dkim_store_key(struct mw_ctl *ctl, enum mw_audit_action action, const char *domain,
                       const char *selector, const mw_str *pem, json_t *details,
                       struct mw_dkim_key_row *key_r);
/* ratelimit policy add's "SCOPE[=MATCH] METRIC COUNT/WINDOW ACTION" (ctl-ratelimit.c). */
int ctl_rl_parse_policy(char **argv, struct mw_rate_policy *p);

/* Reading mail from paths (ctl-mailsrc.c: learn, dmarc import): a message file, an mbox, a
   maildir or a directory of message files. */
enum ctl_mail_trouble {
	CTL_MAIL_UNREADABLE, /* a path, file or directory that cannot be read (or deleted) */
	CTL_MAIL_BAD,        /* no message: an empty file, an mbox message over max */
};
struct ctl_mail_reader {
	size_t max;       /* the largest mbox message */
	bool delete_done; /* remove a message file once message() set *done_r (never an mbox) */
	void *ctx;
	/* One message of WHERE (NUMBER: its place in an mbox, 0 for a whole file); -1 stops the
	   walk (e.g. the store failed). */
	int (*message)(void *ctx, const char *msg, size_t len, const char *where,
	               unsigned long number, bool *done_r);
	/* What could not be read, or is no message: the caller counts and reports it. */
	void (*trouble)(void *ctx, enum ctl_mail_trouble kind, const char *where,
	                unsigned long number, const char *why);
};
/* Every message of PATH in turn; -1 when message() stopped the walk. */
int ctl_mail_read_path(const struct ctl_mail_reader *rd, const char *path);
/* A regular file mapped read-only (munmap it; NULL and 0 for an empty one); -1 with errno
   (EINVAL: not a regular file). */
int ctl_mail_map(const char *path, const char **data_r, size_t *len_r);

/* Parses the options listed (ids from the enum above, at least one: -1 for none); on
   --help prints the command's usage and returns EXIT_OK from the calling handler. */
#define CTL_OPTS(cmd, argc, argv, o, first, ...)                                                   \
	do {                                                                                       \
		static const int allowed_[] = {__VA_ARGS__, 0};                                    \
		int r_ = ctl_parse_opts(cmd, argc, argv, allowed_, o, first);                      \
		if (r_ != EXIT_OK)                                                                 \
			return r_ < 0 ? EXIT_OK : r_;                                              \
	} while (0)
/* CTL_OPTS, then from min to max positional arguments (max -1: any number), else the
   handler returns EXIT_USAGE (the message names the command and shows its usage). */
#define CTL_ARGS(cmd, argc, argv, o, first, min, max, ...)                                         \
	do {                                                                                       \
		CTL_OPTS(cmd, argc, argv, o, first, __VA_ARGS__);                                  \
		if (ctl_want_args(cmd, (argc) - *(first), min, max) != EXIT_OK)                    \
			return EXIT_USAGE;                                                         \
	} while (0)
/* CTL_OPTS for the current command, then exactly one USER argument, checked and normalised
   into the char array username (ctl_one_user), else the handler returns EXIT_USAGE. */
#define CTL_ONE_USER(argc, argv, o, username, ...)                                                 \
	do {                                                                                       \
		int first_;                                                                        \
		CTL_OPTS(ctl_current, argc, argv, o, &first_, __VA_ARGS__);                        \
		if (ctl_one_user(argc, argv, first_, username, sizeof(username)) != EXIT_OK)       \
			return EXIT_USAGE;                                                         \
	} while (0)

#endif
