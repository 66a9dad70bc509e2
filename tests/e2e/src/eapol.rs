//! `eapol_test` (wpa_supplicant's RADIUS test client, Debian package
//! `eapoltest`) running a whole PEAP or TTLS conversation against a
//! [`Radiusd`]: EAP-Identity, the TLS handshake, the inner authentication
//! and the final Access-Accept or Access-Reject with its MPPE keys.
//!
//! The binary is `eapol_test` from `PATH`, or `EAPOL_TEST` when set. Missing,
//! it skips the test, or fails it under `RLM_RUST_E2E_REQUIRED=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Env, Radiusd};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The outer EAP method and the inner authentication inside its tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// PEAP with EAP-MSCHAPv2 inside: needs an NT hash or a cleartext
    /// password on the server.
    PeapMschapv2,
    /// TTLS with PAP inside: the password reaches the server, any stored
    /// credential works.
    TtlsPap,
}

impl Method {
    fn eap(self) -> &'static str {
        match self {
            Method::PeapMschapv2 => "PEAP",
            Method::TtlsPap => "TTLS",
        }
    }

    fn phase2(self) -> &'static str {
        match self {
            Method::PeapMschapv2 => "auth=MSCHAPV2",
            Method::TtlsPap => "auth=PAP",
        }
    }

    /// eapol_test's line once the server agreed on this method.
    fn selected_line(self) -> &'static str {
        match self {
            Method::PeapMschapv2 => "EAP vendor 0 method 25 (PEAP) selected",
            Method::TtlsPap => "EAP vendor 0 method 21 (TTLS) selected",
        }
    }

    /// eapol_test's line once the inner credentials went out through the
    /// tunnel: a reject after it is the inner authentication's verdict,
    /// not a TLS or configuration failure.
    fn inner_sent_line(self) -> &'static str {
        match self {
            Method::PeapMschapv2 => "EAP-MSCHAPV2: Generating Challenge Response",
            Method::TtlsPap => "EAP-TTLS: Phase 2 PAP Request",
        }
    }
}

/// One login attempt.
#[derive(Clone, Copy, Debug)]
pub struct Login<'a> {
    pub method: Method,
    /// The inner identity: the user looked up in the inner tunnel.
    pub identity: &'a str,
    pub password: &'a str,
    /// The outer identity (User-Name of the outer requests); `None` sends
    /// `identity` outside too.
    pub anonymous_identity: Option<&'a str>,
}

impl<'a> Login<'a> {
    pub fn new(method: Method, identity: &'a str, password: &'a str) -> Self {
        Login {
            method,
            identity,
            password,
            anonymous_identity: None,
        }
    }

    pub fn anonymous(mut self, outer: &'a str) -> Self {
        self.anonymous_identity = Some(outer);
        self
    }
}

/// What eapol_test reported.
#[derive(Debug)]
pub struct Outcome {
    pub method: Method,
    /// eapol_test exited with status 0 (it does only after an EAP success
    /// with matching MPPE keys).
    pub exit_ok: bool,
    /// Its standard output and error.
    pub output: String,
}

impl Outcome {
    fn last_line(&self) -> &str {
        self.output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }

    fn has(&self, line: &str) -> bool {
        self.output.contains(line)
    }

    /// EAP success in an Access-Accept, over the expected method.
    pub fn accepted(&self) -> bool {
        self.exit_ok
            && self.last_line() == "SUCCESS"
            && self.has(self.method.selected_line())
            && self.has("(Access-Accept)")
    }

    /// An Access-Reject after the tunnel was up and the inner credentials
    /// were sent: refused by the inner authentication.
    pub fn rejected_in_tunnel(&self) -> bool {
        !self.exit_ok
            && self.last_line() == "FAILURE"
            && self.has(self.method.selected_line())
            && self.has(self.method.inner_sent_line())
            && self.has("(Access-Reject)")
    }

    /// The end of the output, for assertion messages (the whole output is
    /// hundreds of lines of hex dumps).
    pub fn summary(&self, n: usize) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        let key: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| {
                l.starts_with("CTRL-EVENT")
                    || l.starts_with("RADIUS message: code")
                    || l.contains("selected")
            })
            .collect();
        format!(
            "eapol_test {:?}, exit {}; key lines:\n{}\nlast {n} lines:\n{}",
            self.method,
            if self.exit_ok { "0" } else { "non-zero" },
            key.join("\n"),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }
}

/// A wpa_supplicant string value: quoted when that is unambiguous,
/// otherwise hex (which wpa_supplicant reads for any bytes).
fn conf_string(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"') {
        format!("\"{s}\"")
    } else {
        crate::hex(s.as_bytes())
    }
}

/// The eapol_test binary, found once.
pub struct Eapol {
    bin: PathBuf,
    work_dir: PathBuf,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Eapol {
    /// `let Some(eapol) = Eapol::find(env) else { return };`: the binary, or
    /// a skip (a failure under `RLM_RUST_E2E_REQUIRED=1`) when it is not
    /// installed.
    pub fn find(env: &Env) -> Option<Eapol> {
        let bin = std::env::var_os("EAPOL_TEST")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| find_in_path("eapol_test"));
        let Some(bin) = bin.filter(|b| b.is_file()) else {
            let required = std::env::var("RLM_RUST_E2E_REQUIRED").as_deref() == Ok("1");
            assert!(
                !required,
                "RLM_RUST_E2E_REQUIRED=1 but eapol_test is not installed (scripts/setup installs the Debian package eapoltest)"
            );
            eprintln!("skipped: eapol_test not installed (apt-get install eapoltest)");
            return None;
        };
        Some(Eapol {
            bin,
            work_dir: env.work_dir.clone(),
        })
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs one whole conversation against `rad` (10 s at most).
    pub fn login(&self, rad: &Radiusd, login: Login<'_>) -> Outcome {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let conf = self
            .work_dir
            .join(format!("eapol-{}-{n}.conf", std::process::id()));
        let mut network = format!(
            "network={{\n\tkey_mgmt=WPA-EAP\n\teap={}\n\tidentity={}\n\tpassword={}\n\tphase2=\"{}\"\n",
            login.method.eap(),
            conf_string(login.identity),
            conf_string(login.password),
            login.method.phase2(),
        );
        if let Some(outer) = login.anonymous_identity {
            network.push_str(&format!("\tanonymous_identity={}\n", conf_string(outer)));
        }
        network.push_str("}\n");
        std::fs::write(&conf, network)
            .unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p"])
            .arg(rad.auth_port.to_string())
            .arg("-s")
            .arg(&rad.secret)
            // Its own deadline for the whole conversation, and no
            // re-authentication after the first result.
            .args(["-t", "10", "-r0"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()));
        let _ = std::fs::remove_file(&conf);
        Outcome {
            method: login.method,
            exit_ok: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}
