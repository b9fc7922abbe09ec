/* mailwarden-plugin.c - Dovecot 2.3 plugin: IMAP keywords on delivery, user tag rules,
 * Junk filing and spam/ham learning (lib90_mailwarden_plugin.so).
 *
 * Delivery (LMTP, dovecot-lda): a deliver_mail hook (found at run time in lib-lda, so the
 * imap process needs no lib-lda) reads the milter's verdict headers (X-Mailwarden-Spam,
 * X-Mailwarden-Virus, Authentication-Results of our authserv-id only) and the recipient's
 * tag rules once, changes the recipient's default mailbox (spam into the Junk mailbox
 * when mailwarden_file_spam is set, else the mailbox of the first matching rule; lib-lda
 * creates it if missing (lda_mailbox_autocreate) and falls back to INBOX when it cannot
 * save there) and keeps the keywords for the save. lib-lda saves through
 * mailbox_save_using_mail(), which calls the mailbox's copy method on a box opened with
 * MAILBOX_FLAG_POST_SESSION; our copy override merges those keywords into the save
 * context (deciding itself when no hook call came before, e.g. a second save of the same
 * message). The fields a decision reads (the verdict headers and the rules' fields) are
 * read in one pass over the message's header block, held in memory and read as Dovecot's
 * own header parser reads it (mw-plugin-header.c; Dovecot's parser itself for a block over
 * 256 KiB), each value as mail_get_headers() would return it: cheaper than announcing them
 * to the raw mail's cache and looking each up there. The
 * rule cache is prepared when it is filled (the distinct fields, each rule's field and
 * value compiled), and our Authentication-Results is read for its summary only, so a
 * delivery's own work is that pass and the matching itself (bench/README.md, "Dovecot
 * plugin").
 *
 * Learning (imap and anything else that is not a delivery): a message copied, moved or
 * APPENDed into the Junk mailbox is learned as spam and gets $Junk (and loses $NotJunk);
 * one copied or moved out of Junk (not into Trash) is learned as ham and gets $NotJunk
 * (loses $Junk). Setting $Junk / $NotJunk on a message that lacked it learns spam / ham.
 * What is learned is the content: the first mailwarden_learn_max_size bytes of the
 * message, tokenized here by the same lib/ code the milter scores with (mw-mime,
 * mw-tokenize), and applied to the store at once by a "learner" classifier (lib/mw-classify:
 * it reads the rows of the message's tokens inside one store transaction and never loads
 * the model). Learning here rather than in a queue consumed by another process: the plugin
 * already holds the message and a store connection, no daemon has to run for learning to
 * happen, and the user's action is learned before its command completes; the cost is one
 * bounded store transaction (size limit, MW_TOKENS_MAX tokens). The learned label is kept
 * under a digest of the user and the message (mw_classifier_prepare), so one user's
 * judgement counts once however often it is repeated, and moving a message back out of
 * Junk unlearns the spam and learns ham. A newly learned event also writes a
 * training_events row (user, Message-ID, verdict). With [classifier] per_user (read from
 * mailwarden_config) the event teaches the user's own model (scope = the user's id) and,
 * with user_learn_global (the default), the global one, each in its own transaction and
 * with its own learned-digest check, so a retried event counts once per model. After a
 * learn, each model taught gets the automatic expiry when it is due (expire_interval,
 * claimed by one process in the store).
 *
 * Store outages: an event the store does not take is written to the spool
 * (mailwarden_learn_spool, default HOME/mailwarden-learn; lib/mw-learnspool: one file per
 * message and user, bounded by mailwarden_learn_spool_max) and logged; while a retry is
 * pending (every mailwarden_learn_retry) new events go straight to the spool, so an outage
 * costs the session one store timeout per retry. The spool is flushed before any new
 * event is learned (an older judgement never lands after a newer one), by the retry
 * timer, after login of a later session and at the end of a session.
 *
 * Store: mailwarden_store (a store URL) or the store key of mailwarden_config
 * (/etc/mailwarden/mailwarden.conf), opened lazily per mail user as that user (the mail
 * processes need group access to the store). Tag rules are cached per process and user
 * for mailwarden_rules_cache_ttl and validated when the cache is filled (an invalid rule
 * is logged then and skipped until the next fill). A store that cannot be opened or read
 * never fails a delivery: the message gets the header-based keywords only and the error
 * is logged.
 *
 * Tag rule cost: matching is linear in the header text (lib/mw-tagrule.c); each rule
 * examines at most mailwarden_rules_text_max bytes of each header occurrence (default 8k;
 * the rest is not looked at, logged once per delivery at info level), and all rules of one
 * delivery share a budget of mailwarden_rules_budget matching steps (default 20 000 000):
 * once it is spent the remaining rules are not evaluated and a warning is logged (rule id
 * and counts only, no message content). The delivery itself never fails for either.
 *
 * Re-deliveries of a queue file already saved (lmtp saved it but its 250 was lost) are
 * answered as delivered and not saved again: mw-plugin-dedupe.c.
 *
 * Public: mailwarden_plugin_version, mailwarden_plugin_init, mailwarden_plugin_deinit.
 *
 * Diagnostics: Dovecot's log through the user's event, prefixed "mailwarden:"; header and
 * rule text is sanitised (str_sanitize) before it is logged.
 */
#include "mw-plugin-dovecot.h"
#include "array.h"
#include "str.h"
#include "str-sanitize.h"
#include "strnum.h"
#include "message-address.h"
#include "message-header-decode.h"
#include "message-header-parser.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "mail-storage-hooks.h"
#include "module-context.h"
#include "buffer.h"
#include "mailwarden-plugin.h"
#include "mw-plugin-dedupe.h"
#include "mw-plugin-header.h"

#include "mw-config.h"
#include "mw-store.h"
#include "mw-tagrule.h"
#include "mw-headers.h"
#include "mw-classify.h"
#include "mw-learnspool.h"

#include <ctype.h>
#include <dlfcn.h>
#include <sys/stat.h>

#define MW_RULE_CACHE_SIZE   128          /* users whose rules one process keeps */
#define MW_FAIL_CACHE_SECS   5            /* a failed rule read is not retried sooner */
#define MW_MAX_ADDRS         100          /* addresses read from one header */
#define MW_MAX_HEADER_VALUES 20           /* occurrences of one field a rule looks at */
#define MW_HEADER_MEM_MAX    (256 * 1024) /* a larger header is parsed from the stream */

#define MW_USER_CONTEXT(obj) MODULE_CONTEXT(obj, mw_user_module)
#define MW_BOX_CONTEXT(obj)  MODULE_CONTEXT(obj, mw_storage_module)
#define MW_MAIL_CONTEXT(obj) MODULE_CONTEXT_REQUIRE(obj, mw_mail_module)

const char *mailwarden_plugin_version = DOVECOT_ABI_VERSION;

struct mw_plugin_user {
	union mail_user_module_context module_ctx;
	struct mail_user *user;

	const char *config_path, *store_url, *authserv_id;
	const char *junk_box, *trash_box, *phishing_tests;
	const char *kw_spam, *kw_ham, *kw_phishing, *kw_virus;
	const char *kw_dkim_fail, *kw_dmarc_fail, *kw_spf_fail;
	bool file_spam, learn;
	/* an lmtp or dovecot-lda session: nothing but deliveries happens in it, so only the
	   mailboxes lib-lda opens to deliver into get our methods, and no mail gets any */
	bool delivery_session;
	unsigned int cache_ttl;
	size_t rules_text_max; /* bytes of one header the tag rules examine */
	uint64_t rules_budget; /* matching steps for all tag rules of one delivery */

	/* normalised username, "" when it cannot be a store username */
	char username[MW_USERNAME_MAX + 1];
	mw_store *store;
	bool store_failed;
	time_t store_retry_at; /* a failed open is not retried before */

	/* learning: a learner classifier on the store, the spool for store outages */
	mw_classifier *learner;
	unsigned int token_flags;
	size_t learn_max_size; /* bytes of a message learned from */
	const char *spool_dir; /* NULL: no spool (events are lost while the store is down) */
	unsigned int spool_max, spool_retry_secs;
	struct timeout *spool_to, *startup_to;
	struct mw_classifier_settings cls_set; /* [classifier] of mailwarden_config */
	int64_t user_scope;                    /* the user's id once looked up (per_user) */

	/* the keywords mw_deliver_mail decided for delivery_mail, taken by the save that
	   follows (mw_copy) so the headers and rules are looked at once per delivery */
	struct mail *delivery_mail;
	const char **delivery_keywords;
};

struct mw_mailbox {
	union mailbox_module_context module_ctx;
	bool is_junk, is_trash;
};

/* Our context of every mail of a plugin user (update_keywords: learning from $Junk). */
struct mw_mail {
	union mail_module_context module_ctx; /* first: MODULE_CONTEXT_SET_SELF */
};

