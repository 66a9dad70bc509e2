//! The journal and its shipper against a real PostgreSQL, without radiusd:
//! records answered from the journal reach the tables in order and once,
//! a refused record is set aside and replayed once its cause is gone, and
//! a journal reopened after the shipper's rows committed repeats nothing.

use std::time::{Duration, Instant};

use radius_core::accounting::AcctStatus;
use radius_core::store::Store;

mod common;
use common::{accepted, session, TestDb};

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rlm_rust-core-journal-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Blocks (on a plain thread) until the shipper has applied everything.
fn drained(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = store.journal_status().expect("journal open");
        if s.pending == 0 && s.applied == s.durable {
            return;
        }
        assert!(Instant::now() < deadline, "not drained: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_reach_the_tables_once_and_a_refused_one_is_replayed() {
    let db = TestDb::new("journal_replay").await;
    db.client
        .batch_execute("ALTER TABLE radpostauth ADD CONSTRAINT no_evil CHECK (username <> 'evil')")
        .await
        .unwrap();
    let d = dir("replay");
    let mut store = db.store();
    store.start_journal(&d, 1 << 30, "test-host").unwrap();
    let store = tokio::task::spawn_blocking(move || {
        for u in ["a", "evil", "b"] {
            store.commit_postauth(accepted(u)).unwrap();
        }
        for i in 0..300 {
            let rec = session(&format!("u{i}"), 1_700_000_000 + i);
            store
                .commit_accounting(AcctStatus::Start, rec.clone())
                .unwrap();
            store.commit_accounting(AcctStatus::Stop, rec).unwrap();
        }
        drained(&store);
        store
    })
    .await
    .unwrap();
    let s = store.journal_status().unwrap();
    assert_eq!((s.durable, s.set_aside), (603, 1), "{s:?}");
    let names: Vec<String> = db
        .client
        .query("SELECT username FROM radpostauth ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["a", "b"]);
    let stopped: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM radacct WHERE acctstoptime IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stopped, 300);
    let applied: i64 = db
        .client
        .query_one(
            "SELECT applied_seq FROM rlm_rust_journal WHERE host = 'test-host'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 603);

    // Still refused: stays, with the reason.
    let r = store.replay_dead_letters().await.unwrap();
    assert_eq!((r.applied, r.refused), (0, 1));
    db.client
        .batch_execute("ALTER TABLE radpostauth DROP CONSTRAINT no_evil")
        .await
        .unwrap();
    let r = store.replay_dead_letters().await.unwrap();
    assert_eq!((r.applied, r.refused), (1, 0));
    let evil: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM radpostauth WHERE username = 'evil'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(evil, 1);

    // Reopened: PostgreSQL's position says everything is applied, nothing
    // is written again; numbering goes on.
    drop(store);
    let mut store = db.store();
    store.start_journal(&d, 1 << 30, "test-host").unwrap();
    let store = tokio::task::spawn_blocking(move || {
        store.commit_postauth(accepted("c")).unwrap();
        drained(&store);
        store
    })
    .await
    .unwrap();
    assert_eq!(store.journal_status().unwrap().durable, 604);
    let rows: i64 = db
        .client
        .query_one("SELECT count(*) FROM radpostauth", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 4, "a, b, evil (replayed), c");
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
    db.drop_db().await;
}
