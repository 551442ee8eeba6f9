//! Every timing constant of the crate, derived from two lease TTLs. Change them here only;
//! the README's "Timing" section quotes them.
//!
//! The leader TTL bounds failover: a crashed leader's key disappears at most
//! `LEADER_LEASE_TTL` (+ etcd's 500 ms expiry sweep) after its last keep-alive, and the
//! next candidate leads one keep-alive round trip later — under 3 s in total.

use std::time::Duration;

/// Leader lease TTL, in the unit etcd wants.
pub const LEADER_LEASE_TTL_SECS: i64 = 2;
/// Leader lease TTL.
pub const LEADER_LEASE_TTL: Duration = Duration::from_secs(LEADER_LEASE_TTL_SECS as u64);
/// Keep-alive period for the leader lease: three chances per TTL, so one lost or slow
/// round trip does not cost the leadership.
pub const LEADER_KEEPALIVE_INTERVAL: Duration =
    Duration::from_millis(LEADER_LEASE_TTL_SECS as u64 * 1000 / 3);

/// Worker lease TTL, in the unit etcd wants. Longer than the leader's: losing a worker
/// means moving its partitions, which is more expensive than a leader failover.
pub const WORKER_LEASE_TTL_SECS: i64 = 3;
/// Worker lease TTL.
pub const WORKER_LEASE_TTL: Duration = Duration::from_secs(WORKER_LEASE_TTL_SECS as u64);
/// Keep-alive period for worker leases.
pub const WORKER_KEEPALIVE_INTERVAL: Duration =
    Duration::from_millis(WORKER_LEASE_TTL_SECS as u64 * 1000 / 3);
/// How long registering a worker id waits for an existing registration of the same id to
/// expire, in case it belongs to this worker's previous, dying incarnation: one TTL plus
/// etcd's expiry sweep (500 ms) plus slack.
pub const WORKER_REGISTER_WAIT: Duration =
    Duration::from_millis(WORKER_LEASE_TTL_SECS as u64 * 1000 + 1000);
/// Poll period while waiting for a previous registration to expire.
pub const WORKER_REGISTER_POLL: Duration = Duration::from_millis(200);

/// Upper bound for every unary etcd call. Shorter than the leader TTL so a hung call
/// cannot outlive the lease it is trying to keep.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Upper bound for establishing a TCP connection to an etcd endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How many times [`crate::connect`] probes etcd before giving up: with the backoff
/// below that is about 3 s, enough to ride out etcd starting alongside us.
pub const CONNECT_ATTEMPTS: u32 = 8;
/// HTTP/2 ping period and timeout: detects dead connections under long-lived streams
/// (campaign, watch, keep-alive) that would otherwise hang silently.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// See [`HTTP2_KEEPALIVE_INTERVAL`].
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// First retry delay.
pub const RETRY_BASE: Duration = Duration::from_millis(50);
/// Largest retry delay; small because every retry loop here guards a sub-3-s failover.
pub const RETRY_MAX: Duration = Duration::from_secs(1);
/// Attempts that fail quietly (debug) before retries log warnings.
pub const RETRY_WARN_AFTER: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_are_consistent() {
        assert_eq!(LEADER_KEEPALIVE_INTERVAL, Duration::from_millis(666));
        assert_eq!(WORKER_KEEPALIVE_INTERVAL, Duration::from_secs(1));
        assert!(REQUEST_TIMEOUT < LEADER_LEASE_TTL);
        assert!(WORKER_REGISTER_WAIT > WORKER_LEASE_TTL);
        assert!(RETRY_BASE < RETRY_MAX);
    }
}
