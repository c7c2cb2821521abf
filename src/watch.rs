//! `status --watch`: the status shown again whenever it changes. The states come from systemd's
//! `PropertiesChanged` signals, as they happen; the resource figures and the uptime, which
//! systemd does not signal, are read again every interval.

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use zbus::MessageStream;
use zruntime::SharedRuntime;

use crate::exit::{Code, Failure};
use crate::report;
use crate::stack::{Component, SUPERVISOR};
use crate::status::StackStatus;
use crate::systemd::{Manager, Systemd, unit_path};

/// Shows the status of `components` until interrupted, or until the reader goes away.
pub async fn run(
    manager: Manager,
    components: &[Component],
    interval: Duration,
    json: bool,
) -> Result<(), Failure> {
    let runtime = SharedRuntime::current()
        .map_err(|e| Failure::new(Code::Unknown, format!("cannot keep time: {e}")))?;
    let systemd = Systemd::connect(manager)
        .await
        .map_err(Failure::of_status)?;
    let mut changes = systemd.unit_changes().await.map_err(Failure::of_status)?;
    let watched: HashSet<String> = std::iter::once(SUPERVISOR)
        .chain(components.iter().map(|c| c.unit()))
        .map(unit_path)
        .collect();
    let mut shown: Option<StackStatus> = None;
    loop {
        let mut status = StackStatus::read(&systemd, components)
            .await
            .map_err(Failure::of_status)?;
        status.recall_failures(shown.as_ref()).await;
        match report::watched(&status, json, interval) {
            Ok(()) => {}
            // The reader went away (`| head`): that ends the watch, and is no error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Failure::new(Code::Unknown, format!("cannot write: {e}"))),
        }
        shown = Some(status);
        // Woken by a change of a watched unit, or by the interval.
        let woken = runtime
            .timeout(interval, next_change(&mut changes, &watched))
            .await;
        if let Ok(false) = woken {
            return Err(Failure::new(
                Code::Unknown,
                "lost the connection to systemd; run the command again once it is back",
            ));
        }
    }
}

/// Waits for a change of one of the `watched` units' objects, then takes every change already
/// queued, so that one transition (several signals) shows once. False when the bus is gone.
async fn next_change(changes: &mut MessageStream, watched: &HashSet<String>) -> bool {
    let about_watched = |message: &zbus::Message| {
        message
            .header()
            .path()
            .is_some_and(|path| watched.contains(path.as_str()))
    };
    loop {
        match changes.next().await {
            Some(Ok(message)) if about_watched(&message) => break,
            Some(_) => continue,
            None => return false,
        }
    }
    while let Some(Some(_)) = changes.next().now_or_never() {}
    true
}
