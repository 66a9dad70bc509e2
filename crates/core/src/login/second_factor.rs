//! The second factor of the login procedure (FortiAuthenticator's
//! `token_auth` with its `token_type`), decided here for both front doors.
//!
//! * `ftm`, `ftk`: a TOTP code ([`super::totp`]) from the user's seed
//!   (`rlm_rust_totp`, sealed under the shared [`Secret`]); the last time
//!   step accepted is kept in the database, so a code is accepted once,
//!   whichever door it came through.
//! * `email`, `sms`, `dual`: a 6-digit code sent after the right password,
//!   stored as radius-admin's `sendoobtoken` codes are (HMAC under the
//!   secret, 5 attempts, the newest live code counts) and handed to the
//!   senders through the outbox table (`rlm_rust_oob_outbox`, with a
//!   notification): the module never talks to a mail server.
//! * `ftc` (FortiToken Cloud) is not supported: such users are refused.
//!
//! A code comes with the password in one of two ways ([`Offer`]): appended
//! to it (one User-Password, for NASes and rlm_rest set-ups without
//! challenges), or apart (the answer to an Access-Challenge, whose State
//! was bound to the user when their password proved right; `auth/`'s
//! `token_code`). Only PAP carries a password a code can follow: CHAP,
//! MS-CHAP and EAP-MSCHAPv2 logins of these users are refused.

use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::totp;
use super::{Verified, Verifier, VerifyError, HASH_ATTR};
use crate::secret::Secret;
use crate::store::Store;
use crate::Error;

/// Digits of every code (TOTP and sent).
pub const CODE_DIGITS: usize = 6;
/// Wrong guesses a sent code takes; the next one finds no code.
pub const MAX_ATTEMPTS: i32 = 5;
/// Codes sent to one user per [`SEND_WINDOW`] by logins; past it a login
/// is challenged for the last code sent, and nothing new goes out.
pub const SEND_LIMIT: i64 = 5;
/// The window of [`SEND_LIMIT`] (radius-admin's `sendoobtoken` has the
/// same window and its own configurable limit).
pub const SEND_WINDOW: Duration = Duration::from_secs(15 * 60);

/// What a `token_type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `ftm`, `ftk`: a TOTP code.
    Totp,
    Email,
    Sms,
    /// E-mail and SMS, the same code to both.
    Dual,
    /// `ftc` or anything else: cannot be checked here.
    Unsupported,
}

impl Method {
    pub fn of(token_type: &str) -> Method {
        match token_type {
            "ftm" | "ftk" => Method::Totp,
            "email" => Method::Email,
            "sms" => Method::Sms,
            "dual" => Method::Dual,
            _ => Method::Unsupported,
        }
    }

    /// Whether a code is sent (rather than read from the user's device).
    pub fn sends_code(self) -> bool {
        matches!(self, Method::Email | Method::Sms | Method::Dual)
    }

    /// The Reply-Message of the Access-Challenge.
    pub fn prompt(self) -> &'static str {
        match self {
            Method::Totp => "Enter the 6-digit code of your authenticator app",
            Method::Email => "Enter the 6-digit code sent to you by e-mail",
            Method::Sms => "Enter the 6-digit code sent to you by SMS",
            Method::Dual => "Enter the 6-digit code sent to you by e-mail and SMS",
            Method::Unsupported => "Enter your token code",
        }
    }
}

/// Why the second factor refused a login whose password was right (or,
/// for [`Refusal::NeedsPap`] and [`Refusal::BadState`], was not asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The password was right; the code has not come yet.
    CodeRequired,
    WrongCode,
    /// A right TOTP code whose time step was used already.
    Replayed,
    /// No live sent code: none sent, expired, used, or out of attempts.
    NoCode,
    /// An Access-Request whose State is no open challenge of this user:
    /// forged, expired, answered already, or another user's.
    BadState,
    /// CHAP, MS-CHAP or EAP-MSCHAPv2: no password a code could follow.
    NeedsPap,
    /// The code cannot be checked (why: no secret file, no seed, a
    /// token type not supported, no address to send to).
    Unavailable(&'static str),
}

