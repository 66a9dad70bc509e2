//! CSV import rows of the batch API / CLI (`username,password,email,
//! first_name,last_name`). Input: the uploaded file.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use radius_admin::batch::parse_csv;
use radius_admin::users::{check_email, check_username};

fuzz_target!(|data: &[u8]| {
    let lines = 1 + data.iter().filter(|&&c| c == b'\n').count();
    match parse_csv(data) {
        Ok(users) => {
            assert!(!users.is_empty());
            let mut seen = HashSet::new();
            for u in &users {
                // The row named in messages is a line of the file.
                assert!((1..=lines).contains(&u.row), "row {} of {lines}", u.row);
                assert!(check_username("u", &u.username).is_ok());
                assert!(seen.insert(u.username.as_str()), "{} twice", u.username);
                assert!(!u.password.is_empty());
                if let Some(e) = &u.email {
                    assert!(check_email("e", e).is_ok());
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            if let Some(rest) = msg.strip_prefix("csvfile: row ") {
                let n: usize = rest
                    .split(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a row number");
                assert!((1..=lines).contains(&n), "{msg} ({lines} lines)");
            }
        }
    }
});
