//! API tokens: `Authorization: Bearer <token>` (recommended) or
//! `?token=<token>`. Only SHA-256 digests are stored (tokens are 192-bit
//! random values, so a slow hash would add nothing). The valid digests are
//! held in memory ([`TokenSet`]): a bogus token is refused without a query,
//! and a client sending many is answered 429; a known one is confirmed by
//! its row.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
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
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match is_valid(&st, &token, client).await {
        Ok(true) => next.run(req).await,
        Ok(false) => {
            if let Some(ip) = client {
                st.api_tokens.count_failure(ip);
            }
            ApiError::Forbidden.into_response()
        }
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

/// The bootstrap token and the tokens in memory pass (a stored one is
/// confirmed by its row, so a revocation counts at once); anything else is
/// refused from memory, or answered 429 once its client has sent too many
/// wrong tokens.
async fn is_valid(st: &SharedState, token: &str, client: Option<IpAddr>) -> ApiResult<bool> {
    let digest = hash_token(token);
    if let Some(b) = &st.bootstrap_hash {
        if bool::from(b.ct_eq(&digest)) {
            return Ok(true);
        }
    }
    if !st.api_tokens.holds(&digest) {
        if let Some(ip) = client {
            if let Some(retry) = st.api_tokens.throttled(ip) {
                return Err(ApiError::TooManyRequests(retry));
            }
        }
        if !st.api_tokens.refresh_for(&st.db, &digest).await? {
            return Ok(false);
        }
    }
    let client = st.db.get().await?;
    let row = client
        .query_opt(
            "SELECT 1 FROM rlm_rust_api_token WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&digest.as_slice()],
        )
        .await?;
    Ok(row.is_some())
}

/// The digests of the valid API tokens, held in memory so that a bogus
/// token costs no query: API tokens are few, and the whole set is read
/// again (one query) when an unknown digest arrives and the copy is older
/// than [`REFRESH_AFTER`]. A flood of bogus tokens therefore costs at most
/// one query per [`REFRESH_AFTER`], and a token created by another process
/// works within that time. Besides, a client that sent more than
/// `limit` wrong tokens within [`BAD_TOKEN_WINDOW`] is answered 429 for any
/// token not in memory until the window ends; valid tokens from the same
/// address still pass.
pub struct TokenSet {
    known: RwLock<Known>,
    refresh: tokio::sync::Mutex<()>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    limit: u32,
}

struct Known {
    digests: HashSet<[u8; 32]>,
    loaded: Option<Instant>,
}

/// How old the copy must be before an unknown digest reads the table again.
pub const REFRESH_AFTER: Duration = Duration::from_millis(250);
/// The window over which a client's wrong tokens are counted.
pub const BAD_TOKEN_WINDOW: Duration = Duration::from_secs(60);
/// Clients whose failures are remembered at most; past it the oldest
/// windows are forgotten first.
const CLIENTS_MAX: usize = 10_000;

impl Default for TokenSet {
    fn default() -> Self {
        TokenSet::new(20)
    }
}

impl TokenSet {
    /// `limit`: wrong tokens a client may send per [`BAD_TOKEN_WINDOW`]
    /// before it is answered 429 (0: no limit).
    pub fn new(limit: u32) -> TokenSet {
        TokenSet {
            known: RwLock::new(Known {
                digests: HashSet::new(),
                loaded: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
            failures: Mutex::new(HashMap::new()),
            limit,
        }
    }

    /// Whether `digest` is in the copy in memory.
    pub fn holds(&self, digest: &[u8; 32]) -> bool {
        self.read().digests.contains(digest)
    }

    /// For a digest not in memory: reads the table again unless the copy
    /// is fresh (one reader at a time; the others wait for its result).
    pub async fn refresh_for(&self, pool: &Pool, digest: &[u8; 32]) -> ApiResult<bool> {
        let fresh = |k: &Known| k.loaded.is_some_and(|t| t.elapsed() < REFRESH_AFTER);
        if fresh(&self.read()) {
            return Ok(self.holds(digest));
        }
        let _one_at_a_time = self.refresh.lock().await;
        if fresh(&self.read()) {
            return Ok(self.holds(digest));
        }
        let client = pool.get().await?;
        let rows = client
            .query(
                "SELECT token_hash FROM rlm_rust_api_token WHERE revoked_at IS NULL",
                &[],
            )
            .await?;
        let digests: HashSet<[u8; 32]> = rows
            .iter()
            .filter_map(|r| <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)).ok())
            .collect();
        let found = digests.contains(digest);
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = Known {
            digests,
            loaded: Some(Instant::now()),
        };
        Ok(found)
    }

    /// Some(seconds to wait) when `ip` sent too many wrong tokens lately.
    pub fn throttled(&self, ip: IpAddr) -> Option<u64> {
        if self.limit == 0 {
            return None;
        }
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match f.get(&ip) {
            Some((n, since)) if *n >= self.limit && since.elapsed() < BAD_TOKEN_WINDOW => {
                Some((BAD_TOKEN_WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => None,
        }
    }

    /// Counts one wrong token from `ip`.
    pub fn count_failure(&self, ip: IpAddr) {
        if self.limit == 0 {
            return;
        }
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() >= CLIENTS_MAX && !f.contains_key(&ip) {
            f.retain(|_, (_, since)| since.elapsed() < BAD_TOKEN_WINDOW);
            if f.len() >= CLIENTS_MAX {
                f.clear();
            }
        }
        let e = f.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= BAD_TOKEN_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 = e.0.saturating_add(1);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
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
