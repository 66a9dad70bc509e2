//! The second factor (issue 15) through both doors: a real radiusd loading
//! the module and the built radius-admin on one database and one secret
//! file. TOTP users answer an Access-Challenge (State + Reply-Message) with
//! their code, or append the code to the password; codes are accepted
//! once, across both doors; forged and foreign States are refused; wrong
//! codes count towards the lockout; e-mail codes go from the module through
//! the outbox to radius-admin's SMTP sender (a local sink here) and are
//! accepted; `auth/` answers 200/401 and sends codes. rlm_rust-only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::packet::{self, Request, Response};
use e2e::smtp::SmtpSink;
use e2e::{e2e_env, hex, mschap, q, rust_only, AdminServer, Env, Radiusd, TestDb};
use radius_core::login::totp;
use serde_json::{json, Value};

/// A secret file both servers read (radius-admin would create one; the
/// test writes it first so radiusd can start before radius-admin).
fn secret_file(env: &Env, tag: &str) -> PathBuf {
    let path = env
        .work_dir
        .join(format!("secret-{tag}-{}", std::process::id()));
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    std::fs::write(&path, format!("{}\n", hex(&b))).unwrap();
    path
}

fn radiusd(env: &Env, db: &TestDb, name: &str, secret: &Path) -> Radiusd {
    Radiusd::builder(env, db, name)
        .config(&format!("secret_file = \"{}\"", secret.display()))
        .start()
}

