//! Reading `_id` ranges on one cluster: hashing them (cut into ranges of bounded size
//! on the source) and listing per-document differences between the two sides.
//!
//! Every read uses index bounds (`hint {_id: 1}` + `min`/`max`), like the copy, so a
//! range is the same set of `_id`s on both clusters whatever their types.

use std::cmp::Ordering;

use bson::{doc, Bson, RawDocumentBuf};
use futures::TryStreamExt;
use mongodb::options::Hint;
use mongodb::{Client, Cursor};

use super::canonical::{canonically_equal, document_hash};
use crate::bson_order;
use crate::error::{EngineError, Result, Side};
use crate::namespace::Namespace;

/// A range holds at most about this many documents…
pub const RANGE_DOCUMENTS: u64 = 2000;
/// …and this many bytes, whichever comes first: re-hashing one stays cheap.
pub const RANGE_BYTES: u64 = 4 << 20;
/// Per-document differences listed for one range at most (the rest wait for the next
/// check of the range).
const MAX_CANDIDATES: usize = 1000;

/// `[min, max)` in the `_id` index's order; `None` is unbounded.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    pub min: Option<Bson>,
    pub max: Option<Bson>,
}

impl Bounds {
    pub const ALL: Bounds = Bounds {
        min: None,
        max: None,
    };

    pub fn contains(&self, id: &Bson) -> bool {
        let above = self
            .min
            .as_ref()
            .is_none_or(|min| bson_order::compare(id, min) != Ordering::Less);
        let below = self
            .max
            .as_ref()
            .is_none_or(|max| bson_order::compare(id, max) == Ordering::Less);
        above && below
    }
}

/// Count and order-independent sum of the documents' canonical hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeHash {
    pub documents: u64,
    pub sum: u128,
}

impl RangeHash {
    fn add(&mut self, document: &RawDocumentBuf) {
        self.documents += 1;
        self.sum = self.sum.wrapping_add(document_hash(document));
    }
}

/// One range as a source scan cut it.
#[derive(Debug, Clone, PartialEq)]
pub struct HashedRange {
    pub bounds: Bounds,
    pub hash: RangeHash,
}

/// How a document differs between the clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocumentDifference {
    MissingOnDestination,
    ExtraOnDestination,
    Differs,
}

impl DocumentDifference {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentDifference::MissingOnDestination => "missing on destination",
            DocumentDifference::ExtraOnDestination => "extra on destination",
            DocumentDifference::Differs => "document differs",
        }
    }
}

fn side_error(side: Side) -> fn(mongodb::error::Error) -> EngineError {
    match side {
        Side::Source => EngineError::source,
        Side::Destination => EngineError::destination,
    }
}

async fn open(
    client: &Client,
    ns: &Namespace,
    bounds: &Bounds,
    side: Side,
) -> Result<Cursor<RawDocumentBuf>> {
    let collection = client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll);
    let mut find = collection
        .find(doc! {})
        .hint(Hint::Keys(doc! {"_id": 1}))
        .sort(doc! {"_id": 1})
        .batch_size(1000);
    if let Some(min) = &bounds.min {
        find = find.min(doc! {"_id": min.clone()});
    }
    if let Some(max) = &bounds.max {
        find = find.max(doc! {"_id": max.clone()});
    }
    find.await.map_err(side_error(side))
}

fn id_of(document: &RawDocumentBuf) -> Result<Bson> {
    document
        .get("_id")
        .ok()
        .flatten()
        .and_then(|raw| Bson::try_from(raw.to_raw_bson()).ok())
        .ok_or_else(|| EngineError::Fatal("a document without a readable _id".into()))
}

/// Hashes `bounds` on one cluster as a single range.
pub async fn hash_range(
    client: &Client,
    ns: &Namespace,
    bounds: &Bounds,
    side: Side,
) -> Result<RangeHash> {
    let mut cursor = open(client, ns, bounds, side).await?;
    let mut hash = RangeHash::default();
    while let Some(document) = cursor.try_next().await.map_err(side_error(side))? {
        hash.add(&document);
    }
    Ok(hash)
}

