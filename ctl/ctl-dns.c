/* ctl-dns.c - mailwardenctl dns: the DNS records a mail domain should publish, and whether
 * DNS holds them.
 *
 * The records come as one JSON object from ctl->ops->dns_records: built here from the
 * configuration and the store (lib/mw-dnsrec.c) or fetched from the API's
 * GET /domains/{domain}/dns, which builds the same object; this file prints it, so both modes
 * print the same. --check resolves each record (through the resolver of whichever side builds
 * the object) and exits 1 unless every record is ok.
 *
 * Public: cmd_dns.
 * Diagnostics: usage errors exit 2; a configuration that gives no records exits 1 naming
 * the key.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-dnsrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jstr - a string member or "" */
static const char *jstr(json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s != NULL ? s : "";
}

/* print_zone - the records as zone-file lines, the MTA-STS policy as comments */
static void print_zone(json_t *set)
{
	json_t *r;
	size_t i;
	const char *p = jstr(set, "mta_sts_policy"), *nl;
	printf("; %s: records to publish (mailwardenctl dns)\n", jstr(set, "domain"));
	json_array_foreach(json_object_get(set, "records"), i, r) printf("%s\n", jstr(r, "zone"));
	printf("; MTA-STS policy, served as https://mta-sts.%s/.well-known/mta-sts.txt (id %s):\n",
	       jstr(set, "domain"), jstr(set, "mta_sts_id"));
	for (; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			break;
		printf(";   %.*s\n", (int)(nl - p - (nl > p && nl[-1] == '\r')), p);
	}
}

/* print_check - each record with its status and, when not ok, what is published and how it
   differs; returns EXIT_OK only when every record is ok */
static int print_check(json_t *set)
{
	json_t *r;
	size_t i, ok = 0, n = json_array_size(json_object_get(set, "records"));
	json_array_foreach(json_object_get(set, "records"), i, r)
	{
		const char *st = jstr(r, "status");
		printf("%-10s %s\n", st, jstr(r, "zone"));
		if (strcmp(st, "ok") == 0) {
			ok++;
			continue;
		}
		if (json_is_string(json_object_get(r, "published")))
			printf("%-10s published: %s\n", "", jstr(r, "published"));
		if (json_is_string(json_object_get(r, "difference")))
			printf("%-10s %s: %s\n", "",
			       strcmp(st, "error") == 0 ? "reason" : "difference",
			       jstr(r, "difference"));
	}
	printf("%zu of %zu records ok\n", ok, n);
	return ok == n ? EXIT_OK : EXIT_ERROR;
}

/* cmd_dns - dns DOMAIN [--json] [--check] */
int cmd_dns(struct mw_ctl *ctl, int argc, char **argv)
{
	char domain[MW_DNS_NAME_MAX + 1], **args;
	struct ctl_opts o;
	mw_error err = {{0}};
	json_t *set = NULL;
	bool check = false;
	int first, ret, i, n = 0;

	/* --check is this command's own option: taken out before the common ones are parsed */
	args = mw_calloc((size_t)argc + 1, sizeof(*args));
	for (i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "--check") == 0)
			check = true;
		else
			args[n++] = argv[i];
	}
	ret = ctl_parse_opts(ctl_current, n, args, (const int[]){OPT_JSON, 0}, &o, &first);
	if (ret != EXIT_OK || o.help) {
		free(args);
		return ret < 0 ? EXIT_OK : ret;
	}
	if (ctl_want_args(ctl_current, n - first, 1, 1) != EXIT_OK) {
		free(args);
		return EXIT_USAGE;
	}
	if (mw_dnsrec_domain(args[first], domain, sizeof(domain), &err) < 0) {
		ctl_err("dns %s: %s", args[first], err.msg);
		free(args);
		return EXIT_USAGE;
	}
	free(args);
	ret = ctl->ops->dns_records(ctl, domain, check, &set);
	if (ret != EXIT_OK)
		return ret;
	if (o.json) {
		bool ok = !check || json_is_true(json_object_get(set, "ok"));
		ctl_json_print(set);
		return ok ? EXIT_OK : EXIT_ERROR;
	}
	ret = check ? print_check(set) : (print_zone(set), EXIT_OK);
	json_decref(set);
	return ret;
}
