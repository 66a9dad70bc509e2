//! The shipper: applies the journal ([`super::journal`]) to PostgreSQL in
//! order, thousands of records per transaction, exactly once. The journal's
//! position (`rlm_rust_journal.applied_seq`) is updated in the transaction
//! that applies the records, and only from the value it was read as, so a
//! crash (or a lost COMMIT reply) between the rows and the bookkeeping can
//! neither lose nor repeat a record: after any doubt the position is read
//! again. A record PostgreSQL refuses is set aside in
//! `rlm_rust_dead_letter` and the records behind it go on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};

use super::journal::{parse, read_at, read_up_to, Core, Entry};
use super::radacct::{apply_accounting, InFlight};
use super::radpostauth::insert_postauth_on;
use super::{refused, why};
use crate::accounting::{AcctRecord, AcctStatus};
use crate::postauth::{self, PostAuthRecord};
use crate::store::{make_pool, Inner};
use crate::Error;

/// Records one transaction carries at most.
const SHIP_MAX: usize = 5000;
/// One shipping transaction's deadline (it carries thousands of records,
/// so `query_timeout` is not its measure).
const SHIP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the shipper lets records gather, while they keep coming,
/// before a transaction that would carry fewer than [`SHIP_MAX`]: fewer,
/// larger transactions cost PostgreSQL less per record (a commit, a WAL
/// flush each), for a lag of this much at most.
const LINGER: Duration = Duration::from_millis(50);
/// No new record for this long ends the gathering: when the load stops,
/// its last records are applied at once.
const IDLE: Duration = Duration::from_millis(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the operator (and the tests) can see of the shipper.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) shipped: AtomicU64,
    pub(crate) transactions: AtomicU64,
    pub(crate) set_aside: AtomicU64,
}

/// The running shipper thread; stopped (after shipping what is durable,
/// for a few seconds at most) when dropped.
pub(crate) struct Shipper {
    stop: Arc<AtomicBool>,
    core: Arc<Core>,
    /// In a Mutex only so that the Store stays `Sync`.
    done: std::sync::Mutex<mpsc::Receiver<()>>,
    pub(crate) counters: Arc<Counters>,
}

impl Shipper {
    pub(crate) fn start(
        inner: Arc<Inner>,
        core: Arc<Core>,
        host: String,
    ) -> Result<Shipper, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (tx, done) = mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Pool(format!("shipper runtime: {e}")))?;
        let pool = make_pool(&inner.pg, 1, SHIP_TIMEOUT, inner.connect_timeout)?;
        let run = Run {
            inner,
            core: Arc::clone(&core),
            pool,
            host,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
        };
        std::thread::Builder::new()
            .name("rlm_rust-ship".into())
            .spawn(move || {
                rt.block_on(run.run());
                drop(rt);
                let _ = tx.send(());
            })
            .map_err(|e| Error::Pool(format!("shipper thread: {e}")))?;
        Ok(Shipper {
            stop,
            core,
            done: std::sync::Mutex::new(done),
            counters,
        })
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.core.wake();
        // What is not shipped by then stays in the journal for the next start.
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let _ = done.recv_timeout(Duration::from_secs(5));
    }
}

struct Run {
    inner: Arc<Inner>,
    core: Arc<Core>,
    pool: Pool,
    host: String,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

/// Where the shipper reads: a segment, an offset in it, and the number of
/// the record there.
struct Reader {
    seg: Option<(std::fs::File, u64)>,
    offset: u64,
    next: u64,
    /// Bytes of the segment read ahead, from file offset `buf_at`: one
    /// read for many records.
    buf: Vec<u8>,
    buf_at: u64,
}

/// Bytes read ahead at a time.
const READ_AHEAD: usize = 1 << 20;

impl Reader {
    fn at(next: u64) -> Reader {
        Reader {
            seg: None,
            offset: 0,
            next,
            buf: Vec::new(),
            buf_at: 0,
        }
    }

