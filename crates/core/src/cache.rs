//! Per-user data held in memory and kept coherent with PostgreSQL through
//! `LISTEN/NOTIFY`: triggers on every table authorize reads (migration V4)
//! notify the user or group that changed, whoever changed it (the admin
//! API, psql, daloRADIUS, another radiusd host).
//!
//! The cache is only used while its listener connection is up. Losing the
//! listener empties it and switches every lookup to the database until the
//! listener is back (then it starts empty again), so a change is never
//! missed: the bound on staleness is the notification delay while
//! listening, zero otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::lookup::Lookup;

/// Channels the V4 triggers notify on.
pub const CHANNEL_USER: &str = "rlm_rust_user";
pub const CHANNEL_GROUP: &str = "rlm_rust_group";
pub const CHANNEL_FLUSH: &str = "rlm_rust_flush";

pub struct Cache {
    map: RwLock<HashMap<String, Arc<Lookup>>>,
    /// Bumped by every invalidation. A lookup that read the database while
    /// it moved may have read data an invalidation was meant to drop, so
    /// its result is served but not kept.
    generation: AtomicU64,
    /// The listener is connected and listening.
    live: AtomicBool,
    max_entries: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Counts the times the cache went live (empty), for a preload.
    went_live: tokio::sync::watch::Sender<u64>,
    /// Remembered password verifications, dropped with the user's entry.
    verifier: std::sync::OnceLock<Arc<crate::login::Verifier>>,
}

/// A ticket taken before reading the database for a miss.
pub struct LoadTicket(u64);

impl Cache {
    pub fn new(max_entries: usize) -> Cache {
        Cache {
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            max_entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            went_live: tokio::sync::watch::channel(0).0,
            verifier: std::sync::OnceLock::new(),
        }
    }

    /// Every invalidation also makes `verifier` forget the user's
    /// remembered verifications.
    pub fn forget_with(&self, verifier: Arc<crate::login::Verifier>) {
        let _ = self.verifier.set(verifier);
    }

    /// Changes each time the cache goes live, empty: the moment to preload.
    pub fn went_live(&self) -> tokio::sync::watch::Receiver<u64> {
        self.went_live.subscribe()
    }

    /// How many users it holds at most.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub fn get(&self, username: &str) -> Option<Arc<Lookup>> {
        if !self.is_live() {
            return None;
        }
        let hit = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(username)
            .cloned();
        match hit {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        hit
    }

    /// Taken before the database is read for a miss.
    pub fn ticket(&self) -> LoadTicket {
        LoadTicket(self.generation.load(Ordering::Acquire))
    }

    /// Keeps what was read under `ticket`, unless an invalidation happened
    /// meanwhile or the listener is down.
    pub fn insert(&self, username: &str, ticket: LoadTicket, value: Arc<Lookup>) {
        if !self.is_live() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the write lock: invalidations take it too.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if map.len() >= self.max_entries && !map.contains_key(username) {
            // Crude but bounded: a full cache starts over.
            map.clear();
        }
        map.insert(username.to_string(), value);
    }

