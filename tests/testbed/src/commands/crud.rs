//! insert, update, delete and findAndModify (reference §3.2): per-statement write
//! errors, ordered vs unordered, exact no-op detection, upserts, and the
//! update/replace event choice.

use std::sync::Arc;

use bson::{doc, oid::ObjectId, Bson, Document};

use super::authz::check_writes_allowed;
use super::{check_fields, collection_arg};
use crate::catalog::Stored;
use crate::conn::ConnCtx;
use crate::error::{CmdResult, CommandError, ErrorCode};
use crate::query::matcher::Matcher;
use crate::query::projection::Projection;
use crate::query::sort::SortSpec;
use crate::server::Server;
use crate::store::{PreparedInsert, Store};
use crate::update::{UpdateContext, UpdateKind, UpdateSpec};

fn ordered(body: &Document) -> bool {
    !matches!(body.get("ordered"), Some(Bson::Boolean(false)))
}

fn statements<'a>(body: &'a Document, field: &str, command: &str) -> CmdResult<&'a Vec<Bson>> {
    match body.get(field) {
        Some(Bson::Array(items)) => Ok(items),
        Some(_) => Err(CommandError::type_mismatch(format!(
            "BSON field '{command}.{field}' is the wrong type, expected type 'array'"
        ))),
        None => Err(CommandError::new(
            ErrorCode::IdlFailedToParse,
            format!("BSON field '{command}.{field}' is missing but a required field"),
        )),
    }
}

fn finish_write(reply: &mut Document, errors: Vec<Document>) {
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
}

pub fn insert(
    server: &Server,
    ctx: &ConnCtx,
    db: &str,
    body: &mut Document,
) -> CmdResult<Document> {
    check_fields(
        "insert",
        body,
        &[
            "documents",
            "ordered",
            "bypassDocumentValidation",
            "bypassEmptyTsReplacement",
            "collectionUUID",
        ],
    )?;
    let coll = collection_arg("insert", body)?;
    statements(body, "documents", "insert")?;
    // The documents are stored as they are: take them rather than copy each one.
    let documents = match body.get_mut("documents") {
        Some(Bson::Array(items)) => std::mem::take(items),
        _ => Vec::new(),
    };
    let bypass_empty_ts = matches!(
        body.get("bypassEmptyTsReplacement"),
        Some(Bson::Boolean(true))
    );
    let ordered = ordered(body);
    let mut inserted = 0;
    let mut errors = Vec::new();
    // Checked and sized before the lock, which every other command waits for.
    let prepared: Vec<CmdResult<PreparedInsert>> = documents
        .into_iter()
        .map(|document| match document {
            Bson::Document(document) => {
                PreparedInsert::new(document, bypass_empty_ts, server.config.compact_documents)
            }
            _ => Err(CommandError::type_mismatch("documents must be objects")),
        })
        .collect();
    let mut store = server.store.write();
    for (index, document) in prepared.into_iter().enumerate() {
        let outcome = check_writes_allowed(server, ctx, db)
            .and_then(|_| store.ensure_collection(db, &coll))
            .and(document)
            .and_then(|document| store.insert(db, &coll, document).map(|_| ()));
        match outcome {
            Ok(()) => inserted += 1,
            Err(error) => {
                errors.push(error.to_write_error(index));
                if ordered {
                    break;
                }
            }
        }
    }
    server.notify_oplog(&store);
    let mut reply = doc! {"n": inserted};
    finish_write(&mut reply, errors);
    Ok(reply)
}

/// One update statement's outcome.
struct UpdateOutcome {
    matched: i64,
    modified: i64,
    upserted: Option<Bson>,
}

fn update_context(store: &mut Store) -> UpdateContext {
    UpdateContext {
        now: bson::DateTime::now(),
        now_ts: store.clock.now(),
        matched_position: None,
    }
}

