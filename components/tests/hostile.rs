//! Hostile and malformed traffic, bounded in count and time, on loopback only: afterwards
//! every daemon must be alive, within sane memory, and serving correctly.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Stack;

/// Raw requests that a well-behaved client never sends.
fn hostile_requests() -> Vec<Vec<u8>> {
    let mut r: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03\xff\xfe garbage\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /is/image HTTP/0.9\r\n\r\n".to_vec(),
        b"BREW /is/image HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /is/image HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(),
        b"GET /is/image HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"GET /is/image HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nabc".to_vec(),
        b"GET http://evil.invalid/is/image/cat/photo?wid=10 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /is/image/cat/photo?wid=10 HTTP/1.1\r\nHost: x\r\n\r\nGET /is/image/cat/photo?wid=11 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /is/image/cat/photo HTTP/1.1\r\nHost: x\r\nIf-None-Match: \xff\xfe\r\n\r\n".to_vec(),
        b"GET /is/image/cat/photo\x00?wid=1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /is/content/cat/\xc0\xae\xc0\xae/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /is/image/cat/photo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n".to_vec(),
        b"GET /is/image/cat/photo?wid=10 HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
    ];
    let queries = [
        "wid=99999999999",
        "wid=4294967295&hei=4294967295",
        "scl=1e308",
        "scl=-1",
        "scl=inf",
        "fit=crop,1,1&wid=5",
        "bgc=%F0%9F%98%80",
        "qlt=-0",
        "wid=1&hei=1&fit=wrap,1",
        "wid=2000&hei=1&fit=crop,1",
        "wid=1&hei=2000&fit=stretch,1",
        "scl=1000000",
        "req=props&fmt=gif",
        "wid=%",
        "%%%%=%%%%",
        "=&=&=&",
        "wid==5",
        "fmt=png-alpha&bgc=00000000&wid=2000&fit=fit,1",
    ];
    for q in queries {
        r.push(
            format!("GET /is/image/cat/photo?{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        );
    }
    let long_query = "wid=1&".repeat(5000);
    r.push(
        format!("GET /is/image/cat/photo?{long_query} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
    );
    let deep = "a/".repeat(3000);
    r.push(format!("GET /is/content/cat/{deep}x HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes());
    let huge_header = "x".repeat(64 * 1024);
    r.push(
        format!("GET /is/image HTTP/1.1\r\nHost: x\r\nX-Big: {huge_header}\r\n\r\n").into_bytes(),
    );
    let many_headers: String = (0..500).map(|i| format!("X-{i}: {i}\r\n")).collect();
    r.push(format!("GET /is/image HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes());
    // Deterministic pseudo-random junk.
    let mut seed = 0x9e37_79b9_u32;
    for len in [1usize, 7, 64, 512, 4096, 20000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        r.push(junk);
    }
    r
}

/// Sends `bytes`, then reads whatever comes back for a short while.
fn fire(addr: SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 8192];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_traffic_leaves_every_daemon_alive_and_correct() {
    let mut stack = Stack::start_with(&[
        ("IMAGESERVING_HTTP_HEADER_TIMEOUT", "1"),
        ("IMAGESERVING_PS_MAX_CONNECTIONS", "16"),
    ]);
    let requests = hostile_requests();
    let targets = [stack.ps, stack.es, stack.svg];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in requests.chunks(8) {
            scope.spawn(move || {
                for target in targets {
                    for r in chunk {
                        fire(target, r);
                    }
                }
            });
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the burst took too long"
    );
    assert!(stack.all_alive(), "a daemon died");

    let r = stack.get("/is/image/cat/photo?wid=200&hei=100&fit=crop");
    assert_eq!(r.size(), (200, 100));
    for daemon in &stack.daemons {
        let rss = rss_kib(daemon.child.id());
        assert!(
            rss < 300 * 1024,
            "{} uses {rss} KiB after the burst",
            daemon.name
        );
    }
}

#[test]
fn slow_and_idle_clients_are_cut_off_and_cannot_starve_others() {
    let stack = Stack::start_with(&[
        ("IMAGESERVING_HTTP_HEADER_TIMEOUT", "1"),
        ("IMAGESERVING_PS_MAX_CONNECTIONS", "8"),
    ]);
    // More silent or dribbling clients than the connection limit.
    let mut loris: Vec<TcpStream> = (0..12)
        .map(|i| {
            let mut s = TcpStream::connect(stack.ps).unwrap();
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /is/image HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            }
            s
        })
        .collect();
    // A normal client still gets its answer once the slow ones time out.
    let served = stack.get("/is/image/cat/photo?wid=64");
    assert_eq!(served.size(), (64, 48));
    // Every slow connection is closed by the server within the deadline.
    for s in &mut loris {
        s.set_read_timeout(Some(common::DEADLINE)).unwrap();
        let mut buf = [0u8; 1024];
        let started = Instant::now();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(started.elapsed() < common::DEADLINE);
    }
}
