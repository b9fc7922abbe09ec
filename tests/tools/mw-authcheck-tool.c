/* mw-authcheck-tool.c - runs mw-authcheck on one raw message file, exactly as the milter
 * calls it, and prints the Authentication-Results value, the results and the verdict as JSON.
 *
 * Usage: mw-authcheck-tool --client-ip IP [--helo NAME] [--mail-from ADDR]
 *          [--authserv-id ID] [--dns SERVERS] [--timeout MS] [--local-domains LIST]
 *          [--no-enforce] [--quarantine hold|tag] [--trusted] [--authenticated]
 *          [--dns-error-action tempfail|accept] [--dmarc-mode dmarcbis|rfc7489]
 *          [--arc-trusted DOMAINS] [--arc-seal DOMAIN:SELECTOR:KEYFILE --arc-seal-out FILE]
 *          [--org-domain]
 *
 * --arc-seal: after the checks, seal the message as this host would (lib/mw-arc) and write
 * ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results, our Authentication-Results
 * and the message to the --arc-seal-out file.
 *          [--repeat N] MESSAGE-FILE
 *        mw-authcheck-tool ... --stdin
 *
 * The message is split into header fields (with their continuation lines) and the body,
 * like Postfix does for a milter: header values are the bytes after the colon (leading space
 * kept, as with SMFIP_HDR_LEADSPC), the body gets CRLF line ends. Exit status 0 when the
 * checks ran, 2 on usage or input errors.
 *
 * Several messages in one process, as the milter sees them (its caches live across
 * messages): --stdin reads one message file name per line and prints one JSON line per
 * message (flushed, so a test can change the DNS zones between messages); --repeat N
 * checks MESSAGE-FILE N times, prints the last result and, on stderr, the CPU time per
 * message ("cpu_us_per_message=...") and the parsed-key cache counters.
 */
#include "mw-build.h"
#include "mw-authcheck.h"
#include "mw-arc.h"
#include "mw-dkim-sign.h"

#include <getopt.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE (64 * 1024 * 1024)

/* json_str - S as a JSON string */
static void json_str(FILE *out, const char *s)
{
	const unsigned char *p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* read_file - the whole of PATH */
static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	mw_str s;
	char buf[65536];
	size_t n;

	if (f == NULL)
		return NULL;
	mw_str_init(&s, MAX_MESSAGE);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (mw_str_append(&s, buf, n) < 0) {
			fclose(f);
			mw_str_free(&s);
			return NULL;
		}
	}
	fclose(f);
	*len_r = s.len;
	return mw_str_steal(&s);
}

/* usage - print the synopsis */
static int usage(void)
{
	fprintf(
	    stderr,
	    "usage: mw-authcheck-tool --client-ip IP [--helo NAME] [--mail-from ADDR]\n"
	    "  [--authserv-id ID] [--dns SERVERS] [--timeout MS] [--local-domains LIST]\n"
	    "  [--no-enforce] [--quarantine hold|tag] [--trusted] [--authenticated]\n"
	    "  [--dns-error-action tempfail|accept] [--dmarc-mode dmarcbis|rfc7489]\n"
	    "  [--arc-trusted DOMAINS] [--arc-seal DOMAIN:SELECTOR:KEYFILE --arc-seal-out FILE]\n"
	    "  [--org-domain]\n"
	    "  [--repeat N] MESSAGE-FILE | --stdin\n");
	return 2;
}

