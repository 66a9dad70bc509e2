//! One fresh database per test on the private cluster.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::{Backend, Env};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database created for one test (`CREATE DATABASE` through the admin DSN,
/// owned by the module's role, tables as the backend under test expects
/// them: see [`TestDb::create`]), dropped again on drop.
/// Declare it before the [`crate::Radiusd`] that uses it, so the server is
/// stopped first.
pub struct TestDb {
    pub name: String,
    /// What the module gets as `dsn`: the admin DSN with user and dbname
    /// replaced.
    pub dsn: String,
    admin_dsn: String,
    rt: Runtime,
    client: Option<Client>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(dsn: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to PostgreSQL ({dsn}): {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Database names carry the creating process id: drop the ones whose process
/// is gone (a killed earlier run), once per process.
fn drop_stale_databases(rt: &Runtime, admin_dsn: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        rt.block_on(async {
            let admin = connect(admin_dsn).await;
            let rows = admin
                .query(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'e2e\\_%'",
                    &[],
                )
                .await
                .unwrap_or_default();
            for row in rows {
                let name: String = row.get(0);
                let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
                if let Some(pid) = pid {
                    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = admin
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                }
            }
        });
    });
}

/// The admin DSN (libpq key=value form) with user and dbname replaced.
fn database_dsn(admin_dsn: &str, user: &str, dbname: &str) -> String {
    let mut parts: Vec<&str> = admin_dsn
        .split_whitespace()
        .filter(|kv| !kv.starts_with("user=") && !kv.starts_with("dbname="))
        .collect();
    let user = format!("user={user}");
    let db = format!("dbname={dbname}");
    parts.push(&user);
    parts.push(&db);
    parts.join(" ")
}

impl TestDb {
    /// A new database `e2e_<pid>_<n>_<tag>` with the tables of the backend
    /// under test: for rlm_rust the module's own migration
    /// ([`TestDb::create_migrated`]), for stock rlm_sql
    /// (`RLM_RUST_E2E_BACKEND=sql`) FreeRADIUS's own `schema.sql` and nothing
    /// else ([`TestDb::create_stock`]): the stock module runs on exactly the
    /// stock schema.
    pub fn create(env: &Env, tag: &str) -> TestDb {
        match env.backend {
            Backend::Rust => Self::create_migrated(env, tag),
            Backend::Sql => Self::create_stock(env, tag),
        }
    }

    /// A new database with the schema migrated
    /// (radius_core::schema::migrate: stock tables + rlm_rust's own).
    pub fn create_migrated(env: &Env, tag: &str) -> TestDb {
        let db = Self::create_empty(env, tag);
        db.migrate();
        db
    }

    /// A new database created from FreeRADIUS's stock PostgreSQL
    /// `schema.sql` ([`Env::stock_schema`]), as an existing rlm_sql site has
    /// it: no rlm_rust table.
    pub fn create_stock(env: &Env, tag: &str) -> TestDb {
        let db = Self::create_empty(env, tag);
        db.load_stock_schema(env);
        db
    }

