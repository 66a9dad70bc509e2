//! MS-CHAPv2 (RFC 2759) on the client side, to build the attributes of an
//! Access-Request (RFC 2548) and check the server's authenticator response.
//! radclient's MS-CHAP-Password only does MS-CHAPv1.

use des::cipher::{BlockCipherEncrypt, KeyInit};
use md4::{Digest, Md4};
use sha1::Sha1;

/// NtPasswordHash: MD4 of the UTF-16LE password (the NT-Password value).
pub fn nt_hash(password: &str) -> [u8; 16] {
    let utf16: Vec<u8> = password
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    Md4::digest(&utf16).into()
}

fn challenge_hash(peer: &[u8; 16], auth: &[u8; 16], user: &str) -> [u8; 8] {
    let mut h = Sha1::new();
    h.update(peer);
    h.update(auth);
    h.update(user.as_bytes());
    let d = h.finalize();
    d[..8].try_into().expect("8 bytes")
}

/// 7 key bytes -> 8 DES key bytes (parity bits left zero; DES ignores them).
fn des_key(k: &[u8]) -> [u8; 8] {
    [
        k[0] & 0xfe,
        (k[0] << 7) | (k[1] >> 1),
        (k[1] << 6) | (k[2] >> 2),
        (k[2] << 5) | (k[3] >> 3),
        (k[3] << 4) | (k[4] >> 4),
        (k[4] << 3) | (k[5] >> 5),
        (k[5] << 2) | (k[6] >> 6),
        k[6] << 1,
    ]
}

fn challenge_response(challenge: &[u8; 8], hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(hash);
    let mut out = [0u8; 24];
    for i in 0..3 {
        let cipher = des::Des::new(&des_key(&z[i * 7..i * 7 + 7]).into());
        let mut block = (*challenge).into();
        cipher.encrypt_block(&mut block);
        out[i * 8..i * 8 + 8].copy_from_slice(&block);
    }
    out
}

/// The attributes of an MS-CHAPv2 Access-Request plus what the server must
/// answer in MS-CHAP2-Success.
pub struct MsChapV2 {
    /// MS-CHAP-Challenge value (16 bytes).
    pub challenge: [u8; 16],
    /// MS-CHAP2-Response value (50 bytes).
    pub response: Vec<u8>,
    /// The expected MS-CHAP2-Success value: ident + "S=<40 hex digits>".
    pub expected_success: Vec<u8>,
}

/// `ident` is the CHAP identifier echoed in MS-CHAP2-Success.
pub fn mschapv2(
    user: &str,
    password: &str,
    auth_challenge: [u8; 16],
    peer_challenge: [u8; 16],
    ident: u8,
) -> MsChapV2 {
    let hash = nt_hash(password);
    let ch = challenge_hash(&peer_challenge, &auth_challenge, user);
    let nt_response = challenge_response(&ch, &hash);

    let mut response = vec![ident, 0];
    response.extend_from_slice(&peer_challenge);
    response.extend_from_slice(&[0; 8]);
    response.extend_from_slice(&nt_response);

    // GenerateAuthenticatorResponse (RFC 2759 8.7).
    const MAGIC1: &[u8] = b"Magic server to client signing constant";
    const MAGIC2: &[u8] = b"Pad to make it do more than one iteration";
    let hash_hash = Md4::digest(hash);
    let mut h = Sha1::new();
    h.update(hash_hash);
    h.update(nt_response);
    h.update(MAGIC1);
    let digest = h.finalize();
    let mut h = Sha1::new();
    h.update(digest);
    h.update(ch);
    h.update(MAGIC2);
    let digest = h.finalize();
    let mut expected_success = vec![ident];
    expected_success.extend_from_slice(b"S=");
    expected_success.extend_from_slice(crate::hex(&digest).to_uppercase().as_bytes());

    MsChapV2 {
        challenge: auth_challenge,
        response,
        expected_success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2759 section 9.2 test vectors.
    #[test]
    fn rfc2759_vectors() {
        let user = "User";
        let password = "clientPass";
        let auth: [u8; 16] = crate::unhex("5B5D7C7D7B3F2F3E3C2C602132262628")
            .try_into()
            .unwrap();
        let peer: [u8; 16] = crate::unhex("21402324255E262A28295F2B3A337C7E")
            .try_into()
            .unwrap();
        assert_eq!(
            crate::hex(&nt_hash(password)),
            "44ebba8d5312b8d611474411f56989ae"
        );
        let m = mschapv2(user, password, auth, peer, 0);
        assert_eq!(
            crate::hex(&m.response[26..]),
            "82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df"
        );
        assert_eq!(
            std::str::from_utf8(&m.expected_success[1..]).unwrap(),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }
}
