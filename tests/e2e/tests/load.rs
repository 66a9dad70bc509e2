//! Hundreds of requests in flight against radiusd's thread pool (never -X),
//! every answer checked against its own request.

use std::time::{Duration, Instant};

use e2e::packet::{self, Outcome, Request};
use e2e::{e2e_env, stock_acct_unique_id, Radiusd, TestDb};

const USERS: usize = 300;
const T0: i64 = 1_700_000_000;

/// One radacct row as this test checks it.
#[derive(Debug, PartialEq)]
struct Session {
    username: String,
    session_id: String,
    unique_id: String,
    nas_ip: String,
    start: Option<i64>,
    update: Option<i64>,
    stop: Option<i64>,
    session_time: Option<i64>,
    input_octets: Option<i64>,
    output_octets: Option<i64>,
}

/// Every radacct row, by username (load1, load2, ...).
fn sessions(db: &TestDb) -> Vec<Session> {
    db.query(
        "SELECT username, acctsessionid, acctuniqueid, host(nasipaddress),
                extract(epoch from acctstarttime)::bigint, extract(epoch from acctupdatetime)::bigint,
                extract(epoch from acctstoptime)::bigint, acctsessiontime,
                acctinputoctets, acctoutputoctets
         FROM radacct ORDER BY length(username), username, radacctid",
        &[],
    )
    .iter()
    .map(|r| Session {
        username: r.get(0),
        session_id: r.get(1),
        unique_id: r.get(2),
        nas_ip: r.get(3),
        start: r.get(4),
        update: r.get(5),
        stop: r.get(6),
        session_time: r.get(7),
        input_octets: r.get(8),
        output_octets: r.get(9),
    })
    .collect()
}

