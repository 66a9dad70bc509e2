//! Request input: JSON objects, urlencoded forms (what rlm_rest and the
//! django-freeradius clients send) and query strings all become one map of
//! named values, read through helpers that name the field when a value is
//! missing or of the wrong type. Doing this by hand rather than through
//! serde derives is what lets every 400 say which field was wrong.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Default, Clone)]
pub struct Input {
    map: BTreeMap<String, Value>,
}

impl Input {
    pub fn from_json(body: &[u8]) -> ApiResult<Input> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Input {
                map: m.into_iter().collect(),
            }),
            Ok(_) => Err(ApiError::invalid("body", "expected a JSON object")),
            Err(e) => Err(ApiError::invalid("body", format!("invalid JSON: {e}"))),
        }
    }

    pub fn from_form(body: &[u8]) -> ApiResult<Input> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::invalid("body", format!("invalid form data: {e}")))?;
        Input::from_pairs(pairs, "body")
    }

    /// Form fields and query parameters: a repeated name is refused rather
    /// than silently taking one of the values.
    pub fn from_pairs(pairs: Vec<(String, String)>, _what: &str) -> ApiResult<Input> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if map.insert(k.clone(), Value::String(v)).is_some() {
                return Err(ApiError::invalid(k, "given more than once"));
            }
        }
        Ok(Input { map })
    }

    pub fn from_query(raw: Option<&str>) -> ApiResult<Input> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::invalid("query", format!("invalid query string: {e}")))?;
        Input::from_pairs(pairs, "query")
    }

    pub fn insert(&mut self, name: &str, v: Value) {
        self.map.insert(name.to_string(), v);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    pub fn keys(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// Fails on the first field nobody read: a misspelt field or filter
    /// must not be silently ignored.
    pub fn deny_unknown(&self, kind: &str) -> ApiResult<()> {
        match self.map.keys().next() {
            Some(k) => Err(ApiError::invalid(k.clone(), format!("unknown {kind}"))),
            None => Ok(()),
        }
    }

    /// A string field; absent and JSON null give `None`. Numbers are taken
    /// as their decimal text (rlm_rest sends integers unquoted in JSON).
    pub fn str_opt(&mut self, name: &str) -> ApiResult<Option<String>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if s.contains('\0') {
                    return Err(ApiError::invalid(name, "must not contain NUL"));
                }
                Ok(Some(s))
            }
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::invalid(name, "must be a string")),
        }
    }

    pub fn str_req(&mut self, name: &str) -> ApiResult<String> {
        match self.str_opt(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::invalid(name, "this field is required")),
        }
    }

    /// For PATCH: `None` absent, `Some(None)` explicitly null or empty.
    pub fn str_patch(&mut self, name: &str) -> ApiResult<Option<Option<String>>> {
        if !self.map.contains_key(name) {
            return Ok(None);
        }
        Ok(Some(self.str_opt(name)?.filter(|s| !s.is_empty())))
    }

    pub fn bool_opt(&mut self, name: &str) -> ApiResult<Option<bool>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) => parse_bool(&s)
                .map(Some)
                .ok_or_else(|| ApiError::invalid(name, "must be a boolean (true or false)")),
            Some(_) => Err(ApiError::invalid(name, "must be a boolean (true or false)")),
        }
    }

    pub fn int_opt(&mut self, name: &str) -> ApiResult<Option<i64>> {
        let bad = || ApiError::invalid(name, "must be an integer");
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A non-negative counter (octets, seconds).
    pub fn u64_opt(&mut self, name: &str) -> ApiResult<Option<u64>> {
        let bad = || ApiError::invalid(name, "must be a non-negative integer");
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A string field of at most `max` bytes (absent, null and empty give
    /// `None`): every text the API writes is bounded before it reaches
    /// PostgreSQL, whose B-tree indexes refuse entries over ~2.7 KB.
    pub fn text_opt(&mut self, name: &str, max: usize) -> ApiResult<Option<String>> {
        match self.str_opt(name)? {
            Some(s) if s.len() > max => {
                Err(ApiError::invalid(name, format!("at most {max} bytes")))
            }
            Some(s) if s.is_empty() => Ok(None),
            other => Ok(other),
        }
    }

    /// A required string field of 1..=`max` bytes.
    pub fn text_req(&mut self, name: &str, max: usize) -> ApiResult<String> {
        self.text_opt(name, max)?
            .ok_or_else(|| ApiError::invalid(name, "this field is required"))
    }

    /// An integer field within `min..=max`.
    pub fn int_range(&mut self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        match self.int_opt(name)? {
            Some(n) if n < min || n > max => Err(ApiError::invalid(
                name,
                format!("must be between {min} and {max}"),
            )),
            other => Ok(other),
        }
    }

    /// A raw JSON value (arrays of attributes).
    pub fn value(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// JSON or urlencoded form, chosen by Content-Type (none means form, as
/// curl -d sends). Body-size and read errors become JSON errors too.
impl<S: Send + Sync> FromRequest<S> for Input {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ctype = content_type(req.headers());
        let body = read_body(req, state).await?;
        if ctype.starts_with("application/json") || ctype.ends_with("+json") {
            Input::from_json(&body)
        } else if ctype.is_empty() || ctype.starts_with("application/x-www-form-urlencoded") {
            Input::from_form(&body)
        } else {
            Err(ApiError::UnsupportedMedia(format!(
                "{ctype} (send application/json or application/x-www-form-urlencoded)"
            )))
        }
    }
}

pub fn content_type(h: &axum::http::HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::invalid("body", e.body_text())
        }
    })
}

