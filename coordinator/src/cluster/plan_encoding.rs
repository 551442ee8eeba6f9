//! The plan as it is stored in etcd. A value in etcd is limited to one request (1.5 MiB
//! by default), and a large migration has tens of thousands of partitions: one
//! `"db.coll#000123": "worker"` entry each would not fit. Partitions are written per
//! worker and namespace as runs of their indexes (`"0-41,57,60-63"`), which the plan's
//! contiguous spreading keeps to a few per worker.
//!
//! Ids that are not `<namespace>#<index>` as the engine writes them, and plans written
//! before this form, are kept as a plain id → worker map (`partitions`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::plan::Plan;

/// Longest run accepted when reading; a longer one is a corrupt record, not a plan.
const MAX_RUN: u64 = 1_000_000;

#[derive(Serialize, Deserialize)]
pub(super) struct PlanRecord {
    epoch: u64,
    shard_count: u32,
    databases: BTreeMap<String, u32>,
    shard_owners: BTreeMap<u32, String>,
    /// Stream shard → the old owner that must confirm it stopped it (a move under way).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    releasing: BTreeMap<u32, String>,
    /// Partition id → worker, for ids without an index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    partitions: BTreeMap<String, String>,
    /// Worker → namespace → partition index runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    partition_runs: BTreeMap<String, BTreeMap<String, String>>,
}

/// The engine's partition id (`PartitionRecord::id_for`).
fn partition_id(ns: &str, index: u64) -> String {
    format!("{ns}#{index:06}")
}

/// `(namespace, index)` when `id` is exactly what `partition_id` makes of them.
fn split_id(id: &str) -> Option<(&str, u64)> {
    let (ns, digits) = id.rsplit_once('#')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = digits.parse().ok()?;
    (partition_id(ns, index) == id).then_some((ns, index))
}

