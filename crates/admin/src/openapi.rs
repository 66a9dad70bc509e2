//! The OpenAPI 3.0 document of the API, written out by hand: inputs are
//! validated by hand (to name the field in every 400), so deriving schemas
//! from serde types would describe types the handlers do not use. The
//! limits it states are the handlers' own constants (and the server's
//! configuration), so the two cannot drift apart silently; a test checks
//! that it parses as OpenAPI 3 and covers every route, and scripts/test
//! runs schemathesis against it (every answer documented, every body
//! conforming).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::radius::{MAX_ATTR_BYTES, MAX_LOGIN_PASSWORD_BYTES, MAX_OCTETS, MAX_PAGE};
use crate::SharedState;

pub async fn serve(State(st): State<SharedState>) -> Json<Value> {
    Json(document_for(st.cfg.max_batch_users))
}

/// The document with the default limits.
pub fn document() -> Value {
    document_for(crate::batch::MAX_USERS)
}

/// A string of at most `max` characters (the handlers count bytes: text
/// beyond ASCII reaches the limit sooner).
fn text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max })
}

fn ntext(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "nullable": true })
}

fn int(min: i64, max: i64) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": max })
}

/// No control characters, no surrounding blanks (a RADIUS User-Name as the
/// API takes it), and `extra` characters refused anywhere.
fn trimmed_pattern(extra: &str) -> String {
    let no = format!("\\s\\x00-\\x1f\\x7f-\\x9f{extra}");
    let inner = format!("\\x00-\\x1f\\x7f-\\x9f{extra}");
    format!("^[^{no}](?:[^{inner}]*[^{no}])?$")
}

fn s(t: &str) -> Value {
    json!({ "type": t })
}

fn ns(t: &str) -> Value {
    json!({ "type": t, "nullable": true })
}

