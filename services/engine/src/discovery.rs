//! Namespace discovery at `/start`: every source collection and view the filter selects,
//! with its options, index specs and size estimates, and the check that the destination
//! does not already hold any of them.
//!
//! Kinds c2c cannot sync are refused here, all at once, so the user sees every offending
//! namespace in one `/start` error instead of fixing them one failed start at a time.

use std::collections::BTreeMap;

use bson::{doc, Bson, Document};
use futures::{StreamExt, TryStreamExt};
use mongodb::options::ReadConcern;
use mongodb::Client;

use crate::error::{EngineError, Result};
use crate::filter::NamespaceFilter;
use crate::metadata::NamespaceKind;
use crate::namespace::{is_excluded_database, Namespace};
use crate::retry::retry;

/// One source namespace as discovered.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceNamespace {
    pub ns: Namespace,
    pub kind: NamespaceKind,
    /// listCollections `options` (for views: `viewOn`, `pipeline` and any collation).
    pub options: Document,
    /// listIndexes specs as the source reports them (empty for views).
    pub indexes: Vec<Document>,
    pub uuid: Option<bson::Uuid>,
    pub estimated_bytes: u64,
    pub estimated_documents: u64,
}

/// Source calls per collection in flight at once while discovering: each collection
/// costs a few round trips, and one after another made discovery of thousands of
/// collections on a remote cluster take minutes.
pub const DISCOVERY_CONCURRENCY: usize = 8;

/// What discovery learned of one listed collection.
enum Listed {
    Found(SourceNamespace),
    Refused(String),
}

/// Every namespace the filter selects, or `Unsupported` naming every one c2c cannot sync.
pub async fn discover(source: &Client, filter: &NamespaceFilter) -> Result<Vec<SourceNamespace>> {
    let databases = retry("list source databases", || source.list_database_names())
        .await
        .map_err(EngineError::source)?;
    let mut found = Vec::new();
    let mut refused = Vec::new();
    let mut collections = Vec::new();
    for db in databases.iter().filter(|db| !is_excluded_database(db)) {
        for entry in list_collections(source, db)
            .await
            .map_err(EngineError::source)?
        {
            let Ok(name) = entry.get_str("name") else {
                continue;
            };
            let ns = Namespace::new(db.as_str(), name);
            if !filter.matches(&ns) {
                continue;
            }
            let options = entry.get_document("options").cloned().unwrap_or_default();
            let kind = entry.get_str("type").unwrap_or("collection");
            if kind == "view" {
                found.push(view(ns, &options));
                continue;
            }
            if let Some(reason) = unsupported_collection(kind, &options) {
                refused.push(format!("{ns} ({reason})"));
                continue;
            }
            collections.push((ns, options, entry));
        }
    }
    let listed: Vec<Listed> = futures::stream::iter(collections)
        .map(|(ns, options, entry)| describe_collection(source, ns, options, entry))
        .buffered(DISCOVERY_CONCURRENCY)
        .try_collect()
        .await?;
    for item in listed {
        match item {
            Listed::Found(namespace) => found.push(namespace),
            Listed::Refused(reason) => refused.push(reason),
        }
    }
    if !refused.is_empty() {
        refused.sort();
        return Err(EngineError::Unsupported(format!(
            "c2c cannot sync these source namespaces: {}",
            refused.join("; ")
        )));
    }
    found.sort_by(|a, b| a.ns.cmp(&b.ns));
    Ok(found)
}

/// A collection's indexes and size, or why c2c cannot sync it.
async fn describe_collection(
    source: &Client,
    ns: Namespace,
    options: Document,
    entry: Document,
) -> Result<Listed> {
    let indexes = list_indexes(source, &ns)
        .await
        .map_err(EngineError::source)?;
    if let Some(reason) = unsupported_indexes(&options, &indexes) {
        return Ok(Listed::Refused(format!("{ns} ({reason})")));
    }
    let uuid = match entry
        .get_document("info")
        .ok()
        .and_then(|info| info.get("uuid"))
    {
        Some(Bson::Binary(binary)) => binary.to_uuid().ok(),
        _ => None,
    };
    let (estimated_bytes, estimated_documents) = estimate_size(source, &ns).await?;
    Ok(Listed::Found(SourceNamespace {
        ns,
        kind: NamespaceKind::Collection,
        options,
        indexes,
        uuid,
        estimated_bytes,
        estimated_documents,
    }))
}

