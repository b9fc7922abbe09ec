/*
 * ctl-dkim.c - mailwardenctl dkim: DKIM signing keys in the store.
 *
 * generate makes an RSA key with OpenSSL, import reads a PEM file (refused when it is a
 * symbolic link, a FIFO or device, or readable by group or others); either way the private
 * key is encrypted with the master key (associated data "dkim:DOMAIN:SELECTOR", so a row
 * cannot be moved to another domain or selector) and becomes the domain's active key,
 * the one mailwarden-milter signs with. txt prints the DNS record to publish. Private keys
 * are never printed. Every change is audited (dkim.generate, dkim.import, dkim.activate,
 * dkim.del; target DOMAIN/SELECTOR).
 *
 * Public: ctl_dkim_table.
 *
 * Diagnostics: "mailwardenctl: ..." on stderr; exit codes as in mailwardenctl.c.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-daemon.h"
#include "mw-dkim-sign.h"
#include "mw-secret.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
	mw_error err = { "" };
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

/* dkim_print_txt - print the DNS record of a public key */
static int dkim_print_txt(const char *domain, const char *selector, enum mw_dkim_key_type type,
                          const char *pub)
{
	mw_error err = { "" };
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

/* dkim_store_key - encrypt pem and add it as domain's active key; audit; print the record */
static int dkim_store_key(struct mw_ctl *ctl, const char *action, const char *domain,
                          const char *selector, const mw_str *pem, const char *details)
{
	mw_error err = { "" };
	mw_master_key mk;
	enum mw_dkim_key_type type;
	mw_str pub, enc, ad, target;
	int ret;
	mw_str_init(&pub, 0);
	if (mw_dkim_pem_public(pem->buf, pem->len, &type, &pub, &err) < 0) {
		ctl_err("%s", err.msg);
		mw_str_free(&pub);
		return EXIT_ERROR;
	}
	if (type == MW_DKIM_KEY_ED25519 && !mw_dkim_ed25519_supported()) {
		ctl_err("this libopendkim cannot sign with Ed25519 keys");
		mw_str_free(&pub);
		return EXIT_ERROR;
	}
	if (mw_secret_key_load(mw_config_str(ctl->cfg, MWK_MASTER_KEY), &mk, &err) < 0) {
		ctl_err("master key: %s", err.msg);
		mw_str_free(&pub);
		return EXIT_ERROR;
	}
	mw_str_init(&enc, 0);
	mw_str_init(&ad, 0);
	mw_str_init(&target, 0);
	(void)mw_dkim_key_ad(domain, selector, &ad);
	(void)mw_str_appendf(&target, "%s/%s", domain, selector);
	if (mw_secret_encrypt(&mk, pem->buf, pem->len, mw_str_c(&ad), &enc, &err) < 0) {
		ctl_err("encrypting the key: %s", err.msg);
		ret = EXIT_ERROR;
	} else {
		ret = ctl_store_exit(mw_store_dkim_key_add(ctl->store, domain, selector,
		                                           type == MW_DKIM_KEY_ED25519 ? "ed25519"
		                                                                       : "rsa",
		                                           mw_str_c(&enc), mw_str_c(&pub), true,
		                                           &err),
		                     &err, mw_str_c(&target));
	}
	mw_secret_key_wipe(&mk);
	if (ret == EXIT_OK)
		ret = ctl_audit(ctl, action, mw_str_c(&target), details);
	if (ret == EXIT_OK) {
		fprintf(stderr, "DKIM key %s is now the active signing key of %s. Publish:\n",
		        selector, domain);
		ret = dkim_print_txt(domain, selector, type, mw_str_c(&pub));
	}
	mw_str_free(&pub);
	mw_str_free(&enc);
	mw_str_free(&ad);
	mw_str_free(&target);
	return ret;
}

/* ctl_dkim_parse_generate - dkim generate's arguments (both modes): DOMAIN, --selector
   (default the month, YYYYMM) and --bits; EXIT_OK, an exit code, or -1 after --help */
int ctl_dkim_parse_generate(int argc, char **argv, char *domain, size_t dsize, char *selector,
                            size_t ssize, unsigned *bits_r)
{
	static const struct option opts[] = {
		{ "selector", required_argument, NULL, 's' },
		{ "bits", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char month[16];
	const char *sel_in = NULL;
	int c;

	*bits_r = 2048;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sel_in = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "2048") == 0 || strcmp(optarg, "3072") == 0 ||
			    strcmp(optarg, "4096") == 0) {
				*bits_r = (unsigned)atoi(optarg);
				break;
			}
			ctl_err("--bits: expected 2048, 3072 or 4096, not \"%s\"", optarg);
			return EXIT_USAGE;
		case 'h':
			printf("usage: mailwardenctl %s\n\n%s\n", ctl_current->usage, ctl_current->help);
			return -1;
		default:
			ctl_err("dkim generate: unknown or misplaced option %s", argv[optind - 1]);
			fprintf(stderr, "usage: mailwardenctl %s\n", ctl_current->usage);
			return EXIT_USAGE;
		}
	}
	if (ctl_want_args(ctl_current, argc - optind, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (sel_in == NULL) {
		/* default selector: the month, YYYYMM (rotate by generating next month's) */
		time_t now = (time_t)mw_now();
		struct tm tm;
		if (gmtime_r(&now, &tm) == NULL || strftime(month, sizeof(month), "%Y%m", &tm) == 0) {
			ctl_err("cannot format the default selector");
			return EXIT_ERROR;
		}
		sel_in = month;
	}
	return ctl_dkim_names(argv[optind], sel_in, domain, dsize, selector, ssize);
}

/* cmd_dkim_generate - a new RSA key, the domain's active key from now on */
static int cmd_dkim_generate(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1], details[64];
	unsigned bits;
	mw_error err = { "" };
	mw_str pem, pub;
	int ret;

	ret = ctl_dkim_parse_generate(argc, argv, domain, sizeof(domain), selector, sizeof(selector),
	                              &bits);
	if (ret != EXIT_OK)
		return ret < 0 ? EXIT_OK : ret;
	mw_str_init(&pem, 0);
	mw_str_init(&pub, 0);
	if (mw_dkim_generate_rsa(bits, &pem, &pub, &err) < 0) {
		ctl_err("%s", err.msg);
		ret = EXIT_ERROR;
	} else {
		(void)snprintf(details, sizeof(details), "{\"type\":\"rsa\",\"bits\":%u}", bits);
		ret = dkim_store_key(ctl, "dkim.generate", domain, selector, &pem, details);
	}
	if (pem.buf != NULL)
		mw_memzero(pem.buf, pem.cap);
	mw_str_free(&pem);
	mw_str_free(&pub);
	return ret;
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

/* cmd_dkim_import - store an existing private key as the domain's active key */
static int cmd_dkim_import(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	struct ctl_opts o;
	mw_str pem;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 3, 3) != EXIT_OK)
		return EXIT_USAGE;
	ret = ctl_dkim_names(argv[first], argv[first + 1], domain, sizeof(domain), selector,
	                 sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	mw_str_init(&pem, MW_DKIM_KEY_PEM_MAX);
	ret = read_pem_file(argv[first + 2], &pem);
	if (ret == EXIT_OK)
		ret = dkim_store_key(ctl, "dkim.import", domain, selector, &pem, "");
	if (pem.buf != NULL)
		mw_memzero(pem.buf, pem.cap);
	mw_str_free(&pem);
	return ret;
}

