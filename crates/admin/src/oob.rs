//! Out-of-band codes (`sendoobtoken`): a short-lived 6-digit code, stored
//! as a SHA-256 digest, delivered by a pluggable sender. E-mail goes over
//! SMTP (lettre) when an SMTP URL is configured, SMS through an HTTP
//! gateway when its URL is configured; otherwise the console sender logs
//! the code (development). A failed delivery rolls the code back and is
//! answered 502: the caller must know the user got nothing.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use radius_core::account::hash_token;

use crate::error::{ApiError, ApiResult};
use crate::radius::ts;
use crate::SharedState;

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
    async fn deliver(
        &self,
        channel: &str,
        username: &str,
        to: &str,
        code: &str,
        minutes: u64,
    ) -> Result<&'static str, String> {
        let text = format!("Your verification code is {code}. It expires in {minutes} minutes.");
        match (channel, &self.smtp, &self.sms) {
            ("email", Some(s), _) => s
                .send(to, "Your verification code", text)
                .await
                .map(|_| "smtp"),
            ("sms", _, Some(g)) => g.send(to, text).await.map(|_| "sms-gateway"),
            _ => {
                // Development sender: the code goes to the service's log.
                log::warn!("console sender: {channel} code for {username} to {to}: {code}");
                Ok("console")
            }
        }
    }
}

pub struct Sent {
    pub sender: &'static str,
    pub expires_at: String,
}

/// A uniformly random 6-digit code (rejection sampling, no modulo bias).
pub fn new_code() -> String {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("the OS random number generator failed");
        let n = u32::from_le_bytes(b);
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// Stores the code and delivers it in one transaction: committed only
/// when the sender succeeded.
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
    let expires_at: String = tx
        .query_one(
            &format!(
                "INSERT INTO rlm_rust_oob_code (user_id, code_hash, channel, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING {}",
                ts("expires_at")
            ),
            &[
                &user_id,
                &hash_token(&code).as_slice(),
                &recorded,
                &ttl.as_secs_f64(),
            ],
        )
        .await?
        .get(0);
    let minutes = ttl.as_secs().div_ceil(60);
    match senders.deliver(channel, username, to, &code, minutes).await {
        Ok(sender) => {
            tx.commit().await?;
            Ok(Sent { sender, expires_at })
        }
        Err(e) => {
            // Dropping the transaction rolls the code back.
            drop(tx);
            Err(ApiError::Delivery(e))
        }
    }
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
}
