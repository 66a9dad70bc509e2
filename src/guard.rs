//! The one way into the module from radiusd: catch every panic and every
//! null pointer, log it through radiusd's log, and answer `fail`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use crate::ffi::radlog;
use crate::sys;

static HOOK: Once = Once::new();

/// Sends panic messages to radiusd's log instead of stderr (which a
/// daemonised server has closed). Installed once per process.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = panic_message(info.payload());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            radlog(sys::L_ERR, &format!("rlm_rust: panic{at}: {msg}"));
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `f`, turning a panic into `fail` for this one request.
pub fn guard(what: &str, f: impl FnOnce() -> sys::rlm_rcode_t) -> sys::rlm_rcode_t {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(rcode) => rcode,
        Err(payload) => {
            radlog(
                sys::L_ERR,
                &format!(
                    "rlm_rust: {what} failed: panic caught ({}); the request fails, the server keeps running",
                    panic_message(payload.as_ref())
                ),
            );
            sys::RLM_MODULE_FAIL
        }
    }
}

/// Same for instantiate/detach, which answer 0 or -1.
pub fn guard_int(what: &str, f: impl FnOnce() -> i32) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(rc) => rc,
        Err(payload) => {
            radlog(
                sys::L_ERR,
                &format!(
                    "rlm_rust: {what} failed: panic caught ({})",
                    panic_message(payload.as_ref())
                ),
            );
            -1
        }
    }
}
