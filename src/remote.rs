//! Remote hosts, reached as `systemctl -H` reaches them: one `ssh -xT HOST systemd-stdio-bridge`
//! per host, D-Bus spoken over its standard input and output.
//!
//! The tool starts ssh itself, on one end of a socket pair, and hands zbus the other end,
//! rather than giving zbus a `unixexec:` address to start ssh on its own: so it keeps the ssh
//! process, reads its exit code and standard error, and can tell an operator whether the host
//! refused the connection, refused the key, has no `systemd-stdio-bridge`, or did not answer.
//! The same ssh command line, with `-W`, carries the health probe to the Platform Server's
//! loopback port, and, with `journalctl`, the host's journal.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::time::Duration;

use futures_util::io::AsyncReadExt;
use zruntime::SharedRuntime;
use zruntime::process::{Child, Command};

/// The environment variable that names the ssh command line, as `GIT_SSH_COMMAND` does for git:
/// a program and options, run by the shell.
pub const SSH_VARIABLE: &str = "IMAGESERVING_SSH";

/// A host as operators write it: `[USER@]HOST[:PORT]`; an IPv6 address with a port is written
/// in brackets, `[::1]:2222`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub user: Option<String>,
    pub name: String,
    pub port: Option<u16>,
    /// Where ssh gives up on the host when it does not answer (`--connect-timeout`); ssh's own
    /// default is the kernel's TCP timeout, minutes.
    pub connect_timeout: Duration,
}

/// `--connect-timeout`'s default, in seconds.
pub const CONNECT_TIMEOUT_SECS: u64 = 10;

impl FromStr for Host {
    type Err = String;

    fn from_str(text: &str) -> Result<Host, String> {
        let text = text.trim();
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
            Some(_) => return Err(format!("{text:?} has an empty user name before @")),
            None => (None, text),
        };
        let (name, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (name, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{text:?} lacks the `]` that closes its address"))?;
            (name, after.strip_prefix(':'))
        } else if rest.matches(':').count() == 1 {
            let (name, port) = rest.split_once(':').unwrap_or((rest, ""));
            (name, Some(port))
        } else {
            (rest, None)
        };
        if name.is_empty() || name.starts_with('-') || name.contains(char::is_whitespace) {
            return Err(format!(
                "{text:?} is not a host: expected [USER@]HOST[:PORT]"
            ));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("{text:?} has no valid port after `:`"))
            })
            .transpose()?;
        Ok(Host {
            user,
            name: name.to_string(),
            port,
            connect_timeout: Duration::from_secs(CONNECT_TIMEOUT_SECS),
        })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.port, self.name.contains(':')) {
            (Some(port), true) => write!(f, "[{}]:{port}", self.name),
            (Some(port), false) => write!(f, "{}:{port}", self.name),
            (None, _) => f.write_str(&self.name),
        }
    }
}

impl Host {
    /// The ssh command that runs `remote` (words the remote shell reads) on the host. The
    /// user's ssh configuration, agent and known hosts apply; the options only keep ssh from
    /// ever prompting (hosts are reached in parallel) and from waiting on a dead host.
    pub fn ssh(&self, remote: &[&str]) -> std::process::Command {
        self.ssh_with(&[], remote)
    }

    /// The ssh command that connects its standard input and output to `port` on the host's
    /// loopback (`ssh -W`): no port is opened to the operator's network.
    pub fn forward(&self, address: &str, port: u16) -> std::process::Command {
        self.ssh_with(&["-W".into(), format!("{address}:{port}")], &[])
    }

    fn ssh_with(&self, options: &[String], remote: &[&str]) -> std::process::Command {
        let mut args: Vec<String> = vec![
            "-xT".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("ConnectTimeout={}", self.connect_timeout.as_secs()),
        ];
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.extend(options.iter().cloned());
        args.push("--".into());
        args.push(match &self.user {
            Some(user) => format!("{user}@{}", self.name),
            None => self.name.clone(),
        });
        args.extend(remote.iter().map(|word| quote(word)));
        let mut command = match std::env::var(SSH_VARIABLE) {
            // As git runs GIT_SSH_COMMAND: by the shell, the arguments appended.
            Ok(line) if !line.trim().is_empty() => {
                let mut command = std::process::Command::new("sh");
                command.args(["-c", &format!("{line} \"$@\""), "ssh"]);
                command
            }
            _ => std::process::Command::new("ssh"),
        };
        command.args(args);
        command
    }

