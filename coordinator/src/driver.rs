//! The boundary between the REST API / state machine and the sync engine. Keeping it a
//! trait lets the API be built and tested without clusters (see `testing::FakeDriver`);
//! `engine_driver` implements it over the engine's `Migration`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use c2c_engine::metadata::PersistedPhase;
use c2c_engine::options::{StartRequest, SyncOptions};
use c2c_engine::progress::Progress;
use c2c_engine::EngineError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait EngineDriver: Send + Sync + 'static {
    /// Starts a migration, or continues the persisted one after a restart (the same
    /// request). Returns once the migration runs in the background; preflight failures
    /// (unsupported namespaces, non-empty destination, missing privileges, …) are
    /// returned here.
    fn start(
        &self,
        request: StartRequest,
        options: SyncOptions,
    ) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Stops reading and writing; returns once the engine has stopped.
    fn pause(&self) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Continues a paused migration from its checkpoints.
    fn resume(&self) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Starts the cutover. Returns once the engine accepted it (the commit itself runs
    /// in the background and is reported through `Progress::phase`); a precondition the
    /// engine finds unmet is `EngineError::Refused`, with nothing changed.
    fn commit(&self) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Starts syncing in the other direction after a commit; accepted or refused as
    /// `commit`.
    fn reverse(&self) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Live counters of the running migration (None before start).
    fn progress(&self) -> Option<Arc<Progress>>;
    /// The request a previous process persisted on the destination, if any.
    fn persisted_request(&self) -> BoxFuture<'_, Result<Option<StartRequest>, EngineError>>;
    /// The step a previous process persisted, if any: a restart in the middle of a
    /// commit or reverse continues it without a new `/start`.
    fn persisted_phase(&self) -> BoxFuture<'_, Result<Option<PersistedPhase>, EngineError>>;
}
