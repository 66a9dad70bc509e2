//! Access-Request basics: PAP accept with the exact reply attributes, rejects,
//! CHAP and MS-CHAPv2.

use e2e::{e2e_env, hex, mschap, q, Radiusd, TestDb};

fn seed_alice(db: &TestDb) {
    db.user("alice", "alice-pw");
    db.reply("alice", "Reply-Message", ":=", "Hello alice");
    db.reply("alice", "Session-Timeout", ":=", "3600");
    db.member("alice", "staff", 1);
    db.group_reply("staff", "Idle-Timeout", ":=", "600");
    db.group_reply("staff", "Acct-Interim-Interval", ":=", "300");
}

#[test]
fn pap_accept_carries_exactly_the_user_and_group_reply_items() {
    let env = e2e_env!();
    let db = TestDb::create(env, "pap_accept");
    seed_alice(&db);
    let rad = Radiusd::start(env, &db, "pap_accept");

    let r = rad.pap("alice", "alice-pw");
    assert!(r.is_accept(), "expected Access-Accept:\n{}", r.raw);
    assert_eq!(
        r.sorted(),
        vec![
            "Acct-Interim-Interval = 300",
            "Idle-Timeout = 600",
            "Reply-Message = Hello alice",
            "Session-Timeout = 3600",
        ],
        "{}",
        r.raw
    );

    assert_eq!(
        r.message_authenticator.is_some(),
        env.signs_replies(),
        "FreeRADIUS {:?}: Message-Authenticator in the Access-Accept {}:\n{}",
        env.radiusd_version,
        if env.signs_replies() {
            "expected"
        } else {
            "unexpected"
        },
        r.raw
    );

    // The same again: nothing cached wrongly, nothing accumulated.
    let r2 = rad.pap("alice", "alice-pw");
    assert_eq!(r2.sorted(), r.sorted(), "{}", r2.raw);
}

#[test]
fn pap_rejects_wrong_password_and_unknown_user() {
    let env = e2e_env!();
    let db = TestDb::create(env, "pap_reject");
    seed_alice(&db);
    let rad = Radiusd::start(env, &db, "pap_reject");

    for (user, pw, why) in [
        ("alice", "wrong", "wrong password"),
        ("alice", "", "empty password"),
        ("alice", "alice-pw ", "password with a trailing space"),
        ("ALICE", "alice-pw", "user name in another case"),
        ("nobody", "alice-pw", "unknown user"),
    ] {
        let r = rad.pap(user, pw);
        assert!(r.is_reject(), "{why}: expected Access-Reject:\n{}", r.raw);
        // attr_filter.access_reject: no authorisation items in a reject.
        for a in ["Session-Timeout", "Idle-Timeout", "Acct-Interim-Interval"] {
            assert_eq!(r.get(a), None, "{why}: {a} in an Access-Reject:\n{}", r.raw);
        }
    }
    // Still serving the right password afterwards.
    assert!(rad.pap("alice", "alice-pw").is_accept());
}

#[test]
fn chap_against_cleartext_password() {
    let env = e2e_env!();
    let db = TestDb::create(env, "chap");
    seed_alice(&db);
    let rad = Radiusd::start(env, &db, "chap");

    // radclient turns CHAP-Password = "x" into a real CHAP response.
    let ok = rad.auth(&format!(
        "User-Name = alice, CHAP-Password = {}",
        q("alice-pw")
    ));
    assert!(ok.is_accept(), "CHAP with the right password:\n{}", ok.raw);
    assert_eq!(ok.get("Reply-Message"), Some("Hello alice"), "{}", ok.raw);
    assert_eq!(ok.get("Idle-Timeout"), Some("600"), "{}", ok.raw);

    let bad = rad.auth(&format!(
        "User-Name = alice, CHAP-Password = {}",
        q("wrong")
    ));
    assert!(bad.is_reject(), "CHAP with a wrong password:\n{}", bad.raw);
}

#[test]
fn mschapv2_against_nt_password_and_cleartext_password() {
    let env = e2e_env!();
    let db = TestDb::create(env, "mschapv2");
    // One user with only the NT hash stored, one with a cleartext password.
    db.check(
        "nt-user",
        "NT-Password",
        ":=",
        &format!("0x{}", hex(&mschap::nt_hash("nt-secret"))),
    );
    db.reply("nt-user", "Reply-Message", ":=", "Hello nt-user");
    db.user("clear-user", "clear-secret");
    let rad = Radiusd::start(env, &db, "mschapv2");

    let auth_challenge = *b"0123456789abcdef";
    let peer_challenge = *b"fedcba9876543210";
    for (user, pw) in [("nt-user", "nt-secret"), ("clear-user", "clear-secret")] {
        let m = mschap::mschapv2(user, pw, auth_challenge, peer_challenge, 7);
        let r = rad.auth(&format!(
            "User-Name = {}, MS-CHAP-Challenge = 0x{}, MS-CHAP2-Response = 0x{}",
            q(user),
            hex(&m.challenge),
            hex(&m.response)
        ));
        assert!(
            r.is_accept(),
            "MS-CHAPv2 {user}: expected Access-Accept:\n{}",
            r.raw
        );
        // The server proves it knows the password too (RFC 2759 8.7).
        assert_eq!(
            r.get("MS-CHAP2-Success"),
            Some(format!("0x{}", hex(&m.expected_success)).as_str()),
            "MS-CHAP2-Success for {user}:\n{}",
            r.raw
        );
        assert!(
            r.get("MS-MPPE-Recv-Key").is_some(),
            "MPPE keys for {user}:\n{}",
            r.raw
        );

        let wrong = mschap::mschapv2(user, "not-it", auth_challenge, peer_challenge, 8);
        let r = rad.auth(&format!(
            "User-Name = {}, MS-CHAP-Challenge = 0x{}, MS-CHAP2-Response = 0x{}",
            q(user),
            hex(&wrong.challenge),
            hex(&wrong.response)
        ));
        assert!(
            r.is_reject(),
            "MS-CHAPv2 {user} wrong password: expected Access-Reject:\n{}",
            r.raw
        );
    }
    let m = mschap::mschapv2("nt-user", "nt-secret", auth_challenge, peer_challenge, 9);
    let r = rad.auth(&format!(
        "User-Name = nt-user, MS-CHAP-Challenge = 0x{}, MS-CHAP2-Response = 0x{}",
        hex(&m.challenge),
        hex(&m.response)
    ));
    assert_eq!(r.get("Reply-Message"), Some("Hello nt-user"), "{}", r.raw);
}
