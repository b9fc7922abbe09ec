/*
 * ctl-config.c - mailwardenctl config check, dump and keys. config check also checks the
 * [forms] lines as a whole (each names a declared form), as mailwarden-api does at start.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-forms.h"

#include <string.h>

/* cmd_config_check - load the configuration (or FILE) and report the first error */
int cmd_config_check(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = {""};
	const char *path = ctl->config_path;
	mw_config *cfg;
	int first;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 1, -1);
	if (argc - first == 1)
		path = argv[first];
	cfg = mw_config_load(path, false, &err);
	if (cfg == NULL) {
		ctl_err("%s", err.msg);
		return EXIT_ERROR;
	}
	{ /* the lines that only make sense together: [forms] (lib/mw-forms.c) */
		struct mw_forms *forms = NULL;
		if (mw_forms_load(cfg, &forms, &err) < 0) {
			ctl_err("%s", err.msg);
			mw_config_unref(&cfg);
			return EXIT_ERROR;
		}
		mw_forms_free(&forms);
	}
	mw_config_unref(&cfg);
	printf("%s: ok\n", path);
	return EXIT_OK;
}

/* cmd_config_dump - every key with its effective value */
int cmd_config_dump(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	int first;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_ORIGIN, OPT_SHOW_SECRETS);
	mw_config_dump(ctl->cfg, stdout,
	               (o.origin ? MW_CONFIG_DUMP_ORIGIN : 0) |
	                   (o.show_secrets ? MW_CONFIG_DUMP_SECRETS : 0));
	return EXIT_OK;
}

/* cmd_config_keys - the reference of every key (docs/configuration.md is made from it) */
int cmd_config_keys(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	int first;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_MARKDOWN);
	mw_config_describe(stdout, o.markdown);
	return EXIT_OK;
}
