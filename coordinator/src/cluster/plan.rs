//! The plan: which worker copies which partition and which worker owns which stream
//! shard. Pure functions, so every rule is unit-tested without processes.
//!
//! - Stream shards split the databases: `shard_count` is fixed at the first plan (the
//!   live workers then), because the database → shard hash and the shards'
//!   checkpoints depend on it. Databases go to shards largest first onto the lightest.
//! - Partitions go to workers in id order (namespace, then `_id` range), each worker
//!   taking a contiguous run until it holds its fair share of the bytes, so a large
//!   collection's copy is spread over several workers, and the plan is a few runs per
//!   worker however many partitions there are (see `plan_encoding`).
//! - [`Plan::reconcile`] keeps what live workers hold (running work is not moved) and
//!   gives the units of workers that are gone to the lightest survivors; it returns
//!   whether anything changed (then the epoch increases).
//! - A live worker with no unfinished partition (one that joined during the copy, or
//!   finished its share early) takes unstarted partitions from the end of the runs of
//!   the workers holding the most, up to its fair share. A partition with a
//!   checkpoint is never moved: running work stays where it is.
//! - A finished partition stays in the plan until the plan changes for another reason
//!   (a worker lost or a new partition). Every change is persisted in etcd and sent to
//!   every worker, and a copy finishes partitions all the time: pruning each at once
//!   rewrote the whole plan about twice a second, which fills etcd's history on a long
//!   copy, and made a worker's `partitionsDone` of `partitionsAssigned` meaningless.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Stored in etcd in the compact form of [`super::plan_encoding`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "super::plan_encoding::PlanRecord",
    into = "super::plan_encoding::PlanRecord"
)]
pub struct Plan {
    pub epoch: u64,
    pub shard_count: u32,
    /// Database → stream shard (others by hash; see `c2c_engine::filter::ShardSelector`).
    pub databases: BTreeMap<String, u32>,
    /// Stream shard → owning worker.
    pub shard_owners: BTreeMap<u32, String>,
    /// Partition id → copying worker (unfinished partitions only).
    pub partitions: BTreeMap<String, String>,
}

/// One unit of copy work as planning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLoad {
    pub id: String,
    pub bytes: u64,
    pub done: bool,
    /// Has a checkpoint: some worker is copying it (or was). Only partitions without
    /// one are moved between live workers.
    pub started: bool,
}

impl Plan {
    /// The first plan over `workers` (sorted ids, at least one).
    pub fn first(
        workers: &[String],
        database_bytes: &BTreeMap<String, u64>,
        partitions: &[PartitionLoad],
    ) -> Plan {
        let shard_count = workers.len().max(1) as u32;
        let mut shard_load = vec![0u64; shard_count as usize];
        let mut by_size: Vec<(&String, &u64)> = database_bytes.iter().collect();
        by_size.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut databases = BTreeMap::new();
        for (database, bytes) in by_size {
            let lightest = (0..shard_count as usize)
                .min_by_key(|i| (shard_load[*i], *i))
                .unwrap_or(0);
            shard_load[lightest] += bytes;
            databases.insert(database.clone(), lightest as u32);
        }
        let shard_owners = (0..shard_count)
            .map(|shard| (shard, workers[shard as usize % workers.len()].clone()))
            .collect();
        let mut plan = Plan {
            epoch: 1,
            shard_count,
            databases,
            shard_owners,
            partitions: BTreeMap::new(),
        };
        plan.spread_partitions(workers, partitions);
        plan
    }

    /// Bytes of unfinished partitions per live worker.
    fn copy_load(&self, workers: &[String], sizes: &BTreeMap<&str, u64>) -> BTreeMap<String, u64> {
        let mut load: BTreeMap<String, u64> = workers.iter().map(|w| (w.clone(), 0)).collect();
        for (partition, worker) in &self.partitions {
            if let Some(slot) = load.get_mut(worker) {
                *slot += sizes.get(partition.as_str()).copied().unwrap_or(0);
            }
        }
        load
    }

