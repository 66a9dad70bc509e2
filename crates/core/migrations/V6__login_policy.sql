-- One login policy for both front doors (module and radius-admin).
--
-- nt_hash: the NT hash (32 hex digits) of the password set through
-- radius-admin, served as control:NT-Password so that MS-CHAP, PEAP-MSCHAPv2
-- and TTLS-MSCHAPv2 work for these users. NULL when the site turned it off,
-- or for a user whose password was set before V6 until their next
-- successful PAP login.
ALTER TABLE rlm_rust_user ADD COLUMN IF NOT EXISTS nt_hash text;

-- Lockout state (FortiAuthenticator's user lockout policy, disable reason 2)
-- of any user, stock-table users included, keyed by the looked-up name.
-- failures counts consecutive failed logins from both front doors;
-- locked_until is set when it reaches lockout_attempts ('infinity': until
-- an administrator unlocks). Shared by every radiusd host on this database.
CREATE TABLE IF NOT EXISTS rlm_rust_lockout (
    username      text PRIMARY KEY,
    failures      integer NOT NULL DEFAULT 0,
    last_failure  timestamptz,
    locked_until  timestamptz
);

-- Only a change of the lock itself reaches the caches: counting a failure
-- must not evict the user from every host's cache.
CREATE OR REPLACE FUNCTION rlm_rust_notify_lockout() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.locked_until IS NOT NULL THEN
            PERFORM pg_notify('rlm_rust_user', OLD.username);
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        IF NEW.locked_until IS NOT NULL THEN
            PERFORM pg_notify('rlm_rust_user', NEW.username);
        END IF;
    ELSIF NEW.locked_until IS DISTINCT FROM OLD.locked_until
       OR NEW.username IS DISTINCT FROM OLD.username THEN
        PERFORM pg_notify('rlm_rust_user', OLD.username);
        PERFORM pg_notify('rlm_rust_user', NEW.username);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS rlm_rust_notify ON rlm_rust_lockout;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON rlm_rust_lockout
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_lockout();
DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON rlm_rust_lockout;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON rlm_rust_lockout
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
