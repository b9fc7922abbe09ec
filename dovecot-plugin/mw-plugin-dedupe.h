/* mw-plugin-dedupe.h - the plugin's delivery de-duplication (mw-plugin-dedupe.c). */
#ifndef MW_PLUGIN_DEDUPE_H
#define MW_PLUGIN_DEDUPE_H

/* Registers the deliver_mail hook that skips re-deliveries; call after the plugin's own
   hook is registered, so this one runs first. Nothing happens outside lmtp/dovecot-lda. */
void mw_dedupe_init(void);
/* Unregisters it; call before the plugin's own hook is unregistered. */
void mw_dedupe_deinit(void);

#endif
