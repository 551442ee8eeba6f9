//! `c2c worker`: registers on etcd under a lease, serves `c2c.v1.Worker` and runs the
//! share the leader assigns. It keeps syncing if no coordinator is up; it stops writing
//! at once when its lease is no longer confirmed, and registers again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use c2c_coordinator::cli::WorkerArgs;
use c2c_coordinator::cluster_security::{describe, etcd_security, ClusterTls};
use c2c_coordinator::config::LogConfig;
use c2c_coordinator::engine_driver::{spill_dir_for, SpillDirCleanup};
use c2c_coordinator::metrics::roles::worker_router;
use c2c_coordinator::scaled::health;
use c2c_coordinator::scaled::leader::PublishedClusters;
use c2c_coordinator::scaled::worker_node::{worker_routes, RegistrationLease};
use c2c_coordinator::server::serve_app_with;
use c2c_coordinator::{logging, telemetry};
use c2c_engine::connect::client_for;
use c2c_engine::migration::EngineConfig;
use c2c_engine::options::LoadLevel;
use c2c_engine::redact::hosts_of;
use c2c_membership::{
    MigrationId, StateKey, StateReader, WorkerId, WorkerRecord, WorkerRegistration,
};
use c2c_worker::{WorkerEndpoint, WorkerService, WorkerSettings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tracing::{info, warn};

/// How often a worker started without cluster URIs looks for the leader's.
const CLUSTERS_POLL: Duration = Duration::from_secs(1);
/// Pause between attempts to register again after losing the lease.
const REREGISTER_RETRY: Duration = Duration::from_millis(500);

pub async fn run(
    args: WorkerArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let logs = LogConfig::for_worker(&args)?;
    // Kept until the process ends: it owns the SIGUSR1 log-rotation task and the traces.
    let _logging = logging::init(
        logs.log_path.as_deref(),
        logs.verbosity,
        &args.id,
        telemetry::Role::Worker,
    )?;
    let load_level = match args.load_level {
        Some(level) => Some(
            LoadLevel::new(level)
                .ok_or_else(|| anyhow::anyhow!("--loadLevel {level} is not between 1 and 4"))?,
        ),
        None => None,
    };
    let id = WorkerId::new(&args.id).map_err(|error| anyhow::anyhow!("--id: {error}"))?;
    let migration = MigrationId::new(&args.etcd.migration_id)
        .map_err(|error| anyhow::anyhow!("--migration-id: {error}"))?;
    let listener = TcpListener::bind((args.bind.as_str(), args.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (--bind/--port)",
                args.bind, args.port
            )
        })?;
    let bound = listener.local_addr()?;
    let advertised = super::advertise(args.etcd.advertise.clone(), bound)?;
    let etcd_security = etcd_security(&args.etcd, |name| std::env::var(name).ok())?;
    let cluster_tls = ClusterTls::load(&args.etcd)?;
    info!(worker = %id, migration = %migration, advertise = %advertised, etcd = ?args.etcd.etcd, security = %describe(&etcd_security, cluster_tls.as_ref()), pid = std::process::id(), "c2c worker");
    let stopping = super::shutdown_token(shutdown);

    let Some(etcd) = super::connect_etcd(&args.etcd.etcd, &etcd_security, &stopping).await? else {
        return Ok(());
    };
    let clusters = match (&args.cluster0, &args.cluster1) {
        (Some(cluster0), Some(cluster1)) => PublishedClusters {
            cluster0: cluster0.clone(),
            cluster1: cluster1.clone(),
        },
        _ => match published_clusters(StateReader::new(etcd.clone(), &migration), &stopping).await?
        {
            Some(clusters) => clusters,
            None => return Ok(()),
        },
    };
    let app = format!("c2c worker {id}");
    let spill_dir = spill_dir_for(&format!("worker-{id}"));
    let _spill = SpillDirCleanup::new(spill_dir.clone());
    let settings = WorkerSettings {
        id: id.to_string(),
        cluster0: (
            client_for(&clusters.cluster0, &app)
                .await
                .context("cannot connect to cluster0")?,
            hosts_of(&clusters.cluster0),
        ),
        cluster1: (
            client_for(&clusters.cluster1, &app)
                .await
                .context("cannot connect to cluster1")?,
            hosts_of(&clusters.cluster1),
        ),
        load_level,
        engine: EngineConfig {
            spill_dir: spill_dir.clone(),
            ..EngineConfig::default()
        },
    };

    let registration = loop {
        let record = WorkerRecord::new(&id, advertised.clone());
        match WorkerRegistration::register(etcd.clone(), &migration, record).await {
            Ok(registration) => break Arc::new(registration),
            // Another live worker has this id: two workers must never share one.
            Err(error @ c2c_membership::MembershipError::AlreadyRegistered { .. }) => {
                return Err(error).context("cannot register in etcd");
            }
            Err(error) => warn!(%error, "cannot register in etcd yet; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(REREGISTER_RETRY) => {}
            () = stopping.cancelled() => return Ok(()),
        }
    };
    let service = Arc::new(WorkerService::new(
        settings,
        Arc::new(RegistrationLease(registration.clone())),
    ));
    let (routes, reporter) = worker_routes(WorkerEndpoint(service.clone())).await;
    let routes = routes.merge(worker_router(service.clone()));
    reporter
        .set_service_status(health::WORKER, ServingStatus::Serving)
        .await;
    // With mutual TLS only callers with a certificate of the cluster CA get in.
    let server = tokio::spawn(serve_app_with(
        listener,
        routes,
        stopping.clone(),
        cluster_tls.map(|tls| tls.server),
    ));
    info!(address = %bound, "worker registered and serving");

    loop {
        tokio::select! {
            () = registration.lease_lost() => {}
            () = stopping.cancelled() => break,
        }
        warn!("lease lost: stopping all work until registered again (the leader moves this worker's share meanwhile)");
        reporter
            .set_service_status(health::WORKER, ServingStatus::NotServing)
            .await;
        service.stop_all().await;
        loop {
            match registration.reregister().await {
                Ok(()) => break,
                Err(error) => {
                    warn!(%error, "cannot register again yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(REREGISTER_RETRY) => {}
                        () = stopping.cancelled() => break,
                    }
                }
            }
        }
        if stopping.is_cancelled() {
            break;
        }
        info!(generation = registration.generation(), "registered again");
        reporter
            .set_service_status(health::WORKER, ServingStatus::Serving)
            .await;
    }
    info!("stopping");
    reporter
        .set_service_status(health::WORKER, ServingStatus::NotServing)
        .await;
    service.end_progress_streams();
    service.stop_all().await;
    let _ = server.await;
    // The server's handles are gone with it: the registration is ours alone again.
    drop(service);
    match Arc::try_unwrap(registration) {
        Ok(registration) => {
            if let Err(error) = registration.deregister().await {
                warn!(%error, "cannot deregister; the registration expires with the lease");
            }
        }
        Err(_) => warn!("the registration is still in use; it expires with the lease"),
    }
    info!("c2c worker stopped");
    Ok(())
}

/// The cluster URIs the leader publishes, waited for (a worker may start first).
async fn published_clusters(
    reader: StateReader,
    stopping: &CancellationToken,
) -> anyhow::Result<Option<PublishedClusters>> {
    let mut announced = false;
    loop {
        match reader.get::<PublishedClusters>(&StateKey::Clusters).await {
            Ok(Some(clusters)) => return Ok(Some(clusters)),
            Ok(None) if !announced => {
                info!("waiting for a leader to publish the cluster URIs (or pass --cluster0/--cluster1)");
                announced = true;
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "cannot read the published cluster URIs yet"),
        }
        tokio::select! {
            () = tokio::time::sleep(CLUSTERS_POLL) => {}
            () = stopping.cancelled() => return Ok(None),
        }
    }
}
