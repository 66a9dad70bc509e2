//! TOTP (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits, 30-second
//! steps, what FortiToken Mobile and every authenticator app read from an
//! `otpauth://totp/` URI. Written on the RustCrypto `hmac`/`sha1` the core
//! already uses rather than a TOTP crate: the algorithm is a dozen lines,
//! and the window and replay rules around it are ours anyway.

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one (clock drift, typing).
pub const WINDOW: i64 = 1;
/// Bytes of a new seed (160 bits, RFC 4226's recommendation for SHA-1).
pub const SEED_BYTES: usize = 20;

/// HOTP(seed, counter) as `digits` decimal digits (RFC 4226 5.3).
pub fn hotp(seed: &[u8], counter: u64, digits: u32) -> String {
    let mut m = hmac::Hmac::<sha1::Sha1>::new_from_slice(seed).expect("any key length");
    m.update(&counter.to_be_bytes());
    let h = m.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    let n = u64::from(bin) % 10u64.pow(digits);
    format!("{n:0width$}", width = digits as usize)
}

/// The time step of `unix` seconds.
pub fn step_at(unix: f64) -> i64 {
    (unix / STEP_SECONDS as f64).floor() as i64
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No step of the window gives this code.
    Wrong,
    /// Right, but its step is not newer than the last one used: a code is
    /// accepted once.
    Replayed,
}

/// The step whose code is `code`, within [`WINDOW`] of `now`, and newer
/// than `last_used` (the last step accepted for this seed). Every step of
/// the window is compared, in constant time, whatever matched first.
pub fn matching_step(
    seed: &[u8],
    code: &str,
    now: f64,
    last_used: Option<i64>,
) -> Result<i64, Miss> {
    let current = step_at(now);
    let mut found: Option<i64> = None;
    let mut replayed = false;
    for step in current - WINDOW..=current + WINDOW {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let right = bool::from(
            hotp(seed, counter, DIGITS)
                .as_bytes()
                .ct_eq(code.as_bytes()),
        );
        if !right {
            continue;
        }
        if last_used.is_some_and(|last| step <= last) {
            replayed = true;
        } else if found.is_none() {
            found = Some(step);
        }
    }
    match (found, replayed) {
        (Some(step), _) => Ok(step),
        (None, true) => Err(Miss::Replayed),
        (None, false) => Err(Miss::Wrong),
    }
}

/// A new random seed.
pub fn new_seed() -> Vec<u8> {
    let mut b = vec![0u8; SEED_BYTES];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

/// RFC 4648 base32 without padding, as authenticator apps read it.
pub fn base32(seed: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(seed)
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The provisioning URI (Google Authenticator's key URI format, which
/// FortiToken Mobile reads too): `otpauth://totp/<issuer>:<user>?secret=..
/// &issuer=..&algorithm=SHA1&digits=6&period=30`.
pub fn uri(issuer: &str, username: &str, seed: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        pct(issuer),
        pct(username),
        base32(seed),
        pct(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (seed "12345678901234567890", 8 digits).
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: &[(u64, &str)] = &[
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn rfc_6238_test_vectors() {
        for (t, code) in RFC_VECTORS {
            let step = step_at(*t as f64) as u64;
            assert_eq!(hotp(RFC_SEED, step, 8), *code, "T = {t}");
            // Six digits are the last six of the eight.
            assert_eq!(hotp(RFC_SEED, step, 6), code[2..], "T = {t}, 6 digits");
        }
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let want = ["755224", "287082", "359152", "969429", "338314"];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(hotp(RFC_SEED, i as u64, 6), *w);
        }
    }

    #[test]
    fn one_step_either_side_and_no_further() {
        let now = 1_234_567_890.0;
        let s = step_at(now);
        let code = |step: i64| hotp(RFC_SEED, step as u64, 6);
        assert_eq!(matching_step(RFC_SEED, &code(s), now, None), Ok(s));
        assert_eq!(matching_step(RFC_SEED, &code(s - 1), now, None), Ok(s - 1));
        assert_eq!(matching_step(RFC_SEED, &code(s + 1), now, None), Ok(s + 1));
        assert_eq!(
            matching_step(RFC_SEED, &code(s - 2), now, None),
            Err(Miss::Wrong)
        );
        assert_eq!(
            matching_step(RFC_SEED, &code(s + 2), now, None),
            Err(Miss::Wrong)
        );
        assert_eq!(
            matching_step(RFC_SEED, "000000x", now, None),
            Err(Miss::Wrong)
        );
        assert_eq!(matching_step(RFC_SEED, "", now, None), Err(Miss::Wrong));
    }

    #[test]
    fn a_code_is_accepted_once() {
        let now = 1_234_567_890.0;
        let s = step_at(now);
        let c = hotp(RFC_SEED, s as u64, 6);
        let used = matching_step(RFC_SEED, &c, now, None).unwrap();
        assert_eq!(
            matching_step(RFC_SEED, &c, now, Some(used)),
            Err(Miss::Replayed)
        );
        // An older code of the window, once a newer one was used: replayed
        // too (its step is not newer).
        let older = hotp(RFC_SEED, (s - 1) as u64, 6);
        assert_eq!(
            matching_step(RFC_SEED, &older, now, Some(s)),
            Err(Miss::Replayed)
        );
        // The next step's code is still good.
        let next = hotp(RFC_SEED, (s + 1) as u64, 6);
        assert_eq!(matching_step(RFC_SEED, &next, now, Some(s)), Ok(s + 1));
    }

    #[test]
    fn uris_are_escaped() {
        let u = uri("rlm rust", "a:b@c", b"12345678901234567890");
        assert_eq!(
            u,
            "otpauth://totp/rlm%20rust:a%3Ab%40c?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=rlm%20rust&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(new_seed().len(), SEED_BYTES);
        assert_ne!(new_seed(), new_seed());
    }
}
