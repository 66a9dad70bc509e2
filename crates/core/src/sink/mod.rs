//! Where accounting and post-auth records go: group commits of each kind
//! (many requests, one transaction, each caller released after the
//! commit), and the direct writes radius-admin makes.

mod journal;
mod radacct;
mod radpostauth;
mod shipper;

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::accounting::{self, AcctOutcome, AcctRecord, AcctStatus};
use crate::commit::{CommitError, GroupCommit};
use crate::postauth::PostAuthRecord;
use crate::store::{make_pool, Inner, Store};
use crate::Error;

pub(crate) use radacct::AcctBatch;
pub(crate) use radpostauth::PostAuthBatch;
pub use shipper::Replayed;
pub(crate) use shipper::Shipper;

pub use journal::Entry;
pub(crate) use journal::Journal;

/// Most records one commit carries.
const BATCH_MAX: usize = 256;
/// Records waiting for a commit at most; beyond, callers fail at once.
const QUEUE_MAX: usize = 8192;
/// Commits of one kind under way at once: one can execute while the other
/// waits for its WAL flush.
const WRITERS: usize = 1;

/// One writer's connection and the single-threaded runtime that drives it.
/// A leader takes a slot for its commit, so the runtime is only ever run by
/// the thread that is waiting for it: no I/O thread is woken.
struct Slot {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// When this slot last committed (see [`IDLE_CHECK`]).
    last_used: std::time::Instant,
    /// Its last batch failed: the connection may be the reason.
    suspect: bool,
}

/// A writer connection idle for longer, or whose last batch failed, is
/// checked (one empty query) before it carries a batch. Its runtime runs only while a commit is led, so a
/// close by the server (a restart, a fail-over) or the network since the
/// last commit goes unnoticed, and the pool would hand out the dead
/// connection: the batch would fail. Under load commits follow each other
/// and pay nothing.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

impl Drop for Slot {
    /// Without blocking: a Store may be dropped inside an async context.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The group commit of batch kind `B`: [`WRITERS`] slots, each its own
/// connection and runtime, taken by whichever caller leads a commit.
pub(crate) fn group_commit<B: Batch>(inner: &Arc<Inner>) -> Result<GroupCommit<B::R, B::T>, Error> {
    let mut slots = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Pool(format!("writer runtime: {e}")))?;
        let pool = make_pool(&inner.pg, 1, inner.query_timeout, inner.connect_timeout)?;
        slots.push(Slot {
            rt: Some(rt),
            pool,
            last_used: std::time::Instant::now(),
            suspect: false,
        });
    }
    let slots = std::sync::Mutex::new(slots);
    let inner = Arc::clone(inner);
    Ok(GroupCommit::new(
        WRITERS,
        BATCH_MAX,
        QUEUE_MAX,
        move |recs: &[&B::R]| {
            // At most WRITERS leaders at once, so a slot is always free.
            let slot = slots.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut slot) = slot.filter(|s| s.rt.is_some()) else {
                return all_failed(recs.len(), "no free writer slot");
            };
            let check = slot.suspect || slot.last_used.elapsed() > IDLE_CHECK;
            // A panic must not take the slot, or the callers, with it.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let rt = slot.rt.as_ref().expect("checked above");
                rt.block_on(async {
                    if check {
                        check_connection(&inner, &slot.pool, inner.query_timeout).await;
                    }
                    let mut out = B::write(&inner, &slot.pool, recs.to_vec()).await;
                    // A connection the server closed (a restart, a
                    // terminated backend) fails the batch at once: like
                    // rlm_sql, reconnect and try what failed once more.
                    // Not when it does not answer: that is a stall, and the
                    // leader must not wait for it twice.
                    if out.iter().any(|r| r.is_err())
                        && matches!(
                            check_connection(&inner, &slot.pool, CLOSED_CHECK).await,
                            Connection::Closed | Connection::Replaced
                        )
                    {
                        let failed: Vec<usize> =
                            (0..out.len()).filter(|&i| out[i].is_err()).collect();
                        let again = failed.iter().map(|&i| recs[i]).collect();
                        let redone = B::write(&inner, &slot.pool, again).await;
                        for (i, r) in failed.into_iter().zip(redone) {
                            out[i] = r;
                        }
                    }
                    out
                })
            }))
            .unwrap_or_else(|_| all_failed(recs.len(), "the writer panicked"));
            slot.last_used = std::time::Instant::now();
            slot.suspect = out.iter().any(|r| r.is_err());
            slots.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
            out
        },
    ))
}