fn runs_text(indexes: &[u64]) -> String {
    let mut text = String::new();
    let mut i = 0;
    while i < indexes.len() {
        let start = indexes[i];
        let mut end = start;
        while i + 1 < indexes.len() && indexes[i + 1] == end + 1 {
            i += 1;
            end = indexes[i];
        }
        if !text.is_empty() {
            text.push(',');
        }
        if start == end {
            text.push_str(&start.to_string());
        } else {
            text.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    text
}

fn parse_runs(text: &str) -> Result<Vec<u64>, String> {
    let mut indexes = Vec::new();
    for run in text.split(',').filter(|run| !run.is_empty()) {
        let number = |part: &str| {
            part.parse::<u64>()
                .map_err(|_| format!("{run:?} in {text:?} is not an index or a range"))
        };
        let (start, end) = match run.split_once('-') {
            Some((start, end)) => (number(start)?, number(end)?),
            None => (number(run)?, number(run)?),
        };
        if end < start || end - start >= MAX_RUN {
            return Err(format!("{run:?} in {text:?} is not a valid range"));
        }
        indexes.extend(start..=end);
    }
    Ok(indexes)
}

impl From<Plan> for PlanRecord {
    fn from(plan: Plan) -> PlanRecord {
        let mut plain = BTreeMap::new();
        let mut indexes: BTreeMap<String, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
        for (id, worker) in plan.partitions {
            match split_id(&id) {
                Some((ns, index)) => indexes
                    .entry(worker)
                    .or_default()
                    .entry(ns.to_string())
                    .or_default()
                    .push(index),
                None => {
                    plain.insert(id, worker);
                }
            }
        }
        // Ids sort as strings, which puts index 1000000 before 999999: sort as numbers.
        let partition_runs = indexes
            .into_iter()
            .map(|(worker, namespaces)| {
                let runs = namespaces
                    .into_iter()
                    .map(|(ns, mut list)| {
                        list.sort_unstable();
                        (ns, runs_text(&list))
                    })
                    .collect();
                (worker, runs)
            })
            .collect();
        PlanRecord {
            epoch: plan.epoch,
            shard_count: plan.shard_count,
            databases: plan.databases,
            shard_owners: plan.shard_owners,
            releasing: plan.releasing,
            partitions: plain,
            partition_runs,
        }
    }
}

impl TryFrom<PlanRecord> for Plan {
    type Error = String;

    fn try_from(record: PlanRecord) -> Result<Plan, String> {
        let mut partitions = record.partitions;
        for (worker, namespaces) in record.partition_runs {
            for (ns, runs) in namespaces {
                for index in parse_runs(&runs)
                    .map_err(|problem| format!("plan partitions of {worker} in {ns}: {problem}"))?
                {
                    partitions.insert(partition_id(&ns, index), worker.clone());
                }
            }
        }
        Ok(Plan {
            epoch: record.epoch,
            shard_count: record.shard_count,
            databases: record.databases,
            shard_owners: record.shard_owners,
            releasing: record.releasing,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::PartitionLoad;

    fn round_trip(plan: &Plan) -> (Plan, usize) {
        let json = serde_json::to_string(plan).expect("encodes");
        (serde_json::from_str(&json).expect("decodes"), json.len())
    }

    #[test]
    fn partitions_are_stored_as_runs_and_read_back_exactly() {
        let mut plan = Plan {
            epoch: 7,
            shard_count: 2,
            databases: BTreeMap::from([("db".into(), 0), ("other".into(), 1)]),
            shard_owners: BTreeMap::from([(0, "w1".into())]),
            // Shard 1 is being moved away from w2.
            releasing: BTreeMap::from([(1, "w2".into())]),
            partitions: BTreeMap::new(),
        };
        for index in [0u64, 1, 2, 5, 7, 8, 999_999, 1_000_000] {
            plan.partitions
                .insert(partition_id("db.c#x", index), "w1".into());
        }
        for id in ["db.d#000003", "db.d#3", "db.d#", "no-index", "db.e#0000001"] {
            plan.partitions.insert(id.into(), "w2".into());
        }
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            json["partition_runs"]["w1"]["db.c#x"],
            "0-2,5,7-8,999999-1000000"
        );
        assert_eq!(json["partition_runs"]["w2"]["db.d"], "3");
        // Ids that do not round-trip through the engine's format stay as they are.
        assert_eq!(json["partitions"]["db.d#3"], "w2");
        assert_eq!(json["partitions"]["no-index"], "w2");
        assert_eq!(json["partitions"]["db.e#0000001"], "w2");
        assert_eq!(round_trip(&plan).0, plan);
    }

    #[test]
    fn a_plan_written_as_a_plain_map_is_still_read() {
        let json = r#"{"epoch":3,"shard_count":1,"databases":{"db":0},"shard_owners":{"0":"w1"},
            "partitions":{"db.c#000000":"w1","db.c#000001":"w2"}}"#;
        let plan: Plan = serde_json::from_str(json).unwrap();
        assert_eq!(plan.epoch, 3);
        assert_eq!(plan.partitions["db.c#000001"], "w2");
        assert_eq!(plan.partitions.len(), 2);
    }

    #[test]
    fn corrupt_runs_are_an_error_not_a_plan() {
        for runs in ["5-2", "a", "1-x", "0-99999999999"] {
            let json = format!(
                r#"{{"epoch":1,"shard_count":1,"databases":{{}},"shard_owners":{{}},
                "partition_runs":{{"w1":{{"db.c":"{runs}"}}}}}}"#
            );
            let error = serde_json::from_str::<Plan>(&json).expect_err(runs);
            assert!(error.to_string().contains("w1"), "{error}");
        }
    }

    #[test]
    fn two_hundred_thousand_partitions_fit_in_one_etcd_request() {
        // 200,000 partitions of 64 MiB = 12 TiB over 30 collections and 16 workers: as
        // one id → worker entry each, 7.7 MB; as runs, 1.9 KB (3.0 KB after the losses).
        let workers: Vec<String> = (0..16).map(|i| format!("worker-{i:02}")).collect();
        let loads: Vec<PartitionLoad> = (0..200_000u64)
            .map(|i| PartitionLoad {
                id: partition_id(&format!("sales_{}.orders_{}", i % 3, i % 30), i / 30),
                bytes: 64 << 20,
                done: false,
                started: false,
            })
            .collect();
        let mut plan = Plan::first(&workers, &BTreeMap::new(), &loads);
        let (read, bytes) = round_trip(&plan);
        assert_eq!(read, plan);
        assert!(bytes < 16 * 1024, "{bytes} bytes");
        // Three workers lost one after the other: their partitions move in runs too.
        for lost in 1..=3 {
            assert!(plan.reconcile(&workers[lost..], &loads));
        }
        let (read, bytes) = round_trip(&plan);
        assert_eq!(read, plan);
        assert!(bytes < 16 * 1024, "{bytes} bytes after three losses");
    }
}
