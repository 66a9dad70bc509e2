//! PostgreSQL access: a bounded pool, prepared statements, and a deadline on
//! every operation so no radiusd thread waits on the database for longer
//! than `query_timeout`.

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use std::collections::HashMap;

use crate::account::Profile;
use crate::accounting::{self, AcctOutcome, AcctRecord, AcctStatus};
use crate::attrs::AttrRow;
use crate::authorize::{GroupData, UserData};
use crate::cache::{self, Cache};
use crate::commit::{CommitError, GroupCommit};
use crate::config::ModuleConfig;
use crate::login::lockout::PendingResets;
use crate::login::Verifier;
use crate::postauth::{self, PostAuthRecord};
use crate::preload;
use crate::{schema, Error};

/// The account-state columns of `rlm_rust_user u`, as [`profile_of`] reads
/// them: for one user (`PROFILE`) and for all (the preload).
macro_rules! profile_columns {
    () => {
        "u.id, u.active, u.reason, EXTRACT(EPOCH FROM u.expiration)::float8, u.password_hash, \
         u.nt_hash, ARRAY(SELECT t.id FROM rlm_rust_radius_token t WHERE t.user_id = u.id \
               AND t.used_at IS NULL AND t.expires_at > now() ORDER BY t.id), \
         ARRAY(SELECT t.token_hash FROM rlm_rust_radius_token t WHERE t.user_id = u.id \
               AND t.used_at IS NULL AND t.expires_at > now() ORDER BY t.id)"
    };
}
pub(crate) use profile_columns;

/// The user's check and reply rows, memberships and their groups' rows in
/// one round trip (rlm_sql needs four or more queries for the same).
const USER_DATA: &str = "WITH g AS (SELECT groupname, priority, id FROM radusergroup WHERE username = $1) \
    SELECT 0 AS kind, ''::text AS grp, attribute, op::text, value, 0 AS prio, id::bigint AS ord \
      FROM radcheck WHERE username = $1 \
    UNION ALL SELECT 1, '', attribute, op::text, value, 0, id::bigint FROM radreply WHERE username = $1 \
    UNION ALL SELECT 2, groupname, '', '', '', priority, id::bigint FROM g \
    UNION ALL SELECT 3, groupname, attribute, op::text, value, 0, id::bigint FROM radgroupcheck \
      WHERE groupname IN (SELECT groupname FROM g) \
    UNION ALL SELECT 4, groupname, attribute, op::text, value, 0, id::bigint FROM radgroupreply \
      WHERE groupname IN (SELECT groupname FROM g) \
    ORDER BY kind, prio, ord";

/// The user's profile row and open one-time tokens, sent together with
/// [`USER_DATA`] on the same connection (pipelined: one round trip).
const PROFILE: &str = concat!(
    "SELECT ",
    profile_columns!(),
    " FROM rlm_rust_user u WHERE u.username = $1"
);

/// The user's lock, when there is one (expired or not: the caller compares
/// with the time of the request). Sent with [`USER_DATA`].
pub(crate) const LOCK: &str = "SELECT EXTRACT(EPOCH FROM locked_until)::float8 \
    FROM rlm_rust_lockout WHERE username = $1 AND locked_until IS NOT NULL";

/// See [`Store::store_nt_hash`].
const STORE_NT_HASH: &str = "UPDATE rlm_rust_user SET nt_hash = $3 \
    WHERE username = $1 AND password_hash = $2 AND nt_hash IS NULL";

/// Marks a one-time token used; only one request can win it.
const CONSUME_TOKEN: &str = "UPDATE rlm_rust_radius_token SET used_at = now() \
    WHERE id = $1 AND used_at IS NULL AND expires_at > now()";

/// Everything authorize needs about one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lookup {
    pub user: UserData,
    pub profile: Option<Profile>,
    /// Seconds since the epoch until which the user is locked out
    /// (`f64::INFINITY`: until an administrator unlocks).
    pub locked_until: Option<f64>,
}

/// The module's and the admin's door to PostgreSQL. Cheap to share: the
/// background tasks hold the same inner state.
pub struct Store {
    inner: Arc<Inner>,
    cache: Option<Arc<Cache>>,
    verifier: Arc<Verifier>,
    /// Set by [`Store::start_background`].
    pending_resets: Option<Arc<PendingResets>>,
    postauth_gc: Option<GroupCommit<PostAuthRecord, ()>>,
    acct_gc: Option<GroupCommit<(AcctStatus, AcctRecord), AcctOutcome>>,
}

