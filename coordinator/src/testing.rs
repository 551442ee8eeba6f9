//! A fake `EngineDriver` that records calls and fails on demand, so the API and the
//! state machine are tested without clusters. Public (not `cfg(test)`) so the
//! integration tests under `tests/` can use it too.
//!
//! Cutover is simulated as the engine reports it: an accepted `commit` / `reverse` sets
//! the phase to `Committing` / `Reversing`; `complete_commit` / `complete_reverse` play
//! the engine finishing the step.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use c2c_engine::metadata::PersistedPhase;
use c2c_engine::options::{StartRequest, SyncOptions};
use c2c_engine::progress::{Phase, Progress};
use c2c_engine::EngineError;
use parking_lot::Mutex;

use crate::driver::{BoxFuture, EngineDriver};

/// One call the fake received.
#[derive(Debug, Clone)]
pub enum DriverCall {
    Start {
        request: StartRequest,
        options: SyncOptions,
    },
    Pause,
    Resume,
    Commit,
    Reverse,
    PersistedRequest,
    PersistedPhase,
}

/// Which driver method a failure is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverMethod {
    Start,
    Pause,
    Resume,
    Commit,
    Reverse,
    PersistedRequest,
    PersistedPhase,
}

#[derive(Default)]
pub struct FakeDriver {
    calls: Mutex<Vec<DriverCall>>,
    persisted: Mutex<Option<StartRequest>>,
    persisted_phase: Mutex<Option<PersistedPhase>>,
    /// Failures consumed one per call of that method, oldest first.
    failures: Mutex<Vec<(DriverMethod, EngineError)>>,
    progress: Arc<Progress>,
    started: Mutex<bool>,
    /// When set, `start` waits for this before answering (to test concurrent calls).
    start_gate: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

impl FakeDriver {
    pub fn new() -> Arc<FakeDriver> {
        Arc::new(FakeDriver::default())
    }

    /// A fake whose destination holds `request` from a previous process.
    pub fn with_persisted(request: StartRequest) -> Arc<FakeDriver> {
        let driver = FakeDriver::default();
        *driver.persisted.lock() = Some(request);
        Arc::new(driver)
    }

    /// A fake whose destination holds `request`, stopped by a previous process at `phase`.
    pub fn with_persisted_phase(request: StartRequest, phase: PersistedPhase) -> Arc<FakeDriver> {
        let driver = FakeDriver::default();
        *driver.persisted.lock() = Some(request);
        *driver.persisted_phase.lock() = Some(phase);
        Arc::new(driver)
    }

    /// Plays the engine finishing a commit: the destination is writable, COMMITTED.
    pub fn complete_commit(&self) {
        self.progress.can_write.store(true, Ordering::Relaxed);
        self.progress.set_phase(Phase::Committed);
    }

    /// Plays the engine finishing a reverse: the direction flips, the new destination is
    /// blocked again, and change events flow in steady state.
    pub fn complete_reverse(&self) {
        self.progress.reversed.fetch_xor(true, Ordering::Relaxed);
        self.progress.can_write.store(false, Ordering::Relaxed);
        self.progress.set_phase(Phase::SteadyState);
    }

    /// Makes the next call of `method` fail with `error`.
    pub fn fail_next(&self, method: DriverMethod, error: EngineError) {
        self.failures.lock().push((method, error));
    }

    /// Makes `start` wait until the returned gate is notified.
    pub fn hold_start(&self) -> Arc<tokio::sync::Notify> {
        let gate = Arc::new(tokio::sync::Notify::new());
        *self.start_gate.lock() = Some(Arc::clone(&gate));
        gate
    }

    pub fn calls(&self) -> Vec<DriverCall> {
        self.calls.lock().clone()
    }

    /// The counters the fake hands out once started; tests set them to shape `/progress`.
    pub fn counters(&self) -> &Arc<Progress> {
        &self.progress
    }

    fn record(&self, call: DriverCall, method: DriverMethod) -> Result<(), EngineError> {
        self.calls.lock().push(call);
        let mut failures = self.failures.lock();
        match failures.iter().position(|(m, _)| *m == method) {
            Some(index) => Err(failures.remove(index).1),
            None => Ok(()),
        }
    }
}

impl EngineDriver for FakeDriver {
    fn start(
        &self,
        request: StartRequest,
        options: SyncOptions,
    ) -> BoxFuture<'_, Result<(), EngineError>> {
        let result = self.record(DriverCall::Start { request, options }, DriverMethod::Start);
        if result.is_ok() {
            *self.started.lock() = true;
        }
        let gate = self.start_gate.lock().take();
        Box::pin(async move {
            if let Some(gate) = gate {
                gate.notified().await;
            }
            result
        })
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        let result = self.record(DriverCall::Pause, DriverMethod::Pause);
        Box::pin(async move { result })
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        let result = self.record(DriverCall::Resume, DriverMethod::Resume);
        Box::pin(async move { result })
    }

    fn commit(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        let result = self.record(DriverCall::Commit, DriverMethod::Commit);
        if result.is_ok() {
            self.progress.set_phase(Phase::Committing);
        }
        Box::pin(async move { result })
    }

    fn reverse(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        let result = self.record(DriverCall::Reverse, DriverMethod::Reverse);
        if result.is_ok() {
            self.progress.set_phase(Phase::Reversing);
        }
        Box::pin(async move { result })
    }

    fn progress(&self) -> Option<Arc<Progress>> {
        (*self.started.lock()).then(|| Arc::clone(&self.progress))
    }

    fn persisted_request(&self) -> BoxFuture<'_, Result<Option<StartRequest>, EngineError>> {
        let result = self.record(DriverCall::PersistedRequest, DriverMethod::PersistedRequest);
        let persisted = self.persisted.lock().clone();
        Box::pin(async move { result.map(|()| persisted) })
    }

    fn persisted_phase(&self) -> BoxFuture<'_, Result<Option<PersistedPhase>, EngineError>> {
        let result = self.record(DriverCall::PersistedPhase, DriverMethod::PersistedPhase);
        let phase = *self.persisted_phase.lock();
        Box::pin(async move { result.map(|()| phase) })
    }
}
