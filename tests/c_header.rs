//! include/rlm_rust.h is checked in for C integrators; this test fails when
//! it no longer matches src/capi.rs. `UPDATE_HEADER=1` rewrites it.

use std::path::Path;

#[test]
fn c_header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not parse the crate")
        .write(&mut generated);
    let path = root.join("include/rlm_rust.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("writing include/rlm_rust.h");
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "include/rlm_rust.h is stale: run `UPDATE_HEADER=1 cargo test --test c_header` and commit it"
    );
}
