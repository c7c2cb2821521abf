//! Removal of sandboxes whose launcher died (SIGKILL, abort) before it could tear them down.
//! Only those: other live test processes may be using their sandboxes right now.

use std::fs;
use std::io;
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::cgroups::HarnessCgroups;
use crate::ownership::{STATE_ROOT, SandboxId};
use crate::state_dir::StateDir;

const REAP_TIMEOUT: Duration = Duration::from_secs(15);

/// Removes stale sandboxes once per process. Failures are reported on stderr, not returned: a
/// leftover that cannot be removed must not fail an unrelated boot.
pub(crate) fn remove_stale_sandboxes_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = remove_stale_sandboxes() {
            eprintln!("{e:#}");
        }
    });
}

/// Removes every sandbox (processes, cgroups, state directory) whose launching process is gone.
/// Sandboxes of live processes are never touched. `Sandbox::boot` calls this once per process.
pub fn remove_stale_sandboxes() -> anyhow::Result<()> {
    let failures: Vec<String> = stale_sandboxes()
        .into_iter()
        .filter_map(|id| reap(&id).err().map(|e| format!("{id}: {e}")))
        .collect();
    match failures.is_empty() {
        true => Ok(()),
        false => anyhow::bail!(
            "cannot remove stale sandboxes ({}); kill their processes and remove their \
             harness_imageserving_* cgroups by hand",
            failures.join("; ")
        ),
    }
}

/// Sandboxes with a state directory or a cgroup left whose launcher no longer runs.
fn stale_sandboxes() -> Vec<SandboxId> {
    let mut ids = HarnessCgroups::existing();
    let dirs = fs::read_dir(STATE_ROOT)
        .into_iter()
        .flatten()
        .filter_map(|entry| SandboxId::parse(entry.ok()?.file_name().to_str()?));
    for id in dirs {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.retain(SandboxId::is_stale);
    ids
}

fn reap(id: &SandboxId) -> io::Result<()> {
    let deadline = Instant::now() + REAP_TIMEOUT;
    let cgroups = HarnessCgroups::of(id);
    // Its PID 1 is in the cgroups; killing it ends the whole namespace (and its unshare).
    if !cgroups.kill_processes(deadline) {
        return Err(io::Error::other("its processes survive SIGKILL"));
    }
    cgroups.remove(deadline)?;
    StateDir::of(id).remove()
}
