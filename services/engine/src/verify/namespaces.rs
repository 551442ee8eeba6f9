//! Namespace-level checks: each verified namespace exists on both sides as the same
//! kind, with the same collection options (a view: the same definition) and the same
//! indexes; nothing extra on the destination through the filter.
//!
//! Until the commit restores them, the destination's indexes are built relaxed (not
//! unique, no TTL, not hidden: see `indexes`), so during sync both sides are compared
//! relaxed; after the commit's restore they are compared exactly.

use std::collections::BTreeMap;

use bson::{doc, Document};
use futures::TryStreamExt;
use mongodb::Client;

use super::canonical::canonically_equal;
use super::Mismatch;
use crate::error::{EngineError, Result, Side};
use crate::filter::NamespaceFilter;
use crate::indexes;
use crate::namespace::{is_excluded, is_excluded_database, Namespace};
use crate::options::BuildIndexes;

/// How indexes are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexRule {
    /// During sync: as built on the destination (relaxed, per `buildIndexes`).
    DuringSync(BuildIndexes),
    /// After the commit restored them: exactly.
    Restored,
}

#[derive(Debug, Clone, PartialEq)]
struct Facts {
    options: Document,
    /// Normalised spec by index name.
    indexes: BTreeMap<String, Document>,
}

fn side_error(side: Side) -> fn(mongodb::error::Error) -> EngineError {
    match side {
        Side::Source => EngineError::source,
        Side::Destination => EngineError::destination,
    }
}

async fn facts(client: &Client, ns: &Namespace, side: Side) -> Result<Option<Facts>> {
    let db = client.database(&ns.db);
    let specs: Vec<mongodb::results::CollectionSpecification> = db
        .list_collections()
        .filter(doc! {"name": ns.coll.clone()})
        .await
        .map_err(side_error(side))?
        .try_collect()
        .await
        .map_err(side_error(side))?;
    let Some(spec) = specs.into_iter().next() else {
        return Ok(None);
    };
    let options = bson::to_document(&spec.options).unwrap_or_default();
    let mut indexes = BTreeMap::new();
    if !options.contains_key("viewOn") {
        let reply = db
            .run_command(doc! {"listIndexes": ns.coll.clone()})
            .await
            .map_err(side_error(side))?;
        let batch = reply
            .get_document("cursor")
            .and_then(|cursor| cursor.get_array("firstBatch"))
            .cloned()
            .unwrap_or_default();
        for spec in batch {
            if let bson::Bson::Document(spec) = spec {
                let name = spec.get_str("name").unwrap_or_default().to_string();
                indexes.insert(name, spec);
            }
        }
    }
    Ok(Some(Facts { options, indexes }))
}

/// A listed index spec without the fields that never mean a difference (`v`, `ns`,
/// `background`), relaxed during sync.
fn normalized(spec: &Document, rule: IndexRule) -> Document {
    let mut out = Document::new();
    for (field, value) in spec {
        if !matches!(field.as_str(), "v" | "ns" | "background") {
            out.insert(field.clone(), value.clone());
        }
    }
    match rule {
        IndexRule::Restored => out,
        IndexRule::DuringSync(_) => indexes::relaxed(&out),
    }
}

/// Options and index specs compared as mongod compares them: a number is a number
/// (`86400` and `86400L` are the same `expireAfterSeconds`, `{a: 1}` and `{a: 1.0}` the
/// same key), unlike document values, where the type is data.
fn raw(document: &Document) -> bson::RawDocumentBuf {
    let relaxed = numbers_as_doubles(&bson::Bson::Document(document.clone()));
    let document = match relaxed {
        bson::Bson::Document(document) => document,
        _ => Document::new(),
    };
    bson::RawDocumentBuf::from_document(&document).unwrap_or_default()
}

fn numbers_as_doubles(value: &bson::Bson) -> bson::Bson {
    use bson::Bson;
    match value {
        Bson::Int32(v) => Bson::Double(f64::from(*v)),
        Bson::Int64(v) => Bson::Double(*v as f64),
        Bson::Document(document) => Bson::Document(
            document
                .iter()
                .map(|(key, value)| (key.clone(), numbers_as_doubles(value)))
                .collect(),
        ),
        Bson::Array(values) => Bson::Array(values.iter().map(numbers_as_doubles).collect()),
        other => other.clone(),
    }
}

fn mismatch(ns: &Namespace, kind: &str, detail: String) -> Mismatch {
    Mismatch {
        ns: ns.clone(),
        id: None,
        kind: kind.to_string(),
        detail,
    }
}