pub(crate) struct Inner {
    pool: Pool,
    /// What every pool connects with (the writers' pools are built later).
    pg: tokio_postgres::Config,
    dsn: String,
    query_timeout: Duration,
    connect_timeout: Duration,
    /// The DSN to migrate with, when `auto_migrate` is on.
    migrate_dsn: Option<String>,
    migrated: OnceCell<()>,
    /// Accounting batches that failed and were written record by record.
    acct_fallbacks: std::sync::atomic::AtomicU64,
}

/// Most records one commit carries.
const BATCH_MAX: usize = 256;
/// Records waiting for a commit at most; beyond, callers fail at once.
const QUEUE_MAX: usize = 8192;
/// Commits of one kind under way at once: one can execute while the other
/// waits for its WAL flush.
const WRITERS: usize = 1;

/// One writer's connection and the single-threaded runtime that drives it.
/// A leader takes a slot for its commit, so the runtime is only ever run by
/// the thread that is waiting for it: no I/O thread is woken.
struct Slot {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
}

impl Drop for Slot {
    /// Without blocking: a Store may be dropped inside an async context.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Store {
    /// Builds the pool without connecting: a database that is down at start
    /// must not keep radiusd from starting.
    pub fn new(cfg: &ModuleConfig) -> Result<Store, Error> {
        let mut pg: tokio_postgres::Config = cfg
            .dsn
            .parse()
            .map_err(|e| Error::Pool(format!("dsn: {e}")))?;
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
        let pool = make_pool(&pg, cfg.pool_size, cfg.query_timeout, cfg.connect_timeout)?;
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                pg,
                dsn: cfg.dsn.clone(),
                query_timeout: cfg.query_timeout,
                connect_timeout: cfg.connect_timeout,
                migrate_dsn: cfg.auto_migrate.then(|| cfg.dsn.clone()),
                migrated: OnceCell::new(),
                acct_fallbacks: Default::default(),
            }),
            cache: None,
            verifier: Arc::new(Verifier::new(
                cfg.cache_size.max(10_000),
                cfg.slow_hash_concurrency,
            )),
            pending_resets: None,
            postauth_gc: None,
            acct_gc: None,
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
            let cache = Arc::new(Cache::new(cache_size));
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
            rt.spawn(cache::listen(
                Arc::clone(&cache),
                self.inner.dsn.clone(),
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
        self.postauth_gc = Some(group_commit::<PostAuthBatch>(&self.inner)?);
        self.acct_gc = Some(group_commit::<AcctBatch>(&self.inner)?);
        Ok(())
    }

    /// How many accounting batches failed as a whole and were written one
    /// record at a time instead (a record the database refused, a lost
    /// connection).
    pub fn accounting_fallbacks(&self) -> u64 {
        self.inner
            .acct_fallbacks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Group commits made so far and the records they carried: post-auth,
    /// then accounting; (0, 0) before [`Store::start_background`].
    pub fn commit_totals(&self) -> [(u64, u64); 2] {
        [
            self.postauth_gc.as_ref().map_or((0, 0), |g| g.totals()),
            self.acct_gc.as_ref().map_or((0, 0), |g| g.totals()),
        ]
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

    /// The cache, when started (for stats and tests).
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// Commits `record` with the next group commit of its kind, on this
    /// thread (which must not be running an async runtime): returns only
    /// after the commit, or fails within `query_timeout` unwritten.
    fn commit<R, T>(
        &self,
        gc: &Option<GroupCommit<R, T>>,
        record: R,
        what: &'static str,
    ) -> Result<T, Error> {
        let gc = gc
            .as_ref()
            .ok_or_else(|| Error::Write(format!("{what}: group commit not started")))?;
        let wait = self.inner.query_timeout;
        gc.submit(record, wait).map_err(|e| match e {
            CommitError::Full => {
                Error::Write(format!("{what}: {QUEUE_MAX} records already queued"))
            }
            CommitError::Timeout => Error::Timeout(wait, what),
            CommitError::Failed(m) => Error::Write(m),
        })
    }

    /// Writes one accounting request with the next group commit (see
    /// [`Store::start_background`]); blocks this thread until it is
    /// committed.
    pub fn commit_accounting(
        &self,
        status: AcctStatus,
        rec: AcctRecord,
    ) -> Result<AcctOutcome, Error> {
        if !accounting::stores(status) {
            return Ok(AcctOutcome::Unchanged);
        }
        self.commit(&self.acct_gc, (status, rec), "accounting")
    }

    /// Writes one radpostauth row with the next group commit; blocks this
    /// thread until it is committed.
    pub fn commit_postauth(&self, rec: PostAuthRecord) -> Result<(), Error> {
        self.commit(&self.postauth_gc, rec, "post-auth")
    }
}

/// A bounded pool on `pg`; connections are made on first use, in the
/// runtime that first asks (so a writer's stay with its own runtime).
fn make_pool(
    pg: &tokio_postgres::Config,
    size: usize,
    query_timeout: Duration,
    connect_timeout: Duration,
) -> Result<Pool, Error> {
    let mgr = Manager::from_config(
        pg.clone(),
        NoTls,
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

/// The group commit of batch kind `B`: [`WRITERS`] slots, each its own
/// connection and runtime, taken by whichever caller leads a commit.
fn group_commit<B: Batch>(inner: &Arc<Inner>) -> Result<GroupCommit<B::R, B::T>, Error> {
    let mut slots = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Pool(format!("writer runtime: {e}")))?;
        let pool = make_pool(&inner.pg, 1, inner.query_timeout, inner.connect_timeout)?;
        slots.push(Slot { rt: Some(rt), pool });
    }
    let slots = std::sync::Mutex::new(slots);
    let inner = Arc::clone(inner);
    Ok(GroupCommit::new(
        WRITERS,
        BATCH_MAX,
        QUEUE_MAX,
        move |recs: &[&B::R]| {
            // At most WRITERS leaders at once, so a slot is always free.
            let slot = slots.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(slot) = slot.filter(|s| s.rt.is_some()) else {
                return all_failed(recs.len(), "no free writer slot");
            };
            // A panic must not take the slot, or the callers, with it.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let rt = slot.rt.as_ref().expect("checked above");
                rt.block_on(B::write(&inner, &slot.pool, recs.to_vec()))
            }))
            .unwrap_or_else(|_| all_failed(recs.len(), "the writer panicked"));
            slots.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
            out
        },
    ))
}

