//! How the module, radius-admin and every background connection of theirs
//! (pools, LISTEN, the journal shipper, migrations) reach PostgreSQL: one
//! reading of the connection string, TLS included, and one connector.
//!
//! The DSN is read the way libpq reads it, in both forms (`key=value` and
//! `postgresql://` URL). tokio-postgres knows `sslmode` `disable`, `prefer`
//! and `require` only, and neither `sslrootcert`, `sslcert` nor `sslkey`:
//! those keys are taken out here and the rest is handed to tokio-postgres
//! unchanged, so everything else keeps tokio-postgres' meaning.
//!
//! TLS goes through the system OpenSSL (postgres-openssl): the library
//! radiusd itself and radius-admin's mail and SMS clients already load, so
//! the process carries one TLS stack and one set of system CAs.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Connection, Socket};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<SslMode, String> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's allow (TLS only when the server insists) is not
            // something tokio-postgres can do.
            other => {
                return Err(format!(
                    "sslmode '{other}' is not supported (disable, prefer, require, verify-ca, verify-full)"
                ))
            }
        })
    }

    /// What tokio-postgres negotiates for it (it verifies nothing itself:
    /// the connector does).
    fn negotiate(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted CAs (libpq 16).
    System,
}

/// The TLS keys of a connection string, as written (no file read yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// None: not given (libpq's default, `prefer`).
    pub mode: Option<SslMode>,
    pub root_cert: Option<RootCert>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The keys taken out of the DSN before tokio-postgres reads it.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl TlsSettings {
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let path = || {
            if value.is_empty() {
                Err(format!("{key} is empty"))
            } else {
                Ok(PathBuf::from(value))
            }
        };
        match key {
            "sslmode" => self.mode = Some(SslMode::parse(value)?),
            "sslrootcert" if value == "system" => self.root_cert = Some(RootCert::System),
            "sslrootcert" => self.root_cert = Some(RootCert::File(path()?)),
            "sslcert" => self.cert = Some(path()?),
            "sslkey" => self.key = Some(path()?),
            _ => unreachable!("only TLS_KEYS are set"),
        }
        Ok(())
    }

    /// The CA file libpq would use: the given one, else
    /// `~/.postgresql/root.crt` where it exists.
    fn root_cert(&self) -> Option<RootCert> {
        self.root_cert.clone().or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = Path::new(&home).join(".postgresql/root.crt");
            p.is_file().then_some(RootCert::File(p))
        })
    }

    /// libpq's rules: with a CA at hand, `prefer` and `require` verify the
    /// chain as `verify-ca` does; `sslrootcert=system` defaults to
    /// `verify-full` and allows nothing weaker.
    fn effective(&self) -> Result<(SslMode, Option<RootCert>), String> {
        let root = self.root_cert();
        let mode = match (self.mode, &root) {
            (None, Some(RootCert::System)) => SslMode::VerifyFull,
            (Some(m), Some(RootCert::System)) if m != SslMode::VerifyFull => {
                return Err(format!(
                    "sslmode={} may not be used with sslrootcert=system (use verify-full)",
                    m.as_str()
                ))
            }
            (m, _) => m.unwrap_or(SslMode::Prefer),
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root.is_none() {
            return Err(format!(
                "sslmode={} needs the CA that signed the server's certificate: set sslrootcert \
                 (a file, or 'system' for the system's CAs); there is no ~/.postgresql/root.crt",
                mode.as_str()
            ));
        }
        Ok((mode, root))
    }

    /// The connector (reads the CA and client certificate files).
    pub fn connector(&self) -> Result<Tls, String> {
        let (mode, root) = self.effective()?;
        let verify = match mode {
            SslMode::Disable => false,
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Prefer | SslMode::Require => root.is_some(),
        };
        let verify_host = mode == SslMode::VerifyFull;
        let ossl = |what: &str, e: ErrorStack| format!("{what}: {e}");
        let mut b =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| ossl("TLS setup", e))?;
        let mut what = format!("sslmode={}", mode.as_str());
        if verify {
            match &root {
                Some(RootCert::File(p)) => {
                    readable("sslrootcert", p)?;
                    b.set_ca_file(p)
                        .map_err(|e| ossl(&format!("sslrootcert {}", p.display()), e))?;
                    what.push_str(&format!(", sslrootcert {}", p.display()));
                }
                Some(RootCert::System) => {
                    b.set_default_verify_paths()
                        .map_err(|e| ossl("sslrootcert=system", e))?;
                    what.push_str(", sslrootcert=system");
                }
                None => unreachable!("effective() requires a CA to verify"),
            }
            b.set_verify(SslVerifyMode::PEER);
        } else {
            b.set_verify(SslVerifyMode::NONE);
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                readable("sslcert", cert)?;
                readable("sslkey", key)?;
                b.set_certificate_chain_file(cert)
                    .map_err(|e| ossl(&format!("sslcert {}", cert.display()), e))?;
                b.set_private_key_file(key, SslFiletype::PEM)
                    .map_err(|e| ossl(&format!("sslkey {}", key.display()), e))?;
                b.check_private_key()
                    .map_err(|e| ossl("sslkey does not match sslcert", e))?;
            }
            (None, None) => {}
            _ => return Err("sslcert and sslkey go together: set both or neither".into()),
        }
        let mut make = postgres_openssl::MakeTlsConnector::new(b.build());
        if !verify_host {
            make.set_callback(|c, _| {
                c.set_verify_hostname(false);
                Ok(())
            });
        }
        Ok(Tls {
            make,
            what: what.into(),
            mode: mode.negotiate(),
        })
    }
}

