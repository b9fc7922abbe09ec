/*
 * mailwardenctl - administer mailwarden: the store, users, allowed-From patterns, config.
 *
 * This first cut works on the store directly (it must run where the store is, with the
 * permissions to write it); a later --api mode talks to mailwarden-api instead.
 *
 * Commands are dispatched from one table (mw_ctl_commands); each handler parses its own
 * options and returns an exit code a shell script can rely on:
 *   0 done, 1 error (store, file, environment), 2 usage, 3 not found, 4 already exists.
 *
 * Passwords are never taken from argv: they come from the terminal (asked twice, echo
 * off), from one line of standard input (--password-stdin), or are generated
 * (--generate, printed once on standard output).
 *
 * Every change is appended to the store's audit log as actor "cli:LOGIN".
 */
#include "mw-build.h"
#include "mw-config.h"
#include "mw-log.h"
#include "mw-password.h"
#include "mw-pattern.h"
#include "mw-secret.h"
#include "mw-store.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

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
};

struct mw_ctl_command {
	const char *group; /* "user", "allow-from", "config" or NULL for top level */
	const char *name;
	int (*fn)(struct mw_ctl *ctl, int argc, char **argv);
	bool needs_store;
	const char *usage;
	const char *help;
};

static const char mw_ctl_help_tail[] =
	"\n"
	"GLOBAL OPTIONS\n"
	"  -c FILE      configuration file (default " MW_CONFIG_DEFAULT_PATH "; FILE's\n"
	"               directory's conf.d/*.conf is read after it, in name order)\n"
	"  -h, --help   this text;  mailwardenctl COMMAND --help describes one command\n"
	"  --version    print the version\n"
	"\n"
	"PASSWORDS\n"
	"  Never given on the command line. Without an option the password is asked twice\n"
	"  on the terminal; --password-stdin reads one line from standard input (for scripts);\n"
	"  --generate makes a random one and prints it once on standard output.\n"
	"\n"
	"EXIT STATUS\n"
	"  0 done, 1 error (store, file, environment), 2 usage error, 3 no such user or\n"
	"  pattern, 4 already exists.\n"
	"\n"
	"FILES\n"
	"  " MW_CONFIG_DEFAULT_PATH "  configuration (see `mailwardenctl config keys`)\n"
	"  the store (config key store) and master key file (config key master_key)\n";

/* ---- small helpers ------------------------------------------------------------------- */

