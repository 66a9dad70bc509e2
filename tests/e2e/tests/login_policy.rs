//! The one login policy through both front doors (issue 11): a real radiusd
//! loading the module and the built radius-admin on the same database
//! decide the same cases the same way; users created through radius-admin
//! log in over PAP and MS-CHAPv2; failures from both doors lock an account,
//! which the API shows and unlocks. rlm_rust-only.

use std::time::{Duration, Instant};

use e2e::{e2e_env, hex, mschap, q, rust_only, AdminServer, Radiusd, Reply, TestDb};
use serde_json::json;

fn mschapv2(rad: &Radiusd, user: &str, pw: &str) -> Reply {
    let m = mschap::mschapv2(user, pw, *b"0123456789abcdef", *b"fedcba9876543210", 7);
    rad.auth(&format!(
        "User-Name = {}, MS-CHAP-Challenge = 0x{}, MS-CHAP2-Response = 0x{}",
        q(user),
        hex(&m.challenge),
        hex(&m.response)
    ))
}

/// POST authorize/ (the rlm_rest door): its status code.
fn http_authorize(admin: &AdminServer, user: &str, pw: &str) -> u16 {
    admin
        .post(
            "/api/v1/authorize/",
            &json!({"username": user, "password": pw}),
        )
        .status
}

/// The body of POST radiususers/ for a user with `password`.
fn new_user(username: &str, password: &str) -> serde_json::Value {
    json!({
        "username": username,
        "password": password,
        "server_name": "radius1",
        "server_address": "127.0.0.1",
    })
}

/// Retries `f` until it holds or `limit` passes (a change reaches
/// radiusd's cache through a notification, within milliseconds).
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn radius_admin_users_log_in_over_pap_and_mschapv2() {
    let env = e2e_env!();
    // rlm_rust-only: radius-admin users (rlm_rust_user only); rlm_sql sees no such user
    rust_only!(env);
    let db = TestDb::create(env, "login_api_users");
    let rad = Radiusd::start(env, &db, "login_api_users");
    let admin = AdminServer::start(env, &db, "login_api_users");
    admin
        .post("/api/v1/radiususers/", &new_user("apiuser", "api-secret-1"))
        .expect(201);
    assert!(rad.pap("apiuser", "api-secret-1").is_accept());
    // The returning user: answered from memory, same decision.
    assert!(rad.pap("apiuser", "api-secret-1").is_accept());
    assert!(rad.pap("apiuser", "wrong").is_reject());
    let r = mschapv2(&rad, "apiuser", "api-secret-1");
    assert!(r.is_accept(), "MS-CHAPv2 of an API user:\n{}", r.raw);
    assert!(mschapv2(&rad, "apiuser", "wrong").is_reject());

    // A user whose password was set before NT hashes were kept gets one
    // at the next successful PAP login.
    db.exec("UPDATE rlm_rust_user SET nt_hash = NULL WHERE username = 'apiuser'");
    assert!(eventually(Duration::from_secs(2), || mschapv2(
        &rad,
        "apiuser",
        "api-secret-1"
    )
    .is_reject()));
    assert!(rad.pap("apiuser", "api-secret-1").is_accept());
    assert!(
        eventually(Duration::from_secs(5), || {
            db.count(
                "SELECT count(*) FROM rlm_rust_user WHERE username = 'apiuser' AND nt_hash IS NOT NULL",
                &[],
            ) == 1
        }),
        "no NT hash stored after a successful PAP login"
    );
    let r = mschapv2(&rad, "apiuser", "api-secret-1");
    assert!(r.is_accept(), "MS-CHAPv2 after the backfill:\n{}", r.raw);
}

