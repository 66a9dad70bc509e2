use std::time::Duration;

/// Errors the core reports to its callers. Messages are meant for an
/// operator's log: they say what failed, never a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {}", crate::pg::describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(String),
    #[error("database did not answer within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error("write failed: {0}")]
    Write(String),
    #[error("busy: {0}")]
    Busy(crate::login::VerifyError),
    #[error("bad data in {table}: {message}")]
    BadData {
        table: &'static str,
        message: String,
    },
}
