//! Fills the user cache in one read when it goes live (`cache_preload`),
//! the way rlm_files and rlm_python backends hold every user from the
//! start: otherwise the first request of each user after a start (or after
//! the cache listener reconnects) is a miss with its own round trip.
//!
//! The read is one snapshot (REPEATABLE READ), taken after the listener is
//! listening; it is kept only if no change was notified meanwhile (the
//! cache's ticket), so it is exactly as coherent as a miss.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::IsolationLevel;

use crate::authorize::GroupData;
use crate::cache::Cache;
use crate::lookup::{assemble_user, profile_columns, profile_of, Lookup, RawRow};
use crate::store::Inner;
use crate::Error;

/// Every user's own check and reply rows, in [`crate::store`]'s USER_DATA
/// order.
const USER_ROWS: &str = "SELECT username, 0 AS kind, attribute, op::text, value, id::bigint \
      FROM radcheck \
    UNION ALL SELECT username, 1, attribute, op::text, value, id::bigint FROM radreply \
    ORDER BY 1, 2, 6";

const MEMBERSHIPS: &str =
    "SELECT username, groupname, priority, id::bigint FROM radusergroup ORDER BY 1, 3, 4";

/// Every group's rows, once, however many members it has.
const GROUP_ROWS: &str = "SELECT 3 AS kind, groupname, attribute, op::text, value, id::bigint \
      FROM radgroupcheck \
    UNION ALL SELECT 4, groupname, attribute, op::text, value, id::bigint FROM radgroupreply \
    ORDER BY 1, 6";

/// Every account-state row: the username, then PROFILE's columns.
const PROFILES: &str = concat!(
    "SELECT u.username, ",
    profile_columns!(),
    " FROM rlm_rust_user u"
);

/// Every lock, expired or not (the caller compares with the request's time).
const LOCKS: &str = "SELECT username, EXTRACT(EPOCH FROM locked_until)::float8 \
    FROM rlm_rust_lockout WHERE locked_until IS NOT NULL";

/// A large table takes longer than one request may wait.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Attempts per time the cache goes live: a change notified during the
/// read discards it.
const ATTEMPTS: usize = 3;

/// Preloads `cache` each time it goes live, until the runtime stops.
pub(crate) async fn run(
    inner: Arc<Inner>,
    cache: Arc<Cache>,
    mut went_live: tokio::sync::watch::Receiver<u64>,
) {
    while went_live.changed().await.is_ok() {
        for attempt in 1..=ATTEMPTS {
            let ticket = cache.ticket();
            let started = std::time::Instant::now();
            let users = match tokio::time::timeout(READ_TIMEOUT, load_all(&inner)).await {
                Ok(Ok(users)) => users,
                Ok(Err(e)) => {
                    log::warn!("cache preload: {e}; users are loaded on first use");
                    break;
                }
                Err(_) => {
                    log::warn!(
                        "cache preload: no answer within {READ_TIMEOUT:?}; users are loaded on first use"
                    );
                    break;
                }
            };
            let read = users.len();
            match cache.insert_many(ticket, users) {
                Ok(kept) => {
                    log::info!(
                        "cache preload: {kept} of {read} users in memory after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    break;
                }
                Err(why) if attempt < ATTEMPTS => {
                    log::info!("cache preload discarded ({why}); reading again");
                }
                Err(why) => {
                    log::warn!(
                        "cache preload discarded ({why}) {ATTEMPTS} times; users are loaded on first use"
                    );
                }
            }
        }
    }
}

/// Everything [`Inner::lookup`] would answer, for every user in the tables,
/// from one snapshot.
pub(crate) async fn load_all(inner: &Inner) -> Result<Vec<(String, Arc<Lookup>)>, Error> {
    let mut client = inner.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        READ_TIMEOUT.as_millis()
    ))
    .await?;

    let mut own: HashMap<String, Vec<RawRow>> = HashMap::new();
    let rows = tx.query_raw(USER_ROWS, std::iter::empty::<i32>()).await?;
    pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        own.entry(r.try_get(0)?).or_default().push((
            r.get(1),
            Some(String::new()),
            r.get(2),
            r.get(3),
            r.get(4),
        ));
    }

    let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
    let rows = tx.query_raw(MEMBERSHIPS, std::iter::empty::<i32>()).await?;
    pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        let group: Option<String> = r.get(1);
        let group = group.ok_or_else(|| Error::BadData {
            table: "radusergroup",
            message: "groupname is NULL".into(),
        })?;
        groups_of.entry(r.try_get(0)?).or_default().push(group);
    }

    let mut group_rows: HashMap<String, Vec<RawRow>> = HashMap::new();
    let rows = tx.query_raw(GROUP_ROWS, std::iter::empty::<i32>()).await?;
    pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        // A row without a group name belongs to no group (USER_DATA
        // matches names with IN, which never matches NULL).
        let Some(group) = r.get::<_, Option<String>>(1) else {
            continue;
        };
        group_rows.entry(group.clone()).or_default().push((
            r.get(0),
            Some(group),
            r.get(2),
            r.get(3),
            r.get(4),
        ));
    }

    let mut profiles = HashMap::new();
    let rows = tx.query_raw(PROFILES, std::iter::empty::<i32>()).await?;
    pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        profiles.insert(r.try_get::<_, String>(0)?, profile_of(&r, 1));
    }
    let mut locks: HashMap<String, f64> = HashMap::new();
    let rows = tx.query_raw(LOCKS, std::iter::empty::<i32>()).await?;
    pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        if let Some(until) = r.try_get::<_, Option<f64>>(1)? {
            locks.insert(r.try_get::<_, String>(0)?, until);
        }
    }
    tx.commit().await?;

    let mut names: Vec<String> = own.keys().cloned().collect();
    names.extend(groups_of.keys().filter(|n| !own.contains_key(*n)).cloned());
    names.extend(
        profiles
            .keys()
            .filter(|n| !own.contains_key(*n) && !groups_of.contains_key(*n))
            .cloned(),
    );
    let mut users = Vec::with_capacity(names.len());
    // One copy of each group's rows for all its members: a snapshot gives
    // every member the same rows (compared anyway, it is cheap).
    let mut shared: HashMap<String, Arc<GroupData>> = HashMap::new();
    for name in names {
        let groups = groups_of.remove(&name).unwrap_or_default();
        let memberships = groups
            .iter()
            .map(|g| (2, Some(g.clone()), None, None, None));
        // Group check rows of the user's groups, then their reply rows, as
        // USER_DATA orders them (kind first), each group's rows once even
        // when the user is in it twice.
        let mut distinct = groups.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let of_kind = |kind: i32| {
            distinct
                .iter()
                .filter_map(|g| group_rows.get(g))
                .flatten()
                .filter(move |r| r.0 == kind)
                .cloned()
        };
        let rows = own
            .remove(&name)
            .unwrap_or_default()
            .into_iter()
            .chain(memberships)
            .chain(of_kind(3))
            .chain(of_kind(4));
        let mut user = assemble_user(rows)?;
        for g in &mut user.groups {
            match shared.get(&g.name) {
                Some(one) if **one == **g => *g = Arc::clone(one),
                _ => {
                    shared.insert(g.name.clone(), Arc::clone(g));
                }
            }
        }
        let profile = profiles.remove(&name);
        let locked_until = locks.remove(&name);
        users.push((
            name,
            Arc::new(Lookup {
                user,
                profile,
                locked_until,
            }),
        ));
    }
    Ok(users)
}
