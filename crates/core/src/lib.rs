//! The rlm_rust core: everything the FreeRADIUS module and the admin service
//! share. It knows PostgreSQL and FreeRADIUS *semantics* (rlm_sql's
//! authorize algorithm, the stock accounting queries), but has no FFI and no
//! HTTP: callers hand it owned values and get owned values back.

pub mod accounting;
pub mod attrs;
pub mod authorize;
pub mod config;
mod error;
pub mod postauth;
pub mod schema;
pub mod store;

pub use error::Error;

/// The version shared by the module, the C API and the admin service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
