//! `radius-admin dead-letters`: the accounting and post-auth records
//! PostgreSQL refused and the module's journal set aside
//! (`rlm_rust_dead_letter`, migration V8), listed for reading and applied
//! again by the core's `Store::replay_dead_letters` once the cause is
//! fixed.

use deadpool_postgres::Pool;

use crate::error::ApiResult;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub kind: String,
    pub journal_id: String,
    pub seq: i64,
    pub set_aside_at: String,
    pub reason: String,
    pub record_text: String,
}

/// Oldest first (the order replay applies them in).
pub async fn list(pool: &Pool) -> ApiResult<Vec<DeadLetter>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, kind, journal_id, seq, {}, reason, record_text \
                 FROM rlm_rust_dead_letter ORDER BY id",
                crate::radius::ts("set_aside_at")
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            kind: r.get(1),
            journal_id: r.get(2),
            seq: r.get(3),
            set_aside_at: r.get(4),
            reason: r.get(5),
            record_text: r.get(6),
        })
        .collect())
}

/// Applies every dead letter again through the core (what PostgreSQL now
/// takes is written and removed; what it still refuses stays, with the
/// new reason).
pub async fn replay(dsn: &str) -> Result<radius_core::Replayed, String> {
    let cfg = radius_core::config::ModuleConfig::from_items([("dsn", dsn), ("auto_migrate", "no")])
        .map_err(|e| e.to_string())?;
    let store = radius_core::store::Store::new(&cfg).map_err(|e| e.to_string())?;
    store
        .replay_dead_letters()
        .await
        .map_err(|e| format!("replay: {e}"))
}
