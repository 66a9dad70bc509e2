//! The account state the module enforces (issue 4), through the admin's
//! public interfaces (the built `radius-admin`: `serve` over HTTP, and the
//! CLI) and a real radiusd loading the module, on the same database:
//! batch users log in at once, expired and disabled users are refused
//! whatever their password, one-time RADIUS tokens work exactly once, and
//! users that exist only in the stock tables keep working. rlm_rust-only.

use std::time::{Duration, Instant};

use e2e::{admin_cli, batch_credentials, e2e_env, rust_only, AdminServer, Radiusd, TestDb};
use serde_json::json;

/// A date relative to today (UTC), as YYYY-MM-DD.
fn utc_date(db: &TestDb, days: i32) -> String {
    db.scalar(
        "SELECT to_char((now() AT TIME ZONE 'UTC')::date + $1::int, 'YYYY-MM-DD')",
        &[&days],
    )
}

/// A prefix batch through POST /api/v1/batch/.
fn prefix_batch(
    admin: &AdminServer,
    name: &str,
    prefix: &str,
    count: u32,
    expiration_date: Option<&str>,
) -> Vec<(String, String)> {
    let mut body = json!({
        "name": name,
        "strategy": "prefix",
        "prefix": prefix,
        "number_of_users": count,
    });
    if let Some(d) = expiration_date {
        body["expiration_date"] = json!(d);
    }
    let batch = admin.post("/api/v1/batch/", &body).expect(201);
    let creds = batch_credentials(&batch);
    assert_eq!(creds.len(), count as usize, "{batch}");
    creds
}

/// How often `needle` occurs in radiusd's log (the module's refusal lines
/// name the account state: "<user>: account disabled (...)").
fn log_count(rad: &Radiusd, needle: &str) -> usize {
    rad.log().matches(needle).count()
}

/// Waits until radiusd's log holds `n` lines containing `needle`.
fn assert_log_count(rad: &Radiusd, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while log_count(rad, needle) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        log_count(rad, needle),
        n,
        "{needle:?} in radiusd's log:\n{}",
        rad.log_tail(40)
    );
}

#[test]
fn prefix_batch_users_log_in_through_radiusd_at_once() {
    let env = e2e_env!();
    // rlm_rust-only: radius-admin batches (rlm_rust_user); rlm_sql has no account state
    rust_only!(env);
    let db = TestDb::create(env, "acct_state_batch");
    let rad = Radiusd::start(env, &db, "acct_state_batch");
    let admin = AdminServer::start(env, &db, "acct_state_batch");

    let valid_through = utc_date(&db, 1);
    let creds = prefix_batch(&admin, "lobby", "guest", 3, Some(&valid_through));
    let names: Vec<&str> = creds.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(names, ["guest1", "guest2", "guest3"]);
    // The credential lives in the profile (a hash only the module verifies),
    // not in radcheck.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM radcheck WHERE username LIKE 'guest%'",
            &[]
        ),
        0
    );

    // Straight after the batch answer, no wait: every user is accepted.
    for (user, pw) in &creds {
        let r = rad.pap(user, pw);
        assert!(r.is_accept(), "{user} with its password:\n{}", r.raw);
    }
    let (u1, pw1) = &creds[0];
    let (_, pw2) = &creds[1];
    for (pw, why) in [
        ("wrong-password", "a wrong password"),
        (pw2.as_str(), "another batch user's password"),
        ("", "an empty password"),
    ] {
        let r = rad.pap(u1, pw);
        assert!(r.is_reject(), "{u1} with {why}:\n{}", r.raw);
    }
    // Nothing got locked or consumed by the rejects.
    assert!(rad.pap(u1, pw1).is_accept());

    assert_eq!(
        db.postauth_replies(u1, 5),
        [
            "Access-Accept",
            "Access-Reject",
            "Access-Reject",
            "Access-Reject",
            "Access-Accept"
        ]
    );
    for (user, _) in &creds[1..] {
        assert_eq!(db.postauth_replies(user, 1), ["Access-Accept"]);
    }
}