/* ctl_err - print "mailwardenctl: MESSAGE" on stderr */
static void ctl_err(const char *fmt, ...) MW_PRINTF(1, 2);
static void ctl_err(const char *fmt, ...)
{
	va_list ap;
	fputs("mailwardenctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ctl_store_exit - map a store status to an exit code, printing the error */
static int ctl_store_exit(int status, const mw_error *err, const char *what)
{
	switch (status) {
	case MW_STORE_OK:
		return EXIT_OK;
	case MW_STORE_NOTFOUND:
		ctl_err("%s: not found", what);
		return EXIT_NOTFOUND;
	case MW_STORE_EXISTS:
		ctl_err("%s: already exists", what);
		return EXIT_EXISTS;
	default:
		ctl_err("%s: %s", what, err->msg);
		return EXIT_ERROR;
	}
}

/* ctl_audit - record a change; a failure to record is an error the caller reports */
static int ctl_audit(struct mw_ctl *ctl, const char *action, const char *target,
		     const char *details)
{
	mw_error err = { "" };
	if (mw_store_audit_append(ctl->store, ctl->actor, action, target, "local",
				  details != NULL ? details : "", &err) != MW_STORE_OK) {
		ctl_err("audit log: %s", err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* ctl_username - normalise a username argument */
static int ctl_username(const char *in, char *out, size_t outsize)
{
	mw_error err = { "" };
	if (mw_store_username_normalize(in, out, outsize, &err) < 0) {
		ctl_err("invalid username: %s", err.msg);
		return -1;
	}
	return 0;
}

/* ctl_time - format unix seconds as UTC ISO 8601 (or "-" for 0) */
static const char *ctl_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)mw_strlcpy(buf, "-", size);
	return buf;
}

/* ---- password input ------------------------------------------------------------------ */

/* ctl_read_line - one line from fp into buf without its line end; refuses over-long input */
static int ctl_read_line(FILE *fp, char *buf, size_t size)
{
	size_t len;
	if (fgets(buf, (int)size, fp) == NULL)
		return -1;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(fp))
		return -2; /* longer than the buffer: refused, not truncated */
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return 0;
}

/* ctl_tty_prompt - ask for a password on the terminal with echo off */
static int ctl_tty_prompt(FILE *tty, const char *prompt, char *buf, size_t size)
{
	struct termios old, quiet;
	int ret;
	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(fileno(tty), &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(fileno(tty), TCSAFLUSH, &quiet) < 0)
		return -1;
	ret = ctl_read_line(tty, buf, size);
	(void)tcsetattr(fileno(tty), TCSAFLUSH, &old);
	return ret;
}

enum ctl_pw_source { PW_TTY, PW_STDIN, PW_GENERATE };

/* ctl_get_password - obtain a new password from the chosen source and check the policy */
static int ctl_get_password(struct mw_ctl *ctl, enum ctl_pw_source src, char *buf, size_t size)
{
	mw_error err = { "" };
	char again[MW_PASSWORD_MAX + 2];
	int ret;

	if (src == PW_GENERATE) {
		size_t len = (size_t)mw_config_int(ctl->cfg, MWK_PASSWORD_GENERATE_LENGTH);
		if (mw_password_generate(buf, size, len, &err) < 0) {
			ctl_err("cannot generate a password: %s", err.msg);
			return EXIT_ERROR;
		}
		return EXIT_OK;
	}
	if (src == PW_STDIN) {
		ret = ctl_read_line(stdin, buf, size);
		if (ret == -2) {
			ctl_err("password on standard input is longer than %d bytes", MW_PASSWORD_MAX);
			return EXIT_USAGE;
		}
		if (ret < 0) {
			ctl_err("no password on standard input");
			return EXIT_USAGE;
		}
	} else {
		FILE *tty = fopen("/dev/tty", "r+");
		if (tty == NULL || !isatty(fileno(tty))) {
			if (tty != NULL)
				fclose(tty);
			ctl_err("no terminal to ask the password on: use --password-stdin or --generate");
			return EXIT_USAGE;
		}
		ret = ctl_tty_prompt(tty, "New password: ", buf, size);
		if (ret == 0)
			ret = ctl_tty_prompt(tty, "Retype new password: ", again, sizeof(again));
		fclose(tty);
		if (ret < 0) {
			mw_memzero(again, sizeof(again));
			ctl_err("could not read the password from the terminal");
			return EXIT_USAGE;
		}
		if (strcmp(buf, again) != 0) {
			mw_memzero(again, sizeof(again));
			ctl_err("the two passwords differ");
			return EXIT_USAGE;
		}
		mw_memzero(again, sizeof(again));
	}
	if (mw_password_check_policy(buf, (size_t)mw_config_int(ctl->cfg, MWK_PASSWORD_MIN_LENGTH),
				     &err) < 0) {
		ctl_err("password refused: %s", err.msg);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* ctl_hash_password - hash with the configured argon2id parameters */
static int ctl_hash_password(struct mw_ctl *ctl, const char *password, char *hash, size_t size)
{
	mw_error err = { "" };
	if (mw_password_hash(password, (size_t)mw_config_int(ctl->cfg, MWK_PASSWORD_ARGON2_MEMORY),
			     (unsigned long long)mw_config_int(ctl->cfg, MWK_PASSWORD_ARGON2_PASSES),
			     hash, size, &err) < 0) {
		ctl_err("cannot hash the password: %s", err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* ---- option parsing shared by the handlers --------------------------------------------- */

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
	OPT_MARKDOWN,
	OPT_LIMIT,
	OPT_AFTER,
};

struct ctl_opts {
	bool json, yes, origin, markdown, help;
	const char *role, *status, *description;
	enum ctl_pw_source pw;
	bool pw_set;
	long long limit, after;
};

/* ctl_parse_opts - parse the options a command accepts ("allowed" lists their ids) */
static int ctl_parse_opts(const struct mw_ctl_command *cmd, int argc, char **argv,
			  const int *allowed, struct ctl_opts *o, int *first_arg_r)
{
	static const struct option all[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "status", required_argument, NULL, OPT_STATUS },
		{ "description", required_argument, NULL, OPT_DESCRIPTION },
		{ "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
		{ "generate", no_argument, NULL, OPT_GENERATE },
		{ "yes", no_argument, NULL, OPT_YES },
		{ "origin", no_argument, NULL, OPT_ORIGIN },
		{ "markdown", no_argument, NULL, OPT_MARKDOWN },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "after-id", required_argument, NULL, OPT_AFTER },
		{ NULL, 0, NULL, 0 },
	};
	int c, i;
	memset(o, 0, sizeof(*o));
	o->pw = PW_TTY;
	optind = 0; /* 0: GNU getopt re-initialises (options may follow arguments) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", all, NULL)) != -1) {
		bool ok = c == OPT_HELP;
		for (i = 0; allowed[i] != 0; i++)
			if (allowed[i] == c)
				ok = true;
		if (c == '?' || !ok) {
			ctl_err("%s %s: unknown or misplaced option %s", cmd->group, cmd->name,
				argv[optind - 1]);
			fprintf(stderr, "usage: mailwardenctl %s\n", cmd->usage);
			return EXIT_USAGE;
		}
		switch (c) {
		case OPT_HELP: o->help = true; break;
		case OPT_JSON: o->json = true; break;
		case OPT_ROLE: o->role = optarg; break;
		case OPT_STATUS: o->status = optarg; break;
		case OPT_DESCRIPTION: o->description = optarg; break;
		case OPT_YES: o->yes = true; break;
		case OPT_ORIGIN: o->origin = true; break;
		case OPT_MARKDOWN: o->markdown = true; break;
		case OPT_PASSWORD_STDIN:
		case OPT_GENERATE:
			if (o->pw_set) {
				ctl_err("--password-stdin and --generate exclude each other");
				return EXIT_USAGE;
			}
			o->pw_set = true;
			o->pw = c == OPT_GENERATE ? PW_GENERATE : PW_STDIN;
			break;
		case OPT_LIMIT:
		case OPT_AFTER: {
			char *end;
			long long v;
			errno = 0;
			v = strtoll(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg || v < 0) {
				ctl_err("--%s: not a non-negative number: %s",
					c == OPT_LIMIT ? "limit" : "after-id", optarg);
				return EXIT_USAGE;
			}
			if (c == OPT_LIMIT)
				o->limit = v;
			else
				o->after = v;
			break;
		}
		}
	}
	if (o->help) {
		printf("usage: mailwardenctl %s\n\n%s\n", cmd->usage, cmd->help);
		return -1;
	}
	*first_arg_r = optind;
	return EXIT_OK;
}

/* ctl_want_args - check the positional argument count */
static int ctl_want_args(const struct mw_ctl_command *cmd, int n, int min, int max)
{
	if (n < min || (max >= 0 && n > max)) {
		ctl_err("%s %s: %s arguments", cmd->group, cmd->name, n < min ? "missing" : "too many");
		fprintf(stderr, "usage: mailwardenctl %s\n", cmd->usage);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

#define CTL_OPTS(cmd, argc, argv, o, first, ...)                                          \
	do {                                                                                \
		static const int allowed_[] = { __VA_ARGS__, 0 };                           \
		int r_ = ctl_parse_opts(cmd, argc, argv, allowed_, o, first);               \
		if (r_ != EXIT_OK)                                                          \
			return r_ < 0 ? EXIT_OK : r_;                                       \
	} while (0)

static const struct mw_ctl_command *ctl_current;

/* ---- init ------------------------------------------------------------------------------ */

/* ctl_mkdir_parent - create the directory holding path (one level) when missing */
static int ctl_mkdir_parent(const char *path, mode_t mode)
{
	char dir[4096];
	char *slash;
	if (mw_strlcpy(dir, path, sizeof(dir)) < 0)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, mode) < 0 && errno != EEXIST) {
		ctl_err("cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* cmd_init - create the store (apply migrations) and the master key file */
static int cmd_init(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	const char *url = mw_config_str(ctl->cfg, MWK_STORE);
	const char *keypath = mw_config_str(ctl->cfg, MWK_MASTER_KEY);
	struct stat st;
	int first, before = 0, after = 0;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;

	if (strncmp(url, "sqlite:", 7) == 0 && ctl_mkdir_parent(url + 7, 0750) < 0)
		return EXIT_ERROR;
	ctl->store = mw_store_open(url, (unsigned)mw_config_int(ctl->cfg, MWK_STORE_BUSY_TIMEOUT) * 1000,
				   &err);
	if (ctl->store == NULL) {
		ctl_err("store %s: %s", url, err.msg);
		return EXIT_ERROR;
	}
	if (mw_store_schema_version(ctl->store, &before, &err) < 0 ||
	    mw_store_migrate(ctl->store, &err) < 0 ||
	    mw_store_schema_version(ctl->store, &after, &err) < 0) {
		ctl_err("store %s: %s", url, err.msg);
		return EXIT_ERROR;
	}
	if (before == after)
		printf("store %s: schema version %d, up to date\n", url, after);
	else
		printf("store %s: schema version %d -> %d\n", url, before, after);

	if (stat(keypath, &st) == 0) {
		mw_master_key key;
		if (mw_secret_key_load(keypath, &key, &err) < 0) {
			ctl_err("master key: %s", err.msg);
			return EXIT_ERROR;
		}
		mw_secret_key_wipe(&key);
		printf("master key %s: present\n", keypath);
	} else {
		if (ctl_mkdir_parent(keypath, 0750) < 0)
			return EXIT_ERROR;
		if (mw_secret_key_create(keypath, &err) < 0) {
			ctl_err("master key: %s", err.msg);
			return EXIT_ERROR;
		}
		printf("master key %s: created\n", keypath);
	}
	if (before != after)
		return ctl_audit(ctl, "store.init", url, "");
	return EXIT_OK;
}

/* ---- user ------------------------------------------------------------------------------ */

/* cmd_user_add - create a user with a password from the chosen source */
static int cmd_user_add(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	char hash[MW_PASSWORD_HASH_MAX];
	enum mw_user_role role = MW_ROLE_USER;
	enum mw_user_status status = MW_USER_ACTIVE;
	int64_t id;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_ROLE, OPT_STATUS, OPT_DESCRIPTION,
		 OPT_PASSWORD_STDIN, OPT_GENERATE);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	if (o.role != NULL && mw_user_role_parse(o.role, &role) < 0) {
		ctl_err("--role: expected admin or user, not \"%s\"", o.role);
		return EXIT_USAGE;
	}
	if (o.status != NULL && mw_user_status_parse(o.status, &status) < 0) {
		ctl_err("--status: expected active, pending or disabled, not \"%s\"", o.status);
		return EXIT_USAGE;
	}
	if (o.description != NULL && strlen(o.description) > MW_DESCRIPTION_MAX) {
		ctl_err("--description: longer than %d bytes", MW_DESCRIPTION_MAX);
		return EXIT_USAGE;
	}
	ret = ctl_get_password(ctl, o.pw, password, sizeof(password));
	if (ret == EXIT_OK)
		ret = ctl_hash_password(ctl, password, hash, sizeof(hash));
	if (ret != EXIT_OK) {
		mw_memzero(password, sizeof(password));
		return ret;
	}
	ret = mw_store_user_add(ctl->store, username, hash, status, role,
				o.description != NULL ? o.description : "", &id, &err);
	if (ret != MW_STORE_OK) {
		mw_memzero(password, sizeof(password));
		return ctl_store_exit(ret, &err, username);
	}
	if (o.pw == PW_GENERATE)
		printf("%s\n", password);
	mw_memzero(password, sizeof(password));
	fprintf(stderr, "user %s added (%s, %s)\n", username, mw_user_role_name(role),
		mw_user_status_name(status));
	return ctl_audit(ctl, "user.add", username, "");
}

/* cmd_user_passwd - set a new password */
static int cmd_user_passwd(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	char hash[MW_PASSWORD_HASH_MAX];
	struct mw_user user;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_PASSWORD_STDIN, OPT_GENERATE);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	/* Fail on an unknown user before asking for a password. */
	ret = mw_store_user_get(ctl->store, username, &user, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	mw_user_clear(&user);
	ret = ctl_get_password(ctl, o.pw, password, sizeof(password));
	if (ret == EXIT_OK)
		ret = ctl_hash_password(ctl, password, hash, sizeof(hash));
	if (ret != EXIT_OK) {
		mw_memzero(password, sizeof(password));
		return ret;
	}
	ret = mw_store_user_set_password(ctl->store, username, hash, &err);
	if (ret != MW_STORE_OK) {
		mw_memzero(password, sizeof(password));
		return ctl_store_exit(ret, &err, username);
	}
	if (o.pw == PW_GENERATE)
		printf("%s\n", password);
	mw_memzero(password, sizeof(password));
	fprintf(stderr, "user %s: password changed\n", username);
	return ctl_audit(ctl, "user.passwd", username, "");
}

/* ctl_user_set_status - enable or disable */
static int ctl_user_set_status(struct mw_ctl *ctl, int argc, char **argv,
			       enum mw_user_status status, const char *action)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1];
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	ret = mw_store_user_set_status(ctl->store, username, status, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	fprintf(stderr, "user %s: %s\n", username, mw_user_status_name(status));
	return ctl_audit(ctl, action, username, "");
}

/* cmd_user_disable - refuse the user's logins from now on */
static int cmd_user_disable(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_user_set_status(ctl, argc, argv, MW_USER_DISABLED, "user.disable");
}

/* cmd_user_enable - allow the user's logins again */
static int cmd_user_enable(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_user_set_status(ctl, argc, argv, MW_USER_ACTIVE, "user.enable");
}

/* cmd_user_del - delete a user and everything that belongs to them */
static int cmd_user_del(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1];
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_YES);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (!o.yes) {
		ctl_err("user del deletes the user, their patterns and sessions: add --yes");
		return EXIT_USAGE;
	}
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	ret = mw_store_user_delete(ctl->store, username, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	fprintf(stderr, "user %s deleted\n", username);
	return ctl_audit(ctl, "user.del", username, "");
}

/* ctl_user_json - a user as a JSON object (never the password hash or TOTP secret) */
static json_t *ctl_user_json(const struct mw_user *u)
{
	char t1[32], t2[32], t3[32], t4[32];
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:s}", "id",
			 (json_int_t)u->id, "username", u->username, "status",
			 mw_user_status_name(u->status), "role", mw_user_role_name(u->role),
			 "description", u->description != NULL ? u->description : "", "created_at",
			 ctl_time(u->created_at, t1, sizeof(t1)), "updated_at",
			 ctl_time(u->updated_at, t2, sizeof(t2)), "password_changed_at",
			 ctl_time(u->password_changed_at, t3, sizeof(t3)), "totp", u->has_totp,
			 "failed_logins", u->failed_logins, "locked_until",
			 ctl_time(u->locked_until, t4, sizeof(t4)));
}

struct ctl_list_ctx {
	bool json;
	json_t *array;
	unsigned count;
};

/* ctl_list_one - print one user row (or collect it for JSON) */
static int ctl_list_one(const struct mw_user *u, void *context)
{
	struct ctl_list_ctx *ctx = context;
	char t[32];
	ctx->count++;
	if (ctx->json) {
		json_array_append_new(ctx->array, ctl_user_json(u));
		return 0;
	}
	printf("%-40s %-9s %-6s %s\n", u->username, mw_user_status_name(u->status),
	       mw_user_role_name(u->role), ctl_time(u->created_at, t, sizeof(t)));
	return 0;
}

/* ctl_json_print - print a JSON value on stdout and free it */
static void ctl_json_print(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s != NULL) {
		printf("%s\n", s);
		free(s);
	}
	json_decref(v);
}

/* cmd_user_list - list users, filtered and paged */
static int cmd_user_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	struct mw_user_filter filter = { -1, -1, 0, 0 };
	struct ctl_list_ctx ctx = { false, NULL, 0 };
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON, OPT_ROLE, OPT_STATUS, OPT_LIMIT,
		 OPT_AFTER);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;
	if (o.role != NULL) {
		enum mw_user_role r;
		if (mw_user_role_parse(o.role, &r) < 0) {
			ctl_err("--role: expected admin or user, not \"%s\"", o.role);
			return EXIT_USAGE;
		}
		filter.role = (int)r;
	}
	if (o.status != NULL) {
		enum mw_user_status s;
		if (mw_user_status_parse(o.status, &s) < 0) {
			ctl_err("--status: expected active, pending or disabled, not \"%s\"", o.status);
			return EXIT_USAGE;
		}
		filter.status = (int)s;
	}
	filter.after_id = o.after;
	filter.limit = o.limit > 1000000 ? 1000000 : (unsigned)o.limit;
	ctx.json = o.json;
	if (o.json)
		ctx.array = json_array();
	else
		printf("%-40s %-9s %-6s %s\n", "USERNAME", "STATUS", "ROLE", "CREATED");
	ret = mw_store_user_list(ctl->store, &filter, ctl_list_one, &ctx, &err);
	if (ret < 0) {
		json_decref(ctx.array);
		return ctl_store_exit(MW_STORE_ERROR, &err, "user list");
	}
	if (o.json)
		ctl_json_print(ctx.array);
	return EXIT_OK;
}

/* cmd_user_show - one user's details and allowed-From patterns */
static int cmd_user_show(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], t[32];
	struct mw_user u;
	char **patterns = NULL;
	size_t n = 0, i;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	ret = mw_store_user_get(ctl->store, username, &u, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	ret = mw_store_allowed_from_list(ctl->store, username, &patterns, &n, &err);
	if (ret != MW_STORE_OK) {
		mw_user_clear(&u);
		return ctl_store_exit(ret, &err, username);
	}
	if (o.json) {
		json_t *obj = ctl_user_json(&u), *arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(arr, json_string(patterns[i]));
		json_object_set_new(obj, "allowed_from", arr);
		ctl_json_print(obj);
	} else {
		printf("username:            %s\n", u.username);
		printf("status:              %s\n", mw_user_status_name(u.status));
		printf("role:                %s\n", mw_user_role_name(u.role));
		printf("description:         %s\n", u.description != NULL ? u.description : "");
		printf("created:             %s\n", ctl_time(u.created_at, t, sizeof(t)));
		printf("updated:             %s\n", ctl_time(u.updated_at, t, sizeof(t)));
		printf("password changed:    %s\n", ctl_time(u.password_changed_at, t, sizeof(t)));
		printf("two-factor (TOTP):   %s\n", u.has_totp ? "enabled" : "off");
		printf("failed logins:       %d\n", u.failed_logins);
		printf("locked until:        %s\n", ctl_time(u.locked_until, t, sizeof(t)));
		printf("allowed from:        %s\n", n == 0 ? "(none: may not send)" : patterns[0]);
		for (i = 1; i < n; i++)
			printf("                     %s\n", patterns[i]);
	}
	mw_store_strv_free(patterns);
	mw_user_clear(&u);
	return EXIT_OK;
}

/* ---- allow-from ------------------------------------------------------------------------ */

/* ctl_allow_from_change - add or delete each pattern given */
static int ctl_allow_from_change(struct mw_ctl *ctl, int argc, char **argv, bool add)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], canon[MW_PATTERN_MAX + 1], what[MW_USERNAME_MAX + MW_PATTERN_MAX + 32];
	int first, i, ret, worst = EXIT_OK;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 2, -1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	/* Validate every pattern before changing anything. */
	for (i = first + 1; i < argc; i++)
		if (mw_pattern_normalize(argv[i], canon, sizeof(canon), &err) < 0) {
			ctl_err("invalid pattern \"%s\": %s", argv[i], err.msg);
			return EXIT_USAGE;
		}
	for (i = first + 1; i < argc; i++) {
		(void)mw_pattern_normalize(argv[i], canon, sizeof(canon), NULL);
		ret = add ? mw_store_allowed_from_add(ctl->store, username, canon, &err)
			  : mw_store_allowed_from_del(ctl->store, username, canon, &err);
		(void)snprintf(what, sizeof(what), "%s: pattern %s", username, canon);
		if (ret == MW_STORE_NOTFOUND) {
			struct mw_user u;
			mw_error err2 = { "" };
			int r2 = mw_store_user_get(ctl->store, username, &u, &err2);
			if (r2 == MW_STORE_OK)
				mw_user_clear(&u);
			if (r2 == MW_STORE_NOTFOUND)
				(void)snprintf(what, sizeof(what), "user %s", username);
		}
		ret = ctl_store_exit(ret, &err, what);
		if (ret != EXIT_OK) {
			if (ret == EXIT_ERROR || worst == EXIT_OK)
				worst = ret;
			continue;
		}
		if (ctl_audit(ctl, add ? "allow_from.add" : "allow_from.del", username, canon) !=
		    EXIT_OK)
			return EXIT_ERROR;
		fprintf(stderr, "%s: %s %s\n", username, add ? "added" : "removed", canon);
	}
	return worst;
}

