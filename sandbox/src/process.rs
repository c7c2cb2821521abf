//! Host processes as seen through /proc, identified robustly against pid reuse.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

use crate::poll::Backoff;

/// A process named by its pid AND its start time: a pid alone may belong to a newer process
/// once the one we knew is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcessStamp {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessStamp {
    /// The stamp of the running process `pid`, if there is one (zombies count as gone).
    pub fn of(pid: i32) -> Option<Self> {
        match read_stat(pid)? {
            ('Z', _) => None,
            (_, start_time) => Some(Self { pid, start_time }),
        }
    }

    /// The stamp of the calling process.
    pub fn current() -> io::Result<Self> {
        let pid = std::process::id() as i32;
        Self::of(pid).ok_or_else(|| io::Error::other("/proc does not show the calling process"))
    }

    /// Whether this very process still runs (not exited, not a zombie).
    pub fn is_alive(self) -> bool {
        Self::of(self.pid) == Some(self)
    }

    /// Whether the process has fully disappeared from /proc, zombie included.
    pub fn is_gone(self) -> bool {
        read_stat(self.pid).map(|(_, start)| start) != Some(self.start_time)
    }

    /// Waits until the process has fully disappeared; false if it is still there at `deadline`.
    pub fn wait_gone(self, deadline: Instant) -> bool {
        Backoff::new().wait_until(deadline, || self.is_gone())
    }
}

/// The state letter and the start time (field 22, in clock ticks since boot) of `pid`.
fn read_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // The state is field 3, so the start time (field 22) is 19 fields further.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

/// The facts of /proc/PID/status the sandbox needs.
#[derive(Debug)]
pub(crate) struct Status {
    pub ppid: i32,
    /// The pid in each nested PID namespace, outermost first (`NSpid:`).
    pub ns_pids: Vec<i32>,
}

impl Status {
    pub fn of(pid: i32) -> Option<Self> {
        let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| {
                    value
                        .split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect::<Vec<i32>>()
                })
        };
        Some(Self {
            ppid: *field("PPid:")?.first()?,
            ns_pids: field("NSpid:")?,
        })
    }

    /// Whether this process is the PID 1 of a PID namespace directly below the host's.
    pub fn is_namespace_init(&self) -> bool {
        self.ns_pids.len() == 2 && self.ns_pids[1] == 1
    }
}

/// Every pid currently listed in /proc.
pub(crate) fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Finds the PID 1 of a new PID namespace among the descendants of `ancestor`.
pub(crate) fn find_namespace_init(ancestor: i32) -> Option<(i32, Status)> {
    let mut statuses: Vec<(i32, Status)> = all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, Status::of(pid)?)))
        .collect();
    let descends = |mut pid: i32| {
        for _ in 0..64 {
            if pid == ancestor {
                return true;
            }
            match statuses.iter().find(|(p, _)| *p == pid) {
                Some((_, status)) if status.ppid > 1 => pid = status.ppid,
                _ => return false,
            }
        }
        false
    };
    let init = statuses
        .iter()
        .position(|(pid, status)| status.is_namespace_init() && descends(*pid))?;
    Some(statuses.swap_remove(init))
}

/// The processes inside the PID namespace of `init` whose parent is outside it (programs run
/// through nsenter), each with its parent.
pub(crate) fn entered_processes(init: ProcessStamp) -> Vec<(ProcessStamp, ProcessStamp)> {
    let namespace = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(inside) = namespace(init.pid) else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|&pid| pid != init.pid && namespace(pid).as_ref() == Some(&inside))
        .filter_map(|pid| {
            let parent = Status::of(pid)?.ppid;
            let outside = namespace(parent).is_some_and(|ns| ns != inside);
            outside.then_some((ProcessStamp::of(pid)?, ProcessStamp::of(parent)?))
        })
        .collect()
}

/// A pidfd: signals sent through it can only reach the process it was opened for.
pub(crate) struct PidFd {
    fd: OwnedFd,
    pub stamp: ProcessStamp,
}

impl PidFd {
    /// Opens a pidfd for `stamp`, and checks afterwards that the pid still names that process.
    pub fn open(stamp: ProcessStamp) -> io::Result<Self> {
        let pid = Pid::from_raw(stamp.pid).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is no pid", stamp.pid),
            )
        })?;
        let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty())?;
        if !stamp.is_alive() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the process exited",
            ));
        }
        Ok(Self { fd, stamp })
    }

    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // libc, not rustix: rustix cannot name SIGRTMIN+3 (halt) as a signal to send.
        // SAFETY: plain syscall on a descriptor we own; a null siginfo means "like kill(2)".
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                0usize,
                0u32,
            )
        };
        match rc {
            0 => Ok(()),
            _ => match io::Error::last_os_error() {
                // Already exited: the signal has nothing left to do.
                e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Waits for the process to exit (it may still be a zombie); false on timeout.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(left) = Timespec::try_from(left) else {
                return false;
            };
            let mut pollfd = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut pollfd, Some(&left)) {
                Ok(0) => return false,
                Ok(_) => return true,
                Err(Errno::INTR) => continue,
                Err(_) => return !self.stamp.is_alive(),
            }
        }
    }
}
