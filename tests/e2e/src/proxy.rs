//! A TCP proxy in front of the shared PostgreSQL that one test can take
//! down or stall, so that its outage touches no other test. Also compiled
//! into the core's tests (crates/core/tests/common), which cannot depend on
//! this crate.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    /// Connections stay open and nothing is forwarded: a hung host, or a
    /// PostgreSQL under SIGSTOP.
    Stall,
    /// Open connections are cut and new ones closed at once: a stopped
    /// PostgreSQL.
    Down,
}

struct Shared {
    mode: Mutex<Mode>,
    /// Bumped when connections are cut: their pumps stop.
    cuts: AtomicU64,
    closed: AtomicBool,
    accepted: AtomicUsize,
    /// Both ends of every connection, shut down when connections are cut:
    /// at once, not when a pump next looks.
    sockets: Mutex<Vec<TcpStream>>,
    upstream: SocketAddr,
}

impl Shared {
    fn cut(&self) {
        self.cuts.fetch_add(1, Ordering::SeqCst);
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Stopped (every connection cut) when dropped.
pub struct PgProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl PgProxy {
    /// A proxy on a free loopback port to `upstream`.
    pub fn start(upstream: SocketAddr) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Forward),
            cuts: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            sockets: Mutex::new(Vec::new()),
            upstream,
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || accept_loop(listener, s));
        PgProxy { port, shared }
    }

    /// A proxy to the server of `dsn` (libpq key=value, a loopback host).
    pub fn for_dsn(dsn: &str) -> PgProxy {
        let get = |k: &str| {
            dsn.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
        };
        let host = get("host").unwrap_or("127.0.0.1");
        let port: u16 = get("port").and_then(|p| p.parse().ok()).unwrap_or(5432);
        let addr = format!("{host}:{port}")
            .parse()
            .expect("a numeric loopback host in the DSN");
        PgProxy::start(addr)
    }

    /// `dsn` (libpq key=value) with host and port replaced by the proxy's.
    pub fn dsn(&self, dsn: &str) -> String {
        let mut parts: Vec<String> = dsn
            .split_whitespace()
            .filter(|kv| !kv.starts_with("host=") && !kv.starts_with("port="))
            .map(str::to_string)
            .collect();
        parts.push("host=127.0.0.1".into());
        parts.push(format!("port={}", self.port));
        parts.join(" ")
    }

    /// Ends a stall as a partition that heals with resets: every
    /// connection made so far is cut, new ones are forwarded.
    pub fn sever(&self) {
        *self.shared.mode.lock().unwrap() = Mode::Forward;
        self.shared.cut();
        // The resets are sent; the peers' I/O tasks read them when next
        // scheduled, which a loaded machine may delay past the caller's
        // next request (seen once in a parallel run). Nothing observable
        // from here marks it, so a short pause stands for it.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        if mode == Mode::Down {
            self.shared.cut();
        }
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.cut();
    }
}

fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    while !s.closed.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if *s.mode.lock().unwrap() == Mode::Down {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&s.upstream, Duration::from_secs(2))
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                s.accepted.fetch_add(1, Ordering::SeqCst);
                if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                    s.sockets.lock().unwrap().extend([a, b]);
                }
                let generation = s.cuts.load(Ordering::SeqCst);
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let s = Arc::clone(&s);
                    std::thread::spawn(move || pump(from, to, &s, generation));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Copies `from` to `to` while the mode forwards; stops (closing both)
/// when the connection is cut or either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, s: &Shared, generation: u64) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 64 * 1024];
    loop {
        if s.cuts.load(Ordering::SeqCst) != generation {
            break;
        }
        if *s.mode.lock().unwrap() == Mode::Stall {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Read just as a stall began: held until it ends (or the
                // connection is cut), never let through.
                while *s.mode.lock().unwrap() == Mode::Stall
                    && s.cuts.load(Ordering::SeqCst) == generation
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if s.cuts.load(Ordering::SeqCst) != generation || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
