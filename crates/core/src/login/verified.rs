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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::password::{self, BadHash};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a password could not be verified (as opposed to being wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Every slot for slow verifications is taken: the request fails at
    /// once instead of tying up a server thread behind the others.
    #[error("{0} slow password verifications already running (slow_hash_concurrency)")]
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
    running: AtomicUsize,
    max_running: usize,
}

/// One slot of [`Verifier`]'s bound, given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier {
    /// Remembers up to `max_entries` users; runs at most `max_running`
    /// (at least 1) slow verifications at once.
    pub fn new(max_entries: usize, max_running: usize) -> Verifier {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random number generator failed");
        Verifier {
            key,
            remembered: Mutex::new(HashMap::new()),
            max_entries,
            running: AtomicUsize::new(0),
            max_running: max_running.max(1),
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
        let n = self.running.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.running);
        if n >= self.max_running {
            return Err(VerifyError::Busy(self.max_running));
        }
        Ok(slot)
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
        password::dummy_verify(password);
        Ok(())
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
        let held = v.slot().unwrap();
        assert_eq!(v.verify("u", "pw", &h), Err(VerifyError::Busy(1)));
        assert_eq!(v.spend("x"), Err(VerifyError::Busy(1)));
        drop(held);
        assert_eq!(v.verify("u", "pw", &h), Ok(Verified::Computed(true)));
        assert_eq!(v.running.load(Ordering::Acquire), 0);
        // A remembered success needs no slot.
        let held = v.slot().unwrap();
        assert_eq!(v.verify("u", "pw", &h), Ok(Verified::Remembered));
        drop(held);
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