/* cmd_dkim_list - every key: domain, selector, type, state, creation time */
static int cmd_dkim_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct mw_dkim_key_row *rows = NULL;
	mw_error err = { "" };
	struct ctl_opts o;
	size_t n = 0, i;
	char t[32];
	json_t *arr;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;
	ret = mw_store_dkim_key_list(ctl->store, NULL, &rows, &n, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, "dkim list");
	if (o.json) {
		arr = json_array();
		for (i = 0; i < n; i++)
			(void)json_array_append_new(
			    arr, json_pack("{s:s, s:s, s:s, s:b, s:I, s:s}", "domain", rows[i].domain,
			                   "selector", rows[i].selector, "type", rows[i].key_type,
			                   "active", rows[i].active, "created_at",
			                   (json_int_t)rows[i].created_at, "public_key",
			                   rows[i].public_key));
		ctl_json_print(arr);
	} else {
		printf("%-40s %-20s %-8s %-7s %s\n", "DOMAIN", "SELECTOR", "TYPE", "ACTIVE", "CREATED");
		for (i = 0; i < n; i++)
			printf("%-40s %-20s %-8s %-7s %s\n", rows[i].domain, rows[i].selector,
			       rows[i].key_type, rows[i].active ? "yes" : "no",
			       ctl_time(rows[i].created_at, t, sizeof(t)));
	}
	mw_dkim_key_rows_free(rows, n);
	return EXIT_OK;
}

