//! The tier: the hosts an operator names with `-H` and `--hosts-file`, and each command run
//! across them, one ssh connection a host. `status` reads every host at once; the actions run
//! in parallel (at most `--parallel` hosts at a time), or with `--rolling` one host after the
//! other, each only once the one before passed the health gate.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::{StreamExt, stream};
use zruntime::SharedRuntime;
use zruntime::process::Command;

use crate::control::{self, Action, ActionReport, Options};
use crate::exit::{Code, Failure};
use crate::remote::{Host, Reason};
use crate::stack::{Component, PS_SOCKET};
use crate::status::{StackStates, StackStatus};
use crate::systemd::{SocketProperties, Systemd};

/// How long the health gate waits between two probes of a host that is not healthy yet.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The hosts of `-H`, then those of `hosts_file`, each once, in the order given, each given up
/// on after `connect_timeout`.
pub fn hosts(
    given: &[Host],
    hosts_file: Option<&Path>,
    connect_timeout: Duration,
) -> Result<Vec<Host>, Failure> {
    let mut hosts = given.to_vec();
    if let Some(path) = hosts_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                Code::Usage,
                format!("cannot read the hosts file {}: {e}", path.display()),
            )
        })?;
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let host = line.parse().map_err(|e| {
                Failure::new(
                    Code::Usage,
                    format!("{}:{}: {e}", path.display(), number + 1),
                )
            })?;
            hosts.push(host);
        }
        if hosts.is_empty() {
            return Err(Failure::new(
                Code::Usage,
                format!("the hosts file {} names no host", path.display()),
            ));
        }
    }
    let mut unique: Vec<Host> = Vec::with_capacity(hosts.len());
    for mut host in hosts {
        host.connect_timeout = connect_timeout;
        if !unique.contains(&host) {
            unique.push(host);
        }
    }
    Ok(unique)
}

/// Why a host's part of a command failed: the failure, and, when the host could not be
/// reached at all, why not.
#[derive(Debug)]
pub struct Trouble {
    pub failure: Failure,
    pub unreachable: Option<Reason>,
}

impl From<Failure> for Trouble {
    fn from(failure: Failure) -> Trouble {
        Trouble {
            failure,
            unreachable: None,
        }
    }
}

/// Connects to `host`; an unreachable host gets `code`.
async fn connect(host: &Host, code: Code) -> Result<Systemd, Trouble> {
    Systemd::over_ssh(host).await.map_err(|e| Trouble {
        unreachable: Some(e.reason),
        failure: Failure::new(code, e.to_string()),
    })
}

/// Every host's status, read all at once, in the order given.
pub async fn status(
    hosts: &[Host],
    components: &[Component],
) -> Vec<(Host, Result<StackStatus, Trouble>)> {
    let reads = hosts.iter().map(|host| async move {
        let read = async {
            let systemd = connect(host, Code::Unknown).await?;
            let mut status = StackStatus::read(&systemd, components)
                .await
                .map_err(Failure::of_status)?;
            status.recall_failures(None).await;
            Ok(status)
        };
        (host.clone(), read.await)
    });
    futures_util::future::join_all(reads).await
}

/// How an action runs across hosts.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub action: Action,
    pub options: Options,
    /// How many hosts act at once; 1 with `rolling`.
    pub parallel: usize,
    pub rolling: bool,
    pub health_timeout: Duration,
    pub keep_going: bool,
}

/// What an action did on one host.
#[derive(Debug)]
pub enum HostOutcome {
    /// The action ran; with `--rolling`, the health gate's verdict follows.
    Acted {
        report: Box<ActionReport>,
        health: Option<Result<String, String>>,
    },
    /// The action could not run.
    Failed(Trouble),
    /// A rolling action stopped at an earlier host.
    Untouched,
}

impl HostOutcome {
    /// The host's exit code, as the command's would be with that host alone.
    pub fn code(&self) -> Code {
        match self {
            HostOutcome::Acted { report, health } => {
                if report.succeeded() && health.as_ref().is_none_or(Result::is_ok) {
                    Code::Done
                } else {
                    Code::Failed
                }
            }
            HostOutcome::Failed(trouble) => trouble.failure.code,
            HostOutcome::Untouched => Code::Failed,
        }
    }
}

/// Runs `plan` on every host, telling `said` what happens on each as it happens.
pub async fn act(
    hosts: &[Host],
    plan: Plan,
    said: &(dyn Fn(&Host, &str) + Sync),
) -> Vec<(Host, HostOutcome)> {
    if !plan.rolling {
        let runs = hosts
            .iter()
            .map(|host| async move { (host.clone(), act_on(host, plan, said).await) });
        return stream::iter(runs).buffered(plan.parallel).collect().await;
    }
    let mut outcomes = Vec::with_capacity(hosts.len());
    let mut stopped = false;
    for host in hosts {
        if stopped {
            outcomes.push((host.clone(), HostOutcome::Untouched));
            continue;
        }
        let outcome = act_on(host, plan, said).await;
        stopped = outcome.code() != Code::Done && !plan.keep_going;
        outcomes.push((host.clone(), outcome));
    }
    outcomes
}

