//! Process-wide engine counters for `/metrics`: change events applied by type, the
//! applier's batch sizes and latencies, and retried calls. Lock-free (atomics only) and
//! global, because every part of a process adds to them (one migration in `c2c run`,
//! several stream shards in a worker); the coordinator's `metrics` module renders them.
//!
//! The migration's own counters (copied documents, lag, …) stay in [`crate::progress`],
//! which `/progress` reads too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cea::EventKind;

/// The engine's counters; there is one, [`ENGINE`].
pub struct EngineMetrics {
    /// Change events applied to the destination, by [`EventType`].
    applied: [AtomicU64; EventType::ALL.len()],
    /// Events (high-water marks excluded) per applied batch.
    pub apply_batch_events: Histogram<{ APPLY_BATCH_EVENTS.len() }>,
    /// Wall time of one applied batch, in microseconds.
    pub apply_batch_micros: Histogram<{ APPLY_BATCH_MICROS.len() }>,
    /// Calls repeated by `retry::retry`, by what failed.
    retries: [AtomicU64; RetryKind::ALL.len()],
    /// Calls `retry::retry` gave up on after its last attempt failed transiently.
    retries_exhausted: [AtomicU64; RetryKind::ALL.len()],
}

/// Everything this process's engine did since it started.
pub static ENGINE: EngineMetrics = EngineMetrics::new();

/// Upper bounds of the batch-size buckets (events; the applier's batch is ≤ 5000).
pub const APPLY_BATCH_EVENTS: [u64; 8] = [1, 10, 50, 100, 500, 1000, 2500, 5000];
/// Upper bounds of the batch-latency buckets, in microseconds (1 ms … 30 s).
pub const APPLY_BATCH_MICROS: [u64; 11] = [
    1_000, 5_000, 10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 10_000_000,
    30_000_000,
];