fn readable(key: &str, p: &Path) -> Result<(), String> {
    std::fs::File::open(p)
        .map(drop)
        .map_err(|e| format!("{key} {}: cannot read: {e}", p.display()))
}

/// Reads a connection string: tokio-postgres' configuration (without the
/// TLS keys) and the TLS keys. Reads no file.
pub fn parse(dsn: &str) -> Result<(tokio_postgres::Config, TlsSettings), String> {
    let mut tls = TlsSettings::default();
    let rest = if is_url(dsn) {
        take_url_params(dsn, &mut tls)?
    } else {
        take_params(dsn, &mut tls)?
    };
    let mut cfg: tokio_postgres::Config = rest.parse().map_err(|e| format!("{e}"))?;
    cfg.ssl_mode(tls.mode.unwrap_or(SslMode::Prefer).negotiate());
    Ok((cfg, tls))
}

pub(crate) fn is_url(dsn: &str) -> bool {
    dsn.starts_with("postgresql://") || dsn.starts_with("postgres://")
}

/// A PostgreSQL server as the core connects to it: what tokio-postgres
/// reads from the DSN and the TLS connector the DSN asks for.
#[derive(Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("tls", &self.tls.what)
            .finish()
    }
}

impl Target {
    /// Parses `dsn` and builds its connector: a bad or unreadable CA file
    /// fails here, at start, not at the first connection.
    pub fn new(dsn: &str) -> Result<Target, String> {
        let (mut config, tls) = parse(dsn)?;
        let tls = tls.connector()?;
        // What the connector verifies decides: a CA at hand (or
        // sslrootcert=system) makes TLS required, as in libpq.
        config.ssl_mode(tls.mode);
        Ok(Target { config, tls })
    }

    /// One connection with this target's configuration.
    pub async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, TlsStream>), tokio_postgres::Error> {
        self.connect_with(&self.config).await
    }

    /// One connection with `config` (this target's, adjusted by the caller).
    pub async fn connect_with(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(Client, Connection<Socket, TlsStream>), tokio_postgres::Error> {
        config.connect(self.tls.clone()).await
    }

    /// What TLS this target uses, for logs: `sslmode=verify-full, sslrootcert /x`.
    pub fn tls_summary(&self) -> &str {
        &self.tls.what
    }
}

/// The TLS stream of a connection made by a [`Target`] (used only when TLS is).
pub type TlsStream = postgres_openssl::TlsStream<Socket>;

/// postgres-openssl's connector, with handshake errors that say which
/// sslmode and CA refused the server (the certificate problem itself
/// comes from OpenSSL's verify result: "hostname mismatch", "unable to
/// get local issuer certificate", ...).
#[derive(Clone)]
pub struct Tls {
    make: postgres_openssl::MakeTlsConnector,
    what: Arc<str>,
    mode: PgSslMode,
}

impl MakeTlsConnect<Socket> for Tls {
    type Stream = postgres_openssl::TlsStream<Socket>;
    type TlsConnect = TlsConnector;
    type Error = ErrorStack;

    fn make_tls_connect(&mut self, domain: &str) -> Result<TlsConnector, ErrorStack> {
        Ok(TlsConnector {
            inner: MakeTlsConnect::<Socket>::make_tls_connect(&mut self.make, domain)?,
            what: Arc::clone(&self.what),
            host: domain.to_string(),
        })
    }
}

