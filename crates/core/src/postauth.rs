//! One `radpostauth` row per Access-Accept and Access-Reject.

/// The post-auth event as the module or the admin API saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PostAuthRecord {
    pub username: String,
    /// The offered password: only ever set for a rejected request when
    /// `store_rejected_password` is on; clear-text passwords of accepted
    /// users are never stored (rlm_sql stores both).
    pub pass: Option<String>,
    /// `Access-Accept` or `Access-Reject`, as rlm_sql writes it.
    pub reply: String,
    pub called_station_id: Option<String>,
    pub calling_station_id: Option<String>,
    /// When the request arrived, seconds since the epoch with microseconds.
    pub authdate: f64,
}

pub(crate) const INSERT: &str = "INSERT INTO radpostauth \
    (username, pass, reply, calledstationid, callingstationid, authdate) \
    VALUES ($1, $2, $3, $4, $5, to_timestamp($6))";
