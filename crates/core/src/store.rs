//! PostgreSQL access: a bounded pool, prepared statements, and a deadline on
//! every operation so no radiusd thread waits on the database for longer
//! than `query_timeout`.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use crate::accounting::{self, AcctOutcome, AcctRecord, AcctStatus};
use crate::attrs::AttrRow;
use crate::authorize::{GroupData, UserData};
use crate::config::ModuleConfig;
use crate::postauth::{self, PostAuthRecord};
use crate::{schema, Error};

/// The user's check and reply rows, memberships and their groups' rows in
/// one round trip (rlm_sql needs four or more queries for the same).
const USER_DATA: &str = "WITH g AS (SELECT groupname, priority, id FROM radusergroup WHERE username = $1) \
    SELECT 0 AS kind, ''::text AS grp, attribute, op::text, value, 0 AS prio, id::bigint AS ord \
      FROM radcheck WHERE username = $1 \
    UNION ALL SELECT 1, '', attribute, op::text, value, 0, id::bigint FROM radreply WHERE username = $1 \
    UNION ALL SELECT 2, groupname, '', '', '', priority, id::bigint FROM g \
    UNION ALL SELECT 3, groupname, attribute, op::text, value, 0, id::bigint FROM radgroupcheck \
      WHERE groupname IN (SELECT groupname FROM g) \
    UNION ALL SELECT 4, groupname, attribute, op::text, value, 0, id::bigint FROM radgroupreply \
      WHERE groupname IN (SELECT groupname FROM g) \
    ORDER BY kind, prio, ord";

pub struct Store {
    pool: Pool,
    query_timeout: Duration,
    connect_timeout: Duration,
    /// The DSN to migrate with, when `auto_migrate` is on.
    migrate_dsn: Option<String>,
    migrated: OnceCell<()>,
}

impl Store {
    /// Builds the pool without connecting: a database that is down at start
    /// must not keep radiusd from starting.
    pub fn new(cfg: &ModuleConfig) -> Result<Store, Error> {
        let mut pg: tokio_postgres::Config = cfg
            .dsn
            .parse()
            .map_err(|e| Error::Pool(format!("dsn: {e}")))?;
        pg.connect_timeout(cfg.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("rlm_rust");
        }
        // The server abandons a statement the module has stopped waiting for.
        let timeout_ms = cfg.query_timeout.as_millis().max(1);
        let options = match pg.get_options() {
            Some(o) => format!("{o} -c statement_timeout={timeout_ms}"),
            None => format!("-c statement_timeout={timeout_ms}"),
        };
        pg.options(&options);
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(cfg.query_timeout))
            .create_timeout(Some(cfg.connect_timeout))
            .recycle_timeout(Some(cfg.query_timeout))
            .build()
            .map_err(|e| Error::Pool(e.to_string()))?;
        Ok(Store {
            pool,
            query_timeout: cfg.query_timeout,
            connect_timeout: cfg.connect_timeout,
            migrate_dsn: cfg.auto_migrate.then(|| cfg.dsn.clone()),
            migrated: OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<Object, Error> {
        if let Some(dsn) = &self.migrate_dsn {
            self.migrated
                .get_or_try_init(|| schema::migrate(dsn))
                .await?;
        }
        self.pool
            .get()
            .await
            .map_err(|e| Error::Pool(e.to_string()))
    }

    async fn deadline<T>(
        &self,
        what: &'static str,
        f: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.query_timeout, f)
            .await
            .map_err(|_| Error::Timeout(self.query_timeout, what))?
    }

    /// Connects (and migrates, with `auto_migrate`) once, so the first
    /// request does not pay for it and the log says early whether the
    /// database is there.
    pub async fn ping(&self) -> Result<(), Error> {
        let limit = self.connect_timeout + self.query_timeout;
        tokio::time::timeout(limit, async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
        .map_err(|_| Error::Timeout(limit, "connect"))?
    }

    /// The stock tables' data for `username` (or a profile name).
    pub async fn user_data(&self, username: &str) -> Result<UserData, Error> {
        self.deadline("authorize", async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(USER_DATA).await?;
            let rows = client.query(&stmt, &[&username]).await?;
            assemble_user(rows.iter().map(|r| {
                (
                    r.get::<_, i32>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, Option<String>>(2),
                    r.get::<_, Option<String>>(3),
                    r.get::<_, Option<String>>(4),
                )
            }))
        })
        .await
    }

    /// Writes one accounting request, trying the status type's statements
    /// in order until one changes a row. Returns only after the commit.
    pub async fn write_accounting(
        &self,
        status: AcctStatus,
        rec: &AcctRecord,
    ) -> Result<AcctOutcome, Error> {
        let statements = accounting::statements(status);
        if statements.is_empty() {
            return Ok(AcctOutcome::Unchanged);
        }
        self.deadline("accounting", async {
            let client = self.client().await?;
            let (input, output) = (rec.input_total(), rec.output_total());
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 23] = [
                &rec.session_id,
                &rec.unique_id,
                &rec.username,
                &rec.realm,
                &rec.nas_ip,
                &rec.nas_port_id,
                &rec.nas_port_type,
                &rec.event_time,
                &rec.session_time,
                &rec.authentic,
                &rec.connect_info,
                &input,
                &output,
                &rec.called_station_id,
                &rec.calling_station_id,
                &rec.terminate_cause,
                &rec.service_type,
                &rec.framed_protocol,
                &rec.framed_ip_address,
                &rec.framed_ipv6_address,
                &rec.framed_ipv6_prefix,
                &rec.framed_interface_id,
                &rec.delegated_ipv6_prefix,
            ];
            for sql in &statements {
                let stmt = client.prepare_cached(sql).await?;
                if client.execute(&stmt, &params).await? > 0 {
                    return Ok(AcctOutcome::Written);
                }
            }
            Ok(if accounting::empty_is_ok(status) {
                AcctOutcome::Written
            } else {
                AcctOutcome::Unchanged
            })
        })
        .await
    }

