//! The module's Prometheus metrics (`metrics_listen`), scraped from a real
//! radiusd after known requests: exact counts, not just presence.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use e2e::metrics::{free_port, get, value};
use e2e::proxy::{Mode, PgProxy};
use e2e::{e2e_env, rust_only, Radiusd, TestDb};

fn requests(text: &str, section: &str, rcode: &str) -> f64 {
    value(
        text,
        &format!("rlm_rust_requests_total{{section=\"{section}\",rcode=\"{rcode}\"}}"),
    )
}

#[test]
fn counters_match_the_requests_sent() {
    let env = e2e_env!();
    // rlm_rust-only: the module's own listener
    rust_only!(env);
    let db = TestDb::create(env, "metrics_counts");
    db.user("alice", "right");
    let port = free_port();
    let rad = Radiusd::builder(env, &db, "metrics_counts")
        .config(&format!("metrics_listen = 127.0.0.1:{port}"))
        .config("lockout_attempts = 2")
        .start();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        rad.log()
            .contains(&format!("metrics on http://127.0.0.1:{port}/metrics")),
        "the start line names the listener:\n{}",
        rad.log()
    );

    let (status, before) = get(addr, "/metrics");
    assert!(status.contains("200"), "{status}\n{before}");
    assert_eq!(requests(&before, "authorize", "ok"), 0.0);

    // Two accepts, two rejects (the second locks alice's account), one
    // unknown user, one accounting session.
    assert!(rad.pap("alice", "right").is_accept());
    assert!(rad.pap("alice", "right").is_accept());
    assert!(rad.pap("alice", "wrong").is_reject());
    assert!(rad.pap("alice", "wrong").is_reject());
    assert!(rad.pap("nobody", "x").is_reject());
    let session = "User-Name = alice, Acct-Session-Id = \"m-1\", NAS-IP-Address = 10.0.0.1";
    for status in ["Start", "Stop"] {
        let r = rad.acct(&format!("{session}, Acct-Status-Type = {status}"));
        assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{r:?}");
    }

    let (_, text) = get(addr, "/metrics");
    // authorize: alice's four requests find her (ok), nobody's does not.
    assert_eq!(requests(&text, "authorize", "ok"), 4.0, "{text}");
    assert_eq!(requests(&text, "authorize", "notfound"), 1.0);
    assert_eq!(requests(&text, "authorize", "fail"), 0.0);
    // post-auth: one row per answer, accepted or rejected.
    assert_eq!(requests(&text, "post-auth", "ok"), 5.0);
    assert_eq!(requests(&text, "preacct", "noop"), 2.0);
    assert_eq!(requests(&text, "accounting", "ok"), 2.0);
    // Cleartext-Password: pap authenticates, not this module.
    assert_eq!(requests(&text, "authenticate", "ok"), 0.0);
    let count = |section: &str| {
        value(
            &text,
            &format!("rlm_rust_request_duration_seconds_count{{section=\"{section}\"}}"),
        )
    };
    assert_eq!(count("authorize"), 5.0);
    assert_eq!(count("post-auth"), 5.0);
    assert_eq!(count("accounting"), 2.0);
    // durability = database (the fixtures' default): group commits.
    let batch = |kind: &str| {
        value(
            &text,
            &format!("rlm_rust_commit_batch_records_sum{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(batch("post-auth"), 5.0);
    assert_eq!(batch("accounting"), 2.0);
    assert_eq!(value(&text, "rlm_rust_lockouts_total"), 1.0);
    assert_eq!(value(&text, "rlm_rust_database_errors_total"), 0.0);
    // The cache answered alice from memory after her first request.
    assert!(value(&text, "rlm_rust_cache_hits_total") >= 3.0, "{text}");
    assert!(value(&text, "rlm_rust_cache_entries") >= 1.0);
    assert!(text.ends_with("# EOF\n"));

    let (status, _) = get(addr, "/anything-else");
    assert!(status.contains("404"), "{status}");
}

#[test]
fn the_journal_reports_what_it_has_not_shipped() {
    let env = e2e_env!();
    // rlm_rust-only: the module's journal and listener
    rust_only!(env);
    let db = TestDb::create(env, "metrics_journal");
    let proxy = PgProxy::for_dsn(&db.dsn);
    let port = free_port();
    let mut rad = Radiusd::builder(env, &db, "metrics_journal")
        .config(&format!("dsn = \"{}\"", proxy.dsn(&db.dsn)))
        .config(&format!("metrics_listen = 127.0.0.1:{port}"))
        .config("durability = journal")
        .start();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let session = "User-Name = jo, Acct-Session-Id = \"j-1\", NAS-IP-Address = 10.0.0.2";
    for status in ["Start", "Interim-Update", "Stop"] {
        let r = rad.acct(&format!("{session}, Acct-Status-Type = {status}"));
        assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{r:?}");
    }
    // Shipped within a second or so: then nothing is pending and the lag
    // is back to zero.
    let until = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (_, text) = get(addr, "/metrics");
        if value(&text, "rlm_rust_journal_shipped_records_total") >= 3.0 || Instant::now() > until {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        value(&text, "rlm_rust_journal_shipped_records_total"),
        3.0,
        "{text}"
    );
    assert_eq!(value(&text, "rlm_rust_journal_pending_records"), 0.0);
    assert_eq!(value(&text, "rlm_rust_journal_lag_seconds"), 0.0);
    assert_eq!(
        value(&text, "rlm_rust_commit_batch_records_sum{kind=\"journal\"}"),
        3.0
    );

    // With PostgreSQL away, records wait: the pending count and the lag
    // show it.
    proxy.set(Mode::Down);
    let r = rad.acct(
        "User-Name = jo, Acct-Session-Id = \"j-2\", NAS-IP-Address = 10.0.0.2, Acct-Status-Type = Start",
    );
    assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{r:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let (_, text) = get(addr, "/metrics");
    assert_eq!(
        value(&text, "rlm_rust_journal_pending_records"),
        1.0,
        "{text}"
    );
    assert!(
        value(&text, "rlm_rust_journal_lag_seconds") >= 1.0,
        "{text}"
    );
    assert!(
        value(&text, "rlm_rust_database_errors_total") >= 1.0,
        "{text}"
    );
    proxy.set(Mode::Forward);
    rad.stop();
}

#[test]
fn a_bad_address_or_a_taken_port_stops_the_start() {
    let env = e2e_env!();
    // rlm_rust-only: the module's own item
    rust_only!(env);
    let db = TestDb::create(env, "metrics_bad");
    let check = Radiusd::builder(env, &db, "metrics_bad")
        .config("metrics_listen = localhost:9812")
        .check_config();
    assert!(!check.success, "{}", check.output);
    assert!(
        check.output.contains("'metrics_listen'") && check.output.contains("localhost:9812"),
        "{}",
        check.output
    );
    let _ = std::fs::remove_dir_all(&check.dir);

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Radiusd::builder(env, &db, "metrics_taken")
            .config(&format!("metrics_listen = 127.0.0.1:{port}"))
            .start()
    }));
    let why = match started {
        Ok(_) => panic!("radiusd started on a metrics port that is taken"),
        Err(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        why.contains(&format!("metrics_listen 127.0.0.1:{port}: cannot listen")),
        "{why}"
    );
}