    /// Gives every unfinished partition without a live worker to a live one: in id
    /// order, the lightest worker takes partitions until it holds its fair share of
    /// all unfinished bytes, then the next lightest.
    fn spread_partitions(&mut self, workers: &[String], partitions: &[PartitionLoad]) {
        if workers.is_empty() {
            return;
        }
        let sizes: BTreeMap<&str, u64> = partitions
            .iter()
            .map(|p| (p.id.as_str(), p.bytes))
            .collect();
        let mut load = self.copy_load(workers, &sizes);
        let live: BTreeSet<&String> = workers.iter().collect();
        let mut orphans: Vec<&PartitionLoad> = partitions
            .iter()
            .filter(|p| !p.done)
            .filter(|p| self.partitions.get(&p.id).is_none_or(|w| !live.contains(w)))
            .collect();
        orphans.sort_by(|a, b| a.id.cmp(&b.id));
        let total: u64 = load.values().sum::<u64>() + orphans.iter().map(|p| p.bytes).sum::<u64>();
        let fair_share = total.div_ceil(workers.len() as u64);
        let lightest = |load: &BTreeMap<String, u64>| {
            load.iter()
                .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
                .map(|(worker, _)| worker.clone())
        };
        let mut taking: Option<String> = None;
        for partition in orphans {
            let full = taking.as_ref().is_none_or(|w| load[w] >= fair_share);
            if full {
                taking = lightest(&load);
            }
            let Some(worker) = taking.clone() else {
                return;
            };
            *load.entry(worker.clone()).or_default() += partition.bytes;
            self.partitions.insert(partition.id.clone(), worker);
        }
    }

    /// Moves the units of workers not in `workers` to live ones and, when that or a new
    /// partition changes the plan, forgets finished partitions. True when the plan
    /// changed (its epoch is then increased).
    pub fn reconcile(&mut self, workers: &[String], partitions: &[PartitionLoad]) -> bool {
        if workers.is_empty() {
            return false;
        }
        let before = self.clone();
        let done: BTreeSet<&str> = partitions
            .iter()
            .filter(|p| p.done)
            .map(|p| p.id.as_str())
            .collect();
        let live: BTreeSet<&String> = workers.iter().collect();
        // A lost worker that had finished all its partitions still leaves the plan.
        let lost_held_finished = self
            .partitions
            .iter()
            .any(|(id, worker)| done.contains(id.as_str()) && !live.contains(worker));
        self.partitions.retain(|id, _| !done.contains(id.as_str()));
        let pruned_only = self.clone();
        self.spread_partitions(workers, partitions);
        self.rebalance(workers, partitions);
        for shard in 0..self.shard_count {
            let owner_live = self
                .shard_owners
                .get(&shard)
                .is_some_and(|w| live.contains(w));
            if owner_live {
                continue;
            }
            let mut owned: BTreeMap<&String, usize> = workers.iter().map(|w| (w, 0)).collect();
            for owner in self.shard_owners.values() {
                if let Some(count) = owned.get_mut(owner) {
                    *count += 1;
                }
            }
            let lightest = owned
                .iter()
                .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
                .map(|(worker, _)| (*worker).clone());
            if let Some(worker) = lightest {
                self.shard_owners.insert(shard, worker);
            }
        }
        if *self == pruned_only && !lost_held_finished {
            // Only finished partitions would leave: not worth a new plan.
            *self = before;
            return false;
        }
        let changed = *self != before;
        if changed {
            self.epoch = before.epoch + 1;
        }
        changed
    }

