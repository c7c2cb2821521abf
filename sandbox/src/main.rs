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
use clap::{Args, Parser, Subcommand};
use imageserving_sandbox::Sandbox;

mod interrupts;

use interrupts::Interrupts;

/// A real systemd, booted as PID 1 of private namespaces, running the units of a directory.
#[derive(Debug, Parser)]
#[command(name = "imageserving-sandbox", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot a sandbox with the units installed, run COMMAND inside, tear the sandbox down and
    /// exit with COMMAND's status.
    Run(Run),
}

#[derive(Debug, Args)]
struct Run {
    /// The directory of the unit files to install.
    #[arg(long, value_name = "DIR")]
    units: PathBuf,
    /// Where the services' binaries are: each ExecStart= runs the binary of the same name here.
    #[arg(long, value_name = "DIR")]
    bin_dir: PathBuf,
    /// An environment variable for every service (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    environment: Vec<String>,
    /// The command to run inside the sandbox, and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

fn parse_env(pair: &str) -> Result<String, String> {
    if pair.split_once('=').is_none_or(|(key, _)| key.is_empty()) {
        return Err(format!("--env takes KEY=VALUE, not {pair:?}"));
    }
    Ok(pair.to_owned())
}

fn main() -> ExitCode {
    // First, before any thread exists: every thread must inherit the blocked signals.
    let interrupts = match Interrupts::watch() {
        Ok(interrupts) => interrupts,
        Err(e) => return fail(format!("cannot watch for signals: {e}")),
    };
    // Usage errors exit 2 with clap's message.
    let Command::Run(run) = Cli::parse().command;
    match run_in_sandbox(&run, &interrupts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(format!("{e:#}")),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("imageserving-sandbox: {message}");
    ExitCode::FAILURE
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
