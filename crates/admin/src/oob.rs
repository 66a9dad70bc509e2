//! Out-of-band codes (`sendoobtoken`, checked by `verifyoobtoken`): a
//! short-lived 6-digit code, stored as an HMAC-SHA256 under a server secret
//! (`--secret-file`), so the table alone does not give the codes away (an
//! unkeyed hash of 6 digits is reversed by trying all of them). A code
//! takes at most [`MAX_ATTEMPTS`] wrong guesses; only the user's newest
//! live code counts. Delivery by a pluggable sender: e-mail over SMTP
//! (lettre) when an SMTP URL is configured, SMS through an HTTP gateway
//! when its URL is configured, otherwise the console sender, which logs
//! where it would have sent a code but never the code (unless
//! `--console-show-code`, and then at debug level only). The code is
//! committed before delivery (no transaction is held open across a slow
//! sender) and voided if delivery fails, which is answered 502.

use std::time::Duration;

use crate::error::{ApiError, ApiResult};
use crate::radius::ts;
use crate::SharedState;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Wrong guesses a code takes; the next one finds no code.
pub use radius_core::login::second_factor::MAX_ATTEMPTS;
/// The window of the per-user limit on `sendoobtoken`.
pub const SEND_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Shortest accepted server secret, in bytes.
pub use radius_core::secret::MIN_SECRET_BYTES;

/// The key of the codes' HMAC, shared with the module (its `secret_file`),
/// which also seals TOTP seeds and queued codes with it.
pub use radius_core::secret::Secret;

#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    /// `url`: `smtp://host:port` (plain; add `?tls=required` for STARTTLS)
    /// or `smtps://user:pass@host` (implicit TLS), as lettre parses it.
    pub fn new(url: &str, from: &str) -> Result<SmtpSender, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("smtp url: {e}"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("smtp from address '{from}': {e}"))?;
        Ok(SmtpSender { transport, from })
    }

    async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient '{to}': {e}"))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| format!("smtp: {e}"))
    }
}

/// POSTs `{"to": "+33-612345678", "message": "..."}` to the gateway, with
/// `Authorization: Bearer <token>` when configured; any non-2xx answer is a
/// failed delivery.
#[derive(Clone)]
pub struct SmsGateway {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl SmsGateway {
    pub fn new(url: &str, token: Option<String>) -> Result<SmsGateway, String> {
        reqwest::Url::parse(url).map_err(|e| format!("sms gateway url: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(SmsGateway {
            client,
            url: url.to_string(),
            token,
        })
    }

