//! `c2c-testbed`: run a MongoDB-compatible test server until interrupted.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use c2c_testbed::{Testbed, TestbedConfig, WireVersion};
use clap::Parser;

/// An in-memory single-node MongoDB replica set for c2c's tests.
#[derive(Parser, Debug)]
#[command(name = "c2c-testbed", version)]
struct Args {
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long)]
    port: u16,
    /// Address to bind; also the host advertised to clients.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Replica-set name.
    #[arg(long = "replSet", default_value = "rs0")]
    repl_set: String,
    /// Wire version to claim: 17 (6.0), 21 (7.0) or 25 (8.0).
    #[arg(long = "wire-version", default_value_t = 21)]
    wire_version: u32,
    /// Keep at most this many oplog entries (older change-stream resumes then fail with
    /// ChangeStreamHistoryLost).
    #[arg(long = "oplog-retention")]
    oplog_retention: Option<usize>,
    /// JSON users file; turns authentication on.
    #[arg(long = "auth")]
    auth: Option<PathBuf>,
    /// Milliseconds between idle no-op writes (real replica sets: 10000).
    #[arg(long = "idle-noop-ms", default_value_t = 1000)]
    idle_noop_ms: u64,
    /// Seed for $sample, for reproducible sampling.
    #[arg(long = "sample-seed")]
    sample_seed: Option<u64>,
    /// Keep documents as BSON bytes: a third of the memory for small documents, slower
    /// reads and updates (for datasets of millions of documents).
    #[arg(long = "compact-documents")]
    compact_documents: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let Some(wire_version) = WireVersion::parse(args.wire_version) else {
        bail!(
            "--wire-version must be 17, 21 or 25, not {}",
            args.wire_version
        );
    };
    let config = TestbedConfig {
        bind: args.bind,
        port: args.port,
        repl_set: args.repl_set,
        wire_version,
        oplog_retention: args.oplog_retention,
        auth_users_file: args.auth,
        auth_users: Vec::new(),
        idle_noop_interval: Duration::from_millis(args.idle_noop_ms.max(10)),
        sample_seed: args.sample_seed,
        compact_documents: args.compact_documents,
    };
    let handle = Testbed::start(config)
        .await
        .context("starting the testbed")?;
    println!(
        "c2c-testbed listening on {} ({})",
        handle.host(),
        handle.uri()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    handle.shutdown().await;
    Ok(())
}
