-- The second factor (issue 15): TOTP seeds, RADIUS challenges, and the
-- outbox through which the module's e-mail/SMS codes reach radius-admin's
-- senders. None of these is read by authorize's cache, so they have no
-- cache-notify triggers: a login that uses a code invalidates nothing.

-- A user's TOTP seed (token_type ftm/ftk), sealed with ChaCha20-Poly1305
-- under a key derived from the secret file radius-admin and the module
-- share; last_step is the last time step accepted, so that a code is
-- accepted once, whichever front door it came through.
CREATE TABLE IF NOT EXISTS rlm_rust_totp (
    user_id     bigint PRIMARY KEY REFERENCES rlm_rust_user (id) ON DELETE CASCADE,
    seed        bytea NOT NULL,
    last_step   bigint,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- An Access-Challenge waiting for its code: the SHA-256 of the State sent
-- to the NAS, bound to the name that proved its password. Taken (deleted)
-- by the one request that answers it; expired rows are deleted as new
-- ones are made. Shared by every radiusd host on the database.
CREATE TABLE IF NOT EXISTS rlm_rust_challenge (
    state_hash  bytea PRIMARY KEY,
    username    text NOT NULL,
    user_id     bigint NOT NULL REFERENCES rlm_rust_user (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rlm_rust_challenge_expires ON rlm_rust_challenge (expires_at);

-- Codes to deliver: written by whoever issued the code (the module, or
-- radius-admin's auth/), in the transaction that stored the code's HMAC;
-- taken (deleted) and delivered by a running radius-admin, woken by the
-- notification. The code itself is sealed under the shared secret.
CREATE TABLE IF NOT EXISTS rlm_rust_oob_outbox (
    id           bigserial PRIMARY KEY,
    code_id      bigint NOT NULL REFERENCES rlm_rust_oob_code (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('email', 'sms')),
    destination  text NOT NULL,
    sealed_code  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION rlm_rust_notify_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rlm_rust_outbox', '');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS rlm_rust_notify ON rlm_rust_oob_outbox;
CREATE TRIGGER rlm_rust_notify AFTER INSERT ON rlm_rust_oob_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_outbox();
