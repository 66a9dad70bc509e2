//! API tokens: a flood of bogus tokens holds at most one database
//! connection, a new token works at once, a revoked one is refused at once.

mod common;

use std::sync::Arc;

use radius_admin::auth::TokenSet;
use radius_core::account::hash_token;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bogus_tokens_hold_one_connection_at_most() {
    let Some(ctx) = common::setup().await else {
        return;
    };
    let pool = radius_admin::db::pool(&ctx.dsn, 8).unwrap();
    let set = Arc::new(TokenSet::default());
    let (_, token) = radius_admin::auth::create(&pool, "t1").await.unwrap();
    assert!(set.may_be_valid(&pool, &hash_token(&token)).await.unwrap());
    // Known: answered from memory, even with a pool that can only fail.
    let dead = radius_admin::db::pool("host=127.0.0.1 port=1 user=x dbname=x", 1).unwrap();
    assert!(set.may_be_valid(&dead, &hash_token(&token)).await.unwrap());

    // 200 bogus tokens at once, while the pool's use is watched.
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (pool, watching) = (pool.clone(), Arc::clone(&watching));
        tokio::spawn(async move {
            let mut most = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let s = pool.status();
                most = most.max(s.size - s.available);
                tokio::task::yield_now().await;
            }
            most
        })
    };
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let (set, pool) = (Arc::clone(&set), pool.clone());
            tokio::spawn(async move {
                set.may_be_valid(&pool, &hash_token(&format!("bogus-{i}")))
                    .await
            })
        })
        .collect();
    for f in flood {
        assert!(!f.await.unwrap().unwrap());
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.await.unwrap();
    assert!(most <= 1, "bogus tokens held {most} connections at once");

    // Through HTTP: a new token works at once, a revoked one is refused at once.
    let get = |t: String| {
        let req = ctx.http.get(ctx.url("/api/v1/radiususers/")).bearer_auth(t);
        ctx.send(req)
    };
    assert_eq!(get("bogus".into()).await.status.as_u16(), 403);
    let (id, fresh) = radius_admin::auth::create(&pool, "t2").await.unwrap();
    assert_eq!(get(fresh.clone()).await.status.as_u16(), 200);
    assert!(radius_admin::auth::revoke(&pool, id).await.unwrap());
    assert_eq!(get(fresh).await.status.as_u16(), 403);
    ctx.finish().await;
}
