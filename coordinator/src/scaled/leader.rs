//! Everything a coordinator runs while it leads, owned by one value: dropping the
//! [`Leader`] stops it (leadership loss is handled crash-only by the process).
//!
//! On election the leader publishes the cluster URIs for the workers, builds the
//! coordinator with a scaled-out data plane (plan persisted in etcd, fenced on its
//! leader key), continues a persisted migration without a new `/start`, and mirrors the
//! migration's state into etcd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use c2c_engine::metadata::{Metadata, MigrationState};
use c2c_engine::migration::EngineConfig;
use c2c_engine::options::StartRequest;
use c2c_membership::{StateKey, StateStore, StateStoreExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::plan_store::EtcdPlanStore;
use super::role::LeaderApi;
use super::worker_view::{ClusterWorkers, PlaneSlot};
use crate::cluster::plane::{ClusterPlane, PlaneSettings, SharedPlane};
use crate::cluster::workers::LiveWorker;
use crate::config::RunConfig;
use crate::coordinator::{Coordinator, CoordinatorSettings, PauseJournal};
use crate::engine_driver::{self, PlaneFactory};
use crate::grpc::MigrationService;
use crate::state::State;

/// How often the leader mirrors the migration's state into etcd (when it changed).
const MIRROR_INTERVAL: Duration = Duration::from_secs(1);

/// The cluster URIs as the leader publishes them for workers started without
/// `--cluster0`/`--cluster1`. They hold credentials: etcd must be access-controlled.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedClusters {
    pub cluster0: String,
    pub cluster1: String,
}

impl std::fmt::Debug for PublishedClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedClusters")
            .field("cluster0", &crate::redact::redact_uri(&self.cluster0))
            .field("cluster1", &crate::redact::redact_uri(&self.cluster1))
            .finish()
    }
}

/// The migration as etcd records it (`/c2c/<id>/state`): the API state, whether it is
/// paused, the `/start` request and the engine's persisted state (phase, T0, Tc, Td).
/// The engine's own copy, with its checkpoints, stays on the destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRecord {
    pub state: String,
    pub paused: bool,
    pub request: Option<StartRequest>,
    pub engine: Option<MigrationState>,
    pub leader: String,
    pub term: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot publish the cluster URIs in etcd: {0}")]
    Publish(c2c_membership::MembershipError),
    #[error("cannot connect to the clusters: {0}")]
    Connect(c2c_engine::EngineError),
}

pub struct LeaderSetup {
    pub config: RunConfig,
    pub migration_id: String,
    pub term: u64,
    /// Fenced on this leader's key.
    pub store: Arc<dyn StateStore>,
    pub members: watch::Receiver<Vec<LiveWorker>>,
    pub engine: EngineConfig,
    /// Mutual TLS towards the workers (`--clusterCAFile`…).
    pub worker_tls: Option<tonic::transport::ClientTlsConfig>,
}

