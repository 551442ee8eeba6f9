//! Cluster membership for scaled-out c2c: leader election among coordinators, fenced
//! coordinator state, and the registry of live workers — all on etcd, with in-memory
//! twins for tests.
//!
//! # Module map
//!
//! | module | what | when you change it, also touch |
//! | --- | --- | --- |
//! | [`keys`] | the etcd key layout under `/c2c/<migration-id>/` | README "Keys" |
//! | [`timing`] | every TTL, interval, timeout and backoff bound | README "Timing" |
//! | [`mod@retry`] | the one retry helper and backoff | — |
//! | `client` | [`connect`], per-call timeouts | `timing` |
//! | `lease` | lease + keep-alive task + monotonic validity | election, registration |
//! | `election` | [`Election`] trait, [`EtcdElection`], [`MemoryElectionHub`], [`Leadership`] | README "Election" |
//! | `state` | [`StateStore`], [`FencedStore`], [`StateReader`], [`MemoryStateStore`] | README "Fencing" |
//! | `workers` | [`WorkerRegistration`], [`WorkerDirectory`] | README "Workers" |
//! | `etcd_testing` | a real etcd for tests (feature `testing`) | — |
//!
//! Every spawned task is owned by the value it serves and stops when that value is
//! dropped; every unary etcd call is bounded by [`timing::REQUEST_TIMEOUT`].

#![forbid(unsafe_code)]

mod client;
mod election;
mod error;
mod ids;
pub mod keys;
mod lease;
pub mod retry;
mod state;
mod task;
pub mod timing;
mod workers;

#[cfg(feature = "testing")]
pub mod etcd_testing;

pub use etcd_client::Client as EtcdClient;
pub use etcd_client::LeaderKey;

pub use crate::client::{connect, connect_with, EtcdSecurity, EtcdTls, EtcdUser};
pub use crate::election::{
    CandidateInfo, Election, EtcdElection, Leadership, MemoryElection, MemoryElectionHub,
};
pub use crate::error::MembershipError;
pub use crate::ids::{MigrationId, WorkerId, MAX_ID_LEN};
pub use crate::keys::{StateKey, StatePrefix};
pub use crate::state::{
    FencedStore, MemoryStateStore, StateReader, StateStore, StateStoreExt, StateWrite,
};
pub use crate::workers::{LiveWorker, WorkerDirectory, WorkerRecord, WorkerRegistration};
