//! Where the tests find scripts/pg's TLS material (the test CA, a CA that
//! signed nothing, the TLS-only role) and how they write a DSN for it. One
//! source for the core's, radius-admin's and the e2e tests.
// Each including crate uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// The role scripts/pg's pg_hba admits over TLS only (lib.sh's PG_TLS_ROLE).
pub const TLS_ONLY_ROLE: &str = "rlm_tls_only";
/// The role it admits by client certificate only (PG_TLS_CERT_ROLE), whose
/// certificate and key are [`client_cert`].
pub const CERT_ROLE: &str = "rlm_tls_cert";

/// `RLM_RUST_TEST_PG_TLS_DIR` (scripts/test sets it), else scripts/pg's
/// default under this checkout. Panics when its CA is missing: the TLS
/// tests cannot pass without it (`scripts/pg start` makes it).
pub fn tls_dir() -> PathBuf {
    let dir = std::env::var_os("RLM_RUST_TEST_PG_TLS_DIR")
        .map(PathBuf::from)
        // crates/core, crates/admin and tests/e2e all sit two levels down.
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.state/pg/tls"));
    assert!(
        dir.join("ca.crt").is_file() && dir.join("other-ca.crt").is_file(),
        "no test CA in {} (scripts/pg makes it when it starts the cluster: a cluster \
         started by an older scripts/pg needs `scripts/pg stop && scripts/pg start`; or set \
         RLM_RUST_TEST_PG_TLS_DIR)",
        dir.display()
    );
    dir
}

/// The right CA's certificate.
pub fn ca() -> String {
    tls_dir().join("ca.crt").display().to_string()
}

/// A CA that did not sign the server's certificate.
pub fn other_ca() -> String {
    tls_dir().join("other-ca.crt").display().to_string()
}

/// Whether `message` gives OpenSSL's reason for a chain that does not lead
/// to the CA given: which one depends on whether the server sends its CA
/// along ("self-signed certificate in certificate chain") or not ("unable
/// to get local issuer certificate").
pub fn names_untrusted_chain(message: &str) -> bool {
    message.contains("certificate verify failed")
        && (message.contains("unable to get local issuer certificate")
            || message.contains("self-signed certificate in certificate chain"))
}

/// The client certificate and key for [`CERT_ROLE`].
pub fn client_cert() -> (String, String) {
    let dir = tls_dir();
    let f = |n: &str| dir.join(n).display().to_string();
    (f("client.crt"), f("client.key"))
}

/// A key=value DSN to the cluster of `admin_dsn` (its port), naming the
/// host, user and database, then `extra` (the TLS keys).
pub fn dsn(admin_dsn: &str, host: &str, user: &str, dbname: &str, extra: &str) -> String {
    let cfg: tokio_postgres::Config = admin_dsn.parse().expect("the admin DSN parses");
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("host={host} port={port} user={user} dbname={dbname} {extra}")
}
