//! The database behind both front doors: a bounded pool, a deadline on
//! every operation so no radiusd thread waits on PostgreSQL for longer than
//! `query_timeout`, and the [`Store`] that ties together what reads users
//! ([`crate::lookup`]), what writes records ([`crate::sink`]) and what the
//! login procedure keeps ([`crate::login`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;

use crate::cache::{self, Cache};
use crate::config::ModuleConfig;
use crate::login::lockout::PendingResets;
use crate::login::Verifier;
use crate::metrics::Metrics;
use crate::preload;
use crate::sink::{group_commit, AcctBatch, PostAuthBatch, Sink};
use crate::{schema, Error};

/// The module's and the admin's door to PostgreSQL. Cheap to share: the
/// background tasks hold the same inner state.
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    pub(crate) cache: Option<Arc<Cache>>,
    /// What the cache may serve while the database is unreachable.
    pub(crate) outage: cache::Outage,
    pub(crate) verifier: Arc<Verifier>,
    /// Set by [`Store::start_background`].
    pub(crate) pending_resets: Option<Arc<PendingResets>>,
    /// Where the module's accounting and post-auth records go.
    pub(crate) sink: Sink,
    /// When an open session without news stops counting (Simultaneous-Use).
    pub(crate) stale_after: crate::usage::StaleAfter,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    /// What every pool and the listener connect with (the writers' pools
    /// are built later).
    pub(crate) pg: crate::pg::Target,
    pub(crate) query_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// The DSN to migrate with, when `auto_migrate` is on.
    pub(crate) migrate_dsn: Option<String>,
    pub(crate) migrated: OnceCell<()>,
    /// Accounting batches that failed and were written record by record.
    pub(crate) acct_fallbacks: std::sync::atomic::AtomicU64,
    pub(crate) metrics: Arc<Metrics>,
}

impl Store {
    /// Builds the pool without connecting: a database that is down at start
    /// must not keep radiusd from starting.
    pub fn new(cfg: &ModuleConfig) -> Result<Store, Error> {
        let mut target =
            crate::pg::Target::new(&cfg.dsn).map_err(|e| Error::Pool(format!("dsn: {e}")))?;
        let pg = &mut target.config;
        pg.connect_timeout(cfg.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("rlm_rust");
        }
        // The server abandons a statement the module has stopped waiting for.
        let timeout_ms = cfg.query_timeout.as_millis().max(1);
        let options = match pg.get_options() {
            Some(o) => format!("{o} -c statement_timeout={timeout_ms}"),
            None => format!("-c statement_timeout={timeout_ms}"),
        };
        pg.options(&options);
        let pool = make_pool(
            &target,
            cfg.pool_size,
            cfg.query_timeout,
            cfg.connect_timeout,
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                pg: target,
                query_timeout: cfg.query_timeout,
                connect_timeout: cfg.connect_timeout,
                migrate_dsn: cfg.auto_migrate.then(|| cfg.dsn.clone()),
                migrated: OnceCell::new(),
                acct_fallbacks: Default::default(),
                metrics: Arc::new(Metrics::new()),
            }),
            cache: None,
            outage: cache::Outage {
                serve_cached: cfg.outage_serve_cached,
                max_stale: cfg.outage_max_stale,
            },
            verifier: Arc::new(Verifier::new(
                cfg.cache_size.max(10_000),
                cfg.slow_hash_concurrency,
            )),
            pending_resets: None,
            sink: Sink::Stopped,
            stale_after: cfg.stale_session_after,
        })
    }

    /// Starts the in-memory user cache (when `cache_size` > 0) with its
    /// LISTEN connection on `rt` (and, with `preload`, a task that fills it
    /// in one read each time it goes live), and the group commits for accounting and
    /// post-auth ([`Store::commit_accounting`], [`Store::commit_postauth`]).
    /// Without this every call goes to the database directly (what the
    /// admin service wants).
    pub fn start_background(
        &mut self,
        rt: &tokio::runtime::Handle,
        cache_size: usize,
        preload: bool,
    ) -> Result<(), Error> {
        if cache_size > 0 {
            let cache = Arc::new(Cache::with_outage(cache_size, self.outage));
            cache.forget_with(Arc::clone(&self.verifier));
            if preload {
                // Subscribed before the listener can make the cache live.
                let went_live = cache.went_live();
                rt.spawn(preload::run(
                    Arc::clone(&self.inner),
                    Arc::clone(&cache),
                    went_live,
                ));
            }
            self.inner
                .metrics
                .register_collector(cache::Collect(Arc::clone(&cache)));
            rt.spawn(cache::listen(
                Arc::clone(&cache),
                self.inner.pg.clone(),
                self.inner.connect_timeout,
                Duration::from_secs(1),
            ));
            self.cache = Some(cache);
        }
        let pending = Arc::new(PendingResets::default());
        rt.spawn(crate::login::lockout::flush_resets(
            Arc::clone(&self.inner),
            Arc::clone(&pending),
        ));
        self.pending_resets = Some(pending);
        // Unless the journal took the records already (start_journal first).
        if matches!(self.sink, Sink::Stopped) {
            self.sink = Sink::Database {
                postauth: group_commit::<PostAuthBatch>(&self.inner)?,
                acct: group_commit::<AcctBatch>(&self.inner)?,
            };
        }
        Ok(())
    }

    /// Verifies slow hashes for both doors (see [`Verifier`]).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn pending_resets(&self) -> Option<&PendingResets> {
        self.pending_resets.as_deref()
    }

    /// This instance's metrics (see [`crate::metrics`]).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Serves the metrics on `listener` (bound with
    /// [`crate::metrics::bind`]) from `rt`.
    pub fn serve_metrics(&self, rt: &tokio::runtime::Handle, listener: std::net::TcpListener) {
        crate::metrics::serve(rt, listener, Arc::clone(&self.inner.metrics));
    }

    /// The cache, when started (for stats and tests).
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }
}

