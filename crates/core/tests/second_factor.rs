//! The second factor of the one login procedure against a real
//! PostgreSQL, without radiusd: TOTP codes appended or apart, accepted
//! once; wrong codes counted by the lockout; e-mail codes queued in the
//! outbox (sealed) and accepted once; challenges bound to their user.

use std::sync::Arc;
use std::time::Duration;

use radius_core::account::{LoginDecision, RejectReason};
use radius_core::authorize::Options;
use radius_core::login::second_factor::{outbox_context, Issued, Offer, Refusal, Settings};
use radius_core::login::{pap_login_offer, totp, Cost, Lockout, PapLogin, Policy};
use radius_core::secret::Secret;
use radius_core::store::Store;

mod common;
use common::TestDb;

fn policy(secret: Option<Secret>) -> Policy {
    Policy {
        opts: Options {
            read_groups: true,
            read_profiles: true,
            default_profile: None,
        },
        lockout: Lockout {
            attempts: 100,
            period: None,
        },
        auth_type: "rust".into(),
        store_nt_hash: false,
        second_factor: Settings {
            secret,
            code_lifetime: Duration::from_secs(300),
        },
    }
}

async fn login(
    store: &Arc<Store>,
    p: &Policy,
    user: &str,
    pw: &str,
    code: Option<&str>,
    apart: bool,
) -> PapLogin {
    let (store, p, user, pw, code) = (
        Arc::clone(store),
        p.clone(),
        user.to_string(),
        pw.to_string(),
        code.map(str::to_string),
    );
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let offer = if apart {
            Offer::Apart {
                password: &pw,
                code: code.as_deref(),
            }
        } else {
            Offer::Appended(&pw)
        };
        pap_login_offer(&store, &rt, &p, &user, offer, Cost::Least).unwrap()
    })
    .await
    .unwrap()
}

fn refused(l: &PapLogin) -> Option<RejectReason> {
    match l.decision {
        LoginDecision::Reject { reason } => Some(reason),
        LoginDecision::Accept { .. } => None,
    }
}

fn now() -> f64 {
    radius_core::account::now()
}

