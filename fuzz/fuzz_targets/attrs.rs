//! Attribute rows as radcheck / radreply / radgroup* hold them: the `op`
//! column and the value's quoting. Input: `attribute\nop\nvalue`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radius_core::attrs::{AttrRow, Op, RowProblem, RowValue};

fuzz_target!(|data: &[u8]| {
    // The columns are PostgreSQL text: always UTF-8.
    let text = String::from_utf8_lossy(data);
    let mut cols = text.splitn(3, '\n');
    let attribute = cols.next().unwrap_or("");
    let op = cols.next().unwrap_or("");
    let value = cols.next().unwrap_or("");

    // Op::parse reads the column as rlm_sql (gettoken): leading C blanks
    // skipped, the first operator token the rest starts with, anything after
    // it ignored. Op::exact takes only an exact spelling.
    for op in Op::ALL {
        assert_eq!(Op::parse(op.as_str()), Some(op));
        assert_eq!(Op::exact(op.as_str()), Some(op));
    }
    if let Some(exact) = Op::exact(op) {
        assert_eq!(exact.as_str(), op);
        assert_eq!(Op::parse(op), Some(exact));
    }
    if let Some(parsed) = Op::parse(op) {
        let rest = op.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
        assert!(rest.starts_with(parsed.as_str()), "{op:?} -> {parsed}");
    }
    let row = AttrRow::new(attribute, op, value);
    match row.op() {
        Ok(o) if op.is_empty() => assert_eq!(o, Op::CmpEq),
        Ok(o) => assert_eq!(Op::parse(op), Some(o)),
        Err(RowProblem::EmptyAttribute) => assert!(attribute.is_empty()),
        Err(e @ RowProblem::BadOp(_)) => {
            assert!(Op::parse(op).is_none());
            let _ = e.to_string();
        }
    }
    // Unquoting never grows a value: an escape pair gives one or two chars.
    match row.value() {
        RowValue::Literal(v) => assert!(v.len() <= value.len()),
        RowValue::Xlat(v) => assert!(v.len() + 2 <= value.len()),
    }
});
