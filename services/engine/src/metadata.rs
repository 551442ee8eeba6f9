//! Checkpoints and migration state in `__c2c_internal` on the destination, so a
//! restarted process (or, later, another worker) continues where the last one stopped.
//!
//! Collections:
//! - `state`: one document `{_id: "migration", request, t0, phase, …}`.
//! - `namespaces`: per synced collection/view: kind, options, original and destination
//!   index specs (the originals are restored at commit).
//! - `partitions`: per `_id` range: bounds, the last `_id` copied, done flag, counters.
//! - `checkpoints`: `{_id: "cea", token, clusterTime}` — the last applied change event.

use std::collections::HashMap;

use bson::{doc, Bson, Document, Timestamp};
use futures::TryStreamExt;
use mongodb::options::{ReplaceOptions, UpdateOptions};
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::namespace::{Namespace, METADATA_DB};
use crate::options::StartRequest;
use crate::retry::retry;

const STATE: &str = "state";
const NAMESPACES: &str = "namespaces";
const PARTITIONS: &str = "partitions";
const CHECKPOINTS: &str = "checkpoints";

/// Where the migration is, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PersistedPhase {
    /// Planned; collections, indexes and partitions are being set up.
    Planning,
    /// Partitions are being copied.
    Copying,
    /// Copy done; change events are being applied.
    Applying,
    /// `/commit` accepted; `MigrationState::cutover.step` says which step runs.
    Committing,
    /// Cutover finished: the destination is the application's cluster.
    Committed,
    /// `/reverse` accepted; swapping roles before streaming the other way.
    Reversing,
}

/// One persisted step of a commit or a reverse. A step is saved before it runs and every
/// step is idempotent, so a restart runs the saved step again and continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CutoverStep {
    /// Commit 1: block user writes on the source (sourceAndDestination only).
    BlockSource,
    /// Commit 2: take Tc from a no-op write on the source.
    TakeCommitPoint,
    /// Commit 3: apply every change event up to Tc, then stop reading.
    DrainToCommitPoint,
    /// Commit 4: set the non-unique copies of unique indexes to `prepareUnique`.
    PrepareUnique,
    /// Commit 5: take Td on the destination, unblock it, report `canWrite`.
    EnableWrites,
    /// Commit 6: convert to unique; restore TTL, hidden and other relaxed options.
    RestoreIndexes,
    /// Commit 7: final check for late source writes, then `Committed`.
    FinishCommit,
    /// Reverse 1: forget the old direction's checkpoint and swap the roles.
    SwapDirection,
    /// Reverse 2: block and relax the new destination (the old source) for syncing.
    PrepareNewDestination,
    /// Reverse 3: back to change-event application in the new direction.
    ResumeSync,
}

/// What commit and reverse persist besides the phase. Every field defaults, so state
/// documents written before cutover existed still load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CutoverState {
    /// The step running (or to run after a restart) while Committing or Reversing.
    #[serde(default)]
    pub step: Option<CutoverStep>,
    /// Commit point on the (current) source: every event up to it is applied.
    #[serde(default)]
    pub tc: Option<Timestamp>,
    /// Destination time taken right before it was unblocked: a reverse streams from here.
    #[serde(default)]
    pub td: Option<Timestamp>,
    /// True while the original destination is the source.
    #[serde(default)]
    pub reversed: bool,
    /// How many reverses have completed or started.
    #[serde(default)]
    pub reversals: u32,
    /// Where the current direction's stream starts when there is no checkpoint yet (the
    /// Td of the commit before the last reverse); `None` means T0.
    #[serde(default)]
    pub stream_start: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationState {
    pub request: StartRequest,
    /// Source operation time when the migration started: change events are read from here.
    pub t0: Timestamp,
    pub phase: PersistedPhase,
    /// `host:port` lists of both clusters when started, to refuse a swapped restart.
    pub source_hosts: Vec<String>,
    pub destination_hosts: Vec<String>,
    pub estimated_total_bytes: u64,
    /// Commit/reverse progress and the current direction (absent before the first commit).
    #[serde(default)]
    pub cutover: CutoverState,
}

