//! Starting, stopping and restarting the stack: enqueue the jobs, wait for them, then check
//! that every component really reached the state asked for. The check reads the units' states
//! alone, before and after; the whole status only when `--json` prints it.

use std::time::{Duration, Instant};

use crate::exit::{Code, Failure};
use crate::job::{JobWatch, Outcome, WaitError};
use crate::journal;
use crate::progress::Progress;
use crate::stack::{Component, SUPERVISOR};
use crate::status::{StackStates, StackStatus, missing_units, read_component};
use crate::systemd::{Job, JobResult, Manager, Systemd};

/// What the operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    /// The whole stack, or one component.
    Restart(Option<Component>),
}

impl Action {
    /// systemd's verb for the job.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart(_) => "restart",
        }
    }

    pub fn component(self) -> Option<Component> {
        match self {
            Action::Restart(component) => component,
            Action::Start | Action::Stop => None,
        }
    }

    /// The unit the job is for.
    fn unit(self) -> &'static str {
        self.component().map_or(SUPERVISOR, Component::unit)
    }

    /// The units an operator's start or restart frees from a failed state first.
    fn units_to_reset(self) -> Vec<&'static str> {
        match self {
            Action::Stop => Vec::new(),
            Action::Restart(Some(component)) => vec![component.unit()],
            Action::Start | Action::Restart(None) => std::iter::once(SUPERVISOR)
                .chain(Component::ALL.map(Component::unit))
                .collect(),
        }
    }
}

/// How to run an action.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub manager: Manager,
    /// Enqueue and return.
    pub no_block: bool,
    pub timeout: Duration,
    /// Read the whole status afterwards, for the JSON document.
    pub json: bool,
    /// Draw the live progress lines on a terminal: not when several hosts act at once.
    pub live: bool,
}

/// A job and, once it ended, its result.
#[derive(Clone, Debug)]
pub struct JobReport {
    pub unit: String,
    pub kind: String,
    pub result: Option<JobResult>,
}

/// Something that did not go as asked, about one unit.
#[derive(Clone, Debug)]
pub struct Problem {
    pub unit: String,
    pub message: String,
    /// The unit's last log lines, when it failed.
    pub log: Vec<String>,
}

/// What an action did.
#[derive(Debug)]
pub struct ActionReport {
    pub action: Action,
    pub jobs: Vec<JobReport>,
    /// Whether the tool waited for the jobs: not with `--no-block`.
    pub waited: bool,
    /// The whole stack after the jobs ended, read for `--json` only.
    pub status: Option<StackStatus>,
    pub problems: Vec<Problem>,
}

