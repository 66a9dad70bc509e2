//! The login procedure without a database: the cases where the two front
//! doors used to disagree, decided once here.

use std::sync::Arc;

use super::*;
use crate::account::Profile;
use crate::attrs::AttrRow;
use crate::authorize::{GroupData, UserData};

struct Io {
    tokens_won: bool,
    consumed: Vec<i64>,
}

impl ProfileSource for Io {
    fn profile_groups(&mut self, _: &str) -> Result<Vec<Arc<GroupData>>, String> {
        Ok(vec![])
    }
}

impl LoginIo for Io {
    fn consume_token(&mut self, id: i64) -> Result<bool, String> {
        self.consumed.push(id);
        Ok(self.tokens_won)
    }
}

fn policy() -> Policy {
    Policy {
        opts: Options {
            read_groups: true,
            read_profiles: true,
            default_profile: None,
        },
        lockout: Lockout::default(),
        auth_type: "rust".into(),
        store_nt_hash: true,
        second_factor: Default::default(),
    }
}

fn profile() -> Profile {
    Profile {
        id: 1,
        active: true,
        reason: None,
        expiration: None,
        password_hash: Some("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$x".into()),
        nt_hash: Some("8846f7eaee8fb117ad06bdd830b7586c".into()),
        open_tokens: vec![(7, crate::account::hash_token("tok").to_vec())],
        second_factor: None,
    }
}

fn check(rows: &[(&str, &str, &str)]) -> UserData {
    UserData {
        check: rows.iter().map(|(a, o, v)| AttrRow::new(a, o, v)).collect(),
        ..Default::default()
    }
}

/// Runs the procedure as a PAP request of `user` with `password` (and
/// `extra` request attributes): the verdict and the control list.
fn run(
    lookup: &Lookup,
    password: Option<&str>,
    extra: &[(&str, &str)],
    tokens_won: bool,
) -> (Verdict, Vec<(String, String)>, Vec<i64>) {
    let mut req = vec![("User-Name".to_string(), "u".to_string())];
    if let Some(p) = password {
        req.push(("User-Password".into(), p.into()));
    }
    req.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    let mut engine = StringEngine::new(req);
    let mut io = Io {
        tokens_won,
        consumed: vec![],
    };
    let attempt = Attempt {
        username: "u",
        password,
        now: 1000.0,
    };
    let v = authorize(&mut engine, &mut io, lookup, &policy(), &attempt).unwrap();
    (v, engine.control, io.consumed)
}

