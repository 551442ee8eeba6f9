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
//! - Stream shards follow the workers in two steps, so no shard is ever applied by two
//!   workers at once ([`Plan::balance_shards`]): when a live worker owns none while
//!   another owns two or more, one of the latter's shards is *released* (owned by
//!   nobody; `releasing` names the old owner); once the old owner acknowledged the plan
//!   that took it away (its applier stopped at a checkpoint) or is gone (its lease
//!   expired, so it stopped writing), the shard goes to the live worker owning the
//!   fewest, which continues from the shard's checkpoint. One shard moves at a time.
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
    /// Stream shards being moved: owned by nobody until the worker named (the old
    /// owner) confirmed it stopped them, or is gone.
    pub releasing: BTreeMap<u32, String>,
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
            releasing: BTreeMap::new(),
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
    /// all unfinished bytes, then the next lightest. A worker whose room left is under
    /// half the next partition stops there: with partitions about a fair share each
    /// (small collections, one partition apiece) it would otherwise take two while
    /// another got none.
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
            let full = taking.as_ref().is_none_or(|w| {
                load[w] >= fair_share || fair_share - load[w] < partition.bytes.div_ceil(2)
            });
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
            // A shard being released waits for its old owner, unless that one is gone.
            let released_by_live = self.releasing.get(&shard).is_some_and(|w| live.contains(w));
            if owner_live || released_by_live {
                continue;
            }
            self.releasing.remove(&shard);
            if let Some(worker) = self.fewest_shards(workers) {
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

    /// The live worker owning the fewest stream shards (ties: the smallest id).
    fn fewest_shards(&self, workers: &[String]) -> Option<String> {
        let mut owned: BTreeMap<&String, usize> = workers.iter().map(|w| (w, 0)).collect();
        for owner in self.shard_owners.values() {
            if let Some(count) = owned.get_mut(owner) {
                *count += 1;
            }
        }
        owned
            .iter()
            .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
            .map(|(worker, _)| (*worker).clone())
    }

    /// One step of moving stream shards to live workers that own none (see the module
    /// docs): a released shard whose old owner `stopped` (acknowledged the current plan)
    /// or is gone goes to the live worker owning the fewest; with no move under way, a
    /// worker owning two or more releases its highest shard while some live worker owns
    /// none. True when the plan changed (the caller increases the epoch).
    pub fn balance_shards(&mut self, workers: &[String], stopped: impl Fn(&str) -> bool) -> bool {
        if workers.is_empty() || self.shard_count == 0 {
            return false;
        }
        let live: BTreeSet<&String> = workers.iter().collect();
        let settled: Vec<u32> = self
            .releasing
            .iter()
            .filter(|(_, owner)| !live.contains(owner) || stopped(owner))
            .map(|(shard, _)| *shard)
            .collect();
        if !settled.is_empty() {
            for shard in settled {
                self.releasing.remove(&shard);
                if let Some(worker) = self.fewest_shards(workers) {
                    self.shard_owners.insert(shard, worker);
                }
            }
            return true;
        }
        if !self.releasing.is_empty() {
            return false;
        }
        let mut owned: BTreeMap<&String, Vec<u32>> =
            workers.iter().map(|w| (w, Vec::new())).collect();
        for (shard, owner) in &self.shard_owners {
            if let Some(shards) = owned.get_mut(owner) {
                shards.push(*shard);
            }
        }
        if !owned.values().any(Vec::is_empty) {
            return false;
        }
        let donor = owned
            .iter()
            .filter(|(_, shards)| shards.len() >= 2)
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
            .map(|(worker, shards)| ((*worker).clone(), shards.iter().copied().max()));
        let Some((donor, Some(shard))) = donor else {
            return false;
        };
        self.shard_owners.remove(&shard);
        self.releasing.insert(shard, donor);
        true
    }

    /// Gives each released stream shard a live owner at once: back to its old owner
    /// when that one is live (nobody else ever ran it), else to the live worker owning
    /// the fewest. For the commit's drain, which assigns and drains every shard itself
    /// and must not leave one without an owner. True when the plan changed.
    pub fn settle_released_shards(&mut self, workers: &[String]) -> bool {
        if workers.is_empty() || self.releasing.is_empty() {
            return false;
        }
        let live: BTreeSet<&String> = workers.iter().collect();
        for (shard, owner) in std::mem::take(&mut self.releasing) {
            let worker = if live.contains(&owner) {
                Some(owner)
            } else {
                self.fewest_shards(workers)
            };
            if let Some(worker) = worker {
                self.shard_owners.insert(shard, worker);
            }
        }
        true
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
                // Stop at the fair share, and before a move would not shorten the
                // donor's copy: the receiver would then hold as much as the donor did.
                if load[&receiver] >= fair_share || load[&receiver] + partition.bytes >= donor_load
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
            .chain(self.releasing.values())
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

    /// Every worker the plan gives anything to, or waits for (releasing a shard).
    pub fn workers(&self) -> BTreeSet<String> {
        self.shard_owners
            .values()
            .chain(self.partitions.values())
            .chain(self.releasing.values())
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

    /// Each database's bytes: the sum of its partitions' (ids `<database>#…`).
    fn databases_of(parts: &[PartitionLoad]) -> BTreeMap<String, u64> {
        let mut databases = BTreeMap::new();
        for part in parts {
            let database = part.id.split('#').next().unwrap_or_default();
            *databases.entry(database.to_string()).or_default() += part.bytes;
        }
        databases
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
        let parts = vec![
            partition("big#0", 50, false),
            partition("big#1", 50, false),
            partition("a#0", 40, false),
            partition("b#0", 50, true),
        ];
        let plan = Plan::first(&workers(&["w1", "w2"]), &databases_of(&parts), &parts);
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
    fn three_similar_collections_go_one_to_each_of_three_workers() {
        // One partition each, a little under or over a third of the bytes: filling the
        // first worker up to its fair share used to give it two and the third none.
        let parts = vec![
            partition("a#0", 95, false),
            partition("b#0", 100, false),
            partition("c#0", 98, false),
        ];
        let plan = Plan::first(&workers(&["w1", "w2", "w3"]), &databases_of(&parts), &parts);
        for worker in ["w1", "w2", "w3"] {
            assert_eq!(plan.partitions_of(worker).len(), 1, "{plan:?}");
        }
    }

    #[test]
    fn an_idle_worker_takes_a_partition_when_that_shortens_the_copy() {
        let mut parts = vec![
            partition("a#0", 90, false),
            partition("a#1", 100, false),
            partition("b#0", 10, false),
        ];
        let mut plan = Plan::first(&workers(&["w1"]), &databases_of(&parts), &parts);
        // w1 finished b#0 and is copying a#0 when w2 joins: moving a#1 leaves 90
        // against 100 to copy instead of 190 against nothing.
        parts[2].done = true;
        parts[2].started = true;
        parts[0].started = true;
        assert!(plan.reconcile(&workers(&["w1", "w2"]), &parts));
        assert_eq!(plan.partitions["a#1"], "w2", "{plan:?}");
        assert_eq!(plan.partitions["a#0"], "w1", "a started partition stays");
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

    /// Three shards over w1 and w2 (w2 lost one to w1 earlier), then w3 joins.
    fn three_shards_then_w3_joins() -> Plan {
        let databases = BTreeMap::from([
            ("a".to_string(), 30),
            ("b".to_string(), 20),
            ("c".to_string(), 10),
        ]);
        let mut plan = Plan::first(&workers(&["w1", "w2", "w9"]), &databases, &[]);
        // w9 was lost: its shard went to the one owning the fewest (w1 on a tie).
        assert!(plan.reconcile(&workers(&["w1", "w2"]), &[]));
        assert_eq!(plan.shards_of("w1").len(), 2, "{plan:?}");
        plan
    }

    #[test]
    fn a_shard_moves_to_a_worker_without_one_only_after_its_owner_stopped_it() {
        let mut plan = three_shards_then_w3_joins();
        let live = workers(&["w1", "w2", "w3"]);
        let w1_before = plan.shards_of("w1");
        // Step 1: w1 (two shards) releases its highest; nobody owns it meanwhile.
        assert!(plan.balance_shards(&live, |_| false));
        let released = *w1_before.iter().max().unwrap();
        assert_eq!(
            plan.releasing,
            BTreeMap::from([(released, "w1".to_string())])
        );
        assert!(!plan.shard_owners.contains_key(&released), "{plan:?}");
        assert!(plan.workers().contains("w1"));
        // Until w1 confirms, nothing moves: not by balancing, not by reconciling.
        assert!(!plan.balance_shards(&live, |_| false));
        assert!(!plan.reconcile(&live, &[]));
        assert!(!plan.shard_owners.contains_key(&released));
        // Step 2: w1 stopped it; w3, owning none, takes it.
        assert!(plan.balance_shards(&live, |w| w == "w1"));
        assert!(plan.releasing.is_empty());
        assert_eq!(plan.shards_of("w3"), BTreeSet::from([released]));
        assert_eq!(plan.shards_of("w1").len(), 1);
        // Balanced: one shard each, nothing more to do.
        assert!(!plan.balance_shards(&live, |_| true));
        assert_eq!(plan.shard_owners.len(), 3);
    }

    #[test]
    fn a_shard_released_by_a_worker_that_is_then_lost_moves_without_its_confirmation() {
        let mut plan = three_shards_then_w3_joins();
        assert!(plan.balance_shards(&workers(&["w1", "w2", "w3"]), |_| false));
        let (&released, _) = plan.releasing.iter().next().unwrap();
        // w1's lease expired: it stopped writing, so its shards move at once.
        let survivors = workers(&["w2", "w3"]);
        assert!(plan.has_units_outside(&survivors));
        assert!(plan.reconcile(&survivors, &[]));
        assert!(plan.releasing.is_empty(), "{plan:?}");
        assert_eq!(plan.shard_owners.len(), 3);
        assert!(plan.shard_owners.contains_key(&released));
        assert!(plan.shard_owners.values().all(|w| w != "w1"), "{plan:?}");
    }

    #[test]
    fn the_commit_drain_gives_a_released_shard_back_to_its_live_owner() {
        let mut plan = three_shards_then_w3_joins();
        let live = workers(&["w1", "w2", "w3"]);
        assert!(plan.balance_shards(&live, |_| false));
        let (&released, _) = plan.releasing.iter().next().unwrap();
        assert!(plan.settle_released_shards(&live));
        assert!(plan.releasing.is_empty());
        assert_eq!(plan.shard_owners.get(&released), Some(&"w1".to_string()));
        assert!(!plan.settle_released_shards(&live));
        // Its old owner gone: the worker owning the fewest takes it.
        assert!(plan.balance_shards(&live, |_| false));
        assert!(plan.settle_released_shards(&workers(&["w2", "w3"])));
        assert_eq!(plan.shard_owners.get(&released), Some(&"w3".to_string()));
    }

    #[test]
    fn shards_never_move_between_workers_that_each_own_some() {
        let databases = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 1)]);
        let mut plan = Plan::first(&workers(&["w1", "w2"]), &databases, &[]);
        let before = plan.clone();
        // A third worker cannot take a shard when no one owns two.
        assert!(!plan.balance_shards(&workers(&["w1", "w2", "w3"]), |_| true));
        assert_eq!(plan, before);
    }
}
