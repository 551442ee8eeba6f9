//! `c2c coordinator`: campaigns on etcd; while following it forwards the API to the
//! leader, once elected it leads until it dies or loses the lease (then it restarts
//! itself: leadership loss is crash-only).

use std::sync::Arc;

use anyhow::{bail, Context};
use axum::Router;
use c2c_coordinator::cli::CoordinatorArgs;
use c2c_coordinator::cluster::workers::LiveWorker;
use c2c_coordinator::cluster_security::{describe, etcd_security, ClusterTls};
use c2c_coordinator::config::DEFAULT_ID;
use c2c_coordinator::grpc::grpc_routes_with;
use c2c_coordinator::metrics::roles::CoordinatorMetrics;
use c2c_coordinator::scaled::forward::ForwardTls;
use c2c_coordinator::scaled::health;
use c2c_coordinator::scaled::leader::{Leader, LeaderSetup};
use c2c_coordinator::scaled::role::{LeaderInfo, Role, RoleRouter};
use c2c_coordinator::server::serve_app_with;
use c2c_coordinator::telemetry::Role as TraceRole;
use c2c_coordinator::{bind, engine_driver, logging, ApiSecurity, RunConfig};
use c2c_membership::{CandidateInfo, Election, EtcdElection, FencedStore, MigrationId};
use tokio::sync::watch;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{error, info, warn, Instrument};

pub async fn run(
    args: CoordinatorArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if args.run.workers.is_some() {
        bail!("--workers sets `c2c run`'s in-process workers; a scaled-out migration's workers are `c2c worker` processes");
    }
    let mut config = RunConfig::resolve(&args.run)?;
    let listener = bind(&config).await.with_context(|| {
        format!(
            "cannot listen on {}:{} (--bind/--port)",
            config.bind, config.port
        )
    })?;
    let bound = listener.local_addr()?;
    if args.run.id.is_none() && config.id == DEFAULT_ID {
        config.id = format!("{}-{}", super::hostname(), bound.port());
    }
    // Started once the id is known (the traces' resource names the process by it).
    // Kept until the process ends: it owns the SIGUSR1 log-rotation task and the traces.
    let _logging = logging::init(
        config.log_path.as_deref(),
        config.verbosity,
        &config.id,
        TraceRole::Coordinator,
    )?;
    let advertised = super::advertise(args.etcd.advertise.clone(), bound)?;
    // Followers forward to the leader: over TLS when the API is, so they must trust
    // the leader's certificate.
    let forward_tls = match (&config.security.tls, &args.tls_ca_file) {
        (None, None) => None,
        (None, Some(_)) => bail!("--tlsCAFile is for forwarding to a leader that serves its API over TLS: give --tlsCertFile/--tlsKeyFile too"),
        (Some(_), None) => bail!("with --tlsCertFile every coordinator serves its API over TLS and followers forward to the leader over it: give --tlsCAFile, the CA that signed the coordinators' certificates"),
        (Some(_), Some(ca)) => Some(
            ForwardTls::load(ca).map_err(|reason| anyhow::anyhow!("--tlsCAFile: {reason}"))?,
        ),
    };
    let security = ApiSecurity::load(&config.security).map_err(anyhow::Error::msg)?;
    let etcd_security = etcd_security(&args.etcd, |name| std::env::var(name).ok())?;
    let cluster_tls = ClusterTls::load(&args.etcd)?;
    let engine = engine_driver::engine_config(&config.id)?;
    let _spill = engine_driver::SpillDirCleanup::new(engine.spill_dir.clone());
    let migration = MigrationId::new(&args.etcd.migration_id)
        .map_err(|error| anyhow::anyhow!("--migration-id: {error}"))?;
    info!(options = ?config, migration = %migration, advertise = %advertised, etcd = ?args.etcd.etcd, security = %describe(&etcd_security, cluster_tls.as_ref()), pid = std::process::id(), "c2c coordinator");

    // Serve at once: until etcd answers and a leader is known, calls get a 503 saying so.
    let stopping = super::shutdown_token(shutdown);
    let (role_tx, role_rx) = watch::channel(Role::Follower { leader: None });
    let router = RoleRouter::new(
        role_rx.clone(),
        config.id.clone(),
        forward_tls,
        stopping.clone(),
    );
    let (grpc, reporter) = grpc_routes_with(router.clone(), Router::new(), &[health::LEADER]).await;
    // `/metrics` is this process's own (never forwarded): a follower reports `c2c_leader 0`.
    let metrics = CoordinatorMetrics::new(&config.id);
    let app = security
        .auth
        .protect(grpc.merge(metrics.router()).merge(router.rest_router()));
    let health_task = tokio::spawn(follow_role(role_rx.clone(), reporter.clone()));
    let server = tokio::spawn(serve_app_with(
        listener,
        app,
        stopping.clone(),
        security.tls.clone(),
    ));
    info!(address = %bound, "REST and gRPC API listening (following until elected)");

    let Some(etcd) = super::connect_etcd(&args.etcd.etcd, &etcd_security, &stopping).await? else {
        let _ = server.await;
        return Ok(());
    };
    let election = EtcdElection::new(
        etcd.clone(),
        &migration,
        CandidateInfo {
            id: config.id.clone(),
            address: advertised.clone(),
        },
    );
    let observer = tokio::spawn(observe_leader(election.observe(), role_tx.clone()));
    let directory = loop {
        match c2c_membership::WorkerDirectory::start(etcd.clone(), &migration).await {
            Ok(directory) => break directory,
            Err(error) => warn!(%error, "cannot list the workers registered in etcd yet; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            () = stopping.cancelled() => {
                let _ = server.await;
                return Ok(());
            }
        }
    };
    let members = live_workers(directory.watch());

    let campaign = async {
        election
            .campaign()
            .await
            .context("campaigning for leadership on etcd")
    }
    .instrument(tracing::info_span!("campaign"));
    let leadership = tokio::select! {
        leadership = campaign => leadership?,
        () = stopping.cancelled() => {
            stop_serving(&reporter).await;
            let _ = server.await;
            return Ok(());
        }
    };
    let term = leadership.term();
    info!(term, "elected leader");
    observer.abort();
    let store = Arc::new(FencedStore::new(
        etcd.clone(),
        &migration,
        leadership.leader_key().clone(),
    ));
    let setup = LeaderSetup {
        config,
        migration_id: migration.to_string(),
        term,
        store,
        members,
        engine,
        worker_tls: cluster_tls.map(|tls| tls.client),
    };
    let lost = leadership.lost();
    let leader = tokio::select! {
        leader = Leader::start(setup) => match leader {
            Ok(leader) => leader,
            Err(error) => {
                // Crash-only: a fresh process campaigns again (a pause bounds the loop
                // while the cause, e.g. an unreachable cluster, lasts).
                error!(error = %error, "cannot take over as leader");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                super::restart_process("could not take over as leader")
            }
        },
        () = lost.cancelled() => super::restart_process("lost leadership while taking over"),
    };
    metrics.set_leader(leader.coordinator().clone(), term);
    let _ = role_tx.send(Role::Leader(leader.api()));
    tokio::select! {
        () = lost.cancelled() => super::restart_process("lost leadership (etcd lease expired or leader key gone)"),
        () = stopping.cancelled() => {}
    }
    info!("stopping: resigning leadership");
    stop_serving(&reporter).await;
    drop(leader);
    if let Err(error) = leadership.resign().await {
        error!(%error, "cannot resign leadership; it expires with the lease");
    }
    health_task.abort();
    let _ = server.await;
    info!("c2c coordinator stopped");
    Ok(())
}

