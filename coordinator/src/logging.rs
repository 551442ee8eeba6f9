//! Logs as mongosync writes them: JSON lines (see `log_format`) to stdout, or to
//! `<logPath>/c2c.log`. At start an existing `c2c.log` is renamed to
//! `c2c-<YYYY-MM-DDTHH-MM-SS.mmm>.log` (UTC) and a new one begun; `kill -USR1 <pid>`
//! does the same while running (a file moved away meanwhile, by logrotate say, is
//! simply reopened).
//!
//! `--verbosity` sets the lowest level written for c2c's own events; libraries' events
//! (hyper, h2, the driver) are written from INFO up, and at every level with TRACE.
//!
//! When the `OTEL_*` variables ask for it, a second layer exports the spans as
//! OpenTelemetry traces (see `telemetry`); the handle shuts it down (flushing) on drop.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio_util::task::AbortOnDropHandle;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::Verbosity;
use crate::log_format::{JsonLayer, ProcessId, FATAL_FIELD, PANIC_FIELD};
use crate::telemetry::{Role, Traces};

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

/// Where lines go. Rotation swaps the file under the lock, so no line is split or lost.
pub struct LogSink {
    output: Mutex<Output>,
}

enum Output {
    Stdout,
    File {
        directory: PathBuf,
        file: File,
    },
    /// Tests: any writer.
    Writer(Box<dyn Write + Send>),
}

impl LogSink {
    pub fn stdout() -> LogSink {
        LogSink::with(Output::Stdout)
    }

    /// Opens `<directory>/c2c.log` (creating the directory, as mongosync does) after
    /// rotating a non-empty one left by an earlier run; returns the rotated file too.
    pub fn file(directory: &Path) -> std::io::Result<(LogSink, Option<PathBuf>)> {
        std::fs::create_dir_all(directory)?;
        let rotated = rotate_existing(directory, Utc::now())?;
        let file = open_log_file(directory)?;
        let output = Output::File {
            directory: directory.to_path_buf(),
            file,
        };
        Ok((LogSink::with(output), rotated))
    }

    pub fn writer(writer: Box<dyn Write + Send>) -> LogSink {
        LogSink::with(Output::Writer(writer))
    }

    fn with(output: Output) -> LogSink {
        LogSink {
            output: Mutex::new(output),
        }
    }

    /// The current log file, when logging to one.
    pub fn path(&self) -> Option<PathBuf> {
        match &*self.output.lock() {
            Output::File { directory, .. } => Some(directory.join(LOG_FILE_NAME)),
            Output::Stdout | Output::Writer(_) => None,
        }
    }

    /// Writes one whole line; a failed write is dropped (there is nowhere to report it).
    pub fn write_line(&self, line: &[u8]) {
        let mut output = self.output.lock();
        let _ = match &mut *output {
            Output::Stdout => std::io::stdout().lock().write_all(line),
            Output::File { file, .. } => file.write_all(line),
            Output::Writer(writer) => writer.write_all(line).and_then(|()| writer.flush()),
        };
    }

    /// Renames the current file to `c2c-<time>.log` and starts a new `c2c.log`; returns
    /// the renamed file (`None` when logging to stdout or the file was empty or gone).
    pub fn rotate(&self) -> std::io::Result<Option<PathBuf>> {
        let mut output = self.output.lock();
        let Output::File { directory, file } = &mut *output else {
            return Ok(None);
        };
        file.flush()?;
        let rotated = rotate_existing(directory, Utc::now())?;
        *file = open_log_file(directory)?;
        Ok(rotated)
    }
}

/// Renames a non-empty `<directory>/c2c.log` to `c2c-<YYYY-MM-DDTHH-MM-SS.mmm>.log`
/// (`-1`, `-2`… appended if that name is taken). Nothing to do without one.
pub fn rotate_existing(directory: &Path, now: DateTime<Utc>) -> std::io::Result<Option<PathBuf>> {
    let current = directory.join(LOG_FILE_NAME);
    match std::fs::metadata(&current) {
        Ok(metadata) if metadata.len() > 0 => {}
        Ok(_) => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    }
    let stamp = now.format("%Y-%m-%dT%H-%M-%S%.3f").to_string();
    let mut rotated = directory.join(format!("c2c-{stamp}.log"));
    let mut attempt = 0;
    while rotated.exists() {
        attempt += 1;
        rotated = directory.join(format!("c2c-{stamp}-{attempt}.log"));
    }
    match std::fs::rename(&current, &rotated) {
        Ok(()) => Ok(Some(rotated)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn open_log_file(directory: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(directory.join(LOG_FILE_NAME))
}

/// Which events are written: c2c's from `verbosity` up, libraries' from INFO up (from
/// TRACE with TRACE); at FATAL only events marked `fatal` or `panic`, at PANIC only
/// those marked `panic` (see `log_format::FATAL_FIELD`).
pub fn filter<S: tracing::Subscriber>(
    verbosity: Verbosity,
) -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + 'static {
    use tracing_subscriber::filter::FilterExt;
    let own = LevelFilter::from_level(verbosity.tracing_level());
    let libraries = own.min(LevelFilter::INFO);
    let libraries = if verbosity == Verbosity::Trace {
        LevelFilter::TRACE
    } else {
        libraries
    };
    let targets = Targets::new()
        .with_default(libraries)
        .with_target("c2c", own);
    // Field names, not values, are known before an event is recorded: the markers are
    // only ever set to `true`.
    let severity = tracing_subscriber::filter::filter_fn(move |metadata| {
        let has = |name| metadata.fields().field(name).is_some();
        !metadata.is_event()
            || match verbosity {
                Verbosity::Fatal => has(FATAL_FIELD) || has(PANIC_FIELD),
                Verbosity::Panic => has(PANIC_FIELD),
                _ => true,
            }
    });
    targets.and(severity)
}

/// Logs a panic as a `"level":"panic"` line before the default hook prints it.
fn log_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|at| format!("{}:{}", at.file(), at.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = true, %location, error = %payload, "panic");
        previous(info);
    }));
}

