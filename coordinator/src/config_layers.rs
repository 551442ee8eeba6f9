//! Where each setting comes from. Four layers, later ones winning:
//! defaults < YAML file (`--config`) < environment variables (`C2C_<KEY>`) < flags.
//!
//! Each layer is read into raw values tagged with their [`Source`], so validation (in
//! `config`) can name both the key and the layer a bad value came from. Only the
//! variables in [`KEYS`] are read: other `C2C_*` variables (tests', scripts') are not
//! configuration and are never looked at here.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::RunArgs;
use crate::config::ConfigError;

/// One configuration key under its three names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The YAML key (mongosync's name), also used in messages.
    pub yaml: &'static str,
    /// The environment variable: `C2C_` + the YAML key in upper snake case.
    pub env: &'static str,
    /// The command-line flag, without `--`.
    pub flag: &'static str,
}

pub const CLUSTER0: Key = key("cluster0", "C2C_CLUSTER0", "cluster0");
pub const CLUSTER1: Key = key("cluster1", "C2C_CLUSTER1", "cluster1");
pub const PORT: Key = key("port", "C2C_PORT", "port");
pub const BIND: Key = key("bind", "C2C_BIND", "bind");
pub const WORKERS: Key = key("workers", "C2C_WORKERS", "workers");
pub const LOG_PATH: Key = key("logPath", "C2C_LOG_PATH", "logPath");
pub const VERBOSITY: Key = key("verbosity", "C2C_VERBOSITY", "verbosity");
pub const LOAD_LEVEL: Key = key("loadLevel", "C2C_LOAD_LEVEL", "loadLevel");
pub const ID: Key = key("id", "C2C_ID", "id");
pub const API_TOKEN: Key = key("apiToken", "C2C_API_TOKEN", "apiToken");
pub const API_TOKEN_FILE: Key = key("apiTokenFile", "C2C_API_TOKEN_FILE", "apiTokenFile");
pub const METRICS_AUTH: Key = key("metricsAuth", "C2C_METRICS_AUTH", "metricsAuth");
pub const TLS_CERT_FILE: Key = key("tlsCertFile", "C2C_TLS_CERT_FILE", "tlsCertFile");
pub const TLS_KEY_FILE: Key = key("tlsKeyFile", "C2C_TLS_KEY_FILE", "tlsKeyFile");

/// Every key, in the order the effective configuration is logged.
pub const KEYS: [Key; 14] = [
    CLUSTER0,
    CLUSTER1,
    PORT,
    BIND,
    WORKERS,
    LOG_PATH,
    VERBOSITY,
    LOAD_LEVEL,
    ID,
    API_TOKEN,
    API_TOKEN_FILE,
    METRICS_AUTH,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
];

const fn key(yaml: &'static str, env: &'static str, flag: &'static str) -> Key {
    Key { yaml, env, flag }
}

/// The layer a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the default"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Env(variable) => write!(f, "environment variable {variable}"),
            Source::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// One value as a layer gave it, before validation.
#[derive(Debug, Clone)]
pub struct Raw {
    pub value: OsString,
    pub source: Source,
}

impl Raw {
    /// The value as text; a value that is not UTF-8 is refused naming key and layer.
    pub fn text(&self, key: &Key) -> Result<&str, ConfigError> {
        self.value.to_str().ok_or_else(|| ConfigError::Invalid {
            key: key.yaml,
            layer: self.source.clone(),
            reason: "not valid UTF-8".into(),
        })
    }
}

/// The file, environment and flag layers of one start.
#[derive(Debug, Default)]
pub struct Layers {
    file: BTreeMap<&'static str, Raw>,
    env: BTreeMap<&'static str, Raw>,
    flags: BTreeMap<&'static str, Raw>,
}

impl Layers {
    /// The winning raw value of `key`, if any layer sets it.
    pub fn get(&self, key: &Key) -> Option<&Raw> {
        self.flags
            .get(key.yaml)
            .or_else(|| self.env.get(key.yaml))
            .or_else(|| self.file.get(key.yaml))
    }

    /// Adds the YAML text of the file at `path` (the label used in messages).
    pub fn with_yaml(mut self, path: &Path, text: &str) -> Result<Layers, ConfigError> {
        self.file = parse_yaml(path, text)?;
        Ok(self)
    }

