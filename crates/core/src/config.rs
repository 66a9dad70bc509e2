//! The module's configuration items, parsed and validated from the
//! `name = value` pairs of its FreeRADIUS section. Validation lives here (not
//! in the FFI layer) so every rule is tested without radiusd, and so the
//! message that fails `freeradius -C` always names the item.

use std::fmt;
use std::time::Duration;

/// One configuration item: its name, default and one-line meaning. The
/// module's documented config file (`freeradius-config/mods-available/rust`)
/// lists exactly these.
#[derive(Debug, Clone, Copy)]
pub struct ItemSpec {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

pub const ITEMS: &[ItemSpec] = &[
    ItemSpec {
        name: "dsn",
        default: None,
        help: "PostgreSQL connection string, libpq key=value or postgresql:// URL (required)",
    },
    ItemSpec {
        name: "pool_size",
        default: Some("8"),
        help: "maximum number of PostgreSQL connections (1..=256)",
    },
    ItemSpec {
        name: "connect_timeout",
        default: Some("3.0"),
        help: "seconds to wait for a new PostgreSQL connection",
    },
    ItemSpec {
        name: "query_timeout",
        default: Some("2.0"),
        help: "seconds one request may wait for the database (pool + query) before it fails",
    },
    ItemSpec {
        name: "store_rejected_password",
        default: Some("no"),
        help: "store the offered password of rejected requests in radpostauth.pass",
    },
    ItemSpec {
        name: "sql_user_name",
        default: Some("%{User-Name}"),
        help: "xlat expansion giving the name looked up in the user tables",
    },
    ItemSpec {
        name: "read_groups",
        default: Some("yes"),
        help: "process radusergroup groups when the user's reply has no Fall-Through",
    },
    ItemSpec {
        name: "read_profiles",
        default: Some("yes"),
        help: "process User-Profile / default_profile groups when no Fall-Through is set",
    },
    ItemSpec {
        name: "default_profile",
        default: Some(""),
        help: "profile whose groups apply when the user has no control:User-Profile",
    },
    ItemSpec {
        name: "cache_size",
        default: Some("1000000"),
        help: "users kept in memory (kept coherent by LISTEN/NOTIFY); 0 turns the cache off",
    },
    ItemSpec {
        name: "cache_preload",
        default: Some("no"),
        help: "load every user (up to cache_size) into the cache in one read at start and after the listener reconnects",
    },
    ItemSpec {
        name: "outage_serve_cached",
        default: Some("yes"),
        help: "while PostgreSQL cannot be reached, answer the users held in the cache from it (others fail)",
    },
    ItemSpec {
        name: "outage_max_stale",
        default: Some("3600"),
        help: "seconds after the cache listener lost the database that held users may still be served; 0 = for the whole outage",
    },
    ItemSpec {
        name: "lockout_attempts",
        default: Some("5"),
        help: "consecutive failed logins that lock an account (disable reason 2); 0 turns the lockout off",
    },
    ItemSpec {
        name: "lockout_period",
        default: Some("300"),
        help: "seconds an account stays locked; 0 = until an administrator unlocks it",
    },
    ItemSpec {
        name: "slow_hash_concurrency",
        default: Some("0"),
        help: "slow password verifications (Argon2, PBKDF2) run at once; past it a request fails at once (0 = number of CPUs)",
    },
    ItemSpec {
        name: "store_nt_hash",
        default: Some("yes"),
        help: "store the NT hash of a radius-admin user without one at their next successful PAP login (MS-CHAP, PEAP)",
    },
    ItemSpec {
        name: "secret_file",
        default: Some(""),
        help: "file of the secret shared with radius-admin (--secret-file): checks and sends second-factor codes; empty = token_auth users cannot log in",
    },
    ItemSpec {
        name: "code_lifetime",
        default: Some("300"),
        help: "seconds an Access-Challenge of a token_auth user, and the e-mail/SMS code sent with it, stay valid (30..=3600)",
    },
    ItemSpec {
        name: "auto_migrate",
        default: Some("yes"),
        help: "create missing stock tables and rlm_rust's own tables at first connection",
    },
    ItemSpec {
        name: "durability",
        default: Some("journal"),
        help: "when accounting and post-auth are answered: journal (after an fdatasync of the local journal) or database (after the PostgreSQL commit)",
    },
    ItemSpec {
        name: "journal_dir",
        default: Some(""),
        help: "directory of the local journal, owned by one instance (default: ${radacctdir}/rlm_rust/<instance name>)",
    },
    ItemSpec {
        name: "journal_max_bytes",
        default: Some("1073741824"),
        help: "bytes the journal may hold not yet applied to PostgreSQL; when full, accounting and post-auth fail (NASes retransmit)",
    },
    ItemSpec {
        name: "stale_session_after",
        default: Some("auto"),
        help: "seconds without an update after which an open session no longer counts against Simultaneous-Use; auto = 2 x its interim interval + 60 (3600 without interims); never = until closed",
    },
    ItemSpec {
        name: "metrics_listen",
        default: Some(""),
        help: "address:port on which to serve Prometheus metrics at /metrics (e.g. 127.0.0.1:9812); empty = no listener",
    },
];

/// When an accounting or post-auth request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the record is in the local journal (fdatasync); PostgreSQL
    /// gets it from the shipper, usually within a second.
    Journal,
    /// After the PostgreSQL commit.
    Database,
}

