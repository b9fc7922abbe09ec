--@ One source for both dialects, rendered by scripts/embed-sql (its header: @NAME@, --@sqlite).
-- 002_auth_failures.sql - failed authentications per (key, client network) (issue 9).
-- mailwarden-api counts every wrong password, TOTP code, recovery code and internal
-- secret here, so every API process (and Dovecot's auth policy reports of IMAP/SMTP
-- logins) shares one count. key names what was attacked: 'account:ID' (one account from
-- one network: growing delays), 'client' (any account from one network: the per-network
-- throttle), 'internal' (the internal routes' shared secret). net is the client network
-- ("192.0.2.7/32", "2001:db8:1:2::/64"). A row whose last failure is older than the
-- caller's window starts again at 1; old rows are pruned by last_at.

CREATE TABLE auth_failures (
	key @TEXT@ NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
	net @TEXT@ NOT NULL CHECK (length(net) BETWEEN 1 AND 64),
	failures @INT@ NOT NULL CHECK (failures >= 1),
	first_at @INT@ NOT NULL,
	last_at @INT@ NOT NULL,
	PRIMARY KEY (key, net)
);
CREATE INDEX auth_failures_last ON auth_failures (last_at);
