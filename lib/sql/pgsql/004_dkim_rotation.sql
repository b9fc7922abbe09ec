-- 004_dkim_rotation.sql - DKIM key rotation (issue 18).
-- PostgreSQL dialect of lib/sql/sqlite/004_dkim_rotation.sql (see there for the meaning).
ALTER TABLE dkim_keys ADD COLUMN state TEXT COLLATE "C" NOT NULL DEFAULT 'active'
	CHECK (state IN ('pending', 'active', 'retiring', 'retired', 'inactive'));
ALTER TABLE dkim_keys ADD COLUMN activated_at BIGINT;
ALTER TABLE dkim_keys ADD COLUMN retire_at BIGINT;
UPDATE dkim_keys SET state = 'inactive' WHERE active = 0;
UPDATE dkim_keys SET activated_at = created_at WHERE active <> 0;
CREATE UNIQUE INDEX dkim_keys_one_pending ON dkim_keys (domain) WHERE state = 'pending';
