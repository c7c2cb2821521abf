//! Hostile traffic against the Platform Server of a running stack: malformed, oversized,
//! traversal and slow-loris requests, bounded in count and time, on the sandbox's loopback.
//! Afterwards no daemon has crashed, memory stayed bounded, and real requests still work.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgb, RgbImage};

use crate::fixture::{COMPONENTS, Stack, unit};

const ROUNDS: usize = 400;
const CLIENTS: usize = 8;
const SLOW_CLIENTS: usize = 100;

/// Requests no server should choke on.
const HOSTILE: &[&[u8]] = &[
    b"GET /is/image/shop/shoe?wid=abc HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/shop/shoe?wid=-5&hei=0 HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/shop/shoe?fit=sideways,7 HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/shop/shoe?qlt=900&fmt=bmp HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/shop/shoe?wid=100000&hei=100000 HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/shop/shoe?scl=0.00001 HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/../../etc/passwd HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/content/shop/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/content/shop/..%5c..%5cetc%5cpasswd HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/content/%2fetc%2fpasswd HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/shop/shoe%00.png HTTP/1.1\r\nHost: l\r\n\r\n",
    b"GET /is/image/nowhere/nothing HTTP/1.1\r\nHost: l\r\n\r\n",
    b"DELETE /is/image/shop/shoe HTTP/1.1\r\nHost: l\r\n\r\n",
    b"POST /is/image/shop/shoe HTTP/1.1\r\nHost: l\r\nContent-Length: 99999999\r\n\r\nxx",
    b"GET /is/image/shop/shoe HTTP/1.1\r\nHost: l\r\nContent-Length: -1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"\r\n\r\n\r\n",
];

fn catalog() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile");
    let dir = root.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    RgbImage::from_fn(300, 200, |x, y| Rgb([x as u8, y as u8, 0]))
        .save_with_format(dir.join("shoe.png"), ImageFormat::Png)
        .unwrap();
    root
}

/// Sends `request` on a fresh connection and reads whatever comes back, within bounds.
fn send(request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect("127.0.0.1:8080").ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request).ok()?;
    // The request is all there is: a server waiting for more would hold the client otherwise.
    stream.shutdown(Shutdown::Write).ok()?;
    let mut answer = Vec::new();
    let _ = stream.take(1 << 20).read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer[..answer.len().min(16)]).into_owned();
    head.split_whitespace().nth(1)?.parse().ok()
}

/// Oversized requests: a huge URL and a huge header block.
fn oversized() -> Vec<Vec<u8>> {
    let long_path = format!(
        "GET /is/image/shop/{} HTTP/1.1\r\nHost: l\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let big_header = format!(
        "GET /is/image/shop/shoe HTTP/1.1\r\nHost: l\r\nX-Big: {}\r\n\r\n",
        "b".repeat(256 << 10)
    );
    let many_headers = format!(
        "GET /is/image HTTP/1.1\r\n{}\r\n",
        "X-A: 1\r\n".repeat(5000)
    );
    vec![
        long_path.into_bytes(),
        big_header.into_bytes(),
        many_headers.into_bytes(),
    ]
}

#[test]
fn hostile_traffic_crashes_nothing_and_memory_stays_bounded() {
    let stack = Stack::serving(&catalog());
    stack.cli(&["start"]).expect(0);
    let network = stack.sandbox.network().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let server_errors = Arc::new(AtomicU64::new(0));

    // Slow-loris: connections that dribble a header and never finish it.
    let slow = {
        let network = network.clone();
        thread::spawn(move || {
            network.enter().unwrap();
            let mut open: Vec<TcpStream> = (0..SLOW_CLIENTS)
                .filter_map(|_| TcpStream::connect("127.0.0.1:8080").ok())
                .collect();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                open.retain_mut(|s| s.write_all(b"X-Slow: 1\r\n").is_ok());
                thread::sleep(Duration::from_millis(500));
            }
            open.len()
        })
    };

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (network, sent, server_errors) =
                (network.clone(), sent.clone(), server_errors.clone());
            thread::spawn(move || {
                network.enter().unwrap();
                let oversized = oversized();
                let all: Vec<&[u8]> = HOSTILE
                    .iter()
                    .copied()
                    .chain(oversized.iter().map(Vec::as_slice))
                    .collect();
                for round in 0..ROUNDS {
                    let request = all[(round + i) % all.len()];
                    if send(request).is_some_and(|status| status >= 500) {
                        server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Sample the stack's memory while it is under attack, where systemd can account for it.
    let measured = stack.sandbox.has_controller("memory");
    let mut peak = 0u64;
    while clients.iter().any(|c| !c.is_finished()) {
        if measured {
            let current = stack.show("imageserving.slice", "MemoryCurrent");
            let bytes = current.parse::<u64>();
            peak = peak.max(bytes.unwrap_or_else(|_| panic!("MemoryCurrent: {current}")));
        }
        thread::sleep(Duration::from_millis(50));
    }
    for c in clients {
        c.join().unwrap();
    }
    slow.join().unwrap();

    let sent = sent.load(Ordering::Relaxed);
    println!("hostile traffic: {sent} requests and {SLOW_CLIENTS} slow-loris connections");
    assert_eq!(
        server_errors.load(Ordering::Relaxed),
        0,
        "a hostile request caused a 5xx"
    );
    for c in COMPONENTS {
        assert_eq!(stack.show(&unit(c), "NRestarts"), "0", "{c} crashed");
        assert_eq!(stack.show(&unit(c), "ActiveState"), "active", "{c}");
    }
    // Far below the units' ceilings (MemoryMax= 512M for ps, 1G for es and svg).
    if measured {
        println!(
            "peak stack memory {:.1} MiB",
            peak as f64 / (1 << 20) as f64
        );
        assert!(peak > 0 && peak < 256 << 20, "peak memory {peak} bytes");
    } else {
        println!("stack memory not measured: the sandbox's systemd has no memory controller");
    }
    let response = stack.get("/is/image/shop/shoe?wid=150&fmt=png");
    assert_eq!(response.status, 200, "{}", response.text());
}
