//! Slow password hashes off the hot path: a successful Argon2 or PBKDF2
//! verification is remembered, and only so many slow verifications run at
//! once.
//!
//! What is remembered is a keyed hash (HMAC-SHA-256 under a key drawn at
//! start, never written anywhere) of the user name, the stored hash and the
//! password: never the password. The stored hash is part of the input, so a
//! new password (a new hash, a new salt) can never match an old entry, even
//! before the change notification arrives; the notification only frees the
//! memory ([`Verifier::forget`]).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::password::{self, BadHash};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a password could not be verified (as opposed to being wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Every slot for slow verifications is taken, and as many requests
    /// already wait for one: the request fails instead of tying up a
    /// server thread behind the others.
    #[error("{0} slow password verifications already running and waiting (slow_hash_concurrency)")]
    Busy(usize),
    #[error(transparent)]
    BadHash(#[from] BadHash),
}

/// How a verification was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The same password was verified against the same hash before.
    Remembered,
    /// The hash was computed now; `true` when the password matched.
    Computed(bool),
    /// A fast scheme (or none remembered): `true` when it matched.
    Fast(bool),
}

impl Verified {
    pub fn ok(self) -> bool {
        match self {
            Verified::Remembered => true,
            Verified::Computed(ok) | Verified::Fast(ok) => ok,
        }
    }
}

pub struct Verifier {
    key: [u8; 32],
    remembered: Mutex<HashMap<String, [u8; 32]>>,
    max_entries: usize,
    gate: Gate,
    /// Slow hashes computed (verifications and [`Verifier::spend`]).
    slow_runs: std::sync::atomic::AtomicU64,
}

/// How long a slow verification may wait for a slot; past it (or with as
/// many already waiting as running) the request fails at once.
pub const SLOT_WAIT: Duration = Duration::from_secs(1);

/// At most `max` slow verifications run at once and at most `max` more
/// wait for a slot: a flood of wrong passwords for Argon2 users holds at
/// most 2 × `max` server threads, the others keep serving everyone else.
struct Gate {
    /// (running, waiting)
    state: Mutex<(usize, usize)>,
    freed: Condvar,
    max: usize,
}

/// One slot of the [`Gate`], given back on drop.
struct Slot<'a>(&'a Gate);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.lock().0 -= 1;
        self.0.freed.notify_one();
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enter(&self, wait: Duration) -> Result<Slot<'_>, VerifyError> {
        let mut st = self.lock();
        if st.0 < self.max {
            st.0 += 1;
            return Ok(Slot(self));
        }
        if st.1 >= self.max {
            return Err(VerifyError::Busy(self.max));
        }
        st.1 += 1;
        let deadline = Instant::now() + wait;
        while st.0 >= self.max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.1 -= 1;
                return Err(VerifyError::Busy(self.max));
            }
            st = self
                .freed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.1 -= 1;
        st.0 += 1;
        Ok(Slot(self))
    }
}

impl Verifier {
    /// Remembers up to `max_entries` users; runs at most `max_running`
    /// (at least 1) slow verifications at once (see [`Gate`]).
    pub fn new(max_entries: usize, max_running: usize) -> Verifier {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random number generator failed");
        Verifier {
            key,
            remembered: Mutex::new(HashMap::new()),
            max_entries,
            gate: Gate {
                state: Mutex::new((0, 0)),
                freed: Condvar::new(),
                max: max_running.max(1),
            },
            slow_runs: Default::default(),
        }
    }

