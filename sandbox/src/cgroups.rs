//! The sandbox's own cgroup in each host hierarchy. systemd takes the cgroup it starts in as the
//! root it manages and moves every process found there under its init.scope: started in the
//! host's root cgroup it would swallow the whole machine.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::ownership::SandboxId;
use crate::poll::Backoff;
use crate::process::{PidFd, ProcessStamp};

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The hierarchies PID 1 is moved into. The private /sys/fs/cgroup of the sandbox shows a few
/// more, but PID 1 stays in their root: systemd does not manage them.
pub(crate) const HIERARCHIES: [&str; 7] = [
    "systemd", "unified", "cpuacct", "memory", "pids", "blkio", "devices",
];

const PREFIX: &str = "harness_imageserving_";
const SUFFIX: &str = ".slice";

/// `harness_imageserving_<id>.slice` in every hierarchy.
pub(crate) struct HarnessCgroups {
    name: String,
}

impl HarnessCgroups {
    pub fn of(id: &SandboxId) -> Self {
        Self {
            name: format!("{PREFIX}{id}{SUFFIX}"),
        }
    }

    /// The directory name, the same in every hierarchy.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        HIERARCHIES
            .iter()
            .map(|h| Path::new(CGROUP_FS).join(h).join(&self.name))
    }

    pub fn create(&self) -> io::Result<()> {
        for dir in self.dirs() {
            fs::create_dir(&dir).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        Ok(())
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

    /// Removes the cgroups depth-first. They empty asynchronously after their processes die
    /// (after a SIGKILL there are dozens), so busy ones are retried until `deadline`.
    pub fn remove(&self, deadline: Instant) -> io::Result<()> {
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

    /// The ids of every sandbox that has a cgroup left in any hierarchy.
    pub fn existing() -> Vec<SandboxId> {
        let mut ids = Vec::new();
        let found = HIERARCHIES
            .iter()
            .filter_map(|h| fs::read_dir(Path::new(CGROUP_FS).join(h)).ok())
            .flatten()
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                SandboxId::parse(name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?)
            });
        for id in found {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
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
