//! Restarts lose no request: systemd holds the listening sockets, so while a component
//! restarts its clients wait in the kernel's queue instead of being refused.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgb, RgbImage};

use crate::fixture::{COMPONENTS, Stack, unit};

/// Clients sending requests back to back during the restarts.
const CONCURRENCY: usize = 8;

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    worst_micros: AtomicU64,
}

fn catalog() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("restarts");
    let dir = root.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    RgbImage::from_fn(800, 600, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 64]))
        .save_with_format(dir.join("shoe.png"), ImageFormat::Png)
        .unwrap();
    root
}

/// One request on a fresh connection; `Err` says what failed.
fn request(width: u32) -> Result<(), String> {
    let mut stream = TcpStream::connect("127.0.0.1:8080").map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET /is/image/shop/shoe?wid={width}&fmt=jpeg HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("receive: {e}"))?;
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    if head.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "answer: {}",
            head.lines().next().unwrap_or("(nothing)")
        ))
    }
}

/// A client thread inside the sandbox's network namespace, sending until `stop`.
fn client(net_ns: PathBuf, seed: u32, stop: Arc<AtomicBool>, tally: Arc<Tally>) -> Vec<String> {
    let ns = File::open(net_ns).unwrap();
    // SAFETY: setns() on a namespace descriptor changes only this thread.
    assert_eq!(
        unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    let mut errors = Vec::new();
    let mut n = seed;
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(7);
        let start = Instant::now();
        match request(100 + n % 400) {
            Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                errors.push(e);
                tally.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        let micros = start.elapsed().as_micros() as u64;
        tally.worst_micros.fetch_max(micros, Ordering::Relaxed);
    }
    errors
}

#[test]
fn restarts_under_load_lose_no_request() {
    let stack = Stack::serving(&catalog());
    // Every request goes through to the Image Server.
    stack
        .sandbox
        .drop_in(
            &unit("ps"),
            "60-no-cache",
            "[Service]\nEnvironment=IMAGESERVING_PS_CACHE_BYTES=0\n",
        )
        .unwrap();
    stack.cli(&["start"]).expect(0);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let net_ns = PathBuf::from(format!("/proc/{}/ns/net", stack.sandbox.pid1()));
    let clients: Vec<_> = (0..CONCURRENCY as u32)
        .map(|i| {
            let (net_ns, stop, tally) = (net_ns.clone(), stop.clone(), tally.clone());
            thread::spawn(move || client(net_ns, i * 31, stop, tally))
        })
        .collect();

    let mut restarts: Vec<&[&str]> = Vec::new();
    restarts.extend([&["restart", "es"][..]; 10]);
    restarts.extend([&["restart", "ps"][..]; 10]);
    restarts.extend([&["restart"][..]; 3]);
    for args in restarts {
        let before = tally.ok.load(Ordering::Relaxed);
        stack.cli(args).expect(0);
        // Some traffic between two restarts, so each one happens under load.
        let deadline = Instant::now() + Duration::from_secs(30);
        while tally.ok.load(Ordering::Relaxed) < before + CONCURRENCY as u64 {
            assert!(
                Instant::now() < deadline,
                "no request succeeded after {args:?}"
            );
            thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();

    let ok = tally.ok.load(Ordering::Relaxed);
    let worst = Duration::from_micros(tally.worst_micros.load(Ordering::Relaxed));
    println!(
        "restarts under load: {ok} requests served, {} failed, worst latency {worst:?}",
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} of {} requests failed: {errors:?}",
        errors.len(),
        ok + errors.len() as u64
    );
    for c in COMPONENTS {
        assert_eq!(stack.show(&unit(c), "ActiveState"), "active", "{c}");
    }
}
