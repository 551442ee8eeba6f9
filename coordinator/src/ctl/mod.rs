//! `c2c ctl`: the command-line client of the gRPC API (`c2c.v1.Migration`), for
//! operators who prefer a CLI to curl. Every call is bounded (connect 5 s, unary 30 s),
//! and refusals print the API's error name and description.

mod namespaces;
mod render;
mod watch;

use std::time::Duration;

use c2c_api::v1::migration_client::MigrationClient;
use c2c_api::v1::{
    CommitRequest, ListWorkersRequest, PauseRequest, ProgressReply, ProgressRequest, ResumeRequest,
    ReverseRequest, StartRequest,
};
use clap::{Args, Subcommand};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::grpc::error_name;

pub use render::{bar, progress_json, progress_summary, workers_table};

pub const DEFAULT_ADDR: &str = "127.0.0.1:27182";
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// Address of c2c's API (REST and gRPC share the port).
    #[arg(long, global = true, value_name = "HOST:PORT", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// The API token (`--apiToken` of the server) [default: $C2C_API_TOKEN]; prefer
    /// the variable, flags are visible in `ps`.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// PEM CA certificate that signed the server's TLS certificate; needed for an
    /// `https://HOST:PORT` --addr (a server started with --tlsCertFile).
    #[arg(long = "caFile", alias = "ca-file", global = true, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// Start the migration (mongosync's /start).
    Start(StartArgs),
    /// Print the progress once (mongosync's /progress).
    Progress {
        /// Print the reply as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Redraw the progress live, a bar per worker, until Ctrl-C or COMMITTED.
    Watch {
        /// Milliseconds between updates (at least 100).
        #[arg(long = "interval-ms", default_value_t = 1000)]
        interval_ms: u32,
    },
    /// Pause the migration.
    Pause,
    /// Resume a paused migration.
    Resume,
    /// Commit (cut over): allowed once canCommit is true.
    Commit,
    /// Reverse the direction of a committed, reversible migration.
    Reverse,
    /// List the workers and what each is assigned.
    Workers,
}

#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    #[arg(long, default_value = "cluster0")]
    pub source: String,
    #[arg(long, default_value = "cluster1")]
    pub destination: String,
    /// Allow /reverse after the commit.
    #[arg(long)]
    pub reversible: bool,
    /// sourceAndDestination, destinationOnly or none [default: mongosync's].
    #[arg(long = "enable-user-write-blocking", value_name = "MODE")]
    pub enable_user_write_blocking: Option<String>,
    /// afterDataCopy, beforeDataCopy, excludeHashed, excludeHashedAfterCopy or never.
    #[arg(long = "build-indexes", value_name = "MODE")]
    pub build_indexes: Option<String>,
    /// Sync only this database or collection (repeatable).
    #[arg(long, value_name = "DB[.COLL]")]
    pub include: Vec<String>,
    /// Do not sync this database or collection (repeatable).
    #[arg(long, value_name = "DB[.COLL]")]
    pub exclude: Vec<String>,
    /// The destination already holds other data (needs --include/--exclude).
    #[arg(long = "pre-existing-destination-data")]
    pub pre_existing_destination_data: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// A refusal from c2c's API: its `error` name and `errorDescription`.
    #[error("{name}: {message}")]
    Api { name: String, message: String },
    /// A gRPC failure without c2c's error name (transport, unknown service, …).
    #[error("{call} failed: {code:?}: {message}")]
    Rpc {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("{call} got no answer within {seconds} s")]
    Timeout { call: &'static str, seconds: u64 },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Stream(String),
}

impl CtlError {
    fn from_status(call: &'static str, status: Status) -> CtlError {
        match error_name(&status) {
            Some(name) => CtlError::Api {
                name: name.to_string(),
                message: status.message().to_string(),
            },
            None => CtlError::Rpc {
                call,
                code: status.code(),
                message: status.message().to_string(),
            },
        }
    }
}

/// The gRPC client `c2c ctl` uses: every call carries the bearer token, if any.
pub type CtlClient = MigrationClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call (nothing without a token).
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    pub fn new(token: Option<&str>) -> Result<BearerToken, CtlError> {
        let Some(token) = token else {
            return Ok(BearerToken(None));
        };
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| CtlError::Usage("the API token must be printable ASCII".into()))?;
        Ok(BearerToken(Some(value)))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// `--token`, else a non-empty `C2C_API_TOKEN` (the variable the server reads too).
fn token(args: &CtlArgs) -> Option<String> {
    args.token.clone().or_else(|| {
        std::env::var("C2C_API_TOKEN")
            .ok()
            .filter(|token| !token.is_empty())
    })
}

