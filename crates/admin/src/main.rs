//! radius-admin command line: `serve` runs the HTTP API; the other
//! commands do the same operations from a shell.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use radius_admin::{batch, oob, ApiError, AppState, Config, RejectBody};

#[derive(Parser)]
#[command(
    name = "radius-admin",
    version,
    about = "rlm_rust management API and CLI"
)]
struct Cli {
    /// PostgreSQL connection string (libpq key=value or postgresql:// URL).
    #[arg(long, env = "RLM_RUST_DSN", global = true, hide_env_values = true)]
    dsn: Option<String>,
    /// Store the NT hash of every password set by serve, users import and
    /// batch create, so MS-CHAP / PEAP-MSCHAPv2 work for those users. It is
    /// password-equivalent over MS-CHAP (unsalted MD4); with false only
    /// Argon2id is kept and those users can use PAP / TTLS-PAP only.
    #[arg(
        long,
        env = "RADIUS_ADMIN_STORE_NT_HASH",
        global = true,
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "true|false",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    store_nt_hash: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on 127.0.0.1.
    Serve(ServeArgs),
    /// Create or update the schema (stock FreeRADIUS tables and rlm_rust's).
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Create user batches.
    #[command(subcommand)]
    Batch(BatchCmd),
    /// Delete what is kept only for a while: prefix-batch credentials older
    /// than --batch-credential-days, expired user tokens, one-time RADIUS
    /// tokens and out-of-band codes a day past their end; and, when set,
    /// close stale sessions and delete radpostauth / closed radacct rows
    /// past their retention (in batches of 10,000 rows). Run it daily
    /// (cron or a systemd timer).
    Housekeeping {
        /// Age in days after which a prefix batch's printable credentials
        /// are deleted (the batch keeps credentials_purged_at).
        #[arg(
            long,
            env = "RADIUS_ADMIN_BATCH_CREDENTIAL_DAYS",
            default_value_t = radius_admin::housekeeping::DEFAULT_BATCH_CREDENTIAL_DAYS,
            value_parser = clap::value_parser!(u32).range(0..=36_500),
            visible_alias = "batch-credentials-days",
        )]
        batch_credential_days: u32,
        /// Close open accounting sessions with no update (Interim-Update,
        /// else Start) for this many seconds: stop time = that last update,
        /// terminate cause Lost-Service. Unset: none is closed.
        #[arg(
            long,
            env = "RADIUS_ADMIN_CLOSE_STALE_AFTER",
            value_name = "SECONDS",
            value_parser = clap::value_parser!(u32).range(60..=315_360_000),
        )]
        close_stale_after: Option<u32>,
        /// Delete radpostauth rows older than this many days. Unset: kept.
        #[arg(
            long,
            env = "RADIUS_ADMIN_POSTAUTH_RETENTION_DAYS",
            value_name = "DAYS",
            value_parser = clap::value_parser!(u32).range(1..=36_500),
        )]
        postauth_retention_days: Option<u32>,
        /// Delete closed radacct sessions stopped more than this many days
        /// ago (open sessions never). Unset: kept.
        #[arg(
            long,
            env = "RADIUS_ADMIN_ACCT_RETENTION_DAYS",
            value_name = "DAYS",
            value_parser = clap::value_parser!(u32).range(1..=36_500),
        )]
        acct_retention_days: Option<u32>,
    },
    /// Records PostgreSQL refused, set aside by the module's journal.
    #[command(subcommand)]
    DeadLetters(DeadLettersCmd),
}

