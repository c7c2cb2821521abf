//! Talking to systemd: readiness, a live status line, watchdog pings, stopping. Every
//! call is a no-op when the daemon does not run under systemd (no `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::{mpsc, oneshot};

/// A question sent to the server loop; its answer proves the loop still turns.
pub type Probe = oneshot::Sender<()>;

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        eprintln!("cannot notify systemd: {e}");
    }
}

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Sends `STATUS=` with `line()` every `interval`.
pub fn spawn_status(interval: Duration, line: impl Fn() -> String + Send + 'static) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            status(&line());
        }
    });
}

/// When systemd asks for a watchdog (`WATCHDOG_USEC`), pings it at half the interval, but
/// only after the server loop has answered a probe: a wedged loop stops the pings and
/// systemd restarts the daemon.
pub fn spawn_watchdog(probes: mpsc::Sender<Probe>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let (answer, answered) = oneshot::channel();
            if probes.send(answer).await.is_err() {
                return;
            }
            if let Ok(Ok(())) = tokio::time::timeout(period, answered).await {
                notify(&[NotifyState::Watchdog]);
            }
        }
    });
}