/* cmd_allow_from_add - allow the user to send as addresses matching the patterns */
static int cmd_allow_from_add(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_allow_from_change(ctl, argc, argv, true);
}

/* cmd_allow_from_del - remove patterns */
static int cmd_allow_from_del(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_allow_from_change(ctl, argc, argv, false);
}

/* cmd_allow_from_list - one pattern per line */
static int cmd_allow_from_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1];
	char **patterns = NULL;
	size_t n = 0, i;
	struct mw_user u;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	ret = mw_store_user_get(ctl->store, username, &u, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	mw_user_clear(&u);
	ret = mw_store_allowed_from_list(ctl->store, username, &patterns, &n, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	if (o.json) {
		json_t *arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(arr, json_string(patterns[i]));
		ctl_json_print(arr);
	} else {
		for (i = 0; i < n; i++)
			printf("%s\n", patterns[i]);
	}
	mw_store_strv_free(patterns);
	return EXIT_OK;
}

/* ---- config ---------------------------------------------------------------------------- */

/* cmd_config_check - load the configuration (or FILE) and report the first error */
static int cmd_config_check(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	const char *path = ctl->config_path;
	mw_config *cfg;
	int first;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 0, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (argc - first == 1)
		path = argv[first];
	cfg = mw_config_load(path, false, &err);
	if (cfg == NULL) {
		ctl_err("%s", err.msg);
		return EXIT_ERROR;
	}
	mw_config_unref(&cfg);
	printf("%s: ok\n", path);
	return EXIT_OK;
}

/* cmd_config_dump - every key with its effective value */
static int cmd_config_dump(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	int first;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_ORIGIN);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;
	mw_config_dump(ctl->cfg, stdout, o.origin);
	return EXIT_OK;
}

