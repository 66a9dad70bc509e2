//! The rlm_rust core: everything the FreeRADIUS module and the admin service
//! share. It knows PostgreSQL and FreeRADIUS *semantics* (rlm_sql's
//! authorize algorithm, the stock accounting queries), but has no FFI and no
//! HTTP: callers hand it owned values and get owned values back.

pub mod account;
pub mod accounting;
pub mod attrs;
pub mod authorize;
pub mod cache;
pub mod commit;
pub mod config;
pub mod credential;
pub mod engine;
mod error;
pub mod login;
pub mod lookup;
pub mod metrics;
pub mod password;
pub mod pg;
pub mod postauth;
mod preload;
pub mod schema;
pub mod secret;
mod sink;
pub mod store;
pub mod usage;

pub use error::Error;
pub use sink::{Entry, JournalStatus, Replayed};

/// The version shared by the module, the C API and the admin service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Checks the core's invariants without a database or radiusd: what the C
/// API's `rlm_rust_self_test()` runs on a target machine.
pub fn self_test() -> Result<(), String> {
    let cfg = config::ModuleConfig::from_items([("dsn", "host=127.0.0.1 dbname=radius")])
        .map_err(|e| format!("default configuration: {e}"))?;
    if cfg.pool_size == 0 || cfg.store_rejected_password {
        return Err("unexpected configuration defaults".into());
    }
    if config::ModuleConfig::from_items([("dsn", "x"), ("bogus", "1")]).is_ok() {
        return Err("unknown configuration items are accepted".into());
    }
    for op in attrs::Op::ALL {
        if attrs::Op::parse(op.as_str()) != Some(op) {
            return Err(format!("operator {op} does not round-trip"));
        }
    }
    // Python: base64(hashlib.pbkdf2_hmac("sha256", b"secret", b"abcdefghijklmnop", 1000))
    let django = "pbkdf2_sha256$1000$abcdefghijklmnop$xqWi0Bgxi2nNQ4QS/VBXGMXBXvMSKGsvDVCC3paWhmY=";
    match (
        password::verify("secret", django),
        password::verify("wrong", django),
    ) {
        (Ok(true), Ok(false)) => Ok(()),
        other => Err(format!("pbkdf2_sha256 verification: {other:?}")),
    }
}
