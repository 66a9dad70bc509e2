//! One `radpostauth` row per Access-Accept and Access-Reject.

use std::borrow::Cow;

/// Longest text value, in bytes, the module and radius-admin write to any
/// column of radpostauth or radacct. The stock 3.2 schema's columns are
/// `text` (no length limit), but several are indexed (radpostauth's and
/// radacct's `username`, radacct's `acctuniqueid`), and a B-tree refuses an
/// entry over 2704 bytes: a long value would fail its write. Nothing one
/// RADIUS attribute carries reaches this bound (253 octets: at most 759
/// bytes once invalid UTF-8 became U+FFFD, 1012 with every octet a NUL
/// escaped as `\000`), so only an `sql_user_name` expansion or
/// radius-admin input is ever cut.
pub const MAX_TEXT_BYTES: usize = 1024;

/// `s` as PostgreSQL can store it in a text column, borrowed when it
/// already can (almost always).
///
/// * NUL (U+0000), the one character `text` refuses in a UTF-8 (or
///   SQL_ASCII) database, becomes the four characters `\000`: the form
///   FreeRADIUS itself prints a NUL in (its log, and `%{User-Name}`, which
///   is what `sql_user_name` gives radacct's `username`), so the same
///   identity reads the same in radpostauth, radacct and radius.log. It
///   stays apart from the invalid UTF-8 the module has already turned
///   into U+FFFD, and ASCII is storable in every server encoding.
///   Backslashes are not escaped, so `DOMAIN\user` is stored as it is; a
///   literal `\000` and a NUL therefore look the same.
/// * A value longer than [`MAX_TEXT_BYTES`] is cut to fit, on a character
///   boundary and never inside an escape.
///
/// In a database whose encoding is neither UTF8 nor SQL_ASCII, characters
/// it has no equivalent for are still refused; the writers then fail only
/// the record that holds one.
pub fn storable_text(s: &str) -> Cow<'_, str> {
    if is_storable(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(MAX_TEXT_BYTES) + 1);
    let mut buf = [0u8; 4];
    for c in s.chars() {
        let piece: &str = match c {
            '\0' => "\\000",
            c => c.encode_utf8(&mut buf),
        };
        if out.len() + piece.len() > MAX_TEXT_BYTES {
            break;
        }
        out.push_str(piece);
    }
    Cow::Owned(out)
}

/// [`storable_text`] into `field`, allocating only when it changes it.
pub(crate) fn make_storable(field: &mut String) {
    if let Cow::Owned(s) = storable_text(field) {
        *field = s;
    }
}

/// Whether [`storable_text`] leaves `s` as it is.
pub(crate) fn is_storable(s: &str) -> bool {
    s.len() <= MAX_TEXT_BYTES && !s.as_bytes().contains(&0)
}

/// The post-auth event as the module or the admin API saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PostAuthRecord {
    pub username: String,
    /// The offered password: only ever set for a rejected request when
    /// `store_rejected_password` is on; clear-text passwords of accepted
    /// users are never stored (rlm_sql stores both).
    pub pass: Option<String>,
    /// `Access-Accept` or `Access-Reject`, as rlm_sql writes it.
    pub reply: String,
    pub called_station_id: Option<String>,
    pub calling_station_id: Option<String>,
    /// When the request arrived, seconds since the epoch with microseconds.
    pub authdate: f64,
}

/// The text fields of `$rec`, a `&PostAuthRecord` or a
/// `&mut PostAuthRecord` (None for an absent optional one). Destructured
/// without `..`: a text field added to the record cannot be left out.
macro_rules! text_fields {
    ($rec:expr) => {{
        let PostAuthRecord {
            username,
            pass,
            reply,
            called_station_id,
            calling_station_id,
            authdate: _,
        } = $rec;
        [
            Some(username),
            Option::from(pass),
            Some(reply),
            Option::from(called_station_id),
            Option::from(calling_station_id),
        ]
    }};
}