/* The values one header field has in a message, NULL-terminated once read (a plain list on
   the data stack: a Dovecot array per field cost a pool and a buffer each, ~250
   instructions, for fields that mostly occur once or not at all). */
struct mw_header_values {
	const char **v;
	unsigned int n, cap;
};

/* The header fields one decision reads (the verdict headers and the rules' fields), with
   their values as mail_get_headers() would return them, read in one pass over the
   message's header (mw_headers_read). */
struct mw_headers {
	const char **names; /* distinct, case-insensitive */
	size_t *name_lens;
	struct mw_header_values *values; /* per name: its raw values, in order */
	unsigned int n;
	struct mail *mail; /* !ok: the values are looked up through mail_get_headers */
	bool ok;
};

/* What the headers and rules say about one delivered message. */
struct mw_decision {
	ARRAY_TYPE(const_string) keywords;
	const char *mailbox; /* NULL: the default */
	bool spam;
};

/* The parsed occurrences of one header field the decision's rules look at (parsed when
   the first rule on it is evaluated). */
struct mw_field_subjects {
	const struct mw_tagrule_subject *subjects;
	unsigned int n;
	bool parsed;
};

struct mw_rule_cache_entry {
	char *username;
	struct mw_tag_rule *rules;
	size_t count;
	time_t expires;
	bool failed;
	/* prepared at fill, so a delivery compares no field names: the distinct fields of
	   the enabled rules (pointing into rules), whether each holds addresses, and the
	   index of each rule's field */
	const char **fields;
	bool *field_is_address;
	unsigned int *field_of;
	unsigned int n_fields;
	/* each enabled rule's value compiled for matching (NULL: compiled per match) */
	struct mw_tagrule_prep **preps;
};

static MODULE_CONTEXT_DEFINE_INIT(mw_user_module, &mail_user_module_register);
static MODULE_CONTEXT_DEFINE_INIT(mw_storage_module, &mail_storage_module_register);
static MODULE_CONTEXT_DEFINE_INIT(mw_mail_module, &mail_module_register);

static struct mw_rule_cache_entry mw_rule_cache[MW_RULE_CACHE_SIZE];
/* per keyword setting, the last value found valid (mw_setting_keyword) */
static char *mw_valid_keyword[MWP__COUNT];
static deliver_mail_func_t *mw_next_deliver_mail;
static deliver_mail_func_t *(*mw_deliver_hook_set)(deliver_mail_func_t *);

/* ---- settings and the store --------------------------------------------------------- */

/* mw_setting - a plugin setting, or its default from lib/mw-plugin-keys.def */
static const char *mw_setting(struct mail_user *user, enum mw_plugin_key_id id)
{
	const char *v = mail_user_plugin_getenv(user, mw_plugin_keys[id].name);
	return v != NULL ? v : mw_plugin_keys[id].def;
}

/* mw_setting_keyword - a keyword setting; an invalid one is logged and disabled. lmtp
   creates a mail user per delivery: the last valid value of each key is remembered for the
   process (the check is a pure function of the text), so a delivery compares it instead of
   checking it again. */
static const char *mw_setting_keyword(struct mail_user *user, enum mw_plugin_key_id id)
{
	char **valid = mw_valid_keyword;
	const char *v = mw_setting(user, id);
	mw_error err; /* only its first byte set: clearing all 512 costs ~70 instructions, and
	                 this runs for every key of every lmtp delivery's mail user */
	err.msg[0] = '\0';
	if (*v == '\0')
		return NULL;
	if (valid[id] != NULL && strcmp(valid[id], v) == 0)
		return v;
	if (mw_tagrule_check_keyword(v, &err) < 0) {
		e_error(user->event, "mailwarden: %s = %s: %s; keyword disabled",
		        mw_plugin_keys[id].name, str_sanitize(v, 80), err.msg);
		return NULL;
	}
	i_free(valid[id]);
	valid[id] = i_strdup(v);
	return v;
}

/* mw_plugin_key_default - the default of a number setting, parsed once per process (the
   table is constant; lmtp creates a mail user per delivery) */
long long mw_plugin_key_default(enum mw_plugin_key_id id)
{
	static long long parsed[MWP__COUNT];
	static bool done[MWP__COUNT];
	const struct mw_config_key *k = &mw_plugin_keys[id];
	if (!done[id]) {
		if (mw_plugin_key_parse(id, k->def, &parsed[id], NULL) < 0)
			i_panic("mailwarden: bad default %s = %s", k->name, k->def);
		done[id] = true;
	}
	return parsed[id];
}

/* mw_setting_number - a bool, count, size or duration setting checked against its row of
   lib/mw-plugin-keys.def; a bad one is logged and the default used */
static long long mw_setting_number(struct mail_user *user, enum mw_plugin_key_id id)
{
	const struct mw_config_key *k = &mw_plugin_keys[id];
	const char *v = mail_user_plugin_getenv(user, k->name);
	mw_error err;
	long long n, def = mw_plugin_key_default(id);
	err.msg[0] = '\0';
	if (v == NULL || *v == '\0')
		return def;
	if (mw_plugin_key_parse(id, v, &n, &err) < 0) {
		e_error(user->event, "mailwarden: %s = %s: %s; using %s", k->name,
		        str_sanitize(v, 40), err.msg, k->def);
		return def;
	}
	return n;
}

/* mw_user_store - the user's store connection, opened on first use; NULL when it fails */
static mw_store *mw_user_store(struct mw_plugin_user *muser)
{
	mw_error err = {""};
	mw_config *cfg = NULL;
	const char *url = muser->store_url;
	unsigned int busy_ms = 2000;

	if (muser->store != NULL)
		return muser->store;
	if (muser->store_failed &&
	    (muser->username[0] == '\0' || ioloop_time < muser->store_retry_at))
		return NULL;
	muser->store_failed = false;
	if (muser->username[0] == '\0') {
		muser->store_failed = true;
		return NULL;
	}
	if (url == NULL) {
		cfg = mw_config_load(muser->config_path, false, &err);
		if (cfg == NULL) {
			e_error(muser->user->event, "mailwarden: store unavailable: %s", err.msg);
			muser->store_failed = true;
			muser->store_retry_at = ioloop_time + MW_FAIL_CACHE_SECS;
			return NULL;
		}
		url = mw_config_str(cfg, MWK_STORE);
		busy_ms = (unsigned int)mw_config_int(cfg, MWK_STORE_BUSY_TIMEOUT) * 1000;
	}
	if (cfg == NULL && muser->config_path != NULL && *muser->config_path != '\0')
		cfg = mw_config_load(muser->config_path, false, &err); /* for [classifier] only */
	if (cfg != NULL)
		mw_classifier_settings_from_config(cfg, &muser->cls_set);
	muser->store = mw_store_open(url, busy_ms, &err);
	if (muser->store != NULL && mw_store_check_schema(muser->store, &err) < 0)
		mw_store_close(&muser->store);
	if (muser->store == NULL) {
		/* the URL may hold a password: never logged */
		e_error(muser->user->event, "mailwarden: store unavailable: %s", err.msg);
		muser->store_failed = true;
		muser->store_retry_at = ioloop_time + MW_FAIL_CACHE_SECS;
	}
	if (cfg != NULL)
		mw_config_unref(&cfg);
	return muser->store;
}

/* ---- tag rule cache (per process, keyed by username) --------------------------------- */

/* mw_rule_cache_clear - free one cache entry */
static void mw_rule_cache_clear(struct mw_rule_cache_entry *e)
{
	free(e->username);
	mw_tag_rules_free(e->rules, e->count);
	i_free(e->fields);
	i_free(e->field_is_address);
	i_free(e->field_of);
	for (size_t i = 0; e->preps != NULL && i < e->count; i++)
		mw_tagrule_prep_free(e->preps[i]);
	i_free(e->preps);
	memset(e, 0, sizeof(*e));
}

/* mw_rule_cache_prepare - the distinct fields of the entry's enabled rules, the index of
   each rule's field, each rule's value compiled */
static void mw_rule_cache_prepare(struct mw_rule_cache_entry *e)
{
	size_t i;
	unsigned int j;

	e->fields = i_new(const char *, e->count + 1);
	e->field_is_address = i_new(bool, e->count + 1);
	e->field_of = i_new(unsigned int, e->count + 1);
	e->preps = i_new(struct mw_tagrule_prep *, e->count + 1);
	e->n_fields = 0;
	for (i = 0; i < e->count; i++) {
		const struct mw_tag_rule *r = &e->rules[i];
		if (!r->enabled)
			continue;
		for (j = 0; j < e->n_fields; j++)
			if (strcasecmp(e->fields[j], r->field) == 0)
				break;
		if (j == e->n_fields) {
			e->fields[j] = r->field;
			e->field_is_address[j] = mw_tagrule_field_is_address(r->field);
			e->n_fields++;
		}
		e->field_of[i] = j;
		e->preps[i] = mw_tagrule_prepare(r);
	}
}

