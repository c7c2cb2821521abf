//! The sandbox's own cgroups on the host. systemd takes the cgroup it starts in as the root it
//! manages and moves every process found there under its init.scope: started in the host's root
//! cgroup it would swallow the whole machine.
//!
//! The layout is chosen by what the host offers, never by a setting:
//! - hybrid (cgroup v1 hierarchies, as on hosts not booted with systemd): the sandbox makes
//!   `harness_imageserving_<id>.slice` in each hierarchy and its PID 1 moves itself there;
//! - unified (cgroup v2, systemd as PID 1): the host's systemd hands over the transient scope
//!   `harness_imageserving_<id>.scope` (Delegate=yes), and the sandbox's PID 1 enters a cgroup
//!   namespace rooted in it, as systemd-nspawn does.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::anyhow;

use crate::ownership::SandboxId;
use crate::poll::Backoff;
use crate::process::{PidFd, ProcessStamp};

const CGROUP_FS: &str = "/sys/fs/cgroup";
/// statfs(2)'s f_type of a cgroup v2 file system.
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// The hierarchies PID 1 is moved into on a hybrid host. The private /sys/fs/cgroup of the
/// sandbox shows a few more, but PID 1 stays in their root: systemd does not manage them.
pub(crate) const HIERARCHIES: [&str; 7] = [
    "systemd", "unified", "cpuacct", "memory", "pids", "blkio", "devices",
];

/// Where the host's systemd puts the delegated scopes on a unified host.
const SCOPE_SLICE: &str = "system.slice";

/// Inside the delegated scope: the sandbox's outermost processes (script, unshare) run in
/// `supervisor/`, its PID 1 in `payload/`, so that the scope's own cgroup holds no process and
/// may hand its controllers down (cgroup v2 allows processes in leaves only).
pub(crate) const SUPERVISOR: &str = "supervisor";
pub(crate) const PAYLOAD: &str = "payload";

const PREFIX: &str = "harness_imageserving_";

/// How the host lays out its cgroups, as far as the sandbox is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// cgroup v1 hierarchies under a tmpfs at /sys/fs/cgroup.
    Hybrid,
    /// The cgroup v2 hierarchy, managed by the host's systemd.
    Unified,
}

impl Layout {
    /// The host's layout, or one line saying what the host lacks and what to do. Asked once
    /// per process.
    pub fn of_host() -> anyhow::Result<Self> {
        static LAYOUT: OnceLock<Result<Layout, String>> = OnceLock::new();
        LAYOUT
            .get_or_init(detect)
            .clone()
            .map_err(|message| anyhow!(message))
    }

    fn suffix(self) -> &'static str {
        match self {
            Layout::Hybrid => ".slice",
            Layout::Unified => ".scope",
        }
    }

    /// The directories the harness cgroups are made in.
    fn parents(self) -> Vec<PathBuf> {
        match self {
            Layout::Hybrid => HIERARCHIES
                .iter()
                .map(|h| Path::new(CGROUP_FS).join(h))
                .collect(),
            Layout::Unified => vec![Path::new(CGROUP_FS).join(SCOPE_SLICE)],
        }
    }
}

fn detect() -> Result<Layout, String> {
    const SEE: &str = "see the README's section on tests";
    if !rustix::process::geteuid().is_root() {
        return Err(format!(
            "the systemd sandbox needs root for its namespaces and cgroups: run the tests as \
             root or with sudo ({SEE})"
        ));
    }
    let unified = rustix::fs::statfs(CGROUP_FS)
        .map_err(|e| format!("cannot examine {CGROUP_FS}: {e} ({SEE})"))?
        .f_type as u64
        == CGROUP2_SUPER_MAGIC;
    if unified {
        if Path::new("/run/systemd/system").is_dir() {
            return Ok(Layout::Unified);
        }
        return Err(format!(
            "{CGROUP_FS} is the unified cgroup v2 hierarchy but systemd is not PID 1, so no \
             manager can delegate a cgroup to the systemd sandbox: run the tests on a host \
             booted with systemd, or with the cgroup v1 hierarchies ({SEE})"
        ));
    }
    for dir in Layout::Hybrid.parents() {
        if !dir.is_dir() {
            return Err(format!(
                "{} is missing: the systemd sandbox needs the cgroup v1 hierarchies {} or the \
                 unified hierarchy under systemd ({SEE})",
                dir.display(),
                HIERARCHIES.join(" ")
            ));
        }
        if rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK).is_err() {
            return Err(format!(
                "{} is read-only (as in a container): the systemd sandbox needs writable cgroup \
                 hierarchies, or the unified hierarchy under systemd ({SEE})",
                dir.display()
            ));
        }
    }
    Ok(Layout::Hybrid)
}

/// `harness_imageserving_<id>.slice` in every hierarchy, or `harness_imageserving_<id>.scope`.
pub(crate) struct HarnessCgroups {
    layout: Layout,
    name: String,
}