/* cmd_dkim_txt - the DNS record of a key (the active one when no selector is given) */
static int cmd_dkim_txt(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	struct mw_dkim_key_row row;
	mw_error err = { "" };
	struct ctl_opts o;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 1, 2) != EXIT_OK)
		return EXIT_USAGE;
	ret = ctl_dkim_names(argv[first], argc - first == 2 ? argv[first + 1] : NULL, domain,
	                 sizeof(domain), selector, sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	if (argc - first == 2)
		ret = mw_store_dkim_key_get(ctl->store, domain, selector, &row, &err);
	else
		ret = mw_store_dkim_key_get_active(ctl->store, domain, &row, &err);
	if (ret != MW_STORE_OK) {
		ctl_err("%s", err.msg);
		return ret == MW_STORE_NOTFOUND ? EXIT_NOTFOUND : EXIT_ERROR;
	}
	ret = dkim_print_txt(row.domain, row.selector, dkim_type(row.key_type), row.public_key);
	mw_dkim_key_row_clear(&row);
	return ret;
}

/* cmd_dkim_activate - sign with this key from now on */
static int cmd_dkim_activate(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 4];
	mw_error err = { "" };
	struct ctl_opts o;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 2, 2) != EXIT_OK)
		return EXIT_USAGE;
	ret = ctl_dkim_names(argv[first], argv[first + 1], domain, sizeof(domain), selector,
	                 sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	ret = ctl_store_exit(mw_store_dkim_key_set_active(ctl->store, domain, selector, &err), &err,
	                     target);
	if (ret == EXIT_OK)
		ret = ctl_audit(ctl, "dkim.activate", target, "");
	return ret;
}

/* cmd_dkim_del - delete a key (its DNS record may be withdrawn afterwards) */
static int cmd_dkim_del(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DKIM_DOMAIN_MAX + 2], selector[MW_DKIM_SELECTOR_MAX + 1];
	char target[MW_DKIM_DOMAIN_MAX + MW_DKIM_SELECTOR_MAX + 4];
	mw_error err = { "" };
	struct ctl_opts o;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_YES);
	if (ctl_want_args(ctl_current, argc - first, 2, 2) != EXIT_OK)
		return EXIT_USAGE;
	if (!o.yes) {
		ctl_err("dkim del: add --yes to delete the key for good");
		return EXIT_USAGE;
	}
	ret = ctl_dkim_names(argv[first], argv[first + 1], domain, sizeof(domain), selector,
	                 sizeof(selector));
	if (ret != EXIT_OK)
		return ret;
	(void)snprintf(target, sizeof(target), "%s/%s", domain, selector);
	ret = ctl_store_exit(mw_store_dkim_key_delete(ctl->store, domain, selector, &err), &err,
	                     target);
	if (ret == EXIT_OK)
		ret = ctl_audit(ctl, "dkim.del", target, "");
	return ret;
}

static const struct mw_ctl_command dkim_commands[] = {
	{ "dkim", "generate", cmd_dkim_generate, true,
	  "dkim generate DOMAIN [--selector S] [--bits 2048|3072|4096]",
	  "Make a new RSA key (default 2048 bits, selector YYYYMM of today), store it encrypted\n"
	  "with the master key and make it DOMAIN's active signing key. Prints the DNS TXT\n"
	  "record to publish (publish it before mail signed with the key leaves)." },
	{ "dkim", "import", cmd_dkim_import, true, "dkim import DOMAIN SELECTOR PEMFILE",
	  "Store an existing private key (PEM, RSA of 1024+ bits or Ed25519, unencrypted) as\n"
	  "DOMAIN's active signing key; prints its DNS TXT record." },
	{ "dkim", "list", cmd_dkim_list, true, "dkim list [--json]",
	  "List DKIM keys: domain, selector, type, active, created (never private keys)." },
	{ "dkim", "txt", cmd_dkim_txt, true, "dkim txt DOMAIN [SELECTOR]",
	  "Print the DNS TXT record of a key (the domain's active key without SELECTOR)." },
	{ "dkim", "activate", cmd_dkim_activate, true, "dkim activate DOMAIN SELECTOR",
	  "Sign DOMAIN's mail with this key from now on (its other keys become inactive)." },
	{ "dkim", "del", cmd_dkim_del, true, "dkim del DOMAIN SELECTOR --yes",
	  "Delete a key. Deleting the active key leaves DOMAIN unsigned until another key is\n"
	  "activated (or a key file exists)." },
};

const struct mw_ctl_table ctl_dkim_table = { dkim_commands, MW_N_ELEMENTS(dkim_commands) };
