//! `c2c-testbed`: an in-memory, single-node MongoDB replica set that speaks the wire
//! protocol well enough for the official drivers, built to be faithful where sync bugs
//! hide (BSON order, type bracketing, unique indexes, change streams, write blocking).
//! See `docs/testbed.md` for what is emulated and what is refused.
//!
//! ```no_run
//! # async fn example() {
//! let testbed = c2c_testbed::Testbed::start(c2c_testbed::TestbedConfig::default()).await.unwrap();
//! let uri = testbed.uri(); // mongodb://127.0.0.1:PORT/?replicaSet=rs0
//! # let _ = uri;
//! testbed.shutdown().await;
//! # }
//! ```

#![forbid(unsafe_code)]
// `CommandError` carries mongod's extra-info document, so it is large; errors are the
// rare path of a test server, and boxing every one would only add noise.
#![allow(clippy::result_large_err)]

pub mod aggregate;
pub mod auth;
mod batch;
pub mod bson_cmp;
mod catalog;
mod changestream;
mod clock;
mod collmod;
mod commands;
pub mod config;
mod conn;
mod cursor;
pub mod decimal;
pub mod error;
mod failpoint;
mod index;
mod oplog;
mod principal;
pub mod query;
mod server;
mod session;
mod shell;
mod store;
pub mod update;
mod wire;

pub use auth::users::{RoleRef, UserSpec};
pub use config::{TestbedConfig, WireVersion};
pub use server::{StartError, TestbedHandle};

/// Entry point for tests and the binary.
pub struct Testbed;

impl Testbed {
    /// Starts an instance; it accepts connections when this returns.
    pub async fn start(config: TestbedConfig) -> Result<TestbedHandle, StartError> {
        server::start(config).await
    }
}
