//! Runs the API: binds the listener, initializes the coordinator and serves mongosync's
//! REST API, c2c's gRPC API and `/metrics` on the same port until the shutdown signal.
//! One port speaks HTTP/1.1 (curl, mongosync's clients, Prometheus) and HTTP/2 (gRPC,
//! h2c prior knowledge); axum routes `/c2c.v1.Migration/…`-style paths to gRPC,
//! `/metrics` to `metrics` and the rest to REST. With an API token configured, one
//! middleware layer (`auth`) in front of all three checks `Authorization: Bearer`.

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
use crate::auth::ApiAuth;
use crate::config::{RunConfig, SecurityConfig};
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
    let security = ApiSecurity::load(&config.security).map_err(std::io::Error::other)?;
    let coordinator = Coordinator::new(CoordinatorSettings::from_config(config), driver);
    serve_coordinator_with(coordinator, listener, shutdown, security).await
}

/// The API's security, loaded at start from [`SecurityConfig`] (the token file read,
/// the TLS certificate and key parsed).
#[derive(Debug, Clone, Default)]
pub struct ApiSecurity {
    pub auth: ApiAuth,
    /// Serve over TLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl ApiSecurity {
    pub fn load(config: &SecurityConfig) -> Result<ApiSecurity, String> {
        let auth = ApiAuth::from_source(&config.api_token, config.metrics_auth)
            .map_err(|reason| format!("apiTokenFile: {reason}"))?;
        let tls = match &config.tls {
            None => None,
            Some(files) => Some(
                crate::tls::server_config(&files.cert, &files.key, None)
                    .map_err(|reason| format!("tlsCertFile/tlsKeyFile: {reason}"))?,
            ),
        };
        Ok(ApiSecurity { auth, tls })
    }
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
    serve_coordinator_with(coordinator, listener, shutdown, ApiSecurity::default()).await
}

/// `serve_coordinator` with the API's token check (and TLS) of `security`.
pub async fn serve_coordinator_with(
    coordinator: Arc<Coordinator>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    security: ApiSecurity,
) -> std::io::Result<()> {
    let initializer = tokio::spawn({
        let coordinator = Arc::clone(&coordinator);
        async move { coordinator.initialize().await }
    });
    let stopping = CancellationToken::new();
    let (app, health) = app(coordinator, stopping.clone()).await;
    let app = security.auth.protect(app);
    info!(address = %listener.local_addr()?, token = security.auth.is_enabled(), tls = security.tls.is_some(), "REST and gRPC API listening");
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
    let served = serve_app_with(listener, app, stopping, security.tls).await;
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
    serve_app_with(listener, app, stopping, None).await
}

/// `serve_app`, over TLS when `tls` is given.
pub async fn serve_app_with(
    listener: TcpListener,
    app: Router,
    stopping: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            let listener = crate::tls::TlsListener::new(listener, config)?;
            serve_until(listener, app, stopping).await
        }
        None => {
            // gRPC answers faster without Nagle's delay on small frames.
            let listener = listener.tap_io(|stream| {
                if let Err(error) = stream.set_nodelay(true) {
                    warn!(%error, "cannot set TCP_NODELAY");
                }
            });
            serve_until(listener, app, stopping).await
        }
    }
}

async fn serve_until<L>(
    listener: L,
    app: Router,
    stopping: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
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
