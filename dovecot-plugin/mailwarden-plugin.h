/* mailwarden-plugin.h - the Dovecot 2.3 plugin's entry points (lib90_mailwarden_plugin.so). */
#ifndef MAILWARDEN_PLUGIN_H
#define MAILWARDEN_PLUGIN_H

#include "mw-config.h"

struct module;

extern const char *mailwarden_plugin_version;

void mailwarden_plugin_init(struct module *module);
void mailwarden_plugin_deinit(void);

/* Shared by the plugin's modules: the default of a number setting of
   lib/mw-plugin-keys.def, parsed once per process. */
long long mw_plugin_key_default(enum mw_plugin_key_id id);

#endif