    /// The record at `self.offset`, from the read-ahead when it holds it
    /// whole, else from a new read (also when what was read ahead does not
    /// check out: a write that failed and was cut off may have left bytes
    /// that were written over since).
    fn record(&mut self) -> Result<Option<(Vec<u8>, u64)>, String> {
        let (file, _) = self.seg.as_ref().expect("a segment is open");
        let within =
            self.offset >= self.buf_at && self.offset <= self.buf_at + self.buf.len() as u64;
        if within {
            let rel = (self.offset - self.buf_at) as usize;
            if let Ok(Some((p, n))) = parse(&self.buf[rel..], self.offset, self.next) {
                return Ok(Some((p.to_vec(), n)));
            }
        }
        self.buf.resize(READ_AHEAD, 0);
        let got = read_up_to(file, &mut self.buf, self.offset)?;
        self.buf.truncate(got);
        self.buf_at = self.offset;
        match parse(&self.buf, self.offset, self.next)? {
            Some((p, n)) => Ok(Some((p.to_vec(), n))),
            // Longer than the read-ahead, or not whole yet.
            None => read_at(file, self.offset, self.next),
        }
    }

    /// Up to `max` durable records from `self.next` on (records up to
    /// `durable`).
    fn read(&mut self, core: &Core, durable: u64, max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while self.next <= durable && out.len() < max {
            if self.seg.is_none() && !self.open(core) {
                break;
            }
            match self.record() {
                Ok(Some((payload, len))) => {
                    out.push((self.next, payload));
                    self.offset += len;
                    self.next += 1;
                }
                // The end of this segment: the next one starts here.
                Ok(None) => {
                    let starts_next = super::journal::lock(&core.segments)
                        .iter()
                        .any(|s| s.first_seq == self.next);
                    if !starts_next {
                        break;
                    }
                    self.seg = None;
                }
                Err(e) => {
                    // A durable record that does not read back: the disk
                    // lost it. What follows in other segments is still good.
                    let next_seg = super::journal::lock(&core.segments)
                        .iter()
                        .map(|s| s.first_seq)
                        .find(|&f| f > self.next);
                    let path = core.dir.display();
                    match next_seg {
                        Some(f) => {
                            log::error!(
                                "journal {path}: record {} unreadable ({e}): records {}..{} are lost",
                                self.next,
                                self.next,
                                f - 1
                            );
                            self.next = f;
                            self.seg = None;
                        }
                        None => {
                            log::error!(
                                "journal {path}: record {} unreadable ({e}): records {}..{durable} are lost",
                                self.next,
                                self.next
                            );
                            self.next = durable + 1;
                            self.seg = None;
                        }
                    }
                }
            }
        }
        out
    }

