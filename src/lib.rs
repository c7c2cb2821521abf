//! ImageServing: the Image Serving stack's control tool, on systemd. It drives the Supervisor
//! (`imageserving.target`) and the components (`imageserving-{ps,es,svg}.service`) through
//! systemd's D-Bus API.

pub mod cli;
pub mod control;
pub mod exit;
pub mod job;
pub mod journal;
pub mod report;
pub mod stack;
pub mod status;
pub mod systemd;

use std::pin::pin;

use futures_util::future::{Either, select};
use zruntime::signal::{Signal, Signals};

use crate::cli::{Cli, Command};
use crate::control::{Action, Options};
use crate::exit::Failure;
use crate::stack::Component;
use crate::status::StackStatus;
use crate::systemd::{Manager, Systemd};

/// Runs one command line to its end and returns the exit code.
pub fn run(cli: &Cli) -> u8 {
    zbus::block_on(async {
        let action = action(&cli.command);
        // Nothing is lost when the tool stops waiting: the jobs belong to systemd.
        let mut signals = match zruntime::SharedRuntime::current()
            .and_then(|rt| Signals::new(&rt, [Signal::Interrupt, Signal::Terminate]))
        {
            Ok(signals) => signals,
            Err(e) => {
                let failure = Failure::new(exit::FAILED, format!("cannot watch for signals: {e}"));
                return report::failure(&failure, cli.json);
            }
        };
        match select(pin!(dispatch(cli, action)), pin!(signals.recv())).await {
            Either::Left((code, _)) => code,
            Either::Right((Ok(Signal::Terminate), _)) => {
                report::interrupted(action, "SIGTERM", exit::INTERRUPTED_BY_SIGTERM, cli.json)
            }
            Either::Right(_) => {
                report::interrupted(action, "SIGINT", exit::INTERRUPTED_BY_SIGINT, cli.json)
            }
        }
    })
}

fn action(command: &Command) -> Option<Action> {
    match command {
        Command::Start => Some(Action::Start),
        Command::Stop => Some(Action::Stop),
        Command::Restart { component } => Some(Action::Restart(*component)),
        Command::Status { .. } => None,
    }
}

async fn dispatch(cli: &Cli, action: Option<Action>) -> u8 {
    let manager = if cli.user {
        Manager::User
    } else {
        Manager::System
    };
    match (action, &cli.command) {
        (Some(action), _) => {
            let options = Options {
                manager,
                no_block: cli.no_block,
                timeout: cli.timeout,
            };
            match control::run(action, options).await {
                Ok(outcome) => report::action(&outcome, cli.json),
                Err(failure) => report::failure(&failure, cli.json),
            }
        }
        (None, Command::Status { component }) => {
            let components = component.map_or(Component::ALL.to_vec(), |c| vec![c]);
            match read_status(manager, &components).await {
                Ok(status) => report::status(&status, cli.json),
                Err(failure) => report::failure(&failure, cli.json),
            }
        }
        (None, _) => unreachable!("every command but status is an action"),
    }
}

async fn read_status(manager: Manager, components: &[Component]) -> Result<StackStatus, Failure> {
    let systemd = Systemd::connect(manager)
        .await
        .map_err(Failure::of_status)?;
    let mut status = StackStatus::read(&systemd, components)
        .await
        .map_err(Failure::of_status)?;
    status.recall_failures();
    Ok(status)
}
