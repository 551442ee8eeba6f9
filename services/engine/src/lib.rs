//! c2c's sync engine: what moves data from the source cluster to the destination.
//!
//! - `discovery` lists the namespaces the filter selects, with options and indexes;
//! - `indexes` turns source index specs into the ones built during sync;
//! - `partition` splits a collection into `_id` ranges correct across mixed `_id` types;
//! - `copy` copies one partition with bulk unordered writes, checkpointing as it goes;
//! - `cea` reads the change stream from T0, buffers it and applies it idempotently;
//! - `metadata` persists state and checkpoints in `__c2c_internal` on the destination;
//! - `cutover` blocks writes, commits and reverses (persisted, idempotent steps);
//! - `migration` runs the phases and owns every task it starts;
//! - `metrics` counts, process-wide and lock-free, what `/metrics` exports beyond the
//!   migration's progress (events applied by type, batch sizes and latencies, retries);
//! - `share` runs one worker's share of a scaled-out migration (partitions and stream
//!   shards), and `gate` stops its writes once its lease is gone;
//! - `trace` shapes the spans into traces when they are exported (OpenTelemetry).

#![forbid(unsafe_code)]

pub mod bson_order;
pub mod cea;
pub mod compare;
pub mod connect;
pub mod copy;
pub mod cutover;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod gate;
pub mod indexes;
pub mod metadata;
pub mod metrics;
pub mod migration;
pub mod namespace;
pub mod options;
pub mod partition;
pub mod progress;
pub mod redact;
pub mod retry;
pub mod share;
pub mod stop;
pub mod trace;
pub mod verify;

pub use error::{EngineError, Result, Side};
pub use namespace::Namespace;
