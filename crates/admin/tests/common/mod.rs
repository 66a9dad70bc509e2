//! Test fixture: a fresh database on the private PostgreSQL cluster per
//! test (RLM_RUST_TEST_DSN, else scripts/pg's default), migrated, and the
//! app served on 127.0.0.1:0, driven over real HTTP with reqwest.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use radius_admin::{AppState, Config};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const DEFAULT_DSN: &str = "host=127.0.0.1 port=54329 user=radius dbname=radius";
pub const TOKEN: &str = "test-api-token-0123456789abcdef";

pub struct Ctx {
    pub base: String,
    pub dsn: String,
    pub http: reqwest::Client,
    pub db: tokio_postgres::Client,
    admin_dsn: String,
    db_name: String,
    server: tokio::task::JoinHandle<()>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a 4xx JSON error naming `field`.
    pub fn assert_field_error(&self, status: u16, field: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        let j = self.json();
        assert_eq!(j["field"], field, "{j}");
    }
}

async fn connect(dsn: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn with_dbname(dsn: &str, name: &str) -> String {
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let (head, tail) = dsn
            .split_once('?')
            .map_or((dsn, None), |(h, t)| (h, Some(t)));
        let base = match head.rfind('/') {
            Some(i) if i > head.find("//").unwrap_or(0) + 1 => &head[..i],
            _ => head,
        };
        match tail {
            Some(t) => format!("{base}/{name}?{t}"),
            None => format!("{base}/{name}"),
        }
    } else {
        format!("{dsn} dbname={name}")
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// None (test skipped) when no PostgreSQL is reachable and the caller did
/// not ask for one with RLM_RUST_TEST_DSN.
pub async fn setup() -> Option<Ctx> {
    setup_with(|_| {}).await
}

pub async fn setup_with(tune: impl FnOnce(&mut Config)) -> Option<Ctx> {
    let explicit = std::env::var("RLM_RUST_TEST_DSN").ok();
    let admin_dsn = explicit.clone().unwrap_or_else(|| DEFAULT_DSN.to_string());
    let admin = match connect(&admin_dsn).await {
        Ok(c) => c,
        Err(e) if explicit.is_none() => {
            eprintln!("SKIP: no PostgreSQL at {admin_dsn} ({e}); run scripts/pg start or set RLM_RUST_TEST_DSN");
            return None;
        }
        Err(e) => panic!("RLM_RUST_TEST_DSN={admin_dsn}: {e}"),
    };
    let db_name = format!(
        "rlm_admin_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        &radius_core::account::new_token()[..8]
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {db_name}"))
        .await
        .expect("CREATE DATABASE");
    let dsn = with_dbname(&admin_dsn, &db_name);
    radius_core::schema::migrate(&dsn).await.expect("migrate");
    let mut cfg = Config::new(&dsn);
    cfg.bootstrap_token = Some(TOKEN.to_string());
    tune(&mut cfg);
    let state = Arc::new(AppState::new(cfg).expect("state"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = radius_admin::serve(state, listener, std::future::pending()).await;
    });
    let db = connect(&dsn).await.expect("connect test db");
    Some(Ctx {
        base: format!("http://{addr}"),
        dsn,
        http: reqwest::Client::new(),
        db,
        admin_dsn,
        db_name,
        server,
    })
}

impl Ctx {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("request");
        Resp {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await.expect("body").to_vec(),
        }
    }

    pub fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(m, self.url(path)).bearer_auth(TOKEN)
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(Method::GET, path)).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Resp {
        self.send(self.req(Method::POST, path).json(&body)).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.send(self.req(Method::POST, path).form(form)).await
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> Resp {
        self.send(self.req(Method::PATCH, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.req(Method::DELETE, path)).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.query_one(sql, &[]).await.expect(sql).get(0)
    }

    /// Creates a user through the API and returns its id.
    pub async fn user(&self, username: &str, extra: Value) -> i64 {
        let mut body = serde_json::json!({
            "username": username,
            "server_name": "radius1",
            "server_address": "192.0.2.10",
        });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let r = self.post_json("/api/v1/radiususers/", body).await;
        assert_eq!(r.status, 201, "{}", r.json());
        r.json()["id"].as_i64().unwrap()
    }

    /// authorize/'s status for a username and password.
    pub async fn authorize(&self, username: &str, password: &str) -> Resp {
        self.post_form(
            "/api/v1/authorize/",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Drops the test database (the server is stopped first so its pools
    /// let go of their connections).
    pub async fn finish(self) {
        self.server.abort();
        let _ = self.server.await;
        drop(self.db);
        if let Ok(admin) = connect(&self.admin_dsn).await {
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.db_name
                ))
                .await;
        }
    }
}
