//! The printer: the status report and every command's outcome, as text for people on
//! standard output (problems on standard error) or as one JSON document for machines.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anstream::{eprintln, print, println};
use anstyle::{AnsiColor, Color, Style};
use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::Alignment;
use tabled::settings::object::Columns;

use crate::control::{Action, ActionReport, Problem};
use crate::exit::{Code, Failure};
use crate::fleet::{HostOutcome, Trouble};
use crate::journal::{self, Entry};
use crate::remote::{Host, Reason};
use crate::stack::{Component, SLICE, SUPERVISOR};
use crate::status::{ComponentStatus, StackStatus, UnitState};
use crate::systemd::{ActiveState, JobResult};

/// What `status` exits with for `status`.
fn status_code(status: &StackStatus) -> Code {
    if !status.missing_units().is_empty() {
        Code::Unknown
    } else if status.all_active() {
        Code::Running
    } else {
        Code::NotRunning
    }
}

/// Prints a status report and returns `status`'s exit code.
pub fn status(status: &StackStatus, json: bool) -> u8 {
    let missing = status.missing_units();
    let code = status_code(status);
    if json {
        print_json(&StatusDoc::new(status));
    } else if !missing.is_empty() {
        eprintln!(
            "{ERROR} not installed: no unit file for {}; install the imageserving package",
            missing.join(", ")
        );
    } else if !status.supervisor.is_active() {
        println!(
            "The Image Serving Supervisor ({SUPERVISOR}) is not running ({}). \
             Start the stack with `{} start`.",
            status.supervisor.active_state,
            status.manager.tool()
        );
    } else {
        print!("{}", status_text(status));
    }
    code.number()
}

const GREEN: Style = Style::new()
    .bold()
    .fg_color(Some(Color::Ansi(AnsiColor::Green)));
const RED: Style = Style::new()
    .bold()
    .fg_color(Some(Color::Ansi(AnsiColor::Red)));

/// `error:` as cargo prints it: bold red where colour is on.
const ERROR: StyledStr = StyledStr(RED, "error:");

/// Text in a style, written with the style's codes, which the standard streams drop where
/// colour is off.
struct StyledStr(Style, &'static str);

impl fmt::Display for StyledStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let StyledStr(style, text) = self;
        write!(f, "{style}{text}{style:#}")
    }
}

/// A unit's state as `systemctl status` marks it: its glyph, in the glyph's colour.
fn mark(state: &ActiveState) -> StyledStr {
    match state {
        ActiveState::Active | ActiveState::Activating => StyledStr(GREEN, "●"),
        ActiveState::Reloading => StyledStr(GREEN, "↻"),
        ActiveState::Deactivating => StyledStr(Style::new(), "●"),
        ActiveState::Inactive => StyledStr(Style::new(), "○"),
        ActiveState::Maintenance => StyledStr(RED, "○"),
        ActiveState::Failed | ActiveState::Other(_) => StyledStr(RED, "×"),
    }
}

/// One view of `status --watch`: on a terminal the screen is drawn anew; elsewhere each view
/// follows the last, as one JSON document a line with `--json`.
pub fn watched(status: &StackStatus, json: bool, interval: Duration) -> io::Result<()> {
    let mut out = anstream::stdout().lock();
    if json {
        // Plain strings and numbers always serialize.
        let doc = serde_json::to_string(&StatusDoc::new(status)).unwrap_or_default();
        writeln!(out, "{doc}")?;
    } else if io::stdout().is_terminal() {
        write!(
            out,
            "\x1b[H\x1b[2J{}\nOn every change, and every {} s. Ctrl-C ends.\n",
            status_text(status),
            interval.as_secs()
        )?;
    } else {
        writeln!(out, "{}", status_text(status))?;
    }
    out.flush()
}

