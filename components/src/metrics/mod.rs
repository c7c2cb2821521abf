//! Metrics for Prometheus: a daemon's registry and the families it records into. Each daemon
//! has its own and serves it on its own `metrics_listen` address ([`endpoint`]), never on the
//! Platform Server's public port.
//!
//! With metrics off, the handles a daemon needs only for metrics are `None`, so that nothing
//! is recorded; the cache's counters, which the status page shows as well, are kept either way.
//! Label sets are resolved once where they are known in advance (a backend, a route's
//! histogram), so that recording is an atomic add; the requests' status codes are looked up
//! per request, without allocating.

pub(crate) mod endpoint;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// What a request asked for, the `route` label of the request families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// ps: `/is/image/{catalog}/{image}`.
    Image,
    /// ps: `/is/content/{catalog}/{path}`.
    Content,
    /// The status document: ps's `/is/image`, the renderers' `/status`.
    Status,
    /// es and svg: `/render/...`.
    Render,
    /// Anything else (answered 404).
    Other,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Image => "image",
            Route::Content => "content",
            Route::Status => "status",
            Route::Render => "render",
            Route::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendErrorLabels {
    backend: &'static str,
    kind: &'static str,
}

/// Request latencies: 0.25 ms to about 4 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_25, 2.0, 15)
}

/// Render times: 0.5 ms to about 8 s.
fn render_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_5, 2.0, 15)
}

/// A daemon's metrics: the registry the endpoint encodes, or nothing when metrics are off.
pub struct Metrics {
    registry: Option<Registry>,
}

impl Metrics {
    /// Metrics that are recorded and served (`enabled`), or neither.
    pub fn new(enabled: bool) -> Metrics {
        Metrics {
            registry: enabled.then(|| Registry::with_prefix("imageserving")),
        }
    }

    /// Requests by route and status, and a latency histogram per route of `routes`.
    pub fn http(&mut self, routes: &[Route]) -> Option<HttpMetrics> {
        let registry = self.registry.as_mut()?;
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's head to its response's head, by route",
            Unit::Seconds,
            latency.clone(),
        );
        let latency = routes
            .iter()
            .map(|&route| {
                let labels = RouteLabels {
                    route: route.label(),
                };
                (route, latency.get_or_create_owned(&labels))
            })
            .collect();
        Some(HttpMetrics { requests, latency })
    }

    /// The response cache's counters, registered when metrics are on.
    pub fn cache(&mut self) -> CacheMetrics {
        let cache = CacheMetrics::default();
        if let Some(registry) = self.registry.as_mut() {
            let counters = [
                (
                    "cache_hits",
                    "Lookups answered from the response cache",
                    &cache.hits,
                ),
                (
                    "cache_misses",
                    "Lookups the response cache could not answer",
                    &cache.misses,
                ),
                (
                    "cache_evictions",
                    "Responses dropped from the cache to make room for newer ones",
                    &cache.evictions,
                ),
            ];
            for (name, help, counter) in counters {
                registry.register(name, help, counter.clone());
            }
            registry.register_with_unit(
                "cache",
                "Bytes held by the response cache, bookkeeping included",
                Unit::Bytes,
                cache.bytes.clone(),
            );
            registry.register(
                "cache_entries",
                "Responses held by the response cache",
                cache.entries.clone(),
            );
        }
        cache
    }

    /// Counters of requests to the renderers, one set per renderer in `backends` (its short
    /// name, e.g. "es"), in that order.
    pub fn backends<const N: usize>(
        &mut self,
        backends: [&'static str; N],
    ) -> [Option<BackendMetrics>; N] {
        let Some(registry) = self.registry.as_mut() else {
            return [(); N].map(|()| None);
        };
        let retries = Family::<BackendLabels, Counter>::default();
        registry.register(
            "backend_retries",
            "Renderer requests sent again on a fresh connection after a pooled one closed",
            retries.clone(),
        );
        let errors = Family::<BackendErrorLabels, Counter>::default();
        registry.register(
            "backend_errors",
            "Renderer requests that got no answer: unavailable (503) or timeout (504)",
            errors.clone(),
        );
        backends.map(|backend| {
            let error = |kind| errors.get_or_create_owned(&BackendErrorLabels { backend, kind });
            Some(BackendMetrics {
                retries: retries.get_or_create_owned(&BackendLabels { backend }),
                unavailable: error("unavailable"),
                timeouts: error("timeout"),
            })
        })
    }

    /// Render times and the source bytes decoded, for es and svg.
    pub fn render(&mut self) -> Option<RenderMetrics> {
        let registry = self.registry.as_mut()?;
        let metrics = RenderMetrics {
            duration: Histogram::new(render_buckets()),
            source_bytes: Counter::default(),
        };
        registry.register_with_unit(
            "render_duration",
            "Time to decode, resize and encode one image",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register_with_unit(
            "source",
            "Bytes of source files read and handed to the decoder",
            Unit::Bytes,
            metrics.source_bytes.clone(),
        );
        Some(metrics)
    }

    /// The registry in Prometheus text format; empty when metrics are off.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(registry) = &self.registry {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
        }
        out
    }
}

/// Requests by route and status, and their latency.
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Vec<(Route, Histogram)>,
}

impl HttpMetrics {
    pub fn record(&self, route: Route, status: u16, took: Duration) {
        let labels = RequestLabels {
            route: route.label(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        if let Some((_, histogram)) = self.latency.iter().find(|(r, _)| *r == route) {
            histogram.observe(took.as_secs_f64());
        }
    }
}

/// The response cache's counters and gauges.
#[derive(Default)]
pub struct CacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
    pub bytes: Gauge,
    pub entries: Gauge,
}

/// One renderer's counters, as the Platform Server sees it.
pub struct BackendMetrics {
    pub retries: Counter,
    pub unavailable: Counter,
    pub timeouts: Counter,
}

/// A renderer's render times and source bytes.
pub struct RenderMetrics {
    pub duration: Histogram,
    pub source_bytes: Counter,
}
