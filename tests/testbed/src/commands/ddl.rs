//! Catalog commands (reference §3.1): list*, create, drop, dropDatabase,
//! renameCollection, createIndexes, dropIndexes and collMod, with mongod's
//! option normalisation, version-dependent idempotency and error codes.

use std::time::Instant;

use bson::{doc, Bson, Document};

use super::authz::check_writes_allowed;
use super::{check_fields, collection_arg};
use crate::catalog::{CollKind, Collection};
use crate::conn::ConnCtx;
use crate::cursor::{Cursor, CursorKind, FindCursor, Scan};
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::index::{is_simple_collation, Index};
use crate::oplog::Op;
use crate::query::matcher::Matcher;
use crate::server::Server;

fn cursor_reply(
    server: &Server,
    ns: String,
    entries: Vec<Document>,
    body: &Document,
) -> CmdResult<Document> {
    let batch_size = match body.get("cursor") {
        Some(Bson::Document(cursor)) => cursor
            .get("batchSize")
            .map(|v| super::as_count("cursor.batchSize", v))
            .transpose()?,
        _ => None,
    };
    let (db, coll) = ns.split_once('.').unwrap_or((&ns, ""));
    let mut cursor = FindCursor {
        db: db.to_string(),
        coll: coll.to_string(),
        uuid: None,
        scan: Scan::Materialised(entries.into_iter().map(std::sync::Arc::new).collect()),
        matcher: None,
        projection: None,
        skip: 0,
        limit_remaining: None,
    };
    let (batch, exhausted) = {
        let store = server.store.read();
        cursor.next_batch(&store, batch_size)?
    };
    let id = if exhausted {
        0
    } else {
        server.cursors.lock().register(Cursor {
            ns: ns.clone(),
            kind: CursorKind::Find(Box::new(cursor)),
            lsid: body.get("lsid").cloned(),
            last_used: Instant::now(),
            no_timeout: false,
        })
    };
    Ok(doc! {"cursor": {"id": id, "ns": ns, "firstBatch": batch}})
}

pub fn list_databases(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    if db != "admin" {
        return Err(CommandError::new(
            ErrorCode::Unauthorized,
            "listDatabases may only be run against the admin database.",
        ));
    }
    check_fields(
        "listDatabases",
        body,
        &["nameOnly", "filter", "authorizedDatabases"],
    )?;
    let name_only = matches!(body.get("nameOnly"), Some(Bson::Boolean(true)));
    let filter = match body.get("filter") {
        Some(Bson::Document(filter)) if !filter.is_empty() => Some(Matcher::parse(filter)?),
        _ => None,
    };
    let store = server.store.read();
    let mut databases = Vec::new();
    let mut total: i64 = 0;
    for (name, database) in &store.catalog.databases {
        if database.collections.is_empty() {
            continue;
        }
        // Sizes are reported rounded up to a page, as WiredTiger files are never empty.
        let size = (store.data_size_of(name) as i64 + 4095) / 4096 * 4096 + 4096;
        let entry = if name_only {
            doc! {"name": name.clone()}
        } else {
            doc! {"name": name.clone(), "sizeOnDisk": size, "empty": false}
        };
        let full = doc! {"name": name.clone(), "sizeOnDisk": size, "empty": false};
        if filter.as_ref().is_some_and(|f| !f.matches(&full)) {
            continue;
        }
        total += size;
        databases.push(entry);
    }
    if name_only {
        return Ok(doc! {"databases": databases});
    }
    Ok(doc! {"databases": databases, "totalSize": total, "totalSizeMb": total / (1024 * 1024)})
}

pub fn list_collections(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "listCollections",
        body,
        &[
            "filter",
            "nameOnly",
            "authorizedCollections",
            "cursor",
            "includePendingDrops",
        ],
    )?;
    let name_only = matches!(body.get("nameOnly"), Some(Bson::Boolean(true)));
    let filter = match body.get("filter") {
        Some(Bson::Document(filter)) if !filter.is_empty() => Some(Matcher::parse(filter)?),
        _ => None,
    };
    let entries: Vec<Document> = {
        let store = server.store.read();
        match store.catalog.databases.get(db) {
            None => Vec::new(),
            Some(database) => database
                .collections
                .iter()
                .map(|(name, collection)| {
                    (
                        collection.list_entry(name, name_only),
                        collection.list_entry(name, false),
                    )
                })
                .filter(|(_, full)| filter.as_ref().is_none_or(|f| f.matches(full)))
                .map(|(shown, _)| shown)
                .collect(),
        }
    };
    cursor_reply(server, format!("{db}.$cmd.listCollections"), entries, body)
}