impl Refusal {
    /// Whether the lockout counts it: a wrong guess of the code does, the
    /// rest is no guess.
    pub fn counts(self) -> bool {
        matches!(
            self,
            Refusal::WrongCode | Refusal::Replayed | Refusal::NoCode
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::CodeRequired => f.write_str("second factor: token code required"),
            Refusal::WrongCode => f.write_str("second factor: wrong token code"),
            Refusal::Replayed => f.write_str("second factor: token code used already"),
            Refusal::NoCode => f.write_str(
                "second factor: no live code (none sent, expired, used, or out of attempts)",
            ),
            Refusal::BadState => {
                f.write_str("second factor: State is no open challenge of this user")
            }
            Refusal::NeedsPap => f.write_str(
                "second factor: token_auth users log in with PAP only (CHAP, MS-CHAP and EAP-MSCHAPv2 carry no password a token code could follow)",
            ),
            Refusal::Unavailable(why) => write!(f, "second factor unavailable: {why}"),
        }
    }
}

/// The module's and radius-admin's second-factor settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The shared secret (module `secret_file`, radius-admin
    /// `--secret-file`); None: token_auth users cannot log in.
    pub secret: Option<Secret>,
    /// How long an Access-Challenge, and a code sent for a login, stay
    /// valid.
    pub code_lifetime: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            secret: None,
            code_lifetime: Duration::from_secs(300),
        }
    }
}

impl Settings {
    fn secret(&self) -> Result<&Secret, Refusal> {
        self.secret.as_ref().ok_or(Refusal::Unavailable(
            "no secret file configured (module secret_file, radius-admin --secret-file)",
        ))
    }
}

/// How the code comes with the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer<'a> {
    /// One User-Password: the password alone, or followed by the code.
    Appended(&'a str),
    /// The password and, maybe, the code (`auth/`'s `token_code`).
    Apart {
        password: &'a str,
        code: Option<&'a str>,
    },
}

/// `password123456` as (`password`, `123456`): a password of at least one
/// character followed by exactly [`CODE_DIGITS`] ASCII digits.
pub fn split_appended(pw: &str) -> Option<(&str, &str)> {
    let n = pw.len();
    if n <= CODE_DIGITS
        || !pw.as_bytes()[n - CODE_DIGITS..]
            .iter()
            .all(u8::is_ascii_digit)
    {
        return None;
    }
    // The last CODE_DIGITS bytes are ASCII: a character boundary.
    Some(pw.split_at(n - CODE_DIGITS))
}

fn is_code(code: &str) -> bool {
    code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The first factor of a second-factor user, whatever Auth-Type says: the
/// module's own hash through the [`Verifier`] (its cache and concurrency
/// bound), any other credential as rlm_pap would decide it.
pub fn check_password(
    control: &[(String, String)],
    verifier: &Verifier,
    username: &str,
    password: &str,
) -> Result<Verified, VerifyError> {
    if let Some(hash) = super::control_value(control, HASH_ATTR) {
        return verifier.verify(username, password, hash);
    }
    Ok(Verified::Fast(super::stock_pap(
        control, username, password,
    )))
}

/// Where a login with a second factor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Password and code right.
    Accept,
    /// The password is wrong (the lockout counts it).
    WrongPassword(Verified),
    /// The password was right, the second factor refused.
    Refused(Refusal),
}

/// The database side of the second factor, from a thread that may block.
pub struct Io<'a> {
    pub store: &'a Store,
    pub rt: &'a tokio::runtime::Handle,
    pub settings: &'a Settings,
}

/// Decides a login of a second-factor user (`user_id`, `method`) from the
/// password and code offered; `check_pw` verifies a password candidate.
/// The password alone, right, gives `Refused(CodeRequired)`: the caller
/// challenges, sends a code, or refuses, as its door allows.
pub fn decide(
    io: &Io,
    user_id: i64,
    method: Method,
    offer: Offer,
    now: f64,
    check_pw: &mut dyn FnMut(&str) -> Result<Verified, Error>,
) -> Result<Outcome, Error> {
    let (password, code) = match offer {
        Offer::Apart { password, code } => (password, code),
        Offer::Appended(pw) => {
            let full = check_pw(pw)?;
            if full.ok() {
                return Ok(match unavailable(io.settings, method) {
                    Some(r) => Outcome::Refused(r),
                    None => Outcome::Refused(Refusal::CodeRequired),
                });
            }
            match split_appended(pw) {
                Some((p, c)) => (p, Some(c)),
                None => return Ok(Outcome::WrongPassword(full)),
            }
        }
    };
    let v = check_pw(password)?;
    if !v.ok() {
        return Ok(Outcome::WrongPassword(v));
    }
    if let Some(r) = unavailable(io.settings, method) {
        return Ok(Outcome::Refused(r));
    }
    let Some(code) = code else {
        return Ok(Outcome::Refused(Refusal::CodeRequired));
    };
    Ok(match verify_code(io, user_id, method, code, now)? {
        Ok(()) => Outcome::Accept,
        Err(r) => Outcome::Refused(r),
    })
}

