//! Verifying password hashes that FreeRADIUS' `pap` does not know: Django's
//! `pbkdf2_sha256$` (django-freeradius / openwisp-radius databases) and
//! Argon2 (PHC strings, also with Django's `argon2` prefix).

use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Why a stored hash cannot be used (an operator problem, not a wrong
/// password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable password hash: {0}")]
pub struct BadHash(pub String);

/// The schemes [`verify`] understands, for messages and docs.
pub const SCHEMES: &[&str] = &[
    "pbkdf2_sha256$",
    "argon2$argon2id$",
    "$argon2id$",
    "$argon2i$",
];

// Anyone who can write a stored hash chooses its cost. These caps keep one
// verification to about a second and 64 MiB at most, with room above
// today's defaults (argon2 crate: m=19456, t=2, p=1; Django 5.x: PBKDF2
// 870k-1.2M iterations).

/// The most memory, in KiB, an Argon2 hash may ask for (64 MiB).
pub const MAX_ARGON2_M_COST_KIB: u32 = 65536;
/// The most passes an Argon2 hash may ask for.
pub const MAX_ARGON2_T_COST: u32 = 10;
/// The most lanes an Argon2 hash may ask for.
pub const MAX_ARGON2_P_COST: u32 = 4;
/// The most iterations a `pbkdf2_sha256$` hash may ask for.
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// True when `password` matches `stored`. Comparison is constant-time.
/// A hash whose parameters exceed the caps above is refused before any
/// hashing.
pub fn verify(password: &str, stored: &str) -> Result<bool, BadHash> {
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return verify_django_pbkdf2(password, rest);
    }
    if let Some(phc) = argon2_phc(stored) {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(phc).map_err(|e| BadHash(format!("argon2: {e}")))?;
        check_argon2_params(&parsed)?;
        return Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok());
    }
    Err(BadHash(format!(
        "unknown scheme (supported: {})",
        SCHEMES.join(", ")
    )))
}

/// True for the schemes that are slow by design (PBKDF2, Argon2): callers
/// bound how many run at once and remember successful verifications.
pub fn is_slow(stored: &str) -> bool {
    stored.starts_with("pbkdf2_sha256$") || argon2_phc(stored).is_some()
}

/// Spends what one verification of a [`hash_password`] hash costs, and
/// nothing else: run for a user that does not exist, so that the response
/// time does not tell whether the user does.
pub fn dummy_verify(password: &str) {
    static FIXED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let fixed = FIXED.get_or_init(|| hash_password("rlm_rust dummy password"));
    let _ = std::hint::black_box(verify(password, fixed));
}

/// The PHC string of an Argon2 hash, also under Django's `argon2` prefix.
fn argon2_phc(stored: &str) -> Option<&str> {
    let phc = stored
        .strip_prefix("argon2")
        .filter(|r| r.starts_with("$argon2"))
        .unwrap_or(stored);
    phc.starts_with("$argon2").then_some(phc)
}

fn check_argon2_params(parsed: &argon2::password_hash::PasswordHash<'_>) -> Result<(), BadHash> {
    let params = argon2::Params::try_from(parsed).map_err(|e| BadHash(format!("argon2: {e}")))?;
    for (name, value, max) in [
        ("m_cost", params.m_cost(), MAX_ARGON2_M_COST_KIB),
        ("t_cost", params.t_cost(), MAX_ARGON2_T_COST),
        ("p_cost", params.p_cost(), MAX_ARGON2_P_COST),
    ] {
        if value > max {
            return Err(BadHash(format!(
                "argon2: {name} {value} exceeds the limit of {max}"
            )));
        }
    }
    Ok(())
}

/// Hashes a new password with Argon2id (the argon2 crate's defaults, the
/// OWASP-recommended m=19 MiB, t=2, p=1) as a PHC string.
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random number generator failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes always encode");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters cannot fail on a 16-byte salt")
        .to_string()
}

