//! Issue 14's second part: scoped, expiring API tokens with last_used_at;
//! the user API behind the user auth token; out-of-band codes that are
//! verified (attempts, expiry, per-user send limit); `housekeeping`
//! purging batch credentials; `dead-letters list` / `replay`.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{setup, setup_with, Ctx, TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_radius-admin");

async fn new_token(
    ctx: &Ctx,
    scopes: &[radius_admin::auth::Scope],
    life: Option<Duration>,
) -> String {
    let pool = radius_admin::db::pool(&ctx.dsn, 1).unwrap();
    let c = radius_admin::auth::create(&pool, "t", scopes, life)
        .await
        .unwrap();
    c.token
}

async fn with(ctx: &Ctx, tok: &str, m: Method, path: &str, body: Option<Value>) -> u16 {
    let mut req = ctx.http.request(m, ctx.url(path)).bearer_auth(tok);
    if let Some(b) = body {
        req = req.json(&b);
    }
    ctx.send(req).await.status.as_u16()
}

fn postauth() -> Value {
    json!({ "username": "nas-user", "reply": "Access-Accept" })
}

#[tokio::test]
async fn api_token_scopes_expiry_and_last_used() {
    use radius_admin::auth::Scope;
    let Some(ctx) = setup().await else { return };
    let radius = new_token(&ctx, &[Scope::Radius], None).await;
    let read = new_token(&ctx, &[Scope::Read], None).await;
    let write = new_token(&ctx, &[Scope::Write], None).await;
    let all = new_token(&ctx, &[], None).await;
    let short = new_token(&ctx, &[Scope::Read], Some(Duration::from_secs(2))).await;
    tokio::time::sleep(radius_admin::auth::REFRESH_AFTER + Duration::from_millis(50)).await;
    let users = "/api/v1/radiususers/";
    let new_user =
        |n: &str| json!({ "username": n, "server_name": "r", "server_address": "192.0.2.1" });

    // radius: the FreeRADIUS-facing endpoints only.
    assert_eq!(
        with(
            &ctx,
            &radius,
            Method::POST,
            "/api/v1/postauth/",
            Some(postauth())
        )
        .await,
        201
    );
    let acct = json!({ "status_type": "Start", "nas_ip_address": "192.0.2.1", "session_id": "s1", "unique_id": "u1", "username": "nas-user" });
    assert_eq!(
        with(
            &ctx,
            &radius,
            Method::POST,
            "/api/v1/accounting/",
            Some(acct)
        )
        .await,
        201
    );
    let r = ctx
        .send(ctx.http.get(ctx.url(users)).bearer_auth(&radius))
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("'read'"),
        "{}",
        r.json()
    );
    assert_eq!(
        with(&ctx, &radius, Method::POST, users, Some(new_user("r1"))).await,
        403
    );
    assert_eq!(
        with(&ctx, &radius, Method::GET, "/api/v1/accounting/", None).await,
        403
    );
    assert_eq!(
        with(
            &ctx,
            &radius,
            Method::POST,
            "/api/v1/groups/",
            Some(json!({ "name": "g" }))
        )
        .await,
        403
    );
    // read: GETs only.
    assert_eq!(with(&ctx, &read, Method::GET, users, None).await, 200);
    assert_eq!(
        with(&ctx, &read, Method::GET, "/api/v1/accounting/", None).await,
        200
    );
    assert_eq!(
        with(&ctx, &read, Method::POST, users, Some(new_user("r2"))).await,
        403
    );
    assert_eq!(
        with(
            &ctx,
            &read,
            Method::POST,
            "/api/v1/postauth/",
            Some(postauth())
        )
        .await,
        403
    );
    // write: management (read included), not the FreeRADIUS endpoints.
    assert_eq!(
        with(&ctx, &write, Method::POST, users, Some(new_user("w1"))).await,
        201
    );
    assert_eq!(with(&ctx, &write, Method::GET, users, None).await, 200);
    assert_eq!(
        with(
            &ctx,
            &write,
            Method::POST,
            "/api/v1/postauth/",
            Some(postauth())
        )
        .await,
        403
    );
    // No scope given: all three (as the migration gives existing tokens).
    assert_eq!(
        with(
            &ctx,
            &all,
            Method::POST,
            "/api/v1/postauth/",
            Some(postauth())
        )
        .await,
        201
    );
    assert_eq!(
        with(&ctx, &all, Method::POST, users, Some(new_user("a1"))).await,
        201
    );
    ctx.db
        .execute(
            "INSERT INTO rlm_rust_api_token (name, token_hash) VALUES ('old', '\\x00')",
            &[],
        )
        .await
        .unwrap();
    let pool = radius_admin::db::pool(&ctx.dsn, 1).unwrap();
    let list = radius_admin::auth::list(&pool).await.unwrap();
    let old = list.iter().find(|t| t.name == "old").unwrap();
    assert_eq!(old.scopes, ["read", "write", "radius"]);
    assert_eq!(list[0].scopes, ["radius"]);
    assert_eq!(list[3].scopes, ["radius", "read", "write"]);

    // last_used_at: set on use, written at most once a minute.
    let used = |n: i64| {
        let db = &ctx.db;
        async move {
            db.query_one(
                "SELECT last_used_at::text FROM rlm_rust_api_token ORDER BY id OFFSET $1 LIMIT 1",
                &[&n],
            )
            .await
            .unwrap()
            .get::<_, Option<String>>(0)
        }
    };
    let first = used(1).await.expect("read token's last_used_at");
    assert_eq!(with(&ctx, &read, Method::GET, users, None).await, 200);
    assert_eq!(
        used(1).await.unwrap(),
        first,
        "written again within a minute"
    );
    assert_eq!(used(5).await, None, "the unused 'old' token");

    // Expiry: works until its end, then 403 (and shows as not live).
    assert_eq!(with(&ctx, &short, Method::GET, users, None).await, 200);
    let l = radius_admin::auth::list(&pool).await.unwrap();
    assert!(l[4].expires_at.is_some() && l[4].live);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(with(&ctx, &short, Method::GET, users, None).await, 403);
    let l = radius_admin::auth::list(&pool).await.unwrap();
    assert!(!l[4].live && l[4].revoked_at.is_none());

    // The CLI: token create --scope --expires-in, token list.
    let out = Command::new(BIN)
        .args([
            "--dsn",
            &ctx.dsn,
            "token",
            "create",
            "--name",
            "nas1",
            "--scope",
            "radius",
            "--expires-in",
            "30d",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["--dsn", &ctx.dsn, "token", "list"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let nas = listing
        .lines()
        .find(|l| l.contains("\tnas1\t"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(nas.contains("\tradius\tactive\t"), "{nas}");
    assert!(!nas.contains("never\tnever"), "an expiry is shown: {nas}");
    assert!(listing.contains("\texpired\t"), "{listing}");
    let bad = Command::new(BIN)
        .args(["--dsn", &ctx.dsn, "token", "create", "--scope", "admin"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    ctx.finish().await;
}

#[test]
fn lifetimes_parse() {
    use radius_admin::auth::parse_lifetime as p;
    assert_eq!(p("3600").unwrap(), Duration::from_secs(3600));
    assert_eq!(p("90m").unwrap(), Duration::from_secs(5400));
    assert_eq!(p("30d").unwrap(), Duration::from_secs(30 * 86400));
    assert_eq!(p("2w").unwrap(), Duration::from_secs(14 * 86400));
    for bad in [
        "",
        "0",
        "-1",
        "1y",
        "d",
        "99999999999999999999",
        "101000000w",
    ] {
        assert!(p(bad).is_err(), "{bad}");
    }
}

async fn login(ctx: &Ctx, user: &str, pw: &str) -> Value {
    let r = ctx
        .send(
            ctx.http
                .post(ctx.url("/api/v1/token/"))
                .form(&[("username", user), ("password", pw)]),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn start(ctx: &Ctx, user: &str, sid: &str, time: i64, octets: i64) {
    let unique = format!("{user}-{sid}");
    let r = ctx
        .post_json(
            "/api/v1/accounting/",
            json!({ "status_type": "Start", "nas_ip_address": "192.0.2.1", "session_id": sid,
                    "unique_id": unique, "username": user }),
        )
        .await;
    assert_eq!(r.status, 201);
    // The counters an Interim-Update would bring.
    ctx.db
        .execute(
            "UPDATE radacct SET acctsessiontime = $2, acctinputoctets = $3, \
             acctoutputoctets = $3::bigint * 2 WHERE acctuniqueid = $1",
            &[&unique, &time, &octets],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn user_tokens_open_the_users_own_sessions_usage_and_password_only() {
    let Some(ctx) = setup_with(|c| c.user_token_ttl = Duration::from_secs(600)).await else {
        return;
    };
    let uid = ctx
        .user("ursula", json!({ "password": "ursula-password" }))
        .await;
    ctx.user("victor", json!({ "password": "victor-password" }))
        .await;
    start(&ctx, "ursula", "a", 10, 100).await;
    start(&ctx, "ursula", "b", 20, 1000).await;
    start(&ctx, "victor", "c", 99, 5).await;

    let first = login(&ctx, "ursula", "ursula-password").await;
    let t1 = first["token"].as_str().unwrap().to_string();
    let life: f64 = ctx
        .db
        .query_one(
            "SELECT EXTRACT(EPOCH FROM expires_at - created_at)::float8 FROM rlm_rust_user_token",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(life, 600.0);
    assert!(first["token_expires_at"].is_string());
    let get = |tok: String, path: &'static str| {
        let ctx = &ctx;
        async move { ctx.send(ctx.http.get(ctx.url(path)).bearer_auth(tok)).await }
    };
    let r = get(t1.clone(), "/api/v1/account/session/").await;
    assert_eq!(r.status, 200);
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["ursula", "ursula"]);
    assert_eq!(r.headers["x-total-count"], "2");
    // username is not a filter here: no way to read another user's.
    let r = get(t1.clone(), "/api/v1/account/session/?username=victor").await;
    r.assert_field_error(400, "username");
    let r = get(t1.clone(), "/api/v1/account/usage/").await;
    assert_eq!(r.status, 200);
    let u = r.json();
    assert_eq!(
        (
            u["username"].as_str(),
            u["sessions"].as_i64(),
            u["open_sessions"].as_i64(),
            u["session_time"].as_i64(),
            u["input_octets"].as_i64(),
            u["output_octets"].as_i64()
        ),
        (
            Some("ursula"),
            Some(2),
            Some(2),
            Some(30),
            Some(1100),
            Some(2200)
        )
    );
    // Nothing else: the management API refuses it, and API tokens do not
    // open the user API; the query string does not carry a user token.
    assert_eq!(get(t1.clone(), "/api/v1/radiususers/").await.status, 403);
    assert_eq!(get(t1.clone(), "/api/v1/accounting/").await.status, 403);
    assert_eq!(
        ctx.send(
            ctx.http
                .post(ctx.url("/api/v1/authorize/"))
                .bearer_auth(&t1)
                .form(&[("username", "ursula"), ("password", "ursula-password")])
        )
        .await
        .status,
        403
    );
    assert_eq!(
        get(TOKEN.to_string(), "/api/v1/account/usage/")
            .await
            .status,
        403
    );
    assert_eq!(
        ctx.send(ctx.http.get(ctx.url("/api/v1/account/usage/")))
            .await
            .status,
        401
    );
    assert_eq!(
        ctx.send(
            ctx.http
                .get(ctx.url(&format!("/api/v1/account/usage/?token={t1}")))
        )
        .await
        .status,
        401
    );

    // One login replaces the last: the first token stops working.
    let t2 = login(&ctx, "ursula", "ursula-password").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(t1.clone(), "/api/v1/account/usage/").await.status, 403);
    assert_eq!(get(t2.clone(), "/api/v1/account/usage/").await.status, 200);
    assert_eq!(
        ctx.count("SELECT count(*) FROM rlm_rust_user_token").await,
        1
    );

    // Own password: the current one is checked.
    let change = |tok: String, body: Value| {
        let ctx = &ctx;
        async move {
            ctx.send(
                ctx.http
                    .post(ctx.url("/api/v1/account/password/change/"))
                    .bearer_auth(tok)
                    .json(&body),
            )
            .await
        }
    };
    change(
        t2.clone(),
        json!({ "current_password": "wrong-password", "new_password": "ursula-new-pw" }),
    )
    .await
    .assert_field_error(400, "current_password");
    change(
        t2.clone(),
        json!({ "current_password": "ursula-password", "new_password": "short" }),
    )
    .await
    .assert_field_error(400, "new_password");
    let r = change(
        t2.clone(),
        json!({ "current_password": "ursula-password", "new_password": "ursula-new-pw" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(ctx.authorize("ursula", "ursula-new-pw").await.status, 200);
    assert_eq!(ctx.authorize("ursula", "ursula-password").await.status, 401);
    assert_eq!(get(t2.clone(), "/api/v1/account/usage/").await.status, 200);

    // Expired: refused. A disabled account's token: refused.
    ctx.db
        .execute(
            "UPDATE rlm_rust_user_token SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(get(t2.clone(), "/api/v1/account/usage/").await.status, 403);
    let t3 = login(&ctx, "ursula", "ursula-new-pw").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(t3.clone(), "/api/v1/account/session/").await.status,
        200
    );
    let r = ctx
        .patch_json(
            &format!("/api/v1/radiususers/{uid}/"),
            json!({ "active": false }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(t3.clone(), "/api/v1/account/session/").await.status,
        403
    );
    ctx.patch_json(
        &format!("/api/v1/radiususers/{uid}/"),
        json!({ "active": true }),
    )
    .await;
    assert_eq!(
        get(t3.clone(), "/api/v1/account/session/").await.status,
        200
    );
    // An administrator's password reset ends it too.
    let r = ctx
        .post_json(&format!("/api/v1/radiususers/{uid}/password/"), json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(get(t3, "/api/v1/account/session/").await.status, 403);
    ctx.finish().await;
}

async fn fake_gateway() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let s = s2.clone();
            async move {
                s.lock().unwrap().push(v);
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, seen)
}

fn last_code(seen: &Mutex<Vec<Value>>) -> String {
    let v = seen.lock().unwrap();
    let m = v.last().unwrap()["message"].as_str().unwrap().to_string();
    m.split_whitespace()
        .map(|w| w.trim_end_matches('.'))
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn oob_codes_take_five_attempts_expire_and_are_rate_limited() {
    let (url, seen) = fake_gateway().await;
    let Some(ctx) = setup_with(|c| {
        c.senders.sms = Some(radius_admin::oob::SmsGateway::new(&url, None).unwrap());
        c.oob_send_limit = 3;
    })
    .await
    else {
        return;
    };
    let id = ctx
        .user("wes", json!({ "mobile_number": "+1-5550111" }))
        .await;
    let send_path = format!("/api/v1/radiususers/{id}/sendoobtoken/");
    let verify_path = format!("/api/v1/radiususers/{id}/verifyoobtoken/");
    let send = || ctx.post_json(&send_path, json!({ "channel": "sms" }));
    let verify = |c: &str| ctx.post_json(&verify_path, json!({ "code": c }));
    // Nothing sent yet: nothing to check.
    verify("123456").await.assert_field_error(400, "code");
    verify("12345").await.assert_field_error(400, "code");
    assert_eq!(
        ctx.post_json(
            "/api/v1/radiususers/999999/verifyoobtoken/",
            json!({ "code": "123456" })
        )
        .await
        .status,
        404
    );

    assert_eq!(send().await.status, 200);
    let code = last_code(&seen);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for left in (0..5).rev() {
        let r = verify(wrong).await;
        r.assert_field_error(400, "code");
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} attempts left")),
            "{}",
            r.json()
        );
    }
    // The sixth try finds no code, even the right one.
    let r = verify(&code).await;
    r.assert_field_error(400, "code");
    assert!(
        r.json()["detail"].as_str().unwrap().contains("no code"),
        "{}",
        r.json()
    );

    // A new code; past its expiry it is refused.
    assert_eq!(send().await.status, 200);
    let code = last_code(&seen);
    ctx.db
        .execute(
            "UPDATE rlm_rust_oob_code SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    verify(&code).await.assert_field_error(400, "code");

    // Per-user limit: 3 codes per window; the 4th is 429 with Retry-After.
    assert_eq!(send().await.status, 200);
    let r = send().await;
    assert_eq!(r.status, 429, "{}", r.json());
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "nothing delivered past the limit"
    );
    // Another user is not affected; the newest code of wes still verifies.
    let code = last_code(&seen);
    assert_eq!(verify(&code).await.status, 200);
    let other = ctx
        .user("xena", json!({ "mobile_number": "+1-5550112" }))
        .await;
    assert_eq!(
        ctx.post_json(
            &format!("/api/v1/radiususers/{other}/sendoobtoken/"),
            json!({})
        )
        .await
        .status,
        200
    );
    ctx.finish().await;
}

#[tokio::test]
async fn housekeeping_purges_old_batch_credentials_and_the_api_says_when() {
    let Some(ctx) = setup().await else { return };
    let mk = |name: &str, prefix: &str| {
        ctx.post_json(
            "/api/v1/batch/",
            json!({ "name": name, "strategy": "prefix", "prefix": prefix, "number_of_users": 2 }),
        )
    };
    let r = mk("old", "old").await;
    assert_eq!(r.status, 201);
    let old = r.json()["id"].as_i64().unwrap();
    let r = mk("new", "new").await;
    let new = r.json()["id"].as_i64().unwrap();
    ctx.db
        .execute(
            "UPDATE rlm_rust_batch SET created_at = now() - interval '40 days' WHERE id = $1",
            &[&old],
        )
        .await
        .unwrap();
    // An expired user token and an old code go too.
    let uid = ctx
        .user("yuri", json!({ "password": "yuri-password" }))
        .await;
    login(&ctx, "yuri", "yuri-password").await;
    ctx.db
        .execute(
            "UPDATE rlm_rust_user_token SET expires_at = now() - interval '1 hour'",
            &[],
        )
        .await
        .unwrap();
    ctx.db
        .execute(
            "INSERT INTO rlm_rust_oob_code (user_id, code_hash, channel, created_at, expires_at) \
             VALUES ($1, '\\x00', 'console', now() - interval '3 days', now() - interval '2 days')",
            &[&uid],
        )
        .await
        .unwrap();

    let d = ctx.get(&format!("/api/v1/batch/{old}/")).await.json();
    assert_eq!(d["credentials_purged_at"], Value::Null);
    assert_eq!(d["credentials_kept"], 2);
    assert_eq!(d["users"][0]["credential_kept"], true);

    // The CLI, default --batch-credential-days (30).
    let out = Command::new(BIN)
        .args(["--dsn", &ctx.dsn, "housekeeping"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("batch credentials purged: 1 batches (2 credentials, older than 30 days)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expired user tokens deleted: 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("old out-of-band codes deleted: 1"),
        "{stdout}"
    );

    let d = ctx.get(&format!("/api/v1/batch/{old}/")).await.json();
    let at = d["credentials_purged_at"]
        .as_str()
        .expect("purge time")
        .to_string();
    assert_eq!(d["credentials_kept"], 0);
    assert_eq!(d["users"][0]["credential_kept"], false);
    for kind in ["csv", "pdf"] {
        let r = ctx.get(&format!("/api/v1/batch/{old}/{kind}/")).await;
        assert_eq!(r.status, 410, "{kind}");
        assert!(
            r.json()["detail"].as_str().unwrap().contains(&at),
            "{}",
            r.json()
        );
    }
    let list = ctx.get("/api/v1/batch/").await.json();
    assert_eq!(list[0]["credentials_purged_at"], at.as_str());
    assert_eq!(list[1]["credentials_purged_at"], Value::Null);
    assert_eq!(
        ctx.get(&format!("/api/v1/batch/{new}/csv/")).await.status,
        200
    );
    // Users of a purged batch still log in: only the printable copy went.
    assert_eq!(
        ctx.count("SELECT count(*) FROM rlm_rust_user WHERE batch_id IS NOT NULL")
            .await,
        4
    );

    // --batch-credential-days 0 takes the new batch as well; again: nothing.
    let pool = radius_admin::db::pool(&ctx.dsn, 1).unwrap();
    let zero = radius_admin::housekeeping::Settings {
        batch_credential_days: 0,
        ..Default::default()
    };
    let r = radius_admin::housekeeping::run(&pool, &zero).await.unwrap();
    assert_eq!((r.batches_purged, r.credentials_deleted), (1, 2));
    let r = radius_admin::housekeeping::run(&pool, &zero).await.unwrap();
    assert_eq!(r, radius_admin::housekeeping::Report::default());
    assert_eq!(
        ctx.get(&format!("/api/v1/batch/{new}/csv/")).await.status,
        410
    );
    ctx.finish().await;
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed() {
    let Some(ctx) = setup().await else { return };
    let rec = radius_core::postauth::PostAuthRecord {
        username: "zoe".into(),
        pass: None,
        reply: "Access-Accept".into(),
        called_station_id: Some("ap-1".into()),
        calling_station_id: None,
        authdate: 1_700_000_000.25,
    };
    let entry = radius_core::Entry::PostAuth(rec);
    ctx.db
        .execute(
            "INSERT INTO rlm_rust_dead_letter (journal_id, seq, kind, reason, record, record_text) \
             VALUES ('j1', 7, $1, 'value too long\tfor type', $2, 'postauth zoe\nAccess-Accept')",
            &[&entry.kind(), &entry.encode()],
        )
        .await
        .unwrap();
    ctx.db
        .execute(
            "INSERT INTO rlm_rust_dead_letter (journal_id, seq, kind, reason, record, record_text) \
             VALUES ('j1', 8, 'postauth', 'x', '\\x00ff', 'garbage')",
            &[],
        )
        .await
        .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--dsn")
            .arg(&ctx.dsn)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let listing = run(&["dead-letters", "list"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines[0], "id\tkind\tseq\tset_aside_at\treason\trecord");
    let f: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(
        (f[1], f[2], f[4], f[5]),
        (
            entry.kind(),
            "7",
            "value too long for type",
            "postauth zoe Access-Accept"
        ),
        "{listing}"
    );
    assert_eq!(lines.len(), 3, "{listing}");

    let out = run(&["dead-letters", "replay"]);
    assert_eq!(out.trim(), "applied 1, refused 1");
    assert_eq!(
        ctx.count("SELECT count(*) FROM radpostauth WHERE username = 'zoe' AND reply = 'Access-Accept' AND calledstationid = 'ap-1'").await,
        1
    );
    let left = run(&["dead-letters", "list"]);
    assert_eq!(left.lines().count(), 2, "the undecodable one stays: {left}");
    assert!(left.contains("\tgarbage"), "{left}");
    ctx.finish().await;
}
