//! SIGINT and SIGTERM for the `imageserving-sandbox` binary: instead of killing the process
//! (which would leave the sandbox to the next run's stale cleanup), they end the command running
//! in the sandbox, after which the sandbox is torn down as usual.

use std::io;
use std::mem::MaybeUninit;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use std::os::unix::process::ExitStatusExt;

#[derive(Default)]
struct State {
    /// The first signal received.
    signal: Option<i32>,
    /// The running command's pid; it stays a zombie (not reaped) while it is set here, so the
    /// pid cannot name another process when the watcher signals it.
    child: Option<i32>,
}

pub(crate) struct Interrupts {
    state: Arc<Mutex<State>>,
}

impl Interrupts {
    /// Blocks SIGINT and SIGTERM and takes them on a thread of their own. Call before any other
    /// thread starts: threads inherit the blocked set (spawned commands do not: std resets it).
    pub fn watch() -> io::Result<Self> {
        let set = signal_set();
        // SAFETY: `set` is an initialised signal set.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let state = Arc::new(Mutex::new(State::default()));
        let watcher = Arc::clone(&state);
        thread::Builder::new()
            .name("interrupts".into())
            .spawn(move || {
                loop {
                    let mut signal = 0;
                    // SAFETY: `set` is initialised and `signal` is a valid out pointer.
                    if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                        continue;
                    }
                    let mut state = watcher.lock().unwrap_or_else(PoisonError::into_inner);
                    state.signal.get_or_insert(signal);
                    if let Some(child) = state.child {
                        // SAFETY: plain kill(2) of a child not yet reaped (see `State::child`).
                        unsafe { libc::kill(child, libc::SIGTERM) };
                    }
                }
            })?;
        Ok(Self { state })
    }

    /// Runs `command` unless a signal came first, and returns the exit code to pass on: the
    /// command's, 128 + the signal that ended it, or 128 + the signal this process received.
    pub fn run(&self, command: &mut Command) -> io::Result<u8> {
        let mut child = {
            let mut state = self.lock();
            if let Some(signal) = state.signal {
                return Ok(128 + signal as u8);
            }
            let child = command.spawn()?;
            state.child = Some(child.id() as i32);
            child
        };
        wait_exit_without_reaping(child.id() as i32)?;
        let status = {
            let mut state = self.lock();
            state.child = None;
            child.wait()?
        };
        if let Some(signal) = self.lock().signal {
            return Ok(128 + signal as u8);
        }
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code as u8,
            (None, Some(signal)) => 128 + signal as u8,
            (None, None) => 1,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn signal_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset adds valid signal numbers to it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        set.assume_init()
    }
}

/// Waits until the child `pid` has exited, leaving it a zombie.
fn wait_exit_without_reaping(pid: i32) -> io::Result<()> {
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: waitid with a valid out pointer; WNOWAIT leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        match rc {
            0 => return Ok(()),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            _ => return Err(io::Error::last_os_error()),
        }
    }
}
