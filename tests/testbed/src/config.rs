//! How a testbed instance is configured, from the command line or from a test.

use std::net::IpAddr;
use std::path::PathBuf;

/// Wire versions a testbed can claim: 6.0, 7.0 and 8.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireVersion {
    V17,
    V21,
    V25,
}

impl WireVersion {
    pub fn parse(value: u32) -> Option<WireVersion> {
        match value {
            17 => Some(WireVersion::V17),
            21 => Some(WireVersion::V21),
            25 => Some(WireVersion::V25),
            _ => None,
        }
    }

    pub fn number(self) -> i32 {
        match self {
            WireVersion::V17 => 17,
            WireVersion::V21 => 21,
            WireVersion::V25 => 25,
        }
    }

    /// The server version that goes with the wire version (buildInfo, FCV).
    pub fn server_version(self) -> (&'static str, [i32; 4], &'static str) {
        match self {
            WireVersion::V17 => ("6.0.19", [6, 0, 19, 0], "6.0"),
            WireVersion::V21 => ("7.0.16", [7, 0, 16, 0], "7.0"),
            WireVersion::V25 => ("8.0.4", [8, 0, 4, 0], "8.0"),
        }
    }

    /// 7.0+ makes identical re-creates and drops of missing collections no-ops.
    pub fn idempotent_ddl(self) -> bool {
        self != WireVersion::V17
    }
}

#[derive(Debug, Clone)]
pub struct TestbedConfig {
    /// Address to bind; also the host clients are told to use (`hosts`, `me`).
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub repl_set: String,
    pub wire_version: WireVersion,
    /// Most oplog entries kept; older ones are truncated (ChangeStreamHistoryLost).
    pub oplog_retention: Option<usize>,
    /// JSON users file; when set, authentication is required.
    pub auth_users_file: Option<PathBuf>,
    /// Users to create at start-up (tests); when non-empty, authentication is required.
    pub auth_users: Vec<crate::auth::users::UserSpec>,
    /// How often an idle server writes a no-op so cluster time and PBRTs advance.
    /// Real replica sets do this every 10 s; tests want it faster.
    pub idle_noop_interval: std::time::Duration,
    /// Seed for `$sample`, so sampled partitioning is reproducible.
    pub sample_seed: Option<u64>,
    /// Keep documents as BSON bytes only, decoded when a read filters or projects them or
    /// a write updates them: a third of the memory for small documents, for datasets of
    /// millions of documents.
    pub compact_documents: bool,
}

impl Default for TestbedConfig {
    fn default() -> Self {
        TestbedConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            repl_set: "rs0".to_string(),
            wire_version: WireVersion::V21,
            oplog_retention: None,
            auth_users_file: None,
            auth_users: Vec::new(),
            idle_noop_interval: std::time::Duration::from_secs(1),
            sample_seed: None,
            compact_documents: false,
        }
    }
}
