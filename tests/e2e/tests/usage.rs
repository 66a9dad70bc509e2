//! Usage policies through a real radiusd (issue 15): Simultaneous-Use in
//! the site's session section (open sessions from radacct and from the
//! journal's records not yet applied; closed by Stop and Accounting-On;
//! stale sessions not counted), rlm_sqlcounter's Max-* counters (refusal
//! with the Reply-Message, Session-Timeout capped, traffic past 4 GiB with
//! gigawords, the octets left for the site's unlang), `Rust-Group` in
//! unlang, and radius-admin's door (`authorize/`, `GET radiususers/<id>/`)
//! deciding the same.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{e2e_env, q, rust_only, AdminServer, Radiusd, Reply, TestDb};
use serde_json::json;

const DENIED: &str = "You are already logged in - access denied";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn acct(rad: &Radiusd, attrs: &str) {
    let r = rad.acct(attrs);
    assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{}", r.raw);
}

fn start(rad: &Radiusd, user: &str, session: &str, nas: &str, at: u64) {
    acct(
        rad,
        &format!(
            "User-Name = {}, Acct-Session-Id = {}, NAS-IP-Address = {nas}, \
             Acct-Status-Type = Start, Event-Timestamp = {at}",
            q(user),
            q(session)
        ),
    );
}

/// A Stop of a session of `secs` seconds ending at `at`, with
/// `input` octets (gigawords folded out).
fn stop(rad: &Radiusd, user: &str, session: &str, nas: &str, at: u64, secs: u64, input: u64) {
    acct(
        rad,
        &format!(
            "User-Name = {}, Acct-Session-Id = {}, NAS-IP-Address = {nas}, \
             Acct-Status-Type = Stop, Event-Timestamp = {at}, Acct-Session-Time = {secs}, \
             Acct-Input-Octets = {}, Acct-Input-Gigawords = {}",
            q(user),
            q(session),
            input & 0xffff_ffff,
            input >> 32
        ),
    );
}

fn denied(r: &Reply) -> bool {
    r.is_reject() && r.get("Reply-Message") == Some(DENIED)
}

/// Waits, when the local day began less than `margin` ago, until it did
/// not: the tests put their sessions in today's period.
fn clear_of_midnight(db: &TestDb, margin: u64) {
    let since: f64 = db.scalar(
        "SELECT EXTRACT(EPOCH FROM now() - date_trunc('day', now()))::float8",
        &[],
    );
    if (since as u64) < margin {
        std::thread::sleep(Duration::from_secs(margin - since as u64 + 1));
    }
}

#[test]
fn simultaneous_use_counts_open_sessions_until_stop_or_accounting_on() {
    let env = e2e_env!();
    // Both backends: rlm_sql's session section decides these cases alike.
    let db = TestDb::create(env, "usage_simul");
    db.user("alice", "pw-alice");
    db.check("alice", "Simultaneous-Use", ":=", "1");
    db.user("bob", "pw-bob");
    db.member("bob", "pairs", 1);
    db.group_check("pairs", "Simultaneous-Use", ":=", "2");
    let rad = Radiusd::start(env, &db, "usage_simul");
    let t = now();

    assert!(rad.pap("alice", "pw-alice").is_accept());
    start(&rad, "alice", "a1", "10.0.0.1", t - 10);
    let r = rad.pap("alice", "pw-alice");
    assert!(denied(&r), "{}", r.raw);
    // A wrong password is still a wrong password (no session talk).
    let r = rad.pap("alice", "wrong");
    assert!(
        r.is_reject() && r.get("Reply-Message").is_none(),
        "{}",
        r.raw
    );
    // Refusals for open sessions are not failed logins: more of them than
    // the lockout allows do not lock the account.
    for _ in 0..6 {
        assert!(denied(&rad.pap("alice", "pw-alice")));
    }
    stop(&rad, "alice", "a1", "10.0.0.1", t - 5, 5, 0);
    assert!(rad.pap("alice", "pw-alice").is_accept());

    // Accounting-On from the NAS closes what it had open.
    start(&rad, "alice", "a2", "10.0.0.2", t - 4);
    assert!(denied(&rad.pap("alice", "pw-alice")));
    acct(
        &rad,
        &format!(
            "Acct-Status-Type = Accounting-On, NAS-IP-Address = 10.0.0.2, Event-Timestamp = {}",
            t - 2
        ),
    );
    assert!(rad.pap("alice", "pw-alice").is_accept());

    // A group's limit of 2: radiusd's message says it.
    start(&rad, "bob", "b1", "10.0.0.1", t - 10);
    assert!(rad.pap("bob", "pw-bob").is_accept());
    start(&rad, "bob", "b2", "10.0.0.3", t - 9);
    let r = rad.pap("bob", "pw-bob");
    assert!(r.is_reject(), "{}", r.raw);
    assert_eq!(
        r.get("Reply-Message"),
        Some(format!("{DENIED} (2)").as_str())
    );
}