/// A configuration problem, always tied to the item that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub item: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}': {}", self.item, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(item: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        item: item.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModuleConfig {
    pub dsn: String,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub store_rejected_password: bool,
    pub sql_user_name: String,
    pub read_groups: bool,
    pub read_profiles: bool,
    pub default_profile: Option<String>,
    pub auto_migrate: bool,
    pub cache_size: usize,
    pub cache_preload: bool,
    pub outage_serve_cached: bool,
    /// None: for the whole outage.
    pub outage_max_stale: Option<Duration>,
    pub lockout_attempts: u32,
    /// None: until an administrator unlocks.
    pub lockout_period: Option<Duration>,
    pub slow_hash_concurrency: usize,
    pub store_nt_hash: bool,
    pub durability: Durability,
    /// None: the module's default (under radiusd's radacctdir).
    pub journal_dir: Option<std::path::PathBuf>,
    pub journal_max_bytes: u64,
    pub stale_session_after: crate::usage::StaleAfter,
    /// The secret shared with radius-admin (second factor); None: unset.
    pub secret_file: Option<std::path::PathBuf>,
    pub code_lifetime: Duration,
    /// Where to serve the Prometheus metrics; None: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ModuleConfig {
    /// Builds the configuration from the section's pairs. Unknown or repeated
    /// items are errors: a typo must not silently fall back to a default.
    pub fn from_items<'a, I>(items: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut values: Vec<Option<&'a str>> = vec![None; ITEMS.len()];
        for (name, value) in items {
            let idx = ITEMS.iter().position(|s| s.name == name).ok_or_else(|| {
                let known: Vec<&str> = ITEMS.iter().map(|s| s.name).collect();
                err(
                    name,
                    format!("unknown configuration item (known: {})", known.join(", ")),
                )
            })?;
            if values[idx].replace(value).is_some() {
                return Err(err(name, "given more than once"));
            }
        }
        let get = |name: &str| -> Option<&'a str> {
            let idx = ITEMS
                .iter()
                .position(|s| s.name == name)
                .expect("known item");
            values[idx].or(ITEMS[idx].default)
        };

        let dsn = get("dsn")
            .ok_or_else(|| err("dsn", "missing: set the PostgreSQL connection string"))?;
        if dsn.trim().is_empty() {
            return Err(err("dsn", "empty: set the PostgreSQL connection string"));
        }
        crate::pg::parse(dsn)
            .map_err(|e| err("dsn", format!("not a valid connection string: {e}")))?;

        let pool_size = parse_int("pool_size", get("pool_size").unwrap_or_default(), 1, 256)?;
        let connect_timeout = parse_seconds("connect_timeout", get("connect_timeout"))?;
        let query_timeout = parse_seconds("query_timeout", get("query_timeout"))?;
        let sql_user_name = get("sql_user_name").unwrap_or_default().to_string();
        if sql_user_name.is_empty() {
            return Err(err("sql_user_name", "empty: use e.g. \"%{User-Name}\""));
        }
        let default_profile = get("default_profile")
            .filter(|p| !p.is_empty())
            .map(str::to_string);

        Ok(ModuleConfig {
            dsn: dsn.to_string(),
            pool_size: pool_size as usize,
            connect_timeout,
            query_timeout,
            store_rejected_password: parse_bool(
                "store_rejected_password",
                get("store_rejected_password"),
            )?,
            sql_user_name,
            read_groups: parse_bool("read_groups", get("read_groups"))?,
            read_profiles: parse_bool("read_profiles", get("read_profiles"))?,
            default_profile,
            auto_migrate: parse_bool("auto_migrate", get("auto_migrate"))?,
            durability: match get("durability").unwrap_or_default().trim() {
                "journal" => Durability::Journal,
                "database" => Durability::Database,
                other => {
                    return Err(err(
                        "durability",
                        format!("must be 'journal' or 'database', got '{other}'"),
                    ))
                }
            },
            journal_dir: match get("journal_dir").map(str::trim).filter(|d| !d.is_empty()) {
                Some(d) if !d.starts_with('/') => {
                    return Err(err(
                        "journal_dir",
                        format!("must be an absolute path, got '{d}'"),
                    ))
                }
                d => d.map(std::path::PathBuf::from),
            },
            journal_max_bytes: parse_int(
                "journal_max_bytes",
                get("journal_max_bytes").unwrap_or_default(),
                1 << 20,
                1 << 50,
            )?,
            cache_size: parse_int(
                "cache_size",
                get("cache_size").unwrap_or_default(),
                0,
                100_000_000,
            )? as usize,
            cache_preload: parse_bool("cache_preload", get("cache_preload"))?,
            outage_serve_cached: parse_bool("outage_serve_cached", get("outage_serve_cached"))?,
            outage_max_stale: match parse_int(
                "outage_max_stale",
                get("outage_max_stale").unwrap_or_default(),
                0,
                10 * 365 * 86_400,
            )? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            lockout_attempts: parse_int(
                "lockout_attempts",
                get("lockout_attempts").unwrap_or_default(),
                0,
                1_000_000,
            )? as u32,
            lockout_period: match parse_int(
                "lockout_period",
                get("lockout_period").unwrap_or_default(),
                0,
                10 * 365 * 86_400,
            )? {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            slow_hash_concurrency: match parse_int(
                "slow_hash_concurrency",
                get("slow_hash_concurrency").unwrap_or_default(),
                0,
                1024,
            )? {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n as usize,
            },
            store_nt_hash: parse_bool("store_nt_hash", get("store_nt_hash"))?,
            stale_session_after: match get("stale_session_after").unwrap_or_default().trim() {
                "auto" => crate::usage::StaleAfter::Auto,
                "never" => crate::usage::StaleAfter::Never,
                v => crate::usage::StaleAfter::Fixed(parse_int(
                    "stale_session_after",
                    v,
                    1,
                    10 * 365 * 86_400,
                )? as i64),
            },
            secret_file: match get("secret_file").map(str::trim).filter(|d| !d.is_empty()) {
                Some(d) if !d.starts_with('/') => {
                    return Err(err(
                        "secret_file",
                        format!("must be an absolute path, got '{d}'"),
                    ))
                }
                d => d.map(std::path::PathBuf::from),
            },
            code_lifetime: Duration::from_secs(parse_int(
                "code_lifetime",
                get("code_lifetime").unwrap_or_default(),
                30,
                3600,
            )?),
            metrics_listen: match get("metrics_listen").map(str::trim).filter(|a| !a.is_empty()) {
                None => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    err(
                        "metrics_listen",
                        format!("must be an IP address and port (e.g. 127.0.0.1:9812 or [::1]:9812), got '{a}'"),
                    )
                })?),
            },
        })
    }

    /// The DSN with any password replaced, for logs.
    pub fn dsn_for_log(&self) -> String {
        redact_dsn(&self.dsn)
    }
}

