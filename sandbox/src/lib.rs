//! A real systemd, booted as PID 1 of new PID, mount, UTS, IPC and network namespaces, with its
//! own system bus, journal and loopback: the integration tests and the quick start talk to it
//! exactly as to the system manager of a host booted with systemd, on hosts that were not.
//!
//! ```no_run
//! let sandbox = imageserving_sandbox::Sandbox::boot()?;
//! let output = sandbox.systemctl(&["is-system-running"])?;
//! assert!(output.status.success());
//! sandbox.shutdown()?;
//! # anyhow::Ok(())
//! ```
//!
//! Nothing is left behind: a sandbox is torn down by `shutdown`, on drop (also when a test
//! panics) and at exit (one kept in a static is never dropped); it dies with its launcher even
//! on SIGKILL, and the first boot of every process removes what such launchers left.
//!
//! Inside, the sandbox shares the host's file systems except /run, /dev, /etc/systemd and /var
//! (lib, cache, log, tmp), which are its own. Its services' PrivateTmp= hides the host's /tmp
//! from them, and ProtectHome= hides /root: give hardened services files elsewhere (for example
//! under `CARGO_TARGET_TMPDIR`).
//!
//! For test writers:
//! - Sandboxes are independent: boot them from any number of threads and processes at once. A
//!   boot and its teardown cost about 0.35 s of CPU (on 2 cores, 10 sandboxes booted together
//!   are all up after about 2 s). Each sandbox takes 4 inotify instances and root may own 128
//!   (`fs.inotify.max_user_instances`): some 30 sandboxes can run at once.
//! - Stop a program started with [`Sandbox::command`] by ending the program (`kill` run inside,
//!   `systemctl kill`), not by killing the `nsenter` process the `Child` stands for: that orphans
//!   the program to the host's init. Programs still running at teardown are killed there.
//! - systemd's start rate limit (5 starts in 10 s per unit) applies as on a real host.

mod base_units;
mod bus;
mod cgroups;
mod init_script;
mod launch;
mod ownership;
mod poll;
mod process;
mod reaper;
mod spawn;
mod state_dir;
mod units;

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result, anyhow, bail};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::bus::Bus;
use crate::cgroups::Layout;
use crate::launch::Launch;
pub use crate::reaper::remove_stale_sandboxes;

/// For test suites, before their first sandbox: on a host that cannot run one (not root, or
/// cgroups the sandbox cannot use), ends the process with one line saying what is missing and
/// what to do, rather than failing every test alike.
pub fn exit_unless_supported_host() {
    if let Err(e) = Layout::of_host() {
        // Written to stderr itself: the test harness captures eprintln! and would lose it.
        let _ = writeln!(io::stderr(), "imageserving-sandbox: {e:#}");
        std::process::exit(1);
    }
}

/// A booted sandbox. Dropping it tears it down (ignoring errors, which are printed).
pub struct Sandbox {
    launch: Launch,
    pid1: i32,
    net_ns: OwnedFd,
}

// Tests share a sandbox between threads.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Sandbox>()
};

impl Sandbox {
    /// Boots a fresh sandbox and waits until systemd owns its name on the sandbox's bus and the
    /// boot transaction (journald, D-Bus) is done. The first boot of a process first removes
    /// stale sandboxes: those whose launching process is gone.
    pub fn boot() -> Result<Sandbox> {
        reaper::remove_stale_sandboxes_once();
        let launch = Launch::boot().context("cannot boot a systemd sandbox")?;
        let init = launch
            .init()
            .context("the sandbox booted without a PID 1")?;
        let (pid1, net_ns) = (init.pidfd.stamp.pid, init.net_ns.try_clone()?);
        Ok(Sandbox {
            launch,
            pid1,
            net_ns,
        })
    }

    /// The D-Bus address of the sandbox's system bus, usable from the host.
    pub fn bus_address(&self) -> String {
        Bus::at(&self.launch.state.bus_socket()).address()
    }

    /// The host pid of the sandbox's PID 1.
    pub fn pid1(&self) -> i32 {
        self.pid1
    }

    /// Whether the sandbox's systemd has the cgroup `controller` (`memory`, `pids`, ...). Where
    /// it lacks one, systemd reports that controller's figures as not set: the v2 hierarchy of a
    /// container has no controllers when the kernel binds them to v1 hierarchies.
    pub fn has_controller(&self, controller: &str) -> bool {
        let cgroup_fs = PathBuf::from(format!("/proc/{}/root/sys/fs/cgroup", self.pid1));
        match fs::read_to_string(cgroup_fs.join("cgroup.controllers")) {
            Ok(unified) => unified.split_whitespace().any(|c| c == controller),
            Err(_) => cgroup_fs.join(controller).is_dir(),
        }
    }

    /// The sandbox's state directory: `units/`, `dbus/`, `journal/`, `console.log`, ...
    pub fn state_dir(&self) -> &Path {
        self.launch.state.path()
    }

