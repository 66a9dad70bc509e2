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

    /// Parses the `op` column. Surrounding blanks are ignored, as FreeRADIUS'
    /// tokenizer does.
    pub fn parse(s: &str) -> Option<Op> {
        Op::exact(s).or_else(|| Op::exact(s.trim()))
    }

    /// The operator spelled exactly `s`. Cached rows are parsed again on
    /// every request, so this is a `match`, not a search.
    fn exact(s: &str) -> Option<Op> {
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

    /// The operator as rlm_sql reads it: empty means `==`.
    pub fn op(&self) -> Result<Op, RowProblem> {
        if self.attribute.is_empty() {
            return Err(RowProblem::EmptyAttribute);
        }
        if let Some(op) = Op::parse(&self.op_text) {
            return Ok(op);
        }
        if self.op_text.trim().is_empty() {
            return Ok(Op::CmpEq);
        }
        Err(RowProblem::BadOp(self.op_text.clone()))
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
        assert_eq!(Op::parse("=>"), None);
    }

    #[test]
    fn empty_op_is_cmp_eq_and_bad_op_is_an_error() {
        assert_eq!(AttrRow::new("A", "", "v").op(), Ok(Op::CmpEq));
        assert_eq!(AttrRow::new("A", " \t", "v").op(), Ok(Op::CmpEq));
        assert_eq!(AttrRow::new("A", " += ", "v").op(), Ok(Op::Add));
        assert_eq!(
            AttrRow::new("A", "=>", "v").op(),
            Err(RowProblem::BadOp("=>".into()))
        );
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
