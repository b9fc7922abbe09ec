/*
 * ctl-dkim.c - mailwardenctl dkim: DKIM signing keys in the store.
 *
 * generate makes an RSA key with OpenSSL, import reads a PEM file (refused when it is a
 * symbolic link, a FIFO or device, or readable by group or others); either way the private
 * key is encrypted with the master key (associated data "dkim:DOMAIN:SELECTOR", so a row
 * cannot be moved to another domain or selector) and becomes the domain's active key,
 * the one mailwarden-milter signs with. txt prints the DNS record to publish. Private keys
 * are never printed. Every change is audited (dkim.generate, dkim.import, dkim.activate,
 * dkim.delete; target DOMAIN/SELECTOR). generate, list, txt, activate and del run through
 * ctl->ops (the store or the API); import only where the store is. The TXT record is made
 * here from the public key in both modes.
 *
 * rotate runs the key rotation of lib/mw-dkim-rotate.h (pending -> active -> retiring ->
 * retired) through ctl->ops as well; list shows each key's state and dates.
 *
 * Public: the cmd_dkim_* handlers, ctl_dkim_names, ctl_dkim_parse_generate,
 * ctl_dkim_store_key.
 *
 * Diagnostics: "mailwardenctl: ..." on stderr; exit codes as in mailwardenctl.c.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-daemon.h"
#include "mw-dkim-rotate.h"
#include "mw-dkim-sign.h"
#include "mw-secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ctl_dkim_names - normalise DOMAIN (and SELECTOR when sel_in is not NULL) arguments;
   shared by the store and --api modes */