    /// Adds the `C2C_<KEY>` variables of `keys` that `lookup` finds. An empty variable
    /// counts as unset (as `${VAR}` expansions in unit and compose files produce).
    pub fn with_env(mut self, keys: &[Key], lookup: impl Fn(&str) -> Option<OsString>) -> Layers {
        for key in keys {
            if let Some(value) = lookup(key.env).filter(|value| !value.is_empty()) {
                let raw = Raw {
                    value,
                    source: Source::Env(key.env),
                };
                self.env.insert(key.yaml, raw);
            }
        }
        self
    }

    /// Adds one flag's value when it was given.
    pub fn with_flag(mut self, key: Key, value: Option<impl Into<OsString>>) -> Layers {
        if let Some(value) = value {
            let raw = Raw {
                value: value.into(),
                source: Source::Flag(key.flag),
            };
            self.flags.insert(key.yaml, raw);
        }
        self
    }

    /// The flags of `c2c run` (and `c2c coordinator`).
    pub fn with_run_flags(self, args: &RunArgs) -> Layers {
        self.with_flag(CLUSTER0, args.cluster0.clone())
            .with_flag(CLUSTER1, args.cluster1.clone())
            .with_flag(PORT, args.port.map(|port| port.to_string()))
            .with_flag(BIND, args.bind.clone())
            .with_flag(WORKERS, args.workers.map(|workers| workers.to_string()))
            .with_flag(LOG_PATH, args.log_path.clone())
            .with_flag(VERBOSITY, args.verbosity.clone())
            .with_flag(LOAD_LEVEL, args.load_level.map(|level| level.to_string()))
            .with_flag(ID, args.id.clone())
            .with_flag(API_TOKEN, args.api_token.clone())
            .with_flag(API_TOKEN_FILE, args.api_token_file.clone())
            .with_flag(METRICS_AUTH, args.metrics_auth.then_some("true"))
            .with_flag(TLS_CERT_FILE, args.tls_cert_file.clone())
            .with_flag(TLS_KEY_FILE, args.tls_key_file.clone())
    }
}

/// The process environment, for [`Layers::with_env`].
pub fn process_env(variable: &str) -> Option<OsString> {
    std::env::var_os(variable)
}

/// The YAML file: every key optional, unknown keys refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileConfig {
    cluster0: Option<serde_yaml::Value>,
    cluster1: Option<serde_yaml::Value>,
    port: Option<serde_yaml::Value>,
    bind: Option<serde_yaml::Value>,
    workers: Option<serde_yaml::Value>,
    log_path: Option<serde_yaml::Value>,
    verbosity: Option<serde_yaml::Value>,
    load_level: Option<serde_yaml::Value>,
    id: Option<serde_yaml::Value>,
    api_token: Option<serde_yaml::Value>,
    api_token_file: Option<serde_yaml::Value>,
    metrics_auth: Option<serde_yaml::Value>,
    tls_cert_file: Option<serde_yaml::Value>,
    tls_key_file: Option<serde_yaml::Value>,
}

fn parse_yaml(path: &Path, text: &str) -> Result<BTreeMap<&'static str, Raw>, ConfigError> {
    // An empty (or comment-only) file is a valid "no settings".
    let has_content = text
        .lines()
        .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    if !has_content {
        return Ok(BTreeMap::new());
    }
    let file: FileConfig = serde_yaml::from_str(text).map_err(|error| ConfigError::File {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let values = [
        (CLUSTER0, file.cluster0),
        (CLUSTER1, file.cluster1),
        (PORT, file.port),
        (BIND, file.bind),
        (WORKERS, file.workers),
        (LOG_PATH, file.log_path),
        (VERBOSITY, file.verbosity),
        (LOAD_LEVEL, file.load_level),
        (ID, file.id),
        (API_TOKEN, file.api_token),
        (API_TOKEN_FILE, file.api_token_file),
        (METRICS_AUTH, file.metrics_auth),
        (TLS_CERT_FILE, file.tls_cert_file),
        (TLS_KEY_FILE, file.tls_key_file),
    ];
    let mut layer = BTreeMap::new();
    for (key, value) in values {
        let source = Source::File(path.to_path_buf());
        let text = match value {
            None | Some(serde_yaml::Value::Null) => continue,
            Some(serde_yaml::Value::String(text)) => text,
            Some(serde_yaml::Value::Number(number)) => number.to_string(),
            Some(serde_yaml::Value::Bool(flag)) => flag.to_string(),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    key: key.yaml,
                    layer: source,
                    reason: "must be a single value, not a list or a mapping".into(),
                })
            }
        };
        let raw = Raw {
            value: text.into(),
            source,
        };
        layer.insert(key.yaml, raw);
    }
    Ok(layer)
}
