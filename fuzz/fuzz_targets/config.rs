//! The module's configuration items (`name = value` pairs of its radiusd
//! section) and the DSN redaction used in logs. Input: one `name=value`
//! per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radius_core::config::{redact_dsn, ModuleConfig};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let items: Vec<(&str, &str)> = text
        .split('\n')
        .map(|l| l.split_once('=').unwrap_or((l, "")))
        .collect();
    for (_, v) in &items {
        let _ = redact_dsn(v);
    }
    match ModuleConfig::from_items(items.iter().copied()) {
        Ok(c) => {
            assert!((1..=256).contains(&c.pool_size));
            assert!(c.slow_hash_concurrency >= 1);
            assert!(!c.sql_user_name.is_empty());
            assert!(!c.dsn.trim().is_empty());
            assert!(c.connect_timeout.as_secs_f64() <= 600.0);
            assert!(c.query_timeout.as_secs_f64() <= 600.0);
            let _ = c.dsn_for_log();
        }
        Err(e) => {
            // Every error names an item.
            assert!(e.to_string().contains(&e.item));
        }
    }
});
