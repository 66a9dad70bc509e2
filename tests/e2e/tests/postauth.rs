//! radpostauth: one row per Access-Request, accepted or rejected, and no
//! password stored unless store_rejected_password = yes (then only for
//! rejects). Stock rlm_sql stores every password in clear: rlm_rust-only.

use std::time::{Duration, Instant};

use e2e::{e2e_env, q, rust_only, Radiusd, TestDb};

/// Rows may be written after the reply (batched): wait for them.
fn wait_rows(db: &TestDb, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = db.count("SELECT count(*) FROM radpostauth", &[]);
        if c >= n || Instant::now() > deadline {
            assert_eq!(c, n, "radpostauth rows");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (username, reply, pass) in insertion order.
fn rows(db: &TestDb) -> Vec<(String, String, Option<String>)> {
    db.query(
        "SELECT username, reply, pass FROM radpostauth ORDER BY id",
        &[],
    )
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

fn no_password(pass: &Option<String>) -> bool {
    pass.as_deref().is_none_or(str::is_empty)
}

#[test]
fn accept_and_reject_rows_without_passwords() {
    let env = e2e_env!();
    // rlm_rust-only: deliberate difference (README, post-auth): rlm_sql's post-auth query stores
    // every password in clear
    rust_only!(env);
    let db = TestDb::create(env, "postauth");
    db.user("alice", "alice-pw");
    let rad = Radiusd::start(env, &db, "postauth");

    assert!(rad.pap("alice", "alice-pw").is_accept());
    wait_rows(&db, 1);
    assert!(rad.pap("alice", "wrong-pw").is_reject());
    wait_rows(&db, 2);
    assert!(rad.pap("nobody", "nobody-pw").is_reject());
    wait_rows(&db, 3);
    assert!(rad
        .auth(&format!(
            "User-Name = alice, CHAP-Password = {}",
            q("alice-pw")
        ))
        .is_accept());
    wait_rows(&db, 4);

    let r = rows(&db);
    let summary: Vec<(&str, &str)> = r
        .iter()
        .map(|(u, rep, _)| (u.as_str(), rep.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("alice", "Access-Accept"),
            ("alice", "Access-Reject"),
            ("nobody", "Access-Reject"),
            ("alice", "Access-Accept"),
        ]
    );
    for (u, rep, pass) in &r {
        assert!(
            no_password(pass),
            "password stored for {u} ({rep}): {pass:?}"
        );
    }
    let recent = db.count(
        "SELECT count(*) FROM radpostauth WHERE authdate BETWEEN now() - interval '1 minute' AND now() + interval '1 minute'",
        &[],
    );
    assert_eq!(recent, 4, "authdate is the time of the request");
}

#[test]
fn store_rejected_password_stores_only_rejected_ones() {
    let env = e2e_env!();
    // rlm_rust-only: store_rejected_password is the module's; rlm_sql stores every password in
    // clear
    rust_only!(env);
    let db = TestDb::create(env, "postauth_store");
    db.user("alice", "alice-pw");
    let rad = Radiusd::builder(env, &db, "postauth_store")
        .config("store_rejected_password = yes")
        .start();

    assert!(rad.pap("alice", "alice-pw").is_accept());
    assert!(rad.pap("alice", "typo-pw").is_reject());
    wait_rows(&db, 2);
    let r = rows(&db);
    assert_eq!(r[0].1, "Access-Accept");
    assert!(
        no_password(&r[0].2),
        "accepted password stored: {:?}",
        r[0].2
    );
    assert_eq!(r[1].1, "Access-Reject");
    assert_eq!(r[1].2.as_deref(), Some("typo-pw"));
}
