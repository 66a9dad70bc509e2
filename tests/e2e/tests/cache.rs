//! The module's in-memory user cache through a real radiusd: a change made
//! with plain SQL (as psql or daloRADIUS would) is followed by the next
//! Access-Request within a second, and losing the LISTEN connection never
//! serves stale data. rlm_rust-only.

use std::time::{Duration, Instant};

use e2e::{e2e_env, rust_only, Radiusd, TestDb};

/// Connections of the module's cache listener to this test's database.
fn listeners(db: &TestDb) -> i64 {
    db.count(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = 'rlm_rust listener' AND datname = $1",
        &[&db.name],
    )
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

#[test]
fn a_plain_sql_password_change_is_followed_within_a_second() {
    let env = e2e_env!();
    // rlm_rust-only: waits for the module's cache listener (LISTEN); rlm_sql has no cache
    rust_only!(env);
    let db = TestDb::create(env, "cache_follow");
    db.user("alice", "pw-1");
    db.reply("alice", "Reply-Message", ":=", "Hello alice");
    let rad = Radiusd::start(env, &db, "cache_follow");
    wait_for("cache listener", Duration::from_secs(10), || {
        listeners(&db) == 1
    });
    // Twice: the second answer comes from memory.
    assert!(rad.pap("alice", "pw-1").is_accept());
    assert!(rad.pap("alice", "pw-1").is_accept());

    db.exec("UPDATE radcheck SET value = 'pw-2' WHERE username = 'alice' AND attribute = 'Cleartext-Password'");
    let took = wait_for("new password accepted", Duration::from_secs(1), || {
        rad.pap("alice", "pw-2").is_accept()
    });
    assert!(
        rad.pap("alice", "pw-1").is_reject(),
        "the old password still works"
    );
    eprintln!("password change followed after {took:?}");

    // A reply item and a deleted user follow the same way.
    db.exec("UPDATE radreply SET value = 'Hi again' WHERE username = 'alice'");
    wait_for("new reply item", Duration::from_secs(1), || {
        rad.pap("alice", "pw-2").get("Reply-Message") == Some("Hi again")
    });
    db.exec("DELETE FROM radcheck WHERE username = 'alice'");
    wait_for("deleted user refused", Duration::from_secs(1), || {
        rad.pap("alice", "pw-2").is_reject()
    });
}

#[test]
fn a_lost_listener_never_serves_stale_data_and_recovers() {
    let env = e2e_env!();
    // rlm_rust-only: kills the module's cache listener; rlm_sql has no cache
    rust_only!(env);
    let db = TestDb::create(env, "cache_listener");
    db.user("alice", "pw-1");
    let rad = Radiusd::start(env, &db, "cache_listener");
    wait_for("cache listener", Duration::from_secs(10), || {
        listeners(&db) == 1
    });
    assert!(rad.pap("alice", "pw-1").is_accept());
    assert!(rad.pap("alice", "pw-1").is_accept());

    // Cut the listener from the server side, then change the password: no
    // notification can reach the module for this change.
    let killed = db.count(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'rlm_rust listener' AND datname = $1",
        &[&db.name],
    );
    assert_eq!(killed, 1);
    db.exec("UPDATE radcheck SET value = 'pw-2' WHERE username = 'alice'");
    // The module notices the lost connection at once and reads the
    // database until the listener is back: never the old password.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        assert!(
            rad.pap("alice", "pw-1").is_reject(),
            "stale password accepted"
        );
        assert!(rad.pap("alice", "pw-2").is_accept());
    }
    // It reconnects by itself and serves fresh data again.
    wait_for("listener back", Duration::from_secs(10), || {
        listeners(&db) == 1
    });
    db.exec("UPDATE radcheck SET value = 'pw-3' WHERE username = 'alice'");
    wait_for("change after reconnect", Duration::from_secs(1), || {
        rad.pap("alice", "pw-3").is_accept()
    });
    assert!(rad.pap("alice", "pw-2").is_reject());
}

#[test]
fn a_preloaded_cache_holds_every_user_from_the_start_and_follows_changes() {
    let env = e2e_env!();
    // rlm_rust-only: cache_preload and its log line; rlm_sql has no cache
    rust_only!(env);
    let db = TestDb::create(env, "cache_preload");
    for i in 0..50 {
        db.user(&format!("user{i}"), &format!("pw-{i}"));
    }
    db.reply("user7", "Reply-Message", ":=", "Hello user7");
    let rad = Radiusd::builder(env, &db, "cache_preload")
        .config("cache_preload = yes")
        .start();
    wait_for("preload", Duration::from_secs(10), || {
        rad.log()
            .contains("cache preload: 50 of 50 users in memory")
    });
    // The core's tests check that preloaded entries equal what a lookup
    // reads; here radiusd answers from them and they stay coherent.
    let r = rad.pap("user7", "pw-7");
    assert!(r.is_accept());
    assert_eq!(r.get("Reply-Message"), Some("Hello user7"));
    assert!(rad.pap("user8", "wrong").is_reject());

    db.exec("UPDATE radcheck SET value = 'pw-new' WHERE username = 'user7' AND attribute = 'Cleartext-Password'");
    wait_for("new password accepted", Duration::from_secs(1), || {
        rad.pap("user7", "pw-new").is_accept()
    });
    assert!(rad.pap("user7", "pw-7").is_reject());
}
