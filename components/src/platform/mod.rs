//! The Platform Server (ps): the public HTTP front door. It checks requests, answers from
//! its cache or passes them to the Image Server (rasters) or the SVG server (SVG sources),
//! serves catalog files as they are, and reports on the whole path in its status page.

mod backend;
mod cache;
mod content;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use hyper::body::{Body as _, Incoming};
use hyper::header::{CACHE_CONTROL, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH};
use hyper::{Method, Request, Response, StatusCode};

use backend::Backend;
use cache::{Cached, ResponseCache};

use crate::catalog::{self, Catalogs, PathError, Source, SourceKind};
use crate::config::Config;
use crate::http::reply::{self, Body};
use crate::http::server::Handler;
use crate::metrics::{Metrics, Route};
use crate::modifiers::Modifiers;
use crate::protocol;

const IMAGE_PATH: &str = "/is/image";
const CONTENT_PATH: &str = "/is/content/";

/// `Cache-Control` of answers blaming the source (422): short, so that a fixed source is
/// served soon, yet long enough that a broken one is not fetched again by every request.
const SOURCE_FAULT_CACHE_CONTROL: &str = "public, max-age=60";

/// How a request was answered, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Hit,
    Miss,
    NotModified,
    Other,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::NotModified => "not-modified",
            Outcome::Other => "-",
        }
    }
}

pub struct PlatformService {
    catalogs: Catalogs,
    cache: ResponseCache,
    pub es: Backend,
    pub svg: Backend,
    cache_control: HeaderValue,
    /// The renderers' settings that change their output, part of every image's cache key.
    render_settings: String,
    access_log: bool,
    started: Instant,
    requests: AtomicU64,
}

impl PlatformService {
    pub fn new(config: &Config, metrics: &mut Metrics) -> Self {
        let timeout = Duration::from_secs(config.ps.backend_timeout);
        let idle = config.http.header_timeout() / 2;
        let max = config.image.max_pix;
        // Room for an uncompressed RGBA response at MaxPix, and then some.
        let max_body = (max.width as usize * max.height as usize * 4).max(1 << 20) * 2;
        let backend = |name, prefix, address, metrics| {
            Backend::new(name, prefix, address, timeout, idle, max_body, metrics)
        };
        let [es_metrics, svg_metrics] = metrics.backends(["es", "svg"]);
        PlatformService {
            catalogs: Catalogs::new(&config.catalog_root),
            cache: ResponseCache::new(config.ps.cache_bytes, metrics.cache()),
            es: backend(
                "Image Server (es)",
                "imageServer",
                config.es.listen,
                es_metrics,
            ),
            svg: backend(
                "SVG server (svg)",
                "svgServer",
                config.svg.listen,
                svg_metrics,
            ),
            cache_control: HeaderValue::from_str(&format!(
                "public, max-age={}",
                config.ps.cache_max_age
            ))
            .expect("digits are a valid header value"),
            render_settings: format!("apply_orientation={}", config.image.apply_orientation),
            access_log: config.ps.access_log,
            started: Instant::now(),
            requests: AtomicU64::new(0),
        }
    }

    /// The status line for systemd.
    pub fn summary(&self) -> String {
        let c = self.cache.stats();
        format!(
            "{} requests, cache {:.0}% hits ({} entries, {:.1}/{:.1} MiB)",
            self.requests.load(Ordering::Relaxed),
            c.hit_rate(),
            c.entries,
            c.bytes as f64 / 1048576.0,
            c.budget as f64 / 1048576.0
        )
    }

