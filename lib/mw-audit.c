/*
 * mw-audit.c - the audit log's vocabulary (issue 11): the table built from mw-audit.def and
 * the mapping of older names. Writers (mailwardenctl's store mode, mailwarden-api) name an
 * action by its enum; readers (the store's audit listing) map what older releases wrote.
 *
 * Public: mw_audit_defs, mw_audit_name, mw_audit_canonical, mw_audit_known.
 */
#include "mw-build.h"
#include "mw-audit.h"

#include <string.h>

const struct mw_audit_def mw_audit_defs[MW_AUDIT_COUNT] = {
#define MW_AUDIT(id, name, aliases, details, doc) [MW_AUDIT_##id] = {name, aliases, details, doc},
#include "mw-audit.def"
#undef MW_AUDIT
};

/* mw_audit_name - the name written for action */
const char *mw_audit_name(enum mw_audit_action action)
{
	if ((unsigned)action >= MW_AUDIT_COUNT)
		return "unknown";
	return mw_audit_defs[action].name;
}

/* alias_in - word is one of the '|'-separated aliases */
static bool alias_in(const char *aliases, const char *word)
{
	size_t n = strlen(word);
	const char *p = aliases;
	while (n > 0 && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == n && memcmp(p, word, n) == 0)
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

/* mw_audit_canonical - the current name of a stored action */
const char *mw_audit_canonical(const char *stored)
{
	size_t i;
	if (stored == NULL)
		return NULL;
	for (i = 0; i < MW_AUDIT_COUNT; i++)
		if (strcmp(mw_audit_defs[i].name, stored) == 0)
			return mw_audit_defs[i].name;
	for (i = 0; i < MW_AUDIT_COUNT; i++)
		if (alias_in(mw_audit_defs[i].aliases, stored))
			return mw_audit_defs[i].name;
	return stored;
}

/* mw_audit_known - name is a current action name */
bool mw_audit_known(const char *name)
{
	size_t i;
	for (i = 0; name != NULL && i < MW_AUDIT_COUNT; i++)
		if (strcmp(mw_audit_defs[i].name, name) == 0)
			return true;
	return false;
}