fn control_has(control: &[(String, String)], name: &str) -> Option<String> {
    control
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

#[test]
fn unknown_user_is_notfound_and_known_stock_user_continues() {
    let (v, _, _) = run(&Lookup::default(), Some("pw"), &[], true);
    assert_eq!(v, Verdict::NotFound);
    let stock = Lookup {
        user: check(&[("Crypt-Password", ":=", "$1$salt$hash")]),
        ..Default::default()
    };
    let (v, control, _) = run(&stock, Some("pw"), &[], true);
    assert_eq!(v, Verdict::Continue(Rcode::Ok));
    // The stock credential stays for pap: no Auth-Type claimed.
    assert_eq!(control_has(&control, "Auth-Type"), None);
    assert!(control_has(&control, "Crypt-Password").is_some());
}

#[test]
fn failed_check_items_refuse_a_profile_user() {
    let lookup = Lookup {
        user: check(&[("NAS-IP-Address", "==", "192.0.2.99")]),
        profile: Some(profile()),
        ..Default::default()
    };
    let (v, _, consumed) = run(
        &lookup,
        Some("tok"),
        &[("NAS-IP-Address", "127.0.0.1")],
        true,
    );
    assert_eq!(v, Verdict::Reject(RejectReason::CheckItems));
    assert!(
        consumed.is_empty(),
        "no token is used up for a refused user"
    );
    let (v, _, _) = run(
        &lookup,
        Some("pw"),
        &[("NAS-IP-Address", "192.0.2.99")],
        true,
    );
    assert_eq!(v, Verdict::Continue(Rcode::Ok));
}

#[test]
fn a_token_never_overrides_auth_type_reject() {
    let lookup = Lookup {
        user: check(&[("Auth-Type", ":=", "Reject")]),
        profile: Some(profile()),
        ..Default::default()
    };
    let (v, _, consumed) = run(&lookup, Some("tok"), &[], true);
    assert_eq!(v, Verdict::Reject(RejectReason::AuthTypeReject));
    assert!(consumed.is_empty());
}

#[test]
fn a_token_accepts_once() {
    let lookup = Lookup {
        profile: Some(profile()),
        ..Default::default()
    };
    let (v, control, consumed) = run(&lookup, Some("tok"), &[], true);
    assert_eq!(v, Verdict::TokenAccepted);
    assert_eq!(consumed, [7]);
    assert_eq!(
        control_has(&control, "Auth-Type").as_deref(),
        Some("Accept")
    );
    // Lost to another request: the password is checked as usual.
    let (v, control, _) = run(&lookup, Some("tok"), &[], false);
    assert_eq!(v, Verdict::Continue(Rcode::Ok));
    assert_eq!(control_has(&control, "Auth-Type").as_deref(), Some("rust"));
}

#[test]
fn profile_hash_is_served_with_its_nt_hash_and_claimed_only_for_pap() {
    let lookup = Lookup {
        profile: Some(profile()),
        ..Default::default()
    };
    let (v, control, _) = run(&lookup, Some("pw"), &[], true);
    assert_eq!(v, Verdict::Continue(Rcode::Ok));
    assert_eq!(control_has(&control, "Auth-Type").as_deref(), Some("rust"));
    assert!(control_has(&control, HASH_ATTR).is_some());
    assert_eq!(
        control_has(&control, "NT-Password").as_deref(),
        Some("8846f7eaee8fb117ad06bdd830b7586c")
    );
    // MS-CHAP / EAP: no User-Password, so mschap verifies the NT hash.
    let (v, control, _) = run(&lookup, None, &[], true);
    assert_eq!(v, Verdict::Continue(Rcode::Ok));
    assert_eq!(control_has(&control, "Auth-Type"), None);
    assert!(control_has(&control, "NT-Password").is_some());
}

#[test]
fn stock_credential_wins_over_the_profile_hash() {
    let lookup = Lookup {
        user: check(&[("Cleartext-Password", ":=", "stock")]),
        profile: Some(profile()),
        ..Default::default()
    };
    let (_, control, _) = run(&lookup, Some("stock"), &[], true);
    assert_eq!(control_has(&control, HASH_ATTR), None);
    assert_eq!(control_has(&control, "Auth-Type"), None);
    assert_eq!(
        check_credential(&control, &Verifier::new(1, 1), &policy(), "u", "stock"),
        Ok(Verified::Fast(true))
    );
}

#[test]
fn account_state_and_lock_come_first() {
    let mut p = profile();
    p.active = false;
    p.reason = Some(0);
    let disabled = Lookup {
        profile: Some(p),
        ..Default::default()
    };
    let (v, _, consumed) = run(&disabled, Some("tok"), &[], true);
    assert_eq!(
        v,
        Verdict::Reject(RejectReason::Disabled { reason: Some(0) })
    );
    assert!(consumed.is_empty());
    // A stock user is locked too; a lock that ran out is none.
    let locked = Lookup {
        user: check(&[("Cleartext-Password", ":=", "pw")]),
        locked_until: Some(1001.0),
        ..Default::default()
    };
    assert_eq!(
        run(&locked, Some("pw"), &[], true).0,
        Verdict::Reject(RejectReason::Locked)
    );
    let forever = Lookup {
        locked_until: Some(f64::INFINITY),
        ..locked.clone()
    };
    assert_eq!(
        run(&forever, Some("pw"), &[], true).0,
        Verdict::Reject(RejectReason::Locked)
    );
    let ran_out = Lookup {
        locked_until: Some(999.0),
        ..locked
    };
    assert_eq!(
        run(&ran_out, Some("pw"), &[], true).0,
        Verdict::Continue(Rcode::Ok)
    );
}

#[test]
fn credential_check_follows_auth_type() {
    let v = Verifier::new(1, 1);
    let c = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let p = policy();
    assert_eq!(
        check_credential(
            &c(&[("Auth-Type", "Reject"), ("Cleartext-Password", "x")]),
            &v,
            &p,
            "u",
            "x"
        ),
        Ok(Verified::Fast(false))
    );
    assert_eq!(
        check_credential(&c(&[("Auth-Type", "Accept")]), &v, &p, "u", "x"),
        Ok(Verified::Fast(true))
    );
    assert_eq!(
        check_credential(
            &c(&[("NT-Password", "8846f7eaee8fb117ad06bdd830b7586c")]),
            &v,
            &p,
            "u",
            "password"
        ),
        Ok(Verified::Fast(true))
    );
    assert_eq!(
        check_credential(&c(&[]), &v, &p, "u", "password"),
        Ok(Verified::Fast(false))
    );
}

#[test]
fn a_second_factor_user_is_ours_over_pap_and_refused_otherwise() {
    use super::second_factor::{Method, Refusal};
    let mut p = profile();
    p.second_factor = Some(Method::Totp);
    // Even with a stock credential (which pap would take), the Auth-Type
    // is ours: the code must be checked after the password.
    let lookup = Lookup {
        user: check(&[("Cleartext-Password", ":=", "stock")]),
        profile: Some(p),
        ..Default::default()
    };
    let (v, control, _) = run(&lookup, Some("stock"), &[], true);
    assert_eq!(v, Verdict::Continue(Rcode::Ok));
    assert_eq!(control_has(&control, "Auth-Type").as_deref(), Some("rust"));
    assert!(v.counts());
    // CHAP, MS-CHAP, EAP-MSCHAPv2: no password a code could follow.
    let (v, _, _) = run(&lookup, None, &[], true);
    assert_eq!(
        v,
        Verdict::Reject(RejectReason::SecondFactor(Refusal::NeedsPap))
    );
    assert!(!v.counts(), "a protocol refusal is no failed login");
}
