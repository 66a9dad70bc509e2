//! The HTTP door of the one login procedure ([`pap_login`]) against a real
//! PostgreSQL: account state, tokens, credentials, lockout, NT hashes.

use std::sync::Arc;
use std::time::Duration;

use radius_core::account::{hash_token, LoginDecision, RejectReason};
use radius_core::authorize::Options;
use radius_core::login::{pap_login, Cost, Lockout, Policy};
use radius_core::store::Store;

mod common;
use common::TestDb;

fn policy(lockout: Lockout) -> Policy {
    Policy {
        opts: Options {
            read_groups: true,
            read_profiles: true,
            default_profile: None,
        },
        lockout,
        auth_type: "rust".into(),
        store_nt_hash: true,
        second_factor: Default::default(),
    }
}

/// Logs `user` in through the HTTP door, from a blocking thread as
/// radius-admin does.
async fn login(store: &Arc<Store>, policy: &Policy, user: &str, pw: &str) -> LoginDecision {
    login_cost(store, policy, user, pw, Cost::Least).await
}

async fn login_cost(
    store: &Arc<Store>,
    policy: &Policy,
    user: &str,
    pw: &str,
    cost: Cost,
) -> LoginDecision {
    let (store, policy, user, pw) = (
        Arc::clone(store),
        policy.clone(),
        user.to_string(),
        pw.to_string(),
    );
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || pap_login(&store, &rt, &policy, &user, &pw, cost).unwrap())
        .await
        .unwrap()
}

fn reject(reason: RejectReason) -> LoginDecision {
    LoginDecision::Reject { reason }
}