#[test]
fn a_session_without_news_stops_counting() {
    let env = e2e_env!();
    // rlm_rust-only: stale_session_after (rlm_sql counts a session until it is closed)
    rust_only!(env);
    let db = TestDb::create(env, "usage_stale");
    db.user("carol", "pw-carol");
    db.check("carol", "Simultaneous-Use", ":=", "1");
    let rad = Radiusd::builder(env, &db, "usage_stale")
        .config("stale_session_after = 2")
        .start();
    start(&rad, "carol", "c1", "10.0.0.1", now());
    assert!(denied(&rad.pap("carol", "pw-carol")));
    std::thread::sleep(Duration::from_secs(4));
    assert!(rad.pap("carol", "pw-carol").is_accept());
    // News (an interim update) makes it count again.
    acct(
        &rad,
        &format!(
            "User-Name = carol, Acct-Session-Id = c1, NAS-IP-Address = 10.0.0.1, \
             Acct-Status-Type = Interim-Update, Event-Timestamp = {}, Acct-Session-Time = 4",
            now()
        ),
    );
    assert!(denied(&rad.pap("carol", "pw-carol")));
}

/// Holds an EXCLUSIVE lock on radacct (reads go on, writes wait) until
/// dropped: the journal's shipper cannot apply anything meanwhile.
struct HeldRadacct {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl HeldRadacct {
    fn take(db: &TestDb) -> HeldRadacct {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&db.dsn, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
                .batch_execute("BEGIN; LOCK TABLE radacct IN EXCLUSIVE MODE")
                .await
                .expect("lock radacct");
            client
        });
        HeldRadacct { rt, client }
    }

    fn release(self) {
        self.rt
            .block_on(self.client.batch_execute("COMMIT"))
            .expect("commit");
    }
}

#[test]
fn records_still_in_the_journal_count() {
    let env = e2e_env!();
    // rlm_rust-only: the journal (durability = journal)
    rust_only!(env);
    let db = TestDb::create(env, "usage_journal");
    db.user("dora", "pw-dora");
    db.check("dora", "Simultaneous-Use", ":=", "1");
    db.user("eve", "pw-eve");
    db.check("eve", "Max-Daily-Octets", ":=", "5000000000");
    let rad = Radiusd::builder(env, &db, "usage_journal")
        .config("durability = journal")
        .start();
    clear_of_midnight(&db, 120);
    assert!(rad.pap("dora", "pw-dora").is_accept());
    assert!(rad.pap("eve", "pw-eve").is_accept());

    let held = HeldRadacct::take(&db);
    let t = now();
    // Acknowledged from the journal; PostgreSQL cannot have it.
    start(&rad, "dora", "d1", "10.0.0.1", t);
    stop(&rad, "eve", "e1", "10.0.0.1", t, 10, 5_000_000_000);
    assert!(
        denied(&rad.pap("dora", "pw-dora")),
        "the Start in the journal counts"
    );
    let r = rad.pap("eve", "pw-eve");
    assert!(r.is_reject(), "the Stop in the journal counts: {}", r.raw);
    assert_eq!(db.count("SELECT count(*) FROM radacct", &[]), 0);

    held.release();
    // Shipped: now from radacct, and the same answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.count("SELECT count(*) FROM radacct", &[]) < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", rad.log_tail(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(denied(&rad.pap("dora", "pw-dora")));
    assert!(rad.pap("eve", "pw-eve").is_reject());
    stop(&rad, "dora", "d1", "10.0.0.1", t + 1, 1, 0);
    assert!(rad.pap("dora", "pw-dora").is_accept());
}

