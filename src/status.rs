//! The state of the stack as systemd sees it: the Supervisor, each component and the slice's
//! totals, read with every `GetAll` in flight at once; or the units' states alone, which is all
//! an action checks and reads far quicker (systemd reads no cgroup files for them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{try_join, try_join_all, try_join3};

use crate::exit::Failure;
use crate::journal;
use crate::remote::Host;
use crate::stack::{Component, SLICE, SUPERVISOR};
use crate::systemd::{
    ActiveState, Error, Job, Manager, ServiceProperties, SliceProperties, Systemd, UnitProperties,
    UnitResult,
};

/// A unit's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitState {
    pub unit: String,
    /// `loaded`, `not-found`, `masked`, `bad-setting`, `error`...
    pub load_state: String,
    pub active_state: ActiveState,
    pub sub_state: String,
    /// When the unit last became active, if it is active.
    pub active_since: Option<SystemTime>,
    /// Hex; empty when the unit never ran.
    pub invocation_id: String,
    /// The job systemd has queued or is running for the unit.
    pub job: Option<Job>,
}

impl UnitState {
    fn from_properties(unit: &str, p: UnitProperties) -> UnitState {
        let active_state = ActiveState::from(p.active_state.unwrap_or_default());
        let active_since = match p.active_enter_timestamp {
            Some(us) if us > 0 && active_state == ActiveState::Active => {
                Some(UNIX_EPOCH + Duration::from_micros(us))
            }
            _ => None,
        };
        let job = p.job.filter(|(id, _)| *id != 0).map(|(_, path)| Job {
            path,
            unit: unit.to_string(),
            kind: "queued".to_string(),
        });
        UnitState {
            job,
            unit: unit.to_string(),
            load_state: p.load_state.unwrap_or_default(),
            active_state,
            sub_state: p.sub_state.unwrap_or_default(),
            active_since,
            invocation_id: p
                .invocation_id
                .unwrap_or_default()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }

    /// `active/running`, or just `inactive` where the sub-state adds nothing.
    pub fn summary(&self) -> String {
        if self.sub_state.is_empty() || self.sub_state == self.active_state.as_str() {
            self.active_state.to_string()
        } else {
            format!("{}/{}", self.active_state, self.sub_state)
        }
    }

    pub fn is_active(&self) -> bool {
        self.active_state == ActiveState::Active
    }

    /// Neither running nor on its way up or down.
    pub fn is_down(&self) -> bool {
        self.active_state.is_down()
    }

    pub fn is_installed(&self) -> bool {
        self.load_state != "not-found"
    }

    /// How long the unit has been active, as of `now`.
    pub fn uptime(&self, now: SystemTime) -> Option<Duration> {
        self.active_since
            .map(|since| now.duration_since(since).unwrap_or_default())
    }
}

/// A component's state and resource use. `None` where systemd has no value.
#[derive(Clone, Debug)]
pub struct ComponentStatus {
    pub component: Component,
    pub state: UnitState,
    pub pid: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub cpu_nsec: Option<u64>,
    pub tasks: Option<u64>,
    pub restarts: Option<u32>,
    /// How the last run ended.
    pub result: UnitResult,
    pub status_text: Option<String>,
    /// The last failure systemd recovered from, once looked up in the journal.
    pub last_failure: Option<journal::PastFailure>,
}

impl ComponentStatus {
    /// systemd stopped restarting the component because of its start rate limit: an explicit
    /// start hit it, or a crash loop used up its restarts. After a crash loop systemd 252 keeps
    /// the crash's own result, so a failed state after automatic restarts is the sign.
    pub fn start_limit_hit(&self) -> bool {
        self.result == UnitResult::StartLimitHit
            || (self.state.active_state == ActiveState::Failed && self.restarts.unwrap_or(0) > 0)
    }

    /// Why the component is not running, in words.
    pub fn diagnosis(&self, manager: Manager) -> String {
        let mut text = format!("{} ({})", self.result.explain(), self.result);
        if self.start_limit_hit() && self.result != UnitResult::StartLimitHit {
            text.push_str(&format!(
                "; systemd gave up restarting it (start rate limit): fix the cause, then \
                 `{} restart {}` clears the limit",
                manager.tool(),
                self.component
            ));
        }
        text
    }
}

/// The states of the Supervisor and every component, without their resource use.
#[derive(Clone, Debug)]
pub struct StackStates {
    pub supervisor: UnitState,
    /// In the order of [`Component::ALL`].
    pub components: Vec<(Component, UnitState)>,
}

impl StackStates {
    pub async fn read(systemd: &Systemd) -> Result<StackStates, Error> {
        let (supervisor, components) = try_join(
            systemd.properties::<UnitProperties>(SUPERVISOR),
            try_join_all(Component::ALL.map(|c| systemd.properties::<UnitProperties>(c.unit()))),
        )
        .await?;
        Ok(StackStates {
            supervisor: UnitState::from_properties(SUPERVISOR, supervisor),
            components: Component::ALL
                .into_iter()
                .zip(components)
                .map(|(c, p)| (c, UnitState::from_properties(c.unit(), p)))
                .collect(),
        })
    }