fn accepted(d: &LoginDecision) -> bool {
    matches!(d, LoginDecision::Accept { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_enforce_account_state_tokens_and_credentials() {
    let db = TestDb::new("login_state").await;
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES \
               ('alice', 'Cleartext-Password', ':=', 'pw-a'), \
               ('nt', 'NT-Password', ':=', '8846f7eaee8fb117ad06bdd830b7586c'), \
               ('crypt', 'Crypt-Password', ':=', '$1$saltsalt$9xy1btjgzLYfb7hivXtC//'); \
             INSERT INTO radusergroup (username, groupname, priority) VALUES ('alice', 'staff', 1); \
             INSERT INTO radgroupreply (groupname, attribute, op, value) VALUES ('staff', 'Idle-Timeout', ':=', '600');",
        )
        .await
        .unwrap();
    let hash = radius_core::password::hash_password("pw-h");
    db.client
        .execute(
            "INSERT INTO rlm_rust_user (username, password_hash) VALUES ('hashy', $1), ('alice', NULL)",
            &[&hash],
        )
        .await
        .unwrap();
    db.client
        .execute(
            "INSERT INTO rlm_rust_user (username, password_hash, active, reason) VALUES ('off', $1, false, 0)",
            &[&hash],
        )
        .await
        .unwrap();
    db.client
        .execute(
            "INSERT INTO rlm_rust_user (username, password_hash, expiration) VALUES ('old', $1, now() - interval '1 second')",
            &[&hash],
        )
        .await
        .unwrap();
    let token_hash = hash_token("one-time-secret").to_vec();
    db.client
        .execute(
            "INSERT INTO rlm_rust_radius_token (user_id, token_hash, expires_at) \
             SELECT id, $1, now() + interval '1 hour' FROM rlm_rust_user WHERE username = 'hashy'",
            &[&token_hash],
        )
        .await
        .unwrap();
    let store = Arc::new(db.store());
    let p = policy(Lockout {
        attempts: 0,
        period: None,
    });

    match login(&store, &p, "alice", "pw-a").await {
        LoginDecision::Accept { reply, .. } => {
            assert_eq!(reply, vec![("Idle-Timeout".to_string(), "600".to_string())])
        }
        other => panic!("alice: {other:?}"),
    }
    assert_eq!(
        login(&store, &p, "alice", "nope").await,
        reject(RejectReason::BadPassword)
    );
    assert_eq!(
        login(&store, &p, "nobody", "x").await,
        reject(RejectReason::UnknownUser)
    );
    assert!(accepted(&login(&store, &p, "nt", "password").await));
    // openssl passwd -1 -salt saltsalt secret: radiusd's pap accepts it,
    // and so must the HTTP door.
    assert!(accepted(&login(&store, &p, "crypt", "secret").await));
    assert_eq!(
        login(&store, &p, "crypt", "Secret").await,
        reject(RejectReason::BadPassword)
    );
    assert!(accepted(&login(&store, &p, "hashy", "pw-h").await));
    assert_eq!(
        login(&store, &p, "hashy", "pw-x").await,
        reject(RejectReason::BadPassword)
    );
    assert_eq!(
        login(&store, &p, "off", "pw-h").await,
        reject(RejectReason::Disabled { reason: Some(0) })
    );
    assert_eq!(
        login(&store, &p, "old", "pw-h").await,
        reject(RejectReason::Expired)
    );
    assert!(accepted(
        &login(&store, &p, "hashy", "one-time-secret").await
    ));
    assert_eq!(
        login(&store, &p, "hashy", "one-time-secret").await,
        reject(RejectReason::BadPassword),
        "a one-time token works once"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_override_a_refusal() {
    let db = TestDb::new("login_tokens").await;
    let hash = radius_core::password::hash_password("pw");
    db.client
        .execute(
            "INSERT INTO rlm_rust_user (username, password_hash) VALUES ('rej', $1), ('nas', $1)",
            &[&hash],
        )
        .await
        .unwrap();
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES \
               ('rej', 'Auth-Type', ':=', 'Reject'), \
               ('nas', 'NAS-IP-Address', '==', '192.0.2.99');",
        )
        .await
        .unwrap();
    for user in ["rej", "nas"] {
        db.client
            .execute(
                "INSERT INTO rlm_rust_radius_token (user_id, token_hash, expires_at) \
                 SELECT id, $2, now() + interval '1 hour' FROM rlm_rust_user WHERE username = $1",
                &[&user, &hash_token("tok").to_vec()],
            )
            .await
            .unwrap();
    }
    let store = Arc::new(db.store());
    let p = policy(Lockout::default());
    for cost in [Cost::Least, Cost::Uniform] {
        assert_eq!(
            login_cost(&store, &p, "rej", "tok", cost).await,
            reject(RejectReason::AuthTypeReject)
        );
        assert_eq!(
            login_cost(&store, &p, "rej", "pw", cost).await,
            reject(RejectReason::AuthTypeReject)
        );
        assert_eq!(
            login_cost(&store, &p, "nas", "tok", cost).await,
            reject(RejectReason::CheckItems)
        );
        assert_eq!(
            login_cost(&store, &p, "nas", "pw", cost).await,
            reject(RejectReason::CheckItems)
        );
    }
    let unused: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM rlm_rust_radius_token WHERE used_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unused, 2, "a refused login uses up no token");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_failures_lock_and_a_success_resets() {
    let db = TestDb::new("login_lockout").await;
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES \
               ('stock', 'Cleartext-Password', ':=', 'right'), \
               ('brief', 'Cleartext-Password', ':=', 'right');",
        )
        .await
        .unwrap();
    let store = Arc::new(db.store());
    let p = policy(Lockout {
        attempts: 3,
        period: None,
    });
    let failures = |user: &'static str| {
        let client = &db.client;
        async move {
            client
                .query_opt(
                    "SELECT failures FROM rlm_rust_lockout WHERE username = $1",
                    &[&user],
                )
                .await
                .unwrap()
                .map_or(0, |r| r.get::<_, i32>(0))
        }
    };
    // Two failures, then a success: the streak ends.
    for _ in 0..2 {
        login(&store, &p, "stock", "wrong").await;
    }
    assert_eq!(failures("stock").await, 2);
    assert!(accepted(&login(&store, &p, "stock", "right").await));
    assert_eq!(failures("stock").await, 0);
    // Three in a row lock the account, even against the right password,
    // until an administrator removes the lock.
    for _ in 0..3 {
        assert_eq!(
            login(&store, &p, "stock", "wrong").await,
            reject(RejectReason::BadPassword)
        );
    }
    assert_eq!(
        login(&store, &p, "stock", "right").await,
        reject(RejectReason::Locked)
    );
    let until: f64 = db
        .client
        .query_one(
            "SELECT EXTRACT(EPOCH FROM locked_until)::float8 FROM rlm_rust_lockout WHERE username = 'stock'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(until.is_infinite(), "period 0: until unlocked");
    db.client
        .execute("DELETE FROM rlm_rust_lockout WHERE username = 'stock'", &[])
        .await
        .unwrap();
    assert!(accepted(&login(&store, &p, "stock", "right").await));

    // A lock with a period runs out by itself, and the count starts over.
    let brief = policy(Lockout {
        attempts: 2,
        period: Some(Duration::from_secs(1)),
    });
    for _ in 0..2 {
        login(&store, &brief, "brief", "wrong").await;
    }
    assert_eq!(
        login(&store, &brief, "brief", "right").await,
        reject(RejectReason::Locked)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    login(&store, &brief, "brief", "wrong").await;
    assert_eq!(failures("brief").await, 1, "an expired lock starts over");
    assert!(accepted(&login(&store, &brief, "brief", "right").await));
    assert_eq!(failures("brief").await, 0);

    // Refusals that are not wrong passwords count nothing.
    login(&store, &p, "nobody", "x").await;
    assert_eq!(failures("nobody").await, 0);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_stores_a_missing_nt_hash() {
    let db = TestDb::new("login_nt").await;
    let hash = radius_core::password::hash_password("password");
    db.client
        .execute(
            "INSERT INTO rlm_rust_user (username, password_hash) VALUES ('old', $1)",
            &[&hash],
        )
        .await
        .unwrap();
    let store = Arc::new(db.store());
    let p = policy(Lockout::default());
    async fn nt(client: &tokio_postgres::Client) -> Option<String> {
        client
            .query_one(
                "SELECT nt_hash FROM rlm_rust_user WHERE username = 'old'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }
    assert_eq!(
        login(&store, &p, "old", "wrong").await,
        reject(RejectReason::BadPassword)
    );
    assert_eq!(nt(&db.client).await, None, "not from a wrong password");
    assert!(accepted(&login(&store, &p, "old", "password").await));
    assert_eq!(
        nt(&db.client).await.as_deref(),
        Some("8846f7eaee8fb117ad06bdd830b7586c")
    );
    // The site turned it off: nothing is stored.
    db.client
        .execute("UPDATE rlm_rust_user SET nt_hash = NULL", &[])
        .await
        .unwrap();
    let off = Policy {
        store_nt_hash: false,
        ..p
    };
    let fresh = Arc::new(db.store());
    assert!(accepted(&login(&fresh, &off, "old", "password").await));
    assert_eq!(nt(&db.client).await, None);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_logins_cost_one_slow_hash_whoever_asks() {
    let db = TestDb::new("login_cost").await;
    let hash = radius_core::password::hash_password("pw");
    db.client
        .execute(
            "INSERT INTO rlm_rust_user (username, password_hash) VALUES ('argon', $1)",
            &[&hash],
        )
        .await
        .unwrap();
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES ('clear', 'Cleartext-Password', ':=', 'pw')",
        )
        .await
        .unwrap();
    let store = Arc::new(db.store());
    let p = policy(Lockout::default());
    // What each refusal costs, in slow hashes: the same for an unknown
    // user, a wrong password of an Argon2 user and of a clear-text user.
    let cost = |user: &'static str, cost: Cost| {
        let (store, p) = (Arc::clone(&store), p.clone());
        async move {
            let before = store.verifier().slow_runs();
            let d = login_cost(&store, &p, user, "wrong", cost).await;
            assert!(!accepted(&d), "{user}: {d:?}");
            store.verifier().slow_runs() - before
        }
    };
    for user in ["nobody", "argon", "clear"] {
        assert_eq!(cost(user, Cost::Uniform).await, 1, "token/ refusing {user}");
    }
    assert_eq!(cost("nobody", Cost::Least).await, 0);
    assert_eq!(cost("clear", Cost::Least).await, 0);
    assert_eq!(cost("argon", Cost::Least).await, 1);
    db.drop_db().await;
}

/// The module's entry point (the procedure on the request, then the
/// credential as radiusd's modules check it) and the HTTP door's
/// (`pap_login`) decide every case alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_entry_points_decide_alike() {
    use radius_core::engine::StringEngine;
    use radius_core::login::{authorize, check_credential, Attempt, BlockingIo, Verdict};

    let db = TestDb::new("login_entry").await;
    let hash = radius_core::password::hash_password("api-pw");
    db.client
        .execute(
            "INSERT INTO rlm_rust_user (username, password_hash, nt_hash) VALUES \
               ('api', $1, '8846f7eaee8fb117ad06bdd830b7586c'), ('nas', $1, NULL), ('rej', $1, NULL)",
            &[&hash],
        )
        .await
        .unwrap();
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES \
               ('crypt', 'Crypt-Password', ':=', '$1$saltsalt$9xy1btjgzLYfb7hivXtC//'), \
               ('nas', 'NAS-IP-Address', '==', '192.0.2.99'), \
               ('rej', 'Auth-Type', ':=', 'Reject'), \
               ('clear', 'Cleartext-Password', ':=', 'c-pw');",
        )
        .await
        .unwrap();
    let store = Arc::new(db.store());
    let p = policy(Lockout {
        attempts: 0,
        period: None,
    });

    let cases = [
        ("crypt", "secret"),
        ("crypt", "Secret"),
        ("api", "api-pw"),
        ("api", "nope"),
        ("nas", "api-pw"),
        ("rej", "api-pw"),
        ("clear", "c-pw"),
        ("clear", "x"),
        ("nobody", "x"),
    ];
    for (user, pw) in cases {
        let http = accepted(&login(&store, &p, user, pw).await);
        let (s, pol, u, w) = (
            Arc::clone(&store),
            p.clone(),
            user.to_string(),
            pw.to_string(),
        );
        let rt = tokio::runtime::Handle::current();
        let module = tokio::task::spawn_blocking(move || {
            let lookup = rt.block_on(s.lookup(&u)).unwrap();
            let mut engine = StringEngine::new(vec![
                ("User-Name".into(), u.clone()),
                ("User-Password".into(), w.clone()),
            ]);
            let attempt = Attempt {
                username: &u,
                password: Some(&w),
                now: radius_core::account::now(),
            };
            let verdict = authorize(
                &mut engine,
                &mut BlockingIo { store: &s, rt: &rt },
                &lookup,
                &pol,
                &attempt,
            )
            .unwrap();
            match verdict {
                Verdict::TokenAccepted => true,
                Verdict::Continue(_) => {
                    check_credential(&engine.control, s.verifier(), &pol, &u, &w)
                        .unwrap()
                        .ok()
                }
                Verdict::NotFound | Verdict::Reject(_) => false,
            }
        })
        .await
        .unwrap();
        assert_eq!(module, http, "{user} / {pw}: the two entry points disagree");
    }
    db.drop_db().await;
}

/// Two hosts on one database: host A's success is applied in the
/// background (within 200 ms); failures host B counts after that success
/// must survive it, else a password guesser spreading tries over two
/// servers, with a user logging in meanwhile, is never locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_applied_success_keeps_failures_another_host_counted_after_it() {
    let db = TestDb::new("login_two_hosts").await;
    let mut a = db.store();
    a.start_background(&tokio::runtime::Handle::current(), 0, false)
        .unwrap();
    let b = db.store();
    let lockout = Lockout {
        attempts: 3,
        period: None,
    };
    let failures = || async {
        db.client
            .query_opt(
                "SELECT failures FROM rlm_rust_lockout WHERE username = 'roamer'",
                &[],
            )
            .await
            .unwrap()
            .map_or(0, |r| r.get::<_, i32>(0))
    };
    // A streak on B, ended by a success on A: gone once A applies it.
    b.record_failure("roamer", &lockout).await.unwrap();
    a.note_success("roamer").await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(failures().await, 0, "the success ended the earlier streak");
    // A success on A, then failures on B before A applies it.
    a.note_success("roamer").await.unwrap();
    for _ in 0..2 {
        b.record_failure("roamer", &lockout).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(failures().await, 2, "failures after the success were wiped");
    let third = b.record_failure("roamer", &lockout).await.unwrap().unwrap();
    assert!(
        third.locked_until.is_some(),
        "three failures lock: {third:?}"
    );
    db.drop_db().await;
}
