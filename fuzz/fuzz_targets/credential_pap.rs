//! credential::pap (rlm_pap's semantics for the admin service) with hostile
//! control lists: every known-good attribute, Password-With-Header with
//! its headers and base64 wrapping, 0x octets, Rust-Password-Hash.
//! Input: the password on the first line, then one `Attribute=value` per
//! line. Values that may ask for a real work factor under the caps are
//! skipped (see fuzz_support::costly).
#![no_main]

use fuzz_support::{costly, first_line, MAX_PASSWORD};
use libfuzzer_sys::fuzz_target;
use radius_core::credential::{self, PapOutcome};

fuzz_target!(|data: &[u8]| {
    let (pw, rest) = first_line(data);
    let pw = String::from_utf8_lossy(&pw[..pw.len().min(MAX_PASSWORD)]);
    let control: Vec<(String, String)> = String::from_utf8_lossy(rest)
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once('=').unwrap_or((l, ""));
            (n.to_string(), v.to_string())
        })
        .collect();
    if control.iter().any(|(_, v)| costly(v.as_bytes())) {
        return;
    }
    let _ = credential::is_slow(&control);
    match credential::pap(&pw, &control) {
        PapOutcome::Accept => assert!(!control.is_empty()),
        PapOutcome::NoCredential => {}
        PapOutcome::Reject | PapOutcome::Invalid(_) => {}
    }
});
