//! password::verify with a hostile *stored* hash (anyone who can write
//! rlm_rust_user.password_hash or a Rust-Password-Hash row chooses it).
//! Input: `password\nstored`. Work factors between cheap and the caps are
//! skipped (see fuzz_support::costly); over the caps they must be refused.
#![no_main]

use fuzz_support::{costly, first_line, MAX_PASSWORD};
use libfuzzer_sys::fuzz_target;
use radius_core::password;

fuzz_target!(|data: &[u8]| {
    let (pw, stored) = first_line(data);
    let pw = String::from_utf8_lossy(&pw[..pw.len().min(MAX_PASSWORD)]);
    let stored = String::from_utf8_lossy(stored);
    let slow = password::is_slow(&stored);
    if costly(stored.as_bytes()) {
        return;
    }
    if let Ok(matched) = password::verify(&pw, &stored) {
        // Only the slow schemes are known to verify().
        assert!(slow, "verified a hash is_slow() does not know: {stored:?}");
        let _ = matched;
    }
});