fn all_failed<T>(n: usize, why: &str) -> Vec<Result<T, String>> {
    (0..n).map(|_| Err(why.to_string())).collect()
}

impl Inner {
    pub(crate) async fn client(&self) -> Result<Object, Error> {
        self.client_of(&self.pool).await
    }

    async fn client_of(&self, pool: &Pool) -> Result<Object, Error> {
        if let Some(dsn) = &self.migrate_dsn {
            self.migrated
                .get_or_try_init(|| schema::migrate(dsn))
                .await?;
        }
        pool.get().await.map_err(|e| Error::Pool(e.to_string()))
    }

    pub(crate) async fn deadline<T>(
        &self,
        what: &'static str,
        f: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.query_timeout, f)
            .await
            .map_err(|_| Error::Timeout(self.query_timeout, what))?
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

    /// What [`Store::lookup`] would answer from memory, if it would.
    pub fn cached(&self, username: &str) -> Option<Arc<Lookup>> {
        self.cache.as_ref()?.get(username)
    }

    /// The stock tables' data and the profile of `username`: from memory
    /// when the cache is live, else from the database (kept for next time).
    pub async fn lookup(&self, username: &str) -> Result<Arc<Lookup>, Error> {
        let Some(cache) = &self.cache else {
            return self.inner.lookup(username).await.map(Arc::new);
        };
        if let Some(hit) = cache.get(username) {
            return Ok(hit);
        }
        let ticket = cache.ticket();
        let fresh = Arc::new(self.inner.lookup(username).await?);
        cache.insert(username, ticket, Arc::clone(&fresh));
        Ok(fresh)
    }
}

impl Inner {
    async fn lookup(&self, username: &str) -> Result<Lookup, Error> {
        self.deadline("authorize", async {
            let client = self.client().await?;
            let (s1, s2, s3) = tokio::try_join!(
                client.prepare_cached(USER_DATA),
                client.prepare_cached(PROFILE),
                client.prepare_cached(LOCK)
            )?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&username];
            let (rows, prof, lock) = tokio::try_join!(
                client.query(&s1, &params),
                client.query_opt(&s2, &params),
                client.query_opt(&s3, &params)
            )?;
            let user = assemble_user(rows.iter().map(raw_row))?;
            let profile = prof.map(|r| profile_of(&r, 0));
            let locked_until = lock.and_then(|r| r.get::<_, Option<f64>>(0));
            Ok(Lookup {
                user,
                profile,
                locked_until,
            })
        })
        .await
    }
}

impl Inner {
    async fn store_nt_hash(&self, username: &str, hash: &str, nt: &str) -> Result<(), Error> {
        self.deadline("NT hash", async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(STORE_NT_HASH).await?;
            client.execute(&stmt, &[&username, &hash, &nt]).await?;
            Ok(())
        })
        .await
    }
}

