//! The user cache through a database outage, against a real PostgreSQL
//! behind a TCP proxy the test controls: held users are served while the
//! database cannot be reached (and only then), unknown ones fail, the
//! cache is revalidated when the database is back, and a database that is
//! only slow (its connections held open, nothing answered) neither empties
//! the cache nor slows what it holds.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use radius_core::config::ModuleConfig;
use radius_core::lookup::Lookup;
use radius_core::store::Store;

mod common;
use common::TestDb;

// ---------------------------------------------------------------------------
// A TCP proxy that can be down or stalled.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Nothing is forwarded, every socket stays open (a hung host).
    Stall,
    /// Every connection is cut and new ones are closed at once.
    Down,
}

struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    mode: Mode,
    /// Bumped when connections are cut: their pumps stop.
    generation: u64,
    sockets: Vec<TcpStream>,
    closed: bool,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: Mode::Forward,
                generation: 0,
                sockets: Vec::new(),
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let sh = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let generation = {
                    let st = sh.state.lock().unwrap();
                    if st.closed {
                        break;
                    }
                    if st.mode == Mode::Down {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    st.generation
                };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut st = sh.state.lock().unwrap();
                    st.sockets.push(client.try_clone().unwrap());
                    st.sockets.push(server.try_clone().unwrap());
                }
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let sh = Arc::clone(&sh);
                    std::thread::spawn(move || pump(from, to, &sh, generation));
                }
            }
        });
        Proxy { port, shared }
    }

    fn set(&self, mode: Mode) {
        let mut st = self.shared.state.lock().unwrap();
        if mode == Mode::Down {
            for s in st.sockets.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
            st.generation += 1;
        }
        st.mode = mode;
        drop(st);
        self.shared.changed.notify_all();
    }

    fn dsn(&self, dsn: &str, dbname: &str) -> String {
        let cfg: tokio_postgres::Config = dsn.parse().unwrap();
        let mut out = format!("host=127.0.0.1 port={} dbname={dbname}", self.port);
        if let Some(user) = cfg.get_user() {
            out.push_str(&format!(" user={user}"));
        }
        if let Some(pw) = cfg.get_password() {
            out.push_str(&format!(" password={}", String::from_utf8_lossy(pw)));
        }
        out
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().closed = true;
        self.set(Mode::Down);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, generation: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let st = shared
            .changed
            .wait_while(shared.state.lock().unwrap(), |s| {
                s.mode == Mode::Stall && s.generation == generation
            })
            .unwrap();
        if st.generation != generation {
            return;
        }
        drop(st);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn upstream_of(dsn: &str) -> SocketAddr {
    let cfg: tokio_postgres::Config = dsn.parse().unwrap();
    let host = match &cfg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("the outage tests need a TCP test cluster, not {other:?}"),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap()
}

// ---------------------------------------------------------------------------

/// A store through `proxy` with a cache, preloaded, and its listener up.
async fn store_via(proxy: &Proxy, db: &TestDb, items: &[(&str, &str)]) -> Arc<Store> {
    let dsn = proxy.dsn(&db.dsn, &db.name);
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
    let proxy = Proxy::start(upstream_of(&db.dsn));
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
    let proxy = Proxy::start(upstream_of(&db.dsn));
    let store = store_via(&proxy, &db, &[]).await;
    let cache = Arc::clone(store.cache().unwrap());
    let killed: i64 = db
        .client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'rlm_rust listener' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
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
    let proxy = Proxy::start(upstream_of(&db.dsn));
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
    let proxy = Proxy::start(upstream_of(&db.dsn));
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
