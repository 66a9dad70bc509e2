//! Generates the FreeRADIUS bindings from the headers laid out by
//! `scripts/setup` (Debian's libfreeradius-dev plus the eight headers it
//! lacks). The module must be built against the exact server version it is
//! loaded into: radiusd refuses a module whose magic number differs.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=FREERADIUS_INCLUDE");
    println!("cargo:rerun-if-changed=src/wrapper.h");

    // Unset: where scripts/setup lays the headers out, so a plain
    // `cargo build` works in a checkout that ran it.
    let include = env::var("FREERADIUS_INCLUDE")
        .ok()
        .filter(|i| !i.is_empty())
        .or_else(|| {
            let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").ok()?);
            let state = root.join(".state/freeradius-include");
            println!("cargo:rerun-if-changed={}", state.display());
            state
                .join("freeradius/radiusd.h")
                .exists()
                .then(|| state.display().to_string())
        })
        .unwrap_or_default();
    if include.is_empty() {
        panic!(
            "\n\nNo FreeRADIUS headers: FREERADIUS_INCLUDE is not set and \
             .state/freeradius-include has none.\n\
             Run `scripts/setup` once (it installs Debian's FreeRADIUS headers plus the eight \
             upstream headers libfreeradius-dev lacks into .state/freeradius-include, which \
             `cargo build` then finds), or point FREERADIUS_INCLUDE at such a set.\n\n"
        );
    }
    let radiusd_h = PathBuf::from(&include).join("freeradius/radiusd.h");
    let log_h = PathBuf::from(&include).join("freeradius/log.h");
    if !radiusd_h.exists() || !log_h.exists() {
        panic!(
            "\n\nFREERADIUS_INCLUDE={include} does not hold a complete FreeRADIUS header set \
             (need freeradius/radiusd.h and freeradius/log.h). Run `scripts/setup`.\n\n"
        );
    }
    println!("cargo:rerun-if-changed={}", radiusd_h.display());

    let bindings = bindgen::Builder::default()
        .header("src/wrapper.h")
        .clang_arg(format!("-I{include}"))
        // RLM_MODULE_INIT is built by token pasting; only the macro
        // fallback evaluates it.
        .clang_macro_fallback()
        .prepend_enum_name(false)
        .layout_tests(true)
        .derive_default(false)
        .allowlist_type("module_t|REQUEST|VALUE_PAIR|DICT_ATTR|RADIUS_PACKET|CONF_SECTION|CONF_ITEM|CONF_PAIR")
        .allowlist_type("rlm_rcode_t|FR_TOKEN|log_type_t|log_lvl_t|PW_TYPE|PW_CODE|rlm_components_t")
        .allowlist_var("RLM_MODULE_INIT|RLM_TYPE_THREAD_SAFE|RADIUSD_VERSION_STRING|PW_.*|TAG_ANY|rad_debug_lvl|MOD_COUNT|check_config|radacct_dir")
        .allowlist_function("fr_pair_find_by_num|fr_pair_find_by_da|fr_pair_make|fr_pair_add")
        .allowlist_function("fr_pair_value_from_str|fr_pair_mark_xlat|fr_pair_list_free|fr_strerror")
        .allowlist_function("fr_pair_afrom_da|fr_pair_value_strcpy|fr_pair_delete_by_num")
        .allowlist_function("paircompare|radius_pairmove|radius_axlat|vp_prints_value")
        .allowlist_function("dict_attrbyname|dict_addattr|dict_valbyname|radlog|radlog_request")
        .allowlist_function("cf_log_err_cs|cf_item_find_next|cf_item_is_pair|cf_item_is_section")
        .allowlist_function("cf_item_to_pair|cf_item_to_section|cf_pair_attr|cf_pair_value")
        .allowlist_function("cf_section_name1|cf_section_name2|_talloc_free|fr_pair_cmp_op")
        .allowlist_function("ip_ntoh|inet_ntop")
        .allowlist_function("paircompare_register_byname|paircompare_unregister")
        .generate()
        .expect("bindgen failed on the FreeRADIUS headers");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("freeradius.rs");
    bindings.write_to_file(out).expect("writing bindings");
}