/* cmd_config_keys - the reference of every key (docs/configuration.md is made from it) */
static int cmd_config_keys(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	int first;
	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_MARKDOWN);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;
	mw_config_describe(stdout, o.markdown);
	return EXIT_OK;
}

/* ---- dispatch -------------------------------------------------------------------------- */

static const struct mw_ctl_command mw_ctl_commands[] = {
	{ "", "init", cmd_init, false, "init",
	  "Create the store (or bring its schema up to date) and the master key file if it\n"
	  "does not exist. Safe to run again." },
	{ "user", "add", cmd_user_add, true,
	  "user add USER [--role admin|user] [--status active|pending|disabled]\n"
	  "       [--description TEXT] [--password-stdin | --generate]",
	  "Create a user (the login, normally an email address; case-folded). Default role\n"
	  "user, status active. The new user may not send mail until allow-from add." },
	{ "user", "list", cmd_user_list, true,
	  "user list [--status S] [--role R] [--limit N] [--after-id ID] [--json]",
	  "List users in id order. --limit and --after-id page through a long list." },
	{ "user", "show", cmd_user_show, true, "user show USER [--json]",
	  "Show a user's details and allowed-From patterns (never the password hash)." },
	{ "user", "passwd", cmd_user_passwd, true, "user passwd USER [--password-stdin | --generate]",
	  "Set a new password. The old one stops working at once for IMAP and SMTP AUTH." },
	{ "user", "disable", cmd_user_disable, true, "user disable USER",
	  "Refuse the user's logins (IMAP, SMTP AUTH) from now on; keeps their data." },
	{ "user", "enable", cmd_user_enable, true, "user enable USER",
	  "Make a disabled or pending user active." },
	{ "user", "del", cmd_user_del, true, "user del USER --yes",
	  "Delete a user with their patterns, sessions and app passwords (not their mail)." },
	{ "allow-from", "add", cmd_allow_from_add, true, "allow-from add USER PATTERN...",
	  "Allow USER to send as addresses matching PATTERN (envelope sender and header From).\n"
	  "Forms: john@example.com, *@example.com, *@*.example.com, john+*@example.com.\n"
	  "Every pattern is checked before any is added." },
	{ "allow-from", "del", cmd_allow_from_del, true, "allow-from del USER PATTERN...",
	  "Remove patterns." },
	{ "allow-from", "list", cmd_allow_from_list, true, "allow-from list USER [--json]",
	  "List a user's patterns, one per line." },
	{ "config", "check", cmd_config_check, false, "config check [FILE]",
	  "Parse the configuration (default: -c FILE) and report the first error as\n"
	  "FILE:LINE: message. Exit 0 when it is valid." },
	{ "config", "dump", cmd_config_dump, false, "config dump [--origin]",
	  "Print every key with its effective value; --origin adds where each came from." },
	{ "config", "keys", cmd_config_keys, false, "config keys [--markdown]",
	  "Describe every configuration key: section, type, default, meaning." },
};

