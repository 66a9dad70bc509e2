//! Fixtures for the end-to-end tests (see tests/): a fresh PostgreSQL
//! database per test on the private cluster ([`TestDb`]), a real `freeradius`
//! loading the built `rlm_rust.so` on free loopback ports ([`Radiusd`]),
//! `radclient` driven requests ([`Reply`]) and a small RADIUS/UDP client for
//! load and malformed input ([`packet`]).
//!
//! Configuration comes from the environment (scripts/test sets it):
//!
//! * `RLM_RUST_TEST_DSN`: admin connection to the cluster (creates databases).
//!   Unset: every test prints "skipped" and passes, unless
//!   `RLM_RUST_E2E_REQUIRED=1`, which makes that a failure.
//! * `RLM_RUST_SO` (default `target/release/librlm_rust.so`),
//!   `RLM_RUST_PANIC_SO` (the `--features panic-test` build),
//!   `RLM_RUST_ADMIN_BIN` (default `target/release/radius-admin`; checked
//!   only by the tests that run it, see [`AdminServer`]),
//!   `RLM_RUST_DB_OWNER` (role the module connects as, default `radius`),
//!   `RLM_RUST_RADDB_SCRIPT` (default `scripts/raddb`),
//!   `RLM_RUST_E2E_KEEP_DIR` (where server dirs go, default `target/e2e`;
//!   a failed test's dir is kept there with its logs).
//! * `RLM_RUST_E2E_BACKEND=sql` runs the same tests against stock rlm_sql
//!   (instance named `rust`, the stock PostgreSQL queries) on databases
//!   created from FreeRADIUS's own `schema.sql` instead of the module's
//!   migration (scripts/test's `e2e-sql` step): every test whose behaviour
//!   rlm_sql defines must pass against both. Tests of rlm_rust-only
//!   behaviour say [`rust_only!`] with the reason next to it and skip
//!   themselves then.
//!   `RLM_RUST_E2E_RUN_RUST_ONLY=1` runs those too, to see how rlm_sql
//!   differs (they are expected to fail then).
//! * Another FreeRADIUS (scripts/test's `e2e-trixie`): `freeradius` is taken
//!   from `PATH` (scripts/target's wrapper runs Debian 13's in a root),
//!   `STOCK_RADDB` tells scripts/raddb whose stock config to copy, and
//!   `RLM_RUST_SO` is the module built for it; [`Env::radiusd_version`] says
//!   which version answered.
//! * `RLM_RUST_STOCK_SCHEMA`: that `schema.sql` (default
//!   `/etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql`, from
//!   the freeradius package; scripts/test passes lib.sh's `PG_SCHEMA`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod admin;
mod db;
pub mod eapol;
pub mod metrics;
pub mod mschap;
pub mod packet;
pub mod pg_tls;
pub mod proxy;
mod radclient;
mod radiusd;
pub mod smtp;

pub use admin::{admin_cli, batch_credentials, AdminServer, HttpReply, API_TOKEN};
pub use db::TestDb;
pub use radclient::Reply;
pub use radiusd::{ConfigCheck, Radiusd, RadiusdBuilder, SECRET};

/// Stops a server this test started: SIGTERM to its PID (it is our own,
/// not yet reaped child), up to 5 s to exit cleanly, then SIGKILL.
pub(crate) fn stop_child(mut child: std::process::Child) {
    use std::time::{Duration, Instant};
    if matches!(child.try_wait(), Ok(None)) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Where Debian's freeradius package puts the stock PostgreSQL schema.
pub const STOCK_SCHEMA: &str = "/etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql";

/// Which module the generated site calls as `rust`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// rlm_rust.so (the default).
    Rust,
    /// Stock rlm_sql with the stock PostgreSQL queries, for cross-checks.
    Sql,
}

/// Test environment, read once.
#[derive(Debug)]
pub struct Env {
    pub so: PathBuf,
    pub panic_so: Option<PathBuf>,
    /// The built `radius-admin` binary.
    pub admin_bin: PathBuf,
    pub admin_dsn: String,
    pub db_owner: String,
    pub raddb_script: PathBuf,
    pub work_dir: PathBuf,
    pub backend: Backend,
    /// FreeRADIUS's stock PostgreSQL `schema.sql` (`RLM_RUST_STOCK_SCHEMA`).
    pub stock_schema: PathBuf,
    /// `RLM_RUST_E2E_RUN_RUST_ONLY=1`: [`rust_only!`] tests run against
    /// rlm_sql too (to see where and how they differ; expected to fail).
    pub run_rust_only: bool,
    /// The version of the `freeradius` on PATH (`freeradius -v`): the tests
    /// run unchanged against Debian 12's 3.2.1 and Debian 13's 3.2.7
    /// (scripts/target), which differ where the tests say so.
    pub radiusd_version: (u32, u32, u32),
}

impl Env {
    /// Whether the server signs every reply with Message-Authenticator:
    /// FreeRADIUS 3.2.5 and later do (the BlastRADIUS fix, CVE-2024-3596).
    pub fn signs_replies(&self) -> bool {
        self.radiusd_version >= (3, 2, 5)
    }
}

