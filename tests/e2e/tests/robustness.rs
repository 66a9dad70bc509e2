//! One bad request must never take the server down: a panic inside a module
//! callback fails only that request, and odd or malformed packets are
//! answered (or dropped) while radiusd keeps serving everybody else.

use std::time::Duration;

use e2e::packet::{self, Outcome, Request};
use e2e::{e2e_env, rust_only, Radiusd, TestDb};

fn seed(db: &TestDb) {
    db.user("demo", "demo-pw");
    db.reply("demo", "Reply-Message", ":=", "Hello demo");
}

/// The server still runs and still accepts demo with the right reply.
fn still_serving(rad: &mut Radiusd, after: &str) {
    assert!(rad.is_alive(), "radiusd died after {after}");
    let r = packet::send(
        rad.auth_addr(),
        &rad.secret,
        &Request::pap(b"demo", b"demo-pw"),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no answer to a good request after {after}"));
    assert_eq!(r.code, packet::ACCESS_ACCEPT, "good request after {after}");
    assert_eq!(
        r.get_str(packet::REPLY_MESSAGE).as_deref(),
        Some("Hello demo"),
        "after {after}"
    );
}

#[test]
fn panic_in_a_callback_fails_only_that_request() {
    let env = e2e_env!();
    // rlm_rust-only: the module's panic-test build
    rust_only!(env);
    let Some(panic_so) = env.panic_so.as_ref() else {
        assert!(
            std::env::var("RLM_RUST_E2E_REQUIRED").as_deref() != Ok("1"),
            "RLM_RUST_PANIC_SO not set (the --features panic-test build)"
        );
        eprintln!("skipped: RLM_RUST_PANIC_SO not set");
        return;
    };
    assert!(panic_so.is_file(), "{} missing", panic_so.display());
    let db = TestDb::create(env, "panic");
    seed(&db);
    db.user("panic-now", "x");
    let metrics_port = e2e::metrics::free_port();
    let mut rad = Radiusd::builder(env, &db, "panic")
        .so(panic_so)
        .config(&format!("metrics_listen = 127.0.0.1:{metrics_port}"))
        .start();

    for i in 0..3 {
        let r = rad.pap("panic-now", "x");
        assert!(
            r.is_reject(),
            "panicking request {i}: expected Access-Reject (module fail):\n{}",
            r.raw
        );
        still_serving(&mut rad, "a panic");
    }

    // The same guard around the other callbacks: a panic in post-auth
    // turns the Accept into a Reject, one in accounting sends no response;
    // the server serves on.
    db.user("panic-post-auth", "x");
    let r = rad.pap("panic-post-auth", "x");
    assert!(r.is_reject(), "panic in post-auth:\n{}", r.raw);
    still_serving(&mut rad, "a panic in post-auth");
    let r = rad.radclient(
        "acct",
        "User-Name = panic-now, Acct-Status-Type = Start, Acct-Session-Id = s-panic, \
         NAS-IP-Address = 127.0.0.1, NAS-Port = 1",
        2,
    );
    assert!(r.code.is_none(), "panic in accounting answered:\n{}", r.raw);
    still_serving(&mut rad, "a panic in accounting");
    assert!(
        rad.log().contains("forced panic in post-auth")
            && rad.log().contains("forced panic in accounting"),
        "{}",
        rad.log_tail(40)
    );
    // Each caught panic is counted as its section's `fail`.
    let (_, text) = e2e::metrics::get(
        format!("127.0.0.1:{metrics_port}").parse().unwrap(),
        "/metrics",
    );
    let fails = |section: &str| {
        e2e::metrics::value(
            &text,
            &format!("rlm_rust_requests_total{{section=\"{section}\",rcode=\"fail\"}}"),
        )
    };
    assert_eq!(fails("authorize"), 3.0, "{text}");
    assert_eq!(fails("accounting"), 1.0, "{text}");
    assert!(fails("post-auth") >= 1.0, "{text}");

    // Panics and good requests at the same time, on all server threads.
    let mut reqs = Vec::new();
    for i in 0..200 {
        if i % 2 == 0 {
            reqs.push(Request::pap(b"panic-now", b"x"));
        } else {
            reqs.push(Request::pap(b"demo", b"demo-pw"));
        }
    }
    let out = packet::send_many(
        rad.auth_addr(),
        &rad.secret,
        &reqs,
        100,
        Duration::from_secs(10),
    );
    for (i, o) in out.iter().enumerate() {
        let want = if i % 2 == 0 {
            packet::ACCESS_REJECT
        } else {
            packet::ACCESS_ACCEPT
        };
        match o {
            Outcome::Answered(r) => assert_eq!(r.code, want, "request {i}"),
            other => panic!("request {i}: {other:?}"),
        }
    }
    still_serving(&mut rad, "concurrent panics");
    assert!(
        rad.log().to_lowercase().contains("panic"),
        "the panic should be logged in radius.log:\n{}",
        rad.log_tail(30)
    );
}

#[test]
fn odd_and_malformed_input_does_not_stop_the_server() {
    let env = e2e_env!();
    let db = TestDb::create(env, "odd_input");
    seed(&db);
    let mut rad = Radiusd::start(env, &db, "odd_input");
    let long = vec![b'x'; 253];

    // Well-formed packets with odd content: each must be answered, with the
    // answer the credentials deserve. demo's right password with odd extra
    // attributes is an Access-Accept carrying demo's reply; everything else
    // is an Access-Reject.
    let answered: Vec<(&str, Request, u8)> = vec![
        (
            "no User-Name",
            Request::new(packet::ACCESS_REQUEST)
                .password(b"demo-pw")
                .message_authenticator(),
            packet::ACCESS_REJECT,
        ),
        (
            "253-byte User-Name",
            Request::pap(&long, b"demo-pw"),
            packet::ACCESS_REJECT,
        ),
        (
            "non-UTF-8 User-Name",
            Request::pap(b"\xff\xfe\xc3\x28demo", b"demo-pw"),
            packet::ACCESS_REJECT,
        ),
        (
            "SQL in User-Name",
            Request::pap(b"demo' OR '1'='1", b"demo-pw"),
            packet::ACCESS_REJECT,
        ),
        (
            "SQL in User-Name (2)",
            Request::pap(b"x'; DROP TABLE radcheck; --", b"demo-pw"),
            packet::ACCESS_REJECT,
        ),
        (
            "128-byte wrong password",
            Request::pap(b"demo", &[b'p'; 128]),
            packet::ACCESS_REJECT,
        ),
        (
            "253-byte Calling-Station-Id",
            Request::pap(b"demo", b"demo-pw").attr(packet::CALLING_STATION_ID, &long),
            packet::ACCESS_ACCEPT,
        ),
        (
            "non-UTF-8 Calling-Station-Id",
            Request::pap(b"demo", b"demo-pw").attr(packet::CALLING_STATION_ID, b"\x80\x81\xfe\xff"),
            packet::ACCESS_ACCEPT,
        ),
        (
            "unknown attribute 200",
            Request::pap(b"demo", b"demo-pw").attr(200, b"\x00\x01whatever"),
            packet::ACCESS_ACCEPT,
        ),
        (
            "unknown vendor 65000",
            Request::pap(b"demo", b"demo-pw").vsa(65000, 1, b"\x00\xffvalue"),
            packet::ACCESS_ACCEPT,
        ),
        (
            "NAS-Port of 2 bytes (wrong size for an integer)",
            Request::pap(b"demo", b"demo-pw").attr(packet::NAS_PORT, b"\x00\x01"),
            packet::ACCESS_ACCEPT,
        ),
    ];
    let mut seen = Vec::new();
    for (what, req, want) in answered {
        let r = packet::send(rad.auth_addr(), &rad.secret, &req, Duration::from_secs(5));
        let code = r.as_ref().map(|r| r.code);
        seen.push(format!("{what}: {code:?}"));
        assert_eq!(code, Some(want), "{what} (2 = accept, 3 = reject)");
        if want == packet::ACCESS_ACCEPT {
            let r = r.as_ref().expect("answered");
            assert_eq!(
                r.get_str(packet::REPLY_MESSAGE).as_deref(),
                Some("Hello demo"),
                "{what}: demo's reply"
            );
        }
        still_serving(&mut rad, what);
    }
    eprintln!(
        "odd input outcomes (2 = accept, 3 = reject):\n  {}",
        seen.join("\n  ")
    );
    assert_eq!(
        db.count("SELECT count(*) FROM radcheck WHERE username = 'demo'", &[]),
        1,
        "radcheck intact"
    );

    // Broken packets: radiusd's decoder drops them (or answers); either way
    // it keeps serving.
    let mut overflow = Request::pap(b"demo", b"demo-pw");
    overflow.raw_tail = vec![packet::REPLY_MESSAGE, 200, b'a', b'b'];
    let mut zero_len = Request::pap(b"demo", b"demo-pw");
    zero_len.raw_tail = vec![packet::NAS_PORT, 0];
    let no_ma = Request::new(packet::ACCESS_REQUEST)
        .attr(packet::USER_NAME, b"demo")
        .password(b"demo-pw");
    for (what, req) in [
        ("attribute length past the end", overflow),
        ("attribute length 0", zero_len),
        (
            "Access-Request without Message-Authenticator (required)",
            no_ma,
        ),
    ] {
        let r = packet::send(
            rad.auth_addr(),
            &rad.secret,
            &req,
            Duration::from_millis(1500),
        );
        if what.contains("Message-Authenticator") {
            assert!(r.is_none(), "{what}: must be dropped, got {r:?}");
        }
        still_serving(&mut rad, what);
    }

    // Accounting without Acct-Status-Type, and with an unknown one.
    for (what, req) in [
        (
            "Accounting-Request without Acct-Status-Type",
            Request::new(packet::ACCOUNTING_REQUEST)
                .attr(packet::USER_NAME, b"demo")
                .attr(packet::ACCT_SESSION_ID, b"odd-1"),
        ),
        (
            "Accounting-Request with Acct-Status-Type 99",
            Request::new(packet::ACCOUNTING_REQUEST)
                .attr(packet::USER_NAME, b"demo")
                .attr(packet::ACCT_SESSION_ID, b"odd-2")
                .attr_u32(packet::ACCT_STATUS_TYPE, 99),
        ),
    ] {
        let _ = packet::send(
            rad.acct_addr(),
            &rad.secret,
            &req,
            Duration::from_millis(1500),
        );
        still_serving(&mut rad, what);
    }
}
