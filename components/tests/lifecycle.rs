//! The daemons as systemd runs them: configuration errors at start, readiness, status and
//! watchdog notifications, SIGTERM, socket activation, and a renderer going away.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Stack, daemon_command, scratch_dir, wait_for};

fn run_to_exit(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_broken_configuration_stops_the_start_with_one_line() {
    let dir = scratch_dir("config");
    let file = dir.join("broken.toml");
    let cases = [
        ("[es]\nlisten = \"nowhere\"\n", vec![], "es.listen"),
        ("[ps]\ncache_size = 1\n", vec![], "ps.cache_size"),
        ("[image\nmax_pix = 1\n", vec![], "line 1"),
        ("[image]\nmax_pix = \"huge\"\n", vec![], "image.max_pix"),
        (
            "",
            vec![("IMAGESERVING_PS_CACHE_BYTES", "lots")],
            "IMAGESERVING_PS_CACHE_BYTES",
        ),
    ];
    for name in ["ps", "es", "svg"] {
        for (text, env, key) in &cases {
            std::fs::write(&file, text).unwrap();
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let (code, _, err) = run_to_exit(&mut daemon_command(name, &file, &env));
            assert_eq!(code, 1, "{name} {text:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{name}: {err:?}");
            assert!(err.contains(key), "{name}: {err:?} does not name {key}");
            if env.is_empty() {
                assert!(
                    err.contains("broken.toml"),
                    "{name}: {err:?} does not name the file"
                );
            }
        }
    }
    let missing = dir.join("missing.toml");
    let (code, _, err) = run_to_exit(&mut daemon_command("es", &missing, &[]));
    assert_eq!(code, 1);
    assert!(err.contains("missing.toml"), "{err}");

    std::fs::write(&file, "[es]\nworkers = 3\n").unwrap();
    let (code, out, _) = run_to_exit(daemon_command("es", &file, &[]).arg("--check-config"));
    assert_eq!(code, 0);
    assert!(
        out.contains("workers = 3") && out.contains("listen = \"127.0.0.1:27345\""),
        "{out}"
    );
    let (code, out, _) = run_to_exit(Command::new(common::binary("ps")).arg("--help"));
    assert_eq!(code, 0);
    assert!(
        out.contains("--config") && out.contains("IMAGESERVING_CONFIG"),
        "{out}"
    );
}

/// A stand-in for systemd's notification socket.
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn new() -> Self {
        let path = scratch_dir("notify").join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// Waits until a received message contains `line`.
    fn expect(&mut self, line: &str) {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if self
                .seen
                .iter()
                .any(|m| m.lines().any(|l| l.starts_with(line)))
            {
                return;
            }
            assert!(
                start.elapsed() < common::DEADLINE,
                "no {line} among {:?}",
                self.seen
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    fn drain(&mut self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        self.socket.set_nonblocking(true).unwrap();
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
        self.seen.clone()
    }
}

#[test]
fn notifies_readiness_status_watchdog_and_stopping() {
    let mut stack = Stack::prepare(&[("IMAGESERVING_HTTP_STATUS_INTERVAL", "1")]);
    let mut notify = NotifySocket::new();
    let mut env = stack.env.clone();
    env.push(("NOTIFY_SOCKET".into(), notify.path.display().to_string()));
    env.push(("WATCHDOG_USEC".into(), "400000".into()));

    // The Platform Server listens at once but is not ready while the Image Server is away.
    let mut cmd = daemon_command("ps", &stack.config, &[]);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut ps = common::spawn("ps", cmd, &stack.dir);
    wait_for(
        || stack.get("/is/image").status == 503,
        "ps to answer without es",
    );
    let early = stack.get("/is/image/cat/photo?wid=10");
    assert_eq!(early.status, 503);
    assert!(
        early.text().contains("Image Server (es)"),
        "{}",
        early.text()
    );
    assert!(
        !notify.drain().iter().any(|m| m.contains("READY=1")),
        "ready before es: {:?}",
        notify.seen
    );

    stack.launch("es");
    notify.expect("READY=1");
    notify.expect("WATCHDOG=1");
    notify.expect("STATUS=");
    assert!(
        notify.seen.iter().any(|m| m.contains("requests")),
        "{:?}",
        notify.seen
    );

    // SIGTERM: STOPPING=1, then a clean exit well within the stop timeout.
    let started = Instant::now();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(ps.child.id() as i32, libc::SIGTERM) };
    notify.expect("STOPPING=1");
    let mut status = None;
    wait_for(
        || {
            status = ps.child.try_wait().unwrap();
            status.is_some()
        },
        "ps to exit",
    );
    assert!(status.unwrap().success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        stack.log("ps.out").contains("stopped"),
        "{}",
        stack.log("ps.out")
    );

    // The renderers notify readiness as soon as they listen.
    let mut es_notify = NotifySocket::new();
    let mut cmd = daemon_command("svg", &stack.config, &stack.env);
    cmd.env("NOTIFY_SOCKET", &es_notify.path);
    let _svg = common::spawn("svg", cmd, &stack.dir);
    es_notify.expect("READY=1");
}

#[test]
fn takes_its_socket_from_systemd_and_serves_connections_queued_before_it_started() {
    let stack = Stack::prepare(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    // A client connects and sends its request while no daemon runs: the kernel queues it.
    let mut client = std::net::TcpStream::connect(address).unwrap();
    client
        .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    client.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    // `exec` keeps the shell's PID, so $$ is the daemon's PID as LISTEN_PID must be.
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --config \"$1\"",
        common::binary("es"),
    ])
    .arg(&stack.config)
    .env_remove("LISTEN_PID")
    .env_remove("NOTIFY_SOCKET")
    .envs(stack.env.iter().map(|(k, v)| (k, v)))
    .env("IMAGESERVING_ES_LISTEN", "127.0.0.1:1");
    // SAFETY: dup2 and prctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // fd 3 without close-on-exec, whether or not it already is the listener.
            let moved = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let _es = common::spawn("es", cmd, &stack.dir);
    drop(listener);
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).unwrap();
    let reply = common::parse_reply(&raw);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.text().contains("name=Image Server (es)"),
        "{}",
        reply.text()
    );
    assert!(
        stack.log("es.out").contains("socket passed by systemd"),
        "{}",
        stack.log("es.out")
    );
    assert_eq!(common::get(address, "/status").status, 200);
}

