/*
 * ctl-common.c - mailwardenctl helpers shared by every command file: messages and exit
 * codes, the audit record, password input (terminal, stdin, generated), option parsing.
 *
 * Diagnostics: everything goes to stderr as "mailwardenctl: ..."; nothing here logs.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-password.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

const struct mw_ctl_command *ctl_current;

/* ctl_err - print "mailwardenctl: MESSAGE" on stderr */
void ctl_err(const char *fmt, ...)
{
	va_list ap;
	fputs("mailwardenctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ctl_store_exit - map a store status to an exit code, printing the error */
int ctl_store_exit(int status, const mw_error *err, const char *what)
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

/* ctl_audit - record a change (details: a JSON object or NULL, consumed), in the words
   and detail format the API uses (lib/mw-audit.def); a failure to record is an error */
int ctl_audit(struct mw_ctl *ctl, enum mw_audit_action action, const char *target, json_t *details)
{
	mw_error err = {""};
	char *text = details != NULL ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	int ret;
	json_decref(details);
	ret = mw_store_audit_append(ctl->store, ctl->actor, mw_audit_name(action), target, "local",
	                            text != NULL ? text : "", &err);
	free(text);
	if (ret != MW_STORE_OK) {
		ctl_err("audit log: %s", err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* ctl_username - normalise a username argument */
int ctl_username(const char *in, char *out, size_t outsize)
{
	mw_error err = {""};
	if (mw_store_username_normalize(in, out, outsize, &err) < 0) {
		ctl_err("invalid username: %s", err.msg);
		return -1;
	}
	return 0;
}

/* ctl_time - format unix seconds as UTC ISO 8601 (or "-" for 0) */
const char *ctl_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)mw_strlcpy(buf, "-", size);
	return buf;
}

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

/* ctl_get_password - obtain a new password from the chosen source and check the policy */
int ctl_get_password(struct mw_ctl *ctl, enum ctl_pw_source src, char *buf, size_t size)
{
	mw_error err = {""};
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
			ctl_err("password on standard input is longer than %d bytes",
			        MW_PASSWORD_MAX);
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
			ctl_err("no terminal to ask the password on: use --password-stdin or "
			        "--generate");
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
int ctl_hash_password(struct mw_ctl *ctl, const char *password, char *hash, size_t size)
{
	mw_error err = {""};
	if (mw_password_hash(
	        password, (size_t)mw_config_int(ctl->cfg, MWK_PASSWORD_ARGON2_MEMORY),
	        (unsigned long long)mw_config_int(ctl->cfg, MWK_PASSWORD_ARGON2_PASSES), hash, size,
	        &err) < 0) {
		ctl_err("cannot hash the password: %s", err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* ctl_json_print - print a JSON value on stdout and free it */
void ctl_json_print(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s != NULL) {
		printf("%s\n", s);
		free(s);
	}
	json_decref(v);
}

/* ctl_parse_opts - parse the options a command accepts ("allowed" lists their ids) */
int ctl_parse_opts(const struct mw_ctl_command *cmd, int argc, char **argv, const int *allowed,
                   struct ctl_opts *o, int *first_arg_r)
{
	static const struct option all[] = {
	    {"help", no_argument, NULL, OPT_HELP},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"role", required_argument, NULL, OPT_ROLE},
	    {"status", required_argument, NULL, OPT_STATUS},
	    {"description", required_argument, NULL, OPT_DESCRIPTION},
	    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
	    {"generate", no_argument, NULL, OPT_GENERATE},
	    {"yes", no_argument, NULL, OPT_YES},
	    {"origin", no_argument, NULL, OPT_ORIGIN},
	    {"show-secrets", no_argument, NULL, OPT_SHOW_SECRETS},
	    {"markdown", no_argument, NULL, OPT_MARKDOWN},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    {"after-id", required_argument, NULL, OPT_AFTER},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {"apply", no_argument, NULL, OPT_APPLY},
	    {"postfix-dir", required_argument, NULL, OPT_POSTFIX_DIR},
	    {"dovecot-dir", required_argument, NULL, OPT_DOVECOT_DIR},
	    {"dovecot-config", required_argument, NULL, OPT_DOVECOT_CONFIG},
	    {"nginx-dir", required_argument, NULL, OPT_NGINX_DIR},
	    {"examples", required_argument, NULL, OPT_EXAMPLES},
	    {"user", required_argument, NULL, OPT_USER},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {"selector", required_argument, NULL, OPT_SELECTOR},
	    {"bits", required_argument, NULL, OPT_BITS},
	    {"due", no_argument, NULL, OPT_DUE},
	    {"date", required_argument, NULL, OPT_DATE},
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"field", required_argument, NULL, OPT_FIELD},
	    {"match", required_argument, NULL, OPT_MATCH},
	    {"value", required_argument, NULL, OPT_VALUE},
	    {"keyword", required_argument, NULL, OPT_KEYWORD},
	    {"mailbox", required_argument, NULL, OPT_MAILBOX},
	    {"disabled", no_argument, NULL, OPT_DISABLED},
	    {"delete", no_argument, NULL, OPT_DELETE},
	    {"domain", required_argument, NULL, OPT_DOMAIN},
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"until", required_argument, NULL, OPT_UNTIL},
	    {NULL, 0, NULL, 0},
	};
	int c, i;
	memset(o, 0, sizeof(*o));
	o->pw = PW_TTY;
	/* the defaults of setup and doctor's directories, here once */
	o->postfix_dir = "/etc/postfix";
	o->dovecot_dir = "/etc/dovecot";
	o->nginx_dir = "/etc/nginx";
	o->dovecot_config = "/etc/dovecot/dovecot.conf";
	o->examples = MW_DOCDIR "/examples";
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
		case OPT_HELP:
			o->help = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_ROLE:
			o->role = optarg;
			break;
		case OPT_STATUS:
			o->status = optarg;
			break;
		case OPT_DESCRIPTION:
			o->description = optarg;
			break;
		case OPT_YES:
			o->yes = true;
			break;
		case OPT_ORIGIN:
			o->origin = true;
			break;
		case OPT_SHOW_SECRETS:
			o->show_secrets = true;
			break;
		case OPT_FORCE:
			o->force = true;
			break;
		case OPT_MARKDOWN:
			o->markdown = true;
			break;
		case OPT_APPLY:
			o->apply = true;
			break;
		case OPT_POSTFIX_DIR:
			o->postfix_dir = optarg;
			break;
		case OPT_DOVECOT_DIR:
			o->dovecot_dir = optarg;
			break;
		case OPT_DOVECOT_CONFIG:
			o->dovecot_config = optarg;
			break;
		case OPT_NGINX_DIR:
			o->nginx_dir = optarg;
			break;
		case OPT_EXAMPLES:
			o->examples = optarg;
			break;
		case OPT_USER:
			o->user = optarg;
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			break;
		case OPT_SELECTOR:
			o->selector = optarg;
			break;
		case OPT_BITS:
			o->bits = optarg;
			break;
		case OPT_DUE:
			o->due = true;
			break;
		case OPT_DATE:
			o->date = optarg;
			break;
		case OPT_OUTPUT:
			o->output = optarg;
			break;
		case OPT_FIELD:
			o->field = optarg;
			break;
		case OPT_MATCH:
			o->match = optarg;
			break;
		case OPT_VALUE:
			o->value = optarg;
			break;
		case OPT_KEYWORD:
			o->keyword = optarg;
			break;
		case OPT_MAILBOX:
			o->mailbox = optarg;
			break;
		case OPT_DISABLED:
			o->disabled = true;
			break;
		case OPT_DELETE:
			o->delete_done = true;
			break;
		case OPT_DOMAIN:
			o->domain = optarg;
			break;
		case OPT_SINCE:
			o->since = optarg;
			break;
		case OPT_UNTIL:
			o->until = optarg;
			break;
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
			if (c == OPT_LIMIT) {
				o->limit = v;
				o->limit_given = true;
			} else
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
int ctl_want_args(const struct mw_ctl_command *cmd, int n, int min, int max)
{
	if (n < min || (max >= 0 && n > max)) {
		ctl_err("%s %s: %s arguments", cmd->group, cmd->name,
		        n < min ? "missing" : "too many");
		fprintf(stderr, "usage: mailwardenctl %s\n", cmd->usage);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* ctl_one_user - exactly one USER argument, normalised into username */
int ctl_one_user(int argc, char **argv, int first, char *username, size_t size)
{
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, size) < 0)
		return EXIT_USAGE;
	return EXIT_OK;
}
