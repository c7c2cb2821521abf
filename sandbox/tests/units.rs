//! Units in the sandbox: shipped units pointed at other binaries, drop-ins, removal, and the
//! project's own units running with real resource accounting.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{systemctl, wait_for};
use imageserving_sandbox::Sandbox;

const COMPONENTS: [&str; 3] = ["imageserving-es", "imageserving-svg", "imageserving-ps"];

/// Stands in for a component: logs a line, tells systemd it is ready (as its main process, so
/// the default NotifyAccess=main accepts it), then keeps its watchdog fed.
const NOTIFYING_STUB: &str = r#"#!/usr/bin/python3
import os, socket, time
print("stub ready", flush=True)
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.sendto(b"READY=1", address)
while True:
    notify.sendto(b"WATCHDOG=1", address)
    time.sleep(1)
"#;

/// A directory the hardened components can read: not under /tmp (PrivateTmp=) nor /root or
/// /home (ProtectHome=). Removed on drop.
struct StubDir(PathBuf);

impl StubDir {
    fn new(sandbox: &Sandbox) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stubs-{}", sandbox.pid1()));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Self(dir)
    }
}

impl Drop for StubDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn installed_units_run_the_bin_dir_binaries_and_take_drop_ins() {
    let sandbox = common::boot();
    let units = sandbox.state_dir().join("test-units");
    fs::create_dir(&units).unwrap();
    let service = "[Service]\nExecStart=-/usr/libexec/demo/demo-server --port 80\n";
    fs::write(units.join("demo.service"), service).unwrap();
    fs::write(units.join("demo.target"), "[Unit]\nWants=demo.service\n").unwrap();
    fs::write(units.join("notes.txt"), "not a unit").unwrap();

    sandbox
        .install_units(&units, Path::new("/opt/build"))
        .unwrap();
    let exec_start = systemctl(&sandbox, &["show", "-p", "ExecStart", "demo.service"]);
    assert!(
        exec_start.contains("path=/opt/build/demo-server ;"),
        "{exec_start}"
    );
    assert!(
        exec_start.contains("argv[]=/opt/build/demo-server --port 80 ;"),
        "{exec_start}"
    );
    assert!(exec_start.contains("ignore_errors=yes"), "{exec_start}");
    assert_eq!(load_state(&sandbox, "demo.target"), "loaded");
    assert!(!sandbox.state_dir().join("units/notes.txt").exists());

    sandbox
        .drop_in(
            "demo.service",
            "50-env",
            "[Service]\nEnvironment=GREETING=hello\n",
        )
        .unwrap();
    let environment = systemctl(&sandbox, &["show", "-p", "Environment", "demo.service"]);
    assert_eq!(environment.trim(), "Environment=GREETING=hello");

    sandbox.remove_unit_file("demo.service").unwrap();
    assert_eq!(load_state(&sandbox, "demo.service"), "not-found");
    sandbox.shutdown().unwrap();
}

#[test]
fn project_units_run_with_real_resource_accounting() {
    let sandbox = common::boot();
    let stubs = StubDir::new(&sandbox);
    for component in COMPONENTS {
        let stub = stubs.0.join(component);
        fs::write(&stub, NOTIFYING_STUB).unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../units");
    sandbox.install_units(&units, &stubs.0).unwrap();

    systemctl(&sandbox, &["start", "imageserving.target"]);
    for component in COMPONENTS {
        let unit = format!("{component}.service");
        let state = systemctl(&sandbox, &["show", "-p", "ActiveState", &unit]);
        assert_eq!(
            state.trim(),
            "ActiveState=active",
            "{}",
            sandbox.journal(&unit)
        );
        assert!(sandbox.journal(&unit).contains("stub ready"));
    }

    // Figures of a running service and of the stack's slice are real, not 2^64-1 ("not set"),
    // where the sandbox has their controller, and "not set" where it has not. CPU usage needs
    // none on the unified hierarchy (cpu.stat) and cpuacct on the hybrid one.
    let expected = [
        ("CPUUsageNSec", true),
        ("MemoryCurrent", sandbox.has_controller("memory")),
        ("TasksCurrent", sandbox.has_controller("pids")),
    ];
    for unit in ["imageserving-es.service", "imageserving.slice"] {
        wait_for(
            "CPU, memory and task figures",
            Duration::from_secs(10),
            || {
                let figures = accounting(&sandbox, unit);
                expected.iter().all(|&(property, accounted)| {
                    figures.iter().any(|(name, value)| {
                        name == property && (*value > 0 && *value != u64::MAX) == accounted
                    })
                })
            },
        );
    }
    sandbox.shutdown().unwrap();
}

fn load_state(sandbox: &Sandbox, unit: &str) -> String {
    let shown = systemctl(sandbox, &["show", "-p", "LoadState", unit]);
    shown.trim().trim_start_matches("LoadState=").to_owned()
}

fn accounting(sandbox: &Sandbox, unit: &str) -> Vec<(String, u64)> {
    let shown = systemctl(
        sandbox,
        &[
            "show",
            "-p",
            "CPUUsageNSec,MemoryCurrent,TasksCurrent",
            unit,
        ],
    );
    shown
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            Some((name.to_owned(), value.parse().unwrap_or(u64::MAX)))
        })
        .collect()
}
