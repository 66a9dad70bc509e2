-- Cache coherence: every change to a table the module's authorize reads
-- notifies the user or group it concerns (rlm_rust's cache listens), so a
-- change from any tool is seen at once. AFTER triggers: the notification is
-- delivered only if the transaction commits.

CREATE OR REPLACE FUNCTION rlm_rust_notify_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('rlm_rust_user', OLD.username);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.username IS DISTINCT FROM OLD.username) THEN
        PERFORM pg_notify('rlm_rust_user', NEW.username);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION rlm_rust_notify_group() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('rlm_rust_group', OLD.groupname);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('rlm_rust_group', NEW.groupname);
    END IF;
    RETURN NULL;
END $$;

-- One-time tokens belong to a user through rlm_rust_user.id.
CREATE OR REPLACE FUNCTION rlm_rust_notify_token() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rlm_rust_user', u.username)
       FROM rlm_rust_user u
      WHERE u.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION rlm_rust_notify_flush() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rlm_rust_flush', TG_TABLE_NAME);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS rlm_rust_notify ON radcheck;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON radcheck
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_user();
DROP TRIGGER IF EXISTS rlm_rust_notify ON radreply;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON radreply
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_user();
DROP TRIGGER IF EXISTS rlm_rust_notify ON radusergroup;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON radusergroup
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_user();
DROP TRIGGER IF EXISTS rlm_rust_notify ON rlm_rust_user;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON rlm_rust_user
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_user();
DROP TRIGGER IF EXISTS rlm_rust_notify ON radgroupcheck;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON radgroupcheck
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_group();
DROP TRIGGER IF EXISTS rlm_rust_notify ON radgroupreply;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON radgroupreply
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_group();
DROP TRIGGER IF EXISTS rlm_rust_notify ON rlm_rust_radius_token;
CREATE TRIGGER rlm_rust_notify AFTER INSERT OR UPDATE OR DELETE ON rlm_rust_radius_token
    FOR EACH ROW EXECUTE FUNCTION rlm_rust_notify_token();

DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON radcheck;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON radcheck
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON radreply;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON radreply
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON radusergroup;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON radusergroup
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON radgroupcheck;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON radgroupcheck
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON radgroupreply;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON radgroupreply
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON rlm_rust_user;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON rlm_rust_user
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
DROP TRIGGER IF EXISTS rlm_rust_notify_truncate ON rlm_rust_radius_token;
CREATE TRIGGER rlm_rust_notify_truncate AFTER TRUNCATE ON rlm_rust_radius_token
    FOR EACH STATEMENT EXECUTE FUNCTION rlm_rust_notify_flush();
