//! README claims that no other end-to-end test covers, one test each, through
//! a real radiusd: `sql_user_name`, `default_profile` / `read_profiles`,
//! `Rust-Password-Hash`, `cache_size = 0`, accounting from a NAS without an
//! address, the station ids in radpostauth, back-quoted values and registered
//! comparisons, bad rows, cache invalidation by tables other than radcheck
//! and Interim-Update after Stop.
//!
//! Tests whose semantics rlm_sql defines also pass with
//! `RLM_RUST_E2E_BACKEND=sql`; the others say `rust_only!`.

use std::time::{Duration, Instant};

use e2e::{e2e_env, q, rust_only, stock_acct_unique_id, Backend, Env, Radiusd, Reply, TestDb};

/// How long a change made with plain SQL may take to reach the module.
const FOLLOW: Duration = Duration::from_secs(2);

/// Polls `f` every 20 ms until it holds; fails after `limit`.
fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the module's cache listener is connected: before that the
/// cache is bypassed and a test of its coherence would prove nothing.
fn wait_for_listener(env: &Env, db: &TestDb) {
    if env.backend != Backend::Rust {
        return;
    }
    eventually("cache listener", Duration::from_secs(10), || {
        db.count(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'rlm_rust listener' AND datname = $1",
            &[&db.name],
        ) == 1
    });
}

fn answered(r: &Reply) {
    assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{}", r.raw);
}

/// radacct's (username, host(nasipaddress), acctstoptime IS NOT NULL) of
/// the session `session`.
fn radacct_row(db: &TestDb, session: &str) -> (String, String, bool) {
    let rows = db.query(
        "SELECT username, host(nasipaddress), acctstoptime IS NOT NULL \
         FROM radacct WHERE acctsessionid = $1",
        &[&session],
    );
    assert_eq!(rows.len(), 1, "radacct rows of session {session}");
    (rows[0].get(0), rows[0].get(1), rows[0].get(2))
}

// ---- sql_user_name