    /// Opens the connection to the host's system bus: ssh runs `systemd-stdio-bridge` there,
    /// its standard input and output one end of a socket pair whose other end zbus gets.
    pub async fn bridge(&self) -> Result<(zbus::Connection, Tunnel), Unreachable> {
        let runtime = SharedRuntime::current().map_err(|e| self.cannot_run(e))?;
        let (ours, theirs) = UnixStream::pair().map_err(|e| self.cannot_run(e))?;
        let output = theirs.try_clone().map_err(|e| self.cannot_run(e))?;
        let mut child = Command::from(self.ssh(&["systemd-stdio-bridge"]))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(OwnedFd::from(output)))
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn(&runtime)
            .map_err(|e| self.cannot_run(e))?;
        let connecting = zbus::connection::Builder::unix_stream(ours).build();
        // ssh's ConnectTimeout bounds the connect; this bounds the login and the bridge too.
        let limit = self.connect_timeout * 2;
        match runtime.timeout(limit, connecting).await {
            Ok(Ok(connection)) => Ok((connection, Tunnel { _ssh: child })),
            Ok(Err(_)) => Err(self.diagnose(&mut child).await),
            Err(_) => Err(Unreachable {
                host: self.to_string(),
                reason: Reason::Timeout,
                detail: format!("no answer within {} s", limit.as_secs()),
            }),
        }
    }

    /// Why ssh ended before the bus answered: its exit code and what it wrote.
    async fn diagnose(&self, child: &mut Child<zruntime::Shared>) -> Unreachable {
        let mut complaint = String::new();
        if let Some(stderr) = child.stderr.as_mut() {
            let _ = stderr.read_to_string(&mut complaint).await;
        }
        let status = child.status().await.ok();
        Unreachable::from_ssh(self, status, &complaint)
    }

    fn cannot_run(&self, e: io::Error) -> Unreachable {
        Unreachable {
            host: self.to_string(),
            reason: Reason::NoSsh,
            detail: format!("cannot run ssh: {e}"),
        }
    }
}

/// The ssh process a remote connection runs over; ending it (on drop) ends the connection.
pub struct Tunnel {
    _ssh: Child<zruntime::Shared>,
}

/// Why a host could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Nothing listens on the host's ssh port.
    Refused,
    /// The host refused the key, or its host key is not the one known.
    Authentication,
    /// ssh logged in, but the host has no `systemd-stdio-bridge` (no systemd).
    NoBridge,
    /// The host did not answer in time.
    Timeout,
    /// The host name does not resolve.
    UnknownHost,
    /// ssh itself cannot be run here.
    NoSsh,
    /// Anything else ssh reported.
    Other,
}

impl Reason {
    /// The word `status --json` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Authentication => "authentication",
            Reason::NoBridge => "no-bridge",
            Reason::Timeout => "timeout",
            Reason::UnknownHost => "unknown-host",
            Reason::NoSsh => "no-ssh",
            Reason::Other => "ssh",
        }
    }

    /// The reason in a few words, as a status row shows it.
    pub fn words(self) -> &'static str {
        match self {
            Reason::Refused => "ssh refused",
            Reason::Authentication => "authentication failed",
            Reason::NoBridge => "no systemd-stdio-bridge",
            Reason::Timeout => "timeout",
            Reason::UnknownHost => "unknown host",
            Reason::NoSsh => "no ssh",
            Reason::Other => "ssh failed",
        }
    }

    /// What to do about it.
    fn advice(self) -> &'static str {
        match self {
            Reason::Refused => "is sshd running on the host, on the port given?",
            Reason::Authentication => {
                "check the key the agent or ~/.ssh/config offers, and the host's entry in \
                 known_hosts (`ssh HOST true` shows the whole story)"
            }
            Reason::NoBridge => "the host needs systemd (its systemd-stdio-bridge)",
            Reason::Timeout => "is the host up and reachable?",
            Reason::UnknownHost => "check the host name",
            Reason::NoSsh => "install openssh-client, or fix IMAGESERVING_SSH",
            Reason::Other => "run `ssh HOST systemd-stdio-bridge` to see more",
        }
    }
}

