//! The resolved `c2c run` configuration, layered (later wins):
//! defaults < YAML file (`--config`) < environment variables (`C2C_<KEY>`) < flags.
//! YAML keys are mongosync's (`cluster0`, `cluster1`, `port`, `logPath`, `verbosity`,
//! `loadLevel`, `id`) plus c2c's `workers` and `bind`; unknown keys are refused. The
//! variables are `C2C_` + the key in upper snake case (`C2C_LOG_PATH`); `config_layers`
//! reads the layers, this module validates them, naming the key and the layer of a bad
//! value. `deploy/c2c.sample.yaml` documents every key: keep it in step with `KEYS`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::auth::{Secret, TokenSource};
use crate::cli::{RunArgs, WorkerArgs};
use crate::config_layers::{self as layers, process_env, Key, Layers, Source, KEYS};
use crate::redact::redact_uri;
use c2c_engine::options::LoadLevel;

pub const DEFAULT_PORT: u16 = 27182;
pub const DEFAULT_ID: &str = "coordinator";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} is required: pass --{key} URI, set {env}, or set `{key}` in the --config file")]
    Missing {
        key: &'static str,
        env: &'static str,
    },
    #[error("invalid {key} from {layer}: {reason}")]
    Invalid {
        key: &'static str,
        layer: Source,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// mongosync's `--verbosity` levels. FATAL and PANIC log as errors: tracing has no
/// higher level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    Panic,
}

impl Verbosity {
    /// mongosync's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Verbosity::Trace => "TRACE",
            Verbosity::Debug => "DEBUG",
            Verbosity::Info => "INFO",
            Verbosity::Warn => "WARN",
            Verbosity::Error => "ERROR",
            Verbosity::Fatal => "FATAL",
            Verbosity::Panic => "PANIC",
        }
    }

    pub fn tracing_level(self) -> tracing::Level {
        match self {
            Verbosity::Trace => tracing::Level::TRACE,
            Verbosity::Debug => tracing::Level::DEBUG,
            Verbosity::Info => tracing::Level::INFO,
            Verbosity::Warn => tracing::Level::WARN,
            Verbosity::Error | Verbosity::Fatal | Verbosity::Panic => tracing::Level::ERROR,
        }
    }
}

impl fmt::Display for Verbosity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verbosity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_uppercase().as_str() {
            "TRACE" => Ok(Verbosity::Trace),
            "DEBUG" => Ok(Verbosity::Debug),
            "INFO" => Ok(Verbosity::Info),
            "WARN" => Ok(Verbosity::Warn),
            "ERROR" => Ok(Verbosity::Error),
            "FATAL" => Ok(Verbosity::Fatal),
            "PANIC" => Ok(Verbosity::Panic),
            _ => Err(format!(
                "{text:?} is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, PANIC"
            )),
        }
    }
}

/// Everything `c2c run` needs. `Debug` shows the URIs redacted, so the value can be logged.
#[derive(Clone)]
pub struct RunConfig {
    pub cluster0: String,
    pub cluster1: String,
    pub port: u16,
    pub bind: IpAddr,
    pub workers: usize,
    pub log_path: Option<PathBuf>,
    pub verbosity: Verbosity,
    /// `None` = not set by the user; the default then depends on the `/start` body.
    pub load_level: Option<LoadLevel>,
    pub id: String,
    /// Bearer token and TLS of the API (files are read when the server starts).
    pub security: SecurityConfig,
}

/// The API's security settings as configured: `apiToken`/`apiTokenFile`,
/// `metricsAuth`, `tlsCertFile`/`tlsKeyFile`. `Debug` never shows the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    pub api_token: TokenSource,
    pub metrics_auth: bool,
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SecurityConfig {
    /// One line for the "c2c options" log: never the token itself.
    pub fn describe_token(&self) -> String {
        match &self.api_token {
            TokenSource::None => "none".into(),
            TokenSource::Value(_) => "set (redacted)".into(),
            TokenSource::File(path) => format!("from file {}", path.display()),
        }
    }

    pub fn describe_tls(&self) -> String {
        self.tls.as_ref().map_or_else(
            || "off".to_string(),
            |tls| format!("cert {} key {}", tls.cert.display(), tls.key.display()),
        )
    }
}

