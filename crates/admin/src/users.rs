//! `/radiususers/` (the FortiAuthenticator resource) on the `rlm_rust_user`
//! profile the module enforces, plus password set/reset, the user login
//! (`token/`) and `sendoobtoken`. A user locked after failed logins
//! (rlm_rust_lockout) reads as inactive with reason 2; the lock is never
//! copied into rlm_rust_user.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use radius_core::account::{hash_token, new_token, LoginDecision};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::input::{end_of_day, parse_bool, parse_date, parse_timestamp, Input};
use crate::radius::{param_refs, ts, where_clause, Params};
use crate::SharedState;

/// Largest `offset` of a list (and so `offset + limit` never overflows).
pub const MAX_OFFSET: i64 = 1_000_000_000;
/// Longest filter value (an `in` list included).
pub const MAX_FILTER_BYTES: usize = 4096;

pub const TOKEN_TYPES: [&str; 6] = ["ftk", "ftm", "ftc", "email", "sms", "dual"];
pub const FTM_METHODS: [&str; 2] = ["email", "sms"];

/// A lock in force: a row in rlm_rust_lockout whose locked_until is still
/// ahead ('infinity' until an administrator unlocks). An expired lock is
/// no lock, whatever the failures count says.
const LOCKED: &str = "COALESCE(l.locked_until > now(), false)";

/// The users with their lockout rows; every query that shows or filters
/// `active` reads through this join so the lock is never out of view.
const USER_FROM: &str = "rlm_rust_user u LEFT JOIN rlm_rust_lockout l ON l.username = u.username";

/// Columns 0..=20 are what the API shows (active and reason as in force:
/// a locked user is inactive with reason 2, "too many failed attempts");
/// 21 and 22 are the stored active and reason, which PATCH merges into so
/// that a lock is never written back as a manual disable.
fn user_cols() -> String {
    format!(
        "u.id, u.username, u.server_name, u.server_address, u.email, u.first_name, u.last_name, \
         u.active AND NOT {LOCKED}, CASE WHEN {LOCKED} THEN 2::smallint ELSE u.reason END, \
         u.mobile_number, u.token_auth, u.token_type, u.token_serial, u.ftm_act_method, u.fido, \
         EXTRACT(EPOCH FROM u.expiration)::float8, {}, u.batch_id, u.password_hash IS NOT NULL, \
         {}, {}, u.active, u.reason, \
         CASE WHEN {LOCKED} AND isfinite(l.locked_until) THEN {} END, COALESCE(l.failures, 0), \
         u.nt_hash IS NOT NULL",
        ts("u.expiration"),
        ts("u.created_at"),
        ts("u.updated_at"),
        ts("l.locked_until"),
    )
}

/// The writable state of a user, as validated before any write.
#[derive(Debug, Clone, Default)]
struct Fields {
    username: String,
    server_name: Option<String>,
    server_address: Option<String>,
    email: Option<String>,
    first_name: String,
    last_name: String,
    active: bool,
    reason: Option<i16>,
    mobile_number: Option<String>,
    token_auth: bool,
    token_type: Option<String>,
    token_serial: Option<String>,
    ftm_act_method: Option<String>,
    fido: bool,
    expiration: Option<f64>,
}

fn row_fields(r: &tokio_postgres::Row) -> Fields {
    Fields {
        username: r.get(1),
        server_name: r.get(2),
        server_address: r.get(3),
        email: r.get(4),
        first_name: r.get(5),
        last_name: r.get(6),
        active: r.get(21),
        reason: r.get(22),
        mobile_number: r.get(9),
        token_auth: r.get(10),
        token_type: r.get(11),
        token_serial: r.get(12),
        ftm_act_method: r.get(13),
        fido: r.get(14),
        expiration: r.get(15),
    }
}