/// `freeradius -v`'s "Version X.Y.Z".
fn radiusd_version() -> (u32, u32, u32) {
    let out = std::process::Command::new("freeradius")
        .arg("-v")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running `freeradius -v` (apt-get install freeradius)");
    let text = String::from_utf8_lossy(&out.stdout);
    parse_radiusd_version(&text)
        .unwrap_or_else(|| panic!("no \"Version X.Y.Z\" in `freeradius -v`:\n{text}"))
}

fn parse_radiusd_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("Version ").nth(1)?;
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// Repository root (tests/e2e/../..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The environment, or `None` when e2e tests are not configured (then the
/// caller returns early: see [`e2e_env!`]).
pub fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let required = var("RLM_RUST_E2E_REQUIRED").as_deref() == Some("1");
        let Some(admin_dsn) = var("RLM_RUST_TEST_DSN") else {
            assert!(
                !required,
                "RLM_RUST_E2E_REQUIRED=1 but RLM_RUST_TEST_DSN is not set"
            );
            eprintln!("e2e: RLM_RUST_TEST_DSN not set, skipping (run scripts/test)");
            return None;
        };
        let root = repo_root();
        let backend = match var("RLM_RUST_E2E_BACKEND").as_deref() {
            None | Some("rust") => Backend::Rust,
            Some("sql") => Backend::Sql,
            Some(other) => panic!("RLM_RUST_E2E_BACKEND must be rust or sql, got {other:?}"),
        };
        let so = var("RLM_RUST_SO")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/librlm_rust.so"));
        if backend == Backend::Rust {
            assert!(
                so.is_file(),
                "{} does not exist: cargo build --release first (or set RLM_RUST_SO)",
                so.display()
            );
        }
        let panic_so = var("RLM_RUST_PANIC_SO").map(PathBuf::from);
        let env = Env {
            so,
            panic_so,
            admin_bin: var("RLM_RUST_ADMIN_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/release/radius-admin")),
            admin_dsn,
            db_owner: var("RLM_RUST_DB_OWNER").unwrap_or_else(|| "radius".into()),
            raddb_script: var("RLM_RUST_RADDB_SCRIPT")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("scripts/raddb")),
            work_dir: var("RLM_RUST_E2E_KEEP_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/e2e")),
            backend,
            stock_schema: var("RLM_RUST_STOCK_SCHEMA")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(STOCK_SCHEMA)),
            run_rust_only: var("RLM_RUST_E2E_RUN_RUST_ONLY").as_deref() == Some("1"),
            radiusd_version: radiusd_version(),
        };
        std::fs::create_dir_all(&env.work_dir).expect("creating the e2e work dir");
        Some(env)
    })
    .as_ref()
}

/// `let env = e2e_env!();` at the top of a test: the environment, or an early
/// (passing) return when e2e tests are not configured.
#[macro_export]
macro_rules! e2e_env {
    () => {
        match $crate::env() {
            Some(env) => env,
            None => return,
        }
    };
}

/// Early return for tests of behaviour only rlm_rust has (not rlm_sql):
/// under `RLM_RUST_E2E_BACKEND=sql` the test passes without running. Every
/// use says why next to it (a feature rlm_sql lacks, a deliberate
/// difference, or "known difference: ..." for a case where the module
/// contradicts rlm_sql).
#[macro_export]
macro_rules! rust_only {
    ($env:expr) => {
        if $env.backend != $crate::Backend::Rust && !$env.run_rust_only {
            eprintln!(
                "skipped: rlm_rust-only behaviour, backend is {:?}",
                $env.backend
            );
            return;
        }
    };
}

/// A string as a radclient value: double-quoted, `"` and `\` escaped.
pub fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (an optional 0x prefix allowed).
pub fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    assert!(s.len() % 2 == 0, "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The Acct-Unique-Session-Id the stock `acct_unique` policy computes for a
/// request without a Class attribute:
/// md5("User-Name,Acct-Session-Id,NAS-IP-Address,NAS-Identifier,NAS-Port-Id,NAS-Port").
pub fn stock_acct_unique_id(
    user: &str,
    session: &str,
    nas_ip: &str,
    nas_identifier: &str,
    nas_port_id: &str,
    nas_port: &str,
) -> String {
    use md5::Digest;
    let s = format!("{user},{session},{nas_ip},{nas_identifier},{nas_port_id},{nas_port}");
    hex(&md5::Md5::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::parse_radiusd_version;

    #[test]
    fn reads_the_version_line() {
        let line = "radiusd: FreeRADIUS Version 3.2.7, for host x86_64-pc-linux-gnu, built on Dec  6 2025\n";
        assert_eq!(parse_radiusd_version(line), Some((3, 2, 7)));
        assert_eq!(
            parse_radiusd_version("radiusd: FreeRADIUS Version 3.2.1, for host"),
            Some((3, 2, 1))
        );
        assert_eq!(parse_radiusd_version("no version here"), None);
    }
}
