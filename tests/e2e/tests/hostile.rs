//! Anyone in radio range controls what a NAS puts in User-Name (the EAP
//! identity) and in Calling-Station-Id: well-formed packets with hostile
//! content, sent amid valid logins by many clients at once, must not make
//! a single valid login fail. One record the database cannot store used to
//! take its whole group commit down, and with it the Access-Accepts of the
//! other requests in that batch.

use std::time::{Duration, Instant};

use e2e::packet::{self, Outcome, Request, Rng};
use e2e::{e2e_env, rust_only, Radiusd, TestDb};

const CLIENTS: usize = 8;
const VALID_PER_CLIENT: usize = 40;
/// Random packets after each valid login.
const RANDOM_EACH: usize = 10;

/// A value a hostile client could send: NULs, invalid UTF-8, the longest
/// value an attribute holds, nothing at all.
fn hostile_bytes(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => Vec::new(),
        1 => b"x\0y".to_vec(),
        // Names that FreeRADIUS prints as `demo\000x`: their wrong
        // passwords must not count against (and lock) the real `demo`.
        2 if rng.below(2) == 0 => b"demo\0x".to_vec(),
        2 => b"\0demo".to_vec(),
        3 => vec![0xff; 1 + rng.below(253)],
        4 => vec![0; 1 + rng.below(253)],
        5 => rng.bytes(253),
        6 => {
            let len = 1 + rng.below(40);
            let mut v = rng.bytes(len);
            let at = rng.below(len);
            v[at] = 0;
            v
        }
        _ => {
            let len = 1 + rng.below(253);
            rng.bytes(len)
        }
    }
}

/// A well-formed Access-Request with a correct Message-Authenticator (so
/// radiusd processes it) and random content.
fn random_request(rng: &mut Rng) -> Request {
    let mut req = Request::new(packet::ACCESS_REQUEST).message_authenticator();
    if rng.below(10) > 0 {
        let mut name = hostile_bytes(rng);
        if name == b"demo" {
            name.push(0);
        }
        req = req.attr(packet::USER_NAME, &name);
    }
    if rng.below(10) > 0 {
        let len = rng.below(129);
        req = req.password(&rng.bytes(len));
    }
    for _ in 0..rng.below(7) {
        req = match rng.below(10) {
            0 => req.attr(packet::CALLING_STATION_ID, &hostile_bytes(rng)),
            1 => req.attr(packet::CALLED_STATION_ID, &hostile_bytes(rng)),
            2 => req.attr(packet::NAS_IDENTIFIER, &hostile_bytes(rng)),
            3 => req.attr(packet::NAS_PORT_ID, &hostile_bytes(rng)),
            4 => req.attr(packet::NAS_IP_ADDRESS, &rng.bytes(4)),
            5 => req.attr(packet::NAS_PORT, &rng.bytes(4)),
            // Service-Type, NAS-Port-Type: integers of any value.
            6 => req.attr(if rng.below(2) == 0 { 6 } else { 61 }, &rng.bytes(4)),
            // Unassigned and implementation-specific types (below the
            // RFC 6929 extended ones, whose layout differs).
            7 => {
                let t = 192 + rng.below(49) as u8;
                req.attr(t, &hostile_bytes(rng))
            }
            8 => {
                let vendor = rng.next_u64() as u32;
                let mut v = hostile_bytes(rng);
                v.truncate(247);
                req.vsa(vendor, rng.below(256) as u8, &v)
            }
            _ => req.attr(packet::CALLING_STATION_ID, b"02-00-00-00-00-01"),
        };
    }
    req
}

