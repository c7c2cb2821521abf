//! `ImageServing start | stop | restart | status` against a real systemd, checked against what
//! systemd itself reports.

use std::process::Command;
use std::time::Duration;

use crate::fixture::{COMPONENTS, Run, SUPERVISOR, Stack, unit};

const SETTLE: Duration = Duration::from_secs(30);

fn invocations(stack: &Stack) -> Vec<String> {
    COMPONENTS.iter().map(|c| stack.invocation(c)).collect()
}

/// Runs `ImageServing` on the host itself, outside any sandbox.
fn cli_on_host(args: &[&str], bus: &str) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_ImageServing"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .output()
        .expect("run ImageServing");
    Run::from(output)
}

#[test]
fn start_and_stop_drive_every_component_and_repeat_safely() {
    let stack = Stack::install();
    let run = stack.cli(&["start"]).expect(0);
    run.stdout_says("Started the stack");
    assert_eq!(stack.show(SUPERVISOR, "ActiveState"), "active");
    for c in COMPONENTS {
        assert_eq!(stack.show(&unit(c), "ActiveState"), "active", "{c}");
    }
    let before = invocations(&stack);
    stack.cli(&["start"]).expect(0);
    assert_eq!(
        invocations(&stack),
        before,
        "a second start restarted something"
    );

    stack.cli(&["stop"]).expect(0);
    assert_eq!(stack.show(SUPERVISOR, "ActiveState"), "inactive");
    for c in COMPONENTS {
        assert_eq!(stack.show(&unit(c), "ActiveState"), "inactive", "{c}");
    }
    stack.cli(&["stop"]).expect(0);
    // The Spanish verbs of the translated documentation work the same.
    stack.cli(&["iniciar"]).expect(0);
    stack.cli(&["detener"]).expect(0);
}

#[test]
fn restart_gives_every_component_a_new_invocation() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    let before = invocations(&stack);
    let run = stack.cli(&["restart", "--json"]).expect(0);
    let after = invocations(&stack);
    for (i, c) in COMPONENTS.iter().enumerate() {
        assert_ne!(before[i], after[i], "{c} kept its invocation");
        assert_eq!(stack.show(&unit(c), "ActiveState"), "active", "{c}");
    }
    let json = run.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["action"], "restart");
    let reported: Vec<&str> = json["status"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["invocation_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        reported,
        after.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn restarting_one_component_leaves_the_others_running() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    for (i, name) in ["ps", "es", "svg", "is"].into_iter().enumerate() {
        let restarted = COMPONENTS.iter().position(|c| *c == name).unwrap_or(1);
        let before = invocations(&stack);
        let run = stack.cli(&["restart", name]).expect(0);
        run.stdout_says("Restarted");
        let after = invocations(&stack);
        for j in 0..COMPONENTS.len() {
            if j == restarted {
                assert_ne!(before[j], after[j], "step {i}: {name} did not restart");
            } else {
                assert_eq!(
                    before[j], after[j],
                    "step {i}: restarting {name} restarted {}",
                    COMPONENTS[j]
                );
            }
        }
    }
}

#[test]
fn status_reports_what_systemd_reports() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);

    let json = stack.cli(&["status", "--json"]).expect(0).json();
    assert_eq!(json["supervisor"]["active"], true);
    assert_eq!(json["supervisor"]["unit"], SUPERVISOR);
    let components = json["components"].as_array().unwrap();
    assert_eq!(components.len(), 3);
    for (c, name) in components.iter().zip(COMPONENTS) {
        let unit = unit(name);
        assert_eq!(c["name"], name);
        assert_eq!(c["unit"], unit.as_str());
        assert_eq!(c["active_state"], "active");
        assert_eq!(c["sub_state"], "running");
        assert_eq!(
            c["pid"].to_string(),
            stack.show(&unit, "MainPID"),
            "{name} pid"
        );
        assert_eq!(c["restarts"], 0);
        stack.assert_figures(c);
        assert!(c["cpu_nsec"].is_u64(), "{name} cpu: {c}");
        assert!(
            c["uptime_seconds"].as_u64().unwrap() < 600,
            "{name} uptime: {c}"
        );
    }
    if stack.sandbox.has_controller("memory") {
        let stack_memory = json["stack"]["memory_bytes"].as_u64().unwrap();
        let sum: u64 = components
            .iter()
            .map(|c| c["memory_bytes"].as_u64().unwrap())
            .sum();
        assert!(
            stack_memory >= sum / 2,
            "slice memory {stack_memory} vs components {sum}"
        );
    } else {
        assert_eq!(json["stack"]["memory_bytes"], serde_json::Value::Null);
    }

    let text = stack.cli(&["status"]).expect(0).stdout;
    for name in COMPONENTS {
        assert!(text.contains(&unit(name)), "{text}");
    }
    assert!(text.contains("active/running"), "{text}");
    assert!(text.contains("MiB"), "{text}");
    assert!(text.contains("Stack (imageserving.slice)"), "{text}");

    let one = stack.cli(&["estado", "es"]).expect(0).stdout;
    assert!(one.contains("imageserving-es.service"), "{one}");
    assert!(!one.contains("imageserving-ps.service"), "{one}");
    let one = stack.cli(&["status", "svg", "--json"]).expect(0).json();
    assert_eq!(one["components"].as_array().unwrap().len(), 1);
    assert_eq!(one["components"][0]["name"], "svg");

    // A component that is down makes its status, and the whole status, exit 3.
    stack.systemctl(&["stop", &unit("svg")]);
    stack.cli(&["status", "svg"]).expect(3);
    stack.cli(&["status"]).expect(3);
    stack.cli(&["status", "ps"]).expect(0);

    // Marked as systemctl marks them: colour only where asked for or on a terminal.
    let plain = stack.cli(&["status"]).expect(3).stdout;
    assert!(!plain.contains('\x1b'), "{plain}");
    assert!(line_of(&plain, "svg").starts_with(" ○"), "{plain}");
    assert!(line_of(&plain, "ps").starts_with(" ●"), "{plain}");
    assert!(plain.starts_with("● Supervisor"), "{plain}");
    let coloured = stack.cli(&["status", "--color=always"]).expect(3).stdout;
    let green = line_of(&coloured, "es");
    assert!(
        green.contains("\x1b[") && green.contains('●'),
        "{coloured:?}"
    );
    let no_color = stack.run(
        stack
            .tool()
            .args(["status", "--color=auto"])
            .env("NO_COLOR", "1"),
    );
    assert!(!no_color.stdout.contains('\x1b'), "{:?}", no_color.stdout);
    stack.cli(&["status", "--color=sometimes"]).expect(2);
}

