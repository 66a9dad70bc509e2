//! radacct: the stock queries' chains as one upsert per status type, many
//! records per statement, with the result of applying them one by one.

use std::collections::HashMap;

use deadpool_postgres::{Object, Pool};

use super::Batch;
use crate::accounting::{self, AcctOutcome, AcctRecord, AcctStatus};
use crate::postauth;
use crate::store::Inner;
use crate::Error;

pub(crate) struct AcctBatch;

impl Batch for AcctBatch {
    type R = (AcctStatus, AcctRecord);
    type T = AcctOutcome;
    const KIND: crate::metrics::BatchKind = crate::metrics::BatchKind::Accounting;

    async fn write<'a>(
        inner: &'a Inner,
        pool: &'a Pool,
        recs: Vec<&'a (AcctStatus, AcctRecord)>,
    ) -> Vec<Result<AcctOutcome, String>> {
        // Before anything is keyed on the unique id: the statements return
        // the ids as stored, and each record is matched with its row by it.
        let clean: Vec<(AcctStatus, std::borrow::Cow<'_, AcctRecord>)> =
            recs.iter().map(|(s, r)| (*s, r.storable())).collect();
        let batch: Vec<(AcctStatus, &AcctRecord)> = clean.iter().map(|(s, r)| (*s, &**r)).collect();
        let mut out = vec![None; batch.len()];
        let together = inner
            .deadline("accounting", async {
                let client = InFlight(Some(inner.client_of(pool).await?));
                let r = apply_accounting(client.get(), &batch, &mut out, false).await;
                client.finished();
                r
            })
            .await;
        let Err(e) = together else {
            return out
                .into_iter()
                .map(|o| Ok(o.unwrap_or(AcctOutcome::Unchanged)))
                .collect();
        };
        // What was committed stays; a record the database refused must not
        // take the others down, so the rest are written one at a time, in
        // order. Not when the database is unreachable or too slow: the
        // leader is a radiusd thread, and retrying would hold it (and every
        // waiting caller) for a timeout per record.
        let pending = out.iter().filter(|o| o.is_none()).count();
        let retry = pending > 1 && super::refused(&e);
        if retry {
            inner
                .acct_fallbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::warn!(
                "accounting batch failed ({e}); writing its {pending} unwritten records one at a time"
            );
        }
        // The retries share one more query_timeout.
        let budget = std::time::Instant::now() + inner.query_timeout;
        let mut results = Vec::with_capacity(batch.len());
        for ((status, rec), o) in batch.iter().zip(out) {
            results.push(match o {
                Some(o) => Ok(o),
                None if !retry => Err(e.to_string()),
                None if std::time::Instant::now() >= budget => {
                    Err(format!("{e}; no time left to retry this record alone"))
                }
                None => inner
                    .write_accounting(pool, *status, rec)
                    .await
                    .map_err(|e| e.to_string()),
            });
        }
        results
    }
}

/// Some accounting records as the statements of [`accounting`] take them:
/// one array per column.
struct Columns<'a> {
    /// The text columns, in the statements' order (see `text_of`), made
    /// storable: also on the paths that do not go through
    /// [`AcctRecord::storable`] first.
    text: [Vec<std::borrow::Cow<'a, str>>; 19],
    ts: Vec<i64>,
    stime: Vec<Option<i64>>,
    inoct: Vec<i64>,
    outoct: Vec<i64>,
}

fn text_of(r: &AcctRecord) -> [&str; 19] {
    [
        &r.session_id,
        &r.unique_id,
        &r.username,
        &r.realm,
        &r.nas_ip,
        &r.nas_port_id,
        &r.nas_port_type,
        &r.authentic,
        &r.connect_info,
        &r.called_station_id,
        &r.calling_station_id,
        &r.terminate_cause,
        &r.service_type,
        &r.framed_protocol,
        &r.framed_ip_address,
        &r.framed_ipv6_address,
        &r.framed_ipv6_prefix,
        &r.framed_interface_id,
        &r.delegated_ipv6_prefix,
    ]
}

