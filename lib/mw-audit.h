/* mw-audit.h - the audit log's vocabulary: one name per action (lib/mw-audit.def), the
   names older releases wrote mapped to it, so that the CLI's store mode and the API write
   and read the same words. */
#ifndef MW_AUDIT_H
#define MW_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

enum mw_audit_action {
#define MW_AUDIT(id, name, aliases, details, doc) MW_AUDIT_##id,
#include "mw-audit.def"
#undef MW_AUDIT
	MW_AUDIT_COUNT
};

struct mw_audit_def {
	const char *name;
	const char *aliases; /* "a|b" or "" */
	const char *details; /* the members of the details object, "" for none */
	const char *doc;
};

/* The table, indexed by enum mw_audit_action. */
extern const struct mw_audit_def mw_audit_defs[MW_AUDIT_COUNT];

/* The name written to the log for action (never NULL). */
const char *mw_audit_name(enum mw_audit_action action);
/* The current name of a stored action: itself when current or unknown, the current name
   when it is an alias (e.g. "user.del" -> "user.delete"). */
const char *mw_audit_canonical(const char *stored);
/* name is a current action name (not an alias). */
bool mw_audit_known(const char *name);

#endif
