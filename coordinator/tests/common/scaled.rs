//! The scaled-out data plane in one test process: N workers, each a real
//! `c2c.v1.Worker` gRPC server on its own port, driven by the leader's `ClusterPlane`
//! behind the REST API. Membership is a watch channel the test edits (etcd is tested
//! with the processes in `e2e_scaleout_etcd`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use c2c_coordinator::cluster::plan::Plan;
use c2c_coordinator::cluster::plane::{ClusterPlane, PlaneSettings, SharedPlane};
use c2c_coordinator::cluster::store::MemoryPlanStore;
use c2c_coordinator::cluster::workers::LiveWorker;
use c2c_coordinator::engine_driver::{self, PlaneFactory};
use c2c_engine::metadata::Metadata;
use c2c_engine::migration::EngineConfig;
use c2c_engine::redact::hosts_of;
use c2c_worker::{LeaseView, WorkerEndpoint, WorkerService, WorkerSettings};
use mongodb::Client;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::{fast, Api, Cluster, Harness, RestClient};

/// A lease the test can take away (as etcd would after a partition).
#[derive(Default)]
pub struct TestLease {
    pub lost: AtomicBool,
}

impl LeaseView for TestLease {
    fn is_valid(&self) -> bool {
        !self.lost.load(Ordering::Relaxed)
    }
}

pub struct TestWorker {
    pub id: String,
    pub address: String,
    pub service: Arc<WorkerService>,
    pub lease: Arc<TestLease>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

pub struct ScaleOut {
    pub workers: Vec<TestWorker>,
    members: watch::Sender<Vec<LiveWorker>>,
    plane: Arc<Mutex<Option<Arc<ClusterPlane>>>>,
}

async fn start_worker(id: &str, source: &Cluster, destination: &Cluster) -> TestWorker {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind worker");
    let address = listener.local_addr().expect("address").to_string();
    let client = |uri: &str| {
        let uri = uri.to_string();
        async move { Client::with_uri_str(&uri).await.expect("connect") }
    };
    let settings = WorkerSettings {
        id: id.to_string(),
        cluster0: (client(&source.uri).await, hosts_of(&source.uri)),
        cluster1: (client(&destination.uri).await, hosts_of(&destination.uri)),
        load_level: None,
        engine: EngineConfig {
            spill_dir: std::env::temp_dir().join(format!("c2c-test-{id}-{}", rand_suffix())),
            ..EngineConfig::default()
        },
    };
    let lease = Arc::new(TestLease::default());
    let service = Arc::new(WorkerService::new(settings, lease.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let endpoint = WorkerEndpoint(service.clone());
    let server = tokio::spawn(async move {
        let _ = c2c_worker::serve(listener, endpoint, async {
            let _ = stopped.await;
        })
        .await;
    });
    TestWorker {
        id: id.to_string(),
        address,
        service,
        lease,
        stop: Some(stop),
        server,
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Harness {
    /// Two testbeds, `workers` in-process workers and the REST API of a leader whose
    /// engine plans partitions of about `partition_bytes`.
    pub async fn start_scaled(workers: usize, partition_bytes: u64) -> (Harness, ScaleOut) {
        super::log_to_file();
        let source = Cluster::start("C2C_TEST_SOURCE_URI", fast()).await;
        let destination = Cluster::start("C2C_TEST_DESTINATION_URI", fast()).await;
        let mut started = Vec::new();
        for index in 0..workers {
            started.push(start_worker(&format!("w{}", index + 1), &source, &destination).await);
        }
        let (members, members_rx) = watch::channel(
            started
                .iter()
                .map(|w| LiveWorker {
                    id: w.id.clone(),
                    address: w.address.clone(),
                })
                .collect::<Vec<_>>(),
        );
        let plane_slot: Arc<Mutex<Option<Arc<ClusterPlane>>>> = Arc::default();
        let factory: PlaneFactory = {
            let slot = plane_slot.clone();
            Arc::new(move |request, clusters| {
                let plane = Arc::new(ClusterPlane::new(
                    PlaneSettings {
                        migration_id: "test".into(),
                        term: 1,
                        request_json: serde_json::to_string(request).expect("request json"),
                        load_level: None,
                        worker_tls: None,
                        hold: Default::default(),
                    },
                    members_rx.clone(),
                    Arc::new(MemoryPlanStore::default()),
                    Metadata::new(&clusters.destination),
                ));
                *slot.lock() = Some(plane.clone());
                Arc::new(SharedPlane(plane))
            })
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut harness = Harness {
            source,
            destination,
            rest: RestClient::new(address),
            address,
            api: Api::Stopped,
            _external: None,
        };
        let engine = EngineConfig {
            partition_target_bytes: partition_bytes,
            ..EngineConfig::default()
        };
        let driver = engine_driver::connect_with(&harness.config(), Some(factory), engine)
            .await
            .expect("engine driver");
        harness.serve_in_process(listener, driver);
        harness
            .wait_for_state("IDLE", Duration::from_secs(30))
            .await;
        (
            harness,
            ScaleOut {
                workers: started,
                members,
                plane: plane_slot,
            },
        )
    }
}

impl ScaleOut {
    pub fn plane(&self) -> Arc<ClusterPlane> {
        self.plane.lock().clone().expect("started")
    }

    /// Waits until the leader's current plan satisfies `predicate`, and returns it.
    pub async fn plan_where(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&Plan) -> bool,
    ) -> Plan {
        super::eventually(what, timeout, || async {
            self.plane().plan().filter(|plan| predicate(plan))
        })
        .await
    }

    /// A new worker registers (as a process started during the migration would).
    pub async fn add_worker(&mut self, id: &str, harness: &Harness) {
        let worker = start_worker(id, &harness.source, &harness.destination).await;
        let member = LiveWorker {
            id: worker.id.clone(),
            address: worker.address.clone(),
        };
        self.workers.push(worker);
        self.members.send_modify(|members| members.push(member));
    }

    /// The worker's lease expires: it stops writing at once, and leaves the membership
    /// so its share moves to the others.
    pub async fn lose_worker(&mut self, id: &str) {
        self.crash_worker(id).await;
        self.expire_registration(id);
    }

    /// `kill -9` of the worker: it stops and no longer answers, but its registration
    /// stays until its lease expires ([`ScaleOut::expire_registration`]).
    pub async fn crash_worker(&mut self, id: &str) {
        let index = self
            .workers
            .iter()
            .position(|w| w.id == id)
            .expect("worker");
        let mut worker = self.workers.remove(index);
        // Gone at once, as a killed process: no last report, no more answers.
        worker.server.abort();
        let _ = (&mut worker.server).await;
        worker.stop.take();
        worker.lease.lost.store(true, Ordering::Relaxed);
        worker.service.stop_all().await;
    }

    /// The worker's lease expired: it leaves the membership.
    pub fn expire_registration(&self, id: &str) {
        self.members
            .send_modify(|members| members.retain(|m| m.id != id));
    }
}
