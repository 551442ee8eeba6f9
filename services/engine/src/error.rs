//! The engine's errors, split into what a retry can fix and what it cannot.

use std::fmt;

/// Which cluster an operation talked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{side} cluster: {source}")]
    Mongo {
        side: Side,
        #[source]
        source: mongodb::error::Error,
    },
    /// The source has namespaces c2c cannot sync (time-series, …); names them.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Included namespaces already exist on the destination.
    #[error("the destination already has namespaces this migration would write: {0}")]
    DestinationNotEmpty(String),
    /// The source's oplog no longer holds the resume point.
    #[error("the source's oplog no longer holds the change stream's resume point ({0}); the migration must restart from scratch")]
    HistoryLost(String),
    /// `/start` was re-sent after a restart with a different body.
    #[error("the persisted migration was started with different options: {0}")]
    OptionsMismatch(String),
    #[error("metadata in __c2c_internal is unreadable: {0}")]
    Metadata(String),
    #[error("change-event buffer i/o: {0}")]
    Spill(#[from] std::io::Error),
    /// A request the migration cannot honour in its current situation (e.g. `/commit`
    /// before `canCommit`, `/reverse` without `reversible`): nothing was changed.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Fatal(String),
    /// Scale-out: the worker lost its lease (see `gate`); nothing more was written.
    #[error("{0}")]
    Fenced(String),
    #[error("stopped")]
    Cancelled,
}

impl EngineError {
    pub fn source(error: mongodb::error::Error) -> EngineError {
        EngineError::Mongo {
            side: Side::Source,
            source: error,
        }
    }

    pub fn destination(error: mongodb::error::Error) -> EngineError {
        EngineError::Mongo {
            side: Side::Destination,
            source: error,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