/// The status report as people read it.
pub fn status_text(status: &StackStatus) -> String {
    let now = status.read_at;
    let mut out = format!(
        "{} Supervisor  {SUPERVISOR}  {}  up {}\n\n",
        mark(&status.supervisor.active_state),
        status.supervisor.summary(),
        or_dash(status.supervisor.uptime(now).map(uptime))
    );
    let mut table = Builder::new();
    table.push_record([
        "  COMPONENT",
        "UNIT",
        "STATE",
        "PID",
        "UPTIME",
        "MEMORY",
        "CPU",
        "TASKS",
        "RESTARTS",
    ]);
    let mut marks = Vec::new();
    for c in &status.components {
        let [state, figures @ ..] = figures(c, now);
        table.push_record(
            [
                format!("{} {}", mark(&c.state.active_state).1, c.component.name()),
                c.state.unit.clone(),
                state,
            ]
            .into_iter()
            .chain(figures),
        );
        marks.push(mark(&c.state.active_state));
    }
    out.push_str(&render(table, &marks));
    for c in &status.components {
        if let Some(why) = down(c, status) {
            out.push_str(&format!("  {why}\n"));
        } else {
            if let Some(failure) = &c.last_failure {
                out.push_str(&format!(
                    "  {}: restarted by systemd {} time(s), last {} ago after: {} ({})\n",
                    c.component,
                    c.restarts.unwrap_or(0),
                    uptime(now.duration_since(failure.at).unwrap_or_default()),
                    failure.result.explain(),
                    failure.result
                ));
            }
            if let Some(text) = &c.status_text {
                out.push_str(&format!("  {}: {text}\n", c.component));
            }
        }
    }
    out.push_str(&format!(
        "\nStack ({SLICE})  memory {}  CPU {}  tasks {}\n",
        or_dash(status.usage.memory_bytes.map(bytes)),
        or_dash(
            status
                .usage
                .cpu_nsec
                .map(|ns| cpu(Duration::from_nanos(ns)))
        ),
        or_dash(status.usage.tasks)
    ));
    out
}

/// A component's cells in the status tables: its state, PID, uptime, memory, CPU time, tasks
/// and restarts.
fn figures(c: &ComponentStatus, now: SystemTime) -> [String; 7] {
    [
        c.state.summary(),
        or_dash(c.pid),
        or_dash(c.state.uptime(now).map(uptime)),
        or_dash(c.memory_bytes.map(bytes)),
        or_dash(c.cpu_nsec.map(|ns| cpu(Duration::from_nanos(ns)))),
        or_dash(c.tasks),
        or_dash(c.restarts),
    ]
}

/// Why a component that failed is down, with the command that shows its log; `None` for one
/// that is up or was stopped.
fn down(c: &ComponentStatus, status: &StackStatus) -> Option<String> {
    (!c.state.is_active() && c.result.is_failure()).then(|| {
        format!(
            "{}: {}: {}; see `{}`",
            c.component,
            c.state.summary(),
            c.diagnosis(status.manager),
            journal::command_for(status.manager, status.host.as_ref(), &c.state.unit)
        )
    })
}

/// A status table, its figures (from the fourth column on) aligned right, each row's glyph in
/// its colour: `marks` has one a row. The table is laid out plain, so that colour codes do not
/// count as width, and coloured afterwards.
fn render(table: Builder, marks: &[StyledStr]) -> String {
    let mut table = table.build();
    table
        .with(tabled::settings::Style::blank())
        .modify(Columns::new(3..), Alignment::right());
    let rendered = table.to_string();
    let mut rows = rendered.lines();
    let mut out = rows.next().map(|h| format!("{h}\n")).unwrap_or_default();
    for (line, mark) in rows.zip(marks) {
        out.push_str(&line.replacen(mark.1, &mark.to_string(), 1));
        out.push('\n');
    }
    out
}

/// The code of a command across hosts: 0 when every host gives 0, else the first other code in
/// the order the hosts were given.
fn fleet_code(codes: impl IntoIterator<Item = Code>) -> u8 {
    codes
        .into_iter()
        .map(Code::number)
        .find(|&n| n != 0)
        .unwrap_or(0)
}

