/* mw-store-private.h - what the store front end and its backends share; callers never
   include this. */
#ifndef MW_STORE_PRIVATE_H
#define MW_STORE_PRIVATE_H

#include "mw-store.h"

struct mw_migration {
	unsigned version;
	const char *name;
	const char *sql;
};

extern const struct mw_migration mw_sqlite_migrations[];
extern const unsigned mw_sqlite_migrations_count;

#endif
