//! The database sink (`durability = database`, and what the journal's
//! absence leaves): group commits of each kind, many requests in one
//! transaction, each caller released after the commit.

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::commit::GroupCommit;
use crate::store::{make_pool, Inner};
use crate::Error;

/// Most records one commit carries.
const BATCH_MAX: usize = 256;
/// Records waiting for a commit at most; beyond, callers fail at once.
pub(crate) const QUEUE_MAX: usize = 8192;
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
            inner.metrics.batch(B::KIND, recs.len());
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

/// One kind of group-committed record.
pub(crate) trait Batch: Send + Sync + 'static {
    type R: Send + Sync + 'static;
    type T: Send + 'static;
    /// Its label in the batch-size metric.
    const KIND: crate::metrics::BatchKind;
    /// Writes `recs` in as few commits as possible; one result per record.
    fn write<'a>(
        inner: &'a Inner,
        pool: &'a Pool,
        recs: Vec<&'a Self::R>,
    ) -> impl Future<Output = Vec<Result<Self::T, String>>> + 'a;
}
