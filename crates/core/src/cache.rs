//! Per-user data held in memory and kept coherent with PostgreSQL through
//! `LISTEN/NOTIFY`: triggers on every table authorize reads (migration V4)
//! notify the user or group that changed, whoever changed it (the admin
//! API, psql, daloRADIUS, another radiusd host).
//!
//! While the listener connection is up the cache answers on its own: the
//! bound on staleness is the notification delay. When the listener is lost
//! the entries are kept but no longer trusted: every lookup reads the
//! database, and only when the database cannot answer (an outage) is the
//! entry held served instead (`outage_serve_cached`), for at most
//! `outage_max_stale` after the listener was lost. Nothing new is kept
//! while the listener is down, and when it is back the cache starts empty
//! again (a change made meanwhile was never notified).
//!
//! Users that exist and lookups that found nothing are held in two
//! separately bounded pools, each evicting with CLOCK (second chance) when
//! full: random names only ever displace other unknown names, never a
//! (preloaded) user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::future::poll_fn;
use tokio_postgres::AsyncMessage;

use crate::lookup::Lookup;

/// Channels the V4 triggers notify on.
pub const CHANNEL_USER: &str = "rlm_rust_user";
pub const CHANNEL_GROUP: &str = "rlm_rust_group";
pub const CHANNEL_FLUSH: &str = "rlm_rust_flush";

/// What the cache may do while the database is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// Serve the users held when the database cannot answer.
    pub serve_cached: bool,
    /// For how long after the listener was lost; None: as long as it lasts.
    pub max_stale: Option<Duration>,
}

impl Default for Outage {
    fn default() -> Outage {
        Outage {
            serve_cached: true,
            max_stale: Some(Duration::from_secs(3600)),
        }
    }
}

/// Unknown names held at most, for a cache of `max_entries` users.
pub fn negative_capacity(max_entries: usize) -> usize {
    (max_entries / 10).max(1000).min(max_entries)
}

/// True for a lookup that found nothing at all: no rows, no profile, no
/// lock. Such answers are what a stream of random names produces.
fn is_negative(l: &Lookup) -> bool {
    l.user.check.is_empty()
        && l.user.reply.is_empty()
        && l.user.groups.is_empty()
        && l.profile.is_none()
        && l.locked_until.is_none()
}

struct Slot {
    name: Arc<str>,
    value: Arc<Lookup>,
    /// Set by every hit, cleared by the clock hand: an entry used since the
    /// hand last passed gets a second chance.
    used: AtomicBool,
}

/// A bounded set of entries evicted with CLOCK. Dense, so the hand and a
/// removal (swap with the last) are O(1).
struct Pool {
    index: HashMap<Arc<str>, usize>,
    slots: Vec<Slot>,
    hand: usize,
    cap: usize,
}

