//! What FreeRADIUS 3.2's `pap` module would answer for a clear-text
//! password, for callers outside radiusd (the admin service's
//! `authorize/` and `token/`). Inside radiusd the real `pap` module (and
//! this module's own `Auth-Type`) decide instead; this is a port of its
//! semantics, written from rlm_pap.c on the v3.2.x branch, so that a login
//! over HTTP succeeds exactly when the same login over RADIUS would.
//!
//! What is followed (with pap listed in `authorize`, as in the stock
//! sites, and `authenticate { Auth-Type PAP { pap } }`):
//!
//! * pap's `authorize`: `Password-With-Header` is replaced by the attribute
//!   its `{header}` names (case-insensitive; a header-less value that is
//!   base64 of `{header}...` is decoded first; an unknown or missing header
//!   makes it a `Cleartext-Password`), the new attribute goes to the *end*
//!   of the control list, and the whole thing is skipped when a
//!   `Cleartext-Password` is present anywhere in control. Hashed values are
//!   "normified" (hex or base64 decoded when long enough), as with
//!   `normalise = yes`, the default.
//! * pap's `authenticate`: the first known-good attribute in control order
//!   is the one used, even if it is unusable; an empty password is invalid.
//! * octets attributes written as `0x...` in the database are hex, as
//!   FreeRADIUS' value parser reads them.
//! * `Rust-Password-Hash` anywhere in control is verified with
//!   [`crate::password::verify`] before pap is consulted, because inside
//!   radiusd this module then sets `Auth-Type := rust` and pap never runs.
//!
//! What differs or is missing:
//!
//! * `Auth-Type` in control is the caller's business (`Accept`/`Reject`
//!   decide before any credential is looked at).
//! * `LM-Password` (pap asks rlm_mschap) is answered [`PapOutcome::Invalid`].
//! * `Crypt-Password` uses a pure-Rust crypt(3): DES, BSDi `_`, MD5 `$1$`,
//!   bcrypt `$2a$`/`$2b$`/`$2y$`, `$sha1$`, SHA-256 `$5$` and SHA-512 `$6$`.
//!   Schemes only the system's libxcrypt knows (yescrypt `$y$`, scrypt `$7$`,
//!   ...) are [`PapOutcome::Invalid`] here, where radiusd could verify them.
//! * Work factors are capped ([`MAX_CRYPT_ROUNDS`], [`MAX_BCRYPT_COST`],
//!   [`crate::password::MAX_PBKDF2_ITERATIONS`]): radiusd would grind
//!   through any value, but an HTTP endpoint must not let a stored hash
//!   cost seconds per request.
//! * `normalise = no` is not modelled.
//! * passlib's "ab64" (`.` for `+`) is refused by pap's base64 decoder,
//!   and so here.

use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::password;

/// What rlm_pap would answer for a password against the known-good
/// credentials in a control list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PapOutcome {
    Accept,
    Reject,
    /// No known-good credential in control.
    NoCredential,
    /// A credential that cannot be used (bad encoding, unsupported scheme,
    /// over a work cap), or an empty password: pap's "invalid".
    Invalid(String),
}

/// The highest rounds accepted from a `Crypt-Password` (`$5$`, `$6$`,
/// `$sha1$`, BSDi `_`). Crypt's default is 5000; passlib's is 656000.
pub const MAX_CRYPT_ROUNDS: u64 = 1_000_000;

/// The highest bcrypt cost accepted from a `Crypt-Password` (2^14 rounds:
/// about a second).
pub const MAX_BCRYPT_COST: u32 = 14;

const RUST_PASSWORD_HASH: &str = "Rust-Password-Hash";

/// Decides `password` against `control` (attribute name, value), in list
/// order, as `pap` 3.2 would after its `authorize` ran on that list.
pub fn pap(password: &str, control: &[(String, String)]) -> PapOutcome {
    if let Some(stored) = rust_hash(control) {
        return match password::verify(password, stored) {
            Ok(true) => PapOutcome::Accept,
            Ok(false) => PapOutcome::Reject,
            Err(e) => PapOutcome::Invalid(e.to_string()),
        };
    }
    let cred = match known_good(control) {
        Ok(Some(c)) => c,
        Ok(None) => return PapOutcome::NoCredential,
        Err(e) => return PapOutcome::Invalid(e),
    };
    if password.is_empty() {
        return PapOutcome::Invalid("the password must not be empty".into());
    }
    match check(cred, password.as_bytes()) {
        Ok(true) => PapOutcome::Accept,
        Ok(false) => PapOutcome::Reject,
        Err(e) => PapOutcome::Invalid(e),
    }
}

/// True when [`pap`] on `control` would run a deliberately slow hash
/// (PBKDF2, Argon2, bcrypt, SHA-crypt...), so that callers can bound how
/// many run at once.
pub fn is_slow(control: &[(String, String)]) -> bool {
    if let Some(stored) = rust_hash(control) {
        return password::is_slow(stored);
    }
    match known_good(control) {
        Ok(Some(Cred { kind, value })) => match kind {
            Kind::Crypt => crypt_is_slow(&value),
            Kind::Pbkdf2
            | Kind::Pbkdf2Sha1
            | Kind::Pbkdf2Sha256
            | Kind::Pbkdf2Sha512
            | Kind::Pbkdf2Sha256Legacy => true,
            _ => false,
        },
        _ => false,
    }
}

fn rust_hash(control: &[(String, String)]) -> Option<&str> {
    control
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(RUST_PASSWORD_HASH))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cleartext,
    Crypt,
    NsMtaMd5,
    Md5,
    Smd5,
    Sha1,
    Ssha1,
    Sha2,
    Ssha2(Sha2Len),
    Nt,
    Lm,
    Pbkdf2,
    Pbkdf2Sha1,
    Pbkdf2Sha256,
    Pbkdf2Sha512,
    Pbkdf2Sha256Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sha2Len {
    L224 = 28,
    L256 = 32,
    L384 = 48,
    L512 = 64,
}

/// The attributes pap's authenticate recognises, with the dictionary's
/// aliases (SHA1-Password is SHA-Password's number).
const ATTRIBUTES: &[(&str, Kind)] = &[
    ("Cleartext-Password", Kind::Cleartext),
    ("Crypt-Password", Kind::Crypt),
    ("NS-MTA-MD5-Password", Kind::NsMtaMd5),
    ("MD5-Password", Kind::Md5),
    ("SMD5-Password", Kind::Smd5),
    ("SHA-Password", Kind::Sha1),
    ("SHA1-Password", Kind::Sha1),
    ("SSHA-Password", Kind::Ssha1),
    ("SSHA1-Password", Kind::Ssha1),
    ("SHA2-Password", Kind::Sha2),
    ("SSHA2-224-Password", Kind::Ssha2(Sha2Len::L224)),
    ("SSHA2-256-Password", Kind::Ssha2(Sha2Len::L256)),
    ("SSHA2-384-Password", Kind::Ssha2(Sha2Len::L384)),
    ("SSHA2-512-Password", Kind::Ssha2(Sha2Len::L512)),
    ("NT-Password", Kind::Nt),
    ("LM-Password", Kind::Lm),
    ("PBKDF2-Password", Kind::Pbkdf2),
    ("PBKDF2-SHA1-Password", Kind::Pbkdf2Sha1),
    ("PBKDF2-SHA256-Password", Kind::Pbkdf2Sha256),
    ("PBKDF2-SHA512-Password", Kind::Pbkdf2Sha512),
    ("PBKDF2-SHA256-LEGACY-Password", Kind::Pbkdf2Sha256Legacy),
];

