//! The second factor over HTTP: FortiAuthenticator's `auth/` (password
//! and token code, decided by the core's one login procedure, the code
//! checked exactly as the module checks it) and TOTP provisioning
//! (`radiususers/<id>/totp/`, and the seed of a user created with
//! token_type ftm/ftk), whose `otpauth://` URI is shown once.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use radius_core::account::{LoginDecision, RejectReason};
use radius_core::login::second_factor::{Issued, Offer, Refusal};
use radius_core::login::{totp, Cost, PapLogin};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::input::Input;
use crate::SharedState;

/// Longest `token_code` taken (codes have 6 digits; anything else is just
/// a wrong code, but need not be read at any length).
pub const MAX_TOKEN_CODE_BYTES: usize = 16;

/// Whether a user with these fields gets a TOTP seed.
pub fn uses_totp(token_auth: bool, token_type: Option<&str>) -> bool {
    token_auth && matches!(token_type, Some("ftm" | "ftk"))
}

/// Refuses to make a seed the module could never read: only a secret
/// from `--secret-file` is shared with it.
pub fn check_can_provision(st: &SharedState) -> ApiResult<()> {
    if st.cfg.secret_from_file {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "token_type",
            "TOTP seeds need radius-admin started with --secret-file (the file the module's secret_file names)",
        ))
    }
}

/// Makes (or replaces) the user's TOTP seed; answers its provisioning URI.
pub async fn provision(st: &SharedState, user_id: i64, username: &str) -> ApiResult<String> {
    check_can_provision(st)?;
    let seed = totp::new_seed();
    st.store
        .set_totp_seed(&st.cfg.oob_secret, user_id, &seed)
        .await?;
    Ok(totp::uri(&st.cfg.totp_issuer, username, &seed))
}

/// `POST radiususers/<id>/totp/`: a new seed for a token_type ftm/ftk
/// user; the old one stops working at once. The URI is shown only here.
pub async fn rotate_totp(
    State(st): State<SharedState>,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult<Json<Value>> {
    input.deny_unknown("field")?;
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid("id", format!("'{id}' is not a user id")))?;
    let client = st.db.get().await?;
    let row = client
        .query_opt(
            "SELECT username, token_type FROM rlm_rust_user WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("user".into()))?;
    drop(client);
    let (username, token_type): (String, Option<String>) = (row.get(0), row.get(1));
    if !matches!(token_type.as_deref(), Some("ftm" | "ftk")) {
        return Err(ApiError::invalid(
            "token_type",
            "TOTP seeds are for users of token_type ftm or ftk",
        ));
    }
    let uri = provision(&st, id, &username).await?;
    Ok(Json(json!({
        "detail": "TOTP seed created; the previous one no longer works",
        "totp_uri": uri,
    })))
}

/// `POST auth/` (FortiAuthenticator): `username`, `password` and, for a
/// user with a second factor, `token_code`. 200 when everything is right;
/// 401 otherwise, the lockout counting wrong passwords and wrong codes.
/// Without `token_code`, a user whose password is right and who needs one
/// gets 401 with `token_required`, and an e-mail/SMS user is sent a code
/// (`token_sent`), delivered by this service's senders.
pub async fn auth(State(st): State<SharedState>, mut input: Input) -> ApiResult<Response> {
    let (username, password) = crate::radius::credentials(&mut input)?;
    let code = input
        .text_opt("token_code", MAX_TOKEN_CODE_BYTES)?
        .filter(|c| !c.is_empty());
    input.deny_unknown("field")?;
    let login = {
        let (st, username) = (st.clone(), username.clone());
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let policy = st.login_policy();
            let offer = Offer::Apart {
                password: &password,
                code: code.as_deref(),
            };
            radius_core::login::pap_login_offer(
                &st.store,
                &rt,
                &policy,
                &username,
                offer,
                Cost::Uniform,
            )
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("login task: {e}")))??
    };
    let PapLogin {
        decision,
        code_sent,
    } = login;
    match decision {
        LoginDecision::Accept { .. } => Ok((
            StatusCode::OK,
            Json(json!({ "detail": "authenticated", "username": username })),
        )
            .into_response()),
        LoginDecision::Reject {
            reason: RejectReason::SecondFactor(Refusal::CodeRequired),
        } => {
            let body = match code_sent {
                Some(Issued::Sent {
                    channels,
                    expires_at,
                }) => json!({
                    "detail": "token code required; a code was sent",
                    "token_required": true,
                    "token_sent": channels,
                    "expires_at": expires_at,
                }),
                Some(Issued::Limited) => json!({
                    "detail": "token code required; no new code sent (too many sent lately): use the last one",
                    "token_required": true,
                    "token_sent": [],
                }),
                None => json!({
                    "detail": "token code required",
                    "token_required": true,
                    "token_sent": [],
                }),
            };
            Ok(unauthorized(body))
        }
        LoginDecision::Reject { reason } => {
            log::info!("auth/: {username} refused ({reason})");
            Ok(unauthorized(json!({ "detail": "invalid credentials" })))
        }
    }
}

fn unauthorized(body: Value) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}