#[derive(Subcommand)]
enum DeadLettersCmd {
    /// List them, oldest first: id, kind, seq, set_aside_at, reason, record.
    List,
    /// Apply them again (after fixing the cause); prints how many were
    /// applied and how many were refused again (those stay).
    Replay,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, env = "RADIUS_ADMIN_PORT", default_value_t = 8000)]
    port: u16,
    /// Address to listen on. The API manages credentials: keep it local
    /// (or behind a TLS proxy).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// The bootstrap API token; when unset a random one is generated and
    /// printed once. Tokens from `token create` work as well.
    #[arg(long, env = "RADIUS_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Body of authorize/'s reject answer (both with status 401).
    #[arg(long, value_enum, default_value_t = RejectBody::Empty)]
    authorize_reject: RejectBody,
    /// Keep the offered password of rejected requests in radpostauth.
    #[arg(long)]
    store_rejected_password: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Lifetime of the one-time RADIUS token from the login endpoint, seconds.
    #[arg(long, default_value_t = 3600)]
    radius_token_ttl: u64,
    /// Lifetime of an out-of-band code, seconds.
    #[arg(long, default_value_t = 300)]
    oob_ttl: u64,
    /// Lifetime of a user's auth token from token/ (the user API), seconds.
    #[arg(
        long,
        env = "RADIUS_ADMIN_USER_TOKEN_TTL",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(1..=31_536_000),
    )]
    user_token_ttl: u64,
    /// File holding the server secret (at least 32 bytes) that keys the
    /// out-of-band codes' HMAC; created with a random one (mode 0600) if
    /// absent. Unset: a random secret for this process (codes then do not
    /// survive a restart nor work across several radius-admin instances).
    #[arg(long, env = "RADIUS_ADMIN_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// The issuer named in TOTP provisioning URIs (what authenticator apps
    /// show next to the user name).
    #[arg(long, env = "RADIUS_ADMIN_TOTP_ISSUER", default_value = "rlm_rust")]
    totp_issuer: String,
    /// Codes sendoobtoken may send one user per 15 minutes (0: no limit).
    #[arg(long, env = "RADIUS_ADMIN_OOB_SEND_LIMIT", default_value_t = 5)]
    oob_send_limit: u32,
    /// Let the console sender (no SMTP / SMS gateway configured) log the
    /// code itself, at debug level (RUST_LOG=debug); development only.
    #[arg(long)]
    console_show_code: bool,
    /// SMTP server for e-mailed codes, e.g. smtp://mail:25?tls=required or
    /// smtps://user:pass@mail. Unset: codes are logged (console sender).
    #[arg(long, env = "RADIUS_ADMIN_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    #[arg(
        long,
        env = "RADIUS_ADMIN_SMTP_FROM",
        default_value = "radius-admin@localhost"
    )]
    smtp_from: String,
    /// HTTP SMS gateway: receives POST {"to", "message"}. Unset: codes are logged.
    #[arg(long, env = "RADIUS_ADMIN_SMS_URL")]
    sms_url: Option<String>,
    /// Bearer token for the SMS gateway.
    #[arg(long, env = "RADIUS_ADMIN_SMS_TOKEN", hide_env_values = true)]
    sms_token: Option<String>,
    /// Process User-Profile / --default-profile groups when no
    /// Fall-Through is set (the module's read_groups).
    #[arg(
        long,
        env = "RADIUS_ADMIN_READ_GROUPS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "true|false",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    read_groups: bool,
    /// Process the User-Profile and --default-profile groups (the module's
    /// read_profiles).
    #[arg(
        long,
        env = "RADIUS_ADMIN_READ_PROFILES",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "true|false",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    read_profiles: bool,
    /// Group applied to every user without a User-Profile (the module's
    /// default_profile). Empty: none.
    #[arg(long, env = "RADIUS_ADMIN_DEFAULT_PROFILE")]
    default_profile: Option<String>,
    /// Consecutive failed logins (RADIUS and API together) that lock a
    /// user; 0 turns the lockout off. Keep it equal to the module's item.
    #[arg(
        long,
        env = "RADIUS_ADMIN_LOCKOUT_ATTEMPTS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(0..=10_000),
    )]
    lockout_attempts: u32,
    /// How long a lock lasts, seconds; 0 = until an administrator unlocks
    /// (PATCH radiususers/<id>/ with "active": true). At most ten years.
    #[arg(
        long,
        env = "RADIUS_ADMIN_LOCKOUT_PERIOD",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(0..=315_360_000),
    )]
    lockout_period: u64,
    /// Wrong API tokens one client address may send per minute; past it
    /// the address gets 429 for any token not known valid (valid tokens
    /// still pass). 0: no limit.
    #[arg(long, env = "RADIUS_ADMIN_BAD_TOKEN_LIMIT", default_value_t = 20)]
    bad_token_limit: u32,
    /// Most users one POST batch/ may create (the OpenAPI document states it).
    #[arg(
        long,
        env = "RADIUS_ADMIN_MAX_BATCH_USERS",
        default_value_t = batch::MAX_USERS as u32,
        value_parser = clap::value_parser!(u32).range(1..=batch::MAX_USERS as i64),
    )]
    max_batch_users: u32,
    /// Do not migrate the schema at start.
    #[arg(long)]
    no_migrate: bool,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token; it is printed once and stored only hashed.
    Create {
        #[arg(long, default_value = "cli")]
        name: String,
        /// What the token may do: read (the management API's GETs), write
        /// (every management operation, read included), radius (authorize/,
        /// postauth/, POST accounting/: the token for rlm_rest). Repeat or
        /// separate with commas; default: all three.
        #[arg(long, value_enum, value_delimiter = ',')]
        scope: Vec<radius_admin::auth::Scope>,
        /// Lifetime: seconds, or a number with s, m, h, d or w (90d);
        /// default: until revoked.
        #[arg(long, value_parser = radius_admin::auth::parse_lifetime)]
        expires_in: Option<Duration>,
    },
    /// List tokens (id, name, scopes, state, dates; never the tokens).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum UsersCmd {
    /// Import users from a CSV file (username,password,email,first_name,
    /// last_name; empty password = generated), all or nothing, as a batch.
    Import {
        file: PathBuf,
        /// Batch name (default: the file name and the time).
        #[arg(long)]
        name: Option<String>,
        /// Last valid day (YYYY-MM-DD, UTC).
        #[arg(long)]
        expiration_date: Option<String>,
        /// Add every user to this group.
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand)]
enum BatchCmd {
    /// Generate COUNT users named PREFIX001.. with random passwords; prints
    /// the credentials as CSV (or writes --output / --pdf).
    Create {
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        name: Option<String>,
        /// Last valid day (YYYY-MM-DD, UTC).
        #[arg(long)]
        expiration_date: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// Write the credentials CSV here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also write the printable PDF here.
        #[arg(long)]
        pdf: Option<PathBuf>,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("radius-admin: {e}");
        std::process::exit(1);
    }
}