int ctl_dkim_names(const char *dom_in, const char *sel_in, char *domain, size_t dsize,
                   char *selector, size_t ssize)
{
	mw_error err = {""};
	if (mw_dkim_domain_normalize(dom_in, domain, dsize, &err) < 0 ||
	    (sel_in != NULL && mw_dkim_selector_normalize(sel_in, selector, ssize, &err) < 0)) {
		ctl_err("%s", err.msg);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* dkim_type - the key type named in a row */
static enum mw_dkim_key_type dkim_type(const char *name)
{
	return strcmp(name, "ed25519") == 0 ? MW_DKIM_KEY_ED25519 : MW_DKIM_KEY_RSA;
}

/* dkim_print_txt - print the DNS record of a key (made here, in both modes) */
static int dkim_print_txt(const struct mw_dkim_key_row *k)
{
	const char *domain = k->domain, *selector = k->selector, *pub = k->public_key;
	enum mw_dkim_key_type type = dkim_type(k->key_type);
	mw_error err = {""};
	mw_str out;
	mw_str_init(&out, 0);
	if (mw_dkim_txt_record(domain, selector, type, pub, &out, &err) < 0) {
		mw_str_free(&out);
		ctl_err("%s", err.msg);
		return EXIT_ERROR;
	}
	printf("%s\n", mw_str_c(&out));
	mw_str_free(&out);
	return EXIT_OK;
}

/* ctl_dkim_store_key - encrypt pem and add it as domain's active key; audit (details
   consumed); the new key into key_r (local mode: dkim generate and import) */
int ctl_dkim_store_key(struct mw_ctl *ctl, enum mw_audit_action action, const char *domain,
                       const char *selector, const mw_str *pem, json_t *details,
                       struct mw_dkim_key_row *key_r)
{
	mw_error err = {""};
	mw_master_key mk;
	enum mw_dkim_key_type type;
	mw_str pub, target;
	int ret;
	mw_str_init(&pub, 0);
	if (mw_dkim_pem_public(pem->buf, pem->len, &type, &pub, &err) < 0) {
		ctl_err("%s", err.msg);
		mw_str_free(&pub);
		json_decref(details);
		return EXIT_ERROR;
	}
	if (type == MW_DKIM_KEY_ED25519 && !mw_dkim_ed25519_supported()) {
		ctl_err("this libopendkim cannot sign with Ed25519 keys");
		mw_str_free(&pub);
		json_decref(details);
		return EXIT_ERROR;
	}
	if (mw_secret_key_load(mw_config_str(ctl->cfg, MWK_MASTER_KEY), &mk, &err) < 0) {
		ctl_err("master key: %s", err.msg);
		mw_str_free(&pub);
		json_decref(details);
		return EXIT_ERROR;
	}
	mw_str_init(&target, 0);
	(void)mw_str_appendf(&target, "%s/%s", domain, selector);
	ret = ctl_store_exit(mw_dkim_key_save(ctl->store, &mk, domain, selector,
	                                      type == MW_DKIM_KEY_ED25519 ? "ed25519" : "rsa",
	                                      pem->buf, pem->len, mw_str_c(&pub),
	                                      MW_DKIM_SAVE_ACTIVE, &err),
	                     &err, mw_str_c(&target));
	mw_secret_key_wipe(&mk);
	if (ret == EXIT_OK) {
		json_object_set_new(details, "type",
		                    json_string(type == MW_DKIM_KEY_ED25519 ? "ed25519" : "rsa"));
		ret = ctl_audit(ctl, action, mw_str_c(&target), details);
		details = NULL;
	}
	json_decref(details);
	if (ret == EXIT_OK) {
		memset(key_r, 0, sizeof(*key_r));
		(void)mw_strlcpy(key_r->domain, domain, sizeof(key_r->domain));
		(void)mw_strlcpy(key_r->selector, selector, sizeof(key_r->selector));
		(void)mw_strlcpy(key_r->key_type, type == MW_DKIM_KEY_ED25519 ? "ed25519" : "rsa",
		                 sizeof(key_r->key_type));
		key_r->public_key = mw_strdup(mw_str_c(&pub));
		key_r->created_at = mw_now();
		key_r->active = true;
	}
	mw_str_free(&pub);
	mw_str_free(&target);
	return ret;
}

/* opt_bits - --bits ARG: an RSA size a new key may have; -1 (said) otherwise */
static int opt_bits(const char *arg, unsigned *bits_r)
{
	if (strcmp(arg, "2048") != 0 && strcmp(arg, "3072") != 0 && strcmp(arg, "4096") != 0) {
		ctl_err("--bits: expected " MW_DKIM_RSA_BITS_TEXT ", not \"%s\"", arg);
		return -1;
	}
	*bits_r = (unsigned)atoi(arg);
	return 0;
}

/* ctl_dkim_parse_generate - dkim generate's arguments (both modes): DOMAIN, --selector
   (default the month, YYYYMM) and --bits; EXIT_OK, an exit code, or -1 after --help */
int ctl_dkim_parse_generate(int argc, char **argv, char *domain, size_t dsize, char *selector,
                            size_t ssize, unsigned *bits_r)
{
	static const int allowed[] = {OPT_SELECTOR, OPT_BITS, 0};
	struct ctl_opts o;
	char month[16];
	const char *sel_in;
	int first, ret;

	*bits_r = 2048;
	ret = ctl_parse_opts(ctl_current, argc, argv, allowed, &o, &first);
	if (ret != EXIT_OK)
		return ret;
	if (o.bits != NULL && opt_bits(o.bits, bits_r) < 0)
		return EXIT_USAGE;
	sel_in = o.selector;
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (sel_in == NULL) {
		/* default selector: the month, YYYYMM (rotate by generating next month's) */
		time_t now = (time_t)mw_now();
		struct tm tm;
		if (gmtime_r(&now, &tm) == NULL ||
		    strftime(month, sizeof(month), "%Y%m", &tm) == 0) {
			ctl_err("cannot format the default selector");
			return EXIT_ERROR;
		}
		sel_in = month;
	}
	return ctl_dkim_names(argv[first], sel_in, domain, dsize, selector, ssize);
}

/* dkim_new_key - print what dkim generate and import print about the new key */
static int dkim_new_key(struct mw_dkim_key_row *key)
{
	int ret;
	fprintf(stderr, "DKIM key %s is now the active signing key of %s. Publish:\n",
	        key->selector, key->domain);
	ret = dkim_print_txt(key);
	mw_dkim_key_row_clear(key);
	return ret;
}

/* cmd_dkim_generate - a new RSA key, the domain's active key from now on */
int cmd_dkim_generate(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	struct mw_dkim_key_row key;
	unsigned bits;
	int ret;

	ret = ctl_dkim_parse_generate(argc, argv, domain, sizeof(domain), selector,
	                              sizeof(selector), &bits);
	if (ret != EXIT_OK)
		return ret < 0 ? EXIT_OK : ret;
	ret = ctl->ops->dkim_generate(ctl, domain, selector, bits, &key);
	return ret == EXIT_OK ? dkim_new_key(&key) : ret;
}

/* read_pem_file - a private key file of at most MW_DKIM_KEY_PEM_MAX bytes: not a symbolic
   link, not a FIFO or device (refused at once, never waited on), owned by root or the caller,
   no access for group or others (lib/mw-daemon.c) */
static int read_pem_file(const char *path, mw_str *out)
{
	mw_error err = {{0}};
	if (mw_daemon_read_private_file(path, MW_DKIM_KEY_PEM_MAX, out, &err) < 0) {
		ctl_err("%s", err.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* cmd_dkim_import - store an existing private key as the domain's active key (local mode
   only: the private key stays where the store is) */
int cmd_dkim_import(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	struct mw_dkim_key_row key;
	struct ctl_opts o;
	mw_str pem;
	int first, ret;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 3, 3, -1);
	ret = ctl_dkim_names(argv[first], argv[first + 1], domain, sizeof(domain), selector,
	                     sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	mw_str_init(&pem, MW_DKIM_KEY_PEM_MAX);
	ret = read_pem_file(argv[first + 2], &pem);
	if (ret == EXIT_OK)
		ret = ctl_dkim_store_key(ctl, MW_AUDIT_DKIM_IMPORT, domain, selector, &pem,
		                         json_object(), &key);
	if (pem.buf != NULL)
		mw_memzero(pem.buf, pem.cap);
	mw_str_free(&pem);
	return ret == EXIT_OK ? dkim_new_key(&key) : ret;
}

/* cmd_dkim_list - every key: domain, selector, type, state, dates */
int cmd_dkim_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct mw_dkim_key_row *rows = NULL;
	struct ctl_opts o;
	size_t n = 0, i;
	char t[32], ta[32], tr[32];
	json_t *arr;
	int first, ret;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_JSON);
	ret = ctl->ops->dkim_list(ctl, NULL, &rows, &n);
	if (ret != EXIT_OK)
		return ret;
	if (o.json) {
		arr = json_array();
		for (i = 0; i < n; i++) {
			json_t *k = json_pack("{s:s, s:s, s:s, s:b, s:s, s:I, s:s}", "domain",
			                      rows[i].domain, "selector", rows[i].selector, "type",
			                      rows[i].key_type, "active", rows[i].active, "state",
			                      rows[i].state, "created_at",
			                      (json_int_t)rows[i].created_at, "public_key",
			                      rows[i].public_key != NULL ? rows[i].public_key : "");
			json_object_set_new(k, "activated_at",
			                    rows[i].activated_at != 0
			                        ? json_integer((json_int_t)rows[i].activated_at)
			                        : json_null());
			json_object_set_new(k, "retire_at",
			                    rows[i].retire_at != 0
			                        ? json_integer((json_int_t)rows[i].retire_at)
			                        : json_null());
			(void)json_array_append_new(arr, k);
		}
		ctl_json_print(arr);
	} else {
		printf("%-40s %-20s %-8s %-7s %-9s %-20s %-20s %s\n", "DOMAIN", "SELECTOR", "TYPE",
		       "ACTIVE", "STATE", "CREATED", "ACTIVATED", "RETIRE");
		for (i = 0; i < n; i++)
			printf("%-40s %-20s %-8s %-7s %-9s %-20s %-20s %s\n", rows[i].domain,
			       rows[i].selector, rows[i].key_type, rows[i].active ? "yes" : "no",
			       rows[i].state, ctl_time(rows[i].created_at, t, sizeof(t)),
			       ctl_time(rows[i].activated_at, ta, sizeof(ta)),
			       ctl_time(rows[i].retire_at, tr, sizeof(tr)));
	}
	mw_dkim_key_rows_free(rows, n);
	return EXIT_OK;
}

/* cmd_dkim_rotate - one rotation run: dkim rotate DOMAIN starts one (or checks the one under
   way), dkim rotate --due makes what is due for every domain (a timer runs it) */
int cmd_dkim_rotate(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[4];
	bool refused = false, failed = false;
	unsigned bits = 0;
	json_t *events = NULL, *ev;
	size_t i;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_DUE, OPT_BITS, OPT_JSON);
	if (o.bits != NULL && opt_bits(o.bits, &bits) < 0)
		return EXIT_USAGE;
	if (o.due ? argc - first != 0 : argc - first != 1) {
		ctl_err("dkim rotate: give DOMAIN, or --due alone");
		fprintf(stderr, "usage: mailwardenctl %s\n", ctl_current->usage);
		return EXIT_USAGE;
	}
	if (!o.due) {
		ret = ctl_dkim_names(argv[first], NULL, domain, sizeof(domain), selector,
		                     sizeof(selector));
		if (ret != EXIT_OK)
			return ret;
	}
	ret = ctl->ops->dkim_rotate(ctl, o.due ? NULL : domain, bits, &events);
	if (ret != EXIT_OK)
		return ret;
	json_array_foreach(events, i, ev)
	{
		const char *what = json_string_value(json_object_get(ev, "event"));
		const char *sel = json_string_value(json_object_get(ev, "selector"));
		const char *rec = json_string_value(json_object_get(ev, "record"));
		refused |= what != NULL && strcmp(what, "refused") == 0;
		failed |= what != NULL && strcmp(what, "error") == 0;
		if (o.json)
			continue;
		printf("%s %s %s: %s\n", json_string_value(json_object_get(ev, "domain")),
		       sel != NULL && sel[0] != '\0' ? sel : "-", what != NULL ? what : "?",
		       json_string_value(json_object_get(ev, "message")));
		if (rec != NULL && what != NULL && strcmp(what, "waiting") == 0)
			printf("  publish: %s\n", rec);
	}
	if (o.json)
		ctl_json_print(json_incref(events));
	json_decref(events);
	return failed || refused ? EXIT_ERROR : EXIT_OK;
}

/* cmd_dkim_txt - the DNS record of a key (the active one when no selector is given) */
int cmd_dkim_txt(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	struct mw_dkim_key_row *rows = NULL, *found = NULL;
	struct ctl_opts o;
	size_t n = 0, i;
	bool by_sel;
	int first, ret;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 1, 2, -1);
	by_sel = argc - first == 2;
	ret = ctl_dkim_names(argv[first], by_sel ? argv[first + 1] : NULL, domain, sizeof(domain),
	                     selector, sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	ret = ctl->ops->dkim_list(ctl, domain, &rows, &n);
	if (ret != EXIT_OK)
		return ret;
	for (i = 0; i < n && found == NULL; i++)
		if (strcmp(rows[i].domain, domain) == 0 &&
		    (by_sel ? strcmp(rows[i].selector, selector) == 0
		            : rows[i].active && strcmp(rows[i].state, "retiring") != 0))
			found = &rows[i];
	if (found == NULL) {
		if (by_sel)
			ctl_err("no DKIM key %s for %s", selector, domain);
		else
			ctl_err("no active DKIM key for %s", domain);
		ret = EXIT_NOTFOUND;
	} else
		ret = dkim_print_txt(found);
	mw_dkim_key_rows_free(rows, n);
	return ret;
}

/* dkim_change - dkim activate DOMAIN SELECTOR / dkim del DOMAIN SELECTOR --yes */
static int dkim_change(struct mw_ctl *ctl, int argc, char **argv, bool del)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	struct ctl_opts o;
	int first, ret;

	if (del)
		CTL_ARGS(ctl_current, argc, argv, &o, &first, 2, 2, OPT_YES);
	else
		CTL_ARGS(ctl_current, argc, argv, &o, &first, 2, 2, -1);
	if (del && !o.yes) {
		ctl_err("dkim del: add --yes to delete the key for good");
		return EXIT_USAGE;
	}
	ret = ctl_dkim_names(argv[first], argv[first + 1], domain, sizeof(domain), selector,
	                     sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	return del ? ctl->ops->dkim_delete(ctl, domain, selector)
	           : ctl->ops->dkim_activate(ctl, domain, selector);
}

/* cmd_dkim_activate - sign with this key from now on */
int cmd_dkim_activate(struct mw_ctl *ctl, int argc, char **argv)
{
	return dkim_change(ctl, argc, argv, false);
}

/* cmd_dkim_del - delete a key (its DNS record may be withdrawn afterwards) */
int cmd_dkim_del(struct mw_ctl *ctl, int argc, char **argv)
{
	return dkim_change(ctl, argc, argv, true);
}
