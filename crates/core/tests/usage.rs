//! The usage policies' queries against a real PostgreSQL: the counters
//! equal rlm_sqlcounter's stock PostgreSQL query (sessions across the
//! period's start count for their part in it), traffic past 4 GiB adds up
//! in 64 bits, and open sessions are counted as Simultaneous-Use sees them.

use radius_core::accounting::{AcctRecord, AcctStatus};
use radius_core::usage::{Bounds, StaleAfter, COUNTERS};

mod common;
use common::{session, TestDb};

/// A midnight (2023-11-15 00:00 UTC) and the bounds around it.
const D: i64 = 1_700_006_400;

fn bounds() -> Bounds {
    Bounds {
        day: (D, D + 86_400),
        week: (D - 3 * 86_400, D + 4 * 86_400),
        month: (D - 14 * 86_400, D + 16 * 86_400),
    }
}

fn stop(uid: &str, end: i64, secs: i64, octets: u64) -> AcctRecord {
    AcctRecord {
        session_time: Some(secs),
        input_octets: (octets & 0xffff_ffff) as u32,
        input_gigawords: (octets >> 32) as u32,
        output_octets: 7,
        ..session(uid, end)
    }
}

#[tokio::test]
async fn counters_follow_the_stock_sqlcounter_query() {
    let db = TestDb::new("usage_counters").await;
    let store = db.store();
    let w = |status, rec: AcctRecord| {
        let store = &store;
        async move { store.write_accounting(status, &rec).await.unwrap() }
    };
    // Across midnight: 23:00 to 01:00 (3600 s of it today, half its octets).
    w(AcctStatus::Stop, stop("cross", D + 3600, 7200, 2000 - 7)).await;
    // Yesterday, wholly.
    w(AcctStatus::Stop, stop("yday", D - 3600, 3600, 99)).await;
    // Today, past 4 GiB with gigawords.
    w(AcctStatus::Stop, stop("big", D + 200, 50, (5 << 32) + 10)).await;
    // Open today, 30 s so far.
    w(AcctStatus::Start, session("open", D + 300)).await;
    let mut interim = stop("open", D + 330, 30, 1000);
    interim.output_octets = 0;
    w(AcctStatus::InterimUpdate, interim).await;
    // Someone else's.
    let mut other = stop("other", D + 100, 50, 1);
    other.username = "bob".into();
    w(AcctStatus::Stop, other).await;

    let s = store.user_sessions("alice", Some(&bounds())).await.unwrap();
    let b = bounds();
    let daily_time = COUNTERS[0];
    let daily_octets = COUNTERS[4];
    let all_time = COUNTERS[3];
    assert_eq!(s.used(&daily_time, &b), 3600 + 50 + 30);
    assert_eq!(
        s.used(&daily_octets, &b),
        1000 + (5i64 << 32) + 10 + 7 + 1000
    );
    assert_eq!(s.used(&all_time, &b), 7200 + 3600 + 50 + 30);
    // rlm_sqlcounter's dailycounter.conf and noresetcounter.conf on the
    // same rows.
    let stock: i64 = db
        .client
        .query_one(
            "SELECT SUM(AcctSessionTime - GREATEST(($1::int8 - EXTRACT(epoch FROM AcctStartTime)), 0))::int8 \
             FROM radacct WHERE UserName = 'alice' \
             AND EXTRACT(epoch FROM AcctStartTime) + AcctSessionTime > $1::int8",
            &[&D],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stock, s.used(&daily_time, &b));
    let stock_all: i64 = db
        .client
        .query_one(
            "SELECT SUM(AcctSessionTime)::int8 FROM radacct WHERE UserName = 'alice'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stock_all, s.used(&all_time, &b));

    assert_eq!(s.open_sessions(D + 400, StaleAfter::Auto), 1);
    assert_eq!(s.open_sessions(D + 400, StaleAfter::Fixed(10)), 0);
    assert_eq!(store.open_sessions("bob", D + 400).await.unwrap(), 0);
    db.drop_db().await;
}

#[tokio::test]
async fn accounting_on_closes_what_counts() {
    let db = TestDb::new("usage_on").await;
    let store = db.store();
    let now = radius_core::account::now() as i64;
    store
        .write_accounting(AcctStatus::Start, &session("s1", now - 10))
        .await
        .unwrap();
    assert_eq!(store.open_sessions("alice", now).await.unwrap(), 1);
    let on = AcctRecord {
        nas_ip: "192.0.2.1".into(),
        event_time: now - 5,
        ..Default::default()
    };
    store
        .write_accounting(AcctStatus::AccountingOn, &on)
        .await
        .unwrap();
    assert_eq!(store.open_sessions("alice", now).await.unwrap(), 0);
    db.drop_db().await;
}