impl HarnessCgroups {
    pub fn of(layout: Layout, id: &SandboxId) -> Self {
        Self {
            layout,
            name: format!("{PREFIX}{id}{}", layout.suffix()),
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The directory name, the same in every hierarchy; on a unified host, the scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.layout
            .parents()
            .into_iter()
            .map(|parent| parent.join(&self.name))
    }

    /// Prepares the cgroups and returns the command line that runs `command` in them: as it is
    /// on a hybrid host (PID 1 moves itself), through the host's systemd on a unified one.
    pub fn confine(&self, command: Vec<OsString>) -> io::Result<Vec<OsString>> {
        match self.layout {
            Layout::Hybrid => {
                for dir in self.dirs() {
                    fs::create_dir(&dir).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                Ok(command)
            }
            Layout::Unified => {
                let mut line: Vec<OsString> = [
                    "systemd-run",
                    "--scope",
                    "--quiet",
                    "--collect",
                    &format!("--slice={SCOPE_SLICE}"),
                    &format!("--unit={}", self.name),
                    "--property=Delegate=yes",
                    "--",
                    "/bin/sh",
                    "-c",
                    &enter_supervisor(),
                    "sh",
                    &self.name,
                ]
                .into_iter()
                .map(OsString::from)
                .collect();
                line.extend(command);
                Ok(line)
            }
        }
    }

    /// Every process in any of the cgroups or below them.
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for dir in self.dirs() {
            collect_processes(&dir, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs every process in the cgroups until none is left; false if some remain at
    /// `deadline`. Each pid is checked to still be in the cgroup through a pidfd, so a pid
    /// reused meanwhile by an unrelated process is never hit.
    pub fn kill_processes(&self, deadline: Instant) -> bool {
        Backoff::new().wait_until(deadline, || {
            let pids = self.processes();
            for &pid in &pids {
                let Some(stamp) = ProcessStamp::of(pid) else {
                    continue;
                };
                let Ok(pidfd) = PidFd::open(stamp) else {
                    continue;
                };
                let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                if cgroup.contains(&format!("/{}", self.name)) && stamp.is_alive() {
                    let _ = pidfd.signal(libc::SIGKILL);
                }
            }
            pids.is_empty()
        })
    }

    /// Removes the cgroups depth-first, once their processes are gone. They empty
    /// asynchronously after their processes die (after a SIGKILL there are dozens), so busy ones
    /// are retried until `deadline`. On a unified host the scope is stopped too, so that the
    /// host's systemd forgets it.
    pub fn remove(&self, deadline: Instant) -> io::Result<()> {
        if self.layout == Layout::Unified && self.dirs().any(|dir| dir.exists()) {
            // Without waiting: an empty scope stops at once, and the loop below waits for its
            // cgroup to go. A scope already gone makes systemctl fail, which changes nothing.
            let _ = Command::new("systemctl")
                .args(["stop", "--no-block", "--quiet", &self.name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let mut backoff = Backoff::new();
        loop {
            let mut last_error = None;
            for dir in self.dirs() {
                if let Err(e) = remove_tree(&dir) {
                    last_error = Some((dir, e));
                }
            }
            match last_error {
                None => return Ok(()),
                Some((dir, e)) if !backoff.pause(deadline) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot remove cgroup {}: {e}", dir.display()),
                    ));
                }
                Some(_) => {}
            }
        }
    }

    /// The ids of every sandbox that has a cgroup left.
    pub fn existing(layout: Layout) -> Vec<SandboxId> {
        let mut ids = Vec::new();
        let found = layout
            .parents()
            .into_iter()
            .filter_map(|parent| fs::read_dir(parent).ok())
            .flatten()
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                SandboxId::parse(name.strip_prefix(PREFIX)?.strip_suffix(layout.suffix())?)
            });
        for id in found {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// Run by the host's systemd in the new scope (`$1` its name, then the command): checks that it
/// is in that scope, makes the supervisor and payload cgroups, and moves itself, and with it
/// what it execs, into the supervisor.
fn enter_supervisor() -> String {
    format!(
        r#"set -eu
scope=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
if [ "${{scope##*/}}" != "$1" ]; then
    echo "started in the cgroup $scope instead of the scope $1" >&2
    exit 1
fi
mkdir "$scope/{SUPERVISOR}" "$scope/{PAYLOAD}"
echo $$ > "$scope/{SUPERVISOR}/cgroup.procs"
shift
exec "$@"
"#
    )
}

fn collect_processes(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(procs.lines().filter_map(|line| line.parse::<i32>().ok()));
    }
    for child in subdirectories(dir) {
        collect_processes(&child, pids);
    }
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
}

/// rmdir of a cgroup and its children, children first; a tree already gone counts as removed.
fn remove_tree(dir: &Path) -> io::Result<()> {
    for child in subdirectories(dir) {
        remove_tree(&child)?;
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
