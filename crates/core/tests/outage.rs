//! The user cache through a database outage, against a real PostgreSQL
//! behind a TCP proxy the test controls: held users are served while the
//! database cannot be reached (and only then), unknown ones fail, the
//! cache is revalidated when the database is back, and a database that is
//! only slow (its connections held open, nothing answered) neither empties
//! the cache nor slows what it holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use radius_core::config::ModuleConfig;
use radius_core::lookup::Lookup;
use radius_core::store::Store;

mod common;
use common::proxy::{Mode, PgProxy};
use common::TestDb;

// ---------------------------------------------------------------------------

/// A store through `proxy` with a cache, preloaded, and its listener up.
async fn store_via(proxy: &PgProxy, db: &TestDb, items: &[(&str, &str)]) -> Arc<Store> {
    let dsn = proxy.dsn(&db.dsn);
    let mut all = vec![
        ("dsn", dsn.as_str()),
        ("auto_migrate", "no"),
        ("query_timeout", "0.5"),
        ("connect_timeout", "0.5"),
    ];
    all.extend_from_slice(items);
    let mut store = Store::new(&ModuleConfig::from_items(all).unwrap()).unwrap();
    store
        .start_background(&tokio::runtime::Handle::current(), 1000, true)
        .unwrap();
    let cache = Arc::clone(store.cache().unwrap());
    wait_for("the listener", Duration::from_secs(10), || {
        cache.is_live() && cache.counts().0 == 3
    })
    .await;
    Arc::new(store)
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn password_of(l: &Lookup) -> &str {
    l.user
        .check
        .iter()
        .find(|r| r.attribute == "Cleartext-Password")
        .map(|r| r.value.as_str())
        .unwrap_or_default()
}

async fn seed(db: &TestDb) {
    db.client
        .batch_execute(
            "INSERT INTO radcheck (username, attribute, op, value) VALUES \
               ('alice', 'Cleartext-Password', ':=', 'pw-a'), \
               ('bob', 'Cleartext-Password', ':=', 'pw-b'), \
               ('carol', 'Cleartext-Password', ':=', 'pw-c')",
        )
        .await
        .unwrap();
}

async fn set_password(db: &TestDb, user: &str, pw: &str) {
    db.client
        .execute(
            "UPDATE radcheck SET value = $2 WHERE username = $1",
            &[&user, &pw],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_users_are_served_through_an_outage_and_revalidated_after() {
    let db = TestDb::new("outage").await;
    seed(&db).await;
    let proxy = PgProxy::for_dsn(&db.dsn);
    let store = store_via(&proxy, &db, &[]).await;
    let cache = Arc::clone(store.cache().unwrap());
    // A name that does not exist, held as such.
    store.lookup("ghost").await.unwrap();
    assert_eq!(cache.counts(), (3, 1));
    // carol will be unknown to the cache when the outage starts.
    cache.invalidate("carol");

    proxy.set(Mode::Down);
    wait_for("the listener lost", Duration::from_secs(5), || {
        !cache.is_live()
    })
    .await;
    // At once, before the listener has tried again: served all the same.
    assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw-a");
    // The far side of a partition changes bob: still served as held.
    set_password(&db, "bob", "pw-b2").await;
    wait_for("the database known away", Duration::from_secs(5), || {
        cache.is_unreachable()
    })
    .await;
    for _ in 0..20 {
        let t = Instant::now();
        let alice = store.lookup("alice").await.unwrap();
        assert_eq!(password_of(&alice), "pw-a");
        assert_eq!(password_of(&store.cached("bob").unwrap()), "pw-b");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "a held user waited {:?} for the database",
            t.elapsed()
        );
    }
    // Not held: fails (not "no such user"), so a NAS can go elsewhere.
    assert!(store.lookup("carol").await.is_err(), "carol served");
    assert!(
        store.lookup("ghost").await.is_err(),
        "unknown name answered"
    );
    assert!(store.lookup("dave").await.is_err());
    assert!(cache.outage_hits() >= 21);
    assert_eq!(cache.counts(), (2, 1), "nothing new kept during the outage");

    proxy.set(Mode::Forward);
    wait_for("the listener back", Duration::from_secs(10), || {
        cache.is_live()
    })
    .await;
    // Revalidated: bob's change made during the outage is read.
    assert_eq!(password_of(&store.lookup("bob").await.unwrap()), "pw-b2");
    assert_eq!(password_of(&store.lookup("carol").await.unwrap()), "pw-c");
    assert!(store.lookup("dave").await.unwrap().user.check.is_empty());
    drop(proxy);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_with_the_database_up_serves_nothing_stale() {
    let db = TestDb::new("outage_up").await;
    seed(&db).await;
    let proxy = PgProxy::for_dsn(&db.dsn);
    let store = store_via(&proxy, &db, &[]).await;
    let cache = Arc::clone(store.cache().unwrap());
    let killed = db.terminate_listener().await;
    assert_eq!(killed, 1);
    // pg_terminate_backend only signals: wait until the module has seen it.
    wait_for("the listener lost", Duration::from_secs(5), || {
        !cache.is_live()
    })
    .await;
    set_password(&db, "alice", "pw-a2").await;
    // Until the listener is back, the database is asked, and it answers.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw-a2");
    }
    wait_for("the listener back", Duration::from_secs(10), || {
        cache.is_live()
    })
    .await;
    assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw-a2");
    drop(proxy);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_serving_ends_after_outage_max_stale_and_can_be_off() {
    let db = TestDb::new("outage_stale").await;
    seed(&db).await;
    let proxy = PgProxy::for_dsn(&db.dsn);
    let bounded = store_via(&proxy, &db, &[("outage_max_stale", "2")]).await;
    let off = store_via(&proxy, &db, &[("outage_serve_cached", "no")]).await;
    proxy.set(Mode::Down);
    for store in [&bounded, &off] {
        let cache = Arc::clone(store.cache().unwrap());
        wait_for("the listener lost", Duration::from_secs(5), || {
            !cache.is_live()
        })
        .await;
    }
    assert!(bounded.lookup("alice").await.is_ok());
    assert!(off.lookup("alice").await.is_err(), "served with it off");
    assert!(off.cache().unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        bounded.lookup("alice").await.is_err(),
        "served past its bound"
    );
    drop(proxy);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_keeps_the_cache_and_its_speed() {
    let db = TestDb::new("outage_stall").await;
    seed(&db).await;
    let proxy = PgProxy::for_dsn(&db.dsn);
    let store = store_via(&proxy, &db, &[]).await;
    let cache = Arc::clone(store.cache().unwrap());

    // Longer than the probe interval and its wait (1 s each).
    proxy.set(Mode::Stall);
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(4) {
        let asked = Instant::now();
        let alice = store.lookup("alice").await.unwrap();
        worst = worst.max(asked.elapsed());
        assert_eq!(password_of(&alice), "pw-a");
        assert!(cache.is_live(), "a slow probe took the cache down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        worst < Duration::from_millis(10),
        "a held user took {worst:?}"
    );
    assert_eq!(cache.counts().0, 3, "a slow probe emptied the cache");
    // A miss waits for the stalled database and fails within query_timeout.
    cache.invalidate("carol");
    let asked = Instant::now();
    assert!(store.lookup("carol").await.is_err());
    assert!(asked.elapsed() < Duration::from_secs(2));

    // The database wakes up: the same listener goes on, and a change made
    // after is followed.
    proxy.set(Mode::Forward);
    set_password(&db, "alice", "pw-a3").await;
    wait_for("the change followed", Duration::from_secs(3), || {
        store
            .cached("alice")
            .is_none_or(|a| password_of(&a) == "pw-a3")
    })
    .await;
    assert!(cache.is_live());
    assert_eq!(password_of(&store.lookup("alice").await.unwrap()), "pw-a3");
    drop(proxy);
    db.drop_db().await;
}