    /// Opens the segment holding `self.next`, positioned at it.
    fn open(&mut self, core: &Core) -> bool {
        let seg = super::journal::lock(&core.segments)
            .iter()
            .rev()
            .find(|s| s.first_seq <= self.next)
            .cloned();
        let Some(seg) = seg else {
            return false;
        };
        let file = match std::fs::File::open(&seg.path) {
            Ok(f) => f,
            Err(e) => {
                log::error!("journal: cannot open {}: {e}", seg.path.display());
                return false;
            }
        };
        let (mut offset, mut seq) = (0, seg.first_seq);
        while seq < self.next {
            match read_at(&file, offset, seq) {
                Ok(Some((_, len))) => {
                    offset += len;
                    seq += 1;
                }
                _ => break,
            }
        }
        self.next = seq;
        self.offset = offset;
        self.buf.clear();
        self.buf_at = offset;
        self.seg = Some((file, seg.first_seq));
        true
    }
}

impl Run {
    async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut failing: Option<(Instant, String)> = None;
        'outer: loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let mut applied = match self.position().await {
                Ok(a) => a,
                Err(e) => {
                    self.failed(&mut failing, e);
                    self.pause(&mut backoff).await;
                    continue;
                }
            };
            self.core.release(applied);
            let mut reader = Reader::at(applied + 1);
            loop {
                let stopping = self.stop.load(Ordering::Relaxed);
                let mut durable = match stopping {
                    true => self.core.durable(),
                    false => self.core.wait_beyond(applied, Duration::from_millis(200)),
                };
                if durable > applied && !stopping {
                    let until = Instant::now() + LINGER;
                    while durable - applied < SHIP_MAX as u64 {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        let before = durable;
                        durable = self.core.wait_beyond(before, left.min(IDLE));
                        if durable == before {
                            break;
                        }
                    }
                }
                if durable <= applied {
                    if stopping {
                        break 'outer;
                    }
                    continue;
                }
                let batch = reader.read(&self.core, durable, SHIP_MAX);
                let Some(&(last, _)) = batch.last() else {
                    // Lost records (logged by the reader): move past them.
                    if reader.next > applied + 1 {
                        if let Err(e) = self.ship(applied, reader.next - 1, &[]).await {
                            self.failed(&mut failing, e);
                            self.pause(&mut backoff).await;
                            continue 'outer;
                        }
                        applied = reader.next - 1;
                    }
                    continue;
                };
                match self.ship(applied, last, &batch).await {
                    Ok(()) => {
                        applied = last;
                        self.core.release(applied);
                        backoff = BACKOFF_MIN;
                        if let Some((since, _)) = failing.take() {
                            log::info!(
                                "journal: PostgreSQL takes records again after {:.1} s",
                                since.elapsed().as_secs_f64()
                            );
                            *super::journal::lock(&self.core.last_error) = None;
                        }
                    }
                    Err(e) => {
                        self.failed(&mut failing, e);
                        if stopping {
                            break 'outer;
                        }
                        self.pause(&mut backoff).await;
                        // The COMMIT may have happened: read the position again.
                        continue 'outer;
                    }
                }
            }
        }
    }

    fn failed(&self, failing: &mut Option<(Instant, String)>, e: String) {
        self.inner.metrics.db_error();
        match failing {
            None => {
                log::error!(
                    "journal: cannot apply records to PostgreSQL ({e}); they wait in {} and are retried",
                    self.core.dir.display()
                );
                *failing = Some((Instant::now(), e.clone()));
            }
            Some((_, last)) if *last != e => {
                log::warn!("journal: still cannot apply records ({e})");
                *last = e.clone();
            }
            Some(_) => {}
        }
        *super::journal::lock(&self.core.last_error) = Some(e);
    }

    async fn pause(&self, backoff: &mut Duration) {
        let until = Instant::now() + *backoff;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
    }

    async fn client(&self) -> Result<Object, String> {
        tokio::time::timeout(SHIP_TIMEOUT, self.inner.client_of(&self.pool))
            .await
            .map_err(|_| "no connection within the deadline".to_string())?
            .map_err(|e| why(&e))
    }

    /// The position PostgreSQL holds for this journal (made 0 if new).
    async fn position(&self) -> Result<u64, String> {
        let client = self.client().await?;
        let id = &self.core.id;
        let dir = self.core.dir.display().to_string();
        let row = tokio::time::timeout(SHIP_TIMEOUT, async {
            client
                .execute(
                    "INSERT INTO rlm_rust_journal (journal_id, host, dir, applied_seq) \
                     VALUES ($1, $2, $3, 0) ON CONFLICT (journal_id) DO NOTHING",
                    &[id, &self.host, &dir],
                )
                .await?;
            client
                .query_one(
                    "SELECT applied_seq FROM rlm_rust_journal WHERE journal_id = $1",
                    &[id],
                )
                .await
        })
        .await
        .map_err(|_| "reading the journal position timed out".to_string())?
        .map_err(|e| why(&Error::Db(e)))?;
        let applied = row.get::<_, i64>("applied_seq").max(0) as u64;
        let durable = self.core.durable();
        if applied > durable {
            // The journal's files are older than its position (restored
            // from a backup, or removed by hand): what is numbered from
            // here on is new and must not be skipped.
            log::error!(
                "journal {dir}: PostgreSQL has applied up to record {applied}, the journal ends at \
                 {durable}; continuing from {durable}"
            );
            client
                .execute(
                    "UPDATE rlm_rust_journal SET applied_seq = $2, updated_at = now() WHERE journal_id = $1",
                    &[id, &(durable as i64)],
                )
                .await
                .map_err(|e| why(&Error::Db(e)))?;
            return Ok(durable);
        }
        Ok(applied)
    }

    /// Applies `batch` (records `from + 1 ..= to`) in one transaction with
    /// the new position.
    async fn ship(&self, from: u64, to: u64, batch: &[(u64, Vec<u8>)]) -> Result<(), String> {
        let guard = InFlight(Some(self.client().await?));
        let client = guard.get();
        let work = async {
            let mut entries = Vec::with_capacity(batch.len());
            let mut bad = Vec::new();
            for (seq, payload) in batch {
                match Entry::decode(payload) {
                    Ok(e) => entries.push((*seq, e)),
                    Err(reason) => bad.push((*seq, payload.as_slice(), reason)),
                }
            }
            client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL statement_timeout = {}",
                    SHIP_TIMEOUT.as_millis()
                ))
                .await?;
            let mut aside = bad.len();
            if let Err(e) = apply(client, &entries).await {
                if !refused(&e) {
                    return Err(e);
                }
                client.batch_execute("ROLLBACK; BEGIN").await?;
                client
                    .batch_execute(&format!(
                        "SET LOCAL statement_timeout = {}",
                        SHIP_TIMEOUT.as_millis()
                    ))
                    .await?;
                aside += self.apply_or_set_aside(client, &entries).await?;
            }
            for (seq, payload, reason) in &bad {
                set_aside(client, &self.core.id, *seq, "unknown", reason, payload, "").await?;
            }
            let moved = client
                .execute(
                    "UPDATE rlm_rust_journal SET applied_seq = $2, host = $3, updated_at = now() \
                     WHERE journal_id = $1 AND applied_seq = $4",
                    &[&self.core.id, &(to as i64), &self.host, &(from as i64)],
                )
                .await?;
            if moved != 1 {
                client.batch_execute("ROLLBACK").await?;
                return Err(Error::Write(
                    "the journal position moved under this shipper".into(),
                ));
            }
            client.batch_execute("COMMIT").await?;
            Ok(aside)
        };
        match tokio::time::timeout(SHIP_TIMEOUT, work).await {
            Ok(Ok(aside)) => {
                guard.finished();
                self.counters
                    .shipped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .metrics
                    .batch(crate::metrics::BatchKind::Journal, batch.len());
                if aside > 0 {
                    self.counters
                        .set_aside
                        .fetch_add(aside as u64, Ordering::Relaxed);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(why(&e)),
            Err(_) => Err(format!(
                "applying {} records took longer than {} s",
                batch.len(),
                SHIP_TIMEOUT.as_secs()
            )),
        }
    }

    /// Applies `entries` inside the open transaction, halving the runs that
    /// PostgreSQL refuses until each refused record is alone, and setting
    /// those aside; in order, so records of one session keep theirs.
    async fn apply_or_set_aside(
        &self,
        client: &Object,
        entries: &[(u64, Entry)],
    ) -> Result<usize, Error> {
        let mut aside = 0;
        let mut todo = Vec::new();
        todo.push(0..entries.len());
        while let Some(part) = todo.pop() {
            if part.is_empty() {
                continue;
            }
            client.batch_execute("SAVEPOINT part").await?;
            match apply(client, &entries[part.clone()]).await {
                Ok(()) => client.batch_execute("RELEASE SAVEPOINT part").await?,
                Err(e) if refused(&e) => {
                    client.batch_execute("ROLLBACK TO SAVEPOINT part").await?;
                    if part.len() == 1 {
                        let (seq, entry) = &entries[part.start];
                        let reason = why(&e);
                        log::warn!(
                            "journal: PostgreSQL refused {} record {seq} ({reason}); set aside in rlm_rust_dead_letter",
                            entry.kind()
                        );
                        let text = postauth::storable_text(&format!("{entry:?}")).into_owned();
                        set_aside(
                            client,
                            &self.core.id,
                            *seq,
                            entry.kind(),
                            &reason,
                            &entry.encode(),
                            &text,
                        )
                        .await?;
                        aside += 1;
                    } else {
                        let mid = part.start + part.len() / 2;
                        todo.push(mid..part.end);
                        todo.push(part.start..mid);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(aside)
    }
}

/// Applies `entries` in order on `client`, inside its open transaction:
/// each run of one kind in a few statements.
pub(crate) async fn apply(client: &Object, entries: &[(u64, Entry)]) -> Result<(), Error> {
    let mut i = 0;
    while i < entries.len() {
        let acct = matches!(entries[i].1, Entry::Accounting(..));
        let end = entries[i..]
            .iter()
            .position(|(_, e)| matches!(e, Entry::Accounting(..)) != acct)
            .map_or(entries.len(), |n| i + n);
        let run = &entries[i..end];
        if acct {
            let clean: Vec<(AcctStatus, std::borrow::Cow<'_, AcctRecord>)> = run
                .iter()
                .filter_map(|(_, e)| match e {
                    Entry::Accounting(s, r) => Some((*s, r.storable())),
                    Entry::PostAuth(_) => None,
                })
                .collect();
            let recs: Vec<(AcctStatus, &AcctRecord)> =
                clean.iter().map(|(s, r)| (*s, &**r)).collect();
            let mut out = vec![None; recs.len()];
            apply_accounting(client, &recs, &mut out, true).await?;
        } else {
            let recs: Vec<&PostAuthRecord> = run
                .iter()
                .filter_map(|(_, e)| match e {
                    Entry::PostAuth(r) => Some(r),
                    Entry::Accounting(..) => None,
                })
                .collect();
            insert_postauth_on(client, &recs).await?;
        }
        i = end;
    }
    Ok(())
}

async fn set_aside(
    client: &Object,
    journal_id: &str,
    seq: u64,
    kind: &str,
    reason: &str,
    record: &[u8],
    text: &str,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO rlm_rust_dead_letter (journal_id, seq, kind, reason, record, record_text) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (journal_id, seq) DO NOTHING",
            &[
                &journal_id,
                &(seq as i64),
                &kind,
                &postauth::storable_text(reason).as_ref(),
                &record,
                &text,
            ],
        )
        .await?;
    Ok(())
}

/// What [`crate::store::Store::replay_dead_letters`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Applied and removed from `rlm_rust_dead_letter`.
    pub applied: u64,
    /// Refused again: left in place with the new reason.
    pub refused: u64,
}

impl crate::store::Store {
    /// Applies the records set aside in `rlm_rust_dead_letter` again, oldest
    /// first, each in its own transaction with its removal: what PostgreSQL
    /// now takes is written and removed, what it still refuses stays with
    /// the new reason.
    pub async fn replay_dead_letters(&self) -> Result<Replayed, Error> {
        let inner = &self.inner;
        let client = inner.client().await?;
        let rows = client
            .query(
                "SELECT id, record FROM rlm_rust_dead_letter ORDER BY id",
                &[],
            )
            .await?;
        let mut done = Replayed::default();
        for row in rows {
            let id: i64 = row.get("id");
            let record: Vec<u8> = row.get("record");
            let entry = match Entry::decode(&record) {
                Ok(e) => e,
                Err(reason) => {
                    client
                        .execute(
                            "UPDATE rlm_rust_dead_letter SET reason = $2 WHERE id = $1",
                            &[&id, &reason],
                        )
                        .await?;
                    done.refused += 1;
                    continue;
                }
            };
            client.batch_execute("BEGIN").await?;
            let applied = apply(&client, &[(0, entry)]).await;
            match applied {
                Ok(()) => {
                    client
                        .execute("DELETE FROM rlm_rust_dead_letter WHERE id = $1", &[&id])
                        .await?;
                    client.batch_execute("COMMIT").await?;
                    done.applied += 1;
                }
                Err(e) if refused(&e) => {
                    client.batch_execute("ROLLBACK").await?;
                    let reason = why(&e);
                    client
                        .execute(
                            "UPDATE rlm_rust_dead_letter SET reason = $2 WHERE id = $1",
                            &[&id, &postauth::storable_text(&reason).as_ref()],
                        )
                        .await?;
                    done.refused += 1;
                }
                Err(e) => {
                    // Unknown state: the connection is not reused.
                    drop(Object::take(client));
                    return Err(e);
                }
            }
        }
        Ok(done)
    }
}
