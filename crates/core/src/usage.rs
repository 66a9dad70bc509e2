//! Usage policies: `Simultaneous-Use` (open sessions, as rlm_sql's
//! checksimul counts them) and the usage counters with rlm_sqlcounter's
//! stock names (`Max-Daily-Session`, ..., `Max-All-Octets`).
//!
//! A user's sessions are read from `radacct` and, with the journal, from
//! the records the journal has acknowledged but the shipper has not applied
//! yet ([`crate::sink`] keeps them in memory by user name): those records
//! are applied on top of the rows with the same rules as the upserts, so a
//! Start acknowledged a moment ago already counts. Everything here is
//! decided once and used by both doors (the module and
//! [`crate::login::pap_login`]).

use std::collections::HashMap;
use std::net::IpAddr;

use tokio_postgres::types::ToSql;

use crate::accounting::{AcctRecord, AcctStatus};
use crate::postauth::storable_text;
use crate::store::Store;
use crate::Error;

/// The check item rlm_sql's session section and radiusd compare with.
pub const SIMULTANEOUS_USE: &str = "Simultaneous-Use";
/// What radiusd answers (its default `denied_msg`), with " (N)" when the
/// limit is above 1, as radiusd's auth.c writes it.
pub const DENIED_MSG: &str = "You are already logged in - access denied";
/// The reply attribute carrying the octets left under the traffic limits,
/// for the site to map to its NAS's vendor attribute.
pub const OCTETS_REMAINING: &str = "Rust-Octets-Remaining";

/// The Reply-Message of a Simultaneous-Use refusal.
pub fn denied_message(max: u32) -> String {
    if max > 1 {
        format!("{DENIED_MSG} ({max})")
    } else {
        DENIED_MSG.to_string()
    }
}

/// Whether `open` sessions leave room for one more under `max` (radiusd's
/// `simul_count < maxsimul`).
pub fn over_simultaneous(open: u32, max: u32) -> bool {
    open >= max
}

/// rlm_sqlcounter's `reset` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    Never,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Never => "never",
        }
    }
}

/// What a counter adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Session seconds (`acctsessiontime`).
    Time,
    /// Input + output octets, gigawords included.
    Octets,
}

/// One counter: its check item and what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub attr: &'static str,
    pub period: Period,
    pub measure: Measure,
}

/// Every counter, by its check item (all integer64 in the dictionary).
pub const COUNTERS: [Counter; 8] = [
    Counter {
        attr: "Max-Daily-Session",
        period: Period::Daily,
        measure: Measure::Time,
    },
    Counter {
        attr: "Max-Weekly-Session",
        period: Period::Weekly,
        measure: Measure::Time,
    },
    Counter {
        attr: "Max-Monthly-Session",
        period: Period::Monthly,
        measure: Measure::Time,
    },
    Counter {
        attr: "Max-All-Session",
        period: Period::Never,
        measure: Measure::Time,
    },
    Counter {
        attr: "Max-Daily-Octets",
        period: Period::Daily,
        measure: Measure::Octets,
    },
    Counter {
        attr: "Max-Weekly-Octets",
        period: Period::Weekly,
        measure: Measure::Octets,
    },
    Counter {
        attr: "Max-Monthly-Octets",
        period: Period::Monthly,
        measure: Measure::Octets,
    },
    Counter {
        attr: "Max-All-Octets",
        period: Period::Never,
        measure: Measure::Octets,
    },
];

impl Counter {
    /// The Reply-Message of a refusal: rlm_sqlcounter's words, with the
    /// check item that refused.
    pub fn exceeded_message(&self) -> String {
        let what = match self.measure {
            Measure::Time => "usage time",
            Measure::Octets => "traffic",
        };
        format!(
            "Your maximum {} {what} has been reached ({})",
            self.period.name(),
            self.attr
        )
    }
}

/// Where the periods begin and end, as rlm_sqlcounter computes them in the
/// server's local time: today 00:00, last Sunday 00:00, the 1st of this
/// month 00:00; and the next of each. Epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub day: (i64, i64),
    pub week: (i64, i64),
    pub month: (i64, i64),
}