/// Compares one namespace's existence, kind, options and indexes.
pub async fn check_namespace(
    source: &Client,
    destination: &Client,
    ns: &Namespace,
    rule: IndexRule,
) -> Result<Vec<Mismatch>> {
    let on_source = facts(source, ns, Side::Source).await?;
    let on_destination = facts(destination, ns, Side::Destination).await?;
    let (on_source, on_destination) = match (on_source, on_destination) {
        (None, None) => return Ok(Vec::new()),
        (Some(_), None) => {
            return Ok(vec![mismatch(
                ns,
                "namespace missing on destination",
                "the source has it, the destination does not".into(),
            )])
        }
        (None, Some(_)) => {
            return Ok(vec![mismatch(
                ns,
                "namespace extra on destination",
                "the destination has it, the source does not".into(),
            )])
        }
        (Some(s), Some(d)) => (s, d),
    };
    let mut found = Vec::new();
    if !canonically_equal(&raw(&on_source.options), &raw(&on_destination.options)) {
        let kind = if on_source.options.contains_key("viewOn") {
            "view definition differs"
        } else {
            "collection options differ"
        };
        found.push(mismatch(
            ns,
            kind,
            format!(
                "source {} vs destination {}",
                on_source.options, on_destination.options
            ),
        ));
    }
    let expected: BTreeMap<String, Document> = match rule {
        IndexRule::DuringSync(BuildIndexes::Never) => BTreeMap::new(),
        IndexRule::DuringSync(build) => on_source
            .indexes
            .iter()
            .filter(|(name, model)| {
                name.as_str() == "_id_"
                    || !indexes::destination_index_specs(std::slice::from_ref(*model), build)
                        .is_empty()
            })
            .map(|(name, model)| (name.clone(), normalized(model, rule)))
            .collect(),
        IndexRule::Restored => on_source
            .indexes
            .iter()
            .map(|(name, model)| (name.clone(), normalized(model, rule)))
            .collect(),
    };
    let actual: BTreeMap<String, Document> = on_destination
        .indexes
        .iter()
        .filter(|(name, _)| {
            // With buildIndexes "never" only _id exists; nothing else is compared.
            !matches!(rule, IndexRule::DuringSync(BuildIndexes::Never)) || name.as_str() != "_id_"
        })
        .map(|(name, model)| (name.clone(), normalized(model, rule)))
        .collect();
    for (name, spec) in &expected {
        match actual.get(name) {
            None => found.push(mismatch(
                ns,
                "index missing on destination",
                format!("index {name} {spec}"),
            )),
            Some(other) if !canonically_equal(&raw(spec), &raw(other)) => found.push(mismatch(
                ns,
                "index differs",
                format!("index {name}: source {spec} vs destination {other}"),
            )),
            Some(_) => {}
        }
    }
    for (name, spec) in &actual {
        if !expected.contains_key(name)
            && !matches!(rule, IndexRule::DuringSync(BuildIndexes::Never))
        {
            found.push(mismatch(
                ns,
                "index extra on destination",
                format!("index {name} {spec}"),
            ));
        }
    }
    Ok(found)
}

/// Namespaces the filter selects on the destination that the source does not have.
pub async fn extra_on_destination(
    source: &Client,
    destination: &Client,
    filter: &NamespaceFilter,
) -> Result<Vec<Mismatch>> {
    let on_source = selected(source, filter, Side::Source).await?;
    let on_destination = selected(destination, filter, Side::Destination).await?;
    Ok(on_destination
        .into_iter()
        .filter(|ns| !on_source.contains(ns))
        .map(|ns| {
            mismatch(
                &ns,
                "namespace extra on destination",
                "the destination has it, the source does not".into(),
            )
        })
        .collect())
}

/// Every collection and view the filter selects on one cluster.
pub async fn selected(
    client: &Client,
    filter: &NamespaceFilter,
    side: Side,
) -> Result<Vec<Namespace>> {
    let mut found = Vec::new();
    for db in client
        .list_database_names()
        .await
        .map_err(side_error(side))?
    {
        if is_excluded_database(&db) {
            continue;
        }
        for coll in client
            .database(&db)
            .list_collection_names()
            .await
            .map_err(side_error(side))?
        {
            let ns = Namespace::new(db.clone(), coll);
            if !is_excluded(&ns) && filter.matches(&ns) {
                found.push(ns);
            }
        }
    }
    found.sort();
    Ok(found)
}