/// The action on one host, then, in a rolling action that leaves the stack up, its health.
async fn act_on(host: &Host, plan: Plan, said: &(dyn Fn(&Host, &str) + Sync)) -> HostOutcome {
    let started = Instant::now();
    said(host, &format!("{}…", doing(plan.action)));
    let systemd = match connect(host, Code::Failed).await {
        Ok(systemd) => systemd,
        Err(trouble) => {
            said(host, &format!("failed: {}", trouble.failure.message));
            return HostOutcome::Failed(trouble);
        }
    };
    let report = match control::act(&systemd, plan.action, plan.options).await {
        Ok(report) => report,
        Err(failure) => {
            said(host, &format!("failed: {}", failure.message));
            return HostOutcome::Failed(failure.into());
        }
    };
    if !report.succeeded() {
        // The problems themselves come with the summary.
        said(
            host,
            &format!("failed after {:.2} s", started.elapsed().as_secs_f64()),
        );
        return HostOutcome::Acted {
            report: Box::new(report),
            health: None,
        };
    }
    said(
        host,
        &format!("done in {:.2} s", started.elapsed().as_secs_f64()),
    );
    let gated = plan.rolling && plan.action != Action::Stop && !plan.options.no_block;
    let health = if gated {
        let verdict = health(&systemd, host, plan.health_timeout).await;
        match &verdict {
            Ok(how) => said(host, &format!("healthy: {how}")),
            Err(why) => said(host, &format!("unhealthy: {why}")),
        }
        Some(verdict)
    } else {
        None
    };
    HostOutcome::Acted {
        report: Box::new(report),
        health,
    }
}

/// The health gate: every unit of the stack active, and the Platform Server answering
/// `/is/image` with 200, probed through ssh on the port its socket unit listens on, until
/// `timeout` has passed.
async fn health(systemd: &Systemd, host: &Host, timeout: Duration) -> Result<String, String> {
    let started = Instant::now();
    let deadline = started + timeout;
    let runtime = SharedRuntime::current().map_err(|e| e.to_string())?;
    let port = ps_port(systemd).await?;
    let mut probes = 0;
    let mut last;
    loop {
        let states = StackStates::read(systemd)
            .await
            .map_err(|e| e.to_string())?;
        last = match states.units().find(|s| !s.is_active()) {
            Some(down) => format!("{} is {}", down.unit, down.summary()),
            None => {
                probes += 1;
                match runtime.timeout_at(deadline, probe(host, port)).await {
                    Ok(Ok(200)) => {
                        return Ok(format!(
                            "ps answered /is/image with 200 on port {port} after {:.2} s \
                             ({probes} probe{})",
                            started.elapsed().as_secs_f64(),
                            if probes == 1 { "" } else { "s" }
                        ));
                    }
                    Ok(Ok(code)) => format!("ps answered /is/image with {code}"),
                    Ok(Err(e)) => format!("ps did not answer /is/image: {e}"),
                    Err(_) => "ps did not answer /is/image in time".to_string(),
                }
            }
        };
        if Instant::now() + PROBE_INTERVAL >= deadline {
            return Err(format!(
                "not healthy within {} s: {last}",
                timeout.as_secs()
            ));
        }
        runtime.sleep(PROBE_INTERVAL).await;
    }
}

/// The port the Platform Server's socket unit listens on, from its `Listen` property.
async fn ps_port(systemd: &Systemd) -> Result<u16, String> {
    let socket = systemd
        .properties::<SocketProperties>(PS_SOCKET)
        .await
        .map_err(|e| e.to_string())?;
    socket
        .listen
        .unwrap_or_default()
        .iter()
        .filter(|(kind, _)| kind == "Stream")
        .find_map(|(_, address)| address.rsplit(':').next()?.parse().ok())
        .ok_or_else(|| format!("{PS_SOCKET} listens on no TCP port"))
}

/// One `GET /is/image` through `ssh -W` to the host's loopback: the response's status code.
async fn probe(host: &Host, port: u16) -> Result<u16, String> {
    let runtime = SharedRuntime::current().map_err(|e| e.to_string())?;
    let mut child = Command::from(host.forward("127.0.0.1", port))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn(&runtime)
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("ssh's standard streams are not piped".into());
    };
    // Standard input stays open until the answer is in: its end would end the stream.
    stdin
        .write_all(b"GET /is/image HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    stdin.flush().await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = stdout.read_to_end(&mut answer).await;
    drop(stdin);
    let status_line = String::from_utf8_lossy(&answer);
    if let Some(code) = status_line
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
    {
        return Ok(code);
    }
    let mut complaint = String::new();
    if let Some(stderr) = child.stderr.as_mut() {
        let _ = stderr.read_to_string(&mut complaint).await;
    }
    Err(complaint
        .lines()
        .last()
        .unwrap_or("the stream closed without an answer")
        .trim()
        .to_string())
}

/// The action, as the progress lines name it.
fn doing(action: Action) -> String {
    match action {
        Action::Start => "starting the stack".into(),
        Action::Stop => "stopping the stack".into(),
        Action::Restart(None) => "restarting the stack".into(),
        Action::Restart(Some(c)) => format!("restarting {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_file_has_comments_and_each_host_counts_once() {
        let dir = std::env::temp_dir().join(format!("imageserving-hosts-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# the tier\nweb-1\n\nops@web-2:2222  # second\nweb-1\n",
        )
        .unwrap();
        let given: Vec<Host> = vec!["web-0".parse().unwrap()];
        let hosts = hosts(&given, Some(&dir), Duration::from_secs(3)).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let names: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["web-0", "web-1", "ops@web-2:2222"]);
        assert!(
            hosts
                .iter()
                .all(|h| h.connect_timeout == Duration::from_secs(3))
        );
    }
}