pub struct Leader {
    api: LeaderApi,
    coordinator: Arc<Coordinator>,
    stopping: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Leader {
    pub async fn start(setup: LeaderSetup) -> Result<Leader, LeaderError> {
        let LeaderSetup {
            config,
            migration_id,
            term,
            store,
            members,
            engine,
            worker_tls,
        } = setup;
        store
            .put(
                &StateKey::Clusters,
                &PublishedClusters {
                    cluster0: config.cluster0.clone(),
                    cluster1: config.cluster1.clone(),
                },
            )
            .await
            .map_err(LeaderError::Publish)?;

        let plane: PlaneSlot = Arc::new(Mutex::new(None));
        // Set while a new leader continues a migration its predecessor had paused, so
        // the workers are re-attached without running until the pause is re-applied.
        let hold = Arc::new(AtomicBool::new(false));
        let factory: PlaneFactory = {
            let plane = plane.clone();
            let members = members.clone();
            let store = store.clone();
            let hold = hold.clone();
            let load_level = config.load_level.map(|level| u32::from(level.get()));
            Arc::new(move |request, clusters| {
                let built = Arc::new(ClusterPlane::new(
                    PlaneSettings {
                        migration_id: migration_id.clone(),
                        term,
                        request_json: serde_json::to_string(request)
                            .expect("a StartRequest serializes"),
                        load_level,
                        worker_tls: worker_tls.clone(),
                        hold: hold.clone(),
                    },
                    members.clone(),
                    Arc::new(EtcdPlanStore::new(store.clone())),
                    Metadata::new(&clusters.destination),
                ));
                *plane.lock() = Some(built.clone());
                Arc::new(SharedPlane(built))
            })
        };
        let driver = engine_driver::connect_with(&config, Some(factory), engine)
            .await
            .map_err(LeaderError::Connect)?;
        let settings = CoordinatorSettings {
            continue_persisted: true,
            ..CoordinatorSettings::from_config(&config)
        };
        let coordinator = Coordinator::new(settings, driver);
        let workers = Arc::new(ClusterWorkers {
            members,
            plane,
            term,
        });
        coordinator.set_workers(workers.clone());
        coordinator.set_pause_journal(Arc::new(EtcdPauseJournal {
            store: store.clone(),
            paused: hold.clone(),
            leader: config.id.clone(),
            term,
        }));
        let stopping = CancellationToken::new();
        let api = LeaderApi {
            rest: crate::api::router(coordinator.clone()),
            migration: MigrationService::new(coordinator.clone(), stopping.clone())
                .with_workers(workers),
        };
        let destinations = Destinations::connect(&config).await?;
        let task = tokio::spawn(
            take_over(
                coordinator.clone(),
                store,
                destinations,
                config.id.clone(),
                term,
                hold,
            )
            .instrument(tracing::info_span!("leader", term)),
        );
        Ok(Leader {
            api,
            coordinator,
            stopping,
            tasks: vec![task],
        })
    }

    pub fn api(&self) -> LeaderApi {
        self.api.clone()
    }

    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.stopping.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Clients for reading the engine's persisted state on whichever cluster is the
/// destination.
struct Destinations {
    cluster0: mongodb::Client,
    cluster1: mongodb::Client,
}

impl Destinations {
    async fn connect(config: &RunConfig) -> Result<Destinations, LeaderError> {
        let app = format!("c2c {} (state)", config.id);
        Ok(Destinations {
            cluster0: c2c_engine::connect::client_for(&config.cluster0, &app)
                .await
                .map_err(LeaderError::Connect)?,
            cluster1: c2c_engine::connect::client_for(&config.cluster1, &app)
                .await
                .map_err(LeaderError::Connect)?,
        })
    }

    async fn engine_state(&self, request: &StartRequest) -> Option<MigrationState> {
        let client = match request.destination.as_str() {
            "cluster0" => &self.cluster0,
            _ => &self.cluster1,
        };
        match Metadata::new(client).load_state().await {
            Ok(state) => state,
            Err(error) => {
                warn!(%error, "cannot read the engine's state for the etcd record");
                None
            }
        }
    }
}

/// Records `/pause` and `/resume` in the etcd migration record before they are applied
/// (the mirror below only catches up within a second). `paused` is the user's intent,
/// shared with the mirror and with the plane, which holds the workers' work back while
/// it is set.
struct EtcdPauseJournal {
    store: Arc<dyn StateStore>,
    paused: Arc<AtomicBool>,
    leader: String,
    term: u64,
}

impl PauseJournal for EtcdPauseJournal {
    fn record(&self, paused: bool) -> crate::driver::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let current: Option<MigrationRecord> = self
                .store
                .get(&StateKey::State)
                .await
                .map_err(|error| error.to_string())?;
            let record = match current {
                Some(record) => MigrationRecord { paused, ..record },
                None => MigrationRecord {
                    state: if paused {
                        State::Paused
                    } else {
                        State::Running
                    }
                    .as_str()
                    .to_string(),
                    paused,
                    request: None,
                    engine: None,
                    leader: self.leader.clone(),
                    term: self.term,
                },
            };
            self.store
                .put(&StateKey::State, &record)
                .await
                .map_err(|error| error.to_string())?;
            self.paused.store(paused, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Continues the persisted migration (pausing it again if it was paused), then keeps
/// the etcd record current.
async fn take_over(
    coordinator: Arc<Coordinator>,
    store: Arc<dyn StateStore>,
    destinations: Destinations,
    leader: String,
    term: u64,
    hold: Arc<AtomicBool>,
) {
    let previous: Option<MigrationRecord> = match store.get(&StateKey::State).await {
        Ok(record) => record,
        Err(error) => {
            warn!(%error, "cannot read the migration record from etcd; continuing from the destination's state");
            None
        }
    };
    let was_paused = previous.as_ref().is_some_and(|record| record.paused);
    hold.store(was_paused, Ordering::SeqCst);
    coordinator.initialize().await;
    if was_paused && coordinator.state() == State::Running {
        info!("the previous leader had paused the migration; pausing it again");
        if let Err(error) = coordinator.pause().await {
            warn!(%error, "cannot pause the continued migration");
        }
    }
    // From here on /pause and /resume decide (through the journal).
    hold.store(coordinator.state() == State::Paused, Ordering::SeqCst);
    let mut written = previous;
    let mut ticker = tokio::time::interval(MIRROR_INTERVAL);
    loop {
        ticker.tick().await;
        let snapshot = coordinator.snapshot();
        let engine = match &snapshot.request {
            Some(request) => destinations.engine_state(request).await,
            None => None,
        };
        let record = MigrationRecord {
            state: snapshot.state.as_str().to_string(),
            paused: hold.load(Ordering::SeqCst),
            request: snapshot.request.clone(),
            engine,
            leader: leader.clone(),
            term,
        };
        if written.as_ref() == Some(&record) {
            continue;
        }
        match store.put(&StateKey::State, &record).await {
            Ok(()) => written = Some(record),
            Err(error) => warn!(%error, "cannot record the migration's state in etcd"),
        }
    }
}