fn row_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, i64>(0),
        "username": r.get::<_, String>(1),
        "server_name": r.get::<_, Option<String>>(2),
        "server_address": r.get::<_, Option<String>>(3),
        "email": r.get::<_, Option<String>>(4),
        "first_name": r.get::<_, String>(5),
        "last_name": r.get::<_, String>(6),
        "active": r.get::<_, bool>(7),
        "reason": r.get::<_, Option<i16>>(8),
        "mobile_number": r.get::<_, Option<String>>(9),
        "token_auth": r.get::<_, bool>(10),
        "token_type": r.get::<_, Option<String>>(11),
        "token_serial": r.get::<_, Option<String>>(12),
        "ftm_act_method": r.get::<_, Option<String>>(13),
        "fido": r.get::<_, bool>(14),
        "expiration": r.get::<_, Option<String>>(16),
        "batch": r.get::<_, Option<i64>>(17),
        "has_password": r.get::<_, bool>(18),
        "has_nt_hash": r.get::<_, bool>(25),
        // Null both when not locked and when locked until an administrator
        // unlocks ('infinity', which RFC 3339 cannot write); reason 2
        // tells the two apart.
        "locked_until": r.get::<_, Option<String>>(23),
        "failed_logins": r.get::<_, i32>(24),
        "created_at": r.get::<_, String>(19),
        "updated_at": r.get::<_, String>(20),
    })
}

/// A RADIUS User-Name: 1..=253 bytes (the attribute's limit), printable.
pub fn check_username(field: &str, u: &str) -> ApiResult<()> {
    if u.is_empty() {
        return Err(ApiError::invalid(field, "this field is required"));
    }
    if u.len() > 253 {
        return Err(ApiError::invalid(
            field,
            "at most 253 bytes (RADIUS User-Name)",
        ));
    }
    if u.chars().any(char::is_control) || u.trim() != u {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters or surrounding spaces",
        ));
    }
    Ok(())
}

/// Deliberately simple: one `@`, a non-empty local part, a dotted domain,
/// no spaces. Deliverability is the sender's business.
pub fn check_email(field: &str, e: &str) -> ApiResult<()> {
    let bad = || ApiError::invalid(field, format!("'{e}' is not a valid e-mail address"));
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(())
}

/// FortiAuthenticator's `+[country_code]-[number]`, at most 25 characters.
pub fn check_mobile(field: &str, m: &str) -> ApiResult<()> {
    let bad = || {
        ApiError::invalid(
            field,
            format!("'{m}' is not an international number (+<country code>-<number>)"),
        )
    };
    if m.len() > 25 {
        return Err(ApiError::invalid(field, "at most 25 characters"));
    }
    let rest = m.strip_prefix('+').ok_or_else(bad)?;
    let (cc, num) = rest.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(cc) || cc.len() > 3 || !digits(num) || num.len() < 4 {
        return Err(bad());
    }
    Ok(())
}

pub fn check_password(field: &str, p: &str) -> ApiResult<()> {
    if p.chars().count() < 8 {
        return Err(ApiError::invalid(field, "at least 8 characters"));
    }
    if p.len() > 256 {
        return Err(ApiError::invalid(field, "at most 256 bytes"));
    }
    if p.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain NUL"));
    }
    Ok(())
}

fn short_text(field: &str, v: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match v {
        Some(s) if s.len() > max => Err(ApiError::invalid(field, format!("at most {max} bytes"))),
        Some(s) if s.chars().any(char::is_control) => Err(ApiError::invalid(
            field,
            "must not contain control characters",
        )),
        other => Ok(other),
    }
}

