//! `durability = journal` (the default) through a real radiusd: records are
//! answered once they are durable on local disk and reach PostgreSQL from
//! the shipper, exactly once, with the rows the database mode writes;
//! nothing acknowledged is lost to a database outage, a stall, a crash or a
//! refused record. rlm_rust-only: stock rlm_sql has no journal.
//!
//! PostgreSQL is reached through a proxy each test owns ([`PgProxy`]), so
//! one test's outage touches no other test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::packet::{self, Outcome, Request};
use e2e::proxy::{Mode, PgProxy};
use e2e::{e2e_env, rust_only, Radiusd, TestDb, SECRET};

const T0: u32 = 1_700_000_000;

fn acct(session: &str, status: u32, nas: [u8; 4], at: u32, octets: u32) -> Request {
    Request::new(packet::ACCOUNTING_REQUEST)
        .attr(packet::USER_NAME, format!("u-{session}").as_bytes())
        .attr(packet::ACCT_SESSION_ID, session.as_bytes())
        .attr(packet::NAS_IP_ADDRESS, &nas)
        .attr_u32(packet::ACCT_STATUS_TYPE, status)
        .attr_u32(packet::EVENT_TIMESTAMP, at)
        .attr_u32(42, octets) // Acct-Input-Octets
        .attr_u32(52, 1) // Acct-Input-Gigawords
}

fn start(session: &str) -> Request {
    acct(session, 1, [10, 9, 0, 1], T0, 0)
}

fn pap(user: &str, password: &str) -> Request {
    Request::pap(user.as_bytes(), password.as_bytes()).message_authenticator()
}

fn answered(o: &Option<packet::Response>, code: u8) -> bool {
    o.as_ref().is_some_and(|r| r.code == code)
}

