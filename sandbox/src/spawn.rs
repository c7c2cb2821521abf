//! Starting the sandbox's outermost process so that it dies with the process that launched it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread;

use rustix::io::Errno;
use rustix::process::{self, Signal};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` in a new session with PR_SET_PDEATHSIG(SIGKILL), so that it, and with it
/// the sandbox, dies even when the launcher is SIGKILLed. The kernel sends that signal when the
/// THREAD that forked exits, so every spawn happens on one thread that lives as long as the
/// process: a sandbox booted on a short-lived test thread must outlive that thread.
pub(crate) fn spawn_tied_to_process(mut command: Command) -> io::Result<Child> {
    static SPAWNER: Mutex<Option<mpsc::Sender<Request>>> = Mutex::new(None);

    let launcher = process::getpid();
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls are
    // sound: sigemptyset, pthread_sigmask and signal are, the rustix calls are single system
    // calls, and its errors are plain errnos: nothing allocates or takes a lock.
    unsafe {
        command.pre_exec(move || {
            // What the launcher blocked or ignored must not reach the sandbox: unshare(1) and
            // with it PID 1 must die of the hangup when script(1) is killed.
            let mut none = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            for signal in [
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGTERM,
                libc::SIGPIPE,
            ] {
                libc::signal(signal, libc::SIG_DFL);
            }
            process::setsid()?;
            process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // A launcher that died before the prctl will never send the signal (ESRCH: "no
            // such process").
            if process::getppid() != Some(launcher) {
                return Err(Errno::SRCH.into());
            }
            Ok(())
        });
    }

    let (reply, answer) = mpsc::channel();
    {
        let mut spawner = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
        if spawner.is_none() {
            let (requests, incoming) = mpsc::channel::<Request>();
            thread::Builder::new()
                .name("sandbox-spawner".into())
                .spawn(move || {
                    for (mut command, reply) in incoming {
                        let _ = reply.send(command.spawn());
                    }
                })?;
            *spawner = Some(requests);
        }
        if let Some(requests) = spawner.as_ref() {
            requests
                .send((command, reply))
                .map_err(|_| io::Error::other("the sandbox spawner thread is gone"))?;
        }
    }
    answer
        .recv()
        .map_err(|_| io::Error::other("the sandbox spawner thread is gone"))?
}
