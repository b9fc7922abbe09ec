--@ One source for both dialects, rendered by scripts/embed-sql (its header: @NAME@, --@sqlite).
-- 006_dmarc_received.sql - DMARC aggregate reports received for our own domains (issue 14,
-- the receiving side: `mailwardenctl dmarc import`, `dmarc report`, GET /api/v1/dmarc/...).
-- One row per report (org_name + report_id is unique: a report imported twice counts once)
-- and one per <record> of it. policy_published is kept as its tags (sp, np: '' when
-- absent; pct: NULL when absent). messages: the sum of the rows' counts.
-- dkim, spf: the receiver's policy_evaluated (aligned) results; auth_results: the raw
-- results as JSON {"dkim":[{domain,selector,result}],"spf":[{domain,scope,result}]}.
CREATE TABLE dmarc_received_reports (
	id @ID_NO_REUSE@,
	org_name @TEXT@ NOT NULL,
	email @TEXT@ NOT NULL,
	report_id @TEXT@ NOT NULL,
	date_begin @INT@ NOT NULL,
	date_end @INT@ NOT NULL,
	domain @TEXT@ NOT NULL,
	adkim @TEXT@ NOT NULL DEFAULT '',
	aspf @TEXT@ NOT NULL DEFAULT '',
	p @TEXT@ NOT NULL CHECK (p IN ('none', 'quarantine', 'reject')),
	sp @TEXT@ NOT NULL DEFAULT '',
	np @TEXT@ NOT NULL DEFAULT '',
	pct INTEGER,
	messages @INT@ NOT NULL CHECK (messages >= 0),
	imported_at @INT@ NOT NULL,
	UNIQUE (org_name, report_id)
);
CREATE INDEX dmarc_received_reports_domain ON dmarc_received_reports (domain, date_end);
CREATE TABLE dmarc_received_rows (
	id @ID@,
	report @INT@ NOT NULL REFERENCES dmarc_received_reports (id) ON DELETE CASCADE,
	source_ip @TEXT@ NOT NULL,
	count @INT@ NOT NULL CHECK (count >= 0),
	disposition @TEXT@ NOT NULL CHECK (disposition IN ('none', 'quarantine', 'reject')),
	dkim @TEXT@ NOT NULL CHECK (dkim IN ('pass', 'fail')),
	spf @TEXT@ NOT NULL CHECK (spf IN ('pass', 'fail')),
	header_from @TEXT@ NOT NULL,
	envelope_from @TEXT@ NOT NULL DEFAULT '',
	envelope_to @TEXT@ NOT NULL DEFAULT '',
	reasons @TEXT@ NOT NULL DEFAULT '',
	auth_results @TEXT@ NOT NULL
);
CREATE INDEX dmarc_received_rows_report ON dmarc_received_rows (report);
CREATE INDEX dmarc_received_rows_from ON dmarc_received_rows (header_from);
