//! Helpers shared by the fuzz targets.
//!
//! The password targets feed hostile *stored* hashes to the verifiers.
//! Their work-factor caps (password::MAX_PBKDF2_ITERATIONS = 2,000,000,
//! credential::MAX_CRYPT_ROUNDS = 1,000,000, MAX_BCRYPT_COST = 14, Argon2
//! m <= 64 MiB, t <= 10) keep one verification to about a second: fine for
//! a login, but a fuzzer that runs such inputs does little else. So
//! [`costly`] skips a value that *may* ask for more than a small work
//! factor while staying under the caps. Values over the caps are still run
//! (they must be refused before any hashing, which is cheap), and so is
//! everything cheap. The estimate is deliberately generous: it looks at
//! every decimal number, every base64 field that could carry a 32-bit
//! big-endian count, every bcrypt cost and every BSDi count, in the value
//! and in its hex and base64 decodings (the layers pap's authorize peels:
//! `0x` octets, base64'd `Password-With-Header`). Skipping too much only
//! loses coverage of the hash libraries themselves.

/// Iterations / rounds / KiB accepted as cheap (below every default).
pub const CHEAP_COUNT: u64 = 1024;
/// The highest cap any verifier applies to a count (PBKDF2's).
pub const HIGHEST_CAP: u64 = 2_000_000;
/// The crypt(3) rounds cap (credential::MAX_CRYPT_ROUNDS).
pub const CRYPT_CAP: u64 = 1_000_000;
/// Argon2's memory cap in KiB (password::MAX_ARGON2_M_COST_KIB).
pub const ARGON2_M_CAP: u64 = 65536;
/// bcrypt costs (2^cost rounds) accepted as cheap.
pub const CHEAP_BCRYPT_COST: u64 = 6;
/// The highest bcrypt cost the verifier accepts.
pub const BCRYPT_CAP: u64 = 14;
/// Longest password handed to a verifier: radius-admin accepts 256 bytes
/// (RADIUS' User-Password at most 128). SHA-crypt and MD5-crypt cost grows
/// with it.
pub const MAX_PASSWORD: usize = 256;

fn expensive(n: u64) -> bool {
    n > CHEAP_COUNT && n <= HIGHEST_CAP
}

/// True when verifying `stored` might cost a real work factor.
pub fn costly(stored: &[u8]) -> bool {
    let mut layers: Vec<Vec<u8>> = vec![stored.to_vec()];
    // Two rounds of peeling: hex and base64 of every layer so far.
    for _ in 0..2 {
        let mut next = Vec::new();
        for l in &layers {
            let body = if l.len() >= 2 && l[..2].eq_ignore_ascii_case(b"0x") {
                &l[2..]
            } else {
                &l[..]
            };
            let h = hex_prefix(body);
            if h.len() >= 4 {
                next.push(h);
            }
            let h = hex_prefix(l);
            if h.len() >= 4 {
                next.push(h);
            }
            let b = base64_prefix(l);
            if b.len() >= 4 {
                next.push(b);
            }
        }
        layers.extend(next);
    }
    layers.iter().any(|l| layer_costly(l))
}

fn layer_costly(l: &[u8]) -> bool {
    // Decimal counts where a scheme puts them: at the start of a value or
    // of a header's body (PBKDF2-SHA*-Password, 389ds), after a `$`, `:` or
    // `+` (Django and passlib PBKDF2, `$PBKDF2$`, `$sha1$`; Rust's integer
    // parser takes a leading `+`), after `rounds=` (SHA-crypt), and Argon2's
    // `m=` against its own cap. A number inside a hex digest is no count.
    let mut at = 0;
    while at < l.len() {
        if l[at].is_ascii_digit() {
            let n = || {
                saturating_decimal(
                    &l[at..]
                        .iter()
                        .copied()
                        .take_while(u8::is_ascii_digit)
                        .collect::<Vec<u8>>(),
                )
            };
            let before = &l[..at];
            if before.ends_with(b"m=") {
                // Argon2 memory in KiB; over 64 MiB it is refused.
                let m = n();
                if m > CHEAP_COUNT && m <= ARGON2_M_CAP {
                    return true;
                }
            } else if (at == 0 || b"$:+}".contains(&l[at - 1]) || before.ends_with(b"rounds="))
                && expensive(n())
            {
                return true;
            }
        }
        at += 1;
    }
    // bcrypt costs.
    for p in [&b"$2a$"[..], b"$2b$", b"$2y$", b"$2x$", b"$2$"] {
        for at in find_all(l, p) {
            let digits: Vec<u8> = l[at + p.len()..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            let n = saturating_decimal(&digits);
            if !digits.is_empty() && n > CHEAP_BCRYPT_COST && n <= BCRYPT_CAP {
                return true;
            }
        }
    }
    // BSDi `_CCCC`: a 24-bit count, least significant character first, at
    // the start of a Crypt-Password value (or after a `{crypt}` header).
    const CRYPT64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let starts = || std::iter::once(0).chain(find_all(l, b"}").map(|at| at + 1));
    for at in starts().filter(|&at| l.get(at) == Some(&b'_')) {
        let n: Option<u64> = l[at + 1..]
            .iter()
            .take(4)
            .enumerate()
            .map(|(i, c)| {
                CRYPT64
                    .iter()
                    .position(|a| a == c)
                    .map(|v| (v as u64) << (6 * i))
            })
            .sum();
        if n.is_some_and(|n| n > CHEAP_COUNT && n <= CRYPT_CAP) {
            return true;
        }
    }
    // Base64 of a big-endian u32 count: X-PBKDF2's field after a `:`, and
    // the first 4 bytes of 389ds' legacy blob (432 characters: a whole
    // value or a header's body).
    let be_count = |f: &[u8]| {
        let d = base64_prefix(f);
        d.len() >= 4 && expensive(u32::from_be_bytes([d[0], d[1], d[2], d[3]]).into())
    };
    if l.split(|&c| c == b':').skip(1).any(be_count) {
        return true;
    }
    starts().any(|at| l.len().saturating_sub(at) >= 400 && be_count(&l[at..]))
}

fn saturating_decimal(d: &[u8]) -> u64 {
    d.iter().fold(0u64, |n, c| {
        n.saturating_mul(10).saturating_add(u64::from(c - b'0'))
    })
}

fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    (0..hay.len().saturating_sub(needle.len() - 1)).filter(move |&i| hay[i..].starts_with(needle))
}

