//! The account state both front doors enforce (the module for RADIUS, the
//! admin service for `authorize/` and logins): the `rlm_rust_user` profile
//! (active, expiry, password hash) and one-time RADIUS tokens.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// FortiAuthenticator's disable reasons (`reason` 0..=8).
pub const REASONS: [&str; 9] = [
    "manually disabled",
    "account inactivity",
    "too many failed attempts",
    "account expiry",
    "password expiry",
    "FTM activation expiry",
    "revoked token",
    "usage limit exceeded",
    "pending administrator approval",
];

/// A user's `rlm_rust_user` row with its open one-time tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: i64,
    pub active: bool,
    pub reason: Option<i16>,
    /// Seconds since the epoch; at or past it the account is expired.
    pub expiration: Option<f64>,
    pub password_hash: Option<String>,
    /// The NT hash (32 hex digits) of the same password, for MS-CHAP.
    pub nt_hash: Option<String>,
    /// Unused, unexpired one-time tokens: (id, SHA-256 of the token).
    pub open_tokens: Vec<(i64, Vec<u8>)>,
    /// The second factor a login needs (`token_auth` with its
    /// `token_type`), None when it needs none.
    pub second_factor: Option<crate::login::second_factor::Method>,
}

/// Why an account may not log in, whatever the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Disabled { reason: Option<i16> },
    Expired,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Disabled { reason: Some(r) } => {
                let text = usize::try_from(*r)
                    .ok()
                    .and_then(|i| REASONS.get(i))
                    .unwrap_or(&"unknown reason");
                write!(f, "account disabled (reason {r}: {text})")
            }
            Denial::Disabled { reason: None } => f.write_str("account disabled"),
            Denial::Expired => f.write_str("account expired (reason 3: account expiry)"),
        }
    }
}

impl Profile {
    /// Active and not expired at `now` (seconds since the epoch).
    pub fn check(&self, now: f64) -> Result<(), Denial> {
        if !self.active {
            return Err(Denial::Disabled {
                reason: self.reason,
            });
        }
        match self.expiration {
            Some(exp) if exp <= now => Err(Denial::Expired),
            _ => Ok(()),
        }
    }

    /// The id of the open one-time token equal to `password`, compared in
    /// constant time.
    pub fn token_matching(&self, password: &str) -> Option<i64> {
        if self.open_tokens.is_empty() {
            return None;
        }
        let h = hash_token(password);
        self.open_tokens
            .iter()
            .find(|(_, stored)| bool::from(stored.as_slice().ct_eq(&h)))
            .map(|(id, _)| *id)
    }
}

/// What tokens are stored as. Tokens are 192-bit random values, so a fast
/// hash is enough (no dictionary to attack) and keeps the hot path cheap.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token: 24 bytes from the OS, 48 hex digits (safe in URLs,
/// headers, CSV and as a RADIUS password).
pub fn new_token() -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why a login was refused. Callers facing the public answer unknown users
/// and wrong passwords alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    UnknownUser,
    BadPassword,
    Disabled {
        reason: Option<i16>,
    },
    Expired,
    /// Too many consecutive failed logins (disable reason 2), until the
    /// lockout period ends or an administrator unlocks.
    Locked,
    /// The user's check items do not match the request.
    CheckItems,
    /// `Auth-Type := Reject` in the control list.
    AuthTypeReject,
    /// A usage counter is used up (logged as disable reason 7; the
    /// account stays active: the next period opens it).
    UsageLimit(crate::usage::Counter),
    /// As many open sessions as `Simultaneous-Use` allows.
    SimultaneousUse {
        max: u32,
    },
    /// The second factor: the code is missing, wrong or used already, or
    /// cannot be checked (see [`crate::login::second_factor::Refusal`]).
    SecondFactor(crate::login::second_factor::Refusal),
}

impl RejectReason {
    /// The Reply-Message radiusd sends with this refusal, when it sends
    /// one.
    pub fn reply_message(&self) -> Option<String> {
        match self {
            RejectReason::UsageLimit(c) => Some(c.exceeded_message()),
            RejectReason::SimultaneousUse { max } => Some(crate::usage::denied_message(*max)),
            _ => None,
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::UnknownUser => f.write_str("unknown user"),
            RejectReason::BadPassword => f.write_str("wrong password"),
            RejectReason::Disabled { reason } => Denial::Disabled { reason: *reason }.fmt(f),
            RejectReason::Expired => Denial::Expired.fmt(f),
            RejectReason::Locked => {
                f.write_str("account locked (reason 2: too many failed attempts)")
            }
            RejectReason::CheckItems => f.write_str("check items do not match the request"),
            RejectReason::AuthTypeReject => f.write_str("Auth-Type := Reject"),
            RejectReason::UsageLimit(c) => write!(
                f,
                "{} used up (reason 7: {}; the account stays active)",
                c.attr, REASONS[7]
            ),
            RejectReason::SimultaneousUse { max } => {
                write!(f, "already logged in (Simultaneous-Use = {max})")
            }
            RejectReason::SecondFactor(r) => r.fmt(f),
        }
    }
}

impl From<Denial> for RejectReason {
    fn from(d: Denial) -> Self {
        match d {
            Denial::Disabled { reason } => RejectReason::Disabled { reason },
            Denial::Expired => RejectReason::Expired,
        }
    }
}

/// The outcome of a login through the HTTP door ([`crate::login::pap_login`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    Accept {
        control: Vec<(String, String)>,
        reply: Vec<(String, String)>,
    },
    Reject {
        reason: RejectReason,
    },
}

/// Control attributes that hold a credential FreeRADIUS' own modules
/// verify; when one is present the profile's hash is not used.
pub const KNOWN_GOOD_CREDENTIALS: &[&str] = &[
    "Cleartext-Password",
    "NT-Password",
    "Crypt-Password",
    "Password-With-Header",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            id: 1,
            active: true,
            reason: None,
            expiration: None,
            password_hash: None,
            nt_hash: None,
            open_tokens: vec![],
            second_factor: None,
        }
    }

    #[test]
    fn active_and_expiry() {
        let mut p = profile();
        assert_eq!(p.check(1000.0), Ok(()));
        p.expiration = Some(1000.0);
        assert_eq!(p.check(999.0), Ok(()));
        assert_eq!(p.check(1000.0), Err(Denial::Expired));
        p.active = false;
        p.reason = Some(2);
        assert_eq!(p.check(0.0), Err(Denial::Disabled { reason: Some(2) }));
        assert_eq!(
            Denial::Disabled { reason: Some(2) }.to_string(),
            "account disabled (reason 2: too many failed attempts)"
        );
    }

    #[test]
    fn tokens_match_by_hash() {
        let mut p = profile();
        let t = new_token();
        assert_eq!(t.len(), 48);
        assert_ne!(t, new_token());
        p.open_tokens = vec![
            (7, hash_token("other").to_vec()),
            (9, hash_token(&t).to_vec()),
        ];
        assert_eq!(p.token_matching(&t), Some(9));
        assert_eq!(p.token_matching("nope"), None);
    }
}
