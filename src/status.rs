//! The state of the stack as systemd sees it: the Supervisor, each component and the slice's
//! totals, read with every `GetAll` in flight at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{try_join, try_join_all, try_join3};

use crate::journal;
use crate::stack::{Component, SLICE, SUPERVISOR};
use crate::systemd::{
    Error, Job, Manager, ServiceProperties, SliceProperties, Systemd, UnitProperties,
    explain_service_result,
};

/// A unit's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitState {
    pub unit: String,
    /// `loaded`, `not-found`, `masked`, `bad-setting`, `error`...
    pub load_state: String,
    pub active_state: String,
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
        let active_state = p.active_state.unwrap_or_default();
        let active_since = match p.active_enter_timestamp {
            Some(us) if us > 0 && active_state == "active" => {
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
        if self.sub_state.is_empty() || self.sub_state == self.active_state {
            self.active_state.clone()
        } else {
            format!("{}/{}", self.active_state, self.sub_state)
        }
    }

    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }

    /// Neither running nor on its way up or down.
    pub fn is_down(&self) -> bool {
        matches!(self.active_state.as_str(), "inactive" | "failed")
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
    /// systemd's `Result` of the last run: `success`, `exit-code`, `signal`, `watchdog`...
    pub result: String,
    pub status_text: Option<String>,
    /// The last failure systemd recovered from, once looked up in the journal.
    pub last_failure: Option<journal::Failure>,
}

impl ComponentStatus {
    /// systemd stopped restarting the component because of its start rate limit: an explicit
    /// start hit it, or a crash loop used up its restarts. After a crash loop systemd 252 keeps
    /// the crash's own result, so a failed state after automatic restarts is the sign.
    pub fn start_limit_hit(&self) -> bool {
        self.result == "start-limit-hit"
            || (self.state.active_state == "failed" && self.restarts.unwrap_or(0) > 0)
    }

    /// Why the component is not running, in words.
    pub fn diagnosis(&self, manager: Manager) -> String {
        let mut text = format!("{} ({})", explain_service_result(&self.result), self.result);
        if self.start_limit_hit() && self.result != "start-limit-hit" {
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
}

impl StackStatus {
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
        })
    }

    /// Looks up, for each component systemd restarted, the failure it restarted it after.
    pub fn recall_failures(&mut self) {
        for c in &mut self.components {
            if c.restarts.unwrap_or(0) > 0 {
                c.last_failure = journal::last_failure(self.manager, &c.state.unit);
            }
        }
    }

    pub fn component(&self, component: Component) -> Option<&ComponentStatus> {
        self.components.iter().find(|c| c.component == component)
    }

    /// The units that have no unit file, Supervisor first.
    pub fn missing_units(&self) -> Vec<&str> {
        std::iter::once(&self.supervisor)
            .chain(self.components.iter().map(|c| &c.state))
            .filter(|s| !s.is_installed())
            .map(|s| s.unit.as_str())
            .collect()
    }

    /// The jobs queued for the Supervisor or a component.
    pub fn pending_jobs(&self) -> Vec<Job> {
        std::iter::once(&self.supervisor)
            .chain(self.components.iter().map(|c| &c.state))
            .filter_map(|s| s.job.clone())
            .collect()
    }

    /// The Supervisor and every component read are active.
    pub fn all_active(&self) -> bool {
        self.supervisor.is_active() && self.components.iter().all(|c| c.state.is_active())
    }
}

async fn read_component(systemd: &Systemd, component: Component) -> Result<ComponentStatus, Error> {
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
        result: service.result.unwrap_or_default(),
        status_text: service.status_text.filter(|s| !s.is_empty()),
        last_failure: None,
    })
}

/// systemd says "no value" with `u64::MAX`.
fn available(value: Option<u64>) -> Option<u64> {
    value.filter(|&v| v != u64::MAX)
}
