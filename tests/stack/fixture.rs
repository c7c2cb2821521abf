//! The fixture every integration test stands on: a private systemd with the shipped units
//! installed, their services pointed at this build's component daemons.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use imageserving_sandbox::Sandbox;

pub const SUPERVISOR: &str = "imageserving.target";
pub const COMPONENTS: [&str; 3] = ["ps", "es", "svg"];

pub fn unit(component: &str) -> String {
    format!("imageserving-{component}.service")
}

/// The result of one `ImageServing` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts the exit code, showing everything the run printed when it differs.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A booted sandbox with the stack's units installed.
pub struct Stack {
    pub sandbox: Sandbox,
}

impl Stack {
    /// Boots a sandbox and installs `units/`, the services running this build's daemons.
    pub fn install() -> Stack {
        let sandbox = Sandbox::boot().expect("boot the systemd sandbox");
        sandbox
            .install_units(&repo().join("units"), &bin_dir())
            .expect("install the units");
        Stack { sandbox }
    }

    /// Runs `ImageServing ARGS` inside the sandbox, as an operator on that host would.
    pub fn cli(&self, args: &[&str]) -> Run {
        let output = self
            .sandbox
            .command(env!("CARGO_BIN_EXE_ImageServing"))
            .args(args)
            .output()
            .expect("run ImageServing in the sandbox");
        Run::from(output)
    }

    /// `ImageServing ARGS` run on the host, talking to the sandbox's systemd over its bus
    /// address: a process the test can signal.
    pub fn cli_from_host(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ImageServing"));
        command
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.sandbox.bus_address())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// One property of a unit, as systemd itself reports it.
    pub fn show(&self, unit: &str, property: &str) -> String {
        let output = self
            .sandbox
            .systemctl(&["show", "--value", "-p", property, unit])
            .expect("systemctl show");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    pub fn invocation(&self, component: &str) -> String {
        self.show(&unit(component), "InvocationID")
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.sandbox.systemctl(args).expect("run systemctl")
    }

    /// Waits until `unit`'s `property` is `value`, for at most `within`.
    #[track_caller]
    pub fn wait_for(&self, unit: &str, property: &str, value: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.show(unit, property);
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{unit} {property} is {now:?}, not {value:?}, after {within:?}\n{}",
                self.sandbox.journal(unit)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put this build's binaries, the component daemons among them.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ImageServing"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf()
}
