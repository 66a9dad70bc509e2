//! Groups as rlm_sql processes them: radusergroup ORDER BY priority, a group
//! whose check items fail is skipped, processing stops after the first group
//! that applied unless its reply items say Fall-Through = Yes; reply
//! operators (:= replaces, = adds if absent, += appends); read_groups.

use e2e::{e2e_env, Radiusd, TestDb};

#[test]
fn priority_order_and_fall_through() {
    let env = e2e_env!();
    let db = TestDb::create(env, "groups_prio");

    // Memberships inserted in the opposite order of their priorities: the
    // order must come from priority, not from insertion.
    db.user("stopper", "pw");
    db.member("stopper", "g-second", 2);
    db.member("stopper", "g-first", 1);
    db.group_reply("g-first", "Idle-Timeout", ":=", "100");
    db.group_reply("g-first", "Reply-Message", ":=", "from g-first");
    db.group_reply("g-second", "Idle-Timeout", ":=", "200");
    db.group_reply("g-second", "Session-Timeout", ":=", "50");

    // Fall-Through = Yes in ga goes on to gb; gb has none, so gc is never read.
    db.user("faller", "pw");
    db.member("faller", "gc", 3);
    db.member("faller", "gb", 2);
    db.member("faller", "ga", 1);
    db.group_reply("ga", "Idle-Timeout", ":=", "100");
    db.group_reply("ga", "Fall-Through", "=", "Yes");
    db.group_reply("gb", "Idle-Timeout", ":=", "200");
    db.group_reply("gb", "Session-Timeout", ":=", "50");
    db.group_reply("gc", "Port-Limit", ":=", "3");

    let rad = Radiusd::start(env, &db, "groups_prio");

    let r = rad.pap("stopper", "pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(
        r.sorted(),
        vec!["Idle-Timeout = 100", "Reply-Message = from g-first"],
        "only the first group by priority applies:\n{}",
        r.raw
    );

    let r = rad.pap("faller", "pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(
        r.sorted(),
        vec!["Idle-Timeout = 200", "Session-Timeout = 50"],
        "ga falls through to gb (whose := replaces), gb stops before gc:\n{}",
        r.raw
    );
}

#[test]
fn reply_operators_merge_user_and_group_items() {
    let env = e2e_env!();
    let db = TestDb::create(env, "groups_merge");
    db.user("merger", "pw");
    db.reply("merger", "Reply-Message", ":=", "user");
    db.reply("merger", "Session-Timeout", ":=", "1000");
    db.member("merger", "g", 1);
    db.group_reply("g", "Reply-Message", "+=", "group"); // appended
    db.group_reply("g", "Session-Timeout", "=", "2000"); // present already: kept
    db.group_reply("g", "Idle-Timeout", "=", "300"); // absent: added
    db.group_reply("g", "Acct-Interim-Interval", ":=", "60");
    let rad = Radiusd::start(env, &db, "groups_merge");

    let r = rad.pap("merger", "pw");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(r.all("Reply-Message"), vec!["user", "group"], "{}", r.raw);
    assert_eq!(
        r.sorted(),
        vec![
            "Acct-Interim-Interval = 60",
            "Idle-Timeout = 300",
            "Reply-Message = group",
            "Reply-Message = user",
            "Session-Timeout = 1000",
        ],
        "{}",
        r.raw
    );
}

#[test]
fn group_check_items_select_the_group() {
    let env = e2e_env!();
    let db = TestDb::create(env, "groups_check");
    db.user("porty", "pw");
    db.member("porty", "port-one", 1);
    db.member("porty", "fallback", 2);
    db.group_check("port-one", "NAS-Port", "==", "1");
    db.group_reply("port-one", "Idle-Timeout", ":=", "10");
    db.group_reply("fallback", "Idle-Timeout", ":=", "20");

    // The password may come from a group: no radcheck row at all.
    db.member("grouponly", "pw-group", 1);
    db.group_check("pw-group", "Cleartext-Password", ":=", "group-pw");
    db.group_reply("pw-group", "Reply-Message", ":=", "via group");

    let rad = Radiusd::start(env, &db, "groups_check");

    let r = rad.auth("User-Name = porty, User-Password = pw, NAS-Port = 1");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(
        r.sorted(),
        vec!["Idle-Timeout = 10"],
        "matching group applies, no fall-through:\n{}",
        r.raw
    );

    let r = rad.auth("User-Name = porty, User-Password = pw, NAS-Port = 2");
    assert!(r.is_accept(), "{}", r.raw);
    assert_eq!(
        r.sorted(),
        vec!["Idle-Timeout = 20"],
        "group with failing check skipped:\n{}",
        r.raw
    );

    let r = rad.pap("grouponly", "group-pw");
    assert!(r.is_accept(), "password from radgroupcheck:\n{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("via group"), "{}", r.raw);
    assert!(rad.pap("grouponly", "nope").is_reject());
}

#[test]
fn user_fall_through_and_read_groups() {
    let env = e2e_env!();
    let db = TestDb::create(env, "groups_read");
    for u in ["plain", "no-fall", "yes-fall"] {
        db.user(u, "pw");
        db.reply(u, "Reply-Message", ":=", &format!("user {u}"));
        db.member(u, "g", 1);
    }
    db.reply("no-fall", "Fall-Through", "=", "No");
    db.reply("yes-fall", "Fall-Through", "=", "Yes");
    db.group_reply("g", "Idle-Timeout", ":=", "77");

    // The exact reply of an accepted request; a reject (or no answer) fails
    // here, so a missing Idle-Timeout cannot come from a rejected user.
    let accepted = |rad: &Radiusd, u: &str| -> Vec<String> {
        let r = rad.pap(u, "pw");
        assert!(r.is_accept(), "{u} must be accepted:\n{}", r.raw);
        r.sorted()
    };
    // Fall-Through is a control item of rlm_sql: radreply's Fall-Through is
    // never sent to the NAS.
    let user_only = |u: &str| vec![format!("Reply-Message = user {u}")];
    let with_group = |u: &str| {
        vec![
            "Idle-Timeout = 77".to_string(),
            format!("Reply-Message = user {u}"),
        ]
    };

    // read_groups = yes (default): groups unless the user says Fall-Through = No.
    {
        let rad = Radiusd::start(env, &db, "groups_read_yes");
        assert_eq!(accepted(&rad, "plain"), with_group("plain"));
        assert_eq!(
            accepted(&rad, "no-fall"),
            user_only("no-fall"),
            "Fall-Through = No in radreply skips the groups"
        );
        assert_eq!(accepted(&rad, "yes-fall"), with_group("yes-fall"));
    }
    // read_groups = no: groups only when the user says Fall-Through = Yes.
    {
        let rad = Radiusd::builder(env, &db, "groups_read_no")
            .config("read_groups = no")
            .start();
        assert_eq!(
            accepted(&rad, "plain"),
            user_only("plain"),
            "read_groups = no"
        );
        assert_eq!(accepted(&rad, "no-fall"), user_only("no-fall"));
        assert_eq!(
            accepted(&rad, "yes-fall"),
            with_group("yes-fall"),
            "Fall-Through = Yes overrides read_groups = no"
        );
    }
}
