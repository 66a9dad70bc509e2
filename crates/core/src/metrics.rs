//! The module's Prometheus metrics: counted here, in plain Rust, so the
//! numbers are tested without radiusd; the FFI layer only reports a
//! request's section, result and duration ([`Metrics::request`]). Served
//! in the OpenMetrics text format (the `prometheus-client` crate) on the
//! module's `metrics_listen` ([`serve`]).
//!
//! The hot path touches pre-made handles only: a request is one atomic
//! add and one histogram observation (the crate's histogram takes a short
//! mutex), never a label lookup. What other parts already count (the
//! cache's hits, the journal's position) is read when scraped, not counted
//! twice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The module section a request ran in (radiusd's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Authorize,
    Authenticate,
    Preacct,
    Accounting,
    PostAuth,
    Session,
}

impl Section {
    pub const ALL: [Section; 6] = [
        Section::Authorize,
        Section::Authenticate,
        Section::Preacct,
        Section::Accounting,
        Section::PostAuth,
        Section::Session,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::Authorize => "authorize",
            Section::Authenticate => "authenticate",
            Section::Preacct => "preacct",
            Section::Accounting => "accounting",
            Section::PostAuth => "post-auth",
            Section::Session => "session",
        }
    }
}

/// A module's answer (FreeRADIUS' `rlm_rcode_t`, by its unlang name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    Reject,
    Fail,
    Ok,
    Handled,
    Invalid,
    Userlock,
    NotFound,
    Noop,
    Updated,
}

impl Rcode {
    pub const ALL: [Rcode; 9] = [
        Rcode::Reject,
        Rcode::Fail,
        Rcode::Ok,
        Rcode::Handled,
        Rcode::Invalid,
        Rcode::Userlock,
        Rcode::NotFound,
        Rcode::Noop,
        Rcode::Updated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rcode::Reject => "reject",
            Rcode::Fail => "fail",
            Rcode::Ok => "ok",
            Rcode::Handled => "handled",
            Rcode::Invalid => "invalid",
            Rcode::Userlock => "userlock",
            Rcode::NotFound => "notfound",
            Rcode::Noop => "noop",
            Rcode::Updated => "updated",
        }
    }
}

/// What a batch of records was written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// A group commit of accounting records (`durability = database`).
    Accounting,
    /// A group commit of post-auth rows (`durability = database`).
    PostAuth,
    /// One transaction of the journal's shipper (`durability = journal`).
    Journal,
}

impl BatchKind {
    const ALL: [BatchKind; 3] = [
        BatchKind::Accounting,
        BatchKind::PostAuth,
        BatchKind::Journal,
    ];

    fn as_str(self) -> &'static str {
        match self {
            BatchKind::Accounting => "accounting",
            BatchKind::PostAuth => "post-auth",
            BatchKind::Journal => "journal",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    section: &'static str,
    rcode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SectionLabel {
    section: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Request durations, in seconds: a cached request takes tens of
/// microseconds, a slow hash milliseconds, a stalled database up to
/// `query_timeout` (2 s by default).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    2.5,
];

/// Records per batch: the database group commits carry at most 256, the
/// shipper's transactions 5000.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 25.0, 100.0, 256.0, 1000.0, 5000.0];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// One instance's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// `[section][rcode]`, made up front so every series exists from the
    /// start (a rate over a series that appears late misses its first
    /// requests) and counting needs no lookup.
    requests: Vec<Counter>,
    durations: Vec<Histogram>,
    batches: Vec<Histogram>,
    db_errors: Counter,
    lockouts: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rlm_rust");
        let requests_family = Family::<RequestLabels, Counter>::default();
        let mut requests = Vec::new();
        for s in Section::ALL {
            for r in Rcode::ALL {
                requests.push(
                    requests_family
                        .get_or_create(&RequestLabels {
                            section: s.as_str(),
                            rcode: r.as_str(),
                        })
                        .clone(),
                );
            }
        }
        registry.register(
            "requests",
            "Requests the module answered, by section and result",
            requests_family,
        );
        let durations_family: HistogramFamily<SectionLabel> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        let durations = Section::ALL
            .iter()
            .map(|s| {
                durations_family
                    .get_or_create(&SectionLabel {
                        section: s.as_str(),
                    })
                    .clone()
            })
            .collect();
        registry.register(
            "request_duration_seconds",
            "Time the module spent on a request, by section",
            durations_family,
        );
        let batches_family: HistogramFamily<KindLabel> =
            Family::new_with_constructor(|| Histogram::new(BATCH_BUCKETS));
        let batches = BatchKind::ALL
            .iter()
            .map(|k| {
                batches_family
                    .get_or_create(&KindLabel { kind: k.as_str() })
                    .clone()
            })
            .collect();
        registry.register(
            "commit_batch_records",
            "Records one PostgreSQL transaction carried: group commits (accounting, post-auth) or journal shipments",
            batches_family,
        );
        let db_errors = Counter::default();
        registry.register(
            "database_errors",
            "PostgreSQL operations that failed: no connection, a deadline passed, or a statement refused",
            db_errors.clone(),
        );
        let lockouts = Counter::default();
        registry.register(
            "lockouts",
            "Accounts locked by this instance after too many failed logins",
            lockouts.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            durations,
            batches,
            db_errors,
            lockouts,
        }
    }

    /// One request answered: the only call the module's FFI layer makes.
    pub fn request(&self, section: Section, rcode: Rcode, took: Duration) {
        let s = section as usize;
        self.requests[s * Rcode::ALL.len() + rcode as usize].inc();
        self.durations[s].observe(took.as_secs_f64());
    }

