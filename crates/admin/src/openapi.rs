//! The OpenAPI 3.0 document of the API, written out by hand: inputs are
//! validated by hand (to name the field in every 400), so deriving schemas
//! from serde types would describe types the handlers do not use. A test
//! checks that the document parses as OpenAPI 3 and covers every route.

use axum::Json;
use serde_json::{json, Value};

pub async fn serve() -> Json<Value> {
    Json(document())
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

fn q(name: &str, desc: &str, ty: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": { "type": ty } })
}

fn p(name: &str, ty: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": ty } })
}

/// Common error answers of protected operations.
fn errors(mut responses: Value) -> Value {
    let m = responses.as_object_mut().expect("object");
    m.insert(
        "400".into(),
        err("Bad input; `field` names the field or parameter"),
    );
    m.insert("401".into(), err("No API token"));
    m.insert("403".into(), err("Invalid API token"));
    m.insert("503".into(), err("Database unavailable"));
    responses
}

fn user_filters() -> Vec<Value> {
    let mut v = vec![
        q("limit", "page size (1..1000, default 20)", "integer"),
        q("offset", "first row (default 0)", "integer"),
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
            v.push(q(&name, &desc, "string"));
        }
    }
    v.push(q(
        "active",
        "active as shown (false includes users locked after failed logins)",
        "boolean",
    ));
    v.push(q(
        "token_type",
        "ftk, ftm, ftc, email, sms or dual",
        "string",
    ));
    v
}

