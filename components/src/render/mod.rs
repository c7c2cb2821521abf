//! The internal renderers, the Image Server (es) and the SVG server (svg): one HTTP service
//! over a bounded pool of render threads, with the engine (raster or vector) plugged in. They
//! answer the Platform Server's requests as [`crate::protocol`] lays them out.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use resvg::usvg::Tree;
use tokio::sync::Semaphore;

mod decode;
mod encode;
pub(crate) mod geometry;
mod libjpeg;
mod orientation;
mod profile;
mod progressive;
mod raster;
mod vector;

use crate::catalog::{Catalogs, PathError};
use crate::config::{Config, ImageConfig};
use crate::http::reply::{self, Body};
use crate::http::server::Handler;
use crate::metrics::{Metrics, RenderMetrics, Route};
use crate::modifiers::{Format, Modifiers, Quality, Req};
use crate::protocol::{RENDER_PREFIX, STATUS_PATH};
use decode::Header;
use geometry::{Layout, TooLarge};
use raster::Raster;
use vector::SvgOptions;

/// What a render produced.
#[derive(Debug)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Why a render failed, each with the status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// 403: a configured limit (MaxPix, source pixels or bytes) was hit.
    TooLarge(String),
    /// 422: the source cannot be read as an image (empty, truncated, not an image). The
    /// source is at fault, not the server.
    Unreadable(String),
    /// 500: the server failed (the file could not be read, an encoder failed).
    Failed(String),
}

impl RenderError {
    pub fn status(&self) -> StatusCode {
        match self {
            RenderError::TooLarge(_) => StatusCode::FORBIDDEN,
            RenderError::Unreadable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RenderError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            RenderError::TooLarge(m) | RenderError::Unreadable(m) | RenderError::Failed(m) => m,
        }
    }
}

impl From<TooLarge> for RenderError {
    fn from(e: TooLarge) -> Self {
        RenderError::TooLarge(e.to_string())
    }
}

/// A way of turning source bytes into a response image. Every engine goes through the
/// same steps (see [`render`]): read the source far enough to know its size, answer
/// `req=props` or lay the response out, draw the pixels, compose and encode.
pub trait Engine: Send + Sync + 'static {
    /// How the component is named in messages, e.g. "Image Server (es)".
    const NAME: &'static str;
    /// The response format when the request has no `fmt=`.
    const DEFAULT_FORMAT: Format;
    /// A source read as far as its size: a raster's header, or a parsed SVG document.
    type Source;

    /// Reads `bytes` as far as [`Engine::Source`], refusing what `limits` forbid.
    fn open(&self, bytes: &[u8], limits: &ImageConfig) -> Result<Self::Source, RenderError>;

    /// The source's size in pixels and its format's name.
    fn describe(source: &Self::Source) -> ((u32, u32), &'static str);

    /// The pixels `layout` asks for, and how to compose them onto the response canvas.
    fn draw(
        &self,
        bytes: &[u8],
        source: Self::Source,
        layout: Layout,
        limits: &ImageConfig,
    ) -> Result<Drawn, RenderError>;
}

/// Pixels drawn by an engine: the raster, the layout it is composed with, and its reduction
/// (source pixel x is pixel x * `reduction` of the raster).
pub struct Drawn {
    raster: Raster,
    layout: Layout,
    reduction: f64,
}

/// Renders `bytes` with `engine` as `modifiers` ask.
pub fn render<E: Engine>(
    engine: &E,
    bytes: &[u8],
    modifiers: &Modifiers,
    limits: &ImageConfig,
) -> Result<Rendered, RenderError> {
    let source = engine.open(bytes, limits)?;
    let ((width, height), format_name) = E::describe(&source);
    if modifiers.req == Req::Props {
        return Ok(Rendered {
            content_type: "text/plain; charset=utf-8",
            body: format!(
                "image.width={width}\nimage.height={height}\nimage.format={format_name}\n"
            )
            .into_bytes(),
        });
    }
    let layout = Layout::new(
        (width, height),
        modifiers.size,
        modifiers.fit,
        limits.default_pix,
        limits.max_pix,
    )?;
    let drawn = engine.draw(bytes, source, layout, limits)?;
    let format = modifiers.fmt.unwrap_or(E::DEFAULT_FORMAT);
    let composed = drawn
        .raster
        .compose(
            &drawn.layout,
            drawn.reduction,
            modifiers.bgc,
            format.keeps_alpha(),
        )
        .map_err(RenderError::Failed)?;
    let quality = modifiers.qlt.unwrap_or(Quality {
        value: limits.jpeg_quality,
        full_chroma: false,
    });
    let body = encode::encode(&composed, format, quality).map_err(RenderError::Failed)?;
    Ok(Rendered {
        content_type: format.content_type(),
        body,
    })
}

