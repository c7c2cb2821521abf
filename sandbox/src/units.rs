//! Unit files: which files count as units, and the drop-in that points a shipped service at
//! freshly built binaries without editing it.

use std::path::Path;

use anyhow::{Result, bail};

/// The unit types copied by `install_units`.
const UNIT_SUFFIXES: [&str; 4] = [".service", ".target", ".slice", ".socket"];

/// Characters that may prefix an ExecStart= command line (`-`, `@`, `:`, `+`, `!`, `!!`).
const EXEC_PREFIXES: &[char] = &['-', '@', ':', '+', '!'];

pub(crate) fn is_unit_file(name: &str) -> bool {
    UNIT_SUFFIXES
        .iter()
        .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
}

/// Rejects names that would escape the unit directory.
pub(crate) fn check_unit_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("{name:?} is not a unit name: use a file name such as \"foo.service\"");
    }
    Ok(())
}

/// The drop-in replacing every `ExecStart=` of a service with the same command line, run from
/// `bin_dir` (same basename, same prefixes, same arguments); None if no ExecStart= names a
/// binary.
pub(crate) fn exec_start_override(unit: &str, bin_dir: &Path) -> Option<String> {
    let mut commands: Vec<String> = Vec::new();
    let mut section = String::new();
    for line in logical_lines(unit) {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_owned();
        } else if section == "[Service]" {
            let Some(value) = line.strip_prefix("ExecStart=") else {
                continue;
            };
            match value.trim() {
                // An empty assignment resets the list, as systemd reads it.
                "" => commands.clear(),
                value => commands.extend(relocate(value, bin_dir)),
            }
        }
    }
    if commands.is_empty() {
        return None;
    }
    let mut drop_in = String::from("[Service]\nExecStart=\n");
    for command in commands {
        drop_in.push_str(&format!("ExecStart={command}\n"));
    }
    Some(drop_in)
}

/// Lines with backslash continuations joined, comments dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        if pending.is_empty() && matches!(line.trim_start().chars().next(), Some('#' | ';')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                lines.push(std::mem::take(&mut pending));
            }
        }
    }
    if !pending.is_empty() {
        lines.push(pending);
    }
    lines
}

/// `-/usr/lib/x/foo --flag` with `bin_dir` `/build` gives `-/build/foo --flag`.
fn relocate(command: &str, bin_dir: &Path) -> Option<String> {
    let body = command.trim_start_matches(EXEC_PREFIXES);
    let prefix = &command[..command.len() - body.len()];
    let (program, arguments) = match body.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        }
        None => body.split_at(body.find(char::is_whitespace).unwrap_or(body.len())),
    };
    let name = Path::new(program).file_name()?;
    let relocated = bin_dir.join(name);
    Some(format!(
        "{prefix}{}{arguments}",
        exec_word(&relocated.to_string_lossy())
    ))
}

/// Writes a path as one ExecStart= word: `%` and `$` escaped, quoted if it has blanks.
fn exec_word(path: &str) -> String {
    let escaped = path.replace('%', "%%").replace('$', "$$");
    if escaped.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == '\'') {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocates_every_command_line_and_keeps_prefixes_and_arguments() {
        let unit = "[Unit]\nDescription=x\n# ExecStart=/commented/out\n[Service]\n\
                    ExecStart=/usr/bin/old\nExecStart=\n\
                    ExecStart=-/usr/libexec/app/server --port 80 \\\n  --verbose\n";
        let drop_in = exec_start_override(unit, Path::new("/build/debug")).unwrap();
        assert_eq!(
            drop_in,
            "[Service]\nExecStart=\nExecStart=-/build/debug/server --port 80    --verbose\n"
        );
    }

    #[test]
    fn quotes_and_escapes_unusual_directories() {
        let unit = "[Service]\nExecStart=\"/opt/my app/srv\" a\n";
        let drop_in = exec_start_override(unit, Path::new("/b 100%")).unwrap();
        assert_eq!(
            drop_in,
            "[Service]\nExecStart=\nExecStart=\"/b 100%%/srv\" a\n"
        );
    }

    #[test]
    fn ignores_units_without_a_command() {
        assert_eq!(
            exec_start_override("[Unit]\nDescription=t\n", Path::new("/b")),
            None
        );
        assert_eq!(
            exec_start_override("[Unit]\nExecStart=/x\n", Path::new("/b")),
            None
        );
    }

    #[test]
    fn knows_unit_files_and_names() {
        assert!(is_unit_file("imageserving.target") && is_unit_file("a.socket"));
        assert!(!is_unit_file("README.md") && !is_unit_file(".service"));
        assert!(check_unit_name("../etc/passwd").is_err() && check_unit_name("a.service").is_ok());
    }
}
