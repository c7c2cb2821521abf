//! The journal, read through `journalctl --output=json` (which reads the same over ssh as
//! locally, and is so read on remote hosts): the components' logs, the lines a component logged before it failed, and the
//! result of its last failure once systemd has restarted it (a new start resets the `Result`
//! property).

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use zruntime::SharedRuntime;

use crate::remote::Host;
use crate::stack::Component;
use crate::systemd::{Manager, UnitResult};

/// How many lines of a failed component's log to show.
const LINES: &str = "5";

/// systemd's "Failed with result" message (SD_MESSAGE_UNIT_FAILURE_RESULT), which carries the
/// result in its `UNIT_RESULT` field.
const FAILURE_RESULT_MESSAGE: &str = "d9b373ed55a64feb8242e02dbe79a49c";

/// One journal entry about a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: SystemTime,
    /// The component that logged it, or that systemd logged it about.
    pub component: Option<Component>,
    /// syslog's 0 (emerg) to 7 (debug).
    pub priority: Option<u8>,
    pub pid: Option<u32>,
    /// Non-UTF-8 bytes are replaced, never dropped.
    pub message: String,
    /// `UNIT_RESULT`, on systemd's messages about a failure.
    pub unit_result: Option<String>,
}

/// A field as journalctl's JSON gives it: text, bytes (when not UTF-8), or several values.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    Text(String),
    Bytes(Vec<u8>),
    Many(Vec<Field>),
}

impl Field {
    /// The text of the field, lossily; its first value when it has several.
    fn text(self) -> String {
        match self {
            Field::Text(text) => text,
            Field::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Field::Many(fields) => fields
                .into_iter()
                .next()
                .map(Field::text)
                .unwrap_or_default(),
        }
    }
}

/// A numeric field, when it is one.
fn number<T: std::str::FromStr>(field: Option<Field>) -> Option<T> {
    field.and_then(|f| f.text().parse().ok())
}

/// The fields the tool reads; journalctl gives `null` for a field too large to show.
#[derive(Deserialize)]
struct Record {
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<Field>,
    #[serde(rename = "MESSAGE")]
    message: Option<Field>,
    #[serde(rename = "PRIORITY")]
    priority: Option<Field>,
    #[serde(rename = "_PID")]
    pid: Option<Field>,
    #[serde(rename = "_SYSTEMD_UNIT")]
    unit: Option<Field>,
    #[serde(rename = "_SYSTEMD_USER_UNIT")]
    user_unit: Option<Field>,
    /// The unit systemd itself logs about ("Started …", "Failed with result …").
    #[serde(rename = "UNIT")]
    about_unit: Option<Field>,
    #[serde(rename = "USER_UNIT")]
    about_user_unit: Option<Field>,
    #[serde(rename = "UNIT_RESULT")]
    unit_result: Option<Field>,
}

impl Entry {
    /// Parses one line of `journalctl --output=json`.
    pub fn parse(line: &str) -> Result<Entry, serde_json::Error> {
        let record: Record = serde_json::from_str(line)?;
        let micros: u64 = number(record.realtime).unwrap_or(0);
        let component = [
            record.unit,
            record.user_unit,
            record.about_unit,
            record.about_user_unit,
        ]
        .into_iter()
        .flatten()
        .find_map(|unit| Component::from_unit(&unit.text()));
        Ok(Entry {
            at: UNIX_EPOCH + Duration::from_micros(micros),
            component,
            priority: number(record.priority),
            pid: number(record.pid),
            message: record.message.map(Field::text).unwrap_or_default(),
            unit_result: record.unit_result.map(Field::text),
        })
    }
}

/// A failure systemd logged for a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastFailure {
    pub result: UnitResult,
    pub at: SystemTime,
}

