//! How `ImageServing -H … status` scales with the hosts of a tier: the status of 1, 2 and 4
//! hosts, each a private systemd with the stack and a real sshd (the fleet tests' tier), against
//! `systemctl -H HOST show -p …` of the same properties of one host. Prints medians and ratios.
//!
//! Run with `make bench-fleet`. Four sshds on the same two cores would measure the CPU, not
//! the concurrency: every byte between ssh and a host's sshd goes through a relay here that
//! holds it for [`LATENCY`], as a network between data centres would, so the calls spend their
//! time waiting, as they do on a real tier.

mod common;
#[path = "../tests/stack/fixture.rs"]
pub mod fixture;
#[path = "../tests/stack/hosts.rs"]
pub mod hosts;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use imageserving_sandbox::Network;

use common::{PROPERTIES, UNITS};
use hosts::Tier;

/// One way, each direction: a round trip takes twice as long.
const LATENCY: Duration = Duration::from_millis(10);
const RUNS: usize = 15;
const HOSTS: [&str; 4] = ["a", "b", "c", "d"];

fn main() {
    let tier = Tier::boot(&HOSTS);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-fleet");
    std::fs::create_dir_all(&dir).expect("create the benchmark's directory");
    // The tier's configuration, each host reached through its relay instead of straight into
    // its network namespace: ssh takes the first value it reads.
    let mut config = String::new();
    for host in &tier.hosts {
        let port = relay(host.stack.sandbox.network().expect("a host's network"));
        config.push_str(&format!(
            "Host {}\n  ProxyCommand none\n  HostName 127.0.0.1\n  Port {port}\n",
            host.name
        ));
    }
    config.push_str(&format!(
        "Match all\nInclude {}\n",
        tier.ssh_config().display()
    ));
    std::fs::write(dir.join("ssh_config"), config).expect("write the ssh configuration");
    // systemd 252 runs the `ssh` of PATH (later versions read SYSTEMD_SSH, a path only): both
    // tools run the same script, found first in PATH by systemctl, given to the tool.
    let ssh = dir.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            dir.join("ssh_config").display()
        ),
    )
    .expect("write the ssh script");
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755))
        .expect("make the ssh script executable");

    let tool = |hosts: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ImageServing"));
        command
            .args(["-H", &hosts.join(","), "status"])
            .env("IMAGESERVING_SSH", &ssh);
        command
    };
    let mut systemctl = Command::new("systemctl");
    systemctl
        .args(["-H", "a", "show", "-p", PROPERTIES])
        .args(UNITS)
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );

    let baseline = median(&mut systemctl);
    // The floor: an ssh login that runs nothing.
    let login = median(Command::new(&ssh).args(["a", "true"]));
    let one = median(&mut tool(&HOSTS[..1]));
    let two = median(&mut tool(&HOSTS[..2]));
    let four = median(&mut tool(&HOSTS));
    println!(
        "status over ssh, {} ms each way between ssh and sshd, median of {RUNS}:",
        LATENCY.as_millis()
    );
    println!("| measured | time | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, took: Duration, name: &str, base: Duration, target: &str| {
        println!(
            "| {what} | {:.1} ms | {name}: {:.1} ms | {:.2}× | {target} |",
            ms(took),
            ms(base),
            took.as_secs_f64() / base.as_secs_f64()
        );
    };
    row(
        "`ImageServing -H a status`",
        one,
        "`systemctl -H a show -p …`",
        baseline,
        "≤ 1.0×",
    );
    row("`ssh a true`, a bare login", login, "1 host", one, "");
    row("`ImageServing -H a,b status`", two, "1 host", one, "");
    row(
        "`ImageServing -H a,b,c,d status`",
        four,
        "1 host",
        one,
        "≤ 2×",
    );
}

/// Listens on a loopback port of this machine and forwards each connection to the host's
/// sshd, inside its network namespace, every byte [`LATENCY`] late; returns the port.
fn relay(network: Network) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    let port = listener.local_addr().expect("the relay's port").port();
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let network = network.clone();
            thread::spawn(move || {
                let sshd = thread::spawn(move || {
                    network.enter()?;
                    TcpStream::connect(("127.0.0.1", 22))
                })
                .join()
                .expect("the thread that connects inside");
                let Ok(sshd) = sshd else { return };
                if let (Ok(client_too), Ok(sshd_too)) = (client.try_clone(), sshd.try_clone()) {
                    late(client, sshd_too);
                    late(sshd, client_too);
                }
            });
        }
    });
    port
}

/// Copies `from` to `to`, each chunk [`LATENCY`] after it arrived, in order.
fn late(mut from: TcpStream, mut to: TcpStream) {
    // Each chunk goes out as it is due: Nagle's algorithm would hold small ones back for the
    // peer's delayed acknowledgement.
    let _ = to.set_nodelay(true);
    let (chunks, arrived) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buffer = [0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            if chunks
                .send((Instant::now() + LATENCY, buffer[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    thread::spawn(move || {
        for (due, chunk) in arrived {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The median time `command` takes, over [`RUNS`] runs after one to warm up; each must succeed.
fn median(command: &mut Command) -> Duration {
    let mut times: Vec<Duration> = (0..=RUNS)
        .map(|_| {
            let started = Instant::now();
            let output = command.output().expect("run the command");
            let took = started.elapsed();
            assert!(
                output.status.success(),
                "{command:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            took
        })
        .skip(1)
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
