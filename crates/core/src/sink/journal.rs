//! The durable local journal (`durability = journal`): every accounting and
//! post-auth record is appended to a file on local disk and made durable by
//! a group `fdatasync` before its request is answered; the shipper
//! ([`super::shipper`]) applies it to PostgreSQL afterwards. A database that
//! is away or slow then delays rows, never answers.
//!
//! Layout of the directory:
//! * `id`: the journal's random id, the key of its position in PostgreSQL;
//! * `lock`: held (`flock`) by the one process that owns the journal;
//! * `<first seq, 20 digits>.journal`: segments, each a run of records
//!   `[payload length u32 LE][crc32 u32 LE][seq u64 LE][payload]`, the CRC
//!   over the sequence number and the payload, the payload an [`Entry`] in
//!   postcard. Sequence numbers follow each other across segments.
//!
//! A record is acknowledged only after the `fdatasync` that covers it, so a
//! record cut short by a crash (a torn tail) was never acknowledged: it is
//! discarded at the next start, found by its length or its CRC.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::accounting::{AcctRecord, AcctStatus};
use crate::commit::{CommitError, GroupCommit};
use crate::postauth::PostAuthRecord;

/// One journaled record. Moved once into the queue and encoded there: a
/// box around the larger variant would only add an allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    Accounting(AcctStatus, AcctRecord),
    PostAuth(PostAuthRecord),
}

impl Entry {
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Accounting(..) => "accounting",
            Entry::PostAuth(_) => "post-auth",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("an Entry always serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Entry, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("undecodable record: {e}"))
    }
}

const HEADER: usize = 16;
/// A payload longer than this is corruption (records are a few hundred
/// bytes; every text field is bounded by the RADIUS packet).
const MAX_PAYLOAD: u32 = 1 << 20;
/// Records one `fdatasync` covers at most.
const BATCH_MAX: usize = 1024;
/// Records waiting for an `fdatasync` at most; beyond, callers fail at once.
const QUEUE_MAX: usize = 16384;

fn crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.journal")
}

fn segment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".journal")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
}

struct Writer {
    file: File,
    /// Of the current (last) segment: where the next record goes.
    file_len: u64,
    next_seq: u64,
    buf: Vec<u8>,
}

/// What the writer and the shipper share.
pub(crate) struct Core {
    pub(crate) dir: PathBuf,
    pub(crate) id: String,
    max_bytes: u64,
    segment_max: u64,
    writer: Mutex<Writer>,
    /// Oldest first; the last is the one written to. Never empty.
    pub(crate) segments: Mutex<VecDeque<Segment>>,
    /// The last durable sequence number (0: none), with its condition.
    durable: Mutex<u64>,
    durable_cv: Condvar,
    /// The shipper waits for a record after this one: a flush that does
    /// not reach it wakes nobody (no wake-up per flush under load).
    wake_beyond: AtomicU64,
    /// Bytes in all segments: what is bounded by `journal_max_bytes`.
    bytes: AtomicU64,
    /// The last sequence number the database holds, as the shipper saw it.
    pub(crate) applied: AtomicU64,
    /// When a "journal full" line was last logged (ms since `started`).
    full_logged: AtomicU64,
    started: Instant,
    /// The last record of each flush not yet applied, with when it became
    /// durable: the oldest gives the shipper's lag.
    flushes: Mutex<VecDeque<(u64, Instant)>>,
    /// Why the shipper last failed, for the "journal full" line.
    pub(crate) last_error: Mutex<Option<String>>,
    /// The accounting records not yet applied, by user, for the usage
    /// policies: PostgreSQL does not hold them yet, but they were
    /// acknowledged, so a session they open must count at once.
    pub(crate) pending: Mutex<crate::usage::PendingIndex>,
    /// Held while the journal is open: one process per directory.
    _lock: File,
}

