//! The server secret that radius-admin (`--secret-file`) and the module
//! (`secret_file`) share: a file of at least 32 bytes. It keys the HMAC of
//! e-mail/SMS codes (so the table alone does not give them away: an
//! unkeyed hash of 6 digits is reversed by trying all of them) and seals
//! TOTP seeds and queued codes with ChaCha20-Poly1305, under keys derived
//! from it per purpose, so a database dump alone holds no usable seed.

use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The first byte of a sealed value: lets a later format be told apart.
const SEAL_V1: u8 = 1;
const NONCE_BYTES: usize = 12;

/// The shared secret. Never printed: its Debug says only that it is one.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Secret {}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl Secret {
    /// A random key for this process only: codes do not survive a restart
    /// and nothing sealed with it can be opened by another process.
    pub fn random() -> Secret {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the OS random number generator failed");
        Secret(Arc::from(&b[..]))
    }

    pub fn from_bytes(b: &[u8]) -> Result<Secret, String> {
        if b.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the secret must hold at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        Ok(Secret(Arc::from(b)))
    }

    /// Reads an existing secret file (surrounding whitespace ignored).
    /// The module only reads: radius-admin creates the file.
    pub fn load(path: &Path) -> Result<Secret, String> {
        let shown = path.display();
        let b = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
        let text = String::from_utf8_lossy(&b);
        Secret::from_bytes(text.trim().as_bytes()).map_err(|e| format!("{shown}: {e}"))
    }

    /// Reads the secret file; one that does not exist yet is created with
    /// 32 random bytes (64 hex digits), readable by its owner only.
    pub fn load_or_create(path: &Path) -> Result<Secret, String> {
        let shown = path.display();
        match std::fs::metadata(path) {
            Ok(_) => Secret::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut b = [0u8; 32];
                getrandom::fill(&mut b).map_err(|e| format!("random: {e}"))?;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("{shown}: {e}"))?;
                f.write_all(hex.as_bytes())
                    .and_then(|_| f.write_all(b"\n"))
                    .and_then(|_| f.sync_all())
                    .map_err(|e| format!("{shown}: {e}"))?;
                log::info!("created the server secret {shown}");
                Secret::from_bytes(hex.as_bytes())
            }
            Err(e) => Err(format!("{shown}: {e}")),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }

    /// HMAC-SHA256 of an out-of-band code, bound to its user.
    pub fn code_mac(&self, user_id: i64, code: &str) -> [u8; 32] {
        let mut m = self.mac();
        m.update(b"rlm_rust oob code v1\0");
        m.update(&user_id.to_be_bytes());
        m.update(code.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// A key of its own for each use, so that no two uses share one.
    fn derive(&self, label: &str) -> [u8; 32] {
        let mut m = self.mac();
        m.update(b"rlm_rust derived key v1\0");
        m.update(label.as_bytes());
        m.finalize().into_bytes().into()
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new_from_slice(&self.derive("seal")).expect("a 32-byte key")
    }

    /// Encrypts and authenticates `plain`; `context` (e.g. the purpose and
    /// the user id) is authenticated too, so a sealed value copied to
    /// another user or use does not open.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the OS random number generator failed");
        let sealed = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .expect("ChaCha20-Poly1305 encryption of a short message");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain text of a value [`Secret::seal`] made with this secret
    /// and `context`; None when either differs or the value was altered.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != SEAL_V1 || rest.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        self.cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_macs_are_keyed_and_bound_to_the_user() {
        let a = Secret::from_bytes(&[1u8; 32]).unwrap();
        let b = Secret::from_bytes(&[2u8; 32]).unwrap();
        assert_eq!(a.code_mac(1, "123456"), a.code_mac(1, "123456"));
        assert_ne!(a.code_mac(1, "123456"), b.code_mac(1, "123456"));
        assert_ne!(a.code_mac(1, "123456"), a.code_mac(2, "123456"));
        assert!(Secret::from_bytes(&[1u8; 31]).is_err());
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }

    #[test]
    fn sealed_values_open_only_with_their_secret_and_context() {
        let a = Secret::from_bytes(&[1u8; 32]).unwrap();
        let b = Secret::from_bytes(&[2u8; 32]).unwrap();
        let s = a.seal(b"totp 7", b"seed bytes");
        assert_ne!(
            a.seal(b"totp 7", b"seed bytes"),
            s,
            "a fresh nonce each time"
        );
        assert_eq!(a.open(b"totp 7", &s).as_deref(), Some(&b"seed bytes"[..]));
        assert_eq!(a.open(b"totp 8", &s), None, "another user's context");
        assert_eq!(b.open(b"totp 7", &s), None, "another secret");
        let mut bad = s.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(a.open(b"totp 7", &bad), None, "altered");
        assert_eq!(a.open(b"totp 7", &[]), None);
        assert_eq!(a.open(b"totp 7", &[1, 2, 3]), None);
    }
}
