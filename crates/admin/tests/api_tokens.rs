//! API tokens: a flood of bogus tokens is refused without a query each, a
//! revoked token at once, a new one within the set's refresh.

mod common;

use radius_admin::auth::{TokenSet, TOKEN_SET_REFRESH};
use radius_core::account::hash_token;

#[tokio::test]
async fn bogus_tokens_cost_no_query_each() {
    let Some(ctx) = common::setup().await else {
        return;
    };
    let pool = radius_admin::db::pool(&ctx.dsn, 2).unwrap();
    let set = TokenSet::default();
    let (_, token) = radius_admin::auth::create(&pool, "t1").await.unwrap();
    assert!(set.may_be_valid(&pool, &hash_token(&token)).await.unwrap());
    // A pool that can only fail: bogus tokens right after a read of the set
    // are refused without it, a valid one is recognised without it too.
    let dead = radius_admin::db::pool("host=127.0.0.1 port=1 user=x dbname=x", 1).unwrap();
    for i in 0..1000 {
        let bogus = hash_token(&format!("bogus-{i}"));
        assert!(!set.may_be_valid(&dead, &bogus).await.unwrap());
    }
    assert!(set.may_be_valid(&dead, &hash_token(&token)).await.unwrap());
    // After the refresh interval a miss reads the set again (and so a
    // token created meanwhile is seen).
    let (_, fresh) = radius_admin::auth::create(&pool, "t2").await.unwrap();
    tokio::time::sleep(TOKEN_SET_REFRESH).await;
    assert!(set.may_be_valid(&dead, &hash_token("bogus")).await.is_err());
    assert!(set.may_be_valid(&pool, &hash_token(&fresh)).await.unwrap());

    // Through HTTP: a revoked token is refused at once.
    let (id, revoked) = radius_admin::auth::create(&pool, "t3").await.unwrap();
    let get = |t: String| {
        let req = ctx.http.get(ctx.url("/api/v1/radiususers/")).bearer_auth(t);
        ctx.send(req)
    };
    assert_eq!(get(revoked.clone()).await.status.as_u16(), 200);
    assert!(radius_admin::auth::revoke(&pool, id).await.unwrap());
    assert_eq!(get(revoked).await.status.as_u16(), 403);
    assert_eq!(get("bogus".into()).await.status.as_u16(), 403);
    ctx.finish().await;
}