impl Store {
    /// Uses up one-time token `id`; false when another request (or time)
    /// got there first.
    pub async fn consume_token(&self, id: i64) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .deadline("one-time token", async {
                let client = inner.client().await?;
                let stmt = client.prepare_cached(CONSUME_TOKEN).await?;
                Ok(client.execute(&stmt, &[&id]).await? == 1)
            })
            .await
    }

    /// Stores the NT hash of `password` for a user whose profile hash is
    /// `hash` and who has none yet (users whose password was set before
    /// NT hashes were kept). Nothing happens when the password changed
    /// meanwhile.
    pub async fn store_nt_hash(
        &self,
        username: &str,
        hash: &str,
        password: &str,
    ) -> Result<(), Error> {
        let nt = crate::password::nt_hash_hex(password);
        self.inner.store_nt_hash(username, hash, &nt).await
    }

    /// [`Store::store_nt_hash`] on `rt`, without waiting: the reply need
    /// not wait for it, and the next successful login tries again.
    pub fn store_nt_hash_later(
        &self,
        rt: &tokio::runtime::Handle,
        username: &str,
        hash: &str,
        password: &str,
    ) {
        let nt = crate::password::nt_hash_hex(password);
        let (inner, username, hash) = (
            Arc::clone(&self.inner),
            username.to_string(),
            hash.to_string(),
        );
        rt.spawn(async move {
            if let Err(e) = inner.store_nt_hash(&username, &hash, &nt).await {
                log::warn!("{username}: NT hash not stored: {e}");
            }
        });
    }

    /// The stock tables' data for `username` (or a profile name).
    pub async fn user_data(&self, username: &str) -> Result<UserData, Error> {
        self.lookup(username).await.map(|l| l.user.clone())
    }

    /// Writes one accounting request in its own transaction.
    pub async fn write_accounting(
        &self,
        status: AcctStatus,
        rec: &AcctRecord,
    ) -> Result<AcctOutcome, Error> {
        if !accounting::stores(status) {
            return Ok(AcctOutcome::Unchanged);
        }
        self.inner
            .write_accounting(&self.inner.pool, status, rec)
            .await
    }

    /// Writes `recs` as a group commit's leader writes the batch it took
    /// from the queue (with the same result as writing them one after the
    /// other): one result per record.
    pub async fn write_accounting_batch(
        &self,
        recs: &[(AcctStatus, AcctRecord)],
    ) -> Vec<Result<AcctOutcome, Error>> {
        AcctBatch::write(&self.inner, &self.inner.pool, recs.iter().collect())
            .await
            .into_iter()
            .map(|r| r.map_err(Error::Write))
            .collect()
    }

    /// Writes one radpostauth row.
    pub async fn write_postauth(&self, rec: &PostAuthRecord) -> Result<(), Error> {
        let inner = &self.inner;
        inner
            .deadline("post-auth", async {
                inner
                    .insert_postauth(&inner.pool, &[rec])
                    .await
                    .map_err(Error::Write)
            })
            .await
    }
}

/// One kind of group-committed record.
trait Batch: Send + Sync + 'static {
    type R: Send + Sync + 'static;
    type T: Send + 'static;
    /// Writes `recs` in as few commits as possible; one result per record.
    fn write<'a>(
        inner: &'a Inner,
        pool: &'a Pool,
        recs: Vec<&'a Self::R>,
    ) -> impl Future<Output = Vec<Result<Self::T, String>>> + 'a;
}

struct PostAuthBatch;
struct AcctBatch;

impl Batch for PostAuthBatch {
    type R = PostAuthRecord;
    type T = ();

