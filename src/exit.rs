//! Exit codes, LSB as `systemctl` and `supervisorctl` use them, and the failures that end a
//! command early. [`TABLE`] is the one list of codes: the help text, the man pages and the
//! README's table are all made from it. `status` reports a state while the actions report
//! what they did, so one number can mean one thing for `status` and another for the actions.

use std::fmt::Write as _;

use crate::systemd;

/// The verbs that end with a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbs {
    Status,
    /// `start`, `stop` and `restart`.
    Actions,
    Logs,
    Any,
}

impl Verbs {
    fn label(self) -> &'static str {
        match self {
            Verbs::Status => "status",
            Verbs::Actions => "start, stop, restart",
            Verbs::Logs => "logs",
            Verbs::Any => "any",
        }
    }
}

/// Every way a command ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// `status`: all is running.
    Running,
    /// `status`: something asked about is down.
    NotRunning,
    /// `status`: the state cannot be known.
    Unknown,
    /// An action did what was asked.
    Done,
    Failed,
    /// clap's own code for a command line it refuses.
    Usage,
    NoPrivilege,
    NotInstalled,
    NotConfigured,
    /// `restart COMPONENT` while the Supervisor is stopped: it never starts a lone component.
    SupervisorStopped,
    Shown,
    LogsFailed,
    NoJournalAccess,
    Sigint,
    Sigterm,
}

/// Every code, in the order the documentation lists them.
pub const TABLE: [Code; 15] = [
    Code::Running,
    Code::NotRunning,
    Code::Unknown,
    Code::Done,
    Code::Failed,
    Code::NoPrivilege,
    Code::NotInstalled,
    Code::NotConfigured,
    Code::SupervisorStopped,
    Code::Shown,
    Code::LogsFailed,
    Code::NoJournalAccess,
    Code::Usage,
    Code::Sigint,
    Code::Sigterm,
];

impl Code {
    pub const fn number(self) -> u8 {
        match self {
            Code::Running | Code::Done | Code::Shown => 0,
            Code::Failed | Code::LogsFailed => 1,
            Code::Usage => 2,
            Code::NotRunning => 3,
            Code::Unknown | Code::NoPrivilege | Code::NoJournalAccess => 4,
            Code::NotInstalled => 5,
            Code::NotConfigured => 6,
            Code::SupervisorStopped => 7,
            Code::Sigint => 130,
            Code::Sigterm => 143,
        }
    }

    pub const fn verbs(self) -> Verbs {
        match self {
            Code::Running | Code::NotRunning | Code::Unknown => Verbs::Status,
            Code::Shown | Code::LogsFailed | Code::NoJournalAccess => Verbs::Logs,
            Code::Usage | Code::Sigint | Code::Sigterm => Verbs::Any,
            _ => Verbs::Actions,
        }
    }

    pub const fn meaning(self) -> &'static str {
        match self {
            Code::Running => "the Supervisor and every component asked about are active",
            Code::NotRunning => {
                "the Supervisor is not running, or a component asked about is not active"
            }
            Code::Unknown => "unknown: systemd cannot be reached, or the units are not installed",
            Code::Done => "done",
            Code::Failed => {
                "a job failed or timed out, a component did not reach the expected state, or \
                 systemd cannot be reached"
            }
            Code::Usage => {
                "invalid arguments (unknown command, component, option or time), with a hint"
            }
            Code::NoPrivilege => "insufficient privilege: D-Bus or polkit denied the call",
            Code::NotInstalled => "not installed: a unit file is missing (the message names it)",
            Code::NotConfigured => "not configured: a unit is masked or its file has a bad setting",
            Code::SupervisorStopped => {
                "not running: `restart COMPONENT` while the Supervisor is stopped"
            }
            Code::Shown => "shown (also when the reader of the output went away)",
            Code::LogsFailed => "journalctl cannot be run, or failed",
            Code::NoJournalAccess => {
                "no access to the system journal (join `systemd-journal` or `adm`)"
            }
            Code::Sigint => {
                "interrupted by SIGINT (an action's job goes on in systemd; `logs -f` ends so)"
            }
            Code::Sigterm => "interrupted by SIGTERM (an action's job goes on in systemd)",
        }
    }
}

/// The exit codes as `--help` and the man pages show them.
pub fn help() -> String {
    let mut text = String::from("Exit codes (LSB):");
    let mut last = None;
    for code in TABLE {
        let verbs = code.verbs();
        let label = if last == Some(verbs) {
            String::new()
        } else {
            format!("{}:", verbs.label())
        };
        last = Some(verbs);
        let _ = write!(
            text,
            "\n  {label:<22}{:>3} {}",
            code.number(),
            code.meaning()
        );
    }
    text
}

/// A command that could not do its work: one line that says what happened and what to do.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A systemd error met by `status`: the state is then unknown.
    pub fn of_status(error: systemd::Error) -> Failure {
        Failure::new(Code::Unknown, error.to_string())
    }
}

/// A systemd error met by `start`, `stop` or `restart`.
impl From<systemd::Error> for Failure {
    fn from(error: systemd::Error) -> Failure {
        let code = match error {
            systemd::Error::Denied { .. } => Code::NoPrivilege,
            systemd::Error::Unreachable { .. } | systemd::Error::Call { .. } => Code::Failed,
        };
        Failure::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_means_one_thing_per_kind_of_verb() {
        for a in TABLE {
            for b in TABLE {
                if a != b && a.number() == b.number() {
                    assert_ne!(a.verbs(), b.verbs(), "{a:?} and {b:?}");
                }
            }
        }
    }

    /// The README's table is written by hand for its layout; it must say what the tool does.
    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../README.md");
        for code in TABLE {
            let row = format!("| {} | {} |", code.number(), code.meaning());
            assert!(readme.contains(&row), "README.md lacks the row `{row}`");
        }
    }
}
