//! ImageServing: the Image Serving stack's control tool, on systemd. It drives the Supervisor
//! (`imageserving.target`) and the components (`imageserving-{ps,es,svg}.service`) through
//! systemd's D-Bus API.
//!
//! Layers, top down: [`cli`] parses, [`run`] dispatches, `report` prints, `fleet` runs a
//! command across hosts, `control` acts and `status` reads, both through `systemd` (the client,
//! local or over `remote`'s ssh) and `job` (waiting for jobs), about the units `stack` names.

pub mod cli;
mod control;
mod exit;
mod fleet;
mod job;
mod journal;
mod logs;
mod progress;
mod remote;
mod report;
mod stack;
mod status;
mod systemd;
mod watch;

use std::pin::pin;

use futures_util::future::{Either, select};
use zruntime::signal::{Signal, Signals};

use crate::cli::{Cli, Command};
use crate::control::Options;
use crate::exit::{Code, Failure};
use crate::remote::Host;
use crate::stack::Component;
use crate::status::StackStatus;
use crate::systemd::Manager;

/// Runs one command line to its end and returns the exit code.
pub fn run(cli: &Cli) -> u8 {
    cli.color.apply();
    zbus::block_on(async {
        let manager = cli.manager();
        // Nothing is lost when the tool stops waiting: the jobs belong to systemd.
        let mut signals = match zruntime::SharedRuntime::current()
            .and_then(|rt| Signals::new(&rt, [Signal::Interrupt, Signal::Terminate]))
        {
            Ok(signals) => signals,
            Err(e) => {
                let failure = Failure::new(Code::Failed, format!("cannot watch for signals: {e}"));
                return report::failure(&failure, cli.json);
            }
        };
        let (signal, code) = match select(pin!(dispatch(cli, manager)), pin!(signals.recv())).await
        {
            Either::Left((code, _)) => return code,
            Either::Right((Ok(Signal::Terminate), _)) => ("SIGTERM", Code::Sigterm),
            Either::Right(_) => ("SIGINT", Code::Sigint),
        };
        if let Command::Logs(_) | Command::Status { watch: true, .. } = cli.command {
            // How `logs --follow` and `status --watch` end: nothing to report.
            return code.number();
        }
        report::interrupted(cli.command.action(), &cli.tool(), signal, code, cli.json)
    })
}

async fn dispatch(cli: &Cli, manager: Manager) -> u8 {
    if cli.remote() {
        let connect_timeout = std::time::Duration::from_secs(cli.connect_timeout);
        return match fleet::hosts(&cli.hosts, cli.hosts_file.as_deref(), connect_timeout) {
            Ok(hosts) => across(cli, &hosts).await,
            Err(failure) => report::failure(&failure, cli.json),
        };
    }
    if let Some(option) = cli.fleet_option() {
        let failure = Failure::new(
            Code::Usage,
            format!("{option} is for actions across hosts: name them with -H or --hosts-file"),
        );
        return report::failure(&failure, cli.json);
    }
    let action = match &cli.command {
        Command::Status {
            component,
            watch,
            interval,
        } => {
            let components = component.map_or(Component::ALL.to_vec(), |c| vec![c]);
            if *watch {
                return match watch::run(manager, &components, *interval, cli.json).await {
                    Ok(()) => Code::Running.number(),
                    Err(failure) => report::failure(&failure, cli.json),
                };
            }
            return match StackStatus::report(manager, &components).await {
                Ok(status) => report::status(&status, cli.json),
                Err(failure) => report::failure(&failure, cli.json),
            };
        }
        Command::Logs(args) => {
            return match logs::run(manager, None, args, cli.json).await {
                Ok(()) => Code::Shown.number(),
                Err(failure) => report::failure(&failure, cli.json),
            };
        }
        Command::Act(command) => command.action(),
    };
    let options = Options {
        manager,
        no_block: cli.no_block,
        timeout: cli.timeout,
        json: cli.json,
        live: true,
    };
    match control::run(action, options).await {
        Ok(outcome) => report::action(&outcome, cli.json),
        Err(failure) => report::failure(&failure, cli.json),
    }
}

/// The command across `hosts`, over ssh.
async fn across(cli: &Cli, hosts: &[Host]) -> u8 {
    let action = match &cli.command {
        Command::Status {
            component,
            watch: false,
            ..
        } => {
            let components = component.map_or(Component::ALL.to_vec(), |c| vec![c]);
            let statuses = fleet::status(hosts, &components).await;
            return report::fleet_status(&statuses, cli.json);
        }
        Command::Status { watch: true, .. } => {
            let failure = Failure::new(
                Code::Usage,
                "status --watch follows one manager: leave out -H, or run it on the host",
            );
            return report::failure(&failure, cli.json);
        }
        Command::Logs(args) => {
            let [host] = hosts else {
                let failure = Failure::new(
                    Code::Usage,
                    "logs reads one host's journal: give one -H (journalctl merges one host's \
                     components in time order)",
                );
                return report::failure(&failure, cli.json);
            };
            return match logs::run(Manager::System, Some(host), args, cli.json).await {
                Ok(()) => Code::Shown.number(),
                Err(failure) => report::failure(&failure, cli.json),
            };
        }
        Command::Act(command) => command.action(),
    };
    let plan = fleet::Plan {
        action,
        options: Options {
            manager: Manager::System,
            no_block: cli.no_block,
            timeout: cli.timeout,
            json: cli.json,
            live: false,
        },
        parallel: if cli.rolling {
            1
        } else {
            cli.parallel.map_or(hosts.len(), usize::from)
        },
        rolling: cli.rolling,
        health_timeout: cli.health_timeout,
        keep_going: cli.keep_going,
    };
    let json = cli.json;
    let said = move |host: &Host, what: &str| {
        if !json {
            report::host_progress(host, what);
        }
    };
    let outcomes = fleet::act(hosts, plan, &said).await;
    report::fleet_action(action, &outcomes, cli.json)
}
