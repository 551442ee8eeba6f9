//! c2c's coordinator: mongosync's REST API, the migration state machine, `/progress`,
//! and the `c2c run` configuration.
//!
//! - `api`: axum router, request bodies, error responses, the progress document;
//! - `start_options`: `/start` validation into the engine's `StartRequest`/`SyncOptions`;
//! - `state`: mongosync's states and allowed transitions; `coordinator` applies them;
//! - `commit_readiness`: when `canCommit` is true, and why not;
//! - `driver`: the boundary to the engine (`EngineDriver`); `testing`: a fake for tests;
//! - `auth`: the API's bearer-token check (and `tls`: the API's TLS);
//! - `cli`, `config` (+ `config_layers`), `logging` (+ `log_format`), `redact`, `server`:
//!   the `c2c run` process; `telemetry`: OpenTelemetry trace export (`OTEL_*`), a
//!   layer beside the logs;
//! - `metrics`: `GET /metrics` (Prometheus text) for `c2c run`, coordinators and workers;
//! - `grpc`: the gRPC API (`c2c.v1.Migration`, health, reflection) on the REST port;
//! - `ctl`: `c2c ctl`, the gRPC command-line client; `verify_cmd`: `c2c verify`;
//! - `cluster`: the scaled-out leader's plan, workers and data plane; `scaled`: the
//!   `c2c coordinator` / `c2c worker` processes' roles, forwarding and etcd pieces.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod cluster_security;
pub mod commit_readiness;
pub mod config;
pub mod config_layers;
pub mod coordinator;
pub mod ctl;
pub mod driver;
pub mod engine_driver;
pub mod grpc;
pub mod log_format;
pub mod logging;
pub mod metrics;
/// Moved to the engine, shared with workers; kept here for existing paths.
pub use c2c_engine::redact;
pub mod rest_client;
pub mod scaled;
pub mod server;
pub mod start_options;
pub mod state;
pub mod telemetry;
pub mod testing;
pub mod tls;
pub mod verify_cmd;

pub use api::router;
pub use config::RunConfig;
pub use coordinator::{Coordinator, CoordinatorSettings};
pub use driver::{BoxFuture, EngineDriver};
pub use server::{app, bind, serve, serve_coordinator, serve_coordinator_with, ApiSecurity};