/// Refuses to start when any discovered namespace already exists on the destination.
pub async fn check_destination(destination: &Client, namespaces: &[SourceNamespace]) -> Result<()> {
    let mut by_db: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for namespace in namespaces {
        by_db
            .entry(namespace.ns.db.as_str())
            .or_default()
            .push(namespace.ns.coll.as_str());
    }
    let mut existing = Vec::new();
    for (db, wanted) in by_db {
        let present = list_collections(destination, db)
            .await
            .map_err(EngineError::destination)?;
        for entry in present {
            if let Ok(name) = entry.get_str("name") {
                if wanted.contains(&name) {
                    existing.push(format!("{db}.{name}"));
                }
            }
        }
    }
    if existing.is_empty() {
        return Ok(());
    }
    existing.sort();
    Err(EngineError::DestinationNotEmpty(existing.join(", ")))
}

/// listCollections through a cursor (a database may hold more than one batch of them).
pub(crate) async fn list_collections(
    client: &Client,
    db: &str,
) -> mongodb::error::Result<Vec<Document>> {
    let database = client.database(db);
    retry("listCollections", || async {
        database
            .run_cursor_command(doc! {"listCollections": 1, "authorizedCollections": true})
            .await?
            .try_collect()
            .await
    })
    .await
}

async fn list_indexes(client: &Client, ns: &Namespace) -> mongodb::error::Result<Vec<Document>> {
    let database = client.database(&ns.db);
    retry("listIndexes", || async {
        database
            .run_cursor_command(doc! {"listIndexes": ns.coll.as_str()})
            .await?
            .try_collect()
            .await
    })
    .await
}

fn view(ns: Namespace, options: &Document) -> SourceNamespace {
    let mut kept = Document::new();
    for key in ["viewOn", "pipeline", "collation"] {
        if let Some(value) = options.get(key) {
            kept.insert(key, value.clone());
        }
    }
    SourceNamespace {
        ns,
        kind: NamespaceKind::View,
        options: kept,
        indexes: Vec::new(),
        uuid: None,
        estimated_bytes: 0,
        estimated_documents: 0,
    }
}

/// Why a collection (not a view) cannot be synced, if it cannot.
pub(crate) fn unsupported_collection(kind: &str, options: &Document) -> Option<String> {
    if kind == "timeseries" || options.contains_key("timeseries") {
        return Some("time-series collections are not supported".into());
    }
    if kind != "collection" {
        return Some(format!("collections of type {kind:?} are not supported"));
    }
    if options.contains_key("clusteredIndex") && options.contains_key("expireAfterSeconds") {
        return Some("clustered collections with expireAfterSeconds are not supported".into());
    }
    if matches!(options.get("capped"), Some(Bson::Boolean(true))) {
        // mongosync lifts the size limits during sync and restores them at commit; c2c
        // does not implement capped semantics (eviction order, commit-time restore) yet.
        return Some("capped collections are not supported yet".into());
    }
    if options.contains_key("encryptedFields") {
        return Some("Queryable Encryption collections are not supported".into());
    }
    if let Some(Bson::Document(collation)) = options.get("collation") {
        if collation.get_str("locale").unwrap_or("simple") != "simple" {
            // Partitions are planned and resumed in binary `_id` order; a collated `_id`
            // index orders (and equates) strings differently.
            return Some(
                "collections with a non-simple default collation are not supported".into(),
            );
        }
    }
    None
}

/// Index layouts the sync cannot reproduce.
pub(crate) fn unsupported_indexes(options: &Document, indexes: &[Document]) -> Option<String> {
    let has_id_index = indexes
        .iter()
        .any(|spec| spec.get_str("name") == Ok("_id_"));
    if !has_id_index && !options.contains_key("clusteredIndex") {
        return Some("no _id index: the copy needs it to partition by _id".into());
    }
    // Unique indexes are built non-unique during sync; a non-unique twin on the same key
    // would then be an identical index and the build fails (a documented mongosync limit).
    let same_shape = |spec: &Document| {
        (
            spec.get("key").cloned(),
            spec.get("collation").cloned(),
            spec.get("partialFilterExpression").cloned(),
        )
    };
    for unique in indexes
        .iter()
        .filter(|spec| is_true(spec, "unique") && spec.get_str("name") != Ok("_id_"))
    {
        if let Some(twin) = indexes
            .iter()
            .find(|spec| !is_true(spec, "unique") && same_shape(spec) == same_shape(unique))
        {
            return Some(format!(
                "unique index {:?} and non-unique index {:?} on the same key are not supported",
                unique.get_str("name").unwrap_or("?"),
                twin.get_str("name").unwrap_or("?")
            ));
        }
    }
    None
}

