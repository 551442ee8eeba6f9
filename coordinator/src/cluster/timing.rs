//! The leader's timing constants, in one place.

use std::time::Duration;

/// How often a worker reports (`WatchProgress`), and the plane reconciles at least.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(500);
pub const RECONCILE_INTERVAL: Duration = Duration::from_millis(500);
pub const WORKER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One worker RPC; the commit drain has its own, longer bound.
pub const WORKER_RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `/pause` waits for a worker that does not answer to answer or to lose its
/// registration (its lease: 3 s by default) before it fails, and syncing goes on.
pub const PAUSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long commit step 3 waits for the workers before the step fails (it is retried
/// by calling `/commit` again or by the next leader).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
pub const WATCH_RETRY: Duration = Duration::from_millis(500);
/// The longest pause between attempts to reach a registered worker that never answered.
pub const WATCH_RETRY_UNREACHED_MAX: Duration = Duration::from_secs(10);
/// How long the first plan waits for every registered worker to be reached (a worker
/// that cannot be, e.g. without the right certificate, is left out after it).
pub const ADMISSION_GRACE: Duration = Duration::from_secs(5);
/// At most this often the leader reads the partition records to move unstarted
/// partitions to an idle worker (see `plane::ClusterPlane::idle_worker_may_take_work`).
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(2);