pub(crate) fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `fsync` of a directory: makes a file created or removed in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_err(what: &str, path: &Path, e: io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

impl Core {
    /// Opens (creating it if needed) the journal in `dir`, takes its lock
    /// and cuts off a torn tail.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Core, String> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err("cannot create the journal directory", dir, e))?;
        let lock_path = dir.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err("cannot open", &lock_path, e))?;
        // Held until the file is closed, also released when the process dies.
        if rustix::fs::flock(
            &lock_file,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .is_err()
        {
            return Err(format!(
                "the journal directory {} is in use by another process (another radiusd, \
                 or another instance of this module with the same journal_dir)",
                dir.display()
            ));
        }
        let id = read_or_make_id(dir)?;
        let mut segments = VecDeque::new();
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| io_err("cannot read", dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Some((segment_seq(&name)?, e.path()))
            })
            .collect();
        names.sort();
        for (first_seq, path) in names {
            let len = fs::metadata(&path)
                .map_err(|e| io_err("cannot stat", &path, e))?
                .len();
            segments.push_back(Segment {
                first_seq,
                path,
                len,
            });
        }
        // Several segments fit in the bound, so applied ones can go while
        // the rest waits.
        let segment_max = (max_bytes / 8).clamp(64 * 1024, 16 << 20);
        if segments.is_empty() {
            let path = dir.join(segment_name(1));
            File::create(&path).map_err(|e| io_err("cannot create", &path, e))?;
            sync_dir(dir).map_err(|e| io_err("cannot sync", dir, e))?;
            segments.push_back(Segment {
                first_seq: 1,
                path,
                len: 0,
            });
        }
        let last = segments.back_mut().expect("not empty");
        let (valid_len, next_seq) = scan(&last.path, last.first_seq)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&last.path)
            .map_err(|e| io_err("cannot open", &last.path, e))?;
        let torn =
            zero_after(&file, valid_len).map_err(|e| io_err("cannot clear", &last.path, e))?;
        if torn > 0 {
            log::warn!(
                "journal {}: discarding a torn tail of {torn} bytes (never acknowledged)",
                last.path.display()
            );
        }
        preallocate(&file, segment_max).map_err(|e| io_err("cannot preallocate", &last.path, e))?;
        last.len = valid_len;
        let bytes = segments.iter().map(|s| s.len).sum();
        let pending = index_segments(&segments);
        Ok(Core {
            dir: dir.to_path_buf(),
            id,
            max_bytes,
            segment_max,
            writer: Mutex::new(Writer {
                file,
                file_len: valid_len,
                next_seq,
                buf: Vec::new(),
            }),
            segments: Mutex::new(segments),
            durable: Mutex::new(next_seq - 1),
            durable_cv: Condvar::new(),
            wake_beyond: AtomicU64::new(0),
            bytes: AtomicU64::new(bytes),
            applied: AtomicU64::new(0),
            full_logged: AtomicU64::new(u64::MAX),
            started: Instant::now(),
            flushes: Mutex::new(VecDeque::new()),
            last_error: Mutex::new(None),
            pending: Mutex::new(pending),
            _lock: lock_file,
        })
    }

    /// Appends `recs` and makes them durable: one result per record.
    fn append(&self, recs: &[&Entry]) -> Vec<Result<(), String>> {
        let fail = |why: String| (0..recs.len()).map(|_| Err(why.clone())).collect();
        let used = self.bytes.load(Ordering::Relaxed);
        if used >= self.max_bytes {
            self.log_full(used);
            return fail(format!(
                "journal full: {used} bytes not yet applied to PostgreSQL (journal_max_bytes = {})",
                self.max_bytes
            ));
        }
        let mut w = lock(&self.writer);
        if w.file_len >= self.segment_max {
            if let Err(e) = self.roll(&mut w) {
                log::error!("journal: {e}");
                return fail(e);
            }
        }
        let first = w.next_seq;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        for (i, rec) in recs.iter().enumerate() {
            let seq = first + i as u64;
            let payload = rec.encode();
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc(seq, &payload).to_le_bytes());
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&payload);
        }
        let at = w.file_len;
        let written = w
            .file
            .write_all_at(&buf, at)
            .and_then(|_| w.file.sync_data());
        if let Err(e) = written {
            // Nothing of this batch is acknowledged; what reached the file
            // is zeroed so that no start takes it for records.
            let _ = w.file.write_all_at(&vec![0; buf.len()], at);
            w.buf = buf;
            let why = format!("journal write failed: {e}");
            log::error!("{why} ({})", self.dir.display());
            return fail(why);
        }
        let n = buf.len() as u64;
        w.file_len += n;
        w.next_seq = first + recs.len() as u64;
        let last = w.next_seq - 1;
        w.buf = buf;
        if let Some(s) = lock(&self.segments).back_mut() {
            s.len += n;
        }
        drop(w);
        {
            // Before the records are durable for the shipper, so it cannot
            // apply (and prune) one before it is here.
            let mut pending = lock(&self.pending);
            for (i, rec) in recs.iter().enumerate() {
                if let Entry::Accounting(status, r) = rec {
                    pending.add(first + i as u64, *status, r);
                }
            }
        }
        lock(&self.flushes).push_back((last, Instant::now()));
        self.bytes.fetch_add(n, Ordering::Relaxed);
        *lock(&self.durable) = last;
        if last > self.wake_beyond.load(Ordering::Relaxed) {
            self.durable_cv.notify_all();
        }
        (0..recs.len()).map(|_| Ok(())).collect()
    }

    /// Starts a new segment at the next sequence number.
    fn roll(&self, w: &mut Writer) -> Result<(), String> {
        let path = self.dir.join(segment_name(w.next_seq));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err("cannot create", &path, e))?;
        preallocate(&file, self.segment_max).map_err(|e| io_err("cannot preallocate", &path, e))?;
        sync_dir(&self.dir).map_err(|e| io_err("cannot sync", &self.dir, e))?;
        w.file = file;
        w.file_len = 0;
        lock(&self.segments).push_back(Segment {
            first_seq: w.next_seq,
            path,
            len: 0,
        });
        Ok(())
    }

    fn log_full(&self, used: u64) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.full_logged.load(Ordering::Relaxed);
        if last != u64::MAX && now.saturating_sub(last) < 10_000 {
            return;
        }
        self.full_logged.store(now, Ordering::Relaxed);
        let why = lock(&self.last_error)
            .clone()
            .unwrap_or_else(|| "the shipper has not caught up".into());
        log::error!(
            "journal {} full ({used} bytes not yet applied, journal_max_bytes = {}): \
             accounting and post-auth requests fail until PostgreSQL takes records again \
             (NASes retransmit); last database error: {why}",
            self.dir.display(),
            self.max_bytes
        );
    }

    /// The last durable sequence number.
    pub(crate) fn durable(&self) -> u64 {
        *lock(&self.durable)
    }

    /// Waits until a record after `seq` is durable, or `wait` has passed.
    pub(crate) fn wait_beyond(&self, seq: u64, wait: Duration) -> u64 {
        // Set under the lock the writer takes before it looks: no flush
        // past `seq` can slip between this and the wait.
        let g = lock(&self.durable);
        self.wake_beyond.store(seq, Ordering::Relaxed);
        let (g, _) = self
            .durable_cv
            .wait_timeout_while(g, wait, |d| *d <= seq)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }

    /// Wakes whoever waits in [`Core::wait_beyond`] (shutdown).
    pub(crate) fn wake(&self) {
        self.durable_cv.notify_all();
    }

    /// Deletes the segments whose every record is at or before `applied`
    /// (never the one being written to).
    pub(crate) fn release(&self, applied: u64) {
        self.applied.store(applied, Ordering::Relaxed);
        lock(&self.pending).prune(applied);
        {
            let mut f = lock(&self.flushes);
            while f.front().is_some_and(|(seq, _)| *seq <= applied) {
                f.pop_front();
            }
        }
        let mut removed = false;
        loop {
            let mut segs = lock(&self.segments);
            if segs.len() < 2 || segs[1].first_seq > applied + 1 {
                break;
            }
            let s = segs.pop_front().expect("two or more");
            drop(segs);
            match fs::remove_file(&s.path) {
                Ok(()) => {
                    self.bytes.fetch_sub(s.len, Ordering::Relaxed);
                    removed = true;
                }
                Err(e) => {
                    log::warn!("journal: cannot remove {}: {e}", s.path.display());
                    lock(&self.segments).push_front(s);
                    break;
                }
            }
        }
        if removed {
            let _ = sync_dir(&self.dir);
        }
    }

    /// How long the oldest record not yet applied has been durable (zero
    /// when PostgreSQL has everything; records from before this start are
    /// counted from the start).
    pub(crate) fn lag(&self) -> Duration {
        let oldest = lock(&self.flushes).front().map(|(_, t)| *t);
        match oldest {
            Some(t) => t.elapsed(),
            None if self.applied.load(Ordering::Relaxed) < self.durable() => self.started.elapsed(),
            None => Duration::ZERO,
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The accounting records of every segment (those already applied are
/// pruned once the shipper has read its position).
fn index_segments(segments: &VecDeque<Segment>) -> crate::usage::PendingIndex {
    let mut idx = crate::usage::PendingIndex::default();
    for s in segments {
        let Ok(file) = File::open(&s.path) else {
            continue;
        };
        let (mut offset, mut seq) = (0, s.first_seq);
        while let Ok(Some((payload, len))) = read_at(&file, offset, seq) {
            if let Ok(Entry::Accounting(status, rec)) = Entry::decode(&payload) {
                idx.add(seq, status, &rec);
            }
            offset += len;
            seq += 1;
        }
    }
    idx
}

/// Writes zeros up to `size` (plus a quarter for the last batch) where the file
/// is shorter, and makes them durable. Records are then written over
/// zeros that are already allocated: the `fdatasync` of a batch writes
/// data only, no file size or block allocation, which is about a third
/// faster than appending (measured on ext4).
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    let want = size + size / 4;
    let mut len = file.metadata()?.len();
    if len >= want {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    while len < want {
        let n = (want - len).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], len)?;
        len += n as u64;
    }
    file.sync_all()
}

/// Zeroes whatever is not zero after `from` (a record cut short by a
/// crash: never acknowledged); how many bytes that spanned.
fn zero_after(file: &File, from: u64) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let (mut at, mut first, mut last) = (from, None, 0);
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
            first.get_or_insert(at + i as u64);
            let j = buf[..n].iter().rposition(|&b| b != 0).expect("one is");
            last = at + j as u64 + 1;
        }
        at += n as u64;
    }
    let Some(first) = first else {
        return Ok(0);
    };
    let zeros = vec![0u8; (last - first) as usize];
    file.write_all_at(&zeros, first)?;
    file.sync_all()?;
    Ok(last - from)
}

