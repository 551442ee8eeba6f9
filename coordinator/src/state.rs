//! mongosync's migration states and which API call moves between them (spec §5.1).
//!
//! `INITIALIZING → IDLE → RUNNING ⇄ PAUSED`, `RUNNING → COMMITTING` (/commit),
//! `COMMITTED → REVERSING` (/reverse), and the two automatic transitions the engine's
//! phase drives: `COMMITTING → COMMITTED` and `REVERSING → RUNNING`.

use std::fmt;

use c2c_engine::metadata::PersistedPhase;
use c2c_engine::progress::Phase;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Initializing,
    Idle,
    Running,
    Paused,
    Committing,
    Committed,
    Reversing,
}

impl State {
    /// The name `/progress` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initializing => "INITIALIZING",
            State::Idle => "IDLE",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Committing => "COMMITTING",
            State::Committed => "COMMITTED",
            State::Reversing => "REVERSING",
        }
    }
}

impl State {
    /// The state after the automatic transitions (spec §5.1: the only ones no API call
    /// drives): a commit ends when the engine reports `Committed`, a reverse when it is
    /// back in steady state in the new direction. Any other phase (including `Failed`)
    /// keeps the state, so a failed commit stays visible as COMMITTING.
    pub fn follow_engine(self, phase: Option<Phase>) -> State {
        match (self, phase) {
            (State::Committing, Some(Phase::Committed)) => State::Committed,
            (State::Reversing, Some(Phase::SteadyState)) => State::Running,
            (state, _) => state,
        }
    }

