//! The one login policy. Both front doors call it: the module from
//! radiusd's authorize/authenticate/post-auth, radius-admin's `authorize/`
//! and `token/` through [`pap_login`]. Neither decides a login on its own.
//!
//! A login is decided in this order:
//!
//! 1. lockout, then account state (`rlm_rust_user`: active, expiry): refused
//!    whatever the credentials;
//! 2. rlm_sql's authorize algorithm over the stock tables (check items,
//!    reply items, groups, profiles);
//! 3. `Auth-Type := Reject` from those rows refuses, and so do a profile
//!    user's check items that do not match;
//! 4. a one-time token offered as the password is used up and accepts;
//! 5. otherwise the known-good credential: from the stock rows, or the
//!    profile's hash (served with its NT hash, so MS-CHAP works too), which
//!    this module verifies itself for PAP ([`Verifier`]); a `token_auth`
//!    user also needs a code ([`second_factor`]): PAP only, the Auth-Type
//!    is ours whatever the credential;
//! 6. the outcome is recorded: a failure counts towards the lockout, a
//!    success ends the streak.
//!
//! Inside radiusd, steps 5 and 6 are split across callbacks (pap, mschap and
//! eap verify the stock credentials; post-auth records the outcome); outside
//! radiusd [`pap_login`] runs them itself, with [`crate::credential::pap`]
//! standing in for rlm_pap.

pub mod lockout;
pub mod second_factor;
pub mod totp;
pub mod usage;
pub mod verified;

use crate::account::{self, LoginDecision, RejectReason};
use crate::authorize::{self, Options, PairEngine, ProfileSource, Rcode};
use crate::config::ModuleConfig;
use crate::engine::StringEngine;
use crate::lookup::Lookup;
use crate::store::Store;
use crate::Error;

pub use lockout::Lockout;
pub use verified::{Verified, Verifier, VerifyError};

/// The control attribute holding a hash only this module verifies.
pub const HASH_ATTR: &str = "Rust-Password-Hash";

/// Everything that shapes a login decision, from the module's configuration
/// (or radius-admin's, with the same defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub opts: Options,
    pub lockout: Lockout,
    /// The Auth-Type a PAP request whose credential is [`HASH_ATTR`] gets:
    /// the module instance's name.
    pub auth_type: String,
    /// Store the NT hash of a profile password that has none, at the next
    /// successful verification of that password.
    pub store_nt_hash: bool,
    /// The second factor of `token_auth` users (the secret is loaded by
    /// the caller: `secret_file`, `--secret-file`).
    pub second_factor: second_factor::Settings,
}

impl Policy {
    pub fn from_config(cfg: &ModuleConfig, auth_type: &str) -> Policy {
        Policy {
            opts: Options {
                read_groups: cfg.read_groups,
                read_profiles: cfg.read_profiles,
                default_profile: cfg.default_profile.clone(),
            },
            lockout: Lockout {
                attempts: cfg.lockout_attempts,
                period: cfg.lockout_period,
            },
            auth_type: auth_type.to_string(),
            store_nt_hash: cfg.store_nt_hash,
            second_factor: second_factor::Settings {
                secret: None,
                code_lifetime: cfg.code_lifetime,
            },
        }
    }
}

/// What the procedure needs from the database besides the user's own data.
pub trait LoginIo: ProfileSource {
    /// Uses up one-time token `id`; false when another request won it.
    fn consume_token(&mut self, id: i64) -> Result<bool, String>;

    /// The usage counters' decision for `username` (see [`usage`]).
    fn counters(
        &mut self,
        _username: &str,
        _limits: &crate::usage::Limits,
        _now: i64,
    ) -> Result<crate::usage::CounterDecision, String> {
        Err("usage counters need the database".into())
    }
}

/// One login attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The name looked up (sql_user_name).
    pub username: &'a str,
    /// The clear-text password of a PAP request (User-Password); None for
    /// CHAP, MS-CHAP and EAP, whose credentials radiusd's modules check.
    pub password: Option<&'a str>,
    /// Seconds since the epoch.
    pub now: f64,
}

