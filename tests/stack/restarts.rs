//! Restarts lose no request. systemd holds the listening sockets, so while a component restarts
//! new connections wait in the kernel's queue; the daemons drain their open connections before
//! they exit, and the Platform Server retries a renderer request that met a closing connection.
//!
//! A matrix of cells, {status document, cached image, uncached image through es, uncached SVG
//! through svg} x {keep-alive, `Connection: close`}: in each, clients send requests back to back
//! while es, ps, svg and the whole stack restart in turn, and every failure (a socket error or a
//! non-2xx answer) is counted with its cause. The clients never retry.
//!
//! Its own test binary, so that no other sandbox competes for the CPU while it runs.
//! `RESTARTS_SCALE=N` multiplies its requests and restarts (`make bench-restarts`).

pub mod fixture;

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgb, RgbImage};
use imageserving_sandbox::Network;

use fixture::{COMPONENTS, Stack, unit};

/// Client threads sending requests back to back.
const CLIENTS: usize = 8;
/// How long a client waits on a socket before it calls the request lost: a restart takes a
/// fraction of a second, so only a request nobody will ever answer reaches it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// What one round restarts, in this order, while the load runs.
const ROUND: [&[&str]; 4] = [
    &["restart", "es"],
    &["restart", "ps"],
    &["restart", "svg"],
    &["restart"],
];

/// What a cell's clients ask for.
#[derive(Debug, Clone, Copy)]
enum Target {
    Status,
    Cached,
    UncachedImage,
    UncachedSvg,
}

impl Target {
    const ALL: [Target; 4] = [
        Target::Status,
        Target::Cached,
        Target::UncachedImage,
        Target::UncachedSvg,
    ];

    fn label(self) -> &'static str {
        match self {
            Target::Status => "status document",
            Target::Cached => "cached image",
            Target::UncachedImage => "uncached image (es)",
            Target::UncachedSvg => "uncached SVG (svg)",
        }
    }

    /// Requests per cell at scale 1: renders are slow, the others are not.
    fn volume(self) -> u64 {
        match self {
            Target::Status | Target::Cached => 20_000,
            Target::UncachedImage | Target::UncachedSvg => 3_000,
        }
    }

    /// The `n`th request of the run: uncached ones never repeat (65,536 sizes per source).
    fn path(self, n: u64) -> String {
        let (wid, hei) = (16 + n % 256, 16 + (n / 256) % 256);
        match self {
            Target::Status => "/is/image".to_owned(),
            Target::Cached => "/is/image/shop/shoe?wid=120&fmt=png".to_owned(),
            Target::UncachedImage => format!("/is/image/shop/shoe?wid={wid}&hei={hei}&fmt=png"),
            Target::UncachedSvg => format!("/is/image/shop/logo?wid={wid}&hei={hei}&fmt=png"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    KeepAlive,
    Close,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::Close => "Connection: close",
        }
    }
}

/// Where a request failed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Connect,
    Send,
    Receive,
    Status,
}

impl Stage {
    const ALL: [Stage; 4] = [Stage::Connect, Stage::Send, Stage::Receive, Stage::Status];
}

struct Failure {
    stage: Stage,
    message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.stage, self.message)
    }
}

fn fail(stage: Stage) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure {
        stage,
        message: e.to_string(),
    }
}

/// The restarts as the clients see them: odd while one is under way.
#[derive(Default)]
struct Restarts(AtomicU64);

impl Restarts {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether a request that started at `then` overlapped a restart.
    fn overlapped(&self, then: u64) -> bool {
        then % 2 == 1 || self.now() != then
    }