/// pap's `header_names`, matched case-insensitively.
const HEADERS: &[(&str, Kind)] = &[
    ("{clear}", Kind::Cleartext),
    ("{cleartext}", Kind::Cleartext),
    ("{md5}", Kind::Md5),
    ("{base64_md5}", Kind::Md5),
    ("{smd5}", Kind::Smd5),
    ("{crypt}", Kind::Crypt),
    ("{sha2}", Kind::Sha2),
    ("{sha224}", Kind::Sha2),
    ("{sha256}", Kind::Sha2),
    ("{sha384}", Kind::Sha2),
    ("{sha512}", Kind::Sha2),
    ("{ssha224}", Kind::Ssha2(Sha2Len::L224)),
    ("{ssha256}", Kind::Ssha2(Sha2Len::L256)),
    ("{ssha384}", Kind::Ssha2(Sha2Len::L384)),
    ("{ssha512}", Kind::Ssha2(Sha2Len::L512)),
    ("{x-pbkdf2}", Kind::Pbkdf2),
    ("{pbkdf2-sha1}", Kind::Pbkdf2Sha1),
    ("{pbkdf2-sha256}", Kind::Pbkdf2Sha256),
    ("{pbkdf2-sha512}", Kind::Pbkdf2Sha512),
    ("{pbkdf2_sha256}", Kind::Pbkdf2Sha256Legacy),
    ("{sha}", Kind::Sha1),
    ("{ssha}", Kind::Ssha1),
    ("{md4}", Kind::Nt),
    ("{nt}", Kind::Nt),
    ("{nthash}", Kind::Nt),
    ("{x-nthash}", Kind::Nt),
    ("{ns-mta-md5}", Kind::NsMtaMd5),
    ("{x- orcllmv}", Kind::Lm),
    ("{x- orclntv}", Kind::Nt),
];

impl Kind {
    fn name(self) -> &'static str {
        ATTRIBUTES
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("password")
    }

    /// The dictionary's string-typed ones; the rest are octets.
    fn is_string(self) -> bool {
        matches!(self, Kind::Cleartext | Kind::Crypt | Kind::NsMtaMd5)
    }

    /// The minimum decoded length pap's authorize normifies with.
    fn authorize_min_len(self) -> Option<usize> {
        match self {
            Kind::Md5 | Kind::Smd5 | Kind::Nt | Kind::Lm => Some(16),
            Kind::Sha1 | Kind::Ssha1 => Some(20),
            Kind::Sha2 => Some(28),
            // Not `len + 1`: authorize and authenticate disagree here.
            Kind::Ssha2(l) => Some(l as usize),
            _ => None,
        }
    }

    /// The minimum decoded length pap's authenticate normifies with.
    fn authenticate_min_len(self) -> Option<usize> {
        match self {
            Kind::Ssha2(l) => Some(l as usize + 1),
            k => k.authorize_min_len(),
        }
    }
}

struct Cred {
    kind: Kind,
    value: Vec<u8>,
}

/// The credential pap's authenticate would pick after its authorize ran on
/// `control`. `Err` is a value FreeRADIUS could not even have built.
fn known_good(control: &[(String, String)]) -> Result<Option<Cred>, String> {
    let has_cleartext = control
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Cleartext-Password"));
    let mut first: Option<Cred> = None;
    // Converted Password-With-Header values are appended to the end of the
    // list, so they only count when nothing earlier did.
    let mut converted: Option<Cred> = None;
    for (name, value) in control {
        if name.eq_ignore_ascii_case("Password-With-Header") {
            if !has_cleartext && converted.is_none() {
                converted = with_header(value.as_bytes());
            }
            continue;
        }
        let Some(&(_, kind)) = ATTRIBUTES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            continue;
        };
        // Checked on every one, not just the first: radiusd fails the
        // whole authorize on a value it cannot parse.
        let value = if kind.is_string() {
            value.as_bytes().to_vec()
        } else {
            octets_from_str(value).ok_or_else(|| {
                format!("{name}: a value starting with 0x must be an even number of hex digits")
            })?
        };
        if first.is_none() {
            first = Some(Cred { kind, value });
        }
    }
    Ok(first.or(converted).map(|mut c| {
        if let Some(min) = c.kind.authorize_min_len() {
            normify(&mut c.value, min);
        }
        c
    }))
}

/// FreeRADIUS' parser for octets values: `0x` means hex, anything else is
/// taken byte for byte.
fn octets_from_str(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() < 2 || !b[..2].eq_ignore_ascii_case(b"0x") {
        return Some(b.to_vec());
    }
    let hex = &b[2..];
    if hex.len() % 2 != 0 {
        return None;
    }
    let out = hex_prefix(hex, usize::MAX);
    (out.len() == hex.len() / 2).then_some(out)
}

