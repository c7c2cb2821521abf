//! `imageserving-sandbox run --units DIR --bin-dir DIR [--env KEY=VALUE]... -- COMMAND [ARG]...`
//!
//! Boots a systemd sandbox, installs the units of DIR pointed at the binaries of the bin dir
//! (each service also gets the given environment), runs COMMAND inside the sandbox, tears the
//! sandbox down and exits with COMMAND's status: the quick start on hosts without systemd.

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use imageserving_sandbox::Sandbox;

mod interrupts;

use interrupts::Interrupts;

const USAGE: &str = "usage: imageserving-sandbox run --units DIR --bin-dir DIR [--env KEY=VALUE]... \
                     -- COMMAND [ARG]...";

struct Run {
    units: PathBuf,
    bin_dir: PathBuf,
    environment: Vec<String>,
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    // First, before any thread exists: every thread must inherit the blocked signals.
    let interrupts = match Interrupts::watch() {
        Ok(interrupts) => interrupts,
        Err(e) => return fail(format!("cannot watch for signals: {e}")),
    };
    let run = match parse(std::env::args_os().skip(1)) {
        Ok(run) => run,
        Err(message) => {
            eprintln!("imageserving-sandbox: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run_in_sandbox(&run, &interrupts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(format!("{e:#}")),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("imageserving-sandbox: {message}");
    ExitCode::FAILURE
}

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Run, String> {
    if args.next().as_deref() != Some("run".as_ref()) {
        return Err("the only command is `run`".into());
    }
    let (mut units, mut bin_dir, mut environment) = (None, None, Vec::new());
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.to_str() {
            Some("--units") => units = Some(PathBuf::from(value("--units")?)),
            Some("--bin-dir") => bin_dir = Some(PathBuf::from(value("--bin-dir")?)),
            Some("--env") => {
                let pair = value("--env")?
                    .into_string()
                    .map_err(|_| "--env must be UTF-8")?;
                if pair.split_once('=').is_none_or(|(key, _)| key.is_empty()) {
                    return Err(format!("--env takes KEY=VALUE, not {pair:?}"));
                }
                environment.push(pair);
            }
            Some("--") => break,
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let command: Vec<OsString> = args.collect();
    if command.is_empty() {
        return Err("no command given after --".into());
    }
    Ok(Run {
        units: units.ok_or("--units DIR is required")?,
        bin_dir: bin_dir.ok_or("--bin-dir DIR is required")?,
        environment,
        command,
    })
}

fn run_in_sandbox(run: &Run, interrupts: &Interrupts) -> Result<u8> {
    let sandbox = Sandbox::boot()?;
    sandbox.install_units(&run.units, &run.bin_dir)?;
    if !run.environment.is_empty() {
        let drop_in = environment_drop_in(&run.environment);
        for service in services(&run.units)? {
            sandbox.write_drop_in(&service, "10-environment", &drop_in)?;
        }
        sandbox.daemon_reload()?;
    }
    if let Some(signal) = interrupts.received()? {
        sandbox.shutdown()?;
        return Ok(128 + signal as u8);
    }
    let mut command = sandbox.command(&run.command[0]);
    command.args(&run.command[1..]);
    Interrupts::prepare(&mut command);
    let mut child = command
        .spawn()
        .context("cannot run the command in the sandbox")?;
    match interrupts.wait_for(&child)? {
        Some(signal) => {
            // The halt ends the command; nsenter then exits on its own.
            sandbox.shutdown()?;
            child.wait()?;
            Ok(128 + signal as u8)
        }
        None => {
            let status = child.wait()?;
            sandbox.shutdown()?;
            Ok(status
                .code()
                .or(status.signal().map(|signal| 128 + signal))
                .unwrap_or(1) as u8)
        }
    }
}

/// The names of the services in `units_dir`.
fn services(units_dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(units_dir)
        .with_context(|| format!("cannot read the unit directory {}", units_dir.display()))?;
    Ok(entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".service"))
        .collect())
}

/// `Environment="KEY=VALUE"` lines, quoted and escaped for systemd.
fn environment_drop_in(environment: &[String]) -> String {
    let mut drop_in = String::from("[Service]\n");
    for pair in environment {
        let escaped = pair
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%");
        drop_in.push_str(&format!("Environment=\"{escaped}\"\n"));
    }
    drop_in
}
