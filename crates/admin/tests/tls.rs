//! radius-admin over TLS to PostgreSQL (scripts/pg's cluster runs with
//! ssl = on and a test CA): the API's pool and the core store it shares
//! connect with verify-full, and a wrong CA stops `serve` at start with a
//! message naming sslmode, the CA and the certificate problem.

mod common;

use std::process::{Command, Stdio};

use serde_json::json;

#[path = "../../../tests/e2e/src/pg_tls.rs"]
mod pg_tls;

const BIN: &str = env!("CARGO_BIN_EXE_radius-admin");

#[tokio::test]
async fn the_api_works_over_verify_full_and_every_connection_is_tls() {
    let ca = pg_tls::ca();
    let Some(ctx) = common::setup_with(|cfg| {
        cfg.dsn = format!("{} sslmode=verify-full sslrootcert={ca}", cfg.dsn);
    })
    .await
    else {
        return;
    };
    let r = ctx
        .post_json(
            "/api/v1/radiususers/",
            json!({"username": "tls-alice", "password": "s3cret-pw", "server_name": "r",
                   "server_address": "192.0.2.1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    // authorize/ goes through the core's store.
    let r = ctx
        .post_json(
            "/api/v1/authorize/",
            json!({"username": "tls-alice", "password": "s3cret-pw"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    // Both of the service's doors: its own pool and the core's store.
    let plain: i64 = ctx
        .db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() \
             AND a.application_name IN ('radius-admin', 'rlm_rust') AND NOT s.ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let tls: Vec<String> = ctx
        .db
        .query_one(
            "SELECT array_agg(DISTINCT a.application_name ORDER BY a.application_name) \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = current_database() AND s.ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, 0, "connections without TLS");
    for app in ["radius-admin", "rlm_rust"] {
        assert!(tls.iter().any(|a| a == app), "{app} not over TLS: {tls:?}");
    }
    ctx.finish().await;
}

#[tokio::test]
async fn serve_with_a_wrong_ca_stops_at_start_naming_sslmode_and_the_reason() {
    let Some(ctx) = common::setup().await else {
        return;
    };
    let other = pg_tls::other_ca();
    let dsn = format!("{} sslmode=verify-full sslrootcert={other}", ctx.dsn);
    let out = Command::new(BIN)
        .args(["--dsn", &dsn, "serve", "--bind", "127.0.0.1", "--port", "0"])
        .env_remove("RLM_RUST_DSN")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for part in [
        "sslmode=verify-full".to_string(),
        format!("sslrootcert {other}"),
    ] {
        assert!(stderr.contains(&part), "{part:?} not in {stderr}");
    }
    assert!(pg_tls::names_untrusted_chain(&stderr), "{stderr}");
    ctx.finish().await;
}

#[tokio::test]
async fn a_command_through_the_pool_names_sslmode_and_the_host_mismatch() {
    let Some(ctx) = common::setup().await else {
        return;
    };
    let db: tokio_postgres::Config = ctx.dsn.parse().unwrap();
    let dsn = pg_tls::dsn(
        &ctx.dsn,
        "wrong.invalid hostaddr=127.0.0.1",
        db.get_user().unwrap(),
        db.get_dbname().unwrap(),
        &format!("sslmode=verify-full sslrootcert={}", pg_tls::ca()),
    );
    let out = Command::new(BIN)
        .args(["--dsn", &dsn, "housekeeping"])
        .env_remove("RLM_RUST_DSN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for part in [
        "sslmode=verify-full",
        "host 'wrong.invalid'",
        "hostname mismatch",
    ] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
    ctx.finish().await;
}