/// pap's `normify_with_header`; `None` when pap drops the attribute (a
/// header of 256 bytes or more).
fn with_header(value: &[u8]) -> Option<Cred> {
    let mut value = value.to_vec();
    let mut decoded_once = false;
    loop {
        // The C code works on NUL-terminated strings here.
        let text = until_nul(&value);
        if let Some(q) = text.iter().position(|&c| c == b'}') {
            let hlen = q + 1;
            if hlen >= 256 {
                return None;
            }
            let header = &text[..hlen];
            let Some(&(_, kind)) = HEADERS
                .iter()
                .find(|(h, _)| header.eq_ignore_ascii_case(h.as_bytes()))
            else {
                return Some(Cred {
                    kind: Kind::Cleartext,
                    value: text.to_vec(),
                });
            };
            let rest = if kind.is_string() {
                until_nul(&value[hlen..]).to_vec()
            } else {
                value[hlen..].to_vec()
            };
            return Some(Cred { kind, value: rest });
        }
        if !decoded_once {
            if let Some(d) = base64_decode(&value, 256) {
                if d.first() == Some(&b'{') && d.contains(&b'}') {
                    value = d;
                    decoded_once = true;
                    continue;
                }
            }
        }
        return Some(Cred {
            kind: Kind::Cleartext,
            value: text.to_vec(),
        });
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// pap's `normify`: hex when the length is even and at least twice
/// `min_len` and every digit decodes; else base64 when long enough and the
/// result is at least `min_len`; else untouched.
fn normify(value: &mut Vec<u8>, min_len: usize) {
    const BUFFER: usize = 256;
    let len = value.len();
    if len % 2 == 0 && len >= 2 * min_len {
        let decoded = hex_prefix(value, BUFFER);
        if decoded.len() == len / 2 {
            *value = decoded;
            return;
        }
    }
    if len * 3 >= min_len * 4 {
        if let Some(decoded) = base64_decode(value, BUFFER) {
            if decoded.len() >= min_len {
                *value = decoded;
            }
        }
    }
}

/// `fr_hex2bin`: decodes digit pairs until the first that is not hex, at
/// most `max_out` bytes.
fn hex_prefix(hex: &[u8], max_out: usize) -> Vec<u8> {
    fn digit(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    hex.chunks_exact(2)
        .take(max_out)
        .map_while(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// `fr_base64_decode` with an output buffer of `outlen` bytes: standard
/// alphabet, padding optional, any run of `=` accepted at the end, and a
/// full 24-bit group needs four free bytes (the C code's off-by-one).
fn base64_decode(input: &[u8], outlen: usize) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut p = 0;
    while input.len() - p >= 4 {
        let (Some(a), Some(b), Some(c), Some(d)) = (
            val(input[p]),
            val(input[p + 1]),
            val(input[p + 2]),
            val(input[p + 3]),
        ) else {
            break;
        };
        if outlen - out.len() <= 3 {
            return None;
        }
        out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2, c << 6 | d]);
        p += 4;
    }
    let tail: Vec<u8> = input[p..].iter().map_while(|&c| val(c)).collect();
    match tail[..] {
        [] => {}
        [a, b] => {
            if outlen - out.len() < 1 {
                return None;
            }
            out.push(a << 2 | b >> 4);
        }
        [a, b, c] => {
            if outlen - out.len() < 2 {
                return None;
            }
            out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2]);
        }
        _ => return None,
    }
    p += tail.len();
    input[p..].iter().all(|&c| c == b'=').then_some(out)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn digest<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = D::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

fn sha2(len: usize, parts: &[&[u8]]) -> Option<Vec<u8>> {
    Some(match len {
        28 => digest::<sha2::Sha224>(parts),
        32 => digest::<sha2::Sha256>(parts),
        48 => digest::<sha2::Sha384>(parts),
        64 => digest::<sha2::Sha512>(parts),
        _ => return None,
    })
}

/// pap's per-attribute comparison; `Err` is pap's "invalid".
fn check(cred: Cred, pw: &[u8]) -> Result<bool, String> {
    let Cred { kind, mut value } = cred;
    if let Some(min) = kind.authenticate_min_len() {
        normify(&mut value, min);
    }
    let bad_length = || format!("the known-good {} has the wrong length", kind.name());
    let v = &value[..];
    match kind {
        Kind::Cleartext => Ok(ct_eq(v, pw)),
        Kind::Crypt => check_crypt(v, pw),
        Kind::NsMtaMd5 => check_ns_mta_md5(v, pw),
        Kind::Md5 if v.len() == 16 => Ok(ct_eq(&digest::<md5::Md5>(&[pw]), v)),
        Kind::Smd5 if v.len() > 16 => Ok(ct_eq(&digest::<md5::Md5>(&[pw, &v[16..]]), &v[..16])),
        Kind::Sha1 if v.len() == 20 => Ok(ct_eq(&digest::<sha1::Sha1>(&[pw]), v)),
        Kind::Ssha1 if v.len() > 20 => Ok(ct_eq(&digest::<sha1::Sha1>(&[pw, &v[20..]]), &v[..20])),
        Kind::Sha2 => match sha2(v.len(), &[pw]) {
            Some(d) => Ok(ct_eq(&d, v)),
            None => Err(format!(
                "the known-good SHA2-Password is {} bytes, the length of no SHA-2 digest",
                v.len()
            )),
        },
        Kind::Ssha2(l) if v.len() > l as usize => {
            let n = l as usize;
            let d = sha2(n, &[pw, &v[n..]]).expect("SSHA2 lengths are SHA-2 lengths");
            Ok(ct_eq(&d, &v[..n]))
        }
        Kind::Nt if v.len() == 16 => {
            let ucs2 =
                utf8_to_ucs2(pw).ok_or("the password does not fit pap's UCS-2 conversion")?;
            Ok(ct_eq(&digest::<md4::Md4>(&[&ucs2]), v))
        }
        Kind::Lm => Err("LM-Password is only supported inside radiusd (rlm_mschap)".into()),
        Kind::Pbkdf2 => check_pbkdf2(v, pw),
        Kind::Pbkdf2Sha1 | Kind::Pbkdf2Sha256 | Kind::Pbkdf2Sha512 => {
            if v.len() < 2 {
                return Err(format!("{} is too short", kind.name()));
            }
            let hash = match kind {
                Kind::Pbkdf2Sha1 => Prf::Sha1,
                Kind::Pbkdf2Sha256 => Prf::Sha256,
                _ => Prf::Sha512,
            };
            pbkdf2_fields(v, hash, b'$', b'$', false, pw)
        }
        Kind::Pbkdf2Sha256Legacy => check_pbkdf2_legacy(v, pw),
        Kind::Md5 | Kind::Smd5 | Kind::Sha1 | Kind::Ssha1 | Kind::Ssha2(_) | Kind::Nt => {
            Err(bad_length())
        }
    }
}

/// `fr_utf8_to_ucs2` into pap's 512-byte buffer. It is not a real UTF-16
/// encoder (characters outside the BMP come out mangled or fail), but it
/// is what pap hashes, so an NT-Password made by Windows for such a
/// password does not match in pap either.
fn utf8_to_ucs2(input: &[u8]) -> Option<Vec<u8>> {
    const OUTLEN: usize = 512;
    let mut out = Vec::with_capacity(input.len() * 2);
    let mut i = 0;
    while i < input.len() {
        if out.len() >= OUTLEN {
            return None;
        }
        let c = input[i] as u16;
        if c <= 0x7f {
            out.extend_from_slice(&c.to_le_bytes());
            i += 1;
            continue;
        }
        if i == input.len() - 1 || out.len() >= OUTLEN - 1 {
            return None;
        }
        i += 1;
        let c2 = input[i] as u16;
        if c & 0xe0 == 0xc0 {
            out.extend_from_slice(&((c & 0x1f) << 6 | (c2 & 0x3f)).to_le_bytes());
            i += 1;
            continue;
        }
        i += 1;
        // The C code reads the string's terminating NUL here when a
        // three-byte lead is the second-to-last byte.
        let c3 = input.get(i).copied().unwrap_or(0) as u16;
        out.extend_from_slice(&((c & 0xf) << 12 | (c2 & 0x3f) << 6 | (c3 & 0x3f)).to_le_bytes());
        i += 1;
    }
    Some(out)
}

/// Schemes the system crypt(3) of radiusd's host may know but this crate
/// cannot compute: claiming a reject for them would be a lie.
const CRYPT_UNSUPPORTED: &[&str] = &["$y$", "$gy$", "$7$", "$md5", "$3$", "$2x$"];

fn check_crypt(stored: &[u8], pw: &[u8]) -> Result<bool, String> {
    // crypt(3) failing to parse its setting is a plain reject in pap.
    let Ok(stored) = std::str::from_utf8(stored) else {
        return Ok(false);
    };
    if let Some(s) = CRYPT_UNSUPPORTED.iter().find(|s| stored.starts_with(*s)) {
        return Err(format!(
            "Crypt-Password scheme {s} is only supported inside radiusd"
        ));
    }
    crypt_work_within_caps(stored)?;
    // pwhash checks every scheme's salt (and BSDi's count) against crypt's
    // base64 alphabet with an unchecked `c - 0x20`, which overflows on a
    // control character: a panic where overflow checks are on, an
    // encoding error (a reject) where not. Crypt never outputs one, so a
    // setting holding one cannot match anyway: reject it up front.
    if stored.chars().any(|c| c.is_ascii_control()) {
        return Ok(false);
    }
    match pwhash::unix::crypt(pw, stored) {
        Ok(computed) => Ok(ct_eq(computed.as_bytes(), stored.as_bytes())),
        Err(_) => Ok(false),
    }
}

fn crypt_is_slow(stored: &[u8]) -> bool {
    [&b"$2"[..], b"$5$", b"$6$", b"$sha1$", b"_"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Refuses a crypt setting whose work factor exceeds the caps. Settings
/// that do not parse are left for crypt to fail on.
fn crypt_work_within_caps(stored: &str) -> Result<(), String> {
    let over = |what: &str, n: u64, max: u64| {
        Err(format!(
            "Crypt-Password {what} {n} exceeds the limit of {max}"
        ))
    };
    let digits = |s: &str| -> Option<u64> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        // Saturating, so that an absurd count is reported, not ignored.
        (!d.is_empty()).then(|| d.parse::<u64>().unwrap_or(u64::MAX))
    };
    if let Some(rest) = stored
        .strip_prefix("$5$rounds=")
        .or_else(|| stored.strip_prefix("$6$rounds="))
    {
        if let Some(n) = digits(rest).filter(|n| *n > MAX_CRYPT_ROUNDS) {
            return over("rounds", n, MAX_CRYPT_ROUNDS);
        }
    } else if let Some(rest) = stored.strip_prefix("$sha1$") {
        if let Some(n) = digits(rest).filter(|n| *n > MAX_CRYPT_ROUNDS) {
            return over("rounds", n, MAX_CRYPT_ROUNDS);
        }
    } else if let Some(rest) = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| stored.strip_prefix(p))
    {
        if let Some(n) = digits(rest).filter(|n| *n > MAX_BCRYPT_COST as u64) {
            return over("bcrypt cost", n, MAX_BCRYPT_COST as u64);
        }
    } else if let Some(rest) = stored.strip_prefix('_') {
        // Four characters of crypt's base64, least significant first.
        const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let n = rest
            .bytes()
            .take(4)
            .enumerate()
            .map(|(i, c)| {
                ALPHABET
                    .iter()
                    .position(|&a| a == c)
                    .map(|v| (v as u64) << (6 * i))
            })
            .sum::<Option<u64>>();
        if let Some(n) = n.filter(|n| *n > MAX_CRYPT_ROUNDS) {
            return over("rounds", n, MAX_CRYPT_ROUNDS);
        }
    }
    Ok(())
}

/// pap's NS-MTA-MD5: 32 hex digits of MD5(salt, 89, password, 247, salt)
/// followed by the 32-byte salt.
fn check_ns_mta_md5(v: &[u8], pw: &[u8]) -> Result<bool, String> {
    if v.len() != 64 {
        return Err("the known-good NS-MTA-MD5-Password has the wrong length".into());
    }
    // pap decodes pairs until the first non-hex one and wants exactly 16.
    let want = hex_prefix(v, 128);
    if want.len() != 16 {
        return Err("the known-good NS-MTA-MD5-Password is not 32 hex digits and a salt".into());
    }
    // MAX_STRING_LEN (254) - 2 - 2 * 32, the C code's buffer bound.
    if pw.len() >= 188 {
        return Err("the password is too long for NS-MTA-MD5-Password".into());
    }
    let salt = &v[32..];
    let got = digest::<md5::Md5>(&[salt, &[89], pw, &[247], salt]);
    Ok(ct_eq(&got, &want))
}

#[derive(Debug, Clone, Copy)]
enum Prf {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl Prf {
    fn len(self) -> usize {
        match self {
            Prf::Sha1 => 20,
            Prf::Sha224 | Prf::Sha3_224 => 28,
            Prf::Sha256 | Prf::Sha3_256 => 32,
            Prf::Sha384 | Prf::Sha3_384 => 48,
            Prf::Sha512 | Prf::Sha3_512 => 64,
        }
    }

    fn pbkdf2(self, pw: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.len()];
        let o = &mut out[..];
        match self {
            Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(pw, salt, rounds, o),
            Prf::Sha224 => pbkdf2::pbkdf2_hmac::<sha2::Sha224>(pw, salt, rounds, o),
            Prf::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pw, salt, rounds, o),
            Prf::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(pw, salt, rounds, o),
            Prf::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(pw, salt, rounds, o),
            Prf::Sha3_224 => pbkdf2::pbkdf2_hmac::<sha3::Sha3_224>(pw, salt, rounds, o),
            Prf::Sha3_256 => pbkdf2::pbkdf2_hmac::<sha3::Sha3_256>(pw, salt, rounds, o),
            Prf::Sha3_384 => pbkdf2::pbkdf2_hmac::<sha3::Sha3_384>(pw, salt, rounds, o),
            Prf::Sha3_512 => pbkdf2::pbkdf2_hmac::<sha3::Sha3_512>(pw, salt, rounds, o),
        }
        out
    }
}

