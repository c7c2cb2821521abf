//! `logs`: the components' journal through the tool, merged, filtered, followed, and its bad
//! inputs and closed pipes.

use std::time::Duration;

use crate::fixture::{COMPONENTS, Stack};

const DEADLINE: Duration = Duration::from_secs(30);

fn started() -> Stack {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    stack
}

#[test]
fn logs_merge_the_components_in_time_order() {
    let stack = started();
    let run = stack.cli(&["logs", "--lines", "200"]).expect(0);
    for c in COMPONENTS {
        let binary = format!("imageserving-{c} ");
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(&binary) && l.contains("listening on"))
            .unwrap_or_else(|| panic!("no start-up line of {c}:\n{}", run.stdout));
        let column = line.split_whitespace().nth(1);
        assert_eq!(column, Some(c), "{line}");
    }
    let times: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{}", run.stdout);

    let run = stack.cli(&["logs", "es", "--json", "-n", "50"]).expect(0);
    let entries: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert!(!entries.is_empty());
    for entry in &entries {
        assert_eq!(entry["component"], "es", "{entry}");
        assert!(entry["timestamp_us"].as_u64().unwrap() > 0);
    }
    let run = stack
        .cli(&["logs", "-n", "3", "--priority", "err"])
        .expect(0);
    assert_eq!(run.stdout, "", "no component logged an error");
}

#[test]
fn bad_logs_arguments_exit_2_with_a_hint() {
    let stack = started();
    stack.cli(&["logs", "xs"]).expect(2).stderr_says("es");
    stack
        .cli(&["logs", "--priority", "loud"])
        .expect(2)
        .stderr_says("warning");
    let run = stack
        .cli(&["logs", "--since", "the dawn of time"])
        .expect(2);
    run.stderr_says("--since");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    stack.cli(&["logs", "--lines", "many"]).expect(2);
}

#[test]
fn a_closed_pipe_ends_logs_quietly() {
    let stack = started();
    let tool = env!("CARGO_BIN_EXE_ImageServing");
    let run = stack.run(stack.sandbox.command("bash").args([
        "-c",
        r#""$0" logs --lines 500 | true; echo "exit ${PIPESTATUS[0]}" >&2"#,
        tool,
    ]));
    assert_eq!(run.stderr.trim(), "exit 0", "{}", run.stderr);
}

#[test]
fn follow_shows_a_restart_as_it_happens_and_ends_quietly_on_sigint() {
    let stack = started();
    let follow = stack.spawn_cli("logs es --follow --lines 0 --json");
    stack.cli(&["restart", "es"]).expect(0);
    follow.line_where("es's new start-up line", DEADLINE, |line| {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["component"], "es", "{entry}");
        entry["message"].as_str().unwrap().contains("listening on")
    });
    let output = follow.interrupt(&stack);
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}