/* mw_user_rules - the user's rule cache entry, from the cache or the store; NULL or an
   entry with no rules on failure */
static const struct mw_rule_cache_entry *mw_user_rules(struct mw_plugin_user *muser)
{
	struct mw_rule_cache_entry *e = NULL, *victim = &mw_rule_cache[0];
	struct mw_tag_rule *rules = NULL;
	mw_error err;
	mw_store *store;
	size_t count = 0, i;
	int ret;

	err.msg[0] = '\0';
	if (muser->username[0] == '\0')
		return NULL;
	for (i = 0; i < MW_RULE_CACHE_SIZE; i++) {
		struct mw_rule_cache_entry *c = &mw_rule_cache[i];
		if (c->username != NULL && strcmp(c->username, muser->username) == 0) {
			e = c;
			break;
		}
		if (c->username == NULL || c->expires < victim->expires)
			victim = c;
	}
	if (e != NULL && e->expires > ioloop_time)
		return e;
	if (e == NULL)
		e = victim;
	mw_rule_cache_clear(e);
	e->username = mw_strdup(muser->username);

	store = mw_user_store(muser);
	ret = store == NULL ? MW_STORE_ERROR
	                    : mw_store_tag_rule_list(store, muser->username, &rules, &count, &err);
	if (ret == MW_STORE_NOTFOUND) {
		/* not a store user (e.g. a system account): no rules */
		e->expires = ioloop_time + muser->cache_ttl;
		return NULL;
	}
	if (ret != MW_STORE_OK) {
		if (store != NULL)
			e_error(muser->user->event, "mailwarden: reading tag rules: %s", err.msg);
		e_warning(muser->user->event,
		          "mailwarden: store unreachable: delivering with header keywords only");
		e->failed = true;
		e->expires =
		    ioloop_time +
		    (muser->cache_ttl < MW_FAIL_CACHE_SECS ? muser->cache_ttl : MW_FAIL_CACHE_SECS);
		return NULL;
	}
	/* validated once per fill, not per delivery: an invalid rule is logged once and
	   disabled in the cached copy */
	for (i = 0; i < count; i++) {
		if (rules[i].enabled && mw_tagrule_check(&rules[i], &err) < 0) {
			e_warning(muser->user->event, "mailwarden: tag rule %lld skipped: %s",
			          (long long)rules[i].id, err.msg);
			rules[i].enabled = false;
		}
	}
	e->rules = rules;
	e->count = count;
	e->expires = ioloop_time + muser->cache_ttl;
	mw_rule_cache_prepare(e);
	return e;
}

/* ---- delivery: the decision ---------------------------------------------------------- */

/* mw_unfold - a header value with CR, LF and TAB turned into spaces (data stack) */
static const char *mw_unfold(const char *value)
{
	char *s = t_strdup_noconst(value), *p;
	for (p = s; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n' || *p == '\t')
			*p = ' ';
	return s;
}

/* mw_add_keyword - add kw to the decision once */
static void mw_add_keyword(struct mw_decision *d, const char *kw)
{
	const char *const *k;
	if (kw == NULL)
		return;
	array_foreach(&d->keywords, k) if (strcasecmp(*k, kw) == 0) return;
	array_push_back(&d->keywords, &kw);
}

/* mw_headers_add - add field to the names h reads, once */
static void mw_headers_add(struct mw_headers *h, const char *field, unsigned int max)
{
	unsigned int i;
	if (field == NULL)
		return;
	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->names[i], field) == 0)
			return;
	i_assert(h->n < max);
	h->name_lens[h->n] = strlen(field);
	h->names[h->n++] = field;
}

/* mw_header_values_add - append value (NULL: the terminator) to the list (data stack) */
static void mw_header_values_add(struct mw_header_values *values, const char *value)
{
	if (values->n == values->cap) {
		const char **grown;
		values->cap = values->cap == 0 ? 2 : values->cap * 2;
		grown = t_new(const char *, values->cap);
		if (values->n > 0)
			memcpy(grown, values->v, values->n * sizeof(*grown));
		values->v = grown;
	}
	values->v[values->n++] = value;
}

/* mw_headers_value - one field's value from its physical lines (joined with LF) as
   mail_get_headers() returns it: the LWSP after the colon skipped, the last LF dropped,
   NULs replaced (Dovecot's index_mail_get_parsed_header) */
static void mw_headers_value(struct mw_header_values *values, const string_t *lines)
{
	const unsigned char *p = str_data(lines);
	size_t len = str_len(lines);
	const char *value;
	while (len > 0 && IS_LWSP(*p)) {
		p++;
		len--;
	}
	if (len > 0 && p[len - 1] == '\n')
		len--;
	value = message_header_strdup(pool_datastack_create(), p, len);
	mw_header_values_add(values, value);
}

/* mw_headers_find - the index of the field name[0..len) among h's names, h->n for none */
static unsigned int mw_headers_find(const struct mw_headers *h, const unsigned char *name,
                                    size_t len)
{
	unsigned int i;
	for (i = 0; i < h->n; i++)
		if (h->name_lens[i] == len && i_memcasecmp(h->names[i], name, len) == 0)
			break;
	return i;
}

/* mw_headers_read_stream - the values of h's fields from the message's stream with
   Dovecot's own header parser (a header block too large to hold in memory, or one that
   never ends): -1 when the message cannot be read (error_r) */
static int mw_headers_read_stream(struct mw_headers *h, struct istream *input, const char **error_r)
{
	struct message_header_parser_ctx *parser;
	struct message_header_line *hdr;
	string_t *lines = NULL;
	struct mw_header_values *cur = NULL;
	unsigned int i;
	int ret;

	i_stream_seek(input, 0);
	parser = message_parse_header_init(input, NULL,
	                                   MESSAGE_HEADER_PARSER_FLAG_SKIP_INITIAL_LWSP |
	                                       MESSAGE_HEADER_PARSER_FLAG_DROP_CR);
	while ((ret = message_parse_header_next(parser, &hdr)) > 0) {
		if (!hdr->continued) {
			if (cur != NULL)
				mw_headers_value(cur, lines);
			cur = NULL;
			if (hdr->eoh || hdr->middle_len == 0)
				continue; /* no colon: not a field Dovecot would return */
			i = mw_headers_find(h, (const unsigned char *)hdr->name, strlen(hdr->name));
			if (i == h->n)
				continue;
			cur = &h->values[i];
			if (lines == NULL)
				lines = t_str_new(256);
			str_truncate(lines, 0);
		}
		if (cur == NULL)
			continue;
		str_append_data(lines, hdr->value, hdr->value_len);
		if (!hdr->no_newline)
			str_append_c(lines, '\n');
	}
	if (cur != NULL)
		mw_headers_value(cur, lines);
	message_parse_header_deinit(&parser);
	if (input->stream_errno != 0 || ret == 0) {
		*error_r = input->stream_errno != 0 ? i_stream_get_error(input)
		                                    : "the header stream would block";
		return -1;
	}
	return 0;
}

/* mw_headers_read_block - the values of h's fields from the whole header block in memory
   (mw-plugin-header.c reads it as Dovecot's parser does) */
static void mw_headers_read_block(struct mw_headers *h, const unsigned char *block, size_t len)
{
	struct mw_hdr_field f;
	size_t pos = 0, n;
	unsigned char *v;
	const char *value;
	unsigned int i;

	while (mw_hdr_next(block, len, &pos, &f) > 0) {
		if (f.name_len == 0 || (i = mw_headers_find(h, f.name, f.name_len)) == h->n)
			continue;
		v = t_malloc_no0(f.value_len + 1);
		n = mw_hdr_value(&f, v);
		v[n] = '\0';
		value = (const char *)v;
		if (memchr(v, '\0', n) != NULL) /* NULs replaced as index_mail does */
			value = message_header_strdup(pool_datastack_create(), v, n);
		mw_header_values_add(&h->values[i], value);
	}
}

/* mw_headers_read - the values of h's fields, in one pass over the message's header:
   -1 when the message cannot be read (error_r). The delivered message's stream is in
   memory or a temporary file of lmtp; reading its header here costs less than announcing
   the fields to Dovecot's mail cache and looking each one up there (data stack). */