impl PostAuthRecord {
    /// This record with every text field made storable by
    /// [`storable_text`]; borrowed when nothing needed it. The writers
    /// apply it to every record, so no caller can forget it.
    pub fn storable(&self) -> Cow<'_, PostAuthRecord> {
        let texts = text_fields!(self);
        if texts.into_iter().flatten().all(|s| is_storable(s)) {
            return Cow::Borrowed(self);
        }
        Cow::Owned(self.clone().into_storable())
    }

    /// [`PostAuthRecord::storable`] for a record the caller owns.
    pub fn into_storable(mut self) -> PostAuthRecord {
        let texts = text_fields!(&mut self);
        for s in texts.into_iter().flatten() {
            make_storable(s);
        }
        self
    }
}

/// Many rows in one statement: the group commit's unit.
pub(crate) const INSERT_MANY: &str = "INSERT INTO radpostauth \
    (username, pass, reply, calledstationid, callingstationid, authdate) \
    SELECT u, p, r, c1, c2, to_timestamp(t) \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[]) \
    AS x(u, p, r, c1, c2, t)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storable_text_escapes_nul_and_keeps_everything_else() {
        assert!(matches!(storable_text("demo"), Cow::Borrowed("demo")));
        assert!(matches!(
            storable_text("DOMAIN\\user \u{fffd}é"),
            Cow::Borrowed(_)
        ));
        assert_eq!(storable_text("x\0y"), "x\\000y");
        assert_eq!(storable_text("\0\0"), "\\000\\000");
        assert_eq!(storable_text(""), "");
        // Applying it twice changes nothing more.
        let once = storable_text("a\0b\0").into_owned();
        assert!(matches!(storable_text(&once), Cow::Borrowed(_)));
    }

    #[test]
    fn storable_text_cuts_long_values_on_a_character_boundary() {
        // What one RADIUS attribute can carry is never cut.
        let nuls = "\0".repeat(253);
        assert_eq!(storable_text(&nuls), "\\000".repeat(253));
        let invalid = "\u{fffd}".repeat(253);
        assert!(matches!(storable_text(&invalid), Cow::Borrowed(_)));

        let exact = "a".repeat(MAX_TEXT_BYTES);
        assert!(matches!(storable_text(&exact), Cow::Borrowed(_)));
        let long = "a".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(storable_text(&long), exact);
        // 3-byte characters: 341 fit in 1024 bytes, the 342nd would not.
        let wide = "€".repeat(400);
        assert_eq!(storable_text(&wide), "€".repeat(MAX_TEXT_BYTES / 3));
        // An escape is kept whole or left out, never split.
        let odd = format!("{}\0", "a".repeat(MAX_TEXT_BYTES - 1));
        assert_eq!(storable_text(&odd), "a".repeat(MAX_TEXT_BYTES - 1));
    }

    #[test]
    fn records_are_made_storable_field_by_field() {
        let clean = PostAuthRecord {
            username: "demo".into(),
            pass: None,
            reply: "Access-Accept".into(),
            called_station_id: Some("ap".into()),
            calling_station_id: None,
            authdate: 1.5,
        };
        assert!(matches!(clean.storable(), Cow::Borrowed(_)));
        let hostile = PostAuthRecord {
            username: "x\0y".into(),
            pass: Some("p\0w".into()),
            calling_station_id: Some("\0".into()),
            ..clean.clone()
        };
        let r = hostile.storable().into_owned();
        assert_eq!(r.username, "x\\000y");
        assert_eq!(r.pass.as_deref(), Some("p\\000w"));
        assert_eq!(r.calling_station_id.as_deref(), Some("\\000"));
        assert_eq!(r.called_station_id.as_deref(), Some("ap"));
        assert_eq!((r.reply.as_str(), r.authdate), ("Access-Accept", 1.5));
    }
}