/// Prints the status of every host, one table with a row a host and unit, and returns the
/// command's exit code.
pub fn fleet_status(hosts: &[(Host, Result<StackStatus, Trouble>)], json: bool) -> u8 {
    let code = |result: &Result<StackStatus, Trouble>| match result {
        Ok(status) => status_code(status),
        Err(trouble) => trouble.failure.code,
    };
    if json {
        let docs: Vec<HostDoc<StatusDoc>> = hosts
            .iter()
            .map(|(host, result)| HostDoc::new(host, code(result), result, StatusDoc::new))
            .collect();
        print_json(&docs);
        return fleet_code(hosts.iter().map(|(_, r)| code(r)));
    }
    let mut table = Builder::new();
    table.push_record([
        "HOST", "  UNIT", "STATE", "PID", "UPTIME", "MEMORY", "CPU", "TASKS", "RESTARTS",
    ]);
    let mut marks = Vec::new();
    let mut notes = Vec::new();
    for (host, result) in hosts {
        let status = match result {
            Ok(status) => status,
            Err(trouble) => {
                let state = match trouble.unreachable {
                    Some(reason) => format!("unreachable: {}", reason.words()),
                    None => "unknown".to_string(),
                };
                table.push_record([host.to_string(), "× -".into(), state]);
                marks.push(StyledStr(RED, "×"));
                notes.push(trouble.failure.message.clone());
                continue;
            }
        };
        let now = status.read_at;
        let s = &status.supervisor;
        table.push_record([
            host.to_string(),
            format!("{} {}", mark(&s.active_state).1, s.unit),
            s.summary(),
            "-".into(),
            or_dash(s.uptime(now).map(uptime)),
            or_dash(status.usage.memory_bytes.map(bytes)),
            or_dash(
                status
                    .usage
                    .cpu_nsec
                    .map(|ns| cpu(Duration::from_nanos(ns))),
            ),
            or_dash(status.usage.tasks),
            "-".into(),
        ]);
        marks.push(mark(&s.active_state));
        for c in &status.components {
            table.push_record(
                [
                    host.to_string(),
                    format!("{} {}", mark(&c.state.active_state).1, c.state.unit),
                ]
                .into_iter()
                .chain(figures(c, now)),
            );
            marks.push(mark(&c.state.active_state));
            notes.extend(down(c, status).map(|why| format!("{host}: {why}")));
        }
    }
    let mut out = render(table, &marks);
    for note in notes {
        out.push_str(&format!("  {note}\n"));
    }
    print!("{out}");
    fleet_code(hosts.iter().map(|(_, r)| code(r)))
}

/// Tells what is happening on one host, as it happens: a line on standard error.
pub fn host_progress(host: &Host, what: &str) {
    eprintln!("{host}: {what}");
}

/// Prints what an action did on every host and returns the command's exit code.
pub fn fleet_action(action: Action, hosts: &[(Host, HostOutcome)], json: bool) -> u8 {
    let code = fleet_code(hosts.iter().map(|(_, o)| o.code()));
    if json {
        let docs: Vec<HostActionDoc> = hosts
            .iter()
            .map(|(host, outcome)| HostActionDoc::new(host, outcome))
            .collect();
        print_json(&docs);
        return code;
    }
    let stopped_at = hosts
        .iter()
        .find(|(_, o)| o.code() != Code::Done)
        .filter(|_| {
            hosts
                .iter()
                .any(|(_, o)| matches!(o, HostOutcome::Untouched))
        });
    for (host, outcome) in hosts {
        let line = match outcome {
            HostOutcome::Acted { report, health } => {
                for problem in &report.problems {
                    print_problem(Some(host), problem);
                }
                match health {
                    Some(Err(why)) => {
                        eprintln!("{ERROR} {host}: unhealthy: {why}");
                        "unhealthy".to_string()
                    }
                    _ if report.succeeded() => summary(report),
                    _ => "failed".to_string(),
                }
            }
            HostOutcome::Failed(trouble) => {
                eprintln!("{ERROR} {}", trouble.failure.message);
                "failed".to_string()
            }
            HostOutcome::Untouched => "untouched".to_string(),
        };
        println!("{host}  {line}");
    }
    if let Some((host, _)) = stopped_at {
        let untouched: Vec<String> = hosts
            .iter()
            .filter(|(_, o)| matches!(o, HostOutcome::Untouched))
            .map(|(h, _)| h.to_string())
            .collect();
        eprintln!(
            "{ERROR} the {} stopped at {host}; untouched: {} (--keep-going goes on past a \
             failed host)",
            what(action),
            untouched.join(", ")
        );
    }
    code
}

