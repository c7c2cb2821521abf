//! The listening socket: taken from systemd when it passes one (socket activation, so that
//! connections arriving while the daemon restarts wait in the kernel), bound otherwise.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::FromRawFd;

/// Where the listening socket came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Systemd,
    Bound,
}

/// Takes the first socket systemd passed (`LISTEN_FDS`, `LISTEN_PID`, fd 3), or binds
/// `fallback`. Must run before any thread starts: it unsets the variables so that they
/// do not leak into children, which is only sound while the process is single-threaded.
pub fn acquire(fallback: SocketAddr) -> io::Result<(TcpListener, Origin)> {
    // SAFETY: called from main before the runtime (or any other thread) exists.
    let mut fds = unsafe { sd_notify::listen_fds_and_unset_env() }?;
    if let Some(fd) = fds.next() {
        // SAFETY: systemd passed this descriptor to us alone (LISTEN_PID matched); we take
        // ownership of it exactly once.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        listener.local_addr().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the socket passed by systemd (fd {fd}) is not a TCP listener: {e}"),
            )
        })?;
        listener.set_nonblocking(true)?;
        return Ok((listener, Origin::Systemd));
    }
    Ok((bind(fallback)?, Origin::Bound))
}

/// A non-blocking socket listening on `address`, for the runtime to take.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
