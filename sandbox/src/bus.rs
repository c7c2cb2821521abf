//! Questions to a sandbox's system bus, asked from the host with busctl.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

const SYSTEMD: &str = "org.freedesktop.systemd1";

/// Keeps a stuck bus from eating the whole boot deadline in one call.
const CALL_TIMEOUT: &str = "--timeout=5";

pub(crate) struct Bus {
    socket: PathBuf,
}

impl Bus {
    pub fn at(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
        }
    }

    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    /// Whether systemd has connected to the bus and owns its name.
    pub fn systemd_is_on_bus(&self) -> io::Result<bool> {
        // No socket yet: spare the machine a busctl run.
        if !self.socket.exists() {
            return Ok(false);
        }
        let reply = self.busctl(&[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            SYSTEMD,
        ])?;
        Ok(reply.trim() == "b true")
    }

    /// The manager's SystemState: "starting" until the boot transaction is done, then "running"
    /// (or "degraded" if a unit failed).
    pub fn system_state(&self) -> io::Result<String> {
        let reply = self.busctl(&[
            "get-property",
            SYSTEMD,
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "SystemState",
        ])?;
        Ok(reply
            .trim()
            .trim_start_matches("s ")
            .trim_matches('"')
            .to_owned())
    }

    fn busctl(&self, args: &[&str]) -> io::Result<String> {
        let output = Command::new("busctl")
            .arg(format!("--address={}", self.address()))
            .arg(CALL_TIMEOUT)
            .args(args)
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "busctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
