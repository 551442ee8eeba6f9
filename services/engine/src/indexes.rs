//! Creating namespaces and indexes on the destination during sync.
//!
//! While the sync runs, the destination must accept every write the source accepted, in
//! whatever order c2c applies them, and must not delete anything on its own. So indexes
//! are built in a relaxed form (mongosync reference §5.2) and the source specs are kept in
//! the namespace record for the commit step to restore:
//! - unique (and `prepareUnique`) → plain: a copy and change events applied out of order
//!   can transiently hold two documents with the same key;
//! - TTL → `expireAfterSeconds` removed (see [`destination_index_specs`]);
//! - hidden → visible (hiding only affects the planner; visible costs nothing).

use bson::{doc, Bson, Document};
use mongodb::Client;

use crate::error::{EngineError, Result};
use crate::metadata::{NamespaceKind, NamespaceRecord};
use crate::options::BuildIndexes;
use crate::retry::retry;

/// `NamespaceExists`: a 6.0 server answers it even for an identical `create`.
const NAMESPACE_EXISTS: i32 = 48;

/// The index specs to build on the destination during sync.
///
/// TTL: mongosync sets `expireAfterSeconds` to `i32::MAX` during sync. c2c removes it
/// instead: with `i32::MAX` (~68 years) the destination's TTL monitor still deletes
/// documents whose date is older than 68 years (dates before ~1957, or epoch-0 dates
/// used as "unset" once 2038 passes), and nothing would bring them back. A plain index is
/// restored to TTL at commit by `collMod {index: {name, expireAfterSeconds}}`, which
/// 5.1+ servers accept on single-field indexes (TTL indexes are single-field).
pub fn destination_index_specs(source_specs: &[Document], build: BuildIndexes) -> Vec<Document> {
    if build == BuildIndexes::Never {
        return Vec::new();
    }
    source_specs
        .iter()
        .filter(|spec| spec.get_str("name") != Ok("_id_"))
        .filter(|spec| !(build.skips_hashed() && is_hashed(spec)))
        .map(relaxed)
        .collect()
}

fn is_hashed(spec: &Document) -> bool {
    spec.get_document("key")
        .is_ok_and(|key| key.values().any(|v| v.as_str() == Some("hashed")))
}

pub(crate) fn relaxed(spec: &Document) -> Document {
    let mut out = Document::new();
    for (field, value) in spec {
        match field.as_str() {
            // Relaxed during sync, restored at commit from the source spec.
            "unique" | "prepareUnique" | "hidden" | "expireAfterSeconds" => {}
            // Legacy fields createIndexes rejects or ignores.
            "ns" | "background" | "dropDups" => {}
            "key" => {
                if let Bson::Document(key) = value {
                    out.insert("key", legacy_key_fixed(key));
                } else {
                    out.insert("key", value.clone());
                }
            }
            _ => {
                out.insert(field.clone(), value.clone());
            }
        }
    }
    out
}

/// Legacy key values such as `0` or `""` mean ascending; newer servers refuse them, so
/// mongosync rewrites them to `1`, as does c2c.
fn legacy_key_fixed(key: &Document) -> Document {
    key.iter()
        .map(|(field, value)| {
            let fixed = match value {
                Bson::Int32(0) | Bson::Int64(0) => Bson::Int32(1),
                Bson::Double(v) if *v == 0.0 => Bson::Int32(1),
                Bson::String(s) if s.is_empty() => Bson::Int32(1),
                other => other.clone(),
            };
            (field.clone(), fixed)
        })
        .collect()
}

/// The `create` command for a record: the source options as listed, which mongod accepts
/// back as create options (validator, clusteredIndex, changeStreamPreAndPostImages, …).
fn create_command(record: &NamespaceRecord) -> Document {
    let mut command = doc! {"create": record.ns.coll.as_str()};
    for (field, value) in &record.options {
        command.insert(field.clone(), value.clone());
    }
    command.insert("writeConcern", doc! {"w": "majority"});
    command
}