/// Rasters: JPEG, PNG, WebP, GIF, TIFF.
pub struct RasterEngine;

impl Engine for RasterEngine {
    const NAME: &'static str = "Image Server (es)";
    const DEFAULT_FORMAT: Format = Format::Jpeg;
    type Source = Header;

    fn open(&self, bytes: &[u8], limits: &ImageConfig) -> Result<Header, RenderError> {
        let header = decode::read_header(bytes, limits.apply_orientation).map_err(unreadable)?;
        if header.pixels() > limits.max_source_pixels {
            return Err(RenderError::TooLarge(format!(
                "the source is {}x{} pixels, more than max_source_pixels {}",
                header.width, header.height, limits.max_source_pixels
            )));
        }
        Ok(header)
    }

    fn describe(header: &Header) -> ((u32, u32), &'static str) {
        (header.upright_size(), header.format_name())
    }

    fn draw(
        &self,
        bytes: &[u8],
        header: Header,
        layout: Layout,
        limits: &ImageConfig,
    ) -> Result<Drawn, RenderError> {
        let max_bytes = limits.max_source_pixels.saturating_mul(8);
        let decoded =
            decode::decode(bytes, &header, layout.scale(), max_bytes).map_err(unreadable)?;
        // Composing maps source pixel x to raster pixel x * reduction: move the source
        // region by the decode's origin, in source pixels.
        let mut layout = layout;
        layout.source.x += decoded.origin.0 / decoded.reduction;
        layout.source.y += decoded.origin.1 / decoded.reduction;
        Ok(Drawn {
            raster: decoded.raster,
            layout,
            reduction: decoded.reduction,
        })
    }
}

/// SVG documents, rasterised at the response size.
pub struct VectorEngine {
    options: SvgOptions,
}

impl VectorEngine {
    pub fn new(limits: &ImageConfig) -> Self {
        VectorEngine {
            options: SvgOptions::new(limits.max_source_pixels),
        }
    }
}

impl Engine for VectorEngine {
    const NAME: &'static str = "SVG server (svg)";
    const DEFAULT_FORMAT: Format = Format::PngAlpha;
    type Source = Tree;

    fn open(&self, bytes: &[u8], _limits: &ImageConfig) -> Result<Tree, RenderError> {
        self.options.parse(bytes).map_err(unreadable)
    }

    fn describe(tree: &Tree) -> ((u32, u32), &'static str) {
        (vector::size(tree), "svg")
    }

    fn draw(
        &self,
        _bytes: &[u8],
        tree: Tree,
        layout: Layout,
        _limits: &ImageConfig,
    ) -> Result<Drawn, RenderError> {
        let raster = vector::render(&tree, &layout).map_err(unreadable)?;
        // Drawn at the response size already: composed one to one onto the canvas.
        Ok(Drawn {
            raster,
            layout: Layout::covering(layout.canvas),
            reduction: 1.0,
        })
    }
}

fn unreadable(e: String) -> RenderError {
    RenderError::Unreadable(format!("the source cannot be read as an image: {e}"))
}

/// Counters shown in `/status` and in systemd's status line.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub rendered: AtomicU64,
    pub failed: AtomicU64,
    pub busy: AtomicUsize,
}

/// The HTTP side of a renderer.
pub struct RenderService<E: Engine> {
    engine: Arc<E>,
    catalogs: Catalogs,
    limits: Arc<ImageConfig>,
    workers: usize,
    pool: Arc<Semaphore>,
    pub stats: Arc<Stats>,
    metrics: Option<Arc<RenderMetrics>>,
    started: Instant,
}