fn admin(
    env: &Env,
    db: &TestDb,
    name: &str,
    secret: &Path,
    smtp: Option<&SmtpSink>,
) -> AdminServer {
    let secret = secret.display().to_string();
    let mut args = vec!["--secret-file".to_string(), secret];
    if let Some(s) = smtp {
        args.extend(["--smtp-url".to_string(), s.url()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    AdminServer::start_with(env, db, name, &refs)
}

/// Creates a user through the API; the answer (with `totp_uri` for TOTP).
fn create(admin: &AdminServer, body: Value) -> Value {
    admin.post("/api/v1/radiususers/", &body).expect(201)
}

fn totp_user(admin: &AdminServer, name: &str, pw: &str) -> Vec<u8> {
    let u = create(
        admin,
        json!({"username": name, "password": pw, "server_name": "r", "server_address": "127.0.0.1",
               "token_auth": true, "token_type": "ftm"}),
    );
    seed_of(
        u["totp_uri"]
            .as_str()
            .unwrap_or_else(|| panic!("no totp_uri in {u}")),
    )
}

/// The seed of an otpauth:// URI (RFC 4648 base32, decoded here).
fn seed_of(uri: &str) -> Vec<u8> {
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let b32 = uri
        .split_once("secret=")
        .and_then(|(_, r)| r.split('&').next())
        .expect("secret= in the URI");
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b32.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {b32}"),
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The code of `step` steps from now.
fn code(seed: &[u8], offset: i64) -> String {
    totp::hotp(seed, (totp::step_at(now()) + offset) as u64, 6)
}

fn send(rad: &Radiusd, req: &Request) -> Response {
    packet::send(rad.auth_addr(), &rad.secret, req, Duration::from_secs(10))
        .expect("an answer from radiusd")
}

fn pap(rad: &Radiusd, user: &str, pw: &str, state: Option<&[u8]>) -> Response {
    let mut r = Request::pap(user.as_bytes(), pw.as_bytes());
    if let Some(s) = state {
        r = r.attr(packet::STATE, s);
    }
    send(rad, &r)
}

/// The password alone: an Access-Challenge; its State and prompt.
fn challenge(rad: &Radiusd, user: &str, pw: &str) -> (Vec<u8>, String) {
    let r = pap(rad, user, pw, None);
    assert_eq!(
        r.code,
        packet::ACCESS_CHALLENGE,
        "{user}: {r:?}\n{}",
        rad.log_tail(30)
    );
    let state = r
        .get(packet::STATE)
        .expect("State in the challenge")
        .to_vec();
    let prompt = r
        .get_str(packet::REPLY_MESSAGE)
        .expect("Reply-Message prompt");
    (state, prompt)
}

fn failures(db: &TestDb, user: &str) -> i64 {
    db.count(
        "SELECT COALESCE(sum(failures), 0)::bigint FROM rlm_rust_lockout WHERE username = $1",
        &[&user],
    )
}

#[test]
fn totp_through_challenge_and_appended_once_across_both_doors() {
    let env = e2e_env!();
    // rlm_rust-only: second factor and radius-admin; rlm_sql has neither
    rust_only!(env);
    let db = TestDb::create(env, "sf_totp");
    let secret = secret_file(env, "sf_totp");
    let rad = radiusd(env, &db, "sf_totp", &secret);
    let admin = admin(env, &db, "sf_totp", &secret, None);
    let seed = totp_user(&admin, "alice", "alice-pw-1");
    let bob_seed = totp_user(&admin, "bob", "bob-pw-12");

    // The right password alone: a challenge, not an Accept.
    let (state, prompt) = challenge(&rad, "alice", "alice-pw-1");
    assert_eq!(state.len(), 16);
    assert!(prompt.contains("authenticator"), "{prompt}");
    // A wrong password gets no challenge.
    assert_eq!(
        pap(&rad, "alice", "wrong-pw", None).code,
        packet::ACCESS_REJECT
    );

    // The code with that State: accepted.
    let c0 = code(&seed, 0);
    let r = pap(&rad, "alice", &c0, Some(&state));
    assert_eq!(r.code, packet::ACCESS_ACCEPT, "{r:?}\n{}", rad.log_tail(30));
    // The same answer again: the State was used up.
    assert_eq!(
        pap(&rad, "alice", &c0, Some(&state)).code,
        packet::ACCESS_REJECT
    );
    // The same code on a new challenge: refused, it was used.
    let (state2, _) = challenge(&rad, "alice", "alice-pw-1");
    assert_eq!(
        pap(&rad, "alice", &c0, Some(&state2)).code,
        packet::ACCESS_REJECT
    );
    // ...and through the HTTP door too.
    let r = admin.post(
        "/api/v1/auth/",
        &json!({"username": "alice", "password": "alice-pw-1", "token_code": c0}),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    db.exec("DELETE FROM rlm_rust_lockout");

    // Password and code in one User-Password (NASes without challenges):
    // the next step's code, within the window.
    let c1 = code(&seed, 1);
    let r = pap(&rad, "alice", &format!("alice-pw-1{c1}"), None);
    assert_eq!(r.code, packet::ACCESS_ACCEPT, "{r:?}\n{}", rad.log_tail(30));
    assert_eq!(
        pap(&rad, "alice", &format!("alice-pw-1{c1}"), None).code,
        packet::ACCESS_REJECT,
        "the appended code again"
    );
    // The wrong password with a right code is a wrong password.
    assert_eq!(
        pap(&rad, "alice", &format!("nope{}", code(&seed, 0)), None).code,
        packet::ACCESS_REJECT
    );

    // A forged State, with a code that is still good: refused, and the
    // lockout does not count it (no credential was guessed).
    db.exec("DELETE FROM rlm_rust_lockout");
    let r = pap(&rad, "bob", &code(&bob_seed, 0), Some(&[7u8; 16]));
    assert_eq!(r.code, packet::ACCESS_REJECT);
    let r = pap(&rad, "bob", &code(&bob_seed, 0), Some(b"short"));
    assert_eq!(r.code, packet::ACCESS_REJECT);
    assert_eq!(failures(&db, "bob"), 0, "forged States are no guesses");
    // Another user's State: refused for alice, and still bob's to use.
    let (bob_state, _) = challenge(&rad, "bob", "bob-pw-12");
    assert_eq!(
        pap(&rad, "alice", &code(&seed, 0), Some(&bob_state)).code,
        packet::ACCESS_REJECT
    );
    let r = pap(&rad, "bob", &code(&bob_seed, 0), Some(&bob_state));
    assert_eq!(r.code, packet::ACCESS_ACCEPT, "{r:?}\n{}", rad.log_tail(30));

    // A wrong code counts towards the lockout, like a wrong password.
    db.exec("DELETE FROM rlm_rust_lockout");
    let wrong = if code(&seed, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (state3, _) = challenge(&rad, "alice", "alice-pw-1");
    assert_eq!(
        pap(&rad, "alice", wrong, Some(&state3)).code,
        packet::ACCESS_REJECT
    );
    assert_eq!(failures(&db, "alice"), 1);
    let r = admin.post(
        "/api/v1/auth/",
        &json!({"username": "alice", "password": "alice-pw-1", "token_code": wrong}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(failures(&db, "alice"), 2, "both doors count wrong codes");

    // MS-CHAPv2 carries no password a code could follow: refused, with a
    // log line saying why.
    let m = mschap::mschapv2(
        "alice",
        "alice-pw-1",
        *b"0123456789abcdef",
        *b"fedcba9876543210",
        7,
    );
    let r = rad.auth(&format!(
        "User-Name = {}, MS-CHAP-Challenge = 0x{}, MS-CHAP2-Response = 0x{}",
        q("alice"),
        hex(&m.challenge),
        hex(&m.response)
    ));
    assert!(r.is_reject(), "MS-CHAPv2 of a token user:\n{}", r.raw);
    assert!(
        rad.log().contains("token_auth users log in with PAP only"),
        "{}",
        rad.log_tail(20)
    );
}

#[test]
fn http_auth_and_authorize_need_the_code() {
    let env = e2e_env!();
    // rlm_rust-only: radius-admin's second factor
    rust_only!(env);
    let db = TestDb::create(env, "sf_http");
    let secret = secret_file(env, "sf_http");
    let smtp = SmtpSink::start();
    let admin = admin(env, &db, "sf_http", &secret, Some(&smtp));
    let seed = totp_user(&admin, "carol", "carol-pw-1");
    let auth = |pw: &str, code: Option<&str>| {
        let mut body = json!({"username": "carol", "password": pw});
        if let Some(c) = code {
            body["token_code"] = c.into();
        }
        admin.post("/api/v1/auth/", &body)
    };
    // No code: 401 saying one is required (nothing to send for TOTP).
    let r = auth("carol-pw-1", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["token_required"], true, "{}", r.text());
    // Wrong password, with or without a right code: 401, nothing said.
    let r = auth("wrong-pw", Some(&code(&seed, 0)));
    assert_eq!(r.status, 401);
    assert!(r.json().get("token_required").is_none(), "{}", r.text());
    // Both right: 200; the same code again: 401.
    let c = code(&seed, 0);
    assert_eq!(
        auth("carol-pw-1", Some(&c)).expect(200)["detail"],
        "authenticated"
    );
    assert_eq!(auth("carol-pw-1", Some(&c)).status, 401);
    // rlm_rest's authorize/: never the password alone; password+code yes.
    let authorize = |pw: String| {
        admin
            .post(
                "/api/v1/authorize/",
                &json!({"username": "carol", "password": pw}),
            )
            .status
    };
    assert_eq!(authorize("carol-pw-1".into()), 401);
    assert_eq!(authorize(format!("carol-pw-1{}", code(&seed, 1))), 200);
    // The user login (token/) is the same procedure.
    let r = admin.request(
        "POST",
        "/api/v1/token/",
        Some(&json!({"username": "carol", "password": "carol-pw-1"})),
        false,
    );
    assert_eq!(r.status, 401, "{}", r.text());

    // An e-mail user: no code → one is sent (through the outbox and this
    // radius-admin's SMTP sender) and the answer says so; it is accepted.
    create(
        &admin,
        json!({"username": "dave", "password": "dave-pw-12", "server_name": "r",
               "server_address": "127.0.0.1", "token_auth": true, "token_type": "email",
               "email": "dave@example.com"}),
    );
    let r = admin.post(
        "/api/v1/auth/",
        &json!({"username": "dave", "password": "dave-pw-12"}),
    );
    assert_eq!(r.status, 401);
    let body = r.json();
    assert_eq!(body["token_required"], true, "{body}");
    assert_eq!(body["token_sent"], json!(["email"]), "{body}");
    let mail = smtp
        .wait_for("dave@example.com", 1, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no mail; admin log:\n{}", admin.log()));
    let code = mail.code().unwrap_or_else(|| panic!("no code in {mail:?}"));
    let r = admin.post(
        "/api/v1/auth/",
        &json!({"username": "dave", "password": "dave-pw-12", "token_code": code}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn email_code_from_the_module_through_the_smtp_sink() {
    let env = e2e_env!();
    // rlm_rust-only: second factor and radius-admin
    rust_only!(env);
    let db = TestDb::create(env, "sf_email");
    let secret = secret_file(env, "sf_email");
    let smtp = SmtpSink::start();
    let rad = radiusd(env, &db, "sf_email", &secret);
    let admin = admin(env, &db, "sf_email", &secret, Some(&smtp));
    create(
        &admin,
        json!({"username": "erin", "password": "erin-pw-12", "server_name": "r",
               "server_address": "127.0.0.1", "token_auth": true, "token_type": "email",
               "email": "erin@example.com"}),
    );
    let (state, prompt) = challenge(&rad, "erin", "erin-pw-12");
    assert!(prompt.contains("e-mail"), "{prompt}");
    let mail = smtp
        .wait_for("erin@example.com", 1, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no mail; admin log:\n{}", admin.log()));
    let code = mail.code().unwrap_or_else(|| panic!("no code in {mail:?}"));
    let r = pap(&rad, "erin", &code, Some(&state));
    assert_eq!(r.code, packet::ACCESS_ACCEPT, "{r:?}\n{}", rad.log_tail(30));
    // Used up: the next login needs a new code.
    let (state, _) = challenge(&rad, "erin", "erin-pw-12");
    assert_eq!(
        pap(&rad, "erin", &code, Some(&state)).code,
        packet::ACCESS_REJECT
    );
    let second = smtp
        .wait_for("erin@example.com", 2, Duration::from_secs(15))
        .and_then(|m| m.code())
        .expect("a second code for the second login");
    // That State was used by the refused answer: the code needs a new one.
    let (state, _) = challenge(&rad, "erin", "erin-pw-12");
    let third = smtp
        .wait_for("erin@example.com", 3, Duration::from_secs(15))
        .and_then(|m| m.code())
        .expect("a third code");
    assert_eq!(
        pap(&rad, "erin", &second, Some(&state)).code,
        packet::ACCESS_REJECT,
        "only the newest code counts"
    );
    let (state, _) = challenge(&rad, "erin", "erin-pw-12");
    let fourth = smtp
        .wait_for("erin@example.com", 4, Duration::from_secs(15))
        .and_then(|m| m.code())
        .expect("a fourth code");
    assert_ne!(third, fourth);
    let r = pap(&rad, "erin", &fourth, Some(&state));
    assert_eq!(r.code, packet::ACCESS_ACCEPT, "{r:?}\n{}", rad.log_tail(30));
}

#[test]
fn eap_peap_mschapv2_is_refused_and_ttls_pap_takes_the_appended_code() {
    use e2e::eapol::{Eapol, Login, Method};
    let env = e2e_env!();
    // rlm_rust-only: second factor and radius-admin
    rust_only!(env);
    let Some(eapol) = Eapol::find(env) else {
        return;
    };
    let db = TestDb::create(env, "sf_eap");
    let secret = secret_file(env, "sf_eap");
    let rad = radiusd(env, &db, "sf_eap", &secret);
    let admin = admin(env, &db, "sf_eap", &secret, None);
    let seed = totp_user(&admin, "frank", "frank-pw-1");
    let o = eapol.login(
        &rad,
        Login::new(Method::PeapMschapv2, "frank", "frank-pw-1"),
    );
    assert!(o.rejected_in_tunnel(), "PEAP-MSCHAPv2:\n{}", o.summary(30));
    assert!(
        rad.log().contains("token_auth users log in with PAP only"),
        "{}",
        rad.log_tail(20)
    );
    // TTLS-PAP: the password alone is not enough (eapol_test cannot answer
    // an inner challenge), the password with the code appended is.
    let o = eapol.login(&rad, Login::new(Method::TtlsPap, "frank", "frank-pw-1"));
    assert!(
        !o.accepted(),
        "TTLS-PAP, password alone:\n{}",
        o.summary(30)
    );
    let pw = format!("frank-pw-1{}", code(&seed, 0));
    let o = eapol.login(&rad, Login::new(Method::TtlsPap, "frank", &pw));
    assert!(
        o.accepted(),
        "TTLS-PAP, code appended:\n{}\n{}",
        o.summary(30),
        rad.log_tail(30)
    );
}