    fn during(&self, restart: impl FnOnce()) {
        self.0.fetch_add(1, Ordering::SeqCst);
        restart();
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    requests: u64,
    failures: Vec<Failure>,
    /// Latencies of the requests that overlapped a restart, in microseconds.
    during_restarts: Vec<u64>,
}

/// What a cell's clients share.
struct Load {
    target: Target,
    mode: Mode,
    /// Numbers the requests, so uncached ones are all different.
    next: Arc<AtomicU64>,
    done: AtomicU64,
    stop: AtomicBool,
    restarts: Restarts,
}

/// A connection that may carry several requests.
struct Connection(BufReader<TcpStream>);

impl Connection {
    fn open(address: SocketAddr) -> Result<Connection, Failure> {
        let stream =
            TcpStream::connect_timeout(&address, CLIENT_TIMEOUT).map_err(fail(Stage::Connect))?;
        stream
            .set_read_timeout(Some(CLIENT_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(CLIENT_TIMEOUT)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(fail(Stage::Connect))?;
        Ok(Connection(BufReader::new(stream)))
    }

    /// Sends one GET and reads its whole answer; `Ok(true)` if the connection stays open.
    fn get(&mut self, path: &str, mode: Mode) -> Result<bool, Failure> {
        let close = if mode == Mode::Close {
            "Connection: close\r\n"
        } else {
            ""
        };
        write!(
            self.0.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n"
        )
        .map_err(fail(Stage::Send))?;
        let received = |message: &str| Failure {
            stage: Stage::Receive,
            message: message.to_owned(),
        };
        let mut status_line = String::new();
        if self
            .0
            .read_line(&mut status_line)
            .map_err(fail(Stage::Receive))?
            == 0
        {
            return Err(received("the connection closed before an answer"));
        }
        let (mut length, mut keep) = (None, mode == Mode::KeepAlive);
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).map_err(fail(Stage::Receive))? == 0 {
                return Err(received("the connection closed in the response head"));
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(received(&format!("a malformed header line {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                keep &= !value.eq_ignore_ascii_case("close");
            }
        }
        let Some(length) = length else {
            return Err(received("an answer without Content-Length"));
        };
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).map_err(fail(Stage::Receive))?;
        let status_line = status_line.trim_end();
        if !status_line
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('2'))
        {
            // On one line: the status document's reason is in its `*.error=` lines.
            let body = String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned();
            let body: Vec<&str> = body.lines().collect();
            return Err(Failure {
                stage: Stage::Status,
                message: format!("{status_line}: {}", body.join("; ")),
            });
        }
        Ok(keep)
    }
}

/// A client thread inside the sandbox's network namespace, sending until the load stops.
fn client(network: &Network, load: &Load) -> Seen {
    network
        .enter()
        .expect("enter the sandbox's network namespace");
    let address = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut seen = Seen::default();
    let mut open: Option<Connection> = None;
    while !load.stop.load(Ordering::Relaxed) {
        let path = load.target.path(load.next.fetch_add(1, Ordering::Relaxed));
        let (started, restarts) = (Instant::now(), load.restarts.now());
        let result = match open.take() {
            Some(connection) => Ok(connection),
            None => Connection::open(address),
        }
        .and_then(|mut connection| {
            let keep = connection.get(&path, load.mode)?;
            Ok(keep.then_some(connection))
        });
        match result {
            Ok(connection) => open = connection,
            Err(failure) => seen.failures.push(failure),
        }
        seen.requests += 1;
        load.done.fetch_add(1, Ordering::Relaxed);
        if load.restarts.overlapped(restarts) {
            seen.during_restarts
                .push(started.elapsed().as_micros() as u64);
        }
    }
    seen
}

/// One cell's figures.
struct Cell {
    target: Target,
    mode: Mode,
    requests: u64,
    restarts: usize,
    failures: Vec<Failure>,
    during_restarts: Vec<u64>,
}

impl Cell {
    fn failed(&self, stage: Stage) -> usize {
        self.failures.iter().filter(|f| f.stage == stage).count()
    }

    /// The `q` quantile of the latencies during restarts, in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.during_restarts.clone();
        sorted.sort_unstable();
        let Some(last) = sorted.len().checked_sub(1) else {
            return 0.0;
        };
        sorted[(last as f64 * q).round() as usize] as f64 / 1000.0
    }

