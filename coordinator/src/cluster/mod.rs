//! Scale-out on the leader: the plan, the workers, fan-out and the data plane the
//! engine's `Migration` drives them through.
//!
//! | module | job |
//! | --- | --- |
//! | `plan` | which worker copies which partition and owns which stream shard (pure) |
//! | `plan_encoding` | the plan's stored form: partitions as index runs per worker |
//! | `store` | where the plan persists (etcd fenced on the leader key; memory in tests) |
//! | `workers` | a client and the newest streamed report per live worker |
//! | `fanout` | one call per worker with its own deadline; outcomes kept per worker |
//! | `plane` | the control loop: reconcile, persist, assign, aggregate; commit drain |
//! | `timing` | the leader's timing constants |
//!
//! When you change the plan's shape, also touch `store` (it is persisted) and the
//! worker's `convert`.

pub mod fanout;
pub mod plan;
mod plan_encoding;
pub mod plane;
pub mod store;
pub mod timing;
pub mod workers;
