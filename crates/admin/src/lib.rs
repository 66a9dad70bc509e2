//! radius-admin: the management HTTP API and CLI of rlm_rust, on the same
//! core (and the same tables) the FreeRADIUS module uses.
//!
//! `app()` builds the router from an [`AppState`]; `main.rs` only parses
//! the command line. The integration tests build the same router on port 0.

pub mod account;
pub mod auth;
pub mod batch;
pub mod db;
pub mod dead_letters;
pub mod error;
pub mod groups;
pub mod housekeeping;
pub mod input;
pub mod metrics;
pub mod oob;
pub mod openapi;
pub mod outbox;
pub mod pdf;
pub mod radius;
pub mod two_factor;
pub mod usage;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::{ApiError, ApiResult};

/// What `authorize/` answers on a reject (configurable because rlm_rest
/// set-ups differ in what they expect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RejectBody {
    /// 401 with no body, as django-freeradius answers.
    Empty,
    /// 401 with `{"control:Auth-Type": "Reject"}` (and a Reply-Message for
    /// disabled or expired accounts).
    Json,
}

pub struct Config {
    pub dsn: String,
    /// The token given by RADIUS_ADMIN_TOKEN (or generated at start): valid
    /// besides the tokens in the database, never written to it.
    pub bootstrap_token: Option<String>,
    pub authorize_reject: RejectBody,
    /// As the module's item: keep the offered password of rejected
    /// requests in radpostauth.
    pub store_rejected_password: bool,
    pub max_body_bytes: usize,
    /// How long a one-time RADIUS token from the login endpoint is valid.
    pub radius_token_ttl: Duration,
    /// How long a user's auth token (from `token/`) is valid.
    pub user_token_ttl: Duration,
    /// How long an out-of-band code is valid.
    pub oob_ttl: Duration,
    /// The key of the out-of-band codes' HMAC (from --secret-file, else
    /// random for this process).
    pub oob_secret: oob::Secret,
    /// Whether `oob_secret` came from `--secret-file`: only then can the
    /// module read what it seals (TOTP seeds, queued codes), and only then
    /// is the second factor on.
    pub secret_from_file: bool,
    /// The issuer of TOTP provisioning URIs (shown by authenticator apps).
    pub totp_issuer: String,
    /// Codes `sendoobtoken` may issue per user per [`oob::SEND_WINDOW`]
    /// (0: no limit).
    pub oob_send_limit: u32,
    /// Let the console sender log the code itself (at debug level).
    pub console_show_code: bool,
    pub senders: oob::Senders,
    pub read_groups: bool,
    pub read_profiles: bool,
    pub default_profile: Option<String>,
    /// Consecutive failed logins (module and API together) that lock a
    /// user; 0 turns the lockout off. Same item and default as the module.
    pub lockout_attempts: u32,
    /// How long a lock lasts; zero means until an administrator unlocks.
    pub lockout_period: Duration,
    /// Keep the NT hash of every password set here (rlm_rust_user.nt_hash)
    /// so MS-CHAP and PEAP-MSCHAPv2 work for these users. It is
    /// password-equivalent for MS-CHAP; sites that want Argon2id only turn
    /// it off and get NULL (never a stale hash of an older password).
    pub store_nt_hash: bool,
    /// Wrong API tokens one client address may send per minute before its
    /// unknown tokens are answered 429 (0: no limit).
    pub bad_token_limit: u32,
    /// Most users one batch may create (POST batch/); the OpenAPI document
    /// states it.
    pub max_batch_users: usize,
}

