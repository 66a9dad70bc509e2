//! Hundreds of requests in flight against radiusd's thread pool (never -X),
//! every answer checked against its own request.

use std::time::{Duration, Instant};

use e2e::packet::{self, Outcome, Request};
use e2e::{e2e_env, Radiusd, TestDb};

const USERS: usize = 300;

fn wait_count(db: &TestDb, sql: &str, n: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = db.count(sql, &[]);
        if c >= n || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let pa = wait_count(&db, "SELECT count(*) FROM radpostauth", reqs.len() as i64);
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
    let starts = acct(1, &|r, _| {
        r.attr_u32(packet::EVENT_TIMESTAMP, 1_700_000_000)
    });
    let stops = acct(2, &|r, i| {
        r.attr_u32(packet::EVENT_TIMESTAMP, 1_700_000_600)
            .attr_u32(46, 600) // Acct-Session-Time
            .attr_u32(42, i as u32) // Acct-Input-Octets
    });
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
    }
    // Acknowledged means stored (no waiting here).
    assert_eq!(db.count("SELECT count(*) FROM radacct", &[]), USERS as i64);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM radacct WHERE acctstoptime IS NOT NULL AND acctsessiontime = 600",
            &[]
        ),
        USERS as i64
    );
    let sum: i64 = db.scalar("SELECT sum(acctinputoctets)::bigint FROM radacct", &[]);
    assert_eq!(sum, (USERS * (USERS + 1) / 2) as i64);
}