/// The rest of [`super::pap_login_offer`] for a second-factor user, once
/// authorize built the control list: the decision, the lockout, and a
/// code sent when the password came alone apart from its code (`auth/`:
/// `Offer::Apart` without a code; one User-Password cannot be answered
/// with a challenge over HTTP, so `Offer::Appended` sends nothing).
pub(crate) fn finish_pap_login(
    io: &Io,
    policy: &super::Policy,
    (user_id, method): (i64, Method),
    username: &str,
    offer: Offer,
    cost: super::Cost,
    engine: crate::engine::StringEngine,
) -> Result<super::PapLogin, Error> {
    use crate::account::{LoginDecision, RejectReason};
    let verifier = io.store.verifier();
    let mut check = |pw: &str| {
        check_password(&engine.control, verifier, username, pw).map_err(super::verify_error)
    };
    let outcome = decide(
        io,
        user_id,
        method,
        offer,
        crate::account::now(),
        &mut check,
    )?;
    let reject = |reason| super::PapLogin {
        decision: LoginDecision::Reject { reason },
        code_sent: None,
    };
    match outcome {
        Outcome::Accept => {
            // Where radiusd runs its session section: not a failed login.
            if let Some(reason) =
                super::usage::simultaneous_use(&engine.control, io.store, io.rt, username)?
            {
                return Ok(reject(reason));
            }
            io.rt.block_on(io.store.reset_failures(&[username]))?;
            Ok(super::PapLogin {
                decision: LoginDecision::Accept {
                    control: engine.control,
                    reply: engine.reply,
                },
                code_sent: None,
            })
        }
        Outcome::WrongPassword(v) => {
            io.rt
                .block_on(io.store.record_failure(username, &policy.lockout))?;
            if cost == super::Cost::Uniform && !matches!(v, Verified::Computed(_)) {
                let pw = match offer {
                    Offer::Appended(p) | Offer::Apart { password: p, .. } => p,
                };
                verifier.spend(pw).map_err(Error::Busy)?;
            }
            Ok(reject(RejectReason::BadPassword))
        }
        Outcome::Refused(Refusal::CodeRequired) => {
            let mut out = reject(RejectReason::SecondFactor(Refusal::CodeRequired));
            if let (Offer::Apart { code: None, .. }, true) = (offer, method.sends_code()) {
                let secret = io.settings.secret().expect("decide checked it");
                match io.rt.block_on(io.store.issue_login_code(
                    secret,
                    user_id,
                    method,
                    io.settings.code_lifetime,
                ))? {
                    Ok(issued) => out.code_sent = Some(issued),
                    Err(r) => out = reject(RejectReason::SecondFactor(r)),
                }
            }
            Ok(out)
        }
        Outcome::Refused(r) => {
            if r.counts() {
                io.rt
                    .block_on(io.store.record_failure(username, &policy.lockout))?;
            }
            Ok(reject(RejectReason::SecondFactor(r)))
        }
    }
}

fn unavailable(settings: &Settings, method: Method) -> Option<Refusal> {
    if method == Method::Unsupported {
        return Some(Refusal::Unavailable(
            "token type not supported (ftm, ftk, email, sms and dual are)",
        ));
    }
    settings.secret().err()
}

/// Checks `code` for the user: TOTP against the seed (a step used once),
/// a sent code against the newest live one (an attempt counted).
pub fn verify_code(
    io: &Io,
    user_id: i64,
    method: Method,
    code: &str,
    now: f64,
) -> Result<Result<(), Refusal>, Error> {
    let secret = match io.settings.secret() {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    match method {
        Method::Unsupported => Ok(Err(unavailable(io.settings, method).expect("unsupported"))),
        Method::Totp => io
            .rt
            .block_on(io.store.check_totp(secret, user_id, code, now)),
        _ => {
            if !is_code(code) {
                // Still an attempt on the live code: a guess is a guess.
                io.rt
                    .block_on(io.store.check_oob_code(secret, user_id, "-"))?;
                return Ok(Err(Refusal::WrongCode));
            }
            Ok(
                match io
                    .rt
                    .block_on(io.store.check_oob_code(secret, user_id, code))?
                {
                    Checked::Verified => Ok(()),
                    Checked::Wrong { .. } => Err(Refusal::WrongCode),
                    Checked::NoCode => Err(Refusal::NoCode),
                },
            )
        }
    }
}

/// What checking a sent code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Right: the code is used up.
    Verified,
    /// Wrong: this many attempts are left on the code.
    Wrong { attempts_left: i32 },
    /// No live code: none sent, expired, used, voided or out of attempts.
    NoCode,
}

