//! mongosync's migration states and which API call moves between them (spec §5.1).
//!
//! `INITIALIZING → IDLE → RUNNING ⇄ PAUSED` is reachable today; `COMMITTING`,
//! `COMMITTED` and `REVERSING` exist so the table is complete, but `/commit` and
//! `/reverse` are refused until the cutover issue lands.

use std::fmt;

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
        (Operation::Pause | Operation::Resume, State::Idle) => {
            " (no migration has been started; send /start first)"
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
    fn names_are_mongosyncs() {
        assert_eq!(State::Initializing.as_str(), "INITIALIZING");
        assert_eq!(State::Paused.to_string(), "PAUSED");
    }
}
