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
use axum::http::{header, Method};
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
    let client = client_ip(&req);
    let needed = required_scope(req.method(), req.uri().path());
    match is_valid(&st, &token, client).await {
        Ok(Some(granted)) if granted.allows(needed) => next.run(req).await,
        Ok(Some(_)) => ApiError::Scope(needed.as_str()).into_response(),
        Ok(None) => {
            if let Some(ip) = client {
                st.api_tokens.count_failure(ip);
            }
            ApiError::Forbidden.into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// What an API token may do. `read`: the management API's GETs
/// (`accounting/` included); `write`: every management operation (read
/// included); `radius`: the endpoints FreeRADIUS calls through rlm_rest
/// (`authorize/`, `postauth/`, `POST accounting/`), nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    Read,
    Write,
    Radius,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Radius];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Radius => "radius",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The scopes a token holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Granted {
    read: bool,
    write: bool,
    radius: bool,
}

impl Granted {
    pub const ALL: Granted = Granted {
        read: true,
        write: true,
        radius: true,
    };

    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Granted {
        let mut g = Granted::default();
        for n in names {
            match Scope::parse(n.as_ref()) {
                Some(Scope::Read) => g.read = true,
                Some(Scope::Write) => g.write = true,
                Some(Scope::Radius) => g.radius = true,
                None => {}
            }
        }
        g
    }

    /// `write` includes `read`.
    pub fn allows(self, s: Scope) -> bool {
        match s {
            Scope::Read => self.read || self.write,
            Scope::Write => self.write,
            Scope::Radius => self.radius,
        }
    }
}

/// The scope an operation needs: the FreeRADIUS-facing endpoints need
/// `radius`, any other GET `read`, everything else `write`.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    let radius = matches!(path, "/api/v1/authorize/" | "/api/v1/postauth/")
        || (path == "/api/v1/accounting/" && method == Method::POST);
    if radius {
        Scope::Radius
    } else if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// The bearer header wins over the query string. A header with another
/// scheme counts as a wrong token (403), not a missing one.
pub(crate) fn presented_token(req: &Request) -> ApiResult<Option<String>> {
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
/// confirmed by its row, so a revocation or an expiry counts at once) with
/// their scopes; anything else is refused from memory (None), or answered
/// 429 once its client has sent too many wrong tokens.
async fn is_valid(
    st: &SharedState,
    token: &str,
    client: Option<IpAddr>,
) -> ApiResult<Option<Granted>> {
    let digest = hash_token(token);
    if let Some(b) = &st.bootstrap_hash {
        if bool::from(b.ct_eq(&digest)) {
            return Ok(Some(Granted::ALL));
        }
    }
    if !st.api_tokens.holds(&digest) {
        if let Some(ip) = client {
            if let Some(retry) = st.api_tokens.throttled(ip) {
                return Err(ApiError::TooManyRequests(retry));
            }
        }
        if !st.api_tokens.refresh_for(&st.db, &digest).await? {
            return Ok(None);
        }
    }
    let client = st.db.get().await?;
    let Some(row) = client
        .query_opt(
            &format!("SELECT id, scopes FROM rlm_rust_api_token WHERE token_hash = $1 AND {LIVE}"),
            &[&digest.as_slice()],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.get(0);
    let scopes: Vec<String> = row.get(1);
    if st.api_tokens.due_for_touch(id) {
        // At most one write per token and TOUCH_EVERY, not one per request.
        client
            .execute(
                "UPDATE rlm_rust_api_token SET last_used_at = now() WHERE id = $1",
                &[&id],
            )
            .await?;
    }
    Ok(Some(Granted::from_names(&scopes)))
}

/// A token that works: not revoked, not past its end.
const LIVE: &str = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())";

/// How often a token's `last_used_at` is written at most.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

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
    /// When each token's last_used_at was last written by this process.
    touched: Mutex<HashMap<i64, Instant>>,
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
            touched: Mutex::new(HashMap::new()),
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
                &format!("SELECT token_hash FROM rlm_rust_api_token WHERE {LIVE}"),
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

    /// Whether token `id`'s last_used_at is due to be written (then it
    /// counts as written now).
    pub fn due_for_touch(&self, id: i64) -> bool {
        let mut t = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        match t.get(&id) {
            Some(at) if at.elapsed() < TOUCH_EVERY => false,
            _ => {
                if t.len() >= CLIENTS_MAX {
                    t.clear();
                }
                t.insert(id, Instant::now());
                true
            }
        }
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
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Not revoked and not past its end.
    pub live: bool,
}

pub struct Created {
    pub id: i64,
    /// The clear token, shown once.
    pub token: String,
    pub expires_at: Option<String>,
}

/// Creates a token with `scopes` (none given: all) valid for `expires_in`
/// (None: until revoked); the clear value is returned once and never
/// stored.
pub async fn create(
    pool: &Pool,
    name: &str,
    scopes: &[Scope],
    expires_in: Option<Duration>,
) -> ApiResult<Created> {
    let token = new_token();
    let mut names: Vec<&str> = if scopes.is_empty() {
        Scope::ALL.iter().map(|s| s.as_str()).collect()
    } else {
        scopes.iter().map(|s| s.as_str()).collect()
    };
    names.sort_unstable();
    names.dedup();
    let secs = expires_in.map(|d| d.as_secs_f64());
    let client = pool.get().await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO rlm_rust_api_token (name, token_hash, scopes, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id, {}",
                crate::radius::ts("expires_at")
            ),
            &[&name, &hash_token(&token).as_slice(), &names, &secs],
        )
        .await?;
    Ok(Created {
        id: row.get(0),
        token,
        expires_at: row.get(1),
    })
}

pub async fn list(pool: &Pool) -> ApiResult<Vec<TokenInfo>> {
    let client = pool.get().await?;
    let ts = crate::radius::ts;
    let rows = client
        .query(
            &format!(
                "SELECT id, name, scopes, {}, {}, {}, {}, {LIVE} FROM rlm_rust_api_token ORDER BY id",
                ts("created_at"),
                ts("expires_at"),
                ts("last_used_at"),
                ts("revoked_at")
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TokenInfo {
            id: r.get(0),
            name: r.get(1),
            scopes: r.get(2),
            created_at: r.get(3),
            expires_at: r.get(4),
            last_used_at: r.get(5),
            revoked_at: r.get(6),
            live: r.get(7),
        })
        .collect())
}

/// Parses a lifetime: a number with an optional unit `s`, `m`, `h`, `d`
/// or `w` (`90d`, `12h`, `3600`); at least one second, at most 100 years.
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a lifetime (e.g. 3600, 90m, 12h, 30d, 2w)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("'{s}': the unit is one of s, m, h, d, w")),
    };
    let secs = n
        .checked_mul(mult)
        .filter(|v| (1..=100 * 365 * 86_400).contains(v))
        .ok_or_else(|| format!("'{s}': between 1 second and 100 years"))?;
    Ok(Duration::from_secs(secs))
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