impl MigrationState {
    /// Where a stream shard without a checkpoint starts in the current direction: T0,
    /// or Td after a reverse.
    pub fn stream_start(&self) -> Timestamp {
        self.cutover.stream_start.unwrap_or(self.t0)
    }
}

/// What kind of source namespace this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NamespaceKind {
    Collection,
    View,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRecord {
    pub ns: Namespace,
    pub kind: NamespaceKind,
    /// listCollections `options` on the source.
    pub options: Document,
    /// Source index specs as listed (restored at commit).
    pub source_indexes: Vec<Document>,
    /// Specs created on the destination during sync (unique off, TTL off, hidden off).
    pub destination_indexes: Vec<Document>,
    pub estimated_bytes: u64,
    pub estimated_documents: u64,
}

/// One `_id` range of a collection. `min` inclusive, `max` exclusive, in canonical BSON
/// order; `None` is unbounded.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRecord {
    pub id: String,
    pub ns: Namespace,
    pub min: Option<Bson>,
    pub max: Option<Bson>,
    /// The last `_id` written to the destination; the copy resumes after it.
    pub last: Option<Bson>,
    pub done: bool,
    pub documents: u64,
    pub bytes: u64,
    /// The source collection's UUID when it was planned: the copy reads with it, so a
    /// rename during the copy is followed instead of leaving the rest unread.
    pub uuid: Option<bson::Uuid>,
}

impl PartitionRecord {
    pub fn id_for(ns: &Namespace, index: usize) -> String {
        format!("{ns}#{index:06}")
    }

    fn to_document(&self) -> Document {
        let optional = |value: &Option<Bson>| match value {
            Some(value) => doc! {"v": value.clone()},
            None => Document::new(),
        };
        let mut document = doc! {
            "_id": self.id.clone(),
            "db": self.ns.db.clone(),
            "coll": self.ns.coll.clone(),
            "min": optional(&self.min),
            "max": optional(&self.max),
            "last": optional(&self.last),
            "done": self.done,
            "documents": self.documents as i64,
            "bytes": self.bytes as i64,
        };
        if let Some(uuid) = self.uuid {
            document.insert("uuid", bson::Binary::from_uuid(uuid));
        }
        document
    }

    fn from_document(document: &Document) -> Result<PartitionRecord> {
        let bad = |what: &str| EngineError::Metadata(format!("partition {what} in {document}"));
        let optional = |field: &str| -> Result<Option<Bson>> {
            let sub = document.get_document(field).map_err(|_| bad(field))?;
            Ok(sub.get("v").cloned())
        };
        Ok(PartitionRecord {
            id: document.get_str("_id").map_err(|_| bad("_id"))?.to_string(),
            ns: Namespace::new(
                document.get_str("db").map_err(|_| bad("db"))?,
                document.get_str("coll").map_err(|_| bad("coll"))?,
            ),
            min: optional("min")?,
            max: optional("max")?,
            last: optional("last")?,
            done: document.get_bool("done").map_err(|_| bad("done"))?,
            documents: document.get_i64("documents").unwrap_or(0) as u64,
            bytes: document.get_i64("bytes").unwrap_or(0) as u64,
            // Absent in records planned before UUIDs were kept: those read by name.
            uuid: match document.get("uuid") {
                Some(Bson::Binary(binary)) => binary.to_uuid().ok(),
                _ => None,
            },
        })
    }
}

/// The last change event applied: resuming the stream after it loses nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct CeaCheckpoint {
    pub token: Document,
    pub cluster_time: Timestamp,
}

/// Access to `__c2c_internal` on the destination.
#[derive(Debug, Clone)]
pub struct Metadata {
    state: Collection<Document>,
    namespaces: Collection<Document>,
    partitions: Collection<Document>,
    checkpoints: Collection<Document>,
    /// `_id` of this handle's change-event checkpoint: `cea` for the one stream of a
    /// single process, `cea-<shard>` for a stream shard of a scaled-out migration.
    cea_key: String,
}

