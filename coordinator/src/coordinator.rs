//! The single-process coordinator: applies API calls to the state machine and the
//! engine driver, and remembers what `/progress` needs.

use std::sync::Arc;
use std::time::Duration;

use c2c_engine::options::{LoadLevel, StartRequest};
use c2c_engine::progress::Progress;
use c2c_engine::EngineError;
use parking_lot::Mutex;
use serde_json::Value;
use tracing::{info, warn};

use crate::config::RunConfig;
use crate::driver::{BoxFuture, EngineDriver};
use crate::redact::hosts_of;
use crate::start_options::ValidatedStart;
use crate::state::{Operation, State, WrongState};

/// What the coordinator needs from the process configuration.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    /// `--id`: reported as `mongosyncID` and (single process) `coordinatorID`.
    pub id: String,
    /// Host lists of `--cluster0` / `--cluster1`, never the URIs (they hold passwords).
    pub cluster0_hosts: Vec<String>,
    pub cluster1_hosts: Vec<String>,
    /// `--loadLevel` when the user set it.
    pub load_level: Option<LoadLevel>,
    /// Wait between attempts to read the persisted request at startup (doubles, ≤ 30 s).
    pub init_retry: Duration,
}

impl CoordinatorSettings {
    pub fn from_config(config: &RunConfig) -> CoordinatorSettings {
        CoordinatorSettings {
            id: config.id.clone(),
            cluster0_hosts: hosts_of(&config.cluster0),
            cluster1_hosts: hosts_of(&config.cluster1),
            load_level: config.load_level,
            init_retry: Duration::from_secs(1),
        }
    }
}

type DriverCall = for<'a> fn(&'a dyn EngineDriver) -> BoxFuture<'a, Result<(), EngineError>>;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    WrongState(#[from] WrongState),
    #[error("another {0} request is being processed; retry once it has answered")]
    Busy(&'static str),
    #[error("{0}")]
    OptionsMismatch(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What `/progress` reads, taken under one lock so the document is consistent.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: State,
    /// The request of the running migration (None before `/start`).
    pub request: Option<StartRequest>,
    /// Why initialization has not finished yet, while it is being retried.
    pub init_problem: Option<String>,
    pub progress: Option<Arc<Progress>>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    persisted: Option<StartRequest>,
    running: Option<StartRequest>,
    init_problem: Option<String>,
}

pub struct Coordinator {
    settings: CoordinatorSettings,
    driver: Arc<dyn EngineDriver>,
    inner: Mutex<Inner>,
    /// Serialises state-changing calls: the driver call runs between the state check and
    /// the state update, so two of them must not interleave.
    transition: tokio::sync::Mutex<()>,
}

impl Coordinator {
    pub fn new(settings: CoordinatorSettings, driver: Arc<dyn EngineDriver>) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            settings,
            driver,
            inner: Mutex::new(Inner {
                state: State::Initializing,
                persisted: None,
                running: None,
                init_problem: None,
            }),
            transition: tokio::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &CoordinatorSettings {
        &self.settings
    }

    /// INITIALIZING → IDLE once the destination answered whether a previous process
    /// persisted a migration. Failures are retried (mongosync would exit; retrying lets a
    /// destination that comes up late still work) and shown in `/progress` meanwhile.
    pub async fn initialize(&self) {
        let mut delay = self.settings.init_retry;
        loop {
            match self.driver.persisted_request().await {
                Ok(persisted) => {
                    if let Some(request) = &persisted {
                        info!(
                            request = %serde_json::to_string(request).unwrap_or_default(),
                            "a migration started by a previous c2c process is persisted on the destination; send the same /start to continue it"
                        );
                    }
                    let mut inner = self.inner.lock();
                    inner.persisted = persisted;
                    inner.init_problem = None;
                    inner.state = State::Idle;
                    info!(state = %State::Idle, "initialized");
                    return;
                }
                Err(error) => {
                    warn!(%error, retry_in_ms = delay.as_millis() as u64, "cannot read the persisted migration from the destination");
                    self.inner.lock().init_problem =
                        Some(format!("c2c cannot read its metadata from the destination yet and keeps retrying: {error}"));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock();
        let progress = match inner.state {
            State::Initializing | State::Idle => None,
            _ => self.driver.progress(),
        };
        Snapshot {
            state: inner.state,
            request: inner.running.clone(),
            init_problem: inner.init_problem.clone(),
            progress,
        }
    }

    pub fn state(&self) -> State {
        self.inner.lock().state
    }

    /// `/start`: a new migration, or the continuation of the persisted one when the
    /// request is identical.
    pub async fn start(&self, start: ValidatedStart) -> Result<(), CoordinatorError> {
        let _turn = self
            .transition
            .try_lock()
            .map_err(|_| CoordinatorError::Busy(Operation::Start.endpoint()))?;
        let (next, persisted) = {
            let inner = self.inner.lock();
            (
                Operation::Start.transition(inner.state)?,
                inner.persisted.clone(),
            )
        };
        if let Some(persisted) = &persisted {
            if *persisted != start.request {
                return Err(CoordinatorError::OptionsMismatch(describe_mismatch(
                    persisted,
                    &start.request,
                )));
            }
            info!("continuing the persisted migration");
        }
        self.driver
            .start(start.request.clone(), start.options)
            .await?;
        let mut inner = self.inner.lock();
        inner.state = next;
        inner.persisted = Some(start.request.clone());
        inner.running = Some(start.request);
        info!(state = %next, "migration started");
        Ok(())
    }

    pub async fn pause(&self) -> Result<(), CoordinatorError> {
        self.simple_transition(Operation::Pause, |driver| driver.pause())
            .await
    }

    pub async fn resume(&self) -> Result<(), CoordinatorError> {
        self.simple_transition(Operation::Resume, |driver| driver.resume())
            .await
    }

    /// A call whose only work is one driver call between the state check and update.
    async fn simple_transition(
        &self,
        operation: Operation,
        call: DriverCall,
    ) -> Result<(), CoordinatorError> {
        let _turn = self
            .transition
            .try_lock()
            .map_err(|_| CoordinatorError::Busy(operation.endpoint()))?;
        let next = operation.transition(self.state())?;
        call(self.driver.as_ref()).await?;
        self.inner.lock().state = next;
        info!(state = %next, "{} done", operation.endpoint());
        Ok(())
    }
}

/// Names every field whose value differs, with both values, so the user sees what to
/// change in the `/start` body.
fn describe_mismatch(persisted: &StartRequest, requested: &StartRequest) -> String {
    let (Ok(Value::Object(old)), Ok(Value::Object(new))) = (
        serde_json::to_value(persisted),
        serde_json::to_value(requested),
    ) else {
        return "the /start body differs from the persisted migration's".into();
    };
    let differences: Vec<String> = old
        .iter()
        .filter(|(field, value)| new.get(*field) != Some(*value))
        .map(|(field, value)| {
            format!(
                "{field}: started with {value}, now {}",
                new.get(field).unwrap_or(&Value::Null)
            )
        })
        .collect();
    format!(
        "the migration persisted on the destination was started with different /start options ({}); re-send the original /start body, or drop the destination's __c2c_internal database and the synced data to start over",
        differences.join("; ")
    )
}
