//! The FreeRADIUS-facing endpoints (drop-in for an rlm_rest set-up that
//! pointed at django-freeradius): authorize/, postauth/, accounting/. They
//! call the core's own functions, so they decide and write exactly what the
//! module would.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use radius_core::account::{LoginDecision, RejectReason, KNOWN_GOOD_CREDENTIALS};
use radius_core::accounting::{AcctRecord, AcctStatus};
use radius_core::postauth::PostAuthRecord;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;

use crate::error::{ApiError, ApiResult};
use crate::input::{parse_bool, parse_timestamp, Input};
use crate::{RejectBody, SharedState};

/// SQL printing a timestamptz column as RFC 3339 UTC with microseconds
/// (NULL stays NULL).
pub fn ts(col: &str) -> String {
    format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
}

/// Control items never sent back: the credential the password was checked
/// against must not leave the server.
fn hidden_control(name: &str) -> bool {
    KNOWN_GOOD_CREDENTIALS
        .iter()
        .chain(&["Rust-Password-Hash", "Auth-Type", "User-Password"])
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// rlm_rest's JSON response format: `"list:Attribute": value`, an array
/// when the attribute repeats.
fn add_attr(body: &mut Map<String, Value>, key: String, value: String) {
    match body.get_mut(&key) {
        None => {
            body.insert(key, Value::String(value));
        }
        Some(Value::Array(a)) => a.push(Value::String(value)),
        Some(old) => {
            let first = old.take();
            *old = Value::Array(vec![first, Value::String(value)]);
        }
    }
}

/// Longest value of one RADIUS attribute: the bound of every text field of
/// the FreeRADIUS-facing endpoints (the core would cut longer ones; the API
/// refuses them instead, naming the field).
pub const MAX_ATTR_BYTES: usize = 253;
/// Longest password accepted for a login (User-Password carries 128 bytes;
/// one-time tokens and long passphrases fit).
pub const MAX_LOGIN_PASSWORD_BYTES: usize = 256;
/// Largest page number of `GET accounting/` (so the offset stays small).
pub const MAX_PAGE: i64 = 1_000_000;
/// Largest octet total: radacct's bigint.
pub const MAX_OCTETS: u64 = i64::MAX as u64;

/// `username` and `password` of a login (authorize/ and token/), bounded.
pub fn credentials(input: &mut Input) -> ApiResult<(String, String)> {
    let username = input.text_req("username", MAX_ATTR_BYTES)?;
    let password = input.text_req("password", MAX_LOGIN_PASSWORD_BYTES)?;
    Ok((username, password))
}

pub async fn authorize(State(st): State<SharedState>, mut input: Input) -> ApiResult<Response> {
    let (username, password) = credentials(&mut input)?;
    let decision =
        crate::decide_login(&st, &username, &password, radius_core::login::Cost::Least).await?;
    match decision {
        LoginDecision::Accept { control, reply } => {
            let mut body = Map::new();
            body.insert("control:Auth-Type".into(), "Accept".into());
            for (k, v) in control {
                if !hidden_control(&k) {
                    add_attr(&mut body, format!("control:{k}"), v);
                }
            }
            for (k, v) in reply {
                add_attr(&mut body, format!("reply:{k}"), v);
            }
            Ok((StatusCode::OK, Json(Value::Object(body))).into_response())
        }
        LoginDecision::Reject { reason } => {
            log::info!("authorize/: {username} rejected ({reason:?})");
            Ok(match st.cfg.authorize_reject {
                RejectBody::Empty => StatusCode::UNAUTHORIZED.into_response_empty(),
                RejectBody::Json => {
                    let mut body = Map::new();
                    body.insert("control:Auth-Type".into(), "Reject".into());
                    let msg = match reason {
                        RejectReason::Disabled { .. }
                        | RejectReason::Expired
                        | RejectReason::Locked => Some(reason.to_string()),
                        _ => reason.reply_message(),
                    };
                    if let Some(m) = msg {
                        body.insert("reply:Reply-Message".into(), m.into());
                    }
                    (StatusCode::UNAUTHORIZED, Json(Value::Object(body))).into_response()
                }
            })
        }
    }
}

/// An empty body with the status, marked so the JSON safety net leaves it
/// alone (rlm_rest must not get a body to parse).
trait EmptyResponse {
    fn into_response_empty(self) -> Response;
}

impl EmptyResponse for StatusCode {
    fn into_response_empty(self) -> Response {
        let mut r = self.into_response();
        r.extensions_mut().insert(crate::KeepEmpty);
        r
    }
}

pub async fn postauth(State(st): State<SharedState>, mut input: Input) -> ApiResult<Response> {
    let username = input.text_req("username", MAX_ATTR_BYTES)?;
    let password = input.text_opt("password", MAX_LOGIN_PASSWORD_BYTES)?;
    let reply = input.text_req("reply", 64)?;
    let rejected = reply.eq_ignore_ascii_case("Access-Reject");
    let rec = PostAuthRecord {
        username,
        // As the module: only a rejected request's password, and only
        // when the operator asked for it.
        pass: password.filter(|_| rejected && st.cfg.store_rejected_password),
        reply,
        called_station_id: input.text_opt("called_station_id", MAX_ATTR_BYTES)?,
        calling_station_id: input.text_opt("calling_station_id", MAX_ATTR_BYTES)?,
        authdate: radius_core::account::now(),
    };
    st.store.write_postauth(&rec).await?;
    Ok(StatusCode::CREATED.into_response_empty())
}

fn parse_status(s: &str) -> ApiResult<AcctStatus> {
    let norm = s.trim().to_ascii_lowercase().replace('_', "-");
    Ok(match norm.as_str() {
        "start" => AcctStatus::Start,
        "stop" => AcctStatus::Stop,
        "interim-update" | "alive" | "interim" => AcctStatus::InterimUpdate,
        "accounting-on" => AcctStatus::AccountingOn,
        "accounting-off" => AcctStatus::AccountingOff,
        n => match n.parse::<u32>() {
            Ok(code) => AcctStatus::from_code(code),
            Err(_) => {
                return Err(ApiError::invalid(
                    "status_type",
                    format!(
                        "'{s}' is not one of Start, Interim-Update, Stop, Accounting-On, Accounting-Off (or a number)"
                    ),
                ))
            }
        },
    })
}

fn ip_field(input: &mut Input, name: &str, required: bool) -> ApiResult<String> {
    let v = input.text_opt(name, MAX_ATTR_BYTES)?.unwrap_or_default();
    let v = v.trim().to_string();
    if v.is_empty() {
        if required {
            return Err(ApiError::invalid(name, "this field is required"));
        }
        return Ok(v);
    }
    v.parse::<std::net::IpAddr>()
        .map_err(|_| ApiError::invalid(name, format!("'{v}' is not an IP address")))?;
    Ok(v)
}

fn time_field(input: &mut Input, name: &str) -> ApiResult<Option<i64>> {
    match input.text_opt(name, MAX_ATTR_BYTES)? {
        Some(s) if !s.trim().is_empty() => Ok(Some(parse_timestamp(name, &s)? as i64)),
        _ => Ok(None),
    }
}

/// Builds the module's record from the document's 24 fields. `groupname`
/// and `interval` are accepted and not stored: the stock radacct has no
/// group column, and the interval is computed by the statements as the
/// module does.
fn acct_record(status: AcctStatus, input: &mut Input) -> ApiResult<AcctRecord> {
    let session = matches!(
        status,
        AcctStatus::Start | AcctStatus::Stop | AcctStatus::InterimUpdate
    );
    let text = |input: &mut Input, name: &str| -> ApiResult<String> {
        Ok(input.text_opt(name, MAX_ATTR_BYTES)?.unwrap_or_default())
    };
    let (session_id, unique_id) = if session {
        (
            input.text_req("session_id", MAX_ATTR_BYTES)?,
            input.text_req("unique_id", MAX_ATTR_BYTES)?,
        )
    } else {
        (text(input, "session_id")?, text(input, "unique_id")?)
    };
    let start = time_field(input, "start_time")?;
    let update = time_field(input, "update_time")?;
    let stop = time_field(input, "stop_time")?;
    // The document's records carry all three times; the event is the one
    // the status type is about (Event-Timestamp in the module).
    let event = match status {
        AcctStatus::Start => start,
        AcctStatus::InterimUpdate => update,
        _ => stop.or(update),
    };
    let event_time = event.unwrap_or_else(|| radius_core::account::now() as i64);
    // Acct-Session-Time and Acct-Interim-Interval are 32-bit in RADIUS.
    let session_time = input.int_range("session_time", 0, u32::MAX.into())?;
    let octets = |input: &mut Input, name: &str| -> ApiResult<u64> {
        match input.u64_opt(name)? {
            Some(n) if n > MAX_OCTETS => Err(ApiError::invalid(
                name,
                format!("must be between 0 and {MAX_OCTETS}"),
            )),
            n => Ok(n.unwrap_or(0)),
        }
    };
    let inoct = octets(input, "input_octets")?;
    let outoct = octets(input, "output_octets")?;
    let ci_start = text(input, "connection_info_start")?;
    let ci_stop = text(input, "connection_info_stop")?;
    let _ = input.int_range("interval", 0, u32::MAX.into())?;
    let _ = input.text_opt("groupname", MAX_ATTR_BYTES)?;
    // Made storable here and not only by the store's statements, as the
    // group commit does: Accounting-On/Off's terminate cause is sent as it
    // is, and a record is matched with its row by the unique id as stored.
    Ok(AcctRecord {
        session_id,
        unique_id,
        username: text(input, "username")?,
        realm: text(input, "realm")?,
        nas_ip: ip_field(input, "nas_ip_address", true)?,
        nas_port_id: text(input, "nas_port_id")?,
        nas_port_type: text(input, "nas_port_type")?,
        event_time,
        session_time,
        authentic: text(input, "authentication")?,
        connect_info: if status == AcctStatus::Stop {
            ci_stop
        } else {
            ci_start
        },
        // The API carries 64-bit totals; the record wants RADIUS' split.
        input_octets: (inoct & 0xffff_ffff) as u32,
        input_gigawords: (inoct >> 32) as u32,
        output_octets: (outoct & 0xffff_ffff) as u32,
        output_gigawords: (outoct >> 32) as u32,
        called_station_id: text(input, "called_station_id")?,
        calling_station_id: text(input, "calling_station_id")?,
        terminate_cause: text(input, "terminate_cause")?,
        service_type: text(input, "service_type")?,
        framed_protocol: text(input, "framed_protocol")?,
        framed_ip_address: ip_field(input, "framed_ip_address", false)?,
        ..Default::default()
    }
    .into_storable())
}

pub async fn post_accounting(
    State(st): State<SharedState>,
    mut input: Input,
) -> ApiResult<Response> {
    let status = parse_status(&input.text_req("status_type", 32)?)?;
    let rec = acct_record(status, &mut input)?;
    st.store.write_accounting(status, &rec).await?;
    // As django-freeradius: 201 for a Start, 200 otherwise, and no body
    // so FreeRADIUS has nothing to process.
    let code = if status == AcctStatus::Start {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(code.into_response_empty())
}

pub type Params = Vec<Box<dyn ToSql + Sync + Send>>;

pub fn param_refs(p: &Params) -> Vec<&(dyn ToSql + Sync)> {
    p.iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// `WHERE a AND b ...` for the filter conditions, or nothing.
pub fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    }
}

/// `page` and `page_size` from the query, validated.
pub fn paging(q: &mut Input, default: i64) -> ApiResult<(i64, i64)> {
    let page = q.int_range("page", 1, MAX_PAGE)?.unwrap_or(1);
    let size = q.int_range("page_size", 1, 1000)?.unwrap_or(default);
    Ok((page, size))
}

/// `path` with the client's query parameters that select data and
/// `paging` instead of the client's own paging: never its `token`, so a
/// credential sent in the URL is not copied into links (which land in
/// logs, browser histories and other users' hands).
pub fn page_url<const N: usize>(
    path: &str,
    raw_query: Option<&str>,
    paging: [(&str, i64); N],
) -> String {
    let mut q: Vec<(String, String)> =
        serde_urlencoded::from_str(raw_query.unwrap_or("")).unwrap_or_default();
    q.retain(|(k, _)| k != "token" && !paging.iter().any(|(p, _)| p == k));
    q.extend(paging.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

/// RFC 8288 Link header with relative references (correct behind any
/// proxy), keeping the client's other parameters (see [`page_url`]).
pub fn link_header(
    path: &str,
    raw_query: Option<&str>,
    page: i64,
    size: i64,
    total: i64,
) -> Option<String> {
    let last = ((total + size - 1) / size).max(1);
    let url = |p: i64| page_url(path, raw_query, [("page", p), ("page_size", size)]);
    let mut links = vec![
        format!("<{}>; rel=\"first\"", url(1)),
        format!("<{}>; rel=\"last\"", url(last)),
    ];
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url((page - 1).min(last))));
    }
    Some(links.join(", "))
}