impl Config {
    /// Development defaults for `dsn` (console sender, django-compatible
    /// answers); the CLI overrides them from flags and the environment.
    pub fn new(dsn: &str) -> Config {
        Config {
            dsn: dsn.to_string(),
            bootstrap_token: None,
            authorize_reject: RejectBody::Empty,
            store_rejected_password: false,
            max_body_bytes: 8 << 20,
            radius_token_ttl: Duration::from_secs(3600),
            user_token_ttl: Duration::from_secs(86_400),
            oob_ttl: Duration::from_secs(300),
            oob_secret: oob::Secret::random(),
            secret_from_file: false,
            totp_issuer: "rlm_rust".to_string(),
            oob_send_limit: 5,
            console_show_code: false,
            senders: oob::Senders::default(),
            read_groups: true,
            read_profiles: true,
            default_profile: None,
            lockout_attempts: 5,
            lockout_period: Duration::from_secs(300),
            store_nt_hash: true,
            bad_token_limit: 20,
            max_batch_users: batch::MAX_USERS,
        }
    }
}

pub struct AppState {
    pub cfg: Config,
    pub db: deadpool_postgres::Pool,
    /// The core's store: check_login, accounting and post-auth writes go
    /// through exactly the code the module runs.
    pub store: radius_core::store::Store,
    pub bootstrap_hash: Option<[u8; 32]>,
    /// The API tokens' digests, so bogus tokens cost no query.
    pub api_tokens: auth::TokenSet,
    /// What `/metrics` serves.
    pub metrics: Arc<metrics::HttpMetrics>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(cfg: Config) -> Result<AppState, String> {
        let db = db::pool(&cfg.dsn, 16)?;
        let module_cfg = radius_core::config::ModuleConfig::from_items([
            ("dsn", cfg.dsn.as_str()),
            ("auto_migrate", "no"),
        ])
        .map_err(|e| e.to_string())?;
        let store = radius_core::store::Store::new(&module_cfg).map_err(|e| e.to_string())?;
        let cfg_limit = cfg.bad_token_limit;
        let bootstrap_hash = cfg
            .bootstrap_token
            .as_deref()
            .map(radius_core::account::hash_token);
        Ok(AppState {
            cfg,
            db,
            store,
            bootstrap_hash,
            api_tokens: auth::TokenSet::new(cfg_limit),
            metrics: Arc::new(metrics::HttpMetrics::new()),
        })
    }

    /// The login policy of `authorize/` and `token/`: the module's, from
    /// this service's own configuration (same items, same defaults).
    pub fn login_policy(&self) -> radius_core::login::Policy {
        radius_core::login::Policy {
            opts: radius_core::authorize::Options {
                read_groups: self.cfg.read_groups,
                read_profiles: self.cfg.read_profiles,
                default_profile: self.cfg.default_profile.clone(),
            },
            lockout: radius_core::login::Lockout {
                attempts: self.cfg.lockout_attempts,
                period: (!self.cfg.lockout_period.is_zero()).then_some(self.cfg.lockout_period),
            },
            auth_type: "rust".to_string(),
            store_nt_hash: self.cfg.store_nt_hash,
            second_factor: radius_core::login::second_factor::Settings {
                secret: self
                    .cfg
                    .secret_from_file
                    .then(|| self.cfg.oob_secret.clone()),
                code_lifetime: self.cfg.oob_ttl,
            },
        }
    }
}

/// Decides a PAP login with the core's one login procedure, on a blocking
/// thread: it waits for the database and may run a slow hash, neither of
/// which may hold an async worker.
pub async fn decide_login(
    st: &SharedState,
    username: &str,
    password: &str,
    cost: radius_core::login::Cost,
) -> ApiResult<radius_core::account::LoginDecision> {
    let (st, username, password) = (Arc::clone(st), username.to_string(), password.to_string());
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let policy = st.login_policy();
        radius_core::login::pap_login(&st.store, &rt, &policy, &username, &password, cost)
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("login task: {e}")))?
    .map_err(ApiError::from)
}

