//! Booting systemd as PID 1 of new namespaces, and tearing all of it down again.

use std::fs;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::bus::Bus;
use crate::cgroups::{HarnessCgroups, Layout};
use crate::ownership::SandboxId;
use crate::poll::Backoff;
use crate::process::{self, PidFd, ProcessStamp, Status, find_namespace_init};
use crate::reaper;
use crate::state_dir::StateDir;

/// Generous for a loaded 2-core machine booting many sandboxes; a boot alone takes ~0.2 s.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a halt may stop units before PID 1 is SIGKILLed.
const HALT_TIMEOUT: Duration = Duration::from_secs(15);
/// For programs run through nsenter to be reaped once killed.
const ENTERED_TIMEOUT: Duration = Duration::from_secs(2);
/// For everything after the halt: processes to vanish, cgroups to empty.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of the console log quoted when a boot fails.
const CONSOLE_LINES: usize = 40;

/// The namespace's PID 1, and the `unshare` that forked it.
pub(crate) struct Init {
    pub pidfd: PidFd,
    pub net_ns: OwnedFd,
    unshare: Option<ProcessStamp>,
}

/// Everything one boot created on the host. Dropping it tears all of it down.
pub(crate) struct Launch {
    pub id: SandboxId,
    pub state: StateDir,
    cgroups: HarnessCgroups,
    script: Option<Child>,
    init: Option<Init>,
    torn_down: bool,
}

impl Launch {
    /// Boots a sandbox and waits until systemd is on its bus and the boot transaction is done.
    /// On failure everything is torn down and the error quotes the console log.
    pub fn boot() -> Result<Self> {
        let layout = Layout::of_host()?;
        let (id, state) =
            StateDir::create().context("cannot create the sandbox's state directory")?;
        reaper::track(id);
        let mut launch = Self {
            id,
            state,
            cgroups: HarnessCgroups::of(layout, &id),
            script: None,
            init: None,
            torn_down: false,
        };
        let deadline = Instant::now() + BOOT_TIMEOUT;
        if let Err(error) = launch
            .start(deadline)
            .and_then(|()| launch.wait_ready(deadline))
        {
            let console = launch.state.console_tail(CONSOLE_LINES);
            let teardown = match launch.teardown() {
                Ok(()) => String::new(),
                Err(e) => format!(" (and tearing it down failed: {e:#})"),
            };
            bail!("{error:#}{teardown}\n--- sandbox console, last lines ---\n{console}");
        }
        Ok(launch)
    }

    pub fn init(&self) -> Option<&Init> {
        self.init.as_ref()
    }

