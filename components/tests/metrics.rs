//! Metrics: each daemon serves its own at `/metrics` on its metrics address, with counters
//! that match the requests made, and the public port does not serve them.

mod common;

use std::process::Stdio;

use common::{Reply, Stack, daemon_command, get};

/// The value of the sample `series` (name and labels as Prometheus writes them) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

fn scrape(stack: &Stack, daemon: usize) -> String {
    let reply = get(stack.metrics[daemon], "/metrics");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    reply.text()
}

fn source_len(stack: &Stack, file: &str) -> f64 {
    std::fs::metadata(stack.catalog.root.join("cat").join(file))
        .unwrap()
        .len() as f64
}

#[test]
fn counters_match_the_requests_made() {
    let stack = Stack::start();
    let image = |path: &str| -> Reply { stack.get(path) };
    // A raster missed then hit, an SVG, an unknown image, and /metrics on the public port.
    assert_eq!(image("/is/image/cat/photo?wid=100").status, 200);
    assert_eq!(image("/is/image/cat/photo?wid=100").status, 200);
    assert_eq!(image("/is/image/cat/drawing?wid=50").status, 200);
    assert_eq!(image("/is/image/cat/missing?wid=50").status, 404);
    let public = stack.get("/metrics");
    assert_eq!(public.status, 404, "the public port serves /metrics");
    assert!(
        !public.text().contains("imageserving_"),
        "{}",
        public.text()
    );

    let ps = scrape(&stack, 0);
    let requests = |route: &str, status: u16| {
        sample(
            &ps,
            &format!("imageserving_http_requests_total{{route=\"{route}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(requests("image", 200), 3.0);
    assert_eq!(requests("image", 404), 1.0);
    assert_eq!(requests("other", 404), 1.0);
    assert_eq!(
        sample(
            &ps,
            "imageserving_http_request_duration_seconds_count{route=\"image\"}"
        ),
        4.0
    );
    assert_eq!(sample(&ps, "imageserving_cache_hits_total"), 1.0);
    assert_eq!(sample(&ps, "imageserving_cache_misses_total"), 2.0);
    assert_eq!(sample(&ps, "imageserving_cache_evictions_total"), 0.0);
    assert_eq!(sample(&ps, "imageserving_cache_entries"), 2.0);
    let status = stack.get("/is/image").text();
    let cache_bytes = status
        .lines()
        .find_map(|l| l.strip_prefix("cache.bytes="))
        .unwrap();
    assert_eq!(
        sample(&ps, "imageserving_cache_bytes"),
        cache_bytes.parse::<f64>().unwrap()
    );
    // Each renderer rendered its one image, and read its source once.
    for (daemon, file) in [(1, "photo.jpg"), (2, "drawing.svg")] {
        let text = scrape(&stack, daemon);
        let renders = "imageserving_http_requests_total{route=\"render\",status=\"200\"}";
        assert_eq!(sample(&text, renders), 1.0, "{file}");
        assert_eq!(
            sample(&text, "imageserving_render_duration_seconds_count"),
            1.0
        );
        assert!(sample(&text, "imageserving_render_duration_seconds_sum") > 0.0);
        assert_eq!(
            sample(&text, "imageserving_source_bytes_total"),
            source_len(&stack, file)
        );
        assert!(!text.contains("imageserving_cache_"), "{text}");
    }

    // The metrics address serves nothing else.
    assert_eq!(get(stack.metrics[0], "/is/image").status, 404);
}

#[test]
fn backend_errors_are_counted() {
    let mut stack = Stack::start();
    let errors = |text: &str, backend: &str| {
        let series = format!(
            "imageserving_backend_errors_total{{backend=\"{backend}\",kind=\"unavailable\"}}"
        );
        sample(text, &series)
    };
    // Counted since the start, when a renderer may not have been listening yet.
    let before = scrape(&stack, 0);
    stack.kill("svg");
    let down = stack.get("/is/image/cat/drawing?wid=50");
    assert_eq!(down.status, 503, "{}", down.text());
    let after = scrape(&stack, 0);
    assert_eq!(errors(&after, "svg") - errors(&before, "svg"), 1.0);
    assert_eq!(errors(&after, "es"), errors(&before, "es"));
    let series = "imageserving_http_requests_total{route=\"image\",status=\"503\"}";
    assert_eq!(sample(&after, series), 1.0);
}

#[test]
fn a_metrics_address_in_use_stops_the_start_with_one_line() {
    let stack = Stack::prepare(&[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut cmd = daemon_command("es", &stack.config, &stack.env);
    cmd.env("IMAGESERVING_ES_METRICS_LISTEN", &address);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&address) && err.contains("es.metrics_listen"),
        "{err}"
    );
}

#[test]
fn metrics_turned_off_are_not_served() {
    let stack = Stack::start_with(&[("IMAGESERVING_PS_METRICS_LISTEN", "")]);
    assert_eq!(stack.get("/is/image/cat/photo?wid=100").status, 200);
    assert!(
        !stack.log("ps.out").contains("metrics at"),
        "{}",
        stack.log("ps.out")
    );
    assert!(
        stack.log("es.out").contains("metrics at"),
        "{}",
        stack.log("es.out")
    );
}