static int mw_headers_read(struct mw_headers *h, const char **error_r)
{
	struct istream *input;
	const unsigned char *data;
	unsigned char *buf = NULL;
	size_t size, used = 0, cap = 0, hdr_len = 0;
	unsigned int i;

	h->values = t_new(struct mw_header_values, h->n);
	if (mail_get_stream(h->mail, NULL, NULL, &input) < 0) {
		*error_r = mailbox_get_last_internal_error(h->mail->box, NULL);
		return -1;
	}
	i_stream_seek(input, 0);
	/* the header block, gathered piece by piece as the stream hands them out: lmtp's
	   stream is its own header lines followed by the message, and asking it for bytes
	   across that seam makes it copy both into a new buffer. A block of more than
	   MW_HEADER_MEM_MAX (or one that never ends) is parsed from the stream instead. */
	while (hdr_len == 0 && used < MW_HEADER_MEM_MAX &&
	       i_stream_read_more(input, &data, &size) > 0) {
		if (used == 0 && (hdr_len = mw_hdr_block_end(data, size)) > 0) {
			buf = (unsigned char *)data; /* all in the first piece: no copy */
			break;
		}
		if (size > MW_HEADER_MEM_MAX - used)
			size = MW_HEADER_MEM_MAX - used;
		if (used + size > cap) {
			unsigned char *grown;
			cap = I_MAX(used + size, cap * 2);
			grown = t_malloc_no0(cap);
			if (used > 0)
				memcpy(grown, buf, used);
			buf = grown;
		}
		memcpy(buf + used, data, size);
		used += size;
		i_stream_skip(input, size);
		hdr_len = mw_hdr_block_end(buf, used);
	}
	if (input->stream_errno != 0) {
		*error_r = i_stream_get_error(input);
		return -1;
	}
	if (hdr_len > 0)
		mw_headers_read_block(h, buf, hdr_len);
	else if (mw_headers_read_stream(h, input, error_r) < 0)
		return -1;
	for (i = 0; i < h->n; i++)
		mw_header_values_add(&h->values[i], NULL); /* NULL-terminated, as Dovecot's */
	i_stream_seek(input, 0);
	return 0;
}

/* mw_headers_init - the fields a decision reads: the verdict headers and the fields of
   the user's rules, read from mail in one pass; when that fails (logged) each lookup
   goes through mail_get_headers as before */
static void mw_headers_init(struct mw_plugin_user *muser, struct mail *mail,
                            const struct mw_rule_cache_entry *e, struct mw_headers *h)
{
	unsigned int max = 3 + (e != NULL ? e->n_fields : 0), i;
	const char *error;

	i_zero(h);
	h->mail = mail;
	h->names = t_new(const char *, max);
	h->name_lens = t_new(size_t, max);
	mw_headers_add(h, "X-Mailwarden-Spam", max);
	mw_headers_add(h, "X-Mailwarden-Virus", max);
	if (muser->authserv_id != NULL)
		mw_headers_add(h, "Authentication-Results", max);
	for (i = 0; e != NULL && i < e->n_fields; i++)
		mw_headers_add(h, e->fields[i], max);
	if (mw_headers_read(h, &error) < 0) {
		e_error(muser->user->event,
		        "mailwarden: reading the message header: %s; looking the fields up one "
		        "by one",
		        error);
		return;
	}
	h->ok = true;
	e_debug(muser->user->event, "mailwarden: %u header fields read in one pass", h->n);
}

/* mw_headers_get - the raw values of field (one h holds): 1 and *values_r, 0 when it does
   not occur */
static int mw_headers_get(const struct mw_headers *h, const char *field,
                          const char *const **values_r)
{
	unsigned int i;
	if (!h->ok)
		return mail_get_headers(h->mail, field, values_r) <= 0 || (*values_r)[0] == NULL
		           ? 0
		           : 1;
	for (i = 0; i < h->n; i++) {
		if (strcasecmp(h->names[i], field) != 0)
			continue;
		if (h->values[i].n <= 1)
			return 0;
		*values_r = h->values[i].v;
		return 1;
	}
	i_unreached();
}

/* mw_headers_utf8 - the values RFC 2047-decoded to UTF-8 as mail_get_headers_utf8()
   returns them (Dovecot's index_mail_headers_decode: unfolded, decoded, NULs of the
   decoding made spaces); NULL when a value is not a parsed header value (data stack) */
static const char *const *mw_headers_utf8(const struct mw_headers *h, const char *field,
                                          const char *const *raw)
{
	const char **decoded;
	string_t *str = t_str_new(256);
	unsigned int n, i;

	if (!h->ok) {
		const char *const *v;
		return mail_get_headers_utf8(h->mail, field, &v) <= 0 ? NULL : v;
	}
	n = str_array_length(raw);
	decoded = t_new(const char *, n + 1);
	for (i = 0; i < n; i++) {
		const char *in = raw[i], *nl = strchr(in, '\n');
		if (nl != NULL) {
			/* unfold: each LF and the LWSP after it become one space */
			string_t *u = t_str_new(strlen(in));
			const char *p;
			for (p = in; *p != '\0'; p++) {
				if (*p != '\n') {
					str_append_c(u, *p);
					continue;
				}
				str_append_c(u, ' ');
				if (p[1] == '\0')
					break;
				if (!IS_LWSP(p[1]))
					return NULL; /* Dovecot calls this corrupted */
				p++;
			}
			in = str_c(u);
		}
		str_truncate(str, 0);
		message_header_decode_utf8((const unsigned char *)in, strlen(in), str, NULL);
		if (strcmp(str_c(str), in) != 0) {
			if (strlen(str_c(str)) != str_len(str)) {
				char *d = str_c_modifiable(str);
				size_t k;
				for (k = 0; k < str_len(str); k++)
					if (d[k] == '\0')
						d[k] = ' ';
			}
			in = t_strdup(str_c(str));
		}
		decoded[i] = in;
	}
	return decoded;
}

/* mw_single_header - the only value of field: 1 and *value_r; 0 when absent; -1 when the
   field occurs more than once (the milter deletes every X-Mailwarden-* header that arrives
   and writes at most one of each, so two are not the milter's: none is believed) */
static int mw_single_header(const struct mw_headers *h, const char *field, const char **value_r)
{
	const char *const *values;
	if (mw_headers_get(h, field, &values) <= 0)
		return 0;
	if (values[1] != NULL)
		return -1;
	*value_r = values[0];
	return 1;
}

/* mw_header_verdicts - keywords from the milter's headers, read by lib/mw-headers */
static void mw_header_verdicts(struct mw_plugin_user *muser, const struct mw_headers *h,
                               struct mw_decision *d)
{
	const char *value, *const *values;
	struct mw_hdr_spam spam;
	struct mw_hdr_virus virus;
	struct mw_hdr_auth_summary auth;
	mw_error err;
	unsigned int n;
	int ret;

	err.msg[0] = '\0';
	ret = mw_single_header(h, "X-Mailwarden-Spam", &value);
	if (ret < 0) {
		e_warning(muser->user->event,
		          "mailwarden: X-Mailwarden-Spam ignored: more than one header");
	} else if (ret > 0) {
		if (mw_hdr_spam_parse(value, strlen(value), &spam, &err) < 0) {
			e_warning(muser->user->event, "mailwarden: X-Mailwarden-Spam ignored: %s",
			          err.msg);
		} else {
			if (spam.spam) {
				d->spam = true;
				mw_add_keyword(d, muser->kw_spam);
			}
			if (mw_hdr_tests_has(spam.tests, muser->phishing_tests))
				mw_add_keyword(d, muser->kw_phishing);
		}
	}
	ret = mw_single_header(h, "X-Mailwarden-Virus", &value);
	if (ret < 0) {
		e_warning(muser->user->event,
		          "mailwarden: X-Mailwarden-Virus ignored: more than one header");
	} else if (ret > 0) {
		if (mw_hdr_virus_parse(value, strlen(value), &virus, &err) < 0)
			e_warning(muser->user->event, "mailwarden: X-Mailwarden-Virus ignored: %s",
			          err.msg);
		else if (virus.infected)
			mw_add_keyword(d, muser->kw_virus);
	}
	if (muser->authserv_id == NULL || mw_headers_get(h, "Authentication-Results", &values) <= 0)
		return;
	for (n = 0; values[n] != NULL; n++)
		;
	/* only the header the milter wrote: the one claiming our authserv-id, first; read for
	   the summary only (no ~30 KB struct mw_hdr_authres per delivery) */
	ret = mw_hdr_authres_pick_summary(values, n, muser->authserv_id, &auth, &err);
	if (ret < 0)
		e_warning(muser->user->event, "mailwarden: Authentication-Results ignored: %s",
		          err.msg);
	if (ret <= 0)
		return;
	if (auth.dkim_fail && !auth.dkim_pass)
		mw_add_keyword(d, muser->kw_dkim_fail);
	if (auth.dmarc_fail)
		mw_add_keyword(d, muser->kw_dmarc_fail);
	if (auth.spf_fail)
		mw_add_keyword(d, muser->kw_spf_fail);
}

/* mw_plain_ascii - no byte a UTF-8 decoding of the header would change: 7-bit, and no
   RFC 2047 encoded-word ("=?") */
static bool mw_plain_ascii(const char *const *values)
{
	for (; *values != NULL; values++) {
		const unsigned char *p;
		for (p = (const unsigned char *)*values; *p != '\0'; p++)
			if (*p >= 0x80 || (*p == '=' && p[1] == '?'))
				return false;
	}
	return true;
}

