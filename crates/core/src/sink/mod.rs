//! Where accounting and post-auth records go. The module's requests go to
//! one [`Sink`]: the database (group commits, answered after the PostgreSQL
//! commit: [`database`]) or the journal (answered after a local
//! `fdatasync`: [`journal`], applied by the [`shipper`]); both write rows
//! with the same statements ([`radacct`], [`radpostauth`]). radius-admin's
//! direct writes are at the end.

mod database;
mod journal;
mod radacct;
mod radpostauth;
mod shipper;

use std::sync::Arc;

use crate::accounting::{self, AcctOutcome, AcctRecord, AcctStatus};
use crate::commit::{CommitError, GroupCommit};
use crate::postauth::PostAuthRecord;
use crate::store::Store;
use crate::Error;

pub(crate) use database::{group_commit, Batch, QUEUE_MAX};

pub(crate) use radacct::AcctBatch;
pub(crate) use radpostauth::PostAuthBatch;
pub use shipper::Replayed;
pub(crate) use shipper::Shipper;

pub use journal::Entry;
pub(crate) use journal::Journal;

/// The server refused a statement (a constraint, a value), as opposed to
/// being away or too slow: retrying the others is worth it.
pub(crate) fn refused(e: &Error) -> bool {
    matches!(e, Error::Db(d) if d.as_db_error().is_some())
}

/// `e` with the server's message: tokio_postgres prints a server's error
/// as "db error" alone.
pub(crate) fn why(e: &Error) -> String {
    match e {
        Error::Db(d) => match d.as_db_error() {
            Some(db) => format!("{e}: {}", db.message()),
            None => e.to_string(),
        },
        _ => e.to_string(),
    }
}

/// What the module's accounting and post-auth records go to.
pub(crate) enum Sink {
    /// Before [`Store::start_background`]: records cannot be taken.
    Stopped,
    /// `durability = database`.
    Database {
        postauth: GroupCommit<PostAuthRecord, ()>,
        acct: GroupCommit<(AcctStatus, AcctRecord), AcctOutcome>,
    },
    /// `durability = journal` ([`Store::start_journal`]). The shipper is
    /// dropped first: it ships what is durable before it stops.
    Journal { shipper: Shipper, journal: Journal },
}

