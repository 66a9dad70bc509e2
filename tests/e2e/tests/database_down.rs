//! README: "A database that is down at start does not keep radiusd from
//! starting; requests fail (`fail`, bounded by the timeouts) until it is
//! back", and "A database error or timeout fails the request: no response,
//! the NAS retransmits". rlm_rust-only: stock rlm_sql refuses to start
//! without a connection unless its pool is told otherwise.

use std::time::{Duration, Instant};

use e2e::{e2e_env, rust_only, Radiusd, TestDb};

#[test]
fn a_database_down_at_start_fails_requests_within_the_timeouts() {
    let env = e2e_env!();
    rust_only!(env);
    let db = TestDb::create(env, "db_down");
    // Port 1 on loopback: nothing listens, every connection is refused.
    let rad = Radiusd::builder(env, &db, "db_down")
        .config("dsn = \"host=127.0.0.1 port=1 user=radius dbname=radius\"")
        .config("connect_timeout = 0.5")
        .config("query_timeout = 0.5")
        .start();
    assert!(
        rad.log().contains("database not reachable at start"),
        "{}",
        rad.log_tail(30)
    );

    // Access-Request: authorize fails, radiusd rejects, within the timeouts.
    let t = Instant::now();
    let r = rad.pap("demo", "demo-password");
    assert!(r.is_reject(), "{}", r.raw);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Accounting-Request: the record cannot be stored, so no response.
    let r = rad.radclient(
        "acct",
        "User-Name = demo, Acct-Status-Type = Start, Acct-Session-Id = s-down, \
         NAS-IP-Address = 127.0.0.1, NAS-Port = 1",
        3,
    );
    assert!(
        r.code.is_none(),
        "an Accounting-Response was sent:\n{}",
        r.raw
    );
    // The server keeps answering.
    assert!(rad.pap("demo", "demo-password").is_reject());
}

/// With the journal (the default), a database down at start delays rows,
/// not accounting answers: the record is answered from the journal and
/// lands once the database is reachable.
#[test]
fn with_the_journal_accounting_is_answered_while_the_database_is_down_at_start() {
    let env = e2e_env!();
    rust_only!(env);
    let db = TestDb::create(env, "db_down_journal");
    let proxy = e2e::proxy::PgProxy::for_dsn(&db.dsn);
    proxy.set(e2e::proxy::Mode::Down);
    let rad = Radiusd::builder(env, &db, "db_down_journal")
        .config(&format!("dsn = \"{}\"", proxy.dsn(&db.dsn)))
        .config("durability = journal")
        .config("connect_timeout = 0.5")
        .config("query_timeout = 0.5")
        .start();
    assert!(
        rad.log().contains("database not reachable at start"),
        "{}",
        rad.log_tail(30)
    );
    let r = rad.radclient(
        "acct",
        "User-Name = demo, Acct-Status-Type = Start, Acct-Session-Id = s-journal, \
         NAS-IP-Address = 127.0.0.1, NAS-Port = 1",
        3,
    );
    assert!(r.code.is_some(), "no Accounting-Response:\n{}", r.raw);
    proxy.set(e2e::proxy::Mode::Forward);
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.count(
        "SELECT count(*) FROM radacct WHERE acctsessionid = 's-journal'",
        &[],
    ) == 0
    {
        assert!(Instant::now() < deadline, "{}", rad.log_tail(30));
        std::thread::sleep(Duration::from_millis(100));
    }
}
