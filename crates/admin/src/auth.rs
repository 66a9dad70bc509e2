//! API tokens: `Authorization: Bearer <token>` (recommended) or
//! `?token=<token>`. Only SHA-256 digests are stored (tokens are 192-bit
//! random values, so a slow hash would add nothing). Unknown tokens are
//! looked up one at a time ([`TokenSet`]), so a flood of bogus tokens holds
//! at most one connection; a known one is confirmed by its row.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use radius_core::account::{hash_token, new_token};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::SharedState;

pub async fn require_token(State(st): State<SharedState>, req: Request, next: Next) -> Response {
    let token = match presented_token(&req) {
        Ok(Some(t)) => t,
        Ok(None) => return ApiError::Unauthenticated.into_response(),
        Err(e) => return e.into_response(),
    };
    match is_valid(&st, &token).await {
        Ok(true) => next.run(req).await,
        Ok(false) => ApiError::Forbidden.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The bearer header wins over the query string. A header with another
/// scheme counts as a wrong token (403), not a missing one.
fn presented_token(req: &Request) -> ApiResult<Option<String>> {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        let h = h.to_str().map_err(|_| ApiError::Forbidden)?.trim();
        let (scheme, value) = h.split_once(' ').ok_or(ApiError::Forbidden)?;
        // DRF clients send "Token <key>"; accept it beside "Bearer".
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            return Ok(Some(value.trim().to_string()));
        }
        return Err(ApiError::Forbidden);
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    Ok(pairs
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v))
}

async fn is_valid(st: &SharedState, token: &str) -> ApiResult<bool> {
    let digest = hash_token(token);
    if let Some(b) = &st.bootstrap_hash {
        if bool::from(b.ct_eq(&digest)) {
            return Ok(true);
        }
    }
    if !st.api_tokens.may_be_valid(&st.db, &digest).await? {
        return Ok(false);
    }
    // Confirmed by its row, so a revocation counts at once.
    let client = st.db.get().await?;
    let row = client
        .query_opt(
            "SELECT 1 FROM rlm_rust_api_token WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&digest.as_slice()],
        )
        .await?;
    Ok(row.is_some())
}

/// Digests of API tokens seen valid, so that bogus tokens cannot take the
/// pool from legitimate calls: a known digest is answered from memory (the
/// caller still confirms it by its row, so a revocation counts at once),
/// and unknown ones are looked up one at a time, so a flood of bogus
/// tokens holds at most one database connection.
#[derive(Default)]
pub struct TokenSet {
    known: std::sync::RwLock<std::collections::HashSet<[u8; 32]>>,
    lookups: tokio::sync::Mutex<()>,
}

/// Known digests kept at most; past it the set starts over.
const KNOWN_MAX: usize = 10_000;

impl TokenSet {
    /// False when `digest` is no valid token; true when it may be (the
    /// caller confirms it).
    pub async fn may_be_valid(&self, pool: &Pool, digest: &[u8; 32]) -> ApiResult<bool> {
        if self.read().contains(digest) {
            return Ok(true);
        }
        let _one_at_a_time = self.lookups.lock().await;
        let client = pool.get().await?;
        let found = client
            .query_opt(
                "SELECT 1 FROM rlm_rust_api_token WHERE token_hash = $1 AND revoked_at IS NULL",
                &[&digest.as_slice()],
            )
            .await?
            .is_some();
        if found {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            if known.len() >= KNOWN_MAX {
                known.clear();
            }
            known.insert(*digest);
        }
        Ok(found)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, std::collections::HashSet<[u8; 32]>> {
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, serde::Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Creates a token; the clear value is returned once and never stored.
pub async fn create(pool: &Pool, name: &str) -> ApiResult<(i64, String)> {
    let token = new_token();
    let client = pool.get().await?;
    let row = client
        .query_one(
            "INSERT INTO rlm_rust_api_token (name, token_hash) VALUES ($1, $2) RETURNING id",
            &[&name, &hash_token(&token).as_slice()],
        )
        .await?;
    Ok((row.get(0), token))
}

pub async fn list(pool: &Pool) -> ApiResult<Vec<TokenInfo>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, name, {}, {} FROM rlm_rust_api_token ORDER BY id",
                crate::radius::ts("created_at"),
                crate::radius::ts("revoked_at")
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TokenInfo {
            id: r.get(0),
            name: r.get(1),
            created_at: r.get(2),
            revoked_at: r.get(3),
        })
        .collect())
}

/// False when no such token or already revoked.
pub async fn revoke(pool: &Pool, id: i64) -> ApiResult<bool> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE rlm_rust_api_token SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}
