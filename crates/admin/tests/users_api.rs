//! /radiususers/ (fields, validation, filters), password set/reset,
//! groups in the stock tables, and sendoobtoken with real senders (a local
//! SMTP responder and a local SMS gateway).

mod common;

use std::sync::{Arc, Mutex};

use common::setup;
use serde_json::{json, Value};

const U: &str = "/api/v1/radiususers/";

fn base(username: &str) -> Value {
    json!({ "username": username, "server_name": "radius1", "server_address": "192.0.2.10" })
}

fn with(mut v: Value, extra: Value) -> Value {
    if let Value::Object(m) = extra {
        for (k, x) in m {
            v[k] = x;
        }
    }
    v
}

#[tokio::test]
async fn radiususers_crud_and_validation() {
    let Some(ctx) = setup().await else { return };
    // Create with every field.
    let r = ctx
        .post_json(
            U,
            with(
                base("henry"),
                json!({
                    "email": "henry@example.org", "active": true, "reason": 0,
                    "mobile_number": "+33-612345678", "token_auth": true, "token_type": "dual",
                    "token_serial": "FTKMOB123", "ftm_act_method": "sms", "fido": false,
                    "first_name": "Henry", "last_name": "H", "password": "henry-password",
                }),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    let u = r.json();
    let id = u["id"].as_i64().unwrap();
    assert_eq!(u["token_type"], "dual");
    assert_eq!(u["has_password"], true);
    assert!(u.get("password").is_none());
    // Defaults: reason 0, fido disabled, active.
    let r = ctx.post_json(U, base("ivy")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["reason"], 0);
    assert_eq!(r.json()["fido"], false);
    assert_eq!(r.json()["active"], true);
    // Every validation rule answers 400 naming the field.
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "server_name": "r", "server_address": "a" }),
            "username",
        ),
        (
            json!({ "username": "x1", "server_address": "a" }),
            "server_name",
        ),
        (
            json!({ "username": "x1", "server_name": "r" }),
            "server_address",
        ),
        (
            with(base("x1"), json!({ "email": "not-an-email" })),
            "email",
        ),
        (with(base("x1"), json!({ "email": "a@b" })), "email"),
        (with(base("x1"), json!({ "active": "maybe" })), "active"),
        (with(base("x1"), json!({ "reason": 9 })), "reason"),
        (with(base("x1"), json!({ "reason": "two" })), "reason"),
        (
            with(base("x1"), json!({ "mobile_number": "0612345678" })),
            "mobile_number",
        ),
        (
            with(
                base("x1"),
                json!({ "mobile_number": "+33-6123456789012345678901" }),
            ),
            "mobile_number",
        ),
        (
            with(base("x1"), json!({ "token_auth": true })),
            "token_type",
        ),
        (
            with(base("x1"), json!({ "token_type": "pigeon" })),
            "token_type",
        ),
        (with(base("x1"), json!({ "token_type": "email" })), "email"),
        (
            with(base("x1"), json!({ "token_type": "sms" })),
            "mobile_number",
        ),
        (
            with(
                base("x1"),
                json!({ "token_type": "dual", "email": "x@example.org" }),
            ),
            "mobile_number",
        ),
        (
            with(
                base("x1"),
                json!({ "token_type": "dual", "mobile_number": "+1-5551234" }),
            ),
            "email",
        ),
        (
            with(base("x1"), json!({ "ftm_act_method": "email" })),
            "email",
        ),
        (
            with(base("x1"), json!({ "ftm_act_method": "sms" })),
            "mobile_number",
        ),
        (
            with(base("x1"), json!({ "ftm_act_method": "fax" })),
            "ftm_act_method",
        ),
        (with(base("x1"), json!({ "fido": "sometimes" })), "fido"),
        (with(base("x1"), json!({ "password": "short" })), "password"),
        (
            with(base("x1"), json!({ "expiration": "tomorrow" })),
            "expiration",
        ),
        (with(base("x1"), json!({ "colour": "red" })), "colour"),
        (with(base("bad\nname"), json!({})), "username"),
        (base("henry"), "username"),
    ];
    for (body, field) in cases {
        let r = ctx.post_json(U, body.clone()).await;
        assert_eq!(
            r.status,
            400,
            "{body} -> {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["field"], field, "{body} -> {}", r.json());
    }
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_user").await, 2);
    // Read one; 404 and bad ids.
    let r = ctx.get(&format!("{U}{id}/")).await;
    assert_eq!(r.json()["username"], "henry");
    assert_eq!(ctx.get(&format!("{U}999999/")).await.status, 404);
    ctx.get(&format!("{U}abc/"))
        .await
        .assert_field_error(400, "id");
    // PATCH: read-only fields, merged validation, updates.
    let p = format!("{U}{id}/");
    ctx.patch_json(&p, json!({ "username": "other" }))
        .await
        .assert_field_error(400, "username");
    ctx.patch_json(&p, json!({ "server_name": "x" }))
        .await
        .assert_field_error(400, "server_name");
    ctx.patch_json(&p, json!({ "email": null }))
        .await
        .assert_field_error(400, "email");
    ctx.patch_json(&p, json!({ "token_auth": true, "token_type": null }))
        .await
        .assert_field_error(400, "token_type");
    let r = ctx
        .patch_json(
            &p,
            json!({ "token_type": "sms", "email": null, "active": false, "reason": 8 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let j = r.json();
    assert_eq!(
        (j["email"].clone(), j["active"].clone(), j["reason"].clone()),
        (Value::Null, json!(false), json!(8))
    );
    let r = ctx
        .patch_json(&p, json!({ "expiration": "2030-06-30" }))
        .await;
    assert_eq!(r.json()["expiration"], "2030-07-01T00:00:00.000000Z");
    // DELETE removes the profile and its memberships.
    ctx.db
        .batch_execute(
            "INSERT INTO radusergroup (username, groupname, priority) VALUES ('henry', 'staff', 1)",
        )
        .await
        .unwrap();
    assert_eq!(ctx.delete(&p).await.status, 204);
    assert_eq!(ctx.delete(&p).await.status, 404);
    assert_eq!(ctx.get(&p).await.status, 404);
    assert_eq!(ctx.count("SELECT count(*) FROM radusergroup").await, 0);
    ctx.finish().await;
}

#[tokio::test]
async fn radiususers_filters_every_lookup() {
    let Some(ctx) = setup().await else { return };
    let users = [
        (
            "Alice",
            "alice@Example.org",
            "radius-a",
            "10.0.0.1",
            true,
            Some("email"),
            Some("SER-1"),
        ),
        (
            "alicia",
            "alicia@example.net",
            "radius-b",
            "10.0.0.2",
            false,
            Some("ftk"),
            Some("ser-2"),
        ),
        (
            "bob",
            "bob@example.org",
            "RADIUS-A",
            "10.0.1.1",
            true,
            None,
            None,
        ),
    ];
    for (u, e, sn, sa, active, tt, ts) in users {
        let mut body = json!({
            "username": u, "email": e, "server_name": sn, "server_address": sa, "active": active,
        });
        if let Some(t) = tt {
            body["token_type"] = t.into();
        }
        if let Some(s) = ts {
            body["token_serial"] = s.into();
        }
        let r = ctx.post_json(U, body).await;
        assert_eq!(r.status, 201, "{}", r.json());
    }
    let names = |q: &'static str| {
        let ctx = &ctx;
        async move {
            let r = ctx.get(&format!("{U}?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.json());
            let mut v: Vec<String> = r.json()["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["username"].as_str().unwrap().to_string())
                .collect();
            v.sort();
            v
        }
    };
    let cases: &[(&str, &[&str])] = &[
        ("username=Alice", &["Alice"]),
        ("username__exact=alice", &[]),
        ("username__iexact=alice", &["Alice"]),
        ("username__contains=lic", &["Alice", "alicia"]),
        ("username__contains=ALI", &[]),
        ("username__icontains=ALI", &["Alice", "alicia"]),
        ("username__in=bob,alicia,nobody", &["alicia", "bob"]),
        ("email=bob@example.org", &["bob"]),
        ("email__iexact=ALICE@example.org", &["Alice"]),
        ("email__contains=example.org", &["bob"]),
        ("email__icontains=EXAMPLE.ORG", &["Alice", "bob"]),
        (
            "email__in=bob@example.org,alicia@example.net",
            &["alicia", "bob"],
        ),
        ("active=true", &["Alice", "bob"]),
        ("active=false", &["alicia"]),
        ("server_name=radius-a", &["Alice"]),
        ("server_name__iexact=radius-a", &["Alice", "bob"]),
        ("server_name__contains=-b", &["alicia"]),
        ("server_name__icontains=RADIUS", &["Alice", "alicia", "bob"]),
        ("server_address=10.0.0.2", &["alicia"]),
        ("server_address__iexact=10.0.1.1", &["bob"]),
        ("server_address__contains=10.0.0.", &["Alice", "alicia"]),
        ("server_address__icontains=.1.", &["bob"]),
        ("token_type=email", &["Alice"]),
        ("token_type=ftk", &["alicia"]),
        ("token_serial=SER-1", &["Alice"]),
        ("token_serial__iexact=SER-2", &["alicia"]),
        ("username__icontains=ali&active=true", &["Alice"]),
    ];
    for (q, want) in cases {
        assert_eq!(names(q).await, *want, "{q}");
    }
    // Lookups the document does not allow, unknown filters, bad values.
    for (q, field) in [
        ("server_name__in=a,b", "server_name__in"),
        ("token_serial__contains=SER", "token_serial__contains"),
        ("active__iexact=true", "active__iexact"),
        ("colour=red", "colour"),
        ("active=maybe", "active"),
        ("token_type=pigeon", "token_type"),
        ("username__in=", "username__in"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
    ] {
        ctx.get(&format!("{U}?{q}"))
            .await
            .assert_field_error(400, field);
    }
    // Tastypie meta and paging.
    let r = ctx.get(&format!("{U}?limit=2")).await;
    let j = r.json();
    assert_eq!(j["meta"]["total_count"], 3);
    assert_eq!(j["objects"].as_array().unwrap().len(), 2);
    assert_eq!(j["meta"]["next"], format!("{U}?limit=2&offset=2"));
    let r = ctx.get(&format!("{U}?limit=2&offset=2")).await;
    assert_eq!(r.json()["objects"].as_array().unwrap().len(), 1);
    assert_eq!(r.json()["meta"]["next"], Value::Null);
    ctx.finish().await;
}

#[tokio::test]
async fn password_set_and_reset() {
    let Some(ctx) = setup().await else { return };
    let id = ctx.user("jack", json!({})).await;
    // No password yet: nothing accepts.
    assert_eq!(ctx.authorize("jack", "anything-at-all").await.status, 401);
    let p = format!("{U}{id}/password/");
    let r = ctx
        .post_json(&p, json!({ "password": "jack-password-1" }))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("password").is_none());
    assert_eq!(ctx.authorize("jack", "jack-password-1").await.status, 200);
    // Reset: a generated password, returned once.
    let r = ctx.post_json(&p, json!({})).await;
    let generated = r.json()["password"].as_str().unwrap().to_string();
    assert_eq!(generated.len(), 12);
    assert_eq!(ctx.authorize("jack", "jack-password-1").await.status, 401);
    assert_eq!(ctx.authorize("jack", &generated).await.status, 200);
    // Also through PATCH.
    ctx.patch_json(
        &format!("{U}{id}/"),
        json!({ "password": "jack-password-2" }),
    )
    .await;
    assert_eq!(ctx.authorize("jack", "jack-password-2").await.status, 200);
    ctx.post_json(&p, json!({ "password": "short" }))
        .await
        .assert_field_error(400, "password");
    ctx.post_json(&p, json!({ "pasword": "typo-typo-typo" }))
        .await
        .assert_field_error(400, "pasword");
    assert_eq!(
        ctx.post_json(&format!("{U}424242/password/"), json!({}))
            .await
            .status,
        404
    );
    ctx.finish().await;
}

#[tokio::test]
async fn groups_write_the_stock_tables() {
    let Some(ctx) = setup().await else { return };
    let g = "/api/v1/groups/";
    let r = ctx
        .post_json(
            g,
            json!({
                "name": "staff",
                "description": "Employees",
                "check": [{ "attribute": "NAS-Port-Type", "op": "==", "value": "Ethernet" }],
                "reply": [{ "attribute": "Session-Timeout", "op": ":=", "value": "3600" },
                          { "attribute": "Reply-Message", "value": "Welcome staff" }],
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["reply"][1]["op"], "=");
    assert_eq!(
        ctx.count("SELECT count(*) FROM radgroupreply WHERE groupname = 'staff'")
            .await,
        2
    );
    assert_eq!(
        ctx.count("SELECT count(*) FROM radgroupcheck WHERE groupname = 'staff'")
            .await,
        1
    );
    // Validation names the field (and the list index).
    for (body, field) in [
        (json!({ "name": "staff" }), "name"),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "a/b" }), "name"),
        (
            json!({ "name": "g2", "check": [{ "attribute": "X", "op": "<>", "value": "1" }] }),
            "check[0].op",
        ),
        (
            json!({ "name": "g2", "reply": [{ "attribute": "X", "op": "==", "value": "1" }] }),
            "reply[0].op",
        ),
        (
            json!({ "name": "g2", "reply": [{ "attribute": "Bad Name", "value": "1" }] }),
            "reply[0].attribute",
        ),
        (
            json!({ "name": "g2", "reply": [{ "attribute": "X" }] }),
            "reply[0].value",
        ),
        (
            json!({ "name": "g2", "reply": "Session-Timeout=1" }),
            "reply",
        ),
        (json!({ "name": "g2", "members": [] }), "members"),
    ] {
        ctx.post_json(g, body).await.assert_field_error(400, field);
    }
    // Membership in radusergroup: the group's reply reaches authorize/.
    ctx.user("kate", json!({ "password": "kate-password" }))
        .await;
    let m = "/api/v1/groups/staff/members/";
    let r = ctx
        .post_json(m, json!({ "username": "kate", "priority": 2 }))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        ctx.post_json(m, json!({ "username": "kate" })).await.status,
        409
    );
    ctx.post_json(m, json!({ "username": "ghost" }))
        .await
        .assert_field_error(400, "username");
    ctx.post_json(m, json!({ "username": "kate", "priority": -1 }))
        .await
        .assert_field_error(400, "priority");
    assert_eq!(
        ctx.post_json(
            "/api/v1/groups/none/members/",
            json!({ "username": "kate" })
        )
        .await
        .status,
        404
    );
    let r = ctx
        .post_json(
            "/api/v1/authorize/",
            json!({ "username": "kate", "password": "kate-password" }),
        )
        .await;
    // The NAS-Port-Type check item does not match a request without it,
    // so the group is skipped: exactly rlm_sql's semantics.
    assert_eq!(r.status, 200);
    assert!(
        r.json().get("reply:Session-Timeout").is_none(),
        "{}",
        r.json()
    );
    let r = ctx
        .patch_json(
            "/api/v1/groups/staff/",
            json!({ "check": [], "description": "All staff" }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["members"],
        json!([{ "username": "kate", "priority": 2 }])
    );
    let r = ctx
        .post_json(
            "/api/v1/authorize/",
            json!({ "username": "kate", "password": "kate-password" }),
        )
        .await;
    assert_eq!(r.json()["reply:Session-Timeout"], "3600");
    assert_eq!(r.json()["reply:Reply-Message"], "Welcome staff");
    ctx.patch_json("/api/v1/groups/staff/", json!({ "name": "x" }))
        .await
        .assert_field_error(400, "name");
    // Reads.
    let r = ctx.get(g).await;
    assert_eq!(r.json()[0]["member_count"], 1);
    assert_eq!(r.json()[0]["description"], "All staff");
    assert_eq!(
        ctx.get("/api/v1/groups/staff/members/").await.json()[0]["username"],
        "kate"
    );
    assert_eq!(ctx.get("/api/v1/groups/nope/").await.status, 404);
    // A group that exists only in the stock tables is listed and editable.
    ctx.db
        .batch_execute("INSERT INTO radgroupreply (groupname, attribute, op, value) VALUES ('legacy', 'Idle-Timeout', ':=', '60')")
        .await
        .unwrap();
    assert_eq!(
        ctx.get("/api/v1/groups/legacy/").await.json()["reply"][0]["value"],
        "60"
    );
    // Removing the member, then the group.
    assert_eq!(
        ctx.delete("/api/v1/groups/staff/members/kate/")
            .await
            .status,
        204
    );
    assert_eq!(
        ctx.delete("/api/v1/groups/staff/members/kate/")
            .await
            .status,
        404
    );
    assert_eq!(ctx.delete("/api/v1/groups/staff/").await.status, 204);
    assert_eq!(ctx.delete("/api/v1/groups/staff/").await.status, 404);
    assert_eq!(
        ctx.count("SELECT count(*) FROM radgroupreply WHERE groupname = 'staff'")
            .await,
        0
    );
    ctx.finish().await;
}

/// A minimal SMTP responder: accepts one message and hands back its DATA.
async fn fake_smtp() -> (u16, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (sock, _) = l.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"220 test ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    in_data = false;
                    w.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let cmd = line.to_ascii_uppercase();
            let answer: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                b"250 test\r\n"
            } else if cmd.starts_with("DATA") {
                in_data = true;
                b"354 go\r\n"
            } else if cmd.starts_with("QUIT") {
                let _ = w.write_all(b"221 bye\r\n").await;
                break;
            } else {
                b"250 ok\r\n"
            };
            w.write_all(answer).await.unwrap();
        }
        let _ = tx.send(data);
    });
    (port, rx)
}

