//! A small RADIUS/UDP client (RFC 2865/2866/3579) for what radclient cannot
//! do well: hundreds of requests in flight with every answer matched to its
//! request, and packets with odd or broken content.

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCESS_CHALLENGE: u8 = 11;
pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
pub const STATUS_SERVER: u8 = 12;

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const IDLE_TIMEOUT: u8 = 28;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_SESSION_ID: u8 = 44;
pub const EVENT_TIMESTAMP: u8 = 55;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
pub const NAS_PORT_ID: u8 = 87;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b
}

/// A small deterministic generator (xorshift64*) for random packets: a run
/// that failed can be replayed from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // xorshift never leaves 0.
        Rng(seed.max(1))
    }

    /// A seed from /dev/urandom.
    pub fn seed() -> u64 {
        u64::from_ne_bytes(random_bytes())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0; the bias is irrelevant for n this small).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// HMAC-MD5 (RFC 2104), for Message-Authenticator.
fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..16].copy_from_slice(&Md5::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Md5::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Md5::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A request to encode: code, attributes in order, and what to compute.
#[derive(Clone, Debug)]
pub struct Request {
    pub code: u8,
    /// (type, raw value). Values longer than 253 bytes are encoded with a
    /// wrong length byte on purpose only through [`Request::raw_tail`].
    pub attrs: Vec<(u8, Vec<u8>)>,
    /// Cleartext User-Password, hidden per RFC 2865 5.2 when encoded.
    pub password: Option<Vec<u8>>,
    pub message_authenticator: bool,
    /// Bytes appended after the attributes as they are (malformed input).
    pub raw_tail: Vec<u8>,
}

impl Request {
    pub fn new(code: u8) -> Self {
        Request {
            code,
            attrs: Vec::new(),
            password: None,
            message_authenticator: false,
            raw_tail: Vec::new(),
        }
    }

    /// Access-Request with User-Name, User-Password, Message-Authenticator.
    pub fn pap(user: &[u8], password: &[u8]) -> Self {
        Request::new(ACCESS_REQUEST)
            .attr(USER_NAME, user)
            .password(password)
            .message_authenticator()
    }

    pub fn attr(mut self, t: u8, v: &[u8]) -> Self {
        self.attrs.push((t, v.to_vec()));
        self
    }

    pub fn attr_u32(self, t: u8, v: u32) -> Self {
        self.attr(t, &v.to_be_bytes())
    }

    /// Vendor-Specific (RFC 2865 5.26) with one sub-attribute.
    pub fn vsa(self, vendor: u32, t: u8, v: &[u8]) -> Self {
        let mut data = vendor.to_be_bytes().to_vec();
        data.push(t);
        data.push((v.len() + 2) as u8);
        data.extend_from_slice(v);
        self.attr(VENDOR_SPECIFIC, &data)
    }

    pub fn password(mut self, p: &[u8]) -> Self {
        self.password = Some(p.to_vec());
        self
    }

    pub fn message_authenticator(mut self) -> Self {
        self.message_authenticator = true;
        self
    }

    /// Encodes with packet id `id`; returns the bytes and the Request
    /// Authenticator (needed to check the response).
    pub fn encode(&self, id: u8, secret: &str) -> (Vec<u8>, [u8; 16]) {
        let secret = secret.as_bytes();
        let accounting = self.code == ACCOUNTING_REQUEST;
        let authenticator: [u8; 16] = if accounting { [0; 16] } else { random_bytes() };
        let mut attrs = Vec::new();
        let push = |attrs: &mut Vec<u8>, t: u8, v: &[u8]| {
            assert!(v.len() <= 253, "attribute {t} value of {} bytes", v.len());
            attrs.push(t);
            attrs.push((v.len() + 2) as u8);
            attrs.extend_from_slice(v);
        };
        for (t, v) in &self.attrs {
            push(&mut attrs, *t, v);
        }
        if let Some(pw) = &self.password {
            push(
                &mut attrs,
                USER_PASSWORD,
                &hide_password(pw, secret, &authenticator),
            );
        }
        let ma_offset = if self.message_authenticator {
            let off = attrs.len() + 2;
            push(&mut attrs, MESSAGE_AUTHENTICATOR, &[0; 16]);
            Some(20 + off)
        } else {
            None
        };
        attrs.extend_from_slice(&self.raw_tail);
        let len = 20 + attrs.len();
        assert!(len <= 4096, "packet too long");
        let mut pkt = vec![self.code, id];
        pkt.extend_from_slice(&(len as u16).to_be_bytes());
        pkt.extend_from_slice(&authenticator);
        pkt.extend_from_slice(&attrs);
        if let Some(off) = ma_offset {
            let mac = hmac_md5(secret, &pkt);
            pkt[off..off + 16].copy_from_slice(&mac);
        }
        if accounting {
            // RFC 2866: MD5(Code+Identifier+Length+16 zero octets+attributes+secret).
            let mut h = Md5::new();
            h.update(&pkt);
            h.update(secret);
            let auth: [u8; 16] = h.finalize().into();
            pkt[4..20].copy_from_slice(&auth);
            return (pkt, auth);
        }
        (pkt, authenticator)
    }
}

/// RFC 2865 5.2 User-Password hiding.
fn hide_password(pw: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut padded = pw.to_vec();
    let n = padded.len().div_ceil(16).max(1) * 16;
    padded.resize(n, 0);
    let mut out = Vec::with_capacity(n);
    let mut prev: Vec<u8> = authenticator.to_vec();
    for chunk in padded.chunks(16) {
        let mut h = Md5::new();
        h.update(secret);
        h.update(&prev);
        let b = h.finalize();
        let c: Vec<u8> = chunk.iter().zip(b.iter()).map(|(p, k)| p ^ k).collect();
        out.extend_from_slice(&c);
        prev = c;
    }
    out
}

/// A verified response.
#[derive(Clone, Debug)]
pub struct Response {
    pub code: u8,
    pub id: u8,
    pub attrs: Vec<(u8, Vec<u8>)>,
}

impl Response {
    pub fn get(&self, t: u8) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(a, _)| *a == t)
            .map(|(_, v)| v.as_slice())
    }

    pub fn get_str(&self, t: u8) -> Option<String> {
        self.get(t).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn get_u32(&self, t: u8) -> Option<u32> {
        self.get(t)
            .and_then(|v| v.try_into().ok())
            .map(u32::from_be_bytes)
    }

    /// Attribute types in order (Message-Authenticator left out).
    pub fn types(&self) -> Vec<u8> {
        self.attrs
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t != MESSAGE_AUTHENTICATOR)
            .collect()
    }
}