pub fn list_indexes(server: &Server, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "listIndexes",
        body,
        &[
            "cursor",
            "includeBuildUUIDs",
            "includeIndexBuildInfo",
            "collectionUUID",
        ],
    )?;
    let coll = collection_arg("listIndexes", body)?;
    let specs: Vec<Document> = {
        let store = server.store.read();
        let collection = store.catalog.collection(db, &coll).ok_or_else(|| {
            CommandError::new(
                ErrorCode::NamespaceNotFound,
                format!("ns does not exist: {db}.{coll}"),
            )
        })?;
        if collection.is_view() {
            return Err(CommandError::new(
                ErrorCode::CommandNotSupportedOnView,
                format!("Namespace {db}.{coll} is a view, not a collection"),
            ));
        }
        collection
            .indexes
            .iter()
            .map(|index| index.spec.clone())
            .collect()
    };
    cursor_reply(server, format!("{db}.{coll}"), specs, body)
}

const CREATE_OPTIONS: &[&str] = &[
    "capped",
    "size",
    "max",
    "validator",
    "validationLevel",
    "validationAction",
    "collation",
    "viewOn",
    "pipeline",
    "timeseries",
    "expireAfterSeconds",
    "clusteredIndex",
    "changeStreamPreAndPostImages",
    "idIndex",
    "storageEngine",
    "indexOptionDefaults",
    "encryptedFields",
    "autoIndexId",
    "flags",
    "temp",
    "recordIdsReplicated",
];

