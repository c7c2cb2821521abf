//! The last lines a component logged, to show beside a failure: the daemon usually said why.

use std::process::{Command, Stdio};

use crate::systemd::Manager;

/// How many lines of a failed component's log to show.
const LINES: &str = "5";

/// The last lines the unit's own processes logged, oldest first; empty when the journal cannot
/// be read (no journalctl, no permission), since the failure is reported either way.
pub fn last_lines(manager: Manager, unit: &str) -> Vec<String> {
    let field = match manager {
        Manager::System => "_SYSTEMD_UNIT",
        Manager::User => "_SYSTEMD_USER_UNIT",
    };
    let mut journalctl = Command::new("journalctl");
    if manager == Manager::User {
        journalctl.arg("--user");
    }
    let output = journalctl
        .args(["--no-pager", "--quiet", "-o", "cat", "-n", LINES])
        .arg(format!("{field}={unit}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The command an operator runs to see the whole log.
pub fn command_for(manager: Manager, unit: &str) -> String {
    match manager {
        Manager::System => format!("journalctl -u {unit}"),
        Manager::User => format!("journalctl --user -u {unit}"),
    }
}
