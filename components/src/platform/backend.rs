//! The Platform Server's client for the renderers: pooled keep-alive HTTP/1.1 connections,
//! a deadline per request, one retry when a connection closes under a request, and errors
//! that name the component that failed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::metrics::BackendMetrics;

/// How long the status document waits for a renderer's status. A restart keeps new
/// connections waiting in the socket systemd holds for the drain window (1 s by default) and
/// the start (about 250 ms): this covers it, with room for a loaded machine, and still
/// answers a health checker in seconds when a renderer is really down or hung, where
/// `ps.backend_timeout` (30 s) would leave it waiting.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// A renderer as the Platform Server sees it.
pub struct Backend {
    /// Human name, e.g. "Image Server (es)".
    pub name: &'static str,
    /// Prefix of its lines in the status document, e.g. "imageServer".
    pub status_prefix: &'static str,
    pub address: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// Never reuses a connection: for the retry.
    fresh: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    max_body: usize,
    metrics: Option<BackendMetrics>,
}

/// A renderer's answer, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Why a renderer gave no answer; `Display` names it, for a 503 or 504 body.
#[derive(Debug)]
pub enum BackendError {
    Unavailable {
        name: &'static str,
        address: SocketAddr,
        reason: String,
    },
    Timeout {
        name: &'static str,
        after: Duration,
    },
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::Unavailable {
                name,
                address,
                reason,
            } => {
                write!(f, "the {name} at {address} is unavailable: {reason}")
            }
            BackendError::Timeout { name, after } => {
                write!(
                    f,
                    "the {name} did not answer within {} s",
                    after.as_secs_f32()
                )
            }
        }
    }
}

impl BackendError {
    pub fn status(&self) -> StatusCode {
        match self {
            BackendError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            BackendError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl Backend {
    /// `idle` is how long a pooled connection is kept: shorter than the renderer's own
    /// keep-alive time, so the pool does not reuse a connection the renderer is closing.
    pub fn new(
        name: &'static str,
        status_prefix: &'static str,
        address: SocketAddr,
        timeout: Duration,
        idle: Duration,
        max_body: usize,
        metrics: Option<BackendMetrics>,
    ) -> Backend {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .pool_max_idle_per_host(64)
            .build(connector.clone());
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Backend {
            name,
            status_prefix,
            address,
            client,
            fresh,
            timeout,
            max_body,
            metrics,
        }
    }

    /// GETs `path_and_query` (already percent-encoded) and reads the whole answer, within
    /// `ps.backend_timeout`.
    pub async fn get(&self, path_and_query: &str) -> Result<Answer, BackendError> {
        self.get_within(path_and_query, self.timeout).await
    }

    async fn get_within(
        &self,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<Answer, BackendError> {
        let exchange = async {
            let response = match self.client.request(self.request(path_and_query)?).await {
                Ok(response) => response,
                // The connection closed before an answer came: a pooled one the renderer
                // closed as it drained, between two requests. hyper retries on its own only
                // a request it never wrote (`retry_canceled_requests`), not one that met
                // that close. A GET is idempotent: once more, on a connection of its own,
                // which waits in systemd's socket for a restarting renderer. (The client
                // does not say whether the connection was pooled; a new one that failed so
                // is retried once too.)
                Err(e) if !e.is_connect() => {
                    if let Some(m) = &self.metrics {
                        m.retries.inc();
                    }
                    self.fresh
                        .request(self.request(path_and_query)?)
                        .await
                        .map_err(|e| self.failed(&e))?
                }
                Err(e) => return Err(self.failed(&e)),
            };
            let status = response.status();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| self.failed(&*e))?
                .to_bytes();
            Ok(Answer {
                status,
                content_type,
                body,
            })
        };
        let result =
            tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or(Err(BackendError::Timeout {
                    name: self.name,
                    after: timeout,
                }));
        if let (Err(e), Some(m)) = (&result, &self.metrics) {
            match e {
                BackendError::Unavailable { .. } => m.unavailable.inc(),
                BackendError::Timeout { .. } => m.timeouts.inc(),
            };
        }
        result
    }

    fn request(&self, path_and_query: &str) -> Result<Request<Empty<Bytes>>, BackendError> {
        Request::get(format!("http://{}{path_and_query}", self.address))
            .body(Empty::new())
            .map_err(|e| self.failed(&e))
    }

    /// Asks for the renderer's status lines, waiting out a restart but no longer than
    /// `STATUS_TIMEOUT`; returns them with the round-trip time.
    pub async fn status(&self) -> Result<(String, Duration), BackendError> {
        let started = Instant::now();
        let answer = self
            .get_within(
                crate::protocol::STATUS_PATH,
                STATUS_TIMEOUT.min(self.timeout),
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(self.unavailable(format!("its status page answered {}", answer.status)));
        }
        Ok((
            String::from_utf8_lossy(&answer.body).into_owned(),
            started.elapsed(),
        ))
    }

    fn unavailable(&self, reason: impl Into<String>) -> BackendError {
        BackendError::Unavailable {
            name: self.name,
            address: self.address,
            reason: reason.into(),
        }
    }

    /// hyper's errors keep the useful part (connection refused...) in their source chain.
    fn failed(&self, error: &dyn std::error::Error) -> BackendError {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            text = format!("{text}: {e}");
            cause = e.source();
        }
        self.unavailable(text)
    }
}