/// Decodes a response and checks its Response Authenticator against the
/// request's authenticator and the secret.
pub fn decode_response(buf: &[u8], req_auth: &[u8; 16], secret: &str) -> Result<Response, String> {
    if buf.len() < 20 {
        return Err(format!("short packet ({} bytes)", buf.len()));
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if len < 20 || len > buf.len() {
        return Err(format!("bad length {len}"));
    }
    let buf = &buf[..len];
    let mut h = Md5::new();
    h.update(&buf[..4]);
    h.update(req_auth);
    h.update(&buf[20..]);
    h.update(secret.as_bytes());
    if h.finalize().as_slice() != &buf[4..20] {
        return Err("bad Response Authenticator".into());
    }
    let mut attrs = Vec::new();
    let mut p = 20;
    while p < len {
        if p + 2 > len || buf[p + 1] < 2 || p + buf[p + 1] as usize > len {
            return Err(format!("bad attribute at offset {p}"));
        }
        let l = buf[p + 1] as usize;
        attrs.push((buf[p], buf[p + 2..p + l].to_vec()));
        p += l;
    }
    Ok(Response {
        code: buf[0],
        id: buf[1],
        attrs,
    })
}

/// One request, one answer (or None after `timeout`, no retransmission).
pub fn send(
    server: SocketAddr,
    secret: &str,
    req: &Request,
    timeout: Duration,
) -> Option<Response> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let id = random_bytes::<1>()[0];
    let (pkt, auth) = req.encode(id, secret);
    sock.send_to(&pkt, server).expect("send");
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                if buf[1] != id {
                    continue;
                }
                return decode_response(&buf[..n], &auth, secret).ok();
            }
            Err(_) => return None,
        }
    }
}