/* feed - headers and body of MSG into AC */
static int feed(mw_authcheck *ac, const char *msg, size_t len)
{
	size_t i = 0;
	mw_error err;
	mw_str body;

	while (i < len) {
		size_t start = i, colon, end;
		char name[256];

		if (msg[i] == '\n' || (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')) {
			i += msg[i] == '\r' ? 2 : 1;
			break;
		}
		/* a field runs to the LF that is not followed by WSP */
		end = i;
		for (;;) {
			const char *nl = memchr(msg + end, '\n', len - end);

			if (nl == NULL) {
				end = len;
				break;
			}
			end = (size_t)(nl - msg) + 1;
			if (end >= len || (msg[end] != ' ' && msg[end] != '\t'))
				break;
		}
		i = end;
		for (colon = start; colon < end && msg[colon] != ':'; colon++)
			;
		if (colon == end || colon - start >= sizeof(name) || colon == start) {
			fprintf(stderr, "mw-authcheck-tool: malformed header line\n");
			return -1;
		}
		memcpy(name, msg + start, colon - start);
		name[colon - start] = '\0';
		/* strip the field's own line end */
		if (end > colon + 1 && msg[end - 1] == '\n')
			end--;
		if (end > colon + 1 && msg[end - 1] == '\r')
			end--;
		if (mw_authcheck_header(ac, name, msg + colon + 1, end - colon - 1, &err) < 0) {
			fprintf(stderr, "mw-authcheck-tool: header refused: %s\n", err.msg);
			return -1;
		}
	}
	mw_authcheck_eoh(ac);
	mw_str_init(&body, 0);
	for (; i < len; i++) {
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			(void)mw_str_appendc(&body, '\r');
		(void)mw_str_appendc(&body, msg[i]);
		if (body.len >= 65536) {
			mw_authcheck_body(ac, body.buf, body.len);
			mw_str_reset(&body);
		}
	}
	if (body.len > 0)
		mw_authcheck_body(ac, body.buf, body.len);
	mw_str_free(&body);
	return 0;
}

/* print_json - the results and verdict */
static void print_json(const char *ar, const struct mw_auth_results *res,
                       const struct mw_verdict *v)
{
	static const char *const actions[] = {"accept", "quarantine", "reject", "tempfail"};
	size_t i;

	printf("{\"authentication_results\": ");
	json_str(stdout, ar);
	printf(", \"spf\": \"%s\", \"spf_helo\": \"%s\", \"spf_domain\": ",
	       mw_auth_result_str(res->spf), mw_auth_result_str(res->spf_helo));
	json_str(stdout, res->spf_domain);
	printf(", \"dkim\": [");
	for (i = 0; i < res->dkim_count; i++) {
		printf("%s{\"result\": \"%s\", \"d\": ", i > 0 ? ", " : "",
		       mw_auth_result_str(res->dkim[i].result));
		json_str(stdout, res->dkim[i].domain);
		printf(", \"s\": ");
		json_str(stdout, res->dkim[i].selector);
		printf(", \"reason\": ");
		json_str(stdout, res->dkim[i].reason);
		printf("}");
	}
	printf("], \"dmarc\": \"%s\", \"policy\": \"%s\", \"spf_aligned\": %s, "
	       "\"dkim_aligned\": %s, \"from_domain\": ",
	       mw_auth_result_str(res->dmarc), mw_dmarc_policy_str(res->policy),
	       res->dmarc_spf_aligned ? "true" : "false",
	       res->dmarc_dkim_aligned ? "true" : "false");
	json_str(stdout, res->from_domain);
	printf(", \"dmarc_testing\": %s, \"dmarc_policy_tag\": ",
	       res->dmarc_testing ? "true" : "false");
	json_str(stdout, res->dmarc_policy_tag);
	printf(", \"dmarc_record_domain\": ");
	json_str(stdout, res->dmarc_record_domain);
	printf(", \"dmarc_lookups\": %u", res->dmarc_lookups);
	printf(", \"dmarc_org_domain\": ");
	json_str(stdout, res->dmarc_org_domain);
	printf(", \"arc\": \"%s\", \"arc_sets\": %u, \"arc_seal_domain\": ",
	       mw_auth_result_str(res->arc), res->arc_sets);
	json_str(stdout, res->arc_seal_domain);
	printf(", \"arc_reason\": ");
	json_str(stdout, res->arc_reason);
	printf(", \"dmarc_override\": %s", res->dmarc_override ? "true" : "false");
	printf(", \"reason\": ");
	json_str(stdout, res->reason);
	printf(", \"from_problem\": ");
	json_str(stdout, res->from_problem);
	printf(", \"envelope_invalid\": %s, \"envelope_domain\": ",
	       res->envelope_invalid ? "true" : "false");
	json_str(stdout, res->envelope_domain);
	printf(", \"sender_problem\": ");
	json_str(stdout, res->sender_problem);
	printf(", \"sender_domain\": ");
	json_str(stdout, res->sender_domain);
	printf(", \"sender_authenticated\": %s", res->sender_authenticated ? "true" : "false");
	printf(", \"temperror\": %s, \"verdict\": {\"action\": \"%s\", \"code\": \"%s\", "
	       "\"xcode\": \"%s\", \"hold\": %s, \"tag\": %s, \"why\": \"%s\", \"reason\": ",
	       res->temperror ? "true" : "false", actions[v->action], v->smtp_code, v->xcode,
	       v->hold ? "true" : "false", v->tag ? "true" : "false", v->why);
	json_str(stdout, v->reason);
	printf("}}\n");
	fflush(stdout);
}

struct run {
	mw_authcheck_lib *lib;
	struct mw_verdict_policy policy;
	const char *client_ip, *helo, *mail_from, *id;
	mw_dkim_key *seal_key; /* --arc-seal */
	const char *seal_out;
};

/* put_field - "Name: value" with "\n\t" folds as CRLF, to F */
static void put_field(FILE *f, const char *name, const char *value)
{
	const char *p;
	fprintf(f, "%s: ", name);
	for (p = value; *p != '\0'; p++) {
		if (*p == '\n' && (p == value || p[-1] != '\r'))
			fputc('\r', f);
		fputc(*p, f);
	}
	fputs("\r\n", f);
}

/* seal - write our ARC set, our Authentication-Results and MSG to run->seal_out */
static int seal(const struct run *run, mw_authcheck *ac, const struct mw_auth_results *res,
                const char *ar, const char *msg, size_t len)
{
	mw_str as, ams, aar;
	mw_error err = {{0}};
	FILE *f;
	int ret = -1;

	mw_str_init(&as, 0);
	mw_str_init(&ams, 0);
	mw_str_init(&aar, 0);
	if (mw_arc_seal(mw_authcheck_arc(ac), run->seal_key, ar, res->arc, true,
	                (unsigned long)time(NULL), &as, &ams, &aar, &err) < 0) {
		fprintf(stderr, "mw-authcheck-tool: seal: %s\n", err.msg);
	} else if ((f = fopen(run->seal_out, "wb")) != NULL) {
		put_field(f, "ARC-Seal", mw_str_c(&as));
		put_field(f, "ARC-Message-Signature", mw_str_c(&ams));
		put_field(f, "ARC-Authentication-Results", mw_str_c(&aar));
		put_field(f, "Authentication-Results", ar);
		ret = fwrite(msg, 1, len, f) == len ? 0 : -1;
		if (fclose(f) != 0)
			ret = -1;
	}
	mw_str_free(&as);
	mw_str_free(&ams);
	mw_str_free(&aar);
	return ret;
}

/* check_one - run the checks on MSG as the milter does; print the JSON when PRINT */
static int check_one(const struct run *run, const char *msg, size_t len, bool print)
{
	const struct mw_auth_results *res;
	mw_authcheck *ac = mw_authcheck_new(run->lib);
	struct mw_verdict v;
	mw_error err = {{0}};
	mw_str ar;

	/* an envelope that does not parse goes on, as in the milter (the verdict judges it) */
	if (run->mail_from != NULL && mw_authcheck_mail_from(ac, run->mail_from, &err) < 0)
		fprintf(stderr, "mw-authcheck-tool: envelope: %s\n", err.msg);
	if (mw_authcheck_connect(ac, run->client_ip, run->helo, &err) < 0 ||
	    feed(ac, msg, len) < 0) {
		fprintf(stderr, "mw-authcheck-tool: %s\n", err.msg);
		mw_authcheck_free(&ac);
		return -1;
	}
	res = mw_authcheck_eom(ac);
	mw_str_init(&ar, 0);
	if (mw_authcheck_format_ar(run->id, res, &ar, &err) < 0) {
		fprintf(stderr, "mw-authcheck-tool: %s\n", err.msg);
		mw_str_free(&ar);
		mw_authcheck_free(&ac);
		return -1;
	}
	mw_authcheck_verdict(res, &run->policy, &v);
	if (run->seal_key != NULL && seal(run, ac, res, mw_str_c(&ar), msg, len) < 0) {
		mw_str_free(&ar);
		mw_authcheck_free(&ac);
		return -1;
	}
	if (print)
		print_json(mw_str_c(&ar), res, &v);
	mw_str_free(&ar);
	mw_authcheck_free(&ac);
	return 0;
}

/* cpu_us - user + system CPU time of the process so far, in microseconds */
static double cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
	       (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

/* run_stdin - one message file name per line from stdin, one JSON line each */
static int run_stdin(const struct run *run)
{
	char path[4096];

	while (fgets(path, sizeof(path), stdin) != NULL) {
		size_t n = strcspn(path, "\r\n");
		size_t len;
		char *msg;

		path[n] = '\0';
		if (n == 0)
			continue;
		msg = read_file(path, &len);
		if (msg == NULL) {
			fprintf(stderr, "mw-authcheck-tool: cannot read %s\n", path);
			return 2;
		}
		if (check_one(run, msg, len, true) < 0) {
			free(msg);
			return 2;
		}
		free(msg);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"client-ip", required_argument, NULL, 'i'},
	    {"helo", required_argument, NULL, 'h'},
	    {"mail-from", required_argument, NULL, 'f'},
	    {"authserv-id", required_argument, NULL, 'a'},
	    {"dns", required_argument, NULL, 'd'},
	    {"timeout", required_argument, NULL, 't'},
	    {"local-domains", required_argument, NULL, 'l'},
	    {"no-enforce", no_argument, NULL, 'n'},
	    {"quarantine", required_argument, NULL, 'q'},
	    {"trusted", no_argument, NULL, 'T'},
	    {"authenticated", no_argument, NULL, 'A'},
	    {"dns-error-action", required_argument, NULL, 'e'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"stdin", no_argument, NULL, 's'},
	    {"dmarc-mode", required_argument, NULL, 'm'},
	    {"arc-trusted", required_argument, NULL, 'R'},
	    {"arc-seal", required_argument, NULL, 'S'},
	    {"arc-seal-out", required_argument, NULL, 'O'},
	    {"org-domain", no_argument, NULL, 'g'},
	    {NULL, 0, NULL, 0},
	};
	struct mw_authcheck_settings settings = {"", 5000, NULL, false, "", false};
	struct run run = {
	    NULL, {true, true, true, "", false, false}, NULL, NULL, NULL, "mx.example.net", NULL,
	    NULL};
	struct mw_verdict_policy *policy = &run.policy;
	mw_error err = {{0}};
	unsigned long repeat = 1, i;
	bool from_stdin = false;
	char *msg;
	size_t len;
	int c, ret = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			run.client_ip = optarg;
			break;
		case 'h':
			run.helo = optarg;
			break;
		case 'f':
			run.mail_from = optarg;
			break;
		case 'a':
			run.id = optarg;
			break;
		case 'd':
			settings.dns_servers = optarg;
			break;
		case 't':
			settings.dns_timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			policy->local_domains = optarg;
			break;
		case 'n':
			policy->dmarc_enforce = false;
			break;
		case 'q':
			policy->quarantine_hold = strcmp(optarg, "tag") != 0;
			break;
		case 'T':
			policy->trusted_client = true;
			break;
		case 'A':
			policy->authenticated = true;
			break;
		case 'e':
			policy->tempfail_on_dns_error = strcmp(optarg, "accept") != 0;
			break;
		case 'r':
			repeat = strtoul(optarg, NULL, 10);
			if (repeat == 0)
				return usage();
			break;
		case 's':
			from_stdin = true;
			break;
		case 'S': {
			/* DOMAIN:SELECTOR:KEYFILE */
			char *dom = optarg, *sel = strchr(optarg, ':'), *file;
			if (sel == NULL || (file = strchr(sel + 1, ':')) == NULL)
				return usage();
			*sel++ = '\0';
			*file++ = '\0';
			if (mw_dkim_key_load_file(file, dom, sel, &run.seal_key, &err) < 0) {
				fprintf(stderr, "mw-authcheck-tool: %s\n", err.msg);
				return 2;
			}
			break;
		}
		case 'O':
			run.seal_out = optarg;
			break;
		case 'R':
			settings.arc_trusted = optarg;
			break;
		case 'g': /* the organisational domain too, as with [dmarc] record = yes */
			settings.want_org_domain = true;
			break;
		case 'm':
			if (strcmp(optarg, "rfc7489") != 0 && strcmp(optarg, "dmarcbis") != 0)
				return usage();
			settings.dmarc_rfc7489 = strcmp(optarg, "rfc7489") == 0;
			break;
		default:
			return usage();
		}
	}
	if (run.client_ip == NULL || (from_stdin ? optind != argc : optind + 1 != argc))
		return usage();
	run.lib = mw_authcheck_lib_new(&settings, &err);
	if (run.lib == NULL) {
		fprintf(stderr, "mw-authcheck-tool: %s\n", err.msg);
		return 2;
	}
	if ((run.seal_key != NULL) != (run.seal_out != NULL)) {
		mw_dkim_key_free(&run.seal_key);
		mw_authcheck_lib_free(&run.lib);
		return usage();
	}
	if (from_stdin) {
		ret = run_stdin(&run);
		mw_dkim_key_free(&run.seal_key);
		mw_authcheck_lib_free(&run.lib);
		return ret;
	}
	msg = read_file(argv[optind], &len);
	if (msg == NULL) {
		fprintf(stderr, "mw-authcheck-tool: cannot read %s\n", argv[optind]);
		mw_dkim_key_free(&run.seal_key);
		mw_authcheck_lib_free(&run.lib);
		return 2;
	}
	if (repeat > 1) {
		/* the first message fills the caches (DNS answers, keys) as in a running milter */
		if (check_one(&run, msg, len, false) < 0)
			ret = 2;
		else {
			unsigned long hits, misses;
			size_t entries;
			double t0 = cpu_us();

			for (i = 1; ret == 0 && i < repeat; i++)
				if (check_one(&run, msg, len, i + 1 == repeat) < 0)
					ret = 2;
			mw_authcheck_key_cache_stats(&hits, &misses, &entries);
			fprintf(stderr,
			        "cpu_us_per_message=%.1f messages=%lu key_cache_hits=%lu "
			        "key_cache_misses=%lu key_cache_entries=%zu\n",
			        (cpu_us() - t0) / (double)(repeat - 1), repeat - 1, hits, misses,
			        entries);
		}
	} else if (check_one(&run, msg, len, true) < 0) {
		ret = 2;
	}
	mw_dkim_key_free(&run.seal_key);
	mw_authcheck_lib_free(&run.lib);
	free(msg);
	return ret;
}
