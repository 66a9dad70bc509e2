//! Attribute rows as the stock tables hold them (`attribute`, `op`, `value`)
//! and the FreeRADIUS operators they use.

use std::fmt;

/// FreeRADIUS operators accepted in check and reply rows: rlm_sql takes the
/// assignment operators and the comparison operators, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`  add if not already present
    Eq,
    /// `:=` set, replacing any existing value
    Set,
    /// `+=` append
    Add,
    /// `-=` remove matching values
    Sub,
    /// `^=` prepend
    Prepend,
    /// `==`
    CmpEq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=~`
    RegEq,
    /// `!~`
    RegNe,
    /// `=*` attribute present
    CmpTrue,
    /// `!*` attribute absent
    CmpFalse,
}

impl Op {
    pub const ALL: [Op; 15] = [
        Op::Eq,
        Op::Set,
        Op::Add,
        Op::Sub,
        Op::Prepend,
        Op::CmpEq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::RegEq,
        Op::RegNe,
        Op::CmpTrue,
        Op::CmpFalse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Set => ":=",
            Op::Add => "+=",
            Op::Sub => "-=",
            Op::Prepend => "^=",
            Op::CmpEq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::RegEq => "=~",
            Op::RegNe => "!~",
            Op::CmpTrue => "=*",
            Op::CmpFalse => "!*",
        }
    }

    /// Parses the `op` column as rlm_sql 3.2 does (`sql.c` hands it to
    /// FreeRADIUS' `gettoken()`): leading blanks are skipped, the first
    /// token of `fr_tokens` the text starts with is taken, in that table's
    /// order, and whatever follows it is ignored (`=>` is `=`). Only
    /// assignment and comparison operators are accepted.
    pub fn parse(s: &str) -> Option<Op> {
        if let Some(op) = Op::exact(s) {
            return Some(op);
        }
        // C's isspace(), which gettoken() skips.
        let rest = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
        TOKENS
            .iter()
            .find(|(token, _)| rest.starts_with(token))
            .and_then(|(_, op)| *op)
    }

    /// The operator spelled exactly `s`: what an API should accept when it
    /// writes a row (`<>` must not become `<`, as [`Op::parse`] would read
    /// it). Cached rows are parsed again on every request, so this is a
    /// `match`, not a search.
    pub fn exact(s: &str) -> Option<Op> {
        Some(match s {
            "=" => Op::Eq,
            ":=" => Op::Set,
            "+=" => Op::Add,
            "-=" => Op::Sub,
            "^=" => Op::Prepend,
            "==" => Op::CmpEq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "=~" => Op::RegEq,
            "!~" => Op::RegNe,
            "=*" => Op::CmpTrue,
            "!*" => Op::CmpFalse,
            _ => return None,
        })
    }
}

/// FreeRADIUS 3.2's `fr_tokens` (src/lib/token.c), in its order, which
/// decides which token a text starting with several of them is: the
/// operators rlm_sql accepts, and the other tokens it refuses.
const TOKENS: [(&str, Option<Op>); 23] = [
    ("=~", Some(Op::RegEq)),
    ("!~", Some(Op::RegNe)),
    ("{", None),
    ("}", None),
    ("(", None),
    (")", None),
    (",", None),
    ("++", None),
    ("+=", Some(Op::Add)),
    ("-=", Some(Op::Sub)),
    (":=", Some(Op::Set)),
    ("=*", Some(Op::CmpTrue)),
    ("!*", Some(Op::CmpFalse)),
    ("==", Some(Op::CmpEq)),
    ("^=", Some(Op::Prepend)),
    ("=", Some(Op::Eq)),
    ("!=", Some(Op::Ne)),
    (">=", Some(Op::Ge)),
    (">", Some(Op::Gt)),
    ("<=", Some(Op::Le)),
    ("<", Some(Op::Lt)),
    ("#", None),
    (";", None),
];

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of radcheck, radreply, radgroupcheck or radgroupreply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrRow {
    pub attribute: String,
    /// The raw `op` column. rlm_sql treats an empty one as `==` (with a loud
    /// warning) and an unknown one as an error that fails the request, so
    /// the decision is left to [`AttrRow::op`].
    pub op_text: String,
    pub value: String,
}

/// Why a row cannot be turned into an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    EmptyAttribute,
    BadOp(String),
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::EmptyAttribute => f.write_str("attribute field is empty"),
            RowProblem::BadOp(op) => write!(f, "invalid op \"{op}\""),
        }
    }
}

impl AttrRow {
    pub fn new(attribute: &str, op: &str, value: &str) -> Self {
        AttrRow {
            attribute: attribute.to_string(),
            op_text: op.to_string(),
            value: value.to_string(),
        }
    }

    /// The operator as rlm_sql reads it: an empty (or NULL) column means
    /// `==`; a blank one is no operator at all, an error.
    pub fn op(&self) -> Result<Op, RowProblem> {
        if self.attribute.is_empty() {
            return Err(RowProblem::EmptyAttribute);
        }
        if self.op_text.is_empty() {
            return Ok(Op::CmpEq);
        }
        Op::parse(&self.op_text).ok_or_else(|| RowProblem::BadOp(self.op_text.clone()))
    }

    /// The value as rlm_sql hands it to FreeRADIUS: a value entirely
    /// enclosed in matching quotes is unquoted (with backslash escapes
    /// undone), and a back-quoted one is an xlat expansion.
    pub fn value(&self) -> RowValue<'_> {
        let v = self.value.as_str();
        let b = v.as_bytes();
        if b.len() >= 2 && matches!(b[0], b'\'' | b'"' | b'`') && b[0] == b[b.len() - 1] {
            let inner = unescape(&v[1..v.len() - 1], b[0] as char);
            return if b[0] == b'`' {
                RowValue::Xlat(inner)
            } else {
                RowValue::Literal(std::borrow::Cow::Owned(inner))
            };
        }
        RowValue::Literal(std::borrow::Cow::Borrowed(v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowValue<'a> {
    Literal(std::borrow::Cow<'a, str>),
    Xlat(String),
}

/// Undoes the escapes FreeRADIUS' tokenizer understands inside a quoted
/// string. Single-quoted strings only unescape the quote and backslash.
fn unescape(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push('\\'),
            Some(n) if quote == '\'' => {
                if n != '\'' && n != '\\' {
                    out.push('\\');
                }
                out.push(n);
            }
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(n) => out.push(n),
        }
    }
    out
}

