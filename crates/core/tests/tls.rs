//! TLS to PostgreSQL (libpq's sslmode and sslrootcert) against scripts/pg's
//! cluster, which runs with ssl = on, a certificate for localhost and
//! 127.0.0.1 from a test CA, and a role admitted over TLS only.

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use radius_core::config::ModuleConfig;
use radius_core::store::Store;

#[path = "../../../tests/e2e/src/pg_tls.rs"]
mod pg_tls;

fn store(dsn: &str) -> Store {
    let cfg = ModuleConfig::from_items([
        ("dsn", dsn),
        ("connect_timeout", "3"),
        ("auto_migrate", "no"),
    ])
    .unwrap();
    Store::new(&cfg).unwrap()
}

/// Whether the connections named `app` to `db` use TLS (none: false).
async fn all_tls(db: &TestDb, app: &str) -> bool {
    let row = db
        .client
        .query_one(
            "SELECT count(*) > 0 AND bool_and(s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = $1 AND a.datname = current_database()",
            &[&app],
        )
        .await
        .unwrap();
    row.get(0)
}

async fn ping_error(dsn: &str) -> String {
    store(dsn).ping().await.unwrap_err().to_string()
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_every_connection_over_tls() {
    let db = TestDb::new("tls_full").await;
    let ca = pg_tls::ca();
    // Both DSN forms; migrations connect with it too.
    let kv = pg_tls::dsn(
        &db.admin_dsn,
        "localhost",
        "postgres",
        &db.name,
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    let port = kv.split("port=").nth(1).unwrap().split(' ').next().unwrap();
    let url = format!(
        "postgresql://postgres@localhost:{port}/{}?sslmode=verify-full&sslrootcert={}",
        db.name,
        ca.replace(' ', "%20")
    );
    radius_core::schema::migrate(&url).await.unwrap();
    let mut s = store(&kv);
    s.ping().await.unwrap();
    assert!(
        all_tls(&db, "rlm_rust").await,
        "the pool's connection is not TLS"
    );
    // The LISTEN connection: the cache goes live only through it.
    s.start_background(&tokio::runtime::Handle::current(), 100, false)
        .unwrap();
    let cache = s.cache().unwrap().clone();
    let t = Instant::now();
    while !cache.is_live() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the listener did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(all_tls(&db, "rlm_rust listener").await);
    // The IP address is in the certificate too.
    let by_ip = pg_tls::dsn(
        &db.admin_dsn,
        "127.0.0.1",
        "postgres",
        &db.name,
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    store(&by_ip).ping().await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn a_wrong_ca_is_refused_naming_sslmode_ca_and_reason_at_every_try() {
    let other = pg_tls::other_ca();
    for mode in ["verify-full", "verify-ca"] {
        let dsn = pg_tls::dsn(
            &common_admin_dsn(),
            "localhost",
            "postgres",
            "postgres",
            &format!("sslmode={mode} sslrootcert={other}"),
        );
        let s = store(&dsn);
        // At start and again at the next try (a reconnect): the same reason.
        for _ in 0..2 {
            let e = s.ping().await.unwrap_err().to_string();
            for part in [format!("sslmode={mode}"), format!("sslrootcert {other}")] {
                assert!(e.contains(&part), "{part:?} not in {e}");
            }
            assert!(pg_tls::names_untrusted_chain(&e), "{e}");
        }
    }
    // libpq's rule: require with a CA verifies the chain.
    let e = ping_error(&pg_tls::dsn(
        &common_admin_dsn(),
        "localhost",
        "postgres",
        "postgres",
        &format!("sslmode=require sslrootcert={other}"),
    ))
    .await;
    assert!(pg_tls::names_untrusted_chain(&e), "{e}");
}

#[tokio::test]
async fn require_without_a_ca_encrypts_without_verifying() {
    let db = TestDb::new("tls_require").await;
    let s = store(&pg_tls::dsn(
        &db.admin_dsn,
        "wrong.invalid hostaddr=127.0.0.1",
        "postgres",
        &db.name,
        "sslmode=require",
    ));
    s.ping().await.unwrap();
    assert!(all_tls(&db, "rlm_rust").await);
    db.drop_db().await;
}

#[tokio::test]
async fn a_host_name_not_in_the_certificate_is_refused_by_verify_full_only() {
    let ca = pg_tls::ca();
    let wrong_host = |mode: &str| {
        pg_tls::dsn(
            &common_admin_dsn(),
            "wrong.invalid hostaddr=127.0.0.1",
            "postgres",
            "postgres",
            &format!("sslmode={mode} sslrootcert={ca}"),
        )
    };
    let e = ping_error(&wrong_host("verify-full")).await;
    for part in [
        "sslmode=verify-full",
        "host 'wrong.invalid'",
        "hostname mismatch",
    ] {
        assert!(e.contains(part), "{part:?} not in {e}");
    }
    // verify-ca checks the chain, not the name.
    store(&wrong_host("verify-ca")).ping().await.unwrap();
}

#[tokio::test]
async fn disable_is_refused_by_a_hostssl_only_rule() {
    let dsn = |mode: &str| {
        pg_tls::dsn(
            &common_admin_dsn(),
            "localhost",
            pg_tls::TLS_ONLY_ROLE,
            "postgres",
            &format!("sslmode={mode} sslrootcert={}", pg_tls::ca()),
        )
    };
    let e = ping_error(&dsn("disable")).await;
    assert!(e.contains("no encryption"), "{e}");
    store(&dsn("verify-full")).ping().await.unwrap();
}

#[tokio::test]
async fn a_client_certificate_logs_in_where_pg_hba_asks_for_one() {
    let (cert, key) = pg_tls::client_cert();
    let dsn = |extra: &str| {
        pg_tls::dsn(
            &common_admin_dsn(),
            "localhost",
            pg_tls::CERT_ROLE,
            "postgres",
            &format!("sslmode=verify-full sslrootcert={} {extra}", pg_tls::ca()),
        )
    };
    store(&dsn(&format!("sslcert={cert} sslkey={key}")))
        .ping()
        .await
        .unwrap();
    let e = ping_error(&dsn("")).await;
    assert!(e.contains("requires a valid client certificate"), "{e}");
    // Half a pair is refused at start.
    let cfg =
        ModuleConfig::from_items([("dsn", dsn(&format!("sslcert={cert}")).as_str())]).unwrap();
    let e = Store::new(&cfg).err().unwrap().to_string();
    assert!(e.contains("sslcert and sslkey go together"), "{e}");
}

#[test]
fn an_unreadable_ca_fails_at_start() {
    let cfg = ModuleConfig::from_items([(
        "dsn",
        "host=localhost sslmode=verify-full sslrootcert=/nonexistent/ca.crt",
    )])
    .unwrap();
    let e = Store::new(&cfg).err().unwrap().to_string();
    assert!(
        e.contains("sslrootcert /nonexistent/ca.crt: cannot read"),
        "{e}"
    );
}

fn common_admin_dsn() -> String {
    std::env::var("RLM_RUST_TEST_DSN")
        .unwrap_or_else(|_| "host=127.0.0.1 port=54329 user=radius dbname=radius".into())
}

/// What TLS costs a new connection (the pools keep theirs, so this is paid
/// at start and at each reconnect): 200 connections one after another,
/// `sslmode=disable` against `verify-full`. Run by hand:
/// `cargo test -p radius-core --release --test tls -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn bench_connect_disable_vs_verify_full() {
    for mode in [
        "sslmode=disable".to_string(),
        format!("sslmode=verify-full sslrootcert={}", pg_tls::ca()),
    ] {
        let target = radius_core::pg::Target::new(&pg_tls::dsn(
            &common_admin_dsn(),
            "localhost",
            "postgres",
            "postgres",
            &mode,
        ))
        .unwrap();
        let t = Instant::now();
        for _ in 0..200 {
            let (client, conn) = target.connect().await.unwrap();
            let c = tokio::spawn(conn);
            client.simple_query("SELECT 1").await.unwrap();
            drop(client);
            let _ = c.await;
        }
        eprintln!(
            "{mode}: {:.2} ms per connection + SELECT 1",
            t.elapsed().as_secs_f64() * 1000.0 / 200.0
        );
    }
}
