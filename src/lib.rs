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
        let request = Request::of(&cli.command);
        let action = request.action();
        let manager = if cli.user {
            Manager::User
        } else {
            Manager::System
        };
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
        let (signal, code) =
            match select(pin!(dispatch(cli, manager, request)), pin!(signals.recv())).await {
                Either::Left((code, _)) => return code,
                Either::Right((Ok(Signal::Terminate), _)) => {
                    ("SIGTERM", exit::INTERRUPTED_BY_SIGTERM)
                }
                Either::Right(_) => ("SIGINT", exit::INTERRUPTED_BY_SIGINT),
            };
        report::interrupted(action, manager, signal, code, cli.json)
    })
}

/// What a command line asks for.
#[derive(Clone, Copy)]
enum Request {
    Act(Action),
    Status(Option<Component>),
}

impl Request {
    fn of(command: &Command) -> Request {
        match command {
            Command::Start => Request::Act(Action::Start),
            Command::Stop => Request::Act(Action::Stop),
            Command::Restart { component } => Request::Act(Action::Restart(*component)),
            Command::Status { component } => Request::Status(*component),
        }
    }

    fn action(self) -> Option<Action> {
        match self {
            Request::Act(action) => Some(action),
            Request::Status(_) => None,
        }
    }
}

async fn dispatch(cli: &Cli, manager: Manager, request: Request) -> u8 {
    match request {
        Request::Act(action) => {
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
        Request::Status(component) => {
            let components = component.map_or(Component::ALL.to_vec(), |c| vec![c]);
            match read_status(manager, &components).await {
                Ok(status) => report::status(&status, cli.json),
                Err(failure) => report::failure(&failure, cli.json),
            }
        }
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
