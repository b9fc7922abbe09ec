/* mw-plugin-dovecot.h - the Dovecot headers every file of the plugin uses, in the order
   they need (include it first: _GNU_SOURCE must come before any system header). */
#ifndef MW_PLUGIN_DOVECOT_H
#define MW_PLUGIN_DOVECOT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT (the deliver_mail hook is found with dlsym) */
#endif
#include "lib.h"
#include "ioloop.h"
#include "mail-user.h"
#include "mail-storage.h"
#include "mail-deliver.h"
/* istream.h declares functions with () that -Wstrict-prototypes refuses */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include "istream.h"
#pragma GCC diagnostic pop

#endif