/// Crypt::PBKDF2's names.
const PBKDF2_CRYPT_NAMES: &[(&str, Prf)] = &[
    ("HMACSHA1", Prf::Sha1),
    ("HMACSHA2+224", Prf::Sha224),
    ("HMACSHA2+256", Prf::Sha256),
    ("HMACSHA2+384", Prf::Sha384),
    ("HMACSHA2+512", Prf::Sha512),
    ("HMACSHA3+224", Prf::Sha3_224),
    ("HMACSHA3+256", Prf::Sha3_256),
    ("HMACSHA3+384", Prf::Sha3_384),
    ("HMACSHA3+512", Prf::Sha3_512),
];

/// passlib's and 389ds' names.
const PBKDF2_PASSLIB_NAMES: &[(&str, Prf)] = &[
    ("sha1", Prf::Sha1),
    ("sha256", Prf::Sha256),
    ("sha512", Prf::Sha512),
];

/// pap's PBKDF2-Password, in its four spellings:
/// `{X-PBKDF2}HMACSHA2+256:<b64 BE iterations>:<b64 salt>:<b64 hash>`,
/// `{PBKDF2-SHA256}<iterations>$<b64 salt>$<b64 hash>` (389ds),
/// `$PBKDF2$HMACSHA2+256:<iterations>:<b64 salt>$<b64 hash>` and
/// `$pbkdf2-sha256$<iterations>$<b64 salt>$<b64 hash>` (passlib).
fn check_pbkdf2(v: &[u8], pw: &[u8]) -> Result<bool, String> {
    if v.len() < 2 {
        return Err("PBKDF2-Password is too short".into());
    }
    // `sizeof("...")` in the C code counts the NUL, hence the `>`.
    let prefixed = |p: &[u8]| v.len() > p.len() && v.starts_with(p);
    if v[0] != b'$' {
        if prefixed(b"{PBKDF2-") {
            return pbkdf2_named(&v[8..], PBKDF2_PASSLIB_NAMES, b'}', b'$', b'$', false, pw);
        }
        let body = if v[0] == b'{' {
            let q = v
                .iter()
                .position(|&c| c == b'}')
                .ok_or("PBKDF2-Password has an unterminated {header}")?;
            &v[q + 1..]
        } else {
            v
        };
        return pbkdf2_named(body, PBKDF2_CRYPT_NAMES, b':', b':', b':', true, pw);
    }
    if prefixed(b"$PBKDF2$") {
        return pbkdf2_named(&v[8..], PBKDF2_CRYPT_NAMES, b':', b':', b'$', false, pw);
    }
    if prefixed(b"$pbkdf2-") {
        return pbkdf2_named(&v[8..], PBKDF2_PASSLIB_NAMES, b'$', b'$', b'$', false, pw);
    }
    Err("the format of PBKDF2-Password is not recognised".into())
}

fn pbkdf2_named(
    v: &[u8],
    names: &[(&str, Prf)],
    scheme_sep: u8,
    iter_sep: u8,
    salt_sep: u8,
    iter_is_base64: bool,
    pw: &[u8],
) -> Result<bool, String> {
    if v.len() <= 1 {
        return Err("PBKDF2-Password is too short".into());
    }
    let q = v
        .iter()
        .position(|&c| c == scheme_sep)
        .ok_or("PBKDF2-Password has no component separators")?;
    let token = &v[..q];
    let prf = names
        .iter()
        .find(|(n, _)| token.eq_ignore_ascii_case(n.as_bytes()))
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            format!(
                "PBKDF2-Password digest '{}' is not supported",
                String::from_utf8_lossy(token)
            )
        })?;
    pbkdf2_fields(&v[q + 1..], prf, iter_sep, salt_sep, iter_is_base64, pw)
}

