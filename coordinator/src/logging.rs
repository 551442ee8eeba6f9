//! JSON-lines logs (as mongosync writes them) to stdout or `<logPath>/c2c.log`.
//! Rotation and metrics come with the operations issue.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::Verbosity;

pub const LOG_FILE_NAME: &str = "c2c.log";

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open the log file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a logger is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Installs the global subscriber; returns the log file when logging to one.
pub fn init(
    log_path: Option<&Path>,
    verbosity: Verbosity,
) -> Result<Option<PathBuf>, LoggingError> {
    let builder = tracing_subscriber::fmt()
        .json()
        .with_max_level(verbosity.tracing_level())
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true);
    match log_path {
        None => builder
            .try_init()
            .map_err(|error| LoggingError::AlreadyInstalled(error.to_string()))?,
        Some(directory) => {
            let path = directory.join(LOG_FILE_NAME);
            let file = open_log_file(directory, &path).map_err(|source| LoggingError::File {
                path: path.clone(),
                source,
            })?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
                .map_err(|error| LoggingError::AlreadyInstalled(error.to_string()))?;
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// mongosync creates the directory if absent and appends to an existing file.
fn open_log_file(directory: &Path, path: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(directory)?;
    OpenOptions::new().create(true).append(true).open(path)
}
