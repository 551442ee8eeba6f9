//! The real `EngineDriver`: both clusters connected once, and the engine's `Migration`
//! started with whichever of them the `/start` request names as the source.

use std::path::PathBuf;
use std::sync::Arc;

use c2c_engine::metadata::PersistedPhase;
use c2c_engine::migration::{Clusters, EngineConfig, Migration};
use c2c_engine::options::{StartRequest, SyncOptions};
use c2c_engine::progress::Progress;
use c2c_engine::EngineError;
use mongodb::Client;
use parking_lot::Mutex;

use crate::config::RunConfig;
use crate::driver::{BoxFuture, EngineDriver};
use c2c_engine::connect::client_for;
use c2c_engine::redact::hosts_of;

struct Cluster {
    client: Client,
    hosts: Vec<String>,
}

/// Builds the scaled-out leader's data plane for a request (see `cluster::plane`).
pub type PlaneFactory = Arc<
    dyn Fn(&StartRequest, &Clusters) -> Arc<dyn c2c_engine::migration::RemotePlane> + Send + Sync,
>;

pub struct MigrationDriver {
    cluster0: Cluster,
    cluster1: Cluster,
    engine: EngineConfig,
    /// Scaled out: workers copy and apply; `None`: this process does.
    plane: Option<PlaneFactory>,
    migration: Mutex<Option<Arc<Migration>>>,
}

/// Connects to both clusters and returns the driver `c2c run` serves the API with.
pub async fn connect(config: &RunConfig) -> Result<Arc<dyn EngineDriver>, EngineError> {
    connect_with_plane(config, None).await
}

/// As `connect`, with the copy and change-event application done by workers.
pub async fn connect_with_plane(
    config: &RunConfig,
    plane: Option<PlaneFactory>,
) -> Result<Arc<dyn EngineDriver>, EngineError> {
    connect_with(config, plane, engine_config(&config.id)?).await
}

/// The environment variable that sets the copy partitions' target size in bytes:
/// smaller partitions spread one collection's copy over more workers (scale-out) and
/// resume with less repeated work; larger ones mean fewer range queries.
pub const PARTITION_BYTES_ENV: &str = "C2C_PARTITION_TARGET_BYTES";

/// This process's directory for change events spilled while a copy runs. It is named by
/// pid: a restart resumes from the checkpoints on the destination, never from a spill.
pub fn spill_dir_for(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("c2c-{id}-{}", std::process::id()))
}

/// Removes the process's spill directory when the process ends normally. A `kill -9` or
/// an OOM kill leaves it; the next process with the same id removes it on start (it holds
/// only events the destination's checkpoints make unnecessary), so a crash-looping
/// process does not fill the disk.
pub struct SpillDirCleanup(PathBuf);

impl SpillDirCleanup {
    pub fn new(dir: PathBuf) -> Self {
        remove_dead_siblings(&dir, std::path::Path::new("/proc"));
        Self(dir)
    }
}

impl Drop for SpillDirCleanup {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.0) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(dir = %self.0.display(), %error, "cannot remove the spill directory")
            }
        }
    }
}

/// Removes `<parent>/<prefix>-<pid>` directories of processes no longer alive, where
/// `dir` is `<parent>/<prefix>-<this pid>` (as [`spill_dir_for`] names it). Liveness
/// comes from `proc` (`/proc`); without it nothing is removed.
fn remove_dead_siblings(dir: &std::path::Path, proc: &std::path::Path) {
    let own_pid = std::process::id().to_string();
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str()))
    else {
        return;
    };
    let Some(prefix) = name.strip_suffix(&format!("-{own_pid}")) else {
        return;
    };
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.strip_prefix('-'))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        let Some(pid) = pid else {
            continue;
        };
        if pid == own_pid || proc.join(pid).exists() {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::info!(dir = %entry.path().display(), "removed the spill directory of a process that was killed")
            }
            Err(error) => {
                tracing::warn!(dir = %entry.path().display(), %error, "cannot remove a dead process's spill directory")
            }
        }
    }
}

/// The engine's settings for a process with this id: a spill directory of its own, and
/// `C2C_PARTITION_TARGET_BYTES` when set.
pub fn engine_config(id: &str) -> Result<EngineConfig, EngineError> {
    let mut engine = EngineConfig {
        spill_dir: spill_dir_for(id),
        ..EngineConfig::default()
    };
    if let Ok(text) = std::env::var(PARTITION_BYTES_ENV) {
        engine.partition_target_bytes = text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|bytes| *bytes >= 1024)
            .ok_or_else(|| {
                EngineError::Fatal(format!(
                    "{PARTITION_BYTES_ENV}={text:?} is not a size in bytes of at least 1024"
                ))
            })?;
    }
    Ok(engine)
}

/// As `connect_with_plane`, with the engine's settings given (tests shrink partitions).
pub async fn connect_with(
    config: &RunConfig,
    plane: Option<PlaneFactory>,
    engine: EngineConfig,
) -> Result<Arc<dyn EngineDriver>, EngineError> {
    let app_name = format!("c2c {}", config.id);
    let cluster0 = Cluster {
        client: client_for(&config.cluster0, &app_name).await?,
        hosts: hosts_of(&config.cluster0),
    };
    let cluster1 = Cluster {
        client: client_for(&config.cluster1, &app_name).await?,
        hosts: hosts_of(&config.cluster1),
    };
    Ok(Arc::new(MigrationDriver {
        cluster0,
        cluster1,
        engine,
        plane,
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
            let engine = self.engine.clone();
            let migration = match &self.plane {
                Some(factory) => {
                    let plane = factory(&request, &clusters);
                    Migration::start_remote(clusters, request, options, engine, plane).await?
                }
                None => Migration::start(clusters, request, options, engine).await?,
            };
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

#[cfg(test)]
mod spill_dir_tests {
    use super::*;

    #[test]
    fn dead_processes_spill_directories_of_the_same_id_are_removed() {
        let parent =
            std::env::temp_dir().join(format!("c2c-spill-siblings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        let own = parent.join(format!("c2c-worker-w1-{}", std::process::id()));
        // 4,294,967,295 is above any pid_max, so that process is dead.
        let dead = parent.join("c2c-worker-w1-4294967295");
        let alive = parent.join("c2c-worker-w1-1");
        let other_id = parent.join("c2c-worker-w1-2-4294967295");
        let longer_id = parent.join("c2c-worker-w10-4294967295");
        for dir in [&own, &dead, &alive, &other_id, &longer_id] {
            std::fs::create_dir_all(dir.join("events")).expect("creating a spill directory");
        }
        remove_dead_siblings(&own, std::path::Path::new("/proc"));
        assert!(!dead.exists(), "a dead process's directory is removed");
        for kept in [&own, &alive, &other_id, &longer_id] {
            assert!(kept.exists(), "{} is kept", kept.display());
        }
        // Without /proc nothing is known to be dead.
        std::fs::create_dir_all(&dead).expect("re-creating");
        remove_dead_siblings(&own, &parent.join("no-proc"));
        assert!(dead.exists());
        std::fs::remove_dir_all(&parent).expect("cleaning up");
    }
}
