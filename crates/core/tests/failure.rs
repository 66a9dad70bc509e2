//! Failure handling against a real PostgreSQL, in ways that can fail: a
//! database that stops answering in the middle of a session (a TCP proxy
//! between the Store and PostgreSQL that stops forwarding, sockets open),
//! sixteen logins racing for one one-time token, a group commit held by a
//! table lock until it must carry many records, and rows checked from
//! another connection the moment a commit is acknowledged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use radius_core::account::{hash_token, LoginDecision, RejectReason};
use radius_core::accounting::{AcctOutcome, AcctStatus};
use radius_core::authorize::Options;
use radius_core::config::ModuleConfig;
use radius_core::login::{pap_login, Cost, Lockout, Policy};
use radius_core::store::Store;
use radius_core::Error;
use tokio_postgres::NoTls;

mod common;
use common::proxy::{Mode, PgProxy};
use common::{accepted, session, TestDb};

// ---------------------------------------------------------------------------
// Shared helpers.

const QUERY_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

fn store_on(dsn: &str, items: &[(&str, &str)]) -> Store {
    let mut all = vec![("dsn", dsn), ("auto_migrate", "no")];
    all.extend_from_slice(items);
    Store::new(&ModuleConfig::from_items(all).unwrap()).unwrap()
}

/// A store whose group commits run (no user cache: every lookup reads).
fn started(mut store: Store) -> Arc<Store> {
    store
        .start_background(&tokio::runtime::Handle::current(), 0, false)
        .unwrap();
    Arc::new(store)
}

fn policy() -> Policy {
    Policy {
        opts: Options {
            read_groups: true,
            read_profiles: true,
            default_profile: None,
        },
        // Off: the token race below leaves fifteen failures behind.
        lockout: Lockout {
            attempts: 0,
            period: None,
        },
        auth_type: "rust".into(),
        store_nt_hash: false,
        second_factor: Default::default(),
    }
}

/// A connection of the test's own, never one of the store's.
async fn connect(dsn: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Longer than anything here may take when nothing hangs.
const HANG: Duration = Duration::from_secs(15);

/// Runs `f` on a thread of its own (the group commits and `pap_login`
/// block their caller, as radiusd's threads) and times it there. A hang
/// fails the test instead of hanging it.
async fn timed_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let t = std::thread::spawn(move || {
        let t = Instant::now();
        let r = f();
        (r, t.elapsed())
    });
    join_within("a blocking call", t).await
}

/// Joins `t` without blocking the runtime, failing after [`HANG`]; a panic
/// in `t` is the test's.
async fn join_within<T>(what: &str, t: std::thread::JoinHandle<T>) -> T {
    until(&format!("{what} to return"), HANG, || {
        let done = t.is_finished();
        async move { done }
    })
    .await;
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// `f` within [`HANG`], or the test fails.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {HANG:?}"))
}