/// `_id`s of the documents `matcher` selects, in natural order (a collection scan).
fn matching_ids(
    store: &Store,
    db: &str,
    coll: &str,
    matcher: &Matcher,
    limit_one: bool,
) -> Vec<Bson> {
    let Some(collection) = store.catalog.collection(db, coll) else {
        return Vec::new();
    };
    // An `_id` equality goes straight to the `_id` index, as mongod's IDHACK plan does.
    if let Some((_, id)) = matcher
        .equality_fields()
        .into_iter()
        .find(|(path, _)| path == "_id")
    {
        if !matches!(
            id,
            Bson::Document(_) | Bson::Array(_) | Bson::RegularExpression(_)
        ) {
            return match collection.get(&id) {
                Some(document) if matcher.matches(&document) => {
                    vec![document.get("_id").cloned().unwrap_or(Bson::Null)]
                }
                _ => Vec::new(),
            };
        }
    }
    let mut ids = Vec::new();
    for key in collection.natural.values() {
        if let Some(stored) = collection.docs.get(key) {
            if stored.with_document(|document| matcher.matches(document)) {
                ids.push(key.0.clone());
                if limit_one {
                    break;
                }
            }
        }
    }
    ids
}

/// Applies `spec` to the document with `id`; returns (matched, modified, new document).
fn update_one(
    store: &mut Store,
    db: &str,
    coll: &str,
    id: &Bson,
    matcher: &Matcher,
    spec: &UpdateSpec,
) -> CmdResult<(bool, bool, Option<Arc<Document>>)> {
    let Some(pre) = store.catalog.collection(db, coll).and_then(|c| c.get(id)) else {
        return Ok((false, false, None));
    };
    let mut context = update_context(store);
    if spec.uses_positional() {
        context.matched_position = matcher.match_position(&pre).flatten();
    }
    let (post, description) = spec.apply_described(&pre, &context)?;
    let encoded = crate::catalog::encode(&post)?;
    if encoded.len() > crate::store::MAX_BSON_SIZE {
        return Err(CommandError::new(
            ErrorCode::BsonObjectTooLarge,
            "Resulting document after update is larger than 16777216",
        ));
    }
    let unchanged = store
        .catalog
        .collection(db, coll)
        .and_then(|c| c.docs.get(&crate::bson_cmp::Key(id.clone())))
        .is_some_and(|stored| stored.has_bytes(&encoded));
    if unchanged {
        return Ok((true, false, Some(pre)));
    }
    // mongod records operator updates as the operators change fields (not as a diff);
    // `None` means the oplog entry is a full replacement.
    let (kind, description) = match description {
        Some(description) => ("update", description.to_document(true)),
        None => ("replace", Document::new()),
    };
    let post = Arc::new(post);
    store.update(db, coll, pre, (post.clone(), encoded), kind, description)?;
    Ok((true, true, Some(post)))
}

/// Inserts the upsert document; returns its `_id`.
fn upsert(
    store: &mut Store,
    db: &str,
    coll: &str,
    matcher: &Matcher,
    spec: &UpdateSpec,
) -> CmdResult<Arc<Document>> {
    let context = update_context(store);
    let seed = matcher.equality_fields();
    let mut document = spec.apply_upsert(&seed, &context)?;
    if !document.contains_key("_id") {
        let mut with_id = doc! {"_id": ObjectId::new()};
        with_id.extend(document);
        document = with_id;
    }
    let compact = store.compact_documents;
    store.insert(db, coll, PreparedInsert::new(document, false, compact)?)
}