/// Sends a unique accounting Start until one is answered and its row is
/// in radacct: the shipper applies in order, so every record made durable
/// before it is in PostgreSQL too.
fn settle(rad: &Radiusd, db: &TestDb, within: Duration) {
    let sentinel = format!("sentinel-{}", Instant::now().elapsed().as_nanos());
    let deadline = Instant::now() + within;
    loop {
        assert!(
            Instant::now() < deadline,
            "the journal did not drain in {within:?}:\n{}",
            rad.log_tail(40)
        );
        let r = packet::send(
            rad.acct_addr(),
            SECRET,
            &start(&sentinel),
            Duration::from_secs(2),
        );
        if answered(&r, packet::ACCOUNTING_RESPONSE) {
            break;
        }
    }
    while db.count(
        "SELECT count(*) FROM radacct WHERE acctsessionid = $1",
        &[&sentinel],
    ) == 0
    {
        assert!(
            Instant::now() < deadline,
            "the journal did not drain in {within:?}:\n{}",
            rad.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal(env: &e2e::Env, tag: &str) -> PathBuf {
    let d = env
        .work_dir
        .join(format!("journal-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn radacct_rows(db: &TestDb) -> Vec<String> {
    db.query(
        "SELECT (to_jsonb(r) - 'radacctid')::text FROM radacct r ORDER BY acctuniqueid",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn postauth_rows(db: &TestDb) -> Vec<String> {
    db.query(
        "SELECT (to_jsonb(p) - 'id' - 'authdate')::text FROM radpostauth p ORDER BY 1",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// A database with the user `demo`, a proxy to it, and a journaling
/// radiusd behind the proxy with `extra` config lines, `demo` cached by a
/// first login.
fn behind_proxy(env: &e2e::Env, tag: &str, extra: &[&str]) -> (TestDb, PgProxy, Radiusd) {
    let db = TestDb::create(env, &format!("jr_{tag}"));
    db.user("demo", "demo-password");
    let proxy = PgProxy::for_dsn(&db.dsn);
    let mut b = Radiusd::builder(env, &db, &format!("journal-{tag}"))
        .config(&format!("dsn = \"{}\"", proxy.dsn(&db.dsn)))
        .config("durability = journal");
    for line in extra {
        b = b.config(line);
    }
    let rad = b.start();
    let r = packet::send(
        rad.auth_addr(),
        SECRET,
        &pap("demo", "demo-password"),
        Duration::from_secs(3),
    );
    assert!(answered(&r, packet::ACCESS_ACCEPT), "{}", rad.log_tail(20));
    (db, proxy, rad)
}

#[test]
fn the_journal_writes_the_rows_the_database_mode_writes() {
    let env = e2e_env!();
    rust_only!(env);
    // The same requests, one at a time, to a server of each mode.
    let mut seq: Vec<Request> = Vec::new();
    for s in 0..40 {
        let id = format!("s{s}");
        let nas = [10, 9, 0, 1 + (s % 2) as u8];
        seq.push(acct(&id, 1, nas, T0 + s, 0));
        seq.push(acct(&id, 3, nas, T0 + s + 60, 1000 + s));
        if s % 3 == 0 {
            seq.push(acct(&id, 2, nas, T0 + s + 120, 5000 + s));
            // Interim after Stop, and a duplicate Start.
            seq.push(acct(&id, 3, nas, T0 + s + 180, 9000));
            seq.push(acct(&id, 1, nas, T0 + s, 0));
        }
        if s == 20 {
            // Accounting-On from one NAS closes its open sessions.
            seq.push(acct("on", 7, [10, 9, 0, 2], T0 + 500, 0));
        }
        seq.push(pap(&format!("nobody{s}"), "x"));
    }
    seq.push(pap("demo", "demo-password"));
    let mut rows = Vec::new();
    for mode in ["database", "journal"] {
        let db = TestDb::create(env, &format!("jr_{mode}"));
        db.user("demo", "demo-password");
        let rad = Radiusd::builder(env, &db, &format!("journal-rows-{mode}"))
            .config(&format!("durability = {mode}"))
            .start();
        let mut answers = Vec::new();
        for r in &seq {
            let to = match r.code {
                packet::ACCOUNTING_REQUEST => rad.acct_addr(),
                _ => rad.auth_addr(),
            };
            answers.push(packet::send(to, SECRET, r, Duration::from_secs(3)).map(|r| r.code));
        }
        if mode == "journal" {
            settle(&rad, &db, Duration::from_secs(20));
            db.exec("DELETE FROM radacct WHERE acctsessionid LIKE 'sentinel-%'");
            assert!(rad.log().contains("journal"), "{}", rad.log_tail(20));
        }
        rows.push((answers, radacct_rows(&db), postauth_rows(&db)));
    }
    let (db_answers, db_acct, db_post) = &rows[0];
    let (j_answers, j_acct, j_post) = &rows[1];
    assert!(db_acct.len() >= 40 && db_post.len() == 41, "{db_acct:?}");
    assert_eq!(j_acct, db_acct, "radacct differs between the modes");
    assert_eq!(j_post, db_post, "radpostauth differs between the modes");
    // Answers: the same, but the journal acknowledges what the database
    // mode leaves unanswered (an Interim-Update after the Stop: nothing to
    // write, which rlm_sql answers with no response, the journal with one
    // since the outcome is only known later).
    for (i, (d, j)) in db_answers.iter().zip(j_answers).enumerate() {
        if d != j {
            assert_eq!(
                (d, j),
                (&None, &Some(packet::ACCOUNTING_RESPONSE)),
                "request {i}"
            );
        }
    }
}

/// Accounting Starts of unique sessions and logins of `demo`, sent one
/// after the other until `stop`, with what was answered.
#[derive(Default)]
struct Load {
    acked_starts: Vec<String>,
    unanswered_starts: usize,
    accepts: usize,
    rejects: usize,
    auth_lost: usize,
    auth_ms: Vec<f64>,
}

fn run_load(
    rad_auth: std::net::SocketAddr,
    rad_acct: std::net::SocketAddr,
    stop: &AtomicBool,
    load: &Mutex<Load>,
    tag: &str,
) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let s = format!("{tag}-{i}");
        let r = packet::send(rad_acct, SECRET, &start(&s), Duration::from_secs(3));
        {
            let mut l = load.lock().unwrap();
            match answered(&r, packet::ACCOUNTING_RESPONSE) {
                true => l.acked_starts.push(s),
                false => l.unanswered_starts += 1,
            }
        }
        let t = Instant::now();
        let r = packet::send(
            rad_auth,
            SECRET,
            &pap("demo", "demo-password"),
            Duration::from_secs(3),
        );
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut l = load.lock().unwrap();
        match r.map(|r| r.code) {
            Some(packet::ACCESS_ACCEPT) => l.accepts += 1,
            Some(_) => l.rejects += 1,
            None => l.auth_lost += 1,
        }
        l.auth_ms.push(ms);
        i += 1;
        drop(l);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every acknowledged key has one row in `table` (grouped by `key`), and
/// no key has two.
fn exactly_once_in(db: &TestDb, table: &str, key: &str, acked: &[String]) {
    let counts: HashMap<String, i64> = db
        .query(
            &format!("SELECT {key}, count(*) FROM {table} GROUP BY {key}"),
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|s| !counts.contains_key(*s)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged {table} records lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "{table} rows written twice: {twice:?}");
}

fn exactly_once(db: &TestDb, acked: &[String]) {
    exactly_once_in(db, "radacct", "acctsessionid", acked);
}

#[test]
fn nothing_acknowledged_is_lost_while_postgres_is_down_for_30_s() {
    let env = e2e_env!();
    rust_only!(env);
    let (db, proxy, mut rad) = behind_proxy(
        env,
        "down",
        &["connect_timeout = 0.5", "query_timeout = 0.5"],
    );
    let stop = AtomicBool::new(false);
    let load = Mutex::new(Load::default());
    let (auth, acct) = (rad.auth_addr(), rad.acct_addr());
    let during = std::thread::scope(|s| {
        s.spawn(|| run_load(auth, acct, &stop, &load, "down"));
        std::thread::sleep(Duration::from_secs(2));
        proxy.set(Mode::Down);
        let before = load.lock().unwrap().accepts;
        std::thread::sleep(Duration::from_secs(30));
        let l = load.lock().unwrap();
        let during = (
            l.accepts - before,
            l.rejects,
            l.auth_lost,
            l.unanswered_starts,
        );
        drop(l);
        proxy.set(Mode::Forward);
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        during
    });
    let load = load.into_inner().unwrap();
    assert!(
        rad.log().contains("cannot apply records to PostgreSQL"),
        "{}",
        rad.log_tail(40)
    );
    settle(&rad, &db, Duration::from_secs(30));
    exactly_once(&db, &load.acked_starts);
    assert_eq!(
        load.unanswered_starts, 0,
        "accounting went unanswered during the outage"
    );
    assert!(load.acked_starts.len() > 200, "{}", load.acked_starts.len());
    // Every Accept passed post-auth, so each left one radpostauth row.
    let rows = db.count(
        "SELECT count(*) FROM radpostauth WHERE username = 'demo'",
        &[],
    );
    assert_eq!(rows, load.accepts as i64 + 1);
    // The cached user was served throughout.
    assert_eq!(
        (during.1, during.2),
        (0, 0),
        "rejects/lost logins of the cached user: {during:?}"
    );
    assert!(during.0 > 200, "{during:?}");
    rad.stop();
}

#[test]
fn a_stalled_database_delays_rows_not_answers() {
    let env = e2e_env!();
    rust_only!(env);
    let (db, proxy, rad) = behind_proxy(env, "stall", &[]);
    let stop = AtomicBool::new(false);
    let load = Mutex::new(Load::default());
    let (auth, acct) = (rad.auth_addr(), rad.acct_addr());
    std::thread::scope(|s| {
        proxy.set(Mode::Stall);
        s.spawn(|| run_load(auth, acct, &stop, &load, "stall"));
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
    });
    proxy.set(Mode::Forward);
    let mut load = load.into_inner().unwrap();
    assert_eq!(load.unanswered_starts, 0);
    assert_eq!((load.rejects, load.auth_lost), (0, 0));
    load.auth_ms.sort_by(f64::total_cmp);
    let p99 = load.auth_ms[(load.auth_ms.len() * 99 / 100).min(load.auth_ms.len() - 1)];
    assert!(
        p99 < 10.0,
        "cached-user auth p99 {p99:.2} ms during the stall"
    );
    settle(&rad, &db, Duration::from_secs(30));
    exactly_once(&db, &load.acked_starts);
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

#[test]
fn a_sigkill_under_load_loses_and_repeats_nothing() {
    let env = e2e_env!();
    rust_only!(env);
    let db = TestDb::create(env, "jr_kill");
    let dir = journal(env, "kill");
    let cfg = format!("journal_dir = {}", dir.display());
    let mut rad = Radiusd::builder(env, &db, "journal-kill")
        .config("durability = journal")
        .config(&cfg)
        .start();
    // Post-auth rows have no natural key: a unique name per request shows
    // any row written twice. Eight clients, each one request at a time.
    let addr = rad.auth_addr();
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    let sent = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (stop, acked, sent) = (&stop, &acked, &sent);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("k{t}-{i}");
                    sent.fetch_add(1, Ordering::Relaxed);
                    let r =
                        packet::send(addr, SECRET, &pap(&name, "x"), Duration::from_millis(500));
                    if r.is_some() {
                        acked.lock().unwrap().push(name);
                    }
                    i += 1;
                }
            });
        }
        // Killed while requests are in flight.
        let deadline = Instant::now() + Duration::from_secs(20);
        while db.count("SELECT count(*) FROM radpostauth", &[]) < 500 {
            assert!(Instant::now() < deadline, "{}", rad.log_tail(30));
            std::thread::sleep(Duration::from_millis(20));
        }
        rad.kill();
        stop.store(true, Ordering::Relaxed);
    });
    let acked = acked.into_inner().unwrap();
    let sent = sent.into_inner();
    assert!(
        acked.len() >= 500 && acked.len() < sent,
        "{} of {sent}",
        acked.len()
    );
    // A write cut short, as a crash in the middle of one leaves it: right
    // after the last record (segments are preallocated with zeros).
    let seg = last_segment(&dir);
    let bytes = std::fs::read(&seg).unwrap();
    let mut end = 0;
    while end + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        end += 16 + len;
    }
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x30, 0, 0, 0, 1, 2, 3], end as u64).unwrap();
    drop(f);
    let rad = Radiusd::builder(env, &db, "journal-kill-again")
        .config("durability = journal")
        .config(&cfg)
        .start();
    assert!(
        rad.log().contains("discarding a torn tail of 7 bytes"),
        "{}",
        rad.log_tail(30)
    );
    settle(&rad, &db, Duration::from_secs(30));
    exactly_once_in(&db, "radpostauth", "username", &acked);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_record_is_set_aside_and_its_neighbours_written() {
    let env = e2e_env!();
    rust_only!(env);
    let db = TestDb::create(env, "jr_refused");
    db.exec("ALTER TABLE radpostauth ADD CONSTRAINT no_evil CHECK (username <> 'evil')");
    let rad = Radiusd::builder(env, &db, "journal-refused")
        .config("durability = journal")
        .start();
    for u in ["good1", "evil", "good2"] {
        let r = packet::send(
            rad.auth_addr(),
            SECRET,
            &pap(u, "x"),
            Duration::from_secs(3),
        );
        assert!(answered(&r, packet::ACCESS_REJECT), "{u}");
    }
    settle(&rad, &db, Duration::from_secs(20));
    let names: Vec<String> = db
        .query("SELECT username FROM radpostauth ORDER BY id", &[])
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["good1", "good2"]);
    let aside = db.query(
        "SELECT kind, reason, record_text FROM rlm_rust_dead_letter",
        &[],
    );
    assert_eq!(aside.len(), 1);
    let (kind, reason, text): (String, String, String) =
        (aside[0].get(0), aside[0].get(1), aside[0].get(2));
    assert_eq!(kind, "post-auth");
    assert!(reason.contains("no_evil"), "{reason}");
    assert!(text.contains("\"evil\""), "{text}");
    assert!(
        rad.log().contains("set aside in rlm_rust_dead_letter"),
        "{}",
        rad.log_tail(20)
    );
}

#[test]
fn a_full_journal_refuses_with_a_reason_and_recovers() {
    let env = e2e_env!();
    rust_only!(env);
    let (db, proxy, rad) = behind_proxy(
        env,
        "full",
        &["journal_max_bytes = 1048576", "connect_timeout = 0.5"],
    );
    proxy.set(Mode::Down);
    // About 700 bytes each in the journal: 1 MiB holds about 1,500.
    let pad = "x".repeat(220);
    let reqs: Vec<Request> = (0..2500)
        .map(|i| {
            start(&format!("f{i}"))
                .attr(77, pad.as_bytes()) // Connect-Info
                .attr(30, pad.as_bytes()) // Called-Station-Id
                .attr(31, pad.as_bytes()) // Calling-Station-Id
        })
        .collect();
    let outcomes = packet::send_many(
        rad.acct_addr(),
        SECRET,
        &reqs,
        64,
        Duration::from_millis(500),
    );
    let acked: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Outcome::Answered(_)))
        .map(|(i, _)| format!("f{i}"))
        .collect();
    assert!(acked.len() > 1000 && acked.len() < 2500, "{}", acked.len());
    let log = rad.log();
    assert!(
        log.contains("full") && log.contains("journal_max_bytes = 1048576"),
        "{}",
        rad.log_tail(20)
    );
    proxy.set(Mode::Forward);
    settle(&rad, &db, Duration::from_secs(30));
    exactly_once(&db, &acked);
}