impl fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunConfig")
            .field("cluster0", &redact_uri(&self.cluster0))
            .field("cluster1", &redact_uri(&self.cluster1))
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("workers", &self.workers)
            .field("log_path", &self.log_path)
            .field("verbosity", &self.verbosity)
            .field("load_level", &self.load_level.map(LoadLevel::get))
            .field("id", &self.id)
            .field("security", &self.security)
            .finish()
    }
}

/// A resolved configuration and the layer each of its values came from.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    pub config: RunConfig,
    pub sources: ConfigSources,
}

/// The layer of each key's value, in `KEYS` order.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources(Vec<(Key, Source)>);

impl ConfigSources {
    /// Where `key`'s value came from (the default when it was not resolved).
    pub fn of(&self, key: &Key) -> &Source {
        self.0
            .iter()
            .find(|(known, _)| known == key)
            .map_or(&Source::Default, |(_, source)| source)
    }

    fn note(&mut self, key: Key, source: Option<Source>) {
        self.0.push((key, source.unwrap_or(Source::Default)));
    }
}

impl fmt::Display for ConfigSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (key, source)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {source}", key.yaml)?;
        }
        Ok(())
    }
}

impl RunConfig {
    /// Reads `--config` (if any) and the `C2C_*` variables, and merges them under the flags.
    pub fn resolve(args: &RunArgs) -> Result<RunConfig, ConfigError> {
        Ok(ResolvedConfig::resolve(args)?.config)
    }

    /// Parses YAML text as `--config` would, then merges it under `args`. The
    /// environment is not read, so tests are independent of it.
    pub fn from_yaml(args: &RunArgs, yaml: &str) -> Result<RunConfig, ConfigError> {
        let layers = Layers::default()
            .with_yaml(Path::new("<yaml>"), yaml)?
            .with_run_flags(args);
        Ok(ResolvedConfig::from_layers(&layers)?.config)
    }
}

impl ResolvedConfig {
    /// Every layer of a real start: the `--config` file, the process environment, flags.
    pub fn resolve(args: &RunArgs) -> Result<ResolvedConfig, ConfigError> {
        let mut layers = Layers::default();
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                path: path.to_path_buf(),
                reason: error.to_string(),
            })?;
            layers = layers.with_yaml(path, &text)?;
        }
        let layers = layers.with_env(&KEYS, process_env).with_run_flags(args);
        ResolvedConfig::from_layers(&layers)
    }

    /// Validates the winning value of every key, and fills in the defaults.
    pub fn from_layers(layers: &Layers) -> Result<ResolvedConfig, ConfigError> {
        let mut sources = ConfigSources::default();
        let cluster0 = required_uri(layers, layers::CLUSTER0, &mut sources)?;
        let cluster1 = required_uri(layers, layers::CLUSTER1, &mut sources)?;
        let port = setting(layers, layers::PORT, &mut sources, |text| {
            text.parse::<u16>()
                .map_err(|_| format!("{text:?} is not a port number (0 to 65535)"))
        })?
        .unwrap_or(DEFAULT_PORT);
        let bind = setting(layers, layers::BIND, &mut sources, |text| {
            text.parse::<IpAddr>()
                .map_err(|_| format!("{text:?} is not an IP address"))
        })?
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let workers = setting(layers, layers::WORKERS, &mut sources, parse_workers)?.unwrap_or(1);
        let log_path = log_path(layers, &mut sources)?;
        let verbosity = verbosity(layers, &mut sources)?;
        let load_level = setting(layers, layers::LOAD_LEVEL, &mut sources, |text| {
            text.parse::<u8>()
                .ok()
                .and_then(LoadLevel::new)
                .ok_or_else(|| format!("must be 1 to 4, got {text}"))
        })?;
        let id = setting(layers, layers::ID, &mut sources, |text| {
            if text.trim().is_empty() {
                Err("must not be empty".to_string())
            } else {
                Ok(text.to_string())
            }
        })?
        .unwrap_or_else(|| DEFAULT_ID.to_string());
        let security = security(layers, &mut sources)?;
        let config = RunConfig {
            cluster0,
            cluster1,
            port,
            bind,
            workers,
            log_path,
            verbosity,
            load_level,
            id,
            security,
        };
        Ok(ResolvedConfig { config, sources })
    }

    /// Logs the effective configuration once, at start: URIs redacted, and the layer
    /// each value came from.
    pub fn log(&self) {
        let config = &self.config;
        let log_path = config
            .log_path
            .as_ref()
            .map_or_else(|| "stdout".to_string(), |path| path.display().to_string());
        let load_level = config.load_level.map_or_else(
            || "per /start (3, or 2 with preExistingDestinationData)".to_string(),
            |level| level.get().to_string(),
        );
        tracing::info!(
            cluster0 = %redact_uri(&config.cluster0),
            cluster1 = %redact_uri(&config.cluster1),
            port = config.port,
            bind = %config.bind,
            workers = config.workers,
            logPath = %log_path,
            verbosity = %config.verbosity,
            loadLevel = %load_level,
            id = %config.id,
            apiToken = %config.security.describe_token(),
            metricsAuth = config.security.metrics_auth,
            tls = %config.security.describe_tls(),
            sources = %self.sources,
            pid = std::process::id(),
            "c2c options"
        );
    }
}