pub fn document() -> Value {
    let attr = obj(
        json!({ "attribute": s("string"), "op": s("string"), "value": s("string") }),
        &["attribute", "value"],
    );
    let user_props = json!({
        "id": { "type": "integer", "readOnly": true },
        "username": { "type": "string", "maxLength": 253, "description": "read-only after creation" },
        "server_name": { "type": "string", "description": "required when creating; read-only" },
        "server_address": { "type": "string", "description": "required when creating; read-only" },
        "email": { "type": "string", "format": "email", "nullable": true },
        "first_name": s("string"),
        "last_name": s("string"),
        "active": { "type": "boolean", "description": "false while the user is locked after failed logins (reason 2); PATCH true unlocks (deletes the lockout and its failures count)" },
        "reason": { "type": "integer", "minimum": 0, "maximum": 8, "nullable": true,
                    "description": "0 manually disabled, 1 account inactivity, 2 too many failed attempts (shown while locked), 3 account expiry, 4 password expiry, 5 FTM activation expiry, 6 revoked token, 7 usage limit exceeded, 8 pending administrator approval" },
        "mobile_number": { "type": "string", "maxLength": 25, "nullable": true, "description": "+<country_code>-<number>" },
        "token_auth": { "type": "boolean", "description": "true requires token_type" },
        "token_type": { "type": "string", "enum": ["ftk", "ftm", "ftc", "email", "sms", "dual"], "nullable": true },
        "token_serial": ns("string"),
        "ftm_act_method": { "type": "string", "enum": ["email", "sms"], "nullable": true },
        "fido": s("boolean"),
        "expiration": { "type": "string", "nullable": true, "description": "RFC 3339; on input also a date YYYY-MM-DD (valid through that day, UTC)" },
        "password": { "type": "string", "writeOnly": true, "minLength": 8, "description": "stored as Argon2id, plus its NT hash unless the server runs with --store-nt-hash false (then any older NT hash is cleared)" },
        "batch": { "type": "integer", "nullable": true, "readOnly": true },
        "has_password": { "type": "boolean", "readOnly": true },
        "has_nt_hash": { "type": "boolean", "readOnly": true, "description": "an NT hash is stored (MS-CHAP / PEAP-MSCHAPv2 possible); false with --store-nt-hash false or for a password set before it was stored" },
        "locked_until": { "type": "string", "format": "date-time", "nullable": true, "readOnly": true, "description": "end of the current lock; null when not locked, and also when locked until an administrator unlocks (then reason is 2)" },
        "failed_logins": { "type": "integer", "minimum": 0, "readOnly": true, "description": "consecutive failed logins counted by the module and authorize/ / token/" },
        "created_at": { "type": "string", "format": "date-time", "readOnly": true },
        "updated_at": { "type": "string", "format": "date-time", "readOnly": true },
    });
    let acct_fields = [
        "session_id",
        "unique_id",
        "username",
        "groupname",
        "realm",
        "nas_ip_address",
        "nas_port_id",
        "nas_port_type",
        "start_time",
        "update_time",
        "stop_time",
        "interval",
        "session_time",
        "authentication",
        "connection_info_start",
        "connection_info_stop",
        "input_octets",
        "output_octets",
        "called_station_id",
        "calling_station_id",
        "terminate_cause",
        "service_type",
        "framed_protocol",
        "framed_ip_address",
    ];
    let mut acct_props = serde_json::Map::new();
    for f in acct_fields {
        let t = match f {
            "interval" | "session_time" | "input_octets" | "output_octets" => ns("integer"),
            _ => ns("string"),
        };
        acct_props.insert(f.into(), t);
    }
    let acct = Value::Object(acct_props.clone());
    let mut acct_in = acct_props;
    acct_in.insert(
        "status_type".into(),
        json!({ "type": "string", "description": "Start, Interim-Update, Stop, Accounting-On, Accounting-Off or the numeric Acct-Status-Type" }),
    );
    let batch = obj(
        json!({
            "id": s("integer"), "name": s("string"), "strategy": s("string"),
            "prefix": ns("string"), "expiration_date": { "type": "string", "format": "date", "nullable": true },
            "created_at": s("string"), "user_count": s("integer"),
            "users": { "type": "array", "items": obj(json!({ "id": s("integer"), "username": s("string"), "password": ns("string") }), &[]) },
        }),
        &[],
    );
    let group = obj(
        json!({
            "name": s("string"), "description": s("string"),
            "check": { "type": "array", "items": r("Attribute") },
            "reply": { "type": "array", "items": r("Attribute") },
            "members": { "type": "array", "items": obj(json!({ "username": s("string"), "priority": s("integer") }), &[]) },
        }),
        &["name"],
    );
    let no_body = |code: &str, d: &str| json!({ code: { "description": d } });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "radius-admin",
            "version": radius_core::VERSION,
            "description": "Management API of rlm_rust. Send the API token as `Authorization: Bearer <token>` or `?token=<token>`; a missing token is answered 401, an invalid one 403. Errors are JSON `{\"detail\": ..., \"field\": ...}`."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, { "query_token": [] }],
        "paths": {
            "/api/v1/authorize/": { "post": {
                "summary": "Authorize a username and password (rlm_rest)",
                "requestBody": body_ref("Credentials"),
                "responses": errors(json!({
                    "200": ok("Accepted: control and reply attributes", Some(json!({ "type": "object", "additionalProperties": true, "example": { "control:Auth-Type": "Accept", "reply:Session-Timeout": "3600" } }))),
                    "401": { "description": "Rejected (empty body, or {\"control:Auth-Type\": \"Reject\"} with --authorize-reject json); also: no API token" },
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
                        q("username", "exact", "string"), q("called_station_id", "exact", "string"),
                        q("calling_station_id", "exact", "string"),
                        q("start_time", "start time greater or equal (RFC 3339, date or epoch)", "string"),
                        q("stop_time", "stop time less or equal", "string"),
                        q("is_open", "stop_time is null", "boolean"),
                        q("page", "page number (1-based)", "integer"),
                        q("page_size", "1..1000, default 100", "integer"),
                    ],
                    "responses": errors(json!({ "200": ok("Sessions (Link and X-Total-Count headers)", Some(json!({ "type": "array", "items": r("Accounting") }))) }))
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
                            "name": s("string"), "strategy": { "type": "string", "enum": ["csv", "prefix"] },
                            "csvfile": { "type": "string", "format": "binary", "description": "rows username,password,email,first_name,last_name; empty password = generated" },
                            "prefix": s("string"), "number_of_users": s("integer"),
                            "expiration_date": { "type": "string", "format": "date" }, "groupname": s("string"),
                        }), &["name", "strategy"]) },
                        "application/json": { "schema": r("PrefixBatch") },
                        "application/x-www-form-urlencoded": { "schema": r("PrefixBatch") },
                    }},
                    "responses": errors(json!({ "201": ok("The batch and its users with generated passwords (shown once)", Some(r("Batch"))) }))
                }
            },
            "/api/v1/batch/{id}/": { "get": {
                "summary": "One batch with its users", "parameters": [p("id", "integer")],
                "responses": errors(json!({ "200": ok("Batch", Some(r("Batch"))), "404": err("No such batch") }))
            }},
            "/api/v1/batch/{id}/csv/": { "get": {
                "summary": "Credentials of a prefix batch as CSV", "parameters": [p("id", "integer")],
                "responses": errors(json!({ "200": { "description": "username,password rows", "content": { "text/csv": { "schema": s("string") } } }, "404": err("No such prefix batch") }))
            }},
            "/api/v1/batch/{id}/pdf/": { "get": {
                "summary": "Credentials of a prefix batch as a printable PDF", "parameters": [p("id", "integer")],
                "responses": errors(json!({ "200": { "description": "PDF", "content": { "application/pdf": { "schema": { "type": "string", "format": "binary" } } } }, "404": err("No such prefix batch") }))
            }},
            "/api/v1/token/": { "post": {
                "summary": "Login (obtain user auth token); no API token needed",
                "security": [],
                "requestBody": body_ref("Credentials"),
                "responses": {
                    "200": ok("The user's auth token and a one-time RADIUS token", Some(obj(json!({
                        "username": s("string"), "token": s("string"), "radius_token": s("string"),
                        "radius_token_expires_at": { "type": "string", "format": "date-time" },
                    }), &[]))),
                    "400": err("Missing field"),
                    "401": err("Invalid username or password (same answer for every cause)"),
                    "503": err("Database unavailable"),
                }
            }},
            "/api/v1/radiususers/": {
                "get": { "summary": "RADIUS users (filters: field or field__lookup)", "parameters": user_filters(),
                    "responses": errors(json!({ "200": ok("Tastypie-style page", Some(obj(json!({
                        "meta": obj(json!({ "limit": s("integer"), "offset": s("integer"), "total_count": s("integer"), "next": ns("string"), "previous": ns("string") }), &[]),
                        "objects": { "type": "array", "items": r("RadiusUser") },
                    }), &[]))) })) },
                "post": { "summary": "Create a RADIUS user", "requestBody": body_ref("RadiusUser"),
                    "responses": errors(json!({ "201": ok("Created", Some(r("RadiusUser"))) })) }
            },
            "/api/v1/radiususers/{id}/": {
                "get": { "summary": "One RADIUS user", "parameters": [p("id", "integer")],
                    "responses": errors(json!({ "200": ok("User", Some(r("RadiusUser"))), "404": err("No such user") })) },
                "patch": { "summary": "Update fields; \"active\": true also unlocks a locked user", "parameters": [p("id", "integer")], "requestBody": body_ref("RadiusUser"),
                    "responses": errors(json!({ "200": ok("User", Some(r("RadiusUser"))), "404": err("No such user") })) },
                "delete": { "summary": "Delete the user and its group memberships", "parameters": [p("id", "integer")],
                    "responses": errors(json!({ "204": { "description": "Deleted" }, "404": err("No such user") })) }
            },
            "/api/v1/radiususers/{id}/password/": { "post": {
                "summary": "Set the password, or reset it to a generated one (empty body); the NT hash follows --store-nt-hash", "parameters": [p("id", "integer")],
                "requestBody": { "required": false, "content": { "application/json": { "schema": obj(json!({ "password": s("string") }), &[]) } } },
                "responses": errors(json!({ "200": ok("Done; `password` holds a generated one", Some(obj(json!({ "detail": s("string"), "password": s("string") }), &[]))), "404": err("No such user") }))
            }},
            "/api/v1/radiususers/{id}/sendoobtoken/": { "post": {
                "summary": "Send an out-of-band code by e-mail or SMS", "parameters": [p("id", "integer")],
                "requestBody": { "required": false, "content": { "application/json": { "schema": obj(json!({ "channel": { "type": "string", "enum": ["email", "sms"] } }), &[]) } } },
                "responses": errors(json!({
                    "200": ok("Sent", Some(obj(json!({ "detail": s("string"), "channel": s("string"), "sender": s("string"), "expires_at": s("string") }), &[]))),
                    "404": err("No such user"),
                    "502": err("Delivery failed (nothing stored)"),
                }))
            }},
            "/api/v1/groups/": {
                "get": { "summary": "Groups (explicit and those found in the stock tables)",
                    "responses": errors(json!({ "200": ok("Groups", Some(json!({ "type": "array", "items": obj(json!({ "name": s("string"), "description": s("string"), "member_count": s("integer"), "check_count": s("integer"), "reply_count": s("integer") }), &[]) }))) })) },
                "post": { "summary": "Create a group with check/reply attributes", "requestBody": { "required": true, "content": { "application/json": { "schema": r("Group") } } },
                    "responses": errors(json!({ "201": ok("Created", Some(r("Group"))) })) }
            },
            "/api/v1/groups/{name}/": {
                "get": { "summary": "One group", "parameters": [p("name", "string")],
                    "responses": errors(json!({ "200": ok("Group", Some(r("Group"))), "404": err("No such group") })) },
                "patch": { "summary": "Update description; replace check and/or reply lists", "parameters": [p("name", "string")],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": r("Group") } } },
                    "responses": errors(json!({ "200": ok("Group", Some(r("Group"))), "404": err("No such group") })) },
                "delete": { "summary": "Delete the group, its attributes and memberships", "parameters": [p("name", "string")],
                    "responses": errors(json!({ "204": { "description": "Deleted" }, "404": err("No such group") })) }
            },
            "/api/v1/groups/{name}/members/": {
                "get": { "summary": "Members", "parameters": [p("name", "string")],
                    "responses": errors(json!({ "200": ok("Members", Some(json!({ "type": "array", "items": obj(json!({ "username": s("string"), "priority": s("integer") }), &[]) }))), "404": err("No such group") })) },
                "post": { "summary": "Add a member (radusergroup)", "parameters": [p("name", "string")],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": obj(json!({ "username": s("string"), "priority": s("integer") }), &["username"]) } } },
                    "responses": errors(json!({ "201": ok("Added", None), "404": err("No such group"), "409": err("Already a member") })) }
            },
            "/api/v1/groups/{name}/members/{username}/": {
                "delete": { "summary": "Remove a member", "parameters": [p("name", "string"), p("username", "string")],
                    "responses": errors(json!({ "204": { "description": "Removed" }, "404": err("No such membership") })) }
            },
            "/api/v1/openapi.json": { "get": {
                "summary": "This document", "security": [],
                "responses": { "200": ok("OpenAPI 3 document", Some(json!({ "type": "object" }))) }
            }},
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "query_token": { "type": "apiKey", "in": "query", "name": "token" },
            },
            "schemas": {
                "Error": obj(json!({ "detail": s("string"), "field": s("string") }), &["detail"]),
                "Credentials": obj(json!({ "username": s("string"), "password": s("string") }), &["username", "password"]),
                "PostAuth": obj(json!({
                    "username": s("string"), "password": s("string"), "reply": s("string"),
                    "called_station_id": s("string"), "calling_station_id": s("string"),
                }), &["username", "reply"]),
                "Accounting": obj(acct, &[]),
                "AccountingInput": obj(Value::Object(acct_in), &["status_type", "nas_ip_address"]),
                "Attribute": attr,
                "Batch": batch,
                "PrefixBatch": obj(json!({
                    "name": s("string"), "strategy": { "type": "string", "enum": ["prefix"] },
                    "prefix": s("string"), "number_of_users": s("integer"),
                    "expiration_date": { "type": "string", "format": "date" }, "groupname": s("string"),
                }), &["name", "strategy", "prefix", "number_of_users"]),
                "RadiusUser": obj(user_props, &["username"]),
                "Group": group,
            }
        }
    })
}
