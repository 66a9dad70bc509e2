//! The small C API besides `module_t`: for C integrators and the C tests.
//! `include/rlm_rust.h` is generated from this file by cbindgen.

use std::ffi::{c_char, c_int};

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The module's version, e.g. "0.1.0". The string is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn rlm_rust_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Runs the module's built-in self-test (configuration parsing, operator
/// table, password verification) without radiusd or a database.
/// Returns 0 when every check passes, 1 otherwise (details go to stderr).
#[unsafe(no_mangle)]
pub extern "C" fn rlm_rust_self_test() -> c_int {
    match std::panic::catch_unwind(radius_core::self_test) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("rlm_rust self-test failed: {e}");
            1
        }
        Err(_) => {
            eprintln!("rlm_rust self-test panicked");
            1
        }
    }
}
