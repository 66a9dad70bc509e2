//! Groups with their check and reply attributes and their members, written
//! to the stock tables (radgroupcheck, radgroupreply, radusergroup) so the
//! module (and rlm_sql) see them at the next request. `rlm_rust_group`
//! only adds a description and lets a group exist before it has rows.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deadpool_postgres::GenericClient;
use radius_core::attrs::Op;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::input::Input;
use crate::SharedState;

const NAMES: &str = "SELECT name FROM rlm_rust_group UNION SELECT groupname FROM radgroupcheck \
    UNION SELECT groupname FROM radgroupreply UNION SELECT groupname FROM radusergroup";

#[derive(Debug, Clone)]
struct Attr {
    attribute: String,
    op: String,
    value: String,
}

pub fn check_group_name(field: &str, n: &str) -> ApiResult<()> {
    if n.is_empty() {
        return Err(ApiError::invalid(field, "this field is required"));
    }
    if n.len() > 64 {
        return Err(ApiError::invalid(field, "at most 64 bytes"));
    }
    if n.chars().any(|c| c.is_control() || c == '/') || n.trim() != n {
        return Err(ApiError::invalid(
            field,
            "must not contain '/', control characters or surrounding spaces",
        ));
    }
    Ok(())
}

/// A name taken from the path (a group, a member): any text PostgreSQL can
/// hold and compare, so that groups found in the stock tables stay
/// reachable whatever their names; a NUL or an overlong name is refused
/// before it reaches the database.
pub fn check_path_name(field: &str, n: &str) -> ApiResult<()> {
    if n.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain NUL"));
    }
    if n.len() > MAX_PATH_NAME_BYTES {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_PATH_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Longest group or member name taken from a path.
pub const MAX_PATH_NAME_BYTES: usize = 1024;

/// `[{"attribute": "Session-Timeout", "op": ":=", "value": "3600"}, ...]`.
/// Reply items take assignment operators only; check items any operator
/// rlm_sql accepts.
fn parse_attrs(field: &str, v: Option<Value>, reply: bool) -> ApiResult<Option<Vec<Attr>>> {
    let list = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid(field, "must be a list of attributes")),
    };
    let mut out = Vec::new();
    for (i, item) in list.into_iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let Value::Object(m) = item else {
            return Err(ApiError::invalid(
                format!("{field}[{i}]"),
                "must be an object",
            ));
        };
        let mut input = Input::default();
        for (k, v) in m {
            input.insert(&k, v);
        }
        let attribute = input
            .str_opt("attribute")
            .map_err(|_| ApiError::invalid(at("attribute"), "must be a string"))?
            .unwrap_or_default();
        if attribute.is_empty()
            || attribute.len() > 64
            || !attribute.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(ApiError::invalid(
                at("attribute"),
                format!("'{attribute}' is not an attribute name"),
            ));
        }
        let default_op = if reply { "=" } else { "==" };
        let op = input
            .str_opt("op")
            .map_err(|_| ApiError::invalid(at("op"), "must be a string"))?
            .unwrap_or_else(|| default_op.to_string());
        // Stored trimmed: the column is varchar(2).
        let op = op.trim().to_string();
        let parsed = Op::exact(&op)
            .ok_or_else(|| ApiError::invalid(at("op"), format!("'{op}' is not an operator")))?;
        if reply && !matches!(parsed, Op::Eq | Op::Set | Op::Add | Op::Sub | Op::Prepend) {
            return Err(ApiError::invalid(
                at("op"),
                format!("'{op}' is a comparison; reply items take =, :=, +=, -=, ^="),
            ));
        }
        let value = input
            .str_opt("value")
            .map_err(|_| ApiError::invalid(at("value"), "must be a string"))?
            .ok_or_else(|| ApiError::invalid(at("value"), "this field is required"))?;
        if value.len() > 1024 || value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ApiError::invalid(
                at("value"),
                "at most 1024 bytes, no control characters",
            ));
        }
        if let Some(k) = input.keys().first() {
            return Err(ApiError::invalid(at(k), "unknown field"));
        }
        out.push(Attr {
            attribute,
            op,
            value,
        });
    }
    Ok(Some(out))
}

async fn exists<C: GenericClient>(c: &C, name: &str) -> ApiResult<bool> {
    Ok(c.query_opt(
        &format!("SELECT 1 FROM ({NAMES}) n WHERE name = $1"),
        &[&name],
    )
    .await?
    .is_some())
}

