//! `radius-admin housekeeping`: deletes what radius-admin keeps only for a
//! while. The clear credentials of prefix batches older than
//! `--batch-credential-days` (the batch then shows `credentials_purged_at`
//! and its CSV / PDF answer 410 saying when), expired user auth tokens,
//! and one-time RADIUS tokens and out-of-band codes a day past their end
//! (kept that long so the per-user `sendoobtoken` limit still sees them).

use deadpool_postgres::Pool;

use crate::error::ApiResult;

/// The default of `--batch-credential-days`.
pub const DEFAULT_BATCH_CREDENTIAL_DAYS: u32 = 30;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Batches whose credentials were purged by this run.
    pub batches_purged: u64,
    /// Credential rows deleted.
    pub credentials_deleted: u64,
    pub user_tokens_deleted: u64,
    pub radius_tokens_deleted: u64,
    pub oob_codes_deleted: u64,
}

/// One transaction: either everything listed is done or nothing.
pub async fn run(pool: &Pool, batch_credential_days: u32) -> ApiResult<Report> {
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
    })
}