/// Outcome of one request sent by [`send_many`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Answered(Response),
    /// An answer whose authenticator or format was wrong.
    Bad(String),
    Lost,
}

/// Sends all `reqs` with up to `in_flight` outstanding at once, spread over
/// sockets of at most 200 outstanding ids each, one thread per socket.
/// Unanswered requests are retransmitted once (same id and bytes: radiusd
/// answers a duplicate from its cache) after `timeout`, then count as lost.
pub fn send_many(
    server: SocketAddr,
    secret: &str,
    reqs: &[Request],
    in_flight: usize,
    timeout: Duration,
) -> Vec<Outcome> {
    const PER_SOCKET: usize = 200;
    let sockets = in_flight.div_ceil(PER_SOCKET).max(1);
    let window = in_flight.div_ceil(sockets).min(255);
    let mut results: Vec<Option<Outcome>> = vec![None; reqs.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..sockets)
            .map(|k| {
                let mine: Vec<usize> = (k..reqs.len()).step_by(sockets).collect();
                s.spawn(move || {
                    (
                        mine.clone(),
                        run_socket(server, secret, reqs, &mine, window, timeout),
                    )
                })
            })
            .collect();
        for h in handles {
            let (idx, outs) = h.join().expect("sender thread");
            for (i, o) in idx.into_iter().zip(outs) {
                results[i] = Some(o);
            }
        }
    });
    results
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Lost))
        .collect()
}

fn run_socket(
    server: SocketAddr,
    secret: &str,
    reqs: &[Request],
    mine: &[usize],
    window: usize,
    timeout: Duration,
) -> Vec<Outcome> {
    struct Pending {
        slot: usize,
        pkt: Vec<u8>,
        auth: [u8; 16],
        sent: Instant,
        retried: bool,
    }
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut out: Vec<Option<Outcome>> = vec![None; mine.len()];
    let mut pending: HashMap<u8, Pending> = HashMap::new();
    let mut free_ids: Vec<u8> = (0..=254u8).rev().collect();
    let mut next = 0usize;
    let mut done = 0usize;
    let mut buf = [0u8; 4096];
    while done < mine.len() {
        while pending.len() < window && next < mine.len() && !free_ids.is_empty() {
            let id = free_ids.pop().expect("checked above");
            let (pkt, auth) = reqs[mine[next]].encode(id, secret);
            sock.send_to(&pkt, server).expect("send");
            pending.insert(
                id,
                Pending {
                    slot: next,
                    pkt,
                    auth,
                    sent: Instant::now(),
                    retried: false,
                },
            );
            next += 1;
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n >= 20 {
                if let Some(p) = pending.remove(&buf[1]) {
                    out[p.slot] = Some(match decode_response(&buf[..n], &p.auth, secret) {
                        Ok(r) => Outcome::Answered(r),
                        Err(e) => Outcome::Bad(e),
                    });
                    free_ids.push(buf[1]);
                    done += 1;
                }
            }
        }
        let now = Instant::now();
        let expired: Vec<u8> = pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let p = pending.get_mut(&id).expect("pending");
            if p.retried {
                let p = pending.remove(&id).expect("pending");
                out[p.slot] = Some(Outcome::Lost);
                // The id is not reused: a late answer must not be taken
                // for another request's.
                done += 1;
            } else {
                sock.send_to(&p.pkt, server).expect("resend");
                p.sent = now;
                p.retried = true;
            }
        }
        // Every id went to a lost request (the server stopped answering):
        // the rest count as lost unsent.
        if free_ids.is_empty() && pending.is_empty() && next < mine.len() {
            for o in &mut out[next..] {
                *o = Some(Outcome::Lost);
            }
            break;
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or(Outcome::Lost))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_md5_rfc2202_vector() {
        // RFC 2202 test case 2.
        let mac = hmac_md5(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(crate::hex(&mac), "750c783e6ab0b503eaa86e310a5db738");
    }

    #[test]
    fn password_hiding_round_trip_length() {
        let h = hide_password(b"0123456789abcdefX", b"s", &[7; 16]);
        assert_eq!(h.len(), 32);
    }
}
