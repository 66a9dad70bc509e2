//! Reading one user: the stock tables' rows, memberships and group rows,
//! the account state (profile, open one-time tokens, lock) in one
//! pipelined round trip, from the cache when it can answer.

use std::sync::Arc;

use crate::account::Profile;
use crate::attrs::AttrRow;
use crate::authorize::{GroupData, UserData};
use crate::store::{Inner, Store};
use crate::Error;

/// The account-state columns of `rlm_rust_user u`, as [`profile_of`] reads
/// them: for one user (`PROFILE`) and for all (the preload).
macro_rules! profile_columns {
    () => {
        "u.id, u.active, u.reason, EXTRACT(EPOCH FROM u.expiration)::float8, u.password_hash, \
         u.nt_hash, ARRAY(SELECT t.id FROM rlm_rust_radius_token t WHERE t.user_id = u.id \
               AND t.used_at IS NULL AND t.expires_at > now() ORDER BY t.id), \
         ARRAY(SELECT t.token_hash FROM rlm_rust_radius_token t WHERE t.user_id = u.id \
               AND t.used_at IS NULL AND t.expires_at > now() ORDER BY t.id), \
         CASE WHEN u.token_auth THEN u.token_type END"
    };
}
pub(crate) use profile_columns;

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

/// The user's profile row and open one-time tokens, sent together with
/// [`USER_DATA`] on the same connection (pipelined: one round trip).
const PROFILE: &str = concat!(
    "SELECT ",
    profile_columns!(),
    " FROM rlm_rust_user u WHERE u.username = $1"
);

/// The user's lock, when there is one (expired or not: the caller compares
/// with the time of the request). Sent with [`USER_DATA`].
pub(crate) const LOCK: &str = "SELECT EXTRACT(EPOCH FROM locked_until)::float8 \
    FROM rlm_rust_lockout WHERE username = $1 AND locked_until IS NOT NULL";

/// See [`Store::store_nt_hash`].
const STORE_NT_HASH: &str = "UPDATE rlm_rust_user SET nt_hash = $3 \
    WHERE username = $1 AND password_hash = $2 AND nt_hash IS NULL";

/// Marks a one-time token used; only one request can win it.
const CONSUME_TOKEN: &str = "UPDATE rlm_rust_radius_token SET used_at = now() \
    WHERE id = $1 AND used_at IS NULL AND expires_at > now()";

/// Everything authorize needs about one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lookup {
    pub user: UserData,
    pub profile: Option<Profile>,
    /// Seconds since the epoch until which the user is locked out
    /// (`f64::INFINITY`: until an administrator unlocks).
    pub locked_until: Option<f64>,
}

impl Store {
    /// What [`Store::lookup`] would answer from memory, if it would.
    pub fn cached(&self, username: &str) -> Option<Arc<Lookup>> {
        let cache = self.cache.as_ref()?;
        cache.get(username).or_else(|| {
            cache
                .is_unreachable()
                .then(|| cache.outage_get(username))
                .flatten()
        })
    }

    /// The stock tables' data and the profile of `username`: from memory
    /// when the cache is live, else from the database (kept for next time).
    /// While the cache listener is down, what the cache holds is served
    /// only when the database cannot answer (see [`crate::cache`]).
    pub async fn lookup(&self, username: &str) -> Result<Arc<Lookup>, Error> {
        let Some(cache) = &self.cache else {
            return self.inner.lookup(username).await.map(Arc::new);
        };
        if let Some(hit) = cache.get(username) {
            return Ok(hit);
        }
        // Known to be away: asking it first would only make every request
        // of a held user wait for the timeout.
        if cache.is_unreachable() {
            if let Some(held) = cache.outage_get(username) {
                return Ok(held);
            }
        }
        let ticket = cache.ticket();
        match self.inner.lookup(username).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                cache.insert(username, ticket, Arc::clone(&fresh));
                Ok(fresh)
            }
            Err(e) => match cache.outage_get(username) {
                Some(held) => {
                    log::debug!("{username}: served from the cache while the database fails ({e})");
                    Ok(held)
                }
                None => Err(e),
            },
        }
    }
}

