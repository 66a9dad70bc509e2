//! Group commit led by the callers' own threads.
//!
//! A caller queues its record and waits. If fewer than `max_leaders`
//! commits are under way, the caller becomes a leader instead: it takes
//! everything queued (up to `max_batch` records), writes it in one commit
//! on its own thread, and hands each waiter its result. A leader whose own
//! record is done goes on with what queued meanwhile for up to
//! `LEAD_BUDGET` (2 ms), then passes the lead to the oldest waiter, if any. Nothing
//! else runs: no writer thread to wake and no hop to an I/O thread, so a
//! request costs one wake-up (its own, by the leader) and the leader's
//! commit is driven by the thread that needs it.
//!
//! This is plain synchronisation, with no database in it: the commit is
//! the `write` function given to [`GroupCommit::new`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Why a record was not committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// `max_queue` records were already waiting.
    Full,
    /// Not committed within the caller's wait. A record already taken into
    /// a commit may still be written; it is never reported written.
    Timeout,
    /// The commit failed: the writer's message.
    Failed(String),
}

/// How long a leader whose own record is done keeps committing for others
/// before it passes the lead on: a small delay to its own answer.
const LEAD_BUDGET: Duration = Duration::from_millis(2);

/// The commit function: one result per record, in order.
type WriteFn<R, T> = dyn Fn(&[&R]) -> Vec<Result<T, String>> + Send + Sync;

enum Phase<T> {
    /// In the queue.
    Queued,
    /// Passed the lead by a finishing leader; still in the queue.
    Lead,
    /// Taken into a commit under way.
    Taken,
    Done(Result<T, String>),
}

struct Ticket<T> {
    phase: Mutex<Phase<T>>,
    thread: Thread,
}

struct Queue<R, T> {
    waiting: VecDeque<(R, Arc<Ticket<T>>)>,
    leaders: usize,
}

pub struct GroupCommit<R, T> {
    queue: Mutex<Queue<R, T>>,
    max_leaders: usize,
    max_batch: usize,
    max_queue: usize,
    /// See [`LEAD_BUDGET`] and [`GroupCommit::lead_budget`].
    lead_budget: Duration,
    /// Commits made and records they carried, for the operator.
    commits: AtomicU64,
    records: AtomicU64,
    write: Box<WriteFn<R, T>>,
}

