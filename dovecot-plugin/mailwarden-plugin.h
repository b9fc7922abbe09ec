/* mailwarden-plugin.h - the Dovecot 2.3 plugin's entry points (lib90_mailwarden_plugin.so). */
#ifndef MAILWARDEN_PLUGIN_H
#define MAILWARDEN_PLUGIN_H

struct module;

extern const char *mailwarden_plugin_version;

void mailwarden_plugin_init(struct module *module);
void mailwarden_plugin_deinit(void);

#endif