/// rlm_sql's three-valued Fall-Through: absent means "default".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallThrough {
    No,
    Yes,
    Default,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.as_str()), Some(op));
        }
        assert_eq!(Op::parse(" := "), Some(Op::Set));
        assert_eq!(
            Op::parse("=>"),
            Some(Op::Eq),
            "gettoken() reads its first token"
        );
        assert_eq!(Op::parse("=<"), Some(Op::Eq));
        assert_eq!(Op::parse("?="), None);
    }

    #[test]
    fn empty_op_is_cmp_eq_and_bad_op_is_an_error() {
        // As rlm_sql 3.2.1's sql.c and gettoken(): empty is `==`, blank is
        // no token (an error), the first token the text starts with wins
        // and the rest is ignored.
        assert_eq!(AttrRow::new("A", "", "v").op(), Ok(Op::CmpEq));
        assert_eq!(
            AttrRow::new("A", " \t", "v").op(),
            Err(RowProblem::BadOp(" \t".into()))
        );
        assert_eq!(AttrRow::new("A", " += ", "v").op(), Ok(Op::Add));
        assert_eq!(AttrRow::new("A", "=>", "v").op(), Ok(Op::Eq));
        assert_eq!(AttrRow::new("A", "==x", "v").op(), Ok(Op::CmpEq));
        assert_eq!(AttrRow::new("A", "=~=", "v").op(), Ok(Op::RegEq));
        assert_eq!(AttrRow::new("A", "\x0b!*", "v").op(), Ok(Op::CmpFalse));
        for bad in ["++", "{", "#", ";", "x=", "?", "~="] {
            assert_eq!(
                AttrRow::new("A", bad, "v").op(),
                Err(RowProblem::BadOp(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            AttrRow::new("", ":=", "v").op(),
            Err(RowProblem::EmptyAttribute)
        );
    }

    #[test]
    fn quoted_values() {
        assert_eq!(
            AttrRow::new("A", "=", "plain").value(),
            RowValue::Literal("plain".into())
        );
        assert_eq!(
            AttrRow::new("A", "=", "\"a \\\"b\\\"\"").value(),
            RowValue::Literal("a \"b\"".into())
        );
        assert_eq!(
            AttrRow::new("A", "=", "'it\\'s'").value(),
            RowValue::Literal("it's".into())
        );
        assert_eq!(
            AttrRow::new("A", "=", "`%{User-Name}`").value(),
            RowValue::Xlat("%{User-Name}".into())
        );
        // Only a value wholly enclosed in matching quotes is unquoted.
        assert_eq!(
            AttrRow::new("A", "=", "\"half").value(),
            RowValue::Literal("\"half".into())
        );
    }
}