fn fail(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn api(e: ApiError) -> String {
    match e {
        ApiError::Unavailable(d) => format!("database error: {d}"),
        other => other.to_string(),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let dsn = cli
        .dsn
        .ok_or("no database: pass --dsn or set RLM_RUST_DSN")?;
    let store_nt_hash = cli.store_nt_hash;
    match cli.command {
        Command::Serve(a) => serve(dsn, store_nt_hash, a).await,
        Command::Migrate => {
            radius_core::schema::migrate(&dsn).await.map_err(fail)?;
            println!("schema up to date");
            Ok(())
        }
        Command::Token(t) => {
            let pool = radius_admin::db::pool(&dsn, 1)?;
            match t {
                TokenCmd::Create {
                    name,
                    scope,
                    expires_in,
                } => {
                    let c = radius_admin::auth::create(&pool, &name, &scope, expires_in)
                        .await
                        .map_err(api)?;
                    let until = c
                        .expires_at
                        .map(|e| format!("expires {e}"))
                        .unwrap_or_else(|| "no expiry".into());
                    eprintln!(
                        "token {} ({name}) created, {until}; it is shown only now:",
                        c.id
                    );
                    println!("{}", c.token);
                }
                TokenCmd::List => {
                    println!("id\tname\tscopes\tstate\tcreated\texpires\tlast used");
                    for t in radius_admin::auth::list(&pool).await.map_err(api)? {
                        let state = match (&t.revoked_at, t.live) {
                            (Some(r), _) => format!("revoked {r}"),
                            (None, true) => "active".into(),
                            (None, false) => "expired".into(),
                        };
                        println!(
                            "{}\t{}\t{}\t{state}\t{}\t{}\t{}",
                            t.id,
                            t.name,
                            t.scopes.join(","),
                            t.created_at,
                            t.expires_at.as_deref().unwrap_or("never"),
                            t.last_used_at.as_deref().unwrap_or("never"),
                        );
                    }
                }
                TokenCmd::Revoke { id } => {
                    if !radius_admin::auth::revoke(&pool, id).await.map_err(api)? {
                        return Err(format!("no active token with id {id}"));
                    }
                    println!("token {id} revoked");
                }
            }
            Ok(())
        }
        Command::Housekeeping {
            batch_credential_days,
            close_stale_after,
            postauth_retention_days,
            acct_retention_days,
        } => {
            let pool = radius_admin::db::pool(&dsn, 1)?;
            let settings = radius_admin::housekeeping::Settings {
                batch_credential_days,
                close_stale_after,
                postauth_retention_days,
                acct_retention_days,
                ..Default::default()
            };
            let r = radius_admin::housekeeping::run(&pool, &settings)
                .await
                .map_err(api)?;
            println!(
                "batch credentials purged: {} batches ({} credentials, older than {} days)",
                r.batches_purged, r.credentials_deleted, batch_credential_days
            );
            println!("expired user tokens deleted: {}", r.user_tokens_deleted);
            println!("old RADIUS tokens deleted: {}", r.radius_tokens_deleted);
            println!("old out-of-band codes deleted: {}", r.oob_codes_deleted);
            let part = |n: u64, setting: Option<u32>, what: &str, unit: &str| match setting {
                Some(v) => println!("{what}: {n} (older than {v} {unit})"),
                None => println!("{what}: not asked"),
            };
            part(
                r.sessions_closed,
                close_stale_after,
                "stale sessions closed as Lost-Service",
                "seconds without news",
            );
            part(
                r.postauth_deleted,
                postauth_retention_days,
                "radpostauth rows deleted",
                "days",
            );
            part(
                r.acct_deleted,
                acct_retention_days,
                "closed radacct sessions deleted",
                "days",
            );
            Ok(())
        }
        Command::DeadLetters(DeadLettersCmd::List) => {
            let pool = radius_admin::db::pool(&dsn, 1)?;
            let rows = radius_admin::dead_letters::list(&pool).await.map_err(api)?;
            println!("id\tkind\tseq\tset_aside_at\treason\trecord");
            for d in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.kind,
                    d.seq,
                    d.set_aside_at,
                    one_line(&d.reason),
                    one_line(&d.record_text)
                );
            }
            eprintln!("{} dead letters", rows.len());
            Ok(())
        }
        Command::DeadLetters(DeadLettersCmd::Replay) => {
            let r = radius_admin::dead_letters::replay(&dsn).await?;
            println!("applied {}, refused {}", r.applied, r.refused);
            Ok(())
        }
        Command::Users(UsersCmd::Import {
            file,
            name,
            expiration_date,
            group,
        }) => {
            let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let users = batch::parse_csv(&data).map_err(api)?;
            let name = name.unwrap_or_else(|| {
                format!(
                    "import {} {}",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    now_label()
                )
            });
            let spec = batch::BatchSpec {
                name,
                strategy: "csv",
                prefix: None,
                expiration_date: parse_exp(expiration_date)?,
                groupname: group,
                users,
            };
            let (id, secs) = create_with_progress(&dsn, &spec, store_nt_hash).await?;
            let generated: Vec<_> = spec.users.iter().filter(|u| u.generated).collect();
            eprintln!(
                "imported {} users as batch {id} in {secs:.1} s",
                spec.users.len()
            );
            if !generated.is_empty() {
                eprintln!("generated passwords (shown only now):");
                println!("username,password");
                for u in generated {
                    println!("{},{}", u.username, u.password);
                }
            }
            Ok(())
        }
        Command::Batch(BatchCmd::Create {
            prefix,
            count,
            name,
            expiration_date,
            group,
            output,
            pdf,
        }) => {
            let users = batch::prefix_users(&prefix, count).map_err(api)?;
            let spec = batch::BatchSpec {
                name: name.unwrap_or_else(|| format!("{prefix} {}", now_label())),
                strategy: "prefix",
                prefix: Some(prefix),
                expiration_date: parse_exp(expiration_date)?,
                groupname: group,
                users,
            };
            let (id, secs) = create_with_progress(&dsn, &spec, store_nt_hash).await?;
            eprintln!(
                "created batch {id} ({}) with {} users in {secs:.2} s",
                spec.name,
                spec.users.len()
            );
            let creds: Vec<(String, String)> = spec
                .users
                .iter()
                .map(|u| (u.username.clone(), u.password.clone()))
                .collect();
            let csv = batch::credentials_csv_bytes(&creds);
            match output {
                Some(p) => std::fs::write(&p, csv).map_err(|e| format!("{}: {e}", p.display()))?,
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&csv).map_err(fail)?;
                }
            }
            if let Some(p) = pdf {
                let exp = spec.expiration_date.map(|d| d.to_string());
                let bytes = radius_admin::pdf::credentials_pdf(&spec.name, exp.as_deref(), &creds)?;
                std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            Ok(())
        }
    }
}

