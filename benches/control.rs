//! How fast `ImageServing` drives systemd, against `systemctl` doing the same work in the same
//! run: `status` against `systemctl show` of the same properties of the same units, and
//! `restart` against `systemctl restart imageserving.target`. Prints medians and ratios. Then
//! how long `status --watch` takes to show a change, from systemd's signal (as `busctl
//! monitor` receives it) to the view.
//!
//! Run with `make bench-control`. It boots a private systemd with the shipped units and this
//! build's daemons, then runs itself inside it, so both tools start from the same place.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use imageserving_sandbox::Sandbox;

use common::{PROPERTIES, UNITS};

const STATUS_RUNS: usize = 300;
const RESTART_RUNS: usize = 30;
const WATCH_RUNS: usize = 15;
const INSIDE: &str = "IMAGESERVING_BENCH_INSIDE";

fn main() {
    if std::env::var_os(INSIDE).is_some() {
        measure();
    } else if let Err(e) = outside() {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

/// Boots the sandbox, starts the stack, and runs this program again inside it.
fn outside() -> anyhow::Result<()> {
    let bin_dir = bin_dir();
    for daemon in ["imageserving-ps", "imageserving-es", "imageserving-svg"] {
        anyhow::ensure!(
            bin_dir.join(daemon).exists(),
            "{daemon} is not built in {}: run `cargo build --release --workspace` first",
            bin_dir.display()
        );
    }
    let sandbox = Sandbox::boot()?;
    let catalog = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-catalog");
    std::fs::create_dir_all(&catalog)?;
    sandbox.install_units(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("units"),
        &bin_dir,
    )?;
    for unit in &UNITS[2..] {
        // The benchmark restarts far more often than systemd's start rate limit allows.
        sandbox.drop_in(
            unit,
            "90-bench",
            &format!(
                "[Unit]\nStartLimitIntervalSec=0\n[Service]\nEnvironment=IMAGESERVING_CATALOG_ROOT={}\n",
                catalog.display()
            ),
        )?;
    }
    let status = sandbox
        .command(std::env::current_exe()?)
        .env(INSIDE, "1")
        .status()?;
    anyhow::ensure!(
        status.success(),
        "the measurement inside the sandbox failed"
    );
    sandbox.shutdown()
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ImageServing"))
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf()
}

/// Inside the sandbox: time both tools, each run a fresh process as an operator's would be.
fn measure() {
    let tool = env!("CARGO_BIN_EXE_ImageServing");
    run(Command::new(tool).arg("start"));
    let mut show = Command::new("systemctl");
    show.args(["show", "-p", PROPERTIES]).args(UNITS);

    println!("status of the stack, {STATUS_RUNS} runs each (median):");
    let ours = median(STATUS_RUNS, Command::new(tool).arg("status"));
    let theirs = median(STATUS_RUNS, &mut show);
    report(
        "ImageServing status",
        ours,
        "systemctl show -p ...",
        theirs,
        0.5,
    );

    println!("restart of the stack, {RESTART_RUNS} runs each (median):");
    let ours = median(RESTART_RUNS, Command::new(tool).arg("restart"));
    let theirs = median(
        RESTART_RUNS,
        Command::new("systemctl").args(["restart", "imageserving.target"]),
    );
    report(
        "ImageServing restart",
        ours,
        "systemctl restart",
        theirs,
        1.05,
    );

    println!("status --watch, es killed {WATCH_RUNS} times: from systemd's signal to the view:");
    watch_delays(tool);
}

/// Kills es under `status --watch` and times each view that shows it down.
fn watch_delays(tool: &str) {
    let es_path = "/org/freedesktop/systemd1/unit/imageserving_2des_2eservice";
    let (mut monitor, signals) = lines_of(Command::new("busctl").args([
        "monitor",
        "--json=short",
        &format!(
            "--match=type='signal',interface='org.freedesktop.DBus.Properties',path='{es_path}'"
        ),
    ]));
    let (mut watch, views) = lines_of(Command::new(tool).args([
        "status",
        "es",
        "--watch",
        "--json",
        "--interval",
        "3600",
    ]));
    let es_state = |line: &str| -> String {
        let doc: serde_json::Value = serde_json::from_str(line).expect("a status document");
        doc["components"][0]["active_state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut delays = Vec::new();
    for _ in 0..WATCH_RUNS {
        while es_state(&next(&views).1) != "active" {}
        let killed_at = micros(SystemTime::now());
        run(Command::new("systemctl").args(["kill", "-s", "SIGKILL", "imageserving-es.service"]));
        let shown_at = loop {
            let (at, view) = next(&views);
            if es_state(&view) != "active" {
                break at;
            }
        };
        // The first signal about es after the kill: what woke the watch.
        let signalled_at = loop {
            let (_, line) = next(&signals);
            let signal: serde_json::Value = serde_json::from_str(&line).expect("busctl's JSON");
            let at = signal["timestamp-realtime"].as_u64().unwrap_or_default();
            if at >= killed_at {
                break at;
            }
        };
        delays.push(Duration::from_micros(shown_at.saturating_sub(signalled_at)));
        // Let the rest of this transition's signals pass.
        while signals.try_recv().is_ok() {}
    }
    for child in [&mut watch, &mut monitor] {
        let _ = child.kill();
        let _ = child.wait();
    }
    delays.sort();
    println!(
        "  status --watch         {:>8.2} ms median, {:.2} ms worst   (target: under 100 ms)",
        ms(delays[delays.len() / 2]),
        ms(delays[delays.len() - 1])
    );
}

/// Starts `command` and hands over each line of its output with the time it arrived.
fn lines_of(command: &mut Command) -> (Child, Receiver<(u64, String)>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the command");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send((micros(SystemTime::now()), line)).is_err() {
                break;
            }
        }
    });
    (child, received)
}

fn next(lines: &Receiver<(u64, String)>) -> (u64, String) {
    lines
        .recv_timeout(Duration::from_secs(60))
        .expect("a line within a minute")
}

fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn report(ours_name: &str, ours: Duration, theirs_name: &str, theirs: Duration, target: f64) {
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    println!("  {ours_name:<22} {:>8.2} ms", ms(ours));
    println!("  {theirs_name:<22} {:>8.2} ms   (baseline)", ms(theirs));
    println!("  ratio                  {ratio:>8.2}x   (target <= {target}x)");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `command` `runs` times after a few warm-up runs; every run must succeed.
fn median(runs: usize, command: &mut Command) -> Duration {
    for _ in 0..runs.min(10) {
        run(command);
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            run(command);
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn run(command: &mut Command) {
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("run the command");
    assert!(status.success(), "{command:?} failed: {status}");
}
