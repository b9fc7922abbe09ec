/*
 * mailwardenctl - administer mailwarden: the store, users, allowed-From patterns, config.
 *
 * Without --api it works on the store directly (it must run where the store is, with the
 * permissions to write it); with --api URL the same commands go to mailwarden-api.
 *
 * Commands are dispatched from the one table (ctl-commands.def); each handler parses its own
 * options, works through ctl->ops (ctl-local.c or ctl-remote.c) and returns an exit code a
 * shell script can rely on:
 *   0 done, 1 error (store, file, environment), 2 usage, 3 not found, 4 already exists.
 *
 * Passwords are never taken from argv: they come from the terminal (asked twice, echo
 * off), from one line of standard input (--password-stdin), or are generated
 * (--generate, printed once on standard output).
 *
 * Every change is appended to the store's audit log, as actor "cli:LOGIN" locally and as
 * "api:USER" by the API, with the same action names (lib/mw-audit.def).
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-db.h"
#include "mw-log.h"

#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* THE command table: ctl-commands.def, one entry per command. */
const struct mw_ctl_command ctl_commands[] = {
#define CTL_COMMAND(group, name, fn, modes, usage, help) {group, name, fn, modes, usage, help},
#include "ctl-commands.def"
#undef CTL_COMMAND
};
const size_t ctl_commands_count = MW_N_ELEMENTS(ctl_commands);

static const char mw_ctl_help_tail[] =
    "\n"
    "GLOBAL OPTIONS\n"
    "  -c FILE      configuration file (default " MW_CONFIG_DEFAULT_PATH "; FILE's\n"
    "               directory's conf.d/*.conf is read after it, in name order)\n"
    "  -h, --help   this text;  mailwardenctl COMMAND --help describes one command\n"
    "  --version    print the version\n"
    "  --api URL    run the command against mailwarden-api at URL instead of the store:\n"
    "               http://HOST[:PORT][/PREFIX], https://HOST[:PORT][/PREFIX] or unix:/PATH\n"
    "               (HTTP over a unix socket). The commands marked [api] above run there;\n"
    "               the others are refused (exit 2). The session token comes from\n"
    "               MAILWARDEN_TOKEN or --token-file\n"
    "  --token-file FILE  the session token for --api (first line; chmod o-rwx)\n"
    "  --cacert FILE      CA certificates (PEM) to check an https URL's server with,\n"
    "               instead of the system's\n"
    "\n"
    "PASSWORDS\n"
    "  Never given on the command line. Without an option the password is asked twice\n"
    "  on the terminal; --password-stdin reads one line from standard input (for scripts);\n"
    "  --generate makes a random one and prints it once on standard output.\n"
    "\n"
    "AUDIT LOG\n"
    "  Every change is recorded in the store's audit log as cli:LOGIN (as api:USER by the\n"
    "  API), under the same action names either way: see `mailwardenctl audit actions`.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 done, 1 error (store, file, environment), 2 usage error, 3 no such user or\n"
    "  pattern, 4 already exists.\n"
    "\n"
    "FILES\n"
    "  " MW_CONFIG_DEFAULT_PATH "  configuration (see `mailwardenctl config keys`)\n"
    "  the store (config key store) and master key file (config key master_key)\n";

/* ---- dispatch -------------------------------------------------------------------------- */

/* ctl_usage - the full --help text */
static void ctl_usage(FILE *out)
{
	size_t i;
	fputs("usage: mailwardenctl [-c FILE] [--api URL [--token-file FILE] [--cacert FILE]]\n"
	      "                     COMMAND [ARGS]\n\n"
	      "Administer mailwarden: users, their passwords and the addresses they may send as,\n"
	      "tag rules, DKIM keys, rate limits and the spam classifier; check and show the\n"
	      "configuration. Works on the store directly or, with --api, through\n"
	      "mailwarden-api (the commands marked [api]).\n\nCOMMANDS\n",
	      out);
	for (i = 0; i < ctl_commands_count; i++)
		fprintf(out, "  %s%s\n", ctl_commands[i].usage,
		        (ctl_commands[i].modes & CTL_API) != 0 ? "  [api]" : "");
	fputs(mw_ctl_help_tail, out);
}

/* ctl_is_group - NAME is the first word of some command ("user", "allow-from", ...) */
static bool ctl_is_group(const char *name)
{
	size_t i;
	for (i = 0; i < ctl_commands_count; i++)
		if (strcmp(ctl_commands[i].group, name) == 0)
			return true;
	return false;
}

