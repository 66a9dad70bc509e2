//! `radius-admin housekeeping`'s accounting parts: stale sessions closed
//! as Lost-Service at their last news, radpostauth and closed radacct rows
//! past their retention deleted in bounded batches, open sessions never
//! deleted; the settings from the environment, through the binary.

mod common;

use std::process::{Command, Stdio};

use common::{setup, Ctx};
use radius_admin::housekeeping::{run, Settings};

const BIN: &str = env!("CARGO_BIN_EXE_radius-admin");

/// A radacct row; times are seconds before now (None: NULL).
async fn session(ctx: &Ctx, id: &str, start: i64, update: Option<i64>, stop: Option<i64>) {
    ctx.db
        .execute(
            "INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, \
             acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, acctterminatecause) \
             VALUES ($1, $1, 'hk', '192.0.2.1', now() - make_interval(secs => $2), \
             now() - make_interval(secs => $3), now() - make_interval(secs => $4), \
             CASE WHEN $4::float8 IS NULL THEN 10 ELSE $2 - $4 END, \
             CASE WHEN $4::float8 IS NULL THEN NULL ELSE 'User-Request' END)",
            &[
                &id,
                &(start as f64),
                &update.map(|u| u as f64),
                &stop.map(|s| s as f64),
            ],
        )
        .await
        .unwrap();
}

async fn postauth(ctx: &Ctx, user: &str, age_days: f64) {
    ctx.db
        .execute(
            "INSERT INTO radpostauth (username, reply, authdate) \
             VALUES ($1, 'Access-Accept', now() - make_interval(secs => $2::float8 * 86400))",
            &[&user, &age_days],
        )
        .await
        .unwrap();
}

