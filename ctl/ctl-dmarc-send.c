/*
 * ctl-dmarc-send.c - mailwardenctl dmarc send-reports: the daily DMARC aggregate reports
 * (issue 14, the sending side) from the evaluations mailwarden-milter recorded.
 *
 * For one UTC day (default yesterday) and each policy domain with evaluations in it: its
 * record as last seen, its rua= mailto: destinations (each checked by RFC 7489 7.1's
 * external destination verification through [milter] dns_servers, and its !size limit),
 * the XML report of its grouped evaluations (lib/mw-dmarc-agg.c), gzip, a MIME message
 * submitted with [dmarc] sendmail (-C sendmail_config_dir). The day is claimed in the store
 * before the mail is submitted and given back when submission fails, so a report is sent
 * at most once however often (and on however many hosts) this runs. Evaluations older than
 * [dmarc] retention are deleted at the end. One line per domain on standard output.
 *
 * Public: cmd_dmarc_send_reports (the command table).
 *
 * Exit: 0, 1 when a domain could not be reported (a lookup failed temporarily, sendmail
 * failed, the store failed), 2 on a usage error.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-dmarc-agg.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct send_opts {
	int64_t begin; /* the day, 00:00:00 UTC */
	bool dry_run;
	const char *output;
};

struct send_env {
	struct mw_ctl *ctl;
	struct send_opts o;
	const char *sender, *org_name, *sendmail, *config_dir;
	char submitter[MW_DNS_NAME_MAX + 1];
	mw_dns *dns;
};

/* parse_date - YYYY-MM-DD as the unix time of its start (UTC) */
static int parse_date(const char *s, int64_t *t_r)
{
	struct tm tm;
	time_t t;
	int y, m, d, i;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d) /* 2026-02-30 is no date */
		return -1;
	*t_r = (int64_t)t;
	return 0;
}

