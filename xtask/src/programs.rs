//! The programs the package ships, as their own clap definitions describe them: generated
//! documentation can then never disagree with what the programs accept.

use clap::Command;

/// A program and the manual section its pages belong to.
pub struct Program {
    pub command: Command,
    pub section: &'static str,
}

/// The operators' command: the only one on their PATH, so the only one with completions.
pub fn control_tool() -> Command {
    imageserving::cli::command()
}

/// Every program: commands people type go to section 1, daemons that systemd starts to 8.
pub fn all() -> Vec<Program> {
    let control = Program {
        command: control_tool(),
        section: "1",
    };
    let daemons = imageserving_components::cli::commands()
        .into_iter()
        .map(|command| Program {
            command,
            section: "8",
        });
    std::iter::once(control).chain(daemons).collect()
}
