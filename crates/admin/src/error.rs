//! One error type for every handler. Its `IntoResponse` is the only place
//! that decides status codes, so a database problem can never leak out as a
//! 500 with internals: clients get a JSON body naming the field at fault,
//! and operators get the detail in the log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: 400 naming the field (or query parameter, or CSV row).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No API token (401).
    #[error("authentication credentials were not provided")]
    Unauthenticated,
    /// A token that is not valid (403, as the django-freeradius document says).
    #[error("invalid token")]
    Forbidden,
    /// A valid API token without the scope the operation needs (403).
    #[error("this token's scope does not include '{0}'")]
    Scope(&'static str),
    /// What was asked for existed and was deliberately removed (410).
    #[error("{0}")]
    Gone(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with existing data (409), e.g. a duplicate name.
    #[error("{field}: {message}")]
    Conflict { field: String, message: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    TooLarge,
    #[error("unsupported media type: {0}")]
    UnsupportedMedia(String),
    /// Wrong login credentials (401, same answer whatever the cause).
    #[error("invalid username or password")]
    BadCredentials,
    /// The e-mail / SMS sender failed (502): reported, never swallowed.
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// Too many wrong API tokens from this client (429); retry after the
    /// given seconds.
    #[error("too many invalid tokens; retry later")]
    TooManyRequests(u64),
    /// Another rate limit (429) with its own message; retry after the
    /// given seconds.
    #[error("{0}")]
    RateLimited(String, u64),
    /// Database unreachable or failing (503); the detail goes to the log.
    #[error("database unavailable")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::Scope(_) => StatusCode::FORBIDDEN,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Delivery(_) => StatusCode::BAD_GATEWAY,
            ApiError::TooManyRequests(_) | ApiError::RateLimited(..) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Invalid { field, message } | ApiError::Conflict { field, message } => {
                json!({ "detail": format!("{field}: {message}"), "field": field })
            }
            ApiError::Unavailable(detail) => {
                log::error!("database error: {detail}");
                json!({ "detail": self.to_string() })
            }
            ApiError::Delivery(detail) => {
                log::warn!("out-of-band delivery failed: {detail}");
                json!({ "detail": self.to_string() })
            }
            _ => json!({ "detail": self.to_string() }),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::TooManyRequests(secs) | ApiError::RateLimited(_, secs) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        if let Some(db) = e.as_db_error() {
            // Constraint violations are the client's doing (a duplicate
            // name): 400 naming the constraint's column, as DRF answers.
            if *db.code() == SqlState::UNIQUE_VIOLATION {
                let field = db
                    .constraint()
                    .map(constraint_field)
                    .unwrap_or_else(|| "id".into());
                return ApiError::invalid(field, "already exists");
            }
            if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
                return ApiError::conflict("id", "referenced row does not exist");
            }
        }
        ApiError::Unavailable(radius_core::pg::describe(&e))
    }
}

/// `rlm_rust_user_username_key` -> `username`.
fn constraint_field(c: &str) -> String {
    let c = c.strip_suffix("_key").unwrap_or(c);
    for t in [
        "rlm_rust_user_",
        "rlm_rust_batch_credential_",
        "rlm_rust_batch_",
        "rlm_rust_group_",
        "rlm_rust_api_token_",
    ] {
        if let Some(rest) = c.strip_prefix(t) {
            return if rest == "pkey" {
                "name".into()
            } else {
                rest.into()
            };
        }
    }
    c.into()
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        // With its causes: a refused certificate at a reconnect is logged
        // with the sslmode and the reason, not only "TLS handshake".
        ApiError::Unavailable(radius_core::pg::describe(&e))
    }
}

impl From<radius_core::Error> for ApiError {
    fn from(e: radius_core::Error) -> Self {
        // Busy (too many slow verifications) is a 503 too: retry later.
        ApiError::Unavailable(e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_become_fields() {
        assert_eq!(constraint_field("rlm_rust_user_username_key"), "username");
        assert_eq!(constraint_field("rlm_rust_batch_name_key"), "name");
        assert_eq!(constraint_field("rlm_rust_group_pkey"), "name");
    }
}