fn one_of(field: &str, v: Option<String>, allowed: &[&str]) -> ApiResult<Option<String>> {
    match v {
        Some(s) if !allowed.contains(&s.as_str()) => Err(ApiError::invalid(
            field,
            format!("'{s}' is not one of {}", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

/// `expiration`: a date (valid through that day, UTC) or a timestamp.
fn expiration_value(v: &str) -> ApiResult<f64> {
    if v.trim().len() == 10 && v.contains('-') {
        return Ok(end_of_day(parse_date("expiration", v)?));
    }
    parse_timestamp("expiration", v)
}

/// Applies the fields present in `input` to `f` (all of them on create).
/// Returns the new password when one was given.
fn apply(input: &mut Input, f: &mut Fields, creating: bool) -> ApiResult<Option<String>> {
    if creating {
        f.username = input.str_opt("username")?.unwrap_or_default();
        check_username("username", &f.username)?;
        for (name, slot) in [
            ("server_name", &mut f.server_name),
            ("server_address", &mut f.server_address),
        ] {
            let v = short_text(name, input.str_opt(name)?, 255)?;
            match v {
                Some(s) if !s.trim().is_empty() => *slot = Some(s),
                _ => {
                    return Err(ApiError::invalid(
                        name,
                        "this field is required when creating a user",
                    ))
                }
            }
        }
    } else {
        for name in ["username", "server_name", "server_address", "id"] {
            if input.contains(name) {
                return Err(ApiError::invalid(name, "read-only after creation"));
            }
        }
    }
    if let Some(v) = input.str_patch("email")? {
        if let Some(e) = &v {
            check_email("email", e)?;
        }
        f.email = v;
    }
    for (name, slot) in [
        ("first_name", &mut f.first_name),
        ("last_name", &mut f.last_name),
    ] {
        if let Some(v) = input.str_patch(name)? {
            *slot = short_text(name, v, 150)?.unwrap_or_default();
        }
    }
    if let Some(v) = input.bool_opt("active")? {
        f.active = v;
    } else if input.contains("active") {
        return Err(ApiError::invalid(
            "active",
            "must be a boolean (true or false)",
        ));
    }
    if input.contains("reason") {
        match input.int_opt("reason")? {
            Some(r) if (0..=8).contains(&r) => f.reason = Some(r as i16),
            Some(_) => return Err(ApiError::invalid("reason", "must be one of 0..8")),
            None => f.reason = None,
        }
    }
    if let Some(v) = input.str_patch("mobile_number")? {
        if let Some(m) = &v {
            check_mobile("mobile_number", m)?;
        }
        f.mobile_number = v;
    }
    if let Some(v) = input.bool_opt("token_auth")? {
        f.token_auth = v;
    }
    if let Some(v) = input.str_patch("token_type")? {
        f.token_type = one_of("token_type", v, &TOKEN_TYPES)?;
    }
    if let Some(v) = input.str_patch("token_serial")? {
        f.token_serial = short_text("token_serial", v, 64)?;
    }
    if let Some(v) = input.str_patch("ftm_act_method")? {
        f.ftm_act_method = one_of("ftm_act_method", v, &FTM_METHODS)?;
    }
    if let Some(v) = input.bool_opt("fido")? {
        f.fido = v;
    }
    if let Some(v) = input.str_patch("expiration")? {
        f.expiration = v.map(|s| expiration_value(&s)).transpose()?;
    }
    let password = input.str_opt("password")?;
    if let Some(p) = &password {
        check_password("password", p)?;
    }
    input.deny_unknown("field")?;
    check_combination(f)?;
    Ok(password)
}

/// The document's cross-field rules, on the merged state (so a PATCH that
/// removes the e-mail of an e-mail-token user is refused too).
fn check_combination(f: &Fields) -> ApiResult<()> {
    if f.token_auth && f.token_type.is_none() {
        return Err(ApiError::invalid(
            "token_type",
            "required when token_auth is true",
        ));
    }
    let needs = |what: Option<&str>, field: &str| -> ApiResult<()> {
        let (need_email, need_mobile) = match what {
            Some("email") => (true, false),
            Some("sms") => (false, true),
            Some("dual") => (true, true),
            _ => (false, false),
        };
        if need_email && f.email.is_none() {
            return Err(ApiError::invalid(
                "email",
                format!("required when {field} is {}", what.unwrap_or_default()),
            ));
        }
        if need_mobile && f.mobile_number.is_none() {
            return Err(ApiError::invalid(
                "mobile_number",
                format!("required when {field} is {}", what.unwrap_or_default()),
            ));
        }
        Ok(())
    };
    needs(f.token_type.as_deref(), "token_type")?;
    needs(f.ftm_act_method.as_deref(), "ftm_act_method")?;
    Ok(())
}

pub async fn hash_password_blocking(pw: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || radius_core::password::hash_password(&pw))
        .await
        .map_err(|e| ApiError::Unavailable(format!("hashing task: {e}")))
}

/// The NT hash to store with a new password: None when the site keeps
/// Argon2id only, so a password change also clears any older NT hash.
pub fn nt_hash_for(st: &SharedState, password: &str) -> Option<String> {
    st.cfg
        .store_nt_hash
        .then(|| radius_core::password::nt_hash_hex(password))
}

fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid("id", format!("'{s}' is not a user id")))
}

async fn fetch(st: &SharedState, id: i64) -> ApiResult<tokio_postgres::Row> {
    let client = st.db.get().await?;
    client
        .query_opt(
            &format!("SELECT {} FROM {USER_FROM} WHERE u.id = $1", user_cols()),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("user".into()))
}

pub async fn create(State(st): State<SharedState>, mut input: Input) -> ApiResult<Response> {
    let mut f = Fields {
        active: true,
        // "Default is 0" in the document.
        reason: Some(0),
        ..Default::default()
    };
    let password = apply(&mut input, &mut f, true)?;
    let totp = crate::two_factor::uses_totp(f.token_auth, f.token_type.as_deref());
    if totp {
        crate::two_factor::check_can_provision(&st)?;
    }
    let nt_hash = password.as_deref().and_then(|p| nt_hash_for(&st, p));
    let hash = match password {
        Some(p) => Some(hash_password_blocking(p).await?),
        None => None,
    };
    let client = st.db.get().await?;
    // Through a CTE so the answer shows a lock already held under this
    // name (a stock-table user locked before getting a profile).
    let row = client
        .query_one(
            &format!(
                "WITH u AS (INSERT INTO rlm_rust_user (username, server_name, server_address, \
                 email, first_name, last_name, active, reason, mobile_number, token_auth, \
                 token_type, token_serial, ftm_act_method, fido, expiration, password_hash, \
                 nt_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 to_timestamp($15), $16, $17) RETURNING *) \
                 SELECT {} FROM u LEFT JOIN rlm_rust_lockout l ON l.username = u.username",
                user_cols()
            ),
            &[
                &f.username,
                &f.server_name,
                &f.server_address,
                &f.email,
                &f.first_name,
                &f.last_name,
                &f.active,
                &f.reason,
                &f.mobile_number,
                &f.token_auth,
                &f.token_type,
                &f.token_serial,
                &f.ftm_act_method,
                &f.fido,
                &f.expiration,
                &hash,
                &nt_hash,
            ],
        )
        .await?;
    let mut body = row_json(&row);
    if totp {
        // Shown this once: only the sealed seed is kept.
        let uri = crate::two_factor::provision(&st, row.get(0), &f.username).await?;
        body["totp_uri"] = uri.into();
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn detail(
    State(st): State<SharedState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = fetch(&st, parse_id(&id)?).await?;
    let mut user = row_json(&row);
    user["usage"] = crate::usage::of(&st, &row.get::<_, String>(1)).await?;
    Ok(Json(user))
}

pub async fn update(
    State(st): State<SharedState>,
    Path(id): Path<String>,
    mut input: Input,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let mut f = row_fields(&fetch(&st, id).await?);
    // Only an explicit `"active": true` is the administrator's unlock (not
    // a null, not a PATCH of other fields); read before apply() consumes it.
    let unlock = input.clone().bool_opt("active").ok().flatten() == Some(true);
    let password = apply(&mut input, &mut f, false)?;
    let nt_hash = password.as_deref().and_then(|p| nt_hash_for(&st, p));
    let hash = match password {
        Some(p) => Some(hash_password_blocking(p).await?),
        None => None,
    };
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    if unlock {
        // Also forgets the failures count: the administrator vouched for
        // the account. The table's trigger tells the module's caches.
        tx.execute(
            "DELETE FROM rlm_rust_lockout WHERE username = $1",
            &[&f.username],
        )
        .await?;
    }
    // nt_hash follows password_hash: replaced (or cleared) with a new
    // password, untouched otherwise.
    let row = tx
        .query_opt(
            &format!(
                "WITH u AS (UPDATE rlm_rust_user SET email = $2, first_name = $3, \
                 last_name = $4, active = $5, reason = $6, mobile_number = $7, token_auth = $8, \
                 token_type = $9, token_serial = $10, ftm_act_method = $11, fido = $12, \
                 expiration = to_timestamp($13), password_hash = COALESCE($14, password_hash), \
                 nt_hash = CASE WHEN $14::text IS NULL THEN nt_hash ELSE $15::text END, \
                 updated_at = now() WHERE id = $1 RETURNING *) \
                 SELECT {} FROM u LEFT JOIN rlm_rust_lockout l ON l.username = u.username",
                user_cols()
            ),
            &[
                &id,
                &f.email,
                &f.first_name,
                &f.last_name,
                &f.active,
                &f.reason,
                &f.mobile_number,
                &f.token_auth,
                &f.token_type,
                &f.token_serial,
                &f.ftm_act_method,
                &f.fido,
                &f.expiration,
                &hash,
                &nt_hash,
            ],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("user".into()))?;
    tx.commit().await?;
    Ok(Json(row_json(&row)))
}

/// Removes the profile (its tokens and codes go with it) and the user's
/// group memberships, in one transaction. Stock radcheck/radreply rows of
/// the same name are left alone: they belong to whoever wrote them.
pub async fn delete(State(st): State<SharedState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "DELETE FROM rlm_rust_user WHERE id = $1 RETURNING username",
            &[&id],
        )
        .await?
    else {
        return Err(ApiError::NotFound("user".into()));
    };
    let username: String = row.get(0);
    tx.execute("DELETE FROM radusergroup WHERE username = $1", &[&username])
        .await?;
    tx.execute(
        "DELETE FROM rlm_rust_batch_credential WHERE username = $1",
        &[&username],
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Filterable fields and their lookups, from the FortiAuthenticator
/// document.
fn lookups(field: &str) -> Option<(&'static str, &'static [&'static str])> {
    const TEXT5: &[&str] = &["exact", "iexact", "contains", "icontains", "in"];
    const TEXT4: &[&str] = &["exact", "iexact", "contains", "icontains"];
    Some(match field {
        "username" => ("u.username", TEXT5),
        "email" => ("u.email", TEXT5),
        "active" => ("u.active", &["exact"]),
        "server_name" => ("u.server_name", TEXT4),
        "server_address" => ("u.server_address", TEXT4),
        "token_type" => ("u.token_type", &["exact"]),
        "token_serial" => ("u.token_serial", &["exact", "iexact"]),
        _ => return None,
    })
}

/// One `field__lookup=value` filter as SQL, its value pushed to `params`.
fn filter_sql(param: &str, value: String, params: &mut Params) -> ApiResult<String> {
    let (field, lookup) = param.split_once("__").unwrap_or((param, "exact"));
    let (col, allowed) =
        lookups(field).ok_or_else(|| ApiError::invalid(param, "unknown filter"))?;
    if !allowed.contains(&lookup) {
        return Err(ApiError::invalid(
            param,
            format!(
                "lookup '{lookup}' not supported for {field} (use {})",
                allowed.join(", ")
            ),
        ));
    }
    if field == "active" {
        let b = parse_bool(&value)
            .ok_or_else(|| ApiError::invalid(param, "must be a boolean (true or false)"))?;
        params.push(Box::new(b));
        // The active the answer shows: ?active=false lists locked users.
        return Ok(format!("(u.active AND NOT {LOCKED}) = ${}", params.len()));
    }
    if field == "token_type" && !TOKEN_TYPES.contains(&value.as_str()) {
        return Err(ApiError::invalid(
            param,
            format!("'{value}' is not one of {}", TOKEN_TYPES.join(", ")),
        ));
    }
    if lookup == "in" {
        let list: Vec<String> = value
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            return Err(ApiError::invalid(param, "expected a comma-separated list"));
        }
        params.push(Box::new(list));
        return Ok(format!("{col} = ANY(${})", params.len()));
    }
    params.push(Box::new(value));
    let n = params.len();
    // strpos rather than LIKE: no wildcard escaping to get wrong.
    Ok(match lookup {
        "exact" => format!("{col} = ${n}"),
        "iexact" => format!("lower({col}) = lower(${n})"),
        "contains" => format!("strpos({col}, ${n}) > 0"),
        _ => format!("strpos(lower({col}), lower(${n})) > 0"),
    })
}

/// Tastypie-style answer as FortiAuthenticator's API gives it:
/// `{"meta": {limit, offset, total_count, next, previous}, "objects": [...]}`.
pub async fn list(
    State(st): State<SharedState>,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let mut q = Input::from_query(raw.as_deref())?;
    let _ = q.remove("token");
    let limit = q.int_range("limit", 1, 1000)?.unwrap_or(20);
    let offset = q.int_range("offset", 0, MAX_OFFSET)?.unwrap_or(0);
    let mut params: Params = Vec::new();
    let mut conds = Vec::new();
    for key in q.keys() {
        let value = q.str_opt(&key)?.unwrap_or_default();
        if value.len() > MAX_FILTER_BYTES {
            return Err(ApiError::invalid(
                key,
                format!("at most {MAX_FILTER_BYTES} bytes"),
            ));
        }
        conds.push(filter_sql(&key, value, &mut params)?);
    }
    let where_sql = where_clause(&conds);
    let client = st.db.get().await?;
    let refs = param_refs(&params);
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {USER_FROM} {where_sql}"),
            &refs,
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM {USER_FROM} {where_sql} ORDER BY u.id LIMIT {limit} OFFSET {offset}",
                user_cols()
            ),
            &refs,
        )
        .await?;
    let page_url = |off: i64| {
        crate::radius::page_url(
            uri.path(),
            raw.as_deref(),
            [("limit", limit), ("offset", off)],
        )
    };
    let next = (offset + limit < total).then(|| page_url(offset + limit));
    let previous = (offset > 0).then(|| page_url((offset - limit).max(0)));
    Ok(Json(json!({
        "meta": {
            "limit": limit,
            "offset": offset,
            "total_count": total,
            "next": next,
            "previous": previous,
        },
        "objects": rows.iter().map(row_json).collect::<Vec<_>>(),
    })))
}

/// Sets the password given in `password`, or (no body / empty) resets it
/// to a generated one that is returned once.
pub async fn set_password(
    State(st): State<SharedState>,
    Path(id): Path<String>,
    mut input: Input,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let given = input.str_opt("password")?.filter(|p| !p.is_empty());
    input.deny_unknown("field")?;
    if let Some(p) = &given {
        check_password("password", p)?;
    }
    let generated = given.is_none();
    let password = given.unwrap_or_else(crate::batch::generate_password);
    let nt_hash = nt_hash_for(&st, &password);
    let hash = hash_password_blocking(password.clone()).await?;
    let client = st.db.get().await?;
    let n = client
        .execute(
            "UPDATE rlm_rust_user SET password_hash = $2, nt_hash = $3, updated_at = now() \
             WHERE id = $1",
            &[&id, &hash, &nt_hash],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::NotFound("user".into()));
    }
    // The user's auth token proved the old password: it goes with it.
    client
        .execute("DELETE FROM rlm_rust_user_token WHERE user_id = $1", &[&id])
        .await?;
    Ok(Json(if generated {
        json!({ "detail": "password reset", "password": password })
    } else {
        json!({ "detail": "password set" })
    }))
}

/// "Login (Obtain User Auth Token)": no API token; the same check the
/// module runs. Answers the user's auth token (for the user API under
/// `account/`, valid `--user-token-ttl`, replacing the user's previous
/// one) and a one-time RADIUS token the module accepts once as
/// User-Password. Unknown user, wrong password,
/// disabled or expired account all get the same 401.
pub async fn login(State(st): State<SharedState>, mut input: Input) -> ApiResult<Response> {
    let (username, password) = crate::radius::credentials(&mut input)?;
    // Same procedure as authorize/ (who it refuses, this refuses), at a
    // cost that does not tell known users from unknown ones.
    let decision =
        crate::decide_login(&st, &username, &password, radius_core::login::Cost::Uniform).await?;
    if let LoginDecision::Reject { reason } = decision {
        log::info!("login of {username} refused ({reason:?})");
        return Err(ApiError::BadCredentials);
    }
    let token = new_token();
    let radius_token = new_token();
    let ttl = st.cfg.radius_token_ttl.as_secs_f64();
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    // A user known only to the stock tables gets an (active, hash-less)
    // profile so tokens can refer to it; that changes nothing for the
    // module, which still checks the radcheck credential.
    let user_id: i64 = tx
        .query_one(
            "INSERT INTO rlm_rust_user (username) VALUES ($1) \
             ON CONFLICT (username) DO UPDATE SET username = EXCLUDED.username RETURNING id",
            &[&username],
        )
        .await?
        .get(0);
    // One token per user: this login replaces the previous one.
    let token_expires: String = tx
        .query_one(
            &format!(
                "INSERT INTO rlm_rust_user_token (user_id, token_hash, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (user_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, \
                 created_at = now(), expires_at = EXCLUDED.expires_at RETURNING {}",
                ts("expires_at")
            ),
            &[
                &user_id,
                &hash_token(&token).as_slice(),
                &st.cfg.user_token_ttl.as_secs_f64(),
            ],
        )
        .await?
        .get(0);
    let expires: String = tx
        .query_one(
            &format!(
                "INSERT INTO rlm_rust_radius_token (user_id, token_hash, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING {}",
                ts("expires_at")
            ),
            &[&user_id, &hash_token(&radius_token).as_slice(), &ttl],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(Json(json!({
        "username": username,
        "token": token,
        "token_expires_at": token_expires,
        "radius_token": radius_token,
        "radius_token_expires_at": expires,
    }))
    .into_response())
}

pub async fn send_oob_token(
    State(st): State<SharedState>,
    Path(id): Path<String>,
    mut input: Input,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let channel = input.str_opt("channel")?;
    input.deny_unknown("field")?;
    let f = row_fields(&fetch(&st, id).await?);
    let channel = match channel.as_deref() {
        Some("email") | Some("sms") => channel.unwrap_or_default(),
        Some(other) => {
            return Err(ApiError::invalid(
                "channel",
                format!("'{other}' is not one of email, sms"),
            ))
        }
        None => match f.token_type.as_deref() {
            Some("sms") => "sms".into(),
            Some("email") | Some("dual") => "email".into(),
            _ if f.email.is_some() => "email".into(),
            _ if f.mobile_number.is_some() => "sms".into(),
            _ => {
                return Err(ApiError::invalid(
                    "token_type",
                    "the user has no e-mail address or mobile number to send a code to",
                ))
            }
        },
    };
    let to = if channel == "email" {
        f.email
            .clone()
            .ok_or_else(|| ApiError::invalid("email", "the user has no e-mail address"))?
    } else {
        f.mobile_number
            .clone()
            .ok_or_else(|| ApiError::invalid("mobile_number", "the user has no mobile number"))?
    };
    let sent = crate::oob::issue(&st, id, &f.username, &channel, &to).await?;
    Ok(Json(json!({
        "detail": "token sent",
        "channel": channel,
        "sender": sent.sender,
        "expires_at": sent.expires_at,
    })))
}

/// Checks a code sent by `sendoobtoken` (the second factor): `{"code":
/// "123456"}`. 200 when right (the code is used up); 400 naming `code`
/// when wrong (with the attempts left), or when the user has no live code
/// (none sent, expired, used, or out of its 5 attempts).
pub async fn verify_oob_token(
    State(st): State<SharedState>,
    Path(id): Path<String>,
    mut input: Input,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let code = input.str_req("code")?;
    input.deny_unknown("field")?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid("code", "six digits"));
    }
    // 404 for an unknown user, before any code is looked at.
    fetch(&st, id).await?;
    match crate::oob::verify(&st, id, &code).await? {
        crate::oob::Checked::Verified => Ok(Json(json!({ "detail": "code verified" }))),
        crate::oob::Checked::Wrong { attempts_left } => Err(ApiError::invalid(
            "code",
            format!("wrong code; {attempts_left} attempts left"),
        )),
        crate::oob::Checked::NoCode => Err(ApiError::invalid(
            "code",
            "no code to check: none was sent, or it expired, was used, or had 5 wrong attempts",
        )),
    }
}