    fn row(&self) -> String {
        let by_stage: Vec<String> = Stage::ALL
            .iter()
            .map(|&s| format!("{:>7}", self.failed(s)))
            .collect();
        format!(
            "| {:<19} | {:<17} | {:>8} | {:>8} | {:>6} | {} | {:>9.1} | {:>9.1} |",
            self.target.label(),
            self.mode.label(),
            self.restarts,
            self.requests,
            self.failures.len(),
            by_stage.join(" | "),
            self.quantile_ms(0.99),
            self.quantile_ms(1.0),
        )
    }
}

const HEADER: &str = "| requested           | client            | restarts | requests | failed | connect |    send | receive |  status | p99 (ms)  | max (ms)  |\n\
                      |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|";

/// Runs one cell: the load, with `rounds` rounds of restarts spread over `volume` requests.
fn run_cell(
    stack: &Stack,
    target: Target,
    mode: Mode,
    rounds: usize,
    volume: u64,
    next: &Arc<AtomicU64>,
) -> Cell {
    let load = Arc::new(Load {
        target,
        mode,
        next: next.clone(),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        restarts: Restarts::default(),
    });
    let network = stack
        .sandbox
        .network()
        .expect("the sandbox's network namespace");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (network, load) = (network.clone(), load.clone());
            thread::spawn(move || client(&network, &load))
        })
        .collect();
    // Restart number i waits for its share of the requests: every restart happens under load,
    // and the load goes on after the last one.
    let restarts: Vec<&[&str]> = ROUND
        .iter()
        .copied()
        .cycle()
        .take(ROUND.len() * rounds)
        .collect();
    let shares = restarts.len() as u64 + 1;
    let wait_for = |count: u64| {
        let deadline = Instant::now() + Duration::from_secs(300);
        while load.done.load(Ordering::Relaxed) < count {
            assert!(
                Instant::now() < deadline,
                "{} over {}: {} requests in 300 s, waiting for {count}",
                target.label(),
                mode.label(),
                load.done.load(Ordering::Relaxed)
            );
            thread::sleep(Duration::from_millis(5));
        }
    };
    for (i, args) in restarts.iter().enumerate() {
        wait_for(volume * (i as u64 + 1) / shares);
        load.restarts.during(|| {
            stack.cli(args).expect(0);
        });
    }
    wait_for(volume);
    load.stop.store(true, Ordering::Relaxed);
    let mut cell = Cell {
        target,
        mode,
        requests: 0,
        restarts: restarts.len(),
        failures: Vec::new(),
        during_restarts: Vec::new(),
    };
    for client in clients {
        let seen = client.join().expect("a client thread panicked");
        cell.requests += seen.requests;
        cell.failures.extend(seen.failures);
        cell.during_restarts.extend(seen.during_restarts);
    }
    cell
}

/// A photo-like raster and an SVG, in catalog `shop`.
fn catalog() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("restarts");
    let dir = root.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    // Small, so that an uncached request costs the Image Server little more than its HTTP.
    RgbImage::from_fn(160, 120, |x, y| Rgb([x as u8, y as u8, (x + y) as u8]))
        .save_with_format(dir.join("shoe.png"), ImageFormat::Png)
        .unwrap();
    std::fs::write(
        dir.join("logo.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300" viewBox="0 0 400 300">
<rect width="400" height="300" fill="#fd8"/><circle cx="200" cy="150" r="120" fill="#37c"/>
<path d="M60 260 L200 40 L340 260 Z" fill="none" stroke="#222" stroke-width="12"/></svg>"##,
    )
    .unwrap();
    root
}

fn scale() -> usize {
    match std::env::var("RESTARTS_SCALE") {
        Ok(value) => value
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("RESTARTS_SCALE={value:?}: expected a positive integer")),
        Err(_) => 1,
    }
}

#[test]
fn restarts_under_load_lose_no_request() {
    let scale = scale();
    let stack = Stack::serving(&catalog());
    let sandbox = &stack.sandbox;
    for c in COMPONENTS {
        // A restart every few hundred milliseconds is the point here, not a crash loop.
        let limit = "[Unit]\nStartLimitIntervalSec=0\n";
        sandbox
            .write_drop_in(&unit(c), "60-no-start-limit", limit)
            .unwrap();
    }
    // One journal line per request would cost the load a CPU.
    let quiet = "[Service]\nEnvironment=IMAGESERVING_PS_ACCESS_LOG=false\n";
    sandbox
        .write_drop_in(&unit("ps"), "60-no-access-log", quiet)
        .unwrap();
    sandbox.daemon_reload().unwrap();
    stack.cli(&["start"]).expect(0);

    let next = Arc::new(AtomicU64::new(0));
    let mut cells = Vec::new();
    for target in Target::ALL {
        for mode in [Mode::KeepAlive, Mode::Close] {
            let volume = target.volume() * scale as u64;
            let cell = run_cell(&stack, target, mode, scale, volume, &next);
            println!("{}", cell.row());
            cells.push(cell);
            for c in COMPONENTS {
                assert_eq!(stack.show(&unit(c), "ActiveState"), "active", "{c}");
            }
        }
    }

    println!("\nRestarts under load, {CLIENTS} clients; latency of the requests during restarts:");
    println!("{HEADER}");
    for cell in &cells {
        println!("{}", cell.row());
    }
    let failed: Vec<String> = cells
        .iter()
        .flat_map(|cell| {
            cell.failures
                .iter()
                .map(move |f| format!("{} over {}: {f}", cell.target.label(), cell.mode.label()))
        })
        .collect();
    for line in failed.iter().take(50) {
        println!("  {line}");
    }
    let requests: u64 = cells.iter().map(|c| c.requests).sum();
    assert!(
        failed.is_empty(),
        "{} of {requests} requests failed during restarts (the first 50 are listed above)",
        failed.len()
    );
}
