/*
 * ctl-dmarc-recv.c - mailwardenctl dmarc import and dmarc report: DMARC aggregate reports
 * received for our own domains (issue 14, the receiving side; lib/mw-dmarc-report.h).
 *
 * import reads each PATH as one message file, a maildir (cur/ and new/) or a directory of
 * message files, or an mbox (a file whose first line starts "From "; mboxrd ">From "
 * unescaped), and prints one line per message: imported, duplicate (the same reporter's
 * report_id is stored already: nothing counted twice), not ours (the policy domain is not
 * one of [milter] local_domains or under one) or malformed (the parser's reason). --delete
 * removes a message file once its report is imported or known to be stored (never an mbox
 * message, never one refused: those stay for the admin to look at). The exit status is 1
 * when any message was refused or could not be read or stored.
 *
 * report prints the summary (who sends as our domains, passing or failing) through
 * ctl->ops->dmarc_summary: the store, or GET /api/v1/dmarc/summary with --api.
 *
 * Public: cmd_dmarc_import, cmd_dmarc_report.
 * Diagnostics: "mailwardenctl: ..." on stderr.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-dmarc-report.h"
#include "mw-dnsrec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct import_run {
	struct mw_ctl *ctl;
	bool delete, tty;
	unsigned long imported, duplicate, not_ours, malformed, errors;
	int64_t start_us, last_progress_us;
};

/* usage_error - the command's usage after a message */
static int usage_error(const char *what, const char *arg)
{
	ctl_err("%s %s: %s %s", ctl_current->group, ctl_current->name, what, arg);
	fprintf(stderr, "usage: mailwardenctl %s\n", ctl_current->usage);
	return EXIT_USAGE;
}

/* progress - one status line on a terminal, at most five times a second */
static void progress(struct import_run *r, bool final)
{
	unsigned long n = r->imported + r->duplicate + r->not_ours + r->malformed + r->errors;
	double secs = (double)(mw_mono_us() - r->start_us) / 1e6;
	if (!r->tty || (!final && mw_mono_us() - r->last_progress_us < 200000))
		return;
	r->last_progress_us = mw_mono_us();
	fprintf(stderr, "\r%lu messages, %.0f/s ", n, secs > 0 ? (double)n / secs : 0.0);
	if (final)
		fputc('\n', stderr);
}

/* import_one - one message; a line says what became of it. *done_r: its report is stored
   (imported now or before), so --delete may remove it. -1 when the store failed. */
static int import_one(struct import_run *r, const char *msg, size_t len, const char *where,
                      unsigned long number, bool *done_r)
{
	struct mw_dmarc_rpt *rpt = NULL;
	mw_error err = {""};
	char label[4200];
	int ret;
	*done_r = false;
	if (number > 0)
		(void)snprintf(label, sizeof(label), "%s: message %lu", where, number);
	else
		(void)snprintf(label, sizeof(label), "%s", where);
	if (r->tty)
		fputs("\r\033[K", stderr);
	if (mw_dmarc_rpt_parse_message(msg, len, &rpt, &err) < 0) {
		r->malformed++;
		printf("%s: malformed: %s\n", label, err.msg);
		progress(r, false);
		return 0;
	}
	if (!mw_dmarc_rpt_ours(r->ctl->cfg, rpt)) {
		r->not_ours++;
		printf("%s: not ours: report %s of %s is about %s, not one of [milter] "
		       "local_domains\n",
		       label, rpt->report_id, rpt->org_name, rpt->domain);
		mw_dmarc_rpt_free(&rpt);
		progress(r, false);
		return 0;
	}
	ret = mw_store_dmarc_report_add(r->ctl->store, rpt, NULL, &err);
	if (ret == MW_STORE_OK) {
		r->imported++;
		*done_r = true;
		printf("%s: imported: %s report %s for %s, %zu rows, %lld messages\n", label,
		       rpt->org_name, rpt->report_id, rpt->domain, rpt->nrows,
		       (long long)rpt->messages);
	} else if (ret == MW_STORE_EXISTS) {
		r->duplicate++;
		*done_r = true;
		printf("%s: duplicate: %s report %s is already stored\n", label, rpt->org_name,
		       rpt->report_id);
	} else {
		r->errors++;
		ctl_err("%s: store: %s", label, err.msg);
		mw_dmarc_rpt_free(&rpt);
		return -1;
	}
	mw_dmarc_rpt_free(&rpt);
	progress(r, false);
	return 0;
}