/// A site that maps the octets left to a reply attribute (a NAS's vendor
/// attribute in real life; Class here), and tells staff apart.
const SITE_UNLANG: &str = r#"	if (&reply:Rust-Octets-Remaining) {
		update reply {
			Class := "left=%{reply:Rust-Octets-Remaining} giga=%{expr:%{reply:Rust-Octets-Remaining} >> 32} low=%{expr:%{reply:Rust-Octets-Remaining} & 4294967295}"
		}
	}
	if (Rust-Group == "staff") {
		update reply {
			Reply-Message += "staff member"
		}
	}"#;

#[test]
fn counters_refuse_at_the_limit_and_cap_the_session() {
    let env = e2e_env!();
    // rlm_rust-only: the Max-* counters (rlm_sql has no sqlcounter in this site)
    rust_only!(env);
    let db = TestDb::create(env, "usage_counters");
    for u in ["frank", "gina", "hank", "ivan"] {
        db.user(u, "pw");
    }
    // frank: 1000 s a day, 100 used, his radreply says 3600.
    db.check("frank", "Max-Daily-Session", ":=", "1000");
    db.reply("frank", "Session-Timeout", ":=", "3600");
    // gina: 100 s a week from her group, all used.
    db.member("gina", "weekly", 1);
    db.group_check("weekly", "Max-Weekly-Session", ":=", "100");
    // hank and ivan: past 4 GiB of traffic.
    db.check("hank", "Max-Monthly-Octets", ":=", "15000000000");
    db.check("ivan", "Max-All-Octets", ":=", "4294968296");
    let rad = Radiusd::builder(env, &db, "usage_counters")
        .var("RADDB_SITE_AUTHORIZE_EXTRA", SITE_UNLANG)
        .start();
    clear_of_midnight(&db, 300);
    let t = now();
    stop(&rad, "frank", "f1", "10.0.0.1", t - 10, 100, 0);
    stop(&rad, "gina", "g1", "10.0.0.1", t - 10, 100, 0);
    // 4 GiB + 1000 octets: 1000 octets and one gigaword.
    stop(&rad, "hank", "h1", "10.0.0.1", t - 10, 5, (1 << 32) + 1000);
    stop(&rad, "ivan", "i1", "10.0.0.1", t - 10, 5, (1 << 32) + 1000);

    let r = rad.pap("frank", "pw");
    assert!(r.is_accept(), "{}", r.raw);
    let timeout: u64 = r
        .get("Session-Timeout")
        .expect("Session-Timeout")
        .parse()
        .unwrap();
    // 900 left, unless midnight comes first (then rlm_sqlcounter extends
    // it by a day's limit); never above the 3600 the user's reply gave.
    assert!(
        timeout == 900 || (1000..=3600).contains(&timeout),
        "{}",
        r.raw
    );

    let r = rad.pap("gina", "pw");
    assert!(r.is_reject(), "{}", r.raw);
    assert_eq!(
        r.get("Reply-Message"),
        Some("Your maximum weekly usage time has been reached (Max-Weekly-Session)")
    );
    // The account is not disabled: a larger limit opens it at once.
    db.exec("UPDATE radgroupcheck SET value = '200' WHERE groupname = 'weekly'");
    let mut ok = false;
    for _ in 0..50 {
        if rad.pap("gina", "pw").is_accept() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "gina stays refused after her limit was raised");

    let r = rad.pap("hank", "pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(
        r.get("Class").map(|c| c.trim_start_matches("0x")),
        // 15e9 - (4 GiB + 1000) left: 2 gigawords and 2115097112 octets,
        // as a NAS's 32-bit limit and gigawords attributes take it.
        Some(e2e::hex(b"left=10705031704 giga=2 low=2115097112").as_str()),
        "{}",
        r.raw
    );
    let r = rad.pap("ivan", "pw");
    assert!(r.is_reject(), "{}", r.raw);
    assert_eq!(
        r.get("Reply-Message"),
        Some("Your maximum never traffic has been reached (Max-All-Octets)")
    );
}

