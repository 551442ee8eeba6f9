//! Splitting a collection into `_id` ranges that can be copied in parallel.
//!
//! Strategy: `$sample` up to 200 `_id`s per wanted partition, sort them with the
//! canonical BSON comparator (the `_id` index's own order, across every type), and take
//! evenly spaced ones as boundaries. Oversampling keeps partition sizes close to the
//! target without scanning the collection: with k samples per partition a partition's
//! size varies by about 1/√k, and uneven partitions leave the copy's last ones running
//! with fewer than loadLevel in flight (10 samples: ±30 %; 200: ±7 %). The sample stays
//! under 5 % of the collection, where mongod answers `$sample` with a random cursor
//! instead of scanning and sorting the whole collection. The ranges are copied with
//! index bounds (`hint {_id: 1}` + `min`/`max`), never `$gt`/`$lt`, so a boundary of one
//! type still splits a collection that mixes many: every `_id` falls in exactly one range
//! whatever its type. Sizes come from discovery's estimates; a collection at or below
//! the target, or with fewer than two documents, is one unbounded partition.

use std::cmp::Ordering;

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::options::ReadConcern;
use mongodb::Client;

use crate::bson_order;
use crate::discovery::SourceNamespace;
use crate::error::{EngineError, Result};
use crate::metadata::{NamespaceKind, PartitionRecord};
use crate::namespace::Namespace;
use crate::retry::retry;

/// Samples taken per wanted partition, when the collection is large enough.
const OVERSAMPLE: u64 = 200;
/// … and at least this many, whatever the collection (as before the cap below existed).
const MIN_OVERSAMPLE: u64 = 10;
/// Upper bound on one collection's sample (its `_id`s are held in memory to sort).
const MAX_SAMPLES: u64 = 100_000;
/// Upper bound on partitions per collection (keeps metadata and planning bounded).
const MAX_PARTITIONS: u64 = 10_000;

/// The partitions of one collection, in `_id` order. Views have none (nothing to copy).
pub async fn plan(
    source: &Client,
    namespace: &SourceNamespace,
    target_bytes: u64,
) -> Result<Vec<PartitionRecord>> {
    if namespace.kind == NamespaceKind::View {
        return Ok(Vec::new());
    }
    let wanted = wanted_partitions(
        namespace.estimated_bytes,
        namespace.estimated_documents,
        target_bytes,
    );
    if wanted <= 1 {
        return Ok(ranges(&namespace.ns, namespace.uuid, Vec::new()));
    }
    let sample_size = sample_size(wanted, namespace.estimated_documents);
    let samples = sample_ids(source, &namespace.ns, sample_size).await?;
    let boundaries = choose_boundaries(samples, usize::try_from(wanted).unwrap_or(usize::MAX));
    tracing::debug!(namespace = %namespace.ns, wanted, partitions = boundaries.len() + 1, "planned partitions");
    Ok(ranges(&namespace.ns, namespace.uuid, boundaries))
}

/// How many `_id`s to sample for `wanted` partitions of a collection of `documents`:
/// `OVERSAMPLE` per partition while that stays under 4 % of the collection (mongod's
/// random-cursor `$sample` needs under 5 %) and `MAX_SAMPLES`, never fewer than
/// `MIN_OVERSAMPLE` per partition, never more than the documents.
pub fn sample_size(wanted: u64, documents: u64) -> u64 {
    let cheap = (documents / 25).min(MAX_SAMPLES);
    (wanted.saturating_mul(OVERSAMPLE))
        .min(cheap)
        .max(wanted.saturating_mul(MIN_OVERSAMPLE))
        .min(documents)
}

/// How many partitions a collection of this size should have.
pub fn wanted_partitions(bytes: u64, documents: u64, target_bytes: u64) -> u64 {
    if documents < 2 || bytes <= target_bytes.max(1) {
        return 1;
    }
    bytes
        .div_ceil(target_bytes.max(1))
        .min(documents)
        .min(MAX_PARTITIONS)
}

async fn sample_ids(source: &Client, ns: &Namespace, size: u64) -> Result<Vec<Bson>> {
    let collection = source.database(&ns.db).collection::<Document>(&ns.coll);
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let pipeline = vec![
        doc! {"$sample": {"size": size}},
        doc! {"$project": {"_id": 1}},
    ];
    let documents: Vec<Document> = retry("sample _id boundaries", || async {
        collection
            .aggregate(pipeline.clone())
            .read_concern(ReadConcern::majority())
            .await?
            .try_collect()
            .await
    })
    .await
    .map_err(EngineError::source)?;
    Ok(documents
        .into_iter()
        .filter_map(|mut document| document.remove("_id"))
        .collect())
}

/// Sorts samples canonically, drops duplicates (`$sample` may repeat a document, and
/// `1`/`1.0` are the same `_id`), and picks `partitions - 1` evenly spaced boundaries,
/// strictly increasing. Fewer samples than partitions yield fewer boundaries.
pub fn choose_boundaries(mut samples: Vec<Bson>, partitions: usize) -> Vec<Bson> {
    samples.sort_by(bson_order::compare);
    samples.dedup_by(|a, b| bson_order::equal(a, b));
    if partitions <= 1 || samples.is_empty() {
        return Vec::new();
    }
    let count = samples.len();
    let mut boundaries: Vec<Bson> = Vec::with_capacity(partitions - 1);
    for i in 1..partitions {
        let index = i * count / partitions;
        let Some(candidate) = samples.get(index) else {
            break;
        };
        // Integer spacing can pick the same sample twice when samples are few.
        if boundaries
            .last()
            .is_some_and(|last| bson_order::compare(last, candidate) != Ordering::Less)
        {
            continue;
        }
        boundaries.push(candidate.clone());
    }
    boundaries
}