/// The length of the valid prefix of the segment at `path`, whose first
/// record is `first_seq`, and the sequence number after its last record.
fn scan(path: &Path, first_seq: u64) -> Result<(u64, u64), String> {
    let file = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
    let mut offset = 0;
    let mut seq = first_seq;
    loop {
        match read_at(&file, offset, seq) {
            Ok(Some((_, len))) => {
                offset += len;
                seq += 1;
            }
            Ok(None) | Err(_) => return Ok((offset, seq)),
        }
    }
}

/// The record at `offset` of `file`, which must be number `seq`: the
/// payload and the bytes the record takes. `Ok(None)` at the end of the
/// file or of what is whole in it; `Err` for a record that is whole but
/// wrong (CRC, number).
pub(crate) fn read_at(
    file: &File,
    offset: u64,
    seq: u64,
) -> Result<Option<(Vec<u8>, u64)>, String> {
    let mut bytes = vec![0u8; HEADER];
    let got = read_up_to(file, &mut bytes, offset)?;
    if got < HEADER {
        return Ok(None);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    if len <= MAX_PAYLOAD {
        bytes.resize(HEADER + len as usize, 0);
        let got = read_up_to(file, &mut bytes[HEADER..], offset + HEADER as u64)?;
        bytes.truncate(HEADER + got);
    }
    Ok(parse(&bytes, offset, seq)?.map(|(p, n)| (p.to_vec(), n)))
}

/// Reads into `buf` from `offset` until it is full or the file ends: the
/// bytes read.
pub(crate) fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> Result<usize, String> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(got)
}