/// Validates create options and returns (kind, options as listCollections shows them).
fn normalise_create(db: &str, body: &Document) -> CmdResult<(CollKind, Document)> {
    check_fields("create", body, CREATE_OPTIONS)?;
    for refused in [
        "encryptedFields",
        "autoIndexId",
        "flags",
        "temp",
        "recordIdsReplicated",
    ] {
        if body.contains_key(refused) {
            return Err(CommandError::not_implemented(format!(
                "the create option '{refused}'"
            )));
        }
    }
    if let Some(collation) = body.get("collation") {
        if !is_simple_collation(collation) {
            return Err(CommandError::not_implemented(
                "collections with a non-simple collation",
            ));
        }
    }
    let mut options = Document::new();
    if let Some(view_on) = body.get("viewOn") {
        let Bson::String(view_on) = view_on else {
            return Err(CommandError::type_mismatch("'viewOn' must be a string"));
        };
        let pipeline = match body.get("pipeline") {
            Some(Bson::Array(pipeline)) => pipeline.clone(),
            None => Vec::new(),
            Some(_) => return Err(CommandError::type_mismatch("'pipeline' must be an array")),
        };
        crate::aggregate::Pipeline::parse(&pipeline)?;
        options.insert("viewOn", view_on.clone());
        options.insert("pipeline", pipeline.clone());
        return Ok((
            CollKind::View {
                view_on: view_on.clone(),
                pipeline,
            },
            options,
        ));
    }
    if body.contains_key("pipeline") {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "'pipeline' requires 'viewOn' to also be specified",
        ));
    }
    if let Some(Bson::Document(timeseries)) = body.get("timeseries") {
        let time_field = timeseries.get_str("timeField").map_err(|_| {
            CommandError::new(
                ErrorCode::IdlFailedToParse,
                "BSON field 'create.timeseries.timeField' is missing but a required field",
            )
        })?;
        let mut normalised = doc! {"timeField": time_field};
        if let Ok(meta) = timeseries.get_str("metaField") {
            normalised.insert("metaField", meta);
        }
        let granularity = timeseries.get_str("granularity").unwrap_or("seconds");
        normalised.insert("granularity", granularity);
        let span = match granularity {
            "minutes" => 86_400,
            "hours" => 2_592_000,
            _ => 3_600,
        };
        normalised.insert("bucketMaxSpanSeconds", span);
        options.insert("timeseries", normalised);
        if let Some(expire) = body.get("expireAfterSeconds") {
            options.insert("expireAfterSeconds", expire.clone());
        }
        let _ = db;
        return Ok((CollKind::Timeseries, options));
    }
    if body.contains_key("expireAfterSeconds") && !body.contains_key("clusteredIndex") {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "'expireAfterSeconds' is only supported on time-series or clustered collections",
        ));
    }
    for (key, value) in body.iter().skip(1) {
        if super::GENERIC_ARGS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "capped" => {
                if matches!(value, Bson::Boolean(true)) {
                    options.insert("capped", true);
                }
            }
            "size" => {
                // mongod rounds capped sizes up to a multiple of 256 bytes.
                let size = super::as_count("size", value)?;
                options.insert("size", (size.div_ceil(256) * 256) as i64);
            }
            "max" => {
                options.insert("max", super::as_count("max", value)? as i64);
            }
            "clusteredIndex" => {
                let spec = match value {
                    Bson::Boolean(true) => doc! {"v": 2, "key": {"_id": 1}, "name": "_id_", "unique": true},
                    Bson::Document(spec) => {
                        let mut normalised = doc! {"v": 2};
                        normalised.insert("key", spec.get("key").cloned().unwrap_or(Bson::Document(doc! {"_id": 1})));
                        normalised.insert("name", spec.get("name").cloned().unwrap_or(Bson::String("_id_".into())));
                        normalised.insert("unique", true);
                        normalised
                    }
                    _ => return Err(CommandError::bad_value("clusteredIndex must be true or an object")),
                };
                options.insert("clusteredIndex", spec);
            }
            "expireAfterSeconds" => {
                options.insert("expireAfterSeconds", super::as_count("expireAfterSeconds", value)? as i64);
            }
            "storageEngine" | "indexOptionDefaults" => {
                options.insert(key.clone(), value.clone());
            }
            // The collation is simple (checked above) and the `_id` index is implied.
            "collation" | "idIndex" => {}
            "validator" => {
                let Bson::Document(validator) = value else { return Err(CommandError::type_mismatch("'validator' must be an object")) };
                if validator.contains_key("$jsonSchema") {
                    options.insert("validator", validator.clone());
                } else {
                    Matcher::parse(validator)?;
                    options.insert("validator", validator.clone());
                }
            }
            "validationLevel" => match value.as_str() {
                Some("off" | "strict" | "moderate") => {
                    options.insert(key.clone(), value.clone());
                }
                _ => return Err(CommandError::bad_value(format!("Enumeration value '{value}' for field 'validationLevel' is not a valid value."))),
            },
            "validationAction" => match value.as_str() {
                Some("error" | "warn" | "errorAndLog") => {
                    options.insert(key.clone(), value.clone());
                }
                _ => return Err(CommandError::bad_value(format!("Enumeration value '{value}' for field 'validationAction' is not a valid value."))),
            },
            "changeStreamPreAndPostImages" => {
                let enabled = matches!(value.as_document().and_then(|d| d.get("enabled")), Some(Bson::Boolean(true)));
                options.insert(key.clone(), doc! {"enabled": enabled});
            }
            _ => {}
        }
    }
    if options.contains_key("capped") && !options.contains_key("size") {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "the 'size' field is required when 'capped' is true",
        ));
    }
    if !options.contains_key("capped")
        && (options.contains_key("size") || options.contains_key("max"))
    {
        return Err(CommandError::new(
            ErrorCode::InvalidOptions,
            "the 'size' and 'max' fields are only valid with 'capped'",
        ));
    }
    Ok((CollKind::Collection, options))
}