    async fn route(&self, request: &Request<Incoming>) -> (Response<Body>, Outcome) {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return (reply::method_not_allowed(), Outcome::Other);
        }
        let query = request.uri().query().unwrap_or("");
        let headers = request.headers();
        match classify(request.uri().path()) {
            (Route::Image, rest) => self.image(rest, query, headers).await,
            (Route::Content, rest) => (self.content(rest, headers).await, Outcome::Other),
            (Route::Status, _) => (self.status_document().await, Outcome::Other),
            _ => {
                let message = "no such path: images are served at /is/image/CATALOG/IMAGE, files at /is/content/CATALOG/PATH";
                (reply::text(StatusCode::NOT_FOUND, message), Outcome::Other)
            }
        }
    }

    async fn image(
        &self,
        rest: &str,
        query: &str,
        headers: &HeaderMap,
    ) -> (Response<Body>, Outcome) {
        let segments = match catalog::segments(rest) {
            Ok(s) => s,
            Err(e) => return (path_error(e), Outcome::Other),
        };
        let modifiers = match Modifiers::parse(query) {
            Ok(m) => m,
            Err(e) => return (reply::text(StatusCode::BAD_REQUEST, e.0), Outcome::Other),
        };
        let source = match self.catalogs.image(segments).await {
            Ok(s) => s,
            Err(e) => return (path_error(e), Outcome::Other),
        };
        let canonical = modifiers.canonical();
        let key = cache_key(&source, &format!("{}\0{canonical}", self.render_settings));
        let etag = etag(&key);
        if matches_etag(headers, &etag) {
            return (self.not_modified(&etag), Outcome::NotModified);
        }
        if let Some(hit) = self.cache.get(&key) {
            return (self.image_response(&hit, &etag), Outcome::Hit);
        }
        let backend = match source.kind {
            SourceKind::Raster => &self.es,
            SourceKind::Vector => &self.svg,
        };
        let target = protocol::render_target(&source.relative, &canonical);
        let answer = match backend.get(&target).await {
            Ok(a) => a,
            Err(e) => return (reply::text(e.status(), e.to_string()), Outcome::Other),
        };
        if answer.status != StatusCode::OK {
            let reason = String::from_utf8_lossy(&answer.body).into_owned();
            let mut response = reply::text(answer.status, reason);
            if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
                response.headers_mut().insert(
                    CACHE_CONTROL,
                    HeaderValue::from_static(SOURCE_FAULT_CACHE_CONTROL),
                );
            }
            return (response, Outcome::Other);
        }
        let cached = Cached {
            content_type: answer
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream")
                .into(),
            body: answer.body,
        };
        let response = self.image_response(&cached, &etag);
        self.cache.insert(&key, cached);
        (response, Outcome::Miss)
    }

    fn image_response(&self, image: &Cached, etag: &str) -> Response<Body> {
        let mut response = reply::with_body(
            StatusCode::OK,
            &image.content_type,
            reply::full(image.body.clone()),
        );
        self.validators(response.headers_mut(), etag);
        response
    }

    fn not_modified(&self, etag: &str) -> Response<Body> {
        let mut response = Response::new(reply::full(""));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        self.validators(response.headers_mut(), etag);
        response
    }

    fn validators(&self, headers: &mut HeaderMap, etag: &str) {
        if let Ok(v) = HeaderValue::from_str(etag) {
            headers.insert(ETAG, v);
        }
        headers.insert(CACHE_CONTROL, self.cache_control.clone());
    }

    async fn content(&self, rest: &str, headers: &HeaderMap) -> Response<Body> {
        let source = match self.catalogs.file_at(rest).await {
            Ok(s) => s,
            Err(e) => return path_error(e),
        };
        let etag = etag(&cache_key(&source, "content"));
        if matches_etag(headers, &etag) {
            return self.not_modified(&etag);
        }
        let file = match tokio::fs::File::open(&source.path).await {
            Ok(f) => f,
            Err(e) => {
                return reply::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read the file: {e}"),
                );
            }
        };
        let content_type = content::content_type(&source.relative);
        let mut response = reply::with_body(
            StatusCode::OK,
            content_type,
            content::file_body(file, source.len),
        );
        self.validators(response.headers_mut(), &etag);
        let h = response.headers_mut();
        // Catalog files are data: never run as a page of this origin (scripts in SVG, HTML).
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
        );
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        response
    }

    /// `GET /is/image`: version, uptime and counters of this server, and lines from a live
    /// round trip to each renderer (`imageServer.*`, `svgServer.*`), which waits out a restart
    /// for a few seconds. 503 if one is down or does not answer within that time.
    async fn status_document(&self) -> Response<Body> {
        let (es, svg) = tokio::join!(self.es.status(), self.svg.status());
        let c = self.cache.stats();
        let mut out = String::new();
        let _ = writeln!(out, "name=Platform Server (ps)");
        let _ = writeln!(out, "version={}", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, "uptime={}", self.started.elapsed().as_secs());
        let _ = writeln!(out, "requests={}", self.requests.load(Ordering::Relaxed));
        let _ = writeln!(out, "cache.entries={}", c.entries);
        let _ = writeln!(out, "cache.bytes={}", c.bytes);
        let _ = writeln!(out, "cache.budget={}", c.budget);
        let _ = writeln!(out, "cache.hitRate={:.1}", c.hit_rate());
        let mut healthy = true;
        for (backend, result) in [(&self.es, es), (&self.svg, svg)] {
            let p = backend.status_prefix;
            let _ = writeln!(out, "{p}.address={}", backend.address);
            match result {
                Ok((lines, took)) => {
                    let _ = writeln!(out, "{p}.status=ok");
                    let _ = writeln!(out, "{p}.roundTripMs={:.2}", took.as_secs_f64() * 1000.0);
                    for line in lines.lines().filter(|l| l.contains('=')) {
                        let _ = writeln!(out, "{p}.{line}");
                    }
                }
                Err(e) => {
                    healthy = false;
                    let _ = writeln!(out, "{p}.status=unavailable");
                    let _ = writeln!(out, "{p}.error={e}");
                }
            }
        }
        let status = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        reply::text(status, out)
    }
}