impl Inner {
    async fn lookup(&self, username: &str) -> Result<Lookup, Error> {
        self.deadline(
            "authorize",
            self.on_client(|client| async move {
                let (s1, s2, s3) = tokio::try_join!(
                    client.prepare_cached(USER_DATA),
                    client.prepare_cached(PROFILE),
                    client.prepare_cached(LOCK)
                )?;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&username];
                let (rows, prof, lock) = tokio::try_join!(
                    client.query(&s1, &params),
                    client.query_opt(&s2, &params),
                    client.query_opt(&s3, &params)
                )?;
                let user = assemble_user(rows.iter().map(raw_row))?;
                let profile = prof.map(|r| profile_of(&r, 0));
                let locked_until = lock.and_then(|r| r.get::<_, Option<f64>>(0));
                Ok(Lookup {
                    user,
                    profile,
                    locked_until,
                })
            }),
        )
        .await
    }
}

impl Inner {
    async fn store_nt_hash(&self, username: &str, hash: &str, nt: &str) -> Result<(), Error> {
        self.deadline(
            "NT hash",
            self.on_client(|client| async move {
                let stmt = client.prepare_cached(STORE_NT_HASH).await?;
                client.execute(&stmt, &[&username, &hash, &nt]).await?;
                Ok(())
            }),
        )
        .await
    }
}

impl Store {
    /// Uses up one-time token `id`; false when another request (or time)
    /// got there first.
    pub async fn consume_token(&self, id: i64) -> Result<bool, Error> {
        let inner = &self.inner;
        inner
            .deadline(
                "one-time token",
                inner.on_client(|client| async move {
                    let stmt = client.prepare_cached(CONSUME_TOKEN).await?;
                    Ok(client.execute(&stmt, &[&id]).await? == 1)
                }),
            )
            .await
    }

    /// Stores the NT hash of `password` for a user whose profile hash is
    /// `hash` and who has none yet (users whose password was set before
    /// NT hashes were kept). Nothing happens when the password changed
    /// meanwhile.
    pub async fn store_nt_hash(
        &self,
        username: &str,
        hash: &str,
        password: &str,
    ) -> Result<(), Error> {
        let nt = crate::password::nt_hash_hex(password);
        self.inner.store_nt_hash(username, hash, &nt).await
    }

    /// [`Store::store_nt_hash`] on `rt`, without waiting: the reply need
    /// not wait for it, and the next successful login tries again.
    pub fn store_nt_hash_later(
        &self,
        rt: &tokio::runtime::Handle,
        username: &str,
        hash: &str,
        password: &str,
    ) {
        let nt = crate::password::nt_hash_hex(password);
        let (inner, username, hash) = (
            Arc::clone(&self.inner),
            username.to_string(),
            hash.to_string(),
        );
        rt.spawn(async move {
            if let Err(e) = inner.store_nt_hash(&username, &hash, &nt).await {
                log::warn!("{username}: NT hash not stored: {e}");
            }
        });
    }

    /// The stock tables' data for `username` (or a profile name).
    pub async fn user_data(&self, username: &str) -> Result<UserData, Error> {
        self.lookup(username).await.map(|l| l.user.clone())
    }
}

fn raw_row(r: &tokio_postgres::Row) -> RawRow {
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

/// The account state in [`PROFILE`]'s columns, starting at column `at`.
pub(crate) fn profile_of(r: &tokio_postgres::Row, at: usize) -> Profile {
    let ids: Vec<i64> = r.get(at + 6);
    let hashes: Vec<Vec<u8>> = r.get(at + 7);
    Profile {
        id: r.get(at),
        active: r.get(at + 1),
        reason: r.get(at + 2),
        expiration: r.get(at + 3),
        password_hash: r.get(at + 4),
        nt_hash: r.get(at + 5),
        open_tokens: ids.into_iter().zip(hashes).collect(),
        second_factor: r
            .get::<_, Option<String>>(at + 8)
            .map(|t| crate::login::second_factor::Method::of(&t)),
    }
}

pub(crate) type RawRow = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Turns the rows of [`USER_DATA`] into the user's data. A NULL attribute or
/// value is bad data (rlm_sql fails the request on it too).
pub(crate) fn assemble_user(rows: impl Iterator<Item = RawRow>) -> Result<UserData, Error> {
    let mut user = UserData::default();
    let mut groups: Vec<GroupData> = Vec::new();
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
            groups.push(GroupData {
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
    for mut g in groups {
        for (kind, name, row) in &group_rows {
            if *name == g.name {
                if *kind == 3 {
                    g.check.push(row.clone());
                } else {
                    g.reply.push(row.clone());
                }
            }
        }
        user.groups.push(Arc::new(g));
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