pub fn create(server: &Server, ctx: &ConnCtx, db: &str, body: &Document) -> CmdResult<Document> {
    let coll = collection_arg("create", body)?;
    let (kind, options) = normalise_create(db, body)?;
    check_writes_allowed(server, ctx, db)?;
    let mut store = server.store.write();
    if let Some(existing) = store.catalog.collection(db, &coll) {
        let identical = existing.options == options && same_kind(&existing.kind, &kind);
        if identical && server.config.wire_version.idempotent_ddl() {
            return Ok(Document::new());
        }
        let message = if identical {
            format!("Collection {db}.{coll} already exists.")
        } else {
            format!("Collection {db}.{coll} already exists with different options")
        };
        return Err(CommandError::new(ErrorCode::NamespaceExists, message));
    }
    if let CollKind::View { view_on, .. } = &kind {
        if store
            .catalog
            .collection(db, view_on)
            .is_some_and(|c| c.is_timeseries())
        {
            return Err(CommandError::not_implemented(
                "views on time-series collections",
            ));
        }
    }
    store.create_collection(db, &coll, kind, options)?;
    server.notify_oplog(&store);
    Ok(Document::new())
}

fn same_kind(a: &CollKind, b: &CollKind) -> bool {
    matches!(
        (a, b),
        (CollKind::Collection, CollKind::Collection)
            | (CollKind::View { .. }, CollKind::View { .. })
            | (CollKind::Timeseries, CollKind::Timeseries)
    )
}

pub fn drop(server: &Server, ctx: &ConnCtx, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields("drop", body, &["collectionUUID"])?;
    let coll = collection_arg("drop", body)?;
    check_writes_allowed(server, ctx, db)?;
    let mut store = server.store.write();
    match store.drop_collection(db, &coll) {
        Some(indexes) => {
            server.notify_oplog(&store);
            Ok(doc! {"nIndexesWas": indexes as i32, "ns": format!("{db}.{coll}")})
        }
        None if server.config.wire_version.idempotent_ddl() => Ok(Document::new()),
        None => Err(CommandError::new(
            ErrorCode::NamespaceNotFound,
            "ns not found",
        )),
    }
}

pub fn drop_database(server: &Server, ctx: &ConnCtx, db: &str) -> CmdResult<Document> {
    if db == "admin" || db == "config" || db == "local" {
        return Err(CommandError::new(
            ErrorCode::IllegalOperation,
            format!("Dropping the '{db}' database is prohibited."),
        ));
    }
    check_writes_allowed(server, ctx, db)?;
    let mut store = server.store.write();
    store.drop_database(db);
    server.notify_oplog(&store);
    Ok(Document::new())
}

pub fn rename_collection(
    server: &Server,
    ctx: &ConnCtx,
    db: &str,
    body: &Document,
) -> CmdResult<Document> {
    if db != "admin" {
        return Err(CommandError::new(
            ErrorCode::Unauthorized,
            "renameCollection may only be run against the admin database.",
        ));
    }
    check_fields(
        "renameCollection",
        body,
        &["to", "dropTarget", "stayTemp", "collectionUUID"],
    )?;
    let from = body
        .get_str("renameCollection")
        .map_err(|_| CommandError::type_mismatch("'renameCollection' must be of type String"))?;
    let to = body
        .get_str("to")
        .map_err(|_| CommandError::type_mismatch("'to' must be of type String"))?;
    let drop_target = matches!(body.get("dropTarget"), Some(Bson::Boolean(true)));
    let invalid = |ns: &str| {
        CommandError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid namespace specified '{ns}'"),
        )
    };
    let (from_db, from_coll) = from.split_once('.').ok_or_else(|| invalid(from))?;
    let (to_db, to_coll) = to.split_once('.').ok_or_else(|| invalid(to))?;
    if from == to {
        return Err(CommandError::new(
            ErrorCode::IllegalOperation,
            "Can't rename a collection to itself",
        ));
    }
    if from_db != to_db {
        return Err(CommandError::not_implemented(
            "cross-database renameCollection (mongod stages it through a tmp collection; the testbed does not emulate that)",
        ));
    }
    if from_coll.starts_with("system.") || to_coll.starts_with("system.") {
        return Err(CommandError::new(
            ErrorCode::IllegalOperation,
            "renaming system collections is not allowed",
        ));
    }
    check_writes_allowed(server, ctx, from_db)?;
    let mut store = server.store.write();
    match store.catalog.collection(from_db, from_coll) {
        None => {
            return Err(CommandError::new(
                ErrorCode::NamespaceNotFound,
                format!("Source collection {from} does not exist"),
            ))
        }
        Some(collection) if collection.is_view() => {
            return Err(CommandError::new(
                ErrorCode::CommandNotSupportedOnView,
                format!("cannot rename view: {from}"),
            ))
        }
        Some(_) => {}
    }
    store.rename(from_db, from_coll, to_coll, drop_target)?;
    server.notify_oplog(&store);
    Ok(Document::new())
}

