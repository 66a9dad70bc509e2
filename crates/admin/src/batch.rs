//! Batch user creation ("csv" and "prefix" strategies of the
//! django-freeradius document), all or nothing: every row is validated and
//! every password hashed before one transaction inserts the lot.
//!
//! Hashing: operator-supplied passwords get the core's Argon2id defaults
//! (m=19 MiB, t=2, p=1). Generated passwords are 12 characters drawn
//! uniformly from 56 symbols (~70 bits of entropy), so their safety does not
//! rest on the hash's work factor: no guessing attack can cover 2^70
//! candidates even at GPU speed against a cheap hash. They get
//! [`FAST_PARAMS`] (Argon2id, m=4 MiB, t=1, p=1): still a memory-hard,
//! salted PHC hash the module verifies like any other, about 15x cheaper,
//! and spread over all cores. 10,000 users take seconds instead of minutes.

use std::collections::HashSet;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deadpool_postgres::Pool;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::input::{content_type, end_of_day, parse_date, Input};
use crate::radius::ts;
use crate::users::{check_email, check_password, check_username};
use crate::SharedState;

/// Argon2id parameters for generated (high-entropy) passwords: memory in
/// KiB, iterations, lanes.
pub const FAST_PARAMS: (u32, u32, u32) = (4096, 1, 1);
pub const MAX_USERS: usize = 100_000;
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// 12 symbols from a 56-symbol alphabet without look-alikes (0/O, 1/l/I),
/// uniformly (rejection sampling).
pub fn generate_password() -> String {
    let mut out = String::with_capacity(12);
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    while out.len() < 12 {
        let mut buf = [0u8; 16];
        getrandom::fill(&mut buf).expect("the OS random number generator failed");
        for b in buf {
            if b < limit && out.len() < 12 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

pub fn hash_fast(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let (m, t, p) = FAST_PARAMS;
    let params = argon2::Params::new(m, t, p, None).expect("constant parameters are valid");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random number generator failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes always encode");
    a.hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with valid parameters cannot fail")
        .to_string()
}

#[derive(Debug, Clone)]
pub struct NewUser {
    /// Line in the CSV file (1-based), for error messages.
    pub row: usize,
    pub username: String,
    pub password: String,
    pub generated: bool,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
}

fn row_err(row: usize, msg: impl std::fmt::Display) -> ApiError {
    ApiError::invalid("csvfile", format!("row {row}: {msg}"))
}

/// Rows `username,password,email,first_name,last_name` (a header row
/// naming the columns is skipped). An empty password is generated.
pub fn parse_csv(data: &[u8]) -> ApiResult<Vec<NewUser>> {
    parse_csv_max(data, MAX_USERS)
}

/// [`parse_csv`] with at most `max_users` users.
pub fn parse_csv_max(data: &[u8], max_users: usize) -> ApiResult<Vec<NewUser>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let mut users = Vec::new();
    let mut seen = HashSet::new();
    for (i, rec) in rdr.byte_records().enumerate() {
        // The line in the file as an editor shows it: the csv crate's own
        // line counter skips blank lines.
        // A record's position can point at the blank lines before it.
        let line_at = |byte: u64| {
            let mut end = (byte as usize).min(data.len());
            while end < data.len() && (data[end] == b'\n' || data[end] == b'\r') {
                end += 1;
            }
            1 + data[..end].iter().filter(|b| **b == b'\n').count()
        };
        let rec = rec.map_err(|e| {
            let row = e.position().map(|p| line_at(p.byte())).unwrap_or(i + 1);
            row_err(row, format!("unreadable CSV: {e}"))
        })?;
        let row = rec.position().map(|p| line_at(p.byte())).unwrap_or(i + 1);
        let rec = csv::StringRecord::from_byte_record(rec)
            .map_err(|_| row_err(row, "not valid UTF-8"))?;
        if i == 0
            && rec
                .get(0)
                .is_some_and(|c| c.eq_ignore_ascii_case("username"))
        {
            continue;
        }
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if rec.len() > 5 {
            return Err(row_err(
                row,
                format!(
                    "{} columns; expected username,password,email,first_name,last_name",
                    rec.len()
                ),
            ));
        }
        let col = |n: usize| rec.get(n).unwrap_or("").to_string();
        let username = col(0);
        check_username("username", &username).map_err(|e| row_err(row, e))?;
        if !seen.insert(username.clone()) {
            return Err(row_err(row, format!("username '{username}' appears twice")));
        }
        let mut password = col(1);
        let generated = password.is_empty();
        if generated {
            password = generate_password();
        } else {
            check_password("password", &password).map_err(|e| row_err(row, e))?;
        }
        let email = Some(col(2)).filter(|e| !e.is_empty());
        if let Some(e) = &email {
            check_email("email", e).map_err(|e| row_err(row, e))?;
        }
        let (first_name, last_name) = (col(3), col(4));
        for (n, v) in [("first_name", &first_name), ("last_name", &last_name)] {
            if v.len() > 150 {
                return Err(row_err(row, format!("{n}: at most 150 bytes")));
            }
            if v.chars().any(char::is_control) {
                return Err(row_err(
                    row,
                    format!("{n}: must not contain control characters"),
                ));
            }
        }
        users.push(NewUser {
            row,
            username,
            password,
            generated,
            email,
            first_name,
            last_name,
        });
        if users.len() > max_users {
            return Err(row_err(row, format!("more than {max_users} users")));
        }
    }
    if users.is_empty() {
        return Err(ApiError::invalid("csvfile", "no users in the file"));
    }
    Ok(users)
}

pub fn check_prefix(p: &str) -> ApiResult<()> {
    if p.is_empty() || p.len() > 32 {
        return Err(ApiError::invalid("prefix", "1 to 32 characters"));
    }
    if !p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(ApiError::invalid(
            "prefix",
            "only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// `prefix` + a zero-padded sequence number (guest001..guest100).
pub fn prefix_users(prefix: &str, count: usize) -> ApiResult<Vec<NewUser>> {
    prefix_users_max(prefix, count, MAX_USERS)
}

/// [`prefix_users`] with at most `max_users` users.
pub fn prefix_users_max(prefix: &str, count: usize, max_users: usize) -> ApiResult<Vec<NewUser>> {
    check_prefix(prefix)?;
    if !(1..=max_users).contains(&count) {
        return Err(ApiError::invalid(
            "number_of_users",
            format!("must be between 1 and {max_users}"),
        ));
    }
    let width = count.to_string().len();
    Ok((1..=count)
        .map(|n| NewUser {
            row: n,
            username: format!("{prefix}{n:0width$}"),
            password: generate_password(),
            generated: true,
            email: None,
            first_name: String::new(),
            last_name: String::new(),
        })
        .collect())
}

/// What is stored for one user's password.
#[derive(Debug, Clone)]
pub struct Hashed {
    pub password_hash: String,
    /// None when the site keeps Argon2id only (`store_nt_hash` off).
    pub nt_hash: Option<String>,
}

/// Hashes every password on all cores; `progress` is called once per user.
/// The NT hash (one MD4) is computed in the same pass: it costs next to
/// nothing beside Argon2id.
pub fn hash_all(
    users: &[NewUser],
    store_nt_hash: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<Hashed> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(users.len().max(1));
    let chunk = users.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = users
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|u| {
                            let password_hash = if u.generated {
                                hash_fast(&u.password)
                            } else {
                                radius_core::password::hash_password(&u.password)
                            };
                            let nt_hash = store_nt_hash
                                .then(|| radius_core::password::nt_hash_hex(&u.password));
                            progress(1);
                            Hashed {
                                password_hash,
                                nt_hash,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hashing thread panicked"))
            .collect()
    })
}

pub struct BatchSpec {
    pub name: String,
    pub strategy: &'static str,
    pub prefix: Option<String>,
    pub expiration_date: Option<time::Date>,
    pub groupname: Option<String>,
    pub users: Vec<NewUser>,
}

pub fn check_batch_name(n: &str) -> ApiResult<()> {
    if n.trim().is_empty() {
        return Err(ApiError::invalid("name", "this field is required"));
    }
    if n.len() > 128 || n.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "at most 128 bytes, no control characters",
        ));
    }
    Ok(())
}

/// Validates against the database, hashes, and inserts everything in one
/// transaction. Returns the batch id. `store_nt_hash` is the site's
/// choice ([`crate::Config::store_nt_hash`]).
pub async fn create_batch(
    pool: &Pool,
    spec: &BatchSpec,
    store_nt_hash: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> ApiResult<i64> {
    check_batch_name(&spec.name)?;
    let names: Vec<String> = spec.users.iter().map(|u| u.username.clone()).collect();
    {
        let client = pool.get().await?;
        if client
            .query_opt(
                "SELECT 1 FROM rlm_rust_batch WHERE name = $1",
                &[&spec.name],
            )
            .await?
            .is_some()
        {
            return Err(ApiError::invalid(
                "name",
                "a batch with this name already exists",
            ));
        }
        let taken: HashSet<String> = client
            .query(
                "SELECT username FROM rlm_rust_user WHERE username = ANY($1) \
                 UNION SELECT username FROM radcheck WHERE username = ANY($1)",
                &[&names],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(u) = spec.users.iter().find(|u| taken.contains(&u.username)) {
            return Err(if spec.strategy == "csv" {
                row_err(u.row, format!("username '{}' already exists", u.username))
            } else {
                ApiError::invalid(
                    "prefix",
                    format!(
                        "username '{}' already exists; choose another prefix",
                        u.username
                    ),
                )
            });
        }
    }
    // Hashing is CPU work: off the async workers, on every core.
    let hashes = {
        let users = spec.users.clone();
        // The progress callback borrows from the caller; hand the blocking
        // thread a channel instead and report from here.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let job = tokio::task::spawn_blocking(move || {
            hash_all(&users, store_nt_hash, &|n| {
                let _ = tx.send(n);
            })
        });
        while let Some(n) = rx.recv().await {
            progress(n);
        }
        job.await
            .map_err(|e| ApiError::Unavailable(format!("hashing task: {e}")))?
    };
    let (hashes, nt_hashes): (Vec<String>, Vec<Option<String>>) = hashes
        .into_iter()
        .map(|h| (h.password_hash, h.nt_hash))
        .unzip();
    let expiration = spec.expiration_date.map(end_of_day);
    let emails: Vec<Option<String>> = spec.users.iter().map(|u| u.email.clone()).collect();
    let firsts: Vec<String> = spec.users.iter().map(|u| u.first_name.clone()).collect();
    let lasts: Vec<String> = spec.users.iter().map(|u| u.last_name.clone()).collect();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let batch_id: i64 = tx
        .query_one(
            "INSERT INTO rlm_rust_batch (name, strategy, prefix, expiration_date) \
             VALUES ($1, $2, $3, $4::text::date) RETURNING id",
            &[
                &spec.name,
                &spec.strategy,
                &spec.prefix,
                &spec.expiration_date.map(|d| d.to_string()),
            ],
        )
        .await?
        .get(0);
    // One statement for all users: unnest keeps 10,000 rows one round trip.
    tx.execute(
        "INSERT INTO rlm_rust_user (username, password_hash, email, first_name, last_name, \
         nt_hash, expiration, batch_id) \
         SELECT u, h, e, f, l, n, to_timestamp($7), $8 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
         AS t(u, h, e, f, l, n)",
        &[
            &names,
            &hashes,
            &emails,
            &firsts,
            &lasts,
            &nt_hashes,
            &expiration,
            &batch_id,
        ],
    )
    .await?;
    if spec.strategy == "prefix" {
        let passwords: Vec<String> = spec.users.iter().map(|u| u.password.clone()).collect();
        tx.execute(
            "INSERT INTO rlm_rust_batch_credential (batch_id, username, password) \
             SELECT $1, u, p FROM unnest($2::text[], $3::text[]) AS t(u, p)",
            &[&batch_id, &names, &passwords],
        )
        .await?;
    }
    if let Some(g) = &spec.groupname {
        tx.execute(
            "INSERT INTO radusergroup (username, groupname, priority) \
             SELECT u, $2, 1 FROM unnest($1::text[]) AS t(u)",
            &[&names, g],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(batch_id)
}

fn batch_cols() -> String {
    format!(
        "b.id, b.name, b.strategy, b.prefix, b.expiration_date::text, {}, \
         (SELECT count(*) FROM rlm_rust_user u WHERE u.batch_id = b.id), {}, \
         CASE WHEN b.strategy = 'prefix' THEN \
         (SELECT count(*) FROM rlm_rust_batch_credential c WHERE c.batch_id = b.id) END",
        ts("b.created_at"),
        ts("b.credentials_purged_at")
    )
}

fn batch_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, i64>(0),
        "name": r.get::<_, String>(1),
        "strategy": r.get::<_, String>(2),
        "prefix": r.get::<_, Option<String>>(3),
        "expiration_date": r.get::<_, Option<String>>(4),
        "created_at": r.get::<_, String>(5),
        "user_count": r.get::<_, i64>(6),
        // When `radius-admin housekeeping` deleted the printable
        // credentials (prefix batches); null while they are kept.
        "credentials_purged_at": r.get::<_, Option<String>>(7),
        // Printable credentials still kept (prefix batches; a user whose
        // password changed since has none); null for csv batches.
        "credentials_kept": r.get::<_, Option<i64>>(8),
    })
}

/// Reads the request (multipart for csv, form / JSON / multipart for
/// prefix) into a validated spec.
async fn read_spec(st: &SharedState, req: Request) -> ApiResult<BatchSpec> {
    let ctype = content_type(req.headers());
    let (mut input, csv) = if ctype.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, st)
            .await
            .map_err(|e| ApiError::invalid("body", e.body_text()))?;
        let mut input = Input::default();
        let mut csv = None;
        let mp_err = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::invalid("body", e.body_text())
            }
        };
        while let Some(field) = mp.next_field().await.map_err(mp_err)? {
            let name = field.name().unwrap_or("").to_string();
            if name == "csvfile" {
                csv = Some(field.bytes().await.map_err(mp_err)?);
            } else {
                let text = field
                    .text()
                    .await
                    .map_err(|_| ApiError::invalid(&name, "must be text"))?;
                if input.contains(&name) {
                    return Err(ApiError::invalid(name, "given more than once"));
                }
                input.insert(&name, Value::String(text));
            }
        }
        (input, csv)
    } else {
        (Input::from_request(req, st).await?, None)
    };
    let name = input.str_req("name")?;
    check_batch_name(&name)?;
    let strategy = input.str_req("strategy")?;
    let expiration_date = match input.str_opt("expiration_date")? {
        Some(s) if !s.trim().is_empty() => Some(parse_date("expiration_date", &s)?),
        _ => None,
    };
    let groupname = input.str_opt("groupname")?.filter(|g| !g.is_empty());
    if let Some(g) = &groupname {
        crate::groups::check_group_name("groupname", g)?;
    }
    let spec = match strategy.as_str() {
        "csv" => {
            for f in ["prefix", "number_of_users"] {
                if input.contains(f) {
                    return Err(ApiError::invalid(f, "not used by the csv strategy"));
                }
            }
            input.deny_unknown("field")?;
            let data = csv.ok_or_else(|| {
                ApiError::invalid(
                    "csvfile",
                    "required for the csv strategy (multipart upload)",
                )
            })?;
            BatchSpec {
                name,
                strategy: "csv",
                prefix: None,
                expiration_date,
                groupname,
                users: parse_csv_max(&data, st.cfg.max_batch_users)?,
            }
        }
        "prefix" => {
            if csv.is_some() {
                return Err(ApiError::invalid(
                    "csvfile",
                    "not used by the prefix strategy",
                ));
            }
            let prefix = input.str_req("prefix")?;
            let count = input
                .int_opt("number_of_users")?
                .ok_or_else(|| ApiError::invalid("number_of_users", "this field is required"))?;
            input.deny_unknown("field")?;
            let count = usize::try_from(count).unwrap_or(0);
            BatchSpec {
                users: prefix_users_max(&prefix, count, st.cfg.max_batch_users)?,
                name,
                strategy: "prefix",
                prefix: Some(prefix),
                expiration_date,
                groupname,
            }
        }
        other => {
            return Err(ApiError::invalid(
                "strategy",
                format!("'{other}' is not one of csv, prefix"),
            ))
        }
    };
    Ok(spec)
}

