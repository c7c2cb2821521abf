//! Exit codes (LSB, as `systemctl` and `supervisorctl` use them) and the failures that end a
//! command early.

use crate::systemd;

pub const SUCCESS: u8 = 0;
/// A job failed, or a component did not reach the expected state.
pub const FAILED: u8 = 1;
/// `status`: the Supervisor or a component asked about is not running.
pub const STATUS_NOT_RUNNING: u8 = 3;
/// `status`: the manager cannot be reached or the units are not installed.
pub const STATUS_UNKNOWN: u8 = 4;
/// The bus or polkit denied the call.
pub const NO_PRIVILEGE: u8 = 4;
pub const NOT_INSTALLED: u8 = 5;
/// A unit is masked or its file is broken.
pub const NOT_CONFIGURED: u8 = 6;
/// `restart COMPONENT` while the Supervisor is stopped.
pub const NOT_RUNNING: u8 = 7;
pub const INTERRUPTED_BY_SIGINT: u8 = 130;
pub const INTERRUPTED_BY_SIGTERM: u8 = 143;

/// A command that could not do its work: one line that says what happened and what to do.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A systemd error met by `status`: the state is then unknown.
    pub fn of_status(error: systemd::Error) -> Failure {
        Failure::new(STATUS_UNKNOWN, error.to_string())
    }
}

/// A systemd error met by `start`, `stop` or `restart`.
impl From<systemd::Error> for Failure {
    fn from(error: systemd::Error) -> Failure {
        let code = match error {
            systemd::Error::Denied { .. } => NO_PRIVILEGE,
            systemd::Error::Unreachable { .. } | systemd::Error::Call { .. } => FAILED,
        };
        Failure::new(code, error.to_string())
    }
}