/// Hashes `bounds` on the source, cut into ranges of at most [`RANGE_DOCUMENTS`] /
/// [`RANGE_BYTES`]; together they cover `bounds` exactly (an empty collection is one
/// empty range). `on_document` counts progress.
pub async fn hash_and_cut(
    client: &Client,
    ns: &Namespace,
    bounds: &Bounds,
    mut on_document: impl FnMut(),
) -> Result<Vec<HashedRange>> {
    let mut cursor = open(client, ns, bounds, Side::Source).await?;
    let mut ranges = Vec::new();
    let mut current = HashedRange {
        bounds: Bounds {
            min: bounds.min.clone(),
            max: None,
        },
        hash: RangeHash::default(),
    };
    let mut bytes = 0u64;
    while let Some(document) = cursor.try_next().await.map_err(EngineError::source)? {
        if current.hash.documents >= RANGE_DOCUMENTS || bytes >= RANGE_BYTES {
            let cut = id_of(&document)?;
            let next = HashedRange {
                bounds: Bounds {
                    min: Some(cut.clone()),
                    max: None,
                },
                hash: RangeHash::default(),
            };
            current.bounds.max = Some(cut);
            ranges.push(std::mem::replace(&mut current, next));
            bytes = 0;
        }
        bytes += document.as_bytes().len() as u64;
        current.hash.add(&document);
        on_document();
    }
    current.bounds.max = bounds.max.clone();
    ranges.push(current);
    Ok(ranges)
}

/// The `_id`s in `bounds` whose documents differ (up to field order) between the
/// clusters: both sides streamed in `_id` order and merged.
pub async fn differences(
    source: &Client,
    destination: &Client,
    ns: &Namespace,
    bounds: &Bounds,
) -> Result<Vec<(Bson, DocumentDifference)>> {
    let mut left = open(source, ns, bounds, Side::Source).await?;
    let mut right = open(destination, ns, bounds, Side::Destination).await?;
    let mut next_left = left.try_next().await.map_err(EngineError::source)?;
    let mut next_right = right.try_next().await.map_err(EngineError::destination)?;
    let mut found = Vec::new();
    while found.len() < MAX_CANDIDATES {
        let (order, left_id, right_id) = match (&next_left, &next_right) {
            (None, None) => break,
            (Some(l), None) => (Ordering::Less, Some(id_of(l)?), None),
            (None, Some(r)) => (Ordering::Greater, None, Some(id_of(r)?)),
            (Some(l), Some(r)) => {
                let (l_id, r_id) = (id_of(l)?, id_of(r)?);
                (bson_order::compare(&l_id, &r_id), Some(l_id), Some(r_id))
            }
        };
        match order {
            Ordering::Less => {
                found.extend(left_id.map(|id| (id, DocumentDifference::MissingOnDestination)));
                next_left = left.try_next().await.map_err(EngineError::source)?;
            }
            Ordering::Greater => {
                found.extend(right_id.map(|id| (id, DocumentDifference::ExtraOnDestination)));
                next_right = right.try_next().await.map_err(EngineError::destination)?;
            }
            Ordering::Equal => {
                if let (Some(l), Some(r)) = (&next_left, &next_right) {
                    if !canonically_equal(l, r) {
                        found.extend(left_id.map(|id| (id, DocumentDifference::Differs)));
                    }
                }
                next_left = left.try_next().await.map_err(EngineError::source)?;
                next_right = right.try_next().await.map_err(EngineError::destination)?;
            }
        }
    }
    Ok(found)
}

/// One document by `_id`. An equality match also finds `1.0` for `1`: the canonical
/// comparison then reports the type difference.
pub async fn fetch(
    client: &Client,
    ns: &Namespace,
    id: &Bson,
    side: Side,
) -> Result<Option<RawDocumentBuf>> {
    client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll)
        .find_one(doc! {"_id": id.clone()})
        .await
        .map_err(side_error(side))
}

/// Two optional documents compared as the verifier does.
pub fn same_document(a: Option<&RawDocumentBuf>, b: Option<&RawDocumentBuf>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => canonically_equal(a, b),
        _ => false,
    }
}
