//! An existing rlm_sql site switching to rlm_rust: a database created from
//! FreeRADIUS's own `schema.sql` (not the module's migration), holding what
//! rlm_sql wrote, migrated by the module and then served through radiusd;
//! and several migrations started at once on one database.

use e2e::{e2e_env, rust_only, stock_acct_unique_id, Backend, Radiusd, Reply, TestDb};

const T0: i64 = 1_700_000_000;

fn answered(r: &Reply) {
    assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{}", r.raw);
}

/// The migrations recorded in rlm_rust_schema_history, in order.
fn applied(db: &TestDb) -> Vec<i32> {
    db.query(
        "SELECT version FROM rlm_rust_schema_history ORDER BY version",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn table_exists(db: &TestDb, table: &str) -> bool {
    db.scalar::<bool>("SELECT to_regclass($1) IS NOT NULL", &[&table])
}

/// Index names of the database, sorted.
fn indexes(db: &TestDb) -> Vec<String> {
    db.query(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Runs with both backends. rlm_rust: radiusd migrates the stock database
/// itself at start-up (auto_migrate = yes, the default), as a site switching
/// modules gets it. rlm_sql: the migration runs first, then stock rlm_sql
/// must keep working on the migrated database (a site running both, or
/// switching back).
#[test]
fn migrating_onto_an_existing_stock_rlm_sql_database() {
    let env = e2e_env!();
    let db = TestDb::create_stock(env, "stock_migrate");
    // What an rlm_sql site holds: users, groups, an open session, old
    // post-auth rows (stock rlm_sql stores the password).
    db.user("alice", "alice-pw");
    db.reply("alice", "Reply-Message", ":=", "Hello alice");
    db.member("alice", "staff", 1);
    db.group_reply("staff", "Session-Timeout", ":=", "3600");
    db.exec(
        "INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, \
                              acctstarttime, acctupdatetime, acctsessiontime) \
         VALUES ('old-1', 'old-unique-1', 'carol', '10.0.0.1', to_timestamp(1699999000), \
                 to_timestamp(1699999000), 0); \
         INSERT INTO radpostauth (username, pass, reply, authdate) \
         VALUES ('carol', 'carol-pw', 'Access-Accept', to_timestamp(1699999000));",
    );
    let stock_indexes = indexes(&db);
    assert!(!table_exists(&db, "rlm_rust_schema_history"));

    if env.backend == Backend::Sql {
        db.migrate();
    }
    let rad = Radiusd::start(env, &db, "stock_migrate");
    // Status-Server answered: the module connected, so it has migrated.
    let versions = applied(&db);
    assert!(!versions.is_empty(), "no migration recorded");
    for t in ["rlm_rust_user", "rlm_rust_radius_token", "rlm_rust_lockout"] {
        assert!(table_exists(&db, t), "{t} missing after the migration");
    }
    // The stock schema's own indexes (radacct_calss_idx, radpostauth_class_idx,
    // which the migration does not create) are all kept.
    let now = indexes(&db);
    for i in &stock_indexes {
        assert!(now.contains(i), "stock index {i} dropped by the migration");
    }

    // Logins from the stock tables.
    let r = rad.pap("alice", "alice-pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("Hello alice"), "{}", r.raw);
    assert_eq!(r.get("Session-Timeout"), Some("3600"), "{}", r.raw);
    assert!(rad.pap("alice", "wrong-pw").is_reject());
    assert!(rad.pap("carol", "carol-pw").is_reject(), "no radcheck row");
    assert_eq!(
        db.postauth_replies("alice", 2),
        ["Access-Accept", "Access-Reject"]
    );

    // A session from start to stop, keyed as rlm_sql keys it.
    let common =
        "User-Name = alice, Acct-Session-Id = \"new-1\", NAS-IP-Address = 10.0.0.1, NAS-Port = 3";
    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Start, Event-Timestamp = {T0}"
    )));
    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Stop, Event-Timestamp = {}, Acct-Session-Time = 60, \
         Acct-Input-Octets = 100, Acct-Output-Octets = 200",
        T0 + 60
    )));
    let rows = db.query(
        "SELECT acctuniqueid, extract(epoch from acctstoptime)::bigint, acctsessiontime, \
                acctinputoctets, acctoutputoctets \
         FROM radacct WHERE acctsessionid = 'new-1'",
        &[],
    );
    assert_eq!(rows.len(), 1, "radacct rows of session new-1");
    let row: (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>) = (
        rows[0].get(0),
        rows[0].get(1),
        rows[0].get(2),
        rows[0].get(3),
        rows[0].get(4),
    );
    assert_eq!(
        row,
        (
            stock_acct_unique_id("alice", "new-1", "10.0.0.1", "", "", "3"),
            Some(T0 + 60),
            Some(60),
            Some(100),
            Some(200)
        )
    );

    // Accounting-On from that NAS closes the session rlm_sql opened before
    // the switch.
    answered(&rad.acct(&format!(
        "Acct-Status-Type = Accounting-On, NAS-IP-Address = 10.0.0.1, Event-Timestamp = {}",
        T0 + 100
    )));
    let old: (Option<i64>, Option<String>) = {
        let r = &db.query(
            "SELECT extract(epoch from acctstoptime)::bigint, acctterminatecause \
             FROM radacct WHERE acctuniqueid = 'old-unique-1'",
            &[],
        )[0];
        (r.get(0), r.get(1))
    };
    assert_eq!(old, (Some(T0 + 100), Some("NAS-Reboot".to_string())));
    assert_eq!(db.count("SELECT count(*) FROM radacct", &[]), 2);
    // rlm_sql's rows are left as they were.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM radpostauth WHERE username = 'carol' AND pass = 'carol-pw' \
             AND reply = 'Access-Accept' AND authdate = to_timestamp(1699999000)",
            &[]
        ),
        1
    );
}

