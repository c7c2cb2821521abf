//! Signals for the `imageserving-sandbox` binary: SIGINT, SIGQUIT, SIGTERM and SIGHUP tear the
//! sandbox down. Killing the process would leave the sandbox to the next run's stale cleanup;
//! killing the `nsenter` that runs the command would orphan its child inside the sandbox to the
//! host's init, and a halt waits until that init reaps it. So the signals are read from a
//! signalfd, the command and its nsenter ignore the keyboard's signals, and the teardown (which
//! kills what still runs inside) ends the command.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// The signals that end a run.
const ENDING: [i32; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];
/// The signals a terminal sends to its whole foreground process group.
const KEYBOARD: [i32; 2] = [libc::SIGINT, libc::SIGQUIT];

pub(crate) struct Interrupts {
    signals: OwnedFd,
}

impl Interrupts {
    /// Blocks the ending signals and opens a signalfd for them. Call first thing in `main`,
    /// before any thread exists: threads only inherit the blocked set.
    pub fn watch() -> io::Result<Self> {
        let set = signal_set(&ENDING);
        // SAFETY: `set` is an initialised signal set.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: a new descriptor for an initialised set; -1 and errno on failure.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        Ok(Self {
            signals: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Makes `command` start with no signal blocked, and deaf to the keyboard's signals: a
    /// Ctrl-C reaches this process, which tears the sandbox down and so ends the command.
    pub fn prepare(command: &mut Command) {
        // SAFETY: runs between fork and exec; pthread_sigmask and signal are async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                let none = signal_set(&[]);
                libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                for signal in KEYBOARD {
                    libc::signal(signal, libc::SIG_IGN);
                }
                Ok(())
            });
        }
    }

    /// The signal received so far, if any, without waiting.
    pub fn received(&self) -> io::Result<Option<i32>> {
        self.wait(&[], 0)
    }

    /// Waits until `child` exits (None) or a signal arrives (Some(signal)).
    pub fn wait_for(&self, child: &Child) -> io::Result<Option<i32>> {
        // SAFETY: pidfd_open takes a pid and flags; the child is not reaped yet, so its pid is
        // still its own.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
        if pidfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
        self.wait(&[pidfd.as_raw_fd()], -1)
    }

    /// Polls the signalfd and `others` (-1 = no timeout); a signal wins over the others.
    fn wait(&self, others: &[RawFd], timeout_ms: i32) -> io::Result<Option<i32>> {
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.signals.as_raw_fd())
            .chain(others.iter().copied())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        loop {
            // SAFETY: `fds` is a valid array of pollfd of the given length.
            let ready =
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if ready >= 0 {
                break;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        if fds[0].revents & libc::POLLIN == 0 {
            return Ok(None);
        }
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`.
        let read = unsafe { libc::read(self.signals.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if read != size as isize {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel filled the whole structure.
        Ok(Some(unsafe { info.assume_init() }.ssi_signo as i32))
    }
}

fn signal_set(signals: &[i32]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset adds valid signal numbers to it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &signal in signals {
            libc::sigaddset(set.as_mut_ptr(), signal);
        }
        set.assume_init()
    }
}