pub async fn create(State(st): State<SharedState>, req: Request) -> ApiResult<Response> {
    let spec = read_spec(&st, req).await?;
    let id = create_batch(&st.db, &spec, st.cfg.store_nt_hash, &|_| {}).await?;
    let mut body = fetch_batch(&st.db, id).await?;
    // The clear passwords, shown this once (prefix batches keep theirs for
    // the voucher CSV / PDF; csv batches keep none).
    body["users"] = spec
        .users
        .iter()
        .map(|u| {
            json!({
                "username": u.username,
                "password": if u.generated { Some(&u.password) } else { None },
            })
        })
        .collect();
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn fetch_batch(pool: &Pool, id: i64) -> ApiResult<Value> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM rlm_rust_batch b WHERE b.id = $1",
                batch_cols()
            ),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("batch".into()))?;
    Ok(batch_json(&row))
}

fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid("id", format!("'{s}' is not a batch id")))
}

pub async fn list(State(st): State<SharedState>) -> ApiResult<Json<Value>> {
    let client = st.db.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM rlm_rust_batch b ORDER BY b.id",
                batch_cols()
            ),
            &[],
        )
        .await?;
    Ok(Json(rows.iter().map(batch_json).collect()))
}

pub async fn detail(
    State(st): State<SharedState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let mut body = fetch_batch(&st.db, id).await?;
    let client = st.db.get().await?;
    let users = client
        .query(
            "SELECT u.id, u.username, EXISTS (SELECT 1 FROM rlm_rust_batch_credential c \
             WHERE c.batch_id = $1 AND c.username = u.username) \
             FROM rlm_rust_user u WHERE u.batch_id = $1 ORDER BY u.id",
            &[&id],
        )
        .await?;
    let prefix = body["strategy"] == "prefix";
    body["users"] = users
        .iter()
        .map(|r| {
            let mut u = json!({ "id": r.get::<_, i64>(0), "username": r.get::<_, String>(1) });
            if prefix {
                // False once purged, or once the user's password changed.
                u["credential_kept"] = json!(r.get::<_, bool>(2));
            }
            u
        })
        .collect();
    Ok(Json(body))
}