/// A poisoned lock means a panic elsewhere while holding it; the data
/// (a queue, a phase) is still consistent at every unlock point.
fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R, T> GroupCommit<R, T> {
    pub fn new(
        max_leaders: usize,
        max_batch: usize,
        max_queue: usize,
        write: impl Fn(&[&R]) -> Vec<Result<T, String>> + Send + Sync + 'static,
    ) -> Self {
        GroupCommit {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                leaders: 0,
            }),
            max_leaders: max_leaders.max(1),
            max_batch: max_batch.max(1),
            max_queue,
            lead_budget: LEAD_BUDGET,
            commits: AtomicU64::new(0),
            records: AtomicU64::new(0),
            write: Box::new(write),
        }
    }

    /// How long a leader whose own record is done goes on committing for
    /// others (default [`LEAD_BUDGET`]). Worth it when a commit is slow
    /// next to a wake-up (a database round trip); not for a local
    /// `fdatasync`, where the leader's own answer would wait for it.
    pub fn lead_budget(mut self, budget: Duration) -> Self {
        self.lead_budget = budget;
        self
    }

    /// How many commits were made, and how many records they carried.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
        )
    }

    /// Commits `record` with others and returns its result, within `wait`
    /// (the commit itself is bounded by the write function).
    pub fn submit(&self, record: R, wait: Duration) -> Result<T, CommitError> {
        let start = Instant::now();
        let deadline = start + wait;
        let me = Arc::new(Ticket {
            phase: Mutex::new(Phase::Queued),
            thread: thread::current(),
        });
        let mut lead = {
            let mut q = lock(&self.queue);
            if q.waiting.len() >= self.max_queue {
                return Err(CommitError::Full);
            }
            q.waiting.push_back((record, Arc::clone(&me)));
            let lead = q.leaders < self.max_leaders;
            if lead {
                q.leaders += 1;
            }
            lead
        };
        loop {
            if lead {
                self.lead(&me, start);
                lead = false;
            }
            {
                let mut phase = lock(&me.phase);
                match std::mem::replace(&mut *phase, Phase::Taken) {
                    Phase::Done(r) => return r.map_err(CommitError::Failed),
                    Phase::Lead => {
                        *phase = Phase::Queued;
                        lead = true;
                        continue;
                    }
                    other => *phase = other,
                }
            }
            let now = Instant::now();
            if now < deadline {
                thread::park_timeout(deadline - now);
                continue;
            }
            // Out of time: leave the queue unless the record is already
            // in a commit or the lead was passed here (which must be run).
            let mut q = lock(&self.queue);
            let phase = lock(&me.phase);
            match *phase {
                Phase::Queued => {
                    drop(phase);
                    q.waiting.retain(|(_, t)| !Arc::ptr_eq(t, &me));
                    return Err(CommitError::Timeout);
                }
                Phase::Taken => return Err(CommitError::Timeout),
                Phase::Lead | Phase::Done(_) => {}
            }
        }
    }

    /// Commits batches until this leader's own record is done, then passes
    /// the lead on (or gives it up when nobody waits).
    fn lead(&self, me: &Arc<Ticket<T>>, since: Instant) {
        loop {
            let batch: Vec<(R, Arc<Ticket<T>>)> = {
                let mut q = lock(&self.queue);
                let n = q.waiting.len().min(self.max_batch);
                if n == 0 {
                    q.leaders -= 1;
                    return;
                }
                let batch: Vec<_> = q.waiting.drain(..n).collect();
                let mut passed = 0;
                for (_, t) in &batch {
                    let mut phase = lock(&t.phase);
                    // A lead passed to a waiter that has not taken it up
                    // yet: this leader does its work, so the lead ends.
                    if matches!(*phase, Phase::Lead) {
                        passed += 1;
                    }
                    *phase = Phase::Taken;
                }
                q.leaders -= passed;
                batch
            };
            let recs: Vec<&R> = batch.iter().map(|(r, _)| r).collect();
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.records.fetch_add(recs.len() as u64, Ordering::Relaxed);
            let mut results = (self.write)(&recs).into_iter();
            let mine_done = batch.iter().any(|(_, t)| Arc::ptr_eq(t, me))
                || matches!(*lock(&me.phase), Phase::Done(_));
            for (_, t) in &batch {
                let r = results
                    .next()
                    .unwrap_or_else(|| Err("the writer gave no result for a record".into()));
                *lock(&t.phase) = Phase::Done(r);
                if !Arc::ptr_eq(t, me) {
                    t.thread.unpark();
                }
            }
            // A leader on the CPU goes on with what queued meanwhile for a
            // while: waking another thread to lead puts a scheduling delay
            // between every two commits of a busy server.
            if mine_done
                && since.elapsed() < self.lead_budget
                && !lock(&self.queue).waiting.is_empty()
            {
                continue;
            }
            if mine_done {
                // The oldest waiter not already given a lead by another
                // finishing leader; each lead is one of `leaders`.
                let mut q = lock(&self.queue);
                let next = q.waiting.iter().find_map(|(_, t)| {
                    let mut phase = lock(&t.phase);
                    matches!(*phase, Phase::Queued).then(|| {
                        *phase = Phase::Lead;
                        Arc::clone(t)
                    })
                });
                match next {
                    Some(t) => t.thread.unpark(),
                    None => q.leaders -= 1,
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_record_is_written_once_and_answered_with_its_own_result() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicUsize::new(0));
        let (w, c) = (Arc::clone(&written), Arc::clone(&commits));
        let gc = Arc::new(GroupCommit::new(2, 8, 1000, move |recs: &[&u32]| {
            c.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(1));
            lock(&w).extend(recs.iter().map(|r| **r));
            recs.iter()
                .map(|r| {
                    if **r % 7 == 0 {
                        Err(format!("bad {r}"))
                    } else {
                        Ok(**r * 2)
                    }
                })
                .collect()
        }));
        let threads: Vec<_> = (0..16u32)
            .map(|t| {
                let gc = Arc::clone(&gc);
                thread::spawn(move || {
                    for i in 0..50u32 {
                        let v = t * 1000 + i;
                        let r = gc.submit(v, Duration::from_secs(10));
                        if v % 7 == 0 {
                            assert_eq!(r, Err(CommitError::Failed(format!("bad {v}"))));
                        } else {
                            assert_eq!(r, Ok(v * 2));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut all = lock(&written).clone();
        all.sort_unstable();
        let mut want: Vec<u32> = (0..16u32)
            .flat_map(|t| (0..50).map(move |i| t * 1000 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(all, want);
        // Sixteen callers over two leaders: commits carry several records.
        assert!(commits.load(Ordering::Relaxed) < 800 / 2);
        assert_eq!(gc.totals(), (commits.load(Ordering::Relaxed) as u64, 800));
        assert_eq!(lock(&gc.queue).leaders, 0);
    }

    #[test]
    fn a_caller_out_of_time_leaves_the_queue_unwritten() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&written);
        let gc = Arc::new(GroupCommit::new(1, 1, 10, move |recs: &[&u32]| {
            if *recs[0] == 1 {
                thread::sleep(Duration::from_millis(300));
            }
            lock(&w).push(*recs[0]);
            vec![Ok(()); recs.len()]
        }));
        let slow = {
            let gc = Arc::clone(&gc);
            thread::spawn(move || gc.submit(1, Duration::from_secs(5)))
        };
        thread::sleep(Duration::from_millis(50));
        // The only leader is busy for 300 ms; this caller gives up first.
        assert_eq!(
            gc.submit(2, Duration::from_millis(50)),
            Err(CommitError::Timeout)
        );
        assert_eq!(slow.join().unwrap(), Ok(()));
        assert_eq!(gc.submit(3, Duration::from_secs(1)), Ok(()));
        assert_eq!(*lock(&written), vec![1, 3]);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let gc = Arc::new(GroupCommit::new(1, 1, 1, |recs: &[&u32]| {
            thread::sleep(Duration::from_millis(200));
            vec![Ok(()); recs.len()]
        }));
        let a = {
            let gc = Arc::clone(&gc);
            thread::spawn(move || gc.submit(1, Duration::from_secs(5)))
        };
        thread::sleep(Duration::from_millis(30));
        let b = {
            let gc = Arc::clone(&gc);
            thread::spawn(move || gc.submit(2, Duration::from_secs(5)))
        };
        thread::sleep(Duration::from_millis(30));
        assert_eq!(gc.submit(3, Duration::from_secs(5)), Err(CommitError::Full));
        assert_eq!(a.join().unwrap(), Ok(()));
        assert_eq!(b.join().unwrap(), Ok(()));
    }
}