/* mw_subjects - the occurrences of field in mail as match subjects (data stack) */
static unsigned int mw_subjects(const struct mw_headers *h, const char *field, bool address,
                                const struct mw_tagrule_subject **subjects_r)
{
	const char *const *raw, *const *decoded;
	struct mw_tagrule_subject *subjects;
	unsigned int n = 0;

	*subjects_r = NULL;
	if (mw_headers_get(h, field, &raw) <= 0)
		return 0;
	/* decoding returns the same text for plain ASCII */
	if (mw_plain_ascii(raw) || (decoded = mw_headers_utf8(h, field, raw)) == NULL)
		decoded = raw;
	subjects = t_new(struct mw_tagrule_subject, MW_MAX_HEADER_VALUES);
	*subjects_r = subjects;
	for (; raw[n] != NULL && n < MW_MAX_HEADER_VALUES; n++) {
		struct mw_tagrule_subject *s = &subjects[n];
		const char *text = decoded[n] != NULL ? decoded[n] : raw[n];
		memset(s, 0, sizeof(*s));
		s->text = mw_unfold(text);
		if (address) {
			ARRAY_TYPE(const_string) addrs;
			const struct message_address *a;
			t_array_init(&addrs, 4);
			a = message_address_parse(pool_datastack_create(),
			                          (const unsigned char *)raw[n], strlen(raw[n]),
			                          MW_MAX_ADDRS, 0);
			for (; a != NULL; a = a->next) {
				const char *addr;
				if (a->mailbox == NULL || a->domain == NULL || *a->domain == '\0')
					continue;
				addr = t_strconcat(a->mailbox, "@", a->domain, NULL);
				array_push_back(&addrs, &addr);
			}
			{
				unsigned int cnt;
				s->addrs = array_get(&addrs, &cnt);
				s->n_addrs = cnt;
			}
		}
	}
	return n;
}

/* mw_apply_rules - keywords and mailbox from the user's tag rules, in order, within the
   delivery's matching budget: once it is spent the remaining rules are not evaluated.
   Each field is read and parsed once, when the first rule on it is evaluated: a header
   lookup on the delivered mail is costly, and a user's rules name the same few fields
   over and over. */
static void mw_apply_rules(const struct mw_headers *h, const struct mw_rule_cache_entry *e,
                           struct mw_plugin_user *muser, struct mw_decision *d)
{
	const struct mw_tag_rule *rules;
	struct mw_field_subjects *fields;
	struct mw_tagrule_work work;
	size_t i, count;

	if (e == NULL || e->count == 0 || e->n_fields == 0)
		return;
	rules = e->rules;
	count = e->count;
	i_zero(&work);
	work.text_max = muser->rules_text_max;
	work.budget = muser->rules_budget;
	fields = t_new(struct mw_field_subjects, e->n_fields);
	for (i = 0; i < count; i++) {
		const struct mw_tag_rule *r = &rules[i];
		struct mw_field_subjects *f;
		bool matched;
		if (!r->enabled) /* disabled, or invalid (logged when the cache was filled) */
			continue;
		f = &fields[e->field_of[i]];
		if (!f->parsed) {
			f->n = mw_subjects(h, e->fields[e->field_of[i]],
			                   e->field_is_address[e->field_of[i]], &f->subjects);
			f->parsed = true;
		}
		matched = f->n > 0 && mw_tagrule_matches_prep(r, e->preps[i],
		                                              e->field_is_address[e->field_of[i]],
		                                              f->subjects, f->n, &work);
		if (work.exhausted) {
			e_warning(muser->user->event,
			          "mailwarden: tag rule budget spent (mailwarden_rules_budget=%llu "
			          "steps) at rule %lld: %zu of %zu rules not evaluated",
			          (unsigned long long)work.budget, (long long)r->id, count - i,
			          count);
			break;
		}
		if (!matched)
			continue;
		e_debug(muser->user->event, "mailwarden: tag rule %lld matched", (long long)r->id);
		if (r->keyword != NULL)
			mw_add_keyword(d, t_strdup(r->keyword));
		if (r->mailbox != NULL && d->mailbox == NULL)
			d->mailbox = t_strdup(r->mailbox);
	}
	if (work.truncated)
		e_info(muser->user->event,
		       "mailwarden: a header longer than mailwarden_rules_text_max=%zu bytes: tag "
		       "rules examined its first %zu bytes only",
		       work.text_max, work.text_max);
}

/* mw_decide - everything the plugin does to one delivered message (data stack) */
static void mw_decide(struct mw_plugin_user *muser, struct mail *mail, struct mw_decision *d)
{
	const struct mw_rule_cache_entry *e;
	struct mw_headers h;

	i_zero(d);
	t_array_init(&d->keywords, 8);
	e = mw_user_rules(muser);
	mw_headers_init(muser, mail, e, &h);
	mw_header_verdicts(muser, &h, d);
	mw_apply_rules(&h, e, muser, d);
	if (d->spam && muser->file_spam)
		d->mailbox = muser->junk_box;
}

/* ---- keywords on a save context ------------------------------------------------------ */

/* mw_kw_has - the index list holds idx */
static bool mw_kw_has(const ARRAY_TYPE(keyword_indexes) * arr, unsigned int idx)
{
	const unsigned int *i;
	array_foreach(arr, i) if (*i == idx) return true;
	return false;
}

/* mw_save_keywords - add and remove keywords on what ctx will save. The context keeps
   its own reference to its keywords (mailbox_save_set_flags takes one); we drop the
   reference it held on the old set and the one we got from creating the new set. */
static void mw_save_keywords(struct mail_save_context *ctx, const char *const *add,
                             const char *const *remove)
{
	struct mailbox *box = ctx->transaction->box;
	struct mail_keywords *old = ctx->data.keywords, *kw, *newkw;
	ARRAY_TYPE(keyword_indexes) idx, drop;
	unsigned int i;

	t_array_init(&idx, 8);
	t_array_init(&drop, 4);
	if (remove != NULL && remove[0] != NULL) {
		kw = mailbox_keywords_create_valid(box, remove);
		for (i = 0; i < kw->count; i++)
			array_push_back(&drop, &kw->idx[i]);
		mailbox_keywords_unref(&kw);
	}
	if (old != NULL)
		for (i = 0; i < old->count; i++)
			if (!mw_kw_has(&idx, old->idx[i]) && !mw_kw_has(&drop, old->idx[i]))
				array_push_back(&idx, &old->idx[i]);
	if (add != NULL && add[0] != NULL) {
		kw = mailbox_keywords_create_valid(box, add);
		for (i = 0; i < kw->count; i++)
			if (!mw_kw_has(&idx, kw->idx[i]))
				array_push_back(&idx, &kw->idx[i]);
		mailbox_keywords_unref(&kw);
	}
	newkw = array_count(&idx) == 0 ? NULL : mailbox_keywords_create_from_indexes(box, &idx);
	ctx->data.keywords = NULL;
	mailbox_save_set_flags(ctx, ctx->data.flags | ctx->data.pvt_flags, newkw);
	if (newkw != NULL)
		mailbox_keywords_unref(&newkw);
	if (old != NULL)
		mailbox_keywords_unref(&old);
}

/* mw_strv - a NULL-terminated list of the non-NULL arguments (data stack) */
static const char *const *mw_strv2(const char *a, const char *b)
{
	const char **v = t_new(const char *, 3);
	unsigned int n = 0;
	if (a != NULL)
		v[n++] = a;
	if (b != NULL)
		v[n++] = b;
	return v;
}

/* ---- learning -------------------------------------------------------------------------- */

/* mw_learner - the user's learner classifier on the store; NULL when the store is down */
static mw_classifier *mw_learner(struct mw_plugin_user *muser, mw_error *err)
{
	mw_store *store = mw_user_store(muser);
	if (store == NULL) {
		mw_error_set(err, "store unavailable");
		return NULL;
	}
	if (muser->learner == NULL && mw_classifier_open_learner(store, &muser->learner, err) < 0)
		return NULL;
	return muser->learner;
}

/* mw_user_scope - the scope of the user's own model: 0 when there is none (per_user off,
   or no such user in the store), -1 the store failed */
static int64_t mw_user_scope(struct mw_plugin_user *muser, const char *username, mw_error *err)
{
	struct mw_user u;
	int64_t id;
	int ret;
	if (!muser->cls_set.per_user)
		return 0;
	if (muser->user_scope > 0 && strcmp(username, muser->username) == 0)
		return muser->user_scope;
	ret = mw_store_user_get(mw_user_store(muser), username, &u, err);
	if (ret == MW_STORE_NOTFOUND)
		return 0;
	if (ret != MW_STORE_OK)
		return -1;
	id = u.id;
	mw_user_clear(&u);
	if (strcmp(username, muser->username) == 0)
		muser->user_scope = id;
	return id;
}

