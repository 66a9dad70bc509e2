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
/// $2 is how many seconds ago each success was decided: a success applied
/// in the background must not wipe failures another host counted after it
/// (measured on the database's clock, so the hosts' clocks do not matter).
pub const RESET_MANY: &str = "DELETE FROM rlm_rust_lockout l \
    USING unnest($1::text[], $2::float8[]) AS s(username, age) \
    WHERE l.username = s.username AND (l.locked_until IS NULL OR l.locked_until <= now()) \
    AND (l.last_failure IS NULL OR l.last_failure <= now() - make_interval(secs => s.age))";

/// Where a failure left the account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureCount {
    pub failures: i32,
    /// Set when the account is locked now.
    pub locked_until: Option<f64>,
}

/// Successes not yet applied: a success must not cost the reply a round
/// trip, so the module's successes are applied in the background, a batch
/// at a time ([`Store::start_background`] flushes them).
#[derive(Default)]
pub struct PendingResets(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl PendingResets {
    /// A success of `username` now (a later one replaces an earlier one:
    /// it ends a longer streak).
    pub fn add(&self, username: &str) {
        let now = std::time::Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(username) {
            Some(at) => *at = now,
            None => {
                map.insert(username.to_string(), now);
            }
        }
    }

    /// The pending success of `username`: seconds since it was decided.
    fn take_one(&self, username: &str) -> Option<f64> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username)
            .map(|at| at.elapsed().as_secs_f64())
    }

    fn take_all(&self) -> Vec<(String, f64)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .map(|(name, at)| (name, at.elapsed().as_secs_f64()))
            .collect()
    }
}

/// How often the module's pending successes are applied.
pub const RESET_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Applies `pending` every [`RESET_INTERVAL`] until the runtime stops.
pub(crate) async fn flush_resets(
    store_inner: std::sync::Arc<crate::store::Inner>,
    pending: std::sync::Arc<PendingResets>,
) {
    let mut tick = tokio::time::interval(RESET_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let names = pending.take_all();
        if names.is_empty() {
            continue;
        }
        if let Err(e) = store_inner.reset_failures(&names).await {
            log::warn!("lockout: {} successes not applied: {e}", names.len());
        }
    }
}

impl Store {
    /// A successful login of `username`, applied within
    /// [`RESET_INTERVAL`] (at once when the background tasks do not run).
    pub async fn note_success(&self, username: &str) -> Result<(), Error> {
        match self.pending_resets() {
            Some(p) => {
                p.add(username);
                Ok(())
            }
            None => self.reset_failures(&[username]).await,
        }
    }

    /// Counts a failed login of `username`; `None` when the lockout is off.
    pub async fn record_failure(
        &self,
        username: &str,
        policy: &Lockout,
    ) -> Result<Option<FailureCount>, Error> {
        if policy.attempts == 0 {
            return Ok(None);
        }
        // This host's success before this failure is applied first, so
        // the two stay in order.
        if let Some(age) = self.pending_resets().and_then(|p| p.take_one(username)) {
            self.inner()
                .reset_failures(&[(username.to_string(), age)])
                .await?;
        }
        let attempts = policy.attempts as i32;
        let period = policy.period.map(|d| d.as_secs_f64());
        let inner = self.inner();
        let count = inner
            .deadline("lockout", async {
                let client = inner.client().await?;
                let stmt = client.prepare_cached(RECORD_FAILURE).await?;
                let row = client
                    .query_one(&stmt, &[&username, &attempts, &period])
                    .await?;
                Ok(FailureCount {
                    failures: row.try_get("failures")?,
                    locked_until: row.try_get(1)?,
                })
            })
            .await?;
        // The failure that locked, not the ones refused while locked.
        if count.locked_until.is_some() && count.failures == attempts {
            inner.metrics.lockout();
        }
        Ok(Some(count))
    }

    /// Ends the failure streak of each of `usernames` (successful logins).
    pub async fn reset_failures(&self, usernames: &[&str]) -> Result<(), Error> {
        let now: Vec<(String, f64)> = usernames.iter().map(|u| (u.to_string(), 0.0)).collect();
        self.inner().reset_failures(&now).await
    }
}

impl crate::store::Inner {
    /// `successes`: each user name with the seconds since its success.
    async fn reset_failures(&self, successes: &[(String, f64)]) -> Result<(), Error> {
        if successes.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = successes.iter().map(|(n, _)| n.as_str()).collect();
        let ages: Vec<f64> = successes.iter().map(|(_, a)| *a).collect();
        let (names, ages) = (&names, &ages);
        self.deadline(
            "lockout",
            self.on_client(|client| async move {
                let stmt = client.prepare_cached(RESET_MANY).await?;
                client.execute(&stmt, &[names, ages]).await?;
                Ok(())
            }),
        )
        .await
    }
}