/// Creates the collection or view on the destination; an existing one with the same
/// options is accepted, one with different options is an error.
pub async fn create_namespace(destination: &Client, record: &NamespaceRecord) -> Result<()> {
    let database = destination.database(&record.ns.db);
    let command = create_command(record);
    match retry("create namespace", || database.run_command(command.clone())).await {
        Ok(_) => Ok(()),
        Err(error) if command_code(&error) == Some(NAMESPACE_EXISTS) => {
            let present = crate::discovery::list_collections(destination, &record.ns.db)
                .await
                .map_err(EngineError::destination)?;
            let existing = present
                .iter()
                .find(|entry| entry.get_str("name") == Ok(record.ns.coll.as_str()));
            let kind_matches = |entry: &Document| {
                let is_view = entry.get_str("type") == Ok("view");
                is_view == (record.kind == NamespaceKind::View)
            };
            match existing {
                Some(entry) if kind_matches(entry) && same_options(entry.get_document("options").ok(), &record.options) => Ok(()),
                _ => Err(EngineError::Fatal(format!(
                    "{} already exists on the destination with different options than on the source",
                    record.ns
                ))),
            }
        }
        Err(error) => Err(EngineError::destination(error)),
    }
}

fn same_options(existing: Option<&Document>, wanted: &Document) -> bool {
    let empty = Document::new();
    crate::bson_order::compare_documents(existing.unwrap_or(&empty), wanted)
        == std::cmp::Ordering::Equal
}

/// Builds `record.destination_indexes` in one `createIndexes`; indexes that already exist
/// with the same spec are accepted by the server, so this is idempotent.
pub async fn build_indexes(destination: &Client, record: &NamespaceRecord) -> Result<()> {
    if record.kind == NamespaceKind::View || record.destination_indexes.is_empty() {
        return Ok(());
    }
    let database = destination.database(&record.ns.db);
    let specs: Vec<Bson> = record
        .destination_indexes
        .iter()
        .cloned()
        .map(Bson::Document)
        .collect();
    let command = doc! {"createIndexes": record.ns.coll.as_str(), "indexes": specs, "writeConcern": {"w": "majority"}};
    retry("createIndexes", || database.run_command(command.clone()))
        .await
        .map_err(EngineError::destination)?;
    Ok(())
}

fn command_code(error: &mongodb::error::Error) -> Option<i32> {
    match &*error.kind {
        mongodb::error::ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<Document> {
        vec![
            doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            doc! {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": true, "collation": {"locale": "simple"}},
            doc! {"v": 2, "key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 3600, "partialFilterExpression": {"k": 1}},
            doc! {"v": 2, "key": {"h": 1}, "name": "h_1", "hidden": true, "sparse": true},
            doc! {"v": 2, "key": {"s": "hashed"}, "name": "s_hashed"},
            doc! {"v": 1, "key": {"old": 0, "b": -1}, "name": "old", "ns": "db.c", "background": true},
        ]
    }

    #[test]
    fn relaxes_unique_ttl_and_hidden_and_keeps_the_rest() {
        let built = destination_index_specs(&specs(), BuildIndexes::AfterDataCopy);
        assert_eq!(
            built,
            vec![
                doc! {"v": 2, "key": {"email": 1}, "name": "email_1", "collation": {"locale": "simple"}},
                doc! {"v": 2, "key": {"at": 1}, "name": "at_1", "partialFilterExpression": {"k": 1}},
                doc! {"v": 2, "key": {"h": 1}, "name": "h_1", "sparse": true},
                doc! {"v": 2, "key": {"s": "hashed"}, "name": "s_hashed"},
                doc! {"v": 1, "key": {"old": 1, "b": -1}, "name": "old"},
            ]
        );
    }

    #[test]
    fn hashed_skipped_and_never_builds_nothing() {
        let built = destination_index_specs(&specs(), BuildIndexes::ExcludeHashed);
        assert!(built
            .iter()
            .all(|spec| spec.get_str("name") != Ok("s_hashed")));
        assert_eq!(built.len(), 4);
        assert!(destination_index_specs(&specs(), BuildIndexes::Never).is_empty());
    }
}
