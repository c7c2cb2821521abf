//! Measures how long a sandbox takes to boot and to tear down.
//!
//! `cargo run -p imageserving-sandbox --example boot_times [ROUNDS] [PARALLEL]` boots PARALLEL
//! sandboxes at once, ROUNDS times, and prints the median, minimum and maximum of each phase.

use std::thread;
use std::time::{Duration, Instant};

use imageserving_sandbox::Sandbox;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let rounds = args.next().transpose()?.unwrap_or(10);
    let parallel = args.next().transpose()?.unwrap_or(1);
    let (mut boots, mut teardowns) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let runs: Vec<_> = (0..parallel)
            .map(|_| thread::spawn(boot_and_tear_down))
            .collect();
        for run in runs {
            let (boot, teardown) = run
                .join()
                .map_err(|_| anyhow::anyhow!("a run panicked"))??;
            boots.push(boot);
            teardowns.push(teardown);
        }
    }
    println!("{rounds} rounds of {parallel} sandbox(es) at once");
    report("boot", &mut boots);
    report("teardown", &mut teardowns);
    Ok(())
}

fn boot_and_tear_down() -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    let sandbox = Sandbox::boot()?;
    let booted = start.elapsed();
    let start = Instant::now();
    sandbox.shutdown()?;
    Ok((booted, start.elapsed()))
}

fn report(phase: &str, times: &mut [Duration]) {
    times.sort();
    let median = times[times.len() / 2];
    let (min, max) = (times[0], times[times.len() - 1]);
    println!("{phase:>9}: median {median:.2?}, min {min:.2?}, max {max:.2?}");
}