/// `<iterations><iter_sep><b64 salt><salt_sep><b64 hash>`.
fn pbkdf2_fields(
    v: &[u8],
    prf: Prf,
    iter_sep: u8,
    salt_sep: u8,
    iter_is_base64: bool,
    pw: &[u8],
) -> Result<bool, String> {
    let q = v
        .iter()
        .position(|&c| c == iter_sep)
        .ok_or("PBKDF2-Password has no iterations component")?;
    let iter = &v[..q];
    if iter.is_empty() {
        return Err("PBKDF2-Password has an empty iterations component".into());
    }
    let iterations: u64 = if iter_is_base64 {
        match base64_decode(iter, 4).as_deref() {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]).into(),
            _ => return Err("PBKDF2-Password iterations are not 4 bytes of base64".into()),
        }
    } else {
        std::str::from_utf8(iter)
            .ok()
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .map(|s| s.parse::<u64>().unwrap_or(u64::MAX))
            .ok_or("PBKDF2-Password iterations are not a number")?
    };
    let rest = &v[q + 1..];
    let q = rest
        .iter()
        .position(|&c| c == salt_sep)
        .ok_or("PBKDF2-Password has no salt component")?;
    if q == 0 {
        return Err("PBKDF2-Password has an empty salt component".into());
    }
    let salt =
        base64_decode(&rest[..q], 3 * (q / 4) + 2).ok_or("PBKDF2-Password salt is not base64")?;
    let hash = base64_decode(&rest[q + 1..], 64).ok_or("PBKDF2-Password hash is not base64")?;
    if hash.len() != prf.len() {
        return Err(format!(
            "PBKDF2-Password hash is {} bytes, its digest makes {}",
            hash.len(),
            prf.len()
        ));
    }
    let rounds = pbkdf2_rounds(iterations.max(1))?;
    Ok(ct_eq(&prf.pbkdf2(pw, &salt, rounds), &hash))
}

fn pbkdf2_rounds(n: u64) -> Result<u32, String> {
    if n > password::MAX_PBKDF2_ITERATIONS as u64 {
        return Err(format!(
            "PBKDF2 iterations {n} exceed the limit of {}",
            password::MAX_PBKDF2_ITERATIONS
        ));
    }
    Ok(n as u32)
}

