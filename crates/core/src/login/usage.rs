//! The usage policies inside the login procedure: the counters in step 3
//! (after the authorize algorithm, as rlm_sqlcounter runs after rlm_sql in
//! `authorize`), Simultaneous-Use after the credential (as radiusd's
//! `session` section runs after `authenticate`). The numbers and the
//! decisions are in [`crate::usage`].

use crate::account::RejectReason;
use crate::authorize::PairEngine;
use crate::store::Store;
use crate::usage::{self, CounterDecision, Limits};
use crate::Error;

use super::{Attempt, LoginIo};

/// Session-Timeout is a 32-bit integer.
const MAX_TIMEOUT: u64 = u32::MAX as u64;

/// The counters of the control list against the user's usage: a refusal
/// with its Reply-Message, or the reply capped (Session-Timeout, the
/// octets left in [`usage::OCTETS_REMAINING`]).
pub fn enforce_counters<E: PairEngine, Io: LoginIo>(
    engine: &mut E,
    io: &mut Io,
    attempt: &Attempt,
) -> Result<Option<RejectReason>, String> {
    let limits = Limits::from_control(|n| engine.control(n))?;
    if limits.is_empty() {
        return Ok(None);
    }
    match io.counters(attempt.username, &limits, attempt.now as i64)? {
        CounterDecision::Exceeded {
            counter,
            limit,
            used,
        } => {
            engine.debug(&format!(
                "rejecting: control:{} ({limit}) is not above what was used ({used})",
                counter.attr
            ));
            engine.set_reply("Reply-Message", &counter.exceeded_message())?;
            Ok(Some(RejectReason::UsageLimit(counter)))
        }
        CounterDecision::Allowed {
            session_timeout,
            octets_remaining,
        } => {
            if let Some(left) = session_timeout {
                let left = left.min(MAX_TIMEOUT);
                let have = engine
                    .reply("Session-Timeout")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if have.is_none_or(|h| h > left) {
                    engine.set_reply("Session-Timeout", &left.to_string())?;
                }
            }
            if let Some(left) = octets_remaining {
                engine.set_reply(usage::OCTETS_REMAINING, &left.to_string())?;
            }
            Ok(None)
        }
    }
}

/// Simultaneous-Use for a login outside radiusd, at the point radiusd
/// checks it (after the credential): the control list's limit against
/// the user's open sessions.
pub fn simultaneous_use(
    control: &[(String, String)],
    store: &Store,
    rt: &tokio::runtime::Handle,
    username: &str,
) -> Result<Option<RejectReason>, Error> {
    let Some(max) = control
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(usage::SIMULTANEOUS_USE))
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let max: u32 = max.trim().parse().map_err(|_| Error::BadData {
        table: "radcheck/radgroupcheck",
        message: format!("Simultaneous-Use is not a number: {max:?}"),
    })?;
    let open = rt.block_on(store.open_sessions(username, crate::account::now() as i64))?;
    Ok(usage::over_simultaneous(open, max).then_some(RejectReason::SimultaneousUse { max }))
}

/// A user's usage against their limits, for radius-admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub limits: Vec<usage::LimitUsage>,
    /// Their Simultaneous-Use, if any.
    pub simultaneous_use: Option<u32>,
    pub open_sessions: u32,
}

/// The limits `username` gets from the stock tables (as a request with no
/// attributes of its own gets them: a check item that compares with the
/// request does not match) and their usage against each. Blocks the
/// calling thread on the database.
pub fn report(
    store: &Store,
    rt: &tokio::runtime::Handle,
    opts: &crate::authorize::Options,
    username: &str,
) -> Result<Report, Error> {
    let lookup = rt.block_on(store.lookup(username))?;
    let mut engine =
        crate::engine::StringEngine::new(vec![("User-Name".to_string(), username.to_string())]);
    let bad = |message: String| Error::BadData {
        table: "radcheck/radgroupcheck",
        message,
    };
    crate::authorize::authorize(
        &mut engine,
        &lookup.user,
        opts,
        &mut super::BlockingIo { store, rt },
    )
    .map_err(bad)?;
    let limits = Limits::from_control(|n| engine.control(n)).map_err(bad)?;
    let simultaneous_use = match engine.control(usage::SIMULTANEOUS_USE) {
        Some(v) => Some(
            v.trim()
                .parse()
                .map_err(|_| bad(format!("Simultaneous-Use is not a number: {v:?}")))?,
        ),
        None => None,
    };
    let (limits, open_sessions) =
        rt.block_on(store.usage_report(username, &limits, crate::account::now() as i64))?;
    Ok(Report {
        limits,
        simultaneous_use,
        open_sessions,
    })
}
