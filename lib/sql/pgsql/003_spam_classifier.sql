-- 003_spam_classifier.sql - the statistical spam classifier's model (issue 10).
-- PostgreSQL dialect of lib/sql/sqlite/003_spam_classifier.sql (see there for the meaning).
-- REAL is an 8-byte float in SQLite: DOUBLE PRECISION here; BLOB is BYTEA.
CREATE TABLE spam_meta (
	scope BIGINT NOT NULL PRIMARY KEY,
	nspam BIGINT NOT NULL DEFAULT 0 CHECK (nspam >= 0),
	nham BIGINT NOT NULL DEFAULT 0 CHECK (nham >= 0),
	generation BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE spam_tokens (
	scope BIGINT NOT NULL,
	hash BIGINT NOT NULL,
	nspam BIGINT NOT NULL DEFAULT 0,
	nham BIGINT NOT NULL DEFAULT 0,
	weight DOUBLE PRECISION NOT NULL DEFAULT 0,
	gen BIGINT NOT NULL,
	PRIMARY KEY (scope, hash)
);
CREATE INDEX spam_tokens_gen ON spam_tokens (scope, gen);
CREATE TABLE spam_learned (
	scope BIGINT NOT NULL,
	digest BYTEA NOT NULL CHECK (octet_length(digest) = 32),
	spam INTEGER NOT NULL CHECK (spam IN (0, 1)),
	learned_at BIGINT NOT NULL,
	PRIMARY KEY (scope, digest)
);