/// Consecutive ranges over the boundaries: the first starts unbounded, the last ends
/// unbounded, and each range's `max` is the next one's `min` (`min` inclusive, `max`
/// exclusive), so together they cover every `_id` exactly once.
pub fn ranges(
    ns: &Namespace,
    uuid: Option<bson::Uuid>,
    boundaries: Vec<Bson>,
) -> Vec<PartitionRecord> {
    let mut lower: Option<Bson> = None;
    let mut partitions = Vec::with_capacity(boundaries.len() + 1);
    let uppers = boundaries
        .into_iter()
        .map(Some)
        .chain(std::iter::once(None));
    for (index, upper) in uppers.enumerate() {
        partitions.push(PartitionRecord {
            id: PartitionRecord::id_for(ns, index),
            ns: ns.clone(),
            min: lower.take(),
            max: upper.clone(),
            last: None,
            done: false,
            documents: 0,
            bytes: 0,
            uuid,
        });
        lower = upper;
    }
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;

    fn ns() -> Namespace {
        Namespace::new("db", "c")
    }

    #[test]
    fn small_or_empty_collections_are_one_partition() {
        assert_eq!(wanted_partitions(0, 0, 1024), 1);
        assert_eq!(wanted_partitions(10_000, 1, 1024), 1);
        assert_eq!(wanted_partitions(1024, 50, 1024), 1);
        assert_eq!(wanted_partitions(4096, 50, 1024), 4);
        assert_eq!(wanted_partitions(1 << 40, 3, 1024), 3);
        assert_eq!(wanted_partitions(1 << 40, 1 << 30, 1), MAX_PARTITIONS);
        let one = ranges(&ns(), None, Vec::new());
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].min.clone(), one[0].max.clone()), (None, None));
        assert_eq!(one[0].id, PartitionRecord::id_for(&ns(), 0));
    }

    #[test]
    fn samples_are_many_per_partition_but_a_small_part_of_the_collection() {
        // 16 partitions of a million documents: 200 each, 0.3 % of the collection.
        assert_eq!(sample_size(16, 1_000_000), 3_200);
        // Large documents: 200 per partition would pass 4 % of the collection.
        assert_eq!(sample_size(16, 20_000), 800);
        // Never fewer than 10 per partition (then $sample may scan; it did before).
        assert_eq!(sample_size(16, 2_000), 160);
        // Never more than the documents, nor than MAX_SAMPLES beyond 10 per partition.
        assert_eq!(sample_size(16, 100), 100);
        assert_eq!(sample_size(2_000, 1 << 40), MAX_SAMPLES);
        assert_eq!(
            sample_size(MAX_PARTITIONS, 1 << 40),
            MAX_PARTITIONS * MIN_OVERSAMPLE
        );
    }

    #[test]
    fn boundaries_follow_canonical_order_across_types() {
        let samples = vec![
            Bson::MaxKey,
            Bson::String("b".into()),
            Bson::ObjectId(ObjectId::from_bytes([7; 12])),
            Bson::Int64(3),
            Bson::Double(f64::NAN),
            Bson::Null,
            Bson::Document(doc! {"x": 1}),
            Bson::Boolean(true),
            Bson::MinKey,
            Bson::Double(2.5),
            Bson::Int32(3), // equal to Int64(3): one `_id` value
            Bson::DateTime(bson::DateTime::from_millis(5)),
        ];
        let all = choose_boundaries(samples.clone(), 100);
        let expected_types = [
            Bson::MinKey,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Double(2.5),
            Bson::Int64(3),
            Bson::String("b".into()),
            Bson::Document(doc! {"x": 1}),
            Bson::ObjectId(ObjectId::from_bytes([7; 12])),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(5)),
            Bson::MaxKey,
        ];
        // More partitions wanted than distinct samples: every sample becomes a boundary.
        assert_eq!(all.len(), expected_types.len());
        for (got, want) in all.iter().zip(expected_types.iter()) {
            assert!(bson_order::equal(got, want), "{got:?} vs {want:?}");
        }
        for pair in all.windows(2) {
            assert_eq!(bson_order::compare(&pair[0], &pair[1]), Ordering::Less);
        }
        let three = choose_boundaries(samples, 3);
        assert_eq!(three.len(), 2);
    }

    #[test]
    fn ranges_share_boundaries_and_cover_everything() {
        let boundaries = choose_boundaries((0..1000).map(Bson::Int32).collect(), 4);
        assert_eq!(
            boundaries,
            vec![Bson::Int32(250), Bson::Int32(500), Bson::Int32(750)]
        );
        let parts = ranges(&ns(), None, boundaries);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].min, None);
        assert_eq!(parts[3].max, None);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].max, pair[1].min);
            assert!(pair[0].id < pair[1].id);
        }
        // Fewer samples than partitions: no repeated boundary, no empty range.
        let few = choose_boundaries(vec![Bson::Int32(1), Bson::Int32(2)], 10);
        assert_eq!(few, vec![Bson::Int32(1), Bson::Int32(2)]);
        assert!(choose_boundaries(Vec::new(), 10).is_empty());
    }
}