/// A change event's type, as mongod names it (`operationType`): a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Insert,
    Update,
    Replace,
    Delete,
    Create,
    Drop,
    Rename,
    DropDatabase,
    CreateIndexes,
    DropIndexes,
    Modify,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        EventType::Insert,
        EventType::Update,
        EventType::Replace,
        EventType::Delete,
        EventType::Create,
        EventType::Drop,
        EventType::Rename,
        EventType::DropDatabase,
        EventType::CreateIndexes,
        EventType::DropIndexes,
        EventType::Modify,
    ];

    /// None for high-water marks (not source changes).
    pub fn of(kind: &EventKind) -> Option<EventType> {
        Some(match kind {
            EventKind::Insert { .. } => EventType::Insert,
            EventKind::Update { .. } => EventType::Update,
            EventKind::Replace { .. } => EventType::Replace,
            EventKind::Delete { .. } => EventType::Delete,
            EventKind::Create { .. } => EventType::Create,
            EventKind::Drop { .. } => EventType::Drop,
            EventKind::Rename { .. } => EventType::Rename,
            EventKind::DropDatabase { .. } => EventType::DropDatabase,
            EventKind::CreateIndexes { .. } => EventType::CreateIndexes,
            EventKind::DropIndexes { .. } => EventType::DropIndexes,
            EventKind::Modify { .. } => EventType::Modify,
            EventKind::HighWaterMark => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Insert => "insert",
            EventType::Update => "update",
            EventType::Replace => "replace",
            EventType::Delete => "delete",
            EventType::Create => "create",
            EventType::Drop => "drop",
            EventType::Rename => "rename",
            EventType::DropDatabase => "dropDatabase",
            EventType::CreateIndexes => "createIndexes",
            EventType::DropIndexes => "dropIndexes",
            EventType::Modify => "modify",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What made `retry::retry` repeat a call: a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// Connection errors, pool clears, server selection.
    Network,
    /// A server error mongod labels or codes as retryable.
    Server,
    /// The call exceeded `retry::CALL_TIMEOUT`.
    Timeout,
}

impl RetryKind {
    pub const ALL: [RetryKind; 3] = [RetryKind::Network, RetryKind::Server, RetryKind::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryKind::Network => "network",
            RetryKind::Server => "server",
            RetryKind::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Per-type counts of one batch, added to [`ENGINE`] once the batch is applied (a batch
/// abandoned half-way is applied again later and counted then).
#[derive(Debug, Default)]
pub struct AppliedCounts([u64; EventType::ALL.len()]);

impl AppliedCounts {
    pub fn add(&mut self, kind: &EventKind) {
        if let Some(event_type) = EventType::of(kind) {
            self.0[event_type.index()] += 1;
        }
    }
}

impl EngineMetrics {
    const fn new() -> EngineMetrics {
        EngineMetrics {
            applied: [const { AtomicU64::new(0) }; EventType::ALL.len()],
            apply_batch_events: Histogram::new(APPLY_BATCH_EVENTS),
            apply_batch_micros: Histogram::new(APPLY_BATCH_MICROS),
            retries: [const { AtomicU64::new(0) }; RetryKind::ALL.len()],
            retries_exhausted: [const { AtomicU64::new(0) }; RetryKind::ALL.len()],
        }
    }

    /// Records one applied batch: its events by type, its size and how long it took.
    pub fn batch_applied(&self, counts: &AppliedCounts, took: Duration) {
        let events: u64 = counts.0.iter().sum();
        if events == 0 {
            // Only high-water marks: no work for the destination.
            return;
        }
        for (counter, added) in self.applied.iter().zip(counts.0) {
            if added > 0 {
                counter.fetch_add(added, Ordering::Relaxed);
            }
        }
        self.apply_batch_events.observe(events);
        self.apply_batch_micros
            .observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn applied(&self, event_type: EventType) -> u64 {
        self.applied[event_type.index()].load(Ordering::Relaxed)
    }

    pub fn retried(&self, kind: RetryKind) {
        self.retries[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retries(&self, kind: RetryKind) -> u64 {
        self.retries[kind.index()].load(Ordering::Relaxed)
    }

    pub fn gave_up(&self, kind: RetryKind) {
        self.retries_exhausted[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retries_exhausted(&self, kind: RetryKind) -> u64 {
        self.retries_exhausted[kind.index()].load(Ordering::Relaxed)
    }
}

/// A histogram over integer observations with fixed upper bounds, lock-free. Readers
/// may see a count and a sum from slightly different moments, as with any scrape.
pub struct Histogram<const N: usize> {
    bounds: [u64; N],
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; N],
    above: AtomicU64,
    sum: AtomicU64,
}

/// One read of a [`Histogram`], cumulative as Prometheus exposes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations ≤ bound), bounds increasing.
    pub buckets: Vec<(u64, u64)>,
    pub count: u64,
    pub sum: u64,
}

impl<const N: usize> Histogram<N> {
    pub const fn new(bounds: [u64; N]) -> Histogram<N> {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            above: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        let slot = self.bounds.iter().position(|bound| value <= *bound);
        match slot {
            Some(index) => self.buckets[index].fetch_add(1, Ordering::Relaxed),
            None => self.above.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            count: cumulative + self.above.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::new([1, 10, 100]);
        for value in [0, 1, 5, 10, 11, 1000] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(1, 2), (10, 4), (100, 5)]);
        assert_eq!(snapshot.count, 6);
        assert_eq!(snapshot.sum, 1027);
    }

    #[test]
    fn event_types_index_their_own_slot() {
        for (index, event_type) in EventType::ALL.iter().enumerate() {
            assert_eq!(event_type.index(), index);
        }
        for (index, kind) in RetryKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), index);
        }
        assert_eq!(EventType::of(&EventKind::HighWaterMark), None);
    }

    #[test]
    fn a_batch_of_marks_only_is_not_observed() {
        let metrics = EngineMetrics::new();
        let mut counts = AppliedCounts::default();
        counts.add(&EventKind::HighWaterMark);
        metrics.batch_applied(&counts, Duration::from_millis(3));
        assert_eq!(metrics.apply_batch_events.snapshot().count, 0);
        counts.add(&EventKind::DropDatabase { db: "x".into() });
        metrics.batch_applied(&counts, Duration::from_millis(3));
        assert_eq!(metrics.applied(EventType::DropDatabase), 1);
        assert_eq!(metrics.apply_batch_micros.snapshot().buckets[1], (5_000, 1));
    }
}