/// Tabs and line breaks of a value shown in a tab-separated line.
fn one_line(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

fn now_label() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

fn parse_exp(s: Option<String>) -> Result<Option<time::Date>, String> {
    s.map(|s| radius_admin::input::parse_date("--expiration-date", &s))
        .transpose()
        .map_err(api)
}

/// Runs a batch with a progress bar over the password hashing (the long
/// part); returns the batch id and the elapsed seconds.
async fn create_with_progress(
    dsn: &str,
    spec: &batch::BatchSpec,
    store_nt_hash: bool,
) -> Result<(i64, f64), String> {
    let pool = radius_admin::db::pool(dsn, 2)?;
    let pb = indicatif::ProgressBar::new(spec.users.len() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .map_err(fail)?
        .progress_chars("=> "),
    );
    pb.set_message("hashing");
    let started = std::time::Instant::now();
    let id = batch::create_batch(&pool, spec, store_nt_hash, &|n| pb.inc(n))
        .await
        .map_err(api)?;
    pb.finish_and_clear();
    Ok((id, started.elapsed().as_secs_f64()))
}

/// authorize/'s options and the login policy, the same items (and defaults)
/// as the module's, so both front doors decide alike.
fn apply_login_policy(cfg: &mut Config, store_nt_hash: bool, a: &ServeArgs) -> Result<(), String> {
    let default_profile = a.default_profile.clone().filter(|p| !p.is_empty());
    if let Some(p) = &default_profile {
        radius_admin::groups::check_group_name("--default-profile", p).map_err(api)?;
    }
    cfg.read_groups = a.read_groups;
    cfg.read_profiles = a.read_profiles;
    cfg.default_profile = default_profile;
    cfg.lockout_attempts = a.lockout_attempts;
    cfg.lockout_period = Duration::from_secs(a.lockout_period);
    cfg.store_nt_hash = store_nt_hash;
    Ok(())
}

async fn serve(dsn: String, store_nt_hash: bool, a: ServeArgs) -> Result<(), String> {
    log::info!("database: {}", radius_core::config::redact_dsn(&dsn));
    let mut cfg = Config::new(&dsn);
    // Before migrating or listening: a bad value must not start a server.
    apply_login_policy(&mut cfg, store_nt_hash, &a)?;
    if !a.no_migrate {
        radius_core::schema::migrate(&dsn).await.map_err(fail)?;
    }
    let token = match a.token.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            let t = radius_core::account::new_token();
            // Printed once, to standard output, so scripts can capture it.
            println!("API token (generated for this run): {t}");
            t
        }
    };
    cfg.bootstrap_token = Some(token);
    cfg.authorize_reject = a.authorize_reject;
    cfg.store_rejected_password = a.store_rejected_password;
    cfg.max_body_bytes = a.max_body_bytes;
    cfg.bad_token_limit = a.bad_token_limit;
    cfg.max_batch_users = a.max_batch_users as usize;
    cfg.radius_token_ttl = Duration::from_secs(a.radius_token_ttl.max(1));
    cfg.oob_ttl = Duration::from_secs(a.oob_ttl.max(1));
    cfg.user_token_ttl = Duration::from_secs(a.user_token_ttl);
    cfg.oob_send_limit = a.oob_send_limit;
    cfg.console_show_code = a.console_show_code;
    cfg.secret_from_file = a.secret_file.is_some();
    cfg.totp_issuer = a.totp_issuer.clone();
    cfg.oob_secret = match &a.secret_file {
        Some(p) => oob::Secret::load_or_create(p)?,
        None => {
            log::warn!(
                "no --secret-file: out-of-band codes are keyed with a random secret for this \
                 process only"
            );
            oob::Secret::random()
        }
    };
    if let Some(url) = &a.smtp_url {
        cfg.senders.smtp = Some(oob::SmtpSender::new(url, &a.smtp_from)?);
    }
    if let Some(url) = &a.sms_url {
        cfg.senders.sms = Some(oob::SmsGateway::new(url, a.sms_token.clone())?);
    }
    let state = Arc::new(AppState::new(cfg)?);
    // As the module: a database that is down does not stop the service,
    // but the log says at once why it cannot connect (a refused
    // certificate names the sslmode and the reason).
    match state.store.ping().await {
        Ok(()) => log::info!("database reachable"),
        Err(e) => log::warn!("database not reachable at start: {e}"),
    }
    let addr = std::net::SocketAddr::new(a.bind, a.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    log::info!("radius-admin listening on http://{addr}/api/v1/");
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
        log::info!("shutting down");
    };
    radius_admin::serve(state, listener, shutdown)
        .await
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_config(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let Command::Serve(a) = cli.command else {
            panic!("not serve: {args:?}");
        };
        let mut cfg = Config::new("host=x");
        apply_login_policy(&mut cfg, cli.store_nt_hash, &a)?;
        Ok(cfg)
    }

    #[test]
    fn login_policy_defaults_match_the_module() {
        let c = serve_config(&["radius-admin", "serve"]).unwrap();
        assert!(c.read_groups && c.read_profiles && c.store_nt_hash);
        assert_eq!(c.default_profile, None);
        assert_eq!(c.lockout_attempts, 5);
        assert_eq!(c.lockout_period, Duration::from_secs(300));
        // The library's defaults are the same (tests build Config::new).
        let lib = Config::new("host=x");
        assert_eq!(
            (lib.lockout_attempts, lib.lockout_period, lib.store_nt_hash),
            (5, Duration::from_secs(300), true)
        );
    }

    #[test]
    fn login_policy_flags_are_read_and_checked() {
        let c = serve_config(&[
            "radius-admin",
            "serve",
            "--read-groups",
            "false",
            "--read-profiles",
            "no",
            "--default-profile",
            "guests",
            "--lockout-attempts",
            "0",
            "--lockout-period",
            "0",
            "--store-nt-hash",
            "false",
        ])
        .unwrap();
        assert!(!c.read_groups && !c.read_profiles && !c.store_nt_hash);
        assert_eq!(c.default_profile.as_deref(), Some("guests"));
        assert_eq!(c.lockout_attempts, 0);
        assert_eq!(c.lockout_period, Duration::ZERO);
        // Global: before the subcommand too, and for the batch commands.
        let c = serve_config(&["radius-admin", "--store-nt-hash", "false", "serve"]).unwrap();
        assert!(!c.store_nt_hash);
        let cli = Cli::try_parse_from([
            "radius-admin",
            "batch",
            "create",
            "--prefix",
            "g",
            "--count",
            "1",
            "--store-nt-hash",
            "false",
        ])
        .unwrap();
        assert!(!cli.store_nt_hash);
        // An empty default profile is none.
        let c = serve_config(&["radius-admin", "serve", "--default-profile", ""]).unwrap();
        assert_eq!(c.default_profile, None);
        for (args, what) in [
            (&["--lockout-attempts=-1"][..], "--lockout-attempts"),
            (&["--lockout-attempts", "10001"], "--lockout-attempts"),
            (&["--lockout-period", "315360001"], "--lockout-period"),
            (&["--store-nt-hash", "maybe"], "--store-nt-hash"),
            (&["--read-groups", "sometimes"], "--read-groups"),
            (&["--default-profile", "a/b"], "--default-profile"),
        ] {
            let mut all = vec!["radius-admin", "serve"];
            all.extend_from_slice(args);
            let e = serve_config(&all)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(e.contains(what), "{args:?}: {e}");
        }
    }
}