/* import_trouble - an unreadable path is an error, an empty or oversized message malformed */
static void import_trouble(void *ctx, enum ctl_mail_trouble kind, const char *where,
                           unsigned long number, const char *why)
{
	struct import_run *r = ctx;
	char at[32] = "";
	if (number > 0)
		(void)snprintf(at, sizeof(at), " message %lu:", number);
	if (kind == CTL_MAIL_UNREADABLE) {
		r->errors++;
		ctl_err("%s:%s %s", where, at, why);
	} else {
		r->malformed++;
		printf("%s:%s malformed: %s\n", where, at, why);
	}
}

/* import_message - ctl_mail_read_path's message callback */
static int import_message(void *ctx, const char *msg, size_t len, const char *where,
                          unsigned long number, bool *done_r)
{
	return import_one(ctx, msg, len, where, number, done_r);
}

/* cmd_dmarc_import - dmarc import [--delete] PATH... */
int cmd_dmarc_import(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct import_run r;
	int first, i, ret = 0;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 1, -1, OPT_DELETE);
	memset(&r, 0, sizeof(r));
	r.ctl = ctl;
	r.delete = o.delete_done;
	r.tty = isatty(STDERR_FILENO) == 1;
	r.start_us = mw_mono_us();
	struct ctl_mail_reader rd = {.max = MW_DMARC_RPT_MESSAGE_MAX,
	                             .delete_done = r.delete,
	                             .ctx = &r,
	                             .message = import_message,
	                             .trouble = import_trouble};
	for (i = first; i < argc && ret == 0; i++)
		ret = ctl_mail_read_path(&rd, argv[i]);
	progress(&r, true);
	printf("%lu messages: %lu imported, %lu duplicate, %lu not ours, %lu malformed, %lu "
	       "errors\n",
	       r.imported + r.duplicate + r.not_ours + r.malformed + r.errors, r.imported,
	       r.duplicate, r.not_ours, r.malformed, r.errors);
	return ret == 0 && r.not_ours + r.malformed + r.errors == 0 ? EXIT_OK : EXIT_ERROR;
}

/* parse_date - YYYY-MM-DD (UTC; the next day's start when end) or unix seconds */
static int parse_date(const char *s, bool end, int64_t *t_r)
{
	struct tm tm;
	int y, m, d, used = 0;
	char *e;
	long long v;
	memset(&tm, 0, sizeof(tm));
	if (strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &used) == 3 && used == 10) {
		time_t t;
		if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
			return -1;
		tm.tm_year = y - 1900;
		tm.tm_mon = m - 1;
		tm.tm_mday = d;
		t = timegm(&tm);
		if (t == (time_t)-1 || tm.tm_mday != d)
			return -1;
		*t_r = (int64_t)t + (end ? 86400 : 0);
		return 0;
	}
	errno = 0;
	v = strtoll(s, &e, 10);
	if (errno != 0 || *e != '\0' || e == s || v < 0)
		return -1;
	*t_r = v;
	return 0;
}

/* fmt_pct - a share as "2.8%" */
static const char *fmt_pct(double share, char *buf, size_t size)
{
	(void)snprintf(buf, size, "%.1f%%", share * 100.0);
	return buf;
}

/* jint - an integer member (0 when absent) */
static int64_t jint(const json_t *o, const char *name)
{
	return (int64_t)json_integer_value(json_object_get(o, name));
}

/* bar - volume as a bar of BAR_WIDTH at most: '#' passing, 'x' failing */
#define BAR_WIDTH 30
static void bar(int64_t msgs, int64_t fail, int64_t max, char *out)
{
	int len = max > 0 ? (int)((msgs * BAR_WIDTH + max - 1) / max) : 0, nfail, i;
	if (len > BAR_WIDTH)
		len = BAR_WIDTH;
	nfail = msgs > 0 ? (int)((fail * len + msgs - 1) / msgs) : 0;
	for (i = 0; i < len; i++)
		out[i] = i < len - nfail ? '#' : 'x';
	out[len] = '\0';
}

