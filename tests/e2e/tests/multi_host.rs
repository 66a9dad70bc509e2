//! Several radiusd hosts on one PostgreSQL (issue 16): two radiusd processes
//! loading the module, each with its own journal (so its own journal id in
//! `rlm_rust_journal`), and radius-admin, all on one database. A password
//! change, a disable and a lockout made through either door reach both
//! servers' caches within a second; both ship their journals with nothing
//! lost and nothing written twice. rlm_rust-only: rlm_sql has no cache to
//! keep current, no lockout and no journal.

use std::time::{Duration, Instant};

use e2e::packet::{self, Request};
use e2e::{e2e_env, rust_only, AdminServer, Radiusd, TestDb, SECRET};
use serde_json::json;

/// How soon a change made on one host must show on every other.
const FOLLOW_WITHIN: Duration = Duration::from_secs(1);

/// Asks `rad` (PAP, `user`/`pw`) every 20 ms until the answer is `accept`;
/// how long that took, or None after [`FOLLOW_WITHIN`]. Each answer that is
/// not the awaited one is the old state, so a poll that waits for a reject
/// counts no failed login before the change lands.
fn follows(rad: &Radiusd, user: &str, pw: &str, accept: bool) -> Option<Duration> {
    let began = Instant::now();
    loop {
        let r = rad.pap(user, pw);
        if r.is_accept() == accept && (accept || r.is_reject()) {
            return Some(began.elapsed());
        }
        if began.elapsed() > FOLLOW_WITHIN {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Both servers show the change `what` within [`FOLLOW_WITHIN`].
fn both_follow(rads: &[&Radiusd; 2], what: &str, user: &str, pw: &str, accept: bool) {
    for (i, rad) in rads.iter().enumerate() {
        let took = follows(rad, user, pw, accept);
        eprintln!("{what}: host {} followed in {took:?}", i + 1);
        assert!(
            took.is_some(),
            "host {} did not follow {what} within {FOLLOW_WITHIN:?} ({user} still {}):\n{}",
            i + 1,
            if accept { "refused" } else { "accepted" },
            rad.log_tail(30)
        );
    }
}

#[test]
fn a_change_through_either_door_reaches_both_hosts_within_a_second() {
    let env = e2e_env!();
    // rlm_rust-only: the module's cache, lockout and radius-admin; rlm_sql has none
    rust_only!(env);
    let db = TestDb::create(env, "multi_follow");
    let a = Radiusd::start(env, &db, "multi_follow_a");
    let b = Radiusd::start(env, &db, "multi_follow_b");
    let admin = AdminServer::start(env, &db, "multi_follow");
    admin
        .post(
            "/api/v1/radiususers/",
            &json!({
                "username": "roamer",
                "password": "first-pw-1",
                "server_name": "radius1",
                "server_address": "127.0.0.1",
            }),
        )
        .expect(201);
    let path = format!("/api/v1/radiususers/{}/", admin.user_id("roamer"));
    let rads = [&a, &b];
    // Both hosts hold the user in memory: what follows must reach the
    // caches, not only the database.
    for rad in rads {
        assert!(rad.pap("roamer", "first-pw-1").is_accept());
        assert!(rad.pap("roamer", "first-pw-1").is_accept());
    }

    // A password change through HTTP.
    admin
        .post(
            &format!("{path}password/"),
            &json!({"password": "second-pw-2"}),
        )
        .expect(200);
    both_follow(&rads, "a password change", "roamer", "first-pw-1", false);
    for rad in rads {
        assert!(rad.pap("roamer", "second-pw-2").is_accept());
    }

    // A disable through HTTP, and its end.
    admin
        .patch(&path, &json!({"active": false, "reason": 0}))
        .expect(200);
    both_follow(&rads, "a disable", "roamer", "second-pw-2", false);
    admin.patch(&path, &json!({"active": true})).expect(200);
    both_follow(&rads, "an enable", "roamer", "second-pw-2", true);

    // A lockout through radiusd A (five wrong passwords, the default).
    for i in 0..5 {
        assert!(a.pap("roamer", &format!("wrong-{i}")).is_reject());
    }
    both_follow(&rads, "a lockout on host A", "roamer", "second-pw-2", false);
    admin.patch(&path, &json!({"active": true})).expect(200);
    both_follow(&rads, "an unlock", "roamer", "second-pw-2", true);

    // A lockout through radiusd B, seen by A and by the HTTP door.
    for i in 0..5 {
        assert!(b.pap("roamer", &format!("wrong-{i}")).is_reject());
    }
    both_follow(&rads, "a lockout on host B", "roamer", "second-pw-2", false);
    let shown = admin.get(&path).expect(200);
    assert_eq!(shown["active"], json!(false), "{shown}");
    assert_eq!(shown["reason"], json!(2), "{shown}");
    admin.patch(&path, &json!({"active": true})).expect(200);
    both_follow(&rads, "an unlock", "roamer", "second-pw-2", true);

    // A lockout through the HTTP door (rlm_rest's authorize/).
    for i in 0..5 {
        let status = admin
            .post(
                "/api/v1/authorize/",
                &json!({"username": "roamer", "password": format!("bad-{i}")}),
            )
            .status;
        assert_eq!(status, 401);
    }
    both_follow(&rads, "a lockout over HTTP", "roamer", "second-pw-2", false);
}

fn acct(session: &str, status: u32, nas: [u8; 4], at: u32) -> Request {
    Request::new(packet::ACCOUNTING_REQUEST)
        .attr(packet::USER_NAME, format!("u-{session}").as_bytes())
        .attr(packet::ACCT_SESSION_ID, session.as_bytes())
        .attr(packet::NAS_IP_ADDRESS, &nas)
        .attr_u32(packet::ACCT_STATUS_TYPE, status)
        .attr_u32(packet::EVENT_TIMESTAMP, at)
}

/// Sends `req` until answered (a NAS retransmits); panics after 10 s.
fn acknowledged(rad: &Radiusd, req: &Request) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = packet::send(rad.acct_addr(), SECRET, req, Duration::from_secs(2));
        if r.is_some_and(|r| r.code == packet::ACCOUNTING_RESPONSE) {
            return;
        }
        assert!(Instant::now() < deadline, "{}", rad.log_tail(30));
    }
}

#[test]
fn both_hosts_ship_their_journals_exactly_once() {
    let env = e2e_env!();
    // rlm_rust-only: the journal
    rust_only!(env);
    let db = TestDb::create(env, "multi_ship");
    let a = Radiusd::builder(env, &db, "multi_ship_a")
        .config("durability = journal")
        .start();
    let b = Radiusd::builder(env, &db, "multi_ship_b")
        .config("durability = journal")
        .start();
    const T0: u32 = 1_700_000_000;
    const N: u32 = 150;
    // Each host gets its own sessions, and every tenth session is reported
    // to both (a NAS failing over between them): one row either way.
    let mut expected = Vec::new();
    for i in 0..N {
        let s = format!("ship-{i}");
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        acknowledged(first, &acct(&s, 1, [10, 8, 0, 1], T0 + i));
        if i % 10 == 0 {
            acknowledged(second, &acct(&s, 1, [10, 8, 0, 1], T0 + i));
        }
        if i % 3 == 0 {
            acknowledged(second, &acct(&s, 2, [10, 8, 0, 1], T0 + i + 60));
        }
        expected.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.count("SELECT count(*) FROM radacct", &[]) < i64::from(N)
        || db.count(
            "SELECT count(*) FROM radacct WHERE acctstoptime IS NOT NULL",
            &[],
        ) < i64::from(N.div_ceil(3))
    {
        assert!(
            Instant::now() < deadline,
            "the journals did not drain in 20 s:\nA:\n{}\nB:\n{}",
            a.log_tail(20),
            b.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rows = db.query(
        "SELECT acctsessionid, count(*), bool_or(acctstoptime IS NOT NULL) \
         FROM radacct GROUP BY acctsessionid ORDER BY 1",
        &[],
    );
    assert_eq!(rows.len(), N as usize, "one row per session");
    for r in &rows {
        let s: String = r.get(0);
        let n: i64 = r.get(1);
        let stopped: bool = r.get(2);
        let i: u32 = s.trim_start_matches("ship-").parse().unwrap();
        assert_eq!(n, 1, "{s} written {n} times");
        assert_eq!(stopped, i % 3 == 0, "{s}: stopped");
    }
    // Two journals, one per host, each applied up to its end.
    let journals = db.query(
        "SELECT journal_id::text, dir, applied_seq FROM rlm_rust_journal ORDER BY dir",
        &[],
    );
    assert_eq!(journals.len(), 2, "one journal per host");
    let dirs: Vec<String> = journals.iter().map(|r| r.get(1)).collect();
    assert_ne!(dirs[0], dirs[1]);
    assert!(dirs[0].contains("multi_ship_a") && dirs[1].contains("multi_ship_b"));
    for r in &journals {
        let applied: i64 = r.get(2);
        assert!(
            applied > 0,
            "journal {} applied nothing",
            r.get::<_, String>(0)
        );
    }
}