/* ctl_usage - the full --help text */
static void ctl_usage(FILE *out)
{
	size_t i;
	fputs("usage: mailwardenctl [-c FILE] COMMAND [ARGS]\n\n"
	      "Administer mailwarden's shared store: users, their passwords and the addresses\n"
	      "they may send as; check and show the configuration.\n\nCOMMANDS\n",
	      out);
	for (i = 0; i < MW_N_ELEMENTS(mw_ctl_commands); i++)
		fprintf(out, "  %s\n", mw_ctl_commands[i].usage);
	fputs(mw_ctl_help_tail, out);
}

/* ctl_open_store - open the configured store and check its schema */
static int ctl_open_store(struct mw_ctl *ctl)
{
	mw_error err = { "" };
	const char *url = mw_config_str(ctl->cfg, MWK_STORE);
	ctl->store = mw_store_open(url, (unsigned)mw_config_int(ctl->cfg, MWK_STORE_BUSY_TIMEOUT) * 1000,
				   &err);
	if (ctl->store == NULL) {
		ctl_err("store %s: %s", url, err.msg);
		return EXIT_ERROR;
	}
	if (mw_store_check_schema(ctl->store, &err) < 0) {
		ctl_err("store %s: %s", url, err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* ctl_set_actor - "cli:LOGIN" for the audit log */
static void ctl_set_actor(struct mw_ctl *ctl)
{
	struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER");
	(void)snprintf(ctl->actor, sizeof(ctl->actor), "cli:%s%s%s",
		       pw != NULL ? pw->pw_name : "unknown", sudo != NULL ? "/sudo:" : "",
		       sudo != NULL ? sudo : "");
}

int main(int argc, char **argv)
{
	static const struct option global[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct mw_ctl ctl = { MW_CONFIG_DEFAULT_PATH, false, NULL, NULL, "" };
	const struct mw_ctl_command *cmd = NULL;
	mw_error err = { "" };
	const char *group = "", *name;
	int c, ret, sub_argc;
	char **sub_argv;
	size_t i;

	umask(027);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:h", global, NULL)) != -1) {
		switch (c) {
		case 'c':
			ctl.config_path = optarg;
			ctl.config_explicit = true;
			break;
		case 'h':
			ctl_usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("mailwardenctl %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		default:
			ctl_err("unknown option %s", argv[optind - 1]);
			ctl_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[optind];
	if (strcmp(name, "user") == 0 || strcmp(name, "allow-from") == 0 ||
	    strcmp(name, "config") == 0) {
		group = name;
		if (optind + 1 >= argc) {
			ctl_err("%s: missing subcommand", group);
			ctl_usage(stderr);
			return EXIT_USAGE;
		}
		name = argv[++optind];
	}
	for (i = 0; i < MW_N_ELEMENTS(mw_ctl_commands); i++)
		if (strcmp(mw_ctl_commands[i].group, group) == 0 &&
		    strcmp(mw_ctl_commands[i].name, name) == 0)
			cmd = &mw_ctl_commands[i];
	if (cmd == NULL) {
		ctl_err("unknown command: %s%s%s", group, *group != '\0' ? " " : "", name);
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	sub_argc = argc - optind;
	sub_argv = argv + optind;
	ctl_current = cmd;

	(void)mw_log_init("mailwardenctl", MW_LOG_TARGET_STDERR, "mail", MW_LOG_WARNING, NULL);
	/* config check reports errors itself; everything else needs a valid configuration. */
	if (!(strcmp(cmd->group, "config") == 0 && strcmp(cmd->name, "check") == 0)) {
		ctl.cfg = mw_config_load(ctl.config_path, !ctl.config_explicit, &err);
		if (ctl.cfg == NULL) {
			ctl_err("%s", err.msg);
			return EXIT_ERROR;
		}
	}
	ctl_set_actor(&ctl);
	if (cmd->needs_store) {
		bool help = false;
		for (c = 1; c < sub_argc; c++)
			if (strcmp(sub_argv[c], "--help") == 0 || strcmp(sub_argv[c], "-h") == 0)
				help = true;
		if (!help && ctl_open_store(&ctl) != EXIT_OK) {
			mw_config_unref(&ctl.cfg);
			return EXIT_ERROR;
		}
	}
	ret = cmd->fn(&ctl, sub_argc, sub_argv);
	if (ctl.store != NULL)
		mw_store_close(&ctl.store);
	if (ctl.cfg != NULL)
		mw_config_unref(&ctl.cfg);
	return ret;
}