#[test]
fn sql_user_name_is_the_name_looked_up_and_the_radacct_username() {
    let env = e2e_env!();
    let db = TestDb::create(env, "rc_sql_user_name");
    db.user("alice", "alice-pw");
    db.reply("alice", "Reply-Message", ":=", "Hello alice");
    let rad = Radiusd::builder(env, &db, "rc_sql_user_name")
        .config(r#"sql_user_name = "%{tolower:%{User-Name}}""#)
        .start();

    // Without the item "ALICE" is an unknown user (tests/auth.rs).
    let r = rad.pap("ALICE", "alice-pw");
    assert!(r.is_accept(), "ALICE looked up as alice:\n{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("Hello alice"), "{}", r.raw);
    assert!(rad.pap("ALICE", "wrong").is_reject());
    assert!(rad.pap("alice", "alice-pw").is_accept());

    answered(&rad.acct(
        "User-Name = \"Alice\", Acct-Session-Id = \"s-1\", NAS-IP-Address = 10.0.0.1, \
         NAS-Port = 1, Acct-Status-Type = Start",
    ));
    assert_eq!(radacct_row(&db, "s-1").0, "alice", "radacct.username");
}

// ---- default_profile / read_profiles

/// `default_profile` as the backend spells it (rlm_sql: default_user_profile).
fn default_profile(env: &Env, profile: &str) -> String {
    match env.backend {
        Backend::Rust => format!("default_profile = {}", q(profile)),
        Backend::Sql => format!("default_user_profile = {}", q(profile)),
    }
}

/// plain: no User-Profile; vip-user: `User-Profile := vip`. The profiles'
/// groups come from radusergroup rows whose username is the profile name.
fn seed_profiles(db: &TestDb) {
    db.user("plain", "plain-pw");
    db.user("vip-user", "vip-pw");
    db.check("vip-user", "User-Profile", ":=", "vip");
    db.member("guests", "guest-group", 1);
    db.group_reply("guest-group", "Session-Timeout", ":=", "900");
    db.member("vip", "vip-group", 1);
    db.group_reply("vip-group", "Session-Timeout", ":=", "7200");
}

#[test]
fn default_profile_groups_apply_to_users_without_a_user_profile() {
    let env = e2e_env!();
    let db = TestDb::create(env, "rc_default_profile");
    seed_profiles(&db);
    let rad = Radiusd::builder(env, &db, "rc_default_profile")
        .config(&default_profile(env, "guests"))
        .start();

    let r = rad.pap("plain", "plain-pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(r.get("Session-Timeout"), Some("900"), "{}", r.raw);
    // A User-Profile of the user's own wins over the default.
    let r = rad.pap("vip-user", "vip-pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(r.all("Session-Timeout"), vec!["7200"], "{}", r.raw);
}

#[test]
fn read_profiles_no_ignores_default_profile_and_user_profile() {
    let env = e2e_env!();
    let db = TestDb::create(env, "rc_read_profiles");
    seed_profiles(&db);
    let rad = Radiusd::builder(env, &db, "rc_read_profiles")
        .config(&default_profile(env, "guests"))
        .config("read_profiles = no")
        .start();

    for (user, pw) in [("plain", "plain-pw"), ("vip-user", "vip-pw")] {
        let r = rad.pap(user, pw);
        assert!(r.is_accept(), "{user}:\n{}", r.raw);
        assert_eq!(r.get("Session-Timeout"), None, "{user}:\n{}", r.raw);
    }
}

// ---- Rust-Password-Hash

const DJANGO_SECRET: &str =
    "pbkdf2_sha256$1000$abcdefghijklmnop$xqWi0Bgxi2nNQ4QS/VBXGMXBXvMSKGsvDVCC3paWhmY=";

#[test]
fn rust_password_hash_in_radcheck_verifies_django_and_argon2_hashes() {
    let env = e2e_env!();
    // rlm_rust-only: Rust-Password-Hash is the module's own attribute
    rust_only!(env);
    let db = TestDb::create(env, "rc_password_hash");
    db.check("django", "Rust-Password-Hash", ":=", DJANGO_SECRET);
    db.reply("django", "Reply-Message", ":=", "Hello django");
    db.check(
        "argon",
        "Rust-Password-Hash",
        ":=",
        &radius_core::password::hash_password("argon-pw"),
    );
    let rad = Radiusd::start(env, &db, "rc_password_hash");

    let r = rad.pap("django", "secret");
    assert!(r.is_accept(), "Django hash, right password:\n{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("Hello django"), "{}", r.raw);
    for wrong in ["Secret", "secret ", "wrong", ""] {
        let r = rad.pap("django", wrong);
        assert!(r.is_reject(), "Django hash, password {wrong:?}:\n{}", r.raw);
    }
    assert!(rad.pap("argon", "argon-pw").is_accept());
    assert!(rad.pap("argon", "argon-pw!").is_reject());
    // A remembered success does not turn into a wrong password's accept.
    assert!(rad.pap("django", "secret").is_accept());
    assert!(rad.pap("django", "wrong").is_reject());
}

// ---- cache_size = 0

#[test]
fn cache_size_zero_reads_every_change_at_the_very_next_request() {
    let env = e2e_env!();
    // Both backends: rlm_sql keeps nothing and reads every change at the
    // next request, which is what cache_size = 0 must match (rlm_sql
    // ignores the item).
    let db = TestDb::create(env, "rc_cache_off");
    db.user("alice", "pw-1");
    let rad = Radiusd::builder(env, &db, "rc_cache_off")
        .config("cache_size = 0")
        .start();
    assert!(rad.pap("alice", "pw-1").is_accept());
    assert!(rad.pap("alice", "pw-1").is_accept());
    assert!(rad.pap("alice", "wrong").is_reject());

    let set = |pw: &str| {
        db.query(
            "UPDATE radcheck SET value = $1 WHERE username = 'alice' \
             AND attribute = 'Cleartext-Password'",
            &[&pw],
        );
    };
    set("pw-2");
    assert!(
        rad.pap("alice", "pw-2").is_accept(),
        "the very next request"
    );
    assert!(rad.pap("alice", "pw-1").is_reject());

    // Without notifications a cache would now serve pw-2 for good: with
    // cache_size = 0 nothing is kept, so the change is still seen at once.
    db.exec("ALTER TABLE radcheck DISABLE TRIGGER USER");
    set("pw-3");
    assert!(
        rad.pap("alice", "pw-3").is_accept(),
        "the very next request"
    );
    assert!(rad.pap("alice", "pw-2").is_reject());
}

// ---- accounting from a NAS without an address

#[test]
fn accounting_without_nas_address_is_recorded_under_the_source_address() {
    let env = e2e_env!();
    // rlm_rust-only: deliberate difference (README, accounting): rlm_sql's query fails on it, no
    // Accounting-Response
    rust_only!(env);
    let db = TestDb::create(env, "rc_no_nas_ip");
    let rad = Radiusd::start(env, &db, "rc_no_nas_ip");

    // RFC 2866 allows NAS-Identifier alone; rlm_sql's query fails on it.
    let common = "User-Name = dave, Acct-Session-Id = \"s-nonas\", NAS-Identifier = \"ap-7\", \
                  NAS-Port = 3";
    answered(&rad.acct(&format!("{common}, Acct-Status-Type = Start")));
    assert_eq!(
        radacct_row(&db, "s-nonas"),
        ("dave".to_string(), "127.0.0.1".to_string(), false)
    );
    let unique: String = db.scalar(
        "SELECT acctuniqueid FROM radacct WHERE acctsessionid = 's-nonas'",
        &[],
    );
    assert_eq!(
        unique,
        stock_acct_unique_id("dave", "s-nonas", "", "ap-7", "", "3")
    );
    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Stop, Acct-Session-Time = 30"
    )));
    assert_eq!(
        radacct_row(&db, "s-nonas"),
        ("dave".to_string(), "127.0.0.1".to_string(), true),
        "the Stop closes the same row"
    );
}

// ---- radpostauth station ids

#[test]
fn station_ids_land_in_radpostauth_for_accepts_and_rejects() {
    let env = e2e_env!();
    // rlm_rust-only: the stock 3.2.1 post-auth query writes no station ids (the columns stay
    // NULL)
    rust_only!(env);
    let db = TestDb::create(env, "rc_postauth_ids");
    db.user("alice", "alice-pw");
    let rad = Radiusd::start(env, &db, "rc_postauth_ids");

    let ids = "Called-Station-Id = \"aa-bb-cc-dd-ee-ff:corp\", \
               Calling-Station-Id = \"11-22-33-44-55-66\"";
    for (pw, accept) in [("alice-pw", true), ("wrong", false)] {
        let r = rad.auth(&format!(
            "User-Name = alice, User-Password = {}, {ids}",
            q(pw)
        ));
        assert_eq!(r.is_accept(), accept, "{}", r.raw);
    }
    db.postauth_replies("alice", 2);
    let rows: Vec<(String, Option<String>, Option<String>)> = db
        .query(
            "SELECT reply, calledstationid, callingstationid FROM radpostauth ORDER BY id",
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let called = Some("aa-bb-cc-dd-ee-ff:corp".to_string());
    let calling = Some("11-22-33-44-55-66".to_string());
    assert_eq!(
        rows,
        vec![
            ("Access-Accept".into(), called.clone(), calling.clone()),
            ("Access-Reject".into(), called, calling),
        ]
    );
}

// ---- back-quoted values, registered comparisons

#[test]
fn back_quoted_reply_values_are_expanded_and_registered_comparisons_work() {
    let env = e2e_env!();
    let db = TestDb::create(env, "rc_xlat");
    db.user("alice", "alice-pw");
    db.reply("alice", "Reply-Message", ":=", "`Hello %{User-Name}`");
    // Packet-Src-IP-Address is no request attribute: FreeRADIUS compares it
    // through a registered comparison.
    db.check("alice", "Packet-Src-IP-Address", "==", "127.0.0.1");
    db.user("elsewhere", "elsewhere-pw");
    db.check("elsewhere", "Packet-Src-IP-Address", "==", "192.0.2.1");
    // (Not `!=`: FreeRADIUS 3.2's generic comparison applies the operator
    // twice, so `Packet-Src-IP-Address != 127.0.0.1` matches a request from
    // 127.0.0.1, with rlm_sql and rlm_rust alike.)
    let rad = Radiusd::start(env, &db, "rc_xlat");

    let r = rad.pap("alice", "alice-pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("Hello alice"), "{}", r.raw);
    assert!(rad.pap("elsewhere", "elsewhere-pw").is_reject());
}

// ---- bad rows

#[test]
fn a_bad_row_fails_only_its_own_request() {
    let env = e2e_env!();
    let db = TestDb::create(env, "rc_bad_row");
    db.user("good", "good-pw");
    // (Not "No-Such-Attribute": that is a real internal attribute, 1046.)
    db.user("unknown-attr", "pw");
    db.check("unknown-attr", "Bogus-Attribute-Name", ":=", "x");
    db.user("unknown-reply", "pw");
    db.reply("unknown-reply", "Bogus-Attribute-Name", ":=", "x");
    // "??", not "=>": rlm_sql's tokenizer takes "=>" for "=" (no failure
    // there) where rlm_rust refuses it.
    db.user("bad-op", "pw");
    db.check("bad-op", "NAS-Port", "??", "5");
    db.user("bad-value", "pw");
    db.reply("bad-value", "Session-Timeout", ":=", "not-a-number");
    let mut rad = Radiusd::start(env, &db, "rc_bad_row");

    // Every row would let the user in if it were skipped or (the operator)
    // read as `==`: NAS-Port = 5 is in the request.
    for user in ["unknown-attr", "unknown-reply", "bad-op", "bad-value"] {
        let r = rad.auth(&format!(
            "User-Name = {}, User-Password = \"pw\", NAS-Port = 5",
            q(user)
        ));
        assert!(!r.is_accept(), "{user}: a bad row must fail:\n{}", r.raw);
        assert!(rad.is_alive(), "radiusd died on {user}");
        let ok = rad.pap("good", "good-pw");
        assert!(ok.is_accept(), "after {user}:\n{}", ok.raw);
    }
}

// ---- cache invalidation beyond radcheck

#[test]
fn reply_membership_and_group_check_changes_reach_the_next_request() {
    let env = e2e_env!();
    let db = TestDb::create(env, "rc_invalidate");
    db.user("alice", "alice-pw");
    db.reply("alice", "Reply-Message", ":=", "Hello alice");
    db.group_reply("staff", "Idle-Timeout", ":=", "600");
    let rad = Radiusd::start(env, &db, "rc_invalidate");
    wait_for_listener(env, &db);
    let req = || rad.auth("User-Name = alice, User-Password = \"alice-pw\", NAS-Port = 7");
    // Twice: the second answer comes from the cache.
    for _ in 0..2 {
        let r = req();
        assert!(r.is_accept(), "{}", r.raw);
        assert_eq!(r.get("Reply-Message"), Some("Hello alice"), "{}", r.raw);
        assert_eq!(r.get("Idle-Timeout"), None, "{}", r.raw);
    }

    db.exec("TRUNCATE radreply");
    eventually("TRUNCATE radreply", FOLLOW, || {
        let r = req();
        r.is_accept() && r.get("Reply-Message").is_none()
    });

    db.member("alice", "staff", 1);
    eventually("radusergroup insert", FOLLOW, || {
        req().get("Idle-Timeout") == Some("600")
    });

    db.group_check("staff", "NAS-Port", "==", "8");
    eventually("radgroupcheck insert", FOLLOW, || {
        let r = req();
        r.is_accept() && r.get("Idle-Timeout").is_none()
    });
    db.exec("UPDATE radgroupcheck SET value = '7' WHERE groupname = 'staff'");
    eventually("radgroupcheck update", FOLLOW, || {
        req().get("Idle-Timeout") == Some("600")
    });
}

#[test]
fn a_new_one_time_token_reaches_the_next_request() {
    let env = e2e_env!();
    // rlm_rust-only: one-time tokens (rlm_rust_radius_token) are the module's own
    rust_only!(env);
    let db = TestDb::create(env, "rc_token");
    db.user("tok", "tok-pw");
    db.exec("INSERT INTO rlm_rust_user (username) VALUES ('tok')");
    // The polls below may offer the token before the module saw it: those
    // wrong passwords must not lock the account.
    let rad = Radiusd::builder(env, &db, "rc_token")
        .config("lockout_attempts = 0")
        .start();
    wait_for_listener(env, &db);
    assert!(rad.pap("tok", "tok-pw").is_accept());
    assert!(rad.pap("tok", "tok-pw").is_accept());
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef";
    assert!(rad.pap("tok", token).is_reject(), "no token yet");

    // As radius-admin's token/ stores one: SHA-256 of the token.
    db.query(
        "INSERT INTO rlm_rust_radius_token (user_id, token_hash, expires_at) \
         SELECT id, sha256(convert_to($1, 'UTF8')), now() + interval '1 hour' \
         FROM rlm_rust_user WHERE username = 'tok'",
        &[&token],
    );
    // Each try that fails leaves the token unused; the first accept uses it.
    eventually("new token accepted", FOLLOW, || {
        rad.pap("tok", token).is_accept()
    });
    assert!(rad.pap("tok", token).is_reject(), "a token works only once");
    assert!(rad.pap("tok", "tok-pw").is_accept());
}

// ---- Interim-Update after Stop

#[test]
fn interim_update_after_stop_changes_nothing_and_gets_no_response() {
    let env = e2e_env!();
    let db = TestDb::create(env, "rc_interim_after_stop");
    let rad = Radiusd::start(env, &db, "rc_interim_after_stop");
    let common = "User-Name = erin, Acct-Session-Id = \"s-late\", NAS-IP-Address = 10.0.0.9, \
                  NAS-Port = 4";
    let t0 = 1_700_000_000i64;
    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Start, Event-Timestamp = {t0}"
    )));
    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Stop, Event-Timestamp = {}, Acct-Session-Time = 60, \
         Acct-Input-Octets = 100",
        t0 + 60
    )));
    let row = |db: &TestDb| -> (Option<i64>, Option<i64>, Option<i64>, Option<i64>) {
        let r = db.query(
            "SELECT extract(epoch from acctupdatetime)::bigint, \
                    extract(epoch from acctstoptime)::bigint, acctsessiontime, acctinputoctets \
             FROM radacct WHERE acctsessionid = 's-late'",
            &[],
        );
        assert_eq!(r.len(), 1, "one radacct row");
        (r[0].get(0), r[0].get(1), r[0].get(2), r[0].get(3))
    };
    let stopped = row(&db);
    assert_eq!(stopped, (Some(t0 + 60), Some(t0 + 60), Some(60), Some(100)));

    // noop: FreeRADIUS sends no Accounting-Response (radclient: one try, 1 s).
    let late = rad.radclient(
        "acct",
        &format!(
            "{common}, Acct-Status-Type = Interim-Update, Event-Timestamp = {}, \
             Acct-Session-Time = 90, Acct-Input-Octets = 500",
            t0 + 90
        ),
        1,
    );
    assert_eq!(
        late.code, None,
        "an answer to Interim after Stop:\n{}",
        late.raw
    );
    assert_eq!(row(&db), stopped, "the stopped row changed");
    // The server goes on answering.
    answered(&rad.acct(
        "User-Name = erin, Acct-Session-Id = \"s-next\", NAS-IP-Address = 10.0.0.9, \
         NAS-Port = 5, Acct-Status-Type = Start",
    ));
}