#[test]
fn rust_group_in_unlang() {
    let env = e2e_env!();
    // rlm_rust-only: Rust-Group (rlm_sql's is SQL-Group)
    rust_only!(env);
    let db = TestDb::create(env, "usage_group");
    db.user("sam", "pw");
    db.user("tina", "pw");
    db.user("uma", "pw");
    db.member("sam", "staff", 1);
    db.member("tina", "students", 1);
    // uma is staff through her profile's groups.
    db.check("uma", "User-Profile", ":=", "staff-profile");
    db.member("staff-profile", "staff", 1);
    let rad = Radiusd::builder(env, &db, "usage_group")
        .var("RADDB_SITE_AUTHORIZE_EXTRA", SITE_UNLANG)
        .start();
    let r = rad.pap("sam", "pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("staff member"), "{}", r.raw);
    let r = rad.pap("tina", "pw");
    assert!(
        r.is_accept() && r.get("Reply-Message").is_none(),
        "{}",
        r.raw
    );
    let r = rad.pap("uma", "pw");
    assert_eq!(r.get("Reply-Message"), Some("staff member"), "{}", r.raw);
    // A name no one has (and one with a NUL) is in no group.
    let r = rad.auth("User-Name = \"nobody\\000x\", User-Password = \"pw\"");
    assert!(r.is_reject(), "{}", r.raw);
}

#[test]
fn the_http_door_applies_the_same_limits_and_shows_usage() {
    let env = e2e_env!();
    // rlm_rust-only: radius-admin
    rust_only!(env);
    let db = TestDb::create(env, "usage_http");
    let rad = Radiusd::start(env, &db, "usage_http");
    let admin = AdminServer::start(env, &db, "usage_http");
    admin
        .post(
            "/api/v1/radiususers/",
            &json!({"username": "vera", "password": "vera-secret-1",
                    "server_name": "radius1", "server_address": "127.0.0.1"}),
        )
        .expect(201);
    db.check("vera", "Simultaneous-Use", ":=", "1");
    db.check("vera", "Max-Daily-Session", ":=", "1000");
    let authorize = |pw: &str| {
        admin.post(
            "/api/v1/authorize/",
            &json!({"username": "vera", "password": pw}),
        )
    };
    clear_of_midnight(&db, 300);
    let t = now();
    stop(&rad, "vera", "v0", "10.0.0.1", t - 20, 400, 0);
    let r = authorize("vera-secret-1");
    assert_eq!(r.status, 200, "{}", r.text());
    let timeout = r.json()["reply:Session-Timeout"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        timeout == "600" || timeout.parse::<u64>().unwrap() > 600,
        "{}",
        r.text()
    );
    assert!(rad.pap("vera", "vera-secret-1").is_accept());

    start(&rad, "vera", "v1", "10.0.0.1", t - 5);
    assert!(denied(&rad.pap("vera", "vera-secret-1")));
    assert_eq!(authorize("vera-secret-1").status, 401);
    // A wrong password is refused too, as a wrong password.
    assert_eq!(authorize("nope").status, 401);

    let id = admin.get("/api/v1/radiususers/?username=vera").expect(200)["objects"][0]["id"]
        .as_i64()
        .expect("id");
    let user = admin.get(&format!("/api/v1/radiususers/{id}/")).expect(200);
    let usage = &user["usage"];
    assert_eq!(usage["simultaneous_use"], 1, "{user}");
    assert_eq!(usage["open_sessions"], 1, "{user}");
    let daily = &usage["limits"][0];
    assert_eq!(daily["attribute"], "Max-Daily-Session", "{user}");
    assert_eq!(daily["limit"], 1000);
    assert_eq!(daily["used"], 400);
    assert_eq!(daily["remaining"], 600);
    assert_eq!(daily["unit"], "seconds");

    stop(&rad, "vera", "v1", "10.0.0.1", t, 5, 0);
    assert!(rad.pap("vera", "vera-secret-1").is_accept());
    assert_eq!(authorize("vera-secret-1").status, 200);
    // Used up: both doors refuse.
    stop(&rad, "vera", "v2", "10.0.0.1", t, 600, 0);
    let r = rad.pap("vera", "vera-secret-1");
    assert!(r.is_reject(), "{}", r.raw);
    assert_eq!(authorize("vera-secret-1").status, 401);
    let user = admin.get(&format!("/api/v1/radiususers/{id}/")).expect(200);
    assert_eq!(user["usage"]["limits"][0]["remaining"], 0, "{user}");
    assert_eq!(
        user["active"], true,
        "a used-up limit does not disable: {user}"
    );
}
