//! The worker: serves the internal `c2c.v1.Worker` service and runs the share of the
//! migration the leader assigns (see `c2c_engine::share`).
//!
//! | module | job |
//! | --- | --- |
//! | `fence` | refuses commands older than the newest accepted (term, plan epoch) |
//! | `milestone` | which report changes are sent (and acted on) at once |
//! | `convert` | proto `AssignRequest` ↔ the engine's `ShareSpec`, reports → proto |
//! | `service` | the tonic service: assign, pause, resume, commit (drain), reverse, watch |
//!
//! When you change `proto/c2c/v1/worker.proto`, also touch `convert` and the leader's
//! client in `coordinator/src/cluster/`.

#![forbid(unsafe_code)]

pub mod convert;
pub mod fence;
pub mod milestone;
pub mod service;

pub use service::{serve, LeaseView, WorkerEndpoint, WorkerService, WorkerSettings};
