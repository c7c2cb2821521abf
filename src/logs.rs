//! `logs`: the stack's journal, read with `journalctl --output=json`, the components merged in
//! time order, followed live with `--follow`.

use std::io::{self, Write};
use std::process::Stdio;

use futures_util::io::{AsyncBufReadExt, BufReader};
use futures_util::stream::{self, StreamExt};
use zruntime::SharedRuntime;

use crate::cli::LogsArgs;
use crate::exit::{Code, Failure};
use crate::journal::{Entry, journalctl_command, unit_option};
use crate::remote::Host;
use crate::report;
use crate::stack::Component;
use crate::systemd::Manager;

/// What journalctl says to a user who may read only their own entries, or none at all.
const NO_ACCESS: [&str; 2] = [
    "not seeing messages from other users and the system",
    "insufficient permissions",
];

/// Prints the entries `args` asks for; with `--follow`, until interrupted. One journalctl run,
/// here or over one ssh connection: its standard error is read alongside the entries, so that
/// a caller who may not read the system journal is told at once, even while following.
pub async fn run(
    manager: Manager,
    host: Option<&Host>,
    args: &LogsArgs,
    json: bool,
) -> Result<(), Failure> {
    let options = options(manager, args);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let command = journalctl_command(host, &options);
    let runtime = SharedRuntime::current().map_err(cannot_run)?;
    // The standard streams are set here: a std command gives its settings to nobody.
    let mut child = zruntime::process::Command::from(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn(&runtime)
        .map_err(cannot_run)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(cannot_run(io::Error::other("its output is not piped")));
    };
    let entries = BufReader::new(stdout).lines().map(Line::Entry);
    let complaints = BufReader::new(stderr).lines().map(Line::Complaint);
    let mut lines = stream::select(entries, complaints);
    let mut complaint = String::new();
    let mut out = io::stdout().lock();
    while let Some(line) = lines.next().await {
        match line {
            Line::Entry(line) => {
                let Ok(entry) = Entry::parse(&line.map_err(cannot_run)?) else {
                    continue;
                };
                match report::log_entry(&mut out, &entry, json).and_then(|()| out.flush()) {
                    Ok(()) => {}
                    // The reader went away (`| head`): that ends the command, and is no error.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => {
                        return Err(Failure::new(Code::LogsFailed, format!("cannot write: {e}")));
                    }
                }
            }
            Line::Complaint(line) => {
                let line = line.map_err(cannot_run)?;
                if manager == Manager::System && NO_ACCESS.iter().any(|w| line.contains(w)) {
                    return Err(Failure::new(
                        Code::NoJournalAccess,
                        "not allowed to read the system journal: run as root, or ask an \
                         administrator to add you to the `systemd-journal` (or `adm`) group",
                    ));
                }
                if complaint.is_empty() {
                    complaint = line.trim().to_string();
                }
            }
        }
    }
    let status = child.status().await.map_err(cannot_run)?;
    if status.success() {
        return Ok(());
    }
    if complaint.contains("Failed to parse") {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "journalctl refused a time: {complaint}; give --since and --until as \
                 \"2026-11-30 12:00:00\", \"today\", \"yesterday\" or \"-1h\""
            ),
        ));
    }
    Err(Failure::new(
        Code::LogsFailed,
        format!("journalctl failed ({status}): {complaint}"),
    ))
}

/// A line of journalctl's output: an entry on standard output, or a complaint on standard error.
enum Line {
    Entry(io::Result<String>),
    Complaint(io::Result<String>),
}

/// journalctl's options for `args`. Reading the system's journal, its notice that the caller
/// sees only their own entries is kept (no `--quiet`): that is how a missing group shows.
fn options(manager: Manager, args: &LogsArgs) -> Vec<String> {
    let mut options = Vec::new();
    if manager != Manager::System {
        options.push("--quiet".to_string());
    }
    let components = args.component.map_or(Component::ALL.to_vec(), |c| vec![c]);
    for c in components {
        options.push(unit_option(manager, c.unit()));
    }
    if args.follow {
        options.push("--follow".into());
    }
    if let Some(lines) = args.lines {
        options.push(format!("--lines={lines}"));
    }
    for (option, value) in [("--since", &args.since), ("--until", &args.until)] {
        if let Some(value) = value {
            options.push(format!("{option}={value}"));
        }
    }
    if let Some(level) = &args.priority {
        options.push(format!("--priority={level}"));
    }
    options
}

fn cannot_run(e: io::Error) -> Failure {
    Failure::new(
        Code::LogsFailed,
        format!("cannot run journalctl: {e}; is systemd's journalctl installed?"),
    )
}