/// Partition records per `update` command when planning saves them.
const SAVE_PARTITIONS_BATCH: usize = 1000;

/// Sums over every partition record ([`Metadata::partition_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionTotals {
    pub partitions: u64,
    pub unfinished: u64,
    pub bytes: u64,
    pub documents: u64,
}

/// The checkpoint key of the one stream of a single-process migration.
const CEA_KEY: &str = "cea";

impl Metadata {
    pub fn new(destination: &mongodb::Client) -> Metadata {
        let db: Database = destination.database(METADATA_DB);
        Metadata {
            state: db.collection(STATE),
            namespaces: db.collection(NAMESPACES),
            partitions: db.collection(PARTITIONS),
            checkpoints: db.collection(CHECKPOINTS),
            cea_key: CEA_KEY.to_string(),
        }
    }

    /// The same metadata, with the change-event checkpoint of stream shard `shard`.
    pub fn for_stream_shard(&self, shard: u32) -> Metadata {
        Metadata {
            cea_key: format!("{CEA_KEY}-{shard}"),
            ..self.clone()
        }
    }

    pub async fn load_state(&self) -> Result<Option<MigrationState>> {
        let found = retry("load migration state", || {
            self.state.find_one(doc! {"_id": "migration"})
        })
        .await
        .map_err(EngineError::destination)?;
        let Some(mut document) = found else {
            return Ok(None);
        };
        document.remove("_id");
        bson::from_document(document)
            .map(Some)
            .map_err(|e| EngineError::Metadata(format!("migration state: {e}")))
    }