    fn tag(&self, username: &str, stored: &str, password: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
        // Length prefixes: no two different triples feed the same bytes.
        for part in [username, stored, password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    fn slot(&self) -> Result<Slot<'_>, VerifyError> {
        self.gate.enter(SLOT_WAIT)
    }

    /// Verifies `password` for `username` against `stored` (any scheme
    /// [`password::verify`] knows).
    pub fn verify(
        &self,
        username: &str,
        password: &str,
        stored: &str,
    ) -> Result<Verified, VerifyError> {
        if !password::is_slow(stored) {
            return Ok(Verified::Fast(password::verify(password, stored)?));
        }
        let tag = self.tag(username, stored, password);
        if let Some(known) = self.lock().get(username) {
            if bool::from(known.ct_eq(&tag)) {
                return Ok(Verified::Remembered);
            }
        }
        let ok = {
            let _slot = self.slot()?;
            self.count_run();
            password::verify(password, stored)?
        };
        if ok && self.max_entries > 0 {
            let mut map = self.lock();
            // Bounded like the user cache: full, it starts over.
            if map.len() >= self.max_entries && !map.contains_key(username) {
                map.clear();
            }
            map.insert(username.to_string(), tag);
        }
        Ok(Verified::Computed(ok))
    }

    /// What a slow verification costs, spent on nothing: a refused login
    /// that checked no slow hash takes as long as one that did.
    pub fn spend(&self, password: &str) -> Result<(), VerifyError> {
        let _slot = self.slot()?;
        self.count_run();
        password::dummy_verify(password);
        Ok(())
    }

    fn count_run(&self) {
        self.slow_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Slow hashes computed so far (what a login cost, for tests and
    /// statistics).
    pub fn slow_runs(&self) -> u64 {
        self.slow_runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops what is remembered for `username` (its rows changed).
    pub fn forget(&self, username: &str) {
        self.lock().remove(username);
    }

    pub fn forget_all(&self) {
        self.lock().clear();
    }

    pub fn remembered(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, [u8; 32]>> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap_argon(pw: &str) -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
    }

    #[test]
    fn a_success_is_remembered_and_only_for_that_hash_and_password() {
        let v = Verifier::new(10, 2);
        let h = cheap_argon("pw");
        assert_eq!(v.verify("u", "pw", &h), Ok(Verified::Computed(true)));
        assert_eq!(v.verify("u", "pw", &h), Ok(Verified::Remembered));
        assert_eq!(v.verify("u", "nope", &h), Ok(Verified::Computed(false)));
        // Another user with the same hash, or a new hash: computed again.
        assert_eq!(v.verify("w", "pw", &h), Ok(Verified::Computed(true)));
        let h2 = cheap_argon("pw2");
        assert_eq!(v.verify("u", "pw", &h2), Ok(Verified::Computed(false)));
        v.forget("u");
        assert_eq!(v.verify("u", "pw", &h), Ok(Verified::Computed(true)));
        // Failures are never remembered.
        assert_eq!(v.verify("x", "bad", &h), Ok(Verified::Computed(false)));
        assert_eq!(v.verify("x", "bad", &h), Ok(Verified::Computed(false)));
    }

    #[test]
    fn memory_holds_no_password() {
        let v = Verifier::new(10, 1);
        let h = cheap_argon("hunter2-secret");
        v.verify("u", "hunter2-secret", &h).unwrap();
        let map = v.lock();
        let tag = map.get("u").unwrap();
        assert!(!tag.windows(7).any(|w| w == b"hunter2"));
        assert_ne!(tag, &v.tag("u", &h, "other"));
    }

    #[test]
    fn the_bound_fails_fast_and_slots_come_back() {
        let v = Verifier::new(10, 1);
        let h = cheap_argon("pw");
        let held = v.gate.enter(Duration::ZERO).unwrap();
        // One may wait (and gives up after its wait), a second fails at once.
        assert_eq!(
            v.gate.enter(Duration::from_millis(20)).err(),
            Some(VerifyError::Busy(1))
        );
        std::thread::scope(|s| {
            let waiter = s.spawn(|| v.gate.enter(Duration::from_secs(5)).map(|_| ()));
            while v.gate.lock().1 == 0 {
                std::thread::yield_now();
            }
            let t = Instant::now();
            assert_eq!(v.spend("x"), Err(VerifyError::Busy(1)));
            assert!(t.elapsed() < Duration::from_millis(500), "fails fast");
            drop(held);
            assert_eq!(
                waiter.join().unwrap(),
                Ok(()),
                "a waiter gets the freed slot"
            );
        });
        assert_eq!(*v.gate.lock(), (0, 0));
        assert_eq!(v.verify("u", "pw", &h), Ok(Verified::Computed(true)));
        // A remembered success needs no slot.
        let _held = v.gate.enter(Duration::ZERO).unwrap();
        assert_eq!(v.verify("u", "pw", &h), Ok(Verified::Remembered));
    }

    #[test]
    fn size_is_bounded() {
        let v = Verifier::new(2, 1);
        let h = cheap_argon("pw");
        for u in ["a", "b", "c"] {
            v.verify(u, "pw", &h).unwrap();
        }
        assert!(v.remembered() <= 2);
    }
}
