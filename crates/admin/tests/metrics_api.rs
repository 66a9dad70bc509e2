//! radius-admin's `/metrics`: exact counts after known calls, labelled by
//! route template, and hostile paths and methods that add no series.

mod common;

use common::setup;
use reqwest::Method;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

fn requests(text: &str, method: &str, route: &str, status: u16) -> Option<f64> {
    value(
        text,
        &format!(
            "radius_admin_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
        ),
    )
}

/// The distinct `route` labels in the exposition.
fn routes(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = &l[l.find("route=\"")? + 7..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

#[tokio::test]
async fn requests_are_counted_by_route_template() {
    let Some(ctx) = setup().await else { return };
    // Open, as scrapers expect: no token.
    let r = ctx.send(ctx.http.get(ctx.url("/metrics"))).await;
    assert_eq!(r.status, 200);
    let ct = r.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");

    let id = ctx.user("metrics-alice", serde_json::json!({})).await;
    for _ in 0..2 {
        assert_eq!(ctx.get("/api/v1/radiususers/").await.status, 200);
    }
    assert_eq!(
        ctx.get(&format!("/api/v1/radiususers/{id}/")).await.status,
        200
    );
    assert_eq!(ctx.get("/api/v1/radiususers/999999/").await.status, 404);
    let r = ctx
        .send(ctx.http.get(ctx.url("/api/v1/radiususers/")))
        .await;
    assert_eq!(r.status, 401, "no token");

    let r = ctx.send(ctx.http.get(ctx.url("/metrics"))).await;
    let text = String::from_utf8(r.body).unwrap();
    let users = "/api/v1/radiususers/";
    let user = "/api/v1/radiususers/{id}/";
    assert_eq!(requests(&text, "GET", users, 200), Some(2.0), "{text}");
    assert_eq!(requests(&text, "GET", users, 401), Some(1.0));
    assert_eq!(requests(&text, "POST", users, 201), Some(1.0));
    assert_eq!(requests(&text, "GET", user, 200), Some(1.0));
    assert_eq!(requests(&text, "GET", user, 404), Some(1.0));
    // The first scrape, counted once it was answered.
    assert_eq!(requests(&text, "GET", "/metrics", 200), Some(1.0));
    let latency = |route: &str| {
        value(
            &text,
            &format!(
                "radius_admin_http_request_duration_seconds_count{{method=\"GET\",route=\"{route}\"}}"
            ),
        )
    };
    assert_eq!(latency(users), Some(3.0));
    assert_eq!(latency(user), Some(2.0));
    // Templates only: neither the id nor 999999 is a label.
    assert_eq!(
        routes(&text),
        [users, user, "/metrics"].map(String::from).into(),
        "{text}"
    );
    ctx.finish().await;
}

#[tokio::test]
async fn hostile_paths_and_methods_make_no_new_series() {
    let Some(ctx) = setup().await else { return };
    // A first pass so every series these requests can reach exists.
    let hostile = |i: usize| {
        [
            format!("/no/such/thing-{i}"),
            format!("/api/v1/radiususers/%00evil-{i}%3Cscript%3E/"),
            format!("/api/v1/%2e%2e/%2e%2e/etc/passwd-{i}"),
            format!("/api/v1/groups/g-{i}/members/u-{i}/extra-{i}"),
            format!("/metrics/{i}"),
        ]
    };
    let odd = Method::from_bytes(b"FROBNICATE").unwrap();
    let send_all = |i: usize| {
        let ctx = &ctx;
        let odd = odd.clone();
        async move {
            for p in hostile(i) {
                let r = ctx.get(&p).await;
                assert!(r.status.is_client_error(), "{p}: {}", r.status);
                let r = ctx.send(ctx.req(odd.clone(), &p)).await;
                assert!(r.status.is_client_error(), "FROBNICATE {p}: {}", r.status);
            }
        }
    };
    send_all(0).await;
    let scrape = || async {
        let r = ctx.send(ctx.http.get(ctx.url("/metrics"))).await;
        String::from_utf8(r.body).unwrap()
    };
    let before = scrape().await;
    for i in 1..=20 {
        send_all(i).await;
    }
    let after = scrape().await;
    let series = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#') && !l.contains("route=\"/metrics\""))
            .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(series(&before), series(&after), "new series:\n{after}");
    for needle in ["evil", "passwd", "thing-", "extra-", "script"] {
        assert!(!after.contains(needle), "{needle} in a label:\n{after}");
    }
    assert_eq!(
        routes(&after),
        ["/api/v1/radiususers/{id}/", "/metrics", "unmatched"]
            .map(String::from)
            .into(),
        "{after}"
    );
    // The unknown method is one label, whatever its spelling.
    assert!(after.contains("method=\"other\""), "{after}");
    assert!(!after.contains("FROBNICATE"));
    // And all 21 rounds were counted under the templates.
    let unmatched: f64 = after
        .lines()
        .filter(|l| l.starts_with("radius_admin_http_requests_total{") && l.contains("unmatched"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(unmatched, 21.0 * 8.0, "{after}");
    ctx.finish().await;
}
