//! The units every sandbox boots with: journald and the system bus, stand-ins for the targets
//! that ordinary units depend on by default, and what a halt needs. Nothing else of the host's
//! units is visible, so no early-boot unit can touch the host.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

/// The unit PID 1 boots into.
pub(crate) const BASE_TARGET: &str = "sandbox-base.target";

const HOST_UNITS: &str = "/lib/systemd/system";

const BASE_TARGET_UNIT: &str = "\
[Unit]
Description=Sandbox base: journal and system bus
Wants=systemd-journald.socket systemd-journald.service dbus.socket dbus.service
After=systemd-journald.socket systemd-journald.service dbus.socket dbus.service
";

/// Copied verbatim: the bus, and the chain that `halt` walks through.
const VERBATIM: [&str; 12] = [
    "dbus.socket",
    "dbus.service",
    "systemd-journald.socket",
    "shutdown.target",
    "umount.target",
    "final.target",
    "halt.target",
    "systemd-halt.service",
    "poweroff.target",
    "systemd-poweroff.service",
    "exit.target",
    "systemd-exit.service",
];

/// Empty stand-ins, so that units with default dependencies or `WantedBy=multi-user.target` load.
const STAND_INS: [&str; 18] = [
    "sysinit",
    "basic",
    "sockets",
    "timers",
    "paths",
    "slices",
    "local-fs",
    "remote-fs",
    "swap",
    "network",
    "network-pre",
    "network-online",
    "nss-lookup",
    "time-sync",
    "multi-user",
    "graphical",
    "rescue",
    "emergency",
];

/// Writes the base units into `dir`.
pub(crate) fn write(dir: &Path) -> io::Result<()> {
    fs::write(dir.join(BASE_TARGET), BASE_TARGET_UNIT)?;
    for unit in VERBATIM {
        fs::copy(Path::new(HOST_UNITS).join(unit), dir.join(unit))?;
    }
    // journald's other sockets (/dev/log, audit) would reach into the host's /dev and kernel.
    let journald = fs::read_to_string(Path::new(HOST_UNITS).join("systemd-journald.service"))?;
    let journald: String = journald
        .lines()
        .map(|line| {
            if line.starts_with("Sockets=") {
                "Sockets=systemd-journald.socket\n".to_owned()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    fs::write(dir.join("systemd-journald.service"), journald)?;
    for target in STAND_INS {
        fs::write(
            dir.join(format!("{target}.target")),
            format!("[Unit]\nDescription={target}\n"),
        )?;
    }
    symlink("halt.target", dir.join("ctrl-alt-del.target"))
}