impl<'a> Columns<'a> {
    fn of(recs: impl ExactSizeIterator<Item = &'a AcctRecord>) -> Columns<'a> {
        let n = recs.len();
        let mut c = Columns {
            text: std::array::from_fn(|_| Vec::with_capacity(n)),
            ts: Vec::with_capacity(n),
            stime: Vec::with_capacity(n),
            inoct: Vec::with_capacity(n),
            outoct: Vec::with_capacity(n),
        };
        for r in recs {
            for (col, v) in c.text.iter_mut().zip(text_of(r)) {
                col.push(postauth::storable_text(v));
            }
            c.ts.push(r.event_time);
            c.stime.push(r.session_time);
            c.inoct.push(r.input_total());
            c.outoct.push(r.output_total());
        }
        c
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 23] {
        let t = &self.text;
        [
            &t[0],
            &t[1],
            &t[2],
            &t[3],
            &t[4],
            &t[5],
            &t[6],
            &self.ts,
            &self.stime,
            &t[7],
            &t[8],
            &self.inoct,
            &self.outoct,
            &t[9],
            &t[10],
            &t[11],
            &t[12],
            &t[13],
            &t[14],
            &t[15],
            &t[16],
            &t[17],
            &t[18],
        ]
    }
}

/// Applies `recs` with the result of applying them one after the other in
/// this order, but with a few multi-row statements instead of one per
/// record, and one round trip and one commit for most batches.
///
/// Records of different unique ids change different rows, so only the
/// order among records of the same unique id matters: the k-th record of a
/// unique id goes to round k, and rounds run in order. A round is one
/// "wave": the upsert of each status type present, for all its records at
/// once, sent together inside BEGIN and COMMIT. Accounting-On/Off change
/// rows of any unique id: each is a statement of its own, after the rounds
/// of the records before it and before those of the records after it.
///
/// `out` gets each record's outcome as soon as it is committed. On an
/// error the failed wave is rolled back whole and the records still `None`
/// have changed nothing.
///
/// `in_tx`: the caller holds a transaction open (the journal's shipper), so
/// the waves neither begin nor commit one, and nothing is committed here.
pub(crate) async fn apply_accounting(
    client: &Object,
    recs: &[(AcctStatus, &AcctRecord)],
    out: &mut [Option<AcctOutcome>],
    in_tx: bool,
) -> Result<(), Error> {
    for (o, (status, _)) in out.iter_mut().zip(recs) {
        if !accounting::stores(*status) {
            *o = Some(AcctOutcome::Unchanged);
        }
    }
    let mut i = 0;
    while i < recs.len() {
        let (status, rec) = recs[i];
        if accounting::is_nas_wide(status) {
            let stmt = client.prepare_cached(accounting::NAS_RESET).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [&rec.nas_ip, &rec.event_time, &rec.terminate_cause];
            client.execute(&stmt, &params).await?;
            // Answered `ok` even when no session was open.
            out[i] = Some(AcctOutcome::Written);
            i += 1;
            continue;
        }
        let end = recs[i..]
            .iter()
            .position(|(s, _)| accounting::is_nas_wide(*s))
            .map_or(recs.len(), |n| i + n);
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (j, (status, rec)) in recs.iter().enumerate().take(end).skip(i) {
            if accounting::statement(*status).is_none() {
                continue;
            }
            let k = seen.entry(rec.unique_id.as_str()).or_insert(0);
            if rounds.len() == *k {
                rounds.push(Vec::new());
            }
            rounds[*k].push(j);
            *k += 1;
        }
        for round in &rounds {
            apply_round(client, recs, round, out, in_tx).await?;
        }
        i = end;
    }
    Ok(())
}

/// One round of [`apply_accounting`]: `round` indexes records of `recs`
/// with distinct unique ids, none of them NAS-wide.
async fn apply_round(
    client: &Object,
    recs: &[(AcctStatus, &AcctRecord)],
    round: &[usize],
    out: &mut [Option<AcctOutcome>],
    in_tx: bool,
) -> Result<(), Error> {
    let mut by_type = [
        (AcctStatus::Start, Vec::new()),
        (AcctStatus::InterimUpdate, Vec::new()),
        (AcctStatus::Stop, Vec::new()),
    ];
    for &j in round {
        if let Some((_, v)) = by_type.iter_mut().find(|(s, _)| *s == recs[j].0) {
            v.push(j);
        }
    }
    // Prepared first, so that the wave goes out in one piece.
    let mut stmts = Vec::with_capacity(3);
    for (s, v) in &by_type {
        stmts.push(match (v.is_empty(), accounting::statement(*s)) {
            (false, Some(sql)) => Some(client.prepare_cached(sql).await?),
            _ => None,
        });
    }
    let cols: Vec<Columns> = by_type
        .iter()
        .map(|(_, v)| Columns::of(v.iter().map(|&j| recs[j].1)))
        .collect();
    let parts: [Option<(&tokio_postgres::Statement, &Columns)>; 3] =
        std::array::from_fn(|k| stmts[k].as_ref().map(|st| (st, &cols[k])));
    let changed = wave(client, parts, in_tx).await?;
    for ((_, v), ids) in by_type.iter().zip(changed) {
        for &j in v {
            // A row not returned was left alone (an Interim-Update after
            // the Stop): rlm_sql's `noop`.
            out[j] = Some(match ids.contains(recs[j].1.unique_id.as_str()) {
                true => AcctOutcome::Written,
                false => AcctOutcome::Unchanged,
            });
        }
    }
    Ok(())
}

/// Runs `part`'s statement; the unique ids it changed.
async fn changed_ids(
    client: &Object,
    part: Option<(&tokio_postgres::Statement, &Columns<'_>)>,
) -> Result<std::collections::HashSet<String>, tokio_postgres::Error> {
    let Some((stmt, cols)) = part else {
        return Ok(Default::default());
    };
    let rows = client.query(stmt, &cols.params()).await?;
    rows.iter().map(|r| r.try_get::<_, String>(0)).collect()
}

/// A connection in the middle of a wave. Dropped before [`InFlight::finished`]
/// (a deadline cut the wave short) it may be inside a transaction, so it is
/// closed, which makes the server roll back, instead of going back to its
/// pool.
pub(crate) struct InFlight(pub(crate) Option<Object>);

impl InFlight {
    pub(crate) fn get(&self) -> &Object {
        self.0.as_ref().expect("present until finished or dropped")
    }

    /// Back to the pool: every request sent on it has been answered.
    pub(crate) fn finished(mut self) {
        drop(self.0.take());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            drop(Object::take(obj));
        }
    }
}

/// Runs up to three statements in one transaction, sent together with its
/// BEGIN and COMMIT (one round trip, one WAL flush); for each, the unique
/// ids it changed. Any error rolls the whole wave back. A single statement
/// is a transaction of its own and goes out alone.
async fn wave(
    client: &Object,
    parts: [Option<(&tokio_postgres::Statement, &Columns<'_>)>; 3],
    in_tx: bool,
) -> Result<[std::collections::HashSet<String>; 3], Error> {
    let several = !in_tx && parts.iter().flatten().count() > 1;
    let [a, b, c] = parts;
    let around = |sql: &'static str| async move {
        match several {
            true => client.batch_execute(sql).await,
            false => Ok(()),
        }
    };
    // biased: requests go out in this order on the first poll.
    let (begin, a, b, c, commit) = tokio::join!(
        biased;
        around("BEGIN"),
        changed_ids(client, a),
        changed_ids(client, b),
        changed_ids(client, c),
        around("COMMIT"),
    );
    begin?;
    let changed = [a?, b?, c?];
    commit?;
    Ok(changed)
}

impl Inner {
    /// One accounting request in its own transaction.
    pub(crate) async fn write_accounting(
        &self,
        pool: &Pool,
        status: AcctStatus,
        rec: &AcctRecord,
    ) -> Result<AcctOutcome, Error> {
        self.deadline("accounting", async {
            let client = InFlight(Some(self.client_of(pool).await?));
            let mut out = [None];
            let r = apply_accounting(client.get(), &[(status, rec)], &mut out, false).await;
            client.finished();
            r?;
            Ok(out[0].unwrap_or(AcctOutcome::Unchanged))
        })
        .await
    }
}