async fn replace_attrs<C: GenericClient>(
    c: &C,
    table: &str,
    group: &str,
    attrs: &[Attr],
) -> ApiResult<()> {
    c.execute(
        &format!("DELETE FROM {table} WHERE groupname = $1"),
        &[&group],
    )
    .await?;
    for a in attrs {
        c.execute(
            &format!(
                "INSERT INTO {table} (groupname, attribute, op, value) VALUES ($1, $2, $3, $4)"
            ),
            &[&group, &a.attribute, &a.op, &a.value],
        )
        .await?;
    }
    Ok(())
}

async fn group_json<C: GenericClient>(c: &C, name: &str) -> ApiResult<Value> {
    let desc: String = c
        .query_opt(
            "SELECT description FROM rlm_rust_group WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or_default();
    let attrs = |rows: Vec<tokio_postgres::Row>| -> Vec<Value> {
        rows.iter()
            .map(|r| {
                json!({
                    "attribute": r.get::<_, String>(0),
                    "op": r.get::<_, String>(1),
                    "value": r.get::<_, String>(2),
                })
            })
            .collect()
    };
    let check = c
        .query(
            "SELECT attribute, op::text, value FROM radgroupcheck WHERE groupname = $1 ORDER BY id",
            &[&name],
        )
        .await?;
    let reply = c
        .query(
            "SELECT attribute, op::text, value FROM radgroupreply WHERE groupname = $1 ORDER BY id",
            &[&name],
        )
        .await?;
    Ok(json!({
        "name": name,
        "description": desc,
        "check": attrs(check),
        "reply": attrs(reply),
        "members": member_list(c, name).await?,
    }))
}

async fn member_list<C: GenericClient>(c: &C, name: &str) -> ApiResult<Vec<Value>> {
    let rows = c
        .query(
            "SELECT username, priority FROM radusergroup WHERE groupname = $1 ORDER BY priority, username",
            &[&name],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| json!({ "username": r.get::<_, String>(0), "priority": r.get::<_, i32>(1) }))
        .collect())
}

pub async fn list(State(st): State<SharedState>) -> ApiResult<Json<Value>> {
    let client = st.db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT n.name, COALESCE(g.description, ''), \
                 (SELECT count(*) FROM radusergroup u WHERE u.groupname = n.name), \
                 (SELECT count(*) FROM radgroupcheck c WHERE c.groupname = n.name), \
                 (SELECT count(*) FROM radgroupreply r WHERE r.groupname = n.name) \
                 FROM ({NAMES}) n LEFT JOIN rlm_rust_group g ON g.name = n.name ORDER BY n.name"
            ),
            &[],
        )
        .await?;
    Ok(Json(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "name": r.get::<_, String>(0),
                    "description": r.get::<_, String>(1),
                    "member_count": r.get::<_, i64>(2),
                    "check_count": r.get::<_, i64>(3),
                    "reply_count": r.get::<_, i64>(4),
                })
            })
            .collect(),
    )))
}