    pub fn component(&self, component: Component) -> Option<&UnitState> {
        self.components
            .iter()
            .find(|(c, _)| *c == component)
            .map(|(_, state)| state)
    }

    /// The Supervisor's state, then every component's.
    pub fn units(&self) -> impl Iterator<Item = &UnitState> {
        std::iter::once(&self.supervisor).chain(self.components.iter().map(|(_, s)| s))
    }

    /// The jobs queued for the Supervisor or a component.
    pub fn pending_jobs(&self) -> Vec<Job> {
        self.units().filter_map(|s| s.job.clone()).collect()
    }
}

/// The units among `states` that have no unit file.
pub fn missing_units<'a>(states: impl Iterator<Item = &'a UnitState>) -> Vec<&'a str> {
    states
        .filter(|s| !s.is_installed())
        .map(|s| s.unit.as_str())
        .collect()
}

/// The slice's totals over every component.
#[derive(Clone, Debug, Default)]
pub struct StackUsage {
    pub memory_bytes: Option<u64>,
    pub cpu_nsec: Option<u64>,
    pub tasks: Option<u64>,
}

/// Everything `status` reports, read at one moment.
#[derive(Clone, Debug)]
pub struct StackStatus {
    pub supervisor: UnitState,
    pub components: Vec<ComponentStatus>,
    pub usage: StackUsage,
    pub read_at: SystemTime,
    /// The manager it was read from, for the commands a report suggests.
    pub manager: Manager,
    /// The host it was read from, when remote: its journal is there.
    pub host: Option<Host>,
}

impl StackStatus {
    /// What `status` reports: the Supervisor, the slice, `components` and, for each that
    /// systemd restarted, the failure it recovered from.
    pub async fn report(
        manager: Manager,
        components: &[Component],
    ) -> Result<StackStatus, Failure> {
        let systemd = Systemd::connect(manager)
            .await
            .map_err(Failure::of_status)?;
        let mut status = StackStatus::read(&systemd, components)
            .await
            .map_err(Failure::of_status)?;
        status.recall_failures(None).await;
        Ok(status)
    }

    /// Reads the Supervisor, the slice and the named components.
    pub async fn read(systemd: &Systemd, components: &[Component]) -> Result<StackStatus, Error> {
        let (supervisor, slice, components) = try_join3(
            systemd.properties::<UnitProperties>(SUPERVISOR),
            systemd.properties::<SliceProperties>(SLICE),
            try_join_all(components.iter().map(|&c| read_component(systemd, c))),
        )
        .await?;
        Ok(StackStatus {
            supervisor: UnitState::from_properties(SUPERVISOR, supervisor),
            components,
            usage: StackUsage {
                memory_bytes: available(slice.memory_current),
                cpu_nsec: available(slice.cpu_usage_nsec),
                tasks: available(slice.tasks_current),
            },
            read_at: SystemTime::now(),
            manager: systemd.kind(),
            host: systemd.host().cloned(),
        })
    }

    /// Looks up, for each component systemd restarted, the failure it restarted it after;
    /// from `earlier` where that saw the same number of restarts, without asking the journal.
    pub async fn recall_failures(&mut self, earlier: Option<&StackStatus>) {
        for c in &mut self.components {
            let known = earlier
                .and_then(|e| e.components.iter().find(|k| k.component == c.component))
                .filter(|k| k.restarts == c.restarts);
            c.last_failure = match known {
                Some(known) => known.last_failure.clone(),
                None if c.restarts.unwrap_or(0) > 0 => {
                    journal::last_failure(self.manager, self.host.as_ref(), &c.state.unit).await
                }
                None => None,
            };
        }
    }

    /// The units that have no unit file, Supervisor first.
    pub fn missing_units(&self) -> Vec<&str> {
        missing_units(
            std::iter::once(&self.supervisor).chain(self.components.iter().map(|c| &c.state)),
        )
    }

    /// The Supervisor and every component read are active.
    pub fn all_active(&self) -> bool {
        self.supervisor.is_active() && self.components.iter().all(|c| c.state.is_active())
    }
}

/// One component's state and resource use.
pub async fn read_component(
    systemd: &Systemd,
    component: Component,
) -> Result<ComponentStatus, Error> {
    let unit = component.unit();
    let (properties, service) = try_join(
        systemd.properties::<UnitProperties>(unit),
        systemd.properties::<ServiceProperties>(unit),
    )
    .await?;
    Ok(ComponentStatus {
        component,
        state: UnitState::from_properties(unit, properties),
        pid: service.main_pid.filter(|&pid| pid != 0),
        memory_bytes: available(service.memory_current),
        cpu_nsec: available(service.cpu_usage_nsec),
        tasks: available(service.tasks_current),
        restarts: service.n_restarts,
        result: UnitResult::from(service.result.unwrap_or_default()),
        status_text: service.status_text.filter(|s| !s.is_empty()),
        last_failure: None,
    })
}

/// systemd says "no value" with `u64::MAX`.
fn available(value: Option<u64>) -> Option<u64> {
    value.filter(|&v| v != u64::MAX)
}
