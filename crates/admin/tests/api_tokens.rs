//! API tokens (issue 14): bogus tokens are refused from memory without a
//! query each, a client sending many gets 429 while a valid client keeps
//! getting 200s, a new token works within the refresh time, a revoked one
//! is refused at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use radius_admin::auth::{TokenSet, REFRESH_AFTER};
use radius_core::account::hash_token;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bogus_tokens_cost_no_query() {
    let Some(ctx) = common::setup().await else {
        return;
    };
    let pool = radius_admin::db::pool(&ctx.dsn, 8).unwrap();
    let set = Arc::new(TokenSet::new(0));
    let (_, token) = radius_admin::auth::create(&pool, "t1", &[], None)
        .await
        .map(|c| (c.id, c.token))
        .unwrap();
    assert!(set.refresh_for(&pool, &hash_token(&token)).await.unwrap());
    assert!(set.holds(&hash_token(&token)));
    // While the copy is fresh, 200 bogus tokens are refused with a pool
    // that can only fail: none of them touched the database.
    let dead = radius_admin::db::pool("host=127.0.0.1 port=1 user=x dbname=x", 1).unwrap();
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let (set, dead) = (Arc::clone(&set), dead.clone());
            tokio::spawn(async move {
                set.refresh_for(&dead, &hash_token(&format!("bogus-{i}")))
                    .await
            })
        })
        .collect();
    for f in flood {
        assert!(!f.await.unwrap().unwrap());
    }
    // Once stale, an unknown digest reads the table again (here: fails).
    tokio::time::sleep(REFRESH_AFTER + Duration::from_millis(50)).await;
    assert!(set.refresh_for(&dead, &hash_token("bogus")).await.is_err());
    assert!(!set.refresh_for(&pool, &hash_token("bogus")).await.unwrap());

    // Through HTTP: a new token works within the refresh time, a revoked
    // one is refused at once.
    let get = |t: String| {
        let req = ctx.http.get(ctx.url("/api/v1/radiususers/")).bearer_auth(t);
        ctx.send(req)
    };
    assert_eq!(get("bogus".into()).await.status.as_u16(), 403);
    let (id, fresh) = radius_admin::auth::create(&pool, "t2", &[], None)
        .await
        .map(|c| (c.id, c.token))
        .unwrap();
    tokio::time::sleep(REFRESH_AFTER + Duration::from_millis(50)).await;
    assert_eq!(get(fresh.clone()).await.status.as_u16(), 200);
    assert!(radius_admin::auth::revoke(&pool, id).await.unwrap());
    assert_eq!(get(fresh).await.status.as_u16(), 403);
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bogus_tokens_is_throttled_while_valid_clients_get_200() {
    let Some(ctx) = common::setup_with(|c| c.bad_token_limit = 20).await else {
        return;
    };
    let pool = radius_admin::db::pool(&ctx.dsn, 2).unwrap();
    let (_, stored) = radius_admin::auth::create(&pool, "nas", &[], None)
        .await
        .map(|c| (c.id, c.token))
        .unwrap();
    let ctx = Arc::new(ctx);
    // The stored token is seen once before the flood (it is then in memory).
    tokio::time::sleep(REFRESH_AFTER + Duration::from_millis(50)).await;
    let ok = |t: String| {
        let ctx = Arc::clone(&ctx);
        async move {
            let req = ctx.http.get(ctx.url("/api/v1/groups/")).bearer_auth(t);
            ctx.send(req).await.status.as_u16()
        }
    };
    assert_eq!(ok(stored.clone()).await, 200);

    let flooders: Vec<_> = (0..8)
        .map(|w| {
            let ctx = Arc::clone(&ctx);
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeMap::<u16, usize>::new();
                let mut retry_after = None;
                for i in 0..100 {
                    let req = ctx
                        .http
                        .get(ctx.url("/api/v1/radiususers/"))
                        .bearer_auth(format!("bogus-{w}-{i}"));
                    let r = ctx.send(req).await;
                    *seen.entry(r.status.as_u16()).or_default() += 1;
                    if r.status == 429 {
                        retry_after = r.headers.get("retry-after").cloned();
                        assert_eq!(r.json()["detail"], "too many invalid tokens; retry later");
                    }
                }
                (seen, retry_after)
            })
        })
        .collect();
    // Meanwhile the valid clients, from the same address, keep getting 200.
    let mut valid = 0;
    for _ in 0..40 {
        assert_eq!(ok(common::TOKEN.to_string()).await, 200);
        assert_eq!(ok(stored.clone()).await, 200);
        valid += 2;
    }
    let mut total = std::collections::BTreeMap::<u16, usize>::new();
    for f in flooders {
        let (seen, retry_after) = f.await.unwrap();
        for (k, v) in seen {
            *total.entry(k).or_default() += v;
        }
        if let Some(r) = retry_after {
            let secs: u64 = r.to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&secs), "{secs}");
        }
    }
    assert_eq!(valid, 80);
    assert_eq!(
        total.keys().copied().collect::<Vec<_>>(),
        [403, 429],
        "{total:?}"
    );
    assert!(total[&403] <= 20 + 8, "{total:?}");
    assert_eq!(total.values().sum::<usize>(), 800);
    // Still refused, still throttled; the valid token still passes.
    assert_eq!(ok("bogus".into()).await, 429);
    assert_eq!(ok(stored).await, 200);
    Arc::try_unwrap(ctx).ok().unwrap().finish().await;
}
