/* mw-plugin-dedupe.c - the plugin's delivery de-duplication: a re-delivery of a queue file
 * the user's mailbox already holds is answered as delivered and not saved again.
 *
 * Why: lmtp may save a message and then fail to say so. Killed with Dovecot's master, it
 * answers Postfix's end of DATA with "421 4.3.2 Shutting down" after the save committed;
 * Postfix takes the delivery as failed and delivers the queue file again later, and the
 * user would get the message twice.
 *
 * How: a deliver_mail hook (registered after, so called before, the plugin's own decision
 * hook) computes the message's key (lib/mw-dedupe: a BLAKE2b digest of the message as Postfix sent
 * it, without lmtp's own lines), and looks it up in the user's record, HOME/mailwarden-dedupe.
 * Found within mailwarden_dedupe_window (default 5d, Postfix's maximal_queue_lifetime; 0
 * turns this off): the hook answers success without saving and logs one info line. Not
 * found: the next hooks run (the plugin's decision, Sieve if chained) and, when none of them
 * saved, the hook saves into the default mailbox itself (lib-lda's mail_deliver_save, as
 * lib-lda would), so it knows the save committed (ctx->saved_mail) before it records the
 * key. The record's directory is fsync'ed (unless mail_fsync = never), so it survives lmtp,
 * Dovecot and machine restarts.
 *
 * What can go wrong, and which way: a crash between the save's commit and the record, or
 * a record that cannot be written, or a re-delivery after the window: the message is saved
 * again (a duplicate, never a loss). A record that cannot be read (or a message that cannot
 * be read to compute its key): the message is saved and the error logged. A save that
 * fails leaves no record, so Postfix's retry saves it. The key is per user (HOME), not per
 * mailbox: a message filed into Junk or a rule's mailbox is found whatever mailbox holds it.
 * When the default mailbox refuses the save (not temporarily), the hook saves into INBOX
 * itself as lib-lda would next, so that save is recorded too.
 *
 * Public: mw_dedupe_init, mw_dedupe_deinit (mw-plugin-dedupe.h).
 *
 * Diagnostics: Dovecot's log through the delivery's event, prefixed "mailwarden:"; the key
 * is logged, never message text.
 */
#include "mw-plugin-dovecot.h"
#include "mail-storage-settings.h"
#include "mailwarden-plugin.h"
#include "mw-plugin-dedupe.h"

#include "mw-config.h"
#include "mw-dedupe.h"

#include <dlfcn.h>

typedef int mw_deliver_save_func_t(struct mail_deliver_context *ctx, const char *mailbox,
                                   enum mail_flags flags, const char *const *keywords,
                                   struct mail_storage **storage_r);

static deliver_mail_func_t *mw_dedupe_next;
static deliver_mail_func_t *(*mw_dedupe_hook_set)(deliver_mail_func_t *);
static mw_deliver_save_func_t *mw_dedupe_save;

/* mw_dedupe_window - mailwarden_dedupe_window in seconds (a bad value: logged, the default) */
static unsigned mw_dedupe_window(struct mail_deliver_context *ctx)
{
	const struct mw_config_key *k = &mw_plugin_keys[MWP_DEDUPE_WINDOW];
	const char *v = mail_user_plugin_getenv(ctx->rcpt_user, k->name);
	long long n = 0;
	mw_error err;
	err.msg[0] = '\0';
	if (v != NULL && *v != '\0' && mw_plugin_key_parse(MWP_DEDUPE_WINDOW, v, &n, &err) == 0)
		return (unsigned)n;
	if (v != NULL && *v != '\0')
		e_error(ctx->event, "mailwarden: %s: %s; using %s", k->name, err.msg, k->def);
	return (unsigned)mw_plugin_key_default(MWP_DEDUPE_WINDOW);
}

/* mw_dedupe_key - the key of the delivered message; -1 when it cannot be read */
static int mw_dedupe_key(struct mail *mail, char key_r[MW_DEDUPE_KEY_LEN + 1], const char **error_r)
{
	struct mw_dedupe_hash h;
	struct istream *input;
	const unsigned char *data;
	unsigned char head[MW_DEDUPE_PREFIX_MAX];
	size_t size, n = 0, skip;
	int ret;

	if (mail_get_stream(mail, NULL, NULL, &input) < 0) {
		*error_r = mailbox_get_last_internal_error(mail->box, NULL);
		return -1;
	}
	mw_dedupe_hash_init(&h);
	/* lmtp's own lines are at the start: gather the first bytes, however the stream
	   buffers them (a large message's stream hands them out in smaller pieces) */
	while (n < sizeof(head) && (ret = i_stream_read_more(input, &data, &size)) > 0) {
		if (size > sizeof(head) - n)
			size = sizeof(head) - n;
		memcpy(head + n, data, size);
		n += size;
		i_stream_skip(input, size);
	}
	skip = mw_dedupe_lmtp_prefix((const char *)head, n);
	mw_dedupe_hash_update(&h, (const char *)head + skip, n - skip);
	while ((ret = i_stream_read_more(input, &data, &size)) > 0) {
		mw_dedupe_hash_update(&h, (const char *)data, size);
		i_stream_skip(input, size);
	}
	if (input->stream_errno != 0) {
		*error_r = i_stream_get_error(input);
		return -1;
	}
	mw_dedupe_hash_final(&h, key_r);
	return 0;
}