    /// Copies every unit file (`*.service`, `*.target`, `*.slice`, `*.socket`) of `units_dir`
    /// into the sandbox, points every service's `ExecStart=` at the binary of the same name in
    /// `bin_dir` (a drop-in `<unit>.d/00-binary.conf`, same arguments), then reloads. A
    /// relative `bin_dir` is taken from the current directory: systemd wants absolute paths.
    pub fn install_units(&self, units_dir: &Path, bin_dir: &Path) -> Result<()> {
        let bin_dir = &std::path::absolute(bin_dir).with_context(|| {
            format!("cannot resolve the binary directory {}", bin_dir.display())
        })?;
        let read_error = || format!("cannot read the unit directory {}", units_dir.display());
        for entry in fs::read_dir(units_dir).with_context(read_error)? {
            let entry = entry.with_context(read_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !units::is_unit_file(&name) || !entry.path().is_file() {
                continue;
            }
            let text = fs::read_to_string(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            self.write_unit_file(&name, &text)?;
            if name.ends_with(".service")
                && let Some(drop_in) = units::exec_start_override(&text, bin_dir)
            {
                self.write_drop_in(&name, "00-binary", &drop_in)?;
            }
        }
        self.daemon_reload()
    }

    /// Writes a unit file into the sandbox (no reload).
    pub fn write_unit_file(&self, unit: &str, contents: &str) -> Result<()> {
        units::check_unit_name(unit)?;
        let path = self.units_dir().join(unit);
        fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Writes the drop-in `<unit>.d/<name>.conf` and reloads; the reload has finished when this
    /// returns.
    pub fn drop_in(&self, unit: &str, name: &str, contents: &str) -> Result<()> {
        self.write_drop_in(unit, name, contents)?;
        self.daemon_reload()
    }

    /// Writes the drop-in `<unit>.d/<name>.conf` without reloading (call `daemon_reload` after
    /// writing several).
    pub fn write_drop_in(&self, unit: &str, name: &str, contents: &str) -> Result<()> {
        units::check_unit_name(unit)?;
        if name.is_empty() || name.contains('/') {
            return Err(anyhow!(
                "{name:?} is not a drop-in name: use a file name without .conf"
            ));
        }
        let dir = self.units_dir().join(format!("{unit}.d"));
        let path = dir.join(format!("{name}.conf"));
        fs::create_dir_all(&dir)
            .and_then(|()| fs::write(&path, contents))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Removes a unit file and its drop-ins, then reloads: the unit is then "not-found".
    pub fn remove_unit_file(&self, unit: &str) -> Result<()> {
        units::check_unit_name(unit)?;
        let path = self.units_dir().join(unit);
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        let drop_ins = self.units_dir().join(format!("{unit}.d"));
        if drop_ins.exists() {
            fs::remove_dir_all(&drop_ins)
                .with_context(|| format!("cannot remove {}", drop_ins.display()))?;
        }
        self.daemon_reload()
    }

    /// `systemctl daemon-reload` inside; returns once the reload is done.
    pub fn daemon_reload(&self) -> Result<()> {
        let output = self.systemctl(&["daemon-reload"])?;
        if !output.status.success() {
            bail!(
                "daemon-reload in the sandbox failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// A command that runs `program` inside the sandbox (`nsenter` into its mount, PID, network,
    /// UTS and IPC namespaces, in the caller's working directory): there /run/dbus is the
    /// sandbox's bus, `systemctl` talks to the sandbox's systemd and 127.0.0.1 is the sandbox's
    /// loopback. Arguments added to the command go to `program`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.pid1()))
            .args(["--mount", "--pid", "--net", "--uts", "--ipc", "--wd=."])
            .arg("--")
            .arg(program)
            // Inside, the default bus path is the sandbox's; an inherited address would not be.
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS");
        command
    }

    /// Runs `systemctl ARGS` inside the sandbox; the exit status is left to the caller.
    pub fn systemctl(&self, args: &[&str]) -> Result<Output> {
        self.command("systemctl")
            .args(args)
            .output()
            .context("cannot run systemctl in the sandbox (is nsenter installed?)")
    }

    /// A TCP connection made from inside the sandbox's network namespace, so that tests can talk
    /// to components listening on the sandbox's loopback.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let network = self.network()?;
        // A throwaway thread enters the namespace; the socket keeps the namespace it was
        // created in.
        thread::spawn(move || {
            network.enter()?;
            TcpStream::connect(addr)
        })
        .join()
        .map_err(|_| io::Error::other("the thread connecting inside the sandbox panicked"))?
    }

    /// The sandbox's network namespace, for a thread that makes many connections there.
    pub fn network(&self) -> io::Result<Network> {
        Ok(Network(Arc::new(self.net_ns.try_clone()?)))
    }

    /// The journal of one unit (`journalctl -u UNIT -o cat`), for test failure messages.
    pub fn journal(&self, unit: &str) -> String {
        let journal = self.launch.state.journal();
        let output = Command::new("journalctl")
            .arg("--directory")
            .arg(&journal)
            .args(["--no-pager", "--output=cat", "--unit", unit])
            .output();
        match output {
            Ok(output) => {
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                text
            }
            Err(e) => format!("(cannot run journalctl: {e})"),
        }
    }

    /// Halts the sandbox (SIGKILL if the halt takes more than a few seconds), waits for all of
    /// its processes to be gone, then removes its cgroups and its state directory.
    pub fn shutdown(mut self) -> Result<()> {
        self.launch.teardown()
    }

    fn units_dir(&self) -> PathBuf {
        self.launch.state.units()
    }
}

/// A sandbox's network namespace, shared by the threads that enter it.
#[derive(Clone, Debug)]
pub struct Network(Arc<OwnedFd>);

impl Network {
    /// Moves the calling thread into the namespace: setns() changes that thread alone, and
    /// the sockets it then makes talk to the sandbox's loopback.
    pub fn enter(&self) -> io::Result<()> {
        move_into_link_name_space(self.0.as_fd(), Some(LinkNameSpaceType::Network))?;
        Ok(())
    }
}
