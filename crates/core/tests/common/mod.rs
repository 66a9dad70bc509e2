//! What the core's database tests share: a fresh database per test on the
//! private cluster (`scripts/pg start`; `RLM_RUST_TEST_DSN` overrides the
//! admin connection string).
#![allow(dead_code)]

use radius_core::accounting::AcctRecord;
use radius_core::config::ModuleConfig;
use radius_core::postauth::PostAuthRecord;
use radius_core::store::Store;
use tokio_postgres::{Client, NoTls};

/// The e2e suite's PostgreSQL proxy (down, stalled, severed), one source.
#[path = "../../../../tests/e2e/src/proxy.rs"]
pub mod proxy;

const DEFAULT_ADMIN_DSN: &str = "host=127.0.0.1 port=54329 user=radius dbname=radius";

pub struct TestDb {
    pub name: String,
    pub dsn: String,
    pub admin_dsn: String,
    pub client: Client,
}

impl TestDb {
    pub async fn new(tag: &str) -> TestDb {
        let admin_dsn =
            std::env::var("RLM_RUST_TEST_DSN").unwrap_or_else(|_| DEFAULT_ADMIN_DSN.to_string());
        let (admin, conn) = tokio_postgres::connect(&admin_dsn, NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot reach the test PostgreSQL at '{admin_dsn}' ({e}): run `scripts/pg start` or set RLM_RUST_TEST_DSN")
            });
        tokio::spawn(conn);
        let name = format!("core_{tag}_{}", std::process::id());
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.unwrap();
        }
        let dsn = format!("{admin_dsn} dbname={name}");
        radius_core::schema::migrate(&dsn).await.unwrap();
        let (client, conn) = tokio_postgres::connect(&dsn, NoTls).await.unwrap();
        tokio::spawn(conn);
        TestDb {
            name,
            dsn,
            admin_dsn,
            client,
        }
    }

    pub fn store(&self) -> Store {
        let cfg = ModuleConfig::from_items([("dsn", self.dsn.as_str())]).unwrap();
        Store::new(&cfg).unwrap()
    }

    /// Terminates the cache listener's backend from the server side (as a
    /// restart or an administrator would); how many were terminated.
    pub async fn terminate_listener(&self) -> i64 {
        self.client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = 'rlm_rust listener' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn drop_db(self) {
        drop(self.client);
        if let Ok((admin, conn)) = tokio_postgres::connect(&self.admin_dsn, NoTls).await {
            tokio::spawn(conn);
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}

/// The radpostauth record of an Access-Accept for `user`.
pub fn accepted(user: &str) -> PostAuthRecord {
    PostAuthRecord {
        username: user.into(),
        pass: None,
        reply: "Access-Accept".into(),
        called_station_id: None,
        calling_station_id: None,
        authdate: 1_700_000_000.0,
    }
}

pub fn session(unique: &str, ts: i64) -> AcctRecord {
    AcctRecord {
        session_id: format!("sid-{unique}"),
        unique_id: unique.to_string(),
        username: "alice".into(),
        nas_ip: "192.0.2.1".into(),
        nas_port_type: "Wireless-802.11".into(),
        event_time: ts,
        ..Default::default()
    }
}