/// The table row of `component` in a status report.
fn line_of<'a>(report: &'a str, component: &str) -> &'a str {
    let unit = unit(component);
    report
        .lines()
        .find(|line| line.contains(&unit))
        .unwrap_or_else(|| panic!("no row for {component}:\n{report}"))
}

#[test]
fn status_of_a_stopped_supervisor_says_how_to_start_it() {
    let stack = Stack::install();
    let run = stack.cli(&["status"]).expect(3);
    run.stdout_says("is not running");
    run.stdout_says("ImageServing start");
    let json = stack.cli(&["status", "--json"]).expect(3).json();
    assert_eq!(json["supervisor"]["active"], false);
    for c in json["components"].as_array().unwrap() {
        assert_eq!(c["pid"], serde_json::Value::Null);
        assert_eq!(c["memory_bytes"], serde_json::Value::Null);
        assert_eq!(c["uptime_seconds"], serde_json::Value::Null);
    }
}

#[test]
fn restarting_a_component_of_a_stopped_stack_is_refused() {
    let stack = Stack::install();
    let run = stack.cli(&["restart", "es"]).expect(7);
    run.stderr_says("Supervisor");
    run.stderr_says("ImageServing start");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_eq!(stack.show(&unit("es"), "ActiveState"), "inactive");
}

#[test]
fn a_component_that_fails_to_start_is_named_with_its_reason_and_log() {
    let stack = Stack::install();
    stack
        .sandbox
        .drop_in(
            &unit("es"),
            "50-broken",
            "[Service]\nExecStart=\nExecStart=/bin/sh -c 'echo \"catalog /srv/nowhere is unreadable\"; exit 3'\n",
        )
        .unwrap();
    let run = stack.cli(&["start"]).expect(1);
    run.stderr_says("Image Server (image processing) (es)");
    run.stderr_says("exit-code");
    run.stderr_says("journalctl -u imageserving-es.service");
    run.stderr_says("catalog /srv/nowhere is unreadable");
    run.stderr_omits("imageserving-ps.service");
    // The others still run.
    for c in ["ps", "svg"] {
        assert_eq!(stack.show(&unit(c), "ActiveState"), "active", "{c}");
    }
    let json = stack.cli(&["start", "--json"]).expect(1).json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["problems"][0]["unit"], "imageserving-es.service");
}