    pub async fn write_postauth(&self, rec: &PostAuthRecord) -> Result<(), Error> {
        self.deadline("post-auth", async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(postauth::INSERT).await?;
            client
                .execute(
                    &stmt,
                    &[
                        &rec.username,
                        &rec.pass,
                        &rec.reply,
                        &rec.called_station_id,
                        &rec.calling_station_id,
                        &rec.authdate,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }
}

type RawRow = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Turns the rows of [`USER_DATA`] into the user's data. A NULL attribute or
/// value is bad data (rlm_sql fails the request on it too).
fn assemble_user(rows: impl Iterator<Item = RawRow>) -> Result<UserData, Error> {
    let mut user = UserData::default();
    let mut group_rows: Vec<(u8, String, AttrRow)> = Vec::new();
    for (kind, grp, attribute, op, value) in rows {
        let table = match kind {
            0 => "radcheck",
            1 => "radreply",
            2 => "radusergroup",
            3 => "radgroupcheck",
            _ => "radgroupreply",
        };
        let bad = |what: &str| Error::BadData {
            table,
            message: format!("{what} is NULL"),
        };
        if kind == 2 {
            user.groups.push(GroupData {
                name: grp.ok_or_else(|| bad("groupname"))?,
                ..Default::default()
            });
            continue;
        }
        let row = AttrRow {
            attribute: attribute.ok_or_else(|| bad("attribute"))?,
            op_text: op.unwrap_or_default(),
            value: value.ok_or_else(|| bad("value"))?,
        };
        match kind {
            0 => user.check.push(row),
            1 => user.reply.push(row),
            _ => group_rows.push((kind as u8, grp.unwrap_or_default(), row)),
        }
    }
    for g in &mut user.groups {
        for (kind, name, row) in &group_rows {
            if *name == g.name {
                if *kind == 3 {
                    g.check.push(row.clone());
                } else {
                    g.reply.push(row.clone());
                }
            }
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: i32, grp: &str, a: &str, op: &str, v: &str) -> RawRow {
        (
            kind,
            Some(grp.into()),
            Some(a.into()),
            Some(op.into()),
            Some(v.into()),
        )
    }

    #[test]
    fn rows_become_user_data_in_order() {
        let u = assemble_user(
            vec![
                r(0, "", "Cleartext-Password", ":=", "pw"),
                r(1, "", "Reply-Message", ":=", "hi"),
                r(2, "b", "", "", ""),
                r(2, "a", "", "", ""),
                r(3, "a", "NAS-Identifier", "==", "x"),
                r(4, "a", "Idle-Timeout", ":=", "1"),
                r(4, "b", "Idle-Timeout", ":=", "2"),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(u.check.len(), 1);
        assert_eq!(u.reply.len(), 1);
        let names: Vec<_> = u.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(u.groups[0].reply[0].value, "2");
        assert_eq!(u.groups[1].check[0].attribute, "NAS-Identifier");
    }

    #[test]
    fn null_value_is_bad_data() {
        let e = assemble_user(
            vec![(
                0,
                Some(String::new()),
                Some("A".into()),
                Some(":=".into()),
                None,
            )]
            .into_iter(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("radcheck"), "{e}");
    }
}