/* mw_expire_after_learn - the automatic expiry of a model just taught, when it is due */
static void mw_expire_after_learn(struct mw_plugin_user *muser, int64_t scope)
{
	struct mw_spam_expire_result x;
	mw_error err = {""};
	int ret = mw_classifier_expire_auto(mw_user_store(muser), scope, &muser->cls_set, &x, &err);
	if (ret < 0)
		e_warning(muser->user->event, "mailwarden: token expiry of model %lld: %s",
		          (long long)scope, err.msg);
	else if (ret > 0 && x.by_age + x.by_size > 0)
		e_info(muser->user->event,
		       "mailwarden: expired %lld of %lld tokens of model %lld (%lld by age)",
		       (long long)(x.by_age + x.by_size), (long long)x.tokens_before,
		       (long long)scope, (long long)x.by_age);
}

/* mw_apply - learn one prepared event in the store (the user's model and/or the global
   one) and record its training_events row: 0 done (learned now or before), -1 the store
   failed (err) */
static int mw_apply(struct mw_plugin_user *muser, const struct mw_learn_item *it, mw_error *err)
{
	enum mw_training_verdict v = it->spam ? MW_TRAINING_SPAM : MW_TRAINING_HAM;
	mw_classifier *c = mw_learner(muser, err);
	mw_error terr = {""};
	int64_t scope;
	bool global;
	int ret = 1, r;

	if (c == NULL)
		return -1;
	scope = mw_user_scope(muser, it->username, err);
	if (scope < 0)
		return -1;
	global = scope == 0 || muser->cls_set.learn_global;
	if (scope > 0) {
		r = mw_classifier_learn_tokens_in(c, scope, it->hash, it->count, it->digest,
		                                  it->spam, err);
		if (r < 0)
			return -1;
		ret = r;
	}
	if (global) {
		r = mw_classifier_learn_tokens_in(c, 0, it->hash, it->count, it->digest, it->spam,
		                                  err);
		if (r < 0)
			return -1;
		ret = r == 0 ? 0 : ret;
	}
	if (scope > 0)
		mw_expire_after_learn(muser, scope);
	if (global)
		mw_expire_after_learn(muser, 0);
	if (ret > 0) {
		e_info(muser->user->event, "mailwarden: %s msgid=%s already learned for %s",
		       mw_training_verdict_name(v), str_sanitize(it->message_id, 120),
		       str_sanitize(it->username, 80));
		return 0;
	}
	/* the row says who taught what; the learn itself is already committed */
	ret = mw_store_training_add(mw_user_store(muser), it->username, it->message_id, v, &terr);
	if (ret == MW_STORE_ERROR && strstr(terr.msg, "UTF-8") != NULL)
		ret = mw_store_training_add(mw_user_store(muser), it->username, "", v, &terr);
	if (ret != MW_STORE_OK)
		e_warning(muser->user->event, "mailwarden: training event row not recorded: %s",
		          terr.msg);
	e_info(muser->user->event, "mailwarden: learned %s msgid=%s tokens=%zu",
	       mw_training_verdict_name(v), str_sanitize(it->message_id, 120), it->count);
	return 0;
}

/* mw_flush_cb - one spooled event into the store */
static int mw_flush_cb(void *ctx, const struct mw_learn_item *it, mw_error *err)
{
	return mw_apply(ctx, it, err);
}

static void mw_spool_retry(struct mw_plugin_user *muser);

/* mw_retry_timer - the spool retry timer (Dovecot's timeout_add type-checks the callback
   with a construct -Wvla refuses) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wvla"
static struct timeout *mw_retry_timer(struct mw_plugin_user *muser)
{
	return timeout_add(muser->spool_retry_secs * 1000, mw_spool_retry, muser);
}
#pragma GCC diagnostic pop

/* mw_spool_flush - learn what the spool holds: 0 it is empty now, -1 not (logged) */
static int mw_spool_flush(struct mw_plugin_user *muser)
{
	mw_error err = {""};
	unsigned int done = 0, bad = 0;
	int ret;

	if (muser->spool_dir == NULL)
		return 0;
	ret = mw_learnspool_flush(muser->spool_dir, mw_flush_cb, muser, &done, &bad, &err);
	if (done > 0)
		e_info(muser->user->event, "mailwarden: learned %u spooled event(s) from %s", done,
		       muser->spool_dir);
	if (bad > 0)
		e_error(muser->user->event,
		        "mailwarden: %u file(s) in %s are not learning events: renamed *.bad", bad,
		        muser->spool_dir);
	if (ret == 0) {
		if (muser->spool_to != NULL)
			timeout_remove(&muser->spool_to);
		return 0;
	}
	if (ret < 0)
		e_error(muser->user->event, "mailwarden: %s", err.msg);
	else
		e_warning(muser->user->event,
		          "mailwarden: spooled learning events wait in %s: %s (retry in %us)",
		          muser->spool_dir, err.msg, muser->spool_retry_secs);
	if (muser->spool_to == NULL && ret > 0)
		muser->spool_to = mw_retry_timer(muser);
	return -1;
}

/* mw_spool_retry - the timer: try the spool again while the session lasts */
static void mw_spool_retry(struct mw_plugin_user *muser)
{
	T_BEGIN
	{
		(void)mw_spool_flush(muser);
	}
	T_END;
}

/* mw_spool_startup - after login: learn what earlier sessions left in the spool */
static void mw_spool_startup(struct mw_plugin_user *muser)
{
	timeout_remove(&muser->startup_to);
	mw_spool_retry(muser);
}

/* mw_startup_timer - mw_spool_startup at the next turn of the ioloop */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wvla"
static struct timeout *mw_startup_timer(struct mw_plugin_user *muser)
{
	return timeout_add_short(0, mw_spool_startup, muser);
}
#pragma GCC diagnostic pop

/* mw_read_head - the first max bytes of the message (data stack); NULL on a read error */
static const buffer_t *mw_read_head(struct mw_plugin_user *muser, struct mail *mail, size_t max)
{
	struct istream *input;
	buffer_t *buf;
	const unsigned char *data;
	size_t size;
	int ret;

	if (mail_get_stream(mail, NULL, NULL, &input) < 0) {
		e_error(muser->user->event, "mailwarden: reading the message to learn: %s",
		        mailbox_get_last_internal_error(mail->box, NULL));
		return NULL;
	}
	buf = t_buffer_create(8192);
	i_stream_seek(input, 0);
	while (buf->used < max && (ret = i_stream_read_more(input, &data, &size)) > 0) {
		size_t n = I_MIN(size, max - buf->used);
		buffer_append(buf, data, n);
		i_stream_skip(input, n);
	}
	if (input->stream_errno != 0) {
		e_error(muser->user->event, "mailwarden: reading the message to learn: %s",
		        i_stream_get_error(input));
		return NULL;
	}
	return buf;
}

/* mw_record - learn the message's content as spam or ham for the user: prepared (tokens
   and per-user digest) here, applied to the store at once, spooled when the store fails;
   failures are logged, never returned (data stack) */
static void mw_record(struct mw_plugin_user *muser, struct mail *mail, enum mw_training_verdict v)
{
	const char *msgid = NULL;
	const buffer_t *head;
	struct mw_learn_item it;
	struct mw_tokens tokens;
	mw_error err = {""};

	if (muser->username[0] == '\0')
		return;
	if (mail_get_first_header(mail, "Message-ID", &msgid) <= 0 || msgid == NULL)
		msgid = "";
	msgid = mw_unfold(msgid);
	if (strlen(msgid) > MW_MESSAGE_ID_MAX)
		msgid = ""; /* refused, not cut: an over-long id identifies nothing */
	head = mw_read_head(muser, mail, muser->learn_max_size);
	if (head == NULL) {
		e_error(muser->user->event, "mailwarden: %s training event for %s lost",
		        mw_training_verdict_name(v), str_sanitize(msgid, 120));
		return;
	}
	memset(&it, 0, sizeof(it));
	mw_tokens_init(&tokens, false);
	if (mw_classifier_prepare(muser->token_flags, head->data, head->used, muser->username,
	                          &tokens, it.digest, &err) < 0) {
		e_warning(muser->user->event, "mailwarden: %s msgid=%s not learned: %s",
		          mw_training_verdict_name(v), str_sanitize(msgid, 120), err.msg);
		mw_tokens_free(&tokens);
		return;
	}
	i_assert(strlen(muser->username) < sizeof(it.username));
	i_strocpy(it.username, muser->username, sizeof(it.username));
	i_strocpy(it.message_id, msgid, sizeof(it.message_id));
	it.spam = v == MW_TRAINING_SPAM;
	it.hash = tokens.hash;
	it.count = tokens.count;
	/* while a retry is pending the store is known to fail: straight into the spool, so an
	   outage costs the session one store timeout per retry, not one per message; else
	   the spool first, so an older judgement never lands after this one */
	if (muser->spool_to == NULL && mw_spool_flush(muser) == 0 &&
	    mw_apply(muser, &it, &err) == 0) {
		mw_tokens_free(&tokens);
		return;
	}
	if (err.msg[0] == '\0')
		mw_error_set(&err, "the store failed earlier and older events wait in the spool");
	if (muser->spool_dir == NULL) {
		e_error(muser->user->event,
		        "mailwarden: %s training event for %s lost: %s (no mailwarden_learn_spool)",
		        mw_training_verdict_name(v), str_sanitize(msgid, 120), err.msg);
	} else {
		mw_error serr = {""};
		if (mw_learnspool_write(muser->spool_dir, muser->spool_max, &it, &serr) < 0) {
			e_error(muser->user->event,
			        "mailwarden: %s training event for %s lost: %s; spooling: %s",
			        mw_training_verdict_name(v), str_sanitize(msgid, 120), err.msg,
			        serr.msg);
		} else {
			e_warning(muser->user->event,
			          "mailwarden: %s training event for %s spooled in %s: %s",
			          mw_training_verdict_name(v), str_sanitize(msgid, 120),
			          muser->spool_dir, err.msg);
			if (muser->spool_to == NULL)
				muser->spool_to = mw_retry_timer(muser);
		}
	}
	mw_tokens_free(&tokens);
}

