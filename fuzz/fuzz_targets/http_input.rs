//! The admin API's request decoding: JSON bodies, urlencoded forms, query
//! strings, then the typed field readers every handler uses, and the
//! timestamp / date parsers. Input: the raw body (also tried as a query).
#![no_main]

use libfuzzer_sys::fuzz_target;
use radius_admin::input::{end_of_day, parse_bool, parse_date, parse_timestamp, Input};
use serde_json::Value;

fn exercise(input: Input) {
    for k in input.keys() {
        let mut i = input.clone();
        assert!(i.contains(&k));
        let _ = i.str_opt(&k);
        assert!(!i.contains(&k), "a read consumes the field");
        let _ = input.clone().str_req(&k);
        let _ = input.clone().str_patch(&k);
        let _ = input.clone().bool_opt(&k);
        let _ = input.clone().int_opt(&k);
        let _ = input.clone().u64_opt(&k);
        if let Some(Value::String(s)) = input.clone().value(&k) {
            let _ = parse_bool(&s);
            let _ = parse_timestamp(&k, &s);
            if let Ok(d) = parse_date(&k, &s) {
                assert!(end_of_day(d).is_finite());
            }
        }
    }
    let mut i = input.clone();
    for k in input.keys() {
        i.remove(&k);
    }
    assert!(i.deny_unknown("field").is_ok());
    if !input.keys().is_empty() {
        assert!(input.deny_unknown("field").is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(i) = Input::from_json(data) {
        exercise(i);
    }
    if let Ok(i) = Input::from_form(data) {
        exercise(i);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(i) = Input::from_query(Some(s)) {
            exercise(i);
        }
        if let Ok(t) = parse_timestamp("t", s) {
            assert!(!t.is_nan());
        }
        if let Ok(d) = parse_date("d", s) {
            assert!(end_of_day(d).is_finite());
        }
    }
});