/// How long a writer connection whose batch just failed has to answer an
/// empty query before it is taken for stalled rather than closed.
const CLOSED_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    Alive,
    /// The pool had noticed the old one closed and made a new one.
    Replaced,
    /// It answered with an error: closed by the server or the network.
    Closed,
    /// No answer within the wait (or none to be had from the pool).
    Silent,
}

/// Runs an empty query on the idle connection of a writer's `pool`; takes
/// the connection out of the pool unless it answered, so that the next
/// batch gets a new one.
async fn check_connection(inner: &Inner, pool: &Pool, wait: std::time::Duration) -> Connection {
    let Ok(Ok(client)) = tokio::time::timeout(inner.query_timeout, pool.get()).await else {
        return Connection::Silent;
    };
    let fresh = deadpool_postgres::Object::metrics(&client).recycle_count == 0;
    let state = match tokio::time::timeout(wait, client.simple_query("")).await {
        Ok(Ok(_)) if fresh => Connection::Replaced,
        Ok(Ok(_)) => Connection::Alive,
        Ok(Err(_)) => Connection::Closed,
        Err(_) => Connection::Silent,
    };
    if matches!(state, Connection::Closed | Connection::Silent) {
        drop(deadpool_postgres::Object::take(client));
    }
    state
}

fn all_failed<T>(n: usize, why: &str) -> Vec<Result<T, String>> {
    (0..n).map(|_| Err(why.to_string())).collect()
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
            self.postauth_gc.as_ref().map_or((0, 0), |g| g.totals()),
            self.acct_gc.as_ref().map_or((0, 0), |g| g.totals()),
        ]
    }

    /// Commits `record` with the next group commit of its kind, on this
    /// thread (which must not be running an async runtime): returns only
    /// after the commit, or fails within `query_timeout` unwritten.
    fn commit<R, T>(
        &self,
        gc: &Option<GroupCommit<R, T>>,
        record: R,
        what: &'static str,
    ) -> Result<T, Error> {
        let gc = gc
            .as_ref()
            .ok_or_else(|| Error::Write(format!("{what}: group commit not started")))?;
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
        if let Some(j) = &self.journal {
            j.append(Entry::Accounting(status, rec), self.inner.query_timeout)?;
            return Ok(AcctOutcome::Written);
        }
        self.commit(&self.acct_gc, (status, rec), "accounting")
    }

    /// Records one radpostauth row, in the journal when it is open, else
    /// with the next group commit; blocks this thread until then.
    pub fn commit_postauth(&self, rec: PostAuthRecord) -> Result<(), Error> {
        if let Some(j) = &self.journal {
            return j.append(Entry::PostAuth(rec), self.inner.query_timeout);
        }
        self.commit(&self.postauth_gc, rec, "post-auth")
    }

    /// Opens the journal in `dir` (`durability = journal`) and starts its
    /// shipper: from then on [`Store::commit_accounting`] and
    /// [`Store::commit_postauth`] answer once a record is durable on local
    /// disk. `host` names this server in `rlm_rust_journal`.
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
        self.journal = Some(journal);
        self.shipper = Some(shipper);
        Ok(())
    }

    /// The journal's state, when it is open.
    pub fn journal_status(&self) -> Option<JournalStatus> {
        let core = &self.journal.as_ref()?.core;
        let c = &self.shipper.as_ref()?.counters;
        let durable = core.durable();
        let applied = core.applied.load(std::sync::atomic::Ordering::Relaxed);
        Some(JournalStatus {
            dir: core.dir.clone(),
            id: core.id.clone(),
            durable,
            applied,
            pending: durable.saturating_sub(applied),
            bytes: core.bytes(),
            shipped: c.shipped.load(std::sync::atomic::Ordering::Relaxed),
            transactions: c.transactions.load(std::sync::atomic::Ordering::Relaxed),
            set_aside: c.set_aside.load(std::sync::atomic::Ordering::Relaxed),
        })
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

/// One kind of group-committed record.
pub(crate) trait Batch: Send + Sync + 'static {
    type R: Send + Sync + 'static;
    type T: Send + 'static;
    /// Writes `recs` in as few commits as possible; one result per record.
    fn write<'a>(
        inner: &'a Inner,
        pool: &'a Pool,
        recs: Vec<&'a Self::R>,
    ) -> impl Future<Output = Vec<Result<Self::T, String>>> + 'a;
}
