//! The user cache through a real radiusd when PostgreSQL goes away, stalls,
//! or is flooded with names nobody has. The database is reached through a
//! proxy of this test's own (`e2e::proxy`), so the shared cluster is never
//! stopped. rlm_rust-only: rlm_sql has no cache.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::packet::{self, Outcome, Request};
use e2e::proxy::{Mode, PgProxy};
use e2e::{e2e_env, rust_only, Radiusd, TestDb};

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One PAP request with our own UDP client: its answer code (None: no
/// answer within 3 s) and how long it took.
fn pap(rad: &Radiusd, user: &str, pw: &str) -> (Option<u8>, Duration) {
    let t = Instant::now();
    let r = packet::send(
        rad.auth_addr(),
        &rad.secret,
        &Request::pap(user.as_bytes(), pw.as_bytes()),
        Duration::from_secs(3),
    );
    (r.map(|r| r.code), t.elapsed())
}

fn accepted(rad: &Radiusd, user: &str, pw: &str) -> bool {
    pap(rad, user, pw).0 == Some(packet::ACCESS_ACCEPT)
}

/// The pid of the module's LISTEN connection to `db`, if there is one.
fn listener_pid(db: &TestDb) -> Option<i32> {
    db.query(
        "SELECT pid FROM pg_stat_activity \
         WHERE application_name = 'rlm_rust listener' AND datname = $1",
        &[&db.name],
    )
    .first()
    .map(|r| r.get(0))
}

/// radiusd through `proxy` with `users` preloaded; post-auth goes to the
/// journal, so an answer does not wait for the database.
fn start_via(env: &e2e::Env, db: &TestDb, proxy: &PgProxy, name: &str, users: usize) -> Radiusd {
    let rad = Radiusd::builder(env, db, name)
        .config(&format!("dsn = \"{}\"", proxy.dsn(&db.dsn)))
        .config("durability = journal")
        .config("cache_preload = yes")
        .config("connect_timeout = 0.5")
        .config("query_timeout = 0.5")
        .start();
    let line = format!("cache preload: {users} of {users} users in memory");
    wait_for("the preload", Duration::from_secs(15), || {
        rad.log().contains(&line)
    });
    rad
}

#[test]
fn cached_users_are_accepted_through_an_outage_and_others_are_not() {
    let env = e2e_env!();
    rust_only!(env);
    let db = TestDb::create(env, "outage_auth");
    db.user("alice", "pw-a");
    db.user("bob", "pw-b");
    let proxy = PgProxy::for_dsn(&db.dsn);
    let rad = start_via(env, &db, &proxy, "outage_auth", 2);
    // carol arrives after the preload and is never asked for: not held.
    db.user("carol", "pw-c");
    assert!(accepted(&rad, "alice", "pw-a"));

    proxy.set(Mode::Down);
    // The proxy cuts within milliseconds; a change made before that would
    // still be notified (and dropped from the cache), so wait for the cut.
    wait_for("the listener cut off", Duration::from_secs(5), || {
        listener_pid(&db).is_none()
    });
    // The far side of a partition (here: this test's own connection,
    // which bypasses the proxy) changes alice: what is held is served.
    db.exec("UPDATE radcheck SET value = 'pw-a2' WHERE username = 'alice'");
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(5) {
        let (code, took) = pap(&rad, "alice", "pw-a");
        assert_eq!(
            code,
            Some(packet::ACCESS_ACCEPT),
            "a held user refused during the outage, after {:?}:\n{}",
            t.elapsed(),
            rad.log_tail(20)
        );
        slowest = slowest.max(took);
        assert!(accepted(&rad, "bob", "pw-b"));
        // Not held: the module fails the request; radiusd rejects it
        // (a NAS with a second server goes there).
        assert_ne!(
            pap(&rad, "carol", "pw-c").0,
            Some(packet::ACCESS_ACCEPT),
            "a user the cache does not hold was accepted"
        );
    }
    eprintln!("slowest accept during the outage: {slowest:?}");
    assert!(rad.log().contains("cache listener"), "{}", rad.log_tail(30));

    // Back: the cache is revalidated, the change made meanwhile is read.
    // (Not by polling with the new password: each try would count as a
    // failed login against what is held, and lock alice out.)
    proxy.set(Mode::Forward);
    wait_for("the cache preloaded again", Duration::from_secs(15), || {
        rad.log().contains("cache preload: 3 of 3 users in memory")
    });
    assert!(accepted(&rad, "alice", "pw-a2"), "{}", rad.log_tail(20));
    assert!(
        !accepted(&rad, "alice", "pw-a"),
        "the old password still works"
    );
    assert!(accepted(&rad, "carol", "pw-c"));
}

#[test]
fn a_stalled_database_neither_empties_the_cache_nor_slows_it() {
    let env = e2e_env!();
    rust_only!(env);
    let db = TestDb::create(env, "outage_stall");
    db.user("alice", "pw-a");
    let proxy = PgProxy::for_dsn(&db.dsn);
    let rad = start_via(env, &db, &proxy, "outage_stall", 1);
    assert!(accepted(&rad, "alice", "pw-a"));
    let listener = listener_pid(&db).expect("the cache listener");

    // Five times the listener's probe interval.
    proxy.set(Mode::Stall);
    let t = Instant::now();
    let mut took = Vec::new();
    while t.elapsed() < Duration::from_secs(5) {
        let (code, d) = pap(&rad, "alice", "pw-a");
        assert_eq!(
            code,
            Some(packet::ACCESS_ACCEPT),
            "refused during the stall after {:?}:\n{}",
            t.elapsed(),
            rad.log_tail(20)
        );
        took.push(d);
    }
    proxy.set(Mode::Forward);
    took.sort();
    let p99 = took[took.len() * 99 / 100];
    eprintln!(
        "{} accepts during the stall, p99 {p99:?}, max {:?}",
        took.len(),
        took.last().unwrap()
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    assert!(
        rad.log().contains("no answer within"),
        "the slow probe was not logged"
    );
    // The same listener connection went on: nothing was emptied or redone.
    assert_eq!(
        listener_pid(&db),
        Some(listener),
        "the listener reconnected"
    );
    db.exec("UPDATE radcheck SET value = 'pw-a2' WHERE username = 'alice'");
    wait_for("a change after the stall", Duration::from_secs(5), || {
        accepted(&rad, "alice", "pw-a2")
    });
}

#[test]
fn random_names_leave_preloaded_users_in_memory() {
    let env = e2e_env!();
    rust_only!(env);
    const USERS: usize = 300;
    const RANDOM: usize = 20_000;
    let db = TestDb::create(env, "random_names");
    db.exec(&format!(
        "INSERT INTO radcheck (username, attribute, op, value) \
         SELECT 'user' || i, 'Cleartext-Password', ':=', 'pw-' || i \
         FROM generate_series(1, {USERS}) i"
    ));
    // Ten times fewer places than random names: the old cache emptied
    // itself every 2,000 of them.
    let rad = Radiusd::builder(env, &db, "random_names")
        .config("cache_preload = yes")
        .config("cache_size = 2000")
        .start();
    let line = format!("cache preload: {USERS} of {USERS} users in memory");
    wait_for("the preload", Duration::from_secs(15), || {
        rad.log().contains(&line)
    });

    let mut rng = packet::Rng::new(packet::Rng::seed());
    let reqs: Vec<Request> = (0..RANDOM)
        .map(|_| {
            let name = format!("rnd-{:016x}", rng.next_u64());
            Request::pap(name.as_bytes(), b"guess")
        })
        .collect();
    let t = Instant::now();
    let addr: SocketAddr = rad.auth_addr();
    let outs = packet::send_many(addr, &rad.secret, &reqs, 64, Duration::from_secs(5));
    let rejected = outs
        .iter()
        .filter(|o| matches!(o, Outcome::Answered(r) if r.code == packet::ACCESS_REJECT))
        .count();
    eprintln!(
        "{RANDOM} random names in {:?}, {rejected} rejected",
        t.elapsed()
    );
    assert!(
        rejected > RANDOM * 9 / 10,
        "{rejected} of {RANDOM} rejected"
    );

    // No lookup can reach radcheck any more (a rename notifies nothing):
    // only users still in memory can be accepted.
    db.exec("ALTER TABLE radcheck RENAME TO radcheck_away");
    let missing: Vec<usize> = (1..=USERS)
        .filter(|i| !accepted(&rad, &format!("user{i}"), &format!("pw-{i}")))
        .collect();
    db.exec("ALTER TABLE radcheck_away RENAME TO radcheck");
    assert!(
        missing.is_empty(),
        "{} of {USERS} preloaded users no longer in memory, e.g. user{}",
        missing.len(),
        missing[0]
    );
    // And a name just looked up is still read from the database.
    assert!(accepted(&rad, "user1", "pw-1"));
}