/* ctl_find - the command GROUP NAME, or NULL */
static const struct mw_ctl_command *ctl_find(const char *group, const char *name)
{
	size_t i;
	for (i = 0; i < ctl_commands_count; i++)
		if (strcmp(ctl_commands[i].group, group) == 0 &&
		    strcmp(ctl_commands[i].name, name) == 0)
			return &ctl_commands[i];
	return NULL;
}

/* ctl_open_store - open the configured store and check its schema */
static int ctl_open_store(struct mw_ctl *ctl)
{
	mw_error err = {""};
	const char *url = mw_config_str(ctl->cfg, MWK_STORE);
	char shown[512];
	mw_db_url_redact(url, shown, sizeof(shown));
	ctl->store = mw_store_open(
	    url, (unsigned)mw_config_int(ctl->cfg, MWK_STORE_BUSY_TIMEOUT) * 1000, &err);
	if (ctl->store == NULL) {
		ctl_err("store %s: %s", shown, err.msg);
		return EXIT_ERROR;
	}
	if (mw_store_check_schema(ctl->store, &err) < 0) {
		ctl_err("store %s: %s", shown, err.msg);
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
	    {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
	    {"api", required_argument, NULL, 'A'},    {"token-file", required_argument, NULL, 'T'},
	    {"cacert", required_argument, NULL, 'C'}, {NULL, 0, NULL, 0},
	};
	struct mw_ctl ctl = {MW_CONFIG_DEFAULT_PATH, false, NULL, NULL, "", NULL, NULL, NULL,
	                     &ctl_local_ops,         NULL};
	const struct mw_ctl_command *cmd = NULL;
	mw_error err = {""};
	const char *group = "", *name;
	bool help = false, remote;
	int c, ret, sub_argc;
	char **sub_argv;

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
		case 'A':
			ctl.api_url = optarg;
			break;
		case 'T':
			ctl.token_file = optarg;
			break;
		case 'C':
			ctl.cacert = optarg;
			break;
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
	if (ctl_is_group(name)) {
		group = name;
		if (optind + 1 >= argc) {
			ctl_err("%s: missing subcommand", group);
			ctl_usage(stderr);
			return EXIT_USAGE;
		}
		name = argv[++optind];
	}
	cmd = ctl_find(group, name);
	if (cmd == NULL) {
		ctl_err("unknown command: %s%s%s", group, *group != '\0' ? " " : "", name);
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	sub_argc = argc - optind;
	sub_argv = argv + optind;
	ctl_current = cmd;

	for (c = 1; c < sub_argc; c++)
		if (strcmp(sub_argv[c], "--help") == 0 || strcmp(sub_argv[c], "-h") == 0)
			help = true;
	remote = ctl.api_url != NULL || ctl.token_file != NULL || ctl.cacert != NULL;
	if (remote && ctl.api_url == NULL) {
		ctl_err("--token-file and --cacert need --api URL");
		return EXIT_USAGE;
	}
	if (remote && (cmd->modes & CTL_API) == 0) {
		ctl_err("%s%s%s is not available with --api: the API has no route for it; run it "
		        "where the store is, without --api",
		        cmd->group, *cmd->group != '\0' ? " " : "", cmd->name);
		return EXIT_USAGE;
	}

	(void)mw_log_init("mailwardenctl", MW_LOG_TARGET_STDERR, "mail", MW_LOG_WARNING, NULL);
	/* config check reports errors itself; everything else needs a valid configuration. */
	if ((cmd->modes & CTL_NOCONFIG) == 0) {
		ctl.cfg = mw_config_load(ctl.config_path, !ctl.config_explicit, &err);
		if (ctl.cfg == NULL) {
			ctl_err("%s", err.msg);
			return EXIT_ERROR;
		}
	}
	ctl_set_actor(&ctl);
	if (remote) {
		ctl.ops = &ctl_remote_ops;
		if (!help && ctl_remote_open(&ctl) != EXIT_OK) {
			ctl_remote_close(&ctl);
			mw_config_unref(&ctl.cfg);
			return EXIT_ERROR;
		}
	} else if ((cmd->modes & CTL_STORE) != 0 && !help && ctl_open_store(&ctl) != EXIT_OK) {
		mw_config_unref(&ctl.cfg);
		return EXIT_ERROR;
	}
	ret = cmd->fn(&ctl, sub_argc, sub_argv);
	ctl_remote_close(&ctl);
	if (ctl.store != NULL)
		mw_store_close(&ctl.store);
	if (ctl.cfg != NULL)
		mw_config_unref(&ctl.cfg);
	return ret;
}