/// A host that could not be reached, and why: the one line `status` shows in its row.
#[derive(Clone, Debug)]
pub struct Unreachable {
    pub host: String,
    pub reason: Reason,
    /// What ssh said, in one line.
    pub detail: String,
}

impl Unreachable {
    /// Tells the failures apart by ssh's exit code (the remote command's when ssh got that
    /// far) and its messages.
    fn from_ssh(host: &Host, status: Option<ExitStatus>, stderr: &str) -> Unreachable {
        let code = status.and_then(|s| s.code());
        // Each reason and the words ssh (or the remote shell) says it with.
        const SIGNS: [(Reason, &[&str]); 5] = [
            (
                Reason::NoBridge,
                &[
                    "systemd-stdio-bridge: command not found",
                    "systemd-stdio-bridge: not found",
                ],
            ),
            (Reason::Refused, &["connection refused"]),
            (
                Reason::Authentication,
                &[
                    "permission denied",
                    "host key verification failed",
                    "too many authentication failures",
                ],
            ),
            (Reason::Timeout, &["timed out"]),
            (Reason::UnknownHost, &["could not resolve hostname"]),
        ];
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
            .collect();
        let sign = SIGNS.iter().find_map(|(reason, words)| {
            let line = lines.iter().find(|l| {
                let lower = l.to_ascii_lowercase();
                words.iter().any(|w| lower.contains(w))
            })?;
            Some((*reason, line.to_string()))
        });
        let (reason, detail) = match sign {
            Some(found) => found,
            None if code == Some(127) => (
                Reason::NoBridge,
                "the remote shell found no systemd-stdio-bridge".to_string(),
            ),
            None => (
                Reason::Other,
                lines.last().map_or_else(
                    || match status {
                        Some(status) => format!("ssh ended ({status}) before the bus answered"),
                        None => "ssh ended before the bus answered".to_string(),
                    },
                    |line| line.to_string(),
                ),
            ),
        };
        Unreachable {
            host: host.to_string(),
            reason,
            detail,
        }
    }

    /// The reason in words, without the host: `authentication failed (Permission denied …)`.
    pub fn why(&self) -> String {
        format!("{} ({})", self.reason.words(), self.detail)
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach {}: {}; {}",
            self.host,
            self.why(),
            self.reason.advice()
        )
    }
}

/// A word as the remote shell must see it: quoted unless it is plainly safe.
fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_=./:,@+%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_read_as_operators_write_them() {
        let host: Host = "ops@web-1.example:2222".parse().unwrap();
        assert_eq!(host.user.as_deref(), Some("ops"));
        assert_eq!(host.name, "web-1.example");
        assert_eq!(host.port, Some(2222));
        assert_eq!(host.to_string(), "ops@web-1.example:2222");
        let v6: Host = "[::1]:22".parse().unwrap();
        assert_eq!((v6.name.as_str(), v6.port), ("::1", Some(22)));
        assert_eq!(v6.to_string(), "[::1]:22");
        let bare: Host = "fe80::1".parse().unwrap();
        assert_eq!((bare.name.as_str(), bare.port), ("fe80::1", None));
        for bad in ["", "-oProxyCommand=x", "a:0", "a:port", "@a", "[::1"] {
            assert!(bad.parse::<Host>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_failures_are_told_apart() {
        let host: Host = "a".parse().unwrap();
        let reason = |text: &str| Unreachable::from_ssh(&host, None, text).reason;
        assert_eq!(
            reason("ssh: connect to host a port 22: Connection refused\n"),
            Reason::Refused
        );
        assert_eq!(
            reason("root@a: Permission denied (publickey).\n"),
            Reason::Authentication
        );
        assert_eq!(
            reason("Host key verification failed.\n"),
            Reason::Authentication
        );
        assert_eq!(
            reason("ssh: connect to host a port 22: Connection timed out\n"),
            Reason::Timeout
        );
        assert_eq!(
            reason("bash: line 1: systemd-stdio-bridge: command not found\n"),
            Reason::NoBridge
        );
    }

    #[test]
    fn remote_words_are_quoted_for_the_shell() {
        assert_eq!(
            quote("--unit=imageserving-es.service"),
            "--unit=imageserving-es.service"
        );
        assert_eq!(
            quote("--since=2026-11-30 12:00"),
            "'--since=2026-11-30 12:00'"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
