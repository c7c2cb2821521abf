//! `status --watch`: a live status that follows systemd's own signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::{Stack, unit};

const DEADLINE: Duration = Duration::from_secs(30);

/// `ImageServing ARGS` inside the sandbox, with the pid it has there and its lines as they come.
fn spawn_in_sandbox(stack: &Stack, args: &str) -> (Child, String, Receiver<String>) {
    let tool = env!("CARGO_BIN_EXE_ImageServing");
    let mut child = stack
        .sandbox
        .command("sh")
        .args(["-c", &format!(r#"echo $$; exec "$0" {args}"#), tool])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let pid = received.recv_timeout(DEADLINE).expect("the shell's pid");
    (child, pid, received)
}

/// The next document whose es entry satisfies `wanted`, within the deadline.
fn until_es(received: &Receiver<String>, what: &str, wanted: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the watch never showed es {what}"));
        let doc: serde_json::Value = serde_json::from_str(&line).expect("a JSON document a line");
        let es = &doc["components"][0];
        assert_eq!(es["name"], "es", "{doc}");
        if wanted(es) {
            return;
        }
    }
}

#[test]
fn the_watch_shows_a_killed_component_go_down_and_come_back() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    // An interval far longer than the test: every document it shows comes from a signal.
    let (child, pid, received) =
        spawn_in_sandbox(&stack, "status es --watch --json --interval 3600");
    until_es(&received, "running", |es| es["active_state"] == "active");

    let killed = stack.systemctl(&["kill", "--signal=SIGKILL", &unit("es")]);
    assert!(killed.status.success(), "{killed:?}");
    until_es(&received, "down", |es| es["active_state"] != "active");
    until_es(&received, "back with one restart", |es| {
        es["active_state"] == "active" && es["restarts"] == 1
    });

    let interrupted = stack.sandbox.command("kill").args(["-INT", &pid]).status();
    assert!(interrupted.unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn the_watch_refreshes_the_figures_on_its_interval_and_accepts_no_zero() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    let (mut child, _, received) = spawn_in_sandbox(&stack, "status --watch --interval 1");
    // Text views follow one another; with nothing changing, the interval brings the next.
    let deadline = Instant::now() + DEADLINE;
    let mut supervisor_lines = 0;
    while supervisor_lines < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received.recv_timeout(left).expect("a second view");
        if line.contains("Supervisor  imageserving.target") {
            supervisor_lines += 1;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    stack
        .cli(&["status", "--watch", "--interval", "0"])
        .expect(2)
        .stderr_says("seconds");
    stack
        .cli(&["status", "--interval", "5"])
        .expect(2)
        .stderr_says("--watch");
}
