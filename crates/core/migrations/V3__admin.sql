-- radius-admin's tables next to V2's: explicit groups (the stock tables only
-- know a group through its rows, so an empty group could not exist) and the
-- printable credentials of prefix batches.

CREATE TABLE IF NOT EXISTS rlm_rust_group (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Passwords of prefix-batch users, kept in clear so vouchers can be printed
-- (CSV / PDF) after creation, as django-freeradius keeps them. The module
-- never reads this table; deleting a batch's rows removes them.
CREATE TABLE IF NOT EXISTS rlm_rust_batch_credential (
    batch_id  bigint NOT NULL REFERENCES rlm_rust_batch (id) ON DELETE CASCADE,
    username  text NOT NULL,
    password  text NOT NULL,
    PRIMARY KEY (batch_id, username)
);

-- GET accounting/ filters and orders on these.
CREATE INDEX IF NOT EXISTS radacct_username_idx ON radacct (username);
CREATE INDEX IF NOT EXISTS radacct_starttime_id_idx ON radacct (acctstarttime DESC, radacctid DESC);