/// Prints what an action did and returns its exit code.
pub fn action(report: &ActionReport, json: bool) -> u8 {
    let code = if report.succeeded() {
        Code::Done
    } else {
        Code::Failed
    };
    if json {
        print_json(&ActionDoc::new(report));
    } else {
        for problem in &report.problems {
            print_problem(None, problem);
        }
        if report.succeeded() {
            println!("{}", summary(report));
        }
    }
    code.number()
}

/// Prints a failure that ended a command early and returns its exit code.
pub fn failure(failure: &Failure, json: bool) -> u8 {
    if json {
        print_json(&FailureDoc {
            ok: false,
            exit_code: failure.code.number(),
            error: &failure.message,
        });
    } else {
        eprintln!("{ERROR} {}", failure.message);
    }
    failure.code.number()
}

/// Says that the command stopped waiting, not the jobs.
pub fn interrupted(action: Option<Action>, tool: &str, signal: &str, code: Code, json: bool) -> u8 {
    let message = match action {
        Some(action) => format!(
            "interrupted by {signal}: the {} goes on in systemd; follow it with `{tool} status`",
            what(action),
        ),
        None => format!("interrupted by {signal}"),
    };
    failure(&Failure::new(code, message), json)
}

/// A problem and the unit's last log lines, on standard error; named with its host when it has
/// one.
fn print_problem(host: Option<&Host>, problem: &Problem) {
    let host = host.map(|h| format!("{h}: ")).unwrap_or_default();
    eprintln!("{ERROR} {host}{}", problem.message);
    for line in &problem.log {
        eprintln!("    | {line}");
    }
}

fn what(action: Action) -> String {
    match action {
        Action::Start => "start of the stack".into(),
        Action::Stop => "stop of the stack".into(),
        Action::Restart(None) => "restart of the stack".into(),
        Action::Restart(Some(c)) => format!("restart of {c}"),
    }
}

fn summary(report: &ActionReport) -> String {
    if !report.waited {
        let units: Vec<&str> = report.jobs.iter().map(|j| j.unit.as_str()).collect();
        return format!(
            "Queued the {}: jobs for {}.",
            what(report.action),
            units.join(", ")
        );
    }
    let names = Component::ALL.map(Component::name).join(", ");
    match report.action {
        Action::Start => format!("Started the stack: {names} active."),
        Action::Stop => "Stopped the stack: every component is down.".into(),
        Action::Restart(None) => {
            format!("Restarted the stack: {names} active, each in a new invocation.")
        }
        Action::Restart(Some(c)) => format!(
            "Restarted {c} ({}): active in a new invocation; the other components kept running.",
            c.unit()
        ),
    }
}

/// Prints one journal entry: a line of time, component and message, or one JSON object.
pub fn log_entry(out: &mut impl Write, entry: &Entry, json: bool) -> io::Result<()> {
    let component = entry.component.map_or("-", Component::name);
    if json {
        let doc = LogDoc {
            time: utc(entry.at),
            timestamp_us: entry
                .at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros(),
            component: entry.component.map(Component::name),
            unit: entry.component.map(Component::unit),
            priority: entry.priority,
            pid: entry.pid,
            message: &entry.message,
        };
        // Plain strings and numbers always serialize.
        writeln!(out, "{}", serde_json::to_string(&doc).unwrap_or_default())
    } else {
        writeln!(out, "{}  {component:<3}  {}", utc(entry.at), entry.message)
    }
}