/// A bounded pool on `pg`; connections are made on first use, in the
/// runtime that first asks (so a writer's stay with its own runtime).
pub(crate) fn make_pool(
    pg: &crate::pg::Target,
    size: usize,
    query_timeout: Duration,
    connect_timeout: Duration,
) -> Result<Pool, Error> {
    let mgr = Manager::from_config(
        pg.config.clone(),
        pg.tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(query_timeout))
        .create_timeout(Some(connect_timeout))
        .recycle_timeout(Some(query_timeout))
        .build()
        .map_err(|e| Error::Pool(e.to_string()))
}

/// The error ends the connection, not the statement: the socket closed,
/// or the server said it is shutting the session down (a restart, or
/// `pg_terminate_backend`), or a connection-class error.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.is_closed()
        || e.code().is_some_and(|c| {
            *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || c.code().starts_with("08")
        })
}

impl Inner {
    pub(crate) async fn client(&self) -> Result<Object, Error> {
        self.client_of(&self.pool).await
    }

    pub(crate) async fn client_of(&self, pool: &Pool) -> Result<Object, Error> {
        if let Some(dsn) = &self.migrate_dsn {
            self.migrated
                .get_or_try_init(|| schema::migrate(dsn))
                .await?;
        }
        pool.get()
            .await
            .map_err(|e| Error::Pool(crate::pg::describe(&e)))
    }

    /// Runs `op` on a pooled connection, and again on another while the
    /// one it got turns out closed: after a PostgreSQL restart or a cut,
    /// the pool hands out connections whose end it has not read yet, and
    /// the first request on each would fail for nothing. Only for
    /// statements that may run twice (reads, idempotent writes, and the
    /// one-time token, whose second try refuses what the first may have
    /// used up: no worse than failing). Bounded by the caller's deadline.
    pub(crate) async fn on_client<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(Object) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut tries = self.pool.status().max_size + 1;
        loop {
            match op(self.client().await?).await {
                Err(Error::Db(e)) if connection_lost(&e) && tries > 1 => {
                    log::debug!("retrying on another connection: {e}");
                    tries -= 1;
                }
                r => return r,
            }
        }
    }

    pub(crate) async fn deadline<T>(
        &self,
        what: &'static str,
        f: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let r = tokio::time::timeout(self.query_timeout, f)
            .await
            .map_err(|_| Error::Timeout(self.query_timeout, what))
            .and_then(|r| r);
        if let Err(Error::Db(_) | Error::Pool(_) | Error::Timeout(..) | Error::Write(_)) = &r {
            self.metrics.db_error();
        }
        r
    }
}

impl Store {
    /// Connects (and migrates, with `auto_migrate`) once, so the first
    /// request does not pay for it and the log says early whether the
    /// database is there.
    pub async fn ping(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let limit = inner.connect_timeout + inner.query_timeout;
        tokio::time::timeout(limit, async {
            let client = inner.client().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
        .map_err(|_| Error::Timeout(limit, "connect"))?
    }
}
