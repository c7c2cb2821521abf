//! `ImageServing -H …` across a tier of hosts, each a sandbox of its own with the stack and a
//! real sshd, reached over real ssh.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::fixture::{COMPONENTS, unit};
use crate::hosts::{Host, SSHD_UNIT, Tier};

#[test]
fn status_of_three_hosts_is_one_table_and_a_list_of_documents() {
    let tier = Tier::boot(&["a", "b", "c"]);
    let run = tier.cli(&["-H", "a,b", "-H", "c", "status"]).expect(0);
    for host in ["a", "b", "c"] {
        let rows: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(host))
            .collect();
        assert_eq!(
            rows.len(),
            4,
            "the Supervisor and 3 components of {host}:\n{}",
            run.stdout
        );
        assert!(rows[0].contains("imageserving.target"), "{}", rows[0]);
    }

    let json = tier
        .cli(&["-H", "a,b,c", "status", "--json"])
        .expect(0)
        .json();
    let docs = json.as_array().expect("a list");
    assert_eq!(docs.len(), 3);
    for (doc, host) in docs.iter().zip(&tier.hosts) {
        assert_eq!(doc["host"], host.name.as_str());
        assert_eq!(doc["exit_code"], 0);
        assert!(doc.get("error").is_none(), "{doc}");
        // Each host's document is that host's own stack.
        for (c, name) in doc["components"].as_array().unwrap().iter().zip(COMPONENTS) {
            assert_eq!(c["invocation_id"], host.stack.invocation(name).as_str());
        }
    }
    // A failure systemd recovered from is looked up in that host's own journal.
    let c = &tier.host("c").stack;
    c.systemctl(&["kill", "--signal=SIGKILL", &unit("es")]);
    c.wait_for(&unit("es"), "NRestarts", "1", Duration::from_secs(30));
    c.wait_for(
        &unit("es"),
        "ActiveState",
        "active",
        Duration::from_secs(30),
    );
    let json = tier
        .cli(&["-H", "a,b,c", "status", "--json"])
        .expect(0)
        .json();
    assert_eq!(json[2]["components"][1]["last_failure"]["result"], "signal");
    assert!(json[1]["components"][1]["last_failure"].is_null());
    // One host alone is a list too.
    let one = tier.cli(&["-H", "b", "status", "--json"]).expect(0).json();
    assert_eq!(one.as_array().map(Vec::len), Some(1));
}

#[test]
fn an_unreachable_host_is_a_row_that_says_why_and_the_first_code_wins() {
    let tier = Tier::boot(&["a", "b", "c"]);
    assert!(
        tier.host("b")
            .stack
            .systemctl(&["stop", SSHD_UNIT])
            .status
            .success()
    );
    assert!(
        tier.host("c")
            .stack
            .systemctl(&["stop", "imageserving.target"])
            .status
            .success()
    );

    let run = tier.cli(&["-H", "a,b,c", "status"]).expect(4);
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with(" b ") || l.starts_with("b "))
        .unwrap_or_else(|| panic!("no row of b:\n{}", run.stdout));
    assert!(row.contains("unreachable: ssh refused"), "{row}");
    run.stdout_says("Connection refused");
    for (host, state) in [("a", "active/running"), ("c", "inactive/dead")] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(host) && l.contains(state)),
            "{host} {state}:\n{}",
            run.stdout
        );
    }
    // In the order given: c's 3 (not running) comes before b's 4 (unknown).
    tier.cli(&["-H", "c,b,a", "status"]).expect(3);

    let json = tier
        .cli(&["-H", "a,b,c", "status", "--json"])
        .expect(4)
        .json();
    let b = &json[1];
    assert_eq!(b["host"], "b");
    assert_eq!(b["exit_code"], 4);
    assert_eq!(b["unreachable"], "refused");
    assert!(
        b["error"].as_str().unwrap().contains("cannot reach b"),
        "{b}"
    );
    assert_eq!(json[0]["exit_code"], 0);
    assert_eq!(json[2]["exit_code"], 3);
    assert_eq!(json[2]["supervisor"]["active"], false);
}

#[test]
fn a_host_that_does_not_answer_is_given_up_on_after_the_connect_timeout() {
    let tier = Tier::boot(&["a", "b"]);
    // Its sshd frozen: the connection is accepted, and then nothing comes.
    let frozen = tier
        .host("b")
        .stack
        .systemctl(&["kill", "--signal=SIGSTOP", SSHD_UNIT]);
    assert!(frozen.status.success());
    let run = tier
        .cli(&["-H", "a,b", "--connect-timeout", "2", "status"])
        .expect(4);
    run.stdout_says("unreachable: timeout");
    run.stdout_says("timed out");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("imageserving-es.service")),
        "a is reported:\n{}",
        run.stdout
    );
}

