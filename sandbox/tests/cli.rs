//! The `imageserving-sandbox run` binary: units installed, environment set, the command's exit
//! code passed on, and the sandbox gone afterwards, also after SIGTERM or a Ctrl-C.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A unit directory with one service, removed on drop.
struct Units(PathBuf);

impl Units {
    fn new(name: &str) -> Self {
        imageserving_sandbox::exit_unless_supported_host();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let service = "[Service]\nExecStart=/usr/libexec/demo/demo-daemon --flag\n";
        fs::write(dir.join("demo.service"), service).unwrap();
        Self(dir)
    }

    /// `imageserving-sandbox run` with these units, running `script` with sh inside.
    fn run(&self, script: &str) -> Command {
        self.run_from("/opt/demo", script)
    }

    /// The same, with the services' binaries in `bin_dir`.
    fn run_from(&self, bin_dir: &str, script: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_imageserving-sandbox"));
        command
            .arg("run")
            .arg("--units")
            .arg(&self.0)
            .args(["--bin-dir", bin_dir, "--env", "GREETING=hello world"])
            .args(["--", "sh", "-c", script]);
        command
    }
}

impl Drop for Units {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Sandbox cgroups and state directories are named after the process that launched them.
fn assert_no_sandbox_of(launcher: u32) {
    let prefix = format!("{launcher}_");
    let mut left = Vec::new();
    for dir in ["/tmp/imageserving-sandbox", "/sys/fs/cgroup/pids"] {
        for entry in fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name
                .trim_start_matches("harness_imageserving_")
                .starts_with(&prefix)
            {
                left.push(entry.path());
            }
        }
    }
    assert!(left.is_empty(), "the binary left {left:?}");
}

/// Starts `script` in the binary and returns once it printed its first line.
fn start(units: &Units, script: &str, own_group: bool) -> Child {
    let mut command = units.run(script);
    if own_group {
        command.process_group(0);
    }
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "up\n");
    child
}

#[test]
fn runs_the_command_with_the_units_installed_and_passes_its_exit_code_on() {
    let units = Units::new("exit-code");
    let script = "systemctl show -p ExecStart -p Environment demo.service; exit 7";
    let child = units.run(script).stdout(Stdio::piped()).spawn().unwrap();
    let launcher = child.id();
    let output = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(7), "{shown}");
    assert!(shown.contains("path=/opt/demo/demo-daemon ;"), "{shown}");
    assert!(
        shown.contains("argv[]=/opt/demo/demo-daemon --flag ;"),
        "{shown}"
    );
    assert!(shown.contains("GREETING=hello world"), "{shown}");
    assert_no_sandbox_of(launcher);
}

#[test]
fn a_relative_bin_dir_is_taken_from_the_current_directory() {
    let units = Units::new("relative");
    let output = units
        .run_from(
            "demo-bin",
            "systemctl show -p ExecStart --value demo.service",
        )
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    let expected = format!(
        "path={}/demo-bin/demo-daemon ;",
        env!("CARGO_TARGET_TMPDIR")
    );
    assert!(shown.contains(&expected), "{shown}");
}

#[test]
fn sigterm_tears_the_sandbox_down() {
    let units = Units::new("sigterm");
    let mut child = start(&units, "echo up; exec sleep infinity", false);
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(sent.unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
    assert_no_sandbox_of(child.id());
}

#[test]
fn a_ctrl_c_to_the_whole_process_group_tears_the_sandbox_down() {
    let units = Units::new("ctrl-c");
    let mut child = start(&units, "echo up; exec sleep infinity", true);
    // What a terminal does: the signal goes to every process of the foreground group.
    let group = format!("-{}", child.id());
    let sent = Command::new("kill").args(["-INT", "--", &group]).status();
    assert!(sent.unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
    assert_no_sandbox_of(child.id());
}

#[test]
fn wrong_arguments_exit_with_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_imageserving-sandbox"))
        .args(["run", "--units", "/nonexistent", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("--bin-dir <DIR>") && error.contains("Usage:"),
        "{error}"
    );
}