/// Migrations of `db`, `n` at once from as many threads, each with its own
/// connection: all must succeed.
fn migrate_concurrently(db: &TestDb, n: usize) {
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let dsn = db.dsn.clone();
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("tokio runtime");
                    rt.block_on(radius_core::schema::migrate(&dsn))
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("migration thread"))
            .collect()
    });
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "migration {i} of {n} at once failed: {r:?}");
    }
}

#[test]
fn migrations_started_at_once_all_succeed() {
    let env = e2e_env!();
    // rlm_rust-only: the module's own migration; rlm_sql has none.
    rust_only!(env);
    let reference = applied(&TestDb::create_migrated(env, "mig_reference"));
    assert!(!reference.is_empty());
    let empty = TestDb::create_empty(env, "mig_race_empty");
    migrate_concurrently(&empty, 4);
    assert_eq!(
        applied(&empty),
        reference,
        "each migration once, all of them"
    );
    let stock = TestDb::create_stock(env, "mig_race_stock");
    migrate_concurrently(&stock, 4);
    assert_eq!(
        applied(&stock),
        reference,
        "each migration once, all of them"
    );
    // And again on the migrated database: nothing to do, no error.
    migrate_concurrently(&stock, 2);
    assert_eq!(applied(&stock), reference);
}

#[test]
fn two_radiusd_starting_at_once_on_a_stock_database_both_serve() {
    let env = e2e_env!();
    // rlm_rust-only: both servers run the module's migration (auto_migrate) at
    // start-up; rlm_sql has none.
    rust_only!(env);
    let db = TestDb::create_stock(env, "mig_two_radiusd");
    db.user("alice", "alice-pw");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Radiusd::start(env, &db, "mig_two_a"));
        let b = s.spawn(|| Radiusd::start(env, &db, "mig_two_b"));
        (a.join().expect("radiusd a"), b.join().expect("radiusd b"))
    });
    // Each migration of the source tree the module was built from once,
    // in order, none missing (numbers may have gaps: branches reserve
    // theirs, e.g. V11 before V10 lands).
    let versions = applied(&db);
    let mut expected: Vec<i32> = std::fs::read_dir(e2e::repo_root().join("crates/core/migrations"))
        .expect("crates/core/migrations")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix('V')?.split_once("__")?.0.parse().ok()
        })
        .collect();
    expected.sort_unstable();
    assert!(!versions.is_empty(), "no migration recorded");
    assert_eq!(versions, expected, "each migration once, all of them");
    for (name, rad) in [("a", &a), ("b", &b)] {
        assert!(
            rad.log().contains("database reachable"),
            "radiusd {name} did not migrate and connect:\n{}",
            rad.log_tail(20)
        );
        let r = rad.pap("alice", "alice-pw");
        assert!(r.is_accept(), "radiusd {name}: {}", r.raw);
        assert!(rad.pap("alice", "wrong-pw").is_reject(), "radiusd {name}");
        answered(&rad.acct(&format!(
            "User-Name = alice, Acct-Session-Id = \"s-{name}\", NAS-IP-Address = 10.0.0.1, \
             Acct-Status-Type = Start, Event-Timestamp = {T0}"
        )));
    }
    assert_eq!(
        db.postauth_replies("alice", 4),
        [
            "Access-Accept",
            "Access-Reject",
            "Access-Accept",
            "Access-Reject"
        ]
    );
    assert_eq!(db.count("SELECT count(*) FROM radacct", &[]), 2);
}
