//! `GET /metrics` on a daemon's own metrics address: its registry in Prometheus text format.
//! It runs on the server loop the daemon's main port uses, with its limits, and records
//! nothing about itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{Metrics, Route};
use crate::config::HttpConfig;
use crate::http::reply::{self, Body};
use crate::http::server::{self, Handler, Limits};

const PATH: &str = "/metrics";

/// Scrapers served at once; more wait in the kernel's queue.
const MAX_CONNECTIONS: usize = 16;

struct Endpoint {
    metrics: Metrics,
}

impl Handler for Endpoint {
    const ROUTES: &'static [Route] = &[];

    fn route(_path: &str) -> Route {
        Route::Other
    }

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Response<Body> {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return reply::method_not_allowed();
        }
        if request.uri().path() != PATH {
            return reply::text(StatusCode::NOT_FOUND, "metrics are served at /metrics");
        }
        let mut response = reply::text(StatusCode::OK, self.metrics.encode());
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(CONTENT_TYPE),
        );
        response
    }
}

/// Serves `metrics` on `listener` for as long as the daemon runs: it stays open while the
/// main port drains, and ends with the process.
pub fn spawn(listener: TcpListener, metrics: Metrics, http: &HttpConfig) {
    let http = http.clone();
    let endpoint = Arc::new(Endpoint { metrics });
    // No watchdog probes: the main loop answers those.
    let (_, probes) = mpsc::channel(1);
    tokio::spawn(async move {
        server::serve(
            listener,
            &http,
            Limits {
                max_connections: MAX_CONNECTIONS,
                // Scrapes need no drain: Prometheus simply scrapes again.
                drain_window: Duration::ZERO,
            },
            endpoint,
            None,
            probes,
            std::future::pending(),
        )
        .await;
    });
}