impl Pool {
    fn new(cap: usize) -> Pool {
        Pool {
            index: HashMap::new(),
            slots: Vec::new(),
            hand: 0,
            cap,
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn get(&self, name: &str) -> Option<&Arc<Lookup>> {
        let slot = &self.slots[*self.index.get(name)?];
        // Relaxed: a lost mark only costs an entry its second chance.
        if !slot.used.load(Ordering::Relaxed) {
            slot.used.store(true, Ordering::Relaxed);
        }
        Some(&slot.value)
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Keeps `value` under `name`, evicting another entry when full.
    /// `evict` false: when full, keeps nothing (a preload).
    fn put(&mut self, name: &str, value: Arc<Lookup>, evict: bool) -> bool {
        if let Some(&i) = self.index.get(name) {
            self.slots[i].value = value;
            return true;
        }
        if self.cap == 0 || (!evict && self.len() >= self.cap) {
            return false;
        }
        while self.len() >= self.cap {
            self.evict_one();
        }
        let name: Arc<str> = Arc::from(name);
        self.index.insert(Arc::clone(&name), self.slots.len());
        self.slots.push(Slot {
            name,
            value,
            used: AtomicBool::new(false),
        });
        true
    }

    /// Ends within two turns of the hand: each step clears a mark.
    fn evict_one(&mut self) {
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            if *self.slots[self.hand].used.get_mut() {
                *self.slots[self.hand].used.get_mut() = false;
                self.hand += 1;
            } else {
                self.remove_at(self.hand);
                return;
            }
        }
    }

    fn remove(&mut self, name: &str) -> bool {
        match self.index.get(name) {
            Some(&i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    fn remove_at(&mut self, i: usize) {
        let gone = self.slots.swap_remove(i);
        self.index.remove(&*gone.name);
        if let Some(moved) = self.slots.get(i) {
            *self.index.get_mut(&*moved.name).expect("indexed") = i;
        }
    }

    fn clear(&mut self) {
        self.index = HashMap::new();
        self.slots = Vec::new();
        self.hand = 0;
    }
}

struct Entries {
    users: Pool,
    unknown: Pool,
}

impl Entries {
    fn get(&self, name: &str) -> Option<&Arc<Lookup>> {
        self.users.get(name).or_else(|| self.unknown.get(name))
    }

    fn contains(&self, name: &str) -> bool {
        self.users.contains(name) || self.unknown.contains(name)
    }

    fn put(&mut self, name: &str, value: Arc<Lookup>, evict: bool) -> bool {
        let (to, other) = if is_negative(&value) {
            (&mut self.unknown, &mut self.users)
        } else {
            (&mut self.users, &mut self.unknown)
        };
        other.remove(name);
        to.put(name, value, evict)
    }

    fn remove(&mut self, name: &str) {
        if !self.users.remove(name) {
            self.unknown.remove(name);
        }
    }

    fn clear(&mut self) {
        self.users.clear();
        self.unknown.clear();
    }

    fn len(&self) -> usize {
        self.users.len() + self.unknown.len()
    }
}

pub struct Cache {
    map: RwLock<Entries>,
    /// Bumped by every invalidation. A lookup that read the database while
    /// it moved may have read data an invalidation was meant to drop, so
    /// its result is served but not kept.
    generation: AtomicU64,
    /// The listener is connected and listening.
    live: AtomicBool,
    /// When the listener was lost, while it is (None: live, or never was).
    lost_at: Mutex<Option<Instant>>,
    /// The listener's last attempt to connect failed: the database is away,
    /// so a held entry is served without asking it first.
    unreachable: AtomicBool,
    outage: Outage,
    max_entries: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    outage_hits: AtomicU64,
    /// Counts the times the cache went live (empty), for a preload.
    went_live: tokio::sync::watch::Sender<u64>,
    /// Remembered password verifications, dropped with the user's entry.
    verifier: std::sync::OnceLock<Arc<crate::login::Verifier>>,
}

/// The cache's figures for the metrics, read at each scrape from the
/// counters the cache keeps anyway.
pub(crate) struct Collect(pub(crate) Arc<Cache>);

impl std::fmt::Debug for Collect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cache::Collect")
    }
}

impl prometheus_client::collector::Collector for Collect {
    fn encode(
        &self,
        mut e: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::metrics::{const_counter, const_gauge};
        let (users, unknown) = self.0.counts();
        let (hits, misses) = self.0.stats();
        const_gauge(
            &mut e,
            "cache_entries",
            "Users held in the cache, and names held as not found",
            (users + unknown) as f64,
        )?;
        const_counter(
            &mut e,
            "cache_hits",
            "Lookups answered from the cache",
            hits,
        )?;
        const_counter(
            &mut e,
            "cache_misses",
            "Lookups the cache could not answer (read from PostgreSQL)",
            misses,
        )?;
        const_counter(
            &mut e,
            "cache_outage_hits",
            "Lookups answered from the cache while PostgreSQL could not be reached",
            self.0.outage_hits(),
        )
    }
}

/// A ticket taken before reading the database for a miss.
pub struct LoadTicket(u64);

impl Cache {
    pub fn new(max_entries: usize) -> Cache {
        Cache::with_outage(max_entries, Outage::default())
    }

    pub fn with_outage(max_entries: usize, outage: Outage) -> Cache {
        Cache {
            map: RwLock::new(Entries {
                users: Pool::new(max_entries),
                unknown: Pool::new(negative_capacity(max_entries)),
            }),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            lost_at: Mutex::new(None),
            unreachable: AtomicBool::new(false),
            outage,
            max_entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            outage_hits: AtomicU64::new(0),
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

    /// The listener could not reach the database at its last attempt.
    pub fn is_unreachable(&self) -> bool {
        !self.is_live() && self.unreachable.load(Ordering::Acquire)
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

    /// Within `outage_max_stale` of losing the listener.
    fn within_outage(&self) -> bool {
        if self.is_live() || !self.outage.serve_cached {
            return false;
        }
        let lost_at = *self.lost_at.lock().unwrap_or_else(|p| p.into_inner());
        match (lost_at, self.outage.max_stale) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(t), Some(max)) => t.elapsed() <= max,
        }
    }

    /// The entry held for `username`, for when the database cannot answer
    /// and the listener is down. An unknown name is not answered: the
    /// request fails, so a NAS can ask another server.
    pub fn outage_get(&self, username: &str) -> Option<Arc<Lookup>> {
        if !self.within_outage() {
            return None;
        }
        let hit = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .users
            .get(username)
            .cloned();
        if hit.is_some() {
            self.outage_hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Taken before the database is read for a miss.
    pub fn ticket(&self) -> LoadTicket {
        LoadTicket(self.generation.load(Ordering::Acquire))
    }

    /// Keeps what was read under `ticket`, unless an invalidation happened
    /// meanwhile. While the listener is down only an entry already held is
    /// refreshed (what the database just said is newer than what it holds,
    /// and is what an outage would serve); nothing new is kept.
    pub fn insert(&self, username: &str, ticket: LoadTicket, value: Arc<Lookup>) {
        let live = self.is_live();
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the write lock: invalidations take it too.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if !live && !map.contains(username) {
            return;
        }
        map.put(username, value, true);
    }

    /// Keeps many users read under one `ticket` (a preload), all or none:
    /// none when an invalidation happened meanwhile or the listener is
    /// down. Never evicts; what does not fit is left out.
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
        let mut kept = 0;
        for (name, value) in entries {
            // A miss loaded meanwhile is as new as the snapshot: it stays.
            if !map.contains(&name) && map.put(&name, value, false) {
                kept += 1;
            }
        }
        Ok(kept)
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
        let mut lost_at = self.lost_at.lock().unwrap_or_else(|p| p.into_inner());
        if live {
            // What was held before a gap in notifications cannot be
            // trusted: emptied before and after going live, so no load
            // that started before can land in it.
            self.flush();
            self.live.store(true, Ordering::Release);
            self.unreachable.store(false, Ordering::Release);
            *lost_at = None;
            self.flush();
            drop(lost_at);
            self.went_live.send_modify(|n| *n += 1);
            return;
        }
        let was_live = self.live.swap(false, Ordering::AcqRel);
        if was_live {
            *lost_at = Some(Instant::now());
        }
        if !self.outage.serve_cached {
            self.flush();
        }
    }

    /// The listener's attempt to connect failed (`true`) or succeeded.
    fn set_reachable(&self, reachable: bool) {
        self.unreachable.store(!reachable, Ordering::Release);
    }

    /// Drops what may no longer be served (past `outage_max_stale`).
    fn expire(&self) {
        if !self.is_live() && !self.within_outage() && !self.is_empty() {
            self.flush();
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (users, unknown names) held.
    pub fn counts(&self) -> (usize, usize) {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        (map.users.len(), map.unknown.len())
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Lookups answered from memory because the database could not be
    /// reached, since start.
    pub fn outage_hits(&self) -> u64 {
        self.outage_hits.load(Ordering::Relaxed)
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
/// `probe`. A probe that is slow is waited for (the database is busy or
/// stalled, not gone: its notifications will still come); only a
/// connection actually lost takes the cache out of service.
pub async fn listen(
    cache: Arc<Cache>,
    target: crate::pg::Target,
    connect_timeout: Duration,
    probe: Duration,
) {
    loop {
        if let Err(e) = listen_once(&cache, &target, connect_timeout, probe).await {
            if cache.is_live() {
                log::warn!(
                    "cache listener: {e}; every lookup reads the database until it reconnects{}",
                    if cache.outage.serve_cached {
                        " (held users are served while the database cannot answer)"
                    } else {
                        ""
                    }
                );
            } else {
                log::debug!("cache listener: {e}");
            }
        }
        cache.set_live(false);
        cache.expire();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    cache: &Arc<Cache>,
    target: &crate::pg::Target,
    connect_timeout: Duration,
    probe: Duration,
) -> Result<(), String> {
    let mut cfg = target.config.clone();
    cfg.connect_timeout(connect_timeout);
    cfg.application_name("rlm_rust listener");
    // Since a slow probe no longer ends the connection, the kernel tells a
    // peer that is gone (unacknowledged data, failed keepalives) from one
    // that is only slow (a stalled server's kernel still acknowledges).
    cfg.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(20));
    let connected = match tokio::time::timeout(connect_timeout, target.connect_with(&cfg)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            cache.set_reachable(false);
            return Err(format!("cannot connect: {}", crate::pg::describe(&e)));
        }
        Err(_) => None,
    };
    let Some((client, mut conn)) = connected else {
        cache.set_reachable(false);
        return Err("connect timed out".into());
    };
    cache.set_reachable(true);
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
    let lost =
        |ended: Result<Result<(), tokio_postgres::Error>, tokio::task::JoinError>| match ended {
            Ok(Ok(())) => "the connection closed".to_string(),
            Ok(Err(e)) => format!("{e}"),
            Err(e) => format!("{e}"),
        };
    client
        .batch_execute(&format!(
            "LISTEN {CHANNEL_USER}; LISTEN {CHANNEL_GROUP}; LISTEN {CHANNEL_FLUSH}"
        ))
        .await
        .map_err(|e| format!("{e}"))?;
    cache.set_live(true);
    log::info!("cache listener connected: per-user data is served from memory");
    loop {
        tokio::select! {
            ended = &mut driver => return Err(lost(ended)),
            _ = tokio::time::sleep(probe) => {}
        }
        let answer = client.simple_query("SELECT 1");
        tokio::pin!(answer);
        let asked = Instant::now();
        let mut slow = false;
        loop {
            tokio::select! {
                r = &mut answer => {
                    r.map_err(|e| format!("{e}"))?;
                    if slow {
                        log::info!(
                            "cache listener: the database answered after {:.1} s",
                            asked.elapsed().as_secs_f64()
                        );
                    }
                    break;
                }
                ended = &mut driver => return Err(lost(ended)),
                _ = tokio::time::sleep(probe), if !slow => {
                    slow = true;
                    log::warn!(
                        "cache listener: no answer within {probe:?}; still listening and serving from memory"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::AttrRow;

    /// A user that exists (one radcheck row).
    fn val() -> Arc<Lookup> {
        user("pw")
    }

    fn user(password: &str) -> Arc<Lookup> {
        let mut l = Lookup::default();
        l.user.check.push(AttrRow {
            attribute: "Cleartext-Password".into(),
            op_text: ":=".into(),
            value: password.into(),
        });
        Arc::new(l)
    }

    /// What a lookup of a name nobody has answers.
    fn nobody() -> Arc<Lookup> {
        Arc::new(Lookup::default())
    }

    fn outage(max_stale: Option<Duration>) -> Outage {
        Outage {
            serve_cached: true,
            max_stale,
        }
    }

    #[test]
    fn nothing_is_served_or_kept_while_not_live() {
        let c = Cache::new(10);
        let t = c.ticket();
        c.insert("a", t, val());
        assert!(c.get("a").is_none());
        assert!(c.outage_get("a").is_none());
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
        // A miss loaded meanwhile stays; a preload never evicts.
        c.insert("u0", c.ticket(), user("newer"));
        assert_eq!(c.insert_many(c.ticket(), many()), Ok(2));
        assert_eq!(c.len(), 3);
        assert!(c.get("u2").is_some() && c.get("u3").is_none());
        assert_eq!(c.get("u0"), Some(user("newer")));
    }

    #[test]
    fn losing_the_listener_keeps_entries_for_an_outage_only() {
        let c = Cache::new(10);
        c.set_live(true);
        c.insert("a", c.ticket(), user("old"));
        c.insert("ghost", c.ticket(), nobody());
        c.set_live(false);
        // Not trusted on its own any more: the database is asked first.
        assert!(c.get("a").is_none());
        // Served when the database cannot answer; an unknown name is not.
        assert_eq!(c.outage_get("a"), Some(user("old")));
        assert!(c.outage_get("ghost").is_none());
        assert_eq!(c.outage_hits(), 1);
        // Nothing new is kept; what the database said refreshes what is held.
        c.insert("b", c.ticket(), val());
        c.insert("a", c.ticket(), user("new"));
        assert!(c.outage_get("b").is_none());
        assert_eq!(c.outage_get("a"), Some(user("new")));
        // Back: entries from before the gap are gone.
        c.set_live(true);
        assert!(c.get("a").is_none(), "revalidated after reconnecting");
        assert!(c.is_empty());
    }

    #[test]
    fn unreachable_is_only_said_while_not_live() {
        let c = Cache::new(10);
        c.set_live(true);
        c.set_reachable(false);
        assert!(!c.is_unreachable(), "a live listener reached it");
        c.set_live(false);
        assert!(c.is_unreachable());
        c.set_reachable(true);
        assert!(!c.is_unreachable());
        c.set_reachable(false);
        c.set_live(true);
        assert!(!c.is_unreachable());
    }

    #[test]
    fn outage_serving_ends_after_max_stale_and_can_be_off() {
        let c = Cache::with_outage(10, outage(Some(Duration::from_millis(50))));
        c.set_live(true);
        c.insert("a", c.ticket(), val());
        c.set_live(false);
        assert!(c.outage_get("a").is_some());
        // A failed reconnect does not restart the clock.
        std::thread::sleep(Duration::from_millis(30));
        c.set_live(false);
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.outage_get("a").is_none(), "past outage_max_stale");
        c.expire();
        assert!(c.is_empty(), "what cannot be served is dropped");

        let unbounded = Cache::with_outage(10, outage(None));
        unbounded.set_live(true);
        unbounded.insert("a", unbounded.ticket(), val());
        unbounded.set_live(false);
        unbounded.expire();
        assert!(unbounded.outage_get("a").is_some());

        let off = Cache::with_outage(
            10,
            Outage {
                serve_cached: false,
                max_stale: None,
            },
        );
        off.set_live(true);
        off.insert("a", off.ticket(), val());
        off.set_live(false);
        assert!(off.outage_get("a").is_none());
        assert!(off.is_empty(), "emptied as soon as the listener is lost");
    }

    #[test]
    fn a_full_cache_evicts_one_entry_not_all() {
        let c = Cache::new(3);
        c.set_live(true);
        for i in 0..10 {
            c.insert(&format!("u{i}"), c.ticket(), val());
            assert!(c.get(&format!("u{i}")).is_some());
        }
        assert_eq!(c.counts(), (3, 0));
        // A user in use survives a pass of the hand: it is marked by
        // every hit, the others are not.
        let c = Cache::new(3);
        c.set_live(true);
        for i in 0..3 {
            c.insert(&format!("u{i}"), c.ticket(), val());
        }
        for i in 3..50 {
            assert!(c.get("u0").is_some(), "u0 evicted at u{i}");
            c.insert(&format!("u{i}"), c.ticket(), val());
        }
    }

    #[test]
    fn random_names_never_displace_users() {
        let cap = 20_000;
        let c = Cache::new(cap);
        c.set_live(true);
        let users: Vec<(String, Arc<Lookup>)> =
            (0..cap).map(|i| (format!("user{i}"), val())).collect();
        assert_eq!(c.insert_many(c.ticket(), users), Ok(cap));
        let neg = negative_capacity(cap);
        assert_eq!(neg, 2000);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..1_000_000 {
            // xorshift: a million distinct-looking names
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let name = format!("rnd-{x:016x}");
            assert!(c.get(&name).is_none());
            c.insert(&name, c.ticket(), nobody());
        }
        assert_eq!(c.counts(), (cap, neg), "both pools stay within bounds");
        let (hits0, _) = c.stats();
        for i in 0..cap {
            assert!(c.get(&format!("user{i}")).is_some(), "user{i} lost");
        }
        assert_eq!(c.stats().0 - hits0, cap as u64, "every user from memory");
        // A name that stops being unknown moves pools (and back).
        c.insert("rnd-new", c.ticket(), nobody());
        c.invalidate("rnd-new");
        c.insert("rnd-new", c.ticket(), val());
        assert_eq!(c.counts().0, cap, "a full pool evicts for the newcomer");
        assert!(c.get("rnd-new").is_some());
        c.insert("rnd-new", c.ticket(), nobody());
        assert_eq!(c.counts(), (cap - 1, neg));
    }

    #[test]
    fn negative_capacity_is_bounded_by_the_cache() {
        assert_eq!(negative_capacity(1), 1);
        assert_eq!(negative_capacity(5000), 1000);
        assert_eq!(negative_capacity(1_000_000), 100_000);
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