/// The whole API under /api/v1/. Everything needs an API token (of the
/// scope the operation needs) except the user login (`token/`), the user
/// API (`account/`, the user's own token), the OpenAPI document and the
/// Prometheus metrics (`/metrics`, beside the API as scrapers expect).
pub fn app(state: SharedState) -> Router {
    let protected = Router::new()
        .route("/api/v1/authorize/", post(radius::authorize))
        .route("/api/v1/postauth/", post(radius::postauth))
        .route(
            "/api/v1/accounting/",
            get(radius::list_accounting).post(radius::post_accounting),
        )
        .route("/api/v1/batch/", get(batch::list).post(batch::create))
        .route("/api/v1/batch/{id}/", get(batch::detail))
        .route("/api/v1/batch/{id}/csv/", get(batch::credentials_csv))
        .route("/api/v1/batch/{id}/pdf/", get(batch::credentials_pdf))
        .route("/api/v1/radiususers/", get(users::list).post(users::create))
        .route(
            "/api/v1/radiususers/{id}/",
            get(users::detail)
                .patch(users::update)
                .delete(users::delete),
        )
        .route(
            "/api/v1/radiususers/{id}/password/",
            post(users::set_password),
        )
        .route(
            "/api/v1/radiususers/{id}/sendoobtoken/",
            post(users::send_oob_token),
        )
        .route(
            "/api/v1/radiususers/{id}/verifyoobtoken/",
            post(users::verify_oob_token),
        )
        .route(
            "/api/v1/radiususers/{id}/totp/",
            post(two_factor::rotate_totp),
        )
        .route("/api/v1/auth/", post(two_factor::auth))
        .route("/api/v1/groups/", get(groups::list).post(groups::create))
        .route(
            "/api/v1/groups/{name}/",
            get(groups::detail)
                .patch(groups::update)
                .delete(groups::delete),
        )
        .route(
            "/api/v1/groups/{name}/members/",
            get(groups::members).post(groups::add_member),
        )
        .route(
            "/api/v1/groups/{name}/members/{username}/",
            axum::routing::delete(groups::remove_member),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // The user API: the user's own auth token (from token/), not an API
    // token.
    let own = Router::new()
        .route("/api/v1/account/session/", get(account::sessions))
        .route("/api/v1/account/usage/", get(account::usage))
        .route(
            "/api/v1/account/password/change/",
            post(account::change_password),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            account::require_user_token,
        ));
    let public = Router::new()
        .route("/api/v1/token/", post(users::login))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics::serve));
    let max_body = state.cfg.max_body_bytes;
    let http_metrics = Arc::clone(&state.metrics);
    protected
        .merge(own)
        .merge(public)
        .fallback(|| async { ApiError::NotFound("resource".into()) })
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        // Outermost, so a panic's 500 is counted too; Router::layer runs
        // after routing, so the matched route template is known.
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            metrics::track,
        ))
        .with_state(state)
}

/// Marks a deliberately empty error answer (authorize/'s reject for
/// rlm_rest) so the JSON safety net leaves it alone.
#[derive(Clone, Copy)]
pub struct KeepEmpty;

/// A safety net for answers produced outside our handlers (axum's own
/// rejections: 405, path decoding, body limit): every error is JSON.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let keep = resp.extensions().get::<KeepEmpty>().is_some();
    if (status.is_client_error() || status.is_server_error()) && !is_json && !keep {
        let allow = resp.headers().get(header::ALLOW).cloned();
        let detail = status.canonical_reason().unwrap_or("error").to_lowercase();
        let mut out = (status, axum::Json(serde_json::json!({ "detail": detail }))).into_response();
        if let Some(a) = allow {
            out.headers_mut().insert(header::ALLOW, a);
        }
        if status == StatusCode::UNAUTHORIZED {
            out.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return out;
    }
    resp
}

/// A panic is a bug: log it, answer JSON, keep serving.
fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    log::error!("handler panicked: {msg}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({ "detail": "internal error" })),
    )
        .into_response()
}

/// Serves on `listener` (the tests bind port 0) until `shutdown` resolves.
pub async fn serve(
    state: SharedState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Codes the module (and auth/) queued go out through this process's
    // senders while it serves.
    let sender = tokio::spawn(outbox::run(state.clone()));
    // The peer address feeds the wrong-token throttle.
    let app = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sender.abort();
    served
}
