//! What counting one request costs the radiusd thread: the clock read the
//! callback wrapper adds, and `Metrics::request`, from one and from two
//! threads at once (the histogram's mutex is shared by a section).
//!
//!   cargo run --release -p radius-core --example metrics_cost

use std::sync::Arc;
use std::time::{Duration, Instant};

use radius_core::metrics::{Metrics, Rcode, Section};

const N: u32 = 5_000_000;

fn per_call(threads: u32, f: impl Fn() + Send + Sync + 'static) -> Duration {
    let f = Arc::new(f);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                for _ in 0..N {
                    f();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Wall time per call on each thread.
    start.elapsed() / N
}

fn main() {
    let clock = || {
        std::hint::black_box(Instant::now().elapsed());
    };
    let m = Arc::new(Metrics::new());
    let count = {
        let m = Arc::clone(&m);
        move || {
            let t = Instant::now();
            m.request(Section::Authorize, Rcode::Ok, t.elapsed());
        }
    };
    for threads in [1, 2] {
        println!(
            "{threads} thread(s): clock alone {:?}, clock + Metrics::request {:?} per request",
            per_call(threads, clock),
            per_call(threads, count.clone()),
        );
    }
}