impl ActionReport {
    pub fn succeeded(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs `action` on the local manager and checks its effect.
pub async fn run(action: Action, options: Options) -> Result<ActionReport, Failure> {
    let systemd = Systemd::connect(options.manager).await?;
    act(&systemd, action, options).await
}

/// Runs `action` through `systemd` and checks its effect.
pub async fn act(
    systemd: &Systemd,
    action: Action,
    options: Options,
) -> Result<ActionReport, Failure> {
    let deadline = Instant::now() + options.timeout;
    let before = StackStates::read(systemd).await?;
    check_installed(&before)?;
    if let Action::Restart(Some(component)) = action
        && !before.supervisor.is_active()
    {
        return Err(Failure::new(
            Code::SupervisorStopped,
            format!(
                "cannot restart {component}: the Supervisor ({SUPERVISOR}) is not running; \
                 start the whole stack with `{} start`",
                options.manager.tool()
            ),
        ));
    }

    // An operator who asks for a start expects it to happen, even after a crash loop made
    // systemd's start rate limit block the unit: clear it, as `systemctl reset-failed` would.
    for unit in action.units_to_reset() {
        systemd
            .reset_failed(unit)
            .await
            .map_err(|e| e.into_part_of(action.verb()))?;
    }

    let mut watch = JobWatch::new(systemd).await?;
    let mut jobs = watch.enqueue(action.unit(), action.verb()).await?;
    if action == Action::Stop {
        // A component started on its own while the Supervisor was down is not stopped by the
        // Supervisor's stop: stop it by name.
        for (_, state) in &before.components {
            if !state.is_down() && !jobs.iter().any(|j| j.unit == state.unit) {
                let more = watch.enqueue(&state.unit, "stop").await?;
                jobs.extend(more);
            }
        }
    }
    if options.no_block {
        return Ok(ActionReport {
            action,
            jobs: jobs.iter().map(|job| job_report(job, None)).collect(),
            waited: false,
            status: None,
            problems: Vec::new(),
        });
    }

    let mut progress = Progress::on_terminal(&jobs, options.json || !options.live);
    let mut shown = |job: &Job, result: &JobResult| {
        if let Some(progress) = &mut progress {
            progress.ended(job, result);
        }
    };
    let outcomes = match watch.wait(&jobs, deadline, &mut shown).await {
        Ok(outcomes) => outcomes,
        Err(error) => return Err(waiting_failed(systemd, action, options, error).await),
    };
    let mut after = StackStates::read(systemd).await?;
    // Another operator's job may still be at work on the same units (ours was merged into it
    // or replaced by it): wait for those too, so the verdict is about where the units end up.
    loop {
        let others = after.pending_jobs();
        if others.is_empty() {
            break;
        }
        if let Err(error) = watch.wait(&others, deadline, &mut |_, _| {}).await {
            return Err(waiting_failed(systemd, action, options, error).await);
        }
        after = StackStates::read(systemd).await?;
    }
    let problems = verify(action, systemd, &before, &after, &outcomes).await;
    let status = if options.json {
        Some(StackStatus::read(systemd, &Component::ALL).await?)
    } else {
        None
    };
    Ok(ActionReport {
        action,
        jobs: outcomes
            .iter()
            .map(|o| job_report(&o.job, Some(&o.result)))
            .collect(),
        waited: true,
        status,
        problems,
    })
}

fn job_report(job: &Job, result: Option<&JobResult>) -> JobReport {
    JobReport {
        unit: job.unit.clone(),
        kind: job.kind.clone(),
        result: result.cloned(),
    }
}

/// Every unit of the stack must have a usable unit file.
fn check_installed(states: &StackStates) -> Result<(), Failure> {
    let missing = missing_units(states.units());
    if !missing.is_empty() {
        return Err(Failure::new(
            Code::NotInstalled,
            format!(
                "not installed: no unit file for {}; install the imageserving package (or copy \
                 the files of units/ into /etc/systemd/system and reload systemd)",
                missing.join(", ")
            ),
        ));
    }
    for state in states.units() {
        if state.load_state != "loaded" {
            return Err(Failure::new(
                Code::NotConfigured,
                format!(
                    "{} cannot be used: its load state is {}; check the unit file \
                     (`systemctl status {}`) or unmask it",
                    state.unit, state.load_state, state.unit
                ),
            ));
        }
    }
    Ok(())
}

/// Names each unit that did not reach the state `action` asked for, and why.
async fn verify(
    action: Action,
    systemd: &Systemd,
    before: &StackStates,
    after: &StackStates,
    outcomes: &[Outcome],
) -> Vec<Problem> {
    let manager = systemd.kind();
    let mut problems = Vec::new();
    let checked = after
        .components
        .iter()
        .filter(|(c, _)| action.component().is_none_or(|asked| asked == *c));
    for (component, state) in checked {
        let wrong = match action {
            Action::Stop => (!state.is_down()).then(|| format!("is still {}", state.summary())),
            Action::Start | Action::Restart(_) if !state.is_active() => {
                // Why it is down lives in the service's own properties: read them only now.
                let why = match read_component(systemd, *component).await {
                    Ok(status) => status.diagnosis(manager),
                    Err(e) => format!("its properties cannot be read: {e}"),
                };
                Some(format!("is {}: {why}", state.summary()))
            }
            Action::Restart(_) => {
                let old = before.component(*component).map(|s| &s.invocation_id);
                (old == Some(&state.invocation_id))
                    .then(|| "did not restart: it still runs the same invocation".to_string())
            }
            Action::Start => None,
        };
        if let Some(what) = wrong {
            let log = if action == Action::Stop {
                Vec::new()
            } else {
                journal::last_lines(manager, systemd.host(), &state.unit).await
            };
            problems.push(Problem {
                unit: state.unit.clone(),
                message: format!(
                    "{} ({component}) {what}; see `{}`",
                    component.title(),
                    journal::command_for(manager, systemd.host(), &state.unit)
                ),
                log,
            });
        }
    }
    // A failed job of a unit that ended up fine anyway (canceled by a newer job of another
    // operator, say) is no problem; one whose unit is not fine was reported above.
    if problems.is_empty() {
        let supervisor_ok = match action {
            Action::Stop => after.supervisor.is_down(),
            _ => after.supervisor.is_active(),
        };
        if !supervisor_ok {
            let job = outcomes.iter().find(|o| o.job.unit == SUPERVISOR);
            problems.push(Problem {
                unit: SUPERVISOR.to_string(),
                message: format!(
                    "the Supervisor ({SUPERVISOR}) is {}{}",
                    after.supervisor.summary(),
                    job.map(|o| format!(" (its job: {})", o.result.explain()))
                        .unwrap_or_default()
                ),
                log: Vec::new(),
            });
        }
    }
    problems
}

/// Explains a wait that ended early, naming the units still pending.
async fn waiting_failed(
    systemd: &Systemd,
    action: Action,
    options: Options,
    error: WaitError,
) -> Failure {
    let (pending, what) = match error {
        WaitError::TimedOut(pending) => (
            pending,
            format!(
                "timed out after {} s waiting for",
                options.timeout.as_secs()
            ),
        ),
        WaitError::Disconnected(pending) => (
            pending,
            "lost the connection to systemd while waiting for".to_string(),
        ),
    };
    let states = StackStates::read(systemd).await.ok();
    let units: Vec<String> = pending
        .iter()
        .map(|job| {
            let state = states
                .as_ref()
                .and_then(|s| s.units().find(|state| state.unit == job.unit));
            match state {
                Some(state) => format!("{} ({} job, unit {})", job.unit, job.kind, state.summary()),
                None => format!("{} ({} job)", job.unit, job.kind),
            }
        })
        .collect();
    Failure::new(
        Code::Failed,
        format!(
            "{what} {}; the {} goes on in systemd, follow it with `{} status`",
            units.join(", "),
            action.verb(),
            options.manager.tool()
        ),
    )
}
