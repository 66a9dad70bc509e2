-- radius-admin (issue 14): scoped, expiring API tokens; user auth tokens
-- with a purpose (the user's own sessions, usage and password) that expire
-- and are one per user; out-of-band codes with an attempt count; batches
-- that say when their printable credentials were purged.

-- API tokens: what a token may do ('read': GET of the management API,
-- 'write': every management operation, 'radius': authorize/, postauth/ and
-- POST accounting/, the endpoints rlm_rest calls), an optional end, and
-- when it was last used (written at most once a minute per token).
-- Existing tokens keep every right.
ALTER TABLE rlm_rust_api_token
    ADD COLUMN IF NOT EXISTS scopes text[] NOT NULL DEFAULT '{read,write,radius}',
    ADD COLUMN IF NOT EXISTS expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_used_at timestamptz;
ALTER TABLE rlm_rust_api_token DROP CONSTRAINT IF EXISTS rlm_rust_api_token_scopes;
ALTER TABLE rlm_rust_api_token ADD CONSTRAINT rlm_rust_api_token_scopes
    CHECK (scopes <@ '{read,write,radius}'::text[] AND cardinality(scopes) > 0);

-- User auth tokens were stored forever and checked nowhere; from now on
-- they open the user's own API, so the old never-expiring ones are dropped
-- rather than given that power. One token per user (a login replaces it).
DELETE FROM rlm_rust_user_token;
ALTER TABLE rlm_rust_user_token ADD COLUMN IF NOT EXISTS expires_at timestamptz NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS rlm_rust_user_token_one ON rlm_rust_user_token (user_id);

-- Out-of-band codes are now an HMAC-SHA256 under a server secret; the
-- unsalted SHA-256 ones can never be checked and are dropped. Each code
-- takes at most 5 wrong attempts.
DELETE FROM rlm_rust_oob_code;
ALTER TABLE rlm_rust_oob_code ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS rlm_rust_oob_code_user ON rlm_rust_oob_code (user_id, created_at);

-- Set by `radius-admin housekeeping` when it deletes a prefix batch's
-- clear credentials (rlm_rust_batch_credential).
ALTER TABLE rlm_rust_batch ADD COLUMN IF NOT EXISTS credentials_purged_at timestamptz;
