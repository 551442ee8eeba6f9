//! One error type for the crate, classified at the boundary into retryable and terminal.

use std::time::Duration;

use etcd_client::Error as EtcdError;

/// Everything that can go wrong in membership. Callers mostly need [`Self::is_retryable`]:
/// a retryable error may succeed if the same call is repeated; a terminal one will not,
/// and for leadership/lease errors the right reaction is to stop the dependent work.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// etcd answered with an error or the transport failed.
    #[error("etcd {op} failed: {source}")]
    Etcd {
        /// the operation, for logs (`"txn"`, `"lease grant"`, …)
        op: &'static str,
        /// the etcd client's error
        #[source]
        source: EtcdError,
    },
    /// etcd did not answer in time; the outcome of a write is unknown.
    #[error("etcd {op} timed out after {after:?}")]
    Timeout {
        /// the operation that timed out
        op: &'static str,
        /// how long we waited
        after: Duration,
    },
    /// The caller needs leadership and does not have it.
    #[error("not the leader")]
    NotLeader,
    /// A fenced write's compare failed: another candidate has been elected since `term`,
    /// so this process must stop acting as leader.
    #[error("write fenced: leadership term {term} is no longer current")]
    Fenced {
        /// the term the write was fenced on
        term: u64,
    },
    /// The lease behind a leadership or registration expired or was revoked.
    #[error("lease {lease_id:x} lost")]
    LeaseLost {
        /// the etcd lease id
        lease_id: i64,
    },
    /// A migration or worker id that cannot be used in an etcd key.
    #[error("invalid id: {0}")]
    InvalidId(String),
    /// Another live process holds this worker id's registration.
    #[error("worker id {id} is already registered by a live process (lease {lease_id:x})")]
    AlreadyRegistered {
        /// the worker id
        id: String,
        /// the lease of the registration that holds the id
        lease_id: i64,
    },
    /// A stored value is not the JSON we expect.
    #[error("cannot decode value at {key}: {source}")]
    Decode {
        /// the etcd key
        key: String,
        /// the decode error
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be turned into JSON.
    #[error("cannot encode value for {key}: {source}")]
    Encode {
        /// the etcd key
        key: String,
        /// the encode error
        #[source]
        source: serde_json::Error,
    },
    /// The component was shut down (or the operation cancelled) while the call was pending.
    #[error("closed")]
    Closed,
}

impl MembershipError {
    pub(crate) fn etcd(op: &'static str) -> impl FnOnce(EtcdError) -> Self {
        move |source| Self::Etcd { op, source }
    }

    /// Whether repeating the same call may succeed. Fencing, lost leases and bad input are
    /// terminal: retrying cannot change their outcome, and a fenced or lease-less process
    /// must stop rather than keep trying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Etcd { source, .. } => etcd_error_is_retryable(source),
            Self::Timeout { .. } => true,
            Self::NotLeader
            | Self::Fenced { .. }
            | Self::LeaseLost { .. }
            | Self::InvalidId(_)
            | Self::AlreadyRegistered { .. }
            | Self::Decode { .. }
            | Self::Encode { .. }
            | Self::Closed => false,
        }
    }
}

fn etcd_error_is_retryable(error: &EtcdError) -> bool {
    use tonic::Code;
    match error {
        EtcdError::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::ResourceExhausted
                | Code::Cancelled
                // broken HTTP/2 connections surface as Unknown/Internal
                | Code::Unknown
                | Code::Internal
        ),
        EtcdError::IoError(_)
        | EtcdError::TransportError(_)
        | EtcdError::WatchError(_)
        | EtcdError::LeaseKeepAliveError(_)
        | EtcdError::ElectError(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(code: tonic::Code) -> MembershipError {
        MembershipError::Etcd {
            op: "test",
            source: EtcdError::GRpcStatus(tonic::Status::new(code, "test")),
        }
    }

    #[test]
    fn classifies_errors() {
        assert!(grpc(tonic::Code::Unavailable).is_retryable());
        assert!(grpc(tonic::Code::DeadlineExceeded).is_retryable());
        assert!(!grpc(tonic::Code::InvalidArgument).is_retryable());
        assert!(!grpc(tonic::Code::NotFound).is_retryable());
        assert!(!grpc(tonic::Code::PermissionDenied).is_retryable());
        let timeout = MembershipError::Timeout {
            op: "get",
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_retryable());
        assert_eq!(timeout.to_string(), "etcd get timed out after 1s");
        assert!(!MembershipError::Fenced { term: 3 }.is_retryable());
        assert!(!MembershipError::LeaseLost { lease_id: 1 }.is_retryable());
        assert!(!MembershipError::Closed.is_retryable());
    }
}
