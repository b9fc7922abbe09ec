--@ One source for both dialects, rendered by scripts/embed-sql (its header: @NAME@, --@sqlite).
-- 007_spam_expiry.sql - the spam classifier's per-user models and token expiry (issue 10).
-- Needs 003 only (spam_tokens, spam_meta); nothing of 004-006.
-- spam_tokens.last_seen: when a learned message last carried the token (set on learning
-- only, never when scoring: no write per scored message); rows older than expire_age, or
-- the least useful when a model holds more than its max_tokens, are deleted by
-- `mailwardenctl spam expire` and by the automatic expiry after learning. Rows that exist
-- before this migration count as seen now.
-- spam_meta.reset_gen: the generation of the last expiry; a reader whose loaded
-- generation is older reloads the whole model (deleted rows are not in a delta).
-- spam_meta.expired_at: when the last expiry of the scope ran (the automatic one runs at
-- most once per expire_interval, claimed by one process with a conditional update).
-- Scopes: 0 is the global model, a users.id the user's own model (per_user).
ALTER TABLE spam_tokens ADD COLUMN last_seen @INT@ NOT NULL DEFAULT 0;
UPDATE spam_tokens SET last_seen = @NOW@;
CREATE INDEX spam_tokens_seen ON spam_tokens (scope, last_seen);
ALTER TABLE spam_meta ADD COLUMN reset_gen @INT@ NOT NULL DEFAULT 0;
ALTER TABLE spam_meta ADD COLUMN expired_at @INT@ NOT NULL DEFAULT 0;
