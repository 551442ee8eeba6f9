//! Index changes at cutover, driven by the source specs kept in each namespace record
//! (`source_indexes`) and by what the target cluster has now, so every function can run
//! again after a crash and only does what is still missing:
//! - commit 4: the non-unique copies of unique indexes become `prepareUnique` (new
//!   writes that would violate uniqueness are refused from `canWrite` on);
//! - commit 6: `prepareUnique` → unique; TTL, hidden and `prepareUnique`-only restored;
//! - reverse: the new destination (the old source) is relaxed as c2c's destinations are
//!   during sync (see `crate::indexes`).

use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::error::ErrorKind;
use mongodb::Client;

use crate::error::{EngineError, Result};
use crate::indexes::destination_index_specs;
use crate::metadata::{NamespaceKind, NamespaceRecord};
use crate::namespace::Namespace;
use crate::options::BuildIndexes;
use crate::retry::retry;

const NAMESPACE_NOT_FOUND: i32 = 26;
const CANNOT_CONVERT_INDEX_TO_UNIQUE: i32 = 359;

fn flag(spec: &Document, field: &str) -> bool {
    spec.get_bool(field).unwrap_or(false)
}

fn name(spec: &Document) -> &str {
    spec.get_str("name").unwrap_or_default()
}

fn ttl(spec: &Document) -> Option<i64> {
    match spec.get("expireAfterSeconds")? {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}

fn collections(records: &[NamespaceRecord]) -> impl Iterator<Item = &NamespaceRecord> {
    records
        .iter()
        .filter(|record| record.kind == NamespaceKind::Collection)
}

/// The index specs a collection has now (none if it was dropped meanwhile).
async fn current_indexes(client: &Client, ns: &Namespace) -> Result<Vec<Document>> {
    let collection = client.database(&ns.db).collection::<Document>(&ns.coll);
    let listed = retry("listIndexes", || async {
        let cursor = collection.list_indexes().await?;
        cursor.try_collect::<Vec<_>>().await
    })
    .await;
    match listed {
        Ok(models) => models
            .iter()
            .map(|model| bson::to_document(model).map_err(|e| EngineError::Fatal(e.to_string())))
            .collect(),
        Err(error) if code(&error) == Some(NAMESPACE_NOT_FOUND) => Ok(Vec::new()),
        Err(error) => Err(EngineError::destination(error)),
    }
}

fn code(error: &mongodb::error::Error) -> Option<i32> {
    match &*error.kind {
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

async fn coll_mod(
    client: &Client,
    ns: &Namespace,
    index: Document,
) -> Result<(), mongodb::error::Error> {
    let database = client.database(&ns.db);
    let command = doc! {"collMod": ns.coll.as_str(), "index": index};
    retry("collMod", || database.run_command(command.clone()))
        .await
        .map(|_| ())
}

/// Commit 4: `prepareUnique` on every non-unique copy of a source unique index.
pub(crate) async fn prepare_unique(target: &Client, records: &[NamespaceRecord]) -> Result<()> {
    for record in collections(records) {
        let current = current_indexes(target, &record.ns).await?;
        for spec in record.source_indexes.iter().filter(|s| flag(s, "unique")) {
            let Some(now) = current.iter().find(|c| name(c) == name(spec)) else {
                continue;
            };
            if flag(now, "unique") || flag(now, "prepareUnique") {
                continue;
            }
            coll_mod(
                target,
                &record.ns,
                doc! {"name": name(spec), "prepareUnique": true},
            )
            .await
            .map_err(EngineError::destination)?;
        }
    }
    Ok(())
}

/// Commit 6: brings every index back to its source form. Unique conversions that find
/// duplicate keys are not forced (nothing is deleted): each is described, the others
/// are still restored, and the descriptions are returned.
pub(crate) async fn restore(target: &Client, records: &[NamespaceRecord]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for record in collections(records) {
        let current = current_indexes(target, &record.ns).await?;
        for spec in &record.source_indexes {
            let Some(now) = current.iter().find(|c| name(c) == name(spec)) else {
                continue;
            };
            let index_name = name(spec);
            let mut changes = Vec::new();
            if flag(spec, "unique") && !flag(now, "unique") {
                changes.push(doc! {"name": index_name, "unique": true});
            } else if flag(spec, "prepareUnique") && !flag(now, "prepareUnique") {
                changes.push(doc! {"name": index_name, "prepareUnique": true});
            }
            if let Some(seconds) = ttl(spec).filter(|s| ttl(now) != Some(*s)) {
                changes.push(doc! {"name": index_name, "expireAfterSeconds": seconds});
            }
            if flag(spec, "hidden") && !flag(now, "hidden") {
                changes.push(doc! {"name": index_name, "hidden": true});
            }
            for change in changes {
                match coll_mod(target, &record.ns, change).await {
                    Ok(()) => {}
                    Err(error) if code(&error) == Some(CANNOT_CONVERT_INDEX_TO_UNIQUE) => {
                        problems.push(describe_duplicates(target, &record.ns, spec, &error).await);
                    }
                    Err(error) => return Err(EngineError::destination(error)),
                }
            }
        }
    }
    Ok(problems)
}

/// "unique index db.c.email_1 {email: 1}: duplicate key {email: "a"} in _id [1, 2]; …"
async fn describe_duplicates(
    target: &Client,
    ns: &Namespace,
    spec: &Document,
    error: &mongodb::error::Error,
) -> String {
    let key = spec.get_document("key").cloned().unwrap_or_default();
    let groups = violation_groups(error);
    let mut parts = Vec::new();
    for ids in &groups {
        let value = duplicate_key_value(target, ns, &key, ids).await;
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        parts.push(format!("duplicate key {value} in _id [{}]", ids.join(", ")));
    }
    format!(
        "unique index {ns}.{} {key} cannot be restored: {}; remove or change the duplicates on the destination, then restart c2c with the same /start to finish the commit",
        name(spec),
        if parts.is_empty() { "duplicate keys (the server did not list them)".to_string() } else { parts.join("; ") }
    )
}

fn violation_groups(error: &mongodb::error::Error) -> Vec<Vec<Bson>> {
    // `violations` is not a field of the driver's CommandError; it is in the raw reply.
    let reply = error
        .server_response()
        .and_then(|raw| raw.to_document().ok())
        .unwrap_or_default();
    reply
        .get_array("violations")
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(Bson::as_document)
        .filter_map(|group| group.get_array("ids").ok().cloned())
        .collect()
}

/// The indexed fields of the first document of a duplicate group.
async fn duplicate_key_value(
    target: &Client,
    ns: &Namespace,
    key: &Document,
    ids: &[Bson],
) -> String {
    let mut projection = doc! {"_id": 0};
    for field in key.keys() {
        projection.insert(field.clone(), 1);
    }
    let collection = target.database(&ns.db).collection::<Document>(&ns.coll);
    let filter = doc! {"_id": {"$in": ids.to_vec()}};
    let found = retry("find duplicate key", || {
        collection
            .find_one(filter.clone())
            .projection(projection.clone())
    })
    .await;
    match found {
        Ok(Some(document)) => document.to_string(),
        _ => "(unreadable)".to_string(),
    }
}

/// Reverse: relaxes the new destination's indexes as c2c builds them during sync
/// (unique off, TTL off, visible) and creates relaxed indexes that are missing.
pub(crate) async fn relax_for_sync(target: &Client, records: &[NamespaceRecord]) -> Result<()> {
    for record in collections(records) {
        let mut current = current_indexes(target, &record.ns).await?;
        if current.is_empty() {
            continue;
        }
        for now in current.iter().filter(|spec| name(spec) != "_id_") {
            relax_one(target, &record.ns, now).await?;
        }
        current = current_indexes(target, &record.ns).await?;
        let missing: Vec<Bson> =
            destination_index_specs(&record.source_indexes, BuildIndexes::BeforeDataCopy)
                .into_iter()
                .filter(|spec| !current.iter().any(|c| name(c) == name(spec)))
                .map(Bson::Document)
                .collect();
        if !missing.is_empty() {
            create_indexes(target, &record.ns, missing).await?;
        }
    }
    Ok(())
}

async fn relax_one(target: &Client, ns: &Namespace, now: &Document) -> Result<()> {
    let index_name = name(now);
    if ttl(now).is_some() {
        // A TTL cannot be removed with collMod, and setting a huge expireAfterSeconds
        // (mongosync's way) still lets the TTL monitor delete documents with very old
        // dates. The target is write-blocked and idle, so dropping and rebuilding the
        // index without TTL is safe; `relax_for_sync` recreates it (also after a crash
        // between the two).
        let database = target.database(&ns.db);
        let command = doc! {"dropIndexes": ns.coll.as_str(), "index": index_name};
        retry("dropIndexes", || database.run_command(command.clone()))
            .await
            .map_err(EngineError::destination)?;
        return Ok(());
    }
    if flag(now, "unique") {
        coll_mod(
            target,
            ns,
            doc! {"name": index_name, "forceNonUnique": true},
        )
        .await
        .map_err(EngineError::destination)?;
    } else if flag(now, "prepareUnique") {
        coll_mod(
            target,
            ns,
            doc! {"name": index_name, "prepareUnique": false},
        )
        .await
        .map_err(EngineError::destination)?;
    }
    if flag(now, "hidden") {
        coll_mod(target, ns, doc! {"name": index_name, "hidden": false})
            .await
            .map_err(EngineError::destination)?;
    }
    Ok(())
}

async fn create_indexes(target: &Client, ns: &Namespace, specs: Vec<Bson>) -> Result<()> {
    let database = target.database(&ns.db);
    let command = doc! {"createIndexes": ns.coll.as_str(), "indexes": specs, "writeConcern": {"w": "majority"}};
    retry("createIndexes", || database.run_command(command.clone()))
        .await
        .map_err(EngineError::destination)?;
    Ok(())
}
