//! What the sandbox tests share: proof that a sandbox left nothing behind, and waiting.

#![allow(dead_code)] // each test binary uses a part of it

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use imageserving_sandbox::Sandbox;

/// Boots a sandbox; on a host that cannot run one, ends the test run with one line.
pub fn boot() -> Sandbox {
    imageserving_sandbox::exit_unless_supported_host();
    Sandbox::boot().unwrap()
}

/// Everything a sandbox put on the host, noted while it runs.
#[derive(Debug)]
pub struct Footprint {
    pub pid1: i32,
    /// Held open so that the namespace's inode number cannot be given to a namespace booted
    /// later by a test running alongside, which would pass for this one.
    pid_namespace: File,
    pub state_dir: PathBuf,
    cgroup: String,
    /// Names the PrivateTmp directories of its services in the host's /tmp and /var/tmp.
    boot_id: String,
}

impl Footprint {
    pub fn of(sandbox: &Sandbox) -> Self {
        Self::from_parts(sandbox.pid1(), sandbox.state_dir())
    }

    pub fn from_parts(pid1: i32, state_dir: &Path) -> Self {
        let pid_namespace = File::open(format!("/proc/{pid1}/ns/pid")).expect("PID 1 runs");
        let cgroups = fs::read_to_string(format!("/proc/{pid1}/cgroup")).expect("PID 1 runs");
        // "8:pids:/harness_imageserving_<id>.slice/init.scope" on a hybrid host,
        // "0::/system.slice/harness_imageserving_<id>.scope/payload/init.scope" on a unified one.
        let cgroup = cgroups
            .lines()
            .flat_map(|line| line.split(':').nth(2).unwrap_or_default().split('/'))
            .find(|part| part.starts_with("harness_"))
            .unwrap_or_else(|| panic!("PID 1 is not in a harness cgroup: {cgroups}"))
            .to_owned();
        let boot_id =
            fs::read_to_string(format!("/proc/{pid1}/root/proc/sys/kernel/random/boot_id"))
                .expect("PID 1 runs");
        let boot_id = boot_id.trim().replace('-', "");
        let host_boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_ne!(
            boot_id,
            host_boot_id.trim().replace('-', ""),
            "the sandbox has its own boot id"
        );
        Self {
            pid1,
            pid_namespace,
            state_dir: state_dir.to_owned(),
            cgroup,
            boot_id,
        }
    }

    /// What is still there: processes of the namespace (PID 1 included), the script(1) and
    /// unshare(1) that started it, its cgroups, its state directory, its services' PrivateTmp
    /// directories.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let state = self.state_dir.to_string_lossy().into_owned();
        let namespace = self.pid_namespace.metadata().unwrap();
        let in_namespace = |pid: i32| {
            fs::metadata(format!("/proc/{pid}/ns/pid"))
                .is_ok_and(|ns| (ns.dev(), ns.ino()) == (namespace.dev(), namespace.ino()))
        };
        for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if in_namespace(pid) {
                left.push(format!("process {pid} in the sandbox's PID namespace"));
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&state) {
                left.push(format!("process {pid} naming the state directory"));
            }
        }
        for hierarchy in fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .filter_map(Result::ok)
        {
            let dir = hierarchy.path().join(&self.cgroup);
            if dir.exists() {
                left.push(format!("cgroup {}", dir.display()));
            }
        }
        for tmp in ["/tmp", "/var/tmp"] {
            for entry in fs::read_dir(tmp).unwrap().filter_map(Result::ok) {
                if entry.file_name().to_string_lossy().contains(&self.boot_id) {
                    left.push(format!("private tmp {}", entry.path().display()));
                }
            }
        }
        if self.state_dir.exists() {
            left.push(format!("state directory {}", self.state_dir.display()));
        }
        left
    }

    pub fn assert_nothing_left(&self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "the sandbox left {left:#?}");
    }
}

/// Directories a service can make systemd create on the host's file systems.
pub const PROBE_DIRECTORIES: [&str; 6] = [
    "/var/lib/private/sandbox-probe",
    "/var/lib/sandbox-probe",
    "/var/cache/private/sandbox-probe",
    "/var/cache/sandbox-probe",
    "/var/log/private/sandbox-probe",
    "/var/log/sandbox-probe",
];

/// Starts `probe.service`, which makes systemd create every directory it creates for services
/// (PrivateTmp=, and with DynamicUser= the state, cache and logs directories) and writes a file
/// into each.
pub fn start_probe_service(sandbox: &Sandbox) {
    let unit = "[Service]\nDynamicUser=yes\nPrivateTmp=yes\nStateDirectory=sandbox-probe\n\
                CacheDirectory=sandbox-probe\nLogsDirectory=sandbox-probe\n\
                ExecStart=/bin/sh -c 'touch /tmp/f /var/tmp/f $STATE_DIRECTORY/f \
                $CACHE_DIRECTORY/f $LOGS_DIRECTORY/f && exec sleep infinity'\n";
    sandbox.write_unit_file("probe.service", unit).unwrap();
    sandbox.daemon_reload().unwrap();
    systemctl(sandbox, &["start", "probe.service"]);
    wait_for(
        "the probe to write its files",
        Duration::from_secs(10),
        || {
            let check = "test -f /var/lib/sandbox-probe/f && test -f /var/cache/sandbox-probe/f";
            sandbox
                .command("sh")
                .args(["-c", check])
                .status()
                .unwrap()
                .success()
        },
    );
}

/// Checks `condition` every 20 ms until it holds; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// `systemctl ARGS` in the sandbox, which must succeed; returns its stdout.
pub fn systemctl(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = sandbox.systemctl(args).unwrap();
    assert!(
        output.status.success(),
        "systemctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
