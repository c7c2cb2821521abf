//! Removal of sandboxes nobody will tear down: those whose launcher died (SIGKILL, abort), and
//! at exit those of this process that were never dropped (kept in a static, leaked). Only
//! those: other live test processes may be using their sandboxes right now.

use std::fs;
use std::io;
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use crate::cgroups::{HarnessCgroups, Layout};
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
    let layout = Layout::of_host()?;
    let failures: Vec<String> = stale_sandboxes(layout)
        .into_iter()
        .filter_map(|id| reap(layout, &id).err().map(|e| format!("{id}: {e}")))
        .collect();
    if !failures.is_empty() {
        anyhow::bail!(
            "cannot remove stale sandboxes ({}); kill their processes and remove their \
             harness_imageserving_* cgroups by hand",
            failures.join("; ")
        );
    }
    Ok(())
}

/// Sandboxes with a state directory or a cgroup left whose launcher no longer runs.
fn stale_sandboxes(layout: Layout) -> Vec<SandboxId> {
    let mut ids = HarnessCgroups::existing(layout);
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

fn reap(layout: Layout, id: &SandboxId) -> io::Result<()> {
    let deadline = Instant::now() + REAP_TIMEOUT;
    let cgroups = HarnessCgroups::of(layout, id);
    // Its PID 1 is in the cgroups; killing it ends the whole namespace (and its unshare).
    if !cgroups.kill_processes(deadline) {
        return Err(io::Error::other("its processes survive SIGKILL"));
    }
    cgroups.remove(deadline)?;
    StateDir::of(id).remove()
}

/// The sandboxes of this process that are not torn down yet.
static LIVE: Mutex<Vec<SandboxId>> = Mutex::new(Vec::new());

/// Notes a sandbox of this process, to be removed at exit unless torn down before.
pub(crate) fn track(id: SandboxId) {
    static AT_EXIT: Once = Once::new();
    // SAFETY: registers a plain function without arguments; atexit only fails without memory,
    // and then sandboxes left at exit are still removed by the next process's first boot.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(remove_live_sandboxes);
    });
    LIVE.lock().unwrap_or_else(PoisonError::into_inner).push(id);
}

/// Forgets a sandbox that was torn down.
pub(crate) fn forget(id: &SandboxId) {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|live| live != id);
}

/// At exit: statics are never dropped, so a sandbox kept in one is torn down here (killed, not
/// halted: nothing inside matters any more).
extern "C" fn remove_live_sandboxes() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(PoisonError::into_inner));
    // Sandboxes were booted, so the layout is known.
    let Ok(layout) = Layout::of_host() else {
        return;
    };
    for id in live {
        if let Err(e) = reap(layout, &id) {
            eprintln!("cannot remove the sandbox {id} at exit: {e}");
        }
    }
}
