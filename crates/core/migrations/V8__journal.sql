-- The local journal's bookkeeping (durability = journal): how far each
-- radiusd journal has been applied, updated in the same transaction as the
-- rows it applied, so that a crash between the two neither loses nor
-- duplicates a record. One row per journal directory (its random id).
CREATE TABLE IF NOT EXISTS rlm_rust_journal (
    journal_id  text PRIMARY KEY,
    host        text NOT NULL,
    dir         text NOT NULL,
    applied_seq bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Records PostgreSQL refused (a value out of range, a constraint the
-- operator added), set aside so that the records behind them are written.
-- `record` is the journal's own encoding (radius-admin dead-letters replay
-- applies it again); `record_text` is for reading.
CREATE TABLE IF NOT EXISTS rlm_rust_dead_letter (
    id           bigserial PRIMARY KEY,
    journal_id   text NOT NULL,
    seq          bigint NOT NULL,
    kind         text NOT NULL,
    reason       text NOT NULL,
    record       bytea NOT NULL,
    record_text  text NOT NULL,
    set_aside_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (journal_id, seq)
);