/* print_summary - the summary for a person */
static void print_summary(const json_t *s, const char *domain, const char *since, const char *until)
{
	const json_t *domains = json_object_get(s, "domains"),
	             *totals = json_object_get(s, "totals");
	const json_t *d, *src;
	size_t i, j;
	int64_t max = 0;
	int ipw = 9; /* "SOURCE IP" */
	char pct[32], b[BAR_WIDTH + 1];
	json_array_foreach(domains, i, d)
	{
		json_array_foreach(json_object_get(d, "sources"), j, src)
		{
			const char *ip = json_string_value(json_object_get(src, "source_ip"));
			if (jint(src, "messages") > max)
				max = jint(src, "messages");
			if (ip != NULL && (int)strlen(ip) > ipw && strlen(ip) <= 45)
				ipw = (int)strlen(ip);
		}
	}
	printf("DMARC aggregate reports received%s%s%s%s%s%s\n", domain != NULL ? " for " : "",
	       domain != NULL ? domain : "", since != NULL ? " since " : "",
	       since != NULL ? since : "", until != NULL ? " until " : "",
	       until != NULL ? until : "");
	if (json_array_size(domains) == 0) {
		printf("no reports\n");
		return;
	}
	json_array_foreach(domains, i, d)
	{
		printf(
		    "\n%s: %lld messages, %lld pass DMARC, %lld fail (%s)\n",
		    json_string_value(json_object_get(d, "domain")), (long long)jint(d, "messages"),
		    (long long)jint(d, "dmarc_pass"), (long long)jint(d, "dmarc_fail"),
		    fmt_pct(json_real_value(json_object_get(d, "fail_share")), pct, sizeof(pct)));
		printf("  %-*s %-22s %10s %14s %13s %16s  %s\n", ipw, "SOURCE IP", "REPORTER",
		       "MESSAGES", "DKIM pass/fail", "SPF pass/fail", "none/quar/reject",
		       "VOLUME (# pass, x fail)");
		json_array_foreach(json_object_get(d, "sources"), j, src)
		{
			const json_t *disp = json_object_get(src, "disposition");
			char dk[32], sp[32], di[48];
			(void)snprintf(dk, sizeof(dk), "%lld/%lld",
			               (long long)jint(src, "dkim_pass"),
			               (long long)jint(src, "dkim_fail"));
			(void)snprintf(sp, sizeof(sp), "%lld/%lld",
			               (long long)jint(src, "spf_pass"),
			               (long long)jint(src, "spf_fail"));
			(void)snprintf(
			    di, sizeof(di), "%lld/%lld/%lld", (long long)jint(disp, "none"),
			    (long long)jint(disp, "quarantine"), (long long)jint(disp, "reject"));
			bar(jint(src, "messages"), jint(src, "dmarc_fail"), max, b);
			printf("  %-*s %-22.22s %10lld %14s %13s %16s  %s\n", ipw,
			       json_string_value(json_object_get(src, "source_ip")),
			       json_string_value(json_object_get(src, "org_name")),
			       (long long)jint(src, "messages"), dk, sp, di, b);
		}
	}
	printf("\ntotal: %lld messages from %lld sources, %lld pass DMARC, %lld fail (%s)\n",
	       (long long)jint(totals, "messages"), (long long)jint(totals, "sources"),
	       (long long)jint(totals, "dmarc_pass"), (long long)jint(totals, "dmarc_fail"),
	       fmt_pct(json_real_value(json_object_get(totals, "fail_share")), pct, sizeof(pct)));
}

/* cmd_dmarc_report - dmarc report [--domain D] [--since DATE] [--until DATE] [--json] */
int cmd_dmarc_report(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct mw_dmarc_filter f;
	char domain[MW_DMARC_RPT_DOMAIN_MAX + 1];
	mw_error err = {""};
	json_t *summary = NULL;
	int first, ret;
	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_DOMAIN, OPT_SINCE, OPT_UNTIL,
	         OPT_JSON, OPT_LIMIT);
	memset(&f, 0, sizeof(f));
	if (o.since != NULL && parse_date(o.since, false, &f.since) < 0)
		return usage_error("--since: not a date (YYYY-MM-DD or unix seconds):", o.since);
	if (o.until != NULL && parse_date(o.until, true, &f.until) < 0)
		return usage_error("--until: not a date (YYYY-MM-DD or unix seconds):", o.until);
	if (o.limit_given) {
		if (o.limit < 1 || o.limit > 100000) {
			char text[32];
			(void)snprintf(text, sizeof(text), "%lld", o.limit);
			return usage_error("--limit: not a number from 1 to 100000:", text);
		}
		f.limit = (unsigned)o.limit;
	}
	if (o.domain != NULL) {
		if (mw_dnsrec_domain(o.domain, domain, sizeof(domain), &err) < 0)
			return usage_error("--domain:", err.msg);
		f.domain = domain;
	}
	ret = ctl->ops->dmarc_summary(ctl, &f, &summary);
	if (ret != EXIT_OK)
		return ret;
	if (o.json) {
		ctl_json_print(summary); /* consumes it */
		return EXIT_OK;
	}
	print_summary(summary, f.domain, o.since, o.until);
	json_decref(summary);
	return EXIT_OK;
}
