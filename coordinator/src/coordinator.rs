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

use crate::commit_readiness::commit_readiness;
use crate::config::RunConfig;
use crate::driver::{BoxFuture, EngineDriver};
use crate::grpc::WorkerDirectory;
use crate::redact::hosts_of;
use crate::start_options::{options_from_request, ValidatedStart};
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
    /// Scaled out: a persisted migration is continued at startup without a new `/start`
    /// (a newly elected leader takes over the running migration). `c2c run` waits for
    /// the same `/start` instead, as mongosync does after a restart.
    pub continue_persisted: bool,
}

impl CoordinatorSettings {
    pub fn from_config(config: &RunConfig) -> CoordinatorSettings {
        CoordinatorSettings {
            id: config.id.clone(),
            cluster0_hosts: hosts_of(&config.cluster0),
            cluster1_hosts: hosts_of(&config.cluster1),
            load_level: config.load_level,
            init_retry: Duration::from_secs(1),
            continue_persisted: false,
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
    /// `/commit` or `/reverse` in the right state whose preconditions are not met
    /// (canCommit false, not reversible, or refused by the engine); nothing changed.
    #[error("{reason}")]
    NotAllowed {
        operation: Operation,
        reason: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Scaled out: the pause could not be made durable, so it was not applied.
    #[error("the pause or resume could not be recorded in etcd, so it was not applied (the next leader would not keep it): {0}; retry")]
    Unrecorded(String),
}

/// Scaled out: where the leader records that the migration is paused before it pauses,
/// so a leader elected after a crash keeps it paused (etcd).
pub trait PauseJournal: Send + Sync {
    fn record(&self, paused: bool) -> BoxFuture<'_, Result<(), String>>;
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
    /// Scaled out: the per-worker breakdown `/progress` adds as `workers`.
    workers: std::sync::OnceLock<Arc<dyn WorkerDirectory>>,
    pause_journal: std::sync::OnceLock<Arc<dyn PauseJournal>>,
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
            workers: std::sync::OnceLock::new(),
            pause_journal: std::sync::OnceLock::new(),
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

    /// Makes `/progress` report the workers' breakdown (scale-out); set once.
    /// Scaled out: record pauses in `journal` before applying them.
    pub fn set_pause_journal(&self, journal: Arc<dyn PauseJournal>) {
        if self.pause_journal.set(journal).is_err() {
            warn!("the pause journal was already set; keeping the first");
        }
    }

    pub fn set_workers(&self, workers: Arc<dyn WorkerDirectory>) {
        if self.workers.set(workers).is_err() {
            warn!("the worker directory was already set; keeping the first");
        }
    }

    pub fn workers(&self) -> Option<&Arc<dyn WorkerDirectory>> {
        self.workers.get()
    }

    /// INITIALIZING → IDLE once the destination answered whether a previous process
    /// persisted a migration — or straight to COMMITTING / COMMITTED / REVERSING when it
    /// stopped during cutover (see `resume_cutover`). Failures are retried (mongosync
    /// would exit; retrying lets a destination that comes up late still work) and shown
    /// in `/progress` meanwhile.
    pub async fn initialize(&self) {
        let mut delay = self.settings.init_retry;
        loop {
            match self.load_persisted().await {
                Ok(state) => {
                    info!(%state, "initialized");
                    return;
                }
                Err(error) => {
                    warn!(%error, retry_in_ms = delay.as_millis() as u64, "cannot load the persisted migration");
                    self.inner.lock().init_problem = Some(format!(
                        "c2c cannot load the migration persisted on the destination yet and keeps retrying: {error}"
                    ));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn load_persisted(&self) -> Result<State, EngineError> {
        let persisted = self.driver.persisted_request().await?;
        let resumed = match &persisted {
            Some(request) => self.resume_cutover(request).await?,
            None => None,
        };
        let mut inner = self.inner.lock();
        inner.init_problem = None;
        inner.state = resumed.unwrap_or(State::Idle);
        if resumed.is_some() {
            inner.running = persisted.clone();
        }
        inner.persisted = persisted;
        Ok(inner.state)
    }

    /// A commit or reverse the previous process left unfinished is continued now: those
    /// states accept no call that could restart it, and the cutover issue requires a
    /// restart alone to finish the step. A finished commit is loaded too, so `/reverse`
    /// works after a restart. Returns the state to resume in, or None to wait for the
    /// same `/start` as before.
    async fn resume_cutover(&self, request: &StartRequest) -> Result<Option<State>, EngineError> {
        let phase = self.driver.persisted_phase().await?;
        let resumed = match phase.and_then(State::resumed_from) {
            None if self.settings.continue_persisted => Some(State::Running),
            resumed => resumed,
        };
        let Some(state) = resumed else {
            info!(
                request = %serde_json::to_string(request).unwrap_or_default(),
                "a migration started by a previous c2c process is persisted on the destination; send the same /start to continue it"
            );
            return Ok(None);
        };
        let options = options_from_request(request, self.settings.load_level).map_err(|error| {
            EngineError::Metadata(format!(
                "the persisted /start request is no longer valid ({error}); it cannot be continued"
            ))
        })?;
        info!(%state, "continuing the migration (or cutover step) a previous c2c process persisted");
        self.driver.start(request.clone(), options).await?;
        Ok(Some(state))
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut inner = self.inner.lock();
        let state = self.settle(&mut inner);
        let progress = match state {
            State::Initializing | State::Idle => None,
            _ => self.driver.progress(),
        };
        Snapshot {
            state,
            request: inner.running.clone(),
            init_problem: inner.init_problem.clone(),
            progress,
        }
    }

    pub fn state(&self) -> State {
        let mut inner = self.inner.lock();
        self.settle(&mut inner)
    }

    /// Applies the automatic transitions (COMMITTING → COMMITTED, REVERSING → RUNNING)
    /// the engine's phase calls for. Done on every read rather than by a watcher task so
    /// the state a call is checked against is never older than the engine's phase.
    fn settle(&self, inner: &mut Inner) -> State {
        if matches!(inner.state, State::Committing | State::Reversing) {
            let phase = self.driver.progress().and_then(|progress| progress.phase());
            let next = inner.state.follow_engine(phase);
            if next != inner.state {
                info!(from = %inner.state, state = %next, "the engine finished the step");
                inner.state = next;
            }
        }
        inner.state
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
        self.guarded_call(Operation::Pause, |_| Ok(()), |driver| driver.pause())
            .await
    }

    pub async fn resume(&self) -> Result<(), CoordinatorError> {
        self.guarded_call(Operation::Resume, |_| Ok(()), |driver| driver.resume())
            .await
    }

    /// `/commit`: RUNNING with canCommit true; the engine may still refuse (e.g. a
    /// privilege it finds missing). COMMITTED follows automatically (`settle`).
    pub async fn commit(&self) -> Result<(), CoordinatorError> {
        self.guarded_call(Operation::Commit, Self::check_can_commit, |driver| {
            driver.commit()
        })
        .await
    }

    /// `/reverse`: COMMITTED, of a migration started with `reversible: true` (the other
    /// documented preconditions were enforced at `/start` or are the engine's to check).
    /// RUNNING in the other direction follows automatically (`settle`).
    pub async fn reverse(&self) -> Result<(), CoordinatorError> {
        self.guarded_call(Operation::Reverse, Self::check_reversible, |driver| {
            driver.reverse()
        })
        .await
    }

    fn check_can_commit(&self) -> Result<(), CoordinatorError> {
        let counters = self.driver.progress().unwrap_or_default();
        commit_readiness(&counters).map_err(|reason| CoordinatorError::NotAllowed {
            operation: Operation::Commit,
            reason: reason.to_string(),
        })
    }

    fn check_reversible(&self) -> Result<(), CoordinatorError> {
        let reversible = self
            .inner
            .lock()
            .running
            .as_ref()
            .is_some_and(|request| request.reversible);
        if reversible {
            return Ok(());
        }
        Err(CoordinatorError::NotAllowed {
            operation: Operation::Reverse,
            reason: "/reverse needs a migration started with 'reversible': true (with 'enableUserWriteBlocking': \"sourceAndDestination\" and no namespace filter); this one was started without it, and /start options cannot change after the start".into(),
        })
    }

    /// A call whose work is a precondition check and one driver call between the state
    /// check and the state update. The engine's refusals of `/commit` and `/reverse` are
    /// reported as those calls not being allowed, with the engine's reason.
    async fn guarded_call(
        &self,
        operation: Operation,
        check: fn(&Self) -> Result<(), CoordinatorError>,
        call: DriverCall,
    ) -> Result<(), CoordinatorError> {
        let _turn = self
            .transition
            .try_lock()
            .map_err(|_| CoordinatorError::Busy(operation.endpoint()))?;
        let next = operation.transition(self.state())?;
        check(self)?;
        // Scaled out, a pause or resume is recorded in etcd first, so the next leader
        // keeps what the user asked even if this one dies right after answering.
        let journaled = match operation {
            Operation::Pause => Some(true),
            Operation::Resume => Some(false),
            _ => None,
        }
        .zip(self.pause_journal.get().cloned());
        if let Some((paused, journal)) = &journaled {
            journal
                .record(*paused)
                .await
                .map_err(CoordinatorError::Unrecorded)?;
        }
        let outcome = call(self.driver.as_ref())
            .await
            .map_err(|error| match (operation, error) {
                (Operation::Commit | Operation::Reverse, EngineError::Refused(reason)) => {
                    CoordinatorError::NotAllowed { operation, reason }
                }
                (_, error) => CoordinatorError::Engine(error),
            });
        if let (Err(_), Some((paused, journal))) = (&outcome, &journaled) {
            if let Err(error) = journal.record(!*paused).await {
                warn!(%error, "cannot take back the pause/resume recorded in etcd");
            }
        }
        outcome?;
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
