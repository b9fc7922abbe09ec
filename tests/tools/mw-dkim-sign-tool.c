/* mw-dkim-sign-tool.c - signs one raw message file with lib/mw-dkim-sign, as the milter does,
 * and prints the signed message (the DKIM-Signature field first, then the message as read).
 *
 * Usage: mw-dkim-sign-tool [-c CONFIG] [--key-dir DIR] [--key-file FILE --selector S]
 *          [--domain D] [--headers LIST] [--chunk N] MESSAGE-FILE
 *        mw-dkim-sign-tool --verify KEY-LIST MESSAGE-FILE
 *
 * --verify checks the message's DKIM signature with libopendkim instead (the second
 * verifier of the tests besides python3-dkim), its key records read from KEY-LIST (lines
 * "SELECTOR._domainkey.DOMAIN v=DKIM1; k=rsa; p=...", libopendkim's DKIM_QUERY_FILE):
 * exit 0 and "pass" when it verifies, 4 and libopendkim's reason when it does not.
 *
 * Key: with --key-file, that PEM file (mode 0600) for --domain (default: the header-From
 * domain) and --selector; otherwise mw_dkim_key_lookup for the header-From domain (or
 * --domain): the store's active key (store and master key from CONFIG) and then the key
 * directory (--key-dir, else dkim_key_dir from CONFIG). The message is split into header
 * fields (continuation lines kept in the value) and the body, fed to the signer in chunks
 * of N bytes (default 65536). The signature's folds use the message's line end (CRLF when
 * its first line ends so). Exit status: 0 signed, 1 error (stderr says why), 2 usage,
 * 3 no key for the domain.
 */
#include "mw-build.h"
#include "mw-addr.h"
#include "mw-config.h"
#include "mw-dkim-sign.h"
#include "../unit/mw-test-dkim.h"

#include <opendkim/dkim.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE (64 * 1024 * 1024)

