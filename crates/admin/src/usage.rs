//! The `usage` field of `GET radiususers/<id>/`: the user's usage against
//! each of their limits, computed by the core as the login procedure
//! computes it.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::SharedState;

/// The user's limits and usage, as JSON; null when they cannot be read
/// (a bad row in the user's check items: the rest of the user still is).
pub async fn of(st: &SharedState, username: &str) -> ApiResult<Value> {
    match report(st, username).await {
        Ok(v) => Ok(v),
        Err(ApiError::Unavailable(e)) if e.contains("bad data") => {
            log::warn!("usage of {username}: {e}");
            Ok(Value::Null)
        }
        Err(e) => Err(e),
    }
}

async fn report(st: &SharedState, username: &str) -> ApiResult<Value> {
    let (st, username) = (Arc::clone(st), username.to_string());
    let rt = tokio::runtime::Handle::current();
    let report = tokio::task::spawn_blocking(move || {
        let opts = st.login_policy().opts;
        radius_core::login::usage::report(&st.store, &rt, &opts, &username)
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("usage task: {e}")))??;
    let limits: Vec<Value> = report
        .limits
        .iter()
        .map(|l| {
            json!({
                "attribute": l.counter.attr,
                "period": l.counter.period.name(),
                "unit": match l.counter.measure {
                    radius_core::usage::Measure::Time => "seconds",
                    radius_core::usage::Measure::Octets => "octets",
                },
                "limit": l.limit,
                "used": l.used,
                "remaining": l.limit.saturating_sub(l.used),
                "period_start": l.period_start,
                "resets_at": l.resets_at,
            })
        })
        .collect();
    Ok(json!({
        "simultaneous_use": report.simultaneous_use,
        "open_sessions": report.open_sessions,
        "limits": limits,
    }))
}
