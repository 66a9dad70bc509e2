//! The built `radius-admin` binary against a test database: `serve` on a
//! free loopback port ([`AdminServer`], stopped by its PID on drop, driven
//! over real HTTP) and one-shot CLI commands ([`admin_cli`]).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::runtime::Runtime;

use crate::{Env, TestDb};

/// The API token every [`AdminServer`] is started with (RADIUS_ADMIN_TOKEN).
pub const API_TOKEN: &str = "e2e-admin-api-token-0123456789abcdef";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A TCP port below the kernel's ephemeral range (32768+), so an outgoing
/// connection (PostgreSQL clients of concurrent tests) never takes it between
/// our check and the server's bind; spread by PID like the radiusd ports.
fn free_tcp_port() -> u16 {
    let offset = (std::process::id() as usize % 300) * 20;
    for _ in 0..2000 {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let port = (12000 + (offset + n) % 8000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port found");
}

fn admin_bin(env: &Env) -> &std::path::Path {
    assert!(
        env.admin_bin.is_file(),
        "{} does not exist: cargo build --release -p radius-admin first (or set RLM_RUST_ADMIN_BIN)",
        env.admin_bin.display()
    );
    &env.admin_bin
}

/// A `radius-admin` command without the caller's admin settings leaking in.
fn command(env: &Env, db: &TestDb) -> Command {
    let mut cmd = Command::new(admin_bin(env));
    cmd.arg("--dsn").arg(&db.dsn).stdin(Stdio::null());
    for v in [
        "RLM_RUST_DSN",
        "RADIUS_ADMIN_PORT",
        "RADIUS_ADMIN_TOKEN",
        "RADIUS_ADMIN_SMTP_URL",
        "RADIUS_ADMIN_SMTP_FROM",
        "RADIUS_ADMIN_SMS_URL",
        "RADIUS_ADMIN_SMS_TOKEN",
        "RADIUS_ADMIN_SECRET_FILE",
        "RADIUS_ADMIN_TOTP_ISSUER",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

/// Runs `radius-admin --dsn <db> ARGS...` to completion; panics (with its
/// output) when it fails.
pub fn admin_cli(env: &Env, db: &TestDb, args: &[&str]) -> Output {
    let out = command(env, db)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", env.admin_bin.display()));
    assert!(
        out.status.success(),
        "radius-admin {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An HTTP answer: status and raw body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// Asserts the status (the body in the message) and returns the JSON body.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "HTTP answer body: {}", self.text());
        self.json()
    }
}

/// A running `radius-admin serve` with [`API_TOKEN`] on 127.0.0.1:`port`.
/// Stopped (SIGTERM, then SIGKILL after 5 s) by its PID on drop; its log is
/// printed and kept when the test panics.
pub struct AdminServer {
    pub port: u16,
    pub pid: u32,
    pub base: String,
    log_path: PathBuf,
    child: Option<Child>,
    rt: Runtime,
    http: reqwest::Client,
}

impl AdminServer {
    /// Starts `radius-admin serve` against `db` and waits until it answers.
    pub fn start(env: &Env, db: &TestDb, name: &str) -> AdminServer {
        Self::start_with(env, db, name, &[])
    }

    /// The radiususers id of `username`, found through the API's filter.
    pub fn user_id(&self, username: &str) -> i64 {
        let list = self
            .get(&format!("/api/v1/radiususers/?username={username}"))
            .expect(200);
        let objects = list["objects"].as_array().expect("objects");
        assert_eq!(objects.len(), 1, "radiususers?username={username}: {list}");
        objects[0]["id"].as_i64().expect("id")
    }

    /// [`AdminServer::start`] with more `serve` arguments (e.g.
    /// `--secret-file`, `--smtp-url`).
    pub fn start_with(env: &Env, db: &TestDb, name: &str, args: &[&str]) -> AdminServer {
        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_tcp_port();
            let n = SEQ.fetch_add(1, Ordering::SeqCst);
            let log_path = env
                .work_dir
                .join(format!("admin-{name}-{}-{n}.log", std::process::id()));
            let mut cmd = command(env, db);
            let log = std::fs::File::create(&log_path).expect("admin log file");
            let log2 = log.try_clone().expect("admin log file");
            let child = cmd
                .arg("serve")
                .arg("--port")
                .arg(port.to_string())
                .args(args)
                .env("RADIUS_ADMIN_TOKEN", API_TOKEN)
                .env("RUST_LOG", "info")
                .stdout(log)
                .stderr(log2)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {}: {e}", env.admin_bin.display()));
            let mut server = AdminServer {
                port,
                pid: child.id(),
                base: format!("http://127.0.0.1:{port}"),
                log_path,
                child: Some(child),
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime"),
                // Loopback only: never through an http_proxy from the environment.
                http: reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("HTTP client"),
            };
            match server.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return server,
                Err(why) => {
                    server.stop();
                    last = format!("{why}\n{}", server.log());
                    // Somebody else took the port in between: another one.
                    // (The failed server's log is in `last`; drop removes it.)
                    if !last.contains("cannot listen") {
                        break;
                    }
                }
            }
        }
        panic!("radius-admin serve did not come up:\n{last}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return Err("radius-admin serve exited during start-up".into());
            }
            let url = format!("{}/api/v1/openapi.json", self.base);
            let ok = self.rt.block_on(async {
                matches!(
                    self.http
                        .get(&url)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await,
                    Ok(r) if r.status().is_success()
                )
            });
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no answer on {} within {timeout:?}", self.base))
    }

    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The server's standard output and error.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// One request; `token` adds `Authorization: Bearer API_TOKEN`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: bool,
    ) -> HttpReply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if token {
            req = req.bearer_auth(API_TOKEN);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"))
                .to_vec();
            HttpReply { status, body }
        })
    }

    /// GET with the API token.
    pub fn get(&self, path: &str) -> HttpReply {
        self.request("GET", path, None, true)
    }

    /// POST of a JSON body with the API token.
    pub fn post(&self, path: &str, body: &Value) -> HttpReply {
        self.request("POST", path, Some(body), true)
    }

    /// PATCH of a JSON body with the API token.
    pub fn patch(&self, path: &str, body: &Value) -> HttpReply {
        self.request("PATCH", path, Some(body), true)
    }

    /// Stops the server (idempotent).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::stop_child(child);
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "---- radius-admin serve (log kept: {}), last lines:\n{}\n----",
                self.log_path.display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// (username, password) of the users in a batch answer.
pub fn batch_credentials(batch: &Value) -> Vec<(String, String)> {
    batch["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {batch}"))
        .iter()
        .map(|u| {
            (
                u["username"].as_str().expect("username").to_string(),
                u["password"].as_str().expect("password").to_string(),
            )
        })
        .collect()
}