/* mw_is_delivery - the box was opened by lib-lda for a delivery */
static bool mw_is_delivery(struct mailbox *box)
{
	return (box->flags & MAILBOX_FLAG_POST_SESSION) != 0;
}

/* mw_box_is_junk - the source of a copy is the user's Junk mailbox */
static bool mw_box_is_junk(struct mw_plugin_user *muser, struct mailbox *box)
{
	return box != NULL && box->storage->user == muser->user &&
	       strcmp(box->vname, muser->junk_box) == 0;
}

/* ---- mailbox overrides ------------------------------------------------------------------ */

/* mw_copy - delivery: add the decision's keywords; otherwise learn from moves into and
   out of Junk */
static int mw_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox *box = ctx->transaction->box;
	struct mw_mailbox *mbox = MW_BOX_CONTEXT(box);
	struct mw_plugin_user *muser = MW_USER_CONTEXT(box->storage->user);
	int verdict = -1, ret;

	if (muser == NULL)
		return mbox->module_ctx.super.copy(ctx, mail);
	if (mw_is_delivery(box)) {
		T_BEGIN
		{
			const char *const *kws;
			if (muser->delivery_keywords != NULL && muser->delivery_mail == mail) {
				/* decided by mw_deliver_mail for this very message */
				kws = muser->delivery_keywords;
				muser->delivery_keywords = NULL;
				muser->delivery_mail = NULL;
			} else {
				/* no deliver_mail hook call before (or a second save of the
				   message, e.g. a Sieve fileinto plus keep): decide here */
				struct mw_decision d;
				mw_decide(muser, mail, &d);
				array_append_zero(&d.keywords);
				kws = array_front(&d.keywords);
			}
			if (kws[0] != NULL)
				mw_save_keywords(ctx, kws, NULL);
		}
		T_END;
		return mbox->module_ctx.super.copy(ctx, mail);
	}
	if (muser->learn) {
		bool from_junk = mw_box_is_junk(muser, mail->box);
		T_BEGIN
		{
			if (mbox->is_junk && !from_junk) {
				verdict = MW_TRAINING_SPAM;
				mw_save_keywords(ctx, mw_strv2(muser->kw_spam, NULL),
				                 mw_strv2(muser->kw_ham, NULL));
			} else if (from_junk && !mbox->is_junk && !mbox->is_trash) {
				verdict = MW_TRAINING_HAM;
				mw_save_keywords(ctx, mw_strv2(muser->kw_ham, NULL),
				                 mw_strv2(muser->kw_spam, NULL));
			}
		}
		T_END;
	}
	ret = mbox->module_ctx.super.copy(ctx, mail);
	if (ret == 0 && verdict >= 0) {
		T_BEGIN
		{
			mw_record(muser, mail, (enum mw_training_verdict)verdict);
		}
		T_END;
	}
	return ret;
}

/* mw_is_append - a save that is an APPEND by the user: not a delivery, and not a copy
   done through saving (copying_or_moving; mailbox_save_begin sets "saving" for both) */
static bool mw_is_append(struct mail_save_context *ctx)
{
	return !ctx->copying_or_moving && !mw_is_delivery(ctx->transaction->box);
}

/* mw_save_begin - an APPEND into Junk gets $Junk (and loses $NotJunk) */
static int mw_save_begin(struct mail_save_context *ctx, struct istream *input)
{
	struct mailbox *box = ctx->transaction->box;
	struct mw_mailbox *mbox = MW_BOX_CONTEXT(box);
	struct mw_plugin_user *muser = MW_USER_CONTEXT(box->storage->user);

	if (muser != NULL && muser->learn && mbox->is_junk && mw_is_append(ctx)) {
		T_BEGIN
		{
			mw_save_keywords(ctx, mw_strv2(muser->kw_spam, NULL),
			                 mw_strv2(muser->kw_ham, NULL));
		}
		T_END;
	}
	return mbox->module_ctx.super.save_begin(ctx, input);
}

/* mw_save_finish - an APPEND into Junk records spam */
static int mw_save_finish(struct mail_save_context *ctx)
{
	struct mailbox *box = ctx->transaction->box;
	struct mw_mailbox *mbox = MW_BOX_CONTEXT(box);
	struct mw_plugin_user *muser = MW_USER_CONTEXT(box->storage->user);
	bool learn = muser != NULL && muser->learn && mbox->is_junk && mw_is_append(ctx);
	struct mail *dest = ctx->dest_mail;

	if (mbox->module_ctx.super.save_finish(ctx) < 0)
		return -1;
	if (learn && dest != NULL) {
		T_BEGIN
		{
			mw_record(muser, dest, MW_TRAINING_SPAM);
		}
		T_END;
	}
	return 0;
}

/* mw_mailbox_allocated - hook the mailbox methods we need */
static void mw_mailbox_allocated(struct mailbox *box)
{
	struct mw_plugin_user *muser = MW_USER_CONTEXT(box->storage->user);
	struct mailbox_vfuncs *v = box->vlast;
	struct mw_mailbox *mbox;

	/* a delivery session's other mailboxes (lmtp's raw mailbox of the message, any the
	   delivery only looks at) see no copy, APPEND or keyword change of a user: hooking them
	   costs Dovecot ~1.2k instructions each per delivery (hook_build_update) for nothing */
	if (muser == NULL || (muser->delivery_session && !mw_is_delivery(box)))
		return;
	mbox = p_new(box->pool, struct mw_mailbox, 1);
	mbox->module_ctx.super = *v;
	box->vlast = &mbox->module_ctx.super;
	mbox->is_junk = strcmp(box->vname, muser->junk_box) == 0;
	mbox->is_trash = strcmp(box->vname, muser->trash_box) == 0 ||
	                 (box->set != NULL && box->set->special_use != NULL &&
	                  strstr(box->set->special_use, "\\Trash") != NULL);
	v->copy = mw_copy;
	v->save_begin = mw_save_begin;
	v->save_finish = mw_save_finish;
	MODULE_CONTEXT_SET(box, mw_storage_module, mbox);
}

/* ---- keyword changes by the user -------------------------------------------------------- */

/* mw_kw_names_has - the keywords hold name (a mail_keywords of box) */
static bool mw_kw_set_has(struct mailbox *box, const struct mail_keywords *kw, const char *name)
{
	const ARRAY_TYPE(keywords) *names = mail_index_get_keywords(box->index);
	unsigned int i;
	if (kw == NULL || name == NULL)
		return false;
	for (i = 0; i < kw->count; i++) {
		const char *const *n = array_idx(names, kw->idx[i]);
		if (strcasecmp(*n, name) == 0)
			return true;
	}
	return false;
}

/* mw_mail_has_kw - the message already carries name */
static bool mw_mail_has_kw(struct mail *mail, const char *name)
{
	const char *const *k;
	for (k = mail_get_keywords(mail); *k != NULL; k++)
		if (strcasecmp(*k, name) == 0)
			return true;
	return false;
}

/* mw_update_keywords - $Junk / $NotJunk newly set by the user records spam / ham */
static void mw_update_keywords(struct mail *_mail, enum modify_type modify_type,
                               struct mail_keywords *keywords)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MW_MAIL_CONTEXT(mail);
	struct mw_plugin_user *muser = MW_USER_CONTEXT(_mail->box->storage->user);
	int verdict = -1;

	if (muser != NULL && muser->learn && modify_type != MODIFY_REMOVE &&
	    !mw_is_delivery(_mail->box)) {
		if (muser->kw_spam != NULL && mw_kw_set_has(_mail->box, keywords, muser->kw_spam) &&
		    !mw_mail_has_kw(_mail, muser->kw_spam))
			verdict = MW_TRAINING_SPAM;
		else if (muser->kw_ham != NULL &&
		         mw_kw_set_has(_mail->box, keywords, muser->kw_ham) &&
		         !mw_mail_has_kw(_mail, muser->kw_ham))
			verdict = MW_TRAINING_HAM;
	}
	mmail->super.update_keywords(_mail, modify_type, keywords);
	if (verdict >= 0) {
		T_BEGIN
		{
			mw_record(muser, _mail, (enum mw_training_verdict)verdict);
		}
		T_END;
	}
}

