/*
 * ctl-audit.c - mailwardenctl audit actions: the audit log's vocabulary (lib/mw-audit.def),
 * the one table both mailwardenctl's store mode and mailwarden-api write from. The admin
 * guide's table of audit actions is this command's --markdown output.
 *
 * Public: cmd_audit_actions.
 */
#include "mw-build.h"
#include "ctl.h"

/* md_cell - a table cell: '|' would end it early */
static void md_cell(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '|')
			fputs("\\|", stdout);
		else
			putchar(*s);
	}
}

/* cmd_audit_actions - every audit action with its details, older names and meaning */
int cmd_audit_actions(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	size_t i;
	int first;
	(void)ctl;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_MARKDOWN);
	if (o.markdown)
		fputs("| action | details (JSON members) | older name | meaning |\n"
		      "|---|---|---|---|\n",
		      stdout);
	for (i = 0; i < MW_AUDIT_COUNT; i++) {
		const struct mw_audit_def *d = &mw_audit_defs[i];
		if (!o.markdown) {
			printf("%-26s %s\n", d->name, d->doc);
			if (d->details[0] != '\0')
				printf("%-26s details: %s\n", "", d->details);
			if (d->aliases[0] != '\0')
				printf("%-26s older name: %s\n", "", d->aliases);
			continue;
		}
		printf("| `%s` | ", d->name);
		md_cell(d->details[0] != '\0' ? d->details : "-");
		fputs(" | ", stdout);
		md_cell(d->aliases[0] != '\0' ? d->aliases : "-");
		fputs(" | ", stdout);
		md_cell(d->doc);
		fputs(" |\n", stdout);
	}
	return EXIT_OK;
}
