//! Issue 14: hostile input is refused with a 4xx JSON error naming the
//! field, before it reaches PostgreSQL (each of these once answered 503),
//! and the service keeps serving.

mod common;

use common::{setup, Ctx};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

fn acct(extra: Value) -> Value {
    let mut b = json!({
        "status_type": "Start",
        "session_id": "s-1",
        "unique_id": "u-1",
        "username": "eve",
        "nas_ip_address": "192.0.2.1",
        "start_time": "2024-03-10 15:04:17",
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

async fn still_serving(ctx: &Ctx) {
    assert_eq!(ctx.get("/api/v1/radiususers/").await.status, 200);
    assert_eq!(ctx.get("/api/v1/accounting/").await.status, 200);
}

#[tokio::test]
async fn group_names_with_nul_in_the_path() {
    let Some(ctx) = setup().await else { return };
    ctx.get("/api/v1/groups/a%00b/")
        .await
        .assert_field_error(400, "name");
    ctx.get("/api/v1/groups/a%00b/members/")
        .await
        .assert_field_error(400, "name");
    ctx.delete("/api/v1/groups/a%00b/")
        .await
        .assert_field_error(400, "name");
    ctx.patch_json("/api/v1/groups/a%00b/", json!({ "description": "x" }))
        .await
        .assert_field_error(400, "name");
    ctx.post_json("/api/v1/groups/a%00b/members/", json!({ "username": "u" }))
        .await
        .assert_field_error(400, "name");
    ctx.delete("/api/v1/groups/g/members/a%00b/")
        .await
        .assert_field_error(400, "username");
    let long = "g".repeat(6000);
    ctx.get(&format!("/api/v1/groups/{long}/"))
        .await
        .assert_field_error(400, "name");
    // A member's username is a RADIUS User-Name.
    assert_eq!(
        ctx.post_json("/api/v1/groups/", json!({ "name": "g" }))
            .await
            .status,
        201
    );
    ctx.post_json(
        "/api/v1/groups/g/members/",
        json!({ "username": "u".repeat(6000) }),
    )
    .await
    .assert_field_error(400, "username");
    still_serving(&ctx).await;
    ctx.finish().await;
}

#[tokio::test]
async fn out_of_range_times() {
    let Some(ctx) = setup().await else { return };
    let user = |exp: &str| json!({ "username": "ann", "server_name": "r", "server_address": "192.0.2.1", "expiration": exp });
    for exp in [
        "99999999999999",
        "253402300800",
        "99999999999999999999999999",
        "0000-12-31",
    ] {
        ctx.post_json("/api/v1/radiususers/", user(exp))
            .await
            .assert_field_error(400, "expiration");
    }
    // A 10-digit epoch is an epoch, not a malformed date.
    let r = ctx
        .post_json("/api/v1/radiususers/", user("1700000000"))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["expiration"], "2023-11-14T22:13:20.000000Z");
    let id = r.json()["id"].as_i64().unwrap();
    ctx.patch_json(
        &format!("/api/v1/radiususers/{id}/"),
        json!({ "expiration": "99999999999999" }),
    )
    .await
    .assert_field_error(400, "expiration");
    for f in ["start_time", "update_time", "stop_time"] {
        ctx.post_json("/api/v1/accounting/", acct(json!({ f: "99999999999999" })))
            .await
            .assert_field_error(400, f);
    }
    ctx.get("/api/v1/accounting/?start_time=99999999999999")
        .await
        .assert_field_error(400, "start_time");
    ctx.get("/api/v1/accounting/?stop_time=99999-01-01")
        .await
        .assert_field_error(400, "stop_time");
    still_serving(&ctx).await;
    ctx.finish().await;
}

#[tokio::test]
async fn paging_that_would_overflow() {
    let Some(ctx) = setup().await else { return };
    ctx.get("/api/v1/accounting/?page=9223372036854775807&page_size=1000")
        .await
        .assert_field_error(400, "page");
    ctx.get("/api/v1/accounting/?page=99999999999999999999")
        .await
        .assert_field_error(400, "page");
    // The largest page allowed is an empty answer, not an error.
    let r = ctx
        .get("/api/v1/accounting/?page=1000000&page_size=1000")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([]));
    for q in [
        "offset=9223372036854775807",
        "offset=9223372036854775000&limit=1000",
        "offset=-1",
        "limit=0",
        "limit=9223372036854775807",
    ] {
        let field = q.split('=').next().unwrap();
        ctx.get(&format!("/api/v1/radiususers/?{q}"))
            .await
            .assert_field_error(400, field);
    }
    let r = ctx.get("/api/v1/radiususers/?offset=1000000000").await;
    assert_eq!(r.status, 200);
    ctx.get(&format!(
        "/api/v1/radiususers/?username__in={}",
        "a,".repeat(3000)
    ))
    .await
    .assert_field_error(400, "username__in");
    still_serving(&ctx).await;
    ctx.finish().await;
}

#[tokio::test]
async fn accounting_values_beyond_their_columns() {
    let Some(ctx) = setup().await else { return };
    let big = "x".repeat(6 * 1024);
    for f in [
        "unique_id",
        "session_id",
        "username",
        "nas_port_id",
        "called_station_id",
        "terminate_cause",
        "groupname",
    ] {
        ctx.post_json("/api/v1/accounting/", acct(json!({ f: big })))
            .await
            .assert_field_error(400, f);
    }
    for (f, v) in [
        ("session_time", json!(18446744073709551615u64)),
        ("session_time", json!("18446744073709551615")),
        ("session_time", json!(4294967296u64)),
        ("input_octets", json!(18446744073709551615u64)),
        ("output_octets", json!("9223372036854775808")),
        ("interval", json!(-1)),
    ] {
        ctx.post_json("/api/v1/accounting/", acct(json!({ f: v })))
            .await
            .assert_field_error(400, f);
    }
    // The largest values that fit are written.
    let r = ctx
        .post_json(
            "/api/v1/accounting/",
            acct(json!({
                "status_type": "Stop", "stop_time": "2024-03-10 16:04:17",
                "session_time": 4294967295u64, "input_octets": 9223372036854775807u64,
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        ctx.count("SELECT acctinputoctets FROM radacct").await,
        i64::MAX
    );
    ctx.get(&format!("/api/v1/accounting/?username={big}"))
        .await
        .assert_field_error(400, "username");
    still_serving(&ctx).await;
    ctx.finish().await;
}

#[tokio::test]
async fn long_login_and_postauth_values() {
    let Some(ctx) = setup().await else { return };
    let big = "x".repeat(6 * 1024);
    ctx.post_json(
        "/api/v1/postauth/",
        json!({ "username": big, "reply": "Access-Reject" }),
    )
    .await
    .assert_field_error(400, "username");
    ctx.post_json(
        "/api/v1/postauth/",
        json!({ "username": "eve", "reply": "Access-Reject", "calling_station_id": big }),
    )
    .await
    .assert_field_error(400, "calling_station_id");
    assert_eq!(ctx.count("SELECT count(*) FROM radpostauth").await, 0);
    ctx.authorize(&big, "password")
        .await
        .assert_field_error(400, "username");
    ctx.authorize("eve", &big)
        .await
        .assert_field_error(400, "password");
    let r = ctx
        .send(
            ctx.http
                .post(ctx.url("/api/v1/token/"))
                .json(&json!({ "username": big, "password": "x" })),
        )
        .await;
    r.assert_field_error(400, "username");
    // Nothing was counted against anyone.
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_lockout").await, 0);
    still_serving(&ctx).await;
    ctx.finish().await;
}

#[tokio::test]
async fn nul_in_csv_names() {
    let Some(ctx) = setup().await else { return };
    for csv in [
        "ann,secret-pw,,A\0n,A\n",
        "ann,secret-pw,,Ann,A\0\n",
        "a\0nn,secret-pw,,Ann,A\n",
    ] {
        let form = Form::new()
            .text("name", "nul")
            .text("strategy", "csv")
            .part(
                "csvfile",
                Part::bytes(csv.as_bytes().to_vec()).file_name("u.csv"),
            );
        let r = ctx
            .send(ctx.req(Method::POST, "/api/v1/batch/").multipart(form))
            .await;
        r.assert_field_error(400, "csvfile");
        assert!(r.json()["detail"].as_str().unwrap().contains("row 1"));
    }
    let r = ctx
        .post_json(
            "/api/v1/batch/",
            json!({ "name": "b", "strategy": "prefix", "prefix": "g", "number_of_users": 1, "expiration_date": "0000-01-01" }),
        )
        .await;
    r.assert_field_error(400, "expiration_date");
    assert_eq!(ctx.count("SELECT count(*) FROM rlm_rust_user").await, 0);
    still_serving(&ctx).await;
    ctx.finish().await;
}