/* read_file - the whole of path (at most MAX_MESSAGE bytes) */
static int read_file(const char *path, mw_str *out)
{
	FILE *f = fopen(path, "rb");
	char buf[65536];
	size_t n;
	if (f == NULL)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (mw_str_append(out, buf, n) < 0) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/* from_domain - the domain of the first address of the first From field */
static int from_domain(const char *msg, size_t hdr_end, char *out, size_t size)
{
	size_t i = 0, start, end;
	struct mw_addr_list list;
	mw_error err = {""};
	int ret = -1;
	while (i < hdr_end) {
		size_t eol = i;
		while (eol < hdr_end && msg[eol] != '\n')
			eol++;
		if (mw_ascii_strncasecmp(msg + i, "From:", 5) == 0) {
			start = i + 5;
			end = eol;
			/* take in the continuation lines */
			while (end + 1 < hdr_end && (msg[end + 1] == ' ' || msg[end + 1] == '\t')) {
				end++;
				while (end < hdr_end && msg[end] != '\n')
					end++;
			}
			if (end > start && msg[end - 1] == '\r')
				end--;
			if (mw_addr_parse_header(msg + start, end - start, &list, &err) < 0) {
				fprintf(stderr, "mw-dkim-sign-tool: From: %s\n", err.msg);
				return -1;
			}
			if (list.count > 0 && mw_strlcpy(out, list.addrs[0].domain, size) == 0)
				ret = 0;
			mw_addr_list_free(&list);
			return ret;
		}
		i = eol + 1;
	}
	fprintf(stderr, "mw-dkim-sign-tool: no From field\n");
	return -1;
}

/* feed - hand the message to the signer: fields, end of header, body in chunks */
static int feed(mw_dkim_signer *s, const char *msg, size_t len, size_t chunk, mw_error *err)
{
	size_t i = 0, body;
	mw_str name, value;
	int ret = 0;
	mw_str_init(&name, 0);
	mw_str_init(&value, 0);
	while (i < len && ret == 0) {
		size_t eol = i, colon, vend;
		if (msg[i] == '\n' || (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n'))
			break; /* the blank line */
		while (eol < len && msg[eol] != '\n')
			eol++;
		while (eol + 1 < len && (msg[eol + 1] == ' ' || msg[eol + 1] == '\t')) {
			eol++;
			while (eol < len && msg[eol] != '\n')
				eol++;
		}
		for (colon = i; colon < eol && msg[colon] != ':'; colon++)
			;
		if (colon == eol) {
			mw_error_set(err, "header line without a colon");
			ret = -1;
			break;
		}
		vend = eol;
		if (vend > colon + 1 && msg[vend - 1] == '\r')
			vend--;
		mw_str_reset(&name);
		mw_str_reset(&value);
		(void)mw_str_append(&name, msg + i, colon - i);
		(void)mw_str_append(&value, msg + colon + 1, vend - colon - 1);
		ret = mw_dkim_signer_header(s, mw_str_c(&name), mw_str_c(&value), err);
		i = eol + 1;
	}
	mw_str_free(&name);
	mw_str_free(&value);
	if (ret < 0 || mw_dkim_signer_eoh(s, err) < 0)
		return -1;
	body = i < len ? i + (msg[i] == '\r' ? 2 : 1) : len;
	for (i = body; i < len; i += chunk) {
		size_t n = len - i < chunk ? len - i : chunk;
		if (mw_dkim_signer_body(s, msg + i, n, err) < 0)
			return -1;
	}
	return 0;
}

/* verify_message - libopendkim's verdict on msg with keys from keylist: 0 pass, 4 fail,
   1 error */
static int verify_message(const char *keylist, const char *msg, size_t len)
{
	unsigned int q = DKIM_QUERY_FILE;
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM *d = NULL;
	DKIM_STAT st;
	bool refused;
	int ret = 1;
	if (lib == NULL ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &q, sizeof(q)) != 0 ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)keylist,
	                 strlen(keylist)) != 0 ||
	    (d = dkim_verify(lib, (const unsigned char *)"v", NULL, &st)) == NULL) {
		fprintf(stderr, "mw-dkim-sign-tool: libopendkim could not be set up\n");
		goto out;
	}
	st = mw_test_dkim_verify(d, msg, len, &refused);
	if (refused) {
		fprintf(stderr, "mw-dkim-sign-tool: libopendkim refused a header field\n");
		goto out;
	}
	printf("%s\n", st == DKIM_STAT_OK ? "pass" : dkim_getresultstr(st));
	ret = st == DKIM_STAT_OK ? 0 : 4;
out:
	if (d != NULL)
		(void)dkim_free(d);
	if (lib != NULL)
		dkim_close(lib);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key-dir", required_argument, NULL, 'k'},  {"key-file", required_argument, NULL, 'f'},
	    {"selector", required_argument, NULL, 's'}, {"domain", required_argument, NULL, 'd'},
	    {"headers", required_argument, NULL, 'H'},  {"chunk", required_argument, NULL, 'n'},
	    {"verify", required_argument, NULL, 'V'},   {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *key_dir = NULL, *key_file = NULL, *selector = NULL;
	const char *domain = NULL, *headers = NULL, *verify = NULL;
	char from_dom[MW_ADDR_DOMAIN_MAX + 1];
	size_t chunk = 65536, hdr_end, i;
	mw_config *cfg = NULL;
	mw_store *store = NULL;
	mw_master_key mk;
	bool have_mk = false, crlf;
	mw_dkim_key *key = NULL;
	mw_dkim_signer *signer = NULL;
	mw_error err = {""};
	mw_str msg, sig;
	int c, ret = 1;

	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'k':
			key_dir = optarg;
			break;
		case 'f':
			key_file = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		case 'd':
			domain = optarg;
			break;
		case 'H':
			headers = optarg;
			break;
		case 'V':
			verify = optarg;
			break;
		case 'n':
			chunk = (size_t)strtoul(optarg, NULL, 10);
			if (chunk == 0)
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc || (key_file != NULL && selector == NULL)) {
		fprintf(stderr, "usage: mw-dkim-sign-tool [-c CONFIG] [--key-dir DIR] "
		                "[--key-file FILE --selector S] [--domain D] [--headers LIST] "
		                "[--chunk N] MESSAGE-FILE\n"
		                "       mw-dkim-sign-tool --verify KEY-LIST MESSAGE-FILE\n");
		return 2;
	}
	mw_str_init(&msg, MAX_MESSAGE);
	mw_str_init(&sig, 0);
	if (read_file(argv[optind], &msg) < 0 || msg.len == 0) {
		fprintf(stderr, "mw-dkim-sign-tool: %s: unreadable, empty or too large\n",
		        argv[optind]);
		goto out;
	}
	if (verify != NULL) {
		ret = verify_message(verify, msg.buf, msg.len);
		goto out;
	}
	/* end of the header: the first empty line */
	for (hdr_end = 0, i = 0; i < msg.len; i++) {
		if (msg.buf[i] == '\n' &&
		    (i + 1 >= msg.len || msg.buf[i + 1] == '\n' ||
		     (msg.buf[i + 1] == '\r' && i + 2 < msg.len && msg.buf[i + 2] == '\n')))
			break;
	}
	hdr_end = i < msg.len ? i + 1 : msg.len;
	if (domain == NULL) {
		if (from_domain(msg.buf, hdr_end, from_dom, sizeof(from_dom)) < 0)
			goto out;
		domain = from_dom;
	}
	if (key_file != NULL) {
		if (mw_dkim_key_load_file(key_file, domain, selector, &key, &err) < 0) {
			fprintf(stderr, "mw-dkim-sign-tool: %s\n", err.msg);
			goto out;
		}
	} else {
		if (config != NULL) {
			cfg = mw_config_load(config, false, &err);
			if (cfg == NULL) {
				fprintf(stderr, "mw-dkim-sign-tool: %s\n", err.msg);
				goto out;
			}
			if (key_dir == NULL)
				key_dir = mw_config_str(cfg, MWK_MILTER_DKIM_KEY_DIR);
			if (headers == NULL)
				headers = mw_config_str(cfg, MWK_MILTER_DKIM_HEADERS);
			store = mw_store_open(mw_config_str(cfg, MWK_STORE), 5000, &err);
			if (store == NULL ||
			    mw_secret_key_load(mw_config_str(cfg, MWK_MASTER_KEY), &mk, &err) < 0) {
				fprintf(stderr, "mw-dkim-sign-tool: %s\n", err.msg);
				goto out;
			}
			have_mk = true;
		}
		c = mw_dkim_key_lookup(store, have_mk ? &mk : NULL, key_dir, domain, &key, &err);
		if (c == MW_DKIM_LOOKUP_NONE) {
			fprintf(stderr, "mw-dkim-sign-tool: no DKIM key for %s\n", domain);
			ret = 3;
			goto out;
		}
		if (c != MW_DKIM_LOOKUP_FOUND) {
			fprintf(stderr, "mw-dkim-sign-tool: %s\n", err.msg);
			goto out;
		}
	}
	signer = mw_dkim_signer_new(key, "tool", headers, &err);
	if (signer == NULL || feed(signer, msg.buf, msg.len, chunk, &err) < 0 ||
	    mw_dkim_signer_eom(signer, &sig, &err) < 0) {
		fprintf(stderr, "mw-dkim-sign-tool: %s\n", err.msg);
		goto out;
	}
	crlf = false;
	for (i = 0; i < msg.len; i++)
		if (msg.buf[i] == '\n') {
			crlf = i > 0 && msg.buf[i - 1] == '\r';
			break;
		}
	fputs("DKIM-Signature: ", stdout);
	for (i = 0; i < sig.len; i++) {
		if (sig.buf[i] == '\n' && crlf)
			fputc('\r', stdout);
		fputc(sig.buf[i], stdout);
	}
	fputs(crlf ? "\r\n" : "\n", stdout);
	fwrite(msg.buf, 1, msg.len, stdout);
	ret = fflush(stdout) == 0 ? 0 : 1;
out:
	mw_dkim_signer_free(&signer);
	mw_dkim_key_free(&key);
	if (have_mk)
		mw_secret_key_wipe(&mk);
	mw_store_close(&store);
	if (cfg != NULL)
		mw_config_unref(&cfg);
	mw_str_free(&msg);
	mw_str_free(&sig);
	return ret;
}