impl<E: Engine> RenderService<E> {
    pub fn new(engine: E, config: &Config, workers: usize, metrics: &mut Metrics) -> Self {
        RenderService {
            engine: Arc::new(engine),
            catalogs: Catalogs::new(&config.catalog_root),
            limits: Arc::new(config.image.clone()),
            workers,
            pool: Arc::new(Semaphore::new(workers)),
            stats: Arc::default(),
            metrics: metrics.render().map(Arc::new),
            started: Instant::now(),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The status line for systemd.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "{} requests, {} images rendered, {} failed, {}/{} workers busy",
            s.requests.load(Ordering::Relaxed),
            s.rendered.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed),
            s.busy.load(Ordering::Relaxed),
            self.workers
        )
    }

    fn status_lines(&self) -> String {
        let s = &self.stats;
        let mut out = String::new();
        let _ = writeln!(out, "name={}", E::NAME);
        let _ = writeln!(out, "version={}", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, "uptime={}", self.started.elapsed().as_secs());
        let _ = writeln!(out, "requests={}", s.requests.load(Ordering::Relaxed));
        let _ = writeln!(out, "rendered={}", s.rendered.load(Ordering::Relaxed));
        let _ = writeln!(out, "failed={}", s.failed.load(Ordering::Relaxed));
        let _ = writeln!(out, "workers={}", self.workers);
        let _ = writeln!(out, "busy={}", s.busy.load(Ordering::Relaxed));
        out
    }

    async fn render(&self, path: &str, query: &str) -> Response<Body> {
        let modifiers = match Modifiers::parse(query) {
            Ok(m) => m,
            Err(e) => return reply::text(StatusCode::BAD_REQUEST, e.0),
        };
        let source = match self.catalogs.file_at(path).await {
            Ok(source) => source,
            Err(PathError::Invalid(m)) => return reply::text(StatusCode::BAD_REQUEST, m),
            Err(PathError::NotFound(m)) => return reply::text(StatusCode::NOT_FOUND, m),
        };
        if source.len > self.limits.max_source_bytes {
            return reply::text(
                StatusCode::FORBIDDEN,
                format!(
                    "the source is {} bytes, more than max_source_bytes {}",
                    source.len, self.limits.max_source_bytes
                ),
            );
        }
        let Ok(_slot) = self.pool.clone().acquire_owned().await else {
            return reply::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        };
        let (engine, limits, metrics) = (
            self.engine.clone(),
            self.limits.clone(),
            self.metrics.clone(),
        );
        self.stats.busy.fetch_add(1, Ordering::Relaxed);
        let work = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&source.path)
                .map_err(|e| RenderError::Failed(format!("cannot read the source: {e}")))?;
            let Some(metrics) = metrics else {
                return render(&*engine, &bytes, &modifiers, &limits);
            };
            let started = Instant::now();
            let rendered = render(&*engine, &bytes, &modifiers, &limits);
            metrics.duration.observe(started.elapsed().as_secs_f64());
            metrics.source_bytes.inc_by(bytes.len() as u64);
            rendered
        })
        .await;
        self.stats.busy.fetch_sub(1, Ordering::Relaxed);
        let result =
            work.unwrap_or_else(|e| Err(RenderError::Failed(format!("the render failed: {e}"))));
        match result {
            Ok(rendered) => {
                self.stats.rendered.fetch_add(1, Ordering::Relaxed);
                reply::with_body(
                    StatusCode::OK,
                    rendered.content_type,
                    reply::full(rendered.body),
                )
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                if !matches!(e, RenderError::TooLarge(_)) {
                    // A log line that cannot be written must not fail the request.
                    let _ = writeln!(std::io::stderr().lock(), "{path}: {}", e.message());
                }
                reply::text(e.status(), e.message())
            }
        }
    }
}

impl<E: Engine> Handler for RenderService<E> {
    const ROUTES: &'static [Route] = &[Route::Render, Route::Status, Route::Other];

    fn route(path: &str) -> Route {
        if path == STATUS_PATH {
            Route::Status
        } else if path.starts_with(RENDER_PREFIX) {
            Route::Render
        } else {
            Route::Other
        }
    }

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Response<Body> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return reply::method_not_allowed();
        }
        let uri = request.uri();
        match Self::route(uri.path()) {
            Route::Status => reply::text(StatusCode::OK, self.status_lines()),
            Route::Render => {
                let path = &uri.path()[RENDER_PREFIX.len()..];
                self.render(path, uri.query().unwrap_or("")).await
            }
            _ => reply::text(
                StatusCode::NOT_FOUND,
                format!("no such path on the {}", E::NAME),
            ),
        }
    }
}
