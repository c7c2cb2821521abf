//! The HTTP/1.1 server loop shared by the three daemons, with the limits that keep a
//! hostile client from exhausting it: a connection cap, a deadline for request headers
//! (slow-loris, also the keep-alive idle time), bounded header size and count, a deadline
//! for stalled writes, and a drain at shutdown that loses no request.
//!
//! The drain: on SIGTERM the loop stops accepting at once, so that connections still queued
//! stay in systemd's listening socket for the next instance. For the drain window the open
//! connections are still served, and every answer carries `Connection: close` (RFC 9112
//! section 9.6): a client learns of the close from an answer instead of meeting it with its
//! next request. A connection closes after such an answer, or once it was idle the whole
//! window. hyper's own graceful shutdown closes idle connections at once, which races with a
//! client sending its next request on one.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::http::reply::Body;
use crate::metrics::{HttpMetrics, Route};
use crate::systemd::Probe;

/// Largest request head (request line and headers) accepted, in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request headers accepted.
const MAX_HEADERS: usize = 64;

/// What a daemon does with a request.
pub trait Handler: Send + Sync + 'static {
    /// The routes the daemon serves, each with a latency histogram.
    const ROUTES: &'static [Route];

    /// Which route a request for `path` takes, for the metrics.
    fn route(path: &str) -> Route;

    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// What one listener allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; further clients wait in the kernel's queue.
    pub max_connections: usize,
    /// How long open connections are still served after `shutdown` (see the module's doc).
    pub drain_window: Duration,
}

/// Serves `listener` until `shutdown` completes, then stops accepting and drains the open
/// connections (see the module's doc), all within the configured shutdown timeout. Answers
/// watchdog probes meanwhile, and records every answer into `metrics` if given.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    http: &HttpConfig,
    limits: Limits,
    handler: Arc<H>,
    metrics: Option<Arc<HttpMetrics>>,
    mut probes: mpsc::Receiver<Probe>,
    shutdown: impl Future<Output = ()>,
) {
    let Limits {
        max_connections,
        drain_window,
    } = limits;
    let slots = Arc::new(Semaphore::new(max_connections));
    let draining = CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_timeout())
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let write_timeout = http.write_timeout();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(probe) = probes.recv() => {
                let _ = probe.send(());
                continue;
            }
            accepted = accept(&listener, &slots) => accepted,
        };
        let (stream, peer, slot) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                eprintln!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(write_timeout));
        let handler = handler.clone();
        let metrics = metrics.clone();
        let announce_close = draining.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let (handler, announce_close) = (handler.clone(), announce_close.clone());
            let measured = metrics
                .clone()
                .map(|m| (m, H::route(request.uri().path()), Instant::now()));
            async move {
                let mut response = handler.handle(request, peer).await;
                if let Some((metrics, route, started)) = measured {
                    metrics.record(route, response.status().as_u16(), started.elapsed());
                }
                // hyper closes the connection once this answer is written.
                if announce_close.is_cancelled() {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder.serve_connection(TokioIo::new(Box::pin(stream)), service);
        let draining = draining.clone();
        tokio::spawn(async move {
            // Errors here are the client's (reset, timeout, malformed request): hyper has
            // answered what could be answered.
            tokio::pin!(connection);
            let closed = tokio::select! {
                _ = connection.as_mut() => true,
                () = draining.cancelled() => false,
            };
            if !closed
                && tokio::time::timeout(drain_window, connection.as_mut())
                    .await
                    .is_err()
            {
                // Idle the whole window, or still busy with a request: it may finish that
                // one, and takes no other.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
            drop(slot);
        });
    }
    drop(listener);
    draining.cancel();
    // Every connection holds a slot until it is closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(http.shutdown_timeout(), slots.acquire_many(all)).await;
}

async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, slot))
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