pub async fn create(State(st): State<SharedState>, mut input: Input) -> ApiResult<Response> {
    let name = input.str_opt("name")?.unwrap_or_default();
    check_group_name("name", &name)?;
    let description = input.str_opt("description")?.unwrap_or_default();
    if description.len() > 1000 {
        return Err(ApiError::invalid("description", "at most 1000 bytes"));
    }
    let check = parse_attrs("check", input.value("check"), false)?.unwrap_or_default();
    let reply = parse_attrs("reply", input.value("reply"), true)?.unwrap_or_default();
    input.deny_unknown("field")?;
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    if exists(&tx, &name).await? {
        return Err(ApiError::invalid(
            "name",
            "a group with this name already exists",
        ));
    }
    tx.execute(
        "INSERT INTO rlm_rust_group (name, description) VALUES ($1, $2)",
        &[&name, &description],
    )
    .await?;
    replace_attrs(&tx, "radgroupcheck", &name, &check).await?;
    replace_attrs(&tx, "radgroupreply", &name, &reply).await?;
    let body = group_json(&tx, &name).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn detail(
    State(st): State<SharedState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check_path_name("name", &name)?;
    let client = st.db.get().await?;
    if !exists(&client, &name).await? {
        return Err(ApiError::NotFound("group".into()));
    }
    Ok(Json(group_json(&client, &name).await?))
}

pub async fn update(
    State(st): State<SharedState>,
    Path(name): Path<String>,
    mut input: Input,
) -> ApiResult<Json<Value>> {
    check_path_name("name", &name)?;
    if input.contains("name") {
        return Err(ApiError::invalid("name", "read-only after creation"));
    }
    let description = input.str_opt("description")?;
    if description.as_ref().is_some_and(|d| d.len() > 1000) {
        return Err(ApiError::invalid("description", "at most 1000 bytes"));
    }
    let check = parse_attrs("check", input.value("check"), false)?;
    let reply = parse_attrs("reply", input.value("reply"), true)?;
    input.deny_unknown("field")?;
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    if !exists(&tx, &name).await? {
        return Err(ApiError::NotFound("group".into()));
    }
    tx.execute(
        "INSERT INTO rlm_rust_group (name, description) VALUES ($1, COALESCE($2, '')) \
         ON CONFLICT (name) DO UPDATE SET description = COALESCE($2, rlm_rust_group.description)",
        &[&name, &description],
    )
    .await?;
    if let Some(c) = &check {
        replace_attrs(&tx, "radgroupcheck", &name, c).await?;
    }
    if let Some(r) = &reply {
        replace_attrs(&tx, "radgroupreply", &name, r).await?;
    }
    let body = group_json(&tx, &name).await?;
    tx.commit().await?;
    Ok(Json(body))
}

pub async fn delete(
    State(st): State<SharedState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    check_path_name("name", &name)?;
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    let mut n = 0;
    for table in ["radgroupcheck", "radgroupreply", "radusergroup"] {
        n += tx
            .execute(
                &format!("DELETE FROM {table} WHERE groupname = $1"),
                &[&name],
            )
            .await?;
    }
    n += tx
        .execute("DELETE FROM rlm_rust_group WHERE name = $1", &[&name])
        .await?;
    if n == 0 {
        return Err(ApiError::NotFound("group".into()));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn members(
    State(st): State<SharedState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check_path_name("name", &name)?;
    let client = st.db.get().await?;
    if !exists(&client, &name).await? {
        return Err(ApiError::NotFound("group".into()));
    }
    Ok(Json(Value::Array(member_list(&client, &name).await?)))
}

pub async fn add_member(
    State(st): State<SharedState>,
    Path(name): Path<String>,
    mut input: Input,
) -> ApiResult<Response> {
    check_path_name("name", &name)?;
    let username = input.str_opt("username")?.unwrap_or_default();
    crate::users::check_username("username", &username)?;
    let priority = match input.int_opt("priority")? {
        None => 1,
        Some(p) if (0..=i32::MAX as i64).contains(&p) => p as i32,
        Some(_) => return Err(ApiError::invalid("priority", "must be 0 or more")),
    };
    input.deny_unknown("field")?;
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    if !exists(&tx, &name).await? {
        return Err(ApiError::NotFound("group".into()));
    }
    let known = tx
        .query_opt(
            "SELECT 1 FROM rlm_rust_user WHERE username = $1 \
             UNION ALL SELECT 1 FROM radcheck WHERE username = $1 LIMIT 1",
            &[&username],
        )
        .await?
        .is_some();
    if !known {
        return Err(ApiError::invalid(
            "username",
            format!("no user '{username}' (neither a profile nor radcheck rows)"),
        ));
    }
    let already = tx
        .query_opt(
            "SELECT 1 FROM radusergroup WHERE username = $1 AND groupname = $2",
            &[&username, &name],
        )
        .await?
        .is_some();
    if already {
        return Err(ApiError::conflict(
            "username",
            "already a member of this group",
        ));
    }
    tx.execute(
        "INSERT INTO radusergroup (username, groupname, priority) VALUES ($1, $2, $3)",
        &[&username, &name, &priority],
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "username": username, "groupname": name, "priority": priority })),
    )
        .into_response())
}

pub async fn remove_member(
    State(st): State<SharedState>,
    Path((name, username)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_path_name("name", &name)?;
    check_path_name("username", &username)?;
    let client = st.db.get().await?;
    let n = client
        .execute(
            "DELETE FROM radusergroup WHERE groupname = $1 AND username = $2",
            &[&name, &username],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::NotFound("membership".into()));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