#[test]
fn expired_batch_users_are_rejected_with_the_right_password() {
    let env = e2e_env!();
    // rlm_rust-only: batch expiry lives in rlm_rust_user; rlm_sql has no account state
    rust_only!(env);
    let db = TestDb::create(env, "acct_state_expired");
    let rad = Radiusd::start(env, &db, "acct_state_expired");

    // Two batches through the CLI: valid through yesterday (expired at
    // today's midnight UTC) and through tomorrow. Same generator, same
    // module path: only the expiry differs.
    let csv_creds = |prefix: &str, date: &str| -> Vec<(String, String)> {
        let out = admin_cli(
            env,
            &db,
            &[
                "batch",
                "create",
                "--prefix",
                prefix,
                "--count",
                "2",
                "--expiration-date",
                date,
            ],
        );
        let text = String::from_utf8(out.stdout).expect("UTF-8 CSV");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("username,password"), "{text}");
        let creds: Vec<(String, String)> = lines
            .map(|l| {
                let (u, p) = l.split_once(',').expect("username,password");
                (u.to_string(), p.to_string())
            })
            .collect();
        assert_eq!(creds.len(), 2, "{text}");
        creds
    };
    let expired = csv_creds("old", &utc_date(&db, -1));
    let valid = csv_creds("new", &utc_date(&db, 1));

    for (user, pw) in &valid {
        let r = rad.pap(user, pw);
        assert!(
            r.is_accept(),
            "{user}, batch valid through tomorrow:\n{}",
            r.raw
        );
    }
    for (user, pw) in &expired {
        let r = rad.pap(user, pw);
        assert!(
            r.is_reject(),
            "{user}, batch valid through yesterday, right password:\n{}",
            r.raw
        );
        assert_eq!(db.postauth_replies(user, 1), ["Access-Reject"]);
        assert_log_count(&rad, &format!("{user}: account expired"), 1);
    }
    // The refusal is the account state, checked at login time: the profile
    // itself was not changed by anyone (no job disabled it).
    let (active, reason): (bool, Option<i16>) = {
        let rows = db.query(
            "SELECT active, reason FROM rlm_rust_user WHERE username = $1",
            &[&expired[0].0],
        );
        (rows[0].get(0), rows[0].get(1))
    };
    assert!(active);
    assert_eq!(reason, None);
}

#[test]
fn profile_expiration_is_checked_at_login_time() {
    let env = e2e_env!();
    // rlm_rust-only: profile expiration lives in rlm_rust_user; rlm_sql has no account state
    rust_only!(env);
    let db = TestDb::create(env, "acct_state_expiry");
    let rad = Radiusd::start(env, &db, "acct_state_expiry");
    let admin = AdminServer::start(env, &db, "acct_state_expiry");

    let creds = prefix_batch(&admin, "conference", "conf", 1, None);
    let (user, pw) = &creds[0];
    assert!(rad.pap(user, pw).is_accept());
    let id = admin.user_id(user);
    let path = format!("/api/v1/radiususers/{id}/");

    // Expired a second ago: refused now, not at some later sweep.
    let past: String = db.scalar(
        "SELECT to_char((now() - interval '1 second') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        &[],
    );
    let u = admin
        .patch(&path, &json!({ "expiration": past }))
        .expect(200);
    assert_eq!(u["active"], true, "{u}");
    let r = rad.pap(user, pw);
    assert!(r.is_reject(), "{user} past its expiration:\n{}", r.raw);
    assert_log_count(&rad, &format!("{user}: account expired"), 1);

    // Extended again: accepted again.
    let future = utc_date(&db, 30);
    admin
        .patch(&path, &json!({ "expiration": future }))
        .expect(200);
    let r = rad.pap(user, pw);
    assert!(r.is_accept(), "{user} after extending:\n{}", r.raw);

    assert_eq!(
        db.postauth_replies(user, 3),
        ["Access-Accept", "Access-Reject", "Access-Accept"]
    );
}

#[test]
fn user_disabled_through_the_api_is_rejected_and_accepted_again_when_enabled() {
    let env = e2e_env!();
    // rlm_rust-only: disabling through radius-admin (rlm_rust_user); rlm_sql has no account
    // state
    rust_only!(env);
    let db = TestDb::create(env, "acct_state_disabled");
    let rad = Radiusd::start(env, &db, "acct_state_disabled");
    let admin = AdminServer::start(env, &db, "acct_state_disabled");

    let creds = prefix_batch(&admin, "staff", "staff", 2, None);
    let (user, pw) = &creds[0];
    let (other, other_pw) = &creds[1];
    assert!(rad.pap(user, pw).is_accept());
    let id = admin.user_id(user);
    let path = format!("/api/v1/radiususers/{id}/");

    // A one-time token obtained while active (used below while disabled).
    let login = admin
        .request(
            "POST",
            "/api/v1/token/",
            Some(&json!({ "username": user, "password": pw })),
            false,
        )
        .expect(200);
    let radius_token = login["radius_token"].as_str().expect("radius_token");

    let u = admin
        .patch(&path, &json!({ "active": false, "reason": 0 }))
        .expect(200);
    assert_eq!(
        (u["active"].clone(), u["reason"].clone()),
        (json!(false), json!(0))
    );
    let r = rad.pap(user, pw);
    assert!(r.is_reject(), "disabled {user}, right password:\n{}", r.raw);
    let r = rad.pap(user, radius_token);
    assert!(r.is_reject(), "disabled {user}, one-time token:\n{}", r.raw);
    assert_log_count(
        &rad,
        &format!("{user}: account disabled (reason 0: manually disabled)"),
        2,
    );
    // Only that user.
    assert!(rad.pap(other, other_pw).is_accept());

    // Another reason is kept and reported as such.
    admin
        .patch(&path, &json!({ "active": false, "reason": 2 }))
        .expect(200);
    assert!(rad.pap(user, pw).is_reject());
    assert_log_count(
        &rad,
        &format!("{user}: account disabled (reason 2: too many failed attempts)"),
        1,
    );

    let u = admin.patch(&path, &json!({ "active": true })).expect(200);
    assert_eq!(u["active"], true, "{u}");
    let r = rad.pap(user, pw);
    assert!(r.is_accept(), "re-enabled {user}:\n{}", r.raw);
    assert!(rad.pap(user, "wrong-password").is_reject());

    assert_eq!(
        db.postauth_replies(user, 6),
        [
            "Access-Accept",
            "Access-Reject",
            "Access-Reject",
            "Access-Reject",
            "Access-Accept",
            "Access-Reject"
        ]
    );
}

