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

/// True when `password` matches `stored`. Comparison is constant-time.
pub fn verify(password: &str, stored: &str) -> Result<bool, BadHash> {
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return verify_django_pbkdf2(password, rest);
    }
    let phc = stored
        .strip_prefix("argon2")
        .filter(|r| r.starts_with("$argon2"))
        .unwrap_or(stored);
    if phc.starts_with("$argon2") {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(phc).map_err(|e| BadHash(format!("argon2: {e}")))?;
        return Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok());
    }
    Err(BadHash(format!(
        "unknown scheme (supported: {})",
        SCHEMES.join(", ")
    )))
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
    let iterations: u32 = iter
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| BadHash(format!("pbkdf2_sha256: bad iteration count '{iter}'")))?;
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

    #[test]
    fn unknown_scheme_is_an_error() {
        assert!(verify("x", "md5$abc").is_err());
    }
}