/// A code handed to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Issued {
    /// Queued for these channels; valid until `expires_at` (RFC 3339).
    Sent {
        channels: Vec<&'static str>,
        expires_at: String,
    },
    /// [`SEND_LIMIT`] codes went out within [`SEND_WINDOW`]: none now.
    Limited,
}

/// A uniformly random 6-digit code (rejection sampling, no modulo bias).
pub fn new_code() -> String {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("the OS random number generator failed");
        let n = u32::from_le_bytes(b);
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// The sealing context of a user's TOTP seed.
pub fn seed_context(user_id: i64) -> Vec<u8> {
    let mut c = b"rlm_rust totp seed\0".to_vec();
    c.extend_from_slice(&user_id.to_be_bytes());
    c
}

/// The sealing context of a queued code.
pub fn outbox_context(code_id: i64) -> Vec<u8> {
    let mut c = b"rlm_rust outbox code\0".to_vec();
    c.extend_from_slice(&code_id.to_be_bytes());
    c
}

/// A code waiting in the outbox, taken by [`Store::take_outbox`].
#[derive(Debug, Clone)]
pub struct Queued {
    pub code_id: i64,
    pub user_id: i64,
    pub channel: String,
    pub destination: String,
    pub sealed_code: Vec<u8>,
    /// Seconds the code has left (negative: expired before delivery).
    pub seconds_left: f64,
}

/// Bytes of a State this module sends.
pub const STATE_BYTES: usize = 16;

fn state_hash(state: &[u8]) -> Vec<u8> {
    Sha256::digest(state).to_vec()
}

const TIMESTAMP: &str =
    "to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

impl Store {
    /// Checks a TOTP `code` against the user's seed; a right code's step
    /// is recorded with a conditional UPDATE, so of two requests with the
    /// same code (on any host, through either door) one wins.
    pub async fn check_totp(
        &self,
        secret: &Secret,
        user_id: i64,
        code: &str,
        now: f64,
    ) -> Result<Result<(), Refusal>, Error> {
        let inner = self.inner();
        let row = inner
            .deadline(
                "totp",
                inner.on_client(|client| async move {
                    Ok(client
                        .query_opt(
                            "SELECT seed, last_step FROM rlm_rust_totp WHERE user_id = $1",
                            &[&user_id],
                        )
                        .await?)
                }),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Err(Refusal::Unavailable(
                "no TOTP seed (POST radiususers/<id>/totp/ makes one)",
            )));
        };
        let (sealed, last): (Vec<u8>, Option<i64>) = (row.get(0), row.get(1));
        let Some(seed) = secret.open(&seed_context(user_id), &sealed) else {
            return Ok(Err(Refusal::Unavailable(
                "the TOTP seed does not open with this secret file",
            )));
        };
        let step = match totp::matching_step(&seed, code, now, last) {
            Ok(s) => s,
            Err(totp::Miss::Wrong) => return Ok(Err(Refusal::WrongCode)),
            Err(totp::Miss::Replayed) => return Ok(Err(Refusal::Replayed)),
        };
        let won = inner
            .deadline("totp", async {
                let client = inner.client().await?;
                Ok(client
                    .execute(
                        "UPDATE rlm_rust_totp SET last_step = $2 \
                         WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
                        &[&user_id, &step],
                    )
                    .await?
                    == 1)
            })
            .await?;
        Ok(if won { Ok(()) } else { Err(Refusal::Replayed) })
    }

    /// Stores a new sealed seed for the user (replacing any other: the
    /// old one's codes stop working, and so does its replay record).
    pub async fn set_totp_seed(
        &self,
        secret: &Secret,
        user_id: i64,
        seed: &[u8],
    ) -> Result<(), Error> {
        let sealed = secret.seal(&seed_context(user_id), seed);
        let inner = self.inner();
        inner
            .deadline(
                "totp",
                inner.on_client(|client| {
                    let sealed = sealed.clone();
                    async move {
                        client
                            .execute(
                                "INSERT INTO rlm_rust_totp (user_id, seed) VALUES ($1, $2) \
                                 ON CONFLICT (user_id) DO UPDATE SET seed = EXCLUDED.seed, \
                                 last_step = NULL, created_at = now()",
                                &[&user_id, &sealed],
                            )
                            .await?;
                        Ok(())
                    }
                }),
            )
            .await
    }

    /// Checks `code` against the user's newest live sent code, counting
    /// the attempt; a right code is used up.
    pub async fn check_oob_code(
        &self,
        secret: &Secret,
        user_id: i64,
        code: &str,
    ) -> Result<Checked, Error> {
        let mac = secret.code_mac(user_id, code);
        let inner = self.inner();
        inner
            .deadline("oob code", async {
                let mut client = inner.client().await?;
                let tx = client.transaction().await?;
                let Some(row) = tx
                    .query_opt(
                        "SELECT id, code_hash, attempts FROM rlm_rust_oob_code \
                         WHERE user_id = $1 AND used_at IS NULL AND expires_at > now() \
                         ORDER BY id DESC LIMIT 1 FOR UPDATE",
                        &[&user_id],
                    )
                    .await?
                else {
                    return Ok(Checked::NoCode);
                };
                let (id, stored, attempts): (i64, Vec<u8>, i32) = (row.get(0), row.get(1), row.get(2));
                if attempts >= MAX_ATTEMPTS {
                    return Ok(Checked::NoCode);
                }
                let right = bool::from(mac.as_slice().ct_eq(stored.as_slice()));
                let out = if right {
                    tx.execute(
                        "UPDATE rlm_rust_oob_code SET used_at = now(), attempts = attempts + 1 WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                    Checked::Verified
                } else {
                    tx.execute(
                        "UPDATE rlm_rust_oob_code SET attempts = attempts + 1 WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                    Checked::Wrong {
                        attempts_left: MAX_ATTEMPTS - attempts - 1,
                    }
                };
                tx.commit().await?;
                Ok(out)
            })
            .await
    }

    /// Makes a code for a login of the user and queues it for delivery to
    /// the user's address(es) for `method`, in one transaction (the
    /// outbox's trigger wakes radius-admin's sender at commit).
    pub async fn issue_login_code(
        &self,
        secret: &Secret,
        user_id: i64,
        method: Method,
        lifetime: Duration,
    ) -> Result<Result<Issued, Refusal>, Error> {
        let inner = self.inner();
        let window = SEND_WINDOW.as_secs_f64();
        let ttl = lifetime.as_secs_f64();
        inner
            .deadline("oob code", async {
                let mut client = inner.client().await?;
                let tx = client.transaction().await?;
                // One issue at a time per user, so the count is exact.
                let Some(row) = tx
                    .query_opt(
                        "SELECT email, mobile_number FROM rlm_rust_user WHERE id = $1 FOR UPDATE",
                        &[&user_id],
                    )
                    .await?
                else {
                    return Ok(Err(Refusal::Unavailable("the user is gone")));
                };
                let (email, mobile): (Option<String>, Option<String>) = (row.get(0), row.get(1));
                let mut to: Vec<(&'static str, String)> = Vec::new();
                if matches!(method, Method::Email | Method::Dual) {
                    to.extend(email.map(|e| ("email", e)));
                }
                if matches!(method, Method::Sms | Method::Dual) {
                    to.extend(mobile.map(|m| ("sms", m)));
                }
                if to.is_empty() {
                    return Ok(Err(Refusal::Unavailable(
                        "no e-mail address or mobile number to send a code to",
                    )));
                }
                let sent: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM rlm_rust_oob_code \
                         WHERE user_id = $1 AND created_at > now() - make_interval(secs => $2)",
                        &[&user_id, &window],
                    )
                    .await?
                    .get(0);
                if sent >= SEND_LIMIT {
                    return Ok(Ok(Issued::Limited));
                }
                let code = new_code();
                let row = tx
                    .query_one(
                        &format!(
                            "INSERT INTO rlm_rust_oob_code (user_id, code_hash, channel, expires_at) \
                             VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
                             RETURNING id, {TIMESTAMP}"
                        ),
                        &[&user_id, &secret.code_mac(user_id, &code).as_slice(), &to[0].0, &ttl],
                    )
                    .await?;
                let (code_id, expires_at): (i64, String) = (row.get(0), row.get(1));
                let sealed = secret.seal(&outbox_context(code_id), code.as_bytes());
                for (channel, dest) in &to {
                    tx.execute(
                        "INSERT INTO rlm_rust_oob_outbox \
                         (code_id, user_id, channel, destination, sealed_code, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
                        &[&code_id, &user_id, channel, dest, &sealed, &ttl],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(Ok(Issued::Sent {
                    channels: to.iter().map(|(c, _)| *c).collect(),
                    expires_at,
                }))
            })
            .await
    }

    /// Takes up to `limit` queued codes (deleting them: each is delivered
    /// at most once, by one radius-admin of several).
    pub async fn take_outbox(&self, limit: i64) -> Result<Vec<Queued>, Error> {
        let inner = self.inner();
        inner
            .deadline("outbox", async {
                let client = inner.client().await?;
                let rows = client
                    .query(
                        "DELETE FROM rlm_rust_oob_outbox WHERE id IN \
                         (SELECT id FROM rlm_rust_oob_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                         RETURNING code_id, user_id, channel, destination, sealed_code, \
                         EXTRACT(EPOCH FROM expires_at - now())::float8",
                        &[&limit],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| Queued {
                        code_id: r.get(0),
                        user_id: r.get(1),
                        channel: r.get(2),
                        destination: r.get(3),
                        sealed_code: r.get(4),
                        seconds_left: r.get(5),
                    })
                    .collect())
            })
            .await
    }

    /// Opens a challenge for `username` (whose password just proved
    /// right): a random State, of which only a hash is stored, valid for
    /// `lifetime`. Expired challenges of anyone are cleared on the way.
    pub async fn open_challenge(
        &self,
        username: &str,
        user_id: i64,
        lifetime: Duration,
    ) -> Result<[u8; STATE_BYTES], Error> {
        let mut state = [0u8; STATE_BYTES];
        getrandom::fill(&mut state).expect("the OS random number generator failed");
        let hash = state_hash(&state);
        let ttl = lifetime.as_secs_f64();
        let inner = self.inner();
        inner
            .deadline(
                "challenge",
                inner.on_client(|client| {
                    let hash = hash.clone();
                    async move {
                        client
                            .execute("DELETE FROM rlm_rust_challenge WHERE expires_at < now()", &[])
                            .await?;
                        client
                            .execute(
                                "INSERT INTO rlm_rust_challenge (state_hash, username, user_id, expires_at) \
                                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
                                 ON CONFLICT (state_hash) DO NOTHING",
                                &[&hash, &username, &user_id, &ttl],
                            )
                            .await?;
                        Ok(())
                    }
                }),
            )
            .await?;
        Ok(state)
    }

    /// Takes the open challenge `state` of `username`: the user id it was
    /// opened for, once; None for a State that is not one (forged,
    /// expired, answered already, or another user's, which stays open for
    /// its user).
    pub async fn take_challenge(&self, username: &str, state: &[u8]) -> Result<Option<i64>, Error> {
        if state.len() != STATE_BYTES {
            return Ok(None);
        }
        let hash = state_hash(state);
        let inner = self.inner();
        inner
            .deadline("challenge", async {
                let client = inner.client().await?;
                Ok(client
                    .query_opt(
                        "DELETE FROM rlm_rust_challenge \
                         WHERE state_hash = $1 AND username = $2 AND expires_at > now() \
                         RETURNING user_id",
                        &[&hash, &username],
                    )
                    .await?
                    .map(|r| r.get(0)))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_codes_are_the_last_six_digits() {
        assert_eq!(split_appended("secret123456"), Some(("secret", "123456")));
        assert_eq!(split_appended("pw1234567"), Some(("pw1", "234567")));
        assert_eq!(split_appended("123456"), None, "no password before it");
        assert_eq!(split_appended("secret12345x"), None);
        assert_eq!(split_appended("sécret123456"), Some(("sécret", "123456")));
        assert_eq!(split_appended("é12345"), None);
        assert_eq!(split_appended(""), None);
    }

    #[test]
    fn methods_and_what_counts() {
        assert_eq!(Method::of("ftm"), Method::Totp);
        assert_eq!(Method::of("ftk"), Method::Totp);
        assert_eq!(Method::of("dual"), Method::Dual);
        assert_eq!(Method::of("ftc"), Method::Unsupported);
        assert!(Method::Email.sends_code() && !Method::Totp.sends_code());
        assert!(Refusal::WrongCode.counts() && Refusal::Replayed.counts());
        assert!(!Refusal::CodeRequired.counts() && !Refusal::BadState.counts());
        assert!(!Refusal::NeedsPap.counts() && !Refusal::Unavailable("x").counts());
        let c = new_code();
        assert!(is_code(&c), "{c}");
        assert!(!is_code("12345") && !is_code("12345a") && !is_code("1234567"));
    }
}