/// Hex digit pairs up to the first that is not one.
fn hex_prefix(s: &[u8]) -> Vec<u8> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks_exact(2)
        .map_while(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Standard base64 up to the first character outside the alphabet,
/// ignoring padding and any trailing partial group.
fn base64_prefix(s: &[u8]) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let vals: Vec<u8> = s.iter().map_while(|&c| val(c)).collect();
    let mut out = Vec::with_capacity(vals.len() * 3 / 4);
    for g in vals.chunks(4) {
        match *g {
            [a, b, c, d] => out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2, c << 6 | d]),
            [a, b, c] => out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2]),
            [a, b] => out.push(a << 2 | b >> 4),
            _ => {}
        }
    }
    out
}

/// Splits `data` at the first `\n`: (first line, rest).
pub fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&c| c == b'\n') {
        Some(n) => (&data[..n], &data[n + 1..]),
        None => (data, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_and_over_the_cap_run_expensive_is_skipped() {
        assert!(!costly(b"pbkdf2_sha256$1000$salt$aGFzaA=="));
        assert!(costly(b"pbkdf2_sha256$870000$salt$aGFzaA=="));
        assert!(!costly(b"pbkdf2_sha256$10000000$salt$aGFzaA=="));
        assert!(costly(b"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"));
        assert!(!costly(b"$argon2id$v=19$m=512,t=2,p=1$c2FsdA$aGFzaA"));
        assert!(costly(b"$2b$12$abcdefghijklmnopqrstuv"));
        assert!(!costly(b"$2b$04$abcdefghijklmnopqrstuv"));
        assert!(costly(b"$6$rounds=656000$salt$x"));
        // 0x000F4240 = 1,000,000 iterations, base64 and hex-wrapped.
        assert!(costly(b"{X-PBKDF2}HMACSHA1:AA9CQA==:c2FsdA==:aGFzaA=="));
        let hex: String = b"{X-PBKDF2}HMACSHA1:AA9CQA==:c2FsdA==:aGFzaA=="
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(costly(format!("0x{hex}").as_bytes()));
        // BSDi: "_/..." little-endian; 'zzz.' is 63+63*64+63*4096 = 262143.
        assert!(costly(b"_zzz.salt"));
        assert!(costly(b"{crypt}_zzz.salt"));
        assert!(!costly(b"_J9..salt"));
        assert!(!costly(b"_zzzzsalt"), "over the cap: refused, cheap");
        // Over Argon2's m cap, under PBKDF2's: still cheap (refused).
        assert!(!costly(b"$argon2id$v=19$m=1048576,t=2,p=1$c2FsdA$aGFzaA"));
        // Digits inside hex digests are not counts.
        assert!(!costly(b"0x5ebe2294ecd0e0f08eab7690d2a6ee69"));
        assert!(!costly(b"878d8014606cda29677a44efa1353fc7"));
        assert!(costly(b"pbkdf2_sha256$+870000$salt$aGFzaA=="));
        assert!(costly(b"{PBKDF2-SHA256}100000$c2FsdA==$aGFzaA=="));
        assert!(costly(b"$sha1$40000$salt$x"));
    }
}
