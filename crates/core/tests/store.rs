//! The core against a real PostgreSQL: a fresh database per test on the
//! private cluster (`scripts/pg start`; `RLM_RUST_TEST_DSN` overrides the
//! admin connection string).

use std::sync::Arc;
use std::time::{Duration, Instant};

use radius_core::accounting::{AcctOutcome, AcctRecord, AcctStatus};
use radius_core::config::ModuleConfig;
use radius_core::lookup::Lookup;
use radius_core::postauth::PostAuthRecord;
use radius_core::store::Store;

mod common;
use common::{accepted, session, TestDb};

#[tokio::test]
async fn accounting_follows_the_stock_queries() {
    let db = TestDb::new("acct").await;
    let store = db.store();
    let t0 = 1_700_000_000;

    // Start, then a duplicate Start.
    let start = session("u1", t0);
    assert_eq!(
        store
            .write_accounting(AcctStatus::Start, &start)
            .await
            .unwrap(),
        AcctOutcome::Written
    );
    store
        .write_accounting(AcctStatus::Start, &start)
        .await
        .unwrap();
    let n: i64 = db
        .client
        .query_one("SELECT count(*) FROM radacct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "a duplicate Start must not add a row");

    // Interim with gigawords.
    let mut interim = session("u1", t0 + 60);
    interim.session_time = Some(60);
    interim.input_octets = 10;
    interim.input_gigawords = 1;
    interim.output_octets = 20;
    store
        .write_accounting(AcctStatus::InterimUpdate, &interim)
        .await
        .unwrap();
    let r = db
        .client
        .query_one(
            "SELECT acctinputoctets, acctoutputoctets, acctsessiontime, acctinterval, \
             EXTRACT(EPOCH FROM acctstarttime)::bigint FROM radacct WHERE acctuniqueid = 'u1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), (1i64 << 32) + 10);
    assert_eq!(r.get::<_, i64>(1), 20);
    assert_eq!(r.get::<_, i64>(2), 60);
    assert_eq!(r.get::<_, i64>(3), 60);
    assert_eq!(r.get::<_, i64>(4), t0, "Event-Timestamp is the start time");

    // Stop, then a late Interim that must change nothing.
    let mut stop = session("u1", t0 + 120);
    stop.session_time = Some(120);
    stop.terminate_cause = "User-Request".into();
    store
        .write_accounting(AcctStatus::Stop, &stop)
        .await
        .unwrap();
    assert_eq!(
        store
            .write_accounting(AcctStatus::InterimUpdate, &interim)
            .await
            .unwrap(),
        AcctOutcome::Unchanged
    );
    let r = db
        .client
        .query_one(
            "SELECT EXTRACT(EPOCH FROM acctstoptime)::bigint, acctsessiontime, acctterminatecause \
             FROM radacct WHERE acctuniqueid = 'u1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), t0 + 120);
    assert_eq!(r.get::<_, i64>(1), 120);
    assert_eq!(r.get::<_, String>(2), "User-Request");

    // Stop without Start creates the row, started session_time earlier.
    let mut lone = session("u2", t0 + 500);
    lone.session_time = Some(100);
    store
        .write_accounting(AcctStatus::Stop, &lone)
        .await
        .unwrap();
    let r = db
        .client
        .query_one(
            "SELECT EXTRACT(EPOCH FROM acctstarttime)::bigint, acctstoptime IS NOT NULL \
             FROM radacct WHERE acctuniqueid = 'u2'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), t0 + 400);
    assert!(r.get::<_, bool>(1));

    // Accounting-On closes the open sessions of that NAS only.
    store
        .write_accounting(AcctStatus::Start, &session("u3", t0 + 600))
        .await
        .unwrap();
    let mut other = session("u4", t0 + 600);
    other.nas_ip = "192.0.2.99".into();
    store
        .write_accounting(AcctStatus::Start, &other)
        .await
        .unwrap();
    let mut on = session("", t0 + 700);
    on.unique_id.clear();
    store
        .write_accounting(AcctStatus::AccountingOn, &on)
        .await
        .unwrap();
    let rows = db
        .client
        .query(
            "SELECT acctuniqueid, acctterminatecause FROM radacct \
             WHERE acctuniqueid IN ('u3', 'u4') ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("NAS-Reboot")
    );
    assert_eq!(
        rows[1].get::<_, Option<String>>(1),
        None,
        "other NAS untouched"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn postauth_rows() {
    let db = TestDb::new("postauth").await;
    let store = db.store();
    store
        .write_postauth(&PostAuthRecord {
            username: "alice".into(),
            pass: None,
            reply: "Access-Accept".into(),
            called_station_id: Some("ap".into()),
            calling_station_id: None,
            authdate: 1_700_000_000.25,
        })
        .await
        .unwrap();
    let r = db
        .client
        .query_one(
            "SELECT username, pass, reply, calledstationid, EXTRACT(EPOCH FROM authdate)::float8 FROM radpostauth",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "alice");
    assert_eq!(r.get::<_, Option<String>>(1), None);
    assert_eq!(r.get::<_, String>(2), "Access-Accept");
    assert_eq!(r.get::<_, String>(3), "ap");
    assert!((r.get::<_, f64>(4) - 1_700_000_000.25).abs() < 1e-3);
    db.drop_db().await;
}

#[tokio::test]
async fn unreachable_database_fails_within_the_timeouts() {
    // Nothing listens on port 9 of loopback: connecting is refused at once.
    let cfg = ModuleConfig::from_items([
        ("dsn", "host=127.0.0.1 port=9 user=radius dbname=radius"),
        ("connect_timeout", "1"),
        ("query_timeout", "0.5"),
    ])
    .unwrap();
    let store = Store::new(&cfg).unwrap();
    let t = Instant::now();
    assert!(store.lookup("alice").await.is_err());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_fails_group_commits_within_the_timeouts() {
    // Accepts connections (the kernel's backlog) and never answers: a
    // database host that hangs.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dsn = format!(
        "host=127.0.0.1 port={} user=radius dbname=radius",
        stalled.local_addr().unwrap().port()
    );
    let cfg = ModuleConfig::from_items([
        ("dsn", dsn.as_str()),
        ("connect_timeout", "1"),
        ("query_timeout", "0.5"),
        ("auto_migrate", "no"),
    ])
    .unwrap();
    let mut store = Store::new(&cfg).unwrap();
    // A batch that failed because nothing answered is not retried record by
    // record: that would hold its leader, a radiusd thread, for a timeout
    // per record (here 16 x 0.5 s).
    let recs: Vec<_> = (0..16)
        .map(|i| (AcctStatus::Start, session(&format!("b{i}"), 1)))
        .collect();
    let t = Instant::now();
    let results = store.write_accounting_batch(&recs).await;
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    store
        .start_background(&tokio::runtime::Handle::current(), 0, false)
        .unwrap();
    let store = std::sync::Arc::new(store);
    let t = Instant::now();
    // Sixteen callers, as radiusd's threads would be: a failed batch is not
    // retried record by record when the database does not answer, so no
    // caller (the leader included) is held for a timeout per record.
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let acct = store.commit_accounting(AcctStatus::Start, session(&format!("x{i}"), 1));
                let post = store.commit_postauth(accepted(&format!("u{i}")));
                (acct.is_err(), post.is_err(), Instant::now())
            })
        })
        .collect();
    for th in threads {
        let (acct_failed, post_failed, done) =
            tokio::task::spawn_blocking(move || th.join().unwrap())
                .await
                .unwrap();
        assert!(acct_failed && post_failed);
        assert!(done - t < Duration::from_secs(4), "{:?}", done - t);
    }
    drop(stalled);
}

#[tokio::test]
async fn an_older_build_accepts_a_newer_schema() {
    let db = TestDb::new("skew").await;
    // What a newer build leaves behind: a migration this build does not have.
    db.client
        .execute(
            "INSERT INTO rlm_rust_schema_history (version, name, applied_on, checksum) \
             SELECT 999, 'from_the_future', applied_on, '1' FROM rlm_rust_schema_history LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    radius_core::schema::migrate(&db.dsn)
        .await
        .expect("an unknown newer migration must not stop an older build");
    assert!(db.store().lookup("nobody").await.is_ok());
    db.drop_db().await;
}

/// Waits up to `limit` for `f` to hold, polling.
async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while t.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn password_of(l: &radius_core::lookup::Lookup) -> String {
    l.user
        .check
        .iter()
        .find(|r| r.attribute == "Cleartext-Password")
        .map(|r| r.value.clone())
        .unwrap_or_default()
}

async fn cached_store(db: &TestDb) -> Store {
    cached_store_with(db, false).await
}

async fn cached_store_with(db: &TestDb, preload: bool) -> Store {
    let mut store = db.store();
    store
        .start_background(&tokio::runtime::Handle::current(), 1000, preload)
        .unwrap();
    let cache = store.cache().unwrap().clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let c = cache.clone();
            async move { c.is_live() }
        })
        .await,
        "the cache listener did not come up"
    );
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preload_holds_what_lookups_would_read() {
    let db = TestDb::new("preload").await;
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES \
               ('alice', 'Cleartext-Password', ':=', 'pw-a'), ('alice', 'NAS-IP-Address', '==', '192.0.2.1'); \
             INSERT INTO radreply (username, attribute, op, value) VALUES \
               ('alice', 'Reply-Message', ':=', 'hi'), ('alice', 'Session-Timeout', ':=', '60'); \
             INSERT INTO radusergroup (username, groupname, priority) VALUES \
               ('alice', 'staff', 2), ('alice', 'wifi', 1), ('alice', 'staff', 3), ('bob', 'wifi', 1); \
             INSERT INTO radgroupcheck (groupname, attribute, op, value) VALUES \
               ('staff', 'Auth-Type', ':=', 'Accept'), ('nobody', 'Auth-Type', ':=', 'Reject'); \
             INSERT INTO radgroupreply (groupname, attribute, op, value) VALUES \
               ('wifi', 'Idle-Timeout', ':=', '600'), ('staff', 'Class', ':=', 'staff'), \
               ('wifi', 'Acct-Interim-Interval', ':=', '300'); \
             INSERT INTO rlm_rust_user (username, active, password_hash) VALUES ('carol', false, 'x'), ('alice', true, NULL); \
             INSERT INTO rlm_rust_radius_token (user_id, token_hash, expires_at) \
               SELECT id, '\\x0102', now() + interval '1 hour' FROM rlm_rust_user WHERE username = 'carol';",
        )
        .await
        .unwrap();
    let names = ["alice", "bob", "carol"];
    let direct = db.store();
    let mut want = Vec::new();
    for n in names {
        want.push(direct.lookup(n).await.unwrap());
    }
    assert_eq!(want[0].user.groups.len(), 3, "{:?}", want[0].user.groups);
    assert!(want[2]
        .profile
        .as_ref()
        .is_some_and(|p| p.open_tokens.len() == 1));

    let store = cached_store_with(&db, true).await;
    let cache = store.cache().unwrap().clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let c = cache.clone();
            async move { c.len() == 3 }
        })
        .await,
        "preloaded {} users, not 3",
        cache.len()
    );
    for (n, w) in names.iter().zip(&want) {
        assert_eq!(store.cached(n).as_deref(), Some(w.as_ref()), "{n}");
    }
    // Members of a group share its rows: alice's "wifi" is bob's.
    let (alice, bob) = (store.cached("alice").unwrap(), store.cached("bob").unwrap());
    let wifi = |l: &Lookup| {
        l.user
            .groups
            .iter()
            .find(|g| g.name == "wifi")
            .cloned()
            .unwrap()
    };
    assert!(Arc::ptr_eq(&wifi(&alice), &wifi(&bob)));
    // As coherent as a miss: a plain-SQL change drops the preloaded entry.
    db.client
        .execute(
            "UPDATE radcheck SET value = 'new' WHERE username = 'alice' AND attribute = 'Cleartext-Password'",
            &[],
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(1), || {
            let s = &store;
            async move { s.lookup("alice").await.map(|l| password_of(&l)).ok() == Some("new".into()) }
        })
        .await
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_plain_sql_changes_within_a_second() {
    let db = TestDb::new("cache").await;
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES ('alice', 'Cleartext-Password', ':=', 'pw1'); \
             INSERT INTO radusergroup (username, groupname) VALUES ('alice', 'staff'); \
             INSERT INTO radgroupreply (groupname, attribute, op, value) VALUES ('staff', 'Idle-Timeout', ':=', '600');",
        )
        .await
        .unwrap();
    let store = cached_store(&db).await;
    assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw1");
    let (hits0, _) = store.cache().unwrap().stats();
    store.lookup("alice").await.unwrap();
    assert_eq!(
        store.cache().unwrap().stats().0,
        hits0 + 1,
        "second lookup is a hit"
    );

    // A password change by plain SQL, as psql or daloRADIUS would make it.
    db.client
        .execute(
            "UPDATE radcheck SET value = 'pw2' WHERE username = 'alice'",
            &[],
        )
        .await
        .unwrap();
    let changed = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), || async {
            password_of(&store.lookup("alice").await.unwrap()) == "pw2"
        })
        .await,
        "the new password was not seen within 1 s"
    );
    assert!(changed.elapsed() < Duration::from_secs(1));

    // A group change reaches every member.
    db.client
        .execute(
            "UPDATE radgroupreply SET value = '900' WHERE groupname = 'staff'",
            &[],
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(1), || async {
            store.lookup("alice").await.unwrap().user.groups[0].reply[0].value == "900"
        })
        .await
    );
    // A user created later is not stuck as "unknown".
    assert!(store.lookup("bob").await.unwrap().user.check.is_empty());
    db.client
        .execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES ('bob', 'Cleartext-Password', ':=', 'b')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(1), || async {
            password_of(&store.lookup("bob").await.unwrap()) == "b"
        })
        .await
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_listener_never_serves_stale_data() {
    let db = TestDb::new("listener").await;
    db.client
        .execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES ('alice', 'Cleartext-Password', ':=', 'pw1')",
            &[],
        )
        .await
        .unwrap();
    let store = cached_store(&db).await;
    assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw1");

    // Cut the listener's connection from the server side.
    let killed = db.terminate_listener().await;
    assert_eq!(killed, 1);
    let cache = store.cache().unwrap().clone();
    assert!(
        eventually(Duration::from_secs(1), || {
            let c = cache.clone();
            async move { !c.is_live() }
        })
        .await,
        "the lost listener was not noticed within 1 s"
    );
    // While it is gone, a change must be seen at once (no notification
    // will come for it).
    db.client
        .execute(
            "UPDATE radcheck SET value = 'pw2' WHERE username = 'alice'",
            &[],
        )
        .await
        .unwrap();
    // The listener waits a second before reconnecting: still in the gap.
    assert!(!cache.is_live());
    assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw2");
    // It comes back on its own, empty, and serves fresh data again.
    assert!(
        eventually(Duration::from_secs(5), || {
            let c = cache.clone();
            async move { c.is_live() }
        })
        .await,
        "the listener did not reconnect"
    );
    assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw2");
    db.client
        .execute(
            "UPDATE radcheck SET value = 'pw3' WHERE username = 'alice'",
            &[],
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(1), || async {
            password_of(&store.lookup("alice").await.unwrap()) == "pw3"
        })
        .await
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_writes_every_record_before_answering() {
    let db = TestDb::new("groupcommit").await;
    let store = std::sync::Arc::new(cached_store(&db).await);
    // Callers are plain threads, as radiusd's are: 16 of them, 25 records
    // each, so commits carry several callers' records.
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for k in 0..25 {
                    let i = t * 25 + k;
                    store.commit_postauth(accepted(&format!("u{i}"))).unwrap();
                    let mut s = session(&format!("gc{i}"), 1_700_000_000);
                    let start = store.commit_accounting(AcctStatus::Start, s.clone());
                    assert_eq!(start.unwrap(), AcctOutcome::Written);
                    s.event_time += 60;
                    s.session_time = Some(60);
                    outcomes.push(store.commit_accounting(AcctStatus::Stop, s).unwrap());
                }
                outcomes
            })
        })
        .collect();
    for t in threads {
        let outcomes = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        assert!(outcomes.iter().all(|o| *o == AcctOutcome::Written));
    }
    let r = db
        .client
        .query_one(
            "SELECT (SELECT count(*) FROM radpostauth), (SELECT count(*) FROM radacct WHERE acctstoptime IS NOT NULL), \
                    (SELECT sum(acctsessiontime) FROM radacct)::bigint",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 400);
    assert_eq!(r.get::<_, i64>(1), 400);
    assert_eq!(r.get::<_, i64>(2), 400 * 60);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_fails_alone_in_its_batch() {
    let db = TestDb::new("badrecord").await;
    let store = std::sync::Arc::new(cached_store(&db).await);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = session(&format!("b{i}"), 1_700_000_000);
                if i == 7 {
                    // Not an address: PostgreSQL refuses the inet cast.
                    s.nas_ip = "not-an-ip".into();
                }
                barrier.wait();
                (i, store.commit_accounting(AcctStatus::Start, s))
            })
        })
        .collect();
    for t in threads {
        let (i, r) = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        assert_eq!(r.is_err(), i == 7, "record {i}: {r:?}");
    }
    let n: i64 = db
        .client
        .query_one("SELECT count(*) FROM radacct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 49);
    db.drop_db().await;
}