impl Bounds {
    /// The bounds around `now` in the system's time zone (`TZ`, else
    /// `/etc/localtime`; UTC when neither can be read).
    pub fn at(now: i64) -> Bounds {
        let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        Bounds::in_zone(now, &tz)
    }

    pub fn in_zone(now: i64, tz: &jiff::tz::TimeZone) -> Bounds {
        let ts = jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let z = ts.to_zoned_datetime(tz.clone());
        let secs = |d: jiff::civil::Date| -> i64 {
            d.to_zoned_datetime(tz.clone())
                .map(|z| z.timestamp().as_second())
                .unwrap_or(now)
        };
        let today = z.date();
        let add = |d: jiff::civil::Date, days: i64| {
            d.checked_add(jiff::Span::new().days(days)).unwrap_or(d)
        };
        let sunday = add(today, -i64::from(today.weekday().to_sunday_zero_offset()));
        let first = today.first_of_month();
        let next_month = first
            .checked_add(jiff::Span::new().months(1))
            .unwrap_or(first);
        Bounds {
            day: (secs(today), secs(add(today, 1))),
            week: (secs(sunday), secs(add(sunday, 7))),
            month: (secs(first), secs(next_month)),
        }
    }

    /// When `period` began and when it resets (None: never).
    pub fn of(&self, period: Period) -> (i64, Option<i64>) {
        match period {
            Period::Daily => (self.day.0, Some(self.day.1)),
            Period::Weekly => (self.week.0, Some(self.week.1)),
            Period::Monthly => (self.month.0, Some(self.month.1)),
            Period::Never => (0, None),
        }
    }
}

/// How long a session without news still counts as open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleAfter {
    /// 2 × the session's interim interval + 60 s, or an hour when its NAS
    /// sends no interim updates (the default).
    Auto,
    /// This many seconds for every session.
    Fixed(i64),
    /// Never: a session counts until it is closed (rlm_sql's behaviour).
    Never,
}

impl StaleAfter {
    fn limit(self, interval: Option<i64>) -> Option<i64> {
        match self {
            StaleAfter::Auto => Some(interval.filter(|i| *i > 0).map_or(3600, |i| 2 * i + 60)),
            StaleAfter::Fixed(n) => Some(n),
            StaleAfter::Never => None,
        }
    }
}

/// One session of the user, as radacct holds it (or will, once the
/// journal's records are applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub unique_id: String,
    pub nas: String,
    pub start: i64,
    /// The last Start or Interim-Update (`acctupdatetime`).
    pub update: i64,
    pub stop: Option<i64>,
    pub session_time: i64,
    /// Input + output octets, gigawords folded in.
    pub octets: i64,
    /// `acctinterval`: seconds between the last two updates.
    pub interval: Option<i64>,
}

impl Session {
    fn open(&self) -> bool {
        self.stop.is_none()
    }

    /// Whether it counts as open at `now`.
    pub fn live(&self, now: i64, stale: StaleAfter) -> bool {
        self.open()
            && stale
                .limit(self.interval)
                .is_none_or(|limit| now - self.update <= limit)
    }

    /// Its seconds inside a period that began at `from`
    /// (rlm_sqlcounter's `AcctSessionTime - GREATEST(%b - start, 0)` over
    /// sessions with `start + AcctSessionTime > %b`).
    pub fn time_since(&self, from: i64) -> i64 {
        if self.start + self.session_time > from {
            self.session_time - (from - self.start).max(0)
        } else {
            0
        }
    }

    /// Its octets inside a period that began at `from`: all of them when it
    /// started in the period, else the share of its time inside it (octets
    /// carry no time of their own).
    pub fn octets_since(&self, from: i64) -> i64 {
        if self.start >= from {
            self.octets
        } else if self.session_time > 0 && self.start + self.session_time > from {
            let inside = (self.start + self.session_time - from) as i128;
            (self.octets as i128 * inside / self.session_time as i128) as i64
        } else {
            0
        }
    }
}