    /// Gives each live worker without unfinished partitions unstarted ones from the
    /// workers holding the most, up to its fair share of the unfinished bytes.
    fn rebalance(&mut self, workers: &[String], partitions: &[PartitionLoad]) {
        let unfinished: BTreeMap<&str, &PartitionLoad> = partitions
            .iter()
            .filter(|p| !p.done)
            .map(|p| (p.id.as_str(), p))
            .collect();
        let sizes: BTreeMap<&str, u64> = unfinished.iter().map(|(id, p)| (*id, p.bytes)).collect();
        let mut load = self.copy_load(workers, &sizes);
        let idle: Vec<String> = load
            .iter()
            .filter(|(_, bytes)| **bytes == 0)
            .map(|(worker, _)| worker.clone())
            .collect();
        if idle.is_empty() || idle.len() == workers.len() {
            return;
        }
        let fair_share = load.values().sum::<u64>() / workers.len() as u64;
        for receiver in idle {
            loop {
                let donor = load
                    .iter()
                    .filter(|(worker, _)| **worker != receiver)
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(worker, bytes)| (worker.clone(), *bytes));
                let Some((donor, donor_load)) = donor else {
                    break;
                };
                // The donor's last unstarted partition, so both keep contiguous runs.
                let movable = self
                    .partitions
                    .iter()
                    .rev()
                    .filter(|(_, worker)| **worker == donor)
                    .find_map(|(id, _)| unfinished.get(id.as_str()).filter(|p| !p.started))
                    .copied();
                let Some(partition) = movable else {
                    break;
                };
                // Stop at the fair share, and before a move would only turn the
                // imbalance around.
                if load[&receiver] >= fair_share
                    || donor_load.saturating_sub(partition.bytes)
                        < load[&receiver] + partition.bytes
                {
                    break;
                }
                self.partitions
                    .insert(partition.id.clone(), receiver.clone());
                *load.entry(donor).or_default() -= partition.bytes;
                *load.entry(receiver.clone()).or_default() += partition.bytes;
            }
        }
    }

    /// Whether a partition or a stream shard is held by a worker not in `workers`: only
    /// then can [`Plan::reconcile`] change a plan whose partitions are all planned.
    pub fn has_units_outside(&self, workers: &[String]) -> bool {
        let live: BTreeSet<&String> = workers.iter().collect();
        self.partitions
            .values()
            .chain(self.shard_owners.values())
            .any(|worker| !live.contains(worker))
    }

    /// Stream shards `worker` owns.
    pub fn shards_of(&self, worker: &str) -> BTreeSet<u32> {
        self.shard_owners
            .iter()
            .filter(|(_, owner)| owner.as_str() == worker)
            .map(|(shard, _)| *shard)
            .collect()
    }

    /// Partitions `worker` copies.
    pub fn partitions_of(&self, worker: &str) -> BTreeSet<String> {
        self.partitions
            .iter()
            .filter(|(_, owner)| owner.as_str() == worker)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every worker the plan gives anything to.
    pub fn workers(&self) -> BTreeSet<String> {
        self.shard_owners
            .values()
            .chain(self.partitions.values())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn partition(id: &str, bytes: u64, done: bool) -> PartitionLoad {
        PartitionLoad {
            id: id.into(),
            bytes,
            done,
            started: done,
        }
    }

    /// `count` unstarted partitions of 10 bytes of one collection `x#…`.
    fn collection_x(count: usize) -> (BTreeMap<String, u64>, Vec<PartitionLoad>) {
        let parts = (0..count)
            .map(|i| partition(&format!("x#{i:06}"), 10, false))
            .collect();
        (BTreeMap::from([("x".to_string(), 10)]), parts)
    }

    #[test]
    fn a_worker_that_joins_takes_unstarted_partitions_and_started_ones_stay() {
        let (databases, mut parts) = collection_x(8);
        let mut plan = Plan::first(&workers(&["w1", "w2"]), &databases, &parts);
        assert_eq!(plan.partitions_of("w1").len(), 4, "{plan:?}");
        // w1 and w2 each started their first two partitions; w1 finished one.
        for i in [0, 1, 4, 5] {
            parts[i].started = true;
        }
        parts[0].done = true;
        assert!(plan.reconcile(&workers(&["w1", "w2", "w3"]), &parts));
        // 7 unfinished partitions, 70 bytes: a fair share is 23. w3 takes the last
        // unstarted partition of w2 (40 bytes), then of w1 (30).
        let w3 = plan.partitions_of("w3");
        assert_eq!(
            w3,
            BTreeSet::from(["x#000003".to_string(), "x#000007".to_string()]),
            "{plan:?}"
        );
        for id in &w3 {
            let index: usize = id[2..].parse().unwrap();
            assert!(!parts[index].started, "a started partition moved: {id}");
        }
        let held = |w: &str| {
            plan.partitions_of(w)
                .iter()
                .filter(|id| !parts[id[2..].parse::<usize>().unwrap()].done)
                .count()
        };
        assert!(held("w1") >= 2 && held("w2") >= 2, "{plan:?}");
        assert_eq!(held("w1") + held("w2") + held("w3"), 7);
        // Nothing more to move: the same view again changes nothing.
        assert!(!plan.reconcile(&workers(&["w1", "w2", "w3"]), &parts));
    }

    #[test]
    fn only_started_partitions_left_means_nothing_moves() {
        let (databases, mut parts) = collection_x(4);
        let mut plan = Plan::first(&workers(&["w1"]), &databases, &parts);
        for part in &mut parts {
            part.started = true;
        }
        assert!(!plan.reconcile(&workers(&["w1", "w2"]), &parts));
        assert!(plan.partitions_of("w2").is_empty());
    }

    #[test]
    fn first_plan_spreads_databases_and_partitions_by_size() {
        let databases = BTreeMap::from([
            ("big".to_string(), 100),
            ("a".to_string(), 40),
            ("b".to_string(), 50),
        ]);
        let parts = vec![
            partition("big#0", 50, false),
            partition("big#1", 50, false),
            partition("a#0", 40, false),
            partition("b#0", 50, true),
        ];
        let plan = Plan::first(&workers(&["w1", "w2"]), &databases, &parts);
        assert_eq!(plan.shard_count, 2);
        // big alone on one shard; a and b together on the other.
        assert_ne!(plan.databases["big"], plan.databases["a"]);
        assert_eq!(plan.databases["a"], plan.databases["b"]);
        // The large collection's two partitions are copied by different workers.
        assert_ne!(plan.partitions["big#0"], plan.partitions["big#1"]);
        assert!(
            !plan.partitions.contains_key("b#0"),
            "finished partitions are not assigned"
        );
        assert_eq!(plan.shards_of("w1").len() + plan.shards_of("w2").len(), 2);
    }

    #[test]
    fn a_lost_worker_units_move_to_survivors_and_the_rest_stays() {
        let databases = BTreeMap::from([
            ("x".to_string(), 10),
            ("y".to_string(), 10),
            ("z".to_string(), 10),
        ]);
        let parts: Vec<_> = (0..6)
            .map(|i| partition(&format!("x#{i}"), 10, false))
            .collect();
        let mut plan = Plan::first(&workers(&["w1", "w2", "w3"]), &databases, &parts);
        let kept_w1 = plan.partitions_of("w1");
        assert!(
            !plan.reconcile(&workers(&["w1", "w2", "w3"]), &parts),
            "nothing changes"
        );
        assert_eq!(plan.epoch, 1);
        assert!(plan.reconcile(&workers(&["w1", "w2"]), &parts));
        assert_eq!(plan.epoch, 2);
        assert!(plan.partitions_of("w3").is_empty());
        assert!(plan.shards_of("w3").is_empty());
        assert!(
            plan.partitions_of("w1").is_superset(&kept_w1),
            "running work is not moved"
        );
        assert_eq!(plan.partitions.len(), 6);
        assert_eq!(plan.shards_of("w1").len() + plan.shards_of("w2").len(), 3);
    }

    #[test]
    fn finished_partitions_stay_until_the_plan_changes_and_no_workers_changes_nothing() {
        let parts = vec![partition("p#0", 1, false), partition("p#1", 1, false)];
        let mut plan = Plan::first(&workers(&["w1", "w2"]), &BTreeMap::new(), &parts);
        assert!(!plan.reconcile(&[], &parts));
        let first = plan.clone();
        let w1_part = plan.partitions_of("w1").into_iter().next().unwrap();
        let w2_part = plan.partitions_of("w2").into_iter().next().unwrap();
        let finished = [partition(&w1_part, 1, true), partition(&w2_part, 1, false)];
        assert!(
            !plan.reconcile(&workers(&["w1", "w2"]), &finished),
            "a finished partition alone is no new plan"
        );
        assert_eq!(plan, first);
        // w2 is lost: its partition moves to w1, and w1's finished one leaves the plan.
        assert!(plan.reconcile(&workers(&["w1"]), &finished));
        assert_eq!(plan.epoch, 2);
        assert_eq!(plan.partitions_of("w1"), BTreeSet::from([w2_part.clone()]));
        assert!(!plan.has_units_outside(&workers(&["w1"])));
        assert!(plan.has_units_outside(&workers(&["w2"])));
        // A partition the plan does not know yet is a change.
        let mut grown = finished.to_vec();
        grown.push(partition("q#0", 1, false));
        assert!(plan.reconcile(&workers(&["w1"]), &grown));
        assert_eq!(
            plan.partitions_of("w1"),
            BTreeSet::from([w2_part, "q#0".into()])
        );
    }

    #[test]
    fn a_lost_worker_with_only_finished_partitions_leaves_the_plan() {
        let databases = BTreeMap::from([("x".to_string(), 10)]);
        let parts = vec![partition("x#0", 10, false), partition("x#1", 10, false)];
        // w2 joined after the first plan (which fixed one shard, w1's) and took x#1.
        let mut plan = Plan::first(&workers(&["w1"]), &databases, &parts);
        plan.partitions.insert("x#1".into(), "w2".into());
        let finished: Vec<_> = parts
            .iter()
            .map(|p| partition(&p.id, p.bytes, true))
            .collect();
        assert!(plan.reconcile(&workers(&["w1"]), &finished));
        assert!(!plan.workers().contains("w2"), "{plan:?}");
        assert!(!plan.has_units_outside(&workers(&["w1"])));
    }
}
