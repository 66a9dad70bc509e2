//! The module's configuration items (`name = value` pairs of its radiusd
//! section) and the DSN redaction used in logs (a parsed password must
//! not survive it). Input: one `name=value` per line.
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
        let redacted = redact_dsn(v);
        // A DSN with a password logs with the password hidden: where the
        // redacted text still parses, its password is the placeholder
        // (tokio-postgres may glue text after a closing quote to it).
        // Read as the module connects with it (TLS keys taken out first).
        let password = |s: &str| {
            radius_core::pg::parse(s)
                .ok()
                .map(|(c, _)| c.get_password().map(<[u8]>::to_vec))
        };
        if let Some(Some(p)) = password(v) {
            if let Some(after) = password(&redacted) {
                assert!(
                    p.is_empty() || after.is_some_and(|a| a.starts_with(b"***")),
                    "{v:?} logs as {redacted:?}"
                );
            }
        }
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