/// The outcome of steps 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No such user: rlm_sql's `notfound` (another module may know them).
    NotFound,
    /// Refused before any credential was checked; not a failed login.
    Reject(RejectReason),
    /// A one-time token was used up: `Auth-Type := Accept` is set.
    TokenAccepted,
    /// The credential check follows, on the control list as it is now;
    /// `Rcode` is authorize's result.
    Continue(Rcode),
}

impl Verdict {
    /// Whether the rest of this login (its credential check) decides
    /// something the lockout counts.
    pub fn counts(self) -> bool {
        matches!(
            self,
            Verdict::TokenAccepted | Verdict::Continue(Rcode::Ok | Rcode::Updated)
        )
    }
}

/// Credentials FreeRADIUS' own modules verify, and ours.
const CREDENTIALS: &[&str] = &[
    "Cleartext-Password",
    "NT-Password",
    "Crypt-Password",
    "Password-With-Header",
    "MD5-Password",
    "SMD5-Password",
    "SHA-Password",
    "SSHA-Password",
    "SHA2-Password",
    "SSHA2-224-Password",
    "SSHA2-256-Password",
    "SSHA2-384-Password",
    "SSHA2-512-Password",
    HASH_ATTR,
];

/// Steps 1 to 5 of a login, on `engine`'s request and control lists.
pub fn authorize<E: PairEngine, Io: LoginIo>(
    engine: &mut E,
    io: &mut Io,
    lookup: &Lookup,
    policy: &Policy,
    attempt: &Attempt,
) -> Result<Verdict, String> {
    if lookup.locked_until.is_some_and(|until| until > attempt.now) {
        return Ok(Verdict::Reject(RejectReason::Locked));
    }
    if let Some(Err(denial)) = lookup.profile.as_ref().map(|p| p.check(attempt.now)) {
        return Ok(Verdict::Reject(denial.into()));
    }
    let rc = authorize::authorize(engine, &lookup.user, &policy.opts, io)?;
    if matches!(rc, Rcode::Fail | Rcode::Invalid | Rcode::Reject) {
        return Ok(Verdict::Continue(rc));
    }
    if engine
        .control("Auth-Type")
        .is_some_and(|t| t.eq_ignore_ascii_case("Reject"))
    {
        return Ok(Verdict::Reject(RejectReason::AuthTypeReject));
    }
    if let Some(reason) = usage::enforce_counters(engine, io, attempt)? {
        return Ok(Verdict::Reject(reason));
    }
    let Some(profile) = &lookup.profile else {
        if rc == Rcode::NotFound {
            return Ok(Verdict::NotFound);
        }
        claim(engine, policy, attempt)?;
        return Ok(Verdict::Continue(rc));
    };
    // A profile user needs no radcheck rows; but rows they have must match
    // (rlm_sql leaves `noop` when they do not and no group applied).
    if matches!(rc, Rcode::NotFound | Rcode::Noop) && !lookup.user.check.is_empty() {
        return Ok(Verdict::Reject(RejectReason::CheckItems));
    }
    if profile.second_factor.is_some() && attempt.password.is_none() {
        return Ok(Verdict::Reject(RejectReason::SecondFactor(
            second_factor::Refusal::NeedsPap,
        )));
    }
    if let Some(id) = attempt.password.and_then(|pw| profile.token_matching(pw)) {
        if io.consume_token(id)? {
            engine.debug("one-time token accepted and used up");
            engine.set_control("Auth-Type", "Accept")?;
            return Ok(Verdict::TokenAccepted);
        }
    }
    if let Some(hash) = &profile.password_hash {
        if !CREDENTIALS.iter().any(|c| engine.control(c).is_some()) {
            engine.set_control(HASH_ATTR, hash)?;
            if let Some(nt) = &profile.nt_hash {
                engine.set_control("NT-Password", nt)?;
            }
        }
    }
    if profile.second_factor.is_some() {
        // The password and its code are this module's to check, whatever
        // the credential: the Auth-Type is ours.
        engine
            .set_control("Auth-Type", &policy.auth_type)
            .map_err(|e| no_auth_type(policy, &e))?;
    } else {
        claim(engine, policy, attempt)?;
    }
    Ok(Verdict::Continue(match rc {
        Rcode::NotFound | Rcode::Noop => Rcode::Ok,
        rc => rc,
    }))
}