    pub fn db_error(&self) {
        self.db_errors.inc();
    }

    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    pub fn batch(&self, kind: BatchKind, records: usize) {
        self.batches[kind as usize].observe(records as f64);
    }

    /// Adds values read at each scrape (the cache's, the journal's).
    pub fn register_collector(&self, collector: impl Collector) {
        lock(&self.registry).register_collector(Box::new(collector));
    }

    /// The OpenMetrics text exposition of everything.
    pub fn render(&self) -> String {
        render(&lock(&self.registry))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `/metrics` answers with: Prometheus asks for OpenMetrics and takes it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `registry` in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Writes a gauge read at scrape time (for [`Collector`]s).
pub fn const_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// Writes a counter read at scrape time (for [`Collector`]s).
pub fn const_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

/// Binds `addr` now, so that a port taken or not allowed fails the
/// caller's start with the reason, not a later task in silence.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("metrics_listen {addr}: cannot listen: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("metrics_listen {addr}: {e}"))?;
    Ok(l)
}

/// Serves `GET /metrics` on `listener` from `rt` until the runtime stops.
/// Anything else is 404; nothing a client sends reaches the counters.
pub fn serve(rt: &tokio::runtime::Handle, listener: std::net::TcpListener, metrics: Arc<Metrics>) {
    use axum::http::header;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()) }
        }),
    );
    rt.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("metrics listener: {e}");
                return;
            }
        };
        if let Err(e) = axum::serve(listener, app).await {
            log::error!("metrics listener stopped: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the exposition line that starts with `series ` (the
    /// whole series name with its labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse().ok())
    }

    #[test]
    fn requests_are_counted_by_section_and_rcode() {
        let m = Metrics::new();
        let text = m.render();
        // Every series is there from the start, at zero.
        assert_eq!(
            value(
                &text,
                "rlm_rust_requests_total{section=\"session\",rcode=\"updated\"}"
            ),
            Some(0.0)
        );
        m.request(Section::Authorize, Rcode::Ok, Duration::from_micros(30));
        m.request(Section::Authorize, Rcode::Ok, Duration::from_millis(3));
        m.request(Section::Authorize, Rcode::Reject, Duration::from_micros(30));
        m.request(Section::PostAuth, Rcode::Fail, Duration::from_secs(3));
        let text = m.render();
        let req = |s: &str, r: &str| {
            value(
                &text,
                &format!("rlm_rust_requests_total{{section=\"{s}\",rcode=\"{r}\"}}"),
            )
        };
        assert_eq!(req("authorize", "ok"), Some(2.0));
        assert_eq!(req("authorize", "reject"), Some(1.0));
        assert_eq!(req("post-auth", "fail"), Some(1.0));
        assert_eq!(req("accounting", "ok"), Some(0.0));
        let dur = |s: &str, suffix: &str| {
            value(
                &text,
                &format!("rlm_rust_request_duration_seconds_{suffix}{{section=\"{s}\"}}"),
            )
        };
        assert_eq!(dur("authorize", "count"), Some(3.0));
        let bucket = |s: &str, le: &str| {
            value(
                &text,
                &format!("rlm_rust_request_duration_seconds_bucket{{le=\"{le}\",section=\"{s}\"}}"),
            )
        };
        assert_eq!(bucket("authorize", "0.00005"), Some(2.0), "{text}");
        assert_eq!(bucket("authorize", "0.005"), Some(3.0));
        assert_eq!(
            bucket("post-auth", "2.5"),
            Some(0.0),
            "3 s is past the last bucket"
        );
        assert_eq!(bucket("post-auth", "+Inf"), Some(1.0));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn batches_errors_and_lockouts() {
        let m = Metrics::new();
        m.batch(BatchKind::Journal, 300);
        m.batch(BatchKind::Journal, 1);
        m.batch(BatchKind::PostAuth, 9);
        m.db_error();
        m.lockout();
        m.lockout();
        let text = m.render();
        let b = |k: &str, s: &str| {
            value(
                &text,
                &format!("rlm_rust_commit_batch_records_{s}{{kind=\"{k}\"}}"),
            )
        };
        assert_eq!(b("journal", "count"), Some(2.0));
        assert_eq!(b("journal", "sum"), Some(301.0));
        assert_eq!(b("post-auth", "sum"), Some(9.0));
        assert_eq!(b("accounting", "count"), Some(0.0));
        assert_eq!(value(&text, "rlm_rust_database_errors_total"), Some(1.0));
        assert_eq!(value(&text, "rlm_rust_lockouts_total"), Some(2.0));
    }

    #[derive(Debug)]
    struct Fixed;
    impl Collector for Fixed {
        fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            const_gauge(&mut e, "things", "things now", 7.0)?;
            const_counter(&mut e, "events", "events so far", 3)
        }
    }

    #[test]
    fn collectors_are_read_at_scrape() {
        let m = Metrics::new();
        m.register_collector(Fixed);
        let text = m.render();
        assert_eq!(value(&text, "rlm_rust_things"), Some(7.0), "{text}");
        assert_eq!(value(&text, "rlm_rust_events_total"), Some(3.0));
    }

    #[test]
    fn the_listener_serves_metrics_and_nothing_else() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let m = Arc::new(Metrics::new());
        m.request(Section::Accounting, Rcode::Ok, Duration::from_millis(1));
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        // A second listener on the same address fails with the reason.
        let e = bind(addr).unwrap_err();
        assert!(
            e.contains("metrics_listen") && e.contains("cannot listen"),
            "{e}"
        );
        serve(rt.handle(), l, Arc::clone(&m));
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE));
        assert!(ok.contains("rlm_rust_requests_total{section=\"accounting\",rcode=\"ok\"} 1"));
        assert!(get("/other").starts_with("HTTP/1.1 404"));
    }
}