#[test]
fn failures_from_both_doors_lock_and_the_api_unlocks() {
    let env = e2e_env!();
    // rlm_rust-only: lockout and radius-admin; rlm_sql has neither
    rust_only!(env);
    let db = TestDb::create(env, "login_lockout");
    db.user("stocky", "stock-pw");
    let rad = Radiusd::start(env, &db, "login_lockout");
    let admin = AdminServer::start(env, &db, "login_lockout");
    admin
        .post("/api/v1/radiususers/", &new_user("locky", "locky-pw-1"))
        .expect(201);
    let id = admin.user_id("locky");

    // Three wrong passwords over RADIUS (PAP and MS-CHAPv2), two over HTTP:
    // the default policy locks at five.
    assert!(rad.pap("locky", "nope1").is_reject());
    assert!(mschapv2(&rad, "locky", "nope2").is_reject());
    assert!(rad.pap("locky", "nope3").is_reject());
    assert_eq!(http_authorize(&admin, "locky", "nope4"), 401);
    let shown = admin.get(&format!("/api/v1/radiususers/{id}/")).expect(200);
    assert_eq!(shown["active"], json!(true), "not locked yet: {shown}");
    assert_eq!(http_authorize(&admin, "locky", "nope5"), 401);

    // Locked: the right password is refused by both doors.
    assert!(
        eventually(Duration::from_secs(2), || rad
            .pap("locky", "locky-pw-1")
            .is_reject()),
        "radiusd still accepts a locked user"
    );
    assert_eq!(http_authorize(&admin, "locky", "locky-pw-1"), 401);
    let shown = admin.get(&format!("/api/v1/radiususers/{id}/")).expect(200);
    assert_eq!(shown["active"], json!(false), "{shown}");
    assert_eq!(shown["reason"], json!(2), "{shown}");

    // An administrator unlocks; the module follows at once.
    admin
        .patch(
            &format!("/api/v1/radiususers/{id}/"),
            &json!({"active": true}),
        )
        .expect(200);
    assert!(
        eventually(Duration::from_secs(2), || rad
            .pap("locky", "locky-pw-1")
            .is_accept()),
        "radiusd still refuses after the unlock"
    );
    assert_eq!(http_authorize(&admin, "locky", "locky-pw-1"), 200);

    // A stock-table user is locked too, and a success ends a streak.
    for _ in 0..4 {
        assert!(rad.pap("stocky", "bad").is_reject());
    }
    assert!(rad.pap("stocky", "stock-pw").is_accept());
    assert!(eventually(Duration::from_secs(2), || db.count(
        "SELECT count(*) FROM rlm_rust_lockout WHERE username = 'stocky'",
        &[]
    ) == 0));
    for _ in 0..5 {
        assert!(rad.pap("stocky", "bad").is_reject());
    }
    assert!(
        eventually(Duration::from_secs(2), || rad
            .pap("stocky", "stock-pw")
            .is_reject()),
        "a locked stock user is accepted"
    );
    assert!(
        rad.log().contains("stocky: account locked"),
        "{}",
        rad.log_tail(30)
    );
}

#[test]
fn both_doors_decide_the_same_cases_alike() {
    let env = e2e_env!();
    // rlm_rust-only: compares radiusd with radius-admin's authorize/ and token/; rlm_sql has
    // neither
    rust_only!(env);
    let db = TestDb::create(env, "login_doors");
    // openssl passwd -1 -salt saltsalt secret
    db.check(
        "crypty",
        "Crypt-Password",
        ":=",
        "$1$saltsalt$9xy1btjgzLYfb7hivXtC//",
    );
    let rad = Radiusd::start(env, &db, "login_doors");
    let admin = AdminServer::start(env, &db, "login_doors");
    for (user, pw) in [("nasbound", "nas-pw-1"), ("rejected", "rej-pw-1")] {
        admin
            .post("/api/v1/radiususers/", &new_user(user, pw))
            .expect(201);
    }
    db.check("nasbound", "NAS-IP-Address", "==", "192.0.2.99");
    db.check("rejected", "Auth-Type", ":=", "Reject");
    // A one-time token for the rejected user, issued while it could still
    // log in.
    db.exec("DELETE FROM radcheck WHERE username = 'rejected'");
    let tok = admin
        .post(
            "/api/v1/token/",
            &json!({"username": "rejected", "password": "rej-pw-1"}),
        )
        .expect(200);
    let radius_token = tok["radius_token"]
        .as_str()
        .expect("radius_token")
        .to_string();
    db.check("rejected", "Auth-Type", ":=", "Reject");

    let cases: [(&str, &str, bool); 6] = [
        ("crypty", "secret", true),
        ("crypty", "Secret", false),
        ("nasbound", "nas-pw-1", false),
        ("rejected", "rej-pw-1", false),
        ("rejected", radius_token.as_str(), false),
        ("nobody", "x", false),
    ];
    for (user, pw, accept) in cases {
        let r = rad.pap(user, pw);
        assert_eq!(r.is_accept(), accept, "radiusd for {user}:\n{}", r.raw);
        let want = if accept { 200 } else { 401 };
        assert_eq!(
            http_authorize(&admin, user, pw),
            want,
            "authorize/ for {user}"
        );
        let token_status = admin
            .post("/api/v1/token/", &json!({"username": user, "password": pw}))
            .status;
        assert_eq!(token_status, want, "token/ for {user}");
    }
    assert_eq!(
        db.count(
            "SELECT count(*) FROM rlm_rust_radius_token WHERE used_at IS NOT NULL",
            &[]
        ),
        0,
        "a refused login used up a token"
    );
}