/// (acctsessionid, stop − start in s, seconds between stop and update or
/// start, session time, cause), by id.
async fn sessions(
    ctx: &Ctx,
) -> Vec<(
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
)> {
    ctx.db
        .query(
            "SELECT acctsessionid, \
             EXTRACT(EPOCH FROM acctstoptime - acctstarttime)::bigint, \
             EXTRACT(EPOCH FROM acctstoptime - COALESCE(acctupdatetime, acctstarttime))::bigint, \
             acctsessiontime, acctterminatecause FROM radacct ORDER BY acctsessionid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

fn pool(ctx: &Ctx) -> deadpool_postgres::Pool {
    radius_admin::db::pool(&ctx.dsn, 1).unwrap()
}

fn settings() -> Settings {
    Settings {
        // Small batches: the loop must take them all.
        batch_rows: 2,
        ..Default::default()
    }
}

#[tokio::test]
async fn stale_sessions_close_at_their_last_news_as_lost_service() {
    let Some(ctx) = setup().await else { return };
    let n = None;
    session(&ctx, "a-interim", 7200, Some(3600), n).await;
    session(&ctx, "b-start-only", 7200, n, n).await;
    session(&ctx, "c-just-past", 4000, Some(1830), n).await;
    session(&ctx, "d-just-fresh", 4000, Some(1770), n).await;
    session(&ctx, "e-closed", 9000, Some(8000), Some(7000)).await;
    session(&ctx, "f-interim-2", 90_000, Some(80_000), n).await;
    let r = run(
        &pool(&ctx),
        &Settings {
            close_stale_after: Some(1800),
            ..settings()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.sessions_closed, 4);
    let lost = Some("Lost-Service".to_string());
    assert_eq!(
        sessions(&ctx).await,
        [
            (
                "a-interim".into(),
                Some(3600),
                Some(0),
                Some(3600),
                lost.clone()
            ),
            (
                "b-start-only".into(),
                Some(0),
                Some(0),
                Some(0),
                lost.clone()
            ),
            (
                "c-just-past".into(),
                Some(2170),
                Some(0),
                Some(2170),
                lost.clone()
            ),
            ("d-just-fresh".into(), None, None, Some(10), None),
            // Closed already: untouched.
            (
                "e-closed".into(),
                Some(2000),
                Some(1000),
                Some(2000),
                Some("User-Request".into())
            ),
            (
                "f-interim-2".into(),
                Some(10_000),
                Some(0),
                Some(10_000),
                lost
            ),
        ]
    );
    // Again: nothing left to close.
    let again = Settings {
        close_stale_after: Some(1800),
        ..settings()
    };
    assert_eq!(run(&pool(&ctx), &again).await.unwrap().sessions_closed, 0);
    ctx.finish().await;
}

#[tokio::test]
async fn retention_deletes_old_rows_in_batches_and_never_an_open_session() {
    let Some(ctx) = setup().await else { return };
    for i in 0..5 {
        postauth(&ctx, &format!("old{i}"), 31.0).await;
    }
    postauth(&ctx, "boundary-old", 30.0 + 1.0 / 24.0).await;
    postauth(&ctx, "boundary-new", 30.0 - 1.0 / 24.0).await;
    postauth(&ctx, "new", 1.0).await;
    let day = 86_400;
    let n = None;
    for i in 0..3 {
        session(&ctx, &format!("old{i}"), 100 * day, n, Some(91 * day)).await;
    }
    session(&ctx, "stop-just-old", 95 * day, n, Some(90 * day + 3600)).await;
    session(&ctx, "stop-just-new", 95 * day, n, Some(90 * day - 3600)).await;
    // Started long ago and never stopped: open, never deleted by retention.
    session(&ctx, "open-ancient", 400 * day, Some(399 * day), n).await;

    // Unset parts do nothing.
    let r = run(&pool(&ctx), &settings()).await.unwrap();
    assert_eq!(
        (r.postauth_deleted, r.acct_deleted, r.sessions_closed),
        (0, 0, 0)
    );

    let r = run(
        &pool(&ctx),
        &Settings {
            postauth_retention_days: Some(30),
            acct_retention_days: Some(90),
            ..settings()
        },
    )
    .await
    .unwrap();
    assert_eq!((r.postauth_deleted, r.acct_deleted), (6, 4));
    let left: Vec<String> = ctx
        .db
        .query("SELECT username FROM radpostauth ORDER BY username", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["boundary-new", "new"]);
    let ids: Vec<String> = sessions(&ctx).await.into_iter().map(|s| s.0).collect();
    assert_eq!(ids, ["open-ancient", "stop-just-new"]);
    ctx.finish().await;
}

#[tokio::test]
async fn the_binary_takes_its_settings_from_the_environment() {
    let Some(ctx) = setup().await else { return };
    let n = None;
    session(&ctx, "stale", 7200, Some(3600), n).await;
    session(&ctx, "old-closed", 100 * 86_400, n, Some(95 * 86_400)).await;
    postauth(&ctx, "old", 40.0).await;
    let housekeeping = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["--dsn", &ctx.dsn, "housekeeping"])
            .env_remove("RLM_RUST_DSN")
            .stdin(Stdio::null());
        for v in [
            "RADIUS_ADMIN_CLOSE_STALE_AFTER",
            "RADIUS_ADMIN_POSTAUTH_RETENTION_DAYS",
            "RADIUS_ADMIN_ACCT_RETENTION_DAYS",
            "RADIUS_ADMIN_BATCH_CREDENTIAL_DAYS",
        ] {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let out = housekeeping(&[]);
    for line in [
        "stale sessions closed as Lost-Service: not asked",
        "radpostauth rows deleted: not asked",
        "closed radacct sessions deleted: not asked",
    ] {
        assert!(out.contains(line), "{line:?} not in {out}");
    }
    assert_eq!(ctx.count("SELECT count(*) FROM radacct").await, 2);
    let out = housekeeping(&[
        ("RADIUS_ADMIN_CLOSE_STALE_AFTER", "1800"),
        ("RADIUS_ADMIN_POSTAUTH_RETENTION_DAYS", "30"),
        ("RADIUS_ADMIN_ACCT_RETENTION_DAYS", "90"),
    ]);
    for line in [
        "stale sessions closed as Lost-Service: 1 (older than 1800 seconds without news)",
        "radpostauth rows deleted: 1 (older than 30 days)",
        "closed radacct sessions deleted: 1 (older than 90 days)",
    ] {
        assert!(out.contains(line), "{line:?} not in {out}");
    }
    assert_eq!(
        ctx.count("SELECT count(*) FROM radacct WHERE acctterminatecause = 'Lost-Service'")
            .await,
        1
    );
    assert_eq!(ctx.count("SELECT count(*) FROM radacct").await, 1);
    assert_eq!(ctx.count("SELECT count(*) FROM radpostauth").await, 0);
    // A bad value is refused, naming the setting; nothing runs.
    let mut cmd = Command::new(BIN);
    let out = cmd
        .args(["--dsn", &ctx.dsn, "housekeeping"])
        .env("RADIUS_ADMIN_ACCT_RETENTION_DAYS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--acct-retention-days"));
    ctx.finish().await;
}