pub struct TlsConnector {
    inner: postgres_openssl::TlsConnector,
    what: Arc<str>,
    host: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl TlsConnect<Socket> for TlsConnector {
    type Stream = postgres_openssl::TlsStream<Socket>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, BoxError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let TlsConnector { inner, what, host } = self;
        let handshake = inner.connect(stream);
        Box::pin(async move {
            handshake
                .await
                .map_err(|e| format!("{what}, host '{host}': {e}").into())
        })
    }
}

/// An error with its causes, for logs: tokio-postgres shows only its kind
/// ("error performing TLS handshake") and keeps why in `source()`.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    s
}

// ---- the connection string's text ----

/// One `key = value` of a key/value connection string, where it sits in
/// the text, and its value as libpq and tokio-postgres read it (quotes
/// and backslash escapes undone; None: unterminated quote or no value).
pub(crate) struct Param<'a> {
    pub key: &'a str,
    /// Where the key starts.
    pub start: usize,
    /// Where the value (with its quotes) starts and ends.
    pub value_start: usize,
    pub end: usize,
    pub value: Option<String>,
}

/// Splits a key/value connection string the way tokio-postgres (like
/// libpq) does: blanks around `=`, values quoted with `'` or bare up to a
/// blank, a backslash escaping the next character in both. Also returns
/// where the text stops being `key=value` (its length when it all is).
pub(crate) fn split_params(s: &str) -> (Vec<Param<'_>>, usize) {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let rest = &s[i..];
        let start = i + (rest.len() - rest.trim_start().len());
        let t = &s[start..];
        if t.is_empty() {
            return (out, s.len());
        }
        let key_len = t
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(t.len());
        let after_key = &t[key_len..];
        let Some(eq) = after_key.trim_start().strip_prefix('=') else {
            return (out, start);
        };
        let value_start = s.len() - eq.trim_start().len();
        let (value, end) = read_value(s, value_start);
        out.push(Param {
            key: &t[..key_len],
            start,
            value_start,
            end,
            value,
        });
        i = end;
    }
}

/// The value at `at`: (decoded value, where it ends).
fn read_value(s: &str, at: usize) -> (Option<String>, usize) {
    let text = &s[at..];
    let quoted = text.starts_with('\'');
    let body = if quoted { &text[1..] } else { text };
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        let here = at + usize::from(quoted) + i;
        if quoted && c == '\'' {
            return (Some(value), here + 1);
        }
        if !quoted && c.is_whitespace() {
            return ((!value.is_empty()).then_some(value), here);
        }
        if c == '\\' {
            if let Some((_, next)) = chars.next() {
                value.push(next);
            }
        } else {
            value.push(c);
        }
    }
    let complete = !quoted && !value.is_empty();
    (complete.then_some(value), s.len())
}

fn take_params(dsn: &str, tls: &mut TlsSettings) -> Result<String, String> {
    // What follows the last pair is not key=value: left for
    // tokio-postgres to refuse.
    let (params, _) = split_params(dsn);
    let mut rest = String::with_capacity(dsn.len());
    let mut copied = 0;
    for p in &params {
        if p.key.is_empty() {
            return Err(format!("a value without a key at byte {}", p.start));
        }
        if TLS_KEYS.contains(&p.key) {
            let value = p
                .value
                .as_deref()
                .ok_or_else(|| format!("{}: no value, or an unterminated quote", p.key))?;
            tls.set(p.key, value)?;
            rest.push_str(&dsn[copied..p.start]);
            copied = p.end;
        }
    }
    rest.push_str(&dsn[copied..]);
    Ok(rest)
}

/// Where a URL's parameters start (after its `?`), found as tokio-postgres
/// finds them: credentials up to the first `@`, the host up to `/` or `?`,
/// the database name up to `?`.
pub(crate) fn url_query_start(dsn: &str) -> Option<usize> {
    let after_scheme = dsn.find("://")? + 3;
    let rest = &dsn[after_scheme..];
    let host_at = rest.find('@').map_or(0, |i| i + 1);
    let from_host = &rest[host_at..];
    let q = from_host.find('?')?;
    Some(after_scheme + host_at + q + 1)
}

