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

/// Many rows in one statement: the group commit's unit.
pub(crate) const INSERT_MANY: &str = "INSERT INTO radpostauth \
    (username, pass, reply, calledstationid, callingstationid, authdate) \
    SELECT u, p, r, c1, c2, to_timestamp(t) \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[]) \
    AS x(u, p, r, c1, c2, t)";
