//! A [`PairEngine`] over plain strings, for callers without radiusd (the
//! admin service's `authorize/`). It follows FreeRADIUS 3.2's
//! `paircompare()` and `radius_pairmove()` rules for the attributes an HTTP
//! request can carry; typed comparisons are numeric when both sides are
//! integers, textual otherwise. Inside radiusd the module uses the server's
//! own functions instead.

use regex::Regex;

use crate::attrs::{AttrRow, FallThrough, Op, RowValue};
use crate::authorize::{ListKind, PairEngine};

/// Check items the server handles itself and `paircompare()` skips.
const SERVER_ITEMS: &[&str] = &[
    "Crypt-Password",
    "Auth-Type",
    "Autz-Type",
    "Acct-Type",
    "Session-Type",
    "Strip-User-Name",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub name: String,
    pub op: Op,
    pub value: String,
}

/// The request, control and reply lists of one authorization.
#[derive(Debug, Default, Clone)]
pub struct StringEngine {
    pub request: Vec<(String, String)>,
    pub control: Vec<(String, String)>,
    pub reply: Vec<(String, String)>,
}

impl StringEngine {
    pub fn new(request: Vec<(String, String)>) -> Self {
        StringEngine {
            request,
            ..Default::default()
        }
    }

    /// The first `name` in the control list.
    pub fn control_value(&self, name: &str) -> Option<&str> {
        first(&self.control, name)
    }
}

fn first<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// <0, 0, >0 like radius_compare_vps.
fn compare_values(have: &str, want: &str) -> std::cmp::Ordering {
    match (have.trim().parse::<i64>(), want.trim().parse::<i64>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => have.cmp(want),
    }
}

fn matches(op: Op, have: &str, want: &str) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::RegEq | Op::RegNe => {
            let hit = Regex::new(want).map(|r| r.is_match(have)).unwrap_or(false);
            hit == (op == Op::RegEq)
        }
        Op::Ne => compare_values(have, want) != Equal,
        Op::Lt => compare_values(have, want) == Less,
        Op::Gt => compare_values(have, want) == Greater,
        Op::Le => compare_values(have, want) != Greater,
        Op::Ge => compare_values(have, want) != Less,
        Op::CmpTrue => true,
        // `=` and anything else in a check list is treated as `==`.
        _ => compare_values(have, want) == Equal,
    }
}

fn merge(to: &mut Vec<(String, String)>, from: Vec<Pair>) {
    let mut prepend = Vec::new();
    for p in from {
        let same = |(n, _): &(String, String)| n.eq_ignore_ascii_case(&p.name);
        match p.op {
            Op::Add => to.push((p.name, p.value)),
            Op::Prepend => prepend.push((p.name, p.value)),
            Op::Set => match to.iter().position(same) {
                Some(i) => to[i] = (p.name, p.value),
                None => to.push((p.name, p.value)),
            },
            Op::Eq if !to.iter().any(same) => to.push((p.name, p.value)),
            Op::Eq => {}
            Op::Sub => to.retain(|e| !(same(e) && compare_values(&e.1, &p.value).is_eq())),
            Op::CmpEq => to.retain(|e| !same(e) || compare_values(&e.1, &p.value).is_eq()),
            Op::Le | Op::Ge => {
                let le = p.op == Op::Le;
                match to.iter().position(same) {
                    Some(i) => {
                        let ord = compare_values(&to[i].1, &p.value);
                        if (le && ord.is_gt()) || (!le && ord.is_lt()) {
                            to[i] = (p.name, p.value);
                        }
                    }
                    None => to.push((p.name, p.value)),
                }
            }
            // Pure comparisons are not assignments: nothing to move.
            _ => {}
        }
    }
    prepend.append(to);
    *to = prepend;
}

impl PairEngine for StringEngine {
    type List = Vec<Pair>;

    fn build(&mut self, rows: &[AttrRow], _kind: ListKind) -> Result<Vec<Pair>, String> {
        rows.iter()
            .map(|r| {
                let op = r
                    .op()
                    .map_err(|e| format!("{e} for attribute {}", r.attribute))?;
                let value = match r.value() {
                    RowValue::Literal(v) => v.into_owned(),
                    // No xlat engine outside radiusd: the text is used as is.
                    RowValue::Xlat(x) => x,
                };
                Ok(Pair {
                    name: r.attribute.clone(),
                    op,
                    value,
                })
            })
            .collect()
    }

