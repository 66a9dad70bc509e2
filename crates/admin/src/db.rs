//! The admin service's own PostgreSQL pool (the core's Store keeps its pool
//! private and tuned for radiusd's short deadlines; batch creation needs
//! longer statements).

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;

pub fn pool(dsn: &str, size: usize) -> Result<Pool, String> {
    let target = radius_core::pg::Target::new(dsn).map_err(|e| format!("dsn: {e}"))?;
    let mut pg = target.config.clone();
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(5));
    }
    if pg.get_application_name().is_none() {
        pg.application_name("radius-admin");
    }
    // A bound on every statement: a stuck query fails (503) instead of
    // holding a connection for ever; 10,000-user batches need a few seconds.
    let options = match pg.get_options() {
        Some(o) => format!("{o} -c statement_timeout=60000"),
        None => "-c statement_timeout=60000".to_string(),
    };
    pg.options(&options);
    let mgr = Manager::from_config(
        pg,
        target.tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| e.to_string())
}
