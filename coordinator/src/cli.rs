//! The `c2c` command line. Option names are mongosync's (`--logPath`, `--loadLevel`,
//! camelCase) so existing scripts work; kebab-case aliases are accepted too.
//!
//! The argument types deliberately have no `Debug`: they hold cluster URIs, tokens and
//! etcd passwords as typed. `config::RunConfig`'s `Debug` is the redacted view to print.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "c2c",
    version,
    about = "Keeps two MongoDB clusters in sync, with mongosync's REST API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the sync in one process and serve mongosync's REST API (the default mode).
    Run(RunArgs),
    /// Start two embedded test clusters, load sample data, sync them through the REST
    /// API while writing to the source, and print the verified result.
    Demo(DemoArgs),
    /// Drive a running c2c over its gRPC API: start, progress, watch, pause, resume,
    /// commit, reverse, workers.
    Ctl(crate::ctl::CtlArgs),
    /// Scaled out: one of any number of coordinators of a migration, elected on etcd;
    /// the leader plans and drives the workers, the others forward the API to it.
    Coordinator(CoordinatorArgs),
    /// Scaled out: a worker that copies and applies the share the leader assigns it,
    /// registered on etcd under a lease.
    Worker(WorkerArgs),
    /// Compare two clusters once, document by document, with namespaces, options and
    /// indexes; exits 0 when equal, 1 with a report of the differences, 2 on error.
    Verify(crate::verify_cmd::VerifyArgs),
}

/// Where the processes of one scaled-out migration meet.
#[derive(Clone, Args)]
pub struct EtcdArgs {
    /// etcd endpoints, comma-separated (http://host:2379,…).
    #[arg(
        long,
        value_name = "URL[,URL…]",
        value_delimiter = ',',
        required = true
    )]
    pub etcd: Vec<String>,
    /// Names the migration: every coordinator and worker of one migration uses the
    /// same id (its etcd keys live under /c2c/<id>/).
    #[arg(
        long = "migration-id",
        alias = "migrationId",
        default_value = "default"
    )]
    pub migration_id: String,
    /// host:port other processes reach this one at [default: --bind:--port; required
    /// when --bind is a wildcard address].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// PEM CA certificate that signed etcd's server certificates: talk to etcd over
    /// TLS (endpoints without a scheme then mean https://).
    #[arg(long = "etcdCAFile", alias = "etcd-ca-file", value_name = "FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// PEM client certificate for etcd's --client-cert-auth (with --etcdKeyFile).
    #[arg(
        long = "etcdCertFile",
        alias = "etcd-cert-file",
        value_name = "FILE",
        requires_all = ["etcd_key_file", "etcd_ca_file"]
    )]
    pub etcd_cert_file: Option<PathBuf>,
    /// PEM private key of --etcdCertFile.
    #[arg(
        long = "etcdKeyFile",
        alias = "etcd-key-file",
        value_name = "FILE",
        requires = "etcd_cert_file"
    )]
    pub etcd_key_file: Option<PathBuf>,
    /// etcd user (etcd's own authentication); the password comes from
    /// --etcdPasswordFile or the C2C_ETCD_PASSWORD environment variable.
    #[arg(long = "etcdUser", alias = "etcd-user", value_name = "NAME")]
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password (surrounding whitespace removed).
    #[arg(
        long = "etcdPasswordFile",
        alias = "etcd-password-file",
        value_name = "FILE",
        requires = "etcd_user"
    )]
    pub etcd_password_file: Option<PathBuf>,
    /// PEM CA certificate of the migration's processes: turns on mutual TLS between
    /// coordinators and workers (each side proves a certificate this CA signed). Every
    /// coordinator and worker of the migration needs it, with its own
    /// --clusterCertFile/--clusterKeyFile.
    #[arg(
        long = "clusterCAFile",
        alias = "cluster-ca-file",
        value_name = "FILE",
        requires_all = ["cluster_cert_file", "cluster_key_file"]
    )]
    pub cluster_ca_file: Option<PathBuf>,
    /// This process's PEM certificate chain for mutual TLS (a worker's must name the
    /// host of its --advertise address).
    #[arg(
        long = "clusterCertFile",
        alias = "cluster-cert-file",
        value_name = "FILE",
        requires = "cluster_ca_file"
    )]
    pub cluster_cert_file: Option<PathBuf>,
    /// PEM private key of --clusterCertFile.
    #[arg(
        long = "clusterKeyFile",
        alias = "cluster-key-file",
        value_name = "FILE",
        requires = "cluster_ca_file"
    )]
    pub cluster_key_file: Option<PathBuf>,
}