    /// Keeps many users read under one `ticket` (a preload), all or none:
    /// none when an invalidation happened meanwhile or the listener is
    /// down. Never empties a full cache; what does not fit is left out.
    /// How many were kept, or why none.
    pub fn insert_many(
        &self,
        ticket: LoadTicket,
        entries: impl IntoIterator<Item = (String, Arc<Lookup>)>,
    ) -> Result<usize, &'static str> {
        if !self.is_live() {
            return Err("the cache listener is down");
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return Err("a change was notified during the read");
        }
        let before = map.len();
        for (name, value) in entries {
            if map.len() >= self.max_entries {
                break;
            }
            map.entry(name).or_insert(value);
        }
        Ok(map.len() - before)
    }

    pub fn invalidate(&self, username: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(username);
        if let Some(v) = self.verifier.get() {
            v.forget(username);
        }
    }

    pub fn flush(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
        if let Some(v) = self.verifier.get() {
            v.forget_all();
        }
    }

    fn set_live(&self, live: bool) {
        // Empty before going live and after going dead: what was cached
        // before a gap in notifications cannot be trusted.
        self.flush();
        self.live.store(live, Ordering::Release);
        self.flush();
        if live {
            self.went_live.send_modify(|n| *n += 1);
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn apply(&self, channel: &str, payload: &str) {
        match channel {
            CHANNEL_USER => self.invalidate(payload),
            // Group rows apply to every member: rare enough to start over.
            _ => self.flush(),
        }
    }
}

/// Keeps a LISTEN connection open for `cache` for as long as the runtime
/// runs: reconnects after any error, and checks the connection every
/// `probe` so a silently dead one is noticed.
pub async fn listen(cache: Arc<Cache>, dsn: String, connect_timeout: Duration, probe: Duration) {
    loop {
        if let Err(e) = listen_once(&cache, &dsn, connect_timeout, probe).await {
            log::warn!("cache listener: {e}; the cache is off until it reconnects");
        }
        cache.set_live(false);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    cache: &Arc<Cache>,
    dsn: &str,
    connect_timeout: Duration,
    probe: Duration,
) -> Result<(), tokio_postgres::Error> {
    let mut cfg: tokio_postgres::Config = dsn.parse()?;
    cfg.connect_timeout(connect_timeout);
    cfg.application_name("rlm_rust listener");
    let (client, mut conn) = match tokio::time::timeout(connect_timeout, cfg.connect(NoTls)).await {
        Ok(r) => r?,
        Err(_) => {
            log::warn!("cache listener: connect timed out");
            return Ok(());
        }
    };
    // The connection must be polled for notifications to arrive; it ends
    // (and so does this task) when the connection breaks.
    let watcher = Arc::clone(cache);
    let mut driver = tokio::spawn(async move {
        while let Some(msg) = poll_fn(|cx| conn.poll_message(cx)).await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => watcher.apply(n.channel(), n.payload()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!(
            "LISTEN {CHANNEL_USER}; LISTEN {CHANNEL_GROUP}; LISTEN {CHANNEL_FLUSH}"
        ))
        .await?;
    cache.set_live(true);
    log::info!("cache listener connected: per-user data is served from memory");
    loop {
        tokio::select! {
            ended = &mut driver => {
                return match ended {
                    Ok(r) => r,
                    Err(_) => Ok(()),
                };
            }
            _ = tokio::time::sleep(probe) => {
                match tokio::time::timeout(probe, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        log::warn!("cache listener: no answer within {probe:?}");
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val() -> Arc<Lookup> {
        Arc::new(Lookup::default())
    }

    #[test]
    fn nothing_is_served_or_kept_while_not_live() {
        let c = Cache::new(10);
        let t = c.ticket();
        c.insert("a", t, val());
        assert!(c.get("a").is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn an_invalidation_during_a_load_drops_its_result() {
        let c = Cache::new(10);
        c.set_live(true);
        let t = c.ticket();
        c.invalidate("someone-else");
        c.insert("a", t, val());
        assert!(c.get("a").is_none(), "result read before the change");
        let t = c.ticket();
        c.insert("a", t, val());
        assert!(c.get("a").is_some());
        c.invalidate("a");
        assert!(c.get("a").is_none());
    }

    #[test]
    fn a_preload_is_kept_whole_or_not_at_all() {
        let c = Cache::new(3);
        let went_live = c.went_live();
        let many = || (0..5).map(|i| (format!("u{i}"), val()));
        assert!(c.insert_many(c.ticket(), many()).is_err(), "not live");
        c.set_live(true);
        assert!(went_live.has_changed().unwrap(), "going live is announced");
        let t = c.ticket();
        c.invalidate("u1");
        assert!(
            c.insert_many(t, many()).is_err(),
            "a change during the read"
        );
        assert_eq!(c.len(), 0);
        // A miss loaded meanwhile stays; the cache never starts over.
        c.insert("u0", c.ticket(), val());
        assert_eq!(c.insert_many(c.ticket(), many()), Ok(2));
        assert_eq!(c.len(), 3);
        assert!(c.get("u2").is_some() && c.get("u3").is_none());
    }

    #[test]
    fn going_dead_empties_and_bypasses() {
        let c = Cache::new(10);
        c.set_live(true);
        let t = c.ticket();
        c.insert("a", t, val());
        c.set_live(false);
        assert!(c.get("a").is_none());
        c.set_live(true);
        assert!(c.get("a").is_none(), "entries from before a gap are gone");
    }

    #[test]
    fn size_is_bounded() {
        let c = Cache::new(3);
        c.set_live(true);
        for i in 0..10 {
            let t = c.ticket();
            c.insert(&format!("u{i}"), t, val());
        }
        assert!(c.len() <= 3);
        assert!(c.get("u9").is_some());
    }

    #[test]
    fn group_and_flush_notifications_empty_everything() {
        let c = Cache::new(10);
        c.set_live(true);
        for ch in [CHANNEL_GROUP, CHANNEL_FLUSH] {
            let t = c.ticket();
            c.insert("a", t, val());
            c.apply(ch, "staff");
            assert!(c.is_empty());
        }
        let t = c.ticket();
        c.insert("a", t, val());
        c.apply(CHANNEL_USER, "b");
        assert!(c.get("a").is_some(), "another user's change keeps a");
    }
}