#[test]
fn one_time_radius_token_is_accepted_once() {
    let env = e2e_env!();
    // rlm_rust-only: one-time tokens (rlm_rust_radius_token) are the module's own
    rust_only!(env);
    let db = TestDb::create(env, "acct_state_token");
    let rad = Radiusd::start(env, &db, "acct_state_token");
    let admin = AdminServer::start(env, &db, "acct_state_token");

    let creds = prefix_batch(&admin, "event", "visitor", 2, Some(&utc_date(&db, 1)));
    let (user, pw) = &creds[0];
    let (other, _) = &creds[1];
    // The login endpoint needs no API token.
    let login = |u: &str, p: &str| {
        admin.request(
            "POST",
            "/api/v1/token/",
            Some(&json!({ "username": u, "password": p })),
            false,
        )
    };
    assert_eq!(login(user, "wrong-password").status, 401);
    let first = login(user, pw).expect(200);
    let second = login(user, pw).expect(200);
    let t1 = first["radius_token"].as_str().expect("radius_token");
    let t2 = second["radius_token"].as_str().expect("radius_token");
    assert_ne!(t1, t2);

    // Not another user's password.
    let r = rad.pap(other, t1);
    assert!(
        r.is_reject(),
        "{user}'s token as {other}'s password:\n{}",
        r.raw
    );

    // Each token exactly once, in any order; the account password is
    // untouched.
    let r = rad.pap(user, t2);
    assert!(r.is_accept(), "second token, first use:\n{}", r.raw);
    let r = rad.pap(user, t1);
    assert!(r.is_accept(), "first token, first use:\n{}", r.raw);
    let r = rad.pap(user, t1);
    assert!(r.is_reject(), "first token, second use:\n{}", r.raw);
    let r = rad.pap(user, t2);
    assert!(r.is_reject(), "second token, second use:\n{}", r.raw);
    let r = rad.pap(user, pw);
    assert!(r.is_accept(), "the password after the tokens:\n{}", r.raw);

    assert_eq!(
        db.postauth_replies(user, 5),
        [
            "Access-Accept",
            "Access-Accept",
            "Access-Reject",
            "Access-Reject",
            "Access-Accept"
        ]
    );
    assert_eq!(db.postauth_replies(other, 1), ["Access-Reject"]);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM rlm_rust_radius_token t JOIN rlm_rust_user u ON u.id = t.user_id \
             WHERE u.username = $1 AND t.used_at IS NOT NULL",
            &[user],
        ),
        2
    );
}

#[test]
fn stock_only_users_keep_working() {
    let env = e2e_env!();
    // rlm_rust-only: radius-admin on the same database and its tokens; rlm_sql has neither
    rust_only!(env);
    let db = TestDb::create(env, "acct_state_stock");
    db.user("stock", "stock-pw");
    db.reply("stock", "Reply-Message", ":=", "Hello stock");
    let rad = Radiusd::start(env, &db, "acct_state_stock");
    let admin = AdminServer::start(env, &db, "acct_state_stock");
    // The admin's batches on the same database change nothing for it.
    prefix_batch(&admin, "others", "other", 2, Some(&utc_date(&db, -1)));

    let r = rad.pap("stock", "stock-pw");
    assert!(r.is_accept(), "stock-only user:\n{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("Hello stock"), "{}", r.raw);
    assert!(rad.pap("stock", "wrong-pw").is_reject());
    assert_eq!(
        db.count(
            "SELECT count(*) FROM rlm_rust_user WHERE username = 'stock'",
            &[]
        ),
        0
    );

    // A login through the API gives it a (hash-less, active) profile for
    // its tokens: the radcheck password keeps working, the token works once.
    let login = admin
        .request(
            "POST",
            "/api/v1/token/",
            Some(&json!({ "username": "stock", "password": "stock-pw" })),
            false,
        )
        .expect(200);
    let token = login["radius_token"].as_str().expect("radius_token");
    let r = rad.pap("stock", "stock-pw");
    assert!(r.is_accept(), "stock user with a profile now:\n{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("Hello stock"), "{}", r.raw);
    let r = rad.pap("stock", token);
    assert!(r.is_accept(), "stock user's one-time token:\n{}", r.raw);
    assert!(rad.pap("stock", token).is_reject());
    assert!(rad.pap("stock", "wrong-pw").is_reject());
    assert!(rad.pap("stock", "stock-pw").is_accept());

    assert_eq!(
        db.postauth_replies("stock", 7),
        [
            "Access-Accept",
            "Access-Reject",
            "Access-Accept",
            "Access-Accept",
            "Access-Reject",
            "Access-Reject",
            "Access-Accept"
        ]
    );
}
