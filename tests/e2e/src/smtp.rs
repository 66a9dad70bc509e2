//! A tiny SMTP sink on loopback (RFC 5321's plain dialogue, no TLS, no
//! auth): what radius-admin's real SMTP sender (lettre) delivers to, so a
//! test can read the code a user was e-mailed. Stops with the test
//! process; each connection is served on its own thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message as received: the envelope recipients and the DATA text.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

/// A listening sink and what it received so far.
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let m = m.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &m);
                });
            }
        });
        SmtpSink { port, mails }
    }

    /// `smtp://127.0.0.1:<port>` (plain SMTP, as lettre's URL parser takes it).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// Waits up to `limit` for the `n`-th message (1-based) to `to`.
    pub fn wait_for(&self, to: &str, n: usize, limit: Duration) -> Option<Mail> {
        let deadline = Instant::now() + limit;
        loop {
            let got: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t.contains(to)))
                .collect();
            if got.len() >= n {
                return Some(got[n - 1].clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Mail {
    /// The first run of six digits after "code is " in the text.
    pub fn code(&self) -> Option<String> {
        let at = self.data.find("code is ")? + "code is ".len();
        let digits: String = self.data[at..].chars().take(6).collect();
        (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
    }
}

fn serve(conn: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn);
    out.write_all(b"220 sink ESMTP\r\n")?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            out.write_all(b"250 sink\r\n")?;
        } else if cmd.starts_with("MAIL FROM") {
            to.clear();
            out.write_all(b"250 OK\r\n")?;
        } else if cmd.starts_with("RCPT TO") {
            to.push(line.trim_end()[8..].trim().to_string());
            out.write_all(b"250 OK\r\n")?;
        } else if cmd == "DATA" {
            out.write_all(b"354 go ahead\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(&line);
            }
            mails.lock().unwrap().push(Mail {
                to: std::mem::take(&mut to),
                data,
            });
            out.write_all(b"250 OK queued\r\n")?;
        } else if cmd == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"250 OK\r\n")?;
        }
    }
}