fn obj(props: Value, required: &[&str]) -> Value {
    let mut o = json!({ "type": "object", "properties": props });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// An input object whose unknown fields the handler refuses.
fn closed(mut o: Value) -> Value {
    o["additionalProperties"] = json!(false);
    o
}

fn body_ref(name: &str) -> Value {
    let r = json!({ "schema": { "$ref": format!("#/components/schemas/{name}") } });
    json!({
        "required": true,
        "content": {
            "application/json": r,
            "application/x-www-form-urlencoded": r,
        }
    })
}

fn ok(desc: &str, schema: Option<Value>) -> Value {
    match schema {
        Some(sc) => {
            json!({ "description": desc, "content": { "application/json": { "schema": sc } } })
        }
        None => json!({ "description": desc }),
    }
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn err(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": r("Error") } } })
}

fn q(name: &str, desc: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": schema })
}

fn p(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

/// A database id in the path.
fn p_id() -> Value {
    p("id", int(1, i64::MAX))
}

/// A group or member name in the path: any text but NUL.
fn p_name(name: &str) -> Value {
    p(
        name,
        json!({ "type": "string", "minLength": 1, "maxLength": crate::groups::MAX_PATH_NAME_BYTES }),
    )
}

/// Common error answers of protected operations; those `responses`
/// already names stay as given.
fn errors(mut responses: Value) -> Value {
    let m = responses.as_object_mut().expect("object");
    for (code, desc) in [
        ("400", "Bad input; `field` names the field or parameter"),
        ("401", "No API token"),
        (
            "403",
            "Invalid API token, or one whose scope does not cover the operation",
        ),
        (
            "429",
            "Too many invalid API tokens from this address (Retry-After)",
        ),
        ("503", "Database unavailable"),
    ] {
        m.entry(code).or_insert_with(|| err(desc));
    }
    responses
}

/// Common error answers of the user API (the user's own token).
fn user_errors(mut responses: Value) -> Value {
    let m = responses.as_object_mut().expect("object");
    for (code, desc) in [
        ("400", "Bad input; `field` names the field or parameter"),
        ("401", "No token"),
        (
            "403",
            "Not a valid user token (expired, replaced by a later login, or the account is inactive or expired)",
        ),
        ("429", "Too many invalid tokens from this address (Retry-After)"),
        ("503", "Database unavailable"),
    ] {
        m.entry(code).or_insert_with(|| err(desc));
    }
    responses
}

fn user_filters() -> Vec<Value> {
    let filter = || text(crate::users::MAX_FILTER_BYTES);
    let mut v = vec![
        q("limit", "page size (default 20)", int(1, 1000)),
        q(
            "offset",
            "first row (default 0)",
            int(0, crate::users::MAX_OFFSET),
        ),
    ];
    for (f, lookups) in [
        (
            "username",
            &["exact", "iexact", "contains", "icontains", "in"][..],
        ),
        ("email", &["exact", "iexact", "contains", "icontains", "in"]),
        ("server_name", &["exact", "iexact", "contains", "icontains"]),
        (
            "server_address",
            &["exact", "iexact", "contains", "icontains"],
        ),
        ("token_serial", &["exact", "iexact"]),
    ] {
        for l in lookups {
            let name = if *l == "exact" {
                f.to_string()
            } else {
                format!("{f}__{l}")
            };
            let desc = if *l == "in" {
                format!("{f}, {l} (comma-separated)")
            } else {
                format!("{f}, {l}")
            };
            v.push(q(&name, &desc, filter()));
        }
    }
    v.push(q(
        "active",
        "active as shown (false includes users locked after failed logins)",
        json!({ "type": "boolean" }),
    ));
    v.push(q(
        "token_type",
        "token type",
        json!({ "type": "string", "enum": crate::users::TOKEN_TYPES }),
    ));
    v
}

pub fn document_for(max_batch_users: usize) -> Value {
    let attr_name = json!({ "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$" });
    let attr_value = json!({ "type": "string", "maxLength": 1024, "pattern": "^[^\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f]*$" });
    let attr = |ops: &[&str]| {
        obj(
            json!({ "attribute": attr_name, "op": { "type": "string", "enum": ops }, "value": attr_value }),
            &["attribute", "value"],
        )
    };
    let check_ops = [
        "=", ":=", "+=", "-=", "^=", "==", "!=", "<", "<=", ">", ">=", "=~", "!~", "=*", "!*",
    ];
    let reply_ops = ["=", ":=", "+=", "-=", "^="];
    let username = json!({ "type": "string", "minLength": 1, "maxLength": 253, "pattern": trimmed_pattern("") });
    let group_name = json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": trimmed_pattern("/") });
    let timestamp = json!({ "type": "string", "format": "date-time", "nullable": true,
        "description": "RFC 3339 (years 0001..9999); also 'YYYY-MM-DD HH:MM:SS' (UTC), a date, or epoch seconds" });
    let usage_schema = json!({ "type": "object", "nullable": true, "readOnly": true,
            "description": "GET radiususers/<id>/ only: usage against the user's limits (Simultaneous-Use and the Max-*-Session / Max-*-Octets check items of radcheck and their groups, as a request without attributes gets them), computed as the login procedure does; null when the user's check items cannot be read",
            "properties": {
                "simultaneous_use": { "type": "integer", "nullable": true, "description": "the user's Simultaneous-Use, if any" },
                "open_sessions": { "type": "integer", "minimum": 0, "description": "sessions counting against Simultaneous-Use now" },
                "limits": { "type": "array", "items": {
                    "type": "object",
                    "required": ["attribute", "period", "unit", "limit", "used", "remaining", "period_start", "resets_at"],
                    "properties": {
                        "attribute": { "type": "string", "description": "the check item, e.g. Max-Daily-Session" },
                        "period": { "type": "string", "enum": ["daily", "weekly", "monthly", "never"] },
                        "unit": { "type": "string", "enum": ["seconds", "octets"] },
                        "limit": { "type": "integer", "minimum": 0 },
                        "used": { "type": "integer", "minimum": 0, "description": "used in the current period (sessions overlapping its start count for their part in it)" },
                        "remaining": { "type": "integer", "minimum": 0 },
                        "period_start": { "type": "integer", "description": "epoch seconds (server local time boundaries, as rlm_sqlcounter); 0 for never" },
                        "resets_at": { "type": "integer", "nullable": true, "description": "epoch seconds of the next reset; null for never" },
                    }
                } },
            },
            "required": ["simultaneous_use", "open_sessions", "limits"] });
    let user_props = json!({
        "id": { "type": "integer", "readOnly": true },
        "username": { "type": "string", "minLength": 1, "maxLength": 253, "pattern": trimmed_pattern(""), "description": "required on create; read-only after" },
        "server_name": { "type": "string", "maxLength": 255, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*\\S[^\\x00-\\x1f\\x7f-\\x9f]*$", "nullable": true, "description": "required when creating; read-only after (null for users made by batches or token/)" },
        "server_address": { "type": "string", "maxLength": 255, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*\\S[^\\x00-\\x1f\\x7f-\\x9f]*$", "nullable": true, "description": "required when creating; read-only after" },
        "email": { "type": "string", "format": "email", "maxLength": 254, "nullable": true },
        "first_name": { "type": "string", "maxLength": 150, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$" },
        "last_name": { "type": "string", "maxLength": 150, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$" },
        "active": { "type": "boolean", "description": "false while the user is locked after failed logins (reason 2); PATCH true unlocks (deletes the lockout and its failures count)" },
        "reason": { "type": "integer", "minimum": 0, "maximum": 8, "nullable": true,
                    "description": "0 manually disabled, 1 account inactivity, 2 too many failed attempts (shown while locked), 3 account expiry, 4 password expiry, 5 FTM activation expiry, 6 revoked token, 7 usage limit exceeded, 8 pending administrator approval" },
        "mobile_number": { "type": "string", "maxLength": 25, "pattern": "^\\+[0-9]{1,3}-[0-9]{4,20}$", "nullable": true, "description": "+<country_code>-<number>" },
        "token_auth": { "type": "boolean", "description": "true requires token_type" },
        "token_type": { "type": "string", "enum": ["ftk", "ftm", "ftc", "email", "sms", "dual", null], "nullable": true, "description": "email needs email, sms needs mobile_number, dual both" },
        "token_serial": { "type": "string", "maxLength": 64, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$", "nullable": true },
        "ftm_act_method": { "type": "string", "enum": ["email", "sms", null], "nullable": true },
        "fido": s("boolean"),
        "expiration": { "type": "string", "format": "date-time", "nullable": true, "description": "RFC 3339 (years 0001..9999); on input also a date YYYY-MM-DD (valid through that day, UTC) or epoch seconds" },
        "password": { "type": "string", "writeOnly": true, "minLength": 8, "maxLength": 256, "description": "at least 8 characters, at most 256 bytes; stored as Argon2id, plus its NT hash unless the server runs with --store-nt-hash false (then any older NT hash is cleared)" },
        "batch": { "type": "integer", "nullable": true, "readOnly": true },
        "has_password": { "type": "boolean", "readOnly": true },
        "has_nt_hash": { "type": "boolean", "readOnly": true, "description": "an NT hash is stored (MS-CHAP / PEAP-MSCHAPv2 possible); false with --store-nt-hash false or for a password set before it was stored" },
        "locked_until": { "type": "string", "format": "date-time", "nullable": true, "readOnly": true, "description": "end of the current lock; null when not locked, and also when locked until an administrator unlocks (then reason is 2)" },
        "failed_logins": { "type": "integer", "minimum": 0, "readOnly": true, "description": "consecutive failed logins counted by the module and authorize/ / token/" },
        "usage": usage_schema,
        "created_at": { "type": "string", "format": "date-time", "readOnly": true },
        "updated_at": { "type": "string", "format": "date-time", "readOnly": true },
        "totp_uri": { "type": "string", "readOnly": true, "description": "only in the answer of POST radiususers/ for token_auth with token_type ftm or ftk: the otpauth://totp/ URI of the new seed, shown this once" },
    });
    // Inputs: the writable fields only (anything else is a 400).
    let mut user_in = user_props.clone();
    user_in
        .as_object_mut()
        .expect("object")
        .retain(|_, v| v.get("readOnly").is_none());
    let mut user_patch = user_in.clone();
    for ro in ["username", "server_name", "server_address"] {
        user_patch.as_object_mut().expect("object").remove(ro);
    }
    let acct_text = [
        "session_id",
        "unique_id",
        "username",
        "groupname",
        "realm",
        "nas_port_id",
        "nas_port_type",
        "authentication",
        "connection_info_start",
        "connection_info_stop",
        "called_station_id",
        "calling_station_id",
        "terminate_cause",
        "service_type",
        "framed_protocol",
    ];
    let u32_max = i64::from(u32::MAX);
    let mut acct_in = serde_json::Map::new();
    let mut acct_out = serde_json::Map::new();
    acct_out.insert("id".into(), s("integer"));
    for f in acct_text {
        acct_in.insert(f.into(), ntext(MAX_ATTR_BYTES));
        acct_out.insert(f.into(), ns("string"));
    }
    for f in ["start_time", "update_time", "stop_time"] {
        acct_in.insert(f.into(), timestamp.clone());
        acct_out.insert(
            f.into(),
            json!({ "type": "string", "format": "date-time", "nullable": true }),
        );
    }
    for (f, max) in [
        ("interval", u32_max),
        ("session_time", u32_max),
        ("input_octets", MAX_OCTETS as i64),
        ("output_octets", MAX_OCTETS as i64),
    ] {
        let mut t = int(0, max);
        t["nullable"] = json!(true);
        acct_in.insert(f.into(), t);
        acct_out.insert(f.into(), ns("integer"));
    }
    acct_in.insert(
        "nas_ip_address".into(),
        json!({ "type": "string", "format": "ipv4", "description": "IPv4 or IPv6 address" }),
    );
    acct_in.insert("framed_ip_address".into(), json!({ "type": "string", "format": "ipv4", "nullable": true, "description": "IPv4 or IPv6 address" }));
    acct_out.insert("nas_ip_address".into(), s("string"));
    acct_out.insert("framed_ip_address".into(), s("string"));
    acct_in["session_id"]["minLength"] = json!(1);
    acct_in["unique_id"]["minLength"] = json!(1);
    acct_in.insert(
        "status_type".into(),
        json!({ "type": "string", "enum": ["Start", "Interim-Update", "Stop", "Accounting-On", "Accounting-Off"],
                "description": "also accepted: the numeric Acct-Status-Type; session_id and unique_id are required for Start, Interim-Update and Stop" }),
    );
    let batch = obj(
        json!({
            "id": s("integer"), "name": s("string"), "strategy": { "type": "string", "enum": ["csv", "prefix"] },
            "prefix": ns("string"), "expiration_date": { "type": "string", "format": "date", "nullable": true },
            "created_at": { "type": "string", "format": "date-time" }, "user_count": s("integer"),
            "credentials_purged_at": { "type": "string", "format": "date-time", "nullable": true, "description": "when `radius-admin housekeeping` deleted the printable credentials of this prefix batch; null while kept" },
            "credentials_kept": { "type": "integer", "nullable": true, "description": "printable credentials still kept (prefix batches; a user whose password changed has none); null for csv batches" },
            "users": { "type": "array", "items": obj(json!({ "id": s("integer"), "username": s("string"), "password": ns("string"),
                "credential_kept": { "type": "boolean", "description": "prefix batches (detail): whether the CSV / PDF still holds this user's credential" } }), &["username"]) },
        }),
        &["id", "name", "strategy"],
    );
    let batch_name = json!({ "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*\\S[^\\x00-\\x1f\\x7f-\\x9f]*$" });
    let prefix = json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,32}$" });
    let count = int(1, max_batch_users as i64);
    let expiration_date = json!({ "type": "string", "format": "date", "description": "the last valid day (UTC), year 0001..9999" });
    let member = obj(
        json!({ "username": s("string"), "priority": s("integer") }),
        &["username", "priority"],
    );
    let group = obj(
        json!({
            "name": s("string"), "description": s("string"),
            "check": { "type": "array", "items": r("CheckAttribute") },
            "reply": { "type": "array", "items": r("ReplyAttribute") },
            "members": { "type": "array", "items": member.clone() },
        }),
        &["name", "description", "check", "reply", "members"],
    );
    let group_props = |with_name: bool| {
        let mut p = json!({
            "description": { "type": "string", "maxLength": 1000 },
            "check": { "type": "array", "items": r("CheckAttribute"), "description": "replaces the group's check items" },
            "reply": { "type": "array", "items": r("ReplyAttribute"), "description": "replaces the group's reply items" },
        });
        if with_name {
            p["name"] = group_name.clone();
        }
        p
    };
    let auth_refusal = json!({ "description": "Not authenticated: wrong or missing credentials (`detail` only), or the password was right and a token code is required (`token_required`; e-mail/SMS users were sent one, `token_sent` names the channels); also a missing API token",
        "content": { "application/json": { "schema": obj(json!({
            "detail": s("string"), "field": s("string"),
            "token_required": s("boolean"),
            "token_sent": { "type": "array", "items": { "type": "string", "enum": ["email", "sms"] } },
            "expires_at": { "type": "string", "format": "date-time", "description": "end of the code sent" },
        }), &["detail"]) } } });
    let json_body = |schema: Value| json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    let no_body = |code: &str, d: &str| json!({ code: { "description": d } });
    // Its own value: the document is too deep for one json! call.
    let metrics_path = json!({ "get": {
        "summary": "Prometheus metrics of this service (OpenMetrics text): radius_admin_http_requests_total{method,route,status}, radius_admin_http_request_duration_seconds{method,route}",
        "description": "Open, as Prometheus exporters are: counts by route template and status only, no user name, token or secret. Keep the service on a network you trust, or put /metrics behind the reverse proxy.",
        "security": [],
        "responses": { "200": { "description": "The metrics", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } }
    }});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "radius-admin",
            "version": radius_core::VERSION,
            "description": "Management API of rlm_rust. Send the API token as `Authorization: Bearer <token>` or `?token=<token>`; a missing token is answered 401, an invalid one (or one whose scope does not cover the operation: `radius` for authorize/, postauth/ and POST accounting/, `read` for other GETs, `write` for the rest, write including read) 403, and an address that sent too many invalid ones 429. The user API (account/) takes a user's own auth token from token/ instead. Errors are JSON `{\"detail\": ..., \"field\": ...}`. No text field may hold NUL."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, { "query_token": [] }],
        "paths": {
            "/api/v1/authorize/": { "post": {
                "summary": "Authorize a username and password (rlm_rest)",
                "requestBody": body_ref("Credentials"),
                "responses": errors(json!({
                    "200": ok("Accepted: control and reply attributes", Some(json!({ "type": "object", "additionalProperties": true, "example": { "control:Auth-Type": "Accept", "reply:Session-Timeout": "3600" } }))),
                    "401": { "description": "Rejected: an empty body without a content type (django-freeradius), or {\"control:Auth-Type\": \"Reject\"} with --authorize-reject json; also a missing API token (JSON error)" },
                }))
            }},
            "/api/v1/postauth/": { "post": {
                "summary": "Record a post-auth event (no body in the answer)",
                "requestBody": body_ref("PostAuth"),
                "responses": errors(no_body("201", "Recorded"))
            }},
            "/api/v1/accounting/": {
                "get": {
                    "summary": "Accounting sessions, newest first; Link header pagination",
                    "parameters": [
                        q("username", "exact", text(MAX_ATTR_BYTES)), q("called_station_id", "exact", text(MAX_ATTR_BYTES)),
                        q("calling_station_id", "exact", text(MAX_ATTR_BYTES)),
                        q("start_time", "start time greater or equal (RFC 3339, date or epoch)", json!({ "type": "string", "format": "date-time" })),
                        q("stop_time", "stop time less or equal", json!({ "type": "string", "format": "date-time" })),
                        q("is_open", "stop_time is null", json!({ "type": "boolean" })),
                        q("page", "page number (1-based)", int(1, MAX_PAGE)),
                        q("page_size", "default 100", int(1, 1000)),
                    ],
                    "responses": errors(json!({ "200": ok("Sessions, newest first (Link and X-Total-Count headers; beyond 10,000 matches X-Total-Count is PostgreSQL's estimate and X-Total-Count-Estimated: true)", Some(json!({ "type": "array", "items": r("Accounting") }))) }))
                },
                "post": {
                    "summary": "Start / Interim-Update / Stop (no body in the answer)",
                    "requestBody": body_ref("AccountingInput"),
                    "responses": errors(json!({ "200": { "description": "Written (Interim-Update, Stop, On/Off)" }, "201": { "description": "Written (Start)" } }))
                }
            },
            "/api/v1/batch/": {
                "get": { "summary": "Batches", "responses": errors(json!({ "200": ok("Batches", Some(json!({ "type": "array", "items": r("Batch") }))) })) },
                "post": {
                    "summary": "Batch user creation (csv or prefix), all or nothing",
                    "requestBody": { "required": true, "content": {
                        "multipart/form-data": { "schema": obj(json!({
                            "name": batch_name, "strategy": { "type": "string", "enum": ["csv", "prefix"] },
                            "csvfile": { "type": "string", "format": "binary", "description": format!("rows username,password,email,first_name,last_name; empty password = generated; at most {max_batch_users} users") },
                            "prefix": prefix, "number_of_users": count,
                            "expiration_date": expiration_date, "groupname": group_name,
                        }), &["name", "strategy"]) },
                        "application/json": { "schema": r("PrefixBatch") },
                        "application/x-www-form-urlencoded": { "schema": r("PrefixBatch") },
                    }},
                    "responses": errors(json!({ "201": ok("The batch and its users with generated passwords (shown once)", Some(r("Batch"))) }))
                }
            },
            "/api/v1/batch/{id}/": { "get": {
                "summary": "One batch with its users", "parameters": [p_id()],
                "responses": errors(json!({ "200": ok("Batch", Some(r("Batch"))), "404": err("No such batch") }))
            }},
            "/api/v1/batch/{id}/csv/": { "get": {
                "summary": "Credentials of a prefix batch as CSV", "parameters": [p_id()],
                "responses": errors(json!({ "200": { "description": "username,password rows", "content": { "text/csv": { "schema": s("string") } } }, "404": err("No such prefix batch"), "410": err("The credentials were purged (the detail says when)") }))
            }},
            "/api/v1/batch/{id}/pdf/": { "get": {
                "summary": "Credentials of a prefix batch as a printable PDF", "parameters": [p_id()],
                "responses": errors(json!({ "200": { "description": "PDF", "content": { "application/pdf": { "schema": { "type": "string", "format": "binary" } } } }, "404": err("No such prefix batch"), "410": err("The credentials were purged (the detail says when)") }))
            }},
            "/api/v1/token/": { "post": {
                "summary": "Login (obtain user auth token); no API token needed",
                "security": [],
                "requestBody": body_ref("Credentials"),
                "responses": {
                    "200": ok("The user's auth token (for the user API under account/; replaces the user's previous one) and a one-time RADIUS token", Some(obj(json!({
                        "username": s("string"), "token": s("string"),
                        "token_expires_at": { "type": "string", "format": "date-time", "description": "end of the auth token (--user-token-ttl)" },
                        "radius_token": s("string"),
                        "radius_token_expires_at": { "type": "string", "format": "date-time" },
                    }), &["username", "token", "token_expires_at", "radius_token", "radius_token_expires_at"]))),
                    "400": err("Missing or overlong field"),
                    "401": err("Invalid username or password (same answer for every cause)"),
                    "503": err("Database unavailable"),
                }
            }},
            "/api/v1/radiususers/": {
                "get": { "summary": "RADIUS users (filters: field or field__lookup)", "parameters": user_filters(),
                    "responses": errors(json!({ "414": { "description": "URI too long (the filters together exceed 64 KiB; answered by the HTTP layer, no body)" }, "200": ok("Tastypie-style page", Some(obj(json!({
                        "meta": obj(json!({ "limit": s("integer"), "offset": s("integer"), "total_count": s("integer"), "next": ns("string"), "previous": ns("string") }), &["limit", "offset", "total_count", "next", "previous"]),
                        "objects": { "type": "array", "items": r("RadiusUser") },
                    }), &["meta", "objects"]))) })) },
                "post": { "summary": "Create a RADIUS user (token_auth with ftm/ftk: a TOTP seed too, its URI in totp_uri)", "requestBody": body_ref("RadiusUserInput"),
                    "responses": errors(json!({ "201": ok("Created", Some(r("RadiusUser"))), "409": err("Duplicate username, or a TOTP user while radius-admin runs without --secret-file") })) }
            },
            "/api/v1/radiususers/{id}/": {
                "get": { "summary": "One RADIUS user", "parameters": [p_id()],
                    "responses": errors(json!({ "200": ok("User", Some(r("RadiusUser"))), "404": err("No such user") })) },
                "patch": { "summary": "Update fields; \"active\": true also unlocks a locked user", "parameters": [p_id()], "requestBody": body_ref("RadiusUserPatch"),
                    "responses": errors(json!({ "200": ok("User", Some(r("RadiusUser"))), "404": err("No such user") })) },
                "delete": { "summary": "Delete the user and its group memberships", "parameters": [p_id()],
                    "responses": errors(json!({ "204": { "description": "Deleted" }, "404": err("No such user") })) }
            },
            "/api/v1/radiususers/{id}/password/": { "post": {
                "summary": "Set the password, or reset it to a generated one (empty body); the NT hash follows --store-nt-hash", "parameters": [p_id()],
                "requestBody": { "required": false, "content": { "application/json": { "schema": closed(obj(json!({ "password": { "type": "string", "minLength": 8, "maxLength": 256 } }), &[])) } } },
                "responses": errors(json!({ "200": ok("Done; `password` holds a generated one", Some(obj(json!({ "detail": s("string"), "password": s("string") }), &["detail"]))), "404": err("No such user") }))
            }},
            "/api/v1/radiususers/{id}/sendoobtoken/": { "post": {
                "summary": "Send an out-of-band code by e-mail or SMS", "parameters": [p_id()],
                "requestBody": { "required": false, "content": { "application/json": { "schema": closed(obj(json!({ "channel": { "type": "string", "enum": ["email", "sms"] } }), &[])) } } },
                "responses": errors(json!({
                    "200": ok("Sent", Some(obj(json!({ "detail": s("string"), "channel": s("string"), "sender": s("string"), "expires_at": { "type": "string", "format": "date-time" } }), &["detail", "channel", "sender", "expires_at"]))),
                    "404": err("No such user"),
                    "429": err("Too many codes sent to this user lately (Retry-After), or too many invalid API tokens"),
                    "502": err("Delivery failed (the code is voided)"),
                }))
            }},
            "/api/v1/radiususers/{id}/totp/": { "post": {
                "summary": "A new TOTP seed for a token_type ftm/ftk user (the old one stops working); its otpauth:// URI is shown this once", "parameters": [p_id()],
                "requestBody": { "required": false, "content": { "application/json": { "schema": closed(obj(json!({}), &[])) } } },
                "responses": errors(json!({
                    "200": ok("Created", Some(obj(json!({ "detail": s("string"), "totp_uri": s("string") }), &["detail", "totp_uri"]))),
                    "400": err("Bad input, or the user's token_type is not ftm or ftk"),
                    "404": err("No such user"),
                    "409": err("radius-admin runs without --secret-file: the module could not read the seed"),
                }))
            }},
            "/api/v1/auth/": { "post": {
                "summary": "Authenticate a user: password and, for token_auth users, token_code (FortiAuthenticator's auth/); the lockout applies",
                "requestBody": body_ref("AuthInput"),
                "responses": errors(json!({
                    "200": ok("Password (and token code) right", Some(obj(json!({ "detail": s("string"), "username": s("string") }), &["detail", "username"]))),
                    "401": auth_refusal,
                }))
            }},
            "/api/v1/radiususers/{id}/verifyoobtoken/": { "post": {
                "summary": "Check a code sent by sendoobtoken (the user's newest live code; at most 5 attempts; a right code is used up)", "parameters": [p_id()],
                "requestBody": body_ref("OobCode"),
                "responses": errors(json!({
                    "200": ok("Verified", Some(obj(json!({ "detail": s("string") }), &["detail"]))),
                    "400": err("Bad input, a wrong code (`field` is code; the detail says how many attempts are left), or no live code"),
                    "404": err("No such user"),
                }))
            }},
            "/api/v1/account/session/": { "get": {
                "summary": "User API: the token owner's own sessions, newest first; Link header pagination",
                "security": [{ "user_token": [] }],
                "parameters": [
                    q("called_station_id", "exact", text(MAX_ATTR_BYTES)),
                    q("calling_station_id", "exact", text(MAX_ATTR_BYTES)),
                    q("start_time", "start time greater or equal (RFC 3339, date or epoch)", json!({ "type": "string", "format": "date-time" })),
                    q("stop_time", "stop time less or equal", json!({ "type": "string", "format": "date-time" })),
                    q("is_open", "stop_time is null", json!({ "type": "boolean" })),
                    q("page", "page number (1-based)", int(1, MAX_PAGE)),
                    q("page_size", "default 100", int(1, 1000)),
                ],
                "responses": user_errors(json!({ "200": ok("Sessions, newest first (Link and X-Total-Count headers; beyond 10,000 matches X-Total-Count is PostgreSQL's estimate and X-Total-Count-Estimated: true)", Some(json!({ "type": "array", "items": r("Accounting") }))) }))
            }},
            "/api/v1/account/usage/": { "get": {
                "summary": "User API: the token owner's totals over their sessions",
                "security": [{ "user_token": [] }],
                "parameters": [q("start_time", "only sessions started at or after (RFC 3339, date or epoch)", json!({ "type": "string", "format": "date-time" }))],
                "responses": user_errors(json!({ "200": ok("Totals", Some(obj(json!({
                    "username": s("string"), "sessions": s("integer"), "open_sessions": s("integer"),
                    "session_time": s("integer"), "input_octets": s("integer"), "output_octets": s("integer"),
                    "last_session_start": { "type": "string", "format": "date-time", "nullable": true },
                }), &["username", "sessions", "open_sessions", "session_time", "input_octets", "output_octets", "last_session_start"]))) }))
            }},
            "/api/v1/account/password/change/": { "post": {
                "summary": "User API: change the token owner's own password",
                "security": [{ "user_token": [] }],
                "requestBody": body_ref("PasswordChange"),
                "responses": user_errors(json!({
                    "200": ok("Changed", Some(obj(json!({ "detail": s("string") }), &["detail"]))),
                    "400": err("Bad input, or current_password is wrong (counts towards the lockout)"),
                }))
            }},
            "/api/v1/groups/": {
                "get": { "summary": "Groups (explicit and those found in the stock tables)",
                    "responses": errors(json!({ "200": ok("Groups", Some(json!({ "type": "array", "items": obj(json!({ "name": s("string"), "description": s("string"), "member_count": s("integer"), "check_count": s("integer"), "reply_count": s("integer") }), &["name"]) }))) })) },
                "post": { "summary": "Create a group with check/reply attributes", "requestBody": json_body(closed(obj(group_props(true), &["name"]))),
                    "responses": errors(json!({ "201": ok("Created", Some(r("Group"))) })) }
            },
            "/api/v1/groups/{name}/": {
                "get": { "summary": "One group", "parameters": [p_name("name")],
                    "responses": errors(json!({ "200": ok("Group", Some(r("Group"))), "404": err("No such group") })) },
                "patch": { "summary": "Update description; replace check and/or reply lists (the name is read-only)", "parameters": [p_name("name")],
                    "requestBody": json_body(closed(obj(group_props(false), &[]))),
                    "responses": errors(json!({ "200": ok("Group", Some(r("Group"))), "404": err("No such group") })) },
                "delete": { "summary": "Delete the group, its attributes and memberships", "parameters": [p_name("name")],
                    "responses": errors(json!({ "204": { "description": "Deleted" }, "404": err("No such group") })) }
            },
            "/api/v1/groups/{name}/members/": {
                "get": { "summary": "Members", "parameters": [p_name("name")],
                    "responses": errors(json!({ "200": ok("Members", Some(json!({ "type": "array", "items": member }))), "404": err("No such group") })) },
                "post": { "summary": "Add a member (radusergroup); the user must exist (profile or radcheck rows)", "parameters": [p_name("name")],
                    "requestBody": json_body(closed(obj(json!({ "username": username, "priority": int(0, i64::from(i32::MAX)) }), &["username"]))),
                    "responses": errors(json!({ "201": ok("Added", Some(obj(json!({ "username": s("string"), "groupname": s("string"), "priority": s("integer") }), &["username", "groupname", "priority"]))), "404": err("No such group"), "409": err("Already a member") })) }
            },
            "/api/v1/groups/{name}/members/{username}/": {
                "delete": { "summary": "Remove a member", "parameters": [p_name("name"), p_name("username")],
                    "responses": errors(json!({ "204": { "description": "Removed" }, "404": err("No such membership") })) }
            },
            "/api/v1/openapi.json": { "get": {
                "summary": "This document", "security": [],
                "responses": { "200": ok("OpenAPI 3 document", Some(json!({ "type": "object" }))) }
            }},
            "/metrics": metrics_path,
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "query_token": { "type": "apiKey", "in": "query", "name": "token" },
                "user_token": { "type": "http", "scheme": "bearer", "description": "a user's own auth token from token/ (header only)" },
            },
            "schemas": {
                "Error": obj(json!({ "detail": s("string"), "field": s("string") }), &["detail"]),
                "Credentials": obj(json!({
                    "username": { "type": "string", "minLength": 1, "maxLength": MAX_ATTR_BYTES },
                    "password": { "type": "string", "minLength": 1, "maxLength": MAX_LOGIN_PASSWORD_BYTES },
                }), &["username", "password"]),
                "AuthInput": closed(obj(json!({
                    "username": { "type": "string", "minLength": 1, "maxLength": MAX_ATTR_BYTES },
                    "password": { "type": "string", "minLength": 1, "maxLength": MAX_LOGIN_PASSWORD_BYTES },
                    "token_code": { "type": "string", "maxLength": crate::two_factor::MAX_TOKEN_CODE_BYTES, "description": "the 6-digit code (TOTP, or sent by e-mail/SMS); absent: e-mail/SMS users are sent one" },
                }), &["username", "password"])),
                "PostAuth": obj(json!({
                    "username": { "type": "string", "minLength": 1, "maxLength": MAX_ATTR_BYTES },
                    "password": { "type": "string", "maxLength": MAX_LOGIN_PASSWORD_BYTES, "description": "stored only for Access-Reject with --store-rejected-password" },
                    "reply": { "type": "string", "minLength": 1, "maxLength": 64, "example": "Access-Accept" },
                    "called_station_id": text(MAX_ATTR_BYTES), "calling_station_id": text(MAX_ATTR_BYTES),
                }), &["username", "reply"]),
                "Accounting": obj(Value::Object(acct_out), &["id", "session_id", "unique_id"]),
                "AccountingInput": obj(Value::Object(acct_in), &["status_type", "nas_ip_address", "session_id", "unique_id"]),
                "CheckAttribute": attr(&check_ops),
                "ReplyAttribute": attr(&reply_ops),
                "Batch": batch,
                "PrefixBatch": closed(obj(json!({
                    "name": batch_name, "strategy": { "type": "string", "enum": ["prefix"] },
                    "prefix": prefix, "number_of_users": count,
                    "expiration_date": expiration_date, "groupname": group_name,
                }), &["name", "strategy", "prefix", "number_of_users"])),
                "RadiusUser": obj(user_props, &["id", "username"]),
                "RadiusUserInput": closed(obj(user_in, &["username", "server_name", "server_address"])),
                "RadiusUserPatch": closed(obj(user_patch, &[])),
                "Group": group,
                "OobCode": closed(obj(json!({ "code": { "type": "string", "pattern": "^[0-9]{6}$" } }), &["code"])),
                "PasswordChange": closed(obj(json!({
                    "current_password": { "type": "string", "minLength": 1, "maxLength": MAX_LOGIN_PASSWORD_BYTES },
                    "new_password": { "type": "string", "minLength": 8, "maxLength": 256 },
                }), &["current_password", "new_password"])),
            }
        }
    })
}