pub async fn list_accounting(
    State(st): State<SharedState>,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    accounting_page(&st, uri.path(), raw.as_deref(), None).await
}

/// A page of sessions; with `own`, only that user's (the user API's
/// `account/session/`, where `username` is not a filter).
pub async fn accounting_page(
    st: &SharedState,
    path: &str,
    raw: Option<&str>,
    own: Option<&str>,
) -> ApiResult<Response> {
    let mut q = Input::from_query(raw)?;
    let _ = q.remove("token");
    let (page, size) = paging(&mut q, 100)?;
    let mut conds: Vec<String> = Vec::new();
    let mut params: Params = Vec::new();
    if let Some(u) = own {
        params.push(Box::new(u.to_string()));
        conds.push(format!("username = ${}", params.len()));
    }
    for (param, col) in [
        ("username", "username"),
        ("called_station_id", "calledstationid"),
        ("calling_station_id", "callingstationid"),
    ] {
        if own.is_some() && param == "username" {
            continue;
        }
        if let Some(v) = q.text_opt(param, MAX_ATTR_BYTES)? {
            params.push(Box::new(v));
            conds.push(format!("{col} = ${}", params.len()));
        }
    }
    if let Some(v) = q.str_opt("start_time")? {
        params.push(Box::new(parse_timestamp("start_time", &v)?));
        conds.push(format!("acctstarttime >= to_timestamp(${})", params.len()));
    }
    if let Some(v) = q.str_opt("stop_time")? {
        params.push(Box::new(parse_timestamp("stop_time", &v)?));
        let n = params.len();
        // A session cannot start after it stopped: the second condition
        // changes no answer and lets the start-time index find the rows
        // instead of reading the table from its newest end.
        conds.push(format!(
            "acctstoptime <= to_timestamp(${n}) AND acctstarttime <= to_timestamp(${n})"
        ));
    }
    if let Some(v) = q.str_opt("is_open")? {
        let open = parse_bool(&v)
            .ok_or_else(|| ApiError::invalid("is_open", "must be a boolean (true or false)"))?;
        conds.push(if open {
            "acctstoptime IS NULL".into()
        } else {
            "acctstoptime IS NOT NULL".into()
        });
    }
    q.deny_unknown("filter")?;
    let where_sql = where_clause(&conds);
    let client = st.db.get().await?;
    let refs = param_refs(&params);
    let total = match_count(&client, &where_sql, &refs).await?;
    let sql = format!(
        "SELECT radacctid, acctsessionid, acctuniqueid, username, realm, \
         COALESCE(host(nasipaddress), ''), nasportid, nasporttype, {}, {}, {}, acctinterval, \
         acctsessiontime, acctauthentic, connectinfo_start, connectinfo_stop, acctinputoctets, \
         acctoutputoctets, calledstationid, callingstationid, acctterminatecause, servicetype, \
         framedprotocol, COALESCE(host(framedipaddress), '') FROM radacct {where_sql} \
         ORDER BY acctstarttime DESC, radacctid DESC LIMIT {size} OFFSET {}",
        ts("acctstarttime"),
        ts("acctupdatetime"),
        ts("acctstoptime"),
        (page - 1) * size
    );
    let rows = client.query(&sql, &refs).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.get::<_, i64>(0),
                "session_id": r.get::<_, String>(1),
                "unique_id": r.get::<_, String>(2),
                "username": r.get::<_, Option<String>>(3),
                "groupname": Value::Null,
                "realm": r.get::<_, Option<String>>(4),
                "nas_ip_address": r.get::<_, String>(5),
                "nas_port_id": r.get::<_, Option<String>>(6),
                "nas_port_type": r.get::<_, Option<String>>(7),
                "start_time": r.get::<_, Option<String>>(8),
                "update_time": r.get::<_, Option<String>>(9),
                "stop_time": r.get::<_, Option<String>>(10),
                "interval": r.get::<_, Option<i64>>(11),
                "session_time": r.get::<_, Option<i64>>(12),
                "authentication": r.get::<_, Option<String>>(13),
                "connection_info_start": r.get::<_, Option<String>>(14),
                "connection_info_stop": r.get::<_, Option<String>>(15),
                "input_octets": r.get::<_, Option<i64>>(16),
                "output_octets": r.get::<_, Option<i64>>(17),
                "called_station_id": r.get::<_, Option<String>>(18),
                "calling_station_id": r.get::<_, Option<String>>(19),
                "terminate_cause": r.get::<_, Option<String>>(20),
                "service_type": r.get::<_, Option<String>>(21),
                "framed_protocol": r.get::<_, Option<String>>(22),
                "framed_ip_address": r.get::<_, String>(23),
            })
        })
        .collect();
    let mut resp = Json(items).into_response();
    if let Some(link) = link_header(path, raw, page, size, total.rows) {
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp.headers_mut()
        .insert("x-total-count", HeaderValue::from(total.rows));
    if total.estimated {
        resp.headers_mut()
            .insert("x-total-count-estimated", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Matches counted exactly up to this many; beyond, PostgreSQL's estimate.
pub const EXACT_COUNT_UP_TO: i64 = 10_000;

/// How many sessions a listing matches.
pub struct MatchCount {
    pub rows: i64,
    /// `rows` is the planner's estimate: more than [`EXACT_COUNT_UP_TO`]
    /// matched, and counting them all would cost a scan of every match on
    /// every page (seconds on a radacct of millions).
    pub estimated: bool,
}

async fn match_count(
    client: &deadpool_postgres::Object,
    where_sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> ApiResult<MatchCount> {
    let capped: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM (SELECT 1 FROM radacct {where_sql} LIMIT {}) s",
                EXACT_COUNT_UP_TO + 1
            ),
            params,
        )
        .await?
        .get(0);
    if capped <= EXACT_COUNT_UP_TO {
        return Ok(MatchCount {
            rows: capped,
            estimated: false,
        });
    }
    let plan: serde_json::Value = client
        .query_one(
            &format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM radacct {where_sql}"),
            params,
        )
        .await?
        .get(0);
    let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
    Ok(MatchCount {
        rows: estimate.max(capped),
        estimated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_pages() {
        let l = link_header("/a/", Some("username=x&page=2&token=t"), 2, 10, 35).unwrap();
        assert!(
            l.contains("</a/?username=x&page=3&page_size=10>; rel=\"next\""),
            "{l}"
        );
        assert!(!l.contains("token"), "a credential is never echoed: {l}");
        assert!(l.contains("page=1&page_size=10>; rel=\"prev\""), "{l}");
        assert!(l.contains("page=4&page_size=10>; rel=\"last\""), "{l}");
        let l = link_header("/a/", None, 1, 10, 5).unwrap();
        assert!(!l.contains("next") && !l.contains("prev"), "{l}");
    }

    #[test]
    fn status_types() {
        assert_eq!(
            parse_status("Interim-Update").unwrap(),
            AcctStatus::InterimUpdate
        );
        assert_eq!(parse_status("stop").unwrap(), AcctStatus::Stop);
        assert_eq!(parse_status("7").unwrap(), AcctStatus::AccountingOn);
        assert!(parse_status("bogus").is_err());
    }
}
