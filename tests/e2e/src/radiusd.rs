//! A real `freeradius -f` (never -X: the tests need its thread pool) on a
//! private config built by scripts/raddb, stopped by its PID on drop.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::packet::{self, Request};
use crate::{Backend, Env, TestDb};

pub const SECRET: &str = "testing123";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Ports below the kernel's ephemeral range (32768+), so a client socket
/// never takes one between our check and radiusd's bind; spread by PID so
/// concurrent test processes rarely try the same ones.
fn free_port_pair() -> (u16, u16) {
    let offset = (std::process::id() as usize % 300) * 40;
    for _ in 0..2000 {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        // Even ports in 20000..32000: auth, auth + 1.
        let auth = (20000 + (offset + n * 2) % 12000) as u16;
        let acct = auth + 1;
        let ok = UdpSocket::bind(("127.0.0.1", auth)).is_ok()
            && UdpSocket::bind(("127.0.0.1", acct)).is_ok();
        if ok {
            return (auth, acct);
        }
    }
    panic!("no free UDP port pair found");
}

/// Result of building a config and running `freeradius -C` on it.
#[derive(Debug)]
pub struct ConfigCheck {
    pub success: bool,
    /// scripts/raddb's stdout + stderr (includes the check's output and the
    /// log tail on failure).
    pub output: String,
    pub dir: PathBuf,
}

/// Options for a [`Radiusd`].
pub struct RadiusdBuilder<'a> {
    env: &'a Env,
    dsn: String,
    name: String,
    so: PathBuf,
    extra_config: Vec<String>,
    vars: Vec<(String, String)>,
}

impl<'a> RadiusdBuilder<'a> {
    /// The module .so to load (default: the normal build).
    pub fn so(mut self, so: &Path) -> Self {
        self.so = so.to_path_buf();
        self
    }

    /// The module's `dsn` (default: the test database's).
    pub fn dsn(mut self, dsn: &str) -> Self {
        self.dsn = dsn.to_string();
        self
    }

    /// A line added at the top of the `rust { }` section (wins over the
    /// default of the same item).
    pub fn config(mut self, line: &str) -> Self {
        self.extra_config.push(line.to_string());
        self
    }

    /// An environment variable for scripts/raddb (RADIUS_* knobs).
    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.push((k.into(), v.into()));
        self
    }

    /// The extra lines, with `durability = database` unless a test chose:
    /// most tests check a row right after its reply, which only that mode
    /// promises (tests/journal.rs covers the journal, the default).
    fn config_lines(&self) -> Vec<String> {
        let mut lines = self.extra_config.clone();
        if !lines
            .iter()
            .any(|l| l.trim_start().starts_with("durability"))
        {
            lines.push("durability = database".into());
        }
        lines
    }

    fn dir(&self) -> PathBuf {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        self.env
            .work_dir
            .join(format!("{}-{}-{}", self.name, std::process::id(), n))
    }

    fn raddb(&self, dir: &Path, auth: u16, acct: u16) -> ConfigCheck {
        let backend = match self.env.backend {
            Backend::Rust => "rust",
            Backend::Sql => "sql",
        };
        let mut cmd = Command::new(&self.env.raddb_script);
        cmd.arg(dir)
            .env("RLM_RUST_SO", &self.so)
            .env("RLM_RUST_DSN", &self.dsn)
            .env("RLM_RUST_CONFIG_EXTRA", self.config_lines().join("\n"))
            .env("RADIUS_AUTH_PORT", auth.to_string())
            .env("RADIUS_ACCT_PORT", acct.to_string())
            .env("RADIUS_SECRET", SECRET)
            .env("RADDB_BACKEND", backend)
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.env.raddb_script.display()));
        ConfigCheck {
            success: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            dir: dir.to_path_buf(),
        }
    }

    /// Builds the config dir and runs `freeradius -C` only (no server).
    pub fn check_config(self) -> ConfigCheck {
        let dir = self.dir();
        let check = self.raddb(&dir, 1812, 1813);
        if check.success {
            let _ = std::fs::remove_dir_all(&dir);
        }
        check
    }

    /// Builds the config, starts `freeradius -f` and waits until it answers a
    /// Status-Server. Panics (with the log) when it does not come up.
    pub fn start(self) -> Radiusd {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let (auth, acct) = free_port_pair();
            let dir = self.dir();
            let check = self.raddb(&dir, auth, acct);
            assert!(
                check.success,
                "scripts/raddb {} failed:\n{}",
                dir.display(),
                check.output
            );
            let stdout = std::fs::File::create(dir.join("log/stdout.log")).expect("stdout log");
            let stderr = stdout.try_clone().expect("stderr log");
            let child = Command::new("freeradius")
                .arg("-f")
                .arg("-d")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .expect("spawning freeradius");
            let mut rad = Radiusd {
                dir,
                auth_port: auth,
                acct_port: acct,
                secret: SECRET.to_string(),
                pid: child.id(),
                child: Some(child),
                keep_dir: false,
            };
            match rad.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return rad,
                Err(why) => {
                    last_log = format!("{why}\n{}", rad.log_tail(60));
                    // Somebody else took a port in between: other ports.
                    let port_clash = last_log.contains("Address already in use");
                    rad.stop();
                    if !port_clash {
                        rad.keep_dir = true;
                        break;
                    }
                    let _ = std::fs::remove_dir_all(&rad.dir);
                }
            }
        }
        panic!("radiusd did not come up:\n{last_log}");
    }
}

/// A running radiusd. Stopped (SIGTERM, then SIGKILL after 5 s) by its PID on
/// drop, also when the test panics; then its log tail is printed and its
/// directory kept for inspection.
pub struct Radiusd {
    pub dir: PathBuf,
    pub auth_port: u16,
    pub acct_port: u16,
    pub secret: String,
    pub pid: u32,
    child: Option<Child>,
    keep_dir: bool,
}

impl Radiusd {
    pub fn builder<'a>(env: &'a Env, db: &TestDb, name: &str) -> RadiusdBuilder<'a> {
        RadiusdBuilder {
            env,
            dsn: db.dsn.clone(),
            name: name.to_string(),
            so: env.so.clone(),
            extra_config: Vec::new(),
            vars: Vec::new(),
        }
    }

    /// A server with the default config against `db`.
    pub fn start(env: &Env, db: &TestDb, name: &str) -> Radiusd {
        Self::builder(env, db, name).start()
    }

    pub fn auth_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.auth_port))
    }

    pub fn acct_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.acct_port))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return Err("radiusd exited during start-up".into());
            }
            let status = Request::new(packet::STATUS_SERVER).message_authenticator();
            if let Some(resp) = packet::send(
                self.auth_addr(),
                &self.secret,
                &status,
                Duration::from_millis(300),
            ) {
                if resp.code == packet::ACCESS_ACCEPT {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no answer to Status-Server within {timeout:?}"))
    }

    /// Whether the server process still runs.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// radius.log (+ stdout/stderr of the process).
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.join("log/radius.log")).unwrap_or_default();
        if let Ok(out) = std::fs::read_to_string(self.dir.join("log/stdout.log")) {
            if !out.is_empty() {
                s.push_str("\n---- stdout/stderr\n");
                s.push_str(&out);
            }
        }
        s
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server (idempotent).
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::stop_child(child);
        }
    }
}

impl Drop for Radiusd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() || self.keep_dir {
            eprintln!(
                "---- radiusd {} (kept for inspection), last log lines:\n{}\n----",
                self.dir.display(),
                self.log_tail(80)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
