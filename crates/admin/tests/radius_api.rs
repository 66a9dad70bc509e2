//! The FreeRADIUS-facing endpoints, the API token, and the login endpoint,
//! against a real PostgreSQL.

mod common;

use std::sync::Arc;

use common::{setup, setup_with, Ctx, TOKEN};
use radius_core::accounting::{AcctOutcome, AcctRecord, AcctStatus};
use radius_core::postauth::PostAuthRecord;
use radius_core::store::Store;
use reqwest::Method;
use serde_json::json;

/// The module's write path: a core `Store` built from the module's items
/// with its group commits started (as rlm_rust's instantiate does), and
/// records committed from a plain thread (as radiusd's worker threads do).
struct ModuleStore {
    store: Arc<Store>,
    rt: Option<tokio::runtime::Runtime>,
}

impl ModuleStore {
    fn new(dsn: &str) -> ModuleStore {
        let cfg = radius_core::config::ModuleConfig::from_items([
            ("dsn", dsn),
            ("auto_migrate", "no"),
            ("cache_size", "0"),
        ])
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut store = Store::new(&cfg).unwrap();
        store.start_background(rt.handle(), 0, false).unwrap();
        ModuleStore {
            store: Arc::new(store),
            rt: Some(rt),
        }
    }

    async fn accounting(&self, status: AcctStatus, rec: AcctRecord) -> AcctOutcome {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.commit_accounting(status, rec))
            .await
            .unwrap()
            .unwrap()
    }

    async fn postauth(&self, rec: PostAuthRecord) {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.commit_postauth(rec))
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for ModuleStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Every column of the rows `where_` selects (one row each), as JSON, less
/// the columns named in `skip`.
async fn row_columns(
    ctx: &Ctx,
    table: &str,
    where_: &str,
    skip: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    let rows = ctx
        .db
        .query(
            &format!("SELECT to_jsonb(t)::text FROM {table} t WHERE {where_}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one {table} row where {where_}");
    let mut m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(rows[0].get::<_, &str>(0)).unwrap();
    for c in skip {
        assert!(m.remove(*c).is_some(), "{table} has no column {c}");
    }
    m
}

/// Asserts two rows equal column by column, naming every column that
/// differs.
fn assert_same_columns(
    what: &str,
    api: &serde_json::Map<String, serde_json::Value>,
    module: &serde_json::Map<String, serde_json::Value>,
) {
    assert_eq!(
        api.keys().collect::<Vec<_>>(),
        module.keys().collect::<Vec<_>>(),
        "{what}: column sets"
    );
    let diff: Vec<String> = api
        .iter()
        .filter(|(k, v)| module.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: API {v} / module {}", module[k]))
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: the API's row differs from the module's:\n{}",
        diff.join("\n")
    );
}

#[tokio::test]
async fn api_token_by_header_and_query_string() {
    let Some(ctx) = setup().await else { return };
    let path = "/api/v1/radiususers/";
    // Bearer header and ?token= both work.
    assert_eq!(ctx.get(path).await.status, 200);
    let r = ctx
        .send(ctx.http.get(ctx.url(&format!("{path}?token={TOKEN}"))))
        .await;
    assert_eq!(r.status, 200);
    // Missing: 401 JSON with a Bearer challenge.
    let r = ctx.send(ctx.http.get(ctx.url(path))).await;
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"].is_string());
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    // Invalid: 403 JSON, by header and by query string.
    let r = ctx
        .send(ctx.http.get(ctx.url(path)).bearer_auth("wrong"))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["detail"], "invalid token");
    let r = ctx
        .send(ctx.http.get(ctx.url(&format!("{path}?token=wrong"))))
        .await;
    assert_eq!(r.status, 403);
    let r = ctx
        .send(
            ctx.http
                .get(ctx.url(path))
                .header("authorization", "Basic eDp5"),
        )
        .await;
    assert_eq!(r.status, 403);
    // Tokens created like `token create` work until revoked; stored hashed.
    let pool = radius_admin::db::pool(&ctx.dsn, 1).unwrap();
    let (id, tok) = radius_admin::auth::create(&pool, "ci", &[], None)
        .await
        .map(|c| (c.id, c.token))
        .unwrap();
    // Valid once the copy in memory is older than the refresh time.
    tokio::time::sleep(radius_admin::auth::REFRESH_AFTER + std::time::Duration::from_millis(50))
        .await;
    let r = ctx
        .send(ctx.http.get(ctx.url(path)).bearer_auth(&tok))
        .await;
    assert_eq!(r.status, 200);
    let stored: Vec<u8> = ctx
        .db
        .query_one(
            "SELECT token_hash FROM rlm_rust_api_token WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, radius_core::account::hash_token(&tok).to_vec());
    let list = radius_admin::auth::list(&pool).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(radius_admin::auth::revoke(&pool, id).await.unwrap());
    assert!(!radius_admin::auth::revoke(&pool, id).await.unwrap());
    let r = ctx
        .send(ctx.http.get(ctx.url(path)).bearer_auth(&tok))
        .await;
    assert_eq!(r.status, 403);
    // The public endpoints need no token.
    let r = ctx
        .send(ctx.http.get(ctx.url("/api/v1/openapi.json")))
        .await;
    assert_eq!(r.status, 200);
    ctx.finish().await;
}

#[tokio::test]
async fn authorize_accepts_and_rejects_like_the_module() {
    let Some(ctx) = setup().await else { return };
    let id = ctx
        .user("alice", json!({ "password": "correct-horse" }))
        .await;
    // Form body (rlm_rest) and JSON body.
    let r = ctx.authorize("alice", "correct-horse").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["control:Auth-Type"], "Accept");
    let r = ctx
        .post_json(
            "/api/v1/authorize/",
            json!({ "username": "alice", "password": "correct-horse" }),
        )
        .await;
    assert_eq!(r.status, 200);
    // Reject: 401, empty body by default (django-freeradius).
    let r = ctx.authorize("alice", "wrong-password").await;
    assert_eq!(r.status, 401);
    assert!(r.body.is_empty());
    let r = ctx.authorize("nobody", "whatever").await;
    assert_eq!(r.status, 401);
    // Disabled with a reason: rejected, reason kept.
    let r = ctx
        .patch_json(
            &format!("/api/v1/radiususers/{id}/"),
            json!({ "active": false, "reason": 2 }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["reason"], 2);
    assert_eq!(ctx.authorize("alice", "correct-horse").await.status, 401);
    // Expired: rejected at login time.
    ctx.patch_json(
        &format!("/api/v1/radiususers/{id}/"),
        json!({ "active": true, "expiration": "2001-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(ctx.authorize("alice", "correct-horse").await.status, 401);
    ctx.patch_json(
        &format!("/api/v1/radiususers/{id}/"),
        json!({ "expiration": null }),
    )
    .await;
    assert_eq!(ctx.authorize("alice", "correct-horse").await.status, 200);
    // A stock-tables-only user works as in rlm_sql; its clear-text
    // credential is never echoed back, its reply items are.
    ctx.db
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES ('stock', 'Cleartext-Password', ':=', 'stock-pw');
             INSERT INTO radreply (username, attribute, op, value) VALUES ('stock', 'Reply-Message', ':=', 'Hello stock');
             INSERT INTO radreply (username, attribute, op, value) VALUES ('stock', 'Class', '+=', 'a');
             INSERT INTO radreply (username, attribute, op, value) VALUES ('stock', 'Class', '+=', 'b');",
        )
        .await
        .unwrap();
    let r = ctx.authorize("stock", "stock-pw").await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["reply:Reply-Message"], "Hello stock");
    assert_eq!(j["reply:Class"], json!(["a", "b"]));
    assert!(j.get("control:Cleartext-Password").is_none(), "{j}");
    assert_eq!(ctx.authorize("stock", "nope").await.status, 401);
    // Bad input names the field.
    ctx.post_form("/api/v1/authorize/", &[("username", "alice")])
        .await
        .assert_field_error(400, "password");
    ctx.post_json("/api/v1/authorize/", json!({ "password": "x" }))
        .await
        .assert_field_error(400, "username");
    ctx.post_json(
        "/api/v1/authorize/",
        json!({ "username": ["a"], "password": "x" }),
    )
    .await
    .assert_field_error(400, "username");
    ctx.finish().await;
}

#[tokio::test]
async fn authorize_reject_body_is_configurable() {
    let Some(ctx) = setup_with(|c| c.authorize_reject = radius_admin::RejectBody::Json).await
    else {
        return;
    };
    let id = ctx.user("bob", json!({ "password": "bob-password" })).await;
    let r = ctx.authorize("bob", "nope-nope").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({ "control:Auth-Type": "Reject" }));
    ctx.patch_json(
        &format!("/api/v1/radiususers/{id}/"),
        json!({ "active": false, "reason": 0 }),
    )
    .await;
    let r = ctx.authorize("bob", "bob-password").await;
    assert_eq!(r.status, 401);
    let msg = r.json()["reply:Reply-Message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("manually disabled"), "{msg}");
    ctx.finish().await;
}

#[tokio::test]
async fn postauth_records_without_a_body() {
    let Some(ctx) = setup().await else { return };
    let r = ctx
        .post_form(
            "/api/v1/postauth/",
            &[
                ("username", "carol"),
                ("password", "guess"),
                ("reply", "Access-Reject"),
                ("called_station_id", "AA-BB"),
                ("calling_station_id", "CC-DD"),
            ],
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.body.is_empty());
    let row = ctx
        .db
        .query_one(
            "SELECT username, pass, reply, calledstationid, callingstationid FROM radpostauth",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "carol");
    // Passwords are not stored unless the operator asks (as the module).
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, String>(2), "Access-Reject");
    assert_eq!(row.get::<_, String>(3), "AA-BB");
    assert_eq!(row.get::<_, String>(4), "CC-DD");
    // The module's row for the same Access-Reject (its post_auth builds
    // the record from the request; the password only with
    // store_rejected_password): equal column by column, the time aside.
    let module = ModuleStore::new(&ctx.dsn);
    let before: f64 = ctx
        .db
        .query_one("SELECT EXTRACT(EPOCH FROM now())::float8", &[])
        .await
        .unwrap()
        .get(0);
    module
        .postauth(PostAuthRecord {
            username: "carol".into(),
            pass: None,
            reply: "Access-Reject".into(),
            called_station_id: Some("AA-BB".into()),
            calling_station_id: Some("CC-DD".into()),
            authdate: radius_core::account::now(),
        })
        .await;
    let ids: Vec<i64> = ctx
        .db
        .query("SELECT id FROM radpostauth ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 2);
    let skip = ["id", "authdate"];
    assert_same_columns(
        "radpostauth",
        &row_columns(&ctx, "radpostauth", &format!("id = {}", ids[0]), &skip).await,
        &row_columns(&ctx, "radpostauth", &format!("id = {}", ids[1]), &skip).await,
    );
    // Both dated when written (the API's a moment before the module's).
    let dates: Vec<f64> = ctx
        .db
        .query(
            "SELECT EXTRACT(EPOCH FROM authdate)::float8 FROM radpostauth ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        dates[0] <= before + 1.0 && dates[0] > before - 60.0,
        "API authdate {} vs now {before}",
        dates[0]
    );
    assert!(
        dates[1] >= before - 1.0 && dates[1] < before + 60.0,
        "module authdate {} vs {before}",
        dates[1]
    );
    drop(module);
    ctx.post_form("/api/v1/postauth/", &[("username", "carol")])
        .await
        .assert_field_error(400, "reply");
    ctx.finish().await;
}

#[tokio::test]
async fn postauth_keeps_rejected_passwords_when_configured() {
    let Some(ctx) = setup_with(|c| c.store_rejected_password = true).await else {
        return;
    };
    for reply in ["Access-Reject", "Access-Accept"] {
        let r = ctx
            .post_json(
                "/api/v1/postauth/",
                json!({ "username": "dave", "password": "pw", "reply": reply }),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let rows = ctx
        .db
        .query("SELECT reply, pass FROM radpostauth ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, Option<String>>(1).as_deref(), Some("pw"));
    assert_eq!(rows[1].get::<_, Option<String>>(1), None);
    ctx.finish().await;
}

fn acct(status: &str, uid: &str, user: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut b = json!({
        "status_type": status,
        "session_id": format!("s-{uid}"),
        "unique_id": uid,
        "username": user,
        "realm": "",
        "nas_ip_address": "192.0.2.1",
        "nas_port_id": "1",
        "nas_port_type": "Ethernet",
        "authentication": "RADIUS",
        "called_station_id": "00-27-22-F3-FA-F1:hostname",
        "calling_station_id": "5c:7d:c1:72:a7:3b",
        "service_type": "Framed-User",
        "framed_protocol": "PPP",
        "framed_ip_address": "10.0.0.5",
    });
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            b[k] = v;
        }
    }
    b
}

/// The record rlm_rust's accounting builds from an Accounting-Request with
/// the attributes `acct()` sends (unique id `uid`): text as FreeRADIUS
/// prints it, "" for an absent attribute.
fn module_record(uid: &str) -> AcctRecord {
    AcctRecord {
        session_id: "s-u1".into(),
        unique_id: uid.into(),
        username: "eve".into(),
        nas_ip: "192.0.2.1".into(),
        nas_port_id: "1".into(),
        nas_port_type: "Ethernet".into(),
        authentic: "RADIUS".into(),
        called_station_id: "00-27-22-F3-FA-F1:hostname".into(),
        calling_station_id: "5c:7d:c1:72:a7:3b".into(),
        service_type: "Framed-User".into(),
        framed_protocol: "PPP".into(),
        framed_ip_address: "10.0.0.5".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn accounting_writes_radacct_rows() {
    let Some(ctx) = setup().await else { return };
    let path = "/api/v1/accounting/";
    // Each step is also written by the module's path for the same session
    // under another unique id; after each, the two rows must be equal in
    // every column but radacctid and acctuniqueid.
    let module = ModuleStore::new(&ctx.dsn);
    let skip = ["radacctid", "acctuniqueid"];
    let compare = |step: &'static str| {
        let ctx = &ctx;
        async move {
            assert_same_columns(
                step,
                &row_columns(ctx, "radacct", "acctuniqueid = 'u1'", &skip).await,
                &row_columns(ctx, "radacct", "acctuniqueid = 'u1-module'", &skip).await,
            );
        }
    };
    let r = ctx
        .post_json(
            path,
            acct(
                "Start",
                "u1",
                "eve",
                json!({ "start_time": "2024-03-10T14:44:17Z", "connection_info_start": "100Mbps" }),
            ),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.body.is_empty());
    // Event-Timestamp = start_time, Connect-Info.
    let start = AcctRecord {
        event_time: 1_710_081_857,
        connect_info: "100Mbps".into(),
        ..module_record("u1-module")
    };
    assert_eq!(
        module.accounting(AcctStatus::Start, start).await,
        AcctOutcome::Written
    );
    compare("after Start").await;
    let r = ctx
        .post_json(
            path,
            acct(
                "Interim-Update",
                "u1",
                "eve",
                json!({
                    "update_time": "2024-03-10T14:54:17Z", "session_time": 600,
                    "input_octets": 5_000_000_000u64, "output_octets": 1234,
                }),
            ),
        )
        .await;
    assert_eq!(r.status, 200);
    // 5_000_000_000 octets: 1 gigaword + 705_032_704.
    let interim = AcctRecord {
        event_time: 1_710_082_457,
        session_time: Some(600),
        input_octets: 705_032_704,
        input_gigawords: 1,
        output_octets: 1234,
        ..module_record("u1-module")
    };
    assert_eq!(
        module.accounting(AcctStatus::InterimUpdate, interim).await,
        AcctOutcome::Written
    );
    compare("after Interim-Update").await;
    // rlm_rest-style form body with the numeric status type works too.
    let r = ctx
        .post_form(
            path,
            &[
                ("status_type", "2"),
                ("session_id", "s-u1"),
                ("unique_id", "u1"),
                ("username", "eve"),
                ("nas_ip_address", "192.0.2.1"),
                ("stop_time", "2024-03-10 15:04:17"),
                ("session_time", "1200"),
                ("input_octets", "6000000000"),
                ("output_octets", "5000"),
                ("terminate_cause", "User-Request"),
                ("connection_info_stop", "done"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    // Only the attributes the form carries.
    let stop = AcctRecord {
        session_id: "s-u1".into(),
        unique_id: "u1-module".into(),
        username: "eve".into(),
        nas_ip: "192.0.2.1".into(),
        event_time: 1_710_083_057,
        session_time: Some(1200),
        input_octets: 1_705_032_704,
        input_gigawords: 1,
        output_octets: 5000,
        terminate_cause: "User-Request".into(),
        connect_info: "done".into(),
        ..Default::default()
    };
    assert_eq!(
        module.accounting(AcctStatus::Stop, stop).await,
        AcctOutcome::Written
    );
    compare("after Stop").await;
    drop(module);
    let row = ctx
        .db
        .query_one(
            "SELECT acctsessiontime, acctinputoctets, acctoutputoctets, acctterminatecause, \
             EXTRACT(EPOCH FROM acctstarttime)::bigint, EXTRACT(EPOCH FROM acctstoptime)::bigint, \
             connectinfo_start, connectinfo_stop, host(nasipaddress), host(framedipaddress) \
             FROM radacct WHERE acctuniqueid = 'u1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1200);
    assert_eq!(row.get::<_, i64>(1), 6_000_000_000);
    assert_eq!(row.get::<_, i64>(2), 5000);
    assert_eq!(row.get::<_, String>(3), "User-Request");
    assert_eq!(row.get::<_, i64>(4), 1_710_081_857);
    assert_eq!(row.get::<_, i64>(5), 1_710_083_057);
    assert_eq!(row.get::<_, String>(6), "100Mbps");
    assert_eq!(row.get::<_, String>(7), "done");
    assert_eq!(row.get::<_, String>(8), "192.0.2.1");
    assert_eq!(ctx.count("SELECT count(*) FROM radacct").await, 2);
    // Bad input names the field.
    ctx.post_json(path, json!({ "unique_id": "x" }))
        .await
        .assert_field_error(400, "status_type");
    ctx.post_json(path, acct("Bogus", "u2", "eve", json!({})))
        .await
        .assert_field_error(400, "status_type");
    ctx.post_json(
        path,
        acct(
            "Start",
            "u2",
            "eve",
            json!({ "nas_ip_address": "not-an-ip" }),
        ),
    )
    .await
    .assert_field_error(400, "nas_ip_address");
    ctx.post_json(
        path,
        acct(
            "Start",
            "u2",
            "eve",
            json!({ "framed_ip_address": "300.1.1.1" }),
        ),
    )
    .await
    .assert_field_error(400, "framed_ip_address");
    ctx.post_json(
        path,
        acct("Start", "u2", "eve", json!({ "start_time": "yesterday" })),
    )
    .await
    .assert_field_error(400, "start_time");
    ctx.post_json(
        path,
        acct("Start", "u2", "eve", json!({ "input_octets": -5 })),
    )
    .await
    .assert_field_error(400, "input_octets");
    ctx.post_json(path, acct("Start", "", "eve", json!({})))
        .await
        .assert_field_error(400, "unique_id");
    ctx.post_json(
        path,
        acct("Start", "u2", "eve", json!({ "session_id": null })),
    )
    .await
    .assert_field_error(400, "session_id");
    assert_eq!(ctx.count("SELECT count(*) FROM radacct").await, 2);
    ctx.finish().await;
}

/// The unique ids of a GET accounting/ page, in its order.
fn unique_ids(r: &common::Resp) -> Vec<String> {
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["unique_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn accounting_list_filters_and_pagination() {
    let Some(ctx) = setup().await else { return };
    let path = "/api/v1/accounting/";
    // Five sessions an hour apart; the last two are open.
    for i in 0..5 {
        let user = if i % 2 == 0 { "even" } else { "odd" };
        let start = format!("2024-01-0{}T10:00:00Z", i + 1);
        let r = ctx
            .post_json(
                path,
                acct(
                    "Start",
                    &format!("k{i}"),
                    user,
                    json!({
                        "start_time": start,
                        "called_station_id": format!("called-{i}"),
                        "calling_station_id": format!("calling-{i}"),
                    }),
                ),
            )
            .await;
        assert_eq!(r.status, 201);
        if i < 3 {
            let stop = format!("2024-01-0{}T11:00:00Z", i + 1);
            let r = ctx
                .post_json(
                    path,
                    acct("Stop", &format!("k{i}"), user, json!({ "stop_time": stop })),
                )
                .await;
            assert_eq!(r.status, 200);
        }
    }
    let ids = unique_ids;
    // Newest first, all 24 document fields present.
    let r = ctx.get(path).await;
    assert_eq!(r.status, 200);
    assert_eq!(ids(&r), ["k4", "k3", "k2", "k1", "k0"]);
    let first = &r.json()[4];
    for f in [
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
    ] {
        assert!(first.get(f).is_some(), "missing {f} in {first}");
    }
    assert_eq!(first["start_time"], "2024-01-01T10:00:00.000000Z");
    assert_eq!(first["stop_time"], "2024-01-01T11:00:00.000000Z");
    assert_eq!(first["nas_ip_address"], "192.0.2.1");
    assert_eq!(r.headers["x-total-count"], "5");
    assert_eq!(
        ids(&ctx.get(&format!("{path}?username=odd")).await),
        ["k3", "k1"]
    );
    assert_eq!(
        ids(&ctx.get(&format!("{path}?called_station_id=called-2")).await),
        ["k2"]
    );
    assert_eq!(
        ids(&ctx
            .get(&format!("{path}?calling_station_id=calling-4"))
            .await),
        ["k4"]
    );
    assert_eq!(
        ids(&ctx
            .get(&format!("{path}?start_time=2024-01-03T10:00:00Z"))
            .await),
        ["k4", "k3", "k2"]
    );
    assert_eq!(
        ids(&ctx
            .get(&format!("{path}?stop_time=2024-01-02T11:00:00Z"))
            .await),
        ["k1", "k0"]
    );
    assert_eq!(
        ids(&ctx.get(&format!("{path}?is_open=true")).await),
        ["k4", "k3"]
    );
    assert_eq!(
        ids(&ctx.get(&format!("{path}?is_open=false")).await),
        ["k2", "k1", "k0"]
    );
    assert_eq!(
        ids(&ctx
            .get(&format!(
                "{path}?username=even&is_open=false&start_time=2024-01-02"
            ))
            .await),
        ["k2"]
    );
    // Pages of two with a Link header.
    let r = ctx.get(&format!("{path}?page_size=2")).await;
    assert_eq!(ids(&r), ["k4", "k3"]);
    let link = r.headers["link"].to_str().unwrap().to_string();
    assert!(link.contains("page=2&page_size=2>; rel=\"next\""), "{link}");
    assert!(link.contains("page=3&page_size=2>; rel=\"last\""), "{link}");
    let r = ctx.get(&format!("{path}?page_size=2&page=3")).await;
    assert_eq!(ids(&r), ["k0"]);
    let link = r.headers["link"].to_str().unwrap().to_string();
    assert!(
        !link.contains("rel=\"next\"") && link.contains("rel=\"prev\""),
        "{link}"
    );
    // Unparsable filters: 400 naming the parameter.
    for (q, field) in [
        ("start_time=soon", "start_time"),
        ("stop_time=2024-13-01", "stop_time"),
        ("is_open=maybe", "is_open"),
        ("page_size=0", "page_size"),
        ("page_size=abc", "page_size"),
        ("page=0", "page"),
        ("colour=red", "colour"),
    ] {
        ctx.get(&format!("{path}?{q}"))
            .await
            .assert_field_error(400, field);
    }
    ctx.finish().await;
}

/// Counting every match on every page costs a scan of all of them on a
/// radacct of millions: up to 10,000 the total is exact, beyond that it is
/// PostgreSQL's estimate, and the answer says so.
#[tokio::test]
async fn accounting_totals_beyond_ten_thousand_are_estimated() {
    let Some(ctx) = setup().await else { return };
    let path = "/api/v1/accounting/";
    ctx.db
        .batch_execute(
            "INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, \
               acctstarttime, acctstoptime, callingstationid) \
             SELECT 's' || i, 'u' || i, CASE WHEN i % 1000 = 0 THEN 'few' ELSE 'many' END, \
               '192.0.2.1', timestamptz '2024-01-01' + i * interval '1 minute', \
               CASE WHEN i % 2 = 0 THEN timestamptz '2024-01-01' + i * interval '1 minute' \
                 + interval '30 seconds' END, 'mac-' || (i % 3) \
             FROM generate_series(1, 12000) i; ANALYZE radacct;",
        )
        .await
        .unwrap();
    // Beyond the exact range: estimated, and flagged.
    let r = ctx.get(&format!("{path}?page_size=5")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-total-count-estimated"], "true");
    let total: i64 = r.headers["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (10_001..=14_000).contains(&total),
        "an estimate of 12,000 rows: {total}"
    );
    // Newest first, ties broken by id, whatever counted the total.
    let got = unique_ids(&r);
    assert_eq!(got, ["u12000", "u11999", "u11998", "u11997", "u11996"]);
    // Within it: exact, not flagged (12 sessions of "few"; 3,239 closed
    // by a stop time; 4,000 of one MAC).
    for (q, want) in [
        ("username=few", 12),
        ("username=few&is_open=false", 12),
        ("calling_station_id=mac-1", 4000),
        ("stop_time=2024-01-05T12:00:00Z", 3239),
    ] {
        let r = ctx.get(&format!("{path}?{q}&page_size=1")).await;
        assert_eq!(r.status, 200, "{q}");
        assert_eq!(r.headers["x-total-count"], want.to_string().as_str(), "{q}");
        assert!(r.headers.get("x-total-count-estimated").is_none(), "{q}");
    }
    // The stop-time filter lists exactly the sessions stopped by then.
    let r = ctx
        .get(&format!(
            "{path}?stop_time=2024-01-01T00:10:00Z&page_size=100"
        ))
        .await;
    let got = unique_ids(&r);
    assert_eq!(got, ["u8", "u6", "u4", "u2"]);
    ctx.finish().await;
}

#[tokio::test]
async fn login_returns_tokens_and_the_radius_token_works_once() {
    let Some(ctx) = setup().await else { return };
    ctx.user("frank", json!({ "password": "frank-password" }))
        .await;
    // No API token needed.
    let r = ctx
        .send(
            ctx.http
                .post(ctx.url("/api/v1/token/"))
                .form(&[("username", "frank"), ("password", "frank-password")]),
        )
        .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    let radius_token = j["radius_token"].as_str().unwrap().to_string();
    assert_eq!(j["token"].as_str().unwrap().len(), 48);
    assert_eq!(
        ctx.count("SELECT count(*) FROM rlm_rust_user_token").await,
        1
    );
    // The one-time token is a password exactly once.
    assert_eq!(ctx.authorize("frank", &radius_token).await.status, 200);
    assert_eq!(ctx.authorize("frank", &radius_token).await.status, 401);
    assert_eq!(ctx.authorize("frank", "frank-password").await.status, 200);
    // Same answer for a wrong password and an unknown user.
    let wrong = ctx
        .send(ctx.http.post(ctx.url("/api/v1/token/")).json(&json!({
            "username": "frank", "password": "bad-password"
        })))
        .await;
    let unknown = ctx
        .send(ctx.http.post(ctx.url("/api/v1/token/")).json(&json!({
            "username": "nobody", "password": "bad-password"
        })))
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    let r = ctx
        .send(
            ctx.http
                .post(ctx.url("/api/v1/token/"))
                .json(&json!({ "username": "frank" })),
        )
        .await;
    r.assert_field_error(400, "password");
    // A stock-only user gets tokens too (a hash-less profile is created).
    ctx.db
        .batch_execute("INSERT INTO radcheck (username, attribute, op, value) VALUES ('gina', 'Cleartext-Password', ':=', 'gina-pw')")
        .await
        .unwrap();
    let r = ctx
        .send(
            ctx.http
                .request(Method::POST, ctx.url("/api/v1/token/"))
                .form(&[("username", "gina"), ("password", "gina-pw")]),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(ctx.authorize("gina", "gina-pw").await.status, 200);
    ctx.finish().await;
}