/// A PAP request whose credential only this module can verify gets
/// `Auth-Type := <instance>`, unless something already chose the
/// Auth-Type. Not for other requests: MS-CHAP and EAP are verified by
/// radiusd's modules with the NT-Password served beside the hash.
fn claim<E: PairEngine>(engine: &mut E, policy: &Policy, attempt: &Attempt) -> Result<(), String> {
    if attempt.password.is_none()
        || engine.control(HASH_ATTR).is_none()
        || engine.control("Auth-Type").is_some()
    {
        return Ok(());
    }
    engine
        .set_control("Auth-Type", &policy.auth_type)
        .map_err(|e| no_auth_type(policy, &e))
}

fn no_auth_type(policy: &Policy, e: &str) -> String {
    format!(
        "cannot set Auth-Type {0} ({e}); add `Auth-Type {0} {{ {0} }}` to the authenticate section",
        policy.auth_type
    )
}

/// Step 5 outside radiusd: `password` against the control list authorize
/// built, as radiusd would verify it (our hash under our Auth-Type, the
/// rest as rlm_pap).
pub fn check_credential(
    control: &[(String, String)],
    verifier: &Verifier,
    policy: &Policy,
    username: &str,
    password: &str,
) -> Result<Verified, VerifyError> {
    let get = |name: &str| control_value(control, name);
    match get("Auth-Type") {
        Some(t) if t.eq_ignore_ascii_case("Accept") => return Ok(Verified::Fast(true)),
        Some(t) if t.eq_ignore_ascii_case("Reject") => return Ok(Verified::Fast(false)),
        Some(t) if t.eq_ignore_ascii_case(&policy.auth_type) => {
            return match get(HASH_ATTR) {
                Some(hash) => verifier.verify(username, password, hash),
                None => Ok(Verified::Fast(false)),
            };
        }
        _ => {}
    }
    Ok(Verified::Fast(stock_pap(control, username, password)))
}

/// The first `name` of a control list as the core holds it.
pub(crate) fn control_value<'a>(control: &'a [(String, String)], name: &str) -> Option<&'a str> {
    control
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `password` against the stock credentials in `control`, as rlm_pap
/// decides it (an unusable one is logged and refuses).
pub(crate) fn stock_pap(control: &[(String, String)], username: &str, password: &str) -> bool {
    use crate::credential::PapOutcome;
    match crate::credential::pap(password, control) {
        PapOutcome::Accept => true,
        PapOutcome::Reject | PapOutcome::NoCredential => false,
        PapOutcome::Invalid(why) => {
            log::warn!("{username}: unusable credential: {why}");
            false
        }
    }
}

/// The database behind the procedure, from a thread that may block: a
/// radiusd thread (the module), or radius-admin's `spawn_blocking`
/// ([`pap_login`]).
pub struct BlockingIo<'a> {
    pub store: &'a Store,
    pub rt: &'a tokio::runtime::Handle,
}

impl ProfileSource for BlockingIo<'_> {
    fn profile_groups(
        &mut self,
        profile: &str,
    ) -> Result<Vec<std::sync::Arc<authorize::GroupData>>, String> {
        self.rt
            .block_on(self.store.user_data(profile))
            .map(|u| u.groups)
            .map_err(|e| e.to_string())
    }
}

impl LoginIo for BlockingIo<'_> {
    fn consume_token(&mut self, id: i64) -> Result<bool, String> {
        self.rt
            .block_on(self.store.consume_token(id))
            .map_err(|e| e.to_string())
    }

    fn counters(
        &mut self,
        username: &str,
        limits: &crate::usage::Limits,
        now: i64,
    ) -> Result<crate::usage::CounterDecision, String> {
        self.rt
            .block_on(self.store.counters(username, limits, now))
            .map_err(|e| e.to_string())
    }
}

/// How [`pap_login`] spends its time on a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// As little as the decision needs (rlm_rest's `authorize/`).
    Least,
    /// Every refusal costs one slow verification, so the answer's timing
    /// does not tell whether the user exists (`token/`).
    Uniform,
}

/// A whole PAP login outside radiusd: steps 1 to 6. Blocks the calling
/// thread on the database (never call it from an async worker).
pub fn pap_login(
    store: &Store,
    rt: &tokio::runtime::Handle,
    policy: &Policy,
    username: &str,
    password: &str,
    cost: Cost,
) -> Result<LoginDecision, Error> {
    let offer = second_factor::Offer::Appended(password);
    pap_login_offer(store, rt, policy, username, offer, cost).map(|l| l.decision)
}

