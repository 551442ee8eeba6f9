//! The verifier's persisted state in `__c2c_internal` on the request's destination, so
//! a restart continues where it stopped instead of hashing everything again:
//!
//! - `verifier`: one document: the direction verified and both streams' resume tokens;
//! - `verifier_segments`: the scan units (the copy's partitions); `done` once all of a
//!   segment's ranges are saved;
//! - `verifier_ranges`: every range with both hashes and its state;
//! - `verifier_mismatches`: confirmed differences (a restart still reports them).
//!
//! Scaled out, each stream shard has its own set (`verifier_shard<N>`, …).

use bson::{doc, oid::ObjectId, Bson, Document, Timestamp};
use futures::TryStreamExt;
use mongodb::{Client, Collection};

use super::scan::{Bounds, RangeHash};
use super::Mismatch;
use crate::error::{EngineError, Result};
use crate::namespace::{Namespace, METADATA_DB};

/// Where a range is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeState {
    /// Hashed on the source, not yet compared with the destination.
    Unchecked,
    Clean,
    /// A change event touched it after its last check.
    Dirty,
}

impl RangeState {
    fn as_str(self) -> &'static str {
        match self {
            RangeState::Unchecked => "unchecked",
            RangeState::Clean => "clean",
            RangeState::Dirty => "dirty",
        }
    }

    fn parse(text: &str) -> RangeState {
        match text {
            "clean" => RangeState::Clean,
            "unchecked" => RangeState::Unchecked,
            _ => RangeState::Dirty,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    pub id: String,
    pub ns: Namespace,
    pub bounds: Bounds,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RangeRecord {
    pub id: ObjectId,
    pub ns: Namespace,
    pub bounds: Bounds,
    pub state: RangeState,
    pub source: RangeHash,
    pub destination: Option<RangeHash>,
}

/// Where each side's verifier stream continues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamPositions {
    pub reversed: bool,
    pub source_token: Option<Document>,
    pub destination_token: Option<Document>,
    /// Where a stream without a token starts (taken when the verification started).
    pub source_start: Option<Timestamp>,
    pub destination_start: Option<Timestamp>,
}

#[derive(Clone)]
pub struct VerifierStore {
    state: Collection<Document>,
    segments: Collection<Document>,
    ranges: Collection<Document>,
    mismatches: Collection<Document>,
}

fn bound(value: &Option<Bson>) -> Document {
    match value {
        Some(value) => doc! {"v": value.clone()},
        None => Document::new(),
    }
}

fn read_bound(document: &Document, field: &str) -> Result<Option<Bson>> {
    let sub = document.get_document(field).map_err(|_| {
        EngineError::Metadata(format!("verifier record without {field}: {document}"))
    })?;
    Ok(sub.get("v").cloned())
}

fn read_ns(document: &Document) -> Result<Namespace> {
    let bad = || EngineError::Metadata(format!("verifier record without db/coll: {document}"));
    Ok(Namespace::new(
        document.get_str("db").map_err(|_| bad())?,
        document.get_str("coll").map_err(|_| bad())?,
    ))
}

fn hash_document(hash: &RangeHash) -> Document {
    doc! {"n": hash.documents as i64, "sum": format!("{:032x}", hash.sum)}
}

fn read_hash(document: &Document) -> Option<RangeHash> {
    Some(RangeHash {
        documents: document.get_i64("n").ok()? as u64,
        sum: u128::from_str_radix(document.get_str("sum").ok()?, 16).ok()?,
    })
}

fn metadata_error(error: mongodb::error::Error) -> EngineError {
    EngineError::Metadata(format!("verifier state: {error}"))
}

impl VerifierStore {
    /// The single process's verifier state.
    pub fn new(destination: &Client) -> VerifierStore {
        VerifierStore::with_suffix(destination, "")
    }

    /// Scaled out: one stream shard's verifier state (the shard's owner verifies its
    /// databases; a new owner continues from here).
    pub fn for_stream_shard(destination: &Client, shard: u32) -> VerifierStore {
        VerifierStore::with_suffix(destination, &format!("_shard{shard}"))
    }

    fn with_suffix(destination: &Client, suffix: &str) -> VerifierStore {
        let db = destination.database(METADATA_DB);
        VerifierStore {
            state: db.collection(&format!("verifier{suffix}")),
            segments: db.collection(&format!("verifier_segments{suffix}")),
            ranges: db.collection(&format!("verifier_ranges{suffix}")),
            mismatches: db.collection(&format!("verifier_mismatches{suffix}")),
        }
    }

    pub async fn load_positions(&self) -> Result<Option<StreamPositions>> {
        let found = self
            .state
            .find_one(doc! {"_id": "streams"})
            .await
            .map_err(metadata_error)?;
        Ok(found.map(|document| StreamPositions {
            reversed: document.get_bool("reversed").unwrap_or(false),
            source_token: document.get_document("sourceToken").ok().cloned(),
            destination_token: document.get_document("destinationToken").ok().cloned(),
            source_start: document.get_timestamp("sourceStart").ok(),
            destination_start: document.get_timestamp("destinationStart").ok(),
        }))
    }

    pub async fn save_positions(&self, positions: &StreamPositions) -> Result<()> {
        let mut record = doc! {"_id": "streams", "reversed": positions.reversed};
        if let Some(token) = &positions.source_token {
            record.insert("sourceToken", token.clone());
        }
        if let Some(token) = &positions.destination_token {
            record.insert("destinationToken", token.clone());
        }
        if let Some(start) = positions.source_start {
            record.insert("sourceStart", start);
        }
        if let Some(start) = positions.destination_start {
            record.insert("destinationStart", start);
        }
        self.state
            .replace_one(doc! {"_id": "streams"}, record)
            .upsert(true)
            .await
            .map_err(metadata_error)?;
        Ok(())
    }

    /// Forgets everything (a new direction is verified from scratch).
    pub async fn clear(&self) -> Result<()> {
        for collection in [&self.state, &self.segments, &self.ranges, &self.mismatches] {
            collection
                .delete_many(doc! {})
                .await
                .map_err(metadata_error)?;
        }
        Ok(())
    }

    pub async fn load_segments(&self) -> Result<Vec<SegmentRecord>> {
        let documents: Vec<Document> = self
            .segments
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .map_err(metadata_error)?
            .try_collect()
            .await
            .map_err(metadata_error)?;
        documents
            .iter()
            .map(|document| {
                Ok(SegmentRecord {
                    id: document
                        .get_str("_id")
                        .map_err(|_| EngineError::Metadata("segment without _id".into()))?
                        .to_string(),
                    ns: read_ns(document)?,
                    bounds: Bounds {
                        min: read_bound(document, "min")?,
                        max: read_bound(document, "max")?,
                    },
                    done: document.get_bool("done").unwrap_or(false),
                })
            })
            .collect()
    }

    pub async fn save_segment(&self, segment: &SegmentRecord) -> Result<()> {
        let record = doc! {
            "_id": segment.id.clone(),
            "db": segment.ns.db.clone(),
            "coll": segment.ns.coll.clone(),
            "min": bound(&segment.bounds.min),
            "max": bound(&segment.bounds.max),
            "done": segment.done,
        };
        self.segments
            .replace_one(doc! {"_id": segment.id.clone()}, record)
            .upsert(true)
            .await
            .map_err(metadata_error)?;
        Ok(())
    }

    /// Forgets a namespace's segments and ranges (after DDL it is scanned again).
    pub async fn forget_namespace(&self, ns: &Namespace) -> Result<()> {
        let filter = doc! {"db": ns.db.clone(), "coll": ns.coll.clone()};
        self.segments
            .delete_many(filter.clone())
            .await
            .map_err(metadata_error)?;
        self.ranges
            .delete_many(filter)
            .await
            .map_err(metadata_error)?;
        Ok(())
    }

    pub async fn load_ranges(&self) -> Result<Vec<RangeRecord>> {
        let mut cursor = self.ranges.find(doc! {}).await.map_err(metadata_error)?;
        let mut ranges = Vec::new();
        while let Some(document) = cursor.try_next().await.map_err(metadata_error)? {
            ranges.push(RangeRecord {
                id: document
                    .get_object_id("_id")
                    .map_err(|_| EngineError::Metadata("range without _id".into()))?,
                ns: read_ns(&document)?,
                bounds: Bounds {
                    min: read_bound(&document, "min")?,
                    max: read_bound(&document, "max")?,
                },
                state: RangeState::parse(document.get_str("state").unwrap_or("dirty")),
                source: document
                    .get_document("source")
                    .ok()
                    .and_then(read_hash)
                    .unwrap_or_default(),
                destination: document
                    .get_document("destination")
                    .ok()
                    .and_then(read_hash),
            });
        }
        Ok(ranges)
    }

    pub async fn save_range(&self, range: &RangeRecord) -> Result<()> {
        let mut record = doc! {
            "_id": range.id,
            "db": range.ns.db.clone(),
            "coll": range.ns.coll.clone(),
            "min": bound(&range.bounds.min),
            "max": bound(&range.bounds.max),
            "state": range.state.as_str(),
            "source": hash_document(&range.source),
        };
        if let Some(destination) = &range.destination {
            record.insert("destination", hash_document(destination));
        }
        self.ranges
            .replace_one(doc! {"_id": range.id}, record)
            .upsert(true)
            .await
            .map_err(metadata_error)?;
        Ok(())
    }

    pub async fn delete_range(&self, id: ObjectId) -> Result<()> {
        self.ranges
            .delete_one(doc! {"_id": id})
            .await
            .map_err(metadata_error)?;
        Ok(())
    }

    /// Persists dirty marks before the stream positions move past their events.
    pub async fn mark_dirty(&self, ids: &[ObjectId]) -> Result<()> {
        for chunk in ids.chunks(10_000) {
            self.ranges
                .update_many(
                    doc! {"_id": {"$in": chunk.to_vec()}},
                    doc! {"$set": {"state": RangeState::Dirty.as_str()}},
                )
                .await
                .map_err(metadata_error)?;
        }
        Ok(())
    }

    pub async fn save_mismatch(&self, mismatch: &Mismatch) -> Result<()> {
        let mut record = doc! {
            "db": mismatch.ns.db.clone(),
            "coll": mismatch.ns.coll.clone(),
            "kind": mismatch.kind.clone(),
            "detail": mismatch.detail.clone(),
        };
        if let Some(id) = &mismatch.id {
            record.insert("id", doc! {"v": id.clone()});
        }
        self.mismatches
            .insert_one(record)
            .await
            .map_err(metadata_error)?;
        Ok(())
    }

    pub async fn load_mismatches(&self) -> Result<Vec<Mismatch>> {
        let documents: Vec<Document> = self
            .mismatches
            .find(doc! {})
            .limit(super::MAX_REPORTED as i64)
            .await
            .map_err(metadata_error)?
            .try_collect()
            .await
            .map_err(metadata_error)?;
        documents
            .iter()
            .map(|document| {
                Ok(Mismatch {
                    ns: read_ns(document)?,
                    id: document
                        .get_document("id")
                        .ok()
                        .and_then(|id| id.get("v").cloned()),
                    kind: document.get_str("kind").unwrap_or("unknown").to_string(),
                    detail: document.get_str("detail").unwrap_or("").to_string(),
                })
            })
            .collect()
    }
}