#[derive(Clone, Args)]
pub struct CoordinatorArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// PEM CA certificate that signed the coordinators' API certificates: with
    /// --tlsCertFile, followers forward calls to the leader over TLS trusting it (the
    /// leader's --advertise host must be in its certificate).
    #[arg(long = "tlsCAFile", alias = "tls-ca-file", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// This worker's id, unique among the migration's live workers (a StatefulSet pod
    /// name, a host name).
    #[arg(long)]
    pub id: String,
    /// Port of the worker's gRPC server.
    #[arg(long, default_value_t = 27190)]
    pub port: u16,
    /// Address the worker listens on.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub bind: String,
    /// Connection string of the first cluster [default: the one the leader publishes in etcd].
    #[arg(long, value_name = "URI", requires = "cluster1")]
    pub cluster0: Option<String>,
    /// Connection string of the second cluster [default: the one the leader publishes in etcd].
    #[arg(long, value_name = "URI", requires = "cluster0")]
    pub cluster1: Option<String>,
    /// 1 (least load) to 4 (fastest) [default: the leader's --loadLevel, else 3, or 2 with preExistingDestinationData].
    #[arg(long = "loadLevel", alias = "load-level")]
    pub load_level: Option<u8>,
    /// Directory for c2c.log [default: stdout].
    #[arg(long = "logPath", alias = "log-path", value_name = "DIR")]
    pub log_path: Option<PathBuf>,
    /// TRACE, DEBUG, INFO, WARN, ERROR, FATAL or PANIC [default: DEBUG].
    #[arg(long)]
    pub verbosity: Option<String>,
}

#[derive(Clone, Args)]
pub struct DemoArgs {
    /// Documents loaded into the source before the sync starts.
    #[arg(long, default_value_t = 60_000)]
    pub documents: u64,
    /// Seconds the demo keeps writing to the source while the sync runs.
    #[arg(long = "write-seconds", default_value_t = 8)]
    pub write_seconds: u64,
    /// Port of the REST API (0 picks a free one) [default: 27182, or a free one if taken].
    #[arg(long)]
    pub port: Option<u16>,
}

/// Every flag is optional here: a value may come from `--config` or a `C2C_<KEY>`
/// environment variable, and defaults are applied after all are merged (see
/// `config::RunConfig::resolve`): defaults < file < environment < flags.
#[derive(Clone, Default, Args)]
pub struct RunArgs {
    /// Connection string of the first cluster. Prefer the config file: flags are visible in `ps`.
    #[arg(long, value_name = "URI")]
    pub cluster0: Option<String>,
    /// Connection string of the second cluster.
    #[arg(long, value_name = "URI")]
    pub cluster1: Option<String>,
    /// Port of the REST API [default: 27182].
    #[arg(long)]
    pub port: Option<u16>,
    /// Address the REST API listens on [default: 127.0.0.1].
    #[arg(long, value_name = "ADDRESS")]
    pub bind: Option<String>,
    /// In-process workers sharing the migration [default: 1].
    #[arg(long)]
    pub workers: Option<usize>,
    /// YAML file with the same keys as these flags (see deploy/c2c.sample.yaml);
    /// C2C_<KEY> environment variables win over it, and flags over both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for c2c.log [default: stdout].
    #[arg(long = "logPath", alias = "log-path", value_name = "DIR")]
    pub log_path: Option<PathBuf>,
    /// TRACE, DEBUG, INFO, WARN, ERROR, FATAL or PANIC [default: DEBUG].
    #[arg(long)]
    pub verbosity: Option<String>,
    /// 1 (least load) to 4 (fastest) [default: 3, or 2 with preExistingDestinationData].
    #[arg(long = "loadLevel", alias = "load-level")]
    pub load_level: Option<u8>,
    /// This instance's id, reported as mongosyncID [default: coordinator].
    #[arg(long)]
    pub id: Option<String>,
    /// Require `Authorization: Bearer <TOKEN>` on every API call (REST and gRPC; gRPC
    /// health and GET /metrics exempt). Prefer --apiTokenFile or C2C_API_TOKEN: flags
    /// are visible in `ps` [default: no authentication].
    #[arg(long = "apiToken", alias = "api-token", value_name = "TOKEN")]
    pub api_token: Option<String>,
    /// Read the API token from this file (surrounding whitespace removed).
    #[arg(long = "apiTokenFile", alias = "api-token-file", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// GET /metrics needs the API token too [default: exempt, for Prometheus scrapes].
    #[arg(long = "metricsAuth", alias = "metrics-auth")]
    pub metrics_auth: bool,
    /// PEM certificate chain: serve the API over TLS (with --tlsKeyFile).
    #[arg(long = "tlsCertFile", alias = "tls-cert-file", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tlsCertFile.
    #[arg(long = "tlsKeyFile", alias = "tls-key-file", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
}

#[cfg(test)]
#[path = "deploy_tests/mod.rs"]
mod deploy_tests;
