//! The scaled-out processes around the leader's data plane (`cluster`):
//!
//! | module | job |
//! | --- | --- |
//! | `role` | one router per process: the leader answers, followers forward |
//! | `forward` | a follower's REST and gRPC forwarding to the leader |
//! | `leader` | what runs while leading: coordinator, plane, etcd record, take-over |
//! | `plan_store` | the plan in etcd, fenced on the leader key |
//! | `worker_view` | the per-worker breakdown of `/progress` and `ListWorkers` |
//! | `worker_node` | a worker's lease as the engine's write gate, and its routes |
//!
//! The `c2c coordinator` / `c2c worker` processes wire these to etcd (`c2c-membership`).

pub mod forward;
pub mod leader;
pub mod plan_store;
pub mod role;
pub mod worker_node;
pub mod worker_view;

/// Health service names and what SERVING means for each (probes and load balancers
/// use them; deploy/ documents them).
pub mod health {
    /// A leader, or a follower that knows the leader to forward to.
    pub const MIGRATION: &str = crate::grpc::MIGRATION_SERVICE;
    /// Only the elected leader.
    pub const LEADER: &str = "c2c.leader";
    /// A worker while it holds its etcd lease.
    pub const WORKER: &str = c2c_api::v1::worker_server::SERVICE_NAME;
}
