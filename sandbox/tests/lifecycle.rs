//! Booting, reaching the bus, and tearing down without leaving anything: after shutdown, after a
//! panic, and after the launching process was SIGKILLed.

mod common;

use std::env;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use common::{Footprint, PROBE_DIRECTORIES, start_probe_service, systemctl, wait_for};
use imageserving_sandbox::{Sandbox, remove_stale_sandboxes};

/// Set in the environment of a child test process: how its sandbox must end.
const CHILD_MODE: &str = "IMAGESERVING_SANDBOX_CHILD_MODE";
/// What a child prints once its sandbox is up, followed by `<pid1> <state dir>` (libtest may
/// print the test's name on the same line first).
const BOOTED: &str = "child sandbox booted:";

#[test]
fn boots_reaches_its_bus_and_leaves_nothing_behind() {
    let sandbox = common::boot();
    let footprint = Footprint::of(&sandbox);

    let owner = Command::new("busctl")
        .arg(format!("--address={}", sandbox.bus_address()))
        .args([
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
        ])
        .args(["NameHasOwner", "s", "org.freedesktop.systemd1"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&owner.stdout).trim(),
        "b true",
        "{owner:?}"
    );
    assert_eq!(
        systemctl(&sandbox, &["is-system-running"]).trim(),
        "running"
    );
    assert!(sandbox.bus_address().ends_with("/dbus/system_bus_socket"));
    assert!(sandbox.state_dir().join("units").is_dir());

    // Inside: its own PID 1, the caller's working directory, the sandbox's journal.
    let inside = sandbox
        .command("sh")
        .args(["-c", "cat /proc/1/comm; pwd"])
        .current_dir("/usr")
        .output();
    assert_eq!(
        String::from_utf8_lossy(&inside.unwrap().stdout),
        "systemd\n/usr\n"
    );
    assert!(sandbox.journal("dbus.service").contains("Started"));

    sandbox.shutdown().unwrap();
    footprint.assert_nothing_left();
}

#[test]
fn what_services_write_stays_in_the_sandbox() {
    let sandbox = common::boot();
    let footprint = Footprint::of(&sandbox);
    start_probe_service(&sandbox);
    for dir in PROBE_DIRECTORIES {
        assert!(!Path::new(dir).exists(), "{dir} was created on the host");
    }
    sandbox.shutdown().unwrap();
    footprint.assert_nothing_left();
}

#[test]
fn a_command_still_running_inside_does_not_hold_up_the_teardown() {
    let sandbox = common::boot();
    let footprint = Footprint::of(&sandbox);
    let mut running = sandbox.command("sleep").arg("infinity").spawn().unwrap();
    wait_for("the command to run inside", Duration::from_secs(10), || {
        let inside = sandbox
            .command("pgrep")
            .args(["-x", "sleep"])
            .output()
            .unwrap();
        inside.status.success()
    });

    let started = Instant::now();
    sandbox.shutdown().unwrap();
    // A halt left to end the command stalls in about half the runs (nsenter stops itself when
    // systemd-shutdown SIGSTOPs its child) and only ends with the SIGKILL after 15 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "teardown took {:?}",
        started.elapsed()
    );
    assert!(!running.wait().unwrap().success());
    footprint.assert_nothing_left();
}

#[test]
fn a_panicking_test_still_tears_its_sandbox_down() {
    let (mut child, footprint) = start_child("panic");
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child test was meant to fail");
    footprint.assert_nothing_left();
}

#[test]
fn a_sandbox_never_dropped_is_removed_at_exit() {
    let (mut child, footprint) = start_child("static");
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    assert!(
        child.wait().unwrap().success(),
        "the child test was meant to pass"
    );
    // script(1) and unshare(1) die just after the child, of PR_SET_PDEATHSIG and of PID 1's end.
    wait_for(
        "the child's script(1) and unshare(1) to die",
        Duration::from_secs(5),
        || footprint.leftovers().is_empty(),
    );
}

#[test]
fn a_killed_launcher_takes_its_sandbox_down_and_the_rest_is_reaped() {
    let (mut child, footprint) = start_child("killed");
    child.kill().unwrap();
    child.wait().unwrap();
    // PR_SET_PDEATHSIG brings the namespace down without anyone's help...
    wait_for(
        "the sandbox's PID 1 to die with its launcher",
        Duration::from_secs(10),
        || !Path::new(&format!("/proc/{}", footprint.pid1)).exists(),
    );
    // ...and the stale cleanup of any later boot removes its cgroups and state directory.
    remove_stale_sandboxes().unwrap();
    footprint.assert_nothing_left();
}

/// Runs one test of this binary in a child process with a sandbox, and returns once the child
/// reports that the sandbox is up. The child then waits for a line on its stdin.
fn start_child(mode: &str) -> (std::process::Child, Footprint) {
    let mut child = Command::new(env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let booted = stdout
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| Some(line.split_once(BOOTED)?.1.to_owned()));
    let Some(booted) = booted else {
        let mut error = String::new();
        stderr.read_to_string(&mut error).unwrap();
        panic!("the child test reported no sandbox:\n{error}");
    };
    // The child's own report and panic message would only clutter this test's output.
    thread::spawn(move || stdout.for_each(drop));
    thread::spawn(move || io::copy(&mut stderr, &mut io::sink()));
    let (pid1, state_dir) = booted.trim().split_once(' ').unwrap();
    let footprint = Footprint::from_parts(pid1.parse().unwrap(), Path::new(state_dir));
    (child, footprint)
}

/// The body of the child processes of the tests above; does nothing in a normal run. Once its
/// sandbox is up, with a probe service (whose PrivateTmp= directory in the host's /tmp only a
/// halt would remove), it waits for a line on stdin, then fails ("panic") or passes with the
/// sandbox kept in a static, which is never dropped ("static").
#[test]
fn child_process() {
    let Ok(mode) = env::var(CHILD_MODE) else {
        return;
    };
    let sandbox = common::boot();
    start_probe_service(&sandbox);
    println!(
        "{BOOTED} {} {}",
        sandbox.pid1(),
        sandbox.state_dir().display()
    );
    std::io::stdin().read_line(&mut String::new()).unwrap();
    match mode.as_str() {
        "static" => {
            static KEPT: OnceLock<Sandbox> = OnceLock::new();
            assert!(KEPT.set(sandbox).is_ok());
        }
        _ => panic!("a failing test with a sandbox"),
    }
}
