//! EAP as scripts/raddb configures it out of the box: PEAP-MSCHAPv2 and
//! TTLS-PAP through the eap module and sites-available/rust-inner-tunnel,
//! driven by a real supplicant (eapol_test), for the three kinds of users:
//! stock radcheck rows, users created through radius-admin's API, and
//! prefix-batch users.
//!
//! PEAP-MSCHAPv2 needs an NT hash (or a cleartext password) on the server:
//! radius-admin users get one in rlm_rust_user.nt_hash, which the module
//! hands to mschap as control:NT-Password. TTLS-PAP sends the password
//! itself, so their Argon2id hash is verified by the module (Auth-Type rust
//! inside the tunnel).

use e2e::eapol::{Eapol, Login, Method, Outcome};
use e2e::{batch_credentials, e2e_env, rust_only, AdminServer, Radiusd, TestDb};
use serde_json::json;

fn assert_accepted(o: &Outcome, what: &str, rad: &Radiusd) {
    let hint = if o.method == Method::PeapMschapv2 {
        "\n(PEAP-MSCHAPv2 needs control:NT-Password or Cleartext-Password from the module: \
         for radius-admin users, rlm_rust_user.nt_hash)"
    } else {
        ""
    };
    assert!(
        o.accepted(),
        "{what}: expected EAP success in an Access-Accept{hint}\n{}\n---- radiusd log:\n{}",
        o.summary(30),
        rad.log_tail(30)
    );
}

/// radiusd with "Login OK" / "Login incorrect (reason)" lines in its log,
/// so a failed assertion shows why the inner authentication refused.
fn start_radiusd(env: &e2e::Env, db: &TestDb, tag: &str) -> Radiusd {
    Radiusd::builder(env, db, tag)
        .var("RADIUS_LOG_AUTH", "yes")
        .start()
}

fn assert_rejected(o: &Outcome, what: &str, rad: &Radiusd) {
    assert!(
        o.rejected_in_tunnel(),
        "{what}: expected an Access-Reject from the inner authentication\n{}\n---- radiusd log:\n{}",
        o.summary(30),
        rad.log_tail(30)
    );
}

/// A stock user (radcheck Cleartext-Password) behind an anonymous outer
/// identity, as a real supplicant is configured: the inner name is the one
/// looked up and logged, the outer one is logged by the outer server.
fn stock_user(method: Method, tag: &str) {
    let env = e2e_env!();
    let Some(eapol) = Eapol::find(env) else {
        return;
    };
    let db = TestDb::create(env, tag);
    db.user("alice", "alice-pw");
    db.user("bob", "bob-pw");
    let rad = start_radiusd(env, &db, tag);
    let outer = "anonymous@example.org";

    let ok = eapol.login(
        &rad,
        Login::new(method, "alice", "alice-pw").anonymous(outer),
    );
    assert_accepted(&ok, "alice with her password", &rad);
    // The outer request's post-auth wrote the accept under the outer name,
    // the inner tunnel's under the user's own.
    assert_eq!(db.postauth_replies(outer, 1), ["Access-Accept"]);
    assert_eq!(db.postauth_replies("alice", 1), ["Access-Accept"]);

    for (pw, why) in [
        ("wrong-pw", "a wrong password"),
        ("bob-pw", "another user's password"),
        ("alice-pw ", "her password with a trailing space"),
    ] {
        let bad = eapol.login(&rad, Login::new(method, "alice", pw).anonymous(outer));
        assert_rejected(&bad, &format!("alice with {why}"), &rad);
    }
    // Inner failures are logged under the inner name: what a lockout
    // policy counts.
    assert_eq!(
        db.postauth_replies("alice", 4),
        [
            "Access-Accept",
            "Access-Reject",
            "Access-Reject",
            "Access-Reject"
        ]
    );
    assert_eq!(db.postauth_replies(outer, 4)[1..], ["Access-Reject"; 3]);

    let unknown = eapol.login(
        &rad,
        Login::new(method, "nobody", "alice-pw").anonymous(outer),
    );
    assert_rejected(&unknown, "an unknown user", &rad);

    // Nothing stuck after the rejects.
    let again = eapol.login(
        &rad,
        Login::new(method, "alice", "alice-pw").anonymous(outer),
    );
    assert_accepted(&again, "alice again after the rejects", &rad);
    let bob = eapol.login(&rad, Login::new(method, "bob", "bob-pw"));
    assert_accepted(&bob, "bob, no anonymous identity", &rad);
}

