//! `radclient -x` as the tests' main client, with its output parsed.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::Radiusd;

/// What radclient received: the packet type (None: no reply) and the reply
/// attributes in order, values as radclient prints them (strings unquoted).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: Option<String>,
    /// Everything but Message-Authenticator.
    pub attrs: Vec<(String, String)>,
    /// The reply's Message-Authenticator. It signs the packet rather than
    /// carrying a reply item, and whether the server adds one depends on its
    /// version (3.2.5+ signs every reply: the BlastRADIUS fix), so it is kept
    /// apart from `attrs` and the exact comparisons of reply items; tests
    /// assert it against [`crate::Env::signs_replies`].
    pub message_authenticator: Option<String>,
    /// radclient's whole output, for assertion messages.
    pub raw: String,
}

impl Reply {
    pub fn is_accept(&self) -> bool {
        self.code.as_deref() == Some("Access-Accept")
    }

    pub fn is_reject(&self) -> bool {
        self.code.as_deref() == Some("Access-Reject")
    }

    /// The first value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of attribute `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The attributes as sorted `Name = value` strings, for exact comparisons.
    pub fn sorted(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .attrs
            .iter()
            .map(|(n, v)| format!("{n} = {v}"))
            .collect();
        v.sort();
        v
    }

    pub(crate) fn parse(out: &str) -> Reply {
        let mut code = None;
        let mut attrs = Vec::new();
        let mut message_authenticator = None;
        let mut in_reply = false;
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("Received ") {
                code = rest.split_whitespace().next().map(str::to_string);
                attrs.clear();
                message_authenticator = None;
                in_reply = true;
                continue;
            }
            if line.starts_with("Sent ") || line.starts_with('(') {
                in_reply = false;
                continue;
            }
            if in_reply && line.starts_with('\t') {
                if let Some((name, value)) = line.trim().split_once(" = ") {
                    if name == "Message-Authenticator" {
                        message_authenticator = Some(value.to_string());
                    } else {
                        attrs.push((name.to_string(), unquote(value)));
                    }
                }
            }
        }
        Reply {
            code,
            attrs,
            message_authenticator,
            raw: out.to_string(),
        }
    }
}

/// `"a \"b\""` -> `a "b"`; other values unchanged.
fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let inner = &v[1..v.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        v.to_string()
    }
}

impl Radiusd {
    /// Sends one request with `radclient -x` (one try, `timeout_s` seconds).
    /// `kind` is auth, acct or status; `attrs` radclient's input syntax,
    /// e.g. `User-Name = "bob", NAS-Port = 3`.
    pub fn radclient(&self, kind: &str, attrs: &str, timeout_s: u32) -> Reply {
        let port = if kind == "acct" {
            self.acct_port
        } else {
            self.auth_port
        };
        let mut child = Command::new("radclient")
            .args(["-x", "-r", "1", "-t", &timeout_s.to_string()])
            .arg(format!("127.0.0.1:{port}"))
            .arg(kind)
            .arg(&self.secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning radclient");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{attrs}\n").as_bytes())
            .expect("writing to radclient");
        let out = child.wait_with_output().expect("radclient");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Reply::parse(&text)
    }

    /// An Access-Request with Message-Authenticator (clients.conf requires it).
    pub fn auth(&self, attrs: &str) -> Reply {
        self.radclient("auth", &format!("{attrs}, Message-Authenticator = 0x00"), 5)
    }

    /// An Accounting-Request.
    pub fn acct(&self, attrs: &str) -> Reply {
        self.radclient("acct", attrs, 5)
    }

    /// User-Name / User-Password (PAP) Access-Request.
    pub fn pap(&self, user: &str, password: &str) -> Reply {
        self.auth(&format!(
            "User-Name = {}, User-Password = {}",
            crate::q(user),
            crate::q(password)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_radclient_output() {
        let out = "Sent Access-Request Id 222 from 0.0.0.0:60963 to 127.0.0.1:31812 length 62\n\
                   \tUser-Name = \"demo\"\n\
                   \tCleartext-Password = \"demo-password\"\n\
                   Received Access-Accept Id 222 from 127.0.0.1:31812 to 127.0.0.1:60963 length 38\n\
                   \tReply-Message = \"Hello \\\"demo\\\"\"\n\
                   \tSession-Timeout = 3600\n";
        let r = Reply::parse(out);
        assert!(r.is_accept());
        assert_eq!(r.get("Reply-Message"), Some("Hello \"demo\""));
        assert_eq!(r.get("Session-Timeout"), Some("3600"));
        assert_eq!(r.attrs.len(), 2);
        assert_eq!(r.message_authenticator, None);
    }

    #[test]
    fn keeps_message_authenticator_apart() {
        let out = "Received Access-Accept Id 7 from 127.0.0.1:31812 to 127.0.0.1:60963 length 56\n\
                   \tMessage-Authenticator = 0xe2e0043de92b1efd48051d04e0b43d06\n\
                   \tSession-Timeout = 3600\n";
        let r = Reply::parse(out);
        assert_eq!(r.sorted(), vec!["Session-Timeout = 3600"]);
        assert_eq!(
            r.message_authenticator.as_deref(),
            Some("0xe2e0043de92b1efd48051d04e0b43d06")
        );
    }

    #[test]
    fn parses_no_reply() {
        let out = "Sent Access-Request Id 1 from 0.0.0.0:1 to 127.0.0.1:2 length 44\n\
                   \tUser-Name = \"demo\"\n\
                   (0) No reply from server for ID 231 socket 3\n";
        let r = Reply::parse(out);
        assert_eq!(r.code, None);
        assert!(r.attrs.is_empty());
    }
}
