-- 007_spam_expiry.sql - the spam classifier's per-user models and token expiry (issue 10).
-- PostgreSQL dialect of lib/sql/sqlite/007_spam_expiry.sql (see there for the meaning).
ALTER TABLE spam_tokens ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
UPDATE spam_tokens SET last_seen = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT);
CREATE INDEX spam_tokens_seen ON spam_tokens (scope, last_seen);
ALTER TABLE spam_meta ADD COLUMN reset_gen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spam_meta ADD COLUMN expired_at BIGINT NOT NULL DEFAULT 0;