/// Seconds since the epoch from RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` or
/// `YYYY-MM-DDTHH:MM:SS[.f]` (UTC when no offset), a date (midnight UTC) or
/// an integer epoch (what FreeRADIUS' `%l` prints).
pub fn parse_timestamp(field: &str, s: &str) -> ApiResult<f64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, OffsetDateTime, PrimitiveDateTime};
    let s = s.trim();
    let bad = || {
        ApiError::invalid(
            field,
            format!("'{s}' is not a timestamp (RFC 3339, 'YYYY-MM-DD HH:MM:SS', a date or epoch seconds)"),
        )
    };
    let in_range = |t: f64| -> ApiResult<f64> {
        if (MIN_EPOCH as f64..=MAX_EPOCH as f64).contains(&t) {
            Ok(t)
        } else {
            Err(ApiError::invalid(
                field,
                format!("'{s}' is out of range (years 0001 to 9999)"),
            ))
        }
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<i64>() {
            Ok(n) if n <= MAX_EPOCH => Ok(n as f64),
            _ => in_range(f64::INFINITY),
        };
    }
    // PostgreSQL prints a space where RFC 3339 wants a 'T'.
    for candidate in [s.to_string(), s.replacen(' ', "T", 1)] {
        if let Ok(t) = OffsetDateTime::parse(&candidate, &Rfc3339) {
            return in_range(epoch(t));
        }
    }
    let normalized = s.replacen('T', " ", 1);
    let with_frac =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]");
    let plain = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    for fmt in [with_frac, plain] {
        if let Ok(t) = PrimitiveDateTime::parse(&normalized, fmt) {
            return in_range(epoch(t.assume_utc()));
        }
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return in_range(epoch(d.midnight().assume_utc()));
    }
    Err(bad())
}

fn epoch(t: time::OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// Timestamps the API accepts: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z
/// (PostgreSQL stores more, but RFC 3339 writes four-digit years only).
pub const MIN_EPOCH: i64 = -62_135_596_800;
pub const MAX_EPOCH: i64 = 253_402_300_799;

/// A date `YYYY-MM-DD`, year 0001 to 9999.
pub fn parse_date(field: &str, s: &str) -> ApiResult<time::Date> {
    let d = time::Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| ApiError::invalid(field, format!("'{s}' is not a date (YYYY-MM-DD)")))?;
    if d.year() < 1 {
        return Err(ApiError::invalid(
            field,
            format!("'{s}' is out of range (years 0001 to 9999)"),
        ));
    }
    Ok(d)
}

/// Seconds since the epoch at which an account valid through `d` (UTC)
/// expires: the midnight after it.
pub fn end_of_day(d: time::Date) -> f64 {
    let next = d.next_day().unwrap_or(d);
    epoch(next.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("t", "1700000000").unwrap(), 1_700_000_000.0);
        assert_eq!(
            parse_timestamp("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000.0
        );
        assert_eq!(
            parse_timestamp("t", "2023-11-14 23:13:20+01:00").unwrap(),
            1_700_000_000.0
        );
        assert_eq!(
            parse_timestamp("t", "2023-11-14 22:13:20").unwrap(),
            1_700_000_000.0
        );
        assert_eq!(parse_timestamp("t", "1970-01-02").unwrap(), 86400.0);
        let e = parse_timestamp("start_time", "yesterday").unwrap_err();
        assert!(e.to_string().starts_with("start_time:"), "{e}");
        for far in ["99999999999999", "253402300800", "99999999999999999999999"] {
            let e = parse_timestamp("expiration", far).unwrap_err();
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        assert!(parse_timestamp("t", "253402300799").is_ok());
        assert!(parse_timestamp("t", "0001-01-01").is_ok());
        assert!(parse_date("d", "0000-01-01").is_err());
    }

    #[test]
    fn dates_end_at_midnight() {
        let d = parse_date("d", "1970-01-01").unwrap();
        assert_eq!(end_of_day(d), 86400.0);
        assert!(parse_date("expiration_date", "2024-02-30").is_err());
    }

    #[test]
    fn fields_are_named() {
        let mut i = Input::from_json(br#"{"a": 1, "b": "x", "c": [1]}"#).unwrap();
        assert_eq!(i.str_opt("a").unwrap().as_deref(), Some("1"));
        assert_eq!(
            i.bool_opt("b").unwrap_err().to_string().split(':').next(),
            Some("b")
        );
        assert!(i.str_opt("c").is_err());
        assert!(i.str_req("zz").is_err());
        let i = Input::from_form(b"x=1&y=2").unwrap();
        assert_eq!(
            i.deny_unknown("field").unwrap_err().to_string(),
            "x: unknown field"
        );
        assert!(Input::from_form(b"x=1&x=2").is_err());
    }
}
