-- 002_auth_failures.sql - failed authentications per (key, client network) (issue 9).
-- PostgreSQL dialect of lib/sql/sqlite/002_auth_failures.sql (see there for the meaning).

CREATE TABLE auth_failures (
	key TEXT COLLATE "C" NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
	net TEXT COLLATE "C" NOT NULL CHECK (length(net) BETWEEN 1 AND 64),
	failures BIGINT NOT NULL CHECK (failures >= 1),
	first_at BIGINT NOT NULL,
	last_at BIGINT NOT NULL,
	PRIMARY KEY (key, net)
);
CREATE INDEX auth_failures_last ON auth_failures (last_at);
