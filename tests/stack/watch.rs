//! `status --watch`: a live status that follows systemd's own signals.

use std::time::Duration;

use crate::fixture::{Running, Stack, unit};

const DEADLINE: Duration = Duration::from_secs(30);

/// Waits for a document whose es entry satisfies `wanted`.
fn until_es(watch: &Running, what: &str, wanted: impl Fn(&serde_json::Value) -> bool) {
    watch.line_where(what, DEADLINE, |line| {
        let doc: serde_json::Value = serde_json::from_str(line).expect("a JSON document a line");
        let es = &doc["components"][0];
        assert_eq!(es["name"], "es", "{doc}");
        wanted(es)
    });
}

#[test]
fn the_watch_shows_a_killed_component_go_down_and_come_back() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    // An interval far longer than the test: every document it shows comes from a signal.
    let watch = stack.spawn_cli("status es --watch --json --interval 3600");
    until_es(&watch, "es running", |es| es["active_state"] == "active");

    let killed = stack.systemctl(&["kill", "--signal=SIGKILL", &unit("es")]);
    assert!(killed.status.success(), "{killed:?}");
    until_es(&watch, "es down", |es| es["active_state"] != "active");
    until_es(&watch, "es back with one restart", |es| {
        es["active_state"] == "active" && es["restarts"] == 1
    });

    let output = watch.interrupt(&stack);
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn the_watch_refreshes_the_figures_on_its_interval_and_accepts_no_zero() {
    let stack = Stack::install();
    stack.cli(&["start"]).expect(0);
    // Text views follow one another; with nothing changing, the interval brings the next.
    let watch = stack.spawn_cli("status --watch --interval 1");
    for view in ["a first view", "a second view"] {
        watch.line_where(view, DEADLINE, |line| {
            line.contains("Supervisor  imageserving.target")
        });
    }
    watch.interrupt(&stack);
    stack
        .cli(&["status", "--watch", "--interval", "0"])
        .expect(2)
        .stderr_says("seconds");
    stack
        .cli(&["status", "--interval", "5"])
        .expect(2)
        .stderr_says("--watch");
}
