//! The resolved `c2c run` configuration: defaults < YAML file (`--config`) < flags.
//! YAML keys are mongosync's (`cluster0`, `cluster1`, `port`, `logPath`, `verbosity`,
//! `loadLevel`, `id`) plus c2c's `workers` and `bind`; unknown keys are refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use c2c_engine::options::LoadLevel;
use serde::Deserialize;

use crate::cli::RunArgs;
use crate::redact::redact_uri;

pub const DEFAULT_PORT: u16 = 27182;
pub const DEFAULT_ID: &str = "coordinator";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} is required: pass --{key} URI or set `{key}` in the --config file")]
    Missing { key: &'static str },
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
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
            .finish()
    }
}

/// The YAML file, every key optional so flags can supply the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileConfig {
    cluster0: Option<String>,
    cluster1: Option<String>,
    port: Option<u16>,
    bind: Option<String>,
    workers: Option<usize>,
    log_path: Option<PathBuf>,
    verbosity: Option<String>,
    load_level: Option<u8>,
    id: Option<String>,
}

impl RunConfig {
    /// Reads `--config` (if any) and merges it under the flags.
    pub fn resolve(args: &RunArgs) -> Result<RunConfig, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        merge(args, file)
    }

    /// Parses YAML text as `--config` would, then merges it under `args`.
    pub fn from_yaml(args: &RunArgs, yaml: &str) -> Result<RunConfig, ConfigError> {
        merge(
            args,
            parse_yaml(yaml).map_err(|reason| ConfigError::File {
                path: PathBuf::from("<yaml>"),
                reason,
            })?,
        )
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    parse_yaml(&text).map_err(|reason| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    })
}

fn parse_yaml(text: &str) -> Result<FileConfig, String> {
    // An empty (or comment-only) file is a valid "no settings".
    let has_content = text
        .lines()
        .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    if !has_content {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(text).map_err(|error| error.to_string())
}

fn merge(args: &RunArgs, file: FileConfig) -> Result<RunConfig, ConfigError> {
    let cluster0 = args
        .cluster0
        .clone()
        .or(file.cluster0)
        .ok_or(ConfigError::Missing { key: "cluster0" })?;
    let cluster1 = args
        .cluster1
        .clone()
        .or(file.cluster1)
        .ok_or(ConfigError::Missing { key: "cluster1" })?;
    check_uri("cluster0", &cluster0)?;
    check_uri("cluster1", &cluster1)?;

    let bind = match args.bind.clone().or(file.bind) {
        Some(text) => text.parse::<IpAddr>().map_err(|_| ConfigError::Invalid {
            key: "bind",
            reason: format!("{text:?} is not an IP address"),
        })?,
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let workers = args.workers.or(file.workers).unwrap_or(1);
    if workers == 0 {
        return Err(ConfigError::Invalid {
            key: "workers",
            reason: "must be at least 1".into(),
        });
    }
    // One in-process worker runs the whole migration (its parallelism comes from
    // --loadLevel); several workers are separate `c2c worker` processes, whose plan
    // persists in etcd. Refuse rather than accept a value that would change nothing.
    if workers > 1 {
        return Err(ConfigError::Invalid {
            key: "workers",
            reason: format!(
                "{workers} in-process workers are not supported yet; use 1 and raise --loadLevel for more parallelism, or scale out with `c2c coordinator` and `c2c worker` processes"
            ),
        });
    }
    let verbosity = match args.verbosity.clone().or(file.verbosity) {
        Some(text) => text.parse().map_err(|reason| ConfigError::Invalid {
            key: "verbosity",
            reason,
        })?,
        None => Verbosity::Debug,
    };
    let load_level = args
        .load_level
        .or(file.load_level)
        .map(|level| {
            LoadLevel::new(level).ok_or_else(|| ConfigError::Invalid {
                key: "loadLevel",
                reason: format!("must be 1 to 4, got {level}"),
            })
        })
        .transpose()?;
    let id = args
        .id
        .clone()
        .or(file.id)
        .unwrap_or_else(|| DEFAULT_ID.to_string());
    if id.trim().is_empty() {
        return Err(ConfigError::Invalid {
            key: "id",
            reason: "must not be empty".into(),
        });
    }
    Ok(RunConfig {
        cluster0,
        cluster1,
        port: args.port.or(file.port).unwrap_or(DEFAULT_PORT),
        bind,
        workers,
        log_path: args.log_path.clone().or(file.log_path),
        verbosity,
        load_level,
        id,
    })
}

fn check_uri(key: &'static str, uri: &str) -> Result<(), ConfigError> {
    if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            reason: format!(
                "{} is not a connection string (it must start with mongodb:// or mongodb+srv://)",
                redact_uri(uri)
            ),
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
