//! The life of a daemon: configuration, listening socket, runtime, readiness, serving until
//! SIGTERM, draining. Shared by the three binaries.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::allocator;
use crate::cli::{self, Component};
use crate::config::Config;
use crate::http::listener::{self, Origin};
use crate::http::server::{self, Handler, Limits};
use crate::metrics::{self, Metrics};
use crate::platform::PlatformService;
use crate::render::{Engine, RasterEngine, RenderService, VectorEngine};
use crate::systemd;

/// Blocking threads the Platform Server may use for file reads (`/is/content`).
const PLATFORM_BLOCKING_THREADS: usize = 8;

/// Runs `component` with the process's arguments; the exit code for `main`.
pub fn main(component: Component) -> ExitCode {
    let name = component.binary();
    let args = cli::parse(component);
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let (address, io_threads, blocking_threads, metrics_address) = match component {
        Component::Platform => (
            config.ps.listen,
            config.ps.io_threads,
            PLATFORM_BLOCKING_THREADS,
            config.ps.metrics_listen.0,
        ),
        Component::Image => (
            config.es.listen,
            config.es.io_threads,
            config.es.worker_count(),
            config.es.metrics_listen.0,
        ),
        Component::Svg => (
            config.svg.listen,
            config.svg.io_threads,
            config.svg.worker_count(),
            config.svg.metrics_listen.0,
        ),
    };
    // Before any thread exists: taking systemd's socket edits the environment.
    let (listener, origin) = match listener::acquire(address) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: cannot listen on {address}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics_listener = match metrics_address.map(|a| (a, listener::bind(a))) {
        None => None,
        Some((_, Ok(l))) => Some(l),
        Some((a, Err(e))) => {
            let section = component.short();
            eprintln!(
                "{name}: cannot serve metrics on {a}: {e}; set {section}.metrics_listen to a free \
                 address, or to \"\" to turn metrics off"
            );
            return ExitCode::FAILURE;
        }
    };
    allocator::keep_render_memory();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .max_blocking_threads(blocking_threads)
        .thread_name(component.short())
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(component, config, listener, origin, metrics_listener));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    component: Component,
    config: Config,
    listener: std::net::TcpListener,
    origin: Origin,
    metrics_listener: Option<std::net::TcpListener>,
) -> Result<(), String> {
    let listener =
        TcpListener::from_std(listener).map_err(|e| format!("cannot use the socket: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let how = match origin {
        Origin::Systemd => "socket passed by systemd",
        Origin::Bound => "bound",
    };
    println!(
        "{} {} listening on {address} ({how})",
        component.binary(),
        env!("CARGO_PKG_VERSION")
    );
    let metrics_listener = match metrics_listener {
        Some(l) => {
            let l = TcpListener::from_std(l)
                .map_err(|e| format!("cannot use the metrics socket: {e}"))?;
            let at = l.local_addr().map_err(|e| e.to_string())?;
            println!("metrics at http://{at}/metrics");
            Some(l)
        }
        None => None,
    };
    let mut exposition = Exposition {
        metrics: Metrics::new(metrics_listener.is_some()),
        listener: metrics_listener,
    };
    let (probes, probed) = mpsc::channel(1);
    systemd::spawn_watchdog(probes);
    match component {
        Component::Platform => {
            let service = Arc::new(PlatformService::new(&config, &mut exposition.metrics));
            tokio::spawn(announce_when_reachable(service.clone(), address));
            let summary = service.clone();
            systemd::spawn_status(config.http.status_interval(), move || summary.summary());
            serve(
                listener,
                &config,
                config.ps.limits(),
                service,
                probed,
                exposition,
            )
            .await;
        }
        Component::Image => {
            let workers = config.es.worker_count();
            let service =
                RenderService::new(RasterEngine, &config, workers, &mut exposition.metrics);
            serve_renderer(
                service,
                &config,
                config.es.limits(),
                listener,
                address,
                probed,
                exposition,
            )
            .await;
        }
        Component::Svg => {
            let engine = VectorEngine::new(&config.image);
            let workers = config.svg.worker_count();
            let service = RenderService::new(engine, &config, workers, &mut exposition.metrics);
            serve_renderer(
                service,
                &config,
                config.svg.limits(),
                listener,
                address,
                probed,
                exposition,
            )
            .await;
        }
    }
    println!("{} stopped", component.binary());
    Ok(())
}

/// A daemon's metrics and the socket they are served on (`None`: metrics are off).
struct Exposition {
    metrics: Metrics,
    listener: Option<TcpListener>,
}

async fn serve_renderer<E: Engine>(
    service: RenderService<E>,
    config: &Config,
    limits: Limits,
    listener: TcpListener,
    address: SocketAddr,
    probed: mpsc::Receiver<systemd::Probe>,
    exposition: Exposition,
) {
    let service = Arc::new(service);
    systemd::ready(&format!(
        "serving on {address} with {} workers",
        service.workers()
    ));
    let summary = service.clone();
    systemd::spawn_status(config.http.status_interval(), move || summary.summary());
    serve(listener, config, limits, service, probed, exposition).await;
}

/// Serves `service` on `listener`, and the metrics on theirs, until SIGTERM; then drains.
async fn serve<H: Handler>(
    listener: TcpListener,
    config: &Config,
    limits: Limits,
    service: Arc<H>,
    probed: mpsc::Receiver<systemd::Probe>,
    mut exposition: Exposition,
) {
    let http_metrics = exposition.metrics.http(H::ROUTES).map(Arc::new);
    if let Some(metrics_listener) = exposition.listener {
        metrics::endpoint::spawn(metrics_listener, exposition.metrics, &config.http);
    }
    let drain = config.http.shutdown_timeout;
    let stop = async move {
        server::termination().await;
        println!("stopping: no new connections, finishing open requests (up to {drain} s)");
        systemd::stopping("stopping: finishing open requests");
    };
    server::serve(
        listener,
        &config.http,
        limits,
        service,
        http_metrics,
        probed,
        stop,
    )
    .await;
}

/// How long the Platform Server waits for the Image Server before it says READY anyway: a
/// front door that answers 503 naming the missing renderer beats a start that hangs until
/// systemd's start timeout, and the other components keep running meanwhile.
const ES_GRACE: Duration = Duration::from_secs(5);

/// The Platform Server is ready once it has reached the Image Server, or once `ES_GRACE` has
/// passed without it: until then it answers, but every image request would fail.
async fn announce_when_reachable(service: Arc<PlatformService>, address: SocketAddr) {
    let reach = async {
        let mut delay = Duration::from_millis(50);
        let mut told = false;
        loop {
            match service.es.status().await {
                Ok(_) => break,
                Err(e) if !told => {
                    eprintln!("waiting for the {}: {e}", service.es.name);
                    told = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    };
    match tokio::time::timeout(ES_GRACE, reach).await {
        Ok(()) => println!(
            "ready: the {} answers at {}",
            service.es.name, service.es.address
        ),
        Err(_) => eprintln!(
            "ready without the {}: it did not answer at {} within {} s; image requests get 503 \
             until it does",
            service.es.name,
            service.es.address,
            ES_GRACE.as_secs()
        ),
    }
    systemd::ready(&format!("serving on {address}, {}", service.summary()));
}