/// A PAP login outside radiusd and what its second factor did.
#[derive(Debug, Clone, PartialEq)]
pub struct PapLogin {
    pub decision: LoginDecision,
    /// The code sent because the password came without it (`auth/`).
    pub code_sent: Option<second_factor::Issued>,
}

/// [`pap_login`] with the code of a second-factor user offered either
/// way ([`second_factor::Offer`]); users without one log in with the
/// password alone, whatever else is offered.
pub fn pap_login_offer(
    store: &Store,
    rt: &tokio::runtime::Handle,
    policy: &Policy,
    username: &str,
    offer: second_factor::Offer,
    cost: Cost,
) -> Result<PapLogin, Error> {
    let password = match offer {
        second_factor::Offer::Appended(p) => p,
        second_factor::Offer::Apart { password, .. } => password,
    };
    let done = |decision| PapLogin {
        decision,
        code_sent: None,
    };
    let lookup = rt.block_on(store.lookup(username))?;
    let mut engine = StringEngine::new(vec![
        ("User-Name".to_string(), username.to_string()),
        ("User-Password".to_string(), password.to_string()),
    ]);
    let mut io = BlockingIo { store, rt };
    let attempt = Attempt {
        username,
        password: Some(password),
        now: account::now(),
    };
    let verdict =
        authorize(&mut engine, &mut io, &lookup, policy, &attempt).map_err(|e| Error::BadData {
            table: "radcheck/radreply",
            message: e,
        })?;
    let verifier = store.verifier();
    let refuse = |reason: RejectReason, spent: bool| -> Result<PapLogin, Error> {
        if cost == Cost::Uniform && !spent {
            verifier.spend(password).map_err(Error::Busy)?;
        }
        Ok(done(LoginDecision::Reject { reason }))
    };
    let verified = match verdict {
        Verdict::NotFound => return refuse(RejectReason::UnknownUser, false),
        Verdict::Reject(reason) => return refuse(reason, false),
        Verdict::Continue(Rcode::Fail | Rcode::Invalid) => {
            return Err(Error::BadData {
                table: "radcheck/radreply",
                message: "authorize failed".into(),
            })
        }
        Verdict::Continue(Rcode::Reject) => return refuse(RejectReason::AuthTypeReject, false),
        Verdict::TokenAccepted => Verified::Fast(true),
        Verdict::Continue(_)
            if lookup
                .profile
                .as_ref()
                .is_some_and(|p| p.second_factor.is_some()) =>
        {
            let profile = lookup.profile.as_ref().expect("checked");
            let method = profile.second_factor.expect("checked");
            return second_factor::finish_pap_login(
                &second_factor::Io {
                    store,
                    rt,
                    settings: &policy.second_factor,
                },
                policy,
                (profile.id, method),
                username,
                offer,
                cost,
                engine,
            );
        }
        Verdict::Continue(_) => {
            check_credential(&engine.control, verifier, policy, username, password)
                .map_err(verify_error)?
        }
    };
    if !verified.ok() {
        rt.block_on(store.record_failure(username, &policy.lockout))?;
        return refuse(
            RejectReason::BadPassword,
            matches!(verified, Verified::Computed(_)),
        );
    }
    // Where radiusd runs its session section: not a failed login.
    if let Some(reason) = usage::simultaneous_use(&engine.control, store, rt, username)? {
        return refuse(reason, matches!(verified, Verified::Computed(_)));
    }
    rt.block_on(store.reset_failures(&[username]))?;
    if let (Verified::Computed(true), true) = (verified, policy.store_nt_hash) {
        if let Some(hash) = engine.control(HASH_ATTR) {
            rt.block_on(store.store_nt_hash(username, &hash, password))?;
        }
    }
    Ok(done(LoginDecision::Accept {
        control: engine.control,
        reply: engine.reply,
    }))
}

/// A verifier's refusal to answer as the store's error.
pub(crate) fn verify_error(e: VerifyError) -> Error {
    match e {
        VerifyError::Busy(_) => Error::Busy(e),
        VerifyError::BadHash(b) => Error::BadData {
            table: "rlm_rust_user/radcheck",
            message: b.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
