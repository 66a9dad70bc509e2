-- rlm_rust's own tables: user profiles (the account state both front doors
-- enforce), batches, API tokens, login tokens and one-time codes. Stock
-- tables are not touched: a user without a profile row works as in rlm_sql.

CREATE TABLE IF NOT EXISTS rlm_rust_batch (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    strategy         text NOT NULL CHECK (strategy IN ('csv', 'prefix')),
    prefix           text,
    expiration_date  date,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rlm_rust_user (
    id              bigserial PRIMARY KEY,
    -- The name the module looks up (sql_user_name), as in radcheck.
    username        text NOT NULL UNIQUE,
    email           text,
    first_name      text NOT NULL DEFAULT '',
    last_name       text NOT NULL DEFAULT '',
    mobile_number   text,
    server_name     text,
    server_address  text,
    active          boolean NOT NULL DEFAULT true,
    -- FortiAuthenticator's disable reasons: 0 manually disabled, 1 account
    -- inactivity, 2 too many failed attempts, 3 account expiry, 4 password
    -- expiry, 5 FTM activation expiry, 6 revoked token, 7 usage limit
    -- exceeded, 8 pending administrator approval.
    reason          smallint CHECK (reason BETWEEN 0 AND 8),
    -- Checked at login time: past it the module and authorize/ reject.
    expiration      timestamptz,
    -- A hash the module verifies itself (Argon2id or Django pbkdf2_sha256);
    -- NULL when the credential lives in radcheck.
    password_hash   text,
    token_auth      boolean NOT NULL DEFAULT false,
    token_type      text CHECK (token_type IN ('ftk', 'ftm', 'ftc', 'email', 'sms', 'dual')),
    token_serial    text,
    ftm_act_method  text CHECK (ftm_act_method IN ('email', 'sms')),
    fido            boolean NOT NULL DEFAULT false,
    batch_id        bigint REFERENCES rlm_rust_batch (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rlm_rust_user_email ON rlm_rust_user (lower(email));
CREATE INDEX IF NOT EXISTS rlm_rust_user_batch ON rlm_rust_user (batch_id);

-- Admin API tokens: only a SHA-256 of the random token is stored.
CREATE TABLE IF NOT EXISTS rlm_rust_api_token (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- A user's auth token (POST .../token/), SHA-256 stored.
CREATE TABLE IF NOT EXISTS rlm_rust_user_token (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES rlm_rust_user (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One-time RADIUS passwords: accepted once by the module as User-Password.
CREATE TABLE IF NOT EXISTS rlm_rust_radius_token (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES rlm_rust_user (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX IF NOT EXISTS rlm_rust_radius_token_open ON rlm_rust_radius_token (user_id) WHERE used_at IS NULL;

-- Out-of-band codes (sendoobtoken), SHA-256 stored.
CREATE TABLE IF NOT EXISTS rlm_rust_oob_code (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES rlm_rust_user (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'console')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