fn run_update_statement(
    server: &Server,
    ctx: &ConnCtx,
    store: &mut Store,
    db: &str,
    coll: &str,
    statement: &Document,
) -> CmdResult<UpdateOutcome> {
    for key in statement.keys() {
        if !matches!(
            key.as_str(),
            "q" | "u" | "upsert" | "multi" | "arrayFilters" | "hint" | "collation" | "c" | "sort"
        ) {
            return Err(CommandError::new(
                ErrorCode::IdlUnknownField,
                format!("BSON field 'update.updates.{key}' is an unknown field."),
            ));
        }
    }
    if statement.contains_key("c") {
        return Err(CommandError::not_implemented(
            "'c' (let variables) in update statements",
        ));
    }
    if let Some(collation) = statement.get("collation") {
        if !crate::index::is_simple_collation(collation) {
            return Err(CommandError::not_implemented("collation"));
        }
    }
    let filter = statement.get_document("q").map_err(|_| {
        CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'update.updates.q' is missing but a required field",
        )
    })?;
    let u = statement.get("u").ok_or_else(|| {
        CommandError::new(
            ErrorCode::IdlFailedToParse,
            "BSON field 'update.updates.u' is missing but a required field",
        )
    })?;
    let multi = matches!(statement.get("multi"), Some(Bson::Boolean(true)));
    let upsert_wanted = matches!(statement.get("upsert"), Some(Bson::Boolean(true)));
    let array_filters: Option<Vec<Document>> = match statement.get("arrayFilters") {
        Some(Bson::Array(filters)) => Some(
            filters
                .iter()
                .filter_map(|f| f.as_document().cloned())
                .collect(),
        ),
        _ => None,
    };
    let matcher = Matcher::parse(filter)?;
    let spec = UpdateSpec::parse(u, array_filters.as_deref())?;
    if multi && spec.kind() == UpdateKind::Replacement {
        return Err(CommandError::failed_to_parse(
            "multi update is not supported for replacement-style update",
        ));
    }
    check_writes_allowed(server, ctx, db)?;
    if let Some(collection) = store.catalog.collection(db, coll) {
        if collection.is_view() {
            return Err(CommandError::new(
                ErrorCode::CommandNotSupportedOnView,
                format!("Namespace {db}.{coll} is a view, not a collection"),
            ));
        }
    }
    let ids = matching_ids(store, db, coll, &matcher, !multi);
    if ids.is_empty() {
        if !upsert_wanted {
            return Ok(UpdateOutcome {
                matched: 0,
                modified: 0,
                upserted: None,
            });
        }
        let inserted = upsert(store, db, coll, &matcher, &spec)?;
        let id = inserted.get("_id").cloned().unwrap_or(Bson::Null);
        return Ok(UpdateOutcome {
            matched: 0,
            modified: 0,
            upserted: Some(id),
        });
    }
    let (mut matched, mut modified) = (0, 0);
    for id in ids {
        let (was_matched, was_modified, _) = update_one(store, db, coll, &id, &matcher, &spec)?;
        matched += i64::from(was_matched);
        modified += i64::from(was_modified);
    }
    Ok(UpdateOutcome {
        matched,
        modified,
        upserted: None,
    })
}

pub fn update(server: &Server, ctx: &ConnCtx, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "update",
        body,
        &[
            "updates",
            "ordered",
            "bypassDocumentValidation",
            "let",
            "bypassEmptyTsReplacement",
            "collectionUUID",
        ],
    )?;
    if body.contains_key("let") {
        return Err(CommandError::not_implemented("'let' in update"));
    }
    let coll = collection_arg("update", body)?;
    let updates = statements(body, "updates", "update")?;
    let ordered = ordered(body);
    let (mut n, mut n_modified) = (0i64, 0i64);
    let mut upserted = Vec::new();
    let mut errors = Vec::new();
    let mut store = server.store.write();
    for (index, statement) in updates.iter().enumerate() {
        let outcome = match statement {
            Bson::Document(statement) => {
                run_update_statement(server, ctx, &mut store, db, &coll, statement)
            }
            _ => Err(CommandError::type_mismatch(
                "update statements must be objects",
            )),
        };
        match outcome {
            Ok(outcome) => {
                n += outcome.matched;
                n_modified += outcome.modified;
                if let Some(id) = outcome.upserted {
                    n += 1;
                    upserted.push(doc! {"index": index as i32, "_id": id});
                }
            }
            Err(error) => {
                errors.push(error.to_write_error(index));
                if ordered {
                    break;
                }
            }
        }
    }
    server.notify_oplog(&store);
    let mut reply = doc! {"n": n as i32, "nModified": n_modified as i32};
    if !upserted.is_empty() {
        reply.insert("upserted", upserted);
    }
    finish_write(&mut reply, errors);
    Ok(reply)
}

