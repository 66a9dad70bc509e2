//! Accounting into radacct with the stock queries' semantics
//! (mods-config/sql/main/postgresql/queries.conf): rows keyed by the
//! Acct-Unique-Session-Id of the stock acct_unique policy, Event-Timestamp as
//! the event time, gigawords folded into the octet counters, Stop without
//! Start creating the row, duplicate Start harmless, Accounting-On/Off
//! closing that NAS's open sessions.

use e2e::{e2e_env, stock_acct_unique_id, Radiusd, Reply, TestDb};

const T0: i64 = 1_700_000_000;

#[derive(Debug, PartialEq)]
struct Row {
    session_id: String,
    unique_id: String,
    username: String,
    nas_ip: String,
    nas_port_id: Option<String>,
    nas_port_type: Option<String>,
    start: Option<i64>,
    update: Option<i64>,
    stop: Option<i64>,
    interval: Option<i64>,
    session_time: Option<i64>,
    authentic: Option<String>,
    connect_start: Option<String>,
    connect_stop: Option<String>,
    input_octets: Option<i64>,
    output_octets: Option<i64>,
    called: Option<String>,
    calling: Option<String>,
    terminate_cause: Option<String>,
    service_type: Option<String>,
    framed_protocol: Option<String>,
    framed_ip: Option<String>,
}

fn rows(db: &TestDb, where_: &str) -> Vec<Row> {
    db.query(
        &format!(
            "SELECT acctsessionid, acctuniqueid, username, host(nasipaddress), nasportid, nasporttype,
                    extract(epoch from acctstarttime)::bigint, extract(epoch from acctupdatetime)::bigint,
                    extract(epoch from acctstoptime)::bigint, acctinterval, acctsessiontime, acctauthentic,
                    connectinfo_start, connectinfo_stop, acctinputoctets, acctoutputoctets,
                    calledstationid, callingstationid, acctterminatecause, servicetype, framedprotocol,
                    host(framedipaddress)
             FROM radacct WHERE {where_} ORDER BY radacctid"
        ),
        &[],
    )
    .iter()
    .map(|r| Row {
        session_id: r.get(0),
        unique_id: r.get(1),
        username: r.get(2),
        nas_ip: r.get(3),
        nas_port_id: r.get(4),
        nas_port_type: r.get(5),
        start: r.get(6),
        update: r.get(7),
        stop: r.get(8),
        interval: r.get(9),
        session_time: r.get(10),
        authentic: r.get(11),
        connect_start: r.get(12),
        connect_stop: r.get(13),
        input_octets: r.get(14),
        output_octets: r.get(15),
        called: r.get(16),
        calling: r.get(17),
        terminate_cause: r.get(18),
        service_type: r.get(19),
        framed_protocol: r.get(20),
        framed_ip: r.get(21),
    })
    .collect()
}

fn one_row(db: &TestDb, where_: &str) -> Row {
    let mut r = rows(db, where_);
    assert_eq!(
        r.len(),
        1,
        "expected exactly one radacct row where {where_}: {r:#?}"
    );
    r.remove(0)
}

