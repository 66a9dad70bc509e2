//! Delivers the second-factor codes queued in `rlm_rust_oob_outbox` by
//! the module (a token_auth user's right password) and by `auth/`,
//! through the senders `sendoobtoken` uses. A LISTEN on `rlm_rust_outbox`
//! wakes it at the commit that queued a code; it also looks every few
//! seconds, so a notification lost with its connection delays a code,
//! never loses it. Each code is taken (deleted) by one radius-admin before
//! delivery: several instances share the work, and a code is delivered at
//! most once (a failed delivery is logged; the user's next login sends
//! another).

use std::sync::Arc;
use std::time::Duration;

use radius_core::login::second_factor::{outbox_context, Queued};
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::SharedState;

/// Channel of the outbox trigger (migration V11).
pub const CHANNEL: &str = "rlm_rust_outbox";
/// How often the outbox is read without a notification.
const POLL: Duration = Duration::from_secs(5);
/// Codes taken per read.
const BATCH: i64 = 20;

/// Ends the listener with the task that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs until the task is aborted (at shutdown).
pub async fn run(st: SharedState) {
    let wake = Arc::new(Notify::new());
    let _listener = AbortOnDrop(tokio::spawn(listen(st.cfg.dsn.clone(), wake.clone())));
    loop {
        deliver_due(&st).await;
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Keeps a LISTEN connection, waking `wake` at each notification (and at
/// each new connection: what was queued meanwhile is due).
async fn listen(dsn: String, wake: Arc<Notify>) {
    // The DSN was read once already (the pool): it parses.
    let target = match radius_core::pg::Target::new(&dsn) {
        Ok(t) => t,
        Err(e) => return log::error!("outbox listener: dsn: {e}"),
    };
    loop {
        match target.connect().await {
            Ok((client, mut conn)) => {
                let w = wake.clone();
                let driver = tokio::spawn(async move {
                    while let Some(msg) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        match msg {
                            Ok(AsyncMessage::Notification(_)) => w.notify_one(),
                            Ok(_) => {}
                            Err(e) => {
                                log::warn!("outbox listener: {e}");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        wake.notify_one();
                        let _ = driver.await;
                    }
                    Err(e) => {
                        log::warn!("outbox listener: LISTEN failed: {e}");
                        driver.abort();
                    }
                }
                drop(client);
            }
            Err(e) => log::warn!(
                "outbox listener: cannot connect: {}",
                radius_core::pg::describe(&e)
            ),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Takes and delivers every queued code.
async fn deliver_due(st: &SharedState) {
    loop {
        let batch = match st.store.take_outbox(BATCH).await {
            Ok(b) => b,
            Err(e) => {
                log::warn!("outbox: {e}");
                return;
            }
        };
        if batch.is_empty() {
            return;
        }
        for q in batch {
            deliver(st, q).await;
        }
    }
}

async fn deliver(st: &SharedState, q: Queued) {
    let who = format!("user #{}", q.user_id);
    if q.seconds_left <= 0.0 {
        log::warn!(
            "outbox: a {} code for {who} expired before delivery",
            q.channel
        );
        return;
    }
    let Some(code) = st
        .cfg
        .oob_secret
        .open(&outbox_context(q.code_id), &q.sealed_code)
        .and_then(|c| String::from_utf8(c).ok())
    else {
        log::error!(
            "outbox: a {} code for {who} does not open with this secret: the module's \
             secret_file and --secret-file must name the same secret",
            q.channel
        );
        return;
    };
    let minutes = (q.seconds_left.ceil() as u64).div_ceil(60).max(1);
    match st
        .cfg
        .senders
        .deliver(
            &q.channel,
            &who,
            &q.destination,
            &code,
            minutes,
            st.cfg.console_show_code,
        )
        .await
    {
        Ok(sender) => log::info!("outbox: {} code for {who} delivered ({sender})", q.channel),
        // The code stays valid until it expires: a dual user's other
        // channel may have delivered it.
        Err(e) => log::warn!("outbox: {} code for {who} not delivered: {e}", q.channel),
    }
}