#[test]
fn missing_units_are_named() {
    let stack = Stack::install();
    stack.sandbox.remove_unit_file(&unit("svg")).unwrap();
    let run = stack.cli(&["start"]).expect(5);
    run.stderr_says("not installed");
    run.stderr_says("imageserving-svg.service");
    let run = stack.cli(&["status"]).expect(4);
    run.stderr_says("imageserving-svg.service");
    stack.cli(&["status", "--json"]).expect(4).json();
}

#[test]
fn a_masked_unit_is_not_configured() {
    let stack = Stack::install();
    let masked = stack.systemctl(&["mask", &unit("es")]);
    assert!(masked.status.success(), "{masked:?}");
    for args in [vec!["start"], vec!["restart"], vec!["stop"]] {
        let run = stack.cli(&args).expect(6);
        run.stderr_says("imageserving-es.service");
        run.stderr_says("masked");
        run.stderr_says("unmask");
    }
    let run = stack.cli(&["start", "--json"]).expect(6);
    assert_eq!(run.json()["exit_code"], 6);
}

#[test]
fn without_a_bus_every_command_fails_cleanly() {
    let bus = "unix:path=/nonexistent/system_bus_socket";
    for (args, code) in [
        (vec!["status"], 4),
        (vec!["start"], 1),
        (vec!["restart", "es"], 1),
        (vec!["stop", "--json"], 1),
    ] {
        let run = cli_on_host(&args, bus).expect(code);
        if args.contains(&"--json") {
            assert_eq!(run.json()["exit_code"], code);
        } else {
            assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
            run.stderr_says("cannot reach systemd");
            run.stderr_says("/nonexistent/system_bus_socket");
        }
    }
}

#[test]
fn bad_arguments_exit_2_with_a_hint() {
    let bus = "unix:path=/nonexistent";
    let run = cli_on_host(&["strat"], bus).expect(2);
    run.stderr_says("start");
    let run = cli_on_host(&["restart", "xs"], bus).expect(2);
    run.stderr_says("es");
    let run = cli_on_host(&["status", "--timeout", "soon"], bus).expect(2);
    run.stderr_says("seconds");
    cli_on_host(&["status", "ps", "es"], bus).expect(2);
    let help = cli_on_host(&["--help"], bus).expect(0).stdout;
    assert!(help.contains("Image Server"), "{help}");
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn the_timeout_names_the_unit_still_pending() {
    let stack = Stack::never_ready();
    let run = stack.cli(&["start", "--timeout", "2"]).expect(1);
    run.stderr_says("timed out after 2 s");
    run.stderr_says("imageserving-ps.service");
    run.stderr_says("activating");
    run.stderr_omits("imageserving-es.service");
}

#[test]
fn no_block_returns_with_the_jobs_queued() {
    let stack = Stack::install();
    let json = stack
        .cli(&["start", "--no-block", "--json"])
        .expect(0)
        .json();
    let jobs: Vec<&str> = json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["unit"].as_str().unwrap())
        .collect();
    assert!(jobs.contains(&SUPERVISOR), "{jobs:?}");
    for c in COMPONENTS {
        stack.wait_for(&unit(c), "ActiveState", "active", SETTLE);
    }
}

#[test]
fn a_terminal_sees_each_component_through_its_restart() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    let tool = env!("CARGO_BIN_EXE_ImageServing");
    // `script` gives the tool a terminal, and prints what the terminal showed.
    let on_terminal = |command: &str| {
        let command = command.replace("TOOL", &format!("'{tool}'"));
        stack.run(
            stack
                .sandbox
                .command("script")
                .args(["-qec", &command, "/dev/null"]),
        )
    };
    let run = on_terminal("TOOL restart");
    for c in COMPONENTS {
        let shown = format!("{c:<4} ready in ");
        assert!(
            run.stdout.contains(&shown),
            "no {shown:?} in {:?}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("restarting…"), "{:?}", run.stdout);
    run.stdout_says("Restarted the stack");
    // Nothing extra where standard error is not a terminal, or with --json.
    let run = on_terminal("TOOL restart es 2>&1 | cat");
    assert!(!run.stdout.contains("restarting…"), "{:?}", run.stdout);
    let run = on_terminal("TOOL restart es --json");
    assert!(!run.stdout.contains("restarting…"), "{:?}", run.stdout);
}
