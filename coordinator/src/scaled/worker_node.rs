//! A worker process's pieces that do not need etcd: the lease as the engine's write
//! gate, and the routes it serves (the internal `Worker` service with health and
//! reflection on one port).

use std::sync::Arc;

use axum::Router;
use c2c_api::v1::worker_server::WorkerServer;
use c2c_membership::WorkerRegistration;
use c2c_worker::{LeaseView, WorkerEndpoint};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use super::health;
use crate::grpc::{add_service, with_health_and_reflection};

/// The registration's lease decides whether the worker may write: valid only while a
/// keep-alive succeeded within the lease's TTL on the local monotonic clock, so a
/// worker that was stopped or cut off stops writing before etcd gives its work away.
pub struct RegistrationLease(pub Arc<WorkerRegistration>);

impl LeaseView for RegistrationLease {
    fn is_valid(&self) -> bool {
        self.0.lease_valid()
    }
}

/// The worker's gRPC routes; `c2c.v1.Worker` starts NOT_SERVING until registered.
pub async fn worker_routes(endpoint: WorkerEndpoint) -> (Router, HealthReporter) {
    let services = add_service(Router::new(), WorkerServer::new(endpoint));
    let (router, reporter) = with_health_and_reflection(services, &[health::WORKER]).await;
    reporter
        .set_service_status(health::WORKER, ServingStatus::NotServing)
        .await;
    (router, reporter)
}
