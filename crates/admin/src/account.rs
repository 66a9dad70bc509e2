//! The user API (openwisp-radius's purpose for the user auth token): a
//! user holding the token `token/` gave them reads their own sessions
//! (`account/session/`) and usage (`account/usage/`) and changes their own
//! password (`account/password/change/`), and nothing else. API tokens do
//! not open it and user tokens open nothing but it.
//!
//! User tokens are SHA-256 stored (192-bit random values), one per user (a
//! login replaces the last), valid `--user-token-ttl`; an inactive or
//! expired account's token stops working. Wrong tokens count towards the
//! same per-address 429 as wrong API tokens.

use axum::extract::{OriginalUri, RawQuery, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use radius_core::account::{hash_token, LoginDecision};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::input::{parse_timestamp, Input};
use crate::radius::MAX_LOGIN_PASSWORD_BYTES;
use crate::SharedState;

/// The user a valid user token belongs to.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user_id: i64,
    pub username: String,
}

/// Only `Authorization: Bearer <token>` (or `Token <token>`): a user token
/// is never taken from the query string.
fn user_token(req: &Request) -> ApiResult<String> {
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated)?;
    let h = h.to_str().map_err(|_| ApiError::Forbidden)?.trim();
    let (scheme, value) = h.split_once(' ').ok_or(ApiError::Forbidden)?;
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")) {
        return Err(ApiError::Forbidden);
    }
    let value = value.trim();
    if value.is_empty() || value.len() > 256 {
        return Err(ApiError::Forbidden);
    }
    Ok(value.to_string())
}

pub async fn require_user_token(
    State(st): State<SharedState>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = match user_token(&req) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let ip = crate::auth::client_ip(&req);
    if let Some(retry) = ip.and_then(|ip| st.api_tokens.throttled(ip)) {
        return ApiError::TooManyRequests(retry).into_response();
    }
    match owner_of(&st, &token).await {
        Ok(Some(owner)) => {
            req.extensions_mut().insert(owner);
            next.run(req).await
        }
        Ok(None) => {
            if let Some(ip) = ip {
                st.api_tokens.count_failure(ip);
            }
            ApiError::Forbidden.into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn owner_of(st: &SharedState, token: &str) -> ApiResult<Option<Owner>> {
    let client = st.db.get().await?;
    let row = client
        .query_opt(
            "SELECT u.id, u.username FROM rlm_rust_user_token t \
             JOIN rlm_rust_user u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.expires_at > now() \
             AND u.active AND (u.expiration IS NULL OR u.expiration > now())",
            &[&hash_token(token).as_slice()],
        )
        .await?;
    Ok(row.map(|r| Owner {
        user_id: r.get(0),
        username: r.get(1),
    }))
}

/// The user's own sessions: `GET accounting/`'s filters (but `username`),
/// paging and answer.
pub async fn sessions(
    State(st): State<SharedState>,
    Extension(owner): Extension<Owner>,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    crate::radius::accounting_page(&st, uri.path(), raw.as_deref(), Some(&owner.username)).await
}

/// The user's totals over their sessions (since `start_time` when given).
pub async fn usage(
    State(st): State<SharedState>,
    Extension(owner): Extension<Owner>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut q = Input::from_query(raw.as_deref())?;
    let since = match q.str_opt("start_time")? {
        Some(v) => Some(parse_timestamp("start_time", &v)?),
        None => None,
    };
    q.deny_unknown("parameter")?;
    let client = st.db.get().await?;
    let cap = |e: &str| format!("LEAST(COALESCE(sum({e}), 0), 9223372036854775807)::bigint");
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE acctstoptime IS NULL), {}, {}, {}, {} \
                 FROM radacct WHERE username = $1 \
                 AND ($2::float8 IS NULL OR acctstarttime >= to_timestamp($2))",
                cap("acctsessiontime"),
                cap("acctinputoctets"),
                cap("acctoutputoctets"),
                crate::radius::ts("max(acctstarttime)"),
            ),
            &[&owner.username, &since],
        )
        .await?;
    Ok(Json(json!({
        "username": owner.username,
        "sessions": row.get::<_, i64>(0),
        "open_sessions": row.get::<_, i64>(1),
        "session_time": row.get::<_, i64>(2),
        "input_octets": row.get::<_, i64>(3),
        "output_octets": row.get::<_, i64>(4),
        "last_session_start": row.get::<_, Option<String>>(5),
    })))
}

/// `current_password` (checked by the login procedure, so a wrong one
/// counts towards the lockout) and `new_password` (the rules of
/// `radiususers/<id>/password/`). The user's token stays valid.
pub async fn change_password(
    State(st): State<SharedState>,
    Extension(owner): Extension<Owner>,
    mut input: Input,
) -> ApiResult<Json<Value>> {
    let current = input.text_req("current_password", MAX_LOGIN_PASSWORD_BYTES)?;
    let new = input.str_req("new_password")?;
    input.deny_unknown("field")?;
    crate::users::check_password("new_password", &new)?;
    if current.contains('\0') {
        return Err(ApiError::invalid(
            "current_password",
            "must not contain NUL",
        ));
    }
    let decision = crate::decide_login(
        &st,
        &owner.username,
        &current,
        radius_core::login::Cost::Uniform,
    )
    .await?;
    if let LoginDecision::Reject { reason } = decision {
        log::info!("password change of {} refused ({reason:?})", owner.username);
        return Err(ApiError::invalid(
            "current_password",
            "not the current password (or the account may not log in)",
        ));
    }
    let nt_hash = crate::users::nt_hash_for(&st, &new);
    let hash = crate::users::hash_password_blocking(new).await?;
    let client = st.db.get().await?;
    client
        .execute(
            "UPDATE rlm_rust_user SET password_hash = $2, nt_hash = $3, updated_at = now() \
             WHERE id = $1",
            &[&owner.user_id, &hash, &nt_hash],
        )
        .await?;
    Ok(Json(json!({ "detail": "password changed" })))
}