pub fn create_indexes(
    server: &Server,
    ctx: &ConnCtx,
    db: &str,
    body: &Document,
) -> CmdResult<Document> {
    check_fields(
        "createIndexes",
        body,
        &[
            "indexes",
            "commitQuorum",
            "ignoreUnknownIndexOptions",
            "isTimeseriesNamespace",
            "collectionUUID",
        ],
    )?;
    let coll = collection_arg("createIndexes", body)?;
    let Some(Bson::Array(raw_specs)) = body.get("indexes") else {
        return Err(CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'createIndexes.indexes' is missing but a required field",
        ));
    };
    if raw_specs.is_empty() {
        return Err(CommandError::bad_value(
            "Must specify at least one index to create",
        ));
    }
    let mut specs = Vec::new();
    for raw in raw_specs {
        let Bson::Document(raw) = raw else {
            return Err(CommandError::type_mismatch(
                "index specifications must be objects",
            ));
        };
        specs.push(Index::from_spec(raw)?);
    }
    check_writes_allowed(server, ctx, db)?;
    let mut store = server.store.write();
    let created_collection = store.catalog.collection(db, &coll).is_none();
    store.ensure_collection(db, &coll)?;
    let ns = format!("{db}.{coll}");
    let collection = store
        .catalog
        .collection(db, &coll)
        .ok_or_else(|| CommandError::new(ErrorCode::NamespaceNotFound, "ns not found"))?;
    let before = collection.indexes.len();
    let was_empty = collection.docs.is_empty();
    let mut to_build = Vec::new();
    for spec in specs {
        if is_existing(collection, &spec, &to_build)? {
            continue;
        }
        to_build.push(spec);
    }
    let mut built = Vec::new();
    for spec in to_build {
        built.push(collection.build_index(&ns, spec)?);
    }
    let created_specs: Vec<Document> = built.iter().map(|index| index.spec.clone()).collect();
    if let Some(collection) = store.catalog.collection_mut(db, &coll) {
        collection.indexes.extend(built);
    }
    let after = before + created_specs.len();
    if !created_specs.is_empty() {
        // mongod logs one entry per index when the collection is empty, otherwise one
        // entry for the whole build.
        if was_empty {
            for spec in &created_specs {
                let ts = store.tick();
                store.log(
                    ts,
                    db,
                    Some(&coll),
                    Op::CreateIndexes {
                        indexes: vec![spec.clone()],
                    },
                );
            }
        } else {
            let ts = store.tick();
            store.log(
                ts,
                db,
                Some(&coll),
                Op::CreateIndexes {
                    indexes: created_specs.clone(),
                },
            );
        }
        server.notify_oplog(&store);
    }
    let mut reply = doc! {
        "numIndexesBefore": before as i32,
        "numIndexesAfter": after as i32,
        "createdCollectionAutomatically": created_collection,
    };
    if created_specs.is_empty() {
        reply.insert("note", "all indexes already exist");
    } else {
        reply.insert("commitQuorum", "votingMembers");
    }
    Ok(reply)
}

