//! rlm_rust: the FreeRADIUS 3.2 module. This crate is the FFI boundary and
//! nothing else: it reads attributes, calls `radius-core`, writes
//! control/reply attributes and maps results to `rlm_rcode_t`. All `unsafe`
//! of the project lives here.

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unused_imports,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/freeradius.rs"));
}

pub mod capi;
mod ffi;
mod guard;
mod logger;
mod module;

pub use module::rlm_rust;