impl Store {
    /// How many accounting batches failed as a whole and were written one
    /// record at a time instead (a record the database refused, a lost
    /// connection).
    pub fn accounting_fallbacks(&self) -> u64 {
        self.inner
            .acct_fallbacks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Group commits made so far and the records they carried: post-auth,
    /// then accounting; (0, 0) before [`Store::start_background`].
    pub fn commit_totals(&self) -> [(u64, u64); 2] {
        [
            match &self.sink {
                Sink::Database { postauth, .. } => postauth.totals(),
                _ => (0, 0),
            },
            match &self.sink {
                Sink::Database { acct, .. } => acct.totals(),
                _ => (0, 0),
            },
        ]
    }

    /// Commits `record` with the next group commit of its kind, on this
    /// thread (which must not be running an async runtime): returns only
    /// after the commit, or fails within `query_timeout` unwritten.
    fn commit<R, T>(
        &self,
        gc: Option<&GroupCommit<R, T>>,
        record: R,
        what: &'static str,
    ) -> Result<T, Error> {
        let gc = gc.ok_or_else(|| Error::Write(format!("{what}: group commit not started")))?;
        let wait = self.inner.query_timeout;
        gc.submit(record, wait).map_err(|e| match e {
            CommitError::Full => {
                Error::Write(format!("{what}: {QUEUE_MAX} records already queued"))
            }
            CommitError::Timeout => Error::Timeout(wait, what),
            CommitError::Failed(m) => Error::Write(m),
        })
    }

    /// Records one accounting request: in the journal when it is open
    /// (returns once the record is durable there; PostgreSQL gets it from
    /// the shipper, with the outcome rlm_sql's chain gives it), else with
    /// the next group commit (see [`Store::start_background`]). Blocks this
    /// thread until then.
    pub fn commit_accounting(
        &self,
        status: AcctStatus,
        rec: AcctRecord,
    ) -> Result<AcctOutcome, Error> {
        if !accounting::stores(status) {
            return Ok(AcctOutcome::Unchanged);
        }
        let gc = match &self.sink {
            Sink::Journal { journal, .. } => {
                journal.append(Entry::Accounting(status, rec), self.inner.query_timeout)?;
                return Ok(AcctOutcome::Written);
            }
            Sink::Database { acct, .. } => Some(acct),
            Sink::Stopped => None,
        };
        self.commit(gc, (status, rec), "accounting")
    }

    /// Records one radpostauth row, in the journal when it is open, else
    /// with the next group commit; blocks this thread until then.
    pub fn commit_postauth(&self, rec: PostAuthRecord) -> Result<(), Error> {
        let gc = match &self.sink {
            Sink::Journal { journal, .. } => {
                return journal.append(Entry::PostAuth(rec), self.inner.query_timeout)
            }
            Sink::Database { postauth, .. } => Some(postauth),
            Sink::Stopped => None,
        };
        self.commit(gc, rec, "post-auth")
    }

    /// Opens the journal in `dir` (`durability = journal`) and starts its
    /// shipper: from then on [`Store::commit_accounting`] and
    /// [`Store::commit_postauth`] answer once a record is durable on local
    /// disk. `host` names this server in `rlm_rust_journal`. Called before
    /// [`Store::start_background`], which then builds no group commits.
    pub fn start_journal(
        &mut self,
        dir: &std::path::Path,
        max_bytes: u64,
        host: &str,
    ) -> Result<(), Error> {
        let journal = Journal::open(dir, max_bytes).map_err(Error::Write)?;
        let shipper = Shipper::start(
            Arc::clone(&self.inner),
            Arc::clone(&journal.core),
            host.to_string(),
        )?;
        self.inner.metrics.register_collector(JournalMetrics {
            core: Arc::clone(&journal.core),
            counters: Arc::clone(&shipper.counters),
        });
        self.sink = Sink::Journal { shipper, journal };
        Ok(())
    }

    /// The unapplied journal records of `user` (as accounting stores the
    /// name) and every unapplied NAS reset; nothing without a journal,
    /// where PostgreSQL holds every acknowledged record.
    pub(crate) fn pending_for(&self, user: &str) -> crate::usage::Pending {
        match &self.sink {
            Sink::Journal { journal, .. } => journal::lock(&journal.core.pending).for_user(user),
            _ => crate::usage::Pending::default(),
        }
    }

    /// The journal's state, when it is open.
    pub fn journal_status(&self) -> Option<JournalStatus> {
        let Sink::Journal { shipper, journal } = &self.sink else {
            return None;
        };
        let (core, c) = (&journal.core, &shipper.counters);
        let durable = core.durable();
        let applied = core.applied.load(std::sync::atomic::Ordering::Relaxed);
        Some(JournalStatus {
            dir: core.dir.clone(),
            id: core.id.clone(),
            durable,
            applied,
            pending: durable.saturating_sub(applied),
            lag: core.lag(),
            bytes: core.bytes(),
            shipped: c.shipped.load(std::sync::atomic::Ordering::Relaxed),
            transactions: c.transactions.load(std::sync::atomic::Ordering::Relaxed),
            set_aside: c.set_aside.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// The journal's figures for the metrics, read at each scrape.
struct JournalMetrics {
    core: Arc<journal::Core>,
    counters: Arc<shipper::Counters>,
}

impl std::fmt::Debug for JournalMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalMetrics")
    }
}

impl prometheus_client::collector::Collector for JournalMetrics {
    fn encode(
        &self,
        mut e: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::metrics::{const_counter, const_gauge};
        use std::sync::atomic::Ordering::Relaxed;
        let durable = self.core.durable();
        let applied = self.core.applied.load(Relaxed);
        const_gauge(
            &mut e,
            "journal_pending_records",
            "Records durable in the journal that PostgreSQL does not hold yet",
            durable.saturating_sub(applied) as f64,
        )?;
        const_gauge(
            &mut e,
            "journal_lag_seconds",
            "How long the oldest record PostgreSQL does not hold yet has waited (0: none waits)",
            self.core.lag().as_secs_f64(),
        )?;
        const_gauge(
            &mut e,
            "journal_bytes",
            "Bytes the journal's segments take (bounded by journal_max_bytes)",
            self.core.bytes() as f64,
        )?;
        const_counter(
            &mut e,
            "journal_shipped_records",
            "Records the shipper applied to PostgreSQL",
            self.counters.shipped.load(Relaxed),
        )?;
        const_counter(
            &mut e,
            "journal_set_aside_records",
            "Records PostgreSQL refused, set aside in rlm_rust_dead_letter",
            self.counters.set_aside.load(Relaxed),
        )
    }
}

/// What [`Store::journal_status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalStatus {
    pub dir: std::path::PathBuf,
    /// The key of its position in `rlm_rust_journal`.
    pub id: String,
    /// The last record made durable (numbered from 1).
    pub durable: u64,
    /// The last record PostgreSQL holds, as the shipper last saw it.
    pub applied: u64,
    /// Records durable but not yet in PostgreSQL.
    pub pending: u64,
    /// How long the oldest of them has waited.
    pub lag: std::time::Duration,
    /// Bytes the journal's segments take (bounded by `journal_max_bytes`).
    pub bytes: u64,
    /// Records applied by this process, and in how many transactions.
    pub shipped: u64,
    pub transactions: u64,
    /// Records PostgreSQL refused, set aside in `rlm_rust_dead_letter`.
    pub set_aside: u64,
}

impl Store {
    /// Writes one accounting request in its own transaction.
    pub async fn write_accounting(
        &self,
        status: AcctStatus,
        rec: &AcctRecord,
    ) -> Result<AcctOutcome, Error> {
        if !accounting::stores(status) {
            return Ok(AcctOutcome::Unchanged);
        }
        self.inner
            .write_accounting(&self.inner.pool, status, rec)
            .await
    }

    /// Writes `recs` as a group commit's leader writes the batch it took
    /// from the queue (with the same result as writing them one after the
    /// other): one result per record.
    pub async fn write_accounting_batch(
        &self,
        recs: &[(AcctStatus, AcctRecord)],
    ) -> Vec<Result<AcctOutcome, Error>> {
        AcctBatch::write(&self.inner, &self.inner.pool, recs.iter().collect())
            .await
            .into_iter()
            .map(|r| r.map_err(Error::Write))
            .collect()
    }

    /// Writes one radpostauth row.
    pub async fn write_postauth(&self, rec: &PostAuthRecord) -> Result<(), Error> {
        let inner = &self.inner;
        inner
            .deadline("post-auth", async {
                inner
                    .insert_postauth(&inner.pool, &[rec])
                    .await
                    .map_err(Error::Write)
            })
            .await
    }
}