/// True when an identical index exists; an error when a conflicting one does.
fn is_existing(collection: &Collection, spec: &Index, pending: &[Index]) -> CmdResult<bool> {
    let options = |index: &Index| {
        let mut spec = index.spec.clone();
        spec.remove("name");
        spec.remove("v");
        spec
    };
    for existing in collection.indexes.iter().chain(pending.iter()) {
        let same_name = existing.name == spec.name;
        let same_key = existing.key_pattern() == spec.key_pattern();
        if same_name && same_key {
            if options(existing) == options(spec) {
                return Ok(true);
            }
            return Err(CommandError::new(
                ErrorCode::IndexOptionsConflict,
                format!("An existing index has the same name as the requested index but different options. Requested index: {}, existing index: {}", spec.spec, existing.spec),
            ));
        }
        if same_name {
            return Err(CommandError::new(
                ErrorCode::IndexKeySpecsConflict,
                format!("An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: {}, existing index: {}", spec.spec, existing.spec),
            ));
        }
        if same_key && options(existing) == options(spec) {
            return Err(CommandError::new(
                ErrorCode::IndexOptionsConflict,
                format!(
                    "Index already exists with a different name: {}",
                    existing.name
                ),
            ));
        }
        if same_key {
            let unique_differs = existing.unique != spec.unique;
            if !unique_differs {
                return Err(CommandError::new(
                    ErrorCode::IndexOptionsConflict,
                    format!("An equivalent index already exists with the same name but different options. Requested index: {}, existing index: {}", spec.spec, existing.spec),
                ));
            }
        }
    }
    Ok(false)
}

pub fn drop_indexes(
    server: &Server,
    ctx: &ConnCtx,
    db: &str,
    body: &Document,
) -> CmdResult<Document> {
    let command = body.keys().next().cloned().unwrap_or_default();
    check_fields(&command, body, &["index", "collectionUUID"])?;
    let coll = collection_arg(&command, body)?;
    let target = body
        .get("index")
        .ok_or_else(|| {
            CommandError::new(
                ErrorCode::IdlFailedToParse,
                "BSON field 'dropIndexes.index' is missing but a required field",
            )
        })?
        .clone();
    check_writes_allowed(server, ctx, db)?;
    let mut store = server.store.write();
    let collection = store.catalog.collection_mut(db, &coll).ok_or_else(|| {
        CommandError::new(
            ErrorCode::NamespaceNotFound,
            format!("ns not found {db}.{coll}"),
        )
    })?;
    let before = collection.indexes.len();
    let names: Vec<String> = match &target {
        Bson::String(name) if name == "*" => collection
            .indexes
            .iter()
            .filter(|i| !i.is_id())
            .map(|i| i.name.clone())
            .collect(),
        Bson::String(name) => vec![name.clone()],
        Bson::Array(names) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
        Bson::Document(pattern) => {
            let matching: Vec<String> = collection
                .indexes
                .iter()
                .filter(|i| i.key_pattern() == *pattern)
                .map(|i| i.name.clone())
                .collect();
            match matching.len() {
                0 => {
                    return Err(CommandError::new(
                        ErrorCode::IndexNotFound,
                        format!("can't find index with key: {pattern}"),
                    ))
                }
                1 => matching,
                _ => {
                    return Err(CommandError::new(
                        ErrorCode::AmbiguousIndexKeyPattern,
                        format!(
                            "{} indexes found for key: {pattern}, identify by name instead.",
                            matching.len()
                        ),
                    ))
                }
            }
        }
        _ => {
            return Err(CommandError::type_mismatch(
                "'index' must be a string, an object or an array of strings",
            ))
        }
    };
    for name in &names {
        if name == "_id_" {
            return Err(CommandError::new(
                ErrorCode::InvalidOptions,
                "cannot drop _id index",
            ));
        }
        if collection.find_index(name).is_none() {
            return Err(CommandError::new(
                ErrorCode::IndexNotFound,
                format!("index not found with name [{name}]"),
            ));
        }
    }
    let mut dropped = Vec::new();
    for name in &names {
        if let Some(position) = collection.find_index(name) {
            dropped.push(collection.indexes.remove(position).spec);
        }
    }
    for spec in dropped {
        let ts = store.tick();
        store.log(
            ts,
            db,
            Some(&coll),
            Op::DropIndexes {
                indexes: vec![spec],
            },
        );
    }
    server.notify_oplog(&store);
    Ok(doc! {"nIndexesWas": before as i32})
}

pub fn coll_mod(server: &Server, ctx: &ConnCtx, db: &str, body: &Document) -> CmdResult<Document> {
    crate::collmod::run(server, ctx, db, body)
}