    fn compare(&mut self, check: &Vec<Pair>) -> bool {
        for item in check {
            if matches!(item.op, Op::Set | Op::Add) {
                continue;
            }
            if SERVER_ITEMS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&item.name))
            {
                continue;
            }
            let candidates: Vec<&str> = self
                .request
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&item.name))
                .map(|(_, v)| v.as_str())
                .collect();
            if item.name.eq_ignore_ascii_case("User-Password") && candidates.is_empty() {
                continue;
            }
            match item.op {
                Op::CmpFalse => {
                    if !candidates.is_empty() {
                        return false;
                    }
                }
                _ => {
                    // Any instance of the attribute may satisfy the item.
                    if !candidates
                        .iter()
                        .any(|have| matches(item.op, have, &item.value))
                    {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn merge_control(&mut self, check: Vec<Pair>) {
        merge(&mut self.control, check);
    }

    fn merge_reply(&mut self, reply: Vec<Pair>) {
        merge(&mut self.reply, reply);
    }

    fn fall_through(&self, reply: &Vec<Pair>) -> FallThrough {
        match reply
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case("Fall-Through"))
        {
            None => FallThrough::Default,
            Some(p) if p.value.eq_ignore_ascii_case("yes") || p.value.trim() == "1" => {
                FallThrough::Yes
            }
            Some(_) => FallThrough::No,
        }
    }

    fn user_profile(&self) -> Option<String> {
        self.control_value("User-Profile").map(str::to_string)
    }

    fn control(&self, name: &str) -> Option<String> {
        self.control_value(name).map(str::to_string)
    }

    fn reply(&self, name: &str) -> Option<String> {
        first(&self.reply, name).map(str::to_string)
    }

    fn set_reply(&mut self, name: &str, value: &str) -> Result<(), String> {
        merge(
            &mut self.reply,
            vec![Pair {
                name: name.to_string(),
                op: Op::Set,
                value: value.to_string(),
            }],
        );
        Ok(())
    }

    fn set_control(&mut self, name: &str, value: &str) -> Result<(), String> {
        merge(
            &mut self.control,
            vec![Pair {
                name: name.to_string(),
                op: Op::Set,
                value: value.to_string(),
            }],
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: &str, op: Op, v: &str) -> Pair {
        Pair {
            name: n.into(),
            op,
            value: v.into(),
        }
    }

    fn engine(req: &[(&str, &str)]) -> StringEngine {
        StringEngine::new(
            req.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn comparison_operators() {
        let mut e = engine(&[("NAS-Port", "10"), ("Called-Station-Id", "ap-1")]);
        let t = |e: &mut StringEngine, op, n: &str, v: &str| e.compare(&vec![pair(n, op, v)]);
        assert!(t(&mut e, Op::CmpEq, "NAS-Port", "10"));
        assert!(!t(&mut e, Op::CmpEq, "NAS-Port", "9"));
        assert!(t(&mut e, Op::Ne, "NAS-Port", "9"));
        assert!(t(&mut e, Op::Gt, "NAS-Port", "9"), "numeric, not textual");
        assert!(t(&mut e, Op::Ge, "NAS-Port", "10"));
        assert!(!t(&mut e, Op::Lt, "NAS-Port", "10"));
        assert!(t(&mut e, Op::Le, "NAS-Port", "10"));
        assert!(t(&mut e, Op::RegEq, "Called-Station-Id", "^ap-[0-9]$"));
        assert!(t(&mut e, Op::RegNe, "Called-Station-Id", "^core"));
        assert!(t(&mut e, Op::CmpTrue, "NAS-Port", ""));
        assert!(!t(&mut e, Op::CmpTrue, "NAS-Identifier", ""));
        assert!(t(&mut e, Op::CmpFalse, "NAS-Identifier", ""));
        assert!(!t(&mut e, Op::CmpFalse, "NAS-Port", ""));
        // Assignments and server items always match.
        assert!(t(&mut e, Op::Set, "Cleartext-Password", "x"));
        assert!(t(&mut e, Op::CmpEq, "Auth-Type", "Reject"));
        // A missing attribute fails a comparison.
        assert!(!t(&mut e, Op::CmpEq, "NAS-Identifier", "x"));
    }

    #[test]
    fn merge_follows_pairmove() {
        let mut to = vec![("A".to_string(), "1".to_string())];
        merge(
            &mut to,
            vec![
                pair("A", Op::Eq, "2"),
                pair("B", Op::Eq, "3"),
                pair("A", Op::Add, "4"),
                pair("C", Op::Set, "5"),
                pair("C", Op::Set, "6"),
                pair("P", Op::Prepend, "0"),
                pair("X", Op::Ne, "ignored"),
            ],
        );
        let got: Vec<String> = to.iter().map(|(a, b)| format!("{a}={b}")).collect();
        assert_eq!(got, ["P=0", "A=1", "B=3", "A=4", "C=6"]);
        merge(&mut to, vec![pair("A", Op::Sub, "1")]);
        assert_eq!(first(&to, "A"), Some("4"));
    }
}