    async fn write<'a>(
        inner: &'a Inner,
        pool: &'a Pool,
        recs: Vec<&'a PostAuthRecord>,
    ) -> Vec<Result<(), String>> {
        let n = recs.len();
        let together = inner
            .deadline("post-auth", inner.try_insert_postauth(pool, &recs))
            .await;
        let Err(e) = together else {
            return vec![Ok(()); n];
        };
        // As for accounting: a record the database refused must not fail
        // the others, but a database that is unreachable or too slow is not
        // retried, since the leader is a radiusd thread and would be held
        // (with every waiting caller) for a timeout per attempt.
        let refused = |e: &Error| matches!(e, Error::Db(d) if d.as_db_error().is_some());
        // tokio_postgres prints a server's error as "db error" alone.
        let why = |e: &Error| match e {
            Error::Db(d) => match d.as_db_error() {
                Some(db) => format!("{e}: {}", db.message()),
                None => e.to_string(),
            },
            _ => e.to_string(),
        };
        if n == 1 || !refused(&e) {
            return vec![Err(why(&e)); n];
        }
        log::warn!(
            "post-auth batch refused ({}); splitting its {n} records to find the refused ones",
            why(&e)
        );
        // Rows are independent, so the batch is halved until each refused
        // record is alone: about 2 log2(n) statements for one bad record,
        // where one at a time would be n commits. The retries share one
        // more query_timeout.
        let budget = tokio::time::Instant::now() + inner.query_timeout;
        let mut out: Vec<Option<Result<(), String>>> = vec![None; n];
        let mut todo: Vec<std::ops::Range<usize>> = vec![n / 2..n, 0..n / 2];
        let mut gave_up: Option<String> = None;
        while let Some(part) = todo.pop() {
            let result = match &gave_up {
                Some(reason) => Err(reason.clone()),
                None => match tokio::time::timeout_at(
                    budget,
                    inner.try_insert_postauth(pool, &recs[part.clone()]),
                )
                .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) if refused(&e) && part.len() > 1 => {
                        let mid = part.start + part.len() / 2;
                        todo.push(mid..part.end);
                        todo.push(part.start..mid);
                        continue;
                    }
                    Ok(Err(e)) if refused(&e) => Err(why(&e)),
                    // The database went away meanwhile: what is left fails
                    // without another attempt.
                    Ok(Err(away)) => {
                        let reason = format!("{} (retrying a refused batch)", why(&away));
                        gave_up = Some(reason.clone());
                        Err(reason)
                    }
                    Err(_) => {
                        let reason = format!("{}; no time left to retry this record", why(&e));
                        gave_up = Some(reason.clone());
                        Err(reason)
                    }
                },
            };
            for o in &mut out[part] {
                *o = Some(result.clone());
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(why(&e))))
            .collect()
    }
}

impl Batch for AcctBatch {
    type R = (AcctStatus, AcctRecord);
    type T = AcctOutcome;

    async fn write<'a>(
        inner: &'a Inner,
        pool: &'a Pool,
        recs: Vec<&'a (AcctStatus, AcctRecord)>,
    ) -> Vec<Result<AcctOutcome, String>> {
        // Before anything is keyed on the unique id: the statements return
        // the ids as stored, and each record is matched with its row by it.
        let clean: Vec<(AcctStatus, std::borrow::Cow<'_, AcctRecord>)> =
            recs.iter().map(|(s, r)| (*s, r.storable())).collect();
        let batch: Vec<(AcctStatus, &AcctRecord)> = clean.iter().map(|(s, r)| (*s, &**r)).collect();
        let mut out = vec![None; batch.len()];
        let together = inner
            .deadline("accounting", async {
                let client = InFlight(Some(inner.client_of(pool).await?));
                let r = apply_accounting(client.get(), &batch, &mut out).await;
                client.finished();
                r
            })
            .await;
        let Err(e) = together else {
            return out
                .into_iter()
                .map(|o| Ok(o.unwrap_or(AcctOutcome::Unchanged)))
                .collect();
        };
        // What was committed stays; a record the database refused must not
        // take the others down, so the rest are written one at a time, in
        // order. Not when the database is unreachable or too slow: the
        // leader is a radiusd thread, and retrying would hold it (and every
        // waiting caller) for a timeout per record.
        let pending = out.iter().filter(|o| o.is_none()).count();
        let refused = matches!(&e, Error::Db(d) if d.as_db_error().is_some());
        let retry = pending > 1 && refused;
        if retry {
            inner
                .acct_fallbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::warn!(
                "accounting batch failed ({e}); writing its {pending} unwritten records one at a time"
            );
        }
        // The retries share one more query_timeout.
        let budget = std::time::Instant::now() + inner.query_timeout;
        let mut results = Vec::with_capacity(batch.len());
        for ((status, rec), o) in batch.iter().zip(out) {
            results.push(match o {
                Some(o) => Ok(o),
                None if !retry => Err(e.to_string()),
                None if std::time::Instant::now() >= budget => {
                    Err(format!("{e}; no time left to retry this record alone"))
                }
                None => inner
                    .write_accounting(pool, *status, rec)
                    .await
                    .map_err(|e| e.to_string()),
            });
        }
        results
    }
}

/// Some accounting records as the statements of [`accounting`] take them:
/// one array per column.
struct Columns<'a> {
    /// The text columns, in the statements' order (see `text_of`), made
    /// storable: also on the paths that do not go through
    /// [`AcctRecord::storable`] first.
    text: [Vec<std::borrow::Cow<'a, str>>; 19],
    ts: Vec<i64>,
    stime: Vec<Option<i64>>,
    inoct: Vec<i64>,
    outoct: Vec<i64>,
}