/// The stored credentials of a prefix batch, in creation order.
pub async fn credentials(pool: &Pool, id: i64) -> ApiResult<(Value, Vec<(String, String)>)> {
    let batch = fetch_batch(pool, id).await?;
    if batch["strategy"] != "prefix" {
        return Err(ApiError::NotFound(
            "credentials (kept for prefix batches only)".into(),
        ));
    }
    if let Some(at) = batch["credentials_purged_at"].as_str() {
        return Err(ApiError::Gone(format!(
            "the credentials of this batch were purged at {at} (radius-admin housekeeping)"
        )));
    }
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT username, password FROM rlm_rust_batch_credential WHERE batch_id = $1 \
             ORDER BY username",
            &[&id],
        )
        .await?;
    Ok((batch, rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
}

pub fn credentials_csv_bytes(creds: &[(String, String)]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["username", "password"]);
    for (u, p) in creds {
        let _ = w.write_record([u, p]);
    }
    w.into_inner().unwrap_or_default()
}

fn attachment(ctype: &'static str, filename: String, body: Vec<u8>) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

pub async fn credentials_csv(
    State(st): State<SharedState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (_, creds) = credentials(&st.db, id).await?;
    Ok(attachment(
        "text/csv; charset=utf-8",
        format!("batch-{id}.csv"),
        credentials_csv_bytes(&creds),
    ))
}

pub async fn credentials_pdf(
    State(st): State<SharedState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (batch, creds) = credentials(&st.db, id).await?;
    let name = batch["name"].as_str().unwrap_or("").to_string();
    let exp = batch["expiration_date"].as_str().map(str::to_string);
    let pdf = tokio::task::spawn_blocking(move || {
        crate::pdf::credentials_pdf(&name, exp.as_deref(), &creds)
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("pdf task: {e}")))?
    .map_err(ApiError::Unavailable)?;
    Ok(attachment(
        "application/pdf",
        format!("batch-{id}.pdf"),
        pdf,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_and_errors() {
        let users = parse_csv(
            b"username,password,email,first_name,last_name\nann,secret-pw,a@x.org,Ann,A\nbob,,,,\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].row, 2);
        assert!(users[1].generated && users[1].password.len() == 12);
        let e = parse_csv(b"ann,secret-pw\nbob,secret-pw,not-an-email\n").unwrap_err();
        assert!(e.to_string().contains("row 2"), "{e}");
        let e = parse_csv(b"ann,secret-pw\nann,secret-pw\n").unwrap_err();
        assert!(
            e.to_string().contains("row 2") && e.to_string().contains("twice"),
            "{e}"
        );
        assert!(parse_csv(b"").is_err());
        assert!(parse_csv(b"a,b,c,d,e,f\n").is_err());
        for nul in [
            &b"a\0b,secret-pw\n"[..],
            b"ann,secret-pw,,A\0n,\n",
            b"ann,,,,B\0\n",
        ] {
            let e = parse_csv(nul).unwrap_err();
            assert!(e.to_string().contains("row 1"), "{e}");
        }
    }

    #[test]
    fn prefix_names_are_padded() {
        let u = prefix_users("guest", 100).unwrap();
        assert_eq!(u[0].username, "guest001");
        assert_eq!(u[99].username, "guest100");
        assert!(prefix_users("bad prefix", 1).is_err());
        assert!(prefix_users("ok", 0).is_err());
    }

    #[test]
    fn fast_hashes_verify_with_the_core() {
        let pw = generate_password();
        assert!(pw.bytes().all(|b| ALPHABET.contains(&b)));
        let h = hash_fast(&pw);
        assert!(h.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"), "{h}");
        assert_eq!(radius_core::password::verify(&pw, &h), Ok(true));
        assert_eq!(radius_core::password::verify("nope", &h), Ok(false));
    }

    #[test]
    fn hash_all_keeps_order_and_nt_hashes_only_when_asked() {
        let mut users = prefix_users("nt", 5).unwrap();
        users[2].password = "password".into();
        users[2].generated = false;
        let with = hash_all(&users, true, &|_| {});
        assert_eq!(with.len(), 5);
        for (u, h) in users.iter().zip(&with) {
            assert_eq!(
                radius_core::password::verify(&u.password, &h.password_hash),
                Ok(true)
            );
            assert_eq!(
                h.nt_hash.as_deref(),
                Some(radius_core::password::nt_hash_hex(&u.password).as_str())
            );
        }
        assert_eq!(
            with[2].nt_hash.as_deref(),
            Some("8846f7eaee8fb117ad06bdd830b7586c")
        );
        let without = hash_all(&users, false, &|_| {});
        assert!(without.iter().all(|h| h.nt_hash.is_none()));
    }
}
