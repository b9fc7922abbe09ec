--@ One source for both dialects, rendered by scripts/embed-sql (its header: @NAME@, --@sqlite).
-- 003_spam_classifier.sql - the statistical spam classifier's model (issue 10).
-- scope 0 is the global model; other values are reserved for per-user models (a users.id).
-- spam_tokens: one row per token (a 64-bit keyed hash of the token text, see
-- lib/mw-tokenize.c): in how many learned spam and ham messages it appeared (for the
-- Robinson-Fisher classifier) and its weight in the logistic model. gen is the value of
-- spam_meta.generation when the row last changed, so a reader can reload only what
-- changed since its last look.
-- spam_learned: one row per learned message (a BLAKE2b digest of Message-ID and body),
-- with its label: a message is never learned twice, and a flipped label unlearns first.
CREATE TABLE spam_meta (
	scope @INT@ NOT NULL PRIMARY KEY,
	nspam @INT@ NOT NULL DEFAULT 0 CHECK (nspam >= 0),
	nham @INT@ NOT NULL DEFAULT 0 CHECK (nham >= 0),
	generation @INT@ NOT NULL DEFAULT 0
);
CREATE TABLE spam_tokens (
	scope @INT@ NOT NULL,
	hash @INT@ NOT NULL,
	nspam @INT@ NOT NULL DEFAULT 0,
	nham @INT@ NOT NULL DEFAULT 0,
	weight @REAL@ NOT NULL DEFAULT 0,
	gen @INT@ NOT NULL,
	PRIMARY KEY (scope, hash)
)@WITHOUT_ROWID@;
CREATE INDEX spam_tokens_gen ON spam_tokens (scope, gen);
CREATE TABLE spam_learned (
	scope @INT@ NOT NULL,
	digest @BLOB@ NOT NULL CHECK (@BLOB_LENGTH@(digest) = 32),
	spam INTEGER NOT NULL CHECK (spam IN (0, 1)),
	learned_at @INT@ NOT NULL,
	PRIMARY KEY (scope, digest)
)@WITHOUT_ROWID@;
