//! `radius-admin housekeeping`: deletes what radius-admin keeps only for a
//! while. The clear credentials of prefix batches older than
//! `--batch-credential-days` (the batch then shows `credentials_purged_at`
//! and its CSV / PDF answer 410 saying when), expired user auth tokens,
//! and one-time RADIUS tokens and out-of-band codes a day past their end
//! (kept that long so the per-user `sendoobtoken` limit still sees them).
//!
//! And, each only when asked: closes accounting sessions the NAS stopped
//! reporting (`--close-stale-after`), deletes old `radpostauth` rows
//! (`--postauth-retention-days`) and closed `radacct` sessions
//! (`--acct-retention-days`). Those run in bounded batches, one statement
//! (and transaction) each, so a huge `radacct` is never locked or
//! rewritten in one go while radiusd keeps writing to it.

use deadpool_postgres::Pool;

use crate::error::ApiResult;

/// The default of `--batch-credential-days`.
pub const DEFAULT_BATCH_CREDENTIAL_DAYS: u32 = 30;

/// Rows one statement closes or deletes.
pub const BATCH_ROWS: i64 = 10_000;

/// What one run does. None: that part does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub batch_credential_days: u32,
    /// Seconds without news after which an open session is closed.
    pub close_stale_after: Option<u32>,
    pub postauth_retention_days: Option<u32>,
    pub acct_retention_days: Option<u32>,
    /// Rows per statement ([`BATCH_ROWS`]; smaller in tests).
    pub batch_rows: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            batch_credential_days: DEFAULT_BATCH_CREDENTIAL_DAYS,
            close_stale_after: None,
            postauth_retention_days: None,
            acct_retention_days: None,
            batch_rows: BATCH_ROWS,
        }
    }
}

/// The terminate cause of a session closed for lack of news, as RFC 2866
/// names a lost connection.
pub const LOST_SERVICE: &str = "Lost-Service";

/// Closes open sessions whose last news (Interim-Update, else Start) is
/// older than the cutoff: stopped at that last news, the time between it
/// and the start as session time, `Lost-Service` as the cause. The cutoff
/// is fixed for the run ($1, epoch seconds), so the batches end.
const CLOSE_STALE: &str = "UPDATE radacct r SET \
     acctstoptime = COALESCE(r.acctupdatetime, r.acctstarttime), \
     acctsessiontime = COALESCE(EXTRACT(EPOCH FROM \
         COALESCE(r.acctupdatetime, r.acctstarttime) - r.acctstarttime)::bigint, r.acctsessiontime), \
     acctterminatecause = $3 \
     WHERE r.radacctid IN (SELECT radacctid FROM radacct \
         WHERE acctstoptime IS NULL \
         AND COALESCE(acctupdatetime, acctstarttime) <= to_timestamp($1::float8) \
         LIMIT $2)";

/// Closed sessions stopped before the cutoff; open ones are never touched.
const DELETE_ACCT: &str = "DELETE FROM radacct WHERE radacctid IN (SELECT radacctid FROM radacct \
     WHERE acctstoptime IS NOT NULL AND acctstoptime < to_timestamp($1::float8) LIMIT $2)";

const DELETE_POSTAUTH: &str = "DELETE FROM radpostauth WHERE id IN (SELECT id FROM radpostauth \
     WHERE authdate < to_timestamp($1::float8) LIMIT $2)";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Batches whose credentials were purged by this run.
    pub batches_purged: u64,
    /// Credential rows deleted.
    pub credentials_deleted: u64,
    pub user_tokens_deleted: u64,
    pub radius_tokens_deleted: u64,
    pub oob_codes_deleted: u64,
    /// Open sessions closed as `Lost-Service` (`--close-stale-after`).
    pub sessions_closed: u64,
    pub postauth_deleted: u64,
    pub acct_deleted: u64,
}

/// Everything `settings` asks for. The credentials and tokens go in one
/// transaction; then stale sessions are closed, then old rows deleted,
/// each in batches of `settings.batch_rows`.
pub async fn run(pool: &Pool, settings: &Settings) -> ApiResult<Report> {
    let mut report = tokens(pool, settings.batch_credential_days).await?;
    let client = pool.get().await?;
    let now: f64 = client
        .query_one("SELECT EXTRACT(EPOCH FROM now())::float8", &[])
        .await?
        .get(0);
    let batch = settings.batch_rows.max(1);
    let days = |d: u32| now - f64::from(d) * 86_400.0;
    let lost = LOST_SERVICE;
    if let Some(secs) = settings.close_stale_after {
        let cutoff = now - f64::from(secs);
        report.sessions_closed =
            batches(&client, CLOSE_STALE, batch, &[&cutoff, &batch, &lost]).await?;
    }
    if let Some(d) = settings.postauth_retention_days {
        report.postauth_deleted =
            batches(&client, DELETE_POSTAUTH, batch, &[&days(d), &batch]).await?;
    }
    if let Some(d) = settings.acct_retention_days {
        report.acct_deleted = batches(&client, DELETE_ACCT, batch, &[&days(d), &batch]).await?;
    }
    Ok(report)
}

/// Runs `sql` (its second parameter `batch`, the most rows it changes)
/// until a run changes fewer rows than that; the rows changed in all.
async fn batches(
    client: &tokio_postgres::Client,
    sql: &str,
    batch: i64,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> ApiResult<u64> {
    let batch = u64::try_from(batch).unwrap_or(1);
    let stmt = client.prepare(sql).await?;
    let mut total = 0;
    loop {
        let n = client.execute(&stmt, params).await?;
        total += n;
        if n < batch {
            return Ok(total);
        }
    }
}

/// Batch credentials and tokens, in one transaction: either everything
/// listed is done or nothing.
async fn tokens(pool: &Pool, batch_credential_days: u32) -> ApiResult<Report> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let days = i32::try_from(batch_credential_days).unwrap_or(i32::MAX);
    let purged = tx
        .query(
            "UPDATE rlm_rust_batch SET credentials_purged_at = now() \
             WHERE strategy = 'prefix' AND credentials_purged_at IS NULL \
             AND created_at <= now() - make_interval(days => $1) RETURNING id",
            &[&days],
        )
        .await?;
    let ids: Vec<i64> = purged.iter().map(|r| r.get(0)).collect();
    let credentials_deleted = tx
        .execute(
            "DELETE FROM rlm_rust_batch_credential c USING rlm_rust_batch b \
             WHERE c.batch_id = b.id AND b.credentials_purged_at IS NOT NULL",
            &[],
        )
        .await?;
    let user_tokens_deleted = tx
        .execute(
            "DELETE FROM rlm_rust_user_token WHERE expires_at <= now()",
            &[],
        )
        .await?;
    let radius_tokens_deleted = tx
        .execute(
            "DELETE FROM rlm_rust_radius_token WHERE expires_at <= now() - interval '1 day'",
            &[],
        )
        .await?;
    let oob_codes_deleted = tx
        .execute(
            "DELETE FROM rlm_rust_oob_code WHERE expires_at <= now() - interval '1 day' \
             AND created_at <= now() - interval '1 day'",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(Report {
        batches_purged: ids.len() as u64,
        credentials_deleted,
        user_tokens_deleted,
        radius_tokens_deleted,
        oob_codes_deleted,
        ..Report::default()
    })
}