fn answered(r: &Reply) {
    assert_eq!(r.code.as_deref(), Some("Accounting-Response"), "{}", r.raw);
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn start_interim_stop_row_by_row() {
    let env = e2e_env!();
    let db = TestDb::create(env, "acct_lifecycle");
    let rad = Radiusd::start(env, &db, "acct_lifecycle");
    let common = "User-Name = carol, Acct-Session-Id = \"sess-1\", NAS-IP-Address = 10.0.0.1, NAS-Port = 7, \
                  NAS-Port-Type = Ethernet, Called-Station-Id = \"ap-1\", Calling-Station-Id = \"00-11-22-33-44-55\", \
                  Framed-IP-Address = 192.0.2.10, Service-Type = Framed-User, Framed-Protocol = PPP, \
                  Acct-Authentic = RADIUS";
    let uid = stock_acct_unique_id("carol", "sess-1", "10.0.0.1", "", "", "7");

    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Start, Event-Timestamp = {T0}, Connect-Info = \"start-info\""
    )));
    let start = Row {
        session_id: "sess-1".into(),
        unique_id: uid.clone(),
        username: "carol".into(),
        nas_ip: "10.0.0.1".into(),
        nas_port_id: s("7"),
        nas_port_type: s("Ethernet"),
        start: Some(T0),
        update: Some(T0),
        stop: None,
        interval: None,
        session_time: Some(0),
        authentic: s("RADIUS"),
        connect_start: s("start-info"),
        connect_stop: None,
        input_octets: Some(0),
        output_octets: Some(0),
        called: s("ap-1"),
        calling: s("00-11-22-33-44-55"),
        terminate_cause: None,
        service_type: s("Framed-User"),
        framed_protocol: s("PPP"),
        framed_ip: s("192.0.2.10"),
    };
    assert_eq!(one_row(&db, "true"), start, "after Start");

    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Interim-Update, Event-Timestamp = {}, Acct-Session-Time = 60, \
         Acct-Input-Octets = 1000, Acct-Output-Octets = 2000",
        T0 + 60
    )));
    let interim = Row {
        update: Some(T0 + 60),
        interval: Some(60),
        session_time: Some(60),
        input_octets: Some(1000),
        output_octets: Some(2000),
        ..start
    };
    assert_eq!(one_row(&db, "true"), interim, "after Interim-Update");

    // Gigawords: 1 * 2^32 + 5 input octets, 2 * 2^32 + 3000 output octets.
    answered(&rad.acct(&format!(
        "{common}, Acct-Status-Type = Stop, Event-Timestamp = {}, Acct-Session-Time = 120, \
         Acct-Input-Octets = 5, Acct-Input-Gigawords = 1, Acct-Output-Octets = 3000, \
         Acct-Output-Gigawords = 2, Acct-Terminate-Cause = User-Request, Connect-Info = \"stop-info\"",
        T0 + 120
    )));
    let stop = Row {
        update: Some(T0 + 120),
        stop: Some(T0 + 120),
        session_time: Some(120),
        input_octets: Some((1i64 << 32) + 5),
        output_octets: Some((2i64 << 32) + 3000),
        terminate_cause: s("User-Request"),
        connect_stop: s("stop-info"),
        ..interim
    };
    assert_eq!(one_row(&db, "true"), stop, "after Stop");
}

#[test]
fn start_without_event_timestamp_uses_the_arrival_time() {
    let env = e2e_env!();
    let db = TestDb::create(env, "acct_now");
    let rad = Radiusd::start(env, &db, "acct_now");
    let now = |db: &TestDb| db.scalar::<i64>("SELECT extract(epoch from now())::bigint", &[]);
    let before = now(&db);
    answered(&rad.acct(
        "User-Name = dave, Acct-Session-Id = \"s-now\", NAS-IP-Address = 10.0.0.9, Acct-Status-Type = Start",
    ));
    let after = now(&db);
    let r = one_row(&db, "acctsessionid = 's-now'");
    let start = r.start.expect("acctstarttime");
    assert!(
        (before - 2..=after + 2).contains(&start),
        "acctstarttime {start} not within [{before}, {after}]"
    );
    assert_eq!(
        r.unique_id,
        stock_acct_unique_id("dave", "s-now", "10.0.0.9", "", "", "")
    );
}

#[test]
fn stop_without_start_creates_the_row() {
    let env = e2e_env!();
    let db = TestDb::create(env, "acct_stop_only");
    let rad = Radiusd::start(env, &db, "acct_stop_only");
    answered(&rad.acct(&format!(
        "User-Name = erin, Acct-Session-Id = \"lonely\", NAS-IP-Address = 10.0.0.2, NAS-Port = 3, \
         Acct-Status-Type = Stop, Event-Timestamp = {}, Acct-Session-Time = 300, Acct-Input-Octets = 10, \
         Acct-Output-Octets = 20, Acct-Output-Gigawords = 1, Acct-Terminate-Cause = Lost-Carrier",
        T0 + 1000
    )));
    let r = one_row(&db, "true");
    assert_eq!(
        r.unique_id,
        stock_acct_unique_id("erin", "lonely", "10.0.0.2", "", "", "3")
    );
    assert_eq!(r.username, "erin");
    assert_eq!(
        r.start,
        Some(T0 + 700),
        "start = event time - Acct-Session-Time"
    );
    assert_eq!(r.stop, Some(T0 + 1000));
    assert_eq!(r.update, Some(T0 + 1000));
    assert_eq!(r.session_time, Some(300));
    assert_eq!(r.input_octets, Some(10));
    assert_eq!(r.output_octets, Some((1i64 << 32) + 20));
    assert_eq!(r.terminate_cause.as_deref(), Some("Lost-Carrier"));
}