/// Compares every session's row with the expected one; one message per
/// wrong or missing row.
fn check_sessions(db: &TestDb, what: &str, expect: impl Fn(usize) -> Session) {
    let got = sessions(db);
    let want: Vec<Session> = (1..=USERS).map(expect).collect();
    let mut wrong: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("want {w:?}\n got {g:?}"))
        .collect();
    if got.len() != want.len() {
        wrong.push(format!("{} radacct rows, want {}", got.len(), want.len()));
    }
    assert!(
        wrong.is_empty(),
        "after every {what}: {} rows wrong, first ones:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn concurrent_auth_and_accounting_all_answered_correctly() {
    let env = e2e_env!();
    let db = TestDb::create(env, "load");
    db.exec(&format!(
        "INSERT INTO radcheck (username, attribute, op, value)
           SELECT 'load' || i, 'Cleartext-Password', ':=', 'pw-' || i FROM generate_series(1, {USERS}) i;
         INSERT INTO radreply (username, attribute, op, value)
           SELECT 'load' || i, 'Reply-Message', ':=', 'Hello load' || i FROM generate_series(1, {USERS}) i;
         INSERT INTO radusergroup (username, groupname, priority)
           SELECT 'load' || i, 'staff', 1 FROM generate_series(1, {USERS}) i;
         INSERT INTO radgroupreply (groupname, attribute, op, value) VALUES ('staff', 'Idle-Timeout', ':=', '600');"
    ));
    let rad = Radiusd::start(env, &db, "load");

    // 4 requests per user, every 4th with a wrong password; interleaved so
    // the same user is in flight several times at once.
    let mut reqs = Vec::new();
    let mut expect = Vec::new();
    for round in 0..4 {
        for i in 1..=USERS {
            let good = (i + round) % 4 != 0;
            let pw = if good {
                format!("pw-{i}")
            } else {
                format!("bad-{i}")
            };
            reqs.push(Request::pap(format!("load{i}").as_bytes(), pw.as_bytes()));
            expect.push((i, good));
        }
    }
    let t = Instant::now();
    let out = packet::send_many(
        rad.auth_addr(),
        &rad.secret,
        &reqs,
        400,
        Duration::from_secs(10),
    );
    let elapsed = t.elapsed();
    let mut wrong = Vec::new();
    for ((i, good), o) in expect.iter().zip(&out) {
        match o {
            Outcome::Answered(r) if *good => {
                let ok = r.code == packet::ACCESS_ACCEPT
                    && r.get_str(packet::REPLY_MESSAGE) == Some(format!("Hello load{i}"))
                    && r.get_u32(packet::IDLE_TIMEOUT) == Some(600)
                    && r.types().len() == 2;
                if !ok {
                    wrong.push(format!("load{i} good password: {r:?}"));
                }
            }
            Outcome::Answered(r) => {
                if r.code != packet::ACCESS_REJECT {
                    wrong.push(format!("load{i} bad password: {r:?}"));
                }
            }
            other => wrong.push(format!("load{i}: {other:?}")),
        }
    }
    eprintln!("{} Access-Requests, 400 in flight: {elapsed:?}", reqs.len());
    assert!(
        wrong.is_empty(),
        "{} of {} answers wrong, first ones:\n{}",
        wrong.len(),
        reqs.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Counted right after the last answer: each was sent after its row
    // committed (durability = database).
    let pa = db.count("SELECT count(*) FROM radpostauth", &[]);
    assert_eq!(pa, reqs.len() as i64, "one radpostauth row per request");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM radpostauth WHERE reply = 'Access-Reject'",
            &[]
        ),
        USERS as i64,
        "rejects in radpostauth"
    );

    // Accounting: every session's Start in flight at once, then every Stop.
    let acct = |status: u32, extra: &dyn Fn(Request, usize) -> Request| -> Vec<Request> {
        (1..=USERS)
            .map(|i| {
                let r = Request::new(packet::ACCOUNTING_REQUEST)
                    .attr(packet::USER_NAME, format!("load{i}").as_bytes())
                    .attr(packet::ACCT_SESSION_ID, format!("ls-{i}").as_bytes())
                    .attr(packet::NAS_IP_ADDRESS, &[10, 9, 0, 1])
                    .attr_u32(packet::ACCT_STATUS_TYPE, status);
                extra(r, i)
            })
            .collect()
    };
    let starts = acct(1, &|r, _| r.attr_u32(packet::EVENT_TIMESTAMP, T0 as u32));
    let stops = acct(2, &|r, i| {
        r.attr_u32(packet::EVENT_TIMESTAMP, (T0 + 600) as u32)
            .attr_u32(46, 600) // Acct-Session-Time
            .attr_u32(42, i as u32) // Acct-Input-Octets
            .attr_u32(43, 2 * i as u32) // Acct-Output-Octets
    });
    // Each session's row: the stock acct_unique id of its own attributes.
    let started = |i: usize| Session {
        username: format!("load{i}"),
        session_id: format!("ls-{i}"),
        unique_id: stock_acct_unique_id(
            &format!("load{i}"),
            &format!("ls-{i}"),
            "10.9.0.1",
            "",
            "",
            "",
        ),
        nas_ip: "10.9.0.1".into(),
        start: Some(T0),
        update: Some(T0),
        stop: None,
        session_time: Some(0),
        input_octets: Some(0),
        output_octets: Some(0),
    };
    let stopped = |i: usize| Session {
        update: Some(T0 + 600),
        stop: Some(T0 + 600),
        session_time: Some(600),
        input_octets: Some(i as i64),
        output_octets: Some(2 * i as i64),
        ..started(i)
    };
    for (what, batch) in [("Start", starts), ("Stop", stops)] {
        let out = packet::send_many(
            rad.acct_addr(),
            &rad.secret,
            &batch,
            300,
            Duration::from_secs(10),
        );
        let bad: Vec<String> = out
            .iter()
            .enumerate()
            .filter(|(_, o)| !matches!(o, Outcome::Answered(r) if r.code == packet::ACCOUNTING_RESPONSE))
            .map(|(i, o)| format!("{what} load{}: {o:?}", i + 1))
            .collect();
        assert!(
            bad.is_empty(),
            "{} {what}s not acknowledged:\n{}",
            bad.len(),
            bad.join("\n")
        );
        // Acknowledged means stored (no waiting here): every session has
        // exactly its own row, in the state of the last request.
        if what == "Start" {
            check_sessions(&db, what, started);
        } else {
            check_sessions(&db, what, stopped);
        }
    }
    assert_eq!(
        db.count("SELECT count(DISTINCT acctuniqueid) FROM radacct", &[]),
        USERS as i64,
        "one unique id per session"
    );
}