#[test]
fn a_refused_key_a_wrong_host_key_and_a_host_without_systemd_are_told_apart() {
    let tier = Tier::boot(&["a", "b", "c"]);
    tier.host("a").refuse_keys();
    tier.forget_host_key("b");
    tier.host("c").hide_the_bridge();
    let json = tier
        .cli(&["-H", "a,b,c", "status", "--json"])
        .expect(4)
        .json();
    for (doc, (reason, said)) in json.as_array().unwrap().iter().zip([
        ("authentication", "Permission denied"),
        ("authentication", "Host key verification failed"),
        ("no-bridge", "systemd-stdio-bridge: command not found"),
    ]) {
        assert_eq!(doc["unreachable"], reason, "{doc}");
        assert!(doc["error"].as_str().unwrap().contains(said), "{doc}");
    }
    // An action on such a host fails, with one line naming it.
    let run = tier.cli(&["-H", "a", "restart", "es"]).expect(1);
    run.stderr_says("cannot reach a: authentication failed");
    run.stderr_omits("panicked");
}

#[test]
fn restart_es_in_parallel_on_the_hosts_of_a_file_restarts_es_and_nothing_else() {
    let tier = Tier::boot(&["a", "b", "c"]);
    let before: Vec<Vec<String>> = tier
        .hosts
        .iter()
        .map(|h| COMPONENTS.map(|c| h.stack.invocation(c)).to_vec())
        .collect();
    let hosts = tier.hosts_file("# the tier\na\nb  # the second\n\nc\n");
    let hosts = hosts.to_str().unwrap();
    let run = tier
        .cli(&["--hosts-file", hosts, "--parallel", "2", "restart", "es"])
        .expect(0);
    for (host, before) in tier.hosts.iter().zip(before) {
        for (c, old) in COMPONENTS.iter().zip(before) {
            let now = host.stack.invocation(c);
            if *c == "es" {
                assert_ne!(now, old, "{}'s es kept its invocation", host.name);
                assert_eq!(host.stack.show(&unit(c), "ActiveState"), "active");
            } else {
                assert_eq!(now, old, "{}'s {c} restarted", host.name);
            }
        }
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{}  Restarted es", host.name))),
            "{}",
            run.stdout
        );
        run.stderr_says(&format!("{}: restarting es…", host.name));
    }
    // At most two hosts at a time: the last host began its restart only once another's was
    // done, by the hosts' own journals.
    let spans: Vec<(u64, u64)> = tier.hosts.iter().map(es_restart).collect();
    let last_began = spans.iter().map(|&(began, _)| began).max();
    let first_done = spans.iter().map(|&(_, done)| done).min();
    assert!(
        last_began > first_done,
        "three hosts restarted es at once with --parallel 2: {spans:?}"
    );
}

#[test]
fn logs_of_a_host_come_from_its_own_journal() {
    let tier = Tier::boot(&["a"]);
    let run = tier.cli(&["-H", "a", "logs", "es", "--json"]).expect(0);
    let entries: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        entries.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening"))),
        "{}",
        run.stdout
    );
    assert!(
        entries.iter().all(|e| e["component"] == "es"),
        "{}",
        run.stdout
    );
    // A time with a space reaches the remote journalctl as one word.
    tier.cli(&[
        "-H",
        "a",
        "logs",
        "--since",
        "2000-01-01 00:00:00",
        "-n",
        "1",
    ])
    .expect(0);
    let run = tier.cli(&["-H", "a,b", "logs"]).expect(2);
    run.stderr_says("give one -H");
}

