//! radpostauth rows, many per statement.

use deadpool_postgres::Pool;

use super::{refused, why, Batch};
use crate::postauth::{self, PostAuthRecord};
use crate::store::Inner;
use crate::Error;

pub(crate) struct PostAuthBatch;

impl Batch for PostAuthBatch {
    type R = PostAuthRecord;
    type T = ();
    const KIND: crate::metrics::BatchKind = crate::metrics::BatchKind::PostAuth;

    async fn write<'a>(
        inner: &'a Inner,
        pool: &'a Pool,
        recs: Vec<&'a PostAuthRecord>,
    ) -> Vec<Result<(), String>> {
        let n = recs.len();
        let together = inner
            .deadline("post-auth", inner.try_insert_postauth(pool, &recs))
            .await;
        let Err(e) = together else {
            return vec![Ok(()); n];
        };
        // As for accounting: a record the database refused must not fail
        // the others, but a database that is unreachable or too slow is not
        // retried, since the leader is a radiusd thread and would be held
        // (with every waiting caller) for a timeout per attempt.
        if n == 1 || !refused(&e) {
            return vec![Err(why(&e)); n];
        }
        log::warn!(
            "post-auth batch refused ({}); splitting its {n} records to find the refused ones",
            why(&e)
        );
        // Rows are independent, so the batch is halved until each refused
        // record is alone: about 2 log2(n) statements for one bad record,
        // where one at a time would be n commits. The retries share one
        // more query_timeout.
        let budget = tokio::time::Instant::now() + inner.query_timeout;
        let mut out: Vec<Option<Result<(), String>>> = vec![None; n];
        let mut todo: Vec<std::ops::Range<usize>> = vec![n / 2..n, 0..n / 2];
        let mut gave_up: Option<String> = None;
        while let Some(part) = todo.pop() {
            let result = match &gave_up {
                Some(reason) => Err(reason.clone()),
                None => match tokio::time::timeout_at(
                    budget,
                    inner.try_insert_postauth(pool, &recs[part.clone()]),
                )
                .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) if refused(&e) && part.len() > 1 => {
                        let mid = part.start + part.len() / 2;
                        todo.push(mid..part.end);
                        todo.push(part.start..mid);
                        continue;
                    }
                    Ok(Err(e)) if refused(&e) => Err(why(&e)),
                    // The database went away meanwhile: what is left fails
                    // without another attempt.
                    Ok(Err(away)) => {
                        let reason = format!("{} (retrying a refused batch)", why(&away));
                        gave_up = Some(reason.clone());
                        Err(reason)
                    }
                    Err(_) => {
                        let reason = format!("{}; no time left to retry this record", why(&e));
                        gave_up = Some(reason.clone());
                        Err(reason)
                    }
                },
            };
            for o in &mut out[part] {
                *o = Some(result.clone());
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(why(&e))))
            .collect()
    }
}

impl Inner {
    /// radpostauth rows, all in one statement (one commit).
    pub(crate) async fn insert_postauth(
        &self,
        pool: &Pool,
        recs: &[&PostAuthRecord],
    ) -> Result<(), String> {
        self.try_insert_postauth(pool, recs)
            .await
            .map_err(|e| e.to_string())
    }

    /// [`Inner::insert_postauth`] keeping the error, so that the batch
    /// writer can tell a refused record from a database that is away.
    async fn try_insert_postauth(
        &self,
        pool: &Pool,
        recs: &[&PostAuthRecord],
    ) -> Result<(), Error> {
        let client = self.client_of(pool).await?;
        insert_postauth_on(&client, recs).await
    }
}

/// radpostauth rows on `client`, in one statement (inside the caller's
/// transaction, if it holds one).
pub(crate) async fn insert_postauth_on(
    client: &deadpool_postgres::Object,
    recs: &[&PostAuthRecord],
) -> Result<(), Error> {
    // Here rather than in the callers: whoever built the record, the
    // database gets nothing it would refuse for its text.
    let recs: Vec<std::borrow::Cow<'_, PostAuthRecord>> =
        recs.iter().map(|r| r.storable()).collect();
    let stmt = client.prepare_cached(postauth::INSERT_MANY).await?;
    let col = |f: fn(&PostAuthRecord) -> Option<&str>| -> Vec<Option<&str>> {
        recs.iter().map(|r| f(r)).collect()
    };
    let users = col(|r| Some(&r.username));
    let pass = col(|r| r.pass.as_deref());
    let reply = col(|r| Some(&r.reply));
    let called = col(|r| r.called_station_id.as_deref());
    let calling = col(|r| r.calling_station_id.as_deref());
    let when: Vec<f64> = recs.iter().map(|r| r.authdate).collect();
    client
        .execute(&stmt, &[&users, &pass, &reply, &called, &calling, &when])
        .await?;
    Ok(())
}
