//! What the journal knows that the unit properties forget: the lines a component logged before
//! it failed, and the result of its last failure once systemd has restarted it (a new start
//! resets the `Result` property).

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::systemd::{Manager, UnitResult};

/// How many lines of a failed component's log to show.
const LINES: &str = "5";

/// systemd's "Failed with result" message (SD_MESSAGE_UNIT_FAILURE_RESULT), which carries the
/// result in its `UNIT_RESULT` field.
const FAILURE_RESULT_MESSAGE: &str = "d9b373ed55a64feb8242e02dbe79a49c";

/// A failure systemd logged for a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastFailure {
    pub result: UnitResult,
    pub at: SystemTime,
}

/// The last lines the unit's own processes logged, oldest first; empty when the journal cannot
/// be read (no journalctl, no permission), since the failure is reported either way.
pub fn last_lines(manager: Manager, unit: &str) -> Vec<String> {
    let field = match manager {
        Manager::System => "_SYSTEMD_UNIT",
        Manager::User => "_SYSTEMD_USER_UNIT",
    };
    journalctl(
        manager,
        &["-o", "cat", "-n", LINES, &format!("{field}={unit}")],
    )
    .map(|text| {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// The unit's last failure, as systemd logged it; `None` when there is none or the journal
/// cannot be read.
pub fn last_failure(manager: Manager, unit: &str) -> Option<PastFailure> {
    let field = match manager {
        Manager::System => "UNIT",
        Manager::User => "USER_UNIT",
    };
    let text = journalctl(
        manager,
        &[
            "-o",
            "json",
            "-n",
            "1",
            &format!("{field}={unit}"),
            &format!("MESSAGE_ID={FAILURE_RESULT_MESSAGE}"),
        ],
    )?;
    let entry: serde_json::Value = serde_json::from_str(text.lines().next()?).ok()?;
    let micros: u64 = entry["__REALTIME_TIMESTAMP"].as_str()?.parse().ok()?;
    Some(PastFailure {
        result: UnitResult::from(entry["UNIT_RESULT"].as_str()?.to_string()),
        at: UNIX_EPOCH + Duration::from_micros(micros),
    })
}

/// The command an operator runs to see the whole log.
pub fn command_for(manager: Manager, unit: &str) -> String {
    match manager {
        Manager::System => format!("journalctl -u {unit}"),
        Manager::User => format!("journalctl --user -u {unit}"),
    }
}

fn journalctl(manager: Manager, args: &[&str]) -> Option<String> {
    let mut command = Command::new("journalctl");
    if manager == Manager::User {
        command.arg("--user");
    }
    let output = command
        .args(["--no-pager", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