    async fn send(&self, to: &str, text: String) -> Result<(), String> {
        let mut req = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "to": to, "message": text }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| format!("sms gateway: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("sms gateway answered {}", resp.status()));
        }
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct Senders {
    pub smtp: Option<SmtpSender>,
    pub sms: Option<SmsGateway>,
}

impl Senders {
    /// Delivers `code`; returns the sender's name.
    pub async fn deliver(
        &self,
        channel: &str,
        username: &str,
        to: &str,
        code: &str,
        minutes: u64,
        show_code: bool,
    ) -> Result<&'static str, String> {
        let text = format!("Your verification code is {code}. It expires in {minutes} minutes.");
        match (channel, &self.smtp, &self.sms) {
            ("email", Some(s), _) => s
                .send(to, "Your verification code", text)
                .await
                .map(|_| "smtp"),
            ("sms", _, Some(g)) => g.send(to, text).await.map(|_| "sms-gateway"),
            _ => {
                // Development sender: says where the code would have gone,
                // never the code itself unless asked for (and then only at
                // debug level).
                log::warn!(
                    "console sender: a {channel} code for {username} would have been sent to \
                     {to} (not sent: no {} configured)",
                    if channel == "sms" {
                        "--sms-url"
                    } else {
                        "--smtp-url"
                    }
                );
                if show_code {
                    log::debug!(
                        "console sender (--console-show-code): code for {username}: {code}"
                    );
                }
                Ok("console")
            }
        }
    }
}

pub struct Sent {
    pub sender: &'static str,
    pub expires_at: String,
}

pub use radius_core::login::second_factor::new_code;

/// Checks the per-user limit and stores the code (committed, so no
/// transaction waits on the sender), then delivers it; a failed delivery
/// voids the code (it still counts towards the limit) and answers 502.
pub async fn issue(
    st: &SharedState,
    user_id: i64,
    username: &str,
    channel: &str,
    to: &str,
) -> ApiResult<Sent> {
    let code = new_code();
    let ttl = st.cfg.oob_ttl;
    let senders = &st.cfg.senders;
    let recorded = match channel {
        "email" if senders.smtp.is_some() => "email",
        "sms" if senders.sms.is_some() => "sms",
        _ => "console",
    };
    let mut client = st.db.get().await?;
    let tx = client.transaction().await?;
    // One issue at a time per user, so the count below is exact.
    if tx
        .query_opt(
            "SELECT 1 FROM rlm_rust_user WHERE id = $1 FOR UPDATE",
            &[&user_id],
        )
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("user".into()));
    }
    let limit = st.cfg.oob_send_limit;
    if limit > 0 {
        let window = SEND_WINDOW.as_secs_f64();
        let row = tx
            .query_one(
                "SELECT count(*), EXTRACT(EPOCH FROM min(created_at) + make_interval(secs => $2) \
                 - now())::float8 FROM rlm_rust_oob_code \
                 WHERE user_id = $1 AND created_at > now() - make_interval(secs => $2)",
                &[&user_id, &window],
            )
            .await?;
        let (sent, wait): (i64, Option<f64>) = (row.get(0), row.get(1));
        if sent >= i64::from(limit) {
            let retry = wait.unwrap_or(1.0).ceil().max(1.0) as u64;
            return Err(ApiError::RateLimited(
                format!(
                    "at most {limit} codes per user every {} minutes; retry later",
                    SEND_WINDOW.as_secs() / 60
                ),
                retry,
            ));
        }
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO rlm_rust_oob_code (user_id, code_hash, channel, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id, {}",
                ts("expires_at")
            ),
            &[
                &user_id,
                &st.cfg.oob_secret.code_mac(user_id, &code).as_slice(),
                &recorded,
                &ttl.as_secs_f64(),
            ],
        )
        .await?;
    let (code_id, expires_at): (i64, String) = (row.get(0), row.get(1));
    tx.commit().await?;
    drop(client);
    let minutes = ttl.as_secs().div_ceil(60);
    let delivered = senders
        .deliver(
            channel,
            username,
            to,
            &code,
            minutes,
            st.cfg.console_show_code,
        )
        .await;
    match delivered {
        Ok(sender) => Ok(Sent { sender, expires_at }),
        Err(e) => {
            let client = st.db.get().await?;
            client
                .execute(
                    "UPDATE rlm_rust_oob_code SET expires_at = created_at WHERE id = $1",
                    &[&code_id],
                )
                .await?;
            Err(ApiError::Delivery(e))
        }
    }
}

/// What checking a code found (the core's: the module checks the same
/// codes).
pub use radius_core::login::second_factor::Checked;

/// Checks `code` against the user's newest live code, counting the
/// attempt; a right code is used up.
pub async fn verify(st: &SharedState, user_id: i64, code: &str) -> ApiResult<Checked> {
    Ok(st
        .store
        .check_oob_code(&st.cfg.oob_secret, user_id, code)
        .await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = super::new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn code_macs_are_keyed_and_bound_to_the_user() {
        let a = super::Secret::from_bytes(&[1u8; 32]).unwrap();
        let b = super::Secret::from_bytes(&[2u8; 32]).unwrap();
        assert_eq!(a.code_mac(1, "123456"), a.code_mac(1, "123456"));
        assert_ne!(a.code_mac(1, "123456"), b.code_mac(1, "123456"));
        assert_ne!(a.code_mac(1, "123456"), a.code_mac(2, "123456"));
        assert_ne!(a.code_mac(1, "123456"), a.code_mac(1, "123457"));
        // Not the unkeyed digest the codes once were.
        assert_ne!(
            a.code_mac(1, "123456"),
            radius_core::account::hash_token("123456")
        );
        assert!(super::Secret::from_bytes(&[1u8; 31]).is_err());
    }

    #[test]
    fn the_secret_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "radius-admin-secret-{}-{}",
            std::process::id(),
            super::new_code()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        let made = super::Secret::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = super::Secret::load_or_create(&path).unwrap();
        assert_eq!(made.code_mac(7, "000001"), again.code_mac(7, "000001"));
        std::fs::write(&path, "short\n").unwrap();
        assert!(super::Secret::load_or_create(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