/// A journaled accounting record not yet in PostgreSQL, reduced to what
/// the usage policies read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingOp {
    Session {
        status: AcctStatus,
        unique_id: String,
        nas: String,
        time: i64,
        session_time: Option<i64>,
        octets: i64,
    },
    /// Accounting-On/Off: closes the NAS's sessions started before `time`.
    NasReset { nas: String, time: i64 },
}

impl PendingOp {
    /// The op of an accounting record with the user name it is kept
    /// under (None for a NAS-wide one), as the writers store them.
    pub fn of(status: AcctStatus, rec: &AcctRecord) -> Option<(Option<String>, PendingOp)> {
        match status {
            AcctStatus::AccountingOn | AcctStatus::AccountingOff => Some((
                None,
                PendingOp::NasReset {
                    nas: rec.nas_ip.clone(),
                    time: rec.event_time,
                },
            )),
            AcctStatus::Start | AcctStatus::Stop | AcctStatus::InterimUpdate => Some((
                Some(storable_text(&rec.username).into_owned()),
                PendingOp::Session {
                    status,
                    unique_id: storable_text(&rec.unique_id).into_owned(),
                    nas: rec.nas_ip.clone(),
                    time: rec.event_time,
                    session_time: rec.session_time,
                    octets: rec.input_total().saturating_add(rec.output_total()),
                },
            )),
            AcctStatus::Other(_) => None,
        }
    }
}

