//! Schema migrations: the stock FreeRADIUS tables where absent, then
//! rlm_rust's own tables. Run by `auto_migrate` in the module, by the admin
//! service's `migrate` command and by the tests.

use crate::Error;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Arbitrary but fixed: serialises migrations started at the same time by
/// several radiusd threads or hosts against one database.
const MIGRATION_LOCK: i64 = 0x726c_6d5f_7275_7374; // "rlm_rust"

/// Brings the database at `dsn` up to date. Safe to call concurrently and
/// repeatedly.
pub async fn migrate(dsn: &str) -> Result<(), Error> {
    let target = crate::pg::Target::new(dsn).map_err(Error::Pool)?;
    let (mut client, conn) = target.connect().await?;
    let conn = tokio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug!("migration connection closed: {e}");
        }
    });
    let result = migrate_client(&mut client).await;
    drop(client);
    let _ = conn.await;
    result
}

async fn migrate_client(client: &mut tokio_postgres::Client) -> Result<(), Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Migrations only add, or drop what no build's statements name (an
    // index). A host still running an older build must keep serving a
    // database a newer host already migrated (rolling upgrades of several
    // radiusd hosts on one PostgreSQL).
    let mut runner = embedded::migrations::runner().set_abort_missing(false);
    let ran = runner
        .set_migration_table_name("rlm_rust_schema_history")
        .run_async(client)
        .await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let report = ran.map_err(|e| Error::Migration(e.to_string()))?;
    unlock?;
    for m in report.applied_migrations() {
        log::info!("applied migration {}", m);
    }
    Ok(())
}