/* run_sendmail - submit MAIL to RCPTS through sendmail; 0, or -1 with error_r */
static int run_sendmail(const struct send_env *env, const mw_str *mail,
                        const struct mw_dmarc_agg_dest *dests, size_t n, mw_error *error_r)
{
	const char *argv[16 + MW_DMARC_AGG_DEST_MAX];
	size_t a = 0, i, off = 0;
	int fds[2], status;
	pid_t pid;
	void (*old)(int);

	argv[a++] = env->sendmail;
	if (env->config_dir[0] != '\0') {
		argv[a++] = "-C";
		argv[a++] = env->config_dir;
	}
	argv[a++] = "-i";
	argv[a++] = "-f";
	argv[a++] = env->sender;
	argv[a++] = "--";
	for (i = 0; i < n; i++)
		argv[a++] = dests[i].addr;
	argv[a] = NULL;
	if (pipe(fds) < 0) {
		mw_error_set(error_r, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		mw_error_set(error_r, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		(void)dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(fds[0]);
	old = signal(SIGPIPE, SIG_IGN);
	/* line ends as sendmail reads them: LF */
	while (off < mail->len) {
		const char *p = mail->buf + off, *cr = memchr(p, '\r', mail->len - off);
		size_t len = cr != NULL ? (size_t)(cr - p) : mail->len - off;
		ssize_t w = len > 0 ? write(fds[1], p, len) : 0;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		off += (size_t)w;
		if ((size_t)w == len && cr != NULL)
			off++; /* the CR */
	}
	close(fds[1]);
	(void)signal(SIGPIPE, old);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			mw_error_set(error_r, "waitpid: %s", strerror(errno));
			return -1;
		}
	if (off < mail->len) {
		mw_error_set(error_r, "%s stopped reading the message", env->sendmail);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			mw_error_set(error_r, "%s could not be run", env->sendmail);
		else
			mw_error_set(error_r, "%s failed (status %d)", env->sendmail,
			             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -1;
	}
	return 0;
}

/* write_output - the report file into --output DIR */
static int write_output(const char *dir, const char *name, const mw_str *gz)
{
	char path[4096];
	int fd;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		ctl_err("--output: path too long");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		ctl_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (mw_write_all(fd, gz->buf, gz->len) < 0) {
		ctl_err("%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0) {
		ctl_err("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* one_domain - report DOMAIN's day; EXIT_OK or EXIT_ERROR (printed) */
static int one_domain(struct send_env *env, const char *domain)
{
	mw_store *store = env->ctl->store;
	struct mw_dmarc_eval *pol = mw_malloc(sizeof(*pol));
	struct mw_dmarc_agg_dest dests[MW_DMARC_AGG_DEST_MAX], ok[MW_DMARC_AGG_DEST_MAX];
	struct mw_dmarc_agg_row *rows = NULL;
	struct mw_dmarc_agg_meta meta;
	char report_id[64], fname[600], why[256], date[16];
	unsigned char rnd[8];
	mw_str skipped, xml, gz, mail, rcpts;
	size_t nd, nok = 0, nrows = 0, i;
	uint64_t messages = 0;
	int64_t end = env->o.begin + 86400;
	mw_error err = {""};
	bool tempfail = false;
	int ret = EXIT_OK, st;
	time_t tb = (time_t)env->o.begin;
	struct tm tm;

	mw_str_init(&skipped, 4096);
	mw_str_init(&xml, 0);
	mw_str_init(&gz, 0);
	mw_str_init(&mail, 0);
	mw_str_init(&rcpts, 0);
	st = mw_store_dmarc_policy(store, domain, env->o.begin, end, pol, &err);
	if (st != MW_STORE_OK) {
		ctl_err("%s: %s", domain, err.msg);
		ret = EXIT_ERROR;
		goto out;
	}
	if (pol->rua[0] == '\0') {
		printf("%s: no rua= in its DMARC record, nothing to send\n", domain);
		goto out;
	}
	nd = mw_dmarc_agg_parse_rua(pol->rua, dests, MW_DMARC_AGG_DEST_MAX, &skipped);
	if (skipped.len > 0)
		printf("%s: rua destinations skipped: %s\n", domain, mw_str_c(&skipped));
	for (i = 0; i < nd; i++) {
		enum mw_dmarc_agg_dest_status ds = mw_dmarc_agg_dest_check(
		    mw_dmarc_agg_dns_txt, env->dns, domain, dests[i].domain, why, sizeof(why));
		if (ds == MW_DMARC_AGG_DEST_OK) {
			ok[nok++] = dests[i];
		} else if (ds == MW_DMARC_AGG_DEST_TEMPFAIL) {
			printf("%s: %s not checked (%s): not sent to it now\n", domain,
			       dests[i].addr, why);
			tempfail = true;
		} else {
			printf("%s: %s is an external destination without authorisation (%s): "
			       "skipped\n",
			       domain, dests[i].addr, why);
		}
	}
	if (tempfail) {
		/* the whole report waits: sending it now to some would mean never to the others */
		ret = EXIT_ERROR;
		goto out;
	}
	if (nok == 0) {
		printf("%s: no usable rua destination, nothing sent\n", domain);
		goto out;
	}
	st = mw_store_dmarc_rows(store, domain, env->o.begin, end, &rows, &nrows, &err);
	if (st != MW_STORE_OK || nrows == 0) {
		ctl_err("%s: %s", domain, st != MW_STORE_OK ? err.msg : "no evaluations");
		ret = EXIT_ERROR;
		goto out;
	}
	for (i = 0; i < nrows; i++)
		messages += rows[i].count;
	gmtime_r(&tb, &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(report_id, sizeof(report_id), "%s.%02x%02x%02x%02x%02x%02x%02x%02x", date, rnd[0],
	         rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	meta.org_name = env->org_name;
	meta.email = env->sender;
	meta.report_id = report_id;
	meta.begin = env->o.begin;
	meta.end = end - 1;
	if (mw_dmarc_agg_xml(&meta, pol, rows, nrows, &xml, &err) < 0 ||
	    mw_dmarc_agg_gzip(xml.buf, xml.len, &gz, &err) < 0 ||
	    mw_dmarc_agg_mail(&meta, domain, env->submitter, ok, nok, gz.buf, gz.len, mw_now(),
	                      &mail, fname, &err) < 0) {
		ctl_err("%s: %s", domain, err.msg);
		ret = EXIT_ERROR;
		goto out;
	}
	/* !size: the limit is on the report as it travels (RFC 7489 6.2) */
	nd = nok;
	for (i = 0, nok = 0; i < nd; i++) {
		if (ok[i].max_size != 0 && mail.len > ok[i].max_size) {
			printf(
			    "%s: report of %zu bytes is over %s's limit of %llu bytes: skipped\n",
			    domain, mail.len, ok[i].addr, (unsigned long long)ok[i].max_size);
			continue;
		}
		ok[nok++] = ok[i];
	}
	if (env->o.output != NULL && write_output(env->o.output, fname, &gz) < 0) {
		ret = EXIT_ERROR;
		goto out;
	}
	if (nok == 0) {
		printf("%s: no destination takes the report, nothing sent\n", domain);
		goto out;
	}
	if (nok != nd) { /* the message names only the destinations it goes to */
		mw_str_reset(&mail);
		if (mw_dmarc_agg_mail(&meta, domain, env->submitter, ok, nok, gz.buf, gz.len,
		                      mw_now(), &mail, fname, &err) < 0) {
			ctl_err("%s: %s", domain, err.msg);
			ret = EXIT_ERROR;
			goto out;
		}
	}
	for (i = 0; i < nok; i++)
		(void)mw_str_appendf(&rcpts, "%s%s", i > 0 ? "," : "", ok[i].addr);
	if (env->o.dry_run) {
		printf("%s: would send report %s (%llu messages, %zu records, %zu bytes) to %s\n",
		       domain, report_id, (unsigned long long)messages, nrows, gz.len,
		       mw_str_c(&rcpts));
		goto out;
	}
	st = mw_store_dmarc_report_claim(store, domain, env->o.begin, end - 1, report_id,
	                                 mw_str_c(&rcpts), messages, mw_now(), &err);
	if (st == MW_STORE_EXISTS) {
		printf("%s: report for this day already sent\n", domain);
		goto out;
	}
	if (st != MW_STORE_OK) {
		ctl_err("%s: %s", domain, err.msg);
		ret = EXIT_ERROR;
		goto out;
	}
	if (run_sendmail(env, &mail, ok, nok, &err) < 0) {
		mw_error err2 = {""};
		ctl_err("%s: report not sent: %s", domain, err.msg);
		if (mw_store_dmarc_report_unclaim(store, domain, env->o.begin, &err2) !=
		    MW_STORE_OK)
			ctl_err("%s: %s (the day stays marked as sent)", domain, err2.msg);
		ret = EXIT_ERROR;
		goto out;
	}
	printf("%s: sent report %s (%llu messages, %zu records, %zu bytes) to %s\n", domain,
	       report_id, (unsigned long long)messages, nrows, gz.len, mw_str_c(&rcpts));
out:
	(void)fflush(stdout);
	free(rows);
	free(pol);
	mw_str_free(&skipped);
	mw_str_free(&xml);
	mw_str_free(&gz);
	mw_str_free(&mail);
	mw_str_free(&rcpts);
	return ret;
}

/* cmd_dmarc_send_reports - mailwardenctl dmarc send-reports */
int cmd_dmarc_send_reports(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct send_env env;
	const char *at;
	char **domains = NULL;
	size_t n = 0, i;
	uint64_t pruned = 0;
	mw_error err = {""};
	int first, ret = EXIT_OK, st;
	struct stat sb;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_DATE, OPT_DRY_RUN, OPT_OUTPUT);
	memset(&env, 0, sizeof(env));
	env.ctl = ctl;
	if (o.date != NULL && parse_date(o.date, &env.o.begin) < 0) {
		ctl_err("dmarc send-reports: --date wants YYYY-MM-DD, not %s", o.date);
		return EXIT_USAGE;
	}
	env.o.dry_run = o.dry_run;
	env.o.output = o.output;
	if (argc - first != 0) {
		ctl_err("dmarc send-reports: no arguments but options");
		fprintf(stderr, "usage: mailwardenctl %s\n", ctl_current->usage);
		return EXIT_USAGE;
	}
	if (o.date == NULL) /* yesterday, UTC */
		env.o.begin = (mw_now() / 86400 - 1) * 86400;
	if (env.o.output != NULL && (stat(env.o.output, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
		ctl_err("dmarc send-reports: --output %s is not a directory", env.o.output);
		return EXIT_USAGE;
	}
	env.sender = mw_config_str(ctl->cfg, MWK_DMARC_REPORT_SENDER);
	at = strrchr(env.sender, '@');
	if (env.sender[0] == '\0' || at == NULL || at == env.sender ||
	    mw_strlcpy(env.submitter, at + 1, sizeof(env.submitter)) < 0 ||
	    env.submitter[0] == '\0') {
		ctl_err("dmarc send-reports: set [dmarc] report_sender (the address reports are "
		        "sent from)");
		return EXIT_ERROR;
	}
	mw_ascii_lower(env.submitter);
	env.org_name = mw_config_str(ctl->cfg, MWK_DMARC_REPORT_ORG_NAME);
	if (env.org_name[0] == '\0')
		env.org_name = env.submitter;
	env.sendmail = mw_config_str(ctl->cfg, MWK_DMARC_SENDMAIL);
	env.config_dir = mw_config_str(ctl->cfg, MWK_DMARC_SENDMAIL_CONFIG_DIR);
	env.dns =
	    mw_dns_new(mw_config_str(ctl->cfg, MWK_MILTER_DNS_SERVERS),
	               (unsigned)mw_config_int(ctl->cfg, MWK_MILTER_DNS_TIMEOUT) * 1000u, &err);
	if (env.dns == NULL) {
		ctl_err("dmarc send-reports: resolver: %s", err.msg);
		return EXIT_ERROR;
	}
	st = mw_store_dmarc_domains(ctl->store, env.o.begin, env.o.begin + 86400, &domains, &n,
	                            &err);
	if (st != MW_STORE_OK) {
		mw_dns_free(&env.dns);
		return ctl_store_exit(st, &err, "dmarc send-reports");
	}
	if (n == 0)
		printf("no DMARC evaluations recorded for that day\n");
	for (i = 0; i < n; i++)
		if (one_domain(&env, domains[i]) != EXIT_OK)
			ret = EXIT_ERROR;
	mw_store_strv_free(domains);
	mw_dns_free(&env.dns);
	if (!env.o.dry_run) {
		int64_t before = mw_now() - mw_config_int(ctl->cfg, MWK_DMARC_RETENTION);
		st = mw_store_dmarc_prune(ctl->store, before, &pruned, &err);
		if (st != MW_STORE_OK) {
			ctl_err("dmarc send-reports: deleting old evaluations: %s", err.msg);
			ret = EXIT_ERROR;
		} else if (pruned > 0) {
			printf("deleted %llu evaluations older than [dmarc] retention\n",
			       (unsigned long long)pruned);
		}
	}
	return ret;
}