fn take_url_params(dsn: &str, tls: &mut TlsSettings) -> Result<String, String> {
    let Some(q) = url_query_start(dsn) else {
        return Ok(dsn.to_string());
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|e| format!("{e}"))
    };
    let mut kept = Vec::new();
    let mut rest = &dsn[q..];
    // As tokio-postgres: the key runs to the next '=', the value to the next '&'.
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            kept.push(rest);
            break;
        };
        let end = rest[eq + 1..].find('&').map_or(rest.len(), |i| eq + 1 + i);
        let pair = &rest[..end];
        let key = decode(&rest[..eq])?;
        if TLS_KEYS.contains(&key.as_str()) {
            tls.set(&key, &decode(&rest[eq + 1..end])?)?;
        } else {
            kept.push(pair);
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let head = &dsn[..q - 1];
    Ok(if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(dsn: &str) -> TlsSettings {
        parse(dsn).unwrap().1
    }

    #[test]
    fn takes_tls_keys_out_of_both_forms() {
        for dsn in [
            "host=db.example sslmode=verify-full sslrootcert='/etc/ssl/my ca.pem' user=radius",
            "postgresql://radius@db.example/radius?sslmode=verify-full&sslrootcert=/etc/ssl/my%20ca.pem",
        ] {
            let (cfg, t) = parse(dsn).unwrap();
            assert_eq!(t.mode, Some(SslMode::VerifyFull), "{dsn}");
            assert_eq!(
                t.root_cert,
                Some(RootCert::File("/etc/ssl/my ca.pem".into())),
                "{dsn}"
            );
            assert_eq!(cfg.get_user(), Some("radius"), "{dsn}");
            assert_eq!(cfg.get_ssl_mode(), PgSslMode::Require, "{dsn}");
        }
        let (cfg, t) = parse("postgresql://u@h/db?sslmode=disable").unwrap();
        assert_eq!(t.mode, Some(SslMode::Disable));
        assert_eq!(cfg.get_ssl_mode(), PgSslMode::Disable);
        assert_eq!(cfg.get_dbname(), Some("db"));
        let (cfg, _) =
            parse("postgresql://u@h/db?application_name=x&sslcert=/c&sslkey=/k").unwrap();
        assert_eq!(cfg.get_application_name(), Some("x"));
        assert_eq!(tls("sslcert=/c\\ d sslkey=/k").cert, Some("/c d".into()));
    }

    #[test]
    fn bad_tls_values_are_refused() {
        for dsn in [
            "host=h sslmode=allow",
            "host=h sslmode=verify_full",
            "host=h sslrootcert='/x",
            "host=h sslrootcert=",
            "postgresql://h/db?sslmode=maybe",
            "host=h =x",
        ] {
            assert!(parse(dsn).is_err(), "{dsn}");
        }
    }

    #[test]
    fn libpq_mode_rules() {
        let file = Some(RootCert::File("/ca".into()));
        let with = |mode, root: Option<RootCert>| TlsSettings {
            mode,
            root_cert: root,
            ..Default::default()
        };
        // require with a CA verifies the chain (effective() keeps require;
        // connector() verifies whenever a CA is at hand).
        assert_eq!(
            with(Some(SslMode::Require), file.clone())
                .effective()
                .unwrap(),
            (SslMode::Require, file.clone())
        );
        assert_eq!(
            with(None, Some(RootCert::System)).effective().unwrap().0,
            SslMode::VerifyFull
        );
        let e = with(Some(SslMode::Require), Some(RootCert::System))
            .effective()
            .unwrap_err();
        assert!(
            e.contains("sslmode=require") && e.contains("verify-full"),
            "{e}"
        );
        if std::env::var_os("HOME")
            .is_none_or(|h| !Path::new(&h).join(".postgresql/root.crt").exists())
        {
            let e = with(Some(SslMode::VerifyCa), None).effective().unwrap_err();
            assert!(
                e.contains("sslmode=verify-ca") && e.contains("sslrootcert"),
                "{e}"
            );
        }
        let e = with(
            Some(SslMode::VerifyFull),
            Some(RootCert::File("/nonexistent/ca".into())),
        )
        .connector()
        .err()
        .unwrap();
        assert!(
            e.contains("sslrootcert /nonexistent/ca: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn split_matches_tokio_postgres() {
        let (p, tail) = split_params("a=1  b = 'x y\\' z' c=d\\ e f");
        let kv: Vec<_> = p.iter().map(|p| (p.key, p.value.clone())).collect();
        assert_eq!(
            kv,
            [
                ("a", Some("1".into())),
                ("b", Some("x y' z".into())),
                ("c", Some("d e".into()))
            ]
        );
        assert_eq!(tail, "a=1  b = 'x y\\' z' c=d\\ e f".len() - 1);
    }
}