#[test]
fn duplicate_start_is_harmless() {
    let env = e2e_env!();
    let db = TestDb::create(env, "acct_dup_start");
    let rad = Radiusd::start(env, &db, "acct_dup_start");
    let start = format!(
        "User-Name = frank, Acct-Session-Id = \"dup\", NAS-IP-Address = 10.0.0.3, Acct-Status-Type = Start, \
         Event-Timestamp = {T0}"
    );
    answered(&rad.acct(&start));
    let first = one_row(&db, "true");
    // A NAS retransmitting with a new packet id (radclient: new id per run).
    answered(&rad.acct(&start));
    answered(&rad.acct(&start));
    assert_eq!(
        one_row(&db, "true"),
        first,
        "the same single row after duplicate Starts"
    );

    answered(&rad.acct(&format!(
        "User-Name = frank, Acct-Session-Id = \"dup\", NAS-IP-Address = 10.0.0.3, \
         Acct-Status-Type = Interim-Update, Event-Timestamp = {}, Acct-Session-Time = 30, Acct-Input-Octets = 7",
        T0 + 30
    )));
    let r = one_row(&db, "true");
    assert_eq!(
        (r.start, r.update, r.session_time, r.input_octets),
        (Some(T0), Some(T0 + 30), Some(30), Some(7))
    );
}

#[test]
fn accounting_on_and_off_close_only_that_nas_sessions() {
    let env = e2e_env!();
    let db = TestDb::create(env, "acct_nas_reboot");
    let rad = Radiusd::start(env, &db, "acct_nas_reboot");
    let start = |user: &str, sess: &str, nas: &str, t: i64| {
        answered(&rad.acct(&format!(
            "User-Name = {user}, Acct-Session-Id = \"{sess}\", NAS-IP-Address = {nas}, \
             Acct-Status-Type = Start, Event-Timestamp = {t}"
        )));
    };
    start("u1", "s1", "10.0.0.1", T0);
    start("u2", "s2", "10.0.0.1", T0 + 10);
    start("u3", "s3", "10.0.0.2", T0);
    start("u4", "s4", "10.0.0.1", T0);
    answered(&rad.acct(&format!(
        "User-Name = u4, Acct-Session-Id = \"s4\", NAS-IP-Address = 10.0.0.1, Acct-Status-Type = Stop, \
         Event-Timestamp = {}, Acct-Session-Time = 20, Acct-Terminate-Cause = User-Request",
        T0 + 20
    )));

    answered(&rad.acct(&format!(
        "Acct-Status-Type = Accounting-On, NAS-IP-Address = 10.0.0.1, Event-Timestamp = {}",
        T0 + 100
    )));
    let r1 = one_row(&db, "acctsessionid = 's1'");
    assert_eq!(
        (r1.stop, r1.session_time, r1.terminate_cause.as_deref()),
        (Some(T0 + 100), Some(100), Some("NAS-Reboot")),
        "s1 closed by Accounting-On"
    );
    let r2 = one_row(&db, "acctsessionid = 's2'");
    assert_eq!(
        (r2.stop, r2.session_time, r2.terminate_cause.as_deref()),
        (Some(T0 + 100), Some(90), Some("NAS-Reboot")),
        "s2 closed by Accounting-On"
    );
    let r3 = one_row(&db, "acctsessionid = 's3'");
    assert_eq!(r3.stop, None, "s3 is on another NAS and stays open");
    let r4 = one_row(&db, "acctsessionid = 's4'");
    assert_eq!(
        (r4.stop, r4.terminate_cause.as_deref()),
        (Some(T0 + 20), Some("User-Request")),
        "an already stopped session is left alone"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM radacct", &[]),
        4,
        "Accounting-On adds no session row"
    );

    answered(&rad.acct(&format!(
        "Acct-Status-Type = Accounting-Off, NAS-IP-Address = 10.0.0.2, Event-Timestamp = {}, \
         Acct-Terminate-Cause = Admin-Reboot",
        T0 + 200
    )));
    let r3 = one_row(&db, "acctsessionid = 's3'");
    assert_eq!(
        (r3.stop, r3.session_time, r3.terminate_cause.as_deref()),
        (Some(T0 + 200), Some(200), Some("Admin-Reboot")),
        "s3 closed by Accounting-Off"
    );
    assert_eq!(db.count("SELECT count(*) FROM radacct", &[]), 4);
}