/// A `c2c worker`'s log settings: defaults < `C2C_LOG_PATH`/`C2C_VERBOSITY` < flags.
/// (A worker's other settings are flags only: its port and id differ from the
/// coordinators' that may share the environment.)
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub log_path: Option<PathBuf>,
    pub verbosity: Verbosity,
}

impl LogConfig {
    pub fn for_worker(args: &WorkerArgs) -> Result<LogConfig, ConfigError> {
        let layers = Layers::default()
            .with_env(&[layers::LOG_PATH, layers::VERBOSITY], process_env)
            .with_flag(layers::LOG_PATH, args.log_path.clone())
            .with_flag(layers::VERBOSITY, args.verbosity.clone());
        LogConfig::from_layers(&layers)
    }

    pub fn from_layers(layers: &Layers) -> Result<LogConfig, ConfigError> {
        let mut sources = ConfigSources::default();
        Ok(LogConfig {
            log_path: log_path(layers, &mut sources)?,
            verbosity: verbosity(layers, &mut sources)?,
        })
    }
}

/// `key`'s winning value parsed by `parse`, or `None` when no layer sets it; a bad
/// value is refused naming the key and its layer.
fn setting<T>(
    layers: &Layers,
    key: Key,
    sources: &mut ConfigSources,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    let Some(raw) = layers.get(&key) else {
        sources.note(key, None);
        return Ok(None);
    };
    let value = parse(raw.text(&key)?).map_err(|reason| ConfigError::Invalid {
        key: key.yaml,
        layer: raw.source.clone(),
        reason,
    })?;
    sources.note(key, Some(raw.source.clone()));
    Ok(Some(value))
}

fn required_uri(
    layers: &Layers,
    key: Key,
    sources: &mut ConfigSources,
) -> Result<String, ConfigError> {
    setting(layers, key, sources, check_uri)?.ok_or(ConfigError::Missing {
        key: key.yaml,
        env: key.env,
    })
}

fn log_path(layers: &Layers, sources: &mut ConfigSources) -> Result<Option<PathBuf>, ConfigError> {
    let key = layers::LOG_PATH;
    let Some(raw) = layers.get(&key) else {
        sources.note(key, None);
        return Ok(None);
    };
    // A path need not be UTF-8; an empty one names no directory.
    if raw.value.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.yaml,
            layer: raw.source.clone(),
            reason: "must name a directory".into(),
        });
    }
    sources.note(key, Some(raw.source.clone()));
    Ok(Some(PathBuf::from(raw.value.clone())))
}

