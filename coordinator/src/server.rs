//! Runs the API: binds the listener, initializes the coordinator and serves mongosync's
//! REST API, c2c's gRPC API and `/metrics` on the same port until the shutdown signal.
//! One port speaks HTTP/1.1 (curl, mongosync's clients, Prometheus) and HTTP/2 (gRPC,
//! h2c prior knowledge); axum routes `/c2c.v1.Migration/…`-style paths to gRPC,
//! `/metrics` to `metrics` and the rest to REST.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::api::router;
use crate::config::RunConfig;
use crate::coordinator::{Coordinator, CoordinatorSettings};
use crate::driver::EngineDriver;
use crate::grpc::{grpc_routes, MigrationService, MIGRATION_SERVICE};

/// How long open connections may keep the server up after the shutdown signal. Streams
/// c2c controls (`WatchProgress`) end at once; this bounds the others (a client's
/// health `Watch`, a stalled HTTP/1 keep-alive) so a stop never hangs.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds `--bind`:`--port` (127.0.0.1:27182 by default).
pub async fn bind(config: &RunConfig) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(config.bind, config.port)).await
}

/// Serves the API on `listener` until `shutdown` completes. The coordinator answers
/// `/progress` with INITIALIZING while it reads the persisted migration.
pub async fn serve(
    config: &RunConfig,
    driver: Arc<dyn EngineDriver>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let coordinator = Coordinator::new(CoordinatorSettings::from_config(config), driver);
    serve_coordinator(coordinator, listener, shutdown).await
}

/// REST and gRPC over one router: `stopping` is cancelled when the server stops, which
/// ends the gRPC progress streams. The health reporter is returned so the caller can
/// report NOT_SERVING while stopping (or per role, in scale-out mode).
pub async fn app(
    coordinator: Arc<Coordinator>,
    stopping: CancellationToken,
) -> (Router, HealthReporter) {
    let migration = MigrationService::new(Arc::clone(&coordinator), stopping);
    let (grpc, health) = grpc_routes(migration).await;
    let metrics = crate::metrics::run_router(Arc::clone(&coordinator));
    // gRPC first: its router has no fallback, so the REST router's 404/405 answers stay.
    (grpc.merge(metrics).merge(router(coordinator)), health)
}

/// `serve` for an existing coordinator: initializes it in the background and serves
/// `app` on `listener` until `shutdown` completes.
pub async fn serve_coordinator(
    coordinator: Arc<Coordinator>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let initializer = tokio::spawn({
        let coordinator = Arc::clone(&coordinator);
        async move { coordinator.initialize().await }
    });
    let stopping = CancellationToken::new();
    let (app, health) = app(coordinator, stopping.clone()).await;
    info!(address = %listener.local_addr()?, "REST and gRPC API listening");
    let signal = tokio::spawn({
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            // Load balancers and `grpc_health_probe` see the stop before connections close.
            health
                .set_service_status(MIGRATION_SERVICE, ServingStatus::NotServing)
                .await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            stopping.cancel();
        }
    });
    let served = serve_app(listener, app, stopping).await;
    signal.abort();
    initializer.abort();
    served
}

/// Serves `app` on `listener` until `stopping` is cancelled, then lets open
/// connections finish for at most `SHUTDOWN_GRACE`.
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    stopping: CancellationToken,
) -> std::io::Result<()> {
    // gRPC answers faster without Nagle's delay on small frames.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            warn!(%error, "cannot set TCP_NODELAY");
        }
    });
    let signal = stopping.clone().cancelled_owned();
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    tokio::select! {
        served = async { server.await } => served,
        () = async {
            stopping.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}