/// The route `path` takes, and the rest of it after the route's prefix.
fn classify(path: &str) -> (Route, &str) {
    if path == IMAGE_PATH || path == "/is/image/" {
        (Route::Status, "")
    } else if let Some(rest) = path.strip_prefix("/is/image/") {
        (Route::Image, rest)
    } else if let Some(rest) = path.strip_prefix(CONTENT_PATH) {
        (Route::Content, rest)
    } else {
        (Route::Other, path)
    }
}

impl Handler for PlatformService {
    const ROUTES: &'static [Route] = &[Route::Image, Route::Content, Route::Status, Route::Other];

    fn route(path: &str) -> Route {
        classify(path).0
    }

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (response, outcome) = self.route(&request).await;
        if self.access_log {
            let bytes = response.body().size_hint().exact().unwrap_or(0);
            // A log line that cannot be written (stdout closed) must not fail the request.
            let _ = writeln!(
                std::io::stdout().lock(),
                "{} \"{} {}\" {} {} {:.1}ms {}",
                peer.ip(),
                request.method(),
                request.uri(),
                response.status().as_u16(),
                bytes,
                started.elapsed().as_secs_f64() * 1000.0,
                outcome.label()
            );
        }
        response
    }
}

fn path_error(e: PathError) -> Response<Body> {
    match e {
        PathError::Invalid(m) => reply::text(StatusCode::BAD_REQUEST, m),
        PathError::NotFound(m) => reply::text(StatusCode::NOT_FOUND, m),
    }
}

/// Identifies a response: the source file as it is now (a changed file changes the key),
/// what was asked of it, and the software version that rendered it.
fn cache_key(source: &Source, request: &str) -> String {
    let modified = source
        .modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}\0{}\0{modified}\0{}\0{request}",
        env!("CARGO_PKG_VERSION"),
        source.relative,
        source.len
    )
}

/// A strong entity tag derived from the cache key (FNV-1a, 64 bits: stable across builds).
fn etag(key: &str) -> String {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

/// Whether `If-None-Match` names `etag` (or `*`); weak tags compare by their value.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_and_stable() {
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
        let t = etag("x");
        assert!(t.starts_with('"') && t.ends_with('"') && t.len() == 18);
    }

    #[test]
    fn if_none_match_forms() {
        let tag = etag("k");
        for (header, want) in [
            (tag.clone(), true),
            (format!("W/{tag}"), true),
            (format!("\"other\", {tag}"), true),
            ("*".to_owned(), true),
            ("\"other\"".to_owned(), false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(IF_NONE_MATCH, HeaderValue::from_str(&header).unwrap());
            assert_eq!(matches_etag(&h, &tag), want, "{header}");
        }
        assert!(!matches_etag(&HeaderMap::new(), &tag));
    }
}