fn parse_int(item: &str, v: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let n: u64 = v
        .trim()
        .parse()
        .map_err(|_| err(item, format!("must be an integer {min}..={max}, got '{v}'")))?;
    if !(min..=max).contains(&n) {
        return Err(err(item, format!("must be {min}..={max}, got {n}")));
    }
    Ok(n)
}

fn parse_seconds(item: &str, v: Option<&str>) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or_default();
    let secs: f64 = v
        .trim()
        .parse()
        .map_err(|_| err(item, format!("must be a number of seconds, got '{v}'")))?;
    if !(0.001..=600.0).contains(&secs) {
        return Err(err(item, format!("must be 0.001..=600 seconds, got {v}")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// FreeRADIUS' own spellings of a boolean.
fn parse_bool(item: &str, v: Option<&str>) -> Result<bool, ConfigError> {
    let v = v.unwrap_or_default();
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        _ => Err(err(item, format!("must be yes or no, got '{v}'"))),
    }
}

/// Hides the password of a connection string, in every form libpq takes:
/// `password=x`, `password = x`, `password='a b'` (quoted, with backslash
/// escapes), `password=a\ b` (an escaped blank), a URL's `user:x@` and its
/// `?password=x` parameter. Split as [`crate::pg`] reads it to connect.
pub fn redact_dsn(dsn: &str) -> String {
    if crate::pg::is_url(dsn) {
        return redact_url(dsn);
    }
    let (params, _) = crate::pg::split_params(dsn);
    let mut out = String::with_capacity(dsn.len());
    let mut copied = 0;
    for p in params
        .iter()
        .filter(|p| p.key.eq_ignore_ascii_case("password"))
    {
        out.push_str(&dsn[copied..p.value_start]);
        out.push_str("***");
        copied = p.end;
        // A quoted value may end right before the next key
        // (`password='x'dbname=d`); the unquoted mask must not run on
        // into it.
        if dsn[copied..].starts_with(|c: char| !c.is_whitespace()) {
            out.push(' ');
        }
    }
    out.push_str(&dsn[copied..]);
    out
}

fn redact_url(dsn: &str) -> String {
    let scheme_end = dsn.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = dsn.split_at(scheme_end);
    // tokio-postgres, which connects with this string, takes the
    // credentials up to the first '@' anywhere after the scheme, so an
    // unencoded '/' or '?' in the password is still the password. libpq
    // reads `u:p@ss@h` as the password `p@ss`: the hidden part also runs
    // to the last '@' before the host ends.
    let (userinfo, rest) = match rest.find('@') {
        Some(at) => {
            let (creds, after) = rest.split_at(at);
            let host_end = after.find(['/', '?']).unwrap_or(after.len());
            let last_at = after[..host_end].rfind('@').unwrap_or(0);
            let (more, host) = after.split_at(last_at);
            let full = format!("{creds}{more}");
            match full.split_once(':') {
                Some((user, _)) => (format!("{user}:***"), host),
                None => (full, host),
            }
        }
        None => (String::new(), rest),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(authority_end);
    let authority = format!("{userinfo}{host}");
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    // tokio-postgres decodes the key: `pass%77ord` is the password.
                    Some((k, _))
                        if percent_encoding::percent_decode_str(k)
                            .decode_utf8_lossy()
                            .eq_ignore_ascii_case("password") =>
                    {
                        format!("{k}=***")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_dsn() {
        let c = ModuleConfig::from_items([("dsn", "host=127.0.0.1 dbname=radius")]).unwrap();
        assert_eq!(c.pool_size, 8);
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.query_timeout, Duration::from_secs(2));
        assert!(!c.store_rejected_password);
        assert_eq!(c.sql_user_name, "%{User-Name}");
        assert!(c.read_groups && c.read_profiles && c.auto_migrate);
        assert_eq!(c.default_profile, None);
        assert_eq!(c.cache_size, 1_000_000);
        assert!(c.outage_serve_cached);
        assert_eq!(c.outage_max_stale, Some(Duration::from_secs(3600)));
        let c = ModuleConfig::from_items([("dsn", "host=x"), ("outage_max_stale", "0")]).unwrap();
        assert_eq!(c.outage_max_stale, None, "0: for the whole outage");
    }

    #[test]
    fn every_error_names_its_item() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "dsn"),
            (&[("dsn", "  ")], "dsn"),
            (&[("dsn", "host=x port=notaport")], "dsn"),
            (&[("dsn", "host=x"), ("pool_size", "0")], "pool_size"),
            (&[("dsn", "host=x"), ("pool_size", "many")], "pool_size"),
            (
                &[("dsn", "host=x"), ("connect_timeout", "-1")],
                "connect_timeout",
            ),
            (
                &[("dsn", "host=x"), ("query_timeout", "soon")],
                "query_timeout",
            ),
            (
                &[("dsn", "host=x"), ("read_groups", "maybe")],
                "read_groups",
            ),
            (&[("dsn", "host=x"), ("pool_sise", "4")], "pool_sise"),
            (&[("dsn", "host=x"), ("dsn", "host=y")], "dsn"),
            (&[("dsn", "host=x"), ("sql_user_name", "")], "sql_user_name"),
            (&[("dsn", "host=x"), ("cache_size", "-1")], "cache_size"),
            (
                &[("dsn", "host=x"), ("cache_preload", "maybe")],
                "cache_preload",
            ),
            (
                &[("dsn", "host=x"), ("outage_serve_cached", "maybe")],
                "outage_serve_cached",
            ),
            (
                &[("dsn", "host=x"), ("outage_max_stale", "-1")],
                "outage_max_stale",
            ),
        ];
        for (items, item) in cases {
            let e = ModuleConfig::from_items(items.iter().copied()).unwrap_err();
            assert_eq!(e.item, *item, "{items:?} -> {e}");
            assert!(e.to_string().contains(item));
        }
    }

    #[test]
    fn values_are_parsed() {
        let c = ModuleConfig::from_items([
            ("dsn", "postgresql://radius@127.0.0.1/radius"),
            ("pool_size", "32"),
            ("query_timeout", "0.25"),
            ("store_rejected_password", "yes"),
            ("read_profiles", "off"),
            ("default_profile", "guests"),
        ])
        .unwrap();
        assert_eq!(c.pool_size, 32);
        assert_eq!(c.query_timeout, Duration::from_millis(250));
        assert!(c.store_rejected_password);
        assert!(!c.read_profiles);
        assert_eq!(c.default_profile.as_deref(), Some("guests"));
    }

    #[test]
    fn login_policy_items() {
        let d = ModuleConfig::from_items([("dsn", "host=h")]).unwrap();
        assert_eq!(d.lockout_attempts, 5);
        assert_eq!(d.lockout_period, Some(Duration::from_secs(300)));
        assert!(d.slow_hash_concurrency >= 1, "0 means the number of CPUs");
        assert!(d.store_nt_hash);
        let c = ModuleConfig::from_items([
            ("dsn", "host=h"),
            ("lockout_attempts", "0"),
            ("lockout_period", "0"),
            ("slow_hash_concurrency", "3"),
            ("store_nt_hash", "no"),
        ])
        .unwrap();
        assert_eq!(c.lockout_attempts, 0);
        assert_eq!(c.lockout_period, None, "0: until an administrator unlocks");
        assert_eq!(c.slow_hash_concurrency, 3);
        assert!(!c.store_nt_hash);
        assert_eq!(d.stale_session_after, crate::usage::StaleAfter::Auto);
        for (v, want) in [
            ("never", crate::usage::StaleAfter::Never),
            ("90", crate::usage::StaleAfter::Fixed(90)),
        ] {
            let c = ModuleConfig::from_items([("dsn", "host=h"), ("stale_session_after", v)]);
            assert_eq!(c.unwrap().stale_session_after, want);
        }
        for bad in ["0", "soon", "-5"] {
            let e = ModuleConfig::from_items([("dsn", "host=h"), ("stale_session_after", bad)])
                .unwrap_err();
            assert_eq!(e.item, "stale_session_after");
        }
        let e =
            ModuleConfig::from_items([("dsn", "host=h"), ("lockout_period", "-1")]).unwrap_err();
        assert_eq!(e.item, "lockout_period");
        assert_eq!(d.metrics_listen, None, "no listener unless asked");
        let c = ModuleConfig::from_items([("dsn", "host=h"), ("metrics_listen", "127.0.0.1:9812")])
            .unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9812".parse().unwrap()));
        let c = ModuleConfig::from_items([("dsn", "host=h"), ("metrics_listen", " [::1]:0 ")]);
        assert_eq!(c.unwrap().metrics_listen, Some("[::1]:0".parse().unwrap()));
        for bad in [
            "localhost:9812",
            "127.0.0.1",
            "127.0.0.1:99999",
            ":9812",
            "9812",
        ] {
            let e =
                ModuleConfig::from_items([("dsn", "host=h"), ("metrics_listen", bad)]).unwrap_err();
            assert_eq!(e.item, "metrics_listen", "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert_eq!(d.secret_file, None);
        assert_eq!(d.code_lifetime, Duration::from_secs(300));
        for (item, bad) in [("secret_file", "relative/path"), ("code_lifetime", "5")] {
            let e = ModuleConfig::from_items([("dsn", "host=h"), (item, bad)]).unwrap_err();
            assert_eq!(e.item, item);
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_dsn("host=a password=secret user=b"),
            "host=a password=*** user=b"
        );
        assert_eq!(
            redact_dsn("postgresql://u:secret@h/db"),
            "postgresql://u:***@h/db"
        );
        assert_eq!(redact_dsn("postgresql://u@h/db"), "postgresql://u@h/db");
        // Every spelling libpq takes (issue 14: these were logged in clear).
        assert_eq!(
            redact_dsn("host=a password = secret user=b"),
            "host=a password = *** user=b"
        );
        assert_eq!(
            redact_dsn("password='a b\\' c' dbname=d"),
            "password=*** dbname=d"
        );
        assert_eq!(redact_dsn("PASSWORD=x"), "PASSWORD=***");
        // A bare value runs past an escaped blank (it was cut there, and
        // the rest of the password logged).
        assert_eq!(
            redact_dsn("password=sec\\ ret sslmode=verify-full"),
            "password=*** sslmode=verify-full"
        );
        assert_eq!(
            redact_dsn("postgresql://u@h/db?sslmode=require&password=secret"),
            "postgresql://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            redact_dsn("postgres://u:p%40ss@h:5432/db?password=x"),
            "postgres://u:***@h:5432/db?password=***"
        );
        assert_eq!(redact_dsn("host=a dbname=b"), "host=a dbname=b");
        // Found by fuzz/ (config): tokio-postgres reads the password up to
        // the first '@' even past a '/' or '?', which ended the authority
        // here, so such a password was logged in clear.
        let c: tokio_postgres::Config = "postgresql://radius:pa/ss?w@db/radius".parse().unwrap();
        assert_eq!(c.get_password(), Some(&b"pa/ss?w"[..]));
        assert_eq!(
            redact_dsn("postgresql://radius:pa/ss?w@db/radius"),
            "postgresql://radius:***@db/radius"
        );
        assert_eq!(
            redact_dsn("postgres://u:/]e?/2t%:\0@h/d?sslmode=disable"),
            "postgres://u:***@h/d?sslmode=disable"
        );
        assert_eq!(
            redact_dsn("postgresql://u:p@ss@h/db"),
            "postgresql://u:***@h/db"
        );
        // Found by fuzz/ (config): a quoted password directly followed by
        // the next key; the mask must stay a value of its own.
        let glued = "password='a b\\' c'dbname= password=o_migrate=n0";
        let c: tokio_postgres::Config = glued.parse().unwrap();
        assert_eq!(c.get_dbname(), Some("password=o_migrate=n0"));
        assert_eq!(
            redact_dsn(glued),
            "password=*** dbname= password=o_migrate=n0"
        );
        let r: tokio_postgres::Config = redact_dsn(glued).parse().unwrap();
        assert_eq!(r.get_password(), Some(&b"***"[..]));
        assert_eq!(r.get_dbname(), c.get_dbname());
        // A percent-encoded key is the same key to the connector.
        assert_eq!(
            redact_dsn("postgresql://u@h/db?pass%77ord=secret"),
            "postgresql://u@h/db?pass%77ord=***"
        );
        let (c, _) = crate::pg::parse("postgresql://u@h/db?pass%77ord=secret").unwrap();
        assert_eq!(c.get_password(), Some(&b"secret"[..]));
        // An '@' in the query is no end of the credentials.
        assert_eq!(
            redact_dsn("postgresql://radi@h?password=secret&x=@y"),
            "postgresql://radi@h?password=***&x=@y"
        );
    }
}