    /// The state a restarted process resumes without a new `/start`, from the step the
    /// previous process persisted: a commit or reverse in flight must finish on its own
    /// (those states accept no call that could restart it), and a finished commit must
    /// still accept `/reverse`. Every other step waits in IDLE for the same `/start`.
    pub fn resumed_from(phase: PersistedPhase) -> Option<State> {
        match phase {
            PersistedPhase::Committing => Some(State::Committing),
            PersistedPhase::Committed => Some(State::Committed),
            PersistedPhase::Reversing => Some(State::Reversing),
            PersistedPhase::Planning | PersistedPhase::Copying | PersistedPhase::Applying => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The API calls that change state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Pause,
    Resume,
    Commit,
    Reverse,
}

impl Operation {
    pub fn endpoint(self) -> &'static str {
        match self {
            Operation::Start => "/start",
            Operation::Pause => "/pause",
            Operation::Resume => "/resume",
            Operation::Commit => "/commit",
            Operation::Reverse => "/reverse",
        }
    }

    /// The only state the call is accepted in.
    pub fn required_state(self) -> State {
        match self {
            Operation::Start => State::Idle,
            Operation::Pause | Operation::Commit => State::Running,
            Operation::Resume => State::Paused,
            Operation::Reverse => State::Committed,
        }
    }

    /// The state once the call succeeded.
    pub fn next_state(self) -> State {
        match self {
            Operation::Start | Operation::Resume => State::Running,
            Operation::Pause => State::Paused,
            Operation::Commit => State::Committing,
            Operation::Reverse => State::Reversing,
        }
    }

    /// Checks `current` allows this call and returns the state it leads to.
    pub fn transition(self, current: State) -> Result<State, WrongState> {
        if current == self.required_state() {
            Ok(self.next_state())
        } else {
            Err(WrongState {
                operation: self,
                current,
            })
        }
    }
}

/// A call made in a state that does not allow it; the message names the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is only allowed in state {}, but the current state is {current}{}", operation.endpoint(), operation.required_state(), hint(*operation, *current))]
pub struct WrongState {
    pub operation: Operation,
    pub current: State,
}

/// What the user should do instead, for the mistakes that are easy to make.
fn hint(operation: Operation, current: State) -> &'static str {
    match (operation, current) {
        (_, State::Initializing) => {
            " (c2c is still reading the destination's metadata; retry when /progress shows IDLE)"
        }
        (Operation::Start, State::Running | State::Paused) => " (a migration is already under way)",
        (Operation::Resume, State::Running) => " (the migration is not paused)",
        (Operation::Pause, State::Paused) => " (the migration is already paused)",
        (Operation::Pause | Operation::Resume | Operation::Commit, State::Idle) => {
            " (no migration has been started; send /start first)"
        }
        (Operation::Commit, State::Paused) => " (send /resume first and wait for canCommit)",
        (Operation::Commit, State::Committing) => {
            " (a commit is already in progress; /progress shows when it completes)"
        }
        (Operation::Commit, State::Committed) => {
            " (the migration is already committed; /reverse syncs in the other direction)"
        }
        (Operation::Commit, State::Reversing) => {
            " (a reverse is in progress; commit again once it is RUNNING with canCommit true)"
        }
        (Operation::Reverse, State::Running | State::Paused) => {
            " (/reverse follows a completed commit: send /commit and wait for COMMITTED)"
        }
        (Operation::Reverse, State::Committing) => {
            " (wait until the commit completes: /progress shows COMMITTED)"
        }
        (Operation::Reverse, State::Reversing) => " (a reverse is already in progress)",
        (_, State::Committing | State::Committed | State::Reversing) => {
            " (cutover has begun; only /progress and, once COMMITTED, /reverse are accepted)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_transitions() {
        assert_eq!(Operation::Start.transition(State::Idle), Ok(State::Running));
        assert_eq!(
            Operation::Pause.transition(State::Running),
            Ok(State::Paused)
        );
        assert_eq!(
            Operation::Resume.transition(State::Paused),
            Ok(State::Running)
        );
        assert_eq!(
            Operation::Commit.transition(State::Running),
            Ok(State::Committing)
        );
        assert_eq!(
            Operation::Reverse.transition(State::Committed),
            Ok(State::Reversing)
        );
    }

    #[test]
    fn every_other_pair_is_refused_naming_the_current_state() {
        let states = [
            State::Initializing,
            State::Idle,
            State::Running,
            State::Paused,
            State::Committing,
            State::Committed,
            State::Reversing,
        ];
        let operations = [
            Operation::Start,
            Operation::Pause,
            Operation::Resume,
            Operation::Commit,
            Operation::Reverse,
        ];
        for operation in operations {
            for state in states
                .into_iter()
                .filter(|s| *s != operation.required_state())
            {
                let error = operation.transition(state).expect_err("must be refused");
                let message = error.to_string();
                assert!(
                    message.contains(&format!("current state is {state}")),
                    "{message}"
                );
                assert!(message.starts_with(operation.endpoint()), "{message}");
            }
        }
    }

    #[test]
    fn only_the_engine_ends_a_commit_or_a_reverse() {
        assert_eq!(
            State::Committing.follow_engine(Some(Phase::Committed)),
            State::Committed
        );
        assert_eq!(
            State::Reversing.follow_engine(Some(Phase::SteadyState)),
            State::Running
        );
        for phase in [
            None,
            Some(Phase::SteadyState),
            Some(Phase::Committing),
            Some(Phase::Failed),
        ] {
            assert_eq!(State::Committing.follow_engine(phase), State::Committing);
        }
        for phase in [
            Some(Phase::Committed),
            Some(Phase::Reversing),
            Some(Phase::CopyDrain),
        ] {
            assert_eq!(State::Reversing.follow_engine(phase), State::Reversing);
        }
        // Outside a commit or reverse the phase never moves the state.
        assert_eq!(
            State::Running.follow_engine(Some(Phase::Committed)),
            State::Running
        );
        assert_eq!(
            State::Committed.follow_engine(Some(Phase::SteadyState)),
            State::Committed
        );
    }

    #[test]
    fn only_cutover_steps_resume_without_start() {
        for phase in [
            PersistedPhase::Planning,
            PersistedPhase::Copying,
            PersistedPhase::Applying,
        ] {
            assert_eq!(State::resumed_from(phase), None);
        }
        assert_eq!(
            State::resumed_from(PersistedPhase::Committing),
            Some(State::Committing)
        );
        assert_eq!(
            State::resumed_from(PersistedPhase::Committed),
            Some(State::Committed)
        );
        assert_eq!(
            State::resumed_from(PersistedPhase::Reversing),
            Some(State::Reversing)
        );
    }

    #[test]
    fn names_are_mongosyncs() {
        assert_eq!(State::Initializing.as_str(), "INITIALIZING");
        assert_eq!(State::Paused.to_string(), "PAUSED");
    }
}