/// The installed logger. Keep it for the life of the process: dropping it stops the
/// SIGUSR1 rotation task and flushes the traces still buffered.
pub struct Logging {
    sink: Arc<LogSink>,
    process_id: ProcessId,
    _rotation: Option<AbortOnDropHandle<()>>,
    traces: Option<Traces>,
}

impl Logging {
    /// The log file, when logging to one.
    pub fn file(&self) -> Option<PathBuf> {
        self.sink.path()
    }

    /// Changes `mongosyncID` once the process's id is known (a coordinator's default
    /// id needs its bound port).
    pub fn set_process_id(&self, id: &str) {
        self.process_id.set(id);
    }

    pub fn rotate(&self) -> std::io::Result<Option<PathBuf>> {
        self.sink.rotate()
    }

    /// Whether spans are exported (the `OTEL_*` variables asked for it).
    pub fn traces_exported(&self) -> bool {
        self.traces.is_some()
    }
}

/// Installs the global subscriber writing JSON lines with `mongosyncID` `process_id`,
/// the trace export if the environment asks for it (`role` and `process_id` name the
/// process in the traces' resource), and (inside a tokio runtime) the SIGUSR1 handler
/// that rotates the file.
pub fn init(
    log_path: Option<&Path>,
    verbosity: Verbosity,
    process_id: &str,
    role: Role,
) -> Result<Logging, LoggingError> {
    let (sink, rotated) = match log_path {
        None => (LogSink::stdout(), None),
        Some(directory) => LogSink::file(directory).map_err(|source| LoggingError::File {
            path: directory.join(LOG_FILE_NAME),
            source,
        })?,
    };
    let sink = Arc::new(sink);
    let (traces, traces_problem) = match Traces::from_env(role, process_id) {
        Ok(traces) => (traces, None),
        Err(problem) => (None, Some(problem)),
    };
    let process_id = ProcessId::new(process_id);
    let layer = JsonLayer::new(sink.clone(), process_id.clone()).with_filter(filter(verbosity));
    tracing_subscriber::registry()
        .with(layer)
        .with(traces.as_ref().map(Traces::layer))
        .try_init()
        .map_err(|error| LoggingError::AlreadyInstalled(error.to_string()))?;
    if let Some(rotated) = rotated {
        tracing::info!(previous = %rotated.display(), "rotated the previous log file");
    }
    if let Some(traces) = &traces {
        tracing::info!(endpoint = %traces.endpoint(), "exporting traces (OTLP over gRPC)");
        for ignored in traces.ignored() {
            tracing::warn!(variable = %ignored, "only OTLP over gRPC is supported; exporting over gRPC");
        }
    }
    if let Some(problem) = traces_problem {
        tracing::warn!(error = %problem, "traces are not exported");
    }
    log_panics();
    let rotation = rotate_on_sigusr1(sink.clone());
    Ok(Logging {
        sink,
        process_id,
        _rotation: rotation,
        traces,
    })
}

/// A task that rotates the log file on every SIGUSR1, aborted when the handle drops.
#[cfg(unix)]
fn rotate_on_sigusr1(sink: Arc<LogSink>) -> Option<AbortOnDropHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let _entered = runtime.enter();
    let mut signals = match signal(SignalKind::user_defined1()) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGUSR1: the log file rotates only at start");
            return None;
        }
    };
    let task = runtime.spawn(async move {
        while signals.recv().await.is_some() {
            match sink.rotate() {
                Ok(Some(previous)) => {
                    tracing::info!(previous = %previous.display(), "log file rotated on SIGUSR1")
                }
                Ok(None) if sink.path().is_none() => {
                    tracing::info!("SIGUSR1 received; logs go to stdout, nothing to rotate")
                }
                Ok(None) => tracing::info!("log file reopened on SIGUSR1"),
                Err(error) => tracing::error!(%error, "cannot rotate the log file"),
            }
        }
    });
    Some(AbortOnDropHandle::new(task))
}

#[cfg(not(unix))]
fn rotate_on_sigusr1(_sink: Arc<LogSink>) -> Option<AbortOnDropHandle<()>> {
    None
}
