--@ One source for both dialects, rendered by scripts/embed-sql (its header: @NAME@, --@sqlite).
-- 005_dmarc_aggregate.sql - DMARC aggregate reports, the sending side (issue 14).
-- dmarc_evaluations: one row per DMARC evaluation of an inbound message whose From domain
-- has a DMARC policy ([dmarc] record = yes; written by mailwarden-milter at end of message).
--   policy_domain: where the record was found; org_domain: the From domain's organisational
--   domain ('' when not known); p, sp, np, adkim, aspf, testing, pct, rua: the record as
--   published (sp, np '' when absent; pct -1 when absent; rua '' when absent).
--   envelope_from: the domain SPF checked (spf_scope mfrom, or helo for the null sender);
--   dkim: one line per signature "DOMAIN SELECTOR RESULT" ('' without signatures);
--   dkim_aligned / spf_aligned: DMARC's aligned pass of each; dmarc_result pass|fail;
--   disposition: what was done (none, quarantine, reject); override: why the published
--   policy was not applied ('' none, trusted_forwarder, local_policy, sampled_out,
--   policy_test_mode).
-- dmarc_reports_sent: the aggregate report of one policy domain for one period, once sent
-- (or being sent): mailwardenctl dmarc send-reports claims the row before it submits the
-- report and never sends a period with a row again.
CREATE TABLE dmarc_evaluations (
	id @ID@,
	evaluated_at @INT@ NOT NULL,
	source_ip @TEXT@ NOT NULL,
	header_from @TEXT@ NOT NULL,
	policy_domain @TEXT@ NOT NULL,
	org_domain @TEXT@ NOT NULL,
	p @TEXT@ NOT NULL CHECK (p IN ('none', 'quarantine', 'reject')),
	sp @TEXT@ NOT NULL CHECK (sp IN ('', 'none', 'quarantine', 'reject')),
	np @TEXT@ NOT NULL CHECK (np IN ('', 'none', 'quarantine', 'reject')),
	adkim @TEXT@ NOT NULL CHECK (adkim IN ('r', 's')),
	aspf @TEXT@ NOT NULL CHECK (aspf IN ('r', 's')),
	testing INTEGER NOT NULL CHECK (testing IN (0, 1)),
	pct INTEGER NOT NULL,
	rua @TEXT@ NOT NULL,
	envelope_from @TEXT@ NOT NULL,
	spf_result @TEXT@ NOT NULL,
	spf_scope @TEXT@ NOT NULL CHECK (spf_scope IN ('mfrom', 'helo')),
	dkim @TEXT@ NOT NULL,
	dkim_aligned INTEGER NOT NULL CHECK (dkim_aligned IN (0, 1)),
	spf_aligned INTEGER NOT NULL CHECK (spf_aligned IN (0, 1)),
	dmarc_result @TEXT@ NOT NULL CHECK (dmarc_result IN ('pass', 'fail')),
	disposition @TEXT@ NOT NULL CHECK (disposition IN ('none', 'quarantine', 'reject')),
	override @TEXT@ NOT NULL
);
CREATE INDEX dmarc_evaluations_at ON dmarc_evaluations (evaluated_at, policy_domain);
CREATE TABLE dmarc_reports_sent (
	policy_domain @TEXT@ NOT NULL,
	begin_at @INT@ NOT NULL,
	end_at @INT@ NOT NULL,
	report_id @TEXT@ NOT NULL,
	recipients @TEXT@ NOT NULL,
	messages @INT@ NOT NULL,
	sent_at @INT@ NOT NULL,
	PRIMARY KEY (policy_domain, begin_at)
);