/// When a journal entry was written, in µs since the epoch.
fn at(entry: &serde_json::Value) -> u64 {
    entry["__REALTIME_TIMESTAMP"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a timestamp")
}

/// When the host's last restart of es began (systemd logged "Stopping") and when es was up
/// again ("Started"), by the host's journal.
fn es_restart(host: &Host) -> (u64, u64) {
    let entries = host.journal_json(&[&format!("UNIT={}", unit("es"))]);
    let says = |e: &serde_json::Value, word: &str| {
        e["MESSAGE"].as_str().is_some_and(|m| m.starts_with(word))
    };
    let began = entries
        .iter()
        .rev()
        .find(|e| says(e, "Stopping"))
        .map(at)
        .unwrap_or_else(|| panic!("{} logged no stop of es", host.name));
    let done = entries
        .iter()
        .filter(|e| says(e, "Started"))
        .map(at)
        .find(|&t| t > began)
        .unwrap_or_else(|| panic!("{} logged no start of es after its stop", host.name));
    (began, done)
}

#[test]
fn a_rolling_restart_goes_on_to_each_host_once_the_one_before_is_healthy() {
    let tier = Tier::boot(&["a", "b", "c"]);
    let run = tier
        .cli(&["-H", "a,b,c", "restart", "es", "--rolling"])
        .expect(0);
    run.stderr_says("b: healthy: ps answered /is/image with 200 on port 8080");
    // On each host, by its own journal: when es began to restart, and when ps then answered
    // the health probe.
    let moments: Vec<(u64, u64)> = tier
        .hosts
        .iter()
        .map(|host| {
            let (began, _) = es_restart(host);
            let healthy = host
                .journal_json(&[&format!("_SYSTEMD_UNIT={}", unit("ps"))])
                .iter()
                .filter(|e| {
                    e["MESSAGE"]
                        .as_str()
                        .is_some_and(|m| m.contains("\"GET /is/image\" 200"))
                })
                .map(at)
                .find(|&t| t > began)
                .unwrap_or_else(|| panic!("{}'s ps logged no probe after the restart", host.name));
            (began, healthy)
        })
        .collect();
    for pair in moments.windows(2) {
        let ((_, healthy), (next_began, _)) = (pair[0], pair[1]);
        assert!(
            next_began > healthy,
            "a host began its restart before the one before was healthy: {moments:?}"
        );
    }
}

#[test]
fn a_rolling_restart_stops_at_the_first_host_whose_es_fails() {
    let tier = Tier::boot(&["a", "b", "c"]);
    tier.host("b")
        .stack
        .sandbox
        .drop_in(
            &unit("es"),
            "50-broken",
            "[Service]\nExecStart=\nExecStart=/bin/false\n",
        )
        .expect("break b's es");
    let before: Vec<String> = tier
        .hosts
        .iter()
        .map(|h| h.stack.invocation("es"))
        .collect();
    let run = tier
        .cli(&["-H", "a,b,c", "restart", "es", "--rolling"])
        .expect(1);
    run.stderr_says("b: Image Server (image processing) (es) is");
    run.stderr_says("see `ssh b journalctl -u imageserving-es.service`");
    // Its last lines come from b's own journal: this machine has none of es.
    run.stderr_says("    | imageserving-es stopped");
    run.stderr_says("the restart of es stopped at b; untouched: c");
    run.stdout_says("c  untouched");
    assert_ne!(tier.host("a").stack.invocation("es"), before[0], "a's es");
    assert_eq!(
        tier.host("c").stack.invocation("es"),
        before[2],
        "c was touched"
    );

    // --keep-going goes on past b.
    let run = tier
        .cli(&[
            "-H",
            "a,b,c",
            "restart",
            "es",
            "--rolling",
            "--keep-going",
            "--json",
        ])
        .expect(1)
        .json();
    let outcomes: Vec<&str> = run
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["done", "failed", "done"]);
    assert_ne!(tier.host("c").stack.invocation("es"), before[2], "c's es");
}

/// Requests a client thread made and those that failed (a socket error or a status other than
/// 200), with the first failure's story.
#[derive(Default)]
struct Load {
    requests: u64,
    failed: u64,
    first_failure: Option<String>,
}

/// One `GET /is/image` on a new connection, in the network `stream` was made in.
fn status_document(mut stream: TcpStream) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /is/image HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("receive: {e}"))?;
    let head = String::from_utf8_lossy(&answer);
    match head.lines().next() {
        Some(line) if line.starts_with("HTTP/1.1 200") => Ok(()),
        line => Err(format!("status: {line:?}")),
    }
}

#[test]
fn a_rolling_restart_of_es_loses_no_request_on_any_host() {
    let tier = Tier::boot(&["a", "b", "c"]);
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = tier
        .hosts
        .iter()
        .flat_map(|host| {
            let network = host.stack.sandbox.network().expect("the host's network");
            (0..2).map(move |_| (host.name.clone(), network.clone()))
        })
        .map(|(name, network)| {
            let done = done.clone();
            let client = thread::spawn(move || {
                network.enter().expect("enter the host's network");
                let mut load = Load::default();
                while !done.load(Ordering::Relaxed) {
                    load.requests += 1;
                    let result = TcpStream::connect(("127.0.0.1", 8080))
                        .map_err(|e| format!("connect: {e}"))
                        .and_then(status_document);
                    if let Err(e) = result {
                        load.failed += 1;
                        load.first_failure.get_or_insert(e);
                    }
                }
                load
            });
            (name, client)
        })
        .collect();
    let run = tier.cli(&["-H", "a,b,c", "restart", "es", "--rolling"]);
    done.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for (name, client) in clients {
        let load = client.join().expect("a client thread");
        eprintln!(
            "{name}: {} requests, {} failed {}",
            load.requests,
            load.failed,
            load.first_failure.unwrap_or_default()
        );
        assert!(load.requests > 0, "{name}'s client sent nothing");
        failed += load.failed;
    }
    run.expect(0);
    assert_eq!(failed, 0, "requests lost during the rolling restart");
}