/// `2026-11-30T12:00:01.123Z`: UTC, so that lines from different machines compare.
pub fn utc(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm, for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `42s`, `12m 5s`, `3h 12m`, `2d 4h`.
pub fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `512 B`, `12.4 KiB`, `12.4 MiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `230ms`, `12.3s`, then as uptime.
pub fn cpu(d: Duration) -> String {
    match d.as_millis() {
        0..1000 => format!("{}ms", d.as_millis()),
        1000..60_000 => format!("{:.1}s", d.as_secs_f64()),
        _ => uptime(d),
    }
}

fn print_json<T: Serialize>(doc: &T) {
    // Serializing plain structs of strings and numbers cannot fail.
    println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default());
}

/// The `status --json` document (schema in the README).
#[derive(Serialize)]
struct StatusDoc<'a> {
    supervisor: SupervisorDoc<'a>,
    components: Vec<ComponentDoc<'a>>,
    stack: StackDoc,
}

#[derive(Serialize)]
struct SupervisorDoc<'a> {
    unit: &'a str,
    active: bool,
    load_state: &'a str,
    active_state: &'a str,
    sub_state: &'a str,
    uptime_seconds: Option<u64>,
}

#[derive(Serialize)]
struct ComponentDoc<'a> {
    name: &'static str,
    title: &'static str,
    unit: &'a str,
    load_state: &'a str,
    active_state: &'a str,
    sub_state: &'a str,
    pid: Option<u32>,
    uptime_seconds: Option<u64>,
    memory_bytes: Option<u64>,
    cpu_nsec: Option<u64>,
    tasks: Option<u64>,
    restarts: Option<u32>,
    result: &'a str,
    start_limit_hit: bool,
    last_failure: Option<LastFailureDoc<'a>>,
    invocation_id: Option<&'a str>,
    status_text: Option<&'a str>,
}

#[derive(Serialize)]
struct LastFailureDoc<'a> {
    result: &'a str,
    seconds_ago: u64,
}

#[derive(Serialize)]
struct StackDoc {
    unit: &'static str,
    memory_bytes: Option<u64>,
    cpu_nsec: Option<u64>,
    tasks: Option<u64>,
}

impl<'a> StatusDoc<'a> {
    fn new(status: &'a StackStatus) -> StatusDoc<'a> {
        let now = status.read_at;
        let s = &status.supervisor;
        StatusDoc {
            supervisor: SupervisorDoc {
                unit: &s.unit,
                active: s.is_active(),
                load_state: &s.load_state,
                active_state: s.active_state.as_str(),
                sub_state: &s.sub_state,
                uptime_seconds: uptime_seconds(s, now),
            },
            components: status
                .components
                .iter()
                .map(|c| ComponentDoc::new(c, now))
                .collect(),
            stack: StackDoc {
                unit: SLICE,
                memory_bytes: status.usage.memory_bytes,
                cpu_nsec: status.usage.cpu_nsec,
                tasks: status.usage.tasks,
            },
        }
    }
}

impl<'a> ComponentDoc<'a> {
    fn new(c: &'a ComponentStatus, now: SystemTime) -> ComponentDoc<'a> {
        let component: Component = c.component;
        ComponentDoc {
            name: component.name(),
            title: component.title(),
            unit: &c.state.unit,
            load_state: &c.state.load_state,
            active_state: c.state.active_state.as_str(),
            sub_state: &c.state.sub_state,
            pid: c.pid,
            uptime_seconds: uptime_seconds(&c.state, now),
            memory_bytes: c.memory_bytes,
            cpu_nsec: c.cpu_nsec,
            tasks: c.tasks,
            restarts: c.restarts,
            result: c.result.as_str(),
            start_limit_hit: c.start_limit_hit(),
            last_failure: c.last_failure.as_ref().map(|f| LastFailureDoc {
                result: f.result.as_str(),
                seconds_ago: now.duration_since(f.at).unwrap_or_default().as_secs(),
            }),
            invocation_id: Some(c.state.invocation_id.as_str()).filter(|id| !id.is_empty()),
            status_text: c.status_text.as_deref(),
        }
    }
}

fn uptime_seconds(state: &UnitState, now: SystemTime) -> Option<u64> {
    state.uptime(now).map(|d| d.as_secs())
}

/// The document `start`, `stop` and `restart` print with `--json`.
#[derive(Serialize)]
struct ActionDoc<'a> {
    action: &'static str,
    component: Option<&'static str>,
    ok: bool,
    jobs: Vec<JobDoc<'a>>,
    problems: Vec<ProblemDoc<'a>>,
    status: Option<StatusDoc<'a>>,
}

#[derive(Serialize)]
struct JobDoc<'a> {
    unit: &'a str,
    job: &'a str,
    result: Option<&'a str>,
}

#[derive(Serialize)]
struct ProblemDoc<'a> {
    unit: &'a str,
    message: &'a str,
    log: &'a [String],
}

impl<'a> ActionDoc<'a> {
    fn new(report: &'a ActionReport) -> ActionDoc<'a> {
        ActionDoc {
            action: report.action.verb(),
            component: report.action.component().map(Component::name),
            ok: report.succeeded(),
            jobs: report
                .jobs
                .iter()
                .map(|j| JobDoc {
                    unit: &j.unit,
                    job: &j.kind,
                    result: j.result.as_ref().map(JobResult::as_str),
                })
                .collect(),
            problems: report
                .problems
                .iter()
                .map(|p| ProblemDoc {
                    unit: &p.unit,
                    message: &p.message,
                    log: &p.log,
                })
                .collect(),
            status: report.status.as_ref().map(StatusDoc::new),
        }
    }
}

/// A line of `logs --json`.
#[derive(Serialize)]
struct LogDoc<'a> {
    time: String,
    timestamp_us: u128,
    component: Option<&'static str>,
    unit: Option<&'static str>,
    priority: Option<u8>,
    pid: Option<u32>,
    message: &'a str,
}

/// One host's document in the list `--json` prints with hosts: the host, its exit code, and
/// the command's own document, or `error` (and `unreachable`, why) where it failed.
#[derive(Serialize)]
struct HostDoc<'a, T: Serialize> {
    host: String,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreachable: Option<&'static str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    doc: Option<T>,
}

impl<'a, T: Serialize> HostDoc<'a, T> {
    fn new<S>(
        host: &Host,
        code: Code,
        result: &'a Result<S, Trouble>,
        doc: impl Fn(&'a S) -> T,
    ) -> HostDoc<'a, T> {
        HostDoc {
            host: host.to_string(),
            exit_code: code.number(),
            error: result.as_ref().err().map(|t| t.failure.message.as_str()),
            unreachable: result
                .as_ref()
                .err()
                .and_then(|t| t.unreachable)
                .map(Reason::as_str),
            doc: result.as_ref().ok().map(doc),
        }
    }
}

/// One host's document in the list an action prints with hosts and `--json`.
#[derive(Serialize)]
struct HostActionDoc<'a> {
    host: String,
    exit_code: u8,
    /// `done`, `failed`, `unhealthy` or `untouched`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreachable: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    report: Option<ActionDoc<'a>>,
}

impl<'a> HostActionDoc<'a> {
    fn new(host: &Host, outcome: &'a HostOutcome) -> HostActionDoc<'a> {
        let mut doc = HostActionDoc {
            host: host.to_string(),
            exit_code: outcome.code().number(),
            outcome: "done",
            error: None,
            unreachable: None,
            health: None,
            report: None,
        };
        match outcome {
            HostOutcome::Acted { report, health } => {
                doc.report = Some(ActionDoc::new(report));
                doc.health = health.as_ref().map(|h| match h {
                    Ok(how) | Err(how) => how.as_str(),
                });
                doc.outcome = match health {
                    Some(Err(_)) => "unhealthy",
                    _ if report.succeeded() => "done",
                    _ => "failed",
                };
            }
            HostOutcome::Failed(trouble) => {
                doc.outcome = "failed";
                doc.error = Some(&trouble.failure.message);
                doc.unreachable = trouble.unreachable.map(Reason::as_str);
            }
            HostOutcome::Untouched => doc.outcome = "untouched",
        }
        doc
    }
}

/// What every command prints with `--json` when it could not do its work.
#[derive(Serialize)]
struct FailureDoc<'a> {
    ok: bool,
    exit_code: u8,
    error: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_human() {
        assert_eq!(uptime(Duration::from_secs(42)), "42s");
        assert_eq!(uptime(Duration::from_secs(12 * 60 + 5)), "12m 5s");
        assert_eq!(
            uptime(Duration::from_secs(3 * 3600 + 12 * 60 + 7)),
            "3h 12m"
        );
        assert_eq!(uptime(Duration::from_secs(2 * 86400 + 4 * 3600)), "2d 4h");
    }

    #[test]
    fn bytes_are_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_700), "12.4 KiB");
        assert_eq!(bytes(13_002_342), "12.4 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn times_are_utc_to_the_millisecond() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_041_201_123);
        assert_eq!(utc(at), "2026-11-30T12:20:01.123Z");
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap_day), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn cpu_time_keeps_its_precision() {
        assert_eq!(cpu(Duration::from_millis(230)), "230ms");
        assert_eq!(cpu(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(cpu(Duration::from_secs(125)), "2m 5s");
    }
}