/// Runs one `c2c ctl` command, printing its result to stdout.
pub async fn run(args: CtlArgs) -> Result<(), CtlError> {
    let token = token(&args);
    let mut client = connect_with(&args.addr, token.as_deref(), args.ca_file.as_deref()).await?;
    match args.command {
        CtlCommand::Start(start) => {
            let request = start_request(&start)?;
            unary("Start", client.start(request)).await?;
            print_accepted(&mut client, "start").await;
        }
        CtlCommand::Progress { json } => {
            let reply = progress(&mut client).await?;
            if json {
                let text = serde_json::to_string_pretty(&progress_json(&reply))
                    .expect("JSON values serialize");
                println!("{text}");
            } else {
                print!("{}", progress_summary(&reply));
            }
        }
        CtlCommand::Watch { interval_ms } => watch::run(&mut client, interval_ms).await?,
        CtlCommand::Pause => {
            unary("Pause", client.pause(PauseRequest {})).await?;
            print_accepted(&mut client, "pause").await;
        }
        CtlCommand::Resume => {
            unary("Resume", client.resume(ResumeRequest {})).await?;
            print_accepted(&mut client, "resume").await;
        }
        CtlCommand::Commit => {
            unary("Commit", client.commit(CommitRequest {})).await?;
            print_accepted(&mut client, "commit").await;
        }
        CtlCommand::Reverse => {
            unary("Reverse", client.reverse(ReverseRequest {})).await?;
            print_accepted(&mut client, "reverse").await;
        }
        CtlCommand::Workers => {
            let reply = unary("ListWorkers", client.list_workers(ListWorkersRequest {})).await?;
            print!("{}", workers_table(&reply));
        }
    }
    Ok(())
}

/// A client on `addr` (`HOST:PORT`, or a full `http://` URL), connected eagerly so an
/// unreachable server is reported as such rather than as the first call's failure.
pub async fn connect(addr: &str) -> Result<CtlClient, CtlError> {
    connect_with_token(addr, None).await
}

/// `connect`, sending `token` as `Authorization: Bearer` with every call.
pub async fn connect_with_token(addr: &str, token: Option<&str>) -> Result<CtlClient, CtlError> {
    connect_with(addr, token, None).await
}

/// `connect_with_token`, over TLS verified with the CA of `ca_file` for an `https://` address.
pub async fn connect_with(
    addr: &str,
    token: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<CtlClient, CtlError> {
    let interceptor = BearerToken::new(token)?;
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let failed = |reason: String| CtlError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let tls = url.starts_with("https://");
    let mut endpoint = Endpoint::from_shared(url)
        .map_err(|error| failed(error.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT);
    match (tls, ca_file) {
        (true, Some(ca_file)) => {
            let pem = std::fs::read(ca_file).map_err(|error| {
                CtlError::Usage(format!(
                    "cannot read --caFile {}: {error}",
                    ca_file.display()
                ))
            })?;
            let config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            endpoint = endpoint
                .tls_config(config)
                .map_err(|error| failed(transport_reason(&error)))?;
        }
        (true, None) => {
            return Err(CtlError::Usage(
                "an https:// --addr needs --caFile (the CA of the server's certificate)".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(CtlError::Usage(
                "--caFile needs an https://HOST:PORT --addr".into(),
            ))
        }
        (false, None) => {}
    }
    // The outer timeout also bounds the HTTP/2 handshake, which connect_timeout does not.
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| failed(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|error| failed(transport_reason(&error)))?;
    Ok(MigrationClient::with_interceptor(channel, interceptor))
}

/// The innermost cause ("Connection refused") is what the user needs; tonic's
/// top-level text is only "transport error".
fn transport_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

/// A unary call bounded by `CALL_TIMEOUT`.
async fn unary<T>(
    call: &'static str,
    future: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, CtlError> {
    tokio::time::timeout(CALL_TIMEOUT, future)
        .await
        .map_err(|_| CtlError::Timeout {
            call,
            seconds: CALL_TIMEOUT.as_secs(),
        })?
        .map(tonic::Response::into_inner)
        .map_err(|status| CtlError::from_status(call, status))
}

async fn progress(client: &mut CtlClient) -> Result<ProgressReply, CtlError> {
    unary("Progress", client.progress(ProgressRequest {})).await
}

/// Confirms an accepted call with the state it led to; the call itself succeeded, so
/// a failing follow-up only loses the state.
async fn print_accepted(client: &mut CtlClient, call: &str) {
    match progress(client).await {
        Ok(reply) => println!("{call}: accepted; state {}", reply.state),
        Err(_) => println!("{call}: accepted"),
    }
}

fn start_request(args: &StartArgs) -> Result<StartRequest, CtlError> {
    Ok(StartRequest {
        source: args.source.clone(),
        destination: args.destination.clone(),
        include_namespaces: namespaces::filters(&args.include).map_err(CtlError::Usage)?,
        exclude_namespaces: namespaces::filters(&args.exclude).map_err(CtlError::Usage)?,
        build_indexes: args.build_indexes.clone(),
        // Flags absent = field unset, so the server applies mongosync's defaults.
        reversible: args.reversible.then_some(true),
        enable_user_write_blocking: args.enable_user_write_blocking.clone(),
        verification_enabled: None,
        detect_random_id: None,
        pre_existing_destination_data: args.pre_existing_destination_data.then_some(true),
    })
}