/// The record at the start of `bytes` (the file from `offset` on, as far
/// as it was read), which must be number `seq`: its payload and the bytes
/// it takes. `Ok(None)` when it is not whole in `bytes`; `Err` when it is
/// whole but wrong (length, CRC, number).
pub(crate) fn parse(bytes: &[u8], offset: u64, seq: u64) -> Result<Option<(&[u8], u64)>, String> {
    if bytes.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let sum = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let got_seq = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    // The zeros a segment is preallocated with: the end of its records.
    if len == 0 && sum == 0 && got_seq == 0 {
        return Ok(None);
    }
    if len > MAX_PAYLOAD {
        return Err(format!("record length {len} at offset {offset}"));
    }
    let end = HEADER + len as usize;
    if bytes.len() < end {
        return Ok(None);
    }
    let payload = &bytes[HEADER..end];
    if crc(got_seq, payload) != sum {
        return Err(format!("checksum mismatch at offset {offset}"));
    }
    if got_seq != seq {
        return Err(format!(
            "record {got_seq} at offset {offset} where {seq} was expected"
        ));
    }
    Ok(Some((payload, end as u64)))
}

fn read_or_make_id(dir: &Path) -> Result<String, String> {
    let path = dir.join("id");
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot read", &path, e)),
    }
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| format!("journal id: {e}"))?;
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join("id.tmp");
    (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })()
    .map_err(|e| io_err("cannot write", &path, e))?;
    Ok(id)
}