/// 389ds' first PBKDF2 scheme: base64 of 4 bytes of big-endian
/// iterations, a 64-byte salt and a 256-byte hash (of which PBKDF2-SHA256
/// fills the first 32).
fn check_pbkdf2_legacy(v: &[u8], pw: &[u8]) -> Result<bool, String> {
    const TOTAL: usize = 4 + 64 + 256;
    if v.len() != TOTAL * 4 / 3 {
        return Err(format!(
            "{{PBKDF2_SHA256}} must be {} characters, not {}",
            TOTAL * 4 / 3,
            v.len()
        ));
    }
    let raw = base64_decode(v, TOTAL + 4).ok_or("{PBKDF2_SHA256} is not base64")?;
    if raw.len() != TOTAL {
        return Err(format!(
            "{{PBKDF2_SHA256}} decodes to {} bytes, not {TOTAL}",
            raw.len()
        ));
    }
    let iterations = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if iterations < 1 {
        return Err("{PBKDF2_SHA256} has zero iterations".into());
    }
    let rounds = pbkdf2_rounds(iterations.into())?;
    let got = Prf::Sha256.pbkdf2(pw, &raw[4..68], rounds);
    Ok(ct_eq(&got, &raw[68..100]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use PapOutcome::*;

    // Every vector below was computed outside this crate: python3's hashlib,
    // base64 and crypt modules (libxcrypt), `openssl passwd` and
    // `openssl dgst -md4`. The password is "secret" unless said otherwise.

    fn ctl(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Accepts "secret", rejects "Secret".
    #[track_caller]
    fn right_and_wrong(attr: &str, value: &str) {
        let c = ctl(&[(attr, value)]);
        assert_eq!(pap("secret", &c), Accept, "{attr} = {value}");
        assert_eq!(pap("Secret", &c), Reject, "{attr} = {value}");
    }

    #[track_caller]
    fn invalid(password: &str, c: &[(&str, &str)]) -> String {
        match pap(password, &ctl(c)) {
            Invalid(m) => m,
            other => panic!("{c:?}: expected Invalid, got {other:?}"),
        }
    }

    const MD5_HEX: &str = "5ebe2294ecd0e0f08eab7690d2a6ee69";
    const MD5_B64: &str = "Xr4ilOzQ4PCOq3aQ0qbuaQ==";
    // MD5("secret" . "saltsalt") . "saltsalt"
    const SMD5_HEX: &str = "5407d0ea70a46b0f68deefb1ef4eb09d73616c7473616c74";
    const SMD5_B64: &str = "VAfQ6nCkaw9o3u+x706wnXNhbHRzYWx0";
    const SHA1_HEX: &str = "e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4";
    const SHA1_B64: &str = "5en6G6MezRroT3XKqkdPOmY/BfQ=";
    const SSHA1_HEX: &str = "d46f74e272e44e41968ca36742e07f8695970bf873616c7473616c74";
    const SSHA1_B64: &str = "1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==";
    const NT_HEX: &str = "878d8014606cda29677a44efa1353fc7";
    const CRYPT_MD5: &str = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";

    /// (bits, hex, base64) of SHA-2 and of salted SHA-2 with "saltsalt".
    const SHA2: &[(u32, &str, &str)] = &[
        (224, "95c7fbca92ac5083afda62a564a3d014fc3b72c9140e3cb99ea6bf12", "lcf7ypKsUIOv2mKlZKPQFPw7cskUDjy5nqa/Eg=="),
        (256, "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="),
        (384, "58a775ba4112be3005ae4407ce757d88fda71d40497bb8026ecac54d4e3ffc7232ce8de3ab5acb30ae39760fee7c53ed", "WKd1ukESvjAFrkQHznV9iP2nHUBJe7gCbsrFTU4//HIyzo3jq1rLMK45dg/ufFPt"),
        (512, "bd2b1aaf7ef4f09be9f52ce2d8d599674d81aa9d6a4421696dc4d93dd0619d682ce56b4d64a9ef097761ced99e0f67265b5f76085e5b0ee7ca4696b2ad6fe2b2", "vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD2cmW192CF5bDufKRpayrW/isg=="),
    ];
    const SSHA2: &[(u32, &str, &str)] = &[
        (224, "346e413d15613f26a488049bc59eb3578524063e220e0f1ea52c7c5b73616c7473616c74", "NG5BPRVhPyakiASbxZ6zV4UkBj4iDg8epSx8W3NhbHRzYWx0"),
        (256, "a019ab747700e8e64492408b79787bd5801eadbbe15f3d6aab08eb3ec5e612d373616c7473616c74", "oBmrdHcA6OZEkkCLeXh71YAerbvhXz1qqwjrPsXmEtNzYWx0c2FsdA=="),
        (384, "c598de2ea0394b9939d297d858e76ea0ca7239a74d43684acd55229332e067f2521a91385ff69545452ec0e1f6e7e52b73616c7473616c74", "xZjeLqA5S5k50pfYWOduoMpyOadNQ2hKzVUikzLgZ/JSGpE4X/aVRUUuwOH25+Urc2FsdHNhbHQ="),
        (512, "682bbb25173e90bb2e12616cd734d8f8088fec34869e38c6f9d1f6f03a7e139bacaa8022c5e4cf8a12aa6669166a5e2651fa7adedaaf0809055752ca4c3147e973616c7473616c74", "aCu7JRc+kLsuEmFs1zTY+AiP7DSGnjjG+dH28Dp+E5usqoAixeTPihKqZmkWal4mUfp63tqvCAkFV1LKTDFH6XNhbHRzYWx0"),
    ];

    #[test]
    fn cleartext() {
        right_and_wrong("Cleartext-Password", "secret");
        assert_eq!(
            pap("secre", &ctl(&[("Cleartext-Password", "secret")])),
            Reject
        );
        assert_eq!(
            pap("secrets", &ctl(&[("Cleartext-Password", "secret")])),
            Reject
        );
        // Attribute names are case-insensitive, as in the dictionary.
        right_and_wrong("cleartext-password", "secret");
    }

    #[test]
    fn md5_smd5_sha1_ssha1_in_hex_and_base64() {
        for (attr, hex, b64) in [
            ("MD5-Password", MD5_HEX, MD5_B64),
            ("SMD5-Password", SMD5_HEX, SMD5_B64),
            ("SHA-Password", SHA1_HEX, SHA1_B64),
            ("SHA1-Password", SHA1_HEX, SHA1_B64),
            ("SSHA-Password", SSHA1_HEX, SSHA1_B64),
            ("SSHA1-Password", SSHA1_HEX, SSHA1_B64),
        ] {
            right_and_wrong(attr, hex);
            right_and_wrong(attr, &hex.to_ascii_uppercase());
            right_and_wrong(attr, b64);
        }
        // Padding is optional for pap's base64.
        right_and_wrong("MD5-Password", MD5_B64.trim_end_matches('='));
        // Octets attributes take FreeRADIUS' 0x form as the raw digest.
        right_and_wrong("MD5-Password", &format!("0x{MD5_HEX}"));
        right_and_wrong("SHA-Password", &format!("0X{SHA1_HEX}"));
    }

    #[test]
    fn sha2_length_selects_the_digest() {
        for (bits, hex, b64) in SHA2 {
            right_and_wrong("SHA2-Password", hex);
            right_and_wrong("SHA2-Password", b64);
            for header in ["{sha2}", &format!("{{SHA{bits}}}")] {
                right_and_wrong("Password-With-Header", &format!("{header}{b64}"));
                right_and_wrong("Password-With-Header", &format!("{header}{hex}"));
            }
        }
        // pap's header is only a hint: the length decides.
        right_and_wrong("Password-With-Header", &format!("{{sha256}}{}", SHA2[3].2));
        let m = invalid("secret", &[("SHA2-Password", &SHA1_HEX[..36])]);
        // Too short to normify: pap takes the 36 characters as the digest.
        assert!(m.contains("SHA2-Password is 36 bytes"), "{m}");
    }

    #[test]
    fn salted_sha2() {
        for (bits, hex, b64) in SSHA2 {
            let attr = format!("SSHA2-{bits}-Password");
            right_and_wrong(&attr, hex);
            right_and_wrong(&attr, b64);
            right_and_wrong("Password-With-Header", &format!("{{ssha{bits}}}{b64}"));
        }
        // A bare SHA-256 digest has no salt: too short for SSHA2-256.
        let m = invalid("secret", &[("SSHA2-256-Password", SHA2[1].1)]);
        assert!(m.contains("SSHA2-256-Password has the wrong length"), "{m}");
    }

    #[test]
    fn nt_password() {
        right_and_wrong("NT-Password", NT_HEX);
        right_and_wrong("NT-Password", &format!("0x{NT_HEX}"));
        right_and_wrong("NT-Password", &NT_HEX.to_ascii_uppercase());
        for h in ["{nt}", "{NTHASH}", "{x-nthash}", "{md4}", "{X- ORCLNTV}"] {
            right_and_wrong("Password-With-Header", &format!("{h}{NT_HEX}"));
        }
        // MD4 of UTF-16LE "p\u{e4}ss", from openssl.
        let c = ctl(&[("NT-Password", "411b68984d6b19bbb302455798320a06")]);
        assert_eq!(pap("päss", &c), Accept);
        assert_eq!(pap("pass", &c), Reject);
        assert!(invalid("secret", &[("NT-Password", "0x878d")]).contains("wrong length"));
        assert!(invalid("secret", &[("NT-Password", "0x878")]).contains("0x"));
        assert!(invalid("secret", &[("NT-Password", "0xzz")]).contains("0x"));
    }

    #[test]
    fn nt_follows_paps_ucs2_conversion_outside_the_bmp() {
        // pap turns U+1F600 followed by "b" into the code units 0x07d8
        // 0x0880 (not a surrogate pair); MD4 of those bytes from openssl.
        let c = ctl(&[("NT-Password", "a844cad6dbed394847d07485479b752d")]);
        assert_eq!(pap("\u{1f600}b", &c), Accept);
        // Ending in such a character fails pap's conversion.
        let m = invalid("a\u{1f600}", &[("NT-Password", NT_HEX)]);
        assert!(m.contains("UCS-2"), "{m}");
        // So does a password of more than 256 characters.
        assert!(matches!(
            pap(&"x".repeat(257), &ctl(&[("NT-Password", NT_HEX)])),
            Invalid(_)
        ));
        assert_eq!(
            pap(&"x".repeat(256), &ctl(&[("NT-Password", NT_HEX)])),
            Reject
        );
    }

    #[test]
    fn crypt_schemes() {
        for stored in [
            "abNANd1rDfiNc",
            CRYPT_MD5,
            "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA",
            "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            "$6$rounds=10000$saltsalt$WowrPBpEDVlCoruBosYlrZycTCx3//TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8aUe9p55hcAxeGcu58sm3u.",
            "$2b$04$vlQB6kzQaeENMHtWinys0elN9BsQf57.fcgwCYDzAhTC9SihA4nJC",
            "$2a$04$vlQB6kzQaeENMHtWinys0elN9BsQf57.fcgwCYDzAhTC9SihA4nJC",
            "$2y$04$vlQB6kzQaeENMHtWinys0elN9BsQf57.fcgwCYDzAhTC9SihA4nJC",
            "_J9..saltLXKE4peqNCg",
            "$sha1$1000$saltsalt$Afd9xS7u8w4h.ywETK2u0ha2i2TG",
        ] {
            right_and_wrong("Crypt-Password", stored);
        }
        right_and_wrong("Password-With-Header", &format!("{{crypt}}{CRYPT_MD5}"));
        // DES crypt reads eight characters, as crypt(3) does.
        let c = ctl(&[("Crypt-Password", "xyDvUM2MCgdo6")]);
        assert_eq!(pap("secret12", &c), Accept);
        assert_eq!(pap("secret123", &c), Accept);
        assert_eq!(pap("secret1", &c), Reject);
        // A setting crypt(3) cannot use fails the comparison: pap rejects.
        assert_eq!(pap("secret", &ctl(&[("Crypt-Password", "!")])), Reject);
        assert_eq!(pap("secret", &ctl(&[("Crypt-Password", "$9$x$y")])), Reject);
        // Malformed settings, some with multi-byte characters where the
        // salt is cut, are rejected, never a panic.
        for s in [
            "",
            "$",
            "$1$",
            "$6$",
            "ä",
            "aä",
            "_ää",
            "$1$ääääääää$x",
            "$6$rounds=ä$x",
            "$5$äääääääääääääääää$x",
            "$2b$04$",
            "$2b$4$",
            "$2b$03$x",
            "$sha1$ä$",
        ] {
            assert_eq!(pap("secret", &ctl(&[("Crypt-Password", s)])), Reject, "{s}");
        }
    }

    /// Found by fuzz/ (credential_pap): pwhash checks every scheme's salt
    /// (and BSDi's count) with an unchecked `c - 0x20`, so a control
    /// character there panicked (attempt to subtract with overflow) where
    /// overflow checks are on. Crypt never outputs one: pap rejects.
    #[test]
    fn crypt_setting_with_control_characters_is_a_reject() {
        for s in [
            "\x01\x01abcdefghijk",
            "a\x1fDvUM2MCgdo6",
            "\0\0\0\0hijklmassgo",
            "_\x01...saltLXKE4peqNCg",
            "_J9..\x1faltLXKE4peqNCg",
            "$5$roqnds\0/001$saltsalt$x",
            "$5$salt\x01salt$x",
            "$6$rounds=1000$\x7fsalt$x",
            "$1$\x01$x",
            "$2b$04$\x01lQB6kzQaeENMHtWinys0elN9BsQf57.fcgwCYDzAhTC9SihA4nJC",
            "$sha1$1000$\x1falt$x",
        ] {
            assert_eq!(
                pap("secret", &ctl(&[("Crypt-Password", s)])),
                Reject,
                "{s:?}"
            );
            let pwh = format!("{{crypt}}{s}");
            assert_eq!(
                pap("secret", &ctl(&[("Password-With-Header", &pwh)])),
                Reject,
                "{pwh:?}"
            );
        }
    }

    #[test]
    fn crypt_limits_and_schemes_left_to_radiusd() {
        let m = invalid(
            "secret",
            &[("Crypt-Password", "$6$rounds=5000000$saltsalt$x")],
        );
        assert!(
            m.contains("rounds 5000000 exceeds the limit of 1000000"),
            "{m}"
        );
        let m = invalid(
            "secret",
            &[(
                "Crypt-Password",
                "$2b$15$vlQB6kzQaeENMHtWinys0elN9BsQf57.fcgwCYDzAhTC9SihA4nJC",
            )],
        );
        assert!(m.contains("bcrypt cost 15 exceeds the limit of 14"), "{m}");
        let m = invalid(
            "secret",
            &[("Crypt-Password", "$sha1$4000000000$saltsalt$x")],
        );
        assert!(m.contains("exceeds the limit"), "{m}");
        // "zzzz" is 63 * (1 + 64 + 64^2 + 64^3) BSDi rounds.
        let m = invalid("secret", &[("Crypt-Password", "_zzzzsaltLXKE4peqNCg")]);
        assert!(m.contains("rounds 16777215 exceeds"), "{m}");
        let m = invalid("secret", &[("Crypt-Password", "$y$j9T$salt$hash")]);
        assert!(m.contains("$y$") && m.contains("radiusd"), "{m}");
    }

    #[test]
    fn ns_mta_md5() {
        right_and_wrong(
            "NS-MTA-MD5-Password",
            "770b9201fd417f553a26b7b8c15bf282saltsaltsaltsaltsaltsaltsaltsalt",
        );
        right_and_wrong(
            "Password-With-Header",
            "{ns-mta-md5}770b9201fd417f553a26b7b8c15bf282saltsaltsaltsaltsaltsaltsaltsalt",
        );
        assert!(matches!(
            pap("secret", &ctl(&[("NS-MTA-MD5-Password", "770b")])),
            Invalid(_)
        ));
    }

    const SALT_B64: &str = "c2FsdHNhbHRzYWx0MTIzNA=="; // "saltsaltsalt1234"
    const PBKDF2_SHA1: &str = "yy4diR18MSTIJ8NuoyXQcJj3REo=";
    const PBKDF2_SHA256: &str = "JBQUZN/sCOQoX5IaNWSRSEM1MM9T869vpjpS9OoFB8w=";
    const PBKDF2_SHA512: &str =
        "pOoIY9kULcJXVol6gPjzWVHgYlnvW/zqtgMso1J+r7cGf6G81p2MB91H5lSe/oNZjZceCTEh75HPLm2EI9DKew==";

    #[test]
    fn pbkdf2_spellings() {
        // Crypt::PBKDF2's LDAP form: iterations are base64 of 4 big-endian
        // bytes ("AAAD6A==" is 1000).
        for (name, hash) in [
            ("HMACSHA1", PBKDF2_SHA1),
            ("HMACSHA2+224", "RCIfZp8L6815594ZQXgCdAhhYB0ksSZqIol6xQ=="),
            ("HMACSHA2+256", PBKDF2_SHA256),
            (
                "HMACSHA2+384",
                "ema70B+TZpyNeHJpWWWvzE9accJbiB14ySF4KQVUZ91jhHmFyG9clwiRfUGQ1YXW",
            ),
            ("HMACSHA2+512", PBKDF2_SHA512),
            (
                "HMACSHA3+256",
                "utXV2bxDB34S23M3DLkfsFe5pNP9Q/qbHHP/xJzUN0k=",
            ),
        ] {
            let body = format!("{name}:AAAD6A==:{SALT_B64}:{hash}");
            right_and_wrong("Password-With-Header", &format!("{{X-PBKDF2}}{body}"));
            right_and_wrong("PBKDF2-Password", &format!("{{X-PBKDF2}}{body}"));
            right_and_wrong("PBKDF2-Password", &body);
        }
        right_and_wrong(
            "PBKDF2-Password",
            &format!("$PBKDF2$HMACSHA1:1000:{SALT_B64}${PBKDF2_SHA1}"),
        );
        right_and_wrong(
            "PBKDF2-Password",
            "$pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0MTIzNA$JBQUZN/sCOQoX5IaNWSRSEM1MM9T869vpjpS9OoFB8w",
        );
        // 389ds: the header names the digest, fields are `$`-separated.
        let ds = format!("{{PBKDF2-SHA256}}1000${SALT_B64}${PBKDF2_SHA256}");
        right_and_wrong("PBKDF2-Password", &ds);
        right_and_wrong("Password-With-Header", &ds);
        right_and_wrong(
            "PBKDF2-SHA1-Password",
            &format!("1000${SALT_B64}${PBKDF2_SHA1}"),
        );
        right_and_wrong(
            "PBKDF2-SHA512-Password",
            &format!("1000${SALT_B64}${PBKDF2_SHA512}"),
        );
        right_and_wrong(
            "Password-With-Header",
            &format!("{{pbkdf2-sha512}}1000${SALT_B64}${PBKDF2_SHA512}"),
        );
        // A hash of the wrong size for its digest is unusable.
        let m = invalid(
            "secret",
            &[(
                "PBKDF2-SHA512-Password",
                &format!("1000${SALT_B64}${PBKDF2_SHA1}"),
            )],
        );
        assert!(m.contains("20 bytes"), "{m}");
        assert!(matches!(
            pap(
                "secret",
                &ctl(&[(
                    "PBKDF2-Password",
                    &format!("HMACMD5:AAAD6A==:{SALT_B64}:{PBKDF2_SHA1}")
                )])
            ),
            Invalid(_)
        ));
    }

    #[test]
    fn pbkdf2_iterations_are_capped() {
        // 0x00989680 = 10,000,000.
        let m = invalid(
            "secret",
            &[(
                "PBKDF2-Password",
                &format!("HMACSHA1:AJiWgA==:{SALT_B64}:{PBKDF2_SHA1}"),
            )],
        );
        assert!(m.contains("10000000 exceed the limit of 2000000"), "{m}");
        let m = invalid(
            "secret",
            &[(
                "PBKDF2-SHA1-Password",
                &format!("99999999999${SALT_B64}${PBKDF2_SHA1}"),
            )],
        );
        assert!(m.contains("exceed the limit"), "{m}");
    }

    #[test]
    fn pbkdf2_sha256_legacy() {
        // base64(BE32(1000) . bytes 0..63 . PBKDF2-SHA256 with 256 bytes out)
        let blob = "AAAD6AABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9UBxgXHzEA0wedQV6xsRwUKho+mvb+TXEkzlkIpy63lg0Y0S48MGX58IJ9YxzP8jfoz6/Hp+YOg+xDMwW7RzHNXFh8TkQNp5s8BClsSegYnVtLH4S47BYv3Xnxc31y2DtUo3+csfvJ9RsONJjarJ8/KIA3dL55wHe7Tu3/0TTZCcpwOf9MOyZRfjNRib8bjd+dpZ/nb44Yaph2QUzyTtkm6m4Yno3sjqUaeNsRMjDdgPxIBJuyIG50CaKQFtcqyI3m28JR4gxRWjScCCdeXRSceIheVKv+jBXMppBOYoPVmk40Me6VCqauG8/N/Js3xlHim8DhDOjwlDCtvQRzRY/w";
        right_and_wrong("Password-With-Header", &format!("{{PBKDF2_SHA256}}{blob}"));
        right_and_wrong("PBKDF2-SHA256-LEGACY-Password", blob);
        assert!(matches!(
            pap(
                "secret",
                &ctl(&[("PBKDF2-SHA256-LEGACY-Password", &blob[4..])])
            ),
            Invalid(_)
        ));
    }

    #[test]
    fn password_with_header_forms() {
        right_and_wrong("Password-With-Header", "{clear}secret");
        right_and_wrong("Password-With-Header", "{Cleartext}secret");
        right_and_wrong("Password-With-Header", &format!("{{md5}}{MD5_HEX}"));
        right_and_wrong("Password-With-Header", &format!("{{MD5}}{MD5_B64}"));
        right_and_wrong("Password-With-Header", &format!("{{base64_md5}}{MD5_B64}"));
        right_and_wrong("Password-With-Header", &format!("{{smd5}}{SMD5_B64}"));
        right_and_wrong("Password-With-Header", &format!("{{SHA}}{SHA1_B64}"));
        right_and_wrong("Password-With-Header", &format!("{{SSHA}}{SSHA1_B64}"));
        right_and_wrong("Password-With-Header", &format!("{{ssha}}{SSHA1_HEX}"));
        // The whole value base64-encoded, with a binary digest inside:
        // base64("{SSHA}" . SHA1("secret" . "saltsalt") . "saltsalt").
        right_and_wrong(
            "Password-With-Header",
            "e1NTSEF91G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA==",
        );
        right_and_wrong("Password-With-Header", "e2NsZWFyfXNlY3JldA=="); // "{clear}secret"
        right_and_wrong(
            "Password-With-Header",
            "e2NyeXB0fSQxJHNhbHRzYWx0JDl4eTFidGpnekxZZmI3aGl2WHRDLy8=",
        );
        // No header: the value is the clear-text password, even when it is
        // base64 of something ("c2VjcmV0" is base64 of "secret").
        right_and_wrong("Password-With-Header", "secret");
        let c = ctl(&[("Password-With-Header", "c2VjcmV0")]);
        assert_eq!(pap("c2VjcmV0", &c), Accept);
        assert_eq!(pap("secret", &c), Reject);
        // An unknown header is part of a clear-text password.
        let c = ctl(&[("Password-With-Header", "{foo}secret")]);
        assert_eq!(pap("{foo}secret", &c), Accept);
        assert_eq!(pap("secret", &c), Reject);
        // pap drops a value whose header is 256 bytes or more.
        let long = format!("{{{}}}secret", "x".repeat(254));
        assert_eq!(
            pap("secret", &ctl(&[("Password-With-Header", &long)])),
            NoCredential
        );
        let m = invalid(
            "secret",
            &[("Password-With-Header", &format!("{{x- orcllmv}}{NT_HEX}"))],
        );
        assert!(m.contains("LM-Password"), "{m}");
    }

    #[test]
    fn the_first_known_good_attribute_wins() {
        let c = ctl(&[("Cleartext-Password", "other"), ("NT-Password", NT_HEX)]);
        assert_eq!(pap("other", &c), Accept);
        assert_eq!(pap("secret", &c), Reject);
        let c = ctl(&[("NT-Password", NT_HEX), ("Cleartext-Password", "other")]);
        assert_eq!(pap("secret", &c), Accept);
        assert_eq!(pap("other", &c), Reject);
        // Other attributes in between change nothing.
        let c = ctl(&[
            ("Reply-Message", "hi"),
            ("User-Password", "other"),
            ("Auth-Type", "PAP"),
            ("MD5-Password", MD5_HEX),
            ("Cleartext-Password", "other"),
        ]);
        assert_eq!(pap("secret", &c), Accept);
        assert_eq!(pap("other", &c), Reject);
        // Even an unusable first one decides.
        let m = invalid(
            "secret",
            &[("LM-Password", NT_HEX), ("Cleartext-Password", "secret")],
        );
        assert!(m.contains("LM-Password"), "{m}");
        let m = invalid(
            "secret",
            &[("MD5-Password", "abc"), ("Cleartext-Password", "secret")],
        );
        assert!(m.contains("MD5-Password has the wrong length"), "{m}");
    }

    #[test]
    fn password_with_header_goes_to_the_end_or_away() {
        // pap appends the converted attribute after everything else...
        let c = ctl(&[
            ("Password-With-Header", "{clear}other"),
            ("NT-Password", NT_HEX),
        ]);
        assert_eq!(pap("secret", &c), Accept);
        assert_eq!(pap("other", &c), Reject);
        // ...and the first Password-With-Header is the first appended.
        let c = ctl(&[
            ("Password-With-Header", "{clear}secret"),
            ("Password-With-Header", "{clear}other"),
        ]);
        assert_eq!(pap("secret", &c), Accept);
        assert_eq!(pap("other", &c), Reject);
        // A Cleartext-Password anywhere makes pap ignore it.
        let md5 = format!("{{md5}}{MD5_HEX}");
        let c = ctl(&[
            ("Password-With-Header", &md5),
            ("Cleartext-Password", "other"),
        ]);
        assert_eq!(pap("other", &c), Accept);
        assert_eq!(pap("secret", &c), Reject);
    }

    #[test]
    fn rust_password_hash_takes_precedence() {
        // Python: base64(hashlib.pbkdf2_hmac("sha256", b"secret", b"abcdefghijklmnop", 1000))
        let django =
            "pbkdf2_sha256$1000$abcdefghijklmnop$xqWi0Bgxi2nNQ4QS/VBXGMXBXvMSKGsvDVCC3paWhmY=";
        right_and_wrong("Rust-Password-Hash", django);
        // Inside radiusd it sets Auth-Type := rust, so pap never looks.
        let c = ctl(&[
            ("Cleartext-Password", "other"),
            ("Rust-Password-Hash", django),
        ]);
        assert_eq!(pap("secret", &c), Accept);
        assert_eq!(pap("other", &c), Reject);
        let m = invalid("secret", &[("Rust-Password-Hash", "md5$abc")]);
        assert!(m.contains("unknown scheme"), "{m}");
    }

    #[test]
    fn no_credential_and_empty_password() {
        assert_eq!(pap("secret", &[]), NoCredential);
        let c = ctl(&[("User-Password", "secret"), ("Auth-Type", "PAP")]);
        assert_eq!(pap("secret", &c), NoCredential);
        assert_eq!(pap("", &c), NoCredential);
        let m = invalid("", &[("Cleartext-Password", "")]);
        assert!(m.contains("empty"), "{m}");
    }

    #[test]
    fn slow_credentials() {
        let slow = |c: &[(&str, &str)]| is_slow(&ctl(c));
        assert!(slow(&[(
            "Rust-Password-Hash",
            "pbkdf2_sha256$1000$s$aGFzaA=="
        )]));
        assert!(slow(&[("Crypt-Password", "$2b$04$x")]));
        assert!(slow(&[("Crypt-Password", "$6$salt$x")]));
        assert!(slow(&[(
            "Password-With-Header",
            "{x-pbkdf2}HMACSHA1:AAAD6A==:a:b"
        )]));
        assert!(!slow(&[("Crypt-Password", CRYPT_MD5)]));
        assert!(!slow(&[
            ("Cleartext-Password", "x"),
            ("Crypt-Password", "$2b$04$x")
        ]));
        assert!(!slow(&[("NT-Password", NT_HEX)]));
        assert!(!slow(&[]));
    }

    #[test]
    fn paps_base64_decoder() {
        assert_eq!(base64_decode(b"c2VjcmV0", 256).unwrap(), b"secret");
        assert_eq!(base64_decode(b"c2VjcmV0====", 256).unwrap(), b"secret");
        assert_eq!(base64_decode(b"c2VjcmV", 256).unwrap(), b"secre");
        assert!(
            base64_decode(b"c2VjcmV0c", 256).is_none(),
            "one dangling character"
        );
        assert!(
            base64_decode(b"c2Vj=mV0", 256).is_none(),
            "data after padding"
        );
        assert!(base64_decode(b"c2.jcmV0", 256).is_none(), "passlib's ab64");
        // Six bytes need a buffer of seven: the C code's off-by-one.
        assert!(base64_decode(b"c2VjcmV0", 6).is_none());
        assert!(base64_decode(b"c2VjcmV0", 7).is_some());
    }
}