/// `r` failed because the database did not answer in time, neither at once
/// (something refused) nor after much more than `query_timeout` (a hang).
fn assert_timed_out<T: std::fmt::Debug>(what: &str, r: Result<T, Error>, took: Duration) {
    let e = match r {
        Ok(v) => panic!("{what}: answered {v:?} while the database was stalled"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(
        msg.contains("did not answer within"),
        "{what}: failed for another reason than the stall: {msg}"
    );
    assert!(
        took >= QUERY_TIMEOUT.mul_f64(0.8),
        "{what}: failed after {took:?}, before query_timeout ({QUERY_TIMEOUT:?}): {msg}"
    );
    assert!(
        took <= QUERY_TIMEOUT * 2 + CONNECT_TIMEOUT,
        "{what}: failed only after {took:?} (query_timeout {QUERY_TIMEOUT:?}): {msg}"
    );
}

/// Polls `f` until it holds (waiting for an event the test cannot be told
/// about), failing after `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !f().await {
        assert!(
            t.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sessions of database `db` waiting for a lock.
async fn lock_waiters(admin: &tokio_postgres::Client, db: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            &[&db],
        )
        .await
        .unwrap()
        .get(0)
}

async fn count(client: &tokio_postgres::Client, sql: &str, arg: &str) -> i64 {
    client.query_one(sql, &[&arg]).await.unwrap().get(0)
}

/// alice: a radcheck password. tok: an rlm_rust_user without a password,
/// with two open one-time tokens. Returns the ids of tok's tokens.
async fn seed_users(db: &TestDb) -> Vec<i64> {
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) \
               VALUES ('alice', 'Cleartext-Password', ':=', 'pw-a'); \
             INSERT INTO radreply (username, attribute, op, value) \
               VALUES ('alice', 'Idle-Timeout', ':=', '600'); \
             INSERT INTO rlm_rust_user (username, password_hash) VALUES ('tok', NULL);",
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for secret in ["secret-1", "secret-2"] {
        let id: i64 = db
            .client
            .query_one(
                "INSERT INTO rlm_rust_radius_token (user_id, token_hash, expires_at) \
                 SELECT id, $1, now() + interval '1 hour' FROM rlm_rust_user WHERE username = 'tok' \
                 RETURNING id::bigint",
                &[&hash_token(secret).to_vec()],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    ids
}

// ---------------------------------------------------------------------------
// 1. A stalled database.

/// Every door to the database at once, against a stalled database: each
/// fails within the timeouts. `token` is an open one-time token's id.
async fn every_operation_times_out(store: &Arc<Store>, token: i64, tag: &str) {
    let rt = tokio::runtime::Handle::current();
    let lookup = within("lookup", async {
        let t = Instant::now();
        let r = store.lookup("alice").await;
        (r, t.elapsed())
    });
    let consume = within("consume_token", async {
        let t = Instant::now();
        let r = store.consume_token(token).await;
        (r, t.elapsed())
    });
    let s = Arc::clone(store);
    let who = format!("{tag}-stalled");
    let post = timed_blocking(move || s.commit_postauth(accepted(&who)));
    let s = Arc::clone(store);
    let unique = format!("{tag}-stalled");
    let acct = timed_blocking(move || s.commit_accounting(AcctStatus::Start, session(&unique, 1)));
    let s = Arc::clone(store);
    let login = timed_blocking(move || pap_login(&s, &rt, &policy(), "alice", "pw-a", Cost::Least));
    let ((l, lt), (c, ct), (p, pt), (a, at), (g, gt)) =
        tokio::join!(lookup, consume, post, acct, login);
    assert_timed_out(&format!("{tag}: lookup"), l, lt);
    assert_timed_out(&format!("{tag}: consume_token"), c, ct);
    assert_timed_out(&format!("{tag}: commit_postauth"), p, pt);
    assert_timed_out(&format!("{tag}: commit_accounting"), a, at);
    assert_timed_out(&format!("{tag}: pap_login"), g, gt);
}

/// Every door works (before a stall, or again after it, on the same store).
async fn every_operation_works(store: &Arc<Store>, db: &TestDb, token: i64, tag: &str) {
    let l = within("lookup", store.lookup("alice"))
        .await
        .unwrap_or_else(|e| panic!("{tag}: lookup: {e}"));
    assert_eq!(l.user.check[0].value, "pw-a");
    assert!(within("consume_token", store.consume_token(token))
        .await
        .unwrap_or_else(|e| panic!("{tag}: consume_token: {e}")));
    let s = Arc::clone(store);
    let who = format!("{tag}-after");
    let (r, _) = timed_blocking(move || s.commit_postauth(accepted(&who))).await;
    r.unwrap_or_else(|e| panic!("{tag}: commit_postauth: {e}"));
    let s = Arc::clone(store);
    let unique = format!("{tag}-after");
    let (r, _) =
        timed_blocking(move || s.commit_accounting(AcctStatus::Start, session(&unique, 1))).await;
    assert_eq!(
        r.unwrap_or_else(|e| panic!("{tag}: commit_accounting: {e}")),
        AcctOutcome::Written
    );
    let (s, rt) = (Arc::clone(store), tokio::runtime::Handle::current());
    let (r, _) =
        timed_blocking(move || pap_login(&s, &rt, &policy(), "alice", "pw-a", Cost::Least)).await;
    assert!(
        matches!(
            r.unwrap_or_else(|e| panic!("{tag}: pap_login: {e}")),
            LoginDecision::Accept { .. }
        ),
        "{tag}: alice refused"
    );
    let c = &db.client;
    let sql = "SELECT count(*) FROM radpostauth WHERE username = $1";
    assert_eq!(count(c, sql, &format!("{tag}-after")).await, 1);
    let sql = "SELECT count(*) FROM radacct WHERE acctuniqueid = $1";
    assert_eq!(count(c, sql, &format!("{tag}-after")).await, 1);
}

/// The store of the stall tests: through `proxy`, query_timeout 0.5 s, no
/// user cache (every lookup reads), group commits started.
fn stall_store(proxy: &PgProxy, db: &TestDb) -> Arc<Store> {
    let dsn = proxy.dsn(&db.dsn);
    let qt = format!("{}", QUERY_TIMEOUT.as_secs_f64());
    let ct = format!("{}", CONNECT_TIMEOUT.as_secs_f64());
    started(store_on(
        &dsn,
        &[
            ("query_timeout", qt.as_str()),
            ("connect_timeout", ct.as_str()),
            ("cache_size", "0"),
        ],
    ))
}

/// One more open one-time token for tok.
async fn new_token(db: &TestDb, secret: &str) -> i64 {
    db.client
        .query_one(
            "INSERT INTO rlm_rust_radius_token (user_id, token_hash, expires_at) \
             SELECT id, $1, now() + interval '1 hour' FROM rlm_rust_user WHERE username = 'tok' \
             RETURNING id::bigint",
            &[&hash_token(secret).to_vec()],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_fails_every_door_within_query_timeout_then_serves_again() {
    let db = TestDb::new("fail_stall").await;
    let tokens = seed_users(&db).await;
    let proxy = PgProxy::for_dsn(&db.dsn);

    // Mid-session: every door has been used, so the pool and both writers
    // hold connections, which then stop answering.
    let store = stall_store(&proxy, &db);
    every_operation_works(&store, &db, tokens[0], "warm").await;
    proxy.set(Mode::Stall);
    every_operation_times_out(&store, tokens[1], "mid-session").await;
    // The stall ends as a hung host wakes up: the held bytes go through,
    // the connections go on (accounting's writer, cut short mid-wave,
    // closed its own and connects anew). What was held may now be applied
    // (the token above used up, the post-auth row written): a caller told
    // "timeout" was never told "not done". So another token here.
    proxy.set(Mode::Forward);
    let token = new_token(&db, "secret-3").await;
    every_operation_works(&store, &db, token, "after-resume").await;

    // A store with no connection yet: TCP connects, then nothing answers
    // (not even the startup handshake).
    let cold = stall_store(&proxy, &db);
    let token = new_token(&db, "secret-4").await;
    proxy.set(Mode::Stall);
    every_operation_times_out(&cold, token, "connecting").await;
    // The stall ends with every connection cut: the store connects anew.
    let before = proxy.accepted();
    proxy.sever();
    every_operation_works(&cold, &db, token, "after-reset").await;
    assert!(
        proxy.accepted() > before,
        "no new connection after the reset"
    );

    drop(proxy);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_connections_are_cut_every_door_works_at_once() {
    let db = TestDb::new("fail_reset").await;
    let tokens = seed_users(&db).await;
    let proxy = PgProxy::for_dsn(&db.dsn);
    let store = stall_store(&proxy, &db);
    every_operation_works(&store, &db, tokens[0], "warm").await;
    // A partition that heals with resets.
    proxy.set(Mode::Stall);
    every_operation_times_out(&store, tokens[1], "mid-session").await;
    proxy.sever();
    every_operation_works(&store, &db, tokens[1], "after-reset").await;
    // A PostgreSQL restart, as the store sees it: the server closes every
    // connection it has.
    let n: i64 = db
        .client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n >= 3, "only {n} of the store's connections were open");
    let token = new_token(&db, "secret-3").await;
    every_operation_works(&store, &db, token, "after-restart").await;
    drop(proxy);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_token_row_is_held_fails_within_query_timeout() {
    // The database answers, but the token's row is locked by another
    // transaction: the conditional UPDATE waits, and the login must not.
    let db = TestDb::new("fail_tokenheld").await;
    let tokens = seed_users(&db).await;
    let qt = format!("{}", QUERY_TIMEOUT.as_secs_f64());
    let store = Arc::new(store_on(&db.dsn, &[("query_timeout", qt.as_str())]));
    let holder = connect(&db.dsn).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM rlm_rust_radius_token WHERE id = {} FOR UPDATE",
            tokens[0]
        ))
        .await
        .unwrap();
    let (s, rt) = (Arc::clone(&store), tokio::runtime::Handle::current());
    let (r, took) =
        timed_blocking(move || pap_login(&s, &rt, &policy(), "tok", "secret-1", Cost::Least)).await;
    // Whichever fires first: the store's deadline or the statement_timeout
    // it gave the server (both query_timeout).
    let e = r.expect_err("a login answered while its token row was held");
    assert!(
        took >= QUERY_TIMEOUT.mul_f64(0.8) && took <= QUERY_TIMEOUT * 2,
        "failed after {took:?} (query_timeout {QUERY_TIMEOUT:?}): {e}"
    );
    // The server gives up the abandoned UPDATE too (the store's
    // statement_timeout) while the row is still held. Released earlier,
    // the UPDATE could still win the row and use the token up for a login
    // already failed: the deadline and statement_timeout are both
    // query_timeout, and the server's starts later.
    let admin = connect(&db.dsn).await;
    until(
        "the server to cancel the abandoned UPDATE",
        Duration::from_secs(3),
        || async { lock_waiters(&admin, &db.name).await == 0 },
    )
    .await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    // Nothing was used up, and the token still works once.
    let (s, rt) = (Arc::clone(&store), tokio::runtime::Handle::current());
    let (r, _) =
        timed_blocking(move || pap_login(&s, &rt, &policy(), "tok", "secret-1", Cost::Least)).await;
    assert!(matches!(r.unwrap(), LoginDecision::Accept { .. }));
    db.drop_db().await;
}

// ---------------------------------------------------------------------------
// 2. Concurrent use of one one-time token.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_logins_with_one_token_accept_exactly_once() {
    const N: usize = 16;
    let db = TestDb::new("fail_tokenrace").await;
    let tokens = seed_users(&db).await;
    // One connection per racer, so that all can be inside the UPDATE at once.
    let store = Arc::new(store_on(
        &db.dsn,
        &[("pool_size", "16"), ("query_timeout", "10")],
    ));
    // The token's row is held while the racers look the user up (the read
    // does not wait for it) and reach the UPDATE (which does): released only
    // when all sixteen wait there, so all sixteen saw the token open and
    // race for it in the database, not one after the other.
    let holder = connect(&db.dsn).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM rlm_rust_radius_token WHERE id = {} FOR UPDATE",
            tokens[0]
        ))
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(N));
    let racers: Vec<_> = (0..N)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            let rt = tokio::runtime::Handle::current();
            std::thread::spawn(move || {
                barrier.wait();
                pap_login(&store, &rt, &policy(), "tok", "secret-1", Cost::Least)
            })
        })
        .collect();
    let admin = connect(&db.dsn).await;
    until(
        "all sixteen logins to wait for the token's row",
        Duration::from_secs(8),
        || async { lock_waiters(&admin, &db.name).await == N as i64 },
    )
    .await;
    holder.batch_execute("COMMIT").await.unwrap();
    let mut accepted = 0;
    for r in racers {
        match join_within("a racing login", r)
            .await
            .expect("a racing login failed")
        {
            LoginDecision::Accept { .. } => accepted += 1,
            LoginDecision::Reject { reason } => assert_eq!(reason, RejectReason::BadPassword),
        }
    }
    assert_eq!(
        accepted, 1,
        "one one-time token, {accepted} accepted logins"
    );
    let used: Vec<i64> = db
        .client
        .query(
            "SELECT id::bigint FROM rlm_rust_radius_token WHERE used_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(used, vec![tokens[0]], "the raced token, and only it, used");
    db.drop_db().await;
}

