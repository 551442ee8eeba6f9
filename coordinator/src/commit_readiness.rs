//! When a commit may start (`canCommit`, spec §3.5/§4): `/progress` reports it and
//! `/commit` refuses with the reason, so both must read the same rule from here.

use std::sync::atomic::Ordering;

use c2c_engine::progress::{Phase, Progress};

/// mongosync 1.21: no commit while lag is above this.
pub const MAX_COMMIT_LAG_SECONDS: i64 = 30;

/// Why `canCommit` is false, in words that tell the user what to wait for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CannotCommit {
    #[error("canCommit is false: the migration stopped after a fatal error ({0}); restart c2c and send the same /start to continue, then commit once canCommit is true")]
    Failed(String),
    #[error("canCommit is false: the collection copy is not done yet; wait until /progress shows canCommit: true")]
    CopyNotDone,
    #[error("canCommit is false: change event application is not in steady state yet (it is {0}); wait until /progress shows ceaStage \"steady state\" and canCommit: true")]
    NotSteadyState(&'static str),
    #[error("canCommit is false: the lag is not known yet (no change event has been applied); wait until /progress shows canCommit: true")]
    LagUnknown,
    #[error("canCommit is false: the lag is {0} s, more than the {MAX_COMMIT_LAG_SECONDS} s a commit allows; stop or slow the writes to the source and wait until lagTimeSeconds falls")]
    LagTooHigh(i64),
    #[error("canCommit is false: {0}; wait until /progress shows verification in \"stream hashing\" on both sides and canCommit: true")]
    Verifier(String),
}

/// Checks the engine's counters of a RUNNING migration (the state is checked by the
/// caller: outside RUNNING, canCommit is false whatever the counters say).
pub fn commit_readiness(counters: &Progress) -> Result<(), CannotCommit> {
    if let Some(failure) = counters.failure.lock().clone() {
        return Err(CannotCommit::Failed(failure));
    }
    if !counters.copy_done.load(Ordering::Relaxed) {
        return Err(CannotCommit::CopyNotDone);
    }
    let phase = counters.phase();
    if phase != Some(Phase::SteadyState) {
        return Err(CannotCommit::NotSteadyState(describe(phase)));
    }
    match counters.lag_seconds() {
        None => Err(CannotCommit::LagUnknown),
        Some(lag) if lag > MAX_COMMIT_LAG_SECONDS => Err(CannotCommit::LagTooHigh(lag)),
        Some(_) => counters
            .verification
            .ready_for_commit(MAX_COMMIT_LAG_SECONDS)
            .map_err(CannotCommit::Verifier),
    }
}

fn describe(phase: Option<Phase>) -> &'static str {
    match phase {
        None | Some(Phase::Initializing) => "still initializing",
        Some(Phase::CollectionCopy) => "still copying collections",
        Some(Phase::CopyDrain) => {
            "in \"collection copy drain\", applying the events buffered during the copy"
        }
        Some(Phase::SteadyState) => "in steady state",
        Some(Phase::Paused) => "paused",
        Some(Phase::Failed) => "stopped after a failure",
        Some(Phase::Committing) => "committing",
        Some(Phase::Committed) => "committed",
        Some(Phase::Reversing) => "reversing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(lag: i64) -> Progress {
        let counters = Progress::default();
        counters.copy_done.store(true, Ordering::Relaxed);
        counters.set_phase(Phase::SteadyState);
        counters
            .source_latest_secs
            .store(100 + lag, Ordering::Relaxed);
        counters.applied_latest_secs.store(100, Ordering::Relaxed);
        counters
    }

    #[test]
    fn ready_at_30_seconds_of_lag_not_at_31() {
        assert_eq!(commit_readiness(&ready(30)), Ok(()));
        assert_eq!(
            commit_readiness(&ready(31)),
            Err(CannotCommit::LagTooHigh(31))
        );
    }

    #[test]
    fn each_reason_is_named() {
        let counters = ready(0);
        counters.set_phase(Phase::CopyDrain);
        let reason = commit_readiness(&counters).expect_err("drain");
        assert!(
            reason.to_string().contains("collection copy drain"),
            "{reason}"
        );

        counters.copy_done.store(false, Ordering::Relaxed);
        assert_eq!(commit_readiness(&counters), Err(CannotCommit::CopyNotDone));

        let counters = ready(0);
        counters.applied_latest_secs.store(0, Ordering::Relaxed);
        assert_eq!(commit_readiness(&counters), Err(CannotCommit::LagUnknown));

        *counters.failure.lock() = Some("disk full".into());
        let reason = commit_readiness(&counters).expect_err("failed");
        assert!(
            reason.to_string().starts_with("canCommit is false"),
            "{reason}"
        );
        assert!(reason.to_string().contains("disk full"), "{reason}");
    }
}
