//! radcheck operators with rlm_sql's semantics (paircompare in
//! src/main/pair.c): comparison operators match against the request and, when
//! any fails, the user's whole check list (password included) and reply items
//! are dropped, so the request is rejected; := and += are assignments to the
//! control list. An attribute missing from the request fails every comparison
//! except !*.

use e2e::{e2e_env, q, Radiusd, TestDb};

struct Case {
    attr: &'static str,
    op: &'static str,
    value: &'static str,
    /// Extra request attributes (radclient syntax, may be empty).
    request: &'static str,
    accept: bool,
}

const fn case(
    attr: &'static str,
    op: &'static str,
    value: &'static str,
    request: &'static str,
    accept: bool,
) -> Case {
    Case {
        attr,
        op,
        value,
        request,
        accept,
    }
}

const CASES: &[Case] = &[
    case("NAS-Port", "==", "5", "NAS-Port = 5", true),
    case("NAS-Port", "==", "5", "NAS-Port = 6", false),
    case("NAS-Port", "==", "5", "", false),
    case(
        "NAS-Identifier",
        "==",
        "nas-a",
        "NAS-Identifier = \"nas-a\"",
        true,
    ),
    case(
        "NAS-Identifier",
        "==",
        "nas-a",
        "NAS-Identifier = \"nas-A\"",
        false,
    ),
    case(
        "NAS-IP-Address",
        "==",
        "10.1.2.3",
        "NAS-IP-Address = 10.1.2.3",
        true,
    ),
    case(
        "NAS-IP-Address",
        "==",
        "10.1.2.3",
        "NAS-IP-Address = 10.1.2.4",
        false,
    ),
    case("NAS-Port", "!=", "5", "NAS-Port = 6", true),
    case("NAS-Port", "!=", "5", "NAS-Port = 5", false),
    case("NAS-Port", "!=", "5", "", false),
    case("NAS-Port", ">", "10", "NAS-Port = 11", true),
    case("NAS-Port", ">", "10", "NAS-Port = 10", false),
    case("NAS-Port", ">=", "10", "NAS-Port = 10", true),
    case("NAS-Port", ">=", "10", "NAS-Port = 9", false),
    case("NAS-Port", "<", "10", "NAS-Port = 9", true),
    case("NAS-Port", "<", "10", "NAS-Port = 10", false),
    case("NAS-Port", "<=", "10", "NAS-Port = 10", true),
    case("NAS-Port", "<=", "10", "NAS-Port = 11", false),
    // Numeric, not textual: 9 < 10 although "9" > "10".
    case("NAS-Port", "<", "10", "NAS-Port = 100", false),
    case("NAS-Port", ">", "9", "NAS-Port = 10", true),
    case(
        "Calling-Station-Id",
        "=~",
        "^aa-bb-",
        "Calling-Station-Id = \"aa-bb-cc\"",
        true,
    ),
    case(
        "Calling-Station-Id",
        "=~",
        "^aa-bb-",
        "Calling-Station-Id = \"cc-aa-bb-\"",
        false,
    ),
    case("Calling-Station-Id", "=~", "^aa-bb-", "", false),
    case(
        "Calling-Station-Id",
        "!~",
        "^aa-bb-",
        "Calling-Station-Id = \"cc-dd\"",
        true,
    ),
    case(
        "Calling-Station-Id",
        "!~",
        "^aa-bb-",
        "Calling-Station-Id = \"aa-bb-01\"",
        false,
    ),
    case("Calling-Station-Id", "!~", "^aa-bb-", "", false),
    case(
        "Calling-Station-Id",
        "=*",
        "ANY",
        "Calling-Station-Id = \"x\"",
        true,
    ),
    case("Calling-Station-Id", "=*", "ANY", "", false),
    case("Calling-Station-Id", "!*", "ANY", "", true),
    case(
        "Calling-Station-Id",
        "!*",
        "ANY",
        "Calling-Station-Id = \"x\"",
        false,
    ),
];

#[test]
fn comparison_operators() {
    let env = e2e_env!();
    let db = TestDb::create(env, "check_ops");
    for (i, c) in CASES.iter().enumerate() {
        let user = format!("case{i}");
        db.user(&user, "pw");
        db.check(&user, c.attr, c.op, c.value);
        db.reply(&user, "Reply-Message", ":=", &format!("case {i}"));
    }
    let rad = Radiusd::start(env, &db, "check_ops");

    let mut wrong = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let mut attrs = format!("User-Name = case{i}, User-Password = pw");
        if !c.request.is_empty() {
            attrs.push_str(", ");
            attrs.push_str(c.request);
        }
        let r = rad.auth(&attrs);
        let desc = format!(
            "case{i}: radcheck {} {} {:?}, request [{}]: expected {}, got {:?}",
            c.attr,
            c.op,
            c.value,
            c.request,
            if c.accept { "accept" } else { "reject" },
            r.code
        );
        if c.accept != r.is_accept() || (!c.accept && !r.is_reject()) {
            wrong.push(desc);
        } else if c.accept && r.get("Reply-Message") != Some(&format!("case {i}")) {
            wrong.push(format!("{desc}: reply items missing: {:?}", r.attrs));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        CASES.len(),
        wrong.join("\n")
    );
}

#[test]
fn several_check_items_must_all_match() {
    let env = e2e_env!();
    let db = TestDb::create(env, "check_all");
    db.user("ranged", "pw");
    db.check("ranged", "NAS-Port", ">=", "10");
    db.check("ranged", "NAS-Port", "<=", "20");
    db.check("ranged", "NAS-Identifier", "==", "edge");
    let rad = Radiusd::start(env, &db, "check_all");

    let req = |port: u32, nas: &str| {
        rad.auth(&format!(
            "User-Name = ranged, User-Password = pw, NAS-Port = {port}, NAS-Identifier = {}",
            q(nas)
        ))
    };
    assert!(req(15, "edge").is_accept());
    assert!(req(10, "edge").is_accept());
    assert!(req(20, "edge").is_accept());
    assert!(req(25, "edge").is_reject());
    assert!(req(9, "edge").is_reject());
    assert!(req(15, "core").is_reject());
}

#[test]
fn assignment_operators_set_control_items() {
    let env = e2e_env!();
    let db = TestDb::create(env, "check_assign");
    // += adds to control: pap finds the password there.
    db.check("adder", "Cleartext-Password", "+=", "add-pw");
    // := Auth-Type Reject: rejected even with the right password.
    db.user("locked", "pw");
    db.check("locked", "Auth-Type", ":=", "Reject");
    // := Auth-Type Accept: accepted whatever the password.
    db.check("open", "Auth-Type", ":=", "Accept");
    db.reply("open", "Reply-Message", ":=", "open door");
    let rad = Radiusd::start(env, &db, "check_assign");

    assert!(rad.pap("adder", "add-pw").is_accept());
    assert!(rad.pap("adder", "other").is_reject());
    let r = rad.pap("locked", "pw");
    assert!(r.is_reject(), "Auth-Type := Reject:\n{}", r.raw);
    let r = rad.pap("open", "anything");
    assert!(r.is_accept(), "Auth-Type := Accept:\n{}", r.raw);
    assert_eq!(r.get("Reply-Message"), Some("open door"));
}
