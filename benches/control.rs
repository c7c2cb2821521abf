//! How fast `ImageServing` drives systemd, against `systemctl` doing the same work in the same
//! run: `status` against `systemctl show` of the same properties of the same units, and
//! `restart` against `systemctl restart imageserving.target`. Prints medians and ratios.
//!
//! Run with `make bench-control`. It boots a private systemd with the shipped units and this
//! build's daemons, then runs itself inside it, so both tools start from the same place.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imageserving_sandbox::Sandbox;

const STATUS_RUNS: usize = 300;
const RESTART_RUNS: usize = 30;
const INSIDE: &str = "IMAGESERVING_BENCH_INSIDE";

/// The properties `ImageServing status` reads, for `systemctl show` to read too.
const PROPERTIES: &str = "LoadState,ActiveState,SubState,ActiveEnterTimestamp,InvocationID,\
                          MainPID,MemoryCurrent,CPUUsageNSec,TasksCurrent,NRestarts,Result,StatusText";
const UNITS: [&str; 5] = [
    "imageserving.target",
    "imageserving.slice",
    "imageserving-ps.service",
    "imageserving-es.service",
    "imageserving-svg.service",
];

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
