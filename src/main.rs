use std::process::ExitCode;

use clap::Parser;
use imageserving::cli::Cli;

fn main() -> ExitCode {
    ExitCode::from(imageserving::run(&Cli::parse()))
}