/// N clients, each interleaving valid logins with random packets; every
/// valid login must be accepted and leave its radpostauth row.
#[test]
fn hostile_packets_never_fail_valid_logins() {
    let env = e2e_env!();
    // rlm_rust-only: known difference: rlm_sql cuts a value at a NUL and
    // =XX-escapes what it stores (User-Name "x\0y" becomes radpostauth
    // username 'x', "acct\0user" radacct username 'acct=5C000user'); the
    // module stores "x\000y" and "acct\000user". The rest of this test
    // passes against rlm_sql.
    rust_only!(env);
    let db = TestDb::create(env, "hostile");
    db.user("demo", "demo-pw");
    let mut rad = Radiusd::start(env, &db, "hostile");

    let seed = std::env::var("RLM_RUST_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(Rng::seed);
    eprintln!("seed {seed} (RLM_RUST_HOSTILE_SEED={seed} replays this run)");

    // Per client, its requests and which of them are valid logins.
    let plans: Vec<Vec<(bool, Request)>> = (0..CLIENTS)
        .map(|c| {
            let mut rng = Rng::new(seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut plan = Vec::new();
            for _ in 0..VALID_PER_CLIENT {
                plan.push((true, Request::pap(b"demo", b"demo-pw")));
                for _ in 0..RANDOM_EACH {
                    plan.push((false, random_request(&mut rng)));
                }
            }
            plan
        })
        .collect();
    let valid = CLIENTS * VALID_PER_CLIENT;
    let random = CLIENTS * VALID_PER_CLIENT * RANDOM_EACH;

    let t = Instant::now();
    let (auth, secret) = (rad.auth_addr(), rad.secret.clone());
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let clients: Vec<_> = plans
            .iter()
            .map(|plan| {
                let secret = &secret;
                s.spawn(move || {
                    let reqs: Vec<Request> = plan.iter().map(|(_, r)| r.clone()).collect();
                    packet::send_many(auth, secret, &reqs, 16, Duration::from_secs(5))
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let elapsed = t.elapsed();

    let mut accepted = 0;
    let mut failed_valid = Vec::new();
    let (mut random_answered, mut random_accepted, mut random_lost) = (0, 0, 0);
    for (plan, outs) in plans.iter().zip(&outcomes) {
        for ((is_valid, req), out) in plan.iter().zip(outs) {
            match (is_valid, out) {
                (true, Outcome::Answered(r)) if r.code == packet::ACCESS_ACCEPT => accepted += 1,
                (true, other) => failed_valid.push(format!("{other:?}")),
                (false, Outcome::Answered(r)) => {
                    random_answered += 1;
                    if r.code == packet::ACCESS_ACCEPT {
                        random_accepted += 1;
                        eprintln!("random request accepted: {req:?}");
                    }
                }
                (false, _) => random_lost += 1,
            }
        }
    }
    eprintln!(
        "{CLIENTS} clients, {valid} valid logins and {random} random packets in {elapsed:?}: \
         {accepted} valid accepted; random: {random_answered} answered, {random_lost} unanswered"
    );
    assert!(rad.is_alive(), "radiusd died:\n{}", rad.log_tail(30));
    assert_eq!(
        accepted,
        valid,
        "valid logins not accepted (seed {seed}), first ones: {:?}\n{}",
        &failed_valid[..failed_valid.len().min(5)],
        rad.log_tail(20)
    );
    assert_eq!(random_accepted, 0, "random packets accepted (seed {seed})");
    // Processed, not dropped: otherwise this test would prove nothing.
    assert_eq!(
        random_answered, random,
        "random packets left unanswered (seed {seed})"
    );
    // The answer is sent after post-auth committed: the rows are there.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM radpostauth WHERE username = 'demo' AND reply = 'Access-Accept'",
            &[]
        ),
        valid as i64,
        "radpostauth rows of the valid logins"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM radpostauth", &[]),
        (valid + random) as i64,
        "a radpostauth row for every answered request, hostile ones included"
    );
    assert!(
        db.count(
            "SELECT count(*) FROM radpostauth WHERE username = 'x\\000y' AND reply = 'Access-Reject'",
            &[]
        ) > 0,
        "a NUL in a User-Name is stored as \\000"
    );

    // Accounting with NULs where a client controls the value.
    let acct = |status: u32| {
        Request::new(packet::ACCOUNTING_REQUEST)
            .attr(packet::USER_NAME, b"acct\0user")
            .attr(packet::ACCT_SESSION_ID, b"sess\0ion")
            .attr(packet::CALLING_STATION_ID, b"02\0")
            .attr(packet::NAS_IP_ADDRESS, &[10, 9, 0, 1])
            .attr_u32(packet::ACCT_STATUS_TYPE, status)
            .attr_u32(packet::EVENT_TIMESTAMP, 1_700_000_000 + 60 * (status - 1))
    };
    for (what, status) in [("Start", 1), ("Stop", 2)] {
        let r = packet::send(
            rad.acct_addr(),
            &rad.secret,
            &acct(status),
            Duration::from_secs(5),
        );
        assert_eq!(
            r.map(|r| r.code),
            Some(packet::ACCOUNTING_RESPONSE),
            "{what} with NULs not acknowledged:\n{}",
            rad.log_tail(20)
        );
    }
    let rows = db.query(
        "SELECT username, callingstationid, acctstoptime IS NOT NULL FROM radacct \
         WHERE acctsessionid = 'sess\\000ion'",
        &[],
    );
    assert_eq!(rows.len(), 1, "the session's radacct row");
    let (user, calling, stopped): (String, String, bool) =
        (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    // The username comes through sql_user_name (%{User-Name}), which
    // FreeRADIUS prints with the same escape the core uses for the raw
    // attribute values.
    assert_eq!(
        (user.as_str(), calling.as_str()),
        ("acct\\000user", "02\\000")
    );
    assert!(stopped, "the Stop closed the Start's row");
    assert!(rad.is_alive(), "radiusd died:\n{}", rad.log_tail(30));
}
