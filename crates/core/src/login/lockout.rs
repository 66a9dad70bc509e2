//! Lockout (FortiAuthenticator's user lockout policy, disable reason 2):
//! consecutive failed logins counted in `rlm_rust_lockout` (migration V6),
//! shared by every host on the database.
//!
//! Counting a failure changes only the count, which no cache holds, so it
//! notifies no one. Only a change of the lock itself (locking, unlocking,
//! the row of an expired lock going away) reaches the caches through V6's
//! trigger.

use std::time::Duration;

use crate::store::Store;
use crate::Error;

/// The lockout policy: `attempts` consecutive failures lock the account for
/// `period` (None: until an administrator unlocks). 0 attempts: off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub attempts: u32,
    pub period: Option<Duration>,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            attempts: 5,
            period: Some(Duration::from_secs(300)),
        }
    }
}

/// One more failure for $1. A lock that has run out starts the count over;
/// a lock still running is left as it is. $2: attempts, $3: period in
/// seconds (NULL: until unlocked).
const RECORD_FAILURE: &str = "INSERT INTO rlm_rust_lockout AS l (username, failures, last_failure, locked_until) \
    VALUES ($1, 1, now(), CASE WHEN 1 >= $2 THEN \
        CASE WHEN $3::float8 IS NULL THEN 'infinity'::timestamptz ELSE now() + make_interval(secs => $3::float8) END END) \
    ON CONFLICT (username) DO UPDATE SET \
      failures = CASE WHEN l.locked_until <= now() THEN 1 ELSE l.failures + 1 END, \
      last_failure = now(), \
      locked_until = CASE \
        WHEN l.locked_until > now() THEN l.locked_until \
        WHEN (CASE WHEN l.locked_until <= now() THEN 1 ELSE l.failures + 1 END) >= $2 THEN \
          CASE WHEN $3::float8 IS NULL THEN 'infinity'::timestamptz ELSE now() + make_interval(secs => $3::float8) END \
        ELSE NULL END \
    RETURNING failures, EXTRACT(EPOCH FROM locked_until)::float8";

/// A success ends the streak: the count goes, and so does a lock that has
/// run out. A running lock stays (a login is refused while locked, so a
/// success here can only come from a request decided before the lock).
pub const RESET_MANY: &str = "DELETE FROM rlm_rust_lockout \
    WHERE username = ANY($1::text[]) AND (locked_until IS NULL OR locked_until <= now())";

/// Where a failure left the account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureCount {
    pub failures: i32,
    /// Set when the account is locked now.
    pub locked_until: Option<f64>,
}

impl Store {
    /// Counts a failed login of `username`; `None` when the lockout is off.
    pub async fn record_failure(
        &self,
        username: &str,
        policy: &Lockout,
    ) -> Result<Option<FailureCount>, Error> {
        if policy.attempts == 0 {
            return Ok(None);
        }
        let attempts = policy.attempts as i32;
        let period = policy.period.map(|d| d.as_secs_f64());
        let inner = self.inner();
        inner
            .deadline("lockout", async {
                let client = inner.client().await?;
                let stmt = client.prepare_cached(RECORD_FAILURE).await?;
                let row = client
                    .query_one(&stmt, &[&username, &attempts, &period])
                    .await?;
                Ok(Some(FailureCount {
                    failures: row.try_get("failures")?,
                    locked_until: row.try_get(1)?,
                }))
            })
            .await
    }

    /// Ends the failure streak of each of `usernames` (successful logins).
    pub async fn reset_failures(&self, usernames: &[&str]) -> Result<(), Error> {
        if usernames.is_empty() {
            return Ok(());
        }
        let inner = self.inner();
        inner
            .deadline("lockout", async {
                let client = inner.client().await?;
                let stmt = client.prepare_cached(RESET_MANY).await?;
                client.execute(&stmt, &[&usernames]).await?;
                Ok(())
            })
            .await
    }
}
