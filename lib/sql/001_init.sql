--@ One source for both dialects, rendered by scripts/embed-sql (its header: @NAME@, --@sqlite).
-- 001_init.sql - the first mailwarden schema (@DIALECT@ dialect; DESIGN.md "Store").
-- Applied by mw_store_migrate inside one transaction, together with the schema_version
-- update. Times are unix seconds (mw_now()). Usernames are stored normalised
-- (mw_store_username_normalize) and compared exactly, so Dovecot's passdb sql can use
-- "WHERE username = '%u'". Encrypted columns hold mw_secret text ("v1:...").

CREATE TABLE schema_version (
	version INTEGER NOT NULL
);

-- AUTOINCREMENT: a deleted user's id is never given to a new user, so nothing keyed on
-- an id (ciphertext associated data, audit details) can ever point at the wrong person.
CREATE TABLE users (
	id @ID_NO_REUSE@,
	username @TEXT@ NOT NULL UNIQUE
--@sqlite
		CHECK (length(CAST(username AS BLOB)) BETWEEN 1 AND 254),
--@pgsql
		CHECK (octet_length(username) BETWEEN 1 AND 254),
--@end
	password @TEXT@ NOT NULL,
	status @TEXT@ NOT NULL CHECK (status IN ('pending', 'active', 'disabled')),
	role @TEXT@ NOT NULL CHECK (role IN ('admin', 'user')),
	description @TEXT@ NOT NULL DEFAULT '',
	created_at @INT@ NOT NULL,
	updated_at @INT@ NOT NULL,
	password_changed_at @INT@ NOT NULL,
	totp_secret @TEXT@,                     -- encrypted; NULL = no TOTP enrolled
	failed_logins @INT@ NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
	locked_until @INT@ NOT NULL DEFAULT 0, -- 0 = not locked
	-- where the main password is accepted (the rest need app passwords)
	main_password_protocols @TEXT@ NOT NULL DEFAULT 'imap,smtp'
);

CREATE TABLE allowed_from (
	user_id @INT@ NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	pattern @TEXT@ NOT NULL,
	PRIMARY KEY (user_id, pattern)
);

CREATE TABLE sessions (
	token_hash @TEXT@ NOT NULL PRIMARY KEY   -- hex SHA-256 of the token; never the token
		CHECK (length(token_hash) = 64),
	user_id @INT@ NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at @INT@ NOT NULL,
	last_seen_at @INT@ NOT NULL,
	idle_timeout @INT@ NOT NULL,         -- seconds
	expires_at @INT@ NOT NULL,           -- absolute expiry
	client_ip @TEXT@ NOT NULL DEFAULT '',
	user_agent @TEXT@ NOT NULL DEFAULT '',
	revoked_at @INT@                     -- NULL = live
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- NULL (not '') for "none": Dovecot's passdb sql skips NULL fields, whereas an empty
-- allow_nets would refuse every client.
CREATE TABLE app_passwords (
	id @ID_NO_REUSE@,
	user_id @INT@ NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name @TEXT@ NOT NULL,
	protocols @TEXT@ NOT NULL DEFAULT 'imap,smtp',
	hash @TEXT@ NOT NULL UNIQUE,             -- hex SHA-256, as Dovecot's %{sha256:password}
	created_at @INT@ NOT NULL,
	expires_at @INT@,                    -- NULL = never
	allow_nets @TEXT@,                       -- NULL = any network
	last_used_at @INT@,
	last_ip @TEXT@,
	UNIQUE (user_id, name)
);

CREATE TABLE rate_policies (
	id @ID@,
	scope @TEXT@ NOT NULL,
	match @TEXT@ NOT NULL DEFAULT '',
	metric @TEXT@ NOT NULL,
	limit_count @INT@ NOT NULL CHECK (limit_count >= 0),
	window_seconds @INT@ NOT NULL CHECK (window_seconds > 0),
	action @TEXT@ NOT NULL,
	user_id @INT@ REFERENCES users (id) ON DELETE CASCADE, -- NULL = not per user
	created_at @INT@ NOT NULL
);
CREATE INDEX rate_policies_user ON rate_policies (user_id);

CREATE TABLE tag_rules (
	id @ID@,
	user_id @INT@ NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	position @INT@ NOT NULL,
	field @TEXT@ NOT NULL,
	match_type @TEXT@ NOT NULL,
	value @TEXT@ NOT NULL,
	keyword @TEXT@,
	mailbox @TEXT@,
	enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1))
);
CREATE INDEX tag_rules_user ON tag_rules (user_id, position);

CREATE TABLE dkim_keys (
	id @ID@,
	domain @TEXT@ NOT NULL,
	selector @TEXT@ NOT NULL,
	private_key @TEXT@ NOT NULL,             -- encrypted
	public_key @TEXT@ NOT NULL,
	created_at @INT@ NOT NULL,
	active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
	UNIQUE (domain, selector)
);

CREATE TABLE training_events (
	id @ID@,
	user_id @INT@ NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	message_id @TEXT@ NOT NULL,
	verdict @TEXT@ NOT NULL CHECK (verdict IN ('spam', 'ham')),
	created_at @INT@ NOT NULL,
	consumed_at @INT@                    -- NULL = not yet learnt from
);
CREATE INDEX training_events_user ON training_events (user_id);
CREATE INDEX training_events_pending ON training_events (id) WHERE consumed_at IS NULL;

CREATE TABLE audit_log (
	id @ID@,
	at @INT@ NOT NULL,
	actor @TEXT@ NOT NULL,
	action @TEXT@ NOT NULL,
	target @TEXT@ NOT NULL DEFAULT '',
	client @TEXT@ NOT NULL DEFAULT '',
	details @TEXT@ NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target);
--@sqlite
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;
--@pgsql
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- SQLite's instr() and unixepoch(), so that Dovecot's passdb and userdb queries
-- (conf.d/dovecot-sql-mailwarden*.conf.ext) are one text for its sqlite and pgsql drivers.
CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
	LANGUAGE sql IMMUTABLE STRICT AS 'SELECT strpos(haystack, needle)';
CREATE FUNCTION unixepoch() RETURNS BIGINT
	LANGUAGE sql STABLE AS 'SELECT CAST(extract(epoch FROM now()) AS BIGINT)';
--@end