fn verbosity(layers: &Layers, sources: &mut ConfigSources) -> Result<Verbosity, ConfigError> {
    Ok(setting(layers, layers::VERBOSITY, sources, str::parse)?.unwrap_or(Verbosity::Debug))
}

/// How early a layer is (a later layer wins).
fn rank(source: &Source) -> u8 {
    match source {
        Source::Default => 0,
        Source::File(_) => 1,
        Source::Env(_) => 2,
        Source::Flag(_) => 3,
    }
}

/// `apiToken`/`apiTokenFile` (the later layer wins; in one layer the file does),
/// `metricsAuth`, and `tlsCertFile` + `tlsKeyFile` (both or neither).
fn security(layers: &Layers, sources: &mut ConfigSources) -> Result<SecurityConfig, ConfigError> {
    let token = setting(layers, layers::API_TOKEN, sources, |text| {
        if text.trim().is_empty() {
            Err("must not be empty".to_string())
        } else {
            Ok(Secret::new(text))
        }
    })?;
    let token_file = path_setting(layers, layers::API_TOKEN_FILE, sources)?;
    let api_token = match (token, token_file) {
        (None, None) => TokenSource::None,
        (Some(token), None) => TokenSource::Value(token),
        (None, Some(path)) => TokenSource::File(path),
        (Some(token), Some(path)) => {
            let value_rank = layers.get(&layers::API_TOKEN).map(|raw| rank(&raw.source));
            let file_rank = layers
                .get(&layers::API_TOKEN_FILE)
                .map(|raw| rank(&raw.source));
            if value_rank > file_rank {
                TokenSource::Value(token)
            } else {
                TokenSource::File(path)
            }
        }
    };
    let metrics_auth = setting(layers, layers::METRICS_AUTH, sources, |text| {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(format!("{text:?} is not true or false")),
        }
    })?
    .unwrap_or(false);
    let cert = path_setting(layers, layers::TLS_CERT_FILE, sources)?;
    let key = path_setting(layers, layers::TLS_KEY_FILE, sources)?;
    let tls = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (Some(_), None) | (None, Some(_)) => {
            let (given, missing) = if layers.get(&layers::TLS_CERT_FILE).is_some() {
                (layers::TLS_CERT_FILE, layers::TLS_KEY_FILE)
            } else {
                (layers::TLS_KEY_FILE, layers::TLS_CERT_FILE)
            };
            let layer = layers
                .get(&given)
                .map_or(Source::Default, |raw| raw.source.clone());
            return Err(ConfigError::Invalid {
                key: given.yaml,
                layer,
                reason: format!("needs {} as well", missing.yaml),
            });
        }
    };
    Ok(SecurityConfig {
        api_token,
        metrics_auth,
        tls,
    })
}

fn path_setting(
    layers: &Layers,
    key: Key,
    sources: &mut ConfigSources,
) -> Result<Option<PathBuf>, ConfigError> {
    setting(layers, key, sources, |text| {
        if text.trim().is_empty() {
            Err("must name a file".to_string())
        } else {
            Ok(PathBuf::from(text))
        }
    })
}

fn parse_workers(text: &str) -> Result<usize, String> {
    let workers = text
        .parse::<usize>()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if workers == 0 {
        return Err("must be at least 1".into());
    }
    // One in-process worker runs the whole migration (its parallelism comes from
    // --loadLevel); several workers are separate `c2c worker` processes, whose plan
    // persists in etcd. Refuse rather than accept a value that would change nothing.
    if workers > 1 {
        return Err(format!(
            "{workers} in-process workers are not supported yet; use 1 and raise --loadLevel for more parallelism, or scale out with `c2c coordinator` and `c2c worker` processes"
        ));
    }
    Ok(workers)
}

fn check_uri(uri: &str) -> Result<String, String> {
    if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") {
        Ok(uri.to_string())
    } else {
        Err(format!(
            "{} is not a connection string (it must start with mongodb:// or mongodb+srv://)",
            redact_uri(uri)
        ))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