    /// Runs FreeRADIUS's `schema.sql` as the database owner (what an
    /// rlm_sql site's `psql radius < schema.sql` does).
    pub fn load_stock_schema(&self, env: &Env) {
        let path = &env.stock_schema;
        let sql = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "reading the stock schema {} (apt-get install freeradius, or set \
                 RLM_RUST_STOCK_SCHEMA): {e}",
                path.display()
            )
        });
        self.rt
            .block_on(self.client().batch_execute(&sql))
            .unwrap_or_else(|e| panic!("loading {} into {}: {e}", path.display(), self.name));
    }

    /// radius_core::schema::migrate on this database.
    pub fn migrate(&self) {
        self.rt
            .block_on(radius_core::schema::migrate(&self.dsn))
            .unwrap_or_else(|e| panic!("migrating {}: {e}", self.name));
    }

    /// A new database without any tables.
    pub fn create_empty(env: &Env, tag: &str) -> TestDb {
        let rt = runtime();
        drop_stale_databases(&rt, &env.admin_dsn);
        let tag: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut name = format!("e2e_{}_{}_{}", std::process::id(), n, tag);
        name.truncate(63);
        let owner = &env.db_owner;
        rt.block_on(async {
            let admin = connect(&env.admin_dsn).await;
            admin
                .batch_execute(&format!("CREATE DATABASE {name} OWNER {owner}"))
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        });
        let dsn = database_dsn(&env.admin_dsn, owner, &name);
        let client = rt.block_on(connect(&dsn));
        TestDb {
            name,
            dsn,
            admin_dsn: env.admin_dsn.clone(),
            rt,
            client: Some(client),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("client")
    }

    /// Runs one or more statements (no parameters).
    pub fn exec(&self, sql: &str) {
        self.rt
            .block_on(self.client().batch_execute(sql))
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }

    /// A query with parameters.
    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.rt
            .block_on(self.client().query(sql, params))
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// The first column of the only row.
    pub fn scalar<T>(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let rows = self.query(sql, params);
        assert_eq!(rows.len(), 1, "expected one row from {sql}");
        rows[0].get(0)
    }

    pub fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
        self.scalar::<i64>(sql, params)
    }

    /// radpostauth's `reply` column for `user`, in insertion order, read
    /// right after the reply and required to hold exactly `n` rows: radiusd
    /// answers only after post-auth, and post-auth returns only after its
    /// row committed (`durability = database`, the fixture's default, and
    /// rlm_sql). A reply sent before its commit fails here.
    pub fn postauth_replies(&self, user: &str, n: usize) -> Vec<String> {
        let rows: Vec<String> = self
            .query(
                "SELECT reply FROM radpostauth WHERE username = $1 ORDER BY id",
                &[&user],
            )
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows.len(), n, "radpostauth rows of {user}: {rows:?}");
        rows
    }

    fn insert_attr(
        &self,
        table: &str,
        key_col: &str,
        key: &str,
        attr: &str,
        op: &str,
        value: &str,
    ) {
        self.query(
            &format!(
                "INSERT INTO {table} ({key_col}, attribute, op, value) VALUES ($1, $2, $3, $4)"
            ),
            &[&key, &attr, &op, &value],
        );
    }

    /// radcheck row.
    pub fn check(&self, user: &str, attr: &str, op: &str, value: &str) {
        self.insert_attr("radcheck", "username", user, attr, op, value);
    }

    /// radreply row.
    pub fn reply(&self, user: &str, attr: &str, op: &str, value: &str) {
        self.insert_attr("radreply", "username", user, attr, op, value);
    }

    /// radgroupcheck row.
    pub fn group_check(&self, group: &str, attr: &str, op: &str, value: &str) {
        self.insert_attr("radgroupcheck", "groupname", group, attr, op, value);
    }

    /// radgroupreply row.
    pub fn group_reply(&self, group: &str, attr: &str, op: &str, value: &str) {
        self.insert_attr("radgroupreply", "groupname", group, attr, op, value);
    }

    /// radusergroup row.
    pub fn member(&self, user: &str, group: &str, priority: i32) {
        self.query(
            "INSERT INTO radusergroup (username, groupname, priority) VALUES ($1, $2, $3)",
            &[&user, &group, &priority],
        );
    }

    /// A user with `Cleartext-Password := password`.
    pub fn user(&self, user: &str, password: &str) {
        self.check(user, "Cleartext-Password", ":=", password);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop(self.client.take());
        if std::thread::panicking() && std::env::var("RLM_RUST_E2E_KEEP_DB").as_deref() == Ok("1") {
            eprintln!(
                "e2e: keeping database {} (RLM_RUST_E2E_KEEP_DB=1)",
                self.name
            );
            return;
        }
        let name = self.name.clone();
        let admin_dsn = self.admin_dsn.clone();
        self.rt.block_on(async move {
            if let Ok((admin, conn)) = tokio_postgres::connect(&admin_dsn, NoTls).await {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    }
}