/* mw_dedupe_tempfailed - whether the hooks before failed temporarily (lib-lda then stops) */
static bool mw_dedupe_tempfailed(struct mail_deliver_context *ctx, struct mail_storage *storage)
{
	enum mail_error error;
	if (ctx->tempfail_error != NULL)
		return TRUE;
	if (storage == NULL)
		return FALSE;
	(void)mail_storage_get_last_error(storage, &error);
	return error == MAIL_ERROR_TEMP;
}

/* mw_dedupe_deliver - skip a re-delivery; save and record a new delivery */
static int mw_dedupe_deliver(struct mail_deliver_context *ctx, struct mail_storage **storage_r)
{
	char key[MW_DEDUPE_KEY_LEN + 1];
	const char *home = NULL, *dir = NULL, *error;
	unsigned window = mw_dedupe_window(ctx);
	mw_error err;
	time_t saved;
	int ret;

	err.msg[0] = '\0';
	if (window > 0 && mail_user_get_home(ctx->rcpt_user, &home) > 0 && home != NULL &&
	    *home != '\0') {
		dir = t_strconcat(home, "/mailwarden-dedupe", NULL);
		if (mw_dedupe_key(ctx->src_mail, key, &error) < 0) {
			e_error(ctx->event,
			        "mailwarden: cannot read the message to check for a "
			        "re-delivery (%s); saving it",
			        error);
			dir = NULL;
		} else {
			switch (mw_dedupe_seen(dir, key, ioloop_time, window, &saved, &err)) {
			case 1:
				e_info(ctx->event,
				       "mailwarden: re-delivery of a message saved %lds ago "
				       "(dedupe key %.16s): answered as delivered, not saved again",
				       (long)(ioloop_time - saved), key);
				return 1;
			case 0:
				break;
			default:
				e_error(
				    ctx->event,
				    "mailwarden: cannot tell whether this is a re-delivery (%s); "
				    "saving it",
				    err.msg);
				break;
			}
		}
	}

	ret = mw_dedupe_next != NULL ? mw_dedupe_next(ctx, storage_r) : -1;
	if (dir == NULL)
		return ret;
	if (!ctx->saved_mail && ret <= 0 && !mw_dedupe_tempfailed(ctx, *storage_r)) {
		/* what lib-lda's mail_do_deliver would do next, done here to learn that the save
		   committed: the default mailbox unless a hook tried it, then INBOX when the
		   default is another mailbox and did not fail temporarily */
		ret = -1;
		if (!ctx->tried_default_save)
			ret = mw_dedupe_save(ctx, ctx->rcpt_default_mailbox, 0, NULL, storage_r);
		if (ret < 0 && !mw_dedupe_tempfailed(ctx, *storage_r) &&
		    strcasecmp(ctx->rcpt_default_mailbox, "INBOX") != 0)
			ret = mw_dedupe_save(ctx, "INBOX", 0, NULL, storage_r);
		if (ret < 0)
			return -1; /* lib-lda tries nothing else after both */
		ret = 1;
	}
	if (ctx->saved_mail &&
	    mw_dedupe_record(dir, key, ioloop_time, window,
	                     mail_user_set_get_storage_set(ctx->rcpt_user)->parsed_fsync_mode !=
	                         FSYNC_MODE_NEVER,
	                     &err) < 0)
		e_error(ctx->event, "mailwarden: saved, but not recorded against a re-delivery: %s",
		        err.msg);
	return ret;
}

/* mw_dedupe_init - register the hook (in lmtp and dovecot-lda only: lib-lda is there) */
void mw_dedupe_init(void)
{
	void *set = dlsym(RTLD_DEFAULT, "mail_deliver_hook_set");
	void *save = dlsym(RTLD_DEFAULT, "mail_deliver_save");
	if (set == NULL || save == NULL)
		return;
	if (sodium_init() < 0) /* picks libsodium's fastest hash code for this CPU */
		i_warning("mailwarden: sodium_init failed");
	memcpy(&mw_dedupe_hook_set, &set, sizeof(set));
	memcpy(&mw_dedupe_save, &save, sizeof(save));
	mw_dedupe_next = mw_dedupe_hook_set(mw_dedupe_deliver);
}

/* mw_dedupe_deinit - unregister the hook */
void mw_dedupe_deinit(void)
{
	if (mw_dedupe_hook_set == NULL)
		return;
	(void)mw_dedupe_hook_set(mw_dedupe_next);
	mw_dedupe_hook_set = NULL;
	mw_dedupe_next = NULL;
}
