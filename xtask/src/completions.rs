//! Shell completions, rendered by clap_complete, for the shells Debian has vendor
//! completion directories for.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// Writes `NAME.bash`, `_NAME` (zsh) and `NAME.fish` into `out_dir`.
pub fn write(mut command: Command, out_dir: &Path) -> Result<()> {
    fs::create_dir_all(out_dir).with_context(|| {
        format!(
            "cannot create {}: check the path and its permissions",
            out_dir.display()
        )
    })?;
    let name = command.get_name().to_owned();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, &name, out_dir).with_context(|| {
            format!(
                "cannot write the {shell} completions into {}",
                out_dir.display()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_shell_knows_the_subcommands() {
        let dir = std::env::temp_dir().join(format!("xtask-completions-{}", std::process::id()));
        let command = Command::new("tool").subcommand(Command::new("restart"));
        write(command, &dir).unwrap();
        for file in ["tool.bash", "_tool", "tool.fish"] {
            let script = fs::read_to_string(dir.join(file)).unwrap();
            assert!(script.contains("restart"), "{file}: {script}");
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
