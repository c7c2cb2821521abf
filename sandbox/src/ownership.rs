//! Sandbox names that say who launched them: leftovers of a launcher that died can then be told
//! apart from sandboxes that other, live test processes are using right now.

use std::fmt;
use std::path::PathBuf;

use crate::process::ProcessStamp;

/// Holds one state directory per sandbox, named by its id.
pub(crate) const STATE_ROOT: &str = "/tmp/imageserving-sandbox";

/// `<launcher pid>_<launcher start time>_<serial within the launcher>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SandboxId {
    pub launcher: ProcessStamp,
    pub serial: u32,
}

impl SandboxId {
    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('_');
        let id = Self {
            launcher: ProcessStamp {
                pid: parts.next()?.parse().ok()?,
                start_time: parts.next()?.parse().ok()?,
            },
            serial: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(id)
    }

    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(STATE_ROOT).join(self.to_string())
    }

    /// A sandbox is stale once the process that launched it is gone: nobody can use or tear it
    /// down any more.
    pub fn is_stale(&self) -> bool {
        !self.launcher.is_alive()
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}",
            self.launcher.pid, self.launcher.start_time, self.serial
        )
    }
}