#[test]
fn peap_mschapv2_stock_user() {
    stock_user(Method::PeapMschapv2, "eap_peap_stock");
}

#[test]
fn ttls_pap_stock_user() {
    stock_user(Method::TtlsPap, "eap_ttls_stock");
}

/// A user created through POST /api/v1/radiususers/ (its credential lives
/// only in rlm_rust_user), the outer identity its own name.
fn api_user(method: Method, tag: &str) {
    let env = e2e_env!();
    // rlm_rust-only: users created through radius-admin (rlm_rust_user only); rlm_sql sees no
    // such user
    rust_only!(env);
    let Some(eapol) = Eapol::find(env) else {
        return;
    };
    let db = TestDb::create(env, tag);
    let rad = start_radiusd(env, &db, tag);
    let admin = AdminServer::start(env, &db, tag);

    let user = "carol";
    let pw = "Carol-api-pw-1";
    let created = admin
        .post(
            "/api/v1/radiususers/",
            &json!({
                "username": user,
                "server_name": "radius1",
                "server_address": "127.0.0.1",
                "password": pw,
            }),
        )
        .expect(201);
    assert_eq!(created["username"], user, "{created}");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM radcheck WHERE username = $1",
            &[&user]
        ),
        0,
        "an API user has no radcheck rows"
    );

    let ok = eapol.login(&rad, Login::new(method, user, pw));
    assert_accepted(&ok, &format!("{user} (created through the API)"), &rad);
    let bad = eapol.login(&rad, Login::new(method, user, "Carol-api-pw-2"));
    assert_rejected(&bad, &format!("{user} with a wrong password"), &rad);
    // The lockout counts the failed conversation once (its inner request),
    // not once per round trip nor again for the outer reject.
    let failures = || {
        db.count(
            "SELECT coalesce(sum(failures), 0)::bigint FROM rlm_rust_lockout WHERE username = $1",
            &[&user],
        )
    };
    assert_eq!(failures(), 1, "failed logins counted for {user}");
    let again = eapol.login(&rad, Login::new(method, user, pw));
    assert_accepted(&again, &format!("{user} again after the reject"), &rad);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while failures() != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(failures(), 0, "a success ends {user}'s failure streak");
}

#[test]
fn peap_mschapv2_api_user() {
    api_user(Method::PeapMschapv2, "eap_peap_api");
}

#[test]
fn ttls_pap_api_user() {
    api_user(Method::TtlsPap, "eap_ttls_api");
}

/// Users of a prefix batch (generated passwords, returned once in the
/// batch answer) log in at once.
fn batch_users(method: Method, tag: &str) {
    let env = e2e_env!();
    // rlm_rust-only: radius-admin batch users (rlm_rust_user only); rlm_sql sees no such user
    rust_only!(env);
    let Some(eapol) = Eapol::find(env) else {
        return;
    };
    let db = TestDb::create(env, tag);
    let rad = start_radiusd(env, &db, tag);
    let admin = AdminServer::start(env, &db, tag);

    let batch = admin
        .post(
            "/api/v1/batch/",
            &json!({
                "name": "wifi-guests",
                "strategy": "prefix",
                "prefix": "wguest",
                "number_of_users": 2,
            }),
        )
        .expect(201);
    let creds = batch_credentials(&batch);
    let names: Vec<&str> = creds.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(names, ["wguest1", "wguest2"], "{batch}");

    for (user, pw) in &creds {
        let ok = eapol.login(&rad, Login::new(method, user, pw));
        assert_accepted(&ok, &format!("batch user {user}"), &rad);
    }
    let (u1, _) = &creds[0];
    let (_, pw2) = &creds[1];
    let bad = eapol.login(&rad, Login::new(method, u1, pw2));
    assert_rejected(
        &bad,
        &format!("{u1} with another batch user's password"),
        &rad,
    );
}

#[test]
fn peap_mschapv2_batch_users() {
    batch_users(Method::PeapMschapv2, "eap_peap_batch");
}

#[test]
fn ttls_pap_batch_users() {
    batch_users(Method::TtlsPap, "eap_ttls_batch");
}