    pub async fn save_state(&self, state: &MigrationState) -> Result<()> {
        let mut document =
            bson::to_document(state).map_err(|e| EngineError::Metadata(e.to_string()))?;
        document.insert("_id", "migration");
        let document = &document;
        retry("save migration state", || {
            self.state
                .replace_one(doc! {"_id": "migration"}, document.clone())
                .with_options(ReplaceOptions::builder().upsert(true).build())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    pub async fn set_phase(&self, phase: PersistedPhase) -> Result<()> {
        let phase = bson::to_bson(&phase).map_err(|e| EngineError::Metadata(e.to_string()))?;
        let phase = &phase;
        retry("save migration phase", || {
            self.state.update_one(
                doc! {"_id": "migration"},
                doc! {"$set": {"phase": phase.clone()}},
            )
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    /// Saves phase and cutover state in one write, so a restart never sees one without
    /// the other.
    pub async fn set_cutover(&self, phase: PersistedPhase, cutover: &CutoverState) -> Result<()> {
        let phase = bson::to_bson(&phase).map_err(|e| EngineError::Metadata(e.to_string()))?;
        let cutover = bson::to_bson(cutover).map_err(|e| EngineError::Metadata(e.to_string()))?;
        let update = doc! {"$set": {"phase": phase, "cutover": cutover}};
        let update = &update;
        retry("save cutover state", || {
            self.state
                .update_one(doc! {"_id": "migration"}, update.clone())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    /// Forgets the change-event checkpoint (a reverse starts a stream on the other cluster,
    /// whose tokens mean nothing to the old one).
    pub async fn clear_cea_checkpoint(&self) -> Result<()> {
        retry("clear change-event checkpoint", || {
            self.checkpoints
                .delete_one(doc! {"_id": self.cea_key.as_str()})
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    /// Forgets every change-event checkpoint, the single stream's and every shard's.
    pub async fn clear_all_cea_checkpoints(&self) -> Result<()> {
        let pattern = format!("^{CEA_KEY}(-|$)");
        retry("clear change-event checkpoints", || {
            self.checkpoints
                .delete_many(doc! {"_id": {"$regex": pattern.as_str()}})
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    /// Every change-event checkpoint (single stream and shards), oldest first.
    pub async fn load_all_cea_checkpoints(&self) -> Result<Vec<(String, CeaCheckpoint)>> {
        let pattern = format!("^{CEA_KEY}(-|$)");
        let documents = retry("load change-event checkpoints", || async {
            let cursor = self
                .checkpoints
                .find(doc! {"_id": {"$regex": pattern.as_str()}})
                .await?;
            futures::TryStreamExt::try_collect::<Vec<Document>>(cursor).await
        })
        .await
        .map_err(EngineError::destination)?;
        let mut found = Vec::new();
        for document in documents {
            let key = document.get_str("_id").unwrap_or_default().to_string();
            if let Ok(cluster_time) = document.get_timestamp("clusterTime") {
                let token = document.get_document("token").cloned().unwrap_or_default();
                found.push((
                    key,
                    CeaCheckpoint {
                        token,
                        cluster_time,
                    },
                ));
            }
        }
        found.sort_by_key(|(_, checkpoint)| checkpoint.cluster_time);
        Ok(found)
    }

    pub async fn save_namespace(&self, record: &NamespaceRecord) -> Result<()> {
        let mut document =
            bson::to_document(record).map_err(|e| EngineError::Metadata(e.to_string()))?;
        let id = record.ns.to_string();
        document.insert("_id", id.clone());
        upsert_by_id(
            "save namespace",
            &self.namespaces,
            Bson::String(id),
            &document,
        )
        .await
    }

    pub async fn delete_namespace(&self, ns: &Namespace) -> Result<()> {
        let id = ns.to_string();
        let id = &id;
        retry("delete namespace", || {
            self.namespaces.delete_one(doc! {"_id": id.clone()})
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    pub async fn load_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        let documents = find_sorted("load namespaces", &self.namespaces, doc! {}).await?;
        documents
            .into_iter()
            .map(|mut document| {
                document.remove("_id");
                bson::from_document(document)
                    .map_err(|e| EngineError::Metadata(format!("namespace record: {e}")))
            })
            .collect()
    }

    /// Upserts the records, a thousand per command: planning writes thousands of them,
    /// and one round trip each made planning cost seconds against a remote destination
    /// (59 records took 200 ms at 2 ms per operation).
    pub async fn save_partitions(&self, partitions: &[PartitionRecord]) -> Result<()> {
        let database = self.partitions.client().database(METADATA_DB);
        for chunk in partitions.chunks(SAVE_PARTITIONS_BATCH) {
            let updates: Vec<Document> = chunk
                .iter()
                .map(|p| doc! {"q": {"_id": p.id.as_str()}, "u": p.to_document(), "upsert": true})
                .collect();
            let command = doc! {"update": PARTITIONS, "updates": updates, "ordered": false};
            let reply = retry("save partitions", || database.run_command(command.clone()))
                .await
                .map_err(EngineError::destination)?;
            let failure = reply
                .get_array("writeErrors")
                .ok()
                .and_then(|errors| errors.first())
                .map(ToString::to_string)
                .or_else(|| {
                    reply
                        .get_document("writeConcernError")
                        .ok()
                        .map(ToString::to_string)
                });
            if let Some(failure) = failure {
                return Err(EngineError::Metadata(format!(
                    "saving partition records failed: {failure}"
                )));
            }
        }
        Ok(())
    }

    /// Forgets every partition (re-planning before any copy started).
    pub async fn clear_partitions(&self) -> Result<()> {
        retry("clear partitions", || self.partitions.delete_many(doc! {}))
            .await
            .map_err(EngineError::destination)?;
        Ok(())
    }

    /// What every partition's checkpoint adds up to, summed on the destination: one
    /// small reply however many partitions there are, where loading the records to add
    /// them up read all of them on every poll of a copy.
    pub async fn partition_totals(&self) -> Result<PartitionTotals> {
        let pipeline = vec![doc! {"$group": {
            "_id": "$done",
            "bytes": {"$sum": "$bytes"},
            "documents": {"$sum": "$documents"},
            "count": {"$sum": 1},
        }}];
        let groups: Vec<Document> = retry("sum partitions", || async {
            self.partitions
                .aggregate(pipeline.clone())
                .await?
                .try_collect()
                .await
        })
        .await
        .map_err(EngineError::destination)?;
        let mut totals = PartitionTotals::default();
        for group in &groups {
            let number = |field: &str| match group.get(field) {
                Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                Some(Bson::Double(n)) if *n > 0.0 => *n as u64,
                _ => 0,
            };
            totals.bytes += number("bytes");
            totals.documents += number("documents");
            totals.partitions += number("count");
            // A record is finished only when it says so.
            if group.get("_id") != Some(&Bson::Boolean(true)) {
                totals.unfinished += number("count");
            }
        }
        Ok(totals)
    }

    pub async fn load_partitions(&self) -> Result<Vec<PartitionRecord>> {
        let documents = find_sorted("load partitions", &self.partitions, doc! {}).await?;
        documents
            .iter()
            .map(PartitionRecord::from_document)
            .collect()
    }

    /// The records of the partitions `ids` names, in `ids`' order; an unknown id is an
    /// error (the plan names only partitions that were recorded). A worker reads only
    /// its own share this way, where loading every record on each assignment read the
    /// whole table (hundreds of thousands of records in a large migration).
    pub async fn load_partitions_by_id(&self, ids: &[String]) -> Result<Vec<PartitionRecord>> {
        let mut found: HashMap<String, PartitionRecord> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(PARTITION_IDS_PER_QUERY) {
            let filter = doc! {"_id": {"$in": chunk}};
            let documents = find_sorted("load partitions by id", &self.partitions, filter).await?;
            for document in &documents {
                let record = PartitionRecord::from_document(document)?;
                found.insert(record.id.clone(), record);
            }
        }
        ids.iter()
            .map(|id| {
                found
                    .remove(id)
                    .ok_or_else(|| EngineError::Metadata(format!("partition {id} is not recorded")))
            })
            .collect()
    }

    /// Records progress inside a partition (after a batch is durably written). A
    /// finished partition is left as it is: a copier whose partition was given to
    /// another (a worker frozen past its lease, whose in-flight batch lands late) must
    /// not make it unfinished again, which would keep the copy from ever completing.
    /// Records that the partition is copied up to `last` (inclusive), with its totals
    /// then; a finished partition is left as it is.
    pub async fn checkpoint_partition(
        &self,
        id: &str,
        last: &Bson,
        documents: u64,
        bytes: u64,
    ) -> Result<()> {
        let update = doc! {"$set": {"last": {"v": last.clone()}, "documents": documents as i64, "bytes": bytes as i64}};
        let update = &update;
        retry("checkpoint partition", || {
            self.partitions
                .update_one(doc! {"_id": id, "done": {"$ne": true}}, update.clone())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    /// Marks the partition copied, with its totals and, when given, the last `_id`
    /// written since its last checkpoint.
    pub async fn finish_partition(
        &self,
        id: &str,
        last: Option<&Bson>,
        documents: u64,
        bytes: u64,
    ) -> Result<()> {
        let mut set = doc! {"done": true, "documents": documents as i64, "bytes": bytes as i64};
        if let Some(last) = last {
            set.insert("last", doc! {"v": last.clone()});
        }
        let update = doc! {"$set": set};
        let update = &update;
        retry("finish partition", || {
            self.partitions.update_one(doc! {"_id": id}, update.clone())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    pub async fn load_cea_checkpoint(&self) -> Result<Option<CeaCheckpoint>> {
        let found = retry("load change-event checkpoint", || {
            self.checkpoints
                .find_one(doc! {"_id": self.cea_key.as_str()})
        })
        .await
        .map_err(EngineError::destination)?;
        let Some(document) = found else {
            return Ok(None);
        };
        let token = document
            .get_document("token")
            .map_err(|_| EngineError::Metadata("cea checkpoint token".into()))?
            .clone();
        let cluster_time = document
            .get_timestamp("clusterTime")
            .map_err(|_| EngineError::Metadata("cea checkpoint clusterTime".into()))?;
        Ok(Some(CeaCheckpoint {
            token,
            cluster_time,
        }))
    }

    pub async fn save_cea_checkpoint(&self, checkpoint: &CeaCheckpoint) -> Result<()> {
        let update = doc! {"$set": {"token": checkpoint.token.clone(), "clusterTime": checkpoint.cluster_time}};
        let update = &update;
        retry("save change-event checkpoint", || {
            self.checkpoints
                .update_one(doc! {"_id": self.cea_key.as_str()}, update.clone())
                .with_options(UpdateOptions::builder().upsert(true).build())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }
}

/// Replaces (or inserts) the document with `_id` = `id`.
async fn upsert_by_id(
    what: &str,
    collection: &Collection<Document>,
    id: Bson,
    document: &Document,
) -> Result<()> {
    let filter = doc! {"_id": id};
    let (filter, document) = (&filter, document);
    retry(what, || {
        collection
            .replace_one(filter.clone(), document.clone())
            .with_options(ReplaceOptions::builder().upsert(true).build())
    })
    .await
    .map_err(EngineError::destination)?;
    Ok(())
}

/// Partition ids per `$in` query: keeps each command far below the 16 MiB limit (ids are
/// namespace names plus an index).
const PARTITION_IDS_PER_QUERY: usize = 1_000;

/// The documents of a metadata collection that match `filter`, in `_id` order.
async fn find_sorted(
    what: &str,
    collection: &Collection<Document>,
    filter: Document,
) -> Result<Vec<Document>> {
    retry(what, || async {
        collection
            .find(filter.clone())
            .sort(doc! {"_id": 1})
            .await?
            .try_collect()
            .await
    })
    .await
    .map_err(EngineError::destination)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state document written before cutover existed (no `cutover` field) still loads,
    /// and the new phases use the names the coordinator matches on.
    #[test]
    fn old_state_documents_decode_and_phase_names_are_stable() {
        let old = doc! {
            "request": {
                "source": "cluster0", "destination": "cluster1",
                "includeNamespaces": [], "excludeNamespaces": [],
                "buildIndexes": "beforeDataCopy", "reversible": false,
                "enableUserWriteBlocking": "destinationOnly", "verificationEnabled": false,
                "detectRandomId": false, "preExistingDestinationData": false,
            },
            "t0": Timestamp { time: 5, increment: 1 },
            "phase": "applying",
            "sourceHosts": ["a:1"], "destinationHosts": ["b:2"],
            "estimatedTotalBytes": 10_i64,
        };
        let state: MigrationState = bson::from_document(old).expect("old state decodes");
        assert_eq!(state.cutover, CutoverState::default());
        for (phase, name) in [
            (PersistedPhase::Committing, "committing"),
            (PersistedPhase::Committed, "committed"),
            (PersistedPhase::Reversing, "reversing"),
        ] {
            assert_eq!(bson::to_bson(&phase).expect("phase"), Bson::from(name));
        }
        let partial: CutoverState =
            bson::from_document(doc! {"step": "drainToCommitPoint"}).expect("partial decodes");
        assert_eq!(partial.step, Some(CutoverStep::DrainToCommitPoint));
        let mut full = state.clone();
        full.cutover = CutoverState {
            step: Some(CutoverStep::EnableWrites),
            tc: Some(Timestamp {
                time: 9,
                increment: 2,
            }),
            td: None,
            reversed: true,
            reversals: 3,
            stream_start: Some(Timestamp {
                time: 7,
                increment: 1,
            }),
        };
        let round: MigrationState =
            bson::from_document(bson::to_document(&full).expect("encode")).expect("decode");
        assert_eq!(round, full);
    }
}