fn same_nas(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Applies journaled records, in journal order, to the user's sessions as
/// the upserts will (see [`crate::accounting`]): applying one that
/// PostgreSQL already holds changes nothing, so rows and records may
/// overlap.
pub fn apply_pending(sessions: &mut Vec<Session>, ops: &[PendingOp]) {
    for op in ops {
        match op {
            PendingOp::NasReset { nas, time } => {
                for s in sessions.iter_mut() {
                    if s.open() && s.start <= *time && same_nas(&s.nas, nas) {
                        s.stop = Some(*time);
                        s.update = *time;
                        s.session_time = time - s.start;
                    }
                }
            }
            PendingOp::Session {
                status,
                unique_id,
                nas,
                time,
                session_time,
                octets,
            } => {
                let i = sessions.iter().position(|s| s.unique_id == *unique_id);
                match (status, i) {
                    (AcctStatus::Start, Some(i)) => {
                        sessions[i].start = *time;
                        sessions[i].update = *time;
                    }
                    (AcctStatus::InterimUpdate, Some(i)) => {
                        let s = &mut sessions[i];
                        if s.open() {
                            s.interval = Some(time - s.update);
                            s.update = *time;
                            s.session_time = session_time.unwrap_or(0);
                            s.octets = *octets;
                        }
                    }
                    (AcctStatus::Stop, Some(i)) => {
                        let s = &mut sessions[i];
                        s.stop = Some(*time);
                        s.update = *time;
                        s.session_time = session_time.unwrap_or(time - s.start);
                        s.octets = *octets;
                    }
                    (_, None) => {
                        let stopped = *status == AcctStatus::Stop;
                        let st = match status {
                            AcctStatus::Start => 0,
                            _ => session_time.unwrap_or(0),
                        };
                        sessions.push(Session {
                            unique_id: unique_id.clone(),
                            nas: nas.clone(),
                            start: if stopped { time - st } else { *time },
                            update: *time,
                            stop: stopped.then_some(*time),
                            session_time: st,
                            octets: if *status == AcctStatus::Start {
                                0
                            } else {
                                *octets
                            },
                            interval: None,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

/// What the journal holds for one user: their own records and every NAS
/// reset, in journal order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub ops: Vec<PendingOp>,
}

impl Pending {
    fn unique_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                PendingOp::Session { unique_id, .. } => Some(unique_id.clone()),
                PendingOp::NasReset { .. } => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Totals of the sessions read as sums (closed, and untouched by the
/// journal): seconds and octets since each period began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    /// Daily, weekly, monthly, all.
    pub time: [i64; 4],
    pub octets: [i64; 4],
}

fn period_index(p: Period) -> usize {
    match p {
        Period::Daily => 0,
        Period::Weekly => 1,
        Period::Monthly => 2,
        Period::Never => 3,
    }
}

/// A user's sessions, for the policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSessions {
    /// Sessions read one by one: every open one and those the journal
    /// touches, with the journal's records applied.
    pub sessions: Vec<Session>,
    /// The others, summed by the database (only when counters asked).
    pub sums: Sums,
}

impl UserSessions {
    /// Sessions that count against Simultaneous-Use at `now`.
    pub fn open_sessions(&self, now: i64, stale: StaleAfter) -> u32 {
        let n = self.sessions.iter().filter(|s| s.live(now, stale)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// What `counter` has used in its current period.
    pub fn used(&self, counter: &Counter, bounds: &Bounds) -> i64 {
        let (from, _) = bounds.of(counter.period);
        let i = period_index(counter.period);
        let (base, each): (i64, i64) = match counter.measure {
            Measure::Time => (
                self.sums.time[i],
                self.sessions.iter().map(|s| s.time_since(from)).sum(),
            ),
            Measure::Octets => (
                self.sums.octets[i],
                self.sessions.iter().map(|s| s.octets_since(from)).sum(),
            ),
        };
        base.saturating_add(each).max(0)
    }
}

/// The counters' limits a login's control list holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits(pub Vec<(Counter, u64)>);

impl Limits {
    /// Reads every `Max-*` item of the control list (`control` gives the
    /// first value of a name). A value that is no number is bad data.
    pub fn from_control(control: impl Fn(&str) -> Option<String>) -> Result<Limits, String> {
        let mut out = Vec::new();
        for c in COUNTERS {
            if let Some(v) = control(c.attr) {
                let n: u64 = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{} is not a number: {v:?}", c.attr))?;
                out.push((c, n));
            }
        }
        Ok(Limits(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The decision of the counters for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterDecision {
    /// A limit is used up: refuse, saying which.
    Exceeded {
        counter: Counter,
        limit: u64,
        used: u64,
    },
    /// Within every limit: the Session-Timeout to cap the reply at, and
    /// the octets left (None when no limit of that kind applies).
    Allowed {
        session_timeout: Option<u64>,
        octets_remaining: Option<u64>,
    },
}

/// rlm_sqlcounter's decision over every limit at once: the first one used
/// up refuses; otherwise the tightest time limit caps Session-Timeout
/// (extended past the next reset when that comes first, as
/// rlm_sqlcounter does) and the tightest traffic limit gives the octets
/// left.
pub fn decide(limits: &Limits, usage: &UserSessions, bounds: &Bounds, now: i64) -> CounterDecision {
    let mut timeout: Option<u64> = None;
    let mut octets: Option<u64> = None;
    for (counter, limit) in &limits.0 {
        let used = usage.used(counter, bounds) as u64;
        if *limit <= used {
            return CounterDecision::Exceeded {
                counter: *counter,
                limit: *limit,
                used,
            };
        }
        let mut left = limit - used;
        match counter.measure {
            Measure::Time => {
                if let (_, Some(reset)) = bounds.of(counter.period) {
                    let to_reset = (reset - now).max(0) as u64;
                    if left >= to_reset {
                        left = to_reset.saturating_add(*limit);
                    }
                }
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            Measure::Octets => octets = Some(octets.map_or(left, |o| o.min(left))),
        }
    }
    CounterDecision::Allowed {
        session_timeout: timeout,
        octets_remaining: octets,
    }
}

/// A user's usage against one of their limits, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitUsage {
    pub counter: Counter,
    pub limit: u64,
    pub used: u64,
    /// When the period began (epoch seconds; 0 for never).
    pub period_start: i64,
    pub resets_at: Option<i64>,
}

/// The sessions of `username` (the name accounting stores) the policies
/// need: the open ones, those the journal touches, and, with `sums`, the
/// totals of the others per period.
const SESSIONS: &str = "SELECT acctuniqueid, host(nasipaddress), \
    EXTRACT(EPOCH FROM acctstarttime)::int8, \
    EXTRACT(EPOCH FROM COALESCE(acctupdatetime, acctstarttime))::int8, \
    EXTRACT(EPOCH FROM acctstoptime)::int8, COALESCE(acctsessiontime, 0)::int8, \
    (COALESCE(acctinputoctets, 0) + COALESCE(acctoutputoctets, 0))::int8, acctinterval::int8 \
    FROM radacct WHERE username = $1 AND (acctstoptime IS NULL OR acctuniqueid = ANY($2))";

/// rlm_sqlcounter's stock PostgreSQL query, for the four periods at once,
/// over the closed sessions the journal does not touch. Octets of a
/// session that began before the period count for the share of its time
/// inside it.
macro_rules! since {
    ($b:literal) => {
        concat!(
            "COALESCE(SUM(acctsessiontime - GREATEST(", $b, " - EXTRACT(EPOCH FROM acctstarttime)::numeric, 0)) \
             FILTER (WHERE EXTRACT(EPOCH FROM acctstarttime)::numeric + acctsessiontime > ", $b, "), 0)::int8, \
             LEAST(COALESCE(SUM(CASE WHEN EXTRACT(EPOCH FROM acctstarttime)::numeric >= ", $b, " \
             THEN (COALESCE(acctinputoctets, 0) + COALESCE(acctoutputoctets, 0))::numeric \
             WHEN acctsessiontime > 0 AND EXTRACT(EPOCH FROM acctstarttime)::numeric + acctsessiontime > ", $b, " \
             THEN trunc((COALESCE(acctinputoctets, 0) + COALESCE(acctoutputoctets, 0))::numeric \
             * (EXTRACT(EPOCH FROM acctstarttime)::numeric + acctsessiontime - ", $b, ") / acctsessiontime) \
             ELSE 0 END), 0), 9223372036854775807)::int8"
        )
    };
}

const SUMS: &str = concat!(
    "SELECT ",
    since!("$3::int8"),
    ", ",
    since!("$4::int8"),
    ", ",
    since!("$5::int8"),
    ", ",
    since!("0::int8"),
    " FROM radacct WHERE username = $1 AND acctstoptime IS NOT NULL \
     AND acctuniqueid <> ALL($2)"
);

impl Store {
    /// What the journal holds for `username` not yet in PostgreSQL (empty
    /// without a journal).
    pub fn pending_usage(&self, username: &str) -> Pending {
        self.pending_for(&storable_text(username))
    }

    /// The sessions of `username` (the name looked up, stored the way
    /// accounting stores it), with the journal's records applied; the
    /// sums of the others when `sums` (the counters need them) with the
    /// periods of `bounds`.
    pub async fn user_sessions(
        &self,
        username: &str,
        bounds: Option<&Bounds>,
    ) -> Result<UserSessions, Error> {
        // Taken before the query: a record pruned from it after that was
        // committed before the query began, so the query sees it.
        let pending = self.pending_usage(username);
        let ids = pending.unique_ids();
        let name = storable_text(username).into_owned();
        let inner = &self.inner;
        let (mut sessions, sums) = inner
            .deadline(
                "usage",
                inner.on_client(|client| {
                    let (name, ids) = (&name, &ids);
                    async move {
                        // Both statements in one round trip (pipelined).
                        let p1: [&(dyn ToSql + Sync); 2] = [name, ids];
                        let open = async {
                            let s1 = client.prepare_cached(SESSIONS).await?;
                            client.query(&s1, &p1).await
                        };
                        let (d, w, m) =
                            bounds.map_or((0, 0, 0), |b| (b.day.0, b.week.0, b.month.0));
                        let p2: [&(dyn ToSql + Sync); 5] = [name, ids, &d, &w, &m];
                        let summed = async {
                            if bounds.is_none() {
                                return Ok(None);
                            }
                            let s2 = client.prepare_cached(SUMS).await?;
                            client.query_one(&s2, &p2).await.map(Some)
                        };
                        let (rows, summed) = tokio::try_join!(open, summed)?;
                        let mut sums = Sums::default();
                        if let Some(r) = summed {
                            for i in 0..4 {
                                sums.time[i] = r.get(2 * i);
                                sums.octets[i] = r.get(2 * i + 1);
                            }
                        }
                        let sessions: Vec<Session> = rows
                            .iter()
                            .map(|r| Session {
                                unique_id: r.get(0),
                                nas: r.get::<_, Option<String>>(1).unwrap_or_default(),
                                start: r.get::<_, Option<i64>>(2).unwrap_or(0),
                                update: r.get::<_, Option<i64>>(3).unwrap_or(0),
                                stop: r.get(4),
                                session_time: r.get(5),
                                octets: r.get(6),
                                interval: r.get(7),
                            })
                            .collect();
                        Ok((sessions, sums))
                    }
                }),
            )
            .await?;
        apply_pending(&mut sessions, &pending.ops);
        Ok(UserSessions { sessions, sums })
    }

    /// The sessions of `username` that count against Simultaneous-Use
    /// now.
    pub async fn open_sessions(&self, username: &str, now: i64) -> Result<u32, Error> {
        let s = self.user_sessions(username, None).await?;
        Ok(s.open_sessions(now, self.stale_after))
    }

    /// The counters' decision for `username` under `limits` at `now`.
    pub async fn counters(
        &self,
        username: &str,
        limits: &Limits,
        now: i64,
    ) -> Result<CounterDecision, Error> {
        let bounds = Bounds::at(now);
        let s = self.user_sessions(username, Some(&bounds)).await?;
        Ok(decide(limits, &s, &bounds, now))
    }

    /// `username`'s usage against each of `limits`, and their open
    /// sessions, for reports.
    pub async fn usage_report(
        &self,
        username: &str,
        limits: &Limits,
        now: i64,
    ) -> Result<(Vec<LimitUsage>, u32), Error> {
        let bounds = Bounds::at(now);
        let s = self.user_sessions(username, Some(&bounds)).await?;
        let report = limits
            .0
            .iter()
            .map(|(c, limit)| {
                let (period_start, resets_at) = bounds.of(c.period);
                LimitUsage {
                    counter: *c,
                    limit: *limit,
                    used: s.used(c, &bounds) as u64,
                    period_start,
                    resets_at,
                }
            })
            .collect();
        Ok((report, s.open_sessions(now, self.stale_after)))
    }
}

/// Groups the journal's unapplied accounting records by user, in journal
/// order, until the shipper applies them.
#[derive(Debug, Default)]
pub(crate) struct PendingIndex {
    by_user: HashMap<String, std::collections::VecDeque<(u64, PendingOp)>>,
    resets: std::collections::VecDeque<(u64, PendingOp)>,
    /// Every record in order, with the user it is kept under.
    order: std::collections::VecDeque<(u64, Option<String>)>,
}

impl PendingIndex {
    pub(crate) fn add(&mut self, seq: u64, status: AcctStatus, rec: &AcctRecord) {
        let Some((user, op)) = PendingOp::of(status, rec) else {
            return;
        };
        match &user {
            Some(u) => self
                .by_user
                .entry(u.clone())
                .or_default()
                .push_back((seq, op)),
            None => self.resets.push_back((seq, op)),
        }
        self.order.push_back((seq, user));
    }

    /// Forgets the records at or before `applied` (PostgreSQL has them).
    pub(crate) fn prune(&mut self, applied: u64) {
        while self.order.front().is_some_and(|(s, _)| *s <= applied) {
            let (_, user) = self.order.pop_front().expect("checked");
            match user {
                None => {
                    self.resets.pop_front();
                }
                Some(u) => {
                    if let Some(q) = self.by_user.get_mut(&u) {
                        q.pop_front();
                        if q.is_empty() {
                            self.by_user.remove(&u);
                        }
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// `user`'s records and every NAS reset, merged in journal order.
    pub(crate) fn for_user(&self, user: &str) -> Pending {
        let mine = self.by_user.get(user);
        if mine.is_none() && self.resets.is_empty() {
            return Pending::default();
        }
        let mut all: Vec<&(u64, PendingOp)> = self.resets.iter().collect();
        if let Some(m) = mine {
            all.extend(m.iter());
        }
        all.sort_by_key(|(s, _)| *s);
        Pending {
            ops: all.into_iter().map(|(_, op)| op.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: &str, uid: &str, t: i64) -> AcctRecord {
        AcctRecord {
            username: user.into(),
            unique_id: uid.into(),
            nas_ip: "192.0.2.1".into(),
            event_time: t,
            ..Default::default()
        }
    }

    fn session(uid: &str, start: i64, stop: Option<i64>, st: i64, octets: i64) -> Session {
        Session {
            unique_id: uid.into(),
            nas: "192.0.2.1".into(),
            start,
            update: stop.unwrap_or(start),
            stop,
            session_time: st,
            octets,
            interval: None,
        }
    }

    #[test]
    fn daily_time_counts_the_part_after_midnight() {
        // 23:00 to 01:00 across the day's start at 86_400.
        let s = session("a", 86_400 - 3600, Some(86_400 + 3600), 7200, 1000);
        assert_eq!(s.time_since(86_400), 3600);
        assert_eq!(s.octets_since(86_400), 500);
        assert_eq!(s.time_since(0), 7200);
        assert_eq!(s.octets_since(0), 1000);
        let before = session("b", 0, Some(100), 100, 9);
        assert_eq!(before.time_since(86_400), 0);
        assert_eq!(before.octets_since(86_400), 0);
    }

    #[test]
    fn journal_records_apply_like_the_upserts() {
        let mut s = vec![session("open", 100, None, 0, 0)];
        let mut idx = PendingIndex::default();
        let mut start = rec("bob", "new", 200);
        idx.add(1, AcctStatus::Start, &start);
        idx.add(2, AcctStatus::AccountingOn, &rec("", "", 150));
        start.unique_id = "other".into();
        idx.add(3, AcctStatus::Start, &rec("alice", "x", 1));
        let mut interim = rec("bob", "new", 260);
        interim.session_time = Some(60);
        interim.input_gigawords = 1;
        interim.output_octets = 5;
        idx.add(4, AcctStatus::InterimUpdate, &interim);
        let p = idx.for_user("bob");
        assert_eq!(p.ops.len(), 3, "bob's two records and the reset");
        apply_pending(&mut s, &p.ops);
        // The reset at 150 closed the session of 100, not the one of 200.
        assert_eq!(s[0].stop, Some(150));
        assert_eq!(s[0].session_time, 50);
        assert_eq!(s[1].stop, None);
        assert_eq!(s[1].octets, (1 << 32) + 5);
        assert_eq!(s[1].interval, Some(60));
        let u = UserSessions {
            sessions: s,
            sums: Sums::default(),
        };
        assert_eq!(u.open_sessions(300, StaleAfter::Auto), 1);
        // Twice 60 + 60 without news: stale.
        assert_eq!(u.open_sessions(260 + 181, StaleAfter::Auto), 0);
        assert_eq!(u.open_sessions(260 + 180, StaleAfter::Auto), 1);
        assert_eq!(u.open_sessions(10_000, StaleAfter::Never), 1);
        assert_eq!(u.open_sessions(265, StaleAfter::Fixed(4)), 0);
        idx.prune(3);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.for_user("bob").ops.len(), 1);
        assert!(idx.for_user("alice").ops.is_empty());
        idx.prune(4);
        assert_eq!(idx.len(), 0);
    }

    #[test]
    fn applying_a_record_twice_changes_nothing() {
        let mut stop = rec("bob", "s", 500);
        stop.session_time = Some(400);
        let ops = vec![
            PendingOp::of(AcctStatus::Start, &rec("bob", "s", 100))
                .unwrap()
                .1,
            PendingOp::of(AcctStatus::Stop, &stop).unwrap().1,
        ];
        let mut once = vec![];
        apply_pending(&mut once, &ops);
        let mut twice = once.clone();
        apply_pending(&mut twice, &ops);
        // A Start on a closed row moves its start but leaves it closed, as
        // the Start upsert does.
        assert_eq!(twice[0].stop, Some(500));
        assert_eq!(once.len(), 1);
        assert_eq!(twice.len(), 1);
    }

    #[test]
    fn hostile_names_are_kept_as_stored() {
        let mut idx = PendingIndex::default();
        idx.add(1, AcctStatus::Start, &rec("a\0b", "u\0", 1));
        assert_eq!(idx.for_user("a\\000b").ops.len(), 1);
        let PendingOp::Session { unique_id, .. } = &idx.for_user("a\\000b").ops[0] else {
            panic!()
        };
        assert_eq!(unique_id, "u\\000");
    }

    fn utc_bounds(now: i64) -> Bounds {
        Bounds::in_zone(now, &jiff::tz::TimeZone::UTC)
    }

    #[test]
    fn periods_as_rlm_sqlcounter() {
        // 2026-11-26 (a Thursday) 15:30:00 UTC.
        let now = 1_795_707_000;
        let b = utc_bounds(now);
        assert_eq!(b.day, (1_795_651_200, 1_795_737_600));
        // Sunday 2026-11-22.
        assert_eq!(b.week, (1_795_305_600, 1_795_910_400));
        // 2026-11-01 and 2026-12-01.
        assert_eq!(b.month, (1_793_491_200, 1_796_083_200));
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin");
        if let Ok(tz) = berlin {
            let b = Bounds::in_zone(now, &tz);
            assert_eq!(b.day.0, 1_795_651_200 - 3600);
        }
    }

    #[test]
    fn decisions() {
        let now = 1_795_707_000;
        let b = utc_bounds(now);
        let day = COUNTERS[0];
        let octets = COUNTERS[7];
        let u = UserSessions {
            sessions: vec![session("a", b.day.0 - 600, Some(b.day.0 + 600), 1200, 0)],
            sums: Sums {
                time: [100, 100, 100, 5000],
                octets: [0, 0, 0, 5_000_000_000],
            },
        };
        assert_eq!(u.used(&day, &b), 700);
        let limits = Limits(vec![(day, 700)]);
        assert_eq!(
            decide(&limits, &u, &b, now),
            CounterDecision::Exceeded {
                counter: day,
                limit: 700,
                used: 700
            }
        );
        let limits = Limits(vec![(day, 1000), (octets, 6_000_000_000)]);
        assert_eq!(
            decide(&limits, &u, &b, now),
            CounterDecision::Allowed {
                session_timeout: Some(300),
                octets_remaining: Some(1_000_000_000)
            }
        );
        // More left than the day has: to midnight plus a whole day's limit.
        let limits = Limits(vec![(day, 86_400)]);
        let to_midnight = (b.day.1 - now) as u64;
        assert_eq!(
            decide(&limits, &u, &b, now),
            CounterDecision::Allowed {
                session_timeout: Some(to_midnight + 86_400),
                octets_remaining: None
            }
        );
        assert_eq!(
            day.exceeded_message(),
            "Your maximum daily usage time has been reached (Max-Daily-Session)"
        );
        assert_eq!(denied_message(1), DENIED_MSG);
        assert_eq!(denied_message(2), format!("{DENIED_MSG} (2)"));
    }

    #[test]
    fn limits_are_read_from_control() {
        let l = Limits::from_control(|n| match n {
            "Max-Monthly-Octets" => Some("10000000000".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(l.0, vec![(COUNTERS[6], 10_000_000_000)]);
        assert!(Limits::from_control(|n| (n == "Max-Daily-Session").then(|| "x".into())).is_err());
    }
}