pub fn delete(server: &Server, ctx: &ConnCtx, db: &str, body: &Document) -> CmdResult<Document> {
    check_fields(
        "delete",
        body,
        &["deletes", "ordered", "let", "collectionUUID"],
    )?;
    if body.contains_key("let") {
        return Err(CommandError::not_implemented("'let' in delete"));
    }
    let coll = collection_arg("delete", body)?;
    let deletes = statements(body, "deletes", "delete")?;
    let ordered = ordered(body);
    let mut n = 0i64;
    let mut errors = Vec::new();
    let mut store = server.store.write();
    for (index, statement) in deletes.iter().enumerate() {
        let outcome = (|| -> CmdResult<i64> {
            let Bson::Document(statement) = statement else {
                return Err(CommandError::type_mismatch(
                    "delete statements must be objects",
                ));
            };
            for key in statement.keys() {
                if !matches!(key.as_str(), "q" | "limit" | "hint" | "collation") {
                    return Err(CommandError::new(
                        ErrorCode::IdlUnknownField,
                        format!("BSON field 'delete.deletes.{key}' is an unknown field."),
                    ));
                }
            }
            if let Some(collation) = statement.get("collation") {
                if !crate::index::is_simple_collation(collation) {
                    return Err(CommandError::not_implemented("collation"));
                }
            }
            let filter = statement.get_document("q").map_err(|_| {
                CommandError::new(
                    ErrorCode::IdlFailedToParse,
                    "BSON field 'delete.deletes.q' is missing but a required field",
                )
            })?;
            let limit = match statement.get("limit") {
                Some(value) => super::as_count("limit", value)?,
                None => {
                    return Err(CommandError::new(
                        ErrorCode::IdlFailedToParse,
                        "BSON field 'delete.deletes.limit' is missing but a required field",
                    ))
                }
            };
            if limit > 1 {
                return Err(CommandError::failed_to_parse(
                    "The limit field in delete objects must be 0 or 1. Got ".to_string()
                        + &limit.to_string(),
                ));
            }
            let matcher = Matcher::parse(filter)?;
            check_writes_allowed(server, ctx, db)?;
            let ids = matching_ids(&store, db, &coll, &matcher, limit == 1);
            let mut deleted = 0;
            for id in ids {
                if store.delete(db, &coll, &id)?.is_some() {
                    deleted += 1;
                }
            }
            Ok(deleted)
        })();
        match outcome {
            Ok(deleted) => n += deleted,
            Err(error) => {
                errors.push(error.to_write_error(index));
                if ordered {
                    break;
                }
            }
        }
    }
    server.notify_oplog(&store);
    let mut reply = doc! {"n": n as i32};
    finish_write(&mut reply, errors);
    Ok(reply)
}