#[test]
fn a_renderer_that_is_down_is_named_in_a_503() {
    let mut stack = Stack::start();
    assert_eq!(stack.get("/is/image/cat/photo?wid=10").status, 200);
    stack.kill("es");
    let down = stack.get("/is/image/cat/photo?wid=11");
    assert_eq!(down.status, 503, "{}", down.text());
    assert!(down.text().contains("Image Server (es)"), "{}", down.text());
    let status = stack.get("/is/image");
    assert_eq!(status.status, 503);
    assert!(
        status.text().contains("imageServer.status=unavailable"),
        "{}",
        status.text()
    );
    assert!(
        status.text().contains("svgServer.status=ok"),
        "{}",
        status.text()
    );
    // SVG sources do not need the Image Server.
    assert_eq!(stack.get("/is/image/cat/drawing?wid=20").status, 200);
    stack.kill("svg");
    let svg = stack.get("/is/image/cat/drawing?wid=21");
    assert_eq!(svg.status, 503);
    assert!(svg.text().contains("SVG server (svg)"), "{}", svg.text());

    // Back again: the pool reconnects.
    stack.launch("es");
    stack.wait_until(|s| s.get("/is/image/cat/photo?wid=12").status == 200);
}

/// Reads one answer from a keep-alive connection: its head (lower-case header names) and body.
fn read_answer(reader: &mut std::io::BufReader<std::net::TcpStream>) -> (String, Vec<u8>) {
    use std::io::BufRead;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert_ne!(reader.read_line(&mut line).unwrap(), 0, "closed in: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in: {head}"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn on_sigterm_open_connections_are_served_with_connection_close_then_closed() {
    let mut stack = Stack::prepare(&[("IMAGESERVING_ES_DRAIN_WINDOW", "5")]);
    stack.launch("es");
    wait_for(
        || common::get(stack.es, "/status").status == 200,
        "es to answer",
    );
    let open = || {
        let stream = std::net::TcpStream::connect(stack.es).unwrap();
        stream.set_read_timeout(Some(common::DEADLINE)).unwrap();
        std::io::BufReader::new(stream)
    };
    let request = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
    let (mut busy, mut idle) = (open(), open());
    for connection in [&mut busy, &mut idle] {
        connection.get_mut().write_all(request).unwrap();
        let (head, _) = read_answer(connection);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }

    let es = &mut stack.daemons[0];
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(es.child.id() as i32, libc::SIGTERM) };
    // It stops accepting at once (here nothing holds its socket, so new clients are refused)...
    wait_for(
        || std::net::TcpStream::connect(stack.es).is_err(),
        "es to stop accepting",
    );
    // ...but answers a request on an open connection, announcing the close.
    busy.get_mut().write_all(request).unwrap();
    let (head, body) = read_answer(&mut busy);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("name=Image Server (es)"));
    assert_eq!(
        busy.read(&mut [0; 1]).unwrap(),
        0,
        "closed after that answer"
    );
    // A connection idle for the whole window is closed at its end, then the daemon exits.
    assert_eq!(idle.read(&mut [0; 1]).unwrap(), 0, "idle connection closed");
    let mut status = None;
    wait_for(
        || {
            status = es.child.try_wait().unwrap();
            status.is_some()
        },
        "es to exit",
    );
    assert!(status.unwrap().success(), "{status:?}");
}