fn text_of(r: &AcctRecord) -> [&str; 19] {
    [
        &r.session_id,
        &r.unique_id,
        &r.username,
        &r.realm,
        &r.nas_ip,
        &r.nas_port_id,
        &r.nas_port_type,
        &r.authentic,
        &r.connect_info,
        &r.called_station_id,
        &r.calling_station_id,
        &r.terminate_cause,
        &r.service_type,
        &r.framed_protocol,
        &r.framed_ip_address,
        &r.framed_ipv6_address,
        &r.framed_ipv6_prefix,
        &r.framed_interface_id,
        &r.delegated_ipv6_prefix,
    ]
}

impl<'a> Columns<'a> {
    fn of(recs: impl ExactSizeIterator<Item = &'a AcctRecord>) -> Columns<'a> {
        let n = recs.len();
        let mut c = Columns {
            text: std::array::from_fn(|_| Vec::with_capacity(n)),
            ts: Vec::with_capacity(n),
            stime: Vec::with_capacity(n),
            inoct: Vec::with_capacity(n),
            outoct: Vec::with_capacity(n),
        };
        for r in recs {
            for (col, v) in c.text.iter_mut().zip(text_of(r)) {
                col.push(postauth::storable_text(v));
            }
            c.ts.push(r.event_time);
            c.stime.push(r.session_time);
            c.inoct.push(r.input_total());
            c.outoct.push(r.output_total());
        }
        c
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 23] {
        let t = &self.text;
        [
            &t[0],
            &t[1],
            &t[2],
            &t[3],
            &t[4],
            &t[5],
            &t[6],
            &self.ts,
            &self.stime,
            &t[7],
            &t[8],
            &self.inoct,
            &self.outoct,
            &t[9],
            &t[10],
            &t[11],
            &t[12],
            &t[13],
            &t[14],
            &t[15],
            &t[16],
            &t[17],
            &t[18],
        ]
    }
}

/// Applies `recs` with the result of applying them one after the other in
/// this order, but with a few multi-row statements instead of one per
/// record, and one round trip and one commit for most batches.
///
/// Records of different unique ids change different rows, so only the
/// order among records of the same unique id matters: the k-th record of a
/// unique id goes to round k, and rounds run in order. A round is one
/// "wave": the upsert of each status type present, for all its records at
/// once, sent together inside BEGIN and COMMIT. Accounting-On/Off change
/// rows of any unique id: each is a statement of its own, after the rounds
/// of the records before it and before those of the records after it.
///
/// `out` gets each record's outcome as soon as it is committed. On an
/// error the failed wave is rolled back whole and the records still `None`
/// have changed nothing.
async fn apply_accounting(
    client: &Object,
    recs: &[(AcctStatus, &AcctRecord)],
    out: &mut [Option<AcctOutcome>],
) -> Result<(), Error> {
    for (o, (status, _)) in out.iter_mut().zip(recs) {
        if !accounting::stores(*status) {
            *o = Some(AcctOutcome::Unchanged);
        }
    }
    let mut i = 0;
    while i < recs.len() {
        let (status, rec) = recs[i];
        if accounting::is_nas_wide(status) {
            let stmt = client.prepare_cached(accounting::NAS_RESET).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [&rec.nas_ip, &rec.event_time, &rec.terminate_cause];
            client.execute(&stmt, &params).await?;
            // Answered `ok` even when no session was open.
            out[i] = Some(AcctOutcome::Written);
            i += 1;
            continue;
        }
        let end = recs[i..]
            .iter()
            .position(|(s, _)| accounting::is_nas_wide(*s))
            .map_or(recs.len(), |n| i + n);
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (j, (status, rec)) in recs.iter().enumerate().take(end).skip(i) {
            if accounting::statement(*status).is_none() {
                continue;
            }
            let k = seen.entry(rec.unique_id.as_str()).or_insert(0);
            if rounds.len() == *k {
                rounds.push(Vec::new());
            }
            rounds[*k].push(j);
            *k += 1;
        }
        for round in &rounds {
            apply_round(client, recs, round, out).await?;
        }
        i = end;
    }
    Ok(())
}

/// One round of [`apply_accounting`]: `round` indexes records of `recs`
/// with distinct unique ids, none of them NAS-wide.
async fn apply_round(
    client: &Object,
    recs: &[(AcctStatus, &AcctRecord)],
    round: &[usize],
    out: &mut [Option<AcctOutcome>],
) -> Result<(), Error> {
    let mut by_type = [
        (AcctStatus::Start, Vec::new()),
        (AcctStatus::InterimUpdate, Vec::new()),
        (AcctStatus::Stop, Vec::new()),
    ];
    for &j in round {
        if let Some((_, v)) = by_type.iter_mut().find(|(s, _)| *s == recs[j].0) {
            v.push(j);
        }
    }
    // Prepared first, so that the wave goes out in one piece.
    let mut stmts = Vec::with_capacity(3);
    for (s, v) in &by_type {
        stmts.push(match (v.is_empty(), accounting::statement(*s)) {
            (false, Some(sql)) => Some(client.prepare_cached(sql).await?),
            _ => None,
        });
    }
    let cols: Vec<Columns> = by_type
        .iter()
        .map(|(_, v)| Columns::of(v.iter().map(|&j| recs[j].1)))
        .collect();
    let parts: [Option<(&tokio_postgres::Statement, &Columns)>; 3] =
        std::array::from_fn(|k| stmts[k].as_ref().map(|st| (st, &cols[k])));
    let changed = wave(client, parts).await?;
    for ((_, v), ids) in by_type.iter().zip(changed) {
        for &j in v {
            // A row not returned was left alone (an Interim-Update after
            // the Stop): rlm_sql's `noop`.
            out[j] = Some(match ids.contains(recs[j].1.unique_id.as_str()) {
                true => AcctOutcome::Written,
                false => AcctOutcome::Unchanged,
            });
        }
    }
    Ok(())
}

/// Runs `part`'s statement; the unique ids it changed.
async fn changed_ids(
    client: &Object,
    part: Option<(&tokio_postgres::Statement, &Columns<'_>)>,
) -> Result<std::collections::HashSet<String>, tokio_postgres::Error> {
    let Some((stmt, cols)) = part else {
        return Ok(Default::default());
    };
    let rows = client.query(stmt, &cols.params()).await?;
    rows.iter().map(|r| r.try_get::<_, String>(0)).collect()
}

/// A connection in the middle of a wave. Dropped before [`InFlight::finished`]
/// (a deadline cut the wave short) it may be inside a transaction, so it is
/// closed, which makes the server roll back, instead of going back to its
/// pool.
struct InFlight(Option<Object>);

impl InFlight {
    fn get(&self) -> &Object {
        self.0.as_ref().expect("present until finished or dropped")
    }

    /// Back to the pool: every request sent on it has been answered.
    fn finished(mut self) {
        drop(self.0.take());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            drop(Object::take(obj));
        }
    }
}

/// Runs up to three statements in one transaction, sent together with its
/// BEGIN and COMMIT (one round trip, one WAL flush); for each, the unique
/// ids it changed. Any error rolls the whole wave back. A single statement
/// is a transaction of its own and goes out alone.
async fn wave(
    client: &Object,
    parts: [Option<(&tokio_postgres::Statement, &Columns<'_>)>; 3],
) -> Result<[std::collections::HashSet<String>; 3], Error> {
    let several = parts.iter().flatten().count() > 1;
    let [a, b, c] = parts;
    let around = |sql: &'static str| async move {
        match several {
            true => client.batch_execute(sql).await,
            false => Ok(()),
        }
    };
    // biased: requests go out in this order on the first poll.
    let (begin, a, b, c, commit) = tokio::join!(
        biased;
        around("BEGIN"),
        changed_ids(client, a),
        changed_ids(client, b),
        changed_ids(client, c),
        around("COMMIT"),
    );
    begin?;
    let changed = [a?, b?, c?];
    commit?;
    Ok(changed)
}

impl Inner {
    /// One accounting request in its own transaction.
    async fn write_accounting(
        &self,
        pool: &Pool,
        status: AcctStatus,
        rec: &AcctRecord,
    ) -> Result<AcctOutcome, Error> {
        self.deadline("accounting", async {
            let client = InFlight(Some(self.client_of(pool).await?));
            let mut out = [None];
            let r = apply_accounting(client.get(), &[(status, rec)], &mut out).await;
            client.finished();
            r?;
            Ok(out[0].unwrap_or(AcctOutcome::Unchanged))
        })
        .await
    }

    /// radpostauth rows, all in one statement (one commit).
    async fn insert_postauth(&self, pool: &Pool, recs: &[&PostAuthRecord]) -> Result<(), String> {
        self.try_insert_postauth(pool, recs)
            .await
            .map_err(|e| e.to_string())
    }

    /// [`Inner::insert_postauth`] keeping the error, so that the batch
    /// writer can tell a refused record from a database that is away.
    async fn try_insert_postauth(
        &self,
        pool: &Pool,
        recs: &[&PostAuthRecord],
    ) -> Result<(), Error> {
        // Here rather than in the callers: whoever built the record, the
        // database gets nothing it would refuse for its text.
        let recs: Vec<std::borrow::Cow<'_, PostAuthRecord>> =
            recs.iter().map(|r| r.storable()).collect();
        let client = self.client_of(pool).await?;
        let stmt = client.prepare_cached(postauth::INSERT_MANY).await?;
        let col = |f: fn(&PostAuthRecord) -> Option<&str>| -> Vec<Option<&str>> {
            recs.iter().map(|r| f(r)).collect()
        };
        let users = col(|r| Some(&r.username));
        let pass = col(|r| r.pass.as_deref());
        let reply = col(|r| Some(&r.reply));
        let called = col(|r| r.called_station_id.as_deref());
        let calling = col(|r| r.calling_station_id.as_deref());
        let when: Vec<f64> = recs.iter().map(|r| r.authdate).collect();
        client
            .execute(&stmt, &[&users, &pass, &reply, &called, &calling, &when])
            .await?;
        Ok(())
    }
}

fn raw_row(r: &tokio_postgres::Row) -> RawRow {
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

/// The account state in [`PROFILE`]'s columns, starting at column `at`.
pub(crate) fn profile_of(r: &tokio_postgres::Row, at: usize) -> Profile {
    let ids: Vec<i64> = r.get(at + 6);
    let hashes: Vec<Vec<u8>> = r.get(at + 7);
    Profile {
        id: r.get(at),
        active: r.get(at + 1),
        reason: r.get(at + 2),
        expiration: r.get(at + 3),
        password_hash: r.get(at + 4),
        nt_hash: r.get(at + 5),
        open_tokens: ids.into_iter().zip(hashes).collect(),
    }
}

pub(crate) type RawRow = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Turns the rows of [`USER_DATA`] into the user's data. A NULL attribute or
/// value is bad data (rlm_sql fails the request on it too).
pub(crate) fn assemble_user(rows: impl Iterator<Item = RawRow>) -> Result<UserData, Error> {
    let mut user = UserData::default();
    let mut groups: Vec<GroupData> = Vec::new();
    let mut group_rows: Vec<(u8, String, AttrRow)> = Vec::new();
    for (kind, grp, attribute, op, value) in rows {
        let table = match kind {
            0 => "radcheck",
            1 => "radreply",
            2 => "radusergroup",
            3 => "radgroupcheck",
            _ => "radgroupreply",
        };
        let bad = |what: &str| Error::BadData {
            table,
            message: format!("{what} is NULL"),
        };
        if kind == 2 {
            groups.push(GroupData {
                name: grp.ok_or_else(|| bad("groupname"))?,
                ..Default::default()
            });
            continue;
        }
        let row = AttrRow {
            attribute: attribute.ok_or_else(|| bad("attribute"))?,
            op_text: op.unwrap_or_default(),
            value: value.ok_or_else(|| bad("value"))?,
        };
        match kind {
            0 => user.check.push(row),
            1 => user.reply.push(row),
            _ => group_rows.push((kind as u8, grp.unwrap_or_default(), row)),
        }
    }
    for mut g in groups {
        for (kind, name, row) in &group_rows {
            if *name == g.name {
                if *kind == 3 {
                    g.check.push(row.clone());
                } else {
                    g.reply.push(row.clone());
                }
            }
        }
        user.groups.push(Arc::new(g));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: i32, grp: &str, a: &str, op: &str, v: &str) -> RawRow {
        (
            kind,
            Some(grp.into()),
            Some(a.into()),
            Some(op.into()),
            Some(v.into()),
        )
    }

    #[test]
    fn rows_become_user_data_in_order() {
        let u = assemble_user(
            vec![
                r(0, "", "Cleartext-Password", ":=", "pw"),
                r(1, "", "Reply-Message", ":=", "hi"),
                r(2, "b", "", "", ""),
                r(2, "a", "", "", ""),
                r(3, "a", "NAS-Identifier", "==", "x"),
                r(4, "a", "Idle-Timeout", ":=", "1"),
                r(4, "b", "Idle-Timeout", ":=", "2"),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(u.check.len(), 1);
        assert_eq!(u.reply.len(), 1);
        let names: Vec<_> = u.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(u.groups[0].reply[0].value, "2");
        assert_eq!(u.groups[1].check[0].attribute, "NAS-Identifier");
    }

    #[test]
    fn null_value_is_bad_data() {
        let e = assemble_user(
            vec![(
                0,
                Some(String::new()),
                Some("A".into()),
                Some(":=".into()),
                None,
            )]
            .into_iter(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("radcheck"), "{e}");
    }
}