pub fn find_and_modify(
    server: &Server,
    ctx: &ConnCtx,
    db: &str,
    body: &Document,
) -> CmdResult<Document> {
    let command = body.keys().next().cloned().unwrap_or_default();
    check_fields(
        &command,
        body,
        &[
            "query",
            "sort",
            "remove",
            "update",
            "new",
            "fields",
            "upsert",
            "arrayFilters",
            "bypassDocumentValidation",
            "hint",
            "collation",
            "let",
        ],
    )?;
    if body.contains_key("let") {
        return Err(CommandError::not_implemented("'let' in findAndModify"));
    }
    if let Some(collation) = body.get("collation") {
        if !crate::index::is_simple_collation(collation) {
            return Err(CommandError::not_implemented("collation"));
        }
    }
    let coll = collection_arg(&command, body)?;
    let filter = match body.get("query") {
        Some(Bson::Document(filter)) => filter.clone(),
        None | Some(Bson::Null) => Document::new(),
        Some(_) => return Err(CommandError::type_mismatch("query must be an object")),
    };
    let remove = matches!(body.get("remove"), Some(Bson::Boolean(true)));
    let update = body.get("update");
    if remove == update.is_some() {
        return Err(CommandError::failed_to_parse(
            "Either an update or remove=true must be specified",
        ));
    }
    let return_new = matches!(body.get("new"), Some(Bson::Boolean(true)));
    let upsert_wanted = matches!(body.get("upsert"), Some(Bson::Boolean(true)));
    if remove && (return_new || upsert_wanted) {
        return Err(CommandError::failed_to_parse("Cannot specify both new=true and remove=true; 'remove' always returns the deleted document"));
    }
    let projection = match body.get("fields") {
        Some(Bson::Document(fields)) if !fields.is_empty() => Some(Projection::parse(fields)?),
        _ => None,
    };
    let matcher = Matcher::parse(&filter)?;
    let sort = match body.get("sort") {
        Some(Bson::Document(sort)) if !sort.is_empty() => Some(SortSpec::parse(sort)?),
        _ => None,
    };
    check_writes_allowed(server, ctx, db)?;
    let mut store = server.store.write();
    let target = first_match(&store, db, &coll, &matcher, sort.as_ref());
    let project = |document: &Document| -> CmdResult<Bson> {
        Ok(Bson::Document(match &projection {
            Some(projection) => projection.apply(document)?,
            None => document.clone(),
        }))
    };
    let reply = if remove {
        match target {
            Some(id) => {
                let pre = store.delete(db, &coll, &id)?;
                let value = match pre {
                    Some(pre) => project(&pre)?,
                    None => Bson::Null,
                };
                doc! {"lastErrorObject": {"n": 1}, "value": value}
            }
            None => doc! {"lastErrorObject": {"n": 0}, "value": Bson::Null},
        }
    } else {
        let array_filters: Option<Vec<Document>> = match body.get("arrayFilters") {
            Some(Bson::Array(filters)) => Some(
                filters
                    .iter()
                    .filter_map(|f| f.as_document().cloned())
                    .collect(),
            ),
            _ => None,
        };
        let spec = UpdateSpec::parse(update.unwrap_or(&Bson::Null), array_filters.as_deref())?;
        match target {
            Some(id) => {
                let pre = store.catalog.collection(db, &coll).and_then(|c| c.get(&id));
                let (_, _, post) = update_one(&mut store, db, &coll, &id, &matcher, &spec)?;
                let shown = if return_new { post } else { pre };
                let value = match shown {
                    Some(document) => project(&document)?,
                    None => Bson::Null,
                };
                doc! {"lastErrorObject": {"n": 1, "updatedExisting": true}, "value": value}
            }
            None if upsert_wanted => {
                let inserted = upsert(&mut store, db, &coll, &matcher, &spec)?;
                let value = if return_new {
                    project(&inserted)?
                } else {
                    Bson::Null
                };
                let id = inserted.get("_id").cloned().unwrap_or(Bson::Null);
                doc! {"lastErrorObject": {"n": 1, "updatedExisting": false, "upserted": id}, "value": value}
            }
            None => {
                doc! {"lastErrorObject": {"n": 0, "updatedExisting": false}, "value": Bson::Null}
            }
        }
    };
    server.notify_oplog(&store);
    Ok(reply)
}

fn first_match(
    store: &Store,
    db: &str,
    coll: &str,
    matcher: &Matcher,
    sort: Option<&SortSpec>,
) -> Option<Bson> {
    match sort {
        None => matching_ids(store, db, coll, matcher, true)
            .into_iter()
            .next(),
        Some(sort) => {
            let collection = store.catalog.collection(db, coll)?;
            let mut candidates: Vec<Document> = collection
                .natural
                .values()
                .filter_map(|key| collection.docs.get(key))
                .map(Stored::decode)
                .filter(|d| matcher.matches(d))
                .collect();
            candidates.sort_by(|a, b| sort.compare(a, b));
            candidates.first().and_then(|d| d.get("_id").cloned())
        }
    }
}