async fn stop_serving(reporter: &HealthReporter) {
    for service in [health::MIGRATION, health::LEADER, ""] {
        reporter
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
}

/// The workers etcd lists, as the plane tracks them.
fn live_workers(
    mut registered: watch::Receiver<Vec<c2c_membership::LiveWorker>>,
) -> watch::Receiver<Vec<LiveWorker>> {
    let convert = |workers: &[c2c_membership::LiveWorker]| -> Vec<LiveWorker> {
        workers
            .iter()
            .map(|worker| LiveWorker {
                id: worker.record.id.clone(),
                address: worker.record.address.clone(),
            })
            .collect()
    };
    let (tx, rx) = watch::channel(convert(&registered.borrow()));
    tokio::spawn(async move {
        while registered.changed().await.is_ok() {
            let workers = convert(&registered.borrow_and_update());
            tx.send_if_modified(|current| {
                let changed = *current != workers;
                *current = workers;
                changed
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

/// Keeps a follower's idea of the leader current (for forwarding).
async fn observe_leader(
    mut observed: watch::Receiver<Option<CandidateInfo>>,
    role: watch::Sender<Role>,
) {
    loop {
        let leader = observed.borrow_and_update().clone().map(|info| LeaderInfo {
            id: info.id,
            address: info.address,
        });
        role.send_if_modified(|current| match current {
            Role::Follower { leader: known } if *known != leader => {
                info!(leader = ?leader, "leader observed");
                *known = leader;
                true
            }
            _ => false,
        });
        if observed.changed().await.is_err() {
            return;
        }
    }
}

/// Health per role: `c2c.leader` SERVING only when leading; `c2c.v1.Migration` when
/// leading or when a leader is known to forward to.
async fn follow_role(mut role: watch::Receiver<Role>, reporter: HealthReporter) {
    loop {
        let (leading, answering) = match &*role.borrow_and_update() {
            Role::Leader(_) => (true, true),
            Role::Follower { leader } => (false, leader.is_some()),
        };
        let status = |on: bool| {
            if on {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        reporter
            .set_service_status(health::LEADER, status(leading))
            .await;
        reporter
            .set_service_status(health::MIGRATION, status(answering))
            .await;
        if role.changed().await.is_err() {
            return;
        }
    }
}
