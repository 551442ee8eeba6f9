//! Checkpoints and migration state in `__c2c_internal` on the destination, so a
//! restarted process (or, later, another worker) continues where the last one stopped.
//!
//! Collections:
//! - `state`: one document `{_id: "migration", request, t0, phase, …}`.
//! - `namespaces`: per synced collection/view: kind, options, original and destination
//!   index specs (the originals are restored at commit).
//! - `partitions`: per `_id` range: bounds, the last `_id` copied, done flag, counters.
//! - `checkpoints`: `{_id: "cea", token, clusterTime}` — the last applied change event.

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
        doc! {
            "_id": self.id.clone(),
            "db": self.ns.db.clone(),
            "coll": self.ns.coll.clone(),
            "min": optional(&self.min),
            "max": optional(&self.max),
            "last": optional(&self.last),
            "done": self.done,
            "documents": self.documents as i64,
            "bytes": self.bytes as i64,
        }
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
}

impl Metadata {
    pub fn new(destination: &mongodb::Client) -> Metadata {
        let db: Database = destination.database(METADATA_DB);
        Metadata {
            state: db.collection(STATE),
            namespaces: db.collection(NAMESPACES),
            partitions: db.collection(PARTITIONS),
            checkpoints: db.collection(CHECKPOINTS),
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

    pub async fn save_namespace(&self, record: &NamespaceRecord) -> Result<()> {
        let mut document =
            bson::to_document(record).map_err(|e| EngineError::Metadata(e.to_string()))?;
        let id = record.ns.to_string();
        document.insert("_id", id.clone());
        let (id, document) = (&id, &document);
        retry("save namespace", || {
            self.namespaces
                .replace_one(doc! {"_id": id.clone()}, document.clone())
                .with_options(ReplaceOptions::builder().upsert(true).build())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
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
        let documents: Vec<Document> = retry("load namespaces", || async {
            self.namespaces
                .find(doc! {})
                .sort(doc! {"_id": 1})
                .await?
                .try_collect()
                .await
        })
        .await
        .map_err(EngineError::destination)?;
        documents
            .into_iter()
            .map(|mut document| {
                document.remove("_id");
                bson::from_document(document)
                    .map_err(|e| EngineError::Metadata(format!("namespace record: {e}")))
            })
            .collect()
    }

    pub async fn save_partitions(&self, partitions: &[PartitionRecord]) -> Result<()> {
        for partition in partitions {
            let document = partition.to_document();
            let (id, document) = (&partition.id, &document);
            retry("save partition", || {
                self.partitions
                    .replace_one(doc! {"_id": id.clone()}, document.clone())
                    .with_options(ReplaceOptions::builder().upsert(true).build())
            })
            .await
            .map_err(EngineError::destination)?;
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

    pub async fn load_partitions(&self) -> Result<Vec<PartitionRecord>> {
        let documents: Vec<Document> = retry("load partitions", || async {
            self.partitions
                .find(doc! {})
                .sort(doc! {"_id": 1})
                .await?
                .try_collect()
                .await
        })
        .await
        .map_err(EngineError::destination)?;
        documents
            .iter()
            .map(PartitionRecord::from_document)
            .collect()
    }

    /// Records progress inside a partition (after a batch is durably written).
    pub async fn checkpoint_partition(
        &self,
        id: &str,
        last: &Bson,
        documents: u64,
        bytes: u64,
        done: bool,
    ) -> Result<()> {
        let update = doc! {"$set": {"last": {"v": last.clone()}, "done": done, "documents": documents as i64, "bytes": bytes as i64}};
        let update = &update;
        retry("checkpoint partition", || {
            self.partitions.update_one(doc! {"_id": id}, update.clone())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }

    pub async fn finish_partition(&self, id: &str, documents: u64, bytes: u64) -> Result<()> {
        let update =
            doc! {"$set": {"done": true, "documents": documents as i64, "bytes": bytes as i64}};
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
            self.checkpoints.find_one(doc! {"_id": "cea"})
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
                .update_one(doc! {"_id": "cea"}, update.clone())
                .with_options(UpdateOptions::builder().upsert(true).build())
        })
        .await
        .map_err(EngineError::destination)?;
        Ok(())
    }
}