/// A local SMS gateway answering `status` and recording the bodies.
async fn fake_gateway(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let s = s2.clone();
            async move {
                s.lock().unwrap().push(v);
                axum::http::StatusCode::from_u16(status).unwrap()
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

fn digits6(s: &str) -> Option<String> {
    s.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_string)
}

#[tokio::test]
async fn sendoobtoken_console_sender_and_validation() {
    let Some(ctx) = setup().await else { return };
    let with_email = ctx
        .user(
            "leo",
            json!({ "email": "leo@example.org", "token_type": "email" }),
        )
        .await;
    let r = ctx
        .post_json(&format!("{U}{with_email}/sendoobtoken/"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["sender"], "console");
    assert_eq!(r.json()["channel"], "email");
    assert_eq!(
        ctx.count("SELECT count(*) FROM rlm_rust_oob_code WHERE channel = 'console'")
            .await,
        1
    );
    let bare = ctx.user("mia", json!({})).await;
    ctx.post_json(&format!("{U}{bare}/sendoobtoken/"), json!({}))
        .await
        .assert_field_error(400, "token_type");
    ctx.post_json(
        &format!("{U}{with_email}/sendoobtoken/"),
        json!({ "channel": "sms" }),
    )
    .await
    .assert_field_error(400, "mobile_number");
    ctx.post_json(
        &format!("{U}{with_email}/sendoobtoken/"),
        json!({ "channel": "pigeon" }),
    )
    .await
    .assert_field_error(400, "channel");
    assert_eq!(
        ctx.post_json(&format!("{U}777777/sendoobtoken/"), json!({}))
            .await
            .status,
        404
    );
    ctx.finish().await;
}

#[tokio::test]
async fn sendoobtoken_over_smtp_and_sms_gateway() {
    let (smtp_port, mail) = fake_smtp().await;
    let (ok_url, sms_seen) = fake_gateway(200).await;
    let Some(ctx) = common::setup_with(|c| {
        c.senders.smtp = Some(
            radius_admin::oob::SmtpSender::new(
                &format!("smtp://127.0.0.1:{smtp_port}"),
                "radius@example.org",
            )
            .unwrap(),
        );
        c.senders.sms =
            Some(radius_admin::oob::SmsGateway::new(&ok_url, Some("gw-secret".into())).unwrap());
    })
    .await
    else {
        return;
    };
    let id = ctx
        .user("nina", json!({ "email": "nina@example.org", "mobile_number": "+44-7700900123", "token_type": "dual" }))
        .await;
    let r = ctx
        .post_json(
            &format!("{U}{id}/sendoobtoken/"),
            json!({ "channel": "email" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["sender"], "smtp");
    let data = tokio::time::timeout(std::time::Duration::from_secs(5), mail)
        .await
        .unwrap()
        .unwrap();
    assert!(data.contains("To: nina@example.org"), "{data}");
    let code = digits6(&data).expect("a code in the mail");
    let ctx_ref = &ctx;
    let verify = |c: String| {
        let path = format!("{U}{id}/verifyoobtoken/");
        async move { ctx_ref.post_json(&path, json!({ "code": c })).await }
    };
    // The mailed code verifies (stored keyed, not as its plain SHA-256).
    let stored: Vec<u8> = ctx
        .db
        .query_one("SELECT code_hash FROM rlm_rust_oob_code", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(stored, radius_core::account::hash_token(&code).to_vec());
    let r = verify(code.clone()).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = ctx
        .post_json(
            &format!("{U}{id}/sendoobtoken/"),
            json!({ "channel": "sms" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["sender"], "sms-gateway");
    let sms = sms_seen.lock().unwrap().clone();
    assert_eq!(sms[0]["to"], "+44-7700900123");
    let sms_code = digits6(sms[0]["message"].as_str().unwrap()).unwrap();
    // The used e-mail code no longer counts; the SMS one does, once.
    if sms_code != code {
        verify(code).await.assert_field_error(400, "code");
    }
    assert_eq!(verify(sms_code.clone()).await.status, 200);
    verify(sms_code).await.assert_field_error(400, "code");
    assert_eq!(
        ctx.count("SELECT count(*) FROM rlm_rust_oob_code WHERE used_at IS NOT NULL")
            .await,
        2
    );
    ctx.finish().await;
}

#[tokio::test]
async fn sendoobtoken_reports_delivery_failures() {
    let (bad_url, _) = fake_gateway(500).await;
    // A port nothing listens on: bind, note, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let Some(ctx) = common::setup_with(|c| {
        c.senders.smtp = Some(
            radius_admin::oob::SmtpSender::new(
                &format!("smtp://127.0.0.1:{dead}"),
                "radius@example.org",
            )
            .unwrap(),
        );
        c.senders.sms = Some(radius_admin::oob::SmsGateway::new(&bad_url, None).unwrap());
    })
    .await
    else {
        return;
    };
    let id = ctx
        .user(
            "omar",
            json!({ "email": "omar@example.org", "mobile_number": "+1-5550100" }),
        )
        .await;
    for channel in ["email", "sms"] {
        let r = ctx
            .post_json(
                &format!("{U}{id}/sendoobtoken/"),
                json!({ "channel": channel }),
            )
            .await;
        assert_eq!(
            r.status,
            502,
            "{channel}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("delivery failed"));
    }
    // Undelivered codes are voided: nothing that could be verified.
    assert_eq!(
        ctx.count("SELECT count(*) FROM rlm_rust_oob_code WHERE expires_at > now()")
            .await,
        0
    );
    ctx.finish().await;
}

/// The NT hash of "password", as published with every MS-CHAP guide:
/// an independent check of what radius-admin stores.
const NT_OF_PASSWORD: &str = "8846f7eaee8fb117ad06bdd830b7586c";

async fn nt_hash_of(ctx: &common::Ctx, username: &str) -> Option<String> {
    ctx.db
        .query_one(
            "SELECT nt_hash FROM rlm_rust_user WHERE username = $1",
            &[&username],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn nt_hash_follows_every_password_change() {
    let Some(ctx) = setup().await else { return };
    let r = ctx
        .post_json(U, with(base("nina"), json!({ "password": "password" })))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["has_nt_hash"], true);
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(
        nt_hash_of(&ctx, "nina").await.as_deref(),
        Some(NT_OF_PASSWORD)
    );
    // A user without a password has no NT hash either.
    ctx.user("olga", json!({})).await;
    assert_eq!(nt_hash_of(&ctx, "olga").await, None);
    // PATCH without a password leaves it; with one replaces it.
    let r = ctx
        .patch_json(&format!("{U}{id}/"), json!({ "first_name": "Nina" }))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        nt_hash_of(&ctx, "nina").await.as_deref(),
        Some(NT_OF_PASSWORD)
    );
    let r = ctx
        .patch_json(
            &format!("{U}{id}/"),
            json!({ "password": "nina-password-2" }),
        )
        .await;
    assert_eq!(r.status, 200);
    let want = radius_core::password::nt_hash_hex("nina-password-2");
    assert_ne!(want, NT_OF_PASSWORD);
    assert_eq!(nt_hash_of(&ctx, "nina").await, Some(want));
    // The password endpoint: set, then reset to a generated one.
    let p = format!("{U}{id}/password/");
    assert_eq!(
        ctx.post_json(&p, json!({ "password": "password" }))
            .await
            .status,
        200
    );
    assert_eq!(
        nt_hash_of(&ctx, "nina").await.as_deref(),
        Some(NT_OF_PASSWORD)
    );
    let r = ctx.post_json(&p, json!({})).await;
    let generated = r.json()["password"].as_str().unwrap().to_string();
    assert_eq!(
        nt_hash_of(&ctx, "nina").await,
        Some(radius_core::password::nt_hash_hex(&generated))
    );
    assert_eq!(ctx.authorize("nina", &generated).await.status, 200);
    ctx.finish().await;
}

/// An NT hash of some earlier password, as a site that stored them before
/// turning the option off would have.
async fn set_stale_nt_hash(ctx: &common::Ctx, username: &str) {
    ctx.db
        .execute(
            "UPDATE rlm_rust_user SET nt_hash = $1 WHERE username = $2",
            &[&NT_OF_PASSWORD, &username],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn store_nt_hash_off_keeps_none_and_clears_an_old_one() {
    let Some(ctx) = common::setup_with(|c| c.store_nt_hash = false).await else {
        return;
    };
    let r = ctx
        .post_json(U, with(base("paul"), json!({ "password": "password" })))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["has_nt_hash"], false);
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(nt_hash_of(&ctx, "paul").await, None);
    assert_eq!(ctx.authorize("paul", "password").await.status, 200);
    // A hash left from when the site stored them (or from the module)
    // survives edits that set no password...
    set_stale_nt_hash(&ctx, "paul").await;
    let r = ctx
        .patch_json(&format!("{U}{id}/"), json!({ "last_name": "P" }))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["has_nt_hash"], true);
    // ...and goes with every password change: PATCH, set, reset.
    let r = ctx
        .patch_json(
            &format!("{U}{id}/"),
            json!({ "password": "paul-password-2" }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["has_nt_hash"], false);
    assert_eq!(nt_hash_of(&ctx, "paul").await, None);
    let p = format!("{U}{id}/password/");
    for body in [json!({ "password": "paul-password-3" }), json!({})] {
        set_stale_nt_hash(&ctx, "paul").await;
        assert_eq!(ctx.post_json(&p, body.clone()).await.status, 200);
        assert_eq!(nt_hash_of(&ctx, "paul").await, None, "{body}");
    }
    ctx.finish().await;
}

async fn lock(ctx: &common::Ctx, username: &str, failures: i32, until: &str) {
    ctx.db
        .execute(
            &format!(
                "INSERT INTO rlm_rust_lockout (username, failures, last_failure, locked_until) \
                 VALUES ($1, $2, now(), {until}) ON CONFLICT (username) DO UPDATE \
                 SET failures = EXCLUDED.failures, locked_until = EXCLUDED.locked_until"
            ),
            &[&username, &failures],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn lockout_is_shown_filtered_and_lifted() {
    let Some(ctx) = setup().await else { return };
    let id = ctx
        .user("rosa", json!({ "password": "rosa-password" }))
        .await;
    ctx.user("sven", json!({})).await;
    let url = format!("{U}{id}/");
    let r = ctx.get(&url).await.json();
    assert_eq!(
        (
            &r["active"],
            &r["reason"],
            &r["failed_logins"],
            &r["locked_until"]
        ),
        (&json!(true), &json!(0), &json!(0), &Value::Null)
    );
    // A failures count below the limit is no lock.
    lock(&ctx, "rosa", 3, "NULL").await;
    let r = ctx.get(&url).await.json();
    assert_eq!(r["active"], true);
    assert_eq!(r["failed_logins"], 3);
    // Locked for an hour.
    lock(&ctx, "rosa", 5, "now() + interval '1 hour'").await;
    let r = ctx.get(&url).await.json();
    assert_eq!(r["active"], false, "{r}");
    assert_eq!(r["reason"], 2);
    assert_eq!(r["failed_logins"], 5);
    let until = r["locked_until"]
        .as_str()
        .expect("locked_until")
        .to_string();
    let until = time::OffsetDateTime::parse(&until, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{until}: {e}"));
    let ahead = until - time::OffsetDateTime::now_utc();
    assert!(
        ahead > time::Duration::minutes(55) && ahead <= time::Duration::minutes(61),
        "{ahead}"
    );
    // The list and its active filter say the same.
    let l = ctx.get(&format!("{U}?active=false")).await.json();
    assert_eq!(l["meta"]["total_count"], 1, "{l}");
    assert_eq!(l["objects"][0]["username"], "rosa");
    assert_eq!(l["objects"][0]["reason"], 2);
    let l = ctx.get(&format!("{U}?active=true")).await.json();
    assert_eq!(l["meta"]["total_count"], 1, "{l}");
    assert_eq!(l["objects"][0]["username"], "sven");
    let l = ctx.get(&format!("{U}?username=rosa")).await.json();
    assert_eq!(l["objects"][0]["active"], false);
    // Editing other fields keeps the lock and does not turn it into a
    // manual disable.
    let r = ctx
        .patch_json(&url, json!({ "first_name": "Rosa" }))
        .await
        .json();
    assert_eq!((&r["active"], &r["reason"]), (&json!(false), &json!(2)));
    let stored: bool = ctx
        .db
        .query_one("SELECT active FROM rlm_rust_user WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(stored);
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_lockout").await, 1);
    // Until an administrator unlocks: no end time, still reason 2.
    lock(&ctx, "rosa", 7, "'infinity'").await;
    let r = ctx.get(&url).await.json();
    assert_eq!(
        (
            &r["active"],
            &r["reason"],
            &r["failed_logins"],
            &r["locked_until"]
        ),
        (&json!(false), &json!(2), &json!(7), &Value::Null)
    );
    // The administrator's unlock: PATCH active true deletes the row.
    let r = ctx.patch_json(&url, json!({ "active": true })).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = r.json();
    assert_eq!(
        (&r["active"], &r["reason"], &r["failed_logins"]),
        (&json!(true), &json!(0), &json!(0))
    );
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_lockout").await, 0);
    // An expired lock is no lock.
    lock(&ctx, "rosa", 5, "now() - interval '1 minute'").await;
    let r = ctx.get(&url).await.json();
    assert_eq!(
        (&r["active"], &r["reason"], &r["locked_until"]),
        (&json!(true), &json!(0), &Value::Null)
    );
    assert_eq!(r["failed_logins"], 5);
    assert_eq!(
        ctx.get(&format!("{U}?active=false")).await.json()["meta"]["total_count"],
        0
    );
    // A manual disable of a locked user: stored as such, reason 2 shown
    // while the lock lasts, the manual reason after it is lifted.
    lock(&ctx, "rosa", 5, "'infinity'").await;
    let r = ctx
        .patch_json(&url, json!({ "active": false }))
        .await
        .json();
    assert_eq!((&r["active"], &r["reason"]), (&json!(false), &json!(2)));
    ctx.db
        .execute("DELETE FROM rlm_rust_lockout", &[])
        .await
        .unwrap();
    let r = ctx.get(&url).await.json();
    assert_eq!((&r["active"], &r["reason"]), (&json!(false), &json!(0)));
    ctx.finish().await;
}

#[tokio::test]
async fn a_lock_held_before_the_profile_shows_on_create() {
    let Some(ctx) = setup().await else { return };
    // A stock-table user locked by the module, then given a profile.
    lock(&ctx, "tara", 5, "'infinity'").await;
    let r = ctx.post_json(U, base("tara")).await;
    assert_eq!(r.status, 201, "{}", r.json());
    let r = r.json();
    assert_eq!(
        (&r["active"], &r["reason"], &r["failed_logins"]),
        (&json!(false), &json!(2), &json!(5))
    );
    ctx.finish().await;
}
