-- A prefix batch's printable credentials (rlm_rust_batch_credential) must
-- never outlive the password they show: once a user's password changes,
-- through radius-admin or any other tool, that user's clear credential is
-- deleted, so the batch's CSV/PDF no longer hands out an old password.

CREATE OR REPLACE FUNCTION rlm_rust_forget_batch_credential() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM rlm_rust_batch_credential WHERE username = OLD.username;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS rlm_rust_forget_batch_credential ON rlm_rust_user;
CREATE TRIGGER rlm_rust_forget_batch_credential
    AFTER UPDATE OF password_hash ON rlm_rust_user
    FOR EACH ROW WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash)
    EXECUTE FUNCTION rlm_rust_forget_batch_credential();
