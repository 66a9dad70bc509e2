//! Batches (csv and prefix, all or nothing, credentials CSV/PDF), the
//! OpenAPI document, and bad input in general (size limit, media types,
//! unknown routes, an unreachable database): never a 500.

mod common;

use common::{setup, setup_with, TOKEN};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

const B: &str = "/api/v1/batch/";

fn csv_form(name: &str, csv: &str, expiration: Option<&str>) -> Form {
    let mut f = Form::new()
        .text("name", name.to_string())
        .text("strategy", "csv")
        .part(
            "csvfile",
            Part::bytes(csv.as_bytes().to_vec())
                .file_name("users.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    if let Some(e) = expiration {
        f = f.text("expiration_date", e.to_string());
    }
    f
}

#[tokio::test]
async fn prefix_batch_users_log_in_and_credentials_print() {
    let Some(ctx) = setup().await else { return };
    let r = ctx
        .post_json(
            B,
            json!({
                "name": "conference", "strategy": "prefix", "prefix": "guest",
                "number_of_users": 12, "expiration_date": "2099-12-31",
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let j = r.json();
    let id = j["id"].as_i64().unwrap();
    assert_eq!(j["user_count"], 12);
    assert_eq!(j["expiration_date"], "2099-12-31");
    let users = j["users"].as_array().unwrap();
    assert_eq!(users[0]["username"], "guest01");
    assert_eq!(users[11]["username"], "guest12");
    let pw = users[3]["password"].as_str().unwrap().to_string();
    // Batch users log in at once; expiration is the end of the day, UTC.
    assert_eq!(ctx.authorize("guest04", &pw).await.status, 200);
    assert_eq!(ctx.authorize("guest04", "wrong-password").await.status, 401);
    let exp: String = ctx
        .db
        .query_one(
            "SELECT expiration::text FROM rlm_rust_user WHERE username = 'guest04'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(exp.starts_with("2100-01-01 00:00:00"), "{exp}");
    // List and detail.
    let r = ctx.get(B).await;
    assert_eq!(r.json()[0]["name"], "conference");
    let r = ctx.get(&format!("{B}{id}/")).await;
    assert_eq!(r.json()["users"].as_array().unwrap().len(), 12);
    assert!(r.json()["users"][0].get("password").is_none());
    assert_eq!(ctx.get(&format!("{B}9999/")).await.status, 404);
    ctx.get(&format!("{B}x/"))
        .await
        .assert_field_error(400, "id");
    // Credentials as CSV and as PDF.
    let r = ctx.get(&format!("{B}{id}/csv/")).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.starts_with("username,password\n"));
    assert!(text.contains(&format!("guest04,{pw}\n")), "{text}");
    assert_eq!(text.lines().count(), 13);
    let r = ctx.get(&format!("{B}{id}/pdf/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/pdf");
    assert!(r.body.starts_with(b"%PDF-"));
    // A new password retires the printed one: the batch no longer shows it.
    let uid: i64 = ctx
        .db
        .query_one(
            "SELECT id FROM rlm_rust_user WHERE username = 'guest04'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let r = ctx
        .post_json(
            &format!("/api/v1/radiususers/{uid}/password/"),
            json!({ "password": "Brand-new-pw-42" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let text = String::from_utf8(ctx.get(&format!("{B}{id}/csv/")).await.body).unwrap();
    assert!(!text.contains("guest04,"), "{text}");
    assert_eq!(
        text.lines().count(),
        12,
        "the other users' credentials stay"
    );
    // Same name, or usernames that exist: 400, nothing created.
    let again = json!({ "name": "conference", "strategy": "prefix", "prefix": "other", "number_of_users": 2 });
    ctx.post_json(B, again)
        .await
        .assert_field_error(400, "name");
    let clash =
        json!({ "name": "second", "strategy": "prefix", "prefix": "guest", "number_of_users": 12 });
    ctx.post_json(B, clash)
        .await
        .assert_field_error(400, "prefix");
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_user").await, 12);
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_batch").await, 1);
    // Form body works too; an expired batch's users cannot log in.
    let r = ctx
        .post_form(
            B,
            &[
                ("name", "old"),
                ("strategy", "prefix"),
                ("prefix", "old-"),
                ("number_of_users", "2"),
                ("expiration_date", "2001-01-01"),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let pw = r.json()["users"][0]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ctx.authorize("old-1", &pw).await.status, 401);
    // Validation of every prefix field.
    for (body, field) in [
        (
            json!({ "strategy": "prefix", "prefix": "p", "number_of_users": 1 }),
            "name",
        ),
        (json!({ "name": "n" }), "strategy"),
        (json!({ "name": "n", "strategy": "magic" }), "strategy"),
        (
            json!({ "name": "n", "strategy": "prefix", "number_of_users": 1 }),
            "prefix",
        ),
        (
            json!({ "name": "n", "strategy": "prefix", "prefix": "a b", "number_of_users": 1 }),
            "prefix",
        ),
        (
            json!({ "name": "n", "strategy": "prefix", "prefix": "p" }),
            "number_of_users",
        ),
        (
            json!({ "name": "n", "strategy": "prefix", "prefix": "p", "number_of_users": 0 }),
            "number_of_users",
        ),
        (
            json!({ "name": "n", "strategy": "prefix", "prefix": "p", "number_of_users": "many" }),
            "number_of_users",
        ),
        (
            json!({ "name": "n", "strategy": "prefix", "prefix": "p", "number_of_users": 1000001 }),
            "number_of_users",
        ),
        (
            json!({ "name": "n", "strategy": "prefix", "prefix": "p", "number_of_users": 1, "expiration_date": "31/12/2030" }),
            "expiration_date",
        ),
        (
            json!({ "name": "n", "strategy": "prefix", "prefix": "p", "number_of_users": 1, "extra": 1 }),
            "extra",
        ),
        (json!({ "name": "n", "strategy": "csv" }), "csvfile"),
    ] {
        ctx.post_json(B, body).await.assert_field_error(400, field);
    }
    ctx.finish().await;
}

#[tokio::test]
async fn csv_batch_is_all_or_nothing() {
    let Some(ctx) = setup().await else { return };
    let good = "username,password,email,first_name,last_name\n\
                paula,paula-password,paula@example.org,Paula,P\n\
                quinn,,,Quinn,Q\n";
    let r = ctx
        .send(
            ctx.req(Method::POST, B)
                .multipart(csv_form("import-1", good, Some("2099-01-01"))),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["strategy"], "csv");
    assert_eq!(j["users"][0]["password"], Value::Null);
    let generated = j["users"][1]["password"].as_str().unwrap().to_string();
    assert_eq!(ctx.authorize("paula", "paula-password").await.status, 200);
    assert_eq!(ctx.authorize("quinn", &generated).await.status, 200);
    let email: Option<String> = ctx
        .db
        .query_one(
            "SELECT email FROM rlm_rust_user WHERE username = 'paula'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(email.as_deref(), Some("paula@example.org"));
    // Credentials are kept for prefix batches only.
    let id = j["id"].as_i64().unwrap();
    assert_eq!(ctx.get(&format!("{B}{id}/csv/")).await.status, 404);
    // A bad row: its number in the error, nothing created.
    let cases = [
        (
            "rita,rita-password\nsam,sam-password,not-an-email\n",
            "row 2",
        ),
        ("tom,tom-password\ntom,tom-password-2\n", "row 2"),
        ("uma,uma-password\nvic,short\n", "row 2"),
        (
            "wes,wes-password\n\nxena,xena-password,x@example.org,X,X,extra\n",
            "row 3",
        ),
        (
            "yann,yann-password\nzoe,zoe-password\npaula,new-password\n",
            "row 3",
        ),
        ("\n", "no users"),
    ];
    for (csv, want) in cases {
        let r = ctx
            .send(
                ctx.req(Method::POST, B)
                    .multipart(csv_form("import-bad", csv, None)),
            )
            .await;
        assert_eq!(r.status, 400, "{csv}");
        let j = r.json();
        assert_eq!(j["field"], "csvfile");
        assert!(j["detail"].as_str().unwrap().contains(want), "{csv}: {j}");
    }
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_user").await, 2);
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_batch").await, 1);
    // Invalid UTF-8 is a row error too, not a crash.
    let form = Form::new()
        .text("name", "bin")
        .text("strategy", "csv")
        .part(
            "csvfile",
            Part::bytes(vec![b'a', b',', 0xff, 0xfe, b'\n']).file_name("x.csv"),
        );
    let r = ctx.send(ctx.req(Method::POST, B).multipart(form)).await;
    r.assert_field_error(400, "csvfile");
    ctx.finish().await;
}

#[tokio::test]
async fn openapi_document_is_valid_and_complete() {
    let Some(ctx) = setup().await else { return };
    let r = ctx
        .send(ctx.http.get(ctx.url("/api/v1/openapi.json")))
        .await;
    assert_eq!(r.status, 200);
    let doc: openapiv3::OpenAPI =
        serde_json::from_slice(&r.body).expect("a valid OpenAPI 3 document");
    assert!(doc.openapi.starts_with("3."));
    // Every route the router serves, with its methods.
    let routes: &[(&str, &[&str])] = &[
        ("/api/v1/authorize/", &["post"]),
        ("/api/v1/postauth/", &["post"]),
        ("/api/v1/accounting/", &["get", "post"]),
        ("/api/v1/batch/", &["get", "post"]),
        ("/api/v1/batch/{id}/", &["get"]),
        ("/api/v1/batch/{id}/csv/", &["get"]),
        ("/api/v1/batch/{id}/pdf/", &["get"]),
        ("/api/v1/token/", &["post"]),
        ("/api/v1/radiususers/", &["get", "post"]),
        ("/api/v1/radiususers/{id}/", &["get", "patch", "delete"]),
        ("/api/v1/radiususers/{id}/password/", &["post"]),
        ("/api/v1/radiususers/{id}/sendoobtoken/", &["post"]),
        ("/api/v1/radiususers/{id}/verifyoobtoken/", &["post"]),
        ("/api/v1/radiususers/{id}/totp/", &["post"]),
        ("/api/v1/auth/", &["post"]),
        ("/api/v1/account/session/", &["get"]),
        ("/api/v1/account/usage/", &["get"]),
        ("/api/v1/account/password/change/", &["post"]),
        ("/api/v1/groups/", &["get", "post"]),
        ("/api/v1/groups/{name}/", &["get", "patch", "delete"]),
        ("/api/v1/groups/{name}/members/", &["get", "post"]),
        ("/api/v1/groups/{name}/members/{username}/", &["delete"]),
        ("/api/v1/openapi.json", &["get"]),
        ("/metrics", &["get"]),
    ];
    assert_eq!(doc.paths.paths.len(), routes.len());
    for (path, methods) in routes {
        let item = doc
            .paths
            .paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} undocumented"));
        let item = item.as_item().expect("inline path item");
        for m in *methods {
            let op = match *m {
                "get" => &item.get,
                "post" => &item.post,
                "patch" => &item.patch,
                _ => &item.delete,
            };
            assert!(op.is_some(), "{m} {path} undocumented");
        }
        // And each documented route exists: not a 404 from the fallback.
        let concrete = path
            .replace("{id}", "1")
            .replace("{name}", "g")
            .replace("{username}", "u");
        let m = Method::from_bytes(methods[0].to_uppercase().as_bytes()).unwrap();
        let r = ctx.send(ctx.req(m, &concrete)).await;
        assert!(
            r.status != 404 || r.json()["detail"] != "resource not found",
            "{path} not routed"
        );
    }
    // Every $ref resolves.
    let raw: Value = serde_json::from_slice(&r.body).unwrap();
    let text = raw.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(
            raw["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    ctx.finish().await;
}

#[tokio::test]
async fn bad_input_is_json_4xx_never_500() {
    let Some(ctx) = setup_with(|c| c.max_body_bytes = 4096).await else {
        return;
    };
    // Body size limit, on JSON, forms and multipart.
    let big = "x".repeat(10_000);
    let r = ctx
        .post_json(
            "/api/v1/authorize/",
            json!({ "username": big, "password": "p" }),
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(r.json()["detail"].is_string());
    let r = ctx
        .send(
            ctx.req(Method::POST, B)
                .multipart(csv_form("big", &format!("a,{big}\n"), None)),
        )
        .await;
    assert!(r.status == 413 || r.status == 400, "{}", r.status);
    assert!(r.json()["detail"].is_string());
    // Malformed JSON, wrong JSON type, unsupported media type.
    let r = ctx
        .send(
            ctx.req(Method::POST, "/api/v1/authorize/")
                .header("content-type", "application/json")
                .body("{nope"),
        )
        .await;
    r.assert_field_error(400, "body");
    let r = ctx
        .send(
            ctx.req(Method::POST, "/api/v1/radiususers/")
                .header("content-type", "application/json")
                .body("[1,2]"),
        )
        .await;
    r.assert_field_error(400, "body");
    let r = ctx
        .send(
            ctx.req(Method::POST, "/api/v1/authorize/")
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
    assert_eq!(r.status, 415);
    assert!(r.json()["detail"].is_string());
    // Repeated form fields are refused rather than guessed.
    ctx.post_form(
        "/api/v1/authorize/",
        &[("username", "a"), ("username", "b"), ("password", "p")],
    )
    .await
    .assert_field_error(400, "username");
    // Unknown routes and wrong methods: JSON too.
    let r = ctx.get("/api/v1/nothing/").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["detail"].is_string());
    let r = ctx.send(ctx.req(Method::PUT, "/api/v1/authorize/")).await;
    assert_eq!(r.status, 405);
    assert!(r.json()["detail"].is_string());
    let r = ctx.send(ctx.req(Method::DELETE, "/api/v1/token/")).await;
    assert_eq!(r.status, 405);
    // Odd path segments.
    let r = ctx.get("/api/v1/radiususers/%FF%FE/").await;
    assert!(r.status.is_client_error());
    assert!(r.json()["detail"].is_string());
    let r = ctx
        .get("/api/v1/radiususers/99999999999999999999999/")
        .await;
    r.assert_field_error(400, "id");
    // NUL bytes and odd text do not reach PostgreSQL as errors.
    let r = ctx
        .post_json(
            "/api/v1/authorize/",
            json!({ "username": "a\u{0}b", "password": "p" }),
        )
        .await;
    r.assert_field_error(400, "username");
    let r = ctx
        .get("/api/v1/radiususers/?username__icontains=%25_%5C")
        .await;
    assert_eq!(r.status, 200);
    let r = ctx.get("/api/v1/accounting/?username=%00").await;
    assert!(r.status.is_client_error(), "{}", r.status);
    ctx.finish().await;
}

#[tokio::test]
async fn unreachable_database_is_503_json() {
    // No database to create: point the app at a port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dsn = format!("host=127.0.0.1 port={dead} user=radius dbname=radius connect_timeout=1");
    let mut cfg = radius_admin::Config::new(&dsn);
    cfg.bootstrap_token = Some(TOKEN.into());
    let state = std::sync::Arc::new(radius_admin::AppState::new(cfg).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(radius_admin::serve(state, listener, std::future::pending()));
    let http = reqwest::Client::new();
    for (m, path, body) in [
        (
            Method::POST,
            "/api/v1/authorize/",
            Some(json!({ "username": "a", "password": "b" })),
        ),
        (Method::GET, "/api/v1/radiususers/", None),
        (
            Method::POST,
            "/api/v1/token/",
            Some(json!({ "username": "a", "password": "b" })),
        ),
        (
            Method::POST,
            "/api/v1/accounting/",
            Some(json!({ "status_type": "Accounting-On", "nas_ip_address": "192.0.2.1" })),
        ),
    ] {
        let mut req = http.request(m, format!("{base}{path}")).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let j: Value = r.json().await.unwrap();
        assert_eq!(j["detail"], "database unavailable", "{path}");
    }
    server.abort();
}

/// `cargo test -p radius-admin --release --test batch_api -- --ignored
/// --nocapture bench_prefix_batch_10000`, or scripts/bench-batch.
#[tokio::test]
#[ignore]
async fn bench_prefix_batch_10000() {
    let Some(ctx) = setup().await else { return };
    let started = std::time::Instant::now();
    let r = ctx
        .post_json(B, json!({ "name": "bench", "strategy": "prefix", "prefix": "bench", "number_of_users": 10000 }))
        .await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let users = r.json()["users"].as_array().unwrap().clone();
    assert_eq!(users.len(), 10000);
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_user").await, 10000);
    let last = &users[9999];
    assert_eq!(
        ctx.authorize(
            last["username"].as_str().unwrap(),
            last["password"].as_str().unwrap()
        )
        .await
        .status,
        200
    );
    println!("BENCH prefix batch of 10000 users over HTTP: {secs:.2} s");
    ctx.finish().await;
}

/// username -> nt_hash of every user in the database.
async fn nt_hashes(ctx: &common::Ctx) -> std::collections::HashMap<String, Option<String>> {
    ctx.db
        .query("SELECT username, nt_hash FROM rlm_rust_user", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Creates one csv batch (a chosen "password" and a generated one) and one
/// prefix batch; returns every generated (username, password).
async fn csv_and_prefix_batches(ctx: &common::Ctx) -> Vec<(String, String)> {
    let csv = "ulla,password,,,\nvera,,,,\n";
    let r = ctx
        .send(
            ctx.req(Method::POST, B)
                .multipart(csv_form("nt-csv", csv, None)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let mut generated = vec![(
        "vera".to_string(),
        r.json()["users"][1]["password"]
            .as_str()
            .unwrap()
            .to_string(),
    )];
    let r = ctx
        .post_json(
            B,
            json!({ "name": "nt-prefix", "strategy": "prefix", "prefix": "nt", "number_of_users": 3 }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    for u in r.json()["users"].as_array().unwrap() {
        generated.push((
            u["username"].as_str().unwrap().to_string(),
            u["password"].as_str().unwrap().to_string(),
        ));
    }
    generated
}

#[tokio::test]
async fn batch_users_get_the_nt_hash_of_their_password() {
    let Some(ctx) = setup().await else { return };
    let generated = csv_and_prefix_batches(&ctx).await;
    let stored = nt_hashes(&ctx).await;
    assert_eq!(stored.len(), 5);
    // The published NT hash of "password": an independent check.
    assert_eq!(
        stored["ulla"].as_deref(),
        Some("8846f7eaee8fb117ad06bdd830b7586c")
    );
    for (u, p) in &generated {
        assert_eq!(
            stored[u],
            Some(radius_core::password::nt_hash_hex(p)),
            "{u}"
        );
    }
    // Different passwords, different hashes: none was mixed up with another
    // user's in the parallel hashing.
    let distinct: std::collections::HashSet<_> = stored.values().collect();
    assert_eq!(distinct.len(), 5);
    ctx.finish().await;
}

#[tokio::test]
async fn batch_users_get_no_nt_hash_when_the_site_turned_it_off() {
    let Some(ctx) = setup_with(|c| c.store_nt_hash = false).await else {
        return;
    };
    let generated = csv_and_prefix_batches(&ctx).await;
    let stored = nt_hashes(&ctx).await;
    assert_eq!(stored.len(), 5);
    assert!(stored.values().all(Option::is_none), "{stored:?}");
    // Argon2id alone still logs them in (PAP).
    let (u, p) = &generated[1];
    assert_eq!(ctx.authorize(u, p).await.status, 200);
    assert_eq!(ctx.authorize("ulla", "password").await.status, 200);
    ctx.finish().await;
}
