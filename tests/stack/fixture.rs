//! The fixture every integration test stands on: a private systemd with the shipped units
//! installed, their services pointed at this build's component daemons.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
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

    /// Asserts that standard error mentions `needle`.
    #[track_caller]
    pub fn stderr_says(&self, needle: &str) {
        assert!(
            self.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            self.stderr
        );
    }

    /// Asserts that standard error does not mention `needle`.
    #[track_caller]
    pub fn stderr_omits(&self, needle: &str) {
        assert!(
            !self.stderr.contains(needle),
            "{needle:?} in:\n{}",
            self.stderr
        );
    }

    /// Asserts that standard output mentions `needle`.
    #[track_caller]
    pub fn stdout_says(&self, needle: &str) {
        assert!(
            self.stdout.contains(needle),
            "no {needle:?} in:\n{}",
            self.stdout
        );
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

/// An HTTP response, as far as the tests look at it.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP head");
        let head = String::from_utf8_lossy(&raw[..split]);
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Response {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A booted sandbox with the stack's units installed.
/// `ImageServing` running on inside the sandbox, from [`Stack::spawn_cli`].
pub struct Running {
    child: Child,
    /// Its pid inside the sandbox.
    pid: String,
    lines: Receiver<String>,
}

impl Running {
    /// The next line of its output for which `wanted` holds, waiting at most `within`.
    #[track_caller]
    pub fn line_where(
        &self,
        what: &str,
        within: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {what} within {within:?}"),
            }
        }
    }

    /// Interrupts it as Ctrl-C would, from inside the sandbox, and returns how it ended.
    pub fn interrupt(self, stack: &Stack) -> Output {
        let killed = stack
            .sandbox
            .command("kill")
            .args(["-INT", &self.pid])
            .status()
            .expect("run kill in the sandbox");
        assert!(killed.success(), "kill -INT {}", self.pid);
        self.child
            .wait_with_output()
            .expect("wait for ImageServing")
    }
}

pub struct Stack {
    pub sandbox: Sandbox,
}

impl Stack {
    /// Boots a sandbox and installs `units/`, the services running this build's daemons.
    pub fn install() -> Stack {
        imageserving_sandbox::exit_unless_supported_host();
        let sandbox = Sandbox::boot().expect("boot the systemd sandbox");
        sandbox
            .install_units(&repo().join("units"), &bin_dir())
            .expect("install the units");
        Stack { sandbox }
    }

    /// Like `install`, with a Platform Server that never says READY=1: a start then waits
    /// until told otherwise (TimeoutStartSec is far off).
    pub fn never_ready() -> Stack {
        let stack = Stack::install();
        stack
            .sandbox
            .drop_in(
                &unit("ps"),
                "50-never-ready",
                "[Service]\nExecStart=\nExecStart=/bin/sleep infinity\n",
            )
            .expect("install the never-ready drop-in");
        stack
    }

    /// Like `install`, with every component reading its images from `catalog`.
    pub fn serving(catalog: &Path) -> Stack {
        let stack = Stack::install();
        for c in COMPONENTS {
            stack
                .sandbox
                .drop_in(
                    &unit(c),
                    "50-catalog",
                    &format!(
                        "[Service]\nEnvironment=IMAGESERVING_CATALOG_ROOT={}\n",
                        catalog.display()
                    ),
                )
                .expect("point the components at the test catalog");
        }
        stack
    }

    /// Sends one HTTP/1.1 GET to the Platform Server, from inside the sandbox's network.
    pub fn get(&self, target: &str) -> Response {
        self.get_from(8080, target)
    }

    /// Sends one HTTP/1.1 GET to `port` on the sandbox's loopback, from inside its network.
    pub fn get_from(&self, port: u16, target: &str) -> Response {
        let mut stream = self
            .sandbox
            .connect(([127, 0, 0, 1], port).into())
            .unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the response");
        Response::parse(&raw)
    }

    /// Runs `ImageServing ARGS` inside the sandbox, as an operator on that host would.
    pub fn cli(&self, args: &[&str]) -> Run {
        self.run(self.tool().args(args))
    }

    /// `ImageServing`, to be run inside the sandbox with [`Stack::run`].
    pub fn tool(&self) -> Command {
        self.sandbox.command(env!("CARGO_BIN_EXE_ImageServing"))
    }

    /// Runs `command` to its end.
    pub fn run(&self, command: &mut Command) -> Run {
        Run::from(command.output().expect("run ImageServing in the sandbox"))
    }

    /// Starts `ImageServing ARGS` (a shell line) inside the sandbox, for a command that runs on
    /// until it is interrupted.
    pub fn spawn_cli(&self, args: &str) -> Running {
        let tool = env!("CARGO_BIN_EXE_ImageServing");
        let mut child = self
            .sandbox
            .command("sh")
            .args(["-c", &format!(r#"echo $$; exec "$0" {args}"#), tool])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ImageServing in the sandbox");
        let (lines, received) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = received
            .recv_timeout(Duration::from_secs(30))
            .expect("the shell's pid");
        Running {
            child,
            pid,
            lines: received,
        }
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

    /// Asserts the memory and task figures of one component of `status --json`: numbers where
    /// the sandbox's systemd has the controller that accounts for them, null (shown as `-`)
    /// where it lacks it, as systemd reports them there.
    #[track_caller]
    pub fn assert_figures(&self, component: &serde_json::Value) {
        for (figure, controller) in [("memory_bytes", "memory"), ("tasks", "pids")] {
            let value = &component[figure];
            if self.sandbox.has_controller(controller) {
                assert!(
                    value.as_u64().is_some_and(|v| v > 0),
                    "{figure}: {component}"
                );
            } else {
                assert!(
                    value.is_null(),
                    "{figure} without a {controller} controller: {component}"
                );
            }
        }
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