/// The last lines the unit's own processes logged, oldest first; empty when the journal cannot
/// be read (no journalctl, no permission), since the failure is reported either way.
pub async fn last_lines(manager: Manager, host: Option<&Host>, unit: &str) -> Vec<String> {
    let field = match manager {
        Manager::System => "_SYSTEMD_UNIT",
        Manager::User => "_SYSTEMD_USER_UNIT",
    };
    journalctl(host, &["-n", LINES, &format!("{field}={unit}")])
        .await
        .into_iter()
        .map(|entry| entry.message)
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// The unit's last failure, as systemd logged it; `None` when there is none or the journal
/// cannot be read.
pub async fn last_failure(
    manager: Manager,
    host: Option<&Host>,
    unit: &str,
) -> Option<PastFailure> {
    let field = match manager {
        Manager::System => "UNIT",
        Manager::User => "USER_UNIT",
    };
    let entry = journalctl(
        host,
        &[
            "-n",
            "1",
            &format!("{field}={unit}"),
            &format!("MESSAGE_ID={FAILURE_RESULT_MESSAGE}"),
        ],
    )
    .await
    .pop()?;
    Some(PastFailure {
        result: UnitResult::from(entry.unit_result?),
        at: entry.at,
    })
}

/// The command an operator runs to see the whole log: on `host` through ssh.
pub fn command_for(manager: Manager, host: Option<&Host>, unit: &str) -> String {
    let local = match manager {
        Manager::System => format!("journalctl -u {unit}"),
        Manager::User => format!("journalctl --user-unit={unit}"),
    };
    match host {
        Some(host) => format!("ssh {host} {local}"),
        None => local,
    }
}

/// The journalctl option that selects a unit of `manager`, and what it asks for.
pub fn unit_option(manager: Manager, unit: &str) -> String {
    match manager {
        Manager::System => format!("--unit={unit}"),
        Manager::User => format!("--user-unit={unit}"),
    }
}

/// `journalctl ARGS` with JSON output and no pager, here or on `host` over ssh. A user
/// manager's units are read from every journal file the caller may read (`--user` would read
/// only the user's own files, which root and volatile journals do not have), matched by their
/// user unit's name.
pub fn journalctl_command(host: Option<&Host>, args: &[&str]) -> Command {
    let words = ["journalctl", "--output=json", "--no-pager"]
        .iter()
        .chain(args)
        .copied()
        .collect::<Vec<_>>();
    match host {
        Some(host) => host.ssh(&words),
        None => {
            let mut command = Command::new(words[0]);
            command.args(&words[1..]);
            command
        }
    }
}

/// The entries `args` select; none when the journal cannot be read. Run without blocking:
/// on a remote host journalctl takes an ssh connection's time, while other hosts are read.
async fn journalctl(host: Option<&Host>, args: &[&str]) -> Vec<Entry> {
    let args = [&["--quiet"], args].concat();
    let Ok(runtime) = SharedRuntime::current() else {
        return Vec::new();
    };
    let output = zruntime::process::Command::from(journalctl_command(host, &args))
        .stderr(Stdio::null())
        .output(&runtime)
        .await;
    match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| Entry::parse(line).ok())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_what_is_not_utf8_and_find_their_component() {
        let line = r#"{"__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":[104,105,255],
            "PRIORITY":"6","_PID":"42","_SYSTEMD_UNIT":"imageserving-es.service"}"#;
        let entry = Entry::parse(&line.replace('\n', "")).unwrap();
        assert_eq!(entry.message, "hi\u{fffd}");
        assert_eq!(entry.component, Some(Component::Es));
        assert_eq!(entry.priority, Some(6));
        assert_eq!(entry.pid, Some(42));
        assert_eq!(
            entry.at,
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)
        );
    }

    #[test]
    fn systemds_own_messages_name_the_unit_they_are_about() {
        let line = r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":"Started.","_SYSTEMD_UNIT":"init.scope","UNIT":"imageserving-svg.service","UNIT_RESULT":null}"#;
        let entry = Entry::parse(line).unwrap();
        assert_eq!(entry.component, Some(Component::Svg));
        assert_eq!(entry.unit_result, None);
    }

    #[test]
    fn a_field_with_several_values_gives_its_first() {
        let line = r#"{"MESSAGE":["one",[116,119,111]]}"#;
        assert_eq!(Entry::parse(line).unwrap().message, "one");
        assert!(Entry::parse("not json").is_err());
    }
}