    fn start(&mut self, deadline: Instant) -> Result<()> {
        self.state
            .populate(&self.cgroups)
            .context("cannot prepare the sandbox's state directory")?;
        let unshare = format!(
            "exec unshare --pid --fork --kill-child --mount --propagation private --uts --ipc --net \
             --mount-proc {}",
            self.state.init_script().display()
        );
        // `script` gives PID 1 a pty for /dev/console and logs it; it runs its command with $SHELL.
        let line = self
            .cgroups
            .confine(vec![
                "script".into(),
                "-qfec".into(),
                unshare.into(),
                self.state.console_log().into(),
            ])
            .context("cannot create the sandbox's cgroups")?;
        let mut script = Command::new(&line[0]);
        script
            .args(&line[1..])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::File::create(self.state.launcher_log())
                    .context("cannot create the sandbox's launcher log")?,
            );
        self.script =
            Some(crate::spawn::spawn_tied_to_process(script).context("cannot run script(1)")?);
        self.init = Some(self.find_init(deadline)?);
        Ok(())
    }

    /// Finds the namespace's PID 1 among the descendants of `script`.
    fn find_init(&mut self, deadline: Instant) -> Result<Init> {
        let mut backoff = Backoff::new();
        loop {
            let script = self
                .script
                .as_mut()
                .ok_or_else(|| anyhow!("script(1) was not started"))?;
            if let Some((pid, status)) = find_namespace_init(script.id() as i32) {
                let opened = ProcessStamp::of(pid).and_then(|stamp| PidFd::open(stamp).ok());
                // Checked again through the pidfd: the pid must still be that namespace's PID 1.
                if let Some(pidfd) =
                    opened.filter(|_| Status::of(pid).is_some_and(|s| s.is_namespace_init()))
                {
                    let net_ns = fs::File::open(format!("/proc/{pid}/ns/net"))?.into();
                    return Ok(Init {
                        pidfd,
                        net_ns,
                        unshare: ProcessStamp::of(status.ppid),
                    });
                }
            }
            if let Some(status) = script.try_wait()? {
                bail!("the sandbox's PID 1 exited during setup ({status})");
            }
            if !backoff.pause(deadline) {
                bail!("the sandbox's PID 1 did not appear within {BOOT_TIMEOUT:?}");
            }
        }
    }

    fn wait_ready(&mut self, deadline: Instant) -> Result<()> {
        let bus = Bus::at(&self.state.bus_socket());
        let mut backoff = Backoff::new();
        let mut last_error = None;
        loop {
            if let Some(status) = self
                .script
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten()
            {
                bail!("the sandbox's PID 1 exited during boot ({status})");
            }
            // Errors are expected while dbus-daemon and systemd start up: retried.
            match bus
                .systemd_is_on_bus()
                .and_then(|on| on.then(|| bus.system_state()).transpose())
            {
                Ok(Some(state)) if state == "running" => return Ok(()),
                Ok(Some(state)) if state != "initializing" && state != "starting" => {
                    bail!("the sandbox booted into state {state:?} instead of \"running\"")
                }
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
            if !backoff.pause(deadline) {
                let cause = last_error
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default();
                bail!("systemd was not up on the sandbox's bus within {BOOT_TIMEOUT:?}{cause}");
            }
        }
    }

    /// Halts PID 1 (SIGKILL if the halt takes too long), waits for every process of the sandbox
    /// to be gone, then removes its cgroups and its state directory. Runs once; later calls do
    /// nothing.
    pub fn teardown(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Ok(());
        }
        let mut problems = Vec::new();
        if let Some(init) = &self.init {
            end_entered_processes(init.pidfd.stamp);
            // SIGRTMIN+3 = start halt.target: every unit is stopped, then the namespace ends.
            let halted = init.pidfd.signal(libc::SIGRTMIN() + 3).is_ok()
                && init.pidfd.wait_exit(HALT_TIMEOUT);
            if !halted && let Err(e) = init.pidfd.signal(libc::SIGKILL) {
                problems.push(format!("cannot kill the sandbox's PID 1: {e}"));
            }
        }
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        // Only matters when PID 1 was never found: a namespace's processes die with its PID 1.
        if !self.cgroups.kill_processes(deadline) {
            problems.push("processes are left in the sandbox's cgroups".to_owned());
        }
        if let Some(script) = &mut self.script {
            let exited =
                Backoff::new().wait_until(deadline, || !matches!(script.try_wait(), Ok(None)));
            if !exited {
                let _ = script.kill();
                let _ = script.wait();
            }
        }
        if let Some(init) = &self.init {
            let processes = [Some(init.pidfd.stamp), init.unshare];
            if !processes
                .into_iter()
                .flatten()
                .all(|p| p.wait_gone(deadline))
            {
                problems.push("the sandbox's PID 1 or unshare(1) did not go away".to_owned());
            }
        }
        if let Err(e) = self.cgroups.remove(deadline) {
            problems.push(e.to_string());
        }
        if let Err(e) = self.state.remove() {
            problems.push(e.to_string());
        }
        if !problems.is_empty() {
            bail!(
                "sandbox {} was not fully removed: {}",
                self.id,
                problems.join("; ")
            );
        }
        reaper::forget(&self.id);
        Ok(())
    }
}

/// Kills the programs still running inside through nsenter. Left to the halt, they would stall
/// it: systemd-shutdown SIGSTOPs every process before its final SIGTERM round, nsenter stops
/// itself when its child stops, and a stopped nsenter never reaps its child, for which the halt
/// then waits.
fn end_entered_processes(init: ProcessStamp) {
    let entered = process::entered_processes(init);
    for (program, nsenter) in &entered {
        for (process, signal) in [(program, libc::SIGKILL), (nsenter, libc::SIGCONT)] {
            if let Ok(pidfd) = PidFd::open(*process) {
                let _ = pidfd.signal(signal);
            }
        }
    }
    // Reaped by their nsenter at once; a program whose nsenter died waits for the host's init.
    let deadline = Instant::now() + ENTERED_TIMEOUT;
    for (program, _) in entered {
        program.wait_gone(deadline);
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("{e:#}");
        }
    }
}
