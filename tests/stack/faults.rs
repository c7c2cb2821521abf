//! Faults the control tool must survive: signals while it waits, the bus going away, many
//! operators at once, and a crash loop that trips systemd's start rate limit.

use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::Duration;

use crate::fixture::{COMPONENTS, Run, Stack, bin_dir, unit};

const SETTLE: Duration = Duration::from_secs(30);

/// Starts `ImageServing start` from the host and returns once it is waiting on the stuck unit.
fn waiting_start(stack: &Stack) -> Child {
    let child = stack.cli_from_host(&["start"]).spawn().unwrap();
    stack.wait_for(&unit("ps"), "ActiveState", "activating", SETTLE);
    child
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this test owns and has not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

#[test]
fn an_interrupted_tool_leaves_the_job_to_systemd() {
    let stack = Stack::never_ready();
    for (sig, code, name) in [
        (libc::SIGTERM, 143, "SIGTERM"),
        (libc::SIGINT, 130, "SIGINT"),
    ] {
        let child = waiting_start(&stack);
        signal(&child, sig);
        let run = Run::from(child.wait_with_output().unwrap()).expect(code);
        run.stderr_says(name);
        run.stderr_says("goes on in systemd");
        // The job is systemd's: still there.
        assert_eq!(stack.show(&unit("ps"), "ActiveState"), "activating");
    }
}

#[test]
fn losing_the_bus_while_waiting_is_a_clean_error() {
    let stack = Stack::never_ready();
    let child = waiting_start(&stack);
    stack.systemctl(&["kill", "--signal=KILL", "dbus.service"]);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.signal(), None, "died of a signal");
    let run = Run::from(output).expect(1);
    run.stderr_says("lost the connection to systemd");
    run.stderr_says("imageserving-ps.service");
}

#[test]
fn many_operators_at_once_leave_a_healthy_stack() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    let spawn = |args: &[&str]| {
        stack
            .sandbox
            .command(env!("CARGO_BIN_EXE_ImageServing"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let restarts: Vec<Child> = (0..20)
        .map(|_| spawn(&["restart", "es", "--timeout", "60"]))
        .collect();
    let statuses: Vec<Child> = (0..20).map(|_| spawn(&["status", "--json"])).collect();
    for child in restarts {
        let run = Run::from(child.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "a restart failed:\n{}", run.stderr);
    }
    for child in statuses {
        let run = Run::from(child.wait_with_output().unwrap());
        // Caught while es restarts, status rightly says "not all running" (3).
        assert!(
            matches!(run.code, 0 | 3),
            "status exited {}:\n{}",
            run.code,
            run.stderr
        );
        run.json();
    }
    for c in COMPONENTS {
        stack.wait_for(&unit(c), "ActiveState", "active", SETTLE);
    }
    stack.cli(&["status"]).expect(0);
}

#[test]
fn a_crash_loop_trips_the_start_limit_and_an_operator_restart_recovers() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    stack
        .sandbox
        .drop_in(
            &unit("svg"),
            "50-crash-loop",
            "[Service]\nExecStart=\nExecStart=/bin/sh -c 'echo bad font cache; exit 1'\nRestartSec=100ms\n",
        )
        .unwrap();
    stack.systemctl(&["restart", "--no-block", &unit("svg")]);
    // Five restarts in a row, then systemd gives up (StartLimitBurst=5 in 10 s).
    stack.wait_for(&unit("svg"), "ActiveState", "failed", SETTLE);
    assert_eq!(stack.show(&unit("svg"), "NRestarts"), "5");

    let run = stack.cli(&["status", "svg"]).expect(3);
    run.stdout_says("svg: failed: its process exited");
    run.stdout_says("gave up restarting it (start rate limit)");
    run.stdout_says("`ImageServing restart svg` clears the limit");
    let json = stack.cli(&["status", "svg", "--json"]).expect(3).json();
    assert_eq!(json["components"][0]["start_limit_hit"], true);
    assert_eq!(json["components"][0]["restarts"], 5);

    // Fixed, an operator's restart goes through although the limit was hit.
    let fixed = format!(
        "[Service]\nExecStart=\nExecStart={}\nRestartSec=1\n",
        bin_dir().join("imageserving-svg").display()
    );
    stack
        .sandbox
        .drop_in(&unit("svg"), "60-fixed", &fixed)
        .unwrap();
    stack.cli(&["restart", "svg"]).expect(0);
    assert_eq!(stack.show(&unit("svg"), "ActiveState"), "active");
}

/// Sends `signal` to a running component; systemd must bring it back, and `status` must count
/// the restart and say why it happened (`result`, explained in `words`).
fn assert_recovers(stack: &Stack, component: &str, signal: &str, result: &str, words: &str) {
    stack.cli(&["start"]).expect(0);
    let before = stack.invocation(component);
    // KillUnit, through systemctl: PIDs in the sandbox are not the host's.
    stack.systemctl(&["kill", &format!("--signal={signal}"), &unit(component)]);
    stack.wait_for(&unit(component), "NRestarts", "1", SETTLE);
    stack.wait_for(&unit(component), "ActiveState", "active", SETTLE);
    assert_ne!(stack.invocation(component), before);
    let json = stack.cli(&["status", component, "--json"]).expect(0).json();
    assert_eq!(json["components"][0]["restarts"], 1);
    // systemd resets Result on the new start; the journal remembers why it restarted.
    assert_eq!(json["components"][0]["last_failure"]["result"], result);
    let run = stack.cli(&["status", component]).expect(0);
    run.stdout_says("restarted by systemd 1 time(s)");
    run.stdout_says(words);
}

#[test]
fn a_killed_component_comes_back_and_counts_the_restart() {
    let stack = Stack::install();
    assert_recovers(
        &stack,
        "svg",
        "KILL",
        "signal",
        "killed by a signal (signal)",
    );
}

#[test]
fn a_hung_component_is_killed_by_the_watchdog_and_comes_back() {
    let stack = Stack::install();
    // A short watchdog keeps the test quick; the shipped units use 10 s.
    stack
        .sandbox
        .drop_in(&unit("es"), "50-watchdog", "[Service]\nWatchdogSec=2\n")
        .unwrap();
    assert_recovers(
        &stack,
        "es",
        "SIGSTOP",
        "watchdog",
        "stopped answering the watchdog",
    );
}