/* mw_mail_allocated - hook update_keywords on every mail of a plugin user */
static void mw_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	struct mw_plugin_user *muser = MW_USER_CONTEXT(_mail->box->storage->user);
	struct mw_mail *mm;

	/* keywords change by a user's command; a delivery session runs none */
	if (muser == NULL || muser->delivery_session)
		return;
	mm = p_new(mail->pool, struct mw_mail, 1);
	mm->module_ctx.super = *v;
	mail->vlast = &mm->module_ctx.super;
	v->update_keywords = mw_update_keywords;
	MODULE_CONTEXT_SET_SELF(mail, mw_mail_module, &mm->module_ctx);
}

/* ---- the mail user ------------------------------------------------------------------------ */

/* mw_user_deinit - close the store with the user */
static void mw_user_deinit(struct mail_user *user)
{
	struct mw_plugin_user *muser = MW_USER_CONTEXT(user);
	if (muser->startup_to != NULL)
		timeout_remove(&muser->startup_to);
	if (muser->spool_to != NULL) {
		/* one last try with what the session could not learn */
		timeout_remove(&muser->spool_to);
		T_BEGIN
		{
			(void)mw_spool_flush(muser);
		}
		T_END;
		if (muser->spool_to != NULL)
			timeout_remove(&muser->spool_to);
	}
	mw_classifier_close(&muser->learner);
	mw_store_close(&muser->store);
	muser->module_ctx.super.deinit(user);
}

/* mw_learn_settings - the learning settings; the spool defaults to HOME/mailwarden-learn */
static void mw_learn_settings(struct mail_user *user, struct mw_plugin_user *muser)
{
	struct mw_classifier_settings cs;
	const char *v, *home = NULL;
	struct stat st;

	mw_classifier_settings_default(&cs);
	muser->token_flags = cs.token_flags;
	muser->learn_max_size = (size_t)mw_setting_number(user, MWP_LEARN_MAX_SIZE);
	muser->spool_max = (unsigned int)mw_setting_number(user, MWP_LEARN_SPOOL_MAX);
	muser->spool_retry_secs = (unsigned int)mw_setting_number(user, MWP_LEARN_RETRY);
	/* unset: under the home directory; set but empty: no spool */
	v = mail_user_plugin_getenv(user, mw_plugin_keys[MWP_LEARN_SPOOL].name);
	if (v == NULL) {
		if (mail_user_get_home(user, &home) > 0 && home != NULL && *home != '\0')
			v = p_strconcat(user->pool, home, "/mailwarden-learn", NULL);
	}
	muser->spool_dir = v != NULL && *v != '\0' ? v : NULL;
	/* a session that is not a delivery learns what earlier ones left behind, after login */
	if (muser->learn && muser->spool_dir != NULL && current_ioloop != NULL &&
	    user->service != NULL && !muser->delivery_session && stat(muser->spool_dir, &st) == 0)
		muser->startup_to = mw_startup_timer(muser);
}

/* mw_mail_user_created - read the settings once per user */
static void mw_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct mw_plugin_user *muser;
	mw_error err;

	err.msg[0] = '\0';
	muser = p_new(user->pool, struct mw_plugin_user, 1);
	muser->module_ctx.super = *v;
	user->vlast = &muser->module_ctx.super;
	v->deinit = mw_user_deinit;
	muser->user = user;

	/* names and defaults: lib/mw-plugin-keys.def */
	muser->config_path = mw_setting(user, MWP_CONFIG);
	muser->store_url = mw_setting(user, MWP_STORE);
	if (*muser->store_url == '\0')
		muser->store_url = NULL;
	muser->authserv_id = mw_setting(user, MWP_AUTHSERV_ID);
	if (*muser->authserv_id == '\0')
		muser->authserv_id = NULL;
	muser->junk_box = mw_setting(user, MWP_SPAM_MAILBOX);
	muser->trash_box = mw_setting(user, MWP_TRASH_MAILBOX);
	muser->phishing_tests = mw_setting(user, MWP_PHISHING_TESTS);
	muser->kw_spam = mw_setting_keyword(user, MWP_KEYWORD_SPAM);
	muser->kw_ham = mw_setting_keyword(user, MWP_KEYWORD_HAM);
	muser->kw_phishing = mw_setting_keyword(user, MWP_KEYWORD_PHISHING);
	muser->kw_virus = mw_setting_keyword(user, MWP_KEYWORD_VIRUS);
	muser->kw_dkim_fail = mw_setting_keyword(user, MWP_KEYWORD_DKIM_FAIL);
	muser->kw_dmarc_fail = mw_setting_keyword(user, MWP_KEYWORD_DMARC_FAIL);
	muser->kw_spf_fail = mw_setting_keyword(user, MWP_KEYWORD_SPF_FAIL);
	muser->delivery_session = user->service != NULL && (strcmp(user->service, "lmtp") == 0 ||
	                                                    strcmp(user->service, "lda") == 0);
	muser->file_spam = mw_setting_number(user, MWP_FILE_SPAM) != 0;
	muser->learn = mw_setting_number(user, MWP_LEARN) != 0;
	muser->cache_ttl = (unsigned int)mw_setting_number(user, MWP_RULES_CACHE_TTL);
	muser->rules_text_max = (size_t)mw_setting_number(user, MWP_RULES_TEXT_MAX);
	muser->rules_budget = (uint64_t)mw_setting_number(user, MWP_RULES_BUDGET);
	if (mw_store_username_normalize(user->username, muser->username, sizeof(muser->username),
	                                &err) < 0)
		muser->username[0] = '\0';
	mw_classifier_settings_default(&muser->cls_set);
	mw_learn_settings(user, muser);
	MODULE_CONTEXT_SET(user, mw_user_module, muser);
}

/* ---- the deliver_mail hook: which mailbox ------------------------------------------------- */

/* mw_deliver_mail - point the delivery at Junk (spam) or a rule's mailbox */
static int mw_deliver_mail(struct mail_deliver_context *ctx, struct mail_storage **storage_r)
{
	struct mw_plugin_user *muser = MW_USER_CONTEXT(ctx->rcpt_user);

	if (muser != NULL) {
		T_BEGIN
		{
			struct mw_decision d;
			mw_decide(muser, ctx->src_mail, &d);
			array_append_zero(&d.keywords);
			muser->delivery_mail = ctx->src_mail;
			muser->delivery_keywords =
			    p_strarray_dup(muser->user->pool, array_front(&d.keywords));
			if (d.mailbox != NULL &&
			    strcmp(d.mailbox, ctx->rcpt_default_mailbox) != 0) {
				e_debug(muser->user->event, "mailwarden: delivering into %s",
				        str_sanitize(d.mailbox, 80));
				ctx->rcpt_default_mailbox = p_strdup(ctx->pool, d.mailbox);
			}
		}
		T_END;
	}
	if (mw_next_deliver_mail != NULL)
		return mw_next_deliver_mail(ctx, storage_r);
	/* -1 without saving: lib-lda saves into rcpt_default_mailbox, then INBOX */
	return -1;
}

static struct mail_storage_hooks mw_mail_storage_hooks = {
    .mail_user_created = mw_mail_user_created,
    .mailbox_allocated = mw_mailbox_allocated,
    .mail_allocated = mw_mail_allocated,
};

/* mailwarden_plugin_init - register the storage hooks (and the delivery hook in lmtp/lda) */
void mailwarden_plugin_init(struct module *module)
{
	void *sym;
	mail_storage_hooks_add(module, &mw_mail_storage_hooks);
	/* lib-lda is only in lmtp and dovecot-lda: look it up instead of linking it, so the
	   imap process does not need it */
	sym = dlsym(RTLD_DEFAULT, "mail_deliver_hook_set");
	if (sym != NULL) {
		memcpy(&mw_deliver_hook_set, &sym, sizeof(sym));
		mw_next_deliver_mail = mw_deliver_hook_set(mw_deliver_mail);
	}
	mw_dedupe_init(); /* after ours: a re-delivery is skipped before it is decided */
}

/* mailwarden_plugin_deinit - unregister and free the rule cache and the keyword memo */
void mailwarden_plugin_deinit(void)
{
	size_t i;
	mw_dedupe_deinit();
	if (mw_deliver_hook_set != NULL) {
		(void)mw_deliver_hook_set(mw_next_deliver_mail);
		mw_deliver_hook_set = NULL;
	}
	mail_storage_hooks_remove(&mw_mail_storage_hooks);
	for (i = 0; i < MW_RULE_CACHE_SIZE; i++)
		mw_rule_cache_clear(&mw_rule_cache[i]);
	for (i = 0; i < MWP__COUNT; i++)
		i_free(mw_valid_keyword[i]);
}
