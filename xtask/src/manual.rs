//! Man pages, rendered by clap_mangen. A page lists its subcommands as `NAME-SUB(SECTION)`,
//! so each subcommand gets its own page too, or those references would lead nowhere.

use std::fs;
use std::io;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

use crate::programs::Program;

/// Writes the pages of every program into `out_dir`, named `NAME.SECTION`.
pub fn write_all(programs: &[Program], out_dir: &Path) -> Result<()> {
    fs::create_dir_all(out_dir).with_context(|| {
        format!(
            "cannot create {}: check the path and its permissions",
            out_dir.display()
        )
    })?;
    for program in programs {
        // `help` is clap's own subcommand: documenting it would add a page that says nothing.
        let mut command = program.command.clone().disable_help_subcommand(true);
        command.build();
        // Every page of a program names the program and its version in its footer.
        let source = format!(
            "{} {}",
            command.get_name(),
            command.get_version().unwrap_or_default()
        );
        write_tree(&command, program.section, source.trim_end(), out_dir)?;
    }
    Ok(())
}

fn write_tree(command: &Command, section: &str, source: &str, out_dir: &Path) -> Result<()> {
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_tree(sub, section, source, out_dir)?;
    }
    let (name, text) = render(command, section, source)?;
    let path = out_dir.join(name);
    fs::write(&path, text).with_context(|| {
        format!(
            "cannot write {}: check the output directory",
            path.display()
        )
    })
}

/// Returns the page's file name and text. clap_mangen would refill the text after the options
/// into one paragraph, scrambling its tables: in a NOTES section here, indented lines (tables)
/// keep their layout and every other line its own line, filled to the page's width.
fn render(command: &Command, section: &str, source: &str) -> io::Result<(String, Vec<u8>)> {
    let notes = command
        .get_after_long_help()
        .or_else(|| command.get_after_help())
        .map(ToString::to_string);
    let page = Man::new(command.clone().after_help(None).after_long_help(None))
        .section(section)
        .source(source);
    let mut text = Vec::new();
    page.render(&mut text)?;
    if let Some(notes) = notes {
        notes_section(&notes).to_writer(&mut text)?;
    }
    Ok((page.get_filename(), text))
}

fn notes_section(notes: &str) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["NOTES"]);
    let mut preformatted = false;
    for line in notes.lines() {
        let indented = line.starts_with(char::is_whitespace) && !line.trim().is_empty();
        if indented != preformatted {
            roff.control(if indented { "nf" } else { "fi" }, []);
            preformatted = indented;
        }
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else if indented {
            roff.text([roman(line)]);
        } else {
            roff.text([roman(line)]).control("br", []);
        }
    }
    if preformatted {
        roff.control("fi", []);
    }
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> Program {
        Program {
            command: Command::new("tool")
                .version("1.0")
                .about("Does things")
                .after_help("Exit codes:\n  0 done\n  1 failed\n\nMore prose.")
                .subcommand(Command::new("start").about("Starts things"))
                .subcommand(Command::new("hidden").hide(true)),
            section: "8",
        }
    }

    #[test]
    fn every_visible_subcommand_gets_the_page_its_parent_refers_to() {
        let dir = std::env::temp_dir().join(format!("xtask-man-{}", std::process::id()));
        write_all(&[program()], &dir).unwrap();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["tool-start.8", "tool.8"]);
        let page = fs::read_to_string(dir.join("tool.8")).unwrap();
        assert!(page.contains("tool\\-start(8)"), "{page}");
        let sub_page = fs::read_to_string(dir.join("tool-start.8")).unwrap();
        assert!(sub_page.contains("\"tool 1.0\""), "{sub_page}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn after_help_keeps_its_lines() {
        let (_, text) = render(&program().command, "1", "tool 1.0").unwrap();
        let text = String::from_utf8(text).unwrap();
        let notes =
            ".SH NOTES\nExit codes:\n.br\n.nf\n  0 done\n  1 failed\n.fi\n.PP\nMore prose.\n.br\n";
        assert!(text.contains(notes), "{text}");
        assert!(!text.contains("EXTRA"), "{text}");
    }
}