fn is_true(spec: &Document, field: &str) -> bool {
    matches!(spec.get(field), Some(Bson::Boolean(true)))
}

/// (bytes, documents): `$collStats` storage stats, else the `count` command times an
/// average size from `collStats`; estimates only feed progress and partition sizing.
async fn estimate_size(source: &Client, ns: &Namespace) -> Result<(u64, u64)> {
    let collection = source.database(&ns.db).collection::<Document>(&ns.coll);
    let stats = retry("$collStats", || async {
        collection
            .aggregate(vec![doc! {"$collStats": {"storageStats": {}}}])
            .read_concern(ReadConcern::local())
            .await?
            .try_collect::<Vec<Document>>()
            .await
    })
    .await;
    if let Ok(stats) = stats {
        if let Some(storage) = stats
            .first()
            .and_then(|s| s.get_document("storageStats").ok())
        {
            return Ok((number(storage.get("size")), number(storage.get("count"))));
        }
    }
    let database = source.database(&ns.db);
    let count = retry("count", || {
        database.run_command(doc! {"count": ns.coll.as_str()})
    })
    .await
    .map_err(EngineError::source)?;
    let documents = number(count.get("n"));
    let average = match retry("collStats", || {
        database.run_command(doc! {"collStats": ns.coll.as_str()})
    })
    .await
    {
        Ok(stats) => number(stats.get("avgObjSize")),
        Err(error) => {
            tracing::warn!(namespace = %ns, %error, "no size statistics; assuming 1 KiB documents");
            1024
        }
    };
    Ok((documents.saturating_mul(average), documents))
}

fn number(value: Option<&Bson>) -> u64 {
    match value {
        Some(Bson::Int32(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Int64(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Double(v)) if v.is_finite() && *v > 0.0 => *v as u64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_kinds_it_cannot_sync() {
        assert!(
            unsupported_collection("timeseries", &doc! {"timeseries": {"timeField": "t"}})
                .is_some()
        );
        assert!(
            unsupported_collection("collection", &doc! {"capped": true, "size": 4096}).is_some()
        );
        assert!(unsupported_collection(
            "collection",
            &doc! {"clusteredIndex": {"key": {"_id": 1}}, "expireAfterSeconds": 5}
        )
        .is_some());
        assert!(
            unsupported_collection("collection", &doc! {"collation": {"locale": "fr"}}).is_some()
        );
        assert!(
            unsupported_collection("collection", &doc! {"collation": {"locale": "simple"}})
                .is_none()
        );
        assert!(unsupported_collection(
            "collection",
            &doc! {"clusteredIndex": {"key": {"_id": 1}}}
        )
        .is_none());
        assert!(unsupported_collection(
            "collection",
            &doc! {"validator": {"a": {"$exists": true}}}
        )
        .is_none());
    }

    #[test]
    fn refuses_unique_and_plain_twins_and_missing_id_index() {
        let id = doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"};
        let unique = doc! {"v": 2, "key": {"a": 1}, "name": "a_u", "unique": true};
        let plain = doc! {"v": 2, "key": {"a": 1}, "name": "a_1"};
        let partial =
            doc! {"v": 2, "key": {"a": 1}, "name": "a_p", "partialFilterExpression": {"b": 1}};
        assert!(unsupported_indexes(&doc! {}, &[id.clone(), unique.clone(), plain]).is_some());
        assert!(unsupported_indexes(&doc! {}, &[id.clone(), unique.clone(), partial]).is_none());
        assert!(unsupported_indexes(&doc! {}, &[unique]).is_some());
        assert!(unsupported_indexes(&doc! {"clusteredIndex": {"key": {"_id": 1}}}, &[]).is_none());
        assert!(unsupported_indexes(&doc! {}, &[id]).is_none());
    }
}
