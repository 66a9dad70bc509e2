//! A real radiusd whose module reaches PostgreSQL with sslmode=verify-full
//! (scripts/pg's cluster: ssl = on, test CA): a PAP login and an accounting
//! record through the journal and its shipper, every connection of the
//! module over TLS; a wrong CA leaves radiusd up, logging at start why the
//! database is unreachable.

use std::time::{Duration, Instant};

use e2e::{e2e_env, pg_tls, rust_only, Radiusd, TestDb};

#[test]
fn verify_full_login_and_accounting_over_tls() {
    let env = e2e_env!();
    rust_only!(env); // the module's dsn; rlm_sql has its own TLS settings
    let db = TestDb::create(env, "tls_verify_full");
    db.user("tls-bob", "tls-pw");
    let dsn = format!(
        "{} sslmode=verify-full sslrootcert={}",
        db.dsn,
        pg_tls::ca()
    );
    let rad = Radiusd::builder(env, &db, "tls_verify_full")
        .dsn(&dsn)
        .config("durability = journal")
        .start();
    assert!(rad.pap("tls-bob", "tls-pw").is_accept());
    let r = rad.acct(
        "User-Name = tls-bob, Acct-Session-Id = \"tls-1\", NAS-IP-Address = 10.0.0.9, \
         Acct-Status-Type = Start, Event-Timestamp = 1700000000",
    );
    assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{}", r.raw);
    let t = Instant::now();
    while db.count(
        "SELECT count(*) FROM radacct WHERE acctsessionid = 'tls-1'",
        &[],
    ) != 1
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the journal did not ship the record: {}",
            rad.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = rad.log();
    assert!(log.contains("database reachable"), "{}", rad.log_tail(30));
    // Every connection the module holds to this database.
    let sql = "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
               WHERE a.datname = current_database() AND a.application_name LIKE 'rlm_rust%'";
    let row = &db.query(sql, &[])[0];
    let (tls, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(tls >= 1 && plain == 0, "TLS {tls}, plain {plain}");
}

#[test]
fn a_wrong_ca_is_logged_at_start_and_radiusd_stays_up() {
    let env = e2e_env!();
    rust_only!(env); // the module's dsn and its log line
    let db = TestDb::create(env, "tls_wrong_ca");
    db.user("tls-carl", "tls-pw");
    let other = pg_tls::other_ca();
    let dsn = format!("{} sslmode=verify-full sslrootcert={other}", db.dsn);
    let rad = Radiusd::builder(env, &db, "tls_wrong_ca").dsn(&dsn).start();
    let log = rad.log();
    let line = log
        .lines()
        .find(|l| l.contains("database not reachable at start"))
        .unwrap_or_else(|| panic!("no start-up line: {}", rad.log_tail(30)));
    for part in [
        "sslmode=verify-full".to_string(),
        format!("sslrootcert {other}"),
    ] {
        assert!(line.contains(&part), "{part:?} not in {line}");
    }
    assert!(pg_tls::names_untrusted_chain(line), "{line}");
    // Requests fail (no database), the server answers the next one.
    assert!(!rad.pap("tls-carl", "tls-pw").is_accept());
}