// ---------------------------------------------------------------------------
// 3. A group commit that batched.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_held_by_a_locked_table_are_committed_together() {
    const N: usize = 32;
    let db = TestDb::new("fail_batch").await;
    let store = started(store_on(&db.dsn, &[("query_timeout", "10")]));
    let holder = connect(&db.dsn).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE radpostauth IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let checker = Arc::new(connect(&db.dsn).await);
    let entered = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(N));
    let callers: Vec<_> = (0..N)
        .map(|i| {
            let (store, checker) = (Arc::clone(&store), Arc::clone(&checker));
            let (entered, barrier) = (Arc::clone(&entered), Arc::clone(&barrier));
            let rt = tokio::runtime::Handle::current();
            // Plain threads, as radiusd's are.
            std::thread::spawn(move || {
                let user = format!("batch-{i}");
                barrier.wait();
                entered.fetch_add(1, Ordering::SeqCst);
                let r = store.commit_postauth(accepted(&user));
                // Acknowledged means committed: visible at once elsewhere.
                let seen = rt.block_on(count(
                    &checker,
                    "SELECT count(*) FROM radpostauth WHERE username = $1",
                    &user,
                ));
                (r, seen)
            })
        })
        .collect();
    // The first caller leads a commit that waits for the lock; the others
    // queue behind it.
    let admin = connect(&db.dsn).await;
    until(
        "every caller in and the leader waiting for the table",
        Duration::from_secs(8),
        || async {
            entered.load(Ordering::SeqCst) == N && lock_waiters(&admin, &db.name).await == 1
        },
    )
    .await;
    holder.batch_execute("COMMIT").await.unwrap();
    for (i, c) in callers.into_iter().enumerate() {
        let (r, seen) = join_within("a post-auth caller", c).await;
        r.unwrap_or_else(|e| panic!("caller {i}: {e}"));
        assert_eq!(seen, 1, "caller {i} answered before its row was visible");
    }
    let n: i64 = db
        .client
        .query_one("SELECT count(*) FROM radpostauth", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, N as i64);
    let [(commits, records), _] = store.commit_totals();
    assert_eq!(records, N as u64);
    // The leader's record went alone; the rest queued while it waited and
    // should share at most a few commits. Two records a commit at least.
    assert!(
        commits * 2 <= records,
        "{records} records in {commits} commits: the callers were not batched"
    );
    db.drop_db().await;
}

