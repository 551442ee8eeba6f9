//! The real `EngineDriver`: both clusters connected once, and the engine's `Migration`
//! started with whichever of them the `/start` request names as the source.

use std::sync::Arc;
use std::time::Duration;

use c2c_engine::metadata::PersistedPhase;
use c2c_engine::migration::{Clusters, EngineConfig, Migration};
use c2c_engine::options::{StartRequest, SyncOptions};
use c2c_engine::progress::Progress;
use c2c_engine::EngineError;
use mongodb::options::ClientOptions;
use mongodb::Client;
use parking_lot::Mutex;

use crate::config::RunConfig;
use crate::driver::{BoxFuture, EngineDriver};
use crate::redact::hosts_of;

/// How long the driver waits for a usable server before an operation fails (the
/// engine's retry helper then retries it).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Cluster {
    client: Client,
    hosts: Vec<String>,
}

pub struct MigrationDriver {
    cluster0: Cluster,
    cluster1: Cluster,
    engine: EngineConfig,
    migration: Mutex<Option<Arc<Migration>>>,
}

async fn client_for(uri: &str, app_name: &str) -> Result<Client, EngineError> {
    let mut options = ClientOptions::parse(uri).await.map_err(|error| {
        EngineError::Fatal(format!(
            "invalid connection string {}: {error}",
            crate::redact::redact_uri(uri)
        ))
    })?;
    options
        .server_selection_timeout
        .get_or_insert(SERVER_SELECTION_TIMEOUT);
    options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
    options.app_name.get_or_insert_with(|| app_name.to_string());
    Client::with_options(options)
        .map_err(|error| EngineError::Fatal(format!("cannot create a client: {error}")))
}

/// Connects to both clusters and returns the driver `c2c run` serves the API with.
pub async fn connect(config: &RunConfig) -> Result<Arc<dyn EngineDriver>, EngineError> {
    let app_name = format!("c2c {}", config.id);
    let cluster0 = Cluster {
        client: client_for(&config.cluster0, &app_name).await?,
        hosts: hosts_of(&config.cluster0),
    };
    let cluster1 = Cluster {
        client: client_for(&config.cluster1, &app_name).await?,
        hosts: hosts_of(&config.cluster1),
    };
    let engine = EngineConfig {
        spill_dir: std::env::temp_dir().join(format!("c2c-{}-{}", config.id, std::process::id())),
        ..EngineConfig::default()
    };
    Ok(Arc::new(MigrationDriver {
        cluster0,
        cluster1,
        engine,
        migration: Mutex::new(None),
    }))
}

impl MigrationDriver {
    fn cluster(&self, name: &str) -> Result<&Cluster, EngineError> {
        match name {
            "cluster0" => Ok(&self.cluster0),
            "cluster1" => Ok(&self.cluster1),
            other => Err(EngineError::Fatal(format!("unknown cluster {other:?}"))),
        }
    }

    fn current(&self) -> Result<Arc<Migration>, EngineError> {
        self.migration
            .lock()
            .clone()
            .ok_or_else(|| EngineError::Fatal("no migration is running".into()))
    }
}

impl EngineDriver for MigrationDriver {
    fn start(
        &self,
        request: StartRequest,
        options: SyncOptions,
    ) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            let source = self.cluster(&request.source)?;
            let destination = self.cluster(&request.destination)?;
            let clusters = Clusters {
                source: source.client.clone(),
                destination: destination.client.clone(),
                source_hosts: source.hosts.clone(),
                destination_hosts: destination.hosts.clone(),
            };
            let migration =
                Migration::start(clusters, request, options, self.engine.clone()).await?;
            *self.migration.lock() = Some(migration);
            Ok(())
        })
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.current()?.pause().await })
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.current()?.resume().await })
    }

    fn commit(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.current()?.commit().await })
    }

    fn reverse(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.current()?.reverse().await })
    }

    fn progress(&self) -> Option<Arc<Progress>> {
        self.migration
            .lock()
            .as_ref()
            .map(|migration| migration.progress())
    }

    /// The migration metadata lives on the destination, which is not known until
    /// `/start`: look on both clusters.
    fn persisted_request(&self) -> BoxFuture<'_, Result<Option<StartRequest>, EngineError>> {
        Box::pin(async move {
            for cluster in [&self.cluster1, &self.cluster0] {
                if let Some(request) = Migration::persisted_request(&cluster.client).await? {
                    return Ok(Some(request));
                }
            }
            Ok(None)
        })
    }

    /// Looked up on the clusters in the same order as `persisted_request`, so both
    /// answers come from the same state document.
    fn persisted_phase(&self) -> BoxFuture<'_, Result<Option<PersistedPhase>, EngineError>> {
        Box::pin(async move {
            for cluster in [&self.cluster1, &self.cluster0] {
                if let Some(phase) = Migration::persisted_phase(&cluster.client).await? {
                    return Ok(Some(phase));
                }
            }
            Ok(None)
        })
    }
}