/// radacct as text, one row per session, without the serial id (which
/// depends on the order rows were inserted in).
async fn radacct_rows(db: &TestDb) -> Vec<String> {
    db.client
        .query(
            "SELECT (to_jsonb(r) - 'radacctid')::text FROM radacct r ORDER BY acctuniqueid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Writes `recs` one at a time through a store without background writers
/// (each request on its own, as without group commit) and in batches of
/// the given sizes through the group-commit path, into two fresh databases
/// that first get `before` one at a time; the outcomes and the rows must be
/// the same. Returns the outcomes and the sequential database.
async fn batch_matches_sequential(
    tag: &str,
    before: &[(AcctStatus, AcctRecord)],
    recs: &[(AcctStatus, AcctRecord)],
    batch_sizes: &mut dyn Iterator<Item = usize>,
) -> (Vec<AcctOutcome>, TestDb) {
    let seq_db = TestDb::new(&format!("{tag}seq")).await;
    let batch_db = TestDb::new(&format!("{tag}batch")).await;
    let (seq, batch) = (seq_db.store(), batch_db.store());
    for (status, rec) in before {
        seq.write_accounting(*status, rec).await.unwrap();
        batch.write_accounting(*status, rec).await.unwrap();
    }
    let mut want = Vec::new();
    for (status, rec) in recs {
        want.push(seq.write_accounting(*status, rec).await.unwrap());
    }
    let mut got = Vec::new();
    let mut rest = recs;
    while !rest.is_empty() {
        let n = batch_sizes.next().unwrap().clamp(1, rest.len());
        for r in batch.write_accounting_batch(&rest[..n]).await {
            got.push(r.unwrap());
        }
        rest = &rest[n..];
    }
    assert_eq!(got, want, "outcomes");
    assert_eq!(
        batch.accounting_fallbacks(),
        0,
        "every batch went through the multi-row statements"
    );
    let (want_rows, got_rows) = (radacct_rows(&seq_db).await, radacct_rows(&batch_db).await);
    assert_eq!(want_rows.len(), got_rows.len(), "row count");
    for (w, g) in want_rows.iter().zip(&got_rows) {
        assert_eq!(g, w);
    }
    batch_db.drop_db().await;
    (want, seq_db)
}

#[tokio::test]
async fn a_batch_gives_the_rows_of_one_record_at_a_time() {
    use AcctOutcome::{Unchanged, Written};
    use AcctStatus::*;
    let t0 = 1_700_000_000;
    let at = |unique: &str, dt: i64, stime: Option<i64>| {
        let mut r = session(unique, t0 + dt);
        r.session_time = stime;
        r.input_octets = dt as u32 * 10;
        r.output_gigawords = 1;
        r.connect_info = format!("ci-{dt}");
        r
    };
    let on_nas2 = |r: AcctRecord| AcctRecord {
        nas_ip: "192.0.2.2".into(),
        ..r
    };
    let mut framed = at("d", 30, Some(30));
    framed.framed_ip_address = "10.0.0.4".into();
    framed.framed_ipv6_prefix = "2001:db8::/64".into();
    framed.realm = "example.org".into();
    framed.terminate_cause = "Idle-Timeout".into();
    // Already there: e started and stopped, f started.
    let before = vec![
        (Start, at("e", 0, None)),
        (Stop, at("e", 50, Some(50))),
        (Start, at("f", 0, None)),
    ];
    let mut reset = on_nas2(at("", 300, None));
    reset.unique_id.clear();
    let recs = vec![
        (Start, at("a", 0, None)),
        (Start, at("b", 0, None)),
        (InterimUpdate, at("a", 60, Some(60))),
        (Start, at("a", 0, None)), // duplicate Start, open session
        (Stop, at("a", 120, Some(120))),
        (InterimUpdate, at("a", 90, Some(90))), // late Interim, same session
        (InterimUpdate, at("e", 40, Some(40))), // late Interim, earlier session
        (Stop, at("c", 200, Some(100))),        // Stop without Start
        (Stop, at("c", 200, Some(100))),        // its retransmission
        (InterimUpdate, framed.clone()),        // Interim without Start
        (Start, at("e", 0, None)),              // Start after Stop
        (Stop, at("f", 80, None)),              // Stop without session time
        (Start, on_nas2(at("h", 100, None))),
        (Other(15), at("b", 100, None)),
        (AccountingOn, reset),
        (Start, on_nas2(at("g", 400, None))),
        (InterimUpdate, on_nas2(at("h", 500, Some(400)))), // after the reset
        (Start, at("a", 0, None)),                         // duplicate Start after Stop
        (Stop, framed),
        (InterimUpdate, at("b", 60, Some(60))),
    ];
    // All in one batch, then in batches of every size.
    let want = vec![
        Written, Written, Written, Written, Written, Unchanged, Unchanged, Written, Written,
        Written, Written, Written, Written, Unchanged, Written, Written, Unchanged, Written,
        Written, Written,
    ];
    let (got, seq) =
        batch_matches_sequential("mixed", &before, &recs, &mut std::iter::repeat(recs.len())).await;
    assert_eq!(got, want);
    let r = seq
        .client
        .query_one(
            "SELECT count(*), count(acctstoptime), \
             (SELECT acctterminatecause FROM radacct WHERE acctuniqueid = 'h') \
             FROM radacct",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 8, "a b c d e f g h");
    assert_eq!(r.get::<_, i64>(1), 6, "a c d e f h");
    assert_eq!(r.get::<_, Option<String>>(2).as_deref(), Some("NAS-Reboot"));
    seq.drop_db().await;
    for size in [2, 3, 4, 7, 11] {
        let (got, seq) = batch_matches_sequential(
            &format!("mixed{size}_"),
            &before,
            &recs,
            &mut std::iter::repeat(size),
        )
        .await;
        assert_eq!(got, want, "batches of {size}");
        seq.drop_db().await;
    }
}

#[tokio::test]
async fn random_batches_give_the_rows_of_one_record_at_a_time() {
    // A small deterministic generator: no dependency, same run every time.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let t0 = 1_700_000_000;
    let mut recs = Vec::new();
    for i in 0..600i64 {
        let uid = format!("s{}", next(30));
        let mut r = session(&uid, t0 + i - next(20) as i64);
        if next(2) == 0 {
            r.nas_ip = "192.0.2.2".into();
        }
        if next(3) > 0 {
            r.session_time = Some(next(500) as i64);
        }
        r.input_octets = next(1 << 31) as u32;
        r.input_gigawords = next(3) as u32;
        r.output_octets = next(1 << 31) as u32;
        if next(4) == 0 {
            r.framed_ip_address = format!("10.0.0.{}", next(250));
            r.framed_interface_id = "0:0:0:1".into();
        }
        if next(5) == 0 {
            r.terminate_cause = "Lost-Carrier".into();
        }
        r.connect_info = format!("ci{i}");
        let status = match next(40) {
            0 => AcctStatus::AccountingOn,
            1 => AcctStatus::AccountingOff,
            2 => AcctStatus::Other(15),
            n if n < 15 => AcctStatus::Start,
            n if n < 28 => AcctStatus::InterimUpdate,
            _ => AcctStatus::Stop,
        };
        recs.push((status, r));
    }
    let sizes: Vec<usize> = (0..600).map(|_| 1 + next(80) as usize).collect();
    let (out, seq) = batch_matches_sequential("random", &[], &recs, &mut sizes.into_iter()).await;
    let unchanged = out.iter().filter(|o| **o == AcctOutcome::Unchanged).count();
    assert!(unchanged > 20, "the mix exercises no-ops too ({unchanged})");
    seq.drop_db().await;
}

/// A string no compression shrinks: an index entry of it is as long as it.
fn incompressible(len: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [(state % 62) as usize],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_postgresql_would_refuse_is_stored_escaped_or_cut() {
    let db = TestDb::new("hostiletext").await;
    let mut store = db.store();
    store
        .start_background(&tokio::runtime::Handle::current(), 0, false)
        .unwrap();
    let store = Arc::new(store);

    // What a Wi-Fi client controls (its identity, its MAC as the NAS
    // prints it), through the group commit as the module writes it, and
    // one record alone as radius-admin writes it.
    let long = incompressible(6000);
    let hostile = PostAuthRecord {
        username: "x\0y".into(),
        pass: Some("p\0w".into()),
        reply: "Access-Reject".into(),
        called_station_id: Some("ap\0".into()),
        calling_station_id: Some("\0".into()),
        authdate: 1_700_000_000.0,
    };
    let threads: Vec<_> = [
        hostile.clone(),
        accepted(&long),
        accepted("demo"),
        accepted("DOMAIN\\alice"),
    ]
    .into_iter()
    .map(|rec| {
        let store = store.clone();
        std::thread::spawn(move || store.commit_postauth(rec))
    })
    .collect();
    for t in threads {
        let r = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        r.unwrap();
    }
    store
        .write_postauth(&PostAuthRecord {
            username: "admin\0api".into(),
            ..accepted("")
        })
        .await
        .unwrap();
    type Opt = Option<String>;
    let rows: Vec<(String, Opt, Opt, Opt)> = db
        .client
        .query(
            "SELECT username, pass, calledstationid, callingstationid FROM radpostauth ORDER BY username",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let cut = &long[..radius_core::postauth::MAX_TEXT_BYTES];
    let mut want = vec!["DOMAIN\\alice", cut, "admin\\000api", "demo", "x\\000y"];
    want.sort_unstable();
    let mut got = names.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    let x = rows.iter().find(|r| r.0 == "x\\000y").unwrap();
    assert_eq!(
        (x.1.as_deref(), x.2.as_deref(), x.3.as_deref()),
        (Some("p\\000w"), Some("ap\\000"), Some("\\000"))
    );

    // Accounting: the unique id itself may carry a NUL (a site that keys
    // on Acct-Session-Id); the record is still matched with the row it
    // wrote (Written, not a no-op), and a Stop finds the Start's row.
    let mut start = session("u\0nique", 1_700_000_000);
    start.session_id = "s\0id".into();
    start.username = "x\0y".into();
    start.calling_station_id = "02\0".into();
    let mut stop = start.clone();
    stop.event_time += 60;
    stop.session_time = Some(60);
    stop.terminate_cause = "User-Request\0".into();
    let mut long_user = session("long", 1_700_000_000);
    long_user.username = long.clone();
    let out = store
        .write_accounting_batch(&[
            (AcctStatus::Start, start.clone()),
            (AcctStatus::Start, long_user),
            (AcctStatus::Stop, stop.clone()),
        ])
        .await;
    let out: Vec<AcctOutcome> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(out, [AcctOutcome::Written; 3]);
    assert_eq!(store.accounting_fallbacks(), 0, "nothing was refused");
    // And through the group commit, as the module writes.
    let mut interim = session("u\0two", 1_700_000_100);
    interim.username = "\0".into();
    let s2 = store.clone();
    let r = tokio::task::spawn_blocking(move || {
        s2.commit_accounting(AcctStatus::InterimUpdate, interim)
    })
    .await
    .unwrap();
    assert_eq!(r.unwrap(), AcctOutcome::Written);
    // And one record alone, as radius-admin writes (its unique id is clean:
    // radius-admin makes its records storable itself, see acct_record).
    let mut direct = session("zdirect", 1_700_000_000);
    direct.username = "direct\0".into();
    direct.realm = long.clone();
    let r = store.write_accounting(AcctStatus::Start, &direct).await;
    assert_eq!(r.unwrap(), AcctOutcome::Written);
    let rows: Vec<(String, String, String, Opt, Opt, Option<i64>)> = db
        .client
        .query(
            "SELECT acctuniqueid, acctsessionid, username, callingstationid, acctterminatecause, \
             acctsessiontime FROM radacct ORDER BY acctuniqueid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[0].0, "long");
    assert_eq!(rows[0].2, cut);
    assert_eq!(
        rows[1],
        (
            "u\\000nique".to_string(),
            "s\\000id".to_string(),
            "x\\000y".to_string(),
            Some("02\\000".to_string()),
            Some("User-Request\\000".to_string()),
            Some(60)
        )
    );
    assert_eq!(
        (rows[2].0.as_str(), rows[2].2.as_str()),
        ("u\\000two", "\\000")
    );
    assert_eq!(
        (rows[3].0.as_str(), rows[3].2.as_str()),
        ("zdirect", "direct\\000")
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_postauth_record_fails_alone_in_its_batch() {
    let db = TestDb::new("parefused").await;
    // Text can no longer make PostgreSQL refuse a row, so a constraint
    // does, as a site's own rule or a trigger could.
    db.client
        .batch_execute(
            "ALTER TABLE radpostauth ADD CONSTRAINT test_refuses_evil CHECK (username <> 'evil')",
        )
        .await
        .unwrap();
    let cfg = ModuleConfig::from_items([("dsn", db.dsn.as_str()), ("query_timeout", "5")]).unwrap();
    let mut store = Store::new(&cfg).unwrap();
    store
        .start_background(&tokio::runtime::Handle::current(), 0, false)
        .unwrap();
    store.ping().await.unwrap();
    let store = Arc::new(store);

    // The table is locked, so the first caller's commit waits while all
    // the others queue: the refused record is then sure to share its
    // batch with 48 good ones.
    db.client
        .batch_execute("BEGIN; LOCK TABLE radpostauth IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let commit = |name: String| {
        let store = store.clone();
        std::thread::spawn(move || (name.clone(), store.commit_postauth(accepted(&name))))
    };
    let mut threads = vec![commit("first".into())];
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..49 {
        threads.push(commit(if i == 30 {
            "evil".into()
        } else {
            format!("u{i}")
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    db.client.batch_execute("COMMIT").await.unwrap();
    for t in threads {
        let (name, r) = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        assert_eq!(r.is_err(), name == "evil", "{name}: {r:?}");
        if let Err(e) = r {
            assert!(e.to_string().contains("test_refuses_evil"), "{e}");
        }
    }
    assert_eq!(
        store.commit_totals()[0],
        (2, 50),
        "the first record alone, then the other 49 in one batch"
    );
    let n: i64 = db
        .client
        .query_one("SELECT count(*) FROM radpostauth", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 49);
    db.drop_db().await;
}
