//! Runs the REST API: binds the listener, initializes the coordinator and serves until
//! the shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use crate::api::router;
use crate::config::RunConfig;
use crate::coordinator::{Coordinator, CoordinatorSettings};
use crate::driver::EngineDriver;

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
    let initializer = tokio::spawn({
        let coordinator = Arc::clone(&coordinator);
        async move { coordinator.initialize().await }
    });
    info!(address = %listener.local_addr()?, "REST API listening");
    let served = axum::serve(listener, router(coordinator))
        .with_graceful_shutdown(shutdown)
        .await;
    initializer.abort();
    served
}