async fn failures(db: &TestDb, user: &str) -> i32 {
    db.client
        .query_opt(
            "SELECT failures FROM rlm_rust_lockout WHERE username = $1",
            &[&user],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// A radius-admin user with `password` and a TOTP second factor; its id.
async fn totp_user(db: &TestDb, name: &str, password: &str) -> i64 {
    let hash = radius_core::password::hash_password(password);
    db.client
        .query_one(
            "INSERT INTO rlm_rust_user (username, password_hash, token_auth, token_type) \
             VALUES ($1, $2, true, 'ftm') RETURNING id",
            &[&name, &hash],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_codes_are_checked_once_and_wrong_ones_counted() {
    let db = TestDb::new("sf_totp").await;
    let secret = Secret::from_bytes(&[9u8; 32]).unwrap();
    let id = totp_user(&db, "tina", "pw-totp").await;
    // A stock-credential user with a second factor too.
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES ('sam', 'Cleartext-Password', ':=', 'pw-sam'); \
             INSERT INTO rlm_rust_user (username, token_auth, token_type) VALUES ('sam', true, 'ftk');",
        )
        .await
        .unwrap();
    let sam: i64 = db
        .client
        .query_one("SELECT id FROM rlm_rust_user WHERE username = 'sam'", &[])
        .await
        .unwrap()
        .get(0);
    let store = Arc::new(db.store());
    let seed = totp::new_seed();
    store.set_totp_seed(&secret, id, &seed).await.unwrap();
    let sam_seed = totp::new_seed();
    store.set_totp_seed(&secret, sam, &sam_seed).await.unwrap();
    let p = policy(Some(secret.clone()));
    let code = |seed: &[u8], off: i64| totp::hotp(seed, (totp::step_at(now()) + off) as u64, 6);

    // Without a secret nothing can be checked: refused, not counted.
    let l = login(
        &store,
        &policy(None),
        "tina",
        "pw-totp",
        Some(&code(&seed, 0)),
        true,
    )
    .await;
    assert!(matches!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::Unavailable(_)))
    ));
    // The password alone: a code is required (not a failure).
    let l = login(&store, &p, "tina", "pw-totp", None, false).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::CodeRequired))
    );
    assert_eq!(failures(&db, "tina").await, 0);
    // Appended: accepted once.
    let c = code(&seed, 0);
    let l = login(&store, &p, "tina", &format!("pw-totp{c}"), None, false).await;
    assert_eq!(refused(&l), None);
    let l = login(&store, &p, "tina", &format!("pw-totp{c}"), None, false).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::Replayed))
    );
    assert_eq!(failures(&db, "tina").await, 1);
    // Apart, the next step: accepted; the old one stays refused.
    let l = login(&store, &p, "tina", "pw-totp", Some(&code(&seed, 1)), true).await;
    assert_eq!(refused(&l), None);
    let l = login(&store, &p, "tina", "pw-totp", Some(&c), true).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::Replayed))
    );
    // Wrong code, and a right code with the wrong password.
    let l = login(&store, &p, "tina", "pw-totp", Some("12345x"), true).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::WrongCode))
    );
    let l = login(&store, &p, "tina", "nope", Some(&code(&seed, -1)), true).await;
    assert_eq!(refused(&l), Some(RejectReason::BadPassword));
    // The accept ended the streak; the replay, the wrong code and the
    // wrong password counted since.
    assert_eq!(failures(&db, "tina").await, 3);
    // Stock credential (rlm_pap's decision) plus TOTP.
    let l = login(
        &store,
        &p,
        "sam",
        &format!("pw-sam{}", code(&sam_seed, 0)),
        None,
        false,
    )
    .await;
    assert_eq!(refused(&l), None);
    let l = login(&store, &p, "sam", "pw-sam", None, false).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::CodeRequired))
    );
    // A seed sealed for another user does not open for this one.
    let sealed: Vec<u8> = db
        .client
        .query_one("SELECT seed FROM rlm_rust_totp WHERE user_id = $1", &[&sam])
        .await
        .unwrap()
        .get(0);
    db.client
        .execute(
            "UPDATE rlm_rust_totp SET seed = $2 WHERE user_id = $1",
            &[&id, &sealed],
        )
        .await
        .unwrap();
    let l = login(
        &store,
        &p,
        "tina",
        "pw-totp",
        Some(&code(&sam_seed, 1)),
        true,
    )
    .await;
    assert!(matches!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::Unavailable(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_codes_go_through_the_outbox_and_challenges_are_bound() {
    let db = TestDb::new("sf_email").await;
    let secret = Secret::from_bytes(&[7u8; 32]).unwrap();
    let hash = radius_core::password::hash_password("pw-mail");
    let id: i64 = db
        .client
        .query_one(
            "INSERT INTO rlm_rust_user (username, password_hash, token_auth, token_type, email, mobile_number) \
             VALUES ('mia', $1, true, 'dual', 'mia@example.com', '+33-612345678') RETURNING id",
            &[&hash],
        )
        .await
        .unwrap()
        .get(0);
    let store = Arc::new(db.store());
    let p = policy(Some(secret.clone()));
    // The password alone, apart from its code (auth/): a code is queued
    // for both channels, sealed.
    let l = login(&store, &p, "mia", "pw-mail", None, true).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::CodeRequired))
    );
    match &l.code_sent {
        Some(Issued::Sent { channels, .. }) => assert_eq!(channels, &["email", "sms"]),
        other => panic!("{other:?}"),
    }
    let queued = store.take_outbox(10).await.unwrap();
    assert_eq!(queued.len(), 2);
    assert!(
        store.take_outbox(10).await.unwrap().is_empty(),
        "taken once"
    );
    let q = &queued[0];
    assert_eq!(
        (q.user_id, q.channel.as_str(), q.destination.as_str()),
        (id, "email", "mia@example.com")
    );
    assert!(q.seconds_left > 200.0);
    let code = String::from_utf8(
        secret
            .open(&outbox_context(q.code_id), &q.sealed_code)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(code.len(), 6);
    let other = Secret::from_bytes(&[8u8; 32]).unwrap();
    assert_eq!(other.open(&outbox_context(q.code_id), &q.sealed_code), None);
    // Accepted once.
    let l = login(&store, &p, "mia", "pw-mail", Some(&code), true).await;
    assert_eq!(refused(&l), None);
    let l = login(&store, &p, "mia", "pw-mail", Some(&code), true).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SecondFactor(Refusal::NoCode))
    );

    // Challenges: bound to the name, taken once, forged ones refused.
    let state = store
        .open_challenge("mia", id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.take_challenge("other", &state).await.unwrap(), None);
    assert_eq!(store.take_challenge("mia", &[0u8; 16]).await.unwrap(), None);
    assert_eq!(store.take_challenge("mia", b"short").await.unwrap(), None);
    assert_eq!(store.take_challenge("mia", &state).await.unwrap(), Some(id));
    assert_eq!(
        store.take_challenge("mia", &state).await.unwrap(),
        None,
        "replayed"
    );
    // An expired one is gone.
    let state = store
        .open_challenge("mia", id, Duration::from_secs(60))
        .await
        .unwrap();
    db.client
        .execute(
            "UPDATE rlm_rust_challenge SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(store.take_challenge("mia", &state).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_code_is_still_held_to_simultaneous_use() {
    // The usage policies and the second factor meet in pap_login: the
    // session check runs after the code, as radiusd's session section
    // runs after authenticate.
    let db = TestDb::new("sf_simul").await;
    let secret = Secret::from_bytes(&[7u8; 32]).unwrap();
    let id = totp_user(&db, "una", "pw-una").await;
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) \
               VALUES ('una', 'Simultaneous-Use', ':=', '1'); \
             INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, \
               acctstarttime, acctupdatetime) \
               VALUES ('s1', 'una-open', 'una', '127.0.0.1', now(), now());",
        )
        .await
        .unwrap();
    let store = Arc::new(db.store());
    let seed = totp::new_seed();
    store.set_totp_seed(&secret, id, &seed).await.unwrap();
    let p = policy(Some(secret));
    let code = |off: i64| totp::hotp(&seed, (totp::step_at(now()) + off) as u64, 6);

    let l = login(&store, &p, "una", "pw-una", Some(&code(0)), true).await;
    assert_eq!(
        refused(&l),
        Some(RejectReason::SimultaneousUse { max: 1 }),
        "{l:?}"
    );
    assert_eq!(failures(&db, "una").await, 0, "not a failed login");
    db.client
        .batch_execute("UPDATE radacct SET acctstoptime = now() WHERE acctuniqueid = 'una-open'")
        .await
        .unwrap();
    let l = login(&store, &p, "una", "pw-una", Some(&code(1)), true).await;
    assert_eq!(refused(&l), None, "{l:?}");
    db.drop_db().await;
}
