//! Build chores for the Debian package: man pages and shell completions generated from the
//! programs' own clap definitions, and the sample catalog a fresh install serves.

mod completions;
mod manual;
mod programs;
mod sample_catalog;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    about = "Generate the files the Debian package ships besides the binaries"
)]
enum Task {
    /// Write a man page for every program, and one for each of its subcommands.
    Man { out_dir: PathBuf },
    /// Write bash, zsh and fish completions for the control tool.
    Completions { out_dir: PathBuf },
    /// Write the sample catalog: one folder of small images.
    SampleCatalog { out_dir: PathBuf },
}

fn main() -> ExitCode {
    let result = match Task::parse() {
        Task::Man { out_dir } => manual::write_all(&programs::all(), &out_dir),
        Task::Completions { out_dir } => completions::write(programs::control_tool(), &out_dir),
        Task::SampleCatalog { out_dir } => sample_catalog::write(&out_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