/// The journal: [`Core`] behind a group `fdatasync`.
pub(crate) struct Journal {
    pub(crate) core: Arc<Core>,
    gc: GroupCommit<Entry, ()>,
}

impl Journal {
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Journal, String> {
        let core = Arc::new(Core::open(dir, max_bytes)?);
        let writer = Arc::clone(&core);
        let gc = GroupCommit::new(1, BATCH_MAX, QUEUE_MAX, move |recs: &[&Entry]| {
            writer.append(recs)
        })
        .lead_budget(Duration::ZERO);
        Ok(Journal { core, gc })
    }

    /// Appends `entry`; returns once it is durable, or fails within `wait`
    /// (then it is not acknowledged, though it may still be written).
    pub(crate) fn append(&self, entry: Entry, wait: Duration) -> Result<(), crate::Error> {
        self.gc.submit(entry, wait).map_err(|e| match e {
            CommitError::Full => {
                crate::Error::Write(format!("journal: {QUEUE_MAX} records already queued"))
            }
            CommitError::Timeout => crate::Error::Timeout(wait, "journal"),
            CommitError::Failed(m) => crate::Error::Write(m),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("rlm_rust-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn post(n: usize) -> Entry {
        Entry::PostAuth(PostAuthRecord {
            username: format!("user{n}"),
            pass: None,
            reply: "Access-Accept".into(),
            called_station_id: None,
            calling_station_id: Some("\0odd".into()),
            authdate: n as f64,
        })
    }

    fn read_all(core: &Core) -> Vec<(u64, Entry)> {
        let mut out = Vec::new();
        for s in lock(&core.segments).iter() {
            let f = File::open(&s.path).unwrap();
            let (mut off, mut seq) = (0, s.first_seq);
            while let Some((p, len)) = read_at(&f, off, seq).unwrap() {
                out.push((seq, Entry::decode(&p).unwrap()));
                off += len;
                seq += 1;
            }
        }
        out
    }

    #[test]
    fn records_survive_a_reopen_in_order() {
        let d = tmp("reopen");
        let j = Journal::open(&d, 1 << 30).unwrap();
        for i in 0..10 {
            j.append(post(i), Duration::from_secs(5)).unwrap();
        }
        let id = j.core.id.clone();
        drop(j);
        let core = Core::open(&d, 1 << 30).unwrap();
        assert_eq!(core.id, id);
        assert_eq!(core.durable(), 10);
        let got = read_all(&core);
        assert_eq!(got.len(), 10);
        assert_eq!(got[3], (4, post(3)));
        fs::remove_dir_all(&d).unwrap();
    }

    /// Where the records of the segment at `path` end (the zeros begin).
    fn logical_end(path: &Path) -> u64 {
        let bytes = fs::read(path).unwrap();
        let mut off = 0;
        while off + HEADER <= bytes.len() {
            let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
            if len == 0 {
                break;
            }
            off += HEADER + len;
        }
        off as u64
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_numbering_goes_on() {
        let d = tmp("torn");
        let j = Journal::open(&d, 1 << 30).unwrap();
        for i in 0..3 {
            j.append(post(i), Duration::from_secs(5)).unwrap();
        }
        drop(j);
        let seg = d.join(segment_name(1));
        let end = logical_end(&seg);
        // Half a record, as a crash in the middle of a write leaves it.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(
            &[40, 0, 0, 0, 1, 2, 3, 4, 4, 0, 0, 0, 0, 0, 0, 0, 9, 9],
            end,
        )
        .unwrap();
        drop(f);
        let j = Journal::open(&d, 1 << 30).unwrap();
        assert_eq!(logical_end(&seg), end, "the torn record is zeroed");
        j.append(post(7), Duration::from_secs(5)).unwrap();
        let got = read_all(&j.core);
        assert_eq!(
            got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(got[3].1, post(7));
        drop(j);
        // A whole record with a wrong checksum is cut off the same way.
        let end = logical_end(&seg);
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&[0xff], end - 1).unwrap();
        drop(f);
        let core = Core::open(&d, 1 << 30).unwrap();
        assert_eq!(core.durable(), 3);
        assert_eq!(read_all(&core).len(), 3);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_second_owner_is_refused() {
        let d = tmp("lock");
        let j = Journal::open(&d, 1 << 30).unwrap();
        let e = Journal::open(&d, 1 << 30).err().unwrap();
        assert!(e.contains("in use by another process"), "{e}");
        drop(j);
        Journal::open(&d, 1 << 30).unwrap();
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn segments_roll_and_applied_ones_go_and_a_full_journal_refuses() {
        let d = tmp("full");
        // 64 KiB segments (the floor), 192 KiB in all.
        let j = Journal::open(&d, 192 * 1024).unwrap();
        let mut n = 0;
        let err = loop {
            match j.append(post(n), Duration::from_secs(5)) {
                Ok(()) => n += 1,
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains("journal full"), "{err}");
        assert!(lock(&j.core.segments).len() >= 3);
        assert_eq!(read_all(&j.core).len(), n);
        // Applying everything but the last segment frees room.
        let last_first = lock(&j.core.segments).back().unwrap().first_seq;
        j.core.release(last_first - 1);
        assert_eq!(lock(&j.core.segments).len(), 1);
        j.append(post(n), Duration::from_secs(5)).unwrap();
        let got = read_all(&j.core);
        assert_eq!(got.first().unwrap().0, last_first);
        assert_eq!(got.last().unwrap(), &(n as u64 + 1, post(n)));
        fs::remove_dir_all(&d).unwrap();
    }
}