/// The NT hash (MD4 of the UTF-16LE password) as FreeRADIUS' NT-Password
/// holds it: 32 hex digits.
pub fn nt_hash_hex(password: &str) -> String {
    use md4::Digest;
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    md4::Md4::digest(&utf16)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn verify_django_pbkdf2(password: &str, rest: &str) -> Result<bool, BadHash> {
    let mut parts = rest.splitn(3, '$');
    let (Some(iter), Some(salt), Some(hash)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(BadHash(
            "pbkdf2_sha256: expected iterations$salt$hash".into(),
        ));
    };
    let iterations: u64 = iter
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| BadHash(format!("pbkdf2_sha256: bad iteration count '{iter}'")))?;
    if iterations > u64::from(MAX_PBKDF2_ITERATIONS) {
        return Err(BadHash(format!(
            "pbkdf2_sha256: iterations {iterations} exceeds the limit of {MAX_PBKDF2_ITERATIONS}"
        )));
    }
    let iterations = iterations as u32;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .map_err(|e| BadHash(format!("pbkdf2_sha256: hash is not base64: {e}")))?;
    if expected.is_empty() || expected.len() > 64 {
        return Err(BadHash("pbkdf2_sha256: bad hash length".into()));
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
    Ok(out.ct_eq(&expected).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A Django-format hash computed independently with Python's hashlib:
    // base64(hashlib.pbkdf2_hmac("sha256", b"secret", b"abcdefghijklmnop", 1000)).
    fn django_hash() -> String {
        "pbkdf2_sha256$1000$abcdefghijklmnop$xqWi0Bgxi2nNQ4QS/VBXGMXBXvMSKGsvDVCC3paWhmY=".into()
    }

    #[test]
    fn django_pbkdf2() {
        let h = django_hash();
        assert_eq!(verify("secret", &h), Ok(true));
        assert_eq!(verify("Secret", &h), Ok(false));
        assert!(verify("x", "pbkdf2_sha256$abc$salt$aGFzaA==").is_err());
        assert!(verify("x", "pbkdf2_sha256$10$salt").is_err());
    }

    #[test]
    fn argon2_phc_and_django_prefix() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let phc = argon2::Argon2::default()
            .hash_password(b"secret", &salt)
            .unwrap()
            .to_string();
        assert_eq!(verify("secret", &phc), Ok(true));
        assert_eq!(verify("nope", &phc), Ok(false));
        assert_eq!(verify("secret", &format!("argon2{phc}")), Ok(true));
    }

    #[test]
    fn new_hashes_verify() {
        let h = hash_password("pässword");
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(verify("pässword", &h), Ok(true));
        assert_eq!(verify("password", &h), Ok(false));
        assert_ne!(h, hash_password("pässword"), "salts must differ");
    }

    #[test]
    fn nt_hash_matches_the_known_vector() {
        // The NT hash of "password", as published with every MS-CHAP guide.
        assert_eq!(nt_hash_hex("password"), "8846f7eaee8fb117ad06bdd830b7586c");
    }

    // A PHC string with the given parameters and a made-up digest: only
    // its parameters are ever looked at.
    fn argon2_phc_with(params: &str) -> String {
        format!("$argon2id$v=19${params}$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    }

    fn refusal(stored: &str) -> String {
        match verify("secret", stored) {
            Err(BadHash(m)) => m,
            other => panic!("{stored} was not refused: {other:?}"),
        }
    }

    #[test]
    fn argon2_costs_over_the_caps_are_refused_before_hashing() {
        // 1 GiB: were it run, this test would take seconds and the memory.
        let m = refusal(&argon2_phc_with("m=1048576,t=2,p=1"));
        assert!(
            m.contains("m_cost 1048576 exceeds the limit of 65536"),
            "{m}"
        );
        let m = refusal(&argon2_phc_with("m=19456,t=11,p=1"));
        assert!(m.contains("t_cost 11 exceeds the limit of 10"), "{m}");
        let m = refusal(&argon2_phc_with("m=19456,t=2,p=5"));
        assert!(m.contains("p_cost 5 exceeds the limit of 4"), "{m}");
        let m = refusal(&format!("argon2{}", argon2_phc_with("m=1048576,t=2,p=1")));
        assert!(m.contains("m_cost"), "{m}");
    }

    #[test]
    fn argon2_lanes_at_their_cap_are_verified() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params =
            argon2::Params::new(8 * MAX_ARGON2_P_COST, 1, MAX_ARGON2_P_COST, None).unwrap();
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let phc = a.hash_password(b"secret", &salt).unwrap().to_string();
        assert_eq!(verify("secret", &phc), Ok(true));
        assert_eq!(verify("wrong", &phc), Ok(false));
    }

    #[test]
    fn pbkdf2_iterations_over_the_cap_are_refused_without_running() {
        // Ten million iterations would take seconds; the refusal is instant.
        let m = refusal(
            "pbkdf2_sha256$10000000$abcdefghijklmnop$xqWi0Bgxi2nNQ4QS/VBXGMXBXvMSKGsvDVCC3paWhmY=",
        );
        assert!(
            m.contains("iterations 10000000 exceeds the limit of 2000000"),
            "{m}"
        );
        // Past u32 it is still reported as over the limit, not as garbage.
        let m = refusal("pbkdf2_sha256$99999999999$abcdefghijklmnop$xqWi0Bgxi2nNQ4QS/VBXGMXBXvMSKGsvDVCC3paWhmY=");
        assert!(m.contains("exceeds the limit"), "{m}");
    }

    #[test]
    fn slow_schemes() {
        assert!(is_slow(&django_hash()));
        assert!(is_slow(&argon2_phc_with("m=19456,t=2,p=1")));
        assert!(is_slow(&format!(
            "argon2{}",
            argon2_phc_with("m=19456,t=2,p=1")
        )));
        assert!(is_slow("$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA"));
        assert!(!is_slow("md5$abc"));
        assert!(!is_slow("argon2"));
        assert!(!is_slow(""));
    }

    #[test]
    fn dummy_verify_runs_and_returns() {
        dummy_verify("whatever");
        dummy_verify("");
    }

    #[test]
    fn unknown_scheme_is_an_error() {
        assert!(verify("x", "md5$abc").is_err());
    }
}