// ---------------------------------------------------------------------------
// 4. A reply means the row is there.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_record_is_visible_to_a_new_connection_at_once() {
    const THREADS: usize = 4;
    const EACH: usize = 5;
    let db = TestDb::new("fail_visible").await;
    let store = started(db.store());
    let dsn = db.dsn.clone();
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, barrier, dsn) = (Arc::clone(&store), Arc::clone(&barrier), dsn.clone());
            let rt = tokio::runtime::Handle::current();
            std::thread::spawn(move || {
                // A connection made after the reply: nothing it could have
                // seen earlier, no snapshot older than the commit.
                let fresh = |sql: &'static str, arg: String| -> Vec<tokio_postgres::Row> {
                    rt.block_on(async {
                        let (c, conn) = tokio_postgres::connect(&dsn, NoTls).await.unwrap();
                        tokio::spawn(conn);
                        c.query(sql, &[&arg]).await.unwrap()
                    })
                };
                barrier.wait();
                for k in 0..EACH {
                    let id = format!("vis-{t}-{k}");
                    store.commit_postauth(accepted(&id)).unwrap();
                    let rows = fresh("SELECT 1 FROM radpostauth WHERE username = $1", id.clone());
                    assert_eq!(rows.len(), 1, "{id}: post-auth acknowledged, no row");

                    let mut s = session(&id, 1_700_000_000);
                    let r = store.commit_accounting(AcctStatus::Start, s.clone());
                    assert_eq!(r.unwrap(), AcctOutcome::Written);
                    let rows = fresh(
                        "SELECT acctstoptime IS NULL FROM radacct WHERE acctuniqueid = $1",
                        id.clone(),
                    );
                    assert_eq!(rows.len(), 1, "{id}: Start acknowledged, no row");
                    assert!(rows[0].get::<_, bool>(0), "{id}: stopped after a Start");

                    s.event_time += 60;
                    s.session_time = Some(60);
                    let r = store.commit_accounting(AcctStatus::Stop, s);
                    assert_eq!(r.unwrap(), AcctOutcome::Written);
                    let rows = fresh(
                        "SELECT acctstoptime IS NOT NULL, acctsessiontime::bigint \
                         FROM radacct WHERE acctuniqueid = $1",
                        id.clone(),
                    );
                    assert_eq!(rows.len(), 1, "{id}: one row per session");
                    assert!(
                        rows[0].get::<_, bool>(0),
                        "{id}: Stop acknowledged, not stopped"
                    );
                    assert_eq!(rows[0].get::<_, Option<i64>>(1), Some(60), "{id}");
                }
            })
        })
        .collect();
    for t in threads {
        join_within("a committing thread", t).await;
    }
    db.drop_db().await;
}
