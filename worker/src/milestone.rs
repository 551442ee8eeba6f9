//! The parts of a worker's report that the leader acts on: its share copied, its shards
//! steady, a failure, a lost lease. A change in any of them is sent at once
//! instead of at the next report interval, and wakes the leader's control loop, so a
//! phase change (copy over → applying → steady state) does not wait for up to two
//! report intervals and a reconcile interval before the migration shows it.
//!
//! Counters (bytes, events, lag) are not milestones: they change all the time and are
//! sent at the interval the leader asked for. Neither is what follows the leader's own
//! `Assign` (a new fence, more or fewer partitions): waking the leader on those would
//! wake it again after every plan change it makes.

use std::time::{Duration, Instant};

use c2c_api::v1::WorkerReport;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    phase: String,
    copy_done: bool,
    steady: bool,
    owned_shards: Vec<u32>,
    failure: Option<String>,
    lease_held: bool,
}

impl Milestone {
    pub fn of(report: &WorkerReport) -> Milestone {
        Milestone {
            phase: report.phase.clone(),
            copy_done: report.copy_done,
            steady: report.steady,
            owned_shards: report.owned_shards.clone(),
            failure: report.failure.clone(),
            lease_held: report.lease_held,
        }
    }
}

/// The last report a progress stream sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub milestone: Milestone,
    pub at: Instant,
}

/// Whether a stream that sent `last` (none yet: the first report) sends `now_report`
/// at `now`: the first one, one whose milestone changed, or one due by `interval`.
pub fn due(last: Option<&Sent>, milestone: &Milestone, now: Instant, interval: Duration) -> bool {
    match last {
        None => true,
        Some(sent) => &sent.milestone != milestone || now.duration_since(sent.at) >= interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2c_api::v1::Fence;

    fn report() -> WorkerReport {
        WorkerReport {
            worker_id: "w1".into(),
            fence: Some(Fence { term: 3, epoch: 7 }),
            phase: "COLLECTION COPY".into(),
            partitions_assigned: 12,
            lease_held: true,
            ..WorkerReport::default()
        }
    }

    #[test]
    fn the_first_report_is_sent_and_an_unchanged_one_waits_for_the_interval() {
        let interval = Duration::from_millis(500);
        let start = Instant::now();
        let milestone = Milestone::of(&report());
        assert!(due(None, &milestone, start, interval));
        let sent = Sent {
            milestone: milestone.clone(),
            at: start,
        };
        assert!(!due(
            Some(&sent),
            &milestone,
            start + Duration::from_millis(100),
            interval
        ));
        assert!(due(Some(&sent), &milestone, start + interval, interval));
    }

    #[test]
    fn counters_and_assignments_are_not_milestones_but_phase_changes_are() {
        let interval = Duration::from_secs(1);
        let start = Instant::now();
        let base = report();
        let sent = Sent {
            milestone: Milestone::of(&base),
            at: start,
        };
        let soon = start + Duration::from_millis(100);
        let mut counters = base.clone();
        counters.copied_bytes = 1 << 20;
        counters.events_applied = 5000;
        counters.partitions_done = 3;
        counters.lag_seconds = Some(4);
        assert!(!due(Some(&sent), &Milestone::of(&counters), soon, interval));
        let mut assigned = base.clone();
        assigned.fence = Some(Fence { term: 3, epoch: 8 });
        assigned.partitions_assigned = 20;
        assert!(
            !due(Some(&sent), &Milestone::of(&assigned), soon, interval),
            "the answer to the leader's own Assign must not wake it"
        );
        type Change = (&'static str, fn(&mut WorkerReport));
        let changes: Vec<Change> = vec![
            ("copy done", |r| r.copy_done = true),
            ("steady", |r| r.steady = true),
            ("phase", |r| r.phase = "CHANGE EVENT APPLICATION".into()),
            ("shards", |r| r.owned_shards = vec![2]),
            ("failure", |r| r.failure = Some("boom".into())),
            ("lease lost", |r| r.lease_held = false),
        ];
        for (what, change) in changes {
            let mut changed = base.clone();
            change(&mut changed);
            assert!(
                due(Some(&sent), &Milestone::of(&changed), soon, interval),
                "{what} must be sent at once"
            );
        }
    }
}
